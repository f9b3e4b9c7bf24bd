/* pg_read.c - reading the PostgreSQL output back (the API): its own connection, read-only
 * transactions, hashes and addresses converted between bytea and 0x-hex in the SQL. */
#include "sink/pg_read.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink/pg_conn.h"
#include "sink/sqlread.h"
#include "util/buf.h"

/* A query the API waits for must not hang a worker thread: the server cancels it then. */
#define READ_SETUP "SET default_transaction_read_only = on; SET statement_timeout = '10s'"

#define PREPARED_MAX 32 /* statements kept prepared per connection, by SQL text */

typedef struct prepared {
    char *sql;
    uint64_t used;
} prepared;

typedef struct pg_reader {
    bp_sink_reader base;
    bp_pg_target t;
    PGconn *conn;
    bp_buf sql;
    prepared prep[PREPARED_MAX]; /* statement "bp_r<i>" is prep[i] on this connection */
    uint64_t tick;
} pg_reader;

static void forget_prepared(pg_reader *r)
{
    for (size_t i = 0; i < PREPARED_MAX; i++) {
        free(r->prep[i].sql);
        r->prep[i] = (prepared){0};
    }
}

static int select_expr(bp_buf *out, const bp_column *c)
{
    switch (c->type) {
    case BP_COL_HASH:
    case BP_COL_ADDRESS:
    case BP_COL_BYTES:
        return bp_buf_printf(out, "'0x' || encode(%s, 'hex')", c->name);
    case BP_COL_UINT64:
    case BP_COL_UINT256:
    case BP_COL_JSON:
        return bp_buf_printf(out, "%s::text", c->name);
    case BP_COL_BOOL: /* 0 / 1 as the other outputs store it */
        return bp_buf_printf(out, "%s::int::text", c->name);
    default:
        return bp_buf_puts(out, c->name);
    }
}

static int param(bp_buf *out, int n, enum bp_sql_param_kind k)
{
    if (k == BP_SQL_P_HEX)
        return bp_buf_printf(out, "decode($%d, 'hex')", n);
    if (k == BP_SQL_P_INT)
        return bp_buf_printf(out, "$%d::bigint", n);
    if (k == BP_SQL_P_REAL)
        return bp_buf_printf(out, "$%d::double precision", n);
    return bp_buf_printf(out, "$%d", n);
}

/* Arch hashes are bytea (sink/pg_arch.c), read as the bare hex SQLite stores. */
static int arch_hash_expr(bp_buf *out, const char *column)
{
    return bp_buf_printf(out, "encode(%s, 'hex')", column);
}

static const bp_sql_dialect g_dialect = {
    .select_expr = select_expr, .param = param, .arch_hash_expr = arch_hash_expr};

static int connect_reader(pg_reader *r, bp_error *err)
{
    PQfinish(r->conn);
    r->conn = NULL;
    forget_prepared(r); /* they lived on that connection */
    int rc = bp_pg_connect(&r->t, &r->conn, err);
    if (rc == 0)
        rc = bp_pg_exec(r->conn, READ_SETUP, NULL, "setting up a reader", err);
    return rc;
}

int bp_pg_open_reader(bp_sink_reader **out, const char *target, const bp_sink_opts *opts,
                      bp_error *err)
{
    *out = NULL;
    pg_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    bp_buf_init(&r->sql, 0);
    int rc = bp_pg_target_init(&r->t, target, opts, err);
    if (rc == 0) {
        r->t.wait_for_db = 0; /* a request does not wait for a database that is down */
        rc = connect_reader(r, err);
    }
    if (rc != 0) {
        bp_pg_close_reader(&r->base);
        return rc;
    }
    *out = &r->base;
    return 0;
}

static int failed(pg_reader *r, PGresult **res, bp_error *err)
{
    char msg[BP_ERROR_MSG_MAX];
    bp_pg_errmsg(r->conn, *res, msg, sizeof(msg));
    int rc = bp_pg_conn_lost(r->conn, *res) ? BP_ETRANSPORT : BP_EDB;
    PQclear(*res);
    *res = NULL;
    return bp_error_set(err, rc, "%s: %s", r->t.where, msg);
}

/* The prepared statement of the SQL text in r->sql: its slot, prepared once (the least
 * recently used one is replaced): planning a wide SELECT is a good part of a point read. */
static int statement(pg_reader *r, int nparams, char *name, size_t cap, bp_error *err)
{
    size_t slot = 0;
    for (size_t i = 0; i < PREPARED_MAX; i++) {
        if (r->prep[i].sql && strcmp(r->prep[i].sql, r->sql.data) == 0) {
            r->prep[i].used = ++r->tick;
            snprintf(name, cap, "bp_r%zu", i);
            return 0;
        }
        if (r->prep[i].used < r->prep[slot].used)
            slot = i;
    }
    snprintf(name, cap, "bp_r%zu", slot);
    if (r->prep[slot].sql) {
        char sql[64];
        snprintf(sql, sizeof(sql), "DEALLOCATE %s", name);
        bp_pg_wait_begin(r->conn);
        PQclear(PQexec(r->conn, sql));
        bp_pg_wait_end(r->conn);
        free(r->prep[slot].sql);
        r->prep[slot] = (prepared){0};
    }
    bp_pg_wait_begin(r->conn);
    PGresult *res = PQprepare(r->conn, name, r->sql.data, nparams, NULL);
    bp_pg_wait_end(r->conn);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return failed(r, &res, err);
    PQclear(res);
    r->prep[slot] = (prepared){.sql = strdup(r->sql.data), .used = ++r->tick};
    return r->prep[slot].sql ? 0 : bp_error_set(err, BP_ENOMEM, "out of memory");
}

static int run(pg_reader *r, const bp_sql_params *p, PGresult **res, bp_error *err)
{
    const char *values[BP_SQL_MAX_PARAMS];
    char nums[BP_SQL_MAX_PARAMS][24], name[32];
    for (int i = 0; i < p->n; i++) {
        const bp_sql_param *v = &p->p[i];
        if (v->kind == BP_SQL_P_INT) {
            snprintf(nums[i], sizeof(nums[i]), "%" PRIu64, v->u);
            values[i] = nums[i];
        } else {
            values[i] = v->kind == BP_SQL_P_HEX && strncmp(v->s, "0x", 2) == 0 ? v->s + 2 : v->s;
        }
    }
    *res = NULL;
    int rc = statement(r, p->n, name, sizeof(name), err);
    if (rc != 0)
        return rc;
    bp_pg_wait_begin(r->conn);
    *res = PQexecPrepared(r->conn, name, p->n, values, NULL, NULL, 0);
    bp_pg_wait_end(r->conn);
    return PQresultStatus(*res) == PGRES_TUPLES_OK ? 0 : failed(r, res, err);
}

static int rows(PGresult *res, bp_read_row_fn fn, void *ctx, bp_error *err)
{
    bp_read_cell cells[64];
    int n = PQnfields(res);
    if (n > 64)
        return bp_error_set(err, BP_EINVAL, "too many columns");
    for (int row = 0; row < PQntuples(res); row++) {
        for (int i = 0; i < n; i++)
            cells[i] = PQgetisnull(res, row, i) ? (bp_read_cell){NULL, 0}
                                                : (bp_read_cell){PQgetvalue(res, row, i),
                                                                 (size_t)PQgetlength(res, row, i)};
        int rc = fn(ctx, cells, (size_t)n);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int bp_pg_read(bp_sink_reader *base, const bp_read_query *q, bp_read_row_fn fn, void *ctx,
               bp_error *err)
{
    pg_reader *r = (pg_reader *)base;
    bp_sql_params p;
    bp_buf_reset(&r->sql);
    int rc = bp_sql_select(&r->sql, q, &g_dialect, &p, err);
    if (rc != 0)
        return rc;
    if (!r->conn || PQstatus(r->conn) != CONNECTION_OK)
        rc = connect_reader(r, err);
    PGresult *res = NULL;
    if (rc == 0)
        rc = run(r, &p, &res, err);
    if (rc == BP_ETRANSPORT && connect_reader(r, err) == 0) /* once, after a lost connection */
        rc = run(r, &p, &res, err);
    if (rc == 0)
        rc = rows(res, fn, ctx, err);
    PQclear(res);
    return rc;
}

void bp_pg_close_reader(bp_sink_reader *base)
{
    pg_reader *r = (pg_reader *)base;
    if (!r)
        return;
    PQfinish(r->conn);
    forget_prepared(r);
    bp_pg_target_release(&r->t);
    bp_buf_release(&r->sql);
    free(r);
}
