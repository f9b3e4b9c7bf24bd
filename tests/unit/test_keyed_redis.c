/* test_keyed_redis.c - keyed streams in the Redis store (src/sink/keyed_redis.c) against a real
 * redis-server started here on loopback: concurrent publishers of one URL share one pipelined
 * MULTI/EXEC (keyed_group.c), and each still gets its own entry's outcome: every entry stored
 * once, each publisher's in its order, the id each publish returned is its own entry's, the
 * keys listed once; a publication into a key held by another type fails alone, the entries
 * committed with it are stored, and its key is not listed (it has no entry). Concurrent reads
 * share one pipeline the same way: each reader gets its own key's entries or its own error.
 * The asynchronous calls (keyed_async_case.h), and all of it again on a server whose ACL
 * refuses scripts (the keys listed by a SADD after the EXEC instead of the listing script),
 * with two handles publishing into one key asynchronously at once; and a closed loop of
 * asynchronous publications and reads (each done submits the next) keeps every operation's
 * order and outcome, also when the server drops every connection in the middle of it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "blockpipe/keyed.h"
#include "keyed_async_case.h"
#include "sink/redis_conn.h"
#include "testproc.h"

static bp_test_server g_srv;
static char g_dir[256], g_url[256];
static char g_purl[256]; /* the publishers' store: g_url, or another prefix of the server */

static int start_server(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/bp-unit-kredis-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    char port[16], log[512];
    snprintf(port, sizeof(port), "%d", bp_test_free_port());
    snprintf(log, sizeof(log), "%s/redis.log", g_dir);
    char *argv[] = {"redis-server", "--port", port, "--bind",       "127.0.0.1", "--dir",
                    g_dir,          "--save", "",   "--appendonly", "no",        NULL};
    if (bp_test_server_start(&g_srv, log, argv, "port=") != 0) {
        fprintf(stderr, "redis-server did not start (Debian package redis-server)\n");
        return -1;
    }
    snprintf(g_url, sizeof(g_url), "redis://127.0.0.1:%d/0?prefix=kg:&maxlen=0", g_srv.port);
    return 0;
}

static int stop_server(void **state)
{
    (void)state;
    bp_test_server_stop(&g_srv, SIGTERM);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static bp_keyed *open_store(void)
{
    bp_keyed *k = NULL;
    bp_error e = {0};
    for (int i = 0; i < 100 && bp_keyed_open(g_url, &k, &e) != 0; i++)
        usleep(50000); /* the server may still be starting */
    if (!k)
        fail_msg("open: %s", e.msg);
    return k;
}

/* A command on a connection of its own; its reply's text (an error's too) into text. */
static void raw(int argc, const char *const *argv, char *text, size_t cap)
{
    bp_redis_target t;
    bp_redis *c = NULL;
    bp_error e = {0};
    char target[64];
    const redisReply *r = NULL;
    snprintf(target, sizeof(target), "127.0.0.1:%d/0", g_srv.port);
    assert_int_equal(bp_redis_target_init(&t, target, false, &e), 0);
    if (bp_redis_connect(&t, &c, &e) != 0 || bp_redis_call(c, argc, argv, &r, &e) != 0)
        fail_msg("%s: %s", argv[0], e.msg);
    bp_redis_reply_text(r, text, cap);
    bp_redis_free(c);
    bp_redis_target_release(&t);
}

/* A string where a key's stream would be: XADD answers WRONGTYPE. */
static void in_the_way(const char *name)
{
    char text[256];
    raw(3, (const char *[]){"SET", name, "x"}, text, sizeof(text));
}

#define PUBLISHERS 8
#define EACH 200
#define BAD_EVERY 10 /* every 10th publication of a publisher goes to the key in the way */

static char g_ids[PUBLISHERS][EACH][48]; /* the id each publish returned */
static int g_failed[PUBLISHERS];         /* publications into the key in the way refused */
static char g_error[PUBLISHERS][600];    /* anything else that went wrong (asserted after) */

static void *publisher(void *arg)
{
    int t = (int)(intptr_t)arg;
    bp_keyed *k = NULL;
    bp_error err = {0};
    if (bp_keyed_open(g_purl, &k, &err) != 0) {
        snprintf(g_error[t], sizeof(g_error[t]), "open: %s", err.msg);
        return NULL;
    }
    for (int i = 0; i < EACH && !g_error[t][0]; i++) {
        char json[64];
        char compact[64];
        bp_keyed_entry e = {0};
        snprintf(json, sizeof(json), "[%d, %d]", t, i);
        snprintf(compact, sizeof(compact), "[%d,%d]", t, i);
        if (i % BAD_EVERY == BAD_EVERY - 1) {
            if (bp_keyed_publish(k, "in-the-way", json, NULL, &err) == BP_EDB &&
                strstr(err.msg, "WRONGTYPE"))
                g_failed[t]++;
            continue;
        }
        if (bp_keyed_publish(k, t % 2 ? "g:odd" : "g:even", json, &e, &err) != 0)
            snprintf(g_error[t], sizeof(g_error[t]), "publish: %s", err.msg);
        else if (strcmp(e.value, compact) != 0)
            snprintf(g_error[t], sizeof(g_error[t]), "publish returned %s", e.value);
        snprintf(g_ids[t][i], sizeof(g_ids[t][i]), "%s", e.id);
        bp_keyed_entry_release(&e);
    }
    bp_keyed_close(k);
    return NULL;
}

/* PUBLISHERS threads publishing into prefix (a store of the server at g_url's) at once. */
static void publishers_case(const char *prefix)
{
    char way[64];
    snprintf(g_purl, sizeof(g_purl), "redis://127.0.0.1:%d/0?prefix=%s&maxlen=0", g_srv.port,
             prefix);
    snprintf(way, sizeof(way), "%skv:in-the-way", prefix);
    memset(g_ids, 0, sizeof(g_ids));
    memset(g_failed, 0, sizeof(g_failed));
    memset(g_error, 0, sizeof(g_error));
    bp_keyed *k = NULL;
    bp_error err = {0};
    if (bp_keyed_open(g_purl, &k, &err) != 0)
        fail_msg("open: %s", err.msg);
    in_the_way(way);

    pthread_t th[PUBLISHERS];
    for (int i = 0; i < PUBLISHERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, publisher, (void *)(intptr_t)i), 0);
    for (int i = 0; i < PUBLISHERS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < PUBLISHERS; i++)
        if (g_error[i][0])
            fail_msg("publisher %d: %s", i, g_error[i]);

    static bp_keyed_entry list[PUBLISHERS * EACH];
    int next[PUBLISHERS] = {0};
    for (int key = 0; key < 2; key++) {
        size_t n = 0;
        assert_int_equal(
            bp_keyed_history(k, key ? "g:odd" : "g:even", PUBLISHERS * EACH, list, &n, &err), 0);
        assert_int_equal(n, PUBLISHERS / 2 * (EACH - EACH / BAD_EVERY));
        for (size_t i = n; i-- > 0;) { /* oldest first */
            int t = -1, seq = -1;
            assert_int_equal(sscanf(list[i].value, "[%d,%d]", &t, &seq), 2);
            assert_int_equal(t % 2, key);
            if (next[t] % BAD_EVERY == BAD_EVERY - 1)
                next[t]++;
            assert_int_equal(seq, next[t]++); /* each publisher's in its order, once */
            assert_string_equal(list[i].id, g_ids[t][seq]);
            bp_keyed_entry_release(&list[i]);
        }
    }
    for (int t = 0; t < PUBLISHERS; t++) {
        next[t] += next[t] % BAD_EVERY == BAD_EVERY - 1; /* the last was refused */
        assert_int_equal(next[t], EACH);
        assert_int_equal(g_failed[t], EACH / BAD_EVERY);
    }
    char **keys = NULL;
    size_t nk = 0;
    assert_int_equal(bp_keyed_keys(k, "g:", &keys, &nk, &err), 0);
    assert_int_equal(nk, 2);
    assert_string_equal(keys[0], "g:even");
    assert_string_equal(keys[1], "g:odd");
    bp_keyed_keys_free(keys, nk);
    assert_int_equal(bp_keyed_keys(k, NULL, &keys, &nk, &err), 0);
    for (size_t i = 0; i < nk; i++)
        if (strcmp(keys[i], "in-the-way") == 0)
            fail_msg("the key whose every publication was refused is listed");
    bp_keyed_keys_free(keys, nk);
    bp_keyed_close(k);
}

static void test_concurrent_publishers(void **state)
{
    (void)state;
    bp_keyed_close(open_store()); /* the server is up */
    publishers_case("kg:");
}

/* ---- concurrent reads: one pipeline of XREVRANGEs, each reply to its reader ---- */

#define READERS 8
#define READS 300
#define RKEYS 4 /* r:0 .. r:3, key i holding i + 1 entries; "r:none" none; "r:way" a string */

static char g_rerror[READERS][600];

/* Reader t's read number i: latest or history of one key, checked against what it holds;
 * msg set when it is not. */
static void read_one(bp_keyed *k, int t, int i, char *msg, size_t cap)
{
    bp_error err = {0};
    bp_keyed_entry list[RKEYS + 1];
    bool found = true;
    int which = (t + i) % (RKEYS + 2);
    if (which == RKEYS + 1) { /* the key in the way: this reader's own error */
        if (bp_keyed_latest(k, "r:way", &list[0], &found, &err) != BP_EDB ||
            !strstr(err.msg, "WRONGTYPE"))
            snprintf(msg, cap, "r:way: not refused with WRONGTYPE (%s)", err.msg);
        return;
    }
    if (which == RKEYS) {
        if (bp_keyed_latest(k, "r:none", &list[0], &found, &err) != 0 || found)
            snprintf(msg, cap, "r:none: found an entry or failed (%s)", err.msg);
        bp_keyed_entry_release(&list[0]);
        return;
    }
    char key[16], want[32];
    snprintf(key, sizeof(key), "r:%d", which);
    size_t n = 0, max = i % 3 ? 1 : RKEYS + 1, want_n = max == 1 ? 1 : (size_t)which + 1;
    if (bp_keyed_history(k, key, max, list, &n, &err) != 0) {
        snprintf(msg, cap, "%s: %s", key, err.msg);
        return;
    }
    if (n != want_n)
        snprintf(msg, cap, "%s: %zu entries, want %zu", key, n, want_n);
    for (size_t j = 0; j < n; j++) { /* newest first */
        snprintf(want, sizeof(want), "[%d,%zu]", which, (size_t)which - j);
        if (!msg[0] && strcmp(list[j].value, want) != 0)
            snprintf(msg, cap, "%s: entry %zu is %s, want %s", key, j, list[j].value, want);
        bp_keyed_entry_release(&list[j]);
    }
}

static void *reader(void *arg)
{
    int t = (int)(intptr_t)arg;
    bp_keyed *k = NULL;
    bp_error err = {0};
    if (bp_keyed_open(g_url, &k, &err) != 0) {
        snprintf(g_rerror[t], sizeof(g_rerror[t]), "open: %s", err.msg);
        return NULL;
    }
    for (int i = 0; i < READS && !g_rerror[t][0]; i++)
        read_one(k, t, i, g_rerror[t], sizeof(g_rerror[t]));
    bp_keyed_close(k);
    return NULL;
}

static void test_concurrent_readers(void **state)
{
    (void)state;
    bp_keyed *k = open_store();
    bp_error err = {0};
    in_the_way("kg:kv:r:way");
    for (int key = 0; key < RKEYS; key++)
        for (int j = 0; j <= key; j++) {
            char name[16], json[32];
            snprintf(name, sizeof(name), "r:%d", key);
            snprintf(json, sizeof(json), "[%d,%d]", key, j);
            if (bp_keyed_publish(k, name, json, NULL, &err) != 0)
                fail_msg("publish %s: %s", name, err.msg);
        }
    pthread_t th[READERS];
    for (int i = 0; i < READERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader, (void *)(intptr_t)i), 0);
    for (int i = 0; i < READERS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < READERS; i++)
        if (g_rerror[i][0])
            fail_msg("reader %d: %s", i, g_rerror[i]);
    bp_keyed_close(k);
}

/* ---- asynchronous operations (keyed_async_case.h) ---- */

#define ASYNC_THREADS 4
#define ASYNC_EACH 1000
#define ASYNC_WINDOW 64

typedef struct async_pub {
    char url[256], error[600];
    int t, done, failed;
} async_pub;

static void async_done(void *ctx, int rc, bp_keyed_entry *e, const bp_error *err)
{
    async_pub *a = ctx;
    (void)e;
    a->done++;
    if (rc != 0 && !a->failed++)
        snprintf(a->error, sizeof(a->error), "%s", err->msg);
}

/* ASYNC_EACH publications of [t, i] into "c", ASYNC_WINDOW submitted per poll. */
static void *async_publisher(void *arg)
{
    async_pub *a = arg;
    bp_keyed *k = NULL;
    bp_error err = {0};
    if (bp_keyed_open(a->url, &k, &err) != 0) {
        snprintf(a->error, sizeof(a->error), "open: %s", err.msg);
        return NULL;
    }
    for (int i = 0; i < ASYNC_EACH && !a->error[0]; i++) {
        char json[32];
        snprintf(json, sizeof(json), "[%d,%d]", a->t, i);
        if (bp_keyed_publish_async(k, "c", json, async_done, a, &err) != 0)
            snprintf(a->error, sizeof(a->error), "submit: %s", err.msg);
        if (i % ASYNC_WINDOW == ASYNC_WINDOW - 1)
            bp_keyed_poll(k);
    }
    bp_keyed_poll(k);
    bp_keyed_close(k);
    return NULL;
}

/* Handles of their own (no group commit between them) publishing into one key at once: every
 * publication stored, each thread's in its order. */
static void concurrent_async_case(const char *prefix)
{
    static async_pub pubs[ASYNC_THREADS];
    pthread_t th[ASYNC_THREADS];
    for (int t = 0; t < ASYNC_THREADS; t++) {
        pubs[t] = (async_pub){.t = t};
        snprintf(pubs[t].url, sizeof(pubs[t].url), "redis://127.0.0.1:%d/0?prefix=%s&maxlen=0",
                 g_srv.port, prefix);
        assert_int_equal(pthread_create(&th[t], NULL, async_publisher, &pubs[t]), 0);
    }
    for (int t = 0; t < ASYNC_THREADS; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < ASYNC_THREADS; t++) {
        if (pubs[t].error[0])
            fail_msg("thread %d: %d failed: %s", t, pubs[t].failed, pubs[t].error);
        assert_int_equal(pubs[t].done, ASYNC_EACH);
    }
    bp_keyed *k = NULL;
    bp_error err = {0};
    if (bp_keyed_open(pubs[0].url, &k, &err) != 0)
        fail_msg("open: %s", err.msg);
    static bp_keyed_entry h[ASYNC_THREADS * ASYNC_EACH + 1];
    size_t n = 0;
    int next[ASYNC_THREADS] = {0};
    assert_int_equal(bp_keyed_history(k, "c", ASYNC_THREADS * ASYNC_EACH + 1, h, &n, &err), 0);
    assert_int_equal(n, ASYNC_THREADS * ASYNC_EACH);
    for (size_t i = n; i-- > 0;) { /* oldest first */
        int t = -1, seq = -1;
        assert_int_equal(sscanf(h[i].value, "[%d,%d]", &t, &seq), 2);
        assert_true(t >= 0 && t < ASYNC_THREADS);
        assert_int_equal(seq, next[t]++);
        bp_keyed_entry_release(&h[i]);
    }
    char **keys = NULL;
    size_t nk = 0;
    assert_int_equal(bp_keyed_keys(k, NULL, &keys, &nk, &err), 0);
    assert_int_equal(nk, 1);
    assert_string_equal(keys[0], "c");
    bp_keyed_keys_free(keys, nk);
    bp_keyed_close(k);
}

/* ---- a closed loop: each done submits the next operation (sent by the next poll), as
 * bench_keyed and redis-benchmark keep their operations in flight ---- */

#define LOOP_OPS 3000
#define LOOP_WINDOW 64
#define LOOP_READ_EVERY 4 /* every 4th operation reads the latest */

typedef struct loop_op {
    int calls, rc;
    bool read, found;
    char id[48];
} loop_op;

typedef struct loop {
    bp_keyed *k;
    loop_op ops[LOOP_OPS];
    int submitted, kill_at; /* kill_at: the done that has the server drop every client */
    char error[600];
} loop;

static loop g_loop;

static void loop_submit(loop *l);

static void loop_done(void *ctx, int rc, bp_keyed_entry *e, const bp_error *err)
{
    loop_op *o = ctx;
    o->calls++;
    o->rc = rc;
    o->found = e != NULL;
    if (e)
        snprintf(o->id, sizeof(o->id), "%s", e->id);
    if (rc != 0 && rc != BP_ETRANSPORT && !g_loop.error[0])
        snprintf(g_loop.error, sizeof(g_loop.error), "op %d: %s", (int)(o - g_loop.ops), err->msg);
    if (o - g_loop.ops == g_loop.kill_at) {
        char text[256];
        raw(6, (const char *[]){"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"}, text,
            sizeof(text));
    }
    loop_submit(&g_loop);
}

static void loop_submit(loop *l)
{
    if (l->submitted >= LOOP_OPS)
        return;
    int i = l->submitted++;
    bp_error err = {0};
    char json[32];
    snprintf(json, sizeof(json), "{\"i\":%d}", i);
    l->ops[i].read = i % LOOP_READ_EVERY == LOOP_READ_EVERY - 1;
    int rc = l->ops[i].read
                 ? bp_keyed_latest_async(l->k, "loop", loop_done, &l->ops[i], &err)
                 : bp_keyed_publish_async(l->k, "loop", json, loop_done, &l->ops[i], &err);
    if (rc != 0)
        snprintf(l->error, sizeof(l->error), "submit %d: %s", i, err.msg);
}

/* Redis stream ids "ms-seq" in order: <0, 0, >0. */
static int id_cmp(const char *a, const char *b)
{
    unsigned long long am = 0, as = 0, bm = 0, bs = 0;
    sscanf(a, "%llu-%llu", &am, &as);
    sscanf(b, "%llu-%llu", &bm, &bs);
    return am != bm ? (am > bm) - (am < bm) : (as > bs) - (as < bs);
}

/* LOOP_OPS operations on one handle, LOOP_WINDOW in flight: each done exactly once; the
 * publications stored in submission order with the ids their done got; each read sees the
 * publications submitted before it (or a newer one of its round), never older than a read
 * before it saw. With
 * kill_at >= 0 the server drops every connection then: the publications of the next round fail
 * with a transport error (they may be stored, so a read may see them), its reads are made
 * again, the loop goes on, on a new connection. */
static void closed_loop_case(const char *url, int kill_at)
{
    memset(&g_loop, 0, sizeof(g_loop));
    g_loop.kill_at = kill_at;
    bp_error err = {0};
    if (bp_keyed_open(url, &g_loop.k, &err) != 0)
        fail_msg("open: %s", err.msg);
    for (int i = 0; i < LOOP_WINDOW; i++)
        loop_submit(&g_loop);
    while (bp_keyed_pending(g_loop.k) > 0 && !g_loop.error[0])
        bp_keyed_poll(g_loop.k);
    if (g_loop.error[0])
        fail_msg("%s", g_loop.error);
    assert_int_equal(g_loop.submitted, LOOP_OPS);
    const char *last = NULL, *seen = NULL; /* the newest publication stored, read */
    int failed = 0;
    for (int i = 0; i < LOOP_OPS; i++) {
        loop_op *o = &g_loop.ops[i];
        assert_int_equal(o->calls, 1);
        if (o->rc != 0) {
            assert_int_equal(o->rc, BP_ETRANSPORT);
            assert_false(o->read); /* reads are made again */
            failed++;
            continue;
        }
        if (!o->read) {
            if (last && id_cmp(o->id, last) <= 0)
                fail_msg("publication %d: id %s after %s", i, o->id, last);
            last = o->id;
            continue;
        }
        assert_true(o->found);
        if (last && id_cmp(o->id, last) < 0) /* a round's reads see its publications: maybe newer */
            fail_msg("read %d saw %s, older than %s, published before it", i, o->id, last);
        if (seen && id_cmp(o->id, seen) < 0)
            fail_msg("read %d saw %s, older than %s, seen by a read before it", i, o->id, seen);
        seen = o->id;
    }
    assert_true(kill_at < 0 ? failed == 0 : failed > 0);
    static bp_keyed_entry h[LOOP_OPS];
    size_t n = 0;
    assert_int_equal(bp_keyed_history(g_loop.k, "loop", LOOP_OPS, h, &n, &err), 0);
    size_t want = 0;
    for (int i = 0; i < LOOP_OPS; i++)
        want += !g_loop.ops[i].read && g_loop.ops[i].rc == 0;
    assert_true(n >= want && n <= want + (size_t)failed);
    for (size_t i = 0, j = LOOP_OPS; i < n; i++) { /* newest first: the ids done got */
        while (kill_at < 0 && j-- > 0 && g_loop.ops[j].read)
            ;
        if (kill_at < 0)
            assert_string_equal(h[i].id, g_loop.ops[j].id);
        bp_keyed_entry_release(&h[i]);
    }
    bp_keyed_close(g_loop.k);
    char text[256];
    raw(2, (const char *[]){"DEL", "kg:kv:loop"}, text, sizeof(text));
    raw(2, (const char *[]){"DEL", "kna:kv:loop"}, text, sizeof(text));
}

static void test_async(void **state)
{
    (void)state;
    bp_keyed_close(open_store());
    in_the_way("kg:kv:a:way");
    keyed_async_case(g_url, "a:x", "a:way");
    concurrent_async_case("kc:");
    closed_loop_case(g_url, -1);
    closed_loop_case(g_url, LOOP_OPS / 2);
}

/* ---- a server that refuses scripts (ACL without @scripting): publishing without EVAL, still
 * never listing a key whose every publication was refused ---- */

static void test_no_scripts(void **state)
{
    (void)state;
    char text[512];
    raw(4, (const char *[]){"ACL", "SETUSER", "default", "-@scripting"}, text, sizeof(text));
    assert_string_equal(text, "OK");
    raw(3, (const char *[]){"EVAL", "return 1", "0"}, text, sizeof(text));
    if (strncmp(text, "NOPERM", 6) != 0)
        fail_msg("EVAL was not refused: %s", text);
    publishers_case("kn:");
    in_the_way("kna:kv:a:way");
    char url[256];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0?prefix=kna:&maxlen=0", g_srv.port);
    keyed_async_case(url, "a:x", "a:way");
    concurrent_async_case("knc:");
    closed_loop_case(url, -1);
    raw(4, (const char *[]){"ACL", "SETUSER", "default", "+@all"}, text, sizeof(text));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_publishers),
        cmocka_unit_test(test_concurrent_readers),
        cmocka_unit_test(test_async),
        cmocka_unit_test(test_no_scripts),
    };
    return cmocka_run_group_tests(tests, start_server, stop_server);
}
