/* sqlgen_derived.c - SQL text of the derived tables from their column table (sqlgen.h). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "sink/sqlgen.h"

/* bp_column's shape for a derived column, so that the outputs' type functions serve both. */
static const bp_column *as_column(const bp_dcolumn *c, bp_column *tmp)
{
    *tmp = (bp_column){.name = c->name, .qname = c->name, .type = c->type, .flags = c->flags};
    return tmp;
}

int bp_sql_dcolumns(bp_buf *out, bp_dshape s, const char *prefix)
{
    size_t first, n = bp_dshape_columns(s, &first);
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        rc |= bp_buf_printf(out, "%s%s%s", i ? ", " : "", prefix ? prefix : "",
                            bp_dcolumns[first + i].name);
    return rc;
}

/* Whether a NOT NULL column that is not in the key comes before a key column. SQLite 3.40's
 * PRAGMA integrity_check (Debian 12's) reads the wrong column of such a WITHOUT ROWID table
 * and reports "NULL value in t.c" for every row (token_transfers: its key columns are chain,
 * log_index, block_number, batch_index, with token_address between them), so those tables keep
 * a rowid. */
static bool notnull_before_key(size_t first, size_t n)
{
    bool seen = false;
    for (size_t i = 0; i < n; i++) {
        unsigned f = bp_dcolumns[first + i].flags;
        if (f & BP_COL_KEY && seen)
            return true;
        seen |= (f & BP_COL_NOTNULL) && !(f & BP_COL_KEY);
    }
    return false;
}

/* The key columns (indexes from first) in the order of the table's primary key: column order,
 * except that block_number comes right after the leading key column (the chain). A key that
 * leads with the block appends a block's rows at the end of the index, and a REVERT's delete
 * by (chain, block_number) reads it as a range; token_transfers' columns have log_index
 * first: in that order a block's transfers landed at one place per log index all over the
 * index, and its REVERT delete read every row of the chain. *count of them. */
static void key_order(size_t first, size_t n, size_t *keys, size_t max, size_t *count)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < max; i++) {
        if (!(bp_dcolumns[first + i].flags & BP_COL_KEY))
            continue;
        keys[k] = i;
        if (k > 1 && strcmp(bp_dcolumns[first + i].name, "block_number") == 0) {
            memmove(keys + 2, keys + 1, (k - 1) * sizeof(*keys));
            keys[1] = i;
        }
        k++;
    }
    *count = k;
}

int bp_sql_create_dtable(bp_buf *out, bp_dtable t, const char *if_not_exists,
                         const bp_sql_dialect *d)
{
    const bp_dtable_info *ti = &bp_dtables[t];
    size_t first, n = bp_dshape_columns(ti->shape, &first);
    int rc = bp_buf_printf(out, "CREATE TABLE %s%s(", if_not_exists, ti->name);
    for (size_t i = 0; i < n; i++) {
        bp_column tmp;
        const bp_dcolumn *c = &bp_dcolumns[first + i];
        rc |= bp_buf_printf(out, "%s %s%s, ", c->name, d->type_of(as_column(c, &tmp)),
                            c->flags & BP_COL_NOTNULL ? " NOT NULL" : "");
    }
    size_t keys[16], nkeys;
    key_order(first, n, keys, sizeof(keys) / sizeof(keys[0]), &nkeys);
    rc |= bp_buf_puts(out, "PRIMARY KEY(");
    for (size_t k = 0; k < nkeys; k++)
        rc |= bp_buf_printf(out, "%s%s", k ? ", " : "", bp_dcolumns[first + keys[k]].name);
    return rc | bp_buf_printf(out, "))%s;", notnull_before_key(first, n) ? "" : d->table_suffix);
}

int bp_sql_create_view(bp_buf *out, bp_dtable t, const bp_sql_dialect *d)
{
    const bp_dtable_info *ti = &bp_dtables[t];
    size_t first, n = bp_dshape_columns(ti->shape, &first);
    int rc = bp_buf_printf(out, "%s%s_v AS SELECT ", d->view_prefix, ti->name);
    for (size_t i = 0; i < n; i++) {
        const char *name = bp_dcolumns[first + i].name;
        rc |= bp_buf_puts(out, i ? ", " : "");
        if (strcmp(name, "window_start") == 0) {
            rc |= bp_buf_printf(out, d->time_of, name);
            rc |= bp_buf_printf(out, " AS %s", ti->timecol);
        } else {
            rc |= bp_buf_puts(out, name);
        }
    }
    return rc | bp_buf_printf(out, " FROM %s;", ti->name);
}

int bp_sql_dinsert(bp_buf *out, bp_dtable t)
{
    size_t first, n = bp_dshape_columns(bp_dtables[t].shape, &first);
    int rc = bp_buf_printf(out, "INSERT INTO %s(", bp_dtables[t].name);
    rc |= bp_sql_dcolumns(out, bp_dtables[t].shape, NULL);
    rc |= bp_buf_puts(out, ") VALUES(");
    for (size_t i = 0; i < n; i++)
        rc |= bp_buf_puts(out, i ? ",?" : "?");
    return rc | bp_buf_putc(out, ')');
}

bp_dtable bp_sql_rollup_child(bp_dtable t, const char **timecol)
{
    *timecol = t == BP_DT_CHAIN_1M ? "block_timestamp" : "window_start";
    return t == BP_DT_CHAIN_1M   ? BP_DT_CHAIN_BLOCK
           : t == BP_DT_CHAIN_1H ? BP_DT_CHAIN_1M
                                 : BP_DT_CHAIN_1H;
}

/* The aggregate expression of column c over the finer rows (blocks: from block rows). */
static int agg_expr(bp_buf *out, const bp_dcolumn *c, const bp_sql_dialect *d, bool blocks,
                    const char *window, const char *delta)
{
    const char *n = c->name;
    switch (c->agg) {
    case BP_AGG_KEY:
        return bp_buf_puts(out, n);
    case BP_AGG_WINDOW:
        return bp_buf_puts(out, window);
    case BP_AGG_COUNT:
        return bp_buf_puts(out, blocks ? "count(*)" : "sum(block_count)");
    case BP_AGG_FIRST_BLOCK:
        return bp_buf_puts(out, blocks ? "min(block_number)" : "min(first_block)");
    case BP_AGG_LAST_BLOCK:
        return bp_buf_puts(out, blocks ? "max(block_number)" : "max(last_block)");
    case BP_AGG_SUM:
        return bp_buf_printf(out, "sum(%s)", n);
    case BP_AGG_SUM256:
        return bp_buf_printf(out, d->sum256, n);
    case BP_AGG_NATIVE: {
        char sum[96];
        snprintf(sum, sizeof(sum), d->sum256, "fees_paid_wei");
        return bp_buf_printf(out, d->native, sum);
    }
    case BP_AGG_USD:
        return bp_buf_printf(out, "CASE WHEN count(%s) = count(*) THEN sum(%s) END", n, n);
    case BP_AGG_MEDIAN:
        return bp_buf_printf(out, d->median, n);
    case BP_AGG_DISTINCT:
        return bp_buf_puts(out, delta);
    default:
        return bp_buf_puts(out, "NULL");
    }
}

/* The block numbers of window [w, w + 60) of chain_metrics_block: "BETWEEN (lo) AND (hi) AND
 * block_number IN (...)". The range lets the transactions' index be read as one run; the IN
 * leaves out the blocks between that have no block row: applied while metrics was off (a
 * restart with the flag changed within the minute), they are in no window. */
static int minute_blocks(bp_buf *out, const char *origin, const char *window)
{
    static const char fmt[] =
        "(SELECT %s(block_number) FROM chain_metrics_block WHERE origin_key = "
        "%s AND block_timestamp >= %s AND block_timestamp < %s + 60)";
    int rc = bp_buf_puts(out, " BETWEEN ");
    rc |= bp_buf_printf(out, fmt, "min", origin, window, window);
    rc |= bp_buf_puts(out, " AND ");
    rc |= bp_buf_printf(out, fmt, "max", origin, window, window);
    rc |= bp_buf_puts(out, " AND block_number IN ");
    return rc | bp_buf_printf(out, fmt, "", origin, window, window);
}

/* The minute's distinct senders, from its raw transactions. */
static int minute_senders(bp_buf *out, const char *origin, const char *window)
{
    int rc = bp_buf_printf(out,
                           "(SELECT count(DISTINCT from_address) FROM transactions WHERE chain = %s"
                           " AND block_number",
                           origin);
    rc |= minute_blocks(out, origin, window);
    return rc | bp_buf_putc(out, ')');
}

/* The rollup's upsert: the aggregates of the finer rows of origin in from (the child table, or
 * a list of windows joined with it) grouped by group_by, window being the window's expression. */
static int rollup_upsert(bp_buf *out, bp_dtable t, const bp_sql_dialect *d, const char *origin,
                         const char *window, const char *delta, const char *from,
                         const char *group_by)
{
    const char *timecol;
    bp_dtable child = bp_sql_rollup_child(t, &timecol);
    const char *name = bp_dtables[t].name;
    bool minute = child == BP_DT_CHAIN_BLOCK;
    size_t first, n = bp_dshape_columns(BP_DS_CHAIN_WINDOW, &first);
    bp_buf senders;
    bp_buf_init(&senders, 0);
    int rc = minute && !delta ? minute_senders(&senders, origin, window) : 0;
    rc |= bp_buf_printf(out, "INSERT INTO %s(", name);
    rc |= bp_sql_dcolumns(out, BP_DS_CHAIN_WINDOW, NULL);
    rc |= bp_buf_puts(out, ") SELECT ");
    for (size_t i = 0; i < n; i++) {
        rc |= bp_buf_puts(out, i ? ", " : "");
        rc |= agg_expr(out, &bp_dcolumns[first + i], d, minute, window,
                       minute && !delta ? senders.data : delta);
    }
    bp_buf_release(&senders);
    rc |= bp_buf_printf(out,
                        " FROM %s WHERE origin_key = %s AND %s >= %s AND %s < %s + %llu"
                        " GROUP BY %s ON CONFLICT(origin_key, window_start) DO UPDATE SET ",
                        from, origin, timecol, window, timecol, window,
                        (unsigned long long)bp_dtables[t].grain, group_by);
    for (size_t i = 0, k = 0; i < n; i++) {
        const bp_dcolumn *c = &bp_dcolumns[first + i];
        if (c->flags & BP_COL_KEY)
            continue;
        rc |= bp_buf_puts(out, k++ ? ", " : "");
        if (c->agg == BP_AGG_DISTINCT && !minute)
            rc |= bp_buf_printf(out, "%s = %s.%s + excluded.%s", c->name, name, c->name, c->name);
        else
            rc |= bp_buf_printf(out, "%s = excluded.%s", c->name, c->name);
    }
    return rc;
}

int bp_sql_rollup(bp_buf *out, bp_dtable t, const bp_sql_dialect *d, const char *origin,
                  const char *window, const char *delta)
{
    const char *timecol;
    bp_dtable child = bp_sql_rollup_child(t, &timecol);
    return rollup_upsert(out, t, d, origin, window, delta, bp_dtables[child].name, "origin_key");
}

int bp_sql_rollup_set(bp_buf *out, bp_dtable t, const bp_sql_dialect *d, const char *origin,
                      const char *windows, const char *deltas, const char *delta_of)
{
    const char *timecol;
    bp_dtable child = bp_sql_rollup_child(t, &timecol);
    bool minute = child == BP_DT_CHAIN_BLOCK;
    bp_buf from, delta;
    bp_buf_init(&from, 0);
    bp_buf_init(&delta, 0);
    /* each window's finer rows read by the child's (origin_key, time) index, as one window's
     * statement reads them: a plain join was planned as a scan of all the origin's child rows
     * (600 block rows read per batch after 600 blocks, growing with the table), so the rows
     * are a LATERAL subquery per window that OFFSET 0 keeps from being flattened into one */
    int rc = bp_buf_printf(&from,
                           "unnest(%s, %s) AS bp_w(bp_ws, bp_dl) CROSS JOIN LATERAL (SELECT *"
                           " FROM %s WHERE origin_key = %s AND %s >= bp_ws AND %s < bp_ws + %llu"
                           " OFFSET 0) AS bp_c",
                           windows, deltas, bp_dtables[child].name, origin, timecol, timecol,
                           (unsigned long long)bp_dtables[t].grain);
    if (delta_of) {
        rc |= bp_buf_puts(&delta, delta_of);
    } else if (minute) { /* a minute without a count (NULL) counts its raw transactions' senders */
        rc |= bp_buf_puts(&delta, "coalesce(bp_dl, ");
        rc |= minute_senders(&delta, origin, "bp_ws");
        rc |= bp_buf_putc(&delta, ')');
    } else {
        rc |= bp_buf_puts(&delta, "bp_dl");
    }
    if (rc == 0)
        rc = rollup_upsert(out, t, d, origin, "bp_ws", delta.data, from.data,
                           "origin_key, bp_ws, bp_dl");
    bp_buf_release(&from);
    bp_buf_release(&delta);
    return rc;
}

int bp_sql_rollup_prune(bp_buf *out, bp_dtable t, const char *origin, const char *window)
{
    const char *timecol;
    bp_dtable child = bp_sql_rollup_child(t, &timecol);
    return bp_buf_printf(
        out,
        "DELETE FROM %s WHERE origin_key = %s AND window_start = %s AND NOT EXISTS"
        " (SELECT 1 FROM %s WHERE origin_key = %s AND %s >= %s AND %s < %s + %llu)",
        bp_dtables[t].name, origin, window, bp_dtables[child].name, origin, timecol, window,
        timecol, window, (unsigned long long)bp_dtables[t].grain);
}

int bp_sql_contract_combine(bp_buf *out, const bp_sql_dialect *d, const char *lhs, char op,
                            const char *rhs)
{
    size_t first, n = bp_dshape_columns(BP_DS_CONTRACT_WINDOW, &first);
    int rc = 0, k = 0;
    for (size_t i = 0; i < n; i++) {
        const bp_dcolumn *c = &bp_dcolumns[first + i];
        char l[128], r[128], sum[300];
        snprintf(l, sizeof(l), "%s.%s", lhs, c->type == BP_COL_FLOAT ? "fees_paid_wei" : c->name);
        snprintf(r, sizeof(r), "%s.%s", rhs, c->type == BP_COL_FLOAT ? "fees_paid_wei" : c->name);
        if (c->flags & BP_COL_KEY || strcmp(c->name, "unique_senders") == 0)
            continue;
        rc |= bp_buf_printf(out, "%s%s = ", k++ ? ", " : "", c->name);
        if (c->type == BP_COL_INT64) {
            rc |= bp_buf_printf(out, "%s %c %s", l, op, r);
            continue;
        }
        snprintf(sum, sizeof(sum), op == '+' ? d->add256 : d->sub256, l, r);
        if (c->type == BP_COL_FLOAT)
            rc |= bp_buf_printf(out, d->native, sum);
        else
            rc |= bp_buf_puts(out, sum);
    }
    return rc;
}

int bp_sql_contract_minute_delete(bp_buf *out, const char *origin, const char *window)
{
    return bp_buf_printf(out, "DELETE FROM %s WHERE origin_key = %s AND window_start = %s",
                         bp_dtables[BP_DT_CONTRACT_1M].name, origin, window);
}

/* The contract, gas and fee of every raw transaction of the block range that follows. */
static int tx_contracts(bp_buf *out, const bp_sql_dialect *d, const char *origin)
{
    return bp_buf_printf(out,
                         "(SELECT %s AS c, coalesce(receipt_gas_used, 0) AS g, %s AS f,"
                         " from_address AS a FROM transactions WHERE chain = %s AND block_number",
                         d->contract_of_tx, d->fee_of_tx, origin);
}

int bp_sql_contract_minute_insert(bp_buf *out, const bp_sql_dialect *d, const char *origin,
                                  const char *window)
{
    char fees[96];
    snprintf(fees, sizeof(fees), d->sum256, "f");
    int rc = bp_buf_printf(out, "INSERT INTO %s(", bp_dtables[BP_DT_CONTRACT_1M].name);
    rc |= bp_sql_dcolumns(out, BP_DS_CONTRACT_WINDOW, NULL);
    rc |= bp_buf_printf(out, ") SELECT %s, %s, c, count(*), sum(g), %s, ", origin, window, fees);
    rc |= bp_buf_printf(out, d->native, fees);
    rc |= bp_buf_puts(out, ", count(DISTINCT a) FROM ");
    rc |= tx_contracts(out, d, origin);
    rc |= minute_blocks(out, origin, window);
    return rc | bp_buf_puts(out, ") x WHERE c IS NOT NULL GROUP BY c");
}

int bp_sql_block_contracts(bp_buf *out, const bp_sql_dialect *d, const char *origin,
                           const char *number)
{
    char fees[96];
    snprintf(fees, sizeof(fees), d->sum256, "f");
    int rc = bp_buf_printf(out,
                           "(SELECT c AS contract_address, count(*) AS txcount, sum(g) AS gas_used,"
                           " %s AS fees_paid_wei FROM ",
                           fees);
    rc |= tx_contracts(out, d, origin);
    return rc | bp_buf_printf(out, " = %s) x WHERE c IS NOT NULL GROUP BY c)", number);
}
