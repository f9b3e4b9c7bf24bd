/* sqlgen.h - SQL text made from the column table (blockpipe/columns.h) for the SQL outputs:
 * CREATE TABLE, column lists, INSERT statements. Each output supplies its own column types. */
#ifndef BP_SINK_SQLGEN_H
#define BP_SINK_SQLGEN_H

#include "blockpipe/columns.h"
#include "blockpipe/derived.h"
#include "blockpipe/tableset.h"
#include "util/buf.h"

/* The output's SQL type of a column, e.g. "numeric(78,0)". */
typedef const char *(*bp_sql_type_fn)(const bp_column *c);

/* The output's SQL type of a logical type (both families' columns). */
typedef const char *(*bp_sql_coltype_fn)(bp_col_type t);

/* "CREATE TABLE <if_not_exists><prefix><name>(col type [NOT NULL], ...,
 *  PRIMARY KEY(keys))<suffix>;" of a table of a family's table set (blockpipe/tableset.h):
 * if_not_exists is "" or "IF NOT EXISTS ", prefix e.g. a schema ("" for none), suffix e.g. an
 * ENGINE clause ("" for none). */
int bp_sql_create_set_table(bp_buf *out, const bp_set_table *t, const char *if_not_exists,
                            const char *prefix, bp_sql_coltype_fn type_of, const char *suffix);
/* The same for every table of set. */
int bp_sql_create_set(bp_buf *out, const bp_table_set *set, const char *if_not_exists,
                      bp_sql_coltype_fn type_of);

/* "ALTER TABLE <prefix><table> ADD COLUMN <if_not_exists>col type;" for each column of table t
 * from id `from` to the table's end (the columns a schema version added: columns.h). */
int bp_sql_add_columns(bp_buf *out, bp_table t, bp_col_id from, const char *if_not_exists,
                       const char *prefix, bp_sql_type_fn type_of);
/* The first column schema version 3 added to table t (BP_C_<TABLE>_V3). */
bp_col_id bp_sql_v3_first(bp_table t);
/* "chain, number, hash, ..." of table t. */
int bp_sql_columns(bp_buf *out, bp_table t);
/* "INSERT INTO <table>(cols) VALUES(?,?,...)". */
int bp_sql_insert(bp_buf *out, bp_table t);

/* ---- derived tables (blockpipe/derived.h) ---------------------------------------------- */

/* What differs between the SQL outputs in the derived tables' SQL. Formats take one or two
 * %s (SQL expressions). */
typedef struct bp_sql_dialect {
    bp_sql_type_fn type_of;
    const char *sum256;       /* exact sum of a uint256 column: "bp_sum256(%s)", "sum(%s)" */
    const char *add256;       /* "%s + %s" for uint256 values */
    const char *sub256;       /* "%s - %s" */
    const char *median;       /* lower median of a column's non-NULL values */
    const char *native;       /* a uint256 amount of wei as a double of the native token */
    const char *time_of;      /* unix seconds as the views' time column */
    const char *view_prefix;  /* "CREATE VIEW IF NOT EXISTS ", "CREATE OR REPLACE VIEW " */
    const char *table_suffix; /* after a derived table's ")", e.g. " WITHOUT ROWID" (left off where
                               * it would trip SQLite 3.40: sqlgen_derived.c) */
    /* Over a raw transactions row: its contract (bp_metrics_contract_of's rule) and its fee
     * (receipt gasUsed x effectiveGasPrice, gasPrice without one, plus receipt_l1_fee; 0
     * without a receipt). */
    const char *contract_of_tx;
    const char *fee_of_tx;
} bp_sql_dialect;

/* "CREATE TABLE <if_not_exists><name>(...)<dialect suffix>;" of derived table t. */
int bp_sql_create_dtable(bp_buf *out, bp_dtable t, const char *if_not_exists,
                         const bp_sql_dialect *d);
/* The view <name>_v of a window table: its columns with window_start shown as the time
 * column. */
int bp_sql_create_view(bp_buf *out, bp_dtable t, const bp_sql_dialect *d);
/* "origin_key, block_number, ..." of a shape; with prefix "x." before each name. */
int bp_sql_dcolumns(bp_buf *out, bp_dshape s, const char *prefix);
/* "INSERT INTO <name>(cols) VALUES(?,?,...)". */
int bp_sql_dinsert(bp_buf *out, bp_dtable t);
/* The recomputation of one window of chain rollup t from its finer rows: an upsert whose
 * SELECT aggregates them (origin, window and delta are SQL text: parameters or literals), so
 * a window with no finer rows left gives no row; then bp_sql_rollup_prune deletes such a
 * window. active_addresses: for 1m delta is the minute's count (NULL: count its distinct
 * senders in the raw transactions); for 1h and 1d the stored value plus delta (the window's
 * set changed by delta rows). */
int bp_sql_rollup(bp_buf *out, bp_dtable t, const bp_sql_dialect *d, const char *origin,
                  const char *window, const char *delta);
/* The 1-minute contract rows of window recomputed from the minute's raw transactions:
 * delete them, then insert (two statements). */
int bp_sql_contract_minute_delete(bp_buf *out, const char *origin, const char *window);
int bp_sql_contract_minute_insert(bp_buf *out, const bp_sql_dialect *d, const char *origin,
                                  const char *window);
/* A block's per-contract aggregates from its raw transactions, as a subquery with the
 * columns contract_address, txcount, gas_used, fees_paid_wei (what a REVERT subtracts). */
int bp_sql_block_contracts(bp_buf *out, const bp_sql_dialect *d, const char *origin,
                           const char *number);
int bp_sql_rollup_prune(bp_buf *out, bp_dtable t, const char *origin, const char *window);
/* bp_sql_rollup of many windows of t in one statement (PostgreSQL: unnest): windows and deltas are
 * bigint array expressions of equal length, the windows distinct (an upsert may change a row once);
 * delta_of is the distinct count's expression over the window bp_ws and its deltas element bp_dl,
 * NULL for bp_dl (for 1m: the minute's count, NULL: count its raw transactions' senders). Each
 * window gets what the per-window statements give it, whatever the other windows are. */
int bp_sql_rollup_set(bp_buf *out, bp_dtable t, const bp_sql_dialect *d, const char *origin,
                      const char *windows, const char *deltas, const char *delta_of);
/* The SET list adding (op "+") or subtracting (op "-") the additive columns of contract
 * window t: "txcount = L.txcount + R.txcount, ...", lhs and rhs being table names or
 * aliases (unique_senders excluded: it follows the set). */
int bp_sql_contract_combine(bp_buf *out, const bp_sql_dialect *d, const char *lhs, char op,
                            const char *rhs);
/* The finer table a rollup is recomputed from, and its time column. */
bp_dtable bp_sql_rollup_child(bp_dtable t, const char **timecol);

#endif
