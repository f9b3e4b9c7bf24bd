/* api.h - the HTTP API: REST over an output's tables, status endpoints and /metrics from the
 * stats snapshot, WebSocket and Server-Sent Events push, on one port (libwebsockets).
 *
 * Threads: one libwebsockets service thread does all the socket I/O and never waits for a
 * database; REST queries run on a pool of worker threads, each with a read-only connection of
 * its own to the output (never the writer's); the push hub (api/push.h) has a thread of its
 * own. Nothing here ever waits for the pipeline or makes it wait: the pipeline publishes its
 * stats snapshot and hands committed batches to the push hub, which copies their headers into
 * a bounded ring.
 *
 * Limits (docs/API.md): request headers, body and time; per-client token bucket (429 with
 * Retry-After); open connections; push clients, their queues and how far behind they
 * may fall. */
#ifndef BP_API_API_H
#define BP_API_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/error.h"
#include "blockpipe/sink.h"
#include "blockpipe/stats.h"

typedef struct bp_push_hub bp_push_hub;

typedef struct bp_api_config {
    const char *listen;               /* "HOST:PORT" (port 0: any free port, see bp_api_port) */
    const char *read_url;             /* the output the REST endpoints read, NULL: none */
    const char *stream_store;         /* keyed streams (blockpipe/keyed.h), NULL: none */
    const bp_sink_settings *settings; /* its options (flags, environment, config file) */
    const char *chain;                /* default chain filter; NULL: the snapshot's chain */
    bp_stats_hub *stats;              /* the pipeline's snapshot; NULL: serving without one */
    /* `serve`: no pipeline; stats is the database's newest block, polled (cli/serve_follow.h),
     * and /ready asks the database */
    bool serving;
    /* Several chains in one process: each chain's snapshot by name (the status endpoints'
     * ?chain=NAME; stats is the first's). 0: one chain. */
    const char *const *chain_names;
    bp_stats_hub *const *chain_stats;
    size_t chain_count;
    bp_push_hub *push;              /* NULL: no push endpoints */
    const char *token;              /* Bearer token; NULL: none */
    bool token_reads;               /* the token is required for reads too */
    double rate;                    /* requests per second per client address; 0: no limit */
    double burst;                   /* bucket size (0: 2 x rate) */
    const char *cors;               /* allowed origins ("*" or a comma list); NULL: no CORS */
    const char *tls_cert, *tls_key; /* both or neither: HTTPS / WSS */
    int threads;                    /* REST worker threads */
    uint64_t ready_lag;             /* /ready: at most this many blocks behind the head */
    size_t max_body;                /* request body bytes */
    double request_timeout;         /* seconds for a request (headers to answer) */
    int max_connections;            /* open connections in all */
} bp_api_config;

typedef struct bp_api bp_api;

/* Starts listening and the threads. BP_EINVAL for a bad listen address, TLS files or a port in
 * use (naming it). */
int bp_api_start(const bp_api_config *cfg, bp_api **out, bp_error *err);
/* The port listened on (the real one when the config said 0). */
int bp_api_port(const bp_api *a);
/* Closes every connection (push clients get close 1001 "server stopping") and joins the
 * threads. Accepts NULL. */
void bp_api_stop(bp_api *a);

#endif
