/* rowjson.c - a row as a JSON object, made from the column table (rowjson.h). */
#include "sink/rowjson.h"

#include "blockpipe/error.h"
#include "sink/format.h"

/* The loop over a table's columns is unrolled into one function per table, so each value and
 * its type fold to a field read and one writer call (as the other row encoders do). */
#define UNROLL _Pragma("GCC unroll 48")
#define INLINE static inline __attribute__((always_inline))

INLINE void value(bp_fmt *f, bp_col_id id, const bp_row *r)
{
    bp_rowjson_value(f, bp_col_type_of(id), bp_value_of(id, r));
}

INLINE int object(bp_buf *out, int first, int end, const bp_row *r)
{
    bp_fmt f = {.buf = out};
    UNROLL
    for (int i = first; i < end; i++) {
        bp_fmt_str(&f, i == first ? "{\"" : ",\"");
        bp_fmt_str(&f, bp_columns[i].name);
        bp_fmt_str(&f, "\":");
        value(&f, (bp_col_id)i, r);
    }
    bp_fmt_char(&f, '}');
    return f.rc;
}

static int block_json(bp_buf *out, const bp_row *r)
{
    return object(out, BP_C_BLOCKS_FIRST, BP_C_TRANSACTIONS_FIRST, r);
}

static int tx_json(bp_buf *out, const bp_row *r)
{
    return object(out, BP_C_TRANSACTIONS_FIRST, BP_C_LOGS_FIRST, r);
}

static int log_json(bp_buf *out, const bp_row *r)
{
    return object(out, BP_C_LOGS_FIRST, BP_C_COUNT, r);
}

int bp_rowjson(bp_buf *out, bp_table t, const bp_row *r)
{
    switch (t) {
    case BP_TABLE_BLOCKS:
        return block_json(out, r);
    case BP_TABLE_TRANSACTIONS:
        return tx_json(out, r);
    case BP_TABLE_LOGS:
        return log_json(out, r);
    default:
        return BP_EINVAL;
    }
}
