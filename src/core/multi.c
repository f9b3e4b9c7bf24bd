/* multi.c - several chains in one process: their threads, shared outputs, shared memory. */
#include "core/multi.h"

#ifdef __GLIBC__
#endif
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/budget.h"
#include "util/log.h"

/* A chain's memory for blocks never goes below this (its reserve + the common part): the
 * single-chain pipeline's own minimum. */
#define MIN_BLOCKS ((size_t)16 << 20)
/* Nor its reserve below this: a chain at its head needs a few blocks and a batch. */
#define MIN_RESERVE ((size_t)1 << 20)

/* ---- an output shared by the chains: calls in FIFO order ------------------------------ */

typedef struct shared_output {
    bp_sink *sink;
    pthread_mutex_t lock;
    pthread_cond_t cv;
    uint64_t next, serving; /* ticket lock: a caller takes `next` and waits for `serving` */
} shared_output;

/* One chain's handle to a shared output. */
typedef struct chain_sink {
    bp_sink base;
    shared_output *out;
} chain_sink;

/* The shared output's waits reported to the chain whose call it is making (its outputs' state:
 * /ready, /api/sync-status): the handle's own hook, with the handle as the output. */
static void cs_on_retry(void *ctx, const bp_sink *inner, const bp_error *why)
{
    (void)inner;
    bp_sink *h = ctx;
    if (h->on_retry)
        h->on_retry(h->on_retry_ctx, h, why);
}

static bp_sink *inner_take(bp_sink *s)
{
    shared_output *o = ((chain_sink *)s)->out;
    pthread_mutex_lock(&o->lock);
    uint64_t mine = o->next++;
    while (o->serving != mine)
        pthread_cond_wait(&o->cv, &o->lock);
    pthread_mutex_unlock(&o->lock);
    o->sink->on_retry = cs_on_retry; /* ours alone until inner_give */
    o->sink->on_retry_ctx = s;
    return o->sink;
}

static void inner_give(bp_sink *s)
{
    shared_output *o = ((chain_sink *)s)->out;
    o->sink->on_retry = NULL;
    o->sink->on_retry_ctx = NULL;
    pthread_mutex_lock(&o->lock);
    o->serving++;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->lock);
}

static int cs_checkpoint(bp_sink *s, const char *chain, bp_checkpoint *out, bp_error *err)
{
    bp_sink *in = inner_take(s);
    int rc = in->ops->checkpoint(in, chain, out, err);
    inner_give(s);
    return rc;
}

static int cs_recent(bp_sink *s, const char *chain, bp_checkpoint *out, size_t max, size_t *n,
                     bp_error *err)
{
    bp_sink *in = inner_take(s);
    *n = 0; /* a backend without the op keeps nothing: as if it had no recent blocks */
    int rc = in->ops->recent ? in->ops->recent(in, chain, out, max, n, err) : 0;
    inner_give(s);
    return rc;
}

static int cs_write(bp_sink *s, const bp_batch *batch, bp_error *err)
{
    /* No transaction left open across the chains' turns (bp_batch.more): the next write may
     * be another chain's, which would have to end it. */
    bp_batch mine = *batch;
    mine.more = false;
    bp_sink *in = inner_take(s);
    int rc = in->ops->write(in, &mine, err);
    s->memory_peak = in->memory_peak; /* every chain's writes: the output's */
    inner_give(s);
    return rc;
}

static int cs_flush(bp_sink *s, bp_error *err)
{
    bp_sink *in = inner_take(s);
    int rc = in->ops->flush ? in->ops->flush(in, err) : 0;
    inner_give(s);
    return rc;
}

static int cs_claim(bp_sink *s, const char *chain, char *holder, size_t cap, bp_error *err)
{
    bp_sink *in = inner_take(s);
    int rc = in->ops->claim ? in->ops->claim(in, chain, holder, cap, err) : 0;
    inner_give(s);
    return rc;
}

static void cs_unclaim(bp_sink *s, const char *chain)
{
    bp_sink *in = inner_take(s);
    if (in->ops->unclaim)
        in->ops->unclaim(in, chain);
    inner_give(s);
}

static int cs_check(bp_sink *s, const char *chain, bp_error *err)
{
    bp_sink *in = inner_take(s);
    int rc = in->ops->check ? in->ops->check(in, chain, err) : 0;
    inner_give(s);
    return rc;
}

static void cs_close(bp_sink *s)
{
    free(s); /* the shared output is bp_multi_run's caller's */
}

static const bp_sink_ops g_chain_sink_ops = {
    .scheme = "shared",
    .title = "a shared output",
    .checkpoint = cs_checkpoint,
    .recent = cs_recent,
    .write = cs_write,
    .flush = cs_flush,
    .close = cs_close,
    .claim = cs_claim, /* never waits: the chain's pipeline waits, not holding the output */
    .unclaim = cs_unclaim,
    .check = cs_check,
};

/* ---- memory and workers ---------------------------------------------------------------- */

int bp_multi_capacity(const bp_pipeline_config *c)
{
    int n = 0;
    for (size_t i = 0; i < c->endpoint_count; i++)
        n += c->endpoints[i].max_workers > 0 ? c->endpoints[i].max_workers : c->workers;
    return n > 256 ? 256 : n;
}

/* Each chain's worker share, its reserve, the common part (*common). */
static int plan(bp_multi_config *mc, size_t *common, bp_error *err)
{
    size_t n = mc->chain_count, chains_fixed = 0;
    int share = mc->workers_total / (int)n;
    share = share < 1 ? 1 : share;
    for (size_t i = 0; i < n; i++) {
        bp_pipeline_config *pc = &mc->chains[i].pc;
        int cap = bp_multi_capacity(pc);
        pc->max_threads = cap < share ? cap : share;
        chains_fixed += BP_MEM_PER_CHAIN + (size_t)pc->max_threads * BP_MEM_PER_WORKER;
    }
    /* the API's push ring is one for every chain: the process's */
    size_t process = BP_MEM_PROCESS + mc->sink_count * BP_MEM_PER_OUTPUT +
                     mc->derived_outputs * BP_MEM_PER_DERIVED_OUTPUT + mc->push_ring_bytes +
                     mc->push_memory_bytes;
    size_t fixed = process + chains_fixed;
    if (!mc->max_memory)
        mc->max_memory = bp_pipeline_default_memory(n, fixed);
    size_t blocks = mc->max_memory > fixed ? mc->max_memory - fixed : 0;
    size_t reserve = blocks / 2 / n;
    *common = blocks - reserve * n;
    if (reserve < MIN_RESERVE || reserve + *common < MIN_BLOCKS) {
        size_t need = MIN_RESERVE * n > MIN_BLOCKS / 2 ? 2 * MIN_RESERVE * n : MIN_BLOCKS;
        return bp_error_set(
            err, BP_EINVAL,
            "max_memory %zu MiB is too small for %zu chains: the process and "
            "%zu output(s)%s take %zu MiB, the chains' %d-worker shares and "
            "buffers %zu MiB, and blocks need %zu MiB more (give at least %zu "
            "MiB, or a smaller workers_total)",
            mc->max_memory >> 20, n, mc->sink_count,
            mc->push_ring_bytes
                ? " and the API's push ring and memory (api_push_ring, api_push_memory)"
                : "",
            process >> 20, share, chains_fixed >> 20, need >> 20,
            (fixed + need + (1 << 20) - 1) >> 20);
    }
    for (size_t i = 0; i < n; i++)
        mc->chains[i].pc.memory_reserved = reserve;
    bp_info("%zu chains: up to %d fetch workers each, %zu MiB of memory for blocks: %zu MiB "
            "reserved per chain, %zu MiB common",
            n, share, blocks >> 20, reserve >> 20, *common >> 20);
    return 0;
}

/* ---- the chains' threads ------------------------------------------------------------- */

typedef struct chain_thread {
    bp_multi_chain *c;
    volatile sig_atomic_t *stop;
    pthread_t tid;
    bool started;
} chain_thread;

/* The chain's last snapshot says it stopped and why: its status is "waiting" with the error,
 * and /ready is not ready, rather than the last moment it ran. */
static void say_stopped(bp_multi_chain *c)
{
    bp_stats *s = c->pc.stats ? malloc(sizeof(*s)) : NULL;
    if (!s)
        return;
    bp_stats_hub_read(c->pc.stats, s);
    snprintf(s->chain, sizeof(s->chain), "%s", c->pc.chain); /* it may have stopped at once */
    s->waiting = true;
    s->waiting_on = s->have_indexed ? s->indexed + 1 : 0;
    snprintf(s->waiting_error, sizeof(s->waiting_error), "stopped: %.200s", c->error.msg);
    bp_stats_hub_publish(c->pc.stats, s);
    free(s);
}

static void *chain_main(void *arg)
{
    chain_thread *t = arg;
    bp_multi_chain *c = t->c;
    bp_log_set_context(c->pc.chain); /* every thread of the chain says whose it is */
    c->rc = bp_pipeline_run(&c->pc, t->stop, &c->error);
    if (c->rc != 0) {
        bp_err("chain '%s' stopped (the other chains go on): %s", c->pc.chain, c->error.msg);
        say_stopped(c);
    } else
        bp_info("chain '%s' finished", c->pc.chain);
    c->done = true;
    return NULL;
}

/* Per chain, a handle of its own to every shared output. */
static int chain_handles(bp_multi_config *mc, shared_output *outs, bp_sink **handles, bp_error *err)
{
    for (size_t c = 0; c < mc->chain_count; c++) {
        for (size_t i = 0; i < mc->sink_count; i++) {
            chain_sink *cs = calloc(1, sizeof(*cs));
            if (!cs)
                return bp_error_set(err, BP_ENOMEM, "out of memory");
            cs->base = (bp_sink){.ops = &g_chain_sink_ops,
                                 .url = outs[i].sink->url,
                                 .derived = outs[i].sink->derived,
                                 .families = outs[i].sink->families,
                                 .retries_own = outs[i].sink->retries_own,
                                 .families_why = outs[i].sink->families_why};
            cs->out = &outs[i];
            handles[c * mc->sink_count + i] = &cs->base;
        }
        mc->chains[c].pc.sinks = &handles[c * mc->sink_count];
        mc->chains[c].pc.sink_count = mc->sink_count;
    }
    return 0;
}

/* The error of the run: every chain that failed, by name. */
static int summary(const bp_multi_config *mc, bp_error *err)
{
    int rc = 0;
    char names[512] = "";
    size_t failed = 0, len = 0;
    for (size_t i = 0; i < mc->chain_count; i++) {
        const bp_multi_chain *c = &mc->chains[i];
        if (c->rc == 0)
            continue;
        rc = rc ? rc : c->rc;
        failed++;
        if (len < sizeof(names))
            len += (size_t)snprintf(names + len, sizeof(names) - len, "%s'%s' (%s)",
                                    failed > 1 ? "; " : "", c->pc.chain, c->error.msg);
    }
    if (rc)
        bp_error_set(err, rc, "%zu of %zu chains failed: %s", failed, mc->chain_count, names);
    return rc;
}

int bp_multi_run(bp_multi_config *mc, volatile sig_atomic_t *stop, bp_error *err)
{
    size_t n = mc->chain_count, common = 0;
    shared_output *outs = calloc(mc->sink_count ? mc->sink_count : 1, sizeof(*outs));
    bp_sink **handles = calloc(n * mc->sink_count + 1, sizeof(*handles));
    chain_thread *threads = calloc(n, sizeof(*threads));
    bp_budget_pool pool;
    bool pool_ok = false;
    int rc = 0;
    if (!outs || !handles || !threads) {
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = plan(mc, &common, err)) != 0)
        goto out;
    bp_budget_tune_malloc();
    bp_budget_pool_init(&pool, common);
    pool_ok = true;
    for (size_t i = 0; i < mc->sink_count; i++) {
        outs[i].sink = mc->sinks[i];
        pthread_mutex_init(&outs[i].lock, NULL);
        pthread_cond_init(&outs[i].cv, NULL);
    }
    if ((rc = chain_handles(mc, outs, handles, err)) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        mc->chains[i].pc.memory_pool = &pool;
        threads[i] = (chain_thread){.c = &mc->chains[i], .stop = stop};
        threads[i].started = pthread_create(&threads[i].tid, NULL, chain_main, &threads[i]) == 0;
        if (!threads[i].started) {
            mc->chains[i].rc =
                bp_error_set(&mc->chains[i].error, BP_ENOMEM, "cannot start its thread");
            bp_err("chain '%s': cannot start its thread", mc->chains[i].pc.chain);
        }
    }
    for (size_t i = 0; i < n; i++)
        if (threads[i].started)
            pthread_join(threads[i].tid, NULL);
    rc = summary(mc, err);
out:
    for (size_t i = 0; handles && i < n * mc->sink_count; i++)
        free(handles[i]);
    for (size_t i = 0; outs && pool_ok && i < mc->sink_count; i++) {
        pthread_mutex_destroy(&outs[i].lock);
        pthread_cond_destroy(&outs[i].cv);
    }
    if (pool_ok)
        bp_budget_pool_release(&pool);
    free(threads);
    free(handles);
    free(outs);
    return rc;
}
