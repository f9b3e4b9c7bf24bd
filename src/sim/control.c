/* control.c - simnode's control methods (simnode_fork / _rollback / _reapply). */
#include "sim/control.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/render.h"
#include "sim/server.h"

enum { E_METHOD = -32601, E_PARAMS = -32602 };

#define MAX_TXIDS 100000u

bool bp_sim_control_method(const char *m)
{
    return strncmp(m, "simnode_", 8) == 0;
}

static int fail(int *code, char msg[160], int c, const char *what)
{
    *code = c;
    snprintf(msg, 160, "%.159s", what);
    return 0;
}

/* An error of bp_sim_chain_fork / bp_sim_arch_rollback: a bad parameter, or out of memory. */
static int failed(int rc, const bp_error *err, int *code, char msg[160])
{
    if (rc == BP_ENOMEM)
        return rc;
    return fail(code, msg, E_PARAMS, err->msg);
}

/* params[0] of an array, else params itself (as the Arch methods take them). */
static yajl_val param0(yajl_val params)
{
    if (params && YAJL_IS_ARRAY(params))
        return params->u.array.len > 0 ? params->u.array.values[0] : NULL;
    return params && YAJL_IS_NULL(params) ? NULL : params;
}

/* A hash as its node family writes it: arch bare hex, EVM "0x" + hex (both quoted). */
static int put_hash(const bp_sim_control *ctl, const bp_sim_h256 *h, bp_buf *out)
{
    char tmp[72];
    char *end = tmp;
    if (ctl->arch) {
        *end++ = '"';
        end = bp_sim_arch_put_hex(end, h);
        *end++ = '"';
    } else {
        end = bp_sim_put_h256(tmp, h);
    }
    return bp_buf_append(out, tmp, (size_t)(end - tmp));
}

static int put_branch(const bp_sim_control *ctl, const bp_sim_fork_info *f, uint32_t k, bp_buf *out)
{
    int rc = bp_buf_putc(out, '[');
    for (uint64_t n = f->start; rc == 0 && n <= f->head; n++) {
        bp_sim_h256 h;
        bp_sim_block_hash(ctl->chain, n, bp_sim_chain_fork_upto(ctl->chain, n, k), &h);
        rc = n > f->start ? bp_buf_putc(out, ',') : 0;
        if (rc == 0)
            rc = put_hash(ctl, &h, out);
    }
    return rc != 0 ? rc : bp_buf_putc(out, ']');
}

/* {"fork":K,"depth":D,"fork_point":P,"head":H,"hashes":[new P+1..H],"replaced":[old]} */
static int do_fork(const bp_sim_control *ctl, yajl_val params, bp_buf *out, int *code,
                   char msg[160])
{
    yajl_val v = param0(params);
    if (v && YAJL_IS_OBJECT(v))
        v = yajl_tree_get(v, (const char *[]){"depth", NULL}, yajl_t_any);
    if (!v || !YAJL_IS_INTEGER(v) || v->u.number.i < 0)
        return fail(code, msg, E_PARAMS, "invalid params: expected [depth], a block count >= 1");
    uint64_t depth = (uint64_t)v->u.number.i;
    if (depth > BP_SIM_CONTROL_MAX_DEPTH) {
        snprintf(msg, 160, "depth %llu: at most %u", (unsigned long long)depth,
                 BP_SIM_CONTROL_MAX_DEPTH);
        *code = E_PARAMS;
        return 0;
    }
    bp_sim_fork_info f;
    bp_error err = {0};
    int rc = bp_sim_chain_fork(ctl->chain, bp_sim_now(), depth, &f, &err);
    if (rc != 0)
        return failed(rc, &err, code, msg);
    rc = bp_buf_printf(out,
                       "{\"fork\":%u,\"depth\":%llu,\"fork_point\":%llu,\"head\":%llu,"
                       "\"hashes\":",
                       f.fork, (unsigned long long)(f.head - f.start + 1),
                       (unsigned long long)(f.start - 1), (unsigned long long)f.head);
    if (rc == 0)
        rc = put_branch(ctl, &f, f.fork, out);
    if (rc == 0)
        rc = bp_buf_puts(out, ",\"replaced\":");
    if (rc == 0)
        rc = put_branch(ctl, &f, f.fork - 1, out);
    return rc != 0 ? rc : bp_buf_putc(out, '}');
}

/* {"episode":J,"block_height":N,"block_hash":H,"txids":[...]} of episode j. */
static int put_episode(const bp_sim_control *ctl, unsigned j, bp_buf *out)
{
    const bp_sim_arch *a = ctl->arch;
    bp_sim_block b;
    bp_error err = {0};
    bp_sim_block_init(&b);
    int rc = bp_sim_block_gen(ctl->chain, a->ep_height[j], a->ep_fork[j], &b, &err);
    if (rc == 0)
        rc = bp_buf_printf(out, "{\"episode\":%u,\"block_height\":%llu,\"block_hash\":", j,
                           (unsigned long long)b.number);
    if (rc == 0)
        rc = put_hash(ctl, &b.hash, out);
    if (rc == 0)
        rc = bp_buf_puts(out, ",\"txids\":[");
    for (size_t i = 0, k = 0; rc == 0 && i < b.tx_count; i++) {
        if (!bp_sim_arch_episode_has(a, j, (uint32_t)i))
            continue;
        rc = k++ > 0 ? bp_buf_putc(out, ',') : 0;
        if (rc == 0)
            rc = put_hash(ctl, &b.txs[i].hash, out);
    }
    bp_sim_block_release(&b);
    return rc != 0 ? rc : bp_buf_puts(out, "]}");
}

/* The txids of simnode_rollback's params into *txids (malloc'd; NULL when none). false with
 * msg set for a bad list; *txids NULL and *n non-zero when out of memory. */
static bool parse_txids(yajl_val list, bp_sim_h256 **txids, size_t *n, char msg[160])
{
    *txids = NULL;
    *n = 0;
    if (!list)
        return true;
    if (!YAJL_IS_ARRAY(list) || list->u.array.len == 0 || list->u.array.len > MAX_TXIDS) {
        snprintf(msg, 160, "invalid params: txids: expected a list of 1 to %u transaction ids",
                 MAX_TXIDS);
        return false;
    }
    *n = list->u.array.len;
    *txids = malloc(*n * sizeof(**txids));
    if (!*txids)
        return true;
    for (size_t i = 0; i < list->u.array.len; i++) {
        yajl_val t = list->u.array.values[i];
        if (!YAJL_IS_STRING(t) || !bp_sim_arch_parse_hex(t->u.string, &(*txids)[i])) {
            snprintf(msg, 160, "invalid params: txids[%zu]: expected 64 hex digits", i);
            free(*txids);
            *txids = NULL;
            *n = 0;
            return false;
        }
    }
    return true;
}

static int do_rollback(const bp_sim_control *ctl, yajl_val params, bp_buf *out, int *code,
                       char msg[160])
{
    yajl_val v = param0(params);
    if (v && !YAJL_IS_OBJECT(v))
        return fail(code, msg, E_PARAMS,
                    "invalid params: expected [{\"height\": N, \"txids\": [...]}] (both optional)");
    yajl_val hv = v ? yajl_tree_get(v, (const char *[]){"height", NULL}, yajl_t_any) : NULL;
    yajl_val tv = v ? yajl_tree_get(v, (const char *[]){"txids", NULL}, yajl_t_any) : NULL;
    if (hv && (!YAJL_IS_INTEGER(hv) || hv->u.number.i < 0))
        return fail(code, msg, E_PARAMS, "invalid params: height: expected a block height");
    uint64_t height = hv ? (uint64_t)hv->u.number.i : 0;
    bp_sim_h256 *txids;
    size_t n;
    if (!parse_txids(tv, &txids, &n, msg)) {
        *code = E_PARAMS;
        return 0;
    }
    if (n > 0 && !txids)
        return BP_ENOMEM;
    unsigned j;
    bp_error err = {0};
    int rc = bp_sim_arch_rollback(ctl->arch, bp_sim_now(), hv ? &height : NULL, txids, n, &j, &err);
    free(txids);
    if (rc != 0)
        return failed(rc, &err, code, msg);
    return put_episode(ctl, j, out);
}

static int do_reapply(const bp_sim_control *ctl, bp_buf *out, int *code, char msg[160])
{
    unsigned j;
    bp_error err = {0};
    int rc = bp_sim_arch_reapply(ctl->arch, bp_sim_now(), &j, &err);
    return rc != 0 ? failed(rc, &err, code, msg) : put_episode(ctl, j, out);
}

int bp_sim_control_result(const bp_sim_control *ctl, const char *m, yajl_val params, bp_buf *out,
                          int *code, char msg[160])
{
    *code = 0;
    if (strcmp(m, "simnode_fork") == 0)
        return do_fork(ctl, params, out, code, msg);
    if (ctl->arch && strcmp(m, "simnode_rollback") == 0)
        return do_rollback(ctl, params, out, code, msg);
    if (ctl->arch && strcmp(m, "simnode_reapply") == 0)
        return do_reapply(ctl, out, code, msg);
    *code = E_METHOD;
    snprintf(msg, 160, "the method %.60s does not exist%s", m,
             ctl->arch ? "" : " (simnode_rollback / simnode_reapply: --chain-type arch only)");
    return 0;
}
