/* fetcher.c - fetch worker threads over the endpoint pool. */
#include "core/fetcher.h"

#include "core/source.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#ifdef __linux__
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "chain/rpc.h"
#include "util/log.h"

/* How much nicer than the rest of the process the fetch workers run (see lower_priority). */
#define WORKER_NICE 5

typedef struct worker {
    bp_fetcher *f;
    pthread_t tid;
    bool started;
    bp_rpc **rpcs; /* one per endpoint, made on first use */
} worker;

struct bp_fetcher {
    bp_fetcher_config cfg;
    /* the family's block fetch (bp_fetch_range for EVM), read once: no lookup per job */
    int (*fetch_range)(bp_rpc *, bp_fetch_shared *, uint64_t, size_t, bp_block **, int *,
                       bp_error *);
    bp_queue jobs, results;
    worker *workers;
    atomic_bool wake_pending; /* at most one wake-up item waits in results */
};

/* Queued on the result queue by bp_fetcher_wake: never a real job, never freed. */
static bp_job g_wake;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void bp_job_free(bp_job *job)
{
    if (!job || job == &g_wake)
        return;
    for (size_t i = 0; i < job->count; i++)
        bp_block_free(job->blocks[i]);
    free(job);
}

static bp_rpc *rpc_for(worker *w, int ep, bp_error *err)
{
    if (w->rpcs[ep])
        return w->rpcs[ep];
    long timeout_ms = (long)(w->f->cfg.rpc_timeout * 1000.0);
    bp_rpc_config rc = {
        .url = w->f->cfg.pool->eps[ep].real_url,
        .auth = w->f->cfg.pool->eps[ep].auth,
        .timeout_ms = timeout_ms,
        .connect_timeout_ms = timeout_ms < 5000 ? timeout_ms : 5000,
        .abort_flag = w->f->cfg.stop,
        .limits = &w->f->cfg.pool->eps[ep].limits,
    };
    if (bp_rpc_new(&w->rpcs[ep], &rc, err) != 0)
        return NULL;
    return w->rpcs[ep];
}

static void mark_rest(bp_job *job, size_t from, int rc, const char *why)
{
    for (size_t i = from; i < job->count; i++) {
        job->rcs[i] = rc;
        bp_error_set(&job->errs[i], rc, "%s", why);
    }
}

/* A job whose grant was promised takes it when its first answer bytes arrive: the node has
 * prepared the answer meanwhile. It waits at most 4/5 of the request's timeout (the rest is
 * for receiving) and 10 s (a block that needs a retry below it may be waiting for that
 * memory); a job not admitted by then comes back untried. */
#define ADMIT_WAIT_MAX_MS 10000L
typedef struct admission {
    worker *w;
    bp_job *job;
    int64_t t0_us;
    int rc;
} admission;

static int admit(void *ctx)
{
    admission *a = ctx;
    bp_job *job = a->job;
    if (!job->promised || job->taken)
        return 0;
    const bp_fetcher_config *c = &a->w->f->cfg;
    long wait_ms = (long)(c->rpc_timeout * 800.0) - (long)((now_us() - a->t0_us) / 1000);
    wait_ms = wait_ms < ADMIT_WAIT_MAX_MS ? wait_ms : ADMIT_WAIT_MAX_MS;
    a->rc = bp_budget_take_promised(c->budget, job->grant, wait_ms, c->stop);
    job->taken = a->rc == 0;
    return a->rc;
}

/* No memory for the answer in time (or a stop): not an attempt, nor the endpoint's fault. */
static int not_admitted(worker *w, bp_job *job, int ep, size_t off, int rc)
{
    mark_rest(job, off, rc == BP_ESTOPPED ? BP_ESTOPPED : BP_JOB_NOT_TRIED,
              "no memory was free for the answer in time");
    bp_pool_done(w->f->cfg.pool, ep, &(bp_pool_outcome){.rc = BP_ESTOPPED});
    job->ep = ep;
    return rc;
}

/* The answer outgrew the job's grant. Not the endpoint's fault: the pool hears of an answer
 * that was too big (its batch shrinks) and served no block, not of a failure. */
static int over_share(worker *w, bp_job *job, int ep, size_t off, size_t n, int64_t t0)
{
    for (size_t i = off; i < off + n; i++)
        job->rcs[i] = BP_JOB_OVER_SHARE;
    bp_pool_outcome o = {
        .latency_us = now_us() - t0,
        .bytes = 2 * BP_POOL_TARGET_BYTES + 1,
        .need = job->first + off + n - 1,
    };
    bp_pool_done(w->f->cfg.pool, ep, &o);
    job->ep = ep;
    return BP_ETOOBIG;
}

/* Fetches job->blocks[off .. off+n) on endpoint ep; tells the pool how it went. */
static int fetch_chunk(worker *w, bp_job *job, int ep, size_t off, size_t n)
{
    bp_pool *pool = w->f->cfg.pool;
    bp_error e;
    bp_rpc *rpc = rpc_for(w, ep, &e);
    if (!rpc) {
        bp_pool_done(pool, ep, &(bp_pool_outcome){.rc = e.code, .error_text = e.msg});
        mark_rest(job, off, e.code, e.msg);
        return e.code;
    }
    int64_t t0 = now_us();
    bool cut = false;
    admission a = {.w = w, .job = job, .t0_us = t0};
    bp_rpc_set_share(rpc, job->share_per_block * n);
    bp_rpc_set_admit(rpc, admit, &a);
    int rc = w->f->fetch_range(rpc, w->f->cfg.shared, job->first + off, n, job->blocks + off,
                               job->rcs + off, job->errs + off);
    size_t wire = bp_rpc_share_used(rpc, &cut);
    bp_rpc_set_share(rpc, 0);
    bp_rpc_set_admit(rpc, NULL, NULL);
    if (rc == 0)
        job->wire += wire;
    if (a.rc != 0)
        return not_admitted(w, job, ep, off, a.rc);
    if (rc == BP_ETOOBIG && cut)
        return over_share(w, job, ep, off, n, t0);
    const char *why = NULL;
    for (size_t i = 0; rc != 0 && i < n && !why; i++)
        if (job->rcs[off + i] != 0)
            why = job->errs[off + i].msg;
    bp_pool_outcome o = {
        .rc = rc,
        .latency_us = now_us() - t0,
        .blocks = n,
        .bytes = bp_rpc_last_bytes(rpc),
        .need = job->first + off + n - 1,
        .retry_after_s = bp_rpc_last_retry_after(rpc),
        .error_text = why,
    };
    bp_pool_done(pool, ep, &o);
    job->ep = ep;
    return rc;
}

/* After a 429 / -32005 at job block i (the pool paused that endpoint): the blocks from i on
 * are fetched again, a provider's "slower" is not a failure of the block. Returns false when
 * the chunk failed otherwise. */
static bool rate_limited_at(bp_job *job, size_t off, size_t n, size_t *i)
{
    size_t k = off;
    while (k < off + n && job->rcs[k] == 0)
        k++;
    if (k == off + n || job->rcs[k] != BP_ERATELIMIT)
        return false;
    for (size_t j = k; j < off + n; j++) {
        bp_block_free(job->blocks[j]);
        job->blocks[j] = NULL;
        job->rcs[j] = 0;
    }
    *i = k;
    return true;
}

static void run_job(worker *w, bp_job *job)
{
    bp_fetcher *f = w->f;
    size_t off = 0;
    job->ep = -1;
    while (off < job->count) {
        int batch = 1;
        int ep = -1;
        while (ep < 0 && !*f->cfg.stop && !bp_pool_is_closed(f->cfg.pool))
            ep = bp_pool_acquire(f->cfg.pool, job->first + job->count - 1, job->avoid_ep, 500,
                                 &batch);
        if (ep < 0) {
            mark_rest(job, off, BP_ESTOPPED, "stopped before the fetch");
            return;
        }
        size_t n = job->count - off < (size_t)batch ? job->count - off : (size_t)batch;
        if (fetch_chunk(w, job, ep, off, n) == 0) {
            off += n;
            continue;
        }
        if (rate_limited_at(job, off, n, &off))
            continue; /* the pool makes the next acquire wait for the pause, or go elsewhere */
        /* the blocks after a failed request were not tried: the coordinator requeues */
        mark_rest(job, off + n, BP_JOB_NOT_TRIED, "not tried");
        return;
    }
}

/* The fetch workers are many and each is as runnable as the one thread that commits (the
 * coordinator) or the one that writes (the writer): with equal weights, 8 decoding workers
 * left the writer ~1/9 of a core, the window filled up while it wrote, then only it ran and
 * the other core sat idle. A lower weight for the workers lets the ordered path run when it
 * has work (and a node on the same machine serve first), so both cores stay busy. Linux
 * applies setpriority to one thread; elsewhere this does nothing, and a failure only costs
 * the speed-up. */
static void lower_priority(void)
{
#ifdef __linux__
    errno = 0;
    int now = getpriority(PRIO_PROCESS, 0);
    if (errno == 0)
        (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), now + WORKER_NICE);
#endif
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    bp_job *job;
    lower_priority();
    while ((job = bp_queue_pop(&w->f->jobs, -1)) != NULL) {
        run_job(w, job);
        /* A result is never dropped (its slots would stay FETCHING forever): wait for room;
         * only a closed queue (shutdown) lets go of it. */
        int rc;
        while ((rc = bp_queue_push(&w->f->results, job)) == BP_ETOOBIG) {
            struct timespec ts = {0, 1000000L};
            nanosleep(&ts, NULL);
        }
        if (rc != 0)
            bp_job_free(job);
    }
    for (size_t i = 0; i < w->f->cfg.pool->count; i++)
        bp_rpc_free(w->rpcs[i]);
    return NULL;
}

int bp_fetcher_start(bp_fetcher **out, const bp_fetcher_config *cfg, bp_error *err)
{
    bp_fetcher *f = calloc(1, sizeof(*f));
    *out = f;
    if (!f)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    f->cfg = *cfg;
    f->fetch_range = cfg->source ? cfg->source->fetch_range : bp_fetch_range;
    f->workers = calloc((size_t)cfg->threads, sizeof(*f->workers));
    /* Every queued job plus one per worker and a wake-up fit in results. */
    if (!f->workers || bp_queue_init(&f->jobs, cfg->queue_cap) != 0 ||
        bp_queue_init(&f->results, cfg->queue_cap + (size_t)cfg->threads + 1) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    for (int i = 0; i < cfg->threads; i++) {
        worker *w = &f->workers[i];
        w->f = f;
        w->rpcs = calloc(cfg->pool->count, sizeof(*w->rpcs));
        if (!w->rpcs)
            return bp_error_set(err, BP_ENOMEM, "out of memory");
        if (bp_thread_create(&w->tid, NULL, worker_main, w) != 0)
            return bp_error_set(err, BP_ENOMEM, "cannot start fetch worker %d", i);
        w->started = true;
    }
    return 0;
}

int bp_fetcher_submit(bp_fetcher *f, bp_job *job)
{
    return bp_queue_push(&f->jobs, job);
}

bp_job *bp_fetcher_result(bp_fetcher *f, long wait_ms)
{
    bp_job *job = bp_queue_pop(&f->results, wait_ms);
    if (job != &g_wake)
        return job;
    atomic_store(&f->wake_pending, false);
    return NULL;
}

void bp_fetcher_wake(bp_fetcher *f)
{
    /* One pending wake-up is enough; more would take room results need. */
    if (!atomic_exchange(&f->wake_pending, true) && bp_queue_push(&f->results, &g_wake) != 0)
        atomic_store(&f->wake_pending, false); /* full: the reader is awake anyway */
}

bp_job *bp_fetcher_unqueue(bp_fetcher *f)
{
    return bp_queue_pop(&f->jobs, 0);
}

size_t bp_fetcher_queued(bp_fetcher *f)
{
    return bp_queue_len(&f->jobs);
}

void bp_fetcher_stop(bp_fetcher *f)
{
    if (!f)
        return;
    if (f->jobs.items)
        bp_queue_close(&f->jobs);
    if (f->cfg.pool)
        bp_pool_close(f->cfg.pool);
    for (int i = 0; f->workers && i < f->cfg.threads; i++) {
        if (f->workers[i].started)
            pthread_join(f->workers[i].tid, NULL);
        free(f->workers[i].rpcs);
    }
    bp_job *job;
    while (f->results.items && (job = bp_queue_pop(&f->results, 0)) != NULL)
        bp_job_free(job);
    while (f->jobs.items && (job = bp_queue_pop(&f->jobs, 0)) != NULL)
        bp_job_free(job);
    bp_queue_release(&f->jobs);
    bp_queue_release(&f->results);
    free(f->workers);
    free(f);
}
