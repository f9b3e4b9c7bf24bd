/* clickhouse_conn.c - the clickhouse output's target, connecting with backoff, the server's
 * capabilities and the versioned schema. */
#include "sink/clickhouse_conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "metrics/metrics.h"
#include "sink/clickhouse_arch.h"
#include "sink/clickhouse_derived.h"
#include "sink/sqlgen.h"
#include "util/log.h"

#define CH_BACKOFF_MAX_MS 4000

/* ---- target -----------------------------------------------------------------------------------
 */

static bool plain_name(const char *s)
{
    if (!s || !*s || (*s >= '0' && *s <= '9'))
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") ==
           strlen(s);
}

/* "blocks,transactions,logs" (any order, each once) into t->tables; blocks is needed: the
 * restart reads the recent blocks from it. */
static int parse_tables(bp_ch_target *t, const char *list, bp_error *err)
{
    memset(t->tables, 0, sizeof(t->tables));
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        int found = -1;
        for (int k = 0; k < BP_TABLE_COUNT; k++)
            if (strlen(bp_table_name((bp_table)k)) == n &&
                strncmp(bp_table_name((bp_table)k), p, n) == 0)
                found = k;
        if (found < 0)
            return bp_error_set(err, BP_EINVAL,
                                "tables: '%.*s' is not a table of this output (expected a list "
                                "of blocks, transactions, logs)",
                                (int)n, p);
        t->tables[found] = true;
        p += n + (p[n] == ',');
    }
    if (!t->tables[BP_TABLE_BLOCKS])
        return bp_error_set(err, BP_EINVAL,
                            "tables: '%s' has no blocks: the blocks table is needed (a restart "
                            "reads the recent blocks from it to see a reorg)",
                            list);
    return 0;
}

int bp_ch_target_init(bp_ch_target *t, const char *target, const bp_sink_opts *opts, bp_error *err)
{
    memset(t, 0, sizeof(*t));
    const char *tls = bp_sink_opt(opts, "tls"), *db = bp_sink_opt(opts, "database");
    const char *format = bp_sink_opt(opts, "format"), *comp = bp_sink_opt(opts, "compression");
    const char *tables = bp_sink_opt(opts, "tables"), *ttl = bp_sink_opt(opts, "ttl");
    t->wait_for_db = bp_sink_opt(opts, "wait_for_db") ? (int)bp_sink_opt_int(opts, "wait_for_db")
                                                      : BP_CH_DEFAULT_WAIT;
    t->timeout_ms = 1000L * (bp_sink_opt(opts, "timeout") ? bp_sink_opt_int(opts, "timeout") : 300);
    t->format = format && strcmp(format, "rowbinary") == 0 ? BP_CH_ROWBINARY : BP_CH_NATIVE;
    t->gzip = comp && strcmp(comp, "gzip") == 0;
    int grc = opts ? bp_derived_groups_of(opts, &t->groups, err) : 0;
    if (grc != 0)
        return grc;
    t->metrics = t->groups != 0;
    t->ttl = !ttl || strcmp(ttl, "0") != 0;
    t->ttl_slack = opts && bp_sink_opt(opts, "ttl_slack")
                       ? (uint64_t)bp_sink_opt_int(opts, "ttl_slack")
                       : BP_CH_TTL_SLACK;
    if (opts && bp_sink_opt(opts, "retention_block"))
        bp_retention_from_opts(opts, &t->ret);
    int rc = bp_ch_server_parse(&t->srv, target, tls && strcmp(tls, "1") == 0, err);
    if (rc == 0)
        rc = parse_tables(t, tables ? tables : "blocks,transactions,logs", err);
    if (rc == 0) {
        /* the URL's path names the database; else the option */
        t->database = strdup(t->srv.database ? t->srv.database : db ? db : BP_CH_DEFAULT_DATABASE);
        size_t n = t->database ? strlen(t->srv.where) + strlen(t->database) + 2 : 0;
        t->where = t->database ? malloc(n) : NULL;
        if (t->where)
            snprintf(t->where, n, "%s/%s", t->srv.where, t->database);
        else
            rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    if (rc == 0 && !plain_name(t->database))
        rc = bp_error_set(err, BP_EINVAL,
                          "database '%s' is not valid: expected letters, digits and _ (not "
                          "starting with a digit)",
                          t->database);
    if (rc != 0)
        bp_ch_target_release(t);
    return rc;
}

void bp_ch_target_release(bp_ch_target *t)
{
    bp_ch_server_release(&t->srv);
    free(t->database);
    free(t->where);
    memset(t, 0, sizeof(*t));
}

/* ---- connect ----------------------------------------------------------------------------------
 */

bool bp_ch_transient(bp_ch_http *h, int rc)
{
    return bp_error_is_transient(rc) || (rc == BP_EDB && bp_ch_retryable(bp_ch_http_exception(h)));
}

void bp_ch_backoff(long *delay_ms)
{
    struct timespec ts = {*delay_ms / 1000, (*delay_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    *delay_ms = *delay_ms * 2 > CH_BACKOFF_MAX_MS ? CH_BACKOFF_MAX_MS : *delay_ms * 2;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Whether a table can have a column of type: BP_EDB (the server's refusal) is "no". The table
 * is TEMPORARY, so nothing is left in any database; over HTTP that needs a session ("There is
 * no session" without one), ours alone, which ends with the probe. */
static int table_holds(const bp_ch_target *t, const char *type, bool *yes, bp_error *err)
{
    *yes = false;
    bp_ch_server srv = t->srv;
    bp_ch_http *h = NULL;
    bp_error probe = {0};
    bp_buf settings, sql;
    bp_buf_init(&settings, 0);
    bp_buf_init(&sql, 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int rc = 0;
    if (bp_buf_printf(&settings, "%s&session_id=blockpipe_probe_%ld_%ld%09ld&session_timeout=30",
                      t->srv.settings ? t->srv.settings : "", (long)getpid(), (long)ts.tv_sec,
                      ts.tv_nsec) != 0 ||
        bp_buf_printf(&sql, "CREATE TEMPORARY TABLE blockpipe_probe (x %s) ENGINE = Memory",
                      type) != 0) {
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
        goto cleanup;
    }
    srv.settings = settings.data;
    rc = bp_ch_http_new(&h, &srv, NULL, t->timeout_ms, 0, err);
    if (rc != 0)
        goto cleanup;
    rc = bp_ch_query(h, sql.data, NULL, "probe", &probe);
    if (rc == 0) {
        *yes = true;
        /* the session would drop it too; this only spares the server the wait */
        (void)bp_ch_query(h, "DROP TEMPORARY TABLE blockpipe_probe", NULL, "probe", &probe);
    } else if (rc == BP_EDB && bp_ch_retryable(bp_ch_http_exception(h))) {
        /* a busy server is no answer: taken as "no" it would fix String for good */
        rc = bp_error_set(err, BP_ETRANSPORT, "%s", probe.msg);
    } else if (rc == BP_EDB) {
        rc = 0;
    } else {
        rc = bp_error_set(err, rc, "%s", probe.msg);
    }
cleanup:
    bp_ch_http_free(h);
    bp_buf_release(&settings);
    bp_buf_release(&sql);
    return rc;
}

/* version() and whether a table can hold UInt256 (bp_ch_uint256_step). */
static int read_caps(bp_ch_http *h, const bp_ch_target *t, bp_ch_caps *caps, bp_error *err)
{
    bp_buf ans;
    bp_buf_init(&ans, 1 << 16);
    memset(caps, 0, sizeof(*caps));
    int rc = bp_ch_query(h, "SELECT version()", &ans, "SELECT version()", err);
    if (rc == 0) {
        ans.data[strcspn(ans.data, "\r\n")] = '\0';
        if (bp_ch_caps_from_version(ans.data, caps) != 0)
            rc = bp_error_set(err, BP_EDB, "ClickHouse %s: version() is '%.40s', not N.N...",
                              bp_ch_http_where(h), ans.data);
    }
    if (rc == 0) {
        bp_error probe = {0};
        int prc = bp_ch_query(h, "SELECT toTypeName(toUInt256(1))", NULL, "probe", &probe);
        if (prc != 0 && prc != BP_EDB)
            rc = bp_error_set(err, prc, "%s", probe.msg);
        else
            switch (bp_ch_uint256_step(caps, prc == 0)) {
            case BP_CH_U256_NO:
                caps->uint256 = false;
                break;
            case BP_CH_U256_YES:
                caps->uint256 = true;
                break;
            case BP_CH_U256_ASK_TABLE:
                rc = table_holds(t, "UInt256", &caps->uint256, err);
                break;
            }
    }
    bp_buf_release(&ans);
    return rc;
}

int bp_ch_connect(const bp_ch_target *t, bp_ch_http **out, bp_ch_caps *caps, bp_error *err)
{
    *out = NULL;
    bp_ch_http *h = NULL;
    int rc = bp_ch_http_new(&h, &t->srv, NULL, t->timeout_ms, 0, err);
    long deadline = now_ms() + 1000L * t->wait_for_db, delay = BP_CH_BACKOFF_FIRST_MS;
    for (int attempt = 1; rc == 0; attempt++) {
        rc = read_caps(h, t, caps, err);
        if (rc == 0 || !bp_ch_transient(h, rc))
            break;
        if (now_ms() + delay > deadline) {
            bp_error_prefix(err, "cannot connect (gave up after %d attempts, wait_for_db=%d s): ",
                            attempt, t->wait_for_db);
            break;
        }
        bp_warn("clickhouse %s: cannot connect (attempt %d, retrying in %.2f s): %s", t->where,
                attempt, (double)delay / 1000.0, err->msg);
        bp_ch_backoff(&delay);
        rc = 0;
    }
    if (rc != 0) {
        bp_ch_http_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

/* ---- the versioned schema ---------------------------------------------------------------------
 */

/* Version 1: the raw tables as the column table was when it was made (their types as the server
 * allows), the checkpoints, and the intents: what a batch applies (its block range, its _seq)
 * and reverts (its blocks), written before its rows, so that a restart can take back the rows
 * of a batch that never got its checkpoint and finish the reverts of one that did
 * (clickhouse.c). A column added to the column table later needs a migration of its own
 * (ALTER TABLE ... ADD COLUMN) and BP_CH_SCHEMA_VERSION + 1. */
static int v1(bp_ch_http *h, const bp_ch_target *target, const bp_ch_caps *caps, bp_error *err)
{
    (void)target;
    static const char *const books[] = {
        "CREATE TABLE IF NOT EXISTS checkpoints (chain String, output String, number "
        "Nullable(UInt64), hash Nullable(FixedString(32)), seq UInt64, updated_at DateTime) ENGINE "
        "= ReplacingMergeTree(seq) ORDER BY (chain, output)",
        "CREATE TABLE IF NOT EXISTS checkpoint_intents (chain String, output String, seq UInt64, "
        "applied_from UInt64, applied_to UInt64, reverted String, number Nullable(UInt64), hash "
        "Nullable(FixedString(32)), committed UInt8, started_at DateTime) ENGINE = "
        "ReplacingMergeTree(seq) ORDER BY (chain, output)",
    };
    bp_buf sql;
    bp_buf_init(&sql, 0);
    int rc = 0;
    for (int k = 0; rc == 0 && k < BP_TABLE_COUNT; k++) {
        bp_ch_table t;
        bp_ch_raw_table((bp_table)k, caps, &t);
        bp_buf_reset(&sql);
        rc = bp_ch_create_sql(&sql, &t) ? bp_error_set(err, BP_ENOMEM, "out of memory")
                                        : bp_ch_query(h, sql.data, NULL, t.name, err);
    }
    for (size_t k = 0; rc == 0 && k < sizeof(books) / sizeof(books[0]); k++)
        rc = bp_ch_query(h, books[k], NULL, k ? "checkpoint_intents" : "checkpoints", err);
    bp_buf_release(&sql);
    return rc;
}

/* Version 2: the derived analytics tables, prices and the rollups' views (clickhouse_derived.h;
 * with the TTL of the target's retention when it writes them, else none until an output that
 * does opens: bp_ch_derived_sync_ttl). */
static int v2(bp_ch_http *h, const bp_ch_target *target, const bp_ch_caps *caps, bp_error *err)
{
    return bp_ch_derived_schema(h, caps, target->metrics && target->ttl ? &target->ret : NULL,
                                target->ttl_slack, err);
}

/* Whether table.name exists in the current database. */
static int has_column(bp_ch_http *h, const char *table, const char *name, bool *yes, bp_error *err)
{
    bp_buf sql, ans;
    bp_buf_init(&sql, 0);
    bp_buf_init(&ans, 1 << 16);
    int rc = bp_buf_puts(&sql, "SELECT count() FROM system.columns WHERE database = "
                               "currentDatabase() AND table = ") |
             bp_ch_quote(&sql, table) | bp_buf_puts(&sql, " AND name = ") | bp_ch_quote(&sql, name);
    rc = rc ? bp_error_set(err, BP_ENOMEM, "out of memory")
            : bp_ch_query(h, sql.data, &ans, "reading the columns", err);
    if (rc == 0)
        *yes = atoi(ans.data) > 0;
    bp_buf_release(&sql);
    bp_buf_release(&ans);
    return rc;
}

/* Version 3: the OP-stack and Arbitrum columns and each table's extra JSON (columns.h,
 * BP_C_<TABLE>_V3), each placed after the column before it so a table upgraded in place has
 * the order of one made new (which version 1, made from today's column table, already has:
 * what is there is left alone; ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS). */
static int v3(bp_ch_http *h, const bp_ch_target *target, const bp_ch_caps *caps, bp_error *err)
{
    (void)target;
    bp_buf sql;
    bp_buf_init(&sql, 0);
    int rc = 0;
    for (int k = 0; rc == 0 && k < BP_TABLE_COUNT; k++) {
        bp_ch_table t;
        bp_ch_raw_table((bp_table)k, caps, &t);
        size_t first;
        bp_table_columns((bp_table)k, &first);
        for (size_t c = bp_sql_v3_first((bp_table)k) - first; rc == 0 && c < t.ncols; c++) {
            bool yes = false;
            if (t.cols[c].name[0] == '_' ||
                (rc = has_column(h, t.name, t.cols[c].name, &yes, err)) != 0 || yes)
                continue;
            char type[64];
            bp_ch_type_name(&t.cols[c].type, type, sizeof(type));
            bp_buf_reset(&sql);
            rc = bp_buf_printf(&sql, "ALTER TABLE %s ADD COLUMN %s %s AFTER %s", t.name,
                               t.cols[c].name, type, t.cols[c - 1].name)
                     ? bp_error_set(err, BP_ENOMEM, "out of memory")
                     : bp_ch_query(h, sql.data, NULL, t.name, err);
        }
    }
    bp_buf_release(&sql);
    return rc;
}

/* Version 4: the Arch tables and the view of their transactions' rollback state
 * (clickhouse_arch.h). */
static int v4(bp_ch_http *h, const bp_ch_target *target, const bp_ch_caps *caps, bp_error *err)
{
    (void)target;
    (void)caps;
    return bp_ch_arch_schema(h, err);
}

/* Version 5: an Arch chain's resync floor with the checkpoint and the intent (bp_checkpoint.floor;
 * an intent's is what the recovery writes with the checkpoint), last in both. */
static int v5(bp_ch_http *h, const bp_ch_target *target, const bp_ch_caps *caps, bp_error *err)
{
    (void)target;
    (void)caps;
    static const char *const tables[] = {"checkpoints", "checkpoint_intents"};
    char sql[128];
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < sizeof(tables) / sizeof(tables[0]); k++) {
        bool yes = false;
        if ((rc = has_column(h, tables[k], "resync_floor", &yes, err)) != 0 || yes)
            continue;
        snprintf(sql, sizeof(sql), "ALTER TABLE %s ADD COLUMN resync_floor Nullable(UInt64)",
                 tables[k]);
        rc = bp_ch_query(h, sql, NULL, tables[k], err);
    }
    return rc;
}

/* Version 6: arch_blocks.merkle_root Nullable (arch-sdk's Block, what a current node answers,
 * has none). Version 4 made from today's column table has it so already. */
static int v6(bp_ch_http *h, const bp_ch_target *target, const bp_ch_caps *caps, bp_error *err)
{
    (void)target;
    (void)caps;
    bp_buf ans;
    bp_buf_init(&ans, 1 << 16);
    int rc = bp_ch_query(h,
                         "SELECT type FROM system.columns WHERE database = currentDatabase() AND "
                         "table = 'arch_blocks' AND name = 'merkle_root'",
                         &ans, "reading the columns", err);
    if (rc == 0 && strncmp(ans.data, "FixedString", 11) == 0)
        rc = bp_ch_query(h,
                         "ALTER TABLE arch_blocks MODIFY COLUMN merkle_root "
                         "Nullable(FixedString(32))",
                         NULL, "arch_blocks", err);
    bp_buf_release(&ans);
    return rc;
}

static const struct {
    int version;
    const char *description;
    int (*run)(bp_ch_http *h, const bp_ch_target *target, const bp_ch_caps *caps, bp_error *err);
} g_migrations[] = {
    {1, "blocks, transactions, logs, checkpoints, checkpoint_intents", v1},
    {2,
     "derived analytics tables (chain_metrics_*, contract_metrics_*, active_addresses, "
     "contract_senders, token_transfers, prices, ml_predictions) and views",
     v2},
    {3, "OP-stack and Arbitrum columns; extra JSON of blocks, transactions, receipts, logs", v3},
    {4,
     "Arch tables (arch_blocks, arch_transactions, arch_account_updates, arch_events, "
     "arch_rollbacks) and the view arch_transactions_current",
     v4},
    {5, "checkpoints.resync_floor, checkpoint_intents.resync_floor (Arch)", v5},
    {6, "arch_blocks.merkle_root Nullable (the Rust SDK's Block has none)", v6},
};
#define CH_MIGRATIONS (sizeof(g_migrations) / sizeof(g_migrations[0]))

_Static_assert(sizeof(g_migrations) / sizeof(g_migrations[0]) == BP_CH_SCHEMA_VERSION,
               "one migration per schema version");

static int current_version(bp_ch_http *h, int *version, bp_error *err)
{
    bp_buf ans;
    bp_buf_init(&ans, 1 << 16);
    int rc = bp_ch_query(h,
                         "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, "
                         "description String, applied_at DateTime) ENGINE = "
                         "ReplacingMergeTree ORDER BY version",
                         NULL, "schema_migrations", err);
    if (rc == 0)
        rc = bp_ch_query(h, "SELECT max(version) FROM schema_migrations", &ans,
                         "reading schema_migrations", err);
    if (rc == 0)
        *version = atoi(ans.data);
    bp_buf_release(&ans);
    return rc;
}

static int apply_migration(bp_ch_http *h, const bp_ch_target *t, const bp_ch_caps *caps, size_t i,
                           bp_error *err)
{
    int rc = g_migrations[i].run(h, t, caps, err);
    if (rc != 0)
        return bp_error_prefix(err, "migration %d (%s): ", g_migrations[i].version,
                               g_migrations[i].description);
    bp_buf sql;
    bp_buf_init(&sql, 0);
    rc = bp_buf_printf(&sql, "INSERT INTO schema_migrations SELECT %d, ", g_migrations[i].version);
    rc |= bp_ch_quote(&sql, g_migrations[i].description);
    rc |= bp_buf_puts(&sql, ", now()");
    rc = rc ? bp_error_set(err, BP_ENOMEM, "out of memory")
            : bp_ch_query(h, sql.data, NULL, "recording the migration", err);
    bp_buf_release(&sql);
    return rc;
}

int bp_ch_migrate(bp_ch_http *h, const bp_ch_target *t, const bp_ch_caps *caps, int *from, int *to,
                  bp_error *err)
{
    bp_buf sql;
    bp_buf_init(&sql, 0);
    int before = 0;
    int rc = bp_ch_http_use(h, NULL, err);
    if (rc == 0 &&
        (bp_buf_puts(&sql, "CREATE DATABASE IF NOT EXISTS ") || bp_ch_ident(&sql, t->database)))
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    if (rc == 0)
        rc = bp_ch_query(h, sql.data, NULL, "CREATE DATABASE", err);
    bp_buf_release(&sql);
    if (rc == 0)
        rc = bp_ch_http_use(h, t->database, err);
    if (rc == 0)
        rc = current_version(h, &before, err);
    if (rc == 0 && before > BP_CH_SCHEMA_VERSION)
        rc = bp_error_set(err, BP_EDB,
                          "schema version %d is newer than this blockpipe knows (%d); upgrade "
                          "blockpipe",
                          before, BP_CH_SCHEMA_VERSION);
    for (size_t i = 0; rc == 0 && i < CH_MIGRATIONS; i++)
        if (g_migrations[i].version > before)
            rc = apply_migration(h, t, caps, i, err);
    /* ttl=off removes the TTLs; with ttl on, the writer sets them at open (ch_open: a migrate
     * alone does not know the retentions and leaves them) */
    if (rc == 0 && t->metrics && !t->ttl)
        rc = bp_ch_derived_sync_ttl(h, caps, NULL, 0, t->where, err);
    if (rc != 0)
        return bp_error_prefix(err, "database \"%s\": ", t->database);
    if (before < BP_CH_SCHEMA_VERSION)
        bp_info("clickhouse %s: schema migrated from version %d to %d", t->where, before,
                BP_CH_SCHEMA_VERSION);
    if (from)
        *from = before;
    if (to)
        *to = before > BP_CH_SCHEMA_VERSION ? before : BP_CH_SCHEMA_VERSION;
    return 0;
}

/* ---- the tables as they are ---------------------------------------------------------------------
 */

/* One row of system.columns (table, name, type): the type of that column of ours, if it is
 * one; seen[i * BP_CH_MAX_COLS + c] notes it. */
static int set_type(bp_ch_table *tables, size_t n, bool *seen, char **cells, bp_error *err)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t c = 0; c < tables[i].ncols && strcmp(tables[i].name, cells[0]) == 0; c++) {
            if (strcmp(tables[i].cols[c].name, cells[1]) != 0)
                continue;
            if (bp_ch_type_parse(cells[2], &tables[i].cols[c].type) != 0)
                return bp_error_set(err, BP_EDB,
                                    "column %s.%s has type %s, which this output cannot write",
                                    cells[0], cells[1], cells[2]);
            seen[i * BP_CH_MAX_COLS + c] = true;
        }
    }
    return 0;
}

static int missing(const bp_ch_table *tables, size_t n, const bool *seen, bp_error *err)
{
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < tables[i].ncols; c++)
            if (!seen[i * BP_CH_MAX_COLS + c])
                return bp_error_set(err, BP_EDB,
                                    "table %s has no column %s (made by another program? "
                                    "`blockpipe migrate` makes the tables)",
                                    tables[i].name, tables[i].cols[c].name);
    return 0;
}

int bp_ch_load_types(bp_ch_http *h, const char *database, bp_ch_table *tables, size_t n,
                     bp_error *err)
{
    bp_buf sql, ans;
    bp_buf_init(&sql, 0);
    bp_buf_init(&ans, 64 << 20);
    bool *seen = calloc(n * BP_CH_MAX_COLS + 1, sizeof(*seen));
    int rc = bp_buf_puts(&sql, "SELECT table, name, type FROM system.columns WHERE database = ") |
             bp_ch_quote(&sql, database) | bp_buf_puts(&sql, " AND table IN (");
    for (size_t i = 0; i < n; i++)
        rc |= bp_buf_puts(&sql, i ? ", " : "") | bp_ch_quote(&sql, tables[i].name);
    rc = rc | bp_buf_putc(&sql, ')') || !seen
             ? bp_error_set(err, BP_ENOMEM, "out of memory")
             : bp_ch_query(h, sql.data, &ans, "reading the columns", err);
    char *p = ans.data, *cells[3];
    while (rc == 0 && bp_ch_tsv_row(&p, cells, 3) == 3)
        rc = set_type(tables, n, seen, cells, err);
    if (rc == 0)
        rc = missing(tables, n, seen, err);
    free(seen);
    bp_buf_release(&sql);
    bp_buf_release(&ans);
    return rc;
}
