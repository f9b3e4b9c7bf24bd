/* budget.h - the memory budget of one pipeline (--max-memory): one byte counter that every
 * holder of decoded blocks draws from, and what a block is expected to cost.
 *
 * Who charges and who refunds (docs/ARCHITECTURE.md "Memory bounds"):
 *   - at start: the fixed part (process, threads, connections, the outputs' buffers);
 *   - the coordinator, per fetch job: a grant sized from the estimate below, before the job
 *     is queued (a request whose answer could not be held is not started: the worker cuts an
 *     answer that outgrows its grant); when the job comes back every block it brought is
 *     charged at its real cost (bp_budget_block_cost) out of the grant first, beyond it
 *     if bigger, and what the blocks left of the grant is refunded (bp_reorder_prepay): the
 *     counter holds the grant or the blocks, never both at once;
 *   - a block's cost stays charged while it is parked in the reorder window, in the batch
 *     being built and in the writer, and is refunded where the block is freed
 *     (bp_budget_free_block: reorder discards, the writer after writing).
 * The counter may pass the limit (a block turned out bigger than its grant: the memory is
 * already in use); nothing new is granted until it is back under.
 *
 * A grant may also be promised: the coordinator sends one job whose memory is not free yet
 * (everything holding memory is on its way out: the writer, the commit); the worker takes the
 * promised bytes when the answer's first bytes arrive, waiting there until they are free, so
 * the node prepares the answer while the writer writes instead of after. Promised bytes are
 * not free for anything else.
 *
 * Thread-safety: the counters are under one mutex (the writer refunds and a worker takes a
 * promise while the coordinator grants). The estimate (learn / estimate / per_wire) belongs
 * to the coordinator thread. */
#ifndef BP_CORE_BUDGET_H
#define BP_CORE_BUDGET_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "blockpipe/error.h"
#include "blockpipe/model.h"
#include "blockpipe/sink.h"

/* Blocks the estimate remembers: it is the largest cost among them. */
#define BP_BUDGET_RECENT 64
/* Answers whose bytes-per-cost ratio is remembered (the largest counts). */
#define BP_BUDGET_RATIOS 16
/* Smaller answers teach no ratio: the JSON-RPC envelope and the fixed cost of a block weigh
 * more in them than what the bytes decode into. */
#define BP_BUDGET_RATIO_MIN_WIRE ((size_t)64 << 10)

/* The memory several budgets share (many chains in one process, docs/ARCHITECTURE.md "Many
 * chains in one process"): each budget holds its `reserved` bytes alone, and what it holds
 * beyond them (used + promised - reserved) is counted here, against `limit`, so a budget
 * may go past its reserve only while the common part has room. */
typedef struct bp_budget_pool {
    pthread_mutex_t lock; /* taken inside a budget's lock, never the other way round */
    size_t limit;
    size_t over; /* the sum of every budget's bytes beyond its reserve */
} bp_budget_pool;

void bp_budget_pool_init(bp_budget_pool *p, size_t limit);
void bp_budget_pool_release(bp_budget_pool *p);

typedef struct bp_budget {
    size_t limit;
    bp_budget_pool *pool; /* NULL: limit is the budget's alone */
    size_t reserved;      /* with a pool: what this budget may hold without it */
    pthread_mutex_t lock;
    pthread_cond_t cv; /* signalled when bytes come back */
    size_t used, promised, peak;
    /* coordinator only: the costs of the last BP_BUDGET_RECENT blocks and the cost per answer
     * byte of the last BP_BUDGET_RATIOS answers (rings) */
    size_t recent[BP_BUDGET_RECENT];
    size_t seen, next;
    double ratio[BP_BUDGET_RATIOS];
    size_t ratios, next_ratio;
} bp_budget;

/* A batch of at most this many transactions is one at the head (a block or two, written every
 * block time): the writer gives its freed memory back to the system after it (core/writer.c)
 * and SQLite writes it with a small page cache (sink/sqlite.c); bigger batches (a backfill's)
 * keep both. */
#define BP_HEAD_BATCH_TXS 1024
bool bp_budget_head_batch(const bp_batch *b); /* true for an empty batch */

/* Unmaps from the process the pages of its binary and shared libraries that no write made
 * its own (their read-only PT_LOAD segments: code and constants), so that
 * what start-up and a backfill touched and the head does not use stops counting in its
 * resident set; what the head runs faults back in from the kernel's page cache (minor faults,
 * once). Process-wide (the CLI after the libraries' initialisation, each writer at the head:
 * core/writer.c): the loaded objects' read-only segments, found and dropped under the
 * loader's lock (a library another thread is loading is never half-dropped). */
void bp_budget_drop_file_pages(void);

/* Holds glibc's malloc to what the budget counts (process-wide; called before the threads
 * that allocate start, and again by each pipeline): one arena per core (at least 2) and a
 * fixed mmap threshold. Does nothing on other C libraries. */
void bp_budget_tune_malloc(void);

void bp_budget_init(bp_budget *b, size_t limit);
/* Makes b share pool (before anything is charged): it may hold `reserved` bytes alone and,
 * up to its limit, more while the pool has room. */
void bp_budget_share(bp_budget *b, bp_budget_pool *pool, size_t reserved);
void bp_budget_release(bp_budget *b);
/* Takes n bytes when they fit under the limit and returns true; else takes nothing. */
bool bp_budget_try_charge(bp_budget *b, size_t n);
/* Takes n bytes even past the limit: memory that is in use already. */
void bp_budget_charge(bp_budget *b, size_t n);
void bp_budget_refund(bp_budget *b, size_t n);
/* Brings what a holder has charged (*charged) to now: charges or refunds the difference (memory
 * in use: charged even past the limit; the fetches then wait for it). */
void bp_budget_follow(bp_budget *b, size_t *charged, size_t now);
/* Sets n bytes aside for a job whose memory is not free yet (see above). */
void bp_budget_promise(bp_budget *b, size_t n);
/* Takes n promised bytes once they fit under the limit: waits up to wait_ms, or until *stop.
 * 0, BP_ETIMEOUT or BP_ESTOPPED (then nothing is taken and the promise still stands). */
int bp_budget_take_promised(bp_budget *b, size_t n, long wait_ms,
                            const volatile sig_atomic_t *stop);
/* Drops a promise that was not taken (its job came back without an answer). */
void bp_budget_drop_promise(bp_budget *b, size_t n);
size_t bp_budget_used(bp_budget *b);
size_t bp_budget_promised(bp_budget *b);
/* limit - used - promised, 0 when at or over the limit (with a pool: no more than the
 * reserve's room plus the pool's). */
size_t bp_budget_free(bp_budget *b);
/* The highest `used` so far. */
size_t bp_budget_peak(bp_budget *b);

/* A decoded block is charged what its arena holds and 1/BP_BLOCK_MARGIN more, and a few KiB
 * (budget.c variable_cost: the measurement). */
#define BP_BLOCK_MARGIN 32
/* What a decoded block holds in memory: its arena and what the allocator adds to it. */
size_t bp_budget_block_cost(const bp_block *blk);
/* Refunds blk's cost to b (b may be NULL: nothing counted) and frees blk (NULL is fine). */
void bp_budget_free_block(bp_budget *b, bp_block *blk);

/* Learns from a block that was decoded: its cost. */
void bp_budget_learn(bp_budget *b, const bp_block *blk);
/* Learns from an answer of `wire` bytes that decoded into blocks whose arenas hold
 * `arena_bytes`: what an answer byte costs (small answers are ignored). */
void bp_budget_learn_wire(bp_budget *b, size_t arena_bytes, size_t wire);
/* The expected cost of the next block: the largest of the recent ones; 0 before any. */
size_t bp_budget_estimate(const bp_budget *b);
/* Cost per answer byte to assume (the largest recent ratio; 1 before any is known): a grant
 * of G bytes lets an answer grow to G / bp_budget_per_wire() bytes. */
double bp_budget_per_wire(const bp_budget *b);

#endif
