/* test_arch_json.c - Arch rows as JSON (the Arch table set, arch/arch_tables.h, and
 * arch/arch_json.h): the rows each event brings to each table; each object has its table's columns
 * in the column table's order with each value's JSON type (booleans, nested JSON, null for a
 * missing value); an account a transaction lists twice is one update; a rollback state change
 * names its transaction and cause; the stream entries an Arch batch makes (sink/stream.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <yajl/yajl_tree.h>

#include "arch/arch_json.h"
#include "arch/arch_tables.h"
#include "blockpipe/tableset.h"
#include "sink/stream.h"

#define H(c)                                                                                       \
    c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c  \
        c c c c c c c c c c c c c c c c c
#define HA H("a")
#define HB H("b")

static yajl_val parse(const bp_buf *b)
{
    char msg[256];
    yajl_val v = yajl_tree_parse(b->data, msg, sizeof(msg));
    if (!v)
        fail_msg("not JSON (%s): %s", msg, b->data);
    assert_true(YAJL_IS_OBJECT(v));
    return v;
}

/* v has exactly table t's columns, in order. */
static void has_columns(yajl_val v, enum bp_arch_table t)
{
    const bp_set_table *tab = &bp_tables_arch.tables[t];
    assert_int_equal(tab->column_count, v->u.object.len);
    for (size_t i = 0; i < tab->column_count; i++)
        assert_string_equal(v->u.object.keys[i], tab->columns[i].name);
}

/* Row n (from 0) of the rows event ev brings to table t, as JSON into b (reset first); false
 * when it has fewer. */
static bool row_json(bp_buf *b, const bp_event *ev, enum bp_arch_table t, size_t n)
{
    bp_table_row r;
    bp_table_rows(&r, &bp_tables_arch, "arch", ev, t);
    for (size_t i = 0; i <= n; i++)
        if (!bp_table_next(&r))
            return false;
    bp_buf_reset(b);
    assert_int_equal(bp_table_row_json(b, &r), 0);
    return true;
}

static yajl_val get(yajl_val v, const char *key)
{
    const char *path[] = {key, NULL};
    return yajl_tree_get(v, path, yajl_t_any);
}

typedef struct fixture {
    bp_block b;
    bp_arch_rows rows;
    bp_arch_tx tx;
    bp_arch_hash accounts[3];
    bp_arch_event ev[2];
    bp_arch_hash listed[1];
} fixture;

static void make(fixture *f)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->accounts[0], BP_ARCH_HEX, "%s", HA);
    snprintf(f->accounts[1], BP_ARCH_HEX, "%s", HB);
    snprintf(f->accounts[2], BP_ARCH_HEX, "%s", HA); /* sender = receiver */
    snprintf(f->tx.txid, BP_ARCH_HEX, "%s", HB);
    f->tx.status = BP_ARCH_FAILED;
    f->tx.failure = "out of \"gas\"";
    f->tx.rolled_back = true;
    f->tx.program_ids = "[\"" HA "\"]";
    f->tx.bitcoin_txids = "[]";
    f->tx.accounts = f->accounts;
    f->tx.account_count = 3;
    f->rows.block.timestamp = 1700000000;
    f->rows.block.bitcoin_height = 850000;
    f->rows.block.tx_count = 1;
    snprintf(f->rows.block.merkle_root, BP_ARCH_HEX, "%s", HA);
    f->rows.txs = &f->tx;
    f->rows.tx_count = 1;
    f->b.number = 7;
    f->b.hash = HA;
    f->b.parent_hash = HB;
    f->b.family = BP_FAMILY_ARCH;
    f->b.arch = &f->rows;
    snprintf(f->listed[0], BP_ARCH_HEX, "%s", HB);
    f->ev[0] = (bp_arch_event){.topic = BP_ARCH_T_ROLLEDBACK,
                               .key = "rolledback_transactions:00",
                               .data = "{\"transaction_hashes\":[\"" HB "\"],\"block_height\":7}",
                               .received_at = 12.5,
                               .has_height = true,
                               .block_height = 7,
                               .hashes = f->listed,
                               .hash_count = 1};
    f->ev[1] = (bp_arch_event){
        .topic = BP_ARCH_T_REAPPLIED, .resync = true, .hashes = f->listed, .hash_count = 1};
}

static void test_rows(void **state)
{
    (void)state;
    fixture f;
    make(&f);
    bp_buf b;
    bp_buf_init(&b, 0);
    const bp_event apply = {.kind = BP_EVENT_APPLY, .block = &f.b};
    assert_true(row_json(&b, &apply, BP_ARCH_BLOCKS, 0));
    assert_false(row_json(&b, &apply, BP_ARCH_BLOCKS, 1));
    assert_false(row_json(&b, &apply, BP_ARCH_EVENTS, 0)); /* an APPLY has no events */
    yajl_val v = parse(&b);
    has_columns(v, BP_ARCH_BLOCKS);
    assert_string_equal(YAJL_GET_STRING(get(v, "chain")), "arch");
    assert_int_equal(YAJL_GET_INTEGER(get(v, "height")), 7);
    assert_string_equal(YAJL_GET_STRING(get(v, "previous_hash")), HB);
    yajl_tree_free(v);

    assert_true(row_json(&b, &apply, BP_ARCH_TRANSACTIONS, 0));
    v = parse(&b);
    has_columns(v, BP_ARCH_TRANSACTIONS);
    assert_true(YAJL_IS_TRUE(get(v, "rolled_back")));
    assert_true(YAJL_IS_NULL(get(v, "rollback_reason")));
    assert_true(YAJL_IS_NULL(get(v, "fee")));
    assert_string_equal(YAJL_GET_STRING(get(v, "status")), "failed");
    assert_string_equal(YAJL_GET_STRING(get(v, "failure_reason")), "out of \"gas\"");
    assert_true(YAJL_IS_ARRAY(get(v, "program_ids")));
    assert_string_equal(YAJL_GET_STRING(get(v, "block_hash")), HA);
    yajl_tree_free(v);

    assert_true(bp_arch_account_first(&f.tx, 0));
    assert_true(bp_arch_account_first(&f.tx, 1));
    assert_false(bp_arch_account_first(&f.tx, 2));
    assert_true(row_json(&b, &apply, BP_ARCH_ACCOUNT_UPDATES, 1));
    assert_false(row_json(&b, &apply, BP_ARCH_ACCOUNT_UPDATES, 2)); /* the third is the first's */
    v = parse(&b);
    has_columns(v, BP_ARCH_ACCOUNT_UPDATES);
    assert_string_equal(YAJL_GET_STRING(get(v, "account")), HB);
    yajl_tree_free(v);

    /* an event carrier: its events' rows (not the resync's), no block row */
    bp_arch_rows carried = {.events = f.ev, .event_count = 2};
    bp_block carrier = {.family = BP_FAMILY_ARCH, .arch = &carried, .hash = ""};
    const bp_event events = {.kind = BP_EVENT_ARCH_EVENTS, .block = &carrier};
    assert_false(row_json(&b, &events, BP_ARCH_BLOCKS, 0));
    assert_false(row_json(&b, &events, BP_ARCH_EVENTS, 1)); /* ev[1] is a resync */
    assert_true(row_json(&b, &events, BP_ARCH_EVENTS, 0));
    v = parse(&b);
    has_columns(v, BP_ARCH_EVENTS);
    assert_true(YAJL_IS_OBJECT(get(v, "data")));
    assert_true(YAJL_GET_DOUBLE(get(v, "received_at")) == 12.5);
    yajl_tree_free(v);
    bp_buf_release(&b);
}

static void test_state(void **state)
{
    (void)state;
    fixture f;
    make(&f);
    bp_buf b;
    bp_buf_init(&b, 0);
    assert_int_equal(bp_arch_json_state(&b, "arch", &f.ev[0], 0), 0);
    yajl_val v = parse(&b);
    assert_string_equal(YAJL_GET_STRING(get(v, "txid")), HB);
    assert_true(YAJL_IS_TRUE(get(v, "rolled_back")));
    assert_int_equal(YAJL_GET_INTEGER(get(v, "block_height")), 7);
    assert_string_equal(YAJL_GET_STRING(get(v, "cause")), "rolledback_transactions");
    yajl_tree_free(v);
    bp_buf_reset(&b);
    assert_int_equal(bp_arch_json_state(&b, "arch", &f.ev[1], 0), 0);
    v = parse(&b);
    assert_true(YAJL_IS_FALSE(get(v, "rolled_back")));
    assert_true(YAJL_IS_NULL(get(v, "block_height")));
    assert_string_equal(YAJL_GET_STRING(get(v, "cause")), "resync");
    yajl_tree_free(v);
    bp_buf_release(&b);
}

typedef struct seen {
    char types[16][8];
    size_t n;
} seen;

static int note(void *ctx, const char *type, const char *data, size_t dlen)
{
    seen *s = ctx;
    (void)data;
    (void)dlen;
    assert_true(s->n < 16);
    snprintf(s->types[s->n++], sizeof(s->types[0]), "%s", type);
    return 0;
}

static size_t entries(int e, const bp_batch *batch, size_t i, seen *s)
{
    bp_buf b;
    bp_buf_init(&b, 0);
    s->n = 0;
    size_t hint = 0;
    assert_int_equal(bp_stream_entries(e, batch, i, &b, &hint, note, s), 0);
    bp_buf_release(&b);
    return s->n;
}

static void test_entries(void **state)
{
    (void)state;
    fixture f;
    make(&f);
    bp_block carrier = {.number = 7, .hash = HA, .parent_hash = "", .family = BP_FAMILY_ARCH};
    bp_arch_rows evrows = {.events = f.ev, .event_count = 2};
    carrier.arch = &evrows;
    bp_block rev = {.number = 7, .hash = HA, .parent_hash = HB, .family = BP_FAMILY_ARCH};
    const bp_event evs[] = {
        {BP_EVENT_APPLY, &f.b}, {BP_EVENT_ARCH_EVENTS, &carrier}, {BP_EVENT_REVERT, &rev}};
    bp_batch batch = {.chain = "arch", .events = evs, .count = 3};
    seen s;
    assert_int_equal(entries(BP_STREAM_ARCH_BLOCKS, &batch, 0, &s), 1);
    assert_int_equal(entries(BP_STREAM_ARCH_TXS, &batch, 0, &s), 1);
    assert_int_equal(entries(BP_STREAM_ARCH_ACCOUNTS, &batch, 0, &s), 2); /* a twice-listed one */
    assert_int_equal(entries(BP_STREAM_ARCH_EVENTS, &batch, 0, &s), 0);
    assert_int_equal(entries(BP_STREAM_BLOCKS, &batch, 0, &s), 0);      /* EVM entities: nothing */
    assert_int_equal(entries(BP_STREAM_ARCH_EVENTS, &batch, 1, &s), 1); /* not the resync */
    assert_int_equal(entries(BP_STREAM_ARCH_TXS, &batch, 1, &s), 2);
    assert_string_equal(s.types[0], "revert"); /* rolled back */
    assert_string_equal(s.types[1], "apply");  /* re-applied (the resync) */
    assert_int_equal(entries(BP_STREAM_ARCH_BLOCKS, &batch, 1, &s), 0);
    assert_int_equal(entries(BP_STREAM_ARCH_ACCOUNTS, &batch, 2, &s), 1);
    assert_string_equal(s.types[0], "revert");
    assert_int_equal(entries(BP_STREAM_ARCH_EVENTS, &batch, 2, &s), 0); /* events stay */
    assert_int_equal(entries(BP_STREAM_METRICS, &batch, 0, &s), 0);     /* EVM's */
    assert_int_equal(entries(BP_STREAM_METRICS, &batch, 2, &s), 0);
    assert_int_equal(entries(BP_STREAM_LOGS, &batch, 2, &s), 0);
    assert_int_equal(bp_stream_arch_event_count(&batch), 2);
    assert_int_equal(bp_stream_rows(BP_STREAM_BLOCKS, &f.b), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_state),
        cmocka_unit_test(test_entries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
