/* postgres.c - the PostgreSQL output: the SQLite output's tables and semantics, loaded with
 * binary COPY, each batch and its checkpoint in one transaction (exactly once).
 *
 * A batch: BEGIN + read our checkpoint (one round trip; a batch the checkpoint already covers,
 * e.g. a retry after a lost COMMIT reply, is done), then for each run of APPLY events one
 * binary COPY per table straight into blocks / transactions / logs, for each run of REVERTs
 * one round trip of DELETEs, then the checkpoint upsert and COMMIT (one round trip).
 * A COPY that hits an existing primary key (another process wrote those blocks, e.g. a
 * backfill overlapping a head follower) rolls the transaction back and the batch is written
 * again through temporary staging tables: COPY into them, INSERT ... ON CONFLICT DO NOTHING,
 * then a check that every stored block has our hash (same hash: skipped, as in SQLite;
 * different hash: an error naming both).
 *
 * Connection loss (server restart, network) and deadlocks: the transaction failed as a whole,
 * so the sink reconnects (backoff, up to wait_for_db seconds) and writes the batch again. */
#include "blockpipe/sink.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blockpipe/columns.h"
#include "blockpipe/derived.h"
#include "metrics/derive_job.h"
#include "metrics/metrics.h"
#include "sink/format.h"
#include "sink/options.h"
#include "sink/pg_arch.h"
#include "sink/pg_conn.h"
#include "sink/pg_copy.h"
#include "sink/pg_derived.h"
#include "sink/pg_read.h"
#include "sink/sqlgen.h"
#include "util/buf.h"
#include "util/crashpoint.h"
#include "util/log.h"

#define PG_MAX_ATTEMPTS 6 /* tries of one batch over connection losses and deadlocks */
#define PG_SQL_MAX (64u << 20)

/* The tables in bp_table order; their columns come from the column table (columns.h). */
enum {
    T_BLOCKS = BP_TABLE_BLOCKS,
    T_TXS = BP_TABLE_TRANSACTIONS,
    T_LOGS = BP_TABLE_LOGS,
    T_COUNT = BP_TABLE_COUNT
};

static const char *const g_stage[T_COUNT] = {
    [T_BLOCKS] = "bp_stage_blocks",
    [T_TXS] = "bp_stage_transactions",
    [T_LOGS] = "bp_stage_logs",
};

/* A session on the server: its backend's pid and start (µs since the epoch, as text) tell it
 * from a later one that got the same pid. Saved when it connects: libpq forgets the pid once
 * the connection is bad, which is when it is needed (lock_again). */
typedef struct pg_session {
    int pid; /* 0: unknown */
    char start[24];
} pg_session;

typedef struct pg_sink {
    struct bp_sink base;
    bp_pg_target t;
    PGconn *conn;
    bool have_stage;      /* the temporary staging tables exist on this connection */
    char sqlstate[6];     /* of the last failed statement, "" when none */
    long copy_line;       /* the COPY data line the server named in the last error, or 0 */
    bp_buf data[T_COUNT]; /* COPY data not sent yet, < BP_PG_COPY_CHUNK + a row */
    bp_buf cols[T_COUNT]; /* each table's column list, for COPY */
    bp_buf sql;           /* statement text (reused) */
    bp_buf sql2;          /* it after the derived tables' pending statements */
    bp_buf json;          /* withdrawals JSON of one block (reused) */
    char *chain;          /* the chain chain_lit quotes */
    char *chain_lit;      /* chain as an SQL literal */
    char *output_lit;     /* t.checkpoint as an SQL literal */
    /* the derived tables: written with metrics on; off, only the reverted blocks' rows taken
     * out (pg_derived.h) */
    bp_pg_derived *derived;
    bool metrics;                   /* metrics on: the output writes derived rows */
    bool lookup_tried, lookup_made; /* make_lookup_indexes ran; and succeeded */
    bool write_failed;              /* a batch failed for good (the run stops with its error) */
    int timed_out; /* the last connection was cut after timed_out s without an answer; 0: no */
    /* when the connection was found lost (bp_pg_now_ms), until a reconnect succeeds: every
     * reconnect of the outage waits within wait_for_db of it (bp_pg_reconnect), so that the
     * batch's retries, the pipeline's and the probe's reads do not each wait anew; 0: none */
    long down_since_ms;
    pg_session session;           /* the server's session of conn, saved when it connected */
    const bp_block_derived **run; /* the derived rows of the APPLY run being written */
    bp_block_derived *trimmed;    /* run's blocks trimmed to `has` (bp_derived_trim) */
    size_t run_cap;
    unsigned has; /* the derived groups the tables hold (derived=, bp_pg_derived_select) */
    struct pg_claim *claims; /* the chains whose writer lock this session holds (or held) */
    size_t claim_count, claim_cap;
    bp_pg_arch *arch; /* the Arch tables (--chain-type arch) */
    /* A group (bp_batch.more): the transaction is open across batches of a backfill, from
     * the one of group_first on, group_cp the latest one's checkpoint (stored at the group's
     * COMMIT); lost: one was rolled back with batches it held, so nothing more is written
     * until the pipeline asks for the checkpoint again (it goes back there). */
    bool in_group, lost;
    /* another writer's rows were met (23505): every later batch goes through the staging
     * tables (a group cannot be written again through them once one of its batches failed) */
    bool conflicted;
    uint64_t group_first;
    bp_checkpoint group_cp;
} pg_sink;

/* A chain's writer lock: the session-level advisory lock (PG_LOCK_CLASS, key). */
typedef struct pg_claim {
    char *chain;
    int32_t key;
    bool lost; /* the session that held it died, and another took it before we reconnected */
    bool own;  /* lost to our own former session, which could not be ended (end_former) */
    char holder[200];
} pg_claim;

/* ---- rows ------------------------------------------------------------------------------- */

static void enc_withdrawals(pg_sink *s, bp_pgcopy *c, const bp_block *b)
{
    bp_fmt f = {.buf = &s->json};
    bp_buf_reset(&s->json);
    bp_fmt_char(&f, '[');
    bp_fmt_withdrawals(&f, b, "\"");
    bp_fmt_char(&f, ']');
    if (f.rc != 0 && c->rc == 0)
        c->rc = f.rc;
    bp_pgcopy_jsonb(c, s->json.data);
}

/* The loops over a table's columns are unrolled into one function per table, so that each
 * cell's value and type fold to a plain field read and one encoder call. */
#define UNROLL _Pragma("GCC unroll 40")
#define INLINE static inline __attribute__((always_inline))

/* One cell: the binary COPY form of the column's PostgreSQL type (bp_pg_type). */
INLINE void enc_value(pg_sink *s, bp_pgcopy *c, bp_col_id id, const bp_value *v)
{
    bp_col_type type = bp_col_type_of(id);
    switch (v->kind) {
    case BP_VAL_U64:
        if (type == BP_COL_UINT64)
            bp_pgcopy_num_u64(c, v->u);
        else if (type == BP_COL_BOOL)
            bp_pgcopy_bool(c, v->u);
        else
            bp_pgcopy_i64(c, v->u, bp_columns[id].qname);
        return;
    case BP_VAL_U256:
        bp_pgcopy_qty(c, v->q);
        return;
    case BP_VAL_STR:
        if (type == BP_COL_TEXT)
            bp_pgcopy_text(c, v->s);
        else if (type == BP_COL_JSON)
            bp_pgcopy_jsonb(c, v->s);
        else
            bp_pgcopy_hex(c, v->s, bp_columns[id].qname);
        return;
    case BP_VAL_HEX: {
        /* kept as bytes: a bytea takes them as they are (an odd digit count goes the text
         * way, to be refused with the column named as before) */
        size_t digits = bp_hexb_len(v->h);
        if (type != BP_COL_TEXT && digits % 2 == 0) {
            bp_pgcopy_bytes(c, bp_hexb_bytes(v->h), digits / 2);
            return;
        }
        char hex[BP_HEXB_TEXT];
        bp_hexb_text(hex, v->h);
        if (type == BP_COL_TEXT)
            bp_pgcopy_text(c, hex);
        else
            bp_pgcopy_hex(c, hex, bp_columns[id].qname);
        return;
    }
    case BP_VAL_WITHDRAWALS:
        enc_withdrawals(s, c, v->block);
        return;
    default:
        bp_pgcopy_null(c);
    }
}

INLINE void enc_cols(pg_sink *s, bp_pgcopy *c, int first, int end, const bp_row *r)
{
    bp_pgcopy_row(c, (uint16_t)(end - first));
    UNROLL
    for (int i = first; i < end; i++) {
        bp_value v = bp_value_of((bp_col_id)i, r);
        enc_value(s, c, (bp_col_id)i, &v);
    }
}

static void enc_block(pg_sink *s, bp_pgcopy *c, const bp_row *r)
{
    enc_cols(s, c, BP_C_BLOCKS_FIRST, BP_C_TRANSACTIONS_FIRST, r);
}

static void enc_tx(pg_sink *s, bp_pgcopy *c, const bp_row *r)
{
    enc_cols(s, c, BP_C_TRANSACTIONS_FIRST, BP_C_LOGS_FIRST, r);
}

static void enc_log(pg_sink *s, bp_pgcopy *c, const bp_row *r)
{
    enc_cols(s, c, BP_C_LOGS_FIRST, BP_C_COUNT, r);
}

static int enc_failed(const bp_pgcopy *c, const bp_block *b, bp_error *err)
{
    if (c->rc == BP_EINVAL)
        return bp_error_set(err, BP_EINVAL,
                            "block %" PRIu64 ": column %s: value does not fit its PostgreSQL "
                            "type (bigint above 2^63-1, or not 0x + even-length hex)",
                            b->number, c->bad_column);
    return bp_error_set(err, c->rc, "block %" PRIu64 ": encoding COPY rows: %s", b->number,
                        bp_strerror(c->rc));
}

/* How many rows of table t block b has. */
static size_t rows_of(const bp_block *b, int t)
{
    return t == T_BLOCKS ? 1 : t == T_TXS ? b->tx_count : (b->has_receipts ? b->log_count : 0);
}

/* Row k of table t for block b. */
static void enc_row(pg_sink *s, bp_pgcopy *c, int t, const char *chain, const bp_block *b, size_t k)
{
    bp_row r = {.chain = chain, .block = b};
    if (t == T_BLOCKS) {
        enc_block(s, c, &r);
    } else if (t == T_TXS) {
        r.tx = &b->txs[k];
        enc_tx(s, c, &r);
    } else {
        r.log = &b->logs[k];
        enc_log(s, c, &r);
    }
}

/* ---- statements ------------------------------------------------------------------------- */

/* Records the SQLSTATE and returns BP_ETRANSPORT (connection gone) or BP_EDB. */
static int failed(pg_sink *s, PGresult *r, const char *what, bp_error *err)
{
    char msg[BP_ERROR_MSG_MAX];
    bp_pg_errmsg(s->conn, r, msg, sizeof(msg));
    snprintf(s->sqlstate, sizeof(s->sqlstate), "%s", bp_pg_sqlstate(r));
    int code = bp_pg_conn_lost(s->conn, r) ? BP_ETRANSPORT : BP_EDB;
    return bp_error_set(err, code, "%s: %s", what, msg);
}

/* sql after the derived tables' pending statements (bp_pg_derived_pending), one round trip. */
static int exec(pg_sink *s, const char *sql, PGresult **res, const char *what, bp_error *err)
{
    const char *before = bp_pg_derived_pending(s->derived);
    if (!before)
        return bp_pg_run(s->conn, sql, res, s->sqlstate, what, err);
    bp_buf_reset(&s->sql2);
    if (bp_buf_puts(&s->sql2, before) != 0 || bp_buf_puts(&s->sql2, sql) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    bp_pg_derived_sent(s->derived);
    return bp_pg_run(s->conn, s->sql2.data, res, s->sqlstate, what, err);
}

/* One binary COPY of table t's rows of the run ev[0..n) into `table`. The rows are encoded
 * into s->data[t] and sent each time it holds BP_PG_COPY_CHUNK bytes, so the buffer stays near
 * that whatever the run holds: encoding the whole run first took about as much memory again
 * as its blocks, outside --max-memory. A row that cannot be encoded ends the COPY with an
 * error naming its block. */
static int copy_table(pg_sink *s, const char *table, int t, const char *chain, const bp_event *ev,
                      size_t n, const char *what, bp_error *err)
{
    int rc = bp_pg_copy_begin_after(s->conn, bp_pg_derived_pending(s->derived), table,
                                    s->cols[t].data, NULL, s->sqlstate, what, err);
    if (s->derived)
        bp_pg_derived_sent(s->derived);
    if (rc != 0)
        return rc;
    bp_buf *data = &s->data[t];
    bp_buf_reset(data);
    bp_pgcopy c = {.buf = data};
    bp_pgcopy_header(&c);
    for (size_t i = 0; i < n; i++) {
        const bp_block *b = ev[i].block;
        for (size_t k = 0, rows = rows_of(b, t); k < rows; k++) {
            enc_row(s, &c, t, chain, b, k);
            if (c.rc != 0)
                return bp_pg_copy_abort(s->conn, "blockpipe could not encode a row",
                                        enc_failed(&c, b, err));
            if (data->len < BP_PG_COPY_CHUNK)
                continue;
            if ((rc = bp_pg_copy_put(s->conn, data, s->sqlstate, what, err)) != 0)
                return rc;
            bp_buf_reset(data);
        }
    }
    bp_pgcopy_trailer(&c);
    if (c.rc != 0)
        return bp_pg_copy_abort(
            s->conn, "blockpipe could not encode a row",
            bp_error_set(err, c.rc, "encoding COPY rows: %s", bp_strerror(c.rc)));
    rc = bp_pg_copy_put(s->conn, data, s->sqlstate, what, err);
    bp_buf_reset(data);
    return rc ? rc : bp_pg_copy_end(s->conn, s->sqlstate, &s->copy_line, what, err);
}

/* The block of the line-th row (1-based) of table t in the run ev[0..n). */
static const bp_block *block_of_row(const bp_event *ev, size_t n, int t, long line)
{
    for (size_t i = 0; i < n; i++) {
        const bp_block *b = ev[i].block;
        long rows = (long)rows_of(b, t);
        if (line <= rows)
            return b;
        line -= rows;
    }
    return NULL;
}

/* COPY of the encoded run ev[0..n) into the tables (or the staging tables). A row the server
 * refused (constraint, bad value) is named by its block. */
static int copy_run(pg_sink *s, bool stage, const char *chain, const bp_event *ev, size_t n,
                    bp_error *err)
{
    uint64_t lo = ev[0].block->number, hi = ev[n - 1].block->number;
    for (int t = 0; t < T_COUNT; t++) {
        char what[160];
        const char *table = stage ? g_stage[t] : bp_table_name((bp_table)t);
        snprintf(what, sizeof(what), "blocks %" PRIu64 "..%" PRIu64 ": COPY into %s", lo, hi,
                 table);
        s->copy_line = 0;
        int rc = copy_table(s, table, t, chain, ev, n, what, err);
        const bp_block *b =
            rc != 0 && s->copy_line > 0 ? block_of_row(ev, n, t, s->copy_line) : NULL;
        if (b)
            bp_error_prefix(err, "block %" PRIu64 ": ", b->number);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int make_stage(pg_sink *s, bp_error *err)
{
    if (s->have_stage)
        return 0;
    int rc = exec(s,
                  "CREATE TEMP TABLE IF NOT EXISTS bp_stage_blocks(LIKE blocks)"
                  " ON COMMIT DELETE ROWS;"
                  "CREATE TEMP TABLE IF NOT EXISTS bp_stage_transactions(LIKE transactions)"
                  " ON COMMIT DELETE ROWS;"
                  "CREATE TEMP TABLE IF NOT EXISTS bp_stage_logs(LIKE logs) ON COMMIT DELETE ROWS",
                  NULL, "creating the staging tables", err);
    s->have_stage = rc == 0;
    return rc;
}

/* Staged run: rows already stored are skipped; a stored block with another hash is an
 * error naming both. */
static int merge_stage(pg_sink *s, uint64_t lo, uint64_t hi, bp_error *err)
{
    char what[96];
    snprintf(what, sizeof(what), "blocks %" PRIu64 "..%" PRIu64 ": merging staged rows", lo, hi);
    PGresult *r = NULL;
    int rc = exec(s,
                  "INSERT INTO blocks SELECT * FROM bp_stage_blocks ON CONFLICT DO NOTHING;"
                  "INSERT INTO transactions SELECT * FROM bp_stage_transactions"
                  " ON CONFLICT DO NOTHING;"
                  "INSERT INTO logs SELECT * FROM bp_stage_logs ON CONFLICT DO NOTHING;"
                  "SELECT s.number, '0x' || encode(b.hash, 'hex'), '0x' || encode(s.hash, 'hex')"
                  " FROM bp_stage_blocks s JOIN blocks b ON b.chain = s.chain"
                  " AND b.number = s.number WHERE b.hash <> s.hash ORDER BY s.number LIMIT 1",
                  &r, what, err);
    if (rc == 0 && PQntuples(r) > 0)
        rc = bp_error_set(err, BP_EDB,
                          "block %s: table blocks already holds hash %s, cannot apply hash %s "
                          "(written by another process on another fork?)",
                          PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
    PQclear(r);
    return rc;
}

static int apply_run(pg_sink *s, const bp_batch *batch, const bp_event *ev, size_t n, bool staging,
                     bp_error *err)
{
    uint64_t lo = ev[0].block->number, hi = ev[n - 1].block->number;
    if (!staging)
        return copy_run(s, false, batch->chain, ev, n, err);
    int rc = exec(s, "TRUNCATE bp_stage_blocks, bp_stage_transactions, bp_stage_logs", NULL,
                  "emptying the staging tables", err);
    if (rc == 0)
        rc = copy_run(s, true, batch->chain, ev, n, err);
    return rc ? rc : merge_stage(s, lo, hi, err);
}

/* The digits of an even-length lower-case hex hash, "0x" + digits (EVM) or bare digits (Arch,
 * docs/ARCH.md): safe to splice into SQL as decode('...', 'hex'); NULL for anything else. */
static const char *hex_digits(const char *h)
{
    if (!h)
        return NULL;
    const char *d = h[0] == '0' && h[1] == 'x' ? h + 2 : h;
    size_t n = 0;
    for (const char *p = d; *p; p++, n++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return NULL;
    return n % 2 == 0 ? d : NULL;
}

/* "0x" + even-length lower-case hex. */
static bool plain_hex(const char *h)
{
    return h && h[0] == '0' && h[1] == 'x' && hex_digits(h);
}

/* REVERTs ev[0..n): delete the orphaned blocks' rows (by number and hash), one round trip. */
static int revert_run(pg_sink *s, const bp_event *ev, size_t n, bp_error *err)
{
    static const char *const fmt[] = {
        "DELETE FROM logs WHERE chain = %s AND block_number = %" PRIu64
        " AND block_hash = decode('%s', 'hex');",
        "DELETE FROM transactions WHERE chain = %s AND block_number = %" PRIu64
        " AND block_hash = decode('%s', 'hex');",
        "DELETE FROM blocks WHERE chain = %s AND number = %" PRIu64
        " AND hash = decode('%s', 'hex');",
    };
    bp_buf_reset(&s->sql);
    for (size_t i = 0; i < n; i++) {
        const bp_block *b = ev[i].block;
        if (!plain_hex(b->hash))
            return bp_error_set(err, BP_EINVAL, "revert block %" PRIu64 ": bad hash '%s'",
                                b->number, b->hash ? b->hash : "(none)");
        for (int k = 0; k < 3; k++)
            if (bp_buf_printf(&s->sql, fmt[k], s->chain_lit, b->number, b->hash + 2) != 0)
                return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    char what[96];
    snprintf(what, sizeof(what), "revert blocks %" PRIu64 "..%" PRIu64, ev[n - 1].block->number,
             ev[0].block->number);
    return exec(s, s->sql.data, NULL, what, err);
}

/* ---- batch ------------------------------------------------------------------------------ */

static int chain_literal(pg_sink *s, const char *chain, bp_error *err)
{
    if (s->chain && strcmp(s->chain, chain) == 0)
        return 0;
    free(s->chain);
    PQfreemem(s->chain_lit);
    s->chain = strdup(chain);
    s->chain_lit = PQescapeLiteral(s->conn, chain, strlen(chain));
    if (!s->chain || !s->chain_lit)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    return 0;
}

/* BEGIN and read our checkpoint: *done when it already is the batch's (written before). */
static int begin(pg_sink *s, const bp_batch *batch, bool *done, bp_error *err)
{
    *done = false;
    bp_buf_reset(&s->sql);
    if (bp_buf_printf(&s->sql,
                      "BEGIN; SELECT number, encode(hash, 'hex') FROM checkpoints"
                      " WHERE chain = %s AND output = %s",
                      s->chain_lit, s->output_lit) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    PGresult *r = NULL;
    int rc = exec(s, s->sql.data, &r, "BEGIN and read the checkpoint", err);
    const char *digits = hex_digits(batch->checkpoint.hash);
    if (rc == 0 && PQntuples(r) == 1 && batch->checkpoint.set && !batch->rewrite && digits)
        *done = strtoull(PQgetvalue(r, 0, 0), NULL, 10) == batch->checkpoint.number &&
                strcmp(PQgetvalue(r, 0, 1), digits) == 0;
    PQclear(r);
    return rc;
}

/* The checkpoint's resync floor as SQL: a number or NULL. */
static struct floor_text {
    char s[24];
} floor_lit(const bp_checkpoint *cp)
{
    struct floor_text t;
    if (cp->floor_set && cp->floor <= (uint64_t)INT64_MAX)
        snprintf(t.s, sizeof(t.s), "%" PRIu64, cp->floor);
    else
        snprintf(t.s, sizeof(t.s), "NULL");
    return t;
}

static int commit(pg_sink *s, const bp_checkpoint *cp, bp_error *err)
{
    bp_buf_reset(&s->sql);
    int rc;
    if (!cp->set)
        rc = bp_buf_printf(&s->sql, "DELETE FROM checkpoints WHERE chain = %s AND output = %s;",
                           s->chain_lit, s->output_lit);
    else if (!hex_digits(cp->hash) || cp->number > (uint64_t)INT64_MAX)
        return bp_error_set(err, BP_EINVAL, "checkpoint %" PRIu64 " %s: not storable", cp->number,
                            cp->hash);
    else
        rc = bp_buf_printf(&s->sql,
                           "INSERT INTO checkpoints(chain, output, number, hash, updated_at,"
                           " resync_floor) VALUES(%s, %s, %" PRIu64 ", decode('%s', 'hex'), now(),"
                           " %s) ON CONFLICT(chain, output) DO UPDATE SET number = excluded.number,"
                           " hash = excluded.hash, updated_at = excluded.updated_at,"
                           " resync_floor = excluded.resync_floor;",
                           s->chain_lit, s->output_lit, cp->number, hex_digits(cp->hash),
                           floor_lit(cp).s);
    if (rc != 0 || bp_buf_puts(&s->sql, "COMMIT") != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    char what[128];
    snprintf(what, sizeof(what), "%scheckpoint %" PRIu64 " and COMMIT",
             bp_pg_derived_pending(s->derived) ? "derived tables' rollups and retention, " : "",
             cp->number);
    rc = exec(s, s->sql.data, NULL, what, err);
    if (rc == 0 && s->derived)
        bp_pg_derived_committed(s->derived);
    return rc;
}

/* The derived rows der has of the APPLY run ev[0..n). */
static int derived_apply(pg_sink *s, const bp_derived *der, const bp_event *ev, size_t n,
                         bool staging, size_t *hint, bp_error *err)
{
    /* derived=prices: no rows of blocks, also where the tables hold chain_metrics' (they stay
     * as they are: `has`) or another output has the module compute them */
    if (!(s->has & s->base.derived_groups & BP_DG_BIT(BP_DG_CHAIN_METRICS)))
        return 0;
    if (n > s->run_cap) {
        const bp_block_derived **p = realloc(s->run, n * sizeof(*p));
        if (p)
            s->run = p;
        bp_block_derived *t = p ? realloc(s->trimmed, n * sizeof(*t)) : NULL;
        if (!t)
            return bp_error_set(err, BP_ENOMEM, "out of memory");
        s->trimmed = t;
        s->run_cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        const bp_block_derived *b = bp_derived_find(der, ev[i].block, hint);
        if (!b)
            return bp_error_set(err, BP_EINVAL,
                                "block %" PRIu64 ": the batch has no derived rows for it",
                                ev[i].block->number);
        s->run[i] = bp_derived_trim(b, s->has, &s->trimmed[i]);
    }
    return bp_pg_derived_apply(s->derived, s->conn, der, s->run, n, staging, err);
}

static int derived_revert(pg_sink *s, const bp_batch *batch, const bp_event *ev, size_t n,
                          bp_error *err)
{
    for (size_t i = 0; i < n; i++) {
        int rc = bp_pg_derived_revert(s->derived, s->conn, batch->chain, ev[i].block, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* A run of events of one kind: its raw rows and, with derived tables, their rows (der: the
 * APPLYs' are written; NULL: only the REVERTs take theirs out, or the APPLYs' come later). */
static int write_run(pg_sink *s, const bp_batch *batch, const bp_event *ev, size_t n, bool staging,
                     bool derived, const bp_derived *der, size_t *hint, bp_error *err)
{
    if (ev[0].kind == BP_EVENT_APPLY) {
        int rc = apply_run(s, batch, ev, n, staging, err);
        return rc || !derived || !der ? rc : derived_apply(s, der, ev, n, staging, hint, err);
    }
    int rc = derived ? derived_revert(s, batch, ev, n, err) : 0;
    return rc ? rc : revert_run(s, ev, n, err);
}

static bool has_revert(const bp_batch *batch)
{
    for (size_t i = 0; i < batch->count; i++)
        if (batch->events[i].kind == BP_EVENT_REVERT)
            return true;
    return false;
}

/* A batch without REVERTs is one APPLY run: its raw rows are COPYed while the metrics module
 * may still be computing the derived rows (bp_batch.derived_job), which follow in the same
 * transaction; they read nothing of the raw rows but a minute's transactions at the end. The
 * chain's advisory lock is taken first either way (bp_pg_derived_begin), so writers of a
 * chain take their locks in the same order as before; only the prices wait for the rows.
 * A REVERT reads its block's derived rows and raw rows before they go: such a batch takes the
 * derived rows first. */
static int write_events(pg_sink *s, const bp_batch *batch, bool staging, bool hold, bp_error *err)
{
    /* a chain's blocks are of one family; no derived rows: the analytics are EVM's */
    if (batch->count && batch->events[0].block->family == BP_FAMILY_ARCH)
        return bp_pg_arch_write(s->arch, s->conn, batch, staging, s->sqlstate, err);
    bool metrics = s->metrics && (batch->derived || batch->derived_job);
    bool revert = has_revert(batch);
    /* with metrics off only a batch that reverts touches the derived tables */
    bool derived = s->derived && (metrics || revert);
    bool late = metrics && !revert;
    const bp_derived *der = NULL;
    size_t hint = 0;
    int rc = metrics && !late ? bp_batch_derived(batch, &der, err) : 0;
    if (rc == 0 && derived)
        rc = bp_pg_derived_begin(s->derived, s->conn, batch->chain, der, revert, err);
    for (size_t i = 0; rc == 0 && i < batch->count;) {
        size_t j = i + 1;
        while (j < batch->count && batch->events[j].kind == batch->events[i].kind)
            j++;
        rc = write_run(s, batch, batch->events + i, j - i, staging, derived, der, &hint, err);
        if (rc == 0 && late)
            bp_crashpoint("postgres.before_late_derived"); /* raw rows only, uncommitted */
        if (rc == 0 && late && (rc = bp_batch_derived(batch, &der, err)) == 0)
            rc = bp_pg_derived_prices(s->derived, s->conn, der, err);
        if (rc == 0 && late)
            rc = derived_apply(s, der, batch->events + i, j - i, staging, &hint, err);
        i = j;
    }
    if (rc == 0 && derived)
        rc = bp_pg_derived_finish(s->derived, s->conn, der, hold, err);
    if (rc != 0 && derived && !s->sqlstate[0])
        snprintf(s->sqlstate, sizeof(s->sqlstate), "%s", bp_pg_derived_sqlstate(s->derived));
    return rc;
}

/* Ends the batch's (or group's) transaction after rc: on failure rolled back, and what the
 * derived tables held with it forgotten. */
static int end_transaction(pg_sink *s, int rc)
{
    if (rc != 0 && s->conn && PQstatus(s->conn) == CONNECTION_OK &&
        PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
        bp_pg_wait_begin(s->conn);
        PQclear(PQexec(s->conn, "ROLLBACK"));
        bp_pg_wait_end(s->conn);
    }
    if (rc != 0 && s->derived) /* temporary tables created in the rolled-back transaction */
        bp_pg_derived_reset(s->derived);
    if (rc != 0)
        bp_pg_arch_reset(s->arch);
    s->in_group = s->base.holds_open = false;
    return rc;
}

/* Behind the head (bp_batch.more) several batches share one transaction: each one's raw and
 * per-block rows are written as it comes (its blocks are freed as before), what the group's
 * batches rewrite (the hot contracts' open hour and day, a minute two batches share, the 1h and
 * 1d rollups) is held and written once, with the checkpoint, by the batch that ends the group
 * (the first without more: at the head, a REVERT, the pipeline's bounds), flush or close. A
 * crash mid-group loses the open transaction whole, its checkpoint with it. */
static int write_once(pg_sink *s, const bp_batch *batch, bool staging, bp_error *err)
{
    bool done = false, group = s->in_group;
    bool hold = batch->more && !has_revert(batch) && batch->count &&
                batch->events[0].block->family != BP_FAMILY_ARCH;
    s->sqlstate[0] = '\0';
    int rc = chain_literal(s, batch->chain, err);
    if (rc == 0 && staging && !group)
        rc = make_stage(s, err);
    if (rc == 0 && !group)
        rc = begin(s, batch, &done, err);
    if (rc == 0 && group)
        bp_crashpoint("postgres.mid_group");
    if (rc == 0 && !group && batch->count)
        s->group_first = batch->events[0].block->number;
    if (rc != 0)
        goto out;
    if (done && bp_pg_arch_has_events(batch)) { /* the checkpoint again: its resync floor */
        rc = bp_pg_arch_write_events(s->arch, s->conn, batch, s->sqlstate, err);
        if (rc == 0)
            rc = commit(s, &batch->checkpoint, err);
        goto out;
    }
    if (done) {
        bp_debug("postgres %s: batch up to %" PRIu64 " is already committed", s->t.where,
                 batch->checkpoint.number);
        rc = exec(s, "ROLLBACK", NULL, "ROLLBACK", err);
        goto out;
    }
    rc = write_events(s, batch, staging, hold, err);
    if (rc == 0 && hold) {
        s->in_group = s->base.holds_open = true;
        s->group_cp = batch->checkpoint;
        return 0;
    }
    if (rc == 0)
        bp_crashpoint("postgres.before_commit");
    if (rc == 0)
        rc = commit(s, &batch->checkpoint, err);
out:
    return end_transaction(s, rc);
}

/* ---- the chains' writer locks ---------------------------------------------------------- */

/* A writer lock is the session-level advisory lock (PG_LOCK_CLASS, key), which pg_locks shows
 * as classid PG_LOCK_CLASS, objid key, objsubid 2. The key is FNV-1a over the schema, the
 * checkpoint name and the chain: processes writing a chain into the same tables under the
 * same checkpoint name exclude each other; a backfill of a range under a checkpoint name of
 * its own does not (docs/ARCHITECTURE.md "Chains over several hosts"). */
#define PG_LOCK_CLASS 1651534192 /* "bpip" */
#define PG_LOCK_CLASS_TEXT "1651534192"

static int32_t lock_key(const pg_sink *s, const char *chain)
{
    const char *parts[] = {s->t.schema, s->t.checkpoint, chain};
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < 3; i++) {
        const unsigned char *p = (const unsigned char *)parts[i];
        do /* the NUL too: it separates the parts */
            h = (h ^ *p) * 16777619u;
        while (*p++);
    }
    return (int32_t)(h & 0x7fffffff); /* positive: objid is an oid */
}

/* Who holds lock key, as far as pg_stat_activity tells this role; *who its session (pid 0:
 * none found, it let go meanwhile). */
static void lock_holder(pg_sink *s, int32_t key, char *out, size_t cap, pg_session *who)
{
    char k[16];
    snprintf(k, sizeof(k), "%" PRId32, key);
    const char *params[] = {k};
    bp_pg_wait_begin(s->conn);
    PGresult *r = PQexecParams(
        s->conn,
        "SELECT l.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'),"
        " coalesce(to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ'), '?'),"
        " coalesce((extract(epoch FROM a.backend_start) * 1000000)::bigint::text, '')"
        " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = " PG_LOCK_CLASS_TEXT
        " AND l.objid = $1::bigint::oid AND l.objsubid = 2 LIMIT 1",
        1, NULL, params, NULL, NULL, 0);
    bp_pg_wait_end(s->conn);
    *who = (pg_session){0};
    if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        who->pid = atoi(PQgetvalue(r, 0, 0));
        snprintf(who->start, sizeof(who->start), "%s", PQgetvalue(r, 0, 4));
        snprintf(out, cap, "'%s' (PostgreSQL backend %s, from %s, connected %s)",
                 PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 2),
                 PQgetvalue(r, 0, 3));
    } else
        snprintf(out, cap, "another session (gone since)");
    PQclear(r);
}

static int try_lock(pg_sink *s, int32_t key, bool *got, bp_error *err)
{
    char sql[96];
    snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock(%d, %" PRId32 ")", PG_LOCK_CLASS, key);
    PGresult *r = NULL;
    int rc = bp_pg_exec(s->conn, sql, &r, "taking the chain's writer lock", err);
    *got = rc == 0 && PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return rc;
}

/* How long lock_again waits for our former session to end: within the call's timeout. */
static long end_wait_ms(const pg_sink *s)
{
    long ms = s->t.timeout > 0 ? 500L * s->t.timeout : 5000;
    return ms < 5000 ? ms : 5000;
}

/* Ends session `former` (pg_terminate_backend: allowed on a session of one's own role) and
 * waits for its locks to go: *got once key is ours. The one-argument form, which every
 * server has, and a poll: pg_terminate_backend(pid, timeout) is PostgreSQL 14's. */
static int end_former(pg_sink *s, pg_claim *c, const pg_session *former, bool *got, bp_error *err)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = %d AND"
             " (extract(epoch FROM backend_start) * 1000000)::bigint::text = '%s'",
             former->pid, former->start);
    PGresult *r = NULL;
    int rc = bp_pg_exec(s->conn, sql, &r, "ending our former session", err);
    bool sent = rc == 0 && PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    char why[BP_ERROR_MSG_MAX] = "";
    if (rc != 0 && PQstatus(s->conn) == CONNECTION_OK) { /* refused: said below */
        snprintf(why, sizeof(why), "%s", err->msg);
        bp_error_clear(err);
        rc = 0;
    }
    /* its locks go when it has exited: soon after the signal */
    for (long waited = 0; rc == 0 && !*got; waited += 50) {
        rc = try_lock(s, c->key, got, err);
        if (rc != 0 || *got || !sent || waited >= end_wait_ms(s))
            break;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (rc == 0 && *got)
        bp_warn("postgres %s: chain '%s': its writer lock was still held by this process's "
                "session from before the connection was cut (PostgreSQL backend %d, which the "
                "server had not yet seen go): ended it, and took the lock again",
                s->t.where, c->chain, former->pid);
    bool still = false; /* the lock still held by that session, not by one that came after it */
    if (rc == 0 && !*got) {
        pg_session who = {0};
        lock_holder(s, c->key, c->holder, sizeof(c->holder), &who);
        still = who.pid == former->pid && strcmp(who.start, former->start) == 0;
    }
    if (rc == 0 && still && (why[0] || sent)) { /* relock sets the claim lost: say what to do */
        c->own = true;
        snprintf(c->holder, sizeof(c->holder),
                 "this process's own former session (PostgreSQL backend %d, whose connection "
                 "was cut; end it with SELECT pg_terminate_backend(%d))",
                 former->pid, former->pid);
        bp_err("postgres %s: chain '%s': its writer lock is still held by this process's former "
               "session (PostgreSQL backend %d), whose connection was cut and which the server "
               "has not yet seen go; %s%s. End it as a role allowed to (SELECT "
               "pg_terminate_backend(%d)); else it goes when its statement ends or the server "
               "notices the connection is gone (tcp_keepalives_idle)",
               s->t.where, c->chain, former->pid, why[0] ? "ending it failed: " : "",
               why[0] ? why : "it did not end when told to", former->pid);
    }
    return rc;
}

/* Takes key; when it is held by `former`, our own session before the connection dropped
 * (the server has not noticed yet: a statement the watchdog cut goes on, waiting for a lock
 * or building an index), ends that session and tries again. Safe: nothing else of ours runs
 * in it, its transaction is one we write again (a COMMIT that went through is found by the
 * checkpoint), and the pid with its start names that session, never a later one. */
static int lock_again(pg_sink *s, pg_claim *c, const pg_session *former, bool *got, bp_error *err)
{
    pg_session who = {0};
    int rc = try_lock(s, c->key, got, err);
    if (rc == 0 && !*got)
        lock_holder(s, c->key, c->holder, sizeof(c->holder), &who);
    if (rc == 0 && !*got && who.pid != 0 && who.pid == former->pid && former->start[0] &&
        strcmp(who.start, former->start) == 0)
        rc = end_former(s, c, former, got, err);
    return rc;
}

/* After a reconnect: the locks went with the old session; take them again. */
static int relock(pg_sink *s, const pg_session *former, bp_error *err)
{
    for (size_t i = 0; i < s->claim_count; i++) {
        pg_claim *c = &s->claims[i];
        bool got = false;
        int rc = c->lost ? 0 : lock_again(s, c, former, &got, err);
        if (rc != 0)
            return rc;
        if (!c->lost && !got) {
            c->lost = true;
            if (!c->own) /* end_former said why */
                bp_err("postgres %s: chain '%s': its writer lock went with the lost connection and "
                       "%s took it meanwhile: this process no longer writes the chain",
                       s->t.where, c->chain, c->holder);
        }
    }
    return 0;
}

/* Saves the new connection's session (lock_again ends it if a cut leaves it holding a lock).
 * Not a failure when it cannot: the session is then not known as ours later, nothing more; and
 * the locks are taken again after it all the same (ensure_conn). */
static void remember_session(pg_sink *s)
{
    s->session = (pg_session){.pid = PQbackendPID(s->conn)};
    PGresult *r = NULL;
    bp_error e = {0};
    if (bp_pg_exec(s->conn,
                   "SELECT (extract(epoch FROM backend_start) * 1000000)::bigint::text"
                   " FROM pg_stat_activity WHERE pid = pg_backend_pid()",
                   &r, "reading our session's start", &e) == 0 &&
        PQntuples(r) == 1)
        snprintf(s->session.start, sizeof(s->session.start), "%s", PQgetvalue(r, 0, 0));
    else
        bp_debug("postgres %s: %s", s->t.where, e.msg[0] ? e.msg : "our session is not listed");
    PQclear(r);
}

/* The pipeline's health view (bp_sink.on_retry): the output waits to try again. */
static void tell_retrying(pg_sink *s, const bp_error *why)
{
    if (s->base.on_retry)
        s->base.on_retry(s->base.on_retry_ctx, &s->base, why);
}

static void retrying_cb(void *ctx, const bp_error *why)
{
    tell_retrying(ctx, why);
}

/* A connection, the lost one replaced. Errors do not name s->t.where (the callers' do). */
static int ensure_conn(pg_sink *s, bp_error *err)
{
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK)
        return 0;
    pg_session former = s->session; /* PQbackendPID says 0 once the connection is bad */
    /* a server that stopped answering: said with each failure to reconnect that follows */
    if (s->conn && bp_pg_timed_out(s->conn))
        s->timed_out = bp_pg_timed_out(s->conn);
    char why[96] = "connection lost";
    if (s->timed_out)
        snprintf(why, sizeof(why), "no answer within %d s (timeout=%d)", s->timed_out,
                 s->timed_out);
    PQfinish(s->conn);
    s->conn = NULL;
    s->have_stage = false;
    if (s->derived)
        bp_pg_derived_reset(s->derived);
    bp_pg_arch_reset(s->arch);
    if (!s->down_since_ms) {
        s->down_since_ms = bp_pg_now_ms();
        bp_warn("postgres %s: %s; reconnecting (up to %d s)", s->t.where, why, s->t.wait_for_db);
    }
    bp_error lost;
    bp_error_set(&lost, BP_ETRANSPORT, "%s; reconnecting", why);
    tell_retrying(s, &lost);
    bp_pg_waiter w = {.retrying = retrying_cb, .ctx = s};
    int rc = bp_pg_reconnect(&s->t, s->down_since_ms, &w, &s->conn, err);
    if (rc != 0 && s->timed_out)
        bp_error_prefix(err, "%s, then ", why);
    if (rc == 0) {
        s->timed_out = 0;
        s->down_since_ms = 0;
        remember_session(s);
    }
    return rc ? rc : relock(s, &former, err);
}

static pg_claim *find_claim(pg_sink *s, const char *chain)
{
    for (size_t i = 0; i < s->claim_count; i++)
        if (strcmp(s->claims[i].chain, chain) == 0)
            return &s->claims[i];
    return NULL;
}

static int pg_claim_chain(bp_sink *base, const char *chain, char *holder, size_t cap, bp_error *err)
{
    pg_sink *s = (pg_sink *)base;
    pg_claim *c = find_claim(s, chain);
    if (c && !c->lost)
        return 0;
    int32_t key = lock_key(s, chain);
    pg_session who;
    bool got = false;
    int rc = ensure_conn(s, err);
    if (rc == 0)
        rc = try_lock(s, key, &got, err);
    if (rc != 0)
        return bp_error_prefix(err, "%s: ", s->t.where);
    if (!got) {
        lock_holder(s, key, holder, cap, &who);
        return bp_error_set(err, BP_EBUSY, "%s: chain '%s' is written by %s", s->t.where, chain,
                            holder);
    }
    if (!c && s->claim_count == s->claim_cap) {
        size_t ncap = s->claim_cap ? 2 * s->claim_cap : 8;
        pg_claim *n = realloc(s->claims, ncap * sizeof(*n));
        if (!n)
            return bp_error_set(err, BP_ENOMEM, "out of memory");
        s->claims = n;
        s->claim_cap = ncap;
    }
    if (!c) {
        c = &s->claims[s->claim_count];
        *c = (pg_claim){.chain = strdup(chain), .key = key};
        if (!c->chain)
            return bp_error_set(err, BP_ENOMEM, "out of memory");
        s->claim_count++;
    }
    c->lost = c->own = false;
    bp_info("postgres %s: chain '%s': writer lock taken (advisory lock %d/%" PRId32 ")", s->t.where,
            chain, PG_LOCK_CLASS, key);
    return 0;
}

static void pg_unclaim_chain(bp_sink *base, const char *chain)
{
    pg_sink *s = (pg_sink *)base;
    pg_claim *c = find_claim(s, chain);
    if (!c)
        return;
    if (!c->lost && s->conn && PQstatus(s->conn) == CONNECTION_OK) {
        char sql[96];
        snprintf(sql, sizeof(sql), "SELECT pg_advisory_unlock(%d, %" PRId32 ")", PG_LOCK_CLASS,
                 c->key);
        bp_pg_wait_begin(s->conn);
        PQclear(PQexec(s->conn, sql));
        bp_pg_wait_end(s->conn);
    }
    free(c->chain);
    *c = s->claims[--s->claim_count];
}

/* A chain whose lock another session took while we were disconnected is not ours to write. */
static int check_claim(pg_sink *s, const char *chain, bp_error *err)
{
    const pg_claim *c = find_claim(s, chain);
    if (!c || !c->lost)
        return 0;
    return bp_error_set(err, BP_ELOCKLOST,
                        "chain '%s': its writer lock went with a lost connection and %s holds it "
                        "now: not writing it (%s)",
                        chain, c->holder,
                        c->own ? "nothing does until that session is gone" : "its holder does");
}

/* A session-level lock is ours while the session lives: one round trip tells, and a session
 * found dead is replaced (its locks taken again, or found taken: BP_ELOCKLOST). */
static int pg_check(bp_sink *base, const char *chain, bp_error *err)
{
    pg_sink *s = (pg_sink *)base;
    const pg_claim *c = find_claim(s, chain);
    if (!c)
        return 0;
    int rc = c->lost ? 0 : ensure_conn(s, err);
    if (rc == 0 && !c->lost) {
        PGresult *r = NULL;
        rc = bp_pg_exec(s->conn, "SELECT 1", &r, "checking the chain's writer lock", err);
        PQclear(r);
        if (rc != 0 && PQstatus(s->conn) != CONNECTION_OK) {
            bp_error_clear(err);
            rc = ensure_conn(s, err);
        }
    }
    if (rc == 0)
        rc = check_claim(s, chain, err);
    return rc ? bp_error_prefix(err, "%s: ", s->t.where) : 0;
}

/* The derived tables' lookup indexes (pg_derived.h), once per handle, when its writes reach
 * the head or it closes: a backfill writes its token transfers without keeping an index on
 * them up to date, and the index is one sort over the finished table. Under the migrations'
 * lock: two processes making it at once would collide in the catalog. */
static void make_lookup_indexes(pg_sink *s)
{
    s->lookup_tried = true;
    char *lit = PQescapeLiteral(s->conn, s->t.schema, strlen(s->t.schema));
    bp_buf_reset(&s->sql);
    bp_error err;
    int rc = !lit || bp_buf_printf(&s->sql,
                                   "SELECT pg_advisory_xact_lock(hashtext('blockpipe migrate ' ||"
                                   " %s)); %s",
                                   lit, bp_pg_derived_lookup_indexes) != 0
                 ? bp_error_set(&err, BP_ENOMEM, "out of memory")
                 : bp_pg_run(s->conn, s->sql.data, NULL, s->sqlstate,
                             "creating token_transfers_token_idx", &err);
    PQfreemem(lit);
    s->lookup_made = rc == 0;
    if (rc != 0)
        bp_warn("postgres %s: %s (tried again at close)", s->t.where, err.msg);
}

/* Whether the handle makes its lookup indexes after batch: the first batch at the pipeline's
 * target (bp_batch.head) of an output that writes the derived tables. */
static bool lookup_due(const pg_sink *s, const bp_batch *batch)
{
    return s->base.derived && !s->lookup_tried && batch->head;
}

/* Whether the stored checkpoint is cp (a COMMIT whose reply was lost went through). */
static bool stored_is(pg_sink *s, const char *chain, const bp_checkpoint *cp)
{
    bp_error e = {0};
    bp_checkpoint now;
    return cp->set && s->base.ops->checkpoint(&s->base, chain, &now, &e) == 0 && now.set &&
           now.number == cp->number && strcmp(now.hash, cp->hash) == 0;
}

/* A failure with the transaction open since an earlier batch: that batch and every one after
 * it are rolled back too, which the pipeline counts written. Not transient (a retry would
 * write this batch alone, after a gap): the output stops or is set aside, and the pipeline
 * goes back to the checkpoint it reads then, as a restart would. */
static int group_lost(pg_sink *s, bp_error *err)
{
    s->lost = s->base.rewind = true;
    bp_error_prefix(err,
                    "%s: the batches held in one transaction since block %" PRIu64
                    " were rolled back with this failure (written again from the checkpoint): ",
                    s->t.where, s->group_first);
    err->code = BP_EDB;
    return BP_EDB;
}

static int pg_write(bp_sink *base, const bp_batch *batch, bp_error *err)
{
    pg_sink *s = (pg_sink *)base;
    bool staging = s->t.staging || s->conflicted;
    if (s->lost)
        return bp_error_set(err, BP_EDB,
                            "%s: batches this output held in one transaction were rolled back; "
                            "it writes again once the pipeline went back to its checkpoint",
                            s->t.where);
    for (int attempt = 1;; attempt++) {
        bool group = s->in_group;
        int rc = ensure_conn(s, err);
        /* no connection within wait_for_db of the loss: another try would only try once more */
        bool down = rc != 0 && !s->conn;
        if (rc == 0)
            rc = check_claim(s, batch->chain, err);
        if (rc == 0)
            rc = write_once(s, batch, staging, err);
        else if (group)
            rc = end_transaction(s, rc);
        if (rc == 0 && lookup_due(s, batch))
            make_lookup_indexes(s);
        if (rc == 0)
            return 0;
        s->conflicted |= rc == BP_EDB && strcmp(s->sqlstate, "23505") == 0;
        if (group && !(bp_error_is_transient(rc) && stored_is(s, batch->chain, &batch->checkpoint)))
            return group_lost(s, err);
        if (group)
            return 0; /* the group's COMMIT went through; its reply was lost */
        if (rc == BP_EDB && !staging && strcmp(s->sqlstate, "23505") == 0) {
            bp_info("postgres %s: blocks already stored (another writer?); writing the batch "
                    "again through the staging tables",
                    s->t.where);
            staging = true;
            continue;
        }
        bool again =
            !down && (bp_error_is_transient(rc) || (rc == BP_EDB && bp_pg_retryable(s->sqlstate)));
        if (!again || attempt >= PG_MAX_ATTEMPTS) {
            s->write_failed = true; /* no index made at close: the server just refused a write */
            return bp_error_prefix(err, "%s: ", s->t.where);
        }
        bp_warn("postgres %s: %s; writing the batch again (attempt %d of %d)", s->t.where, err->msg,
                attempt + 1, PG_MAX_ATTEMPTS);
        tell_retrying(s, err);
    }
}

/* ---- reads ------------------------------------------------------------------------------ */

/* A parameterized query, reconnecting once when the connection was lost. */
static int query(pg_sink *s, const char *sql, const char *const *params, int n, PGresult **res,
                 const char *what, bp_error *err)
{
    for (int attempt = 1;; attempt++) {
        int rc = ensure_conn(s, err);
        if (rc != 0)
            return bp_error_prefix(err, "%s: %s: ", s->t.where, what);
        bp_pg_wait_begin(s->conn);
        PGresult *r = PQexecParams(s->conn, sql, n, NULL, params, NULL, NULL, 0);
        bp_pg_wait_end(s->conn);
        if (r && PQresultStatus(r) == PGRES_TUPLES_OK) {
            *res = r;
            return 0;
        }
        rc = failed(s, r, what, err);
        PQclear(r);
        if (!bp_error_is_transient(rc) || attempt == 2)
            return bp_error_prefix(err, "%s: ", s->t.where);
    }
}

static int pg_checkpoint(bp_sink *base, const char *chain, bp_checkpoint *out, bp_error *err)
{
    pg_sink *s = (pg_sink *)base;
    memset(out, 0, sizeof(*out));
    s->lost = s->base.rewind = false; /* the pipeline resumes from what this reads */
    const char *params[] = {chain, s->t.checkpoint};
    PGresult *r = NULL;
    int rc = query(s,
                   "SELECT number, " BP_PG_ARCH_CP_HASH("$1") ", resync_floor FROM checkpoints"
                                                              " WHERE chain = $1 AND output = $2",
                   params, 2, &r, "reading the checkpoint", err);
    if (rc == 0 && PQntuples(r) == 1) {
        out->set = true;
        out->number = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        snprintf(out->hash, sizeof(out->hash), "%s", PQgetvalue(r, 0, 1));
        out->floor_set = !PQgetisnull(r, 0, 2);
        out->floor = out->floor_set ? strtoull(PQgetvalue(r, 0, 2), NULL, 10) : 0;
    }
    PQclear(r);
    return rc;
}

static int pg_recent(bp_sink *base, const char *chain, bp_checkpoint *out, size_t max, size_t *n,
                     bp_error *err)
{
    pg_sink *s = (pg_sink *)base;
    char lim[24];
    snprintf(lim, sizeof(lim), "%zu", max);
    const char *params[] = {chain, s->t.checkpoint, lim};
    PGresult *r = NULL;
    *n = 0;
    /* Only at or below our checkpoint: another writer may have stored blocks above it. A
     * chain's blocks are in one of the two tables (its family's). */
    int rc = query(s,
                   "WITH cp AS (SELECT coalesce((SELECT number FROM checkpoints WHERE chain = $1"
                   " AND output = $2), -1) AS n)"
                   " (SELECT number, '0x' || encode(hash, 'hex') FROM blocks WHERE chain = $1"
                   " AND number <= (SELECT n FROM cp) ORDER BY number DESC LIMIT $3::bigint)"
                   " UNION ALL (SELECT height, encode(hash, 'hex') FROM arch_blocks WHERE"
                   " chain = $1 AND height <= (SELECT n FROM cp) ORDER BY height DESC"
                   " LIMIT $3::bigint) ORDER BY 1 DESC LIMIT $3::bigint",
                   params, 3, &r, "reading recent blocks", err);
    for (int i = 0; rc == 0 && i < PQntuples(r) && *n < max; i++) {
        bp_checkpoint *c = &out[(*n)++];
        c->set = true;
        c->number = strtoull(PQgetvalue(r, i, 0), NULL, 10);
        snprintf(c->hash, sizeof(c->hash), "%s", PQgetvalue(r, i, 1));
    }
    PQclear(r);
    return rc;
}

/* ---- open / close ----------------------------------------------------------------------- */

/* Commits a group held open (the writer thread when no batch came for a while, a stop). */
static int pg_flush(bp_sink *base, bp_error *err)
{
    pg_sink *s = (pg_sink *)base;
    if (!s->in_group)
        return 0;
    int rc = s->derived ? bp_pg_derived_settle(s->derived, s->conn, err) : 0;
    if (rc == 0)
        bp_crashpoint("postgres.before_commit");
    if (rc == 0)
        rc = commit(s, &s->group_cp, err);
    rc = end_transaction(s, rc);
    if (rc != 0 && bp_error_is_transient(rc) && stored_is(s, s->chain, &s->group_cp))
        return 0; /* the COMMIT went through; its reply was lost */
    return rc ? group_lost(s, err) : 0;
}

static void pg_close(bp_sink *base)
{
    pg_sink *s = (pg_sink *)base;
    if (!s)
        return;
    bp_error e = {0};
    if (s->in_group && pg_flush(base, &e) != 0)
        bp_err("%s", e.msg);
    if (s->base.derived && s->conn && PQstatus(s->conn) == CONNECTION_OK &&
        PQtransactionStatus(s->conn) == PQTRANS_IDLE && !s->lookup_made && !s->write_failed)
        make_lookup_indexes(s);
    PQfinish(s->conn); /* lets go of the writer locks */
    for (size_t i = 0; i < s->claim_count; i++)
        free(s->claims[i].chain);
    free(s->claims);
    for (int t = 0; t < T_COUNT; t++) {
        bp_buf_release(&s->data[t]);
        bp_buf_release(&s->cols[t]);
    }
    bp_buf_release(&s->sql);
    bp_buf_release(&s->sql2);
    bp_buf_release(&s->json);
    free(s->chain);
    PQfreemem(s->chain_lit);
    PQfreemem(s->output_lit);
    bp_pg_target_release(&s->t);
    bp_pg_derived_free(s->derived);
    bp_pg_arch_free(s->arch);
    free(s->run);
    free(s->trimmed);
    free(s);
}

static int pg_open(bp_sink **out, const char *target, const bp_sink_opts *opts, bp_error *err)
{
    *out = NULL;
    pg_sink *s = calloc(1, sizeof(*s));
    if (!s)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    int rc = 0;
    for (int t = 0; t < T_COUNT; t++) {
        bp_buf_init(&s->data[t], 0);
        bp_buf_init(&s->cols[t], 0);
        rc |= bp_sql_columns(&s->cols[t], (bp_table)t);
    }
    bp_buf_init(&s->sql, PG_SQL_MAX);
    bp_buf_init(&s->sql2, 0);
    bp_buf_init(&s->json, 0);
    rc = rc ? bp_error_set(err, BP_ENOMEM, "out of memory")
            : bp_pg_target_init(&s->t, target, opts, err);
    if (rc == 0)
        rc = bp_pg_connect(&s->t, &s->conn, err);
    if (rc == 0)
        remember_session(s);
    if (rc == 0)
        rc = bp_pg_migrate(s->conn, &s->t, NULL, NULL, err);
    if (rc == 0 &&
        !(s->output_lit = PQescapeLiteral(s->conn, s->t.checkpoint, strlen(s->t.checkpoint))))
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    if (rc == 0) { /* also with metrics off: REVERTs take out the rows written while on */
        bp_retention ret;
        bp_retention_from_opts(opts, &ret);
        unsigned groups = 0;
        rc = bp_derived_groups_of(opts, &groups, err);
        s->metrics = groups != 0;
        if (rc == 0 && bp_pg_derived_select(s->conn, s->t.schema, groups, &s->has, err) != 0)
            rc = bp_error_prefix(err, "%s: ", s->t.where);
        if (rc == 0)
            rc = bp_pg_derived_new(&ret, s->has, &s->derived, err);
        s->base.derived = rc == 0 && s->metrics;
        s->base.derived_groups = groups;
        s->base.derived_late = s->base.derived;
        /* its blocks get no derived rows: a lazy window's set must not take their senders */
        if (rc == 0 && !(groups & BP_DG_BIT(BP_DG_CHAIN_METRICS)))
            rc = bp_pg_derived_unlazy(s->conn, s->has, err);
    }
    if (rc == 0)
        rc = bp_pg_arch_new(&s->arch, err);
    s->base.families = 1u << BP_FAMILY_ARCH;
    s->base.retries_own = true; /* a lost connection: reconnected within wait_for_db, once */
    if (rc != 0) {
        pg_close(&s->base);
        return rc;
    }
    bp_info("postgres %s: schema \"%s\", checkpoint name \"%s\"", s->t.where, s->t.schema,
            s->t.checkpoint);
    *out = &s->base;
    return 0;
}

static int pg_migrate(const char *target, const bp_sink_opts *opts, char *report, size_t cap,
                      bp_error *err)
{
    bp_pg_target t;
    PGconn *conn = NULL;
    int from = 0, to = 0;
    int rc = bp_pg_target_init(&t, target, opts, err);
    if (rc != 0)
        return rc;
    rc = bp_pg_connect(&t, &conn, err);
    if (rc == 0)
        rc = bp_pg_migrate(conn, &t, &from, &to, err);
    if (rc == 0 && from == to)
        snprintf(report, cap, "schema \"%s\" at %s is up to date (version %d)", t.schema, t.where,
                 to);
    else if (rc == 0)
        snprintf(report, cap, "schema \"%s\" at %s migrated from version %d to %d", t.schema,
                 t.where, from, to);
    PQfinish(conn);
    bp_pg_target_release(&t);
    return rc;
}

static const bp_sink_option g_options[] = {
    {.name = "schema",
     .flag = "pg-schema",
     .env = "PG_SCHEMA",
     .key = "pg_schema",
     .type = BP_SINK_OPT_STRING,
     .arg = "NAME",
     .def = BP_PG_DEFAULT_SCHEMA,
     .help = "schema of the tables, created if missing"},
    BP_SINK_OPTION_WAIT_FOR_DB("30"),
    {.name = "timeout",
     .flag = "pg-timeout",
     .env = "PG_TIMEOUT",
     .key = "pg_timeout",
     .type = BP_SINK_OPT_INT,
     .arg = "S",
     .def = "300",
     .min = 0,
     .max = 86400,
     .help = "seconds one round trip may wait for the server; longer counts as a lost "
             "connection (a server that stopped answering: reconnect within wait_for_db, "
             "then fail); 0: wait forever"},
    BP_SINK_OPTION_CHECKPOINT_NAME(BP_PG_DEFAULT_CHECKPOINT),
    {.name = "mode",
     .type = BP_SINK_OPT_ENUM,
     .arg = "MODE",
     .def = "auto",
     .choices = "auto|staging",
     .help = "staging: always write through staging tables and INSERT ... ON CONFLICT "
             "(for benchmarks; auto stages only a batch that meets rows already stored)"},
    BP_METRICS_SINK_OPTIONS,
};

static const char *const g_aliases[] = {"postgresql", NULL};

const bp_sink_ops bp_sink_postgres_ops = {
    .scheme = "postgres",
    .aliases = g_aliases,
    .title = "PostgreSQL",
    .usage = "postgres://user:pass@host:port/db",
    .description = "PostgreSQL: tables with numeric(78,0) amounts and bytea hashes, binary COPY, "
                   "one transaction per batch (per group of batches behind the head)",
    .options = g_options,
    .option_count = sizeof(g_options) / sizeof(g_options[0]),
    .open = pg_open,
    .checkpoint = pg_checkpoint,
    .recent = pg_recent,
    .write = pg_write,
    .flush = pg_flush,
    .close = pg_close,
    .claim = pg_claim_chain,
    .unclaim = pg_unclaim_chain,
    .check = pg_check,
    .migrate = pg_migrate,
    .open_reader = bp_pg_open_reader,
    .read = bp_pg_read,
    .close_reader = bp_pg_close_reader,
};
