/* pg_bench.c - the PostgreSQL output's speed: synthetic blocks through the sink, and the same
 * rows through plain libpq in the same transaction shape (the database's own limit for that
 * work), driven by bench/pg_bench.py.
 *
 *   pg_bench sink URL BLOCKS TXS_PER_BLOCK BATCH   blocks through the postgres output, BATCH
 *                                                  blocks per write (one transaction each)
 *   pg_bench copy CONNINFO SCHEMA DIR BATCHES FMT  per batch i, one transaction: BEGIN + read
 *       the checkpoint, COPY SCHEMA.{blocks,transactions,logs} FROM STDIN (FORMAT FMT) of
 *       DIR/<i>.{blocks,transactions,logs}, upsert the checkpoint DIR/<i>.checkpoint holds
 *       ("number<TAB>hex hash"), COMMIT - what the sink sends for a batch
 * Each prints one line: "rows=N seconds=S rows_per_s=R"; seconds count only the database
 * work (building blocks and reading files happen before each batch's clock starts). */
#include <inttypes.h>
#include <stdbool.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blockpipe/sink.h"
#include "synth.h"
#include "util/buf.h"

static const char *const g_tables[] = {"blocks", "transactions", "logs"};
#define TABLES 3
#define CHUNK (1u << 20) /* PQputCopyData piece, as the sink sends */

static bool exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "pg_bench: %.60s...: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return ok;
}

/* One COPY ... FROM STDIN of data; adds the rows the server stored to *rows. */
static bool copy_in(PGconn *c, const char *schema, const char *table, const char *fmt,
                    const char *data, size_t len, uint64_t *rows)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "COPY %s.%s FROM STDIN (FORMAT %s)", schema, table, fmt);
    PGresult *r = PQexec(c, sql);
    bool ok = PQresultStatus(r) == PGRES_COPY_IN;
    PQclear(r);
    for (size_t off = 0; ok && off < len; off += CHUNK)
        ok = PQputCopyData(c, data + off, (int)(len - off < CHUNK ? len - off : CHUNK)) == 1;
    ok = PQputCopyEnd(c, ok ? NULL : "send failed") == 1 && ok;
    while ((r = PQgetResult(c)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            ok = false;
        else
            *rows += strtoull(PQcmdTuples(r), NULL, 10);
        PQclear(r);
    }
    if (!ok)
        fprintf(stderr, "pg_bench: COPY %s.%s: %s", schema, table, PQerrorMessage(c));
    return ok;
}

/* One batch as the sink writes it: BEGIN + read the checkpoint (one round trip), one COPY per
 * table, the checkpoint upsert + COMMIT (one round trip). cp is "number<TAB>hex hash". */
static bool write_batch(PGconn *c, const char *schema, const char *fmt, const bp_buf data[],
                        const char *cp, uint64_t *rows)
{
    char sql[512];
    unsigned long long number = 0;
    char hash[80] = "";
    if (sscanf(cp, "%llu %79s", &number, hash) != 2) {
        fprintf(stderr, "pg_bench: bad checkpoint file %.80s\n", cp);
        return false;
    }
    snprintf(sql, sizeof(sql),
             "BEGIN; SELECT number, '0x' || encode(hash, 'hex') FROM %s.checkpoints"
             " WHERE chain = 'bench' AND output = 'plain'",
             schema);
    bool ok = exec_ok(c, sql);
    for (int t = 0; ok && t < TABLES; t++)
        ok = copy_in(c, schema, g_tables[t], fmt, data[t].data, data[t].len, rows);
    snprintf(sql, sizeof(sql),
             "INSERT INTO %s.checkpoints(chain, output, number, hash, updated_at)"
             " VALUES('bench', 'plain', %llu, decode('%s', 'hex'), now())"
             " ON CONFLICT(chain, output) DO UPDATE SET number = excluded.number,"
             " hash = excluded.hash, updated_at = excluded.updated_at; COMMIT",
             schema, number, hash);
    return ok && exec_ok(c, sql);
}

/* The plain libpq baseline: the same rows in the sink's transaction shape, read from
 * DIR/<i>.{blocks,transactions,logs,checkpoint} for batch i; each batch's files are read
 * before its transaction is timed. */
static int bench_copy(const char *conninfo, const char *schema, const char *dir, size_t batches,
                      const char *fmt)
{
    PGconn *c = PQconnectdb(conninfo);
    bp_buf data[TABLES], cp;
    uint64_t rows = 0;
    double secs = 0;
    bool ok = PQstatus(c) == CONNECTION_OK;
    if (!ok)
        fprintf(stderr, "pg_bench: %s", PQerrorMessage(c));
    for (int t = 0; t < TABLES; t++)
        bp_buf_init(&data[t], 0);
    bp_buf_init(&cp, 0);
    for (size_t i = 0; ok && i < batches; i++) {
        for (int t = 0; ok && t < TABLES; t++)
            ok = bench_slurp("pg_bench", dir, i, g_tables[t], &data[t]);
        ok = ok && bench_slurp("pg_bench", dir, i, "checkpoint", &cp);
        double t0 = bench_now_s();
        ok = ok && write_batch(c, schema, fmt, data, cp.data, &rows);
        secs += bench_now_s() - t0;
    }
    if (ok)
        printf("rows=%" PRIu64 " seconds=%.3f rows_per_s=%.0f\n", rows, secs, (double)rows / secs);
    for (int t = 0; t < TABLES; t++)
        bp_buf_release(&data[t]);
    bp_buf_release(&cp);
    PQfinish(c);
    return !ok;
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "sink") == 0)
        return bench_sink("pg_bench", argv[2], strtoull(argv[3], NULL, 10),
                          strtoul(argv[4], NULL, 10), strtoul(argv[5], NULL, 10));
    if (argc == 7 && strcmp(argv[1], "copy") == 0)
        return bench_copy(argv[2], argv[3], argv[4], strtoul(argv[5], NULL, 10), argv[6]);
    fprintf(stderr, "usage: pg_bench sink URL BLOCKS TXS BATCH | copy CONNINFO SCHEMA DIR BATCHES "
                    "FMT\n");
    return 2;
}
