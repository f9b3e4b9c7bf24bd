/* decode_stream.c - a block's transactions and receipts decoded while the answer is parsed
 * (bp_block_stream), and the routing of a batch answer's objects to their blocks. */
#include "chain/decode_stream.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chain/decode_internal.h"
#include "util/arena.h"

/* ---- streaming: transactions and receipts decoded as their objects arrive ---- */

/* Streamed and streamed-into trees are bp_json's: every string node has its length. Errors go
 * to err; its code stays set, so the rest of that block's elements are skipped. */
static void stream_dctx(dctx *c, bp_block_stream *s, bp_error *err)
{
    bp_dec_ctx_init(c, s->b, NULL, err);
    c->lens = true;
    c->intern = &s->intern;
}

static int dctx_done(dctx *c, int rc)
{
    if (c->g)
        yajl_gen_free(c->g);
    return rc;
}

/* Past this a vector grows by an eighth, not double: malloc maps it (budget.c's 1 MiB mmap
 * threshold), so realloc moves its pages (mremap) and copies nothing, and the zeroed room
 * beyond the last element is resident until the block adopts it (adopt_vec gives it back):
 * doubled, a 50,000-tx block's vectors had 11 MiB of it at the decode's peak. */
#define GROW_SLOW_BYTES ((size_t)1 << 20)

/* Grows *cap until n fit; the vector stays malloc'd (and moves) until the block adopts it. */
static int grow(void **v, size_t *cap, size_t n, size_t size)
{
    if (n <= *cap)
        return BP_OK;
    size_t cap2 = *cap ? *cap : 64;
    while (cap2 < n)
        cap2 = cap2 * size < GROW_SLOW_BYTES ? 2 * cap2 : cap2 + cap2 / 8;
    if (cap2 > SIZE_MAX / size)
        return BP_ENOMEM;
    void *p = realloc(*v, cap2 * size);
    if (!p)
        return BP_ENOMEM;
    memset((char *)p + *cap * size, 0, (cap2 - *cap) * size);
    *v = p;
    *cap = cap2;
    return BP_OK;
}

bool bp_block_stream_start_txs(bp_block_stream *s, yajl_val number, yajl_val hash, yajl_val ts)
{
    static const bp_field id[] = {
        FLD("number", K_U64, MUST, bp_block, number),
        FLD("hash", K_HASH, MUST, bp_block, hash),
        FLD("timestamp", K_U64, MUST, bp_block, timestamp),
    };
    yajl_val v[] = {number, hash, ts};
    bp_error scratch;
    dctx c;
    if (s->txs_err.code != BP_OK || s->txs_on || s->n_txs)
        return s->txs_on;
    /* A bad value here is left for the whole-block decode to report, with its context. */
    stream_dctx(&c, s, &scratch);
    for (size_t i = 0; i < NFIELDS(id); i++)
        if (!v[i] || !YAJL_IS_STRING(v[i]) ||
            bp_dec_put_field(&c, &id[i], v[i], (char *)s->b, NULL))
            return false;
    return s->txs_on = true;
}

int bp_block_stream_tx(bp_block_stream *s, size_t index, yajl_val tx)
{
    dctx c;
    if (s->txs_err.code != BP_OK)
        return s->txs_err.code;
    stream_dctx(&c, s, &s->txs_err);
    int rc = index == s->n_txs
                 ? BP_OK
                 : bp_error_set(c.err, BP_EPARSE, "transaction %zu: out of order", index);
    if (rc == BP_OK && grow((void **)&s->txs, &s->cap_txs, index + 1, sizeof(bp_tx)) != BP_OK)
        rc = bp_error_set(c.err, BP_ENOMEM, "transactions: out of memory");
    if (rc == BP_OK)
        rc = bp_dec_tx(&c, tx, index, &s->txs[index]);
    if (rc == BP_OK)
        s->n_txs++;
    return dctx_done(&c, rc);
}

/* Receipts are streamed only after streamed transactions: the block's answer then came first
 * and is complete (the receipts are another answer), so the txs they merge into are final. */
bool bp_block_stream_start_receipts(bp_block_stream *s)
{
    if (s->txs_err.code == BP_OK && !s->receipts_on && s->txs_on && !s->n_seen) {
        s->receipts_on = true;
        s->b->txs = s->txs;
        s->b->transaction_count = s->n_txs;
    }
    return s->receipts_on;
}

static size_t log_len(yajl_val r)
{
    yajl_val logs = YAJL_IS_OBJECT(r) ? bp_dec_object_get(r, "logs") : NULL;
    return YAJL_IS_ARRAY(logs) ? logs->u.array.len : 0;
}

int bp_block_stream_receipt(bp_block_stream *s, size_t index, yajl_val r)
{
    dctx c;
    bp_block *b = s->b;
    s->n_seen++; /* a wrong count is reported before any decode error, as for a tree */
    if (s->receipts_err.code != BP_OK || index > b->transaction_count)
        return s->receipts_err.code;
    stream_dctx(&c, s, &s->receipts_err);
    int rc = index + 1 == s->n_seen
                 ? BP_OK
                 : bp_error_set(c.err, BP_EPARSE, "receipt %zu: out of order", index);
    if (rc == BP_OK &&
        grow((void **)&s->logs, &s->cap_logs, s->n_logs + log_len(r), sizeof(bp_log)) != BP_OK)
        rc = bp_error_set(c.err, BP_ENOMEM, "logs: out of memory");
    b->logs = s->logs; /* bp_dec_receipt writes logs[n_logs..] */
    if (rc == BP_OK && index == b->transaction_count)
        rc = bp_dec_state_sync(&c, r, index, &s->sync, &s->n_logs);
    else if (rc == BP_OK)
        rc = bp_dec_receipt(&c, r, index, &s->n_logs);
    s->has_sync |= rc == BP_OK && index == b->transaction_count;
    return dctx_done(&c, rc);
}

/* The block owns v (n elements of size, room for cap) from now on. The spare room is given
 * back first: grow doubles, and the room zeroed beyond the last element is resident and
 * counted (the memory accounting counts the bytes adopted): 9 MiB of a 50,000-tx block's
 * transactions (room for 65,536) and 2 MiB of its logs. A vector malloc mapped shrinks in
 * place (mremap); a smaller one costs a copy at most. */
static int adopt_vec(bp_block *b, void **v, size_t n, size_t cap, size_t size, void **owned,
                     bp_error *err)
{
    if (!*v)
        return BP_OK;
    if (n && n < cap) {
        void *fit = realloc(*v, n * size);
        if (fit) { /* else it keeps its room */
            *v = *owned = fit;
            cap = n;
        }
    }
    if (bp_arena_adopt_fn(b->arena, *v, cap * size, free) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    *owned = *v;
    *v = NULL;
    return BP_OK;
}

/* Streamed elements are gone from the tree; anything left there is what was not an object. */
static int streamed_rest(yajl_val arr, const char *what, bp_error *err)
{
    if (!arr || !YAJL_IS_ARRAY(arr) || arr->u.array.len == 0)
        return BP_OK;
    return bp_error_set(err, BP_EPARSE, "%s: expected objects, got %s", what,
                        bp_json_type_name(arr->u.array.values[0]));
}

static int finish_streamed_txs(dctx *c, bp_block_stream *s, yajl_val arr)
{
    bp_block *b = s->b;
    int rc = streamed_rest(arr, "transactions", c->err);
    if (rc == BP_OK)
        rc = adopt_vec(b, (void **)&s->txs, s->n_txs, s->cap_txs, sizeof(bp_tx), (void **)&b->txs,
                       c->err);
    if (rc != BP_OK)
        return rc;
    b->txs = s->n_txs ? b->txs : NULL;
    b->transaction_count = b->tx_count = s->n_txs;
    return BP_OK;
}

static int decode_streamed_block(yajl_val result, bp_block_stream *s, bp_error *err)
{
    dctx c;
    stream_dctx(&c, s, err);
    yajl_val keep[BP_DEC_BLOCK_FIELDS];
    bp_tx *txs = s->txs; /* adopted below: decode_fields must not see a half-made block */
    /* In the tree decoder's order: header, uncles, transactions, withdrawals. */
    int rc = bp_dec_object(&c, result, bp_dec_block_fields, BP_DEC_BLOCK_FIELDS, s->b, keep,
                           &s->b->extra_json);
    yajl_val uncles = keep[BK_UNCLES];
    if (rc == BP_OK && uncles && !YAJL_IS_ARRAY(uncles))
        rc = bp_dec_wrong_type(&c, "uncles", "an array", uncles);
    s->b->uncle_count = rc == BP_OK && uncles ? uncles->u.array.len : 0;
    s->b->txs = txs;
    if (rc == BP_OK && s->txs_err.code != BP_OK)
        rc = (*err = s->txs_err).code;
    /* The streamed txs took the header of the answer they were in: it must be this one. */
    if (rc == BP_OK && s->n_txs &&
        (txs[0].block_number != s->b->number || !bp_dec_hex_equal(txs[0].block_hash, s->b->hash)))
        rc = bp_error_set(err, BP_EPARSE, "transactions streamed from another answer");
    if (rc == BP_OK)
        rc = finish_streamed_txs(&c, s, keep[BK_TRANSACTIONS]);
    if (rc == BP_OK)
        rc = bp_dec_withdrawals(&c, keep[BK_WITHDRAWALS]);
    if (rc != BP_OK)
        bp_dec_prefix_block(err, result, s->b);
    return dctx_done(&c, rc);
}

int bp_decode_block_streamed(yajl_val result, bool full, bp_block_stream *s, bp_error *err)
{
    return s->txs_on && result && YAJL_IS_OBJECT(result)
               ? decode_streamed_block(result, s, err)
               : bp_decode_block_in(result, full, NULL, s->b, err);
}

int bp_decode_receipts_streamed(yajl_val result, bp_block_stream *s, bp_error *err)
{
    bp_block *b = s->b;
    if (!s->receipts_on || !result || !YAJL_IS_ARRAY(result)) /* not streamed, or its error */
        return bp_decode_block_receipts_in(result, NULL, b, err);
    size_t n = s->n_seen + result->u.array.len;
    int rc = BP_OK;
    if (n != b->transaction_count && n != b->transaction_count + 1)
        rc = bp_error_set(err, BP_EPARSE, "%zu receipts for %zu transactions", n,
                          b->transaction_count);
    else if (s->receipts_err.code != BP_OK)
        rc = (*err = s->receipts_err).code;
    else if (result->u.array.len)
        rc = bp_error_set(err, BP_EPARSE, "receipt %zu: expected a receipt object, got %s",
                          s->n_seen, bp_json_type_name(result->u.array.values[0]));
    if (rc != BP_OK && n == b->transaction_count + 1) /* as the tree decoder says it */
        bp_error_prefix(err, "%zu receipts for %zu transactions: ", n, b->transaction_count);
    if (rc == BP_OK)
        rc = adopt_vec(b, (void **)&s->logs, s->n_logs, s->cap_logs, sizeof(bp_log),
                       (void **)&b->logs, err);
    if (rc == BP_OK && s->has_sync) {
        dctx c;
        stream_dctx(&c, s, err);
        rc = dctx_done(&c, bp_dec_append_tx(&c, &s->sync));
        s->has_sync = false;
    }
    if (rc == BP_OK) {
        b->logs = s->n_logs ? b->logs : NULL;
        b->log_count = s->n_logs;
        b->has_receipts = true;
    } else {
        b->logs = NULL;
        b->log_count = 0;
        bp_error_prefix(err, "block %" PRIu64 ": ", b->number);
    }
    return rc;
}

void bp_block_stream_init(bp_block_stream *s, bp_block *b)
{
    *s = (bp_block_stream){.b = b};
}

void bp_block_stream_release(bp_block_stream *s)
{
    if (s->b && s->b->txs == s->txs)
        s->b->txs = NULL;
    if (s->b && s->b->logs == s->logs)
        s->b->logs = NULL;
    free(s->txs);
    free(s->logs);
    s->txs = NULL;
    s->logs = NULL;
    bp_intern_free(&s->intern);
}

/* ---- streaming: routing the objects of a batch answer to their blocks ---- */

enum { ELEM_TX = 0, ELEM_RECEIPT = 1 };

/* The response's numeric id as a slot; -1 when it has none yet (written after the result, or
 * left out: place_batch then matches by position, which a batch answered out of order
 * would get wrong while streaming) or an unusable one. */
static long long route_slot(const bp_json_stream *s, size_t level, size_t n)
{
    yajl_val id = bp_json_stream_member(s, level, "id");
    if (!id || !YAJL_IS_INTEGER(id) || id->u.number.i < 0 || (size_t)id->u.number.i >= n)
        return -1;
    return id->u.number.i;
}

static void *stream_target(size_t block, int kind)
{
    return (void *)(uintptr_t)((block << 1 | (size_t)kind) + 1);
}

static bool named(const bp_json_stream *s, size_t level, const char *name)
{
    const char *k = bp_json_stream_name(s, level);
    return k && strcmp(k, name) == 0;
}

/* Picks the objects of result.transactions (a block answer) and of result (a receipts
 * answer); r is the level of the JSON-RPC response object (1 in a batch, 0 alone). */
static void *route_want(void *ud, const bp_json_stream *s)
{
    const bp_stream_route *sr = ud;
    size_t d = bp_json_stream_depth(s), r = bp_json_stream_is_array(s, 0) ? 1 : 0;
    bool tx = d == r + 4 && named(s, r + 2, "transactions") && named(s, r + 1, "result") &&
              !bp_json_stream_is_array(s, r + 1);
    bool receipt = d == r + 3 && named(s, r + 1, "result") && bp_json_stream_is_array(s, r + 1);
    if (!tx && !receipt)
        return NULL;
    long long slot = route_slot(s, r, sr->count * sr->per);
    if (slot < 0)
        return NULL;
    size_t i = (size_t)slot / sr->per;
    bool receipts_slot = sr->per == 2 && slot % 2 == 1;
    bp_block_stream *bs = &sr->bs[i];
    if (tx && !receipts_slot && !sr->hashes_only) {
        size_t res = r + 1;
        if (!bp_block_stream_start_txs(bs, bp_json_stream_member(s, res, "number"),
                                       bp_json_stream_member(s, res, "hash"),
                                       bp_json_stream_member(s, res, "timestamp")))
            return NULL;
        return stream_target(i, ELEM_TX);
    }
    if (receipt && receipts_slot && bp_block_stream_start_receipts(bs))
        return stream_target(i, ELEM_RECEIPT);
    return NULL;
}

/* A bad element is kept in its block's stream state (reported with that block); the rest of
 * the answer, other blocks included, goes on. */
static int route_elem(void *ud, void *target, size_t index, yajl_val elem)
{
    const bp_stream_route *sr = ud;
    size_t t = (size_t)(uintptr_t)target - 1;
    bp_block_stream *bs = &sr->bs[t >> 1];
    if ((t & 1) == ELEM_RECEIPT)
        (void)bp_block_stream_receipt(bs, index, elem);
    else
        (void)bp_block_stream_tx(bs, index, elem);
    return 0;
}

const bp_json_stream_ops bp_stream_route_ops = {.want = route_want, .on_elem = route_elem};
