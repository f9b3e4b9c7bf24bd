/* ratelimit.h - what a provider's 429s teach about one endpoint: when it may be asked again
 * and the request rate it accepts.
 *
 * A 429 (or JSON-RPC -32005) is the provider saying "slower", not a failure: nothing is sent
 * to the endpoint until the instant its Retry-After names (1 s when absent). The first 429
 * of a pause also ends a measurement: the requests the endpoint accepted since the last pause
 * (by when they started, so answers still on their way count when they arrive) over the time
 * from then to this pause's end is the rate it accepts. A pause in which nothing was accepted
 * since the last one (a restart while the quota is spent, a 429 again at once when a pause
 * ends) measured nothing: it belongs to the episode of the pause before and cuts nothing
 * (before any measurement no rate is learnt at all: the pause alone holds the endpoint back,
 * and the first cycle after it measures the provider's rate). Such pauses grow instead: after
 * k in a row with nothing accepted, 2^k s (at most 60 s, never shorter than Retry-After), and
 * after a pause the pool sends one request at a time (a probe) until one is accepted, so a
 * provider that answers 429 for ever is not asked by every worker at each pause's end. A
 * measurement sets the rate: what it measured, never above the rate before and never below
 * half of it (an idle stretch in the cycle must not sink it). While no 429 comes, after each
 * cycle in which requests waited for the rate it grows: doubling (one cycle = at least 1 s
 * and two requests) up to the last rate the provider was seen to accept (measured, or held
 * for a whole quiet cycle; the first measurement is only a floor: it doubles until the next
 * 429, as a window may have had one request left when we came), then by a step (a twentieth
 * of the rate when it was learnt) per measured span.
 * Plain data, no lock, times passed in (monotonic ms): the pool holds one per endpoint under
 * its own lock. */
#ifndef BP_CORE_RATELIMIT_H
#define BP_CORE_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* A 429 without Retry-After pauses this long. */
#define BP_RATELIMIT_DEFAULT_MS 1000L
/* The lowest rate learnt: one request per 100 s. */
#define BP_RATELIMIT_MIN_RPS 0.01

typedef struct bp_ratelimit {
    int64_t until_ms;    /* paused until; nothing may be sent before */
    int64_t last_429_ms; /* 0: never */
    uint64_t refusals;   /* 429s counted */
    double rps;          /* the rate it accepts; 0: none learnt */
    double good;         /* the last rate it was seen to accept: rps doubles up to it */
    double step;         /* added to rps per quiet cycle at or above good */
    bool starved;        /* a request waited for the rate since the last step */
    int64_t raise_ms;    /* the next step is due */
    int64_t cycle_ms;    /* the current measurement started (a pause ended, or work resumed) */
    uint64_t cycle_ok;   /* requests started since cycle_ms and accepted */
    int64_t last_use_ms; /* the last request started */
    /* the last measurement: requests started from from_ms to to_ms (its 429), accepted, over
     * span_ms (to the pause's end); answers to requests started in it may still arrive */
    double before; /* rps before it */
    int64_t from_ms, to_ms, span_ms;
    uint64_t ok;
    /* a request started since the last pause (or the start) was accepted: until then, once a
     * pause has been, one request at a time (a probe) */
    bool answered;
    int empty; /* pauses in a row with nothing accepted since the one before (at most 6) */
} bp_ratelimit;

void bp_ratelimit_init(bp_ratelimit *r, int64_t now);
/* A request starts now (the caller checked bp_ratelimit_wait). An endpoint idle for 2 s
 * starts a new measurement: idle time says nothing about what it accepts. */
void bp_ratelimit_start(bp_ratelimit *r, int64_t now);
/* A request started at `started` was accepted (answered, not with a 429). */
void bp_ratelimit_accepted(bp_ratelimit *r, int64_t started, int64_t now);
/* The same of a request the probe is not about (a head poll, eth_chainId, one header): a
 * provider may let those through while it refuses every block fetch, so it counts for the rate
 * measured (the provider accepted it) but ends no probe and leaves the pauses growing. */
void bp_ratelimit_accepted_aside(bp_ratelimit *r, int64_t started, int64_t now);
/* A 429 with Retry-After retry_after_s (0: none). Returns true when it began a new pause
 * (429s of requests that were already on their way only extend the one in force). */
bool bp_ratelimit_refused(bp_ratelimit *r, long retry_after_s, int64_t now);
/* True after a pause until a request started after it is accepted: the endpoint gets one
 * request at a time (a probe), not every worker at each pause's end. */
bool bp_ratelimit_probing(const bp_ratelimit *r);
/* Ms left of the pause in force (0: none). */
long bp_ratelimit_wait(const bp_ratelimit *r, int64_t now);
/* A 429 in the last minute: the state and the stats line say rate-limited. */
bool bp_ratelimit_recent(const bp_ratelimit *r, int64_t now);

#endif
