/* pg_arch.c - the Arch tables of the PostgreSQL output. */
#include "sink/pg_arch.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch_rows.h"
#include "arch/arch_tables.h"
#include "sink/pg_conn.h"
#include "sink/pg_copy.h"
#include "sink/sqlgen.h"

/* The tables an APPLY writes, in arch_tables.h order (arch_events is the events' own). */
enum { A_BLOCKS, A_TXS, A_ACCOUNTS, A_COUNT };
_Static_assert((int)A_COUNT == (int)BP_ARCH_EVENTS, "the APPLY tables come before arch_events");

static const char *const g_stage[A_COUNT] = {"bp_stage_arch_blocks", "bp_stage_arch_transactions",
                                             "bp_stage_arch_account_updates"};

struct bp_pg_arch {
    bp_buf data;                      /* COPY data not sent yet, < BP_PG_COPY_CHUNK + a row */
    bp_buf cols[BP_ARCH_TABLE_COUNT]; /* each table's column list, for COPY */
    bp_buf sql;
    bool have_stage;       /* the temporary staging tables exist on this connection */
    bool have_event_stage; /* bp_stage_arch_events does */
};

int bp_pg_arch_schema(bp_buf *sql)
{
    /* the family's tables, typed as an EVM table's columns are (hashes bytea) */
    if (bp_sql_create_set(sql, &bp_tables_arch, "IF NOT EXISTS ", bp_pg_coltype) != 0)
        return BP_ENOMEM;
    /* the transactions of an account, newest first (the primary keys lead with the block) */
    return bp_buf_puts(sql, "CREATE INDEX IF NOT EXISTS arch_transactions_txid_idx ON "
                            "arch_transactions(txid);"
                            "CREATE INDEX IF NOT EXISTS arch_account_updates_account_idx ON "
                            "arch_account_updates(account, block_height);"
                            /* the API's (/api/arch/...): a block by hash, events in arrival
                             * order */
                            "CREATE INDEX IF NOT EXISTS arch_blocks_hash_idx ON arch_blocks(hash);"
                            "CREATE INDEX IF NOT EXISTS arch_events_received_idx ON "
                            "arch_events(chain, received_at, key);") != 0
               ? BP_ENOMEM
               : 0;
}

void bp_pg_arch_free(bp_pg_arch *a)
{
    if (!a)
        return;
    bp_buf_release(&a->data);
    for (int t = 0; t < BP_ARCH_TABLE_COUNT; t++)
        bp_buf_release(&a->cols[t]);
    bp_buf_release(&a->sql);
    free(a);
}

int bp_pg_arch_new(bp_pg_arch **out, bp_error *err)
{
    bp_pg_arch *a = calloc(1, sizeof(*a));
    if (!a)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    bp_buf_init(&a->data, 0);
    bp_buf_init(&a->sql, 0);
    int rc = 0;
    for (int t = 0; t < BP_ARCH_TABLE_COUNT; t++)
        bp_buf_init(&a->cols[t], 0);
    for (int t = 0; t < BP_ARCH_TABLE_COUNT; t++) {
        const bp_set_table *tab = &bp_tables_arch.tables[t];
        for (size_t i = 0; i < tab->column_count; i++)
            rc |= bp_buf_printf(&a->cols[t], "%s%s", i ? ", " : "", tab->columns[i].name);
    }
    if (rc != 0) {
        bp_pg_arch_free(a);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    *out = a;
    return 0;
}

void bp_pg_arch_reset(bp_pg_arch *a)
{
    if (a)
        a->have_stage = a->have_event_stage = false;
}

/* ---- rows ------------------------------------------------------------------------------- */

/* bytea of a hash as the decoder keeps it: 64 hex digits without 0x. */
static void enc_hash(bp_pgcopy *c, const char *h, const char *col)
{
    char x[2 + BP_ARCH_HEX];
    snprintf(x, sizeof(x), "0x%s", h);
    bp_pgcopy_hex(c, x, col);
}

/* One value of column col in its COPY form (the type bp_pg_coltype gave the column). */
static void enc_value(bp_pgcopy *c, const bp_set_column *col, bp_value v)
{
    switch (v.kind) {
    case BP_VAL_NULL:
        bp_pgcopy_null(c);
        return;
    case BP_VAL_U64:
        if (col->type == BP_COL_BOOL)
            bp_pgcopy_bool(c, v.u);
        else
            bp_pgcopy_i64(c, v.u, col->name);
        return;
    case BP_VAL_STR:
        if (col->type == BP_COL_HASH)
            enc_hash(c, v.s, col->name);
        else if (col->type == BP_COL_JSON)
            bp_pgcopy_jsonb(c, v.s);
        else
            bp_pgcopy_text(c, v.s);
        return;
    case BP_VAL_F64:
        bp_pgcopy_f64(c, v.f);
        return;
    default: /* no Arch column is a 256-bit amount or withdrawals */
        if (c->rc == 0) {
            c->rc = BP_EINVAL;
            c->bad_column = col->name;
        }
    }
}

/* The rows APPLY ev brings to table t, from the Arch table set. */
static void enc_rows(bp_pgcopy *c, int t, const char *chain, const bp_event *ev)
{
    const bp_set_table *tab = &bp_tables_arch.tables[t];
    bp_table_row r;
    bp_table_rows(&r, &bp_tables_arch, chain, ev, (size_t)t);
    while (c->rc == 0 && bp_table_next(&r)) {
        bp_pgcopy_row(c, (uint16_t)tab->column_count);
        for (size_t k = 0; k < tab->column_count; k++)
            enc_value(c, &tab->columns[k], bp_tables_arch.value(&r, k));
    }
}

/* ---- statements ------------------------------------------------------------------------- */

/* One binary COPY of table t's rows of the run ev[0..n) into `table`, sent each time the
 * buffer holds BP_PG_COPY_CHUNK bytes (as postgres.c's copy_table). */
static int copy_table(bp_pg_arch *a, PGconn *conn, const char *table, int t, const char *chain,
                      const bp_event *ev, size_t n, char *sqlstate, bp_error *err)
{
    char what[160];
    if (t == BP_ARCH_EVENTS) /* an events carrier is no block of its own */
        snprintf(what, sizeof(what), "Arch events: COPY into %s", table);
    else
        snprintf(what, sizeof(what), "blocks %" PRIu64 "..%" PRIu64 ": COPY into %s",
                 ev[0].block->number, ev[n - 1].block->number, table);
    int rc = bp_pg_copy_begin(conn, table, a->cols[t].data, sqlstate, what, err);
    if (rc != 0)
        return rc;
    bp_buf_reset(&a->data);
    bp_pgcopy c = {.buf = &a->data};
    bp_pgcopy_header(&c);
    for (size_t i = 0; i < n; i++) {
        const bp_block *b = ev[i].block;
        enc_rows(&c, t, chain, &ev[i]);
        if (c.rc != 0)
            return bp_pg_copy_abort(
                conn, "blockpipe could not encode a row",
                bp_error_set(err, c.rc == BP_EINVAL ? BP_EINVAL : c.rc,
                             "block %" PRIu64 ": column %s.%s: %s", b->number,
                             bp_arch_table_name(t), c.bad_column ? c.bad_column : "?",
                             c.rc == BP_EINVAL ? "value does not fit its PostgreSQL type"
                                               : bp_strerror(c.rc)));
        if (a->data.len < BP_PG_COPY_CHUNK)
            continue;
        if ((rc = bp_pg_copy_put(conn, &a->data, sqlstate, what, err)) != 0)
            return rc;
        bp_buf_reset(&a->data);
    }
    bp_pgcopy_trailer(&c);
    rc = c.rc ? bp_pg_copy_abort(conn, "blockpipe could not encode a row",
                                 bp_error_set(err, c.rc, "%s: %s", what, bp_strerror(c.rc)))
              : bp_pg_copy_put(conn, &a->data, sqlstate, what, err);
    bp_buf_reset(&a->data);
    return rc ? rc : bp_pg_copy_end(conn, sqlstate, NULL, what, err);
}

static int copy_run(bp_pg_arch *a, PGconn *conn, bool stage, const char *chain, const bp_event *ev,
                    size_t n, char *sqlstate, bp_error *err)
{
    for (int t = 0; t < A_COUNT; t++) {
        const char *table = stage ? g_stage[t] : bp_arch_table_name((enum bp_arch_table)t);
        int rc = copy_table(a, conn, table, t, chain, ev, n, sqlstate, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Staged run: rows already stored are skipped; a stored block with another hash is an
 * error naming both. */
static int staged_run(bp_pg_arch *a, PGconn *conn, const char *chain, const bp_event *ev, size_t n,
                      char *sqlstate, bp_error *err)
{
    int rc = 0;
    if (!a->have_stage)
        rc = bp_pg_run(conn,
                       "CREATE TEMP TABLE IF NOT EXISTS bp_stage_arch_blocks(LIKE arch_blocks)"
                       " ON COMMIT DELETE ROWS;"
                       "CREATE TEMP TABLE IF NOT EXISTS bp_stage_arch_transactions"
                       "(LIKE arch_transactions) ON COMMIT DELETE ROWS;"
                       "CREATE TEMP TABLE IF NOT EXISTS bp_stage_arch_account_updates"
                       "(LIKE arch_account_updates) ON COMMIT DELETE ROWS",
                       NULL, sqlstate, "creating the Arch staging tables", err);
    a->have_stage = rc == 0;
    if (rc == 0)
        rc = bp_pg_run(conn,
                       "TRUNCATE bp_stage_arch_blocks, bp_stage_arch_transactions,"
                       " bp_stage_arch_account_updates",
                       NULL, sqlstate, "emptying the Arch staging tables", err);
    if (rc == 0)
        rc = copy_run(a, conn, true, chain, ev, n, sqlstate, err);
    if (rc != 0)
        return rc;
    PGresult *r = NULL;
    rc = bp_pg_run(conn,
                   "INSERT INTO arch_blocks SELECT * FROM bp_stage_arch_blocks"
                   " ON CONFLICT DO NOTHING;"
                   "INSERT INTO arch_transactions SELECT * FROM bp_stage_arch_transactions"
                   " ON CONFLICT DO NOTHING;"
                   "INSERT INTO arch_account_updates SELECT * FROM bp_stage_arch_account_updates"
                   " ON CONFLICT DO NOTHING;"
                   "SELECT s.height, encode(b.hash, 'hex'), encode(s.hash, 'hex')"
                   " FROM bp_stage_arch_blocks s JOIN arch_blocks b ON b.chain = s.chain"
                   " AND b.height = s.height WHERE b.hash <> s.hash ORDER BY s.height LIMIT 1",
                   &r, sqlstate, "merging the staged Arch rows", err);
    if (rc == 0 && PQntuples(r) > 0)
        rc = bp_error_set(err, BP_EDB,
                          "block %s of chain '%s': table arch_blocks already holds hash %s, "
                          "cannot apply hash %s (written by another process on another fork?)",
                          PQgetvalue(r, 0, 0), chain, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
    PQclear(r);
    return rc;
}

/* REVERTs ev[0..n): the blocks' rows go by (chain, height), one round trip. */
static int revert_run(bp_pg_arch *a, PGconn *conn, const char *chain_lit, const bp_event *ev,
                      size_t n, char *sqlstate, bp_error *err)
{
    bp_buf_reset(&a->sql);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint64_t h = ev[i].block->number;
        rc = bp_buf_printf(&a->sql,
                           "DELETE FROM arch_account_updates WHERE chain = %s AND block_height = "
                           "%" PRIu64 ";DELETE FROM arch_transactions WHERE chain = %s AND "
                           "block_height = %" PRIu64 ";DELETE FROM arch_blocks WHERE chain = %s "
                           "AND height = %" PRIu64 ";",
                           chain_lit, h, chain_lit, h, chain_lit, h);
    }
    if (rc != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    char what[96];
    snprintf(what, sizeof(what), "revert Arch blocks %" PRIu64 "..%" PRIu64,
             ev[n - 1].block->number, ev[0].block->number);
    return bp_pg_run(conn, a->sql.data, NULL, sqlstate, what, err);
}

/* The arch_events rows of ev[0..n) (the table set's, as every other table's): one binary COPY
 * into a temporary table, from which the caller's statement moves them. */
static int events_stage(bp_pg_arch *a, PGconn *conn, const char *chain, const bp_event *ev,
                        size_t n, char *sqlstate, bp_error *err)
{
    int rc = 0;
    if (!a->have_event_stage) {
        rc = bp_pg_run(conn,
                       "CREATE TEMP TABLE IF NOT EXISTS bp_stage_arch_events(LIKE arch_events)"
                       " ON COMMIT DELETE ROWS",
                       NULL, sqlstate, "creating the Arch events' staging table", err);
        a->have_event_stage = rc == 0;
    }
    return rc ? rc
              : copy_table(a, conn, "bp_stage_arch_events", BP_ARCH_EVENTS, chain, ev, n, sqlstate,
                           err);
}

/* A run ev[0..n) of BP_EVENT_ARCH_EVENTS entries (arch/arch_rows.h): each event's arch_events
 * row (a key already there, or met earlier in the run, is kept: the staged rows go in in
 * arrival order, the order one COPY into a table emptied by the previous run put them in) and
 * what a rollback / re-apply does to the transactions it lists, in arrival order. The values
 * travel as COPY data, never as SQL text; the UPDATEs' hashes were checked as hex by the
 * decoder. Two round trips: the COPY, then the statements. */
static int events_run(bp_pg_arch *a, PGconn *conn, const char *chain, const char *chain_lit,
                      const bp_event *ev, size_t n, char *sqlstate, bp_error *err)
{
    bool rows = false; /* a resync is made from the node's state: no row of its own */
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; ev[i].block->arch && k < ev[i].block->arch->event_count; k++)
            rows |= !ev[i].block->arch->events[k].resync;
    int rc = rows ? events_stage(a, conn, chain, ev, n, sqlstate, err) : 0;
    if (rc != 0)
        return rc;
    bp_buf_reset(&a->sql);
    if (rows)
        rc = bp_buf_puts(&a->sql, "INSERT INTO arch_events SELECT * FROM bp_stage_arch_events"
                                  " ORDER BY ctid ON CONFLICT DO NOTHING;"
                                  "DELETE FROM bp_stage_arch_events;");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const bp_arch_rows *r = ev[i].block->arch;
        for (size_t j = 0; rc == 0 && r && j < r->event_count; j++) {
            const bp_arch_event *e = &r->events[j];
            bool back = e->topic == BP_ARCH_T_ROLLEDBACK;
            if (!back && e->topic != BP_ARCH_T_REAPPLIED)
                continue;
            for (size_t k = 0; rc == 0 && k < e->hash_count; k++)
                rc = bp_buf_printf(&a->sql,
                                   "UPDATE arch_transactions SET rolled_back = %s, "
                                   "rollback_reason = %s WHERE chain = %s AND txid = '\\x%s';",
                                   back ? "true" : "false", back ? "rollback_reason" : "NULL",
                                   chain_lit, e->hashes[k]);
        }
    }
    if (rc != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    if (a->sql.len == 0)
        return 0;
    return bp_pg_run(conn, a->sql.data, NULL, sqlstate,
                     "Arch events into arch_events / arch_transactions", err);
}

int bp_pg_arch_write_events(bp_pg_arch *a, PGconn *conn, const bp_batch *batch, char *sqlstate,
                            bp_error *err)
{
    char *lit = PQescapeLiteral(conn, batch->chain, strlen(batch->chain));
    if (!lit)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    int rc = 0;
    for (size_t i = 0, j; rc == 0 && i < batch->count; i = j) {
        for (j = i; j < batch->count && batch->events[j].kind == BP_EVENT_ARCH_EVENTS;)
            j++;
        if (j > i)
            rc = events_run(a, conn, batch->chain, lit, batch->events + i, j - i, sqlstate, err);
        else
            j++;
    }
    PQfreemem(lit);
    return rc;
}

bool bp_pg_arch_has_events(const bp_batch *batch)
{
    for (size_t i = 0; i < batch->count; i++)
        if (batch->events[i].kind == BP_EVENT_ARCH_EVENTS)
            return true;
    return false;
}

int bp_pg_arch_write(bp_pg_arch *a, PGconn *conn, const bp_batch *batch, bool staging,
                     char *sqlstate, bp_error *err)
{
    char *lit = PQescapeLiteral(conn, batch->chain, strlen(batch->chain));
    if (!lit)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < batch->count;) {
        const bp_event *ev = batch->events + i;
        size_t j = i + 1;
        while (j < batch->count && batch->events[j].kind == ev->kind)
            j++;
        for (size_t k = i; rc == 0 && k < j; k++)
            if (!batch->events[k].block->arch && ev->kind == BP_EVENT_APPLY)
                rc = bp_error_set(err, BP_EINVAL,
                                  "block %" PRIu64 ": an Arch block without its rows",
                                  batch->events[k].block->number);
        if (rc == 0 && ev->kind == BP_EVENT_ARCH_EVENTS)
            rc = events_run(a, conn, batch->chain, lit, ev, j - i, sqlstate, err);
        else if (rc == 0 && ev->kind == BP_EVENT_REVERT)
            rc = revert_run(a, conn, lit, ev, j - i, sqlstate, err);
        else if (rc == 0)
            rc = staging ? staged_run(a, conn, batch->chain, ev, j - i, sqlstate, err)
                         : copy_run(a, conn, false, batch->chain, ev, j - i, sqlstate, err);
        i = j;
    }
    PQfreemem(lit);
    return rc;
}
