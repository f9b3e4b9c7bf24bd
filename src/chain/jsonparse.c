/* jsonparse.c - incremental JSON lexer + parser (yajl 2.1's language) with bulk string scans. */
#include "chain/jsonparse.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "util/hex.h"

/* What may come next. */
enum {
    S_VALUE,     /* a value: at the top, after ':' or after ',' in an array */
    S_ARR_FIRST, /* after '[': a value or ']' */
    S_OBJ_FIRST, /* after '{': a key or '}' */
    S_KEY,       /* after ',' in an object */
    S_COLON,     /* after a key */
    S_NEXT,      /* after a value in a container: ',' or its close */
    S_DONE,      /* the top-level value is complete */
};

/* The token a piece ended in. */
enum { P_NONE, P_STRING, P_NUMBER, P_LITERAL, P_COMMENT };

/* String escape states in bp_jp.sub: 1..4 hex digits of \u still due, or just after '\'. */
#define ESC_START 5

/* Comment states in bp_jp.sub. */
enum { C_SLASH, C_LINE, C_BLOCK, C_STAR };

#define E_LEX_CHAR "lexical error: invalid char in json text"
#define E_LEX_LITERAL "lexical error: invalid string in json text"
#define E_LEX_STRCHAR "lexical error: invalid character inside string"
#define E_LEX_UTF8 "lexical error: invalid bytes in UTF8 string"
#define E_LEX_ESCAPE                                                                               \
    "lexical error: inside a string, '\\' occurs before a character which it may not"
#define E_LEX_HEX "lexical error: invalid (non-hex) character occurs after '\\u' inside string"
#define E_LEX_NUMBER "lexical error: malformed number"
#define E_LEX_COMMENT "lexical error: invalid comment format ('/' not followed by '*' or '/')"
#define E_EOF "parse error: premature EOF"
#define E_GARBAGE "parse error: trailing garbage"
#define E_DEPTH "parse error: nested too deep"
#define E_MEMORY "out of memory"
#define E_STOPPED "client cancelled parse via callback return value"

/* Bytes a string holds as they are: not '"', '\\', a control char or non-ASCII. */
static inline bool plain(unsigned c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* Characters a number run may hold; the run is checked against the grammar as a whole (any
 * run that is not one number is an error in yajl too: two tokens in a row or a bad one). */
static inline bool numch(unsigned c)
{
    return c - '0' < 10 || c == '-' || c == '+' || c == '.' || (c | 0x20) == 'e';
}

static inline bool space(unsigned c)
{
    return c == ' ' || c - '\t' < 5; /* \t \n \v \f \r */
}

static inline bool hex(unsigned c)
{
    return bp_hex_digit((unsigned char)c) >= 0;
}

static inline bool escapable(unsigned c)
{
    return c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' ||
           c == 't';
}

void bp_jp_init(bp_jp *p, const bp_jp_callbacks *cb, void *ud)
{
    memset(p, 0, offsetof(bp_jp, stack));
    p->cb = cb;
    p->ud = ud;
    p->state = S_VALUE;
}

void bp_jp_release(bp_jp *p)
{
    free(p->carry.data);
    free(p->dec.data);
    p->carry = p->dec = (bp_jp_buf){0};
}

/* Records the first failure (at: its offset in the document). */
static int fail_at(bp_jp *p, const char *why, size_t off)
{
    if (!p->err) {
        p->err = why;
        p->err_off = off;
    }
    return -1;
}

static int fail(bp_jp *p, const char *why, const unsigned char *q)
{
    return fail_at(p, why, p->off + (size_t)(q - p->base));
}

static int buf_reserve(bp_jp_buf *b, size_t more)
{
    if (b->cap - b->len >= more)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    unsigned char *d = realloc(b->data, cap);
    if (!d)
        return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

static int carry_add(bp_jp *p, const unsigned char *s, size_t n)
{
    if (buf_reserve(&p->carry, n + 1) != 0)
        return fail(p, E_MEMORY, s);
    memcpy(p->carry.data + p->carry.len, s, n);
    p->carry.len += n;
    return 0;
}

/* ---- events ---- */

static int after_value(bp_jp *p)
{
    p->state = p->depth ? S_NEXT : S_DONE;
    return 0;
}

/* The parse error for a token that may not come in the current state. */
static const char *unexpected(const bp_jp *p)
{
    switch (p->state) {
    case S_DONE:
        return E_GARBAGE;
    case S_COLON:
        return "parse error: object key and value must be separated by a colon (':')";
    case S_OBJ_FIRST:
    case S_KEY:
        return "parse error: invalid object key (must be a string)";
    case S_NEXT:
        return p->stack[p->depth - 1] ? "parse error: after array element, I expect ',' or ']'"
                                      : "parse error: after key and value, inside map, I "
                                        "expect ',' or '}'";
    default:
        return "parse error: unallowed token at this point in JSON text";
    }
}

static inline bool value_ok(const bp_jp *p)
{
    return p->state == S_VALUE || p->state == S_ARR_FIRST;
}

static int stopped(bp_jp *p, size_t at)
{
    return fail_at(p, E_STOPPED, at);
}

/* Offset of q in the document. */
static inline size_t at_of(const bp_jp *p, const unsigned char *q)
{
    return p->off + (size_t)(q - p->base);
}

/* A complete scalar's callback result (at: its start, for the error offset). */
static inline int scalar_done(bp_jp *p, int go_on, size_t at)
{
    return go_on ? after_value(p) : stopped(p, at);
}

/* yajl_string_decode's \u rules (see the header); out has room for len bytes. */
static size_t put_utf8(unsigned char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18)); /* a joined pair: at most 0x10FFFF */
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

static unsigned hex4(const unsigned char *s)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        v = v << 4 | (unsigned)bp_hex_digit(s[i]);
    }
    return v;
}

/* s[0..len) is a lexed string body (every escape complete and valid): its unescaped bytes. */
static size_t unescape(const unsigned char *s, size_t len, unsigned char *o)
{
    size_t i = 0, n = 0;
    while (i < len) {
        const unsigned char *bs = memchr(s + i, '\\', len - i);
        size_t run = bs ? (size_t)(bs - s) - i : len - i;
        memcpy(o + n, s + i, run);
        n += run;
        i += run;
        if (!bs)
            break;
        unsigned char e = s[i + 1];
        i += 2;
        if (e != 'u') {
            static const unsigned char map[128] = {
                ['"'] = '"',  ['\\'] = '\\', ['/'] = '/',  ['b'] = '\b',
                ['f'] = '\f', ['n'] = '\n',  ['r'] = '\r', ['t'] = '\t',
            };
            o[n++] = map[e & 0x7F];
            continue;
        }
        unsigned cp = hex4(s + i);
        i += 4;
        if ((cp & 0xFC00) == 0xD800) {
            if (i + 1 < len && s[i] == '\\' && s[i + 1] == 'u') {
                unsigned lo = hex4(s + i + 2);
                cp = ((cp & 0x3F) << 10) | ((((cp >> 6) & 0xF) + 1) << 16) | (lo & 0x3FF);
                i += 6;
            } else {
                o[n++] = '?';
                continue;
            }
        }
        n += put_utf8(o + n, cp);
    }
    return n;
}

/* A complete string body: a key or a value by the state, unescaped if it has escapes. */
static int string_done(bp_jp *p, const unsigned char *s, size_t len, size_t at)
{
    bool key = p->state == S_OBJ_FIRST || p->state == S_KEY;
    if (!key && !value_ok(p))
        return fail_at(p, unexpected(p), at);
    if (p->has_esc) {
        p->dec.len = 0;
        if (buf_reserve(&p->dec, len + 1) != 0)
            return fail_at(p, E_MEMORY, at);
        len = unescape(s, len, p->dec.data);
        s = p->dec.data;
    }
    if (key) {
        p->state = S_COLON;
        return p->cb->map_key(p->ud, s, len) ? 0 : stopped(p, at);
    }
    return scalar_done(p, p->cb->string(p->ud, s, len), at);
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? and nothing else. */
static bool number_ok(const unsigned char *s, size_t len)
{
    const unsigned char *e = s + len;
    s += s < e && *s == '-';
    if (s < e && *s == '0')
        s++;
    else if (s < e && *s >= '1' && *s <= '9')
        while (s < e && *s >= '0' && *s <= '9')
            s++;
    else
        return false;
    if (s < e && *s == '.') {
        const unsigned char *d = ++s;
        while (s < e && *s >= '0' && *s <= '9')
            s++;
        if (s == d)
            return false;
    }
    if (s < e && (*s == 'e' || *s == 'E')) {
        s++;
        s += s < e && (*s == '+' || *s == '-');
        const unsigned char *d = s;
        while (s < e && *s >= '0' && *s <= '9')
            s++;
        if (s == d)
            return false;
    }
    return s == e;
}

static int number_done(bp_jp *p, const unsigned char *s, size_t len, size_t at)
{
    if (!number_ok(s, len))
        return fail_at(p, E_LEX_NUMBER, at);
    return scalar_done(p, p->cb->number(p->ud, (const char *)s, len), at);
}

static int literal_done(bp_jp *p, const unsigned char *q)
{
    int go_on = p->lit[0] == 'n' ? p->cb->null(p->ud) : p->cb->boolean(p->ud, p->lit[0] == 't');
    return scalar_done(p, go_on, at_of(p, q));
}

/* ---- string scanning ---- */

/* The first byte at or after r that is not plain (or end): 16 bytes a step where SSE2 is. One
 * signed compare below 0x20 catches both control chars and non-ASCII (negative as int8). */
static inline const unsigned char *skip_plain(const unsigned char *r, const unsigned char *end)
{
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
    const __m128i low = _mm_set1_epi8(0x20);
    while (end - r >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)r);
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, bslash)),
                                 _mm_cmplt_epi8(x, low));
        unsigned bits = (unsigned)_mm_movemask_epi8(m);
        if (bits)
            return r + __builtin_ctz(bits);
        r += 16;
    }
#endif
    while (r < end && plain(*r))
        r++;
    return r;
}

/* Finishes an escape or UTF-8 sequence in progress (sub / utf8); false on a bad byte. */
static bool scan_partial(bp_jp *p, const unsigned char **pos, const unsigned char *end)
{
    const unsigned char *r = *pos;
    while (r < end && (p->sub || p->utf8)) {
        unsigned char c = *r;
        const char *bad;
        if (p->utf8) {
            bad = (c >> 6) == 2 ? NULL : E_LEX_UTF8;
            p->utf8--;
        } else if (p->sub == ESC_START) {
            bad = c == 'u' || escapable(c) ? NULL : E_LEX_ESCAPE;
            p->sub = c == 'u' ? 4 : 0;
        } else {
            bad = hex(c) ? NULL : E_LEX_HEX;
            p->sub--;
        }
        if (bad) {
            fail(p, bad, r);
            *pos = r;
            return false;
        }
        r++;
    }
    *pos = r;
    return true;
}

/* Scans a string body from *pos: 1 with *pos at the closing quote, 0 at end with the state
 * kept for the next piece, -1 on a bad byte. */
static int scan_string(bp_jp *p, const unsigned char **pos, const unsigned char *end)
{
    const unsigned char *r = *pos;
    int rc = 0;
    for (;;) {
        if ((p->sub || p->utf8) && !scan_partial(p, &r, end)) {
            rc = -1;
            break;
        }
        r = skip_plain(r, end);
        if (r == end)
            break;
        unsigned char c = *r;
        if (c == '"') {
            rc = 1;
            break;
        }
        if (c == '\\') {
            p->has_esc = true;
            p->sub = ESC_START;
        } else if (c < 0x20) {
            rc = fail(p, E_LEX_STRCHAR, r);
            break;
        } else if ((c >> 5) == 0x6 || (c >> 4) == 0xE || (c >> 3) == 0x1E) {
            p->utf8 = (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : 3;
        } else {
            rc = fail(p, E_LEX_UTF8, r);
            break;
        }
        r++;
    }
    *pos = r;
    return rc;
}

/* ---- tokens ---- */

/* Copies the cut token's bytes so far and remembers its kind and start (tok: the quote or
 * the first digit) for the next piece. */
static const unsigned char *cut(bp_jp *p, int kind, const unsigned char *tok,
                                const unsigned char *from, const unsigned char *end)
{
    p->tok_off = at_of(p, tok);
    p->carry.len = 0;
    if (carry_add(p, from, (size_t)(end - from)) != 0)
        return NULL;
    p->pend = (unsigned char)kind;
    return end;
}

/* q at the opening quote. After the value a string is lexed all the same (yajl accepts one
 * left open at the end there, and refuses it closed: string_done). */
static const unsigned char *lex_string(bp_jp *p, const unsigned char *q, const unsigned char *end)
{
    if (!value_ok(p) && p->state != S_OBJ_FIRST && p->state != S_KEY && p->state != S_DONE) {
        fail(p, unexpected(p), q);
        return NULL;
    }
    const unsigned char *body = q + 1, *r = skip_plain(body, end);
    p->has_esc = false;
    if (r < end && *r == '"') /* the common case: nothing to check in between */
        return string_done(p, body, (size_t)(r - body), at_of(p, q)) == 0 ? r + 1 : NULL;
    p->sub = p->utf8 = 0; /* sub is shared with literals and comments */
    int rc = scan_string(p, &r, end);
    if (rc < 0)
        return NULL;
    if (rc == 0)
        return cut(p, P_STRING, q, body, end);
    return string_done(p, body, (size_t)(r - body), at_of(p, q)) == 0 ? r + 1 : NULL;
}

static const unsigned char *lex_number(bp_jp *p, const unsigned char *q, const unsigned char *end)
{
    if (!value_ok(p)) {
        fail(p, unexpected(p), q);
        return NULL;
    }
    const unsigned char *r = q;
    while (r < end && numch(*r))
        r++;
    if (r == end) /* a number ends only at a byte that is not part of it */
        return cut(p, P_NUMBER, q, q, end);
    return number_done(p, q, (size_t)(r - q), at_of(p, q)) == 0 ? r : NULL;
}

/* Matches p->lit from its byte p->sub on. */
static const unsigned char *lex_literal(bp_jp *p, const unsigned char *q, const unsigned char *end)
{
    size_t n = strlen(p->lit);
    for (; p->sub < n && q < end; q++, p->sub++) {
        if (*q != (unsigned char)p->lit[p->sub]) {
            fail(p, E_LEX_LITERAL, q);
            return NULL;
        }
    }
    if (p->sub < n) {
        p->pend = P_LITERAL;
        return end;
    }
    return literal_done(p, q) == 0 ? q : NULL;
}

/* Goes on with the comment in state p->sub (after its first '/'). */
static const unsigned char *lex_comment(bp_jp *p, const unsigned char *q, const unsigned char *end)
{
    for (;;) {
        if (q == end) {
            p->pend = P_COMMENT;
            return end;
        }
        const unsigned char *hit;
        switch (p->sub) {
        case C_SLASH:
            if (*q != '/' && *q != '*') {
                fail(p, p->state == S_DONE ? E_GARBAGE : E_LEX_COMMENT, q);
                return NULL;
            }
            p->sub = *q++ == '/' ? C_LINE : C_BLOCK;
            break;
        case C_LINE:
            hit = memchr(q, '\n', (size_t)(end - q));
            if (hit)
                return hit + 1;
            q = end;
            break;
        case C_BLOCK:
            hit = memchr(q, '*', (size_t)(end - q));
            q = hit ? hit + 1 : end;
            p->sub = hit ? C_STAR : C_BLOCK;
            break;
        default: /* C_STAR: "/" closes; anything else (another '*' too) is looked at again */
            if (*q == '/')
                return q + 1;
            p->sub = C_BLOCK;
            break;
        }
    }
}

static const unsigned char *open_container(bp_jp *p, const unsigned char *q, bool array)
{
    if (!value_ok(p) || p->depth == BP_JP_MAX_DEPTH) {
        fail(p, value_ok(p) ? E_DEPTH : unexpected(p), q);
        return NULL;
    }
    p->stack[p->depth++] = array;
    p->state = array ? S_ARR_FIRST : S_OBJ_FIRST;
    if (!(array ? p->cb->start_array(p->ud) : p->cb->start_map(p->ud))) {
        stopped(p, at_of(p, q));
        return NULL;
    }
    return q + 1;
}

static const unsigned char *close_container(bp_jp *p, const unsigned char *q, bool array)
{
    bool ok = p->state == (array ? S_ARR_FIRST : S_OBJ_FIRST) ||
              (p->state == S_NEXT && p->stack[p->depth - 1] == array);
    if (!ok) {
        fail(p, unexpected(p), q);
        return NULL;
    }
    p->depth--;
    after_value(p);
    if (!(array ? p->cb->end_array(p->ud) : p->cb->end_map(p->ud))) {
        stopped(p, at_of(p, q));
        return NULL;
    }
    return q + 1;
}

static const unsigned char *punct(bp_jp *p, const unsigned char *q, bool comma)
{
    if (p->state != (comma ? S_NEXT : S_COLON)) {
        fail(p, unexpected(p), q);
        return NULL;
    }
    p->state = !comma || p->stack[p->depth - 1] ? S_VALUE : S_KEY;
    return q + 1;
}

/* One token (or run of whitespace) starting at q; returns what follows it, or NULL. */
static const unsigned char *step(bp_jp *p, const unsigned char *q, const unsigned char *end)
{
    unsigned char c = *q;
    switch (c) {
    case '"':
        return lex_string(p, q, end);
    case ',':
    case ':':
        return punct(p, q, c == ',');
    case '{':
    case '[':
        return open_container(p, q, c == '[');
    case '}':
    case ']':
        return close_container(p, q, c == ']');
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        return lex_number(p, q, end);
    case 't':
    case 'f':
    case 'n':
        if (!value_ok(p)) {
            fail(p, p->state == S_DONE ? E_GARBAGE : unexpected(p), q);
            return NULL;
        }
        p->lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
        p->sub = 0;
        return lex_literal(p, q, end);
    case '/':
        p->sub = C_SLASH;
        return lex_comment(p, q + 1, end);
    default:
        if (space(c)) {
            do
                q++;
            while (q < end && space(*q));
            return q;
        }
        fail(p, p->state == S_DONE ? E_GARBAGE : E_LEX_CHAR, q);
        return NULL;
    }
}

/* Completes (or goes on with) the token the last piece cut. */
static const unsigned char *resume(bp_jp *p, const unsigned char *q, const unsigned char *end)
{
    const unsigned char *r = q;
    int kind = p->pend;
    p->pend = P_NONE;
    if (kind == P_LITERAL)
        return lex_literal(p, q, end);
    if (kind == P_COMMENT)
        return lex_comment(p, q, end);
    int rc = 1;
    if (kind == P_STRING)
        rc = scan_string(p, &r, end);
    else
        while (r < end && numch(*r))
            r++;
    if (rc < 0 || carry_add(p, q, (size_t)(r - q)) != 0)
        return NULL;
    if (r == end) {
        p->pend = (unsigned char)kind;
        return end;
    }
    if (kind == P_STRING)
        return string_done(p, p->carry.data, p->carry.len, p->tok_off) == 0 ? r + 1 : NULL;
    return number_done(p, p->carry.data, p->carry.len, p->tok_off) == 0 ? r : NULL;
}

int bp_jp_feed(bp_jp *p, const char *text, size_t len)
{
    if (p->err)
        return -1;
    if (!len)
        return 0;
    const unsigned char *q = (const unsigned char *)text, *end = q + len;
    p->base = q;
    if (p->pend)
        q = resume(p, q, end);
    while (q && q < end)
        q = step(p, q, end);
    p->off += len;
    return q ? 0 : -1;
}

int bp_jp_finish(bp_jp *p)
{
    /* yajl_complete_parse: one more space ends a number or a literal at the end. */
    if (bp_jp_feed(p, " ", 1) != 0)
        return -1;
    if (p->state == S_DONE)
        return 0; /* a string or comment still open after the value is fine too */
    return fail_at(p, E_EOF, p->off - 1);
}

void bp_jp_message(const bp_jp *p, const char *text, size_t len, size_t text_off, char *buf,
                   size_t n)
{
    if (!buf || !n)
        return;
    int w = snprintf(buf, n, "%s at offset %zu", p->err ? p->err : "no error", p->err_off);
    if (!p->err || w < 0 || (size_t)w + 3 >= n || p->err_off < text_off ||
        p->err_off - text_off > len)
        return;
    size_t at = p->err_off - text_off;
    size_t from = at > 30 ? at - 30 : 0, to = len - at > 30 ? at + 30 : len;
    char *o = buf + w, *stop = buf + n - 1;
    if (from < to) {
        *o++ = ':';
        *o++ = ' ';
    }
    for (size_t i = from; i < to && o < stop; i++) /* one line: control chars as spaces */
        *o++ = (unsigned char)text[i] < 0x20 ? ' ' : text[i];
    *o = '\0';
}
