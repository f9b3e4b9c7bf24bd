/* model.c - an online isolation forest over transactions (model.h).
 *
 * Features (logs keep heavy-tailed amounts comparable):
 *   0 log10(1 + value in wei)
 *   1 log2(effective gas price / the block's median gas price)
 *   2 log2(1 + blocks since the sender's first transaction in the window), 0 for a sender
 *     the window does not hold
 *   3 log2(1 + nonce)
 *   4 1 for a contract creation
 *   5 1 for a failed transaction (receipt status 0)
 *   6 log2(1 + calldata bytes)
 *   7 receipt gas used / gas limit
 * The window keeps, per sender it holds, its first and last point, and each point the next of
 * its sender: the ages follow the window as it slides, in memory bounded by the window. */
#include "metrics/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blockpipe/error.h"
#include "metrics/keymap.h"
#include "metrics/metrics.h"
#include "util/arena.h"
#include "util/hex.h"

#define MAX_NODES (2 * BP_MODEL_SAMPLE)
#define SENDER_SLOTS (2 * BP_MODEL_WINDOW) /* a power of two, at most half full */

typedef struct node {
    int feature; /* -1: a leaf */
    double split;
    double lo, hi; /* the range of feature over the node's points */
    int left, right;
    int size; /* leaf: the points it holds */
} node;

typedef struct tree {
    node nodes[MAX_NODES];
    int count;
} tree;

typedef struct point {
    double x[BP_MODEL_FEATURES];
    uint64_t sender; /* hash of the sender */
    uint64_t block;
    int next; /* the slot of the sender's next point in the window, -1: none */
} point;

typedef struct sender_slot {
    uint64_t key; /* 0: empty */
    int first, last;
} sender_slot;

struct bp_model {
    point ring[BP_MODEL_WINDOW]; /* the window: slot (head + i) % WINDOW is its i-th oldest */
    size_t head, filled;
    sender_slot senders[SENDER_SLOTS];
    size_t since_build; /* points learnt since the last warm forest */
    uint64_t built_at;  /* the block the last warm forest was built before */
    bool warm;          /* a forest of a warm window exists */
    tree *trees;        /* BP_MODEL_TREES, NULL before the first forest */
    int sample;         /* psi of the current forest, 0: none */
    uint64_t rng;
    double (*pts)[BP_MODEL_FEATURES]; /* the points a forest is built from, oldest first */
    size_t pts_cap;
    int *idx;
    size_t idx_cap;
    double (*x)[BP_MODEL_FEATURES]; /* a replayed block's points */
    size_t x_cap;
};

/* ---- randomness (xorshift64*: reproducible, no global state) ------------------------------ */

static uint64_t next_u64(bp_model *m)
{
    m->rng ^= m->rng >> 12;
    m->rng ^= m->rng << 25;
    m->rng ^= m->rng >> 27;
    return m->rng * 0x2545f4914f6cdd1dull;
}

static double next_unit(bp_model *m)
{
    return (double)(next_u64(m) >> 11) / 9007199254740992.0;
}

/* A forest's random stream depends on the block it is built before only (splitmix64). */
static void seed(bp_model *m, uint64_t block)
{
    uint64_t z = block + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    m->rng = z ? z : 0x9e3779b97f4a7c15ull;
}

/* ---- the forest --------------------------------------------------------------------------- */

/* The average path length of an unsuccessful search in a binary search tree of n points. */
static double c_of(double n)
{
    if (n <= 1)
        return 0;
    if (n == 2)
        return 1;
    return 2.0 * (log(n - 1.0) + 0.5772156649015329) - 2.0 * (n - 1.0) / n;
}

/* Grows a node over points idx[0..n) (rows of m->pts) at depth; returns its index. */
static int grow(bp_model *m, tree *t, int *idx, int n, int depth, int limit)
{
    int me = t->count++;
    node *nd = &t->nodes[me];
    *nd = (node){.feature = -1, .size = n};
    if (n <= 1 || depth >= limit || t->count + 2 > MAX_NODES)
        return me;
    /* a random feature that still varies here, and a random split inside its range */
    int f0 = (int)(next_u64(m) % BP_MODEL_FEATURES);
    for (int k = 0; k < BP_MODEL_FEATURES; k++) {
        int f = (f0 + k) % BP_MODEL_FEATURES;
        double lo = m->pts[idx[0]][f], hi = lo;
        for (int i = 1; i < n; i++) {
            double v = m->pts[idx[i]][f];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        if (hi <= lo)
            continue;
        double split = lo + (hi - lo) * next_unit(m);
        int a = 0;
        for (int i = 0; i < n; i++)
            if (m->pts[idx[i]][f] < split) {
                int tmp = idx[a];
                idx[a++] = idx[i];
                idx[i] = tmp;
            }
        if (a == 0 || a == n)
            continue;
        nd->feature = f;
        nd->split = split;
        nd->lo = lo;
        nd->hi = hi;
        int l = grow(m, t, idx, a, depth + 1, limit);
        int r = grow(m, t, idx + a, n - a, depth + 1, limit);
        t->nodes[me].left = l;
        t->nodes[me].right = r;
        return me;
    }
    return me; /* every feature constant: a leaf of identical points */
}

/* Room for n points in m->pts (and their indexes). */
static int reserve_pts(bp_model *m, size_t n)
{
    if (bp_grow((void **)&m->pts, &m->pts_cap, n, sizeof(*m->pts)) != 0)
        return BP_ENOMEM;
    return bp_grow((void **)&m->idx, &m->idx_cap, n, sizeof(*m->idx));
}

/* The window's points into m->pts, oldest first (the order a forest samples them in: the same
 * window gives the same forest however its ring was filled). */
static void window_pts(bp_model *m)
{
    for (size_t i = 0; i < m->filled; i++)
        memcpy(m->pts[i], m->ring[(m->head + i) % BP_MODEL_WINDOW].x, sizeof(m->pts[0]));
}

/* A forest over m->pts[0..n) (n >= 2) for the block numbered block. */
static int build(bp_model *m, size_t n, uint64_t block)
{
    if (!m->trees && !(m->trees = calloc(BP_MODEL_TREES, sizeof(*m->trees))))
        return BP_ENOMEM;
    seed(m, block);
    int psi = n < BP_MODEL_SAMPLE ? (int)n : BP_MODEL_SAMPLE;
    int limit = (int)ceil(log2((double)psi));
    int *all = m->idx;
    for (int t = 0; t < BP_MODEL_TREES; t++) {
        for (size_t i = 0; i < n; i++)
            all[i] = (int)i;
        for (int i = 0; i < psi; i++) { /* the first psi of a partial shuffle: a sample */
            size_t j = (size_t)i + (size_t)(next_u64(m) % (uint64_t)(n - (size_t)i));
            int tmp = all[i];
            all[i] = all[j];
            all[j] = tmp;
        }
        m->trees[t].count = 0;
        grow(m, &m->trees[t], all, psi, 0, limit);
    }
    m->sample = psi;
    return 0;
}

/* The expected depth at which the tree isolates x. A point outside a node's range of its split
 * feature would have been cut off there by a split drawn over the range that includes it, with
 * the probability gap / (gap + range): without this, a point far beyond everything the model
 * saw would follow the path of the most extreme sample and look no stranger than it. */
static double path_length(const tree *t, const double *x)
{
    int i = 0, depth = 0;
    double stay = 1.0, expected = 0.0; /* the probability x is not isolated yet */
    while (t->nodes[i].feature >= 0) {
        const node *nd = &t->nodes[i];
        double v = x[nd->feature];
        double gap = v < nd->lo ? nd->lo - v : v > nd->hi ? v - nd->hi : 0;
        double cut = gap > 0 ? gap / (gap + (nd->hi - nd->lo)) : 0;
        expected += stay * cut * (depth + 1);
        stay *= 1.0 - cut;
        i = v < nd->split ? nd->left : nd->right;
        depth++;
    }
    return expected + stay * (depth + c_of(t->nodes[i].size));
}

double bp_model_score(const bp_model *m, const double x[BP_MODEL_FEATURES])
{
    if (!m->trees || m->sample < 2)
        return -1;
    double sum = 0;
    for (int t = 0; t < BP_MODEL_TREES; t++)
        sum += path_length(&m->trees[t], x);
    return pow(2.0, -(sum / BP_MODEL_TREES) / c_of(m->sample));
}

/* ---- the window's senders ----------------------------------------------------------------- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h ? h : 1; /* 0 marks an empty slot */
}

static size_t home_of(uint64_t key)
{
    return (size_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & (SENDER_SLOTS - 1);
}

static sender_slot *find_sender(const bp_model *m, uint64_t key)
{
    for (size_t i = home_of(key);; i = (i + 1) & (SENDER_SLOTS - 1)) {
        const sender_slot *s = &m->senders[i];
        if (s->key == key || s->key == 0)
            return s->key ? (sender_slot *)s : NULL;
    }
}

/* Removes slot i, moving back the entries of its probe run that may take its place. */
static void remove_sender(bp_model *m, size_t i)
{
    for (size_t j = (i + 1) & (SENDER_SLOTS - 1); m->senders[j].key;
         j = (j + 1) & (SENDER_SLOTS - 1)) {
        size_t h = home_of(m->senders[j].key);
        /* j's entry may move to i when its home is not in (i, j] (cyclically) */
        bool stays = i <= j ? (h > i && h <= j) : (h > i || h <= j);
        if (!stays) {
            m->senders[i] = m->senders[j];
            i = j;
        }
    }
    m->senders[i].key = 0;
}

/* The window's oldest point leaves it. */
static void evict(bp_model *m)
{
    int slot = (int)m->head;
    sender_slot *s = find_sender(m, m->ring[slot].sender);
    if (s && s->last == slot)
        remove_sender(m, (size_t)(s - m->senders));
    else if (s)
        s->first = m->ring[slot].next;
    m->head = (m->head + 1) % BP_MODEL_WINDOW;
    m->filled--;
}

static void learn(bp_model *m, const double x[BP_MODEL_FEATURES], uint64_t sender, uint64_t block)
{
    if (m->filled == BP_MODEL_WINDOW)
        evict(m);
    int slot = (int)((m->head + m->filled++) % BP_MODEL_WINDOW);
    point *p = &m->ring[slot];
    memcpy(p->x, x, sizeof(p->x));
    p->sender = sender;
    p->block = block;
    p->next = -1;
    sender_slot *s = find_sender(m, sender);
    if (s) {
        m->ring[s->last].next = slot;
        s->last = slot;
        return;
    }
    size_t i = home_of(sender);
    while (m->senders[i].key)
        i = (i + 1) & (SENDER_SLOTS - 1);
    m->senders[i] = (sender_slot){sender, slot, slot};
}

/* ---- features ---------------------------------------------------------------------------- */

void bp_model_features(const bp_model *m, const bp_block *b, const bp_tx *tx, double median,
                       double out[BP_MODEL_FEATURES])
{
    const bp_qty *p =
        tx->receipt_effective_gas_price.set ? &tx->receipt_effective_gas_price : &tx->gas_price;
    double price = p->set ? bp_u256_to_double(&p->v) : 0;
    size_t input = tx->input ? bp_hexb_len(tx->input) / 2 : 0; /* calldata bytes */
    const sender_slot *s = find_sender(m, hash_str(tx->from_address));
    uint64_t first = s ? m->ring[s->first].block : b->number;
    out[0] = tx->value.set ? log10(1.0 + bp_u256_to_double(&tx->value.v)) : 0;
    out[1] = median > 0 && price > 0 ? log2(price / median) : 0;
    out[2] = log2(1.0 + (double)(first <= b->number ? b->number - first : 0));
    out[3] = log2(1.0 + (double)tx->nonce);
    out[4] = tx->to_address == NULL;
    out[5] = tx->receipt_status.set && tx->receipt_status.v == 0;
    out[6] = log2(1.0 + (double)input);
    out[7] = tx->gas && tx->has_receipt ? (double)tx->receipt_gas_used / (double)tx->gas : 0;
}

static int cmp_u256(const void *a, const void *b)
{
    return bp_u256_cmp(a, b);
}

double bp_model_block_median(const bp_block *b)
{
    size_t n = b->tx_count;
    if (n == 0)
        return 0;
    bp_u256 *prices = calloc(n, sizeof(*prices));
    if (!prices)
        return 0;
    for (size_t i = 0; i < n; i++) { /* as metrics.c tx_fee takes it */
        const bp_tx *tx = &b->txs[i];
        const bp_qty *p =
            tx->receipt_effective_gas_price.set ? &tx->receipt_effective_gas_price : &tx->gas_price;
        if (p->set)
            prices[i] = p->v;
    }
    qsort(prices, n, sizeof(*prices), cmp_u256);
    double median = bp_u256_to_double(&prices[(n - 1) / 2]);
    free(prices);
    return median;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

bp_model *bp_model_new(void)
{
    return calloc(1, sizeof(bp_model));
}

void bp_model_free(bp_model *m)
{
    if (!m)
        return;
    free(m->trees);
    free(m->pts);
    free(m->idx);
    free(m->x);
    free(m);
}

void bp_model_reset(bp_model *m)
{
    m->head = m->filled = m->since_build = 0;
    memset(m->senders, 0, sizeof(m->senders));
    m->warm = false;
    m->built_at = 0;
    m->sample = 0;
}

/* The forest block number's n points x are scored by (model.h): the warm forest, rebuilt when
 * its time came, or before warm-up one of the window and the block's own points. score false:
 * a replay, where only the warm forests matter (the later state depends on nothing else). */
static int forest_for(bp_model *m, uint64_t number, const double (*x)[BP_MODEL_FEATURES], size_t n,
                      bool score)
{
    if (m->filled >= BP_MODEL_WARMUP) {
        if (m->warm && number / BP_MODEL_ANCHOR == m->built_at / BP_MODEL_ANCHOR &&
            m->since_build < BP_MODEL_REBUILD)
            return 0;
        if (reserve_pts(m, m->filled) != 0)
            return BP_ENOMEM;
        window_pts(m);
        m->warm = true;
        m->built_at = number;
        m->since_build = 0;
        return build(m, m->filled, number);
    }
    m->sample = 0;
    if (!score || m->filled + n < 2)
        return 0;
    if (reserve_pts(m, m->filled + n) != 0)
        return BP_ENOMEM;
    window_pts(m);
    memcpy(m->pts[m->filled], x, n * sizeof(*x));
    return build(m, m->filled + n, number);
}

/* The block's points join the window. */
static void absorb(bp_model *m, const bp_block *b, const double (*x)[BP_MODEL_FEATURES])
{
    for (size_t i = 0; i < b->tx_count; i++)
        learn(m, x[i], hash_str(b->txs[i].from_address), b->number);
    m->since_build += b->tx_count;
}

int bp_model_learn_block(bp_model *m, const bp_block *b)
{
    if (b->tx_count == 0)
        return 0;
    if (bp_grow((void **)&m->x, &m->x_cap, b->tx_count, sizeof(*m->x)) != 0)
        return BP_ENOMEM;
    double median = bp_model_block_median(b);
    for (size_t i = 0; i < b->tx_count; i++)
        bp_model_features(m, b, &b->txs[i], median, m->x[i]);
    const double(*x)[BP_MODEL_FEATURES] = (const double(*)[BP_MODEL_FEATURES])m->x;
    int rc = forest_for(m, b->number, x, b->tx_count, false);
    if (rc == 0)
        absorb(m, b, x);
    return rc;
}

int bp_model_score_block(bp_model *m, const bp_block_derived *bd, bp_arena *a,
                         bp_prediction_row **rows, size_t *n)
{
    const bp_block *b = bd->block;
    *rows = NULL;
    *n = 0;
    if (b->tx_count == 0)
        return 0;
    bp_prediction_row *out = bp_arena_calloc(a, b->tx_count, sizeof(*out));
    double(*x)[BP_MODEL_FEATURES] = bp_arena_alloc(a, b->tx_count * sizeof(*x));
    if (!out || !x)
        return BP_ENOMEM;
    double median =
        bd->chain.median_gas_price.set ? bp_u256_to_double(&bd->chain.median_gas_price.v) : 0;
    /* the whole block is scored by the forest as it was before it: its own outliers do not
     * teach the model before they are judged (but in warm-up, model.h) */
    for (size_t i = 0; i < b->tx_count; i++)
        bp_model_features(m, b, &b->txs[i], median, x[i]);
    int rc = forest_for(m, b->number, (const double(*)[BP_MODEL_FEATURES])x, b->tx_count, true);
    if (rc != 0)
        return rc;
    uint64_t now = (uint64_t)time(NULL);
    for (size_t i = 0; i < b->tx_count; i++) {
        const bp_tx *tx = &b->txs[i];
        double s = m->sample >= 2 ? bp_model_score(m, x[i]) : 0.5; /* a lone first point */
        out[i] = (bp_prediction_row){
            bd->chain.origin_key, b->number, tx->transaction_index, tx->hash, {s, true},
            BP_MODEL_NAME,        now};
    }
    absorb(m, b, (const double(*)[BP_MODEL_FEATURES])x);
    *rows = out;
    *n = b->tx_count;
    return 0;
}
