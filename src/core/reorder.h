/* reorder.h - the reorder buffer: a window of `cap` consecutive block numbers starting at
 * `base` (the next number to commit). Fetches finish in any order and park their block in
 * its slot; the coordinator takes blocks out strictly in order from `base`.
 *
 * Each slot is a small state machine, changed only through bp_reorder_set_state():
 *   EMPTY -> PENDING (queued) -> FETCHING -> DONE (block parked) -> taken (EMPTY, base+1)
 *                                         -> RETRY (waiting for its backoff) -> PENDING
 *                                         -> FAILED (max retries; still retried, slowly)
 * The window's size caps the numbers in play: nothing beyond base + cap is ever fetched.
 * A parked block's cost (bp_budget_block_cost) is charged to `budget` when it is put and
 * refunded when it is discarded; a block taken out keeps its charge (the taker owns both).
 * The blocks of a returning fetch job are paid first out of its grant, which the budget holds
 * already (bp_reorder_prepay): the counter never holds a block's cost and the grant that
 * covered it at once, not even between the puts and the grant's refund.
 * Owned by the coordinator thread only. */
#ifndef BP_CORE_REORDER_H
#define BP_CORE_REORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/error.h"
#include "blockpipe/model.h"
#include "core/budget.h"

enum bp_slot_state {
    BP_SLOT_EMPTY = 0,
    BP_SLOT_PENDING,
    BP_SLOT_FETCHING,
    BP_SLOT_DONE,
    BP_SLOT_RETRY,
    BP_SLOT_FAILED,
};

typedef struct bp_slot {
    enum bp_slot_state state;
    uint32_t epoch;       /* bumped when the slot is invalidated (reorg) */
    int attempts;         /* failed fetches so far */
    int last_ep;          /* endpoint of the last failed attempt (-1: none) */
    size_t too_big_at;    /* its answer outgrew a grant this big (0: never): needs more */
    int served_ep;        /* endpoint that served the parked block (-1: none) */
    int64_t retry_at_ms;  /* monotonic ms when RETRY/FAILED may be queued again */
    bp_block *block;      /* owned while DONE */
    size_t bytes;         /* cost of block (counted in parked_bytes) */
    char last_error[256]; /* of the last failed attempt */
} bp_slot;

typedef struct bp_reorder {
    bp_slot *slots;
    size_t cap;
    uint64_t base;
    size_t counts[BP_SLOT_FAILED + 1]; /* slots per state, for the stats line */
    size_t parked_bytes;               /* cost of the blocks in DONE slots */
    bp_budget *budget;                 /* NULL: nothing is counted */
    size_t prepaid; /* charged already: the next puts draw their cost from it first */
} bp_reorder;

int bp_reorder_init(bp_reorder *r, size_t cap, uint64_t base);
void bp_reorder_release(bp_reorder *r);
/* Slot of block n, or NULL when n is outside [base, base + cap). */
bp_slot *bp_reorder_slot(bp_reorder *r, uint64_t n);
void bp_reorder_set_state(bp_reorder *r, bp_slot *s, enum bp_slot_state state);
/* Parks a fetched block in slot n if its epoch still matches: returns false (and frees the
 * block) when the slot was invalidated meanwhile. */
bool bp_reorder_put(bp_reorder *r, uint64_t n, uint32_t epoch, bp_block *b);
/* Bytes the budget holds already for the blocks about to be put (a returning job's grant):
 * each put charges only what its block costs beyond what is left of them. */
void bp_reorder_prepay(bp_reorder *r, size_t bytes);
/* Ends a prepay: what the puts did not use, which the caller refunds. */
size_t bp_reorder_prepaid_left(bp_reorder *r);
/* Frees the block of DONE slot s (a stale answer); the caller sets the new state. */
void bp_reorder_discard(bp_reorder *r, bp_slot *s);
/* Takes the block at base when DONE: returns it (caller owns it and its charge) and
 * advances base. */
bp_block *bp_reorder_take(bp_reorder *r);
/* Drops every slot at or above n (their blocks are freed, epochs bumped) and moves base to n
 * when n < base... used by the reorg path: after it, every number >= n must be fetched
 * again. */
void bp_reorder_reset_from(bp_reorder *r, uint64_t n);

#endif
