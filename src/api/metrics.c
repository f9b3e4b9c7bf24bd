/* metrics.c - /metrics: the Prometheus text exposition of the stats snapshot, the push hub and
 * the API's own counters. Names follow Prometheus conventions (blockpipe_ prefix, _total
 * counters, base units: seconds, bytes); the list is in docs/API.md. */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "api/status.h"

typedef struct mw {
    bp_buf *b;
    int rc;
} mw;

static void out(mw *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(mw *m, const char *fmt, ...)
{
    if (m->rc)
        return;
    va_list ap;
    va_start(ap, fmt);
    char line[1024];
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line))
        m->rc = BP_ENOMEM;
    else
        m->rc = bp_buf_append(m->b, line, (size_t)n);
}

static void head(mw *m, const char *name, const char *type, const char *help)
{
    out(m, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value escaped as the format says (backslash, double quote, newline). */
static void label(const char *v, char *o, size_t cap)
{
    size_t n = 0;
    for (; *v && n + 3 < cap; v++) {
        if (*v == '\\' || *v == '"') {
            o[n++] = '\\';
            o[n++] = *v;
        } else if (*v == '\n') {
            o[n++] = '\\';
            o[n++] = 'n';
        } else {
            o[n++] = *v;
        }
    }
    o[n] = '\0';
}

static void value(mw *m, const char *name, const char *labels, double v)
{
    char num[64];
    if (isnan(v))
        snprintf(num, sizeof(num), "NaN");
    else if (v == floor(v) && fabs(v) < 1e15)
        snprintf(num, sizeof(num), "%.0f", v);
    else
        snprintf(num, sizeof(num), "%.6g", v);
    out(m, "%s%s%s%s %s\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "", num);
}

/* A latency histogram in seconds from a snapshot's buckets (ms bounds). */
static void histogram(mw *m, const char *name, const char *labels, const bp_stats_latency *l)
{
    char lab[600], metric[160];
    snprintf(metric, sizeof(metric), "%s_bucket", name);
    for (int i = 0; i < BP_STATS_LE_COUNT; i++) {
        snprintf(lab, sizeof(lab), "%s%sle=\"%g\"", labels, labels[0] ? "," : "",
                 bp_stats_le_ms[i] / 1000.0);
        value(m, metric, lab, (double)l->le[i]);
    }
    snprintf(lab, sizeof(lab), "%s%sle=\"+Inf\"", labels, labels[0] ? "," : "");
    value(m, metric, lab, (double)l->count);
    snprintf(metric, sizeof(metric), "%s_sum", name);
    value(m, metric, labels, l->sum_ms / 1000.0);
    snprintf(metric, sizeof(metric), "%s_count", name);
    value(m, metric, labels, (double)l->count);
}

static void chain_metrics(mw *m, const bp_stats *s, const char *cl)
{
    static const struct {
        const char *name, *type, *help;
        size_t off;
        int kind; /* 0 u64, 1 double, 2 bool */
    } g[] = {
#define U(f) offsetof(bp_stats, f), 0
        {"blockpipe_indexed_block", "gauge",
         "The last block committed by every output not set aside (the lowest checkpoint)",
         U(indexed)},
        {"blockpipe_lag_blocks", "gauge", "Head minus blockpipe_indexed_block", U(lag)},
        {"blockpipe_blocks_total", "counter", "Blocks committed since the start", U(done)},
        {"blockpipe_transactions_total", "counter", "Transactions committed since the start",
         U(txs)},
        {"blockpipe_logs_total", "counter", "Logs committed since the start", U(logs)},
        {"blockpipe_reorgs_total", "counter", "Reorgs handled since the start", U(reorgs)},
        {"blockpipe_blocks_pending", "gauge", "Block numbers scheduled, not fetched yet",
         U(pending)},
        {"blockpipe_blocks_failed", "gauge", "Blocks that used up their retries", U(failed)},
        {"blockpipe_memory_used_bytes", "gauge", "Bytes of blocks the pipeline holds",
         U(memory_used)},
        {"blockpipe_memory_budget_bytes", "gauge", "The chain's memory budget (--max-memory)",
         U(memory_budget)},
        {"blockpipe_memory_blocks_bytes", "gauge",
         "Of the budget, what the fixed part (process, workers, outputs, push ring) leaves for "
         "blocks",
         U(memory_blocks)},
        {"blockpipe_memory_push_ring_bytes", "gauge",
         "The API's push ring, in the process's fixed part (--api-push-ring)", U(memory_push_ring)},
        {"blockpipe_memory_push_bytes", "gauge",
         "The API's push share, in the process's fixed part (--api-push-memory)", U(memory_push)},
        {"blockpipe_memory_push_held_bytes", "gauge",
         "What the push share holds: messages built for push clients and queued (each once)",
         U(memory_push_held)},
#undef U
        {"blockpipe_blocks_per_second", "gauge", "Blocks committed per second (last ~10 s)",
         offsetof(bp_stats, blocks_per_s), 1},
        {"blockpipe_transactions_per_second", "gauge",
         "Transactions committed per second (last ~10 s)", offsetof(bp_stats, txs_per_s), 1},
    };
    head(m, "blockpipe_head_block", "gauge", "The chain head as last seen");
    if (s->have_head)
        value(m, "blockpipe_head_block", cl, (double)s->head);
    for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
        if (i == 0 && !s->have_indexed)
            continue;
        const char *p = (const char *)s + g[i].off;
        head(m, g[i].name, g[i].type, g[i].help);
        value(m, g[i].name, cl, g[i].kind == 1 ? *(const double *)p : (double)*(const uint64_t *)p);
    }
    head(m, "blockpipe_waiting_for_lock", "gauge",
         "1 while another process holds the chain's writer lock (--lock-wait)");
    value(m, "blockpipe_waiting_for_lock", cl, s->lock_waiting);
    head(m, "blockpipe_uptime_seconds", "gauge", "Seconds since the pipeline started");
    value(m, "blockpipe_uptime_seconds", cl, (double)s->uptime_ms / 1000.0);
    head(m, "blockpipe_head_to_commit_seconds", "histogram",
         "From a head first seen to its block committed by every output");
    histogram(m, "blockpipe_head_to_commit_seconds", cl, &s->realtime.head_to_commit);
}

static void endpoint_metrics(mw *m, const bp_stats *s, const char *cl)
{
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } g[] = {
        {"blockpipe_rpc_requests_total", "counter", "HTTP requests sent to the endpoint",
         offsetof(bp_stats_endpoint, requests)},
        {"blockpipe_rpc_errors_total", "counter", "Requests that failed",
         offsetof(bp_stats_endpoint, errors)},
        {"blockpipe_rpc_rate_limited_total", "counter",
         "Answers that said slower (HTTP 429 or -32005)", offsetof(bp_stats_endpoint, rate_limits)},
        {"blockpipe_rpc_ejections_total", "counter", "Times the endpoint was ejected",
         offsetof(bp_stats_endpoint, ejections)},
        {"blockpipe_rpc_blocks_total", "counter", "Blocks fetched from the endpoint",
         offsetof(bp_stats_endpoint, blocks)},
    };
    char labels[BP_STATS_MAX_ENDPOINTS][600];
    for (size_t i = 0; i < s->endpoint_count; i++) {
        char url[2 * BP_STATS_TEXT];
        label(s->endpoints[i].url, url, sizeof(url));
        snprintf(labels[i], sizeof(labels[i]), "%s,endpoint=\"%s\"", cl, url);
    }
    for (size_t k = 0; k < sizeof(g) / sizeof(g[0]); k++) {
        head(m, g[k].name, g[k].type, g[k].help);
        for (size_t i = 0; i < s->endpoint_count; i++)
            value(m, g[k].name, labels[i],
                  (double)*(const uint64_t *)((const char *)&s->endpoints[i] + g[k].off));
    }
    head(m, "blockpipe_rpc_up", "gauge", "1 while the endpoint is used (healthy or rate-limited)");
    for (size_t i = 0; i < s->endpoint_count; i++) {
        const char *st = s->endpoints[i].state;
        value(m, "blockpipe_rpc_up", labels[i],
              strcmp(st, "healthy") == 0 || strcmp(st, "rate-limited") == 0);
    }
    head(m, "blockpipe_rpc_in_flight", "gauge", "Requests in flight to the endpoint");
    for (size_t i = 0; i < s->endpoint_count; i++)
        value(m, "blockpipe_rpc_in_flight", labels[i], s->endpoints[i].in_flight);
    head(m, "blockpipe_rpc_head_block", "gauge", "The head the endpoint last named");
    for (size_t i = 0; i < s->endpoint_count; i++)
        if (s->endpoints[i].head_known)
            value(m, "blockpipe_rpc_head_block", labels[i], (double)s->endpoints[i].head);
    head(m, "blockpipe_rpc_request_duration_seconds", "histogram",
         "Time of one HTTP request to the endpoint");
    for (size_t i = 0; i < s->endpoint_count; i++)
        histogram(m, "blockpipe_rpc_request_duration_seconds", labels[i], &s->endpoints[i].latency);
}

static void output_metrics(mw *m, const bp_stats *s, const char *cl)
{
    char labels[BP_STATS_MAX_OUTPUTS][600];
    for (size_t i = 0; i < s->output_count; i++) {
        char url[2 * BP_STATS_TEXT];
        label(s->outputs[i].url, url, sizeof(url));
        snprintf(labels[i], sizeof(labels[i]), "%s,output=\"%s\"", cl, url);
    }
    head(m, "blockpipe_output_checkpoint_block", "gauge", "The last block the output holds");
    for (size_t i = 0; i < s->output_count; i++)
        if (s->outputs[i].checkpoint_set)
            value(m, "blockpipe_output_checkpoint_block", labels[i],
                  (double)s->outputs[i].checkpoint);
    head(m, "blockpipe_output_lag_blocks", "gauge", "Head minus the output's checkpoint");
    for (size_t i = 0; i < s->output_count; i++)
        value(m, "blockpipe_output_lag_blocks", labels[i], (double)s->outputs[i].lag);
    head(m, "blockpipe_output_set_aside", "gauge",
         "1 when the output failed and is skipped (--output-failure continue)");
    for (size_t i = 0; i < s->output_count; i++)
        value(m, "blockpipe_output_set_aside", labels[i], s->outputs[i].set_aside);
    head(m, "blockpipe_output_retrying", "gauge",
         "1 while a failed write to the output (or read back to its checkpoint) is tried again");
    for (size_t i = 0; i < s->output_count; i++)
        value(m, "blockpipe_output_retrying", labels[i],
              strcmp(s->outputs[i].state, "retrying") == 0);
    head(m, "blockpipe_output_write_seconds", "histogram", "Time to write one batch to the output");
    for (size_t i = 0; i < s->output_count; i++)
        histogram(m, "blockpipe_output_write_seconds", labels[i], &s->outputs[i].write);
}

static void socket_metrics(mw *m, const bp_stats *s, const char *cl)
{
    const bp_stats_realtime *r = &s->realtime;
    head(m, "blockpipe_ws_connected", "gauge", "1 while the node's WebSocket is connected");
    value(m, "blockpipe_ws_connected", cl, r->connected);
    head(m, "blockpipe_ws_subscribed", "gauge", "1 while the newHeads subscription is live");
    value(m, "blockpipe_ws_subscribed", cl, r->subscribed);
    head(m, "blockpipe_ws_reconnects_total", "counter", "Reconnects of the node's WebSocket");
    value(m, "blockpipe_ws_reconnects_total", cl, (double)r->reconnects);
    head(m, "blockpipe_ws_heads_total", "counter", "Heads the node's WebSocket announced");
    value(m, "blockpipe_ws_heads_total", cl, (double)r->heads);
    head(m, "blockpipe_gaps_filled_total", "counter", "Blocks fetched between announced heads");
    value(m, "blockpipe_gaps_filled_total", cl, (double)r->gaps_filled);
}

static void push_metrics(mw *m, const bp_push_stats *p)
{
    head(m, "blockpipe_push_clients", "gauge", "Push clients connected");
    value(m, "blockpipe_push_clients", "transport=\"websocket\"", (double)p->ws_clients);
    value(m, "blockpipe_push_clients", "transport=\"sse\"", (double)p->sse_clients);
    head(m, "blockpipe_push_messages_total", "counter", "Push messages queued to clients");
    value(m, "blockpipe_push_messages_total", "", (double)p->messages);
    head(m, "blockpipe_push_dropped_clients_total", "counter",
         "Push clients disconnected for being too slow");
    value(m, "blockpipe_push_dropped_clients_total", "", (double)p->dropped);
    head(m, "blockpipe_reorg_depth_blocks", "histogram", "Blocks reverted per reorg");
    for (int i = 0; i < BP_PUSH_DEPTH_LE; i++) {
        char lab[32];
        snprintf(lab, sizeof(lab), "le=\"%d\"", 1 << i);
        value(m, "blockpipe_reorg_depth_blocks_bucket", lab, (double)p->depth_le[i]);
    }
    value(m, "blockpipe_reorg_depth_blocks_bucket", "le=\"+Inf\"", (double)p->reorgs);
    value(m, "blockpipe_reorg_depth_blocks_sum", "", (double)p->depth_sum);
    value(m, "blockpipe_reorg_depth_blocks_count", "", (double)p->reorgs);
}

static void api_metrics(mw *m, const bp_api_counters *c)
{
    head(m, "blockpipe_api_requests_total", "counter", "API requests answered, by route and code");
    for (int r = 0; r < BP_ROUTE_COUNT; r++)
        for (int k = 0; k < BP_CODE_COUNT; k++) {
            uint64_t n = atomic_load_explicit(&c->requests[r][k], memory_order_relaxed);
            if (!n)
                continue;
            char lab[160];
            snprintf(lab, sizeof(lab), "route=\"%s\",code=\"%s\"", bp_api_route_name(r),
                     bp_api_code_name(k));
            value(m, "blockpipe_api_requests_total", lab, (double)n);
        }
    head(m, "blockpipe_api_connections_total", "counter", "Connections accepted by the API");
    value(m, "blockpipe_api_connections_total", "",
          (double)atomic_load_explicit(&c->connections, memory_order_relaxed));
    head(m, "blockpipe_api_rejected_connections_total", "counter",
         "Connections refused (too many in all or from one address)");
    value(m, "blockpipe_api_rejected_connections_total", "",
          (double)atomic_load_explicit(&c->rejected_connections, memory_order_relaxed));
    head(m, "blockpipe_api_request_duration_seconds", "histogram",
         "From a REST request read to its answer ready");
    uint64_t cum = 0;
    for (int i = 0; i <= BP_STATS_LE_COUNT; i++) {
        char lab[32];
        cum += atomic_load_explicit(&c->latency_le[i], memory_order_relaxed);
        if (i < BP_STATS_LE_COUNT)
            snprintf(lab, sizeof(lab), "le=\"%g\"", bp_stats_le_ms[i] / 1000.0);
        else
            snprintf(lab, sizeof(lab), "le=\"+Inf\"");
        value(m, "blockpipe_api_request_duration_seconds_bucket", lab, (double)cum);
    }
    value(m, "blockpipe_api_request_duration_seconds_sum", "",
          (double)atomic_load_explicit(&c->latency_sum_us, memory_order_relaxed) / 1e6);
    value(m, "blockpipe_api_request_duration_seconds_count", "", (double)cum);
}

int bp_api_metrics(const bp_stats *s, uint64_t ready_lag, const bp_push_stats *p,
                   const bp_api_counters *c, bp_buf *b)
{
    mw m = {.b = b};
    head(&m, "blockpipe_up", "gauge", "1: the process answers");
    value(&m, "blockpipe_up", "", 1);
    if (s) {
        char chain[2 * sizeof(s->chain)], cl[300];
        label(s->chain, chain, sizeof(chain));
        snprintf(cl, sizeof(cl), "chain=\"%s\"", chain);
        head(&m, "blockpipe_ready", "gauge",
             "1 when the chain is within --ready-lag of its head, not stuck on a failing block "
             "and no output whose failure stops the run is failing");
        value(&m, "blockpipe_ready", cl, bp_api_is_ready(s, ready_lag));
        chain_metrics(&m, s, cl);
        endpoint_metrics(&m, s, cl);
        output_metrics(&m, s, cl);
        socket_metrics(&m, s, cl);
    }
    if (p)
        push_metrics(&m, p);
    api_metrics(&m, c);
    return m.rc;
}
