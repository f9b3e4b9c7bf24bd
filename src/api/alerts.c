/* alerts.c - --alert rules evaluated on the stats snapshot every second; firing and resolving
 * go to the log and to the webhooks (api/webhooks.c sends them). */
#include "api/alerts.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/webhooks.h"
#include "util/buf.h"
#include "util/jsonw.h"
#include "util/log.h"

static const char *const g_names[] = {
    "lag",
    "stalled",
    "endpoint_down",
    "output_failing",
    "waiting",
    "waiting_for_lock",
    "failed",
    "pending",
    "blocks_per_s",
    "txs_per_s",
    "memory_used",
    "head_to_commit_p99_ms",
    "rpc_p99_ms",
    "rpc_errors",
    NULL,
};

/* What the rules remember of one chain between evaluations. */
typedef struct chain_watch {
    bp_stats_hub *stats;
    bool *firing; /* per rule */
    bool have_head;
    uint64_t last_head;
    double head_changed; /* monotonic s */
} chain_watch;

struct bp_alerts {
    bp_alert_rule *rules;
    size_t n;
    chain_watch *chains;
    size_t chain_count;
    bp_webhooks *hooks; /* NULL: log only */
    bp_stats *snap;     /* the chain being evaluated */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cv;
    bool stop, started;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int bp_alert_parse(const char *spec, bp_alert_rule *out, bp_error *err)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->spec, sizeof(out->spec), "%s", spec);
    size_t n = strcspn(spec, "<>");
    char *end = NULL;
    out->above = spec[n] != '<';
    if (spec[n])
        out->threshold = strtod(spec + n + 1, &end);
    bool ok = n > 0 && n < sizeof(out->name) &&
              (!spec[n] || (end && end != spec + n + 1 && !*end && isfinite(out->threshold)));
    for (const char *const *k = g_names; ok && *k; k++)
        if (strlen(*k) == n && strncmp(*k, spec, n) == 0) {
            memcpy(out->name, spec, n);
            return 0;
        }
    return bp_error_set(err, BP_EINVAL,
                        "'%s' is not valid: expected NAME>VALUE, NAME<VALUE or NAME, "
                        "NAME one of lag, stalled, endpoint_down, output_failing, waiting, "
                        "waiting_for_lock, failed, pending, blocks_per_s, txs_per_s, memory_used, "
                        "head_to_commit_p99_ms, rpc_p99_ms, rpc_errors",
                        spec);
}

/* The value a rule looks at, from the snapshot. */
static double value_of(const bp_alerts *a, const chain_watch *c, const char *name, double now)
{
    const bp_stats *s = a->snap;
    double worst = 0, errors = 0, down = 0, failing = 0;
    for (size_t i = 0; i < s->endpoint_count; i++) {
        const bp_stats_endpoint *e = &s->endpoints[i];
        worst = e->latency.p99_ms > worst ? e->latency.p99_ms : worst;
        errors += (double)e->errors;
        down += strcmp(e->state, "healthy") != 0 && strcmp(e->state, "rate-limited") != 0;
    }
    for (size_t i = 0; i < s->output_count; i++)
        failing += s->outputs[i].set_aside;
    const struct {
        const char *name;
        double v;
    } vals[] = {
        {"lag", (double)s->lag},
        {"stalled", now - c->head_changed},
        {"endpoint_down", down},
        {"output_failing", failing},
        {"waiting", s->waiting},
        {"waiting_for_lock", s->lock_waiting},
        {"failed", (double)s->failed},
        {"pending", (double)s->pending},
        {"blocks_per_s", s->blocks_per_s},
        {"txs_per_s", s->txs_per_s},
        {"memory_used", (double)s->memory_used},
        {"head_to_commit_p99_ms", s->realtime.head_to_commit.p99_ms},
        {"rpc_p99_ms", worst},
        {"rpc_errors", errors},
    };
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        if (strcmp(vals[i].name, name) == 0)
            return vals[i].v;
    return 0;
}

/* Queues {"text": ..., "blockpipe": {...}} for the webhooks (Slack's incoming webhooks read
 * "text"); they send it on their own thread. */
static void webhook(bp_alerts *a, const bp_alert_rule *r, bool firing, double v, const char *text)
{
    if (!a->hooks)
        return;
    bp_buf body;
    bp_jsonw w;
    bp_buf_init(&body, 0);
    bp_jsonw_init(&w, &body, BP_JSONW_ESC_U);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "text");
    bp_jsonw_str(&w, text);
    bp_jsonw_key(&w, "blockpipe");
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "rule");
    bp_jsonw_str(&w, r->spec);
    bp_jsonw_key(&w, "state");
    bp_jsonw_str(&w, firing ? "firing" : "resolved");
    char num[64];
    int n = snprintf(num, sizeof(num), "%.6g", v);
    bp_jsonw_key(&w, "value");
    bp_jsonw_raw(&w, num, (size_t)n);
    bp_jsonw_key(&w, "chain");
    bp_jsonw_str(&w, a->snap->chain);
    bp_jsonw_end_object(&w);
    bp_jsonw_end_object(&w);
    if (bp_jsonw_finish(&w) == 0)
        bp_webhooks_post(a->hooks, body.data, body.len);
    else
        bp_warn("alert webhook: out of memory: %s not sent", text);
    bp_buf_release(&body);
}

/* Every rule on one chain's snapshot: each fires and resolves for that chain alone. */
static void evaluate_chain(bp_alerts *a, chain_watch *c)
{
    double now = now_s();
    bp_stats_hub_read(c->stats, a->snap);
    if (!a->snap->version)
        return; /* nothing published yet */
    if (a->snap->have_head && (!c->have_head || a->snap->head != c->last_head)) {
        c->have_head = true;
        c->last_head = a->snap->head;
        c->head_changed = now;
    }
    for (size_t i = 0; i < a->n; i++) {
        const bp_alert_rule *r = &a->rules[i];
        double v = value_of(a, c, r->name, now);
        bool on = r->above ? v > r->threshold : v < r->threshold;
        if (on == c->firing[i])
            continue;
        c->firing[i] = on;
        char text[256];
        snprintf(text, sizeof(text), "[blockpipe %s] %s: %s (%s is %.6g)", a->snap->chain,
                 on ? "FIRING" : "resolved", r->spec, r->name, v);
        if (on)
            bp_warn("alert %s", text);
        else
            bp_info("alert %s", text);
        webhook(a, r, on, v, text);
    }
}

static void evaluate(bp_alerts *a)
{
    for (size_t i = 0; i < a->chain_count; i++)
        evaluate_chain(a, &a->chains[i]);
}

static void *alerts_main(void *arg)
{
    bp_alerts *a = arg;
    pthread_mutex_lock(&a->lock);
    while (!a->stop) {
        pthread_mutex_unlock(&a->lock);
        evaluate(a);
        pthread_mutex_lock(&a->lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        if (!a->stop)
            pthread_cond_timedwait(&a->cv, &a->lock, &until);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

/* One watch per hub, all its rules resolved; false when out of memory. */
static bool watch_chains(bp_alerts *a, bp_stats_hub *const *stats, size_t count)
{
    if (!(a->chains = calloc(count ? count : 1, sizeof(*a->chains))))
        return false;
    a->chain_count = count;
    double now = now_s();
    for (size_t i = 0; i < count; i++) {
        a->chains[i].stats = stats[i];
        a->chains[i].head_changed = now;
        if (!(a->chains[i].firing = calloc(a->n ? a->n : 1, sizeof(bool))))
            return false;
    }
    return true;
}

int bp_alerts_start(const bp_alert_rule *rules, size_t n, const char *const *webhooks,
                    size_t webhook_count, bp_stats_hub *const *stats, size_t stats_count,
                    bp_alerts **out, bp_error *err)
{
    *out = NULL;
    bp_alerts *a = calloc(1, sizeof(*a));
    if (!a)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    a->rules = calloc(n ? n : 1, sizeof(*a->rules));
    a->n = n;
    a->snap = calloc(1, sizeof(*a->snap));
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->cv, NULL);
    if (!a->rules || !a->snap || !watch_chains(a, stats, stats_count)) {
        bp_alerts_stop(a);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    if (webhook_count && bp_webhooks_start(webhooks, webhook_count, &a->hooks, err) != 0) {
        bp_alerts_stop(a);
        return err->code;
    }
    memcpy(a->rules, rules, n * sizeof(*rules));
    if (pthread_create(&a->thread, NULL, alerts_main, a) != 0) {
        bp_alerts_stop(a);
        return bp_error_set(err, BP_ENOMEM, "cannot start the alerts thread");
    }
    a->started = true;
    *out = a;
    return 0;
}

void bp_alerts_stop(bp_alerts *a)
{
    if (!a)
        return;
    if (a->started) {
        pthread_mutex_lock(&a->lock);
        a->stop = true;
        pthread_cond_signal(&a->cv);
        pthread_mutex_unlock(&a->lock);
        pthread_join(a->thread, NULL);
    }
    bp_webhooks_stop(a->hooks); /* after the thread: nothing posts any more */
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->cv);
    free(a->rules);
    for (size_t i = 0; a->chains && i < a->chain_count; i++)
        free(a->chains[i].firing);
    free(a->chains);
    free(a->snap);
    free(a);
}
