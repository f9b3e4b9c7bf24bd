/* derive_job.c - a batch's derived rows computed beside the raw rows' writes (derive_job.h). */
#include "metrics/derive_job.h"

#include <string.h>

static void *job_main(void *arg)
{
    bp_derived_job *j = arg;
    j->rc = bp_metrics_compute(j->metrics, j->batch, j->outputs_empty, &j->out, &j->err);
    return NULL;
}

int bp_derived_job_start(bp_derived_job *j, bp_metrics *m, const bp_batch *batch,
                         bool outputs_empty, bp_error *err)
{
    memset(j, 0, sizeof(*j));
    j->metrics = m;
    j->batch = batch;
    j->outputs_empty = outputs_empty;
    int rc = pthread_create(&j->thread, NULL, job_main, j);
    if (rc != 0)
        return bp_error_set(err, BP_EIO, "metrics: no thread for the batch's derived rows: %s",
                            strerror(rc));
    j->running = true;
    return 0;
}

int bp_derived_job_wait(bp_derived_job *j, const bp_derived **out, bp_error *err)
{
    if (j->running) {
        pthread_join(j->thread, NULL);
        j->running = false;
    }
    *out = j->rc == 0 ? j->out : NULL;
    if (j->rc != 0 && err)
        *err = j->err;
    return j->rc;
}

int bp_batch_derived(const bp_batch *batch, const bp_derived **out, bp_error *err)
{
    if (!batch->derived_job) {
        *out = batch->derived;
        return 0;
    }
    return bp_derived_job_wait(batch->derived_job, out, err);
}
