/* keyed_async_case.h - the asynchronous keyed-stream calls (bp_keyed_*_async, bp_keyed_poll)
 * checked the same way on every store (test_keyed.c: SQLite, test_keyed_redis.c: Redis): a
 * submission that fails is refused at once and never done; every other operation is done
 * exactly once, with its own outcome; the publications of a round are stored in submission
 * order with the ids their done got, their values compact; a round's reads see its
 * publications; a publication refused by the store (way, Redis: a key held by another type)
 * fails alone and its key is not listed; done may take a value and may submit more (sent by
 * the next poll); close hands the operations never sent back with BP_ESTOPPED, unpublished. */
#ifndef BP_TEST_KEYED_ASYNC_CASE_H
#define BP_TEST_KEYED_ASYNC_CASE_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockpipe/keyed.h"

#define AC_OPS 200
#define AC_WAY_EVERY 10 /* with a way key: every 10th publication goes there */

typedef struct ac_op {
    int calls, rc;
    bool found;
    char id[48], value[64], err[600];
    bool take; /* done takes the value (free()d by the test) */
    char *taken;
    bp_keyed *chain; /* done submits a latest read of "chained" on it */
    struct ac_op *next_op;
} ac_op;

static void ac_done(void *ctx, int rc, bp_keyed_entry *e, const bp_error *err)
{
    ac_op *o = ctx;
    o->calls++;
    o->rc = rc;
    o->found = e != NULL;
    if (rc != 0)
        snprintf(o->err, sizeof(o->err), "%s", err ? err->msg : "(no error)");
    if (e) {
        snprintf(o->id, sizeof(o->id), "%s", e->id);
        snprintf(o->value, sizeof(o->value), "%s", e->value);
        if (o->take) {
            o->taken = e->value;
            e->value = NULL;
        }
    }
    if (o->chain) {
        bp_error e2 = {0};
        if (bp_keyed_latest_async(o->chain, "chained", ac_done, o->next_op, &e2) != 0)
            snprintf(o->err, sizeof(o->err), "chained: %s", e2.msg);
    }
}

static void keyed_async_case(const char *url, const char *key, const char *way)
{
    static ac_op ops[AC_OPS], first, last, none, chained, closed[3], resubmitted;
    bp_keyed *k = NULL;
    bp_error err = {0};
    if (bp_keyed_open(url, &k, &err) != 0)
        fail_msg("open: %s", err.msg);
    memset(ops, 0, sizeof(ops));
    memset(&first, 0, sizeof(first));
    memset(&last, 0, sizeof(last));
    memset(&none, 0, sizeof(none));

    /* refused at submission: not queued, never done */
    assert_int_equal(bp_keyed_publish_async(k, key, "{not json", ac_done, &none, &err), BP_EINVAL);
    assert_int_equal(bp_keyed_latest_async(k, "", ac_done, &none, &err), BP_EINVAL);
    assert_int_equal(bp_keyed_pending(k), 0);
    assert_int_equal(bp_keyed_poll(k), 0);

    /* one round: a read before and after the publications */
    assert_int_equal(bp_keyed_latest_async(k, key, ac_done, &first, &err), 0);
    int refused = 0;
    for (int i = 0; i < AC_OPS; i++) {
        char json[64];
        snprintf(json, sizeof(json), "{ \"i\" : %d,\n \"s\": \"x\" }", i);
        bool to_way = way && i % AC_WAY_EVERY == AC_WAY_EVERY - 1;
        refused += to_way;
        ops[i].take = i == 7;
        if (bp_keyed_publish_async(k, to_way ? way : key, json, ac_done, &ops[i], &err) != 0)
            fail_msg("submit %d: %s", i, err.msg);
    }
    assert_int_equal(bp_keyed_latest_async(k, "none", ac_done, &none, &err), 0);
    assert_int_equal(bp_keyed_latest_async(k, key, ac_done, &last, &err), 0);
    assert_int_equal(bp_keyed_pending(k), AC_OPS + 3);
    assert_int_equal(bp_keyed_poll(k), AC_OPS + 3);
    assert_int_equal(bp_keyed_pending(k), 0);

    int last_ok = -1;
    for (int i = 0; i < AC_OPS; i++) {
        char want[64];
        snprintf(want, sizeof(want), "{\"i\":%d,\"s\":\"x\"}", i);
        assert_int_equal(ops[i].calls, 1);
        if (way && i % AC_WAY_EVERY == AC_WAY_EVERY - 1) {
            assert_int_equal(ops[i].rc, BP_EDB);
            assert_false(ops[i].found);
            assert_non_null(strstr(ops[i].err, "WRONGTYPE"));
            continue;
        }
        if (ops[i].rc != 0)
            fail_msg("publication %d: %s", i, ops[i].err);
        assert_true(ops[i].found);
        assert_string_equal(ops[i].value, want);
        last_ok = i;
    }
    assert_non_null(ops[7].taken);
    assert_string_equal(ops[7].taken, "{\"i\":7,\"s\":\"x\"}");
    free(ops[7].taken);
    assert_int_equal(none.calls, 1);
    assert_int_equal(none.rc, 0);
    assert_false(none.found);
    for (ac_op *o = &first; o; o = o == &first ? &last : NULL) { /* after the publications */
        assert_int_equal(o->calls, 1);
        assert_int_equal(o->rc, 0);
        assert_true(o->found);
        assert_string_equal(o->id, ops[last_ok].id);
        assert_string_equal(o->value, ops[last_ok].value);
    }

    /* stored once each, in submission order, with the ids done got */
    static bp_keyed_entry h[AC_OPS + 1];
    size_t n = 0;
    assert_int_equal(bp_keyed_history(k, key, AC_OPS + 1, h, &n, &err), 0);
    assert_int_equal(n, AC_OPS - refused);
    for (int i = AC_OPS - 1, j = 0; i >= 0; i--) {
        if (ops[i].rc != 0)
            continue;
        assert_string_equal(h[j].id, ops[i].id);
        assert_string_equal(h[j].value, ops[i].value);
        bp_keyed_entry_release(&h[j++]);
    }
    char **keys = NULL;
    size_t nk = 0;
    assert_int_equal(bp_keyed_keys(k, NULL, &keys, &nk, &err), 0);
    bool listed = false;
    for (size_t i = 0; i < nk; i++) {
        listed |= strcmp(keys[i], key) == 0;
        if (way && strcmp(keys[i], way) == 0)
            fail_msg("%s is listed: every publication to it was refused", way);
    }
    assert_true(listed);
    bp_keyed_keys_free(keys, nk);

    /* done submits more: sent by the next poll */
    memset(&first, 0, sizeof(first));
    memset(&chained, 0, sizeof(chained));
    first.chain = k;
    first.next_op = &chained;
    assert_int_equal(bp_keyed_latest_async(k, key, ac_done, &first, &err), 0);
    assert_int_equal(bp_keyed_poll(k), 1);
    assert_int_equal(first.calls, 1);
    assert_int_equal(chained.calls, 0);
    assert_int_equal(bp_keyed_pending(k), 1);
    assert_int_equal(bp_keyed_poll(k), 1);
    assert_int_equal(chained.calls, 1);
    assert_int_equal(chained.rc, 0);
    assert_false(chained.found);

    /* closed before they were sent: done with BP_ESTOPPED, nothing published */
    bp_keyed *k2 = NULL;
    if (bp_keyed_open(url, &k2, &err) != 0)
        fail_msg("open: %s", err.msg);
    memset(closed, 0, sizeof(closed));
    memset(&resubmitted, 0, sizeof(resubmitted));
    closed[0].chain = k2; /* its done submits again while the handle closes: refused */
    closed[0].next_op = &resubmitted;
    assert_int_equal(bp_keyed_publish_async(k2, key, "1", ac_done, &closed[0], &err), 0);
    assert_int_equal(bp_keyed_latest_async(k2, key, ac_done, &closed[1], &err), 0);
    assert_int_equal(bp_keyed_publish_async(k2, key, "2", ac_done, &closed[2], &err), 0);
    bp_keyed_close(k2);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(closed[i].calls, 1);
        assert_int_equal(closed[i].rc, BP_ESTOPPED);
    }
    assert_int_equal(resubmitted.calls, 0);
    assert_non_null(strstr(closed[0].err, "chained: "));
    assert_int_equal(bp_keyed_history(k, key, AC_OPS + 1, h, &n, &err), 0);
    assert_int_equal(n, AC_OPS - refused);
    for (size_t i = 0; i < n; i++)
        bp_keyed_entry_release(&h[i]);
    bp_keyed_close(k);
}

#endif
