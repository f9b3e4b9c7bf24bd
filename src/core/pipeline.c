/* pipeline.c - coordinator and fetch workers of one chain (see pipeline.h and
 * docs/ARCHITECTURE.md for the data flow and where each delivery promise is kept). */
#include "core/pipeline.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chain/fetch.h"
#include "chain/rpc.h"
#include "core/canon.h"
#include "core/outputs.h"
#include "core/queue.h"
#include "core/reorder.h"
#include "util/arena.h"
#include "util/log.h"

/* A unit of work: the worker fills block or rc/err, the coordinator frees it. */
typedef struct work {
    uint64_t number;
    uint32_t epoch;
    int rc;
    bp_block *block;
    bp_error err;
} work;

typedef struct pipeline pipeline;

typedef struct worker {
    pipeline *p;
    pthread_t tid;
    bp_rpc *rpc;
    bool started;
} worker;

struct pipeline {
    const bp_pipeline_config *cfg;
    volatile sig_atomic_t *stop;
    char chain[64];
    uint64_t chain_id;
    bp_rpc *rpc; /* the coordinator's own: head polls and reorg walks */
    bp_fetch_shared shared;
    bp_queue jobs, results;
    worker *workers;
    size_t inflight; /* jobs out to workers, stale ones included */

    bp_reorder rb;
    bp_canon canon;
    bp_outputs out;
    uint64_t next_fetch;

    bool have_head;
    bp_header head;
    int64_t next_poll_ms;

    /* the batch being built: events and the blocks they point to (owned) */
    bp_event *events;
    size_t nevents, cap_events;
    int64_t batch_started_ms;

    bool stopping;
    int fatal_rc;
    bp_error fatal;

    uint64_t blocks_done, txs_done, logs_done, reorgs, failed_total;
    uint64_t stat_blocks, stat_txs;
    int64_t started_ms, stat_ms, next_stats_ms;
};

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

/* ---- workers ----------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    worker *w = arg;
    pipeline *p = w->p;
    work *job;
    while ((job = bp_queue_pop(&p->jobs, -1)) != NULL) {
        job->rc = bp_fetch_block(w->rpc, &p->shared, job->number, &job->block, &job->err);
        if (bp_queue_push(&p->results, job) != 0) {
            bp_block_free(job->block);
            free(job);
        }
    }
    return NULL;
}

/* Workers' handles abort on stop; the coordinator's must finish a reorg walk it started. */
static int new_rpc(const pipeline *p, bool abortable, bp_rpc **out, bp_error *err)
{
    long timeout_ms = (long)(p->cfg->rpc_timeout * 1000.0);
    bp_rpc_config rc = {
        .url = p->cfg->rpc_url,
        .timeout_ms = timeout_ms,
        .connect_timeout_ms = timeout_ms < 5000 ? timeout_ms : 5000,
        .abort_flag = abortable ? p->stop : NULL,
    };
    return bp_rpc_new(out, &rc, err);
}

static int start_workers(pipeline *p, bp_error *err)
{
    int n = p->cfg->workers;
    p->workers = calloc((size_t)n, sizeof(*p->workers));
    if (!p->workers)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        worker *w = &p->workers[i];
        w->p = p;
        int rc = new_rpc(p, true, &w->rpc, err);
        if (rc != 0)
            return rc;
        if (pthread_create(&w->tid, NULL, worker_main, w) != 0)
            return bp_error_set(err, BP_ENOMEM, "cannot start fetch worker %d", i);
        w->started = true;
    }
    return 0;
}

static void stop_workers(pipeline *p)
{
    bp_queue_close(&p->jobs);
    for (int i = 0; p->workers && i < p->cfg->workers; i++) {
        if (p->workers[i].started)
            pthread_join(p->workers[i].tid, NULL);
        bp_rpc_free(p->workers[i].rpc);
    }
    free(p->workers);
    p->workers = NULL;
    work *w;
    while ((w = bp_queue_pop(&p->results, 0)) != NULL) {
        bp_block_free(w->block);
        free(w);
    }
}

/* ---- head tracking ------------------------------------------------------------------ */

static bool target(const pipeline *p, uint64_t *out)
{
    if (!p->have_head || p->head.number < p->cfg->confirmations)
        return false;
    uint64_t t = p->head.number - p->cfg->confirmations;
    if (p->cfg->backfill && t > p->cfg->to)
        t = p->cfg->to;
    *out = t;
    return true;
}

static int reorg_from(pipeline *p, uint64_t start_k, bp_error *err);

static int poll_head(pipeline *p, bp_error *err)
{
    bp_header h;
    bp_error e;
    int rc = bp_rpc_header(p->rpc, UINT64_MAX, &h, &e);
    if (rc != 0) {
        bp_warn("head poll failed: %s", e.msg);
        return 0; /* the next poll tries again; nothing depends on one poll */
    }
    if (!p->have_head || h.number != p->head.number)
        bp_debug("head %" PRIu64 " %s", h.number, h.hash);
    p->head = h;
    p->have_head = true;
    /* A head at or below our tip with another hash: the node switched branches under us. */
    const bp_canon_entry *mine = bp_canon_at(&p->canon, h.number);
    if (mine && strcmp(mine->hash, h.hash) != 0) {
        bp_info("head %" PRIu64 " is %s but we applied %s there: checking for a reorg", h.number,
                h.hash, mine->hash);
        return reorg_from(p, h.number, err);
    }
    return 0;
}

/* ---- scheduling --------------------------------------------------------------------- */

static int push_job(pipeline *p, uint64_t n, bp_slot *s)
{
    work *w = calloc(1, sizeof(*w));
    if (!w)
        return BP_ENOMEM;
    w->number = n;
    w->epoch = s->epoch;
    if (bp_queue_push(&p->jobs, w) != 0) {
        free(w);
        return BP_ETOOBIG;
    }
    p->inflight++;
    bp_reorder_set_state(&p->rb, s, BP_SLOT_FETCHING);
    return 0;
}

static void schedule(pipeline *p)
{
    uint64_t t;
    if (p->stopping || !target(p, &t))
        return;
    if (p->next_fetch < p->rb.base)
        p->next_fetch = p->rb.base;
    int64_t now = now_ms();
    /* retries first: the commit waits on the lowest of them */
    for (uint64_t n = p->rb.base; n < p->next_fetch; n++) {
        bp_slot *s = bp_reorder_slot(&p->rb, n);
        if (s && (s->state == BP_SLOT_RETRY || s->state == BP_SLOT_FAILED) &&
            s->retry_at_ms <= now && push_job(p, n, s) != 0)
            return;
    }
    while (p->next_fetch <= t) {
        bp_slot *s = bp_reorder_slot(&p->rb, p->next_fetch);
        if (!s || push_job(p, p->next_fetch, s) != 0)
            return; /* the window is full: back-pressure */
        p->next_fetch++;
    }
}

static long backoff_ms(int attempts, int rc)
{
    long ms = 100L << (attempts < 7 ? attempts : 7); /* 200 ms .. 12.8 s */
    if (rc == BP_ERATELIMIT && ms < 1000)
        ms = 1000;
    return ms > 10000 ? 10000 : ms;
}

static void fetch_failed(pipeline *p, work *w, bp_slot *s)
{
    s->attempts++;
    snprintf(s->last_error, sizeof(s->last_error), "%.255s", w->err.msg);
    long delay = backoff_ms(s->attempts, w->rc);
    s->retry_at_ms = now_ms() + delay;
    int max = p->cfg->max_retries;
    if (s->attempts <= max) {
        bp_warn("%s (attempt %d of %d, retrying in %ld ms)", w->err.msg, s->attempts, max + 1,
                delay);
        bp_reorder_set_state(&p->rb, s, BP_SLOT_RETRY);
        return;
    }
    if (s->state != BP_SLOT_FAILED)
        p->failed_total++;
    bp_reorder_set_state(&p->rb, s, BP_SLOT_FAILED);
    if (p->cfg->backfill) {
        bp_err("block %" PRIu64 " failed after %d attempts: %s", w->number, s->attempts,
               w->err.msg);
        if (!p->fatal_rc) {
            p->fatal_rc =
                bp_error_set(&p->fatal, w->rc, "block %" PRIu64 " failed after %d attempts: %s",
                             w->number, s->attempts, w->err.msg);
        }
        p->stopping = true;
        return;
    }
    /* Following the head we never skip a block: keep trying, slowly, and say so. */
    s->retry_at_ms = now_ms() + 30000;
    bp_err("block %" PRIu64 " failed %d times, the chain waits on it (next try in 30 s): %s",
           w->number, s->attempts, w->err.msg);
}

static void handle_result(pipeline *p, work *w)
{
    p->inflight--;
    if (w->rc == 0) {
        bp_reorder_put(&p->rb, w->number, w->epoch, w->block);
        w->block = NULL;
    } else {
        bp_slot *s = bp_reorder_slot(&p->rb, w->number);
        bool mine = s && s->epoch == w->epoch && s->state == BP_SLOT_FETCHING;
        if (mine && w->rc == BP_ESTOPPED)
            bp_reorder_set_state(&p->rb, s, BP_SLOT_EMPTY); /* dropped by the shutdown */
        else if (mine)
            fetch_failed(p, w, s);
    }
    bp_block_free(w->block);
    free(w);
}

static void drain_results(pipeline *p, long wait_ms)
{
    work *w = bp_queue_pop(&p->results, wait_ms);
    while (w) {
        handle_result(p, w);
        w = bp_queue_pop(&p->results, 0);
    }
}

/* ---- the ordered commit ------------------------------------------------------------- */

static int add_event(pipeline *p, bp_event_kind kind, bp_block *b)
{
    if (p->nevents == p->cap_events) {
        size_t cap = p->cap_events ? p->cap_events * 2 : 64;
        bp_event *ev = realloc(p->events, cap * sizeof(*ev));
        if (!ev)
            return BP_ENOMEM;
        p->events = ev;
        p->cap_events = cap;
    }
    if (p->nevents == 0)
        p->batch_started_ms = now_ms();
    p->events[p->nevents++] = (bp_event){.kind = kind, .block = b};
    return 0;
}

static void free_batch(pipeline *p)
{
    for (size_t i = 0; i < p->nevents; i++)
        bp_block_free((bp_block *)p->events[i].block);
    p->nevents = 0;
}

static int flush_batch(pipeline *p, bp_error *err)
{
    if (p->nevents == 0)
        return 0;
    bp_batch batch = {
        .chain = p->chain,
        .chain_id = p->chain_id,
        .events = p->events,
        .count = p->nevents,
        .fetched = p->cfg->fetch,
    };
    int rc = bp_outputs_write(&p->out, &batch, err);
    if (rc == 0)
        bp_debug("committed %zu events up to block %" PRIu64, p->nevents,
                 p->events[p->nevents - 1].block->number);
    free_batch(p);
    return rc;
}

static void canon_entry_of(const bp_block *b, bp_canon_entry *e)
{
    memset(e, 0, sizeof(*e));
    e->number = b->number;
    e->timestamp = b->timestamp;
    snprintf(e->hash, sizeof(e->hash), "%s", b->hash ? b->hash : "");
    snprintf(e->parent_hash, sizeof(e->parent_hash), "%s", b->parent_hash ? b->parent_hash : "");
}

static bp_block *revert_block_of(const bp_canon_entry *e)
{
    bp_block *b = bp_block_new();
    if (!b)
        return NULL;
    b->number = e->number;
    b->timestamp = e->timestamp;
    b->hash = bp_arena_strndup(b->arena, e->hash, strlen(e->hash));
    b->parent_hash = bp_arena_strndup(b->arena, e->parent_hash, strlen(e->parent_hash));
    if (!b->hash || !b->parent_hash) {
        bp_block_free(b);
        return NULL;
    }
    return b;
}

static int node_hash_at(void *ctx, uint64_t k, char hash[67], bp_error *err)
{
    pipeline *p = ctx;
    bp_header h;
    int rc = bp_rpc_header(p->rpc, k, &h, err);
    if (rc == 0)
        memcpy(hash, h.hash, sizeof(h.hash));
    return rc;
}

/* Reverts everything above the common ancestor at or below start_k and refetches. */
static int reorg_from(pipeline *p, uint64_t start_k, bp_error *err)
{
    const bp_canon_entry *tip = bp_canon_tip(&p->canon);
    if (!tip)
        return 0;
    if (start_k > tip->number)
        start_k = tip->number;
    uint64_t ancestor;
    int rc = bp_canon_find_ancestor(&p->canon, start_k, node_hash_at, p, &ancestor, err);
    if (rc != 0)
        return rc;
    if (ancestor == tip->number)
        return 0;
    uint64_t depth = tip->number - ancestor;
    bp_warn("reorg: %" PRIu64 " block(s) orphaned above common ancestor %" PRIu64
            "; reverting %" PRIu64 "..%" PRIu64,
            depth, ancestor, tip->number, ancestor + 1);
    for (uint64_t k = tip->number; k > ancestor; k--) {
        bp_block *b = revert_block_of(bp_canon_at(&p->canon, k));
        if (!b || add_event(p, BP_EVENT_REVERT, b) != 0) {
            bp_block_free(b);
            return bp_error_set(err, BP_ENOMEM, "out of memory");
        }
        p->blocks_done--;
    }
    bp_canon_truncate(&p->canon, ancestor);
    bp_reorder_reset_from(&p->rb, ancestor + 1);
    p->next_fetch = ancestor + 1;
    p->reorgs++;
    return 0;
}

/* The block at base does not extend our tip: a reorg, or a stale answer. */
static int mismatch(pipeline *p, bp_slot *s, bp_error *err)
{
    const bp_canon_entry *tip = bp_canon_tip(&p->canon);
    uint64_t n = p->rb.base;
    if (tip->number + 1 != n) { /* cannot happen: base and tip move together */
        bp_warn("block %" PRIu64 " does not follow tip %" PRIu64 "; restarting the window", n,
                tip->number);
        bp_canon_clear(&p->canon);
        return 0;
    }
    bp_info("block %" PRIu64 " has parent %s but we applied %s at %" PRIu64, n,
            s->block->parent_hash, tip->hash, tip->number);
    uint64_t before = p->reorgs;
    int rc = reorg_from(p, tip->number, err);
    if (rc != 0 || p->reorgs != before)
        return rc;
    /* Our tip is still canonical: the block was from a branch the node has left. Fetch it
     * again (counted as an attempt, so a node that keeps answering so is reported). */
    bp_block_free(s->block);
    s->block = NULL;
    s->attempts++;
    s->retry_at_ms = now_ms() + 50;
    snprintf(s->last_error, sizeof(s->last_error), "stale block (parent not canonical)");
    bp_reorder_set_state(&p->rb, s, BP_SLOT_RETRY);
    return 0;
}

static int commit_ready(pipeline *p, bp_error *err)
{
    for (;;) {
        bp_slot *s = bp_reorder_slot(&p->rb, p->rb.base);
        if (!s || s->state != BP_SLOT_DONE)
            break;
        if (!bp_canon_extends(&p->canon, s->block->number, s->block->parent_hash)) {
            int rc = mismatch(p, s, err);
            if (rc != 0)
                return rc;
            continue;
        }
        bp_block *b = bp_reorder_take(&p->rb);
        bp_canon_entry e;
        canon_entry_of(b, &e);
        if (add_event(p, BP_EVENT_APPLY, b) != 0) {
            bp_block_free(b);
            return bp_error_set(err, BP_ENOMEM, "out of memory");
        }
        bp_canon_push(&p->canon, &e);
        p->blocks_done++;
        p->txs_done += b->transaction_count;
        p->logs_done += b->log_count;
        if (p->nevents >= (size_t)p->cfg->batch_size) {
            int rc = flush_batch(p, err);
            if (rc != 0)
                return rc;
        }
    }
    uint64_t t;
    bool caught_up = !target(p, &t) || p->rb.base > t;
    if (p->nevents && (caught_up || p->stopping || now_ms() - p->batch_started_ms >= 1000))
        return flush_batch(p, err);
    return 0;
}

/* ---- stats -------------------------------------------------------------------------- */

static void log_stats(pipeline *p)
{
    int64_t now = now_ms();
    double secs = (double)(now - p->stat_ms) / 1000.0;
    if (secs <= 0)
        secs = 1e-3;
    const bp_canon_entry *tip = bp_canon_tip(&p->canon);
    uint64_t indexed = tip ? tip->number : 0;
    uint64_t head = p->have_head ? p->head.number : 0;
    uint64_t t = 0;
    uint64_t unscheduled = target(p, &t) && t + 1 > p->next_fetch ? t + 1 - p->next_fetch : 0;
    size_t queued = bp_queue_len(&p->jobs);
    size_t pending = queued + p->rb.counts[BP_SLOT_RETRY] + (size_t)unscheduled;
    size_t processing = p->inflight > queued ? p->inflight - queued : 0;
    char waiting[320] = "";
    bp_slot *s = bp_reorder_slot(&p->rb, p->rb.base);
    if (s && (s->state == BP_SLOT_RETRY || s->state == BP_SLOT_FAILED))
        snprintf(waiting, sizeof(waiting), " waiting_on=%" PRIu64 " (%.250s)", p->rb.base,
                 s->last_error);
    bp_info("stats head=%" PRIu64 " indexed=%" PRIu64 " lag=%" PRIu64 " pending=%zu "
            "processing=%zu done=%" PRIu64 " failed=%zu blocks/s=%.1f tx/s=%.1f workers=%d "
            "reorgs=%" PRIu64 "%s",
            head, indexed, head > indexed ? head - indexed : 0, pending, processing, p->blocks_done,
            p->rb.counts[BP_SLOT_FAILED], (double)(p->blocks_done - p->stat_blocks) / secs,
            (double)(p->txs_done - p->stat_txs) / secs, p->cfg->workers, p->reorgs, waiting);
    p->stat_blocks = p->blocks_done;
    p->stat_txs = p->txs_done;
    p->stat_ms = now;
}

/* ---- start-up ----------------------------------------------------------------------- */

/* Calls that must succeed before anything starts are retried a few times: a node that is
 * still starting should not need a second launch. */
static int retry_start(pipeline *p, int (*fn)(pipeline *, bp_error *), const char *what,
                       bp_error *err)
{
    for (int attempt = 1;; attempt++) {
        int rc = fn(p, err);
        if (rc == 0 || !bp_error_is_transient(rc) || attempt == 5 || *p->stop)
            return rc ? bp_error_prefix(err, "%s: ", what) : 0;
        bp_warn("%s failed (attempt %d of 5): %s", what, attempt, err->msg);
        sleep_ms(500L << attempt);
    }
}

static int get_chain_id(pipeline *p, bp_error *err)
{
    return bp_rpc_chain_id(p->rpc, &p->chain_id, err);
}

static int get_head(pipeline *p, bp_error *err)
{
    int rc = bp_rpc_header(p->rpc, UINT64_MAX, &p->head, err);
    p->have_head = rc == 0;
    return rc;
}

/* Seeds the reorg window from the output that is furthest behind. */
static void seed_canon(pipeline *p, const bp_checkpoint *low, size_t idx)
{
    bp_sink *s = p->cfg->sinks[idx];
    size_t max = p->cfg->reorg_window, n = 0;
    bp_checkpoint *recent = calloc(max, sizeof(*recent));
    bp_error e;
    if (recent && s->ops->recent && s->ops->recent(s, p->chain, recent, max, &n, &e) == 0 &&
        n > 0 && recent[0].number == low->number) {
        for (size_t i = n; i-- > 0;) {
            bp_canon_entry ce = {.number = recent[i].number};
            snprintf(ce.hash, sizeof(ce.hash), "%s", recent[i].hash);
            bp_canon_push(&p->canon, &ce);
        }
    } else {
        bp_canon_entry ce = {.number = low->number};
        snprintf(ce.hash, sizeof(ce.hash), "%s", low->hash);
        bp_canon_push(&p->canon, &ce);
    }
    free(recent);
}

/* Where to start: after the lowest checkpoint; an empty output is seeded from --from,
 * --start-block or the head. Returns 1 when a backfill has nothing to do. */
static int resume_point(pipeline *p, uint64_t *start, bp_error *err)
{
    const bp_pipeline_config *c = p->cfg;
    bp_checkpoint low;
    size_t idx;
    bool any_unset;
    bp_outputs_lowest(&p->out, &low, &idx, &any_unset);
    if (c->backfill) {
        if (!any_unset && low.number >= c->to) {
            bp_info("nothing to do: every output is at block %" PRIu64 " or beyond (--to %" PRIu64
                    ")",
                    low.number, c->to);
            return 1;
        }
        *start = (!any_unset && low.number + 1 > c->from) ? low.number + 1 : c->from;
    } else if (low.set) {
        *start = low.number + 1;
    } else if (c->start_set) {
        *start = c->start_block;
    } else {
        int rc = retry_start(p, get_head, "reading the chain head", err);
        if (rc != 0)
            return rc;
        uint64_t h = p->head.number;
        *start = h > c->confirmations ? h - c->confirmations : 0;
    }
    if (low.set && *start == low.number + 1)
        seed_canon(p, &low, idx);
    bp_info("chain %s (id %" PRIu64 "): starting at block %" PRIu64 "%s", p->chain, p->chain_id,
            *start, low.set ? " (after the outputs' checkpoint)" : "");
    return 0;
}

static int setup(pipeline *p, uint64_t *start, bp_error *err)
{
    const bp_pipeline_config *c = p->cfg;
    int rc = new_rpc(p, false, &p->rpc, err);
    if (rc == 0)
        rc = retry_start(p, get_chain_id, "reading eth_chainId", err);
    if (rc != 0)
        return rc;
    if (c->chain)
        snprintf(p->chain, sizeof(p->chain), "%s", c->chain);
    else
        snprintf(p->chain, sizeof(p->chain), "%" PRIu64, p->chain_id);
    bp_fetch_shared_init(&p->shared, c->fetch);
    size_t window = (size_t)c->workers * 8;
    window = window < 64 ? 64 : window > 1024 ? 1024 : window;
    if (bp_canon_init(&p->canon, (size_t)c->reorg_window) != 0 ||
        bp_queue_init(&p->jobs, window * 2 + 16) != 0 ||
        bp_queue_init(&p->results, window * 2 + 16) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    rc = bp_outputs_init(&p->out, c->sinks, c->sink_count, p->chain, err);
    if (rc != 0)
        return rc;
    rc = resume_point(p, start, err);
    if (rc != 0)
        return rc;
    if (bp_reorder_init(&p->rb, window, *start) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    p->next_fetch = *start;
    return 0;
}

/* ---- main loop ---------------------------------------------------------------------- */

static bool backfill_done(const pipeline *p)
{
    return p->cfg->backfill && p->rb.base > p->cfg->to && p->nevents == 0;
}

static int step(pipeline *p, bp_error *err)
{
    int64_t now = now_ms();
    if (now >= p->next_poll_ms && !p->stopping) {
        /* Backfill below the head needs no fresh head; poll anyway, sparsely, for the lag. */
        uint64_t t;
        bool need = !p->cfg->backfill || !target(p, &t) || t < p->cfg->to;
        double every = need ? p->cfg->poll_interval : 10.0;
        int rc = poll_head(p, err);
        if (rc != 0)
            return rc;
        p->next_poll_ms = now + (int64_t)(every * 1000.0);
    }
    schedule(p);
    long wait = (long)(p->next_poll_ms - now_ms());
    wait = wait < 1 ? 1 : wait > 100 ? 100 : wait;
    drain_results(p, wait);
    int rc = commit_ready(p, err);
    if (rc != 0)
        return rc;
    if (now_ms() >= p->next_stats_ms) {
        log_stats(p);
        p->next_stats_ms = now_ms() + (int64_t)(p->cfg->stats_interval * 1000.0);
    }
    return 0;
}

/* Stop taking work, let in-flight fetches finish (each is bounded by --rpc-timeout), commit
 * the complete prefix, flush. */
static int shutdown_pipeline(pipeline *p, bp_error *err)
{
    p->stopping = true;
    work *w;
    while ((w = bp_queue_pop(&p->jobs, 0)) != NULL) {
        p->inflight--;
        bp_slot *s = bp_reorder_slot(&p->rb, w->number);
        if (s && s->epoch == w->epoch && s->state == BP_SLOT_FETCHING)
            bp_reorder_set_state(&p->rb, s, BP_SLOT_EMPTY);
        free(w);
    }
    while (p->inflight > 0)
        drain_results(p, 100);
    int rc = commit_ready(p, err);
    if (rc == 0)
        rc = flush_batch(p, err);
    if (rc == 0)
        rc = bp_outputs_flush(&p->out, err);
    return rc;
}

static void log_summary(const pipeline *p)
{
    double secs = (double)(now_ms() - p->started_ms) / 1000.0;
    if (secs <= 0)
        secs = 1e-3;
    bp_info("%s done: blocks=%" PRIu64 " txs=%" PRIu64 " logs=%" PRIu64
            " seconds=%.2f blocks/s=%.1f tx/s=%.1f reorgs=%" PRIu64,
            p->cfg->backfill ? "backfill" : "run", p->blocks_done, p->txs_done, p->logs_done, secs,
            (double)p->blocks_done / secs, (double)p->txs_done / secs, p->reorgs);
}

static void release(pipeline *p)
{
    stop_workers(p);
    free_batch(p);
    free(p->events);
    bp_reorder_release(&p->rb);
    bp_canon_release(&p->canon);
    bp_outputs_release(&p->out);
    bp_queue_release(&p->jobs);
    bp_queue_release(&p->results);
    bp_rpc_free(p->rpc);
}

int bp_pipeline_run(const bp_pipeline_config *cfg, volatile sig_atomic_t *stop, bp_error *err)
{
    pipeline p = {.cfg = cfg, .stop = stop};
    p.started_ms = p.stat_ms = now_ms();
    p.next_stats_ms = p.started_ms + (int64_t)(cfg->stats_interval * 1000.0);
    uint64_t start = 0;
    int rc = setup(&p, &start, err);
    if (rc == 1) {
        rc = 0;
        goto out;
    }
    if (rc == 0)
        rc = start_workers(&p, err);
    while (rc == 0 && !*stop && !p.stopping && !backfill_done(&p))
        rc = step(&p, err);
    if (rc == 0) {
        rc = shutdown_pipeline(&p, err);
        if (rc == 0 && p.fatal_rc) {
            *err = p.fatal;
            rc = p.fatal_rc;
        }
        log_stats(&p);
        log_summary(&p);
    }
out:
    release(&p);
    return rc;
}
