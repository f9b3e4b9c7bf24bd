/* simnode.c - `blockpipe simnode`: options, endpoints, signals, the final counters. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands_sim.h"
#include "sim/server.h"

static const char USAGE[] =
    "usage: blockpipe simnode [options]\n"
    "\n"
    "A synthetic JSON-RPC node over HTTP and WebSocket for benchmarks and chaos tests. Block n of "
    "fork f is\n"
    "a pure function of (seed, n, f): same seed, same bytes. Hashes are pseudo-random\n"
    "(splitmix64), not keccak; block and tx hashes encode their coordinates.\n"
    "Methods: eth_chainId, eth_blockNumber, eth_getBlockByNumber, eth_getBlockByHash,\n"
    "eth_getBlockReceipts, eth_getTransactionReceipt (single calls and batches).\n"
    "WebSocket on the same port (ws://HOST:PORT): the same methods, plus eth_subscribe\n"
    "[\"newHeads\"] / eth_unsubscribe; every new head is announced, and on a reorg every\n"
    "block of the new branch from the fork point up, in order (as geth does).\n"
    "GET /stats on any endpoint: head, reorgs and every endpoint's fault counters (JSON),\n"
    "with \"waits\": the waits its 429s announced, requests that came inside one\n"
    "(\"in_flight\": within 0.5 s, already on their way; \"ignored\": later) and the shortest\n"
    "time from a 429 to the next request (\"min_gap_ms\");\n"
    "printed on SIGINT/SIGTERM too, then exit 0.\n"
    "\n"
    "Arch Network (--chain-type arch): the same blocks as an Arch node shows them (docs/ARCH.md):\n"
    "HTTP JSON-RPC get_block_count, get_block_hash, get_block, get_processed_transaction,\n"
    "get_best_block_hash, get_best_finalized_block_hash (--finality), is_node_ready; on\n"
    "the WebSocket {\"method\":\"subscribe\",\"params\":{\"topic\":T}} for the topics block,\n"
    "transaction, account_update, rolledback_transactions, reapplied_transactions and dkg;\n"
    "events as {\"topic\":T,\"data\":{...}}. Faults and reorgs work as for EVM (bad= is\n"
    "EVM only). Objects in the Rust SDK's wire format (arch-sdk rpc_wire_format.rs, what a\n"
    "current node answers) or, with --arch-shape ts, the TypeScript SDK's.\n"
    "\n"
    "Control methods (JSON-RPC on every endpoint, HTTP and WebSocket; a namespace no real node\n"
    "uses; never failed by error_rate, HTTP faults still apply): what the timers do, at a\n"
    "moment a test chooses. Each answers with what it did; a bad parameter is error -32602.\n"
    "  simnode_fork [D]       the last D blocks (1..head) get a new fork, announced as a\n"
    "                         timer reorg is: {fork, depth, fork_point, head, hashes (the new\n"
    "                         blocks fork_point+1..head), replaced (the old ones)}\n"
    "  simnode_rollback [{\"height\": N, \"txids\": [...]}]  arch: a rollback of the txids\n"
    "                         (one canonical block), else of every other transaction of block\n"
    "                         N, else of the timer's choice; refused while a set is rolled\n"
    "                         back: {episode, block_height, block_hash, txids}\n"
    "  simnode_reapply []     arch: the re-apply of the set rolled back (the same answer)\n"
    "On-demand episodes take the next numbers of the --rollback-every schedule (which then\n"
    "re-applies an on-demand rollback); the --reorg-every schedule keeps its own count.\n"
    "\n"
    "chain:\n"
    "  --chain-type evm|arch  the node's family (default evm)\n"
    "  --rollback-every S     arch: every S seconds a rollback of every other transaction of\n"
    "                         the newest block with transactions below the head, then S\n"
    "                         later their re-apply (rolledback_transactions /\n"
    "                         reapplied_transactions; get_processed_transaction's\n"
    "                         rollback_status in between)\n"
    "  --rollback-depth N     arch: that block is at least N below the head (default 1)\n"
    "  --finality N           arch: get_best_finalized_block_hash is N below the head\n"
    "                         (default 6)\n"
    "  --dkg-status S         arch: the dkg events' status string, sent JSON-escaped\n"
    "                         (default Completed; a test's awkward text)\n"
    "  --arch-shape rust|ts   arch: the objects' shape: rust = arch-sdk's wire format (hashes\n"
    "                         as byte arrays, timestamps in ms, no transactions_count /\n"
    "                         merkle_root); ts = the TypeScript SDK's (hex strings, seconds,\n"
    "                         both fields) (default rust; docs/ARCH.md)\n"
    "  --seed N               chain seed (default 1)\n"
    "  --length N             blocks 0..N-1 at most (default 10000000)\n"
    "  --txs-per-block N|A-B  transactions per block, or uniform in A..B (default 200)\n"
    "  --block-time S         seconds per block; 0 = the whole chain exists at once (default 1)\n"
    "  --start-head N         head at start when --block-time > 0 (default 0)\n"
    "  --chain-id N           eth_chainId (default 1337)\n"
    "  --reorg-every S        every S seconds the last --reorg-depth blocks get a new fork\n"
    "  --reorg-depth D        (default 3 when --reorg-every is given)\n"
    "  --senders N            externally owned accounts: senders, recipients of plain and\n"
    "                         token transfers, withdrawals (default 4096)\n"
    "  --contracts N          contracts that calls and token transfers go to (default 256)\n"
    "  --zipf S               how addresses recur: 0 (default) draws each uniformly from its\n"
    "                         pool, so a window's distinct senders stop growing once the pool\n"
    "                         has appeared; S > 0 (at most 4) draws rank r of the pool with\n"
    "                         probability about (r+1)^-S: a few busy addresses and a long tail,\n"
    "                         distinct senders growing all day as on a real chain (--senders\n"
    "                         100000000 --zipf 1: about 46% of 600,000 transactions' senders\n"
    "                         are distinct, 19% of a day's 86.4 million at 1,000 tx/s)\n"
    "\n"
    "endpoints:\n"
    "  --listen HOST:PORT     first endpoint; endpoint i uses PORT+i-1; port 0 = free ports\n"
    "                         (default 127.0.0.1:8545). Prints `listening on http://HOST:PORT`\n"
    "                         per endpoint, in order, on stdout\n"
    "  --endpoints K          K endpoints ep1..epK over the same chain (default 1)\n"
    "  --faults SPEC          fault profiles: 'ep1:latency=50ms,error_rate=0.1;ep2:lag=5'\n"
    "                         (NAME is epN, * or all; without NAME: every endpoint)\n"
    "  --faults-file PATH     the same as YAML or JSON: {ep1: {latency: 50ms, error_rate: 0.1}}\n"
    "  --require-header 'NAME: VALUE'  every JSON-RPC request and WebSocket upgrade must carry\n"
    "                         it (repeatable; Basic auth: 'Authorization: Basic BASE64'), else\n"
    "                         HTTP 401 whose body quotes what came, as some providers do\n"
    "\n"
    "fault keys (rates are probabilities per request; error_rate per call in a batch):\n"
    "  latency=50ms           added to every answer (units ms or s)\n"
    "  error_rate=p           JSON-RPC error -32000 instead of the result\n"
    "  rate_limit=RPS         above RPS requests/s: HTTP 429 with Retry-After: 1\n"
    "  quota=K                a strict provider: K requests per window, then HTTP 429 with\n"
    "                         Retry-After: the whole seconds left in the window\n"
    "  quota_window=S         the quota's window (default 4s; starts at the first request)\n"
    "  limit_answer=http429|http503|rpc32007  how a limit is said: HTTP 429 + -32005 body,\n"
    "                         HTTP 503 + Retry-After, or QuickNode's HTTP 200 + JSON-RPC -32007\n"
    "  retry_after=auto|N|none|date  a 429's Retry-After: seconds left rounded up (auto),\n"
    "                         always N, no header, or an HTTP-date\n"
    "  http500_rate=p         HTTP 500\n"
    "  truncate_rate=p        the answer cut in half\n"
    "  garbage_rate=p         HTTP 200 with a body that is not JSON\n"
    "  reset_rate=p           the connection closed without an answer\n"
    "  stall_rate=p, stall=S  the answer held back S (default 10s)\n"
    "  lag=N                  this endpoint's head is N blocks behind (WebSocket heads too)\n"
    "  ws_drop_every=S        every WebSocket connection dropped (no close frame) every S s\n"
    "  ws_silent=1            eth_subscribe answered, but no head ever announced\n"
    "  ws_bad_every=N         Arch: a malformed event after every Nth a connection sends\n"
    "  ws_corrupt_every=N     Arch: every Nth event a connection sends goes out broken in\n"
    "                         place (its first hash or key starts \"zz\"; dkg: cut in half)\n"
    "  ws_corrupt_topic=T     the topics ws_corrupt_every counts, joined by '+'\n"
    "                         (e.g. rolledback_transactions); default every topic\n"
    "  error_method=M         error_rate hits the calls of method M only\n"
    "  stall_method=M         stall_rate hits the requests that call method M only\n"
    "  missing_method=M       calls of method M answered -32601 \"Method not found\" (a node\n"
    "                         without it)\n"
    "  max_batch=N            a batch of more than N calls answered with one error object\n"
    "                         (-32600 \"batch of M exceeds the limit of N\"); 1: no batches\n"
    "  max_response_bytes=N   a batch's calls after its answers pass N bytes get -32003\n"
    "                         \"response too large\" (geth's batch answer cap)\n"
    "  bad=KIND               a rule broken on purpose: log_index_per_tx, log_index_swap,\n"
    "                         receipt_hash, receipt_index, receipt_block_hash,\n"
    "                         receipt_number, tx_index\n"
    "\n"
    "example:\n"
    "  blockpipe simnode --listen 127.0.0.1:0 --block-time 0 --length 10000 --endpoints 2 \\\n"
    "      --faults 'ep2:error_rate=0.05,rate_limit=50,reset_rate=0.01'\n";

const char *bp_simnode_usage(void)
{
    return USAGE;
}

typedef struct sim_opts {
    bp_sim_server_config cfg;
    bp_sim_faults faults[BP_SIM_MAX_ENDPOINTS];
    const char *faults_spec;
    const char *faults_file;
    const char *require[8];
    char host[64];
    bool depth_set;
    bool help;
} sim_opts;

static int bad(const char *flag, const char *v, const char *want, bp_error *err)
{
    return bp_error_set(err, BP_EINVAL, "%s: '%s' is not valid: expected %s", flag, v, want);
}

static bool to_u64(const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (end == v || *end || errno || v[0] == '-')
        return false;
    *out = x;
    return true;
}

static bool to_seconds(const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || errno || !isfinite(d) || d < 0 || (*end && strcmp(end, "s") != 0))
        return false;
    *out = d;
    return true;
}

static bool to_real(const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end || errno || !isfinite(d) || d < 0)
        return false;
    *out = d;
    return true;
}

static int set_txs(sim_opts *o, const char *v, bp_error *err)
{
    uint64_t a, b;
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%s", v);
    char *dash = strchr(tmp, '-');
    if (dash)
        *dash = '\0';
    if (!to_u64(tmp, &a) || (dash ? !to_u64(dash + 1, &b) : !((b = a), true)) || a > b ||
        b > BP_SIM_MAX_TXS)
        return bad("--txs-per-block", v, "N or MIN-MAX, at most 100000", err);
    o->cfg.chain.txs_min = (uint32_t)a;
    o->cfg.chain.txs_max = (uint32_t)b;
    return 0;
}

static int set_listen(sim_opts *o, const char *v, bp_error *err)
{
    const char *colon = strrchr(v, ':');
    uint64_t port;
    if (!colon || colon == v || (size_t)(colon - v) >= sizeof(o->host) ||
        !to_u64(colon + 1, &port) || port > 65535)
        return bad("--listen", v, "HOST:PORT, e.g. 127.0.0.1:0", err);
    memcpy(o->host, v, (size_t)(colon - v));
    o->host[colon - v] = '\0';
    o->cfg.port = (uint16_t)port;
    return 0;
}

static int set_number(const char *flag, const char *v, uint64_t min, uint64_t max, uint64_t *out,
                      bp_error *err)
{
    if (!to_u64(v, out) || *out < min || *out > max) {
        char want[96];
        snprintf(want, sizeof(want), "an integer from %llu to %llu", (unsigned long long)min,
                 (unsigned long long)max);
        return bad(flag, v, want, err);
    }
    return 0;
}

static int set_option(sim_opts *o, const char *flag, const char *v, bp_error *err)
{
    bp_sim_params *p = &o->cfg.chain;
    uint64_t x = 0;
    int rc = 0;
    if (strcmp(flag, "--seed") == 0)
        rc = set_number(flag, v, 0, UINT64_MAX, &p->seed, err);
    else if (strcmp(flag, "--chain-type") == 0) {
        if (strcmp(v, "evm") != 0 && strcmp(v, "arch") != 0)
            return bad(flag, v, "evm or arch", err);
        o->cfg.arch = strcmp(v, "arch") == 0;
    } else if (strcmp(flag, "--rollback-every") == 0)
        rc = to_seconds(v, &o->cfg.rollback_every) ? 0 : bad(flag, v, "seconds >= 0", err);
    else if (strcmp(flag, "--rollback-depth") == 0)
        rc = set_number(flag, v, 1, 1ull << 40, &o->cfg.rollback_depth, err);
    else if (strcmp(flag, "--finality") == 0)
        rc = set_number(flag, v, 1, 1ull << 40, &o->cfg.finality, err);
    else if (strcmp(flag, "--dkg-status") == 0)
        o->cfg.dkg_status = v;
    else if (strcmp(flag, "--arch-shape") == 0) {
        if (strcmp(v, "rust") != 0 && strcmp(v, "ts") != 0)
            return bad(flag, v, "rust or ts", err);
        o->cfg.arch_ts = strcmp(v, "ts") == 0;
    } else if (strcmp(flag, "--length") == 0)
        rc = set_number(flag, v, 1, 1ull << 40, &p->length, err);
    else if (strcmp(flag, "--txs-per-block") == 0)
        rc = set_txs(o, v, err);
    else if (strcmp(flag, "--block-time") == 0)
        rc = to_seconds(v, &p->block_time) ? 0 : bad(flag, v, "seconds >= 0", err);
    else if (strcmp(flag, "--start-head") == 0)
        rc = set_number(flag, v, 0, 1ull << 40, &p->start_head, err);
    else if (strcmp(flag, "--senders") == 0)
        rc = set_number(flag, v, 1, BP_SIM_MAX_POOL, &p->senders, err);
    else if (strcmp(flag, "--contracts") == 0)
        rc = set_number(flag, v, 1, BP_SIM_MAX_POOL, &p->contracts, err);
    else if (strcmp(flag, "--zipf") == 0)
        rc = to_real(v, &p->zipf) && p->zipf <= BP_SIM_MAX_ZIPF
                 ? 0
                 : bad(flag, v, "a number from 0 to 4", err);
    else if (strcmp(flag, "--chain-id") == 0)
        rc = set_number(flag, v, 1, 1ull << 52, &p->chain_id, err);
    else if (strcmp(flag, "--reorg-every") == 0)
        rc = to_seconds(v, &p->reorg_every) ? 0 : bad(flag, v, "seconds >= 0", err);
    else if (strcmp(flag, "--reorg-depth") == 0) {
        rc = set_number(flag, v, 1, 100000, &x, err);
        p->reorg_depth = (uint32_t)x;
        o->depth_set = true;
    } else if (strcmp(flag, "--listen") == 0)
        rc = set_listen(o, v, err);
    else if (strcmp(flag, "--endpoints") == 0) {
        rc = set_number(flag, v, 1, BP_SIM_MAX_ENDPOINTS, &x, err);
        o->cfg.endpoints = (size_t)x;
    } else if (strcmp(flag, "--faults") == 0)
        o->faults_spec = v;
    else if (strcmp(flag, "--faults-file") == 0)
        o->faults_file = v;
    else if (strcmp(flag, "--require-header") == 0) {
        if (!strchr(v, ':') || o->cfg.require_count == sizeof(o->require) / sizeof(o->require[0]))
            return bad(flag, v, "'NAME: VALUE', at most 8 times", err);
        o->require[o->cfg.require_count++] = v;
    } else
        rc = bp_error_set(err, BP_EINVAL, "unknown option '%s' (see blockpipe simnode --help)",
                          flag);
    return rc;
}

static void defaults(sim_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->cfg.chain = (bp_sim_params){.seed = 1,
                                   .length = 10000000,
                                   .txs_min = 200,
                                   .txs_max = 200,
                                   .block_time = 1,
                                   .chain_id = 1337};
    snprintf(o->host, sizeof(o->host), "127.0.0.1");
    o->cfg.host = o->host;
    o->cfg.port = 8545;
    o->cfg.endpoints = 1;
    o->cfg.faults = o->faults;
    o->cfg.require_headers = o->require;
}

static int parse_args(sim_opts *o, int argc, char **argv, bp_error *err)
{
    defaults(o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            o->help = true;
            return 0;
        }
        char flag[64];
        const char *eq = strchr(a, '=');
        const char *v;
        if (strncmp(a, "--", 2) != 0 || (eq && (size_t)(eq - a) >= sizeof(flag)))
            return bp_error_set(err, BP_EINVAL, "unexpected argument '%s'", a);
        if (eq) {
            snprintf(flag, sizeof(flag), "%.*s", (int)(eq - a), a);
            v = eq + 1;
        } else {
            if (i + 1 >= argc)
                return bp_error_set(err, BP_EINVAL, "%s: needs a value", a);
            snprintf(flag, sizeof(flag), "%s", a);
            v = argv[++i];
        }
        int rc = set_option(o, flag, v, err);
        if (rc != 0)
            return rc;
    }
    if (o->cfg.rollback_every > 0 && !o->cfg.arch)
        return bp_error_set(err, BP_EINVAL, "--rollback-every needs --chain-type arch");
    if (o->cfg.arch_ts && !o->cfg.arch)
        return bp_error_set(err, BP_EINVAL, "--arch-shape ts needs --chain-type arch");
    if (o->cfg.dkg_status && !o->cfg.arch)
        return bp_error_set(err, BP_EINVAL, "--dkg-status needs --chain-type arch");
    if (o->cfg.chain.reorg_every > 0 && !o->depth_set)
        o->cfg.chain.reorg_depth = 3;
    bp_sim_faults_clear(o->faults, o->cfg.endpoints);
    int rc =
        o->faults_file ? bp_sim_faults_load(o->faults_file, o->faults, o->cfg.endpoints, err) : 0;
    if (rc == 0 && o->faults_spec)
        rc = bp_sim_faults_parse(o->faults_spec, o->faults, o->cfg.endpoints, err);
    for (size_t i = 0; rc == 0 && o->cfg.arch && i < o->cfg.endpoints; i++)
        if (o->faults[i].bad != BP_SIM_BAD_NONE)
            rc = bp_error_set(err, BP_EINVAL,
                              "ep%zu: bad=%s breaks an EVM answer's rule: not "
                              "with --chain-type arch",
                              i + 1, bp_sim_bad_name(o->faults[i].bad));
    return rc;
}

/* Blocks SIGINT/SIGTERM in every thread (the server's inherit the mask) and waits for one. */
static void block_signals(sigset_t *set)
{
    /* A shell starts background jobs with SIGINT ignored; sigwait needs it deliverable. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int serve(sim_opts *o)
{
    bp_error err = {0};
    bp_sim_server srv;
    sigset_t set;
    block_signals(&set);
    if (bp_sim_server_start(&srv, &o->cfg, &err) != 0) {
        fprintf(stderr, "blockpipe simnode: %s\n", err.msg);
        return err.code == BP_EINVAL ? 2 : 1;
    }
    for (size_t i = 0; i < srv.n; i++)
        printf("listening on http://%s:%u\n", o->host, (unsigned)bp_sim_server_port(&srv, i));
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    bp_buf stats;
    bp_buf_init(&stats, 0);
    int rc = bp_sim_server_stats(&srv, &stats);
    bp_sim_server_stop(&srv);
    if (rc == 0)
        printf("%s\n", stats.data);
    fflush(stdout);
    bp_buf_release(&stats);
    return 0;
}

int bp_cmd_simnode(int argc, char **argv)
{
    sim_opts o;
    bp_error err = {0};
    if (parse_args(&o, argc, argv, &err) != 0) {
        fprintf(stderr, "blockpipe simnode: %s\n", err.msg);
        return 2;
    }
    if (o.help) {
        fputs(USAGE, stdout);
        return 0;
    }
    return serve(&o);
}
