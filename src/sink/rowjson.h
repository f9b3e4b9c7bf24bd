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

#include <math.h>
#include <stdio.h>

#include "blockpipe/columns.h"
#include "sink/format.h"
#include "util/buf.h"

/* One value of a column of logical type `type` in the JSON form above (doubles with 6
 * decimals, null when not finite); inline, so each caller's loop folds it to its own types. */
static inline __attribute__((always_inline)) void bp_rowjson_value(bp_fmt *f, bp_col_type type,
                                                                   bp_value v)
{
    char num[48];
    switch (v.kind) {
    case BP_VAL_U64:
        if (type == BP_COL_BOOL) /* a JSON boolean, as the node and the API say */
            bp_fmt_str(f, v.u ? "true" : "false");
        else
            bp_fmt_u64(f, v.u);
        return;
    case BP_VAL_U256:
        bp_fmt_char(f, '"');
        bp_fmt_qty(f, v.q, "");
        bp_fmt_char(f, '"');
        return;
    case BP_VAL_STR:
        if (type == BP_COL_JSON)
            bp_fmt_str(f, v.s); /* JSON text already (the decoder made it) */
        else
            bp_fmt_json_str(f, v.s);
        return;
    case BP_VAL_HEX: /* hex digits need no escape: written in place */
        bp_fmt_hex_str(f, v.h);
        return;
    case BP_VAL_WITHDRAWALS:
        bp_fmt_char(f, '[');
        bp_fmt_withdrawals(f, v.block, "\"");
        bp_fmt_char(f, ']');
        return;
    case BP_VAL_F64:
        if (isfinite(v.f)) {
            snprintf(num, sizeof(num), "%.6f", v.f);
            bp_fmt_str(f, num);
            return;
        }
        break;
    default:
        break;
    }
    bp_fmt_str(f, "null");
}

/* Appends the row r of table t (its block always; its tx for transactions, its log for logs)
 * to out. 0, or bp_buf's BP_ENOMEM / BP_ETOOBIG. */
int bp_rowjson(bp_buf *out, bp_table t, const bp_row *r);

#endif
