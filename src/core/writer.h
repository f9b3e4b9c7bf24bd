/* writer.h - the output writer thread: it writes batch k to every output while the
 * coordinator assembles batch k+1 (and keeps fetching), so the outputs' CPU and I/O no longer
 * stop the rest of the pipeline.
 *
 * - At most one batch is in flight (handed over, not yet written): the coordinator hands over
 *   the next only when bp_writer_busy() is false, so memory stays at two batches (the one
 *   being written and the one being built) and a slow output slows fetching (back-pressure)
 *   instead of growing memory.
 * - One thread writes the batches in the order they were handed over: the event stream stays
 *   ordered (a REVERT is written after the APPLYs it reverts).
 * - The first failure is sticky: batches handed over after it are freed unwritten (writing
 *   them would leave a gap behind the failed one) and every later call returns the error.
 * - While the thread runs, the outputs (bp_outputs and its sinks) belong to it: the
 *   coordinator touches them only after bp_writer_wait() returned and before the next
 *   bp_writer_submit(). */
#ifndef BP_CORE_WRITER_H
#define BP_CORE_WRITER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/error.h"
#include "blockpipe/sink.h"
#include "blockpipe/stats.h"
#include "core/budget.h"
#include "core/outputs.h"

typedef struct bp_writer_config {
    bp_outputs *out; /* not owned */
    /* Called on the writer thread for every APPLY once every output has it (may be NULL). */
    void (*committed)(void *ctx, uint64_t number, int64_t now_ms);
    /* Called on the writer thread after each batch: the coordinator may hand over the next. */
    void (*written)(void *ctx);
    void *ctx;
    /* The blocks handed over are charged to it; each is refunded once written (or dropped)
     * and freed. May be NULL. */
    bp_budget *budget;
    /* Called on the writer thread with each batch once every output has it, before its blocks
     * are freed (may be NULL): the API's push hub copies what it announces; it must not block. */
    void (*batch_committed)(void *batch_ctx, const bp_batch *b);
    void *batch_ctx;
} bp_writer_config;

typedef struct bp_writer {
    bp_writer_config cfg;
    pthread_t tid;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cv;
    bool busy;          /* a batch is handed over and not written yet */
    bool closing;       /* write what was handed over, then end */
    bool at_head;       /* the writer thread's: the last batch was one at the head */
    int64_t dropped_ms; /* and when it last dropped file pages (bp_budget_drop_file_pages) */
    bp_batch batch;
    bp_event *events; /* the batch in flight; its blocks are owned */
    size_t cap;
    int rc; /* sticky: the first failure */
    bp_error err;
    size_t set_aside;      /* outputs set aside (--output-failure continue), as of the last write */
    bp_stats_output *outs; /* each output's checkpoint as of the last write (stats) */
    size_t nouts;
} bp_writer;

int bp_writer_start(bp_writer *w, const bp_writer_config *cfg, bp_error *err);
/* Is a batch still being written? */
bool bp_writer_busy(bp_writer *w);
/* Hands over b: the writer copies the events and owns the blocks they point to from now on
 * (they are freed once written, or at once after a failure). The caller must have seen
 * bp_writer_busy() false. Returns the sticky error (0 if none). */
int bp_writer_submit(bp_writer *w, const bp_batch *b, bp_error *err);
/* Waits until what was handed over is written; returns the sticky error (0 if none). */
int bp_writer_wait(bp_writer *w, bp_error *err);
/* The sticky error without waiting (0 if none). */
int bp_writer_error(bp_writer *w, bp_error *err);
size_t bp_writer_set_aside(bp_writer *w);
/* Each output's URL and checkpoint as of the last write, its state (bp_outputs_health) as of
 * now (at most max); any thread. */
size_t bp_writer_outputs(bp_writer *w, bp_stats_output *out, size_t max);
/* Writes what was handed over (unless a write failed), ends the thread, frees the rest.
 * Accepts what a failed start left behind. */
void bp_writer_stop(bp_writer *w);

#endif
