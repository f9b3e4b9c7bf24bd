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

/* The tables an APPLY writes, in arch_tables.h order (arch_events is the events' own). */
enum { A_BLOCKS, A_TXS, A_ACCOUNTS, A_COUNT };

static const char *const g_stage[A_COUNT] = {"bp_stage_arch_blocks", "bp_stage_arch_transactions",
                                             "bp_stage_arch_account_updates"};

struct bp_pg_arch {
    bp_buf data;          /* COPY data not sent yet, < BP_PG_COPY_CHUNK + a row */
    bp_buf cols[A_COUNT]; /* each table's column list, for COPY */
    uint16_t ncols[A_COUNT];
    bp_buf sql;
    bool have_stage; /* the temporary staging tables exist on this connection */
};

static const char *pg_type(enum bp_arch_coltype t)
{
    switch (t) {
    case BP_ARCH_INT:
        return "bigint";
    case BP_ARCH_HASH:
        return "bytea";
    case BP_ARCH_JSON:
        return "jsonb";
    case BP_ARCH_BOOL:
        return "boolean";
    case BP_ARCH_REAL:
        return "double precision";
    default:
        return "text";
    }
}

int bp_pg_arch_schema(bp_buf *sql)
{
    for (int t = 0; t < BP_ARCH_TABLE_COUNT; t++)
        if (bp_arch_create_table(sql, (enum bp_arch_table)t, "IF NOT EXISTS ", pg_type) != 0)
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
    for (int t = 0; t < A_COUNT; t++)
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
    for (int t = 0; t < A_COUNT; t++)
        bp_buf_init(&a->cols[t], 0);
    for (size_t i = 0; i < bp_arch_column_count; i++) {
        const bp_arch_column *c = &bp_arch_columns[i];
        if ((int)c->table >= A_COUNT)
            continue;
        rc |= bp_buf_printf(&a->cols[c->table], "%s%s", a->ncols[c->table] ? ", " : "", c->name);
        a->ncols[c->table]++;
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
        a->have_stage = false;
}

/* ---- rows ------------------------------------------------------------------------------- */

/* bytea of a hash as the decoder keeps it: 64 hex digits without 0x. */
static void enc_hash(bp_pgcopy *c, const char *h, const char *col)
{
    char x[2 + BP_ARCH_HEX];
    snprintf(x, sizeof(x), "0x%s", h);
    bp_pgcopy_hex(c, x, col);
}

static void enc_block(const bp_pg_arch *a, bp_pgcopy *c, const char *chain, const bp_block *b)
{
    const bp_arch_block *r = &b->arch->block;
    bp_pgcopy_row(c, a->ncols[A_BLOCKS]);
    bp_pgcopy_text(c, chain);
    bp_pgcopy_i64(c, b->number, "arch_blocks.height");
    enc_hash(c, b->hash, "arch_blocks.hash");
    enc_hash(c, b->parent_hash, "arch_blocks.previous_hash");
    bp_pgcopy_i64(c, r->timestamp, "arch_blocks.timestamp");
    bp_pgcopy_opt_i64(c, (bp_opt_u64){.set = !r->no_bitcoin_height, .v = r->bitcoin_height},
                      "arch_blocks.bitcoin_block_height");
    bp_pgcopy_i64(c, r->tx_count, "arch_blocks.transaction_count");
    if (r->merkle_root[0])
        enc_hash(c, r->merkle_root, "arch_blocks.merkle_root");
    else
        bp_pgcopy_null(c);
}

static void enc_tx(const bp_pg_arch *a, bp_pgcopy *c, const char *chain, const bp_block *b,
                   size_t i)
{
    const bp_arch_tx *t = &b->arch->txs[i];
    bp_pgcopy_row(c, a->ncols[A_TXS]);
    bp_pgcopy_text(c, chain);
    bp_pgcopy_i64(c, b->number, "arch_transactions.block_height");
    bp_pgcopy_i64(c, i, "arch_transactions.tx_index");
    enc_hash(c, t->txid, "arch_transactions.txid");
    enc_hash(c, b->hash, "arch_transactions.block_hash");
    bp_pgcopy_text(c, bp_arch_status_name(t->status));
    bp_pgcopy_text(c, t->failure);
    bp_pgcopy_bool(c, t->rolled_back);
    bp_pgcopy_text(c, t->rollback_reason);
    bp_pgcopy_jsonb(c, t->program_ids);
    bp_pgcopy_jsonb(c, t->bitcoin_txids);
    bp_pgcopy_opt_i64(c, (bp_opt_u64){.set = t->has_fee, .v = t->fee}, "arch_transactions.fee");
    bp_pgcopy_opt_i64(c, (bp_opt_u64){.set = t->has_compute, .v = t->compute_units},
                      "arch_transactions.compute_units");
}

/* An account a transaction lists twice (simnode's sender = receiver) is one update, as
 * SQLite's INSERT OR IGNORE makes it: a second COPY row would break the primary key. */
static void enc_accounts(const bp_pg_arch *a, bp_pgcopy *c, const char *chain, const bp_block *b,
                         size_t i)
{
    const bp_arch_tx *t = &b->arch->txs[i];
    for (size_t k = 0; k < t->account_count; k++) {
        size_t j = 0;
        while (j < k && strcmp(t->accounts[j], t->accounts[k]) != 0)
            j++;
        if (j < k)
            continue;
        bp_pgcopy_row(c, a->ncols[A_ACCOUNTS]);
        bp_pgcopy_text(c, chain);
        bp_pgcopy_i64(c, b->number, "arch_account_updates.block_height");
        bp_pgcopy_i64(c, i, "arch_account_updates.tx_index");
        enc_hash(c, t->accounts[k], "arch_account_updates.account");
        enc_hash(c, t->txid, "arch_account_updates.txid");
    }
}

/* Table t's rows of block b. */
static void enc_rows(const bp_pg_arch *a, bp_pgcopy *c, int t, const char *chain, const bp_block *b)
{
    if (t == A_BLOCKS) {
        enc_block(a, c, chain, b);
        return;
    }
    for (size_t i = 0; i < b->arch->tx_count && c->rc == 0; i++)
        (t == A_TXS ? enc_tx : enc_accounts)(a, c, chain, b, i);
}

/* ---- statements ------------------------------------------------------------------------- */

/* One binary COPY of table t's rows of the run ev[0..n) into `table`, sent each time the
 * buffer holds BP_PG_COPY_CHUNK bytes (as postgres.c's copy_table). */
static int copy_table(bp_pg_arch *a, PGconn *conn, const char *table, int t, const char *chain,
                      const bp_event *ev, size_t n, char *sqlstate, bp_error *err)
{
    char what[160];
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
        enc_rows(a, &c, t, chain, b);
        if (c.rc != 0)
            return bp_pg_copy_abort(conn, "blockpipe could not encode a row",
                                    bp_error_set(err, c.rc == BP_EINVAL ? BP_EINVAL : c.rc,
                                                 "block %" PRIu64 ": column %s: %s", b->number,
                                                 c.bad_column ? c.bad_column : "?",
                                                 c.rc == BP_EINVAL
                                                     ? "value does not fit its PostgreSQL type"
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

/* A BP_EVENT_ARCH_EVENTS entry (arch/arch_rows.h): each event's arch_events row (a key already
 * there is kept) and what a rollback / re-apply does to the transactions it lists, in arrival
 * order, one round trip. The hashes were checked as hex by the decoder. */
static int events_run(bp_pg_arch *a, PGconn *conn, const char *chain_lit, const bp_block *b,
                      char *sqlstate, bp_error *err)
{
    const bp_arch_rows *r = b->arch;
    bp_buf_reset(&a->sql);
    int rc = 0;
    for (size_t i = 0; rc == 0 && r && i < r->event_count; i++) {
        const bp_arch_event *e = &r->events[i];
        if (!e->resync) { /* a resync is made from the node's state: no row of its own */
            const char *d = e->data ? e->data : "{}";
            char *data = PQescapeLiteral(conn, d, strlen(d));
            char height[24] = "NULL";
            if (e->has_height)
                snprintf(height, sizeof(height), "%" PRIu64, e->block_height);
            rc = !data ||
                 bp_buf_printf(&a->sql,
                               "INSERT INTO arch_events (chain, key, topic, "
                               "block_height, data, received_at) VALUES (%s, '%s', '%s', %s, %s, "
                               "%.6f) ON CONFLICT DO NOTHING;",
                               chain_lit, e->key, bp_arch_topic_name(e->topic), height, data,
                               e->received_at);
            PQfreemem(data);
        }
        bool back = e->topic == BP_ARCH_T_ROLLEDBACK;
        if (!back && e->topic != BP_ARCH_T_REAPPLIED)
            continue;
        for (size_t k = 0; rc == 0 && k < e->hash_count; k++)
            rc = bp_buf_printf(&a->sql,
                               "UPDATE arch_transactions SET rolled_back = %s, rollback_reason = "
                               "%s WHERE chain = %s AND txid = '\\x%s';",
                               back ? "true" : "false", back ? "rollback_reason" : "NULL",
                               chain_lit, e->hashes[k]);
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
    for (size_t i = 0; rc == 0 && i < batch->count; i++)
        if (batch->events[i].kind == BP_EVENT_ARCH_EVENTS)
            rc = events_run(a, conn, lit, batch->events[i].block, sqlstate, err);
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
        if (ev->kind == BP_EVENT_ARCH_EVENTS) {
            for (size_t k = i; rc == 0 && k < j; k++)
                rc = events_run(a, conn, lit, batch->events[k].block, sqlstate, err);
        } else if (rc == 0 && ev->kind == BP_EVENT_REVERT)
            rc = revert_run(a, conn, lit, ev, j - i, sqlstate, err);
        else if (rc == 0)
            rc = staging ? staged_run(a, conn, batch->chain, ev, j - i, sqlstate, err)
                         : copy_run(a, conn, false, batch->chain, ev, j - i, sqlstate, err);
        i = j;
    }
    PQfreemem(lit);
    return rc;
}
