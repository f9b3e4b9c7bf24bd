/* daysets.c - a day of simnode's traffic through the metrics module's sets (daysets.h). */
#include "daysets.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "blockpipe/model.h"
#include "blockpipe/sink.h"
#include "metrics/metrics.h"
#include "metrics/openwin.h"
#include "sim/chain.h"
#include "sim/render.h"
#include "util/arena.h"

#define DAY 86400u

static double now_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* An address as the decoder leaves it: "0x" + 40 lower-case hex digits, in the block's arena
 * (simnode's own renderer writes the digits). */
static const char *addr_str(bp_arena *a, const bp_sim_addr *addr)
{
    char q[44];
    bp_sim_put_addr(q, addr);
    return bp_arena_strndup(a, q + 1, 42);
}

static bp_qty qty(uint64_t v)
{
    return (bp_qty){.v = {{v}}, .set = true};
}

/* The decoded block of simnode block s: what the metrics module reads of a block and its
 * receipts (senders, `to`, input empty or not, created contracts, gas, prices, status), with
 * the values simnode renders. Logs are left out: they make token_transfers rows, not set
 * members. */
/* Inputs as the decoder keeps them (bp_hexb): "0x" and "0xa9059cbb". */
static const unsigned char empty_input[2] = {0, 0};
static const unsigned char call_input[6] = {8, 0, 0xa9, 0x05, 0x9c, 0xbb};

static int decoded(const bp_sim_block *s, bp_block *b)
{
    bp_arena *a = b->arena;
    char h[68];
    bp_sim_put_h256(h, &s->hash);
    b->number = s->number;
    b->hash = bp_arena_strndup(a, h + 1, 66);
    b->timestamp = s->timestamp;
    b->gas_used = s->gas_used;
    b->gas_limit = s->gas_limit;
    b->base_fee_per_gas = qty(s->base_fee);
    b->transaction_count = b->tx_count = s->tx_count;
    b->has_receipts = true;
    b->txs = s->tx_count ? bp_arena_calloc(a, s->tx_count, sizeof(*b->txs)) : NULL;
    if (!b->hash || (s->tx_count && !b->txs))
        return BP_ENOMEM;
    for (size_t k = 0; k < s->tx_count; k++) {
        const bp_sim_tx *st = &s->txs[k];
        bp_tx *t = &b->txs[k];
        *t = (bp_tx){.block_hash = b->hash,
                     .block_number = s->number,
                     .block_timestamp = s->timestamp,
                     .transaction_index = k,
                     .from_address = addr_str(a, &st->from),
                     .to_address = st->has_to ? addr_str(a, &st->to) : NULL,
                     .nonce = st->nonce,
                     .gas = st->gas,
                     .value = {.v = st->value, .set = true},
                     .gas_price = qty(st->gas_price),
                     .transaction_type = {st->type, true},
                     /* only "0x" or not matters here (a call's contract) */
                     .input = (const bp_hexb *)(const void *)(st->input_kind == BP_SIM_IN_EMPTY
                                                                  ? empty_input
                                                                  : call_input),
                     .has_receipt = true,
                     .receipt_cumulative_gas_used = st->cumulative_gas_used,
                     .receipt_gas_used = st->gas_used,
                     .receipt_contract_address = st->has_to ? NULL : addr_str(a, &st->contract),
                     .receipt_status = {st->status, true},
                     .receipt_effective_gas_price = qty(st->gas_price)};
        if (!t->from_address || (st->has_to && !t->to_address) ||
            (!st->has_to && !t->receipt_contract_address))
            return BP_ENOMEM;
    }
    return 0;
}

typedef struct run {
    const ds_params *p;
    bp_sim_chain chain;
    bool chain_ok;
    bp_sim_block sim;
    bp_metrics *m;
    bp_block **blocks;
    bp_event *events;
    ds_point pt;
    double t0, cpu0;
} run;

/* The first block at a UTC day boundary (blocks are one second apart). */
static int day_start_block(run *r, uint64_t *first, bp_error *err)
{
    int rc = bp_sim_block_gen(&r->chain, 1, 0, &r->sim, err);
    if (rc == 0)
        *first = 1 + (DAY - r->sim.timestamp % DAY) % DAY;
    return rc;
}

/* The batch's new set rows, counted per open window. */
static int count_rows(run *r, const bp_derived *d, bp_error *err)
{
    ds_point *pt = &r->pt;
    for (size_t i = 0; i < d->count; i++) {
        const bp_block_derived *bd = &d->blocks[i];
        uint64_t ts = bd->chain.block_timestamp;
        if (bp_window_of(ts, BP_GRAIN_1D) != pt->day_start) {
            pt->day_start = bp_window_of(ts, BP_GRAIN_1D);
            pt->day_senders = pt->day_pairs = 0;
        }
        if (bp_window_of(ts, BP_GRAIN_1H) != pt->hour_start) {
            pt->hour_start = bp_window_of(ts, BP_GRAIN_1H);
            pt->hour_senders = pt->hour_pairs = 0;
        }
        for (size_t j = 0; j < bd->set_row_count; j++) {
            const bp_set_row *row = &bd->set_rows[j];
            if (!row->known_new)
                return bp_error_set(err, BP_EINVAL,
                                    "block %llu: a %s set row not known new: the module did not "
                                    "see the window whole, its members are not the day's",
                                    (unsigned long long)row->first_block, row->grain);
            bool day = bp_derived_set_grain(row) == BP_GRAIN_1D, sender = !row->contract_address;
            *(day ? (sender ? &pt->day_senders : &pt->day_pairs)
                  : (sender ? &pt->hour_senders : &pt->hour_pairs)) += 1;
        }
        pt->txs += bd->chain.txcount;
        pt->last = bd->chain.block_number;
        if (pt->hour_senders > pt->hour_senders_max)
            pt->hour_senders_max = pt->hour_senders;
        if (pt->hour_pairs > pt->hour_pairs_max)
            pt->hour_pairs_max = pt->hour_pairs;
    }
    return 0;
}

/* The point after the last batch: the module's account, checked against the rows. */
static int take_point(run *r, bp_error *err)
{
    ds_point *pt = &r->pt;
    bp_open_peak now;
    bp_metrics_sets_now(r->m, &now);
    pt->ids = now.ids;
    pt->id_bytes = now.id_bytes;
    pt->set_bytes = now.bytes;
    pt->held = bp_metrics_held(r->m);
    memcpy(pt->members, now.members, sizeof(pt->members));
    if (now.members[BP_GRAIN_1D] != pt->day_senders + pt->day_pairs ||
        now.members[BP_GRAIN_1H] != pt->hour_senders + pt->hour_pairs)
        return bp_error_set(err, BP_EINVAL,
                            "after block %llu the module's sets hold %zu (day) and %zu (hour) "
                            "members, its new rows say %llu and %llu",
                            (unsigned long long)pt->last, now.members[BP_GRAIN_1D],
                            now.members[BP_GRAIN_1H],
                            (unsigned long long)(pt->day_senders + pt->day_pairs),
                            (unsigned long long)(pt->hour_senders + pt->hour_pairs));
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    pt->rss_kib = ru.ru_maxrss;
    pt->seconds = now_s(CLOCK_MONOTONIC) - r->t0;
    pt->cpu_seconds = now_s(CLOCK_PROCESS_CPUTIME_ID) - r->cpu0;
    return 0;
}

/* Blocks n .. n + k - 1 through the module as one batch. */
static int one_batch(run *r, uint64_t n, size_t k, bool first, bp_error *err)
{
    int rc = 0;
    size_t made = 0;
    for (; made < k && rc == 0; made++) {
        rc = bp_sim_block_gen(&r->chain, n + made, 0, &r->sim, err);
        if (rc == 0 && !(r->blocks[made] = bp_block_new()))
            rc = bp_error_set(err, BP_ENOMEM, "out of memory");
        if (rc == 0 && decoded(&r->sim, r->blocks[made]) != 0)
            rc = bp_error_set(err, BP_ENOMEM, "block %llu: out of memory",
                              (unsigned long long)(n + made));
        if (rc == 0)
            r->events[made] = (bp_event){BP_EVENT_APPLY, r->blocks[made]};
    }
    if (rc == 0) {
        bp_batch batch = {.chain = "daysets", .chain_id = 1, .events = r->events, .count = k};
        const bp_derived *d;
        double t = now_s(CLOCK_MONOTONIC);
        rc = bp_metrics_compute(r->m, &batch, first, &d, err);
        if (rc == 0)
            rc = count_rows(r, d, err);
        bp_metrics_written(r->m);
        r->pt.metrics_seconds += now_s(CLOCK_MONOTONIC) - t;
    }
    for (size_t i = 0; i < made; i++) {
        bp_block_free(r->blocks[i]);
        r->blocks[i] = NULL;
    }
    return rc;
}

/* The last block of the next point at or after block n. */
static uint64_t next_point(const ds_params *p, uint64_t first, uint64_t n)
{
    uint64_t end = first + p->blocks - 1, next = end;
    if (p->every) {
        uint64_t k = (n - first) / p->every + 1;
        next = first + k * p->every - 1 < next ? first + k * p->every - 1 : next;
    }
    for (size_t i = 0; i < p->nat; i++)
        if (p->at[i] >= n && p->at[i] < next)
            next = p->at[i];
    return next;
}

int ds_run(const ds_params *p, int (*report)(const ds_point *pt, void *ctx), void *ctx,
           bp_error *err)
{
    run r = {.p = p};
    bp_sim_block_init(&r.sim);
    uint64_t first = p->first;
    bp_sim_params sp = {.seed = p->seed,
                        .length = 1ull << 40,
                        .txs_min = p->txs,
                        .txs_max = p->txs,
                        .chain_id = 1,
                        .senders = p->senders,
                        .contracts = p->contracts,
                        .zipf = p->zipf};
    bp_metrics_config cfg = {.reorg_window = 64, .native_symbol = "ETH"};
    size_t batch = p->batch ? p->batch : 1;
    int rc = bp_sim_chain_init(&r.chain, &sp, 0, err);
    r.chain_ok = rc == 0;
    if (rc == 0 && !first)
        rc = day_start_block(&r, &first, err);
    if (rc != 0)
        goto out;
    r.blocks = calloc(batch, sizeof(*r.blocks));
    r.events = calloc(batch, sizeof(*r.events));
    if (!r.blocks || !r.events) {
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
        goto out;
    }
    if (!(r.m = bp_metrics_new(&cfg, err))) {
        rc = err->code;
        goto out;
    }
    bp_metrics_set_budget(r.m, NULL, 0); /* the sets kept whole: what a day costs */
    r.pt.first = first;
    r.t0 = now_s(CLOCK_MONOTONIC);
    r.cpu0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
    for (uint64_t n = first; n < first + p->blocks && rc == 0;) {
        uint64_t stop = next_point(p, first, n);
        size_t k = stop - n + 1 < batch ? (size_t)(stop - n + 1) : batch;
        rc = one_batch(&r, n, k, n == first, err);
        n += k;
        if (rc == 0 && n == stop + 1 && (rc = take_point(&r, err)) == 0)
            rc = report(&r.pt, ctx);
    }
out:
    bp_metrics_free(r.m);
    free(r.blocks);
    free(r.events);
    bp_sim_block_release(&r.sim);
    if (r.chain_ok)
        bp_sim_chain_release(&r.chain);
    return rc;
}
