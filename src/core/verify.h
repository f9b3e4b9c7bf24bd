/* verify.h - `blockpipe verify`: blocks and receipts read again from the node, compared with
 * what an output holds, and (--repair) the differing blocks written again.
 *
 * The node side is a backfill of the range through the ordinary pipeline (endpoint pool,
 * providers' limits, credentials, rate limits, retries, the memory budget), whose one "output"
 * compares each batch in the writer thread: per table, the output's rows of the batch's range
 * are read back once (bp_sink_read, ordered) and hashed per block, the node's rows likewise
 * (core/vrow.h); only a block whose digest or row count differs is read again and compared row
 * by row, naming each difference. A repair is one transaction of the output's own write: a
 * REVERT of the block as stored and an APPLY of the node's block, the output's checkpoint
 * unchanged (bp_batch.rewrite), with the derived rows of the block made again as after a
 * reorg. Blocks above the output's checkpoint are reported, not repaired (a backfill writes
 * them). */
#ifndef BP_CORE_VERIFY_H
#define BP_CORE_VERIFY_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "blockpipe/sink.h"
#include "core/pipeline.h"

typedef struct bp_verify_config {
    const char *url; /* the output to read back */
    const bp_sink_settings *settings;
    bp_sink *repair;            /* the same output open for writing (--repair); NULL: report only */
    struct bp_metrics *metrics; /* derives repaired blocks' analytics rows (repair->derived) */
    FILE *report;               /* a line per difference */
} bp_verify_config;

typedef struct bp_verify_result {
    uint64_t blocks;                              /* blocks compared */
    uint64_t rows;                                /* node rows compared */
    uint64_t blocks_differ;                       /* blocks found different */
    uint64_t missing, extra, duplicated, altered; /* rows */
    uint64_t repaired;                            /* blocks rewritten and found equal afterwards */
    uint64_t unrepaired; /* differing blocks left as they are (or still differing) */
    double compare_s;    /* seconds spent comparing (in the writer thread) */
    double read_s;       /* of which reading the output's rows back and hashing them */
} bp_verify_result;

/* Verifies pc->from .. pc->to (pc is the backfill configuration: its sinks and metrics are
 * ignored). 0 when the comparison ran to the end (res says what it found; *stop may have
 * ended it early), else the error that stopped it. */
int bp_verify_run(const bp_pipeline_config *pc, const bp_verify_config *vc,
                  volatile sig_atomic_t *stop, bp_verify_result *res, bp_error *err);

#endif
