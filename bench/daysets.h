/* daysets.h - the metrics module's address sets through a day of simnode's traffic, measured
 * rather than extrapolated (bench_daysets, docs/PERFORMANCE.md section metrics-day).
 *
 * Blocks are simnode's own (bp_sim_block_gen: the same senders and contracts, drawn by the
 * same code, as `blockpipe simnode --senders N --contracts N --zipf S` serves), made into
 * decoded blocks directly (the fields the metrics module reads, formatted as the decoder
 * leaves them) instead of rendered to JSON and decoded again, and given batch by batch to the
 * module's per-batch entry, bp_metrics_compute, with its sets unbounded: what a day costs. */
#ifndef BP_BENCH_DAYSETS_H
#define BP_BENCH_DAYSETS_H

#include <stddef.h>
#include <stdint.h>

#include "blockpipe/derived.h"
#include "blockpipe/error.h"

typedef struct ds_params {
    uint64_t seed;      /* simnode --seed (1) */
    uint64_t senders;   /* --senders */
    uint64_t contracts; /* --contracts */
    double zipf;        /* --zipf */
    uint32_t txs;       /* transactions per block (one-second blocks) */
    uint64_t first;     /* first block; 0: the first at a UTC day boundary */
    uint64_t blocks;    /* how many */
    size_t batch;       /* blocks per bp_metrics_compute */
    uint64_t every;     /* a point every this many blocks (and at the end) */
    const uint64_t *at; /* and after these blocks (numbers, ascending), NULL: none */
    size_t nat;
} ds_params;

/* The state after block `last`. Distinct counts are the module's own output: the hour's and
 * day's new set rows (active_addresses: senders; contract_senders: pairs) since the window
 * began, which are exactly its members when the module saw the window whole (checked: a row
 * not known new, or members that differ from the rows, is an error). */
typedef struct ds_point {
    uint64_t first, last, txs;
    uint64_t day_start, hour_start;            /* the open windows (chain time) */
    uint64_t day_senders, day_pairs;           /* of the open day */
    uint64_t hour_senders, hour_pairs;         /* of the open hour */
    uint64_t hour_senders_max, hour_pairs_max; /* of every hour so far, the open one too */
    size_t ids, id_bytes;                      /* interned addresses, their bytes */
    size_t set_bytes;                          /* the open windows' account (with the ids) */
    size_t held;                               /* the module's whole account (bp_metrics_held) */
    size_t members[BP_GRAIN_COUNT];
    double seconds, cpu_seconds, metrics_seconds; /* wall, process CPU, wall in compute */
    long rss_kib;                                 /* peak RSS so far (getrusage) */
} ds_point;

/* Runs p, calling report at every point (a non-zero return stops the run with it). 0, or a
 * BP_E* with err set. */
int ds_run(const ds_params *p, int (*report)(const ds_point *pt, void *ctx), void *ctx,
           bp_error *err);

#endif
