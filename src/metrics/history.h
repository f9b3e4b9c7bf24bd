/* history.h - rebuilds the anomaly model's state before a block from the transactions an
 * output holds (model.h says what the state is a function of): after a start, a reorg or a
 * jump of the stream, the metrics module replays the blocks the state depends on, read back
 * from the output, then the ones of the batch being derived that are not written yet. */
#ifndef BP_METRICS_HISTORY_H
#define BP_METRICS_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "blockpipe/error.h"
#include "blockpipe/model.h"
#include "metrics/metrics.h"
#include "metrics/model.h"

/* Rebuilds m (reset first) as it is before block next of chain: the output's blocks below
 * live[0] (or below next when nlive is 0), read through h, then live[0..nlive) (consecutive,
 * the last next - 1). *replayed gets the transactions learnt. 0, or the read's error (m is then
 * as for an output holding nothing before live[0]: the caller says so and goes on). */
int bp_model_history_restore(bp_model *m, const bp_metrics_history *h, const char *chain,
                             uint64_t next, const bp_block *const *live, size_t nlive,
                             size_t *replayed, bp_error *err);

#endif
