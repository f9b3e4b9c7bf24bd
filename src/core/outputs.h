/* outputs.h - fan-out of the ordered event stream to every configured output.
 *
 * Each output keeps its own checkpoint. The pipeline resumes from the lowest; an output
 * that is ahead skips the APPLY events it already has (and the REVERTs of blocks it never
 * applied), so every output sees a consistent stream for itself. Outputs are written one
 * after another from the writer thread (writer.h), one batch at a time: a slow output slows
 * the pipeline (back-pressure) instead of growing memory.
 *
 * A write that fails with a transient error (bp_error_is_transient: a lost connection, I/O, a
 * timeout) is tried again with backoff (0.5, 1, 2 s). When it still fails: with keep_going
 * false (the default) the error stops the pipeline; every output keeps a consistent
 * checkpoint, so nothing is lost. With keep_going true the output is set aside for the rest
 * of the run, said loudly, and the others go on; the next start resumes from the lowest
 * checkpoint, so it catches up. */
#ifndef BP_CORE_OUTPUTS_H
#define BP_CORE_OUTPUTS_H

#include "blockpipe/sink.h"

typedef struct bp_outputs {
    bp_sink **sinks; /* not owned */
    size_t count;
    bp_checkpoint *cps; /* per output, as of the last successful write */
    bp_event *scratch;  /* the filtered events of one output */
    size_t scratch_cap;
    const char *chain;
    bool keep_going; /* --output-failure continue */
    bool *failed;    /* per output: set aside after a failure (keep_going only) */
    size_t failed_count;
    /* Derives the analytics rows once per batch for the outputs that write them (not owned;
     * NULL: none). */
    struct bp_metrics *metrics;
} bp_outputs;

/* Reads every output's checkpoint for chain. */
int bp_outputs_init(bp_outputs *o, bp_sink **sinks, size_t count, const char *chain, bp_error *err);
void bp_outputs_release(bp_outputs *o);
/* The lowest checkpoint over the outputs that have one (out->set is false when none has);
 * *lowest_index is the output holding it; *any_unset tells whether some output has none. */
void bp_outputs_lowest(const bp_outputs *o, bp_checkpoint *out, size_t *lowest_index,
                       bool *any_unset);
/* Writes batch (its checkpoint field is ignored: each output gets its own). */
int bp_outputs_write(bp_outputs *o, const bp_batch *batch, bp_error *err);
int bp_outputs_flush(bp_outputs *o, bp_error *err);

#endif
