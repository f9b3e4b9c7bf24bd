/* pg_conn.c - PostgreSQL URL parameters, connect with backoff, error classes, migrations. */
#include "sink/pg_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-events.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sink/pg_arch.h"
#include "sink/pg_derived.h"
#include "sink/sqlgen.h"
#include "util/buf.h"
#include "util/log.h"

#define PG_BACKOFF_FIRST_MS 250
#define PG_BACKOFF_MAX_MS 4000
#define PG_WATCH_TICK_MS 100 /* how often the watchdog looks: a deadline is kept to +0.1 s */

static long now_ms(void);
static void sleep_ms(long ms);

/* ---- the versioned schema ------------------------------------------------------------- */

/* Hashes, addresses and byte strings are bytea (half the bytes of hex text, smaller indexes:
 * see docs/PERFORMANCE.md); v, r, s and y_parity are hex quantities, kept as text. u64
 * quantities are bigint except nonce and chain_id, which may use all 64 bits (numeric). */
const char *bp_pg_type(const bp_column *c)
{
    return bp_pg_coltype(c->type);
}

const char *bp_pg_coltype(bp_col_type t)
{
    switch (t) {
    case BP_COL_INT64:
        return "bigint";
    case BP_COL_UINT64:
        return "numeric(20,0)";
    case BP_COL_UINT256:
        return "numeric(78,0)";
    case BP_COL_TEXT:
        return "text";
    case BP_COL_JSON:
        return "jsonb";
    case BP_COL_BOOL:
        return "boolean";
    case BP_COL_FLOAT:
        return "double precision";
    default:
        return "bytea";
    }
}

/* Version 1: the tables of the column table as they were when it was made, their lookup
 * indexes and the checkpoints. A column added to the table later needs a migration of its own
 * (ALTER TABLE ... ADD COLUMN) and BP_PG_SCHEMA_VERSION + 1. */
static int v1(bp_buf *out)
{
    static const char *const indexes[BP_TABLE_COUNT] = {
        [BP_TABLE_BLOCKS] = "CREATE INDEX blocks_hash_idx ON blocks(hash);",
        /* parenthesised: one string each (clang's -Wstring-concatenation) */
        [BP_TABLE_TRANSACTIONS] =
            ("CREATE INDEX transactions_hash_idx ON transactions(hash);"
             "CREATE INDEX transactions_from_idx ON transactions(from_address, block_number);"
             "CREATE INDEX transactions_to_idx ON transactions(to_address, block_number);"),
        [BP_TABLE_LOGS] = ("CREATE INDEX logs_address_topic0_idx ON logs(address, topic0, "
                           "block_number);"),
    };
    int rc = 0;
    for (bp_table t = 0; t < BP_TABLE_COUNT; t++) {
        rc |= bp_sql_create_set_table(out, &bp_tables_evm.tables[t], "", "", bp_pg_coltype, "");
        rc |= bp_buf_puts(out, indexes[t]);
    }
    return rc | bp_buf_puts(out, "CREATE TABLE checkpoints(chain text NOT NULL, output text NOT "
                                 "NULL, number bigint, hash bytea, updated_at timestamptz NOT "
                                 "NULL DEFAULT now(), PRIMARY KEY(chain, output));");
}

/* Version 3: the OP-stack and Arbitrum columns and each table's extra JSON, at the tables' ends
 * (columns.h, BP_C_<TABLE>_V3). IF NOT EXISTS: version 1 made from today's column table has
 * them already. */
static int v3(bp_buf *out)
{
    int rc = 0;
    for (bp_table t = 0; t < BP_TABLE_COUNT; t++)
        rc |= bp_sql_add_columns(out, t, bp_sql_v3_first(t), "IF NOT EXISTS ", "", bp_pg_type);
    return rc;
}

/* Version 6: an Arch chain's resync floor with its checkpoint (bp_checkpoint.floor). */
static int v6(bp_buf *out)
{
    return bp_buf_puts(out,
                       "ALTER TABLE checkpoints ADD COLUMN IF NOT EXISTS resync_floor bigint;");
}

/* Version 7: arch_blocks.merkle_root may be NULL (arch-sdk's Block, what a current node
 * answers, has none; the TypeScript SDK's has one). Version 4 made from today's column table
 * has it so already: DROP NOT NULL then changes nothing. */
static int v7(bp_buf *out)
{
    return bp_buf_puts(out, "ALTER TABLE arch_blocks ALTER COLUMN merkle_root DROP NOT NULL;");
}

static const struct {
    int version;
    const char *description;
    int (*sql)(bp_buf *out);
} g_migrations[] = {
    {1, "blocks, transactions, logs, checkpoints", v1},
    {2,
     "derived analytics tables (chain_metrics_*, contract_metrics_*, sets, token_transfers, "
     "prices, ml_predictions)",
     bp_pg_derived_schema},
    {3, "OP-stack and Arbitrum columns; extra JSON of blocks, transactions, receipts, logs", v3},
    {4, "Arch Network tables (arch_blocks, arch_transactions, arch_account_updates, arch_events)",
     bp_pg_arch_schema},
    {5, "lazy_set_windows: hour and day sets kept as their raw transactions while open",
     bp_pg_derived_schema_lazy},
    {6, "checkpoints.resync_floor: where an Arch chain's next start reads rollback state again",
     v6},
    {7, "arch_blocks.merkle_root may be NULL (the Rust SDK's Block has none)", v7},
};
#define PG_MIGRATIONS (sizeof(g_migrations) / sizeof(g_migrations[0]))

_Static_assert(sizeof(g_migrations) / sizeof(g_migrations[0]) == BP_PG_SCHEMA_VERSION,
               "one migration per schema version");

/* ---- target ------------------------------------------------------------------------- */

/* "host:port/db" of the URL part before '?', without user and password. */
static char *where_of(const char *target, size_t n)
{
    const char *at = NULL;
    for (size_t i = 0; i < n; i++)
        if (target[i] == '@')
            at = target + i;
    const char *h = at ? at + 1 : target;
    size_t hn = n - (size_t)(h - target);
    char *w = malloc(hn + 16);
    if (w)
        snprintf(w, hn + 16, "%.*s", (int)hn, hn ? h : "(default)");
    return w;
}

static char *dup_or(const char *v, const char *def)
{
    return strdup(v ? v : def);
}

int bp_pg_target_init(bp_pg_target *t, const char *target, const bp_sink_opts *opts, bp_error *err)
{
    memset(t, 0, sizeof(*t));
    const char *wait = bp_sink_opt(opts, "wait_for_db"), *mode = bp_sink_opt(opts, "mode");
    const char *timeout = bp_sink_opt(opts, "timeout");
    t->wait_for_db = wait ? atoi(wait) : BP_PG_DEFAULT_WAIT;
    t->timeout = timeout ? atoi(timeout) : BP_PG_DEFAULT_TIMEOUT;
    t->staging = mode && strcmp(mode, "staging") == 0;
    size_t n = strlen(target);
    t->conninfo = malloc(n + sizeof("postgresql://"));
    if (t->conninfo)
        snprintf(t->conninfo, n + sizeof("postgresql://"), "postgresql://%s", target);
    t->schema = dup_or(bp_sink_opt(opts, "schema"), BP_PG_DEFAULT_SCHEMA);
    t->checkpoint = dup_or(bp_sink_opt(opts, "checkpoint"), BP_PG_DEFAULT_CHECKPOINT);
    t->where = where_of(target, strcspn(target, "?"));
    if (!t->conninfo || !t->schema || !t->checkpoint || !t->where) {
        bp_pg_target_release(t);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    return 0;
}

void bp_pg_target_release(bp_pg_target *t)
{
    free(t->conninfo);
    free(t->where);
    free(t->schema);
    free(t->checkpoint);
    memset(t, 0, sizeof(*t));
}

/* ---- errors --------------------------------------------------------------------------- */

const char *bp_pg_sqlstate(const PGresult *r)
{
    const char *s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    return s ? s : "";
}

bool bp_pg_conn_lost(PGconn *c, const PGresult *r)
{
    if (!c || PQstatus(c) == CONNECTION_BAD)
        return true;
    const char *st = bp_pg_sqlstate(r);
    /* 08: connection exception; 57P01..57P03: admin/crash shutdown, cannot connect now */
    return strncmp(st, "08", 2) == 0 || strncmp(st, "57P0", 4) == 0;
}

bool bp_pg_retryable(const char *sqlstate)
{
    return strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0;
}

/* Copies s into out with line breaks as spaces and trailing blanks dropped. */
static void one_line(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; s && *s && n + 1 < cap; s++)
        out[n++] = (*s == '\n' || *s == '\r' || *s == '\t') ? ' ' : *s;
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
}

void bp_pg_errmsg(PGconn *c, const PGresult *r, char *out, size_t cap)
{
    const char *prim = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    int timeout = bp_pg_timed_out(c);
    if (!prim && timeout) {
        snprintf(out, cap, "no answer within %d s (timeout=%d): the server stopped answering",
                 timeout, timeout);
        return;
    }
    if (!prim) {
        one_line(out, cap, c ? PQerrorMessage(c) : "no connection");
        if (!out[0])
            snprintf(out, cap, "connection lost");
        return;
    }
    const char *detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
    const char *ctx = PQresultErrorField(r, PG_DIAG_CONTEXT);
    char tmp[BP_ERROR_MSG_MAX];
    snprintf(tmp, sizeof(tmp), "%s (SQLSTATE %s)%s%s%s%s", prim, bp_pg_sqlstate(r),
             detail ? "; " : "", detail ? detail : "", ctx ? "; " : "", ctx ? ctx : "");
    one_line(out, cap, tmp);
}

/* The error of r (may be NULL): its SQLSTATE into sqlstate (may be NULL), "what: message". */
static int result_error(PGconn *c, PGresult *r, char *sqlstate, const char *what, bp_error *err)
{
    char msg[BP_ERROR_MSG_MAX];
    bp_pg_errmsg(c, r, msg, sizeof(msg));
    if (sqlstate)
        snprintf(sqlstate, 6, "%s", bp_pg_sqlstate(r));
    int code = bp_pg_conn_lost(c, r) ? BP_ETRANSPORT : BP_EDB;
    return bp_error_set(err, code, "%s: %s", what, msg);
}

int bp_pg_run(PGconn *c, const char *sql, PGresult **res, char *sqlstate, const char *what,
              bp_error *err)
{
    if (res)
        *res = NULL;
    bp_pg_wait_begin(c);
    PGresult *r = PQexec(c, sql);
    bp_pg_wait_end(c);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (res)
            *res = r;
        else
            PQclear(r);
        return 0;
    }
    int rc = result_error(c, r, sqlstate, what, err);
    PQclear(r);
    return rc;
}

int bp_pg_exec(PGconn *c, const char *sql, PGresult **res, const char *what, bp_error *err)
{
    return bp_pg_run(c, sql, res, NULL, what, err);
}

/* PQgetResult, which waits for the server, under the watchdog. */
static PGresult *watched_result(PGconn *c)
{
    bp_pg_wait_begin(c);
    PGresult *r = PQgetResult(c);
    bp_pg_wait_end(c);
    return r;
}

/* The COPY data line a failure names in its context ("COPY t, line 3"), or 0. */
static long copy_line_of(const PGresult *r)
{
    const char *ctx = r ? PQresultErrorField(r, PG_DIAG_CONTEXT) : NULL;
    const char *line = ctx ? strstr(ctx, ", line ") : NULL;
    return line && strncmp(ctx, "COPY ", 5) == 0 ? strtol(line + 7, NULL, 10) : 0;
}

int bp_pg_copy_end(PGconn *c, char *sqlstate, long *line, const char *what, bp_error *err)
{
    bp_pg_wait_begin(c);
    int ended = PQputCopyEnd(c, NULL);
    bp_pg_wait_end(c);
    if (ended != 1)
        return result_error(c, NULL, sqlstate, what, err);
    int rc = 0;
    PGresult *r;
    while ((r = watched_result(c)) != NULL) {
        if (rc == 0 && PQresultStatus(r) != PGRES_COMMAND_OK) {
            rc = result_error(c, r, sqlstate, what, err);
            if (line)
                *line = copy_line_of(r);
        }
        PQclear(r);
    }
    return rc;
}

int bp_pg_copy_begin_after(PGconn *c, const char *before, const char *table, const char *cols,
                           PGresult **res, char *sqlstate, const char *what, bp_error *err)
{
    if (res)
        *res = NULL;
    bp_buf sql;
    bp_buf_init(&sql, 0);
    if ((before && bp_buf_puts(&sql, before) != 0) ||
        bp_buf_printf(&sql, "COPY %s(%s) FROM STDIN (FORMAT binary)", table, cols) != 0) {
        bp_buf_release(&sql);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    bp_pg_wait_begin(c);
    int sent = PQsendQuery(c, sql.data);
    bp_pg_wait_end(c);
    bp_buf_release(&sql);
    if (!sent)
        return result_error(c, NULL, sqlstate, what, err);
    /* the statements' results, up to the COPY's CopyInResponse; one that failed made the server
     * skip the rest (the COPY too): its error ends the results */
    PGresult *r, *rows = NULL;
    int rc = 0;
    bool copying = false;
    while (!copying && (r = watched_result(c)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        copying = st == PGRES_COPY_IN;
        if (st == PGRES_TUPLES_OK && rc == 0) {
            PQclear(rows);
            rows = r;
            continue;
        }
        if (!copying && st != PGRES_COMMAND_OK && rc == 0)
            rc = result_error(c, r, sqlstate, what, err);
        PQclear(r);
    }
    if (rc == 0 && !copying)
        rc = result_error(c, NULL, sqlstate, what, err);
    if (rc == 0 && res)
        *res = rows;
    else
        PQclear(rows);
    return rc;
}

int bp_pg_copy_begin(PGconn *c, const char *table, const char *cols, char *sqlstate,
                     const char *what, bp_error *err)
{
    return bp_pg_copy_begin_after(c, NULL, table, cols, NULL, sqlstate, what, err);
}

int bp_pg_copy_put(PGconn *c, const bp_buf *data, char *sqlstate, const char *what, bp_error *err)
{
    for (size_t off = 0; off < data->len; off += BP_PG_COPY_CHUNK) {
        size_t n = data->len - off < BP_PG_COPY_CHUNK ? data->len - off : BP_PG_COPY_CHUNK;
        bp_pg_wait_begin(c); /* blocks while the server takes no more data */
        int put = PQputCopyData(c, data->data + off, (int)n);
        bp_pg_wait_end(c);
        if (put != 1) {
            int rc = result_error(c, NULL, sqlstate, what, err);
            bp_pg_wait_begin(c);
            PQputCopyEnd(c, "send failed");
            bp_pg_wait_end(c);
            return rc;
        }
    }
    return 0;
}

int bp_pg_copy_abort(PGconn *c, const char *why, int rc)
{
    PGresult *r;
    bp_pg_wait_begin(c);
    PQputCopyEnd(c, why);
    bp_pg_wait_end(c);
    while ((r = watched_result(c)) != NULL)
        PQclear(r);
    return rc;
}

int bp_pg_copy(PGconn *c, const char *table, const char *cols, const bp_buf *data, char *sqlstate,
               long *line, const char *what, bp_error *err)
{
    if (line)
        *line = 0;
    int rc = bp_pg_copy_begin(c, table, cols, sqlstate, what, err);
    if (rc == 0)
        rc = bp_pg_copy_put(c, data, sqlstate, what, err);
    return rc ? rc : bp_pg_copy_end(c, sqlstate, line, what, err);
}

/* ---- the watchdog ------------------------------------------------------------------------ */

/* A server that stops answering without closing the connection (SIGSTOP, a hung disk, a
 * network black hole with nothing left to retransmit) leaves a blocking libpq call waiting
 * forever, and statement_timeout is the stopped server's to enforce. So each call that waits
 * for the server is bracketed by bp_pg_wait_begin / bp_pg_wait_end, and one thread watching
 * every connection with a timeout shuts down the socket of a call that waited longer: libpq
 * then sees the connection closed (CONNECTION_BAD) and the call returns with the failure any
 * lost connection gives, which the callers already reconnect after. The thread shuts down a
 * dup() of the socket made at the call's start, never libpq's descriptor: libpq may close that
 * inside the call (a lost connection) and the kernel give its number to another thread's file
 * before the call ends; the dup keeps the socket itself alive until bp_pg_wait_end closes it.
 * The slot (since_ms, fd) is set and cleared under the lock, so the thread cuts only a call
 * still in progress. A call whose answer came just as its deadline passed may still be cut
 * after it returned (between its return and bp_pg_wait_end): it keeps its result, and the
 * connection is lost before the next call, which fails and reconnects as after any lost
 * connection between calls. */
typedef struct pg_watch {
    struct pg_watch *next;
    long timeout_ms;
    long since_ms; /* start of the call waiting for the server; 0: none in progress */
    int fd;        /* a dup of its socket while a call is in progress, else -1 */
    int fired;     /* the timeout in seconds once the watchdog cut the connection, else 0 */
} pg_watch;

static pthread_mutex_t g_watch_mu = PTHREAD_MUTEX_INITIALIZER;
static pg_watch *g_watches;
static bool g_watchdog_started;

static void *watchdog(void *arg)
{
    (void)arg;
    for (;;) {
        sleep_ms(PG_WATCH_TICK_MS);
        long now = now_ms();
        pthread_mutex_lock(&g_watch_mu);
        for (pg_watch *w = g_watches; w; w = w->next)
            if (w->since_ms && w->fd >= 0 && !w->fired && now - w->since_ms >= w->timeout_ms) {
                w->fired = (int)(w->timeout_ms / 1000);
                shutdown(w->fd, SHUT_RDWR);
            }
        pthread_mutex_unlock(&g_watch_mu);
    }
    return NULL;
}

/* libpq's event callback: the connection's watch goes with it (PQfinish). */
static int watch_event(PGEventId id, void *info, void *pass)
{
    (void)pass;
    if (id != PGEVT_CONNDESTROY)
        return 1;
    PGconn *c = ((PGEventConnDestroy *)info)->conn;
    pg_watch *w = PQinstanceData(c, watch_event);
    pthread_mutex_lock(&g_watch_mu);
    for (pg_watch **p = &g_watches; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    pthread_mutex_unlock(&g_watch_mu);
    if (w && w->fd >= 0) /* a call without its bp_pg_wait_end */
        close(w->fd);
    free(w);
    return 1;
}

/* Puts c under the watchdog (started with the first connection that has a timeout). */
static int watch(PGconn *c, int timeout, bp_error *err)
{
    pg_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    w->timeout_ms = 1000L * timeout;
    w->fd = -1;
    if (!PQregisterEventProc(c, watch_event, "blockpipe watchdog", NULL) ||
        !PQsetInstanceData(c, watch_event, w)) {
        free(w);
        return bp_error_set(err, BP_ENOMEM, "cannot register the connection's watchdog");
    }
    int rc = 0;
    pthread_mutex_lock(&g_watch_mu);
    if (!g_watchdog_started) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        g_watchdog_started = pthread_create(&th, &attr, watchdog, NULL) == 0;
        pthread_attr_destroy(&attr);
        if (!g_watchdog_started)
            rc = bp_error_set(err, BP_ENOMEM, "cannot start the connections' watchdog thread");
    }
    w->next = g_watches; /* listed even so: PQfinish's event unlists it */
    g_watches = w;
    pthread_mutex_unlock(&g_watch_mu);
    return rc;
}

void bp_pg_wait_begin(PGconn *c)
{
    pg_watch *w = c ? PQinstanceData(c, watch_event) : NULL;
    if (!w)
        return;
    int sock = PQsocket(c);
    /* F_DUPFD_CLOEXEC: a child the process starts must not keep the connection open */
    int fd = sock >= 0 ? fcntl(sock, F_DUPFD_CLOEXEC, 0) : -1;
    pthread_mutex_lock(&g_watch_mu);
    int old = w->fd; /* not nested: only after a begin without its end */
    w->fd = fd;
    w->since_ms = fd >= 0 ? now_ms() : 0; /* no dup (out of descriptors): not watched */
    pthread_mutex_unlock(&g_watch_mu);
    if (old >= 0)
        close(old);
}

void bp_pg_wait_end(PGconn *c)
{
    pg_watch *w = c ? PQinstanceData(c, watch_event) : NULL;
    if (!w)
        return;
    pthread_mutex_lock(&g_watch_mu);
    int fd = w->fd;
    w->since_ms = 0;
    w->fd = -1;
    pthread_mutex_unlock(&g_watch_mu);
    if (fd >= 0)
        close(fd);
}

int bp_pg_timed_out(PGconn *c)
{
    pg_watch *w = c ? PQinstanceData(c, watch_event) : NULL;
    if (!w)
        return 0;
    pthread_mutex_lock(&g_watch_mu);
    int fired = w->fired;
    pthread_mutex_unlock(&g_watch_mu);
    return fired;
}

/* ---- connect ---------------------------------------------------------------------------- */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Failures that another attempt cannot fix: credentials, a missing database or role, a
 * refused pg_hba entry, a malformed URL. Retrying them only hammers the server. */
static bool permanent(const char *msg)
{
    static const char *const words[] = {
        "authentication failed", "password", "does not exist", "pg_hba.conf",
        "permission denied",     "invalid",  "unrecognized",   "missing \"=\"",
    };
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strstr(msg, words[i]))
            return true;
    return false;
}

/* Server notices ("schema ... already exists, skipping") are not for the user's terminal. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    bp_debug("postgres notice: %s", message);
}

/* "blockpipe HOST pid N": what pg_stat_activity shows of us, so that a process refused a
 * chain's writer lock can name the process that holds it (an application_name in the URL
 * wins). At most 63 bytes, the server's cap. */
static void application_name(char *out, size_t cap)
{
    char host[64] = "";
    if (gethostname(host, sizeof(host) - 1) != 0)
        snprintf(host, sizeof(host), "?");
    snprintf(out, cap, "blockpipe %.36s pid %ld", host, (long)getpid());
}

/* Before the URL ("dbname", expanded): what the URL gives wins. A server that does not answer
 * the connection's start counts as down (connect_timeout, at most the round trips' timeout).
 * Keepalives find a peer gone silent while nothing is in flight, tcp_user_timeout one that
 * stops acknowledging what we sent (a network black hole), where the kernel would retransmit
 * for about 15 minutes; both only on TCP (libpq skips them on a Unix socket). */
static PGconn *connect_once(const bp_pg_target *t)
{
    char app[64], connect_timeout[16], user_timeout[24];
    application_name(app, sizeof(app));
    int ct = t->timeout > 0 && t->timeout < 10 ? t->timeout : 10;
    snprintf(connect_timeout, sizeof(connect_timeout), "%d", ct < 2 ? 2 : ct);
    /* a little over the timeout: the watchdog, whose error names the cause, is first in a call */
    snprintf(user_timeout, sizeof(user_timeout), "%ld",
             t->timeout > 0 ? 1000L * t->timeout + 2000 : 0L);
    const char *keys[] = {"application_name",
                          "connect_timeout",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          "dbname",
                          NULL};
    const char *vals[] = {app, connect_timeout, "1",         "30", "10",
                          "3", user_timeout,    t->conninfo, NULL};
    return PQconnectdbParams(keys, vals, 1);
}

static int set_search_path(PGconn *c, const bp_pg_target *t, bp_error *err)
{
    char *id = PQescapeIdentifier(c, t->schema, strlen(t->schema));
    if (!id)
        return bp_error_set(err, BP_ENOMEM, "escaping schema name: %s", PQerrorMessage(c));
    char sql[512];
    snprintf(sql, sizeof(sql), "SET search_path TO %s", id);
    PQfreemem(id);
    return bp_pg_exec(c, sql, NULL, "SET search_path", err);
}

/* The connection loop of bp_pg_connect and bp_pg_reconnect: until deadline (CLOCK_MONOTONIC
 * ms; at least one try), each failed try told to w when set. Errors without t->where. */
static int connect_until(const bp_pg_target *t, long deadline, const bp_pg_waiter *w, PGconn **out,
                         bp_error *err)
{
    *out = NULL;
    long delay = PG_BACKOFF_FIRST_MS;
    for (int attempt = 1;; attempt++) {
        PGconn *c = connect_once(t);
        if (c && PQstatus(c) == CONNECTION_OK) {
            PQsetNoticeProcessor(c, on_notice, NULL);
            int rc = t->timeout > 0 ? watch(c, t->timeout, err) : 0;
            if (rc == 0)
                rc = set_search_path(c, t, err);
            if (rc == 0) {
                *out = c;
                return 0;
            }
            PQfinish(c);
            return rc;
        }
        char msg[BP_ERROR_MSG_MAX];
        bp_pg_errmsg(c, NULL, msg, sizeof(msg));
        PQfinish(c);
        if (permanent(msg))
            return bp_error_set(err, BP_EDB, "cannot connect: %s", msg);
        if (now_ms() + delay > deadline)
            return bp_error_set(err, BP_ETRANSPORT,
                                "cannot connect (gave up after %d attempts, wait_for_db=%d s%s): "
                                "%s",
                                attempt, t->wait_for_db, w ? " since the connection was lost" : "",
                                msg);
        bp_warn("postgres %s: cannot connect (attempt %d, retrying in %.2f s): %s", t->where,
                attempt, (double)delay / 1000.0, msg);
        if (w && w->retrying) {
            bp_error e;
            bp_error_set(&e, BP_ETRANSPORT, "cannot connect (attempt %d): %s", attempt, msg);
            w->retrying(w->ctx, &e);
        }
        sleep_ms(delay);
        delay = delay * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS : delay * 2;
    }
}

int bp_pg_connect(const bp_pg_target *t, PGconn **out, bp_error *err)
{
    int rc = connect_until(t, now_ms() + 1000L * t->wait_for_db, NULL, out, err);
    return rc ? bp_error_prefix(err, "%s: ", t->where) : 0;
}

long bp_pg_now_ms(void)
{
    return now_ms();
}

int bp_pg_reconnect(const bp_pg_target *t, long since_ms, const bp_pg_waiter *w, PGconn **out,
                    bp_error *err)
{
    static const bp_pg_waiter none = {0};
    return connect_until(t, since_ms + 1000L * t->wait_for_db, w ? w : &none, out, err);
}

/* ---- migrate ---------------------------------------------------------------------------- */

static int current_version(PGconn *c, int *version, bp_error *err)
{
    PGresult *r = NULL;
    int rc = bp_pg_exec(c,
                        "CREATE TABLE IF NOT EXISTS schema_migrations(version int PRIMARY KEY,"
                        " description text NOT NULL,"
                        " applied_at timestamptz NOT NULL DEFAULT now());"
                        "SELECT coalesce(max(version), 0) FROM schema_migrations",
                        &r, "reading schema_migrations", err);
    if (rc == 0)
        *version = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

static int apply_migration(PGconn *c, size_t i, bp_error *err)
{
    char what[128];
    snprintf(what, sizeof(what), "migration %d (%s)", g_migrations[i].version,
             g_migrations[i].description);
    bp_buf sql_text;
    bp_buf_init(&sql_text, 0);
    int rc = g_migrations[i].sql(&sql_text) != 0 ? bp_error_set(err, BP_ENOMEM, "out of memory")
                                                 : bp_pg_exec(c, sql_text.data, NULL, what, err);
    bp_buf_release(&sql_text);
    if (rc != 0)
        return rc;
    char *desc =
        PQescapeLiteral(c, g_migrations[i].description, strlen(g_migrations[i].description));
    if (!desc)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    char sql[256];
    snprintf(sql, sizeof(sql), "INSERT INTO schema_migrations(version, description) VALUES(%d, %s)",
             g_migrations[i].version, desc);
    PQfreemem(desc);
    return bp_pg_exec(c, sql, NULL, what, err);
}

/* Inside BEGIN: lock, create the schema, read the version, apply what is missing. */
static int migrate_locked(PGconn *c, const bp_pg_target *t, int *from, bp_error *err)
{
    char *lit = PQescapeLiteral(c, t->schema, strlen(t->schema));
    char *id = PQescapeIdentifier(c, t->schema, strlen(t->schema));
    char sql[1024];
    int rc = BP_ENOMEM;
    if (lit && id) {
        /* Two processes starting at once: the second waits here, then finds all applied. */
        snprintf(sql, sizeof(sql),
                 "SELECT pg_advisory_xact_lock(hashtext('blockpipe migrate ' || %s));"
                 "CREATE SCHEMA IF NOT EXISTS %s",
                 lit, id);
        rc = bp_pg_exec(c, sql, NULL, "creating the schema", err);
    } else {
        bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    PQfreemem(lit);
    PQfreemem(id);
    if (rc == 0)
        rc = current_version(c, from, err);
    if (rc == 0 && *from > BP_PG_SCHEMA_VERSION)
        return bp_error_set(err, BP_EDB,
                            "schema \"%s\" is at version %d, newer than this blockpipe knows "
                            "(%d); upgrade blockpipe",
                            t->schema, *from, BP_PG_SCHEMA_VERSION);
    for (size_t i = 0; rc == 0 && i < PG_MIGRATIONS; i++)
        if (g_migrations[i].version > *from)
            rc = apply_migration(c, i, err);
    return rc;
}

int bp_pg_migrate(PGconn *c, const bp_pg_target *t, int *from, int *to, bp_error *err)
{
    int before = 0;
    int rc = bp_pg_exec(c, "BEGIN", NULL, "BEGIN", err);
    if (rc == 0)
        rc = migrate_locked(c, t, &before, err);
    if (rc == 0)
        rc = bp_pg_exec(c, "COMMIT", NULL, "COMMIT", err);
    if (rc != 0) {
        bp_pg_wait_begin(c);
        PQclear(PQexec(c, "ROLLBACK"));
        bp_pg_wait_end(c);
        return bp_error_prefix(err, "%s: schema \"%s\": ", t->where, t->schema);
    }
    if (before < BP_PG_SCHEMA_VERSION)
        bp_info("postgres %s: schema \"%s\" migrated from version %d to %d", t->where, t->schema,
                before, BP_PG_SCHEMA_VERSION);
    if (from)
        *from = before;
    if (to)
        *to = before > BP_PG_SCHEMA_VERSION ? before : BP_PG_SCHEMA_VERSION;
    return 0;
}
