/* pg_derived.c - the PostgreSQL output's derived tables (pg_derived.h). The rules are
 * sqlite_derived.c's; the difference is the shape of the work: one round trip per step, not one
 * statement per row.
 *
 * APPLY run: COPY the block rows into their tables, the blocks' 1h and 1d set rows known to be
 * new into theirs (in key order, counted on the client: the new (contract, sender) pairs into
 * the unique_senders of the run's contract increments), the other set rows and the run's contract
 * increments (metrics.h: bp_derived_run) into temporary tables, each COPY streamed in
 * BP_PG_COPY_CHUNK pieces; then the merge: the staged set rows not there yet are
 * inserted, lowest first_block first, and counted per window (into bp_d_aa_delta for the
 * chain windows, bp_d_cs_new for the contract windows); the contract windows add their
 * increments and new senders.
 * REVERT (of the highest block): the block's senders, (contract, sender) pairs and
 * per-contract sums come from its raw transactions (deleted after this); the set rows whose
 * first_block it is go (counted); the contract windows subtract the sums.
 * Batch end: the touched minutes the batch has summaries of get their contract rows deleted and
 * COPYed straight in; then every other touched minute's contract rows (recomputed from its raw
 * transactions) and distinct senders, every touched chain window recomputed from its finer
 * rows, the 1h and 1d ones with active_addresses moved by the sum of their bp_d_aa_delta rows;
 * retention. The temporary tables are emptied by DELETE. Writers of one chain are serialized by
 * a transaction-scoped advisory lock.
 * Round trips: a statement that returns nothing (the lock, a merge, pricing, the batch end's)
 * waits in d->pend and goes ahead of the batch's next query or COPY, the output's included
 * (bp_pg_derived_pending: the batch end's with the checkpoint and COMMIT). */
#include "sink/pg_derived.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/held.h"
#include "metrics/keymap.h"
#include "metrics/metrics.h"
#include "metrics/windows.h"
#include "sink/pg_conn.h"
#include "sink/pg_copy.h"
#include "sink/sqlgen.h"
#include "util/hex.h"

/* The contract of a raw transactions row, as bp_metrics_contract_of decides it. */
#define CONTRACT_OF_TX                                                                             \
    "CASE WHEN to_address IS NULL THEN receipt_contract_address"                                   \
    " WHEN length(input) > 0 THEN to_address END"

static const bp_sql_dialect g_dialect = {
    .type_of = bp_pg_type,
    .sum256 = "sum(%s)",
    .add256 = "%s + %s",
    .sub256 = "%s - %s",
    .median = "percentile_disc(0.5) WITHIN GROUP (ORDER BY %s)",
    .native = "((%s)::float8 / 1e18::float8)",
    .time_of = "(to_timestamp(%s) AT TIME ZONE 'UTC')",
    .view_prefix = "CREATE OR REPLACE VIEW ",
    .table_suffix = "",
    .contract_of_tx = CONTRACT_OF_TX,
    .fee_of_tx = "coalesce(receipt_gas_used, 0) *"
                 " coalesce(receipt_effective_gas_price, gas_price, 0)"
                 " + coalesce(receipt_l1_fee, 0)",
};

#define ORDER_KEEP 65536 /* set row pointers kept between runs */
/* A lazy window with more transactions is stored at the end of the batch (then written row by
 * row): what storing one costs later (a REVERT into it, a restart) stays bounded. */
#define LAZY_MAX_TXS 1000000

/* The run's staged set rows go through these (LIKE their tables); its contract increments
 * through bp_d_contract_inc (LIKE contract_metrics_1h, and their grain). */
static const bp_dtable g_staged[] = {BP_DT_ACTIVE_ADDRESSES, BP_DT_CONTRACT_SENDERS};
#define N_STAGED (sizeof(g_staged) / sizeof(g_staged[0]))
/* The block rows COPYed straight into their tables. */
static const bp_dtable g_direct[] = {BP_DT_CHAIN_BLOCK, BP_DT_TOKEN_TRANSFERS,
                                     BP_DT_ML_PREDICTIONS};
#define N_DIRECT (sizeof(g_direct) / sizeof(g_direct[0]))

/* New (contract, sender) pairs of a window's contract, counted on the client. */
typedef struct pair_count {
    uint64_t window;
    const char *contract;
    size_t n;
} pair_count;

/* An hour or day window of a run's set rows: whether some are known to be new, some staged,
 * and whether its set is lazy (lazy_set_windows: its rows not stored, its set the distinct
 * senders of its blocks' raw transactions). */
typedef struct set_window {
    int grain;
    uint64_t w;
    bool known, staged, lazy;
} set_window;

struct bp_pg_derived {
    bp_retention ret;
    /* contract_metrics is selected (derived=): else no statement writes contract_metrics_* or
     * contract_senders, also not the ones that read the raw transactions (the sets, a minute
     * without a summary, a REVERT) */
    bool contracts;
    uint64_t lazy_max_txs; /* LAZY_MAX_TXS, or for tests BP_PG_LAZY_TXS */
    bool have_temp;        /* the temporary tables exist on this connection */
    unsigned batches;      /* since they were last truncated */
    char sqlstate[6];      /* of the last failure */
    char *origin;          /* the chain origin_lit quotes */
    char *origin_lit;
    bp_buf sql;
    bp_buf data;
    bp_buf cols;
    /* Statements that return nothing, waiting for the batch's next round trip (a query's or a
     * COPY's, here or the output's: bp_pg_derived_pending): each one alone was a round trip the
     * writer waited for while the server had nothing else to do. */
    bp_buf pend;
    bp_buf ask;                       /* a question (rows) for the next COPY to ask before it */
    PGresult *answer;                 /* its answer, once asked */
    uint64_t pend_cut[BP_EXPIRY_MAX]; /* retention's cuts, once the pending SQL is committed */
    bool pend_cuts;
    bool cs_new;      /* the run's bp_d_cs_new has rows (staged pairs, or counts without a row) */
    bool staged_sets; /* the run staged set rows */
    bool staged_contracts[BP_GRAIN_COUNT]; /* the run's contract increments of the grain */
    bp_windows win;
    bp_derived_run run;
    bool foreign; /* the batch met blocks another process stored: no minute summaries */
    uint64_t last_cut[BP_EXPIRY_MAX];
    bp_buf counts;       /* SQL: the counts of the run's rows known to be new */
    bp_keymap pairs_new; /* (window, contract) -> index in pair_counts */
    pair_count *pair_counts;
    size_t pair_counts_cap;
    const bp_block_derived **keep; /* the blocks of a run to write */
    size_t keep_cap;
    const bp_set_row **order; /* the run's set rows in key order (the COPYs straight in) */
    size_t order_cap, order_count;
    set_window *wins; /* the hour and day windows of the run's set rows */
    size_t nwins, wins_cap;
    /* A group (postgres.c: batches of a backfill in one transaction): the runs' 1h and 1d
     * contract increments folded and the latest batch's last minute (held.h), the touched 1h
     * and 1d windows (win) with their set deltas (bp_d_aa_delta, kept), written at its end. */
    bp_held held;
    bool group;           /* a batch was held */
    uint64_t batch_hi_ts; /* the newest block timestamp the batch applied */
    bool skip_set;        /* the batch's minute skip_minute is held, not written */
    uint64_t skip_minute;
    bool use_held_minute; /* the held minute is written with the batch's minutes */
    bool reverted; /* a REVERT since the last 1h and 1d rollups: touched windows may be empty */
    char held_origin[128]; /* held_ret's chain */
    bp_derived held_ret;   /* origin_key, newest_ts, frozen_ts of the latest batch held */
    bool held_ret_set;
};

/* ---- schema --------------------------------------------------------------------------- */

int bp_pg_derived_schema(bp_buf *sql)
{
    int rc = 0;
    for (int t = 0; t < BP_DT_COUNT; t++) {
        rc |= bp_sql_create_dtable(sql, (bp_dtable)t, "", &g_dialect);
        if (bp_dtables[t].timecol)
            rc |= bp_sql_create_view(sql, (bp_dtable)t, &g_dialect);
    }
    return rc | bp_buf_puts(sql, "CREATE INDEX chain_metrics_block_ts_idx"
                                 " ON chain_metrics_block(origin_key, block_timestamp);");
}

/* Nothing blockpipe does reads token_transfers by token: the index is for the users' queries.
 * Kept up row by row through a backfill it was a random leaf of a second B-tree per transfer
 * (and its full-page image in the WAL after every checkpoint): 1.1 s of the server's CPU in a
 * 1,000-block backfill of 77,785 transfers, against one sort when made over the finished
 * table. */
const char bp_pg_derived_lookup_indexes[] = "CREATE INDEX IF NOT EXISTS token_transfers_token_idx"
                                            " ON token_transfers(token_address, block_number)";

/* The record read, checked and written in one transaction under the migrations' lock: two
 * processes opening one database at once (a backfill beside a follower) both ran CREATE TABLE
 * IF NOT EXISTS, and the second failed on the catalog's unique index (SQLSTATE 23505); two
 * different lists would both have found none recorded. */
static int select_locked(PGconn *c, const char *schema, unsigned groups, unsigned *has,
                         bp_error *err)
{
    char *lit = PQescapeLiteral(c, schema, strlen(schema));
    if (!lit)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT pg_advisory_xact_lock(hashtext('blockpipe migrate ' || %s));"
             "CREATE TABLE IF NOT EXISTS derived_groups(id int PRIMARY KEY CHECK (id = 1),"
             " groups text NOT NULL);"
             "SELECT (SELECT groups FROM derived_groups WHERE id = 1),"
             " EXISTS (SELECT 1 FROM chain_metrics_block)"
             " OR EXISTS (SELECT 1 FROM chain_metrics_1d)",
             lit);
    PQfreemem(lit);
    PGresult *r = NULL;
    int rc = bp_pg_exec(c, sql, &r, "reading derived_groups", err);
    if (rc == 0 && PQntuples(r) != 1)
        rc = bp_error_set(err, BP_EDB, "reading derived_groups: %d rows", PQntuples(r));
    if (rc != 0) {
        PQclear(r);
        return rc;
    }
    char list[160];
    bool written = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
    int orc = bp_dgroups_open_text(groups, PQgetisnull(r, 0, 0) ? NULL : PQgetvalue(r, 0, 0),
                                   written, has, list, sizeof(list), err);
    PQclear(r);
    if (orc != 0 || !list[0])
        return orc;
    const char *params[] = {list};
    bp_pg_wait_begin(c);
    r = PQexecParams(c,
                     "INSERT INTO derived_groups(id, groups) VALUES(1, $1)"
                     " ON CONFLICT(id) DO UPDATE SET groups = excluded.groups",
                     1, NULL, params, NULL, NULL, 0);
    bp_pg_wait_end(c);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        char msg[BP_ERROR_MSG_MAX];
        bp_pg_errmsg(c, r, msg, sizeof(msg));
        rc = bp_error_set(err, bp_pg_conn_lost(c, r) ? BP_ETRANSPORT : BP_EDB,
                          "writing derived_groups: %s", msg);
    }
    PQclear(r);
    return rc;
}

int bp_pg_derived_select(PGconn *c, const char *schema, unsigned groups, unsigned *has,
                         bp_error *err)
{
    int rc = bp_pg_exec(c, "BEGIN", NULL, "reading derived_groups", err);
    if (rc == 0)
        rc = select_locked(c, schema, groups, has, err);
    if (rc == 0)
        return bp_pg_exec(c, "COMMIT", NULL, "writing derived_groups", err);
    if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE) {
        bp_error ignored;
        bp_pg_exec(c, "ROLLBACK", NULL, "reading derived_groups", &ignored);
    }
    return rc;
}

int bp_pg_derived_schema_lazy(bp_buf *sql)
{
    return bp_buf_puts(sql, "CREATE TABLE IF NOT EXISTS lazy_set_windows(origin_key text NOT NULL,"
                            " grain text NOT NULL, window_start bigint NOT NULL,"
                            " PRIMARY KEY(origin_key, grain, window_start));");
}

/* ---- lifecycle ------------------------------------------------------------------------- */

int bp_pg_derived_new(const bp_retention *ret, unsigned has, bp_pg_derived **out, bp_error *err)
{
    bp_pg_derived *d = calloc(1, sizeof(*d));
    if (!d)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    d->ret = *ret;
    d->contracts = (has & BP_DG_BIT(BP_DG_CONTRACT_METRICS)) != 0;
    const char *v = getenv("BP_PG_LAZY_TXS");
    d->lazy_max_txs = v && *v ? strtoull(v, NULL, 10) : LAZY_MAX_TXS;
    bp_buf_init(&d->sql, 0);
    bp_buf_init(&d->data, 0);
    bp_buf_init(&d->cols, 0);
    bp_buf_init(&d->pend, 0);
    bp_buf_init(&d->ask, 0);
    bp_buf_init(&d->counts, 0);
    bp_derived_run_init(&d->run);
    *out = d;
    return 0;
}

void bp_pg_derived_free(bp_pg_derived *d)
{
    if (!d)
        return;
    bp_buf_release(&d->sql);
    bp_buf_release(&d->data);
    bp_buf_release(&d->cols);
    bp_buf_release(&d->pend);
    bp_buf_release(&d->ask);
    PQclear(d->answer);
    bp_buf_release(&d->counts);
    bp_keymap_release(&d->pairs_new);
    free(d->pair_counts);
    bp_windows_release(&d->win);
    bp_derived_run_release(&d->run);
    free(d->origin);
    PQfreemem(d->origin_lit);
    bp_held_release(&d->held);
    free(d->keep);
    free(d->order);
    free(d->wins);
    free(d);
}

void bp_pg_derived_reset(bp_pg_derived *d)
{
    d->have_temp = false;
    bp_buf_reset(&d->pend);
    d->pend_cuts = false;
    bp_held_clear(&d->held); /* (the transaction that held them was rolled back) */
    d->group = d->held_ret_set = d->use_held_minute = d->skip_set = false;
    bp_windows_clear(&d->win);
}

const char *bp_pg_derived_pending(const bp_pg_derived *d)
{
    return d && d->pend.len ? d->pend.data : NULL;
}

void bp_pg_derived_sent(bp_pg_derived *d)
{
    bp_buf_reset(&d->pend);
}

void bp_pg_derived_committed(bp_pg_derived *d)
{
    if (d && d->pend_cuts) /* (a rolled-back batch runs them again: the cut moves on after) */
        memcpy(d->last_cut, d->pend_cut, sizeof(d->last_cut));
    if (d)
        d->pend_cuts = false;
}

const char *bp_pg_derived_sqlstate(const bp_pg_derived *d)
{
    return d->sqlstate;
}

static int oom(bp_error *err)
{
    return bp_error_set(err, BP_ENOMEM, "out of memory");
}

/* sql after the pending statements, in one round trip (PQexec gives the last statement's
 * result, or the failure that made the server skip the rest). */
static int run_sql(bp_pg_derived *d, PGconn *c, const char *sql, PGresult **res, const char *what,
                   bp_error *err)
{
    if (d->pend.len == 0)
        return bp_pg_run(c, sql, res, d->sqlstate, what, err);
    if (res)
        *res = NULL;
    int rc = bp_buf_puts(&d->pend, sql) != 0
                 ? oom(err)
                 : bp_pg_run(c, d->pend.data, res, d->sqlstate, what, err);
    bp_buf_reset(&d->pend);
    return rc;
}

/* sql (statements that return nothing) waits for the next round trip. */
static int defer_sql(bp_pg_derived *d, const char *sql, bp_error *err)
{
    if (bp_buf_puts(&d->pend, sql) != 0 ||
        (d->pend.len && d->pend.data[d->pend.len - 1] != ';' && bp_buf_putc(&d->pend, ';') != 0))
        return oom(err);
    return 0;
}

/* ---- rows ------------------------------------------------------------------------------- */

static void enc_value(bp_pgcopy *c, const bp_dcolumn *col, const bp_value *v)
{
    switch (v->kind) {
    case BP_VAL_U64:
        if (col->type == BP_COL_UINT64)
            bp_pgcopy_num_u64(c, v->u);
        else
            bp_pgcopy_i64(c, v->u, col->name);
        return;
    case BP_VAL_U256:
        bp_pgcopy_qty(c, v->q);
        return;
    case BP_VAL_F64:
        bp_pgcopy_f64(c, v->f);
        return;
    case BP_VAL_STR:
        if (col->type == BP_COL_TEXT)
            bp_pgcopy_text(c, v->s);
        else if (col->type == BP_COL_JSON)
            bp_pgcopy_jsonb(c, v->s);
        else
            bp_pgcopy_hex(c, v->s, col->name);
        return;
    default:
        bp_pgcopy_null(c);
    }
}

/* A row of shape s, then extra (a text column) unless NULL. */
static void enc_row(bp_pgcopy *c, bp_dshape s, const void *row, const char *extra)
{
    size_t first, n = bp_dshape_columns(s, &first);
    bp_pgcopy_row(c, (uint16_t)(n + (extra != NULL)));
    for (size_t i = 0; i < n; i++) {
        bp_value v = bp_dvalue_of((bp_dcol_id)(first + i), row);
        enc_value(c, &bp_dcolumns[first + i], &v);
    }
    if (extra)
        bp_pgcopy_text(c, extra);
}

/* What one COPY sends: an array's rows, or one table's rows of the run's blocks (a block
 * table, or the set rows of one grain, known to be new or not), in block order or, for set
 * rows, in the order of sorted. */
typedef struct row_src {
    const bp_block_derived *const *blocks; /* NULL: the array */
    size_t nblocks;
    const bp_set_row *const *sorted; /* not NULL: the set rows from here */
    size_t nsorted;
    const bp_pg_derived *mins; /* not NULL: the contract rows of the summarized touched minutes */
    const bp_derived *der;     /* (their batch's summaries) */
    const bp_derived_run *run; /* not NULL: its hour and day increments, their grain after */
    const char *grain_name;    /* (run: the current row's) */
    const bp_windows *win;
    const char *array;
    size_t count, size;
    bp_dtable table;
    int grain;
    bool known;
    bool foreign;                   /* no row counts as known to be new */
    const bp_pg_derived *skip_lazy; /* not NULL: not the rows of d's lazy windows */
    size_t i, k;                    /* where it is */
    size_t sent;                    /* rows given out */
} row_src;

static bool is_lazy(const bp_pg_derived *d, const bp_set_row *r);
static const bp_minute_summary *minute_summary(const bp_pg_derived *d, const bp_derived *der,
                                               uint64_t ws);
static bool skipped(const bp_pg_derived *d, uint64_t ws);

static bool set_row_of(const row_src *s, const bp_set_row *r)
{
    return (r->contract_address != NULL) == (s->table == BP_DT_CONTRACT_SENDERS) &&
           bp_derived_set_grain(r) == s->grain && (r->known_new && !s->foreign) == s->known &&
           !(s->skip_lazy && is_lazy(s->skip_lazy, r));
}

/* The next contract row of the batch's summaries of the touched minutes (row_src.der). */
static const void *next_minute_row(row_src *s)
{
    for (; s->i < s->win->n[BP_GRAIN_1M]; s->i++, s->k = 0) {
        uint64_t ws = s->win->v[BP_GRAIN_1M][s->i].w;
        const bp_minute_summary *sum =
            skipped(s->mins, ws) ? NULL : minute_summary(s->mins, s->der, ws);
        if (sum && s->k < sum->contract_count)
            return &sum->contracts[s->k++];
    }
    return NULL;
}

static const void *next_row_of(row_src *s);

/* The next row of s, NULL after the last. */
static const void *next_row(row_src *s)
{
    const void *row = next_row_of(s);
    s->sent += row != NULL;
    return row;
}

static const void *next_row_of(row_src *s)
{
    if (s->mins)
        return next_minute_row(s);
    for (; s->run && s->i < BP_GRAIN_COUNT; s->i++, s->k = 0)
        if (s->i >= BP_GRAIN_SETS && s->k < s->run->contract_count[s->i]) {
            s->grain_name = bp_grain_names[s->i];
            return &s->run->contracts[s->i][s->k++];
        }
    if (s->run)
        return NULL;
    if (!s->blocks)
        return s->i < s->count ? s->array + s->size * s->i++ : NULL;
    while (s->sorted && s->i < s->nsorted) {
        const bp_set_row *r = s->sorted[s->i++];
        if (set_row_of(s, r))
            return r;
    }
    if (s->sorted)
        return NULL;
    for (; s->i < s->nblocks; s->i++, s->k = 0) {
        const bp_block_derived *b = s->blocks[s->i];
        if (s->table == BP_DT_CHAIN_BLOCK && s->k++ == 0)
            return &b->chain;
        if (s->table == BP_DT_TOKEN_TRANSFERS && s->k < b->transfer_count)
            return &b->transfers[s->k++];
        if (s->table == BP_DT_ML_PREDICTIONS && s->k < b->prediction_count)
            return &b->predictions[s->k++];
        if (s->table != BP_DT_ACTIVE_ADDRESSES && s->table != BP_DT_CONTRACT_SENDERS)
            continue;
        while (s->k < b->set_row_count) {
            const bp_set_row *r = &b->set_rows[s->k++];
            if (set_row_of(s, r))
                return r;
        }
    }
    return NULL;
}

/* The rows of src (of table t's shape) in one COPY into table name (none: no COPY). They are
 * encoded into d->data and sent each time it holds BP_PG_COPY_CHUNK bytes: a whole table's
 * rows first were megabytes outside --max-memory for a 50,000-tx block. */
static int copy_src(bp_pg_derived *d, PGconn *c, bp_dtable t, const char *name, row_src *src,
                    bp_error *err)
{
    const void *row = next_row(src);
    if (!row)
        return 0;
    bp_dshape shape = bp_dtables[t].shape;
    bp_buf_reset(&d->cols);
    if (bp_sql_dcolumns(&d->cols, shape, NULL) != 0 ||
        (src->run && bp_buf_puts(&d->cols, ", grain") != 0))
        return oom(err);
    char what[128];
    snprintf(what, sizeof(what), "%sCOPY into %s",
             d->pend.len || d->ask.len ? "pending statements and " : "", name);
    if (d->ask.len && defer_sql(d, d->ask.data, err) != 0)
        return oom(err);
    /* (the question asked with it: its answer is the last statement's rows before the COPY) */
    int rc = bp_pg_copy_begin_after(c, d->pend.len ? d->pend.data : NULL, name, d->cols.data,
                                    d->ask.len ? &d->answer : NULL, d->sqlstate, what, err);
    bp_buf_reset(&d->ask);
    bp_buf_reset(&d->pend);
    bp_pgcopy p = {.buf = &d->data};
    bp_buf_reset(&d->data);
    bp_pgcopy_header(&p);
    for (; rc == 0 && row; row = next_row(src)) {
        enc_row(&p, shape, row, src->run ? src->grain_name : NULL);
        if (p.rc == 0 && d->data.len >= BP_PG_COPY_CHUNK) {
            rc = bp_pg_copy_put(c, &d->data, d->sqlstate, what, err);
            bp_buf_reset(&d->data);
        }
        if (p.rc != 0)
            break;
    }
    if (rc == 0)
        bp_pgcopy_trailer(&p);
    if (rc == 0 && p.rc != 0)
        return bp_pg_copy_abort(c, "blockpipe could not encode a row",
                                bp_error_set(err, p.rc == BP_EINVAL ? BP_EINVAL : p.rc,
                                             "%s: column %s: value does not fit its PostgreSQL "
                                             "type",
                                             name, p.bad_column ? p.bad_column : "?"));
    if (rc == 0)
        rc = bp_pg_copy_put(c, &d->data, d->sqlstate, what, err);
    bp_buf_reset(&d->data);
    return rc ? rc : bp_pg_copy_end(c, d->sqlstate, NULL, what, err);
}

/* The run's hour and day contract increments into bp_d_contract_inc, one COPY. */
static int copy_increments_of(bp_pg_derived *d, PGconn *c, bp_error *err)
{
    row_src src = {.run = &d->run};
    return copy_src(d, c, BP_DT_CONTRACT_1H, "bp_d_contract_inc", &src, err);
}

/* ---- lazy sets -------------------------------------------------------------------------- */

/* While the metrics module holds a window whole (its set rows known to be new: derived.h
 * bp_set_row) its set is not written row by row: the window is listed in lazy_set_windows and
 * its set is the distinct senders and (contract, sender) pairs of its blocks' raw transactions
 * in this database, each with the lowest block it sent in. Whatever needs the rows first stores
 * them from those transactions, in its batch's transaction: a REVERT into the window, a run
 * whose rows of it are not known to be new (after a restart or a reorg, the module giving the
 * window up for memory, another process's blocks), an output opened with metrics off (which
 * writes blocks without derived rows). Written row by row the sets were most of what the
 * derived tables cost PostgreSQL (docs/PERFORMANCE.md). */

#define WIN_LEN "(CASE WHEN m.grain = '1h' THEN 3600 ELSE 86400 END)"

/* The FROM items of the lazy windows m (of lazy_set_windows) with r.lo and r.hi, the range of
 * their blocks, from their block rows and rollups (whichever are kept: the block rows go after
 * 12 h, an open day's minutes and hours stay; a row of a block reverted in this batch is in the
 * range, its raw transactions are not). */
static int lazy_from_sql(bp_buf *q)
{
    return bp_buf_puts(
        q, " FROM lazy_set_windows m CROSS JOIN LATERAL (SELECT least(b.lo, x.lo, y.lo) AS lo,"
           " greatest(b.hi, x.hi, y.hi) AS hi FROM"
           " (SELECT min(block_number) AS lo, max(block_number) AS hi FROM chain_metrics_block"
           " WHERE origin_key = m.origin_key AND block_timestamp >= m.window_start"
           " AND block_timestamp < m.window_start + " WIN_LEN ") b,"
           " (SELECT min(first_block) AS lo, max(last_block) AS hi FROM chain_metrics_1m"
           " WHERE origin_key = m.origin_key AND window_start >= m.window_start"
           " AND window_start < m.window_start + " WIN_LEN ") x,"
           " (SELECT min(first_block) AS lo, max(last_block) AS hi FROM chain_metrics_1h"
           " WHERE origin_key = m.origin_key AND window_start >= m.window_start"
           " AND window_start < m.window_start + " WIN_LEN ") y) r");
}

/* SQL storing the sets of the lazy windows m that match where (on m) from their blocks below
 * hi (0: all) and taking them off the list (contracts: the contract_senders sets too). */
static int materialize_sql(bp_buf *q, const char *where, uint64_t hi, bool contracts)
{
    char below[48] = "";
    if (hi)
        snprintf(below, sizeof(below), " AND block_number < %" PRIu64, hi);
    int rc = bp_buf_puts(q, "INSERT INTO active_addresses(origin_key, grain, window_start,"
                            " address, first_block) SELECT m.origin_key, m.grain, m.window_start,"
                            " t.a, min(t.b)");
    rc |= lazy_from_sql(q);
    rc |= bp_buf_printf(q,
                        " CROSS JOIN LATERAL (SELECT from_address AS a, block_number AS b"
                        " FROM transactions WHERE chain = m.origin_key AND block_number >= r.lo"
                        " AND block_number <= r.hi%s) t WHERE %s AND t.a IS NOT NULL"
                        " GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4;",
                        below, where);
    if (!contracts)
        return rc | bp_buf_printf(q, "DELETE FROM lazy_set_windows m WHERE %s;", where);
    rc |= bp_buf_puts(q, "INSERT INTO contract_senders(origin_key, grain, window_start,"
                         " contract_address, address, first_block) SELECT m.origin_key, m.grain,"
                         " m.window_start, t.c, t.a, min(t.b)");
    rc |= lazy_from_sql(q);
    rc |= bp_buf_printf(q,
                        " CROSS JOIN LATERAL (SELECT " CONTRACT_OF_TX " AS c, from_address AS a,"
                        " block_number AS b FROM transactions WHERE chain = m.origin_key"
                        " AND block_number >= r.lo AND block_number <= r.hi%s) t"
                        " WHERE %s AND t.c IS NOT NULL AND t.a IS NOT NULL"
                        " GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5;",
                        below, where);
    return rc | bp_buf_printf(q, "DELETE FROM lazy_set_windows m WHERE %s;", where);
}

/* SQL storing the set of window w of grain g (if lazy) from its blocks below hi. */
static int materialize_window_sql(bp_pg_derived *d, bp_buf *q, int g, uint64_t w, uint64_t hi)
{
    char where[256];
    snprintf(where, sizeof(where),
             "m.origin_key = %s AND m.grain = '%s' AND m.window_start = %" PRIu64, d->origin_lit,
             bp_grain_names[g], w);
    return materialize_sql(q, where, hi, d->contracts);
}

int bp_pg_derived_unlazy(PGconn *c, unsigned has, bp_error *err)
{
    bp_buf q;
    bp_buf_init(&q, 0);
    int rc = materialize_sql(&q, "true", 0, (has & BP_DG_BIT(BP_DG_CONTRACT_METRICS)) != 0) != 0
                 ? bp_error_set(err, BP_ENOMEM, "out of memory")
                 : bp_pg_exec(c, q.data, NULL, "storing the lazy windows' sets", err);
    bp_buf_release(&q);
    return rc;
}

/* The window (g, w) of the run's set rows (added unless there). */
static set_window *run_window(bp_pg_derived *d, int g, uint64_t w)
{
    for (size_t i = d->nwins; i-- > 0;)
        if (d->wins[i].grain == g && d->wins[i].w == w)
            return &d->wins[i];
    if (bp_grow((void **)&d->wins, &d->wins_cap, d->nwins + 1, sizeof(*d->wins)) != 0)
        return NULL;
    d->wins[d->nwins] = (set_window){.grain = g, .w = w};
    return &d->wins[d->nwins++];
}

static bool is_lazy(const bp_pg_derived *d, const bp_set_row *r)
{
    int g = bp_derived_set_grain(r);
    for (size_t i = 0; i < d->nwins; i++)
        if (d->wins[i].grain == g && d->wins[i].w == r->window_start)
            return d->wins[i].lazy;
    return false;
}

/* Which windows of the run's set rows are lazy (d->wins): of those whose rows are all known to
 * be new, the ones listed and the ones without a stored row yet (listed now: a window with no
 * row has an empty set, which its raw transactions give too). A window with staged rows is not:
 * they are checked against its stored rows, which are stored first (merge_increments). The
 * question that lists and finds them goes to d->ask, asked with the run's first COPY
 * (find_lazy_answer). */
static int find_lazy_ask(bp_pg_derived *d, const bp_block_derived *const *blocks, size_t n,
                         bp_error *err)
{
    d->nwins = 0;
    bp_buf_reset(&d->ask);
    PQclear(d->answer);
    d->answer = NULL;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < blocks[i]->set_row_count; k++) {
            const bp_set_row *r = &blocks[i]->set_rows[k];
            set_window *sw = run_window(d, bp_derived_set_grain(r), r->window_start);
            if (!sw)
                return oom(err);
            if (r->known_new && !d->foreign)
                sw->known = true;
            else
                sw->staged = true;
        }
    bp_buf *q = &d->sql;
    bp_buf_reset(q);
    int rc = 0;
    size_t asked = 0;
    for (size_t i = 0; i < d->nwins; i++) {
        const set_window *sw = &d->wins[i];
        if (sw->known && !sw->staged)
            rc |= bp_buf_printf(q, "%s('%s', %" PRIu64 "::bigint)", asked++ ? ", " : "",
                                bp_grain_names[sw->grain], sw->w);
    }
    if (rc != 0)
        return oom(err);
    if (asked == 0) /* (a window with known rows has staged ones too: its known are stored) */
        return 0;
    const char *o = d->origin_lit;
    rc = bp_buf_printf(
        &d->ask,
        "WITH v(g, w) AS (VALUES %s), ins AS (INSERT INTO lazy_set_windows"
        " SELECT %s, v.g, v.w FROM v WHERE NOT EXISTS (SELECT 1 FROM lazy_set_windows m"
        " WHERE m.origin_key = %s AND m.grain = v.g AND m.window_start = v.w)"
        " AND NOT EXISTS (SELECT 1 FROM active_addresses x WHERE x.origin_key = %s"
        " AND x.grain = v.g AND x.window_start = v.w)"
        " AND NOT EXISTS (SELECT 1 FROM contract_senders x WHERE x.origin_key = %s"
        " AND x.grain = v.g AND x.window_start = v.w) RETURNING grain, window_start)"
        " SELECT grain, window_start FROM ins UNION ALL SELECT m.grain, m.window_start"
        " FROM lazy_set_windows m JOIN v ON m.origin_key = %s AND m.grain = v.g"
        " AND m.window_start = v.w",
        q->data, o, o, o, o, o);
    return rc ? oom(err) : 0;
}

/* The answer to find_lazy_ask's question (asked now if no COPY took it): the lazy windows
 * marked; *any_stored: some of the run's rows known to be new go straight into the set tables. */
static int find_lazy_answer(bp_pg_derived *d, PGconn *c, bool *any_stored, bp_error *err)
{
    int rc = 0;
    *any_stored = false;
    if (d->ask.len) { /* (no COPY asked it) */
        PQclear(d->answer);
        rc = run_sql(d, c, d->ask.data, &d->answer, "listing the run's lazy windows", err);
        bp_buf_reset(&d->ask);
    }
    PGresult *res = d->answer;
    for (int i = 0; rc == 0 && res && i < PQntuples(res); i++) {
        int g = strcmp(PQgetvalue(res, i, 0), bp_grain_names[BP_GRAIN_1H]) == 0 ? BP_GRAIN_1H
                                                                                : BP_GRAIN_1D;
        set_window *sw = run_window(d, g, strtoull(PQgetvalue(res, i, 1), NULL, 10));
        if (sw)
            sw->lazy = true;
    }
    PQclear(res);
    d->answer = NULL;
    for (size_t i = 0; rc == 0 && i < d->nwins; i++)
        *any_stored |= d->wins[i].known && !d->wins[i].lazy;
    return rc;
}

/* ---- batch begin ------------------------------------------------------------------------- */

/* The temporary tables are emptied by DELETE after each use, not at COMMIT: ON COMMIT DELETE
 * ROWS truncated the eight of them (and their TOAST tables and indexes) at every commit. Their
 * dead rows go every TRUNCATE_EVERY batches. */
#define TRUNCATE_EVERY 64

static int temp_tables(bp_pg_derived *d, bp_error *err)
{
    if (d->have_temp && (d->group || ++d->batches % TRUNCATE_EVERY != 0))
        return 0; /* (mid-group bp_d_aa_delta holds the group's set deltas) */
    if (d->have_temp) {
        bp_buf_reset(&d->sql);
        int rc = bp_buf_puts(
            &d->sql, "TRUNCATE bp_d_aa_delta, bp_d_cs_new, bp_d_cs_gone, bp_d_contract_inc");
        for (size_t i = 0; i < N_STAGED; i++)
            rc |= bp_buf_printf(&d->sql, ", bp_d_%s", bp_dtables[g_staged[i]].name);
        return rc ? oom(err) : defer_sql(d, d->sql.data, err);
    }
    bp_buf_reset(&d->sql);
    int rc = 0;
    for (size_t i = 0; i < N_STAGED; i++)
        rc |= bp_buf_printf(&d->sql, "CREATE TEMP TABLE IF NOT EXISTS bp_d_%s (LIKE %s);",
                            bp_dtables[g_staged[i]].name, bp_dtables[g_staged[i]].name);
    rc |= bp_buf_puts(
        &d->sql, "CREATE TEMP TABLE IF NOT EXISTS bp_d_aa_delta(grain text, window_start bigint,"
                 " n bigint);"
                 "CREATE TEMP TABLE IF NOT EXISTS bp_d_cs_new(grain text, window_start bigint,"
                 " contract_address bytea, n bigint);"
                 "CREATE TEMP TABLE IF NOT EXISTS bp_d_cs_gone(contract_address bytea, n bigint);"
                 "CREATE TEMP TABLE IF NOT EXISTS bp_d_contract_inc(LIKE contract_metrics_1h,"
                 " grain text)");
    if (rc != 0)
        return oom(err);
    /* (created with the batch's first round trip; a failed batch makes them again) */
    rc = defer_sql(d, d->sql.data, err);
    d->have_temp = rc == 0;
    return rc;
}

static int origin_literal(bp_pg_derived *d, PGconn *c, const char *origin, bp_error *err)
{
    if (d->origin && strcmp(d->origin, origin) == 0)
        return 0;
    memset(d->last_cut, 0, sizeof(d->last_cut)); /* another chain's cuts (chains share it) */
    free(d->origin);
    PQfreemem(d->origin_lit);
    d->origin = strdup(origin);
    d->origin_lit = PQescapeLiteral(c, origin, strlen(origin));
    return d->origin && d->origin_lit ? 0 : oom(err);
}

/* The minutes of the blocks in [lo, hi] are touched (their USD may have changed). */
static int touch_blocks_between(bp_pg_derived *d, PGconn *c, uint64_t lo, uint64_t hi,
                                bp_error *err)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT DISTINCT block_timestamp - block_timestamp %% 60 FROM chain_metrics_block"
             " WHERE origin_key = %s AND block_timestamp >= %" PRIu64
             " AND block_timestamp <= %" PRIu64,
             d->origin_lit, lo, hi);
    PGresult *r;
    int rc = run_sql(d, c, sql, &r, "the minutes of repriced blocks", err);
    for (int i = 0; rc == 0 && i < PQntuples(r); i++)
        if (bp_windows_touch(&d->win, BP_GRAIN_1M, strtoull(PQgetvalue(r, i, 0), NULL, 10), 0))
            rc = oom(err);
    PQclear(r);
    return rc;
}

/* Prices the blocks with timestamps in [lo, hi] from the prices table. Only the rows whose USD
 * changes are written: the block rows were COPYed priced by the metrics module, which prices
 * from the same points as a rule, and every row updated was a dead row version and two index
 * entries more (the whole run's block rows, every run, when no price is known at all). */
static int price_sql(bp_pg_derived *d, PGconn *c, const bp_derived *der, uint64_t lo, uint64_t hi,
                     bp_error *err)
{
    char *sym = PQescapeLiteral(c, der->native_symbol, strlen(der->native_symbol));
    if (!sym)
        return oom(err);
    bp_buf *usd = &d->cols; /* (free between COPYs) */
    bp_buf_reset(usd);
    bp_buf_reset(&d->sql);
    int rc = bp_buf_printf(usd,
                           "b.fees_paid_native * (SELECT usd FROM prices p WHERE p.symbol = %s"
                           " AND p.timestamp <= b.block_timestamp"
                           " AND p.timestamp >= b.block_timestamp - %" PRIu64
                           " ORDER BY p.timestamp DESC LIMIT 1)",
                           sym, der->price_max_age);
    if (rc == 0)
        rc = bp_buf_printf(&d->sql,
                           "UPDATE chain_metrics_block b SET fees_paid_usd = %s"
                           " WHERE b.origin_key = %s AND b.block_timestamp >= %" PRIu64
                           " AND b.block_timestamp <= %" PRIu64
                           " AND b.fees_paid_usd IS DISTINCT FROM %s",
                           usd->data, d->origin_lit, lo, hi, usd->data);
    PQfreemem(sym);
    return rc ? oom(err) : defer_sql(d, d->sql.data, err);
}

/* The prices learnt: stored; the blocks they may price are priced again. Whether the row
 * changed does not matter: another writer (a chain or a --shard sharing the database) may
 * have stored the point first, and this chain's blocks are priced only here. */
static int store_prices(bp_pg_derived *d, PGconn *c, const bp_derived *der, bp_error *err)
{
    if (der->price_count == 0)
        return 0;
    uint64_t lo = UINT64_MAX, hi = 0;
    bp_buf_reset(&d->sql);
    int rc = bp_buf_puts(&d->sql, "INSERT INTO prices(symbol, timestamp, usd, source) VALUES");
    for (size_t i = 0; rc == 0 && i < der->price_count; i++) {
        const bp_price_row *p = &der->prices[i];
        char *sym = PQescapeLiteral(c, p->symbol, strlen(p->symbol));
        char *src =
            PQescapeLiteral(c, p->source ? p->source : "", strlen(p->source ? p->source : ""));
        rc = !sym || !src ? BP_ENOMEM
                          : bp_buf_printf(&d->sql, "%s(%s, %" PRIu64 ", %.17g, %s)", i ? "," : "",
                                          sym, p->timestamp, p->usd.v, src);
        PQfreemem(sym);
        PQfreemem(src);
        if (strcmp(p->symbol, der->native_symbol) == 0) {
            lo = p->timestamp < lo ? p->timestamp : lo;
            hi = p->timestamp > hi ? p->timestamp : hi;
        }
    }
    if (rc != 0 || bp_buf_puts(&d->sql, " ON CONFLICT(symbol, timestamp) DO UPDATE SET usd ="
                                        " excluded.usd, source = excluded.source"
                                        " WHERE prices.usd IS DISTINCT FROM excluded.usd") != 0)
        return oom(err);
    rc = run_sql(d, c, d->sql.data, NULL, "storing prices", err);
    if (rc != 0 || lo > hi)
        return rc;
    hi += der->price_max_age;
    rc = price_sql(d, c, der, lo, hi, err);
    return rc ? rc : touch_blocks_between(d, c, lo, hi, err);
}

int bp_pg_derived_begin(bp_pg_derived *d, PGconn *c, const char *origin, const bp_derived *der,
                        bool settle, bp_error *err)
{
    d->sqlstate[0] = '\0';
    d->foreign = false;
    d->pend_cuts = false;
    d->batch_hi_ts = 0;
    if (!d->group) { /* else the held batch's statements still wait (sent with this one's) */
        bp_buf_reset(&d->pend);
        bp_windows_clear(&d->win);
    }
    bool locked = d->group; /* the group's transaction holds the lock */
    int rc = origin_literal(d, c, origin, err);
    if (rc == 0)
        rc = temp_tables(d, err);
    if (rc != 0)
        return rc;
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(hashtext('blockpipe metrics ' || %s))",
             d->origin_lit);
    /* taken with the batch's next round trip, before its rows (the output's raw COPY) */
    rc = locked ? 0 : defer_sql(d, sql, err);
    /* a REVERT reads the windows the group's batches hold rows of: those written first */
    if (rc == 0 && settle)
        rc = bp_pg_derived_settle(d, c, err);
    return rc || !der ? rc : store_prices(d, c, der, err);
}

int bp_pg_derived_prices(bp_pg_derived *d, PGconn *c, const bp_derived *der, bp_error *err)
{
    return store_prices(d, c, der, err);
}

/* ---- APPLY ----------------------------------------------------------------------------- */

/* blocks[0..n) without the ones that already have derived rows (another process wrote them),
 * into d->keep; *kept of them. */
static int without_existing(bp_pg_derived *d, PGconn *c, const bp_block_derived *const *blocks,
                            size_t n, size_t *kept, bp_error *err)
{
    if (n > d->keep_cap) {
        const bp_block_derived **p = realloc(d->keep, n * sizeof(*p));
        if (!p)
            return oom(err);
        d->keep = p;
        d->keep_cap = n;
    }
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT block_number FROM chain_metrics_block WHERE origin_key = %s"
             " AND block_number >= %" PRIu64 " AND block_number <= %" PRIu64,
             d->origin_lit, blocks[0]->chain.block_number, blocks[n - 1]->chain.block_number);
    PGresult *r;
    int rc = run_sql(d, c, sql, &r, "reading existing derived rows", err);
    *kept = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        bool have = false;
        for (int k = 0; k < PQntuples(r) && !have; k++)
            have = strtoull(PQgetvalue(r, k, 0), NULL, 10) == blocks[i]->chain.block_number;
        if (!have)
            d->keep[(*kept)++] = blocks[i];
    }
    PQclear(r);
    return rc;
}

static int copy_block_rows(bp_pg_derived *d, PGconn *c, const bp_block_derived *const *blocks,
                           size_t n, bp_error *err)
{
    int rc = 0;
    for (size_t t = 0; rc == 0 && t < N_DIRECT; t++) {
        row_src src = {.blocks = blocks, .nblocks = n, .table = g_direct[t]};
        rc = copy_src(d, c, g_direct[t], bp_dtables[g_direct[t]].name, &src, err);
    }
    return rc;
}

/* The counts of the grain's set rows known to be new (bp_set_row.known_new; none when the
 * batch met blocks another process stored: its rows may be in the table already), as the set
 * upserts would have counted them: one more distinct address per row in its window
 * (bp_d_aa_delta) and per (window, contract): added to the unique_senders of the run's
 * increment of that contract window, which the upsert adds (a pair without one, which the
 * metrics module does not make, goes through bp_d_cs_new like a staged row's). */
static int count_known(bp_pg_derived *d, const bp_block_derived *const *blocks, size_t n, int g)
{
    bp_buf *q = &d->counts;
    int rc = 0;
    row_src aa = {.blocks = blocks,
                  .nblocks = n,
                  .table = BP_DT_ACTIVE_ADDRESSES,
                  .grain = g,
                  .known = true,
                  .foreign = d->foreign};
    const bp_set_row *r = next_row(&aa);
    while (r) { /* a window's rows are consecutive: the blocks are in order */
        uint64_t w = r->window_start;
        size_t k = 0;
        for (; r && r->window_start == w; r = next_row(&aa))
            k++;
        rc |= bp_buf_printf(q, "INSERT INTO bp_d_aa_delta VALUES('%s', %" PRIu64 ", %zu);",
                            bp_grain_names[g], w, k);
    }
    bp_keymap_clear(&d->pairs_new);
    size_t nk = 0;
    if (!d->contracts) /* (its pairs were computed for another output) */
        return rc ? BP_ENOMEM : 0;
    row_src cs = {.blocks = blocks,
                  .nblocks = n,
                  .table = BP_DT_CONTRACT_SENDERS,
                  .grain = g,
                  .known = true,
                  .foreign = d->foreign};
    for (r = next_row(&cs); r; r = next_row(&cs)) {
        size_t *inc = bp_keymap_get(&d->run.maps[g], r->window_start, r->contract_address, NULL);
        if (inc) {
            d->run.contracts[g][*inc].unique_senders++;
            continue;
        }
        size_t idx;
        bool added;
        if (bp_keymap_put(&d->pairs_new, r->window_start, r->contract_address, NULL, nk, &idx,
                          &added) != 0 ||
            bp_grow((void **)&d->pair_counts, &d->pair_counts_cap, nk + 1,
                    sizeof(*d->pair_counts)) != 0)
            return BP_ENOMEM;
        if (added)
            d->pair_counts[nk++] = (pair_count){r->window_start, r->contract_address, 0};
        d->pair_counts[idx].n++;
    }
    for (size_t i = 0; i < nk; i++) {
        const pair_count *p = &d->pair_counts[i];
        const char *hex = p->contract[0] == '0' && p->contract[1] == 'x' ? p->contract + 2 : "";
        rc |= bp_buf_printf(q, "%s('%s', %" PRIu64 ", decode('%s', 'hex'), %zu)",
                            i ? ", " : "INSERT INTO bp_d_cs_new VALUES", bp_grain_names[g],
                            p->window, hex, p->n);
    }
    rc |= nk ? bp_buf_putc(q, ';') : 0;
    d->cs_new |= nk > 0;
    return rc ? BP_ENOMEM : 0;
}

/* The run's set rows and contract increments: the rows known to be new straight into their
 * tables (counted here), the others and the increments into the temporary tables. */
static int copy_increments(bp_pg_derived *d, PGconn *c, const bp_block_derived *const *blocks,
                           size_t n, bool stored, bp_error *err)
{
    bp_derived_run *r = &d->run;
    bp_buf_reset(&d->counts);
    d->cs_new = d->staged_sets = false;
    /* the rows known to be new go into the sets' primary key indexes in key order: the server
     * descends to neighbouring leaf pages, not to random ones (none: their windows are lazy) */
    if (stored &&
        bp_derived_sorted_set_rows(blocks, n, &d->order, &d->order_cap, &d->order_count) != 0)
        return oom(err);
    for (int g = BP_GRAIN_SETS; g < BP_GRAIN_COUNT; g++) {
        if (count_known(d, blocks, n, g) != 0)
            return oom(err);
        int rc = 0;
        for (int staged = 0; rc == 0 && staged < 2; staged++)
            for (int pairs = 0; rc == 0 && pairs < 1 + d->contracts && (staged || stored);
                 pairs++) {
                bp_dtable t = pairs ? BP_DT_CONTRACT_SENDERS : BP_DT_ACTIVE_ADDRESSES;
                char name[64];
                snprintf(name, sizeof(name), "%s%s", staged ? "bp_d_" : "", bp_dtables[t].name);
                row_src src = {.blocks = blocks,
                               .nblocks = n,
                               .sorted = staged ? NULL : d->order,
                               .nsorted = d->order_count,
                               .table = t,
                               .grain = g,
                               .known = !staged,
                               .foreign = d->foreign,
                               .skip_lazy = staged ? NULL : d};
                rc = copy_src(d, c, t, name, &src, err);
                d->staged_sets |= staged && src.sent > 0;
                d->cs_new |= staged && pairs && src.sent > 0;
            }
        d->staged_contracts[g] = r->contract_count[g] > 0;
        if (rc != 0)
            return rc;
    }
    if (d->cs_new) /* counts the server adds (bp_d_cs_new): merged with the run's increments */
        return copy_increments_of(d, c, err); /* (with their counts) */
    /* else folded into the held increments (held.h), COPYed and merged once: at the batch's
     * end, or at its group's */
    for (int g = BP_GRAIN_SETS; g < BP_GRAIN_COUNT; g++) {
        for (size_t i = 0; i < r->contract_count[g]; i++)
            if (bp_held_add(&d->held, g, &r->contracts[g][i], r->contracts[g][i].unique_senders))
                return oom(err);
        d->staged_contracts[g] = false;
    }
    return 0;
}

/* The held increments COPYed into bp_d_contract_inc and merged into their windows (SQL that
 * waits for the next round trip); then nothing is held. */
static int contract_merge_sql(bp_buf *q, int g, bool cs_new);

static int write_held_contracts(bp_pg_derived *d, PGconn *c, bp_error *err)
{
    bp_derived_run held = {0};
    bool any = false;
    for (int g = BP_GRAIN_SETS; g < BP_GRAIN_COUNT; g++) {
        held.contracts[g] = d->held.rows[g];
        held.contract_count[g] = d->held.n[g];
        any |= d->held.n[g] > 0;
    }
    if (!any)
        return 0;
    row_src src = {.run = &held};
    int rc = copy_src(d, c, BP_DT_CONTRACT_1H, "bp_d_contract_inc", &src, err);
    bp_buf_reset(&d->sql);
    for (int g = BP_GRAIN_SETS; rc == 0 && g < BP_GRAIN_COUNT; g++)
        if (d->held.n[g] && contract_merge_sql(&d->sql, g, false) != 0)
            rc = oom(err);
    if (rc == 0 && (bp_buf_puts(&d->sql, "DELETE FROM bp_d_contract_inc;") != 0 ||
                    defer_sql(d, d->sql.data, err) != 0))
        rc = oom(err);
    for (int g = BP_GRAIN_SETS; g < BP_GRAIN_COUNT; g++)
        bp_held_clear_grain(&d->held, g);
    return rc;
}

/* Counts the new set rows, upserts the sets, adds the contract windows' increments: SQL that
 * waits for the batch's next round trip. Only the temporary tables the run wrote are read. */
static int merge_increments(bp_pg_derived *d, uint64_t first, bp_error *err)
{
    bp_buf *q = &d->sql;
    bp_buf_reset(q);
    /* a set row is written once (derived.h: bp_set_row): the rows inserted are the new
     * distinct addresses of their windows */
    int rc = bp_buf_append(q, d->counts.data ? d->counts.data : "", d->counts.len);
    /* the staged rows are checked against the stored set: a lazy one is stored first (from its
     * blocks before the run's) */
    for (size_t i = 0; i < d->nwins; i++)
        if (d->wins[i].staged)
            rc |= materialize_window_sql(d, q, d->wins[i].grain, d->wins[i].w, first);
    rc |=
        !d->staged_sets
            ? 0
            : bp_buf_puts(
                  q,
                  "WITH ins AS (INSERT INTO active_addresses SELECT * FROM bp_d_active_addresses"
                  " ORDER BY first_block ON CONFLICT(origin_key, grain, window_start, address) DO "
                  "NOTHING"
                  " RETURNING grain, window_start)"
                  " INSERT INTO bp_d_aa_delta SELECT grain, window_start, count(*) FROM ins"
                  " GROUP BY 1, 2;"
                  "WITH ins AS (INSERT INTO contract_senders SELECT * FROM bp_d_contract_senders"
                  " ORDER BY first_block ON CONFLICT(origin_key, grain, window_start, "
                  "contract_address, "
                  "address) DO NOTHING"
                  " RETURNING grain, window_start, contract_address)"
                  " INSERT INTO bp_d_cs_new SELECT grain, window_start, contract_address, count(*)"
                  " FROM ins GROUP BY 1, 2, 3;");
    for (int g = BP_GRAIN_SETS; g < BP_GRAIN_COUNT; g++)
        if (d->staged_contracts[g])
            rc |= contract_merge_sql(q, g, d->cs_new);
    /* (temp_tables says why DELETE) */
    rc |= d->cs_new ? bp_buf_puts(q, "DELETE FROM bp_d_cs_new;") : 0;
    for (size_t i = 0; i < N_STAGED && d->staged_sets; i++)
        rc |= bp_buf_printf(q, "DELETE FROM bp_d_%s;", bp_dtables[g_staged[i]].name);
    if (d->staged_contracts[BP_GRAIN_1H] || d->staged_contracts[BP_GRAIN_1D])
        rc |= bp_buf_puts(q, "DELETE FROM bp_d_contract_inc;");
    return rc ? oom(err) : defer_sql(d, q->data, err);
}

/* The increments of grain g in bp_d_contract_inc added to their contract windows (cs_new:
 * with the new pairs' counts in bp_d_cs_new). */
static int contract_merge_sql(bp_buf *q, int g, bool cs_new)
{
    const char *t = bp_dtables[BP_DT_CONTRACT_1M + g].name;
    int rc = bp_buf_printf(q, "INSERT INTO %s(", t);
    rc |= bp_sql_dcolumns(q, BP_DS_CONTRACT_WINDOW, NULL);
    rc |= bp_buf_puts(q, ") SELECT d.origin_key, d.window_start, d.contract_address,"
                         " d.txcount, d.gas_used, d.fees_paid_wei, d.fees_paid_native,"
                         " d.unique_senders");
    /* the pairs known to be new are counted in d (count_known); those of staged rows
     * inserted are in bp_d_cs_new, summed: a (window, contract) whose window the module
     * gave up within the run has a count of both, and two joined rows would update the
     * contract window twice (SQLSTATE 21000) */
    if (cs_new)
        rc |= bp_buf_puts(q, " + coalesce(n.n, 0) FROM bp_d_contract_inc d LEFT JOIN (SELECT"
                             " grain, window_start, contract_address, sum(n) AS n"
                             " FROM bp_d_cs_new GROUP BY 1, 2, 3) n ON n.grain = d.grain"
                             " AND n.window_start = d.window_start"
                             " AND n.contract_address = d.contract_address");
    else
        rc |= bp_buf_puts(q, " FROM bp_d_contract_inc d");
    rc |= bp_buf_printf(q, " WHERE d.grain = '%s'", bp_grain_names[g]);
    rc |= bp_buf_puts(q, " ON CONFLICT(origin_key, window_start, contract_address) DO UPDATE SET ");
    rc |= bp_sql_contract_combine(q, &g_dialect, t, '+', "excluded");
    rc |= bp_buf_printf(q, ", unique_senders = %s.unique_senders + excluded.unique_senders;", t);
    return rc;
}

int bp_pg_derived_apply(bp_pg_derived *d, PGconn *c, const bp_derived *der,
                        const bp_block_derived *const *blocks, size_t n, bool skip_existing,
                        bp_error *err)
{
    if (n == 0)
        return 0;
    if (skip_existing) { /* another process may have stored some (a staged run) */
        d->foreign = true;
        int rc = without_existing(d, c, blocks, n, &n, err);
        if (rc != 0 || n == 0)
            return rc;
        blocks = d->keep;
    }
    uint64_t lo = UINT64_MAX, hi = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t ts = blocks[i]->chain.block_timestamp;
        lo = ts < lo ? ts : lo;
        hi = ts > hi ? ts : hi;
        d->batch_hi_ts = ts > d->batch_hi_ts ? ts : d->batch_hi_ts;
        if (bp_windows_touch(&d->win, BP_GRAIN_1M, bp_window_of(ts, BP_GRAIN_1M), 0) != 0)
            return oom(err);
    }
    if (bp_derived_run_build(&d->run, blocks, n) != 0)
        return oom(err);
    bool stored;
    int rc = find_lazy_ask(d, blocks, n, err); /* (asked with the block rows' COPY) */
    if (rc == 0)
        rc = copy_block_rows(d, c, blocks, n, err);
    if (rc == 0)
        rc = find_lazy_answer(d, c, &stored, err);
    if (rc == 0)
        rc = copy_increments(d, c, blocks, n, stored, err);
    if (d->order_cap > ORDER_KEEP) { /* a huge block's: not kept for the ordinary ones */
        free(d->order);
        d->order = NULL;
        d->order_cap = d->order_count = 0;
    }
    if (rc == 0)
        rc = merge_increments(d, blocks[0]->chain.block_number, err);
    if (rc == 0)
        rc = price_sql(d, c, der, lo, hi, err);
    return rc ? bp_error_prefix(err, "derived tables of blocks %" PRIu64 "..%" PRIu64 ": ",
                                blocks[0]->chain.block_number, blocks[n - 1]->chain.block_number)
              : 0;
}

/* ---- REVERT ---------------------------------------------------------------------------- */

/* The SQL of one grain's part of reverting block number (its window w). */
static int revert_grain_sql(bp_pg_derived *d, bp_buf *q, int g, uint64_t w, uint64_t number)
{
    const char *o = d->origin_lit;
    const char *gn = bp_grain_names[g], *kw = bp_dtables[BP_DT_CONTRACT_1M + g].name;
    char senders[1024], pairs[1024], key[1024];
    snprintf(senders, sizeof(senders),
             "(SELECT DISTINCT from_address AS a FROM transactions WHERE chain = %s"
             " AND block_number = %" PRIu64 ")",
             o, number);
    snprintf(pairs, sizeof(pairs),
             "(SELECT DISTINCT " CONTRACT_OF_TX " AS c, from_address AS a FROM transactions"
             " WHERE chain = %s AND block_number = %" PRIu64 ")",
             o, number);
    snprintf(key, sizeof(key), "x.origin_key = %s AND x.grain = '%s' AND x.window_start = %" PRIu64,
             o, gn, w);
    /* the reverted block is the window's highest: the rows it was the first block of go (of a
     * lazy window's set, stored first) */
    int rc = materialize_window_sql(d, q, g, w, number + 1);
    rc |= bp_buf_printf(q,
                        "WITH d AS (DELETE FROM active_addresses x USING %s t WHERE %s"
                        " AND x.address = t.a AND x.first_block = %" PRIu64 " RETURNING 1)"
                        " INSERT INTO bp_d_aa_delta SELECT '%s', %" PRIu64 ", -count(*) FROM d;",
                        senders, key, number, gn, w);
    if (!d->contracts)
        return rc;
    rc |= bp_buf_printf(q,
                        "WITH d AS (DELETE FROM contract_senders x USING %s t WHERE %s"
                        " AND x.contract_address = t.c AND x.address = t.a"
                        " AND x.first_block = %" PRIu64 " RETURNING x.contract_address)"
                        " INSERT INTO bp_d_cs_gone SELECT contract_address, count(*) FROM d"
                        " GROUP BY 1;",
                        pairs, key, number);
    char num[24];
    snprintf(num, sizeof(num), "%" PRIu64, number);
    rc |= bp_buf_printf(q, "UPDATE %s c SET ", kw);
    rc |= bp_sql_contract_combine(q, &g_dialect, "c", '-', "b");
    rc |=
        bp_buf_puts(q, ", unique_senders = c.unique_senders - coalesce((SELECT n FROM"
                       " bp_d_cs_gone z WHERE z.contract_address = c.contract_address), 0) FROM ");
    rc |= bp_sql_block_contracts(q, &g_dialect, o, num);
    rc |= bp_buf_printf(q,
                        " b WHERE c.origin_key = %s AND c.window_start = %" PRIu64
                        " AND c.contract_address = b.contract_address;"
                        "DELETE FROM %s WHERE origin_key = %s AND window_start = %" PRIu64
                        " AND txcount = 0;DELETE FROM bp_d_cs_gone;",
                        o, w, kw, o, w);
    return rc;
}

int bp_pg_derived_revert(bp_pg_derived *d, PGconn *c, const char *origin, const bp_block *b,
                         bp_error *err)
{
    char sql[512];
    if (!b->hash || strncmp(b->hash, "0x", 2) != 0 ||
        strspn(b->hash + 2, "0123456789abcdef") != strlen(b->hash + 2))
        return bp_error_set(err, BP_EINVAL, "revert block %" PRIu64 ": bad hash", b->number);
    int rc = origin_literal(d, c, origin, err);
    /* the runs before it: their increments are in the windows it subtracts from */
    if (rc == 0)
        rc = write_held_contracts(d, c, err);
    snprintf(sql, sizeof(sql),
             "SELECT block_timestamp FROM chain_metrics_block WHERE origin_key = %s"
             " AND block_number = %" PRIu64 " AND block_hash = decode('%s', 'hex')",
             d->origin_lit ? d->origin_lit : "''", b->number, b->hash + 2);
    PGresult *r = NULL;
    if (rc == 0)
        rc = run_sql(d, c, sql, &r, "reading the block's derived row", err);
    bool has = rc == 0 && PQntuples(r) == 1;
    uint64_t ts = has ? strtoull(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    if (rc != 0 || !has) /* none: written before the derived tables were (or without them) */
        return rc ? bp_error_prefix(err, "revert block %" PRIu64 ": ", b->number) : 0;
    bp_buf_reset(&d->sql);
    d->reverted = true;
    /* its minute is recomputed from the raw rows at the end of the batch */
    rc = bp_windows_touch(&d->win, BP_GRAIN_1M, bp_window_of(ts, BP_GRAIN_1M), 0);
    for (int g = BP_GRAIN_SETS; rc == 0 && g < BP_GRAIN_COUNT; g++)
        rc = revert_grain_sql(d, &d->sql, g, bp_window_of(ts, g), b->number) ||
             bp_windows_touch(&d->win, g, bp_window_of(ts, g), 0);
    rc |= bp_buf_printf(&d->sql,
                        "DELETE FROM chain_metrics_block WHERE origin_key = %1$s"
                        " AND block_number = %2$" PRIu64 ";"
                        "DELETE FROM token_transfers WHERE chain = %1$s"
                        " AND block_number = %2$" PRIu64 ";"
                        "DELETE FROM ml_predictions WHERE origin_key = %1$s"
                        " AND block_number = %2$" PRIu64,
                        d->origin_lit, b->number);
    if (rc != 0)
        return oom(err);
    rc = run_sql(d, c, d->sql.data, NULL, "reverting its derived rows", err);
    return rc ? bp_error_prefix(err, "revert block %" PRIu64 ": ", b->number) : 0;
}

/* ---- batch end -------------------------------------------------------------------------- */

/* A minute's contract rows recomputed from its raw transactions (one the batch has no summary
 * of: those of the others are COPYed by copy_minutes). */
static int contract_minute_sql(bp_pg_derived *d, bp_buf *q, const char *w)
{
    return bp_sql_contract_minute_delete(q, d->origin_lit, w) | bp_buf_putc(q, ';') |
           bp_sql_contract_minute_insert(q, &g_dialect, d->origin_lit, w) | bp_buf_putc(q, ';');
}

/* The batch's summary of touched minute ws, or NULL (its rows come from its raw transactions). */
static const bp_minute_summary *minute_summary(const bp_pg_derived *d, const bp_derived *der,
                                               uint64_t ws)
{
    if (d->use_held_minute && d->held.minute_set && d->held.minute.window_start == ws)
        return &d->held.minute; /* (a minute the batch did not continue: complete) */
    return !d->foreign && der ? bp_derived_minute(der, ws) : NULL;
}

/* The batch's last minute, held for the group's end or the next batch. */
static bool skipped(const bp_pg_derived *d, uint64_t ws)
{
    return d->skip_set && d->skip_minute == ws;
}

/* The contract rows of the summarized touched minutes: their old rows deleted and theirs
 * COPYed straight in (through a temporary table and an INSERT they cost the server twice; as a
 * VALUES list in the rollups' statement, a batch's 2,500 rows took the server as long as every
 * other derived statement of the batch end). */
static int copy_minutes(bp_pg_derived *d, PGconn *c, const bp_derived *der, bp_error *err)
{
    if (!d->contracts)
        return 0;
    /* their old rows go in one DELETE (window_start = ANY(list)) */
    bp_buf_reset(&d->sql);
    bp_buf_reset(&d->cols);
    int rc = bp_buf_puts(&d->cols, "ANY('{");
    size_t k = 0;
    for (size_t i = 0; i < d->win.n[BP_GRAIN_1M]; i++) {
        uint64_t ws = d->win.v[BP_GRAIN_1M][i].w;
        if (!skipped(d, ws) && minute_summary(d, der, ws))
            rc |= bp_buf_printf(&d->cols, "%s%" PRIu64, k++ ? "," : "", ws);
    }
    rc |= bp_buf_puts(&d->cols, "}'::bigint[])");
    if (rc == 0 && k)
        rc = bp_sql_contract_minute_delete(&d->sql, d->origin_lit, d->cols.data);
    if (rc != 0 || (d->sql.len && defer_sql(d, d->sql.data, err) != 0))
        return oom(err);
    row_src src = {.mins = d, .der = d->foreign ? NULL : der, .win = &d->win};
    return copy_src(d, c, BP_DT_CONTRACT_1M, bp_dtables[BP_DT_CONTRACT_1M].name, &src, err);
}

/* After copy_minutes: the touched windows recomputed (a minute without a summary with its
 * contract rows), each grain's in one upsert and one prune over the list of its windows: one
 * statement pair per window was most of the batch end's statements (130 of them per 600 blocks
 * of 12 s), each parsed and planned alone. */
static int rollups_sql(bp_pg_derived *d, const bp_derived *der, bp_buf *q, int grains)
{
    bp_buf ws, dl;
    bp_buf_init(&ws, 0);
    bp_buf_init(&dl, 0);
    int rc = 0;
    for (int g = 0; g < grains; g++) {
        bp_dtable t = (bp_dtable)(BP_DT_CHAIN_1M + g);
        bp_buf_reset(&ws);
        bp_buf_reset(&dl);
        rc |= bp_buf_puts(&ws, "'{") | bp_buf_puts(&dl, "'{");
        size_t k = 0;
        bool counted = true; /* every minute's count is known (planning the raw transactions'
                              * count for none took the server more than the whole upsert) */
        for (size_t i = 0; i < d->win.n[g]; i++) {
            uint64_t w = d->win.v[g][i].w;
            if (g == BP_GRAIN_1M && skipped(d, w))
                continue;
            const bp_minute_summary *sum = g == BP_GRAIN_1M ? minute_summary(d, der, w) : NULL;
            if (g == BP_GRAIN_1M && !sum && d->contracts) {
                char lit[24];
                snprintf(lit, sizeof(lit), "%" PRIu64, w);
                rc |= contract_minute_sql(d, q, lit);
            }
            rc |= bp_buf_printf(&ws, "%s%" PRIu64, k ? "," : "", w);
            /* a minute without a summary (NULL) counts the senders of its raw transactions */
            if (sum)
                rc |= bp_buf_printf(&dl, "%s%" PRIu64, k ? "," : "", sum->active_addresses);
            else
                rc |= bp_buf_puts(&dl, k ? ",NULL" : "NULL");
            counted &= sum != NULL;
            k++;
        }
        rc |= bp_buf_puts(&ws, "}'::bigint[]") | bp_buf_puts(&dl, "}'::bigint[]");
        if (k == 0 || rc != 0)
            continue;
        char delta[200];
        snprintf(delta, sizeof(delta),
                 "coalesce((SELECT sum(n) FROM bp_d_aa_delta WHERE grain = '%s'"
                 " AND window_start = bp_ws), 0)",
                 bp_grain_names[g]);
        rc |= bp_sql_rollup_set(q, t, &g_dialect, d->origin_lit, ws.data, dl.data,
                                g != BP_GRAIN_1M ? delta
                                : counted        ? "bp_dl"
                                                 : NULL);
        rc |= bp_buf_putc(q, ';');
        /* a window left without finer rows goes; only a REVERT leaves one (an applied or
         * repriced block's windows have it, and then its minute's row), and it is rare: one
         * statement per window, whose plan reads just that window */
        for (size_t i = 0; d->reverted && i < d->win.n[g]; i++) {
            char w[24];
            snprintf(w, sizeof(w), "%" PRIu64, d->win.v[g][i].w);
            if (!(g == BP_GRAIN_1M && skipped(d, d->win.v[g][i].w)))
                rc |= bp_sql_rollup_prune(q, t, d->origin_lit, w) | bp_buf_putc(q, ';');
        }
    }
    bp_buf_release(&ws);
    bp_buf_release(&dl);
    return rc;
}

static int retention_sql(bp_pg_derived *d, const bp_derived *der, bp_buf *q, uint64_t *cuts)
{
    bp_expiry plan[BP_EXPIRY_MAX];
    size_t n = bp_retention_plan(&d->ret, der, plan);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        cuts[i] = d->last_cut[i];
        if (plan[i].before <= d->last_cut[i])
            continue;
        cuts[i] = plan[i].before;
        if (plan[i].table == (bp_dtable)(BP_DT_CHAIN_1M + BP_GRAIN_1H)) {
            /* a lazy window's blocks are known from these rows once the block rows are gone
             * (lazy_from_sql): its set is stored before they go (sets kept longer than them) */
            bp_buf where;
            bp_buf_init(&where, 0);
            rc |= bp_buf_printf(&where, "m.origin_key = %s AND m.window_start < %" PRIu64,
                                d->origin_lit, plan[i].before);
            rc |= rc ? rc : materialize_sql(q, where.data, 0, d->contracts);
            bp_buf_release(&where);
        }
        rc |= bp_buf_printf(q, "DELETE FROM %s WHERE origin_key = %s",
                            bp_dtables[plan[i].table].name, d->origin_lit);
        if (plan[i].grain >= 0)
            rc |= bp_buf_printf(q, " AND grain = '%s'", bp_grain_names[plan[i].grain]);
        rc |= bp_buf_printf(q, " AND %s < %" PRIu64 ";", plan[i].column, plan[i].before);
        if (plan[i].table == BP_DT_ACTIVE_ADDRESSES) /* a lazy window's set goes with them */
            rc |= bp_buf_printf(q,
                                "DELETE FROM lazy_set_windows WHERE origin_key = %s"
                                " AND grain = '%s' AND window_start < %" PRIu64 ";",
                                d->origin_lit, bp_grain_names[plan[i].grain], plan[i].before);
    }
    return rc;
}

/* After the rollups: the lazy windows of the chain past lazy_max_txs transactions are stored. */
static int big_lazy_sql(bp_pg_derived *d, bp_buf *q)
{
    char where[768];
    snprintf(where, sizeof(where),
             "m.origin_key = %s AND coalesce(CASE WHEN m.grain = '1h' THEN (SELECT txcount FROM"
             " chain_metrics_1h h WHERE h.origin_key = m.origin_key"
             " AND h.window_start = m.window_start) ELSE (SELECT txcount FROM chain_metrics_1d h"
             " WHERE h.origin_key = m.origin_key AND h.window_start = m.window_start) END, 0)"
             " > %" PRIu64,
             d->origin_lit, d->lazy_max_txs);
    return materialize_sql(q, where, 0, d->contracts);
}

static bool minute_touched(const bp_pg_derived *d, uint64_t w)
{
    for (size_t i = 0; i < d->win.n[BP_GRAIN_1M]; i++)
        if (d->win.v[BP_GRAIN_1M][i].w == w)
            return true;
    return false;
}

int bp_pg_derived_finish(bp_pg_derived *d, PGconn *c, const bp_derived *der, bool hold,
                         bp_error *err)
{
    if (bp_windows_close(&d->win) != 0)
        return oom(err);
    /* the minute held before: written now unless the batch continued it (its own summary, or
     * its raw rows, are newer); the batch's last one held while the group goes on */
    uint64_t last = bp_window_of(d->batch_hi_ts, BP_GRAIN_1M);
    const bp_minute_summary *keep =
        hold && der && !d->foreign && d->batch_hi_ts ? bp_derived_minute(der, last) : NULL;
    d->use_held_minute = false;
    if (d->held.minute_set && minute_touched(d, d->held.minute.window_start))
        bp_held_drop_minute(&d->held);
    else if (d->held.minute_set) {
        d->use_held_minute = true;
        if (bp_windows_touch(&d->win, BP_GRAIN_1M, d->held.minute.window_start, 0) != 0)
            return oom(err);
    }
    d->skip_set = keep != NULL;
    d->skip_minute = last;
    int rc = copy_minutes(d, c, der, err); /* none with metrics off (der NULL) */
    if (rc == 0 && !hold)
        rc = write_held_contracts(d, c, err);
    if (rc != 0)
        return rc;
    /* (retention follows the rows written: none with metrics off; at a group's end, the
     * latest held batch's) */
    const bp_derived *ret = der ? der : d->held_ret_set ? &d->held_ret : NULL;
    memcpy(d->pend_cut, d->last_cut, sizeof(d->pend_cut));
    bp_buf_reset(&d->sql);
    if (rollups_sql(d, der, &d->sql, hold ? BP_GRAIN_1M + 1 : BP_GRAIN_COUNT) != 0 ||
        (!hold && ret &&
         (big_lazy_sql(d, &d->sql) != 0 || retention_sql(d, ret, &d->sql, d->pend_cut) != 0)))
        return oom(err);
    /* (temp_tables; a group keeps its set deltas for the 1h and 1d rollups at its end) */
    if (!hold && bp_buf_puts(&d->sql, "DELETE FROM bp_d_aa_delta") != 0)
        return oom(err);
    if (d->use_held_minute)
        bp_held_drop_minute(&d->held);
    d->use_held_minute = d->skip_set = false;
    if (hold) {
        bp_keymap_clear(&d->win.map[BP_GRAIN_1M]); /* written, or held */
        d->win.n[BP_GRAIN_1M] = 0;
        if (keep && bp_held_keep_minute(&d->held, d->origin, keep) != 0)
            return oom(err);
        if (der) {
            snprintf(d->held_origin, sizeof(d->held_origin), "%s", der->origin_key);
            d->held_ret = (bp_derived){.origin_key = d->held_origin,
                                       .newest_ts = der->newest_ts,
                                       .frozen_ts = der->frozen_ts};
            d->held_ret_set = strlen(der->origin_key) < sizeof(d->held_origin);
        }
        d->group = true;
        return d->sql.len ? defer_sql(d, d->sql.data, err) : 0;
    }
    d->group = d->held_ret_set = d->reverted = false;
    bp_windows_clear(&d->win);
    /* with the output's checkpoint and COMMIT (bp_pg_derived_pending), whose success moves the
     * retention's cut on (bp_pg_derived_committed) */
    d->pend_cuts = true;
    return defer_sql(d, d->sql.data, err);
}

int bp_pg_derived_settle(bp_pg_derived *d, PGconn *c, bp_error *err)
{
    return d->group ? bp_pg_derived_finish(d, c, NULL, false, err) : 0;
}
