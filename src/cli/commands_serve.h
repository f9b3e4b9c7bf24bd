/* commands_serve.h - the API in the commands: `blockpipe serve`, and --api for run / backfill
 * (the push hub fed by the pipeline, the listener started before it and stopped after). */
#ifndef BP_CLI_COMMANDS_SERVE_H
#define BP_CLI_COMMANDS_SERVE_H

#include <signal.h>

#include "api/alerts.h"
#include "api/api.h"
#include "api/push.h"
#include "blockpipe/stats.h"
#include "cli/config.h"

/* What --api runs beside a pipeline. */
typedef struct bp_cli_api {
    bp_stats_hub *stats; /* with --api or --alert: the pipeline publishes into it */
    bp_push_hub *push;
    bp_api *api;
    bp_alerts *alerts;
    /* several chains with --api: each chain's snapshot (the first is stats), for ?chain= */
    bp_stats_hub **chain_stats;
    size_t chain_count;
} bp_cli_api;

/* Before the outputs are opened: with --api (or serve) the SQLite outputs create the lookup
 * indexes the API's queries use, unless the user said otherwise. */
int bp_cli_api_settings(bp_config *cfg, bp_error *err);
/* Starts the stats hub, the push hub and the listener when cfg asks for the API, and the
 * alerts when it has --alert (a no-op otherwise). Release with bp_cli_api_stop, also after a
 * failure. */
int bp_cli_api_start(const bp_config *cfg, bp_cli_api *out, bp_error *err);
/* bp_cli_api_start for several chains in one process: with --api each chain (names, n) gets
 * a snapshot of its own in out->chain_stats, which the status endpoints pick by ?chain=. */
int bp_cli_api_start_chains(const bp_config *cfg, const char *const *names, size_t n,
                            bp_cli_api *out, bp_error *err);
void bp_cli_api_stop(bp_cli_api *a);

/* blockpipe serve [options]: the API over an existing output until SIGINT / SIGTERM. */
int bp_cmd_serve(int argc, char **argv, volatile sig_atomic_t *stop);

#endif
