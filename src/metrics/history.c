/* history.c - the anomaly model's state rebuilt from an output's transactions (history.h).
 *
 * The state before block L depends on the window before it and on the forest last built
 * (model.h). Let Z be the newest block below L with transactions and A = Z - Z % ANCHOR: the
 * first block at or after A with transactions rebuilds the forest in any run, from a window
 * whose ages need the window before each of its blocks. So replaying from a block X with at
 * least 2 x WINDOW transactions between X and A (or from the output's first block) reaches
 * the state an uninterrupted run has at L: read the newest 2 x WINDOW transactions below A
 * (more when a block is so big that the window before the oldest one's block is not in them),
 * then every transaction from the oldest one's block up to L, oldest first. */
#include "metrics/history.h"

#include <stdlib.h>
#include <string.h>

#include "blockpipe/columns.h"
#include "metrics/keymap.h"
#include "util/arena.h"
#include "util/hex.h"

#define CELL(id) ((size_t)(BP_C_TX_##id - BP_C_TRANSACTIONS_FIRST))
#define PAGE 8192 /* rows per read of the replay */

/* The block numbers of a newest-first read. */
typedef struct numbers {
    uint64_t *v;
    size_t n, cap;
} numbers;

static bool cell_u64(const bp_read_cell *c, uint64_t *out)
{
    char buf[24];
    if (!c->s || c->len == 0 || c->len >= sizeof(buf))
        return false;
    memcpy(buf, c->s, c->len);
    buf[c->len] = 0;
    char *end;
    *out = strtoull(buf, &end, 10);
    return *end == 0;
}

static int take_number(void *ctx, const bp_read_cell *cells, size_t n)
{
    numbers *nb = ctx;
    uint64_t v;
    if (n <= CELL(BLOCK_NUMBER) || !cell_u64(&cells[CELL(BLOCK_NUMBER)], &v))
        return BP_EPARSE;
    if (bp_grow((void **)&nb->v, &nb->cap, nb->n + 1, sizeof(*nb->v)) != 0)
        return BP_ENOMEM;
    nb->v[nb->n++] = v;
    return 0;
}

/* Reads the block numbers of the newest limit transactions of chain below `below`. */
static int newest_below(const bp_metrics_history *h, const char *chain, uint64_t below,
                        size_t limit, numbers *nb, bp_error *err)
{
    nb->n = 0;
    if (below == 0)
        return 0;
    bp_read_query q = {.table = BP_TABLE_TRANSACTIONS,
                       .chain = chain,
                       .has_max = true,
                       .max = below - 1,
                       .limit = limit};
    return h->read(h->ctx, &q, take_number, nb, err);
}

/* ---- the replay of the transactions read, one block at a time ----------------------------- */

typedef struct replay {
    bp_model *m;
    bp_arena *arena; /* the block being gathered's strings */
    bp_block b;
    bp_tx *txs;
    size_t cap;
    size_t learnt;
    size_t page_rows;        /* rows of the page being read */
    uint64_t last_n, last_i; /* the last row's (block_number, transaction_index) */
} replay;

static int flush_block(replay *r)
{
    int rc = r->b.tx_count ? bp_model_learn_block(r->m, &r->b) : 0;
    r->learnt += r->b.tx_count;
    r->b.tx_count = 0;
    bp_arena_recycle(r->arena, 1u << 20);
    return rc;
}

static const char *cell_str(bp_arena *a, const bp_read_cell *c)
{
    return c->s ? bp_arena_strndup(a, c->s, c->len) : NULL;
}

/* Hex data as the decoder keeps it (bp_hexb); what is not "0x" and digits reads empty. */
static const bp_hexb *cell_hexb(bp_arena *a, const bp_read_cell *c)
{
    static const unsigned char empty[2] = {0, 0};
    if (!c->s)
        return NULL;
    if (!bp_hex_is_data(c->s, c->len))
        return (const bp_hexb *)(const void *)empty;
    return bp_hexb_make(a, c->s, c->len);
}

static bp_qty cell_qty(const bp_read_cell *c)
{
    bp_qty q = {0};
    q.set = c->s && bp_u256_from_dec(c->s, c->len, &q.v) == 0;
    return q;
}

/* The fields the model's features read (model.c), as the output stores them. */
static int take_tx(void *ctx, const bp_read_cell *cells, size_t n)
{
    replay *r = ctx;
    uint64_t number, index;
    if (n <= CELL(RECEIPT_EFFECTIVE_GAS_PRICE) || !cell_u64(&cells[CELL(BLOCK_NUMBER)], &number) ||
        !cell_u64(&cells[CELL(TRANSACTION_INDEX)], &index))
        return BP_EPARSE;
    if (r->b.tx_count && number != r->b.number) {
        int rc = flush_block(r);
        if (rc != 0)
            return rc;
    }
    r->b.number = number;
    r->page_rows++;
    r->last_n = number;
    r->last_i = index;
    if (bp_grow((void **)&r->txs, &r->cap, r->b.tx_count + 1, sizeof(*r->txs)) != 0)
        return BP_ENOMEM;
    r->b.txs = r->txs;
    bp_tx *tx = &r->txs[r->b.tx_count++];
    memset(tx, 0, sizeof(*tx));
    tx->block_number = number;
    tx->transaction_index = index;
    tx->from_address = cell_str(r->arena, &cells[CELL(FROM_ADDRESS)]);
    tx->to_address = cell_str(r->arena, &cells[CELL(TO_ADDRESS)]);
    tx->input = cell_hexb(r->arena, &cells[CELL(INPUT)]);
    (void)cell_u64(&cells[CELL(NONCE)], &tx->nonce);
    (void)cell_u64(&cells[CELL(GAS)], &tx->gas);
    tx->value = cell_qty(&cells[CELL(VALUE)]);
    tx->gas_price = cell_qty(&cells[CELL(GAS_PRICE)]);
    tx->has_receipt = cell_u64(&cells[CELL(RECEIPT_GAS_USED)], &tx->receipt_gas_used);
    tx->receipt_status.set = cell_u64(&cells[CELL(RECEIPT_STATUS)], &tx->receipt_status.v);
    tx->receipt_effective_gas_price = cell_qty(&cells[CELL(RECEIPT_EFFECTIVE_GAS_PRICE)]);
    if ((tx->from_address == NULL) != (cells[CELL(FROM_ADDRESS)].s == NULL) ||
        (tx->input == NULL) != (cells[CELL(INPUT)].s == NULL) ||
        (tx->to_address == NULL) != (cells[CELL(TO_ADDRESS)].s == NULL))
        return BP_ENOMEM;
    return 0;
}

/* The block the replay begins at (*from) for a state from the first block with transactions
 * at or after anchor on (the file's comment). */
static int replay_start(const bp_metrics_history *h, const char *chain, uint64_t anchor,
                        uint64_t *from, bp_error *err)
{
    numbers nb = {0};
    int rc = 0;
    *from = 0;
    for (size_t limit = 2 * BP_MODEL_WINDOW;; limit *= 2) {
        if ((rc = newest_below(h, chain, anchor, limit, &nb, err)) != 0 || nb.n < limit)
            break; /* fewer: everything the output holds below the anchor */
        uint64_t oldest_in_window = nb.v[BP_MODEL_WINDOW - 1];
        size_t before = 0;
        for (size_t i = BP_MODEL_WINDOW; i < nb.n; i++)
            before += nb.v[i] < oldest_in_window;
        if (before >= BP_MODEL_WINDOW) {
            *from = nb.v[nb.n - 1];
            break;
        }
    }
    free(nb.v);
    return rc;
}

int bp_model_history_restore(bp_model *m, const bp_metrics_history *h, const char *chain,
                             uint64_t next, const bp_block *const *live, size_t nlive,
                             size_t *replayed, bp_error *err)
{
    bp_model_reset(m);
    *replayed = 0;
    uint64_t written = nlive ? live[0]->number : next; /* the output holds what is below */
    uint64_t z = 0;
    bool any = false;
    for (size_t i = nlive; i-- > 0 && !any;)
        if (live[i]->tx_count) {
            z = live[i]->number;
            any = true;
        }
    numbers nb = {0};
    int rc = 0;
    replay r = {.m = m};
    if (!any && h->read) {
        rc = newest_below(h, chain, written, 1, &nb, err);
        any = rc == 0 && nb.n == 1;
        z = any ? nb.v[0] : 0;
    }
    uint64_t anchor = z - z % BP_MODEL_ANCHOR, from = 0;
    if (rc == 0 && any && h->read)
        rc = replay_start(h, chain, anchor < written ? anchor : written, &from, err);
    if (rc == 0 && any && h->read && from < written) {
        if (!(r.arena = bp_arena_new(1u << 16))) {
            rc = bp_error_set(err, BP_ENOMEM, "out of memory");
            goto out;
        }
        /* in pages: a reader may hold a whole answer in memory (PostgreSQL's does), and
         * the blocks since the anchor can be many big ones */
        bp_read_query q = {.table = BP_TABLE_TRANSACTIONS,
                           .chain = chain,
                           .has_min = true,
                           .min = from,
                           .has_max = true,
                           .max = written - 1,
                           .ascending = true,
                           .limit = PAGE};
        do {
            r.page_rows = 0;
            rc = h->read(h->ctx, &q, take_tx, &r, err);
            q.has_after = true;
            q.after_number = r.last_n;
            q.after_index = r.last_i;
        } while (rc == 0 && r.page_rows == PAGE);
        if (rc == 0)
            rc = flush_block(&r);
        if (rc != 0 && !err->msg[0])
            bp_error_set(err, rc, "transaction of block %llu: %s", (unsigned long long)r.b.number,
                         bp_strerror(rc));
    }
    for (size_t i = 0; rc == 0 && i < nlive; i++) {
        rc = bp_model_learn_block(m, live[i]);
        r.learnt += live[i]->tx_count;
    }
    if (rc != 0)
        bp_model_reset(m);
out:
    *replayed = r.learnt;
    free(nb.v);
    free(r.txs);
    bp_arena_free(r.arena);
    return rc;
}
