/* clickhouse_table.c - ClickHouse column types, CREATE TABLE text and RowBinary / Native rows. */
#include "sink/clickhouse_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/hex.h"

/* ---- types ---------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    enum bp_ch_kind kind;
} g_kinds[] = {
    {"UInt8", BP_CH_UINT8},   {"Int8", BP_CH_INT8},       {"UInt32", BP_CH_UINT32},
    {"UInt64", BP_CH_UINT64}, {"UInt256", BP_CH_UINT256}, {"DateTime", BP_CH_DATETIME},
    {"String", BP_CH_STRING}, {"Float64", BP_CH_FLOAT64},
};
#define N_KINDS (sizeof(g_kinds) / sizeof(g_kinds[0]))

int bp_ch_type_parse(const char *text, bp_ch_type *out)
{
    memset(out, 0, sizeof(*out));
    size_t n = strlen(text);
    if (strncmp(text, "Nullable(", 9) == 0 && n > 10 && text[n - 1] == ')') {
        out->nullable = true;
        text += 9;
        n -= 10;
    }
    unsigned len;
    char tail;
    if (n > 12 && strncmp(text, "FixedString(", 12) == 0 &&
        sscanf(text + 12, "%u%c", &len, &tail) == 2 && tail == ')' && len > 0) {
        out->kind = BP_CH_FIXED;
        out->len = len;
        return 0;
    }
    for (size_t i = 0; i < N_KINDS; i++)
        if (strlen(g_kinds[i].name) == n && strncmp(g_kinds[i].name, text, n) == 0) {
            out->kind = g_kinds[i].kind;
            return 0;
        }
    return -1;
}

void bp_ch_type_name(const bp_ch_type *t, char *out, size_t cap)
{
    char inner[32] = "?";
    if (t->kind == BP_CH_FIXED)
        snprintf(inner, sizeof(inner), "FixedString(%u)", t->len);
    for (size_t i = 0; i < N_KINDS; i++)
        if (g_kinds[i].kind == t->kind)
            snprintf(inner, sizeof(inner), "%s", g_kinds[i].name);
    snprintf(out, cap, t->nullable ? "Nullable(%s)" : "%s", inner);
}

int bp_ch_caps_from_version(const char *version, bp_ch_caps *caps)
{
    snprintf(caps->version, sizeof(caps->version), "%s", version);
    if (sscanf(version, "%d.%d", &caps->major, &caps->minor) != 2)
        return -1;
    /* 20.10: ALTER TABLE ... REMOVE TTL, without which a TTL could not be lifted for history
     * (TTLs themselves are older: 19.6) */
    caps->ttl = caps->major > 20 || (caps->major == 20 && caps->minor >= 10);
    return 0;
}

bp_ch_u256 bp_ch_uint256_step(const bp_ch_caps *caps, bool function_ok)
{
    if (!function_ok)
        return BP_CH_U256_NO;
    if (caps->major > 21 || (caps->major == 21 && caps->minor >= 6))
        return BP_CH_U256_YES;
    /* ClickHouse#16050: toUInt256 answers on 20.8 .. 21.5 while a table cannot hold it */
    return BP_CH_U256_ASK_TABLE;
}

/* ---- tables --------------------------------------------------------------------------------- */

bp_ch_type bp_ch_type_of(const bp_column *c, const bp_ch_caps *caps, bool key)
{
    return bp_ch_coltype(c->type, c->flags, caps, key);
}

bp_ch_type bp_ch_coltype(bp_col_type type, unsigned flags, const bp_ch_caps *caps, bool key)
{
    bp_ch_type t = {.nullable = !key && !(flags & BP_COL_NOTNULL)};
    switch (type) {
    case BP_COL_INT64:
    case BP_COL_UINT64:
        t.kind = BP_CH_UINT64;
        break;
    case BP_COL_UINT256:
        /* without UInt256 (18.16: Decimal ends at 38 digits) the exact decimal text */
        t.kind = caps->uint256 ? BP_CH_UINT256 : BP_CH_STRING;
        break;
    case BP_COL_HASH:
        t.kind = BP_CH_FIXED;
        t.len = 32;
        break;
    case BP_COL_ADDRESS:
        t.kind = BP_CH_FIXED;
        t.len = 20;
        break;
    case BP_COL_BOOL:
        t.kind = BP_CH_UINT8;
        break;
    case BP_COL_FLOAT:
        t.kind = BP_CH_FLOAT64;
        break;
    default: /* bytes (raw), text, JSON text */
        t.kind = BP_CH_STRING;
    }
    return t;
}

bool bp_ch_in_list(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        p += strspn(p, ", ");
        size_t len = strcspn(p, ", ");
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        p += len;
    }
    return false;
}

void bp_ch_raw_table(bp_table t, const bp_ch_caps *caps, bp_ch_table *out)
{
    static const char *const keys[BP_TABLE_COUNT] = {
        [BP_TABLE_BLOCKS] = "chain, number, hash",
        [BP_TABLE_TRANSACTIONS] = "chain, block_number, block_hash, transaction_index",
        [BP_TABLE_LOGS] = "chain, block_number, block_hash, log_index",
    };
    static const char *const parts[BP_TABLE_COUNT] = {
        [BP_TABLE_BLOCKS] = "intDiv(number, 1000000)",
        [BP_TABLE_TRANSACTIONS] = "intDiv(block_number, 1000000)",
        [BP_TABLE_LOGS] = "intDiv(block_number, 1000000)",
    };
    memset(out, 0, sizeof(*out));
    out->name = bp_table_name(t);
    out->engine = "CollapsingMergeTree(" BP_CH_SIGN ")";
    out->order_by = keys[t];
    out->partition_by = parts[t];
    out->block_col = t == BP_TABLE_BLOCKS ? "number" : "block_number";
    out->hash_col = t == BP_TABLE_BLOCKS ? "hash" : "block_hash";
    out->chain_col = "chain";
    size_t first, n = bp_table_columns(t, &first);
    for (size_t i = 0; i < n; i++) {
        const bp_column *c = &bp_columns[first + i];
        bool key = bp_ch_in_list(keys[t], c->name);
        out->cols[out->ncols++] = (bp_ch_col){c->name, bp_ch_type_of(c, caps, key), key};
    }
    out->cols[out->ncols++] = (bp_ch_col){BP_CH_SIGN, {.kind = BP_CH_INT8}, false};
    out->cols[out->ncols++] = (bp_ch_col){BP_CH_SEQ, {.kind = BP_CH_UINT64}, false};
}

int bp_ch_col_list(bp_buf *out, const bp_ch_col *cols, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        rc |= bp_buf_printf(out, "%s%s", i ? ", " : "", cols[i].name);
    return rc;
}

int bp_ch_create_sql(bp_buf *out, const bp_ch_table *t)
{
    int rc = bp_buf_printf(out, "CREATE TABLE IF NOT EXISTS %s (", t->name);
    for (size_t i = 0; i < t->ncols; i++) {
        char type[48];
        bp_ch_type_name(&t->cols[i].type, type, sizeof(type));
        rc |= bp_buf_printf(out, "%s%s %s", i ? ", " : "", t->cols[i].name, type);
    }
    rc |= bp_buf_printf(out, "%s) ENGINE = %s", t->extra ? t->extra : "", t->engine);
    if (t->partition_by)
        rc |= bp_buf_printf(out, " PARTITION BY %s", t->partition_by);
    return rc | bp_buf_printf(out, " ORDER BY (%s)", t->order_by);
}

/* ---- rows ----------------------------------------------------------------------------------- */

const char *bp_ch_format_name(enum bp_ch_format f)
{
    return f == BP_CH_NATIVE ? "Native" : "RowBinary";
}

int bp_ch_enc_init(bp_ch_enc *e, enum bp_ch_format f, const bp_ch_col *cols, size_t ncols)
{
    memset(e, 0, sizeof(*e));
    e->format = f;
    e->cols = cols;
    e->ncols = ncols;
    size_t nbufs = f == BP_CH_NATIVE ? ncols : 1;
    e->data = calloc(nbufs, sizeof(*e->data));
    e->nulls = calloc(ncols, sizeof(*e->nulls));
    bp_buf_init(&e->head, 0);
    for (size_t i = 0; e->data && e->nulls && i < ncols; i++) {
        if (i < nbufs)
            bp_buf_init(&e->data[i], 0);
        bp_buf_init(&e->nulls[i], 0);
    }
    return e->data && e->nulls ? 0 : BP_ENOMEM;
}

void bp_ch_enc_release(bp_ch_enc *e)
{
    size_t nbufs = e->format == BP_CH_NATIVE ? e->ncols : 1;
    for (size_t i = 0; e->data && i < nbufs; i++)
        bp_buf_release(&e->data[i]);
    for (size_t i = 0; e->nulls && i < e->ncols; i++)
        bp_buf_release(&e->nulls[i]);
    free(e->data);
    free(e->nulls);
    bp_buf_release(&e->head);
    memset(e, 0, sizeof(*e));
}

void bp_ch_enc_reset(bp_ch_enc *e)
{
    size_t nbufs = e->format == BP_CH_NATIVE ? e->ncols : 1;
    for (size_t i = 0; i < nbufs; i++)
        bp_buf_reset(&e->data[i]);
    for (size_t i = 0; i < e->ncols; i++)
        bp_buf_reset(&e->nulls[i]);
    bp_buf_reset(&e->head);
    e->col = e->rows = 0;
    e->rc = 0;
    e->bad = 0;
}

size_t bp_ch_enc_bytes(const bp_ch_enc *e)
{
    size_t n = 0, nbufs = e->format == BP_CH_NATIVE ? e->ncols : 1;
    for (size_t i = 0; i < nbufs; i++)
        n += e->data[i].len;
    for (size_t i = 0; i < e->ncols; i++)
        n += e->nulls[i].len;
    return n;
}

size_t bp_ch_enc_held(const bp_ch_enc *e)
{
    size_t n = e->head.cap, nbufs = e->format == BP_CH_NATIVE ? e->ncols : 1;
    for (size_t i = 0; e->data && i < nbufs; i++)
        n += e->data[i].cap;
    for (size_t i = 0; e->nulls && i < e->ncols; i++)
        n += e->nulls[i].cap;
    return n;
}

void bp_ch_enc_trim(bp_ch_enc *e)
{
    size_t nbufs = e->format == BP_CH_NATIVE ? e->ncols : 1;
    for (size_t i = 0; e->data && i < nbufs; i++)
        bp_buf_release(&e->data[i]);
    for (size_t i = 0; e->nulls && i < e->ncols; i++)
        bp_buf_release(&e->nulls[i]);
    bp_buf_release(&e->head);
    e->col = e->rows = 0;
    e->rc = 0;
    e->bad = 0;
}

static void fail(bp_ch_enc *e, int rc)
{
    if (e->rc == 0) {
        e->rc = rc;
        e->bad = e->col;
    }
}

/* The buffer of the current column, after its null flag (RowBinary) or null map byte
 * (Native) saying "a value"; NULL when the encoder has failed or no column is left. */
static bp_buf *cell(bp_ch_enc *e, bool null)
{
    if (e->rc != 0)
        return NULL;
    if (e->col >= e->ncols) {
        fail(e, BP_EINVAL);
        return NULL;
    }
    const bp_ch_type *t = &e->cols[e->col].type;
    bp_buf *b = e->format == BP_CH_NATIVE ? &e->data[e->col] : &e->data[0];
    if (null && !t->nullable) {
        fail(e, BP_EINVAL);
        return NULL;
    }
    int rc = 0;
    if (t->nullable)
        rc = bp_buf_putc(e->format == BP_CH_NATIVE ? &e->nulls[e->col] : b, null ? 1 : 0);
    if (rc != 0) {
        fail(e, rc);
        return NULL;
    }
    return b;
}

static void done(bp_ch_enc *e, int rc)
{
    if (rc != 0)
        fail(e, rc);
    else
        e->col++;
}

static int put_le(bp_buf *b, uint64_t v, size_t n)
{
    unsigned char le[8];
    for (size_t i = 0; i < n; i++)
        le[i] = (unsigned char)(v >> (8 * i));
    return bp_buf_append(b, le, n);
}

static int put_varint(bp_buf *b, uint64_t v)
{
    unsigned char out[10];
    size_t n = 0;
    do {
        out[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        out[n++] |= v ? 0x80 : 0;
    } while (v);
    return bp_buf_append(b, out, n);
}

static int put_string(bp_buf *b, const void *s, size_t n)
{
    return put_varint(b, n) | bp_buf_append(b, s, n);
}

/* Native: the value a NULL cell holds in the nested column. */
static int put_default(bp_buf *b, const bp_ch_type *t)
{
    static const unsigned char zeros[32];
    switch (t->kind) {
    case BP_CH_UINT8:
    case BP_CH_INT8:
        return bp_buf_putc(b, 0);
    case BP_CH_UINT32:
    case BP_CH_DATETIME:
        return bp_buf_append(b, zeros, 4);
    case BP_CH_UINT64:
    case BP_CH_FLOAT64:
        return bp_buf_append(b, zeros, 8);
    case BP_CH_UINT256:
        return bp_buf_append(b, zeros, 32);
    case BP_CH_FIXED: {
        int rc = 0;
        for (unsigned left = t->len; left > 0 && rc == 0; left -= left < 32 ? left : 32)
            rc = bp_buf_append(b, zeros, left < 32 ? left : 32);
        return rc;
    }
    default:
        return bp_buf_putc(b, 0); /* empty String */
    }
}

void bp_ch_put_null(bp_ch_enc *e)
{
    bp_buf *b = cell(e, true);
    if (!b)
        return;
    done(e, e->format == BP_CH_NATIVE ? put_default(b, &e->cols[e->col].type) : 0);
}

static int put_dec(bp_buf *b, const bp_u256 *v)
{
    char dec[BP_U256_DEC_MAX];
    size_t n = bp_u256_to_dec(v, dec);
    return put_string(b, dec, n);
}

void bp_ch_put_u64(bp_ch_enc *e, uint64_t v)
{
    bp_buf *b = cell(e, false);
    if (!b)
        return;
    bp_u256 wide;
    switch (e->cols[e->col].type.kind) {
    case BP_CH_UINT64:
        done(e, put_le(b, v, 8));
        return;
    case BP_CH_UINT32:
    case BP_CH_DATETIME:
        done(e, v > UINT32_MAX ? BP_EINVAL : put_le(b, v, 4));
        return;
    case BP_CH_UINT8:
        done(e, v > UINT8_MAX ? BP_EINVAL : bp_buf_putc(b, (char)v));
        return;
    case BP_CH_UINT256:
        done(e, put_le(b, v, 8) | put_le(b, 0, 8) | put_le(b, 0, 8) | put_le(b, 0, 8));
        return;
    case BP_CH_STRING:
        bp_u256_from_u64(&wide, v);
        done(e, put_dec(b, &wide));
        return;
    default:
        fail(e, BP_EINVAL);
    }
}

void bp_ch_put_i8(bp_ch_enc *e, int8_t v)
{
    bp_buf *b = cell(e, false);
    if (b)
        done(e, e->cols[e->col].type.kind == BP_CH_INT8 ? bp_buf_putc(b, (char)v) : BP_EINVAL);
}

void bp_ch_put_u256(bp_ch_enc *e, const bp_u256 *v)
{
    bp_buf *b = cell(e, false);
    if (!b)
        return;
    switch (e->cols[e->col].type.kind) {
    case BP_CH_UINT256:
        done(e, put_le(b, v->w[0], 8) | put_le(b, v->w[1], 8) | put_le(b, v->w[2], 8) |
                    put_le(b, v->w[3], 8));
        return;
    case BP_CH_STRING:
        done(e, put_dec(b, v));
        return;
    case BP_CH_UINT64:
        done(e, bp_u256_fits_u64(v) ? put_le(b, v->w[0], 8) : BP_EINVAL);
        return;
    default:
        fail(e, BP_EINVAL);
    }
}

void bp_ch_put_hex(bp_ch_enc *e, const char *hex)
{
    bp_buf *b = cell(e, false);
    if (!b)
        return;
    const bp_ch_type *t = &e->cols[e->col].type;
    size_t len = strlen(hex), n = len >= 2 ? (len - 2) / 2 : 0;
    if ((t->kind != BP_CH_FIXED && t->kind != BP_CH_STRING) ||
        (t->kind == BP_CH_FIXED && n != t->len)) {
        fail(e, BP_EINVAL);
        return;
    }
    int rc = t->kind == BP_CH_STRING ? put_varint(b, n) : 0;
    rc = rc ? rc : bp_buf_reserve(b, n);
    if (rc == 0 && bp_hex_to_bytes(hex, len, (unsigned char *)b->data + b->len) != (long)n)
        rc = BP_EINVAL;
    if (rc == 0) {
        b->len += n;
        b->data[b->len] = '\0';
    }
    done(e, rc);
}

void bp_ch_put_text(bp_ch_enc *e, const char *s, size_t n)
{
    bp_buf *b = cell(e, false);
    if (!b)
        return;
    const bp_ch_type *t = &e->cols[e->col].type;
    if (t->kind == BP_CH_STRING) {
        done(e, put_string(b, s, n));
    } else if (t->kind == BP_CH_FIXED && n <= t->len) {
        bp_ch_type rest = {.kind = BP_CH_FIXED, .len = t->len - (unsigned)n};
        done(e, bp_buf_append(b, s, n) | (rest.len ? put_default(b, &rest) : 0));
    } else {
        fail(e, BP_EINVAL);
    }
}

void bp_ch_put_f64(bp_ch_enc *e, double v)
{
    bp_buf *b = cell(e, false);
    if (!b)
        return;
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    done(e, e->cols[e->col].type.kind == BP_CH_FLOAT64 ? put_le(b, bits, 8) : BP_EINVAL);
}

void bp_ch_row_end(bp_ch_enc *e)
{
    if (e->rc == 0 && e->col != e->ncols)
        fail(e, BP_EINVAL);
    e->col = 0;
    e->rows += e->rc == 0;
}

size_t bp_ch_enc_pieces(bp_ch_enc *e, bp_ch_piece *out, size_t max)
{
    if (e->format == BP_CH_ROWBINARY)
        return max ? (out[0] = (bp_ch_piece){e->data[0].data, e->data[0].len}, 1) : 0;
    /* Native: [ncols rows] then per column [name type] [null map] [values]; the names and
     * types go into head, so the pieces point into head only after it stops growing */
    bp_buf_reset(&e->head);
    size_t at[BP_CH_MAX_COLS + 1];
    int rc = put_varint(&e->head, e->ncols) | put_varint(&e->head, e->rows);
    for (size_t i = 0; i < e->ncols && i < BP_CH_MAX_COLS; i++) {
        char type[48];
        bp_ch_type_name(&e->cols[i].type, type, sizeof(type));
        at[i] = e->head.len;
        rc |= put_string(&e->head, e->cols[i].name, strlen(e->cols[i].name));
        rc |= put_string(&e->head, type, strlen(type));
    }
    at[e->ncols] = e->head.len;
    if (rc != 0 || max < BP_CH_MAX_PIECES(e->ncols)) {
        fail(e, rc ? rc : BP_EINVAL);
        return 0;
    }
    size_t n = 0;
    out[n++] = (bp_ch_piece){e->head.data, at[0]};
    for (size_t i = 0; i < e->ncols; i++) {
        out[n++] = (bp_ch_piece){e->head.data + at[i], at[i + 1] - at[i]};
        if (e->cols[i].type.nullable)
            out[n++] = (bp_ch_piece){e->nulls[i].data, e->nulls[i].len};
        out[n++] = (bp_ch_piece){e->data[i].data, e->data[i].len};
    }
    return n;
}
