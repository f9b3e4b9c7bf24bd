/* canon.h - the canonical chain window: the last `cap` applied headers, contiguous by
 * number. It answers "does this block extend our tip?" and, during a reorg walk, "which hash
 * did we apply at height k?". Owned and used by the coordinator thread only. */
#ifndef BP_CORE_CANON_H
#define BP_CORE_CANON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/error.h"

typedef struct bp_canon_entry {
    uint64_t number;
    uint64_t timestamp;
    char hash[67];
    char parent_hash[67];
} bp_canon_entry;

typedef struct bp_canon {
    bp_canon_entry *ring;
    size_t cap;
    size_t start; /* ring index of the lowest entry */
    size_t len;
} bp_canon;

int bp_canon_init(bp_canon *c, size_t cap);
void bp_canon_release(bp_canon *c);
/* Highest entry, or NULL when empty. */
const bp_canon_entry *bp_canon_tip(const bp_canon *c);
/* Lowest entry still in the window, or NULL when empty. */
const bp_canon_entry *bp_canon_lowest(const bp_canon *c);
/* Entry at height n, or NULL when outside the window. */
const bp_canon_entry *bp_canon_at(const bp_canon *c, uint64_t n);
/* Appends e. It must be tip + 1 (or anything when empty): otherwise the window restarts at
 * e, because a window with a hole could not answer the reorg walk. Evicts the lowest entry
 * when full. */
void bp_canon_push(bp_canon *c, const bp_canon_entry *e);
/* Drops every entry above n. */
void bp_canon_truncate(bp_canon *c, uint64_t n);
void bp_canon_clear(bp_canon *c);

/* Does a block (number, parent_hash) extend the tip? True when the window is empty (nothing
 * to check against) or its tip is number - 1 with that hash. A tip at another height is
 * false. */
bool bp_canon_extends(const bp_canon *c, uint64_t number, const char *parent_hash);

/* Asks the node for the hash of its block at height k (into hash[67]). */
typedef int (*bp_canon_lookup_fn)(void *ctx, uint64_t k, char hash[67], bp_error *err);

/* The reorg walk: from height start_k down, the highest height whose applied hash equals the
 * node's. BP_EREORG (naming the window) when no height in the window matches. Errors of the
 * lookup are passed on with the height prefixed. */
int bp_canon_find_ancestor(const bp_canon *c, uint64_t start_k, bp_canon_lookup_fn lookup,
                           void *ctx, uint64_t *ancestor, bp_error *err);

#endif
