/* test_daysets.c - bench_daysets' figures (bench/daysets.c: simnode's blocks through the
 * metrics module's sets) against a count of its own: the same blocks generated again and their
 * senders, (contract, sender) pairs and addresses put in plain hash sets of the raw 20-byte
 * addresses, the contract of a transaction read off simnode's own kinds (a call's or transfer's
 * `to`, a creation's new address, none for a plain transfer of ether). A minute of chain at
 * 1,000 tx/s from a UTC day boundary, and one across an hour boundary (the hour's counts start
 * again, the day's do not, the hour's maximum is the larger half). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daysets.h"
#include "sim/chain.h"

/* A set of keys of 3 or 6 words (an address; a contract then a sender). */
typedef struct keyset {
    uint64_t *keys;
    size_t words, cap, count;
} keyset;

static void keyset_init(keyset *s, size_t words, size_t cap)
{
    *s = (keyset){.keys = calloc(cap * words, sizeof(uint64_t)), .words = words, .cap = cap};
    assert_non_null(s->keys);
}

static bool is_empty(const uint64_t *k, size_t words)
{
    for (size_t i = 0; i < words; i++)
        if (k[i])
            return false;
    return true;
}

static void keyset_add(keyset *s, const uint64_t *key)
{
    uint64_t h = 0;
    for (size_t i = 0; i < s->words; i++)
        h = bp_sim_mix64(h ^ key[i]);
    for (size_t i = h % s->cap;; i = (i + 1) % s->cap) {
        uint64_t *slot = &s->keys[i * s->words];
        if (is_empty(slot, s->words)) {
            memcpy(slot, key, s->words * sizeof(uint64_t));
            s->count++;
            assert_true(s->count < s->cap / 2);
            return;
        }
        if (memcmp(slot, key, s->words * sizeof(uint64_t)) == 0)
            return;
    }
}

typedef struct counts {
    keyset senders, pairs, addresses;
} counts;

static void counts_init(counts *c)
{
    keyset_init(&c->senders, 3, 1 << 18);
    keyset_init(&c->pairs, 6, 1 << 18);
    keyset_init(&c->addresses, 3, 1 << 18);
}

static void counts_release(counts *c)
{
    free(c->senders.keys);
    free(c->pairs.keys);
    free(c->addresses.keys);
}

static void count_block(const bp_sim_block *b, counts *c)
{
    for (size_t i = 0; i < b->tx_count; i++) {
        const bp_sim_tx *tx = &b->txs[i];
        keyset_add(&c->senders, tx->from.w);
        keyset_add(&c->addresses, tx->from.w);
        const bp_sim_addr *contract = tx->input_kind == BP_SIM_IN_EMPTY ? NULL
                                      : tx->has_to                      ? &tx->to
                                                                        : &tx->contract;
        if (!contract)
            continue;
        uint64_t pair[6];
        memcpy(pair, contract->w, sizeof(contract->w));
        memcpy(pair + 3, tx->from.w, sizeof(tx->from.w));
        keyset_add(&c->pairs, pair);
        keyset_add(&c->addresses, contract->w);
    }
}

/* Blocks first .. last of the bench's chain counted here: whole, and from block `split` on. */
static void count_apart(const ds_params *p, uint64_t first, uint64_t last, uint64_t split,
                        counts *all, counts *after)
{
    bp_sim_params sp = {.seed = p->seed,
                        .length = 1ull << 40,
                        .txs_min = p->txs,
                        .txs_max = p->txs,
                        .chain_id = 1,
                        .senders = p->senders,
                        .contracts = p->contracts,
                        .zipf = p->zipf};
    bp_sim_chain chain;
    bp_error err = {0};
    assert_int_equal(bp_sim_chain_init(&chain, &sp, 0, &err), 0);
    bp_sim_block b;
    bp_sim_block_init(&b);
    for (uint64_t n = first; n <= last; n++) {
        assert_int_equal(bp_sim_block_gen(&chain, n, 0, &b, &err), 0);
        count_block(&b, all);
        if (n >= split)
            count_block(&b, after);
    }
    bp_sim_block_release(&b);
    bp_sim_chain_release(&chain);
}

static int keep_last(const ds_point *pt, void *ctx)
{
    *(ds_point *)ctx = *pt;
    return 0;
}

static const ds_params MINUTE = {.seed = 1,
                                 .senders = 100000000,
                                 .contracts = 100000,
                                 .zipf = 1.0,
                                 .txs = 1000,
                                 .blocks = 60,
                                 .batch = 12};

static void test_minute_from_day_start(void **state)
{
    (void)state;
    ds_point pt = {0};
    bp_error err = {0};
    assert_int_equal(ds_run(&MINUTE, keep_last, &pt, &err), 0);
    assert_int_equal(pt.last, pt.first + 59);
    assert_int_equal(pt.txs, 60000);
    /* the first block at a day boundary: its day, hour and minute begin with it */
    assert_int_equal(pt.day_start, pt.hour_start);
    assert_int_equal(pt.day_start % 86400, 0);
    counts all, none;
    counts_init(&all);
    counts_init(&none);
    count_apart(&MINUTE, pt.first, pt.last, UINT64_MAX, &all, &none);
    assert_true(all.senders.count > 30000); /* a long tail: most senders are new */
    assert_int_equal(pt.day_senders, all.senders.count);
    assert_int_equal(pt.day_pairs, all.pairs.count);
    assert_int_equal(pt.hour_senders, all.senders.count);
    assert_int_equal(pt.hour_pairs, all.pairs.count);
    assert_int_equal(pt.hour_senders_max, all.senders.count);
    assert_int_equal(pt.ids, all.addresses.count);
    assert_int_equal(pt.members[BP_GRAIN_1D], all.senders.count + all.pairs.count);
    assert_true(pt.set_bytes > pt.id_bytes && pt.held >= pt.set_bytes);
    assert_true(pt.rss_kib > 0);
    counts_release(&all);
    counts_release(&none);
}

static void test_minute_across_an_hour(void **state)
{
    (void)state;
    ds_point start = {0};
    bp_error err = {0};
    ds_params p = MINUTE;
    p.blocks = 1;
    assert_int_equal(ds_run(&p, keep_last, &start, &err), 0);
    /* 30 blocks before an hour boundary to 30 after it: the day's window began with the
     * first (the module saw it begin), the hour's starts again at the boundary */
    uint64_t boundary = start.first + 3600;
    p.first = boundary - 30;
    p.blocks = 60;
    ds_point pt = {0};
    assert_int_equal(ds_run(&p, keep_last, &pt, &err), 0);
    assert_int_equal(pt.last, boundary + 29);
    assert_int_equal(pt.hour_start, start.day_start + 3600);
    counts all, after, before, none;
    counts_init(&all);
    counts_init(&after);
    counts_init(&before);
    counts_init(&none);
    count_apart(&p, p.first, pt.last, boundary, &all, &after);
    count_apart(&p, p.first, boundary - 1, UINT64_MAX, &before, &none);
    assert_int_equal(pt.day_senders, all.senders.count);
    assert_int_equal(pt.day_pairs, all.pairs.count);
    assert_int_equal(pt.hour_senders, after.senders.count);
    assert_int_equal(pt.hour_pairs, after.pairs.count);
    size_t max =
        before.senders.count > after.senders.count ? before.senders.count : after.senders.count;
    assert_int_equal(pt.hour_senders_max, max);
    assert_int_equal(pt.members[BP_GRAIN_1H], after.senders.count + after.pairs.count);
    assert_int_equal(pt.ids, all.addresses.count);
    counts_release(&all);
    counts_release(&after);
    counts_release(&before);
    counts_release(&none);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minute_from_day_start),
        cmocka_unit_test(test_minute_across_an_hour),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
