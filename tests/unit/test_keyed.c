/* test_keyed.c - keyed streams (include/blockpipe/keyed.h) in the SQLite store: publish,
 * latest, history (newest first, limited), keys (sorted, by prefix), subscribe (replay from
 * "0", only new entries from "", entries published by another connection while it waits,
 * stopped by its callback or the stop flag), the checks (key, JSON, store URL), and the
 * asynchronous calls (keyed_async_case.h, as for Redis). The Redis store is tested in
 * test_keyed_redis.c and through the command line (integration/test_stream_cli.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blockpipe/keyed.h"
#include "keyed_async_case.h"

static char g_url[300];

static int setup(void **state)
{
    (void)state;
    char dir[] = "/tmp/bp-keyed-XXXXXX";
    if (!mkdtemp(dir))
        return -1;
    snprintf(g_url, sizeof(g_url), "sqlite:%s/k.db", dir);
    return 0;
}

static bp_keyed *open_store(void)
{
    bp_keyed *k = NULL;
    bp_error e = {0};
    if (bp_keyed_open(g_url, &k, &e) != 0)
        fail_msg("open: %s", e.msg);
    return k;
}

static void publish(bp_keyed *k, const char *key, const char *json, char *id)
{
    bp_keyed_entry e;
    bp_error err = {0};
    if (bp_keyed_publish(k, key, json, &e, &err) != 0)
        fail_msg("publish: %s", err.msg);
    assert_null(strchr(e.value, '\n')); /* stored compact */
    assert_true(e.time_ms > 1600000000000LL);
    if (id)
        strcpy(id, e.id);
    bp_keyed_entry_release(&e);
}

static void test_publish_read(void **state)
{
    (void)state;
    bp_keyed *k = open_store();
    bp_error err = {0};
    char id1[48], id2[48];
    publish(k, "a/x", "{\"v\":1}", id1);
    publish(k, "a/x", "{\"v\":2}", id2);
    publish(k, "b", " [ true,\n 12345678901234567890123 ] ", NULL);
    assert_true(strtoll(id2, NULL, 10) > strtoll(id1, NULL, 10));

    bp_keyed_entry e;
    bool found = false;
    assert_int_equal(bp_keyed_latest(k, "a/x", &e, &found, &err), 0);
    assert_true(found);
    assert_string_equal(e.value, "{\"v\":2}");
    assert_string_equal(e.id, id2);
    bp_keyed_entry_release(&e);
    assert_int_equal(bp_keyed_latest(k, "none", &e, &found, &err), 0);
    assert_false(found);

    bp_keyed_entry h[5];
    size_t n = 0;
    assert_int_equal(bp_keyed_history(k, "a/x", 5, h, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(h[0].value, "{\"v\":2}"); /* newest first */
    assert_string_equal(h[1].value, "{\"v\":1}");
    for (size_t i = 0; i < n; i++)
        bp_keyed_entry_release(&h[i]);
    assert_int_equal(bp_keyed_history(k, "a/x", 1, h, &n, &err), 0);
    assert_int_equal(n, 1);
    bp_keyed_entry_release(&h[0]);

    char **keys = NULL;
    assert_int_equal(bp_keyed_keys(k, "", &keys, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(keys[0], "a/x");
    assert_string_equal(keys[1], "b");
    assert_int_equal(bp_keyed_latest(k, "b", &e, &found, &err), 0);
    assert_string_equal(e.value, "[true,12345678901234567890123]");
    bp_keyed_entry_release(&e);
    bp_keyed_keys_free(keys, n);
    assert_int_equal(bp_keyed_keys(k, "a/", &keys, &n, &err), 0);
    assert_int_equal(n, 1);
    bp_keyed_keys_free(keys, n);
    bp_keyed_close(k);
}

static void test_refused(void **state)
{
    (void)state;
    bp_keyed *k = open_store();
    bp_error err = {0};
    assert_int_equal(bp_keyed_publish(k, "k", "{not json", NULL, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "not JSON"));
    assert_int_equal(bp_keyed_publish(k, "", "1", NULL, &err), BP_EINVAL);
    assert_int_equal(bp_keyed_publish(k, "bad\nkey", "1", NULL, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "control characters"));
    bp_keyed_close(k);
    bp_keyed *none = NULL;
    assert_int_equal(bp_keyed_open("postgres://x/y", &none, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "expected sqlite:PATH or redis://"));
    assert_null(none);
}

typedef struct got {
    char values[8][32];
    int n, stop_after;
} got;

static int collect(void *ctx, const bp_keyed_entry *e)
{
    got *g = ctx;
    snprintf(g->values[g->n++], sizeof(g->values[0]), "%s", e->value);
    return g->n == g->stop_after;
}

static atomic_int g_done;

/* Publishes "late" entries on a connection of its own until the subscriber has one. */
static void *publisher(void *arg)
{
    (void)arg;
    bp_keyed *k = NULL;
    bp_error err = {0};
    if (bp_keyed_open(g_url, &k, &err) != 0)
        return NULL;
    for (int i = 0; !atomic_load(&g_done) && i < 2000; i++) {
        char v[32];
        snprintf(v, sizeof(v), "\"late%d\"", i);
        bp_keyed_publish(k, "s", v, NULL, &err);
        nanosleep(&(struct timespec){0, 20 * 1000000L}, NULL);
    }
    bp_keyed_close(k);
    return NULL;
}

static void test_subscribe(void **state)
{
    (void)state;
    bp_keyed *k = open_store();
    bp_error err = {0};
    publish(k, "s", "\"early\"", NULL);
    got all = {.stop_after = 1};
    assert_int_equal(bp_keyed_subscribe(k, "s", "0", collect, &all, NULL, &err), 0);
    assert_string_equal(all.values[0], "\"early\"");

    /* from now on: the entry published before is not delivered; two published by another
     * connection while this one waits are, in order */
    pthread_t t;
    got fresh = {.stop_after = 2};
    atomic_store(&g_done, 0);
    assert_int_equal(pthread_create(&t, NULL, publisher, NULL), 0);
    assert_int_equal(bp_keyed_subscribe(k, "s", "", collect, &fresh, NULL, &err), 0);
    atomic_store(&g_done, 1);
    pthread_join(t, NULL);
    assert_int_equal(fresh.n, 2);
    int a = -1, b = -1;
    assert_int_equal(sscanf(fresh.values[0], "\"late%d\"", &a), 1);
    assert_int_equal(sscanf(fresh.values[1], "\"late%d\"", &b), 1);
    assert_int_equal(b, a + 1);

    /* the stop flag ends a subscription that gets nothing */
    volatile sig_atomic_t stop = 1;
    got none = {.stop_after = 100};
    assert_int_equal(bp_keyed_subscribe(k, "s", "", collect, &none, &stop, &err), 0);
    assert_int_equal(none.n, 0);
    bp_keyed_close(k);
}

/* ---- concurrent publishers share transactions (group commit) ---- */

#define PUBLISHERS 8
#define EACH 150

static void *group_publisher(void *arg)
{
    int t = (int)(intptr_t)arg;
    bp_keyed *k = open_store();
    char json[64];
    for (int i = 0; i < EACH; i++) {
        snprintf(json, sizeof(json), "[%d,%d]", t, i);
        publish(k, t % 2 ? "g:odd" : "g:even", json, NULL);
    }
    bp_keyed_close(k);
    return NULL;
}

static void test_group_commit(void **state)
{
    (void)state;
    pthread_t t[PUBLISHERS];
    for (int i = 0; i < PUBLISHERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, group_publisher, (void *)(intptr_t)i), 0);
    for (int i = 0; i < PUBLISHERS; i++)
        pthread_join(t[i], NULL);
    /* every entry once; each publisher's in its order; ids growing */
    bp_keyed *k = open_store();
    bp_error err = {0};
    static bp_keyed_entry e[PUBLISHERS * EACH];
    int next[PUBLISHERS] = {0};
    for (int key = 0; key < 2; key++) {
        size_t n = 0;
        assert_int_equal(
            bp_keyed_history(k, key ? "g:odd" : "g:even", PUBLISHERS * EACH, e, &n, &err), 0);
        assert_int_equal(n, PUBLISHERS / 2 * EACH);
        for (size_t i = n; i-- > 0;) { /* oldest first */
            int th = -1, seq = -1;
            assert_int_equal(sscanf(e[i].value, "[%d,%d]", &th, &seq), 2);
            assert_int_equal(th % 2, key);
            assert_int_equal(seq, next[th]++);
            if (i + 1 < n)
                assert_true(strtoll(e[i].id, NULL, 10) > strtoll(e[i + 1].id, NULL, 10));
            bp_keyed_entry_release(&e[i]);
        }
    }
    for (int i = 0; i < PUBLISHERS; i++)
        assert_int_equal(next[i], EACH);
    bp_keyed_close(k);
}

/* The asynchronous calls (keyed_async_case.h): SQLite refuses no publication of a valid
 * value, so there is no key in the way. */
static void test_async(void **state)
{
    (void)state;
    keyed_async_case(g_url, "async/x", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_read), cmocka_unit_test(test_refused),
        cmocka_unit_test(test_subscribe),    cmocka_unit_test(test_group_commit),
        cmocka_unit_test(test_async),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
