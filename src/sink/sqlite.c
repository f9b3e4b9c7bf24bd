/* sqlite.c - the SQLite output (default): blocks, transactions, logs and checkpoints tables,
 * each batch and its checkpoint written in one transaction (exactly once).
 *
 * Value mapping: u64 quantities are INTEGER; a u64 above INT64_MAX cannot be an SQLite
 * INTEGER, and decimal TEXT bound to an INTEGER column is silently converted to a lossy
 * REAL by column affinity, so such a value is stored as a BLOB holding its exact decimal
 * digits (CAST(x AS TEXT) / sqlite3_column_text read it back). 256-bit quantities are exact
 * decimal TEXT (TEXT affinity keeps them). Unset values are NULL.
 *
 * Durability: WAL + synchronous=NORMAL. A committed batch survives a process crash; a power
 * loss may drop the last batches but never tears one (the checkpoint goes with its rows), so
 * flush() has nothing to do. */
#include "blockpipe/sink.h"

#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockpipe/columns.h"
#include "blockpipe/derived.h"
#include "core/budget.h"
#include "metrics/derive_job.h"
#include "metrics/metrics.h"
#include "sink/format.h"
#include "sink/sqlgen.h"
#include "sink/sqlite_read.h"
#include "sink/sqlite_arch.h"
#include "sink/sqlite_derived.h"
#include "sink/sqlite_lock.h"
#include "util/buf.h"
#include "util/crashpoint.h"
#include "util/log.h"
#include "util/hex.h"

/* 1: blocks, transactions, logs, checkpoints; 2: the derived tables (derived.h); 3: the OP-stack
 * and Arbitrum columns and each table's extra JSON (columns.h, BP_C_<TABLE>_V3); 4:
 * checkpoints.resync_floor (an Arch chain's bp_checkpoint.floor) */
#define SQLITE_SCHEMA_VERSION 4
#define SQLITE_BUSY_MS 10000
#define BP_STR_(x) #x
#define BP_STR(x) BP_STR_(x)
#define SQLITE_OUTPUT "sqlite"

/* SQLite's type of a column: 64-bit integers are INTEGER (see bind_u64 for values above
 * INT64_MAX), everything else TEXT (256-bit amounts as exact decimal text). */
/* Every family's tables (blockpipe/tableset.h): integers INTEGER (a u64 above INT64_MAX is
 * stored as its decimal digits), floats REAL, everything else TEXT. */
static const char *sqlite_coltype(bp_col_type t)
{
    return t == BP_COL_INT64 || t == BP_COL_UINT64 || t == BP_COL_BOOL ? "INTEGER"
           : t == BP_COL_FLOAT                                         ? "REAL"
                                                                       : "TEXT";
}

/* The API's lookups (the PostgreSQL output always has them): by hash, by address as sender or
 * receiver, logs by emitter and topic0; and token transfers by token, which nothing of
 * blockpipe reads (made with the derived tables until a backfill measured it: 46,766 transfers
 * cost the writer about a sixth of what all the derived tables then added). Off by default:
 * each costs every insert a B-tree update, which an indexer that is only read by batch jobs
 * does not need. */
static const char g_indexes_ddl[] =
    "CREATE INDEX IF NOT EXISTS blocks_hash_idx ON blocks(hash);"
    "CREATE INDEX IF NOT EXISTS transactions_hash_idx ON transactions(hash);"
    "CREATE INDEX IF NOT EXISTS transactions_from_idx ON transactions(chain, from_address,"
    " block_number, transaction_index);"
    "CREATE INDEX IF NOT EXISTS transactions_to_idx ON transactions(chain, to_address,"
    " block_number, transaction_index);"
    "CREATE INDEX IF NOT EXISTS logs_address_idx ON logs(chain, address, block_number, log_index);"
    "CREATE INDEX IF NOT EXISTS logs_topic0_idx ON logs(chain, topic0, block_number, log_index);"
    "CREATE INDEX IF NOT EXISTS token_transfers_token_idx"
    " ON token_transfers(token_address, block_number);";

/* Arch (/api/arch/...): blocks by hash, the updates of an account, events in arrival order
 * (arch_transactions(chain, txid) is there always: the rollback UPDATE's). Made with the Arch
 * tables (arch_open), which an EVM chain's file does not have. */
static const char g_arch_indexes_ddl[] =
    "CREATE INDEX IF NOT EXISTS arch_blocks_hash_idx ON arch_blocks(hash);"
    "CREATE INDEX IF NOT EXISTS arch_account_updates_account_idx ON arch_account_updates(chain,"
    " account, block_height, tx_index);"
    "CREATE INDEX IF NOT EXISTS arch_events_received_idx ON arch_events(chain, received_at, key);";

static const char g_checkpoints_ddl[] =
    "CREATE TABLE IF NOT EXISTS checkpoints(chain TEXT NOT NULL, output TEXT NOT NULL,"
    " number INTEGER, hash TEXT, updated_at TEXT, resync_floor INTEGER,"
    " PRIMARY KEY(chain, output));";

enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_INS_BLOCK,
    ST_INS_TX,
    ST_INS_LOG,
    ST_SEL_HASH,
    ST_DEL_LOGS,
    ST_DEL_TXS,
    ST_DEL_BLOCK,
    ST_PUT_CP,
    ST_DEL_CP,
    ST_GET_CP,
    ST_RECENT,
    ST_COUNT
};

static const char *const g_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SEL_HASH] = "SELECT hash FROM blocks WHERE chain = ? AND number = ?",
    [ST_DEL_LOGS] = "DELETE FROM logs WHERE chain = ? AND block_number = ?",
    [ST_DEL_TXS] = "DELETE FROM transactions WHERE chain = ? AND block_number = ?",
    [ST_DEL_BLOCK] = "DELETE FROM blocks WHERE chain = ? AND number = ?",
    [ST_PUT_CP] = "INSERT INTO checkpoints(chain, output, number, hash, updated_at, resync_floor)"
                  " VALUES(?, '" SQLITE_OUTPUT "', ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?)"
                  " ON CONFLICT(chain, output) DO UPDATE SET number = excluded.number,"
                  " hash = excluded.hash, updated_at = excluded.updated_at,"
                  " resync_floor = excluded.resync_floor",
    [ST_DEL_CP] = "DELETE FROM checkpoints WHERE chain = ? AND output = '" SQLITE_OUTPUT "'",
    [ST_GET_CP] = "SELECT number, hash, resync_floor FROM checkpoints WHERE chain = ? AND output = "
                  "'" SQLITE_OUTPUT "'",
    /* ST_RECENT: SQLITE_RECENT or SQLITE_RECENT_ARCH (prepare_all, arch_open) */
};

/* A chain's blocks are in one of the two (its family's); arch_blocks once the file has it. */
#define SQLITE_RECENT "SELECT number, hash FROM blocks WHERE chain = ?1 ORDER BY 1 DESC LIMIT ?2"
#define SQLITE_RECENT_ARCH                                                                         \
    "SELECT number, hash FROM blocks WHERE chain = ?1 UNION ALL SELECT height, hash"               \
    " FROM arch_blocks WHERE chain = ?1 ORDER BY 1 DESC LIMIT ?2"

typedef struct sqlite_sink {
    struct bp_sink base;
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    char *path;
    char lastmsg[256]; /* SQLite's message of the last failed step */
    bp_buf wbuf;       /* withdrawals JSON of the block being inserted (reused) */
    bp_buf sql;        /* generated statement text (open only) */
    /* the derived tables' writer: with metrics on it writes them; off, it only takes the
     * reverted blocks' rows out (sqlite_derived.h) */
    bp_sqlite_derived *derived;
    bool metrics; /* metrics on: the output writes derived rows */
    bool blocks;  /* ... and rows of blocks (derived= has chain_metrics; else prices only) */
    /* the APPLY run being written, for the derived tables: its blocks, and their derived rows
     * once the batch has them (bp_batch_derived) */
    const bp_block **run_blocks;
    const bp_block_derived **run;
    size_t run_len, run_cap;
    int cache_kib;   /* the page cache for big batches (PRAGMA cache_size = -KiB) */
    bool head_cache; /* the smaller cache of batches at the head is on */
    bool foreign;    /* the batch met a block another process stored */
    /* the Arch tables' statements (--chain-type arch); NULL while the file has no Arch tables
     * (arch_tables makes them when an Arch chain first writes) */
    bp_sqlite_arch *arch;
    bool indexes;          /* the lookup indexes (option indexes): the Arch tables' too when made */
    bp_sqlite_locks locks; /* the chains' writer locks (sqlite_lock.h) */
    /* A group (bp_batch.more): the transaction is open across batches of a backfill, from
     * the one of group_first on; lost: one was rolled back with batches it held, so nothing
     * more is written until the pipeline asks for the checkpoint again (it goes back there). */
    bool in_group, lost;
    uint64_t group_first;
    char chain[64]; /* the group's chain (for the derived rows it holds) */
} sqlite_sink;

/* ---- binding ---------------------------------------------------------------------------- */

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static int bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
    if (v <= (uint64_t)INT64_MAX)
        return sqlite3_bind_int64(st, i, (sqlite3_int64)v);
    char dec[24];
    int n = snprintf(dec, sizeof(dec), "%" PRIu64, v);
    return sqlite3_bind_blob(st, i, dec, n, SQLITE_TRANSIENT);
}

static int bind_qty(sqlite3_stmt *st, int i, const bp_qty *q)
{
    char dec[BP_U256_DEC_MAX];
    size_t n = bp_u256_to_dec(&q->v, dec);
    return sqlite3_bind_text(st, i, dec, (int)n, SQLITE_TRANSIENT);
}

/* Withdrawals as a JSON array (the value is only made for blocks that sent them). */
static int bind_withdrawals(sqlite_sink *s, sqlite3_stmt *st, int i, const bp_block *b)
{
    bp_fmt f = {.buf = &s->wbuf};
    bp_buf_reset(&s->wbuf);
    bp_fmt_char(&f, '[');
    bp_fmt_withdrawals(&f, b, "\"");
    bp_fmt_char(&f, ']');
    if (f.rc != 0)
        return SQLITE_NOMEM;
    return sqlite3_bind_text(st, i, s->wbuf.data, (int)s->wbuf.len, SQLITE_STATIC);
}

static int bind_value(sqlite_sink *s, sqlite3_stmt *st, int i, const bp_value *v)
{
    switch (v->kind) {
    case BP_VAL_U64:
        return bind_u64(st, i, v->u);
    case BP_VAL_U256:
        return bind_qty(st, i, v->q);
    case BP_VAL_STR:
        return sqlite3_bind_text(st, i, v->s, -1, SQLITE_STATIC);
    case BP_VAL_HEX: { /* several a row: SQLite keeps its own copy */
        char hex[BP_HEXB_TEXT];
        return sqlite3_bind_text(st, i, hex, (int)bp_hexb_text(hex, v->h), SQLITE_TRANSIENT);
    }
    case BP_VAL_WITHDRAWALS:
        return bind_withdrawals(s, st, i, v->block);
    default:
        return sqlite3_bind_null(st, i);
    }
}

/* Binds every column of table t from row r, in the order of the generated INSERT. */
static int bind_row(sqlite_sink *s, sqlite3_stmt *st, bp_table t, const bp_row *r)
{
    size_t first, n = bp_table_columns(t, &first);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        bp_value v = bp_column_value(&bp_columns[first + i], r);
        rc |= bind_value(s, st, (int)i + 1, &v);
    }
    return rc;
}

static int bind_chain_number(sqlite3_stmt *st, const char *chain, uint64_t number)
{
    return bind_text(st, 1, chain) | bind_u64(st, 2, number);
}

/* ---- statements ------------------------------------------------------------------------- */

/* Steps a statement to its end and resets it. Returns SQLITE_OK or SQLite's (extended)
 * error code, with its message kept in s->lastmsg. */
static int run(sqlite_sink *s, int which)
{
    sqlite3_stmt *st = s->st[which];
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW)
        rc = SQLITE_OK;
    else
        snprintf(s->lastmsg, sizeof(s->lastmsg), "%s", sqlite3_errmsg(s->db));
    sqlite3_reset(st);
    return rc;
}

/* A bind failed (out of memory or a bug): keep SQLite's message like run() does. */
static int bind_failed(sqlite_sink *s)
{
    snprintf(s->lastmsg, sizeof(s->lastmsg), "bind: %s", sqlite3_errmsg(s->db));
    return SQLITE_ERROR;
}

/* The hash stored for (chain, number) into out (empty when none). */
static int stored_hash(sqlite_sink *s, const char *chain, uint64_t number, char *out, size_t cap)
{
    sqlite3_stmt *st = s->st[ST_SEL_HASH];
    out[0] = '\0';
    if (bind_chain_number(st, chain, number) != SQLITE_OK)
        return bind_failed(s);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *h = sqlite3_column_text(st, 0);
        snprintf(out, cap, "%s", h ? (const char *)h : "");
        rc = SQLITE_DONE;
    }
    if (rc != SQLITE_DONE)
        snprintf(s->lastmsg, sizeof(s->lastmsg), "%s", sqlite3_errmsg(s->db));
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The block row already exists: the same block (another process wrote it) is skipped
 * (*skip = true), a different one is an error naming both hashes. */
static int apply_conflict(sqlite_sink *s, const char *chain, const bp_block *b, bool *skip,
                          bp_error *err)
{
    char have[BP_HASH_STRLEN + 8];
    if (stored_hash(s, chain, b->number, have, sizeof(have)) != SQLITE_OK)
        return bp_error_set(err, BP_EDB, "block %" PRIu64 ": reading the stored hash: %s",
                            b->number, s->lastmsg);
    if (!have[0]) /* not the primary key (e.g. a NOT NULL column): the insert's own error */
        return bp_error_set(err, BP_EDB, "block %" PRIu64 ": insert into blocks: %s", b->number,
                            s->lastmsg);
    if (b->hash && strcmp(have, b->hash) == 0) {
        *skip = true;
        return 0;
    }
    return bp_error_set(err, BP_EDB,
                        "block %" PRIu64 " of chain '%s': table blocks already holds hash %s, "
                        "cannot apply hash %s (was it reverted?)",
                        b->number, chain, have, b->hash ? b->hash : "(none)");
}

static int insert_txs(sqlite_sink *s, const char *chain, const bp_block *b, bp_error *err)
{
    for (size_t i = 0; i < b->tx_count; i++) {
        bp_row r = {.chain = chain, .block = b, .tx = &b->txs[i]};
        int rc = bind_row(s, s->st[ST_INS_TX], BP_TABLE_TRANSACTIONS, &r);
        rc = rc != SQLITE_OK ? bind_failed(s) : run(s, ST_INS_TX);
        if (rc != SQLITE_OK)
            return bp_error_set(err, BP_EDB,
                                "block %" PRIu64 ": insert into transactions (index %zu, %s): %s",
                                b->number, i, b->txs[i].hash ? b->txs[i].hash : "?", s->lastmsg);
    }
    return 0;
}

static int insert_logs(sqlite_sink *s, const char *chain, const bp_block *b, bp_error *err)
{
    if (!b->has_receipts)
        return 0;
    for (size_t i = 0; i < b->log_count; i++) {
        bp_row r = {.chain = chain, .block = b, .log = &b->logs[i]};
        int rc = bind_row(s, s->st[ST_INS_LOG], BP_TABLE_LOGS, &r);
        rc = rc != SQLITE_OK ? bind_failed(s) : run(s, ST_INS_LOG);
        if (rc != SQLITE_OK)
            return bp_error_set(err, BP_EDB,
                                "block %" PRIu64 ": insert into logs (log_index %" PRIu64 "): %s",
                                b->number, b->logs[i].log_index, s->lastmsg);
    }
    return 0;
}

/* *skip: the same block was already stored (by another process): nothing written. */
static int apply_block(sqlite_sink *s, const char *chain, const bp_block *b, bool *skip,
                       bp_error *err)
{
    bp_row r = {.chain = chain, .block = b};
    int rc = bind_row(s, s->st[ST_INS_BLOCK], BP_TABLE_BLOCKS, &r);
    rc = rc != SQLITE_OK ? bind_failed(s) : run(s, ST_INS_BLOCK);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        int crc = apply_conflict(s, chain, b, skip, err);
        if (crc != 0 || *skip)
            return crc;
    }
    if (rc != SQLITE_OK)
        return bp_error_set(err, BP_EDB, "block %" PRIu64 ": insert into blocks: %s", b->number,
                            s->lastmsg);
    rc = insert_txs(s, chain, b, err);
    if (rc == 0)
        rc = insert_logs(s, chain, b, err);
    return rc;
}

static int revert_block(sqlite_sink *s, const char *chain, const bp_block *b, bp_error *err)
{
    static const struct {
        int st;
        const char *table;
    } dels[] = {{ST_DEL_LOGS, "logs"}, {ST_DEL_TXS, "transactions"}, {ST_DEL_BLOCK, "blocks"}};
    for (size_t i = 0; i < sizeof(dels) / sizeof(dels[0]); i++) {
        int rc = bind_chain_number(s->st[dels[i].st], chain, b->number);
        rc = rc != SQLITE_OK ? bind_failed(s) : run(s, dels[i].st);
        if (rc != SQLITE_OK)
            return bp_error_set(err, BP_EDB, "revert block %" PRIu64 ": delete from %s: %s",
                                b->number, dels[i].table, s->lastmsg);
    }
    return 0;
}

static int save_checkpoint(sqlite_sink *s, const char *chain, const bp_checkpoint *cp,
                           bp_error *err)
{
    int which = cp->set ? ST_PUT_CP : ST_DEL_CP;
    sqlite3_stmt *st = s->st[which];
    int rc = bind_text(st, 1, chain);
    if (cp->set)
        rc |= bind_u64(st, 2, cp->number) | bind_text(st, 3, cp->hash) |
              (cp->floor_set ? bind_u64(st, 4, cp->floor) : sqlite3_bind_null(st, 4));
    rc = rc != SQLITE_OK ? bind_failed(s) : run(s, which);
    if (rc != SQLITE_OK)
        return bp_error_set(err, BP_EDB, "checkpoint of chain '%s' (block %" PRIu64 "): %s", chain,
                            cp->number, s->lastmsg);
    return 0;
}

/* ---- ops -------------------------------------------------------------------------------- */

/* ---- derived tables ----------------------------------------------------------------------- */

/* The derived rows of the APPLY run collected so far, written (then the run is empty). */
static int flush_run(sqlite_sink *s, const bp_derived *der, bp_error *err)
{
    size_t n = s->run_len, hint = 0;
    s->run_len = 0;
    for (size_t i = 0; i < n; i++)
        if (!(s->run[i] = bp_derived_find(der, s->run_blocks[i], &hint)))
            return bp_error_set(err, BP_EINVAL,
                                "block %" PRIu64 ": the batch has no derived rows for it",
                                s->run_blocks[i]->number);
    if (s->foreign) /* (the batch's blocks another process stored so far) */
        bp_sqlite_derived_foreign(s->derived);
    return n ? bp_sqlite_derived_apply(s->derived, der, s->run, n, err) : 0;
}

/* Adds the applied block b to the run. */
static int run_add(sqlite_sink *s, const bp_block *b, bp_error *err)
{
    if (s->run_len == s->run_cap) {
        size_t cap = s->run_cap ? s->run_cap * 2 : 64;
        const bp_block **pb = realloc(s->run_blocks, cap * sizeof(*pb));
        if (pb)
            s->run_blocks = pb;
        const bp_block_derived **p = pb ? realloc(s->run, cap * sizeof(*p)) : NULL;
        if (!p)
            return bp_error_set(err, BP_ENOMEM, "out of memory");
        s->run = p;
        s->run_cap = cap;
    }
    s->run_blocks[s->run_len++] = b;
    return 0;
}

/* The lowest and highest block of a non-empty batch. */
static void batch_range(const bp_batch *batch, uint64_t *lo, uint64_t *hi)
{
    *lo = UINT64_MAX;
    *hi = 0;
    for (size_t i = 0; i < batch->count; i++) {
        uint64_t n = batch->events[i].block->number;
        *lo = n < *lo ? n : *lo;
        *hi = n > *hi ? n : *hi;
    }
}

/* A derived table's write serves several blocks at once (a window's upsert, a run of block
 * rows): its error names the batch's blocks, as a raw row's names its block. */
static int in_batch(const bp_batch *batch, int rc, bp_error *err)
{
    if (rc == 0 || batch->count == 0)
        return rc;
    uint64_t lo, hi;
    batch_range(batch, &lo, &hi);
    bp_error_prefix(
        err, "block %" PRIu64 ": derived tables of the batch of blocks %" PRIu64 "..%" PRIu64 ": ",
        hi, lo, hi);
    return rc;
}

/* derived: the batch's derived rows are written (der: they are known already); reverts: its
 * REVERTs take their blocks' derived rows out (also with metrics off). */
static int write_event(sqlite_sink *s, const bp_batch *batch, const bp_event *ev, bool derived,
                       const bp_derived *der, bool reverts, bp_error *err)
{
    if (ev->block->family == BP_FAMILY_ARCH) { /* no derived rows: the analytics are EVM's */
        bool skip = false;
        if (ev->kind == BP_EVENT_ARCH_EVENTS)
            return bp_sqlite_arch_events(s->arch, batch->chain, ev->block, err);
        return ev->kind == BP_EVENT_APPLY
                   ? bp_sqlite_arch_apply(s->arch, batch->chain, ev->block, &skip, err)
                   : bp_sqlite_arch_revert(s->arch, batch->chain, ev->block, err);
    }
    if (ev->kind == BP_EVENT_APPLY) {
        bool skip = false;
        int rc = apply_block(s, batch->chain, ev->block, &skip, err);
        s->foreign |= skip && derived;
        return rc || skip || !derived || !s->blocks ? rc : run_add(s, ev->block, err);
    }
    int rc = derived ? flush_run(s, der, err) : 0;
    if (rc == 0 && reverts)
        rc = bp_sqlite_derived_revert(s->derived, batch->chain, ev->block, err);
    return rc ? in_batch(batch, rc, err) : revert_block(s, batch->chain, ev->block, err);
}

static bool has_revert(const bp_batch *batch)
{
    for (size_t i = 0; i < batch->count; i++)
        if (batch->events[i].kind == BP_EVENT_REVERT)
            return true;
    return false;
}

/* A batch without REVERTs writes its raw rows first and its derived rows after them, while
 * the metrics module may still be computing those (bp_batch.derived_job): the derived writes
 * read nothing of the raw rows but a minute's transactions at the end, so the order within
 * the transaction changes nothing. A REVERT reads the derived rows of its block and its raw
 * rows before they go, so a batch with one takes the derived rows first. */
static int write_events(sqlite_sink *s, const bp_batch *batch, bool hold, bp_error *err)
{
    bool derived = s->metrics && (batch->derived || batch->derived_job);
    bool revert = has_revert(batch);
    /* with metrics off only a batch that reverts touches the derived tables */
    bool reverts = s->derived && (derived || revert);
    bool late = derived && !revert;
    const bp_derived *der = NULL;
    s->run_len = 0;
    s->foreign = false;
    /* a REVERT reads the windows the group's batches so far hold rows of: written first */
    int rc = revert && s->derived ? bp_sqlite_derived_settle(s->derived, batch->chain, err) : 0;
    if (rc == 0 && derived && !late)
        rc = bp_batch_derived(batch, &der, err);
    if (rc == 0 && reverts && !late)
        rc = bp_sqlite_derived_begin(s->derived, der, err);
    rc = in_batch(batch, rc, err);
    for (size_t i = 0; rc == 0 && i < batch->count; i++)
        rc = write_event(s, batch, &batch->events[i], derived, der, reverts, err);
    if (rc != 0)
        return rc;
    if (late && (rc = bp_batch_derived(batch, &der, err)) == 0)
        rc = bp_sqlite_derived_begin(s->derived, der, err);
    if (rc == 0 && s->foreign)
        bp_sqlite_derived_foreign(s->derived);
    if (rc == 0 && derived)
        rc = flush_run(s, der, err);
    if (rc == 0 && reverts)
        rc = bp_sqlite_derived_finish(s->derived, batch->chain, der, hold, err);
    rc = in_batch(batch, rc, err);
    return rc ? rc : save_checkpoint(s, batch->chain, &batch->checkpoint, err);
}

/* A full disk often shows only at COMMIT (the WAL grows then): name the batch's blocks, as
 * every other write error names its block. */
static int commit_failed(sqlite_sink *s, const bp_batch *batch, bp_error *err)
{
    if (batch->count == 0)
        return bp_error_set(err, BP_EDB, "%s: COMMIT: %s", s->path, s->lastmsg);
    uint64_t lo, hi;
    batch_range(batch, &lo, &hi);
    return bp_error_set(err, BP_EDB,
                        "%s: block %" PRIu64 ": COMMIT of the batch of blocks %" PRIu64 "..%" PRIu64
                        ": %s",
                        s->path, hi, lo, hi, s->lastmsg);
}

/* At the head a batch is a block (a few after a reorg): the pages it touches are a few leaves
 * per table and index, read from the file again (the kernel's page cache) when the next block
 * comes. The 4 MiB cache (sqlite_derived.c) is for backfill batches and the minutes recomputed
 * from their raw transactions; kept at the head it was most of the process's own memory (4.6 of
 * 12 MiB with one chain of 200-tx blocks). A batch of more transactions (a backfill's, or a
 * chain of big blocks) takes the big cache back. SQLite's bulk allocation of 20 cache lines
 * (1.3 MiB with our 64 KiB pages, taken at the connection's first page and kept) stays: without
 * it (SQLITE_CONFIG_PAGECACHE 0 lines) the head was 0.3-0.5 MiB smaller, but a backfill of
 * 2,000-tx blocks under the default budget was 10-20 % slower (5 of 5 interleaved pairs; also
 * with a 512 KiB bulk). The lines the smaller cache drops go back to malloc, and from it to the
 * system once the batch is written (core/writer.c trims after small batches). The price is CPU: a
 * 200-tx block's pages no longer all fit and are read again, 1.25 s of CPU a minute at the head
 * instead of 0.8 (1 MiB cost as little CPU as 4 MiB, but kept the process above 19 MiB). */
#define HEAD_CACHE_KIB 512

/* The connection's page cache as set at open (SQLite's default, or the derived tables' size). */
static int cache_kib(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    sqlite3_int64 v = -2000, page = 65536;
    if (sqlite3_prepare_v2(db,
                           "SELECT cache_size, page_size FROM pragma_cache_size, "
                           "pragma_page_size",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
        page = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return (int)(v < 0 ? -v : v * page / 1024);
}

static void fit_cache(sqlite_sink *s, const bp_batch *batch)
{
    bool head = bp_budget_head_batch(batch);
    if (head == s->head_cache)
        return;
    char sql[48];
    snprintf(sql, sizeof(sql), "PRAGMA cache_size = -%d", head ? HEAD_CACHE_KIB : s->cache_kib);
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return;
    s->head_cache = head;
}

static int arch_tables(sqlite_sink *s, bp_error *err);

/* What a group's derived rows may hold before the output ends it at a batch of its own (the
 * pipeline's bounds, core/outputs.c, come first on any ordinary chain): within the 8 MiB an
 * output with derived tables has in the budget's fixed part. */
#define GROUP_HELD_BYTES (2u << 20)

/* A failure with the transaction open since an earlier batch: that batch and every one after
 * it are rolled back too, which the pipeline counts written. Not transient (a retry would
 * write this batch alone, after a gap): the output stops or is set aside, and the pipeline
 * goes back to the checkpoint it reads then, as a restart would. */
static int group_lost(sqlite_sink *s, bp_error *err)
{
    s->lost = s->base.rewind = true;
    bp_error_prefix(err,
                    "%s: the batches held in one transaction since block %" PRIu64
                    " were rolled back with this failure (written again from the checkpoint): ",
                    s->path, s->group_first);
    err->code = BP_EDB;
    return BP_EDB;
}

/* Ends the open transaction: commits it (with the group's held derived rows) or, rc != 0,
 * rolls it back. */
static int end_transaction(sqlite_sink *s, const bp_batch *batch, int rc, bool group, bp_error *err)
{
    if (rc == 0) {
        bp_crashpoint("sqlite.before_commit");
        if (run(s, ST_COMMIT) != SQLITE_OK)
            rc = batch ? commit_failed(s, batch, err)
                       : bp_error_set(err, BP_EDB, "%s: COMMIT: %s", s->path, s->lastmsg);
    }
    if (rc != 0 && !sqlite3_get_autocommit(s->db))
        run(s, ST_ROLLBACK);
    if (rc != 0 && s->derived)
        bp_sqlite_derived_drop(s->derived);
    if (rc != 0 && group)
        rc = group_lost(s, err);
    s->in_group = false;
    s->base.holds_open = false;
    return rc;
}

/* Behind the head (bp_batch.more) several batches share one transaction: each one's raw and
 * per-block rows are written as it comes (its blocks are freed as before), what the group's
 * batches rewrite (the hot contracts' open hour and day, a minute two batches share, the 1h and
 * 1d rollups) is held and written once, with the checkpoint, by the batch that ends the group
 * (the first without more: at the head, a REVERT, the pipeline's bounds), flush or close. A
 * crash mid-group loses the open transaction whole, its checkpoint with it. */
static int sqlite_write(bp_sink *base, const bp_batch *batch, bp_error *err)
{
    sqlite_sink *s = (sqlite_sink *)base;
    if (s->lost)
        return bp_error_set(err, BP_EDB,
                            "%s: batches this output held in one transaction were rolled back; "
                            "it writes again once the pipeline went back to its checkpoint",
                            s->path);
    /* a chain's blocks are of one family */
    if (!s->arch && batch->count && batch->events[0].block->family == BP_FAMILY_ARCH) {
        int rc = arch_tables(s, err);
        if (rc != 0)
            return end_transaction(s, NULL, rc, s->in_group, err);
    }
    bool group = s->in_group;
    if (!group) {
        fit_cache(s, batch);
        if (run(s, ST_BEGIN) != SQLITE_OK)
            return bp_error_set(err, BP_EDB, "%s: BEGIN IMMEDIATE: %s", s->path, s->lastmsg);
        if (batch->count)
            s->group_first = batch->events[0].block->number;
        snprintf(s->chain, sizeof(s->chain), "%s", batch->chain);
    } else {
        bp_crashpoint("sqlite.mid_group");
    }
    bool hold = batch->more && !has_revert(batch) && strcmp(s->chain, batch->chain) == 0 &&
                (!s->derived || bp_sqlite_derived_held_bytes(s->derived) < GROUP_HELD_BYTES);
    int rc = write_events(s, batch, hold, err);
    if (rc == 0 && hold) {
        s->in_group = true;
        s->base.holds_open = true;
        return 0;
    }
    return end_transaction(s, batch, rc, group, err);
}

/* Commits a group held open (the writer thread when no batch came for a while, a stop). */
static int sqlite_flush(bp_sink *base, bp_error *err)
{
    sqlite_sink *s = (sqlite_sink *)base;
    if (!s->in_group)
        return 0;
    int rc = s->derived ? bp_sqlite_derived_settle(s->derived, s->chain, err) : 0;
    return end_transaction(s, NULL, rc, true, err);
}

/* A u64 column: INTEGER, or the exact decimal digits stored for a value > INT64_MAX. */
static uint64_t column_u64(sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_INTEGER)
        return (uint64_t)sqlite3_column_int64(st, i);
    const char *t = (const char *)sqlite3_column_text(st, i);
    return t ? strtoull(t, NULL, 10) : 0;
}

static int sqlite_checkpoint(bp_sink *base, const char *chain, bp_checkpoint *out, bp_error *err)
{
    sqlite_sink *s = (sqlite_sink *)base;
    sqlite3_stmt *st = s->st[ST_GET_CP];
    memset(out, 0, sizeof(*out));
    s->lost = s->base.rewind = false; /* the pipeline resumes from what this reads */
    int rc = bind_text(st, 1, chain);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *h = sqlite3_column_text(st, 1);
        out->set = true;
        out->number = column_u64(st, 0);
        snprintf(out->hash, sizeof(out->hash), "%s", h ? (const char *)h : "");
        out->floor_set = sqlite3_column_type(st, 2) != SQLITE_NULL;
        out->floor = out->floor_set ? column_u64(st, 2) : 0;
        rc = SQLITE_DONE;
    }
    if (rc != SQLITE_DONE)
        bp_error_set(err, BP_EDB, "%s: reading the checkpoint of chain '%s': %s", s->path, chain,
                     sqlite3_errmsg(s->db));
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : BP_EDB;
}

static int sqlite_recent(bp_sink *base, const char *chain, bp_checkpoint *out, size_t max,
                         size_t *n, bp_error *err)
{
    sqlite_sink *s = (sqlite_sink *)base;
    sqlite3_stmt *st = s->st[ST_RECENT];
    *n = 0;
    int rc = bind_text(st, 1, chain) | sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    while (rc == SQLITE_OK && *n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *h = sqlite3_column_text(st, 1);
        bp_checkpoint *c = &out[(*n)++];
        c->set = true;
        c->number = column_u64(st, 0);
        snprintf(c->hash, sizeof(c->hash), "%s", h ? (const char *)h : "");
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK && rc != SQLITE_DONE)
        bp_error_set(err, BP_EDB, "%s: reading recent blocks of chain '%s': %s", s->path, chain,
                     sqlite3_errmsg(s->db));
    sqlite3_reset(st);
    return rc == SQLITE_OK || rc == SQLITE_DONE ? 0 : BP_EDB;
}

static void sqlite_close(bp_sink *base)
{
    sqlite_sink *s = (sqlite_sink *)base;
    if (!s)
        return;
    bp_error e = {0};
    if (s->in_group && sqlite_flush(base, &e) != 0)
        bp_err("%s", e.msg);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    bp_sqlite_derived_close(s->derived);
    bp_sqlite_arch_close(s->arch);
    free(s->run);
    free(s->run_blocks);
    sqlite3_close(s->db);
    /* after SQLite's descriptors: closing ours would drop the process's POSIX locks, SQLite's */
    bp_sqlite_locks_close(&s->locks);
    bp_buf_release(&s->wbuf);
    bp_buf_release(&s->sql);
    free(s->path);
    free(s);
}

static int sqlite_claim(bp_sink *base, const char *chain, char *holder, size_t cap, bp_error *err)
{
    sqlite_sink *s = (sqlite_sink *)base;
    return bp_sqlite_lock_take(&s->locks, s->path, chain, holder, cap, err);
}

static void sqlite_unclaim(bp_sink *base, const char *chain)
{
    sqlite_sink *s = (sqlite_sink *)base;
    bp_sqlite_lock_drop(&s->locks, chain);
}

/* ---- open ------------------------------------------------------------------------------- */

static int exec(sqlite_sink *s, const char *sql, const char *what, bp_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    int rc =
        bp_error_set(err, BP_EDB, "%s: %s: %s", s->path, what, msg ? msg : sqlite3_errmsg(s->db));
    sqlite3_free(msg);
    return rc;
}

static int user_version(sqlite_sink *s, int *out, bp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        *out = sqlite3_column_int(st, 0);
    else
        rc = bp_error_set(err, BP_EDB, "%s: reading the schema version: %s", s->path,
                          sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : BP_EDB;
}

/* The columns of schema version 3 table t lacks (SQLite has no ADD COLUMN IF NOT EXISTS),
 * appended to s->sql. */
static int add_v3_columns(sqlite_sink *s, bp_table t, bp_error *err)
{
    sqlite3_stmt *st = NULL;
    size_t first, n = bp_table_columns(t, &first);
    int rc = sqlite3_prepare_v2(s->db, "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
                                -1, &st, NULL) == SQLITE_OK
                 ? 0
                 : bp_error_set(err, BP_EDB, "%s: reading the columns: %s", s->path,
                                sqlite3_errmsg(s->db));
    for (size_t i = bp_sql_v3_first(t); rc == 0 && i < first + n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, bp_table_name(t), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, bp_columns[i].name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW)
            rc = bp_error_set(err, BP_EDB, "%s: reading the columns of %s: %s", s->path,
                              bp_table_name(t), sqlite3_errmsg(s->db));
        else if (sqlite3_column_int(st, 0) == 0 &&
                 bp_buf_printf(&s->sql, "ALTER TABLE %s ADD COLUMN %s %s;", bp_table_name(t),
                               bp_columns[i].name, sqlite_coltype(bp_columns[i].type)) != 0)
            rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    sqlite3_finalize(st);
    return rc;
}

/* Version 4: checkpoints.resync_floor, when missing (a file set back to an older version may
 * have it). */
static int add_floor_column(sqlite_sink *s, bp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db,
                                "SELECT count(*) FROM pragma_table_info('checkpoints')"
                                " WHERE name = 'resync_floor'",
                                -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        rc = sqlite3_column_int(st, 0) > 0 ||
                     bp_buf_puts(&s->sql,
                                 "ALTER TABLE checkpoints ADD COLUMN resync_floor INTEGER;") == 0
                 ? SQLITE_OK
                 : SQLITE_NOMEM;
    if (rc != SQLITE_OK)
        bp_error_set(err, BP_EDB, "%s: reading the columns of checkpoints: %s", s->path,
                     sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : BP_EDB;
}

/* Creates the schema when missing; refuses a database made by a newer blockpipe. */
static int create_schema(sqlite_sink *s, bp_error *err)
{
    int version = 0;
    int rc = exec(s, "BEGIN IMMEDIATE", "BEGIN", err);
    if (rc == 0)
        rc = user_version(s, &version, err);
    if (rc == 0 && version > SQLITE_SCHEMA_VERSION)
        rc = bp_error_set(err, BP_EDB,
                          "%s: schema version %d is newer than this program's (%d); "
                          "upgrade blockpipe",
                          s->path, version, SQLITE_SCHEMA_VERSION);
    bp_buf_reset(&s->sql);
    /* Version 3 added columns at the tables' ends (columns.h); a database made before gets
     * them here (version 0: nothing there yet, the CREATEs below make it whole). */
    for (bp_table t = 0; rc == 0 && version > 0 && version < 3 && t < BP_TABLE_COUNT; t++)
        rc = add_v3_columns(s, t, err);
    if (rc == 0 && version > 0 && version < 4)
        rc = add_floor_column(s, err);
    if (rc == 0 && version > 0) /* the Arch tables are made outside the version (arch_tables) */
        rc = bp_sqlite_arch_upgrade(s->db, s->path, &s->sql, sqlite_coltype, err);
    if (rc == 0 &&
        bp_sql_create_set(&s->sql, &bp_tables_evm, "IF NOT EXISTS ", sqlite_coltype) != 0)
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    /* (the Arch tables: when an Arch chain first writes, arch_tables) */
    if (rc == 0 &&
        (bp_buf_puts(&s->sql, g_checkpoints_ddl) != 0 || bp_sqlite_derived_schema(&s->sql) != 0))
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    if (rc == 0)
        rc = exec(s, s->sql.data, "creating the schema", err);
    if (rc == 0 && version < SQLITE_SCHEMA_VERSION)
        rc = exec(s, "PRAGMA user_version = " BP_STR(SQLITE_SCHEMA_VERSION),
                  "setting the schema version", err);
    if (rc == 0)
        return exec(s, "COMMIT", "COMMIT", err);
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int prepare(sqlite_sink *s, int i, const char *sql, bp_error *err)
{
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) != SQLITE_OK)
        return bp_error_set(err, BP_EDB, "%s: preparing \"%.60s...\": %s", s->path, sql,
                            sqlite3_errmsg(s->db));
    return 0;
}

/* Whether the file has table name. */
static int has_table(sqlite_sink *s, const char *name, bool *yes, bp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db,
                                "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                                "AND name = ?1",
                                -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        *yes = sqlite3_column_int(st, 0) > 0;
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        bp_error_set(err, BP_EDB, "%s: looking for table %s: %s", s->path, name,
                     sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : BP_EDB;
}

/* The Arch statements and recent()'s, for a file that has the Arch tables. */
static int arch_open(sqlite_sink *s, bp_error *err)
{
    int rc = s->indexes ? exec(s, g_arch_indexes_ddl, "creating the Arch lookup indexes", err) : 0;
    if (rc == 0)
        rc = bp_sqlite_arch_open(s->db, s->path, &s->arch, err);
    if (rc != 0)
        return rc;
    sqlite3_finalize(s->st[ST_RECENT]);
    s->st[ST_RECENT] = NULL;
    return prepare(s, ST_RECENT, SQLITE_RECENT_ARCH, err);
}

/* The Arch tables (CREATE ... IF NOT EXISTS, in a transaction of their own before the batch's),
 * made when an Arch chain first writes to the file: an EVM chain's file has none. A file made
 * before this has them already (every file had them), and arch_open found them at open. */
static int arch_tables(sqlite_sink *s, bp_error *err)
{
    bp_buf_reset(&s->sql);
    int rc = bp_buf_puts(&s->sql, "BEGIN IMMEDIATE;") != 0 ||
                     bp_sqlite_arch_schema(&s->sql, sqlite_coltype) != 0 ||
                     bp_buf_puts(&s->sql, "COMMIT") != 0
                 ? bp_error_set(err, BP_ENOMEM, "out of memory")
                 : exec(s, s->sql.data, "creating the Arch tables", err);
    if (rc != 0 && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc ? rc : arch_open(s, err);
}

static int prepare_all(sqlite_sink *s, bp_error *err)
{
    static const struct {
        int st;
        bp_table t;
    } ins[] = {{ST_INS_BLOCK, BP_TABLE_BLOCKS},
               {ST_INS_TX, BP_TABLE_TRANSACTIONS},
               {ST_INS_LOG, BP_TABLE_LOGS}};
    for (size_t i = 0; i < sizeof(ins) / sizeof(ins[0]); i++) {
        bp_buf_reset(&s->sql);
        if (bp_sql_insert(&s->sql, ins[i].t) != 0)
            return bp_error_set(err, BP_ENOMEM, "out of memory");
        int rc = prepare(s, ins[i].st, s->sql.data, err);
        if (rc != 0)
            return rc;
    }
    for (int i = 0; i < ST_COUNT; i++) {
        int rc = g_sql[i] ? prepare(s, i, g_sql[i], err) : 0;
        if (rc != 0)
            return rc;
    }
    bool arch = false;
    int rc = has_table(s, "arch_blocks", &arch, err);
    if (rc == 0)
        rc = arch ? arch_open(s, err) : prepare(s, ST_RECENT, SQLITE_RECENT, err);
    return rc;
}

/* SQLite's sorter (GROUP BY, DISTINCT, ORDER BY without an index) keeps at least
 * SQLITE_SORTER_PMASZ (250) pages in memory before it spills to a temporary file: with our 64
 * KiB pages 16 MiB, taken and given back within one statement and charged to nothing
 * (measured: recomputing a minute of 50,000-tx blocks from its raw transactions lifted SQLite's
 * heap from 4.6 to 20.8 MiB, the peak of the whole backfill). At 16 pages the sorter holds no
 * more than the connection's page cache (PRAGMA cache_size), which the budget counts.
 * Process-wide, and taken only before SQLite's first use (else it keeps its default). */
static void limit_sorter(void)
{
    sqlite3_config(SQLITE_CONFIG_PMASZ, 16u);
}

static int sqlite_open(bp_sink **out, const char *target, const bp_sink_opts *opts, bp_error *err)
{
    static pthread_once_t sorter_once = PTHREAD_ONCE_INIT;
    pthread_once(&sorter_once, limit_sorter);
    *out = NULL;
    int rc = BP_ENOMEM;
    sqlite_sink *s = calloc(1, sizeof(*s));
    if (s)
        bp_sqlite_locks_init(&s->locks);
    if (!s || !(s->path = strdup(target))) {
        bp_error_set(err, BP_ENOMEM, "out of memory");
        goto out;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(target, &s->db, flags, NULL) != SQLITE_OK) {
        char why[BP_ERROR_MSG_MAX];
        bp_sqlite_open_failure(target, true, why, sizeof(why));
        rc = bp_error_set(err, BP_EDB, "%s: cannot open: %s", target,
                          why[0]  ? why
                          : s->db ? sqlite3_errmsg(s->db)
                                  : "out of memory");
        goto out;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, SQLITE_BUSY_MS);
    /* 64 KiB pages (a new file only; SQLite ignores it once WAL is on): an indexer appends
     * wide rows, and 4 KiB pages cost a WAL write, a checkpoint write and B-tree work per 4 KiB.
     * Measured (1,000 200-tx blocks from simnode): 4 KiB 2.7 s, 16 KiB 2.1 s, 64 KiB 1.75 s,
     * system time 1.2 -> 0.5 s. */
    rc = exec(s, "PRAGMA page_size = 65536; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL",
              "setting WAL mode", err);
    if (rc == 0)
        rc = create_schema(s, err);
    s->indexes = opts && bp_sink_opt_int(opts, "indexes");
    if (rc == 0 && s->indexes)
        rc = exec(s, g_indexes_ddl, "creating the lookup indexes", err);
    if (rc == 0)
        rc = prepare_all(s, err);
    s->base.families = 1u << BP_FAMILY_ARCH;
    if (rc == 0) { /* also with metrics off: REVERTs take out the rows written while on */
        bp_retention ret;
        bp_retention_from_opts(opts, &ret);
        unsigned groups = 0;
        rc = bp_derived_groups_of(opts, &groups, err);
        s->metrics = groups != 0;
        if (rc == 0)
            rc = bp_sqlite_derived_open(s->db, s->path, &ret, groups, &s->derived, err);
        s->blocks = rc == 0 && (bp_sqlite_derived_groups(s->derived) & groups &
                                BP_DG_BIT(BP_DG_CHAIN_METRICS));
        s->base.derived = rc == 0 && s->metrics;
        s->base.derived_groups = groups;
        s->base.derived_late = s->base.derived;
    }
    if (rc == 0)
        s->cache_kib = cache_kib(s->db);
out:
    if (rc != 0) {
        if (s)
            sqlite_close(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}

/* Opening creates or upgrades the schema; migrate is that and a report. */
static int sqlite_migrate(const char *target, const bp_sink_opts *opts, char *report, size_t cap,
                          bp_error *err)
{
    bp_sink *s;
    int rc = sqlite_open(&s, target, opts, err), version = 0;
    if (rc != 0)
        return rc;
    rc = user_version((sqlite_sink *)s, &version, err);
    if (rc == 0)
        snprintf(report, cap, "%s: schema version %d", target, version);
    sqlite_close(s);
    return rc;
}

static const bp_sink_option g_options[] = {
    {.name = "indexes",
     .flag = "sqlite-indexes",
     .env = "SQLITE_INDEXES",
     .key = "sqlite_indexes",
     .type = BP_SINK_OPT_BOOL,
     .arg = "on|off",
     .def = "off",
     .help = "create the lookup indexes the API's queries use (by hash, address, topic0) and "
             "token_transfers' by token; on by default with --api and in serve"},
    BP_METRICS_SINK_OPTIONS};

const bp_sink_ops bp_sink_sqlite_ops = {
    .scheme = "sqlite",
    .options = g_options,
    .option_count = sizeof(g_options) / sizeof(g_options[0]),
    .title = "SQLite",
    .usage = "sqlite:PATH",
    .description = "SQLite database file (the default): blocks, transactions, logs, checkpoints "
                   "and the derived analytics tables",
    .migrate = sqlite_migrate,
    .open = sqlite_open,
    .checkpoint = sqlite_checkpoint,
    .recent = sqlite_recent,
    .write = sqlite_write,
    .flush = sqlite_flush,
    .close = sqlite_close,
    .claim = sqlite_claim,
    .unclaim = sqlite_unclaim,
    .open_reader = bp_sqlite_open_reader,
    .read = bp_sqlite_read,
    .close_reader = bp_sqlite_close_reader,
};
