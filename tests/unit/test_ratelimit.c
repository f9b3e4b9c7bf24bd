/* test_ratelimit.c - pauses and the learnt request rate of an endpoint (times are given, so
 * nothing here sleeps). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/ratelimit.h"

/* n requests started at t, t+step, ... each accepted 10 ms later. */
static void serve(bp_ratelimit *r, int n, int64_t t, int64_t step)
{
    for (int i = 0; i < n; i++, t += step) {
        bp_ratelimit_start(r, t);
        bp_ratelimit_accepted(r, t, t + 10);
    }
}

static void test_pause_is_retry_after(void **state)
{
    (void)state;
    bp_ratelimit r;
    bp_ratelimit_init(&r, 0);
    assert_int_equal(bp_ratelimit_wait(&r, 0), 0);
    assert_false(bp_ratelimit_recent(&r, 0));
    assert_true(bp_ratelimit_refused(&r, 3, 1000));
    assert_int_equal(bp_ratelimit_wait(&r, 1000), 3000);
    assert_int_equal(bp_ratelimit_wait(&r, 3999), 1);
    assert_int_equal(bp_ratelimit_wait(&r, 4000), 0);
    /* 429s of requests already on their way extend the pause, they do not start one */
    assert_false(bp_ratelimit_refused(&r, 3, 1500));
    assert_int_equal(r.until_ms, 4500);
    assert_false(bp_ratelimit_refused(&r, 1, 1600)); /* never shortened */
    assert_int_equal(r.until_ms, 4500);
    assert_int_equal(r.refusals, 3);
    assert_true(bp_ratelimit_recent(&r, 60000));
    assert_false(bp_ratelimit_recent(&r, 61600));
    /* no Retry-After: the default second */
    assert_true(bp_ratelimit_refused(&r, 0, 10000));
    assert_int_equal(bp_ratelimit_wait(&r, 10000), BP_RATELIMIT_DEFAULT_MS);
}

/* A provider that takes 8 requests per 4 s window: the rate learnt is what it accepted over
 * the cycle up to the pause's end, counting answers that arrive after the 429. */
static void test_learns_accepted_rate(void **state)
{
    (void)state;
    bp_ratelimit r;
    bp_ratelimit_init(&r, 0);
    serve(&r, 6, 0, 10);
    bp_ratelimit_start(&r, 60); /* on its way when the 429 comes */
    bp_ratelimit_start(&r, 70);
    assert_true(bp_ratelimit_refused(&r, 4, 100)); /* pause until 4100 */
    assert_true(r.rps > 6 / 4.1 - 0.01 && r.rps < 6 / 4.1 + 0.01);
    bp_ratelimit_accepted(&r, 60, 120);
    bp_ratelimit_accepted(&r, 70, 130);
    assert_true(r.rps > 8 / 4.1 - 0.01 && r.rps < 8 / 4.1 + 0.01);
    assert_int_equal(r.cycle_ok, 0); /* they did not count for the next cycle */
    /* the next cycle: paced at the rate, a request refused at once halves it at most */
    double before = r.rps;
    bp_ratelimit_start(&r, 4100);
    assert_true(bp_ratelimit_refused(&r, 4, 4110));
    assert_true(r.rps > before / 2 - 0.001 && r.rps < before / 2 + 0.001);
    /* a cycle that accepted more than the rate does not raise it (that is the quiet cycles'
     * job) */
    before = r.rps;
    serve(&r, 40, 8110, 10);
    assert_true(bp_ratelimit_refused(&r, 1, 8600));
    assert_true(r.rps == before);
}

static void test_raised_only_when_starved(void **state)
{
    (void)state;
    bp_ratelimit r;
    bp_ratelimit_init(&r, 0);
    serve(&r, 4, 0, 100);
    assert_true(bp_ratelimit_refused(&r, 2, 1000)); /* 4 over 3 s */
    double rate = r.rps, step = r.step;
    assert_true(step > 0 && step < rate);
    int64_t t = r.until_ms + r.span_ms; /* one quiet cycle later */
    serve(&r, 1, t, 0);
    assert_true(r.rps == rate); /* nothing waited for the rate: no proof it may grow */
    r.starved = true;
    t += r.span_ms;
    serve(&r, 1, t, 0);
    assert_true(r.rps > rate + step - 1e-9 && r.rps < rate + step + 1e-9);
    assert_false(r.starved);
    serve(&r, 1, t + 10, 0); /* not a cycle later: no second step */
    assert_true(r.rps < rate + 2 * step - 1e-9);
}

/* Idle time says nothing about what a provider accepts: after 2 s without a request the
 * measurement starts again. */
static void test_idle_restarts_measurement(void **state)
{
    (void)state;
    bp_ratelimit r;
    bp_ratelimit_init(&r, 0);
    serve(&r, 3, 0, 10);
    serve(&r, 5, 100000, 10); /* after a long quiet spell */
    assert_int_equal(r.cycle_ms, 100000);
    assert_int_equal(r.cycle_ok, 5);
    assert_true(bp_ratelimit_refused(&r, 1, 100500)); /* 5 over 1.5 s */
    assert_true(r.rps > 5 / 1.5 - 0.01 && r.rps < 5 / 1.5 + 0.01);
    /* refused before anything was accepted: one request per cycle, never 0 */
    bp_ratelimit s;
    bp_ratelimit_init(&s, 0);
    assert_true(bp_ratelimit_refused(&s, 2, 0));
    assert_true(s.rps > 0.49 && s.rps < 0.51);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pause_is_retry_after),
        cmocka_unit_test(test_learns_accepted_rate),
        cmocka_unit_test(test_raised_only_when_starved),
        cmocka_unit_test(test_idle_restarts_measurement),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
