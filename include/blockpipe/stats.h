/* stats.h - one snapshot of a chain's pipeline: head, progress, endpoints, real time, outputs.
 *
 * The pipeline publishes a bp_stats into a bp_stats_hub a few times a second (and before every
 * stats line); any thread reads the latest with bp_stats_hub_read(), which copies it under the
 * hub's lock and never waits for the pipeline. The stats log line, the API's status endpoints
 * and the Prometheus metrics all read the same snapshot.
 *
 * Every URL in it is shown without credentials (bp_url_redact). Counters are cumulative since
 * the pipeline started; rates are over the last few seconds. */
#ifndef BLOCKPIPE_STATS_H
#define BLOCKPIPE_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "blockpipe/export.h"

#define BP_STATS_MAX_ENDPOINTS 16
#define BP_STATS_MAX_OUTPUTS 16
#define BP_STATS_TEXT 256

/* Bucket bounds of the latency histograms (ms), for Prometheus: le[i] counts the values at or
 * below bp_stats_le_ms[i] (to the recording histogram's resolution: 8 buckets per power of
 * two, so a value up to 12.5% below a bound may be counted in the next one). */
#define BP_STATS_LE_COUNT 14
BP_EXPORT extern const double bp_stats_le_ms[BP_STATS_LE_COUNT];

typedef struct bp_stats_latency {
    uint64_t count;
    double p50_ms, p90_ms, p99_ms, max_ms;
    double sum_ms;
    uint64_t le[BP_STATS_LE_COUNT]; /* cumulative; count is the +Inf bucket */
} bp_stats_latency;

typedef struct bp_stats_endpoint {
    char url[BP_STATS_TEXT];
    char state[16]; /* healthy, ejected, probing, rate-limited, unchecked, other-chain */
    bool head_known;
    uint64_t head;
    int in_flight, limit, batch; /* requests now, concurrency cap, blocks per request */
    double rps;                  /* requests per second it is held to (learnt or set); 0: none */
    bool rate_limited;           /* it answered 429 / -32005 within the last minute */
    uint64_t requests, errors, rate_limits, ejections, blocks;
    bp_stats_latency latency; /* per request (p50, p99 and max filled) */
    /* What its answers taught it refuses: "no-batches", "batch<=10", "answers<=512KiB",
     * "no-eth_getBlockReceipts" (comma-separated); "" when nothing. */
    char limits[80];
} bp_stats_endpoint;

typedef struct bp_stats_output {
    char url[BP_STATS_TEXT];
    bool checkpoint_set;
    uint64_t checkpoint; /* the last block it holds */
    char checkpoint_hash[67];
    uint64_t lag;           /* head - checkpoint, 0 when either is unknown */
    bool set_aside;         /* --output-failure continue: failed, skipped for the rest of the run */
    bp_stats_latency write; /* per batch written to it */
    /* "ok"; "retrying": a write to it (or a read back to its checkpoint) failed and is tried
     * again, error says why; "set-aside" (set_aside); "failed": it failed for good, the run
     * stops with its error */
    char state[16];
    char error[BP_STATS_TEXT]; /* its last failure while not "ok", "" else */
    /* its failure stops the run (without --output-failure continue, or no other output left):
     * while it is retrying or failed the chain is not ready */
    bool failure_stops;
} bp_stats_output;

typedef struct bp_stats_realtime {
    bool websocket;     /* the head source now is the WebSocket (else HTTP polling) */
    bool ws_configured; /* a --ws URL is in use */
    char ws_state[16];  /* connecting, subscribing, subscribed, backoff, given_up, ... */
    char ws_endpoint[BP_STATS_TEXT];
    bool connected, subscribed;
    uint64_t messages, heads, reconnects;
    double heads_per_s;
    bool have_last_head;
    uint64_t last_head;
    char last_error[BP_STATS_TEXT]; /* "" when none */
    uint64_t gaps_filled, switches;
    bp_stats_latency head_to_commit; /* head first seen -> committed by every output */
} bp_stats_realtime;

typedef struct bp_stats {
    uint64_t version;          /* 0: nothing published yet; grows with every publication */
    int64_t published_unix_ms; /* wall clock of the publication */
    int64_t uptime_ms;         /* since the pipeline started */
    char chain[64];
    uint64_t chain_id;
    bool backfill; /* a range, not following the head */
    bool have_head;
    uint64_t head;
    bool have_indexed;
    uint64_t indexed; /* the last block committed by every output not set aside: the lowest of
                       * their checkpoints (have_indexed false until each has one); without
                       * outputs, the newest block ordered */
    uint64_t lag;     /* head - indexed */
    /* Where the pipeline is going now: a backfill's --to (while the head, less the
     * confirmations, has not reached it: that), a run's head less the confirmations; false
     * while it is not known (no head yet, the node's finalized block not told yet). left: the
     * blocks up to target not committed yet (0 at it), what an ETA counts. */
    bool have_target;
    uint64_t target, left;
    uint64_t pending, processing, done, failed;
    uint64_t txs, logs, reorgs;     /* committed since the start (reverted blocks subtracted) */
    double blocks_per_s, txs_per_s; /* over the last ~10 s */
    int workers;
    bool lock_waiting; /* not started: another process holds the chain's writer lock in an
                        * output (--lock-wait); lock_holder names it */
    char lock_holder[BP_STATS_TEXT];
    bool waiting; /* the commit waits on a block that keeps failing */
    uint64_t waiting_on;
    char waiting_error[BP_STATS_TEXT];
    size_t outputs_set_aside;
    uint64_t memory_used, memory_budget; /* bytes the pipeline holds / may hold; 0: unknown */
    /* Of memory_budget: what is left for blocks once the fixed part is charged (with several
     * chains: this chain's reserve and the common part), and the API's push ring, in the
     * process's fixed part (0: no API; one ring for every chain of the process). */
    uint64_t memory_blocks, memory_push_ring;
    /* The API's push share in that fixed part (--api-push-memory: the messages built for the
     * push clients and their queues) and what it holds now (0: no API). */
    uint64_t memory_push, memory_push_held;
    size_t endpoint_count;
    bp_stats_endpoint endpoints[BP_STATS_MAX_ENDPOINTS];
    size_t output_count;
    bp_stats_output outputs[BP_STATS_MAX_OUTPUTS];
    bool following; /* run: the realtime part is meaningful */
    bp_stats_realtime realtime;
} bp_stats;

typedef struct bp_stats_hub bp_stats_hub;

/* NULL when out of memory. */
BP_EXPORT bp_stats_hub *bp_stats_hub_new(void);
BP_EXPORT void bp_stats_hub_free(bp_stats_hub *h);
/* The latest snapshot (out->version == 0 before the first). Any thread. */
BP_EXPORT void bp_stats_hub_read(bp_stats_hub *h, bp_stats *out);
/* Replaces the snapshot (the pipeline's coordinator). */
BP_EXPORT void bp_stats_hub_publish(bp_stats_hub *h, const bp_stats *s);

#endif
