/* histogram.h - lock-free log-bucketed histogram of u64 values (e.g. latencies in µs). */
#ifndef BP_UTIL_HISTOGRAM_H
#define BP_UTIL_HISTOGRAM_H

#include <stdatomic.h>
#include <stdint.h>

#include "blockpipe/stats.h"
#include "util/buf.h"

/* Values below 16 have a bucket each; above, every power of two is split into 8 buckets,
 * so a percentile is at most 12.5% above the true value (and never above the max). */
#define BP_HIST_SUB 8
#define BP_HIST_BUCKETS (16 + (64 - 4) * BP_HIST_SUB)

/* Any number of threads may add and read at once (relaxed atomics, no lock): a read taken
 * while others add sees a consistent-enough snapshot for a status page, not an exact one.
 * The caller owns the struct; it holds no pointers, so there is nothing to release. */
typedef struct bp_hist {
    _Atomic uint64_t buckets[BP_HIST_BUCKETS];
    _Atomic uint64_t count;
    _Atomic uint64_t sum;
    _Atomic uint64_t max;
} bp_hist;

typedef struct bp_hist_summary {
    uint64_t count, p50, p90, p99, max;
    double mean;
} bp_hist_summary;

void bp_hist_init(bp_hist *h);
void bp_hist_add(bp_hist *h, uint64_t value);
uint64_t bp_hist_count(const bp_hist *h);
uint64_t bp_hist_max(const bp_hist *h);
/* The value at or below which p percent (0..100) of the values are: the upper edge of the
 * bucket holding that rank, capped at the max. 0 when empty. */
uint64_t bp_hist_percentile(const bp_hist *h, double p);
void bp_hist_summarize(const bp_hist *h, bp_hist_summary *out);
/* The histogram of latencies in µs as a stats snapshot's latency (ms): percentiles, sum and
 * the cumulative counts at bp_stats_le_ms. */
void bp_hist_latency_ms(const bp_hist *h, bp_stats_latency *out);
/* Appends {"count":n,"p50":..,"p90":..,"p99":..,"max":..,"mean":..} to out. 0 or BP_E*. */
int bp_hist_summary_json(const bp_hist_summary *s, bp_buf *out);

#endif
