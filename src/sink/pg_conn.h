/* pg_conn.h - PostgreSQL connections for the postgres output and `blockpipe migrate`: our URL
 * parameters, connecting with backoff, error classification, the versioned schema.
 *
 * URL: postgres://user:pass@host:port/db?schema=NAME&wait_for_db=SECONDS&checkpoint=NAME
 * (also postgresql://). schema, wait_for_db, checkpoint, timeout and mode are the output's options
 * (postgres.c declares them): the registry takes them out of the URL before it reaches us
 * and libpq (which refuses parameters it does not know); every other parameter (sslmode,
 * connect_timeout, ...) is passed through. */
#ifndef BP_SINK_PG_CONN_H
#define BP_SINK_PG_CONN_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "blockpipe/columns.h"
#include "blockpipe/error.h"
#include "blockpipe/sink.h"
#include "util/buf.h"

#define BP_PG_DEFAULT_SCHEMA "public"
#define BP_PG_DEFAULT_WAIT 30
#define BP_PG_DEFAULT_TIMEOUT 300
#define BP_PG_DEFAULT_CHECKPOINT "postgres"
/* The newest schema version this program knows (schema_migrations.version). */
#define BP_PG_SCHEMA_VERSION 7

typedef struct bp_pg_target {
    char *conninfo;   /* "postgresql://..." without our parameters, for libpq */
    char *where;      /* "host:port/db" for messages (never the password) */
    char *schema;     /* --pg-schema, default public */
    char *checkpoint; /* the checkpoints.output value this process owns */
    int wait_for_db;  /* seconds of connection retries at start and after a loss */
    int timeout;      /* seconds a call may wait for the server (timeout=); 0: forever */
    bool staging;     /* mode=staging: always stage + INSERT ... ON CONFLICT (benchmarks) */
} bp_pg_target;

/* Fills t from target (the URL without "postgres://" and without our parameters) and the
 * output's option values (schema, wait_for_db, checkpoint, mode; NULL: the defaults). */
int bp_pg_target_init(bp_pg_target *t, const char *target, const bp_sink_opts *opts, bp_error *err);
void bp_pg_target_release(bp_pg_target *t);

/* Connects, retrying with exponential backoff for up to t->wait_for_db seconds while the
 * server is unreachable or starting; wrong credentials, a missing database or a bad option
 * fail at once (BP_EDB). Gives BP_ETRANSPORT when the server stayed unreachable. Sets the
 * session's search_path to the schema (created by bp_pg_migrate). */
int bp_pg_connect(const bp_pg_target *t, PGconn **out, bp_error *err);

/* Who is told of each failed try of bp_pg_reconnect (retrying may be NULL). */
typedef struct bp_pg_waiter {
    void (*retrying)(void *ctx, const bp_error *why);
    void *ctx;
} bp_pg_waiter;

/* CLOCK_MONOTONIC in ms, the clock of bp_pg_reconnect's since_ms. */
long bp_pg_now_ms(void);

/* Connects again after a lost connection, as bp_pg_connect does, but the wait_for_db seconds
 * count from since_ms (bp_pg_now_ms when the connection was found lost): every reconnect of one
 * outage shares that one deadline, however many writes and reads ask meanwhile, and one past
 * it tries once. The errors do not name t->where (the caller's prefix does). */
int bp_pg_reconnect(const bp_pg_target *t, long since_ms, const bp_pg_waiter *w, PGconn **out,
                    bp_error *err);

/* Every libpq call that waits for the server (PQexec, PQgetResult, PQputCopyData, PQputCopyEnd,
 * PQsendQuery, ...) goes between these two: when it waits longer than the target's timeout, a
 * watchdog thread shuts the socket down, the call fails as on a lost connection and
 * bp_pg_errmsg says "no answer within N s (timeout=N)". Nothing on a connection without a
 * timeout (timeout=0) or not made by bp_pg_connect. Not nested. */
void bp_pg_wait_begin(PGconn *c);
void bp_pg_wait_end(PGconn *c);
/* The timeout in seconds when the watchdog cut c, else 0. */
int bp_pg_timed_out(PGconn *c);

/* PostgreSQL's type of a column (also what the COPY encoder writes for it). */
const char *bp_pg_type(const bp_column *c);
/* The same of a logical type: what both families' tables are made with (bp_sql_create_set). */
const char *bp_pg_coltype(bp_col_type t);

/* Brings the schema to BP_PG_SCHEMA_VERSION in one transaction (serialized between processes
 * by an advisory lock); refuses a schema newer than this program. *from / *to (may be NULL)
 * receive the versions before and after. */
int bp_pg_migrate(PGconn *c, const bp_pg_target *t, int *from, int *to, bp_error *err);

/* True when the failure means the connection is gone or the server is going down/starting:
 * worth a reconnect and a retry of the whole transaction. */
bool bp_pg_conn_lost(PGconn *c, const PGresult *r);
/* True for a SQLSTATE of a serialization failure or deadlock: the transaction may simply be
 * retried. With bp_error_is_transient (a lost connection is BP_ETRANSPORT), what a write
 * tries again. */
bool bp_pg_retryable(const char *sqlstate);
/* The SQLSTATE of r, or "" */
const char *bp_pg_sqlstate(const PGresult *r);
/* One line: the server's message (or libpq's) with SQLSTATE, detail and context. */
void bp_pg_errmsg(PGconn *c, const PGresult *r, char *out, size_t cap);

/* Runs sql (one or more statements); fails unless the last result is COMMAND_OK or TUPLES_OK.
 * On success *res (if not NULL) holds the last result (PQclear it). On failure returns
 * BP_ETRANSPORT when the connection is lost, else BP_EDB, with "what: message". */
int bp_pg_exec(PGconn *c, const char *sql, PGresult **res, const char *what, bp_error *err);
/* bp_pg_exec that also gives the failure's SQLSTATE (sqlstate: 6 bytes, may be NULL). */
int bp_pg_run(PGconn *c, const char *sql, PGresult **res, char *sqlstate, const char *what,
              bp_error *err);

/* PQputCopyData piece: libpq copies it, keep its buffer small. */
#define BP_PG_COPY_CHUNK (1u << 20)
/* One binary COPY of data (header, rows, trailer) into table(cols). On failure the SQLSTATE
 * (sqlstate, may be NULL) and the data line the server named (*line, may be NULL; 0: none). */
int bp_pg_copy(PGconn *c, const char *table, const char *cols, const bp_buf *data, char *sqlstate,
               long *line, const char *what, bp_error *err);
/* The same in steps, for a COPY whose data is encoded while it is sent (so the buffer stays
 * near BP_PG_COPY_CHUNK): begin; put (any number of times); end, or abort with rc (the reason
 * err already holds: the server is told why, and the caller rolls the transaction back). */
int bp_pg_copy_begin(PGconn *c, const char *table, const char *cols, char *sqlstate,
                     const char *what, bp_error *err);
/* bp_pg_copy_begin after the statements before (none when NULL) in the same round trip: a
 * failure of theirs is the one reported; res (may be NULL): the rows of the last of them that
 * returns rows (NULL when none; the caller PQclears it). */
int bp_pg_copy_begin_after(PGconn *c, const char *before, const char *table, const char *cols,
                           PGresult **res, char *sqlstate, const char *what, bp_error *err);
int bp_pg_copy_put(PGconn *c, const bp_buf *data, char *sqlstate, const char *what, bp_error *err);
int bp_pg_copy_end(PGconn *c, char *sqlstate, long *line, const char *what, bp_error *err);
int bp_pg_copy_abort(PGconn *c, const char *why, int rc);

#endif
