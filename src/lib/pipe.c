/* pipe.c - the library's pipeline handle (include/blockpipe/blockpipe.h): the config read by
 * cli/config.c, the outputs and analytics set up by cli/setup.c as the commands do, the
 * callbacks as one more output (callsink.c), and on a thread of its own bp_pipeline_run, or
 * bp_multi_run for the chains of a chains: list (as `blockpipe run` with one). */
#include "blockpipe/blockpipe.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "chain/rpc.h"
#include "cli/commands_serve.h"
#include "cli/config.h"
#include "cli/setup.h"
#include "cli/state.h"
#include "core/multi.h"
#include "lib/callsink.h"
#include "util/log.h"
#include "util/url.h"

struct bp_pipe {
    bp_config cfg;
    bool cfg_loaded;
    bool curl;                          /* bp_rpc_global_init succeeded */
    bp_sink *sinks[BP_MAX_OUTPUTS + 1]; /* the configured outputs, then the callbacks' */
    size_t sink_count;
    /* one chain (no chains: list) */
    bp_endpoint_spec eps[BP_MAX_RPCS];
    bp_pipeline_config pc;
    bp_pipeline_report report;
    bp_metrics *metrics;
    /* a chains: list: chains.n > 0, one pipeline per chain */
    bp_chains chains;
    bp_multi_config mc;
    bp_prices *prices;
    bp_cli_api api;          /* the api / alert keys, as `blockpipe run` has them */
    bp_stats_hub **own_hubs; /* each chain's snapshot when the API has none */
    size_t hub_count;
    volatile sig_atomic_t stop;
    pthread_t thread;
    bool started, joined;
    atomic_bool done;
    int rc;
    bp_error err;
    bool progress; /* the progress key: the command's progress line on a terminal */
};

const char *bp_version(void)
{
    return BP_VERSION;
}

typedef struct pairs {
    const char **keys, **values;
    size_t n;
} pairs;

/* bp_chain_load_fn: chain `index` of the list, from the same pairs. */
static int load_chain_pairs(void *ctx, int index, bp_config *cfg, bp_error *err)
{
    const pairs *pr = ctx;
    return bp_config_load_pairs_chain(cfg, pr->keys, pr->values, pr->n, index, err);
}

/* The library's own key progress: "true" draws the command's progress line on a terminal
 * (off by default: the terminal is the embedding program's). */
static int progress_key(bp_pipe *p, const char *v, bp_error *err)
{
    if (v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0))
        p->progress = true;
    else if (v && (strcmp(v, "false") == 0 || strcmp(v, "0") == 0))
        p->progress = false;
    else
        return bp_error_set(err, BP_EINVAL, "progress: '%s' is not valid: expected true or false",
                            v ? v : "");
    return 0;
}

/* The config (the top level with a chains: list, and then each chain's). */
static int load_config(bp_pipe *p, const bp_option *opts, size_t n, bp_error *err)
{
    pairs pr = {calloc(n ? n : 1, sizeof(char *)), calloc(n ? n : 1, sizeof(char *)), 0};
    int rc = pr.keys && pr.values ? 0 : bp_error_set(err, BP_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!opts[i].key) {
            rc = bp_error_set(err, BP_EINVAL, "option %zu has no key", i);
        } else if (strcmp(opts[i].key, "progress") == 0) {
            rc = progress_key(p, opts[i].value, err);
        } else {
            pr.keys[pr.n] = opts[i].key;
            pr.values[pr.n++] = opts[i].value;
        }
    }
    if (rc == 0) {
        p->cfg_loaded = true;
        rc = bp_config_load_pairs(&p->cfg, pr.keys, pr.values, pr.n, err);
    }
    if (rc == 0 && p->cfg.chain_count > 0)
        rc = bp_chains_load(&p->cfg, load_chain_pairs, &pr, &p->chains, err);
    free(pr.keys);
    free(pr.values);
    if (rc != 0)
        bp_secret_scrub(err->msg);
    return rc;
}

/* The API (with the api or alert key) and the snapshots bp_pipe_stats reads. */
static int setup_api(bp_pipe *p, bp_error *err)
{
    const char *names[BP_MAX_CHAINS];
    for (size_t i = 0; i < p->chains.n; i++)
        names[i] = p->chains.cfgs[i].chain; /* they outlive the API */
    int rc = p->chains.n ? bp_cli_api_start_chains(&p->cfg, names, p->chains.n, &p->api, err)
                         : bp_cli_api_start(&p->cfg, &p->api, err);
    if (rc != 0 || p->api.chain_stats || (p->api.stats && !p->chains.n))
        return rc;
    p->hub_count = p->chains.n ? p->chains.n : 1;
    if (!(p->own_hubs = calloc(p->hub_count, sizeof(*p->own_hubs))))
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    for (size_t i = 0; i < p->hub_count; i++)
        if (!(p->own_hubs[i] = bp_stats_hub_new()))
            return bp_error_set(err, BP_ENOMEM, "out of memory");
    return 0;
}

/* One chain: its pipeline's settings. */
static void setup_one(bp_pipe *p)
{
    bp_setup_pipeline(&p->cfg, p->sinks, p->eps, &p->pc);
    p->pc.sink_count = p->sink_count;
    p->pc.report = &p->report;
    p->pc.metrics = p->metrics;
    p->pc.stats = p->api.stats ? p->api.stats : p->own_hubs[0];
    if (p->api.push) { /* the api key: the committed batches feed its push hub */
        p->pc.batch_committed = bp_push_batch;
        p->pc.batch_ctx = p->api.push;
        p->pc.push_ring_bytes = bp_push_hub_ring_bytes(p->api.push); /* charged to the budget */
        p->pc.push_memory_bytes = bp_push_hub_memory_bytes(p->api.push);
        p->pc.push_held = bp_push_hub_held;
    }
}

/* The outputs, the analytics, the API: what run_command and run_chains in cli/main.c set up. */
static int setup(bp_pipe *p, const bp_callbacks *cb, bp_error *err)
{
    bp_config *cfg = &p->cfg;
    bp_log_set_level((enum bp_log_level)cfg->log_level);
    bp_log_set_json(cfg->log_json);
    bp_log_set_status(p->progress);
    int rc = bp_rpc_global_init(err);
    p->curl = rc == 0;
    rc = rc ? rc : bp_cli_api_settings(cfg, err);
    rc = rc ? rc : bp_setup_outputs(cfg, p->chains.n ? &p->chains : NULL, p->sinks, err);
    p->sink_count = (size_t)cfg->output_count;
    if (rc == 0)
        rc = p->chains.n ? bp_chains_metrics(&p->chains, p->sinks, &p->prices, err)
                         : bp_setup_metrics(cfg, p->sinks, &p->metrics, &p->prices, err);
    rc = rc ? rc : setup_api(p, err);
    if (rc == 0 && cb) {
        rc = bp_callsink_open(cb, &p->sinks[p->sink_count], err);
        p->sink_count += rc == 0;
    }
    if (rc == 0 && p->sink_count == 0)
        rc = bp_error_set(err, BP_EINVAL,
                          "nothing to write to: no output key and no callbacks given");
    if (rc != 0)
        return rc;
    if (!p->chains.n) {
        setup_one(p);
        return 0;
    }
    bp_chains_map(&p->chains, p->sinks, &p->api, p->own_hubs);
    bp_chains_multi(cfg, &p->chains, p->sinks, p->sink_count, &p->mc);
    return 0;
}

int bp_pipe_open(const bp_option *opts, size_t n, const bp_callbacks *cb, bp_pipe **out,
                 bp_error *err)
{
    *out = NULL;
    bp_error_clear(err);
    bp_pipe *p = calloc(1, sizeof(*p));
    if (!p)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    int rc = load_config(p, opts, n, err);
    rc = rc ? rc : setup(p, cb, err);
    if (rc != 0) {
        bp_pipe_close(p);
        return rc;
    }
    *out = p;
    return 0;
}

/* state_dir: each chain's report, as the commands save it (no command to run again). */
static void save_state(const bp_pipe *p)
{
    size_t n = p->chains.n ? p->chains.n : 1;
    for (size_t i = 0; i < n; i++) {
        const bp_pipeline_report *r = p->chains.n ? &p->chains.reports[i] : &p->report;
        bp_error serr;
        if (r->chain[0] && bp_state_save(p->cfg.state_dir, r, 0, NULL, &serr) != 0)
            bp_err("%s", serr.msg);
    }
}

static void *run(void *arg)
{
    bp_pipe *p = arg;
    if (p->cfg.state_dir)
        bp_state_announce(p->cfg.state_dir);
    p->rc = p->chains.n ? bp_multi_run(&p->mc, &p->stop, &p->err)
                        : bp_pipeline_run(&p->pc, &p->stop, &p->err);
    if (p->cfg.state_dir)
        save_state(p);
    atomic_store(&p->done, true);
    return NULL;
}

int bp_pipe_start(bp_pipe *p, bp_error *err)
{
    if (p->started)
        return bp_error_set(err, BP_EINVAL, "the pipeline was started already");
    if (bp_thread_create(&p->thread, NULL, run, p) != 0)
        return bp_error_set(err, BP_ENOMEM, "cannot start the pipeline's thread");
    p->started = true;
    return 0;
}

void bp_pipe_stop(bp_pipe *p)
{
    if (p)
        p->stop = 1;
}

int bp_pipe_done(bp_pipe *p)
{
    return atomic_load(&p->done) ? 1 : 0;
}

int bp_pipe_wait(bp_pipe *p, bp_error *err)
{
    if (!p->started)
        return 0;
    if (!p->joined) {
        pthread_join(p->thread, NULL);
        p->joined = true;
    }
    if (p->rc != 0 && err)
        *err = p->err;
    return p->rc;
}

size_t bp_pipe_chains(bp_pipe *p)
{
    return p->chains.n ? p->chains.n : 1;
}

int bp_pipe_chain_stats(bp_pipe *p, size_t i, bp_stats *out)
{
    if (i >= bp_pipe_chains(p)) {
        memset(out, 0, sizeof(*out));
        return BP_EINVAL;
    }
    bp_stats_hub_read(p->chains.n ? p->chains.chains[i].pc.stats : p->pc.stats, out);
    return 0;
}

void bp_pipe_stats(bp_pipe *p, bp_stats *out)
{
    bp_pipe_chain_stats(p, 0, out);
}

void bp_pipe_close(bp_pipe *p)
{
    if (!p)
        return;
    bp_pipe_stop(p);
    bp_pipe_wait(p, NULL);
    bp_cli_api_stop(&p->api); /* before the outputs: the push hub read them */
    bp_metrics_free(p->metrics);
    bp_chains_free(&p->chains); /* each chain's metrics, before their price source */
    bp_prices_free(p->prices);
    for (size_t i = 0; i < BP_MAX_OUTPUTS + 1; i++)
        bp_sink_close(p->sinks[i]);
    for (size_t i = 0; p->own_hubs && i < p->hub_count; i++)
        bp_stats_hub_free(p->own_hubs[i]);
    free(p->own_hubs);
    if (p->curl)
        bp_rpc_global_cleanup();
    if (p->cfg_loaded)
        bp_config_release(&p->cfg);
    free(p);
}
