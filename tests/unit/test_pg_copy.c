/* test_pg_copy.c - PostgreSQL binary COPY encoding: header/trailer, bigint bounds, numeric
 * base-10000 digits (0, u64 max, 2^256-1), bytea from hex, jsonb, NULLs, sticky failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "blockpipe/error.h"
#include "sink/pg_copy.h"
#include "util/hex.h"

static bp_buf g_buf;

static bp_pgcopy fresh(void)
{
    bp_buf_reset(&g_buf);
    return (bp_pgcopy){.buf = &g_buf};
}

static void expect_bytes(const unsigned char *want, size_t n)
{
    assert_int_equal(g_buf.len, n);
    assert_memory_equal(g_buf.data, want, n);
}

static void test_header_trailer(void **state)
{
    (void)state;
    bp_pgcopy c = fresh();
    bp_pgcopy_header(&c);
    bp_pgcopy_row(&c, 2);
    bp_pgcopy_null(&c);
    bp_pgcopy_text(&c, "ab");
    bp_pgcopy_trailer(&c);
    static const unsigned char want[] = {
        'P', 'G', 'C', 'O', 'P',  'Y',  '\n', 0xff, '\r', '\n', 0, 0, 0,   0,   0,    0,   0,
        0,   0,   0,   2,   0xff, 0xff, 0xff, 0xff, 0,    0,    0, 2, 'a', 'b', 0xff, 0xff};
    assert_int_equal(c.rc, 0);
    expect_bytes(want, sizeof(want));
}

static void test_bigint(void **state)
{
    (void)state;
    bp_pgcopy c = fresh();
    bp_pgcopy_i64(&c, 0x0102030405060708ull, "x");
    static const unsigned char want[] = {0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8};
    expect_bytes(want, sizeof(want));
    bp_pgcopy_i64(&c, (uint64_t)INT64_MAX + 1, "blocks.gas_limit");
    assert_int_equal(c.rc, BP_EINVAL);
    assert_string_equal(c.bad_column, "blocks.gas_limit");
    bp_pgcopy_text(&c, "ignored after a failure");
    assert_int_equal(g_buf.len, sizeof(want));
}

static void test_numeric(void **state)
{
    (void)state;
    bp_pgcopy c = fresh();
    bp_pgcopy_num_u64(&c, 0);
    static const unsigned char zero[] = {0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0};
    expect_bytes(zero, sizeof(zero));

    c = fresh();
    bp_pgcopy_num_u64(&c, UINT64_MAX); /* 1844 6744 0737 0955 1615 */
    static const unsigned char max[] = {0, 0, 0,  18,   0,    5, 0,    4, 0,    0,    0,
                                        0, 7, 52, 0x1a, 0x58, 2, 0xe1, 3, 0xbb, 0x06, 0x4f};
    expect_bytes(max, sizeof(max));

    c = fresh();
    bp_qty q = {.set = true, .v = {{UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX}}};
    bp_pgcopy_qty(&c, &q); /* 78 digits: 20 base-10000 digits, the first 11 */
    assert_int_equal(c.rc, 0);
    const unsigned char *p = (const unsigned char *)g_buf.data;
    assert_int_equal(g_buf.len, 4 + 8 + 2 * 20);
    assert_int_equal(p[5], 20); /* ndigits */
    assert_int_equal(p[7], 19); /* weight */
    assert_int_equal(p[12] * 256 + p[13], 11);
    /* 2^256-1 ends in ...639935: last digit group 9935 */
    assert_int_equal(p[g_buf.len - 2] * 256 + p[g_buf.len - 1], 9935);

    c = fresh();
    bp_qty unset = {0};
    bp_pgcopy_qty(&c, &unset);
    static const unsigned char null[] = {0xff, 0xff, 0xff, 0xff};
    expect_bytes(null, sizeof(null));
}

static void test_bytea_jsonb(void **state)
{
    (void)state;
    bp_pgcopy c = fresh();
    bp_pgcopy_hex(&c, "0x00aBff", "h");
    bp_pgcopy_hex(&c, "0x", "h");
    bp_pgcopy_jsonb(&c, "[]");
    static const unsigned char want[] = {0, 0, 0, 3, 0x00, 0xab, 0xff, 0,   0,
                                         0, 0, 0, 0, 0,    3,    1,    '[', ']'};
    assert_int_equal(c.rc, 0);
    expect_bytes(want, sizeof(want));
    bp_pgcopy_hex(&c, "0x123", "logs.data"); /* odd length */
    assert_int_equal(c.rc, BP_EINVAL);
    assert_string_equal(c.bad_column, "logs.data");
    assert_int_equal(g_buf.len, sizeof(want));
    c = fresh();
    bp_pgcopy_hex(&c, "0xzz", "t");
    assert_int_equal(c.rc, BP_EINVAL);
    c = fresh();
    bp_pgcopy_hex(&c, "12", "t");
    assert_int_equal(c.rc, BP_EINVAL);
}

int main(void)
{
    bp_buf_init(&g_buf, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_trailer),
        cmocka_unit_test(test_bigint),
        cmocka_unit_test(test_numeric),
        cmocka_unit_test(test_bytea_jsonb),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    bp_buf_release(&g_buf);
    return rc;
}
