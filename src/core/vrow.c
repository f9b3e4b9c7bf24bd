/* vrow.c - rows of the node and of an output in one comparable, hashable form (vrow.h). */
#include "core/vrow.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "chain/json.h"
#include "sink/format.h"
#include "util/jsonw.h"

#define K1 0x9E3779B97F4A7C15ull
#define K2 0xC2B2AE3D27D4EB4Full

static inline uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= K2;
    h ^= h >> 29;
    return h;
}

uint64_t bp_vhash(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = K1 ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = mix((h ^ w) * K1);
    }
    uint64_t w = 0;
    memcpy(&w, p + i, n - i);
    return mix((h ^ w ^ ((uint64_t)(n - i) << 56)) * K1);
}

/* ---- JSON ---- */

static int canon_value(bp_buf *o, yajl_val v);

static int key_cmp(const char *a, const char *b)
{
    return strcmp(a, b);
}

static int canon_object(bp_buf *o, yajl_val v)
{
    size_t n = v->u.object.len, *idx = n ? malloc(n * sizeof(*idx)) : NULL;
    if (n && !idx)
        return BP_ENOMEM;
    for (size_t i = 0; i < n; i++) { /* insertion sort: objects here have a handful of keys */
        size_t j = i;
        while (j > 0 && key_cmp(v->u.object.keys[idx[j - 1]], v->u.object.keys[i]) > 0) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    int rc = bp_buf_putc(o, '{');
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *k = v->u.object.keys[idx[i]];
        rc = i ? bp_buf_putc(o, ',') : 0;
        rc = rc ? rc : bp_jsonw_quote(o, k, BP_JSONW_ESC_U);
        rc = rc ? rc : bp_buf_putc(o, ':');
        rc = rc ? rc : canon_value(o, v->u.object.values[idx[i]]);
    }
    free(idx);
    return rc ? rc : bp_buf_putc(o, '}');
}

static int canon_value(bp_buf *o, yajl_val v)
{
    if (YAJL_IS_OBJECT(v))
        return canon_object(o, v);
    if (YAJL_IS_ARRAY(v)) {
        int rc = bp_buf_putc(o, '[');
        for (size_t i = 0; rc == 0 && i < v->u.array.len; i++) {
            rc = i ? bp_buf_putc(o, ',') : 0;
            rc = rc ? rc : canon_value(o, v->u.array.values[i]);
        }
        return rc ? rc : bp_buf_putc(o, ']');
    }
    if (YAJL_IS_STRING(v))
        return bp_jsonw_quote_n(o, v->u.string, bp_json_strlen(v), BP_JSONW_ESC_U);
    if (YAJL_IS_NUMBER(v))
        return bp_buf_puts(o, v->u.number.r);
    return bp_buf_puts(o, YAJL_IS_TRUE(v) ? "true" : YAJL_IS_FALSE(v) ? "false" : "null");
}

int bp_json_canon(bp_buf *out, const char *s, size_t n)
{
    if (n == 2 && (memcmp(s, "[]", 2) == 0 || memcmp(s, "{}", 2) == 0))
        return bp_buf_append(out, s, n);
    yajl_val root = bp_json_parse(s, n, NULL, 0);
    if (!root)
        return bp_buf_append(out, s, n);
    size_t mark = out->len;
    int rc = canon_value(out, root);
    bp_json_free(root);
    if (rc != 0)
        out->len = mark;
    return rc;
}

/* ---- cells ---- */

static int put_null(bp_buf *out)
{
    return bp_buf_putc(out, 0);
}

/* The value header; the caller appends len bytes after it. */
static int put_head(bp_buf *out, size_t len)
{
    char h[5] = {1};
    uint32_t n = (uint32_t)len;
    memcpy(h + 1, &n, 4);
    return bp_buf_append(out, h, 5);
}

static int put_text(bp_buf *out, const char *s, size_t n)
{
    int rc = put_head(out, n);
    return rc ? rc : bp_buf_append(out, s, n);
}

/* A JSON value, canonical: written after a header whose length is filled in afterwards. */
static int put_json(bp_buf *out, const char *s, size_t n)
{
    int rc = put_head(out, 0);
    size_t at = out->len;
    rc = rc ? rc : bp_json_canon(out, s, n);
    if (rc == 0) {
        uint32_t len = (uint32_t)(out->len - at);
        memcpy(out->data + at - 4, &len, 4);
    }
    return rc;
}

static int model_cell(bp_buf *out, bp_col_id id, const bp_row *r, bp_buf *tmp)
{
    bp_value v = bp_value_of(id, r);
    char num[BP_PUT_QTY_MAX];
    switch (v.kind) {
    case BP_VAL_U64:
        return put_text(out, num, (size_t)(bp_put_u64(num, v.u) - num));
    case BP_VAL_U256:
        return put_text(out, num, (size_t)(bp_put_qty(num, v.q) - num));
    case BP_VAL_STR:
        if (bp_col_type_of(id) == BP_COL_JSON)
            return put_json(out, v.s, strlen(v.s));
        return put_text(out, v.s, strlen(v.s));
    case BP_VAL_HEX: {
        char hex[BP_HEXB_TEXT];
        return put_text(out, hex, bp_hexb_text(hex, v.h));
    }
    case BP_VAL_WITHDRAWALS: {
        bp_fmt f = {.buf = tmp};
        bp_buf_reset(tmp);
        bp_fmt_char(&f, '[');
        bp_fmt_withdrawals(&f, v.block, "\"");
        bp_fmt_char(&f, ']');
        return f.rc ? f.rc : put_json(out, tmp->data, tmp->len);
    }
    default:
        return put_null(out);
    }
}

int bp_vrow_from_model(bp_buf *out, bp_table t, const bp_row *r, bp_buf *tmp)
{
    size_t first, n = bp_table_columns(t, &first);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = model_cell(out, (bp_col_id)(first + i), r, tmp);
    return rc;
}

int bp_vrow_from_cells(bp_buf *out, bp_table t, const bp_read_cell *cells, size_t n)
{
    size_t first, count = bp_table_columns(t, &first);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        const bp_read_cell *c = i < n ? &cells[i] : NULL;
        if (!c || !c->s)
            rc = put_null(out);
        else if (bp_columns[first + i].type == BP_COL_JSON)
            rc = put_json(out, c->s, c->len);
        else
            rc = put_text(out, c->s, c->len);
    }
    return rc;
}

bool bp_vrow_cell(const char *row, size_t len, size_t i, bool *null, const char **s, size_t *n)
{
    size_t at = 0;
    for (size_t k = 0;; k++) {
        if (at >= len)
            return false;
        uint32_t l = 0;
        if (row[at])
            memcpy(&l, row + at + 1, 4);
        if (k == i) {
            *null = row[at] == 0;
            *s = *null ? NULL : row + at + 5;
            *n = l;
            return true;
        }
        at += row[at] ? 5 + (size_t)l : 1;
    }
}
