/* status.h - the status endpoints (/, /health, /ready, /api/sync-status, /api/streaming/stats,
 * /api/realtime/status, /api/realtime/events, /api/websocket/stats) and /metrics, made from
 * the stats snapshot (blockpipe/stats.h) and the push hub's counts. */
#ifndef BP_API_STATUS_H
#define BP_API_STATUS_H

#include <stdbool.h>

#include "api/push.h"
#include "api/request.h"
#include "api/routes.h"
#include "blockpipe/stats.h"
#include "util/buf.h"
#include "util/jsonw.h"

/* Is path one of the /api/... status endpoints? */
bool bp_api_status_route(const char *path);
/* Answers a status path (and /, /health, /ready, /metrics). */
void bp_api_status(bp_api_ctx *c, const bp_api_request *req, bp_api_response *resp);
/* ?chain=NAME where the process runs one chain and NAME is not it: answers 404 and returns true
 * (several chains: bp_api_status answers for the one named). */
bool bp_api_status_other_chain(const bp_api_ctx *c, const bp_api_request *req,
                               bp_api_response *resp);
/* Is the snapshot within lag blocks of its head (and has it a head and a commit)? */
bool bp_api_is_ready(const bp_stats *s, uint64_t lag);

/* The members of /api/sync-status (chains, outputs) into an open object. */
void bp_api_sync_members(bp_jsonw *w, const bp_stats *s, uint64_t ready_lag);
/* What the dashboard draws (head, indexed, rates, totals, endpoints, outputs, push clients)
 * into an open object: the metrics topic's data. */
void bp_api_live_members(bp_jsonw *w, const bp_stats *s, const bp_push_stats *p);

/* The Prometheus text exposition (version 0.0.4) of a snapshot (NULL: none), the push hub's
 * counts (NULL: none) and the API's own counters, appended to out. Names in docs/API.md. */
int bp_api_metrics(const bp_stats *s, uint64_t ready_lag, const bp_push_stats *p,
                   const bp_api_counters *c, bp_buf *out);

#endif
