/* jsonw.h - JSON text appended to a bp_buf: string literals with escapes, numbers, 256-bit
 * quantities as quoted decimal, and objects / arrays whose commas are placed for the caller.
 *
 * Strings are bytes: only '"', '\\' and the control bytes 0x00-0x1f are escaped; anything else
 * (UTF-8 or not, DEL) is copied as it is. Two spellings of the control bytes exist, because
 * the texts already written with each must not change:
 *   BP_JSONW_ESC_U      every control byte as \u00xx (log lines, simnode's answers, the
 *                       WebSocket status)
 *   BP_JSONW_ESC_SHORT  \n \r \t as such, the other control bytes as \u00xx (the outputs'
 *                       files: jsonl rows, checkpoint.json) */
#ifndef BP_UTIL_JSONW_H
#define BP_UTIL_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/model.h"
#include "util/buf.h"

enum bp_jsonw_esc { BP_JSONW_ESC_U = 0, BP_JSONW_ESC_SHORT = 1 };

/* ---- plain appends: 0, or bp_buf's BP_ENOMEM / BP_ETOOBIG ---- */

/* s as a JSON string literal, or null for NULL. */
int bp_jsonw_quote(bp_buf *b, const char *s, enum bp_jsonw_esc esc);
/* s[0..n) as a JSON string literal (NUL bytes included, as \u0000). */
int bp_jsonw_quote_n(bp_buf *b, const char *s, size_t n, enum bp_jsonw_esc esc);

/* Replaces in place, with '?', every byte of s that is not part of a well-formed UTF-8
 * sequence (RFC 3629: no overlong forms, surrogates or code points past U+10FFFF), so that
 * text taken from a request (a path, a key) can go into an answer that must be valid JSON. */
void bp_jsonw_utf8_fix(char *s);

/* ---- a writer that places the commas ----
 *
 * Sticky as bp_fmt: after the first failure every call does nothing and bp_jsonw_finish
 * returns that error, so a whole document is written and checked once:
 *   bp_jsonw w;
 *   bp_jsonw_init(&w, out, BP_JSONW_ESC_U);
 *   bp_jsonw_begin_object(&w);
 *   bp_jsonw_key(&w, "head");  bp_jsonw_u64(&w, 17);
 *   bp_jsonw_key(&w, "peers"); bp_jsonw_begin_array(&w); ... bp_jsonw_end_array(&w);
 *   bp_jsonw_end_object(&w);
 *   rc = bp_jsonw_finish(&w);
 * A key is written only inside an object and a value after its key there; nesting is at most
 * BP_JSONW_DEPTH_MAX deep. Breaking these rules is BP_EINVAL (from bp_jsonw_finish too). */
#define BP_JSONW_DEPTH_MAX 32

typedef struct bp_jsonw {
    bp_buf *buf;
    int rc; /* 0, or the first error */
    enum bp_jsonw_esc esc;
    unsigned depth;
    uint32_t in_object; /* bit d: the container at depth d (1-based) is an object */
    uint32_t has_item;  /* bit d: it has a member already (the next one needs a comma) */
    bool after_key;     /* a key was written: the value follows without a comma */
} bp_jsonw;

void bp_jsonw_init(bp_jsonw *w, bp_buf *b, enum bp_jsonw_esc esc);
void bp_jsonw_begin_object(bp_jsonw *w);
void bp_jsonw_end_object(bp_jsonw *w);
void bp_jsonw_begin_array(bp_jsonw *w);
void bp_jsonw_end_array(bp_jsonw *w);
void bp_jsonw_key(bp_jsonw *w, const char *key);
void bp_jsonw_str(bp_jsonw *w, const char *s); /* null for NULL */
void bp_jsonw_str_n(bp_jsonw *w, const char *s, size_t n);
void bp_jsonw_u64(bp_jsonw *w, uint64_t v);
void bp_jsonw_i64(bp_jsonw *w, int64_t v);
/* A 256-bit quantity as a quoted decimal string ("1000000000000000000"): JSON readers hold
 * numbers in doubles, which would round it. */
void bp_jsonw_u256(bp_jsonw *w, const bp_u256 *v);
void bp_jsonw_bool(bp_jsonw *w, bool v);
void bp_jsonw_null(bp_jsonw *w);
/* A value that is JSON text already (a number's own text, a nested document). */
void bp_jsonw_raw(bp_jsonw *w, const char *json, size_t n);
/* 0 when the document is complete (every container closed), else the first error. */
int bp_jsonw_finish(const bp_jsonw *w);

#endif
