/* histogram.c - lock-free log-bucketed histogram: 8 buckets per power of two. */
#include "util/histogram.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

static unsigned bucket_of(uint64_t v)
{
    if (v < 16)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* 4..63 */
    unsigned sub = (unsigned)(v >> (e - 3)) & (BP_HIST_SUB - 1);
    return 16 + (e - 4) * BP_HIST_SUB + sub;
}

/* Largest value that falls into bucket i. */
static uint64_t bucket_upper(unsigned i)
{
    if (i < 16)
        return i;
    unsigned e = 4 + (i - 16) / BP_HIST_SUB;
    uint64_t sub = (i - 16) % BP_HIST_SUB;
    uint64_t lower = (BP_HIST_SUB + sub) << (e - 3);
    return lower + ((uint64_t)1 << (e - 3)) - 1;
}

void bp_hist_init(bp_hist *h)
{
    for (unsigned i = 0; i < BP_HIST_BUCKETS; i++)
        atomic_init(&h->buckets[i], 0);
    atomic_init(&h->count, 0);
    atomic_init(&h->sum, 0);
    atomic_init(&h->max, 0);
}

void bp_hist_add(bp_hist *h, uint64_t value)
{
    atomic_fetch_add_explicit(&h->buckets[bucket_of(value)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, value, memory_order_relaxed);
    uint64_t m = atomic_load_explicit(&h->max, memory_order_relaxed);
    while (value > m && !atomic_compare_exchange_weak_explicit(
                            &h->max, &m, value, memory_order_relaxed, memory_order_relaxed)) {
    }
    /* count last: a reader that sees the count also finds the value in a bucket. */
    atomic_fetch_add_explicit(&h->count, 1, memory_order_release);
}

uint64_t bp_hist_count(const bp_hist *h)
{
    return atomic_load_explicit(&h->count, memory_order_acquire);
}

uint64_t bp_hist_max(const bp_hist *h)
{
    return atomic_load_explicit(&h->max, memory_order_relaxed);
}

uint64_t bp_hist_percentile(const bp_hist *h, double p)
{
    uint64_t n = bp_hist_count(h);
    if (n == 0)
        return 0;
    p = p < 0 ? 0 : p > 100 ? 100 : p;
    uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)n);
    rank = rank < 1 ? 1 : rank > n ? n : rank;
    uint64_t seen = 0, max = bp_hist_max(h);
    for (unsigned i = 0; i < BP_HIST_BUCKETS; i++) {
        seen += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (seen >= rank) {
            uint64_t up = bucket_upper(i);
            return up < max ? up : max;
        }
    }
    return max; /* buckets lag the count only while an add is in flight */
}

void bp_hist_summarize(const bp_hist *h, bp_hist_summary *out)
{
    memset(out, 0, sizeof(*out));
    out->count = bp_hist_count(h);
    if (out->count == 0)
        return;
    out->p50 = bp_hist_percentile(h, 50);
    out->p90 = bp_hist_percentile(h, 90);
    out->p99 = bp_hist_percentile(h, 99);
    out->max = bp_hist_max(h);
    out->mean = (double)atomic_load_explicit(&h->sum, memory_order_relaxed) / (double)out->count;
}

int bp_hist_summary_json(const bp_hist_summary *s, bp_buf *out)
{
    return bp_buf_printf(out,
                         "{\"count\":%" PRIu64 ",\"p50\":%" PRIu64 ",\"p90\":%" PRIu64
                         ",\"p99\":%" PRIu64 ",\"max\":%" PRIu64 ",\"mean\":%.1f}",
                         s->count, s->p50, s->p90, s->p99, s->max, s->mean);
}

const double bp_stats_le_ms[BP_STATS_LE_COUNT] = {0.5, 1,   2.5, 5,    10,   25,   50,
                                                  100, 250, 500, 1000, 2500, 5000, 10000};

void bp_hist_latency_ms(const bp_hist *h, bp_stats_latency *out)
{
    bp_hist_summary s;
    bp_hist_summarize(h, &s);
    memset(out, 0, sizeof(*out));
    out->count = s.count;
    out->p50_ms = (double)s.p50 / 1000.0;
    out->p90_ms = (double)s.p90 / 1000.0;
    out->p99_ms = (double)s.p99 / 1000.0;
    out->max_ms = (double)s.max / 1000.0;
    out->sum_ms = (double)atomic_load_explicit(&h->sum, memory_order_relaxed) / 1000.0;
    /* A bucket counts at the first bound its upper edge is at or below: one pass. */
    uint64_t seen = 0;
    unsigned k = 0;
    for (unsigned i = 0; i < BP_HIST_BUCKETS && k < BP_STATS_LE_COUNT; i++) {
        while (k < BP_STATS_LE_COUNT && (double)bucket_upper(i) > bp_stats_le_ms[k] * 1000.0)
            out->le[k++] = seen;
        seen += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
    }
    while (k < BP_STATS_LE_COUNT)
        out->le[k++] = seen;
    /* Buckets are read after the count: never report more in a bucket than in the total. */
    if (out->count < seen)
        out->count = seen;
}
