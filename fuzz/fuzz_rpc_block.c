/* fuzz_rpc_block.c - libFuzzer target: a batch answer [block, receipts] through the decoder,
 * copying, zero-copy (parsed in place, the block adopting the body) and streamed (parsed in
 * 7-byte pieces with transactions and receipts decoded as they arrive, as fetch does): all
 * three must agree. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockpipe/columns.h"
#include "blockpipe/model.h"
#include "chain/decode.h"
#include "chain/decode_stream.h"
#include "chain/rpc_envelope.h"
#include "chain/json.h"
#include "util/arena.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Not a BP_E* code (those are <= 0): the envelope was refused. */
enum { REFUSED = 1 };

static void differ(const char *what, const char *a, const char *b)
{
    fprintf(stderr, "copying and zero-copy/streamed decoding differ: %s: %.200s | %.200s\n", what,
            a ? a : "(null)", b ? b : "(null)");
    abort();
}

static void same_str(const char *what, const char *a, const char *b)
{
    if (!a != !b || (a && strcmp(a, b) != 0))
        differ(what, a, b);
}

/* A value kept as bytes (bp_hexb), compared as the text every output writes of it (the value
 * the outputs get: bp_val_hexb; a long one's text is in a buffer the next one reuses). */
static void same_hexb(const char *what, const bp_hexb *a, const bp_hexb *b)
{
    if (!a != !b)
        differ(what, a ? "set" : NULL, b ? "set" : NULL);
    if (!a)
        return;
    bp_value va = bp_val_hexb(a);
    char *x = malloc(va.kind == BP_VAL_STR ? strlen(va.s) + 1 : BP_HEXB_TEXT);
    if (!x)
        abort();
    if (va.kind == BP_VAL_STR)
        strcpy(x, va.s);
    else
        bp_hexb_text(x, va.h);
    bp_value vb = bp_val_hexb(b);
    char y[BP_HEXB_TEXT];
    if (vb.kind == BP_VAL_HEX)
        bp_hexb_text(y, vb.h);
    same_str(what, x, vb.kind == BP_VAL_STR ? vb.s : y);
    free(x);
}

static void same_qty(const char *what, const bp_qty *a, const bp_qty *b)
{
    if (a->set != b->set || (a->set && memcmp(&a->v, &b->v, sizeof(a->v)) != 0))
        differ(what, a->set ? "set" : NULL, b->set ? "set" : NULL);
}

/* What few txs have (bp_tx_rare): made by every decoder for the same txs, alike. */
static void same_rare(const bp_tx_rare *a, const bp_tx_rare *b)
{
    if (!a != !b)
        differ("rare part", a ? "made" : NULL, b ? "made" : NULL);
    if (!a)
        return;
    same_qty("maxFeePerBlobGas", &a->max_fee_per_blob_gas, &b->max_fee_per_blob_gas);
    same_qty("receipt blobGasPrice", &a->receipt_blob_gas_price, &b->receipt_blob_gas_price);
    if (a->receipt_blob_gas_used.set != b->receipt_blob_gas_used.set ||
        a->receipt_blob_gas_used.v != b->receipt_blob_gas_used.v)
        differ("receipt blobGasUsed", NULL, "differs");
    same_str("blobVersionedHashes", a->blob_versioned_hashes_json, b->blob_versioned_hashes_json);
    same_str("authorizationList", a->authorization_list_json, b->authorization_list_json);
    same_str("raw tx", a->raw_json, b->raw_json);
    same_str("receipt root", a->receipt_root, b->receipt_root);
}

/* The strings a block points to; b's are read after its tree is gone (ASan). */
static void same_block(const bp_block *a, const bp_block *b)
{
    same_str("hash", a->hash, b->hash);
    same_str("extraData", a->extra_data, b->extra_data);
    same_str("block extra", a->extra_json, b->extra_json);
    if (a->tx_count != b->tx_count || a->log_count != b->log_count)
        differ("counts", a->hash, b->hash);
    for (size_t i = 0; i < a->tx_count; i++) {
        same_str("tx hash", a->txs[i].hash, b->txs[i].hash);
        same_str("tx from", a->txs[i].from_address, b->txs[i].from_address);
        same_hexb("tx input", a->txs[i].input, b->txs[i].input);
        same_str("tx extra", a->txs[i].extra_json, b->txs[i].extra_json);
        same_str("receipt extra", a->txs[i].receipt_extra_json, b->txs[i].receipt_extra_json);
        same_hexb("tx r", a->txs[i].r, b->txs[i].r);
        same_hexb("tx s", a->txs[i].s, b->txs[i].s);
        same_hexb("receipt logsBloom", a->txs[i].receipt_logs_bloom, b->txs[i].receipt_logs_bloom);
        same_rare(a->txs[i].rare, b->txs[i].rare);
        same_str("l1FeeScalar", a->txs[i].op ? a->txs[i].op->receipt_l1_fee_scalar : NULL,
                 b->txs[i].op ? b->txs[i].op->receipt_l1_fee_scalar : NULL);
    }
    for (size_t i = 0; i < a->log_count; i++) {
        same_str("log data", a->logs[i].data, b->logs[i].data);
        same_str("log extra", a->logs[i].extra_json, b->logs[i].extra_json);
        for (size_t t = 0; t < a->logs[i].topic_count; t++)
            same_str("log topic", a->logs[i].topics[t], b->logs[i].topics[t]);
    }
}

/* Decoding after a failed step still runs on purpose: the block must stay freeable. */
static int decode_pair(yajl_val block, yajl_val receipts, const bp_body *body, bp_block *b,
                       bp_error *err)
{
    int rc = bp_decode_block_in(block, true, body, b, err);
    if (rc == 0 && receipts)
        rc = bp_decode_block_receipts_in(receipts, body, b, err);
    bp_block *h = bp_block_header_copy(b);
    bp_block_free(h);
    return rc;
}

/* The zero-copy path on its own copy of the body, as fetch runs it. */
static void zero_copy(const uint8_t *data, size_t size, const bp_block *want, int want_rc,
                      const bp_error *want_err)
{
    bp_body body = {malloc(size + 1), size};
    bp_block *b = bp_block_new();
    yajl_val root = NULL, results[2], errors[2];
    bp_error err;
    if (!body.data || !b || bp_arena_adopt(b->arena, body.data) != 0) {
        free(body.data);
        bp_block_free(b);
        return;
    }
    if (size)
        memcpy(body.data, data, size);
    body.data[size] = '\0';
    int rc = bp_decode_rpc_response_inplace(body.data, size, 2, &root, results, errors, &err);
    if ((rc == 0) != (want_rc != REFUSED))
        differ("envelope", rc ? err.msg : "ok", want_rc == REFUSED ? "refused" : "ok");
    if (rc == 0)
        rc = decode_pair(results[0], results[1], &body, b, &err);
    bp_json_free(root);
    if (want_rc != REFUSED && rc != want_rc)
        differ("result", err.msg, want_err->msg);
    if (want_rc < 0)
        same_str("error message", want_err->msg, err.msg);
    if (want_rc == 0)
        same_block(want, b);
    bp_block_free(b);
}

/* The streamed path, with fetch's routing; the envelope's refusal must match too. */
static void streamed(const uint8_t *data, size_t size, const bp_block *want, int want_rc,
                     const bp_error *want_err)
{
    bp_block_stream bs;
    bp_stream_route sr = {.bs = &bs, .count = 1, .per = 2};
    bp_block *b = bp_block_new();
    bp_json_stream *s = b ? bp_json_stream_new(&bp_stream_route_ops, &sr) : NULL;
    yajl_val root = NULL, results[2], errors[2];
    bp_error err;
    bp_block_stream_init(&bs, b);
    if (!s)
        goto out;
    for (size_t off = 0; off < size; off += 7)
        if (bp_json_stream_feed(s, (const char *)data + off, size - off < 7 ? size - off : 7))
            break;
    root = bp_json_stream_finish(s, NULL, 0);
    int rc = root ? bp_decode_rpc_tree(root, 2, results, errors, &err) : REFUSED;
    if ((rc == 0) != (want_rc != REFUSED))
        differ("streamed envelope", rc ? "refused" : "ok", want_rc == REFUSED ? "refused" : "ok");
    if (rc == 0)
        rc = bp_decode_block_streamed(results[0], true, &bs, &err);
    if (rc == 0 && results[1])
        rc = bp_decode_receipts_streamed(results[1], &bs, &err);
    bp_block_stream_release(&bs);
    if (want_rc != REFUSED && rc != want_rc)
        differ("streamed result", err.msg, want_err->msg);
    if (want_rc < 0)
        same_str("streamed error message", want_err->msg, err.msg);
    if (want_rc == 0)
        same_block(want, b);
out:
    bp_json_stream_free(s);
    bp_json_free(root);
    bp_block_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The RPC layer hands over NUL-terminated bodies; mimic that exactly. */
    char *body = malloc(size + 1);
    if (!body)
        return 0;
    if (size)
        memcpy(body, data, size);
    body[size] = '\0';
    yajl_val root = NULL, results[2], errors[2];
    bp_error err;
    bp_block *b = bp_block_new();
    int rc = REFUSED;
    if (b && bp_decode_rpc_response(body, size, 2, &root, results, errors, &err) == 0) {
        if (errors[0])
            (void)bp_decode_rpc_error(errors[0], "eth_getBlockByNumber", &err);
        rc = decode_pair(results[0], results[1], NULL, b, &err);
        bp_json_free(root);
    }
    if (b)
        zero_copy(data, size, b, rc, &err);
    if (b)
        streamed(data, size, b, rc, &err);
    bp_block_free(b);
    free(body);
    return 0;
}
