/* test_hex.c - hex quantities, u256 arithmetic and decimal conversion at their boundaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "blockpipe/error.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/hex.h"

static int u64(const char *s, uint64_t *out)
{
    return bp_hex_to_u64(s, strlen(s), out);
}

static int u256(const char *s, bp_u256 *out)
{
    return bp_hex_to_u256(s, strlen(s), out);
}

static void assert_dec(const bp_u256 *v, const char *want)
{
    char out[BP_U256_DEC_MAX];
    size_t n = bp_u256_to_dec(v, out);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
}

static void test_u64_boundaries(void **state)
{
    (void)state;
    uint64_t v = 1;
    assert_int_equal(u64("0x0", &v), 0);
    assert_true(v == 0);
    assert_int_equal(u64("0xffffffffffffffff", &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(u64("0xFFFFFFFFFFFFFFFF", &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(u64("0x0000000000000000000000ffffffffffffffff", &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(u64("0x10000000000000000", &v), BP_ETOOBIG);
    assert_int_equal(u64("0x00001", &v), 0);
    assert_true(v == 1);
    assert_int_equal(u64("0xAbC", &v), 0);
    assert_true(v == 0xabc);
    assert_int_equal(u64("0X10", &v), 0);
    assert_true(v == 16);
}

static void test_u64_rejects(void **state)
{
    (void)state;
    uint64_t v;
    const char *bad[] = {"",
                         "0",
                         "0x",
                         "x1",
                         "12",
                         "0xg",
                         "0x1g",
                         "0x-1",
                         "0x 1",
                         " 0x1",
                         "0x1 ",
                         "0x+1",
                         "0xfffffffffffffffz"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(u64(bad[i], &v), BP_EPARSE);
    assert_int_equal(bp_hex_to_u64(NULL, 0, &v), BP_EPARSE);
    /* Length is honoured exactly: no reading past len even without a NUL. */
    assert_int_equal(bp_hex_to_u64("0x12zz", 4, &v), 0);
    assert_true(v == 0x12);
    char nonul[3] = {'0', 'x', '7'};
    assert_int_equal(bp_hex_to_u64(nonul, 3, &v), 0);
    assert_true(v == 7);
    /* An embedded NUL is not a digit. */
    assert_int_equal(bp_hex_to_u64("0x1\0002", 5, &v), BP_EPARSE);
}

static void test_u256_boundaries(void **state)
{
    (void)state;
    bp_u256 v;
    assert_int_equal(u256("0x0", &v), 0);
    assert_dec(&v, "0");
    assert_int_equal(u256("0xffffffffffffffff", &v), 0);
    assert_dec(&v, "18446744073709551615");
    assert_true(bp_u256_fits_u64(&v));
    assert_int_equal(u256("0x10000000000000000", &v), 0);
    assert_dec(&v, "18446744073709551616");
    assert_false(bp_u256_fits_u64(&v));
    char max[2 + 64 + 1] = "0x";
    memset(max + 2, 'f', 64);
    max[66] = '\0';
    assert_int_equal(u256(max, &v), 0);
    assert_dec(&v,
               "115792089237316195423570985008687907853269984665640564039457584007913129639935");
    char over[2 + 65 + 1] = "0x1";
    memset(over + 3, '0', 64);
    over[67] = '\0';
    assert_int_equal(u256(over, &v), BP_ETOOBIG);
    /* 64 significant digits after many leading zeros still fit. */
    char padded[2 + 10 + 64 + 1] = "0x0000000000";
    memset(padded + 12, 'F', 64);
    padded[76] = '\0';
    assert_int_equal(u256(padded, &v), 0);
    assert_true(v.w[3] == UINT64_MAX && v.w[0] == UINT64_MAX);
    assert_int_equal(u256("0x", &v), BP_EPARSE);
    assert_int_equal(u256("", &v), BP_EPARSE);
    assert_int_equal(u256("c70d815d562d3cfa955", &v), BP_EPARSE);
    assert_int_equal(u256("0xc70d815d562d3cfa95x", &v), BP_EPARSE);
    assert_int_equal(u256("0xC70D815D562D3CFA955", &v), 0);
    assert_dec(&v, "58750003716598352816469");
}

static void test_is_data(void **state)
{
    (void)state;
    assert_true(bp_hex_is_data("0x", 2));
    assert_true(bp_hex_is_data("0x00ffAB", 8));
    assert_false(bp_hex_is_data("0x0g", 4));
    assert_false(bp_hex_is_data("00", 2));
    assert_false(bp_hex_is_data("", 0));
}

static void round_trip_dec(const char *dec)
{
    bp_u256 v;
    assert_int_equal(bp_u256_from_dec(dec, strlen(dec), &v), 0);
    assert_dec(&v, dec);
    char hex[67];
    bp_u256 back;
    size_t n = bp_u256_to_hex(&v, hex);
    assert_int_equal(bp_hex_to_u256(hex, n, &back), 0);
    assert_int_equal(bp_u256_cmp(&v, &back), 0);
}

static void test_dec_round_trips(void **state)
{
    (void)state;
    round_trip_dec("0");
    round_trip_dec("1");
    round_trip_dec("9999999999999999999");
    round_trip_dec("10000000000000000000");
    round_trip_dec("18446744073709551615");
    round_trip_dec("18446744073709551616");
    round_trip_dec("58750003716598352816469");
    round_trip_dec("109000000000000000000");
    round_trip_dec("7800000000000000000000000000000");
    round_trip_dec(
        "115792089237316195423570985008687907853269984665640564039457584007913129639935");
    bp_u256 v;
    assert_int_equal(bp_u256_from_dec("109000000000000000000", 21, &v), 0);
    char hex[67];
    bp_u256_to_hex(&v, hex);
    assert_string_equal(hex, "0x5e8adca7e45940000");
}

static void test_dec_rejects(void **state)
{
    (void)state;
    bp_u256 v;
    const char *over =
        "115792089237316195423570985008687907853269984665640564039457584007913129639936";
    assert_int_equal(bp_u256_from_dec(over, strlen(over), &v), BP_ETOOBIG);
    const char *longer =
        "1157920892373161954235709850086879078532699846656405640394575840079131296399350";
    assert_int_equal(bp_u256_from_dec(longer, strlen(longer), &v), BP_ETOOBIG);
    assert_int_equal(bp_u256_from_dec("", 0, &v), BP_EPARSE);
    assert_int_equal(bp_u256_from_dec("12a", 3, &v), BP_EPARSE);
    assert_int_equal(bp_u256_from_dec("-1", 2, &v), BP_EPARSE);
    assert_int_equal(bp_u256_from_dec("0x10", 4, &v), BP_EPARSE);
    assert_int_equal(bp_u256_from_dec("000042", 6, &v), 0);
    assert_dec(&v, "42");
}

static void test_add_mul_overflow(void **state)
{
    (void)state;
    bp_u256 max = {{UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX}};
    bp_u256 one, out;
    bp_u256_from_u64(&one, 1);
    assert_int_equal(bp_u256_add(&out, &max, &one), 1);
    assert_dec(&out, "0");
    bp_u256 lo = {{UINT64_MAX, 0, 0, 0}};
    assert_int_equal(bp_u256_add(&out, &lo, &one), 0);
    assert_dec(&out, "18446744073709551616");
    assert_int_equal(bp_u256_mul_u64(&out, &max, 1), 0);
    assert_int_equal(bp_u256_cmp(&out, &max), 0);
    assert_int_equal(bp_u256_mul_u64(&out, &max, 2), 1);
    bp_u256 top = {{0, 0, 0, 1ULL << 62}};
    assert_int_equal(bp_u256_mul_u64(&out, &top, 4), 1);
    assert_int_equal(bp_u256_mul_u64(&out, &top, 3), 0);
    assert_int_equal(bp_u256_cmp(&one, &max), -1);
    assert_int_equal(bp_u256_cmp(&max, &one), 1);
}

static void test_to_hex(void **state)
{
    (void)state;
    char out[67];
    assert_int_equal(bp_u64_to_hex(0, out), 3);
    assert_string_equal(out, "0x0");
    bp_u64_to_hex(UINT64_MAX, out);
    assert_string_equal(out, "0xffffffffffffffff");
    bp_u64_to_hex(0x76250, out);
    assert_string_equal(out, "0x76250");
    bp_u256 z = {{0, 0, 0, 0}};
    bp_u256_to_hex(&z, out);
    assert_string_equal(out, "0x0");
    bp_u256 v = {{0, 1, 0, 0}};
    bp_u256_to_hex(&v, out);
    assert_string_equal(out, "0x10000000000000000");
}

static void test_arena(void **state)
{
    (void)state;
    bp_arena *a = bp_arena_new(0);
    assert_non_null(a);
    char *s = bp_arena_strndup_lower(a, "0xABcd", 6);
    assert_string_equal(s, "0xabcd");
    for (int i = 0; i < 1000; i++) {
        void *p = bp_arena_alloc(a, (size_t)i * 7 + 1);
        assert_non_null(p);
        assert_true(((uintptr_t)p & 15) == 0);
        memset(p, 0xab, (size_t)i * 7 + 1);
    }
    void *big = bp_arena_alloc(a, 1 << 20);
    assert_non_null(big);
    int *z = bp_arena_calloc(a, 100, sizeof(int));
    for (int i = 0; i < 100; i++)
        assert_int_equal(z[i], 0);
    assert_null(bp_arena_calloc(a, SIZE_MAX / 2, 4));
    assert_null(bp_arena_alloc(a, SIZE_MAX));
    assert_true(bp_arena_used(a) > (1 << 20));
    bp_arena_free(a);
    bp_arena_free(NULL);
}

static int g_released;

static void count_release(void *p)
{
    g_released++;
    free(p);
}

/* Adopted memory lives as long as the arena (ASan reports a leak or double free otherwise)
 * and declared bytes count in bp_arena_used. */
static void test_arena_adopt(void **state)
{
    (void)state;
    bp_arena *a = bp_arena_new(0);
    assert_non_null(a);
    assert_int_equal(bp_arena_adopt(a, strdup("body")), 0);
    size_t before = bp_arena_used(a);
    assert_int_equal(bp_arena_adopt_fn(a, malloc(10), 1000, count_release), 0);
    assert_int_equal(bp_arena_adopt_fn(a, malloc(10), 0, count_release), 0);
    assert_true(bp_arena_used(a) >= before + 1000);
    assert_int_equal(g_released, 0);
    bp_arena_free(a);
    assert_int_equal(g_released, 2);

    /* Recycling releases adopted memory and keeps the largest chunk within the bound. */
    a = bp_arena_new(0);
    assert_non_null(bp_arena_alloc(a, 100));
    assert_non_null(bp_arena_alloc(a, 1 << 16));
    assert_int_equal(bp_arena_adopt_fn(a, malloc(10), 0, count_release), 0);
    size_t kept = bp_arena_recycle(a, 1 << 20);
    assert_int_equal(g_released, 3);
    assert_true(kept >= (1 << 16));
    assert_int_equal(bp_arena_used(a), 0);
    for (int i = 0; i < 3; i++) /* served from the kept chunk; growth starts over */
        assert_non_null(bp_arena_alloc(a, 1 << 14));
    assert_int_equal(bp_arena_recycle(a, 1024), 0); /* nothing small enough to keep */
    assert_non_null(bp_arena_alloc(a, 10));
    bp_arena_free(a);
}

static void test_buf(void **state)
{
    (void)state;
    bp_buf b;
    bp_buf_init(&b, 10);
    assert_int_equal(bp_buf_puts(&b, "hello"), 0);
    assert_int_equal(bp_buf_printf(&b, "%d", 1234), 0);
    assert_string_equal(b.data, "hello1234");
    assert_int_equal(bp_buf_putc(&b, '!'), 0);
    assert_int_equal(b.len, 10);
    assert_int_equal(bp_buf_putc(&b, 'x'), BP_ETOOBIG);
    assert_int_equal(bp_buf_printf(&b, "%s", "y"), BP_ETOOBIG);
    assert_string_equal(b.data, "hello1234!");
    bp_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    bp_buf_release(&b);
    bp_buf_init(&b, 0);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(bp_buf_append(&b, "abc", 3), 0);
    assert_int_equal(b.len, 30000);
    assert_int_equal(b.data[30000], '\0');
    bp_buf_release(&b);
}

/* The one digit decoder, against the digits spelt out, for every byte. */
static void test_hex_digit(void **state)
{
    (void)state;
    static const char digits[] = "0123456789abcdef", upper[] = "ABCDEF";
    for (unsigned c = 0; c < 256; c++) {
        const char *d = c ? strchr(digits, (int)c) : NULL;
        const char *u = c ? strchr(upper, (int)c) : NULL;
        int want = d ? (int)(d - digits) : u ? 10 + (int)(u - upper) : -1;
        assert_int_equal(bp_hex_digit((unsigned char)c), want);
    }
}

static void test_hex_to_bytes(void **state)
{
    (void)state;
    unsigned char out[8];
    assert_int_equal(bp_hex_to_bytes("0x", 2, out), 0);
    assert_int_equal(bp_hex_to_bytes("0x00fFaB10", 10, out), 4);
    assert_memory_equal(out, "\x00\xff\xab\x10", 4);
    assert_int_equal(bp_hex_to_bytes("0XA0", 4, out), 1);
    assert_int_equal(out[0], 0xa0);
    /* Length is honoured: the digits after len are not read. */
    assert_int_equal(bp_hex_to_bytes("0x12zz", 4, out), 1);
    assert_int_equal(out[0], 0x12);
    const char *bad[] = {"", "0", "00", "x0", "0x1", "0x123", "0xg0", "0x0g", " 0x00", "0x 0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(bp_hex_to_bytes(bad[i], strlen(bad[i]), out), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_u64_boundaries),
        cmocka_unit_test(test_u64_rejects),
        cmocka_unit_test(test_u256_boundaries),
        cmocka_unit_test(test_is_data),
        cmocka_unit_test(test_dec_round_trips),
        cmocka_unit_test(test_dec_rejects),
        cmocka_unit_test(test_add_mul_overflow),
        cmocka_unit_test(test_to_hex),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_arena_adopt),
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_hex_digit),
        cmocka_unit_test(test_hex_to_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
