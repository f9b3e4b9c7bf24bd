/* setup.h - what the commands (run, backfill, verify) and the library
 * (include/blockpipe/blockpipe.h) make of a loaded config (cli/config.h). */
#ifndef BP_CLI_SETUP_H
#define BP_CLI_SETUP_H

#include "blockpipe/error.h"
#include "blockpipe/sink.h"
#include "cli/config.h"
#include "core/pipeline.h"
#include "metrics/metrics.h"
#include "metrics/prices.h"

/* Opens cfg's outputs into sinks[0 .. output_count) (each logged without credentials); on a
 * failure the ones opened are left for the caller to close. */
int bp_setup_outputs(const bp_config *cfg, bp_sink **sinks, bp_error *err);
/* A chain's metrics module (the analytics of the outputs with derived tables), reading p. */
int bp_setup_chain_metrics(const bp_config *cfg, bp_prices *p, bp_metrics **m, bp_error *err);
/* The metrics module and its price source when an output writes the derived tables (*m and
 * *p stay NULL otherwise); the caller frees both. */
int bp_setup_metrics(const bp_config *cfg, bp_sink **sinks, bp_metrics **m, bp_prices **p,
                     bp_error *err);
/* The pipeline's settings from cfg: its endpoints in eps (BP_MAX_RPCS), its outputs sinks
 * (output_count of them). pc points into cfg, eps and sinks. */
void bp_setup_pipeline(const bp_config *c, bp_sink **sinks, bp_endpoint_spec *eps,
                       bp_pipeline_config *pc);

#endif
