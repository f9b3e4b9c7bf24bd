/* arch.c - the REST endpoints of an Arch Network chain (--chain-type arch, docs/ARCH.md):
 * /api/arch/blocks, /api/arch/transactions, /api/arch/account_updates, /api/arch/events over
 * the arch_* tables, as the EVM endpoints answer theirs (routes.c): JSON rows named by the
 * columns, lists newest first and paged by keyset. */
#include "api/routes.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/rows.h"
#include "arch/arch_tables.h"
#include "util/hex.h"

#define STOP_READ 1 /* a row callback's "enough rows" (not an error) */
#define HEX64 65    /* 64 hex digits + NUL */
#define KEY_MAX 96  /* an arch_events key ("topic:" + 32 hex digits) and its NUL */

/* 64 hex digits, with or without 0x (the Arch node writes both), lower-cased into out. */
static bool hash_ok(const char *s, char *out)
{
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2;
    if (strlen(s) != 64)
        return false;
    for (size_t i = 0; i < 64; i++) {
        int d = bp_hex_digit((unsigned char)s[i]);
        if (d < 0)
            return false;
        out[i] = "0123456789abcdef"[d];
    }
    out[64] = '\0';
    return true;
}

static int bad_value(const char *name, const char *v, const char *expected, bp_error *err)
{
    char shown[300];
    bp_api_printable(v, shown, sizeof(shown));
    return bp_error_set(err, BP_EINVAL, "%s: '%s' is not valid: expected %s", name, shown,
                        expected);
}

static int param_hash(const bp_api_request *req, const char *name, char *out, const char **set,
                      bp_error *err)
{
    const char *v = bp_api_param_get(req, name);
    if (!v)
        return 0;
    if (!hash_ok(v, out))
        return bad_value(name, v, "64 hex digits (0x optional)", err);
    *set = out;
    return 0;
}

/* ---- lists ---------------------------------------------------------------------------------- */

typedef struct alist {
    bp_jsonw *w;
    int atable;
    size_t limit, rows;
    bool more;
    char cursor[256]; /* the last row's */
} alist;

static void cell_text(const bp_read_cell *c, char *out, size_t cap)
{
    size_t n = c->s && c->len < cap ? c->len : 0;
    memcpy(out, c->s ? c->s : "", n);
    out[n] = '\0';
}

/* The cursor of a row: "height", "height:tx_index", "height:tx_index:account" or, for
 * events, "received_at:key". */
static void row_cursor(alist *l, const bp_read_cell *cells, size_t n)
{
    char a[48], b[24], k[KEY_MAX];
    int t = l->atable;
    if (t == BP_ARCH_EVENTS) {
        cell_text(bp_api_acell(t, cells, n, "received_at"), a, sizeof(a));
        cell_text(bp_api_acell(t, cells, n, "key"), k, sizeof(k));
        snprintf(l->cursor, sizeof(l->cursor), "%s:%s", a, k);
        return;
    }
    cell_text(bp_api_acell(t, cells, n, t == BP_ARCH_BLOCKS ? "height" : "block_height"), a,
              sizeof(a));
    if (t == BP_ARCH_BLOCKS) {
        snprintf(l->cursor, sizeof(l->cursor), "%s", a);
        return;
    }
    cell_text(bp_api_acell(t, cells, n, "tx_index"), b, sizeof(b));
    if (t == BP_ARCH_TRANSACTIONS) {
        snprintf(l->cursor, sizeof(l->cursor), "%s:%s", a, b);
        return;
    }
    cell_text(bp_api_acell(t, cells, n, "account"), k, sizeof(k));
    snprintf(l->cursor, sizeof(l->cursor), "%s:%s:%s", a, b, k);
}

static int list_row(void *ctx, const bp_read_cell *cells, size_t n)
{
    alist *l = ctx;
    if (l->limit && l->rows == l->limit) {
        l->more = true;
        return STOP_READ;
    }
    bp_jsonw_begin_object(l->w);
    bp_api_arow_members(l->w, l->atable, cells, n);
    bp_jsonw_end_object(l->w);
    row_cursor(l, cells, n);
    l->rows++;
    return l->w->rc ? BP_ENOMEM : 0;
}

/* {"data": [...], "count": n, "next_cursor": "..." | null} */
static void list_answer(bp_api_response *resp, bp_sink_reader *r, const bp_read_query *q)
{
    bp_jsonw w;
    bp_error err = {0};
    alist l = {.w = &w, .atable = q->arch - 1, .limit = q->limit};
    bp_read_query qq = *q;
    qq.limit++; /* one more row says whether there is a next page */
    bp_jsonw_init(&w, &resp->body, BP_JSONW_ESC_U);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "data");
    bp_jsonw_begin_array(&w);
    int rc = bp_sink_read(r, &qq, list_row, &l, &err);
    bp_jsonw_end_array(&w);
    if (rc == BP_ENOMEM)
        bp_error_set(&err, BP_ENOMEM, "answer too large");
    if (rc != 0 && rc != STOP_READ) {
        bp_api_from_error(resp, &err);
        return;
    }
    bp_jsonw_key(&w, "count");
    bp_jsonw_u64(&w, l.rows);
    bp_jsonw_key(&w, "next_cursor");
    if (l.more)
        bp_jsonw_str(&w, l.cursor);
    else
        bp_jsonw_null(&w);
    bp_jsonw_end_object(&w);
    bp_api_finish(resp, &w);
}

/* The cursor of a previous answer back into q: the parts each table's rows have. */
static int parse_cursor(const char *cur, bp_read_query *q, char *key, char *real, bp_error *err)
{
    int t = q->arch - 1;
    char a[48] = "", b[24] = "";
    const char *c1 = strchr(cur, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    size_t na = c1 ? (size_t)(c1 - cur) : strlen(cur);
    bool ok = na < sizeof(a);
    if (ok)
        memcpy(a, cur, na), a[na] = '\0';
    if (t == BP_ARCH_EVENTS) {
        char *end;
        ok = ok && c1 && na && strlen(c1 + 1) < KEY_MAX;
        if (ok)
            strtod(a, &end), ok = *end == '\0';
        if (ok)
            strcpy(real, a), strcpy(key, c1 + 1), q->after_real = real, q->after_key = key;
    } else {
        ok = ok && bp_api_u64_ok(a, &q->after_number) && (t == BP_ARCH_BLOCKS) == !c1;
        size_t nb = c1 ? (c2 ? (size_t)(c2 - c1 - 1) : strlen(c1 + 1)) : 0;
        if (ok && c1 && nb < sizeof(b))
            memcpy(b, c1 + 1, nb), b[nb] = '\0';
        if (ok && t != BP_ARCH_BLOCKS)
            ok =
                bp_api_u64_ok(b, &q->after_index) && (t == BP_ARCH_ACCOUNT_UPDATES) == (c2 != NULL);
        if (ok && c2)
            ok = hash_ok(c2 + 1, key), q->after_key = key;
    }
    q->has_after = ok;
    return ok ? 0 : bad_value("cursor", cur, "the next_cursor of a previous answer", err);
}

/* limit, order, the block range (from / to, from_block / to_block, block) and cursor. */
static int list_params(const bp_api_request *req, bp_read_query *q, char *key, char *real,
                       bp_error *err)
{
    int rc = bp_api_list_range(req, q, err);
    const char *cur = bp_api_param_get(req, "cursor");
    if (rc == 0 && cur)
        rc = parse_cursor(cur, q, key, real, err);
    return rc;
}

static const char *const g_list_known[] = {"limit", "cursor", "order",      "chain",    "from",
                                           "to",    "block",  "from_block", "to_block", NULL};

/* The list parameters and those of the table (extra, NULL-terminated). */
static int known(const bp_api_request *req, const char *const *extra, bp_error *err)
{
    const char *all[24];
    size_t n = 0;
    for (const char *const *p = g_list_known; *p; p++)
        all[n++] = *p;
    for (const char *const *p = extra; *p && n < 23; p++)
        all[n++] = *p;
    all[n] = NULL;
    return bp_api_params_known(req, all, err);
}

static void list(bp_api_ctx *c, bp_api_worker *wk, const bp_api_request *req, bp_api_response *resp,
                 enum bp_arch_table t)
{
    static const char *const extra[BP_ARCH_TABLE_COUNT][4] = {
        [BP_ARCH_BLOCKS] = {NULL},
        [BP_ARCH_TRANSACTIONS] = {"rolled_back", NULL},
        [BP_ARCH_ACCOUNT_UPDATES] = {"account", "transaction", NULL},
        [BP_ARCH_EVENTS] = {"topic", NULL},
    };
    bp_read_query q = {.arch = (int)t + 1};
    char key[KEY_MAX], real[48], account[HEX64], tx[HEX64];
    bp_error err = {0};
    bool set;
    const char *v;
    int rc = known(req, extra[t], &err);
    if (rc == 0)
        rc = list_params(req, &q, key, real, &err);
    if (rc == 0)
        rc = param_hash(req, "account", account, &q.address, &err);
    if (rc == 0)
        rc = param_hash(req, "transaction", tx, &q.tx_hash, &err);
    if (rc == 0)
        rc = bp_api_param_enum(req, "rolled_back", "true|false", &set, &v, &err);
    if (rc == 0 && set)
        q.rolled_back = strcmp(v, "true") == 0 ? 1 : 2;
    if (rc == 0)
        rc = bp_api_param_enum(req, "topic",
                               "block|transaction|account_update|rolledback_transactions|"
                               "reapplied_transactions|dkg",
                               &set, &q.topic, &err);
    bp_api_list(c, wk, req, resp, rc, &err, &q, list_answer);
}

/* ---- one block, one transaction ------------------------------------------------------------- */

typedef struct one {
    bp_jsonw *w;
    int atable;
    bool found;
    uint64_t height; /* a transaction's block */
} one;

static int one_row(void *ctx, const bp_read_cell *cells, size_t n)
{
    one *o = ctx;
    o->found = true;
    bp_api_arow_members(o->w, o->atable, cells, n);
    const bp_read_cell *h = bp_api_acell(o->atable, cells, n, "block_height");
    o->height = h->s ? strtoull(h->s, NULL, 10) : 0;
    return STOP_READ;
}

static int account_row(void *ctx, const bp_read_cell *cells, size_t n)
{
    bp_jsonw *w = ctx;
    bp_jsonw_str_n(w, bp_api_acell(BP_ARCH_ACCOUNT_UPDATES, cells, n, "account")->s,
                   bp_api_acell(BP_ARCH_ACCOUNT_UPDATES, cells, n, "account")->len);
    return w->rc ? BP_ENOMEM : 0;
}

/* GET /api/arch/blocks/{height|hash|latest} and /api/arch/transactions/{txid} (with
 * "account_updates": the accounts it wrote). */
static void one_answer(bp_api_ctx *c, bp_api_worker *wk, const bp_api_request *req,
                       bp_api_response *resp, enum bp_arch_table t, const char *id)
{
    static const char *const only_chain[] = {"chain", NULL};
    char chain[128] = "", hash[HEX64];
    bp_read_query q = {.arch = (int)t + 1, .limit = 1};
    bp_error err = {0};
    if (bp_api_params_known(req, only_chain, &err) != 0) {
        bp_api_from_error(resp, &err);
        return;
    }
    bool block = t == BP_ARCH_BLOCKS;
    if (hash_ok(id, hash)) {
        q.hash = hash;
    } else if (block && bp_api_u64_ok(id, &q.min) && q.min <= INT64_MAX) {
        q.has_min = q.has_max = true;
        q.max = q.min;
    } else if (!block || strcmp(id, "latest") != 0) {
        char shown[300];
        bp_api_printable(id, shown, sizeof(shown));
        bp_api_error(resp, 400, "%s: '%s' is not valid: expected %s", block ? "block" : "txid",
                     shown,
                     block ? "a height, a hash of 64 hex digits or latest" : "64 hex digits");
        return;
    }
    bp_sink_reader *r = bp_api_reader(c, wk, resp);
    if (!r)
        return;
    q.chain = bp_api_chain(c, wk, req, chain, sizeof(chain));
    bp_jsonw w;
    bp_jsonw_init(&w, &resp->body, BP_JSONW_ESC_U);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "data");
    bp_jsonw_begin_object(&w);
    one o = {.w = &w, .atable = (int)t};
    int rc = bp_sink_read(r, &q, one_row, &o, &err);
    if (!block && (rc == 0 || rc == STOP_READ) && o.found) {
        bp_read_query aq = {.arch = BP_ARCH_ACCOUNT_UPDATES + 1,
                            .chain = q.chain,
                            .has_min = true,
                            .has_max = true,
                            .min = o.height,
                            .max = o.height,
                            .tx_hash = hash,
                            .ascending = true};
        bp_jsonw_key(&w, "account_updates");
        bp_jsonw_begin_array(&w);
        rc = bp_sink_read(r, &aq, account_row, &w, &err);
        bp_jsonw_end_array(&w);
    }
    bp_jsonw_end_object(&w);
    bp_jsonw_end_object(&w);
    if (rc != 0 && rc != STOP_READ)
        bp_api_from_error(resp, &err);
    else if (!o.found)
        bp_api_error(resp, 404, "%s %s not found", block ? "block" : "transaction", id);
    else
        bp_api_finish(resp, &w);
}

void bp_api_arch(bp_api_ctx *c, bp_api_worker *w, const bp_api_request *req, bp_api_response *resp,
                 enum bp_api_route_id route)
{
    switch (route) {
    case BP_ROUTE_ARCH_BLOCKS:
        list(c, w, req, resp, BP_ARCH_BLOCKS);
        return;
    case BP_ROUTE_ARCH_BLOCK:
        one_answer(c, w, req, resp, BP_ARCH_BLOCKS, req->path + strlen("/api/arch/blocks/"));
        return;
    case BP_ROUTE_ARCH_TXS:
        list(c, w, req, resp, BP_ARCH_TRANSACTIONS);
        return;
    case BP_ROUTE_ARCH_TX:
        one_answer(c, w, req, resp, BP_ARCH_TRANSACTIONS,
                   req->path + strlen("/api/arch/transactions/"));
        return;
    case BP_ROUTE_ARCH_ACCOUNTS:
        list(c, w, req, resp, BP_ARCH_ACCOUNT_UPDATES);
        return;
    default:
        list(c, w, req, resp, BP_ARCH_EVENTS);
        return;
    }
}
