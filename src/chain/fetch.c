/* fetch.c - one whole block (header, txs, receipts, logs) in as few round trips as possible. */
#include "chain/fetch.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chain/check.h"
#include "chain/decode.h"
#include "chain/decode_stream.h"
#include "chain/json.h"
#include "chain/rpc_envelope.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/hex.h"

#include "util/log.h"

#define BP_FETCH_DEFAULT_RECEIPT_BATCH 100

/* What one fetch asks for: the block by number or by hash. */
typedef struct fetch_target {
    const char *block_method; /* eth_getBlockByNumber / eth_getBlockByHash */
    const char *param;        /* "0x1a" (no padding) or the 0x-hash */
    char label[80];           /* "block 26" / "block 0xab.." for messages */
    uint64_t number;          /* expected number, when by number */
    bool by_number;
} fetch_target;

static const struct {
    const char *word;
    unsigned bit;
} fetch_words[] = {
    {"blocks", BP_FETCH_BLOCKS},
    {"transactions", BP_FETCH_TRANSACTIONS},
    {"receipts", BP_FETCH_RECEIPTS},
    {"logs", BP_FETCH_LOGS},
};

static int parse_word(const char *w, size_t len, unsigned *bits, bp_error *err)
{
    for (size_t i = 0; i < sizeof(fetch_words) / sizeof(fetch_words[0]); i++) {
        if (strlen(fetch_words[i].word) == len && strncmp(w, fetch_words[i].word, len) == 0) {
            *bits |= fetch_words[i].bit;
            return 0;
        }
    }
    return bp_error_set(err, BP_EINVAL,
                        "fetch: unknown item '%.*s' (expected a comma-separated subset of "
                        "blocks,transactions,receipts,logs)",
                        (int)(len > 64 ? 64 : len), w);
}

int bp_fetch_parse_list(const char *list, unsigned *out, bp_error *err)
{
    unsigned bits = BP_FETCH_BLOCKS;
    const char *p = list ? list : "";
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        size_t len = strcspn(p, ",");
        while (len > 0 && isspace((unsigned char)p[len - 1]))
            len--;
        if (len > 0 && parse_word(p, len, &bits, err) != 0)
            return BP_EINVAL;
        p += strcspn(p, ",");
    }
    *out = bits;
    return 0;
}

void bp_fetch_shared_init(bp_fetch_shared *s, unsigned what)
{
    s->strict_node = false;
    s->what = what | BP_FETCH_BLOCKS;
    s->receipt_batch = BP_FETCH_DEFAULT_RECEIPT_BATCH;
}

static bool wants_receipts(const bp_fetch_shared *s)
{
    return (s->what & (BP_FETCH_RECEIPTS | BP_FETCH_LOGS)) != 0;
}

static bool wants_full_txs(const bp_fetch_shared *s)
{
    return (s->what & (BP_FETCH_TRANSACTIONS | BP_FETCH_RECEIPTS | BP_FETCH_LOGS)) != 0;
}

static int put_call(bp_buf *b, size_t id, const char *method, const char *param, const char *extra)
{
    return bp_buf_printf(
        b, "%s{\"jsonrpc\":\"2.0\",\"id\":%zu,\"method\":\"%s\",\"params\":[\"%s\"%s]}",
        id ? "," : "", id, method, param, extra);
}

/* Prefixes "block N: " unless the decoder's message already starts with it. */
static int label_error(const fetch_target *t, bp_error *err)
{
    size_t n = strlen(t->label);
    if (strncmp(err->msg, t->label, n) == 0 && err->msg[n] == ':')
        return err->code;
    return bp_error_prefix(err, "%s: ", t->label);
}

/* Checks that the node answered for the block we asked about (a load balancer may route to
 * a node on another fork or one that lags). */
static int check_identity(const fetch_target *t, const bp_block *b, bp_error *err)
{
    if (t->by_number && b->number != t->number)
        return bp_error_set(err, BP_EPARSE, "%s: the node answered block %" PRIu64, t->label,
                            b->number);
    if (!t->by_number && (!b->hash || strcasecmp(b->hash, t->param) != 0))
        return bp_error_set(err, BP_EPARSE, "%s: the node answered block hash %s", t->label,
                            b->hash ? b->hash : "(none)");
    return 0;
}

static int decode_block_answer(const fetch_target *t, yajl_val result, yajl_val error, bool full,
                               bp_block_stream *bs, bp_error *err)
{
    bp_block *b = bs->b;
    int rc;
    if (error) {
        bp_decode_rpc_error(error, t->block_method, err);
        return bp_error_prefix(err, "%s: ", t->label);
    }
    if (!result || YAJL_IS_NULL(result))
        return bp_error_set(err, BP_ENOTFOUND, "%s: not found (the node has no such block yet)",
                            t->label);
    rc = bp_decode_block_streamed(result, full, bs, err);
    if (rc != 0)
        return label_error(t, err);
    return check_identity(t, b, err);
}

/* A limit was learnt: the request is sent again within it at once (not a failure). */
#define AGAIN 1

static bool block_receipts_ok(bp_rpc *rpc, const bp_fetch_shared *shared)
{
    return wants_receipts(shared) && !atomic_load(&bp_rpc_limits_of(rpc)->no_block_receipts);
}

/* Logs once per endpoint, from whichever worker flips the flag first. */
static void note_no_block_receipts(bp_rpc *rpc, bp_fetch_shared *shared, yajl_val error)
{
    if (atomic_exchange(&bp_rpc_limits_of(rpc)->no_block_receipts, 1) != 0)
        return;
    bp_error why;
    bp_decode_rpc_error(error, "eth_getBlockReceipts", &why);
    bp_warn("rpc %s does not support eth_getBlockReceipts (%s); fetching receipts with "
            "eth_getTransactionReceipt in batches of %zu",
            bp_rpc_url(rpc), why.msg, shared->receipt_batch);
}

bool bp_fetch_batch_refused(bp_rpc *rpc, yajl_val error, size_t asked)
{
    int cap = bp_rpc_batch_cap(error, asked);
    if (cap <= 0)
        return false;
    if (bp_rpc_limits_learn_calls(bp_rpc_limits_of(rpc), cap)) {
        bp_error why;
        bp_decode_rpc_error(error, "batch", &why);
        if (cap == 1)
            bp_info("rpc %s refuses batches (%s): one call per request from now on, requests "
                    "in parallel (not a failure)",
                    bp_rpc_url(rpc), why.msg);
        else
            bp_info("rpc %s refuses a batch of %zu calls (%s): at most %d calls per request "
                    "from now on (not a failure)",
                    bp_rpc_url(rpc), asked, why.msg, cap);
    }
    return true;
}

/* AGAIN when a batch-size refusal taught the endpoint's cap (send again within it), else 0. */
static int batch_refused(bp_rpc *rpc, yajl_val error, size_t asked)
{
    return bp_fetch_batch_refused(rpc, error, asked) ? AGAIN : 0;
}

/* The answer to a range of `count` blocks was refused for its size at block `ok` (the
 * blocks before it came whole): fewer blocks per request from now on. AGAIN, or 0 when one
 * block alone is too large (nothing to learn: that block fails). */
static int answer_refused(bp_rpc *rpc, yajl_val error, size_t ok, size_t count)
{
    if (count < 2)
        return 0;
    size_t blocks = ok ? ok : count / 2;
    blocks = blocks < count ? blocks : count - 1;
    size_t bytes = bp_rpc_last_bytes(rpc);
    if (bp_rpc_limits_learn_blocks(bp_rpc_limits_of(rpc), (int)blocks, bytes)) {
        bp_error why;
        bp_decode_rpc_error(error, "batch", &why);
        bp_info("rpc %s refuses answers of about %zu KiB (%s): at most %zu blocks per request "
                "from now on (not a failure)",
                bp_rpc_url(rpc), bytes >> 10, why.msg, blocks);
    }
    return AGAIN;
}

/* The error of every slot when one object answered the whole batch, else NULL. */
static yajl_val whole_batch_error(yajl_val *errors, size_t n)
{
    return n > 1 && errors[0] && errors[0] == errors[n - 1] ? errors[0] : NULL;
}

static int check_receipt_block(const fetch_target *t, const bp_block *b, const char *tx_hash,
                               yajl_val receipt, bp_error *err)
{
    const char *path[] = {"blockHash", NULL};
    const char *h = YAJL_GET_STRING(yajl_tree_get(receipt, path, yajl_t_string));
    if (h && b->hash && strcasecmp(h, b->hash) != 0)
        return bp_error_set(err, BP_EPARSE,
                            "%s: receipt of tx %s is from block %s, not %s (reorg in progress?)",
                            t->label, tx_hash, h, b->hash);
    return 0;
}

/* [eth_getTransactionReceipt(h) for txs[first .. first+count)] as one batch body (one
 * object when count is 1: an endpoint without batches takes no array at all). */
static int build_receipt_request(bp_buf *req, const fetch_target *t, const bp_block *b,
                                 size_t first, size_t count, bp_error *err)
{
    int rc = count > 1 ? bp_buf_putc(req, '[') : 0;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        const char *h = b->txs[first + i].hash;
        /* The hash goes into JSON text unescaped: only hex may pass. */
        if (!h || !bp_hex_is_data(h, strlen(h)))
            return bp_error_set(err, BP_EPARSE, "%s: transaction %zu has no valid hash", t->label,
                                first + i);
        rc = put_call(req, i, "eth_getTransactionReceipt", h, "");
    }
    if (rc == 0 && count > 1)
        rc = bp_buf_putc(req, ']');
    if (rc != 0)
        bp_error_set(err, rc, "%s: out of memory building receipt requests", t->label);
    return rc;
}

/* Every answer of a receipt batch must be a receipt of this block. */
static int check_receipt_answers(const fetch_target *t, const bp_block *b, size_t first,
                                 size_t count, yajl_val *receipts, yajl_val *errors, bp_error *err)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        const char *h = b->txs[first + i].hash;
        if (errors[i]) {
            rc = bp_decode_rpc_error(errors[i], "eth_getTransactionReceipt", err);
            bp_error_prefix(err, "%s: receipt of tx %s: ", t->label, h);
        } else if (!receipts[i] || YAJL_IS_NULL(receipts[i])) {
            rc = bp_error_set(err, BP_ENOTFOUND, "%s: receipt of tx %s not available yet", t->label,
                              h);
        } else {
            rc = check_receipt_block(t, b, h, receipts[i], err);
        }
    }
    return rc;
}

/* Receipts of a batch refused for the answer's size (geth): fewer calls per batch, as many
 * as came whole. AGAIN, or 0 when none was refused so (or one alone was). */
static int receipts_refused(bp_rpc *rpc, yajl_val *errors, size_t count)
{
    for (size_t i = 0; count > 1 && i < count; i++) {
        if (!errors[i] || !bp_rpc_is_response_too_big(errors[i]))
            continue;
        int calls = (int)(i ? i : count / 2);
        if (bp_rpc_limits_learn_calls(bp_rpc_limits_of(rpc), calls))
            bp_info("rpc %s refuses answers of about %zu KiB: at most %d calls per request from "
                    "now on (not a failure)",
                    bp_rpc_url(rpc), bp_rpc_last_bytes(rpc) >> 10, calls);
        return AGAIN;
    }
    return 0;
}

/* One eth_getTransactionReceipt batch for txs[first .. first+count). The answer tree is
 * returned in *root and must stay alive until the receipts are decoded. AGAIN (nothing
 * kept) when the batch was refused for its size. */
static int fetch_receipt_chunk(bp_rpc *rpc, const fetch_target *t, const bp_block *b, size_t first,
                               size_t count, yajl_val *root, yajl_val *receipts, bp_error *err)
{
    bp_buf req;
    yajl_val *errors = calloc(count, sizeof(*errors));
    int rc;
    bp_buf_init(&req, 0);
    if (!errors) {
        rc = bp_error_set(err, BP_ENOMEM, "%s: out of memory for %zu receipts", t->label, count);
        goto out;
    }
    rc = build_receipt_request(&req, t, b, first, count, err);
    if (rc != 0)
        goto out;
    rc = bp_rpc_batch(rpc, req.data, req.len, count, root, receipts, errors, err);
    if (rc != 0) {
        bp_error_prefix(err, "%s: eth_getTransactionReceipt: ", t->label);
        goto out;
    }
    yajl_val whole = whole_batch_error(errors, count);
    if ((whole && (rc = batch_refused(rpc, whole, count)) == AGAIN) ||
        (rc = receipts_refused(rpc, errors, count)) == AGAIN) {
        bp_json_free(*root);
        *root = NULL;
        memset(receipts, 0, count * sizeof(*receipts)); /* they pointed into it */
        goto out;
    }
    rc = check_receipt_answers(t, b, first, count, receipts, errors, err);
out:
    bp_buf_release(&req);
    free(errors);
    return rc;
}

/* Receipts per eth_getTransactionReceipt batch: the configured size within the endpoint's
 * cap on calls. */
static size_t receipt_chunk(bp_rpc *rpc, const bp_fetch_shared *shared)
{
    size_t chunk = shared->receipt_batch ? shared->receipt_batch : BP_FETCH_DEFAULT_RECEIPT_BATCH;
    int calls = atomic_load(&bp_rpc_limits_of(rpc)->max_calls);
    return calls > 0 && (size_t)calls < chunk ? (size_t)calls : chunk;
}

/* Fallback for nodes without eth_getBlockReceipts. */
static int fetch_receipts_one_by_one(bp_rpc *rpc, const bp_fetch_shared *shared,
                                     const fetch_target *t, bp_block *b, bp_error *err)
{
    size_t n = b->tx_count, first = 0, c = 0;
    yajl_val *receipts = calloc(n ? n : 1, sizeof(*receipts));
    yajl_val *roots = calloc(n ? n : 1, sizeof(*roots)); /* at most one chunk per receipt */
    int rc = 0;
    if (!receipts || !roots) {
        rc = bp_error_set(err, BP_ENOMEM, "%s: out of memory for %zu receipts", t->label, n);
        goto out;
    }
    while (rc == 0 && first < n) {
        size_t chunk = receipt_chunk(rpc, shared);
        size_t count = n - first < chunk ? n - first : chunk;
        rc = fetch_receipt_chunk(rpc, t, b, first, count, &roots[c], receipts + first, err);
        if (rc == AGAIN) {
            rc = 0; /* the cap is lower now: the chunk is smaller */
            continue;
        }
        first += count;
        c++;
    }
    if (rc == 0) {
        rc = bp_decode_receipt_list(receipts, n, b, err);
        if (rc != 0)
            label_error(t, err);
    }
out:
    for (size_t i = 0; roots && i < c; i++)
        bp_json_free(roots[i]);
    free(roots);
    free(receipts);
    return rc;
}

/* The eth_getBlockReceipts half of the batch: receipts merged, or *need_fallback when the
 * node does not have the method. */
static int take_block_receipts(bp_rpc *rpc, bp_fetch_shared *shared, const fetch_target *t,
                               yajl_val result, yajl_val error, bp_block_stream *bs,
                               bool *need_fallback, bp_error *err)
{
    if (error && bp_rpc_is_method_missing(error)) {
        note_no_block_receipts(rpc, shared, error);
        *need_fallback = true;
        return 0;
    }
    if (error) {
        bp_decode_rpc_error(error, "eth_getBlockReceipts", err);
        return bp_error_prefix(err, "%s: ", t->label);
    }
    if (!result || YAJL_IS_NULL(result))
        return bp_error_set(err, BP_ENOTFOUND, "%s: receipts not available yet", t->label);
    int rc = bp_decode_receipts_streamed(result, bs, err);
    return rc != 0 ? label_error(t, err) : 0;
}

/* [block call] or [block call, eth_getBlockReceipts] as one body. */
static int build_block_request(bp_buf *req, const fetch_target *t, bool full, bool with_receipts)
{
    int rc = bp_buf_puts(req, with_receipts ? "[" : "");
    if (rc == 0)
        rc = put_call(req, 0, t->block_method, t->param, full ? ",true" : ",false");
    if (rc == 0 && with_receipts)
        rc = put_call(req, 1, "eth_getBlockReceipts", t->param, "");
    if (rc == 0 && with_receipts)
        rc = bp_buf_putc(req, ']');
    return rc;
}

/* eth_getBlockReceipts alone, for an endpoint that takes no batches. */
static int fetch_block_receipts_alone(bp_rpc *rpc, bp_fetch_shared *shared, const fetch_target *t,
                                      bp_block_stream *bs, bool *need_fallback, bp_error *err)
{
    yajl_val root = NULL, result = NULL, error = NULL;
    bp_buf req;
    bp_buf_init(&req, 0);
    int rc = put_call(&req, 0, "eth_getBlockReceipts", t->param, "");
    if (rc != 0) {
        bp_error_set(err, rc, "%s: out of memory building the request", t->label);
        goto out;
    }
    rc = bp_rpc_batch(rpc, req.data, req.len, 1, &root, &result, &error, err);
    if (rc != 0)
        bp_error_prefix(err, "%s: eth_getBlockReceipts: ", t->label);
    else
        rc = take_block_receipts(rpc, shared, t, result, error, bs, need_fallback, err);
out:
    bp_json_free(root);
    bp_buf_release(&req);
    return rc;
}

/* The block and (when wanted and available) eth_getBlockReceipts in one HTTP round trip,
 * decoded while it is received; two requests when the endpoint takes no batches.
 * *need_fallback is set when receipts must still come from eth_getTransactionReceipt. */
static int fetch_block_batch(bp_rpc *rpc, bp_fetch_shared *shared, const fetch_target *t,
                             bp_block_stream *bs, bool *need_fallback, bp_error *err)
{
    bool full = wants_full_txs(shared);
    bool receipts = block_receipts_ok(rpc, shared);
    bool apart = receipts && atomic_load(&bp_rpc_limits_of(rpc)->max_calls) == 1;
    bool with_receipts = receipts && !apart;
    yajl_val root = NULL, results[2] = {NULL, NULL}, errors[2] = {NULL, NULL};
    bp_stream_route sr = {.bs = bs, .count = 1, .per = with_receipts ? 2 : 1, .hashes_only = !full};
    bp_buf req;
    bp_buf_init(&req, 0);
    *need_fallback = wants_receipts(shared) && !receipts;
    int rc = build_block_request(&req, t, full, with_receipts);
    if (rc != 0) {
        bp_error_set(err, rc, "%s: out of memory building the request", t->label);
        goto out;
    }
    rc = bp_rpc_batch_stream(rpc, req.data, req.len, sr.per, &bp_stream_route_ops, &sr, &root,
                             results, errors, err);
    if (rc != 0) {
        bp_error_prefix(err, "%s: ", t->label);
        goto out;
    }
    /* One error object for the whole batch (nothing was streamed into the block): some
     * gateways refuse a batch for one unknown method, others refuse batches. */
    yajl_val whole = with_receipts ? whole_batch_error(errors, 2) : NULL;
    if (whole && bp_rpc_is_method_missing(whole))
        note_no_block_receipts(rpc, shared, whole);
    if (whole && (bp_rpc_is_method_missing(whole) || batch_refused(rpc, whole, 2) == AGAIN)) {
        bp_json_free(root);
        root = NULL;
        rc = fetch_block_batch(rpc, shared, t, bs, need_fallback, err); /* no loop */
        goto out;
    }
    rc = decode_block_answer(t, results[0], errors[0], full, bs, err);
    /* geth cuts a batch answer past its size cap, never a single call's: the receipts alone */
    if (rc == 0 && with_receipts && errors[1] && bp_rpc_is_response_too_big(errors[1]))
        apart = true;
    else if (rc == 0 && with_receipts)
        rc = take_block_receipts(rpc, shared, t, results[1], errors[1], bs, need_fallback, err);
    if (rc == 0 && apart)
        rc = fetch_block_receipts_alone(rpc, shared, t, bs, need_fallback, err);
out:
    bp_json_free(root);
    bp_buf_release(&req);
    return rc;
}

/* The block is whole: its invariants (chain/check.h); a bad answer names the endpoint. */
static int finish_block(bp_rpc *rpc, const bp_fetch_shared *shared, bp_block *b, int rc,
                        bp_error *err)
{
    if (rc == 0)
        return bp_block_check(b, bp_rpc_url(rpc), shared->strict_node, bp_rpc_limits_of(rpc), err);
    if (rc == BP_EPARSE && strncmp(err->msg, "rpc ", 4) != 0)
        bp_error_prefix(err, "rpc %s: ", bp_rpc_url(rpc));
    return rc;
}

static int fetch_target_block(bp_rpc *rpc, bp_fetch_shared *shared, const fetch_target *t,
                              bp_block **out, bp_error *err)
{
    bool need_fallback = false;
    bp_block *b = bp_block_new();
    bp_block_stream bs;
    int rc = 0;
    *out = NULL;
    bp_block_stream_init(&bs, b);
    if (!b) {
        rc = bp_error_set(err, BP_ENOMEM, "%s: out of memory", t->label);
        goto out;
    }
    rc = fetch_block_batch(rpc, shared, t, &bs, &need_fallback, err);
    if (rc == 0 && need_fallback)
        rc = fetch_receipts_one_by_one(rpc, shared, t, b, err);
    rc = finish_block(rpc, shared, b, rc, err);
    if (rc == 0) {
        *out = b;
        b = NULL;
    }
out:
    bp_block_stream_release(&bs);
    bp_block_free(b);
    return rc;
}

int bp_fetch_block(bp_rpc *rpc, bp_fetch_shared *shared, uint64_t n, bp_block **out, bp_error *err)
{
    char hex[20];
    fetch_target t = {
        .block_method = "eth_getBlockByNumber", .param = hex, .number = n, .by_number = true};
    /* Lower-case, unpadded: what nodes expect and what the recorded fixtures are keyed by. */
    bp_u64_to_hex(n, hex);
    snprintf(t.label, sizeof(t.label), "block %" PRIu64, n);
    return fetch_target_block(rpc, shared, &t, out, err);
}

int bp_fetch_block_by_hash(bp_rpc *rpc, bp_fetch_shared *shared, const char *hash, bp_block **out,
                           bp_error *err)
{
    char lower[BP_HASH_STRLEN];
    fetch_target t = {.block_method = "eth_getBlockByHash", .param = lower};
    *out = NULL;
    if (!hash || strlen(hash) != BP_HASH_STRLEN - 1 || !bp_hex_is_data(hash, strlen(hash)))
        return bp_error_set(err, BP_EINVAL, "block %.80s: not a block hash", hash ? hash : "");
    for (size_t i = 0; i < BP_HASH_STRLEN; i++)
        lower[i] = (char)tolower((unsigned char)hash[i]);
    snprintf(t.label, sizeof(t.label), "block %s", lower);
    return fetch_target_block(rpc, shared, &t, out, err);
}

static void number_target(fetch_target *t, char hex[20], uint64_t n)
{
    memset(t, 0, sizeof(*t));
    t->block_method = "eth_getBlockByNumber";
    t->param = hex;
    t->number = n;
    t->by_number = true;
    bp_u64_to_hex(n, hex);
    snprintf(t->label, sizeof(t->label), "block %" PRIu64, n);
}

/* [block(first), receipts(first), block(first+1), ...] as one body; ids are positions. */
static int build_range_request(bp_buf *req, uint64_t first, size_t count, bool full,
                               bool with_receipts)
{
    size_t per = with_receipts ? 2 : 1;
    int rc = bp_buf_putc(req, '[');
    for (size_t i = 0; rc == 0 && i < count; i++) {
        char hex[20];
        bp_u64_to_hex(first + i, hex);
        rc = put_call(req, i * per, "eth_getBlockByNumber", hex, full ? ",true" : ",false");
        if (rc == 0 && with_receipts)
            rc = put_call(req, i * per + 1, "eth_getBlockReceipts", hex, "");
    }
    return rc == 0 ? bp_buf_putc(req, ']') : rc;
}

/* Decodes block i of a range answer (and its receipts, with the fallback when needed). */
static int take_range_block(bp_rpc *rpc, bp_fetch_shared *shared, uint64_t n, bool full,
                            bool with_receipts, bp_block_stream *bs, yajl_val *results,
                            yajl_val *errors, bp_error *err)
{
    char hex[20];
    fetch_target t;
    number_target(&t, hex, n);
    bool need_fallback = wants_receipts(shared) && !with_receipts;
    int rc = decode_block_answer(&t, results[0], errors[0], full, bs, err);
    if (rc == 0 && with_receipts)
        rc = take_block_receipts(rpc, shared, &t, results[1], errors[1], bs, &need_fallback, err);
    if (rc == 0 && need_fallback)
        rc = fetch_receipts_one_by_one(rpc, shared, &t, bs->b, err);
    return finish_block(rpc, shared, bs->b, rc, err);
}

static int fail_range(uint64_t first, size_t count, int rc, const bp_error *why, int *rcs,
                      bp_error *errs)
{
    for (size_t i = 0; i < count; i++) {
        rcs[i] = rc;
        errs[i] = *why;
        bp_error_prefix(&errs[i], "blocks %" PRIu64 "..%" PRIu64 ": ", first, first + count - 1);
    }
    return rc;
}

/* Every block of the range exists before the request: objects are decoded into them as the
 * answer arrives. */
static int range_blocks(bp_block_stream *bs, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        bp_block *b = bp_block_new();
        bp_block_stream_init(&bs[i], b);
        if (!b)
            return BP_ENOMEM;
    }
    return 0;
}

static void range_release(bp_block_stream *bs, size_t count)
{
    for (size_t i = 0; bs && i < count; i++) {
        bp_block_stream_release(&bs[i]);
        bp_block_free(bs[i].b);
    }
    free(bs);
}

/* What a batch answer taught about the endpoint: a method it lacks, a batch it refuses, an
 * answer too large for it. AGAIN when the range must be asked for again (nothing kept). */
static int range_lesson(bp_rpc *rpc, bp_fetch_shared *shared, bool with_receipts, yajl_val *errors,
                        size_t n, size_t per)
{
    yajl_val whole = whole_batch_error(errors, n);
    if (whole && with_receipts && bp_rpc_is_method_missing(whole)) {
        note_no_block_receipts(rpc, shared, whole);
        return AGAIN; /* the flag is set now: the retry asks for blocks only */
    }
    if (whole && batch_refused(rpc, whole, n) == AGAIN)
        return AGAIN;
    for (size_t i = 0; i < n; i++)
        if (errors[i] && bp_rpc_is_response_too_big(errors[i]))
            return answer_refused(rpc, errors[i], whole ? 0 : i / per, n / per);
    return 0;
}

/* One request for blocks first .. first+count-1; AGAIN when a limit was learnt. */
static int range_once(bp_rpc *rpc, bp_fetch_shared *shared, uint64_t first, size_t count,
                      bp_block **out, int *rcs, bp_error *errs)
{
    bool full = wants_full_txs(shared);
    bool with_receipts = block_receipts_ok(rpc, shared);
    size_t per = with_receipts ? 2 : 1, n = count * per;
    yajl_val root = NULL, *results = calloc(n, sizeof(*results)),
             *errors = calloc(n, sizeof(*errors));
    bp_block_stream *bs = calloc(count, sizeof(*bs));
    bp_stream_route sr = {.bs = bs, .count = count, .per = per, .hashes_only = !full};
    bp_buf req;
    bp_error e = {0};
    int rc;
    bp_buf_init(&req, 0);
    if (!results || !errors || !bs || range_blocks(bs, count) ||
        build_range_request(&req, first, count, full, with_receipts)) {
        bp_error_set(&e, BP_ENOMEM, "out of memory building the request");
        rc = fail_range(first, count, BP_ENOMEM, &e, rcs, errs);
        goto out;
    }
    rc = bp_rpc_batch_stream(rpc, req.data, req.len, n, &bp_stream_route_ops, &sr, &root, results,
                             errors, &e);
    if (rc != 0) {
        rc = fail_range(first, count, rc, &e, rcs, errs);
        goto out;
    }
    rc = range_lesson(rpc, shared, with_receipts, errors, n, per);
    for (size_t i = 0; rc == 0 && i < count; i++) {
        rcs[i] = take_range_block(rpc, shared, first + i, full, with_receipts, &bs[i],
                                  results + i * per, errors + i * per, &errs[i]);
        if (rcs[i] == 0) {
            bp_block_stream_release(&bs[i]);
            out[i] = bs[i].b;
            bs[i].b = NULL;
        }
    }
out:
    bp_json_free(root);
    range_release(bs, count);
    bp_buf_release(&req);
    free(results);
    free(errors);
    for (size_t i = 0; rc == 0 && i < count; i++)
        if (rcs[i] != 0)
            rc = rcs[i];
    return rc;
}

/* Blocks per request within what the endpoint has shown it takes (at least 1: a block
 * alone goes as two single calls when it takes no batches). */
static size_t blocks_per_request(bp_rpc *rpc, const bp_fetch_shared *shared, size_t count)
{
    bp_rpc_limits *l = bp_rpc_limits_of(rpc);
    size_t per = block_receipts_ok(rpc, shared) ? 2 : 1, step = count;
    int calls = atomic_load(&l->max_calls), blocks = atomic_load(&l->max_blocks);
    if (calls > 0 && (size_t)calls / per < step)
        step = (size_t)calls / per;
    if (blocks > 0 && (size_t)blocks < step)
        step = (size_t)blocks;
    return step ? step : 1;
}

/* After a failed request the blocks after it are not asked for: they fail alike (a
 * transport error would only repeat; a 429 holds them back all the same). */
static void fail_after(uint64_t first, size_t from, size_t count, int rc, const bp_error *why,
                       int *rcs, bp_error *errs)
{
    for (size_t i = from; i < count; i++) {
        rcs[i] = rc;
        bp_error_set(&errs[i], rc,
                     "block %" PRIu64 ": not asked for, an earlier request failed: %s", first + i,
                     why->msg);
    }
}

int bp_fetch_range(bp_rpc *rpc, bp_fetch_shared *shared, uint64_t first, size_t count,
                   bp_block **out, int *rcs, bp_error *errs)
{
    for (size_t i = 0; i < count; i++) {
        out[i] = NULL;
        rcs[i] = 0;
    }
    size_t done = 0;
    while (done < count) {
        size_t step = blocks_per_request(rpc, shared, count - done);
        int rc;
        if (step == 1) {
            rc = rcs[done] = bp_fetch_block(rpc, shared, first + done, &out[done], &errs[done]);
        } else {
            rc = range_once(rpc, shared, first + done, step, out + done, rcs + done, errs + done);
            if (rc == AGAIN)
                continue; /* within the limit learnt */
        }
        if (rc != 0) {
            size_t k = done;
            while (rcs[k] == 0)
                k++;
            fail_after(first, done + step, count, rcs[k], &errs[k], rcs, errs);
            return rc;
        }
        done += step;
    }
    return 0;
}
