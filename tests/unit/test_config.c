/* test_config.c - bp_config_load: precedence, config files, validation messages, usage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "chain/fetch.h"
#include "cli/config.h"
#include "metrics/metrics.h"
#include "sink/registry.h"
#include "util/log.h"
#include "util/url.h"

static const char *const g_env[] = {
    "RPC_URL",
    "CHAIN",
    "DATABASE_URL",
    "OUTPUT",
    "START_BLOCK",
    "CONFIRMATIONS",
    "REORG_WINDOW",
    "WORKERS",
    "BATCH_SIZE",
    "MAX_MEMORY",
    "POLLING_INTERVAL",
    "STATS_INTERVAL",
    "FETCH",
    "STRICT_NODE",
    "MAX_RETRIES",
    "RPC_TIMEOUT",
    "BLOCKPIPE_CONFIG",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "STATE_DIR",
    "PG_SCHEMA",
    "WAIT_FOR_DB",
    "CHECKPOINT_NAME",
    "WEBSOCKET_URL",
    "ENABLE_REALTIME",
    "STREAMING_ENABLED",
    "WS_RECONNECT_INTERVAL",
    "WS_MAX_RECONNECT_ATTEMPTS",
    "WS_STALE_AFTER",
    "ANKR_RPC_URL",
    "ANKR_POLLING_INTERVAL",
    "ANKR_BATCH_SIZE",
    "CLICKHOUSE_URL",
    "CLICKHOUSE_DB",
    "RPC_HEADER",
    "WS_HEADER",
    "RPC_CA_FILE",
    "RPC_CERT_FILE",
    "RPC_KEY_FILE",
    "ALERT_WEBHOOK",
    "PRICE_COIN_ID",
    "NATIVE_TOKEN",
    "REDIS_URL",
};

static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(g_env) / sizeof(g_env[0]); i++)
        unsetenv(g_env[i]);
    return 0;
}

typedef struct result {
    bp_config cfg;
    bp_error err;
    int rc;
} result;

/* Loads `cmd` with the NULL-terminated arguments after it. */
static int load(result *r, enum bp_command cmd, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;
    argv[argc++] = cmd == BP_CMD_RUN ? "run" : cmd == BP_CMD_MIGRATE ? "migrate" : "backfill";
    va_start(ap, cmd);
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 63;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    memset(&r->err, 0, sizeof(r->err));
    r->rc = bp_config_load(&r->cfg, cmd, argc, argv, &r->err);
    return r->rc;
}

/* Writes text to a new temporary file whose name ends in suffix; path gets its name. */
static void temp_file(char *path, size_t size, const char *suffix, const char *text)
{
    snprintf(path, size, "/tmp/bp_test_config_XXXXXX%s", suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* Asserts the load failed with a message holding every given fragment. */
static void expect_error(result *r, ...)
{
    va_list ap;
    assert_int_equal(r->rc, BP_EINVAL);
    va_start(ap, r);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;) {
        if (!strstr(r->err.msg, s))
            fail_msg("message '%s' lacks '%s'", r->err.msg, s);
    }
    va_end(ap);
    bp_config_release(&r->cfg);
}

#define RPC "--rpc", "http://127.0.0.1:8545"

static void test_defaults_run(void **state)
{
    result r;
    (void)state;
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, NULL), 0);
    bp_config *c = &r.cfg;
    assert_int_equal(c->command, BP_CMD_RUN);
    assert_int_equal(c->rpc_count, 1);
    assert_string_equal(c->rpcs[0].url, "http://127.0.0.1:8545");
    assert_int_equal(c->rpcs[0].max_workers, 0);
    assert_null(c->chain);
    assert_int_equal(c->output_count, 1);
    assert_string_equal(c->outputs[0], "sqlite:blockpipe.db");
    assert_true(c->start_latest);
    assert_false(c->start_set);
    assert_false(c->help);
    assert_int_equal(c->confirmations, 0);
    assert_int_equal(c->reorg_window, 128);
    assert_int_equal(c->workers, 8);
    assert_int_equal(c->batch_size, 100);
    assert_int_equal(c->max_memory, 0); /* not given: 96 MiB per chain (cli/setup.c) */
    assert_true(c->poll_interval == 1.0);
    assert_true(c->stats_interval == 10.0);
    assert_int_equal(c->fetch, BP_FETCH_ALL);
    assert_int_equal(c->max_retries, 5);
    assert_true(c->rpc_timeout == 30.0);
    assert_int_equal(c->log_level, BP_LOG_INFO);
    assert_false(c->log_json);
    assert_null(c->config_file);
    bp_config_release(c);
    bp_config_release(c); /* twice is harmless */
}

static void test_defaults_backfill(void **state)
{
    result r;
    (void)state;
    assert_int_equal(load(&r, BP_CMD_BACKFILL, RPC, "--from", "5", "--to", "9", NULL), 0);
    assert_false(r.cfg.start_latest);
    assert_true(r.cfg.from_set && r.cfg.to_set);
    assert_int_equal(r.cfg.from_block, 5);
    assert_int_equal(r.cfg.to_block, 9);
    bp_config_release(&r.cfg);
}

static void test_every_flag(void **state)
{
    result r;
    (void)state;
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, "--chain", "mainnet", "--start-block", "17",
                          "--confirmations", "12", "--reorg-window", "64", "--workers", "1024",
                          "--batch-size", "100000", "--poll-interval", "0.01", "--stats-interval",
                          "86400", "--fetch", "blocks,logs", "--max-retries", "0", "--rpc-timeout",
                          "2.5", "--log-level", "debug", "--log-format", "json", NULL),
                     0);
    bp_config *c = &r.cfg;
    assert_string_equal(c->chain, "mainnet");
    assert_true(c->start_set);
    assert_false(c->start_latest);
    assert_int_equal(c->start_block, 17);
    assert_int_equal(c->confirmations, 12);
    assert_int_equal(c->reorg_window, 64);
    assert_int_equal(c->workers, 1024);
    assert_int_equal(c->batch_size, 100000);
    assert_true(c->poll_interval == 0.01);
    assert_true(c->stats_interval == 86400);
    assert_true(c->fetch & BP_FETCH_LOGS);
    assert_true(c->fetch & BP_FETCH_BLOCKS);
    assert_false(c->fetch & BP_FETCH_RECEIPTS);
    assert_int_equal(c->max_retries, 0);
    assert_true(c->rpc_timeout == 2.5);
    assert_int_equal(c->log_level, BP_LOG_DEBUG);
    assert_true(c->log_json);
    bp_config_release(c);
}

static void test_equals_form(void **state)
{
    result r;
    (void)state;
    assert_int_equal(load(&r, BP_CMD_RUN, "--rpc=https://node.example/v1?key=a=b", "--workers=3",
                          "--output=jsonl:out/", "--start-block=latest", NULL),
                     0);
    assert_string_equal(r.cfg.rpcs[0].url, "https://node.example/v1?key=a=b");
    assert_int_equal(r.cfg.workers, 3);
    assert_string_equal(r.cfg.outputs[0], "jsonl:out/");
    assert_true(r.cfg.start_latest);
    bp_config_release(&r.cfg);
    load(&r, BP_CMD_RUN, RPC, "--workers=", NULL);
    expect_error(&r, "--workers", "''", "expected an integer from 1 to 1024", NULL);
}

static void test_repeated_flags(void **state)
{
    result r;
    (void)state;
    setenv("OUTPUT", "sqlite:env.db", 1);
    setenv("RPC_URL", "http://env:8545", 1);
    assert_int_equal(load(&r, BP_CMD_RUN, "--rpc", "http://a:1", "--rpc", "https://b:2", "--output",
                          "sqlite:a.db", "--output", "etl-csv:out/", NULL),
                     0);
    assert_int_equal(r.cfg.rpc_count, 2);
    assert_string_equal(r.cfg.rpcs[0].url, "http://a:1");
    assert_string_equal(r.cfg.rpcs[1].url, "https://b:2");
    assert_int_equal(r.cfg.output_count, 2); /* flags replace the environment's output */
    assert_string_equal(r.cfg.outputs[0], "sqlite:a.db");
    assert_string_equal(r.cfg.outputs[1], "etl-csv:out/");
    bp_config_release(&r.cfg);

    char *argv[2 + 2 * (BP_MAX_OUTPUTS + 1)];
    int argc = 0;
    argv[argc++] = "run";
    for (int i = 0; i <= BP_MAX_OUTPUTS; i++) {
        argv[argc++] = "--output";
        argv[argc++] = "sqlite:x.db";
    }
    r.rc = bp_config_load(&r.cfg, BP_CMD_RUN, argc, argv, &r.err);
    expect_error(&r, "--output", "at most 16", NULL);
}

/* A bad --alert rule is named once by where it came from ("--alert: 'x' is not valid", not
 * "--alert: --alert: ..."). */
static void test_alert_bad_rule_named_once(void **state)
{
    result r;
    (void)state;
    load(&r, BP_CMD_RUN, RPC, "--alert", "nonsense>5", NULL);
    assert_true(strncmp(r.err.msg, "--alert: 'nonsense>5' is not valid", 34) == 0);
    expect_error(&r, "NAME>VALUE", NULL);
    setenv("ALERTS", "lag>5,nonsense", 1);
    load(&r, BP_CMD_RUN, RPC, NULL);
    unsetenv("ALERTS");
    assert_null(strstr(r.err.msg, "--alert"));
    expect_error(&r, "ALERTS", "'nonsense' is not valid", NULL);
}

/* --alert-webhook is repeatable: the environment's comma list, replaced by the flags; a
 * config file's list; at most BP_MAX_WEBHOOKS. */
static void test_alert_webhooks(void **state)
{
    result r;
    (void)state;
    setenv("ALERT_WEBHOOK", "http://env:1/a,http://env:2/b", 1);
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, NULL), 0);
    assert_int_equal(r.cfg.alert_webhook_count, 2);
    assert_string_equal(r.cfg.alert_webhooks[1], "http://env:2/b");
    bp_config_release(&r.cfg);
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, "--alert-webhook", "http://f:1/x,y",
                          "--alert-webhook", "http://f:2/z", NULL),
                     0);
    assert_int_equal(r.cfg.alert_webhook_count, 2); /* the flags', a comma kept in a flag */
    assert_string_equal(r.cfg.alert_webhooks[0], "http://f:1/x,y");
    assert_string_equal(r.cfg.alert_webhooks[1], "http://f:2/z");
    bp_config_release(&r.cfg);
    unsetenv("ALERT_WEBHOOK");
    char path[64];
    temp_file(path, sizeof(path), ".yaml",
              "alert_webhook:\n  - http://file:1/a\n  - http://file:2/b\n  - http://file:3/c\n");
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, "--config", path, NULL), 0);
    assert_int_equal(r.cfg.alert_webhook_count, 3);
    assert_string_equal(r.cfg.alert_webhooks[2], "http://file:3/c");
    bp_config_release(&r.cfg);
    unlink(path);
    setenv("ALERT_WEBHOOK",
           "http://1,http://2,http://3,http://4,http://5,http://6,http://7,"
           "http://8,http://9",
           1);
    load(&r, BP_CMD_RUN, RPC, NULL);
    expect_error(&r, "ALERT_WEBHOOK", "at most 8", NULL);
    unsetenv("ALERT_WEBHOOK");
}

static void test_precedence(void **state)
{
    char path[64];
    result r;
    (void)state;
    temp_file(path, sizeof(path), ".yaml",
              "rpc: http://file:8545\nworkers: 2\nbatch_size: 20\nchain: filechain\n"
              "log_level: warn\noutputs: [sqlite:file.db, jsonl:file/]\npoll_interval: 0.5\n");
    setenv("BLOCKPIPE_CONFIG", path, 1);
    setenv("WORKERS", "3", 1);
    setenv("BATCH_SIZE", "30", 1);
    setenv("CHAIN", "envchain", 1);
    /* flag > env > file > default, one key at each level */
    assert_int_equal(load(&r, BP_CMD_RUN, "--workers", "4", NULL), 0);
    assert_int_equal(r.cfg.workers, 4);             /* flag */
    assert_int_equal(r.cfg.batch_size, 30);         /* env over file */
    assert_string_equal(r.cfg.chain, "envchain");   /* env over file */
    assert_int_equal(r.cfg.log_level, BP_LOG_WARN); /* file */
    assert_true(r.cfg.poll_interval == 0.5);        /* file */
    assert_int_equal(r.cfg.max_retries, 5);         /* default */
    assert_string_equal(r.cfg.rpcs[0].url, "http://file:8545");
    assert_int_equal(r.cfg.output_count, 2);
    assert_string_equal(r.cfg.outputs[1], "jsonl:file/");
    assert_string_equal(r.cfg.config_file, path);
    bp_config_release(&r.cfg);

    /* env outputs replace the file's; flag rpc replaces the file's; no merging of levels */
    setenv("DATABASE_URL", "sqlite:env.db", 1);
    assert_int_equal(load(&r, BP_CMD_RUN, "--rpc", "http://flag:1", "--chain", "flagchain", NULL),
                     0);
    assert_int_equal(r.cfg.output_count, 1);
    assert_string_equal(r.cfg.outputs[0], "sqlite:env.db");
    assert_int_equal(r.cfg.rpc_count, 1);
    assert_string_equal(r.cfg.rpcs[0].url, "http://flag:1");
    assert_string_equal(r.cfg.chain, "flagchain");
    bp_config_release(&r.cfg);

    /* OUTPUT is preferred to DATABASE_URL; an empty variable counts as unset */
    setenv("OUTPUT", "jsonl:o/", 1);
    setenv("WORKERS", "", 1);
    assert_int_equal(load(&r, BP_CMD_RUN, NULL), 0);
    assert_string_equal(r.cfg.outputs[0], "jsonl:o/");
    assert_int_equal(r.cfg.workers, 2);
    bp_config_release(&r.cfg);

    /* --config beats BLOCKPIPE_CONFIG */
    char other[64];
    temp_file(other, sizeof(other), ".yml", "rpc: http://other:1\nbatch_size: 7\n");
    unsetenv("BATCH_SIZE");
    assert_int_equal(load(&r, BP_CMD_RUN, "--config", other, NULL), 0);
    assert_string_equal(r.cfg.rpcs[0].url, "http://other:1");
    assert_int_equal(r.cfg.batch_size, 7);
    bp_config_release(&r.cfg);
    unlink(path);
    unlink(other);
}

static void test_json_rpcs_file(void **state)
{
    char path[64];
    result r;
    (void)state;
    temp_file(path, sizeof(path), ".json",
              "{\"rpcs\": [{\"url\": \"http://localhost:8545\", \"max_workers\": 5, "
              "\"priority\": 1}]}");
    assert_int_equal(load(&r, BP_CMD_RUN, "--config", path, NULL), 0);
    assert_int_equal(r.cfg.rpc_count, 1);
    assert_string_equal(r.cfg.rpcs[0].url, "http://localhost:8545");
    assert_int_equal(r.cfg.rpcs[0].max_workers, 5);
    assert_int_equal(r.cfg.rpcs[0].priority, 1);
    bp_config_release(&r.cfg);
    unlink(path);

    temp_file(path, sizeof(path), ".json",
              "{\"rpcs\": [{\"url\": \"http://a:1\"}, \"https://b:2\"], \"workers\": 16, "
              "\"poll_interval\": 0.25, \"output\": \"etl-csv:out/\", "
              "\"fetch\": [\"blocks\", \"receipts\"], \"log_format\": \"json\"}");
    assert_int_equal(load(&r, BP_CMD_RUN, "--config", path, NULL), 0);
    assert_int_equal(r.cfg.rpc_count, 2);
    assert_string_equal(r.cfg.rpcs[1].url, "https://b:2");
    assert_int_equal(r.cfg.workers, 16);
    assert_true(r.cfg.poll_interval == 0.25);
    assert_string_equal(r.cfg.outputs[0], "etl-csv:out/");
    assert_true(r.cfg.fetch & BP_FETCH_RECEIPTS);
    assert_false(r.cfg.fetch & BP_FETCH_LOGS);
    assert_true(r.cfg.log_json);
    bp_config_release(&r.cfg);
    unlink(path);
}

/* --rpc takes a URL or an inline endpoint object; rps is a per-endpoint request rate. */
static void test_inline_rpc_objects(void **state)
{
    (void)state;
    result r;
    assert_int_equal(load(&r, BP_CMD_RUN, "--rpc",
                          "{\"url\": \"http://a:1\", \"max_workers\": 4, \"priority\": 2, "
                          "\"rps\": 12.5}",
                          "--rpc", "http://b:2", NULL),
                     0);
    assert_int_equal(r.cfg.rpc_count, 2);
    assert_string_equal(r.cfg.rpcs[0].url, "http://a:1");
    assert_int_equal(r.cfg.rpcs[0].max_workers, 4);
    assert_int_equal(r.cfg.rpcs[0].priority, 2);
    assert_true(r.cfg.rpcs[0].rps > 12.49 && r.cfg.rpcs[0].rps < 12.51);
    assert_string_equal(r.cfg.rpcs[1].url, "http://b:2");
    assert_true(r.cfg.rpcs[1].rps == 0);
    bp_config_release(&r.cfg);

    load(&r, BP_CMD_RUN, "--rpc", "{\"url\": \"http://a:1\", \"rps\": \"fast\"}", NULL);
    expect_error(&r, "rpcs[0].rps (--rpc)", "'fast'", "requests per second", NULL);
    load(&r, BP_CMD_RUN, "--rpc", "{\"url\": \"http://a:1\", \"weight\": 1}", NULL);
    expect_error(&r, "unknown key 'rpcs[0].weight' in --rpc", NULL);
    load(&r, BP_CMD_RUN, "--rpc", "{\"url\": \"ws://a:1\"}", NULL);
    expect_error(&r, "rpcs[0].url (--rpc)", "WebSocket", NULL);
    load(&r, BP_CMD_RUN, "--rpc", "{\"url\": [", NULL);
    expect_error(&r, "--rpc", "JSON object", NULL);
}

/* Provider credentials: headers per endpoint and by flag, TLS files, ${NAME} and @FILE, and
 * no refused value ever quoting a key. */
static void test_credentials(void **state)
{
    (void)state;
    result r;
    char keyfile[64], cfgfile[64];
    temp_file(keyfile, sizeof(keyfile), ".key", "FILEKEY123456\n");
    setenv("BP_TEST_KEY", "ENVKEY987654", 1);
    char file_url[128], inline_rpc[512];
    snprintf(file_url, sizeof(file_url), "@%s", keyfile);
    snprintf(inline_rpc, sizeof(inline_rpc),
             "{\"url\": \"https://a/v2/${BP_TEST_KEY}\", \"headers\": {\"Authorization\": "
             "\"Bearer ${BP_TEST_KEY}\", \"X-Key\": \"@%s\"}, \"ca_file\": \"%s\"}",
             keyfile, keyfile);
    assert_int_equal(load(&r, BP_CMD_RUN, "--rpc", inline_rpc, "--rpc", "http://b:2",
                          "--rpc-header", "x-api-key: ${BP_TEST_KEY}", "--cert-file", keyfile,
                          "--ws", "wss://w/${BP_TEST_KEY}", "--ws-header", "X-Ws: plain", NULL),
                     0);
    assert_string_equal(r.cfg.rpcs[0].url, "https://a/v2/ENVKEY987654");
    bp_endpoint_auth a;
    bp_config_auth(&r.cfg, 0, &a);
    assert_int_equal(a.header_count, 2);
    assert_string_equal(a.headers[0], "Authorization: Bearer ENVKEY987654");
    assert_string_equal(a.headers[1], "X-Key: FILEKEY123456");
    assert_string_equal(a.ca_file, keyfile);
    assert_string_equal(a.cert_file, keyfile); /* the default of --cert-file */
    bp_config_auth(&r.cfg, 1, &a);             /* no headers of its own: --rpc-header's */
    assert_int_equal(a.header_count, 1);
    assert_string_equal(a.headers[0], "x-api-key: ENVKEY987654");
    assert_null(a.ca_file);
    bp_config_auth(&r.cfg, -1, &a); /* the WebSocket: --ws-header only */
    assert_string_equal(r.cfg.ws_url, "wss://w/ENVKEY987654");
    assert_int_equal(a.header_count, 1);
    assert_string_equal(a.headers[0], "X-Ws: plain");
    char text[128] = "got ENVKEY987654 and FILEKEY123456";
    bp_secret_scrub(text); /* read values are secrets from now on */
    assert_string_equal(text, "got *** and ***");
    bp_config_release(&r.cfg);

    assert_int_equal(load(&r, BP_CMD_RUN, "--rpc", file_url, NULL), BP_EINVAL); /* not a URL */
    assert_null(strstr(r.err.msg, "FILEKEY123456"));
    expect_error(&r, "--rpc", "expected an http:// or https:// URL", NULL);

    /* a config file: rpcs with headers, rpc_headers as a mapping, ws as an object */
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "rpcs:\n  - url: http://c:3\n    headers: {Authorization: \"Basic ${BP_TEST_KEY}\"}"
             "\n    key_file: %s\nrpc_headers:\n  X-One: \"1\"\n"
             "ws: {url: \"ws://w:1\", headers: [\"X-W: @%s\"], ca_file: %s}\n",
             keyfile, keyfile, keyfile);
    temp_file(cfgfile, sizeof(cfgfile), ".yaml", yaml);
    assert_int_equal(load(&r, BP_CMD_RUN, "--config", cfgfile, NULL), 0);
    bp_config_auth(&r.cfg, 0, &a);
    assert_string_equal(a.headers[0], "Authorization: Basic ENVKEY987654");
    assert_string_equal(a.key_file, keyfile);
    assert_int_equal(r.cfg.rpc_creds.header_count, 1);
    bp_config_auth(&r.cfg, -1, &a);
    assert_string_equal(a.headers[0], "X-W: FILEKEY123456");
    assert_string_equal(a.ca_file, keyfile);
    bp_config_release(&r.cfg);
    unlink(cfgfile);

    /* RPC_HEADER holds one header per line; --rpc-header replaces the environment's list */
    setenv("RPC_HEADER", "X-A: 1\nX-B: ${BP_TEST_KEY}\n", 1);
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, NULL), 0);
    assert_int_equal(r.cfg.rpc_creds.header_count, 2);
    assert_string_equal(r.cfg.rpc_creds.headers[1], "X-B: ENVKEY987654");
    bp_config_release(&r.cfg);
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, "--rpc-header", "X-C: 3", NULL), 0);
    assert_int_equal(r.cfg.rpc_creds.header_count, 1);
    assert_string_equal(r.cfg.rpc_creds.headers[0], "X-C: 3");
    bp_config_release(&r.cfg);
    unsetenv("RPC_HEADER");

    /* errors name the variable or file, never a value */
    load(&r, BP_CMD_RUN, "--rpc", "https://a/${BP_NOT_SET_XYZ}", NULL);
    expect_error(&r, "--rpc", "environment variable BP_NOT_SET_XYZ", "not set", NULL);
    load(&r, BP_CMD_RUN, RPC, "--rpc-header", "Authorization: @/nonexistent/bp.key", NULL);
    expect_error(&r, "--rpc-header", "cannot read the file '/nonexistent/bp.key'", NULL);
    load(&r, BP_CMD_RUN, RPC, "--rpc-header", "no colon here", NULL);
    expect_error(&r, "--rpc-header", "expected 'Name: value'", NULL);
    load(&r, BP_CMD_RUN, RPC, "--rpc-header", "Bad Name: x", NULL);
    expect_error(&r, "--rpc-header", "not a header name", NULL);
    load(&r, BP_CMD_RUN, RPC, "--ca-file", "/nonexistent/ca.pem", NULL);
    expect_error(&r, "--ca-file", "cannot read '/nonexistent/ca.pem'", NULL);
    load(&r, BP_CMD_RUN, "--rpc", "{\"url\": \"http://a:1\", \"cert_file\": \"/nope\"}", NULL);
    expect_error(&r, "rpcs[0].cert_file (--rpc)", "cannot read '/nope'", NULL);
    load(&r, BP_CMD_RUN, RPC, "--ws", "{\"url\": \"ws://w:1\", \"rps\": 3}", NULL);
    expect_error(&r, "unknown key 'ws.rps'", NULL);
    load(&r, BP_CMD_RUN, "--rpc", "ftp://u:PASSWORD77@h/v2/SECRETKEY123?apikey=QKEY", NULL);
    assert_null(strstr(r.err.msg, "PASSWORD77"));
    assert_null(strstr(r.err.msg, "SECRETKEY123"));
    assert_null(strstr(r.err.msg, "QKEY"));
    expect_error(&r, "--rpc", "expected an http:// or https:// URL", NULL);
    load(&r, BP_CMD_RUN, "--rpc", "{\"url\": \"http://a/SECRETKEY123\", [", NULL);
    assert_null(strstr(r.err.msg, "SECRETKEY123"));
    expect_error(&r, "--rpc", "not valid JSON", NULL);
    unlink(keyfile);
    unsetenv("BP_TEST_KEY");
    bp_secret_clear();
}

static void test_realtime_options(void **state)
{
    (void)state;
    result r;
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, "--ws", "ws://127.0.0.1:8545",
                          "--ws-reconnect-interval", "0.5", "--ws-max-reconnect-attempts", "3",
                          "--ws-stale-after", "12", NULL),
                     0);
    assert_string_equal(r.cfg.ws_url, "ws://127.0.0.1:8545");
    assert_true(r.cfg.realtime);
    assert_true(r.cfg.ws_reconnect_interval > 0.49 && r.cfg.ws_reconnect_interval < 0.51);
    assert_int_equal(r.cfg.ws_max_reconnect_attempts, 3);
    assert_true(r.cfg.ws_stale_after > 11.9 && r.cfg.ws_stale_after < 12.1);
    bp_config_release(&r.cfg);

    setenv("ENABLE_REALTIME", "false", 1);
    setenv("WEBSOCKET_URL", "wss://node.example/ws", 1);
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, NULL), 0);
    assert_false(r.cfg.realtime);
    assert_string_equal(r.cfg.ws_url, "wss://node.example/ws");
    bp_config_release(&r.cfg);
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, "--realtime", "on", NULL), 0);
    assert_true(r.cfg.realtime); /* the flag beats the environment */
    bp_config_release(&r.cfg);
    unsetenv("ENABLE_REALTIME");
    unsetenv("WEBSOCKET_URL");

    load(&r, BP_CMD_RUN, RPC, "--ws", "http://127.0.0.1:8545", NULL);
    expect_error(&r, "--ws", "'http://127.0.0.1:8545'", "ws:// or wss://", NULL);
    load(&r, BP_CMD_RUN, RPC, "--realtime", "maybe", NULL);
    expect_error(&r, "--realtime", "'maybe'", "on or off", NULL);
}

/* --strict-node is a switch (no value follows; =off unsets it), STRICT_NODE and the config
 * key strict_node take on/off like --realtime. */
static void test_strict_node(void **state)
{
    char path[64];
    result r;
    (void)state;
    assert_int_equal(load(&r, BP_CMD_BACKFILL, RPC, "--from", "0", "--to", "1", NULL), 0);
    assert_false(r.cfg.strict_node);
    bp_config_release(&r.cfg);
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, "--strict-node", "--workers", "2", NULL), 0);
    assert_true(r.cfg.strict_node);
    assert_int_equal(r.cfg.workers, 2); /* the next flag is not taken as its value */
    bp_config_release(&r.cfg);
    setenv("STRICT_NODE", "yes", 1);
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, NULL), 0);
    assert_true(r.cfg.strict_node);
    bp_config_release(&r.cfg);
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, "--strict-node=off", NULL), 0);
    assert_false(r.cfg.strict_node); /* the flag beats the environment */
    bp_config_release(&r.cfg);
    unsetenv("STRICT_NODE");
    temp_file(path, sizeof(path), ".yaml", "strict_node: true\n");
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, "--config", path, NULL), 0);
    assert_true(r.cfg.strict_node);
    bp_config_release(&r.cfg);
    unlink(path);
    load(&r, BP_CMD_RUN, RPC, "--strict-node=maybe", NULL);
    expect_error(&r, "--strict-node", "'maybe'", "on or off", NULL);
}

static void test_yaml_rpcs_file(void **state)
{
    char path[64];
    result r;
    (void)state;
    temp_file(path, sizeof(path), ".yaml",
              "# two endpoints\nrpcs:\n  - url: http://a:8545\n    max_workers: 3\n"
              "    priority: 2\n  - url: https://b:8545\nstart_block: 100\n"
              "output: sqlite:y.db\n");
    assert_int_equal(load(&r, BP_CMD_RUN, "--config", path, NULL), 0);
    assert_int_equal(r.cfg.rpc_count, 2);
    assert_int_equal(r.cfg.rpcs[0].max_workers, 3);
    assert_int_equal(r.cfg.rpcs[0].priority, 2);
    assert_int_equal(r.cfg.rpcs[1].max_workers, 0);
    assert_int_equal(r.cfg.start_block, 100);
    assert_true(r.cfg.start_set);
    assert_string_equal(r.cfg.outputs[0], "sqlite:y.db");
    bp_config_release(&r.cfg);
    unlink(path);
}

/* A chains: list: the top-level keys and the flags are every chain's defaults, a chain's own
 * keys win (its rpcs replace the flag's); shared keys and bad values in a chain are refused
 * naming the chain and the key. */
static void test_chains(void **state)
{
    char path[64];
    result r;
    (void)state;
    temp_file(path, sizeof(path), ".yaml",
              "output: sqlite:c.db\nconfirmations: 4\nmax_memory: 512MiB\nchains:\n"
              "  - name: main\n    chain_id: 1\n    rpcs: [http://a:8545, http://b:8545]\n"
              "  - name: side\n    rpc: {url: http://c:8545, max_workers: 2}\n"
              "    confirmations: 0\n    reorg_window: 16\n");
    assert_int_equal(load(&r, BP_CMD_RUN, "--config", path, "--workers", "3", NULL), 0);
    assert_int_equal(r.cfg.chain_count, 2);
    assert_string_equal(r.cfg.chain_names[1], "side");
    assert_int_equal(r.cfg.rpc_count, 0); /* the top level has none: not required there */
    assert_int_equal(r.cfg.workers_total, 64);
    bp_config_release(&r.cfg);
    char *argv[] = {"run", "--config", path, "--workers", "3", "--rpc", "http://flag:1", NULL};
    bp_config c;
    bp_error e = {0};
    assert_int_equal(bp_config_load_chain(&c, BP_CMD_RUN, 7, argv, 1, &e), 0);
    assert_string_equal(c.chain, "side");
    assert_int_equal(c.chain_index, 1);
    assert_int_equal(c.rpc_count, 1); /* its own, not the flag's */
    assert_string_equal(c.rpcs[0].url, "http://c:8545");
    assert_int_equal(c.rpcs[0].max_workers, 2);
    assert_int_equal(c.confirmations, 0);
    assert_int_equal(c.reorg_window, 16);
    assert_int_equal(c.workers, 3);
    assert_int_equal(c.max_memory, 512u << 20);
    assert_false(c.chain_id_set);
    bp_config_release(&c);
    assert_int_equal(bp_config_load_chain(&c, BP_CMD_RUN, 7, argv, 0, &e), 0);
    assert_string_equal(c.chain, "main");
    assert_int_equal(c.rpc_count, 2);
    assert_int_equal(c.confirmations, 4); /* the top level's */
    assert_true(c.chain_id_set);
    assert_int_equal(c.chain_id, 1);
    bp_config_release(&c);
    unlink(path);

    static const struct {
        const char *chain1;
        const char *fragment[3];
    } bad[] = {
        {"    confirmations: x\n", {"confirmations (config file", "chains[1] 'b'", "'x'"}},
        {"    max_memory: 1GiB\n", {"'max_memory'", "chains[1] 'b'", "top level"}},
        {"    chain_id: 0\n", {"chain_id (config file", "chains[1] 'b'", "from 1"}},
        {"    rpcs: [ws://x]\n", {"rpcs[0].url", "chains[1] 'b'", "WebSocket"}},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text),
                 "chains:\n  - {name: a, rpc: http://a:1}\n"
                 "  - name: b\n    rpc: http://b:1\n%s",
                 bad[i].chain1);
        temp_file(path, sizeof(path), ".yaml", text);
        char *av[] = {"run", "--config", path, NULL};
        memset(&r.err, 0, sizeof(r.err));
        assert_int_equal(load(&r, BP_CMD_RUN, "--config", path, NULL), 0);
        bp_config_release(&r.cfg);
        r.rc = bp_config_load_chain(&r.cfg, BP_CMD_RUN, 3, av, 1, &r.err);
        expect_error(&r, bad[i].fragment[0], bad[i].fragment[1], bad[i].fragment[2], NULL);
        unlink(path);
    }
    static const char *const bad_lists[][2] = {
        {"chains: []\n", "expected a non-empty list"},
        {"chains:\n  - rpc: http://a:1\n", "chains[0]: missing name"},
        {"chains:\n  - {name: a, rpc: http://a:1}\n  - {name: a, rpc: http://b:1}\n",
         "chains[1].name: 'a' is also chains[0]'s"},
        {"chains:\n  - {name: 'a b', rpc: http://a:1}\n", "chains[0].name: 'a b' is not valid"},
    };
    for (size_t i = 0; i < sizeof(bad_lists) / sizeof(bad_lists[0]); i++) {
        temp_file(path, sizeof(path), ".yaml", bad_lists[i][0]);
        load(&r, BP_CMD_RUN, "--config", path, NULL);
        expect_error(&r, bad_lists[i][1], NULL);
        unlink(path);
    }
}

static void test_empty_file(void **state)
{
    char path[64];
    result r;
    (void)state;
    temp_file(path, sizeof(path), ".yaml", "");
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, "--config", path, NULL), 0);
    assert_int_equal(r.cfg.workers, 8);
    bp_config_release(&r.cfg);
    unlink(path);
}

static void test_file_errors(void **state)
{
    static const struct {
        const char *text;
        const char *fragment[3];
    } cases[] = {
        {"rpc: http://a:1\nwokers: 4\n", {"unknown key 'wokers'", "did you mean 'workers'?", NULL}},
        {"rpc: http://a:1\nlog-level: info\n", {"unknown key 'log-level'", "'log_level'?", NULL}},
        {"zzz: 1\n", {"unknown key 'zzz'", "see blockpipe run --help", NULL}},
        {"workers: 3\nworkers: 4\n", {"duplicate key 'workers'", NULL, NULL}},
        {"fetch: [blocks, nope]\n", {"fetch (config file", "nope", NULL}},
        {"workers: 0\n", {"workers (config file", "'0' is not valid", "1 to 1024"}},
        {"workers: [1, 2]\n", {"workers (config file", "not a list", NULL}},
        {"rpcs: [{url: 'http://a:1', max_worker: 5}]\n", {"rpcs[0].max_worker", NULL, NULL}},
        {"rpcs: [{max_workers: 5}]\n", {"rpcs[0]", "missing url", NULL}},
        {"rpcs: [{url: 'http://a:1', max_workers: x}]\n",
         {"rpcs[0].max_workers (config file", "'x' is not valid", NULL}},
        {"rpcs: [{url: 'ws://a:1'}]\n", {"rpcs[0].url", "--ws", NULL}},
        {"workers: [1, 2\n", {"config file", "line", NULL}},
        {"- just\n- a list\n", {"config file", "mapping", NULL}},
        {"{\"rpc\": \"http://a:1\", \"batch_size\": \"1e3\"}",
         {"batch_size (config", "'1e3'", NULL}},
        {"log_level: loud\n", {"log_level (config file", "'loud'", "debug, info, warn, error"}},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[64];
        result r;
        temp_file(path, sizeof(path), ".yaml", cases[i].text);
        load(&r, BP_CMD_RUN, RPC, "--config", path, NULL);
        expect_error(&r, path, cases[i].fragment[0],
                     cases[i].fragment[1] ? cases[i].fragment[1] : "",
                     cases[i].fragment[2] ? cases[i].fragment[2] : "", NULL);
        unlink(path);
    }
    result r;
    load(&r, BP_CMD_RUN, RPC, "--config", "/nonexistent/bp.yaml", NULL);
    expect_error(&r, "--config", "/nonexistent/bp.yaml", "cannot open", NULL);
    setenv("BLOCKPIPE_CONFIG", "/nonexistent/env.yaml", 1);
    load(&r, BP_CMD_RUN, RPC, NULL);
    expect_error(&r, "BLOCKPIPE_CONFIG (environment)", "/nonexistent/env.yaml", NULL);
}

static void test_flag_validation(void **state)
{
    static const struct {
        const char *flag, *value, *expected;
    } cases[] = {
        {"--workers", "abc", "expected an integer from 1 to 1024"},
        {"--workers", "0", "expected an integer from 1 to 1024"},
        {"--workers", "1025", "expected an integer from 1 to 1024"},
        {"--workers", "-1", "expected an integer from 1 to 1024"},
        {"--workers", "4.5", "expected an integer from 1 to 1024"},
        {"--workers", " 4", "expected an integer from 1 to 1024"},
        {"--batch-size", "0", "expected an integer from 1 to 100000"},
        {"--batch-size", "100001", "expected an integer from 1 to 100000"},
        {"--max-memory", "0", "expected a size from 64MiB to 1024GiB"},
        {"--max-memory", "63MiB", "expected a size from 64MiB to 1024GiB"},
        {"--max-memory", "1025GiB", "expected a size from 64MiB to 1024GiB"},
        {"--max-memory", "2T", "expected a size from 64MiB to 1024GiB"},
        {"--max-memory", "1.5GiB", "e.g. 256MiB, 1GiB, 512M, or a number of bytes"},
        {"--max-memory", "256 MiB", "expected a size"},
        {"--max-memory", "256XiB", "expected a size"},
        {"--max-memory", "256Mi", "expected a size"},
        {"--max-memory", "MiB", "expected a size"},
        {"--max-memory", "-256MiB", "expected a size"},
        {"--max-memory", "99999999999999999999999", "expected a size"},
        {"--reorg-window", "0", "expected an integer from 1 to 100000"},
        {"--confirmations", "100001", "expected an integer from 0 to 100000"},
        {"--confirmations", "99999999999999999999999", "expected an integer from 0 to 100000"},
        {"--max-retries", "1001", "expected an integer from 0 to 1000"},
        {"--poll-interval", "0", "expected a number of seconds from 0.01 to 3600"},
        {"--poll-interval", "3601", "expected a number of seconds from 0.01 to 3600"},
        {"--poll-interval", "1s", "expected a number of seconds from 0.01 to 3600"},
        {"--poll-interval", "nan", "expected a number of seconds from 0.01 to 3600"},
        {"--poll-interval", "-1", "expected a number of seconds from 0.01 to 3600"},
        {"--stats-interval", "0.05", "expected a number of seconds from 0.1 to 86400"},
        {"--rpc-timeout", "1e2", "expected a number of seconds from 0.1 to 3600"},
        {"--rpc-timeout", ".", "expected a number of seconds from 0.1 to 3600"},
        {"--start-block", "earliest", "expected a block number or 'latest'"},
        {"--rpc", "ws://127.0.0.1:8546", "WebSocket URLs go in --ws"},
        {"--rpc", "wss://node.example", "WebSocket URLs go in --ws"},
        {"--rpc", "127.0.0.1:8545", "expected an http:// or https:// URL"},
        {"--rpc", "http://", "expected an http:// or https:// URL"},
        {"--log-level", "verbose", "expected one of debug, info, warn, error"},
        {"--log-format", "xml", "expected text or json"},
        {"--chain", "", "expected a non-empty"},
        {"--output", "", "expected an output URL"},
        {"--fetch", "blocks,trace", "trace"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char quoted[64];
        result r;
        snprintf(quoted, sizeof(quoted), "'%s' is not valid", cases[i].value);
        load(&r, BP_CMD_RUN, RPC, cases[i].flag, cases[i].value, NULL);
        expect_error(&r, cases[i].flag, quoted, cases[i].expected, NULL);
    }
}

/* --max-memory SIZE: K, M, G, T are powers of 1024, with or without iB / B, any case; a bare
 * number is bytes. From a flag, the environment or the config file. */
static void test_max_memory(void **state)
{
    static const struct {
        const char *value;
        uint64_t bytes;
    } cases[] = {
        {"256MiB", 256ull << 20}, {"1GiB", 1ull << 30},       {"512M", 512ull << 20},
        {"64mb", 64ull << 20},    {"2g", 2ull << 30},         {"1TiB", 1ull << 40},
        {"65536K", 64ull << 20},  {"1073741824", 1ull << 30}, {"1073741824B", 1ull << 30},
        {"100MB", 100ull << 20},  {"1024GiB", 1ull << 40},    {"67108864", 64ull << 20},
    };
    result r;
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(load(&r, BP_CMD_RUN, RPC, "--max-memory", cases[i].value, NULL), 0);
        if (r.cfg.max_memory != cases[i].bytes)
            fail_msg("--max-memory %s gave %llu bytes", cases[i].value,
                     (unsigned long long)r.cfg.max_memory);
        bp_config_release(&r.cfg);
    }
    setenv("MAX_MEMORY", "1GiB", 1);
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, NULL), 0);
    assert_int_equal(r.cfg.max_memory, 1ull << 30);
    bp_config_release(&r.cfg);
    unsetenv("MAX_MEMORY");
    char path[128];
    temp_file(path, sizeof(path), ".yml", "rpc: http://file:8545\nmax_memory: 192MiB\n");
    assert_int_equal(load(&r, BP_CMD_RUN, "--config", path, NULL), 0);
    assert_int_equal(r.cfg.max_memory, 192ull << 20);
    bp_config_release(&r.cfg);
    unlink(path);
    setenv("MAX_MEMORY", "lots", 1);
    load(&r, BP_CMD_RUN, RPC, NULL);
    expect_error(&r, "MAX_MEMORY (environment): 'lots' is not valid: expected a size", NULL);
    unsetenv("MAX_MEMORY");
}

static void test_env_validation(void **state)
{
    result r;
    (void)state;
    setenv("WORKERS", "abc", 1);
    load(&r, BP_CMD_RUN, RPC, NULL);
    expect_error(
        &r, "WORKERS (environment): 'abc' is not valid: expected an integer from 1 to 1024", NULL);
    unsetenv("WORKERS");
    setenv("POLLING_INTERVAL", "fast", 1);
    load(&r, BP_CMD_RUN, RPC, NULL);
    expect_error(&r, "POLLING_INTERVAL (environment)", "'fast'", NULL);
    unsetenv("POLLING_INTERVAL");
    setenv("RPC_URL", "ws://x:1", 1);
    load(&r, BP_CMD_RUN, NULL);
    expect_error(&r, "RPC_URL (environment)", "--ws", NULL);
    /* a bad value is refused even when a stronger source also sets the key */
    setenv("RPC_URL", "http://x:1", 1);
    setenv("CONFIRMATIONS", "-3", 1);
    load(&r, BP_CMD_RUN, "--confirmations", "3", NULL);
    expect_error(&r, "CONFIRMATIONS (environment)", "'-3'", NULL);
}

static void test_database_url_passthrough(void **state)
{
    result r;
    (void)state;
    setenv("DATABASE_URL", "postgres://u:p@db/chain", 1);
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, NULL), 0);
    assert_int_equal(r.cfg.output_count, 1);
    assert_string_equal(r.cfg.outputs[0], "postgres://u:p@db/chain");
    bp_config_release(&r.cfg);
}

static void test_unknown_and_missing(void **state)
{
    result r;
    (void)state;
    load(&r, BP_CMD_RUN, RPC, "--foo", "1", NULL);
    expect_error(&r, "unknown option '--foo' for 'run' (see blockpipe run --help)", NULL);
    load(&r, BP_CMD_RUN, RPC, "--foo=1", NULL);
    expect_error(&r, "unknown option '--foo' for 'run'", NULL);
    load(&r, BP_CMD_RUN, RPC, "--from", "1", NULL);
    expect_error(&r, "unknown option '--from' for 'run'", NULL);
    load(&r, BP_CMD_RUN, RPC, "-w", "1", NULL);
    expect_error(&r, "unknown option '-w'", NULL);
    load(&r, BP_CMD_RUN, RPC, "extra", NULL);
    expect_error(&r, "unexpected argument 'extra' for 'run'", NULL);
    load(&r, BP_CMD_BACKFILL, RPC, "--from", "1", "--to", "2", "--bogus", NULL);
    expect_error(&r, "unknown option '--bogus' for 'backfill' (see blockpipe backfill --help)",
                 NULL);
    load(&r, BP_CMD_RUN, RPC, "--workers", NULL);
    expect_error(&r, "--workers: missing value", "--workers N", NULL);
    load(&r, BP_CMD_RUN, "--rpc", "--workers", "3", NULL);
    expect_error(&r, "--rpc: missing value", NULL);
}

static void test_required(void **state)
{
    result r;
    (void)state;
    load(&r, BP_CMD_RUN, NULL);
    expect_error(&r, "--rpc", "RPC_URL", NULL);
    load(&r, BP_CMD_BACKFILL, "--from", "0", "--to", "10", NULL);
    expect_error(&r, "--rpc", NULL);
    load(&r, BP_CMD_BACKFILL, RPC, "--from", "0", NULL);
    expect_error(&r, "--to", NULL);
    load(&r, BP_CMD_BACKFILL, RPC, "--to", "10", NULL);
    expect_error(&r, "missing --from", NULL);
    load(&r, BP_CMD_BACKFILL, RPC, "--from", "10", "--to", "9", NULL);
    expect_error(&r, "--from 10", "--to 9", NULL);
    load(&r, BP_CMD_BACKFILL, RPC, "--from", "x", "--to", "9", NULL);
    expect_error(&r, "--from: 'x' is not valid", NULL);
    assert_int_equal(load(&r, BP_CMD_BACKFILL, RPC, "--from", "7", "--to", "7", NULL), 0);
    bp_config_release(&r.cfg);
}

static void test_help(void **state)
{
    result r;
    (void)state;
    assert_int_equal(load(&r, BP_CMD_RUN, "--help", NULL), 0);
    assert_true(r.cfg.help);
    bp_config_release(&r.cfg);
    assert_int_equal(load(&r, BP_CMD_BACKFILL, "--workers", "0", "--help", NULL), 0);
    assert_true(r.cfg.help);
    bp_config_release(&r.cfg);
}

static void test_usage(void **state)
{
    static const char *const common[] = {
        "--rpc",           "--chain",        "--output",        "--start-block",
        "--confirmations", "--reorg-window", "--workers",       "--batch-size",
        "--max-memory",    "default 96MiB",  "--poll-interval", "--stats-interval",
        "--fetch",         "--rpc-timeout",  "--max-retries",   "--config",
        "--log-level",     "--log-format",   "--help",          "sqlite:blockpipe.db",
        "default 128",     "default 8",      "default 100",     "default 1.0",
        "default 10",      "default 30",     "default 5",       "default info",
        "default text",    "Examples:",
    };
    (void)state;
    for (int cmd = BP_CMD_RUN; cmd <= BP_CMD_BACKFILL; cmd++) {
        const char *u = bp_config_usage((enum bp_command)cmd);
        for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
            if (!strstr(u, common[i]))
                fail_msg("usage of command %d lacks '%s'", cmd, common[i]);
        for (size_t i = 0; i < sizeof(g_env) / sizeof(g_env[0]); i++)
            if (!strstr(u, g_env[i]))
                fail_msg("usage of command %d lacks '%s'", cmd, g_env[i]);
    }
    assert_non_null(strstr(bp_config_usage(BP_CMD_RUN), "Usage: blockpipe run --rpc URL"));
    const char *b = bp_config_usage(BP_CMD_BACKFILL);
    assert_non_null(strstr(b, "Usage: blockpipe backfill --rpc URL --from A --to B"));
    assert_non_null(strstr(b, "blockpipe backfill --rpc http://127.0.0.1:8545 --from 0 --to 1000 "
                              "--output etl-csv:out/"));
}

/* The value of an output setting (key) the load produced, NULL when none. */
static const char *setting(const bp_config *c, const char *key)
{
    for (size_t i = 0; i < c->sink_setting_count; i++)
        if (strcmp(c->sink_settings[i].key, key) == 0)
            return c->sink_settings[i].value;
    return NULL;
}

/* derived= (the SQL outputs' selection of derived tables) from the file, the flag over it, and
 * an output's URL parameter over both; the groups it resolves to, each output its own. */
static void test_derived_option(void **state)
{
    result r;
    char path[128];
    (void)state;
    temp_file(path, sizeof(path), ".yaml", "derived: chain_metrics,active_addresses,prices\n");
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, "--config", path, NULL), 0);
    assert_string_equal(setting(&r.cfg, "derived"), "chain_metrics,active_addresses,prices");
    bp_sink_settings set = {r.cfg.sink_settings, r.cfg.sink_setting_count, NULL};
    static const char *const urls[] = {"sqlite:x.db", "postgres://h/db", "clickhouse://h:8123/g",
                                       "sqlite:x.db?derived=all", "sqlite:x.db?metrics=off"};
    const unsigned core = BP_DG_BIT(BP_DG_CHAIN_METRICS) | BP_DG_BIT(BP_DG_ACTIVE_ADDRESSES) |
                          BP_DG_BIT(BP_DG_PRICES);
    const unsigned want[] = {core, core, core, BP_DG_ALL, 0};
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        bp_sink_resolved res;
        bp_error err = {0};
        unsigned groups = 1u << 30;
        assert_int_equal(bp_sink_resolve(urls[i], &set, &res, &err), 0);
        assert_int_equal(bp_derived_groups_of(&res.opts, &groups, &err), 0);
        assert_int_equal(groups, want[i]);
        bp_sink_resolved_release(&res);
    }
    bp_config_release(&r.cfg);
    assert_int_equal(
        load(&r, BP_CMD_RUN, RPC, "--config", path, "--derived", "chain_metrics", NULL), 0);
    assert_string_equal(setting(&r.cfg, "derived"), "chain_metrics");
    set = (bp_sink_settings){r.cfg.sink_settings, r.cfg.sink_setting_count, NULL};
    bp_sink_resolved res;
    bp_error err = {0};
    unsigned groups = 0;
    assert_int_equal(bp_sink_resolve("sqlite:x.db", &set, &res, &err), 0);
    assert_int_equal(bp_derived_groups_of(&res.opts, &groups, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "derived (--derived, DERIVED): chain_metrics needs "
                                    "active_addresses,prices selected with it"));
    bp_sink_resolved_release(&res);
    bp_config_release(&r.cfg);
    unlink(path);
}

/* The outputs' own options come from flags, environment and file like the core ones. */
static void test_output_options(void **state)
{
    result r;
    char path[128];
    (void)state;
    temp_file(path, sizeof(path), ".yaml", "pg_schema: from_file\nwait_for_db: 9\n");
    setenv("WAIT_FOR_DB", "12", 1);
    setenv("CHECKPOINT_NAME", "env_cp", 1);
    assert_int_equal(
        load(&r, BP_CMD_RUN, RPC, "--config", path, "--checkpoint-name", "flag_cp", NULL), 0);
    assert_string_equal(setting(&r.cfg, "pg_schema"), "from_file");
    assert_string_equal(setting(&r.cfg, "wait_for_db"), "12");
    assert_string_equal(setting(&r.cfg, "checkpoint_name"), "flag_cp");
    assert_int_equal(r.cfg.sink_setting_count, 3);
    bp_config_release(&r.cfg);
    unlink(path);
    unsetenv("WAIT_FOR_DB");
    unsetenv("CHECKPOINT_NAME");
    load(&r, BP_CMD_RUN, RPC, "--wait-for-db", "soon", NULL);
    expect_error(&r, "--wait-for-db: 'soon' is not valid: expected an integer from 0 to 86400",
                 NULL);
    load(&r, BP_CMD_RUN, RPC, "--pg-schema=", NULL);
    expect_error(&r, "--pg-schema: '' is not valid", NULL);
    /* URL-only options have no flag */
    load(&r, BP_CMD_RUN, RPC, "--mode", "staging", NULL);
    expect_error(&r, "unknown option '--mode'", NULL);
}

/* Names users bring from the collector and the streamer blockpipe replaces. */
static void test_aliases(void **state)
{
    result r;
    (void)state;
    setenv("ANKR_RPC_URL", "http://ankr.example:8545", 1);
    setenv("ANKR_POLLING_INTERVAL", "2.5", 1);
    setenv("ANKR_BATCH_SIZE", "50", 1);
    assert_int_equal(load(&r, BP_CMD_RUN, "--reorg-depth", "10", NULL), 0);
    assert_int_equal(r.cfg.confirmations, 10);
    assert_string_equal(r.cfg.rpcs[0].url, "http://ankr.example:8545");
    assert_true(r.cfg.poll_interval == 2.5);
    assert_int_equal(r.cfg.batch_size, 50);
    bp_config_release(&r.cfg);
    /* both names of a variable set to the same text: one setting */
    setenv("BATCH_SIZE", "50", 1);
    assert_int_equal(load(&r, BP_CMD_RUN, NULL), 0);
    assert_int_equal(r.cfg.batch_size, 50);
    bp_config_release(&r.cfg);
    load(&r, BP_CMD_RUN, "--reorg-depth", "x", NULL);
    expect_error(&r, "--reorg-depth: 'x' is not valid", NULL);
}

/* Two names of one setting at the same level with different values are refused, naming both
 * (the last used to win silently); the same value passes; a flag still wins over a variable. */
static void test_alias_conflicts(void **state)
{
    result r;
    (void)state;
    load(&r, BP_CMD_RUN, RPC, "--reorg-depth", "10", "--confirmations", "12", NULL);
    expect_error(&r, "--reorg-depth and --confirmations", "different values", NULL);
    load(&r, BP_CMD_RUN, RPC, "--confirmations=3", "--reorg-depth", "4", NULL);
    expect_error(&r, "--confirmations and --reorg-depth", NULL);
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, "--reorg-depth", "7", "--confirmations", "7", NULL),
                     0);
    assert_int_equal(r.cfg.confirmations, 7);
    bp_config_release(&r.cfg);
    /* one name repeated: the last, as before (scripts append to their defaults) */
    assert_int_equal(
        load(&r, BP_CMD_RUN, RPC, "--confirmations", "1", "--confirmations", "2", NULL), 0);
    assert_int_equal(r.cfg.confirmations, 2);
    bp_config_release(&r.cfg);
    /* the variable loses to the flag without a word */
    setenv("CONFIRMATIONS", "9", 1);
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, "--reorg-depth", "5", NULL), 0);
    assert_int_equal(r.cfg.confirmations, 5);
    bp_config_release(&r.cfg);
    unsetenv("CONFIRMATIONS");

    /* the environment: the collector's ANKR_ names beside ours */
    setenv("RPC_URL", "http://a:1", 1);
    setenv("ANKR_RPC_URL", "http://b:1", 1);
    load(&r, BP_CMD_RUN, NULL);
    expect_error(&r, "RPC_URL and ANKR_RPC_URL (environment)", "--rpc", NULL);
    setenv("ANKR_RPC_URL", "http://a:1", 1);
    assert_int_equal(load(&r, BP_CMD_RUN, NULL), 0);
    assert_int_equal(r.cfg.rpc_count, 1);
    bp_config_release(&r.cfg);
    /* the variables disagree even when a flag overrides them: still refused (a run without
     * the flag would take one of them) */
    setenv("ANKR_RPC_URL", "http://b:1", 1);
    setenv("POLLING_INTERVAL", "2", 1);
    setenv("ANKR_POLLING_INTERVAL", "3", 1);
    load(&r, BP_CMD_RUN, RPC, NULL);
    expect_error(&r, "RPC_URL and ANKR_RPC_URL", NULL);
    unsetenv("ANKR_RPC_URL");
    load(&r, BP_CMD_RUN, NULL);
    expect_error(&r, "POLLING_INTERVAL and ANKR_POLLING_INTERVAL", "--poll-interval", NULL);
    unsetenv("ANKR_POLLING_INTERVAL");
    setenv("BATCH_SIZE", "10", 1);
    setenv("ANKR_BATCH_SIZE", "20", 1);
    load(&r, BP_CMD_RUN, NULL);
    expect_error(&r, "BATCH_SIZE and ANKR_BATCH_SIZE", "--batch-size", NULL);
    unsetenv("ANKR_BATCH_SIZE");
    setenv("ENABLE_REALTIME", "on", 1);
    setenv("STREAMING_ENABLED", "off", 1);
    load(&r, BP_CMD_RUN, NULL);
    expect_error(&r, "ENABLE_REALTIME and STREAMING_ENABLED", NULL);
    unsetenv("STREAMING_ENABLED");
    /* OUTPUT, DATABASE_URL, REDIS_URL are read in that order: other programs read the last two */
    setenv("OUTPUT", "jsonl:o/", 1);
    setenv("DATABASE_URL", "sqlite:env.db", 1);
    assert_int_equal(load(&r, BP_CMD_RUN, NULL), 0);
    assert_string_equal(r.cfg.outputs[0], "jsonl:o/");
    bp_config_release(&r.cfg);
    unsetenv("OUTPUT");
    unsetenv("DATABASE_URL");

    /* --clickhouse-url and --output clickhouse:// are two names of the ClickHouse output */
    load(&r, BP_CMD_RUN, "--clickhouse-url", "http://h:8123/a", "--output", "clickhouse://h:8123/b",
         NULL);
    expect_error(&r, "--clickhouse-url and --output both give the ClickHouse output", NULL);
    assert_int_equal(load(&r, BP_CMD_RUN, "--clickhouse-url", "http://h:8123/a", "--output",
                          "clickhouse://h:8123/a", NULL),
                     0);
    assert_int_equal(r.cfg.output_count, 1);
    bp_config_release(&r.cfg);
    setenv("CLICKHOUSE_URL", "http://h:8123/a", 1);
    setenv("OUTPUT", "ch://h:8123/b", 1);
    load(&r, BP_CMD_RUN, NULL);
    expect_error(&r, "CLICKHOUSE_URL (environment) and OUTPUT (environment)", NULL);
    unsetenv("OUTPUT");
    /* at different levels it adds its output, as documented */
    assert_int_equal(load(&r, BP_CMD_RUN, "--output", "clickhouse://h:8123/b", NULL), 0);
    assert_int_equal(r.cfg.output_count, 2);
    bp_config_release(&r.cfg);
    unsetenv("CLICKHOUSE_URL");
    char path[64];
    temp_file(path, sizeof(path), ".yml",
              "clickhouse_url: http://h:8123/a\noutputs: [clickhouse://h:8123/b]\n");
    load(&r, BP_CMD_RUN, "--config", path, NULL);
    expect_error(&r, "clickhouse_url (config file", "and output", NULL);
    unlink(path);

    /* --clickhouse-db and the database in the URL's path */
    load(&r, BP_CMD_RUN, "--output", "clickhouse://u:p@h:8123/a?x=1", "--clickhouse-db", "b", NULL);
    expect_error(&r, "--clickhouse-db 'b' and the database 'a'", "of --output", NULL);
    load(&r, BP_CMD_RUN, "--clickhouse-url", "https://h/a/", "--clickhouse-db", "b", NULL);
    expect_error(&r, "--clickhouse-db 'b' and the database 'a'", "of --clickhouse-url", NULL);
    assert_int_equal(
        load(&r, BP_CMD_RUN, "--output", "clickhouse://h:8123/a", "--clickhouse-db", "a", NULL), 0);
    bp_config_release(&r.cfg);
    assert_int_equal(
        load(&r, BP_CMD_RUN, "--output", "clickhouse://h:8123", "--clickhouse-db", "b", NULL), 0);
    bp_config_release(&r.cfg);
    /* a variable is a default for URLs without a path: the path wins */
    setenv("CLICKHOUSE_DB", "b", 1);
    assert_int_equal(load(&r, BP_CMD_RUN, "--output", "clickhouse://h:8123/a", NULL), 0);
    bp_config_release(&r.cfg);
    setenv("OUTPUT", "clickhouse://h:8123/a", 1);
    load(&r, BP_CMD_RUN, NULL);
    expect_error(&r, "CLICKHOUSE_DB (environment) 'b' and the database 'a'", NULL);
}

/* A file that is not text is an error naming it and what is wrong, not an empty config. */
static void test_binary_config_file(void **state)
{
    result r;
    char path[64];
    (void)state;
    static const unsigned char gz[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03};
    static const unsigned char zeros[4096] = {0};
    /* a UTF-16 byte order mark, then what is not UTF-16 */
    static const unsigned char utf16_bin[] = {0xFF, 0xFE, 0x41, 0x00, 0x00, 0xDC, 0x42, 0x00};
    static const unsigned char utf16_nul[] = {0xFE, 0xFF, 0x00, 0x00, 0x00, 0x41};
    static const unsigned char nul_late[] = "rpc: http://f:1\nbatch_size: 7\n\0\0junk";
    static const unsigned char latin1[] = "rpc: http://f:1\nchain: caf\xe9\n";
    const struct {
        const unsigned char *bytes;
        size_t n;
        const char *want;
    } cases[] = {
        {zeros, sizeof(zeros), "a NUL byte at offset 0"}, /* what a crash can leave */
        {gz, sizeof(gz), "a NUL byte at offset 3"},
        {nul_late, sizeof(nul_late) - 1, "a NUL byte at offset 30"},
        {latin1, sizeof(latin1) - 1, "byte 0xe9 at offset 26 is not UTF-8"},
        {utf16_bin, sizeof(utf16_bin), "a lone UTF-16 surrogate at offset 4"},
        {utf16_nul, sizeof(utf16_nul), "a NUL character at offset 2 (UTF-16)"},
        {utf16_nul, 3, "UTF-16 (its first bytes say) of an odd length, 3 bytes"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        temp_file(path, sizeof(path), ".yml", "");
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(cases[i].bytes, 1, cases[i].n, f), cases[i].n);
        fclose(f);
        load(&r, BP_CMD_RUN, RPC, "--config", path, NULL);
        expect_error(&r, "config file ", path, cases[i].want, "not a text file", NULL);
        unlink(path);
    }
    /* a directory */
    load(&r, BP_CMD_RUN, RPC, "--config", "/tmp", NULL);
    expect_error(&r, "cannot read config file '/tmp'", NULL);
    /* UTF-16 with its byte order mark is text */
    static const unsigned char utf16[] = {0xFF, 0xFE, 'c',  0,    'h',  0,    'a',  0,
                                          'i',  0,    'n',  0,    ':',  0,    ' ',  0,
                                          'x',  0,    0x3D, 0xD8, 0x00, 0xDE, '\n', 0};
    temp_file(path, sizeof(path), ".yml", "");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(utf16, 1, sizeof(utf16), f), sizeof(utf16));
    fclose(f);
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, "--config", path, NULL), 0);
    assert_string_equal(r.cfg.chain, "x\xf0\x9f\x98\x80");
    bp_config_release(&r.cfg);
    unlink(path);
    /* UTF-8 beyond ASCII is text */
    temp_file(path, sizeof(path), ".yml", "rpc: http://f:1\nchain: caf\xc3\xa9\n");
    assert_int_equal(load(&r, BP_CMD_RUN, "--config", path, NULL), 0);
    assert_string_equal(r.cfg.chain, "caf\xc3\xa9");
    bp_config_release(&r.cfg);
    unlink(path);
    /* an empty file still sets nothing */
    temp_file(path, sizeof(path), ".yml", "");
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, "--config", path, NULL), 0);
    bp_config_release(&r.cfg);
    unlink(path);
}

/* --clickhouse-url adds a ClickHouse output to the others (the default SQLite one only when
 * it is the only output); the HTTP address of the server is turned into an output URL. */
static void test_clickhouse_url(void **state)
{
    result r;
    (void)state;
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, "--clickhouse-url", "http://u:p@h:8123/db", NULL),
                     0);
    assert_int_equal(r.cfg.output_count, 1);
    assert_string_equal(r.cfg.outputs[0], "clickhouse://u:p@h:8123/db");
    bp_config_release(&r.cfg);
    setenv("CLICKHOUSE_URL", "https://h/db?max_threads=2", 1);
    setenv("CLICKHOUSE_DB", "db", 1); /* another database than the path's: refused */
    assert_int_equal(load(&r, BP_CMD_RUN, RPC, "--output", "sqlite:a.db", NULL), 0);
    assert_int_equal(r.cfg.output_count, 2);
    assert_string_equal(r.cfg.outputs[0], "sqlite:a.db");
    assert_string_equal(r.cfg.outputs[1], "clickhouse://h/db?max_threads=2&tls=on");
    assert_string_equal(setting(&r.cfg, "clickhouse_db"), "db");
    bp_config_release(&r.cfg);
    /* the flag wins over the environment; ch:// stays as it is */
    assert_int_equal(load(&r, BP_CMD_MIGRATE, "--clickhouse-url", "ch://h:9/x", NULL), 0);
    assert_int_equal(r.cfg.output_count, 1);
    assert_string_equal(r.cfg.outputs[0], "ch://h:9/x");
    bp_config_release(&r.cfg);
    unsetenv("CLICKHOUSE_URL");
    load(&r, BP_CMD_RUN, RPC, "--clickhouse-url", "postgres://h/db", NULL);
    expect_error(&r, "--clickhouse-url: 'postgres://h/db' is not valid", "clickhouse://", NULL);
}

static void test_migrate(void **state)
{
    result r;
    (void)state;
    assert_int_equal(load(&r, BP_CMD_MIGRATE, "postgres://h/db", "--pg-schema", "s", NULL), 0);
    assert_int_equal(r.cfg.output_count, 1);
    assert_string_equal(r.cfg.outputs[0], "postgres://h/db");
    assert_string_equal(setting(&r.cfg, "pg_schema"), "s");
    bp_config_release(&r.cfg);
    load(&r, BP_CMD_MIGRATE, NULL);
    expect_error(&r, "migrate needs the output", "DATABASE_URL", NULL);
    load(&r, BP_CMD_MIGRATE, "sqlite:x.db", "--workers", "2", NULL);
    expect_error(&r, "unknown option '--workers' for 'migrate'", NULL);
    setenv("DATABASE_URL", "sqlite:y.db", 1);
    assert_int_equal(load(&r, BP_CMD_MIGRATE, NULL), 0);
    assert_string_equal(r.cfg.outputs[0], "sqlite:y.db");
    bp_config_release(&r.cfg);
    assert_non_null(strstr(bp_config_usage(BP_CMD_MIGRATE), "Usage: blockpipe migrate URL"));
    assert_non_null(strstr(bp_config_usage(BP_CMD_MIGRATE), "--pg-schema NAME"));
}

/* The library's config (bp_config_load_pairs): the file's keys as pairs, a config file under
 * them, from / to for a range; no environment, no default output. */
static void test_pairs(void **state)
{
    (void)state;
    result r = {0};
    setenv("RPC_URL", "http://127.0.0.9:1", 1);
    setenv("OUTPUT", "sqlite:/tmp/never.db", 1);
    const char *k1[] = {"rpc", "rpc", "confirmations", "pg_schema", "fetch"};
    const char *v1[] = {"http://a:1", "{\"url\":\"http://b:2\",\"priority\":3}", "4", "x",
                        "blocks,transactions"};
    assert_int_equal(bp_config_load_pairs(&r.cfg, k1, v1, 5, &r.err), 0);
    assert_int_equal(r.cfg.command, BP_CMD_RUN);
    assert_int_equal(r.cfg.rpc_count, 2);
    assert_string_equal(r.cfg.rpcs[0].url, "http://a:1");
    assert_int_equal(r.cfg.rpcs[1].priority, 3);
    assert_int_equal(r.cfg.confirmations, 4);
    assert_int_equal(r.cfg.output_count, 0); /* neither OUTPUT nor the default */
    assert_int_equal(r.cfg.sink_setting_count, 1);
    bp_config_release(&r.cfg);

    char path[64];
    temp_file(path, sizeof(path), ".yaml", "rpc: http://file:1\nreorg_window: 9\nworkers: 3\n");
    const char *k2[] = {"config", "workers", "from", "to"};
    const char *v2[] = {path, "5", "10", "20"};
    assert_int_equal(bp_config_load_pairs(&r.cfg, k2, v2, 4, &r.err), 0);
    assert_int_equal(r.cfg.command, BP_CMD_BACKFILL);
    assert_string_equal(r.cfg.rpcs[0].url, "http://file:1");
    assert_int_equal(r.cfg.reorg_window, 9);
    assert_int_equal(r.cfg.workers, 5); /* the pair wins over the file */
    assert_int_equal(r.cfg.from_block, 10);
    assert_int_equal(r.cfg.to_block, 20);
    bp_config_release(&r.cfg);
    unlink(path);

    const char *k3[] = {"confirmations"};
    const char *v3[] = {"2"};
    r.rc = bp_config_load_pairs(&r.cfg, k3, v3, 1, &r.err);
    expect_error(&r, "missing --rpc", NULL); /* RPC_URL is not read */
    const char *k4[] = {"rpc", "workerz"};
    const char *v4[] = {"http://a:1", "2"};
    r.rc = bp_config_load_pairs(&r.cfg, k4, v4, 2, &r.err);
    expect_error(&r, "unknown key 'workerz'", NULL);
    const char *k5[] = {"rpc", "workers"};
    const char *v5[] = {"http://a:1", "0"};
    r.rc = bp_config_load_pairs(&r.cfg, k5, v5, 2, &r.err);
    expect_error(&r, "workers: '0' is not valid", NULL);
}

/* The library with a chains: list: the pairs are the top level (no chain needed there), each
 * chain's config is the file's top level, the pairs, then its own keys. */
static void test_pairs_chains(void **state)
{
    (void)state;
    char path[64];
    temp_file(path, sizeof(path), ".yaml",
              "confirmations: 4\nworkers: 2\nchains:\n  - name: a\n    rpc: http://a:1\n"
              "  - name: b\n    rpc: http://b:1\n    workers: 7\n");
    const char *k[] = {"config", "workers", "state_dir", "rpc"};
    const char *v[] = {path, "5", "/tmp/st", "http://pair:1"};
    result r = {0};
    assert_int_equal(bp_config_load_pairs(&r.cfg, k, v, 4, &r.err), 0);
    assert_int_equal(r.cfg.chain_count, 2);
    assert_null(r.cfg.chain); /* every chain of the list */
    assert_string_equal(r.cfg.state_dir, "/tmp/st");
    bp_config_release(&r.cfg);
    bp_config c;
    assert_int_equal(bp_config_load_pairs_chain(&c, k, v, 4, 0, &r.err), 0);
    assert_string_equal(c.chain, "a");
    assert_int_equal(c.chain_index, 0);
    assert_int_equal(c.rpc_count, 1);
    assert_string_equal(c.rpcs[0].url, "http://a:1"); /* its own, not the pair's */
    assert_int_equal(c.workers, 5);                   /* the pair over the top level */
    assert_int_equal(c.confirmations, 4);
    bp_config_release(&c);
    assert_int_equal(bp_config_load_pairs_chain(&c, k, v, 4, 1, &r.err), 0);
    assert_string_equal(c.chain, "b");
    assert_int_equal(c.workers, 7); /* the chain's own over the pair */
    bp_config_release(&c);
    r.rc = bp_config_load_pairs_chain(&c, k, v, 4, 2, &r.err);
    bp_config_release(&c);
    expect_error(&r, "no chains[2]", NULL);
    unlink(path);
}

/* Loads chains[0..5) of argv's config file: each one's price_coin_id must be want[i] (NULL:
 * none, its token's default). */
static void expect_coin_ids(char **argv, int argc, const char *const want[5])
{
    for (int i = 0; i < 5; i++) {
        bp_config c;
        bp_error e = {0};
        assert_int_equal(bp_config_load_chain(&c, BP_CMD_RUN, argc, argv, i, &e), 0);
        if (want[i])
            assert_string_equal(c.price_coin_id, want[i]);
        else
            assert_null(c.price_coin_id);
        bp_config_release(&c);
    }
}

/* A top-level price_coin_id is the top level's native token's id: a chains: item of that token
 * inherits it, one of another token (its own native_token or its preset's) without an id of its
 * own gets that token's default (NULL here: bp_prices_new maps BNB to binancecoin); a chain's
 * own id always wins. The same from the flag and through the library's pairs. */
static void test_chains_coin_id(void **state)
{
    (void)state;
    char path[64];
    temp_file(path, sizeof(path), ".yaml",
              "price_coin_id: weth-x\nchains:\n"
              "  - {name: e, rpc: http://a:1}\n"
              "  - {name: e2, rpc: http://a:1, native_token: eth}\n"
              "  - {name: b, rpc: http://b:1, native_token: BNB}\n"
              "  - {name: p, rpc: http://b:1, preset: bsc}\n"
              "  - {name: own, rpc: http://c:1, native_token: BNB, price_coin_id: bnb-y}\n");
    static const char *const want[] = {"weth-x", "weth-x", NULL, NULL, "bnb-y"};
    char *argv[] = {"run", "--config", path, NULL};
    expect_coin_ids(argv, 3, want);
    /* the flags are the top level's too: with a BNB top level, its id reaches the chains of
     * BNB only (e's token is the top level's now, e2's is still ETH) */
    char *flag[] = {"run", "--config",        path,    "--native-token",
                    "BNB", "--price-coin-id", "bnb-z", NULL};
    static const char *const want_flag[] = {"bnb-z", NULL, "bnb-z", "bnb-z", "bnb-y"};
    expect_coin_ids(flag, 7, want_flag);
    const char *k[] = {"config", "price_coin_id"};
    const char *v[] = {path, "weth-p"};
    bp_config c;
    bp_error e = {0};
    assert_int_equal(bp_config_load_pairs_chain(&c, k, v, 2, 0, &e), 0);
    assert_string_equal(c.price_coin_id, "weth-p");
    bp_config_release(&c);
    assert_int_equal(bp_config_load_pairs_chain(&c, k, v, 2, 2, &e), 0);
    assert_null(c.price_coin_id);
    bp_config_release(&c);
    unlink(path);
}

/* An output URL's password and its secret-named parameters, --kafka-set's secret settings and
 * --coingecko-api-key are registered secrets (every log line, the stats and the state file
 * scrub them: libpq and librdkafka quote what they refuse); a file output's path and the
 * ordinary settings are not. */
static void test_output_secrets(void **state)
{
    (void)state;
    result r;
    bp_secret_clear();
    assert_int_equal(
        load(&r, BP_CMD_RUN, "--rpc", "http://a:1", "--output",
             "postgresql://bp:Secr3tPw@[::1/db?sslpassword=PgKeyPass99&sslmode=require", "--output",
             "sqlite:/data/chain-1234567890/x.db", "--output",
             "kafka://127.0.0.1:1/t?ssl.key.password=Hunter2Secret&acks=all", "--kafka-set",
             "sasl.password=SaslPass77;linger.ms=20000", "--clickhouse-url",
             "http://u:ChPass1234@ch:8123/db", "--coingecko-api-key", "CGSECRET9", NULL),
        0);
    bp_config_release(&r.cfg);
    char text[] = "Secr3tPw PgKeyPass99 Hunter2Secret SaslPass77 ChPass1234 CGSECRET9 require "
                  "chain-1234567890 20000";
    bp_secret_scrub(text);
    assert_string_equal(text, "*** *** *** *** *** *** require chain-1234567890 20000");
    bp_secret_clear();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults_run, clear_env),
        cmocka_unit_test_setup(test_pairs, clear_env),
        cmocka_unit_test_setup(test_pairs_chains, clear_env),
        cmocka_unit_test_setup(test_chains_coin_id, clear_env),
        cmocka_unit_test_setup(test_output_secrets, clear_env),
        cmocka_unit_test_setup(test_clickhouse_url, clear_env),
        cmocka_unit_test_setup(test_inline_rpc_objects, clear_env),
        cmocka_unit_test_setup(test_realtime_options, clear_env),
        cmocka_unit_test_setup(test_strict_node, clear_env),
        cmocka_unit_test_setup(test_defaults_backfill, clear_env),
        cmocka_unit_test_setup(test_every_flag, clear_env),
        cmocka_unit_test_setup(test_equals_form, clear_env),
        cmocka_unit_test_setup(test_repeated_flags, clear_env),
        cmocka_unit_test_setup(test_precedence, clear_env),
        cmocka_unit_test_setup(test_json_rpcs_file, clear_env),
        cmocka_unit_test_setup(test_yaml_rpcs_file, clear_env),
        cmocka_unit_test_setup(test_chains, clear_env),
        cmocka_unit_test_setup(test_empty_file, clear_env),
        cmocka_unit_test_setup(test_file_errors, clear_env),
        cmocka_unit_test_setup(test_flag_validation, clear_env),
        cmocka_unit_test_setup(test_env_validation, clear_env),
        cmocka_unit_test_setup(test_max_memory, clear_env),
        cmocka_unit_test_setup(test_database_url_passthrough, clear_env),
        cmocka_unit_test_setup(test_unknown_and_missing, clear_env),
        cmocka_unit_test_setup(test_required, clear_env),
        cmocka_unit_test_setup(test_help, clear_env),
        cmocka_unit_test_setup(test_usage, clear_env),
        cmocka_unit_test_setup(test_output_options, clear_env),
        cmocka_unit_test_setup(test_derived_option, clear_env),
        cmocka_unit_test_setup(test_aliases, clear_env),
        cmocka_unit_test_setup(test_alias_conflicts, clear_env),
        cmocka_unit_test_setup(test_binary_config_file, clear_env),
        cmocka_unit_test_setup(test_migrate, clear_env),
        cmocka_unit_test_setup(test_credentials, clear_env),
        cmocka_unit_test_setup(test_alert_webhooks, clear_env),
        cmocka_unit_test_setup(test_alert_bad_rule_named_once, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
