/* test_fetch.c - rpc.c + fetch.c against real servers: anvil, replay_server.py, faultproxy.py. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>

#include "chain/fetch.h"
#include "testproc.h"
#include "chain/rpc.h"
#include "util/hex.h"

#define ANVIL_DEFAULT BP_SOURCE_DIR "/.local/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
#define TOOLS BP_SOURCE_DIR "/tests/tools"
#define STREAM_CASE BP_CONFORMANCE_DIR "/ethereum-etl/stream/blocks_1755634_1755635"
#define DEV_ACCOUNT "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
#define OTHER_ACCOUNT "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
/* Init code that emits LOG1(topic 0x2a) and deploys an empty contract. */
#define LOGGING_INIT_CODE "0x602a60006000a100"

typedef bp_test_server server;

static char g_tmp[256];
static server g_anvil, g_replay;
static char g_anvil_url[64], g_replay_url[64];
static uint64_t g_tx_block; /* anvil block holding 3 transfers + 1 creation */

/* ---- process helpers ------------------------------------------------------------------ */

static void path_in_tmp(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", g_tmp, name);
}

static int server_start(server *s, const char *name, char *const argv[], const char *marker)
{
    char log_path[512];
    path_in_tmp(log_path, sizeof(log_path), name);
    return bp_test_server_start(s, log_path, argv, marker);
}

static void server_stop(server *s)
{
    bp_test_server_stop(s, SIGTERM);
}

static void rm_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char child[1024];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode))
            rm_tree(child);
        else
            unlink(child);
    }
    if (d)
        closedir(d);
    rmdir(path);
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = f ? calloc(1, 1 << 20) : NULL;
    if (buf)
        fread(buf, 1, (1 << 20) - 1, f);
    if (f)
        fclose(f);
    return buf;
}

static int copy_file(const char *from, const char *to)
{
    char *text = read_file(from);
    int rc = text ? write_file(to, text) : -1;
    free(text);
    return rc;
}

/* ---- rpc helpers ---------------------------------------------------------------------- */

static bp_rpc *rpc_open(const char *url, long timeout_ms, size_t max_bytes)
{
    bp_rpc *rpc = NULL;
    bp_error err = {0};
    bp_rpc_config cfg = {.url = url, .timeout_ms = timeout_ms, .max_response_bytes = max_bytes};
    int rc = bp_rpc_new(&rpc, &cfg, &err);
    if (rc != 0)
        fail_msg("bp_rpc_new(%s): %s", url, err.msg);
    return rpc;
}

/* A call whose result is ignored; fails the test on any error. */
static void call_ok(bp_rpc *rpc, const char *method, const char *params)
{
    yajl_val root, result;
    bp_error err = {0};
    if (bp_rpc_call(rpc, method, params, &root, &result, &err) != 0)
        fail_msg("%s %s: %s", method, params, err.msg);
    bp_json_free(root);
}

static void send_tx(bp_rpc *rpc, const char *to, const char *data)
{
    char params[512];
    if (to)
        snprintf(params, sizeof(params),
                 "[{\"from\":\"" DEV_ACCOUNT "\",\"to\":\"%s\",\"value\":\"0x1\"}]", to);
    else
        snprintf(params, sizeof(params), "[{\"from\":\"" DEV_ACCOUNT "\",\"data\":\"%s\"}]", data);
    call_ok(rpc, "eth_sendTransaction", params);
}

/* Mines one block with 3 transfers and one contract creation that emits a log. */
static uint64_t mine_tx_block(bp_rpc *rpc)
{
    uint64_t n = 0;
    bp_error err = {0};
    call_ok(rpc, "evm_setAutomine", "[false]");
    for (int i = 0; i < 3; i++)
        send_tx(rpc, OTHER_ACCOUNT, NULL);
    send_tx(rpc, NULL, LOGGING_INIT_CODE);
    call_ok(rpc, "evm_mine", "[]");
    call_ok(rpc, "evm_setAutomine", "[true]");
    call_ok(rpc, "evm_mine", "[]"); /* an empty block on top */
    if (bp_rpc_block_number(rpc, &n, &err) != 0)
        fail_msg("eth_blockNumber: %s", err.msg);
    return n - 1;
}

/* ---- group setup ---------------------------------------------------------------------- */

static int start_anvil(void)
{
    const char *anvil = bp_test_anvil_path();
    if (!anvil)
        return 0; /* the tests that need it fail, naming it (REQUIRE_ANVIL); the others run */
    char *argv[] = {(char *)anvil, "--host", "127.0.0.1", "--port", "0", NULL};
    if (server_start(&g_anvil, "anvil.log", argv, "Listening on 127.0.0.1:") != 0)
        return -1;
    snprintf(g_anvil_url, sizeof(g_anvil_url), "http://127.0.0.1:%d", g_anvil.port);
    bp_rpc *rpc = rpc_open(g_anvil_url, 10000, 0);
    call_ok(rpc, "evm_mine", "[]"); /* an empty block 1 */
    g_tx_block = mine_tx_block(rpc);
    bp_rpc_free(rpc);
    return 0;
}

static int start_replay(const char *folder, const char *request_log)
{
    char *argv[] = {"python3",       TOOLS "/replay_server.py", (char *)folder,
                    "--request-log", (char *)request_log,       NULL};
    if (server_start(&g_replay, "replay.log", argv, "PORT ") != 0)
        return -1;
    snprintf(g_replay_url, sizeof(g_replay_url), "http://127.0.0.1:%d", g_replay.port);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    bp_error err;
    char log[512];
    snprintf(g_tmp, sizeof(g_tmp), "/tmp/bp_test_fetch.XXXXXX");
    if (!mkdtemp(g_tmp) || bp_rpc_global_init(&err) != 0)
        return -1;
    path_in_tmp(log, sizeof(log), "requests.jsonl");
    if (start_replay(STREAM_CASE, log) != 0)
        return -1;
    return start_anvil();
}

static int group_teardown(void **state)
{
    (void)state;
    server_stop(&g_anvil);
    server_stop(&g_replay);
    bp_rpc_global_cleanup();
    rm_tree(g_tmp);
    return 0;
}

/* A missing anvil is a failure, not a skip: `make test` installs it. */
#define REQUIRE_ANVIL()                                                                            \
    do {                                                                                           \
        if (g_anvil.port == 0)                                                                     \
            fail_msg("anvil not found (neither $BP_ANVIL nor %s is executable): run "              \
                     "scripts/install-deps.sh --test",                                             \
                     ANVIL_DEFAULT);                                                               \
    } while (0)

#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        if (!strstr((hay), (needle)))                                                              \
            fail_msg("expected \"%s\" in \"%s\"", (needle), (hay));                                \
    } while (0)

/* ---- tests: list parsing -------------------------------------------------------------- */

static void test_parse_list(void **state)
{
    (void)state;
    unsigned what = 0;
    bp_error err = {0};
    assert_int_equal(bp_fetch_parse_list("logs, transactions", &what, &err), 0);
    assert_int_equal(what, BP_FETCH_BLOCKS | BP_FETCH_LOGS | BP_FETCH_TRANSACTIONS);
    assert_int_equal(bp_fetch_parse_list("blocks,transactions,receipts,logs", &what, &err), 0);
    assert_int_equal(what, BP_FETCH_ALL);
    assert_int_equal(bp_fetch_parse_list("", &what, &err), 0);
    assert_int_equal(what, BP_FETCH_BLOCKS);
    assert_int_equal(bp_fetch_parse_list("blocks,traces", &what, &err), BP_EINVAL);
    assert_contains(err.msg, "'traces'");
}

/* ---- tests: anvil --------------------------------------------------------------------- */

static void test_anvil_chain_id_and_head(void **state)
{
    (void)state;
    REQUIRE_ANVIL();
    uint64_t id = 0, head = 0;
    bp_error err = {0};
    bp_rpc *rpc = rpc_open(g_anvil_url, 10000, 0);
    assert_int_equal(bp_rpc_chain_id(rpc, &id, &err), 0);
    assert_int_equal(id, 31337);
    assert_int_equal(bp_rpc_block_number(rpc, &head, &err), 0);
    assert_int_equal(head, g_tx_block + 1);
    bp_rpc_free(rpc);
}

static void test_anvil_header(void **state)
{
    (void)state;
    REQUIRE_ANVIL();
    bp_header latest, prev;
    bp_error err = {0};
    bp_rpc *rpc = rpc_open(g_anvil_url, 10000, 0);
    assert_int_equal(bp_rpc_header(rpc, UINT64_MAX, &latest, &err), 0);
    assert_int_equal(latest.number, g_tx_block + 1);
    assert_int_equal(bp_rpc_header(rpc, g_tx_block, &prev, &err), 0);
    assert_string_equal(latest.parent_hash, prev.hash);
    assert_true(prev.timestamp > 0);
    assert_int_equal(bp_rpc_header(rpc, 999999, &prev, &err), BP_ENOTFOUND);
    assert_contains(err.msg, "block 999999: ");
    bp_rpc_free(rpc);
}

static void check_tx_block(const bp_block *b)
{
    assert_int_equal(b->number, g_tx_block);
    assert_int_equal(b->tx_count, 4);
    assert_int_equal(b->transaction_count, 4);
    assert_true(b->has_receipts);
    assert_int_equal(b->log_count, 1);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(b->txs[i].to_address, OTHER_ACCOUNT);
        assert_int_equal(b->txs[i].receipt_gas_used, 21000);
        assert_true(b->txs[i].receipt_status.set && b->txs[i].receipt_status.v == 1);
    }
    const bp_tx *create = &b->txs[3];
    assert_null(create->to_address);
    assert_non_null(create->receipt_contract_address);
    assert_int_equal(create->log_count, 1);
    assert_string_equal(b->logs[create->log_offset].address, create->receipt_contract_address);
    assert_int_equal(b->logs[0].topic_count, 1);
    assert_string_equal(b->logs[0].topics[0],
                        "0x000000000000000000000000000000000000000000000000000000000000002a");
}

static void test_anvil_fetch_block_receipts(void **state)
{
    (void)state;
    REQUIRE_ANVIL();
    bp_fetch_shared shared;
    bp_block *b = NULL;
    bp_header h;
    bp_error err = {0};
    bp_rpc *rpc = rpc_open(g_anvil_url, 10000, 0);
    bp_fetch_shared_init(&shared, BP_FETCH_ALL);
    if (bp_fetch_block(rpc, &shared, g_tx_block, &b, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(atomic_load(&bp_rpc_limits_of(rpc)->no_block_receipts),
                     0); /* anvil has the method */
    check_tx_block(b);
    assert_int_equal(bp_rpc_header(rpc, g_tx_block, &h, &err), 0);
    assert_string_equal(b->hash, h.hash);
    bp_block_free(b);
    bp_rpc_free(rpc);
}

/* The eth_getTransactionReceipt path must give the same block, also in chunks of 1. */
static void test_anvil_fetch_fallback(void **state)
{
    (void)state;
    REQUIRE_ANVIL();
    bp_fetch_shared shared;
    bp_block *b = NULL;
    bp_error err = {0};
    bp_rpc *rpc = rpc_open(g_anvil_url, 10000, 0);
    bp_fetch_shared_init(&shared, BP_FETCH_ALL);
    atomic_store(&bp_rpc_limits_of(rpc)->no_block_receipts, 1);
    shared.receipt_batch = 3; /* 4 txs: chunks of 3 + 1 */
    if (bp_fetch_block(rpc, &shared, g_tx_block, &b, &err) != 0)
        fail_msg("%s", err.msg);
    check_tx_block(b);
    bp_block_free(b);
    bp_rpc_free(rpc);
}

static void test_anvil_fetch_by_hash(void **state)
{
    (void)state;
    REQUIRE_ANVIL();
    bp_fetch_shared shared;
    bp_block *b = NULL;
    bp_header h;
    bp_error err = {0};
    bp_rpc *rpc = rpc_open(g_anvil_url, 10000, 0);
    bp_fetch_shared_init(&shared, BP_FETCH_ALL);
    assert_int_equal(bp_rpc_header(rpc, g_tx_block, &h, &err), 0);
    if (bp_fetch_block_by_hash(rpc, &shared, h.hash, &b, &err) != 0)
        fail_msg("%s", err.msg);
    check_tx_block(b);
    bp_block_free(b);
    assert_int_equal(bp_fetch_block_by_hash(rpc, &shared, "0x12", &b, &err), BP_EINVAL);
    assert_null(b);
    const char *unknown = "0x00000000000000000000000000000000000000000000000000000000000000aa";
    assert_int_equal(bp_fetch_block_by_hash(rpc, &shared, unknown, &b, &err), BP_ENOTFOUND);
    assert_contains(err.msg, "block 0x00000000");
    bp_rpc_free(rpc);
}

static void test_anvil_missing_block_and_cap(void **state)
{
    (void)state;
    REQUIRE_ANVIL();
    bp_fetch_shared shared;
    bp_block *b = NULL;
    bp_error err = {0};
    bp_rpc *rpc = rpc_open(g_anvil_url, 10000, 0);
    bp_fetch_shared_init(&shared, BP_FETCH_ALL);
    assert_int_equal(bp_fetch_block(rpc, &shared, 123456, &b, &err), BP_ENOTFOUND);
    assert_null(b);
    assert_contains(err.msg, "block 123456: ");
    bp_rpc_free(rpc);

    rpc = rpc_open(g_anvil_url, 10000, 300); /* a block answer is larger than 300 bytes */
    assert_int_equal(bp_fetch_block(rpc, &shared, g_tx_block, &b, &err), BP_ETOOBIG);
    assert_contains(err.msg, "cap of 300 bytes");
    assert_true(strncmp(err.msg, "block ", 6) == 0);
    bp_rpc_free(rpc);
}

/* ---- tests: recorded mainnet answers (replay_server.py) ------------------------------- */

static int count_in_file(const char *path, const char *needle)
{
    char *text = read_file(path);
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, needle)) != NULL; p++)
        n++;
    free(text);
    return n;
}

/* The replay answers eth_getBlockReceipts with -32601: the fallback must take over, once. */
static void test_replay_fallback(void **state)
{
    (void)state;
    bp_fetch_shared shared;
    bp_block *b = NULL;
    bp_error err = {0};
    char log[512];
    path_in_tmp(log, sizeof(log), "requests.jsonl");
    bp_rpc *rpc = rpc_open(g_replay_url, 10000, 0);
    bp_fetch_shared_init(&shared, BP_FETCH_ALL);
    shared.receipt_batch = 1;
    if (bp_fetch_block(rpc, &shared, 1755635, &b, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(atomic_load(&bp_rpc_limits_of(rpc)->no_block_receipts), 1);
    assert_int_equal(b->tx_count, 2);
    assert_true(b->has_receipts);
    assert_int_equal(b->log_count, 2);
    assert_string_equal(b->txs[0].rare->receipt_root,
                        "0x4db3f06ff4e7283ab1187045ca78f4bd713b0737640180377b4d4a2e9a80c235");
    assert_false(b->txs[0].receipt_status.set);
    assert_int_equal(b->txs[1].receipt_cumulative_gas_used, 57418);
    bp_block_free(b);
    if (bp_fetch_block(rpc, &shared, 1755634, &b, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(b->tx_count, 0);
    bp_block_free(b);
    /* Asked once, then remembered. Numbers are unpadded lower-case hex (the file names). */
    assert_int_equal(count_in_file(log, "\"method\": \"eth_getBlockReceipts\""), 1);
    assert_int_equal(
        count_in_file(
            log,
            "\"file\": \"web3_response.eth_getBlockByNumber_0x1ac9f3_true.json\", \"found\": true"),
        1);
    bp_rpc_free(rpc);
}

/* Only blocks + transactions: no receipt method may be called at all. */
static void test_replay_no_receipts_wanted(void **state)
{
    (void)state;
    bp_fetch_shared shared;
    bp_block *b = NULL;
    bp_error err = {0};
    char log[512];
    path_in_tmp(log, sizeof(log), "requests.jsonl");
    unlink(log);
    bp_rpc *rpc = rpc_open(g_replay_url, 10000, 0);
    bp_fetch_shared_init(&shared, BP_FETCH_BLOCKS | BP_FETCH_TRANSACTIONS);
    if (bp_fetch_block(rpc, &shared, 1755635, &b, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(b->tx_count, 2);
    assert_false(b->has_receipts);
    bp_block_free(b);
    assert_int_equal(count_in_file(log, "Receipt"), 0);
    assert_int_equal(count_in_file(log, "\"method\""), 1);
    bp_rpc_free(rpc);
}

/* A folder where one receipt is a JSON null (the node has not indexed it yet). */
static void test_replay_null_receipt(void **state)
{
    (void)state;
    server replay = {0};
    char dir[512], path[700], url[64];
    bp_fetch_shared shared;
    bp_block *b = NULL;
    bp_error err = {0};
    path_in_tmp(dir, sizeof(dir), "null_receipt");
    assert_int_equal(mkdir(dir, 0700), 0);
    const char *block = "web3_response.eth_getBlockByNumber_0x1ac9f3_true.json";
    const char *r0 = "web3_response.eth_getTransactionReceipt_"
                     "0x2e3dcd051a91d3a694f6b8de2ac4b5fe7acdba55f58bcf8471ff00d4a430074d.json";
    const char *r1 = "web3_response.eth_getTransactionReceipt_"
                     "0x9a5437ec71b74ecf5930b406908ac6999966d38a86d1534b7190ece7599095eb.json";
    char from[700];
    snprintf(from, sizeof(from), "%s/%s", STREAM_CASE, block);
    snprintf(path, sizeof(path), "%s/%s", dir, block);
    assert_int_equal(copy_file(from, path), 0);
    snprintf(from, sizeof(from), "%s/%s", STREAM_CASE, r0);
    snprintf(path, sizeof(path), "%s/%s", dir, r0);
    assert_int_equal(copy_file(from, path), 0);
    snprintf(path, sizeof(path), "%s/%s", dir, r1);
    assert_int_equal(write_file(path, "{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":null}"), 0);

    char *argv[] = {"python3", TOOLS "/replay_server.py", dir, NULL};
    assert_int_equal(server_start(&replay, "replay_null.log", argv, "PORT "), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", replay.port);
    bp_rpc *rpc = rpc_open(url, 10000, 0);
    bp_fetch_shared_init(&shared, BP_FETCH_ALL);
    assert_int_equal(bp_fetch_block(rpc, &shared, 1755635, &b, &err), BP_ENOTFOUND);
    assert_null(b);
    assert_string_equal(err.msg, "block 1755635: receipt of tx 0x9a5437ec71b74ecf5930b406908ac"
                                 "6999966d38a86d1534b7190ece7599095eb not available yet");
    /* A block the node does not have: a JSON-RPC error other than "method not found". */
    assert_int_equal(bp_fetch_block(rpc, &shared, 7, &b, &err), BP_ERPC);
    assert_contains(err.msg, "block 7: ");
    assert_contains(err.msg, "no recording for");
    bp_rpc_free(rpc);
    server_stop(&replay);
}

/* A gateway that refuses the whole batch because of eth_getBlockReceipts: one error object. */
static void test_replay_whole_batch_rejected(void **state)
{
    (void)state;
    server replay = {0};
    char url[64];
    bp_fetch_shared shared;
    bp_block *b = NULL;
    bp_error err = {0};
    char *argv[] = {"python3", TOOLS "/replay_server.py", STREAM_CASE, "--reject-batch", NULL};
    assert_int_equal(server_start(&replay, "replay_reject.log", argv, "PORT "), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", replay.port);
    bp_rpc *rpc = rpc_open(url, 10000, 0);
    bp_fetch_shared_init(&shared, BP_FETCH_ALL);
    if (bp_fetch_block(rpc, &shared, 1755635, &b, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(atomic_load(&bp_rpc_limits_of(rpc)->no_block_receipts), 1);
    assert_true(b->has_receipts);
    assert_int_equal(b->log_count, 2);
    bp_block_free(b);
    bp_rpc_free(rpc);
    server_stop(&replay);
}

/* ---- tests: transport and HTTP faults (faultproxy.py) --------------------------------- */

typedef struct fault_case {
    const char *kind;
    int code;
    const char *text; /* expected in the message */
} fault_case;

static void test_fault_mapping(void **state)
{
    (void)state;
    static const fault_case cases[] = {
        {"garbage", BP_EPARSE, ""},
        {"truncate", BP_EPARSE, ""},
        {"http500", BP_EHTTP, "HTTP 500: internal server error (injected"},
        {"429", BP_ERATELIMIT, "HTTP 429"},
        {"reset", BP_ETRANSPORT, "POST http://127.0.0.1:"},
        {"hang", BP_ETIMEOUT, "timed out"},
        {"ok", 0, ""},
    };
    server proxy = {0};
    char upstream[80], url[64], stats[512];
    path_in_tmp(stats, sizeof(stats), "faults.json");
    snprintf(upstream, sizeof(upstream), "%s", g_replay_url);
    char *argv[] = {"python3",
                    TOOLS "/faultproxy.py",
                    "--upstream",
                    upstream,
                    "--faults",
                    "garbage,truncate,http500,429,reset,hang,ok",
                    "--every",
                    "1",
                    "--hang-seconds",
                    "5",
                    "--stats-file",
                    stats,
                    NULL};
    assert_int_equal(server_start(&proxy, "faultproxy.log", argv, "PORT "), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", proxy.port);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* A fresh connection per case: on a reused one curl silently retries a reset. */
        bp_rpc *rpc = rpc_open(url, 1000, 0);
        bp_error err = {0};
        uint64_t head = 0;
        int rc = bp_rpc_block_number(rpc, &head, &err);
        if (rc != cases[i].code || !strstr(err.msg, cases[i].text))
            fail_msg("fault %s: got %d \"%s\", want %d with \"%s\"", cases[i].kind, rc, err.msg,
                     cases[i].code, cases[i].text);
        bp_rpc_free(rpc);
    }
    char *text = read_file(stats);
    assert_non_null(text);
    assert_contains(text, "\"hang\": 1");
    free(text);
    server_stop(&proxy);
}

/* bp_rpc_post hands Retry-After to the caller, and fetch errors keep "block N: " first. */
static void test_fault_retry_after_and_prefix(void **state)
{
    (void)state;
    server proxy = {0};
    char upstream[80], url[64];
    snprintf(upstream, sizeof(upstream), "%s", g_replay_url);
    char *argv[] = {"python3",  TOOLS "/faultproxy.py", "--upstream", upstream,
                    "--faults", "429,http500",          "--every",    "1",
                    NULL};
    assert_int_equal(server_start(&proxy, "faultproxy2.log", argv, "PORT "), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", proxy.port);
    bp_rpc *rpc = rpc_open(url, 5000, 0);
    bp_buf resp;
    bp_error err = {0};
    long retry_after = -1;
    const char *body = "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"eth_chainId\",\"params\":[]}";
    bp_buf_init(&resp, 0);
    assert_int_equal(bp_rpc_post(rpc, body, strlen(body), &resp, &retry_after, &err),
                     BP_ERATELIMIT);
    assert_int_equal(retry_after, 1);
    bp_buf_release(&resp);
    bp_fetch_shared shared;
    bp_block *b = NULL;
    bp_fetch_shared_init(&shared, BP_FETCH_ALL);
    assert_int_equal(bp_fetch_block(rpc, &shared, 1755635, &b, &err), BP_EHTTP);
    assert_true(strncmp(err.msg, "block 1755635: POST http://127.0.0.1:", 37) == 0);
    assert_contains(err.msg, "HTTP 500");
    bp_rpc_free(rpc);
    server_stop(&proxy);
}

static void test_connection_refused(void **state)
{
    (void)state;
    /* Port 1 on loopback: nothing listens there without root. */
    bp_rpc *rpc = rpc_open("http://user:secret@127.0.0.1:1/", 2000, 0);
    uint64_t id;
    bp_error err = {0};
    assert_int_equal(bp_rpc_chain_id(rpc, &id, &err), BP_ETRANSPORT);
    assert_contains(err.msg, "http://user:***@127.0.0.1:1/");
    assert_null(strstr(err.msg, "secret"));
    bp_rpc_free(rpc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_list),
        cmocka_unit_test(test_anvil_chain_id_and_head),
        cmocka_unit_test(test_anvil_header),
        cmocka_unit_test(test_anvil_fetch_block_receipts),
        cmocka_unit_test(test_anvil_fetch_fallback),
        cmocka_unit_test(test_anvil_fetch_by_hash),
        cmocka_unit_test(test_anvil_missing_block_and_cap),
        cmocka_unit_test(test_replay_fallback),
        cmocka_unit_test(test_replay_no_receipts_wanted),
        cmocka_unit_test(test_replay_null_receipt),
        cmocka_unit_test(test_replay_whole_batch_rejected),
        cmocka_unit_test(test_fault_mapping),
        cmocka_unit_test(test_fault_retry_after_and_prefix),
        cmocka_unit_test(test_connection_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
