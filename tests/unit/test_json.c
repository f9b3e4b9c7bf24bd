/* test_json.c - bp_json_parse builds the same trees as yajl_tree_parse and refuses the same
 * texts (conformance answers, numbers, escapes, errors, depth, big documents). */
#define _XOPEN_SOURCE 700 /* nftw */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ftw.h>
#include <limits.h>

#include "chain/json.h"
#include "testfile.h"
#include "util/buf.h"

/* The whole file; a test cannot go on without it. */
static char *slurp(const char *path, size_t *len)
{
    char *data = bp_test_slurp(path, len);
    if (!data)
        fail_msg("cannot read %s", path);
    return data;
}

/* Exact copy without a terminating NUL: ASan catches any read past len. */
static char *unterminated(const char *s, size_t len)
{
    char *p = malloc(len ? len : 1);
    assert_non_null(p);
    memcpy(p, s, len);
    return p;
}

static void same_tree(yajl_val a, yajl_val b);

static void same_children(yajl_val *a, yajl_val *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        same_tree(a[i], b[i]);
}

/* a from yajl_tree_parse, b from bp_json_parse. */
static void same_tree(yajl_val a, yajl_val b)
{
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a->type, b->type);
    if (YAJL_IS_STRING(a)) {
        assert_string_equal(a->u.string, b->u.string);
    } else if (YAJL_IS_NUMBER(a)) {
        assert_string_equal(a->u.number.r, b->u.number.r);
        assert_int_equal(a->u.number.flags, b->u.number.flags);
        assert_true(a->u.number.i == b->u.number.i);
        assert_memory_equal(&a->u.number.d, &b->u.number.d, sizeof(double));
    } else if (YAJL_IS_OBJECT(a)) {
        assert_int_equal(a->u.object.len, b->u.object.len);
        for (size_t i = 0; i < a->u.object.len; i++)
            assert_string_equal(a->u.object.keys[i], b->u.object.keys[i]);
        same_children(a->u.object.values, b->u.object.values, a->u.object.len);
    } else if (YAJL_IS_ARRAY(a)) {
        assert_int_equal(a->u.array.len, b->u.array.len);
        same_children(a->u.array.values, b->u.array.values, a->u.array.len);
    }
}

/* Every string node of a bp_json tree knows its length (as unescaped: "\u0000" makes it
 * longer than strlen). */
static void lengths_right(yajl_val v)
{
    size_t n = YAJL_IS_OBJECT(v) ? v->u.object.len : YAJL_IS_ARRAY(v) ? v->u.array.len : 0;
    yajl_val *kids = YAJL_IS_OBJECT(v) ? v->u.object.values : v->u.array.values;
    if (YAJL_IS_STRING(v)) {
        assert_true(bp_json_strlen(v) >= strlen(v->u.string));
        assert_int_equal(v->u.string[bp_json_strlen(v)], '\0');
    }
    for (size_t i = 0; i < n; i++)
        lengths_right(kids[i]);
}

/* The in-place parser on a writable copy: the same tree, or bp_json_parse's message (eb) with
 * the text left as it was. */
static void inplace_same(const char *text, size_t len, yajl_val a, const char *eb)
{
    char *raw = unterminated(text, len), ec[512];
    yajl_val c = bp_json_parse_inplace(raw, len, ec, sizeof(ec));
    if (!a != !c)
        fail_msg("%s accepts %.80s", a ? "only yajl_tree" : "only in-place bp_json", text);
    if (a) {
        same_tree(a, c);
        lengths_right(c);
    } else {
        assert_string_equal(eb, ec);
        assert_memory_equal(raw, text, len);
    }
    bp_json_free(c);
    free(raw);
}

/* One line, yajl's kind of words, the offset. */
static void message_ok(const char *eb)
{
    if (strncmp(eb, "lexical error: ", 15) != 0 && strncmp(eb, "parse error: ", 13) != 0)
        fail_msg("message: %s", eb);
    assert_non_null(strstr(eb, " at offset "));
    assert_null(strchr(eb, '\n'));
}

/* bp_json_stream (no elements) over text[0..len) in pieces of `piece` bytes, each its own
 * exact allocation (ASan sees any read past a piece): the tree, or NULL with eb set. */
static yajl_val stream_parse(const char *text, size_t len, size_t piece, char *eb, size_t eblen)
{
    bp_json_stream *s = bp_json_stream_new(NULL, NULL);
    assert_non_null(s);
    for (size_t at = 0; at < len; at += piece) {
        size_t n = len - at < piece ? len - at : piece;
        char *p = unterminated(text + at, n);
        int rc = bp_json_stream_feed(s, p, n);
        free(p);
        if (rc != 0)
            break;
    }
    yajl_val v = bp_json_stream_finish(s, eb, eblen);
    bp_json_stream_free(s);
    return v;
}

/* The streaming parser in 1-byte (small texts), 7-byte and 4 KiB pieces agrees with yajl. */
static void stream_same(const char *text, size_t len, yajl_val a)
{
    const size_t pieces[] = {1, 7, 4096};
    for (size_t k = len > 65536 ? 1 : 0; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
        char eb[512];
        yajl_val v = stream_parse(text, len, pieces[k], eb, sizeof(eb));
        if (!a != !v)
            fail_msg("%s accepts %.80s in %zu-byte pieces (%s)",
                     a ? "only yajl_tree" : "only stream", text, pieces[k], eb);
        if (a) {
            same_tree(a, v);
            lengths_right(v);
        } else {
            message_ok(eb);
        }
        bp_json_free(v);
    }
}

/* All parsers on text[0..len) (no NUL inside): all accept with equal trees, or all refuse
 * (bp_json's own message, the same for both whole-text parsers). Returns whether it parsed. */
static bool same_as_yajl(const char *text, size_t len)
{
    char *cstr = strndup(text, len), *raw = unterminated(text, len);
    char ea[512], eb[512];
    yajl_val a = yajl_tree_parse(cstr, ea, sizeof(ea));
    yajl_val b = bp_json_parse(raw, len, eb, sizeof(eb));
    if (!a != !b)
        fail_msg("%s accepts %.80s (%s)", a ? "only yajl_tree" : "only bp_json", cstr, a ? eb : ea);
    if (a) {
        same_tree(a, b);
        lengths_right(b);
    } else {
        message_ok(eb);
    }
    inplace_same(text, len, a, eb);
    stream_same(text, len, a);
    yajl_tree_free(a);
    bp_json_free(b);
    free(cstr);
    free(raw);
    return a != NULL;
}

static size_t g_docs;

/* Every .json file whole, every request and answer line of every .io file. */
static int compare_file(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    size_t plen = strlen(path), len;
    bool json = plen > 5 && strcmp(path + plen - 5, ".json") == 0;
    bool io = plen > 3 && strcmp(path + plen - 3, ".io") == 0;
    if (flag != FTW_F || (!json && !io))
        return 0;
    char *text = slurp(path, &len);
    if (json) { /* JSON-lines files (expected_*.json) are refused by both */
        same_as_yajl(text, len);
        g_docs++;
    }
    for (char *line = text; io && line && *line; line = strchr(line, '\n'), line += !!line) {
        size_t n = strcspn(line, "\n");
        if (n > 3 && (strncmp(line, ">> ", 3) == 0 || strncmp(line, "<< ", 3) == 0)) {
            if (!same_as_yajl(line + 3, n - 3))
                fail_msg("%s: line does not parse: %.80s", path, line);
            g_docs++;
        }
    }
    free(text);
    return 0;
}

static void test_conformance_same_as_yajl(void **state)
{
    (void)state;
    g_docs = 0;
    assert_int_equal(nftw(BP_CONFORMANCE_DIR, compare_file, 16, FTW_PHYS), 0);
    if (g_docs < 100)
        fail_msg("only %zu JSON documents under %s", g_docs, BP_CONFORMANCE_DIR);
}

/* Every escape, a surrogate pair, a lone surrogate, an escaped NUL, raw UTF-8, an escaped key. */
#define ESCAPES                                                                                    \
    "{\"e\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\",\"u\":\"\\u00e9\\u20ac\\ud83d\\ude00\",\"lone\":"       \
    "\"\\ud800\",\"nul\":\"a\\u0000b\",\"raw\":\"\xc3\xa9\xe2\x82\xac\",\"k\\u0041\":1}"

static void test_shapes_same_as_yajl(void **state)
{
    (void)state;
    const char *good[] = {
        "{}",      "[]",
        "\"top\"", " 42 ",
        "null",    "true",
        "false",   "{\"a\":1,\"a\":2,\"\":[],\"b\":[{},[],null,true,false,\"x\"]}",
        ESCAPES,   "/* c */ {\"a\": [1, 2, // line\n 3], \"b\": {}} /* end */",
        "[1]/*",   "[[[[{\"x\":[[]]}]]]]",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!same_as_yajl(good[i], strlen(good[i])))
            fail_msg("refused: %s", good[i]);
    }
}

static void test_errors_same_as_yajl(void **state)
{
    (void)state;
    const char *bad[] = {
        "",         " \n ",  "{\"a\":[1,2", "[1,2,]",  "{\"a\":1,}",  "{\"a\":1} x", "[1] [2]",
        "[01]",     "[1.]",  "-",           "nul",     "{'a':1}",     "[\"a\tb\"]",  "[\"\xff\"]",
        "{\"a\"}",  "{1:2}", "[\"\\x\"]",   "/* open", "[\"\\u12\"]", "]",           "{\"a\":1]",
        "\"unterm",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (same_as_yajl(bad[i], strlen(bad[i])))
            fail_msg("accepted: %s", bad[i]);
    }
}

static void test_nul_and_length(void **state)
{
    (void)state;
    char eb[128];
    assert_null(bp_json_parse("{\"a\":1}\0{}", 10, eb, sizeof(eb)));
    assert_non_null(strstr(eb, "NUL byte at offset 7"));
    assert_null(bp_json_parse("\"a\0b\"", 5, eb, sizeof(eb)));
    assert_null(bp_json_parse("/* \0 */ 1", 9, NULL, 0));
    assert_null(bp_json_parse(NULL, 3, eb, sizeof(eb)));
    assert_null(bp_json_parse(NULL, 0, eb, sizeof(eb)));
    assert_non_null(strstr(eb, "premature EOF"));

    /* len is honoured when the text goes on past it, and when it is not terminated. */
    yajl_val v = bp_json_parse("{\"result\":7}GARBAGE", 12, eb, sizeof(eb));
    assert_non_null(v);
    assert_int_equal(YAJL_GET_INTEGER(v->u.object.values[0]), 7);
    assert_string_equal(eb, "");
    bp_json_free(v);
    char *raw = unterminated("12345", 5);
    v = bp_json_parse(raw, 5, NULL, 0);
    assert_true(YAJL_IS_INTEGER(v) && YAJL_GET_INTEGER(v) == 12345);
    bp_json_free(v);
    free(raw);
    bp_json_free(NULL);
}

typedef struct num_case {
    const char *text;
    unsigned flags;
    long long i;
} num_case;

/* Strings without escapes point into the text, NUL over their closing quote; escaped ones
 * and numbers are copies; keys likewise. */
static void test_inplace_strings(void **state)
{
    (void)state;
    char text[] = "{\"hash\":\"0xAb\",\"e\\u0041\":\"a\\nb\",\"n\":12,\"l\":[\"\",\"x\"]}";
    size_t len = strlen(text);
    yajl_val v = bp_json_parse_inplace(text, len, NULL, 0);
    assert_non_null(v);
    assert_ptr_equal(v->u.object.keys[0], text + 2);
    assert_ptr_equal(v->u.object.values[0]->u.string, text + 9);
    assert_string_equal(text + 9, "0xAb");
    assert_int_equal(bp_json_strlen(v->u.object.values[0]), 4);
    assert_string_equal(v->u.object.keys[1], "eA");
    assert_true(v->u.object.keys[1] < text || v->u.object.keys[1] >= text + len);
    assert_string_equal(v->u.object.values[1]->u.string, "a\nb");
    assert_int_equal(bp_json_strlen(v->u.object.values[1]), 3);
    yajl_val l = v->u.object.values[3];
    assert_string_equal(l->u.array.values[0]->u.string, "");
    assert_int_equal(bp_json_strlen(l->u.array.values[0]), 0);
    assert_ptr_equal(l->u.array.values[1]->u.string, text + len - 4);
    assert_int_equal(text[len - 1], '}'); /* bytes that are not closing quotes stay */
    bp_json_free(v);

    char bad[] = "{\"a\":\"b\",\"c\" 1}", eb[256];
    char orig[sizeof(bad)];
    memcpy(orig, bad, sizeof(bad));
    assert_null(bp_json_parse_inplace(bad, strlen(bad), eb, sizeof(eb)));
    assert_memory_equal(bad, orig, sizeof(bad)); /* refused: the text is as given */
    assert_non_null(strstr(eb, "\"c\" 1}"));     /* and yajl's excerpt quotes it */
}

static void test_number_flags(void **state)
{
    (void)state;
    const unsigned I = YAJL_NUMBER_INT_VALID, D = YAJL_NUMBER_DOUBLE_VALID;
    const num_case cases[] = {
        {"0", I | D, 0},
        {"-0", I | D, 0},
        {"-1", I | D, -1},
        {"9223372036854775807", I | D, LLONG_MAX},
        {"-9223372036854775807", I | D, -LLONG_MAX},
        {"9223372036854775808", D, LLONG_MAX},
        {"-9223372036854775808", D, LLONG_MIN},
        {"9223372036854775810", D, LLONG_MAX},
        {"123456789012345678901234567890", D, LLONG_MAX},
        {"1.5", D, LLONG_MAX},
        {"-0.0", D, LLONG_MIN},
        {"1E2", D, LLONG_MAX},
        {"1e400", 0, LLONG_MAX},
        {"1e-400", 0, LLONG_MAX},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const num_case *c = &cases[k];
        yajl_val v = bp_json_parse(c->text, strlen(c->text), NULL, 0);
        assert_true(YAJL_IS_NUMBER(v));
        assert_string_equal(v->u.number.r, c->text);
        if (v->u.number.flags != c->flags || v->u.number.i != c->i)
            fail_msg("%s: flags %u i %lld", c->text, v->u.number.flags, v->u.number.i);
        bp_json_free(v);
        assert_true(same_as_yajl(c->text, strlen(c->text)));
    }
}

static char *nested(size_t depth)
{
    char *s = malloc(2 * depth + 1);
    assert_non_null(s);
    memset(s, '[', depth);
    memset(s + depth, ']', depth);
    s[2 * depth] = '\0';
    return s;
}

static void test_depth_limit(void **state)
{
    (void)state;
    char eb[128];
    char *ok = nested(BP_JSON_MAX_DEPTH), *deep = nested(BP_JSON_MAX_DEPTH + 1);
    assert_true(same_as_yajl(ok, strlen(ok)));
    assert_null(bp_json_parse(deep, strlen(deep), eb, sizeof(eb)));
    assert_string_equal(eb, "nested deeper than 512 levels");
    free(ok);
    free(deep);
}

/* Many siblings at several levels: the scratch stack grows past its first part and the
 * arena past its first chunk (tiny numbers make a tree many times the text). */
static void test_big_documents(void **state)
{
    (void)state;
    bp_buf b;
    bp_buf_init(&b, 0);
    assert_int_equal(bp_buf_puts(&b, "{\"n\":["), 0);
    for (int i = 0; i < 20000; i++)
        assert_int_equal(bp_buf_printf(&b, "%s%d", i ? "," : "", i % 10), 0);
    assert_int_equal(bp_buf_puts(&b, "],\"objs\":["), 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(
            bp_buf_printf(&b, "%s{\"k\":\"v%d\",\"a\":[%d,\"x\",null]}", i ? "," : "", i, i), 0);
    assert_int_equal(bp_buf_puts(&b, "],\"s\":\"end\"}"), 0);
    assert_true(same_as_yajl(b.data, b.len));
    yajl_val v = bp_json_parse(b.data, b.len, NULL, 0);
    const char *path[] = {"objs", NULL};
    yajl_val objs = yajl_tree_get(v, path, yajl_t_array);
    assert_non_null(objs);
    assert_int_equal(objs->u.array.len, 1000);
    bp_json_free(v);
    bp_buf_release(&b);
}

/* Every token kind, escapes, a surrogate pair, a lone one, UTF-8, comments and numbers at
 * both ends of pieces: split in two at every position, and in three at many. */
#define SAMPLE                                                                                     \
    "/*a*/{\"hash\":\"0xAbCdEf0123456789abcdef\",\"n\":[-0.5e+3,12,0,true,false,null],"            \
    "\"e\\u0041\":\"q\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\\ud800x\\udc00\","            \
    "\"raw\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\", // line\n \"o\":{\"x\":[]} }//end"

static void test_stream_split_everywhere(void **state)
{
    (void)state;
    const char *text = SAMPLE;
    size_t len = strlen(text);
    char *cstr = strndup(text, len), eb[512];
    yajl_val a = yajl_tree_parse(cstr, eb, sizeof(eb));
    assert_non_null(a);
    for (size_t i = 0; i <= len; i++) {
        for (size_t j = i; j <= len; j += (i % 5 == 0 ? 1 : len)) {
            bp_json_stream *s = bp_json_stream_new(NULL, NULL);
            assert_non_null(s);
            size_t cuts[] = {0, i, j, len};
            for (int k = 0; k < 3; k++) {
                char *p = unterminated(text + cuts[k], cuts[k + 1] - cuts[k]);
                assert_int_equal(bp_json_stream_feed(s, p, cuts[k + 1] - cuts[k]), 0);
                free(p);
            }
            yajl_val v = bp_json_stream_finish(s, eb, sizeof(eb));
            if (!v)
                fail_msg("split at %zu and %zu: %s", i, j, eb);
            same_tree(a, v);
            lengths_right(v);
            bp_json_free(v);
            bp_json_stream_free(s);
        }
    }
    assert_true(same_as_yajl(text, len));
    yajl_tree_free(a);
    free(cstr);
}

/* The string's bytes (with NULs) from every parser; yajl_tree's up to its first NUL. */
static void string_is(const char *json, const char *want, size_t want_len)
{
    assert_true(same_as_yajl(json, strlen(json)));
    yajl_val v = bp_json_parse(json, strlen(json), NULL, 0);
    assert_true(YAJL_IS_STRING(v));
    assert_int_equal(bp_json_strlen(v), want_len);
    assert_memory_equal(v->u.string, want, want_len);
    bp_json_free(v);
}

/* yajl_string_decode's rules, which Debian's yajl has patched (CVE-2017-16516): a high
 * surrogate not followed by \u is "?" and the byte after it is kept. */
static void test_escapes_and_surrogates(void **state)
{
    (void)state;
    string_is("\"\\ud800\"", "?", 1);
    string_is("\"\\uD800x\"", "?x", 2);
    string_is("\"\\uD800\\n\"", "?\n", 2);
    string_is("\"\\uD800\\\\\"", "?\\", 2);
    string_is("\"\\uD800\\u0041\"", "\xf0\x90\x81\x81", 4); /* joined whatever follows */
    string_is("\"\\uD800\\uD800\\u0041\"",
              "\xf0\x90\x80\x80"
              "A",
              5);
    string_is("\"\\uDBFF\\uDFFF\"", "\xf4\x8f\xbf\xbf", 4);
    string_is("\"\\uDC00z\"", "\xed\xb0\x80z", 4); /* lone low: 3 bytes */
    string_is("\"a\\u0000b\"", "a\0b", 3);
    string_is("\"\\u0080\\u07FF\\u0800\\uffff\"", "\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf", 10);
    string_is("\"\xc0\x80\xf7\xbf\xbf\xbf\xed\xa0\x80\x7f\"",
              "\xc0\x80\xf7\xbf\xbf\xbf\xed\xa0\x80\x7f", 10);
    const char *bad[] = {"\"\\x\"",   "\"\\u12G4\"", "\"\\U0041\"", "\"\xf8\"",  "\"\xe2\x82\"",
                         "\"\xc3(\"", "\"\x80\"",    "\"a\x1f\"",   "\"\\\x01\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (same_as_yajl(bad[i], strlen(bad[i])))
            fail_msg("accepted: %s", bad[i]);
}

/* Comments anywhere whitespace may be; after the value, what is still open at the end (a
 * comment, even a string) is accepted, as yajl completes the text with one space. */
static void test_comments_and_the_end(void **state)
{
    (void)state;
    const char *good[] = {
        "1 /* x", "1 //",    "1//x",         "[1]/*/",         "{\"a\":1} /* a *",        "1 \"abc",
        "[1] \"", "// c\n1", "/* * / **/ 1", "[1 /* x */ ,2]", "{\"a\" /*c*/ : /*d*/ 1}", "\v1\f",
        "1/**/"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!same_as_yajl(good[i], strlen(good[i])))
            fail_msg("refused: %s", good[i]);
    const char *bad[] = {
        "1 /",  "1/",  "/**/", "// 1",      "/ 1",    "1 \"ab\\",        "1 \"\\u12", "1 \"a\tb",
        "1 tr", "1 -", "1 /x", "1 \"abc\"", "[1 /x]", "\xef\xbb\xbf\x31"}; /* a BOM, then 1 (clang:
                                                                              no concatenation) */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (same_as_yajl(bad[i], strlen(bad[i])))
            fail_msg("accepted: %s", bad[i]);
}

/* Each kind of error, its offset and its excerpt, from the whole text and from pieces. */
/* ops->skip: "transactions" under the result (level 2) and the array's element 1 of a top
 * array leave no node and no key; what is around them is whole, in any piece size. */
static bool skip_some(void *ud, const bp_json_stream *s)
{
    (void)ud;
    size_t level = bp_json_stream_depth(s) - 1;
    const char *name = bp_json_stream_name(s, level);
    if (level == 2 && name && strcmp(name, "transactions") == 0)
        return true;
    return level == 1 && bp_json_stream_is_array(s, 0) && bp_json_stream_index(s, 1) == 1;
}

static yajl_val skip_parse(const char *text, size_t piece)
{
    static const bp_json_stream_ops ops = {.skip = skip_some};
    bp_json_stream *s = bp_json_stream_new(&ops, NULL);
    assert_non_null(s);
    size_t len = strlen(text);
    for (size_t at = 0; at < len; at += piece) {
        size_t n = len - at < piece ? len - at : piece;
        char *p = unterminated(text + at, n);
        int rc = bp_json_stream_feed(s, p, n);
        free(p);
        assert_int_equal(rc, 0);
    }
    char eb[256];
    yajl_val v = bp_json_stream_finish(s, eb, sizeof(eb));
    bp_json_stream_free(s);
    if (!v)
        fail_msg("%s", eb);
    return v;
}

static void test_stream_skip(void **state)
{
    (void)state;
    const char *doc = "{\"id\":0,\"result\":{\"number\":\"0x1\",\"transactions\":[\"0xaa\",{\"a\":"
                      "[1,{\"b\":null}],\"c\":true},[2.5,\"x\"],[]],\"hash\":\"0xbb\"},"
                      "\"tail\":[{\"transactions\":[7]}]}";
    const char *arr = "[{\"k\":1},{\"k\":[2,{\"z\":[]}]},{\"k\":3},4]";
    const size_t pieces[] = {1, 3, 4096};
    for (size_t k = 0; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
        yajl_val v = skip_parse(doc, pieces[k]);
        const char *res[] = {"result", NULL}, *tail[] = {"tail", NULL};
        yajl_val r = yajl_tree_get(v, res, yajl_t_object);
        assert_non_null(r);
        assert_int_equal(r->u.object.len, 2);
        assert_string_equal(r->u.object.keys[0], "number");
        assert_string_equal(r->u.object.keys[1], "hash");
        assert_string_equal(YAJL_GET_STRING(r->u.object.values[1]), "0xbb");
        yajl_val t = yajl_tree_get(v, tail, yajl_t_array);
        assert_non_null(t); /* "transactions" at level 3 stays */
        assert_int_equal(t->u.array.len, 1);
        assert_int_equal(t->u.array.values[0]->u.object.len, 1);
        assert_int_equal(v->u.object.len, 3);
        bp_json_free(v);

        v = skip_parse(arr, pieces[k]);
        assert_int_equal(v->u.array.len, 3);
        assert_int_equal(YAJL_GET_INTEGER(v->u.array.values[1]->u.object.values[0]), 3);
        assert_int_equal(YAJL_GET_INTEGER(v->u.array.values[2]), 4);
        bp_json_free(v);
    }
}

static void test_error_messages(void **state)
{
    (void)state;
    const struct {
        const char *text, *want;
    } cases[] = {
        {"[1, @]", "lexical error: invalid char in json text at offset 4: [1, @]"},
        {"[1, tru]", "lexical error: invalid string in json text at offset 7"},
        {"[\"a\x01\"]", "lexical error: invalid character inside string at offset 3"},
        {"[\"\xff\"]", "lexical error: invalid bytes in UTF8 string at offset 2"},
        {"[\"\\x\"]", "before a character which it may not at offset 3"},
        {"[\"\\u00G0\"]", "after '\\u' inside string at offset 6"},
        {"[1.]", "lexical error: malformed number at offset 1"},
        {"[01]", "lexical error: malformed number at offset 1"},
        {"[1 /x]", "lexical error: invalid comment format"},
        {"{\"a\":[1,2", "parse error: premature EOF at offset 9: {\"a\":[1,2"},
        {"", "parse error: premature EOF at offset 0"},
        {"{\"a\":1} x", "parse error: trailing garbage at offset 8: {\"a\":1} x"},
        {"[1] [2]", "parse error: trailing garbage at offset 4"},
        {"[1 2]", "parse error: after array element, I expect ',' or ']' at offset 3"},
        {"{\"a\":1 2}", "parse error: after key and value, inside map, I expect ',' or '}'"},
        {"{\"a\" 1}", "parse error: object key and value must be separated by a colon"},
        {"{1:2}", "parse error: invalid object key (must be a string) at offset 1"},
        {"[1,]", "parse error: unallowed token at this point in JSON text at offset 3"},
        {"\n\t[\n1 x", "at offset 6:   [ 1 x"}, /* one line: control chars as spaces */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char eb[512];
        size_t len = strlen(cases[i].text);
        assert_null(bp_json_parse(cases[i].text, len, eb, sizeof(eb)));
        if (!strstr(eb, cases[i].want))
            fail_msg("%s: got \"%s\", want \"%s\"", cases[i].text, eb, cases[i].want);
        assert_null(stream_parse(cases[i].text, len, 1, eb, sizeof(eb)));
        message_ok(eb);
        const char *at = strstr(cases[i].want, " at offset "); /* same offset, own excerpt */
        char where[64];
        snprintf(where, sizeof(where), "%.*s", at ? (int)strcspn(at, ":") : 0, at ? at : "");
        if (!strstr(eb, where))
            fail_msg("%s in pieces: got \"%s\"", cases[i].text, eb);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conformance_same_as_yajl),
        cmocka_unit_test(test_shapes_same_as_yajl),
        cmocka_unit_test(test_errors_same_as_yajl),
        cmocka_unit_test(test_nul_and_length),
        cmocka_unit_test(test_inplace_strings),
        cmocka_unit_test(test_number_flags),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_big_documents),
        cmocka_unit_test(test_stream_split_everywhere),
        cmocka_unit_test(test_escapes_and_surrogates),
        cmocka_unit_test(test_comments_and_the_end),
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_stream_skip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
