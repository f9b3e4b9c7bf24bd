/* decode.c - JSON-RPC answers (yajl_val trees) -> bp_block, bp_tx, bp_log, bp_withdrawal. */
#include "chain/decode.h"

#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>

#include "util/arena.h"
#include "util/hex.h"

/* How a JSON value lands in a struct field. Tables below map JSON keys to these, so one
 * loop over an object's keys decodes it (no per-field lookups: objects are walked once). */
enum fkind {
    K_U64,     /* required-width quantity into uint64_t */
    K_OPT_U64, /* quantity into bp_opt_u64 */
    K_QTY,     /* quantity into bp_qty (256 bits) */
    K_HASH,    /* 32-byte hex, lower-cased */
    K_ADDR,    /* 20-byte hex, lower-cased */
    K_DATA,    /* any-length hex, lower-cased */
    K_JSON,    /* compact JSON text of an array */
    K_BOOL,
    K_KEEP, /* handed back to the caller (nested arrays) */
};

/* 0: optional; 1: required when the object's shape is known; 2: always required. */
enum freq { OPT = 0, REQ = 1, MUST = 2 };

typedef struct bp_field {
    const char *key;
    unsigned char kind;
    unsigned char req;
    unsigned short off;
} bp_field;

#define FLD(key, kind, req, type, member)                                                          \
    {                                                                                              \
        key, kind, req, (unsigned short)offsetof(type, member)                                     \
    }
#define KEEP(key, req)                                                                             \
    {                                                                                              \
        key, K_KEEP, req, 0                                                                        \
    }
#define NFIELDS(t) (sizeof(t) / sizeof((t)[0]))

typedef struct dctx {
    bp_block *b;
    bp_arena *a;
    yajl_gen g; /* created on first use: most blocks have no list fields */
    bp_error *err;
    uintptr_t body; /* zero-copy: strings in [body, body + body_len) are kept in place */
    size_t body_len;
    bool lens; /* every string node has its bp_json_strlen (a streamed element) */
} dctx;

static void dctx_init(dctx *c, bp_block *b, const bp_body *body, bp_error *err)
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

enum { BK_TRANSACTIONS, BK_UNCLES, BK_WITHDRAWALS, BK_NUMBER };
static const bp_field block_fields[] = {
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
    KEEP("blockHash", OPT),
    KEEP("blockNumber", OPT),
    KEEP("transactionIndex", OPT),
    FLD("hash", K_HASH, MUST, bp_tx, hash),
    FLD("from", K_ADDR, MUST, bp_tx, from_address),
    FLD("to", K_ADDR, OPT, bp_tx, to_address),
    FLD("nonce", K_U64, REQ, bp_tx, nonce),
    FLD("gas", K_U64, REQ, bp_tx, gas),
    FLD("value", K_QTY, REQ, bp_tx, value),
    FLD("gasPrice", K_QTY, OPT, bp_tx, gas_price),
    FLD("maxFeePerGas", K_QTY, OPT, bp_tx, max_fee_per_gas),
    FLD("maxPriorityFeePerGas", K_QTY, OPT, bp_tx, max_priority_fee_per_gas),
    FLD("maxFeePerBlobGas", K_QTY, OPT, bp_tx, max_fee_per_blob_gas),
    FLD("type", K_OPT_U64, OPT, bp_tx, transaction_type),
    FLD("chainId", K_OPT_U64, OPT, bp_tx, chain_id),
    FLD("input", K_DATA, REQ, bp_tx, input),
    FLD("v", K_DATA, OPT, bp_tx, v),
    FLD("r", K_DATA, OPT, bp_tx, r),
    FLD("s", K_DATA, OPT, bp_tx, s),
    FLD("yParity", K_DATA, OPT, bp_tx, y_parity),
    FLD("accessList", K_JSON, OPT, bp_tx, access_list_json),
    FLD("blobVersionedHashes", K_JSON, OPT, bp_tx, blob_versioned_hashes_json),
    FLD("authorizationList", K_JSON, OPT, bp_tx, authorization_list_json),
};

enum { RK_LOGS, RK_TX_HASH, RK_BLOCK_HASH };
static const bp_field receipt_fields[] = {
    KEEP("logs", MUST),
    KEEP("transactionHash", MUST),
    KEEP("blockHash", MUST),
    FLD("cumulativeGasUsed", K_U64, MUST, bp_tx, receipt_cumulative_gas_used),
    FLD("gasUsed", K_U64, MUST, bp_tx, receipt_gas_used),
    FLD("contractAddress", K_ADDR, OPT, bp_tx, receipt_contract_address),
    FLD("root", K_DATA, OPT, bp_tx, receipt_root),
    FLD("status", K_OPT_U64, OPT, bp_tx, receipt_status),
    FLD("effectiveGasPrice", K_QTY, OPT, bp_tx, receipt_effective_gas_price),
    FLD("blobGasUsed", K_OPT_U64, OPT, bp_tx, receipt_blob_gas_used),
    FLD("blobGasPrice", K_QTY, OPT, bp_tx, receipt_blob_gas_price),
    FLD("logsBloom", K_DATA, OPT, bp_tx, receipt_logs_bloom),
};

enum { LK_TOPICS, LK_TX_HASH, LK_TX_INDEX };
static const bp_field log_fields[] = {
    KEEP("topics", MUST),
    KEEP("transactionHash", OPT),
    KEEP("transactionIndex", OPT),
    FLD("logIndex", K_U64, MUST, bp_log, log_index),
    FLD("address", K_ADDR, MUST, bp_log, address),
    FLD("data", K_DATA, MUST, bp_log, data),
    FLD("removed", K_BOOL, OPT, bp_log, removed),
};

static const bp_field withdrawal_fields[] = {
    FLD("index", K_U64, MUST, bp_withdrawal, index),
    FLD("validatorIndex", K_U64, MUST, bp_withdrawal, validator_index),
    FLD("address", K_ADDR, MUST, bp_withdrawal, address),
    FLD("amount", K_U64, MUST, bp_withdrawal, amount),
};

/* decode_fields tracks seen keys in a 64-bit mask. */
_Static_assert(NFIELDS(block_fields) <= 64 && NFIELDS(tx_fields) <= 64 &&
                   NFIELDS(receipt_fields) <= 64 && NFIELDS(log_fields) <= 64,
               "field tables must fit the seen mask");

static const char *type_name(yajl_val v)
{
    if (!v || YAJL_IS_NULL(v))
        return "null";
    if (YAJL_IS_STRING(v))
        return "a string";
    if (YAJL_IS_NUMBER(v))
        return "a number";
    if (YAJL_IS_OBJECT(v))
        return "an object";
    if (YAJL_IS_ARRAY(v))
        return "an array";
    return "a boolean";
}

static int wrong_type(dctx *c, const char *key, const char *want, yajl_val v)
{
    return bp_error_set(c->err, BP_EPARSE, "field '%s': expected %s, got %s", key, want,
                        type_name(v));
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
    return f->kind == K_HASH ? 66 : f->kind == K_ADDR ? 42 : len;
}

static int bad_text(dctx *c, const bp_field *f, const char *s)
{
    return bp_error_set(c->err, BP_EPARSE, "field '%s': not %s: \"%.80s\"", f->key,
                        f->kind == K_HASH   ? "a 32-byte hex hash"
                        : f->kind == K_ADDR ? "a 20-byte hex address"
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

static int put_text(dctx *c, const bp_field *f, yajl_val v, char *dst)
{
    const char *s = v->u.string;
    char *in = in_body(c, s);
    if (in)
        return put_text_inplace(c, f, in, bp_json_strlen(v), dst);
    size_t len = str_len(c, v);
    size_t want = text_want(f, len);
    char *p = len == want ? bp_arena_alloc(c->a, len + 1) : NULL;
    if (len == want && !p)
        return bp_error_set(c->err, BP_ENOMEM, "field '%s': out of memory", f->key);
    if (!p || !copy_hex_lower(p, s, len))
        return bad_text(c, f, s);
    memcpy(dst, &p, sizeof(p));
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

static int put_field(dctx *c, const bp_field *f, yajl_val v, char *base, yajl_val *keep)
{
    char *dst = base + f->off;
    switch (f->kind) {
    case K_KEEP:
        *keep = v;
        return BP_OK;
    case K_BOOL:
        if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
            return wrong_type(c, f->key, "a boolean", v);
        *(bool *)(void *)dst = YAJL_IS_TRUE(v);
        return BP_OK;
    case K_JSON:
        if (!YAJL_IS_ARRAY(v))
            return wrong_type(c, f->key, "an array", v);
        return json_text(c, f->key, v, (const char **)(void *)dst);
    default:
        break;
    }
    if (!YAJL_IS_STRING(v))
        return wrong_type(c, f->key, "a hex string", v);
    if (f->kind == K_U64 || f->kind == K_OPT_U64 || f->kind == K_QTY)
        return put_quantity(c, f, v, dst);
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
    return t == block_fields        ? g_guess[0]
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

/* One pass over obj's keys; unknown keys are ignored, null counts as absent and a key given
 * twice with values is refused. seen gets
 * a bit per table entry that had a value. keep[i] receives K_KEEP values (NULL if absent). */
static int decode_fields(dctx *c, yajl_val obj, const bp_field *t, size_t n, void *base,
                         yajl_val *keep, uint64_t *seen)
{
    *seen = 0;
    for (size_t i = 0; i < n; i++)
        keep[i] = NULL;
    unsigned char *guess = guesses(t);
    for (size_t k = 0; k < obj->u.object.len; k++) {
        size_t idx = 0;
        const bp_field *f = lookup(t, n, obj->u.object.keys[k], k, guess, &idx);
        yajl_val v = obj->u.object.values[k];
        if (!f || !v || YAJL_IS_NULL(v))
            continue;
        /* Which one would be meant? A streamed decode also reads the first one early. */
        if (*seen & (1ULL << idx))
            return bp_error_set(c->err, BP_EPARSE, "field '%s': given twice", f->key);
        int rc = put_field(c, f, v, base, &keep[idx]);
        if (rc != BP_OK)
            return rc;
        *seen |= 1ULL << idx;
    }
    return BP_OK;
}

static int check_required(dctx *c, const bp_field *t, size_t n, uint64_t seen, int level)
{
    for (size_t i = 0; i < n; i++) {
        if (t[i].req >= level && t[i].req != OPT && !(seen & (1ULL << i)))
            return bp_error_set(c->err, BP_EPARSE, "field '%s': missing or null", t[i].key);
    }
    return BP_OK;
}

static int decode_object(dctx *c, yajl_val obj, const bp_field *t, size_t n, void *base,
                         yajl_val *keep)
{
    uint64_t seen;
    int rc = decode_fields(c, obj, t, n, base, keep, &seen);
    return rc != BP_OK ? rc : check_required(c, t, n, seen, REQ);
}

/* Strings equal ignoring ASCII case: hashes are compared before lower-casing. Nodes send
 * lower case, so the exact comparison nearly always settles it. */
static bool hex_equal(const char *a, const char *b)
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
    bp_field f = {key, K_U64, MUST, 0};
    int rc = put_field(c, &f, v, (char *)&got, NULL);
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
        return wrong_type(c, key, "a hex string", v);
    if (!hex_equal(v->u.string, want))
        return bp_error_set(c->err, BP_EPARSE, "field '%s': is %.80s, expected %s", key,
                            v->u.string, want);
    return BP_OK;
}

static int decode_tx_body(dctx *c, yajl_val obj, size_t i, bp_tx *tx)
{
    yajl_val keep[NFIELDS(tx_fields)];
    uint64_t seen;
    int rc = decode_fields(c, obj, tx_fields, NFIELDS(tx_fields), tx, keep, &seen);
    if (rc != BP_OK)
        return rc;
    bool known = !tx->transaction_type.set || tx->transaction_type.v <= 4;
    rc = check_required(c, tx_fields, NFIELDS(tx_fields), seen, known ? REQ : MUST);
    if (rc == BP_OK)
        rc = check_hash_echo(c, "blockHash", keep[TK_BLOCK_HASH], c->b->hash);
    if (rc == BP_OK)
        rc = check_u64_echo(c, "blockNumber", keep[TK_BLOCK_NUMBER], c->b->number);
    if (rc == BP_OK)
        rc = check_u64_echo(c, "transactionIndex", keep[TK_TX_INDEX], i);
    if (rc == BP_OK && !known)
        rc = json_text(c, "(raw transaction)", obj, &tx->raw_json);
    if (rc == BP_OK && !tx->input)
        tx->input = "0x"; /* only reachable for unknown types, which may omit it */
    return rc;
}

static void tx_from_block(const bp_block *b, size_t i, bp_tx *tx)
{
    tx->block_hash = b->hash;
    tx->block_number = b->number;
    tx->block_timestamp = b->timestamp;
    tx->transaction_index = i;
}

static int decode_tx(dctx *c, yajl_val v, size_t i, bp_tx *tx)
{
    tx_from_block(c->b, i, tx);
    int rc = YAJL_IS_OBJECT(v)
                 ? decode_tx_body(c, v, i, tx)
                 : bp_error_set(c->err, BP_EPARSE, "expected a transaction object, got %s",
                                type_name(v));
    if (rc != BP_OK)
        bp_error_prefix(c->err, "transaction %zu: ", i);
    return rc;
}

static int decode_tx_hash(dctx *c, yajl_val v, size_t i, bp_tx *tx)
{
    tx_from_block(c->b, i, tx);
    if (YAJL_IS_OBJECT(v))
        v = yajl_tree_get(v, (const char *[]){"hash", NULL}, yajl_t_any);
    bp_field f = {"hash", K_HASH, MUST, offsetof(bp_tx, hash)};
    int rc = v && YAJL_IS_STRING(v) ? put_text(c, &f, v, (char *)tx)
                                    : wrong_type(c, "transactions", "a tx hash", v);
    if (rc != BP_OK)
        bp_error_prefix(c->err, "transaction %zu: ", i);
    return rc;
}

static int decode_txs(dctx *c, yajl_val arr, bool full)
{
    if (!YAJL_IS_ARRAY(arr))
        return wrong_type(c, "transactions", "an array", arr);
    bp_block *b = c->b;
    b->transaction_count = arr->u.array.len;
    if (b->transaction_count == 0)
        return BP_OK;
    b->txs = bp_arena_calloc(c->a, b->transaction_count, sizeof(bp_tx));
    if (!b->txs)
        return bp_error_set(c->err, BP_ENOMEM, "transactions: out of memory");
    for (size_t i = 0; i < arr->u.array.len; i++) {
        yajl_val v = arr->u.array.values[i];
        int rc = full ? decode_tx(c, v, i, &b->txs[i]) : decode_tx_hash(c, v, i, &b->txs[i]);
        if (rc != BP_OK)
            return rc;
    }
    b->tx_count = full ? b->transaction_count : 0;
    return BP_OK;
}

static int decode_withdrawals(dctx *c, yajl_val arr)
{
    if (!arr)
        return BP_OK;
    if (!YAJL_IS_ARRAY(arr))
        return wrong_type(c, "withdrawals", "an array", arr);
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
                     ? decode_object(c, v, withdrawal_fields, NFIELDS(withdrawal_fields),
                                     &b->withdrawals[i], keep)
                     : wrong_type(c, "withdrawals", "an object", v);
        if (rc != BP_OK)
            return bp_error_prefix(c->err, "withdrawal %zu: ", i);
    }
    return BP_OK;
}

static int decode_block_body(dctx *c, yajl_val obj, bool full)
{
    yajl_val keep[NFIELDS(block_fields)];
    int rc = decode_object(c, obj, block_fields, NFIELDS(block_fields), c->b, keep);
    if (rc != BP_OK)
        return rc;
    yajl_val uncles = keep[BK_UNCLES];
    if (uncles && !YAJL_IS_ARRAY(uncles))
        return wrong_type(c, "uncles", "an array", uncles);
    c->b->uncle_count = uncles ? uncles->u.array.len : 0;
    rc = decode_txs(c, keep[BK_TRANSACTIONS], full);
    return rc != BP_OK ? rc : decode_withdrawals(c, keep[BK_WITHDRAWALS]);
}

/* "block 483920: " when the number is readable, else the raw text the node sent. */
static void prefix_block(bp_error *err, yajl_val obj, const bp_block *b)
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
        return bp_error_set(err, BP_EPARSE, "block: expected an object, got %s", type_name(result));
    dctx c;
    dctx_init(&c, b, body, err);
    int rc = decode_block_body(&c, result, full_txs);
    if (c.g)
        yajl_gen_free(c.g);
    if (rc != BP_OK)
        prefix_block(err, result, b);
    return rc;
}

/* ---- receipts ---- */

static int decode_log(dctx *c, yajl_val v, const bp_tx *tx, bp_log *log)
{
    if (!YAJL_IS_OBJECT(v))
        return bp_error_set(c->err, BP_EPARSE, "expected a log object, got %s", type_name(v));
    yajl_val keep[NFIELDS(log_fields)];
    int rc = decode_object(c, v, log_fields, NFIELDS(log_fields), log, keep);
    if (rc == BP_OK)
        rc = check_hash_echo(c, "transactionHash", keep[LK_TX_HASH], tx->hash);
    if (rc == BP_OK)
        rc = check_u64_echo(c, "transactionIndex", keep[LK_TX_INDEX], tx->transaction_index);
    if (rc != BP_OK)
        return rc;
    log->transaction_hash = tx->hash;
    log->transaction_index = tx->transaction_index;
    yajl_val topics = keep[LK_TOPICS];
    if (!YAJL_IS_ARRAY(topics))
        return wrong_type(c, "topics", "an array", topics);
    if (topics->u.array.len > 4)
        return bp_error_set(c->err, BP_EPARSE, "field 'topics': %zu topics, at most 4",
                            topics->u.array.len);
    bp_field f = {"topics", K_HASH, MUST, 0};
    for (size_t i = 0; i < topics->u.array.len; i++) {
        yajl_val t = topics->u.array.values[i];
        rc = YAJL_IS_STRING(t) ? put_text(c, &f, t, (char *)&log->topics[i])
                               : wrong_type(c, "topics", "a hex string", t);
        if (rc != BP_OK)
            return rc;
    }
    log->topic_count = (uint8_t)topics->u.array.len;
    return BP_OK;
}

static int decode_receipt_body(dctx *c, yajl_val obj, bp_tx *tx, size_t *log_pos)
{
    yajl_val keep[NFIELDS(receipt_fields)];
    int rc = decode_object(c, obj, receipt_fields, NFIELDS(receipt_fields), tx, keep);
    if (rc == BP_OK)
        rc = check_hash_echo(c, "blockHash", keep[RK_BLOCK_HASH], c->b->hash);
    if (rc == BP_OK)
        rc = check_hash_echo(c, "transactionHash", keep[RK_TX_HASH], tx->hash);
    if (rc != BP_OK)
        return rc;
    yajl_val logs = keep[RK_LOGS];
    if (!YAJL_IS_ARRAY(logs))
        return wrong_type(c, "logs", "an array", logs);
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
static yajl_val object_get(yajl_val obj, const char *key)
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
        yajl_val logs = YAJL_IS_OBJECT(r) ? object_get(r, "logs") : NULL;
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

static int decode_receipt(dctx *c, yajl_val r, size_t i, size_t *log_pos)
{
    int rc;
    if (!r || YAJL_IS_NULL(r))
        rc = bp_error_set(c->err, BP_ENOTFOUND, "receipt not found (null)");
    else if (!YAJL_IS_OBJECT(r))
        rc = bp_error_set(c->err, BP_EPARSE, "expected a receipt object, got %s", type_name(r));
    else
        rc = decode_receipt_body(c, r, &c->b->txs[i], log_pos);
    if (rc != BP_OK)
        bp_error_prefix(c->err, "receipt %zu: ", i);
    return rc;
}

static int decode_receipt_list(yajl_val const *receipts, size_t n, const bp_body *body, bp_block *b,
                               bp_error *err)
{
    dctx c;
    dctx_init(&c, b, body, err);
    int rc = BP_OK;
    if (n != b->transaction_count) {
        rc = bp_error_set(err, BP_EPARSE, "%zu receipts for %zu transactions", n,
                          b->transaction_count);
        goto out;
    }
    rc = alloc_logs(&c, receipts, n);
    size_t log_pos = 0;
    for (size_t i = 0; rc == BP_OK && i < n; i++)
        rc = decode_receipt(&c, receipts[i], i, &log_pos);
    if (rc == BP_OK) {
        b->log_count = log_pos;
        b->has_receipts = true;
    }
out:
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
                            type_name(result));
    return decode_receipt_list((yajl_val const *)result->u.array.values, result->u.array.len, body,
                               b, err);
}

/* ---- streaming: transactions and receipts decoded as their objects arrive ---- */

/* Streamed and streamed-into trees are bp_json's: every string node has its length. Errors go
 * to err; its code stays set, so the rest of that block's elements are skipped. */
static void stream_dctx(dctx *c, bp_block *b, bp_error *err)
{
    dctx_init(c, b, NULL, err);
    c->lens = true;
}

static int dctx_done(dctx *c, int rc)
{
    if (c->g)
        yajl_gen_free(c->g);
    return rc;
}

/* Doubles *cap until n fit; the vector stays malloc'd (and moves) until the block adopts it. */
static int grow(void **v, size_t *cap, size_t n, size_t size)
{
    if (n <= *cap)
        return BP_OK;
    size_t cap2 = *cap ? *cap : 64;
    while (cap2 < n)
        cap2 *= 2;
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
    stream_dctx(&c, s->b, &scratch);
    for (size_t i = 0; i < NFIELDS(id); i++)
        if (!v[i] || !YAJL_IS_STRING(v[i]) || put_field(&c, &id[i], v[i], (char *)s->b, NULL))
            return false;
    return s->txs_on = true;
}

int bp_block_stream_tx(bp_block_stream *s, size_t index, yajl_val tx)
{
    dctx c;
    if (s->txs_err.code != BP_OK)
        return s->txs_err.code;
    stream_dctx(&c, s->b, &s->txs_err);
    int rc = index == s->n_txs
                 ? BP_OK
                 : bp_error_set(c.err, BP_EPARSE, "transaction %zu: out of order", index);
    if (rc == BP_OK && grow((void **)&s->txs, &s->cap_txs, index + 1, sizeof(bp_tx)) != BP_OK)
        rc = bp_error_set(c.err, BP_ENOMEM, "transactions: out of memory");
    if (rc == BP_OK)
        rc = decode_tx(&c, tx, index, &s->txs[index]);
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
    yajl_val logs = YAJL_IS_OBJECT(r) ? object_get(r, "logs") : NULL;
    return YAJL_IS_ARRAY(logs) ? logs->u.array.len : 0;
}

int bp_block_stream_receipt(bp_block_stream *s, size_t index, yajl_val r)
{
    dctx c;
    bp_block *b = s->b;
    s->n_seen++; /* a wrong count is reported before any decode error, as for a tree */
    if (s->receipts_err.code != BP_OK || index >= b->transaction_count)
        return s->receipts_err.code;
    stream_dctx(&c, b, &s->receipts_err);
    int rc = index + 1 == s->n_seen
                 ? BP_OK
                 : bp_error_set(c.err, BP_EPARSE, "receipt %zu: out of order", index);
    if (rc == BP_OK &&
        grow((void **)&s->logs, &s->cap_logs, s->n_logs + log_len(r), sizeof(bp_log)) != BP_OK)
        rc = bp_error_set(c.err, BP_ENOMEM, "logs: out of memory");
    b->logs = s->logs; /* decode_receipt writes logs[n_logs..] */
    if (rc == BP_OK)
        rc = decode_receipt(&c, r, index, &s->n_logs);
    return dctx_done(&c, rc);
}

/* The block owns v from now on (memory accounting counts it). */
static int adopt_vec(bp_block *b, void **v, size_t bytes, bp_error *err)
{
    if (!*v)
        return BP_OK;
    if (bp_arena_adopt_fn(b->arena, *v, bytes, free) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    *v = NULL;
    return BP_OK;
}

/* Streamed elements are gone from the tree; anything left there is what was not an object. */
static int streamed_rest(yajl_val arr, const char *what, bp_error *err)
{
    if (!arr || !YAJL_IS_ARRAY(arr) || arr->u.array.len == 0)
        return BP_OK;
    return bp_error_set(err, BP_EPARSE, "%s: expected objects, got %s", what,
                        type_name(arr->u.array.values[0]));
}

static int finish_streamed_txs(dctx *c, bp_block_stream *s, yajl_val arr)
{
    bp_block *b = s->b;
    int rc = streamed_rest(arr, "transactions", c->err);
    if (rc == BP_OK)
        rc = adopt_vec(b, (void **)&s->txs, s->n_txs * sizeof(bp_tx), c->err);
    if (rc != BP_OK)
        return rc;
    b->txs = s->n_txs ? b->txs : NULL;
    b->transaction_count = b->tx_count = s->n_txs;
    return BP_OK;
}

static int decode_streamed_block(yajl_val result, bp_block_stream *s, bp_error *err)
{
    dctx c;
    stream_dctx(&c, s->b, err);
    yajl_val keep[NFIELDS(block_fields)];
    bp_tx *txs = s->txs; /* adopted below: decode_fields must not see a half-made block */
    /* In the tree decoder's order: header, uncles, transactions, withdrawals. */
    int rc = decode_object(&c, result, block_fields, NFIELDS(block_fields), s->b, keep);
    yajl_val uncles = keep[BK_UNCLES];
    if (rc == BP_OK && uncles && !YAJL_IS_ARRAY(uncles))
        rc = wrong_type(&c, "uncles", "an array", uncles);
    s->b->uncle_count = rc == BP_OK && uncles ? uncles->u.array.len : 0;
    s->b->txs = txs;
    if (rc == BP_OK && s->txs_err.code != BP_OK)
        rc = (*err = s->txs_err).code;
    /* The streamed txs took the header of the answer they were in: it must be this one. */
    if (rc == BP_OK && s->n_txs &&
        (txs[0].block_number != s->b->number || !hex_equal(txs[0].block_hash, s->b->hash)))
        rc = bp_error_set(err, BP_EPARSE, "transactions streamed from another answer");
    if (rc == BP_OK)
        rc = finish_streamed_txs(&c, s, keep[BK_TRANSACTIONS]);
    if (rc == BP_OK)
        rc = decode_withdrawals(&c, keep[BK_WITHDRAWALS]);
    if (rc != BP_OK)
        prefix_block(err, result, s->b);
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
    if (n != b->transaction_count)
        rc = bp_error_set(err, BP_EPARSE, "%zu receipts for %zu transactions", n,
                          b->transaction_count);
    else if (s->receipts_err.code != BP_OK)
        rc = (*err = s->receipts_err).code;
    else if (result->u.array.len)
        rc = bp_error_set(err, BP_EPARSE, "receipt %zu: expected a receipt object, got %s",
                          s->n_seen, type_name(result->u.array.values[0]));
    if (rc == BP_OK)
        rc = adopt_vec(b, (void **)&s->logs, s->n_logs * sizeof(bp_log), err);
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

/* ---- JSON-RPC envelope ---- */

/* The request id as a slot index, or -1 when absent; -2 when not a usable id. */
static long long answer_id(yajl_val obj)
{
    yajl_val id = yajl_tree_get(obj, (const char *[]){"id", NULL}, yajl_t_any);
    if (!id || YAJL_IS_NULL(id))
        return -1;
    if (YAJL_IS_INTEGER(id))
        return id->u.number.i >= 0 ? id->u.number.i : -2;
    if (YAJL_IS_STRING(id)) {
        char *end;
        const char *s = id->u.string;
        unsigned long long x = strtoull(s, &end, 10);
        return *s >= '0' && *s <= '9' && !*end && x < (1ULL << 62) ? (long long)x : -2;
    }
    return -2;
}

static int split_answer(yajl_val obj, yajl_val *result, yajl_val *error, bp_error *err)
{
    if (!YAJL_IS_OBJECT(obj))
        return bp_error_set(err, BP_EPARSE, "JSON-RPC answer: expected an object, got %s",
                            type_name(obj));
    yajl_val r = yajl_tree_get(obj, (const char *[]){"result", NULL}, yajl_t_any);
    yajl_val e = yajl_tree_get(obj, (const char *[]){"error", NULL}, yajl_t_any);
    if (e && YAJL_IS_NULL(e))
        e = NULL;
    if (!r && !e)
        return bp_error_set(err, BP_EPARSE, "JSON-RPC answer has neither 'result' nor 'error'");
    *result = e ? NULL : r;
    *error = e;
    return BP_OK;
}

static int place_batch(yajl_val arr, size_t n, yajl_val *results, yajl_val *errors, bp_error *err)
{
    if (arr->u.array.len != n)
        return bp_error_set(err, BP_EPARSE, "batch answer has %zu entries, expected %zu",
                            arr->u.array.len, n);
    for (size_t i = 0; i < n; i++) {
        yajl_val obj = arr->u.array.values[i];
        yajl_val r = NULL, e = NULL;
        int rc = split_answer(obj, &r, &e, err);
        if (rc != BP_OK)
            return bp_error_prefix(err, "batch entry %zu: ", i);
        long long id = answer_id(obj);
        size_t slot = id == -1 ? i : (size_t)id;
        if (id == -2 || slot >= n)
            return bp_error_set(err, BP_EPARSE, "batch entry %zu: unexpected id", i);
        if (results[slot] || errors[slot])
            return bp_error_set(err, BP_EPARSE, "batch entry %zu: duplicate id %zu", i, slot);
        results[slot] = r;
        errors[slot] = e;
    }
    return BP_OK;
}

/* One object for a batch: the node refused the whole batch; every slot gets its error. */
static int place_single(yajl_val obj, size_t n, yajl_val *results, yajl_val *errors, bp_error *err)
{
    yajl_val r = NULL, e = NULL;
    int rc = split_answer(obj, &r, &e, err);
    if (rc != BP_OK)
        return rc;
    if (n > 1 && !e)
        return bp_error_set(err, BP_EPARSE, "one answer for a batch of %zu requests", n);
    for (size_t i = 0; i < n; i++) {
        results[i] = r;
        errors[i] = e;
    }
    return BP_OK;
}

int bp_decode_rpc_tree(yajl_val root, size_t n, yajl_val *results, yajl_val *errors, bp_error *err)
{
    for (size_t i = 0; i < n; i++)
        results[i] = errors[i] = NULL;
    if (n == 0)
        return bp_error_set(err, BP_EINVAL, "no requests to match answers to");
    if (YAJL_IS_ARRAY(root))
        return place_batch(root, n, results, errors, err);
    if (YAJL_IS_OBJECT(root))
        return place_single(root, n, results, errors, err);
    return bp_error_set(err, BP_EPARSE, "JSON-RPC answer: expected an object or array, got %s",
                        type_name(root));
}

/* body is written to (and must outlive the tree) when inplace. */
static int parse_body(char *body, size_t len, bool inplace, yajl_val *root, bp_error *err)
{
    if (!body)
        return bp_error_set(err, BP_EPARSE, "empty JSON-RPC answer");
    char ebuf[256];
    *root = inplace ? bp_json_parse_inplace(body, len, ebuf, sizeof(ebuf))
                    : bp_json_parse(body, len, ebuf, sizeof(ebuf));
    if (!*root) {
        char *nl = strchr(ebuf, '\n');
        if (nl)
            *nl = '\0';
        return bp_error_set(err, BP_EPARSE, "JSON-RPC answer is not JSON: %s", ebuf);
    }
    return BP_OK;
}

static int decode_rpc_response(char *body, size_t len, bool inplace, size_t n, yajl_val *root,
                               yajl_val *results, yajl_val *errors, bp_error *err)
{
    *root = NULL;
    for (size_t i = 0; i < n; i++)
        results[i] = errors[i] = NULL;
    if (n == 0)
        return bp_error_set(err, BP_EINVAL, "no requests to match answers to");
    int rc = parse_body(body, len, inplace, root, err);
    if (rc != BP_OK)
        return rc;
    rc = bp_decode_rpc_tree(*root, n, results, errors, err);
    if (rc != BP_OK) {
        bp_json_free(*root);
        *root = NULL;
        for (size_t i = 0; i < n; i++)
            results[i] = errors[i] = NULL;
    }
    return rc;
}

int bp_decode_rpc_response(const char *body, size_t len, size_t n, yajl_val *root,
                           yajl_val *results, yajl_val *errors, bp_error *err)
{
    /* Not written through: the copying parser only reads. */
    return decode_rpc_response((char *)(uintptr_t)body, len, false, n, root, results, errors, err);
}

int bp_decode_rpc_response_inplace(char *body, size_t len, size_t n, yajl_val *root,
                                   yajl_val *results, yajl_val *errors, bp_error *err)
{
    return decode_rpc_response(body, len, true, n, root, results, errors, err);
}

/* Case-insensitive substring test (strcasestr is a GNU extension). */
static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == needle[i])
            i++;
        if (i == n)
            return true;
    }
    return false;
}

static int classify_rpc_error(long long code, const char *msg)
{
    if (code == -32601 || contains_ci(msg, "method not found") ||
        contains_ci(msg, "not supported") || contains_ci(msg, "does not exist"))
        return BP_EUNSUPPORTED;
    if (code == -32005 || code == 429 || contains_ci(msg, "rate limit") ||
        contains_ci(msg, "too many requests"))
        return BP_ERATELIMIT;
    return BP_ERPC;
}

int bp_decode_rpc_error(yajl_val error, const char *method, bp_error *err)
{
    const char *m = method ? method : "request";
    if (!error || !YAJL_IS_OBJECT(error))
        return bp_error_set(err, BP_ERPC, "%s: node error (malformed error object: %s)", m,
                            type_name(error));
    yajl_val code = yajl_tree_get(error, (const char *[]){"code", NULL}, yajl_t_any);
    yajl_val msg = yajl_tree_get(error, (const char *[]){"message", NULL}, yajl_t_any);
    long long c = code && YAJL_IS_INTEGER(code) ? code->u.number.i : 0;
    const char *text = msg && YAJL_IS_STRING(msg) ? msg->u.string : "";
    return bp_error_set(err, classify_rpc_error(c, text), "%s: node error %lld: %.300s", m, c,
                        text);
}
