/* pipe.c - the library's pipeline handle (include/blockpipe/blockpipe.h): the config read by
 * cli/config.c, the outputs and analytics set up by cli/setup.c as the commands do, the
 * callbacks as one more output (callsink.c), and bp_pipeline_run on a thread of its own. */
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
#include "lib/callsink.h"
#include "util/log.h"
#include "util/url.h"

struct bp_pipe {
    bp_config cfg;
    bool cfg_loaded;
    bool curl;                          /* bp_rpc_global_init succeeded */
    bp_sink *sinks[BP_MAX_OUTPUTS + 1]; /* the configured outputs, then the callbacks' */
    size_t sink_count;
    bp_endpoint_spec eps[BP_MAX_RPCS];
    bp_pipeline_config pc;
    bp_pipeline_report report;
    bp_metrics *metrics;
    bp_prices *prices;
    bp_cli_api api;        /* the api / alert keys, as `blockpipe run` has them */
    bp_stats_hub *own_hub; /* the snapshot when the API has none */
    volatile sig_atomic_t stop;
    pthread_t thread;
    bool started, joined;
    atomic_bool done;
    int rc;
    bp_error err;
};

const char *bp_version(void)
{
    return BP_VERSION;
}

static int load_config(bp_pipe *p, const bp_option *opts, size_t n, bp_error *err)
{
    const char **keys = calloc(n ? n : 1, sizeof(*keys));
    const char **values = calloc(n ? n : 1, sizeof(*values));
    int rc = keys && values ? 0 : bp_error_set(err, BP_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!opts[i].key)
            rc = bp_error_set(err, BP_EINVAL, "option %zu has no key", i);
        keys[i] = opts[i].key;
        values[i] = opts[i].value;
    }
    if (rc == 0) {
        p->cfg_loaded = true;
        rc = bp_config_load_pairs(&p->cfg, keys, values, n, err);
    }
    if (rc == 0 && p->cfg.state_dir)
        rc = bp_error_set(err, BP_EINVAL,
                          "state_dir: the state file is the blockpipe command's (retry-failed); "
                          "the library reports failed blocks through bp_pipe_wait");
    free(keys);
    free(values);
    if (rc != 0)
        bp_secret_scrub(err->msg);
    return rc;
}

/* The outputs, the analytics, the API: what run_command in cli/main.c sets up. */
static int setup(bp_pipe *p, const bp_callbacks *cb, bp_error *err)
{
    bp_config *cfg = &p->cfg;
    bp_log_set_level((enum bp_log_level)cfg->log_level);
    bp_log_set_json(cfg->log_json);
    int rc = bp_rpc_global_init(err);
    p->curl = rc == 0;
    rc = rc ? rc : bp_cli_api_settings(cfg, err);
    rc = rc ? rc : bp_setup_outputs(cfg, p->sinks, err);
    p->sink_count = (size_t)cfg->output_count;
    rc = rc ? rc : bp_setup_metrics(cfg, p->sinks, &p->metrics, &p->prices, err);
    rc = rc ? rc : bp_cli_api_start(cfg, &p->api, err);
    if (rc == 0 && cb) {
        rc = bp_callsink_open(cb, &p->sinks[p->sink_count], err);
        p->sink_count += rc == 0;
    }
    if (rc == 0 && p->sink_count == 0)
        rc = bp_error_set(err, BP_EINVAL,
                          "nothing to write to: no output key and no callbacks given");
    if (rc == 0 && !p->api.stats && !(p->own_hub = bp_stats_hub_new()))
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    if (rc != 0)
        return rc;
    bp_setup_pipeline(cfg, p->sinks, p->eps, &p->pc);
    p->pc.sink_count = p->sink_count;
    p->pc.report = &p->report;
    p->pc.metrics = p->metrics;
    p->pc.stats = p->api.stats ? p->api.stats : p->own_hub;
    if (p->api.push) { /* the api key: the committed batches feed its push hub */
        p->pc.batch_committed = bp_push_batch;
        p->pc.batch_ctx = p->api.push;
    }
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

static void *run(void *arg)
{
    bp_pipe *p = arg;
    p->rc = bp_pipeline_run(&p->pc, &p->stop, &p->err);
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

void bp_pipe_stats(bp_pipe *p, bp_stats *out)
{
    bp_stats_hub_read(p->pc.stats ? p->pc.stats : p->own_hub, out);
}

void bp_pipe_close(bp_pipe *p)
{
    if (!p)
        return;
    bp_pipe_stop(p);
    bp_pipe_wait(p, NULL);
    bp_cli_api_stop(&p->api); /* before the outputs: the push hub read them */
    bp_metrics_free(p->metrics);
    bp_prices_free(p->prices);
    for (size_t i = 0; i < BP_MAX_OUTPUTS + 1; i++)
        bp_sink_close(p->sinks[i]);
    bp_stats_hub_free(p->own_hub);
    if (p->curl)
        bp_rpc_global_cleanup();
    if (p->cfg_loaded)
        bp_config_release(&p->cfg);
    free(p);
}
