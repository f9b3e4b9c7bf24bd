/* sqlite_bench.c - the SQLite output's speed: a chain's blocks through blockpipe's sink, and
 * the same rows through a plain C program doing the sink's work (the database's own limit for
 * it), driven by bench/ingest_bench.py.
 *
 *   bench_sqlite sink URL FIRST LAST DB BATCH BOUNDS
 *       blocks FIRST..LAST fetched from the node at URL and decoded by blockpipe's own fetch
 *       (before each batch's clock starts), then written through the sqlite output in
 *       batches cut as blockpipe's coordinator cuts them (BATCH blocks, or fewer once they
 *       hold 32 MiB decoded): one write, so one transaction with the checkpoint upsert, each.
 *       Each batch's first and last block number go to a line of the file BOUNDS.
 *   bench_sqlite plain SRC_DB DB BOUNDS
 *       the rows SRC_DB holds (a database the sink wrote), for each batch of BOUNDS read into
 *       memory before the batch's clock starts, then what the sink sends for it: BEGIN
 *       IMMEDIATE, per block its blocks row, its transactions and its logs (prepared
 *       statements), the checkpoint upsert, COMMIT. Same tables and keys (copied from
 *       SRC_DB), same pragmas (64 KiB pages, WAL, synchronous NORMAL).
 * Each prints "rows=N seconds=S rows_per_s=R batches=B"; seconds count only the database
 * work. */
#include <inttypes.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blockpipe/sink.h"
#include "chain/fetch.h"
#include "chain/rpc.h"
#include "util/arena.h"

#define PER_REQUEST 10 /* blocks per fetch: not timed, any size does */
/* A batch also ends at this many decoded bytes: src/core/pipeline.c's BP_BATCH_MAX_BYTES. */
#define BATCH_MAX_BYTES ((size_t)32 << 20)
#define PRAGMAS "PRAGMA page_size = 65536; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(uint64_t rows, double secs, size_t batches)
{
    printf("rows=%" PRIu64 " seconds=%.3f rows_per_s=%.0f batches=%zu\n", rows, secs,
           (double)rows / secs, batches);
}

/* ---- sink: blockpipe's fetch and decode, then the sqlite output -------------------------- */

/* The node's blocks in order, fetched PER_REQUEST at a time (not timed). */
typedef struct source {
    bp_rpc *rpc;
    bp_fetch_shared sh;
    uint64_t next, last;
    bp_block *ahead[PER_REQUEST];
    size_t pos, count;
} source;

/* The next block (the caller owns it), NULL after the last one or on a failure (*rc). */
static bp_block *next_block(source *src, int *rc)
{
    if (src->pos == src->count && src->next <= src->last) {
        size_t k = src->last - src->next + 1 < PER_REQUEST ? (size_t)(src->last - src->next + 1)
                                                           : PER_REQUEST;
        int rcs[PER_REQUEST];
        bp_error errs[PER_REQUEST];
        *rc = bp_fetch_range(src->rpc, &src->sh, src->next, k, src->ahead, rcs, errs);
        for (size_t i = 0; *rc != 0 && i < k; i++) {
            if (rcs[i] != 0)
                fprintf(stderr, "bench_sqlite: %s\n", errs[i].msg);
            bp_block_free(src->ahead[i]);
        }
        if (*rc != 0)
            return NULL;
        src->next += k;
        src->pos = 0;
        src->count = k;
    }
    return src->pos < src->count ? src->ahead[src->pos++] : NULL;
}

/* The next batch as blockpipe's coordinator cuts it: `batch` blocks, or fewer when their
 * decoded size reaches BATCH_MAX_BYTES first. Returns the number of blocks put in bl[]. */
static size_t next_batch(source *src, bp_block **bl, size_t batch, int *rc)
{
    size_t n = 0, bytes = 0;
    while (n < batch && bytes < BATCH_MAX_BYTES && (bl[n] = next_block(src, rc)) != NULL)
        bytes += bp_arena_held(bl[n++]->arena);
    return n;
}

/* One write() of n blocks; adds its seconds and rows. */
static int write_batch_sink(bp_sink *s, const char *chain, uint64_t chain_id, bp_block **bl,
                            bp_event *ev, size_t n, double *secs, uint64_t *rows, bp_error *err)
{
    for (size_t k = 0; k < n; k++) {
        ev[k] = (bp_event){.kind = BP_EVENT_APPLY, .block = bl[k]};
        *rows += 1 + bl[k]->tx_count + (bl[k]->has_receipts ? bl[k]->log_count : 0);
    }
    bp_batch b = {.chain = chain, .chain_id = chain_id, .events = ev, .count = n};
    b.checkpoint = (bp_checkpoint){.set = true, .number = bl[n - 1]->number};
    snprintf(b.checkpoint.hash, sizeof(b.checkpoint.hash), "%s", bl[n - 1]->hash);
    double t0 = now_s();
    int rc = s->ops->write(s, &b, err);
    *secs += now_s() - t0;
    return rc;
}

/* Blocks go through the sink one batch at a time, each fetched before its write is timed (the
 * process holds one batch, as blockpipe's writer does); seconds are the write() calls. Each
 * batch's first and last block go to a line of `bounds` for the plain writer. */
static int bench_sink(const char *url, uint64_t first, uint64_t last, const char *db, size_t batch,
                      const char *bounds)
{
    bp_error err = {0};
    bp_sink *s = NULL;
    source src = {.next = first, .last = last};
    bp_block **bl = calloc(batch, sizeof(*bl));
    bp_event *ev = calloc(batch, sizeof(*ev));
    FILE *bf = fopen(bounds, "w");
    uint64_t chain_id = 0, rows = 0;
    size_t n, batches = 0;
    char chain[32];
    double secs = 0;
    bp_fetch_shared_init(&src.sh, BP_FETCH_ALL);
    bp_rpc_config cfg = {.url = url};
    int rc = bl && ev ? 0 : bp_error_set(&err, BP_ENOMEM, "out of memory");
    if (rc == 0 && !bf)
        rc = bp_error_set(&err, BP_EIO, "cannot write %s", bounds);
    if (rc == 0)
        rc = bp_rpc_global_init(&err);
    if (rc == 0)
        rc = bp_rpc_new(&src.rpc, &cfg, &err);
    if (rc == 0)
        rc = bp_rpc_chain_id(src.rpc, &chain_id, &err);
    snprintf(chain, sizeof(chain), "%" PRIu64, chain_id); /* blockpipe's default name */
    char sink_url[4096];
    snprintf(sink_url, sizeof(sink_url), "sqlite:%s", db);
    if (rc == 0)
        rc = bp_sink_open_url(sink_url, &s, &err);
    while (rc == 0 && (n = next_batch(&src, bl, batch, &rc)) > 0) {
        if (rc == 0) { /* a fetch failure (named already) leaves a short batch: not written */
            fprintf(bf, "%" PRIu64 " %" PRIu64 "\n", bl[0]->number, bl[n - 1]->number);
            batches++;
            rc = write_batch_sink(s, chain, chain_id, bl, ev, n, &secs, &rows, &err);
        }
        for (size_t k = 0; k < n; k++)
            bp_block_free(bl[k]);
    }
    if (rc == 0)
        report(rows, secs, batches);
    else if (err.msg[0])
        fprintf(stderr, "bench_sqlite: %s\n", err.msg);
    if (bf && fclose(bf) != 0 && rc == 0)
        rc = 1;
    if (s)
        bp_sink_close(s);
    bp_rpc_free(src.rpc);
    bp_rpc_global_cleanup();
    free(bl);
    free(ev);
    return rc != 0;
}

/* ---- plain: the same rows from a database the sink wrote -------------------------------- */

enum { T_BLOCKS, T_TXS, T_LOGS, TABLES };
static const char *const g_tables[TABLES] = {"blocks", "transactions", "logs"};
static const char *const g_number_col[TABLES] = {"number", "block_number", "block_number"};
static const char *const g_order[TABLES] = {"number", "block_number, transaction_index",
                                            "block_number, log_index"};

/* One batch's rows of one table, in key order (the order the sink inserts them). */
typedef struct rows {
    int cols, number_col, hash_col;
    size_t n, cap;
    sqlite3_value **vals; /* n * cols */
} rows;

static void die(sqlite3 *db, const char *what)
{
    fprintf(stderr, "bench_sqlite: %s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
    exit(1);
}

static void rows_clear(rows *r)
{
    for (size_t i = 0; i < r->n * (size_t)r->cols; i++)
        sqlite3_value_free(r->vals[i]);
    r->n = 0;
}

static void load(sqlite3_stmt *sel, int64_t lo, int64_t hi, rows *r)
{
    rows_clear(r);
    sqlite3_bind_int64(sel, 1, lo);
    sqlite3_bind_int64(sel, 2, hi);
    r->cols = sqlite3_column_count(sel);
    while (sqlite3_step(sel) == SQLITE_ROW) {
        if (r->n == r->cap) {
            r->cap = r->cap ? 2 * r->cap : 1024;
            r->vals = realloc(r->vals, r->cap * (size_t)r->cols * sizeof(*r->vals));
            if (!r->vals)
                die(NULL, "out of memory");
        }
        for (int c = 0; c < r->cols; c++)
            r->vals[r->n * (size_t)r->cols + (size_t)c] =
                sqlite3_value_dup(sqlite3_column_value(sel, c));
        r->n++;
    }
    sqlite3_reset(sel);
}

static int64_t number_of(const rows *r, size_t i)
{
    return sqlite3_value_int64(r->vals[i * (size_t)r->cols + (size_t)r->number_col]);
}

/* Binds row i as it is stored (text and blobs without a copy, as the sink binds its strings). */
static void bind_row(sqlite3 *db, sqlite3_stmt *st, const rows *r, size_t i)
{
    for (int c = 0; c < r->cols; c++) {
        sqlite3_value *v = r->vals[i * (size_t)r->cols + (size_t)c];
        int rc;
        switch (sqlite3_value_type(v)) {
        case SQLITE_INTEGER:
            rc = sqlite3_bind_int64(st, c + 1, sqlite3_value_int64(v));
            break;
        case SQLITE_FLOAT:
            rc = sqlite3_bind_double(st, c + 1, sqlite3_value_double(v));
            break;
        case SQLITE_TEXT:
            rc = sqlite3_bind_text(st, c + 1, (const char *)sqlite3_value_text(v),
                                   sqlite3_value_bytes(v), SQLITE_STATIC);
            break;
        case SQLITE_BLOB:
            rc = sqlite3_bind_blob(st, c + 1, sqlite3_value_blob(v), sqlite3_value_bytes(v),
                                   SQLITE_STATIC);
            break;
        default:
            rc = sqlite3_bind_null(st, c + 1);
        }
        if (rc != SQLITE_OK)
            die(db, "bind");
    }
}

static void step(sqlite3 *db, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        die(db, what);
    sqlite3_reset(st);
}

/* Inserts r's rows of block `number` from *next on; returns how many. */
static size_t insert_block_rows(sqlite3 *db, sqlite3_stmt *ins, const rows *r, size_t *next,
                                int64_t number)
{
    size_t done = 0;
    for (; *next < r->n && number_of(r, *next) == number; (*next)++, done++) {
        bind_row(db, ins, r, *next);
        step(db, ins, "insert");
    }
    return done;
}

/* The sink's transaction for one batch (rows t[] loaded); returns the rows inserted. */
static size_t write_batch(sqlite3 *db, sqlite3_stmt *st[], const rows t[], const char *chain)
{
    size_t next[TABLES] = {0}, n = 0;
    step(db, st[3], "BEGIN IMMEDIATE");
    for (size_t b = 0; b < t[T_BLOCKS].n; b++) {
        int64_t number = number_of(&t[T_BLOCKS], b);
        for (int k = 0; k < TABLES; k++)
            n += insert_block_rows(db, st[k], &t[k], &next[k], number);
    }
    const rows *bl = &t[T_BLOCKS];
    sqlite3_value *const *lastrow = bl->vals + (bl->n - 1) * (size_t)bl->cols;
    sqlite3_bind_text(st[5], 1, chain, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st[5], 2, number_of(bl, bl->n - 1));
    sqlite3_bind_text(st[5], 3, (const char *)sqlite3_value_text(lastrow[bl->hash_col]), -1,
                      SQLITE_STATIC);
    step(db, st[5], "checkpoint");
    step(db, st[4], "COMMIT");
    return n;
}

static void copy_schema(sqlite3 *src, sqlite3 *dst)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(src,
                           "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT "
                           "LIKE 'sqlite_%' ORDER BY type DESC",
                           -1, &st, NULL) != SQLITE_OK)
        die(src, "schema");
    while (sqlite3_step(st) == SQLITE_ROW)
        if (sqlite3_exec(dst, (const char *)sqlite3_column_text(st, 0), NULL, NULL, NULL) !=
            SQLITE_OK)
            die(dst, "create");
    sqlite3_finalize(st);
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
        die(db, sql);
    return st;
}

/* st[0..2]: inserts into blocks, transactions, logs; 3 BEGIN, 4 COMMIT, 5 checkpoint upsert
 * (the sink's statement); sel[0..2]: one batch of each table from src. */
static void prepare_all(sqlite3 *src, sqlite3 *dst, sqlite3_stmt *st[6], sqlite3_stmt *sel[],
                        rows t[])
{
    for (int k = 0; k < TABLES; k++) {
        char sql[512];
        snprintf(sql, sizeof(sql), "SELECT * FROM %s WHERE %s BETWEEN ? AND ? ORDER BY %s",
                 g_tables[k], g_number_col[k], g_order[k]);
        sel[k] = prepare(src, sql);
        t[k].cols = sqlite3_column_count(sel[k]);
        for (int c = 0; c < t[k].cols; c++)
            if (strcmp(sqlite3_column_name(sel[k], c), g_number_col[k]) == 0)
                t[k].number_col = c;
            else if (strcmp(sqlite3_column_name(sel[k], c), "hash") == 0)
                t[k].hash_col = c;
        int n = snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES(?", g_tables[k]);
        for (int c = 1; c < t[k].cols; c++)
            n += snprintf(sql + n, sizeof(sql) - (size_t)n, ",?");
        snprintf(sql + n, sizeof(sql) - (size_t)n, ")");
        st[k] = prepare(dst, sql);
    }
    st[3] = prepare(dst, "BEGIN IMMEDIATE");
    st[4] = prepare(dst, "COMMIT");
    st[5] = prepare(dst, "INSERT INTO checkpoints(chain, output, number, hash, updated_at)"
                         " VALUES(?, 'sqlite', ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
                         " ON CONFLICT(chain, output) DO UPDATE SET number = excluded.number,"
                         " hash = excluded.hash, updated_at = excluded.updated_at");
}

static int bench_plain(const char *src_path, const char *dst_path, const char *bounds)
{
    FILE *bf = fopen(bounds, "r");
    if (!bf)
        die(NULL, bounds);
    sqlite3 *src, *dst;
    sqlite3_stmt *st[6], *sel[TABLES];
    rows t[TABLES] = {{0}};
    char chain[64];
    if (sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        die(src, src_path);
    remove(dst_path);
    if (sqlite3_open_v2(dst_path, &dst,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        die(dst, dst_path);
    if (sqlite3_exec(dst, PRAGMAS, NULL, NULL, NULL) != SQLITE_OK)
        die(dst, PRAGMAS);
    copy_schema(src, dst);
    prepare_all(src, dst, st, sel, t);
    sqlite3_stmt *cs = prepare(src, "SELECT chain FROM blocks LIMIT 1");
    if (sqlite3_step(cs) != SQLITE_ROW)
        die(src, "no blocks in the source database");
    snprintf(chain, sizeof(chain), "%s", (const char *)sqlite3_column_text(cs, 0));
    sqlite3_finalize(cs);
    uint64_t total = 0;
    size_t batches = 0;
    double secs = 0;
    long long lo, hi;
    while (fscanf(bf, "%lld %lld", &lo, &hi) == 2) {
        for (int k = 0; k < TABLES; k++)
            load(sel[k], lo, hi, &t[k]);
        if (t[T_BLOCKS].n != (size_t)(hi - lo + 1))
            die(NULL, "the source database lacks blocks of a batch");
        double t0 = now_s();
        total += write_batch(dst, st, t, chain);
        secs += now_s() - t0;
        batches++;
    }
    fclose(bf);
    report(total, secs, batches);
    for (int k = 0; k < TABLES; k++) {
        rows_clear(&t[k]);
        free(t[k].vals);
        sqlite3_finalize(sel[k]);
    }
    for (int k = 0; k < 6; k++)
        sqlite3_finalize(st[k]);
    sqlite3_close(src);
    sqlite3_close(dst);
    return 0;
}

int main(int argc, char **argv)
{
    size_t batch = argc == 8 ? strtoul(argv[6], NULL, 10) : 0;
    if (argc == 8 && strcmp(argv[1], "sink") == 0 && batch > 0)
        return bench_sink(argv[2], strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10),
                          argv[5], batch, argv[7]);
    if (argc == 5 && strcmp(argv[1], "plain") == 0)
        return bench_plain(argv[2], argv[3], argv[4]);
    fprintf(stderr, "usage: bench_sqlite sink URL FIRST LAST DB BATCH BOUNDS | plain SRC_DB DB "
                    "BOUNDS\n");
    return 2;
}
