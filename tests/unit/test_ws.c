/* test_ws.c - the WebSocket head client against real servers: anvil and ws_bad_server.py. */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "chain/rpc.h"
#include "chain/ws.h"
#include "testproc.h"
#include "util/buf.h"
#include "util/histogram.h"

#define ANVIL_DEFAULT BP_SOURCE_DIR "/.local/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
#define BAD_SERVER BP_SOURCE_DIR "/tests/tools/ws_bad_server.py"

typedef bp_test_server server;

/* Deadlines only guard against a hang: every wait ends as soon as its event happens. */
#define HANG_MS 30000L

static char g_tmp[128];

/* ---- process helpers ------------------------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int server_start(server *s, char *const argv[], const char *marker)
{
    static int seq;
    char log_path[256];
    snprintf(log_path, sizeof(log_path), "%s/server%d.log", g_tmp, seq++);
    return bp_test_server_start(s, log_path, argv, marker);
}

/* anvil on `port` (0: any); extra is "--block-time" "1" or "--no-mining" (NULL-ended). */
static int anvil_start(server *s, int port, const char *opt, const char *val)
{
    const char *anvil = bp_test_anvil_path();
    if (!anvil)
        return -1;
    char port_text[16];
    snprintf(port_text, sizeof(port_text), "%d", port);
    char *argv[] = {(char *)anvil, "--host",    "127.0.0.1", "--port",
                    port_text,     (char *)opt, (char *)val, NULL};
    return server_start(s, argv, "Listening on 127.0.0.1:");
}

static int bad_start(server *s, const char *mode)
{
    char *argv[] = {"python3", BAD_SERVER, (char *)mode, NULL};
    return server_start(s, argv, "PORT ");
}

static bp_ws_heads *ws_start(int port, const bp_ws_config *base)
{
    char url[64];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d", port);
    bp_ws_config cfg = *base;
    cfg.url = url;
    bp_ws_heads *h = NULL;
    bp_error err = {0};
    if (bp_ws_heads_start(&h, &cfg, &err) != 0)
        fail_msg("bp_ws_heads_start(%s): %s", url, err.msg);
    return h;
}

/* Waits up to timeout_ms for the state `want`; returns the status seen last. */
static bp_ws_status wait_state(bp_ws_heads *h, bp_ws_state want, long timeout_ms)
{
    bp_ws_status st;
    int64_t until = now_ms() + timeout_ms;
    do {
        bp_ws_heads_status(h, &st);
        if (st.state == want)
            break;
        sleep_ms(20);
    } while (now_ms() < until);
    return st;
}

static bp_ws_head next_head(bp_ws_heads *h, long timeout_ms)
{
    bp_ws_head head;
    if (bp_ws_heads_next(h, &head, timeout_ms) != 1) {
        bp_ws_status st;
        bp_ws_heads_status(h, &st);
        fail_msg("no head within %ld ms (state %s, last error '%s')", timeout_ms,
                 bp_ws_state_name(st.state), st.last_error);
    }
    return head;
}

typedef struct stopper {
    bp_ws_heads *h;
    atomic_bool done;
} stopper;

static void *stop_thread(void *arg)
{
    stopper *s = arg;
    bp_ws_heads_stop(s->h);
    atomic_store(&s->done, true);
    return NULL;
}

/* bp_ws_heads_stop returns without waiting for the client's next attempt or head: run on
 * another thread, it must be done before `limit_ms`, which the caller picks well below what
 * such a wait would take (a hang guard, not a measure of how fast it is). */
static void stop_returns(bp_ws_heads *h, long limit_ms)
{
    static stopper s; /* outlives a failed test's thread */
    s.h = h;
    atomic_store(&s.done, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stop_thread, &s), 0);
    int64_t until = now_ms() + limit_ms;
    while (!atomic_load(&s.done) && now_ms() < until)
        sleep_ms(20);
    if (!atomic_load(&s.done))
        fail_msg("bp_ws_heads_stop has not returned after %ld ms", limit_ms);
    pthread_join(t, NULL);
}

/* n heads, each the child of the one before. */
static void expect_chain(bp_ws_heads *h, int n)
{
    bp_ws_head prev = next_head(h, HANG_MS);
    for (int i = 1; i < n; i++) {
        bp_ws_head cur = next_head(h, HANG_MS);
        assert_int_equal(cur.number, prev.number + 1);
        assert_string_equal(cur.parent_hash, prev.hash);
        assert_true(cur.timestamp >= prev.timestamp);
        assert_true(cur.received_ms >= prev.received_ms);
        prev = cur;
    }
}

/* Throw away what is queued (heads from before a restart). */
static void drain(bp_ws_heads *h)
{
    bp_ws_head head;
    while (bp_ws_heads_next(h, &head, 0) == 1) {
    }
}

/* ---- tests without a server ----------------------------------------------------------- */

static void test_config_errors(void **state)
{
    (void)state;
    const char *bad[] = {"http://127.0.0.1:8545", "ws://",         "ws://:80/", "ws://host:0",
                         "ws://host:65536",       "ws://host:12x", "ws://[::1", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bp_ws_config cfg = {.url = bad[i]};
        bp_ws_heads *h = (bp_ws_heads *)&cfg;
        bp_error err = {0};
        assert_int_equal(bp_ws_heads_start(&h, &cfg, &err), BP_EINVAL);
        assert_null(h);
        assert_non_null(strstr(err.msg, "WebSocket URL"));
    }
    bp_ws_config neg = {.url = "ws://127.0.0.1:1", .reconnect_interval_s = -1};
    bp_ws_heads *h = NULL;
    bp_error err = {0};
    assert_int_equal(bp_ws_heads_start(&h, &neg, &err), BP_EINVAL);
    assert_null(h);
    bp_ws_heads_stop(NULL);
}

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(bp_ws_backoff_ms(5, 1, 0), 5000);
    assert_int_equal(bp_ws_backoff_ms(5, 2, 0), 10000);
    assert_int_equal(bp_ws_backoff_ms(5, 3, 0.2), 24000);
    assert_int_equal(bp_ws_backoff_ms(5, 4, -0.2), 32000);
    assert_int_equal(bp_ws_backoff_ms(5, 5, 0.2), 60000); /* capped */
    assert_int_equal(bp_ws_backoff_ms(5, 400, -0.2), 48000);
    assert_int_equal(bp_ws_backoff_ms(0.5, 1, 0), 500);
}

/* Nothing listens: connection errors, backoff, then given_up after max attempts. Also the
 * endpoint in the status has no credentials. */
static void test_refused_gives_up(void **state)
{
    (void)state;
    bp_ws_config cfg = {.url = "ws://user:secret@127.0.0.1:1/path?x=1",
                        .reconnect_interval_s = 0.05,
                        .max_reconnect_attempts = 3};
    bp_ws_heads *h = NULL;
    bp_error err = {0};
    assert_int_equal(bp_ws_heads_start(&h, &cfg, &err), 0);
    bp_ws_status st = wait_state(h, BP_WS_GIVEN_UP, HANG_MS);
    assert_int_equal(st.state, BP_WS_GIVEN_UP);
    assert_string_equal(st.endpoint, "ws://user:***@127.0.0.1:1/path?x=***"); /* url.h's rule */
    assert_null(strstr(st.endpoint, "secret"));
    assert_non_null(strstr(st.last_error, "cannot connect"));
    assert_int_equal(st.reconnects, 3);
    assert_int_equal(st.consecutive_failures, 4);
    assert_false(st.connected);
    assert_true(st.next_attempt_in_ms > 50000);
    assert_false(bp_ws_heads_healthy(h));
    bp_buf b;
    bp_buf_init(&b, 0);
    assert_int_equal(bp_ws_status_json(&st, &b), 0);
    assert_non_null(strstr(b.data, "\"state\":\"given_up\""));
    assert_non_null(strstr(b.data, "\"last_head_number\":null"));
    bp_buf_release(&b);
    /* the next attempt is > 50 s away: a stop that waited for it would take that long */
    stop_returns(h, HANG_MS);
}

/* ---- anvil ---------------------------------------------------------------------------- */

/* A missing anvil is a failure, not a skip: `make test` installs it. */
#define REQUIRE_ANVIL()                                                                            \
    do {                                                                                           \
        if (!bp_test_anvil_path())                                                                 \
            fail_msg("anvil not found (neither $BP_ANVIL nor %s is executable): run "              \
                     "scripts/install-deps.sh --test",                                             \
                     ANVIL_DEFAULT);                                                               \
    } while (0)

/* Heads with parent links; anvil killed and restarted on the same port: the client comes
 * back by itself and heads flow again. */
static void test_anvil_heads_and_restart(void **state)
{
    (void)state;
    REQUIRE_ANVIL();
    server node = {0};
    assert_int_equal(anvil_start(&node, 0, "--block-time", "1"), 0);
    bp_ws_config cfg = {.reconnect_interval_s = 0.2};
    bp_ws_heads *h = ws_start(node.port, &cfg);
    expect_chain(h, 3);
    bp_ws_status st;
    bp_ws_heads_status(h, &st);
    assert_int_equal(st.state, BP_WS_SUBSCRIBED);
    assert_true(st.connected && st.subscribed && st.connected_since_ms > 0);
    assert_true(st.heads >= 3 && st.messages >= st.heads + 1);
    assert_int_equal(st.reconnects, 0);
    assert_true(bp_ws_heads_healthy(h));

    int port = node.port;
    bp_test_server_stop(&node, SIGKILL);
    st = wait_state(h, BP_WS_BACKOFF, HANG_MS);
    assert_false(bp_ws_heads_healthy(h));
    assert_int_equal(anvil_start(&node, port, "--block-time", "1"), 0);
    st = wait_state(h, BP_WS_SUBSCRIBED, HANG_MS);
    assert_int_equal(st.state, BP_WS_SUBSCRIBED);
    drain(h);
    expect_chain(h, 2);
    bp_ws_heads_status(h, &st);
    assert_true(st.reconnects >= 1);
    assert_int_equal(st.consecutive_failures, 0);
    /* from the heads' timestamps, not from when they arrived: anvil's --block-time 1 steps
     * them 1 s apart, except that its interval miner, late under load, mines the missed ticks
     * in one second (steps of 0 s, seen in a full ctest -j2): so near 1 s, not at least 1 s */
    assert_true(st.block_time_s > 0.2 && st.block_time_s < 5.0);
    assert_true(st.stale_after_s >= 30.0 - 1e-9 && st.stale_after_s <= 30.0 + 1e-9);
    assert_true(st.heads_per_s > 0);
    /* subscribed and waiting for the next head (1 s away), which stop must not wait for */
    stop_returns(h, HANG_MS);
    bp_test_server_stop(&node, SIGTERM);
}

static void mine(bp_rpc *rpc)
{
    yajl_val root = NULL, result = NULL;
    bp_error err = {0};
    if (bp_rpc_call(rpc, "evm_mine", "[]", &root, &result, &err) != 0)
        fail_msg("evm_mine: %s", err.msg);
    bp_json_free(root);
}

/* anvil --no-mining: each evm_mine is announced as the next head. The time from evm_mine to
 * bp_ws_heads_next is printed, not asserted (bench/realtime_latency.py measures it). */
static void test_anvil_announce_latency(void **state)
{
    (void)state;
    REQUIRE_ANVIL();
    server node = {0};
    assert_int_equal(anvil_start(&node, 0, "--no-mining", NULL), 0);
    bp_ws_config cfg = {0};
    bp_ws_heads *h = ws_start(node.port, &cfg);
    assert_int_equal(wait_state(h, BP_WS_SUBSCRIBED, HANG_MS).state, BP_WS_SUBSCRIBED);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", node.port);
    bp_rpc_config rc = {.url = url, .timeout_ms = 10000};
    bp_rpc *rpc = NULL;
    bp_error err = {0};
    assert_int_equal(bp_rpc_new(&rpc, &rc, &err), 0);
    mine(rpc); /* warm up both connections */
    next_head(h, HANG_MS);
    bp_hist lat;
    bp_hist_init(&lat);
    for (uint64_t i = 0; i < 20; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        mine(rpc);
        bp_ws_head head = next_head(h, HANG_MS);
        clock_gettime(CLOCK_MONOTONIC, &b);
        assert_int_equal(head.number, i + 2);
        bp_hist_add(&lat,
                    (uint64_t)((b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000));
    }
    bp_hist_summary s;
    bp_hist_summarize(&lat, &s);
    print_message("announce latency (evm_mine -> bp_ws_heads_next), us: p50 %" PRIu64
                  " p90 %" PRIu64 " p99 %" PRIu64 " max %" PRIu64 " (n=%" PRIu64 ")\n",
                  s.p50, s.p90, s.p99, s.max, s.count);
    assert_int_equal(s.count, 20);
    bp_rpc_free(rpc);
    bp_ws_heads_stop(h);
    bp_test_server_stop(&node, SIGTERM);
}

/* ---- misbehaving servers -------------------------------------------------------------- */

/* The server in `mode` makes the client fail with `want` in last_error and reconnect.
 * subscribes: the server answers eth_subscribe (the client is healthy for a moment). */
static void bad_case(const char *mode, const char *want, const bp_ws_config *cfg, bool subscribes)
{
    server srv = {0};
    assert_int_equal(bad_start(&srv, mode), 0);
    bp_ws_heads *h = ws_start(srv.port, cfg);
    bp_ws_status st;
    int64_t until = now_ms() + HANG_MS;
    do {
        sleep_ms(20);
        bp_ws_heads_status(h, &st);
    } while ((st.reconnects < 1 || !strstr(st.last_error, want)) && now_ms() < until);
    if (!strstr(st.last_error, want) || st.reconnects < 1)
        fail_msg("mode %s: reconnects %" PRIu64 ", last error '%s', want '%s'", mode, st.reconnects,
                 st.last_error, want);
    print_message("%-9s -> %s\n", mode, st.last_error);
    if (!subscribes)
        assert_false(bp_ws_heads_healthy(h));
    bp_ws_heads_stop(h);
    bp_test_server_stop(&srv, SIGTERM);
}

static void test_bad_servers(void **state)
{
    (void)state;
    bp_ws_config cfg = {.reconnect_interval_s = 0.1, .subscribe_timeout_s = 1};
    bad_case("garbage", "not a JSON object", &cfg, false);
    bad_case("oversized", "message larger than 1048576 bytes", &cfg, true);
    bad_case("silent", "eth_subscribe: no answer within 1.0 s", &cfg, false);
    bad_case("close", "closed", &cfg, false);
    bp_ws_config stale = {.reconnect_interval_s = 0.1, .stale_after_s = 1};
    bad_case("stale", "no new head for 1.0 s", &stale, true);
    bp_ws_config small = {.reconnect_interval_s = 0.1, .max_message_bytes = 100};
    bad_case("badhead", "message larger than 100 bytes", &small, true);
}

/* The server in `mode` sends one malformed message (`want` in the error) before heads 0x10,
 * 0x11, ...: it is reported and skipped, the connection stays. */
static void malformed_kept(const char *mode, const char *want)
{
    server srv = {0};
    assert_int_equal(bad_start(&srv, mode), 0);
    bp_ws_config cfg = {.reconnect_interval_s = 0.1};
    bp_ws_heads *h = ws_start(srv.port, &cfg);
    bp_ws_head head = next_head(h, HANG_MS);
    assert_int_equal(head.number, 0x10);
    head = next_head(h, HANG_MS);
    assert_int_equal(head.number, 0x11);
    bp_ws_status st;
    bp_ws_heads_status(h, &st);
    assert_int_equal(st.malformed, 1);
    assert_int_equal(st.reconnects, 0);
    assert_non_null(strstr(st.last_error, want));
    bp_ws_heads_stop(h);
    bp_test_server_stop(&srv, SIGTERM);
}

/* A malformed head. */
static void test_bad_head_kept(void **state)
{
    (void)state;
    malformed_kept("badhead", "field 'hash'");
}

/* A message nested 500,000 deep is refused as malformed (bp_json's depth bound) instead of
 * being freed recursively off the client thread's stack (yajl_tree_free: a crash). */
static void test_deep_message_kept(void **state)
{
    (void)state;
    malformed_kept("deep", "nested deeper");
}

/* Messages split over continuation frames are put back together; a tiny queue drops the
 * oldest heads and counts them. */
static void test_fragments_and_queue(void **state)
{
    (void)state;
    server srv = {0};
    assert_int_equal(bad_start(&srv, "fragmented"), 0);
    bp_ws_config cfg = {.queue_capacity = 2};
    bp_ws_heads *h = ws_start(srv.port, &cfg);
    bp_ws_head head = next_head(h, HANG_MS);
    assert_int_equal(head.number, 0x10);
    assert_string_equal(head.hash, "0x0000000000000000000000000000000000000000000000000000000000"
                                   "000010");
    /* heads keep coming (one every 0.2 s) while nobody takes them: the queue keeps 2 */
    bp_ws_status st;
    int64_t until = now_ms() + HANG_MS;
    do {
        sleep_ms(20);
        bp_ws_heads_status(h, &st);
    } while (st.dropped < 2 && now_ms() < until);
    assert_true(st.dropped >= 2);
    assert_int_equal(st.malformed, 0);
    bp_ws_head a = next_head(h, 0), b = next_head(h, 0);
    assert_int_equal(b.number, a.number + 1);
    assert_true(a.number > 0x11);
    bp_ws_heads_stop(h);
    bp_test_server_stop(&srv, SIGTERM);
}

/* ---- wss:// ----------------------------------------------------------------------------- */

/* A self-signed certificate for localhost in g_tmp (the openssl command); 0 when made. */
static int make_cert(char *cert, char *key, size_t n)
{
    snprintf(cert, n, "%s/cert.pem", g_tmp);
    snprintf(key, n, "%s/key.pem", g_tmp);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
             "-addext subjectAltName=DNS:localhost -keyout '%s' -out '%s' >/dev/null 2>&1",
             key, cert);
    return system(cmd) == 0 ? 0 : -1;
}

/* wss:// end to end with the certificate trusted through ca_file; without it the
 * connection fails verification with an error, and keeps retrying. */
static void test_wss(void **state)
{
    (void)state;
    char cert[256], key[256];
    if (make_cert(cert, key, sizeof(cert)) != 0)
        fail_msg("the openssl command could not make a certificate (is it installed? "
                 "scripts/install-deps.sh --test installs it)");
    server srv = {0};
    char *argv[] = {"python3", BAD_SERVER, "fragmented", "--tls", cert, key, NULL};
    assert_int_equal(server_start(&srv, argv, "PORT "), 0);
    char url[64];
    snprintf(url, sizeof(url), "wss://localhost:%d/", srv.port);
    bp_ws_config cfg = {.url = url, .auth.ca_file = cert, .reconnect_interval_s = 0.1};
    bp_ws_heads *h = NULL;
    bp_error err = {0};
    assert_int_equal(bp_ws_heads_start(&h, &cfg, &err), 0);
    bp_ws_head a = next_head(h, HANG_MS), b = next_head(h, HANG_MS);
    assert_int_equal(b.number, a.number + 1);
    bp_ws_heads_stop(h);

    cfg.auth.ca_file = NULL;
    assert_int_equal(bp_ws_heads_start(&h, &cfg, &err), 0);
    bp_ws_status st;
    int64_t until = now_ms() + HANG_MS;
    do {
        sleep_ms(20);
        bp_ws_heads_status(h, &st);
    } while (st.reconnects < 1 && now_ms() < until);
    print_message("untrusted -> %s\n", st.last_error);
    assert_true(st.reconnects >= 1);
    assert_int_equal(st.heads, 0);
    assert_non_null(strstr(st.last_error, "cannot connect"));
    bp_ws_heads_stop(h);
    bp_test_server_stop(&srv, SIGTERM);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_tmp, sizeof(g_tmp), "/tmp/bp_test_ws.XXXXXX");
    bp_error err;
    return mkdtemp(g_tmp) && bp_rpc_global_init(&err) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_tmp);
    bp_rpc_global_cleanup();
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_refused_gives_up),
        cmocka_unit_test(test_anvil_heads_and_restart),
        cmocka_unit_test(test_anvil_announce_latency),
        cmocka_unit_test(test_bad_servers),
        cmocka_unit_test(test_bad_head_kept),
        cmocka_unit_test(test_deep_message_kept),
        cmocka_unit_test(test_fragments_and_queue),
        cmocka_unit_test(test_wss),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
