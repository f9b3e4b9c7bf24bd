/* setup.c - what the commands (run, backfill, verify) and the library
 * (include/blockpipe/blockpipe.h) make of a loaded config: its outputs, the analytics of the
 * outputs with derived tables, and the pipeline's settings. */
#include "cli/setup.h"

#include <stdbool.h>
#include <string.h>

#include "chain/fetch.h"
#include "chain/presets.h"
#include "util/log.h"

int bp_setup_outputs(const bp_config *cfg, bp_sink **sinks, bp_error *err)
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
int bp_setup_chain_metrics(const bp_config *cfg, bp_prices *p, bp_metrics **m, bp_error *err)
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
int bp_setup_metrics(const bp_config *cfg, bp_sink **sinks, bp_metrics **m, bp_prices **p,
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
    return bp_setup_chain_metrics(cfg, *p, m, err);
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
