/* jsonparse.h - incremental JSON parser with SAX callbacks: yajl 2.1's grammar, faster lexing.
 *
 * Accepts and rejects what yajl 2.1 (Debian's) does with yajl_allow_comments and nothing else
 * configured, and reports the same events with the same text, so json.c builds the same trees
 * as it did on yajl_parse:
 *   - whitespace is space, \t \n \v \f \r; comments are / * ... * / and // to the newline;
 *   - strings refuse bytes below 0x20 and check UTF-8 loosely as yajl does (a lead byte
 *     0xC0-0xF7 and the right count of 10xxxxxx bytes: no overlong or surrogate checks);
 *   - escapes decode as yajl_string_decode does: a high surrogate followed by any \u escape
 *     combines with it (whatever it is), one followed by anything else becomes "?", a lone
 *     low surrogate becomes its 3-byte form, \u0000 a NUL byte (counted in len);
 *   - numbers are -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? and passed as their text;
 *   - exactly one top-level value; after it only whitespace and comments, where a string
 *     or comment still open at the end is accepted (yajl's end-of-text rule: the text is
 *     completed by one space, and what is then still open after the value is not an error).
 * Tokens may be split anywhere between pieces: a cut token is kept in a buffer the size of
 * that token, so memory is bounded by the largest token, never the document.
 *
 * Callbacks: yajl's convention (return non-zero to go on, 0 to stop the parse). String and
 * key text without escapes that lies in one piece is passed as a pointer into that piece
 * with the closing quote right after it (json.c's in-place parse relies on it); anything
 * else (unescaped, or joined from several pieces) is in the parser's own buffer, valid
 * during the call. Every callback must be set. */
#ifndef BP_CHAIN_JSONPARSE_H
#define BP_CHAIN_JSONPARSE_H

#include <stdbool.h>
#include <stddef.h>

/* Deeper nesting is an error of the parser's own (json.c stops earlier, at 512). */
#define BP_JP_MAX_DEPTH 1024

typedef struct bp_jp_callbacks {
    int (*null)(void *ud);
    int (*boolean)(void *ud, int value);
    int (*number)(void *ud, const char *text, size_t len);
    int (*string)(void *ud, const unsigned char *s, size_t len);
    int (*map_key)(void *ud, const unsigned char *s, size_t len);
    int (*start_map)(void *ud);
    int (*end_map)(void *ud);
    int (*start_array)(void *ud);
    int (*end_array)(void *ud);
} bp_jp_callbacks;

typedef struct bp_jp_buf {
    unsigned char *data;
    size_t len, cap;
} bp_jp_buf;

/* Fields are private to jsonparse.c; the struct is here so that callers can embed it. */
typedef struct bp_jp {
    const bp_jp_callbacks *cb;
    void *ud;
    unsigned char state;       /* what may come next (enum in jsonparse.c) */
    unsigned char pend;        /* kind of the token the last piece cut, or 0 */
    unsigned char sub;         /* string: escape state; literal: bytes matched; comment: state */
    unsigned char utf8;        /* string: UTF-8 continuation bytes still due */
    bool has_esc;              /* the string being lexed has escapes */
    const char *lit;           /* literal being matched ("true", "false", "null") */
    const unsigned char *base; /* the piece being parsed (error offsets) */
    size_t off;                /* bytes of the document before base */
    size_t depth;
    const char *err;                      /* what went wrong, NULL while the text is fine */
    size_t err_off;                       /* where, from the start of the document */
    size_t tok_off;                       /* where the cut token starts */
    bp_jp_buf carry;                      /* the cut token's bytes so far */
    bp_jp_buf dec;                        /* an unescaped string */
    unsigned char stack[BP_JP_MAX_DEPTH]; /* 1 = array, 0 = object, per open container */
} bp_jp;

void bp_jp_init(bp_jp *p, const bp_jp_callbacks *cb, void *ud);
/* Frees the buffers (p itself is the caller's). Safe after init whatever happened. */
void bp_jp_release(bp_jp *p);

/* The next piece of the text (any length, any split). 0, or -1 once the text is known bad or
 * a callback stopped (then every later call is -1 too). */
int bp_jp_feed(bp_jp *p, const char *text, size_t len);
/* The end of the text: 0 when it held exactly one complete value, else -1. */
int bp_jp_finish(bp_jp *p);

/* One line for a failed parse: "lexical error: ..." / "parse error: ...", the offset in the
 * document, and an excerpt around it when it lies in text[0..len), the bytes at document
 * offset text_off (the whole text, or the last piece fed). */
void bp_jp_message(const bp_jp *p, const char *text, size_t len, size_t text_off, char *buf,
                   size_t n);

#endif
