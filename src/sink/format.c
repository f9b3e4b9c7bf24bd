/* format.c - decimal, CSV, JSON, withdrawal and timestamp text for the outputs. */
#include "sink/format.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "blockpipe/columns.h"
#include "util/hex.h"
#include "util/jsonw.h"

char *bp_fmt_room(bp_fmt *f, size_t n)
{
    if (f->rc == 0)
        f->rc = bp_buf_reserve(f->buf, n);
    return f->rc == 0 ? f->buf->data + f->buf->len : NULL;
}

void bp_fmt_done(bp_fmt *f, char *end)
{
    f->buf->len = (size_t)(end - f->buf->data);
    f->buf->data[f->buf->len] = '\0'; /* bp_buf's promise; the room had a byte for it */
}

void bp_fmt_hex_str(bp_fmt *f, const bp_hexb *h)
{
    char *p = bp_fmt_room(f, bp_hexb_text_len(h) + 3); /* the quotes and bp_hexb_text's NUL */
    if (!p)
        return;
    *p++ = '"';
    p += bp_hexb_text(p, h);
    *p++ = '"';
    bp_fmt_done(f, p);
}

/* The appends of a row are many and short: skip bp_buf_append's call and checks while the
 * buffer has room (cap never exceeds max + 1, so this respects the cap too). */
void bp_fmt_raw(bp_fmt *f, const char *s, size_t n)
{
    bp_buf *b = f->buf;
    if (f->rc == 0 && n < b->cap - b->len) {
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len] = '\0';
    } else if (f->rc == 0) {
        f->rc = bp_buf_append(b, s, n);
    }
}

void bp_fmt_str(bp_fmt *f, const char *s)
{
    if (s)
        bp_fmt_raw(f, s, strlen(s));
}

void bp_fmt_char(bp_fmt *f, char c)
{
    bp_fmt_raw(f, &c, 1);
}

static const char g_pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233"
                              "34353637383940414243444546474849505152535455565758596061626364656667"
                              "6869707172737475767778798081828384858687888990919293949596979899";

/* clang-format off */
static const uint64_t g_pow10[20] = {
    1u, 10u, 100u, 1000u, 10000u, 100000u, 1000000u, 10000000u, 100000000u, 1000000000u,
    10000000000u, 100000000000u, 1000000000000u, 10000000000000u, 100000000000000u,
    1000000000000000u, 10000000000000000u, 100000000000000000u, 1000000000000000000u,
    10000000000000000000u};
/* clang-format on */

/* Digits of v: floor(log10) from the bit length (1233 / 4096 ~ log10(2)), then one compare. */
static unsigned dec_len(uint64_t v)
{
    if (v < 10)
        return 1;
    unsigned t = (unsigned)(64 - __builtin_clzll(v)) * 1233 >> 12;
    return t + 1 - (v < g_pow10[t]);
}

/* Right to left, two digits per division: numbers are most of a row's cells. */
char *bp_put_u64(char *p, uint64_t v)
{
    char *end = p + dec_len(v), *q = end;
    while (v >= 100) {
        unsigned r = (unsigned)(v % 100);
        v /= 100;
        q -= 2;
        memcpy(q, g_pairs + 2 * r, 2);
    }
    if (v >= 10)
        memcpy(q - 2, g_pairs + 2 * v, 2);
    else
        q[-1] = (char)('0' + v);
    return end;
}

char *bp_put_qty(char *p, const bp_qty *q)
{
    if (!q->set)
        return p;
    if ((q->v.w[1] | q->v.w[2] | q->v.w[3]) == 0)
        return bp_put_u64(p, q->v.w[0]);
    return p + bp_u256_to_dec(&q->v, p);
}

char *bp_put_csv(char *p, const char *s, size_t n)
{
    /* No early exit, so the scan vectorises: cells that need quotes are rare. */
    unsigned special = 0;
    for (size_t i = 0; i < n; i++)
        special |= (s[i] == ',') | (s[i] == '"') | (s[i] == '\r') | (s[i] == '\n');
    if (!special) {
        memcpy(p, s, n);
        return p + n;
    }
    *p++ = '"';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            *p++ = '"';
        *p++ = s[i];
    }
    *p++ = '"';
    return p;
}

void bp_fmt_u64(bp_fmt *f, uint64_t v)
{
    char tmp[BP_PUT_U64_MAX];
    bp_fmt_raw(f, tmp, (size_t)(bp_put_u64(tmp, v) - tmp));
}

void bp_fmt_qty(bp_fmt *f, const bp_qty *q, const char *null_text)
{
    char dec[BP_PUT_QTY_MAX];
    if (!q->set)
        bp_fmt_str(f, null_text);
    else
        bp_fmt_raw(f, dec, (size_t)(bp_put_qty(dec, q) - dec));
}

void bp_fmt_opt(bp_fmt *f, bp_opt_u64 v, const char *null_text)
{
    if (v.set)
        bp_fmt_u64(f, v.v);
    else
        bp_fmt_str(f, null_text);
}

void bp_fmt_csv_text(bp_fmt *f, const char *s)
{
    if (!s)
        return;
    size_t n = strlen(s);
    char *p = bp_fmt_room(f, 2 * n + 2);
    if (p)
        bp_fmt_done(f, bp_put_csv(p, s, n));
}

void bp_fmt_json_str(bp_fmt *f, const char *s)
{
    if (f->rc == 0)
        f->rc = bp_jsonw_quote(f->buf, s, BP_JSONW_ESC_SHORT);
}

/* The longest withdrawal object but for its quotes and address: four keys (33 letters), {}
 * and four colons and four commas (10, rounded up), three u64. Ten quotes are added apart. */
#define W_FIXED (33 + 16 + 3 * BP_PUT_U64_MAX)

size_t bp_withdrawals_room(const bp_block *b, size_t quote_len)
{
    size_t room = 0;
    for (size_t i = 0; i < b->withdrawal_count; i++) {
        const char *a = b->withdrawals[i].address;
        room += W_FIXED + 10 * quote_len + (a ? strlen(a) : 4);
    }
    return room;
}

static char *put_str(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static char *put_key(char *p, const char *key, const char *quote, size_t ql)
{
    p = put_str(p, quote, ql);
    p = put_str(p, key, strlen(key));
    p = put_str(p, quote, ql);
    *p++ = ':';
    return p;
}

char *bp_put_withdrawals(char *p, const bp_block *b, const char *quote)
{
    size_t ql = strlen(quote);
    for (size_t i = 0; i < b->withdrawal_count; i++) {
        const bp_withdrawal *w = &b->withdrawals[i];
        if (i)
            *p++ = ',';
        *p++ = '{';
        p = put_key(p, "index", quote, ql);
        p = bp_put_u64(p, w->index);
        *p++ = ',';
        p = put_key(p, "validator_index", quote, ql);
        p = bp_put_u64(p, w->validator_index);
        *p++ = ',';
        p = put_key(p, "address", quote, ql);
        if (w->address) {
            p = put_str(p, quote, ql);
            p = put_str(p, w->address, strlen(w->address));
            p = put_str(p, quote, ql);
        } else {
            p = put_str(p, "null", 4);
        }
        *p++ = ',';
        p = put_key(p, "amount", quote, ql);
        p = bp_put_u64(p, w->amount);
        *p++ = '}';
    }
    return p;
}

void bp_fmt_withdrawals(bp_fmt *f, const bp_block *b, const char *quote)
{
    char *p = bp_fmt_room(f, bp_withdrawals_room(b, strlen(quote)));
    if (p)
        bp_fmt_done(f, bp_put_withdrawals(p, b, quote));
}

/* Days since 1970-01-01 to a civil date (H. Hinnant's algorithm, proleptic Gregorian). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    uint64_t doe = (uint64_t)(z - era * 146097);
    uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    uint64_t mp = (5 * doy + 2) / 153;
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

void bp_fmt_rfc3339(bp_fmt *f, uint64_t unix_seconds)
{
    /* Past year 9999 the text would not be RFC 3339 anyway; keep the arithmetic in range. */
    uint64_t t = unix_seconds > 253402300799u ? 253402300799u : unix_seconds;
    int64_t y;
    unsigned mo, d;
    civil_from_days((int64_t)(t / 86400), &y, &mo, &d);
    uint64_t s = t % 86400;
    char out[32];
    int n = snprintf(out, sizeof(out), "%04" PRId64 "-%02u-%02uT%02u:%02u:%02uZ", y, mo, d,
                     (unsigned)(s / 3600), (unsigned)(s / 60 % 60), (unsigned)(s % 60));
    bp_fmt_raw(f, out, (size_t)n);
}
