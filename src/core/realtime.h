/* realtime.h - where the pipeline learns about new heads in real time, and how fast it
 * commits them.
 *
 * With a WebSocket URL it runs the newHeads client (chain/ws.h) and a small forwarder thread
 * that queues every announced head and wakes the coordinator at once (the fast path: a head
 * is acted on within a millisecond of arriving, not at the next poll). Without one, or while
 * the socket is unhealthy, the coordinator polls over HTTP (hybrid sync).
 *
 * It also keeps the head-to-commit latency histogram: the time from the moment a head was
 * first seen (announced or polled) to the moment the outputs committed that block.
 *
 * Threading: the forwarder thread only pushes heads and calls wake(); every other function
 * is called by the coordinator thread. */
#ifndef BP_CORE_REALTIME_H
#define BP_CORE_REALTIME_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "blockpipe/error.h"
#include "blockpipe/stats.h"
#include "chain/ws.h"
#include "util/buf.h"
#include "util/histogram.h"

#define BP_RT_SEEN 1024 /* recent heads whose first-seen time is remembered */
#define BP_RT_PENDING 256

typedef struct bp_realtime {
    bp_ws_heads *ws; /* NULL: polling only */
    pthread_t forwarder;
    bool forwarder_started;
    volatile int stop;
    void (*wake)(void *ctx);
    void *wake_ctx;

    pthread_mutex_t lock; /* guards pending and seen (the writer thread reports commits) */
    bp_ws_head pending[BP_RT_PENDING];
    size_t pending_head, pending_len;
    uint64_t pending_dropped;

    bool mode_ws; /* the head source right now */
    uint64_t switches, gaps_filled, ws_heads;
    struct {
        uint64_t number;
        int64_t seen_ms;
    } seen[BP_RT_SEEN];
    bp_hist latency_us;
} bp_realtime;

typedef struct bp_realtime_config {
    const char *ws_url; /* NULL: polling only */
    bp_endpoint_auth ws_auth;
    double reconnect_interval_s;
    int max_reconnect_attempts;
    double stale_after_s;
    /* NULL: eth_subscribe newHeads; else the family's own topics (chain/ws.h), whose heads
     * may carry no number (bp_source_ops.ws_events) */
    const bp_ws_protocol *protocol;
    void (*wake)(void *ctx); /* called from the forwarder thread when a head arrives */
    void *wake_ctx;
} bp_realtime_config;

int bp_realtime_start(bp_realtime *rt, const bp_realtime_config *cfg, bp_error *err);
void bp_realtime_stop(bp_realtime *rt);
/* The next announced head, if any (non-blocking). */
bool bp_realtime_take(bp_realtime *rt, bp_ws_head *out);
/* Is the socket the head source now? Logs a switch either way. */
bool bp_realtime_use_ws(bp_realtime *rt);
/* A head was seen (announced or polled) at seen_ms (CLOCK_MONOTONIC); prev is the head
 * before it: a jump of more than one counts the numbers in between as gaps to fill. */
void bp_realtime_seen(bp_realtime *rt, uint64_t number, int64_t seen_ms, bool have_prev,
                      uint64_t prev);
/* Block number was committed by every output at now_ms (any thread). */
void bp_realtime_committed(bp_realtime *rt, uint64_t number, int64_t now_ms);
/* The head source, the socket's state and the head-to-commit latency, for the stats
 * snapshot. */
void bp_realtime_stats(bp_realtime *rt, bp_stats_realtime *out);

#endif
