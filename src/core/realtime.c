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
        .reconnect_interval_s = cfg->reconnect_interval_s,
        .max_reconnect_attempts = cfg->max_reconnect_attempts,
        .stale_after_s = cfg->stale_after_s,
    };
    int rc = bp_ws_heads_start(&rt->ws, &wc, err);
    if (rc != 0)
        return bp_error_prefix(err, "--ws: ");
    if (pthread_create(&rt->forwarder, NULL, forward_heads, rt) != 0)
        return bp_error_set(err, BP_ENOMEM, "cannot start the head forwarder thread");
    rt->forwarder_started = true;
    bp_info("realtime: new heads from %s (eth_subscribe newHeads); HTTP polling is the "
            "fallback",
            cfg->ws_url);
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

static void format_ws(bp_realtime *rt, bp_buf *out)
{
    bp_ws_status st;
    bp_ws_heads_status(rt->ws, &st);
    bp_buf_printf(out,
                  " ws=%s endpoint=%s connected=%s messages=%" PRIu64 " heads=%" PRIu64
                  " reconnects=%" PRIu64 " heads/s=%.2f",
                  bp_ws_state_name(st.state), st.endpoint, st.connected ? "yes" : "no", st.messages,
                  st.heads, st.reconnects, st.heads_per_s);
    if (st.have_head)
        bp_buf_printf(out, " last_head=%" PRIu64, st.last_head_number);
    if (!st.subscribed && st.last_error[0]) {
        /* The error may quote the peer's text: escape " and \ so the value ends at its own
         * closing quote (a bad message's quotes used to cut the field short). */
        bp_buf_puts(out, " last_error=\"");
        for (size_t i = 0; i < 160 && st.last_error[i]; i++) {
            char c = st.last_error[i];
            if (c == '"' || c == '\\')
                bp_buf_putc(out, '\\');
            bp_buf_putc(out, c);
        }
        bp_buf_putc(out, '"');
    }
}

void bp_realtime_format(bp_realtime *rt, bp_buf *out)
{
    bp_hist_summary s;
    bp_hist_summarize(&rt->latency_us, &s);
    bp_buf_printf(out, "realtime mode=%s", rt->mode_ws ? "websocket" : "polling");
    if (rt->ws)
        format_ws(rt, out);
    bp_buf_printf(out,
                  " gaps_filled=%" PRIu64 " switches=%" PRIu64 " head_to_commit_ms count=%" PRIu64
                  " p50=%.1f p90=%.1f p99=%.1f max=%.1f",
                  rt->gaps_filled, rt->switches, s.count, (double)s.p50 / 1000.0,
                  (double)s.p90 / 1000.0, (double)s.p99 / 1000.0, (double)s.max / 1000.0);
}
