/* test_ratelimit.c - pauses and the learnt request rate of an endpoint (times are given, so
 * nothing here sleeps). */
#include <setjmp.h>
#include <stdbool.h>
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
    /* no Retry-After: the default second (something was accepted since the last pause) */
    serve(&r, 1, 5000, 0);
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
    /* the next cycle: one request accepted in a cycle of 4 s is far below the rate, which
     * halves at most */
    double before = r.rps;
    serve(&r, 1, 4100, 0);
    assert_true(bp_ratelimit_refused(&r, 4, 4110));
    assert_true(r.rps > before / 2 - 0.001 && r.rps < before / 2 + 0.001);
    /* a cycle that accepted more than the rate does not raise it (that is the quiet cycles'
     * job) */
    before = r.rps;
    serve(&r, 40, 8110, 10);
    assert_true(bp_ratelimit_refused(&r, 1, 8600));
    assert_true(r.rps == before);
}

/* One cut per episode: a pause with nothing accepted since the one before measured nothing.
 * A 429 again at once when a pause ends (its quota window not over yet) does not cut the rate,
 * however often it comes; before any measurement (a restart while the quota is spent) no rate
 * is learnt at all. (It used to halve the rate each time, and at start teach one request per
 * Retry-After: 0.05 requests/s after a 20 s one.) But such pauses grow, 2^k s after k of them
 * in a row, at most 60 s and never shorter than the Retry-After, and after a pause one request
 * at a time goes until one is accepted: a provider answering 429 for ever (a ban, a daily
 * quota) used to get every worker's request at each pause's end, every second, for ever. */
static void test_refused_at_once_backs_off(void **state)
{
    (void)state;
    bp_ratelimit r;
    bp_ratelimit_init(&r, 0);
    assert_false(bp_ratelimit_probing(&r)); /* no pause yet: every worker */
    bp_ratelimit_start(&r, 0);
    assert_true(bp_ratelimit_refused(&r, 20, 10));
    assert_true(r.rps == 0);
    assert_int_equal(bp_ratelimit_wait(&r, 10), 20000);
    assert_true(bp_ratelimit_probing(&r)); /* one request when it ends */
    serve(&r, 10, 20010, 100);             /* the first cycle after it measures: 10 over 1.99 s */
    assert_false(bp_ratelimit_probing(&r));
    assert_true(bp_ratelimit_refused(&r, 1, 21000));
    double rate = r.rps;
    assert_true(rate > 10 / 1.99 - 0.01 && rate < 10 / 1.99 + 0.01);
    assert_int_equal(bp_ratelimit_wait(&r, 21000), 1000); /* something accepted: as asked */
    static const long grown[] = {2000, 4000, 8000, 16000, 32000, 60000, 60000};
    int64_t t = r.until_ms;
    for (int k = 0; k < 7; k++) {
        assert_true(bp_ratelimit_probing(&r));
        bp_ratelimit_start(&r, t); /* the probe */
        assert_true(bp_ratelimit_refused(&r, 1, t + 10));
        assert_true(r.rps == rate);
        assert_int_equal(bp_ratelimit_wait(&r, t + 10), grown[k]);
        t = r.until_ms;
    }
    bp_ratelimit_start(&r, t);
    assert_true(bp_ratelimit_refused(&r, 90, t + 10)); /* a longer Retry-After wins */
    assert_int_equal(bp_ratelimit_wait(&r, t + 10), 90000);
    t = r.until_ms;
    /* an answer on its way when such a pause began is a measurement after all, but it was
     * asked before the pause: the probing goes on */
    bp_ratelimit_start(&r, t);
    bp_ratelimit_start(&r, t + 10);
    assert_true(bp_ratelimit_refused(&r, 1, t + 20));
    assert_true(r.rps == rate);
    bp_ratelimit_accepted(&r, t, t + 30); /* 1 over 1.02 s */
    assert_true(r.rps > rate / 2 - 0.001 && r.rps < rate / 2 + 0.001);
    assert_true(bp_ratelimit_probing(&r));
    /* a probe accepted: every worker again, and the next pause is what it asks */
    t = r.until_ms;
    serve(&r, 1, t, 0);
    assert_false(bp_ratelimit_probing(&r));
    assert_true(bp_ratelimit_refused(&r, 0, t + 500));
    assert_int_equal(bp_ratelimit_wait(&r, t + 500), BP_RATELIMIT_DEFAULT_MS);
}

/* A provider that refuses every block fetch but lets a head poll through after each pause: the
 * head poll is accepted aside (it counts for the rate, not as the probe's answer), so the
 * probing goes on and the pauses keep growing (2, 4, then 8 s). Before, it reset them to 1 s
 * and let every worker loose again after each one. */
static void test_head_poll_ends_no_probe(void **state)
{
    (void)state;
    bp_ratelimit r;
    bp_ratelimit_init(&r, 0);
    bp_ratelimit_start(&r, 0);
    assert_true(bp_ratelimit_refused(&r, 0, 10));
    assert_int_equal(bp_ratelimit_wait(&r, 10), 2000); /* nothing accepted before it */
    int64_t t = r.until_ms;
    bp_ratelimit_start(&r, t); /* the probe: a block fetch, refused */
    assert_true(bp_ratelimit_refused(&r, 0, t + 10));
    assert_int_equal(bp_ratelimit_wait(&r, t + 10), 4000);
    t = r.until_ms;
    bp_ratelimit_start(&r, t); /* a head poll, let through */
    uint64_t counted = r.cycle_ok;
    bp_ratelimit_accepted_aside(&r, t, t + 20);
    assert_int_equal(r.cycle_ok, counted + 1); /* the provider accepted it: the rate counts it */
    assert_true(bp_ratelimit_probing(&r));
    bp_ratelimit_start(&r, t + 30); /* the probe again, refused */
    assert_true(bp_ratelimit_refused(&r, 0, t + 40));
    assert_int_equal(bp_ratelimit_wait(&r, t + 40), 8000);
    /* a block fetch accepted ends the probe: the next pause is what the provider asks */
    t = r.until_ms;
    serve(&r, 1, t, 0);
    assert_false(bp_ratelimit_probing(&r));
    assert_true(bp_ratelimit_refused(&r, 0, t + 500));
    assert_int_equal(bp_ratelimit_wait(&r, t + 500), BP_RATELIMIT_DEFAULT_MS);
}

/* Below the last rate the provider was seen to accept the rate doubles each quiet cycle (1 s
 * or two requests long), then it grows by its step per measured span. */
static void test_regrows_fast_to_last_good_rate(void **state)
{
    (void)state;
    bp_ratelimit r;
    bp_ratelimit_init(&r, 0);
    serve(&r, 4, 0, 100);
    assert_true(bp_ratelimit_refused(&r, 3, 1000)); /* 4 over 4 s: 1/s */
    serve(&r, 40, 4000, 100);                       /* 40 over 5 s: 8/s accepted */
    assert_true(bp_ratelimit_refused(&r, 1, 8000));
    assert_true(r.rps > 0.99 && r.rps < 1.01); /* the cut never raises it */
    assert_true(r.good > 7.99 && r.good < 8.01);
    int64_t t = r.raise_ms, at = t;
    int cycles = 0;
    while (r.rps < r.good - 1e-9 && cycles < 10) {
        r.starved = true;
        at = t;
        serve(&r, 1, t, 0);
        t = r.raise_ms;
        cycles++;
    }
    assert_int_equal(cycles, 3); /* 1 -> 2 -> 4 -> 8 */
    /* after 2 s at 1/s, then 1 s at 2/s and at 4/s (each answer 10 ms after its request) */
    assert_int_equal(at, 9000 + 4000 + 20);
    double step = r.step;
    r.starved = true;
    serve(&r, 1, t, 0);
    assert_true(r.rps > 8 + step - 1e-9 && r.rps < 8 + step + 1e-9); /* then additive */
    assert_int_equal(r.raise_ms, t + 10 + r.span_ms);
}

/* A provider of `quota` requests per `window_ms` window (windows start at `window0`),
 * answering 429 with the whole seconds left of the window, and one worker that sends as soon
 * as the pause and the rate let it (a token bucket without burst, as the pool's), each answer
 * 50 ms after its request. Time is simulated: the controller is driven deterministically. */
typedef struct provider {
    int64_t window0, window_ms;
    int quota;
    int64_t window; /* the window counted */
    int used;
    /* a token bucket instead (window_ms 0): `quota` requests/s, burst `quota`, no Retry-After */
    double bucket;
    int64_t bucket_ms;
} provider;

static bool provider_accepts(provider *p, int64_t t, long *retry_after_s)
{
    if (p->window_ms == 0) {
        p->bucket += (double)(t - p->bucket_ms) * p->quota / 1000.0;
        p->bucket = p->bucket > p->quota ? p->quota : p->bucket;
        p->bucket_ms = t;
        *retry_after_s = 0;
        if (p->bucket < 1)
            return false;
        p->bucket -= 1;
        return true;
    }
    int64_t w = (t - p->window0) / p->window_ms;
    if (w != p->window) {
        p->window = w;
        p->used = 0;
    }
    if (p->used < p->quota) {
        p->used++;
        return true;
    }
    int64_t left = p->window0 + (w + 1) * p->window_ms - t;
    *retry_after_s = (long)((left + 999) / 1000);
    return false;
}

typedef struct drive_result {
    int accepted, refused;
} drive_result;

/* Runs the worker from `from` to `to` (ms); the accepted and refused requests in [count_from,
 * to). */
static drive_result drive(bp_ratelimit *r, provider *p, int64_t from, int64_t to,
                          int64_t count_from)
{
    drive_result res = {0, 0};
    double tokens = 1;
    int64_t tokens_ms = from, t = from;
    while (t < to) {
        if (t < r->until_ms)
            t = r->until_ms;
        if (r->rps > 0) {
            tokens += (double)(t - tokens_ms) * r->rps / 1000.0;
            tokens = tokens > 1 ? 1 : tokens;
            tokens_ms = t;
            if (tokens < 1) {
                r->starved = true;
                t += (int64_t)((1 - tokens) * 1000.0 / r->rps) + 1;
                continue;
            }
            tokens -= 1;
        }
        bp_ratelimit_start(r, t);
        long ra = 0;
        bool ok = provider_accepts(p, t, &ra);
        if (ok)
            bp_ratelimit_accepted(r, t, t + 50);
        else
            bp_ratelimit_refused(r, ra, t + 50);
        if (t >= count_from) {
            res.accepted += ok;
            res.refused += !ok;
        }
        t += 50;
    }
    return res;
}

/* blockpipe restarts while the quota (20 requests per 20 s) is spent: its first request is
 * answered 429 with a Retry-After of 20 s. From the second window on the endpoint must get at
 * least half of what the provider gives, and after a few windows be held to at least half of
 * its rate, without hammering it (few refusals). The old controller learnt 0.05 requests/s
 * from that first 429 and grew 5 % per 20 s: 1 request per 18 s after 5 minutes. */
static void converges_after_restart(int used)
{
    provider p = {.window0 = -100, .window_ms = 20000, .quota = 20, .window = 0, .used = used};
    bp_ratelimit r;
    bp_ratelimit_init(&r, 0);
    drive_result res = drive(&r, &p, 0, 200000, 20000);
    /* windows from 19.9 s to 199.9 s: 9 of them, 180 requests at most */
    assert_true(res.accepted >= 90);
    assert_true(res.refused <= res.accepted / 10);
    assert_true(r.rps >= 0.5);
}

static void test_converges_after_spent_quota_start(void **state)
{
    (void)state;
    converges_after_restart(20); /* spent before the start */
    /* the rate was learnt in the first window after the pause */
    provider q = {.window0 = -100, .window_ms = 20000, .quota = 20, .window = 0, .used = 20};
    bp_ratelimit s;
    bp_ratelimit_init(&s, 0);
    drive(&s, &q, 0, 41000, 0);
    assert_true(s.rps >= 0.5 && s.rps <= 1.5);
}

/* The same restart with one request left in the window: it is accepted, the next one gets a
 * 429 with a Retry-After of 20 s. One request over 20 s is what the window had left, not the
 * provider's rate: from the second window on the endpoint must get at least half of what the
 * provider gives. (That measurement held the rate to 0.05 requests/s, +5 % per 20 s: 0.057
 * two minutes later.) */
static void test_converges_after_nearly_spent_quota_start(void **state)
{
    (void)state;
    converges_after_restart(19);
    /* the same when the accepted answer comes after the 429 (two workers) */
    bp_ratelimit s;
    bp_ratelimit_init(&s, 0);
    bp_ratelimit_start(&s, 0);
    bp_ratelimit_start(&s, 0);
    assert_true(bp_ratelimit_refused(&s, 20, 50));
    bp_ratelimit_accepted(&s, 0, 60);
    assert_true(s.rps > 0.04 && s.rps < 0.06); /* a floor to start from */
    int64_t t = s.until_ms;
    for (int i = 0; i < 4; i++) { /* requests waiting for the rate: it doubles */
        s.starved = true;
        t = s.raise_ms > t ? s.raise_ms : t;
        serve(&s, 1, t, 0);
    }
    assert_true(s.rps > 0.75);
}

/* A provider that refills 5 requests/s and answers 429 without Retry-After: held to at least
 * half of its rate within 10 s, and most requests accepted. */
static void test_converges_on_token_bucket(void **state)
{
    (void)state;
    provider p = {.quota = 5, .bucket = 0};
    bp_ratelimit r;
    bp_ratelimit_init(&r, 0);
    drive(&r, &p, 0, 10000, 0);
    assert_true(r.rps >= 2.5 && r.rps <= 7.5);
    drive_result res = drive(&r, &p, 10000, 70000, 10000);
    assert_true(res.accepted >= 150); /* of 300 */
    assert_true(res.refused <= res.accepted / 10);
}

static void test_raised_only_when_starved(void **state)
{
    (void)state;
    bp_ratelimit r;
    bp_ratelimit_init(&r, 0);
    serve(&r, 4, 0, 100);
    assert_true(bp_ratelimit_refused(&r, 2, 1000)); /* the first measurement: a floor */
    serve(&r, 4, 3000, 100);
    assert_true(bp_ratelimit_refused(&r, 2, 4000)); /* 4 over 3 s, as before: held */
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
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pause_is_retry_after),
        cmocka_unit_test(test_learns_accepted_rate),
        cmocka_unit_test(test_raised_only_when_starved),
        cmocka_unit_test(test_idle_restarts_measurement),
        cmocka_unit_test(test_refused_at_once_backs_off),
        cmocka_unit_test(test_head_poll_ends_no_probe),
        cmocka_unit_test(test_regrows_fast_to_last_good_rate),
        cmocka_unit_test(test_converges_after_spent_quota_start),
        cmocka_unit_test(test_converges_after_nearly_spent_quota_start),
        cmocka_unit_test(test_converges_on_token_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
