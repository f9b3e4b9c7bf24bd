/* sqlite_read.c - reading the SQLite output back (the API): read-only connection, statements
 * made by sqlread.c and kept prepared per query shape. */
#include "sink/sqlite_read.h"

#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "arch/arch_tables.h"
#include "sink/sqlread.h"
#include "util/buf.h"

#define READ_BUSY_MS 5000
#define READ_CACHE_KIB 512 /* see bp_sqlite_open_reader */
#define CACHE_SLOTS 32     /* prepared statements kept, by SQL text (a few shapes per endpoint) */

typedef struct cached {
    char *sql;
    sqlite3_stmt *st;
    uint64_t used;
} cached;

typedef struct sqlite_reader {
    bp_sink_reader base;
    sqlite3 *db;
    char *path;
    bp_buf sql;
    cached cache[CACHE_SLOTS];
    uint64_t tick;
    bool arch_found[BP_ARCH_TABLE_COUNT]; /* in sqlite_master once: the writer drops none */
} sqlite_reader;

static int select_expr(bp_buf *out, const bp_column *c)
{
    /* A REAL as text has 15 digits: 17 give the double back exactly (NULL stays NULL). */
    if (c->type == BP_COL_FLOAT)
        return bp_buf_printf(out, "iif(%s IS NULL, NULL, printf('%%!.17g', %s))", c->name, c->name);
    return bp_buf_puts(out, c->name);
}

static int param(bp_buf *out, int n, enum bp_sql_param_kind k)
{
    (void)n;
    (void)k;
    return bp_buf_putc(out, '?');
}

/* Arch hashes are stored as the bare hex text they are read as. */
static int arch_hash_expr(bp_buf *out, const char *column)
{
    return bp_buf_puts(out, column);
}

static const bp_sql_dialect g_dialect = {
    .select_expr = select_expr, .param = param, .arch_hash_expr = arch_hash_expr};

void bp_sqlite_open_failure(const char *path, bool create, char *out, size_t cap)
{
    out[0] = '\0';
    struct stat st;
    if (!create) {
        if (stat(path, &st) != 0 && errno == ENOENT)
            snprintf(out, cap, "no such file (a writer creates it: blockpipe run or backfill)");
        return;
    }
    if (stat(path, &st) == 0)
        return; /* it exists: SQLite's own words (a directory, not a database, ...) */
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return; /* the current or the root directory */
    char dir[4096];
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    if (stat(dir, &st) != 0 && errno == ENOENT)
        snprintf(out, cap,
                 "the directory '%s' does not exist (blockpipe creates the file, not its "
                 "directory)",
                 dir);
    else if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode))
        snprintf(out, cap, "'%s' is not a directory", dir);
}

int bp_sqlite_open_reader(bp_sink_reader **out, const char *target, const bp_sink_opts *opts,
                          bp_error *err)
{
    (void)opts;
    *out = NULL;
    sqlite_reader *r = calloc(1, sizeof(*r));
    if (!r || !(r->path = strdup(target))) {
        free(r);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    bp_buf_init(&r->sql, 0);
    /* Read-only: the reader never creates the file nor takes a write lock; WAL readers see the
     * last committed batch and never wait for the writer. */
    int flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(target, &r->db, flags, NULL) != SQLITE_OK) {
        char why[BP_ERROR_MSG_MAX];
        bp_sqlite_open_failure(target, false, why, sizeof(why));
        int rc = bp_error_set(err, BP_EDB, "%s: cannot open for reading: %s", target,
                              why[0]  ? why
                              : r->db ? sqlite3_errmsg(r->db)
                                      : "out of memory");
        bp_sqlite_close_reader(&r->base);
        return rc;
    }
    sqlite3_busy_timeout(r->db, READ_BUSY_MS);
    /* Its page cache as the writer's at the head (sqlite.c HEAD_CACHE_KIB), not SQLite's 2 MiB:
     * the API's readers (the push hub's, each REST connection's) read a block's rows once,
     * the file's pages stay in the OS's cache, and at the head with a push client the default
     * was 2 MiB of the 20 MB a chain may hold (tests/integration/test_memory_push_head.py). */
    char sql[48];
    snprintf(sql, sizeof(sql), "PRAGMA cache_size = -%d", READ_CACHE_KIB);
    sqlite3_exec(r->db, sql, NULL, NULL, NULL);
    *out = &r->base;
    return 0;
}

/* The prepared statement of this SQL text (prepared once, the least recently used dropped). */
static sqlite3_stmt *statement(sqlite_reader *r, const char *sql)
{
    cached *victim = &r->cache[0];
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        cached *c = &r->cache[i];
        if (c->sql && strcmp(c->sql, sql) == 0) {
            c->used = ++r->tick;
            return c->st;
        }
        if (c->used < victim->used)
            victim = c;
    }
    sqlite3_stmt *st = NULL;
    char *copy = strdup(sql);
    if (!copy ||
        sqlite3_prepare_v3(r->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        free(copy);
        sqlite3_finalize(st);
        return NULL;
    }
    sqlite3_finalize(victim->st);
    free(victim->sql);
    *victim = (cached){.sql = copy, .st = st, .used = ++r->tick};
    return st;
}

static int bind_params(sqlite3_stmt *st, const bp_sql_params *p)
{
    int rc = SQLITE_OK;
    for (int i = 0; i < p->n && rc == SQLITE_OK; i++) {
        const bp_sql_param *v = &p->p[i];
        if (v->kind == BP_SQL_P_INT)
            rc = sqlite3_bind_int64(st, i + 1, (sqlite3_int64)v->u);
        else if (v->kind == BP_SQL_P_REAL)
            rc = sqlite3_bind_double(st, i + 1, strtod(v->s, NULL));
        else
            rc = sqlite3_bind_text(st, i + 1, v->s, -1, SQLITE_STATIC);
    }
    return rc;
}

static const char *table_of(const bp_read_query *q)
{
    return q->arch ? bp_arch_table_name((enum bp_arch_table)(q->arch - 1))
                   : bp_table_name(q->table);
}

static int rows(sqlite_reader *r, sqlite3_stmt *st, const char *table, bp_read_row_fn fn, void *ctx,
                bp_error *err)
{
    bp_read_cell cells[64];
    int n = sqlite3_column_count(st), rc;
    if (n > 64)
        return bp_error_set(err, BP_EINVAL, "too many columns");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < n; i++) {
            /* A u64 above INT64_MAX is stored as a BLOB of its decimal digits (sqlite.c):
             * column_text gives those digits like any other number. */
            const char *s = (const char *)sqlite3_column_text(st, i);
            cells[i] = (bp_read_cell){s, s ? (size_t)sqlite3_column_bytes(st, i) : 0};
        }
        int frc = fn(ctx, cells, (size_t)n);
        if (frc != 0)
            return frc;
    }
    if (rc != SQLITE_DONE)
        return bp_error_set(err, BP_EDB, "%s: reading %s: %s", r->path, table,
                            sqlite3_errmsg(r->db));
    return 0;
}

/* Whether the file has Arch table t. A file no Arch chain has written to has none (sink/sqlite.c
 * makes them at its first batch, maybe after this reader opened): sqlite_master is asked until
 * it has it. Not the prepare's error text: a real error that names a table must not read as
 * an empty one. */
static int arch_table_found(sqlite_reader *r, enum bp_arch_table t, bool *found, bp_error *err)
{
    *found = r->arch_found[t];
    if (*found)
        return 0;
    sqlite3_stmt *st =
        statement(r, "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?1");
    if (!st)
        return bp_error_set(err, BP_EDB, "%s: preparing a look for %s: %s", r->path,
                            bp_arch_table_name(t), sqlite3_errmsg(r->db));
    int rc = sqlite3_bind_text(st, 1, bp_arch_table_name(t), -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    *found = r->arch_found[t] = rc == SQLITE_ROW;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return bp_error_set(err, BP_EDB, "%s: looking for %s: %s", r->path, bp_arch_table_name(t),
                            sqlite3_errmsg(r->db));
    return 0;
}

int bp_sqlite_read(bp_sink_reader *base, const bp_read_query *q, bp_read_row_fn fn, void *ctx,
                   bp_error *err)
{
    sqlite_reader *r = (sqlite_reader *)base;
    bp_sql_params p;
    bp_buf_reset(&r->sql);
    int rc = bp_sql_select(&r->sql, q, &g_dialect, &p, err);
    if (rc != 0)
        return rc;
    if (q->arch) { /* bp_sql_select checked its range */
        bool found;
        rc = arch_table_found(r, (enum bp_arch_table)(q->arch - 1), &found, err);
        if (rc != 0 || !found)
            return rc; /* none yet: nothing to read, as from an empty table */
    }
    sqlite3_stmt *st = statement(r, r->sql.data);
    if (!st)
        return bp_error_set(err, BP_EDB, "%s: preparing a read of %s: %s", r->path, table_of(q),
                            sqlite3_errmsg(r->db));
    if (bind_params(st, &p) != SQLITE_OK)
        rc = bp_error_set(err, BP_EDB, "%s: bind: %s", r->path, sqlite3_errmsg(r->db));
    else
        rc = rows(r, st, table_of(q), fn, ctx, err);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

void bp_sqlite_close_reader(bp_sink_reader *base)
{
    sqlite_reader *r = (sqlite_reader *)base;
    if (!r)
        return;
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        sqlite3_finalize(r->cache[i].st);
        free(r->cache[i].sql);
    }
    sqlite3_close(r->db);
    bp_buf_release(&r->sql);
    free(r->path);
    free(r);
}
