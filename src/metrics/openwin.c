/* openwin.c - the stream's open windows (openwin.h). */
#include "metrics/openwin.h"

#include <stdlib.h>
#include <string.h>

#include "blockpipe/error.h"
#include "metrics/metrics.h"
#include "util/arena.h"
#include "util/hex.h"

#define WINDOW_ARENA_KEEP (16u << 20)

void bp_open_release(bp_open_windows *o)
{
    for (int g = 0; g < BP_GRAIN_COUNT; g++) {
        bp_open_window *w = &o->win[g];
        bp_arena_free(w->arena);
        bp_keymap_release(&w->members);
        bp_keymap_release(&w->contracts);
        free(w->rows);
    }
    free(o->done);
    memset(o, 0, sizeof(*o));
}

void bp_open_begin(bp_open_windows *o)
{
    o->ndone = 0;
    for (int g = 0; g < BP_GRAIN_COUNT; g++)
        o->win[g].touched = false;
}

/* The minute's summary as of now, copied into the batch's arena. */
static int finish_minute(bp_open_windows *o, bp_open_window *w, bp_arena *batch)
{
    if (!w->used || !w->valid || !w->touched)
        return 0;
    if (bp_grow((void **)&o->done, &o->capdone, o->ndone + 1, sizeof(*o->done)) != 0)
        return BP_ENOMEM;
    bp_contract_row *copy = NULL;
    if (w->nrows && !(copy = bp_arena_calloc(batch, w->nrows, sizeof(*copy))))
        return BP_ENOMEM;
    for (size_t i = 0; i < w->nrows; i++) {
        copy[i] = w->rows[i];
        const char *a = w->rows[i].contract_address;
        if (!(copy[i].contract_address = bp_arena_strndup(batch, a, strlen(a))))
            return BP_ENOMEM;
        copy[i].fees_paid_native =
            (bp_opt_f64){bp_u256_to_double(&copy[i].fees_paid_wei.v) / 1e18, true};
    }
    o->done[o->ndone++] = (bp_minute_summary){w->w, w->senders, copy, w->nrows};
    return 0;
}

/* Window w of grain g is the block's: a new one is valid when the previous block was in an
 * earlier window (the module saw it begin). */
static int enter(bp_open_windows *o, int g, uint64_t w, bool prev_known, uint64_t prev_ts,
                 bp_arena *batch)
{
    bp_open_window *win = &o->win[g];
    if (win->used && win->w == w)
        return 0;
    if (g == BP_GRAIN_1M && finish_minute(o, win, batch) != 0)
        return BP_ENOMEM;
    if (!win->arena && !(win->arena = bp_arena_new(1u << 16)))
        return BP_ENOMEM;
    bp_arena_recycle(win->arena, WINDOW_ARENA_KEEP);
    bp_keymap_clear(&win->members);
    bp_keymap_clear(&win->contracts);
    win->nrows = 0;
    win->senders = 0;
    win->w = w;
    win->used = true;
    win->valid = prev_known && prev_ts < w;
    return 0;
}

/* Adds key (kind, a, b) to the window; *added when it is new. */
static int member(bp_open_window *w, uint64_t kind, const char *a, const char *b, bool *added)
{
    size_t *v = bp_keymap_ref(&w->members, kind, a, b, 0, added);
    if (!v)
        return BP_ENOMEM;
    if (!*added)
        return 0;
    /* the key borrowed the block's strings: give it copies that outlive the batch */
    const char *ca = a ? bp_arena_strndup(w->arena, a, strlen(a)) : NULL;
    const char *cb = b ? bp_arena_strndup(w->arena, b, strlen(b)) : NULL;
    if ((a && !ca) || (b && !cb))
        return BP_ENOMEM;
    bp_keymap_rekey(v, ca, cb);
    return 0;
}

/* The minute's row of contract c (created empty). */
static int minute_row(bp_open_window *w, const bp_contract_row *c, bp_contract_row **out)
{
    bool added;
    size_t *i = bp_keymap_ref(&w->contracts, 0, c->contract_address, NULL, w->nrows, &added);
    if (!i)
        return BP_ENOMEM;
    if (added) {
        const char *a =
            bp_arena_strndup(w->arena, c->contract_address, strlen(c->contract_address));
        if (!a)
            return BP_ENOMEM;
        bp_keymap_rekey(i, a, NULL);
        if (bp_grow((void **)&w->rows, &w->cap, w->nrows + 1, sizeof(*w->rows)) != 0)
            return BP_ENOMEM;
        w->rows[w->nrows++] = (bp_contract_row){.origin_key = c->origin_key,
                                                .window_start = w->w,
                                                .contract_address = a,
                                                .fees_paid_wei = {.set = true}};
    }
    *out = &w->rows[*i];
    return 0;
}

/* The minute takes the block's senders and contract sums. */
static int add_to_minute(bp_open_window *w, const bp_block_derived *bd)
{
    bool added;
    for (size_t i = 0; i < bd->sender_count; i++) {
        if (member(w, 0, bd->senders[i], NULL, &added) != 0)
            return BP_ENOMEM;
        w->senders += added;
    }
    for (size_t i = 0; i < bd->contract_count; i++) {
        const bp_contract_row *c = &bd->contracts[i];
        bp_contract_row *r;
        if (minute_row(w, c, &r) != 0)
            return BP_ENOMEM;
        r->txcount += c->txcount;
        r->gas_used += c->gas_used;
        bp_u256_add(&r->fees_paid_wei.v, &r->fees_paid_wei.v, &c->fees_paid_wei.v);
    }
    for (size_t i = 0; i < bd->pair_count; i++) {
        const bp_pair *p = &bd->pairs[i];
        bp_contract_row *r;
        if (member(w, 1, p->contract_address, p->address, &added) != 0 ||
            minute_row(w, &(bp_contract_row){.contract_address = p->contract_address}, &r) != 0)
            return BP_ENOMEM;
        r->unique_senders += added;
    }
    return 0;
}

/* The block's set rows of the hour and day: the new ones (window seen whole) or all. */
static int set_rows(bp_open_windows *o, bp_block_derived *bd, bp_arena *batch)
{
    size_t cap = (bd->sender_count + bd->pair_count) * (BP_GRAIN_COUNT - BP_GRAIN_SETS);
    bd->set_rows = cap ? bp_arena_calloc(batch, cap, sizeof(*bd->set_rows)) : NULL;
    bd->set_row_count = 0;
    if (cap && !bd->set_rows)
        return BP_ENOMEM;
    const bp_chain_block_row *c = &bd->chain;
    for (int g = BP_GRAIN_SETS; g < BP_GRAIN_COUNT; g++) {
        bp_open_window *w = &o->win[g];
        for (size_t i = 0; i < bd->sender_count + bd->pair_count; i++) {
            bool pair = i >= bd->sender_count, added = true;
            const bp_pair *p = pair ? &bd->pairs[i - bd->sender_count] : NULL;
            const char *addr = pair ? p->address : bd->senders[i];
            const char *contract = pair ? p->contract_address : NULL;
            if (w->valid && member(w, pair, pair ? contract : addr, pair ? addr : NULL, &added))
                return BP_ENOMEM;
            if (added)
                bd->set_rows[bd->set_row_count++] = (bp_set_row){
                    c->origin_key, bp_grain_names[g], w->w, contract, addr, c->block_number};
        }
    }
    return 0;
}

int bp_open_apply(bp_open_windows *o, bp_block_derived *bd, bool prev_known, uint64_t prev_ts,
                  bp_arena *batch)
{
    uint64_t ts = bd->chain.block_timestamp;
    for (int g = 0; g < BP_GRAIN_COUNT; g++) {
        if (enter(o, g, bp_window_of(ts, g), prev_known, prev_ts, batch) != 0)
            return BP_ENOMEM;
        o->win[g].touched = true;
    }
    bp_open_window *minute = &o->win[BP_GRAIN_1M];
    if (minute->valid && add_to_minute(minute, bd) != 0)
        return BP_ENOMEM;
    return set_rows(o, bd, batch);
}

void bp_open_revert(bp_open_windows *o, uint64_t ts, bool ts_known)
{
    for (int g = 0; g < BP_GRAIN_COUNT; g++) {
        bp_open_window *w = &o->win[g];
        if (!ts_known || (w->used && w->w == bp_window_of(ts, g)))
            w->valid = false;
    }
    /* a minute this batch finished before the reorg reached back into it */
    size_t k = 0;
    for (size_t i = 0; i < o->ndone; i++)
        if (ts_known && o->done[i].window_start != bp_window_of(ts, BP_GRAIN_1M))
            o->done[k++] = o->done[i];
    o->ndone = k;
}

int bp_open_summaries(bp_open_windows *o, bp_arena *batch, bp_minute_summary **out, size_t *n)
{
    if (finish_minute(o, &o->win[BP_GRAIN_1M], batch) != 0)
        return BP_ENOMEM;
    *out = o->done;
    *n = o->ndone;
    return 0;
}
