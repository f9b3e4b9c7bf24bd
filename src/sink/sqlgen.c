/* sqlgen.c - SQL text from the column table. */
#include "sink/sqlgen.h"

int bp_sql_columns(bp_buf *out, bp_table t)
{
    size_t first, n = bp_table_columns(t, &first);
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        rc |= bp_buf_printf(out, "%s%s", i ? ", " : "", bp_columns[first + i].name);
    return rc;
}

int bp_sql_create_set_table(bp_buf *out, const bp_set_table *t, const char *if_not_exists,
                            const char *prefix, bp_sql_coltype_fn type_of, const char *suffix)
{
    int rc = bp_buf_printf(out, "CREATE TABLE %s%s%s(", if_not_exists, prefix, t->name);
    for (size_t i = 0; i < t->column_count; i++) {
        const bp_set_column *c = &t->columns[i];
        rc |= bp_buf_printf(out, "%s %s%s, ", c->name, type_of(c->type),
                            c->flags & BP_COL_NOTNULL ? " NOT NULL" : "");
    }
    rc |= bp_buf_puts(out, "PRIMARY KEY(");
    for (size_t i = 0, k = 0; i < t->column_count; i++)
        if (t->columns[i].flags & BP_COL_KEY)
            rc |= bp_buf_printf(out, "%s%s", k++ ? ", " : "", t->columns[i].name);
    return rc | bp_buf_printf(out, "))%s;", suffix);
}

int bp_sql_create_set(bp_buf *out, const bp_table_set *set, const char *if_not_exists,
                      bp_sql_coltype_fn type_of)
{
    int rc = 0;
    for (size_t t = 0; t < set->table_count; t++)
        rc |= bp_sql_create_set_table(out, &set->tables[t], if_not_exists, "", type_of, "");
    return rc;
}

int bp_sql_add_columns(bp_buf *out, bp_table t, bp_col_id from, const char *if_not_exists,
                       const char *prefix, bp_sql_type_fn type_of)
{
    size_t first, n = bp_table_columns(t, &first);
    int rc = 0;
    for (size_t i = from; i < first + n; i++)
        rc |= bp_buf_printf(out, "ALTER TABLE %s%s ADD COLUMN %s%s %s;", prefix, bp_table_name(t),
                            if_not_exists, bp_columns[i].name, type_of(&bp_columns[i]));
    return rc;
}

bp_col_id bp_sql_v3_first(bp_table t)
{
    return t == BP_TABLE_BLOCKS         ? BP_C_BLOCKS_V3
           : t == BP_TABLE_TRANSACTIONS ? BP_C_TRANSACTIONS_V3
                                        : BP_C_LOGS_V3;
}

int bp_sql_insert(bp_buf *out, bp_table t)
{
    size_t first, n = bp_table_columns(t, &first);
    int rc = bp_buf_printf(out, "INSERT INTO %s(", bp_table_name(t));
    rc |= bp_sql_columns(out, t);
    rc |= bp_buf_puts(out, ") VALUES(");
    for (size_t i = 0; i < n; i++)
        rc |= bp_buf_puts(out, i ? ",?" : "?");
    return rc | bp_buf_putc(out, ')');
}
