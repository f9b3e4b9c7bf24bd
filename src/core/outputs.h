/* outputs.h - fan-out of the ordered event stream to every configured output.
 *
 * Each output keeps its own checkpoint. The pipeline resumes from the lowest; an output
 * that is ahead skips the APPLY events it already has (and the REVERTs of blocks it never
 * applied), so every output sees a consistent stream for itself. Outputs are written one
 * after another from the writer thread (writer.h), one batch at a time: a slow output slows
 * the pipeline (back-pressure) instead of growing memory.
 *
 * A write that fails with a transient error (bp_error_is_transient: a lost connection, I/O, a
 * timeout) is tried again with backoff (0.5, 1, 2 s), unless the sink tries again itself
 * (bp_sink.retries_own: PostgreSQL reconnects within --wait-for-db of the loss, one wait per
 * outage; tries here on top would multiply it). When it still fails: with keep_going
 * false (the default) the error stops the pipeline; every output keeps a consistent
 * checkpoint, so nothing is lost. With keep_going true the output is set aside, said loudly,
 * and the others go on; so is an output whose checkpoint cannot be read at start (unless every
 * output fails). A set-aside output is asked for its checkpoint again by a probe thread of
 * its own (after 1 s, doubling up to 30 s: the sink is that thread's alone meanwhile); once it
 * answers, the pipeline takes it back (bp_outputs_rejoin_point / bp_outputs_rejoin) and goes
 * back to its checkpoint, re-reading from the node what it missed while the others skip what
 * they hold - the catch-up a restart would do, in memory bounded as any backfill is.
 * bp_outputs_release stops the probes and waits for them: at most one checkpoint read of the
 * output, bounded by its own waits (--wait-for-db, --kafka-timeout). */
#ifndef BP_CORE_OUTPUTS_H
#define BP_CORE_OUTPUTS_H

#include <pthread.h>
#include <stdatomic.h>

#include "blockpipe/model.h"
#include "blockpipe/sink.h"
#include "blockpipe/stats.h"
#include "metrics/derive_job.h"
#include "util/histogram.h"

/* An output's newest blocks, kept to compare with the stream where the output is ahead of
 * it: after a kill between two outputs' writes, or a reorg while blockpipe was stopped, an
 * output may hold blocks of a branch the chain left. As many as the file outputs keep. */
#define BP_OUTPUTS_HELD 128

typedef struct bp_held {
    bp_checkpoint e[BP_OUTPUTS_HELD]; /* ring of consecutive numbers; the newest is the
                                         output's checkpoint */
    size_t first, n;
} bp_held;

/* A REVERT made for one output from what it holds (header only). */
typedef struct bp_own_revert {
    bp_block b;
    char hash[67], parent[67];
} bp_own_revert;

/* What the status endpoints show of an output (bp_outputs_health). */
enum bp_output_state {
    BP_OUTPUT_OK,        /* its last write went through (or none failed yet) */
    BP_OUTPUT_RETRYING,  /* a write (or a read back to its checkpoint) failed and is tried again */
    BP_OUTPUT_SET_ASIDE, /* --output-failure continue: skipped, probed until it answers */
    BP_OUTPUT_FAILED     /* failed for good: the run stops with its error */
};

typedef struct bp_output_health {
    enum bp_output_state state;
    char error[BP_ERROR_MSG_MAX]; /* the last failure, "" once a write went through */
    bool stops; /* its failure stops the run (no keep_going, or no other output left) */
} bp_output_health;

typedef struct bp_outputs {
    bp_sink **sinks; /* not owned */
    size_t count;
    bp_checkpoint *cps; /* per output, as of the last successful write */
    bp_held *held;      /* per output */
    bp_event *scratch;  /* the filtered events of one output */
    bp_own_revert *own; /* the REVERTs made for it (header blocks the events point to) */
    size_t scratch_cap; /* of scratch and of own */
    const char *chain;
    bool keep_going; /* --output-failure continue */
    bool *failed;    /* per output: set aside after a failure (keep_going only) */
    size_t failed_count;
    /* per output: its probe thread runs; it found the output answering (with probe_cp) */
    bool *probing;
    pthread_t *probes;
    atomic_bool *back;
    bp_checkpoint *probe_cp;
    atomic_bool stop_probes;
    bp_hist *write_us; /* per output: time of each batch write (its retries included), µs */
    /* Derives the analytics rows once per batch for the outputs that write them (not owned;
     * NULL: none). */
    struct bp_metrics *metrics;
    /* The pipeline's memory budget, handed to every write (bp_batch.budget; NULL: none). */
    struct bp_budget *budget;
    /* The derivation of the batch being written when it runs beside the raw rows' writes
     * (every output takes them late, bp_sink.derived_late). */
    bp_derived_job job;
    /* Groups (bp_batch.more): every output that holds batches open commits at the same
     * batches: the pipeline's `more` is cleared here at the group's bounds (BP_GROUP_BATCHES
     * batches, BP_GROUP_MS), and always when commit_each (the API's push takes a batch's
     * events once it is written, which must mean committed). */
    bool commit_each;
    /* After a group was rolled back by a failure, every batch commits alone until the blocks
     * it held are written: a failure that comes again (a full disk, a row the database
     * refuses) then fails one batch, which --output-failure and the retries treat as before,
     * instead of rolling back a new group at the same place for ever. */
    uint64_t solo_through;
    bool solo;
    unsigned group_batches;
    int64_t group_t0_ms;
    int64_t group_ms; /* BP_GROUP_MS, or the environment's BP_GROUP_MS (experiments) */
    /* outputs set aside because a group they held was rolled back (bp_sink.rewind), until
     * taken back: a backfill is not done while one is */
    size_t rewinding;
    bool *rewound; /* per output: set aside so (bp_sink.rewind) */
    /* per output: its probe gave up on it (rewound, BP_OUTPUTS_REWIND_ATTEMPTS checkpoint
     * reads failed), with the last read's error (written before the flag is set) */
    atomic_bool *gave_up;
    bp_error *probe_err;
    /* per output, under health_lock: the writer thread, the probes and the sinks (bp_sink.on_retry,
     * from inside a write) set it, the stats publication reads it (bp_outputs_health) */
    bp_output_health *health;
    pthread_mutex_t health_lock;
} bp_outputs;

/* An output sent back to its checkpoint (bp_sink.rewind) gets as many reads of its checkpoint
 * as a failed write gets attempts, each bounded by the output's own waits (--wait-for-db,
 * --kafka-timeout), 0, 1, 2 and 4 s apart. If none answers, a backfill would wait for it for
 * ever: without --output-failure continue the run stops with an error naming the output (its
 * checkpoint is where its last commit left it: nothing the pipeline counted written is lost,
 * the next run writes it again); with continue it stays set aside as any failed output does
 * (unless no other output is left: the run stops then too). */
#define BP_OUTPUTS_REWIND_ATTEMPTS 4

/* A group of batches in one transaction ends at the first batch without bp_batch.more, at
 * this many batches, or at the first batch this long after the group's first. */
#define BP_GROUP_BATCHES 8
#define BP_GROUP_MS 1000

/* Reads every output's checkpoint for chain, and its newest blocks (the `recent` op). With
 * keep_going, an output whose checkpoint cannot be read is set aside (and probed) unless every
 * output fails. */
int bp_outputs_init(bp_outputs *o, bp_sink **sinks, size_t count, const char *chain,
                    bool keep_going, bp_error *err);
void bp_outputs_release(bp_outputs *o);
/* The lowest checkpoint over the outputs that have one (out->set is false when none has);
 * *lowest_index is the output holding it; *any_unset tells whether some output has none.
 * out->floor is the lowest floor over them (bp_checkpoint). Outputs set aside do not count. */
void bp_outputs_lowest(const bp_outputs *o, bp_checkpoint *out, size_t *lowest_index,
                       bool *any_unset);
/* Where the stream must start so that every output can be brought onto the chain: the
 * checkpoint of output idx (the lowest) + 1, or the lowest height at or below it where
 * another output holds a different block (a kill between two outputs' writes of a reorg
 * leaves them on different branches at the same height). */
uint64_t bp_outputs_agreed(const bp_outputs *o, size_t idx);
/* Writes batch (its checkpoint field is ignored: each output gets its own). An output
 * skips the APPLYs it has and the REVERTs of blocks it does not hold; where it holds
 * another block than the stream's it first gets REVERTs of its own blocks down to there. */
int bp_outputs_write(bp_outputs *o, const bp_batch *batch, bp_error *err);
int bp_outputs_flush(bp_outputs *o, bp_error *err);
/* Whether an output holds batches open (bp_sink.holds_open), and committing them (each such
 * output's flush; one that fails is logged and left to its next write or its close). */
bool bp_outputs_holding(const bp_outputs *o);
void bp_outputs_end_open(bp_outputs *o);
/* A set-aside output that answers again: true with the lowest such checkpoint and its output.
 * Any thread (it reads what the probe threads published). */
bool bp_outputs_rejoin_point(bp_outputs *o, bp_checkpoint *cp, size_t *index);
/* Whether an output that lost a group it held open waits to be taken back. */
bool bp_outputs_rewinding(const bp_outputs *o);
/* Without keep_going (or with every output set aside): BP_ETIMEOUT naming the first output sent
 * back to its checkpoint whose probe gave up on it (BP_OUTPUTS_REWIND_ATTEMPTS), else 0. Any thread
 * (the writer thread asks while it waits for batches). */
int bp_outputs_given_up(bp_outputs *o, bp_error *err);
/* Output i's state, its last failure and whether that stops the run, into so (state, error,
 * failure_stops). Any thread: a write in progress tells it as it retries. */
void bp_outputs_health(bp_outputs *o, size_t i, bp_stats_output *so);
/* Takes output i back at the checkpoint its probe read (the caller has rewound the event
 * stream to it). The writer must be idle. */
void bp_outputs_rejoin(bp_outputs *o, size_t i);

#endif
