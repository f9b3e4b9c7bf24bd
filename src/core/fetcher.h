/* fetcher.h - the fetch workers: threads that take jobs (a run of consecutive block
 * numbers), fetch them through the endpoint pool, and return the jobs carrying one block or
 * one error per number. Take / process / return: a job is owned by whoever holds it; the
 * queues between the coordinator and the workers are bounded. */
#ifndef BP_CORE_FETCHER_H
#define BP_CORE_FETCHER_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/error.h"
#include "blockpipe/model.h"
#include "chain/fetch.h"
#include "core/budget.h"
#include "core/pool.h"
#include "core/queue.h"

#define BP_JOB_MAX 32

/* rcs[i] of a block the worker did not get to (an earlier part of the job failed, or the
 * fetcher stopped): fetch it again, it was not an attempt. */
#define BP_JOB_NOT_TRIED 1
/* rcs[i] of a block whose answer outgrew the memory its job was granted (share_per_block):
 * not an attempt either; the coordinator fetches it again alone, with more room. */
#define BP_JOB_OVER_SHARE 2

typedef struct bp_job {
    uint64_t first;
    size_t count; /* 1 .. BP_JOB_MAX */
    int avoid_ep; /* endpoint that failed these blocks last time, or -1 */
    int ep;       /* result: endpoint of the last request, or -1 */
    /* Memory (core/budget.h): the coordinator charged `grant` bytes for the job, or promised
     * them (the worker takes them when the first answer bytes arrive, waiting there until
     * they are free); each request of n blocks may receive n * share_per_block answer bytes
     * (0: no limit but the rpc's). */
    size_t grant;
    size_t share_per_block;
    bool promised;
    bool alone;  /* fetched alone to learn a new size (the coordinator's mark) */
    bool taken;  /* result: the promised grant was taken (the coordinator refunds it) */
    size_t wire; /* result: answer bytes of the requests that brought blocks */
    uint32_t epochs[BP_JOB_MAX];
    bp_block *blocks[BP_JOB_MAX]; /* results, owned by the job holder */
    int rcs[BP_JOB_MAX];
    bp_error errs[BP_JOB_MAX];
} bp_job;

typedef struct bp_fetcher bp_fetcher;

typedef struct bp_fetcher_config {
    bp_pool *pool;                      /* not owned */
    bp_fetch_shared *shared;            /* not owned */
    const struct bp_source_ops *source; /* the family's fetch (core/source.h); NULL: EVM */
    int threads;
    size_t queue_cap;
    double rpc_timeout;                /* seconds */
    bp_budget *budget;                 /* where promised grants are taken (not owned) */
    const volatile sig_atomic_t *stop; /* aborts requests in flight */
} bp_fetcher_config;

int bp_fetcher_start(bp_fetcher **out, const bp_fetcher_config *cfg, bp_error *err);
/* Queues a job (ownership passes to the fetcher); BP_ETOOBIG when the queue is full. */
int bp_fetcher_submit(bp_fetcher *f, bp_job *job);
/* A finished job (ownership passes to the caller), or NULL after wait_ms. */
bp_job *bp_fetcher_result(bp_fetcher *f, long wait_ms);
/* A queued job no worker has taken yet (for shutdown), or NULL. */
bp_job *bp_fetcher_unqueue(bp_fetcher *f);
size_t bp_fetcher_queued(bp_fetcher *f);
/* Makes a bp_fetcher_result() that is waiting return NULL at once (any thread): the
 * coordinator sleeps there, and a new head must not wait for a fetch to finish. */
void bp_fetcher_wake(bp_fetcher *f);
/* Closes the queues, joins the workers, frees unclaimed jobs and their blocks. */
void bp_fetcher_stop(bp_fetcher *f);
void bp_job_free(bp_job *job);

#endif
