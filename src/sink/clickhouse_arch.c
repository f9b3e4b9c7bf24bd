/* clickhouse_arch.c - the Arch tables of the ClickHouse output. */
#include "sink/clickhouse_arch.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch_rows.h"
#include "arch/arch_tables.h"

/* ---- tables ----------------------------------------------------------------------------- */

/* The Arch set's columns of t, typed as an EVM column of the same logical type (hashes
 * FixedString(32)); key: the ones in order_by (never Nullable). */
static void add_cols(bp_ch_table *out, enum bp_arch_table t)
{
    static const bp_ch_caps caps; /* the Arch tables have no 256-bit column */
    const bp_set_table *tab = &bp_tables_arch.tables[t];
    for (size_t i = 0; i < tab->column_count; i++) {
        const bp_set_column *c = &tab->columns[i];
        bool key = bp_ch_in_list(out->order_by, c->name);
        out->cols[out->ncols++] =
            (bp_ch_col){c->name, bp_ch_coltype(c->type, c->flags, &caps, key), key};
    }
}

void bp_ch_arch_table(int k, bp_ch_table *out)
{
    static const struct {
        const char *order, *block, *hash;
    } rows[BP_CHA_ROW_TABLES] = {
        [BP_CHA_BLOCKS] = {"chain, height, hash", "height", "hash"},
        [BP_CHA_TXS] = {"chain, block_height, block_hash, tx_index", "block_height", "block_hash"},
        [BP_CHA_ACCOUNTS] = {"chain, block_height, block_hash, tx_index, account", "block_height",
                             "block_hash"},
    };
    memset(out, 0, sizeof(*out));
    out->chain_col = "chain";
    if (k == BP_CHA_EVENTS) {
        out->name = "arch_events";
        out->engine = "ReplacingMergeTree";
        out->order_by = "chain, key";
        add_cols(out, BP_ARCH_EVENTS);
        return;
    }
    if (k == BP_CHA_ROLLBACKS) {
        out->name = "arch_rollbacks";
        out->engine = "ReplacingMergeTree(version)";
        out->order_by = "chain, txid";
        out->cols[0] = (bp_ch_col){"chain", {.kind = BP_CH_STRING}, true};
        out->cols[1] = (bp_ch_col){"txid", {.kind = BP_CH_FIXED, .len = 32}, true};
        out->cols[2] = (bp_ch_col){"rolled_back", {.kind = BP_CH_UINT8}, false};
        out->cols[3] = (bp_ch_col){"version", {.kind = BP_CH_UINT64}, false};
        out->ncols = 4;
        return;
    }
    out->name = bp_arch_table_name((enum bp_arch_table)k);
    out->engine = "CollapsingMergeTree(" BP_CH_SIGN ")";
    out->order_by = rows[k].order;
    out->block_col = rows[k].block;
    out->hash_col = rows[k].hash;
    out->partition_by =
        k == BP_CHA_BLOCKS ? "intDiv(height, 1000000)" : "intDiv(block_height, 1000000)";
    add_cols(out, (enum bp_arch_table)k);
    if (k == BP_CHA_ACCOUNTS) /* the revert's and the row key's block hash */
        out->cols[out->ncols++] = (bp_ch_col){"block_hash", {.kind = BP_CH_FIXED, .len = 32}, true};
    out->cols[out->ncols++] = (bp_ch_col){BP_CH_SIGN, {.kind = BP_CH_INT8}, false};
    out->cols[out->ncols++] = (bp_ch_col){BP_CH_SEQ, {.kind = BP_CH_UINT64}, false};
}

/* A transaction as readers want it: rolled_back from its newest arch_rollbacks row (the fetched
 * value without one), rollback_reason the fetched one while rolled back. Both sides by name, so
 * that 18.16 (ANY LEFT JOIN: default values, s_set 0, where nothing matches) and current servers
 * read it alike; the subqueries have aliases, which current servers require
 * (joined_subquery_requires_alias: "no alias for subquery", seen on 26.5) and 18.16 takes. */
#define CH_ARCH_VIEW                                                                               \
    "CREATE VIEW IF NOT EXISTS arch_transactions_current AS SELECT chain, block_height, "          \
    "tx_index, txid, block_hash, status, failure_reason, toUInt8(if(s_set = 1, s_rolled_back, "    \
    "f_rolled_back)) AS rolled_back, if(if(s_set = 1, s_rolled_back, f_rolled_back) = 1, "         \
    "f_reason, CAST(NULL AS Nullable(String))) AS rollback_reason, program_ids, bitcoin_txids, "   \
    "fee, compute_units FROM (SELECT chain, block_height, tx_index, txid, block_hash, status, "    \
    "failure_reason, rolled_back AS f_rolled_back, rollback_reason AS f_reason, program_ids, "     \
    "bitcoin_txids, fee, compute_units FROM arch_transactions FINAL) AS f ANY LEFT JOIN (SELECT "  \
    "chain, txid, toUInt8(1) AS s_set, argMax(rolled_back, version) AS s_rolled_back FROM "        \
    "arch_rollbacks GROUP BY chain, txid) AS s USING (chain, txid)"

int bp_ch_arch_schema(bp_ch_http *h, bp_error *err)
{
    bp_buf sql;
    bp_buf_init(&sql, 0);
    int rc = 0;
    for (int k = 0; rc == 0 && k < BP_CHA_TABLES; k++) {
        bp_ch_table t;
        bp_ch_arch_table(k, &t);
        bp_buf_reset(&sql);
        rc = bp_ch_create_sql(&sql, &t) ? bp_error_set(err, BP_ENOMEM, "out of memory")
                                        : bp_ch_query(h, sql.data, NULL, t.name, err);
    }
    if (rc == 0)
        rc = bp_ch_query(h, CH_ARCH_VIEW, NULL, "arch_transactions_current", err);
    bp_buf_release(&sql);
    return rc;
}

/* ---- APPLY rows ------------------------------------------------------------------------- */

/* A hash as the decoder keeps it (64 hex digits, no 0x) into a FixedString(32). */
static void put_hash(bp_ch_enc *e, const char *h)
{
    char x[2 + BP_ARCH_HEX];
    snprintf(x, sizeof(x), "0x%s", h ? h : "");
    bp_ch_put_hex(e, x);
}

static void put_opt(bp_ch_enc *e, bool set, uint64_t v)
{
    if (set)
        bp_ch_put_u64(e, v);
    else
        bp_ch_put_null(e);
}

static void row_end(bp_ch_enc *e, uint64_t seq)
{
    bp_ch_put_i8(e, 1);
    bp_ch_put_u64(e, seq);
    bp_ch_row_end(e);
}

/* The rows APPLY ev brings to table t, from the Arch table set, each with the columns
 * bp_ch_arch_table adds: arch_account_updates its block's hash (a revert's key), every table
 * the sign and _seq. */
static void enc_rows(bp_ch_enc *e, enum bp_arch_table t, const char *chain, const bp_event *ev,
                     uint64_t seq)
{
    const bp_set_table *tab = &bp_tables_arch.tables[t];
    bp_table_row r;
    bp_table_rows(&r, &bp_tables_arch, chain, ev, t);
    while (bp_table_next(&r)) {
        for (size_t k = 0; k < tab->column_count; k++) {
            bp_value v = bp_tables_arch.value(&r, k);
            if (tab->columns[k].type == BP_COL_HASH && v.kind == BP_VAL_STR)
                put_hash(e, v.s);
            else
                bp_ch_put_value(e, tab->columns[k].type, &v);
        }
        if (t == BP_ARCH_ACCOUNT_UPDATES)
            put_hash(e, ev->block->hash);
        row_end(e, seq);
    }
}

void bp_ch_arch_encode(bp_ch_enc *const *enc, const char *chain, const bp_block *b, uint64_t seq)
{
    const bp_event ev = {.kind = BP_EVENT_APPLY, .block = b};
    enc_rows(enc[BP_CHA_BLOCKS], BP_ARCH_BLOCKS, chain, &ev, seq);
    enc_rows(enc[BP_CHA_TXS], BP_ARCH_TRANSACTIONS, chain, &ev, seq);
    enc_rows(enc[BP_CHA_ACCOUNTS], BP_ARCH_ACCOUNT_UPDATES, chain, &ev, seq);
}

/* ---- events ----------------------------------------------------------------------------- */

typedef struct ev_ref {
    const bp_arch_event *e;
    size_t order; /* in the batch */
    bool skip;    /* stored already, or a repeat in the batch */
} ev_ref;

struct bp_ch_arch {
    enum bp_ch_format format;
    bp_ch_table t[2]; /* arch_events, arch_rollbacks */
    bp_ch_enc enc[2];
    bp_buf insert[2];
    bp_buf sql, ans;
    ev_ref *refs;
    size_t cap;
    char *chain; /* whose version ver is */
    uint64_t ver;
};

void bp_ch_arch_free(bp_ch_arch *a)
{
    if (!a)
        return;
    for (int k = 0; k < 2; k++) {
        bp_ch_enc_release(&a->enc[k]);
        bp_buf_release(&a->insert[k]);
    }
    bp_buf_release(&a->sql);
    bp_buf_release(&a->ans);
    free(a->refs);
    free(a->chain);
    free(a);
}

int bp_ch_arch_new(bp_ch_arch **out, enum bp_ch_format format, const bp_ch_table *events,
                   const bp_ch_table *rollbacks, bp_error *err)
{
    bp_ch_arch *a = calloc(1, sizeof(*a));
    if (!a)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    a->format = format;
    a->t[0] = *events;
    a->t[1] = *rollbacks;
    bp_buf_init(&a->sql, 0);
    bp_buf_init(&a->ans, 64 << 20);
    int rc = 0;
    for (int k = 0; k < 2; k++) {
        bp_buf_init(&a->insert[k], 0);
        rc |= bp_buf_printf(&a->insert[k], "INSERT INTO %s (", a->t[k].name) |
              bp_ch_col_list(&a->insert[k], a->t[k].cols, a->t[k].ncols) |
              bp_buf_printf(&a->insert[k], ") FORMAT %s", bp_ch_format_name(format)) |
              bp_ch_enc_init(&a->enc[k], format, a->t[k].cols, a->t[k].ncols);
    }
    if (rc != 0) {
        bp_ch_arch_free(a);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    *out = a;
    return 0;
}

void bp_ch_arch_forget(bp_ch_arch *a)
{
    if (!a)
        return;
    free(a->chain);
    a->chain = NULL;
}

size_t bp_ch_arch_held(const bp_ch_arch *a)
{
    if (!a)
        return 0;
    return bp_ch_enc_held(&a->enc[0]) + bp_ch_enc_held(&a->enc[1]) + a->sql.cap + a->ans.cap +
           a->cap * sizeof(ev_ref);
}

void bp_ch_arch_trim(bp_ch_arch *a)
{
    if (!a)
        return;
    bp_ch_enc_trim(&a->enc[0]);
    bp_ch_enc_trim(&a->enc[1]);
    bp_buf_release(&a->sql);
    bp_buf_release(&a->ans);
    free(a->refs);
    a->refs = NULL;
    a->cap = 0;
}

bool bp_ch_arch_has_events(const bp_batch *batch)
{
    for (size_t i = 0; i < batch->count; i++)
        if (batch->events[i].kind == BP_EVENT_ARCH_EVENTS)
            return true;
    return false;
}

static int by_key(const void *x, const void *y)
{
    const ev_ref *a = x, *b = y;
    int c = strcmp(a->e->key, b->e->key);
    return c ? c : (a->order > b->order) - (a->order < b->order);
}

static int by_key_only(const void *key, const void *y)
{
    return strcmp(key, ((const ev_ref *)y)->e->key);
}

/* The batch's received events (not the resyncs) into a->refs, sorted by key, repeats skipped;
 * *n of them. */
static int gather(bp_ch_arch *a, const bp_batch *batch, size_t *n, bp_error *err)
{
    *n = 0;
    size_t order = 0;
    for (size_t i = 0; i < batch->count; i++) {
        const bp_arch_rows *r = batch->events[i].block->arch;
        if (batch->events[i].kind != BP_EVENT_ARCH_EVENTS || !r)
            continue;
        for (size_t k = 0; k < r->event_count; k++) {
            if (r->events[k].resync)
                continue;
            if (*n == a->cap) {
                size_t cap = a->cap ? 2 * a->cap : 256;
                ev_ref *p = realloc(a->refs, cap * sizeof(*p));
                if (!p)
                    return bp_error_set(err, BP_ENOMEM, "out of memory");
                a->refs = p, a->cap = cap;
            }
            a->refs[(*n)++] = (ev_ref){&r->events[k], order++, false};
        }
    }
    if (*n > 1)
        qsort(a->refs, *n, sizeof(*a->refs), by_key);
    for (size_t i = 1; i < *n; i++)
        a->refs[i].skip = strcmp(a->refs[i].e->key, a->refs[i - 1].e->key) == 0;
    return 0;
}

#define CH_KEYS_PER_QUERY 2000 /* keys of about 40 bytes: far below max_query_size */

/* Marks the events whose key arch_events holds already (one SELECT per CH_KEYS_PER_QUERY). */
static int mark_stored(bp_ch_arch *a, bp_ch_http *h, const char *chain, size_t n, bp_error *err)
{
    for (size_t at = 0; at < n;) {
        bp_buf_reset(&a->sql);
        int rc = bp_buf_puts(&a->sql, "SELECT DISTINCT key FROM arch_events WHERE chain = ") |
                 bp_ch_quote(&a->sql, chain) | bp_buf_puts(&a->sql, " AND key IN (");
        size_t k = 0;
        for (; at < n && k < CH_KEYS_PER_QUERY; at++) {
            if (a->refs[at].skip)
                continue;
            rc |= bp_buf_puts(&a->sql, k++ ? ", " : "") | bp_ch_quote(&a->sql, a->refs[at].e->key);
        }
        if (k == 0)
            break;
        rc = rc | bp_buf_putc(&a->sql, ')')
                 ? bp_error_set(err, BP_ENOMEM, "out of memory")
                 : bp_ch_query(h, a->sql.data, &a->ans, "reading the stored arch_events keys", err);
        if (rc != 0)
            return rc;
        char *p = a->ans.data, *cell[1];
        while (bp_ch_tsv_row(&p, cell, 1) == 1) {
            ev_ref *r = cell[0] ? bsearch(cell[0], a->refs, n, sizeof(*r), by_key_only) : NULL;
            while (r && r > a->refs && strcmp(r[-1].e->key, cell[0]) == 0)
                r--;
            for (; r && r < a->refs + n && strcmp(r->e->key, cell[0]) == 0; r++)
                r->skip = true;
        }
    }
    return 0;
}

static int insert_enc(bp_ch_arch *a, bp_ch_http *h, int k, bp_error *err)
{
    bp_ch_enc *e = &a->enc[k];
    if (e->rc != 0)
        return bp_error_set(err, e->rc, "%s: encoding a row: %s (column %s)", a->t[k].name,
                            bp_strerror(e->rc), a->t[k].cols[e->bad].name);
    if (e->rows == 0)
        return 0;
    bp_ch_piece pieces[BP_CH_MAX_PIECES(BP_CH_MAX_COLS)];
    size_t np = bp_ch_enc_pieces(e, pieces, sizeof(pieces) / sizeof(pieces[0]));
    if (e->rc != 0)
        return bp_error_set(err, e->rc, "%s: encoding the block header", a->t[k].name);
    char what[96];
    snprintf(what, sizeof(what), "INSERT of %zu rows into %s", e->rows, a->t[k].name);
    return bp_ch_insert(h, a->insert[k].data, pieces, np, false, what, err);
}

static int write_events(bp_ch_arch *a, bp_ch_http *h, const bp_batch *batch, bp_error *err)
{
    size_t n = 0;
    int rc = gather(a, batch, &n, err);
    if (rc == 0 && n > 0)
        rc = mark_stored(a, h, batch->chain, n, err);
    bp_ch_enc *e = &a->enc[0];
    bp_ch_enc_reset(e);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const bp_arch_event *v = a->refs[i].e;
        if (a->refs[i].skip)
            continue;
        const char *topic = bp_arch_topic_name(v->topic), *data = v->data ? v->data : "{}";
        bp_ch_put_text(e, batch->chain, strlen(batch->chain));
        bp_ch_put_text(e, v->key, strlen(v->key));
        bp_ch_put_text(e, topic, strlen(topic));
        put_opt(e, v->has_height, v->block_height);
        bp_ch_put_text(e, data, strlen(data));
        bp_ch_put_f64(e, v->received_at);
        bp_ch_row_end(e);
    }
    return rc ? rc : insert_enc(a, h, 0, err);
}

/* The chain's greatest version, once per chain. */
static int load_version(bp_ch_arch *a, bp_ch_http *h, const char *chain, bp_error *err)
{
    if (a->chain && strcmp(a->chain, chain) == 0)
        return 0;
    bp_ch_arch_forget(a);
    bp_buf_reset(&a->sql);
    int rc = bp_buf_puts(&a->sql, "SELECT max(version) FROM arch_rollbacks WHERE chain = ") |
             bp_ch_quote(&a->sql, chain);
    rc = rc ? bp_error_set(err, BP_ENOMEM, "out of memory")
            : bp_ch_query(h, a->sql.data, &a->ans, "reading arch_rollbacks' version", err);
    if (rc != 0)
        return rc;
    a->ver = strtoull(a->ans.data ? a->ans.data : "0", NULL, 10);
    return (a->chain = strdup(chain)) ? 0 : bp_error_set(err, BP_ENOMEM, "out of memory");
}

/* One arch_rollbacks row per txid of every rollback / re-apply / resync, in the batch's order. */
static int write_rollbacks(bp_ch_arch *a, bp_ch_http *h, const bp_batch *batch, bp_error *err)
{
    bp_ch_enc *e = &a->enc[1];
    bp_ch_enc_reset(e);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < batch->count; i++) {
        const bp_arch_rows *r = batch->events[i].block->arch;
        if (batch->events[i].kind != BP_EVENT_ARCH_EVENTS || !r)
            continue;
        for (size_t k = 0; rc == 0 && k < r->event_count; k++) {
            const bp_arch_event *v = &r->events[k];
            bool back = v->topic == BP_ARCH_T_ROLLEDBACK;
            if ((!back && v->topic != BP_ARCH_T_REAPPLIED) || v->hash_count == 0)
                continue;
            if ((rc = load_version(a, h, batch->chain, err)) != 0)
                break;
            for (size_t j = 0; j < v->hash_count; j++) {
                bp_ch_put_text(e, batch->chain, strlen(batch->chain));
                put_hash(e, v->hashes[j]);
                bp_ch_put_u64(e, back);
                bp_ch_put_u64(e, ++a->ver);
                bp_ch_row_end(e);
            }
        }
    }
    return rc ? rc : insert_enc(a, h, 1, err);
}

int bp_ch_arch_events(bp_ch_arch *a, bp_ch_http *h, const bp_batch *batch, bp_error *err)
{
    int rc = write_events(a, h, batch, err);
    if (rc == 0)
        rc = write_rollbacks(a, h, batch, err);
    if (rc != 0)
        bp_error_prefix(err, "Arch events: ");
    return rc;
}
