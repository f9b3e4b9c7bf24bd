/* arch_source.c - the Arch Network family behind the source interface (core/source.h).
 *
 * Calls (docs/ARCH.md): is_node_ready + get_block_hash(0) (identity: an Arch node has no
 * chain id, the genesis hash tells networks apart), get_best_block_hash + get_block (the head),
 * get_block_hash (a height's canonical hash: the reorg walk), and per run of blocks three batched
 * requests: get_block_hash × heights, get_block × hashes, get_processed_transaction × the txids the
 * blocks list (in requests of at most TX_PER_REQUEST). A single parameter goes bare, as the
 * SDK's postData sends it (docs/ARCH.md "HTTP JSON-RPC"). */
#include "core/source.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch_rows.h"
#include "chain/limits.h"
#include "chain/rpc.h"
#include "chain/rpc_envelope.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/log.h"

#define TX_PER_REQUEST 512

void bp_arch_rows_free(void *p)
{
    bp_arch_rows *r = p;
    if (!r)
        return;
    for (size_t i = 0; i < r->tx_count; i++)
        bp_arch_tx_free(&r->txs[i]);
    free(r->txs);
    for (size_t i = 0; i < r->event_count; i++)
        bp_arch_event_free(&r->events[i]);
    free(r->events);
    bp_arch_block_free(&r->block);
    free(r);
}

static size_t slen(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

size_t bp_arch_rows_bytes(const bp_arch_rows *r)
{
    size_t n = sizeof(*r) + r->block.txid_count * sizeof(bp_arch_hash);
    for (size_t i = 0; i < r->tx_count; i++) {
        const bp_arch_tx *t = &r->txs[i];
        n += sizeof(*t) + slen(t->failure) + slen(t->rollback_reason) + slen(t->program_ids) +
             slen(t->bitcoin_txids) + t->account_count * sizeof(bp_arch_hash);
    }
    for (size_t i = 0; i < r->event_count; i++) {
        const bp_arch_event *e = &r->events[i];
        n += sizeof(*e) + slen(e->data) + slen(e->failure) + slen(e->program_ids) +
             slen(e->dkg_status) + e->hash_count * sizeof(bp_arch_hash);
    }
    return n;
}

/* A JSON-RPC error object of method: the SDK's 404 is BP_ENOTFOUND (a node behind: tried
 * again), the rest as for EVM (rate limits, unknown methods). */
static int call_error(yajl_val error, const char *method, bp_error *err)
{
    yajl_val code = yajl_tree_get(error, (const char *[]){"code", NULL}, yajl_t_number);
    if (code && YAJL_IS_INTEGER(code) && code->u.number.i == 404)
        return bp_error_set(err, BP_ENOTFOUND, "%s: node error 404 (not found)", method);
    return bp_decode_rpc_error(error, method, err);
}

/* Posts n calls of method (params[i] already JSON) and hands back the answers: one request
 * of n calls, or as many as the endpoint's learnt cap on calls per request takes (its answer
 * trees kept in roots until the next run). */
typedef struct calls {
    bp_buf body;
    yajl_val *roots;
    size_t nroots;
    yajl_val *results, *errors;
    size_t cap;
} calls;

static void calls_clear(calls *c)
{
    for (size_t i = 0; i < c->nroots; i++)
        bp_json_free(c->roots[i]);
    c->nroots = 0;
}

static int calls_reserve(calls *c, size_t n, bp_error *err)
{
    if (n <= c->cap)
        return 0;
    yajl_val *r = realloc(c->results, n * sizeof(*r));
    if (r)
        c->results = r;
    yajl_val *e = r ? realloc(c->errors, n * sizeof(*e)) : NULL;
    if (e)
        c->errors = e;
    yajl_val *t = e ? realloc(c->roots, n * sizeof(*t)) : NULL;
    if (!t)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    c->roots = t;
    c->cap = n;
    return 0;
}

/* Calls from..from+n-1 in one request (ids 0..n-1; one call goes as a bare object). */
static int post_calls(bp_rpc *rpc, calls *c, const char *method, const char *const *methods,
                      size_t from, size_t n, int (*param)(bp_buf *out, void *ctx, size_t i),
                      void *ctx, yajl_val *root, bp_error *err)
{
    bp_buf_reset(&c->body);
    int rc = n > 1 ? bp_buf_puts(&c->body, "[") : 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = bp_buf_printf(&c->body,
                           "%s{\"jsonrpc\":\"2.0\",\"id\":%zu,\"method\":\"%s\",\"params\":",
                           i ? "," : "", i, methods ? methods[from + i] : method);
        if (rc == 0)
            rc = param(&c->body, ctx, from + i);
        if (rc == 0)
            rc = bp_buf_puts(&c->body, "}");
    }
    if (rc == 0 && n > 1)
        rc = bp_buf_puts(&c->body, "]");
    if (rc != 0)
        return bp_error_set(err, BP_ENOMEM, "%s: cannot build the request",
                            methods ? methods[from] : method);
    return bp_rpc_batch(rpc, c->body.data, c->body.len, n, root, c->results + from,
                        c->errors + from, err);
}

/* One error object answered a batch of n calls refusing it for its size (Arch's docs and
 * SDKs never send batches; a node or gateway may cap or refuse them): the cap is learnt for
 * the endpoint, as the EVM fetch does (bp_fetch_batch_refused). True when it was. */
static bool batch_refused(bp_rpc *rpc, const calls *c, size_t from, size_t n)
{
    yajl_val e = n > 1 ? c->errors[from] : NULL;
    return e && e == c->errors[from + n - 1] && bp_fetch_batch_refused(rpc, e, n);
}

/* methods[i] (NULL: method) is the i-th call's. */
static int calls_run_m(bp_rpc *rpc, calls *c, const char *method, const char *const *methods,
                       size_t n, int (*param)(bp_buf *out, void *ctx, size_t i), void *ctx,
                       bp_error *err)
{
    calls_clear(c);
    int rc = calls_reserve(c, n, err);
    for (size_t from = 0; rc == 0 && from < n;) {
        int cap = atomic_load(&bp_rpc_limits_of(rpc)->max_calls);
        size_t m = cap > 0 && (size_t)cap < n - from ? (size_t)cap : n - from;
        yajl_val root = NULL;
        rc = post_calls(rpc, c, method, methods, from, m, param, ctx, &root, err);
        if (rc != 0)
            break;
        if (batch_refused(rpc, c, from, m)) { /* the cap is below m now: asked again within it */
            bp_json_free(root);
            continue;
        }
        c->roots[c->nroots++] = root;
        from += m;
    }
    return rc;
}

static int calls_run(bp_rpc *rpc, calls *c, const char *method, size_t n,
                     int (*param)(bp_buf *out, void *ctx, size_t i), void *ctx, bp_error *err)
{
    return calls_run_m(rpc, c, method, NULL, n, param, ctx, err);
}

static void calls_free(calls *c)
{
    calls_clear(c);
    free(c->roots);
    free(c->results);
    free(c->errors);
    bp_buf_release(&c->body);
}

static int no_param(bp_buf *out, void *ctx, size_t i)
{
    (void)ctx, (void)i;
    return bp_buf_puts(out, "[]");
}

static int height_param(bp_buf *out, void *ctx, size_t i)
{
    return bp_buf_printf(out, "%" PRIu64, *(const uint64_t *)ctx + i);
}

static int string_param(bp_buf *out, void *ctx, size_t i)
{
    return bp_buf_printf(out, "\"%s\"", ((const char *const *)ctx)[i]);
}

/* A hash answer (64 hex digits, 0x or not) into h. */
static int hash_of(yajl_val v, const char *method, bp_arch_hash h, bp_error *err)
{
    const char *s = v && YAJL_IS_STRING(v) ? v->u.string : NULL;
    size_t off = s && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') ? 2 : 0;
    if (!s || strlen(s + off) != 64 || strspn(s + off, "0123456789abcdefABCDEF") != 64)
        return bp_error_set(err, BP_EPARSE, "%s result: expected 64 hex digits", method);
    for (int i = 0; i < 64; i++)
        h[i] = (char)(s[off + i] | 0x20); /* digits stay, letters go lower case */
    h[64] = '\0';
    return 0;
}

/* One call of method with one string parameter (or none) answering a hash. */
static int hash_call(bp_rpc *rpc, calls *c, const char *method, const uint64_t *height,
                     bp_arch_hash h, bp_error *err)
{
    int rc = height ? calls_run(rpc, c, method, 1, height_param, (void *)height, err)
                    : calls_run(rpc, c, method, 1, no_param, NULL, err);
    if (rc == 0 && c->errors[0])
        rc = call_error(c->errors[0], method, err);
    return rc ? rc : hash_of(c->results[0], method, h, err);
}

/* An Arch node has no chain id: the identity is the genesis block's hash (get_block_hash(0)),
 * its first 8 bytes as a number, so that an endpoint of another Arch network (another
 * genesis) is refused like an EVM endpoint of another chain id. Never 0. */
static int arch_identity(bp_rpc *rpc, uint64_t *id, bp_error *err)
{
    calls c = {0};
    bp_arch_hash genesis;
    const uint64_t zero = 0;
    int rc = calls_run(rpc, &c, "is_node_ready", 1, no_param, NULL, err);
    if (rc == 0 && c.errors[0])
        rc = call_error(c.errors[0], "is_node_ready", err);
    if (rc == 0 && !YAJL_IS_TRUE(c.results[0]))
        rc = bp_error_set(err, BP_ERPC, "is_node_ready: the node is not ready");
    if (rc == 0)
        rc = hash_call(rpc, &c, "get_block_hash", &zero, genesis, err);
    *id = 0;
    if (rc == 0) {
        char head[17];
        memcpy(head, genesis, 16);
        head[16] = '\0';
        *id = strtoull(head, NULL, 16);
        *id = *id ? *id : 1;
    }
    calls_free(&c);
    return rc;
}

/* The best and the best finalized hash, in one request (book get-best-block-hash.md,
 * get-best-finalized-block-hash.md). A node without the second (the method unknown to it:
 * bp_rpc_is_method_missing, or a null answer) has no finalized block: *final stays false; any other
 * failure of it sets *unknown (the node has one, it did not say which this time). */
static int best_hashes(bp_rpc *rpc, calls *c, bp_arch_hash best, bp_arch_hash fin, bool *final,
                       bool *unknown, bp_error *err)
{
    static const char *const m[] = {"get_best_block_hash", "get_best_finalized_block_hash"};
    bp_error e;
    *final = *unknown = false;
    int rc = calls_run_m(rpc, c, NULL, m, 2, no_param, NULL, err);
    if (rc == 0 && c->errors[0])
        rc = call_error(c->errors[0], m[0], err);
    if (rc == 0)
        rc = hash_of(c->results[0], m[0], best, err);
    if (rc == 0 && c->errors[1])
        *unknown = !bp_rpc_is_method_missing(c->errors[1]);
    else if (rc == 0 && !YAJL_IS_NULL(c->results[1]))
        *unknown = !(*final = hash_of(c->results[1], m[1], fin, &e) == 0);
    return rc;
}

/* get_block of the head (and of the finalized block): height, previous hash, timestamp. */
static int arch_head(bp_rpc *rpc, calls *c, bp_header *out, bp_error *err)
{
    bp_arch_hash h[2];
    bp_arch_block b = {0}, f = {0};
    bool final, unknown;
    int rc = best_hashes(rpc, c, h[0], h[1], &final, &unknown, err);
    const char *hp[2] = {h[0], h[1]};
    if (rc == 0)
        rc = calls_run(rpc, c, "get_block", final ? 2 : 1, string_param, hp, err);
    if (rc == 0 && c->errors[0])
        rc = call_error(c->errors[0], "get_block", err);
    if (rc == 0)
        rc = bp_arch_decode_block(c->results[0], h[0], &b, err);
    if (rc != 0)
        return rc;
    out->number = b.height;
    out->timestamp = b.timestamp;
    memcpy(out->hash, b.hash, sizeof(b.hash));
    memcpy(out->parent_hash, b.prev_hash, sizeof(b.prev_hash));
    bp_error e;
    if (final && !c->errors[1] && bp_arch_decode_block(c->results[1], h[1], &f, &e) == 0 &&
        f.height <= b.height) {
        out->has_final = true;
        out->final_number = f.height;
    }
    out->final_unknown = !out->has_final && (unknown || final);
    bp_arch_block_free(&b);
    bp_arch_block_free(&f);
    return 0;
}

static int arch_header(bp_rpc *rpc, uint64_t number, bp_header *out, bp_error *err)
{
    calls c = {0};
    bp_arch_hash h;
    memset(out, 0, sizeof(*out));
    int rc;
    if (number == UINT64_MAX) {
        rc = arch_head(rpc, &c, out, err);
    } else { /* the reorg walk needs the hash only */
        rc = hash_call(rpc, &c, "get_block_hash", &number, h, err);
        out->number = number;
        if (rc == 0)
            memcpy(out->hash, h, sizeof(h));
    }
    calls_free(&c);
    return rc;
}

/* ---- a run of blocks ---- */

typedef struct range {
    uint64_t first;
    size_t count;
    bp_arch_rows **rows; /* [count]; NULL where the block failed */
    int *rcs;
    bp_error *errs;
} range;

static void fail_block(range *r, size_t i, int rc, const bp_error *e)
{
    if (r->rcs[i] != 0)
        return;
    r->rcs[i] = rc;
    r->errs[i] = *e;
    bp_arch_rows_free(r->rows[i]);
    r->rows[i] = NULL;
}

/* Every block not failed yet fails with e (a transport error fails the request's all). */
static void fail_rest(range *r, int rc, const bp_error *e)
{
    for (size_t i = 0; i < r->count; i++)
        fail_block(r, i, rc, e);
}

static int get_blocks(bp_rpc *rpc, calls *c, range *r, bp_error *err)
{
    bp_arch_hash *h = calloc(r->count, sizeof(*h));
    const char **hp = calloc(r->count, sizeof(*hp));
    int rc = h && hp ? calls_run(rpc, c, "get_block_hash", r->count, height_param, &r->first, err)
                     : bp_error_set(err, BP_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < r->count; i++) {
        bp_error e;
        int brc = c->errors[i] ? call_error(c->errors[i], "get_block_hash", &e)
                               : hash_of(c->results[i], "get_block_hash", h[i], &e);
        if (brc != 0)
            fail_block(r, i, brc, &e);
        hp[i] = h[i];
    }
    if (rc == 0)
        rc = calls_run(rpc, c, "get_block", r->count, string_param, hp, err);
    for (size_t i = 0; rc == 0 && i < r->count; i++) {
        bp_error e;
        if (r->rcs[i] != 0)
            continue;
        int brc = c->errors[i] ? call_error(c->errors[i], "get_block", &e) : 0;
        if (brc == 0 && !(r->rows[i] = calloc(1, sizeof(bp_arch_rows)))) {
            rc = bp_error_set(err, BP_ENOMEM, "out of memory");
            break;
        }
        if (brc == 0)
            brc = bp_arch_decode_block(c->results[i], h[i], &r->rows[i]->block, &e);
        if (brc == 0 && r->rows[i]->block.height != r->first + i)
            brc = bp_error_set(&e, BP_EPARSE,
                               "get_block %s: block_height %" PRIu64 ", but get_block_hash(%" PRIu64
                               ") named it",
                               h[i], r->rows[i]->block.height, r->first + i);
        if (brc != 0)
            fail_block(r, i, brc, &e);
    }
    free(h);
    free(hp);
    return rc;
}

/* The txids of the blocks still in the run, in order, and where each block's start. */
typedef struct txlist {
    const char **ids;
    size_t *block; /* ids[k] is listed by block[k] */
    size_t n;
} txlist;

static int list_txs(range *r, txlist *t)
{
    size_t n = 0;
    for (size_t i = 0; i < r->count; i++)
        n += r->rows[i] ? r->rows[i]->block.txid_count : 0;
    t->ids = calloc(n ? n : 1, sizeof(*t->ids));
    t->block = calloc(n ? n : 1, sizeof(*t->block));
    if (!t->ids || !t->block)
        return BP_ENOMEM;
    for (size_t i = 0; i < r->count; i++) {
        bp_arch_rows *w = r->rows[i];
        if (!w)
            continue;
        if (w->block.txid_count && !(w->txs = calloc(w->block.txid_count, sizeof(*w->txs))))
            return BP_ENOMEM;
        for (size_t k = 0; k < w->block.txid_count; k++) {
            t->ids[t->n] = w->block.txids[k];
            t->block[t->n++] = i;
        }
    }
    return 0;
}

/* get_processed_transaction for ids[from .. from+n) into their blocks' rows. */
static int get_txs(bp_rpc *rpc, calls *c, range *r, const txlist *t, size_t from, size_t n,
                   bp_error *err)
{
    int rc = calls_run(rpc, c, "get_processed_transaction", n, string_param,
                       (void *)(t->ids + from), err);
    for (size_t k = 0; rc == 0 && k < n; k++) {
        size_t i = t->block[from + k];
        bp_arch_rows *w = r->rows[i];
        if (!w) /* an earlier tx of the block failed it */
            continue;
        bp_error e;
        int trc = c->errors[k] ? call_error(c->errors[k], "get_processed_transaction", &e)
                               : bp_arch_decode_tx(c->results[k], t->ids[from + k], w->block.height,
                                                   &w->txs[w->tx_count], &e);
        if (trc == 0)
            w->tx_count++;
        else
            fail_block(r, i, trc, &e);
    }
    return rc;
}

/* The rows of block i as a bp_block (the rows move into its arena). */
static int to_block(range *r, size_t i, bp_block **out)
{
    bp_arch_rows *w = r->rows[i];
    bp_block *b = bp_block_new();
    if (!b)
        return BP_ENOMEM;
    b->family = BP_FAMILY_ARCH;
    b->number = w->block.height;
    b->timestamp = w->block.timestamp;
    b->transaction_count = w->block.txid_count;
    b->hash = bp_arena_strndup(b->arena, w->block.hash, 64);
    b->parent_hash = bp_arena_strndup(b->arena, w->block.prev_hash, 64);
    if (!b->hash || !b->parent_hash ||
        bp_arena_adopt_fn(b->arena, w, bp_arch_rows_bytes(w), bp_arch_rows_free) != 0) {
        bp_block_free(b);
        return BP_ENOMEM;
    }
    r->rows[i] = NULL;
    b->arch = w;
    *out = b;
    return 0;
}

static int arch_fetch_range(bp_rpc *rpc, bp_fetch_shared *shared, uint64_t first, size_t count,
                            bp_block **out, int *rcs, bp_error *errs)
{
    (void)shared;
    calls c = {0};
    txlist t = {0};
    bp_error err;
    range r = {.first = first, .count = count, .rcs = rcs, .errs = errs};
    memset(rcs, 0, count * sizeof(*rcs));
    for (size_t i = 0; i < count; i++)
        out[i] = NULL;
    r.rows = calloc(count, sizeof(*r.rows));
    int rc =
        r.rows ? get_blocks(rpc, &c, &r, &err) : bp_error_set(&err, BP_ENOMEM, "out of memory");
    if (rc == 0 && list_txs(&r, &t) != 0)
        rc = bp_error_set(&err, BP_ENOMEM, "out of memory");
    for (size_t k = 0; rc == 0 && k < t.n; k += TX_PER_REQUEST)
        rc = get_txs(rpc, &c, &r, &t, k, t.n - k < TX_PER_REQUEST ? t.n - k : TX_PER_REQUEST, &err);
    if (rc != 0)
        fail_rest(&r, rc, &err);
    int first_rc = 0;
    for (size_t i = 0; i < count; i++) {
        if (rcs[i] == 0 && to_block(&r, i, &out[i]) != 0)
            fail_block(&r, i, BP_ENOMEM, &(bp_error){.code = BP_ENOMEM, .msg = "out of memory"});
        if (rcs[i] != 0 && !first_rc)
            first_rc = rcs[i];
    }
    if (r.rows)
        for (size_t i = 0; i < count; i++)
            bp_arch_rows_free(r.rows[i]);
    free(r.rows);
    free(t.ids);
    free(t.block);
    calls_free(&c);
    return first_rc;
}

const bp_source_ops bp_source_arch = {
    .name = "arch",
    .family = BP_FAMILY_ARCH,
    .tables = &bp_tables_arch,
    .identity_call = "get_block_hash(0)",
    .identity_name = "genesis id",
    .identity = arch_identity,
    .header = arch_header,
    .fetch_range = arch_fetch_range,
    .newheads_ws = false,
    .ws_events = true,
};
