/* columns.c - the column table (include/blockpipe/columns.h) made from BP_COLUMNS. */
#include "blockpipe/columns.h"

#include <stddef.h>

#define TABLE_blocks BP_TABLE_BLOCKS
#define TABLE_transactions BP_TABLE_TRANSACTIONS
#define TABLE_logs BP_TABLE_LOGS

const bp_column bp_columns[BP_C_COUNT] = {
#define BP_X_COL(id, table, name, etl, type, src, rep, field, flags)                               \
    [BP_C_##id] = {name, etl, #table "." name, TABLE_##table, BP_COL_##type, flags},
    BP_COLUMNS(BP_X_COL)
#undef BP_X_COL
};

size_t bp_table_columns(bp_table t, size_t *first)
{
    size_t i = 0, n = 0;
    while (i < BP_C_COUNT && bp_columns[i].table != t)
        i++;
    *first = i;
    while (i + n < BP_C_COUNT && bp_columns[i + n].table == t)
        n++;
    return n;
}

const char *bp_table_name(bp_table t)
{
    static const char *const names[BP_TABLE_COUNT] = {"blocks", "transactions", "logs"};
    return (unsigned)t < BP_TABLE_COUNT ? names[t] : "?";
}

const char *bp_col_type_name(bp_col_type t)
{
    static const char *const names[] = {
        [BP_COL_INT64] = "int64", [BP_COL_UINT64] = "uint64",   [BP_COL_UINT256] = "uint256",
        [BP_COL_HASH] = "hash",   [BP_COL_ADDRESS] = "address", [BP_COL_BYTES] = "bytes",
        [BP_COL_TEXT] = "text",   [BP_COL_JSON] = "json",       [BP_COL_BOOL] = "bool",
        [BP_COL_FLOAT] = "float",
    };
    return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}
