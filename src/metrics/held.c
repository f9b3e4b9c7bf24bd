/* held.c - contract increments and a minute held for a group's end (held.h). */
#include "metrics/held.h"

#include <stdlib.h>
#include <string.h>

#include "blockpipe/error.h"
#include "metrics/metrics.h"
#include "util/hex.h"

/* The held rows' chain (a copy), set while nothing is held. */
static const char *origin_of(bp_held *h, const char *origin)
{
    if (h->origin && strcmp(h->origin, origin) == 0)
        return h->origin;
    bool any = h->minute_set;
    for (int g = 0; g < BP_GRAIN_COUNT; g++)
        any |= h->n[g] > 0;
    if (h->origin && any) /* another chain's rows with some held: the outputs never group those */
        return NULL;
    if (h->origin) { /* nothing held: a chains: list's output takes every chain's batches */
        h->bytes -= strlen(h->origin) + 1;
        free(h->origin);
        h->origin = NULL;
    }
    h->origin = strdup(origin);
    if (h->origin)
        h->bytes += strlen(origin) + 1;
    return h->origin;
}

int bp_held_add(bp_held *h, int g, const bp_contract_row *c, uint64_t senders)
{
    bool added = false;
    const char *origin = origin_of(h, c->origin_key);
    size_t *at = origin ? bp_keymap_ref(&h->map[g], c->window_start, c->contract_address, NULL,
                                        h->n[g], &added)
                        : NULL;
    if (!at)
        return BP_ENOMEM;
    if (!added) {
        bp_contract_row *r = &h->rows[g][*at];
        r->txcount += c->txcount;
        r->gas_used += c->gas_used;
        bp_u256_add(&r->fees_paid_wei.v, &r->fees_paid_wei.v, &c->fees_paid_wei.v);
        /* (as bp_derived_run_build makes it: PostgreSQL COPYs it) */
        r->fees_paid_native = (bp_opt_f64){bp_u256_to_double(&r->fees_paid_wei.v) / 1e18, true};
        r->unique_senders += senders;
        return 0;
    }
    char *addr = strdup(c->contract_address);
    if (!addr || bp_grow((void **)&h->rows[g], &h->cap[g], h->n[g] + 1, sizeof(*h->rows[g])) != 0) {
        free(addr); /* (the batch fails: the output clears what it holds) */
        return BP_ENOMEM;
    }
    bp_contract_row *r = &h->rows[g][h->n[g]++];
    *r = *c;
    r->origin_key = origin;
    r->contract_address = addr;
    r->unique_senders = senders;
    bp_keymap_rekey(at, addr, NULL);
    h->bytes += sizeof(*r) + strlen(addr) + 1 + 2 * sizeof(bp_keymap_slot);
    return 0;
}

bool bp_held_any(const bp_held *h, int g)
{
    return h->n[g] > 0;
}

void bp_held_clear_grain(bp_held *h, int g)
{
    for (size_t i = 0; i < h->n[g]; i++) {
        h->bytes -= sizeof(bp_contract_row) + strlen(h->rows[g][i].contract_address) + 1 +
                    2 * sizeof(bp_keymap_slot);
        free((char *)h->rows[g][i].contract_address);
    }
    h->n[g] = 0;
    bp_keymap_clear(&h->map[g]);
}

void bp_held_drop_minute(bp_held *h)
{
    for (size_t i = 0; h->minute_set && i < h->minute.contract_count; i++) {
        h->bytes -= sizeof(bp_contract_row) + strlen(h->minute_rows[i].contract_address) + 1;
        free((char *)h->minute_rows[i].contract_address);
    }
    h->minute_set = false;
    h->minute.contract_count = 0;
}

int bp_held_keep_minute(bp_held *h, const char *origin, const bp_minute_summary *sum)
{
    bp_held_drop_minute(h);
    const char *o = origin_of(h, origin);
    if (!o || bp_grow((void **)&h->minute_rows, &h->minute_cap, sum->contract_count + 1,
                      sizeof(*h->minute_rows)) != 0)
        return BP_ENOMEM;
    h->minute = *sum;
    h->minute.contracts = h->minute_rows;
    h->minute.contract_count = 0;
    h->minute_set = true;
    for (size_t i = 0; i < sum->contract_count; i++) {
        bp_contract_row *r = &h->minute_rows[i];
        *r = sum->contracts[i];
        r->origin_key = o;
        if (!(r->contract_address = strdup(sum->contracts[i].contract_address)))
            return BP_ENOMEM;
        h->minute.contract_count++;
        h->bytes += sizeof(*r) + strlen(r->contract_address) + 1;
    }
    return 0;
}

void bp_held_clear(bp_held *h)
{
    for (int g = 0; g < BP_GRAIN_COUNT; g++)
        bp_held_clear_grain(h, g);
    bp_held_drop_minute(h);
    free(h->origin);
    h->origin = NULL;
    h->bytes = 0;
}

void bp_held_release(bp_held *h)
{
    bp_held_clear(h);
    for (int g = 0; g < BP_GRAIN_COUNT; g++) {
        bp_keymap_release(&h->map[g]);
        free(h->rows[g]);
    }
    free(h->minute_rows);
    memset(h, 0, sizeof(*h));
}
