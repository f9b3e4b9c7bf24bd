/* ratelimit.c - pauses and the learnt request rate of one endpoint (see ratelimit.h). */
#include "core/ratelimit.h"

#include <math.h>
#include <string.h>

#define IDLE_MS 2000L
#define RECENT_MS 60000L
/* A measurement shorter than this says little; one longer is capped (a slow provider). */
#define SPAN_MIN_MS 1000L
#define SPAN_MAX_MS 60000L
/* The longest pause grown after 429s with nothing accepted between them. */
#define EMPTY_MAX_MS 60000L

void bp_ratelimit_init(bp_ratelimit *r, int64_t now)
{
    memset(r, 0, sizeof(*r));
    r->cycle_ms = r->last_use_ms = now;
}

bool bp_ratelimit_probing(const bp_ratelimit *r)
{
    return r->last_429_ms > 0 && !r->answered;
}

void bp_ratelimit_start(bp_ratelimit *r, int64_t now)
{
    if (now - r->last_use_ms > IDLE_MS) {
        r->cycle_ms = now;
        r->cycle_ok = 0;
    }
    r->last_use_ms = now;
}

/* The rate a measurement of ok (> 0) requests over span_ms sets: what it measured, never
 * above the rate before (growing is the quiet cycles' job) nor below half of it. */
static double rate_after(double before, double measured)
{
    double rate = before > 0 && before < measured ? before : measured;
    if (before > 0 && rate < before / 2)
        rate = before / 2;
    return rate < BP_RATELIMIT_MIN_RPS ? BP_RATELIMIT_MIN_RPS : rate;
}

/* The rate after the last measurement. Nothing accepted in it: nothing measured, the rate
 * stays (one cut per episode: a 429 again at once when a pause ends, or a restart while the
 * quota is spent, must not sink it, nor teach a rate that is only the pause's inverse). The
 * first measurement (no rate before it) is a floor, not a ceiling: what a provider's window
 * had left when we came (one request of it, after a restart) says nothing about its rate, so
 * the rate doubles from it until the next 429 measures one (it used to stop doubling there:
 * 1 request before a 20 s Retry-After held the endpoint to 0.05 requests/s, +5 % per 20 s). */
static void measure(bp_ratelimit *r)
{
    if (r->ok == 0) {
        r->rps = r->before;
        return;
    }
    double measured = (double)r->ok * 1000.0 / (double)r->span_ms;
    r->rps = rate_after(r->before, measured);
    r->step = r->rps / 20;
    /* what the provider gave this time, not what it gave once */
    r->good = r->before > 0 ? measured : HUGE_VAL;
}

/* The time a quiet cycle lasts: while the rate is below the last good one, long enough for
 * two requests at it (and 1 s); at or above it, the span measured (a provider's window). */
static int64_t cycle_len(const bp_ratelimit *r)
{
    if (r->rps >= r->good)
        return r->span_ms;
    double two = 2000.0 / r->rps;
    int64_t len = two < (double)SPAN_MIN_MS ? SPAN_MIN_MS : (int64_t)two;
    return len < r->span_ms ? len : r->span_ms;
}

/* An accepted request; fetch: one of the requests a probe is about (blocks), which ends the
 * probe and the pauses' growth. */
static void accepted(bp_ratelimit *r, int64_t started, int64_t now, bool fetch)
{
    if (r->span_ms > 0 && started >= r->from_ms && started < r->to_ms) {
        /* on its way when the last pause began: it belongs to that measurement */
        r->ok++;
        measure(r);
        return;
    }
    r->cycle_ok++;
    if (fetch) {
        r->answered = true;
        r->empty = 0;
    }
    if (r->rps <= 0 || now < r->raise_ms)
        return;
    /* growing it while nothing waits would prove nothing */
    if (r->starved && r->rps < r->good) {
        r->rps = 2 * r->rps < r->good ? 2 * r->rps : r->good; /* back to what it accepted */
    } else if (r->starved) {
        r->good = r->rps; /* held for a whole quiet cycle: accepted */
        r->rps += r->step;
    }
    r->starved = false;
    r->raise_ms = now + cycle_len(r);
}

void bp_ratelimit_accepted(bp_ratelimit *r, int64_t started, int64_t now)
{
    accepted(r, started, now, true);
}

void bp_ratelimit_accepted_aside(bp_ratelimit *r, int64_t started, int64_t now)
{
    accepted(r, started, now, false);
}

bool bp_ratelimit_refused(bp_ratelimit *r, long retry_after_s, int64_t now)
{
    /* the instant the provider names; the measurement's span ends there */
    int64_t asked = now + (retry_after_s > 0 ? retry_after_s * 1000L : BP_RATELIMIT_DEFAULT_MS);
    int64_t until = asked;
    bool fresh = now >= r->until_ms;
    r->refusals++;
    r->last_429_ms = now;
    if (fresh) {
        /* k pauses in a row with nothing accepted between them: it may be a ban, a daily
         * quota, an IP block; asking again each second (or each Retry-After) for ever can
         * turn a limit into a ban, so the pause grows: 2^k s, at most 60 s (and never
         * shorter than the provider asks) */
        if (!r->answered) {
            r->empty += r->empty < 6;
            int64_t grown = BP_RATELIMIT_DEFAULT_MS << r->empty;
            grown = grown > EMPTY_MAX_MS ? EMPTY_MAX_MS : grown;
            until = now + grown > until ? now + grown : until;
        }
        r->answered = false;
    }
    if (until > r->until_ms)
        r->until_ms = until;
    if (!fresh)
        return false;
    int64_t span = asked - r->cycle_ms;
    r->before = r->rps;
    r->from_ms = r->cycle_ms;
    r->to_ms = now;
    r->span_ms = span < SPAN_MIN_MS ? SPAN_MIN_MS : span > SPAN_MAX_MS ? SPAN_MAX_MS : span;
    r->ok = r->cycle_ok;
    measure(r);
    r->cycle_ms = until;
    r->cycle_ok = 0;
    r->raise_ms = until + cycle_len(r);
    r->starved = false;
    return true;
}

long bp_ratelimit_wait(const bp_ratelimit *r, int64_t now)
{
    return now < r->until_ms ? (long)(r->until_ms - now) : 0;
}

bool bp_ratelimit_recent(const bp_ratelimit *r, int64_t now)
{
    return r->last_429_ms > 0 && now - r->last_429_ms < RECENT_MS;
}
