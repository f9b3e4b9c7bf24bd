/* test_stream_metrics.c - the stream outputs' metrics entity (src/sink/stream.c): the entity
 * list, a block's chain_metrics_block row as JSON (every column of the derived column table,
 * 256-bit values as decimal strings, floats as JSON numbers that read back as the same
 * double, USD priced through bp_derived.price_at or null), and the refusal of a batch with
 * APPLYs but no derived rows. (Redis and Kafka end to end, recomputed from a node:
 * integration/test_redis_reorg.py, test_redis_kill9.py, test_kafka_stream.py.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <yajl/yajl_tree.h>

#include "blockpipe/derived.h"
#include "metrics/metrics.h"
#include "sink/stream.h"
#include "sink_fixture.h"
#include "util/arena.h"

static void test_entities(void **state)
{
    (void)state;
    unsigned bits = 0;
    bp_error e = {0};
    assert_int_equal(bp_stream_entities("blocks,metrics", &bits, &e), 0);
    assert_int_equal(bits, (1u << BP_STREAM_BLOCKS) | (1u << BP_STREAM_METRICS));
    assert_int_equal(bp_stream_entities("metrics,traces", &bits, &e), BP_EINVAL);
    assert_non_null(strstr(e.msg, "'traces' is not known"));
    assert_int_equal(bp_stream_entities("", &bits, &e), BP_EINVAL);
}

static yajl_val get(yajl_val v, const char *key)
{
    const char *path[] = {key, NULL};
    yajl_val x = yajl_tree_get(v, path, yajl_t_any);
    if (!x)
        fail_msg("no column %s", key);
    return x;
}

static bool price_1234_5(void *ctx, uint64_t ts, double *usd)
{
    (void)ctx;
    (void)ts;
    *usd = 1234.5;
    return true;
}

static bool no_price(void *ctx, uint64_t ts, double *usd)
{
    (void)ctx;
    (void)ts;
    (void)usd;
    return false;
}

/* The row of d as JSON, parsed; every column of the shape present. */
static yajl_val row_json(const bp_block_derived *bd, const bp_derived *d)
{
    bp_buf out;
    bp_buf_init(&out, 0);
    assert_int_equal(bp_stream_metrics_json(&out, &bd->chain, d), 0);
    char msg[128];
    yajl_val v = yajl_tree_parse(out.data, msg, sizeof(msg));
    if (!v)
        fail_msg("not JSON (%s): %s", msg, out.data);
    size_t first, n = bp_dshape_columns(BP_DS_CHAIN_BLOCK, &first);
    assert_int_equal(YAJL_GET_OBJECT(v)->len, n);
    for (size_t i = first; i < first + n; i++)
        get(v, bp_dcolumns[i].name);
    bp_buf_release(&out);
    return v;
}

static void test_metrics_row(void **state)
{
    (void)state;
    bp_arena *a = bp_arena_new(4096);
    bp_block *b = fx_block(7, 0, true, true);
    bp_block_derived bd;
    assert_int_equal(bp_metrics_derive_block("main", b, a, &bd), 0);
    bp_derived d = {.origin_key = "main", .blocks = &bd, .count = 1};

    yajl_val v = row_json(&bd, &d);
    char dec[BP_U256_DEC_MAX];
    bp_u256_to_dec(&bd.chain.fees_paid_wei.v, dec);
    assert_string_equal(YAJL_GET_STRING(get(v, "fees_paid_wei")), dec);
    assert_string_equal(YAJL_GET_STRING(get(v, "origin_key")), "main");
    assert_string_equal(YAJL_GET_STRING(get(v, "block_hash")), b->hash);
    assert_int_equal(YAJL_GET_INTEGER(get(v, "block_number")), 7);
    assert_int_equal(YAJL_GET_INTEGER(get(v, "txcount")), 4);
    assert_true(YAJL_IS_STRING(get(v, "median_gas_price")));
    assert_true(YAJL_GET_DOUBLE(get(v, "fees_paid_native")) == bd.chain.fees_paid_native.v);
    assert_true(YAJL_IS_NULL(get(v, "fees_paid_usd"))); /* no prices */
    yajl_tree_free(v);

    d.price_at = no_price;
    v = row_json(&bd, &d);
    assert_true(YAJL_IS_NULL(get(v, "fees_paid_usd")));
    yajl_tree_free(v);

    d.price_at = price_1234_5;
    v = row_json(&bd, &d);
    assert_true(YAJL_GET_DOUBLE(get(v, "fees_paid_usd")) == bd.chain.fees_paid_native.v * 1234.5);
    yajl_tree_free(v);

    /* no transactions: no median gas price (null), fees "0" */
    bp_block *empty = fx_block(8, 0, false, true);
    assert_int_equal(bp_metrics_derive_block("main", empty, a, &bd), 0);
    v = row_json(&bd, &d);
    assert_true(YAJL_IS_NULL(get(v, "median_gas_price")));
    assert_string_equal(YAJL_GET_STRING(get(v, "fees_paid_wei")), "0");
    yajl_tree_free(v);
    bp_block_free(empty);
    bp_block_free(b);
    bp_arena_free(a);
}

static void test_batch_without_derived(void **state)
{
    (void)state;
    bp_block *b = fx_block(3, 0, false, true);
    bp_event apply = {BP_EVENT_APPLY, b}, revert = {BP_EVENT_REVERT, b};
    bp_batch batch = {.chain = "main", .events = &apply, .count = 1};
    bp_error e = {0};
    unsigned metrics = 1u << BP_STREAM_METRICS;
    assert_int_equal(bp_stream_check_derived(metrics, true, &batch, &e), BP_EINVAL);
    assert_non_null(strstr(e.msg, "needs the derived rows"));
    assert_int_equal(bp_stream_check_derived(1u << BP_STREAM_BLOCKS, false, &batch, &e), 0);
    batch.events = &revert; /* a REVERT needs no row */
    assert_int_equal(bp_stream_check_derived(metrics, true, &batch, &e), 0);
    bp_block_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entities),
        cmocka_unit_test(test_metrics_row),
        cmocka_unit_test(test_batch_without_derived),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
