/* derive_job.h - the metrics module's computation of one batch on a thread of its own, so that
 * an output can write the batch's raw rows meanwhile (core/outputs.c starts it, an output that
 * sets bp_sink.derived_late takes the result with bp_batch_derived once its raw rows are
 * written). The rows are the same as bp_metrics_compute's, in the same transaction: only when
 * they are computed changes.
 *
 * Threading: the job's thread is the only one calling into the module while it runs; start and
 * wait are called by the writer, which waits before the batch's write returns (so
 * bp_metrics_written and bp_metrics_shed still see an idle module). */
#ifndef BP_METRICS_DERIVE_JOB_H
#define BP_METRICS_DERIVE_JOB_H

#include <pthread.h>
#include <stdbool.h>

#include "blockpipe/derived.h"
#include "blockpipe/error.h"
#include "blockpipe/sink.h"
#include "metrics/metrics.h"

struct bp_derived_job {
    /* private */
    pthread_t thread;
    bool running; /* started and not yet joined */
    bp_metrics *metrics;
    const bp_batch *batch;
    bool outputs_empty;
    const bp_derived *out;
    int rc;
    bp_error err;
};
typedef struct bp_derived_job bp_derived_job;

/* Starts bp_metrics_compute(m, batch, outputs_empty) on a new thread; batch and its blocks must
 * stay as they are until bp_derived_job_wait. BP_EIO (with err) when no thread could be made:
 * the caller computes in its own thread instead. */
int bp_derived_job_start(bp_derived_job *j, bp_metrics *m, const bp_batch *batch,
                         bool outputs_empty, bp_error *err);
/* Waits for the job (again: returns the same result at once): what bp_metrics_compute returned,
 * *out its derived rows. */
int bp_derived_job_wait(bp_derived_job *j, const bp_derived **out, bp_error *err);

/* The derived rows of a batch an output writes: batch->derived, or the job's once it is done
 * (waits for it). */
int bp_batch_derived(const bp_batch *batch, const bp_derived **out, bp_error *err);

#endif
