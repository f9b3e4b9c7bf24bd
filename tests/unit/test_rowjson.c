/* test_rowjson.c - a row as JSON (sink/rowjson.h): every column of its table under its name
 * and in its order, with the value the column table reads, 256-bit amounts as exact decimal
 * strings, JSON columns nested, missing values null; text is escaped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <yajl/yajl_tree.h>

#include "blockpipe/columns.h"
#include "sink/rowjson.h"
#include "sink_fixture.h"

static yajl_val parse_row(bp_table t, const bp_row *r, bp_buf *b)
{
    bp_buf_reset(b);
    assert_int_equal(bp_rowjson(b, t, r), 0);
    char msg[256];
    yajl_val v = yajl_tree_parse(b->data, msg, sizeof(msg));
    if (!v)
        fail_msg("not JSON (%s): %s", msg, b->data);
    assert_true(YAJL_IS_OBJECT(v));
    return v;
}

/* The object has exactly table t's columns, in order; each value has its column's shape. */
static void check_shape(yajl_val obj, bp_table t, const bp_row *r)
{
    size_t first, n = bp_table_columns(t, &first);
    assert_int_equal(obj->u.object.len, n);
    for (size_t k = 0; k < n; k++) {
        bp_col_id id = (bp_col_id)(first + k);
        const char *name = bp_columns[id].name;
        yajl_val v = obj->u.object.values[k];
        assert_string_equal(obj->u.object.keys[k], name);
        bp_value want = bp_value_of(id, r);
        switch (want.kind) {
        case BP_VAL_NULL:
            assert_true(YAJL_IS_NULL(v));
            break;
        case BP_VAL_U64: {
            assert_true(YAJL_IS_NUMBER(v));
            char dec[32];
            snprintf(dec, sizeof(dec), "%" PRIu64, want.u);
            assert_string_equal(YAJL_GET_NUMBER(v), dec);
            break;
        }
        case BP_VAL_U256: {
            assert_true(YAJL_IS_STRING(v));
            char dec[BP_U256_DEC_MAX];
            bp_u256_to_dec(&want.q->v, dec);
            assert_string_equal(YAJL_GET_STRING(v), dec);
            break;
        }
        case BP_VAL_STR:
            if (bp_col_type_of(id) == BP_COL_JSON)
                assert_true(YAJL_IS_ARRAY(v) || YAJL_IS_OBJECT(v));
            else
                assert_string_equal(YAJL_GET_STRING(v), want.s);
            break;
        case BP_VAL_HEX: {
            char text[BP_HEXB_TEXT];
            bp_hexb_text(text, want.h);
            assert_string_equal(YAJL_GET_STRING(v), text);
            break;
        }
        case BP_VAL_WITHDRAWALS:
            assert_true(YAJL_IS_ARRAY(v));
            assert_int_equal(v->u.array.len, r->block->withdrawal_count);
            break;
        case BP_VAL_F64: /* the derived tables' kind: no raw column has it */
            fail_msg("column %s: a float in a raw table", name);
            break;
        }
    }
}

static yajl_val member(yajl_val obj, const char *key)
{
    const char *path[] = {key, NULL};
    yajl_val v = yajl_tree_get(obj, path, yajl_t_any);
    assert_non_null(v);
    return v;
}

static void test_every_table(void **state)
{
    (void)state;
    bp_block *b = fx_block(7, 0, true, true);
    bp_buf buf;
    bp_buf_init(&buf, 0);
    bp_row r = {.chain = "main\"net\n", .block = b};

    yajl_val o = parse_row(BP_TABLE_BLOCKS, &r, &buf);
    check_shape(o, BP_TABLE_BLOCKS, &r);
    assert_string_equal(YAJL_GET_STRING(member(o, "chain")), "main\"net\n");
    assert_string_equal(YAJL_GET_STRING(member(o, "total_difficulty")), "58750003716598352816469");
    assert_true(YAJL_IS_NULL(member(o, "requests_hash")));
    yajl_tree_free(o);

    for (size_t i = 0; i < b->tx_count; i++) {
        r.tx = &b->txs[i];
        o = parse_row(BP_TABLE_TRANSACTIONS, &r, &buf);
        check_shape(o, BP_TABLE_TRANSACTIONS, &r);
        if (i == 0) {
            assert_string_equal(YAJL_GET_STRING(member(o, "value")), "55340232221128654853");
            assert_string_equal(YAJL_GET_NUMBER(member(o, "nonce")), "18446744073709551615");
        }
        if (i == 1)
            assert_true(YAJL_IS_NULL(member(o, "to_address")));
        yajl_tree_free(o);
    }
    r.tx = NULL;
    for (size_t i = 0; i < b->log_count; i++) {
        r.log = &b->logs[i];
        o = parse_row(BP_TABLE_LOGS, &r, &buf);
        check_shape(o, BP_TABLE_LOGS, &r);
        yajl_tree_free(o);
    }
    bp_buf_release(&buf);
    bp_block_free(b);
}

/* A block fetched without receipts: the receipt columns are null. */
static void test_no_receipt(void **state)
{
    (void)state;
    bp_block *b = fx_block(3, 1, true, false);
    bp_buf buf;
    bp_buf_init(&buf, 0);
    bp_row r = {.chain = "c", .block = b, .tx = &b->txs[0]};
    yajl_val o = parse_row(BP_TABLE_TRANSACTIONS, &r, &buf);
    check_shape(o, BP_TABLE_TRANSACTIONS, &r);
    assert_true(YAJL_IS_NULL(member(o, "receipt_status")));
    assert_true(YAJL_IS_NULL(member(o, "receipt_gas_used")));
    yajl_tree_free(o);
    bp_buf_release(&buf);
    bp_block_free(b);
}

/* A capped buffer: the cap's error, not a torn object. */
static void test_cap(void **state)
{
    (void)state;
    bp_block *b = fx_block(3, 0, true, true);
    bp_buf buf;
    bp_buf_init(&buf, 64);
    bp_row r = {.chain = "c", .block = b};
    assert_int_equal(bp_rowjson(&buf, BP_TABLE_BLOCKS, &r), BP_ETOOBIG);
    bp_buf_release(&buf);
    bp_block_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_table),
        cmocka_unit_test(test_no_receipt),
        cmocka_unit_test(test_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
