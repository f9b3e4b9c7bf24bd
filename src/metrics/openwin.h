/* openwin.h - the windows still open in the stream (the current minute, hour and day), as the
 * metrics module sees them: which senders and (contract, sender) pairs each has had, and for
 * the minute its per-contract sums. Valid only for a window the module saw begin (it applied
 * the block before it, in an earlier window) and that no REVERT touched since; then
 *   - a block's hour and day set rows are the ones new to the window (the outputs need not
 *     look the others up), and
 *   - a minute's distinct senders and contract rows come with the batch (bp_minute_summary),
 *     so the outputs need not read the minute's raw transactions back.
 * An output falls back to its own tables for a window without (after a restart, a reorg). */
#ifndef BP_METRICS_OPENWIN_H
#define BP_METRICS_OPENWIN_H

#include <stdbool.h>
#include <stdint.h>

#include "blockpipe/derived.h"
#include "metrics/idset.h"

struct bp_arena;

/* A minute's per-contract sums (the window's contract map gives the contract's id): 56 bytes
 * where a bp_contract_row is 120, and a busy minute has thousands of contracts. */
typedef struct bp_open_row {
    uint64_t txcount, gas_used, unique_senders;
    bp_u256 fees;
} bp_open_row;

typedef struct bp_open_window {
    uint64_t w;
    bool used, valid;
    bool touched; /* by this batch (a minute: its summary goes with the batch) */
    /* sender ids, and (1 << 63 | contract id << 32 | sender id); the day's: only the members
     * of its closed hours (the open hour's set holds the rest: a day's member is in one or the
     * other, so a busy hour is not held twice) */
    bp_u64map members;
    bp_u64map contracts;    /* minute: contract id -> index in rows */
    bp_open_row *rows;      /* minute: per-contract sums */
    const char *origin_key; /* minute: their chain (the batch's blocks') */
    size_t nrows, cap;
    uint64_t senders; /* minute: distinct senders */
    size_t total;     /* day: its distinct members (closed hours' and the open hour's) */
} bp_open_window;

/* What the windows held at their largest: what the sets cost per member, measured in place
 * (docs/PERFORMANCE.md, the address sets at 1,000 tx/s). */
typedef struct bp_open_peak {
    size_t bytes;                   /* bp_open_bytes */
    size_t id_bytes, ids;           /* of it, the interned addresses; how many */
    size_t members[BP_GRAIN_COUNT]; /* senders and (contract, sender) pairs per window */
    size_t stored[BP_GRAIN_COUNT];  /* of them, in the window's own table (the day: its closed
                                     * hours', the open hour's are in the hour's) */
} bp_open_peak;

/* The memory is bounded: when the windows and their interned addresses hold more than
 * max_bytes, the day, then the hour, then the minute are given up (no longer valid, their
 * members freed): the outputs fall back to their own tables for them, exactly as after a
 * restart, and the next window of that grain starts afresh. The day is valid only while its
 * hour is (its set is the hour's and its closed hours'). */
typedef struct bp_open_windows {
    bp_open_window win[BP_GRAIN_COUNT];
    bp_intern ids;           /* the addresses of the valid windows' members */
    size_t max_bytes;        /* 0: unbounded */
    uint64_t dropped;        /* windows given up for memory */
    bp_minute_summary *done; /* minutes this batch finished, valid ones (malloc'd) */
    size_t ndone, capdone;
    uint32_t *scratch; /* a block's ids: senders, then pairs' (contract, sender) */
    size_t scratch_cap;
    bp_open_peak peak; /* the most the windows held after a block (bp_open_apply) */
} bp_open_windows;

void bp_open_release(bp_open_windows *o);
/* The bytes the windows hold (their sets, minute rows and interned addresses). */
size_t bp_open_bytes(const bp_open_windows *o);
/* What the windows hold now, in the terms of bp_open_peak. */
void bp_open_account(const bp_open_windows *o, bp_open_peak *now);
/* Gives every window up and frees what it can (memory nothing else will give back). */
void bp_open_shed(bp_open_windows *o);
/* A batch begins. */
void bp_open_begin(bp_open_windows *o);
/* Block bd applied after a block at prev_ts (prev_known false: not known). pair_at: pair i's
 * contract's index in bd->contracts and its sender's in bd->senders at [2i], [2i + 1], or NULL
 * (the pairs' addresses are interned). Fills bd->set_rows (in arena: the batch's). 0 or
 * BP_ENOMEM. */
int bp_open_apply(bp_open_windows *o, bp_block_derived *bd, const uint32_t *pair_at,
                  bool prev_known, uint64_t prev_ts, struct bp_arena *arena);
/* The block at ts (ts_known false: unknown, every window) was reverted. */
void bp_open_revert(bp_open_windows *o, uint64_t ts, bool ts_known);
/* The batch's minute summaries (copied into arena). 0 or BP_ENOMEM. */
int bp_open_summaries(bp_open_windows *o, struct bp_arena *arena, bp_minute_summary **out,
                      size_t *n);

#endif
