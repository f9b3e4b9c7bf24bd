/* test_check.c - a block's invariants (chain/check.h): log indexes that restart in every
 * transaction are renumbered by position (one warning per endpoint) unless strict; any other
 * order, a transaction index off its position or a missing receipt fails, naming endpoint,
 * block, transaction and field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "chain/check.h"

#define EP "http://node:8545"

static bp_tx g_txs[3];
static bp_log g_logs[5];
static bp_block g_b;

/* Three txs with 2, 0 and 3 logs; indexes as given. */
static void block_with(const uint64_t idx[5])
{
    static const char *const hashes[] = {"0xaa", "0xbb", "0xcc"};
    static const size_t counts[] = {2, 0, 3};
    memset(&g_b, 0, sizeof(g_b));
    memset(g_txs, 0, sizeof(g_txs));
    memset(g_logs, 0, sizeof(g_logs));
    g_b.number = 7;
    g_b.txs = g_txs;
    g_b.tx_count = g_b.transaction_count = 3;
    g_b.logs = g_logs;
    g_b.log_count = 5;
    g_b.has_receipts = true;
    size_t k = 0;
    for (size_t i = 0; i < 3; i++) {
        g_txs[i].hash = hashes[i];
        g_txs[i].transaction_index = i;
        g_txs[i].has_receipt = true;
        g_txs[i].log_offset = k;
        g_txs[i].log_count = counts[i];
        for (size_t j = 0; j < counts[i]; j++, k++) {
            g_logs[k].log_index = idx[k];
            g_logs[k].transaction_index = i;
        }
    }
}

static void test_good_block(void **state)
{
    (void)state;
    bp_error err = {0};
    block_with((const uint64_t[]){0, 1, 2, 5, 9}); /* gaps are fine: only the order matters */
    assert_int_equal(bp_block_check(&g_b, EP, true, NULL, &err), 0);
    assert_int_equal(g_logs[4].log_index, 9);
}

static void test_restart_renumbered(void **state)
{
    (void)state;
    bp_error err = {0};
    bp_rpc_limits l;
    bp_rpc_limits_init(&l);
    block_with((const uint64_t[]){0, 1, 0, 1, 2});
    assert_int_equal(bp_block_check(&g_b, EP, false, &l, &err), 0);
    for (size_t k = 0; k < 5; k++)
        assert_int_equal(g_logs[k].log_index, k);
    assert_false(bp_rpc_limits_once(&l, BP_ONCE_LOG_INDEX)); /* it warned */
}

static void test_restart_strict(void **state)
{
    (void)state;
    bp_error err = {0};
    block_with((const uint64_t[]){0, 1, 0, 1, 2});
    assert_int_equal(bp_block_check(&g_b, EP, true, NULL, &err), BP_EPARSE);
    assert_non_null(strstr(err.msg, "rpc " EP ": block 7: tx 0xcc (index 2): log 2 of the "
                                    "block: field 'logIndex' is 0"));
    assert_non_null(strstr(err.msg, "restarts in every transaction"));
    assert_int_equal(g_logs[2].log_index, 0); /* not repaired */
}

static void test_other_disorder(void **state)
{
    (void)state;
    bp_error err = {0};
    block_with((const uint64_t[]){0, 1, 1, 2, 3}); /* a duplicate: no certain repair */
    assert_int_equal(bp_block_check(&g_b, EP, false, NULL, &err), BP_EPARSE);
    assert_non_null(strstr(err.msg, "tx 0xcc (index 2): log 2 of the block: field 'logIndex' "
                                    "is 1, not above the previous log's 1"));
    assert_null(strstr(err.msg, "restarts"));
}

static void test_tx_index_and_receipt(void **state)
{
    (void)state;
    bp_error err = {0};
    block_with((const uint64_t[]){0, 1, 2, 3, 4});
    g_txs[1].transaction_index = 5;
    assert_int_equal(bp_block_check(&g_b, EP, false, NULL, &err), BP_EPARSE);
    assert_non_null(strstr(err.msg, "block 7: tx 0xbb (index 5): field 'transactionIndex'"));
    block_with((const uint64_t[]){0, 1, 2, 3, 4});
    g_txs[2].has_receipt = false;
    assert_int_equal(bp_block_check(&g_b, EP, false, NULL, &err), BP_EPARSE);
    assert_non_null(strstr(err.msg, "tx 0xcc (index 2): no receipt"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_block),           cmocka_unit_test(test_restart_renumbered),
        cmocka_unit_test(test_restart_strict),       cmocka_unit_test(test_other_disorder),
        cmocka_unit_test(test_tx_index_and_receipt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
