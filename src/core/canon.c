/* canon.c - ring buffer of the last applied headers (the reorg window). */
#include "core/canon.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockpipe/error.h"

int bp_canon_init(bp_canon *c, size_t cap)
{
    c->ring = calloc(cap ? cap : 1, sizeof(*c->ring));
    if (!c->ring)
        return BP_ENOMEM;
    c->cap = cap ? cap : 1;
    c->start = c->len = 0;
    return 0;
}

void bp_canon_release(bp_canon *c)
{
    free(c->ring);
    c->ring = NULL;
    c->cap = c->len = 0;
}

static bp_canon_entry *slot(const bp_canon *c, size_t i)
{
    return &c->ring[(c->start + i) % c->cap];
}

const bp_canon_entry *bp_canon_tip(const bp_canon *c)
{
    return c->len ? slot(c, c->len - 1) : NULL;
}

const bp_canon_entry *bp_canon_lowest(const bp_canon *c)
{
    return c->len ? slot(c, 0) : NULL;
}

const bp_canon_entry *bp_canon_at(const bp_canon *c, uint64_t n)
{
    if (!c->len)
        return NULL;
    uint64_t low = slot(c, 0)->number;
    if (n < low || n - low >= c->len)
        return NULL;
    return slot(c, (size_t)(n - low));
}

void bp_canon_push(bp_canon *c, const bp_canon_entry *e)
{
    const bp_canon_entry *tip = bp_canon_tip(c);
    if (tip && tip->number + 1 != e->number)
        bp_canon_clear(c);
    if (c->len == c->cap) {
        c->start = (c->start + 1) % c->cap;
        c->len--;
    }
    *slot(c, c->len) = *e;
    c->len++;
}

void bp_canon_truncate(bp_canon *c, uint64_t n)
{
    while (c->len && slot(c, c->len - 1)->number > n)
        c->len--;
}

void bp_canon_clear(bp_canon *c)
{
    c->start = c->len = 0;
}

bool bp_canon_extends(const bp_canon *c, uint64_t number, const char *parent_hash)
{
    const bp_canon_entry *tip = bp_canon_tip(c);
    if (!tip)
        return true;
    return tip->number + 1 == number && strcmp(tip->hash, parent_hash) == 0;
}

/* No common ancestor in the window: which blocks were compared (one, a range, none: the
 * window does not reach down to start_k), why that can happen and what lets it through. */
static int too_deep(const bp_canon *c, uint64_t start_k, uint64_t k, bp_error *err)
{
    const bp_canon_entry *low = bp_canon_lowest(c), *tip = bp_canon_tip(c);
    char what[160];
    if (k == start_k) /* nothing compared */
        snprintf(what, sizeof(what), "block %" PRIu64 ", where the walk starts, is not in it",
                 start_k);
    else if (k + 1 == start_k)
        snprintf(what, sizeof(what),
                 "block %" PRIu64 ", the lowest it holds, differs from the node's", start_k);
    else
        snprintf(what, sizeof(what),
                 "blocks %" PRIu64 "..%" PRIu64 ", the lowest it holds and above, all differ "
                 "from the node's",
                 k + 1, start_k);
    char held[128];
    if (low && c->len == 1) /* after a start it begins with the outputs' recent blocks */
        snprintf(held, sizeof(held), "it holds block %" PRIu64 " alone, of up to %zu", low->number,
                 c->cap);
    else if (low && c->len < c->cap)
        snprintf(held, sizeof(held), "it holds %zu blocks, %" PRIu64 "..%" PRIu64 ", of up to %zu",
                 c->len, low->number, tip->number, c->cap);
    else if (low)
        snprintf(held, sizeof(held), "%zu blocks, %" PRIu64 "..%" PRIu64, c->cap, low->number,
                 tip->number);
    else
        snprintf(held, sizeof(held), "it holds no block yet");
    return bp_error_set(err, BP_EREORG,
                        "reorg deeper than the reorg window (%s): %s, so the "
                        "common ancestor is below what can be compared; stopped rather than "
                        "writing a fork, the outputs keep the old branch. Raise --reorg-window "
                        "(reorg_window) to walk further back, or --confirmations to write only "
                        "blocks that far below the head",
                        held, what);
}

int bp_canon_find_ancestor(const bp_canon *c, uint64_t start_k, bp_canon_lookup_fn lookup,
                           void *ctx, uint64_t *ancestor, bp_error *err)
{
    for (uint64_t k = start_k;; k--) {
        const bp_canon_entry *e = bp_canon_at(c, k);
        if (!e)
            return too_deep(c, start_k, k, err);
        char hash[67];
        int rc = lookup(ctx, k, hash, err);
        if (rc != 0)
            return bp_error_prefix(err, "reorg walk at block %" PRIu64 ": ", k);
        if (strcmp(hash, e->hash) == 0) {
            *ancestor = k;
            return 0;
        }
        if (k == 0)
            return bp_error_set(err, BP_EREORG,
                                "reorg reaches the genesis block: the node "
                                "serves another chain");
    }
}
