/* routes.h - what each REST path answers. Runs on the API's worker threads: a route may wait
 * for its database (the worker's own read-only connection), never for the pipeline. */
#ifndef BP_API_ROUTES_H
#define BP_API_ROUTES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/api.h"
#include "api/request.h"
#include "blockpipe/keyed.h"
#include "blockpipe/sink.h"
#include "util/buf.h"
#include "util/jsonw.h"

#define BP_API_BODY_MAX (64u << 20) /* an answer larger than this is a 500, never a crash */
#define BP_API_LIMIT_DEFAULT 20
#define BP_API_LIMIT_MAX 1000

typedef struct bp_api_response {
    int status;
    const char *type; /* Content-Type */
    bp_buf body;
    char headers[256]; /* extra header lines, each "name: value\r\n" */
} bp_api_response;

/* What the API counts, for /metrics (any thread). */
enum bp_api_route_id {
    BP_ROUTE_OTHER,
    BP_ROUTE_ROOT,
    BP_ROUTE_HEALTH,
    BP_ROUTE_READY,
    BP_ROUTE_METRICS,
    BP_ROUTE_STATUS, /* the /api/... status endpoints */
    BP_ROUTE_BLOCKS,
    BP_ROUTE_BLOCK,
    BP_ROUTE_TXS,
    BP_ROUTE_TX,
    BP_ROUTE_LOGS,
    BP_ROUTE_ANALYTICS,
    BP_ROUTE_PREDICTIONS,
    BP_ROUTE_STREAMING, /* /api/v1/streaming/... */
    BP_ROUTE_WS,
    BP_ROUTE_SSE,
    BP_ROUTE_ARCH_BLOCKS, /* /api/arch/... (arch.c) */
    BP_ROUTE_ARCH_BLOCK,
    BP_ROUTE_ARCH_TXS,
    BP_ROUTE_ARCH_TX,
    BP_ROUTE_ARCH_ACCOUNTS,
    BP_ROUTE_ARCH_EVENTS,
    BP_ROUTE_COUNT
};
enum bp_api_code_id {
    BP_CODE_2XX,
    BP_CODE_400,
    BP_CODE_401,
    BP_CODE_403,
    BP_CODE_404,
    BP_CODE_405,
    BP_CODE_413,
    BP_CODE_429,
    BP_CODE_4XX,
    BP_CODE_503,
    BP_CODE_5XX,
    BP_CODE_COUNT
};

typedef struct bp_api_counters {
    _Atomic uint64_t requests[BP_ROUTE_COUNT][BP_CODE_COUNT];
    _Atomic uint64_t connections, rejected_connections;
    _Atomic uint64_t latency_le[BP_STATS_LE_COUNT + 1]; /* REST answer time, last: +Inf */
    _Atomic uint64_t latency_sum_us;
} bp_api_counters;

/* The answer of /api/blocks/latest, kept until the next commit: with a pipeline the push hub
 * counts commits (bp_push_commits), so the answer is exact; serving a database another process
 * writes, nothing says when it commits and the answer is kept BP_API_LATEST_TTL_MS at most. */
#define BP_API_LATEST_TTL_MS 100
typedef struct bp_api_latest {
    pthread_mutex_t lock;
    bool valid;
    uint64_t commits;  /* bp_push_commits when it was read */
    int64_t stored_ms; /* monotonic */
    char chain[128];   /* the chain asked for ("" none) */
    bp_buf body;
} bp_api_latest;

/* Shared by every worker (read-only after start but for the atomics and the cache). */
typedef struct bp_api_ctx {
    const bp_api_config *cfg;
    bp_api_counters counters;
    int64_t started_ms; /* monotonic */
    bp_api_latest latest;
} bp_api_ctx;

void bp_api_latest_init(bp_api_latest *l);
void bp_api_latest_release(bp_api_latest *l);

/* One per worker thread. */
typedef struct bp_api_worker {
    bp_sink_reader *reader;
    char chain[128];       /* the chain found in the database when none is configured ("": none) */
    int64_t chain_at;      /* when it was looked for (monotonic ms) */
    int64_t retry_open_ms; /* after a failed open, not before (monotonic) */
    char open_error[BP_ERROR_MSG_MAX];
    bp_keyed *keyed; /* the keyed streams' store, opened on first use */
    int64_t keyed_retry_ms;
    char keyed_error[BP_ERROR_MSG_MAX];
} bp_api_worker;

void bp_api_worker_release(bp_api_worker *w);

/* The route a path belongs to (for counting) and whether the workers answer it. */
enum bp_api_route_id bp_api_route_of(const char *path);
const char *bp_api_route_name(enum bp_api_route_id r);
const char *bp_api_code_name(enum bp_api_code_id c);
void bp_api_count(bp_api_ctx *c, enum bp_api_route_id r, int status);

/* Answers req into resp (resp->body empty and status 0 on entry). */
void bp_api_route(bp_api_ctx *c, bp_api_worker *w, const bp_api_request *req,
                  bp_api_response *resp);

/* {"error": message, "status": N} */
void bp_api_error(bp_api_response *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A read's error as its answer: 400 (BP_EINVAL), 404 (BP_ENOTFOUND) or 503. */
void bp_api_from_error(bp_api_response *resp, const bp_error *e);
/* The worker's reader of the output, opened on first use; NULL with a 503 in resp when there is
 * none or it cannot be opened. */
bp_sink_reader *bp_api_reader(bp_api_ctx *c, bp_api_worker *w, bp_api_response *resp);
/* The parameters every list takes but its cursor: limit (default BP_API_LIMIT_DEFAULT), order
 * (desc|asc) and the block range (from_block / to_block, from / to, block) into q. */
int bp_api_list_range(const bp_api_request *req, bp_read_query *q, bp_error *err);
/* A list's answer to q (q->chain set) from r: {"data": [...], "count": n, "next_cursor"}. */
typedef void bp_api_list_answer(bp_api_response *resp, bp_sink_reader *r, const bp_read_query *q);
/* The end every list handler shares: the error of its parameters (rc, err) answered, else q
 * for the request's chain (bp_api_chain) answered by answer from the worker's reader. */
void bp_api_list(bp_api_ctx *c, bp_api_worker *wk, const bp_api_request *req, bp_api_response *resp,
                 int rc, const bp_error *err, bp_read_query *q, bp_api_list_answer *answer);
/* resp's status from the writer: 200, or 500 when the answer outgrew BP_API_BODY_MAX. */
void bp_api_finish(bp_api_response *resp, const bp_jsonw *w);

/* The derived-table endpoints (analytics.c). */
void bp_api_analytics(bp_api_ctx *c, bp_api_worker *w, const bp_api_request *req,
                      bp_api_response *resp);
void bp_api_predictions(bp_api_ctx *c, bp_api_worker *w, const bp_api_request *req,
                        bp_api_response *resp);
/* /api/arch/... (arch.c): an Arch Network chain's tables; route is one of BP_ROUTE_ARCH_*. */
void bp_api_arch(bp_api_ctx *c, bp_api_worker *w, const bp_api_request *req, bp_api_response *resp,
                 enum bp_api_route_id route);
/* /api/v1/streaming/... (streams.c). */
/* Whether req is a latest read or a publication: answered with others by
 * bp_api_streaming_batch. */
bool bp_api_streaming_batchable(const bp_api_request *req);
/* Answers reqs[i] into resps[i] (each batchable), their store operations in one round. */
void bp_api_streaming_batch(bp_api_ctx *c, bp_api_worker *w, const bp_api_request *const *reqs,
                            bp_api_response *const *resps, size_t n);
void bp_api_streaming(bp_api_ctx *c, bp_api_worker *w, const bp_api_request *req,
                      bp_api_response *resp);

/* The chain a request is about: ?chain, else the configured one, else the snapshot's, else
 * (serve) the chain of the database's first block row, NULL when it has none. Copied into
 * buf. Without a chain the block number orders nothing by its index: every list would sort
 * the whole table. */
const char *bp_api_chain(const bp_api_ctx *c, bp_api_worker *w, const bp_api_request *req,
                         char *buf, size_t cap);

#endif
