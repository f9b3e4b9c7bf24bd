/* sqlite_derived.c - the SQLite output's derived tables (sqlite_derived.h).
 *
 * APPLY run: the block rows (chain_metrics_block, token_transfers, ml_predictions) are
 * inserted; the blocks' 1h and 1d set rows (bp_block_derived.set_rows, in key order) are
 * inserted into active_addresses / contract_senders unless already there, a row inserted being
 * one more distinct address of its window - only for a window whose set is stored: one the
 * metrics module saw whole, with no stored set, just counts its rows (all new), and any other
 * one gets its set stored from its raw transactions first (plan_windows); the 1h and 1d contract
 * windows get the run's increments (metrics.h: bp_derived_run) and their new senders. A set row is
 * written once (derived.h: bp_set_row), so a window's set costs its distinct addresses, not one
 * write per batch per address. REVERT (of the highest block): the block's senders, (contract,
 * sender) pairs and per-contract sums are read from its raw transactions (still there: the raw rows
 * are deleted after this); the set rows whose first_block it is go (one address fewer); the
 * contract windows subtract the sums; the block's rows go (a window without a stored set gets it
 * from the raw transactions first, the block's included). Batch end: every touched minute's
 * contract rows and distinct senders are recomputed from its raw transactions, every touched chain
 * window from its finer rows (block -> 1m -> 1h -> 1d), the 1h and 1d ones with active_addresses
 * moved by their set's change; retention. Amounts of wei are exact decimal TEXT: the SQL functions
 * below do their arithmetic. */
#include "sink/sqlite_derived.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/held.h"
#include "metrics/keymap.h"
#include "metrics/metrics.h"
#include "metrics/windows.h"
#include "sink/sqlgen.h"
#include "util/hex.h"

#define BP_SQLITE_DERIVED_CACHE_KIB "4096" /* core/pipeline.c charges it */
#define ORDER_KEEP 65536                   /* set row pointers kept between runs */

/* The contract of a raw transactions row, as bp_metrics_contract_of decides it. */
#define CONTRACT_OF_TX                                                                             \
    "CASE WHEN to_address IS NULL THEN receipt_contract_address"                                   \
    " WHEN input IS NOT NULL AND input <> '0x' THEN to_address END"

/* ---- SQL functions ---------------------------------------------------------------------- */

static bool value_u256(sqlite3_value *v, bp_u256 *out)
{
    switch (sqlite3_value_type(v)) {
    case SQLITE_NULL:
        return false;
    case SQLITE_INTEGER: {
        sqlite3_int64 i = sqlite3_value_int64(v);
        bp_u256_from_u64(out, i < 0 ? 0 : (uint64_t)i);
        return true;
    }
    default: {
        const char *t = (const char *)sqlite3_value_text(v);
        return t && bp_u256_from_dec(t, (size_t)sqlite3_value_bytes(v), out) == 0;
    }
    }
}

static void result_u256(sqlite3_context *ctx, const bp_u256 *v)
{
    char dec[BP_U256_DEC_MAX];
    size_t n = bp_u256_to_dec(v, dec);
    sqlite3_result_text(ctx, dec, (int)n, SQLITE_TRANSIENT);
}

/* 0 on success, with a and b as uint256 (NULL: the result is NULL). */
static int two_u256(sqlite3_context *ctx, sqlite3_value **argv, bp_u256 *a, bp_u256 *b)
{
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL || sqlite3_value_type(argv[1]) == SQLITE_NULL) {
        sqlite3_result_null(ctx);
        return 1;
    }
    if (!value_u256(argv[0], a) || !value_u256(argv[1], b)) {
        sqlite3_result_error(ctx, "bp_add256/bp_sub256/bp_mul256: not a decimal uint256", -1);
        return 1;
    }
    return 0;
}

static void fn_add256(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    bp_u256 a, b;
    (void)argc;
    if (two_u256(ctx, argv, &a, &b) != 0)
        return;
    if (bp_u256_add(&a, &a, &b) != 0)
        sqlite3_result_error(ctx, "bp_add256: overflow", -1);
    else
        result_u256(ctx, &a);
}

static void fn_sub256(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    bp_u256 a, b, nb, one = {{1, 0, 0, 0}};
    (void)argc;
    if (two_u256(ctx, argv, &a, &b) != 0)
        return;
    if (bp_u256_cmp(&a, &b) < 0) {
        sqlite3_result_error(ctx, "bp_sub256: would be negative", -1);
        return;
    }
    for (int i = 0; i < 4; i++)
        nb.w[i] = ~b.w[i];
    bp_u256_add(&nb, &nb, &one); /* two's complement: a - b = a + ~b + 1 (mod 2^256) */
    bp_u256_add(&a, &a, &nb);
    result_u256(ctx, &a);
}

/* a x b where one of them fits 64 bits (gas x a price). */
static void fn_mul256(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    bp_u256 a, b;
    (void)argc;
    if (two_u256(ctx, argv, &a, &b) != 0)
        return;
    if (!bp_u256_fits_u64(&a) && !bp_u256_fits_u64(&b)) {
        sqlite3_result_error(ctx, "bp_mul256: neither factor fits 64 bits", -1);
        return;
    }
    bp_u256 r;
    int over =
        bp_u256_fits_u64(&a) ? bp_u256_mul_u64(&r, &b, a.w[0]) : bp_u256_mul_u64(&r, &a, b.w[0]);
    if (over)
        sqlite3_result_error(ctx, "bp_mul256: overflow", -1);
    else
        result_u256(ctx, &r);
}

static void fn_native(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    bp_u256 v;
    (void)argc;
    if (!value_u256(argv[0], &v))
        sqlite3_result_null(ctx);
    else
        sqlite3_result_double(ctx, bp_u256_to_double(&v) / 1e18);
}

typedef struct sum256 {
    bp_u256 sum;
    bool any, overflow;
} sum256;

static void sum256_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    sum256 *s = sqlite3_aggregate_context(ctx, sizeof(*s));
    bp_u256 v;
    (void)argc;
    if (!s || !value_u256(argv[0], &v))
        return;
    s->any = true;
    s->overflow |= bp_u256_add(&s->sum, &s->sum, &v) != 0;
}

static void sum256_final(sqlite3_context *ctx)
{
    sum256 *s = sqlite3_aggregate_context(ctx, 0);
    if (s && s->overflow)
        sqlite3_result_error(ctx, "bp_sum256: overflow", -1);
    else if (s && s->any)
        result_u256(ctx, &s->sum);
    else
        sqlite3_result_null(ctx);
}

typedef struct median256 {
    bp_u256 *v;
    size_t n, cap;
    bool nomem;
} median256;

static void median_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    median256 *m = sqlite3_aggregate_context(ctx, sizeof(*m));
    bp_u256 v;
    (void)argc;
    if (!m || !value_u256(argv[0], &v))
        return;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        bp_u256 *p = realloc(m->v, cap * sizeof(*p));
        if (!p) {
            m->nomem = true;
            return;
        }
        m->v = p;
        m->cap = cap;
    }
    m->v[m->n++] = v;
}

static int cmp_u256(const void *a, const void *b)
{
    return bp_u256_cmp(a, b);
}

static void median_final(sqlite3_context *ctx)
{
    median256 *m = sqlite3_aggregate_context(ctx, 0);
    if (m && m->nomem)
        sqlite3_result_error_nomem(ctx);
    else if (!m || m->n == 0)
        sqlite3_result_null(ctx);
    else {
        qsort(m->v, m->n, sizeof(*m->v), cmp_u256);
        result_u256(ctx, &m->v[(m->n - 1) / 2]);
    }
    if (m)
        free(m->v);
}

int bp_sqlite_derived_functions(sqlite3 *db)
{
    int f = SQLITE_UTF8 | SQLITE_DETERMINISTIC;
    int rc = sqlite3_create_function(db, "bp_add256", 2, f, NULL, fn_add256, NULL, NULL);
    rc |= sqlite3_create_function(db, "bp_sub256", 2, f, NULL, fn_sub256, NULL, NULL);
    rc |= sqlite3_create_function(db, "bp_mul256", 2, f, NULL, fn_mul256, NULL, NULL);
    rc |= sqlite3_create_function(db, "bp_native", 1, f, NULL, fn_native, NULL, NULL);
    rc |= sqlite3_create_function(db, "bp_sum256", 1, f, NULL, NULL, sum256_step, sum256_final);
    rc |= sqlite3_create_function(db, "bp_median256", 1, f, NULL, NULL, median_step, median_final);
    return rc;
}

/* ---- schema --------------------------------------------------------------------------- */

static const char *sqlite_dtype(const bp_column *c)
{
    switch (c->type) {
    case BP_COL_INT64:
    case BP_COL_UINT64:
    case BP_COL_BOOL:
        return "INTEGER";
    case BP_COL_FLOAT:
        return "REAL";
    default:
        return "TEXT";
    }
}

static const bp_sql_dialect g_dialect = {
    .type_of = sqlite_dtype,
    .sum256 = "bp_sum256(%s)",
    .add256 = "bp_add256(%s, %s)",
    .sub256 = "bp_sub256(%s, %s)",
    .median = "bp_median256(%s)",
    .native = "bp_native(%s)",
    .time_of = "datetime(%s, 'unixepoch')",
    .view_prefix = "CREATE VIEW IF NOT EXISTS ",
    .table_suffix = " WITHOUT ROWID",
    .contract_of_tx = CONTRACT_OF_TX,
    .fee_of_tx = "bp_add256(bp_mul256(coalesce(receipt_gas_used, 0),"
                 " coalesce(receipt_effective_gas_price, gas_price, 0)),"
                 " coalesce(receipt_l1_fee, 0))",
};

/* (the rollups and pricing read blocks by time; token_transfers' lookup by token is one of
 * the output's optional lookup indexes, sqlite.c) */
static const char g_indexes[] = "CREATE INDEX IF NOT EXISTS chain_metrics_block_ts_idx"
                                " ON chain_metrics_block(origin_key, block_timestamp);"
                                /* the groups the tables were written with (derived=) */
                                "CREATE TABLE IF NOT EXISTS derived_groups(id INTEGER PRIMARY KEY"
                                " CHECK (id = 1), groups TEXT NOT NULL);";

int bp_sqlite_derived_schema(bp_buf *sql)
{
    int rc = 0;
    for (int t = 0; t < BP_DT_COUNT; t++) {
        rc |= bp_sql_create_dtable(sql, (bp_dtable)t, "IF NOT EXISTS ", &g_dialect);
        if (bp_dtables[t].timecol)
            rc |= bp_sql_create_view(sql, (bp_dtable)t, &g_dialect);
    }
    return rc | bp_buf_puts(sql, g_indexes);
}

/* ---- statements ----------------------------------------------------------------------- */

enum {
    S_INS_CB,
    S_INS_TT,
    S_INS_ML,
    S_UPS_AA,
    S_UPS_CS,
    S_UPS_KW,                             /* + grain */
    S_SUB_KW = S_UPS_KW + BP_GRAIN_COUNT, /* + grain */
    S_DEC_US = S_SUB_KW + BP_GRAIN_COUNT, /* + grain */
    S_DEL_KW0 = S_DEC_US + BP_GRAIN_COUNT,
    S_ROLLUP = S_DEL_KW0 + BP_GRAIN_COUNT,
    S_PRUNE = S_ROLLUP + BP_GRAIN_COUNT,
    S_KW_MIN_DEL = S_PRUNE + BP_GRAIN_COUNT,
    S_KW_MIN_INS,
    S_KW_MIN_ROW,
    S_ROLLUP_1M_N,
    S_HAS_CB,
    S_DEL_AA1,
    S_DEL_CS1,
    S_DEL_CB,
    S_DEL_TT,
    S_DEL_ML,
    S_UPS_PRICE,
    S_SET_HAS,
    S_CB_IN,
    S_CB_MIN,
    S_MAT_AA,
    S_MAT_CS,
    S_PRICE_BLOCKS,
    S_PRICED_MINUTES,
    S_COUNT
};

static const char *const g_fixed[S_COUNT] = {
    /* a set row is written once: an address already in the window's set stays as it is */
    [S_UPS_AA] = "INSERT INTO active_addresses(origin_key, grain, window_start, address,"
                 " first_block) VALUES(?1, ?2, ?3, ?4, ?5)"
                 " ON CONFLICT(origin_key, grain, window_start, address) DO NOTHING",
    [S_UPS_CS] = "INSERT INTO contract_senders(origin_key, grain, window_start, contract_address,"
                 " address, first_block) VALUES(?1, ?2, ?3, ?4, ?5, ?6)"
                 " ON CONFLICT(origin_key, grain, window_start, contract_address, address)"
                 " DO NOTHING",
    /* a window's set is stored (materialized) or not at all: one row says which */
    [S_SET_HAS] = "SELECT 1 FROM active_addresses WHERE origin_key = ?1 AND grain = ?2"
                  " AND window_start = ?3 LIMIT 1",
    [S_CB_IN] = "SELECT 1 FROM chain_metrics_block WHERE origin_key = ?1"
                " AND block_timestamp >= ?2 AND block_timestamp < ?3 LIMIT 1",
    [S_CB_MIN] = "SELECT min(block_timestamp) FROM chain_metrics_block WHERE origin_key = ?1"
                 " AND block_timestamp < ?2",
    /* a window's set from the raw transactions of its blocks below ?5 that have derived rows
     * (blocks applied with metrics off are in no window; ?3, ?4: the window's start and end) */
    [S_MAT_AA] = "INSERT INTO active_addresses(origin_key, grain, window_start, address,"
                 " first_block) SELECT ?1, ?2, ?3, t.from_address, min(t.block_number)"
                 " FROM chain_metrics_block c JOIN transactions t ON t.chain = c.origin_key"
                 " AND t.block_number = c.block_number WHERE c.origin_key = ?1"
                 " AND c.block_timestamp >= ?3 AND c.block_timestamp < ?4 AND c.block_number < ?5"
                 " AND t.from_address IS NOT NULL GROUP BY t.from_address",
    [S_MAT_CS] =
        "INSERT INTO contract_senders(origin_key, grain, window_start, contract_address,"
        " address, first_block) SELECT ?1, ?2, ?3, k, a, min(n) FROM (SELECT"
        " CASE WHEN t.to_address IS NULL THEN t.receipt_contract_address"
        " WHEN t.input IS NOT NULL AND t.input <> '0x' THEN t.to_address END AS k,"
        " t.from_address AS a, t.block_number AS n FROM chain_metrics_block c"
        " JOIN transactions t ON t.chain = c.origin_key AND t.block_number = c.block_number"
        " WHERE c.origin_key = ?1 AND c.block_timestamp >= ?3 AND c.block_timestamp < ?4"
        " AND c.block_number < ?5) WHERE k IS NOT NULL AND a IS NOT NULL GROUP BY k, a",
    [S_HAS_CB] = "SELECT block_timestamp FROM chain_metrics_block WHERE origin_key = ?1"
                 " AND block_number = ?2 AND block_hash = ?3",
    /* the reverted block is the window's highest: the rows it was the first block of go */
    [S_DEL_AA1] = "DELETE FROM active_addresses WHERE origin_key = ?1 AND grain = ?2"
                  " AND window_start = ?3 AND first_block = ?4 AND address IN (SELECT from_address"
                  " FROM transactions WHERE chain = ?1 AND block_number = ?4)",
    [S_DEL_CS1] = "DELETE FROM contract_senders WHERE origin_key = ?1 AND grain = ?2"
                  " AND window_start = ?3 AND first_block = ?4 AND (contract_address, address) IN"
                  " (SELECT " CONTRACT_OF_TX ", from_address FROM transactions WHERE chain = ?1"
                  " AND block_number = ?4) RETURNING contract_address",
    [S_DEL_CB] = "DELETE FROM chain_metrics_block WHERE origin_key = ?1 AND block_number = ?2",
    [S_DEL_TT] = "DELETE FROM token_transfers WHERE chain = ?1 AND block_number = ?2",
    [S_DEL_ML] = "DELETE FROM ml_predictions WHERE origin_key = ?1 AND block_number = ?2",
    [S_UPS_PRICE] = "INSERT INTO prices(symbol, timestamp, usd, source) VALUES(?1, ?2, ?3, ?4)"
                    " ON CONFLICT(symbol, timestamp) DO UPDATE SET usd = excluded.usd,"
                    " source = excluded.source WHERE usd IS NOT excluded.usd",
    /* The latest price at or before the block, at most max_age older. */
    [S_PRICE_BLOCKS] = "UPDATE chain_metrics_block SET fees_paid_usd = fees_paid_native *"
                       " (SELECT usd FROM prices WHERE symbol = ?2 AND timestamp <= block_timestamp"
                       " AND timestamp >= block_timestamp - ?3 ORDER BY timestamp DESC LIMIT 1)"
                       " WHERE origin_key = ?1 AND block_timestamp >= ?4 AND block_timestamp <= ?5",
    [S_PRICED_MINUTES] = "SELECT DISTINCT block_timestamp - block_timestamp % 60"
                         " FROM chain_metrics_block WHERE origin_key = ?1"
                         " AND block_timestamp >= ?2 AND block_timestamp <= ?3",
};

/* An hour or day window of a run's set rows: fast when its set is not stored and the metrics
 * module knows every row of it new (its rows are only counted). */
typedef struct set_window {
    int g;
    uint64_t w;
    bool all_new, fast;
} set_window;

struct bp_sqlite_derived {
    sqlite3 *db;
    const char *path;
    sqlite3_stmt *st[S_COUNT];
    bp_retention ret;
    uint64_t last_cut[BP_EXPIRY_MAX];    /* retention: each delete's last cut */
    char cut_origin[64];                 /* the chain they were (several chains share it) */
    bp_windows win;                      /* the batch's touched windows */
    bp_keymap new_pairs[BP_GRAIN_COUNT]; /* (window, contract) -> new pairs of the run */
    bp_derived_run run;
    const bp_set_row **order; /* a run's set rows, sorted */
    size_t order_cap;
    set_window *wins; /* the run's set windows */
    size_t nwins, wins_cap;
    bool foreign; /* the batch met blocks another process stored: no minute summaries */
    char msg[256];
    /* What a group (batches of a backfill in one transaction, sqlite.c) writes once, at its
     * end: every run's 1h and 1d contract increments folded per (window, contract) (strings
     * copied: the batches' memory goes back as each is written), the last minute of the
     * latest batch (the next one usually continues it: its summary comes again, complete),
     * the touched 1h and 1d chain windows (in win) and retention as of the latest batch. */
    bp_held held;
    char held_origin[64]; /* held_ret's chain */
    bp_derived held_ret;  /* origin_key, newest_ts, frozen_ts of the latest batch held */
    bool held_ret_set;
    bool group;           /* a batch was held: the group's end writes the rest */
    uint64_t batch_hi_ts; /* the newest block timestamp the batch applied */
    unsigned has;         /* the derived groups the tables hold (BP_DG_BIT) */
};

#define HAS(d, g) (((d)->has & BP_DG_BIT(BP_DG_##g)) != 0)

void bp_sqlite_derived_foreign(bp_sqlite_derived *d)
{
    d->foreign = true;
}

/* ---- small helpers ------------------------------------------------------------------------ */

static int db_error(bp_sqlite_derived *d, bp_error *err, const char *fmt, uint64_t number)
{
    char what[160];
    snprintf(what, sizeof(what), fmt, number);
    return bp_error_set(err, BP_EDB, "%s: %s", what, sqlite3_errmsg(d->db));
}

/* Steps a statement to its end; SQLITE_OK or the error. */
static int run(sqlite3_stmt *st)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
    return sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static int bind_value(sqlite3_stmt *st, int i, const bp_value *v)
{
    char dec[BP_U256_DEC_MAX];
    switch (v->kind) {
    case BP_VAL_U64:
        return bind_u64(st, i, v->u);
    case BP_VAL_U256:
        return sqlite3_bind_text(st, i, dec, (int)bp_u256_to_dec(&v->q->v, dec), SQLITE_TRANSIENT);
    case BP_VAL_STR:
        return sqlite3_bind_text(st, i, v->s, -1, SQLITE_STATIC);
    case BP_VAL_F64:
        return sqlite3_bind_double(st, i, v->f);
    default:
        return sqlite3_bind_null(st, i);
    }
}

static int bind_set_key(sqlite3_stmt *st, const char *origin, int g, uint64_t w, uint64_t number)
{
    return bind_text(st, 1, origin) | bind_text(st, 2, bp_grain_names[g]) | bind_u64(st, 3, w) |
           bind_u64(st, 4, number);
}

/* Inserts one row of table t (its shape's row struct). */
static int insert_row(bp_sqlite_derived *d, int which, bp_dtable t, const void *row)
{
    sqlite3_stmt *st = d->st[which];
    size_t first, n = bp_dshape_columns(bp_dtables[t].shape, &first);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        bp_value v = bp_dvalue_of((bp_dcol_id)(first + i), row);
        rc |= bind_value(st, (int)i + 1, &v);
    }
    return rc != SQLITE_OK ? rc : run(st);
}

static int touch(bp_sqlite_derived *d, int g, uint64_t w, int64_t delta)
{
    return bp_windows_touch(&d->win, g, w, delta);
}

/* ---- open / close ------------------------------------------------------------------------- */

static int gen(bp_buf *b, int which)
{
    int g = 0;
    bp_buf_reset(b);
    if (which == S_INS_CB)
        return bp_sql_dinsert(b, BP_DT_CHAIN_BLOCK);
    if (which == S_KW_MIN_DEL)
        return bp_sql_contract_minute_delete(b, "?1", "?2");
    if (which == S_KW_MIN_INS)
        return bp_sql_contract_minute_insert(b, &g_dialect, "?1", "?2");
    if (which == S_KW_MIN_ROW)
        return bp_sql_dinsert(b, BP_DT_CONTRACT_1M);
    if (which == S_ROLLUP_1M_N)
        return bp_sql_rollup(b, BP_DT_CHAIN_1M, &g_dialect, "?1", "?2", "?3");
    if (which == S_INS_TT)
        return bp_sql_dinsert(b, BP_DT_TOKEN_TRANSFERS);
    if (which == S_INS_ML)
        return bp_sql_dinsert(b, BP_DT_ML_PREDICTIONS);
#define GRAIN_OF(base)                                                                             \
    (which >= (base) && which < (base) + BP_GRAIN_COUNT && ((g = which - (base)), 1))
    if (GRAIN_OF(S_UPS_KW)) {
        const char *name = bp_dtables[BP_DT_CONTRACT_1M + g].name;
        int rc = bp_buf_printf(b, "INSERT INTO %s(", name);
        rc |= bp_sql_dcolumns(b, BP_DS_CONTRACT_WINDOW, NULL);
        rc |= bp_buf_printf(b, ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, bp_native(?6), ?7)"
                               " ON CONFLICT(origin_key, window_start, contract_address)"
                               " DO UPDATE SET ");
        rc |= bp_sql_contract_combine(b, &g_dialect, name, '+', "excluded");
        return rc | bp_buf_printf(b,
                                  ", unique_senders = %s.unique_senders +"
                                  " excluded.unique_senders",
                                  name);
    }
    if (GRAIN_OF(S_SUB_KW)) {
        const char *name = bp_dtables[BP_DT_CONTRACT_1M + g].name;
        int rc = bp_buf_printf(b, "UPDATE %s SET ", name);
        rc |= bp_sql_contract_combine(b, &g_dialect, name, '-', "b");
        rc |= bp_buf_puts(b, " FROM ");
        rc |= bp_sql_block_contracts(b, &g_dialect, "?1", "?2");
        return rc | bp_buf_printf(b,
                                  " b WHERE %s.origin_key = ?1 AND %s.window_start = ?3"
                                  " AND %s.contract_address = b.contract_address",
                                  name, name, name);
    }
    if (GRAIN_OF(S_DEC_US))
        return bp_buf_printf(b,
                             "UPDATE %s SET unique_senders = unique_senders - ?4"
                             " WHERE origin_key = ?1 AND window_start = ?2"
                             " AND contract_address = ?3",
                             bp_dtables[BP_DT_CONTRACT_1M + g].name);
    if (GRAIN_OF(S_DEL_KW0))
        return bp_buf_printf(b,
                             "DELETE FROM %s WHERE origin_key = ?1 AND window_start = ?2"
                             " AND txcount = 0",
                             bp_dtables[BP_DT_CONTRACT_1M + g].name);
    if (GRAIN_OF(S_ROLLUP)) /* a minute without a summary counts its raw transactions */
        return bp_sql_rollup(b, (bp_dtable)(BP_DT_CHAIN_1M + g), &g_dialect, "?1", "?2",
                             g == BP_GRAIN_1M ? NULL : "?3");
    if (GRAIN_OF(S_PRUNE))
        return bp_sql_rollup_prune(b, (bp_dtable)(BP_DT_CHAIN_1M + g), "?1", "?2");
#undef GRAIN_OF
    return bp_buf_puts(b, g_fixed[which]);
}

/* The file's record of the groups its tables hold, checked against groups (bp_dgroups_open). */
static int select_groups(bp_sqlite_derived *d, unsigned groups, bp_error *err)
{
    sqlite3_stmt *st = NULL;
    char stored[160] = "", list[160] = "";
    bool has_record = false, written = false;
    int rc = sqlite3_prepare_v2(d->db,
                                "SELECT (SELECT groups FROM derived_groups WHERE id = 1),"
                                " EXISTS (SELECT 1 FROM chain_metrics_block)"
                                " OR EXISTS (SELECT 1 FROM chain_metrics_1d)",
                                -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 0);
        has_record = text != NULL;
        snprintf(stored, sizeof(stored), "%s", text ? text : "");
        written = sqlite3_column_int(st, 1) != 0;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc != SQLITE_OK)
        return bp_error_set(err, BP_EDB, "%s: reading derived_groups: %s", d->path,
                            sqlite3_errmsg(d->db));
    if (bp_dgroups_open_text(groups, has_record ? stored : NULL, written, &d->has, list,
                             sizeof(list), err) != 0)
        return err->code;
    if (!list[0])
        return 0;
    rc = sqlite3_prepare_v2(d->db,
                            "INSERT INTO derived_groups(id, groups) VALUES(1, ?1)"
                            " ON CONFLICT(id) DO UPDATE SET groups = excluded.groups",
                            -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = bind_text(st, 1, list)) == SQLITE_OK)
        rc = run(st);
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0
                           : bp_error_set(err, BP_EDB, "%s: writing derived_groups: %s", d->path,
                                          sqlite3_errmsg(d->db));
}

unsigned bp_sqlite_derived_groups(const bp_sqlite_derived *d)
{
    return d->has;
}

int bp_sqlite_derived_open(sqlite3 *db, const char *path, const bp_retention *ret, unsigned groups,
                           bp_sqlite_derived **out, bp_error *err)
{
    bool writes = groups != 0;
    *out = NULL;
    bp_sqlite_derived *d = calloc(1, sizeof(*d));
    if (!d)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    d->db = db;
    d->path = path;
    d->ret = *ret;
    bp_derived_run_init(&d->run);
    /* A minute without the module's summary is recomputed from its raw transactions, read back
     * right after they were written: with SQLite's default 2 MiB page cache (32 of our 64 KiB
     * pages) every read went to pread() again. 4 MiB, charged to the budget (core/pipeline.c):
     * with the summaries such reads are the exception (after a restart or a reorg). Only
     * with metrics on: off, the derived tables are only read by REVERTs. */
    if (writes)
        sqlite3_exec(db, "PRAGMA cache_size = -" BP_SQLITE_DERIVED_CACHE_KIB, NULL, NULL, NULL);
    int rc = bp_sqlite_derived_functions(db) == SQLITE_OK
                 ? 0
                 : bp_error_set(err, BP_EDB, "%s: registering SQL functions: %s", path,
                                sqlite3_errmsg(db));
    bp_buf sql;
    bp_buf_init(&sql, 0);
    for (int i = 0; rc == 0 && i < S_COUNT; i++) {
        if (gen(&sql, i) != 0)
            rc = bp_error_set(err, BP_ENOMEM, "out of memory");
        else if (sqlite3_prepare_v3(db, sql.data, -1, SQLITE_PREPARE_PERSISTENT, &d->st[i], NULL) !=
                 SQLITE_OK)
            rc = bp_error_set(err, BP_EDB, "%s: preparing \"%.80s...\": %s", path, sql.data,
                              sqlite3_errmsg(db));
    }
    bp_buf_release(&sql);
    if (rc == 0)
        rc = select_groups(d, groups, err);
    if (rc != 0) {
        bp_sqlite_derived_close(d);
        return rc;
    }
    *out = d;
    return 0;
}

void bp_sqlite_derived_close(bp_sqlite_derived *d)
{
    if (!d)
        return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(d->st[i]);
    for (int g = 0; g < BP_GRAIN_COUNT; g++)
        bp_keymap_release(&d->new_pairs[g]);
    bp_held_release(&d->held);
    bp_windows_release(&d->win);
    bp_derived_run_release(&d->run);
    free(d->order);
    free(d->wins);
    free(d);
}

/* ---- prices ---------------------------------------------------------------------------- */

/* Prices the blocks with timestamps in [lo, hi] from the prices table. */
static int price_blocks(bp_sqlite_derived *d, const bp_derived *der, uint64_t lo, uint64_t hi)
{
    sqlite3_stmt *st = d->st[S_PRICE_BLOCKS];
    int rc = bind_text(st, 1, der->origin_key) | bind_text(st, 2, der->native_symbol) |
             bind_u64(st, 3, der->price_max_age) | bind_u64(st, 4, lo) | bind_u64(st, 5, hi);
    return rc != SQLITE_OK ? rc : run(st);
}

/* The minutes of the blocks in [lo, hi]: their windows are recomputed (USD changed). */
static int touch_priced(bp_sqlite_derived *d, const bp_derived *der, uint64_t lo, uint64_t hi)
{
    sqlite3_stmt *st = d->st[S_PRICED_MINUTES];
    int rc = bind_text(st, 1, der->origin_key) | bind_u64(st, 2, lo) | bind_u64(st, 3, hi);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        rc = touch(d, BP_GRAIN_1M, (uint64_t)sqlite3_column_int64(st, 0), 0) ? SQLITE_NOMEM
                                                                             : SQLITE_OK;
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The prices learnt: stored; the blocks they may price are priced again. Whether the row
 * changed does not matter: another writer (a chain sharing the file) may have stored the
 * point first, and this chain's blocks are priced only here. */
static int store_prices(bp_sqlite_derived *d, const bp_derived *der, bp_error *err)
{
    uint64_t lo = UINT64_MAX, hi = 0;
    sqlite3_stmt *st = d->st[S_UPS_PRICE];
    for (size_t i = 0; i < der->price_count; i++) {
        const bp_price_row *p = &der->prices[i];
        int rc = bind_text(st, 1, p->symbol) | bind_u64(st, 2, p->timestamp) |
                 sqlite3_bind_double(st, 3, p->usd.v) | bind_text(st, 4, p->source);
        if (rc != SQLITE_OK || run(st) != SQLITE_OK)
            return db_error(d, err, "storing the price at %" PRIu64, p->timestamp);
        if (strcmp(p->symbol, der->native_symbol) == 0) {
            lo = p->timestamp < lo ? p->timestamp : lo;
            hi = p->timestamp > hi ? p->timestamp : hi;
        }
    }
    if (lo > hi)
        return 0;
    hi += der->price_max_age;
    if (price_blocks(d, der, lo, hi) != SQLITE_OK || touch_priced(d, der, lo, hi) != SQLITE_OK)
        return db_error(d, err, "pricing blocks from %" PRIu64, lo);
    return 0;
}

int bp_sqlite_derived_begin(bp_sqlite_derived *d, const bp_derived *der, bp_error *err)
{
    if (!d->group) /* else the group's 1h and 1d windows so far stay touched */
        bp_windows_clear(&d->win);
    d->foreign = false;
    d->batch_hi_ts = 0;
    return der && HAS(d, PRICES) ? store_prices(d, der, err) : 0;
}

/* ---- APPLY -------------------------------------------------------------------------------- */

static int insert_block_rows(bp_sqlite_derived *d, const bp_block_derived *b, bp_error *err)
{
    uint64_t n = b->chain.block_number;
    if (insert_row(d, S_INS_CB, BP_DT_CHAIN_BLOCK, &b->chain) != SQLITE_OK)
        return db_error(d, err, "block %" PRIu64 ": insert into chain_metrics_block", n);
    for (size_t i = 0; HAS(d, TOKEN_TRANSFERS) && i < b->transfer_count; i++)
        if (insert_row(d, S_INS_TT, BP_DT_TOKEN_TRANSFERS, &b->transfers[i]) != SQLITE_OK)
            return db_error(d, err, "block %" PRIu64 ": insert into token_transfers", n);
    for (size_t i = 0; HAS(d, ML_PREDICTIONS) && i < b->prediction_count; i++)
        if (insert_row(d, S_INS_ML, BP_DT_ML_PREDICTIONS, &b->predictions[i]) != SQLITE_OK)
            return db_error(d, err, "block %" PRIu64 ": insert into ml_predictions", n);
    return 0;
}

/* ---- stored sets: only where a count needs them ---------------------------------------- */

/* Whether window w of grain g has its set stored (a stored set is complete: it has a row). */
static int set_stored(bp_sqlite_derived *d, const char *origin, int g, uint64_t w, bool *stored)
{
    sqlite3_stmt *st = d->st[S_SET_HAS];
    int rc = bind_text(st, 1, origin) | bind_text(st, 2, bp_grain_names[g]) | bind_u64(st, 3, w);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    *stored = rc == SQLITE_ROW;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Stores window w's set (grain g) as of its blocks below `below` that have derived rows, from
 * their raw transactions (in this file, written before the derived rows; chain_metrics_block
 * says which blocks are in the windows, and retention keeps its rows while an unstored window
 * needs them: keep_sets_exact): from then on the window's set rows are upserted against it. */
static int materialize(bp_sqlite_derived *d, const char *origin, int g, uint64_t w, uint64_t below)
{
    int rc = SQLITE_OK;
    int last = HAS(d, CONTRACT_METRICS) ? S_MAT_CS : S_MAT_AA;
    for (int which = S_MAT_AA; rc == SQLITE_OK && which <= last; which++) {
        sqlite3_stmt *st = d->st[which];
        rc = bind_text(st, 1, origin) | bind_text(st, 2, bp_grain_names[g]) | bind_u64(st, 3, w) |
             bind_u64(st, 4, w + bp_grain_seconds[g]) |
             bind_u64(st, 5, below > INT64_MAX ? INT64_MAX : below);
        rc = rc != SQLITE_OK ? rc : run(st);
    }
    return rc;
}

/* The window entry of (g, w) in d->wins (added). */
static set_window *set_window_of(bp_sqlite_derived *d, int g, uint64_t w)
{
    for (size_t i = d->nwins; i-- > 0;)
        if (d->wins[i].g == g && d->wins[i].w == w)
            return &d->wins[i];
    if (bp_grow((void **)&d->wins, &d->wins_cap, d->nwins + 1, sizeof(*d->wins)) != 0)
        return NULL;
    d->wins[d->nwins] = (set_window){g, w, true, false};
    return &d->wins[d->nwins++];
}

/* Which of the run's windows are fast. A window whose set is not stored and whose rows the
 * metrics module knows to be new (it saw the window whole) needs no set rows: a row is one
 * more distinct address. Any other one (after a restart, a REVERT, the module giving its sets
 * up for memory, blocks another process stored) has its set stored from the raw
 * transactions first, if it is not yet, and its rows upserted against it. */
static int plan_windows(bp_sqlite_derived *d, const bp_block_derived *const *blocks, size_t n,
                        bool *all_fast, bp_error *err)
{
    uint64_t run_first = UINT64_MAX;
    d->nwins = 0;
    for (size_t i = 0; i < n; i++) {
        const bp_block_derived *b = blocks[i];
        run_first = b->chain.block_number < run_first ? b->chain.block_number : run_first;
        for (size_t j = 0; j < b->set_row_count; j++) {
            const bp_set_row *r = &b->set_rows[j];
            set_window *sw = set_window_of(d, bp_derived_set_grain(r), r->window_start);
            if (!sw)
                return bp_error_set(err, BP_ENOMEM, "out of memory");
            sw->all_new &= r->known_new;
        }
    }
    const char *origin = n ? blocks[0]->chain.origin_key : NULL;
    *all_fast = true;
    for (size_t i = 0; i < d->nwins; i++) {
        set_window *sw = &d->wins[i];
        bool stored;
        int rc = set_stored(d, origin, sw->g, sw->w, &stored);
        sw->fast = rc == SQLITE_OK && !stored && sw->all_new && !d->foreign;
        if (rc == SQLITE_OK && !stored && !sw->fast)
            rc = materialize(d, origin, sw->g, sw->w, run_first);
        if (rc != SQLITE_OK)
            return db_error(d, err, "storing the address set of the window at %" PRIu64, sw->w);
        *all_fast &= sw->fast;
    }
    return 0;
}

static bool row_fast(bp_sqlite_derived *d, const bp_set_row *r)
{
    set_window *sw = set_window_of(d, bp_derived_set_grain(r), r->window_start);
    return sw && sw->fast;
}

/* ---- set rows ---------------------------------------------------------------------------- */

/* Inserts a set row unless its address is in the window's set already: *added when it was
 * not (one more distinct address). */
static int upsert_set(bp_sqlite_derived *d, int which, const bp_set_row *r, bool *added)
{
    sqlite3_stmt *st = d->st[which];
    int i = which == S_UPS_CS ? 5 : 4; /* the address, then first_block */
    int rc = bind_text(st, 1, r->origin_key) | bind_text(st, 2, r->grain) |
             bind_u64(st, 3, r->window_start);
    if (which == S_UPS_CS)
        rc |= bind_text(st, 4, r->contract_address);
    rc |= bind_text(st, i, r->address) | bind_u64(st, i + 1, r->first_block);
    if (rc == SQLITE_OK && (rc = run(st)) == SQLITE_OK)
        *added = sqlite3_changes(d->db) == 1;
    return rc;
}

/* One more new (contract, sender) pair in (window, contract) of grain g. */
static int new_pair(bp_sqlite_derived *d, int g, const bp_set_row *r)
{
    bool added;
    size_t *n =
        bp_keymap_ref(&d->new_pairs[g], r->window_start, r->contract_address, NULL, 0, &added);
    if (!n)
        return BP_ENOMEM;
    (*n)++;
    return 0;
}

static uint64_t new_pairs_of(bp_sqlite_derived *d, int g, const bp_contract_row *c)
{
    size_t *n = bp_keymap_get(&d->new_pairs[g], c->window_start, c->contract_address, NULL);
    return n ? *n : 0;
}

/* One set row: a row inserted is one more distinct address of its window, or one more sender
 * of its (window, contract). */
static int upsert_set_row(bp_sqlite_derived *d, const bp_set_row *r, bp_error *err)
{
    bool pair = r->contract_address != NULL, added = true;
    if (pair && !HAS(d, CONTRACT_METRICS))
        return 0; /* computed for another output */
    int g = bp_derived_set_grain(r);
    if (!row_fast(d, r) && upsert_set(d, pair ? S_UPS_CS : S_UPS_AA, r, &added) != SQLITE_OK)
        return db_error(d, err,
                        pair ? "upsert into contract_senders (window %" PRIu64 ")"
                             : "upsert into active_addresses (window %" PRIu64 ")",
                        r->window_start);
    if (added && (pair ? new_pair(d, g, r) : touch(d, g, r->window_start, 1)) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    return 0;
}

/* The blocks' set rows in key order: of a key the run has in several blocks, the lowest
 * block's row is inserted (its first_block) and the others are skipped: their statement found
 * it there and inserted nothing (a sixth of a 1,000 tx/s run's rows: its busy senders). In block
 * order each row landed on a random page of its window's key range, so a run dirtied most of the
 * sets' pages many times over: more than SQLite's page cache, spilled to the WAL and read back
 * (measured: 2.7 GiB of WAL writes and 3 GiB of reads for a backfill whose file is 290 MiB).
 * In key order a run visits each page once. */
static int upsert_sets(bp_sqlite_derived *d, const bp_block_derived *const *blocks, size_t n,
                       bp_error *err)
{
    bool all_fast = false;
    int rc = plan_windows(d, blocks, n, &all_fast, err);
    if (rc != 0 || all_fast) { /* rows only counted: in any order */
        for (size_t i = 0; rc == 0 && i < n; i++)
            for (size_t j = 0; rc == 0 && j < blocks[i]->set_row_count; j++)
                rc = upsert_set_row(d, &blocks[i]->set_rows[j], err);
        return rc;
    }
    size_t count;
    if (bp_derived_sorted_set_rows(blocks, n, &d->order, &d->order_cap, &count) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < count; i++)
        if (i == 0 || bp_set_row_key_cmp(d->order[i - 1], d->order[i]) != 0)
            rc = upsert_set_row(d, d->order[i], err);
    if (d->order_cap > ORDER_KEEP) { /* a huge block's: not kept for the ordinary ones */
        free(d->order);
        d->order = NULL;
        d->order_cap = 0;
    }
    return rc;
}

/* ---- what a group holds ------------------------------------------------------------------ */

/* The run's 1h and 1d increments (with their new senders) folded into the held ones (held.h). */
static int fold_contracts(bp_sqlite_derived *d, int g, bp_error *err)
{
    const bp_derived_run *r = &d->run;
    for (size_t i = 0; HAS(d, CONTRACT_METRICS) && i < r->contract_count[g]; i++)
        if (bp_held_add(&d->held, g, &r->contracts[g][i], new_pairs_of(d, g, &r->contracts[g][i])))
            return bp_error_set(err, BP_ENOMEM, "out of memory");
    return 0;
}

/* The held increments upserted into their contract windows (then nothing is held). */
static int write_contracts(bp_sqlite_derived *d, bp_error *err)
{
    int rc = 0;
    for (int g = BP_GRAIN_SETS; g < BP_GRAIN_COUNT; g++) {
        sqlite3_stmt *st = d->st[S_UPS_KW + g];
        for (size_t i = 0; rc == 0 && i < d->held.n[g]; i++) {
            const bp_contract_row *c = &d->held.rows[g][i];
            bp_value fee = bp_val_qty(&c->fees_paid_wei);
            int brc = bind_text(st, 1, c->origin_key) | bind_u64(st, 2, c->window_start) |
                      bind_text(st, 3, c->contract_address) | bind_u64(st, 4, c->txcount) |
                      bind_u64(st, 5, c->gas_used) | bind_value(st, 6, &fee) |
                      bind_u64(st, 7, c->unique_senders);
            if (brc != SQLITE_OK || run(st) != SQLITE_OK)
                rc = db_error(d, err, "upsert into a contract window (window %" PRIu64 ")",
                              c->window_start);
        }
        bp_held_clear_grain(&d->held, g);
    }
    return rc;
}

size_t bp_sqlite_derived_held_bytes(const bp_sqlite_derived *d)
{
    return d->held.bytes;
}

void bp_sqlite_derived_drop(bp_sqlite_derived *d)
{
    bp_held_clear(&d->held);
    d->held_ret_set = false;
    d->group = false;
    bp_windows_clear(&d->win);
}

int bp_sqlite_derived_apply(bp_sqlite_derived *d, const bp_derived *der,
                            const bp_block_derived *const *blocks, size_t n, bp_error *err)
{
    if (n == 0 || !HAS(d, CHAIN_METRICS))
        return 0;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = insert_block_rows(d, blocks[i], err);
        if (rc != 0)
            return rc;
        uint64_t ts = blocks[i]->chain.block_timestamp;
        lo = ts < lo ? ts : lo;
        hi = ts > hi ? ts : hi;
        d->batch_hi_ts = ts > d->batch_hi_ts ? ts : d->batch_hi_ts;
        if (touch(d, BP_GRAIN_1M, bp_window_of(ts, BP_GRAIN_1M), 0) != 0)
            return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    if (bp_derived_run_build(&d->run, blocks, n) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    for (int g = BP_GRAIN_SETS; g < BP_GRAIN_COUNT; g++)
        bp_keymap_clear(&d->new_pairs[g]);
    int rc = upsert_sets(d, blocks, n, err);
    for (int g = BP_GRAIN_SETS; rc == 0 && g < BP_GRAIN_COUNT; g++)
        rc = fold_contracts(d, g, err);
    if (rc != 0)
        return rc;
    if (price_blocks(d, der, lo, hi) != SQLITE_OK)
        return db_error(d, err, "pricing the blocks from %" PRIu64, blocks[0]->chain.block_number);
    return 0;
}

/* ---- REVERT ------------------------------------------------------------------------------- */

/* Whether b has derived rows, and its timestamp (a REVERT's header may not know it: after a
 * restart the reorg window is seeded with numbers and hashes only). */
static int has_rows(bp_sqlite_derived *d, const char *origin, const bp_block *b, bool *has,
                    uint64_t *ts)
{
    sqlite3_stmt *st = d->st[S_HAS_CB];
    int rc = bind_text(st, 1, origin) | bind_u64(st, 2, b->number) | bind_text(st, 3, b->hash);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    *has = rc == SQLITE_ROW;
    *ts = *has ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The senders the block was the only block of leave the window's set: *removed of them. */
static int revert_addresses(bp_sqlite_derived *d, const char *origin, int g, uint64_t w,
                            uint64_t number, int *removed)
{
    int rc = bind_set_key(d->st[S_DEL_AA1], origin, g, w, number);
    if (rc != SQLITE_OK || (rc = run(d->st[S_DEL_AA1])) != SQLITE_OK)
        return rc;
    *removed = sqlite3_changes(d->db);
    return SQLITE_OK;
}

/* The (contract, sender) pairs the block was the only block of leave the window's sets; each
 * contract's unique_senders loses the pairs that went. */
static int revert_pairs(bp_sqlite_derived *d, const char *origin, int g, uint64_t w,
                        uint64_t number)
{
    sqlite3_stmt *st = d->st[S_DEL_CS1];
    bp_buf gone; /* the contracts of the deleted rows, NUL-separated */
    bp_buf_init(&gone, 0);
    int rc = bind_set_key(st, origin, g, w, number);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *c = (const char *)sqlite3_column_text(st, 0);
        rc = bp_buf_append(&gone, c ? c : "", c ? strlen(c) + 1 : 1) ? SQLITE_NOMEM : SQLITE_OK;
    }
    sqlite3_reset(st);
    rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    sqlite3_stmt *dec = d->st[S_DEC_US + g];
    for (size_t off = 0; rc == SQLITE_OK && off < gone.len; off += strlen(gone.data + off) + 1) {
        rc = bind_text(dec, 1, origin) | bind_u64(dec, 2, w) | bind_text(dec, 3, gone.data + off) |
             bind_u64(dec, 4, 1);
        rc = rc != SQLITE_OK ? rc : run(dec);
    }
    bp_buf_release(&gone);
    return rc;
}

/* The contract windows lose the block's transactions (from its raw rows); emptied ones go. */
static int revert_contracts(bp_sqlite_derived *d, const char *origin, int g, uint64_t w,
                            uint64_t number)
{
    sqlite3_stmt *sub = d->st[S_SUB_KW + g], *del = d->st[S_DEL_KW0 + g];
    int rc = bind_text(sub, 1, origin) | bind_u64(sub, 2, number) | bind_u64(sub, 3, w);
    if (rc != SQLITE_OK || (rc = run(sub)) != SQLITE_OK)
        return rc;
    rc = bind_text(del, 1, origin) | bind_u64(del, 2, w);
    return rc != SQLITE_OK ? rc : run(del);
}

static int delete_block_rows(bp_sqlite_derived *d, const char *origin, uint64_t number)
{
    static const int dels[] = {S_DEL_CB, S_DEL_TT, S_DEL_ML};
    const bool on[] = {true, HAS(d, TOKEN_TRANSFERS), HAS(d, ML_PREDICTIONS)};
    for (size_t i = 0; i < sizeof(dels) / sizeof(dels[0]); i++) {
        if (!on[i])
            continue;
        sqlite3_stmt *st = d->st[dels[i]];
        int rc = bind_text(st, 1, origin) | bind_u64(st, 2, number);
        if (rc != SQLITE_OK || (rc = run(st)) != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

int bp_sqlite_derived_revert(bp_sqlite_derived *d, const char *origin, const bp_block *b,
                             bp_error *err)
{
    bool has = false;
    uint64_t ts = 0;
    if (has_rows(d, origin, b, &has, &ts) != SQLITE_OK)
        return db_error(d, err, "revert block %" PRIu64 ": reading chain_metrics_block", b->number);
    if (!has)
        return 0; /* written before the derived tables were (or without them) */
    /* the runs before it: their increments are in the windows it subtracts from */
    int wrc = write_contracts(d, err);
    if (wrc != 0)
        return wrc;
    /* its minute is recomputed from the raw rows at the end of the batch */
    if (touch(d, BP_GRAIN_1M, bp_window_of(ts, BP_GRAIN_1M), 0) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    for (int g = BP_GRAIN_SETS; g < BP_GRAIN_COUNT; g++) {
        uint64_t w = bp_window_of(ts, g);
        int removed = 0;
        bool stored;
        /* the block's own raw rows are still there: the set as of it */
        int rc = set_stored(d, origin, g, w, &stored);
        if (rc == SQLITE_OK && !stored)
            rc = materialize(d, origin, g, w, b->number + 1);
        if (rc == SQLITE_OK)
            rc = revert_addresses(d, origin, g, w, b->number, &removed);
        if (rc == SQLITE_OK && HAS(d, CONTRACT_METRICS))
            rc = revert_pairs(d, origin, g, w, b->number);
        if (rc == SQLITE_OK && HAS(d, CONTRACT_METRICS))
            rc = revert_contracts(d, origin, g, w, b->number);
        if (rc != SQLITE_OK)
            return db_error(d, err, "revert block %" PRIu64 ": derived tables", b->number);
        if (touch(d, g, w, -(int64_t)removed) != 0)
            return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    if (delete_block_rows(d, origin, b->number) != SQLITE_OK)
        return db_error(d, err, "revert block %" PRIu64 ": deleting its derived rows", b->number);
    return 0;
}

/* ---- batch end: rollups and retention -------------------------------------------------- */

/* The minute's contract rows: the batch's summary of the minute, or its raw transactions. */
static int contract_minute(bp_sqlite_derived *d, const char *origin, uint64_t w,
                           const bp_minute_summary *sum)
{
    if (!HAS(d, CONTRACT_METRICS))
        return SQLITE_OK;
    for (int which = S_KW_MIN_DEL; which <= (sum ? S_KW_MIN_DEL : S_KW_MIN_INS); which++) {
        sqlite3_stmt *st = d->st[which];
        int rc = bind_text(st, 1, origin) | bind_u64(st, 2, w);
        if (rc != SQLITE_OK || (rc = run(st)) != SQLITE_OK)
            return rc;
    }
    for (size_t i = 0; sum && i < sum->contract_count; i++) {
        int rc = insert_row(d, S_KW_MIN_ROW, BP_DT_CONTRACT_1M, &sum->contracts[i]);
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

/* Window w of grain g recomputed (delta: the change of its set, for 1h and 1d; der NULL: no
 * minute summaries, a minute is counted from its raw transactions). */
static int rollup_sum(bp_sqlite_derived *d, const char *origin, const bp_minute_summary *sum, int g,
                      uint64_t w, int64_t delta)
{
    int which = sum ? S_ROLLUP_1M_N : S_ROLLUP + g;
    sqlite3_stmt *up = d->st[which], *prune = d->st[S_PRUNE + g];
    int rc = g == BP_GRAIN_1M ? contract_minute(d, origin, w, sum) : SQLITE_OK;
    if (rc == SQLITE_OK)
        rc = bind_text(up, 1, origin) | bind_u64(up, 2, w);
    if (rc == SQLITE_OK && (g != BP_GRAIN_1M || sum)) /* else a minute counts its senders */
        rc = sqlite3_bind_int64(up, 3, sum ? (int64_t)sum->active_addresses : delta);
    if (rc != SQLITE_OK || (rc = run(up)) != SQLITE_OK)
        return rc;
    rc = bind_text(prune, 1, origin) | bind_u64(prune, 2, w);
    return rc != SQLITE_OK ? rc : run(prune);
}

static int rollup(bp_sqlite_derived *d, const char *origin, const bp_derived *der, int g,
                  uint64_t w, int64_t delta)
{
    const bp_minute_summary *sum =
        g == BP_GRAIN_1M && !d->foreign && der ? bp_derived_minute(der, w) : NULL;
    return rollup_sum(d, origin, sum, g, w, delta);
}

static int rollups(bp_sqlite_derived *d, const char *origin, const bp_derived *der, bp_error *err)
{
    if (bp_windows_close(&d->win) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    for (int g = 0; g < BP_GRAIN_COUNT; g++) {
        for (size_t i = 0; i < d->win.n[g]; i++) {
            const bp_window_delta *t = &d->win.v[g][i];
            if (rollup(d, origin, der, g, t->w, t->delta) != SQLITE_OK) {
                db_error(d, err, "recomputing the window at %" PRIu64, t->w);
                return bp_error_prefix(err, "%s: ", bp_dtables[BP_DT_CHAIN_1M + g].name);
            }
        }
    }
    return 0;
}

/* One retention delete (run when its cut moved on). */
static int expire(bp_sqlite_derived *d, const char *origin, const bp_expiry *e, uint64_t *last)
{
    if (e->before <= *last)
        return SQLITE_OK;
    const bp_dtable_info *t = &bp_dtables[e->table];
    char *sql = sqlite3_mprintf("DELETE FROM %s WHERE %s = %Q%s%s%s AND %s < %llu", t->name,
                                e->table == BP_DT_TOKEN_TRANSFERS ? "chain" : "origin_key", origin,
                                e->grain >= 0 ? " AND grain = '" : "",
                                e->grain >= 0 ? bp_grain_names[e->grain] : "",
                                e->grain >= 0 ? "'" : "", e->column, (unsigned long long)e->before);
    int rc = sql ? sqlite3_exec(d->db, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
    sqlite3_free(sql);
    if (rc == SQLITE_OK)
        *last = e->before;
    return rc;
}

/* Before the chain_metrics_block rows below `before` go: they say which blocks a window
 * counts, so every window of theirs whose set is not stored (a window only counted while
 * blockpipe saw it whole) has it stored from the raw transactions first - also a final one,
 * whose set rows --retention-sets may keep longer than the block rows. The windows from the
 * last cut on (the oldest such row's after a start); one that cannot change any more and has
 * no set row left to keep costs one INSERT ... SELECT once. */
static int oldest_block_row(bp_sqlite_derived *d, const char *origin, uint64_t before, uint64_t *ts,
                            bool *any)
{
    sqlite3_stmt *st = d->st[S_CB_MIN];
    int rc = bind_text(st, 1, origin) | bind_u64(st, 2, before);
    *any = false;
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        *any = sqlite3_column_type(st, 0) != SQLITE_NULL;
        *ts = *any ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
        rc = SQLITE_OK;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int keep_sets_exact(bp_sqlite_derived *d, const bp_derived *der, uint64_t after,
                           uint64_t before)
{
    uint64_t lo = after;
    bool any = true;
    int rc = after ? SQLITE_OK : oldest_block_row(d, der->origin_key, before, &lo, &any);
    for (int g = BP_GRAIN_SETS; rc == SQLITE_OK && any && g < BP_GRAIN_COUNT; g++) {
        for (uint64_t w = bp_window_of(lo, g); rc == SQLITE_OK && w < before;
             w += bp_grain_seconds[g]) {
            bool stored = false, expiring = false;
            sqlite3_stmt *st = d->st[S_CB_IN];
            rc = bind_text(st, 1, der->origin_key) | bind_u64(st, 2, w) | bind_u64(st, 3, before);
            if (rc == SQLITE_OK) {
                rc = sqlite3_step(st);
                expiring = rc == SQLITE_ROW;
                rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
                sqlite3_reset(st);
            }
            if (rc == SQLITE_OK && expiring)
                rc = set_stored(d, der->origin_key, g, w, &stored);
            if (rc == SQLITE_OK && expiring && !stored)
                rc = materialize(d, der->origin_key, g, w, UINT64_MAX);
        }
    }
    return rc;
}

static int retention(bp_sqlite_derived *d, const bp_derived *der, bp_error *err)
{
    bp_expiry plan[BP_EXPIRY_MAX];
    size_t n = bp_retention_plan(&d->ret, der, plan);
    if (strncmp(d->cut_origin, der->origin_key, sizeof(d->cut_origin)) != 0) {
        /* another chain's cuts say nothing of this one's rows */
        memset(d->last_cut, 0, sizeof(d->last_cut));
        snprintf(d->cut_origin, sizeof(d->cut_origin), "%s", der->origin_key);
    }
    for (size_t i = 0; i < n; i++)
        if ((plan[i].table == BP_DT_CHAIN_BLOCK && plan[i].before > d->last_cut[i] &&
             keep_sets_exact(d, der, d->last_cut[i], plan[i].before) != SQLITE_OK) ||
            expire(d, der->origin_key, &plan[i], &d->last_cut[i]) != SQLITE_OK)
            return bp_error_set(err, BP_EDB, "retention of %s: %s", bp_dtables[plan[i].table].name,
                                sqlite3_errmsg(d->db));
    return 0;
}

static bool minute_touched(const bp_sqlite_derived *d, uint64_t w)
{
    for (size_t i = 0; i < d->win.n[BP_GRAIN_1M]; i++)
        if (d->win.v[BP_GRAIN_1M][i].w == w)
            return true;
    return false;
}

/* The touched minutes recomputed, but the batch's last one while the group goes on (held:
 * the next batch's summary of it supersedes the copy); a minute held before that this batch
 * did not continue is written from its copy. Then no minute is touched. */
static int minutes(bp_sqlite_derived *d, const char *origin, const bp_derived *der, bool hold,
                   bp_error *err)
{
    int rc = SQLITE_OK;
    uint64_t last = bp_window_of(d->batch_hi_ts, BP_GRAIN_1M);
    const bp_minute_summary *keep =
        hold && der && !d->foreign && d->batch_hi_ts ? bp_derived_minute(der, last) : NULL;
    if (d->held.minute_set && !minute_touched(d, d->held.minute.window_start)) {
        rc = rollup_sum(d, origin, &d->held.minute, BP_GRAIN_1M, d->held.minute.window_start, 0);
        bp_held_drop_minute(&d->held);
    }
    for (size_t i = 0; rc == SQLITE_OK && i < d->win.n[BP_GRAIN_1M]; i++) {
        uint64_t w = d->win.v[BP_GRAIN_1M][i].w;
        if (keep && w == last)
            continue;
        if (d->held.minute_set && d->held.minute.window_start == w)
            bp_held_drop_minute(&d->held); /* the batch's own summary (or raw rows) is newer */
        rc = rollup(d, origin, der, BP_GRAIN_1M, w, d->win.v[BP_GRAIN_1M][i].delta);
    }
    if (rc != SQLITE_OK) {
        db_error(d, err, "recomputing the window at %" PRIu64, last);
        return bp_error_prefix(err, "%s: ", bp_dtables[BP_DT_CHAIN_1M].name);
    }
    bp_keymap_clear(&d->win.map[BP_GRAIN_1M]);
    d->win.n[BP_GRAIN_1M] = 0;
    if (keep && bp_held_keep_minute(&d->held, origin, keep) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    return 0;
}

/* Everything held written: the held minute, the contract increments, the touched 1h and 1d
 * windows, retention (der's, else the latest held batch's). */
static int settle(bp_sqlite_derived *d, const char *origin, const bp_derived *der, bp_error *err)
{
    int rc = SQLITE_OK;
    if (d->held.minute_set) {
        rc = rollup_sum(d, origin, &d->held.minute, BP_GRAIN_1M, d->held.minute.window_start, 0);
        bp_held_drop_minute(&d->held);
        if (rc != SQLITE_OK)
            return db_error(d, err, "chain_metrics_1m: recomputing the window at %" PRIu64,
                            d->held.minute.window_start);
    }
    rc = write_contracts(d, err);
    if (rc == 0)
        rc = rollups(d, origin, der, err);
    /* (retention follows the rows written: none with metrics off) */
    const bp_derived *ret = der ? der : d->held_ret_set ? &d->held_ret : NULL;
    if (rc == 0 && ret)
        rc = retention(d, ret, err);
    bp_sqlite_derived_drop(d);
    return rc;
}

int bp_sqlite_derived_finish(bp_sqlite_derived *d, const char *origin, const bp_derived *der,
                             bool hold, bp_error *err)
{
    if (bp_windows_close(&d->win) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    int rc = minutes(d, origin, der, hold, err);
    if (rc != 0 || !hold)
        return rc ? rc : settle(d, origin, der, err);
    if (der) {
        snprintf(d->held_origin, sizeof(d->held_origin), "%s", origin);
        d->held_ret = (bp_derived){
            .origin_key = d->held_origin, .newest_ts = der->newest_ts, .frozen_ts = der->frozen_ts};
        d->held_ret_set = strlen(origin) < sizeof(d->held_origin); /* else the next batch's */
    }
    d->group = true;
    return 0;
}

int bp_sqlite_derived_settle(bp_sqlite_derived *d, const char *origin, bp_error *err)
{
    if (!d->group)
        return 0;
    if (bp_windows_close(&d->win) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    return settle(d, origin, NULL, err);
}
