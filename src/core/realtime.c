/* realtime.c - WebSocket head source, hybrid-sync mode, head-to-commit latency. */
#include "core/realtime.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "util/log.h"

static void *forward_heads(void *arg)
{
    bp_realtime *rt = arg;
    while (!rt->stop) {
        bp_ws_head h;
        if (bp_ws_heads_next(rt->ws, &h, 200) != 1)
            continue;
        pthread_mutex_lock(&rt->lock);
        if (rt->pending_len == BP_RT_PENDING) { /* the coordinator is far behind: keep new */
            rt->pending_head = (rt->pending_head + 1) % BP_RT_PENDING;
            rt->pending_len--;
            rt->pending_dropped++;
        }
        rt->pending[(rt->pending_head + rt->pending_len) % BP_RT_PENDING] = h;
        rt->pending_len++;
        pthread_mutex_unlock(&rt->lock);
        rt->wake(rt->wake_ctx);
    }
    return NULL;
}

int bp_realtime_start(bp_realtime *rt, const bp_realtime_config *cfg, bp_error *err)
{
    memset(rt, 0, sizeof(*rt));
    pthread_mutex_init(&rt->lock, NULL);
    bp_hist_init(&rt->latency_us);
    rt->wake = cfg->wake;
    rt->wake_ctx = cfg->wake_ctx;
    if (!cfg->ws_url)
        return 0;
    bp_ws_config wc = {
        .url = cfg->ws_url,
        .auth = cfg->ws_auth,
        .reconnect_interval_s = cfg->reconnect_interval_s,
        .max_reconnect_attempts = cfg->max_reconnect_attempts,
        .stale_after_s = cfg->stale_after_s,
        .protocol = cfg->protocol,
    };
    int rc = bp_ws_heads_start(&rt->ws, &wc, err);
    if (rc != 0)
        return bp_error_prefix(err, "--ws: ");
    if (bp_thread_create(&rt->forwarder, NULL, forward_heads, rt) != 0)
        return bp_error_set(err, BP_ENOMEM, "cannot start the head forwarder thread");
    rt->forwarder_started = true;
    bp_ws_status st;
    bp_ws_heads_status(rt->ws, &st);
    bp_info("realtime: new heads from %s (%s); HTTP polling is the fallback", st.endpoint,
            cfg->protocol ? cfg->protocol->what : "eth_subscribe newHeads");
    return 0;
}

void bp_realtime_stop(bp_realtime *rt)
{
    rt->stop = 1;
    if (rt->forwarder_started)
        pthread_join(rt->forwarder, NULL);
    if (rt->ws)
        bp_ws_heads_stop(rt->ws);
    rt->ws = NULL;
    pthread_mutex_destroy(&rt->lock);
}

bool bp_realtime_take(bp_realtime *rt, bp_ws_head *out)
{
    if (!rt->ws)
        return false;
    pthread_mutex_lock(&rt->lock);
    bool got = rt->pending_len > 0;
    if (got) {
        *out = rt->pending[rt->pending_head];
        rt->pending_head = (rt->pending_head + 1) % BP_RT_PENDING;
        rt->pending_len--;
        rt->ws_heads++;
    }
    pthread_mutex_unlock(&rt->lock);
    return got;
}

bool bp_realtime_use_ws(bp_realtime *rt)
{
    bool ws = rt->ws && bp_ws_heads_healthy(rt->ws);
    if (ws == rt->mode_ws)
        return ws;
    rt->mode_ws = ws;
    rt->switches++;
    if (ws) {
        bp_info("realtime: head source is the websocket; HTTP polling slows to a heartbeat");
    } else {
        bp_ws_status st;
        bp_ws_heads_status(rt->ws, &st);
        bp_warn("realtime: head source is HTTP polling (websocket %s%s%s)",
                bp_ws_state_name(st.state), st.last_error[0] ? ": " : "", st.last_error);
    }
    return ws;
}

void bp_realtime_seen(bp_realtime *rt, uint64_t number, int64_t seen_ms, bool have_prev,
                      uint64_t prev)
{
    if (have_prev && number > prev + 1)
        rt->gaps_filled += number - prev - 1;
    size_t i = number % BP_RT_SEEN;
    pthread_mutex_lock(&rt->lock); /* committed() runs on the writer thread */
    if (rt->seen[i].number != number || rt->seen[i].seen_ms == 0) {
        rt->seen[i].number = number;
        rt->seen[i].seen_ms = seen_ms;
    }
    pthread_mutex_unlock(&rt->lock);
}

void bp_realtime_committed(bp_realtime *rt, uint64_t number, int64_t now_ms)
{
    size_t i = number % BP_RT_SEEN;
    pthread_mutex_lock(&rt->lock);
    int64_t seen_ms = 0;
    if (rt->seen[i].number == number) {
        seen_ms = rt->seen[i].seen_ms;
        rt->seen[i].seen_ms = 0; /* count each block once, even if reorged and re-applied */
    }
    pthread_mutex_unlock(&rt->lock);
    if (seen_ms == 0)
        return; /* a block from history: never announced, no latency to speak of */
    int64_t us = (now_ms - seen_ms) * 1000;
    bp_hist_add(&rt->latency_us, us > 0 ? (uint64_t)us : 0);
}

static void ws_stats(bp_realtime *rt, bp_stats_realtime *o)
{
    bp_ws_status st;
    bp_ws_heads_status(rt->ws, &st);
    o->ws_configured = true;
    snprintf(o->ws_state, sizeof(o->ws_state), "%s", bp_ws_state_name(st.state));
    snprintf(o->ws_endpoint, sizeof(o->ws_endpoint), "%s", st.endpoint);
    o->connected = st.connected;
    o->subscribed = st.subscribed;
    o->messages = st.messages;
    o->heads = st.heads;
    o->reconnects = st.reconnects;
    o->heads_per_s = st.heads_per_s;
    o->have_last_head = st.have_head;
    o->last_head = st.last_head_number;
    snprintf(o->last_error, sizeof(o->last_error), "%.*s", (int)sizeof(o->last_error) - 1,
             st.last_error);
}

void bp_realtime_stats(bp_realtime *rt, bp_stats_realtime *out)
{
    memset(out, 0, sizeof(*out));
    out->websocket = rt->mode_ws;
    if (rt->ws)
        ws_stats(rt, out);
    out->gaps_filled = rt->gaps_filled;
    out->switches = rt->switches;
    bp_hist_latency_ms(&rt->latency_us, &out->head_to_commit);
}
