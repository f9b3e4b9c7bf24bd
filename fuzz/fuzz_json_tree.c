/* fuzz_json_tree.c - differential libFuzzer target: bp_json_parse, bp_json_parse_inplace and
 * bp_json_stream (fed in pieces) against yajl_tree_parse. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void differ(const char *what, const char *detail)
{
    fprintf(stderr, "bp_json_parse and yajl_tree_parse differ: %s: %.200s\n", what, detail);
    abort();
}

static void same_tree(yajl_val a, yajl_val b);

static void same_number(yajl_val a, yajl_val b)
{
    if (strcmp(a->u.number.r, b->u.number.r) != 0)
        differ("number text", a->u.number.r);
    if (a->u.number.flags != b->u.number.flags)
        differ("number flags", a->u.number.r);
    if (a->u.number.i != b->u.number.i)
        differ("number integer value", a->u.number.r);
    if (memcmp(&a->u.number.d, &b->u.number.d, sizeof(double)) != 0)
        differ("number double value", a->u.number.r);
}

static void same_object(yajl_val a, yajl_val b)
{
    if (a->u.object.len != b->u.object.len)
        differ("object size", a->u.object.len ? a->u.object.keys[0] : "{}");
    if (!b->u.object.len && (b->u.object.keys || b->u.object.values))
        differ("empty object arrays", "not NULL");
    for (size_t i = 0; i < a->u.object.len; i++) {
        if (strcmp(a->u.object.keys[i], b->u.object.keys[i]) != 0)
            differ("object key", a->u.object.keys[i]);
        same_tree(a->u.object.values[i], b->u.object.values[i]);
    }
}

static void same_array(yajl_val a, yajl_val b)
{
    if (a->u.array.len != b->u.array.len)
        differ("array size", "");
    if (!b->u.array.len && b->u.array.values)
        differ("empty array values", "not NULL");
    for (size_t i = 0; i < a->u.array.len; i++)
        same_tree(a->u.array.values[i], b->u.array.values[i]);
}

/* a from yajl_tree, b from bp_json_parse. Depth is bounded by BP_JSON_MAX_DEPTH. */
static void same_tree(yajl_val a, yajl_val b)
{
    if (!a || !b || a->type != b->type)
        differ("node type", "");
    if (YAJL_IS_STRING(a) && strcmp(a->u.string, b->u.string) != 0)
        differ("string", a->u.string);
    else if (YAJL_IS_NUMBER(a))
        same_number(a, b);
    else if (YAJL_IS_OBJECT(a))
        same_object(a, b);
    else if (YAJL_IS_ARRAY(a))
        same_array(a, b);
}

static size_t depth_of(yajl_val v)
{
    size_t n = YAJL_IS_OBJECT(v) ? v->u.object.len : YAJL_IS_ARRAY(v) ? v->u.array.len : 0;
    yajl_val *kids = YAJL_IS_OBJECT(v) ? v->u.object.values : v->u.array.values;
    size_t deepest = 0;
    for (size_t i = 0; i < n; i++) {
        size_t d = depth_of(kids[i]);
        deepest = d > deepest ? d : deepest;
    }
    return n || YAJL_IS_OBJECT(v) || YAJL_IS_ARRAY(v) ? deepest + 1 : 0;
}

/* String lengths of a bp_json tree: as unescaped (>= strlen, NUL right after). */
static void lengths_right(yajl_val v)
{
    size_t n = YAJL_IS_OBJECT(v) ? v->u.object.len : YAJL_IS_ARRAY(v) ? v->u.array.len : 0;
    yajl_val *kids = YAJL_IS_OBJECT(v) ? v->u.object.values : v->u.array.values;
    if (YAJL_IS_STRING(v) &&
        (bp_json_strlen(v) < strlen(v->u.string) || v->u.string[bp_json_strlen(v)] != '\0'))
        differ("string length", v->u.string);
    for (size_t i = 0; i < n; i++)
        lengths_right(kids[i]);
}

/* a / b: yajl_tree's and bp_json_parse's verdicts on text[0..len). */
static void compare_inplace(const char *text, size_t len, yajl_val b, const char *eb)
{
    char ec[512];
    char *raw = malloc(len ? len : 1); /* exactly len bytes: ASan sees any read past them */
    if (!raw)
        return;
    memcpy(raw, text, len);
    yajl_val c = bp_json_parse_inplace(raw, len, ec, sizeof(ec));
    if (!b != !c)
        differ(b ? "only bp_json accepts" : "only in-place accepts", b ? ec : eb);
    else if (b) {
        same_tree(b, c);
        lengths_right(b);
        lengths_right(c);
    } else if (strcmp(eb, ec) != 0) {
        differ("in-place error message", ec);
    } else if (memcmp(raw, text, len) != 0) {
        differ("in-place parse refused but changed the text", ec);
    }
    bp_json_free(c);
    free(raw);
}

/* bp_json's own message: one line, yajl's kind of words, an offset. */
static void message_ok(const char *eb)
{
    if ((strncmp(eb, "lexical error: ", 15) != 0 && strncmp(eb, "parse error: ", 13) != 0) ||
        !strstr(eb, " at offset ") || strchr(eb, '\n'))
        differ("message", eb);
}

/* The text in pieces of alternately a and b bytes, each its own exact allocation (ASan sees
 * any read past a piece): the streamed tree or NULL with eb set. */
static yajl_val stream_pieces(const char *text, size_t len, size_t a, size_t b, char *eb,
                              size_t eblen)
{
    bp_json_stream *s = bp_json_stream_new(NULL, NULL);
    if (!s)
        abort();
    for (size_t at = 0, k = 0; at < len; k++) {
        size_t want = k % 2 ? b : a, n = len - at < want ? len - at : want;
        char *p = malloc(n);
        if (!p)
            abort();
        memcpy(p, text + at, n);
        int rc = bp_json_stream_feed(s, p, n);
        free(p);
        at += n;
        if (rc != 0)
            break;
    }
    yajl_val v = bp_json_stream_finish(s, eb, eblen);
    bp_json_stream_free(s);
    return v;
}

/* a: yajl_tree's verdict. Piece sizes come from the first and last bytes of the input. */
static void compare_stream(const char *text, size_t len, yajl_val a)
{
    char eb[512];
    size_t pa = len ? 1 + ((unsigned char)text[0] & 15) : 1;
    size_t pb = len ? 1 + (unsigned char)text[len - 1] : 1;
    yajl_val v = stream_pieces(text, len, pa, pb, eb, sizeof(eb));
    if (!v && strstr(eb, "nested deeper")) {
        if (a && depth_of(a) <= BP_JSON_MAX_DEPTH)
            differ("stream: depth limit hit early", eb);
    } else if (!a != !v) {
        differ(a ? "only yajl_tree accepts (stream)" : "only bp_json_stream accepts", eb);
    } else if (a) {
        same_tree(a, v);
        lengths_right(v);
    } else {
        message_ok(eb);
    }
    bp_json_free(v);
}

/* text[0..len) holds no NUL; cstr is the same bytes NUL-terminated for yajl_tree. */
static void compare(const char *text, size_t len, const char *cstr)
{
    char ea[512], eb[512];
    yajl_val a = yajl_tree_parse(cstr, ea, sizeof(ea));
    yajl_val b = bp_json_parse(text, len, eb, sizeof(eb));
    compare_inplace(text, len, b, eb);
    if (!b && strstr(eb, "nested deeper")) {
        if (a && depth_of(a) <= BP_JSON_MAX_DEPTH)
            differ("depth limit hit early", eb);
    } else if (!a != !b) {
        differ(a ? "only yajl_tree accepts" : "only bp_json accepts", a ? eb : ea);
    } else if (a) {
        same_tree(a, b);
    } else {
        message_ok(eb); /* bp_json's own words (yajl's message is not compared) */
    }
    compare_stream(text, len, a);
    yajl_tree_free(a);
    bp_json_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nul = memchr(text, '\0', size);
    size_t len = nul ? (size_t)(nul - text) : size;
    char *cstr = malloc(len + 1);
    if (!cstr)
        return 0;
    memcpy(cstr, text, len);
    cstr[len] = '\0';
    if (nul) {
        char eb[64];
        yajl_val b = bp_json_parse(text, size, eb, sizeof(eb));
        if (b || !strstr(eb, "NUL"))
            differ("embedded NUL accepted", eb);
    }
    /* data itself is not NUL-terminated: ASan sees any read past len. */
    compare(text, len, cstr);
    free(cstr);
    return 0;
}
