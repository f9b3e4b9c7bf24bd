/* format.c - decimal, CSV, JSON, withdrawal and timestamp text for the outputs. */
#include "sink/format.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "util/hex.h"

void bp_fmt_raw(bp_fmt *f, const char *s, size_t n)
{
    if (f->rc == 0)
        f->rc = bp_buf_append(f->buf, s, n);
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

void bp_fmt_u64(bp_fmt *f, uint64_t v)
{
    char tmp[20];
    char *p = tmp + sizeof(tmp);
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    bp_fmt_raw(f, p, (size_t)(tmp + sizeof(tmp) - p));
}

void bp_fmt_qty(bp_fmt *f, const bp_qty *q, const char *null_text)
{
    if (!q->set) {
        bp_fmt_str(f, null_text);
    } else if (bp_u256_fits_u64(&q->v)) {
        bp_fmt_u64(f, q->v.w[0]);
    } else {
        char dec[BP_U256_DEC_MAX];
        bp_fmt_raw(f, dec, bp_u256_to_dec(&q->v, dec));
    }
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
    size_t plain = strcspn(s, ",\"\r\n");
    if (s[plain] == '\0') {
        bp_fmt_raw(f, s, plain);
        return;
    }
    bp_fmt_char(f, '"');
    for (const char *q; (q = strchr(s, '"')); s = q + 1) {
        bp_fmt_raw(f, s, (size_t)(q - s));
        bp_fmt_raw(f, "\"\"", 2);
    }
    bp_fmt_str(f, s);
    bp_fmt_char(f, '"');
}

static bool json_plain(unsigned char c)
{
    return c >= 0x20 && c != '"' && c != '\\';
}

static void json_escape(bp_fmt *f, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    char esc[7] = {'\\', (char)c, 0};
    size_t n = 2;
    switch (c) {
    case '"':
    case '\\':
        break;
    case '\n':
        esc[1] = 'n';
        break;
    case '\r':
        esc[1] = 'r';
        break;
    case '\t':
        esc[1] = 't';
        break;
    default:
        memcpy(esc + 1, "u00", 3);
        esc[4] = hex[c >> 4];
        esc[5] = hex[c & 15];
        n = 6;
    }
    bp_fmt_raw(f, esc, n);
}

void bp_fmt_json_str(bp_fmt *f, const char *s)
{
    if (!s) {
        bp_fmt_raw(f, "null", 4);
        return;
    }
    bp_fmt_char(f, '"');
    while (*s) {
        const char *run = s;
        while (*s && json_plain((unsigned char)*s))
            s++;
        bp_fmt_raw(f, run, (size_t)(s - run));
        if (*s)
            json_escape(f, (unsigned char)*s++);
    }
    bp_fmt_char(f, '"');
}

void bp_fmt_withdrawals(bp_fmt *f, const bp_block *b, const char *quote)
{
    for (size_t i = 0; i < b->withdrawal_count; i++) {
        const bp_withdrawal *w = &b->withdrawals[i];
        bp_fmt_str(f, i ? ",{" : "{");
        bp_fmt_str(f, quote);
        bp_fmt_str(f, "index");
        bp_fmt_str(f, quote);
        bp_fmt_char(f, ':');
        bp_fmt_u64(f, w->index);
        bp_fmt_char(f, ',');
        bp_fmt_str(f, quote);
        bp_fmt_str(f, "validator_index");
        bp_fmt_str(f, quote);
        bp_fmt_char(f, ':');
        bp_fmt_u64(f, w->validator_index);
        bp_fmt_char(f, ',');
        bp_fmt_str(f, quote);
        bp_fmt_str(f, "address");
        bp_fmt_str(f, quote);
        bp_fmt_char(f, ':');
        if (w->address) {
            bp_fmt_str(f, quote);
            bp_fmt_str(f, w->address);
            bp_fmt_str(f, quote);
        } else {
            bp_fmt_str(f, "null");
        }
        bp_fmt_char(f, ',');
        bp_fmt_str(f, quote);
        bp_fmt_str(f, "amount");
        bp_fmt_str(f, quote);
        bp_fmt_char(f, ':');
        bp_fmt_u64(f, w->amount);
        bp_fmt_char(f, '}');
    }
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
