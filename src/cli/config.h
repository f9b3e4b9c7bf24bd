/* config.h - the options of `run` and `backfill`, from flags, environment, a YAML/JSON
 * config file and defaults, in that order of strength (see docs/CLI.md).
 * A bad value is refused naming the key, the value and what is expected, e.g.
 *   "--workers: '0' is not valid: expected an integer from 1 to 1024". */
#ifndef BP_CLI_CONFIG_H
#define BP_CLI_CONFIG_H

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>

#include "blockpipe/error.h"
#include "blockpipe/sink.h"
#include "chain/auth.h"

#define BP_MAX_OUTPUTS 16
#define BP_MAX_RPCS 16
#define BP_MAX_SINK_SETTINGS 64
#define BP_MAX_ALERTS 32
#define BP_MAX_WEBHOOKS 8
#define BP_MAX_CHAINS 256

enum bp_command {
    BP_CMD_RUN = 1,
    BP_CMD_BACKFILL = 2,
    BP_CMD_MIGRATE = 3,
    BP_CMD_SERVE = 4,
    BP_CMD_VERIFY = 5
};

#define BP_MAX_HEADERS 16

/* Credentials of an endpoint (docs: README "Provider credentials"). Values given as
 * ${NAME} (an environment variable) or @FILE (a file's contents) are already read here. */
typedef struct bp_endpoint_creds {
    char *headers[BP_MAX_HEADERS]; /* "Name: value" */
    int header_count;
    char *ca_file, *cert_file, *key_file; /* checked readable at load */
} bp_endpoint_creds;

typedef struct bp_rpc_endpoint {
    char *url;               /* ${NAME} / @FILE read */
    bp_endpoint_creds creds; /* its own; bp_config_auth merges the defaults in */
    int max_workers;         /* 0 = no per-endpoint cap */
    int priority;            /* lower is preferred */
    double rps;              /* requests per second, 0 = no limit */
} bp_rpc_endpoint;

typedef struct bp_config {
    enum bp_command command;
    bp_rpc_endpoint rpcs[BP_MAX_RPCS];
    int rpc_count;
    char *chain; /* NULL: derived from eth_chainId; with a chains: list, the chain to run */
    const char *chain_type; /* --chain-type: "evm" (the default) or "arch" (core/source.h) */
    bool chain_id_set;      /* chain_id: the endpoints must serve it */
    uint64_t chain_id;
    /* The config file's `chains:` list (docs/ARCHITECTURE.md "Many chains in one process"):
     * the names of its chains, in order (owned); 0 when the file has none. */
    char *chain_names[BP_MAX_CHAINS];
    int chain_count;
    int chain_index;      /* the chain of the list this config is (bp_config_load_chain), or -1 */
    int workers_total;    /* fetch workers of every chain together (a chains: list only) */
    int shard_k, shard_n; /* --shard K/N: the chains at positions K, K+N ... (1-based) */
    double lock_wait;     /* --lock-wait: s; < 0 forever */
    char *outputs[BP_MAX_OUTPUTS];
    int output_count;     /* defaults to one: sqlite:blockpipe.db */
    char *clickhouse_url; /* --clickhouse-url as an output URL (also in outputs), or NULL */
    bool start_latest;    /* --start-block latest (default for run) */
    bool start_set;       /* --start-block N given */
    uint64_t start_block;
    bool from_set, to_set;
    uint64_t from_block, to_block; /* backfill, verify */
    bool repair;                   /* verify --repair */
    uint64_t confirmations;
    uint64_t reorg_window;
    bool confirmations_given, reorg_window_given; /* by a flag, variable or the file */
    /* --chain-preset (chain/presets.h): its id is checked against eth_chainId at start, its
     * confirmations, reorg window and native token are the defaults; NULL: none. */
    const struct bp_chain_preset *preset;
    int workers;
    int batch_size;
    uint64_t max_memory;   /* bytes (--max-memory) */
    double poll_interval;  /* seconds */
    double stats_interval; /* seconds */
    unsigned fetch;        /* enum bp_fetch_what */
    bool strict_node;      /* --strict-node */
    int max_retries;
    /* seconds (--failed-retry-interval) */
    double failed_retry_interval;
    double rpc_timeout; /* seconds */
    int log_level;      /* enum bp_log_level */
    bool log_json;
    char *config_file;
    char *state_dir;        /* NULL: no state file */
    bool output_keep_going; /* --output-failure continue */
    /* The outputs' own options given by flag, environment or config file (key: the
     * option's config key; value owned): every output of a kind that has the key gets it
     * unless its URL sets the parameter itself. */
    bp_sink_setting sink_settings[BP_MAX_SINK_SETTINGS];
    size_t sink_setting_count;
    /* real time */
    char *ws_url;                 /* NULL: HTTP polling only */
    bp_endpoint_creds ws_creds;   /* ws: {headers, ca_file, ...} and --ws-header */
    bp_endpoint_creds rpc_creds;  /* --rpc-header and --ca-file, --cert-file, --key-file: for
                                     every endpoint (TLS files for the WebSocket too) that has
                                     none of its own */
    bool realtime;                /* use ws_url (default true) */
    double ws_reconnect_interval; /* seconds */
    int ws_max_reconnect_attempts;
    double ws_stale_after; /* seconds; 0: 3 x block time, at least 30 */
    bool help;             /* --help was given: print usage, exit 0 */
    /* the API (src/api/api.h): NULL api_listen = off (serve: 127.0.0.1:8080) */
    char *api_listen;
    char *api_token;
    bool api_token_reads;
    double api_rate; /* requests per second per client address, 0: no limit */
    char *api_cors;
    char *stream_store; /* --stream-store, NULL: from the outputs */
    char *api_tls_cert, *api_tls_key;
    int api_threads;
    uint64_t ready_lag;
    uint64_t api_max_body;
    double api_request_timeout;
    int api_max_connections;
    int api_push_clients;
    int api_push_ring;
    uint64_t api_push_queue;
    uint64_t api_push_memory;
    double api_push_stall;
    char *alerts[BP_MAX_ALERTS]; /* --alert rules (src/api/alerts.h), checked */
    int alert_count;
    char *alert_webhooks[BP_MAX_WEBHOOKS]; /* --alert-webhook URLs (src/api/webhooks.h) */
    int alert_webhook_count;
    /* analytics (outputs with derived tables) */
    char *native_token;      /* NULL: ETH */
    char *prices_file;       /* --prices, NULL: none */
    char *price_url;         /* CoinGecko-shaped API base, NULL: no fetcher */
    char *price_coin_id;     /* NULL: from the native token */
    char *coingecko_api_key; /* NULL: none */
    double price_interval;   /* seconds */
    uint64_t price_max_age;  /* seconds */
    bool ml;                 /* ml_predictions */
} bp_config;

/* Fills cfg from argv (argv[0] is the command name: "run", "backfill" or "migrate"), the process
 * environment and the config file named by --config / BLOCKPIPE_CONFIG. Returns 0 or
 * BP_EINVAL with the message in err. cfg must be released with bp_config_release (also after
 * an error; releasing twice is harmless). Every value of every source is validated, even one a
 * stronger source overrides. An empty environment variable counts as unset; OUTPUT is read
 * before DATABASE_URL, then REDIS_URL. --rpc / --output given by a source replace (not extend) the
 * lists of weaker sources. With --help (or -h) anywhere, only cfg->help is set and 0 is returned.
 */
int bp_config_load(bp_config *cfg, enum bp_command cmd, int argc, char **argv, bp_error *err);
/* The config of chain `index` of the config file's chains: list (bp_config_load told how many
 * there are): the top-level keys, the environment and the flags as bp_config_load reads them,
 * then the chain's own keys, which win. A bad value is refused naming the chain and the key,
 * e.g. "confirmations (config file x.yaml, chains[1] 'beta'): 'x' is not valid: ...". */
int bp_config_load_chain(bp_config *cfg, enum bp_command cmd, int argc, char **argv, int index,
                         bp_error *err);
/* The library's config (include/blockpipe/blockpipe.h): n (key, value) pairs with the config
 * file's keys (a list key such as rpc or output repeated), plus "config" (a config file read
 * first, the pairs winning over it) and "from" / "to" (with "to" the range is backfilled, else
 * the head is followed). Neither the environment nor a command line is read, and there is no
 * default output. With a chains: list in the file this is the top level, shared by the chains
 * (chain_names lists them; the key chain, NAME[,NAME...], picks some, as --chain does). */
int bp_config_load_pairs(bp_config *cfg, const char *const *keys, const char *const *values,
                         size_t n, bp_error *err);
/* The config of chain `index` of the file's chains: list: the file's top level, the pairs,
 * then the chain's own keys, which win (as bp_config_load_chain over the flags). */
int bp_config_load_pairs_chain(bp_config *cfg, const char *const *keys, const char *const *values,
                               size_t n, int index, bp_error *err);
void bp_config_release(bp_config *cfg);
/* What endpoint i (-1: the WebSocket) is reached with: its own headers and TLS files, else
 * the defaults of rpc_creds. Points into cfg. */
void bp_config_auth(const bp_config *cfg, int i, bp_endpoint_auth *out);
/* Usage text of a command (for --help), made from the option table and the outputs' own
 * options; valid until the program ends. */
const char *bp_config_usage(enum bp_command cmd);
/* The option tables of docs/CLI.md in Markdown (made from the same tables). */
void bp_config_markdown(FILE *out);

/* One option of the table --help is made from, for other documents made from it (the man
 * page, src/cli/manpage.c). The strings are the table's own, valid until the program ends. */
typedef struct bp_option_doc {
    const char *flag, *alias, *arg; /* flag and alias without the leading "--" */
    const char *env, *env2, *env3;  /* NULL when unset */
    const char *key;                /* config file key; NULL: flag only */
    const char *def, *help;         /* def: "required", a value, or NULL (none) */
    const bp_sink_ops *backend;     /* an output's own option: the first output having it */
    unsigned commands;              /* bit (1u << cmd) for each command that takes it */
} bp_option_doc;
/* Option i (the core options, then the outputs' settings); false when i is past the end. */
bool bp_config_option_doc(size_t i, bp_option_doc *out);
/* What `blockpipe CMD --help` opens and ends with: "blockpipe run - ...", its usage line and
 * its examples (lines of "  blockpipe ..."). */
void bp_config_command_doc(enum bp_command cmd, const char **title, const char **synopsis,
                           const char **examples);

#endif
