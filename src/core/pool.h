/* pool.h - the RPC endpoints of one chain: which one serves the next request.
 *
 * Scheduling fills the preferred endpoints (lowest priority value) up to their concurrency
 * first and spills to the next. Each endpoint has
 *   - an adaptive concurrency limit (halved on failure, +1 after `limit` successes, within
 *     1..max_workers) and an adaptive batch size (blocks per HTTP request: doubled on
 *     success up to what keeps an answer near BP_POOL_TARGET_BYTES at the answer's bytes per
 *     block, back to that when more than twice it; halved on failure, timeouts and oversized
 *     answers; within 1..max_batch);
 *   - an optional request rate (token bucket of `rps`);
 *   - a health state: HEALTHY; EJECTED after 3 consecutive failures (exponential backoff
 *     from 1 s to 60 s); PROBING when the backoff ends (one request at a time: success makes
 *     it HEALTHY, failure ejects it again for twice as long); when no request comes to probe
 *     it (an idle chain), the coordinator's head request does (bp_pool_probe_due), asked on
 *     a thread of its own (core/prober.h) so that a hanging endpoint never holds the
 *     coordinator;
 *   - rate limiting by the provider (core/ratelimit.h): HTTP 429 / -32005 is not a
 *     failure. It pauses the endpoint for every worker and the coordinator until the instant
 *     Retry-After names (1 s when absent) and teaches the request rate the endpoint accepts,
 *     which paces the token bucket from then on (evenly, no burst); while tokens are short
 *     the waiter with the lowest block goes first (the commit waits on it). Concurrency and
 *     batch size are left alone: a 429 is about the number of requests, not their size;
 *   - the head it last reported: it is never asked for a block above that head, so a
 *     lagging endpoint is not trusted for the tip;
 *   - the limits its answers taught (chain/limits.h): no batches or a batch cap, an answer
 *     size cap, methods it lacks. Learning one is not a failure; blocks per request are
 *     held within them (and the answer size aimed at stays under half a refused answer).
 * Thread-safe: workers acquire and release, the coordinator sets heads and reads stats. */
#ifndef BP_CORE_POOL_H
#define BP_CORE_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/error.h"
#include "blockpipe/stats.h"
#include "chain/limits.h"
#include "chain/rpc.h"
#include "core/ratelimit.h"
#include "util/buf.h"
#include "util/histogram.h"

typedef struct bp_endpoint_spec {
    const char *url;
    int max_workers;       /* 0: the pool's default */
    int priority;          /* lower is preferred */
    double rps;            /* 0: no limit */
    bp_endpoint_auth auth; /* headers, TLS files: the caller's, outliving the pool */
} bp_endpoint_spec;

enum bp_ep_state { BP_EP_HEALTHY = 0, BP_EP_EJECTED, BP_EP_PROBING };

/* Whether the endpoint is known to serve the pool's chain (eth_chainId): only CHAIN_OK ones
 * get requests. One that did not answer at start is UNCHECKED until it does. */
enum bp_ep_chain { BP_EP_CHAIN_OK = 0, BP_EP_CHAIN_UNCHECKED, BP_EP_CHAIN_OTHER };

typedef struct bp_endpoint {
    char *url; /* keys masked (bp_url_redact): for logs and stats */
    char *real_url;
    bp_endpoint_auth auth; /* from the spec */
    int max_workers, priority;
    double rps;

    enum bp_ep_state state;
    enum bp_ep_chain chain;
    bool recheck; /* ejected or unreachable since it last named the chain: no requests until
                     it does again */
    int in_flight, limit, batch, successes;
    int consecutive_failures;
    int64_t not_before_ms; /* ejected or rate-limited until (monotonic ms) */
    long backoff_ms;
    double tokens;
    int64_t tokens_ms;
    bool head_known;
    uint64_t head;

    bp_ratelimit rl;      /* what its 429s taught */
    bp_rpc_limits limits; /* what its answers taught: batch and answer caps, methods it lacks
                             (learnt by the fetch path, chain/limits.h) */

    uint64_t requests, errors, ejections, blocks;
    bp_hist latency_us;
    char last_error[200];
} bp_endpoint;

/* A thread waiting in bp_pool_acquire for blocks up to `need` (on its stack). */
typedef struct bp_pool_waiter {
    uint64_t need;
    struct bp_pool_waiter *next;
} bp_pool_waiter;

typedef struct bp_pool {
    bp_endpoint *eps;
    size_t count;
    int max_batch;
    bool closed;
    bp_pool_waiter *waiters; /* threads in bp_pool_acquire */
    bool stood_back;         /* one let a lower block go first: wake it after */
    pthread_mutex_t lock;
    pthread_cond_t cv;
} bp_pool;

/* default_workers is used for endpoints without max_workers. */
int bp_pool_init(bp_pool *p, const bp_endpoint_spec *specs, size_t n, int default_workers,
                 int max_batch, bp_error *err);
void bp_pool_release(bp_pool *p);

/* Picks an endpoint for blocks up to `need`, avoiding endpoint `avoid` (-1: none) while
 * another is usable. Waits up to timeout_ms. Returns the endpoint index, or -1 on timeout
 * or when the pool is closed. *batch gets the endpoint's blocks-per-request. */
int bp_pool_acquire(bp_pool *p, uint64_t need, int avoid, long timeout_ms, int *batch);

/* What one request of `blocks` blocks on endpoint ep did. rc is 0 or BP_E*; bytes is the
 * answer size (the batch grows only while answers stay under BP_POOL_TARGET_BYTES, and
 * shrinks above twice that, so huge blocks go one per request and memory stays bounded);
 * retry_after_s from a 429 (0 if none); need is the highest block asked for (a "not found"
 * there means the endpoint's head is below it). */
#define BP_POOL_TARGET_BYTES ((size_t)4 << 20)
typedef struct bp_pool_outcome {
    int rc;
    int64_t latency_us;
    size_t blocks;
    size_t bytes;
    uint64_t need;
    long retry_after_s;
    const char *error_text;
} bp_pool_outcome;
void bp_pool_done(bp_pool *p, int ep, const bp_pool_outcome *o);

/* The coordinator's own requests to endpoint ep (head polls, chain checks, reorg walks).
 * Returns 0 when one may be sent now: it takes a token of the endpoint's rate, on credit if
 * none is left (the coordinator never waits). Else the ms left of a pause a 429 asked for:
 * send nothing, skip the endpoint this time. */
long bp_pool_may_call(bp_pool *p, int ep);

/* The milliseconds endpoint ep's pause (a 429 and its Retry-After, the learnt rate) has left,
 * without asking anything: 0 when it may be asked now. */
long bp_pool_pause_left(bp_pool *p, int ep);
/* What such a request got: a 429 / -32005 (rc BP_ERATELIMIT) pauses the endpoint for
 * everyone, as a worker's would; an accepted one counts for the rate it learns, but ends no
 * probe after a pause (bp_ratelimit_accepted_aside): a provider may let head polls through
 * while it refuses every block fetch. */
void bp_pool_called(bp_pool *p, int ep, int rc, long retry_after_s);

void bp_pool_set_head(bp_pool *p, int ep, uint64_t head);
/* What eth_chainId said of endpoint ep (see enum bp_ep_chain); ends a recheck. */
void bp_pool_set_chain(bp_pool *p, int ep, enum bp_ep_chain chain);
/* An ejected endpoint must name the chain again before it gets requests: the node behind
 * the URL may have been replaced while it was down. True while that is pending; *due once
 * its ejection pause is over (ask now). */
bool bp_pool_needs_recheck(bp_pool *p, int ep, bool *due);
/* The endpoint could not be reached (a head poll): it is rechecked before it is used. */
void bp_pool_recheck(bp_pool *p, int ep);
/* eth_chainId failed during a recheck: a failed probe, ejected again for longer. */
void bp_pool_recheck_failed(bp_pool *p, int ep, const char *why);
/* An ejected endpoint gets its probe from the next worker request once its pause is over;
 * a chain with nothing to fetch (or a healthy preferred endpoint taking every request) sends
 * it none, so it would stay ejected for good. The coordinator probes it then: true while
 * endpoint ep is ejected, named the chain again, its pause over and no worker probing it. */
bool bp_pool_probe_due(bp_pool *p, int ep);
/* What the coordinator's probe (a head request) got: rc 0 makes it HEALTHY again and resets
 * its backoff (as a worker's successful probe does), a failure ejects it again for twice as
 * long (why: the error, for the log). Ignored when the probe is no longer due. */
void bp_pool_probed(bp_pool *p, int ep, int rc, const char *why);
/* A head announced elsewhere (the WebSocket): every endpoint is trusted up to it until its
 * own poll or a "not found" says it is behind. */
void bp_pool_raise_heads(bp_pool *p, uint64_t head);
/* Wakes every waiter; acquire returns -1 from now on. */
void bp_pool_close(bp_pool *p);
bool bp_pool_is_closed(bp_pool *p);
/* Total worker threads worth running: the sum of the endpoints' max_workers. */
int bp_pool_capacity(const bp_pool *p);
/* The largest batch any usable endpoint would take now (job sizing). */
int bp_pool_batch_hint(bp_pool *p);
/* True when every usable endpoint is held to a request rate (configured or learnt): then
 * fewer, fuller requests are worth more than spreading blocks over workers. */
bool bp_pool_requests_scarce(bp_pool *p);
/* Every endpoint's state and counters (at most max), for the stats snapshot. */
size_t bp_pool_stats(bp_pool *p, bp_stats_endpoint *out, size_t max);

#endif
