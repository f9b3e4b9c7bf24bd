/* pg_copy.c - PostgreSQL binary COPY encoding (big-endian fields, base-10000 numerics). */
#include "sink/pg_copy.h"

#include <string.h>

#include "blockpipe/error.h"
#include "util/hex.h"

__extension__ typedef unsigned __int128 pg_u128;

#define PG_NUMERIC_POS 0x0000
#define PG_JSONB_VERSION 1

/* Reserves n more bytes and returns where they start, or NULL (sticky failure). */
static unsigned char *room(bp_pgcopy *c, size_t n)
{
    if (c->rc != 0)
        return NULL;
    int rc = bp_buf_reserve(c->buf, n);
    if (rc != 0) {
        c->rc = rc;
        return NULL;
    }
    unsigned char *p = (unsigned char *)c->buf->data + c->buf->len;
    c->buf->len += n;
    c->buf->data[c->buf->len] = '\0'; /* bp_buf's invariant; reserve() left room for it */
    return p;
}

static void put_be16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static void fail(bp_pgcopy *c, const char *col)
{
    if (c->rc == 0) {
        c->rc = BP_EINVAL;
        c->bad_column = col;
    }
}

void bp_pgcopy_header(bp_pgcopy *c)
{
    static const unsigned char sig[19] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0};
    unsigned char *p = room(c, sizeof(sig));
    if (p)
        memcpy(p, sig, sizeof(sig)); /* flags and header extension length are zero */
}

void bp_pgcopy_trailer(bp_pgcopy *c)
{
    unsigned char *p = room(c, 2);
    if (p)
        put_be16(p, 0xffff);
}

void bp_pgcopy_row(bp_pgcopy *c, uint16_t nfields)
{
    unsigned char *p = room(c, 2);
    if (p)
        put_be16(p, nfields);
}

void bp_pgcopy_null(bp_pgcopy *c)
{
    unsigned char *p = room(c, 4);
    if (p)
        put_be32(p, 0xffffffffu);
}

static void bytes_field(bp_pgcopy *c, const void *prefix, size_t plen, const char *s, size_t n)
{
    unsigned char *p = room(c, 4 + plen + n);
    if (!p)
        return;
    put_be32(p, (uint32_t)(plen + n));
    if (plen)
        memcpy(p + 4, prefix, plen);
    memcpy(p + 4 + plen, s, n);
}

void bp_pgcopy_text(bp_pgcopy *c, const char *s)
{
    if (!s)
        bp_pgcopy_null(c);
    else
        bytes_field(c, NULL, 0, s, strlen(s));
}

void bp_pgcopy_jsonb(bp_pgcopy *c, const char *s)
{
    static const unsigned char version = PG_JSONB_VERSION;
    if (!s)
        bp_pgcopy_null(c);
    else
        bytes_field(c, &version, 1, s, strlen(s));
}

void bp_pgcopy_i64(bp_pgcopy *c, uint64_t v, const char *col)
{
    if (v > (uint64_t)INT64_MAX) {
        fail(c, col);
        return;
    }
    unsigned char *p = room(c, 12);
    if (p) {
        put_be32(p, 8);
        put_be64(p + 4, v);
    }
}

void bp_pgcopy_bool(bp_pgcopy *c, uint64_t v)
{
    unsigned char *p = room(c, 5);
    if (p) {
        put_be32(p, 1);
        p[4] = v != 0;
    }
}

void bp_pgcopy_opt_i64(bp_pgcopy *c, bp_opt_u64 v, const char *col)
{
    if (v.set)
        bp_pgcopy_i64(c, v.v, col);
    else
        bp_pgcopy_null(c);
}

/* v /= 10^16, returns the remainder (four base-10000 digits). */
static uint64_t divmod_1e16(bp_u256 *v)
{
    pg_u128 rem = 0;
    for (int i = 3; i >= 0; i--) {
        pg_u128 cur = (rem << 64) | v->w[i];
        v->w[i] = (uint64_t)(cur / 10000000000000000ull);
        rem = cur % 10000000000000000ull;
    }
    return (uint64_t)rem;
}

static int is_zero(const bp_u256 *v)
{
    return (v->w[0] | v->w[1] | v->w[2] | v->w[3]) == 0;
}

/* numeric wire format: ndigits, weight, sign, dscale, then base-10000 digits, most
 * significant first. An integer has weight ndigits - 1 and dscale 0. */
static void numeric_field(bp_pgcopy *c, const bp_u256 *value)
{
    uint16_t digits[24]; /* 2^256 < 10000^20; filled least significant first */
    int n = 0;
    bp_u256 v = *value;
    while (!is_zero(&v)) {
        uint64_t r = divmod_1e16(&v);
        for (int k = 0; k < 4; k++, r /= 10000)
            digits[n++] = (uint16_t)(r % 10000);
    }
    while (n > 0 && digits[n - 1] == 0)
        n--;
    unsigned char *p = room(c, 4 + 8 + 2 * (size_t)n);
    if (!p)
        return;
    put_be32(p, (uint32_t)(8 + 2 * n));
    put_be16(p + 4, (uint16_t)n);
    put_be16(p + 6, (uint16_t)(n ? n - 1 : 0));
    put_be16(p + 8, PG_NUMERIC_POS);
    put_be16(p + 10, 0);
    for (int i = 0; i < n; i++)
        put_be16(p + 12 + 2 * i, digits[n - 1 - i]);
}

void bp_pgcopy_num_u64(bp_pgcopy *c, uint64_t v)
{
    bp_u256 x = {{v, 0, 0, 0}};
    numeric_field(c, &x);
}

void bp_pgcopy_opt_num_u64(bp_pgcopy *c, bp_opt_u64 v)
{
    if (v.set)
        bp_pgcopy_num_u64(c, v.v);
    else
        bp_pgcopy_null(c);
}

void bp_pgcopy_qty(bp_pgcopy *c, const bp_qty *q)
{
    if (q->set)
        numeric_field(c, &q->v);
    else
        bp_pgcopy_null(c);
}

void bp_pgcopy_hex(bp_pgcopy *c, const char *s, const char *col)
{
    if (!s) {
        bp_pgcopy_null(c);
        return;
    }
    size_t len = strlen(s);
    size_t n = len >= 2 ? (len - 2) / 2 : 0;
    unsigned char *p = room(c, 4 + n);
    if (!p)
        return;
    if (bp_hex_to_bytes(s, len, p + 4) != (long)n) {
        c->buf->len -= 4 + n;
        fail(c, col);
        return;
    }
    put_be32(p, (uint32_t)n);
}

void bp_pgcopy_bytes(bp_pgcopy *c, const unsigned char *b, size_t n)
{
    unsigned char *p = room(c, 4 + n);
    if (!p)
        return;
    put_be32(p, (uint32_t)n);
    memcpy(p + 4, b, n);
}

void bp_pgcopy_f64(bp_pgcopy *c, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    unsigned char *p = room(c, 12);
    if (p) {
        put_be32(p, 8);
        put_be64(p + 4, bits);
    }
}
