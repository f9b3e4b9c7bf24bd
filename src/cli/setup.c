/* setup.c - what the commands (run, backfill, verify) and the library
 * (include/blockpipe/blockpipe.h) make of a loaded config: its outputs, the analytics of the
 * outputs with derived tables, and the pipeline's settings. */
#include "cli/setup.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain/fetch.h"
#include "chain/presets.h"
#include "core/source.h"
#include "api/push.h"
#include "util/log.h"

/* The names of r's chains, comma-separated (NULL: out of memory). */
static char *chains_joined(const bp_chains *r)
{
    size_t len = 1;
    for (size_t i = 0; i < r->n; i++)
        len += strlen(r->cfgs[i].chain) + 1;
    char *out = malloc(len), *w = out;
    for (size_t i = 0; out && i < r->n; i++)
        w += sprintf(w, "%s%s", i ? "," : "", r->cfgs[i].chain);
    if (out && r->n == 0)
        *w = '\0';
    return out;
}

/* ClickHouse has no compare-and-set to build a lock on and Kafka's transactional ids fence
 * only a process with the same chains: with only such outputs nothing but the deployment keeps
 * a second process off a chain (docs/ARCHITECTURE.md "Chains over several hosts"). */
static void warn_unlocked(const bp_config *cfg, bp_sink **sinks)
{
    char titles[256] = "";
    size_t len = 0;
    for (int i = 0; i < cfg->output_count; i++) {
        if (sinks[i]->ops->claim)
            return;
        if (len < sizeof(titles))
            len += (size_t)snprintf(titles + len, sizeof(titles) - len, "%s%s", i ? ", " : "",
                                    sinks[i]->ops->title);
    }
    if (cfg->output_count > 0 && (cfg->command == BP_CMD_RUN || cfg->command == BP_CMD_BACKFILL))
        bp_warn("no output holds a chain writer lock (%s): nothing keeps a second blockpipe "
                "process off these chains, and two would write them twice; run each chain in "
                "one process only (--shard K/N or --chain lists), or add an output that locks "
                "(PostgreSQL, SQLite, Redis, a jsonl or etl-csv directory)",
                titles);
}

int bp_setup_outputs(const bp_config *cfg, const bp_chains *r, bp_sink **sinks, bp_error *err)
{
    bp_sink_settings set = {cfg->sink_settings, cfg->sink_setting_count, NULL};
    char *chains = r ? chains_joined(r) : NULL;
    if (r && !chains)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    set.chains = chains;
    int rc = 0;
    for (int i = 0; rc == 0 && i < cfg->output_count; i++) {
        rc = bp_sink_open(cfg->outputs[i], &set, &sinks[i], err);
        if (rc == 0)
            bp_info("output %d: %s", i + 1, sinks[i]->url);
    }
    if (rc == 0)
        warn_unlocked(cfg, sinks);
    free(chains);
    return rc;
}

/* The output the anomaly model reads its history back from (metrics.h bp_metrics_history):
 * the first that can be read. A reader is opened for each read: they come after a start or a
 * reorg only, and a connection kept between them could have gone stale. */
typedef struct history_src {
    char *url;
    bp_sink_settings set;
} history_src;

static int history_read(void *ctx, const bp_read_query *q, bp_read_row_fn fn, void *fctx,
                        bp_error *err)
{
    history_src *h = ctx;
    bp_sink_reader *r = NULL;
    int rc = bp_sink_reader_open(h->url, &h->set, &r, err);
    if (rc == 0)
        rc = bp_sink_read(r, q, fn, fctx, err);
    bp_sink_reader_close(r);
    return rc;
}

static void history_close(void *ctx)
{
    history_src *h = ctx;
    if (h)
        free(h->url);
    free(h);
}

static int history_of(const bp_config *cfg, bp_metrics_history *out, bp_error *err)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; cfg->ml && i < cfg->output_count; i++) {
        const bp_sink_ops *ops = bp_sink_find(cfg->outputs[i]);
        if (!ops || !ops->open_reader)
            continue;
        history_src *h = calloc(1, sizeof(*h));
        if (h)
            h->url = strdup(cfg->outputs[i]);
        if (!h || !h->url) {
            history_close(h);
            return bp_error_set(err, BP_ENOMEM, "out of memory");
        }
        h->set = (bp_sink_settings){cfg->sink_settings, cfg->sink_setting_count, NULL};
        *out = (bp_metrics_history){history_read, history_close, h};
        return 0;
    }
    return 0;
}

/* A chain's metrics module (the analytics of the outputs with derived tables). */
int bp_setup_chain_metrics(const bp_config *cfg, bp_prices *p, unsigned groups, bp_metrics **m,
                           bp_error *err)
{
    if (cfg->chain_type && strcmp(cfg->chain_type, "evm") != 0)
        return 0; /* the analytics are EVM's: an Arch chain writes its arch_* tables only */
    bp_metrics_config mc = {.reorg_window = cfg->reorg_window,
                            .native_symbol = cfg->native_token ? cfg->native_token : "ETH",
                            .price_max_age = cfg->price_max_age,
                            .prices = p,
                            .predictions = cfg->ml && (groups & BP_DG_BIT(BP_DG_ML_PREDICTIONS)),
                            .skip_groups = BP_DG_ALL & ~groups};
    if (history_of(cfg, &mc.history, err) != 0)
        return err->code;
    *m = bp_metrics_new(&mc, err);
    return *m ? 0 : err->code;
}

/* The analytics of the outputs with derived tables: the metrics module and its price source,
 * made when one of them wants it (*m stays NULL otherwise); the price fetcher started when
 * `start`. */
/* The derived groups some output writes (their union: one module computes for all of them). */
static unsigned wanted_groups(const bp_config *cfg, bp_sink **sinks)
{
    unsigned groups = 0;
    for (int i = 0; i < cfg->output_count; i++)
        if (sinks[i]->derived)
            groups |= sinks[i]->derived_groups ? sinks[i]->derived_groups : BP_DG_ALL;
    return groups;
}

/* An output that names ml_predictions in its list wants the chain scored (derived.h
 * bp_dgroups_check_ml). */
static int check_ml(const bp_config *cfg, bp_sink **sinks, bp_error *err)
{
    for (int i = 0; i < cfg->output_count; i++)
        if (sinks[i]->derived && bp_dgroups_check_ml(sinks[i]->derived_groups, cfg->ml, err) != 0)
            return bp_error_prefix(err, "output %d: ", i + 1);
    return 0;
}

static int setup_metrics(const bp_config *cfg, bp_sink **sinks, bp_metrics **m, bp_prices **p,
                         bool start, bp_error *err)
{
    unsigned groups = wanted_groups(cfg, sinks);
    if (!groups)
        return 0;
    if (check_ml(cfg, sinks, err) != 0)
        return err->code;
    unsigned need = BP_FETCH_TRANSACTIONS | BP_FETCH_RECEIPTS;
    if ((cfg->fetch & need) != need) {
        bp_warn("the derived analytics tables need transactions and receipts (--fetch); they "
                "are not written in this run");
        for (int i = 0; i < cfg->output_count; i++)
            sinks[i]->derived = false;
        return 0;
    }
    const char *symbol = cfg->native_token ? cfg->native_token : "ETH";
    /* a key alone means CoinGecko itself: its public host, which takes a demo key */
    const char *url = cfg->price_url           ? cfg->price_url
                      : cfg->coingecko_api_key ? "https://api.coingecko.com/api/v3"
                                               : NULL;
    if (url && !cfg->price_url)
        bp_info("prices: COINGECKO_API_KEY without --price-url: asking %s with the key as a "
                "demo key (a pro key: --price-url https://pro-api.coingecko.com/api/v3)",
                url);
    if (cfg->prices_file || url) {
        bp_prices_config pc = {.symbol = symbol,
                               .file = cfg->prices_file,
                               .url = url,
                               .coin_id = cfg->price_coin_id,
                               .api_key = cfg->coingecko_api_key,
                               .interval = cfg->price_interval,
                               .max_age = cfg->price_max_age,
                               .timeout = cfg->rpc_timeout};
        if (!(*p = bp_prices_new(&pc, err)) || (start && bp_prices_start(*p, err) != 0))
            return err->code;
        if (cfg->prices_file)
            bp_info("prices: %zu %s points from %s", bp_prices_count(*p), symbol, cfg->prices_file);
    }
    return bp_setup_chain_metrics(cfg, *p, groups, m, err);
}

int bp_setup_metrics(const bp_config *cfg, bp_sink **sinks, bp_metrics **m, bp_prices **p,
                     bp_error *err)
{
    return setup_metrics(cfg, sinks, m, p, true, err);
}

void bp_setup_pipeline(const bp_config *c, bp_sink **sinks, bp_endpoint_spec *eps,
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
    pc->source = bp_source_find(c->chain_type ? c->chain_type : "evm");
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
    pc->max_memory = (size_t)c->max_memory; /* 0: the default (pipeline.h) */
    pc->max_retries = c->max_retries;
    pc->failed_retry_interval = c->failed_retry_interval;
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

/* Is name one of the comma-separated names of list? */
static bool chain_named(const char *list, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (strncmp(p, name, len) == 0 && (p[len] == ',' || p[len] == '\0'))
            return true;
    return false;
}

/* Every name of cfg->chain is in the list. */
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

/* The chains of the list this process runs, in list order. */
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

/* An output whose rows do not name their chain cannot be shared by several chains, unless
 * its path gives each chain a directory of its own. */
static int chains_outputs_check(const bp_config *base, size_t chains, bp_error *err)
{
    for (int i = 0; chains > 1 && i < base->output_count; i++)
        if (strncmp(base->outputs[i], "etl-csv:", 8) == 0 && !strstr(base->outputs[i], "{chain}"))
            return bp_error_set(err, BP_EINVAL,
                                "output '%s' cannot be shared by %zu chains: ethereum-etl's CSV "
                                "files have no chain column, so the chains' rows could not be "
                                "told apart; put {chain} in its path for a directory per chain "
                                "(etl-csv:%s/{chain}), or use jsonl:DIR (each line names its "
                                "chain)",
                                base->outputs[i], chains, base->outputs[i] + 8);
    return 0;
}

int bp_chains_load(const bp_config *base, bp_chain_load_fn load, void *ctx, bp_chains *r,
                   bp_error *err)
{
    int picks[BP_MAX_CHAINS];
    memset(r, 0, sizeof(*r));
    int rc = chain_pick(base, picks, &r->n, err);
    rc = rc ? rc : chains_outputs_check(base, r->n, err);
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
        rc = load(ctx, picks[i], &r->cfgs[i], err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

void bp_chains_free(bp_chains *r)
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
    memset(r, 0, sizeof(*r));
}

/* Every chain prices with its own native token: the store of its symbol among *prices's. The
 * fetcher starts once every store is made: its first /simple/price asks for every token. */
int bp_chains_metrics(bp_chains *r, bp_sink **sinks, bp_prices **prices, bp_error *err)
{
    int rc = setup_metrics(&r->cfgs[0], sinks, &r->metrics[0], prices, false, err);
    for (size_t i = 1; rc == 0 && r->metrics[0] && i < r->n; i++) {
        const bp_config *c = &r->cfgs[i];
        bp_prices *p = *prices;
        if (check_ml(c, sinks, err) != 0)
            return err->code;
        if (p && !(p = bp_prices_for(*prices, c->native_token ? c->native_token : "ETH",
                                     c->price_coin_id, err)))
            return err->code;
        if (p != *prices && c->prices_file)
            bp_info("prices: %zu %s points from %s (chain %s)", bp_prices_count(p), c->native_token,
                    c->prices_file, c->chain);
        rc = bp_setup_chain_metrics(c, p, wanted_groups(&r->cfgs[0], sinks), &r->metrics[i], err);
    }
    return rc == 0 && *prices ? bp_prices_start(*prices, err) : rc;
}

void bp_chains_map(bp_chains *r, bp_sink **sinks, const bp_cli_api *api, bp_stats_hub **hubs)
{
    for (size_t i = 0; i < r->n; i++) {
        bp_pipeline_config *pc = &r->chains[i].pc;
        bp_setup_pipeline(&r->cfgs[i], sinks, r->eps[i], pc);
        pc->report = &r->reports[i];
        pc->metrics = r->metrics[i];
        if (api->push) {
            pc->batch_committed = bp_push_batch;
            pc->batch_ctx = api->push;
            pc->push_ring_bytes = bp_push_hub_ring_bytes(api->push);
            pc->push_memory_bytes = bp_push_hub_memory_bytes(api->push);
            pc->push_held = bp_push_hub_held;
        }
        /* --api or --alert read the chain's snapshot; else the caller's, else its own */
        pc->stats = api->chain_stats ? api->chain_stats[i] : hubs ? hubs[i] : NULL;
    }
}

void bp_chains_multi(const bp_config *base, bp_chains *r, bp_sink **sinks, size_t sink_count,
                     bp_multi_config *mc)
{
    size_t derived = 0;
    for (size_t i = 0; i < sink_count; i++)
        derived += sinks[i]->derived;
    *mc = (bp_multi_config){.chains = r->chains,
                            .chain_count = r->n,
                            .sinks = sinks,
                            .sink_count = sink_count,
                            .derived_outputs = derived,
                            .max_memory = (size_t)base->max_memory, /* 0: the default (multi.c) */
                            /* bp_chains_map gave each chain the API's one ring */
                            .push_ring_bytes = r->n ? r->chains[0].pc.push_ring_bytes : 0,
                            .push_memory_bytes = r->n ? r->chains[0].pc.push_memory_bytes : 0,
                            .workers_total = base->workers_total};
}
