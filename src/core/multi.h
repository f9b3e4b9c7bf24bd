/* multi.h - several chains in one process: one pipeline per chain, each on a thread of its
 * own, writing to shared outputs and sharing the memory and the fetch workers
 * (docs/ARCHITECTURE.md "Many chains in one process").
 *
 * Outputs: each is opened once by the caller; every chain writes to it through a handle of
 * its own whose calls take the output's FIFO ticket lock, so the chains' batches are written
 * one at a time, each chain waiting at most one batch of every other.
 * Memory: max_memory is the whole process's. The process's and the outputs' fixed parts are
 * set aside once; each chain's own (its workers, its buffers) is its budget's; what is left
 * for blocks is half reserved (an equal share per chain) and half common (bp_budget_pool).
 * Workers: workers_total split equally (at least 1 per chain).
 * Failure: a chain whose pipeline ends with an error stops alone; the others go on. */
#ifndef BP_CORE_MULTI_H
#define BP_CORE_MULTI_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "blockpipe/error.h"
#include "blockpipe/sink.h"
#include "core/pipeline.h"

typedef struct bp_multi_chain {
    /* The chain's pipeline (name in .chain, required). Its sinks, memory_pool,
     * memory_reserved, max_threads and max_memory are set by bp_multi_run. */
    bp_pipeline_config pc;
    /* filled when the run ends */
    int rc;         /* bp_pipeline_run's */
    bp_error error; /* when rc != 0 */
    bool done;      /* its pipeline returned */
} bp_multi_chain;

typedef struct bp_multi_config {
    bp_multi_chain *chains;
    size_t chain_count;
    bp_sink **sinks; /* the shared outputs (not owned; every chain writes each) */
    size_t sink_count;
    size_t derived_outputs;   /* how many of them write the derived tables */
    size_t max_memory;        /* the whole process's (bytes); 0: the default, per chain */
    size_t push_ring_bytes;   /* the API's push ring, in the process's fixed part (0: none) */
    size_t push_memory_bytes; /* and its push share (messages and queues), the same way */
    int workers_total;        /* fetch workers of every chain together */
} bp_multi_config;

/* Runs every chain until each pipeline returns (backfill done, *stop, or its own error).
 * 0 when every chain ended well; otherwise the first failure's code, with err naming every
 * chain that failed and why (each also said in an error line when it happened). BP_EINVAL
 * before anything starts when the memory cannot hold the chains (naming what takes it). */
int bp_multi_run(bp_multi_config *mc, volatile sig_atomic_t *stop, bp_error *err);

/* Fetch workers the pipeline of c may have (its endpoints' concurrency, at most 256). */
int bp_multi_capacity(const bp_pipeline_config *c);

#endif
