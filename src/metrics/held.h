/* held.h - what the SQL outputs hold for a group's end (docs/ARCHITECTURE.md "Chain
 * analytics": behind the head several batches share one transaction): the 1h and 1d contract
 * window increments of its runs folded per (grain, window, contract), written once instead of
 * once per batch (a hot contract's open hour and day row was rewritten by every batch), and a
 * copy of the latest batch's summary of its last minute, which the next batch usually
 * continues (then its newer summary replaces the copy: a minute two batches share is written
 * once). Strings are copied: a batch's derived rows and blocks go back once it is written. */
#ifndef BP_METRICS_HELD_H
#define BP_METRICS_HELD_H

#include <stdbool.h>
#include <stddef.h>

#include "blockpipe/derived.h"
#include "metrics/keymap.h"

typedef struct bp_held {
    bp_keymap map[BP_GRAIN_COUNT]; /* (window, contract) -> index in rows */
    bp_contract_row *rows[BP_GRAIN_COUNT];
    size_t n[BP_GRAIN_COUNT], cap[BP_GRAIN_COUNT];
    bp_minute_summary minute; /* valid when minute_set; its rows in minute_rows */
    bp_contract_row *minute_rows;
    size_t minute_cap;
    bool minute_set;
    char *origin; /* the chain of everything held (a group is one chain's) */
    size_t bytes; /* about what it holds */
} bp_held;

/* Adds increment c of grain g (its unique_senders replaced by senders) to the held row of its
 * (window, contract). 0 or BP_ENOMEM. */
int bp_held_add(bp_held *h, int g, const bp_contract_row *c, uint64_t senders);
/* Whether grain g holds rows. */
bool bp_held_any(const bp_held *h, int g);
/* The held rows of grain g forgotten (once written). */
void bp_held_clear_grain(bp_held *h, int g);
/* Keeps a copy of sum as the held minute (replacing one held before). 0 or BP_ENOMEM. */
int bp_held_keep_minute(bp_held *h, const char *origin, const bp_minute_summary *sum);
void bp_held_drop_minute(bp_held *h);
/* Everything forgotten (storage kept). */
void bp_held_clear(bp_held *h);
void bp_held_release(bp_held *h);

#endif
