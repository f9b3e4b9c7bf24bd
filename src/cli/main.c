/* main.c - the blockpipe command: argument dispatch, signals, outputs, pipeline. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockpipe/columns.h"
#include "blockpipe/sink.h"
#include "chain/rpc.h"
#include "cli/commands_migrate.h"
#include "cli/commands_sim.h"
#include "cli/commands_stream.h"
#include "cli/config.h"
#include "cli/state.h"
#include "core/pipeline.h"
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
            "  blockpipe retry-failed --state-dir DIR          run again the commands that left "
            "failed blocks\n"
            "  blockpipe migrate URL                           create or upgrade an output's "
            "schema\n"
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

static void map_config(const bp_config *c, bp_sink **sinks, bp_endpoint_spec *eps,
                       bp_pipeline_config *pc)
{
    memset(pc, 0, sizeof(*pc));
    for (int i = 0; i < c->rpc_count; i++)
        eps[i] = (bp_endpoint_spec){.url = c->rpcs[i].url,
                                    .max_workers = c->rpcs[i].max_workers,
                                    .priority = c->rpcs[i].priority,
                                    .rps = c->rpcs[i].rps};
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
    pc->output_keep_going = c->output_keep_going;
    pc->ws_url = c->realtime ? c->ws_url : NULL;
    pc->ws_reconnect_interval = c->ws_reconnect_interval;
    pc->ws_max_reconnect_attempts = c->ws_max_reconnect_attempts;
    pc->ws_stale_after = c->ws_stale_after;
}

static int run_command(enum bp_command cmd, int argc, char **argv)
{
    bp_config cfg;
    bp_error err = {0};
    bp_sink *sinks[BP_MAX_OUTPUTS] = {0};
    int status = 1;
    if (bp_config_load(&cfg, cmd, argc, argv, &err) != 0) {
        fprintf(stderr, "blockpipe: %s\n", err.msg);
        bp_config_release(&cfg);
        return 2;
    }
    if (cfg.help) {
        fputs(bp_config_usage(cmd), stdout);
        status = 0;
        goto out;
    }
    bp_log_set_level((enum bp_log_level)cfg.log_level);
    bp_log_set_json(cfg.log_json);
    if (bp_rpc_global_init(&err) != 0)
        goto fail;
    int rc = open_outputs(&cfg, sinks, &err);
    if (rc != 0) {
        status = rc == BP_EINVAL ? 2 : 1;
        goto fail;
    }
    install_signals();
    bp_pipeline_config pc;
    bp_endpoint_spec eps[BP_MAX_RPCS];
    bp_pipeline_report report = {0};
    map_config(&cfg, sinks, eps, &pc);
    pc.report = &report;
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
    if (strcmp(cmd, "--help-columns") == 0) { /* docs/SCHEMA.md's table (make docs) */
        print_columns(stdout);
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
    if (strcmp(cmd, "retry-failed") == 0)
        return bp_cmd_retry_failed(argc - 1, argv + 1);
    if (strcmp(cmd, "simnode") == 0)
        return bp_cmd_simnode(argc - 1, argv + 1);
    if (strcmp(cmd, "migrate") == 0)
        return bp_cmd_migrate(argc - 1, argv + 1);
    if (strcmp(cmd, "stream") == 0)
        return bp_cmd_stream(argc - 1, argv + 1);
    fprintf(stderr, "blockpipe: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
