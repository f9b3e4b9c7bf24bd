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
        e->limit = e->max_workers;
        e->batch = START_BATCH < p->max_batch ? START_BATCH : p->max_batch;
        e->tokens = e->rps > 1 ? e->rps : 1;
        e->tokens_ms = now_ms();
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

/* Refills the token bucket; true when a request may go now, else *wake says when. */
static bool take_token_possible(bp_endpoint *e, int64_t now, int64_t *wake)
{
    if (e->rps <= 0)
        return true;
    double burst = e->rps > 1 ? e->rps : 1;
    e->tokens += (double)(now - e->tokens_ms) * e->rps / 1000.0;
    if (e->tokens > burst)
        e->tokens = burst;
    e->tokens_ms = now;
    if (e->tokens >= 1)
        return true;
    int64_t at = now + (int64_t)((1 - e->tokens) * 1000.0 / e->rps) + 1;
    if (at < *wake)
        *wake = at;
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
    int limit = e->state == BP_EP_HEALTHY ? e->limit : 1; /* probing: one at a time */
    if (e->in_flight >= limit)
        return false;
    return take_token_possible(e, now, wake);
}

static int pick(bp_pool *p, uint64_t need, int avoid, int64_t now, int64_t *wake)
{
    int best = -1;
    for (size_t i = 0; i < p->count; i++) {
        bp_endpoint *e = &p->eps[i];
        if ((int)i == avoid || !usable(e, need, now, wake))
            continue;
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

int bp_pool_acquire(bp_pool *p, uint64_t need, int avoid, long timeout_ms, int *batch)
{
    int64_t deadline = now_ms() + timeout_ms;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        if (p->closed)
            break;
        int64_t now = now_ms(), wake = deadline;
        int i = pick(p, need, avoid, now, &wake);
        if (i < 0 && avoid >= 0)
            i = pick(p, need, -1, now, &wake);
        if (i >= 0) {
            bp_endpoint *e = &p->eps[i];
            e->in_flight++;
            if (e->rps > 0)
                e->tokens -= 1;
            if (e->state == BP_EP_EJECTED)
                e->state = BP_EP_PROBING;
            *batch = e->batch;
            pthread_mutex_unlock(&p->lock);
            return i;
        }
        if (now >= deadline)
            break;
        wait_until(p, wake < deadline ? wake : deadline);
    }
    pthread_mutex_unlock(&p->lock);
    return -1;
}

/* Grow the batch while one more block would keep the answer under the target size. */
static void adapt_batch(bp_pool *p, bp_endpoint *e, size_t blocks, size_t bytes)
{
    size_t per_block = blocks ? bytes / blocks : bytes;
    if (bytes > 2 * BP_POOL_TARGET_BYTES)
        e->batch = e->batch > 1 ? e->batch / 2 : 1;
    else if (e->batch < p->max_batch && per_block * (size_t)(e->batch + 1) <= BP_POOL_TARGET_BYTES)
        e->batch++;
}

static void on_success(bp_pool *p, bp_endpoint *e, const bp_pool_outcome *o)
{
    bp_hist_add(&e->latency_us, o->latency_us > 0 ? (uint64_t)o->latency_us : 0);
    e->blocks += o->blocks;
    e->consecutive_failures = 0;
    if (e->state == BP_EP_PROBING) {
        bp_info("rpc %s is healthy again", e->url);
        e->state = BP_EP_HEALTHY;
        e->backoff_ms = 0;
    }
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
        e->rate_limited++;
        e->not_before_ms = now + (retry_after_s > 0 ? retry_after_s : 1) * 1000;
        e->limit = e->limit > 1 ? e->limit / 2 : 1;
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
        on_success(p, e, o);
    else if (rc != BP_ESTOPPED)
        on_failure(p, e, rc, o->need, o->retry_after_s, now_ms());
    else if (e->state == BP_EP_PROBING)
        e->state = BP_EP_EJECTED; /* the probe was cut short: probe again later */
    pthread_cond_broadcast(&p->cv);
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
        if (p->eps[i].state == BP_EP_HEALTHY && p->eps[i].batch > best)
            best = p->eps[i].batch;
    pthread_mutex_unlock(&p->lock);
    return best;
}

static const char *state_name(const bp_endpoint *e)
{
    if (e->chain != BP_EP_CHAIN_OK)
        return e->chain == BP_EP_CHAIN_UNCHECKED ? "unchecked" : "other-chain";
    return e->state == BP_EP_HEALTHY   ? "healthy"
           : e->state == BP_EP_EJECTED ? "ejected"
                                       : "probing";
}

void bp_pool_format_stats(bp_pool *p, bp_buf *out)
{
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->count; i++) {
        bp_endpoint *e = &p->eps[i];
        bp_hist_summary s;
        bp_hist_summarize(&e->latency_us, &s);
        char head[24] = "?";
        if (e->head_known)
            snprintf(head, sizeof(head), "%" PRIu64, e->head);
        bp_buf_printf(out,
                      "%srpc[%zu] %s state=%s head=%s in_flight=%d limit=%d batch=%d "
                      "requests=%" PRIu64 " errors=%" PRIu64 " 429s=%" PRIu64 " ejections=%" PRIu64
                      " blocks=%" PRIu64 " p50=%.1fms p99=%.1fms",
                      i ? "\n" : "", i, e->url, state_name(e), head, e->in_flight, e->limit,
                      e->batch, e->requests, e->errors, e->rate_limited, e->ejections, e->blocks,
                      (double)s.p50 / 1000.0, (double)s.p99 / 1000.0);
    }
    pthread_mutex_unlock(&p->lock);
}
