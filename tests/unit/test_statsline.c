/* test_statsline.c - the stats log lines made from a snapshot: the exact text tests, scripts
 * and users grep (field names and order), rate-limited endpoints, a block the commit waits
 * on, outputs set aside, and the realtime line with a quoted error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/statsline.h"

static bp_stats g_st;

static void base(void)
{
    memset(&g_st, 0, sizeof(g_st));
    g_st.have_head = g_st.have_indexed = true;
    g_st.head = 1204;
    g_st.indexed = 1200;
    g_st.lag = 4;
    g_st.pending = 3;
    g_st.processing = 1;
    g_st.done = 1201;
    g_st.workers = 8;
    g_st.reorgs = 2;
    g_st.endpoint_count = 2;
    bp_stats_endpoint *e = &g_st.endpoints[0];
    snprintf(e->url, sizeof(e->url), "http://127.0.0.1:8545");
    snprintf(e->state, sizeof(e->state), "healthy");
    e->head_known = true;
    e->head = 1204;
    e->in_flight = 1;
    e->limit = 8;
    e->batch = 3;
    e->requests = 1180;
    e->blocks = 1205;
    e->latency.p50_ms = 0.84;
    e->latency.p99_ms = 3.1;
    e = &g_st.endpoints[1];
    snprintf(e->url, sizeof(e->url), "https://free.example/***");
    snprintf(e->state, sizeof(e->state), "rate-limited");
    e->limit = 4;
    e->batch = 16;
    e->rps = 2.5;
    e->rate_limited = true;
    e->rate_limits = 7;
}

static void lines(char *out, size_t cap)
{
    bp_buf b;
    bp_buf_init(&b, 0);
    bp_stats_lines(&g_st, 1.0, 4.125, 0, &b);
    snprintf(out, cap, "%s", b.data);
    bp_buf_release(&b);
}

static void test_backfill_lines(void **state)
{
    (void)state;
    char out[2048];
    base();
    lines(out, sizeof(out));
    assert_string_equal(out,
                        "head=1204 indexed=1200 lag=4 pending=3 processing=1 done=1201 failed=0 "
                        "blocks/s=1.0 tx/s=4.1 workers=8 reorgs=2 rate_limited=rpc[1]@2.50rps\n"
                        "rpc[0] http://127.0.0.1:8545 state=healthy head=1204 in_flight=1 "
                        "limit=8 batch=3 rps=- requests=1180 errors=0 429s=0 ejections=0 "
                        "blocks=1205 p50=0.8ms p99=3.1ms\n"
                        "rpc[1] https://free.example/*** state=rate-limited head=? in_flight=0 "
                        "limit=4 batch=16 rps=2.50 requests=0 errors=0 429s=7 ejections=0 "
                        "blocks=0 p50=0.0ms p99=0.0ms");
}

/* What an endpoint's answers taught it refuses: on the main line for every endpoint that
 * has a limit, and at the end of its own line. */
static void test_limits(void **state)
{
    (void)state;
    char out[2048];
    base();
    snprintf(g_st.endpoints[1].limits, sizeof(g_st.endpoints[1].limits),
             "no-batches,no-eth_getBlockReceipts");
    lines(out, sizeof(out));
    assert_non_null(strstr(out, "rate_limited=rpc[1]@2.50rps "
                                "limits=rpc[1]:no-batches,no-eth_getBlockReceipts\n"));
    assert_non_null(strstr(out, "blocks=0 p50=0.0ms p99=0.0ms "
                                "limits=no-batches,no-eth_getBlockReceipts"));
    assert_non_null(strstr(out, "p99=3.1ms\nrpc[1]")); /* rpc[0] has none: nothing shown */
    snprintf(g_st.endpoints[0].limits, sizeof(g_st.endpoints[0].limits), "batch<=10");
    lines(out, sizeof(out));
    assert_non_null(
        strstr(out, " limits=rpc[0]:batch<=10;rpc[1]:no-batches,no-eth_getBlockReceipts\n"));
}

/* What is left to commit and when it is done at the line's rate: absent at the head, "?"
 * while nothing commits, then seconds, minutes, hours, days. */
/* The terminal's progress line: the bar, the share, grouped counts, the rate and the ETA; at
 * the target the head and lag instead; no head yet: a wait. */
static void test_progress_text(void **state)
{
    (void)state;
    char out[192];
    bp_progress_text(true, 1000, 13345, 28299, 0, 210.5, out, sizeof(out));
    assert_string_equal(out, "[#########...........]  45.2%  12,345/27,300 blocks  210.5 blocks/s  "
                             "eta 1m11s");
    bp_progress_text(true, 0, 0, 99, 0, 0.0, out, sizeof(out));
    assert_string_equal(out, "[....................]   0.0%  0/100 blocks  0.0 blocks/s  eta ?");
    bp_progress_text(true, 5, 105, 104, 0, 3.0, out, sizeof(out));
    assert_string_equal(out, "head 104  lag 0  3.0 blocks/s");
    bp_progress_text(true, 5, 1000001, 1000000, 2, 0.5, out, sizeof(out));
    assert_string_equal(out, "head 1,000,000  lag 2  0.5 blocks/s");
    bp_progress_text(false, 0, 0, 0, 0, 0.0, out, sizeof(out));
    assert_string_equal(out, "waiting for the node's head");
}

static void test_left_and_eta(void **state)
{
    (void)state;
    char out[2048];
    base();
    g_st.endpoint_count = 0;
    static const struct {
        uint64_t left;
        double bps;
        const char *want;
    } cases[] = {
        {0, 1.0, "reorgs=2"},
        {4, 0.0, "reorgs=2 left=4 eta=?"},
        {59, 1.0, "reorgs=2 left=59 eta=59s"},
        {200, 1.0, "reorgs=2 left=200 eta=3m20s"},
        {7500, 2.0, "reorgs=2 left=7500 eta=1h02m"},
        {19000000, 50.0, "reorgs=2 left=19000000 eta=4d09h"},
        {19000000, 0.5, "reorgs=2 left=19000000 eta=>99d"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bp_buf b;
        bp_buf_init(&b, 0);
        bp_stats_lines(&g_st, cases[i].bps, 0, cases[i].left, &b);
        snprintf(out, sizeof(out), "%s", b.data);
        bp_buf_release(&b);
        const char *at = strstr(out, "reorgs=2");
        assert_non_null(at);
        assert_string_equal(at, cases[i].want);
    }
}

static void test_waiting_and_set_aside(void **state)
{
    (void)state;
    char out[2048];
    base();
    g_st.endpoint_count = 0;
    g_st.outputs_set_aside = 1;
    lines(out, sizeof(out));
    assert_non_null(strstr(out, "reorgs=2 outputs_set_aside=1"));
    g_st.waiting = true;
    g_st.waiting_on = 1201;
    snprintf(g_st.waiting_error, sizeof(g_st.waiting_error), "HTTP 500");
    lines(out, sizeof(out));
    assert_non_null(strstr(out, "reorgs=2 waiting_on=1201 (HTTP 500)"));
    assert_null(strstr(out, "outputs_set_aside")); /* the block matters more */
}

static void test_realtime_line(void **state)
{
    (void)state;
    char out[2048];
    base();
    g_st.endpoint_count = 0;
    g_st.following = true;
    bp_stats_realtime *r = &g_st.realtime;
    r->ws_configured = true;
    snprintf(r->ws_state, sizeof(r->ws_state), "backoff");
    snprintf(r->ws_endpoint, sizeof(r->ws_endpoint), "ws://127.0.0.1:8546");
    r->messages = 10;
    r->heads = 9;
    r->reconnects = 1;
    r->heads_per_s = 1;
    snprintf(r->last_error, sizeof(r->last_error), "bad \"frame\" \\x");
    r->gaps_filled = 2;
    r->switches = 3;
    r->head_to_commit =
        (bp_stats_latency){.count = 9, .p50_ms = 1, .p90_ms = 2, .p99_ms = 3, .max_ms = 4};
    lines(out, sizeof(out));
    assert_non_null(strstr(out, "\nrealtime mode=polling ws=backoff endpoint=ws://127.0.0.1:8546 "
                                "connected=no messages=10 heads=9 reconnects=1 heads/s=1.00 "
                                "last_error=\"bad \\\"frame\\\" \\\\x\" gaps_filled=2 switches=3 "
                                "head_to_commit_ms count=9 p50=1.0 p90=2.0 p99=3.0 max=4.0"));
    r->ws_configured = false;
    r->websocket = false;
    lines(out, sizeof(out));
    assert_non_null(strstr(out, "\nrealtime mode=polling gaps_filled=2 switches=3 "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backfill_lines),        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_left_and_eta),          cmocka_unit_test(test_progress_text),
        cmocka_unit_test(test_waiting_and_set_aside), cmocka_unit_test(test_realtime_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
