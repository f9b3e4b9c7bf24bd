/* main.c - the blockpipe command: argument dispatch, signals, outputs, pipeline. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockpipe/columns.h"
#include "blockpipe/derived.h"
#include "blockpipe/sink.h"
#include "chain/fetch.h"
#include "chain/rpc.h"
#include "cli/commands_migrate.h"
#include "cli/commands_serve.h"
#include "cli/commands_sim.h"
#include "cli/commands_stream.h"
#include "chain/presets.h"
#include "cli/config.h"
#include "cli/state.h"
#include "core/multi.h"
#include "core/pipeline.h"
#include "core/verify.h"
#include "metrics/metrics.h"
#include "metrics/prices.h"
#include "util/log.h"
#include "util/url.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    if (g_stop) {
        /* A second Ctrl-C means "now": outputs are transactional, nothing committed is lost. */
        static const char msg[] = "\nsecond signal: exiting at once\n";
        ssize_t ignored = write(STDERR_FILENO, msg, sizeof(msg) - 1);
        (void)ignored;
        _exit(130);
    }
    g_stop = 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void usage(FILE *f)
{
    fprintf(f,
            "blockpipe %s - EVM blockchain data, in order and reorg-safe, into databases and "
            "files\n\n"
            "usage:\n"
            "  blockpipe run --rpc URL [options]               follow the chain head\n"
            "  blockpipe backfill --rpc URL --from A --to B    index a range of blocks\n"
            "  blockpipe verify --rpc URL --from A --to B --output URL [--repair]  compare an "
            "output with the node\n"
            "  blockpipe retry-failed --state-dir DIR          run again the commands that left "
            "failed blocks\n"
            "  blockpipe migrate URL                           create or upgrade an output's "
            "schema\n"
            "  blockpipe serve --output URL [--api HOST:PORT]  the HTTP API over an output, "
            "without indexing\n"
            "  blockpipe simnode [--listen HOST:PORT] [...]    a synthetic node for benchmarks "
            "and chaos tests\n"
            "  blockpipe stream publish|latest|history|keys|subscribe ...  keyed streams\n"
            "  blockpipe <command> --help                      options of a command\n"
            "  blockpipe --help-markdown | --help-columns      the option and column tables "
            "(docs)\n"
            "  blockpipe --version\n\n"
            "outputs (--output URL, repeatable):\n",
            BP_VERSION);
    for (const bp_sink_ops *const *b = bp_sink_backends(); *b; b++)
        fprintf(f, "  %-36s %s\n", (*b)->usage, (*b)->description);
    fprintf(f, "\nexample:\n  blockpipe run --rpc http://127.0.0.1:8545 --output "
               "sqlite:blockpipe.db\n");
}

/* The column table (blockpipe/columns.h) as Markdown. */
static void print_columns(FILE *f)
{
    fputs("<!-- Made by `blockpipe --help-columns` from the column table "
          "(include/blockpipe/columns.h); `make docs` rewrites it and a test checks it. -->\n\n"
          "| table | column | type | ethereum-etl | key |\n|---|---|---|---|---|\n",
          f);
    for (size_t i = 0; i < BP_C_COUNT; i++) {
        const bp_column *c = &bp_columns[i];
        const char *etl = c->etl_name ? c->etl_name : "—";
        fprintf(f, "| %s | `%s` | %s | %s%s | %s |\n", bp_table_name(c->table), c->name,
                bp_col_type_name(c->type), c->flags & BP_COL_RECEIPTS ? "receipts." : "", etl,
                c->flags & BP_COL_KEY       ? "key"
                : c->flags & BP_COL_NOTNULL ? "not null"
                                            : "");
    }
}

/* How a rollup column is made from the finer rows, for the docs. */
static const char *agg_text(bp_agg a)
{
    static const char *const t[] = {
        [BP_AGG_NONE] = "",
        [BP_AGG_KEY] = "key",
        [BP_AGG_WINDOW] = "window start (unix s, UTC)",
        [BP_AGG_COUNT] = "blocks",
        [BP_AGG_FIRST_BLOCK] = "min",
        [BP_AGG_LAST_BLOCK] = "max",
        [BP_AGG_SUM] = "sum",
        [BP_AGG_SUM256] = "exact sum",
        [BP_AGG_NATIVE] = "fees_paid_wei / 1e18",
        [BP_AGG_USD] = "sum, NULL unless all known",
        [BP_AGG_MEDIAN] = "lower median of the finer rows'",
        [BP_AGG_DISTINCT] = "distinct senders (set)",
    };
    return (unsigned)a < sizeof(t) / sizeof(t[0]) ? t[a] : "";
}

/* The derived tables (blockpipe/derived.h) as Markdown: one row per column of each shape. */
static void print_derived(FILE *f)
{
    fputs("<!-- Made by `blockpipe --help-derived` from the derived column table "
          "(include/blockpipe/derived.h); `make docs` rewrites it and a test checks it. -->\n\n"
          "| tables | column | type | key | rollup from the finer rows |\n|---|---|---|---|---|\n",
          f);
    for (int s = 0; s < BP_DS_COUNT; s++) {
        char tables[256] = "";
        for (int t = 0; t < BP_DT_COUNT; t++)
            if ((int)bp_dtables[t].shape == s)
                snprintf(tables + strlen(tables), sizeof(tables) - strlen(tables), "%s%s",
                         tables[0] ? ", " : "", bp_dtables[t].name);
        size_t first, n = bp_dshape_columns((bp_dshape)s, &first);
        for (size_t i = first; i < first + n; i++) {
            const bp_dcolumn *c = &bp_dcolumns[i];
            fprintf(f, "| %s | `%s` | %s | %s | %s |\n", tables, c->name, bp_col_type_name(c->type),
                    c->flags & BP_COL_KEY       ? "key"
                    : c->flags & BP_COL_NOTNULL ? "not null"
                                                : "",
                    agg_text(c->agg));
        }
    }
}

static int open_outputs(const bp_config *cfg, bp_sink **sinks, bp_error *err)
{
    bp_sink_settings set = {cfg->sink_settings, cfg->sink_setting_count};
    for (int i = 0; i < cfg->output_count; i++) {
        int rc = bp_sink_open(cfg->outputs[i], &set, &sinks[i], err);
        if (rc != 0)
            return rc;
        bp_info("output %d: %s", i + 1, sinks[i]->url);
    }
    return 0;
}

/* A chain's metrics module (the analytics of the outputs with derived tables). */
static int chain_metrics(const bp_config *cfg, bp_prices *p, bp_metrics **m, bp_error *err)
{
    bp_metrics_config mc = {.reorg_window = cfg->reorg_window,
                            .native_symbol = cfg->native_token ? cfg->native_token : "ETH",
                            .price_max_age = cfg->price_max_age,
                            .prices = p,
                            .predictions = cfg->ml};
    *m = bp_metrics_new(&mc, err);
    return *m ? 0 : err->code;
}

/* The analytics of the outputs with derived tables: the metrics module and its price source,
 * made when one of them wants it (*m stays NULL otherwise). */
static int open_metrics(const bp_config *cfg, bp_sink **sinks, bp_metrics **m, bp_prices **p,
                        bp_error *err)
{
    bool wanted = false;
    for (int i = 0; i < cfg->output_count; i++)
        wanted |= sinks[i]->derived;
    if (!wanted)
        return 0;
    unsigned need = BP_FETCH_TRANSACTIONS | BP_FETCH_RECEIPTS;
    if ((cfg->fetch & need) != need) {
        bp_warn("the derived analytics tables need transactions and receipts (--fetch); they "
                "are not written in this run");
        for (int i = 0; i < cfg->output_count; i++)
            sinks[i]->derived = false;
        return 0;
    }
    const char *symbol = cfg->native_token ? cfg->native_token : "ETH";
    if (cfg->prices_file || cfg->price_url) {
        bp_prices_config pc = {.symbol = symbol,
                               .file = cfg->prices_file,
                               .url = cfg->price_url,
                               .coin_id = cfg->price_coin_id,
                               .api_key = cfg->coingecko_api_key,
                               .interval = cfg->price_interval,
                               .max_age = cfg->price_max_age,
                               .timeout = cfg->rpc_timeout};
        if (!(*p = bp_prices_new(&pc, err)) || bp_prices_start(*p, err) != 0)
            return err->code;
        if (cfg->prices_file)
            bp_info("prices: %zu %s points from %s", bp_prices_count(*p), symbol, cfg->prices_file);
    }
    return chain_metrics(cfg, *p, m, err);
}

static void map_config(const bp_config *c, bp_sink **sinks, bp_endpoint_spec *eps,
                       bp_pipeline_config *pc)
{
    memset(pc, 0, sizeof(*pc));
    for (int i = 0; i < c->rpc_count; i++)
        eps[i] = (bp_endpoint_spec){.url = c->rpcs[i].url,
                                    .max_workers = c->rpcs[i].max_workers,
                                    .priority = c->rpcs[i].priority,
                                    .rps = c->rpcs[i].rps};
    for (int i = 0; i < c->rpc_count; i++)
        bp_config_auth(c, i, &eps[i].auth);
    bp_config_auth(c, -1, &pc->ws_auth);
    pc->endpoints = eps;
    pc->endpoint_count = (size_t)c->rpc_count;
    pc->chain = c->chain;
    pc->sinks = sinks;
    pc->sink_count = (size_t)c->output_count;
    pc->backfill = c->command == BP_CMD_BACKFILL;
    pc->from = c->from_block;
    pc->to = c->to_block;
    pc->start_set = c->start_set && !c->start_latest;
    pc->start_block = c->start_block;
    pc->confirmations = c->confirmations;
    pc->reorg_window = c->reorg_window;
    pc->workers = c->workers;
    pc->batch_size = c->batch_size;
    pc->max_memory = (size_t)c->max_memory;
    pc->max_retries = c->max_retries;
    pc->poll_interval = c->poll_interval;
    pc->stats_interval = c->stats_interval;
    pc->rpc_timeout = c->rpc_timeout;
    pc->fetch = c->fetch;
    pc->strict_node = c->strict_node;
    pc->expect_chain_id = c->preset ? c->preset->chain_id : 0;
    pc->preset = c->preset ? c->preset->name : NULL;
    pc->output_keep_going = c->output_keep_going;
    pc->lock_wait = c->lock_wait;
    pc->ws_url = c->realtime ? c->ws_url : NULL;
    pc->ws_reconnect_interval = c->ws_reconnect_interval;
    pc->ws_max_reconnect_attempts = c->ws_max_reconnect_attempts;
    pc->ws_stale_after = c->ws_stale_after;
    pc->chain_id_set = c->chain_id_set;
    pc->chain_id = c->chain_id;
}

/* ---- a chains: list: one pipeline per chain (core/multi.h) ---- */

typedef struct chains_run {
    size_t n;
    bp_config *cfgs; /* per chain: the top-level keys, environment, flags, its own keys */
    bp_multi_chain *chains;
    bp_endpoint_spec (*eps)[BP_MAX_RPCS];
    bp_pipeline_report *reports;
    bp_metrics **metrics;
} chains_run;

/* Is name one of --chain's comma-separated names? */
static bool chain_named(const char *list, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (strncmp(p, name, len) == 0 && (p[len] == ',' || p[len] == '\0'))
            return true;
    return false;
}

/* Every name of --chain is in the list. */
static int chain_names_known(const bp_config *cfg, bp_error *err)
{
    char names[512] = "";
    size_t len = 0;
    for (int i = 0; i < cfg->chain_count; i++)
        if (len < sizeof(names))
            len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s", i ? ", " : "",
                                    cfg->chain_names[i]);
    for (const char *p = cfg->chain; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        size_t n = strcspn(p, ",");
        bool found = false;
        for (int i = 0; i < cfg->chain_count && !found; i++)
            found = strlen(cfg->chain_names[i]) == n && strncmp(cfg->chain_names[i], p, n) == 0;
        if (!found)
            return bp_error_set(err, BP_EINVAL,
                                "--chain '%.*s': no such chain in config file %s (its "
                                "chains: %s)",
                                (int)n, p, cfg->config_file, names);
    }
    return 0;
}

/* The chains of the list this process runs, in list order: --chain NAME[,NAME...] (or CHAIN,
 * or chain:) names them, --shard K/N takes positions K, K+N, ... of those. */
static int chain_pick(const bp_config *cfg, int *picks, size_t *n, bp_error *err)
{
    int rc = cfg->chain ? chain_names_known(cfg, err) : 0;
    if (rc != 0)
        return rc;
    size_t pos = 0;
    *n = 0;
    for (int i = 0; i < cfg->chain_count; i++) {
        if (cfg->chain && !chain_named(cfg->chain, cfg->chain_names[i]))
            continue;
        if (pos++ % (size_t)cfg->shard_n == (size_t)cfg->shard_k - 1)
            picks[(*n)++] = i;
    }
    if (*n == 0)
        return bp_error_set(err, BP_EINVAL,
                            "--shard %d/%d: no chain of config file %s falls in it (%zu chains "
                            "to share)",
                            cfg->shard_k, cfg->shard_n, cfg->config_file, pos);
    if (cfg->shard_n > 1)
        bp_info("--shard %d/%d: %zu of %zu chains", cfg->shard_k, cfg->shard_n, *n, pos);
    return 0;
}

static int chains_load(enum bp_command cmd, int argc, char **argv, const bp_config *base,
                       chains_run *r, bp_error *err)
{
    int picks[BP_MAX_CHAINS];
    int rc = chain_pick(base, picks, &r->n, err);
    if (rc != 0)
        return rc;
    r->cfgs = calloc(r->n, sizeof(*r->cfgs));
    r->chains = calloc(r->n, sizeof(*r->chains));
    r->eps = calloc(r->n, sizeof(*r->eps));
    r->reports = calloc(r->n, sizeof(*r->reports));
    r->metrics = calloc(r->n, sizeof(*r->metrics));
    if (!r->cfgs || !r->chains || !r->eps || !r->reports || !r->metrics)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    for (size_t i = 0; i < r->n; i++) {
        /* loaded one after another: a released config is all zeros, so a failure here leaves
         * every config releasable */
        rc = bp_config_load_chain(&r->cfgs[i], cmd, argc, argv, picks[i], err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void chains_free(chains_run *r)
{
    for (size_t i = 0; r->cfgs && i < r->n; i++) {
        bp_metrics_free(r->metrics ? r->metrics[i] : NULL);
        bp_config_release(&r->cfgs[i]);
    }
    free(r->cfgs);
    free(r->chains);
    free(r->eps);
    free(r->reports);
    free(r->metrics);
}

/* Each chain's metrics module when an output writes the derived tables (one price source). */
static int chains_metrics(chains_run *r, bp_sink **sinks, bp_prices **prices, bp_error *err)
{
    int rc = open_metrics(&r->cfgs[0], sinks, &r->metrics[0], prices, err);
    for (size_t i = 1; rc == 0 && r->metrics[0] && i < r->n; i++)
        rc = chain_metrics(&r->cfgs[i], *prices, &r->metrics[i], err);
    return rc;
}

static void chains_map(chains_run *r, bp_sink **sinks, const bp_cli_api *api)
{
    for (size_t i = 0; i < r->n; i++) {
        bp_pipeline_config *pc = &r->chains[i].pc;
        map_config(&r->cfgs[i], sinks, r->eps[i], pc);
        pc->report = &r->reports[i];
        pc->metrics = r->metrics[i];
        if (api->push) {
            pc->batch_committed = bp_push_batch;
            pc->batch_ctx = api->push;
        }
        /* with --alert alone, the alerts watch the first chain */
        pc->stats = api->chain_stats ? api->chain_stats[i] : i == 0 ? api->stats : NULL;
    }
}

/* The state of each chain, its command narrowed to it (retry-failed runs that chain alone). */
static void chains_save_state(const chains_run *r, const char *dir, int argc, char **argv)
{
    char **args = calloc((size_t)argc + 3, sizeof(*args));
    for (size_t i = 0; args && i < r->n; i++) {
        bp_error serr;
        memcpy(args, argv, (size_t)argc * sizeof(*args));
        args[argc] = "--chain";
        args[argc + 1] = r->cfgs[i].chain;
        if (r->reports[i].chain[0] &&
            bp_state_save(dir, &r->reports[i], argc + 2, args, &serr) != 0)
            bp_err("%s", serr.msg);
    }
    free(args);
}

static int run_chains(enum bp_command cmd, int argc, char **argv, bp_config *base)
{
    chains_run r = {0};
    bp_error err = {0};
    bp_sink *sinks[BP_MAX_OUTPUTS] = {0};
    bp_cli_api api = {0};
    bp_prices *prices = NULL;
    const char *names[BP_MAX_CHAINS] = {0}; /* the API's, until it stops */
    int status = 2;
    int rc = chains_load(cmd, argc, argv, base, &r, &err);
    if (rc != 0) {
        bp_secret_scrub(err.msg);
        fprintf(stderr, "blockpipe: %s\n", err.msg);
        goto out;
    }
    bp_log_set_level((enum bp_log_level)base->log_level);
    bp_log_set_json(base->log_json);
    rc = bp_rpc_global_init(&err);
    rc = rc ? rc : bp_cli_api_settings(base, &err);
    rc = rc ? rc : open_outputs(base, sinks, &err);
    rc = rc ? rc : chains_metrics(&r, sinks, &prices, &err);
    for (size_t i = 0; i < r.n; i++)
        names[i] = r.cfgs[i].chain;
    rc = rc ? rc : bp_cli_api_start_chains(base, names, r.n, &api, &err);
    if (rc != 0) {
        bp_err("%s", err.msg);
        status = rc == BP_EINVAL ? 2 : 1;
        goto out;
    }
    install_signals();
    chains_map(&r, sinks, &api);
    size_t derived = 0;
    for (int i = 0; i < base->output_count; i++)
        derived += sinks[i]->derived;
    bp_multi_config mc = {.chains = r.chains,
                          .chain_count = r.n,
                          .sinks = sinks,
                          .sink_count = (size_t)base->output_count,
                          .derived_outputs = derived,
                          .max_memory = (size_t)base->max_memory,
                          .workers_total = base->workers_total};
    if (base->state_dir)
        bp_state_announce(base->state_dir);
    rc = bp_multi_run(&mc, &g_stop, &err);
    if (base->state_dir)
        chains_save_state(&r, base->state_dir, argc, argv);
    status = rc == 0 ? 0 : rc == BP_EINVAL && !r.chains[0].done ? 2 : 1;
    if (rc != 0)
        bp_err("%s", err.msg);
    else if (g_stop)
        bp_info("stopped by signal; everything complete was committed");
out:
    bp_cli_api_stop(&api);
    chains_free(&r);
    bp_prices_free(prices);
    for (int i = 0; i < BP_MAX_OUTPUTS; i++)
        bp_sink_close(sinks[i]);
    bp_rpc_global_cleanup();
    return status;
}

/* `blockpipe verify`: its exit status (0 equal, 3 differences, 4 all repaired; 1 with err set
 * on an error). sinks[0] is the output open for writing with --repair, else NULL. */
static int verify_range(const bp_config *cfg, bp_sink **sinks, bp_metrics *metrics, bp_error *err)
{
    bp_pipeline_config pc;
    bp_endpoint_spec eps[BP_MAX_RPCS];
    map_config(cfg, sinks, eps, &pc);
    bp_sink_settings set = {cfg->sink_settings, cfg->sink_setting_count};
    bp_verify_config vc = {
        .url = cfg->outputs[0], .settings = &set, .repair = sinks[0], .metrics = metrics};
    vc.report = stdout;
    bp_verify_result r;
    if (bp_verify_run(&pc, &vc, &g_stop, &r, err) != 0)
        return 1;
    if (g_stop)
        return bp_error_set(err, BP_EINVAL,
                            "stopped by signal after %" PRIu64 " blocks: the "
                            "range was not compared to its end",
                            r.blocks),
               1;
    printf("verify: blocks %" PRIu64 "..%" PRIu64 ": %" PRIu64 " blocks and %" PRIu64
           " node rows compared; %" PRIu64 " blocks differ (rows: %" PRIu64 " missing, %" PRIu64
           " extra, %" PRIu64 " duplicated, %" PRIu64 " altered)",
           cfg->from_block, cfg->to_block, r.blocks, r.rows, r.blocks_differ, r.missing, r.extra,
           r.duplicated, r.altered);
    if (cfg->repair)
        printf("; %" PRIu64 " repaired, %" PRIu64 " not", r.repaired, r.unrepaired);
    printf("; comparing took %.2f s (reading the output back and hashing it %.2f s)\n", r.compare_s,
           r.read_s);
    fflush(stdout);
    if (r.blocks_differ == 0)
        return 0;
    return cfg->repair && r.unrepaired == 0 ? 4 : 3;
}

static int run_command(enum bp_command cmd, int argc, char **argv)
{
    bp_config cfg;
    bp_error err = {0};
    bp_sink *sinks[BP_MAX_OUTPUTS] = {0};
    bp_cli_api api = {0};
    bp_metrics *metrics = NULL;
    bp_prices *prices = NULL;
    int status = 1;
    if (bp_config_load(&cfg, cmd, argc, argv, &err) != 0) {
        bp_secret_scrub(err.msg);
        fprintf(stderr, "blockpipe: %s\n", err.msg);
        bp_config_release(&cfg);
        return 2;
    }
    if (cfg.help) {
        fputs(bp_config_usage(cmd), stdout);
        status = 0;
        goto out;
    }
    if (cfg.chain_count > 0) {
        status = run_chains(cmd, argc, argv, &cfg);
        bp_config_release(&cfg);
        return status;
    }
    bp_log_set_level((enum bp_log_level)cfg.log_level);
    bp_log_set_json(cfg.log_json);
    if (bp_rpc_global_init(&err) != 0)
        goto fail;
    /* verify reads the output with a reader of its own; it writes only with --repair */
    bool verify = cmd == BP_CMD_VERIFY, writes = !verify || cfg.repair;
    int rc = verify ? 0 : bp_cli_api_settings(&cfg, &err);
    if (rc == 0 && writes)
        rc = open_outputs(&cfg, sinks, &err);
    if (rc == 0 && writes)
        rc = open_metrics(&cfg, sinks, &metrics, &prices, &err);
    if (rc == 0 && !verify)
        rc = bp_cli_api_start(&cfg, &api, &err);
    if (rc != 0) {
        status = rc == BP_EINVAL ? 2 : 1;
        goto fail;
    }
    install_signals();
    if (verify) {
        status = verify_range(&cfg, sinks, metrics, &err);
        if (status == 1)
            goto fail;
        goto out;
    }
    bp_pipeline_config pc;
    bp_endpoint_spec eps[BP_MAX_RPCS];
    bp_pipeline_report report = {0};
    map_config(&cfg, sinks, eps, &pc);
    pc.report = &report;
    pc.stats = api.stats; /* --api, --alert: they read the snapshot (NULL: the pipeline's own) */
    if (api.push) {       /* --api: the committed batches feed its push hub */
        pc.batch_committed = bp_push_batch;
        pc.batch_ctx = api.push;
    }
    pc.metrics = metrics;
    if (cfg.state_dir)
        bp_state_announce(cfg.state_dir);
    rc = bp_pipeline_run(&pc, &g_stop, &err);
    bp_error serr;
    if (cfg.state_dir && report.chain[0] &&
        bp_state_save(cfg.state_dir, &report, argc, argv, &serr) != 0)
        bp_err("%s", serr.msg);
    if (rc != 0)
        goto fail;
    status = 0;
    if (g_stop)
        bp_info("stopped by signal; everything complete was committed");
    goto out;
fail:
    bp_err("%s", err.msg);
out:
    bp_cli_api_stop(&api); /* before the outputs: the push hub read them */
    bp_metrics_free(metrics);
    bp_prices_free(prices);
    for (int i = 0; i < BP_MAX_OUTPUTS; i++)
        bp_sink_close(sinks[i]);
    bp_rpc_global_cleanup();
    bp_config_release(&cfg);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("blockpipe %s\n", BP_VERSION);
        return 0;
    }
    if (strcmp(cmd, "--help-markdown") == 0) { /* docs/CLI.md's tables (make docs) */
        bp_config_markdown(stdout);
        return 0;
    }
    if (strcmp(cmd, "--help-presets") == 0) { /* docs/CLI.md's chain presets (make docs) */
        fputs("<!-- Made by `blockpipe --help-presets` from the preset table "
              "(src/chain/presets.c); `make docs` rewrites it and a test checks it. -->\n\n",
              stdout);
        bp_chain_presets_markdown(stdout);
        return 0;
    }
    if (strcmp(cmd, "--help-columns") == 0) { /* docs/SCHEMA.md's table (make docs) */
        print_columns(stdout);
        return 0;
    }
    if (strcmp(cmd, "--help-derived") == 0) { /* docs/SCHEMA.md's derived tables (make docs) */
        print_derived(stdout);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "run") == 0)
        return run_command(BP_CMD_RUN, argc - 1, argv + 1);
    if (strcmp(cmd, "backfill") == 0)
        return run_command(BP_CMD_BACKFILL, argc - 1, argv + 1);
    if (strcmp(cmd, "verify") == 0)
        return run_command(BP_CMD_VERIFY, argc - 1, argv + 1);
    if (strcmp(cmd, "retry-failed") == 0)
        return bp_cmd_retry_failed(argc - 1, argv + 1);
    if (strcmp(cmd, "simnode") == 0)
        return bp_cmd_simnode(argc - 1, argv + 1);
    if (strcmp(cmd, "migrate") == 0)
        return bp_cmd_migrate(argc - 1, argv + 1);
    if (strcmp(cmd, "stream") == 0)
        return bp_cmd_stream(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0) {
        install_signals();
        return bp_cmd_serve(argc - 1, argv + 1, &g_stop);
    }
    fprintf(stderr, "blockpipe: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
