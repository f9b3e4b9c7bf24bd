/* rows.c - rows read back from an output as JSON objects named by the column table. */
#include "api/rows.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arch/arch_tables.h"
#include "blockpipe/derived.h"

static bool all_digits(const char *s, size_t len)
{
    if (len == 0 || len > 20)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* A double read back as text (SQLite's 17 digits, PostgreSQL's shortest) in its shortest
 * form that reads back as the same double, so every output answers the same text. */
static bool float_json(bp_jsonw *w, const char *s, size_t len)
{
    char in[64], out[40];
    if (len == 0 || len >= sizeof(in))
        return false;
    memcpy(in, s, len);
    in[len] = '\0';
    char *end;
    double v = strtod(in, &end);
    if (*end || !isfinite(v))
        return false;
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, sizeof(out), "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    bp_jsonw_raw(w, out, strlen(out));
    return true;
}

static void cell_json(bp_jsonw *w, bp_col_type type, const bp_read_cell *v)
{
    if (!v->s) {
        bp_jsonw_null(w);
        return;
    }
    switch (type) {
    case BP_COL_FLOAT:
        if (float_json(w, v->s, v->len))
            return;
        break; /* NaN / infinity (never written by us): kept as text */
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
        cell_json(w, bp_columns[first + i].type, &cells[i]);
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

void bp_api_drow_members(bp_jsonw *w, int dtable, const bp_read_cell *cells, size_t n)
{
    const bp_dtable_info *ti = &bp_dtables[dtable - 1];
    size_t first, count = bp_dshape_columns(ti->shape, &first);
    for (size_t i = 0; i < count && i < n; i++) {
        const bp_dcolumn *c = &bp_dcolumns[first + i];
        bp_jsonw_key(w, c->name);
        cell_json(w, c->type, &cells[i]);
        if (!ti->timecol || strcmp(c->name, "window_start") != 0 || !cells[i].s)
            continue;
        /* The view's time column beside it, as the <table>_v views show it. */
        time_t t = (time_t)strtoll(cells[i].s, NULL, 10);
        struct tm tm;
        char when[32];
        gmtime_r(&t, &tm);
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
        bp_jsonw_key(w, ti->timecol);
        bp_jsonw_str(w, when);
    }
}

const bp_read_cell *bp_api_dcell(int dtable, const bp_read_cell *cells, size_t n, const char *name)
{
    static const bp_read_cell none = {NULL, 0};
    size_t first, count = bp_dshape_columns(bp_dtables[dtable - 1].shape, &first);
    for (size_t i = 0; i < count && i < n; i++)
        if (strcmp(bp_dcolumns[first + i].name, name) == 0)
            return &cells[i];
    return &none;
}

void bp_api_arow_members(bp_jsonw *w, int atable, const bp_read_cell *cells, size_t n)
{
    const bp_set_table *t = &bp_tables_arch.tables[atable];
    for (size_t k = 0; k < t->column_count && k < n; k++) {
        const bp_set_column *c = &t->columns[k];
        bp_jsonw_key(w, c->name);
        /* hashes: strings of bare hex, as stored */
        cell_json(w, c->type == BP_COL_HASH ? BP_COL_TEXT : c->type, &cells[k]);
    }
}

const bp_read_cell *bp_api_acell(int atable, const bp_read_cell *cells, size_t n, const char *name)
{
    static const bp_read_cell none = {NULL, 0};
    const bp_set_table *t = &bp_tables_arch.tables[atable];
    for (size_t k = 0; k < t->column_count && k < n; k++)
        if (strcmp(t->columns[k].name, name) == 0)
            return &cells[k];
    return &none;
}
