/* test_pool.c - endpoint selection, ejection and probing, rate limits, head trust. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/pool.h"
#include "core/statsline.h"

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An endpoint paused (ejected or rate-limited) for at least `ms` from `since`: the pause's
 * length is checked against the clock the pool uses, and then pinned far ahead, so that what
 * the test does next sees the endpoint paused however long a loaded machine takes. */
static void paused_at_least(bp_pool *p, int i, int64_t since, long ms)
{
    assert_true(p->eps[i].not_before_ms >= since + ms);
    p->eps[i].not_before_ms = INT64_MAX / 2;
}

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
    int64_t t0 = mono_ms();
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
    assert_int_equal(p.eps[0].limit, 1); /* halved on every failure */
    int64_t until = p.eps[0].not_before_ms;
    paused_at_least(&p, 0, t0, 1000);
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), -1); /* in its backoff */
    /* after the 1 s backoff (and the coordinator's eth_chainId recheck) one probe goes out
     * (the wait is for the backoff's end, the timeout only a hang guard); a second request
     * waits for its verdict */
    p.eps[0].not_before_ms = until;
    bp_pool_set_chain(&p, 0, BP_EP_CHAIN_OK);
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 30000, &batch), 0);
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
    int64_t t0 = mono_ms();
    bp_pool_done(&p, 0, &fail);
    assert_int_equal(p.eps[0].backoff_ms, 2000);
    paused_at_least(&p, 0, t0, 2000);
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

static void succeed(bp_pool *p, int ep, int batch)
{
    bp_pool_done(p, ep,
                 &(bp_pool_outcome){.rc = 0,
                                    .latency_us = 100,
                                    .blocks = (size_t)batch,
                                    .bytes = 1000,
                                    .need = 1,
                                    .error_text = NULL});
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
    succeed(&p, 0, batch); /* accepted before the 429: the pause measures a rate */
    int batch_before = p.eps[0].batch;
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 0);
    int64_t t0 = mono_ms();
    bp_pool_done(&p, 0,
                 &(bp_pool_outcome){.rc = BP_ERATELIMIT,
                                    .latency_us = 0,
                                    .blocks = 1,
                                    .bytes = 1000,
                                    .need = 1,
                                    .retry_after_s = 3,
                                    .error_text = "HTTP 429"});
    assert_int_equal(p.eps[0].rl.refusals, 1);
    assert_int_equal(p.eps[0].state, BP_EP_HEALTHY); /* a 429 is not a failure */
    assert_int_equal(p.eps[0].consecutive_failures, 0);
    assert_int_equal(p.eps[0].errors, 0);
    assert_int_equal(p.eps[0].limit, 4); /* about the number of requests: nothing shrinks */
    assert_int_equal(p.eps[0].batch, batch_before);
    assert_true(p.eps[0].rl.rps > 0);
    /* Retry-After: 3 -> the workers' pause lasts at least 3 s from before the 429 (then it is
     * pinned far ahead so the rest cannot race the clock); the other endpoint serves
     * meanwhile, and the coordinator's own requests (head polls, reorg walks) skip the paused
     * one too */
    paused_at_least(&p, 0, t0, 3000);
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 1);
    long left = bp_pool_may_call(&p, 0);
    assert_true(left <= 3000 && left >= 3000 - (mono_ms() - t0));
    assert_int_equal(bp_pool_may_call(&p, 1), 0);
    /* a 429 the coordinator got pauses the endpoint for the workers; with nothing accepted
     * before it no rate is learnt (the first cycle after the pause measures it), so requests
     * are not scarce yet */
    bp_pool_called(&p, 1, BP_ERATELIMIT, 0);
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), -1);
    assert_true(bp_pool_may_call(&p, 1) > 0);
    assert_true(p.eps[1].rl.rps == 0);
    assert_false(bp_pool_requests_scarce(&p));
    static bp_stats st; /* what the stats line is made from */
    memset(&st, 0, sizeof(st));
    st.endpoint_count = bp_pool_stats(&p, st.endpoints, BP_STATS_MAX_ENDPOINTS);
    assert_int_equal(st.endpoint_count, 2);
    assert_string_equal(st.endpoints[0].state, "rate-limited");
    assert_true(st.endpoints[0].rate_limited && st.endpoints[1].rate_limited);
    assert_true(st.endpoints[0].rps > 0); /* the rate it is held to */
    assert_int_equal(st.endpoints[0].rate_limits, 1);
    bp_buf line;
    bp_buf_init(&line, 0);
    bp_stats_lines(&st, 0, 0, 0, &line);
    assert_non_null(strstr(line.data, "\nrpc[0] http://a:1 state=rate-limited "));
    assert_non_null(strstr(line.data, " rps=")); /* the rate it is held to */
    assert_null(strstr(line.data, "rpc[0] http://a:1 state=rate-limited head=? in_flight=0 "
                                  "limit=4 batch=2 rps=-"));
    assert_non_null(strstr(line.data, " rate_limited=rpc[0]@"));
    assert_non_null(strstr(line.data, "rps,rpc[1]@"));
    bp_buf_release(&line);
    bp_pool_release(&p);
}

/* Once a provider limits the request rate, requests are what is scarce: the last blocks are
 * not spread, and a 429 does not shrink blocks per request (they double on success as always). */
static void test_rate_limited_batch_grows(void **state)
{
    (void)state;
    bp_endpoint_spec specs[] = {{.url = "http://a:1", .max_workers = 4}};
    bp_pool p;
    bp_error err = {0};
    assert_int_equal(bp_pool_init(&p, specs, 1, 4, 32, &err), 0);
    int batch;
    assert_false(bp_pool_requests_scarce(&p));
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 0);
    succeed(&p, 0, batch);
    assert_int_equal(p.eps[0].batch, 4); /* doubles towards what fits the target */
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 0);
    bp_pool_done(&p, 0, &(bp_pool_outcome){.rc = BP_ERATELIMIT, .blocks = 4, .need = 1});
    assert_int_equal(p.eps[0].batch, 4);
    assert_true(p.eps[0].rl.rps > 0);
    p.eps[0].not_before_ms = p.eps[0].rl.until_ms = 0; /* skip the wait */
    p.eps[0].tokens = 10;
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 0);
    succeed(&p, 0, batch);
    assert_int_equal(p.eps[0].batch, 8);
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), -1); /* no burst on a learnt rate */
    p.eps[0].tokens = 1;
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 0);
    succeed(&p, 0, batch);
    assert_int_equal(p.eps[0].batch, 16);
    assert_true(bp_pool_requests_scarce(&p));
    bp_pool_release(&p);
}

/* When a 429's pause ends with nothing accepted since, one request goes (a probe), not every
 * worker: a provider that answers 429 for ever (a ban, a daily quota) got all of them at each
 * pause's end. Once a block fetch is accepted, every worker again (a head poll is not one). */
static void test_rate_limited_probe(void **state)
{
    (void)state;
    bp_endpoint_spec specs[] = {{.url = "http://a:1", .max_workers = 4}};
    bp_pool p;
    make_pool(&p, specs, 1);
    int batch;
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 0);
    int64_t t0 = mono_ms();
    bp_pool_done(&p, 0, &(bp_pool_outcome){.rc = BP_ERATELIMIT, .blocks = 1, .need = 1});
    assert_true(p.eps[0].rl.rps == 0); /* nothing accepted: no rate, no token bucket */
    /* no Retry-After, but nothing was accepted before it: at least 2 s */
    assert_true(p.eps[0].rl.until_ms >= t0 + 2000);
    p.eps[0].not_before_ms = p.eps[0].rl.until_ms = 0;          /* skip the wait */
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 0); /* the probe */
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), -1);
    int64_t t1 = mono_ms();
    bp_pool_done(&p, 0, &(bp_pool_outcome){.rc = BP_ERATELIMIT, .blocks = 1, .need = 1});
    assert_true(p.eps[0].rl.until_ms >= t1 + 4000); /* the probe refused too: grown to 4 s */
    p.eps[0].not_before_ms = p.eps[0].rl.until_ms = 0;
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 0);
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), -1);
    succeed(&p, 0, batch); /* accepted: every worker again */
    for (int i = 0; i < 4; i++)
        assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 0);
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), -1);
    /* a 429 again, then the coordinator's head poll let through: it ends no probe (the
     * provider may refuse every block fetch still), so the probe refused next grows the pause
     * to 2 s. Before, bp_pool_called counted it as the probe's answer: every worker again,
     * and a pause of 1 s after each refusal for ever */
    bp_pool_done(&p, 0, &(bp_pool_outcome){.rc = BP_ERATELIMIT, .blocks = 1, .need = 1});
    p.eps[0].not_before_ms = p.eps[0].rl.until_ms = 0;
    assert_true(bp_ratelimit_probing(&p.eps[0].rl));
    assert_int_equal(bp_pool_may_call(&p, 0), 0);
    bp_pool_called(&p, 0, 0, 0);
    assert_true(bp_ratelimit_probing(&p.eps[0].rl));
    int64_t t2 = mono_ms();
    bp_pool_done(&p, 0, &(bp_pool_outcome){.rc = BP_ERATELIMIT, .blocks = 1, .need = 1});
    assert_true(p.eps[0].rl.until_ms >= t2 + 2000);
    bp_pool_release(&p);
}

typedef struct waiter_arg {
    bp_pool *p;
    uint64_t need;
    int rc;
    int order;
} waiter_arg;

static atomic_int g_served;

static void *wait_for_endpoint(void *arg)
{
    waiter_arg *w = arg;
    int batch;
    w->rc = bp_pool_acquire(w->p, w->need, -1, 30000, &batch);
    w->order = atomic_fetch_add(&g_served, 1);
    return NULL;
}

static int waiting(bp_pool *p)
{
    int n = 0;
    pthread_mutex_lock(&p->lock);
    for (const bp_pool_waiter *w = p->waiters; w; w = w->next)
        n++;
    pthread_mutex_unlock(&p->lock);
    return n;
}

/* While the rate is short of tokens the lowest block goes first (the commit waits on it),
 * however long the others have waited. Who wakes first is up to the scheduler, so a few
 * rounds. */
static void test_lowest_block_first(void **state)
{
    (void)state;
    bp_endpoint_spec specs[] = {{.url = "http://a:1", .max_workers = 8, .rps = 20}};
    bp_pool p;
    make_pool(&p, specs, 1);
    enum { N = 6 };
    for (int round = 0; round < 4; round++) {
        waiter_arg w[N];
        pthread_t t[N];
        atomic_store(&g_served, 0);
        pthread_mutex_lock(&p.lock);
        p.eps[0].in_flight = 0;
        p.eps[0].tokens = -1e6; /* no token for a long while */
        pthread_mutex_unlock(&p.lock);
        for (int i = 0; i < N; i++) { /* the lowest block starts waiting last */
            w[i] = (waiter_arg){.p = &p, .need = (uint64_t)(100 - i)};
            assert_int_equal(pthread_create(&t[i], NULL, wait_for_endpoint, &w[i]), 0);
            while (waiting(&p) < i + 1)
                sched_yield();
        }
        pthread_mutex_lock(&p.lock); /* one token now, the next 50 ms later */
        p.eps[0].tokens = 1;
        pthread_cond_broadcast(&p.cv);
        pthread_mutex_unlock(&p.lock);
        for (int i = 0; i < N; i++) {
            pthread_join(t[i], NULL);
            assert_int_equal(w[i].rc, 0);
        }
        assert_int_equal(w[N - 1].order, 0);
    }
    bp_pool_release(&p);
}

/* A burst of one second's worth, then each request waits for its token. The bounds come
 * from the bucket's arithmetic on the pool's own clock, so a loaded machine (which only makes
 * things take longer) cannot break them: no request is granted before its token exists. */
static void test_rps_token_bucket(void **state)
{
    (void)state;
    bp_endpoint_spec specs[] = {{.url = "http://a:1", .max_workers = 100, .rps = 20}};
    bp_pool p;
    int64_t t_init = mono_ms();
    make_pool(&p, specs, 1);
    int batch, got = 0;
    while (bp_pool_acquire(&p, 1, -1, 0, &batch) == 0)
        got++;
    /* 20 at once, plus one per 50 ms that went by while we took them */
    int64_t refills = (mono_ms() - t_init) * 20 / 1000 + 1;
    assert_true(got >= 20 && got <= 20 + refills);
    /* an empty bucket from now: the next token exists 1000 / rps = 50 ms later */
    int64_t t0 = mono_ms();
    p.eps[0].tokens = 0;
    p.eps[0].tokens_ms = mono_ms();
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 30000, &batch), 0);
    assert_true(mono_ms() - t0 >= 50);
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

/* One successful answer of `blocks` blocks and `bytes` bytes on a one-endpoint pool; returns
 * the batch the next request gets. */
static int answer(bp_pool *p, size_t blocks, size_t bytes)
{
    int batch;
    assert_int_equal(bp_pool_acquire(p, 1, -1, 0, &batch), 0);
    bp_pool_done(p, 0, &(bp_pool_outcome){.blocks = blocks, .bytes = bytes, .need = 1});
    return p->eps[0].batch;
}

static void make_pool32(bp_pool *p)
{
    bp_endpoint_spec specs[] = {{.url = "http://a:1", .max_workers = 1}};
    bp_error err = {0};
    assert_int_equal(bp_pool_init(p, specs, 1, 4, 32, &err), 0);
}

static void test_batch_sized_from_answers(void **state)
{
    (void)state;
    const size_t kib = 1024, target = BP_POOL_TARGET_BYTES;
    bp_pool p;
    /* 100 KiB blocks: 40 fit under 4 MiB; the batch doubles to the cap (32) in 4 answers */
    make_pool32(&p);
    assert_int_equal(bp_pool_batch_hint(&p), 2);
    assert_int_equal(answer(&p, 2, 2 * 100 * kib), 4);
    assert_int_equal(answer(&p, 4, 4 * 100 * kib), 8);
    assert_int_equal(answer(&p, 8, 8 * 100 * kib), 16);
    assert_int_equal(answer(&p, 16, 16 * 100 * kib), 32);
    assert_int_equal(answer(&p, 32, 32 * 100 * kib), 32);
    bp_pool_release(&p);

    /* an empty first block (1 KiB) does not size it alone: doubling, not a jump to 32; then
     * 550 KiB blocks (7 fit) stop it at 7; 256 KiB blocks (16 fit) double it towards 16 */
    make_pool32(&p);
    assert_int_equal(answer(&p, 1, kib), 4);
    assert_int_equal(answer(&p, 2, 2 * 550 * kib), 7);
    assert_int_equal(answer(&p, 7, 7 * 550 * kib), 7);
    assert_int_equal(answer(&p, 7, 7 * 256 * kib), 14);
    assert_int_equal(answer(&p, 14, 14 * 256 * kib), 16);
    /* an answer between the target and twice it changes nothing (no flapping) */
    assert_int_equal(answer(&p, 16, 16 * 400 * kib), 16);
    /* above twice the target it halves */
    assert_int_equal(answer(&p, 16, 3 * target), 8);
    bp_pool_release(&p);

    /* grown on small blocks, then only small requests of bigger blocks went out (the spread
     * end of a range): more than twice what they allow, it drops to that */
    make_pool32(&p);
    for (int i = 0; i < 4; i++)
        answer(&p, 2, 2 * 10 * kib);
    assert_int_equal(p.eps[0].batch, 32);
    assert_int_equal(answer(&p, 4, 4 * 550 * kib), 7);
    bp_pool_release(&p);

    /* huge blocks (50,000 txs: ~100 MiB each) take it to one and keep it there; small blocks
     * after them grow it by doubling from one */
    make_pool32(&p);
    assert_int_equal(answer(&p, 2, 200 * 1024 * kib), 1);
    assert_int_equal(answer(&p, 1, 100 * 1024 * kib), 1);
    assert_int_equal(answer(&p, 1, 5 * 1024 * kib), 1); /* over the target, under twice it */
    assert_int_equal(answer(&p, 1, 50 * kib), 2);
    assert_int_equal(answer(&p, 2, 100 * kib), 4);
    bp_pool_release(&p);

    /* an answer cut short before it brought any block (no blocks, "too big") halves it */
    make_pool32(&p);
    assert_int_equal(answer(&p, 0, 2 * target + 1), 1);
    bp_pool_release(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_priority_then_spill),
        cmocka_unit_test(test_eject_and_probe),
        cmocka_unit_test(test_rate_limited_pause),
        cmocka_unit_test(test_rate_limited_batch_grows),
        cmocka_unit_test(test_rate_limited_probe),
        cmocka_unit_test(test_lowest_block_first),
        cmocka_unit_test(test_backoff_doubles_with_fallback),
        cmocka_unit_test(test_one_outage_one_ejection),
        cmocka_unit_test(test_rps_token_bucket),
        cmocka_unit_test(test_lagging_head_not_trusted),
        cmocka_unit_test(test_adaptive_batch),
        cmocka_unit_test(test_batch_sized_from_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
