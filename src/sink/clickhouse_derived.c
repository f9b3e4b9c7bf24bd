/* clickhouse_derived.c - the clickhouse output's derived tables (clickhouse_derived.h).
 *
 * The window sets are also what makes the distinct counts exact: a set row is written once,
 * when its address first sends in the window, with that block's number and hash in its key;
 * a REVERT of the block takes it back (its key's sign sum back to 0) like any other row of
 * the block. Which addresses a window already has is read from the table once per window and
 * then kept in memory as interned ids (the last few windows of each grain, CACHE_BYTES at
 * most: a bigger window is held lean and read again per batch), so the common batch reads
 * nothing; a batch that reverts, a recovery or a failure forgets them, and they are read
 * again as the table is after the batch's REVERTs (their rows excluded). */
#include "sink/clickhouse_derived.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "metrics/idset.h"
#include "metrics/keymap.h"
#include "metrics/metrics.h"
#include "metrics/windows.h"
#include "sink/clickhouse_conn.h"
#include "util/arena.h"
#include "util/crashpoint.h"
#include "util/hex.h"
#include "util/log.h"

#define VER "_ver"
/* chain_metrics_block's price revision: 0, then the batch that repriced the block (a key column:
 * a repricing cancels the old row's key and writes a new key, in one INSERT in any order) */
#define REV "_rev"
#define CACHE_WINDOWS 8 /* windows of a grain kept in memory before they are forgotten */
/* What the windows' sets may hold in memory (their ids, counts and interned addresses), inside
 * the part of the budget an output with derived tables is charged at start
 * (BP_MEM_PER_DERIVED_OUTPUT): a window whose rows would not fit is held lean (only the
 * members the batch asks about) and read again by the next batch. */
#define CACHE_BYTES ((size_t)4 << 20)
/* What a member read whole may cost: its 8-byte key in a set at most half full, the set's
 * doubling, and its address interned (a share: most addresses are in several windows) */
#define MEMBER_BYTES 40

/* Partition lengths in seconds of chain time: block rows, sets and minutes by day, hours by 30
 * days, days by 360 days (retention without TTL drops whole partitions). */
static const uint64_t g_part_secs[BP_GRAIN_COUNT] = {86400, 2592000, 31104000};
#define DAY 86400ULL

/* ---- tables ---------------------------------------------------------------------------- */

static bp_ch_col dcol(bp_dcol_id id, const bp_ch_caps *caps, bool key)
{
    const bp_dcolumn *c = &bp_dcolumns[id];
    bp_column tmp = {.name = c->name, .qname = c->name, .type = c->type, .flags = c->flags};
    return (bp_ch_col){c->name, bp_ch_type_of(&tmp, caps, key), key};
}

/* The shape's columns from..to (inclusive; BP_D_COUNT: to the shape's end) into t. */
static void add_cols(bp_ch_table *t, bp_dshape s, bp_dcol_id from, bp_dcol_id to,
                     const bp_ch_caps *caps)
{
    size_t first, n = bp_dshape_columns(s, &first);
    for (size_t i = first; i < first + n; i++)
        if (i >= (size_t)from && (to == BP_D_COUNT || i <= (size_t)to))
            t->cols[t->ncols++] =
                dcol((bp_dcol_id)i, caps, bp_ch_in_list(t->order_by, bp_dcolumns[i].name));
}

static void add_hash(bp_ch_table *t, const char *name, const bp_ch_caps *caps)
{
    t->cols[t->ncols] = dcol(BP_D_CB_BLOCK_HASH, caps, true);
    t->cols[t->ncols++].name = name;
}

/* Where the server has TTL the table also gets _written (the time of the row's insert, for
 * the TTL's slack: bp_ch_derived_ttl), which no insert sends. */
#define WRITTEN_DEF BP_CH_WRITTEN " DateTime DEFAULT now()"
#define WRITTEN ", " WRITTEN_DEF

/* TTLs are added by bp_ch_derived_ttl (servers with TTL); every server also drops partitions in
 * chain time (bp_ch_derived_expire). */
void bp_ch_derived_row_table(int k, const bp_ch_caps *caps, bp_ch_table *out)
{
    static const struct {
        const char *name, *order, *part, *block, *hash, *chain;
    } defs[BP_CHD_ROW_TABLES] = {
        [BP_CHD_BLOCK] = {"chain_metrics_block", "origin_key, block_number, block_hash, " REV,
                          "(origin_key, intDiv(block_timestamp, 86400))", "block_number",
                          "block_hash", "origin_key"},
        [BP_CHD_CONTRACT_BLOCK] = {"contract_metrics_block",
                                   "origin_key, block_number, block_hash, contract_address",
                                   "(origin_key, intDiv(block_timestamp, 86400))", "block_number",
                                   "block_hash", "origin_key"},
        [BP_CHD_TRANSFERS] = {"token_transfers",
                              "chain, block_number, block_hash, log_index, batch_index",
                              "(chain, intDiv(block_number, 1000000))", "block_number",
                              "block_hash", "chain"},
        [BP_CHD_PREDICTIONS] = {"ml_predictions",
                                "origin_key, block_number, block_hash, transaction_index",
                                "(origin_key, intDiv(block_number, 1000000))", "block_number",
                                "block_hash", "origin_key"},
        [BP_CHD_ADDRESSES] = {"active_addresses",
                              "origin_key, grain, window_start, address, first_block, first_hash",
                              "(origin_key, grain, intDiv(window_start, 86400))", "first_block",
                              "first_hash", "origin_key"},
        [BP_CHD_SENDERS] = {"contract_senders",
                            "origin_key, grain, window_start, contract_address, address, "
                            "first_block, first_hash",
                            "(origin_key, grain, intDiv(window_start, 86400))", "first_block",
                            "first_hash", "origin_key"},
    };
    memset(out, 0, sizeof(*out));
    out->name = defs[k].name;
    out->engine = "CollapsingMergeTree(" BP_CH_SIGN ")";
    out->order_by = defs[k].order;
    out->partition_by = defs[k].part;
    out->block_col = defs[k].block;
    out->hash_col = defs[k].hash;
    out->chain_col = defs[k].chain;
    out->extra = caps->ttl ? WRITTEN : NULL;
    switch (k) {
    case BP_CHD_BLOCK:
        add_cols(out, BP_DS_CHAIN_BLOCK, 0, BP_D_COUNT, caps);
        out->cols[out->ncols++] = (bp_ch_col){REV, {.kind = BP_CH_UINT64}, true};
        break;
    case BP_CHD_CONTRACT_BLOCK:
        /* a block's sums per contract: the contract window's columns, keyed by block */
        add_cols(out, BP_DS_CONTRACT_WINDOW, BP_D_KW_ORIGIN_KEY, BP_D_KW_ORIGIN_KEY, caps);
        add_cols(out, BP_DS_CHAIN_BLOCK, BP_D_CB_BLOCK_NUMBER, BP_D_CB_BLOCK_TIMESTAMP, caps);
        add_cols(out, BP_DS_CONTRACT_WINDOW, BP_D_KW_CONTRACT_ADDRESS, BP_D_KW_FEES_PAID_NATIVE,
                 caps);
        break;
    case BP_CHD_TRANSFERS:
        add_cols(out, BP_DS_TOKEN_TRANSFER, 0, BP_D_COUNT, caps);
        break;
    case BP_CHD_PREDICTIONS:
        add_cols(out, BP_DS_PREDICTION, 0, BP_D_COUNT, caps);
        add_hash(out, "block_hash", caps);
        break;
    default:
        add_cols(out, k == BP_CHD_ADDRESSES ? BP_DS_ADDRESS_SET : BP_DS_CONTRACT_SENDER_SET, 0,
                 BP_D_COUNT, caps);
        add_hash(out, "first_hash", caps);
    }
    out->cols[out->ncols++] = (bp_ch_col){BP_CH_SIGN, {.kind = BP_CH_INT8}, false};
    out->cols[out->ncols++] = (bp_ch_col){BP_CH_SEQ, {.kind = BP_CH_UINT64}, false};
}

void bp_ch_derived_rollup_table(int k, const bp_ch_caps *caps, bp_ch_table *out)
{
    static const char *const parts[BP_GRAIN_COUNT] = {
        "(origin_key, intDiv(window_start, 86400))",
        "(origin_key, intDiv(window_start, 2592000))",
        "(origin_key, intDiv(window_start, 31104000))",
    };
    int g = k % BP_GRAIN_COUNT;
    bool chain = k < BP_GRAIN_COUNT;
    memset(out, 0, sizeof(*out));
    out->name = bp_dtables[(chain ? BP_DT_CHAIN_1M : BP_DT_CONTRACT_1M) + g].name;
    out->engine = "ReplacingMergeTree(" VER ")";
    out->order_by =
        chain ? "origin_key, window_start" : "origin_key, window_start, contract_address";
    out->partition_by = parts[g];
    out->chain_col = "origin_key";
    out->extra = caps->ttl ? WRITTEN : NULL;
    add_cols(out, chain ? BP_DS_CHAIN_WINDOW : BP_DS_CONTRACT_WINDOW, 0, BP_D_COUNT, caps);
    out->cols[out->ncols++] = (bp_ch_col){VER, {.kind = BP_CH_UINT64}, false};
}

/* The view of rollup k: its time column as a UTC DateTime, addresses as 0x-hex, the newest
 * version of each window (FINAL), windows left without blocks left out. */
static int view_sql(int k, bp_buf *out)
{
    int g = k % BP_GRAIN_COUNT;
    bool chain = k < BP_GRAIN_COUNT;
    bp_dtable t = (bp_dtable)((chain ? BP_DT_CHAIN_1M : BP_DT_CONTRACT_1M) + g);
    size_t first, n = bp_dshape_columns(bp_dtables[t].shape, &first);
    int rc = bp_buf_printf(out, "CREATE VIEW IF NOT EXISTS %s_v AS SELECT ", bp_dtables[t].name);
    for (size_t i = first; i < first + n; i++) {
        const char *c = bp_dcolumns[i].name;
        rc |= bp_buf_puts(out, i > first ? ", " : "");
        if (strcmp(c, "window_start") == 0)
            rc |= bp_buf_printf(out, "toDateTime(_w, 'UTC') AS %s", bp_dtables[t].timecol);
        else if (strcmp(c, "contract_address") == 0)
            rc |= bp_buf_puts(out, "concat('0x', lower(hex(_c))) AS contract_address");
        else
            rc |= bp_buf_puts(out, c);
    }
    rc |= bp_buf_puts(out, " FROM (SELECT ");
    for (size_t i = first; i < first + n; i++) {
        const char *c = bp_dcolumns[i].name;
        rc |= bp_buf_puts(out, i > first ? ", " : "");
        if (strcmp(c, "window_start") == 0)
            rc |= bp_buf_puts(out, "window_start AS _w");
        else if (strcmp(c, "contract_address") == 0)
            rc |= bp_buf_puts(out, "contract_address AS _c");
        else
            rc |= bp_buf_puts(out, c);
    }
    return rc | bp_buf_printf(out, " FROM %s FINAL WHERE %s > 0)", bp_dtables[t].name,
                              chain ? "block_count" : "txcount");
}

/* The end of what the shared plan cuts table's rows by, plus its retention (metrics/windows.c):
 * block rows by whole minutes, a chain rollup by whole windows of the next grain (it is
 * recomputed from them), a contract rollup by its window, the sets by whole hours (the
 * minutes' with the hours') or days; nothing for a table without one. Only columns of the row:
 * a -1 row has its +1's. */
static int chain_end(const char *table, const bp_retention *r, bp_buf *out)
{
    if (strcmp(table, "chain_metrics_block") == 0 || strcmp(table, "contract_metrics_block") == 0)
        return r->block ? bp_buf_printf(out,
                                        "toDateTime(intDiv(block_timestamp, 60) * 60 + 60) + "
                                        "toIntervalSecond(%" PRIu64 ")",
                                        r->block)
                        : 0;
    if (strcmp(table, "active_addresses") == 0 || strcmp(table, "contract_senders") == 0)
        return r->sets ? bp_buf_printf(out,
                                       "toDateTime(intDiv(window_start, multiIf(grain = "
                                       "'1d', 86400, 3600)) * multiIf(grain = '1d', 86400, 3600) "
                                       "+ multiIf(grain = '1d', 86400, 3600)) + "
                                       "toIntervalSecond(%" PRIu64 ")",
                                       r->sets)
                       : 0;
    for (int g = 0; g < BP_GRAIN_COUNT; g++) {
        uint64_t len = bp_grain_seconds[g];
        uint64_t parent = g + 1 < BP_GRAIN_COUNT ? bp_grain_seconds[g + 1] : len;
        if (r->grain[g] == 0)
            continue;
        if (strcmp(table, bp_dtables[BP_DT_CHAIN_1M + g].name) == 0)
            return bp_buf_printf(out,
                                 "toDateTime(intDiv(window_start, %" PRIu64 ") * %" PRIu64
                                 " + %" PRIu64 ") + toIntervalSecond(%" PRIu64 ")",
                                 parent, parent, parent, r->grain[g]);
        if (strcmp(table, bp_dtables[BP_DT_CONTRACT_1M + g].name) == 0)
            return bp_buf_printf(
                out, "toDateTime(window_start + %" PRIu64 ") + toIntervalSecond(%" PRIu64 ")", len,
                r->grain[g]);
    }
    return 0;
}

int bp_ch_derived_ttl(const char *table, const bp_ch_caps *caps, const bp_retention *ret,
                      uint64_t slack, bp_buf *out)
{
    if (!caps->ttl || !ret)
        return 0;
    bp_retention r;
    bp_retention_effective(ret, &r);
    /* The server counts its clock. The chain-time end alone would take, after a downtime
     * longer than a retention (or with a chain of a chains: list behind, or history written
     * beside a follower), rows of windows still open, which the windows are recomputed from:
     * a row also lives slack after its insert. While blockpipe runs, the partition drops in
     * chain time (bp_ch_derived_expire) stay the exact retention; the TTL is the backstop. */
    bp_buf end;
    bp_buf_init(&end, 0);
    int rc = chain_end(table, &r, &end);
    if (rc == 0 && end.len) /* (none: no retention, no TTL) */
        rc = bp_buf_printf(out,
                           " TTL greatest(%s, " BP_CH_WRITTEN " + toIntervalSecond(%" PRIu64 "))",
                           end.data, slack);
    bp_buf_release(&end);
    return rc;
}

int bp_ch_derived_ddl(size_t i, const bp_ch_caps *caps, const bp_retention *ret, uint64_t slack,
                      bp_buf *out)
{
    bp_ch_table t;
    if (i < BP_CHD_ROW_TABLES) {
        bp_ch_derived_row_table((int)i, caps, &t);
        return bp_ch_create_sql(out, &t) | bp_ch_derived_ttl(t.name, caps, ret, slack, out);
    }
    i -= BP_CHD_ROW_TABLES;
    if (i < BP_CHD_ROLLUPS) {
        bp_ch_derived_rollup_table((int)i, caps, &t);
        return bp_ch_create_sql(out, &t) | bp_ch_derived_ttl(t.name, caps, ret, slack, out);
    }
    i -= BP_CHD_ROLLUPS;
    if (i == 0)
        return bp_buf_puts(out, "CREATE TABLE IF NOT EXISTS prices (symbol String, timestamp "
                                "UInt64, usd Float64, source Nullable(String)) ENGINE = "
                                "ReplacingMergeTree ORDER BY (symbol, timestamp)");
    i -= 1;
    return i < BP_CHD_ROLLUPS ? view_sql((int)i, out) : 1;
}

int bp_ch_derived_schema(bp_ch_http *h, const bp_ch_caps *caps, const bp_retention *ret,
                         uint64_t slack, bp_error *err)
{
    bp_buf sql;
    bp_buf_init(&sql, 0);
    int rc = 0;
    for (size_t i = 0; rc == 0; i++) {
        bp_buf_reset(&sql);
        int r = bp_ch_derived_ddl(i, caps, ret, slack, &sql);
        if (r == 1)
            break;
        rc = r ? bp_error_set(err, BP_ENOMEM, "out of memory")
               : bp_ch_query(h, sql.data, NULL, "derived tables", err);
    }
    bp_buf_release(&sql);
    return rc;
}

/* The names of the derived tables as a SQL list: ('chain_metrics_block', ...). */
static int table_list(bp_buf *out, const bp_ch_caps *caps)
{
    int rc = bp_buf_putc(out, '(');
    for (int k = 0; k < BP_CHD_ROW_TABLES + BP_CHD_ROLLUPS; k++) {
        bp_ch_table t;
        if (k < BP_CHD_ROW_TABLES)
            bp_ch_derived_row_table(k, caps, &t);
        else
            bp_ch_derived_rollup_table(k - BP_CHD_ROW_TABLES, caps, &t);
        rc |= bp_buf_printf(out, "%s'%s'", k ? ", " : "", t.name);
    }
    return rc | bp_buf_putc(out, ')');
}

/* Each derived table's name and create statement (TSV rows in ans; sql is scratch). */
static int read_creates(bp_ch_http *h, const bp_ch_caps *caps, bp_buf *sql, bp_buf *ans,
                        bp_error *err)
{
    int rc = bp_buf_puts(sql, "SELECT name, create_table_query FROM system.tables WHERE database "
                              "= currentDatabase() AND name IN ") |
             table_list(sql, caps);
    return rc ? bp_error_set(err, BP_ENOMEM, "out of memory")
              : bp_ch_query(h, sql->data, ans, "reading the tables' TTL", err);
}

/* Whether the create statement's TTL clause is want (" TTL ...", "": none), spaces, backquotes
 * and parentheses aside: the server writes the statement its own way (26.5:
 * "toDateTime((intDiv(block_timestamp, 60) * 60) + 60)"), and a clause taken for changed would
 * be applied again, a mutation of the whole table, at every start. */
static bool ttl_is(const char *create, const char *want)
{
    bp_buf a, b;
    bp_buf_init(&a, 0);
    bp_buf_init(&b, 0);
    int rc = 0;
    const char *ttl = strstr(create, " TTL ");
    for (const char *p = ttl ? ttl : ""; *p && strncmp(p, " SETTINGS ", 10) != 0; p++)
        if (!strchr(" `()", *p))
            rc |= bp_buf_putc(&a, *p);
    for (const char *p = want; *p; p++)
        if (!strchr(" `()", *p))
            rc |= bp_buf_putc(&b, *p);
    bool same = rc == 0 && strcmp(a.data ? a.data : "", b.data ? b.data : "") == 0;
    bp_buf_release(&a);
    bp_buf_release(&b);
    return same;
}

int bp_ch_derived_sync_ttl(bp_ch_http *h, const bp_ch_caps *caps, const bp_retention *ret,
                           uint64_t slack, const char *where, bp_error *err)
{
    /* (asked of servers without TTL too: one query at open, and the one the tests' 18.16
     * server answers) */
    bp_buf sql, ans, want;
    bp_buf_init(&sql, 0);
    bp_buf_init(&ans, 1 << 16);
    bp_buf_init(&want, 0);
    int rc = read_creates(h, caps, &sql, &ans, err);
    char *p = ans.data, *cell[2];
    while (rc == 0 && bp_ch_tsv_row(&p, cell, 2) == 2 && cell[0] && cell[1]) {
        bp_error e = {0};
        bp_buf_reset(&sql);
        bp_buf_reset(&want);
        if (bp_ch_derived_ttl(cell[0], caps, ret, slack, &want) != 0) {
            rc = bp_error_set(err, BP_ENOMEM, "out of memory");
            break;
        }
        if (ttl_is(cell[1], want.data ? want.data : ""))
            continue;
        /* A table made before _written (or by a server without TTL, since upgraded) gets it
         * first; a row there before is kept at least slack after this (the column's default,
         * computed when the TTL is applied). MODIFY TTL applies to the rows already there too
         * (a mutation, once per change). */
        const char *step = "adding " BP_CH_WRITTEN, *set = NULL;
        int r =
            bp_buf_printf(&sql, "ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s", cell[0], WRITTEN_DEF);
        if (r == 0 && want.len) {
            r = bp_ch_query(h, sql.data, NULL, step, &e);
            if (r == 0) {
                bp_buf_reset(&sql);
                step = "setting the TTL";
                r = bp_buf_printf(&sql, "ALTER TABLE %s MODIFY%s", cell[0], want.data);
            }
            /* A table without a TTL (made before _written, or with ttl=off) skips the
             * materialization, a rewrite of every part during which the ALTER (and so the
             * open) waits: ~23 s a million block rows (docs/PERFORMANCE.md). Its parts have
             * no TTL yet, so none is dropped by an old rule; each gets the new one at its next
             * merge, and the partition drops keep the retention meanwhile. A changed TTL is
             * materialized: a part whose old TTL had expired could otherwise be dropped whole
             * by the old rule (a raised ttl_slack must keep those rows). The setting exists
             * from 20.5, TTLs are made from 20.10. */
            if (!strstr(cell[1], " TTL "))
                set = "materialize_ttl_after_modify=0";
        } else if (r == 0) {
            bp_buf_reset(&sql);
            step = "removing the TTL";
            r = bp_buf_printf(&sql, "ALTER TABLE %s REMOVE TTL", cell[0]);
        }
        if (r == 0)
            r = bp_ch_query_set(h, set, sql.data, NULL, step, &e);
        if (r != 0 && !e.code) {
            rc = bp_error_set(err, BP_ENOMEM, "out of memory");
        } else if (r != 0) {
            rc = bp_error_set(err, e.code ? e.code : BP_EDB, "clickhouse %s: %s: %s: %s: %s", where,
                              cell[0], step, sql.data, e.msg);
        } else {
            bp_info("clickhouse %s: %s: %s%s", where, cell[0],
                    want.len ? want.data + 1 : "TTL removed (its retention is 0: forever)",
                    set ? " (the rows there get it at their parts' next merge)" : "");
        }
    }
    bp_buf_release(&sql);
    bp_buf_release(&ans);
    bp_buf_release(&want);
    return rc;
}

/* ---- a pause longer than the slack ------------------------------------------------------- */

/* The windows a chain's next batches read again, by what they are recomputed from: the open
 * minute from its block rows, the open hour from its minutes (and its sets), the open day from
 * its hours (and the day's sets). table/col: where the oldest row of the window is read. */
static const struct {
    const char *name, *rows, *table, *col;
    uint64_t len;
} g_open[] = {
    {"minute", "block rows", "chain_metrics_block", "block_timestamp", 60},
    {"hour", "minutes, sets", "chain_metrics_1m", "window_start", 3600},
    {"day", "hours, day sets", "chain_metrics_1h", "window_start", 86400},
};
#define OPEN_WINDOWS (sizeof(g_open) / sizeof(g_open[0]))
_Static_assert(OPEN_WINDOWS == BP_CH_OPEN_WINDOWS, "bp_ch_paused has a slot per open window");

/* The shortest retention (effective, not 0) of the tables whose rows window k's rows are: the
 * chain-time half of their TTL (bp_ch_derived_ttl: every one ends at the window's end). 0:
 * none of them has a TTL. */
static uint64_t open_retention(size_t k, const bp_retention *r)
{
    uint64_t v[3] = {0};
    if (k == 0) /* block rows; contract_metrics_1m's own minute */
        v[0] = r->block, v[1] = r->grain[BP_GRAIN_1M];
    else if (k == 1) /* chain_metrics_1m (the hour), minute and hour sets, contract_metrics_1h */
        v[0] = r->grain[BP_GRAIN_1M], v[1] = r->sets, v[2] = r->grain[BP_GRAIN_1H];
    else /* chain_metrics_1h and _1d (the day), day sets, contract_metrics_1d */
        v[0] = r->grain[BP_GRAIN_1H], v[1] = r->sets, v[2] = r->grain[BP_GRAIN_1D];
    uint64_t min = 0;
    for (int i = 0; i < 3; i++)
        if (v[i] && (!min || v[i] < min))
            min = v[i];
    return min;
}

/* The slack of the TTLs the derived tables have now (what governed the pause): the smallest;
 * 0 for a TTL without one (blockpipe's first TTLs: the chain-time end alone), UINT64_MAX when
 * no table has a TTL. */
static int tables_slack(bp_ch_http *h, const bp_ch_caps *caps, uint64_t *slack, bp_error *err)
{
    bp_buf sql, ans;
    bp_buf_init(&sql, 0);
    bp_buf_init(&ans, 1 << 16);
    *slack = UINT64_MAX;
    int rc = read_creates(h, caps, &sql, &ans, err);
    char *p = ans.data, *cell[2];
    while (rc == 0 && bp_ch_tsv_row(&p, cell, 2) == 2) {
        const char *ttl = cell[1] ? strstr(cell[1], " TTL ") : NULL;
        if (!ttl)
            continue;
        /* the server writes "_written + toIntervalSecond(N)", perhaps in backquotes */
        const char *w = strstr(ttl, BP_CH_WRITTEN), *n = w ? strstr(w, "toIntervalSecond(") : NULL;
        uint64_t v = n ? strtoull(n + strlen("toIntervalSecond("), NULL, 10) : 0;
        if (v < *slack)
            *slack = v;
    }
    bp_buf_release(&sql);
    bp_buf_release(&ans);
    return rc;
}

/* One answer's first cell as a number (0 when empty or NULL). */
static int query_u64(bp_ch_http *h, const char *sql, bp_buf *ans, uint64_t *v, bp_error *err)
{
    int rc = bp_ch_query(h, sql, ans, "checking the pause against ttl_slack", err);
    char *p = ans->data, *cell[1];
    *v = rc == 0 && bp_ch_tsv_row(&p, cell, 1) == 1 && cell[0] ? strtoull(cell[0], NULL, 10) : 0;
    return rc;
}

typedef struct pause {
    const char *chain;
    uint64_t now, gap;  /* the server's clock; since the chain's last checkpoint (s) */
    uint64_t number, t; /* the checkpoint's block, its timestamp */
    uint64_t
        age[OPEN_WINDOWS]; /* how long before the checkpoint window k's oldest row was written */
    bool written[OPEN_WINDOWS]; /* window k's table has _written (else the TTL's sync adds it:
                                   every row there then counts as written now) */
} pause;

/* Which of the windows' tables have _written. */
static int open_written(bp_ch_http *h, bool *written, bp_error *err)
{
    bp_buf sql, ans;
    bp_buf_init(&sql, 0);
    bp_buf_init(&ans, 1 << 12);
    int rc = bp_buf_puts(&sql, "SELECT table FROM system.columns WHERE database = "
                               "currentDatabase() AND name = '" BP_CH_WRITTEN "' AND table IN (");
    for (size_t k = 0; k < OPEN_WINDOWS; k++)
        rc |= bp_buf_printf(&sql, "%s'%s'", k ? ", " : "", g_open[k].table);
    rc = rc | bp_buf_putc(&sql, ')') ? bp_error_set(err, BP_ENOMEM, "out of memory")
                                     : bp_ch_query(h, sql.data, &ans, "reading the columns", err);
    char *p = ans.data, *cell[1];
    while (rc == 0 && bp_ch_tsv_row(&p, cell, 1) == 1)
        for (size_t k = 0; cell[0] && k < OPEN_WINDOWS; k++)
            if (strcmp(cell[0], g_open[k].table) == 0)
                written[k] = true;
    bp_buf_release(&sql);
    bp_buf_release(&ans);
    return rc;
}

/* Reads what p needs beyond chain, now, gap and number: the block's time and the ages. false
 * when the chain has no block there (an Arch chain: no derived rows). */
static int pause_read(bp_ch_http *h, pause *p, bool *found, bp_error *err)
{
    bp_buf sql, ans;
    bp_buf_init(&sql, 0);
    bp_buf_init(&ans, 1 << 12);
    int rc = bp_buf_puts(&sql, "SELECT toUInt64(max(timestamp)) FROM blocks WHERE chain = ") |
             bp_ch_quote(&sql, p->chain) | bp_buf_printf(&sql, " AND number = %" PRIu64, p->number);
    rc = rc ? bp_error_set(err, BP_ENOMEM, "out of memory")
            : query_u64(h, sql.data, &ans, &p->t, err);
    *found = rc == 0 && p->t > 0;
    for (size_t k = 0; rc == 0 && *found && k < OPEN_WINDOWS; k++) {
        if (!p->written[k])
            continue;
        /* FINAL: a rollup's older versions were written before its newest; only this one is
         * read again */
        uint64_t w0 = p->t - p->t % g_open[k].len, first = 0;
        bp_buf_reset(&sql);
        rc = bp_buf_printf(&sql,
                           "SELECT toUInt64(min(" BP_CH_WRITTEN ")) FROM %s%s WHERE origin_key = ",
                           g_open[k].table, k ? " FINAL" : "") |
             bp_ch_quote(&sql, p->chain) |
             bp_buf_printf(&sql, " AND %s >= %" PRIu64, g_open[k].col, w0);
        rc = rc ? bp_error_set(err, BP_ENOMEM, "out of memory")
                : query_u64(h, sql.data, &ans, &first, err);
        /* (none there: the rows are gone, or there are none; the pause alone then) */
        uint64_t last = p->now - p->gap;
        p->age[k] = first && first < last ? last - first : 0;
    }
    bp_buf_release(&sql);
    bp_buf_release(&ans);
    return rc;
}

/* Whether window k of p may lose rows under slack: its end plus retention is past by the
 * server's clock, and its oldest row was written more than slack ago. */
static bool pause_takes(const pause *p, size_t k, const bp_retention *r, uint64_t slack)
{
    uint64_t ret = open_retention(k, r), end = p->t - p->t % g_open[k].len + g_open[k].len;
    return p->written[k] && ret && p->now > end + ret && p->gap + p->age[k] > slack;
}

/* The windows of p that may lose rows under slack, as text; the longest pause + age of them. */
static uint64_t pause_windows(const pause *p, const bp_retention *r, uint64_t slack, char *out,
                              size_t cap)
{
    uint64_t need = 0;
    size_t n = 0;
    out[0] = 0;
    for (size_t k = OPEN_WINDOWS; k-- > 0;) {
        if (!pause_takes(p, k, r, slack))
            continue;
        time_t w0 = (time_t)(p->t - p->t % g_open[k].len);
        struct tm tm;
        char when[32];
        gmtime_r(&w0, &tm);
        strftime(when, sizeof(when), k == 2 ? "%Y-%m-%d" : "%Y-%m-%d %H:%M", &tm);
        n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%s %s (%s)", need ? ", " : "",
                              g_open[k].name, when, g_open[k].rows);
        if (p->gap + p->age[k] > need)
            need = p->gap + p->age[k];
    }
    return need;
}

bp_ch_paused *bp_ch_pauses_find(bp_ch_pauses *ps, const char *chain)
{
    for (size_t i = 0; chain && i < ps->n; i++)
        if (strcmp(ps->v[i].chain, chain) == 0)
            return &ps->v[i];
    return NULL;
}

void bp_ch_pauses_release(bp_ch_pauses *ps)
{
    for (size_t i = 0; i < ps->n; i++)
        free(ps->v[i].chain);
    free(ps->v);
    *ps = (bp_ch_pauses){0};
}

bool bp_ch_paused_at(const bp_ch_paused *g, uint64_t ts, const char **name)
{
    for (size_t k = 0; k < OPEN_WINDOWS; k++) /* the smallest: the hour holds the minute */
        if (ts >= g->from[k] && ts < g->to[k]) {
            *name = g_open[k].name;
            return true;
        }
    return false;
}

/* Appends p's entry: the windows at risk under slack or before (the tables'). */
static int paused_add(bp_ch_pauses *out, const pause *p, const bp_retention *r, uint64_t slack,
                      uint64_t before, bool refuse, uint64_t need, bp_error *err)
{
    bp_ch_paused *v = realloc(out->v, (out->n + 1) * sizeof(*v));
    if (!v)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    out->v = v;
    bp_ch_paused *g = &v[out->n];
    *g = (bp_ch_paused){.chain = strdup(p->chain), .number = p->number, .refuse = refuse};
    if (!g->chain)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    out->n++;
    char windows[96] = "";
    size_t n = 0;
    for (size_t k = OPEN_WINDOWS; k-- > 0;) {
        if (!pause_takes(p, k, r, slack) && (before == UINT64_MAX || !pause_takes(p, k, r, before)))
            continue;
        g->from[k] = p->t - p->t % g_open[k].len;
        g->to[k] = g->from[k] + g_open[k].len;
        g->past = g->to[k] > g->past ? g->to[k] : g->past;
        /* (compact: the refusal is one bp_error, whose callers prefix it) */
        time_t w0 = (time_t)g->from[k];
        struct tm tm;
        char when[32];
        gmtime_r(&w0, &tm);
        strftime(when, sizeof(when), k == 2 ? "%Y-%m-%d" : k == 1 ? "%H:00" : "%H:%M", &tm);
        n += (size_t)snprintf(windows + n, n < sizeof(windows) ? sizeof(windows) - n : 0, "%s%s %s",
                              n ? ", " : "", g_open[k].name, when);
    }
    snprintf(g->msg, sizeof(g->msg),
             "set ttl_slack above %" PRIu64 " (or ttl=off): last written %" PRIu64
             " s ago (server clock), longer than ttl_slack %" PRIu64
             " s allows for its windows still open at block %" PRIu64
             " (%s), whose rows the server may delete (recomputed without them they come out "
             "short)",
             (uint64_t)(need < UINT64_MAX - DAY ? need + DAY : need), p->gap, slack, p->number,
             windows);
    return 0;
}

int bp_ch_derived_check_pause(bp_ch_http *h, const bp_ch_caps *caps, const bp_retention *ret,
                              uint64_t slack, const char *ours, const char *where,
                              bp_ch_pauses *out, bp_error *err)
{
    if (!caps->ttl || !ret)
        return 0;
    bp_retention r;
    bp_retention_effective(ret, &r);
    uint64_t before = 0;
    bp_buf chains;
    bp_buf_init(&chains, 1 << 20);
    /* the checkpoint's updated_at is the server's now() when the chain's last batch was
     * committed, after its rows: exact, one row per chain, and without a TTL of its own */
    bool written[OPEN_WINDOWS] = {false};
    int rc = tables_slack(h, caps, &before, err);
    if (rc == 0)
        rc = open_written(h, written, err);
    if (rc == 0)
        rc = bp_ch_query(h,
                         "SELECT chain, toUInt64(now()), toUInt64(now()) - "
                         "toUInt64(argMax(updated_at, seq)), argMax(number, seq) FROM checkpoints "
                         "WHERE output = '" BP_CH_OUTPUT "' GROUP BY chain",
                         &chains, "checking the pause against ttl_slack", err);
    char *q = chains.data, *cell[4];
    while (rc == 0 && bp_ch_tsv_row(&q, cell, 4) == 4) {
        if (!cell[0] || !cell[1] || !cell[2] || !cell[3])
            continue; /* (no block yet) */
        pause p = {.chain = cell[0],
                   .now = strtoull(cell[1], NULL, 10),
                   .gap = strtoull(cell[2], NULL, 10),
                   .number = strtoull(cell[3], NULL, 10)};
        memcpy(p.written, written, sizeof(written));
        bool found = false;
        if ((rc = pause_read(h, &p, &found, err)) != 0 || !found)
            continue;
        char now[256], then[256];
        uint64_t need = pause_windows(&p, &r, slack, now, sizeof(now));
        uint64_t lost =
            before == UINT64_MAX ? 0 : pause_windows(&p, &r, before, then, sizeof(then));
        if (!need && !lost)
            continue;
        /* Unchanged options (nobody decided) refuse a batch of the chain that would recompute
         * those windows: the TTL would go on taking their rows while they are read. Decided
         * there, not here: an idle chain's next blocks read none of them (bp_ch_paused). A run
         * that sets ttl_slack (or ttl=off, which does not get here) is the decision, and is
         * warned; so is a process of other chains (a chain another process writes: its windows
         * are recomputed there, refusing here keeps nothing). */
        bool mine = !ours || bp_ch_in_list(ours, p.chain);
        bool refuse = need && before == slack && mine;
        rc = paused_add(out, &p, &r, slack, before, refuse, need, err);
        if (rc != 0 || refuse)
            continue;
        if (lost)
            bp_warn("clickhouse %s: chain '%s' was last written %" PRIu64 " s ago (server "
                    "clock), longer than the previous ttl_slack %" PRIu64 " s allowed for its "
                    "windows still open at block %" PRIu64 ": %s may have lost rows (rows merged "
                    "away are not restored; those windows come out short if its next blocks "
                    "fall in them)",
                    where, p.chain, p.gap, before, p.number, then);
        if (need)
            bp_warn("clickhouse %s: chain '%s' was last written %" PRIu64 " s ago (server "
                    "clock): with ttl_slack %" PRIu64 " s the server deletes rows of its windows "
                    "still open at block %" PRIu64 ": %s (they come out short if its next blocks "
                    "fall in them; a ttl_slack above %" PRIu64 " keeps them)%s",
                    where, p.chain, p.gap, slack, p.number, now, need,
                    mine ? "" : "; not a chain of this process: the one that writes it decides");
    }
    bp_buf_release(&chains);
    return rc;
}

/* ---- the window sets in memory ------------------------------------------------------------ */

/* One window of a grain in memory: its members as interned ids and its distinct counts.
 * A window read whole (whole_addrs / whole_pairs) has every member of its table; one too big
 * for CACHE_BYTES only the members among the addresses interned when it was read (the
 * batch's: what the batch asks about), and is read again by the next batch. */
typedef struct chd_win {
    uint64_t w;
    bool whole_addrs, whole_pairs;
    bool loading;        /* being read (load_sets) */
    uint64_t senders;    /* distinct senders */
    bp_u64map addrs;     /* sender ids */
    bp_u64map pairs;     /* contract id << 32 | sender id */
    bp_u64map contracts; /* contract id -> its distinct senders */
} chd_win;

typedef struct chd_cache {
    chd_win *win;
    size_t n, cap;
} chd_cache;

/* A set row the batch adds, with its block's hash. */
typedef struct chd_set {
    bp_set_row row;
    const char *hash;
} chd_set;

typedef struct chd_price {
    uint64_t ts;
    double usd;
} chd_price;

/* A block written before its price was known, and its USD now. */
typedef struct chd_reprice {
    uint64_t number;
    char hash[67];
    bp_opt_f64 usd;
} chd_reprice;

/* The newest row of a block key (a repriced block has an old and a new +1 row): the highest
 * _seq, a +1 before a -1 of the same batch. */
#define NEWEST "_seq * 2 + intDiv(_sign + 1, 2)"

struct bp_ch_derived {
    bp_ch_http *h;
    bp_ch_caps caps;
    bp_retention ret;
    char *chain;
    bp_ch_table roll[BP_CHD_ROLLUPS];
    bp_ch_enc enc[BP_CHD_ROLLUPS];
    bp_buf insert[BP_CHD_ROLLUPS];
    bp_buf sql, ans, ans2, refs, refs2;
    bp_windows win;
    chd_cache cache[BP_GRAIN_COUNT];
    bp_intern ids; /* the addresses of the windows in memory (every grain's) */
    chd_set *sets;
    size_t nsets, capsets;
    chd_price *prices;
    size_t nprices, capprices;
    chd_reprice *reprice;
    size_t nreprice, capreprice;
    bool prices_known; /* the prices table has rows (else no block is priced) */
    bool check_prices; /* after a recovery: every block row is checked against the prices */
    bool shrinks;      /* the batch takes blocks away (reverts, a recovery) */
    bool writes;       /* metrics on: the output writes derived rows (else it only reverts) */
    unsigned has;      /* the derived groups the tables hold (BP_DG_BIT; derived=) */
    bool blocks; /* it writes rows of blocks: the tables hold and derived= has chain_metrics */
    bp_block_derived trimmed; /* a block's rows as this output takes them (bp_derived_trim) */
    bp_keymap touched;        /* the contracts the batch's blocks call (theirs are the windows' rows
                                 that change when it only adds blocks) */
    uint64_t ver;             /* the next rollup version */
    uint64_t last_cut[BP_EXPIRY_MAX + 1];
    /* rollup scratch */
    bp_keymap map;
    void *acc;
    size_t capacc;
    struct chd_med *med;
    size_t nmed, capmed;
    bp_arena *strs; /* the contract addresses of the rows read (they are taken a row at a time) */
};

static int oom(bp_error *err)
{
    return bp_error_set(err, BP_ENOMEM, "out of memory");
}

static void win_release(chd_win *x)
{
    bp_u64map_release(&x->addrs);
    bp_u64map_release(&x->pairs);
    bp_u64map_release(&x->contracts);
}

static void win_reset(chd_win *x, uint64_t w)
{
    win_release(x);
    *x = (chd_win){.w = w};
    bp_u64map_init(&x->addrs, false);
    bp_u64map_init(&x->pairs, false);
    bp_u64map_init(&x->contracts, true);
}

static void cache_clear(chd_cache *c)
{
    for (size_t i = 0; i < c->n; i++)
        win_release(&c->win[i]);
    c->n = 0;
}

static void forget(bp_ch_derived *d)
{
    for (int g = 0; g < BP_GRAIN_COUNT; g++)
        cache_clear(&d->cache[g]);
    bp_intern_clear(&d->ids);
}

static size_t cache_bytes(const bp_ch_derived *d)
{
    size_t n = bp_intern_bytes(&d->ids);
    for (int g = 0; g < BP_GRAIN_COUNT; g++)
        for (size_t i = 0; i < d->cache[g].n; i++) {
            const chd_win *x = &d->cache[g].win[i];
            n += bp_u64map_bytes(&x->addrs) + bp_u64map_bytes(&x->pairs) +
                 bp_u64map_bytes(&x->contracts);
        }
    return n;
}

static chd_win *win_find(const chd_cache *c, uint64_t w)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->win[i].w == w)
            return &c->win[i];
    return NULL;
}

/* A new (empty, not whole) window w; NULL when out of memory. */
static chd_win *win_new(chd_cache *c, uint64_t w)
{
    if (bp_grow((void **)&c->win, &c->cap, c->n + 1, sizeof(*c->win)) != 0)
        return NULL;
    chd_win *x = &c->win[c->n++];
    memset(x, 0, sizeof(*x));
    win_reset(x, w);
    return x;
}

/* Member (contract id k or 0, sender id a) into x; *added when it was not there. */
static int win_put(chd_win *x, uint32_t k, uint32_t a, bool *added)
{
    if (!k) {
        if (bp_u64map_put(&x->addrs, a, 0, added, NULL) != 0)
            return BP_ENOMEM;
        x->senders += *added;
        return 0;
    }
    if (bp_u64map_put(&x->pairs, (uint64_t)k << 32 | a, 0, added, NULL) != 0)
        return BP_ENOMEM;
    uint32_t *cnt;
    bool fresh;
    if (*added && bp_u64map_put(&x->contracts, k, 0, &fresh, &cnt) != 0)
        return BP_ENOMEM;
    if (*added)
        (*cnt)++;
    return 0;
}

/* Adds (w, contract, address) to the window in memory; *added when it was not there. */
static int cache_add(bp_ch_derived *d, chd_cache *c, uint64_t w, const char *contract,
                     const char *address, bool *added)
{
    chd_win *x = win_find(c, w);
    uint32_t a, k = 0;
    *added = false;
    if (!x) /* (load_sets read every window the batch touches) */
        return BP_EINVAL;
    if (bp_intern_id(&d->ids, address, &a) != 0 ||
        (contract && bp_intern_id(&d->ids, contract, &k) != 0))
        return BP_ENOMEM;
    return win_put(x, k, a, added);
}

/* A row of the table read into x: a member when x is read whole or the address is one the
 * batch asks about (interned), else only counted. */
static int win_load(bp_ch_derived *d, chd_win *x, const char *contract, const char *address)
{
    uint32_t a, k = 0;
    bool whole = contract ? x->whole_pairs : x->whole_addrs, added;
    if (contract && bp_intern_id(&d->ids, contract, &k) != 0)
        return BP_ENOMEM;
    if (whole && bp_intern_id(&d->ids, address, &a) != 0)
        return BP_ENOMEM;
    if (!whole && (a = bp_intern_find(&d->ids, address)) == 0) {
        uint32_t *cnt;
        bool fresh;
        if (!k) {
            x->senders++;
        } else if (bp_u64map_put(&x->contracts, k, 0, &fresh, &cnt) != 0) {
            return BP_ENOMEM;
        } else {
            (*cnt)++;
        }
        return 0;
    }
    return win_put(x, k, a, &added);
}

static uint64_t cache_count(const bp_ch_derived *d, int g, uint64_t w, const char *contract)
{
    const chd_win *x = win_find(&d->cache[g], w);
    if (!x || !contract)
        return x ? x->senders : 0;
    uint32_t k = bp_intern_find(&d->ids, contract);
    bool found;
    const uint32_t *v = k ? bp_u64map_find(&x->contracts, k, &found) : NULL;
    return v ? *v : 0;
}

/* ---- SQL helpers ------------------------------------------------------------------------ */

static int sql_origin(bp_ch_derived *d, const char *table, const char *col)
{
    return bp_buf_printf(&d->sql, " FROM %s WHERE %s = ", table, col) |
           bp_ch_quote(&d->sql, d->chain);
}

/* "w1, w2, ..." of the touched windows of grain g. */
static int window_list(bp_ch_derived *d, int g)
{
    int rc = 0;
    for (size_t i = 0; i < d->win.n[g]; i++)
        rc |= bp_buf_printf(&d->sql, "%s%" PRIu64, i ? ", " : "", d->win.v[g][i].w);
    return rc;
}

static int query(bp_ch_derived *d, bp_buf *ans, const char *what, bp_error *err)
{
    return bp_ch_query(d->h, d->sql.data, ans, what, err);
}

/* "c1, c2, ..." of bp_dcolumns[first .. first + n) */
static int dcol_list(bp_buf *out, size_t first, size_t n)
{
    int rc = 0;
    for (size_t i = first; i < first + n; i++)
        rc |= bp_buf_printf(out, "%s%s", i > first ? ", " : "", bp_dcolumns[i].name);
    return rc;
}

static uint64_t u64_of(const char *s)
{
    return s ? strtoull(s, NULL, 10) : 0;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static int read_version(bp_ch_derived *d, bp_error *err)
{
    d->ver = 1;
    for (int k = 0; k < BP_CHD_ROLLUPS; k++) {
        bp_buf_reset(&d->sql);
        if (bp_buf_printf(&d->sql, "SELECT max(" VER ") FROM %s", d->roll[k].name))
            return oom(err);
        int rc = query(d, &d->ans, "reading the rollups' versions", err);
        if (rc != 0)
            return rc;
        uint64_t v = strtoull(d->ans.data, NULL, 10);
        d->ver = v >= d->ver ? v + 1 : d->ver;
    }
    bp_buf_reset(&d->sql);
    if (bp_buf_puts(&d->sql, "SELECT max(" REV ") FROM chain_metrics_block"))
        return oom(err);
    int rc = query(d, &d->ans, "reading the price revisions", err);
    uint64_t rev = rc == 0 ? strtoull(d->ans.data, NULL, 10) : 0;
    d->ver = rev >= d->ver ? rev + 1 : d->ver;
    if (rc == 0) {
        bp_buf_reset(&d->sql);
        rc = bp_buf_puts(&d->sql, "SELECT count() FROM prices") ? oom(err)
                                                                : query(d, &d->ans, "prices", err);
    }
    d->prices_known = rc == 0 && strtoull(d->ans.data, NULL, 10) > 0;
    return rc;
}

/* The database's record of the groups its derived tables hold, checked against groups
 * (bp_dgroups_open). A ReplacingMergeTree of one key: the newest row is the record. */
static int select_groups(bp_ch_derived *d, unsigned groups, bp_error *err)
{
    bp_buf_reset(&d->sql);
    int rc = bp_buf_puts(&d->sql, "CREATE TABLE IF NOT EXISTS derived_groups (id UInt8, groups "
                                  "String, at UInt64) ENGINE = ReplacingMergeTree(at) ORDER BY id")
                 ? oom(err)
                 : query(d, &d->ans, "creating derived_groups", err);
    bp_buf_reset(&d->sql);
    if (rc == 0 &&
        bp_buf_puts(&d->sql, "SELECT (SELECT count() FROM derived_groups), (SELECT argMax(groups,"
                             " at) FROM derived_groups), (SELECT count() FROM (SELECT 1 FROM"
                             " chain_metrics_block LIMIT 1)) + (SELECT count() FROM (SELECT 1"
                             " FROM chain_metrics_1d LIMIT 1)) FORMAT TabSeparated"))
        rc = oom(err);
    if (rc == 0)
        rc = query(d, &d->ans, "reading derived_groups", err);
    if (rc != 0)
        return rc;
    char *line = d->ans.data ? d->ans.data : "", *tab1 = strchr(line, '\t');
    char *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
    if (!tab2)
        return bp_error_set(err, BP_EDB, "reading derived_groups: unexpected answer '%.60s'", line);
    *tab1 = *tab2 = '\0';
    char list[160];
    if (bp_dgroups_open_text(groups, u64_of(line) > 0 ? tab1 + 1 : NULL, u64_of(tab2 + 1) > 0,
                             &d->has, list, sizeof(list), err) != 0)
        return err->code;
    if (!list[0])
        return 0;
    bp_buf_reset(&d->sql);
    if (bp_buf_puts(&d->sql, "INSERT INTO derived_groups SELECT 1, ") | bp_ch_quote(&d->sql, list) |
        bp_buf_puts(&d->sql, ", (SELECT max(at) + 1 FROM derived_groups)"))
        return oom(err);
    return query(d, &d->ans, "writing derived_groups", err);
}

int bp_ch_derived_new(bp_ch_http *h, const char *database, enum bp_ch_format format,
                      const bp_ch_caps *caps, const bp_retention *ret, unsigned groups,
                      bp_ch_derived **out, bp_error *err)
{
    bool writes = groups != 0;
    *out = NULL;
    bp_ch_derived *d = calloc(1, sizeof(*d));
    if (!d)
        return oom(err);
    d->h = h;
    d->writes = writes;
    d->caps = *caps;
    d->ret = *ret;
    bp_buf_init(&d->sql, 0);
    bp_buf_init(&d->ans, 256 << 20);
    bp_buf_init(&d->ans2, 256 << 20);
    bp_buf_init(&d->refs, 0);
    bp_buf_init(&d->refs2, 0);
    int rc = 0;
    for (int k = 0; k < BP_CHD_ROLLUPS; k++) {
        bp_ch_derived_rollup_table(k, caps, &d->roll[k]);
        bp_buf_init(&d->insert[k], 0);
    }
    if (rc != 0) {
        bp_ch_derived_free(d);
        return oom(err);
    }
    rc = bp_ch_load_types(h, database, d->roll, BP_CHD_ROLLUPS, err);
    for (int k = 0; rc == 0 && k < BP_CHD_ROLLUPS; k++) {
        const bp_ch_table *t = &d->roll[k];
        if (bp_buf_printf(&d->insert[k], "INSERT INTO %s (", t->name) |
            bp_ch_col_list(&d->insert[k], t->cols, t->ncols) |
            bp_buf_printf(&d->insert[k], ") FORMAT %s", bp_ch_format_name(format)) |
            bp_ch_enc_init(&d->enc[k], format, t->cols, t->ncols))
            rc = oom(err);
    }
    if (rc == 0)
        rc = read_version(d, err);
    if (rc == 0)
        rc = select_groups(d, groups, err);
    /* not `has` alone: derived=prices keeps a record of chain_metrics its tables hold */
    d->blocks = (d->has & groups & BP_DG_BIT(BP_DG_CHAIN_METRICS)) != 0;
    if (rc != 0) {
        bp_ch_derived_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void bp_ch_derived_free(bp_ch_derived *d)
{
    if (!d)
        return;
    for (int k = 0; k < BP_CHD_ROLLUPS; k++) {
        bp_ch_enc_release(&d->enc[k]);
        bp_buf_release(&d->insert[k]);
    }
    for (int g = 0; g < BP_GRAIN_COUNT; g++) {
        cache_clear(&d->cache[g]);
        free(d->cache[g].win);
    }
    bp_intern_release(&d->ids);
    bp_buf_release(&d->sql);
    bp_buf_release(&d->ans);
    bp_buf_release(&d->ans2);
    bp_buf_release(&d->refs);
    bp_buf_release(&d->refs2);
    bp_windows_release(&d->win);
    bp_keymap_release(&d->map);
    bp_keymap_release(&d->touched);
    free(d->sets);
    free(d->prices);
    free(d->reprice);
    free(d->acc);
    free(d->med);
    bp_arena_free(d->strs);
    free(d->chain);
    free(d);
}

static int set_chain(bp_ch_derived *d, const char *chain, bp_error *err)
{
    if (d->chain && strcmp(d->chain, chain) == 0)
        return 0;
    forget(d);
    free(d->chain);
    d->chain = strdup(chain);
    return d->chain ? 0 : oom(err);
}

/* ---- the sets: loading windows, adding the batch's rows -------------------------------- */

/* CACHE_BYTES, or for tests BP_CH_SET_BYTES (read once; e.g. 1: every window read lean) */
static size_t g_cache_cap = CACHE_BYTES;
static pthread_once_t g_cache_once = PTHREAD_ONCE_INIT;

static void read_cache_cap(void)
{
    const char *v = getenv("BP_CH_SET_BYTES");
    if (v && *v)
        g_cache_cap = (size_t)strtoull(v, NULL, 10);
}

static size_t cache_cap(void)
{
    pthread_once(&g_cache_once, read_cache_cap);
    return g_cache_cap;
}

/* A set's answer being read (load_sets): its windows are read whole while its rows so far fit
 * what the windows may hold (cache_cap) as members, lean from the row that does not on. */
typedef struct chd_load {
    bp_ch_derived *d;
    chd_cache *c;
    int set; /* 0: active_addresses, 1: contract_senders */
    size_t base, rows;
    bool whole;
} chd_load;

static void loading_whole(chd_cache *c, int set, bool whole)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->win[i].loading)
            *(set ? &c->win[i].whole_pairs : &c->win[i].whole_addrs) = whole;
}

static int load_row(void *ctx, char **cell, int n)
{
    chd_load *l = ctx;
    if (n != 3 || !cell[0] || !cell[2])
        return 0;
    if (l->whole && l->base + ++l->rows * MEMBER_BYTES > cache_cap()) {
        /* the members read so far stay (their addresses are interned: a lean window keeps the
         * interned ones), the rest of the answer is only counted */
        l->whole = false;
        loading_whole(l->c, l->set, false);
    }
    chd_win *x = win_find(l->c, u64_of(cell[0]));
    return x ? win_load(l->d, x, l->set ? cell[1] : NULL, cell[2]) : 0;
}

/* The set rows of the touched windows of grain g that are not in memory whole (all of them
 * when the memory holds too many windows), without the rows of the blocks in d->refs. */
static int load_sets(bp_ch_derived *d, int g, bp_error *err)
{
    chd_cache *c = &d->cache[g];
    size_t missing = 0;
    for (size_t i = 0; i < d->win.n[g]; i++) {
        const chd_win *x = win_find(c, d->win.v[g][i].w);
        missing += !x || !x->whole_addrs || !x->whole_pairs;
    }
    if (missing == 0)
        return 0;
    if (c->n + missing > CACHE_WINDOWS)
        cache_clear(c);
    bp_buf_reset(&d->refs2);
    for (size_t i = 0; i < d->win.n[g]; i++) {
        uint64_t w = d->win.v[g][i].w;
        chd_win *x = win_find(c, w);
        if (x && x->whole_addrs && x->whole_pairs)
            continue;
        if (x)
            win_reset(x, w);
        else if (!(x = win_new(c, w)))
            return oom(err);
        x->loading = true;
        if (bp_buf_printf(&d->refs2, "%s%" PRIu64, d->refs2.len ? ", " : "", w) != 0)
            return oom(err);
    }
    for (int set = 0; set < 2; set++) {
        bp_buf_reset(&d->sql);
        int rc =
            bp_buf_printf(&d->sql, "SELECT window_start, %s, concat('0x', lower(hex(address)))",
                          set ? "concat('0x', lower(hex(contract_address)))" : "''");
        rc |= sql_origin(d, set ? "contract_senders" : "active_addresses", "origin_key");
        rc |= bp_buf_printf(&d->sql, " AND grain = '%s' AND window_start IN (%s)",
                            bp_grain_names[g], d->refs2.data);
        if (d->refs.len)
            rc |=
                bp_buf_printf(&d->sql, " AND (first_block, first_hash) NOT IN (%s)", d->refs.data);
        rc |= bp_buf_printf(&d->sql,
                            " GROUP BY window_start, %saddress, first_block, first_hash"
                            " HAVING sum(" BP_CH_SIGN ") > 0",
                            set ? "contract_address, " : "");
        chd_load l = {d, c, set, cache_bytes(d), 0, false};
        l.whole = l.base <= cache_cap();
        loading_whole(c, set, l.whole);
        rc = rc ? oom(err)
                : bp_ch_query_rows(d->h, d->sql.data, 3, load_row, &l, "reading a window's set",
                                   err);
        if (rc != 0)
            return rc;
    }
    for (size_t i = 0; i < c->n; i++)
        c->win[i].loading = false;
    return 0;
}

static int push_set(bp_ch_derived *d, const bp_set_row *row, const char *hash)
{
    if (bp_grow((void **)&d->sets, &d->capsets, d->nsets + 1, sizeof(*d->sets)) != 0)
        return BP_ENOMEM;
    d->sets[d->nsets++] = (chd_set){*row, hash};
    return 0;
}

/* The addresses of block bd interned: what a window held lean keeps of its table. */
static int intern_block(bp_ch_derived *d, const bp_block_derived *bd)
{
    uint32_t id;
    for (size_t i = 0; i < bd->sender_count; i++)
        if (bp_intern_id(&d->ids, bd->senders[i], &id) != 0)
            return BP_ENOMEM;
    for (size_t i = 0; i < bd->pair_count; i++)
        if (bp_intern_id(&d->ids, bd->pairs[i].contract_address, &id) != 0 ||
            bp_intern_id(&d->ids, bd->pairs[i].address, &id) != 0)
            return BP_ENOMEM;
    return 0;
}

/* The set rows of block bd in every grain: the addresses and pairs new to their window. */
static int block_sets(bp_ch_derived *d, const bp_block_derived *bd)
{
    const bp_chain_block_row *b = &bd->chain;
    for (int g = 0; g < BP_GRAIN_COUNT; g++) {
        chd_cache *c = &d->cache[g];
        bp_set_row r = {.origin_key = d->chain,
                        .grain = bp_grain_names[g],
                        .window_start = bp_window_of(b->block_timestamp, g),
                        .first_block = b->block_number};
        bool added;
        for (size_t i = 0; i < bd->sender_count; i++) {
            if (cache_add(d, c, r.window_start, NULL, bd->senders[i], &added) != 0)
                return BP_ENOMEM;
            r.address = bd->senders[i];
            if (added && push_set(d, &r, b->block_hash) != 0)
                return BP_ENOMEM;
        }
        for (size_t i = 0; i < bd->pair_count; i++) {
            const bp_pair *p = &bd->pairs[i];
            if (cache_add(d, c, r.window_start, p->contract_address, p->address, &added) != 0)
                return BP_ENOMEM;
            size_t v;
            bool fresh;
            if (g == 0 && bp_keymap_put(&d->touched, 0, p->contract_address, NULL, 0, &v, &fresh))
                return BP_ENOMEM;
            bp_set_row pr = r;
            pr.contract_address = p->contract_address;
            pr.address = p->address;
            if (added && push_set(d, &pr, b->block_hash) != 0)
                return BP_ENOMEM;
        }
    }
    return 0;
}

/* ---- prices ------------------------------------------------------------------------------ */

static int store_prices(bp_ch_derived *d, const bp_derived *der, bp_error *err)
{
    if (der->price_count == 0)
        return 0;
    bp_buf_reset(&d->sql);
    int rc = bp_buf_puts(&d->sql, "INSERT INTO prices (symbol, timestamp, usd, source) VALUES");
    for (size_t i = 0; i < der->price_count; i++) {
        const bp_price_row *p = &der->prices[i];
        rc |= bp_buf_puts(&d->sql, i ? ", (" : " (") | bp_ch_quote(&d->sql, p->symbol);
        rc |= bp_buf_printf(&d->sql, ", %" PRIu64 ", %.17g, ", p->timestamp, p->usd.v);
        rc |= bp_ch_quote(&d->sql, p->source ? p->source : "") | bp_buf_putc(&d->sql, ')');
    }
    d->prices_known = true;
    return rc ? oom(err) : query(d, NULL, "storing prices", err);
}

/* The native token's prices that can price blocks lo..hi, ascending. */
static int load_prices(bp_ch_derived *d, const bp_derived *der, uint64_t lo, uint64_t hi,
                       bp_error *err)
{
    d->nprices = 0;
    if (!d->prices_known || lo > hi)
        return 0;
    bp_buf_reset(&d->sql);
    int rc = bp_buf_puts(&d->sql, "SELECT timestamp, usd FROM prices FINAL WHERE symbol = ") |
             bp_ch_quote(&d->sql, der->native_symbol) |
             bp_buf_printf(&d->sql,
                           " AND timestamp >= %" PRIu64 " AND timestamp <= %" PRIu64
                           " ORDER BY timestamp",
                           lo > der->price_max_age ? lo - der->price_max_age : 0, hi);
    rc = rc ? oom(err) : query(d, &d->ans, "reading prices", err);
    char *p = d->ans.data, *cell[2];
    while (rc == 0 && bp_ch_tsv_row(&p, cell, 2) == 2 && cell[0] && cell[1]) {
        if (bp_grow((void **)&d->prices, &d->capprices, d->nprices + 1, sizeof(*d->prices)))
            return oom(err);
        d->prices[d->nprices++] = (chd_price){u64_of(cell[0]), strtod(cell[1], NULL)};
    }
    return rc;
}

/* fees_paid_usd of a block row: the module's, else the latest price at or before the block
 * within the maximum age. */
static bp_opt_f64 usd_of(const bp_ch_derived *d, const bp_derived *der, const bp_chain_block_row *b)
{
    if (b->fees_paid_usd.set || !b->fees_paid_native.set)
        return b->fees_paid_usd;
    const chd_price *best = NULL;
    for (size_t i = 0; i < d->nprices && d->prices[i].ts <= b->block_timestamp; i++)
        best = &d->prices[i];
    if (!best || b->block_timestamp - best->ts > der->price_max_age)
        return (bp_opt_f64){0};
    return (bp_opt_f64){b->fees_paid_native.v * best->usd, true};
}

/* ---- a batch: prepare ----------------------------------------------------------------------- */

static int touch_all(bp_ch_derived *d, uint64_t ts)
{
    for (int g = 0; g < BP_GRAIN_COUNT; g++)
        if (bp_windows_touch(&d->win, g, bp_window_of(ts, g), 0) != 0)
            return BP_ENOMEM;
    return 0;
}

static bool same_usd(bp_opt_f64 a, bp_opt_f64 b)
{
    return a.set == b.set && (!a.set || a.v == b.v);
}

/* A read taken a row at a time (bp_ch_query_rows): what a row callback needs, and the error it
 * met (its message, kept over bp_ch_query_rows' own). */
typedef struct chd_read {
    bp_ch_derived *d;
    const bp_derived *der;
    const bp_block *const *reverts;
    size_t nrev;
    int g;
    size_t ncols, nacc;
    int rc;
    bp_error e;
} chd_read;

/* rc of a bp_ch_query_rows whose rows may have failed with r->e */
static int read_rc(chd_read *r, int rc, bp_error *err)
{
    if (r->rc != 0) {
        *err = r->e;
        return r->rc;
    }
    return rc;
}

static int repriced_row(void *ctx, char **cell, int n)
{
    chd_read *x = ctx;
    bp_ch_derived *d = x->d;
    if (n != 5 || !cell[0] || !cell[1] || !cell[2] || !cell[3] || strlen(cell[1]) != 64)
        return 0;
    bp_chain_block_row b = {.block_timestamp = u64_of(cell[2]),
                            .fees_paid_native = {strtod(cell[3], NULL), true}};
    bp_opt_f64 now = usd_of(d, x->der, &b);
    bp_opt_f64 was = {cell[4] ? strtod(cell[4], NULL) : 0, cell[4] != NULL};
    bool reverted = false; /* (its number may get a new block in this batch) */
    for (size_t k = 0; k < x->nrev && !reverted; k++)
        reverted = x->reverts[k]->number == u64_of(cell[0]) &&
                   strcmp(x->reverts[k]->hash + 2, cell[1]) == 0;
    if (same_usd(now, was) || !now.set || reverted) /* (a price once known stays known) */
        return 0;
    if (bp_grow((void **)&d->reprice, &d->capreprice, d->nreprice + 1, sizeof(*d->reprice)) ||
        touch_all(d, b.block_timestamp))
        return x->rc = oom(&x->e);
    chd_reprice *r = &d->reprice[d->nreprice++];
    r->number = u64_of(cell[0]);
    snprintf(r->hash, sizeof(r->hash), "%s", cell[1]);
    r->usd = now;
    return 0;
}

/* The blocks written with timestamps in [lo, hi] whose USD the prices now make different. */
static int find_repriced(bp_ch_derived *d, const bp_derived *der, uint64_t lo, uint64_t hi,
                         const bp_block *const *reverts, size_t nrev, bp_error *err)
{
    bp_buf_reset(&d->sql);
    int rc = bp_buf_puts(&d->sql, "SELECT block_number, lower(hex(block_hash)),"
                                  " any(block_timestamp), argMax(fees_paid_native, " NEWEST "),"
                                  " argMax(fees_paid_usd, " NEWEST ")") |
             sql_origin(d, "chain_metrics_block", "origin_key") |
             bp_buf_printf(&d->sql,
                           " AND block_timestamp >= %" PRIu64 " AND block_timestamp <= %" PRIu64
                           " GROUP BY block_number, block_hash HAVING sum(" BP_CH_SIGN ") > 0",
                           lo, hi);
    if (rc != 0)
        return oom(err);
    chd_read x = {.d = d, .der = der, .reverts = reverts, .nrev = nrev};
    rc = bp_ch_query_rows(d->h, d->sql.data, 5, repriced_row, &x,
                          "reading the blocks new prices apply to", err);
    return read_rc(&x, rc, err);
}

/* The windows of the reverted blocks (from their rows, still there). */
static int touch_reverted(bp_ch_derived *d, bp_error *err)
{
    bp_buf_reset(&d->sql);
    int rc = bp_buf_puts(&d->sql, "SELECT any(block_timestamp)") |
             sql_origin(d, "chain_metrics_block", "origin_key") |
             bp_buf_printf(&d->sql, " AND (block_number, block_hash) IN (%s) GROUP BY block_number",
                           d->refs.data);
    rc = rc ? oom(err) : query(d, &d->ans, "reading the reverted blocks' derived rows", err);
    char *p = d->ans.data, *cell[1];
    while (rc == 0 && bp_ch_tsv_row(&p, cell, 1) == 1)
        if (cell[0] && touch_all(d, u64_of(cell[0])) != 0)
            rc = oom(err);
    return rc;
}

int bp_ch_derived_prepare(bp_ch_derived *d, const char *chain, const bp_derived *der,
                          const bp_block *const *reverts, size_t nrev,
                          const bp_block *const *applies, size_t napp, bp_error *err)
{
    int rc = set_chain(d, chain, err);
    if (rc != 0)
        return rc;
    bp_windows_clear(&d->win);
    bp_buf_reset(&d->refs);
    d->nsets = 0;
    d->shrinks = nrev > 0;
    bp_keymap_clear(&d->touched);
    for (size_t i = 0; i < nrev; i++)
        rc |= bp_buf_printf(&d->refs, "%s(%" PRIu64 ", unhex('%s'))", i ? ", " : "",
                            reverts[i]->number, reverts[i]->hash + 2);
    if (rc != 0)
        return oom(err);
    if (nrev > 0) {
        forget(d); /* the sets are read again without the reverted blocks' rows */
        rc = touch_reverted(d, err);
    }
    d->nreprice = 0;
    if (!der) /* metrics off: the reverted blocks' windows only (their sets read by rollups) */
        return rc;
    if (!d->blocks)
        napp = 0; /* derived=prices: no rows of blocks (whatever the module computed) */
    uint64_t lo = UINT64_MAX, hi = 0;
    size_t hint = 0;
    for (size_t i = 0; rc == 0 && i < napp; i++) {
        const bp_block_derived *bd = bp_derived_find(der, applies[i], &hint);
        if (!bd)
            return bp_error_set(err, BP_EINVAL, "block %" PRIu64 ": the batch has no derived rows",
                                applies[i]->number);
        uint64_t ts = bd->chain.block_timestamp;
        lo = ts < lo ? ts : lo;
        hi = ts > hi ? ts : hi;
        if (touch_all(d, ts) != 0)
            rc = oom(err);
    }
    /* the prices learnt: stored, and the blocks they price differently found */
    uint64_t plo = UINT64_MAX, phi = 0;
    for (size_t i = 0; i < der->price_count; i++) {
        const bp_price_row *p = &der->prices[i];
        if (strcasecmp(p->symbol, der->native_symbol) != 0)
            continue;
        plo = p->timestamp < plo ? p->timestamp : plo;
        phi = p->timestamp > phi ? p->timestamp : phi;
    }
    phi = plo <= phi ? phi + der->price_max_age : 0;
    if (d->check_prices && d->prices_known) /* a crash may have stored prices, not used them */
        plo = 0, phi = UINT64_MAX / 2;
    d->check_prices = false;
    if (rc == 0)
        rc = store_prices(d, der, err);
    if (rc == 0)
        rc = load_prices(d, der, plo < lo ? plo : lo, phi > hi ? phi : hi, err);
    if (rc == 0 && plo <= phi)
        rc = find_repriced(d, der, plo, phi, reverts, nrev, err);
    /* over its share (the lean windows' interned addresses grow with every batch): read
     * again, whole where it fits */
    if (cache_bytes(d) > cache_cap())
        forget(d);
    hint = 0;
    for (size_t i = 0; rc == 0 && i < napp; i++)
        if (intern_block(d, bp_derived_find(der, applies[i], &hint)) != 0)
            rc = oom(err);
    for (int g = 0; rc == 0 && g < BP_GRAIN_COUNT; g++)
        rc = load_sets(d, g, err);
    hint = 0;
    for (size_t i = 0; rc == 0 && i < napp; i++)
        if (block_sets(d, bp_derived_trim(bp_derived_find(der, applies[i], &hint), d->has,
                                          &d->trimmed)) != 0)
            rc = oom(err);
    if (rc != 0)
        forget(d); /* half added to memory */
    return rc;
}

/* ---- a batch: the per-block rows ---------------------------------------------------------- */

static void put_cols(bp_ch_enc *e, bp_dcol_id from, bp_dcol_id to, const void *row)
{
    for (int i = from; i <= (int)to; i++) {
        bp_value v = bp_dvalue_of((bp_dcol_id)i, row);
        bp_ch_put_value(e, bp_dcolumns[i].type, &v);
    }
}

static void put_shape(bp_ch_enc *e, bp_dshape s, const void *row)
{
    size_t first, n = bp_dshape_columns(s, &first);
    put_cols(e, (bp_dcol_id)first, (bp_dcol_id)(first + n - 1), row);
}

static void row_end(bp_ch_enc *e, uint64_t seq)
{
    bp_ch_put_i8(e, 1);
    bp_ch_put_u64(e, seq);
    bp_ch_row_end(e);
}

/* Rows of per-block table k in block bd. */
static size_t block_rows(int k, const bp_block_derived *bd)
{
    switch (k) {
    case BP_CHD_BLOCK:
        return 1;
    case BP_CHD_CONTRACT_BLOCK:
        return bd->contract_count;
    case BP_CHD_TRANSFERS:
        return bd->transfer_count;
    default:
        return bd->prediction_count;
    }
}

/* Row i of per-block table k of block bd. */
static void enc_row(bp_ch_derived *d, const bp_derived *der, const bp_block_derived *bd, int k,
                    size_t i, uint64_t seq, bp_ch_enc *e)
{
    bp_chain_block_row cb = bd->chain;
    switch (k) {
    case BP_CHD_BLOCK:
        cb.fees_paid_usd = usd_of(d, der, &cb);
        put_shape(e, BP_DS_CHAIN_BLOCK, &cb);
        bp_ch_put_u64(e, 0);
        break;
    case BP_CHD_CONTRACT_BLOCK:
        put_cols(e, BP_D_KW_ORIGIN_KEY, BP_D_KW_ORIGIN_KEY, &bd->contracts[i]);
        put_cols(e, BP_D_CB_BLOCK_NUMBER, BP_D_CB_BLOCK_TIMESTAMP, &cb);
        put_cols(e, BP_D_KW_CONTRACT_ADDRESS, BP_D_KW_FEES_PAID_NATIVE, &bd->contracts[i]);
        break;
    case BP_CHD_TRANSFERS:
        put_shape(e, BP_DS_TOKEN_TRANSFER, &bd->transfers[i]);
        break;
    default:
        put_shape(e, BP_DS_PREDICTION, &bd->predictions[i]);
        bp_ch_put_hex(e, cb.block_hash);
    }
    row_end(e, seq);
}

/* The batch's set rows of one table (addresses or (contract, sender) pairs) from at->row on. */
static void enc_sets(bp_ch_derived *d, int k, uint64_t seq, bp_ch_enc *e, bp_ch_derived_at *at,
                     size_t part)
{
    bool pairs = k == BP_CHD_SENDERS;
    while (at->row < d->nsets && e->rc == 0) {
        const chd_set *s = &d->sets[at->row++];
        if ((s->row.contract_address != NULL) != pairs)
            continue;
        put_shape(e, pairs ? BP_DS_CONTRACT_SENDER_SET : BP_DS_ADDRESS_SET, &s->row);
        bp_ch_put_hex(e, s->hash);
        row_end(e, seq);
        if (e->rows % 64 == 0 && bp_ch_enc_bytes(e) >= part)
            return;
    }
}

int bp_ch_derived_encode_part(bp_ch_derived *d, const bp_derived *der,
                              const bp_block *const *applies, size_t napp, uint64_t seq, int k,
                              bp_ch_enc *e, bp_ch_derived_at *at, size_t part, bp_error *err)
{
    if (k >= BP_CHD_ADDRESSES) {
        enc_sets(d, k, seq, e, at, part);
        return 0;
    }
    if (!d->blocks)
        return 0; /* derived=prices: no rows of blocks */
    for (; at->blk < napp; at->blk++, at->row = 0) {
        const bp_block_derived *bd = bp_derived_find(der, applies[at->blk], &at->hint);
        if (!bd)
            return bp_error_set(err, BP_EINVAL, "block %" PRIu64 ": the batch has no derived rows",
                                applies[at->blk]->number);
        bd = bp_derived_trim(bd, d->has, &d->trimmed);
        for (size_t n = block_rows(k, bd); at->row < n && e->rc == 0;) {
            enc_row(d, der, bd, k, at->row, seq, e);
            if (++at->row % 64 == 0 && at->row < n && bp_ch_enc_bytes(e) >= part)
                return 0;
        }
        if (e->rc != 0) /* at->blk stays at the failing block: the error names it */
            return 0;
        if (bp_ch_enc_bytes(e) >= part) {
            at->blk++, at->row = 0;
            return 0;
        }
    }
    return 0;
}

/* ---- a batch: rollups ------------------------------------------------------------------- */

/* A chain window being recomputed: per column of the window shape its sum / min / max. */
typedef struct chd_acc {
    uint64_t u[24];
    bp_u256 wei;
    double usd;
    bool usd_null;
    size_t rows;
} chd_acc;

typedef struct chd_med {
    size_t acc, col;
    bp_u256 v;
} chd_med;

#define ACC_SIZE                                                                                   \
    (sizeof(chd_acc) > sizeof(bp_contract_row) ? sizeof(chd_acc) : sizeof(bp_contract_row))

static int med_cmp(const void *pa, const void *pb)
{
    const chd_med *a = pa, *b = pb;
    if (a->acc != b->acc)
        return a->acc < b->acc ? -1 : 1;
    if (a->col != b->col)
        return a->col < b->col ? -1 : 1;
    return bp_u256_cmp(&a->v, &b->v);
}

/* The window's index in d->acc (zeroed when new); SIZE_MAX when out of memory. d->acc holds
 * chain accumulators and contract rows in turn, its capacity counted in elements of the larger
 * (counted in the one asked for, a chain rollup after a contract one wrote past the end). */
static size_t acc_of(bp_ch_derived *d, uint64_t w, const char *contract, size_t size, size_t *n)
{
    bool added;
    size_t v;
    if (bp_keymap_put(&d->map, w, contract, NULL, *n, &v, &added) != 0)
        return SIZE_MAX;
    if (added) {
        if (bp_grow(&d->acc, &d->capacc, *n + 1, ACC_SIZE) != 0)
            return SIZE_MAX;
        memset((char *)d->acc + *n * size, 0, size);
        (*n)++;
    }
    return v;
}

static const char *chain_finer_col(const bp_dcolumn *c, int g, char *buf, size_t cap)
{
    switch (c->agg) {
    case BP_AGG_COUNT:
        return g ? "block_count" : "1";
    case BP_AGG_FIRST_BLOCK:
        return g ? "first_block" : "block_number";
    case BP_AGG_LAST_BLOCK:
        return g ? "last_block" : "block_number";
    case BP_AGG_SUM:
    case BP_AGG_USD:
        snprintf(buf, cap, g ? "%s" : "argMax(%s, " NEWEST ")", c->name);
        return buf;
    case BP_AGG_SUM256:
    case BP_AGG_MEDIAN:
        snprintf(buf, cap, g ? "toString(%s)" : "toString(argMax(%s, " NEWEST "))", c->name);
        return buf;
    default:
        return "0";
    }
}

/* The finer rows of grain g's touched windows: "SELECT window, columns... FROM ...". */
static int chain_finer_sql(bp_ch_derived *d, int g)
{
    uint64_t len = bp_grain_seconds[g];
    size_t first, n = bp_dshape_columns(BP_DS_CHAIN_WINDOW, &first);
    const char *tcol = g ? "window_start" : "block_timestamp";
    bp_buf_reset(&d->sql);
    int rc = bp_buf_printf(&d->sql, "SELECT intDiv(%s, %" PRIu64 ") * %" PRIu64, tcol, len, len);
    for (size_t i = first; i < first + n; i++) {
        char buf[96];
        const bp_dcolumn *c = &bp_dcolumns[i];
        if (c->agg != BP_AGG_KEY && c->agg != BP_AGG_WINDOW)
            rc |= bp_buf_printf(&d->sql, ", %s", chain_finer_col(c, g, buf, sizeof(buf)));
    }
    if (g == 0)
        rc |= sql_origin(d, "chain_metrics_block", "origin_key");
    else
        rc |= bp_buf_printf(&d->sql, " FROM %s FINAL WHERE origin_key = ",
                            bp_dtables[BP_DT_CHAIN_1M + g - 1].name) |
              bp_ch_quote(&d->sql, d->chain);
    rc |= bp_buf_printf(&d->sql, " AND intDiv(%s, %" PRIu64 ") * %" PRIu64 " IN (", tcol, len, len);
    rc |= window_list(d, g) | bp_buf_putc(&d->sql, ')');
    if (g == 0)
        rc |= bp_buf_puts(&d->sql, " GROUP BY block_number, block_hash, block_timestamp"
                                   " HAVING sum(" BP_CH_SIGN ") > 0");
    return rc;
}

/* Adds one finer row (cells after the window's) to acc a. */
static int chain_accumulate(bp_ch_derived *d, size_t a, char **cell, size_t n)
{
    chd_acc *acc = &((chd_acc *)d->acc)[a];
    size_t first;
    bp_dshape_columns(BP_DS_CHAIN_WINDOW, &first);
    acc->rows++;
    for (size_t i = 2, k = 0; i < n; i++, k++) {
        const bp_dcolumn *c = &bp_dcolumns[first + i];
        const char *v = cell[k];
        uint64_t x = u64_of(v);
        bp_u256 q;
        switch (c->agg) {
        case BP_AGG_COUNT:
        case BP_AGG_SUM:
            acc->u[i] += x;
            break;
        case BP_AGG_FIRST_BLOCK:
            acc->u[i] = acc->rows == 1 || x < acc->u[i] ? x : acc->u[i];
            break;
        case BP_AGG_LAST_BLOCK:
            acc->u[i] = x > acc->u[i] ? x : acc->u[i];
            break;
        case BP_AGG_SUM256:
            if (!v || bp_u256_from_dec(v, strlen(v), &q) != 0 ||
                bp_u256_add(&acc->wei, &acc->wei, &q) != 0)
                return BP_EDB;
            break;
        case BP_AGG_USD:
            acc->usd_null |= !v;
            acc->usd += v ? strtod(v, NULL) : 0;
            break;
        case BP_AGG_MEDIAN:
            if (!v)
                break;
            if (bp_u256_from_dec(v, strlen(v), &q) != 0)
                return BP_EDB;
            if (bp_grow((void **)&d->med, &d->capmed, d->nmed + 1, sizeof(*d->med)) != 0)
                return BP_ENOMEM;
            d->med[d->nmed++] = (chd_med){a, i, q};
            break;
        default:
            break;
        }
    }
    return 0;
}

/* The lower median of acc a's column i (from the sorted d->med), NULL when none. */
static const bp_u256 *median_of(const bp_ch_derived *d, size_t a, size_t i)
{
    size_t lo = 0, n = 0;
    for (size_t k = 0; k < d->nmed; k++)
        if (d->med[k].acc == a && d->med[k].col == i && n++ == 0)
            lo = k;
    return n ? &d->med[lo + (n - 1) / 2].v : NULL;
}

/* A block row (cells after the window's) of a block the batch reprices: its new USD. */
static void patch_usd(const bp_ch_derived *d, char **cell, char *buf, size_t cap)
{
    size_t first, n = bp_dshape_columns(BP_DS_CHAIN_WINDOW, &first);
    size_t number = SIZE_MAX, usd = SIZE_MAX;
    for (size_t i = 2; i < n; i++) {
        if (bp_dcolumns[first + i].agg == BP_AGG_FIRST_BLOCK)
            number = i - 2;
        if (bp_dcolumns[first + i].agg == BP_AGG_USD)
            usd = i - 2;
    }
    for (size_t k = 0; number != SIZE_MAX && usd != SIZE_MAX && k < d->nreprice; k++)
        if (d->reprice[k].number == u64_of(cell[number])) {
            snprintf(buf, cap, "%.17g", d->reprice[k].usd.v);
            cell[usd] = buf;
        }
}

static void chain_encode(bp_ch_derived *d, int g, uint64_t w, size_t a)
{
    static const chd_acc none = {.usd_null = true};
    const chd_acc *acc = a == SIZE_MAX ? &none : &((chd_acc *)d->acc)[a];
    bp_ch_enc *e = &d->enc[g];
    size_t first, n = bp_dshape_columns(BP_DS_CHAIN_WINDOW, &first);
    for (size_t i = 0; i < n; i++) {
        const bp_u256 *m;
        switch (bp_dcolumns[first + i].agg) {
        case BP_AGG_KEY:
            bp_ch_put_text(e, d->chain, strlen(d->chain));
            break;
        case BP_AGG_WINDOW:
            bp_ch_put_u64(e, w);
            break;
        case BP_AGG_SUM256:
            bp_ch_put_u256(e, &acc->wei);
            break;
        case BP_AGG_NATIVE:
            bp_ch_put_f64(e, bp_u256_to_double(&acc->wei) / 1e18);
            break;
        case BP_AGG_USD:
            if (acc->rows && !acc->usd_null)
                bp_ch_put_f64(e, acc->usd);
            else
                bp_ch_put_null(e);
            break;
        case BP_AGG_MEDIAN:
            m = a == SIZE_MAX ? NULL : median_of(d, a, i);
            if (m)
                bp_ch_put_u256(e, m);
            else
                bp_ch_put_null(e);
            break;
        case BP_AGG_DISTINCT:
            bp_ch_put_u64(e, cache_count(d, g, w, NULL));
            break;
        default:
            bp_ch_put_u64(e, acc->u[i]);
        }
    }
    bp_ch_put_u64(e, d->ver);
    bp_ch_row_end(e);
}

static int insert_rollup(bp_ch_derived *d, int k, bp_error *err)
{
    bp_ch_enc *e = &d->enc[k];
    if (e->rc != 0)
        return bp_error_set(err, e->rc, "%s: column %s: the value does not fit its type",
                            d->roll[k].name, d->roll[k].cols[e->bad].name);
    bp_ch_piece pieces[BP_CH_MAX_PIECES(BP_CH_MAX_COLS)];
    size_t n = bp_ch_enc_pieces(e, pieces, sizeof(pieces) / sizeof(pieces[0]));
    char what[96];
    snprintf(what, sizeof(what), "INSERT of %zu rows into %s", e->rows, d->roll[k].name);
    return bp_ch_insert(d->h, d->insert[k].data, pieces, n, false, what, err);
}

static int chain_row(void *ctx, char **cell, int n)
{
    chd_read *x = ctx;
    bp_ch_derived *d = x->d;
    const char *table = bp_dtables[BP_DT_CHAIN_1M + x->g].name;
    if ((size_t)n != x->ncols - 1 || !cell[0])
        return x->rc = bp_error_set(&x->e, BP_EDB, "%s: a finer row of %d cells", table, n);
    if (x->g > 0 && u64_of(cell[1]) == 0)
        return 0; /* a window left without blocks */
    size_t a = acc_of(d, u64_of(cell[0]), NULL, sizeof(chd_acc), &x->nacc);
    char usd[32];
    if (x->g == 0 && d->nreprice > 0)
        patch_usd(d, cell + 1, usd, sizeof(usd));
    int rc = a == SIZE_MAX ? BP_ENOMEM : chain_accumulate(d, a, cell + 1, x->ncols);
    if (rc == BP_EDB)
        return x->rc = bp_error_set(&x->e, BP_EDB, "%s: a finer row that is not a number", table);
    return rc ? (x->rc = oom(&x->e)) : 0;
}

static int chain_rollup(bp_ch_derived *d, int g, bp_error *err)
{
    size_t first;
    chd_read x = {.d = d, .g = g, .ncols = bp_dshape_columns(BP_DS_CHAIN_WINDOW, &first)};
    bp_keymap_clear(&d->map);
    d->nmed = 0;
    if (x.ncols - 1 > BP_CH_ROW_CELLS)
        return bp_error_set(err, BP_EINVAL, "a window row of %zu cells", x.ncols - 1);
    int rc = chain_finer_sql(d, g) ? oom(err)
                                   : bp_ch_query_rows(d->h, d->sql.data, BP_CH_ROW_CELLS, chain_row,
                                                      &x, "reading finer rows", err);
    rc = read_rc(&x, rc, err);
    if (rc != 0)
        return rc;
    if (d->nmed > 0)
        qsort(d->med, d->nmed, sizeof(*d->med), med_cmp);
    bp_ch_enc_reset(&d->enc[g]);
    for (size_t i = 0; i < d->win.n[g]; i++) {
        uint64_t w = d->win.v[g][i].w;
        size_t *a = bp_keymap_get(&d->map, w, NULL, NULL);
        chain_encode(d, g, w, a ? *a : SIZE_MAX);
    }
    return insert_rollup(d, g, err);
}

/* Contract windows: the finer rows' sums per (window, contract), unique senders from the
 * sets; a contract the window had before but has no transactions in now gets a row of 0. */
static int contract_finer_sql(bp_ch_derived *d, int g)
{
    uint64_t len = bp_grain_seconds[g];
    const char *tcol = g ? "window_start" : "block_timestamp";
    bp_buf_reset(&d->sql);
    int rc = bp_buf_printf(&d->sql,
                           "SELECT intDiv(%s, %" PRIu64 ") * %" PRIu64
                           ", concat('0x', lower(hex(contract_address))), %s",
                           tcol, len, len,
                           g ? "txcount, gas_used, toString(fees_paid_wei)"
                             : "any(txcount), any(gas_used), toString(any(fees_paid_wei))");
    if (g == 0)
        rc |= sql_origin(d, "contract_metrics_block", "origin_key");
    else
        rc |= bp_buf_printf(&d->sql, " FROM %s FINAL WHERE origin_key = ",
                            bp_dtables[BP_DT_CONTRACT_1M + g - 1].name) |
              bp_ch_quote(&d->sql, d->chain);
    rc |= bp_buf_printf(&d->sql, " AND intDiv(%s, %" PRIu64 ") * %" PRIu64 " IN (", tcol, len, len);
    rc |= window_list(d, g) | bp_buf_putc(&d->sql, ')');
    if (g == 0)
        rc |= bp_buf_puts(&d->sql,
                          " GROUP BY block_number, block_hash, block_timestamp, contract_address"
                          " HAVING sum(" BP_CH_SIGN ") > 0");
    return rc;
}

/* The accumulator of (window, contract): the contract's address copied (the row's cells live
 * during the row only); NULL when out of memory. */
static bp_contract_row *contract_acc(chd_read *x, const char *window, const char *contract)
{
    bp_ch_derived *d = x->d;
    uint64_t w = u64_of(window);
    size_t *v = bp_keymap_get(&d->map, w, contract, NULL);
    if (!v) {
        char *copy = d->strs ? bp_arena_strndup(d->strs, contract, strlen(contract)) : NULL;
        size_t a = copy ? acc_of(d, w, copy, sizeof(bp_contract_row), &x->nacc) : SIZE_MAX;
        if (a == SIZE_MAX)
            return NULL;
        bp_contract_row *r = &((bp_contract_row *)d->acc)[a];
        r->window_start = w;
        r->contract_address = copy;
        r->fees_paid_wei.set = true;
        return r;
    }
    return &((bp_contract_row *)d->acc)[*v];
}

static int contract_row(void *ctx, char **cell, int n)
{
    chd_read *x = ctx;
    bp_u256 fee;
    uint64_t txs = n == 5 ? u64_of(cell[2]) : 0;
    if (txs == 0 || !cell[0] || !cell[1])
        return 0;
    if (!cell[4] || bp_u256_from_dec(cell[4], strlen(cell[4]), &fee) != 0)
        return x->rc = bp_error_set(&x->e, BP_EDB, "contract rows: fees_paid_wei '%s'",
                                    cell[4] ? cell[4] : "NULL");
    bp_contract_row *r = contract_acc(x, cell[0], cell[1]);
    if (!r)
        return x->rc = oom(&x->e);
    r->txcount += txs;
    r->gas_used += u64_of(cell[3]);
    if (bp_u256_add(&r->fees_paid_wei.v, &r->fees_paid_wei.v, &fee) != 0)
        return x->rc = bp_error_set(&x->e, BP_EDB, "contract rows: fees overflow");
    return 0;
}

/* A contract the window had before: a row of 0 unless it has transactions now. */
static int contract_had_row(void *ctx, char **cell, int n)
{
    chd_read *x = ctx;
    if (n != 3 || !cell[0] || !cell[1] || u64_of(cell[2]) == 0)
        return 0;
    return contract_acc(x, cell[0], cell[1]) ? 0 : (x->rc = oom(&x->e));
}

static int contract_rollup(bp_ch_derived *d, int g, bp_error *err)
{
    chd_read x = {.d = d, .g = g};
    bp_keymap_clear(&d->map);
    if (!d->strs && !(d->strs = bp_arena_new(64 << 10)))
        return oom(err);
    bp_arena_recycle(d->strs, 64 << 10);
    int rc = contract_finer_sql(d, g) ? oom(err)
                                      : bp_ch_query_rows(d->h, d->sql.data, 5, contract_row, &x,
                                                         "reading finer rows", err);
    rc = read_rc(&x, rc, err);
    /* the contracts the windows have now, for the ones that went (only blocks taken away can
     * take a contract out of a window) */
    bp_buf_reset(&d->sql);
    if (rc == 0 && d->shrinks) {
        rc = bp_buf_puts(&d->sql, "SELECT window_start, concat('0x', lower(hex(contract_address))),"
                                  " txcount") |
                     bp_buf_printf(&d->sql, " FROM %s FINAL WHERE origin_key = ",
                                   bp_dtables[BP_DT_CONTRACT_1M + g].name) |
                     bp_ch_quote(&d->sql, d->chain) |
                     bp_buf_puts(&d->sql, " AND window_start IN (") | window_list(d, g) |
                     bp_buf_putc(&d->sql, ')')
                 ? oom(err)
                 : bp_ch_query_rows(d->h, d->sql.data, 3, contract_had_row, &x,
                                    "reading contract windows", err);
        rc = read_rc(&x, rc, err);
    }
    size_t nacc = x.nacc;
    if (rc != 0)
        return rc;
    bp_ch_enc *e = &d->enc[BP_GRAIN_COUNT + g];
    bp_ch_enc_reset(e);
    size_t rows = 0;
    for (size_t i = 0; i < nacc; i++) {
        bp_contract_row *r = &((bp_contract_row *)d->acc)[i];
        if (!d->shrinks && !bp_keymap_get(&d->touched, 0, r->contract_address, NULL))
            continue; /* unchanged: the batch only added blocks, none calling it */
        rows++;
        r->origin_key = d->chain;
        r->fees_paid_native = (bp_opt_f64){bp_u256_to_double(&r->fees_paid_wei.v) / 1e18, true};
        r->unique_senders =
            r->txcount ? cache_count(d, g, r->window_start, r->contract_address) : 0;
        put_shape(e, BP_DS_CONTRACT_WINDOW, r);
        bp_ch_put_u64(e, d->ver);
        bp_ch_row_end(e);
    }
    return rows ? insert_rollup(d, BP_GRAIN_COUNT + g, err) : 0;
}

/* One INSERT: for every repriced block still held, a -1 row cancelling its live key and a +1
 * row of a new key (_rev = seq) with the new USD, both of batch seq. Two keys, so the order of
 * the rows in the part does not matter (FINAL keeps a key only when its last row is a +1); the
 * block's sign sum stays 1; the rows of one block are in one partition (one part): the pair
 * lands whole or not at all; a rollback of the batch takes both back (the old price again,
 * and the retried batch reprices it again). */
static int reprice(bp_ch_derived *d, uint64_t seq, bp_error *err)
{
    if (d->nreprice == 0)
        return 0;
    size_t first, n = bp_dshape_columns(BP_DS_CHAIN_BLOCK, &first);
    bp_buf_reset(&d->sql);
    int rc = bp_buf_puts(&d->sql, "INSERT INTO chain_metrics_block (");
    rc |= dcol_list(&d->sql, first, n);
    rc |= bp_buf_puts(&d->sql, ", " REV ", " BP_CH_SIGN ", " BP_CH_SEQ ") SELECT ");
    for (size_t i = first; i < first + n; i++) {
        const bp_dcolumn *c = &bp_dcolumns[i];
        const char *sep = i > first ? ", " : "";
        if (c->flags & BP_COL_KEY || strcmp(c->name, "block_hash") == 0) {
            rc |= bp_buf_printf(&d->sql, "%s%s", sep, c->name);
        } else if (i == BP_D_CB_FEES_PAID_USD) {
            /* (18.16's CASE x WHEN ... ELSE NULL gives NULL: multiIf, the old value last) */
            rc |= bp_buf_printf(&d->sql, "%sif(s = 1, multiIf(", sep);
            for (size_t k = 0; k < d->nreprice; k++)
                rc |= bp_buf_printf(&d->sql, "block_number = %" PRIu64 ", %.17g, ",
                                    d->reprice[k].number, d->reprice[k].usd.v);
            rc |= bp_buf_printf(&d->sql, "argMax(%s, " NEWEST ")), argMax(%s, " NEWEST "))",
                                c->name, c->name);
        } else {
            rc |= bp_buf_printf(&d->sql, "%sargMax(%s, " NEWEST ")", sep, c->name);
        }
    }
    rc |= bp_buf_printf(&d->sql,
                        ", if(s = 1, toUInt64(%" PRIu64 "), " REV "), toInt8(s),"
                        " toUInt64(%" PRIu64 ")",
                        d->ver, seq);
    rc |= sql_origin(d, "chain_metrics_block", "origin_key");
    rc |= bp_buf_puts(&d->sql, " AND (block_number, block_hash) IN (");
    for (size_t k = 0; k < d->nreprice; k++)
        rc |= bp_buf_printf(&d->sql, "%s(%" PRIu64 ", unhex('%s'))", k ? ", " : "",
                            d->reprice[k].number, d->reprice[k].hash);
    rc |= bp_buf_puts(&d->sql, ") GROUP BY origin_key, block_number, block_hash, " REV ", s"
                               " HAVING sum(" BP_CH_SIGN ") > 0");
    if (rc != 0)
        return oom(err);
    /* ARRAY JOIN goes after FROM: splice it in before WHERE */
    char *where = strstr(d->sql.data, " WHERE origin_key = ");
    size_t at = (size_t)(where - d->sql.data);
    static const char aj[] = " ARRAY JOIN [-1, 1] AS s";
    if (bp_buf_reserve(&d->sql, sizeof(aj)) != 0)
        return oom(err);
    where = d->sql.data + at;
    memmove(where + sizeof(aj) - 1, where, d->sql.len - at + 1);
    memcpy(where, aj, sizeof(aj) - 1);
    d->sql.len += sizeof(aj) - 1;
    rc = query(d, NULL, "repricing blocks", err);
    return rc ? bp_error_prefix(err, "derived tables: ") : 0;
}

int bp_ch_derived_rollups(bp_ch_derived *d, uint64_t seq, bp_error *err)
{
    int rc = bp_windows_close(&d->win) ? oom(err) : 0;
    for (int g = 0; rc == 0 && g < BP_GRAIN_COUNT; g++) {
        if (d->win.n[g] == 0)
            continue;
        rc = load_sets(d, g, err); /* (a recovery's windows) */
        if (rc == 0)
            rc = chain_rollup(d, g, err);
        if (rc == 0 && (d->has & BP_DG_BIT(BP_DG_CONTRACT_METRICS)))
            rc = contract_rollup(d, g, err);
        if (rc == 0)
            bp_crashpoint("clickhouse.mid_rollups");
    }
    /* after the rollups (which counted the new prices already): a crash between leaves the
     * blocks unrepriced, which the check after the recovery finds (a crash after the blocks
     * were repriced but before their windows would leave the windows stale for good) */
    if (rc == 0 && d->nreprice > 0)
        rc = reprice(d, seq, err);
    d->nreprice = 0;
    d->ver++;
    if (rc != 0) {
        forget(d);
        return bp_error_prefix(err, "derived rollups: ");
    }
    return 0;
}

/* ---- recovery ----------------------------------------------------------------------------- */

/* The timestamp from which windows may be stale: of the highest block row at or below
 * below (*found); 0 when the chain has none there. */
static int stale_from(bp_ch_derived *d, uint64_t below, uint64_t *from, bool *found, bp_error *err)
{
    *from = 0;
    *found = false;
    if (below == UINT64_MAX)
        return 0;
    bp_buf_reset(&d->sql);
    int rc = bp_buf_puts(&d->sql, "SELECT block_number, any(block_timestamp)") |
             sql_origin(d, "chain_metrics_block", "origin_key") |
             bp_buf_printf(&d->sql,
                           " AND block_number <= %" PRIu64 " AND block_number + 1024 > %" PRIu64
                           " GROUP BY block_number, block_hash HAVING sum(" BP_CH_SIGN
                           ") > 0 ORDER BY block_number DESC LIMIT 1",
                           below, below);
    rc = rc ? oom(err) : query(d, &d->ans, "reading the last block row", err);
    char *p = d->ans.data, *cell[2];
    if (rc == 0 && bp_ch_tsv_row(&p, cell, 2) == 2) {
        *from = u64_of(cell[1]);
        *found = true;
    }
    return rc;
}

int bp_ch_derived_recover(bp_ch_derived *d, const char *chain, uint64_t below, uint64_t after,
                          bp_error *err)
{
    int rc = set_chain(d, chain, err);
    uint64_t from = 0;
    bool found = false;
    forget(d);
    d->nreprice = 0; /* (a failed batch's) */
    d->shrinks = true;
    bp_windows_clear(&d->win);
    bp_buf_reset(&d->refs);
    if (rc == 0)
        rc = stale_from(d, below, &from, &found, err);
    if (rc == 0 && !d->writes && !found && below != UINT64_MAX)
        return 0;
    from = bp_window_of(from, BP_GRAIN_1M);
    from = from < after ? after : from;
    /* every minute from there that has a rollup row or a block row (taken back or not) */
    bp_buf_reset(&d->sql);
    rc = rc ? rc
         : bp_buf_printf(&d->sql,
                         "SELECT DISTINCT window_start FROM chain_metrics_1m WHERE origin_key ="
                         " ") |
                 bp_ch_quote(&d->sql, chain) |
                 bp_buf_printf(&d->sql,
                               " AND window_start >= %" PRIu64
                               " UNION ALL SELECT DISTINCT intDiv(block_timestamp, 60) * 60"
                               " FROM chain_metrics_block WHERE origin_key = ",
                               from) |
                 bp_ch_quote(&d->sql, chain) |
                 bp_buf_printf(&d->sql, " AND block_timestamp >= %" PRIu64, from)
             ? oom(err)
             : query(d, &d->ans2, "reading the windows to check", err);
    char *p = d->ans2.data, *cell[1];
    while (rc == 0 && bp_ch_tsv_row(&p, cell, 1) == 1)
        if (cell[0] && bp_windows_touch(&d->win, BP_GRAIN_1M, u64_of(cell[0]), 0) != 0)
            rc = oom(err);
    if (rc == 0 && d->win.n[BP_GRAIN_1M] > 0)
        rc = bp_ch_derived_rollups(d, 0, err);
    d->check_prices = true;
    return rc ? bp_error_prefix(err, "derived tables: ") : 0;
}

/* ---- retention ---------------------------------------------------------------------------- */

/* Drops the partitions of table (of one grain, or any: NULL) that end at or before `before`. */
static int drop_partitions(bp_ch_derived *d, const char *table, const char *col, const char *grain,
                           uint64_t unit, uint64_t before, bp_error *err)
{
    uint64_t end = before - before % unit;
    bp_buf_reset(&d->sql);
    int rc = bp_buf_printf(&d->sql, "SELECT DISTINCT intDiv(%s, %" PRIu64 ")", col, unit) |
             sql_origin(d, table, "origin_key");
    if (grain)
        rc |= bp_buf_printf(&d->sql, " AND grain = '%s'", grain);
    rc |= bp_buf_printf(&d->sql, " AND %s < %" PRIu64, col, end);
    rc = rc ? oom(err) : query(d, &d->ans, "finding expired partitions", err);
    char *p = d->ans.data, *cell[1];
    bp_buf sql;
    bp_buf_init(&sql, 0);
    while (rc == 0 && bp_ch_tsv_row(&p, cell, 1) == 1 && cell[0]) {
        bp_buf_reset(&sql);
        rc = bp_buf_printf(&sql, "ALTER TABLE %s DROP PARTITION (", table) |
             bp_ch_quote(&sql, d->chain);
        if (grain)
            rc |= bp_buf_printf(&sql, ", '%s'", grain);
        rc |= bp_buf_printf(&sql, ", %s)", cell[0]);
        rc = rc ? oom(err) : bp_ch_query(d->h, sql.data, NULL, "dropping a partition", err);
    }
    bp_buf_release(&sql);
    return rc;
}

/* Table, time column, grain and partition length of an expiry of the shared plan. */
static int expire_one(bp_ch_derived *d, const bp_expiry *x, bp_error *err)
{
    const char *grain = x->grain >= 0 ? bp_grain_names[x->grain] : NULL;
    switch (x->table) {
    case BP_DT_CHAIN_BLOCK: {
        int rc =
            drop_partitions(d, "chain_metrics_block", "block_timestamp", NULL, DAY, x->before, err);
        return rc ? rc
                  : drop_partitions(d, "contract_metrics_block", "block_timestamp", NULL, DAY,
                                    x->before, err);
    }
    case BP_DT_ACTIVE_ADDRESSES:
    case BP_DT_CONTRACT_SENDERS: {
        int rc = drop_partitions(d, bp_dtables[x->table].name, "window_start", grain, DAY,
                                 x->before, err);
        /* the minutes' sets (ClickHouse keeps them too) go with the hours' */
        return rc || x->grain != BP_GRAIN_1H
                   ? rc
                   : drop_partitions(d, bp_dtables[x->table].name, "window_start",
                                     bp_grain_names[BP_GRAIN_1M], DAY, x->before, err);
    }
    default: {
        int g = x->table >= BP_DT_CONTRACT_1M ? x->table - BP_DT_CONTRACT_1M
                                              : x->table - BP_DT_CHAIN_1M;
        return drop_partitions(d, bp_dtables[x->table].name, "window_start", NULL, g_part_secs[g],
                               x->before, err);
    }
    }
}

int bp_ch_derived_expire(bp_ch_derived *d, const bp_derived *der, bp_error *err)
{
    if (!d->chain)
        return 0;
    bp_expiry plan[BP_EXPIRY_MAX];
    size_t n = bp_retention_plan(&d->ret, der, plan);
    for (size_t i = 0; i < n; i++) {
        if (plan[i].before <= d->last_cut[i])
            continue;
        int rc = expire_one(d, &plan[i], err);
        if (rc != 0)
            return bp_error_prefix(err, "retention of %s: ", bp_dtables[plan[i].table].name);
        d->last_cut[i] = plan[i].before;
    }
    return 0;
}

/* ---- memory --------------------------------------------------------------------------- */

size_t bp_ch_derived_held(const bp_ch_derived *d)
{
    size_t n = d->sql.cap + d->ans.cap + d->ans2.cap + d->refs.cap + d->refs2.cap +
               d->capsets * sizeof(*d->sets) + d->capreprice * sizeof(*d->reprice) +
               d->capacc * ACC_SIZE + d->capmed * sizeof(*d->med) +
               (d->map.cap + d->touched.cap) * sizeof(bp_keymap_slot) +
               (d->strs ? bp_arena_held(d->strs) : 0);
    for (int k = 0; k < BP_CHD_ROLLUPS; k++)
        n += bp_ch_enc_held(&d->enc[k]);
    return n;
}

void bp_ch_derived_trim(bp_ch_derived *d)
{
    bp_buf_release(&d->sql);
    bp_buf_release(&d->ans);
    bp_buf_release(&d->ans2);
    bp_buf_release(&d->refs);
    bp_buf_release(&d->refs2);
    for (int k = 0; k < BP_CHD_ROLLUPS; k++)
        bp_ch_enc_trim(&d->enc[k]);
    free(d->sets);
    d->sets = NULL;
    d->nsets = d->capsets = 0;
    free(d->reprice);
    d->reprice = NULL;
    d->nreprice = d->capreprice = 0;
    free(d->acc);
    d->acc = NULL;
    d->capacc = 0;
    free(d->med);
    d->med = NULL;
    d->nmed = d->capmed = 0;
    bp_keymap_release(&d->map);
    bp_keymap_release(&d->touched);
    bp_arena_free(d->strs);
    d->strs = NULL;
}
