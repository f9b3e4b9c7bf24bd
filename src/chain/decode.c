/* decode.c - JSON-RPC results (yajl_val trees) -> bp_block, bp_tx, bp_log, bp_withdrawal. */
#include "chain/decode.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>

#include "chain/decode_internal.h"
#include "chain/json.h"
#include "util/arena.h"
#include "util/hex.h"

void bp_dec_ctx_init(dctx *c, bp_block *b, const bp_body *body, bp_error *err)
{
    *c = (dctx){.b = b, .a = b->arena, .err = err};
    if (body && body->data) {
        c->body = (uintptr_t)body->data;
        c->body_len = body->len;
    }
}

/* The writable text of s when it lies in the body the block owns, else NULL. */
static char *in_body(const dctx *c, const char *s)
{
    return (uintptr_t)s - c->body < c->body_len ? (char *)(uintptr_t)s : NULL;
}

/* A string in the body comes from bp_json_parse_inplace, whose nodes carry their length. */
static size_t str_len(const dctx *c, yajl_val v)
{
    return c->lens || in_body(c, v->u.string) ? bp_json_strlen(v) : strlen(v->u.string);
}

const bp_field bp_dec_block_fields[] = {
    KEEP("transactions", MUST),
    KEEP("uncles", OPT),
    KEEP("withdrawals", OPT),
    FLD("number", K_U64, MUST, bp_block, number),
    FLD("hash", K_HASH, MUST, bp_block, hash),
    FLD("parentHash", K_HASH, MUST, bp_block, parent_hash),
    FLD("nonce", K_DATA, OPT, bp_block, nonce),
    FLD("sha3Uncles", K_HASH, OPT, bp_block, sha3_uncles),
    FLD("logsBloom", K_DATA, MUST, bp_block, logs_bloom),
    FLD("transactionsRoot", K_HASH, MUST, bp_block, transactions_root),
    FLD("stateRoot", K_HASH, MUST, bp_block, state_root),
    FLD("receiptsRoot", K_HASH, MUST, bp_block, receipts_root),
    FLD("miner", K_ADDR, MUST, bp_block, miner),
    FLD("mixHash", K_HASH, OPT, bp_block, mix_hash),
    FLD("difficulty", K_QTY, OPT, bp_block, difficulty),
    FLD("totalDifficulty", K_QTY, OPT, bp_block, total_difficulty),
    FLD("size", K_OPT_U64, OPT, bp_block, size),
    FLD("extraData", K_DATA, MUST, bp_block, extra_data),
    FLD("gasLimit", K_U64, MUST, bp_block, gas_limit),
    FLD("gasUsed", K_U64, MUST, bp_block, gas_used),
    FLD("timestamp", K_U64, MUST, bp_block, timestamp),
    FLD("baseFeePerGas", K_QTY, OPT, bp_block, base_fee_per_gas),
    FLD("withdrawalsRoot", K_HASH, OPT, bp_block, withdrawals_root),
    FLD("blobGasUsed", K_OPT_U64, OPT, bp_block, blob_gas_used),
    FLD("excessBlobGas", K_OPT_U64, OPT, bp_block, excess_blob_gas),
    FLD("parentBeaconBlockRoot", K_HASH, OPT, bp_block, parent_beacon_block_root),
    FLD("requestsHash", K_HASH, OPT, bp_block, requests_hash),
};

enum { TK_BLOCK_HASH, TK_BLOCK_NUMBER, TK_TX_INDEX };
static const bp_field tx_fields[] = {
    KEEP("blockHash", OPT), KEEP("blockNumber", OPT), KEEP("transactionIndex", OPT),
    FLD("hash", K_HASH, MUST, bp_tx, hash), FLD("from", K_ADDR, MUST, bp_tx, from_address),
    FLD("to", K_ADDR, OPT, bp_tx, to_address), FLD("nonce", K_U64, REQ, bp_tx, nonce),
    FLD("gas", K_U64, REQ, bp_tx, gas), FLD("value", K_QTY, REQ, bp_tx, value),
    FLD("gasPrice", K_QTY, OPT, bp_tx, gas_price),
    FLD("maxFeePerGas", K_QTY, OPT, bp_tx, max_fee_per_gas),
    FLD("maxPriorityFeePerGas", K_QTY, OPT, bp_tx, max_priority_fee_per_gas),
    FLD_RARE("maxFeePerBlobGas", K_QTY, max_fee_per_blob_gas),
    FLD("type", K_OPT_U64, OPT, bp_tx, transaction_type),
    FLD("chainId", K_OPT_U64, OPT, bp_tx, chain_id), FLD("input", K_HEXB, REQ, bp_tx, input),
    FLD("v", K_DATA, OPT, bp_tx, v), FLD("r", K_HEXB, OPT, bp_tx, r),
    FLD("s", K_HEXB, OPT, bp_tx, s), FLD("yParity", K_DATA, OPT, bp_tx, y_parity),
    FLD("accessList", K_JSON, OPT, bp_tx, access_list_json),
    FLD_RARE("blobVersionedHashes", K_JSON, blob_versioned_hashes_json),
    FLD_RARE("authorizationList", K_JSON, authorization_list_json),
    /* OP-stack deposits (op-geth internal/ethapi RPCTransaction) */
    FLD_OP("sourceHash", K_HASH, source_hash), FLD_OP("mint", K_QTY, mint),
    FLD_OP("isSystemTx", K_OPT_BOOL, is_system_tx),
    FLD("depositReceiptVersion", K_SKIP, OPT, bp_tx, hash), /* the receipt's, stored there */
    FLD("blockTimestamp", K_SKIP, OPT, bp_tx, hash),        /* geth 1.16: the block's */
};

enum { RK_LOGS, RK_TX_HASH, RK_BLOCK_HASH, RK_TX_INDEX, RK_BLOCK_NUMBER };
static const bp_field receipt_fields[] = {
    KEEP("logs", MUST),
    KEEP("transactionHash", MUST),
    KEEP("blockHash", MUST),
    KEEP("transactionIndex", OPT),
    KEEP("blockNumber", OPT),
    FLD("cumulativeGasUsed", K_U64, MUST, bp_tx, receipt_cumulative_gas_used),
    FLD("gasUsed", K_U64, MUST, bp_tx, receipt_gas_used),
    FLD("contractAddress", K_ADDR, OPT, bp_tx, receipt_contract_address),
    FLD_RARE("root", K_DATA, receipt_root),
    FLD("status", K_OPT_U64, OPT, bp_tx, receipt_status),
    FLD("effectiveGasPrice", K_QTY, OPT, bp_tx, receipt_effective_gas_price),
    FLD_RARE("blobGasUsed", K_OPT_U64, receipt_blob_gas_used),
    FLD_RARE("blobGasPrice", K_QTY, receipt_blob_gas_price),
    FLD("logsBloom", K_HEXB, OPT, bp_tx, receipt_logs_bloom),
    /* copies of the transaction's fields */
    FLD("from", K_SKIP, OPT, bp_tx, hash),
    FLD("to", K_SKIP, OPT, bp_tx, hash),
    FLD("type", K_SKIP, OPT, bp_tx, hash),
    FLD("blockTimestamp", K_SKIP, OPT, bp_tx, hash),
    /* OP stack (op-geth core/types/receipt.go) */
    FLD_OP("l1Fee", K_QTY, receipt_l1_fee),
    FLD_OP("l1GasUsed", K_QTY, receipt_l1_gas_used),
    FLD_OP("l1GasPrice", K_QTY, receipt_l1_gas_price),
    FLD_OP("l1BlobBaseFee", K_QTY, receipt_l1_blob_base_fee),
    FLD_OP("l1FeeScalar", K_TEXT, receipt_l1_fee_scalar),
    FLD_OP("l1BaseFeeScalar", K_OPT_U64, receipt_l1_base_fee_scalar),
    FLD_OP("l1BlobBaseFeeScalar", K_OPT_U64, receipt_l1_blob_base_fee_scalar),
    FLD_OP("depositNonce", K_OPT_U64, receipt_deposit_nonce),
    FLD_OP("depositReceiptVersion", K_OPT_U64, receipt_deposit_receipt_version),
    /* Arbitrum (nitro's receipt marshalling) */
    FLD_ARB("gasUsedForL1", K_OPT_U64, receipt_gas_used_for_l1),
    FLD_ARB("l1BlockNumber", K_OPT_U64, receipt_l1_block_number),
};

enum { LK_TOPICS, LK_TX_HASH, LK_TX_INDEX, LK_BLOCK_HASH, LK_BLOCK_NUMBER };
static const bp_field log_fields[] = {
    KEEP("topics", MUST),
    KEEP("transactionHash", OPT),
    KEEP("transactionIndex", OPT),
    KEEP("blockHash", OPT),
    KEEP("blockNumber", OPT),
    FLD("logIndex", K_U64, MUST, bp_log, log_index),
    FLD("address", K_ADDR, MUST, bp_log, address),
    FLD("data", K_DATA, MUST, bp_log, data),
    FLD("removed", K_BOOL, OPT, bp_log, removed),
    FLD("blockTimestamp", K_SKIP, OPT, bp_log, removed), /* geth 1.16: the block's */
};

static const bp_field withdrawal_fields[] = {
    FLD("index", K_U64, MUST, bp_withdrawal, index),
    FLD("validatorIndex", K_U64, MUST, bp_withdrawal, validator_index),
    FLD("address", K_ADDR, MUST, bp_withdrawal, address),
    FLD("amount", K_U64, MUST, bp_withdrawal, amount),
};

_Static_assert(NFIELDS(bp_dec_block_fields) == BP_DEC_BLOCK_FIELDS, "BP_DEC_BLOCK_FIELDS");
/* decode_fields tracks seen keys in a 64-bit mask. */
_Static_assert(NFIELDS(bp_dec_block_fields) <= 64 && NFIELDS(tx_fields) <= 64 &&
                   NFIELDS(receipt_fields) <= 64 && NFIELDS(log_fields) <= 64,
               "field tables must fit the seen mask");

int bp_dec_wrong_type(dctx *c, const char *key, const char *want, yajl_val v)
{
    return bp_error_set(c->err, BP_EPARSE, "field '%s': expected %s, got %s", key, want,
                        bp_json_type_name(v));
}

static int put_quantity(dctx *c, const bp_field *f, yajl_val v, char *dst)
{
    const char *s = v->u.string;
    size_t len = str_len(c, v);
    int rc;
    if (f->kind == K_QTY) {
        bp_qty *q = (bp_qty *)(void *)dst;
        rc = bp_hex_to_u256(s, len, &q->v);
        q->set = rc == BP_OK;
    } else if (f->kind == K_OPT_U64) {
        bp_opt_u64 *o = (bp_opt_u64 *)(void *)dst;
        rc = bp_hex_to_u64(s, len, &o->v);
        o->set = rc == BP_OK;
    } else {
        rc = bp_hex_to_u64(s, len, (uint64_t *)(void *)dst);
    }
    if (rc == BP_ETOOBIG)
        return bp_error_set(c->err, BP_EPARSE, "field '%s': quantity too large: \"%.80s\"", f->key,
                            s);
    if (rc != BP_OK)
        return bp_error_set(c->err, BP_EPARSE, "field '%s': not a hex quantity: \"%.80s\"", f->key,
                            s);
    return BP_OK;
}

/* bp_hex_is_data and a lower-cased copy in one pass: dst gets s[0..len) lower-cased and a
 * NUL; false when s is not "0x" + hex digits. For hex digits and 'x', c | 0x20 is the
 * lower-case form; the loop has no branch so the compiler vectorises it (long input / data /
 * logsBloom values dominate the bytes of a block). */
static bool copy_hex_lower(char *dst, const char *s, size_t len)
{
    if (len < 2 || s[0] != '0' || (s[1] | 0x20) != 'x')
        return false;
    unsigned bad = 0;
    dst[0] = '0';
    dst[1] = 'x';
    for (size_t i = 2; i < len; i++) {
        unsigned char ch = (unsigned char)s[i], lo = (unsigned char)(ch | 0x20);
        bad |= (unsigned char)(ch - '0') > 9 && (unsigned char)(lo - 'a') > 5;
        dst[i] = (char)lo;
    }
    dst[len] = '\0';
    return !bad;
}

/* bp_hex_is_data over s[0..len), noting whether any letter is upper case. Read-only, so a
 * refused value is quoted as the node sent it; branch-free so the compiler vectorises it. */
static bool scan_hex(const char *s, size_t len, bool *upper)
{
    if (len < 2 || s[0] != '0' || (s[1] | 0x20) != 'x')
        return false;
    unsigned bad = 0, up = s[1] == 'X';
    for (size_t i = 2; i < len; i++) {
        unsigned char ch = (unsigned char)s[i], lo = (unsigned char)(ch | 0x20);
        bad |= (unsigned char)(ch - '0') > 9 && (unsigned char)(lo - 'a') > 5;
        up |= (unsigned char)(ch - 'A') < 6;
    }
    *upper = up;
    return !bad;
}

static size_t text_want(const bp_field *f, size_t len)
{
    return f->kind == K_HASH || f->kind == K_TOPIC ? 66 : f->kind == K_ADDR ? 42 : len;
}

static int bad_text(dctx *c, const bp_field *f, const char *s)
{
    return bp_error_set(c->err, BP_EPARSE, "field '%s': not %s: \"%.80s\"", f->key,
                        f->kind == K_HASH || f->kind == K_TOPIC ? "a 32-byte hex hash"
                        : f->kind == K_ADDR                     ? "a 20-byte hex address"
                                                                : "hex data",
                        s);
}

/* Zero-copy: the value stays in the body (which the block owns) and is lower-cased there.
 * Nodes send lower case, so the write pass almost never runs. */
static int put_text_inplace(dctx *c, const bp_field *f, char *s, size_t len, char *dst)
{
    bool upper;
    if (len != text_want(f, len) || !scan_hex(s, len, &upper))
        return bad_text(c, f, s);
    for (size_t i = 0; upper && i < len; i++)
        s[i] = (char)(s[i] | 0x20); /* hex digits and 'x' only: | 0x20 lower-cases */
    memcpy(dst, &s, sizeof(s));
    return BP_OK;
}

/* A receipt without logs has an all-zero bloom: 514 bytes of text each, a third of the
 * receipts of a mainnet block (41 % of simnode's 50,000-tx blocks: 10 MiB). They share this
 * one copy. */
#define Z8 "00000000"
#define Z64 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8
static const char zero_bloom[] = "0x" Z64 Z64 Z64 Z64 Z64 Z64 Z64 Z64;
#undef Z64
#undef Z8
/* The same as bytes (bp_hexb: 512 digits, all zero). */
static const unsigned char zero_bloom_b[2 + BP_HEXB_MAX / 2] = {BP_HEXB_MAX & 0xff,
                                                                BP_HEXB_MAX >> 8};
/* "0x": no digits (an input a node may omit, a state-sync receipt's). */
static const unsigned char empty_hexb[2] = {0, 0};
#define EMPTY_HEXB ((const bp_hexb *)(const void *)empty_hexb)

void bp_intern_free(bp_intern *t)
{
    free(t->slots);
    *t = (bp_intern){0};
}

static size_t intern_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 2; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return (size_t)(h ^ h >> 29);
}

/* The slot of the value p[0..len) (lower-case hex): where it is, or the empty one it goes to. */
static const char **intern_slot(const bp_intern *t, const char *p, size_t len)
{
    size_t i = intern_hash(p, len) & (t->cap - 1);
    /* strcmp, not memcmp of len + 1: a slot may hold a shorter value (an address beside the
     * topics), whose bytes end at its NUL */
    while (t->slots[i] && strcmp(t->slots[i], p) != 0)
        i = (i + 1) & (t->cap - 1);
    return &t->slots[i];
}

/* Room for one more value (the table doubles at half full); false when it may take no more. */
static bool intern_room(bp_intern *t)
{
    if (t->n >= BP_INTERN_MAX)
        return false;
    if (2 * (t->n + 1) <= t->cap)
        return true;
    size_t cap = t->cap ? 2 * t->cap : 256;
    bp_intern grown = {.slots = calloc(cap, sizeof(*grown.slots)), .cap = cap};
    if (!grown.slots)
        return false;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i])
            *intern_slot(&grown, t->slots[i], strlen(t->slots[i])) = t->slots[i];
    grown.n = t->n;
    free(t->slots);
    *t = grown;
    return true;
}

/* An address or topic: the block's copy of it when it came before, else a new one (kept for
 * the next). Returns NULL when out of memory, or (*bad) when s is not hex. */
static const char *put_interned(dctx *c, const char *s, size_t len, bool *bad)
{
    char low[BP_HASH_STRLEN];
    *bad = !copy_hex_lower(low, s, len);
    if (*bad)
        return NULL;
    bp_intern *t = c->intern;
    const char **slot = t->cap ? intern_slot(t, low, len) : NULL;
    if (slot && *slot)
        return *slot;
    char *p = bp_arena_alloc_bytes(c->a, len + 1);
    if (!p)
        return NULL;
    memcpy(p, low, len + 1);
    if (intern_room(t)) {
        *intern_slot(t, p, len) = p; /* the table may have moved: its slot again */
        t->n++;
    }
    return p;
}

static int put_text(dctx *c, const bp_field *f, yajl_val v, char *dst)
{
    const char *s = v->u.string;
    char *in = in_body(c, s);
    if (in)
        return put_text_inplace(c, f, in, bp_json_strlen(v), dst);
    size_t len = str_len(c, v);
    if (len == sizeof(zero_bloom) - 1 && memcmp(s, zero_bloom, len) == 0) {
        const char *z = zero_bloom;
        memcpy(dst, &z, sizeof(z));
        return BP_OK;
    }
    size_t want = text_want(f, len);
    if (c->intern && len == want && (f->kind == K_ADDR || f->kind == K_TOPIC)) {
        bool bad;
        const char *p = put_interned(c, s, len, &bad);
        if (bad)
            return bad_text(c, f, s);
        if (!p)
            return bp_error_set(c->err, BP_ENOMEM, "field '%s': out of memory", f->key);
        memcpy(dst, &p, sizeof(p));
        return BP_OK;
    }
    char *p = len == want ? bp_arena_alloc_bytes(c->a, len + 1) : NULL;
    if (len == want && !p)
        return bp_error_set(c->err, BP_ENOMEM, "field '%s': out of memory", f->key);
    if (!p || !copy_hex_lower(p, s, len))
        return bad_text(c, f, s);
    memcpy(dst, &p, sizeof(p));
    return BP_OK;
}

/* Hex data as its bytes (bp_hexb), in the arena; a value of more than BP_HEXB_MAX digits in
 * the long form. All-zero blooms share one, and every empty "0x" one. */
static int put_hexb(dctx *c, const bp_field *f, yajl_val v, char *dst)
{
    const char *s = v->u.string;
    size_t len = str_len(c, v);
    bool upper;
    if (!scan_hex(s, len, &upper))
        return bad_text(c, f, s);
    const bp_hexb *h = len == 2 ? EMPTY_HEXB
                       : len == sizeof(zero_bloom) - 1 && memcmp(s, zero_bloom, len) == 0
                           ? (const bp_hexb *)(const void *)zero_bloom_b
                           : bp_hexb_make(c->a, s, len);
    if (!h)
        return bp_error_set(c->err, BP_ENOMEM, "field '%s': out of memory", f->key);
    memcpy(dst, &h, sizeof(h));
    return BP_OK;
}

static yajl_gen_status gen_value(yajl_gen g, yajl_val v);

static yajl_gen_status gen_object(yajl_gen g, yajl_val v)
{
    yajl_gen_status st = yajl_gen_map_open(g);
    for (size_t i = 0; st == yajl_gen_status_ok && i < v->u.object.len; i++) {
        const char *k = v->u.object.keys[i];
        st = yajl_gen_string(g, (const unsigned char *)k, strlen(k));
        if (st == yajl_gen_status_ok)
            st = gen_value(g, v->u.object.values[i]);
    }
    return st == yajl_gen_status_ok ? yajl_gen_map_close(g) : st;
}

static yajl_gen_status gen_array(yajl_gen g, yajl_val v)
{
    yajl_gen_status st = yajl_gen_array_open(g);
    for (size_t i = 0; st == yajl_gen_status_ok && i < v->u.array.len; i++)
        st = gen_value(g, v->u.array.values[i]);
    return st == yajl_gen_status_ok ? yajl_gen_array_close(g) : st;
}

/* Recursion is bounded: yajl_gen refuses to open more than YAJL_MAX_DEPTH levels. */
static yajl_gen_status gen_value(yajl_gen g, yajl_val v)
{
    if (!v || YAJL_IS_NULL(v))
        return yajl_gen_null(g);
    if (YAJL_IS_STRING(v))
        return yajl_gen_string(g, (const unsigned char *)v->u.string, strlen(v->u.string));
    if (YAJL_IS_NUMBER(v))
        return yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
    if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v))
        return yajl_gen_bool(g, YAJL_IS_TRUE(v));
    if (YAJL_IS_OBJECT(v))
        return gen_object(g, v);
    return gen_array(g, v);
}

/* Compact JSON text of v, in the arena. */
static int json_text(dctx *c, const char *key, yajl_val v, const char **out)
{
    if (!c->g && !(c->g = yajl_gen_alloc(NULL)))
        return bp_error_set(c->err, BP_ENOMEM, "field '%s': out of memory", key);
    yajl_gen_clear(c->g);
    yajl_gen_reset(c->g, NULL);
    if (gen_value(c->g, v) != yajl_gen_status_ok)
        return bp_error_set(c->err, BP_EPARSE, "field '%s': cannot re-serialise (nested too deep)",
                            key);
    const unsigned char *buf;
    size_t len;
    yajl_gen_get_buf(c->g, &buf, &len);
    *out = bp_arena_strndup(c->a, (const char *)buf, len);
    if (!*out)
        return bp_error_set(c->err, BP_ENOMEM, "field '%s': out of memory", key);
    return BP_OK;
}

/* op-reth has been seen to send isSystemTx as the string "true": both spellings count. */
static int put_opt_bool(dctx *c, const bp_field *f, yajl_val v, bp_opt_u64 *dst)
{
    bool t = YAJL_IS_TRUE(v) || (YAJL_IS_STRING(v) && strcmp(v->u.string, "true") == 0);
    bool fl = YAJL_IS_FALSE(v) || (YAJL_IS_STRING(v) && strcmp(v->u.string, "false") == 0);
    if (!t && !fl)
        return bp_dec_wrong_type(c, f->key, "a boolean", v);
    *dst = (bp_opt_u64){.v = t, .set = true};
    return BP_OK;
}

/* A string or a number as the node wrote it (op-geth writes l1FeeScalar, a big.Float, as a
 * string; alloy-based nodes as a JSON number). */
static int put_plain_text(dctx *c, const bp_field *f, yajl_val v, const char **dst)
{
    const char *s = YAJL_IS_STRING(v) ? v->u.string : YAJL_IS_NUMBER(v) ? v->u.number.r : NULL;
    if (!s)
        return bp_dec_wrong_type(c, f->key, "a string or a number", v);
    if (!(*dst = bp_arena_strndup(c->a, s, strlen(s))))
        return bp_error_set(c->err, BP_ENOMEM, "field '%s': out of memory", f->key);
    return BP_OK;
}

/* tx's part for what few txs have, made on first use; NULL when out of memory. */
static bp_tx_rare *rare_part(dctx *c, bp_tx *tx)
{
    if (!tx->rare)
        tx->rare = bp_arena_calloc(c->a, 1, sizeof(*tx->rare));
    return tx->rare;
}

/* The chain family's part of tx that f is in, made on first use; NULL when out of memory. */
static char *family_part(dctx *c, const bp_field *f, bp_tx *tx)
{
    if (f->fam == FAM_RARE)
        return (char *)rare_part(c, tx);
    if (f->fam == FAM_OP) {
        if (!tx->op)
            tx->op = bp_arena_calloc(c->a, 1, sizeof(*tx->op));
        return (char *)tx->op;
    }
    if (!tx->arb)
        tx->arb = bp_arena_calloc(c->a, 1, sizeof(*tx->arb));
    return (char *)tx->arb;
}

int bp_dec_put_field(dctx *c, const bp_field *f, yajl_val v, char *base, yajl_val *keep)
{
    if (f->fam != FAM_NONE && !(base = family_part(c, f, (bp_tx *)(void *)base)))
        return bp_error_set(c->err, BP_ENOMEM, "field '%s': out of memory", f->key);
    char *dst = base + f->off;
    switch (f->kind) {
    case K_KEEP:
        *keep = v;
        return BP_OK;
    case K_BOOL:
        if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
            return bp_dec_wrong_type(c, f->key, "a boolean", v);
        *(bool *)(void *)dst = YAJL_IS_TRUE(v);
        return BP_OK;
    case K_JSON:
        if (!YAJL_IS_ARRAY(v))
            return bp_dec_wrong_type(c, f->key, "an array", v);
        return json_text(c, f->key, v, (const char **)(void *)dst);
    case K_SKIP:
        return BP_OK;
    case K_OPT_BOOL:
        return put_opt_bool(c, f, v, (bp_opt_u64 *)(void *)dst);
    case K_TEXT:
        return put_plain_text(c, f, v, (const char **)(void *)dst);
    default:
        break;
    }
    if (!YAJL_IS_STRING(v))
        return bp_dec_wrong_type(c, f->key, "a hex string", v);
    if (f->kind == K_U64 || f->kind == K_OPT_U64 || f->kind == K_QTY)
        return put_quantity(c, f, v, dst);
    if (f->kind == K_HEXB)
        return put_hexb(c, f, v, dst);
    return put_text(c, f, v, dst);
}

static const bp_field *find_field(const bp_field *t, size_t n, const char *key, size_t *idx)
{
    for (size_t i = 0; i < n; i++) {
        if (t[i].key[0] == key[0] && strcmp(t[i].key, key) == 0) {
            *idx = i;
            return &t[i];
        }
    }
    return NULL;
}

/* Nodes write every object of a kind with its keys in the same order: per table and key
 * position, the entry that matched last time is tried first, so a key costs one strcmp
 * instead of a scan of the table. Per thread: workers decode in parallel. */
#define GUESS_SLOTS 64
static _Thread_local unsigned char g_guess[5][GUESS_SLOTS];

static unsigned char *guesses(const bp_field *t)
{
    return t == bp_dec_block_fields ? g_guess[0]
           : t == tx_fields         ? g_guess[1]
           : t == receipt_fields    ? g_guess[2]
           : t == log_fields        ? g_guess[3]
           : t == withdrawal_fields ? g_guess[4]
                                    : NULL;
}

static const bp_field *lookup(const bp_field *t, size_t n, const char *key, size_t pos,
                              unsigned char *guess, size_t *idx)
{
    bool cached = guess && pos < GUESS_SLOTS;
    size_t g = cached ? guess[pos] : n;
    if (g < n && strcmp(t[g].key, key) == 0) {
        *idx = g;
        return &t[g];
    }
    const bp_field *f = find_field(t, n, key, idx);
    if (cached)
        guess[pos] = f ? (unsigned char)*idx : UCHAR_MAX;
    return f;
}

/* The keys of obj no table entry knows, as one compact JSON object in the arena (nulls left
 * out, as for known keys). at[0..n) are their positions; with more than fit, every key is
 * looked up again (an object of a chain we model nothing of: rare, and still correct). */
#define EXTRA_MAX 16
static int extra_object(dctx *c, yajl_val obj, const bp_field *t, size_t nt, const size_t *at,
                        size_t n, bool all, const char **out)
{
    if (!c->g && !(c->g = yajl_gen_alloc(NULL)))
        return bp_error_set(c->err, BP_ENOMEM, "extra fields: out of memory");
    yajl_gen_clear(c->g);
    yajl_gen_reset(c->g, NULL);
    yajl_gen_status st = yajl_gen_map_open(c->g);
    size_t idx, count = all ? obj->u.object.len : n;
    for (size_t i = 0; st == yajl_gen_status_ok && i < count; i++) {
        size_t k = all ? i : at[i];
        const char *key = obj->u.object.keys[k];
        yajl_val v = obj->u.object.values[k];
        if (!v || YAJL_IS_NULL(v) || (all && find_field(t, nt, key, &idx)))
            continue;
        st = yajl_gen_string(c->g, (const unsigned char *)key, strlen(key));
        if (st == yajl_gen_status_ok)
            st = gen_value(c->g, v);
    }
    if (st == yajl_gen_status_ok)
        st = yajl_gen_map_close(c->g);
    if (st != yajl_gen_status_ok)
        return bp_error_set(c->err, BP_EPARSE,
                            "extra fields: cannot re-serialise (nested too "
                            "deep)");
    const unsigned char *buf;
    size_t len;
    yajl_gen_get_buf(c->g, &buf, &len);
    if (!(*out = bp_arena_strndup(c->a, (const char *)buf, len)))
        return bp_error_set(c->err, BP_ENOMEM, "extra fields: out of memory");
    return BP_OK;
}

/* One pass over obj's keys; null counts as absent and a key given twice with values is
 * refused. Unknown keys go to *extra (a compact JSON object) when extra is given, else are
 * ignored. seen gets a bit per table entry that had a value. keep[i] receives K_KEEP values
 * (NULL if absent). */
static int decode_fields(dctx *c, yajl_val obj, const bp_field *t, size_t n, void *base,
                         yajl_val *keep, uint64_t *seen, const char **extra)
{
    size_t unknown[EXTRA_MAX], n_unknown = 0;
    bool overflow = false;
    *seen = 0;
    for (size_t i = 0; i < n; i++)
        keep[i] = NULL;
    unsigned char *guess = guesses(t);
    for (size_t k = 0; k < obj->u.object.len; k++) {
        size_t idx = 0;
        const bp_field *f = lookup(t, n, obj->u.object.keys[k], k, guess, &idx);
        yajl_val v = obj->u.object.values[k];
        if (!f && extra && v && !YAJL_IS_NULL(v)) {
            overflow |= n_unknown == EXTRA_MAX;
            if (!overflow)
                unknown[n_unknown++] = k;
        }
        if (!f || !v || YAJL_IS_NULL(v))
            continue;
        /* Which one would be meant? A streamed decode also reads the first one early. */
        if (*seen & (1ULL << idx))
            return bp_error_set(c->err, BP_EPARSE, "field '%s': given twice", f->key);
        int rc = bp_dec_put_field(c, f, v, base, &keep[idx]);
        if (rc != BP_OK)
            return rc;
        *seen |= 1ULL << idx;
    }
    if (extra)
        *extra = NULL;
    if (!extra || !n_unknown)
        return BP_OK;
    return extra_object(c, obj, t, n, unknown, n_unknown, overflow, extra);
}

static int check_required(dctx *c, const bp_field *t, size_t n, uint64_t seen, int level)
{
    for (size_t i = 0; i < n; i++) {
        if (t[i].req >= level && t[i].req != OPT && !(seen & (1ULL << i)))
            return bp_error_set(c->err, BP_EPARSE, "field '%s': missing or null", t[i].key);
    }
    return BP_OK;
}

int bp_dec_object(dctx *c, yajl_val obj, const bp_field *t, size_t n, void *base, yajl_val *keep,
                  const char **extra)
{
    uint64_t seen;
    int rc = decode_fields(c, obj, t, n, base, keep, &seen, extra);
    return rc != BP_OK ? rc : check_required(c, t, n, seen, REQ);
}

/* Strings equal ignoring ASCII case: hashes are compared before lower-casing. Nodes send
 * lower case, so the exact comparison nearly always settles it. */
bool bp_dec_hex_equal(const char *a, const char *b)
{
    if (strcmp(a, b) == 0)
        return true;
    for (; *a && *b; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a | 0x20) : *a;
        char y = *b >= 'A' && *b <= 'Z' ? (char)(*b | 0x20) : *b;
        if (x != y)
            return false;
    }
    return *a == *b;
}

/* Checks an in-object copy of a value the context already knows (the tx's block hash,
 * number, index); a disagreement means the answer mixes up objects. */
static int check_u64_echo(dctx *c, const char *key, yajl_val v, uint64_t want)
{
    if (!v)
        return BP_OK;
    uint64_t got;
    bp_field f = {key, K_U64, MUST, 0, false};
    int rc = bp_dec_put_field(c, &f, v, (char *)&got, NULL);
    if (rc != BP_OK)
        return rc;
    if (got != want)
        return bp_error_set(c->err, BP_EPARSE, "field '%s': is %" PRIu64 ", expected %" PRIu64, key,
                            got, want);
    return BP_OK;
}

static int check_hash_echo(dctx *c, const char *key, yajl_val v, const char *want)
{
    if (!v || !want)
        return BP_OK;
    if (!YAJL_IS_STRING(v))
        return bp_dec_wrong_type(c, key, "a hex string", v);
    if (!bp_dec_hex_equal(v->u.string, want))
        return bp_error_set(c->err, BP_EPARSE, "field '%s': is %.80s, expected %s", key,
                            v->u.string, want);
    return BP_OK;
}

bool bp_l2_tx_type(uint64_t type)
{
    return type == 0x7e                      /* OP stack: deposit */
           || (type >= 0x64 && type <= 0x6a) /* Arbitrum: deposit .. internal */
           || type == 0x78                   /* Arbitrum: legacy (classic) */
           || type == 0x71 || type == 0xff   /* zkSync Era: EIP-712, priority (L1) */
           || type == 0x7f;                  /* Polygon PoS: state sync (PIP-74) */
}

static int decode_tx_body(dctx *c, yajl_val obj, size_t i, bp_tx *tx)
{
    yajl_val keep[NFIELDS(tx_fields)];
    uint64_t seen;
    int rc = decode_fields(c, obj, tx_fields, NFIELDS(tx_fields), tx, keep, &seen, &tx->extra_json);
    if (rc != BP_OK)
        return rc;
    bool eth = !tx->transaction_type.set || tx->transaction_type.v <= 4;
    bool known = eth || bp_l2_tx_type(tx->transaction_type.v);
    rc = check_required(c, tx_fields, NFIELDS(tx_fields), seen, eth ? REQ : MUST);
    if (rc == BP_OK)
        rc = check_hash_echo(c, "blockHash", keep[TK_BLOCK_HASH], c->b->hash);
    if (rc == BP_OK)
        rc = check_u64_echo(c, "blockNumber", keep[TK_BLOCK_NUMBER], c->b->number);
    if (rc == BP_OK)
        rc = check_u64_echo(c, "transactionIndex", keep[TK_TX_INDEX], i);
    if (rc == BP_OK && !known)
        rc = rare_part(c, tx) ? json_text(c, "(raw transaction)", obj, &tx->rare->raw_json)
                              : bp_error_set(c->err, BP_ENOMEM, "(raw transaction): out of memory");
    if (rc == BP_OK && !tx->input)
        tx->input = EMPTY_HEXB; /* only reachable for unknown types, which may omit it */
    return rc;
}

static void tx_from_block(const bp_block *b, size_t i, bp_tx *tx)
{
    tx->block_hash = b->hash;
    tx->block_number = b->number;
    tx->block_timestamp = b->timestamp;
    tx->transaction_index = i;
    tx->hash = NULL; /* set by the decoder: a message names it once known */
}

int bp_dec_tx(dctx *c, yajl_val v, size_t i, bp_tx *tx)
{
    tx_from_block(c->b, i, tx);
    int rc = YAJL_IS_OBJECT(v)
                 ? decode_tx_body(c, v, i, tx)
                 : bp_error_set(c->err, BP_EPARSE, "expected a transaction object, got %s",
                                bp_json_type_name(v));
    if (rc != BP_OK && tx->hash)
        bp_error_prefix(c->err, "transaction %zu (tx %s): ", i, tx->hash);
    else if (rc != BP_OK)
        bp_error_prefix(c->err, "transaction %zu: ", i);
    return rc;
}

static int decode_tx_hash(dctx *c, yajl_val v, size_t i, bp_tx *tx)
{
    tx_from_block(c->b, i, tx);
    if (YAJL_IS_OBJECT(v))
        v = yajl_tree_get(v, (const char *[]){"hash", NULL}, yajl_t_any);
    bp_field f = {"hash", K_HASH, MUST, offsetof(bp_tx, hash), false};
    int rc = v && YAJL_IS_STRING(v) ? put_text(c, &f, v, (char *)tx)
                                    : bp_dec_wrong_type(c, "transactions", "a tx hash", v);
    if (rc != BP_OK)
        bp_error_prefix(c->err, "transaction %zu: ", i);
    return rc;
}

static int decode_txs(dctx *c, yajl_val arr, bool full)
{
    if (!YAJL_IS_ARRAY(arr))
        return bp_dec_wrong_type(c, "transactions", "an array", arr);
    bp_block *b = c->b;
    b->transaction_count = arr->u.array.len;
    if (b->transaction_count == 0)
        return BP_OK;
    b->txs = bp_arena_calloc(c->a, b->transaction_count, sizeof(bp_tx));
    if (!b->txs)
        return bp_error_set(c->err, BP_ENOMEM, "transactions: out of memory");
    for (size_t i = 0; i < arr->u.array.len; i++) {
        yajl_val v = arr->u.array.values[i];
        int rc = full ? bp_dec_tx(c, v, i, &b->txs[i]) : decode_tx_hash(c, v, i, &b->txs[i]);
        if (rc != BP_OK)
            return rc;
    }
    b->tx_count = full ? b->transaction_count : 0;
    return BP_OK;
}

int bp_dec_withdrawals(dctx *c, yajl_val arr)
{
    if (!arr)
        return BP_OK;
    if (!YAJL_IS_ARRAY(arr))
        return bp_dec_wrong_type(c, "withdrawals", "an array", arr);
    bp_block *b = c->b;
    b->has_withdrawals = true;
    b->withdrawal_count = arr->u.array.len;
    if (!b->withdrawal_count)
        return BP_OK;
    b->withdrawals = bp_arena_calloc(c->a, b->withdrawal_count, sizeof(bp_withdrawal));
    if (!b->withdrawals)
        return bp_error_set(c->err, BP_ENOMEM, "withdrawals: out of memory");
    for (size_t i = 0; i < b->withdrawal_count; i++) {
        yajl_val v = arr->u.array.values[i];
        yajl_val keep[NFIELDS(withdrawal_fields)];
        int rc = YAJL_IS_OBJECT(v)
                     ? bp_dec_object(c, v, withdrawal_fields, NFIELDS(withdrawal_fields),
                                     &b->withdrawals[i], keep, NULL)
                     : bp_dec_wrong_type(c, "withdrawals", "an object", v);
        if (rc != BP_OK)
            return bp_error_prefix(c->err, "withdrawal %zu: ", i);
    }
    return BP_OK;
}

static int decode_block_body(dctx *c, yajl_val obj, bool full)
{
    yajl_val keep[NFIELDS(bp_dec_block_fields)];
    int rc = bp_dec_object(c, obj, bp_dec_block_fields, NFIELDS(bp_dec_block_fields), c->b, keep,
                           &c->b->extra_json);
    if (rc != BP_OK)
        return rc;
    yajl_val uncles = keep[BK_UNCLES];
    if (uncles && !YAJL_IS_ARRAY(uncles))
        return bp_dec_wrong_type(c, "uncles", "an array", uncles);
    c->b->uncle_count = uncles ? uncles->u.array.len : 0;
    rc = decode_txs(c, keep[BK_TRANSACTIONS], full);
    return rc != BP_OK ? rc : bp_dec_withdrawals(c, keep[BK_WITHDRAWALS]);
}

/* "block 483920: " when the number is readable, else the raw text the node sent. */
void bp_dec_prefix_block(bp_error *err, yajl_val obj, const bp_block *b)
{
    yajl_val n = yajl_tree_get(obj, (const char *[]){"number", NULL}, yajl_t_any);
    uint64_t num;
    if (n && YAJL_IS_STRING(n) && bp_hex_to_u64(n->u.string, strlen(n->u.string), &num) == BP_OK)
        bp_error_prefix(err, "block %" PRIu64 ": ", num);
    else if (b->hash)
        bp_error_prefix(err, "block %s: ", b->hash);
    else
        bp_error_prefix(err, "block ?: ");
}

int bp_decode_block(yajl_val result, bool full_txs, bp_block *b, bp_error *err)
{
    return bp_decode_block_in(result, full_txs, NULL, b, err);
}

int bp_decode_block_in(yajl_val result, bool full_txs, const bp_body *body, bp_block *b,
                       bp_error *err)
{
    if (!result || YAJL_IS_NULL(result))
        return bp_error_set(err, BP_ENOTFOUND, "block not found (null result)");
    if (!YAJL_IS_OBJECT(result))
        return bp_error_set(err, BP_EPARSE, "block: expected an object, got %s",
                            bp_json_type_name(result));
    dctx c;
    bp_intern intern = {0};
    bp_dec_ctx_init(&c, b, body, err);
    c.intern = &intern;
    int rc = decode_block_body(&c, result, full_txs);
    if (c.g)
        yajl_gen_free(c.g);
    bp_intern_free(&intern);
    if (rc != BP_OK)
        bp_dec_prefix_block(err, result, b);
    return rc;
}

/* ---- receipts ---- */

static int decode_log(dctx *c, yajl_val v, const bp_tx *tx, bp_log *log)
{
    if (!YAJL_IS_OBJECT(v))
        return bp_error_set(c->err, BP_EPARSE, "expected a log object, got %s",
                            bp_json_type_name(v));
    yajl_val keep[NFIELDS(log_fields)];
    int rc = bp_dec_object(c, v, log_fields, NFIELDS(log_fields), log, keep, &log->extra_json);
    if (rc == BP_OK)
        rc = check_hash_echo(c, "transactionHash", keep[LK_TX_HASH], tx->hash);
    if (rc == BP_OK)
        rc = check_u64_echo(c, "transactionIndex", keep[LK_TX_INDEX], tx->transaction_index);
    if (rc == BP_OK)
        rc = check_hash_echo(c, "blockHash", keep[LK_BLOCK_HASH], c->b->hash);
    if (rc == BP_OK)
        rc = check_u64_echo(c, "blockNumber", keep[LK_BLOCK_NUMBER], c->b->number);
    if (rc != BP_OK)
        return rc;
    log->transaction_hash = tx->hash;
    log->transaction_index = tx->transaction_index;
    yajl_val topics = keep[LK_TOPICS];
    if (!YAJL_IS_ARRAY(topics))
        return bp_dec_wrong_type(c, "topics", "an array", topics);
    if (topics->u.array.len > 4)
        return bp_error_set(c->err, BP_EPARSE, "field 'topics': %zu topics, at most 4",
                            topics->u.array.len);
    bp_field f = {"topics", K_TOPIC, MUST, 0, false};
    for (size_t i = 0; i < topics->u.array.len; i++) {
        yajl_val t = topics->u.array.values[i];
        rc = YAJL_IS_STRING(t) ? put_text(c, &f, t, (char *)&log->topics[i])
                               : bp_dec_wrong_type(c, "topics", "a hex string", t);
        if (rc != BP_OK)
            return rc;
    }
    log->topic_count = (uint8_t)topics->u.array.len;
    return BP_OK;
}

static int decode_receipt_body(dctx *c, yajl_val obj, bp_tx *tx, size_t *log_pos)
{
    yajl_val keep[NFIELDS(receipt_fields)];
    int rc = bp_dec_object(c, obj, receipt_fields, NFIELDS(receipt_fields), tx, keep,
                           &tx->receipt_extra_json);
    if (rc == BP_OK)
        rc = check_hash_echo(c, "blockHash", keep[RK_BLOCK_HASH], c->b->hash);
    if (rc == BP_OK)
        rc = check_hash_echo(c, "transactionHash", keep[RK_TX_HASH], tx->hash);
    if (rc == BP_OK)
        rc = check_u64_echo(c, "transactionIndex", keep[RK_TX_INDEX], tx->transaction_index);
    if (rc == BP_OK)
        rc = check_u64_echo(c, "blockNumber", keep[RK_BLOCK_NUMBER], c->b->number);
    if (rc != BP_OK)
        return rc;
    yajl_val logs = keep[RK_LOGS];
    if (!YAJL_IS_ARRAY(logs))
        return bp_dec_wrong_type(c, "logs", "an array", logs);
    tx->log_offset = *log_pos;
    tx->log_count = logs->u.array.len;
    for (size_t j = 0; j < logs->u.array.len; j++) {
        rc = decode_log(c, logs->u.array.values[j], tx, &c->b->logs[*log_pos]);
        if (rc != BP_OK)
            return bp_error_prefix(c->err, "log %zu: ", j);
        (*log_pos)++;
    }
    tx->has_receipt = true;
    return BP_OK;
}

/* yajl_tree_get for one key (first match); testing the first byte skips most strcmp calls. */
yajl_val bp_dec_object_get(yajl_val obj, const char *key)
{
    for (size_t i = 0; i < obj->u.object.len; i++) {
        const char *k = obj->u.object.keys[i];
        if (k[0] == key[0] && strcmp(k, key) == 0)
            return obj->u.object.values[i];
    }
    return NULL;
}

/* Logs land in one block-wide array, so count them first and allocate once. */
static int alloc_logs(dctx *c, yajl_val const *receipts, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        yajl_val r = receipts[i];
        yajl_val logs = YAJL_IS_OBJECT(r) ? bp_dec_object_get(r, "logs") : NULL;
        total += YAJL_IS_ARRAY(logs) ? logs->u.array.len : 0;
    }
    c->b->log_count = 0;
    c->b->logs = NULL;
    if (!total)
        return BP_OK;
    c->b->logs = bp_arena_calloc(c->a, total, sizeof(bp_log));
    if (!c->b->logs)
        return bp_error_set(c->err, BP_ENOMEM, "logs: out of memory");
    return BP_OK;
}

int bp_dec_receipt(dctx *c, yajl_val r, size_t i, size_t *log_pos)
{
    int rc;
    if (!r || YAJL_IS_NULL(r))
        rc = bp_error_set(c->err, BP_ENOTFOUND, "receipt not found (null)");
    else if (!YAJL_IS_OBJECT(r))
        rc = bp_error_set(c->err, BP_EPARSE, "expected a receipt object, got %s",
                          bp_json_type_name(r));
    else
        rc = decode_receipt_body(c, r, &c->b->txs[i], log_pos);
    if (rc != BP_OK && c->b->txs && i < c->b->transaction_count && c->b->txs[i].hash)
        bp_error_prefix(c->err, "receipt %zu (tx %s): ", i, c->b->txs[i].hash);
    else if (rc != BP_OK)
        bp_error_prefix(c->err, "receipt %zu: ", i);
    return rc;
}

#define ZERO_ADDRESS "0x0000000000000000000000000000000000000000"

/* bor (0xPolygon/bor#90) answers a block's state-sync events as one more receipt after the
 * transactions' (hash keccak256("matic-bor-receipt-" + number + hash), no gas), which its
 * block does not list; eth_getBlockReceipts includes it (bor#1654: "receipts length mismatch:
 * 1 vs 0" when it is missing). Since PIP-74 the block lists it too, as type 0x7f. */
int bp_dec_state_sync(dctx *c, yajl_val r, size_t i, bp_tx *tx, size_t *log_pos)
{
    tx_from_block(c->b, i, tx);
    yajl_val h = YAJL_IS_OBJECT(r) ? bp_dec_object_get(r, "transactionHash") : NULL;
    bp_field f = {"transactionHash", K_HASH, MUST, offsetof(bp_tx, hash), false};
    int rc = !r || YAJL_IS_NULL(r) ? bp_error_set(c->err, BP_ENOTFOUND, "receipt not found (null)")
             : !YAJL_IS_OBJECT(r)
                 ? bp_error_set(c->err, BP_EPARSE, "expected a receipt object, got %s",
                                bp_json_type_name(r))
             : !h || !YAJL_IS_STRING(h) ? bp_dec_wrong_type(c, "transactionHash", "a hex string", h)
                                        : put_text(c, &f, h, (char *)tx);
    if (rc == BP_OK)
        rc = decode_receipt_body(c, r, tx, log_pos);
    if (rc == BP_OK && tx->receipt_gas_used != 0)
        rc = bp_error_set(c->err, BP_EPARSE,
                          "one receipt more than the block's %zu transactions, and not a "
                          "state-sync receipt (gasUsed %" PRIu64 ", not 0)",
                          i, tx->receipt_gas_used);
    if (rc != BP_OK)
        return bp_error_prefix(c->err, "receipt %zu: ", i);
    tx->from_address = tx->to_address = ZERO_ADDRESS;
    tx->input = EMPTY_HEXB;
    tx->transaction_type = (bp_opt_u64){.v = 0x7f, .set = true};
    return BP_OK;
}

int bp_dec_append_tx(dctx *c, const bp_tx *sync)
{
    bp_block *b = c->b;
    size_t n = b->transaction_count;
    bp_tx *txs = bp_arena_calloc(c->a, n + 1, sizeof(bp_tx));
    if (!txs)
        return bp_error_set(c->err, BP_ENOMEM, "transactions: out of memory");
    if (n)
        memcpy(txs, b->txs, n * sizeof(bp_tx));
    txs[n] = *sync;
    b->txs = txs;
    b->tx_count = b->tx_count == n ? n + 1 : b->tx_count; /* hashes only: stays 0 */
    return BP_OK;
}

static int decode_receipt_list(yajl_val const *receipts, size_t n, const bp_body *body, bp_block *b,
                               bp_error *err)
{
    dctx c;
    bp_intern intern = {0};
    bp_dec_ctx_init(&c, b, body, err);
    c.intern = &intern;
    int rc = BP_OK;
    size_t ntx = b->transaction_count;
    if (n != ntx && n != ntx + 1) {
        rc = bp_error_set(err, BP_EPARSE, "%zu receipts for %zu transactions", n, ntx);
        goto out;
    }
    rc = alloc_logs(&c, receipts, n);
    size_t log_pos = 0;
    for (size_t i = 0; rc == BP_OK && i < ntx; i++)
        rc = bp_dec_receipt(&c, receipts[i], i, &log_pos);
    bp_tx sync = {0};
    if (rc == BP_OK && n > ntx)
        rc = bp_dec_state_sync(&c, receipts[ntx], ntx, &sync, &log_pos);
    if (rc == BP_OK && n > ntx)
        rc = bp_dec_append_tx(&c, &sync);
    if (rc != BP_OK && n > ntx) /* the count may be what is wrong */
        bp_error_prefix(err, "%zu receipts for %zu transactions: ", n, ntx);
    if (rc == BP_OK) {
        b->log_count = log_pos;
        b->has_receipts = true;
    }
out:
    if (c.g)
        yajl_gen_free(c.g);
    bp_intern_free(&intern);
    if (rc != BP_OK)
        bp_error_prefix(err, "block %" PRIu64 ": ", b->number);
    return rc;
}

int bp_decode_receipt_list(yajl_val const *receipts, size_t n, bp_block *b, bp_error *err)
{
    return decode_receipt_list(receipts, n, NULL, b, err);
}

int bp_decode_block_receipts(yajl_val result, bp_block *b, bp_error *err)
{
    return bp_decode_block_receipts_in(result, NULL, b, err);
}

int bp_decode_block_receipts_in(yajl_val result, const bp_body *body, bp_block *b, bp_error *err)
{
    if (!result || YAJL_IS_NULL(result))
        return bp_error_set(err, BP_ENOTFOUND, "block %" PRIu64 ": receipts not found (null)",
                            b->number);
    if (!YAJL_IS_ARRAY(result))
        return bp_error_set(err, BP_EPARSE,
                            "block %" PRIu64 ": receipts: expected an array, got %s", b->number,
                            bp_json_type_name(result));
    return decode_receipt_list((yajl_val const *)result->u.array.values, result->u.array.len, body,
                               b, err);
}
