/* canon.c - ring buffer of the last applied headers (the reorg window). */
#include "core/canon.h"

#include <inttypes.h>
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

int bp_canon_find_ancestor(const bp_canon *c, uint64_t start_k, bp_canon_lookup_fn lookup,
                           void *ctx, uint64_t *ancestor, bp_error *err)
{
    const bp_canon_entry *low = bp_canon_lowest(c);
    for (uint64_t k = start_k;; k--) {
        const bp_canon_entry *e = bp_canon_at(c, k);
        if (!e)
            return bp_error_set(err, BP_EREORG,
                                "reorg deeper than the reorg window: no common ancestor "
                                "between block %" PRIu64 " and block %" PRIu64
                                " (a window of %zu blocks); stopping rather than forking",
                                start_k, low ? low->number : start_k, c->cap);
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
