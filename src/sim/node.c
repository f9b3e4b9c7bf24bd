/* node.c - simnode's JSON-RPC dispatcher: request tree in, rendered answers out. */
#include "sim/node.h"

#include <stdio.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "sim/arch.h"
#include "sim/control.h"
#include "sim/render.h"
#include "util/hex.h"
#include "util/jsonw.h"

enum {
    E_PARSE = -32700,
    E_REQUEST = -32600,
    E_METHOD = -32601,
    E_PARAMS = -32602,
    E_INTERNAL = -32000,
    E_TOO_LARGE = -32003,
};

/* What a call resolved to, before its answer is written. */
typedef struct call {
    yajl_val id;
    int code; /* 0: result; else a JSON-RPC error code */
    char msg[160];
} call;

void bp_sim_scratch_init(bp_sim_scratch *s)
{
    bp_sim_block_init(&s->block);
    s->valid = false;
}

void bp_sim_scratch_release(bp_sim_scratch *s)
{
    bp_sim_block_release(&s->block);
    s->valid = false;
}

static int put_id(bp_buf *out, yajl_val id)
{
    if (id && YAJL_IS_NUMBER(id))
        return bp_buf_puts(out, id->u.number.r);
    if (id && YAJL_IS_STRING(id))
        return bp_jsonw_quote(out, id->u.string, BP_JSONW_ESC_U);
    if (id && YAJL_IS_TRUE(id))
        return bp_buf_puts(out, "true");
    if (id && YAJL_IS_FALSE(id))
        return bp_buf_puts(out, "false");
    return bp_buf_puts(out, "null");
}

static int open_answer(bp_buf *out, yajl_val id)
{
    int rc = bp_buf_puts(out, "{\"jsonrpc\":\"2.0\",\"id\":");
    return rc != 0 ? rc : put_id(out, id);
}

static int put_error(bp_buf *out, const call *c)
{
    int rc = open_answer(out, c->id);
    if (rc == 0)
        rc = bp_buf_printf(out, ",\"error\":{\"code\":%d,\"message\":", c->code);
    if (rc == 0)
        rc = bp_jsonw_quote(out, c->msg, BP_JSONW_ESC_U);
    return rc != 0 ? rc : bp_buf_puts(out, "}}");
}

static int fail(call *c, int code, const char *fmt, const char *arg)
{
    c->code = code;
    snprintf(c->msg, sizeof(c->msg), fmt, arg);
    return 0;
}

static yajl_val param(yajl_val params, size_t i)
{
    if (!params || !YAJL_IS_ARRAY(params) || i >= params->u.array.len)
        return NULL;
    return params->u.array.values[i];
}

/* A block number or tag into a height; false when it is neither. */
static bool block_ref(const bp_sim_request *r, yajl_val v, uint64_t *n)
{
    if (!v || !YAJL_IS_STRING(v))
        return false;
    const char *s = v->u.string;
    uint64_t h = r->head;
    if (strcmp(s, "latest") == 0 || strcmp(s, "pending") == 0)
        *n = h;
    else if (strcmp(s, "earliest") == 0)
        *n = 0;
    else if (strcmp(s, "safe") == 0)
        *n = h > 32 ? h - 32 : 0;
    else if (strcmp(s, "finalized") == 0)
        *n = h > 64 ? h - 64 : 0;
    else
        return bp_hex_to_u64(s, strlen(s), n) == 0;
    return true;
}

static bool full_flag(yajl_val v, bool *full)
{
    if (!v) {
        *full = false;
        return true;
    }
    if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
        return false;
    *full = YAJL_IS_TRUE(v);
    return true;
}

int bp_sim_load_block(bp_sim_request *r, uint64_t n, uint32_t fork, const bp_sim_block **out)
{
    bp_sim_scratch *s = r->scratch;
    if (!s->valid || s->number != n || s->fork != fork) {
        bp_error err;
        s->valid = false;
        int rc = bp_sim_block_gen(r->chain, n, fork, &s->block, &err);
        if (rc != 0)
            return rc;
        s->valid = true;
        s->number = n;
        s->fork = fork;
    }
    *out = &s->block;
    return 0;
}

static int answer_result_open(bp_buf *out, const call *c)
{
    int rc = open_answer(out, c->id);
    return rc != 0 ? rc : bp_buf_puts(out, ",\"result\":");
}

typedef enum what { W_BLOCK, W_RECEIPTS } what;

/* Answers a block or its receipts for (n, fork); null when it is above the head. */
static int answer_block(bp_sim_request *r, call *c, bp_buf *out, uint64_t n, uint32_t fork, what w,
                        bool full)
{
    int rc = answer_result_open(out, c);
    if (rc != 0)
        return rc;
    if (n > r->head)
        return bp_buf_puts(out, "null}");
    const bp_sim_block *b;
    rc = bp_sim_load_block(r, n, fork, &b);
    if (rc == 0)
        rc = w == W_BLOCK ? bp_sim_render_block_as(r->chain, b, full, r->bad, out)
                          : bp_sim_render_receipts_as(b, r->bad, out);
    return rc != 0 ? rc : bp_buf_putc(out, '}');
}

static int by_number(bp_sim_request *r, call *c, yajl_val params, what w, bp_buf *out)
{
    uint64_t n;
    bool full = false;
    yajl_val p0 = param(params, 0);
    if (w == W_RECEIPTS && p0 && YAJL_IS_STRING(p0) && strlen(p0->u.string) == 66) {
        bp_sim_h256 h;
        uint32_t fork;
        if (!bp_sim_parse_h256(p0->u.string, &h))
            return fail(c, E_PARAMS, "invalid block hash %.80s", p0->u.string);
        if (!bp_sim_block_hash_decode(r->chain, &h, &n, &fork) ||
            !bp_sim_chain_block_exists(r->chain, n, fork, r->head))
            return answer_block(r, c, out, UINT64_MAX, 0, w, false);
        return answer_block(r, c, out, n, fork, w, false);
    }
    if (!block_ref(r, p0, &n) || !full_flag(param(params, 1), &full))
        return fail(c, E_PARAMS, "invalid argument 0: %s", "expected a block number or tag");
    uint32_t fork = n <= r->head ? bp_sim_chain_fork_at(r->chain, n) : 0;
    return answer_block(r, c, out, n, fork, w, full);
}

static int by_hash(bp_sim_request *r, call *c, yajl_val params, bp_buf *out)
{
    yajl_val p0 = param(params, 0);
    bp_sim_h256 h;
    bool full;
    if (!p0 || !YAJL_IS_STRING(p0) || !bp_sim_parse_h256(p0->u.string, &h) ||
        !full_flag(param(params, 1), &full))
        return fail(c, E_PARAMS, "invalid argument 0: %s", "expected a 32-byte hash");
    uint64_t n;
    uint32_t fork;
    /* An orphaned block still answers by hash, as on a real node. */
    if (!bp_sim_block_hash_decode(r->chain, &h, &n, &fork) ||
        !bp_sim_chain_block_exists(r->chain, n, fork, r->head))
        n = UINT64_MAX;
    return answer_block(r, c, out, n, fork, W_BLOCK, full);
}

static int tx_receipt(bp_sim_request *r, call *c, yajl_val params, bp_buf *out)
{
    yajl_val p0 = param(params, 0);
    bp_sim_h256 h;
    if (!p0 || !YAJL_IS_STRING(p0) || !bp_sim_parse_h256(p0->u.string, &h))
        return fail(c, E_PARAMS, "invalid argument 0: %s", "expected a 32-byte hash");
    uint64_t n;
    uint32_t fork, idx;
    int rc = answer_result_open(out, c);
    if (rc != 0)
        return rc;
    /* Only canonical txs have receipts: an orphaned tx is unknown again. */
    if (!bp_sim_tx_hash_decode(r->chain, &h, &n, &fork, &idx) || n > r->head ||
        bp_sim_chain_fork_at(r->chain, n) != fork)
        return bp_buf_puts(out, "null}");
    const bp_sim_block *b;
    rc = bp_sim_load_block(r, n, fork, &b);
    if (rc == 0 && idx >= b->tx_count)
        return bp_buf_puts(out, "null}");
    if (rc == 0)
        rc = bp_sim_render_receipt(b, idx, r->bad, out);
    return rc != 0 ? rc : bp_buf_putc(out, '}');
}

static int quantity(call *c, bp_buf *out, uint64_t v)
{
    int rc = answer_result_open(out, c);
    return rc != 0 ? rc : bp_buf_printf(out, "\"0x%llx\"}", (unsigned long long)v);
}

static int subscription(bp_sim_request *r, call *c, bool sub, yajl_val params, bp_buf *out)
{
    yajl_val v = param(params, 0);
    char id[BP_SIM_SUB_ID_MAX];
    if (!v || !YAJL_IS_STRING(v))
        return fail(c, E_PARAMS, "invalid params: %s", sub ? "expected a kind" : "expected an id");
    if (sub && !r->subs->subscribe(r->subs->ud, v->u.string, id))
        return fail(c, E_PARAMS, "unsupported subscription '%.60s' (simnode: newHeads only)",
                    v->u.string);
    int rc = answer_result_open(out, c);
    if (rc == 0 && sub)
        rc = bp_buf_printf(out, "\"%s\"}", id);
    else if (rc == 0)
        rc = bp_buf_puts(out, r->subs->unsubscribe(r->subs->ud, v->u.string) ? "true}" : "false}");
    return rc;
}

static int arch_dispatch(bp_sim_request *r, call *c, const char *m, yajl_val params, bp_buf *out)
{
    bp_sim_arch_fail f;
    int rc = answer_result_open(out, c);
    if (rc == 0)
        rc = bp_sim_arch_result(r->arch, r, m, params, out, &f);
    if (rc != 0)
        return rc;
    if (f.code != 0)
        return fail(c, f.code, "%s", f.msg);
    return bp_buf_putc(out, '}');
}

static int dispatch(bp_sim_request *r, call *c, const char *m, yajl_val params, bp_buf *out)
{
    if (r->arch)
        return arch_dispatch(r, c, m, params, out);
    if (r->subs && strcmp(m, "eth_subscribe") == 0)
        return subscription(r, c, true, params, out);
    if (r->subs && strcmp(m, "eth_unsubscribe") == 0)
        return subscription(r, c, false, params, out);
    if (strcmp(m, "eth_getBlockByNumber") == 0)
        return by_number(r, c, params, W_BLOCK, out);
    if (strcmp(m, "eth_getBlockReceipts") == 0)
        return by_number(r, c, params, W_RECEIPTS, out);
    if (strcmp(m, "eth_getBlockByHash") == 0)
        return by_hash(r, c, params, out);
    if (strcmp(m, "eth_getTransactionReceipt") == 0)
        return tx_receipt(r, c, params, out);
    if (strcmp(m, "eth_blockNumber") == 0)
        return quantity(c, out, r->head);
    if (strcmp(m, "eth_chainId") == 0)
        return quantity(c, out, r->chain->p.chain_id);
    if (strcmp(m, "net_version") == 0) {
        int rc = answer_result_open(out, c);
        return rc != 0 ? rc
                       : bp_buf_printf(out, "\"%llu\"}", (unsigned long long)r->chain->p.chain_id);
    }
    if (strcmp(m, "web3_clientVersion") == 0) {
        int rc = answer_result_open(out, c);
        return rc != 0 ? rc : bp_buf_puts(out, "\"blockpipe-simnode/" BP_VERSION "\"}");
    }
    return fail(c, E_METHOD, "the method %.100s does not exist/is not available", m);
}

/* simnode_*: a fork / rollback / re-apply at once (sim/control.h). */
static int control_call(bp_sim_request *r, call *c, const char *m, yajl_val params, bp_buf *out)
{
    size_t mark = out->len;
    int rc = answer_result_open(out, c);
    if (rc == 0)
        rc = bp_sim_control_result(r->control, m, params, out, &c->code, c->msg);
    if (rc != 0)
        return rc;
    if (c->code == 0)
        return bp_buf_putc(out, '}');
    out->len = mark;
    return put_error(out, c);
}

/* One call object: its answer appended to out. */
static int answer_call(bp_sim_request *r, yajl_val obj, bp_buf *out)
{
    call c = {0};
    if (!YAJL_IS_OBJECT(obj)) {
        fail(&c, E_REQUEST, "%s", "invalid request: not an object");
        return put_error(out, &c);
    }
    c.id = yajl_tree_get(obj, (const char *[]){"id", NULL}, yajl_t_any);
    if (c.id && (YAJL_IS_OBJECT(c.id) || YAJL_IS_ARRAY(c.id)))
        c.id = NULL;
    yajl_val method = yajl_tree_get(obj, (const char *[]){"method", NULL}, yajl_t_string);
    yajl_val params = yajl_tree_get(obj, (const char *[]){"params", NULL}, yajl_t_any);
    r->calls++;
    if (!method) {
        fail(&c, E_REQUEST, "%s", "invalid request: no method");
        return put_error(out, &c);
    }
    /* Arch's docs send bare values as params (get-processed-transaction.md) */
    if (params && !YAJL_IS_ARRAY(params) && !YAJL_IS_NULL(params) && !r->arch) {
        fail(&c, E_PARAMS, "%s", "invalid params: expected an array");
        return put_error(out, &c);
    }
    /* a test's control call is not a provider's call: no injected error */
    if (r->control && bp_sim_control_method(method->u.string))
        return control_call(r, &c, method->u.string, params, out);
    if (r->missing_method && r->missing_method[0] &&
        strcmp(method->u.string, r->missing_method) == 0) {
        fail(&c, E_METHOD, "Method not found: %.100s", method->u.string);
        return put_error(out, &c);
    }
    if (r->fail_call && r->fail_call(r->ud, method->u.string)) {
        fail(&c, E_INTERNAL, "%s", "internal error (injected by simnode)");
        return put_error(out, &c);
    }
    size_t mark = out->len;
    int rc = dispatch(r, &c, method->u.string, params, out);
    if (rc != 0 || c.code == 0)
        return rc;
    out->len = mark; /* drop a partly written answer */
    return put_error(out, &c);
}

/* A batch over the provider's cap: one error object for all of it, as public endpoints
 * and gateways answer. */
static int refuse_batch(bp_sim_request *r, size_t n, bp_buf *out)
{
    call c = {.code = E_REQUEST};
    snprintf(c.msg, sizeof(c.msg), "batch of %zu exceeds the limit of %zu%s", n, r->max_batch,
             r->max_batch == 1 ? " (batches are not supported)" : "");
    return put_error(out, &c);
}

/* geth's batch response limit: the calls after the answer that passed it get -32003. */
static int too_large(yajl_val obj, bp_buf *out)
{
    call c = {.code = E_TOO_LARGE};
    c.id =
        YAJL_IS_OBJECT(obj) ? yajl_tree_get(obj, (const char *[]){"id", NULL}, yajl_t_any) : NULL;
    snprintf(c.msg, sizeof(c.msg), "response too large");
    return put_error(out, &c);
}

static int answer_batch(bp_sim_request *r, yajl_val arr, bp_buf *out)
{
    size_t n = arr->u.array.len;
    if (n == 0) {
        call c = {0};
        fail(&c, E_REQUEST, "%s", "invalid request: empty batch");
        return put_error(out, &c);
    }
    if (r->max_batch && (n > r->max_batch || r->max_batch == 1))
        return refuse_batch(r, n, out);
    size_t start = out->len;
    int rc = bp_buf_putc(out, '[');
    for (size_t i = 0; rc == 0 && i < n; i++) {
        bool over = r->max_response_bytes && out->len - start > r->max_response_bytes;
        if (i > 0)
            rc = bp_buf_putc(out, ',');
        if (rc == 0)
            rc = over ? too_large(arr->u.array.values[i], out)
                      : answer_call(r, arr->u.array.values[i], out);
    }
    return rc != 0 ? rc : bp_buf_putc(out, ']');
}

int bp_sim_answer(bp_sim_request *r, const char *body, size_t len, bp_buf *out)
{
    (void)len;
    char why[128];
    bp_buf_reset(out);
    r->calls = 0;
    yajl_val root = yajl_tree_parse(body, why, sizeof(why));
    int rc;
    if (!root) {
        call c = {0};
        fail(&c, E_PARSE, "parse error: %.120s", why);
        for (char *p = c.msg; *p; p++)
            if (*p == '\n')
                *p = ' ';
        rc = put_error(out, &c);
    } else if (YAJL_IS_ARRAY(root)) {
        rc = answer_batch(r, root, out);
    } else {
        rc = answer_call(r, root, out);
    }
    yajl_tree_free(root);
    return rc;
}
