/* arch_decode.c - Arch Network JSON answers and events into table rows (shapes: docs/ARCH.md). */
#include "arch/arch_decode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chain/json.h"
#include "util/buf.h"
#include "util/hex.h"
#include "util/jsonw.h"

#define LIST_MAX 1000000 /* entries of one list: a guard against absurd answers */

static const char *const STATUS[] = {"queued", "processing", "processed", "failed"};
static const char *const TOPIC[BP_ARCH_T_COUNT] = {
    "block", "transaction", "account_update", "rolledback_transactions", "reapplied_transactions",
    "dkg"};

const char *bp_arch_status_name(enum bp_arch_status s)
{
    return (unsigned)s < 4 ? STATUS[s] : "?";
}

const char *bp_arch_topic_name(enum bp_arch_topic t)
{
    return (unsigned)t < BP_ARCH_T_COUNT ? TOPIC[t] : "?";
}

static int bad(bp_error *err, const char *ctx, const char *field, const char *want, yajl_val v)
{
    return bp_error_set(err, BP_EPARSE, "%s: %s: expected %s, got %s", ctx, field, want,
                        v ? bp_json_type_name(v) : "nothing (missing)");
}

static yajl_val member(yajl_val obj, const char *key)
{
    return yajl_tree_get(obj, (const char *[]){key, NULL}, yajl_t_any);
}

/* 64 hex digits (0x allowed) into out, lower-cased. */
static bool hex64(const char *s, char out[BP_ARCH_HEX])
{
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2;
    for (int i = 0; i < 64; i++) {
        int d = bp_hex_digit((unsigned char)s[i]);
        if (d < 0)
            return false;
        out[i] = "0123456789abcdef"[d];
    }
    out[64] = '\0';
    return s[64] == '\0';
}

/* A list of n byte numbers (the SDK's serialized Uint8Array) into hex; false if not one. */
static bool byte_array(yajl_val v, size_t n, char *out)
{
    if (!v || !YAJL_IS_ARRAY(v) || v->u.array.len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        yajl_val x = v->u.array.values[i];
        if (!YAJL_IS_INTEGER(x) || x->u.number.i < 0 || x->u.number.i > 255)
            return false;
        out[2 * i] = "0123456789abcdef"[x->u.number.i >> 4];
        out[2 * i + 1] = "0123456789abcdef"[x->u.number.i & 15];
    }
    out[2 * n] = '\0';
    return true;
}

/* A hash or key: 64 hex digits, or (keys) 32 byte numbers. */
static int get_hash(yajl_val v, const char *ctx, const char *field, bool bytes_ok,
                    char out[BP_ARCH_HEX], bp_error *err)
{
    if (v && YAJL_IS_STRING(v) && hex64(v->u.string, out))
        return 0;
    if (bytes_ok && byte_array(v, 32, out))
        return 0;
    if (v && YAJL_IS_STRING(v))
        return bp_error_set(err, BP_EPARSE, "%s: %s: expected 64 hex digits, got \"%.80s\"", ctx,
                            field, v->u.string);
    return bad(err, ctx, field, bytes_ok ? "64 hex digits or 32 bytes" : "64 hex digits", v);
}

/* A non-negative integer, or (strings_ok) its decimal text (bitcoin_block_height). */
static int get_u64(yajl_val v, const char *ctx, const char *field, bool strings_ok, uint64_t *out,
                   bp_error *err)
{
    if (v && YAJL_IS_INTEGER(v) && v->u.number.i >= 0) {
        *out = (uint64_t)v->u.number.i;
        return 0;
    }
    if (strings_ok && v && YAJL_IS_STRING(v) && v->u.string[0] >= '0' && v->u.string[0] <= '9') {
        char *end;
        errno = 0;
        unsigned long long x = strtoull(v->u.string, &end, 10);
        if (!*end && errno == 0) {
            *out = x;
            return 0;
        }
    }
    return bad(err, ctx, field,
               strings_ok ? "a non-negative integer (or its digits)" : "a non-negative integer", v);
}

/* A timestamp in unix seconds. The node sends Block.timestamp as a u128 number (arch-sdk
 * sdk/src/types/block.rs; its rpc_wire_format.rs fixture: milliseconds), the block event's as
 * the digits of a u128 (sdk/src/types/event.rs serialize_u128_as_string), the TypeScript SDK
 * a number with no unit; arch-rust-indexer reads microseconds (indexer/src/utils.rs). The unit
 * is told by size: a date from 1973 to 5138 is below 1e11 in seconds, in [1e11, 1e14) in
 * milliseconds, [1e14, 1e17) in microseconds, above in nanoseconds (docs/ARCH.md). */
static int get_time(yajl_val v, const char *ctx, const char *field, uint64_t *out, bp_error *err)
{
    uint64_t x = 0;
    int rc = get_u64(v, ctx, field, true, &x, err);
    if (rc != 0 && v && YAJL_IS_STRING(v))
        rc =
            bp_error_set(err, BP_EPARSE, "%s: %s: expected a time (digits of a u64), got \"%.60s\"",
                         ctx, field, v->u.string);
    if (rc != 0)
        return rc;
    *out = x < 100000000000ull         ? x
           : x < 100000000000000ull    ? x / 1000u
           : x < 100000000000000000ull ? x / 1000000u
                                       : x / 1000000000u;
    return 0;
}

static int dup(const char *s, char **out, bp_error *err)
{
    *out = strdup(s);
    return *out ? 0 : bp_error_set(err, BP_ENOMEM, "out of memory");
}

static int dup_buf(bp_buf *b, char **out, bp_error *err)
{
    int rc = bp_buf_putc(b, '\0');
    return rc != 0 ? bp_error_set(err, rc, "out of memory") : dup(b->data, out, err);
}

/* A JSON array of hashes into a list (owned by *out). */
static int hash_list(yajl_val v, const char *ctx, const char *field, bp_arch_hash **out,
                     size_t *count, bp_error *err)
{
    if (!v || !YAJL_IS_ARRAY(v) || v->u.array.len > LIST_MAX)
        return bad(err, ctx, field, "an array of hashes", v);
    size_t n = v->u.array.len;
    *out = n ? calloc(n, sizeof(**out)) : NULL;
    *count = 0;
    if (n && !*out)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof(name), "%s[%zu]", field, i);
        int rc = get_hash(v->u.array.values[i], ctx, name, true, (*out)[i], err);
        if (rc != 0)
            return rc;
        *count = i + 1;
    }
    return 0;
}

int bp_arch_result(const char *text, size_t len, const char *method, yajl_val *root,
                   yajl_val *result, bp_error *err)
{
    char why[256];
    *root = bp_json_parse(text, len, why, sizeof(why));
    *result = NULL;
    if (!*root)
        return bp_error_set(err, BP_EPARSE, "%s answer: not JSON: %s", method, why);
    if (!YAJL_IS_OBJECT(*root))
        return bad(err, method, "answer", "an object", *root);
    yajl_val e = member(*root, "error");
    if (e && !YAJL_IS_NULL(e)) {
        yajl_val code = member(e, "code"), msg = member(e, "message");
        long long c = code && YAJL_IS_INTEGER(code) ? code->u.number.i : 0;
        return bp_error_set(err, c == 404 ? BP_ENOTFOUND : BP_ERPC, "%s: node error %lld: %.200s",
                            method, c, msg && YAJL_IS_STRING(msg) ? msg->u.string : "(no message)");
    }
    *result = member(*root, "result");
    if (!*result)
        return bad(err, method, "result", "a result", NULL);
    return 0;
}

/* ---- get_block ---- */

int bp_arch_decode_block(yajl_val r, const char *hash, bp_arch_block *b, bp_error *err)
{
    static const char ctx[] = "get_block result";
    memset(b, 0, sizeof(*b));
    if (!r || !YAJL_IS_OBJECT(r))
        return bad(err, ctx, "result", "a Block object", r);
    int rc = hex64(hash, b->hash) ? 0
                                  : bp_error_set(err, BP_EINVAL,
                                                 "%s: the block hash asked for "
                                                 "is not 64 hex digits",
                                                 ctx);
    /* arch-sdk sdk/src/types/block.rs: Hash([u8; 32]) is an array of 32 numbers; the
     * TypeScript SDK's struct/block.ts: a hex string */
    if (rc == 0)
        rc = get_hash(member(r, "previous_block_hash"), ctx, "previous_block_hash", true,
                      b->prev_hash, err);
    if (rc == 0)
        rc = get_u64(member(r, "block_height"), ctx, "block_height", false, &b->height, err);
    if (rc == 0)
        rc = get_time(member(r, "timestamp"), ctx, "timestamp", &b->timestamp, err);
    /* u64 in block.rs, a string in block.ts, an Option (null) in arch-rust-indexer's
     * indexer/src/arch_rpc/mod.rs BlockResponse */
    yajl_val btc = member(r, "bitcoin_block_height");
    b->no_bitcoin_height = !btc || YAJL_IS_NULL(btc);
    if (rc == 0 && !b->no_bitcoin_height)
        rc = get_u64(btc, ctx, "bitcoin_block_height", true, &b->bitcoin_height, err);
    if (rc == 0)
        rc = hash_list(member(r, "transactions"), ctx, "transactions", &b->txids, &b->txid_count,
                       err);
    /* transactions_count and merkle_root: block.ts only (block.rs has neither) */
    yajl_val count = member(r, "transactions_count"), root = member(r, "merkle_root");
    b->tx_count = b->txid_count;
    if (rc == 0 && count && !YAJL_IS_NULL(count)) {
        rc = get_u64(count, ctx, "transactions_count", false, &b->tx_count, err);
        if (rc == 0 && b->tx_count != b->txid_count)
            rc = bp_error_set(err, BP_EPARSE,
                              "%s: transactions_count: %llu, but transactions lists %zu", ctx,
                              (unsigned long long)b->tx_count, b->txid_count);
    }
    if (rc == 0 && root && !YAJL_IS_NULL(root))
        rc = get_hash(root, ctx, "merkle_root", true, b->merkle_root, err);
    if (rc != 0)
        bp_arch_block_free(b);
    return rc;
}

void bp_arch_block_free(bp_arch_block *b)
{
    free(b->txids);
    b->txids = NULL;
    b->txid_count = 0;
}

/* ---- get_processed_transaction ---- */

static bool status_word(const char *s, enum bp_arch_status *st)
{
    if (strcasecmp(s, "processed") == 0 || strcasecmp(s, "confirmed") == 0)
        *st = BP_ARCH_PROCESSED;
    else if (strcasecmp(s, "processing") == 0)
        *st = BP_ARCH_PROCESSING;
    else if (strcasecmp(s, "queued") == 0)
        *st = BP_ARCH_QUEUED;
    else if (strcasecmp(s, "failed") == 0)
        *st = BP_ARCH_FAILED;
    else
        return false;
    return true;
}

/* "Processed" | {"type": "failed", "message": M} | {"Failed": M}. */
static int get_status(yajl_val v, const char *ctx, enum bp_arch_status *st, char **failure,
                      bp_error *err)
{
    *failure = NULL;
    if (v && YAJL_IS_STRING(v) && status_word(v->u.string, st))
        return 0;
    if (v && YAJL_IS_OBJECT(v)) {
        yajl_val type = member(v, "type"), f = member(v, "Failed");
        if (type && YAJL_IS_STRING(type) && status_word(type->u.string, st)) {
            yajl_val m = member(v, "message");
            if (*st != BP_ARCH_FAILED)
                return 0;
            if (!m || !YAJL_IS_STRING(m))
                return bad(err, ctx, "status.message", "a string", m);
            return dup(m->u.string, failure, err);
        }
        if (f && YAJL_IS_STRING(f) && v->u.object.len == 1) {
            *st = BP_ARCH_FAILED;
            return dup(f->u.string, failure, err);
        }
    }
    /* any other string: processed, as arch-sdk's Status::from_value reads it
     * (sdk/src/types/processed_transaction.rs: "Queued" is queued, every other string
     * Processed) */
    if (v && YAJL_IS_STRING(v)) {
        *st = BP_ARCH_PROCESSED;
        return 0;
    }
    return bad(err, ctx, "status",
               "a string, {\"type\": queued/processed/failed, \"message\"} or {\"Failed\"}", v);
}

static int get_rollback(yajl_val v, const char *ctx, bp_arch_tx *t, bp_error *err)
{
    if (!v || YAJL_IS_NULL(v)) /* the book's example has no rollback_status */
        return 0;
    yajl_val type = YAJL_IS_OBJECT(v) ? member(v, "type") : NULL;
    if (!type || !YAJL_IS_STRING(type))
        return bad(err, ctx, "rollback_status.type", "a string", type);
    if (strcmp(type->u.string, "notRolledback") == 0)
        return 0;
    if (strcmp(type->u.string, "rolledback") != 0)
        return bp_error_set(err, BP_EPARSE,
                            "%s: rollback_status.type: expected notRolledback or rolledback, got "
                            "\"%.60s\"",
                            ctx, type->u.string);
    yajl_val m = member(v, "message");
    t->rolled_back = true;
    return dup(m && YAJL_IS_STRING(m) ? m->u.string : "", &t->rollback_reason, err);
}

/* bitcoin_txids (book: strings) or bitcoin_txid (SDK: 32 bytes or null) as a JSON array. */
static int get_btc_txids(yajl_val r, const char *ctx, bp_buf *b, bp_error *err)
{
    yajl_val list = member(r, "bitcoin_txids"), one = member(r, "bitcoin_txid");
    char hex[BP_ARCH_HEX];
    int rc = bp_buf_putc(b, '[');
    if (list && !YAJL_IS_NULL(list)) {
        if (!YAJL_IS_ARRAY(list))
            return bad(err, ctx, "bitcoin_txids", "an array of txids", list);
        for (size_t i = 0; rc == 0 && i < list->u.array.len; i++) {
            char name[48];
            snprintf(name, sizeof(name), "bitcoin_txids[%zu]", i);
            yajl_val x = list->u.array.values[i];
            if ((rc = get_hash(x, ctx, name, true, hex, err)) != 0)
                return rc;
            rc = bp_buf_printf(b, "%s\"%s\"", i ? "," : "", hex);
        }
    } else if (one && !YAJL_IS_NULL(one)) {
        if ((rc = get_hash(one, ctx, "bitcoin_txid", true, hex, err)) != 0)
            return rc;
        rc = bp_buf_printf(b, "\"%s\"", hex);
    }
    if (rc == 0)
        rc = bp_buf_putc(b, ']');
    return rc != 0 ? bp_error_set(err, rc, "out of memory") : 0;
}

static yajl_val index_of(yajl_val arr, size_t i)
{
    return arr && YAJL_IS_ARRAY(arr) && i < arr->u.array.len ? arr->u.array.values[i] : NULL;
}

/* Writable per Solana-style header rules (docs/ARCH.md: inferred, not documented): the
 * signed accounts but the last num_readonly_signed, the unsigned but the last
 * num_readonly_unsigned. */
static bool writable(size_t i, size_t n, uint64_t sig, uint64_t ro_sig, uint64_t ro_unsig)
{
    if (i < sig)
        return i < sig - ro_sig;
    return i < n - ro_unsig;
}

typedef struct msg_info {
    yajl_val keys, instructions;
    uint64_t sig, ro_sig, ro_unsig;
} msg_info;

static int get_message(yajl_val r, const char *ctx, msg_info *m, bp_error *err)
{
    yajl_val rt = member(r, "runtime_transaction");
    if (!rt || !YAJL_IS_OBJECT(rt))
        return bad(err, ctx, "runtime_transaction", "a RuntimeTransaction object", rt);
    yajl_val msg = member(rt, "message");
    if (!msg || !YAJL_IS_OBJECT(msg))
        return bad(err, ctx, "runtime_transaction.message", "an object", msg);
    yajl_val h = member(msg, "header");
    if (!h || !YAJL_IS_OBJECT(h))
        return bad(err, ctx, "runtime_transaction.message.header", "an object", h);
    int rc = get_u64(member(h, "num_required_signatures"), ctx,
                     "message.header.num_required_signatures", false, &m->sig, err);
    if (rc == 0)
        rc = get_u64(member(h, "num_readonly_signed_accounts"), ctx,
                     "message.header.num_readonly_signed_accounts", false, &m->ro_sig, err);
    if (rc == 0)
        rc = get_u64(member(h, "num_readonly_unsigned_accounts"), ctx,
                     "message.header.num_readonly_unsigned_accounts", false, &m->ro_unsig, err);
    m->keys = member(msg, "account_keys");
    m->instructions = member(msg, "instructions");
    if (rc == 0 && (!m->keys || !YAJL_IS_ARRAY(m->keys) || m->keys->u.array.len > LIST_MAX))
        rc = bad(err, ctx, "message.account_keys", "an array of keys", m->keys);
    if (rc == 0 && (!m->instructions || !YAJL_IS_ARRAY(m->instructions)))
        rc = bad(err, ctx, "message.instructions", "an array", m->instructions);
    size_t n = rc == 0 ? m->keys->u.array.len : 0;
    if (rc == 0 && (m->ro_sig > m->sig || m->sig > n || m->ro_unsig > n - m->sig))
        rc = bp_error_set(err, BP_EPARSE,
                          "%s: message.header: counts (%llu signed, %llu read-only signed, %llu "
                          "read-only unsigned) do not fit %zu account_keys",
                          ctx, (unsigned long long)m->sig, (unsigned long long)m->ro_sig,
                          (unsigned long long)m->ro_unsig, n);
    return rc;
}

static int get_accounts(const msg_info *m, const char *ctx, bp_arch_tx *t, bp_error *err)
{
    size_t n = m->keys->u.array.len;
    t->accounts = n ? calloc(n, sizeof(*t->accounts)) : NULL;
    if (n && !t->accounts)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (!writable(i, n, m->sig, m->ro_sig, m->ro_unsig))
            continue;
        char name[48];
        snprintf(name, sizeof(name), "message.account_keys[%zu]", i);
        int rc = get_hash(m->keys->u.array.values[i], ctx, name, true,
                          t->accounts[t->account_count], err);
        if (rc != 0)
            return rc;
        t->account_count++;
    }
    return 0;
}

/* The distinct programs the instructions call: account_keys[program_id_index]. */
static int get_programs(const msg_info *m, const char *ctx, bp_buf *b, bp_error *err)
{
    int rc = bp_buf_putc(b, '[');
    size_t start = b->len, n = m->instructions->u.array.len;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char name[64], hex[BP_ARCH_HEX];
        yajl_val ins = m->instructions->u.array.values[i];
        yajl_val pi = YAJL_IS_OBJECT(ins) ? member(ins, "program_id_index") : NULL;
        snprintf(name, sizeof(name), "message.instructions[%zu].program_id_index", i);
        uint64_t k;
        if ((rc = get_u64(pi, ctx, name, false, &k, err)) != 0)
            return rc;
        if (k >= m->keys->u.array.len)
            return bp_error_set(err, BP_EPARSE, "%s: %s: %llu is past the %zu account_keys", ctx,
                                name, (unsigned long long)k, m->keys->u.array.len);
        snprintf(name, sizeof(name), "message.account_keys[%llu]", (unsigned long long)k);
        if ((rc = get_hash(index_of(m->keys, k), ctx, name, true, hex, err)) != 0)
            return rc;
        if (bp_buf_putc(b, '\0') != 0)
            return bp_error_set(err, BP_ENOMEM, "out of memory");
        b->len--;
        if (!strstr(b->data + start, hex))
            rc = bp_buf_printf(b, "%s\"%s\"", b->len > start ? "," : "", hex);
    }
    if (rc == 0)
        rc = bp_buf_putc(b, ']');
    return rc != 0 ? bp_error_set(err, rc, "out of memory") : 0;
}

int bp_arch_decode_tx(yajl_val r, const char *txid, uint64_t block_height, bp_arch_tx *t,
                      bp_error *err)
{
    static const char ctx[] = "get_processed_transaction result";
    memset(t, 0, sizeof(*t));
    t->block_height = block_height;
    if (!r || !YAJL_IS_OBJECT(r))
        return bad(err, ctx, "result", "a ProcessedTransaction object", r);
    bp_buf b;
    bp_buf_init(&b, 0);
    msg_info m;
    int rc = hex64(txid, t->txid)
                 ? 0
                 : bp_error_set(err, BP_EINVAL, "%s: the txid asked for is not 64 hex digits", ctx);
    if (rc == 0)
        rc = get_status(member(r, "status"), ctx, &t->status, &t->failure, err);
    if (rc == 0)
        rc = get_rollback(member(r, "rollback_status"), ctx, t, err);
    if (rc == 0)
        rc = get_btc_txids(r, ctx, &b, err);
    if (rc == 0)
        rc = dup_buf(&b, &t->bitcoin_txids, err);
    if (rc == 0)
        rc = get_message(r, ctx, &m, err);
    if (rc == 0)
        rc = get_accounts(&m, ctx, t, err);
    bp_buf_reset(&b);
    if (rc == 0)
        rc = get_programs(&m, ctx, &b, err);
    if (rc == 0)
        rc = dup_buf(&b, &t->program_ids, err);
    bp_buf_release(&b);
    if (rc != 0)
        bp_arch_tx_free(t);
    return rc;
}

void bp_arch_tx_free(bp_arch_tx *t)
{
    free(t->failure);
    free(t->rollback_reason);
    free(t->program_ids);
    free(t->bitcoin_txids);
    free(t->accounts);
    t->failure = t->rollback_reason = t->program_ids = t->bitcoin_txids = NULL;
    t->accounts = NULL;
    t->account_count = 0;
}

/* ---- WebSocket events ---- */

/* The tree as compact JSON (keys in the order received). */
static void write_tree(bp_jsonw *w, yajl_val v, int depth)
{
    if (depth > BP_JSONW_DEPTH_MAX - 2) {
        bp_jsonw_null(w);
    } else if (YAJL_IS_OBJECT(v)) {
        bp_jsonw_begin_object(w);
        for (size_t i = 0; i < v->u.object.len; i++) {
            bp_jsonw_key(w, v->u.object.keys[i]);
            write_tree(w, v->u.object.values[i], depth + 1);
        }
        bp_jsonw_end_object(w);
    } else if (YAJL_IS_ARRAY(v)) {
        bp_jsonw_begin_array(w);
        for (size_t i = 0; i < v->u.array.len; i++)
            write_tree(w, v->u.array.values[i], depth + 1);
        bp_jsonw_end_array(w);
    } else if (YAJL_IS_STRING(v)) {
        bp_jsonw_str_n(w, v->u.string, bp_json_strlen(v));
    } else if (YAJL_IS_NUMBER(v)) {
        bp_jsonw_raw(w, v->u.number.r, strlen(v->u.number.r));
    } else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
        bp_jsonw_bool(w, YAJL_IS_TRUE(v));
    } else {
        bp_jsonw_null(w);
    }
}

static uint64_t fnv1a(const char *s, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

/* A NUL in a string (written as \u0000) becomes U+FFFD: PostgreSQL's jsonb refuses \u0000
 * (SQLSTATE 22P05), and one such event would stop the output's every batch. The dedup key is
 * made before, from what the node sent. */
static void replace_nul(char *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\\')
            continue;
        if (s[i + 1] == 'u' && i + 6 <= n && memcmp(s + i + 2, "0000", 4) == 0)
            memcpy(s + i + 2, "fffd", 4);
        i++; /* the escaped character */
    }
}

static int event_data(yajl_val data, bp_arch_event *e, bp_error *err)
{
    bp_buf b;
    bp_jsonw w;
    bp_buf_init(&b, 0);
    bp_jsonw_init(&w, &b, BP_JSONW_ESC_U);
    write_tree(&w, data, 0);
    int rc = bp_jsonw_finish(&w);
    if (rc == 0) {
        uint64_t h1 = fnv1a(b.data, b.len, 0xcbf29ce484222325ull);
        uint64_t h2 = fnv1a(b.data, b.len, h1 ^ 0x9e3779b97f4a7c15ull);
        snprintf(e->key, sizeof(e->key), "%s:%016llx%016llx", TOPIC[e->topic],
                 (unsigned long long)h1, (unsigned long long)h2);
        replace_nul(b.data, b.len);
        rc = dup_buf(&b, &e->data, err);
    } else {
        rc = bp_error_set(err, rc, "event data: cannot be written back (%s)",
                          rc == BP_ENOMEM ? "out of memory" : "too deep");
    }
    bp_buf_release(&b);
    return rc;
}

static int program_list(yajl_val v, const char *ctx, char **out, bp_error *err)
{
    if (!v || !YAJL_IS_ARRAY(v))
        return bad(err, ctx, "program_ids", "an array of strings", v);
    bp_buf b;
    bp_buf_init(&b, 0);
    int rc = bp_buf_putc(&b, '[');
    for (size_t i = 0; rc == 0 && i < v->u.array.len; i++) {
        char name[48], hex[BP_ARCH_HEX];
        snprintf(name, sizeof(name), "program_ids[%zu]", i);
        rc = get_hash(v->u.array.values[i], ctx, name, true, hex, err);
        if (rc == 0 && bp_buf_printf(&b, "%s\"%s\"", i ? "," : "", hex) != 0)
            rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    if (rc == 0 && bp_buf_putc(&b, ']') != 0)
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    if (rc == 0)
        rc = dup_buf(&b, out, err);
    bp_buf_release(&b);
    return rc;
}

/* The fields of each topic's payload (SDK src/websocket-client/types/events.ts). */
static int event_fields(yajl_val d, bp_arch_event *e, bp_error *err)
{
    char ctx[48];
    snprintf(ctx, sizeof(ctx), "%s event", TOPIC[e->topic]);
    int rc = 0;
    switch (e->topic) {
    case BP_ARCH_T_BLOCK:
        rc = get_hash(member(d, "hash"), ctx, "hash", true, e->hash, err);
        /* a string of digits in arch-sdk's event.rs BlockEvent, a number in events.ts */
        return rc ? rc : get_time(member(d, "timestamp"), ctx, "timestamp", &e->timestamp, err);
    case BP_ARCH_T_TRANSACTION:
        rc = get_hash(member(d, "hash"), ctx, "hash", true, e->hash, err);
        if (rc == 0)
            rc = get_status(member(d, "status"), ctx, &e->status, &e->failure, err);
        if (rc == 0)
            rc = program_list(member(d, "program_ids"), ctx, &e->program_ids, err);
        break;
    case BP_ARCH_T_ACCOUNT_UPDATE:
        rc = get_hash(member(d, "account"), ctx, "account", true, e->account, err);
        if (rc == 0)
            rc = get_hash(member(d, "transaction_hash"), ctx, "transaction_hash", true, e->hash,
                          err);
        break;
    case BP_ARCH_T_ROLLEDBACK:
    case BP_ARCH_T_REAPPLIED:
        rc = hash_list(member(d, "transaction_hashes"), ctx, "transaction_hashes", &e->hashes,
                       &e->hash_count, err);
        break;
    case BP_ARCH_T_DKG: {
        yajl_val s = member(d, "status");
        if (!s || !YAJL_IS_STRING(s))
            return bad(err, ctx, "status", "a string", s);
        return dup(s->u.string, &e->dkg_status, err);
    }
    default:
        return BP_EINVAL;
    }
    if (rc == 0)
        rc = get_u64(member(d, "block_height"), ctx, "block_height", false, &e->block_height, err);
    e->has_height = rc == 0;
    return rc;
}

int bp_arch_decode_event(const char *text, size_t len, double received_at, bp_arch_event *e,
                         bp_error *err)
{
    memset(e, 0, sizeof(*e));
    e->topic = BP_ARCH_T_COUNT; /* kept on failure: what was lost (none read: COUNT) */
    e->received_at = received_at;
    char why[256];
    yajl_val root = bp_json_parse(text, len, why, sizeof(why));
    int rc = 0;
    /* {"topic": T, "data": ...}: arch-sdk's Event (sdk/src/types/event.rs, serde tag "topic",
     * content "data"); {"event": T, "data": ...}: also taken by the TypeScript SDK's
     * managers/ws-adapter.ts */
    yajl_val topic = root && YAJL_IS_OBJECT(root) ? member(root, "topic") : NULL;
    yajl_val data = root && YAJL_IS_OBJECT(root) ? member(root, "data") : NULL;
    if (root && YAJL_IS_OBJECT(root) && !topic)
        topic = member(root, "event");
    if (!root)
        rc = bp_error_set(err, BP_EPARSE, "event: not JSON: %s", why);
    else if (!YAJL_IS_OBJECT(root))
        rc = bad(err, "event", "message", "an object {\"topic\", \"data\"}", root);
    else if (member(root, "subscription_id"))
        rc = bp_error_set(err, BP_EINVAL, "event: not an event (a subscription answer)");
    else if (!topic || !YAJL_IS_STRING(topic))
        rc = bad(err, "event", "topic", "a string", topic);
    if (rc == 0) {
        for (int t = 0; t < BP_ARCH_T_COUNT; t++)
            if (strcmp(topic->u.string, TOPIC[t]) == 0)
                e->topic = (enum bp_arch_topic)t;
        if (e->topic == BP_ARCH_T_COUNT)
            rc = bp_error_set(err, BP_EPARSE, "event: topic: unknown topic \"%.60s\"",
                              topic->u.string);
    }
    if (rc == 0 && (!data || !YAJL_IS_OBJECT(data)))
        rc = bad(err, "event", "data", "an object", data);
    if (rc == 0)
        rc = event_fields(data, e, err);
    if (rc == 0)
        rc = event_data(data, e, err);
    bp_json_free(root);
    if (rc != 0)
        bp_arch_event_free(e);
    return rc;
}

void bp_arch_event_free(bp_arch_event *e)
{
    free(e->data);
    free(e->failure);
    free(e->program_ids);
    free(e->hashes);
    free(e->dkg_status);
    e->data = e->failure = e->program_ids = e->dkg_status = NULL;
    e->hashes = NULL;
    e->hash_count = 0;
}
