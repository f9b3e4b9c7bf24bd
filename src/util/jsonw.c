/* jsonw.c - JSON text into a bp_buf: escaped strings, numbers, and a comma-placing writer. */
#include "util/jsonw.h"

#include <inttypes.h>
#include <string.h>

#include "blockpipe/error.h"
#include "util/hex.h"

static bool plain(unsigned char c)
{
    return c >= 0x20 && c != '"' && c != '\\';
}

/* The escape of a byte that is not plain; returns its length. */
static size_t escape(unsigned char c, enum bp_jsonw_esc esc, char out[6])
{
    static const char hex[] = "0123456789abcdef";
    out[0] = '\\';
    if (c == '"' || c == '\\') {
        out[1] = (char)c;
        return 2;
    }
    if (esc == BP_JSONW_ESC_SHORT && (c == '\n' || c == '\r' || c == '\t')) {
        out[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
        return 2;
    }
    memcpy(out + 1, "u00", 3);
    out[4] = hex[c >> 4];
    out[5] = hex[c & 15];
    return 6;
}

/* The common case (hashes, addresses: nothing to escape) takes one reserve and one copy. */
static int put_quoted(bp_buf *b, const char *s, size_t n)
{
    int rc = bp_buf_reserve(b, n + 2);
    if (rc != BP_OK)
        return rc;
    char *p = b->data + b->len;
    p[0] = '"';
    memcpy(p + 1, s, n);
    p[n + 1] = '"';
    p[n + 2] = '\0';
    b->len += n + 2;
    return BP_OK;
}

static int quote_escaped(bp_buf *b, const char *s, size_t n, enum bp_jsonw_esc esc)
{
    int rc = bp_buf_putc(b, '"');
    size_t i = 0;
    while (rc == BP_OK && i < n) {
        size_t run = i;
        while (i < n && plain((unsigned char)s[i]))
            i++;
        rc = bp_buf_append(b, s + run, i - run);
        if (rc == BP_OK && i < n) {
            char e[6];
            rc = bp_buf_append(b, e, escape((unsigned char)s[i++], esc, e));
        }
    }
    return rc != BP_OK ? rc : bp_buf_putc(b, '"');
}

int bp_jsonw_quote_n(bp_buf *b, const char *s, size_t n, enum bp_jsonw_esc esc)
{
    size_t k = 0;
    while (k < n && plain((unsigned char)s[k]))
        k++;
    return k == n ? put_quoted(b, s, n) : quote_escaped(b, s, n, esc);
}

int bp_jsonw_quote(bp_buf *b, const char *s, enum bp_jsonw_esc esc)
{
    if (!s)
        return bp_buf_append(b, "null", 4);
    /* One pass in the common case: the NUL is not plain, so the scan stops there too. */
    const char *e = s;
    while (plain((unsigned char)*e))
        e++;
    if (!*e)
        return put_quoted(b, s, (size_t)(e - s));
    return quote_escaped(b, s, (size_t)(e - s) + strlen(e), esc);
}

/* The length of the well-formed UTF-8 sequence at s (its lead byte >= 0x80), 0 if none. */
static size_t utf8_seq(const unsigned char *s)
{
    size_t n = s[0] >= 0xc2 && s[0] <= 0xdf   ? 2
               : s[0] >= 0xe0 && s[0] <= 0xef ? 3
               : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4
                                              : 0;
    /* the second byte's range excludes overlong forms, surrogates and > U+10FFFF */
    unsigned char lo = s[0] == 0xe0 ? 0xa0 : s[0] == 0xf0 ? 0x90 : 0x80;
    unsigned char hi = s[0] == 0xed ? 0x9f : s[0] == 0xf4 ? 0x8f : 0xbf;
    if (n == 0 || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

void bp_jsonw_utf8_fix(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t n = *p < 0x80 ? 1 : utf8_seq(p);
        if (n == 0)
            *p++ = '?';
        else
            p += n;
    }
}

/* ---- the writer ---- */

void bp_jsonw_init(bp_jsonw *w, bp_buf *b, enum bp_jsonw_esc esc)
{
    *w = (bp_jsonw){.buf = b, .esc = esc};
}

static void fail(bp_jsonw *w, int rc)
{
    if (w->rc == BP_OK)
        w->rc = rc;
}

static void put(bp_jsonw *w, const char *s, size_t n)
{
    if (w->rc == BP_OK)
        fail(w, bp_buf_append(w->buf, s, n));
}

/* The comma (or nothing) before a value; false when no value may be written here. */
static bool before_value(bp_jsonw *w)
{
    if (w->rc != BP_OK)
        return false;
    uint64_t bit = 1ull << w->depth;
    if (w->after_key) {
        w->after_key = false;
        return true;
    }
    /* In an object a value needs its key; at the top there is one value. */
    if ((w->in_object & bit) || (w->depth == 0 && (w->has_item & bit))) {
        fail(w, BP_EINVAL);
        return false;
    }
    if (w->has_item & bit)
        put(w, ",", 1);
    w->has_item |= bit;
    return w->rc == BP_OK;
}

static void begin(bp_jsonw *w, bool object)
{
    if (!before_value(w))
        return;
    if (w->depth == BP_JSONW_DEPTH_MAX) {
        fail(w, BP_EINVAL);
        return;
    }
    uint64_t bit = 1ull << ++w->depth;
    w->has_item &= ~bit;
    w->in_object = object ? w->in_object | bit : w->in_object & ~bit;
    put(w, object ? "{" : "[", 1);
}

static void end(bp_jsonw *w, bool object)
{
    if (w->rc != BP_OK)
        return;
    uint64_t bit = 1ull << w->depth;
    if (w->depth == 0 || w->after_key || !(w->in_object & bit) != !object) {
        fail(w, BP_EINVAL);
        return;
    }
    w->depth--;
    put(w, object ? "}" : "]", 1);
}

void bp_jsonw_begin_object(bp_jsonw *w)
{
    begin(w, true);
}

void bp_jsonw_end_object(bp_jsonw *w)
{
    end(w, true);
}

void bp_jsonw_begin_array(bp_jsonw *w)
{
    begin(w, false);
}

void bp_jsonw_end_array(bp_jsonw *w)
{
    end(w, false);
}

void bp_jsonw_key(bp_jsonw *w, const char *key)
{
    if (w->rc != BP_OK)
        return;
    uint64_t bit = 1ull << w->depth;
    if (!(w->in_object & bit) || w->after_key || !key) {
        fail(w, BP_EINVAL);
        return;
    }
    if (w->has_item & bit)
        put(w, ",", 1);
    w->has_item |= bit;
    if (w->rc == BP_OK)
        fail(w, bp_jsonw_quote(w->buf, key, w->esc));
    put(w, ":", 1);
    w->after_key = true;
}

void bp_jsonw_str(bp_jsonw *w, const char *s)
{
    if (before_value(w))
        fail(w, bp_jsonw_quote(w->buf, s, w->esc));
}

void bp_jsonw_str_n(bp_jsonw *w, const char *s, size_t n)
{
    if (before_value(w))
        fail(w, bp_jsonw_quote_n(w->buf, s, n, w->esc));
}

void bp_jsonw_u64(bp_jsonw *w, uint64_t v)
{
    if (before_value(w))
        fail(w, bp_buf_printf(w->buf, "%" PRIu64, v));
}

void bp_jsonw_i64(bp_jsonw *w, int64_t v)
{
    if (before_value(w))
        fail(w, bp_buf_printf(w->buf, "%" PRId64, v));
}

void bp_jsonw_u256(bp_jsonw *w, const bp_u256 *v)
{
    char dec[BP_U256_DEC_MAX];
    size_t n = bp_u256_to_dec(v, dec);
    if (before_value(w))
        fail(w, put_quoted(w->buf, dec, n));
}

void bp_jsonw_bool(bp_jsonw *w, bool v)
{
    if (before_value(w))
        put(w, v ? "true" : "false", v ? 4 : 5);
}

void bp_jsonw_null(bp_jsonw *w)
{
    if (before_value(w))
        put(w, "null", 4);
}

void bp_jsonw_raw(bp_jsonw *w, const char *json, size_t n)
{
    if (before_value(w))
        put(w, json, n);
}

int bp_jsonw_finish(const bp_jsonw *w)
{
    if (w->rc != BP_OK)
        return w->rc;
    return w->depth || w->after_key || !(w->has_item & 1) ? BP_EINVAL : BP_OK;
}
