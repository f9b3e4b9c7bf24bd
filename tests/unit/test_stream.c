/* test_stream.c - answers decoded while they are parsed (bp_json_stream + bp_stream_route, as
 * fetch does) give exactly the blocks and the errors the whole-tree decoder gives, however
 * the text is cut into pieces and in whatever order the node wrote its keys and answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "blockpipe/columns.h"
#include "chain/decode_stream.h"
#include "chain/rpc_envelope.h"
#include "chain/json.h"
#include "sim/chain.h"
#include "sim/node.h"
#include "testfile.h"
#include "util/buf.h"

#define T0 1000.0
#define MAX_BLOCKS 8

/* ---- every field of a block as text, to compare two blocks whole ---- */

static void put_s(bp_buf *o, const char *k, const char *v)
{
    bp_buf_printf(o, "%s=%s\n", k, v ? v : "(null)");
}

static void put_h(bp_buf *o, const char *k, const bp_hexb *v)
{
    char text[BP_HEXB_TEXT];
    bp_value x = bp_val_hexb(v); /* a long one as its text */
    if (x.kind == BP_VAL_HEX)
        bp_hexb_text(text, x.h);
    put_s(o, k, x.kind == BP_VAL_HEX ? text : x.s);
}

static void put_u(bp_buf *o, const char *k, uint64_t v)
{
    bp_buf_printf(o, "%s=%llu\n", k, (unsigned long long)v);
}

static void put_q(bp_buf *o, const char *k, bp_qty q)
{
    bp_buf_printf(o, "%s=%d:%llx.%llx.%llx.%llx\n", k, q.set, (unsigned long long)q.v.w[3],
                  (unsigned long long)q.v.w[2], (unsigned long long)q.v.w[1],
                  (unsigned long long)q.v.w[0]);
}

static void put_o(bp_buf *o, const char *k, bp_opt_u64 v)
{
    bp_buf_printf(o, "%s=%d:%llu\n", k, v.set, (unsigned long long)v.v);
}

static void dump_tx(bp_buf *o, const bp_tx *t)
{
    const bp_tx_rare *rare = t->rare ? t->rare : &(const bp_tx_rare){0};
    put_s(o, "hash", t->hash);
    put_s(o, "block_hash", t->block_hash);
    put_u(o, "block_number", t->block_number);
    put_u(o, "block_timestamp", t->block_timestamp);
    put_u(o, "index", t->transaction_index);
    put_s(o, "from", t->from_address);
    put_s(o, "to", t->to_address);
    put_u(o, "nonce", t->nonce);
    put_u(o, "gas", t->gas);
    put_q(o, "value", t->value);
    put_q(o, "gas_price", t->gas_price);
    put_q(o, "max_fee", t->max_fee_per_gas);
    put_q(o, "max_prio", t->max_priority_fee_per_gas);
    put_q(o, "max_blob", rare->max_fee_per_blob_gas);
    put_o(o, "type", t->transaction_type);
    put_o(o, "chain_id", t->chain_id);
    put_h(o, "input", t->input);
    put_s(o, "v", t->v);
    put_h(o, "r", t->r);
    put_h(o, "s", t->s);
    put_s(o, "y", t->y_parity);
    put_s(o, "access", t->access_list_json);
    put_s(o, "blobs", rare->blob_versioned_hashes_json);
    put_s(o, "auth", rare->authorization_list_json);
    put_s(o, "raw", rare->raw_json);
    put_u(o, "has_receipt", t->has_receipt);
    put_u(o, "cum_gas", t->receipt_cumulative_gas_used);
    put_u(o, "gas_used", t->receipt_gas_used);
    put_s(o, "contract", t->receipt_contract_address);
    put_s(o, "root", rare->receipt_root);
    put_o(o, "status", t->receipt_status);
    put_q(o, "eff_price", t->receipt_effective_gas_price);
    put_o(o, "blob_gas", rare->receipt_blob_gas_used);
    put_q(o, "blob_price", rare->receipt_blob_gas_price);
    put_h(o, "bloom", t->receipt_logs_bloom);
    put_u(o, "log_offset", t->log_offset);
    put_u(o, "log_count", t->log_count);
}

static void dump_log(bp_buf *o, const bp_log *l)
{
    put_u(o, "log_index", l->log_index);
    put_u(o, "tx_index", l->transaction_index);
    put_s(o, "tx_hash", l->transaction_hash);
    put_s(o, "address", l->address);
    put_s(o, "data", l->data);
    put_u(o, "topic_count", l->topic_count);
    for (int i = 0; i < 4; i++)
        put_s(o, "topic", l->topics[i]);
    put_u(o, "removed", l->removed);
}

static void dump_header(bp_buf *o, const bp_block *b)
{
    put_u(o, "number", b->number);
    put_s(o, "hash", b->hash);
    put_s(o, "parent", b->parent_hash);
    put_s(o, "nonce", b->nonce);
    put_s(o, "uncles", b->sha3_uncles);
    put_s(o, "bloom", b->logs_bloom);
    put_s(o, "tx_root", b->transactions_root);
    put_s(o, "state", b->state_root);
    put_s(o, "receipts_root", b->receipts_root);
    put_s(o, "miner", b->miner);
    put_s(o, "mix", b->mix_hash);
    put_q(o, "difficulty", b->difficulty);
    put_q(o, "total_difficulty", b->total_difficulty);
    put_o(o, "size", b->size);
    put_s(o, "extra", b->extra_data);
    put_u(o, "gas_limit", b->gas_limit);
    put_u(o, "gas_used", b->gas_used);
    put_u(o, "timestamp", b->timestamp);
    put_q(o, "base_fee", b->base_fee_per_gas);
    put_s(o, "w_root", b->withdrawals_root);
    put_o(o, "blob_gas", b->blob_gas_used);
    put_o(o, "excess", b->excess_blob_gas);
    put_s(o, "beacon", b->parent_beacon_block_root);
    put_s(o, "requests", b->requests_hash);
    put_u(o, "uncle_count", b->uncle_count);
    put_u(o, "transaction_count", b->transaction_count);
    put_u(o, "tx_count", b->tx_count);
    put_u(o, "has_receipts", b->has_receipts);
    put_u(o, "log_count", b->log_count);
    put_u(o, "has_withdrawals", b->has_withdrawals);
    put_u(o, "withdrawal_count", b->withdrawal_count);
}

static char *dump_block(const bp_block *b)
{
    bp_buf o;
    bp_buf_init(&o, 0);
    dump_header(&o, b);
    for (size_t i = 0; i < b->tx_count; i++)
        dump_tx(&o, &b->txs[i]);
    for (size_t i = 0; i < b->log_count; i++)
        dump_log(&o, &b->logs[i]);
    for (size_t i = 0; i < b->withdrawal_count; i++) {
        put_u(&o, "w_index", b->withdrawals[i].index);
        put_u(&o, "w_validator", b->withdrawals[i].validator_index);
        put_s(&o, "w_address", b->withdrawals[i].address);
        put_u(&o, "w_amount", b->withdrawals[i].amount);
    }
    bp_buf_putc(&o, '\0');
    return o.data; /* bp_buf storage is malloc'd: the caller frees it */
}

/* Blocks asked with full transactions (fetch's normal case) or hashes only. */
static bool g_full = true;

/* ---- the two ways of decoding one answer of `count` blocks (+ receipts when per is 2) ---- */

typedef struct outcome {
    int envelope_rc; /* the answer as a whole */
    bp_error envelope_err;
    int rc[MAX_BLOCKS];
    bp_error err[MAX_BLOCKS];
    char *dump[MAX_BLOCKS];
    size_t count;
} outcome;

static void outcome_free(outcome *o)
{
    for (size_t i = 0; i < o->count; i++)
        free(o->dump[i]);
}

/* What fetch does with block i once the answer is parsed. */
static void finish_block(outcome *o, size_t i, bool receipts, yajl_val *results, yajl_val *errors,
                         bp_block_stream *bs)
{
    int rc = errors[0] ? bp_decode_rpc_error(errors[0], "block", &o->err[i])
                       : bp_decode_block_streamed(results[0], g_full, bs, &o->err[i]);
    if (rc == 0 && receipts)
        rc = errors[1] ? bp_decode_rpc_error(errors[1], "receipts", &o->err[i])
                       : bp_decode_receipts_streamed(results[1], bs, &o->err[i]);
    bp_block_stream_release(bs);
    o->rc[i] = rc;
    if (rc == 0)
        o->dump[i] = dump_block(bs->b);
}

/* chunk 0: the whole-tree decoder (no streaming); else streamed in pieces of chunk bytes. */
static void decode(const char *text, size_t count, bool receipts, size_t chunk, outcome *o)
{
    size_t per = receipts ? 2 : 1, n = count * per, len = strlen(text);
    bp_block_stream bs[MAX_BLOCKS];
    bp_stream_route sr = {.bs = bs, .count = count, .per = per, .hashes_only = !g_full};
    yajl_val root = NULL, results[2 * MAX_BLOCKS], errors[2 * MAX_BLOCKS];
    memset(o, 0, sizeof(*o));
    o->count = count;
    for (size_t i = 0; i < count; i++)
        bp_block_stream_init(&bs[i], bp_block_new());
    if (chunk == 0) {
        o->envelope_rc =
            bp_decode_rpc_response(text, len, n, &root, results, errors, &o->envelope_err);
    } else {
        bp_json_stream *s = bp_json_stream_new(&bp_stream_route_ops, &sr);
        assert_non_null(s);
        for (size_t off = 0; off < len; off += chunk)
            if (bp_json_stream_feed(s, text + off, len - off < chunk ? len - off : chunk))
                break;
        char ebuf[256];
        root = bp_json_stream_finish(s, ebuf, sizeof(ebuf));
        bp_json_stream_free(s);
        o->envelope_rc = root ? bp_decode_rpc_tree(root, n, results, errors, &o->envelope_err)
                              : bp_error_set(&o->envelope_err, BP_EPARSE, "not JSON: %s", ebuf);
    }
    for (size_t i = 0; o->envelope_rc == 0 && i < count; i++)
        finish_block(o, i, receipts, results + i * per, errors + i * per, &bs[i]);
    for (size_t i = 0; i < count; i++) {
        bp_block_stream_release(&bs[i]);
        bp_block_free(bs[i].b);
    }
    bp_json_free(root);
}

/* The streamed decode agrees with the tree decode for every cut; returns the tree's rc of
 * block `which` (for the caller's own expectations). */
static int same_both_ways(const char *text, size_t count, bool receipts, size_t which,
                          char *msg_out, size_t msg_len)
{
    static const size_t cuts[] = {1, 3, 7, 64, 4096, 1 << 20};
    outcome want;
    decode(text, count, receipts, 0, &want);
    for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
        outcome got;
        decode(text, count, receipts, cuts[c], &got);
        assert_int_equal(got.envelope_rc == 0, want.envelope_rc == 0);
        for (size_t i = 0; want.envelope_rc == 0 && i < count; i++) {
            if (got.rc[i] != want.rc[i] || strcmp(got.err[i].msg, want.err[i].msg) != 0)
                fail_msg("cut %zu, block %zu: streamed rc %d '%s', tree rc %d '%s'", cuts[c], i,
                         got.rc[i], got.err[i].msg, want.rc[i], want.err[i].msg);
            if (want.rc[i] == 0 && strcmp(got.dump[i], want.dump[i]) != 0)
                fail_msg("cut %zu, block %zu: the decoded blocks differ", cuts[c], i);
        }
        outcome_free(&got);
    }
    int rc = want.envelope_rc ? want.envelope_rc : want.rc[which];
    if (msg_out)
        snprintf(msg_out, msg_len, "%s",
                 want.envelope_rc ? want.envelope_err.msg : want.err[which].msg);
    outcome_free(&want);
    return rc;
}

/* ---- answers from simnode's own renderer (every tx type, logs, withdrawals) ---- */

static char *sim_answer(uint64_t first, size_t count, bool receipts, uint32_t txs)
{
    bp_sim_params p = {.seed = 7, .length = 100, .txs_min = txs, .txs_max = txs, .chain_id = 1337};
    bp_sim_chain c;
    bp_error err = {0};
    assert_int_equal(bp_sim_chain_init(&c, &p, T0, &err), 0);
    bp_buf req, out;
    bp_buf_init(&req, 0);
    bp_buf_init(&out, 0);
    bp_buf_putc(&req, '[');
    for (size_t i = 0; i < count; i++) {
        size_t id = i * (receipts ? 2 : 1);
        bp_buf_printf(&req,
                      "%s{\"jsonrpc\":\"2.0\",\"id\":%zu,\"method\":\"eth_getBlockByNumber\","
                      "\"params\":[\"0x%llx\",true]}",
                      i ? "," : "", id, (unsigned long long)(first + i));
        if (receipts)
            bp_buf_printf(&req,
                          ",{\"jsonrpc\":\"2.0\",\"id\":%zu,\"method\":\"eth_getBlockReceipts\","
                          "\"params\":[\"0x%llx\"]}",
                          id + 1, (unsigned long long)(first + i));
    }
    bp_buf_putc(&req, ']');
    bp_sim_scratch s;
    bp_sim_scratch_init(&s);
    bp_sim_request r = {.chain = &c, .head = bp_sim_chain_head(&c, T0), .scratch = &s};
    assert_int_equal(bp_sim_answer(&r, req.data, req.len, &out), 0);
    bp_sim_scratch_release(&s);
    bp_sim_chain_release(&c);
    bp_buf_release(&req);
    bp_buf_putc(&out, '\0');
    return out.data;
}

static void test_sim_batches(void **state)
{
    (void)state;
    char *one = sim_answer(5, 1, true, 40);
    assert_int_equal(same_both_ways(one, 1, true, 0, NULL, 0), 0);
    char *range = sim_answer(10, 4, true, 25);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(same_both_ways(range, 4, true, i, NULL, 0), 0);
    char *blocks_only = sim_answer(20, 3, false, 10);
    assert_int_equal(same_both_ways(blocks_only, 3, false, 2, NULL, 0), 0);
    char *empty = sim_answer(30, 2, true, 0);
    assert_int_equal(same_both_ways(empty, 2, true, 1, NULL, 0), 0);
    /* Hashes asked for but objects sent: decoded as hashes both ways (no tx rows). */
    g_full = false;
    assert_int_equal(same_both_ways(blocks_only, 3, false, 1, NULL, 0), 0);
    g_full = true;
    free(one);
    free(range);
    free(blocks_only);
    free(empty);
}

/* s with the first `from` replaced by `to` (which must be there); free() it. */
static char *replace(const char *s, const char *from, const char *to)
{
    char *out = bp_test_replace(s, from, to);
    if (!out)
        fail_msg("'%s' not in the text", from);
    return out;
}

/* Bad values inside streamed objects are reported with the tree decoder's exact message,
 * and only for their own block. */
static void test_errors_match(void **state)
{
    (void)state;
    char *text = sim_answer(10, 3, true, 20);
    static const char *const cuts[][2] = {
        {"\"gas\":\"0x", "\"gas\":\"0xZZ"},          /* first tx of block 10 */
        {"\"logIndex\":\"0x", "\"logIndex\":\"0xq"}, /* a log */
        {"\"cumulativeGasUsed\":\"0x", "\"cumulativeGasUsed\":\"xx"},
        {"\"from\":\"0x", "\"from\":\"0x12"},
        {"\"topics\":[", "\"topics\":[1,"},
        {"\"transactionIndex\":\"0x0\"", "\"transactionIndex\":\"0x5\""},
    };
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        char *bad = replace(text, cuts[i][0], cuts[i][1]);
        char msg[512];
        assert_int_equal(same_both_ways(bad, 3, true, 0, msg, sizeof(msg)), BP_EPARSE);
        assert_non_null(strstr(msg, "block 10"));
        assert_int_equal(same_both_ways(bad, 3, true, 1, NULL, 0), 0); /* the others decode */
        free(bad);
    }
    /* One receipt too many for block 10: the count is the error, as for a tree. */
    char *more = replace(text, "\"id\":1,\"result\":[", "\"id\":1,\"result\":[{\"x\":1},");
    char msg[512];
    assert_int_equal(same_both_ways(more, 3, true, 0, msg, sizeof(msg)), BP_EPARSE);
    assert_non_null(strstr(msg, "21 receipts for 20 transactions"));
    free(more);
    free(text);
}

/* Orders a node may use that streaming cannot follow fall back to the tree, same results:
 * receipts before their block, "transactions" before "number", "id" after "result". */
static void test_orders_fall_back(void **state)
{
    (void)state;
    char *text = sim_answer(40, 2, true, 12);
    char *b0 = strstr(text, "{\"jsonrpc\":\"2.0\",\"id\":0,");
    char *r0 = strstr(text, ",{\"jsonrpc\":\"2.0\",\"id\":1,");
    char *b1 = strstr(text, ",{\"jsonrpc\":\"2.0\",\"id\":2,");
    assert_true(b0 && r0 && b1);
    /* [receipts 0, block 0, block 1 ...] */
    bp_buf o;
    bp_buf_init(&o, 0);
    bp_buf_putc(&o, '[');
    bp_buf_append(&o, r0 + 1, (size_t)(b1 - r0 - 1));
    bp_buf_putc(&o, ',');
    bp_buf_append(&o, b0, (size_t)(r0 - b0));
    bp_buf_puts(&o, b1);
    bp_buf_putc(&o, '\0');
    assert_int_equal(same_both_ways(o.data, 2, true, 0, NULL, 0), 0);
    assert_int_equal(same_both_ways(o.data, 2, true, 1, NULL, 0), 0);
    bp_buf_release(&o);

    /* "id" written last, and answers out of order: [block 1, receipts 0, block 0, receipts
     * 1] with block 1's id after its result. Nothing may be routed by position. */
    bp_buf_init(&o, 0);
    char *r1 = strstr(b1 + 1, ",{\"jsonrpc\":\"2.0\",\"id\":3,");
    assert_non_null(r1);
    bp_buf_puts(&o, "[{\"jsonrpc\":\"2.0\",");
    bp_buf_append(&o, strstr(b1, "\"result\""), (size_t)(r1 - strstr(b1, "\"result\"") - 1));
    bp_buf_puts(&o, ",\"id\":2}");
    bp_buf_append(&o, r0, (size_t)(b1 - r0));
    bp_buf_putc(&o, ',');
    bp_buf_append(&o, b0, (size_t)(r0 - b0));
    bp_buf_puts(&o, r1);
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(same_both_ways(o.data, 2, true, i, NULL, 0), 0);
    bp_buf_release(&o);

    /* "number" after the transactions: the txs wait in the tree for the header. */
    char *nonum = replace(text, "\"number\":\"0x28\",", "");
    char *after =
        replace(nonum, "\"transactionsRoot\"", "\"number\":\"0x28\",\"transactionsRoot\"");
    assert_int_equal(same_both_ways(after, 2, true, 0, NULL, 0), 0);
    free(after);
    free(nonum);
    free(text);
}

/* Envelopes: errors instead of results, null results, not JSON at all, a cut answer. */
static void test_envelopes(void **state)
{
    (void)state;
    char msg[512];
    const char *err2 = "[{\"jsonrpc\":\"2.0\",\"id\":0,\"error\":{\"code\":-32000,\"message\":"
                       "\"boom\"}},{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":[]}]";
    assert_int_equal(same_both_ways(err2, 1, true, 0, msg, sizeof(msg)), BP_ERPC);
    assert_non_null(strstr(msg, "boom"));
    const char *nulls = "[{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":null},"
                        "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":null}]";
    assert_int_equal(same_both_ways(nulls, 1, true, 0, NULL, 0), BP_ENOTFOUND);
    assert_int_equal(same_both_ways("<html>bad gateway</html>", 1, true, 0, NULL, 0), BP_EPARSE);
    char *text = sim_answer(50, 1, true, 5);
    text[strlen(text) / 2] = '\0'; /* the connection dropped half way */
    assert_int_equal(same_both_ways(text, 1, true, 0, NULL, 0), BP_EPARSE);
    free(text);
}

/* A plain incremental parse (no elements) builds the tree bp_json_parse builds. */
static void test_json_stream_tree(void **state)
{
    (void)state;
    char *text = sim_answer(3, 2, true, 3);
    size_t len = strlen(text);
    char e1[256], e2[256];
    yajl_val a = bp_json_parse(text, len, e1, sizeof(e1));
    assert_non_null(a);
    bp_json_stream *s = bp_json_stream_new(NULL, NULL);
    assert_non_null(s);
    for (size_t off = 0; off < len; off += 5)
        assert_int_equal(bp_json_stream_feed(s, text + off, len - off < 5 ? len - off : 5), 0);
    yajl_val b = bp_json_stream_finish(s, e2, sizeof(e2));
    bp_json_stream_free(s);
    assert_non_null(b);
    assert_int_equal(a->u.array.len, b->u.array.len);
    yajl_val ha = yajl_tree_get(a->u.array.values[2], (const char *[]){"result", "hash", NULL},
                                yajl_t_string);
    yajl_val hb = yajl_tree_get(b->u.array.values[2], (const char *[]){"result", "hash", NULL},
                                yajl_t_string);
    assert_non_null(ha);
    assert_non_null(hb);
    assert_string_equal(ha->u.string, hb->u.string);
    assert_int_equal(bp_json_strlen(hb), strlen(hb->u.string));
    bp_json_free(a);
    bp_json_free(b);

    /* A NUL byte is refused with its offset across chunks, like bp_json_parse. */
    s = bp_json_stream_new(NULL, NULL);
    assert_int_equal(bp_json_stream_feed(s, "[1,", 3), 0);
    assert_int_equal(bp_json_stream_feed(s, "2\0]", 3), -1);
    assert_null(bp_json_stream_finish(s, e2, sizeof(e2)));
    assert_string_equal(e2, "NUL byte at offset 4");
    bp_json_stream_free(s);
    free(text);
}

/* The first of ptrs[0..n) whose text equals ptrs[i] must be ptrs[i] itself: one copy of each
 * value in the block. Returns how many distinct values there are. */
static size_t expect_one_copy(const char *const *ptrs, size_t n, const char *what)
{
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (strcmp(ptrs[j], ptrs[i]) != 0)
            j++;
        if (ptrs[j] != ptrs[i])
            fail_msg("%s %zu: '%s' is a second copy of %s %zu's", what, i, ptrs[i], what, j);
        distinct += j == i;
    }
    return distinct;
}

/* A streamed block keeps one copy of each address and topic (senders, contracts and event
 * topics repeat: a 50,000-tx block's 240,000 of them are 21,852 values). */
static void test_streamed_block_shares_values(void **state)
{
    (void)state;
    const uint32_t txs = 3000;
    char *text = sim_answer(40, 1, true, txs);
    bp_block_stream bs;
    bp_stream_route sr = {.bs = &bs, .count = 1, .per = 2};
    bp_block_stream_init(&bs, bp_block_new());
    bp_json_stream *s = bp_json_stream_new(&bp_stream_route_ops, &sr);
    size_t len = strlen(text);
    for (size_t off = 0; off < len; off += 4096)
        assert_int_equal(bp_json_stream_feed(s, text + off, len - off < 4096 ? len - off : 4096),
                         0);
    char ebuf[256];
    yajl_val root = bp_json_stream_finish(s, ebuf, sizeof(ebuf)), results[2], errors[2];
    bp_json_stream_free(s);
    bp_error err = {0};
    assert_non_null(root);
    assert_int_equal(bp_decode_rpc_tree(root, 2, results, errors, &err), 0);
    assert_int_equal(bp_decode_block_streamed(results[0], true, &bs, &err), 0);
    assert_int_equal(bp_decode_receipts_streamed(results[1], &bs, &err), 0);
    bp_block_stream_release(&bs);
    const bp_block *b = bs.b;
    assert_int_equal(b->tx_count, txs);
    const char **from = calloc(b->tx_count, sizeof(*from));
    const char **topic0 = calloc(b->log_count + 1, sizeof(*topic0));
    const char **address = calloc(b->log_count + 1, sizeof(*address));
    size_t n = 0;
    for (size_t i = 0; i < b->tx_count; i++)
        from[i] = b->txs[i].from_address;
    for (size_t i = 0; i < b->log_count; i++) {
        address[i] = b->logs[i].address;
        if (b->logs[i].topic_count)
            topic0[n++] = b->logs[i].topics[0];
    }
    size_t senders = expect_one_copy(from, b->tx_count, "from_address");
    size_t emitters = expect_one_copy(address, b->log_count, "log address");
    size_t events = expect_one_copy(topic0, n, "topic0");
    assert_true(senders < b->tx_count && emitters < b->log_count && events < n);
    free(from);
    free(topic0);
    free(address);
    bp_block_free(bs.b);
    bp_json_free(root);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_stream_tree),
        cmocka_unit_test(test_sim_batches),
        cmocka_unit_test(test_errors_match),
        cmocka_unit_test(test_orders_fall_back),
        cmocka_unit_test(test_envelopes),
        cmocka_unit_test(test_streamed_block_shares_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
