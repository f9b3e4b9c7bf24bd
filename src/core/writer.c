/* writer.c - the output writer thread (one batch in flight, written in order). */
#include "core/writer.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* glibc sets its heaps up at the first malloc, or at the first malloc_trim when nothing else
 * called it: under ASan, whose allocator replaces malloc. It marks them set up before it does
 * it, so two writers' first malloc_trim at once (a chains: list, two chains at the head) had
 * one walk the other's half-made heap (a SEGV at 0x8 in mtrim). Once, first. */
static pthread_once_t g_trim_once = PTHREAD_ONCE_INIT;

static void trim_first(void)
{
    malloc_trim(0);
}

static void trim(void)
{
    pthread_once(&g_trim_once, trim_first);
    malloc_trim(0);
}

static void free_events(bp_writer *w, bp_event *events, size_t count)
{
    for (size_t i = 0; i < count; i++)
        bp_budget_free_block(w->cfg.budget, (bp_block *)events[i].block);
}

/* Writes the batch in flight (outside the lock: the coordinator goes on meanwhile). Only
 * this thread sets w->rc, so reading it here needs no lock. */
static int write_batch(bp_writer *w, bp_error *err)
{
    const bp_batch *b = &w->batch;
    if (w->rc != 0)
        return 0; /* after a failure nothing more is written: it would leave a gap */
    int rc = bp_outputs_write(w->cfg.out, b, err);
    if (rc != 0)
        return rc;
    int64_t now = now_ms();
    for (size_t i = 0; w->cfg.committed && i < b->count; i++)
        if (b->events[i].kind == BP_EVENT_APPLY)
            w->cfg.committed(w->cfg.ctx, b->events[i].block->number, now);
    if (w->cfg.batch_committed && b->count)
        w->cfg.batch_committed(w->cfg.batch_ctx, b);
    bp_debug("committed %zu events up to block %" PRIu64, b->count,
             b->events[b->count - 1].block->number);
    return 0;
}

/* The outputs' checkpoints as of now, into w->outs (under w->lock): the writer thread after
 * each batch, the coordinator at start (before the thread owns the outputs). */
static void snapshot_outputs(bp_writer *w)
{
    const bp_outputs *o = w->cfg.out;
    for (size_t i = 0; i < w->nouts; i++) {
        bp_stats_output *so = &w->outs[i];
        so->checkpoint_set = o->cps[i].set;
        so->checkpoint = o->cps[i].number;
        memcpy(so->checkpoint_hash, o->cps[i].hash, sizeof(so->checkpoint_hash));
        so->set_aside = o->failed && o->failed[i];
        if (o->write_us)
            bp_hist_latency_ms(&o->write_us[i], &so->write);
    }
}

/* Under w->lock: waits for a signal or ms. */
static int timed_wait(bp_writer *w, long ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += ms * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    return pthread_cond_timedwait(&w->cv, &w->lock, &until);
}

static void *writer_main(void *arg)
{
    bp_writer *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->busy && !w->closing) {
            /* An output sent back to its checkpoint that never answers: the coordinator would
             * wait for it for ever (a backfill is not done while one is); looked at every
             * 200 ms meanwhile. */
            bool rewinding = w->cfg.out && bp_outputs_rewinding(w->cfg.out) && w->rc == 0;
            bp_error e = {0};
            if (rewinding && bp_outputs_given_up(w->cfg.out, &e) != 0) {
                w->rc = e.code;
                w->err = e;
                if (w->cfg.written) {
                    pthread_mutex_unlock(&w->lock);
                    w->cfg.written(w->cfg.ctx);
                    pthread_mutex_lock(&w->lock);
                }
                continue;
            }
            bool holding = w->cfg.out && bp_outputs_holding(w->cfg.out);
            if (!holding && rewinding) {
                timed_wait(w, 200);
                continue;
            }
            if (!holding) {
                pthread_cond_wait(&w->cv, &w->lock);
                continue;
            }
            /* an output holds batches open (bp_batch.more): committed if none follows soon */
            if (timed_wait(w, BP_OPEN_BATCHES_MS) == ETIMEDOUT && !w->busy && !w->closing) {
                pthread_mutex_unlock(&w->lock);
                bp_outputs_end_open(w->cfg.out);
                pthread_mutex_lock(&w->lock);
            }
        }
        if (!w->busy)
            break; /* closing with nothing left */
        pthread_mutex_unlock(&w->lock);
        bp_error e = {0};
        int rc = write_batch(w, &e);
        /* At the head (bp_budget_head_batch) what the batch's blocks, their decoding and the
         * outputs' work left freed in malloc's heaps stays resident (malloc returns only the
         * top of a heap, past 2 MiB: core/budget.c): a third of the process's own memory with
         * one chain at the head (3 of 9 MiB). malloc_trim gives it back, a walk of the free
         * chunks, well under a millisecond there. Not after a backfill's batches: the next
         * ones fault the same pages in again at once. */
        bool head = w->batch.count > 0 && bp_budget_head_batch(&w->batch);
        free_events(w, w->events, w->batch.count);
        if (head)
            trim();
        /* the first batch at the head, and any after bigger ones (a backfill of small blocks
         * may go from big batches to small ones often: not more than every 10 s) */
        if (head && !w->at_head && (!w->dropped_ms || now_ms() - w->dropped_ms >= 10000)) {
            bp_budget_drop_file_pages();
            w->dropped_ms = now_ms();
        }
        if (w->batch.count > 0)
            w->at_head = head;
        size_t set_aside = w->cfg.out->failed_count;
        pthread_mutex_lock(&w->lock);
        if (rc != 0 && w->rc == 0) {
            w->rc = rc;
            w->err = e;
        }
        w->set_aside = set_aside;
        snapshot_outputs(w);
        w->batch.count = 0;
        w->busy = false;
        pthread_cond_broadcast(&w->cv);
        if (w->cfg.written) {
            pthread_mutex_unlock(&w->lock);
            w->cfg.written(w->cfg.ctx);
            pthread_mutex_lock(&w->lock);
        }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int bp_writer_start(bp_writer *w, const bp_writer_config *cfg, bp_error *err)
{
    memset(w, 0, sizeof(*w));
    w->cfg = *cfg;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cv, NULL);
    size_t n = cfg->out->count < BP_STATS_MAX_OUTPUTS ? cfg->out->count : BP_STATS_MAX_OUTPUTS;
    w->outs = calloc(n ? n : 1, sizeof(*w->outs));
    if (!w->outs)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    w->nouts = n;
    for (size_t i = 0; i < n; i++)
        snprintf(w->outs[i].url, sizeof(w->outs[i].url), "%s",
                 cfg->out->sinks[i]->url ? cfg->out->sinks[i]->url : "");
    snapshot_outputs(w);
    if (bp_thread_create(&w->tid, NULL, writer_main, w) != 0)
        return bp_error_set(err, BP_ENOMEM, "cannot start the output writer thread");
    w->started = true;
    return 0;
}

bool bp_writer_busy(bp_writer *w)
{
    pthread_mutex_lock(&w->lock);
    bool busy = w->busy;
    pthread_mutex_unlock(&w->lock);
    return busy;
}

static int sticky(bp_writer *w, bp_error *err)
{
    if (w->rc != 0 && err)
        *err = w->err;
    return w->rc;
}

int bp_writer_submit(bp_writer *w, const bp_batch *b, bp_error *err)
{
    pthread_mutex_lock(&w->lock);
    while (w->busy) /* callers look first; this only keeps one batch in flight regardless */
        pthread_cond_wait(&w->cv, &w->lock);
    int rc = sticky(w, err);
    if (rc == 0 && b->count > w->cap) {
        bp_event *ev = realloc(w->events, b->count * sizeof(*ev));
        if (!ev)
            rc = bp_error_set(err, BP_ENOMEM, "out of memory");
        else {
            w->events = ev;
            w->cap = b->count;
        }
    }
    if (rc != 0) {
        pthread_mutex_unlock(&w->lock);
        free_events(w, (bp_event *)b->events, b->count);
        return rc;
    }
    memcpy(w->events, b->events, b->count * sizeof(*w->events));
    w->batch = *b;
    w->batch.events = w->events;
    w->busy = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

int bp_writer_wait(bp_writer *w, bp_error *err)
{
    pthread_mutex_lock(&w->lock);
    while (w->busy)
        pthread_cond_wait(&w->cv, &w->lock);
    int rc = sticky(w, err);
    pthread_mutex_unlock(&w->lock);
    return rc;
}

int bp_writer_error(bp_writer *w, bp_error *err)
{
    pthread_mutex_lock(&w->lock);
    int rc = sticky(w, err);
    pthread_mutex_unlock(&w->lock);
    return rc;
}

size_t bp_writer_outputs(bp_writer *w, bp_stats_output *out, size_t max)
{
    pthread_mutex_lock(&w->lock);
    size_t n = w->nouts < max ? w->nouts : max;
    memcpy(out, w->outs, n * sizeof(*out));
    /* their state as of now: a write that waits on a failing output tells it meanwhile */
    for (size_t i = 0; i < n; i++)
        bp_outputs_health(w->cfg.out, i, &out[i]);
    pthread_mutex_unlock(&w->lock);
    return n;
}

size_t bp_writer_set_aside(bp_writer *w)
{
    pthread_mutex_lock(&w->lock);
    size_t n = w->set_aside;
    pthread_mutex_unlock(&w->lock);
    return n;
}

void bp_writer_stop(bp_writer *w)
{
    if (!w->cfg.out)
        return; /* never started */
    if (w->started) {
        pthread_mutex_lock(&w->lock);
        w->closing = true;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->tid, NULL);
    }
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cv);
    free(w->events);
    free(w->outs);
    memset(w, 0, sizeof(*w));
}
