/* status.c - the status endpoints, made from the stats snapshot and the push hub's counts. */
#include "api/clock.h"
#include "api/status.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/jsonw.h"

static const char *const g_status_paths[] = {
    "/api/sync-status",     "/api/streaming/stats", "/api/realtime/status",
    "/api/realtime/events", "/api/websocket/stats", NULL,
};

bool bp_api_status_route(const char *path)
{
    for (const char *const *p = g_status_paths; *p; p++)
        if (strcmp(path, *p) == 0)
            return true;
    return false;
}

/* An output whose failure would stop the run is failing: retrying (its write, or a read back
 * to its checkpoint) or failed for good. Nothing it is handed commits meanwhile. */
static bool output_failing(const bp_stats *s)
{
    for (size_t i = 0; i < s->output_count; i++) {
        const bp_stats_output *o = &s->outputs[i];
        if (o->failure_stops &&
            (strcmp(o->state, "retrying") == 0 || strcmp(o->state, "failed") == 0))
            return true;
    }
    return false;
}

/* serve's snapshot (cli/serve_follow.h): the database's newest block, no node, no workers */
static bool serving(const bp_stats *s)
{
    return !s->endpoint_count && !s->workers && !s->have_head;
}

bool bp_api_is_ready(const bp_stats *s, uint64_t lag)
{
    if (s->version && serving(s)) /* as serve's /ready: the database answers, with the chain */
        return s->have_indexed;
    return s->version && s->have_head && s->have_indexed && !s->waiting && !s->lock_waiting &&
           !output_failing(s) && (s->head <= s->indexed || s->head - s->indexed <= lag);
}

static void num(bp_jsonw *w, const char *key, double v)
{
    char text[64];
    bp_jsonw_key(w, key);
    if (!isfinite(v)) {
        bp_jsonw_null(w);
        return;
    }
    int n = snprintf(text, sizeof(text), "%.3f", v);
    bp_jsonw_raw(w, text, (size_t)n);
}

static void u64(bp_jsonw *w, const char *key, uint64_t v)
{
    bp_jsonw_key(w, key);
    bp_jsonw_u64(w, v);
}

static void opt_u64(bp_jsonw *w, const char *key, bool set, uint64_t v)
{
    bp_jsonw_key(w, key);
    if (set)
        bp_jsonw_u64(w, v);
    else
        bp_jsonw_null(w);
}

static void str(bp_jsonw *w, const char *key, const char *v)
{
    bp_jsonw_key(w, key);
    bp_jsonw_str(w, v);
}

static void boolean(bp_jsonw *w, const char *key, bool v)
{
    bp_jsonw_key(w, key);
    bp_jsonw_bool(w, v);
}

static void latency(bp_jsonw *w, const char *key, const bp_stats_latency *l)
{
    bp_jsonw_key(w, key);
    bp_jsonw_begin_object(w);
    u64(w, "count", l->count);
    num(w, "p50_ms", l->p50_ms);
    num(w, "p90_ms", l->p90_ms);
    num(w, "p99_ms", l->p99_ms);
    num(w, "max_ms", l->max_ms);
    bp_jsonw_end_object(w);
}

static const char *mode_of(const bp_stats *s, uint64_t ready_lag)
{
    if (!s->version)
        return "starting";
    if (s->waiting) /* also a chain stopped while waiting for its lock */
        return "waiting";
    if (s->lock_waiting)
        return "waiting-for-lock";
    if (output_failing(s))
        return "output-failing";
    if (s->backfill)
        return "backfill";
    if (serving(s))
        return "serving";
    return bp_api_is_ready(s, ready_lag) ? "following" : "catching-up";
}

/* ---- the endpoints -------------------------------------------------------------------------- */

/* What every output holds: the lowest checkpoint of the outputs still written to (one set
 * aside no longer moves). False when one of them has none yet. */
static bool committed_of(const bp_stats *s, uint64_t *out)
{
    bool any = false;
    for (size_t i = 0; i < s->output_count; i++) {
        const bp_stats_output *o = &s->outputs[i];
        if (o->set_aside)
            continue;
        if (!o->checkpoint_set)
            return false;
        *out = any && *out < o->checkpoint ? *out : o->checkpoint;
        any = true;
    }
    return any;
}

static void chain_json(bp_jsonw *w, const bp_stats *s, uint64_t ready_lag)
{
    uint64_t committed = 0;
    bool have_committed = committed_of(s, &committed);
    bp_jsonw_begin_object(w);
    str(w, "chain", s->chain);
    u64(w, "chain_id", s->chain_id);
    opt_u64(w, "head", s->have_head, s->head);
    opt_u64(w, "indexed", s->have_indexed, s->indexed);
    opt_u64(w, "committed", have_committed, committed);
    u64(w, "lag", s->lag);
    num(w, "blocks_per_s", s->blocks_per_s);
    num(w, "txs_per_s", s->txs_per_s);
    /* Counted to where the pipeline goes (a backfill's --to), not to the head: a backfill far
     * below the head would be told the time to the head. */
    opt_u64(w, "target", s->have_target, s->target);
    opt_u64(w, "left", s->have_target, s->left);
    bp_jsonw_key(w, "eta_s");
    if (s->have_target && s->left == 0)
        bp_jsonw_u64(w, 0);
    else if (s->have_target && s->blocks_per_s > 0)
        bp_jsonw_u64(w, (uint64_t)ceil((double)s->left / s->blocks_per_s));
    else
        bp_jsonw_null(w);
    str(w, "mode", mode_of(s, ready_lag));
    boolean(w, "ready", bp_api_is_ready(s, ready_lag));
    if (s->lock_waiting)
        str(w, "lock_holder", s->lock_holder);
    if (s->waiting) {
        u64(w, "waiting_on", s->waiting_on);
        str(w, "waiting_error", s->waiting_error);
    }
    if (s->memory_budget) { /* bytes: --max-memory, what its fixed part leaves for blocks */
        bp_jsonw_key(w, "memory");
        bp_jsonw_begin_object(w);
        u64(w, "used", s->memory_used);
        u64(w, "budget", s->memory_budget);
        u64(w, "blocks", s->memory_blocks);
        u64(w, "push_ring", s->memory_push_ring);
        u64(w, "push", s->memory_push);
        u64(w, "push_held", s->memory_push_held);
        bp_jsonw_end_object(w);
    }
    bp_jsonw_end_object(w);
}

static void output_json(bp_jsonw *w, const bp_stats *s, const bp_stats_output *o)
{
    bp_jsonw_begin_object(w);
    str(w, "url", o->url);
    str(w, "chain", s->chain);
    opt_u64(w, "checkpoint", o->checkpoint_set, o->checkpoint);
    str(w, "checkpoint_hash", o->checkpoint_set ? o->checkpoint_hash : NULL);
    u64(w, "lag", o->lag);
    str(w, "state", o->state[0] ? o->state : o->set_aside ? "set-aside" : "ok");
    str(w, "error", o->error[0] ? o->error : NULL);
    latency(w, "write", &o->write);
    bp_jsonw_end_object(w);
}

void bp_api_sync_members(bp_jsonw *w, const bp_stats *s, uint64_t ready_lag)
{
    bp_jsonw_key(w, "chains");
    bp_jsonw_begin_array(w);
    if (s->version)
        chain_json(w, s, ready_lag);
    bp_jsonw_end_array(w);
    bp_jsonw_key(w, "outputs");
    bp_jsonw_begin_array(w);
    for (size_t i = 0; i < s->output_count; i++)
        output_json(w, s, &s->outputs[i]);
    bp_jsonw_end_array(w);
}

static uint64_t endpoint_errors(const bp_stats *s)
{
    uint64_t n = 0;
    for (size_t i = 0; i < s->endpoint_count; i++)
        n += s->endpoints[i].errors;
    return n;
}

static void streaming_stats(bp_jsonw *w, const bp_stats *s, const bp_push_stats *p)
{
    num(w, "blocks_per_s", s->blocks_per_s);
    num(w, "txs_per_s", s->txs_per_s);
    u64(w, "blocks_total", s->done);
    u64(w, "transactions_total", s->txs);
    u64(w, "logs_total", s->logs);
    u64(w, "reorgs_total", s->reorgs);
    u64(w, "rpc_errors_total", endpoint_errors(s));
    u64(w, "failed_blocks", s->failed);
    u64(w, "outputs_set_aside", s->outputs_set_aside);
    num(w, "uptime_s", (double)s->uptime_ms / 1000.0);
    if (p) {
        u64(w, "push_clients", p->clients);
        u64(w, "push_messages_total", p->messages);
    }
}

static void upstream_socket(bp_jsonw *w, const bp_stats_realtime *r)
{
    boolean(w, "configured", r->ws_configured);
    boolean(w, "connected", r->connected);
    boolean(w, "subscribed", r->subscribed);
    str(w, "state", r->ws_configured ? r->ws_state : "off");
    str(w, "endpoint", r->ws_configured ? r->ws_endpoint : NULL);
    u64(w, "messages", r->messages);
    u64(w, "heads", r->heads);
    u64(w, "reconnects", r->reconnects);
    num(w, "heads_per_s", r->heads_per_s);
    str(w, "last_error", r->last_error[0] ? r->last_error : NULL);
}

static void push_clients(bp_jsonw *w, const bp_push_stats *p)
{
    bp_jsonw_key(w, "subscriptions");
    bp_jsonw_begin_object(w);
    u64(w, "clients", p ? p->clients : 0);
    u64(w, "websocket", p ? p->ws_clients : 0);
    u64(w, "sse", p ? p->sse_clients : 0);
    bp_jsonw_key(w, "topics");
    bp_jsonw_begin_object(w);
    for (unsigned i = 0; i < BP_PUSH_TOPICS; i++)
        u64(w, bp_push_topic_name(1u << i), p ? p->topic_clients[i] : 0);
    bp_jsonw_end_object(w);
    bp_jsonw_end_object(w);
}

static void realtime_status(bp_jsonw *w, const bp_stats *s, const bp_push_stats *p)
{
    const bp_stats_realtime *r = &s->realtime;
    str(w, "mode", !s->following ? "off" : r->websocket ? "websocket" : "polling");
    bp_jsonw_key(w, "socket");
    bp_jsonw_begin_object(w);
    upstream_socket(w, r);
    bp_jsonw_end_object(w);
    bp_jsonw_key(w, "last_block");
    if (p && p->have_block) {
        bp_jsonw_begin_object(w);
        u64(w, "number", p->last_block);
        str(w, "hash", p->last_hash);
        u64(w, "timestamp", p->last_block_timestamp);
        bp_jsonw_key(w, "committed_unix_ms");
        bp_jsonw_i64(w, p->last_block_unix_ms);
        bp_jsonw_end_object(w);
    } else {
        bp_jsonw_null(w);
    }
    num(w, "events_per_s", p ? p->events_per_s : 0);
    u64(w, "gaps_filled", r->gaps_filled);
    latency(w, "head_to_commit", &r->head_to_commit);
    push_clients(w, p);
}

static void websocket_stats(bp_jsonw *w, const bp_stats *s, const bp_push_stats *p)
{
    bp_jsonw_key(w, "upstream");
    bp_jsonw_begin_object(w);
    upstream_socket(w, &s->realtime);
    num(w, "uptime_s", (double)s->uptime_ms / 1000.0);
    bp_jsonw_end_object(w);
    bp_jsonw_key(w, "server");
    bp_jsonw_begin_object(w);
    u64(w, "messages_total", p ? p->messages : 0);
    u64(w, "bytes_total", p ? p->bytes : 0);
    u64(w, "dropped_clients_total", p ? p->dropped : 0);
    u64(w, "refused_clients_total", p ? p->refused : 0);
    push_clients(w, p);
    bp_jsonw_end_object(w);
}

void bp_api_live_members(bp_jsonw *w, const bp_stats *s, const bp_push_stats *p)
{
    uint64_t committed = 0;
    bool have_committed = committed_of(s, &committed);
    str(w, "chain", s->version ? s->chain : NULL);
    opt_u64(w, "head", s->have_head, s->head);
    opt_u64(w, "indexed", s->have_indexed, s->indexed);
    opt_u64(w, "committed", have_committed, committed);
    u64(w, "lag", s->lag);
    num(w, "blocks_per_s", s->blocks_per_s);
    num(w, "txs_per_s", s->txs_per_s);
    u64(w, "blocks_total", s->done);
    u64(w, "transactions_total", s->txs);
    u64(w, "reorgs_total", s->reorgs);
    num(w, "uptime_s", (double)s->uptime_ms / 1000.0);
    latency(w, "head_to_commit", &s->realtime.head_to_commit);
    bp_jsonw_key(w, "endpoints");
    bp_jsonw_begin_array(w);
    for (size_t i = 0; i < s->endpoint_count; i++) {
        const bp_stats_endpoint *e = &s->endpoints[i];
        bp_jsonw_begin_object(w);
        str(w, "url", e->url);
        str(w, "state", e->state);
        opt_u64(w, "head", e->head_known, e->head);
        u64(w, "requests", e->requests);
        u64(w, "errors", e->errors);
        u64(w, "rate_limits", e->rate_limits);
        latency(w, "latency", &e->latency);
        bp_jsonw_end_object(w);
    }
    bp_jsonw_end_array(w);
    bp_jsonw_key(w, "outputs");
    bp_jsonw_begin_array(w);
    for (size_t i = 0; i < s->output_count; i++)
        output_json(w, s, &s->outputs[i]);
    bp_jsonw_end_array(w);
    if (p) {
        u64(w, "push_clients", p->clients);
        u64(w, "push_messages_total", p->messages);
    }
}

/* ---- dispatch ----------------------------------------------------------------------------------
 */

static void root(bp_jsonw *w)
{
    str(w, "name", "blockpipe");
    str(w, "version", BP_VERSION);
    str(w, "status", "ok");
    bp_jsonw_key(w, "endpoints");
    bp_jsonw_begin_array(w);
    static const char *const eps[] = {"/health",
                                      "/ready",
                                      "/metrics",
                                      "/api/blocks",
                                      "/api/transactions",
                                      "/api/logs",
                                      "/api/analytics",
                                      "/api/predictions",
                                      "/api/v1/streaming/pairs",
                                      "/api/v1/streaming/{key}/latest",
                                      "/api/v1/streaming/{key}/history",
                                      "/api/arch/blocks",
                                      "/api/arch/transactions",
                                      "/api/arch/account_updates",
                                      "/api/arch/events",
                                      "/api/ws",
                                      "/api/events",
                                      "/dashboard",
                                      NULL};
    for (const char *const *e = eps; *e; e++)
        bp_jsonw_str(w, *e);
    for (const char *const *e = g_status_paths; *e; e++)
        bp_jsonw_str(w, *e);
    bp_jsonw_end_array(w);
}

static void metrics(bp_api_ctx *c, const bp_stats *s, const bp_push_stats *p, bp_api_response *resp)
{
    if (bp_api_metrics(s && s->version ? s : NULL, c->cfg->ready_lag, p, &c->counters,
                       &resp->body) != 0) {
        bp_api_error(resp, 500, "out of memory");
        return;
    }
    resp->status = 200;
    resp->type = "text/plain; version=0.0.4; charset=utf-8";
}

static void answer(bp_api_ctx *c, const char *path, const bp_stats *s, const bp_push_stats *p,
                   bp_api_response *resp)
{
    uint64_t lag = c->cfg->ready_lag;
    bp_jsonw w;
    bp_jsonw_init(&w, &resp->body, BP_JSONW_ESC_U);
    bp_jsonw_begin_object(&w);
    resp->status = 200;
    if (strcmp(path, "/") == 0) {
        root(&w);
    } else if (strcmp(path, "/health") == 0) {
        str(&w, "status", "ok");
        num(&w, "uptime_s", (double)(bp_api_mono_ms() - c->started_ms) / 1000.0);
    } else if (strcmp(path, "/ready") == 0) {
        bool ready = bp_api_is_ready(s, lag);
        resp->status = ready ? 200 : 503;
        boolean(&w, "ready", ready);
        u64(&w, "ready_lag", lag);
        bp_jsonw_key(&w, "chains");
        bp_jsonw_begin_array(&w);
        if (s->version)
            chain_json(&w, s, lag);
        bp_jsonw_end_array(&w);
    } else if (strcmp(path, "/api/sync-status") == 0) {
        bp_api_sync_members(&w, s, lag);
    } else if (strcmp(path, "/api/streaming/stats") == 0) {
        streaming_stats(&w, s, p);
    } else if (strcmp(path, "/api/realtime/status") == 0) {
        realtime_status(&w, s, p);
    } else if (strcmp(path, "/api/realtime/events") == 0) {
        if (c->cfg->push)
            bp_push_events_json(c->cfg->push, &w, 100);
    } else if (strcmp(path, "/api/websocket/stats") == 0) {
        websocket_stats(&w, s, p);
    }
    bp_jsonw_key(&w, "updated_unix_ms");
    bp_jsonw_i64(&w, s->version ? s->published_unix_ms : bp_api_unix_ms());
    bp_jsonw_end_object(&w);
    if (bp_jsonw_finish(&w) != 0)
        bp_api_error(resp, 500, "out of memory");
}

/* The snapshot ?chain=NAME asks for when the process runs several chains (the first's
 * without it); NULL for a chain it does not run. */
static bp_stats_hub *hub_of(const bp_api_ctx *c, const bp_api_request *req)
{
    const char *v = c->cfg->chain_count ? bp_api_param_get(req, "chain") : NULL;
    if (!v)
        return c->cfg->stats;
    for (size_t i = 0; i < c->cfg->chain_count; i++)
        if (strcmp(c->cfg->chain_names[i], v) == 0)
            return c->cfg->chain_stats[i];
    return NULL;
}

bool bp_api_status_other_chain(const bp_api_ctx *c, const bp_api_request *req,
                               bp_api_response *resp)
{
    const char *v = bp_api_param_get(req, "chain");
    if (!v || c->cfg->chain_count || !c->cfg->stats)
        return false; /* several chains: hub_of knows them */
    bp_stats *s = malloc(sizeof(*s));
    if (!s) {
        bp_api_error(resp, 500, "out of memory");
        return true;
    }
    bp_stats_hub_read(c->cfg->stats, s);
    /* before the first snapshot only --chain names it; unnamed yet, any name is taken */
    const char *name = s->version && s->chain[0] ? s->chain : c->cfg->chain;
    bool other = name && strcmp(v, name) != 0;
    if (other) {
        char shown[80];
        bp_api_printable(v, shown, sizeof(shown));
        bp_api_error(resp, 404, "no chain '%s' in this process", shown);
    }
    free(s);
    return other;
}

/* /ready of a process running several chains: ready when every chain is, each listed. */
static void ready_all(bp_api_ctx *c, bp_stats *s, bp_api_response *resp)
{
    uint64_t lag = c->cfg->ready_lag;
    bool ready = true;
    bp_jsonw w;
    bp_jsonw_init(&w, &resp->body, BP_JSONW_ESC_U);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "chains");
    bp_jsonw_begin_array(&w);
    for (size_t i = 0; i < c->cfg->chain_count; i++) {
        bp_stats_hub_read(c->cfg->chain_stats[i], s);
        ready = ready && bp_api_is_ready(s, lag);
        if (s->version)
            chain_json(&w, s, lag);
    }
    bp_jsonw_end_array(&w);
    boolean(&w, "ready", ready);
    u64(&w, "ready_lag", lag);
    bp_jsonw_end_object(&w);
    resp->status = ready ? 200 : 503;
    if (bp_jsonw_finish(&w) != 0)
        bp_api_error(resp, 500, "out of memory");
}

void bp_api_status(bp_api_ctx *c, const bp_api_request *req, bp_api_response *resp)
{
    if (bp_api_status_other_chain(c, req, resp))
        return;
    bp_stats *s = calloc(1, sizeof(*s));
    bp_push_stats p;
    bp_stats_hub *hub = hub_of(c, req);
    if (!s || (!hub && c->cfg->stats)) {
        char shown[80];
        bp_api_printable(bp_api_param_get(req, "chain"), shown, sizeof(shown));
        if (s)
            bp_api_error(resp, 404, "no chain '%s' in this process", shown);
        else
            bp_api_error(resp, 500, "out of memory");
        free(s);
        return;
    }
    if (c->cfg->chain_count > 1 && strcmp(req->path, "/ready") == 0 &&
        !bp_api_param_get(req, "chain")) {
        ready_all(c, s, resp);
        free(s);
        return;
    }
    if (hub)
        bp_stats_hub_read(hub, s);
    if (c->cfg->push)
        bp_push_stats_read(c->cfg->push, &p);
    if (strcmp(req->path, "/metrics") == 0)
        metrics(c, s, c->cfg->push ? &p : NULL, resp);
    else
        answer(c, req->path, s, c->cfg->push ? &p : NULL, resp);
    free(s);
}
