/* test_pool.c - endpoint selection, ejection and probing, rate limits, head trust. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/pool.h"

static void make_pool(bp_pool *p, const bp_endpoint_spec *specs, size_t n)
{
    bp_error err = {0};
    assert_int_equal(bp_pool_init(p, specs, n, 4, 8, &err), 0);
}

static void test_priority_then_spill(void **state)
{
    (void)state;
    bp_endpoint_spec specs[] = {
        {.url = "http://slow:1", .max_workers = 2, .priority = 2},
        {.url = "http://fast:1", .max_workers = 2, .priority = 1},
    };
    bp_pool p;
    make_pool(&p, specs, 2);
    assert_int_equal(bp_pool_capacity(&p), 4);
    int batch;
    /* the preferred endpoint (priority 1) fills first, then the next one takes the rest */
    assert_int_equal(bp_pool_acquire(&p, 10, -1, 0, &batch), 1);
    assert_int_equal(bp_pool_acquire(&p, 10, -1, 0, &batch), 1);
    assert_int_equal(bp_pool_acquire(&p, 10, -1, 0, &batch), 0);
    assert_int_equal(bp_pool_acquire(&p, 10, -1, 0, &batch), 0);
    assert_int_equal(bp_pool_acquire(&p, 10, -1, 0, &batch), -1); /* all busy */
    bp_pool_done(&p, 1,
                 &(bp_pool_outcome){.rc = 0,
                                    .latency_us = 1000,
                                    .blocks = 1,
                                    .bytes = 1000,
                                    .need = 10,
                                    .retry_after_s = 0,
                                    .error_text = NULL});
    /* a retry avoids the endpoint that failed it, unless it is the only one free */
    assert_int_equal(bp_pool_acquire(&p, 10, 1, 0, &batch), 1);
    bp_pool_release(&p);
}

static void test_eject_and_probe(void **state)
{
    (void)state;
    bp_endpoint_spec specs[] = {{.url = "http://user:secret@a:1/x", .max_workers = 4}};
    bp_pool p;
    make_pool(&p, specs, 1);
    assert_string_equal(p.eps[0].url, "http://user:***@a:1/x"); /* credentials never reach logs */
    int batch;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 0);
        bp_pool_done(&p, 0,
                     &(bp_pool_outcome){.rc = BP_ETRANSPORT,
                                        .latency_us = 0,
                                        .blocks = 1,
                                        .bytes = 1000,
                                        .need = 1,
                                        .retry_after_s = 0,
                                        .error_text = "connection refused"});
    }
    assert_int_equal(p.eps[0].state, BP_EP_EJECTED);
    assert_int_equal(p.eps[0].ejections, 1);
    assert_int_equal(p.eps[0].limit, 1);                         /* halved on every failure */
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), -1); /* in its backoff */
    /* after the 1 s backoff (and the coordinator's eth_chainId recheck) one probe goes
     * out; a second request waits for its verdict */
    bp_pool_set_chain(&p, 0, BP_EP_CHAIN_OK);
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 2000, &batch), 0);
    assert_int_equal(p.eps[0].state, BP_EP_PROBING);
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), -1);
    bp_pool_done(&p, 0,
                 &(bp_pool_outcome){.rc = BP_ETIMEOUT,
                                    .latency_us = 0,
                                    .blocks = 1,
                                    .bytes = 1000,
                                    .need = 1,
                                    .retry_after_s = 0,
                                    .error_text = "timed out"});
    assert_int_equal(p.eps[0].state, BP_EP_EJECTED);
    assert_int_equal(p.eps[0].backoff_ms, 1000); /* the only endpoint: not paused longer */
    p.eps[0].not_before_ms = 0;                  /* skip the wait */
    bp_pool_set_chain(&p, 0, BP_EP_CHAIN_OK);
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 0);
    bp_pool_done(&p, 0,
                 &(bp_pool_outcome){.rc = 0,
                                    .latency_us = 500,
                                    .blocks = 1,
                                    .bytes = 1000,
                                    .need = 1,
                                    .retry_after_s = 0,
                                    .error_text = NULL});
    assert_int_equal(p.eps[0].state, BP_EP_HEALTHY);
    assert_int_equal(p.eps[0].backoff_ms, 0);
    bp_pool_release(&p);
}

/* With another healthy endpoint the failing one's backoff doubles. */
static void test_backoff_doubles_with_fallback(void **state)
{
    (void)state;
    bp_endpoint_spec specs[] = {{.url = "http://a:1", .max_workers = 1},
                                {.url = "http://b:1", .max_workers = 1, .priority = 9}};
    bp_pool p;
    make_pool(&p, specs, 2);
    int batch;
    bp_pool_outcome fail = {.rc = BP_ETRANSPORT, .blocks = 1, .need = 1, .error_text = "reset"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 0);
        bp_pool_done(&p, 0, &fail);
    }
    assert_int_equal(p.eps[0].backoff_ms, 1000);
    p.eps[0].not_before_ms = 0;
    bp_pool_set_chain(&p, 0, BP_EP_CHAIN_OK);
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 0); /* the probe */
    bp_pool_done(&p, 0, &fail);
    assert_int_equal(p.eps[0].backoff_ms, 2000);
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 1); /* b serves meanwhile */
    bp_pool_release(&p);
}

/* Requests in flight when an endpoint goes down fail after its ejection: one outage, one
 * ejection, one backoff step. */
static void test_one_outage_one_ejection(void **state)
{
    (void)state;
    bp_endpoint_spec specs[] = {{.url = "http://a:1", .max_workers = 8},
                                {.url = "http://b:1", .max_workers = 8, .priority = 9}};
    bp_pool p;
    make_pool(&p, specs, 2);
    int batch;
    for (int i = 0; i < 8; i++)
        assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 0);
    bp_pool_outcome down = {.rc = BP_ETRANSPORT, .blocks = 1, .need = 1, .error_text = "reset"};
    for (int i = 0; i < 8; i++)
        bp_pool_done(&p, 0, &down);
    assert_int_equal(p.eps[0].ejections, 1);
    assert_int_equal(p.eps[0].backoff_ms, 1000);
    assert_int_equal(p.eps[0].in_flight, 0);
    bp_pool_release(&p);
}

static void test_rate_limited_pause(void **state)
{
    (void)state;
    bp_endpoint_spec specs[] = {{.url = "http://a:1", .max_workers = 4},
                                {.url = "http://b:1", .max_workers = 4, .priority = 5}};
    bp_pool p;
    make_pool(&p, specs, 2);
    int batch;
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 0);
    bp_pool_done(&p, 0,
                 &(bp_pool_outcome){.rc = BP_ERATELIMIT,
                                    .latency_us = 0,
                                    .blocks = 1,
                                    .bytes = 1000,
                                    .need = 1,
                                    .retry_after_s = 3,
                                    .error_text = "HTTP 429"});
    assert_int_equal(p.eps[0].rate_limited, 1);
    assert_int_equal(p.eps[0].state, BP_EP_HEALTHY); /* a 429 is not a failure */
    assert_int_equal(p.eps[0].consecutive_failures, 0);
    /* Retry-After: 3 -> the other endpoint serves meanwhile */
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 1);
    bp_pool_release(&p);
}

static void test_rps_token_bucket(void **state)
{
    (void)state;
    bp_endpoint_spec specs[] = {{.url = "http://a:1", .max_workers = 100, .rps = 20}};
    bp_pool p;
    make_pool(&p, specs, 1);
    int batch, got = 0;
    while (bp_pool_acquire(&p, 1, -1, 0, &batch) == 0)
        got++;
    assert_int_equal(got, 20); /* a burst of one second's worth */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 1000, &batch), 0); /* waits ~50 ms */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long waited = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(waited >= 30);
    bp_pool_release(&p);
}

static void test_lagging_head_not_trusted(void **state)
{
    (void)state;
    bp_endpoint_spec specs[] = {{.url = "http://a:1", .max_workers = 2},
                                {.url = "http://lag:1", .max_workers = 2}};
    bp_pool p;
    make_pool(&p, specs, 2);
    bp_pool_set_head(&p, 0, 100);
    bp_pool_set_head(&p, 1, 90);
    int batch;
    assert_int_equal(bp_pool_acquire(&p, 95, 0, 0, &batch), 0); /* only 0 has block 95 */
    assert_int_equal(bp_pool_acquire(&p, 80, 0, 0, &batch), 1);
    /* "not found" for block 85 means that endpoint's head is below it */
    bp_pool_done(&p, 1,
                 &(bp_pool_outcome){.rc = BP_ENOTFOUND,
                                    .latency_us = 0,
                                    .blocks = 1,
                                    .bytes = 1000,
                                    .need = 85,
                                    .retry_after_s = 0,
                                    .error_text = "not found"});
    assert_int_equal(p.eps[1].head, 84);
    assert_int_equal(p.eps[1].state, BP_EP_HEALTHY);
    bp_pool_release(&p);
}

static void test_adaptive_batch(void **state)
{
    (void)state;
    bp_endpoint_spec specs[] = {{.url = "http://a:1", .max_workers = 1}};
    bp_pool p;
    make_pool(&p, specs, 1);
    int batch;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 0);
        bp_pool_done(&p, 0,
                     &(bp_pool_outcome){.rc = 0,
                                        .latency_us = 100,
                                        .blocks = (size_t)batch,
                                        .bytes = 1000,
                                        .need = 1,
                                        .retry_after_s = 0,
                                        .error_text = NULL});
    }
    assert_int_equal(p.eps[0].batch, 8); /* grew to the cap */
    assert_int_equal(bp_pool_batch_hint(&p), 8);
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 0);
    bp_pool_done(&p, 0,
                 &(bp_pool_outcome){.rc = BP_ETIMEOUT,
                                    .latency_us = 0,
                                    .blocks = (size_t)batch,
                                    .bytes = 1000,
                                    .need = 1,
                                    .retry_after_s = 0,
                                    .error_text = "timed out"});
    assert_int_equal(p.eps[0].batch, 4); /* halved */
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 0);
    bp_pool_done(&p, 0,
                 &(bp_pool_outcome){.rc = BP_ETOOBIG,
                                    .latency_us = 0,
                                    .blocks = (size_t)batch,
                                    .bytes = 1000,
                                    .need = 1,
                                    .retry_after_s = 0,
                                    .error_text = "too big"});
    assert_int_equal(p.eps[0].batch, 1);
    bp_pool_release(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_priority_then_spill),
        cmocka_unit_test(test_eject_and_probe),
        cmocka_unit_test(test_rate_limited_pause),
        cmocka_unit_test(test_backoff_doubles_with_fallback),
        cmocka_unit_test(test_one_outage_one_ejection),
        cmocka_unit_test(test_rps_token_bucket),
        cmocka_unit_test(test_lagging_head_not_trusted),
        cmocka_unit_test(test_adaptive_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
