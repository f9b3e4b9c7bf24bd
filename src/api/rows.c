/* rows.c - rows read back from an output as JSON objects named by the column table. */
#include "api/rows.h"

#include <string.h>

static bool all_digits(const char *s, size_t len)
{
    if (len == 0 || len > 20)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static void cell_json(bp_jsonw *w, const bp_column *c, const bp_read_cell *v)
{
    if (!v->s) {
        bp_jsonw_null(w);
        return;
    }
    switch (c->type) {
    case BP_COL_INT64:
    case BP_COL_UINT64:
        if (all_digits(v->s, v->len)) {
            bp_jsonw_raw(w, v->s, v->len);
            return;
        }
        break; /* not a plain number (never written by us): kept as text */
    case BP_COL_JSON:
        if (v->len) {
            bp_jsonw_raw(w, v->s, v->len);
            return;
        }
        break;
    case BP_COL_BOOL:
        bp_jsonw_bool(w, v->s[0] == '1' || v->s[0] == 't');
        return;
    default:
        break;
    }
    bp_jsonw_str_n(w, v->s, v->len);
}

void bp_api_row_members(bp_jsonw *w, bp_table t, const bp_read_cell *cells, size_t n)
{
    size_t first, count = bp_table_columns(t, &first);
    for (size_t i = 0; i < count && i < n; i++) {
        bp_jsonw_key(w, bp_columns[first + i].name);
        cell_json(w, &bp_columns[first + i], &cells[i]);
    }
}

void bp_api_row_json(bp_jsonw *w, bp_table t, const bp_read_cell *cells, size_t n)
{
    bp_jsonw_begin_object(w);
    bp_api_row_members(w, t, cells, n);
    bp_jsonw_end_object(w);
}

const bp_read_cell *bp_api_cell(bp_table t, const bp_read_cell *cells, size_t n, const char *name)
{
    static const bp_read_cell none = {NULL, 0};
    size_t first, count = bp_table_columns(t, &first);
    for (size_t i = 0; i < count && i < n; i++)
        if (strcmp(bp_columns[first + i].name, name) == 0)
            return &cells[i];
    return &none;
}
