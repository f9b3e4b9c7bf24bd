/* test_pipeline.c - the pipeline against an in-process simnode: its start from an output's
 * checkpoint (the reorg window is seeded from the output's recent blocks, an output that cannot
 * list them fails the start naming it and its error, and one that lists none starts from its
 * checkpoint alone), and the stats snapshot it publishes, read from another thread while it
 * runs. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "blockpipe/error.h"
#include "blockpipe/sink.h"
#include "chain/fetch.h"
#include "chain/rpc.h"
#include "core/pipeline.h"
#include "sim/server.h"

#define CHECKPOINT 5
#define TO 12

/* An output at block CHECKPOINT of the simnode chain that counts what it is given. */
typedef struct fake_sink {
    bp_sink base;
    int recent_rc;   /* what recent answers: 0, or an error */
    size_t recent_n; /* how many blocks it lists (from CHECKPOINT down) */
    uint64_t first;  /* the first block applied */
    size_t applied, reverted;
    char hashes[CHECKPOINT + 1][67]; /* the chain's hashes 0..CHECKPOINT */
} fake_sink;

static bp_sim_server g_sim;
static char g_url[64];

static int fake_checkpoint(bp_sink *s, const char *chain, bp_checkpoint *out, bp_error *err)
{
    (void)chain;
    (void)err;
    fake_sink *f = (fake_sink *)s;
    *out = (bp_checkpoint){.set = true, .number = CHECKPOINT};
    memcpy(out->hash, f->hashes[CHECKPOINT], sizeof(out->hash));
    return 0;
}

static int fake_recent(bp_sink *s, const char *chain, bp_checkpoint *out, size_t max, size_t *n,
                       bp_error *err)
{
    (void)chain;
    fake_sink *f = (fake_sink *)s;
    *n = 0;
    if (f->recent_rc)
        return bp_error_set(err, f->recent_rc, "disk says no");
    for (size_t i = 0; i < f->recent_n && i < max; i++) {
        out[i] = (bp_checkpoint){.set = true, .number = CHECKPOINT - i};
        memcpy(out[i].hash, f->hashes[CHECKPOINT - i], sizeof(out[i].hash));
        (*n)++;
    }
    return 0;
}

static int fake_write(bp_sink *s, const bp_batch *b, bp_error *err)
{
    (void)err;
    fake_sink *f = (fake_sink *)s;
    for (size_t i = 0; i < b->count; i++) {
        if (b->events[i].kind != BP_EVENT_APPLY) {
            f->reverted++;
            continue;
        }
        if (f->applied++ == 0)
            f->first = b->events[i].block->number;
    }
    return 0;
}

static const bp_sink_ops g_fake_ops = {
    .scheme = "fake", .checkpoint = fake_checkpoint, .write = fake_write};
static const bp_sink_ops g_fake_ops_recent = {
    .scheme = "fake", .checkpoint = fake_checkpoint, .recent = fake_recent, .write = fake_write};

static int setup(void **state)
{
    (void)state;
    bp_error err = {0};
    bp_sim_faults none = {0};
    bp_sim_server_config cfg = {
        .chain = {.seed = 3, .length = 100, .txs_min = 2, .txs_max = 2, .chain_id = 1337},
        .host = "127.0.0.1",
        .endpoints = 1,
        .faults = &none,
    };
    if (bp_rpc_global_init(&err) != 0 || bp_sim_server_start(&g_sim, &cfg, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    snprintf(g_url, sizeof(g_url), "http://127.0.0.1:%u", (unsigned)bp_sim_server_port(&g_sim, 0));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bp_sim_server_stop(&g_sim);
    bp_rpc_global_cleanup();
    return 0;
}

static void fake_init(fake_sink *f, const bp_sink_ops *ops)
{
    memset(f, 0, sizeof(*f));
    f->base = (bp_sink){.ops = ops, .url = (char *)"fake:x"};
    bp_rpc *rpc = NULL;
    bp_error err = {0};
    bp_rpc_config rc = {.url = g_url, .timeout_ms = 10000};
    assert_int_equal(bp_rpc_new(&rpc, &rc, &err), 0);
    for (uint64_t n = 0; n <= CHECKPOINT; n++) {
        bp_header h;
        assert_int_equal(bp_rpc_header(rpc, n, &h, &err), 0);
        memcpy(f->hashes[n], h.hash, sizeof(f->hashes[n]));
    }
    bp_rpc_free(rpc);
}

static int backfill_into(bp_sink *sink, bp_stats_hub *hub, bp_error *err)
{
    bp_endpoint_spec ep = {.url = g_url};
    bp_sink *sinks[] = {sink};
    bp_pipeline_config c = {
        .endpoints = &ep,
        .endpoint_count = 1,
        .sinks = sinks,
        .sink_count = 1,
        .backfill = true,
        .from = 0,
        .to = TO,
        .reorg_window = 16,
        .workers = 2,
        .batch_size = 4,
        .max_retries = 2,
        .poll_interval = 0.1,
        .stats_interval = 600,
        .rpc_timeout = 10,
        .fetch = BP_FETCH_ALL,
        .stats = hub,
    };
    static volatile sig_atomic_t stop;
    return bp_pipeline_run(&c, &stop, err);
}

static int backfill(fake_sink *f, bp_error *err)
{
    return backfill_into(&f->base, NULL, err);
}

static void test_recent_failure_fails_the_start(void **state)
{
    (void)state;
    fake_sink f;
    fake_init(&f, &g_fake_ops_recent);
    f.recent_rc = BP_EDB;
    bp_error err = {0};
    assert_int_equal(backfill(&f, &err), BP_EDB);
    assert_string_equal(err.msg, "output 'fake:x': reading its recent blocks: disk says no");
    assert_int_equal(f.applied, 0);
}

static void test_seeded_from_recent(void **state)
{
    (void)state;
    fake_sink f;
    fake_init(&f, &g_fake_ops_recent);
    f.recent_n = 4;
    bp_error err = {0};
    assert_int_equal(backfill(&f, &err), 0);
    assert_int_equal(f.first, CHECKPOINT + 1);
    assert_int_equal(f.applied, TO - CHECKPOINT);
}

/* No recent op, or an empty list: the checkpoint alone seeds the window, and the run goes on. */
static void test_seeded_from_checkpoint(void **state)
{
    (void)state;
    fake_sink f;
    fake_init(&f, &g_fake_ops);
    bp_error err = {0};
    assert_int_equal(backfill(&f, &err), 0);
    assert_int_equal(f.first, CHECKPOINT + 1);
    assert_int_equal(f.applied, TO - CHECKPOINT);

    fake_init(&f, &g_fake_ops_recent);
    assert_int_equal(backfill(&f, &err), 0);
    assert_int_equal(f.applied, TO - CHECKPOINT);
}

/* The output holds blocks 4 and 5 of a branch the chain left while we were stopped: seeded
 * with its recent blocks the window walks back to 3 and reverts them; seeded with the
 * checkpoint alone it could only stop (what a dropped `recent` error used to lead to). */
static void test_reorg_while_stopped(void **state)
{
    (void)state;
    fake_sink f;
    fake_init(&f, &g_fake_ops_recent);
    f.recent_n = 3;
    snprintf(f.hashes[4], sizeof(f.hashes[4]), "0x%064x", 4);
    snprintf(f.hashes[5], sizeof(f.hashes[5]), "0x%064x", 5);
    bp_error err = {0};
    assert_int_equal(backfill(&f, &err), 0);
    assert_int_equal(f.reverted, 2);
    assert_int_equal(f.first, 4);
    assert_int_equal(f.applied, TO - 4 + 1);

    f.base.ops = &g_fake_ops;
    f.reverted = f.applied = 0;
    assert_int_equal(backfill(&f, &err), BP_EREORG);
    assert_int_equal(f.applied, 0);
}

/* A reader on another thread while the pipeline runs: snapshots only move forward and are
 * never torn (the version of a copy matches its contents' order). */
typedef struct reader {
    bp_stats_hub *hub;
    volatile int stop;
    uint64_t reads, last_version, last_done;
    int bad, bad_target;
} reader;

static void *read_loop(void *arg)
{
    reader *r = arg;
    static bp_stats st; /* one reader thread */
    while (!r->stop) {
        bp_stats_hub_read(r->hub, &st);
        r->reads++;
        if (st.version < r->last_version || st.done < r->last_done ||
            (st.have_indexed && st.have_head && st.indexed > st.head))
            r->bad++;
        /* a backfill's target is its --to, not the head (eta_s counts to it) */
        if (st.have_target && (st.target > TO || st.left > TO + 1))
            r->bad_target++;
        r->last_version = st.version;
        r->last_done = st.done;
    }
    return NULL;
}

static void test_stats_snapshot(void **state)
{
    (void)state;
    char path[] = "/tmp/bp_test_pipeline_XXXXXX", url[64];
    assert_non_null(mkdtemp(path));
    snprintf(url, sizeof(url), "jsonl:%s", path);
    bp_sink *sink = NULL;
    bp_error err = {0};
    assert_int_equal(bp_sink_open_url(url, &sink, &err), 0);
    reader r = {.hub = bp_stats_hub_new()};
    assert_non_null(r.hub);
    static bp_stats st;
    bp_stats_hub_read(r.hub, &st);
    assert_int_equal(st.version, 0);
    pthread_t tid;
    assert_int_equal(pthread_create(&tid, NULL, read_loop, &r), 0);
    assert_int_equal(backfill_into(sink, r.hub, &err), 0);
    r.stop = 1;
    pthread_join(tid, NULL);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.bad_target, 0);
    assert_true(r.reads > 0);

    bp_stats_hub_read(r.hub, &st); /* the last one: published with the final stats line */
    assert_true(st.version > 0);
    assert_string_equal(st.chain, "1337");
    assert_int_equal(st.chain_id, 1337);
    assert_true(st.backfill && !st.following);
    assert_true(st.have_indexed);
    assert_int_equal(st.indexed, TO);
    assert_int_equal(st.done, TO + 1);
    assert_int_equal(st.txs, 2 * TO); /* simnode: 2 txs a block, none in block 0 */
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.pending, 0);
    assert_true(st.have_target); /* the chain's head is 99: the target is the --to */
    assert_int_equal(st.target, TO);
    assert_int_equal(st.left, 0);
    assert_int_equal(st.endpoint_count, 1);
    assert_string_equal(st.endpoints[0].url, g_url);
    assert_string_equal(st.endpoints[0].state, "healthy");
    assert_true(st.endpoints[0].blocks >= TO + 1 && st.endpoints[0].requests > 0);
    assert_int_equal(st.output_count, 1);
    assert_string_equal(st.outputs[0].url, url);
    assert_true(st.outputs[0].checkpoint_set);
    assert_int_equal(st.outputs[0].checkpoint, TO);
    assert_false(st.outputs[0].set_aside);
    assert_true(st.uptime_ms >= 0 && st.published_unix_ms > 1700000000000);
    assert_true(st.memory_budget > 0); /* the budget the pipeline drew from, in the snapshot */

    bp_sink_close(sink);
    bp_stats_hub_free(r.hub);
    char rm[128];
    snprintf(rm, sizeof(rm), "rm -rf %s", path);
    assert_int_equal(system(rm), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recent_failure_fails_the_start),
        cmocka_unit_test(test_seeded_from_recent),
        cmocka_unit_test(test_seeded_from_checkpoint),
        cmocka_unit_test(test_reorg_while_stopped),
        cmocka_unit_test(test_stats_snapshot),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
