/* test_histogram.c - bucket bounds, percentile accuracy, concurrent adds, JSON summary. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/buf.h"
#include "util/histogram.h"

static void test_empty(void **state)
{
    (void)state;
    bp_hist h;
    bp_hist_init(&h);
    assert_int_equal(bp_hist_count(&h), 0);
    assert_int_equal(bp_hist_percentile(&h, 50), 0);
    assert_int_equal(bp_hist_max(&h), 0);
    bp_hist_summary s;
    bp_hist_summarize(&h, &s);
    assert_int_equal(s.count, 0);
    assert_int_equal(s.p99, 0);
}

/* Small values are exact; a single value is every percentile. */
static void test_small_exact(void **state)
{
    (void)state;
    bp_hist h;
    bp_hist_init(&h);
    for (uint64_t v = 0; v < 10; v++)
        bp_hist_add(&h, v);
    assert_int_equal(bp_hist_count(&h), 10);
    assert_int_equal(bp_hist_percentile(&h, 0), 0);
    assert_int_equal(bp_hist_percentile(&h, 50), 4);
    assert_int_equal(bp_hist_percentile(&h, 100), 9);
    assert_int_equal(bp_hist_max(&h), 9);

    bp_hist one;
    bp_hist_init(&one);
    bp_hist_add(&one, 123456);
    assert_int_equal(bp_hist_percentile(&one, 1), 123456);
    assert_int_equal(bp_hist_percentile(&one, 99), 123456);
}

/* 1..100000: every percentile within 12.5% above the true value, never below, never
 * above the max. */
static void test_accuracy(void **state)
{
    (void)state;
    bp_hist h;
    bp_hist_init(&h);
    for (uint64_t v = 1; v <= 100000; v++)
        bp_hist_add(&h, v);
    double ps[] = {1, 10, 50, 90, 99, 99.9, 100};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        double want = ps[i] * 1000.0;
        double got = (double)bp_hist_percentile(&h, ps[i]);
        assert_true(got >= want);
        assert_true(got <= want * 1.125 + 1);
        assert_true(got <= 100000);
    }
    bp_hist_summary s;
    bp_hist_summarize(&h, &s);
    assert_int_equal(s.count, 100000);
    assert_int_equal(s.max, 100000);
    assert_true(s.mean > 50000.0 && s.mean < 50001.0);
}

/* The extremes of u64 land in valid buckets. */
static void test_extremes(void **state)
{
    (void)state;
    bp_hist h;
    bp_hist_init(&h);
    bp_hist_add(&h, UINT64_MAX);
    bp_hist_add(&h, (uint64_t)1 << 63);
    bp_hist_add(&h, 16);
    bp_hist_add(&h, 15);
    assert_int_equal(bp_hist_percentile(&h, 25), 15);
    assert_int_equal(bp_hist_percentile(&h, 50), 17); /* bucket 16..17 */
    assert_true(bp_hist_percentile(&h, 75) >= (uint64_t)1 << 63);
    assert_true(bp_hist_percentile(&h, 100) == UINT64_MAX);
}

static void *adder(void *arg)
{
    bp_hist *h = arg;
    for (uint64_t v = 0; v < 50000; v++)
        bp_hist_add(h, v % 1000);
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    bp_hist *h = malloc(sizeof(*h));
    assert_non_null(h);
    bp_hist_init(h);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, adder, h), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(bp_hist_count(h), 200000);
    assert_int_equal(bp_hist_max(h), 999);
    uint64_t p50 = bp_hist_percentile(h, 50);
    assert_true(p50 >= 499 && p50 <= 563);
    free(h);
}

static void test_json(void **state)
{
    (void)state;
    bp_hist h;
    bp_hist_init(&h);
    bp_hist_add(&h, 3);
    bp_hist_add(&h, 5);
    bp_hist_summary s;
    bp_hist_summarize(&h, &s);
    bp_buf b;
    bp_buf_init(&b, 0);
    assert_int_equal(bp_hist_summary_json(&s, &b), 0);
    assert_string_equal(b.data,
                        "{\"count\":2,\"p50\":3,\"p90\":5,\"p99\":5,\"max\":5,\"mean\":4.0}");
    bp_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),      cmocka_unit_test(test_small_exact),
        cmocka_unit_test(test_accuracy),   cmocka_unit_test(test_extremes),
        cmocka_unit_test(test_concurrent), cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
