/* sqlgen.h - SQL text made from the column table (blockpipe/columns.h) for the SQL outputs:
 * CREATE TABLE, column lists, INSERT statements. Each output supplies its own column types. */
#ifndef BP_SINK_SQLGEN_H
#define BP_SINK_SQLGEN_H

#include "blockpipe/columns.h"
#include "util/buf.h"

/* The output's SQL type of a column, e.g. "numeric(78,0)". */
typedef const char *(*bp_sql_type_fn)(const bp_column *c);

/* "CREATE TABLE <if_not_exists><prefix><table>(col type [NOT NULL], ...,
 *  PRIMARY KEY(keys))<suffix>;" — if_not_exists is "" or "IF NOT EXISTS ", prefix e.g. a
 * schema ("" for none), suffix e.g. an ENGINE clause ("" for none). */
int bp_sql_create_table(bp_buf *out, bp_table t, const char *if_not_exists, const char *prefix,
                        bp_sql_type_fn type_of, const char *suffix);
/* "chain, number, hash, ..." of table t. */
int bp_sql_columns(bp_buf *out, bp_table t);
/* "INSERT INTO <table>(cols) VALUES(?,?,...)". */
int bp_sql_insert(bp_buf *out, bp_table t);

#endif
