/* tableset.c - the EVM table set (made from BP_COLUMNS), a set's rows as JSON, and what is
 * the same for every set (blockpipe/tableset.h). The Arch set: src/arch/arch_tables.c. */
#include "blockpipe/tableset.h"

#include <string.h>

#include "sink/format.h"
#include "sink/rowjson.h"

/* ---- EVM: the column table's columns, indexed by bp_col_id ------------------------------ */

static const bp_set_column g_evm_columns[BP_C_COUNT] = {
#define BP_X_SET_COL(id, table, name, etl, type, src, rep, field, flags)                           \
    [BP_C_##id] = {name, BP_COL_##type, flags, NULL},
    BP_COLUMNS(BP_X_SET_COL)
#undef BP_X_SET_COL
};

static const bp_set_table g_evm_tables[BP_TABLE_COUNT] = {
    [BP_TABLE_BLOCKS] = {"blocks", g_evm_columns + BP_C_BLOCKS_FIRST,
                         BP_C_TRANSACTIONS_FIRST - BP_C_BLOCKS_FIRST, false},
    [BP_TABLE_TRANSACTIONS] = {"transactions", g_evm_columns + BP_C_TRANSACTIONS_FIRST,
                               BP_C_LOGS_FIRST - BP_C_TRANSACTIONS_FIRST, false},
    [BP_TABLE_LOGS] = {"logs", g_evm_columns + BP_C_LOGS_FIRST, BP_C_COUNT - BP_C_LOGS_FIRST,
                       false},
};

static bool evm_next(bp_table_row *r)
{
    const bp_block *b = r->ev->block;
    if (r->ev->kind != BP_EVENT_APPLY)
        return false;
    size_t n = r->table == BP_TABLE_BLOCKS         ? 1
               : r->table == BP_TABLE_TRANSACTIONS ? b->tx_count
               : b->has_receipts                   ? b->log_count
                                                   : 0; /* logs only with receipts */
    r->i = r->started ? r->i + 1 : 0;
    r->started = true;
    return r->i < n;
}

static bp_row evm_row(const bp_table_row *r)
{
    const bp_block *b = r->ev->block;
    return (bp_row){.chain = r->chain,
                    .block = b,
                    .tx = r->table == BP_TABLE_TRANSACTIONS ? &b->txs[r->i] : NULL,
                    .log = r->table == BP_TABLE_LOGS ? &b->logs[r->i] : NULL};
}

static bp_value evm_value(const bp_table_row *r, size_t c)
{
    bp_row row = evm_row(r);
    return bp_value_of((bp_col_id)(g_evm_tables[r->table].columns - g_evm_columns + c), &row);
}

static int evm_row_json(bp_buf *out, const bp_table_row *r)
{
    bp_row row = evm_row(r);
    return bp_rowjson(out, (bp_table)r->table, &row);
}

const bp_table_set bp_tables_evm = {
    .family = BP_FAMILY_EVM,
    .name = "evm",
    .tables = g_evm_tables,
    .table_count = BP_TABLE_COUNT,
    .source = "include/blockpipe/columns.h",
    .type_name = bp_col_type_name,
    .next = evm_next,
    .value = evm_value,
    .row_json = evm_row_json,
};

/* ---- every set ------------------------------------------------------------------------- */

const bp_table_set *bp_table_set_of(enum bp_family f)
{
    switch (f) {
    case BP_FAMILY_EVM:
        return &bp_tables_evm;
    case BP_FAMILY_ARCH:
        return &bp_tables_arch;
    }
    return NULL;
}

const bp_set_table *bp_table_set_find(const bp_table_set *set, const char *name, size_t *index)
{
    for (size_t t = 0; t < set->table_count; t++)
        if (strcmp(set->tables[t].name, name) == 0) {
            if (index)
                *index = t;
            return &set->tables[t];
        }
    return NULL;
}

void bp_table_rows(bp_table_row *r, const bp_table_set *set, const char *chain, const bp_event *ev,
                   size_t table)
{
    *r = (bp_table_row){.set = set, .chain = chain, .ev = ev, .table = table};
}

int bp_table_row_json_generic(bp_buf *out, const bp_table_row *r)
{
    const bp_set_table *t = &r->set->tables[r->table];
    bp_fmt f = {.buf = out};
    for (size_t c = 0; c < t->column_count; c++) {
        bp_fmt_str(&f, c == 0 ? "{\"" : ",\"");
        bp_fmt_str(&f, t->columns[c].name);
        bp_fmt_str(&f, "\":");
        bp_rowjson_value(&f, t->columns[c].type, r->set->value(r, c));
    }
    bp_fmt_char(&f, '}');
    return f.rc;
}

int bp_table_row_json(bp_buf *out, const bp_table_row *r)
{
    return r->set->row_json ? r->set->row_json(out, r) : bp_table_row_json_generic(out, r);
}

void bp_table_set_markdown(const bp_table_set *set, FILE *f)
{
    fputs("| table | column | type | key | from |\n|---|---|---|---|---|\n", f);
    for (size_t t = 0; t < set->table_count; t++)
        for (size_t i = 0; i < set->tables[t].column_count; i++) {
            const bp_set_column *c = &set->tables[t].columns[i];
            fprintf(f, "| %s | `%s` | %s | %s | %s |\n", set->tables[t].name, c->name,
                    set->type_name(c->type),
                    c->flags & BP_COL_KEY       ? "key"
                    : c->flags & BP_COL_NOTNULL ? "not null"
                                                : "",
                    c->doc ? c->doc : "");
        }
}
