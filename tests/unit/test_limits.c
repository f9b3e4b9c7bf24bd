/* test_limits.c - an endpoint's limits read from its error answers: "method missing" by
 * message or code (ganache's -32700, hardhat's -32004), batch refusals with and without a
 * cap in the message, answers refused for their size, what is learnt and how it is shown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "chain/json.h"
#include "chain/limits.h"
#include "chain/rpc_envelope.h"

static yajl_val g_tree;

static yajl_val err_of(const char *json)
{
    char ebuf[128];
    bp_json_free(g_tree);
    g_tree = bp_json_parse(json, strlen(json), ebuf, sizeof(ebuf));
    assert_non_null(g_tree);
    return g_tree;
}

static void test_method_missing(void **state)
{
    (void)state;
    assert_true(bp_rpc_is_method_missing(err_of("{\"code\":-32601,\"message\":\"x\"}")));
    /* ganache 7 */
    assert_true(bp_rpc_is_method_missing(
        err_of("{\"code\":-32700,\"message\":\"The method eth_getBlockReceipts does not "
               "exist/is not available\"}")));
    /* hardhat 2 */
    assert_true(bp_rpc_is_method_missing(
        err_of("{\"code\":-32004,\"message\":\"Method eth_getBlockReceipts is not supported\"}")));
    assert_true(
        bp_rpc_is_method_missing(err_of("{\"code\":-32000,\"message\":\"Unknown method\"}")));
    /* about a block, not a method: not a missing method */
    assert_false(bp_rpc_is_method_missing(
        err_of("{\"code\":-32000,\"message\":\"block 0x12 does not exist\"}")));
    assert_false(bp_rpc_is_method_missing(err_of("{\"code\":-32700,\"message\":\"Parse error\"}")));
}

static void test_batch_cap(void **state)
{
    (void)state;
    assert_int_equal(bp_rpc_batch_cap(err_of("{\"code\":-32600,\"message\":\"batch of 2 exceeds "
                                             "the limit of 1\"}"),
                                      2),
                     1);
    assert_int_equal(bp_rpc_batch_cap(err_of("{\"code\":-32600,\"message\":\"batch of 40 exceeds "
                                             "the limit of 10\"}"),
                                      40),
                     10);
    assert_int_equal(
        bp_rpc_batch_cap(err_of("{\"code\":-32000,\"message\":\"Max batch size is 25\"}"), 64), 25);
    /* geth: no number: halve */
    assert_int_equal(
        bp_rpc_batch_cap(err_of("{\"code\":-32600,\"message\":\"batch too large\"}"), 64), 32);
    /* a cap not below what was asked cannot explain the refusal: halve */
    assert_int_equal(
        bp_rpc_batch_cap(err_of("{\"code\":-32600,\"message\":\"batch limit of 100\"}"), 20), 10);
    /* not about batches */
    assert_int_equal(
        bp_rpc_batch_cap(err_of("{\"code\":-32000,\"message\":\"header not found\"}"), 8), 0);
    assert_int_equal(
        bp_rpc_batch_cap(err_of("{\"code\":-32005,\"message\":\"batch rate limit exceeded\"}"), 8),
        0);
}

/* geth refuses a batch over its limit with a one-entry array: every call gets the error. */
static void test_one_entry_refusal(void **state)
{
    (void)state;
    static const char body[] =
        "[{\"jsonrpc\":\"2.0\",\"id\":0,\"error\":{\"code\":-32600,\"message\":\"batch too "
        "large\"}}]";
    yajl_val root, results[4], errors[4];
    bp_error err;
    assert_int_equal(
        bp_decode_rpc_response(body, sizeof(body) - 1, 4, &root, results, errors, &err), 0);
    for (int i = 0; i < 4; i++)
        assert_ptr_equal(errors[i], errors[0]);
    assert_int_equal(bp_rpc_batch_cap(errors[0], 4), 2);
    bp_json_free(root);
    /* a one-entry array with a result is still a short answer */
    static const char short_body[] = "[{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":\"0x1\"}]";
    assert_int_equal(
        bp_decode_rpc_response(short_body, sizeof(short_body) - 1, 2, &root, results, errors, &err),
        BP_EPARSE);
}

static void test_response_too_big(void **state)
{
    (void)state;
    assert_true(
        bp_rpc_is_response_too_big(err_of("{\"code\":-32003,\"message\":\"response too large\"}")));
    assert_true(bp_rpc_is_response_too_big(
        err_of("{\"code\":-32000,\"message\":\"response size exceeded\"}")));
    assert_false(bp_rpc_is_response_too_big(
        err_of("{\"code\":-32005,\"message\":\"response: rate limit exceeded\"}")));
    assert_false(bp_rpc_is_response_too_big(err_of("{\"code\":-32000,\"message\":\"oops\"}")));
}

static void test_learn_and_describe(void **state)
{
    (void)state;
    bp_rpc_limits l;
    char out[80];
    bp_rpc_limits_init(&l);
    bp_rpc_limits_describe(&l, out, sizeof(out));
    assert_string_equal(out, "");
    assert_true(bp_rpc_limits_learn_calls(&l, 10));
    assert_false(bp_rpc_limits_learn_calls(&l, 20)); /* never raised again */
    assert_true(bp_rpc_limits_learn_calls(&l, 1));
    assert_true(bp_rpc_limits_learn_blocks(&l, 4, 300u << 10));
    atomic_store(&l.no_block_receipts, 1);
    bp_rpc_limits_describe(&l, out, sizeof(out));
    assert_string_equal(out, "no-batches,answers<=300KiB,no-eth_getBlockReceipts");
    assert_true(bp_rpc_limits_once(&l, BP_ONCE_LOG_INDEX));
    assert_false(bp_rpc_limits_once(&l, BP_ONCE_LOG_INDEX));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_method_missing),     cmocka_unit_test(test_batch_cap),
        cmocka_unit_test(test_one_entry_refusal),  cmocka_unit_test(test_response_too_big),
        cmocka_unit_test(test_learn_and_describe),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    bp_json_free(g_tree);
    return rc;
}
