/* test_sink_redis.c - the Redis output (src/sink/redis.c) against a real redis-server started
 * here on loopback: what a batch leaves in the streams, the latest keys (after a batch of
 * REVERTs only they are looked up in the stream: the new head, never an orphan; none left:
 * deleted), MAXLEN, the TTL, the checkpoint and recent blocks, the options' errors (an unknown
 * entity, 'metrics' with metrics=off, a wrong password, TLS files on redis://), and a server
 * still loading its data (LOADING) is waited for like one that is not up yet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <signal.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <yajl/yajl_tree.h>

#include "blockpipe/derived.h"
#include "metrics/metrics.h"
#include "sink/redis_conn.h"
#include "sink_fixture.h"
#include "testproc.h"
#include "util/arena.h"
#include "util/log.h"

#define CHAIN "unit"

static bp_test_server g_srv;
static char g_dir[256];

static int start_server(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/bp-unit-redis-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    char port[16], log[512];
    snprintf(port, sizeof(port), "%d", bp_test_free_port());
    snprintf(log, sizeof(log), "%s/redis.log", g_dir);
    char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", g_dir, "--save",
                    "", "--appendonly", "no", "--requirepass", "unitpw",
                    /* small macro nodes: MAXLEN ~ trims close to N */
                    "--stream-node-max-entries", "4", NULL};
    if (bp_test_server_start(&g_srv, log, argv, "port=") != 0) {
        fprintf(stderr, "redis-server did not start (Debian package redis-server)\n");
        return -1;
    }
    bp_log_set_level(BP_LOG_ERROR);
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

static char *url_of(const char *query)
{
    static char url[512];
    snprintf(url, sizeof(url), "redis://:unitpw@127.0.0.1:%d/0?%s", g_srv.port, query);
    return url;
}

/* ---- a client to look --------------------------------------------------------------------- */

static bp_redis_target g_t;
static bp_redis *g_c;

static void look_open(void)
{
    bp_error e = {0};
    char target[128];
    snprintf(target, sizeof(target), ":unitpw@127.0.0.1:%d/0", g_srv.port);
    assert_int_equal(bp_redis_target_init(&g_t, target, false, &e), 0);
    for (int i = 0; i < 100 && bp_redis_connect(&g_t, &g_c, &e) != 0; i++)
        usleep(50000);
    if (!g_c)
        fail_msg("cannot connect: %s", e.msg);
}

static void look_close(void)
{
    bp_redis_free(g_c);
    g_c = NULL;
    bp_redis_target_release(&g_t);
}

static const redisReply *cmd(int argc, const char *const *argv)
{
    bp_error e = {0};
    const redisReply *r = NULL;
    if (bp_redis_call(g_c, argc, argv, &r, &e) != 0)
        fail_msg("%s: %s", argv[0], e.msg);
    return r;
}

#define CMD(...)                                                                                   \
    cmd(sizeof((const char *[]){__VA_ARGS__}) / sizeof(char *), (const char *[]){__VA_ARGS__})

/* The latest key of entity as (number, hash, data's "hash"), or number -1 when absent. */
static void latest(const char *prefix, const char *entity, long long *number, char *hash,
                   char *data_hash)
{
    char key[128];
    snprintf(key, sizeof(key), "%slatest:%s:" CHAIN, prefix, entity);
    const redisReply *r = CMD("GET", key);
    *number = -1;
    hash[0] = data_hash[0] = '\0';
    if (r->type == REDIS_REPLY_NIL)
        return;
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char msg[256];
    yajl_val v = yajl_tree_parse(r->str, msg, sizeof(msg));
    assert_non_null(v);
    const char *pn[] = {"number", NULL}, *ph[] = {"hash", NULL}, *pt[] = {"type", NULL},
               *pd[] = {"data", "hash", NULL};
    const char *type = YAJL_GET_STRING(yajl_tree_get(v, pt, yajl_t_string));
    const char *h = YAJL_GET_STRING(yajl_tree_get(v, ph, yajl_t_string));
    const char *d = YAJL_GET_STRING(yajl_tree_get(v, pd, yajl_t_string));
    assert_non_null(type);
    assert_non_null(h);
    assert_string_equal(type, "apply");
    *number = YAJL_GET_INTEGER(yajl_tree_get(v, pn, yajl_t_number));
    snprintf(hash, 80, "%s", h);
    snprintf(data_hash, 80, "%s", d ? d : "");
    yajl_tree_free(v);
}

static long long xlen(const char *key)
{
    const redisReply *r = CMD("XLEN", key);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    return r->integer;
}

/* ---- writing ------------------------------------------------------------------------------ */

/* The derived rows of a batch's APPLY blocks, as the metrics module hands them out. */
static bp_arena *g_arena;
static bp_block_derived g_bd[8];
static bp_derived g_derived;

static const bp_derived *derive(const bp_event *ev, size_t n)
{
    g_derived = (bp_derived){.origin_key = CHAIN, .blocks = g_bd};
    for (size_t i = 0; i < n; i++)
        if (ev[i].kind == BP_EVENT_APPLY)
            assert_int_equal(
                bp_metrics_derive_block(CHAIN, ev[i].block, g_arena, &g_bd[g_derived.count++]), 0);
    return &g_derived;
}

static void write_events(bp_sink *s, const bp_event *ev, size_t n, bp_checkpoint cp)
{
    bp_batch b = {.chain = CHAIN, .chain_id = 1, .events = ev, .count = n, .checkpoint = cp};
    bp_error e = {0};
    b.derived = s->derived ? derive(ev, n) : NULL;
    if (s->ops->write(s, &b, &e) != 0)
        fail_msg("write: %s", e.msg);
}

static void apply(bp_sink *s, bp_block *b)
{
    bp_event ev = {BP_EVENT_APPLY, b};
    write_events(s, &ev, 1, fx_cp(b->number, 0));
}

static void revert(bp_sink *s, const bp_block *b)
{
    bp_block *h = bp_block_header_copy(b);
    bp_event ev = {BP_EVENT_REVERT, h};
    bp_checkpoint cp = b->number ? fx_cp(b->number - 1, 0) : (bp_checkpoint){0};
    write_events(s, &ev, 1, cp);
    bp_block_free(h);
}

/* Blocks 0 and 1 with transactions, 2 without, 3 with: after REVERT 3 the latest block (and
 * metrics row) is 2 and the latest transaction is block 1's last (looked up past block 3's
 * entries); after REVERT 2 1 0, nothing is canonical: the keys are gone. */
static void test_latest_after_reverts(void **state)
{
    (void)state;
    look_open();
    bp_sink *s = NULL;
    bp_error e = {0};
    g_arena = bp_arena_new(4096);
    assert_int_equal(
        bp_sink_open_url(url_of("prefix=l:&entities=blocks,transactions,logs,metrics&maxlen=0"), &s,
                         &e),
        0);
    assert_true(s->derived); /* the metrics entity asks for the derived rows */
    bp_block *b[4];
    for (int i = 0; i < 4; i++) {
        b[i] = fx_block((uint64_t)i, 0, i != 2, true);
        apply(s, b[i]);
    }
    long long n;
    char hash[80], dh[80];
    latest("l:", "blocks", &n, hash, dh);
    assert_int_equal(n, 3);
    assert_string_equal(hash, b[3]->hash);
    latest("l:", "transactions", &n, hash, dh);
    assert_int_equal(n, 3);
    assert_string_equal(dh, b[3]->txs[3].hash);
    latest("l:", "metrics", &n, hash, dh);
    assert_int_equal(n, 3);
    assert_string_equal(hash, b[3]->hash);
    assert_int_equal(xlen("l:metrics:" CHAIN), 4);

    revert(s, b[3]);
    latest("l:", "blocks", &n, hash, dh);
    assert_int_equal(n, 2);
    assert_string_equal(hash, b[2]->hash);
    latest("l:", "metrics", &n, hash, dh); /* looked up past block 3's entries */
    assert_int_equal(n, 2);
    assert_string_equal(hash, b[2]->hash);
    assert_int_equal(xlen("l:metrics:" CHAIN), 5);
    latest("l:", "transactions", &n, hash, dh);
    assert_int_equal(n, 1);
    assert_string_equal(dh, b[1]->txs[3].hash);
    latest("l:", "logs", &n, hash, dh);
    assert_int_equal(n, 1);

    /* an orphan re-applied after its revert is canonical again */
    apply(s, b[3]);
    latest("l:", "transactions", &n, hash, dh);
    assert_int_equal(n, 3);
    revert(s, b[3]);
    for (int i = 2; i >= 0; i--)
        revert(s, b[i]);
    latest("l:", "blocks", &n, hash, dh);
    assert_int_equal(n, -1);
    latest("l:", "transactions", &n, hash, dh);
    assert_int_equal(n, -1);
    latest("l:", "metrics", &n, hash, dh);
    assert_int_equal(n, -1);

    bp_checkpoint cp;
    assert_int_equal(s->ops->checkpoint(s, CHAIN, &cp, &e), 0);
    assert_false(cp.set);
    bp_sink_close(s);
    for (int i = 0; i < 4; i++)
        bp_block_free(b[i]);
    bp_arena_free(g_arena);
    look_close();
}

/* MAXLEN ~ 5 with 4-entry macro nodes: a stream never holds more than 5 + 4 entries; the
 * TTL of a latest key is the option's; recent() lists the blocks newest first. */
static void test_maxlen_ttl_recent(void **state)
{
    (void)state;
    look_open();
    bp_sink *s = NULL;
    bp_error e = {0};
    assert_int_equal(bp_sink_open_url(url_of("prefix=m:&maxlen=5&ttl=77"), &s, &e), 0);
    for (uint64_t i = 0; i < 40; i++) {
        bp_block *b = fx_block(i, 0, false, false);
        apply(s, b);
        bp_block_free(b);
        long long len = xlen("m:blocks:" CHAIN);
        assert_true(len <= 9);
        assert_true(len >= (long long)(i + 1 < 5 ? i + 1 : 5));
    }
    const redisReply *r = CMD("TTL", "m:latest:blocks:" CHAIN);
    assert_true(r->integer > 0 && r->integer <= 77);
    assert_int_equal(xlen("m:transactions:" CHAIN), 0); /* blocks only by default */
    bp_checkpoint rec[200];
    size_t n = 0;
    assert_int_equal(s->ops->recent(s, CHAIN, rec, 200, &n, &e), 0);
    assert_int_equal(n, 40);
    assert_int_equal(rec[0].number, 39);
    assert_string_equal(rec[39].hash, fx_cp(0, 0).hash);
    bp_sink_close(s);

    /* ttl=0: no expiry */
    assert_int_equal(bp_sink_open_url(url_of("prefix=t:&ttl=0"), &s, &e), 0);
    bp_block *b = fx_block(0, 0, false, false);
    apply(s, b);
    bp_block_free(b);
    assert_int_equal(CMD("TTL", "t:latest:blocks:" CHAIN)->integer, -1);
    bp_sink_close(s);
    look_close();
}

static void expect_error(const char *url, const char *text)
{
    bp_sink *s = NULL;
    bp_error e = {0};
    int rc = bp_sink_open_url(url, &s, &e);
    if (rc == 0) {
        bp_checkpoint cp;
        rc = s->ops->checkpoint(s, CHAIN, &cp, &e);
        bp_sink_close(s);
    }
    assert_int_not_equal(rc, 0);
    if (!strstr(e.msg, text))
        fail_msg("'%s' does not say '%s'", e.msg, text);
    assert_null(strstr(e.msg, "unitpw")); /* never the password */
    assert_null(strstr(e.msg, "wrongpw"));
}

static void test_errors(void **state)
{
    (void)state;
    char url[256];
    expect_error(url_of("entities=blocks,metrics&metrics=off"), "metrics is off");
    expect_error(url_of("entities=blocks,traces"), "entity 'traces' is not known");
    expect_error(url_of("tls_ca=/nonexistent"), "use rediss:// for TLS");
    expect_error(url_of("nosuch=1"), "unknown parameter 'nosuch=1'");
    snprintf(url, sizeof(url), "redis://:wrongpw@127.0.0.1:%d/0?wait_for_db=0", g_srv.port);
    expect_error(url, "AUTH refused");
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0?wait_for_db=0", g_srv.port);
    expect_error(url, "NOAUTH");
    snprintf(url, sizeof(url), "redis://127.0.0.1:1/0?wait_for_db=0");
    expect_error(url, "connect");
    snprintf(url, sizeof(url), "redis://127.0.0.1:99999/0");
    expect_error(url, "port '99999' is not valid");
}

/* redis-server in dir on port with extra arguments (NULL-terminated, at most 8). */
static void start_in(bp_test_server *srv, const char *dir, const char *port, char **extra)
{
    char log[400];
    snprintf(log, sizeof(log), "%s/redis.log", dir);
    char *argv[20] = {"redis-server", "--port", (char *)port, "--bind",       "127.0.0.1", "--dir",
                      (char *)dir,    "--save", "",           "--appendonly", "no"};
    for (int i = 0; extra[i]; i++)
        argv[11 + i] = extra[i];
    if (bp_test_server_start(srv, log, argv, "port=") != 0)
        fail_msg("redis-server did not start in %s", dir);
}

/* A restarted server listens before its data is loaded and answers LOADING meanwhile: that is
 * a transient error (waited for within wait_for_db, as a refused connection is), not a refusal
 * (the Redis output in stop mode gave up when it reconnected too soon after a restart). The
 * load is slowed by key-load-delay (1 ms a key, 2,000 keys) and clients are served during it. */
static void test_loading_is_transient(void **state)
{
    (void)state;
    char dir[300], port[16], target[64];
    snprintf(dir, sizeof(dir), "%s/loading", g_dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(port, sizeof(port), "%d", bp_test_free_port());
    snprintf(target, sizeof(target), "127.0.0.1:%s/0", port);
    bp_redis_target t;
    bp_redis *c = NULL;
    bp_error e = {0};
    const redisReply *r = NULL;
    assert_int_equal(bp_redis_target_init(&t, target, false, &e), 0);
    bp_test_server srv;
    start_in(&srv, dir, port, (char *[]){NULL});
    if (bp_redis_connect(&t, &c, &e) != 0 ||
        bp_redis_call(c, 3,
                      (const char *[]){
                          "EVAL", "for i = 1, 2000 do redis.call('SET', 'k' .. i, 'v') end", "0"},
                      &r, &e) != 0 ||
        bp_redis_call(c, 1, (const char *[]){"SAVE"}, &r, &e) != 0)
        fail_msg("filling the dump: %s", e.msg);
    bp_redis_free(c);
    bp_test_server_stop(&srv, SIGTERM);

    start_in(&srv, dir, port,
             (char *[]){"--key-load-delay", "1000", "--loading-process-events-interval-bytes",
                        "1024", NULL});
    int rc = -1, loading = 0;
    for (int i = 0; i < 3000 && rc != 0; i++) {
        rc = bp_redis_connect(&t, &c, &e);
        if (rc != 0 && !bp_error_is_transient(rc))
            fail_msg("a server loading its data refused (not transient): %s", e.msg);
        loading += rc != 0 && strstr(e.msg, "LOADING") != NULL;
        if (rc != 0)
            usleep(10000);
    }
    assert_int_equal(rc, 0);
    bp_redis_free(c);
    bp_test_server_stop(&srv, SIGTERM);
    bp_redis_target_release(&t);
    if (!loading)
        fail_msg("the server was never seen loading: the test proved nothing");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_latest_after_reverts),
        cmocka_unit_test(test_maxlen_ttl_recent),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_loading_is_transient),
    };
    return cmocka_run_group_tests(tests, start_server, stop_server);
}
