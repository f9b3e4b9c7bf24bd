/* setup.h - what the commands (run, backfill, verify) and the library
 * (include/blockpipe/blockpipe.h) make of a loaded config (cli/config.h). */
#ifndef BP_CLI_SETUP_H
#define BP_CLI_SETUP_H

#include "blockpipe/error.h"
#include "blockpipe/sink.h"
#include "cli/commands_serve.h"
#include "cli/config.h"
#include "core/multi.h"
#include "core/pipeline.h"
#include "metrics/metrics.h"
#include "metrics/prices.h"

/* A chain's metrics module (the analytics of the outputs with derived tables), reading p. */
int bp_setup_chain_metrics(const bp_config *cfg, bp_prices *p, unsigned groups, bp_metrics **m,
                           bp_error *err);
/* The metrics module and its price source when an output writes the derived tables (*m and
 * *p stay NULL otherwise); the caller frees both. */
int bp_setup_metrics(const bp_config *cfg, bp_sink **sinks, bp_metrics **m, bp_prices **p,
                     bp_error *err);
/* The pipeline's settings from cfg: its endpoints in eps (BP_MAX_RPCS), its outputs sinks
 * (output_count of them). pc points into cfg, eps and sinks. */
void bp_setup_pipeline(const bp_config *c, bp_sink **sinks, bp_endpoint_spec *eps,
                       bp_pipeline_config *pc);

/* A config file's chains: list run in one process (docs/ARCHITECTURE.md "Many chains in one
 * process"): `blockpipe run/backfill` with a chains: list and a library pipe with one
 * (src/lib/pipe.c). Arrays of n, one item per chain, in list order. */
typedef struct bp_chains {
    size_t n;
    bp_config *cfgs; /* per chain: the top-level keys (and flags or pairs), then its own */
    bp_multi_chain *chains;
    bp_endpoint_spec (*eps)[BP_MAX_RPCS];
    bp_pipeline_report *reports;
    bp_metrics **metrics;
} bp_chains;

/* Loads the config of chain `index` of the list into cfg (the commands read the command line
 * again, the library its pairs); cfg must be releasable after a failure. */
typedef int (*bp_chain_load_fn)(void *ctx, int index, bp_config *cfg, bp_error *err);

/* The chains of base's list to run, in list order: base->chain (NAME[,NAME...]) names them,
 * --shard K/N takes positions K, K+N, ... of those; each loaded by load. Release r with
 * bp_chains_free, also after a failure. */
int bp_chains_load(const bp_config *base, bp_chain_load_fn load, void *ctx, bp_chains *r,
                   bp_error *err);
/* Each chain's metrics module when an output writes the derived tables (one price source,
 * *prices, the caller's to free). */
int bp_chains_metrics(bp_chains *r, bp_sink **sinks, bp_prices **prices, bp_error *err);
/* Each chain's pipeline settings (bp_setup_pipeline) with its report, metrics, the API's push
 * hub and its snapshot: api->chain_stats[i], else hubs[i] (hubs may be NULL: the pipeline's
 * own). */
void bp_chains_map(bp_chains *r, bp_sink **sinks, const bp_cli_api *api, bp_stats_hub **hubs);
/* bp_multi_run's settings: r's chains writing the sink_count outputs of sinks (after
 * bp_chains_map: the API's push ring it gave every chain is charged once, the process's). */
void bp_chains_multi(const bp_config *base, bp_chains *r, bp_sink **sinks, size_t sink_count,
                     bp_multi_config *mc);
void bp_chains_free(bp_chains *r);

/* Opens cfg's outputs into sinks[0 .. output_count) (each logged without credentials), told
 * which chains this process writes: r's (NULL: the one chain of a config without a chains:
 * list); on a failure the ones opened are left for the caller to close. */
int bp_setup_outputs(const bp_config *cfg, const bp_chains *r, bp_sink **sinks, bp_error *err);

#endif
