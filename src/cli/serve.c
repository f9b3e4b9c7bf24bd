/* serve.c - the API in the commands: --api beside run / backfill, and `blockpipe serve`. */
#include "cli/commands_serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/clock.h"
#include "blockpipe/sink.h"
#include "cli/serve_follow.h"
#include "util/log.h"
#include "util/url.h"

#define SERVE_DEFAULT_LISTEN "127.0.0.1:8080"
/* How often serve reads the database's newest block (push's new blocks come this late at most;
 * each poll is one indexed read, two when a block came). */
#define SERVE_POLL_MS 250

static bool api_on(const bp_config *cfg)
{
    return cfg->api_listen || cfg->command == BP_CMD_SERVE;
}

int bp_cli_api_settings(bp_config *cfg, bp_error *err)
{
    if (!api_on(cfg))
        return 0;
    for (size_t i = 0; i < cfg->sink_setting_count; i++)
        if (strcmp(cfg->sink_settings[i].key, "sqlite_indexes") == 0)
            return 0; /* the user said */
    if (cfg->sink_setting_count == BP_MAX_SINK_SETTINGS)
        return bp_error_set(err, BP_EINVAL, "too many output settings");
    char *v = strdup("1");
    if (!v)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    cfg->sink_settings[cfg->sink_setting_count++] = (bp_sink_setting){"sqlite_indexes", v};
    return 0;
}

/* The first output the API can read back (SQLite, PostgreSQL, ClickHouse), NULL when none. */
static const char *read_url(const bp_config *cfg)
{
    for (int i = 0; i < cfg->output_count; i++) {
        const bp_sink_ops *ops = bp_sink_find(cfg->outputs[i]);
        if (ops && ops->open_reader)
            return cfg->outputs[i];
    }
    return NULL;
}

/* The keyed streams' store: --stream-store, else the first Redis output, else the first
 * SQLite one (where `blockpipe stream` looks by default), NULL when none. */
static const char *stream_store(const bp_config *cfg)
{
    static const char *const schemes[] = {"redis", "sqlite"};
    if (cfg->stream_store)
        return cfg->stream_store;
    for (size_t s = 0; s < sizeof(schemes) / sizeof(schemes[0]); s++)
        for (int i = 0; i < cfg->output_count; i++) {
            const bp_sink_ops *ops = bp_sink_find(cfg->outputs[i]);
            if (ops && strcmp(ops->scheme, schemes[s]) == 0)
                return cfg->outputs[i];
        }
    return NULL;
}

static int start_alerts(const bp_config *cfg, bp_cli_api *out, bp_error *err)
{
    bp_alert_rule rules[BP_MAX_ALERTS];
    for (int i = 0; i < cfg->alert_count; i++)
        if (bp_alert_parse(cfg->alerts[i], &rules[i], err) != 0)
            return bp_error_prefix(err, "--alert: ");
    /* every chain's snapshot when there are many, else the one */
    bp_stats_hub *const *hubs = out->chain_count ? out->chain_stats : &out->stats;
    size_t count = out->chain_count ? out->chain_count : 1;
    return bp_alerts_start(rules, (size_t)cfg->alert_count,
                           (const char *const *)cfg->alert_webhooks,
                           (size_t)cfg->alert_webhook_count, hubs, count, &out->alerts, err);
}

/* The chains' snapshots (the first is out->stats). */
static int chain_hubs(bp_cli_api *out, size_t n, bp_error *err)
{
    if (!(out->chain_stats = calloc(n, sizeof(*out->chain_stats))))
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    out->chain_count = n;
    out->chain_stats[0] = out->stats;
    for (size_t i = 1; i < n; i++)
        if (!(out->chain_stats[i] = bp_stats_hub_new()))
            return bp_error_set(err, BP_ENOMEM, "out of memory");
    return 0;
}

/* The push ring is resident from the start and counted in --max-memory (core/pipeline.h
 * push_ring_bytes): one that does not fit in the budget alone is refused before it is made
 * (at 10M events it is 1.7 GiB). One that fits but leaves blocks too little room is refused by
 * the pipeline, naming the rest of the fixed part too. `serve` has no budget. */
static int ring_fits(const bp_config *cfg, bp_error *err)
{
    size_t ring = bp_push_ring_bytes((size_t)cfg->api_push_ring);
    if (cfg->command == BP_CMD_SERVE || !cfg->max_memory || ring < (size_t)cfg->max_memory)
        return 0;
    return bp_error_set(err, BP_EINVAL,
                        "--api-push-ring %d takes %.1f MiB (%zu bytes an event, resident from the "
                        "start) and --max-memory is %.1f MiB: the ring alone does not fit in the "
                        "memory budget (give a smaller --api-push-ring, well under %zu events so "
                        "that blocks have room, or a larger --max-memory)",
                        cfg->api_push_ring, (double)ring / 1048576.0, bp_push_ring_bytes(1),
                        (double)cfg->max_memory / 1048576.0,
                        (size_t)cfg->max_memory / bp_push_ring_bytes(1));
}

static int start(const bp_config *cfg, const char *const *names, size_t n, bp_cli_api *out,
                 bp_error *err)
{
    memset(out, 0, sizeof(*out));
    bool alerts = cfg->alert_count && cfg->command != BP_CMD_SERVE;
    if (!alerts && !api_on(cfg))
        return 0;
    /* the pipelines publish into these; `serve`, the database's newest block (serve_follow.h) */
    if (!(out->stats = bp_stats_hub_new()))
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    if (n > 0 && chain_hubs(out, n, err) != 0)
        return err->code;
    if (alerts && start_alerts(cfg, out, err) != 0)
        return err->code;
    if (!api_on(cfg))
        return 0;
    if (ring_fits(cfg, err) != 0)
        return err->code;
    static bp_sink_settings set; /* the config outlives the API: both end with the command */
    set = (bp_sink_settings){cfg->sink_settings, cfg->sink_setting_count, NULL};
    const char *url = read_url(cfg);
    if (!url)
        bp_warn("api: no output can be read back (sqlite:, postgres: or clickhouse:): the data "
                "endpoints answer 503 and push carries block headers only");
    bp_push_config pc = {
        .ring = (size_t)cfg->api_push_ring,
        .queue_bytes = (size_t)cfg->api_push_queue,
        .stall_timeout = cfg->api_push_stall,
        .memory_bytes = (size_t)cfg->api_push_memory,
        .max_clients = (size_t)cfg->api_push_clients,
        .read_url = url,
        .settings = &set,
        .chain = cfg->chain,
        .stats = out->stats,
        .ready_lag = cfg->ready_lag,
    };
    out->push = bp_push_hub_new(&pc, err);
    if (!out->push)
        return err->code;
    if (cfg->api_token) /* a client's error echoed into the log must not show it */
        bp_secret_add(cfg->api_token);
    bp_api_config ac = {
        .listen = cfg->api_listen ? cfg->api_listen : SERVE_DEFAULT_LISTEN,
        .read_url = url,
        .stream_store = stream_store(cfg),
        .settings = &set,
        .chain = cfg->chain,
        .stats = out->stats,
        .serving = cfg->command == BP_CMD_SERVE,
        .chain_names = names,
        .chain_stats = out->chain_stats,
        .chain_count = out->chain_count,
        .push = out->push,
        .token = cfg->api_token,
        .token_reads = cfg->api_token_reads,
        .rate = cfg->api_rate,
        .cors = cfg->api_cors,
        .tls_cert = cfg->api_tls_cert,
        .tls_key = cfg->api_tls_key,
        .threads = cfg->api_threads,
        .ready_lag = cfg->ready_lag,
        .max_body = (size_t)cfg->api_max_body,
        .request_timeout = cfg->api_request_timeout,
        .max_connections = cfg->api_max_connections,
    };
    return bp_api_start(&ac, &out->api, err);
}

int bp_cli_api_start(const bp_config *cfg, bp_cli_api *out, bp_error *err)
{
    return start(cfg, NULL, 0, out, err);
}

int bp_cli_api_start_chains(const bp_config *cfg, const char *const *names, size_t n,
                            bp_cli_api *out, bp_error *err)
{
    return start(cfg, names, n, out, err);
}

void bp_cli_api_stop(bp_cli_api *a)
{
    bp_alerts_stop(a->alerts);
    bp_api_stop(a->api); /* first: it detaches every push client */
    bp_push_hub_free(a->push);
    bp_stats_hub_free(a->stats);
    for (size_t i = 1; i < a->chain_count; i++)
        bp_stats_hub_free(a->chain_stats[i]);
    free(a->chain_stats);
    memset(a, 0, sizeof(*a));
}

int bp_cmd_serve(int argc, char **argv, volatile sig_atomic_t *stop)
{
    bp_config cfg;
    bp_error err = {0};
    bp_cli_api api = {0};
    int status = 1;
    if (bp_config_load(&cfg, BP_CMD_SERVE, argc, argv, &err) != 0) {
        bp_secret_scrub(err.msg);
        fprintf(stderr, "blockpipe serve: %s\n", err.msg);
        bp_config_release(&cfg);
        return 2;
    }
    if (cfg.help) {
        fputs(bp_config_usage(BP_CMD_SERVE), stdout);
        bp_config_release(&cfg);
        return 0;
    }
    bp_log_set_level((enum bp_log_level)cfg.log_level);
    bp_log_set_json(cfg.log_json);
    bp_serve_follow *follow = NULL;
    int rc = bp_cli_api_settings(&cfg, &err);
    const char *url = read_url(&cfg);
    bp_sink_settings set = {cfg.sink_settings, cfg.sink_setting_count, NULL};
    if (rc == 0) /* first: its usage errors (TLS files, the address) are exit 2 */
        rc = bp_cli_api_start(&cfg, &api, &err);
    /* Read-only: serve reads what a writer made and changes nothing in it (no file made for a
     * mistyped path, no migration under a writer's feet: `blockpipe migrate` does that). */
    if (rc == 0 && url)
        rc = bp_serve_follow_new(url, &set, cfg.chain, &follow, &err);
    if (rc == 0 && follow && bp_serve_follow_poll(follow, api.stats, api.push, &err) != 0)
        bp_warn("serve: %s", err.msg);
    if (rc != 0) {
        bp_err("%s", err.msg);
        status = rc == BP_EINVAL ? 2 : 1;
        goto out;
    }
    bool failing = false; /* a failed poll is logged once, until one succeeds */
    for (int64_t next = bp_api_mono_ms() + SERVE_POLL_MS; !*stop;) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (!follow || bp_api_mono_ms() < next)
            continue;
        next = bp_api_mono_ms() + SERVE_POLL_MS;
        bp_error perr = {0};
        bool failed = bp_serve_follow_poll(follow, api.stats, api.push, &perr) != 0;
        if (failed && !failing)
            bp_warn("serve: %s (polled again every %d ms)", perr.msg, SERVE_POLL_MS);
        else if (!failed && failing)
            bp_info("serve: the database reads again");
        failing = failed;
    }
    bp_info("serve: stopped by signal");
    status = 0;
out:
    bp_cli_api_stop(&api);
    bp_serve_follow_free(follow);
    bp_config_release(&cfg);
    return status;
}
