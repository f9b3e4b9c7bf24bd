/* test_arch_ws.c - the Arch topics' protocol (arch/arch_ws.h): the SDK's subscribe messages,
 * subscription answers, events queued (block events as heads), malformed ones named, and the
 * events held until the block they name is committed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arch/arch_ws.h"

#define H64 "\"5555555555555555555555555555555555555555555555555555555555555555\""

static enum bp_ws_verdict send(const bp_ws_protocol *p, const char *text, bp_ws_head *h,
                               bp_error *err)
{
    memset(h, 0, sizeof(*h));
    return p->message(p->ctx, text, strlen(text), h, err);
}

static void test_subscribe(void **state)
{
    (void)state;
    bp_arch_ws *a;
    bp_error err = {0};
    assert_int_equal(bp_arch_ws_new(&a, &err), 0);
    const bp_ws_protocol *p = bp_arch_ws_protocol(a);
    assert_int_equal(p->subscriptions, 6);
    const char *topics[] = {"block",
                            "transaction",
                            "account_update",
                            "rolledback_transactions",
                            "reapplied_transactions",
                            "dkg"};
    for (size_t i = 0; i < 6; i++) {
        bp_buf m;
        char want[64];
        bp_buf_init(&m, 0);
        assert_int_equal(p->subscribe(p->ctx, i, &m), 0);
        snprintf(want, sizeof(want), "\"topic\":\"%s\",\"filter\":{}", topics[i]);
        assert_non_null(strstr(m.data, want));
        assert_non_null(strstr(m.data, "{\"method\":\"subscribe\",\"params\":{"));
        bp_buf_release(&m);
    }
    bp_ws_head h;
    assert_int_equal(send(p,
                          "{\"status\":\"Subscribed\",\"subscription_id\":\"s1\",\"topic\":"
                          "\"block\",\"request_id\":\"blockpipe-0\"}",
                          &h, &err),
                     BP_WS_ANSWERED);
    /* complete only when the client has every answer (chain/ws.c calls subscribed) */
    assert_int_equal(bp_arch_ws_epoch(a, NULL), 0);
    assert_non_null(p->subscribed);
    p->subscribed(p->ctx);
    assert_int_equal(bp_arch_ws_epoch(a, NULL), 1);
    assert_int_equal(send(p,
                          "{\"status\":\"Error\",\"subscription_id\":\"\",\"topic\":\"dkg\","
                          "\"message\":\"no such topic\"}",
                          &h, &err),
                     BP_WS_REFUSED);
    assert_non_null(strstr(err.msg, "'dkg' refused: no such topic"));
    bp_arch_ws_free(a);
}

static void test_events_held(void **state)
{
    (void)state;
    bp_arch_ws *a;
    bp_error err = {0};
    assert_int_equal(bp_arch_ws_new(&a, &err), 0);
    const bp_ws_protocol *p = bp_arch_ws_protocol(a);
    bp_ws_head h;
    assert_int_equal(send(p,
                          "{\"topic\":\"transaction\",\"data\":{\"hash\":" H64
                          ",\"status\":\"Processed\",\"program_ids\":[],\"block_height\":5}}",
                          &h, &err),
                     BP_WS_EVENT);
    assert_int_equal(
        send(p, "{\"topic\":\"block\",\"data\":{\"hash\":" H64 ",\"timestamp\":7}}", &h, &err),
        BP_WS_HEAD);
    assert_string_equal(h.hash, "5555555555555555555555555555555555555555555555555555555555555555");
    assert_int_equal(h.timestamp, 7);
    assert_int_equal(send(p, "{\"topic\":\"transaction\",\"data\":{\"hash\":\"zz\"}}", &h, &err),
                     BP_WS_MALFORMED);
    assert_non_null(strstr(err.msg, "transaction event"));
    assert_non_null(strstr(err.msg, "hash"));
    /* a transaction event's content comes with its block over HTTP: no re-read */
    assert_null(strstr(err.msg, "read again"));
    assert_int_equal(bp_arch_ws_epoch(a, NULL), 0);
    assert_int_equal(
        send(p, "{\"status\":\"Unsubscribed\",\"subscription_id\":\"s1\",\"message\":\"\"}", &h,
             &err),
        BP_WS_IGNORED);

    bp_arch_rows *r;
    /* the block event (no height) waits behind the one held for block 5: arrival order */
    assert_int_equal(bp_arch_ws_take(a, false, 0, &r, &err), 0); /* nothing committed yet */
    assert_null(r);
    assert_int_equal(bp_arch_ws_take(a, true, 4, &r, &err), 0); /* block 5 not yet */
    assert_null(r);
    assert_int_equal(bp_arch_ws_take(a, true, 5, &r, &err), 0);
    assert_non_null(r);
    assert_int_equal(r->event_count, 2);
    assert_int_equal(r->events[0].block_height, 5);
    assert_int_equal(r->events[1].topic, BP_ARCH_T_BLOCK);
    assert_null(r->txs);
    bp_arch_rows_free(r);
    uint64_t got, bad;
    size_t held;
    bp_arch_ws_stats(a, &got, &bad, &held);
    assert_int_equal(got, 2);
    assert_int_equal(bad, 1);
    assert_int_equal(held, 0);
    bp_arch_ws_free(a);
}

/* A malformed rollback / re-apply (one bad txid in its list), or a message whose topic cannot
 * be read, is dropped with its field named, and asks for the re-read a reconnect makes (the
 * epoch moves; *lost counts them); the list's good txids are not applied alone. */
static void test_malformed_rollback(void **state)
{
    (void)state;
    bp_arch_ws *a;
    bp_error err = {0};
    assert_int_equal(bp_arch_ws_new(&a, &err), 0);
    const bp_ws_protocol *p = bp_arch_ws_protocol(a);
    bp_ws_head h;
    uint64_t lost;
    assert_int_equal(send(p,
                          "{\"topic\":\"rolledback_transactions\",\"data\":{\"transaction_hashes\":"
                          "[" H64 ",\"zz55\"],\"block_height\":9}}",
                          &h, &err),
                     BP_WS_MALFORMED);
    assert_non_null(strstr(err.msg, "rolledback_transactions event"));
    assert_non_null(strstr(err.msg, "transaction_hashes[1]"));
    assert_non_null(strstr(err.msg, "the rollback state is read again"));
    assert_int_equal(bp_arch_ws_epoch(a, &lost), 1);
    assert_int_equal(lost, 1);
    assert_int_equal(send(p, "{\"topic\":\"reapplied_transactions\",\"data\":{}}", &h, &err),
                     BP_WS_MALFORMED);
    assert_int_equal(send(p, "{\"topic\":\"rolledback_transac", &h, &err), BP_WS_MALFORMED);
    assert_non_null(strstr(err.msg, "not JSON"));
    assert_int_equal(bp_arch_ws_epoch(a, &lost), 3);
    assert_int_equal(lost, 3);
    p->subscribed(p->ctx); /* a subscription counts too, not as lost */
    assert_int_equal(bp_arch_ws_epoch(a, &lost), 4);
    assert_int_equal(lost, 3);
    bp_arch_rows *r;
    assert_int_equal(bp_arch_ws_take(a, true, 100, &r, &err), 0);
    assert_null(r); /* nothing of them queued */
    bp_arch_ws_free(a);
}

/* A resync read while a re-apply arrived goes before it: the re-apply is newer than the
 * node's state that was read (bp_arch_ws_mark before the question). */
static void test_resync_order(void **state)
{
    (void)state;
    bp_arch_ws *a;
    bp_error err = {0};
    bp_ws_head h;
    assert_int_equal(bp_arch_ws_new(&a, &err), 0);
    const bp_ws_protocol *p = bp_arch_ws_protocol(a);
    assert_int_equal(send(p,
                          "{\"topic\":\"rolledback_transactions\",\"data\":{"
                          "\"transaction_hashes\":[" H64 "],\"block_height\":3}}",
                          &h, &err),
                     BP_WS_EVENT);
    size_t mark = bp_arch_ws_mark(a);
    assert_int_equal(mark, 1);
    assert_int_equal(send(p,
                          "{\"topic\":\"reapplied_transactions\",\"data\":{"
                          "\"transaction_hashes\":[" H64 "],\"block_height\":3}}",
                          &h, &err),
                     BP_WS_EVENT);
    bp_arch_hash kept[1];
    memset(kept[0], '5', 64);
    kept[0][64] = '\0';
    assert_int_equal(bp_arch_ws_resync(a, mark, kept, 0, kept, 1, &err), 0);
    bp_arch_rows *r;
    assert_int_equal(bp_arch_ws_take(a, true, 5, &r, &err), 0);
    assert_non_null(r);
    assert_int_equal(r->event_count, 3);
    assert_int_equal(r->events[0].topic, BP_ARCH_T_ROLLEDBACK);
    assert_false(r->events[0].resync);
    assert_int_equal(r->events[1].topic, BP_ARCH_T_REAPPLIED);
    assert_true(r->events[1].resync);
    assert_int_equal(r->events[2].topic, BP_ARCH_T_REAPPLIED);
    assert_false(r->events[2].resync);
    bp_arch_rows_free(r);
    uint64_t got, bad;
    size_t held;
    bp_arch_ws_stats(a, &got, &bad, &held);
    assert_int_equal(got, 2); /* the resync was not received */
    bp_arch_ws_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subscribe),
        cmocka_unit_test(test_events_held),
        cmocka_unit_test(test_malformed_rollback),
        cmocka_unit_test(test_resync_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
