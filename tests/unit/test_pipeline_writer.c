/* test_pipeline_writer.c - the output writer thread: batches written in order, one in
 * flight, sticky failures (nothing written after a failed batch), --output-failure continue,
 * commit callbacks, and a stop that writes what was handed over. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/outputs.h"
#include "core/writer.h"

/* A fake output: records the numbers it got (REVERTs negated), may sleep, wait at the gate
 * and fail. */
typedef struct fake {
    bp_sink base;
    int64_t got[256];
    size_t ngot;
    int writes;
    int fail_at_write; /* 1-based write that fails for good; 0: never */
    long sleep_ms;
    bool gated;  /* each write waits until the test opens the gate */
    int cp_fail; /* checkpoint reads that fail before one answers */
    int cp_calls;
} fake;

/* A write held at the gate is in flight for as long as the test wants, however slowly the
 * machine runs the test's own next statements. */
static pthread_mutex_t g_gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_gate_cv = PTHREAD_COND_INITIALIZER;
static bool g_gate_open;

static void gate_set(bool open)
{
    pthread_mutex_lock(&g_gate_lock);
    g_gate_open = open;
    pthread_cond_broadcast(&g_gate_cv);
    pthread_mutex_unlock(&g_gate_lock);
}

static int fake_checkpoint(bp_sink *s, const char *chain, bp_checkpoint *out, bp_error *err)
{
    fake *f = (fake *)s;
    (void)chain;
    memset(out, 0, sizeof(*out));
    if (++f->cp_calls <= f->cp_fail)
        return bp_error_set(err, BP_ETRANSPORT, "checkpoint %d: down", f->cp_calls);
    return 0;
}

static int fake_write(bp_sink *s, const bp_batch *b, bp_error *err)
{
    fake *f = (fake *)s;
    f->writes++;
    pthread_mutex_lock(&g_gate_lock);
    while (f->gated && !g_gate_open)
        pthread_cond_wait(&g_gate_cv, &g_gate_lock);
    pthread_mutex_unlock(&g_gate_lock);
    if (f->sleep_ms) {
        struct timespec ts = {0, f->sleep_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (f->fail_at_write && f->writes == f->fail_at_write)
        return bp_error_set(err, BP_EINVAL, "write %d refused", f->writes);
    for (size_t i = 0; i < b->count && f->ngot < 256; i++) {
        int64_t n = (int64_t)b->events[i].block->number;
        f->got[f->ngot++] = b->events[i].kind == BP_EVENT_APPLY ? n : -n;
    }
    return 0;
}

static const bp_sink_ops fake_ops = {
    .scheme = "fake",
    .checkpoint = fake_checkpoint,
    .write = fake_write,
};

typedef struct fixture {
    fake sinks[2];
    bp_sink *list[2];
    bp_outputs out;
    bp_writer w;
    pthread_mutex_t lock;
    uint64_t committed[256];
    size_t ncommitted;
    int written;
} fixture;

static void on_committed(void *ctx, uint64_t number, int64_t now_ms)
{
    fixture *f = ctx;
    (void)now_ms;
    pthread_mutex_lock(&f->lock);
    if (f->ncommitted < 256)
        f->committed[f->ncommitted++] = number;
    pthread_mutex_unlock(&f->lock);
}

static void on_written(void *ctx)
{
    fixture *f = ctx;
    pthread_mutex_lock(&f->lock);
    f->written++;
    pthread_mutex_unlock(&f->lock);
}

static fixture *start_down(size_t nsinks, bool keep_going, int cp_fail_last)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    pthread_mutex_init(&f->lock, NULL);
    for (size_t i = 0; i < nsinks; i++) {
        f->sinks[i].base.ops = &fake_ops;
        f->sinks[i].base.url = "fake:";
        f->list[i] = &f->sinks[i].base;
    }
    f->sinks[nsinks - 1].cp_fail = cp_fail_last;
    bp_error err;
    assert_int_equal(bp_outputs_init(&f->out, f->list, nsinks, "c", keep_going, &err), 0);
    bp_writer_config wc = {
        .out = &f->out, .committed = on_committed, .written = on_written, .ctx = f};
    assert_int_equal(bp_writer_start(&f->w, &wc, &err), 0);
    return f;
}

static fixture *start(size_t nsinks, bool keep_going)
{
    return start_down(nsinks, keep_going, 0);
}

static void finish(fixture *f)
{
    bp_writer_stop(&f->w);
    bp_outputs_release(&f->out);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static bp_block *blk(uint64_t n)
{
    bp_block *b = bp_block_new();
    assert_non_null(b);
    b->number = n;
    b->hash = "0xh";
    b->parent_hash = "0xp";
    return b;
}

/* Hands over APPLY from..to (a REVERT of -from when from < 0 and to == 0). */
static int submit(fixture *f, int64_t from, int64_t to, bp_error *err)
{
    bp_event ev[16];
    size_t n = 0;
    if (from < 0 && to == 0)
        ev[n++] = (bp_event){.kind = BP_EVENT_REVERT, .block = blk((uint64_t)-from)};
    for (int64_t k = from; k >= 0 && k <= to; k++)
        ev[n++] = (bp_event){.kind = BP_EVENT_APPLY, .block = blk((uint64_t)k)};
    bp_batch b = {.chain = "c", .events = ev, .count = n};
    return bp_writer_submit(&f->w, &b, err);
}

static void test_in_order_one_in_flight(void **state)
{
    (void)state;
    fixture *f = start(1, false);
    f->sinks[0].gated = true;
    gate_set(false);
    bp_error err;
    assert_int_equal(submit(f, 1, 3, &err), 0);
    assert_true(bp_writer_busy(&f->w)); /* held at the gate: still in flight */
    assert_int_equal(f->ncommitted, 0);
    gate_set(true);
    assert_int_equal(submit(f, 4, 5, &err), 0); /* waits for the first */
    assert_int_equal(submit(f, -5, 0, &err), 0);
    assert_int_equal(submit(f, 5, 6, &err), 0);
    assert_int_equal(bp_writer_wait(&f->w, &err), 0);
    assert_false(bp_writer_busy(&f->w));
    int64_t want[] = {1, 2, 3, 4, 5, -5, 5, 6};
    assert_int_equal(f->sinks[0].ngot, 8);
    assert_memory_equal(f->sinks[0].got, want, sizeof(want));
    uint64_t want_c[] = {1, 2, 3, 4, 5, 5, 6};
    assert_int_equal(f->ncommitted, 7);
    assert_memory_equal(f->committed, want_c, sizeof(want_c));
    assert_int_equal(f->out.cps[0].number, 6);
    bp_writer_stop(&f->w); /* `written` runs after the batch is marked done: join first */
    assert_int_equal(f->written, 4);
    finish(f);
}

/* After a failed write nothing more is written (it would leave a gap) and every later call
 * says why; the checkpoint stays at the last good batch. */
static void test_failure_is_sticky(void **state)
{
    (void)state;
    fixture *f = start(1, false);
    f->sinks[0].fail_at_write = 2;
    bp_error err;
    assert_int_equal(submit(f, 1, 2, &err), 0);
    assert_int_equal(submit(f, 3, 4, &err), 0);
    assert_int_equal(bp_writer_wait(&f->w, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "write 2 refused"));
    assert_int_equal(bp_writer_error(&f->w, &err), BP_EINVAL);
    assert_int_equal(submit(f, 5, 6, &err), BP_EINVAL); /* freed, not written */
    assert_int_equal(bp_writer_wait(&f->w, &err), BP_EINVAL);
    assert_int_equal(f->sinks[0].writes, 2);
    assert_int_equal(f->sinks[0].ngot, 2);
    assert_int_equal(f->out.cps[0].number, 2);
    assert_int_equal(f->ncommitted, 2);
    finish(f);
}

/* A batch handed over while a failing one is being written waits for it (one in flight),
 * then gets its error and is never written. */
static void test_batch_after_failure_not_written(void **state)
{
    (void)state;
    fixture *f = start(1, false);
    f->sinks[0].fail_at_write = 1;
    bp_error err;
    assert_int_equal(submit(f, 1, 2, &err), 0);
    assert_int_equal(submit(f, 3, 4, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "write 1 refused"));
    assert_int_equal(bp_writer_wait(&f->w, &err), BP_EINVAL);
    assert_int_equal(f->sinks[0].writes, 1);
    assert_int_equal(f->sinks[0].ngot, 0);
    finish(f);
}

/* --output-failure continue: the failing output is set aside, the other goes on. */
static void test_keep_going_sets_aside(void **state)
{
    (void)state;
    fixture *f = start(2, true);
    f->sinks[1].fail_at_write = 1;
    bp_error err;
    assert_int_equal(submit(f, 1, 2, &err), 0);
    assert_int_equal(submit(f, 3, 3, &err), 0);
    assert_int_equal(bp_writer_wait(&f->w, &err), 0);
    assert_int_equal(bp_writer_set_aside(&f->w), 1);
    assert_int_equal(f->sinks[0].ngot, 3);
    assert_int_equal(f->sinks[1].writes, 1);
    finish(f);
}

/* The set-aside output is probed until its checkpoint answers; then it is taken back and
 * written again. (The pipeline rewinds the stream to its checkpoint; here it just gets the
 * next batch.) */
static bool rejoin_within(fixture *f, size_t want_index, int seconds)
{
    for (int i = 0; i < seconds * 20; i++) {
        bp_checkpoint cp;
        size_t idx = 99;
        if (bp_outputs_rejoin_point(&f->out, &cp, &idx))
            return idx == want_index && !cp.set;
        nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL);
    }
    return false;
}

static void test_set_aside_comes_back(void **state)
{
    (void)state;
    fixture *f = start(2, true);
    f->sinks[1].fail_at_write = 1;
    f->sinks[1].cp_fail = 2; /* the init's read answered; the first probe fails */
    bp_error err;
    assert_int_equal(submit(f, 1, 2, &err), 0);
    assert_int_equal(bp_writer_wait(&f->w, &err), 0);
    assert_int_equal(bp_writer_set_aside(&f->w), 1);
    assert_true(rejoin_within(f, 1, 60));
    assert_true(f->sinks[1].cp_calls >= 3); /* it failed once more before it answered */
    bp_outputs_rejoin(&f->out, 1);
    assert_int_equal(f->out.failed_count, 0);
    assert_int_equal(submit(f, 3, 4, &err), 0);
    assert_int_equal(bp_writer_wait(&f->w, &err), 0);
    assert_int_equal(f->sinks[1].ngot, 2);
    assert_int_equal(f->sinks[1].got[0], 3);
    assert_int_equal(f->sinks[0].ngot, 4);
    finish(f);
}

/* An output whose checkpoint cannot be read at start is set aside (continue) and probed;
 * with stop it fails the start; when every output fails, so does continue. */
static void test_down_at_start(void **state)
{
    (void)state;
    fixture *f = start_down(2, true, 1);
    assert_true(f->out.failed[1]);
    bp_checkpoint low;
    size_t idx;
    bool unset;
    bp_outputs_lowest(&f->out, &low, &idx, &unset);
    assert_int_equal(idx, 0); /* the set-aside output does not count */
    assert_true(rejoin_within(f, 1, 60));
    finish(f);

    bp_outputs o;
    fake down = {.base = {.ops = &fake_ops, .url = "fake:"}, .cp_fail = 1};
    bp_sink *list[1] = {&down.base};
    bp_error err;
    assert_int_equal(bp_outputs_init(&o, list, 1, "c", true, &err), BP_ETRANSPORT);
    bp_outputs_release(&o);
    down.cp_calls = 0;
    fake up = {.base = {.ops = &fake_ops, .url = "fake:"}};
    bp_sink *two[2] = {&up.base, &down.base};
    assert_int_equal(bp_outputs_init(&o, two, 2, "c", false, &err), BP_ETRANSPORT);
    assert_non_null(strstr(err.msg, "checkpoint 1: down"));
    bp_outputs_release(&o);
}

/* Stop writes what was handed over before the thread ends. */
static void test_stop_writes_handed_over(void **state)
{
    (void)state;
    fixture *f = start(1, false);
    f->sinks[0].sleep_ms = 10;
    bp_error err;
    assert_int_equal(submit(f, 1, 2, &err), 0);
    assert_int_equal(submit(f, 3, 4, &err), 0);
    fake *s = &f->sinks[0];
    bp_writer_stop(&f->w);
    assert_int_equal(s->ngot, 4);
    bp_outputs_release(&f->out);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static void test_stop_without_start(void **state)
{
    (void)state;
    bp_writer w;
    memset(&w, 0, sizeof(w));
    bp_writer_stop(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order_one_in_flight),
        cmocka_unit_test(test_failure_is_sticky),
        cmocka_unit_test(test_batch_after_failure_not_written),
        cmocka_unit_test(test_keep_going_sets_aside),
        cmocka_unit_test(test_set_aside_comes_back),
        cmocka_unit_test(test_down_at_start),
        cmocka_unit_test(test_stop_writes_handed_over),
        cmocka_unit_test(test_stop_without_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
