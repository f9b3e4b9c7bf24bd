/* ratelimit.c - pauses and the learnt request rate of one endpoint (see ratelimit.h). */
#include "core/ratelimit.h"

#include <string.h>

#define IDLE_MS 2000L
#define RECENT_MS 60000L
/* A measurement shorter than this says little; one longer is capped (a slow provider). */
#define SPAN_MIN_MS 1000L
#define SPAN_MAX_MS 60000L

void bp_ratelimit_init(bp_ratelimit *r, int64_t now)
{
    memset(r, 0, sizeof(*r));
    r->cycle_ms = r->last_use_ms = now;
}

void bp_ratelimit_start(bp_ratelimit *r, int64_t now)
{
    if (now - r->last_use_ms > IDLE_MS) {
        r->cycle_ms = now;
        r->cycle_ok = 0;
    }
    r->last_use_ms = now;
}

/* AIMD's decrease for a measurement of ok requests over span_ms. */
static double rate_after(double before, uint64_t ok, int64_t span_ms)
{
    double measured = (double)ok * 1000.0 / (double)span_ms;
    double rate = before > 0 && before < measured ? before : measured;
    if (before > 0 && rate < before / 2)
        rate = before / 2;
    if (rate <= 0)
        rate = 1000.0 / (double)span_ms; /* refused at once: one request per such cycle */
    return rate < BP_RATELIMIT_MIN_RPS ? BP_RATELIMIT_MIN_RPS : rate;
}

static void set_rate(bp_ratelimit *r, double rps)
{
    r->rps = rps;
    r->step = rps / 20;
}

void bp_ratelimit_accepted(bp_ratelimit *r, int64_t started, int64_t now)
{
    if (r->span_ms > 0 && started >= r->from_ms && started < r->to_ms) {
        /* on its way when the last pause began: it belongs to that measurement */
        set_rate(r, rate_after(r->before, ++r->ok, r->span_ms));
        return;
    }
    r->cycle_ok++;
    if (r->rps <= 0 || now < r->raise_ms)
        return;
    if (r->starved)
        r->rps += r->step; /* growing it while nothing waits would prove nothing */
    r->starved = false;
    r->raise_ms = now + r->span_ms;
}

bool bp_ratelimit_refused(bp_ratelimit *r, long retry_after_s, int64_t now)
{
    int64_t until = now + (retry_after_s > 0 ? retry_after_s * 1000L : BP_RATELIMIT_DEFAULT_MS);
    bool fresh = now >= r->until_ms;
    r->refusals++;
    r->last_429_ms = now;
    if (until > r->until_ms)
        r->until_ms = until;
    if (!fresh)
        return false;
    int64_t span = until - r->cycle_ms;
    r->before = r->rps;
    r->from_ms = r->cycle_ms;
    r->to_ms = now;
    r->span_ms = span < SPAN_MIN_MS ? SPAN_MIN_MS : span > SPAN_MAX_MS ? SPAN_MAX_MS : span;
    r->ok = r->cycle_ok;
    set_rate(r, rate_after(r->before, r->ok, r->span_ms));
    r->cycle_ms = until;
    r->cycle_ok = 0;
    r->raise_ms = until + r->span_ms;
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
