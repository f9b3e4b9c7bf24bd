/* openwin.c - the stream's open windows (openwin.h). */
#include "metrics/openwin.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "blockpipe/error.h"
#include "metrics/keymap.h"
#include "metrics/metrics.h"
#include "util/arena.h"
#include "util/hex.h"
#include "util/log.h"

#define PAIR_BIT (1ull << 63)

static uint64_t pair_key(uint32_t contract, uint32_t sender)
{
    return PAIR_BIT | (uint64_t)contract << 32 | sender;
}

/* Frees what the window holds (it keeps its place: w, used, valid). */
static void window_free(bp_open_window *w)
{
    bp_u64map_release(&w->members);
    bp_u64map_release(&w->contracts);
    free(w->rows);
    w->rows = NULL;
    w->nrows = w->cap = 0;
    w->senders = 0;
    w->total = 0;
}

void bp_open_release(bp_open_windows *o)
{
    for (int g = 0; g < BP_GRAIN_COUNT; g++)
        window_free(&o->win[g]);
    bp_intern_release(&o->ids);
    free(o->done);
    free(o->scratch);
    memset(o, 0, sizeof(*o));
}

size_t bp_open_bytes(const bp_open_windows *o)
{
    size_t n = bp_intern_bytes(&o->ids) + o->scratch_cap * sizeof(*o->scratch);
    for (int g = 0; g < BP_GRAIN_COUNT; g++) {
        const bp_open_window *w = &o->win[g];
        n += bp_u64map_bytes(&w->members) + bp_u64map_bytes(&w->contracts) +
             w->cap * sizeof(*w->rows);
    }
    return n;
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
        const bp_open_row *r = &w->rows[i];
        copy[i] = (bp_contract_row){.origin_key = w->origin_key,
                                    .window_start = w->w,
                                    .txcount = r->txcount,
                                    .gas_used = r->gas_used,
                                    .fees_paid_wei = {r->fees, true},
                                    .fees_paid_native = {bp_u256_to_double(&r->fees) / 1e18, true},
                                    .unique_senders = r->unique_senders};
    }
    /* the rows' contracts: the ids the window's contract map holds, written out */
    for (size_t j = 0; j < w->contracts.cap; j++) {
        if (!w->contracts.keys[j])
            continue;
        char buf[BP_INTERN_STR];
        const char *a = bp_intern_str(&o->ids, (uint32_t)w->contracts.keys[j], buf);
        bp_contract_row *r = &copy[w->contracts.vals[j]];
        if (!(r->contract_address = bp_arena_strndup(batch, a, strlen(a))))
            return BP_ENOMEM;
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
    /* the old window's storage is kept for the new one (it will be about as big) */
    win->members.count = win->contracts.count = 0;
    if (win->members.keys)
        memset(win->members.keys, 0, win->members.cap * sizeof(*win->members.keys));
    if (win->contracts.keys)
        memset(win->contracts.keys, 0, win->contracts.cap * sizeof(*win->contracts.keys));
    win->nrows = 0;
    win->senders = 0;
    win->total = 0;
    win->w = w;
    win->used = true;
    win->valid = prev_known && prev_ts < w;
    if (!win->valid)
        window_free(win);
    return 0;
}

/* No window holds an id any more: the interned addresses can go. */
static void forget_ids(bp_open_windows *o)
{
    for (int g = 0; g < BP_GRAIN_COUNT; g++)
        if (o->win[g].members.count || o->win[g].nrows)
            return;
    bp_intern_clear(&o->ids);
}

/* The day's set is its closed hours' and the open hour's: without the hour it is not known. */
static void day_needs_hour(bp_open_windows *o)
{
    bp_open_window *day = &o->win[BP_GRAIN_1D];
    if (day->valid && !o->win[BP_GRAIN_1H].valid) {
        day->valid = false;
        window_free(day);
    }
}

/* The hour ends inside the day: its members join the day's closed hours'. */
static int close_hour(bp_open_windows *o, uint64_t ts)
{
    bp_open_window *hour = &o->win[BP_GRAIN_1H], *day = &o->win[BP_GRAIN_1D];
    if (!hour->used || !hour->valid || !day->used || !day->valid ||
        hour->w == bp_window_of(ts, BP_GRAIN_1H) || day->w != bp_window_of(ts, BP_GRAIN_1D))
        return 0;
    /* The day's table is sized for the merge first (day->total: its closed hours' members
     * and the hour's new to it). The hour's keys come in its slot order, which is their hash
     * order: into a smaller table with the same hash, growing as they come, the first of them
     * filled its first slots twice over before it doubled, and each insert walked a cluster
     * thousands of slots long (5,200 instructions a member, 0.19 G per hour's close on the
     * 12 s chain: docs/PERFORMANCE.md, setscpu). */
    if (bp_u64map_reserve(&day->members, day->total) != 0)
        return BP_ENOMEM;
    bool added;
    for (size_t j = 0; j < hour->members.cap; j++)
        if (hour->members.keys[j] &&
            bp_u64map_put(&day->members, hour->members.keys[j], 0, &added, NULL) != 0)
            return BP_ENOMEM;
    return 0;
}

/* The minute's row of contract id c (created empty). */
static int minute_row(bp_open_window *w, const char *origin_key, uint32_t c, bp_open_row **out)
{
    bool added;
    uint32_t *i;
    w->contracts.with_values = true; /* (the window starts zeroed) */
    if (bp_u64map_put(&w->contracts, c, (uint32_t)w->nrows, &added, &i) != 0)
        return BP_ENOMEM;
    if (added) {
        if (bp_grow((void **)&w->rows, &w->cap, w->nrows + 1, sizeof(*w->rows)) != 0)
            return BP_ENOMEM;
        w->rows[w->nrows++] = (bp_open_row){0};
        w->origin_key = origin_key;
    }
    *out = &w->rows[*i];
    return 0;
}

/* The ids of the block's senders (ids[0 .. senders)) and pairs (then contract, sender), then
 * of its contracts. With pair_at the pairs' ids are their contract's and sender's: a block's
 * addresses are parsed and hashed once each, not again for every pair they are in. */
static int block_ids(bp_open_windows *o, const bp_block_derived *bd, const uint32_t *pair_at,
                     uint32_t **out)
{
    size_t need = bd->sender_count + 2 * bd->pair_count + bd->contract_count;
    if (bp_grow((void **)&o->scratch, &o->scratch_cap, need, sizeof(*o->scratch)) != 0)
        return BP_ENOMEM;
    uint32_t *ids = o->scratch;
    for (size_t i = 0; i < bd->sender_count; i++)
        if (bp_intern_id(&o->ids, bd->senders[i], &ids[i]) != 0)
            return BP_ENOMEM;
    uint32_t *p = ids + bd->sender_count, *c = p + 2 * bd->pair_count;
    for (size_t i = 0; i < bd->contract_count; i++)
        if (bp_intern_id(&o->ids, bd->contracts[i].contract_address, &c[i]) != 0)
            return BP_ENOMEM;
    for (size_t i = 0; i < bd->pair_count; i++) {
        if (pair_at) {
            p[2 * i] = c[pair_at[2 * i]];
            p[2 * i + 1] = ids[pair_at[2 * i + 1]];
        } else if (bp_intern_id(&o->ids, bd->pairs[i].contract_address, &p[2 * i]) != 0 ||
                   bp_intern_id(&o->ids, bd->pairs[i].address, &p[2 * i + 1]) != 0) {
            return BP_ENOMEM;
        }
    }
    *out = ids;
    return 0;
}

/* The minute takes the block's senders and contract sums. */
static int add_to_minute(bp_open_window *w, const bp_block_derived *bd, const uint32_t *ids)
{
    bool added;
    const uint32_t *pairs = ids + bd->sender_count, *contracts = pairs + 2 * bd->pair_count;
    for (size_t i = 0; i < bd->sender_count; i++) {
        if (bp_u64map_put(&w->members, ids[i], 0, &added, NULL) != 0)
            return BP_ENOMEM;
        w->senders += added;
    }
    for (size_t i = 0; i < bd->contract_count; i++) {
        const bp_contract_row *c = &bd->contracts[i];
        bp_open_row *r;
        if (minute_row(w, c->origin_key, contracts[i], &r) != 0)
            return BP_ENOMEM;
        r->txcount += c->txcount;
        r->gas_used += c->gas_used;
        bp_u256_add(&r->fees, &r->fees, &c->fees_paid_wei.v);
    }
    for (size_t i = 0; i < bd->pair_count; i++) {
        bp_open_row *r;
        if (bp_u64map_put(&w->members, pair_key(pairs[2 * i], pairs[2 * i + 1]), 0, &added, NULL) !=
                0 ||
            minute_row(w, bd->chain.origin_key, pairs[2 * i], &r) != 0)
            return BP_ENOMEM;
        r->unique_senders += added;
    }
    return 0;
}

/* The block's set rows of the hour and day: the new ones (window seen whole) or all. A
 * member new to the day is one new to the hour that none of the day's closed hours had. */
static int set_rows(bp_open_windows *o, bp_block_derived *bd, const uint32_t *ids, bp_arena *batch)
{
    size_t n = bd->sender_count + bd->pair_count;
    size_t cap = n * (BP_GRAIN_COUNT - BP_GRAIN_SETS);
    bd->set_rows = cap ? bp_arena_alloc(batch, cap * sizeof(*bd->set_rows)) : NULL;
    bd->set_row_count = 0;
    if (cap && !bd->set_rows)
        return BP_ENOMEM;
    const bp_chain_block_row *c = &bd->chain;
    const uint32_t *pairs = ids + bd->sender_count;
    bp_open_window *hour = &o->win[BP_GRAIN_1H], *day = &o->win[BP_GRAIN_1D];
    bp_set_row *hour_rows = bd->set_rows, *day_rows = bd->set_rows + n;
    size_t nh = 0, nd = 0;
    for (size_t i = 0; i < n; i++) {
        bool pair = i >= bd->sender_count, new_hour = true, new_day = true;
        size_t k = i - bd->sender_count;
        const char *addr = pair ? bd->pairs[k].address : bd->senders[i];
        const char *contract = pair ? bd->pairs[k].contract_address : NULL;
        uint64_t key = !hour->valid ? 0 /* (no ids) */
                       : pair       ? pair_key(pairs[2 * k], pairs[2 * k + 1])
                                    : ids[i];
        if (hour->valid && bp_u64map_put(&hour->members, key, 0, &new_hour, NULL) != 0)
            return BP_ENOMEM;
        if (day->valid) { /* (so the hour is too) */
            bool closed = false;
            if (new_hour)
                bp_u64map_find(&day->members, key, &closed);
            new_day = new_hour && !closed;
            day->total += new_day;
        }
        if (new_hour)
            hour_rows[nh++] = (bp_set_row){c->origin_key, bp_grain_names[BP_GRAIN_1H],
                                           hour->w,       contract,
                                           addr,          c->block_number,
                                           hour->valid};
        if (new_day)
            day_rows[nd++] = (bp_set_row){
                c->origin_key, bp_grain_names[BP_GRAIN_1D], day->w, contract, addr, c->block_number,
                day->valid};
    }
    /* the hour's rows, then the day's */
    if (nd)
        memmove(hour_rows + nh, day_rows, nd * sizeof(*day_rows));
    bd->set_row_count = nh + nd;
    return 0;
}

/* Window g's members (senders and pairs): the day's are its total, not the closed hours' its
 * table holds. */
static size_t members_of(const bp_open_windows *o, int g)
{
    return g == BP_GRAIN_1D ? o->win[g].total : o->win[g].members.count;
}

/* Members of every open window: with the interned addresses, what the bytes are paid for (the
 * give-up message says both: bytes per member measured in place). */
static size_t open_members(const bp_open_windows *o)
{
    size_t n = 0;
    for (int g = 0; g < BP_GRAIN_COUNT; g++)
        n += members_of(o, g);
    return n;
}

/* Window g is given up for memory. */
static void give_up(bp_open_windows *o, int g)
{
    bp_open_window *w = &o->win[g];
    if (w->valid) {
        o->dropped++;
        bp_info("metrics: the open %s window at %" PRIu64 " outgrew the %zu MiB its address "
                "sets may hold (%zu bytes: %zu members in it, %zu in all open windows, %zu "
                "interned addresses); its set rows are checked against the outputs' tables "
                "until the next one",
                bp_grain_names[g], w->w, o->max_bytes >> 20, bp_open_bytes(o), members_of(o, g),
                open_members(o), o->ids.n);
    }
    w->valid = false;
    window_free(w);
    day_needs_hour(o);
    forget_ids(o);
}

/* Over the bound: the coarsest windows are given up first (they hold the most). */
static void bound(bp_open_windows *o)
{
    for (int g = BP_GRAIN_COUNT; g-- > 0 && o->max_bytes && bp_open_bytes(o) > o->max_bytes;)
        give_up(o, g);
}

void bp_open_shed(bp_open_windows *o)
{
    for (int g = BP_GRAIN_COUNT; g-- > 0;)
        give_up(o, g);
    bp_intern_release(&o->ids); /* (its arena's kept chunk too: it is charged) */
    free(o->scratch);
    o->scratch = NULL;
    o->scratch_cap = 0;
}

void bp_open_account(const bp_open_windows *o, bp_open_peak *now)
{
    *now = (bp_open_peak){
        .bytes = bp_open_bytes(o), .id_bytes = bp_intern_bytes(&o->ids), .ids = o->ids.n};
    for (int g = 0; g < BP_GRAIN_COUNT; g++) {
        now->members[g] = members_of(o, g);
        now->stored[g] = o->win[g].members.count;
    }
}

static void note_peak(bp_open_windows *o)
{
    if (bp_open_bytes(o) > o->peak.bytes)
        bp_open_account(o, &o->peak);
}

int bp_open_apply(bp_open_windows *o, bp_block_derived *bd, const uint32_t *pair_at,
                  bool prev_known, uint64_t prev_ts, bp_arena *batch)
{
    uint64_t ts = bd->chain.block_timestamp;
    if (close_hour(o, ts) != 0)
        return BP_ENOMEM;
    for (int g = 0; g < BP_GRAIN_COUNT; g++) {
        if (enter(o, g, bp_window_of(ts, g), prev_known, prev_ts, batch) != 0)
            return BP_ENOMEM;
        o->win[g].touched = true;
    }
    day_needs_hour(o);
    forget_ids(o);
    bool any = false;
    for (int g = 0; g < BP_GRAIN_COUNT; g++)
        any |= o->win[g].valid;
    uint32_t *ids = NULL;
    if (any && block_ids(o, bd, pair_at, &ids) != 0)
        return BP_ENOMEM;
    bp_open_window *minute = &o->win[BP_GRAIN_1M];
    if (minute->valid && add_to_minute(minute, bd, ids) != 0)
        return BP_ENOMEM;
    int rc = set_rows(o, bd, ids, batch);
    bound(o);
    note_peak(o);
    return rc;
}

void bp_open_revert(bp_open_windows *o, uint64_t ts, bool ts_known)
{
    for (int g = 0; g < BP_GRAIN_COUNT; g++) {
        bp_open_window *w = &o->win[g];
        if (!ts_known || (w->used && w->w == bp_window_of(ts, g))) {
            w->valid = false;
            window_free(w);
        }
    }
    day_needs_hour(o);
    forget_ids(o);
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
