/* sqlite_insert.c - the SQLite baseline: a plain C program inserting the same rows into the
 * same schema (same tables, keys and indexes, same pragmas and page size) with prepared
 * statements, in transactions of `batch` blocks' rows - the database's own limit for what
 * blockpipe does.
 *
 * usage: bench_sqlite_insert SOURCE_DB DEST_DB [ROWS_PER_TX]
 * SOURCE_DB is a database blockpipe wrote; its rows are loaded into memory first, so only
 * the inserts are timed. Prints rows, seconds and rows/s. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct table {
    char name[64];
    int cols;
    size_t rows;
    sqlite3_value **vals; /* rows * cols */
} table;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(sqlite3 *db, const char *what)
{
    fprintf(stderr, "%s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
    exit(1);
}

static void load(sqlite3 *src, table *t)
{
    char sql[320];
    sqlite3_stmt *st;
    snprintf(sql, sizeof(sql), "SELECT * FROM %s", t->name);
    if (sqlite3_prepare_v2(src, sql, -1, &st, NULL) != SQLITE_OK)
        die(src, sql);
    t->cols = sqlite3_column_count(st);
    size_t cap = 1024;
    t->vals = malloc(cap * (size_t)t->cols * sizeof(*t->vals));
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (t->rows == cap) {
            cap *= 2;
            t->vals = realloc(t->vals, cap * (size_t)t->cols * sizeof(*t->vals));
        }
        for (int c = 0; c < t->cols; c++)
            t->vals[t->rows * (size_t)t->cols + (size_t)c] =
                sqlite3_value_dup(sqlite3_column_value(st, c));
        t->rows++;
    }
    sqlite3_finalize(st);
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

static size_t insert(sqlite3 *dst, table *t, size_t rows_per_tx)
{
    char sql[2048];
    int n = snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES(", t->name);
    for (int c = 0; c < t->cols; c++)
        n += snprintf(sql + n, sizeof(sql) - (size_t)n, c ? ",?" : "?");
    snprintf(sql + n, sizeof(sql) - (size_t)n, ")");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(dst, sql, -1, &st, NULL) != SQLITE_OK)
        die(dst, sql);
    for (size_t r = 0; r < t->rows; r++) {
        if (r % rows_per_tx == 0)
            sqlite3_exec(dst, r ? "COMMIT; BEGIN" : "BEGIN", NULL, NULL, NULL);
        for (int c = 0; c < t->cols; c++)
            sqlite3_bind_value(st, c + 1, t->vals[r * (size_t)t->cols + (size_t)c]);
        if (sqlite3_step(st) != SQLITE_DONE)
            die(dst, "insert");
        sqlite3_reset(st);
    }
    sqlite3_exec(dst, "COMMIT", NULL, NULL, NULL);
    sqlite3_finalize(st);
    return t->rows;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s SOURCE_DB DEST_DB [ROWS_PER_TX]\n", argv[0]);
        return 2;
    }
    size_t per_tx = argc > 3 ? strtoul(argv[3], NULL, 10) : 20000;
    sqlite3 *src, *dst;
    if (sqlite3_open_v2(argv[1], &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        die(src, argv[1]);
    remove(argv[2]);
    if (sqlite3_open(argv[2], &dst) != SQLITE_OK)
        die(dst, argv[2]);
    /* The source's page size too (blockpipe's sink sets it on a new file): same pragmas. */
    sqlite3_stmt *ps = NULL;
    char pragma[96] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL";
    if (sqlite3_prepare_v2(src, "PRAGMA page_size", -1, &ps, NULL) == SQLITE_OK &&
        sqlite3_step(ps) == SQLITE_ROW)
        snprintf(pragma, sizeof(pragma),
                 "PRAGMA page_size=%d; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
                 sqlite3_column_int(ps, 0));
    sqlite3_finalize(ps);
    sqlite3_exec(dst, pragma, NULL, NULL, NULL);
    copy_schema(src, dst);
    table tables[] = {{.name = "blocks"}, {.name = "transactions"}, {.name = "logs"}};
    for (size_t i = 0; i < 3; i++)
        load(src, &tables[i]);
    double t0 = now_s();
    size_t rows = 0;
    /* blocks then txs then logs, as blockpipe writes them per batch */
    for (size_t i = 0; i < 3; i++)
        rows += insert(dst, &tables[i], per_tx);
    double secs = now_s() - t0;
    printf("rows=%zu seconds=%.3f rows/s=%.0f\n", rows, secs, (double)rows / secs);
    for (size_t i = 0; i < 3; i++) {
        for (size_t k = 0; k < tables[i].rows * (size_t)tables[i].cols; k++)
            sqlite3_value_free(tables[i].vals[k]);
        free(tables[i].vals);
    }
    sqlite3_close(src);
    sqlite3_close(dst);
    return 0;
}
