/* rowjson.h - one row of a table (include/blockpipe/columns.h) as a compact JSON object keyed
 * by the SQL column names, in the table's column order: the "data" of a stream entry (Redis,
 * Kafka) and of anything else that hands rows out as JSON (the API).
 *
 * Values: integers as JSON numbers; 256-bit amounts as decimal strings ("1000000000000000000":
 * JSON readers hold numbers in doubles); hashes, addresses, bytes and text as strings; JSON
 * columns (access lists, raw transactions) and the block's withdrawals as nested JSON; a
 * missing value (no receipt, a field the node did not send) as null. */
#ifndef BP_SINK_ROWJSON_H
#define BP_SINK_ROWJSON_H

#include "blockpipe/columns.h"
#include "util/buf.h"

/* Appends the row r of table t (its block always; its tx for transactions, its log for logs)
 * to out. 0, or bp_buf's BP_ENOMEM / BP_ETOOBIG. */
int bp_rowjson(bp_buf *out, bp_table t, const bp_row *r);

#endif
