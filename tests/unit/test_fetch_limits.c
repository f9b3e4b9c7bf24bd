/* test_fetch_limits.c - bp_fetch_range within an endpoint's limits, against simnode in this
 * process: an endpoint without batches, one with a batch cap, one with geth's cap on a batch
 * answer's size. The limit is learnt from the first refusal, the blocks are fetched anyway
 * (no failure) and equal what an endpoint without limits gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "chain/fetch.h"
#include "chain/rpc.h"
#include "sim/server.h"

#define FIRST 1
#define COUNT 8

static bp_sim_server g_sim;

static int setup(void **state)
{
    (void)state;
    bp_error err = {0};
    bp_sim_faults f[5];
    bp_sim_faults_clear(f, 5);
    f[1].max_batch = 1;
    f[2].max_batch = 6;
    f[3].max_response_bytes = 20000;
    f[4].max_response_bytes = 3000; /* a few receipts */
    bp_sim_server_config cfg = {
        .chain = {.seed = 5, .length = 40, .txs_min = 3, .txs_max = 9, .chain_id = 1337},
        .host = "127.0.0.1",
        .endpoints = 5,
        .faults = f,
    };
    if (bp_rpc_global_init(&err) != 0 || bp_sim_server_start(&g_sim, &cfg, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bp_sim_server_stop(&g_sim);
    bp_rpc_global_cleanup();
    return 0;
}

/* Blocks FIRST..FIRST+COUNT-1 from endpoint ep (its limits start as `pre`). */
static bp_rpc *fetch_all(size_t ep, const bp_rpc_limits *pre, bp_block **out)
{
    char url[64];
    int rcs[COUNT];
    bp_error errs[COUNT];
    bp_rpc *rpc = NULL;
    bp_error err;
    bp_fetch_shared shared;
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)bp_sim_server_port(&g_sim, ep));
    bp_rpc_config cfg = {.url = url};
    assert_int_equal(bp_rpc_new(&rpc, &cfg, &err), 0);
    if (pre && atomic_load(&pre->no_block_receipts))
        atomic_store(&bp_rpc_limits_of(rpc)->no_block_receipts, 1);
    bp_fetch_shared_init(&shared, BP_FETCH_ALL);
    int rc = bp_fetch_range(rpc, &shared, FIRST, COUNT, out, rcs, errs);
    for (size_t i = 0; i < COUNT; i++)
        if (rcs[i] != 0)
            fail_msg("endpoint %zu, block %zu: %s", ep + 1, FIRST + i, errs[i].msg);
    assert_int_equal(rc, 0);
    return rpc;
}

static void same_blocks(bp_block **a, bp_block **b)
{
    for (size_t i = 0; i < COUNT; i++) {
        assert_string_equal(a[i]->hash, b[i]->hash);
        assert_int_equal(a[i]->tx_count, b[i]->tx_count);
        assert_int_equal(a[i]->log_count, b[i]->log_count);
        assert_true(a[i]->has_receipts && b[i]->has_receipts);
        for (size_t t = 0; t < a[i]->tx_count; t++)
            assert_int_equal(a[i]->txs[t].receipt_gas_used, b[i]->txs[t].receipt_gas_used);
        for (size_t k = 0; k < a[i]->log_count; k++)
            assert_int_equal(a[i]->logs[k].log_index, b[i]->logs[k].log_index);
    }
}

static void release(bp_rpc *rpc, bp_block **blocks)
{
    for (size_t i = 0; i < COUNT; i++)
        bp_block_free(blocks[i]);
    bp_rpc_free(rpc);
}

static void test_limits_learnt(void **state)
{
    (void)state;
    bp_block *ref[COUNT], *got[COUNT];
    bp_rpc *r0 = fetch_all(0, NULL, ref);
    bp_rpc_limits *l = bp_rpc_limits_of(r0);
    assert_int_equal(atomic_load(&l->max_calls), 0); /* nothing refused: nothing learnt */
    assert_int_equal(atomic_load(&l->max_blocks), 0);

    bp_rpc *r = fetch_all(1, NULL, got); /* no batches */
    same_blocks(ref, got);
    assert_int_equal(atomic_load(&bp_rpc_limits_of(r)->max_calls), 1);
    release(r, got);

    r = fetch_all(2, NULL, got); /* batch of 16 calls refused: "limit of 6" */
    same_blocks(ref, got);
    assert_int_equal(atomic_load(&bp_rpc_limits_of(r)->max_calls), 6);
    release(r, got);

    r = fetch_all(3, NULL, got); /* answers over ~20 KB refused */
    same_blocks(ref, got);
    l = bp_rpc_limits_of(r);
    assert_true(atomic_load(&l->max_blocks) >= 1 && atomic_load(&l->max_blocks) < COUNT);
    assert_true(atomic_load(&l->max_bytes) > 20000);
    release(r, got);
    release(r0, ref);
}

/* Without eth_getBlockReceipts and without batches: eth_getTransactionReceipt one call at a
 * time (a one-call batch is an object, not an array). */
static void test_no_batches_no_block_receipts(void **state)
{
    (void)state;
    bp_block *ref[COUNT], *got[COUNT];
    bp_rpc_limits pre;
    bp_rpc_limits_init(&pre);
    atomic_store(&pre.no_block_receipts, 1);
    bp_rpc *r0 = fetch_all(0, NULL, ref);
    bp_rpc *r = fetch_all(1, &pre, got);
    same_blocks(ref, got);
    assert_int_equal(atomic_load(&bp_rpc_limits_of(r)->max_calls), 1);
    release(r, got);
    /* eth_getTransactionReceipt batches refused for their answer's size: fewer calls */
    r = fetch_all(4, &pre, got);
    same_blocks(ref, got);
    assert_in_range(atomic_load(&bp_rpc_limits_of(r)->max_calls), 1, 8);
    release(r, got);
    release(r0, ref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits_learnt),
        cmocka_unit_test(test_no_batches_no_block_receipts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
