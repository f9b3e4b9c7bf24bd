/* model.c - an online isolation forest over transactions (model.h).
 *
 * Features (logs keep heavy-tailed amounts comparable):
 *   0 log10(1 + value in wei)
 *   1 log2(effective gas price / the block's median gas price)
 *   2 log2(1 + blocks since the model first saw the sender), 0 for a new sender
 *   3 log2(1 + nonce)
 *   4 1 for a contract creation
 *   5 1 for a failed transaction (receipt status 0)
 *   6 log2(1 + calldata bytes)
 *   7 receipt gas used / gas limit
 * The sender ages come from a map of sender hashes to the block they were first seen in,
 * emptied when it reaches BP_MODEL_SENDERS entries (ages start again: memory stays bounded). */
#include "metrics/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blockpipe/error.h"
#include "metrics/keymap.h"
#include "metrics/metrics.h"
#include "util/arena.h"

#define BP_MODEL_SENDERS (1u << 20)
#define MAX_NODES (2 * BP_MODEL_SAMPLE)

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

struct bp_model {
    double window[BP_MODEL_WINDOW][BP_MODEL_FEATURES]; /* ring of the last points */
    size_t filled, next, since_build;
    tree *trees; /* BP_MODEL_TREES, NULL before the first forest */
    int sample;  /* psi of the current forest */
    uint64_t rng;
    bp_keymap senders; /* hash of the sender -> block first seen */
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

/* Grows a node over points idx[0..n) (rows of the window) at depth; returns its index. */
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
        double lo = m->window[idx[0]][f], hi = lo;
        for (int i = 1; i < n; i++) {
            double v = m->window[idx[i]][f];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        if (hi <= lo)
            continue;
        double split = lo + (hi - lo) * next_unit(m);
        int a = 0;
        for (int i = 0; i < n; i++)
            if (m->window[idx[i]][f] < split) {
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

static int build(bp_model *m)
{
    if (!m->trees && !(m->trees = calloc(BP_MODEL_TREES, sizeof(*m->trees))))
        return BP_ENOMEM;
    int n = (int)m->filled;
    int psi = n < BP_MODEL_SAMPLE ? n : BP_MODEL_SAMPLE;
    int limit = (int)ceil(log2((double)psi));
    int *all = malloc((size_t)n * sizeof(*all));
    if (!all)
        return BP_ENOMEM;
    for (int t = 0; t < BP_MODEL_TREES; t++) {
        for (int i = 0; i < n; i++)
            all[i] = i;
        for (int i = 0; i < psi; i++) { /* the first psi of a partial shuffle: a sample */
            int j = i + (int)(next_u64(m) % (uint64_t)(n - i));
            int tmp = all[i];
            all[i] = all[j];
            all[j] = tmp;
        }
        m->trees[t].count = 0;
        grow(m, &m->trees[t], all, psi, 0, limit);
    }
    free(all);
    m->sample = psi;
    m->since_build = 0;
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

/* ---- features ---------------------------------------------------------------------------- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* Blocks since the sender was first seen (0: now). */
static double sender_age(bp_model *m, const char *sender, uint64_t block)
{
    if (m->senders.count >= BP_MODEL_SENDERS)
        bp_keymap_clear(&m->senders);
    bool added;
    size_t *first = bp_keymap_ref(&m->senders, hash_str(sender), NULL, NULL, block, &added);
    return first && *first <= block ? (double)(block - *first) : 0;
}

void bp_model_features(bp_model *m, const bp_block *b, const bp_tx *tx, double median,
                       double out[BP_MODEL_FEATURES])
{
    const bp_qty *p =
        tx->receipt_effective_gas_price.set ? &tx->receipt_effective_gas_price : &tx->gas_price;
    double price = p->set ? bp_u256_to_double(&p->v) : 0;
    size_t input = tx->input && strlen(tx->input) > 2 ? (strlen(tx->input) - 2) / 2 : 0;
    out[0] = tx->value.set ? log10(1.0 + bp_u256_to_double(&tx->value.v)) : 0;
    out[1] = median > 0 && price > 0 ? log2(price / median) : 0;
    out[2] = log2(1.0 + sender_age(m, tx->from_address, b->number));
    out[3] = log2(1.0 + (double)tx->nonce);
    out[4] = tx->to_address == NULL;
    out[5] = tx->receipt_status.set && tx->receipt_status.v == 0;
    out[6] = log2(1.0 + (double)input);
    out[7] = tx->gas && tx->has_receipt ? (double)tx->receipt_gas_used / (double)tx->gas : 0;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

bp_model *bp_model_new(void)
{
    bp_model *m = calloc(1, sizeof(*m));
    if (m)
        m->rng = 0x9e3779b97f4a7c15ull;
    return m;
}

void bp_model_free(bp_model *m)
{
    if (!m)
        return;
    free(m->trees);
    bp_keymap_release(&m->senders);
    free(m);
}

static int learn(bp_model *m, const double x[BP_MODEL_FEATURES])
{
    memcpy(m->window[m->next], x, sizeof(m->window[0]));
    m->next = (m->next + 1) % BP_MODEL_WINDOW;
    m->filled += m->filled < BP_MODEL_WINDOW;
    m->since_build++;
    if ((!m->trees && m->filled >= BP_MODEL_WARMUP) ||
        (m->trees && m->since_build >= BP_MODEL_REBUILD))
        return build(m);
    return 0;
}

int bp_model_score_block(bp_model *m, const bp_block_derived *bd, bp_arena *a,
                         bp_prediction_row **rows, size_t *n)
{
    const bp_block *b = bd->block;
    *rows = NULL;
    *n = 0;
    if (b->tx_count == 0)
        return 0;
    bp_prediction_row *out = m->trees ? bp_arena_calloc(a, b->tx_count, sizeof(*out)) : NULL;
    if (m->trees && !out)
        return BP_ENOMEM;
    double median =
        bd->chain.median_gas_price.set ? bp_u256_to_double(&bd->chain.median_gas_price.v) : 0;
    uint64_t now = (uint64_t)time(NULL);
    /* the whole block is scored by the forest as it was before it: its own outliers do not
     * teach the model before they are judged */
    double(*x)[BP_MODEL_FEATURES] = bp_arena_alloc(a, b->tx_count * sizeof(*x));
    if (!x)
        return BP_ENOMEM;
    for (size_t i = 0; i < b->tx_count; i++) {
        const bp_tx *tx = &b->txs[i];
        bp_model_features(m, b, tx, median, x[i]);
        if (out)
            out[(*n)++] = (bp_prediction_row){bd->chain.origin_key,
                                              b->number,
                                              tx->transaction_index,
                                              tx->hash,
                                              {bp_model_score(m, x[i]), true},
                                              BP_MODEL_NAME,
                                              now};
    }
    for (size_t i = 0; i < b->tx_count; i++)
        if (learn(m, x[i]) != 0)
            return BP_ENOMEM;
    *rows = out;
    return 0;
}
