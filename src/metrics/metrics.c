/* metrics.c - per-block derivation and the per-batch engine (metrics.h). */
#include "metrics/metrics.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/budget.h"
#include "metrics/history.h"
#include "metrics/keymap.h"
#include "metrics/model.h"
#include "metrics/openwin.h"
#include "metrics/prices.h"
#include "metrics/tokens.h"
#include "util/arena.h"
#include "util/hex.h"
#include "util/log.h"

#define ARENA_KEEP (32u << 20)

typedef struct ring_entry {
    uint64_t number, ts;
} ring_entry;

struct bp_metrics {
    bp_metrics_config cfg;
    char *native_symbol;
    bp_arena *arena; /* the current batch's rows */
    bp_derived d;
    size_t cap; /* of d.blocks */
    bp_keymap senders, contracts, pairs;
    bp_contract_row *rows; /* a block's contract rows while it is derived (then copied) */
    size_t rows_cap;
    uint32_t *pair_at; /* a block's pairs' (contract, sender) indexes (scratch.pair_at) */
    size_t pair_at_cap;
    /* the (number, timestamp) of the last reorg_window + 1 applied blocks, oldest first */
    ring_entry *ring;
    size_t ring_cap, ring_head, ring_len;
    bp_open_windows open; /* the current minute, hour and day */
    bp_model *model;
    /* the model has learnt every block below model_next (model_valid), and the batch's
     * applied blocks still canonical are live[0..nlive): not in any output yet */
    uint64_t model_next;
    bool model_valid;
    const bp_block **live;
    size_t nlive, live_cap;
    int price_reader;  /* its place in cfg.prices (each chain's module takes every point) */
    bp_budget *budget; /* not owned; NULL: nothing charged */
    size_t charged;    /* to budget: the arena's bytes and the open windows' */
    size_t arena_kept; /* the chunk the arena kept from the batch before */
};

double bp_u256_to_double(const bp_u256 *v)
{
    if (bp_u256_fits_u64(v)) /* the conversion rounds to nearest, as strtod does */
        return (double)v->w[0];
    char dec[BP_U256_DEC_MAX];
    bp_u256_to_dec(v, dec);
    return strtod(dec, NULL);
}

const char *bp_metrics_contract_of(const bp_tx *tx)
{
    if (!tx->to_address)
        return tx->receipt_contract_address;
    if (tx->input && bp_hexb_len(tx->input) != 0)
        return tx->to_address;
    return NULL;
}

/* ---- one block ------------------------------------------------------------------------- */

static int cmp_u256(const void *a, const void *b)
{
    return bp_u256_cmp(a, b);
}

static void swap_u256(bp_u256 *a, bp_u256 *b)
{
    bp_u256 t = *a;
    *a = *b;
    *b = t;
}

/* The k-th smallest of v[0..n) (k < n), v reordered: the block's median gas price. A sort of
 * every block's prices was a tenth of the module's instructions; selection is linear. Its
 * pivot is the median of three, and after 2 log2(n) passes (prices crafted against it) what
 * is left is sorted: a few sorts' cost at worst. */
static const bp_u256 *select_u256(bp_u256 *v, size_t n, size_t at)
{
    /* signed: the partition's j ends one below i, which can be lo - 1 */
    ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1, k = (ptrdiff_t)at; /* the k-th is in v[lo..hi] */
    unsigned budget = 2;
    for (size_t x = n; x > 1; x >>= 1)
        budget += 2;
    for (; hi > lo; budget--) {
        if (budget == 0) {
            qsort(v + lo, (size_t)(hi - lo + 1), sizeof(*v), cmp_u256);
            break;
        }
        ptrdiff_t mid = lo + (hi - lo) / 2;
        if (bp_u256_cmp(&v[mid], &v[lo]) < 0)
            swap_u256(&v[mid], &v[lo]);
        if (bp_u256_cmp(&v[hi], &v[lo]) < 0)
            swap_u256(&v[hi], &v[lo]);
        if (bp_u256_cmp(&v[hi], &v[mid]) < 0)
            swap_u256(&v[hi], &v[mid]);
        bp_u256 pivot = v[mid]; /* v[lo] <= pivot <= v[hi] */
        ptrdiff_t i = lo, j = hi;
        while (i <= j) { /* Hoare's partition: v[lo..j] <= pivot <= v[i..hi] */
            while (bp_u256_cmp(&v[i], &pivot) < 0)
                i++;
            while (bp_u256_cmp(&pivot, &v[j]) < 0)
                j--;
            if (i <= j) {
                swap_u256(&v[i], &v[j]);
                i++;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            break; /* j < k < i: v[k] is the pivot */
    }
    return &v[k];
}

/* What the tx paid: receipt gasUsed x effectiveGasPrice (gasPrice when the node sent no
 * effective price), plus the L1 data fee an OP-stack receipt reports (l1Fee: charged on top of
 * the L2 gas, so without it a rollup's fees are a fraction of what users paid); 0 without a
 * receipt. Arbitrum's L1 part is inside gasUsed already (gasUsedForL1). */
static void tx_fee(const bp_tx *tx, bp_u256 *price, bp_u256 *fee)
{
    const bp_qty *p =
        tx->receipt_effective_gas_price.set ? &tx->receipt_effective_gas_price : &tx->gas_price;
    memset(price, 0, sizeof(*price));
    if (p->set)
        *price = p->v;
    memset(fee, 0, sizeof(*fee));
    if (tx->has_receipt)
        bp_u256_mul_u64(fee, price, tx->receipt_gas_used);
    if (tx->has_receipt && tx->op && tx->op->receipt_l1_fee.set)
        bp_u256_add(fee, fee, &tx->op->receipt_l1_fee.v);
}

/* A block's contract rows are gathered in `rows` (grown as contracts appear) and copied into
 * the batch arena at their count: an array sized for one per transaction was 120 bytes a
 * transaction (6 MiB of a 50,000-tx block, for its few hundred contracts), all of it in the
 * batch arena while the batch is written. */
typedef struct scratch {
    bp_keymap *senders, *contracts, *pairs;
    bp_contract_row **rows;
    size_t *rows_cap;
    unsigned skip; /* bp_metrics_config.skip_groups: the groups no output wants */
    /* pair i's contract's index in d->contracts and its sender's in d->senders at
     * [2i], [2i + 1] (NULL: not kept): the open windows take the pair's ids from the
     * contract's and the sender's, not by interning its two addresses again */
    uint32_t **pair_at;
    size_t *pair_at_cap;
} scratch;

/* The tx's contract row and (contract, sender) pair; sender: its index in d->senders. */
static int add_contract(bp_block_derived *d, scratch *s, const bp_tx *tx, const char *contract,
                        const bp_u256 *fee, size_t sender)
{
    size_t i, k;
    bool added;
    if (bp_keymap_put(s->contracts, 0, contract, NULL, d->contract_count, &i, &added) != 0 ||
        bp_grow((void **)s->rows, s->rows_cap, d->contract_count + 1, sizeof(**s->rows)) != 0)
        return BP_ENOMEM;
    bp_contract_row *c = &(*s->rows)[i];
    if (added) {
        d->contract_count++;
        *c = (bp_contract_row){.origin_key = d->chain.origin_key,
                               .block_number = d->chain.block_number,
                               .contract_address = contract,
                               .block_timestamp = d->chain.block_timestamp,
                               .fees_paid_wei = {.set = true}};
    }
    c->txcount++;
    c->gas_used += tx->has_receipt ? tx->receipt_gas_used : 0;
    bp_u256_add(&c->fees_paid_wei.v, &c->fees_paid_wei.v, fee);
    if (!tx->from_address)
        return 0;
    if (bp_keymap_put(s->pairs, 0, contract, tx->from_address, d->pair_count, &k, &added) != 0)
        return BP_ENOMEM;
    if (!added)
        return 0;
    if (s->pair_at) {
        if (bp_grow((void **)s->pair_at, s->pair_at_cap, 2 * (d->pair_count + 1),
                    sizeof(**s->pair_at)) != 0)
            return BP_ENOMEM;
        (*s->pair_at)[2 * d->pair_count] = (uint32_t)i;
        (*s->pair_at)[2 * d->pair_count + 1] = (uint32_t)sender;
    }
    d->pairs[d->pair_count++] = (bp_pair){contract, tx->from_address};
    return 0;
}

static int derive_txs(bp_block_derived *d, scratch *s, bp_u256 *prices, bp_u256 *fees)
{
    const bp_block *b = d->block;
    bp_chain_block_row *c = &d->chain;
    for (size_t k = 0; k < b->tx_count; k++) {
        const bp_tx *tx = &b->txs[k];
        bp_u256 fee;
        tx_fee(tx, &prices[k], &fee);
        bp_u256_add(fees, fees, &fee);
        c->txcount_failed += tx->receipt_status.set && tx->receipt_status.v == 0;
        c->txcount_contract_creation += tx->to_address == NULL;
        size_t i = 0;
        bool added;
        if (tx->from_address) {
            if (bp_keymap_put(s->senders, 0, tx->from_address, NULL, d->sender_count, &i, &added) !=
                0)
                return BP_ENOMEM;
            if (added)
                d->senders[d->sender_count++] = tx->from_address;
        }
        const char *contract = s->skip & BP_DG_BIT(BP_DG_CONTRACT_METRICS)
                                   ? NULL /* no contract rows, no (contract, sender) pairs */
                                   : bp_metrics_contract_of(tx);
        if (contract && add_contract(d, s, tx, contract, &fee, i) != 0)
            return BP_ENOMEM;
    }
    return 0;
}

static int derive_with(const char *origin_key, const bp_block *b, bp_arena *arena,
                       bp_block_derived *d, scratch *s)
{
    memset(d, 0, sizeof(*d));
    d->block = b;
    bp_chain_block_row *c = &d->chain;
    *c = (bp_chain_block_row){.origin_key = origin_key,
                              .block_number = b->number,
                              .block_hash = b->hash,
                              .block_timestamp = b->timestamp,
                              .txcount = b->tx_count,
                              .gas_used = b->gas_used,
                              .gas_limit = b->gas_limit,
                              .base_fee_per_gas = b->base_fee_per_gas,
                              .fees_paid_wei = {.set = true}};
    size_t n = b->tx_count;
    bp_u256 *prices = n ? bp_arena_calloc(arena, n, sizeof(*prices)) : NULL;
    d->senders = n ? bp_arena_calloc(arena, n, sizeof(*d->senders)) : NULL;
    bool pairs = n && !(s->skip & BP_DG_BIT(BP_DG_CONTRACT_METRICS));
    d->pairs = pairs ? bp_arena_calloc(arena, n, sizeof(*d->pairs)) : NULL;
    if (n && (!prices || !d->senders || (pairs && !d->pairs)))
        return BP_ENOMEM;
    bp_keymap_clear(s->senders);
    bp_keymap_clear(s->contracts);
    bp_keymap_clear(s->pairs);
    int rc = derive_txs(d, s, prices, &c->fees_paid_wei.v);
    if (rc != 0)
        return rc;
    c->active_addresses = d->sender_count;
    c->fees_paid_native = (bp_opt_f64){bp_u256_to_double(&c->fees_paid_wei.v) / 1e18, true};
    size_t bytes = d->contract_count * sizeof(*d->contracts);
    if (bytes && !(d->contracts = bp_arena_alloc(arena, bytes)))
        return BP_ENOMEM;
    if (bytes)
        memcpy(d->contracts, *s->rows, bytes);
    for (size_t i = 0; i < d->contract_count; i++) {
        bp_contract_row *k = &d->contracts[i];
        k->fees_paid_native = (bp_opt_f64){bp_u256_to_double(&k->fees_paid_wei.v) / 1e18, true};
    }
    if (n) {
        c->median_gas_price = (bp_qty){.v = *select_u256(prices, n, (n - 1) / 2), .set = true};
    }
    if (s->skip & BP_DG_BIT(BP_DG_TOKEN_TRANSFERS))
        return 0;
    return bp_tokens_decode(arena, origin_key, b, &d->transfers, &d->transfer_count);
}

int bp_metrics_derive_block(const char *origin_key, const bp_block *b, bp_arena *arena,
                            bp_block_derived *d)
{
    bp_keymap maps[3] = {{0}};
    bp_contract_row *rows = NULL;
    size_t cap = 0;
    scratch s = {&maps[0], &maps[1], &maps[2], &rows, &cap, 0, NULL, NULL};
    int rc = derive_with(origin_key, b, arena, d, &s);
    for (int i = 0; i < 3; i++)
        bp_keymap_release(&maps[i]);
    free(rows);
    return rc;
}

/* ---- the stream's frontier ---------------------------------------------------------- */

static ring_entry *ring_at(bp_metrics *m, size_t i)
{
    return &m->ring[(m->ring_head + i) % m->ring_cap];
}

static void ring_apply(bp_metrics *m, uint64_t number, uint64_t ts)
{
    while (m->ring_len && ring_at(m, m->ring_len - 1)->number >= number)
        m->ring_len--; /* a gap or a re-apply: what is above is gone */
    if (m->ring_len == m->ring_cap) {
        m->ring_head = (m->ring_head + 1) % m->ring_cap;
        m->ring_len--;
    }
    *ring_at(m, m->ring_len++) = (ring_entry){number, ts};
}

static void ring_revert(bp_metrics *m, uint64_t number)
{
    while (m->ring_len && ring_at(m, m->ring_len - 1)->number >= number)
        m->ring_len--;
}

/* newest_ts, and frozen_ts once the ring reaches reorg_window blocks below the newest. */
static void frontier(bp_metrics *m, bp_derived *d)
{
    d->newest_ts = d->frozen_ts = 0;
    if (m->ring_len == 0)
        return;
    const ring_entry *newest = ring_at(m, m->ring_len - 1), *oldest = ring_at(m, 0);
    d->newest_ts = newest->ts;
    if (newest->number - oldest->number >= m->cfg.reorg_window)
        d->frozen_ts = oldest->ts;
}

/* ---- the engine --------------------------------------------------------------------- */

bp_metrics *bp_metrics_new(const bp_metrics_config *cfg, bp_error *err)
{
    bp_metrics *m = calloc(1, sizeof(*m));
    if (!m) {
        if (cfg->history.close)
            cfg->history.close(cfg->history.ctx);
        bp_error_set(err, BP_ENOMEM, "out of memory");
        return NULL;
    }
    m->cfg = *cfg;
    m->price_reader = -1;
    m->ring_cap = (size_t)cfg->reorg_window + 1;
    m->ring = calloc(m->ring_cap, sizeof(*m->ring));
    m->native_symbol = strdup(cfg->native_symbol ? cfg->native_symbol : "ETH");
    m->arena = bp_arena_new(1u << 20);
    if (!m->ring || !m->native_symbol || !m->arena) {
        bp_metrics_free(m);
        bp_error_set(err, BP_ENOMEM, "out of memory");
        return NULL;
    }
    m->cfg.native_symbol = m->native_symbol;
    m->price_reader = cfg->prices ? bp_prices_join(cfg->prices) : -1;
    if (cfg->prices && m->price_reader < 0) {
        bp_metrics_free(m);
        bp_error_set(err, BP_ENOMEM, "out of memory");
        return NULL;
    }
    if (cfg->predictions && !(m->model = bp_model_new())) {
        bp_metrics_free(m);
        bp_error_set(err, BP_ENOMEM, "out of memory");
        return NULL;
    }
    return m;
}

void bp_metrics_free(bp_metrics *m)
{
    if (!m)
        return;
    if (m->cfg.prices && m->price_reader >= 0)
        bp_prices_leave(m->cfg.prices, m->price_reader);
    bp_arena_free(m->arena);
    bp_keymap_release(&m->senders);
    bp_keymap_release(&m->contracts);
    bp_keymap_release(&m->pairs);
    free(m->rows);
    free(m->pair_at);
    bp_model_free(m->model);
    free(m->live);
    if (m->cfg.history.close)
        m->cfg.history.close(m->cfg.history.ctx);
    bp_open_release(&m->open);
    free(m->d.blocks);
    free(m->ring);
    free(m->native_symbol);
    free(m);
}

void bp_metrics_set_budget(bp_metrics *m, bp_budget *budget, size_t max_window_bytes)
{
    if (m->budget && m->charged)
        bp_budget_refund(m->budget, m->charged);
    m->charged = 0;
    m->budget = budget;
    m->open.max_bytes = max_window_bytes;
}

uint64_t bp_metrics_windows_dropped(const bp_metrics *m)
{
    return m->open.dropped;
}

void bp_metrics_log_sets(const bp_metrics *m)
{
    const bp_open_peak *p = &m->open.peak;
    size_t members = 0;
    for (int g = 0; g < BP_GRAIN_COUNT; g++)
        members += p->members[g];
    if (!p->bytes)
        return;
    bp_info("metrics: the open windows' address sets held at most %zu bytes (bound %zu): %zu "
            "interned addresses in %zu bytes, %zu members (minute %zu, hour %zu, day %zu) in "
            "the rest; %" PRIu64 " windows given up for memory",
            p->bytes, m->open.max_bytes, p->ids, p->id_bytes, members, p->members[BP_GRAIN_1M],
            p->members[BP_GRAIN_1H], p->members[BP_GRAIN_1D], m->open.dropped);
}

void bp_metrics_sets_now(const bp_metrics *m, bp_open_peak *now)
{
    bp_open_account(&m->open, now);
}

size_t bp_metrics_held(const bp_metrics *m)
{
    return bp_arena_held(m->arena) + bp_open_bytes(&m->open) + m->cap * sizeof(*m->d.blocks);
}

/* The budget follows what the module holds now (memory in use: charged even past the limit,
 * the fetches then wait for it). */
static void charge(bp_metrics *m)
{
    if (!m->budget)
        return;
    bp_budget_follow(m->budget, &m->charged, bp_metrics_held(m));
}

/* Empties the batch arena. When the last batch needed more than the chunk it keeps, one
 * chunk of that size replaces them: chunks double, the largest was half of what a batch
 * took, and every batch faulted the other half in afresh (a tenth of the writer's time). */
static int recycle_arena(bp_metrics *m)
{
    size_t last = bp_arena_used(m->arena);
    m->arena_kept = bp_arena_recycle(m->arena, ARENA_KEEP);
    if (last <= m->arena_kept || last > ARENA_KEEP)
        return 0;
    bp_arena *a = bp_arena_new(last + last / 4);
    if (!a)
        return BP_ENOMEM;
    bp_arena_free(m->arena);
    m->arena = a;
    m->arena_kept = last + last / 4;
    return 0;
}

void bp_metrics_written(bp_metrics *m)
{
    if (recycle_arena(m) == 0)
        charge(m);
}

size_t bp_metrics_shed(bp_metrics *m)
{
    size_t before = m->charged;
    bp_arena *a = bp_arena_new(1u << 20);
    if (a) {
        bp_arena_free(m->arena);
        m->arena = a;
        m->arena_kept = 0;
    }
    bp_open_shed(&m->open);
    free(m->d.blocks); /* every byte: a block may need all the budget leaves */
    m->d.blocks = NULL;
    m->d.count = m->cap = 0;
    charge(m);
    return before > m->charged ? before - m->charged : 0;
}

static int reserve_blocks(bp_metrics *m, size_t n)
{
    if (n <= m->cap)
        return 0;
    bp_block_derived *p = realloc(m->d.blocks, n * sizeof(*p));
    if (!p)
        return BP_ENOMEM;
    m->d.blocks = p;
    m->cap = n;
    return 0;
}

/* The batch's timestamps, for the price source (a backfill may need history first). */
static void batch_span(const bp_batch *batch, uint64_t *lo, uint64_t *hi)
{
    *lo = UINT64_MAX;
    *hi = 0;
    for (size_t i = 0; i < batch->count; i++) {
        uint64_t ts = batch->events[i].block->timestamp;
        if (batch->events[i].kind == BP_EVENT_APPLY) {
            *lo = ts < *lo ? ts : *lo;
            *hi = ts > *hi ? ts : *hi;
        }
    }
}

static bool price_at(void *ctx, uint64_t ts, double *usd)
{
    return bp_prices_at(ctx, ts, usd);
}

static int take_prices(bp_metrics *m, const bp_batch *batch, bp_error *err)
{
    bp_derived *d = &m->d;
    d->prices = NULL;
    d->price_count = 0;
    d->price_at = m->cfg.prices ? price_at : NULL;
    d->price_ctx = m->cfg.prices;
    if (!m->cfg.prices)
        return 0;
    uint64_t lo, hi;
    batch_span(batch, &lo, &hi);
    if (lo <= hi)
        bp_prices_cover(m->cfg.prices, lo, hi);
    bp_price_row *rows = NULL;
    int rc = bp_prices_take_new(m->cfg.prices, m->price_reader, m->arena, &rows, &d->price_count);
    if (rc != 0)
        return bp_error_set(err, rc, "prices: out of memory");
    d->prices = rows;
    return 0;
}

/* The timestamp of applied block number, from the ring. */
static bool ring_ts(bp_metrics *m, uint64_t number, uint64_t *ts)
{
    for (size_t i = m->ring_len; i-- > 0;) {
        const ring_entry *e = ring_at(m, i);
        if (e->number == number) {
            *ts = e->ts;
            return true;
        }
    }
    return false;
}

/* The model's state before block number of chain, rebuilt (history.h) unless the model has
 * just learnt the block below it. A failed read is said, and the model goes on from the
 * batch's blocks: every transaction is still scored, not as an uninterrupted run would. */
static int model_before(bp_metrics *m, const char *chain, uint64_t number, bool outputs_empty)
{
    if (m->model_valid && m->model_next == number)
        return 0;
    size_t first = m->nlive; /* the live blocks just below number */
    while (first > 0 && m->live[first - 1]->number + (m->nlive - first) + 1 == number)
        first--;
    bp_error err = {0};
    size_t learnt = 0;
    bp_metrics_history none = {0}; /* an empty output has nothing to read */
    int rc = bp_model_history_restore(m->model, outputs_empty ? &none : &m->cfg.history, chain,
                                      number, m->live + first, m->nlive - first, &learnt, &err);
    if (rc == BP_ENOMEM)
        return rc;
    if (rc != 0) {
        bp_warn("ml_predictions: the model's window before block %" PRIu64
                " could not be read back (%s): it learns again from block %" PRIu64
                ", and the scores from there differ from an uninterrupted run's",
                number, err.msg, number);
        for (size_t i = first; i < m->nlive; i++)
            if ((rc = bp_model_learn_block(m->model, m->live[i])) != 0)
                return rc;
    } else {
        bp_debug("ml_predictions: the model's state before block %" PRIu64
                 " rebuilt from %zu transactions",
                 number, learnt);
    }
    m->model_valid = true;
    m->model_next = number;
    return 0;
}

static int score_block(bp_metrics *m, const char *chain, const bp_block *b, bp_block_derived *bd,
                       bool outputs_empty)
{
    int rc = model_before(m, chain, b->number, outputs_empty);
    if (rc == 0)
        rc = bp_model_score_block(m->model, bd, m->arena, &bd->predictions, &bd->prediction_count);
    if (rc == 0 && bp_grow((void **)&m->live, &m->live_cap, m->nlive + 1, sizeof(*m->live)) != 0)
        rc = BP_ENOMEM;
    if (rc != 0) {
        m->model_valid = false;
        return rc;
    }
    while (m->nlive && m->live[m->nlive - 1]->number >= b->number)
        m->nlive--; /* the stream went back (a rejoin): they are not below b */
    m->live[m->nlive++] = b;
    m->model_next = b->number + 1;
    return 0;
}

static int apply_block(bp_metrics *m, const char *chain, const bp_block *b, bp_block_derived *bd,
                       bool outputs_empty)
{
    scratch s = {&m->senders,  &m->contracts,      &m->pairs,   &m->rows,
                 &m->rows_cap, m->cfg.skip_groups, &m->pair_at, &m->pair_at_cap};
    int rc = derive_with(chain, b, m->arena, bd, &s);
    if (rc == 0 && m->model)
        rc = score_block(m, chain, b, bd, outputs_empty);
    const ring_entry *last = m->ring_len ? ring_at(m, m->ring_len - 1) : NULL;
    bool prev = last && last->number + 1 == b->number;
    /* The stream went back without REVERTs (an output set aside rejoins: the blocks from its
     * checkpoint on come again, core/pipeline.c rejoin) or skipped blocks: the open windows
     * hold what the module saw, not what the outputs written from here hold (the blocks
     * applied again are in their sets and minute sums already), so none is known any more. */
    if (last && !prev)
        bp_open_revert(&m->open, 0, false);
    if (rc == 0 && last && last->number >= b->number && m->cfg.prices) /* and missed prices */
        bp_prices_resend(m->cfg.prices, m->price_reader);
    /* nothing before it in the outputs: its windows begin with it */
    bool first = !last && (outputs_empty || b->number == 0);
    if (rc == 0)
        rc = bp_open_apply(&m->open, bd, m->pair_at, prev || first, prev ? last->ts : 0, m->arena);
    ring_apply(m, b->number, b->timestamp);
    return rc;
}

/* A big block's scratch maps hold megabytes (a 50,000-tx block's pairs: 128 Ki slots of 48
 * bytes, 6 MiB) that nothing needs while the batch is written, the moment memory peaks: the
 * big ones go (a map of 200-tx blocks stays well under the threshold and is kept). */
#define SCRATCH_KEEP ((size_t)1 << 20)

static void drop_big_scratch(bp_metrics *m)
{
    bp_keymap *maps[] = {&m->senders, &m->contracts, &m->pairs};
    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++)
        if (maps[i]->cap * sizeof(*maps[i]->slots) > SCRATCH_KEEP)
            bp_keymap_release(maps[i]);
    if (m->pair_at_cap * sizeof(*m->pair_at) > SCRATCH_KEEP) {
        free(m->pair_at);
        m->pair_at = NULL;
        m->pair_at_cap = 0;
    }
}

int bp_metrics_compute(bp_metrics *m, const bp_batch *batch, bool outputs_empty,
                       const bp_derived **out, bp_error *err)
{
    bp_derived *d = &m->d;
    if (recycle_arena(m) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    bp_open_begin(&m->open);
    d->origin_key = batch->chain;
    d->count = 0;
    d->native_symbol = m->cfg.native_symbol;
    d->price_max_age = m->cfg.price_max_age;
    if (reserve_blocks(m, batch->count) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    m->nlive = 0; /* the batches before are written */
    for (size_t i = 0; i < batch->count; i++) {
        const bp_event *ev = &batch->events[i];
        const bp_block *b = ev->block;
        if (m->cfg.skip_groups & BP_DG_BIT(BP_DG_CHAIN_METRICS)) {
            /* no output writes rows of blocks (derived=prices): only the frontier */
            if (ev->kind == BP_EVENT_REVERT)
                ring_revert(m, b->number);
            else
                ring_apply(m, b->number, b->timestamp);
            continue;
        }
        if (ev->kind == BP_EVENT_REVERT) {
            uint64_t ts = 0;
            bool known = ring_ts(m, b->number, &ts);
            bp_open_revert(&m->open, ts, known);
            ring_revert(m, b->number);
            while (m->nlive && m->live[m->nlive - 1]->number >= b->number)
                m->nlive--;
            m->model_valid = false; /* it learnt the block: rebuilt before the next */
            continue;
        }
        int rc = apply_block(m, batch->chain, b, &d->blocks[d->count++], outputs_empty);
        if (rc != 0)
            return bp_error_set(err, rc, "metrics of block %llu: %s", (unsigned long long)b->number,
                                bp_strerror(rc));
    }
    drop_big_scratch(m);
    frontier(m, d);
    bp_minute_summary *minutes;
    if (bp_open_summaries(&m->open, m->arena, &minutes, &d->minute_count) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    d->minutes = minutes;
    int rc = take_prices(m, batch, err);
    charge(m);
    if (rc != 0)
        return rc;
    *out = d;
    return 0;
}

/* ---- runs ----------------------------------------------------------------------------- */

void bp_derived_run_init(bp_derived_run *r)
{
    memset(r, 0, sizeof(*r));
}

void bp_derived_run_release(bp_derived_run *r)
{
    for (int g = 0; g < BP_GRAIN_COUNT; g++)
        free(r->contracts[g]);
    if (r->maps)
        for (int g = 0; g < BP_GRAIN_COUNT; g++)
            bp_keymap_release(&r->maps[g]);
    free(r->maps);
    memset(r, 0, sizeof(*r));
}

int bp_derived_set_grain(const bp_set_row *row)
{
    return strcmp(row->grain, bp_grain_names[BP_GRAIN_1H]) == 0 ? BP_GRAIN_1H : BP_GRAIN_1D;
}

static int cmp_str(const char *a, const char *b)
{
    return a == b ? 0 : !a ? -1 : !b ? 1 : strcmp(a, b);
}

static int cmp_u64(uint64_t a, uint64_t b)
{
    return (a > b) - (a < b);
}

int bp_set_row_key_cmp(const bp_set_row *a, const bp_set_row *b)
{
    int c = (a->contract_address != NULL) - (b->contract_address != NULL);
    if (c == 0)
        c = cmp_str(a->origin_key, b->origin_key);
    if (c == 0)
        c = cmp_str(a->grain, b->grain);
    if (c == 0)
        c = cmp_u64(a->window_start, b->window_start);
    if (c == 0)
        c = cmp_str(a->contract_address, b->contract_address);
    return c != 0 ? c : cmp_str(a->address, b->address);
}

static int cmp_set_rows(const void *pa, const void *pb)
{
    const bp_set_row *a = *(const bp_set_row *const *)pa, *b = *(const bp_set_row *const *)pb;
    int c = bp_set_row_key_cmp(a, b);
    return c != 0 ? c : cmp_u64(a->first_block, b->first_block);
}

int bp_derived_sorted_set_rows(const bp_block_derived *const *blocks, size_t n,
                               const bp_set_row ***rows, size_t *cap, size_t *count)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += blocks[i]->set_row_count;
    *count = 0;
    if (k == 0)
        return 0;
    if (bp_grow((void **)rows, cap, k, sizeof(**rows)) != 0)
        return BP_ENOMEM;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < blocks[i]->set_row_count; j++)
            (*rows)[(*count)++] = &blocks[i]->set_rows[j];
    qsort(*rows, k, sizeof(**rows), cmp_set_rows);
    return 0;
}

static int run_contract(bp_derived_run *r, int g, uint64_t w, const bp_contract_row *c)
{
    size_t i;
    bool added;
    size_t *count = &r->contract_count[g];
    if (bp_keymap_put(&r->maps[g], w, c->contract_address, NULL, *count, &i, &added) != 0 ||
        bp_grow((void **)&r->contracts[g], &r->cap[g], *count + 1, sizeof(*r->contracts[g])) != 0)
        return BP_ENOMEM;
    bp_contract_row *k = &r->contracts[g][i];
    if (added) {
        (*count)++;
        *k = (bp_contract_row){.origin_key = c->origin_key,
                               .window_start = w,
                               .contract_address = c->contract_address,
                               .fees_paid_wei = {.set = true}};
    }
    k->txcount += c->txcount;
    k->gas_used += c->gas_used;
    bp_u256_add(&k->fees_paid_wei.v, &k->fees_paid_wei.v, &c->fees_paid_wei.v);
    k->fees_paid_native = (bp_opt_f64){bp_u256_to_double(&k->fees_paid_wei.v) / 1e18, true};
    return 0;
}

int bp_derived_run_build(bp_derived_run *r, const bp_block_derived *const *blocks, size_t n)
{
    if (!r->maps && !(r->maps = calloc(BP_GRAIN_COUNT, sizeof(*r->maps))))
        return BP_ENOMEM;
    for (int g = 0; g < BP_GRAIN_COUNT; g++) {
        r->contract_count[g] = 0;
        bp_keymap_clear(&r->maps[g]);
    }
    for (size_t i = 0; i < n; i++)
        for (int g = BP_GRAIN_SETS; g < BP_GRAIN_COUNT; g++) {
            uint64_t w = bp_window_of(blocks[i]->chain.block_timestamp, g);
            for (size_t k = 0; k < blocks[i]->contract_count; k++)
                if (run_contract(r, g, w, &blocks[i]->contracts[k]) != 0)
                    return BP_ENOMEM;
        }
    return 0;
}

/* ---- the selection --------------------------------------------------------------------- */

int bp_derived_groups_of(const bp_sink_opts *o, unsigned *groups, bp_error *err)
{
    *groups = 0;
    const char *list = bp_sink_opt(o, "derived");
    if (!bp_sink_opt_int(o, "metrics") || !list)
        return 0;
    return bp_dgroups_parse(list, "derived (--derived, DERIVED)", groups, err);
}

/* ---- retention ------------------------------------------------------------------------- */

void bp_retention_from_opts(const bp_sink_opts *o, bp_retention *r)
{
    r->block = (uint64_t)bp_sink_opt_int(o, "retention_block");
    r->sets = (uint64_t)bp_sink_opt_int(o, "retention_sets");
    r->grain[BP_GRAIN_1M] = (uint64_t)bp_sink_opt_int(o, "retention_1m");
    r->grain[BP_GRAIN_1H] = (uint64_t)bp_sink_opt_int(o, "retention_1h");
    r->grain[BP_GRAIN_1D] = (uint64_t)bp_sink_opt_int(o, "retention_1d");
}

/* keep, but at least floor; 0 (forever) stays forever and forces forever when floor is. */
static uint64_t at_least(uint64_t keep, uint64_t base, uint64_t extra)
{
    if (keep == 0 || base == 0)
        return 0;
    return keep > base + extra ? keep : base + extra;
}

void bp_retention_effective(const bp_retention *in, bp_retention *out)
{
    *out = *in;
    out->grain[BP_GRAIN_1M] = at_least(in->grain[BP_GRAIN_1M], in->block, 3600);
    out->grain[BP_GRAIN_1H] = at_least(in->grain[BP_GRAIN_1H], in->block, 86400);
}
