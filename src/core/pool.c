/* pool.c - endpoint selection, health, rate limits and adaptive batch/concurrency. */
#include "core/pool.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"
#include "util/url.h"

#define EJECT_AFTER_FAILURES 3
#define EJECT_FIRST_MS 1000L
#define EJECT_MAX_MS 60000L
#define START_BATCH 2

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *shown_url(const char *url)
{
    char shown[512];
    bp_url_redact(url, shown, sizeof(shown));
    return strdup(shown);
}

int bp_pool_init(bp_pool *p, const bp_endpoint_spec *specs, size_t n, int default_workers,
                 int max_batch, bp_error *err)
{
    memset(p, 0, sizeof(*p));
    p->eps = calloc(n ? n : 1, sizeof(*p->eps));
    if (!p->eps)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    p->count = n;
    p->max_batch = max_batch < 1 ? 1 : max_batch;
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &attr);
    pthread_condattr_destroy(&attr);
    for (size_t i = 0; i < n; i++) {
        bp_endpoint *e = &p->eps[i];
        e->real_url = strdup(specs[i].url);
        e->url = shown_url(specs[i].url);
        if (!e->real_url || !e->url)
            return bp_error_set(err, BP_ENOMEM, "out of memory");
        e->max_workers = specs[i].max_workers > 0 ? specs[i].max_workers : default_workers;
        e->priority = specs[i].priority;
        e->rps = specs[i].rps;
        e->auth = specs[i].auth;
        e->limit = e->max_workers;
        e->batch = START_BATCH < p->max_batch ? START_BATCH : p->max_batch;
        e->tokens = e->rps > 1 ? e->rps : 1;
        e->tokens_ms = now_ms();
        bp_ratelimit_init(&e->rl, e->tokens_ms);
        bp_rpc_limits_init(&e->limits);
        bp_hist_init(&e->latency_us);
    }
    return 0;
}

void bp_pool_release(bp_pool *p)
{
    if (!p->eps)
        return;
    for (size_t i = 0; i < p->count; i++) {
        free(p->eps[i].url);
        free(p->eps[i].real_url);
    }
    free(p->eps);
    p->eps = NULL;
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cv);
}

/* The request rate the endpoint is held to: the configured one or the learnt one, the
 * lower; 0: none. */
static double rate_of(const bp_endpoint *e)
{
    if (e->rl.rps > 0 && (e->rps <= 0 || e->rl.rps < e->rps))
        return e->rl.rps;
    return e->rps;
}

/* Refills the token bucket. A learnt rate allows no burst: evenly spaced requests are what
 * a provider's window counts best. */
static void refill(bp_endpoint *e, int64_t now)
{
    double rate = rate_of(e);
    double burst = rate != e->rps ? 1 : rate > 1 ? rate : 1;
    e->tokens += (double)(now - e->tokens_ms) * rate / 1000.0;
    if (e->tokens > burst)
        e->tokens = burst;
    e->tokens_ms = now;
}

/* True when a request may go now, else *wake says when. */
static bool take_token_possible(bp_endpoint *e, int64_t now, int64_t *wake)
{
    double rate = rate_of(e);
    if (rate <= 0)
        return true;
    refill(e, now);
    if (e->tokens >= 1)
        return true;
    e->rl.starved = true;
    int64_t at = now + (int64_t)((1 - e->tokens) * 1000.0 / rate) + 1;
    if (at < *wake)
        *wake = at;
    return false;
}

static void start_request(bp_endpoint *e, int64_t now)
{
    if (rate_of(e) > 0)
        e->tokens -= 1;
    bp_ratelimit_start(&e->rl, now);
}

/* While a rate is short of tokens the lowest block goes first: the commit waits on it, and
 * the others would only fill the reorder window. */
static bool lower_waiting(const bp_pool *p, uint64_t need)
{
    for (const bp_pool_waiter *w = p->waiters; w; w = w->next)
        if (w->need < need)
            return true;
    return false;
}

static bool usable(bp_endpoint *e, uint64_t need, int64_t now, int64_t *wake)
{
    if (e->chain != BP_EP_CHAIN_OK || e->recheck)
        return false;
    if (e->head_known && e->head < need)
        return false;
    if (now < e->not_before_ms) {
        if (e->not_before_ms < *wake)
            *wake = e->not_before_ms;
        return false;
    }
    /* probing, or a 429's pause over with nothing accepted since: one at a time (a provider
     * still limiting gets one request at its pause's end, not every worker) */
    int limit = e->state == BP_EP_HEALTHY && !bp_ratelimit_probing(&e->rl) ? e->limit : 1;
    if (e->in_flight >= limit)
        return false;
    return take_token_possible(e, now, wake);
}

/* Blocks per request within the endpoint's learnt caps: a call cap counts a block as two
 * calls (block and receipts), a refused answer caps the blocks outright. */
static int capped_batch(bp_endpoint *e)
{
    int batch = e->batch;
    int calls = atomic_load(&e->limits.max_calls), blocks = atomic_load(&e->limits.max_blocks);
    if (calls > 0 && calls / 2 < batch)
        batch = calls / 2;
    if (blocks > 0 && blocks < batch)
        batch = blocks;
    return batch > 0 ? batch : 1;
}

static int pick(bp_pool *p, uint64_t need, int avoid, int64_t now, int64_t *wake)
{
    int best = -1;
    for (size_t i = 0; i < p->count; i++) {
        bp_endpoint *e = &p->eps[i];
        if ((int)i == avoid || !usable(e, need, now, wake))
            continue;
        if (rate_of(e) > 0 && lower_waiting(p, need)) {
            p->stood_back = true; /* the lower one wakes us when it is done (stop_waiting) */
            continue;
        }
        if (best < 0)
            best = (int)i;
        bp_endpoint *b = &p->eps[best];
        /* fuller means in_flight/limit larger: compare without division */
        if (e->priority < b->priority ||
            (e->priority == b->priority && e->in_flight * b->limit < b->in_flight * e->limit))
            best = (int)i;
    }
    return best;
}

static void wait_until(bp_pool *p, int64_t at_ms)
{
    struct timespec ts = {.tv_sec = at_ms / 1000, .tv_nsec = (at_ms % 1000) * 1000000L};
    int rc = pthread_cond_timedwait(&p->cv, &p->lock, &ts);
    (void)rc; /* ETIMEDOUT and wake-ups are handled alike: look again */
}

static void stop_waiting(bp_pool *p, bp_pool_waiter *me)
{
    bp_pool_waiter **w = &p->waiters;
    while (*w != me)
        w = &(*w)->next;
    *w = me->next;
    if (p->stood_back) {
        p->stood_back = false;
        pthread_cond_broadcast(&p->cv);
    }
}

int bp_pool_acquire(bp_pool *p, uint64_t need, int avoid, long timeout_ms, int *batch)
{
    int64_t deadline = now_ms() + timeout_ms;
    int i = -1;
    pthread_mutex_lock(&p->lock);
    bp_pool_waiter me = {.need = need, .next = p->waiters};
    p->waiters = &me;
    while (!p->closed) {
        int64_t now = now_ms(), wake = deadline;
        i = pick(p, need, avoid, now, &wake);
        if (i < 0 && avoid >= 0)
            i = pick(p, need, -1, now, &wake);
        if (i >= 0) {
            bp_endpoint *e = &p->eps[i];
            e->in_flight++;
            start_request(e, now);
            if (e->state == BP_EP_EJECTED)
                e->state = BP_EP_PROBING;
            *batch = capped_batch(e);
            break;
        }
        if (now >= deadline)
            break;
        wait_until(p, wake < deadline ? wake : deadline);
    }
    stop_waiting(p, &me);
    pthread_mutex_unlock(&p->lock);
    return i;
}

/* Blocks per request follow the answers' size: `fit` blocks of the size this answer measured
 * make an answer of about the target. Below fit the batch doubles towards it, so a few answers
 * reach the settled size where growing by one per answer took ~30; it never jumps to fit, as
 * one answer is a sample (block 0 is empty on most chains: sizing from it alone would send
 * every first request at max_batch). More than twice fit (sized while blocks were smaller,
 * then only small requests went out) it drops to fit; an answer above twice the target
 * halves it, so huge blocks go one per request. */
static void adapt_batch(bp_pool *p, bp_endpoint *e, size_t blocks, size_t bytes)
{
    size_t per_block = blocks ? bytes / blocks : bytes;
    size_t target = BP_POOL_TARGET_BYTES, refused = atomic_load(&e->limits.max_bytes);
    if (refused && refused / 2 < target)
        target = refused / 2 ? refused / 2 : 1;
    size_t fit = per_block ? target / per_block : (size_t)p->max_batch;
    size_t batch = (size_t)e->batch;
    if (fit > (size_t)p->max_batch)
        fit = (size_t)p->max_batch;
    if (bytes > 2 * BP_POOL_TARGET_BYTES)
        batch = batch > 1 ? batch / 2 : 1;
    else if (batch > 2 * fit)
        batch = fit > 1 ? fit : 1;
    else if (batch < fit)
        batch = 2 * batch < fit ? 2 * batch : fit;
    e->batch = (int)batch;
}

/* A 429 / -32005: nobody sends to e before Retry-After has passed. */
static void rate_limited(bp_endpoint *e, long retry_after_s, int64_t now)
{
    bool first = e->rl.refusals == 0, unknown = e->rl.rps <= 0;
    /* not fresh: a request already on its way, the pause in force was only extended */
    bool fresh = bp_ratelimit_refused(&e->rl, retry_after_s, now);
    if (fresh && e->rl.rps > 0)
        bp_logf(first || unknown ? BP_LOG_INFO : BP_LOG_DEBUG,
                "rpc %s answered 429 (not a failure): paused %ld ms (its Retry-After, 1 s "
                "without one, longer after 429s with nothing accepted), then held to %.2f "
                "requests/s",
                e->url, bp_ratelimit_wait(&e->rl, now), e->rl.rps);
    else if (fresh && first) /* nothing accepted before it: no rate to learn yet */
        bp_info("rpc %s answered 429 (not a failure): paused %ld ms (its Retry-After, at least "
                "2 s with nothing accepted); the rate it accepts is measured after the pause",
                e->url, bp_ratelimit_wait(&e->rl, now));
    if (e->rl.until_ms > e->not_before_ms)
        e->not_before_ms = e->rl.until_ms;
}

static void on_success(bp_pool *p, bp_endpoint *e, const bp_pool_outcome *o, int64_t now)
{
    bp_ratelimit_accepted(&e->rl, now - o->latency_us / 1000, now);
    bp_hist_add(&e->latency_us, o->latency_us > 0 ? (uint64_t)o->latency_us : 0);
    e->blocks += o->blocks;
    e->consecutive_failures = 0;
    if (e->state == BP_EP_PROBING) {
        bp_info("rpc %s is healthy again", e->url);
        e->state = BP_EP_HEALTHY;
    }
    e->backoff_ms = 0; /* also after a probe of the coordinator's (bp_pool_probed) */
    if (++e->successes >= e->limit) {
        e->successes = 0;
        if (e->limit < e->max_workers)
            e->limit++;
    }
    adapt_batch(p, e, o->blocks, o->bytes);
}

static bool another_healthy(const bp_pool *p, const bp_endpoint *e)
{
    for (size_t i = 0; i < p->count; i++)
        if (&p->eps[i] != e && p->eps[i].state == BP_EP_HEALTHY)
            return true;
    return false;
}

static void eject(bp_pool *p, bp_endpoint *e, int64_t now)
{
    e->backoff_ms = e->backoff_ms ? e->backoff_ms * 2 : EJECT_FIRST_MS;
    if (e->backoff_ms > EJECT_MAX_MS)
        e->backoff_ms = EJECT_MAX_MS;
    /* With nowhere else to go a long pause only stops the chain: probe again soon. */
    if (!another_healthy(p, e) && e->backoff_ms > EJECT_FIRST_MS)
        e->backoff_ms = EJECT_FIRST_MS;
    e->not_before_ms = now + e->backoff_ms;
    e->state = BP_EP_EJECTED;
    e->recheck = true;
    e->ejections++;
    bp_warn("rpc %s ejected for %ld ms after %d consecutive failure(s): %s", e->url, e->backoff_ms,
            e->consecutive_failures, e->last_error);
}

static void on_failure(bp_pool *p, bp_endpoint *e, int rc, uint64_t need, long retry_after_s,
                       int64_t now)
{
    if (rc == BP_ERATELIMIT) {
        rate_limited(e, retry_after_s, now);
        return;
    }
    e->errors++;
    if (rc == BP_ENOTFOUND) { /* the endpoint is behind: do not ask it for the tip */
        uint64_t h = need > 0 ? need - 1 : 0;
        if (!e->head_known || h < e->head)
            e->head = h;
        e->head_known = true;
        return;
    }
    e->consecutive_failures++;
    e->batch = rc == BP_ETOOBIG ? 1 : (e->batch > 1 ? e->batch / 2 : 1);
    e->limit = e->limit > 1 ? e->limit / 2 : 1;
    e->successes = 0;
    /* Requests that were in flight when it went down fail after the ejection: one outage
     * is one ejection, not one per request (the backoff would double each time). */
    if (e->state == BP_EP_PROBING ||
        (e->state == BP_EP_HEALTHY && e->consecutive_failures >= EJECT_AFTER_FAILURES))
        eject(p, e, now);
}

void bp_pool_done(bp_pool *p, int ep, const bp_pool_outcome *o)
{
    int rc = o->rc;
    pthread_mutex_lock(&p->lock);
    bp_endpoint *e = &p->eps[ep];
    e->in_flight--;
    if (rc != BP_ESTOPPED)
        e->requests++;
    if (rc != 0 && o->error_text)
        snprintf(e->last_error, sizeof(e->last_error), "%s", o->error_text);
    if (rc == 0)
        on_success(p, e, o, now_ms());
    else if (rc != BP_ESTOPPED)
        on_failure(p, e, rc, o->need, o->retry_after_s, now_ms());
    else if (e->state == BP_EP_PROBING)
        e->state = BP_EP_EJECTED; /* the probe was cut short: probe again later */
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->lock);
}

long bp_pool_may_call(bp_pool *p, int ep)
{
    pthread_mutex_lock(&p->lock);
    bp_endpoint *e = &p->eps[ep];
    int64_t now = now_ms();
    long left = bp_ratelimit_wait(&e->rl, now);
    if (left == 0) {
        refill(e, now);
        start_request(e, now); /* the token may go into debt: workers wait a little longer */
    }
    pthread_mutex_unlock(&p->lock);
    return left;
}

long bp_pool_pause_left(bp_pool *p, int ep)
{
    pthread_mutex_lock(&p->lock);
    long left = bp_ratelimit_wait(&p->eps[ep].rl, now_ms());
    pthread_mutex_unlock(&p->lock);
    return left;
}

void bp_pool_called(bp_pool *p, int ep, int rc, long retry_after_s)
{
    pthread_mutex_lock(&p->lock);
    bp_endpoint *e = &p->eps[ep];
    int64_t now = now_ms();
    if (rc == 0) /* a head poll let through ends no probe: block fetches may still be refused */
        bp_ratelimit_accepted_aside(&e->rl, now, now);
    else if (rc == BP_ERATELIMIT)
        rate_limited(e, retry_after_s, now); /* makes no one's wait shorter: no wake-up */
    pthread_mutex_unlock(&p->lock);
}

void bp_pool_set_head(bp_pool *p, int ep, uint64_t head)
{
    pthread_mutex_lock(&p->lock);
    p->eps[ep].head = head;
    p->eps[ep].head_known = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->lock);
}

void bp_pool_set_chain(bp_pool *p, int ep, enum bp_ep_chain chain)
{
    pthread_mutex_lock(&p->lock);
    p->eps[ep].chain = chain;
    p->eps[ep].recheck = false;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->lock);
}

bool bp_pool_needs_recheck(bp_pool *p, int ep, bool *due)
{
    pthread_mutex_lock(&p->lock);
    bp_endpoint *e = &p->eps[ep];
    bool pending = e->recheck;
    *due = pending && now_ms() >= e->not_before_ms;
    pthread_mutex_unlock(&p->lock);
    return pending;
}

void bp_pool_recheck(bp_pool *p, int ep)
{
    pthread_mutex_lock(&p->lock);
    p->eps[ep].recheck = p->eps[ep].chain == BP_EP_CHAIN_OK;
    pthread_mutex_unlock(&p->lock);
}

void bp_pool_recheck_failed(bp_pool *p, int ep, const char *why)
{
    pthread_mutex_lock(&p->lock);
    bp_endpoint *e = &p->eps[ep];
    e->consecutive_failures++;
    snprintf(e->last_error, sizeof(e->last_error), "eth_chainId: %s", why);
    eject(p, e, now_ms());
    pthread_mutex_unlock(&p->lock);
}

/* Ejected, its pause over, and no worker probing it: the pool's own state says so. */
static bool probe_due(const bp_endpoint *e, int64_t now)
{
    return e->state == BP_EP_EJECTED && e->chain == BP_EP_CHAIN_OK && !e->recheck &&
           e->in_flight == 0 && now >= e->not_before_ms;
}

bool bp_pool_probe_due(bp_pool *p, int ep)
{
    pthread_mutex_lock(&p->lock);
    bool due = probe_due(&p->eps[ep], now_ms());
    pthread_mutex_unlock(&p->lock);
    return due;
}

void bp_pool_probed(bp_pool *p, int ep, int rc, const char *why)
{
    pthread_mutex_lock(&p->lock);
    bp_endpoint *e = &p->eps[ep];
    int64_t now = now_ms();
    if (probe_due(e, now) && rc == 0) {
        bp_info("rpc %s is healthy again (it answered a probe for its head)", e->url);
        e->state = BP_EP_HEALTHY;
        e->consecutive_failures = 0;
        /* as a worker's probe does: its next outage starts again at the first backoff, not at
         * twice the last one (a backup endpoint that gets no block request would keep the
         * 60 s of an old outage for good) */
        e->backoff_ms = 0;
    } else if (probe_due(e, now)) {
        e->consecutive_failures++;
        snprintf(e->last_error, sizeof(e->last_error), "probe: %s", why ? why : "failed");
        eject(p, e, now);
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->lock);
}

void bp_pool_raise_heads(bp_pool *p, uint64_t head)
{
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->count; i++)
        if (p->eps[i].head_known && p->eps[i].head < head)
            p->eps[i].head = head;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->lock);
}

void bp_pool_close(bp_pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->closed = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->lock);
}

bool bp_pool_is_closed(bp_pool *p)
{
    pthread_mutex_lock(&p->lock);
    bool closed = p->closed;
    pthread_mutex_unlock(&p->lock);
    return closed;
}

int bp_pool_capacity(const bp_pool *p)
{
    int n = 0;
    for (size_t i = 0; i < p->count; i++)
        n += p->eps[i].max_workers;
    return n;
}

int bp_pool_batch_hint(bp_pool *p)
{
    int best = 1;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->count; i++)
        if (p->eps[i].state == BP_EP_HEALTHY && capped_batch(&p->eps[i]) > best)
            best = capped_batch(&p->eps[i]);
    pthread_mutex_unlock(&p->lock);
    return best;
}

bool bp_pool_requests_scarce(bp_pool *p)
{
    bool scarce = false;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->count; i++) {
        const bp_endpoint *e = &p->eps[i];
        if (e->state != BP_EP_HEALTHY || e->chain != BP_EP_CHAIN_OK)
            continue;
        if (rate_of(e) <= 0) {
            scarce = false;
            break;
        }
        scarce = true;
    }
    pthread_mutex_unlock(&p->lock);
    return scarce;
}

static const char *state_name(const bp_endpoint *e, int64_t now)
{
    if (e->chain != BP_EP_CHAIN_OK)
        return e->chain == BP_EP_CHAIN_UNCHECKED ? "unchecked" : "other-chain";
    if (e->state == BP_EP_HEALTHY && bp_ratelimit_recent(&e->rl, now))
        return "rate-limited";
    return e->state == BP_EP_HEALTHY   ? "healthy"
           : e->state == BP_EP_EJECTED ? "ejected"
                                       : "probing";
}

size_t bp_pool_stats(bp_pool *p, bp_stats_endpoint *out, size_t max)
{
    pthread_mutex_lock(&p->lock);
    int64_t now = now_ms();
    size_t n = p->count < max ? p->count : max;
    for (size_t i = 0; i < n; i++) {
        const bp_endpoint *e = &p->eps[i];
        bp_stats_endpoint *o = &out[i];
        memset(o, 0, sizeof(*o));
        snprintf(o->url, sizeof(o->url), "%s", e->url);
        snprintf(o->state, sizeof(o->state), "%s", state_name(e, now));
        o->head_known = e->head_known;
        o->head = e->head;
        o->in_flight = e->in_flight;
        o->limit = e->limit;
        o->batch = capped_batch((bp_endpoint *)e);
        o->rps = rate_of(e) > 0 ? rate_of(e) : 0;
        o->rate_limited = bp_ratelimit_recent(&e->rl, now);
        o->requests = e->requests;
        o->errors = e->errors;
        o->rate_limits = e->rl.refusals;
        o->ejections = e->ejections;
        o->blocks = e->blocks;
        bp_hist_latency_ms(&e->latency_us, &o->latency);
        bp_rpc_limits_describe((bp_rpc_limits *)&e->limits, o->limits, sizeof(o->limits));
    }
    pthread_mutex_unlock(&p->lock);
    return n;
}
