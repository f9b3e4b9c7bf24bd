/* pipeline.h - one chain's pipeline: head tracker, fetch workers, reorder buffer, canonical
 * chain with reorg handling, batched ordered delivery to the outputs.
 *
 * Threads: the caller's thread is the coordinator (it alone touches the reorder buffer and the
 * canonical chain). The fetch workers (core/fetcher.c: as many as the endpoints' concurrency
 * adds up to, at most 256) only fetch: jobs go out on one queue and come back, carrying a
 * block or an error per number, on another. The outputs are the writer thread's while the
 * pipeline runs (core/writer.c: one batch in flight); the coordinator reads them itself only
 * at start-up and, after waiting for the writer, to flush at the end. With a WebSocket
 * endpoint, core/realtime.c's threads bring the new heads. */
#ifndef BP_CORE_PIPELINE_H
#define BP_CORE_PIPELINE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "blockpipe/error.h"
#include "blockpipe/sink.h"
#include "blockpipe/stats.h"
#include "core/budget.h"
#include "core/pool.h"

#define BP_REPORT_MAX_FAILED 64

/* --max-memory when not given, per chain (a process of N chains gets N times it): a backfill
 * of 200-tx or 2,000-tx blocks, derived tables on, went as fast as under 256 MiB and peaked
 * at ~90 MiB resident (64 MiB made 2,000-tx blocks 40 % slower); the per-chain budget is
 * 100 MB in a full-speed backfill (docs/PERFORMANCE.md "memory"). */
#define BP_PIPELINE_DEFAULT_MEMORY ((size_t)96 << 20)
/* ... or more when the fixed part below (many outputs, many workers) would leave blocks less
 * than this: the default never refuses a configuration. */
#define BP_PIPELINE_DEFAULT_BLOCKS ((size_t)48 << 20)
/* Seconds `run` waits before trying again a block that used up --max-retries. */
#define BP_PIPELINE_FAILED_RETRY 30.0

/* The memory of a process of `chains` chains when --max-memory is not given: the default per
 * chain, or their fixed part (`fixed` bytes) + BP_PIPELINE_DEFAULT_BLOCKS each when more. */
static inline size_t bp_pipeline_default_memory(size_t chains, size_t fixed)
{
    size_t per_chain = chains * BP_PIPELINE_DEFAULT_MEMORY;
    size_t room = fixed + chains * BP_PIPELINE_DEFAULT_BLOCKS;
    return per_chain > room ? per_chain : room;
}

/* The fixed part of the memory budget (docs/ARCHITECTURE.md "Memory bounds"), measured with
 * the release build: the process itself (code, libraries, SQLite's page cache), each output
 * (its buffers), each output with derived tables (its rollup state, SQLite's larger page
 * cache), each fetch worker (its curl buffer, the JSON parser's scratch), and with several
 * chains in one process each chain's own (its coordinator's and writer's buffers). */
#define BP_MEM_PROCESS ((size_t)24 << 20)
#define BP_MEM_PER_OUTPUT ((size_t)4 << 20)
#define BP_MEM_PER_DERIVED_OUTPUT ((size_t)8 << 20)
#define BP_MEM_PER_WORKER ((size_t)1 << 20)
#define BP_MEM_PER_CHAIN ((size_t)2 << 20)

/* What a run leaves behind, for the state file (blockpipe retry-failed). */
typedef struct bp_pipeline_report {
    char chain[64];
    bool tip_set;
    uint64_t tip;        /* the last committed block */
    size_t failed_count; /* blocks that used up --max-retries (the first ones are listed) */
    struct {
        uint64_t number;
        int attempts;
        char error[256];
    } failed[BP_REPORT_MAX_FAILED];
} bp_pipeline_report;

typedef struct bp_pipeline_config {
    const bp_endpoint_spec *endpoints; /* the RPC pool of this chain */
    size_t endpoint_count;
    const char *chain; /* NULL: the chain id in decimal */
    /* The chain family (--chain-type, core/source.h); NULL: EVM. */
    const struct bp_source_ops *source;
    bp_sink **sinks;
    size_t sink_count;
    bool backfill;   /* index [from, to] and return; else follow the head */
    const char *job; /* what the end's summary names ("verify"); NULL: backfill or run */
    uint64_t from, to;
    bool start_set; /* run: seed an empty output at start_block, else at the head */
    uint64_t start_block;
    uint64_t confirmations;
    uint64_t reorg_window;
    int workers; /* concurrent requests per endpoint without its own max_workers */
    int batch_size;
    int max_retries;
    /* s: run's pause before a block that used up max_retries is tried again; 0:
     * BP_PIPELINE_FAILED_RETRY */
    double failed_retry_interval;
    double poll_interval;       /* s */
    double stats_interval;      /* s */
    double rpc_timeout;         /* s */
    unsigned fetch;             /* enum bp_fetch_what */
    bool strict_node;           /* --strict-node: a block that needs a repair fails */
    uint64_t expect_chain_id;   /* --chain-preset's chain id (0: any); checked at start */
    const char *preset;         /* its name, for the message */
    bp_pipeline_report *report; /* filled when the run ends, may be NULL */
    bp_stats_hub *stats;        /* where the snapshot is published (not owned); NULL: own */
    bool output_keep_going;     /* --output-failure continue */
    /* --lock-wait: seconds to wait for the chain's writer lock in an output that has one
     * (sink.h claim) while another process holds it; < 0: as long as it takes; 0: refuse. */
    double lock_wait;
    /* Appended to the waiting / refusal message (a way out); NULL: backfill's hint about
     * --checkpoint-name when backfill, else none. */
    const char *lock_hint;
    size_t max_memory; /* bytes (--max-memory); 0: BP_PIPELINE_DEFAULT_MEMORY, or the fixed
                        * part + BP_PIPELINE_DEFAULT_BLOCKS when that is more */
    /* Several chains in one process (core/multi.h): the memory they share. Then the budget
     * is this chain's fixed part (BP_MEM_PER_CHAIN and its workers; the process and the
     * outputs are charged once, to the pool's owner) + memory_reserved + the pool's limit,
     * and max_memory is not used. NULL: one chain, max_memory is all of it. */
    bp_budget_pool *memory_pool;
    size_t memory_reserved;
    /* The API's push ring (api/push.h bp_push_ring_bytes; 0: no API): resident for the whole
     * run and one per process, however many chains it serves, so it is part of the process's
     * fixed part: charged with it here (one chain), set aside with it by bp_multi_run (several;
     * bp_multi_config.push_ring_bytes), and shown in every chain's snapshot. */
    size_t push_ring_bytes;
    /* The API's push share (api/push.h bp_push_hub_memory_bytes: the built messages and the
     * clients' queues, kept within it by the hub; 0: no API): charged with the ring, the same
     * way. push_held(batch_ctx) says what it holds now, for the snapshot (NULL: nothing). */
    size_t push_memory_bytes;
    size_t (*push_held)(void *batch_ctx);
    int max_threads;   /* fetch workers at most (a share of a global cap); 0: no cap */
    bool chain_id_set; /* the endpoints must serve chain_id (else the run stops) */
    uint64_t chain_id;
    /* Called on the writer thread with each batch once every output has committed it (the
     * API's push hub; see writer.h). NULL: none. */
    void (*batch_committed)(void *batch_ctx, const bp_batch *b);
    void *batch_ctx;
    struct bp_metrics *metrics; /* derives the analytics rows (not owned); NULL: none */
    /* real time (run only): NULL ws_url = HTTP polling only */
    const char *ws_url;
    bp_endpoint_auth ws_auth;
    double ws_reconnect_interval;
    int ws_max_reconnect_attempts;
    double ws_stale_after;
} bp_pipeline_config;

/* Runs until the range is committed (backfill), *stop becomes non-zero (then it commits what
 * is complete, flushes and returns 0), or an error that cannot be retried (a reorg deeper
 * than the window, an output failure, a block that failed max_retries times in backfill). */
int bp_pipeline_run(const bp_pipeline_config *cfg, volatile sig_atomic_t *stop, bp_error *err);

#endif
