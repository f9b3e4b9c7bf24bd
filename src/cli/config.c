/* config.c - run/backfill options from flags, environment, a YAML/JSON file and defaults. */
#include "cli/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "api/alerts.h"
#include "blockpipe/sink.h"
#include "chain/fetch.h"
#include "chain/presets.h"
#include "cli/creds.h"
#include "core/pipeline.h"
#include "core/source.h"
#include "util/log.h"
#include "util/url.h"

#define WHO_MAX 160
#define CMD_VERIFY (1u << BP_CMD_VERIFY)
#define CMD_BOTH (1u << BP_CMD_RUN | 1u << BP_CMD_BACKFILL | CMD_VERIFY)
#define CMD_BACKFILL (1u << BP_CMD_BACKFILL)
#define CMD_RUN (1u << BP_CMD_RUN)
#define CMD_RANGE (CMD_BACKFILL | CMD_VERIFY)
#define CMD_ALL (CMD_BOTH | 1u << BP_CMD_MIGRATE | 1u << BP_CMD_SERVE)
#define CMD_API (1u << BP_CMD_RUN | 1u << BP_CMD_BACKFILL | 1u << BP_CMD_SERVE)

/* The source being applied. A repeatable option (--rpc, --output) set by a stronger source
 * replaces what a weaker one set instead of adding to it. */
enum layer { LAYER_FILE = 1, LAYER_ENV, LAYER_FLAG, LAYER_CHAIN };

typedef struct loader {
    bp_config *cfg;
    enum bp_command cmd;
    int layer;
    int rpcs_layer;
    int outputs_layer;
    int alerts_layer, webhooks_layer;
    int rpc_headers_layer, ws_headers_layer;
    /* where --clickhouse-url, --clickhouse-db and the outputs came from (layer, and the name
     * used, for messages) */
    int ch_url_layer, ch_db_layer;
    char ch_url_who[WHO_MAX], ch_db_who[WHO_MAX], outputs_who[WHO_MAX];
    int chain_index; /* the chains: item applied last (bp_config_load_chain), or -1 */
    bool chain_pass; /* the file is read for that item only */
    /* the top level's price_coin_id and native token, held over the chain pass (chain_coin) */
    char *top_coin_id, *top_native;
} loader;

typedef struct opt opt;
typedef int (*opt_set_fn)(loader *ld, const opt *o, const char *value, const char *who,
                          bp_error *err);

/* One option of the command line, the environment and the config file. The usage text and
 * docs/CLI.md are made from this table and the outputs' own options (sink.h). */
struct opt {
    const char *flag;  /* without the leading "--" */
    const char *alias; /* a second flag, e.g. the name of the collector users come from */
    const char *arg;   /* placeholder in messages: N, S, URL ... */
    const char *env;
    const char *env2; /* second name, read when env is unset */
    const char *key;  /* config file key; NULL: not settable from the file */
    opt_set_fn set;   /* NULL: handled by bp_config_load itself (--config) */
    uint64_t min, max;
    double dmin, dmax;
    size_t off; /* the field in bp_config */
    unsigned cmds;
    const char *def;            /* the default, as --help shows it; NULL: none */
    const char *help;           /* one sentence (or two), no trailing period */
    const bp_sink_option *sink; /* an output's option (set_sink) */
    const bp_sink_ops *backend; /* the first output that has it */
    const char *env3;           /* third name, read when env and env2 are unset */
    /* env2 / env3 are names other programs read too (DATABASE_URL, REDIS_URL): taken in order,
     * without the check that two names of one variable agree (check_env_names) */
    bool env_ranked;
};

static int set_rpc(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_output(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_ch_url(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_string(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_secret(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_start(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_u64(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_u64_given(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_preset(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_int(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_seconds(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_size(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_fetch(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_level(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_format(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_from(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_ws(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_bool(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_output_failure(loader *ld, const opt *o, const char *v, const char *who,
                              bp_error *err);
static int set_to(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_sink(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_listen(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_number(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_alert(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_webhook(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_header(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_tls_file(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
/* The native token a config prices with: its own, its preset's, or ETH. */
static const char *native_of(const bp_config *cfg)
{
    return cfg->native_token ? cfg->native_token : cfg->preset ? cfg->preset->native_token : "ETH";
}

/* Before the chain pass: the top level's price_coin_id is taken aside with its native token, so
 * that after it (chain_coin_end) the chain has the id it gave itself or, failing that, the
 * top level's only if it prices the same token: a BNB chain under a top level of ETH with
 * price_coin_id: ethereum must not be priced with ethereum's id. */
static int chain_coin_begin(loader *ld, bp_error *err)
{
    bp_config *cfg = ld->cfg;
    if (!(ld->top_native = strdup(native_of(cfg))))
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    ld->top_coin_id = cfg->price_coin_id;
    cfg->price_coin_id = NULL;
    return 0;
}

/* After the chain pass and the preset (the chain's token is final); also on a failed load. */
static void chain_coin_end(loader *ld)
{
    bp_config *cfg = ld->cfg;
    if (ld->top_native && !cfg->price_coin_id && strcasecmp(native_of(cfg), ld->top_native) == 0) {
        cfg->price_coin_id = ld->top_coin_id;
        ld->top_coin_id = NULL;
    }
    free(ld->top_coin_id);
    free(ld->top_native);
    ld->top_coin_id = ld->top_native = NULL;
}

static int set_chain_id(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_chain_type(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_lock_wait(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);
static int set_shard(loader *ld, const opt *o, const char *v, const char *who, bp_error *err);

#define F(field) .off = offsetof(bp_config, field)
#define RANGE(lo, hi) .min = (lo), .max = (hi)
#define SECONDS(lo, hi) .dmin = (lo), .dmax = (hi)
static const opt g_opts[] = {
    {"rpc", NULL, "URL|JSON", "RPC_URL", "ANKR_RPC_URL", "rpc", set_rpc, .cmds = CMD_BOTH,
     .def = "required",
     .help = "JSON-RPC HTTP endpoint (http:// or https://), or an object "
             "{\"url\":URL,\"max_workers\":N,\"priority\":N,\"rps\":R,\"headers\":{NAME:VALUE},"
             "\"ca_file\":F,\"cert_file\":F,\"key_file\":F}; repeat for a pool: "
             "lower priority is preferred, failing endpoints are ejected and probed back, "
             "rate-limited ones paused. ${NAME} in it is read from the environment, @FILE "
             "from a file. Config file: rpc, or rpcs: [{url, max_workers, priority, rps, "
             "headers, ca_file, cert_file, key_file}]"},
    {"rpc-header", NULL, "'NAME: VALUE'", "RPC_HEADER", NULL, "rpc_headers", set_header,
     .cmds = CMD_BOTH, .def = "none",
     .help = "HTTP header sent to every --rpc endpoint that has no headers of its own, e.g. "
             "'Authorization: Bearer ${API_KEY}'; repeat for several (the environment variable: "
             "one per line). A VALUE ${NAME} is read from the environment, @FILE from a file. "
             "Config file: rpc_headers: {NAME: VALUE}"},
    {"ca-file", NULL, "FILE", "RPC_CA_FILE", NULL, "ca_file", set_tls_file,
     .off = offsetof(bp_config, rpc_creds.ca_file), .cmds = CMD_BOTH, .def = "the system store",
     .help = "PEM CA bundle the nodes' certificates are checked against (https:// and wss:// "
             "endpoints without a ca_file of their own)"},
    {"cert-file", NULL, "FILE", "RPC_CERT_FILE", NULL, "cert_file", set_tls_file,
     .off = offsetof(bp_config, rpc_creds.cert_file), .cmds = CMD_BOTH, .def = "none",
     .help = "client certificate (PEM) for nodes that require one (endpoints without a "
             "cert_file of their own)"},
    {"key-file", NULL, "FILE", "RPC_KEY_FILE", NULL, "key_file", set_tls_file,
     .off = offsetof(bp_config, rpc_creds.key_file), .cmds = CMD_BOTH, .def = "in the --cert-file",
     .help = "private key (PEM) of --cert-file"},
    {"chain", NULL, "NAME", "CHAIN", NULL, "chain", set_string, F(chain),
     .cmds = CMD_API | CMD_VERIFY, .def = "the chain id in decimal (1, 31337)",
     .help = "value of the chain column; with a chains: list in the config file, the chains "
             "of the list to run (their names, comma-separated)"},
    {"chain-type", NULL, "evm|arch", "CHAIN_TYPE", NULL, "chain_type", set_chain_type,
     .cmds = CMD_BOTH & ~CMD_VERIFY, .def = "evm",
     .help = "the chain's family: evm (Ethereum JSON-RPC) or arch (Arch Network: arch_blocks, "
             "arch_transactions, arch_account_updates, arch_events with --ws; every output "
             "but etl-csv, and --api; docs/ARCH.md)"},
    {"chain-id", NULL, "N", "CHAIN_ID", NULL, "chain_id", set_chain_id, RANGE(1, UINT64_MAX - 1),
     .cmds = CMD_BOTH, .def = "none",
     .help = "the chain id the endpoints must serve (eth_chainId): another stops the run (with "
             "a chains: list, that chain alone)"},
    {"workers-total", NULL, "N", "WORKERS_TOTAL", NULL, "workers_total", set_int, RANGE(1, 65536),
     F(workers_total), .cmds = CMD_BOTH, .def = "64",
     .help = "with a chains: list, the fetch workers of every chain together: each chain gets "
             "an equal share (at least 1), within what its endpoints allow"},
    {"shard", NULL, "K/N", "SHARD", NULL, "shard", set_shard, .cmds = CMD_BOTH & ~CMD_VERIFY,
     .def = "1/1 (every chain)",
     .help = "with a chains: list, run only the chains at positions K, K+N, K+2N ... of the "
             "list (1-based): N processes with shards 1/N to N/N run every chain once; with "
             "--chain A,B,C the chains named"},
    {"lock-wait", NULL, "S|forever", "LOCK_WAIT", NULL, "lock_wait", set_lock_wait,
     SECONDS(0, 31536000), F(lock_wait), .cmds = CMD_BOTH, .def = "forever",
     .help = "a chain another process writes to the same output (its writer lock: PostgreSQL, "
             "SQLite, Redis, a jsonl / etl-csv directory) "
             "is waited for this long, then taken over from its checkpoint when that process "
             "lets go or dies; 0: refuse at once (the chain stops with an error naming the "
             "holder); verify --repair takes the same lock before it writes"},
    {"output", NULL, "URL", "OUTPUT", "DATABASE_URL", "output", set_output, .cmds = CMD_ALL,
     .def = "sqlite:blockpipe.db", .env3 = "REDIS_URL", .env_ranked = true,
     .help = "where to write (the kinds are listed below); repeat for several, each keeps its "
             "own checkpoint. Config file: output, or outputs: [URL, ...]"},
    {"clickhouse-url", NULL, "URL", "CLICKHOUSE_URL", NULL, "clickhouse_url", set_ch_url,
     .cmds = CMD_ALL, .def = "none",
     .help = "adds a ClickHouse output (to --output's): clickhouse://user:pass@host:8123/db, or "
             "the http:// or https:// address of its HTTP interface"},
    {"start-block", NULL, "N|latest", "START_BLOCK", NULL, "start_block", set_start,
     .cmds = CMD_BOTH, .def = "latest", .help = "where run seeds an empty output"},
    {"chain-preset", NULL, "NAME", "CHAIN_PRESET", NULL, "preset", set_preset, .cmds = CMD_BOTH,
     .def = "none",
     .help = "a known chain (the list: docs/CLI.md \"Chain presets\"; e.g. ethereum, base, "
             "arbitrum, polygon): its chain id is checked against every endpoint's eth_chainId "
             "at start, and its confirmations, reorg window and native token are the defaults "
             "(a flag, variable or file setting of them still wins)"},
    {"confirmations", "reorg-depth", "N", "CONFIRMATIONS", NULL, "confirmations", set_u64_given,
     RANGE(0, 100000), F(confirmations), .cmds = CMD_BOTH, .def = "0 (the preset's)",
     .help = "apply only blocks at least N below the head (Arch: up to the node's "
             "get_best_finalized_block_hash when it answers one)"},
    {"reorg-window", NULL, "N", "REORG_WINDOW", NULL, "reorg_window", set_u64_given,
     RANGE(1, 100000), F(reorg_window), .cmds = CMD_BOTH, .def = "128 (the preset's)",
     .help = "recent blocks kept to find a common ancestor; a deeper reorg stops with an error"},
    {"workers", NULL, "N", "WORKERS", NULL, "workers", set_int, RANGE(1, 1024), F(workers),
     .cmds = CMD_BOTH, .def = "8",
     .help = "concurrent requests per endpoint without its own max_workers"},
    {"batch-size", NULL, "N", "BATCH_SIZE", "ANKR_BATCH_SIZE", "batch_size", set_int,
     RANGE(1, 100000), F(batch_size), .cmds = CMD_BOTH, .def = "100",
     .help = "blocks per output transaction (at the head every block commits at once)"},
    {"max-memory", NULL, "SIZE", "MAX_MEMORY", NULL, "max_memory", set_size,
     RANGE(64ull << 20, 1ull << 40), F(max_memory), .cmds = CMD_BOTH, .def = "96MiB per chain",
     .help = "the process's memory for blocks in flight, the reorder window, the batches and the "
             "outputs' buffers, e.g. 256MiB, 1GiB, 512M (a block larger than it still goes "
             "through, alone, with a warning)"},
    {"poll-interval", NULL, "S", "POLLING_INTERVAL", "ANKR_POLLING_INTERVAL", "poll_interval",
     set_seconds, SECONDS(0.01, 3600), F(poll_interval), .cmds = CMD_BOTH, .def = "1.0",
     .help = "seconds between HTTP head polls (a heartbeat every 10x while the WebSocket is "
             "healthy)"},
    {"stats-interval", NULL, "S", "STATS_INTERVAL", NULL, "stats_interval", set_seconds,
     SECONDS(0.1, 86400), F(stats_interval), .cmds = CMD_BOTH, .def = "10",
     .help = "seconds between stats lines"},
    {"fetch", NULL, "LIST", "FETCH", NULL, "fetch", set_fetch, .cmds = CMD_BOTH,
     .def = "blocks,transactions,receipts,logs",
     .help = "what to fetch, a subset of blocks,transactions,receipts,logs (without receipts "
             "and logs no receipt method is called)"},
    {"strict-node", NULL, NULL, "STRICT_NODE", NULL, "strict_node", set_bool, F(strict_node),
     .cmds = CMD_BOTH, .def = "off",
     .help = "every block is checked (receipts match the transactions, transaction indexes run "
             "0..n-1, log indexes increase across the block); without this flag log indexes "
             "that restart in every transaction (ganache) are renumbered with a warning, with it "
             "such a block fails like any other violation (--strict-node=off to unset)"},
    {"rpc-timeout", NULL, "S", "RPC_TIMEOUT", NULL, "rpc_timeout", set_seconds, SECONDS(0.1, 3600),
     F(rpc_timeout), .cmds = CMD_BOTH, .def = "30", .help = "seconds for one HTTP request"},
    {"max-retries", NULL, "N", "MAX_RETRIES", NULL, "max_retries", set_int, RANGE(0, 1000),
     F(max_retries), .cmds = CMD_BOTH, .def = "5",
     .help = "retries of a block after its first failed attempt: it counts as failed after N + 1 "
             "failed attempts (\"failed after N+1 attempts\"; a 429 is not a failure)"},
    {"failed-retry-interval", NULL, "S", "FAILED_RETRY_INTERVAL", NULL, "failed_retry_interval",
     set_seconds, SECONDS(0.1, 3600), F(failed_retry_interval), .cmds = CMD_RUN, .def = "30",
     .help = "seconds before `run` tries again a block that failed --max-retries times (the chain "
             "waits on it; backfill stops instead); between its own attempts a block waits "
             "0.2..10 s"},
    {"state-dir", NULL, "DIR", "STATE_DIR", NULL, "state_dir", set_string, F(state_dir),
     .cmds = CMD_BOTH, .def = "none",
     .help = "where the state of a run (failed blocks, the command) is kept, made at start "
             "if missing (not its parents); `blockpipe retry-failed --state-dir DIR` runs it "
             "again"},
    {"output-failure", NULL, "stop|continue", "OUTPUT_FAILURE", NULL, "output_failure",
     set_output_failure, .cmds = CMD_BOTH, .def = "stop",
     .help = "an output that keeps failing stops the run (stop), or is set aside while the "
             "others go on (continue) and caught up from its checkpoint when it answers again"},
    {"ws", NULL, "URL|JSON", "WEBSOCKET_URL", NULL, "ws", set_ws, .cmds = CMD_BOTH, .def = "none",
     .help = "WebSocket endpoint (ws:// or wss://) of the node: new heads by "
             "eth_subscribe(newHeads) (Arch: its six topics, stored in arch_events), HTTP "
             "polling as the fallback (run only); or an object "
             "{\"url\":URL,\"headers\":{NAME:VALUE},\"ca_file\":F,\"cert_file\":F,\"key_file\":F}"},
    {"ws-header", NULL, "'NAME: VALUE'", "WS_HEADER", NULL, "ws_headers", set_header,
     .cmds = CMD_BOTH, .def = "none",
     .help = "header of the WebSocket handshake, as --rpc-header (the WebSocket does not get "
             "--rpc-header's). Config file: ws_headers: {NAME: VALUE}"},
    {"realtime", NULL, "on|off", "ENABLE_REALTIME", "STREAMING_ENABLED", "realtime", set_bool,
     F(realtime), .cmds = CMD_BOTH, .def = "on", .help = "use --ws when given"},
    {"ws-reconnect-interval", NULL, "S", "WS_RECONNECT_INTERVAL", NULL, "ws_reconnect_interval",
     set_seconds, SECONDS(0.1, 3600), F(ws_reconnect_interval), .cmds = CMD_BOTH, .def = "5",
     .help = "first reconnect delay, doubling with jitter up to 60 s"},
    {"ws-max-reconnect-attempts", NULL, "N", "WS_MAX_RECONNECT_ATTEMPTS", NULL,
     "ws_max_reconnect_attempts", set_int, RANGE(0, 1000), F(ws_max_reconnect_attempts),
     .cmds = CMD_BOTH, .def = "10", .help = "then polling only, with a socket attempt a minute"},
    {"ws-stale-after", NULL, "S", "WS_STALE_AFTER", NULL, "ws_stale_after", set_seconds,
     SECONDS(1, 86400), F(ws_stale_after), .cmds = CMD_BOTH,
     .def = "3 x the block time, at least 30",
     .help = "a socket with no head for S seconds is treated as dead"},
    {"api", NULL, "HOST:PORT", "API_LISTEN", NULL, "api", set_listen, F(api_listen),
     .cmds = CMD_API, .def = "off (serve: 127.0.0.1:8080)",
     .help = "serve the HTTP API here: REST over the output, status, /metrics, WebSocket and "
             "SSE push, the dashboard (docs/API.md); a non-loopback address exposes it"},
    {"api-token", NULL, "TOKEN", "API_TOKEN", NULL, "api_token", set_secret, F(api_token),
     .cmds = CMD_API, .def = "none",
     .help = "Bearer token the API requires for writes (and reads with --api-token-reads); "
             "SSE and WebSocket clients may pass ?token="},
    {"api-token-reads", NULL, "on|off", "API_TOKEN_READS", NULL, "api_token_reads", set_bool,
     F(api_token_reads), .cmds = CMD_API, .def = "off",
     .help = "require --api-token for every request but /health"},
    {"api-rate-limit", NULL, "R", "API_RATE_LIMIT", NULL, "api_rate_limit", set_number,
     SECONDS(0, 1e6), F(api_rate), .cmds = CMD_API, .def = "100",
     .help = "requests per second per client address (bursts of 2R), then 429 with "
             "Retry-After; 0: no limit"},
    {"api-cors", NULL, "ORIGINS", "API_CORS_ORIGINS", NULL, "api_cors", set_string, F(api_cors),
     .cmds = CMD_API, .def = "none",
     .help = "origins browsers may call the API from: * or a comma list of "
             "scheme://host[:port]"},
    {"api-tls-cert", NULL, "FILE", "API_TLS_CERT", NULL, "api_tls_cert", set_string,
     F(api_tls_cert), .cmds = CMD_API, .def = "none",
     .help = "PEM certificate: serve HTTPS and WSS (with --api-tls-key)"},
    {"api-tls-key", NULL, "FILE", "API_TLS_KEY", NULL, "api_tls_key", set_string, F(api_tls_key),
     .cmds = CMD_API, .def = "none", .help = "PEM private key of --api-tls-cert"},
    {"api-threads", NULL, "N", "API_THREADS", NULL, "api_threads", set_int, RANGE(1, 64),
     F(api_threads), .cmds = CMD_API, .def = "2",
     .help = "threads answering REST requests, each with its own read-only database connection"},
    {"ready-lag", NULL, "N", "READY_LAG", NULL, "ready_lag", set_u64, RANGE(0, 1000000),
     F(ready_lag), .cmds = CMD_API, .def = "10",
     .help = "/ready answers 503 while the chain is more than N blocks behind its head"},
    {"api-max-body", NULL, "BYTES", "API_MAX_BODY", NULL, "api_max_body", set_u64,
     RANGE(1024, 1u << 30), F(api_max_body), .cmds = CMD_API, .def = "1048576",
     .help = "largest request body (413 above); request headers are capped at 8 KiB"},
    {"api-request-timeout", NULL, "S", "API_REQUEST_TIMEOUT", NULL, "api_request_timeout",
     set_seconds, SECONDS(1, 3600), F(api_request_timeout), .cmds = CMD_API, .def = "10",
     .help = "seconds a request may take, from its first byte to its answer"},
    {"api-max-connections", NULL, "N", "API_MAX_CONNECTIONS", NULL, "api_max_connections", set_int,
     RANGE(16, 1000000), F(api_max_connections), .cmds = CMD_API, .def = "4096",
     .help = "open connections at most (more are closed at once)"},
    {"api-push-clients", NULL, "N", "API_PUSH_CLIENTS", NULL, "api_push_clients", set_int,
     RANGE(1, 1000000), F(api_push_clients), .cmds = CMD_API, .def = "4096",
     .help = "WebSocket and SSE clients at most"},
    {"api-push-ring", NULL, "N", "API_PUSH_RING", NULL, "api_push_ring", set_int,
     RANGE(16, 10000000), F(api_push_ring), .cmds = CMD_API, .def = "4096",
     .help = "block events kept for clients that reconnect with a cursor; a client further "
             "behind is dropped (184 bytes an event, all resident from the start: 736 KiB for "
             "4096; part of --max-memory's fixed part, once per process: a ring that does not fit "
             "in it is refused at start)"},
    {"api-push-queue", NULL, "BYTES", "API_PUSH_QUEUE", NULL, "api_push_queue", set_u64,
     RANGE(4096, 1u << 30), F(api_push_queue), .cmds = CMD_API, .def = "1048576",
     .help = "messages queued per push client at most"},
    {"api-push-memory", NULL, "BYTES", "API_PUSH_MEMORY", NULL, "api_push_memory", set_u64,
     RANGE(1u << 20, 1u << 30), F(api_push_memory), .cmds = CMD_API, .def = "3145728",
     .help = "messages the push side holds at most: the events built for the clients and every "
             "client's queue together, each message once (part of --max-memory's fixed part, "
             "with the ring; when it is full no event is built until the clients read, and a "
             "client that has not read for 1 s is dropped)"},
    {"api-push-stall", NULL, "S", "API_PUSH_STALL", NULL, "api_push_stall", set_seconds,
     SECONDS(1, 86400), F(api_push_stall), .cmds = CMD_API, .def = "30",
     .help = "a push client that takes no message for S seconds while some wait is dropped"},
    {"stream-store", NULL, "URL", "STREAM_STORE", NULL, "stream_store", set_string, F(stream_store),
     .cmds = CMD_API, .def = "the first redis:// output, else the sqlite: one",
     .help = "keyed streams store of /api/v1/streaming (sqlite:PATH or redis://..., as "
             "`blockpipe stream --store`)"},
    {"alert", NULL, "RULE", "ALERTS", NULL, "alerts", set_alert, .cmds = CMD_BOTH & ~CMD_VERIFY,
     .def = "none",
     .help = "fire (and later resolve) an alert to the log and --alert-webhook when RULE holds: "
             "NAME>VALUE, NAME<VALUE or NAME, NAME one of lag, stalled (seconds without a new "
             "head), endpoint_down, output_failing, waiting, waiting_for_lock (another process "
             "holds the chain's writer lock), failed, pending, blocks_per_s, "
             "txs_per_s, memory_used, head_to_commit_p99_ms, rpc_p99_ms, rpc_errors; repeat for "
             "several (environment: comma list)"},
    {"alert-webhook", NULL, "URL", "ALERT_WEBHOOK", NULL, "alert_webhook", set_webhook,
     .cmds = CMD_BOTH & ~CMD_VERIFY, .def = "none",
     .help = "POST each alert there as Slack-compatible JSON {\"text\": ...}; repeat for several "
             "(environment: comma list): all are sent to at once, each in order, 5 s each"},
    {"native-token", NULL, "SYMBOL", "NATIVE_TOKEN", NULL, "native_token", set_string,
     F(native_token), .cmds = CMD_BOTH, .def = "ETH",
     .help = "the chain's native token: the symbol of the USD prices that fees_paid_usd uses"},
    {"prices", NULL, "FILE", "PRICES_FILE", NULL, "prices", set_string, F(prices_file),
     .cmds = CMD_BOTH, .def = "none",
     .help = "USD prices of the native token: CSV with a header (timestamp, symbol, usd) or JSON "
             "lines {\"timestamp\":..., \"symbol\":..., \"usd\":...}; timestamps in unix "
             "seconds or ISO 8601 UTC"},
    {"price-url", NULL, "URL", "PRICE_URL", NULL, "price_url", set_string, F(price_url),
     .cmds = CMD_BOTH, .def = "none",
     .help = "base of a CoinGecko-shaped API (https://api.coingecko.com/api/v3): the current "
             "price every --price-interval, history over the range endpoint for older blocks "
             "(in ranges of up to 90 days, hourly points; 2 s apart at least; the demo plan "
             "refuses history older than 365 days: those blocks keep NULL USD, logged once)"},
    {"price-coin-id", NULL, "ID", "PRICE_COIN_ID", NULL, "price_coin_id", set_string,
     F(price_coin_id), .cmds = CMD_BOTH, .def = "from --native-token (ETH: ethereum)",
     .help = "CoinGecko's id of the native token; in a chains: list the top level's applies "
             "to the chains of the top level's native token only, a chain of another token "
             "without a price_coin_id of its own gets that token's id"},
    {"coingecko-api-key", NULL, "KEY", "COINGECKO_API_KEY", NULL, "coingecko_api_key", set_secret,
     F(coingecko_api_key), .cmds = CMD_BOTH, .def = "none",
     .help = "sent as x-cg-pro-api-key (pro-api host) or x-cg-demo-api-key; prefer the "
             "environment variable. Without --price-url the key alone starts the fetcher on "
             "https://api.coingecko.com/api/v3 (a demo key; a pro key needs --price-url "
             "https://pro-api.coingecko.com/api/v3)"},
    {"price-interval", NULL, "S", "PRICE_INTERVAL", NULL, "price_interval", set_seconds,
     SECONDS(0.1, 86400), F(price_interval), .cmds = CMD_BOTH, .def = "60",
     .help = "seconds between current-price requests"},
    {"price-max-age", NULL, "S", "PRICE_MAX_AGE", NULL, "price_max_age", set_u64,
     RANGE(1, 315360000), F(price_max_age), .cmds = CMD_BOTH, .def = "7200",
     .help = "a block's USD price is the latest at or before it, at most S seconds older; "
             "without one its USD columns stay NULL until a price arrives. CoinGecko's "
             "history is hourly (5-minutely for the last day only): below 3600 older blocks "
             "away from an hourly point stay NULL"},
    {"ml", NULL, "on|off", "ML_PREDICTIONS", NULL, "ml", set_bool, F(ml), .cmds = CMD_BOTH,
     .def = "off",
     .help = "score every transaction with the online anomaly model into ml_predictions "
             "(outputs with derived tables; one row per transaction: see docs/PERFORMANCE.md)"},
    {"config", NULL, "FILE", "BLOCKPIPE_CONFIG", NULL, NULL, NULL, .cmds = CMD_ALL, .def = "none",
     .help = "YAML or JSON config file; unknown keys are refused"},
    {"log-level", NULL, "L", "LOG_LEVEL", NULL, "log_level", set_level, .cmds = CMD_ALL,
     .def = "info", .help = "debug, info, warn or error"},
    {"log-format", NULL, "F", "LOG_FORMAT", NULL, "log_format", set_format, .cmds = CMD_ALL,
     .def = "text", .help = "text or json (one JSON object per line)"},
    {"from", NULL, "N", NULL, NULL, NULL, set_from, RANGE(0, UINT64_MAX), .cmds = CMD_RANGE,
     .def = "required", .help = "first block to index (verify: to compare)"},
    {"to", NULL, "N", NULL, NULL, NULL, set_to, RANGE(0, UINT64_MAX), .cmds = CMD_RANGE,
     .def = "required", .help = "last block to index (verify: to compare), inclusive"},
    {"repair", NULL, NULL, NULL, NULL, NULL, set_bool, F(repair), .cmds = CMD_VERIFY, .def = "off",
     .help = "write the differing blocks again from the node, each as a REVERT of what is "
             "stored and an APPLY of the node's block in one transaction (the checkpoint stays; "
             "derived tables are redone as after a reorg)"},
};
#undef F
#undef RANGE
#undef SECONDS
#define N_CORE (sizeof(g_opts) / sizeof(g_opts[0]))
#define MAX_OPTS (N_CORE + 64)

/* The core options followed by one entry per distinct setting (config key) of the outputs'
 * own options, made once: outputs that share a key share the flag and the value. */
static const opt *all_opts(size_t *n)
{
    static opt table[MAX_OPTS];
    static size_t count;
    if (count)
        return *n = count, table;
    memcpy(table, g_opts, sizeof(g_opts));
    count = N_CORE;
    for (const bp_sink_ops *const *b = bp_sink_backends(); *b; b++) {
        for (size_t i = 0; i < (*b)->option_count && count < MAX_OPTS; i++) {
            const bp_sink_option *so = &(*b)->options[i];
            bool seen = !so->key;
            for (size_t k = N_CORE; k < count && !seen; k++)
                seen = strcmp(table[k].key, so->key) == 0;
            if (seen)
                continue;
            table[count++] = (opt){.flag = so->flag,
                                   .arg = so->arg,
                                   .env = so->env,
                                   .key = so->key,
                                   .set = set_sink,
                                   .cmds = CMD_ALL,
                                   .def = so->def,
                                   .help = so->help,
                                   .sink = so,
                                   .backend = *b};
        }
    }
    return *n = count, table;
}

static const char *cmd_name(enum bp_command cmd)
{
    return cmd == BP_CMD_BACKFILL  ? "backfill"
           : cmd == BP_CMD_VERIFY  ? "verify"
           : cmd == BP_CMD_MIGRATE ? "migrate"
           : cmd == BP_CMD_SERVE   ? "serve"
                                   : "run";
}

static bool opt_for(const opt *o, enum bp_command cmd)
{
    return (o->cmds & (1u << cmd)) != 0;
}

static bool flag_is(const char *flag, const char *name, size_t len)
{
    return flag && strlen(flag) == len && memcmp(flag, name, len) == 0;
}

static const opt *find_flag(const char *name, size_t len, enum bp_command cmd)
{
    size_t n;
    const opt *t = all_opts(&n);
    for (size_t i = 0; i < n; i++)
        if (flag_is(t[i].flag, name, len) || flag_is(t[i].alias, name, len))
            return opt_for(&t[i], cmd) ? &t[i] : NULL;
    return NULL;
}

static const opt *find_key(const char *key, enum bp_command cmd)
{
    size_t n;
    const opt *t = all_opts(&n);
    if (strcmp(key, "rpcs") == 0)
        key = "rpc";
    else if (strcmp(key, "outputs") == 0)
        key = "output";
    for (size_t i = 0; i < n; i++)
        if (t[i].key && strcmp(t[i].key, key) == 0 && opt_for(&t[i], cmd))
            return &t[i];
    return NULL;
}

/* "WHO: 'VALUE' is not valid: expected ..." */
__attribute__((format(printf, 4, 5))) static int invalid(bp_error *err, const char *who,
                                                         const char *value, const char *fmt, ...)
{
    char expected[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(expected, sizeof(expected), fmt, ap);
    va_end(ap);
    return bp_error_set(err, BP_EINVAL, "%s: '%s' is not valid: %s", who, value, expected);
}

static int replace_string(char **slot, const char *value, bp_error *err)
{
    char *copy = strdup(value);
    if (!copy)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    free(*slot);
    *slot = copy;
    return 0;
}

/* ---- value parsers ---- */

/* A whole decimal number: digits only, no sign, no spaces, no overflow. */
static bool parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* A plain decimal: "2", "0.5", ".5", "1." (no sign, exponent, hex, inf or nan). */
static bool parse_decimal(const char *s, double *out)
{
    size_t whole = strspn(s, "0123456789"), frac = 0;
    const char *p = s + whole;
    if (*p == '.') {
        frac = strspn(p + 1, "0123456789");
        p += 1 + frac;
    }
    if (*p || whole + frac == 0)
        return false;
    *out = strtod(s, NULL);
    return true;
}

/* "256MiB", "1GiB", "512M", "64mb", "1048576": K, M, G, T are powers of 1024, with or without
 * "iB" / "B" after them, in any case; a bare number (or one ending in B) is bytes. */
static bool parse_size(const char *s, uint64_t *out)
{
    static const char units[] = "KMGT";
    char num[21];
    size_t digits = strspn(s, "0123456789");
    const char *u = s + digits, *k = *u ? strchr(units, toupper((unsigned char)*u)) : NULL;
    unsigned shift = k ? 10u * (unsigned)(k - units + 1) : 0;
    const char *rest = k ? u + 1 : u;
    uint64_t v;
    if (digits == 0 || digits >= sizeof(num))
        return false;
    if (*rest && strcasecmp(rest, "B") != 0 && (!k || strcasecmp(rest, "iB") != 0))
        return false;
    memcpy(num, s, digits);
    num[digits] = '\0';
    if (!parse_u64(num, &v) || v > (UINT64_MAX >> shift))
        return false;
    *out = v << shift;
    return true;
}

static int parse_ranged(const opt *o, const char *v, const char *who, uint64_t *out, bp_error *err)
{
    if (o->max == UINT64_MAX && !parse_u64(v, out))
        return invalid(err, who, v, "expected a block number");
    if (!parse_u64(v, out) || *out < o->min || *out > o->max)
        return invalid(err, who, v, "expected an integer from %llu to %llu",
                       (unsigned long long)o->min, (unsigned long long)o->max);
    return 0;
}

/* ---- setters, one per kind of value ---- */

static int set_u64(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    uint64_t n;
    int rc = parse_ranged(o, v, who, &n, err);
    if (rc == 0)
        *(uint64_t *)((char *)ld->cfg + o->off) = n;
    return rc;
}

static int set_int(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    uint64_t n;
    int rc = parse_ranged(o, v, who, &n, err);
    if (rc == 0)
        *(int *)((char *)ld->cfg + o->off) = (int)n;
    return rc;
}

/* A decimal in [dmin, dmax] into its double field; what names the quantity in the error. */
static int set_double(loader *ld, const opt *o, const char *v, const char *who, const char *what,
                      bp_error *err)
{
    double d;
    if (!parse_decimal(v, &d) || d < o->dmin || d > o->dmax)
        return invalid(err, who, v, "expected %s from %g to %g", what, o->dmin, o->dmax);
    *(double *)((char *)ld->cfg + o->off) = d;
    return 0;
}

static int set_seconds(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    return set_double(ld, o, v, who, "a number of seconds", err);
}

static int set_lock_wait(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    if (strcmp(v, "forever") == 0) {
        ld->cfg->lock_wait = -1;
        return 0;
    }
    return set_double(ld, o, v, who, "a number of seconds (or forever)", err);
}

static int set_shard(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    (void)o;
    unsigned k = 0, n = 0;
    int end = 0;
    if (sscanf(v, "%u/%u%n", &k, &n, &end) != 2 || v[end] || k < 1 || n < 1 || k > n ||
        n > BP_MAX_CHAINS)
        return invalid(err, who, v, "expected K/N with 1 <= K <= N <= %d, e.g. 2/3", BP_MAX_CHAINS);
    ld->cfg->shard_k = (int)k;
    ld->cfg->shard_n = (int)n;
    return 0;
}

static int set_size(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    uint64_t n;
    if (!parse_size(v, &n) || n < o->min || n > o->max)
        return invalid(err, who, v,
                       "expected a size from %lluMiB to %lluGiB: a number with K, M, G or T "
                       "(powers of 1024), e.g. 256MiB, 1GiB, 512M, or a number of bytes",
                       (unsigned long long)(o->min >> 20), (unsigned long long)(o->max >> 30));
    *(uint64_t *)((char *)ld->cfg + o->off) = n;
    return 0;
}

static int set_start(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    uint64_t n;
    (void)o;
    if (strcmp(v, "latest") == 0) {
        ld->cfg->start_latest = true;
        ld->cfg->start_set = false;
        return 0;
    }
    if (!parse_u64(v, &n))
        return invalid(err, who, v, "expected a block number or 'latest'");
    ld->cfg->start_block = n;
    ld->cfg->start_set = true;
    ld->cfg->start_latest = false;
    return 0;
}

static int set_from(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    int rc = parse_ranged(o, v, who, &ld->cfg->from_block, err);
    ld->cfg->from_set = rc == 0;
    return rc;
}

static int set_to(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    int rc = parse_ranged(o, v, who, &ld->cfg->to_block, err);
    ld->cfg->to_set = rc == 0;
    return rc;
}

static int set_u64_given(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    int rc = set_u64(ld, o, v, who, err);
    if (rc == 0 && o->off == offsetof(bp_config, confirmations))
        ld->cfg->confirmations_given = true;
    if (rc == 0 && o->off == offsetof(bp_config, reorg_window))
        ld->cfg->reorg_window_given = true;
    return rc;
}

static int set_preset(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    (void)o;
    const bp_chain_preset *p = bp_chain_preset_find(v);
    if (!p)
        return invalid(err, who, v, "expected one of %s", bp_chain_preset_names());
    ld->cfg->preset = p;
    return 0;
}

/* The preset's values where no source set them (after every source is read). */
static int apply_preset(bp_config *cfg, bp_error *err)
{
    const bp_chain_preset *p = cfg->preset;
    if (!p)
        return 0;
    if (!cfg->confirmations_given)
        cfg->confirmations = p->confirmations;
    if (!cfg->reorg_window_given)
        cfg->reorg_window = p->reorg_window;
    if (!cfg->native_token)
        return replace_string(&cfg->native_token, p->native_token, err);
    return 0;
}

static int set_chain_id(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    int rc = parse_ranged(o, v, who, &ld->cfg->chain_id, err);
    ld->cfg->chain_id_set = rc == 0;
    return rc;
}

static int set_chain_type(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    (void)o;
    const bp_source_ops *src = bp_source_find(v);
    if (!src)
        return invalid(err, who, v, "expected one of %s", bp_source_names());
    ld->cfg->chain_type = src->name;
    return 0;
}

static int set_string(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    if (!*v)
        return invalid(err, who, v, "expected a non-empty %s", o->arg);
    return replace_string((char **)((char *)ld->cfg + o->off), v, err);
}

/* A key or token: registered at once, so that no log line, error, stats snapshot or state
 * file written after this shows it (a price API's error body may quote the key). */
static int set_secret(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    bp_secret_add(v);
    return set_string(ld, o, v, who, err);
}

static int set_level(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    int level = bp_log_level_parse(v);
    (void)o;
    if (level < 0)
        return invalid(err, who, v, "expected one of debug, info, warn, error");
    ld->cfg->log_level = level;
    return 0;
}

static bool has_prefix_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* "WHO: 'URL' is not valid: ..." with the URL's keys masked. */
static int invalid_url(bp_error *err, const char *who, const char *url, const char *expected)
{
    char shown[512];
    bp_secret_add_url(url); /* whatever its scheme: it was meant as an endpoint */
    bp_url_redact(url, shown, sizeof(shown));
    bp_secret_scrub(shown); /* a URL read from a file that is not a URL is still a secret */
    return invalid(err, who, shown, "%s", expected);
}

static int set_ws_url(loader *ld, const char *v, const char *who, bp_error *err)
{
    char *url = NULL;
    int rc = bp_creds_expand(v, who, &url, err);
    if (rc != 0)
        return rc;
    if (!has_prefix_ci(url, "ws://") && !has_prefix_ci(url, "wss://")) {
        rc = invalid_url(err, who, url, "expected a ws:// or wss:// URL");
        free(url);
        return rc;
    }
    bp_secret_add_url(url);
    free(ld->cfg->ws_url);
    ld->cfg->ws_url = url;
    return 0;
}

static int ws_inline(loader *ld, const char *json, const char *who, bp_error *err);

/* --ws URL, or --ws '{"url": URL, "headers": {...}, "ca_file": ...}' */
static int set_ws(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    (void)o;
    return *v == '{' ? ws_inline(ld, v, who, err) : set_ws_url(ld, v, who, err);
}

/* A list of headers set by a stronger source replaces the weaker one's. */
static bp_endpoint_creds *header_list(loader *ld, const opt *o)
{
    bool ws = strcmp(o->key, "ws_headers") == 0;
    bp_endpoint_creds *c = ws ? &ld->cfg->ws_creds : &ld->cfg->rpc_creds;
    int *layer = ws ? &ld->ws_headers_layer : &ld->rpc_headers_layer;
    if (*layer != ld->layer) {
        bp_creds_clear_headers(c);
        *layer = ld->layer;
    }
    return c;
}

static int set_header(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    return bp_creds_add_header_lines(header_list(ld, o), v, who, err);
}

static int set_tls_file(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    return bp_creds_set_file((char **)((char *)ld->cfg + o->off), v, who, err);
}

static int parse_on_off(const char *v, bool *out, const char *who, bp_error *err)
{
    static const char *const on[] = {"on", "true", "1", "yes"}, *const off[] = {"off", "false", "0",
                                                                                "no"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, on[i]) == 0 || strcasecmp(v, off[i]) == 0) {
            *out = strcasecmp(v, on[i]) == 0;
            return 0;
        }
    }
    return invalid(err, who, v, "expected on or off (true/false, 1/0, yes/no)");
}

/* An on/off option into its bool field (a flag without a value, --strict-node, means on). */
static int set_bool(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    return parse_on_off(v, (bool *)((char *)ld->cfg + o->off), who, err);
}

static int set_output_failure(loader *ld, const opt *o, const char *v, const char *who,
                              bp_error *err)
{
    (void)o;
    if (strcmp(v, "stop") != 0 && strcmp(v, "continue") != 0)
        return invalid(err, who, v, "expected stop or continue");
    ld->cfg->output_keep_going = strcmp(v, "continue") == 0;
    return 0;
}

static int set_listen(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    const char *colon = strrchr(v, ':');
    char *end;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || colon == v || !colon[1] || *end || port < 0 || port > 65535)
        return invalid(err, who, v, "expected HOST:PORT, e.g. 127.0.0.1:8080");
    return set_string(ld, o, v, who, err);
}

static int set_number(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    return set_double(ld, o, v, who, "a number", err);
}

/* --alert RULE (repeatable; the environment's value is a comma list). */
static int set_alert(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    bp_config *cfg = ld->cfg;
    (void)o;
    if (ld->alerts_layer != ld->layer) {
        for (int i = 0; i < cfg->alert_count; i++)
            free(cfg->alerts[i]);
        cfg->alert_count = 0;
        ld->alerts_layer = ld->layer;
    }
    while (*v) {
        size_t n = ld->layer == LAYER_ENV ? strcspn(v, ",") : strlen(v);
        char rule[128];
        bp_alert_rule r;
        snprintf(rule, sizeof(rule), "%.*s", (int)n, v);
        if (bp_alert_parse(rule, &r, err) != 0)
            return bp_error_prefix(err, "%s: ", who);
        if (cfg->alert_count == BP_MAX_ALERTS)
            return bp_error_set(err, BP_EINVAL, "%s: too many alerts (at most %d)", who,
                                BP_MAX_ALERTS);
        cfg->alerts[cfg->alert_count] = NULL;
        int rc = replace_string(&cfg->alerts[cfg->alert_count], rule, err);
        if (rc != 0)
            return rc;
        cfg->alert_count++;
        v += n + (v[n] == ',');
    }
    return 0;
}

/* --alert-webhook URL (repeatable; the environment's value is a comma list). */
static int set_webhook(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    bp_config *cfg = ld->cfg;
    (void)o;
    if (ld->webhooks_layer != ld->layer) {
        for (int i = 0; i < cfg->alert_webhook_count; i++)
            free(cfg->alert_webhooks[i]);
        cfg->alert_webhook_count = 0;
        ld->webhooks_layer = ld->layer;
    }
    while (*v) {
        size_t n = ld->layer == LAYER_ENV ? strcspn(v, ",") : strlen(v);
        if (cfg->alert_webhook_count == BP_MAX_WEBHOOKS)
            return bp_error_set(err, BP_EINVAL, "%s: too many webhooks (at most %d)", who,
                                BP_MAX_WEBHOOKS);
        if (!(cfg->alert_webhooks[cfg->alert_webhook_count] = strndup(v, n)))
            return bp_error_set(err, BP_ENOMEM, "out of memory");
        /* a Slack webhook's path is its key: never in a log line or the state file */
        bp_secret_add_url(cfg->alert_webhooks[cfg->alert_webhook_count]);
        cfg->alert_webhook_count++;
        v += n + (v[n] == ',');
    }
    return 0;
}

static int set_format(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    (void)o;
    if (strcmp(v, "text") != 0 && strcmp(v, "json") != 0)
        return invalid(err, who, v, "expected text or json");
    ld->cfg->log_json = strcmp(v, "json") == 0;
    return 0;
}

static int set_fetch(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    unsigned what = 0;
    bp_error perr = {0};
    (void)o;
    if (bp_fetch_parse_list(v, &what, &perr) != 0) {
        /* bp_fetch_parse_list names itself ("fetch: ..."); we name the key instead. */
        const char *why = strncmp(perr.msg, "fetch: ", 7) == 0 ? perr.msg + 7 : perr.msg;
        return invalid(err, who, v, "%s", why);
    }
    ld->cfg->fetch = what;
    return 0;
}

/* An output's option given for every output of its kind: checked against every output that
 * has the setting, kept as text for the registry (a URL parameter still wins over it). */
static int set_sink(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    bp_config *cfg = ld->cfg;
    const char *canon = v;
    for (const bp_sink_ops *const *b = bp_sink_backends(); *b; b++)
        for (size_t i = 0; i < (*b)->option_count; i++)
            if ((*b)->options[i].key && strcmp((*b)->options[i].key, o->key) == 0 &&
                bp_sink_option_check(&(*b)->options[i], v, who, &canon, err) != 0)
                return err->code;
    if (strcmp(o->key, "kafka_set") == 0) /* librdkafka's K=V;... (sasl.password=...) */
        bp_secret_add_settings(v, ";");
    if (strcmp(o->key, "clickhouse_db") == 0) {
        ld->ch_db_layer = ld->layer;
        snprintf(ld->ch_db_who, sizeof(ld->ch_db_who), "%s", who);
    }
    size_t k = 0;
    while (k < cfg->sink_setting_count && strcmp(cfg->sink_settings[k].key, o->key) != 0)
        k++;
    if (k == BP_MAX_SINK_SETTINGS)
        return bp_error_set(err, BP_EINVAL, "%s: too many output settings", who);
    char *copy = strdup(canon);
    if (!copy)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    if (k == cfg->sink_setting_count)
        cfg->sink_setting_count++;
    else
        free((char *)cfg->sink_settings[k].value);
    cfg->sink_settings[k] = (bp_sink_setting){.key = o->key, .value = copy};
    return 0;
}

static int check_rpc_url(const char *v, const char *who, bp_error *err)
{
    if (has_prefix_ci(v, "ws://") || has_prefix_ci(v, "wss://"))
        return invalid_url(err, who, v,
                           "WebSocket URLs go in --ws (an HTTP endpoint is still needed)");
    if ((has_prefix_ci(v, "http://") && v[7]) || (has_prefix_ci(v, "https://") && v[8]))
        return 0;
    return invalid_url(err, who, v, "expected an http:// or https:// URL");
}

static void drop_rpcs(bp_config *cfg)
{
    for (int i = 0; i < cfg->rpc_count; i++) {
        free(cfg->rpcs[i].url);
        bp_creds_release(&cfg->rpcs[i].creds);
    }
    cfg->rpc_count = 0;
}

/* Appends one endpoint (taking spec's creds, also on failure); the first one a source gives
 * drops those of weaker sources. */
static int add_rpc(loader *ld, bp_rpc_endpoint *spec, const char *who, bp_error *err)
{
    bp_config *cfg = ld->cfg;
    char *url = NULL;
    int rc = bp_creds_expand(spec->url, who, &url, err);
    rc = rc ? rc : check_rpc_url(url, who, err);
    if (rc == 0 && ld->rpcs_layer != ld->layer) {
        drop_rpcs(cfg);
        ld->rpcs_layer = ld->layer;
    }
    if (rc == 0 && cfg->rpc_count == BP_MAX_RPCS)
        rc = bp_error_set(err, BP_EINVAL, "%s: too many RPC endpoints (at most %d)", who,
                          BP_MAX_RPCS);
    if (rc != 0) {
        free(url);
        bp_creds_release(&spec->creds);
        return rc;
    }
    bp_secret_add_url(url);
    bp_rpc_endpoint *ep = &cfg->rpcs[cfg->rpc_count++];
    *ep = *spec;
    ep->url = url;
    return 0;
}

static int rpc_inline(loader *ld, const char *json, const char *who, bp_error *err);

/* --rpc URL, or --rpc '{"url": URL, "max_workers": 5, "priority": 1, "rps": 20}' */
static int set_rpc(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    (void)o;
    if (*v == '{')
        return rpc_inline(ld, v, who, err);
    bp_rpc_endpoint spec = {.url = (char *)v};
    return add_rpc(ld, &spec, who, err);
}

static int set_output(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    bp_config *cfg = ld->cfg;
    (void)o;
    /* The kind (sqlite:, etl-csv:, ...) is checked by the sink registry, which knows them. */
    if (!*v)
        return invalid(err, who, v, "expected an output URL such as sqlite:blockpipe.db");
    if (ld->outputs_layer != ld->layer) {
        for (int i = 0; i < cfg->output_count; i++)
            free(cfg->outputs[i]);
        cfg->output_count = 0;
        ld->outputs_layer = ld->layer;
    }
    snprintf(ld->outputs_who, sizeof(ld->outputs_who), "%s", who);
    if (cfg->output_count == BP_MAX_OUTPUTS)
        return bp_error_set(err, BP_EINVAL, "%s: too many outputs (at most %d)", who,
                            BP_MAX_OUTPUTS);
    cfg->outputs[cfg->output_count] = NULL;
    bp_secret_add_dsn(v); /* libpq, librdkafka and hiredis errors may quote the URL */
    int rc = replace_string(&cfg->outputs[cfg->output_count], v, err);
    if (rc == 0)
        cfg->output_count++;
    return rc;
}

/* --clickhouse-url: kept as an output URL, added to the outputs once all sources are read. */
static int set_ch_url(loader *ld, const opt *o, const char *v, const char *who, bp_error *err)
{
    (void)o;
    bp_secret_add_dsn(v);
    bool tls = has_prefix_ci(v, "https://");
    const char *rest = tls ? v + 8 : has_prefix_ci(v, "http://") ? v + 7 : NULL;
    if (!rest && bp_sink_find(v) != bp_sink_find("clickhouse:"))
        return invalid(err, who, v, "expected clickhouse://[user:pass@]host:port/db or http(s)://");
    size_t cap = strlen(v) + 32;
    char *url = malloc(cap);
    if (!url)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    const char *tls_param = !tls ? "" : strchr(rest, '?') ? "&tls=on" : "?tls=on";
    snprintf(url, cap, rest ? "clickhouse://%s%s" : "%s%s", rest ? rest : v, tls_param);
    bp_secret_add_dsn(url);
    free(ld->cfg->clickhouse_url);
    ld->cfg->clickhouse_url = url;
    ld->ch_url_layer = ld->layer;
    snprintf(ld->ch_url_who, sizeof(ld->ch_url_who), "%s", who);
    return 0;
}

static const char *setting_value(const bp_config *cfg, const char *key)
{
    for (size_t k = 0; k < cfg->sink_setting_count; k++)
        if (strcmp(cfg->sink_settings[k].key, key) == 0)
            return cfg->sink_settings[k].value;
    return NULL;
}

/* The database named by a ClickHouse output URL's path: *len 0 when it has none. */
static const char *ch_path_database(const char *url, size_t *len)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : strchr(url, ':') + 1;
    const char *end = p + strcspn(p, "?#");
    for (const char *q = p; q < end; q++) /* the host follows the credentials, if any */
        if (*q == '@')
            p = q + 1;
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *db = slash ? slash + 1 : end;
    *len = (size_t)(end - db);
    while (*len > 0 && db[*len - 1] == '/')
        (*len)--;
    return db;
}

/* --clickhouse-db and the database in a ClickHouse URL's path given at the same level (both
 * flags, both variables, both in the file) and different: the path used to win silently. At
 * different levels the path still wins, as documented (a CLICKHOUSE_DB in the environment is a
 * default for URLs without one). */
static int check_ch_database(loader *ld, const char *url, int url_layer, const char *url_who,
                             bp_error *err)
{
    const bp_sink_ops *ch = bp_sink_find("clickhouse:");
    const char *db = ld->ch_db_layer == url_layer ? setting_value(ld->cfg, "clickhouse_db") : NULL;
    size_t len;
    if (!ch || !db || bp_sink_find(url) != ch)
        return 0;
    const char *path = ch_path_database(url, &len);
    if (len == 0 || (strlen(db) == len && strncmp(db, path, len) == 0))
        return 0;
    return bp_error_set(err, BP_EINVAL,
                        "%s '%s' and the database '%.*s' in the path of the ClickHouse output of "
                        "%s name two databases: give the database once",
                        ld->ch_db_who, db, (int)len, path, url_who);
}

/* --clickhouse-url and an --output of a ClickHouse URL given at the same level are two names of
 * the ClickHouse output: the same URL is one output; different ones are refused (two ClickHouse
 * outputs are --output twice). At different levels --clickhouse-url adds its output, as
 * documented. */
static int add_clickhouse_output(loader *ld, bp_error *err)
{
    bp_config *cfg = ld->cfg;
    const bp_sink_ops *ch = bp_sink_find("clickhouse:");
    int rc = 0;
    for (int i = 0; rc == 0 && i < cfg->output_count; i++)
        rc = check_ch_database(ld, cfg->outputs[i], ld->outputs_layer, ld->outputs_who, err);
    if (rc != 0 || !cfg->clickhouse_url)
        return rc;
    rc = check_ch_database(ld, cfg->clickhouse_url, ld->ch_url_layer, ld->ch_url_who, err);
    for (int i = 0; rc == 0 && ch && ld->ch_url_layer == ld->outputs_layer && i < cfg->output_count;
         i++) {
        if (strcmp(cfg->outputs[i], cfg->clickhouse_url) == 0)
            return 0;
        if (bp_sink_find(cfg->outputs[i]) == ch)
            rc = bp_error_set(err, BP_EINVAL,
                              "%s and %s both give the ClickHouse output, different ones: give "
                              "it once (two ClickHouse outputs: --output twice)",
                              ld->ch_url_who, ld->outputs_who);
    }
    if (rc != 0)
        return rc;
    if (cfg->output_count == BP_MAX_OUTPUTS)
        return bp_error_set(err, BP_EINVAL, "--clickhouse-url: too many outputs (at most %d)",
                            BP_MAX_OUTPUTS);
    cfg->outputs[cfg->output_count] = NULL;
    rc = replace_string(&cfg->outputs[cfg->output_count], cfg->clickhouse_url, err);
    cfg->output_count += rc == 0;
    return rc;
}

/* ---- config file ---- */

typedef struct file_ctx {
    loader *ld;
    yaml_document_t *doc;
    const char *path;
    const char *kind; /* "config file " for files, "" for an inline --rpc object */
} file_ctx;

static const char *scalar_of(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static yaml_node_t *node_at(file_ctx *fc, int id)
{
    return yaml_document_get_node(fc->doc, id);
}

static int one_value(const char *who, const yaml_node_t *n, const char **out, bp_error *err)
{
    *out = scalar_of(n);
    if (!*out)
        return bp_error_set(err, BP_EINVAL, "%s: expected a single value, not a %s", who,
                            n && n->type == YAML_SEQUENCE_NODE ? "list" : "mapping");
    return 0;
}

static int rpc_item_int(file_ctx *fc, const char *who, const yaml_node_t *n, uint64_t max, int *out,
                        bp_error *err)
{
    const char *v;
    uint64_t u;
    int rc = one_value(who, n, &v, err);
    if (rc != 0)
        return rc;
    (void)fc;
    if (!parse_u64(v, &u) || u > max)
        return invalid(err, who, v, "expected an integer from 0 to %llu", (unsigned long long)max);
    *out = (int)u;
    return 0;
}

static int rpc_item_rps(const char *who, const yaml_node_t *n, double *out, bp_error *err)
{
    const char *v;
    int rc = one_value(who, n, &v, err);
    if (rc == 0 && (!parse_decimal(v, out) || *out > 1e6))
        rc = invalid(err, who, v, "expected requests per second from 0 to 1000000 (0: no limit)");
    return rc;
}

/* headers: {Name: value} (or ["Name: value", ...], or one "Name: value" per line). */
static int item_headers(file_ctx *fc, const char *who, yaml_node_t *n, bp_endpoint_creds *c,
                        bp_error *err)
{
    int rc = 0;
    if (n->type == YAML_SCALAR_NODE)
        return bp_creds_add_header_lines(c, scalar_of(n), who, err);
    if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = n->data.sequence.items.start;
             rc == 0 && it < n->data.sequence.items.top; it++) {
            const char *line;
            rc = one_value(who, node_at(fc, *it), &line, err);
            rc = rc ? rc : bp_creds_add_header_lines(c, line, who, err);
        }
        return rc;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
         rc == 0 && p < n->data.mapping.pairs.top; p++) {
        const char *k = scalar_of(node_at(fc, p->key)), *v;
        rc = one_value(who, node_at(fc, p->value), &v, err);
        if (rc == 0 && !k)
            rc = bp_error_set(err, BP_EINVAL, "%s: a header name must be text", who);
        rc = rc ? rc : bp_creds_add_header(c, k, strlen(k), v, who, err);
    }
    return rc;
}

/* headers, ca_file, cert_file, key_file of an endpoint item; *handled says it was one. */
static int creds_field(file_ctx *fc, const char *who, const char *k, yaml_node_t *v,
                       bp_endpoint_creds *c, bool *handled, bp_error *err)
{
    char **file = strcmp(k, "ca_file") == 0     ? &c->ca_file
                  : strcmp(k, "cert_file") == 0 ? &c->cert_file
                  : strcmp(k, "key_file") == 0  ? &c->key_file
                                                : NULL;
    const char *path;
    *handled = file || strcmp(k, "headers") == 0;
    if (!*handled)
        return 0;
    if (!file)
        return item_headers(fc, who, v, c, err);
    int rc = one_value(who, v, &path, err);
    return rc ? rc : bp_creds_set_file(file, path, who, err);
}

/* One member of a mapping item of `rpcs` (or of `ws` when spec is NULL). */
static int endpoint_field(file_ctx *fc, const char *item, yaml_node_pair_t *p,
                          bp_rpc_endpoint *spec, bp_endpoint_creds *c, const char **url,
                          bp_error *err)
{
    const char *k = scalar_of(node_at(fc, p->key));
    yaml_node_t *v = node_at(fc, p->value);
    char who[WHO_MAX];
    bool handled = false;
    snprintf(who, sizeof(who), "%s.%s (%s%s)", item, k ? k : "?", fc->kind, fc->path);
    int rc = k ? creds_field(fc, who, k, v, c, &handled, err) : 0;
    if (handled)
        return rc;
    if (k && strcmp(k, "url") == 0)
        return one_value(who, v, url, err);
    if (spec && k && strcmp(k, "max_workers") == 0)
        return rpc_item_int(fc, who, v, 1024, &spec->max_workers, err);
    if (spec && k && strcmp(k, "priority") == 0)
        return rpc_item_int(fc, who, v, 1000, &spec->priority, err);
    if (spec && k && strcmp(k, "rps") == 0)
        return rpc_item_rps(who, v, &spec->rps, err);
    return bp_error_set(err, BP_EINVAL,
                        "unknown key '%s.%s' in %s%s (expected url, %sheaders, "
                        "ca_file, cert_file, key_file)",
                        item, k ? k : "?", fc->kind, fc->path,
                        spec ? "max_workers, priority, rps, " : "");
}

static int rpc_item(file_ctx *fc, int idx, yaml_node_t *n, bp_error *err)
{
    const char *url = scalar_of(n);
    bp_rpc_endpoint spec = {0};
    int rc = 0;
    char who[WHO_MAX], item[32];
    snprintf(item, sizeof(item), "rpcs[%d]", idx);
    snprintf(who, sizeof(who), "rpcs[%d] (%s%s)", idx, fc->kind, fc->path);
    if (n->type == YAML_SEQUENCE_NODE)
        return bp_error_set(err, BP_EINVAL, "%s: expected a URL or {url: ...}, not a list", who);
    if (n->type == YAML_MAPPING_NODE)
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
             rc == 0 && p < n->data.mapping.pairs.top; p++)
            rc = endpoint_field(fc, item, p, &spec, &spec.creds, &url, err);
    if (rc == 0 && !url)
        rc = bp_error_set(err, BP_EINVAL, "%s: missing url", who);
    if (rc != 0) {
        bp_creds_release(&spec.creds);
        return rc;
    }
    snprintf(who, sizeof(who), "rpcs[%d].url (%s%s)", idx, fc->kind, fc->path);
    spec.url = (char *)url;
    return add_rpc(fc->ld, &spec, who, err);
}

static void move_file(char **to, char **from)
{
    if (*from) {
        free(*to);
        *to = *from;
        *from = NULL;
    }
}

/* ws: {url, headers, ca_file, cert_file, key_file}: its headers replace those of weaker
 * sources, its files those set before. */
static int ws_item(file_ctx *fc, int idx, yaml_node_t *n, bp_error *err)
{
    bp_endpoint_creds c = {0};
    const char *url = NULL;
    int rc = 0;
    char who[WHO_MAX];
    (void)idx;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
         rc == 0 && p < n->data.mapping.pairs.top; p++)
        rc = endpoint_field(fc, "ws", p, NULL, &c, &url, err);
    snprintf(who, sizeof(who), "ws.url (%s%s)", fc->kind, fc->path);
    if (rc == 0 && !url)
        rc = bp_error_set(err, BP_EINVAL, "ws (%s%s): missing url", fc->kind, fc->path);
    rc = rc ? rc : set_ws_url(fc->ld, url, who, err);
    bp_endpoint_creds *ws = &fc->ld->cfg->ws_creds;
    if (rc == 0 && c.header_count) {
        bp_creds_clear_headers(ws);
        memcpy(ws->headers, c.headers, sizeof(c.headers));
        ws->header_count = c.header_count;
        c.header_count = 0;
        fc->ld->ws_headers_layer = fc->ld->layer;
    }
    if (rc == 0) {
        move_file(&ws->ca_file, &c.ca_file);
        move_file(&ws->cert_file, &c.cert_file);
        move_file(&ws->key_file, &c.key_file);
    }
    bp_creds_release(&c);
    return rc;
}

typedef int (*item_fn)(file_ctx *fc, int idx, yaml_node_t *n, bp_error *err);

/* An inline endpoint object is parsed like one item of a config file's rpcs list. The text
 * is never quoted in a message: it may hold a key. */
static int inline_item(loader *ld, const char *json, const char *who, item_fn item, bp_error *err)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    int rc = 0;
    if (!yaml_parser_initialize(&parser))
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)json, strlen(json));
    if (!yaml_parser_load(&parser, &doc)) {
        rc = bp_error_set(err, BP_EINVAL,
                          "%s: the object is not valid JSON (line %zu column %zu: %s): expected a "
                          "URL or a JSON object such as {\"url\": \"http://...\", "
                          "\"max_workers\": 5}",
                          who, parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                          parser.problem ? parser.problem : "invalid");
        yaml_parser_delete(&parser);
        return rc;
    }
    file_ctx fc = {.ld = ld, .doc = &doc, .path = who, .kind = ""};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_MAPPING_NODE)
        rc = bp_error_set(err, BP_EINVAL, "%s: expected a URL or a JSON object", who);
    else
        rc = item(&fc, 0, root, err);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

static int rpc_inline(loader *ld, const char *json, const char *who, bp_error *err)
{
    return inline_item(ld, json, who, rpc_item, err);
}

static int ws_inline(loader *ld, const char *json, const char *who, bp_error *err)
{
    return inline_item(ld, json, who, ws_item, err);
}

/* fetch: [blocks, logs] is the same as fetch: blocks,logs */
static int fetch_list(file_ctx *fc, const opt *o, yaml_node_t *n, const char *who, bp_error *err)
{
    char joined[256] = "";
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const char *word;
        int rc = one_value(who, node_at(fc, *it), &word, err);
        if (rc != 0)
            return rc;
        if (strlen(joined) + strlen(word) + 2 > sizeof(joined))
            return invalid(err, who, word, "expected blocks, transactions, receipts, logs");
        if (joined[0])
            strcat(joined, ",");
        strcat(joined, word);
    }
    return o->set(fc->ld, o, joined, who, err);
}

static int file_list(file_ctx *fc, const opt *o, yaml_node_t *n, const char *who, bp_error *err)
{
    int rc = 0, idx = 0;
    if (o->set == set_fetch)
        return fetch_list(fc, o, n, who, err);
    if (o->set == set_header)
        return item_headers(fc, who, n, header_list(fc->ld, o), err);
    if (o->set != set_rpc && o->set != set_output && o->set != set_alert && o->set != set_webhook)
        return bp_error_set(err, BP_EINVAL, "%s: expected a single value, not a list", who);
    for (yaml_node_item_t *it = n->data.sequence.items.start;
         rc == 0 && it < n->data.sequence.items.top; it++, idx++) {
        yaml_node_t *item = node_at(fc, *it);
        if (o->set == set_rpc) {
            rc = rpc_item(fc, idx, item, err);
        } else {
            const char *v;
            rc = one_value(who, item, &v, err);
            rc = rc ? rc : o->set(fc->ld, o, v, who, err);
        }
    }
    return rc;
}

/* Edit distance of two short keys, for "did you mean". */
static size_t distance(const char *a, const char *b)
{
    size_t lb = strlen(b), row[64];
    if (lb >= 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; *a; a++, i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (*a != b[j - 1]);
            best = up + 1 < best ? up + 1 : best;
            best = row[j - 1] + 1 < best ? row[j - 1] + 1 : best;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

static int unknown_key(file_ctx *fc, const char *k, bp_error *err)
{
    static const char *const extra[] = {"rpcs", "outputs", "chains"};
    size_t n;
    const opt *t = all_opts(&n);
    const char *best = NULL;
    size_t best_d = 3; /* suggest only close keys */
    for (size_t i = 0; i < n + 3; i++) {
        const char *cand = i < n ? t[i].key : extra[i - n];
        if (cand && (i >= n || opt_for(&t[i], fc->ld->cmd)) && distance(k, cand) < best_d) {
            best = cand;
            best_d = distance(k, cand);
        }
    }
    return bp_error_set(err, BP_EINVAL, "unknown key '%s' in config file %s (%s%s%s)", k, fc->path,
                        best ? "did you mean '" : "see blockpipe ",
                        best ? best : cmd_name(fc->ld->cmd), best ? "'?" : " --help");
}

/* Refuses a key given twice: one of the two would be silently ignored. */
static int check_duplicate(file_ctx *fc, yaml_node_pair_t *first, yaml_node_pair_t *p,
                           bp_error *err)
{
    const char *k = scalar_of(node_at(fc, p->key));
    for (yaml_node_pair_t *q = first; k && q < p; q++) {
        const char *kq = scalar_of(node_at(fc, q->key));
        if (kq && strcmp(k, kq) == 0)
            return bp_error_set(err, BP_EINVAL, "duplicate key '%s' in config file %s", k,
                                fc->path);
    }
    return 0;
}

/* Applies the value of key k (option o) from the file. */
static int file_value(file_ctx *fc, const opt *o, const char *k, yaml_node_t *v, bp_error *err)
{
    char who[WHO_MAX];
    snprintf(who, sizeof(who), "%s (config file %s)", k, fc->path);
    if (v->type == YAML_SEQUENCE_NODE)
        return file_list(fc, o, v, who, err);
    if (v->type == YAML_MAPPING_NODE && o->set == set_rpc)
        return rpc_item(fc, 0, v, err);
    if (v->type == YAML_MAPPING_NODE && o->set == set_ws)
        return ws_item(fc, 0, v, err);
    if (v->type == YAML_MAPPING_NODE && o->set == set_header)
        return item_headers(fc, who, v, header_list(fc->ld, o), err);
    const char *s;
    int rc = one_value(who, v, &s, err);
    return rc ? rc : o->set(fc->ld, o, s, who, err);
}

/* ---- chains: a list of chains, each with its own keys ---- */

/* What a chains: item may set: the chain's own. The outputs, the memory, the API, the logs
 * and the state are the process's (top level only). */
static const char *const g_chain_keys[] = {"rpc",
                                           "rpc_headers",
                                           "ca_file",
                                           "cert_file",
                                           "key_file",
                                           "ws",
                                           "ws_headers",
                                           "realtime",
                                           "start_block",
                                           "confirmations",
                                           "reorg_window",
                                           "workers",
                                           "fetch",
                                           "batch_size",
                                           "poll_interval",
                                           "strict_node",
                                           "rpc_timeout",
                                           "max_retries",
                                           "failed_retry_interval",
                                           "chain_id",
                                           "chain_type",
                                           "stats_interval",
                                           "ws_reconnect_interval",
                                           "ws_max_reconnect_attempts",
                                           "ws_stale_after",
                                           "preset",
                                           "native_token",
                                           "price_coin_id",
                                           NULL};

static bool chain_key(const char *key)
{
    for (const char *const *k = g_chain_keys; *k; k++)
        if (strcmp(*k, key) == 0)
            return true;
    return false;
}

static yaml_node_t *map_get(file_ctx *fc, yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const char *k = scalar_of(node_at(fc, p->key));
        if (k && strcmp(k, key) == 0)
            return node_at(fc, p->value);
    }
    return NULL;
}

/* The name of chains[idx]: its chain column, its checkpoints' key, its log lines' prefix. */
static int chain_name(file_ctx *fc, yaml_node_t *item, int idx, const char **out, bp_error *err)
{
    const char *name = NULL;
    if (!item || item->type != YAML_MAPPING_NODE)
        return bp_error_set(err, BP_EINVAL,
                            "config file %s: chains[%d]: expected a mapping {name: ..., rpcs: "
                            "[...], ...}",
                            fc->path, idx);
    yaml_node_t *n = map_get(fc, item, "name");
    name = scalar_of(n);
    if (!n)
        return bp_error_set(err, BP_EINVAL,
                            "config file %s: chains[%d]: missing name (every chain needs one: "
                            "its chain column and the key of its checkpoints)",
                            fc->path, idx);
    size_t len = name ? strlen(name) : 0;
    if (!name || len == 0 || len > 63 ||
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP"
                     "QRSTUVWXYZ0123456789_.-") != len)
        return bp_error_set(err, BP_EINVAL,
                            "config file %s: chains[%d].name: '%s' is not valid: expected 1 to 63 "
                            "letters, digits, '_', '.' or '-'",
                            fc->path, idx, name ? name : "(a list or mapping)");
    *out = name;
    return 0;
}

/* The top-level pass: the names of the chains, checked (the items' keys are read for each
 * chain by bp_config_load_chain). */
static int chains_list(file_ctx *fc, yaml_node_t *v, bp_error *err)
{
    bp_config *cfg = fc->ld->cfg;
    if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.top == v->data.sequence.items.start)
        return bp_error_set(err, BP_EINVAL,
                            "chains (config file %s): expected a non-empty list of chains",
                            fc->path);
    for (int i = 0; i < cfg->chain_count; i++)
        free(cfg->chain_names[i]);
    cfg->chain_count = 0;
    int idx = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++, idx++) {
        const char *name;
        int rc = chain_name(fc, node_at(fc, *it), idx, &name, err);
        if (rc != 0)
            return rc;
        for (int j = 0; j < cfg->chain_count; j++)
            if (strcmp(cfg->chain_names[j], name) == 0)
                return bp_error_set(err, BP_EINVAL,
                                    "config file %s: chains[%d].name: '%s' is also chains[%d]'s: "
                                    "every chain needs a name of its own",
                                    fc->path, idx, name, j);
        if (cfg->chain_count == BP_MAX_CHAINS)
            return bp_error_set(err, BP_EINVAL, "config file %s: more than %d chains", fc->path,
                                BP_MAX_CHAINS);
        if (!(cfg->chain_names[cfg->chain_count] = strdup(name)))
            return bp_error_set(err, BP_ENOMEM, "out of memory");
        cfg->chain_count++;
    }
    return 0;
}

/* One key of a chains: item (fc->path names the chain). */
static int chain_pair(file_ctx *fc, yaml_node_pair_t *p, bp_error *err)
{
    const char *k = scalar_of(node_at(fc, p->key));
    yaml_node_t *v = node_at(fc, p->value);
    const opt *o = k ? find_key(strcmp(k, "name") == 0 ? "chain" : k, fc->ld->cmd) : NULL;
    if (!o)
        return unknown_key(fc, k ? k : "?", err);
    if (strcmp(k, "name") != 0 && !chain_key(o->key))
        return bp_error_set(err, BP_EINVAL,
                            "key '%s' in config file %s: it is shared by every chain, not a "
                            "chain's own: put it at the top level of the file",
                            k, fc->path);
    return file_value(fc, o, k, v, err);
}

/* The chain pass: the keys of chains[ld->chain_index]. */
static int chain_apply(file_ctx *fc, yaml_node_t *root, bp_error *err)
{
    int idx = fc->ld->chain_index, rc = 0;
    yaml_node_t *list =
        root && root->type == YAML_MAPPING_NODE ? map_get(fc, root, "chains") : NULL;
    yaml_node_t *item = NULL;
    if (list && list->type == YAML_SEQUENCE_NODE &&
        idx < (int)(list->data.sequence.items.top - list->data.sequence.items.start))
        item = node_at(fc, list->data.sequence.items.start[idx]);
    if (!item) /* the file changed since it was read */
        return bp_error_set(err, BP_EINVAL, "config file %s: no chains[%d]", fc->path, idx);
    const char *name;
    if ((rc = chain_name(fc, item, idx, &name, err)) != 0)
        return rc;
    char path[WHO_MAX];
    snprintf(path, sizeof(path), "%s, chains[%d] '%s'", fc->path, idx, name);
    file_ctx cfc = *fc;
    cfc.path = path;
    for (yaml_node_pair_t *p = item->data.mapping.pairs.start;
         rc == 0 && p < item->data.mapping.pairs.top; p++) {
        rc = check_duplicate(&cfc, item->data.mapping.pairs.start, p, err);
        rc = rc ? rc : chain_pair(&cfc, p, err);
    }
    return rc;
}

static int file_pair(file_ctx *fc, yaml_node_pair_t *p, bp_error *err)
{
    const char *k = scalar_of(node_at(fc, p->key));
    yaml_node_t *v = node_at(fc, p->value);
    if (k && strcmp(k, "chains") == 0)
        return chains_list(fc, v, err);
    const opt *o = k ? find_key(k, fc->ld->cmd) : NULL;
    if (!o)
        return unknown_key(fc, k ? k : "?", err);
    return file_value(fc, o, k, v, err);
}

static int file_apply(file_ctx *fc, bp_error *err)
{
    yaml_node_t *root = yaml_document_get_root_node(fc->doc);
    int rc = 0;
    if (fc->ld->chain_pass)
        return chain_apply(fc, root, err);
    if (!root || (root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0))
        return 0; /* an empty file sets nothing */
    if (root->type != YAML_MAPPING_NODE)
        return bp_error_set(err, BP_EINVAL, "config file %s: expected a mapping of keys to values",
                            fc->path);
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
         rc == 0 && p < root->data.mapping.pairs.top; p++) {
        rc = check_duplicate(fc, root->data.mapping.pairs.start, p, err);
        rc = rc ? rc : file_pair(fc, p, err);
    }
    return rc;
}

#define CONFIG_FILE_MAX (16u << 20)

/* Offset of the first byte of s[0..n) that does not continue valid UTF-8, or n. */
static size_t utf8_bad_at(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xE0) == 0xC0 ? 2
                     : (c & 0xF0) == 0xE0 ? 3
                     : (c & 0xF8) == 0xF0 ? 4
                                          : 0;
        if (len == 0 || (len == 2 && c < 0xC2) || (len == 4 && c > 0xF4) || i + len > n)
            return i;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
        uint32_t cp = len == 2   ? (c & 0x1Fu) << 6 | (s[i + 1] & 0x3Fu)
                      : len == 3 ? (c & 0x0Fu) << 12 | (s[i + 1] & 0x3Fu) << 6 | (s[i + 2] & 0x3Fu)
                      : len == 4 ? (c & 0x07u) << 18 | (s[i + 1] & 0x3Fu) << 12 |
                                       (s[i + 2] & 0x3Fu) << 6 | (s[i + 3] & 0x3Fu)
                                 : c;
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return i;
        i += len;
    }
    return n;
}

/* After a UTF-16 byte order mark (as PowerShell's > writes): whole code units, no U+0000, every
 * surrogate paired. */
static int check_utf16(const char *path, const unsigned char *s, size_t n, bp_error *err)
{
    bool le = s[0] == 0xFF;
    if (n % 2)
        return bp_error_set(err, BP_EINVAL,
                            "config file %s: UTF-16 (its first bytes say) of an odd length, %zu "
                            "bytes: not a text file",
                            path, n);
    for (size_t i = 2; i < n; i += 2) {
        unsigned u = le ? s[i] | s[i + 1] << 8 : s[i] << 8 | s[i + 1];
        unsigned next = i + 3 < n ? (le ? s[i + 2] | s[i + 3] << 8 : s[i + 2] << 8 | s[i + 3]) : 0;
        if (u == 0)
            return bp_error_set(err, BP_EINVAL,
                                "config file %s: a NUL character at offset %zu (UTF-16): not a "
                                "text file",
                                path, i);
        if (u >= 0xDC00 && u <= 0xDFFF)
            return bp_error_set(err, BP_EINVAL,
                                "config file %s: a lone UTF-16 surrogate at offset %zu: not a "
                                "text file",
                                path, i);
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (next < 0xDC00 || next > 0xDFFF)
                return bp_error_set(err, BP_EINVAL,
                                    "config file %s: a lone UTF-16 surrogate at offset %zu: not "
                                    "a text file",
                                    path, i);
            i += 2;
        }
    }
    return 0;
}

/* A file that is not text (a binary, a compressed copy, the wrong path): libyaml stops at a NUL
 * as at the end of its input, so such a file was read as empty and the run went on with the
 * defaults. UTF-16 with its byte order mark is YAML libyaml reads; anything else must be
 * UTF-8. */
static int check_text(const char *path, const unsigned char *s, size_t n, bp_error *err)
{
    if (n >= 2 && ((s[0] == 0xFF && s[1] == 0xFE) || (s[0] == 0xFE && s[1] == 0xFF)))
        return check_utf16(path, s, n, err);
    const unsigned char *nul = n ? memchr(s, 0, n) : NULL;
    if (nul)
        return bp_error_set(err, BP_EINVAL,
                            "config file %s: a NUL byte at offset %zu: not a text file (expected "
                            "YAML or JSON)",
                            path, (size_t)(nul - s));
    size_t bad = utf8_bad_at(s, n);
    if (bad < n)
        return bp_error_set(err, BP_EINVAL,
                            "config file %s: byte 0x%02x at offset %zu is not UTF-8: not a text "
                            "file (expected YAML or JSON in UTF-8)",
                            path, s[bad], bad);
    return 0;
}

/* The whole file, NUL-terminated, at most CONFIG_FILE_MAX bytes. */
static int read_config_text(const char *path, const char *who, unsigned char **out, size_t *n,
                            bp_error *err)
{
    bp_buf b;
    unsigned char chunk[8192];
    size_t got;
    int rc = 0;
    bp_buf_init(&b, CONFIG_FILE_MAX);
    FILE *f = fopen(path, "rb");
    if (!f)
        return bp_error_set(err, BP_EINVAL, "%s: cannot open config file '%s': %s", who, path,
                            strerror(errno));
    while (rc == 0 && (got = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (b.len + got > CONFIG_FILE_MAX)
            rc = bp_error_set(err, BP_EINVAL, "config file %s: larger than %u MiB", path,
                              CONFIG_FILE_MAX >> 20);
        else if (bp_buf_append(&b, chunk, got) != 0)
            rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    if (rc == 0 && ferror(f))
        rc = bp_error_set(err, BP_EINVAL, "%s: cannot read config file '%s': %s", who, path,
                          strerror(errno));
    fclose(f);
    rc = rc ? rc : check_text(path, (const unsigned char *)b.data, b.len, err);
    if (rc != 0) {
        bp_buf_release(&b);
        return rc;
    }
    *n = b.len;
    *out = (unsigned char *)(b.data ? b.data : strdup(""));
    return *out ? 0 : bp_error_set(err, BP_ENOMEM, "out of memory");
}

static int load_file(loader *ld, const char *path, const char *who, bp_error *err)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    bool parser_ok = false, doc_ok = false;
    unsigned char *text = NULL;
    size_t len = 0;
    int rc = read_config_text(path, who, &text, &len, err);
    if (rc != 0)
        goto out;
    parser_ok = yaml_parser_initialize(&parser);
    if (!parser_ok) {
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
        goto out;
    }
    yaml_parser_set_input_string(&parser, text, len);
    doc_ok = yaml_parser_load(&parser, &doc);
    if (!doc_ok) {
        rc = bp_error_set(err, BP_EINVAL, "config file %s: line %zu column %zu: %s", path,
                          parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                          parser.problem ? parser.problem : "invalid YAML");
        goto out;
    }
    ld->layer = ld->chain_pass ? LAYER_CHAIN : LAYER_FILE;
    rc = file_apply(&(file_ctx){.ld = ld, .doc = &doc, .path = path, .kind = "config file "}, err);
out:
    if (doc_ok)
        yaml_document_delete(&doc);
    if (parser_ok)
        yaml_parser_delete(&parser);
    free(text);
    return rc;
}

/* ---- environment ---- */

/* Two names of one variable (RPC_URL and ANKR_RPC_URL, the name of the collector users come
 * from) both set: the first used to win silently, so a stale ANKR_ value in a compose file was
 * ignored without a word, or a new one was. Set to different values they are refused, naming
 * both (not the values: they may hold a key); set to the same text they are one setting. */
static int check_env_names(const opt *o, bp_error *err)
{
    const char *names[] = {o->env, o->env2, o->env3};
    const char *first = NULL, *first_v = NULL;
    if (o->env_ranked)
        return 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *v = names[i] ? getenv(names[i]) : NULL;
        if (!v || !*v)
            continue;
        if (!first) {
            first = names[i];
            first_v = v;
        } else if (strcmp(v, first_v) != 0) {
            return bp_error_set(err, BP_EINVAL,
                                "%s and %s (environment) are two names of one setting (--%s) "
                                "and are set to different values: set one of them",
                                first, names[i], o->flag);
        }
    }
    return 0;
}

static int apply_env(loader *ld, bp_error *err)
{
    size_t n;
    const opt *t = all_opts(&n);
    ld->layer = LAYER_ENV;
    for (size_t i = 0; i < n; i++) {
        const opt *o = &t[i];
        const char *name = o->env, *v = o->env ? getenv(o->env) : NULL;
        char who[WHO_MAX];
        if ((!v || !*v) && o->env2) {
            name = o->env2;
            v = getenv(o->env2);
        }
        if ((!v || !*v) && o->env3) {
            name = o->env3;
            v = getenv(o->env3);
        }
        /* An empty variable counts as unset, as most shells and compose files mean it. */
        if (!o->set || !opt_for(o, ld->cmd) || !v || !*v)
            continue;
        int rc = check_env_names(o, err);
        if (rc != 0)
            return rc;
        snprintf(who, sizeof(who), "%s (environment)", name);
        rc = o->set(ld, o, v, who, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- flags ---- */

typedef struct flag_value {
    const opt *o;
    const char *value;
    const char *name; /* as given ("--reorg-depth" for --confirmations), for messages */
    int name_len;
} flag_value;

static int unknown_flag(enum bp_command cmd, const char *arg, size_t len, bp_error *err)
{
    const char *what = arg[0] == '-' ? "unknown option" : "unexpected argument";
    return bp_error_set(err, BP_EINVAL, "%s '%.*s' for '%s' (see blockpipe %s --help)", what,
                        (int)len, arg, cmd_name(cmd), cmd_name(cmd));
}

/* Reads argv[*i] (and its value) into fv, advancing *i past what it used. */
static int read_flag(enum bp_command cmd, int argc, char **argv, int *i, flag_value *fv,
                     bp_error *err)
{
    const char *arg = argv[*i];
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    if (arg[0] != '-' && cmd == BP_CMD_MIGRATE) { /* blockpipe migrate URL */
        fv->o = find_flag("output", 6, cmd);
        fv->value = arg;
        fv->name = "URL";
        fv->name_len = 3;
        return 0;
    }
    if (arg[0] != '-')
        return unknown_flag(cmd, arg, strlen(arg), err);
    if (strncmp(arg, "--", 2) != 0 || len == 2)
        return unknown_flag(cmd, arg, len, err);
    fv->o = find_flag(arg + 2, len - 2, cmd);
    fv->name = arg;
    fv->name_len = (int)len;
    if (!fv->o)
        return unknown_flag(cmd, arg, len, err);
    if (eq) {
        fv->value = eq + 1;
    } else if (!fv->o->arg) { /* a switch: no value follows */
        fv->value = "on";
    } else if (*i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0) {
        fv->value = argv[++*i];
    } else {
        return bp_error_set(err, BP_EINVAL, "--%s: missing value (expected --%s %s)", fv->o->flag,
                            fv->o->flag, fv->o->arg);
    }
    return 0;
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

/* --reorg-depth (the collector's name) and --confirmations given together with different
 * values: the last used to win silently. The same value (as written) under both names passes;
 * one name given twice still takes the last, as a flag repeated after a script's defaults does. */
static int check_flag_names(const flag_value *fv, int i, bp_error *err)
{
    for (int j = 0; fv[i].o->alias && j < i; j++)
        if (fv[j].o == fv[i].o &&
            (fv[j].name_len != fv[i].name_len ||
             strncmp(fv[j].name, fv[i].name, (size_t)fv[i].name_len) != 0) &&
            strcmp(fv[j].value, fv[i].value) != 0)
            return bp_error_set(err, BP_EINVAL,
                                "%.*s and %.*s are two names of one setting and are given "
                                "different values: give one of them",
                                fv[j].name_len, fv[j].name, fv[i].name_len, fv[i].name);
    return 0;
}

static int apply_flags(loader *ld, const flag_value *fv, int n, bp_error *err)
{
    ld->layer = LAYER_FLAG;
    for (int i = 0; i < n; i++) {
        char who[WHO_MAX];
        if (!fv[i].o->set)
            continue;
        if (check_flag_names(fv, i, err) != 0)
            return err->code;
        snprintf(who, sizeof(who), "%.*s", fv[i].name_len, fv[i].name);
        int rc = fv[i].o->set(ld, fv[i].o, fv[i].value, who, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- load ---- */

static void set_defaults(bp_config *cfg, enum bp_command cmd)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->command = cmd;
    cfg->start_latest = cmd == BP_CMD_RUN;
    cfg->reorg_window = 128;
    cfg->workers = 8;
    cfg->batch_size = 100;
    cfg->max_memory = 0; /* not given: BP_PIPELINE_DEFAULT_MEMORY per chain */
    cfg->poll_interval = 1.0;
    cfg->stats_interval = 10;
    cfg->fetch = BP_FETCH_ALL;
    cfg->max_retries = 5;
    cfg->failed_retry_interval = BP_PIPELINE_FAILED_RETRY;
    cfg->rpc_timeout = 30;
    cfg->log_level = BP_LOG_INFO;
    cfg->realtime = true;
    cfg->ws_reconnect_interval = 5;
    cfg->ws_max_reconnect_attempts = 10;
    cfg->api_rate = 100;
    cfg->api_threads = 2;
    cfg->ready_lag = 10;
    cfg->api_max_body = 1u << 20;
    cfg->api_request_timeout = 10;
    cfg->api_max_connections = 4096;
    cfg->api_push_clients = 4096;
    cfg->api_push_ring = 4096;
    cfg->api_push_queue = 1u << 20;
    cfg->api_push_memory = 3u << 20;
    cfg->api_push_stall = 30;
    cfg->price_interval = 60;
    cfg->price_max_age = 7200;
    cfg->ml = false;
    cfg->chain_index = -1;
    cfg->workers_total = 64;
    cfg->lock_wait = -1;
    cfg->shard_k = cfg->shard_n = 1;
}

static int load_config_file(loader *ld, const flag_value *fv, int n, bp_error *err)
{
    const char *path = getenv("BLOCKPIPE_CONFIG"), *who = "BLOCKPIPE_CONFIG (environment)";
    for (int i = 0; i < n; i++)
        if (fv[i].o->set == NULL) {
            path = fv[i].value;
            who = "--config";
        }
    if (!path || !*path)
        return 0;
    int rc = replace_string(&ld->cfg->config_file, path, err);
    return rc ? rc : load_file(ld, path, who, err);
}

static int check_required(const bp_config *cfg, bp_error *err)
{
    if (cfg->command == BP_CMD_MIGRATE)
        return cfg->output_count ? 0
                                 : bp_error_set(err, BP_EINVAL,
                                                "migrate needs the output to migrate: an "
                                                "argument, --output URL or DATABASE_URL");
    if (cfg->command == BP_CMD_SERVE)
        return 0;
    if (cfg->rpc_count == 0 && cfg->chain_index >= 0)
        return bp_error_set(err, BP_EINVAL,
                            "config file %s, chains[%d] '%s': missing rpc or rpcs (the chain's "
                            "JSON-RPC endpoints)",
                            cfg->config_file, cfg->chain_index, cfg->chain_names[cfg->chain_index]);
    if (cfg->shard_n > 1 && cfg->chain_count == 0)
        return bp_error_set(err, BP_EINVAL,
                            "--shard %d/%d shares the chains of a config file's chains: list "
                            "between processes; there is no such list",
                            cfg->shard_k, cfg->shard_n);
    if (cfg->rpc_count == 0 && cfg->chain_count == 0)
        return bp_error_set(err, BP_EINVAL,
                            "missing --rpc URL (or RPC_URL, or rpc/rpcs in the config file): "
                            "the JSON-RPC HTTP endpoint, e.g. --rpc http://127.0.0.1:8545");
    if (cfg->command != BP_CMD_BACKFILL && cfg->command != BP_CMD_VERIFY)
        return 0;
    if (!cfg->from_set || !cfg->to_set)
        return bp_error_set(err, BP_EINVAL,
                            "%s needs --from and --to (first and last block, inclusive); "
                            "missing %s",
                            cmd_name(cfg->command), cfg->from_set ? "--to" : "--from");
    if (cfg->command == BP_CMD_VERIFY && cfg->output_count != 1)
        return bp_error_set(err, BP_EINVAL,
                            "verify compares one output at a time: %d given (--output)",
                            cfg->output_count);
    if (cfg->from_block > cfg->to_block)
        return bp_error_set(err, BP_EINVAL, "--from %llu is after --to %llu: expected from <= to",
                            (unsigned long long)cfg->from_block, (unsigned long long)cfg->to_block);
    return 0;
}

static int add_default_output(loader *ld, bp_error *err)
{
    if (ld->cfg->output_count > 0 || ld->cmd == BP_CMD_MIGRATE)
        return 0;
    ld->layer = 0;
    return set_output(ld, NULL, "sqlite:blockpipe.db", "default", err);
}

/* bp_config_load, then with index >= 0 the keys of chains[index]. */
static int load(bp_config *cfg, enum bp_command cmd, int argc, char **argv, int index,
                bp_error *err)
{
    loader ld = {.cfg = cfg, .cmd = cmd, .chain_index = index};
    flag_value *fv = NULL;
    int n = 0, rc = 0;
    set_defaults(cfg, cmd);
    if (wants_help(argc, argv)) {
        cfg->help = true;
        goto out;
    }
    fv = calloc(argc > 0 ? (size_t)argc : 1, sizeof(*fv));
    if (!fv) {
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 1; rc == 0 && i < argc; i++)
        rc = read_flag(cmd, argc, argv, &i, &fv[n++], err);
    rc = rc ? rc : load_config_file(&ld, fv, n, err);
    rc = rc ? rc : apply_env(&ld, err);
    rc = rc ? rc : apply_flags(&ld, fv, n, err);
    if (rc == 0 && index >= 0) {
        if (index >= cfg->chain_count)
            rc = bp_error_set(err, BP_EINVAL, "no chains[%d] in the config file", index);
        cfg->chain_index = index;
        ld.chain_pass = true;
        rc = rc ? rc : chain_coin_begin(&ld, err);
        rc = rc ? rc : load_file(&ld, cfg->config_file, "--config", err);
    }
    rc = rc ? rc : add_clickhouse_output(&ld, err);
    rc = rc ? rc : add_default_output(&ld, err);
    rc = rc ? rc : apply_preset(cfg, err);
    chain_coin_end(&ld);
    rc = rc ? rc : check_required(cfg, err);
out:
    free(fv);
    return rc;
}

/* One key of the library's pairs: a config file key, or from / to (flags only on the command
 * line: backfill's range). */
static const opt *pair_opt(const char *key, enum bp_command cmd)
{
    if (strcmp(key, "from") == 0 || strcmp(key, "to") == 0)
        return find_flag(key, strlen(key), cmd);
    return find_key(key, cmd);
}

static int apply_pairs(loader *ld, const char *const *keys, const char *const *values, size_t n,
                       bp_error *err)
{
    ld->layer = LAYER_FLAG;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(keys[i], "config") == 0)
            continue;
        const opt *o = pair_opt(keys[i], ld->cmd);
        if (!o)
            return bp_error_set(err, BP_EINVAL,
                                "unknown key '%s' (the keys are the config file's: see "
                                "docs/CLI.md)",
                                keys[i]);
        char who[WHO_MAX];
        snprintf(who, sizeof(who), "%s", keys[i]);
        int rc = o->set(ld, o, values[i] ? values[i] : "", who, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* With index >= 0, the keys of chains[index] (the pairs are the top level's; the chain's own
 * keys win, as over the command line's flags). */
static int pairs_chain(loader *ld, int index, bp_error *err)
{
    bp_config *cfg = ld->cfg;
    if (index < 0)
        return 0;
    if (index >= cfg->chain_count)
        return bp_error_set(err, BP_EINVAL, "no chains[%d] in the config file", index);
    cfg->chain_index = index;
    ld->chain_index = index;
    ld->chain_pass = true;
    int rc = chain_coin_begin(ld, err);
    return rc ? rc : load_file(ld, cfg->config_file, "config", err);
}

static int load_pairs(bp_config *cfg, const char *const *keys, const char *const *values, size_t n,
                      int index, bp_error *err)
{
    enum bp_command cmd = BP_CMD_RUN;
    const char *file = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(keys[i], "to") == 0)
            cmd = BP_CMD_BACKFILL;
        if (strcmp(keys[i], "config") == 0)
            file = values[i];
    }
    loader ld = {.cfg = cfg, .cmd = cmd, .chain_index = -1};
    int rc = 0;
    set_defaults(cfg, cmd);
    if (file && *file) {
        rc = replace_string(&cfg->config_file, file, err);
        rc = rc ? rc : load_file(&ld, file, "config", err);
    }
    rc = rc ? rc : apply_pairs(&ld, keys, values, n, err);
    rc = rc ? rc : pairs_chain(&ld, index, err);
    rc = rc ? rc : add_clickhouse_output(&ld, err);
    rc = rc ? rc : apply_preset(cfg, err);
    chain_coin_end(&ld);
    return rc ? rc : check_required(cfg, err);
}

int bp_config_load_pairs(bp_config *cfg, const char *const *keys, const char *const *values,
                         size_t n, bp_error *err)
{
    return load_pairs(cfg, keys, values, n, -1, err);
}

int bp_config_load_pairs_chain(bp_config *cfg, const char *const *keys, const char *const *values,
                               size_t n, int index, bp_error *err)
{
    return load_pairs(cfg, keys, values, n, index, err);
}

int bp_config_load(bp_config *cfg, enum bp_command cmd, int argc, char **argv, bp_error *err)
{
    return load(cfg, cmd, argc, argv, -1, err);
}

int bp_config_load_chain(bp_config *cfg, enum bp_command cmd, int argc, char **argv, int index,
                         bp_error *err)
{
    return load(cfg, cmd, argc, argv, index, err);
}

void bp_config_release(bp_config *cfg)
{
    if (!cfg)
        return;
    drop_rpcs(cfg);
    bp_creds_release(&cfg->ws_creds);
    bp_creds_release(&cfg->rpc_creds);
    for (int i = 0; i < cfg->output_count; i++)
        free(cfg->outputs[i]);
    free(cfg->chain);
    for (size_t i = 0; i < cfg->sink_setting_count; i++)
        free((char *)cfg->sink_settings[i].value);
    free(cfg->state_dir);
    free(cfg->ws_url);
    free(cfg->config_file);
    free(cfg->clickhouse_url);
    cfg->clickhouse_url = NULL;
    free(cfg->api_listen);
    free(cfg->api_token);
    free(cfg->api_cors);
    free(cfg->api_tls_cert);
    free(cfg->api_tls_key);
    free(cfg->stream_store);
    cfg->stream_store = NULL;
    for (int i = 0; i < cfg->alert_count; i++)
        free(cfg->alerts[i]);
    cfg->alert_count = 0;
    for (int i = 0; i < cfg->alert_webhook_count; i++)
        free(cfg->alert_webhooks[i]);
    cfg->alert_webhook_count = 0;
    cfg->api_listen = cfg->api_token = cfg->api_cors = cfg->api_tls_cert = cfg->api_tls_key = NULL;
    char **prices[] = {&cfg->native_token, &cfg->prices_file, &cfg->price_url, &cfg->price_coin_id,
                       &cfg->coingecko_api_key};
    for (size_t i = 0; i < sizeof(prices) / sizeof(prices[0]); i++) {
        free(*prices[i]);
        *prices[i] = NULL;
    }
    for (int i = 0; i < cfg->chain_count; i++)
        free(cfg->chain_names[i]);
    cfg->chain_count = 0;
    cfg->rpc_count = cfg->output_count = 0;
    cfg->sink_setting_count = 0;
    cfg->chain = cfg->config_file = cfg->state_dir = cfg->ws_url = NULL;
}

/* ---- usage ---- */

#define HELP_COL 26
#define HELP_WIDTH 100

/* Appends text word-wrapped to HELP_WIDTH, continuation lines indented to `indent`; `col` is
 * the column the text starts at. */
static void wrap(bp_buf *b, const char *text, size_t col, size_t indent)
{
    while (*text) {
        size_t word = strcspn(text, " ");
        if (col > indent && col + 1 + word > HELP_WIDTH) {
            bp_buf_printf(b, "\n%*s", (int)indent, "");
            col = indent;
        } else if (col > indent) {
            bp_buf_putc(b, ' ');
            col++;
        }
        bp_buf_append(b, text, word);
        col += word;
        text += word;
        text += strspn(text, " ");
    }
    bp_buf_putc(b, '\n');
}

/* "  --flag ARG" padded to the help column (or on a line of its own when longer). */
static size_t usage_head(bp_buf *b, const char *indent, const char *flag, const char *arg)
{
    size_t start = b->len;
    bp_buf_printf(b, "%s%s%s%s", indent, flag, arg ? " " : "", arg ? arg : "");
    size_t w = b->len - start;
    if (w + 1 >= HELP_COL) {
        bp_buf_printf(b, "\n%*s", HELP_COL, "");
        return HELP_COL;
    }
    bp_buf_printf(b, "%*s", (int)(HELP_COL - w), "");
    return HELP_COL;
}

static void usage_opt(bp_buf *b, const opt *o)
{
    char flag[64], extra[256];
    snprintf(flag, sizeof(flag), "--%s", o->flag);
    size_t col = usage_head(b, o->sink ? "    " : "  ", flag, o->arg);
    int n = 0;
    if (o->alias)
        n += snprintf(extra + n, sizeof(extra) - (size_t)n, "also --%s; ", o->alias);
    if (o->env)
        n += snprintf(extra + n, sizeof(extra) - (size_t)n, "env %s%s%s%s%s; ", o->env,
                      o->env2 ? " or " : "", o->env2 ? o->env2 : "", o->env3 ? " or " : "",
                      o->env3 ? o->env3 : "");
    if (o->sink)
        n += snprintf(extra + n, sizeof(extra) - (size_t)n, "URL parameter %s; ", o->sink->name);
    if (o->def && strcmp(o->def, "required") == 0)
        snprintf(extra + n, sizeof(extra) - (size_t)n, "required");
    else
        snprintf(extra + n, sizeof(extra) - (size_t)n, "default %s", o->def ? o->def : "none");
    char text[1024];
    snprintf(text, sizeof(text), "%s (%s)", o->help, extra);
    wrap(b, text, col, HELP_COL);
}

static void usage_url_only(bp_buf *b, const bp_sink_option *so)
{
    char head[96], text[1024];
    snprintf(head, sizeof(head), "?%s=%s", so->name, so->arg ? so->arg : "VALUE");
    size_t col = usage_head(b, "    ", head, NULL);
    snprintf(text, sizeof(text), "%s (URL only%s%s%s%s)", so->help, so->choices ? ": " : "",
             so->choices ? so->choices : "", so->def ? "; default " : "", so->def ? so->def : "");
    wrap(b, text, col, HELP_COL);
}

static void usage_outputs(bp_buf *b, enum bp_command cmd)
{
    size_t n;
    const opt *t = all_opts(&n);
    bp_buf_puts(b, "\nOutputs (--output URL; repeat for several):\n");
    for (const bp_sink_ops *const *be = bp_sink_backends(); *be; be++) {
        const bp_sink_ops *o = *be;
        size_t col = usage_head(b, "  ", o->usage, NULL);
        char text[512];
        int k = snprintf(text, sizeof(text), "%s", o->description);
        for (const char *const *a = o->aliases; a && *a; a++)
            k += snprintf(text + k, sizeof(text) - (size_t)k,
                          "%s%s:", a == o->aliases ? " (also " : ", ", *a);
        if (o->aliases && o->aliases[0])
            snprintf(text + k, sizeof(text) - (size_t)k, ")");
        wrap(b, text, col, HELP_COL);
        for (size_t i = 0; i < o->option_count; i++) {
            const bp_sink_option *so = &o->options[i];
            for (size_t j = N_CORE; j < n; j++)
                if (t[j].sink && t[j].key && so->key && strcmp(t[j].key, so->key) == 0 &&
                    opt_for(&t[j], cmd))
                    usage_opt(b, &t[j]);
            if (!so->key)
                usage_url_only(b, so);
        }
    }
}

static void usage_keys(bp_buf *b, enum bp_command cmd)
{
    size_t n, col = 18;
    const opt *t = all_opts(&n);
    bp_buf_puts(b, "\nConfig file keys:");
    for (size_t i = 0; i < n; i++) {
        if (!t[i].key || !opt_for(&t[i], cmd))
            continue;
        const char *k = strcmp(t[i].key, "rpc") == 0      ? "rpc, rpcs"
                        : strcmp(t[i].key, "output") == 0 ? "output, outputs"
                                                          : t[i].key;
        if (col + strlen(k) + 2 > HELP_WIDTH) {
            bp_buf_puts(b, "\n ");
            col = 1;
        }
        bp_buf_printf(b, " %s,", k);
        col += strlen(k) + 2;
    }
    bp_buf_puts(b, " (unknown keys are refused)\n  and chains: a list of chains, each {name, "
                   "chain_id, rpcs, ...} with its own keys (docs/CLI.md)\n");
}

static const struct {
    const char *title, *synopsis, *examples;
} g_usage_text[] = {
    [BP_CMD_RUN] = {"blockpipe run - follow the chain head and index every new block until "
                    "stopped",
                    "blockpipe run --rpc URL [options]",
                    "  blockpipe run --rpc http://127.0.0.1:8545\n"
                    "  blockpipe run --rpc https://eth.example.org --output sqlite:mainnet.db "
                    "--confirmations 12\n"
                    "  RPC_URL=http://127.0.0.1:8545 blockpipe run --config blockpipe.yaml "
                    "--log-format json\n"},
    [BP_CMD_BACKFILL] = {"blockpipe backfill - index blocks A..B (inclusive) and exit 0 when all "
                         "are committed",
                         "blockpipe backfill --rpc URL --from A --to B [options]",
                         "  blockpipe backfill --rpc http://127.0.0.1:8545 --from 0 --to 1000 "
                         "--output etl-csv:out/\n"
                         "  blockpipe backfill --rpc https://eth.example.org --from 17000000 --to "
                         "17000999 --workers 32\n"
                         "  blockpipe backfill --config chain.json --from 0 --to 100 --output "
                         "jsonl:out/ --output sqlite:x.db\n"},
    [BP_CMD_MIGRATE] = {"blockpipe migrate - create or upgrade the schema of an output and print "
                        "its version (run and backfill also do it when they start; a schema "
                        "newer than this program is refused)",
                        "blockpipe migrate URL [options]",
                        "  blockpipe migrate postgres://bp:secret@localhost/chain --pg-schema "
                        "mainnet\n"
                        "  DATABASE_URL=postgres://localhost/chain blockpipe migrate\n"},
    [BP_CMD_SERVE] = {"blockpipe serve - serve the HTTP API (REST, status, push, dashboard) over "
                      "an output another process writes, without indexing",
                      "blockpipe serve --output URL [--api HOST:PORT] [options]",
                      "  blockpipe serve --output sqlite:blockpipe.db\n"
                      "  blockpipe serve --output postgres://bp@localhost/chain --api "
                      "0.0.0.0:8080 --api-token secret --api-token-reads on\n"},
    [BP_CMD_VERIFY] = {"blockpipe verify - read blocks A..B (inclusive) from the node again and "
                       "compare them with what an output holds, row by row; exit 0 when equal, "
                       "3 when something differs (each difference listed on stdout: block, "
                       "table, missing / extra / duplicated / altered row and its columns), 4 "
                       "when --repair wrote every differing block again and found it equal "
                       "after, 1 on an error (node, output), 2 on bad usage",
                       "blockpipe verify --rpc URL --from A --to B --output URL [--repair] "
                       "[options]",
                       "  blockpipe verify --rpc http://127.0.0.1:8545 --from 0 --to 1000 "
                       "--output sqlite:blockpipe.db\n"
                       "  blockpipe verify --config chain.yaml --from 17000000 --to 17009999 "
                       "--output postgres://bp@localhost/chain --repair\n"},
};

static void usage_build(bp_buf *b, enum bp_command cmd)
{
    size_t n;
    const opt *t = all_opts(&n);
    bp_buf_printf(b, "%s\n\nUsage: %s\n\n", g_usage_text[cmd].title, g_usage_text[cmd].synopsis);
    if (cmd == BP_CMD_MIGRATE)
        bp_buf_puts(b, "  URL                     the output, as for --output (or --output URL, or "
                       "env DATABASE_URL)\n\n");
    bp_buf_puts(b, "Options (flag > environment > config file > default; --name VALUE or "
                   "--name=VALUE):\n");
    for (size_t i = 0; i < N_CORE; i++)
        if (opt_for(&t[i], cmd))
            usage_opt(b, &t[i]);
    bp_buf_printf(b, "  --help%*sprint this help and exit\n", HELP_COL - 8, "");
    usage_outputs(b, cmd);
    usage_keys(b, cmd);
    if (cmd == BP_CMD_RUN || cmd == BP_CMD_BACKFILL)
        bp_buf_printf(b, "\nChain presets (--chain-preset; docs/CLI.md has their values):\n  %s\n",
                      bp_chain_preset_names());
    bp_buf_printf(b, "\nExamples:\n%s", g_usage_text[cmd].examples);
}

const char *bp_config_usage(enum bp_command cmd)
{
    static bp_buf texts[BP_CMD_VERIFY + 1];
    if ((unsigned)cmd > BP_CMD_VERIFY || cmd < BP_CMD_RUN)
        cmd = BP_CMD_RUN;
    if (!texts[cmd].data)
        usage_build(&texts[cmd], cmd);
    return texts[cmd].data ? texts[cmd].data : "out of memory\n";
}

bool bp_config_option_doc(size_t i, bp_option_doc *out)
{
    size_t n;
    const opt *t = all_opts(&n);
    if (i >= n)
        return false;
    *out = (bp_option_doc){.flag = t[i].flag,
                           .alias = t[i].alias,
                           .arg = t[i].arg,
                           .env = t[i].env,
                           .env2 = t[i].env2,
                           .env3 = t[i].env3,
                           .key = t[i].key,
                           .def = t[i].def,
                           .help = t[i].help,
                           .backend = t[i].backend,
                           .commands = t[i].cmds};
    return true;
}

void bp_config_command_doc(enum bp_command cmd, const char **title, const char **synopsis,
                           const char **examples)
{
    if ((unsigned)cmd > BP_CMD_VERIFY || cmd < BP_CMD_RUN)
        cmd = BP_CMD_RUN;
    *title = g_usage_text[cmd].title;
    *synopsis = g_usage_text[cmd].synopsis;
    *examples = g_usage_text[cmd].examples;
}

/* ---- docs/CLI.md ---- */

/* A table cell: '|' escaped, the text otherwise as --help shows it. */
static void md_cell(FILE *out, const char *s)
{
    fputc(' ', out);
    for (; s && *s; s++) {
        if (*s == '|')
            fputc('\\', out);
        fputc(*s, out);
    }
    fputs(" |", out);
}

static void md_code(FILE *out, const char *a, const char *b)
{
    char text[256];
    if (!a) {
        md_cell(out, "—");
        return;
    }
    snprintf(text, sizeof(text), "`%s%s%s`", a, b ? " " : "", b ? b : "");
    md_cell(out, text);
}

/* The commands an option is for, by name ("all" for every one). */
static const char *md_commands(const opt *o, char *out, size_t cap)
{
    static const enum bp_command order[] = {BP_CMD_RUN, BP_CMD_BACKFILL, BP_CMD_VERIFY,
                                            BP_CMD_MIGRATE, BP_CMD_SERVE};
    if (o->cmds == CMD_ALL)
        return "all";
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        if (opt_for(o, order[i]) && n < cap)
            n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? ", " : "", cmd_name(order[i]));
    return out;
}

static void md_core(FILE *out)
{
    size_t n;
    const opt *t = all_opts(&n);
    fputs("| flag | env | config key | default | commands | meaning |\n"
          "|---|---|---|---|---|---|\n",
          out);
    for (size_t i = 0; i < N_CORE; i++) {
        char flag[64], env[96];
        snprintf(flag, sizeof(flag), "--%s", t[i].flag);
        snprintf(env, sizeof(env), "%s%s%s%s%s", t[i].env ? t[i].env : "", t[i].env2 ? ", " : "",
                 t[i].env2 ? t[i].env2 : "", t[i].env3 ? ", " : "", t[i].env3 ? t[i].env3 : "");
        fputc('|', out);
        md_code(out, flag, t[i].arg);
        md_code(out, t[i].env ? env : NULL, NULL);
        md_code(out, t[i].key, NULL);
        md_cell(out, t[i].def ? t[i].def : "none");
        char cmds[64];
        md_cell(out, md_commands(&t[i], cmds, sizeof(cmds)));
        char help[1024];
        snprintf(help, sizeof(help), "%s%s%s%s", t[i].help, t[i].alias ? " (also `--" : "",
                 t[i].alias ? t[i].alias : "", t[i].alias ? "`)" : "");
        md_cell(out, help);
        fputc('\n', out);
    }
}

static void md_backend(FILE *out, const bp_sink_ops *o)
{
    fprintf(out, "\n### %s (`%s`", o->title, o->usage);
    for (const char *const *a = o->aliases; a && *a; a++)
        fprintf(out, ", `%s:`", *a);
    fprintf(out, ")\n\n%s.\n", o->description);
    if (!o->option_count)
        return;
    fputs("\n| URL parameter | flag | env | config key | default | meaning |\n"
          "|---|---|---|---|---|---|\n",
          out);
    for (size_t i = 0; i < o->option_count; i++) {
        const bp_sink_option *so = &o->options[i];
        char flag[64], param[96];
        snprintf(flag, sizeof(flag), "--%s", so->flag ? so->flag : "");
        snprintf(param, sizeof(param), "%s=%s", so->name, so->arg ? so->arg : "VALUE");
        fputc('|', out);
        md_code(out, param, NULL);
        md_code(out, so->flag ? flag : NULL, so->arg);
        md_code(out, so->env, NULL);
        md_code(out, so->key, NULL);
        md_cell(out, so->def ? so->def : "none");
        char help[1024];
        snprintf(help, sizeof(help), "%s%s%s", so->help, so->choices ? "; one of " : "",
                 so->choices ? so->choices : "");
        md_cell(out, help);
        fputc('\n', out);
    }
}

void bp_config_markdown(FILE *out)
{
    fputs("<!-- Made by `blockpipe --help-markdown` from the option tables (src/cli/config.c and "
          "each output's options); `make docs` rewrites it and a test checks it. -->\n\n",
          out);
    md_core(out);
    fputs("\n## Outputs\n\n`--output URL` (repeatable). An output's own options apply to every "
          "output of that kind; a parameter in the output's URL wins over them.\n",
          out);
    for (const bp_sink_ops *const *b = bp_sink_backends(); *b; b++)
        md_backend(out, *b);
}
