/* chain.c - simnode's chain: clock-driven head and reorgs, hashes, block generation. */
#include "sim/chain.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
    SALT_BLOCK = 0x100,
    SALT_TX = 0x200,
    SALT_ROOT = 0x300,
    SALT_EOA = 0x400,
    SALT_CONTRACT = 0x500,
    SALT_CREATE = 0x600,
    SALT_EVENT = 0x700,
    SALT_WD = 0x800,
    KIND_BLOCK = 1,
    KIND_TX = 2,
};

#define GENESIS_TIME 1700000000ull
#define GWEI 1000000000ull
#define EVENT_POOL 16u
#define GAS_PER_BLOB 131072ull

/* keccak("Transfer(address,address,uint256)"): the one real hash, for realistic logs. */
static const bp_sim_h256 TRANSFER_TOPIC = {
    {0xddf252ad1be2c89bull, 0x69c2b068fc378daaull, 0x952ba7f163c4a116ull, 0x28f55a4df523b3efull}};
/* Roots of an empty trie / list, and sha256(""), as a real node sends them. */
static const bp_sim_h256 EMPTY_ROOT = {
    {0x56e81f171bcc55a6ull, 0xff8345e692c0f86eull, 0x5b48e01b996cadc0ull, 0x01622fb5e363b421ull}};
static const bp_sim_h256 EMPTY_REQUESTS = {
    {0xe3b0c44298fc1c14ull, 0x9afbf4c8996fb924ull, 0x27ae41e4649b934cull, 0xa495991b7852b855ull}};

static double block_step(const bp_sim_params *p)
{
    return p->block_time >= 1.0 ? floor(p->block_time) : 1.0;
}

static int check_params(const bp_sim_params *p, bp_error *err)
{
    if (p->length < 1 || p->length > (1ull << 40))
        return bp_error_set(err, BP_EINVAL, "--length %llu: expected 1 to 2^40 blocks",
                            (unsigned long long)p->length);
    if (p->txs_min > p->txs_max || p->txs_max > BP_SIM_MAX_TXS)
        return bp_error_set(err, BP_EINVAL,
                            "--txs-per-block %u-%u: expected N or MIN-MAX, at most %u", p->txs_min,
                            p->txs_max, BP_SIM_MAX_TXS);
    if (!(p->block_time >= 0) || !(p->reorg_every >= 0))
        return bp_error_set(err, BP_EINVAL, "--block-time / --reorg-every: expected seconds >= 0");
    if (p->start_head >= p->length)
        return bp_error_set(err, BP_EINVAL, "--start-head %llu: beyond --length %llu",
                            (unsigned long long)p->start_head, (unsigned long long)p->length);
    if (p->chain_id == 0)
        return bp_error_set(err, BP_EINVAL, "--chain-id: must not be 0");
    if (p->senders > BP_SIM_MAX_POOL || p->contracts > BP_SIM_MAX_POOL)
        return bp_error_set(err, BP_EINVAL, "--senders / --contracts: expected at most 2^40");
    if (!(p->zipf >= 0 && p->zipf <= BP_SIM_MAX_ZIPF))
        return bp_error_set(err, BP_EINVAL, "--zipf %g: expected 0 to %g", p->zipf,
                            BP_SIM_MAX_ZIPF);
    return 0;
}

int bp_sim_chain_init(bp_sim_chain *c, const bp_sim_params *p, double now, bp_error *err)
{
    memset(c, 0, sizeof(*c));
    int rc = check_params(p, err);
    if (rc != 0)
        return rc;
    c->p = *p;
    if (!c->p.senders)
        c->p.senders = BP_SIM_DEFAULT_SENDERS;
    if (!c->p.contracts)
        c->p.contracts = BP_SIM_DEFAULT_CONTRACTS;
    c->t0 = now;
    c->fork_start = calloc(BP_SIM_MAX_FORKS + 1, sizeof(uint64_t));
    c->fork_head = calloc(BP_SIM_MAX_FORKS + 1, sizeof(uint64_t));
    if (!c->fork_start || !c->fork_head) {
        bp_sim_chain_release(c);
        return bp_error_set(err, BP_ENOMEM, "simnode: out of memory for the fork table");
    }
    pthread_mutex_init(&c->tick_lock, NULL);
    atomic_init(&c->nforks, 0);
    atomic_init(&c->first_dip, 0);
    atomic_init(&c->timer_forks, 0);
    return 0;
}

void bp_sim_chain_release(bp_sim_chain *c)
{
    if (c->fork_start)
        pthread_mutex_destroy(&c->tick_lock);
    free(c->fork_start);
    free(c->fork_head);
    c->fork_start = c->fork_head = NULL;
}

uint64_t bp_sim_chain_head(const bp_sim_chain *c, double now)
{
    uint64_t last = c->p.length - 1;
    if (c->p.block_time <= 0)
        return last;
    double grown = floor((now - c->t0) / c->p.block_time);
    if (grown < 0)
        grown = 0;
    if (grown >= (double)(last - c->p.start_head))
        return last;
    return c->p.start_head + (uint64_t)grown;
}

/* Appends fork k+1 replacing the last `depth` blocks below the head at time `at` (at most
 * down to block 1); caller holds tick_lock. */
static int add_fork(bp_sim_chain *c, double at, uint64_t depth, bp_sim_fork_info *info)
{
    unsigned k = atomic_load(&c->nforks);
    if (k >= BP_SIM_MAX_FORKS)
        return BP_EINVAL;
    uint64_t head = bp_sim_chain_head(c, at);
    uint64_t start = head >= depth ? head - depth + 1 : 1;
    c->fork_start[k + 1] = start;
    c->fork_head[k + 1] = head;
    /* An on-demand fork deeper than the one before: fork_start stops being monotonic here */
    if (start < c->fork_start[k] && atomic_load(&c->first_dip) == 0)
        atomic_store_explicit(&c->first_dip, k + 1, memory_order_relaxed);
    atomic_store_explicit(&c->nforks, k + 1, memory_order_release);
    if (info)
        *info = (bp_sim_fork_info){.fork = k + 1, .start = start, .head = head};
    return 0;
}

int bp_sim_chain_reorg(bp_sim_chain *c, double now)
{
    pthread_mutex_lock(&c->tick_lock);
    int rc = add_fork(c, now, c->p.reorg_depth ? c->p.reorg_depth : 1, NULL);
    pthread_mutex_unlock(&c->tick_lock);
    return rc;
}

/* The timer's reorgs due by now (the schedule counts its own: on-demand forks do not make it
 * skip one). */
static unsigned timer_due(const bp_sim_chain *c, double now)
{
    if (c->p.reorg_every <= 0 || c->p.reorg_depth == 0)
        return 0;
    double due = floor((now - c->t0) / c->p.reorg_every);
    return due < 1 ? 0 : due > BP_SIM_MAX_FORKS ? BP_SIM_MAX_FORKS : (unsigned)due;
}

/* Caller holds tick_lock. */
static unsigned tick_locked(bp_sim_chain *c, double now)
{
    unsigned due = timer_due(c, now), made = 0;
    for (unsigned k = atomic_load(&c->timer_forks); k < due; k++) {
        if (add_fork(c, c->t0 + (double)(k + 1) * c->p.reorg_every, c->p.reorg_depth, NULL) != 0)
            break;
        atomic_store(&c->timer_forks, k + 1);
        made++;
    }
    return made;
}

unsigned bp_sim_chain_tick(bp_sim_chain *c, double now)
{
    if (atomic_load_explicit(&c->timer_forks, memory_order_acquire) >= timer_due(c, now))
        return 0;
    pthread_mutex_lock(&c->tick_lock);
    unsigned made = tick_locked(c, now);
    pthread_mutex_unlock(&c->tick_lock);
    return made;
}

int bp_sim_chain_fork(bp_sim_chain *c, double now, uint64_t depth, bp_sim_fork_info *info,
                      bp_error *err)
{
    pthread_mutex_lock(&c->tick_lock);
    tick_locked(c, now);
    uint64_t head = bp_sim_chain_head(c, now);
    int rc = 0;
    if (depth == 0 || depth > head)
        rc = bp_error_set(
            err, BP_EINVAL, "depth %llu: expected 1 to %llu (the blocks above genesis: head %llu)",
            (unsigned long long)depth, (unsigned long long)head, (unsigned long long)head);
    else if (add_fork(c, now, depth, info) != 0)
        rc = bp_error_set(err, BP_EINVAL, "no fork left: all %u fork ids are used",
                          BP_SIM_MAX_FORKS);
    pthread_mutex_unlock(&c->tick_lock);
    return rc;
}

/* Largest j <= k with fork_start[j] <= n. fork_start is non-decreasing below first_dip (the
 * timer's forks, and on-demand ones no deeper than the fork before): a binary search there;
 * the forks from first_dip on are scanned (only on-demand forks make a dip). */
static uint32_t fork_at_upto(const bp_sim_chain *c, uint64_t n, uint32_t k)
{
    uint32_t dip = atomic_load_explicit(&c->first_dip, memory_order_relaxed);
    if (dip != 0 && k >= dip) {
        for (uint32_t j = k; j >= dip; j--)
            if (c->fork_start[j] <= n)
                return j;
        k = dip - 1;
    }
    uint32_t lo = 0, hi = k;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo + 1) / 2;
        if (c->fork_start[mid] <= n)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

uint32_t bp_sim_chain_fork_at(const bp_sim_chain *c, uint64_t n)
{
    return fork_at_upto(c, n, atomic_load_explicit(&c->nforks, memory_order_acquire));
}

uint32_t bp_sim_chain_fork_upto(const bp_sim_chain *c, uint64_t n, uint32_t k)
{
    return fork_at_upto(c, n, k);
}

bool bp_sim_chain_block_exists(const bp_sim_chain *c, uint64_t n, uint32_t fork, uint64_t head)
{
    uint32_t k = atomic_load_explicit(&c->nforks, memory_order_acquire);
    if (fork > k || n > head || n < c->fork_start[fork])
        return false;
    /* Fork f grew until fork f+1 replaced it; an orphaned branch ends at that head. */
    return fork == k || n <= c->fork_head[fork + 1];
}

/* ---- hashes ---- */

/* w[0], w[1] are pseudo-random; w[2] and w[3] carry idx and (n << 16 | fork) XORed with keys
 * derived from w[0], so the coordinates do not show but can be read back. */
static void coord_hash(const bp_sim_chain *c, uint64_t kind, uint64_t n, uint32_t fork,
                       uint32_t idx, bp_sim_h256 *out)
{
    uint64_t seed = c->p.seed;
    uint64_t w = n << 16 | fork;
    out->w[0] = bp_sim_mix4(seed, w, idx, kind * 4);
    out->w[1] = bp_sim_mix4(seed, w, idx, kind * 4 + 1);
    out->w[2] = ((uint64_t)idx << 32 | (bp_sim_mix4(seed, w, idx, kind * 4 + 2) & 0xffffffffull)) ^
                bp_sim_mix4(seed, kind, out->w[0], 2);
    out->w[3] = w ^ bp_sim_mix4(seed, kind, out->w[0], 3);
}

static bool coord_decode(const bp_sim_chain *c, uint64_t kind, const bp_sim_h256 *h, uint64_t *n,
                         uint32_t *fork, uint32_t *idx)
{
    uint64_t w = h->w[3] ^ bp_sim_mix4(c->p.seed, kind, h->w[0], 3);
    uint32_t i = (uint32_t)((h->w[2] ^ bp_sim_mix4(c->p.seed, kind, h->w[0], 2)) >> 32);
    bp_sim_h256 again;
    coord_hash(c, kind, w >> 16, (uint32_t)(w & 0xffff), i, &again);
    if (memcmp(&again, h, sizeof(again)) != 0)
        return false;
    *n = w >> 16;
    *fork = (uint32_t)(w & 0xffff);
    *idx = i;
    return true;
}

void bp_sim_block_hash(const bp_sim_chain *c, uint64_t n, uint32_t fork, bp_sim_h256 *out)
{
    coord_hash(c, KIND_BLOCK, n, fork, 0, out);
}

void bp_sim_tx_hash(const bp_sim_chain *c, uint64_t n, uint32_t fork, uint32_t idx,
                    bp_sim_h256 *out)
{
    coord_hash(c, KIND_TX, n, fork, idx, out);
}

bool bp_sim_block_hash_decode(const bp_sim_chain *c, const bp_sim_h256 *h, uint64_t *n,
                              uint32_t *fork)
{
    uint32_t idx;
    return coord_decode(c, KIND_BLOCK, h, n, fork, &idx) && idx == 0;
}

bool bp_sim_tx_hash_decode(const bp_sim_chain *c, const bp_sim_h256 *h, uint64_t *n, uint32_t *fork,
                           uint32_t *idx)
{
    return coord_decode(c, KIND_TX, h, n, fork, idx);
}

/* ---- generation ---- */

void bp_sim_block_init(bp_sim_block *b)
{
    memset(b, 0, sizeof(*b));
}

void bp_sim_block_release(bp_sim_block *b)
{
    free(b->txs);
    free(b->logs);
    bp_sim_block_init(b);
}

static void rand_h256(uint64_t *rng, bp_sim_h256 *h)
{
    for (int i = 0; i < 4; i++)
        h->w[i] = bp_sim_next(rng);
}

static void pool_addr(const bp_sim_chain *c, uint64_t salt, uint64_t k, bp_sim_addr *a)
{
    a->w[0] = bp_sim_mix4(c->p.seed, salt, k, 0);
    a->w[1] = bp_sim_mix4(c->p.seed, salt, k, 1);
    a->w[2] = bp_sim_mix4(c->p.seed, salt, k, 2) & 0xffffffff00000000ull;
}

/* A topic holding an address: 12 zero bytes, then the 20 address bytes. */
static void addr_topic(const bp_sim_addr *a, bp_sim_h256 *t)
{
    t->w[0] = 0;
    t->w[1] = a->w[0] >> 32;
    t->w[2] = a->w[0] << 32 | a->w[1] >> 32;
    t->w[3] = a->w[1] << 32 | a->w[2] >> 32;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * elem);
    if (!p)
        return BP_ENOMEM;
    *arr = p;
    *cap = n;
    return 0;
}

static int add_log(bp_sim_block *b, bp_sim_log **out)
{
    if (grow((void **)&b->logs, &b->log_cap, b->log_count + 1, sizeof(bp_sim_log)) != 0)
        return BP_ENOMEM;
    *out = &b->logs[b->log_count++];
    memset(*out, 0, sizeof(**out));
    return 0;
}

void bp_sim_log_bloom(const bp_sim_log *l, uint64_t bloom[32])
{
    uint64_t keys[5] = {l->address.w[0] ^ l->address.w[1]};
    for (unsigned t = 0; t < l->topic_count; t++)
        keys[t + 1] = l->topics[t].w[0] ^ l->topics[t].w[3] ^ (l->topics[t].w[2] >> 1);
    for (unsigned k = 0; k <= l->topic_count; k++) {
        uint64_t h = bp_sim_mix64(keys[k]);
        for (int j = 0; j < 3; j++) {
            unsigned bit = (unsigned)(h >> (j * 11)) & 2047u;
            bloom[bit / 64] |= 1ull << (bit % 64);
        }
    }
}

typedef struct gen {
    const bp_sim_chain *c;
    bp_sim_block *b;
    uint64_t rng;
} gen;

static uint64_t rnd(gen *g)
{
    return bp_sim_next(&g->rng);
}

static uint64_t below(gen *g, uint64_t n)
{
    return rnd(g) % n;
}

/* A rank of a pool of n: uniform, or by the inverse of the continuous power law x^-s on
 * [1, n + 1) (rank floor(x) - 1): one draw and a pow, however large the pool. At zipf 0 the
 * draw is the one the chain always made, so the default chain's bytes do not change. */
static uint64_t pool_rank(gen *g, uint64_t n)
{
    double s = g->c->p.zipf;
    if (s <= 0)
        return below(g, n);
    double u = (double)(rnd(g) >> 11) * 0x1p-53, top = (double)n + 1;
    double x = s == 1.0 ? pow(top, u) : pow((pow(top, 1 - s) - 1) * u + 1, 1 / (1 - s));
    uint64_t r = x < 1 ? 0 : (uint64_t)x - 1;
    return r < n ? r : n - 1;
}

static void eoa(gen *g, bp_sim_addr *a)
{
    pool_addr(g->c, SALT_EOA, pool_rank(g, g->c->p.senders), a);
}

static void contract(gen *g, bp_sim_addr *a)
{
    pool_addr(g->c, SALT_CONTRACT, pool_rank(g, g->c->p.contracts), a);
}

static int gen_transfer_log(gen *g, const bp_sim_tx *tx)
{
    bp_sim_log *l;
    if (add_log(g->b, &l) != 0)
        return BP_ENOMEM;
    bp_sim_addr to;
    eoa(g, &to);
    l->address = tx->to;
    l->topic_count = 3;
    l->topics[0] = TRANSFER_TOPIC;
    addr_topic(&tx->from, &l->topics[1]);
    addr_topic(&to, &l->topics[2]);
    l->data_words = 1;
    l->data_seed = rnd(g);
    return 0;
}

static int gen_event_log(gen *g, const bp_sim_addr *emitter)
{
    bp_sim_log *l;
    if (add_log(g->b, &l) != 0)
        return BP_ENOMEM;
    if (below(g, 4) == 0)
        contract(g, &l->address);
    else
        l->address = *emitter;
    l->topic_count = (uint8_t)below(g, 5);
    for (unsigned t = 0; t < l->topic_count; t++) {
        if (t == 0) {
            uint64_t ev = below(g, EVENT_POOL);
            for (int w = 0; w < 4; w++)
                l->topics[0].w[w] = bp_sim_mix4(g->c->p.seed, SALT_EVENT, ev, (uint64_t)w);
        } else if (below(g, 2) == 0) {
            bp_sim_addr a;
            eoa(g, &a);
            addr_topic(&a, &l->topics[t]);
        } else {
            rand_h256(&g->rng, &l->topics[t]);
        }
    }
    l->data_words = (uint16_t)below(g, 4);
    l->data_seed = rnd(g);
    return 0;
}

static int gen_logs(gen *g, bp_sim_tx *tx)
{
    static const uint8_t call_logs[10] = {0, 0, 0, 1, 1, 1, 2, 2, 3, 4};
    int rc = 0;
    tx->log_offset = (uint32_t)g->b->log_count;
    if (tx->status) {
        switch (tx->input_kind) {
        case BP_SIM_IN_TRANSFER:
            rc = gen_transfer_log(g, tx);
            if (rc == 0 && below(g, 8) == 0)
                rc = gen_event_log(g, &tx->to);
            break;
        case BP_SIM_IN_CALL:
            for (unsigned i = call_logs[below(g, 10)]; rc == 0 && i > 0; i--)
                rc = gen_event_log(g, &tx->to);
            break;
        case BP_SIM_IN_CREATE:
            if (below(g, 2) == 0)
                rc = gen_event_log(g, &tx->contract);
            break;
        default:
            break;
        }
    }
    tx->log_count = (uint32_t)(g->b->log_count - tx->log_offset);
    return rc;
}

static uint8_t gen_type(gen *g)
{
    uint64_t r = below(g, 100);
    return r < 20 ? 0 : r < 25 ? 1 : r < 85 ? 2 : r < 92 ? 3 : 4;
}

static void gen_kind(gen *g, bp_sim_tx *tx, uint32_t idx)
{
    uint64_t r = below(g, 100);
    bool can_create = tx->type < 3; /* blob and set-code txs always have a `to` */
    tx->input_kind = r < 30                  ? BP_SIM_IN_EMPTY
                     : r < 70                ? BP_SIM_IN_TRANSFER
                     : r < 96 || !can_create ? BP_SIM_IN_CALL
                                             : BP_SIM_IN_CREATE;
    tx->has_to = tx->input_kind != BP_SIM_IN_CREATE;
    switch (tx->input_kind) {
    case BP_SIM_IN_EMPTY:
        eoa(g, &tx->to);
        tx->gas = 21000;
        break;
    case BP_SIM_IN_TRANSFER:
        contract(g, &tx->to);
        tx->input_words = 2;
        tx->gas = 65000 + below(g, 20000);
        break;
    case BP_SIM_IN_CALL:
        contract(g, &tx->to);
        tx->input_words = (uint16_t)(below(g, 50) == 0 ? 30 + below(g, 100) : 1 + below(g, 8));
        tx->gas = 100000 + below(g, 400000);
        break;
    default:
        pool_addr(g->c, SALT_CREATE, g->b->number << 20 ^ ((uint64_t)g->b->fork << 48) ^ idx,
                  &tx->contract);
        tx->input_words = (uint16_t)(20 + below(g, 200));
        tx->gas = 500000 + below(g, 1000000);
        break;
    }
    tx->gas_used = tx->input_kind == BP_SIM_IN_EMPTY ? 21000 : tx->gas * (40 + below(g, 55)) / 100;
}

static void gen_value(gen *g, bp_sim_tx *tx)
{
    memset(&tx->value, 0, sizeof(tx->value));
    if (below(g, 100) < 3) {
        tx->value.w[0] = rnd(g); /* above 2^64: whales and test tokens exist */
        tx->value.w[1] = 1 + below(g, 1000);
    } else if (tx->input_kind == BP_SIM_IN_EMPTY) {
        tx->value.w[0] = below(g, 10000000000000000000ull);
    } else if (tx->input_kind == BP_SIM_IN_CALL && below(g, 4) == 0) {
        tx->value.w[0] = below(g, 1000000000000000000ull);
    }
}

static void gen_fees(gen *g, bp_sim_tx *tx)
{
    uint64_t base = g->b->base_fee;
    uint64_t prio = GWEI / 100 + below(g, 2 * GWEI);
    tx->gas_price = base + prio;
    if (tx->type >= 2) {
        tx->max_priority_fee = prio;
        tx->max_fee = 2 * base + prio;
    }
    if (tx->type == 3) {
        tx->blob_count = (uint8_t)(1 + below(g, 6));
        tx->max_fee_per_blob_gas = GWEI + below(g, 10 * GWEI);
    }
}

static int gen_tx(gen *g, uint32_t idx, uint64_t *cumulative)
{
    const bp_sim_chain *c = g->c;
    bp_sim_block *b = g->b;
    bp_sim_tx *tx = &b->txs[idx];
    memset(tx, 0, sizeof(*tx));
    g->rng = bp_sim_mix4(c->p.seed, b->number, (uint64_t)b->fork << 32 | idx, SALT_TX);
    bp_sim_tx_hash(c, b->number, b->fork, idx, &tx->hash);
    tx->type = gen_type(g);
    eoa(g, &tx->from);
    tx->nonce = below(g, 100000);
    gen_kind(g, tx, idx);
    gen_value(g, tx);
    gen_fees(g, tx);
    tx->access_count = tx->type >= 1 ? (uint8_t)below(g, 3) : 0;
    tx->auth_count = tx->type == 4 ? (uint8_t)(1 + below(g, 2)) : 0;
    tx->access_seed = rnd(g);
    tx->auth_seed = rnd(g);
    tx->input_seed = rnd(g);
    tx->y_parity = (uint8_t)(rnd(g) & 1);
    rand_h256(&g->rng, &tx->r);
    rand_h256(&g->rng, &tx->s);
    tx->s.w[0] >>= 1; /* low-s, as signers produce */
    tx->status = tx->input_kind == BP_SIM_IN_EMPTY || below(g, 100) >= 3;
    *cumulative += tx->gas_used;
    tx->cumulative_gas_used = *cumulative;
    return gen_logs(g, tx);
}

static void gen_header(gen *g)
{
    const bp_sim_chain *c = g->c;
    bp_sim_block *b = g->b;
    bp_sim_block_hash(c, b->number, b->fork, &b->hash);
    memset(&b->parent_hash, 0, sizeof(b->parent_hash));
    if (b->number > 0)
        bp_sim_block_hash(c, b->number - 1, fork_at_upto(c, b->number - 1, b->fork),
                          &b->parent_hash);
    b->timestamp = GENESIS_TIME + (uint64_t)((double)b->number * block_step(&c->p));
    b->base_fee = 7 * GWEI + below(g, 30 * GWEI);
    b->excess_blob_gas = below(g, 64) * GAS_PER_BLOB;
    pool_addr(c, SALT_EOA, below(g, 32), &b->miner);
    rand_h256(&g->rng, &b->state_root);
    rand_h256(&g->rng, &b->transactions_root);
    rand_h256(&g->rng, &b->receipts_root);
    rand_h256(&g->rng, &b->parent_beacon_block_root);
    rand_h256(&g->rng, &b->withdrawals_root);
    b->requests_hash = EMPTY_REQUESTS;
}

static void gen_withdrawals(gen *g)
{
    bp_sim_block *b = g->b;
    b->withdrawal_count = b->number == 0 ? 0 : BP_SIM_WITHDRAWALS;
    for (size_t j = 0; j < b->withdrawal_count; j++) {
        bp_sim_withdrawal *w = &b->withdrawals[j];
        w->index = (b->number - 1) * BP_SIM_WITHDRAWALS + j;
        w->validator_index = below(g, 1000000);
        w->amount = 0x1000000 + below(g, 0x100000);
        eoa(g, &w->address);
    }
    if (b->withdrawal_count == 0)
        b->withdrawals_root = EMPTY_ROOT;
}

/* Totals that depend on every tx: gas, blob gas, bloom, size. */
static void sum_block(bp_sim_block *b)
{
    uint64_t size = 620 + 70 * b->withdrawal_count;
    b->gas_used = b->tx_count ? b->txs[b->tx_count - 1].cumulative_gas_used : 0;
    b->gas_limit = b->gas_used > 36000000 ? b->gas_used : 36000000;
    b->blob_gas_used = 0;
    for (size_t i = 0; i < b->tx_count; i++) {
        const bp_sim_tx *tx = &b->txs[i];
        b->blob_gas_used += tx->blob_count * GAS_PER_BLOB;
        size += 110 + 32 * (uint64_t)tx->input_words + 4 + 55 * (uint64_t)tx->access_count +
                33 * (uint64_t)tx->blob_count + 90 * (uint64_t)tx->auth_count;
    }
    b->size = size;
    memset(b->bloom, 0, sizeof(b->bloom));
    for (size_t i = 0; i < b->log_count; i++)
        bp_sim_log_bloom(&b->logs[i], b->bloom);
    if (b->tx_count == 0)
        b->transactions_root = b->receipts_root = EMPTY_ROOT;
}

int bp_sim_block_gen(const bp_sim_chain *c, uint64_t n, uint32_t fork, bp_sim_block *b,
                     bp_error *err)
{
    gen g = {.c = c, .b = b, .rng = bp_sim_mix4(c->p.seed, n, fork, SALT_BLOCK)};
    b->number = n;
    b->fork = fork;
    b->tx_count = 0;
    b->log_count = 0;
    gen_header(&g);
    uint64_t span = (uint64_t)c->p.txs_max - c->p.txs_min + 1;
    size_t count = n == 0 ? 0 : c->p.txs_min + (size_t)below(&g, span);
    gen_withdrawals(&g);
    if (grow((void **)&b->txs, &b->tx_cap, count, sizeof(bp_sim_tx)) != 0)
        return bp_error_set(err, BP_ENOMEM, "simnode: block %llu: out of memory",
                            (unsigned long long)n);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < count; i++) {
        if (gen_tx(&g, (uint32_t)i, &cumulative) != 0)
            return bp_error_set(err, BP_ENOMEM, "simnode: block %llu: out of memory",
                                (unsigned long long)n);
        b->tx_count = i + 1;
    }
    sum_block(b);
    return 0;
}
