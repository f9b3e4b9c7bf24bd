/* test_jsonw.c - the JSON writer: every byte's escape in both spellings, caps, and the
 * comma-placing writer's documents and refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "blockpipe/error.h"
#include "util/buf.h"
#include "util/hex.h"
#include "util/jsonw.h"

static void assert_quoted(const char *s, size_t n, enum bp_jsonw_esc esc, const char *want)
{
    bp_buf b;
    bp_buf_init(&b, 0);
    assert_int_equal(bp_jsonw_quote_n(&b, s, n, esc), 0);
    assert_string_equal(b.data, want);
    assert_int_equal(b.len, strlen(want));
    bp_buf_release(&b);
}

/* The escape of one byte by the rules jsonw.h states, written out independently. */
static void expected_escape(unsigned c, enum bp_jsonw_esc esc, char *out)
{
    if (c == '"' || c == '\\')
        sprintf(out, "\"\\%c\"", c);
    else if (esc == BP_JSONW_ESC_SHORT && c == '\n')
        strcpy(out, "\"\\n\"");
    else if (esc == BP_JSONW_ESC_SHORT && c == '\r')
        strcpy(out, "\"\\r\"");
    else if (esc == BP_JSONW_ESC_SHORT && c == '\t')
        strcpy(out, "\"\\t\"");
    else if (c < 0x20)
        sprintf(out, "\"\\u%04x\"", c);
    else
        sprintf(out, "\"%c\"", c);
}

static void test_every_byte(void **state)
{
    (void)state;
    for (unsigned c = 0; c < 256; c++) {
        for (int esc = BP_JSONW_ESC_U; esc <= BP_JSONW_ESC_SHORT; esc++) {
            char s[1] = {(char)c}, want[16];
            expected_escape(c, (enum bp_jsonw_esc)esc, want);
            assert_quoted(s, 1, (enum bp_jsonw_esc)esc, want);
        }
    }
}

static void test_strings(void **state)
{
    (void)state;
    assert_quoted("", 0, BP_JSONW_ESC_U, "\"\"");
    assert_quoted("0xabc", 5, BP_JSONW_ESC_SHORT, "\"0xabc\"");
    assert_quoted("a\"b\\c\nd\x01\xc3\xa9\x7f", 11, BP_JSONW_ESC_U,
                  "\"a\\\"b\\\\c\\u000ad\\u0001\xc3\xa9\x7f\"");
    assert_quoted("a\"b\\c\nd\x01\xc3\xa9\x7f", 11, BP_JSONW_ESC_SHORT,
                  "\"a\\\"b\\\\c\\nd\\u0001\xc3\xa9\x7f\"");
    assert_quoted("a\0b", 3, BP_JSONW_ESC_U, "\"a\\u0000b\"");
    assert_quoted("\r\t", 2, BP_JSONW_ESC_SHORT, "\"\\r\\t\"");

    bp_buf b;
    bp_buf_init(&b, 0);
    assert_int_equal(bp_jsonw_quote(&b, NULL, BP_JSONW_ESC_U), 0);
    assert_int_equal(bp_jsonw_quote(&b, "x\ty", BP_JSONW_ESC_SHORT), 0);
    assert_int_equal(bp_jsonw_quote(&b, "x\ty", BP_JSONW_ESC_U), 0);
    assert_string_equal(b.data, "null\"x\\ty\"\"x\\u0009y\"");
    bp_buf_release(&b);

    /* The cap holds for both paths, plain and escaped. */
    bp_buf_init(&b, 6);
    assert_int_equal(bp_jsonw_quote(&b, "abcd", BP_JSONW_ESC_U), 0);
    assert_int_equal(bp_jsonw_quote(&b, "e", BP_JSONW_ESC_U), BP_ETOOBIG);
    bp_buf_reset(&b);
    assert_int_equal(bp_jsonw_quote(&b, "\n\n", BP_JSONW_ESC_U), BP_ETOOBIG);
    assert_true(b.len <= 6);
    bp_buf_release(&b);
}

static void test_writer_document(void **state)
{
    (void)state;
    bp_buf b;
    bp_buf_init(&b, 0);
    bp_jsonw w;
    bp_jsonw_init(&w, &b, BP_JSONW_ESC_U);
    bp_u256 max = {{UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX}}, wei;
    bp_u256_from_u64(&wei, 1000000000000000000ULL);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "head");
    bp_jsonw_u64(&w, UINT64_MAX);
    bp_jsonw_key(&w, "delta");
    bp_jsonw_i64(&w, INT64_MIN);
    bp_jsonw_key(&w, "wei");
    bp_jsonw_u256(&w, &wei);
    bp_jsonw_key(&w, "max");
    bp_jsonw_u256(&w, &max);
    bp_jsonw_key(&w, "list");
    bp_jsonw_begin_array(&w);
    bp_jsonw_bool(&w, true);
    bp_jsonw_bool(&w, false);
    bp_jsonw_null(&w);
    bp_jsonw_str(&w, "q\"");
    bp_jsonw_str(&w, NULL);
    bp_jsonw_begin_object(&w);
    bp_jsonw_end_object(&w);
    bp_jsonw_begin_array(&w);
    bp_jsonw_end_array(&w);
    bp_jsonw_raw(&w, "1.500", 5);
    bp_jsonw_end_array(&w);
    bp_jsonw_key(&w, "k\n");
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "a");
    bp_jsonw_u64(&w, 0);
    bp_jsonw_end_object(&w);
    bp_jsonw_end_object(&w);
    assert_int_equal(bp_jsonw_finish(&w), 0);
    assert_string_equal(
        b.data, "{\"head\":18446744073709551615,\"delta\":-9223372036854775808,"
                "\"wei\":\"1000000000000000000\",\"max\":\"115792089237316195423570985008687907853"
                "269984665640564039457584007913129639935\",\"list\":[true,false,null,\"q\\\"\","
                "null,{},[],1.500],\"k\\u000a\":{\"a\":0}}");
    bp_buf_release(&b);
}

/* Writes a few calls through a fresh writer and returns bp_jsonw_finish. */
enum op { OBJ, END_OBJ, ARR, END_ARR, KEY, VAL };
static int run(const enum op *ops, size_t n, char *text, size_t cap)
{
    bp_buf b;
    bp_buf_init(&b, 0);
    bp_jsonw w;
    bp_jsonw_init(&w, &b, BP_JSONW_ESC_U);
    for (size_t i = 0; i < n; i++) {
        switch (ops[i]) {
        case OBJ:
            bp_jsonw_begin_object(&w);
            break;
        case END_OBJ:
            bp_jsonw_end_object(&w);
            break;
        case ARR:
            bp_jsonw_begin_array(&w);
            break;
        case END_ARR:
            bp_jsonw_end_array(&w);
            break;
        case KEY:
            bp_jsonw_key(&w, "k");
            break;
        case VAL:
            bp_jsonw_u64(&w, 1);
            break;
        }
    }
    int rc = bp_jsonw_finish(&w);
    snprintf(text, cap, "%s", b.data ? b.data : "");
    bp_buf_release(&b);
    return rc;
}

#define RUN(want_rc, want_text, ...)                                                               \
    do {                                                                                           \
        const enum op ops_[] = {__VA_ARGS__};                                                      \
        char text_[128];                                                                           \
        assert_int_equal(run(ops_, sizeof(ops_) / sizeof(ops_[0]), text_, sizeof(text_)),          \
                         want_rc);                                                                 \
        assert_string_equal(text_, want_text);                                                     \
    } while (0)

static void test_writer_refusals(void **state)
{
    (void)state;
    RUN(0, "1", VAL);
    RUN(0, "[1,1,[]]", ARR, VAL, VAL, ARR, END_ARR, END_ARR);
    RUN(0, "{\"k\":1,\"k\":[1]}", OBJ, KEY, VAL, KEY, ARR, VAL, END_ARR, END_OBJ);
    /* The first mistake stops the document; what was written before it stays. */
    RUN(BP_EINVAL, "1", VAL, VAL);                           /* two top-level values */
    RUN(BP_EINVAL, "{", OBJ, VAL);                           /* a value without its key */
    RUN(BP_EINVAL, "[", ARR, KEY);                           /* a key in an array */
    RUN(BP_EINVAL, "{\"k\":", OBJ, KEY, KEY);                /* two keys */
    RUN(BP_EINVAL, "{\"k\":", OBJ, KEY, END_OBJ);            /* a key without its value */
    RUN(BP_EINVAL, "[", ARR, END_OBJ);                       /* the wrong closer */
    RUN(BP_EINVAL, "", END_ARR);                             /* nothing to close */
    RUN(BP_EINVAL, "[[]]", ARR, ARR, END_ARR, END_ARR, VAL); /* a second top-level value */
    RUN(BP_EINVAL, "{\"k\":1", OBJ, KEY, VAL);               /* not closed */
    RUN(BP_EINVAL, "", KEY);                                 /* a key at the top */
    RUN(BP_EINVAL, "");                                      /* no value at all */
}

static void test_writer_depth_and_cap(void **state)
{
    (void)state;
    bp_buf b;
    bp_buf_init(&b, 0);
    bp_jsonw w;
    bp_jsonw_init(&w, &b, BP_JSONW_ESC_U);
    for (int i = 0; i < BP_JSONW_DEPTH_MAX; i++)
        bp_jsonw_begin_array(&w);
    assert_int_equal(w.rc, 0);
    bp_jsonw_begin_array(&w);
    assert_int_equal(bp_jsonw_finish(&w), BP_EINVAL);
    assert_int_equal(b.len, BP_JSONW_DEPTH_MAX);
    bp_buf_release(&b);

    /* A full buffer is sticky: nothing after it is written, finish names the cap. */
    bp_buf_init(&b, 8);
    bp_jsonw_init(&w, &b, BP_JSONW_ESC_U);
    bp_jsonw_begin_array(&w);
    bp_jsonw_str(&w, "abcdefgh");
    bp_jsonw_u64(&w, 1);
    bp_jsonw_end_array(&w);
    assert_int_equal(bp_jsonw_finish(&w), BP_ETOOBIG);
    assert_string_equal(b.data, "[");
    bp_buf_release(&b);
}

/* Request bytes quoted in an API error: well-formed UTF-8 stays, every other byte is '?'. */
static void test_utf8_fix(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain ascii", "plain ascii"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"/api/v1/streaming/\x9c\x9c", "/api/v1/streaming/??"}, /* lone continuation bytes */
        {"\xc0\xaf", "??"},                                     /* overlong '/' */
        {"\xed\xa0\x80", "???"},                                /* a surrogate */
        {"\xf4\x90\x80\x80", "????"},                           /* past U+10FFFF */
        {"\xe2\x82", "??"},                                     /* cut short by the end */
        {"\xe2\x82x", "??x"},                                   /* cut short by ASCII */
        {"\xff\xfe", "??"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[64];
        snprintf(buf, sizeof(buf), "%s", cases[i].in);
        bp_jsonw_utf8_fix(buf);
        assert_string_equal(buf, cases[i].out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_byte),           cmocka_unit_test(test_strings),
        cmocka_unit_test(test_writer_document),      cmocka_unit_test(test_writer_refusals),
        cmocka_unit_test(test_writer_depth_and_cap), cmocka_unit_test(test_utf8_fix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
