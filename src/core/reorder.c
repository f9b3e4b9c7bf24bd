/* reorder.c - window of slots between out-of-order fetches and in-order commits. */
#include "core/reorder.h"

#include <stdlib.h>
#include <string.h>

int bp_reorder_init(bp_reorder *r, size_t cap, uint64_t base)
{
    memset(r, 0, sizeof(*r));
    r->slots = calloc(cap ? cap : 1, sizeof(*r->slots));
    if (!r->slots)
        return BP_ENOMEM;
    r->cap = cap ? cap : 1;
    r->base = base;
    for (size_t i = 0; i < r->cap; i++)
        r->slots[i].last_ep = r->slots[i].served_ep = -1;
    r->counts[BP_SLOT_EMPTY] = r->cap;
    return 0;
}

void bp_reorder_release(bp_reorder *r)
{
    if (!r->slots)
        return;
    for (size_t i = 0; i < r->cap; i++)
        bp_budget_free_block(r->budget, r->slots[i].block);
    free(r->slots);
    r->slots = NULL;
}

bp_slot *bp_reorder_slot(bp_reorder *r, uint64_t n)
{
    if (n < r->base || n - r->base >= r->cap)
        return NULL;
    return &r->slots[n % r->cap];
}

void bp_reorder_set_state(bp_reorder *r, bp_slot *s, enum bp_slot_state state)
{
    r->counts[s->state]--;
    r->counts[state]++;
    s->state = state;
}

bool bp_reorder_put(bp_reorder *r, uint64_t n, uint32_t epoch, bp_block *b)
{
    bp_slot *s = bp_reorder_slot(r, n);
    if (!s || s->epoch != epoch || s->state != BP_SLOT_FETCHING) {
        bp_block_free(b);
        return false;
    }
    s->block = b;
    s->bytes = bp_budget_block_cost(b);
    r->parked_bytes += s->bytes;
    size_t paid = s->bytes < r->prepaid ? s->bytes : r->prepaid;
    r->prepaid -= paid;
    if (r->budget && s->bytes > paid)
        bp_budget_charge(r->budget, s->bytes - paid);
    bp_reorder_set_state(r, s, BP_SLOT_DONE);
    return true;
}

void bp_reorder_prepay(bp_reorder *r, size_t bytes)
{
    r->prepaid = bytes;
}

size_t bp_reorder_prepaid_left(bp_reorder *r)
{
    size_t left = r->prepaid;
    r->prepaid = 0;
    return left;
}

/* Lets go of the slot's block (freed or handed out) and its bytes. */
static void unpark(bp_reorder *r, bp_slot *s)
{
    r->parked_bytes -= s->bytes;
    s->bytes = 0;
    s->block = NULL;
}

void bp_reorder_discard(bp_reorder *r, bp_slot *s)
{
    bp_budget_free_block(r->budget, s->block);
    unpark(r, s);
}

bp_block *bp_reorder_take(bp_reorder *r)
{
    bp_slot *s = &r->slots[r->base % r->cap];
    if (s->state != BP_SLOT_DONE)
        return NULL;
    bp_block *b = s->block;
    unpark(r, s);
    s->attempts = 0;
    s->last_ep = s->served_ep = -1;
    s->too_big_at = 0;
    s->last_error[0] = '\0';
    s->epoch++;
    bp_reorder_set_state(r, s, BP_SLOT_EMPTY);
    r->base++;
    return b;
}

void bp_reorder_reset_from(bp_reorder *r, uint64_t n)
{
    for (size_t i = 0; i < r->cap; i++) {
        bp_slot *s = &r->slots[i];
        bp_reorder_discard(r, s);
        s->attempts = 0;
        s->last_ep = s->served_ep = -1;
        s->retry_at_ms = 0;
        s->too_big_at = 0;
        s->last_error[0] = '\0';
        s->epoch++;
        bp_reorder_set_state(r, s, BP_SLOT_EMPTY);
    }
    r->base = n;
}
