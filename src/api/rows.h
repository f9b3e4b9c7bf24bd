/* rows.h - a row read back from an output (bp_read_cell, blockpipe/sink.h) as a JSON object
 * with the table's column names: integers as numbers, 256-bit amounts as decimal strings (a
 * JSON reader holds numbers in doubles), JSON columns as JSON, the rest as strings. The REST
 * answers and the push messages are made by it, so both say the same. */
#ifndef BP_API_ROWS_H
#define BP_API_ROWS_H

#include "blockpipe/columns.h"
#include "blockpipe/sink.h"
#include "util/jsonw.h"

/* Writes {"name": value, ...} for the n cells of table t (n must be the table's column count;
 * fewer cells: the rest are left out). */
void bp_api_row_json(bp_jsonw *w, bp_table t, const bp_read_cell *cells, size_t n);
/* The same members without the braces (an object the caller adds to). */
void bp_api_row_members(bp_jsonw *w, bp_table t, const bp_read_cell *cells, size_t n);

/* The cell of column name in a row of table t (NULL cell text when absent or null). */
const bp_read_cell *bp_api_cell(bp_table t, const bp_read_cell *cells, size_t n, const char *name);

/* The members of a row of a derived table (bp_read_query.dtable, blockpipe/derived.h): its
 * columns, doubles as JSON numbers (shortest exact form), and after window_start the view's
 * time column (timestamp, hour_ts or day_ts: "YYYY-MM-DD HH:MM:SS", UTC). */
void bp_api_drow_members(bp_jsonw *w, int dtable, const bp_read_cell *cells, size_t n);
const bp_read_cell *bp_api_dcell(int dtable, const bp_read_cell *cells, size_t n, const char *name);

/* The members of a row of an Arch table (bp_read_query.arch; atable is the enum
 * bp_arch_table, arch/arch_tables.h): integers as numbers, rolled_back as a boolean, JSON
 * columns as JSON, hashes and keys as strings of 64 hex digits without 0x. */
void bp_api_arow_members(bp_jsonw *w, int atable, const bp_read_cell *cells, size_t n);
const bp_read_cell *bp_api_acell(int atable, const bp_read_cell *cells, size_t n, const char *name);

#endif
