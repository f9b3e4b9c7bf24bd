/* test_arch_decode.c - the Arch decoder on JSON from simnode --chain-type arch in both its
 * shapes (get_block, get_processed_transaction and every WebSocket topic, a rollback and its
 * re-apply), on the JSON fixtures of arch-sdk's sdk/tests/rpc_wire_format.rs and event.rs
 * tests (the wire format a current node answers), on the book's and the TypeScript SDK's
 * variants, and malformed input refused with the bad field named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arch/arch_decode.h"
#include "blockpipe/error.h"
#include "chain/json.h"
#include "sim/arch.h"
#include "sim/chain.h"
#include "sim/control.h"
#include "sim/node.h"
#include "util/buf.h"

#define T0 1000.0
#define HEAD 40

typedef struct fixture {
    bp_sim_chain chain;
    bp_sim_arch arch;
    bp_buf out;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    bp_error err = {0};
    bp_sim_params p = {.seed = 7, .length = HEAD + 1, .txs_min = 1, .txs_max = 6, .chain_id = 1};
    assert_int_equal(bp_sim_chain_init(&f->chain, &p, T0, &err), 0);
    assert_int_equal(bp_sim_arch_init(&f->arch, &f->chain, 0, T0, &err), 0);
    bp_buf_init(&f->out, 0);
    *state = f;
    return 0;
}

/* simnode --arch-shape ts: the TypeScript SDK's shapes. */
static int setup_ts(void **state)
{
    setup(state);
    ((fixture *)*state)->arch.ts_shape = true;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    bp_buf_release(&f->out);
    bp_sim_arch_release(&f->arch);
    bp_sim_chain_release(&f->chain);
    free(f);
    return 0;
}

/* simnode's answer to one call, as text in f->out. */
static const char *ask(fixture *f, const char *method, const char *params)
{
    char body[512];
    bp_sim_scratch s;
    snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\",\"params\":%s}",
             method, params);
    bp_sim_scratch_init(&s);
    bp_sim_control ctl = {.chain = &f->chain, .arch = &f->arch};
    bp_sim_request r = {
        .chain = &f->chain, .head = HEAD, .scratch = &s, .arch = &f->arch, .control = &ctl};
    assert_int_equal(bp_sim_answer(&r, body, strlen(body), &f->out), 0);
    bp_sim_scratch_release(&s);
    return f->out.data;
}

static void block_hash(fixture *f, uint64_t n, char hash[BP_ARCH_HEX])
{
    char p[32];
    yajl_val root, res;
    bp_error err = {0};
    snprintf(p, sizeof(p), "[%llu]", (unsigned long long)n);
    const char *a = ask(f, "get_block_hash", p);
    assert_int_equal(bp_arch_result(a, strlen(a), "get_block_hash", &root, &res, &err), 0);
    assert_true(YAJL_IS_STRING(res));
    assert_int_equal(strlen(res->u.string), 64);
    memcpy(hash, res->u.string, BP_ARCH_HEX);
    bp_json_free(root);
}

static void get_block(fixture *f, uint64_t n, bp_arch_block *b)
{
    char hash[BP_ARCH_HEX], p[80];
    yajl_val root, res;
    bp_error err = {0};
    block_hash(f, n, hash);
    snprintf(p, sizeof(p), "[\"%s\"]", hash);
    const char *a = ask(f, "get_block", p);
    assert_int_equal(bp_arch_result(a, strlen(a), "get_block", &root, &res, &err), 0);
    int rc = bp_arch_decode_block(res, hash, b, &err);
    if (rc != 0)
        fail_msg("%s", err.msg);
    bp_json_free(root);
}

/* Blocks decode with their parent links, heights and counts; every tx decodes. */
static void test_blocks_and_txs(void **state)
{
    fixture *f = *state;
    bp_arch_block prev = {0};
    size_t failed = 0, with_btc = 0, txs = 0;
    for (uint64_t n = 0; n <= HEAD; n++) {
        bp_arch_block b;
        bp_error err = {0};
        get_block(f, n, &b);
        assert_int_equal(b.height, n);
        assert_int_equal(b.txid_count, b.tx_count);
        assert_true(b.bitcoin_height >= 850000 && !b.no_bitcoin_height);
        /* seconds: the Rust shape's milliseconds divided down, the TS shape's as sent */
        assert_true(b.timestamp >= 1700000000 && b.timestamp < 1800000000);
        assert_int_equal(b.merkle_root[0] != '\0', f->arch.ts_shape); /* block.ts only */
        if (n > 0)
            assert_string_equal(b.prev_hash, prev.hash);
        for (size_t i = 0; i < b.txid_count; i++) {
            yajl_val root, res;
            bp_arch_tx t;
            char p[80];
            snprintf(p, sizeof(p), "\"%s\"", b.txids[i]); /* the book's bare string */
            const char *a = ask(f, "get_processed_transaction", p);
            assert_int_equal(bp_arch_result(a, strlen(a), "gpt", &root, &res, &err), 0);
            if (bp_arch_decode_tx(res, b.txids[i], n, &t, &err) != 0)
                fail_msg("%s", err.msg);
            assert_string_equal(t.txid, b.txids[i]);
            assert_int_equal(t.account_count, 2);        /* signer and destination */
            assert_int_equal(strlen(t.program_ids), 68); /* ["64 hex"] */
            assert_false(t.rolled_back);
            failed += t.status == BP_ARCH_FAILED;
            assert_true(t.status == BP_ARCH_FAILED ? t.failure != NULL : t.failure == NULL);
            with_btc += strcmp(t.bitcoin_txids, "[]") != 0;
            txs++;
            bp_arch_tx_free(&t);
            bp_json_free(root);
        }
        bp_arch_block_free(&prev);
        prev = b;
    }
    bp_arch_block_free(&prev);
    assert_true(txs > HEAD);
    assert_true(with_btc > 0 && with_btc < txs);
    (void)failed;
}

/* An unknown block is BP_ENOTFOUND (the SDK's 404). */
static void test_not_found(void **state)
{
    fixture *f = *state;
    yajl_val root, res;
    bp_error err = {0};
    const char *a = ask(f, "get_block",
                        "[\"" /* 64 digits */
                        "00000000000000000000000000000000"
                        "00000000000000000000000000000000\"]");
    assert_int_equal(bp_arch_result(a, strlen(a), "get_block", &root, &res, &err), BP_ENOTFOUND);
    assert_non_null(strstr(err.msg, "404"));
    bp_json_free(root);
}

typedef struct collected {
    char *msg[4096];
    unsigned topic[4096];
    size_t n;
} collected;

static int collect(void *ud, unsigned topic, const char *msg, size_t len)
{
    collected *c = ud;
    assert_true(c->n < 4096);
    c->msg[c->n] = strndup(msg, len);
    c->topic[c->n++] = topic;
    return 0;
}

static void collected_free(collected *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->msg[i]);
    c->n = 0;
}

/* Every topic's events decode; block events name the block, tx events its transactions. */
static void test_events(void **state)
{
    fixture *f = *state;
    static collected c;
    bp_buf s;
    bp_buf_init(&s, 0);
    size_t seen[BP_ARCH_T_COUNT] = {0};
    for (uint64_t n = 1; n <= 32; n++) {
        bp_sim_block b;
        bp_error err = {0};
        bp_sim_block_init(&b);
        assert_int_equal(bp_sim_block_gen(&f->chain, n, 0, &b, &err), 0);
        assert_int_equal(bp_sim_arch_block_events(&f->arch, &b, 0x3f, &s, collect, &c), 0);
        bp_arch_block ab;
        get_block(f, n, &ab);
        for (size_t i = 0; i < c.n; i++) {
            bp_arch_event e;
            if (bp_arch_decode_event(c.msg[i], strlen(c.msg[i]), 1.5, &e, &err) != 0)
                fail_msg("%s: %s", err.msg, c.msg[i]);
            assert_int_equal((unsigned)e.topic, c.topic[i]);
            assert_non_null(e.data);
            assert_memory_equal(e.key, bp_arch_topic_name(e.topic),
                                strlen(bp_arch_topic_name(e.topic)));
            if (e.topic == BP_ARCH_T_BLOCK)
                assert_string_equal(e.hash, ab.hash);
            if (e.topic == BP_ARCH_T_TRANSACTION || e.topic == BP_ARCH_T_ACCOUNT_UPDATE) {
                bool found = false;
                for (size_t k = 0; k < ab.txid_count; k++)
                    found |= strcmp(ab.txids[k], e.hash) == 0;
                assert_true(found);
                assert_int_equal(e.block_height, n);
            }
            seen[e.topic]++;
            bp_arch_event_free(&e);
        }
        bp_arch_block_free(&ab);
        collected_free(&c);
        bp_sim_block_release(&b);
    }
    assert_true(seen[BP_ARCH_T_BLOCK] == 32 && seen[BP_ARCH_T_TRANSACTION] > 0 &&
                seen[BP_ARCH_T_ACCOUNT_UPDATE] == 2 * seen[BP_ARCH_T_TRANSACTION] &&
                seen[BP_ARCH_T_DKG] == 2);
    bp_buf_release(&s);
}

/* A NUL in an event's string is stored as U+FFFD (PostgreSQL's jsonb refuses \u0000); an
 * escaped backslash followed by u0000 is text, kept; the key is made from what was sent. */
static void test_event_nul(void **state)
{
    (void)state;
    const char *a = "{\"topic\":\"dkg\",\"data\":{\"status\":\"x\\u0000y\",\"n\":\"\\\\u0000\"}}";
    const char *b = "{\"topic\":\"dkg\",\"data\":{\"status\":\"xy\",\"n\":\"\\\\u0000\"}}";
    bp_arch_event e, f;
    bp_error err = {0};
    assert_int_equal(bp_arch_decode_event(a, strlen(a), 1.0, &e, &err), 0);
    assert_int_equal(bp_arch_decode_event(b, strlen(b), 1.0, &f, &err), 0);
    assert_null(strstr(e.data, "x\\u0000"));
    assert_non_null(strstr(e.data, "x\\ufffdy"));
    assert_non_null(strstr(e.data, "\\\\u0000"));
    assert_string_not_equal(e.key, f.key);
    bp_arch_event_free(&e);
    bp_arch_event_free(&f);
}

/* A rollback: its event's hashes show rolled back in get_processed_transaction; the
 * re-apply names the same and brings notRolledback back. Same event twice: same key. */
static void test_rollback(void **state)
{
    fixture *f = *state;
    static collected c;
    bp_buf s;
    bp_error err = {0};
    bp_buf_init(&s, 0);
    for (unsigned j = 0; j < 2; j++) {
        assert_int_equal(bp_sim_arch_episode(&f->arch, T0), 0);
        assert_int_equal(bp_sim_arch_episode_event(&f->arch, j, 0x3f, &s, collect, &c), 0);
        assert_int_equal(c.n, 1);
        bp_arch_event e, e2;
        assert_int_equal(bp_arch_decode_event(c.msg[0], strlen(c.msg[0]), 2.0, &e, &err), 0);
        assert_int_equal(bp_arch_decode_event(c.msg[0], strlen(c.msg[0]), 3.0, &e2, &err), 0);
        assert_string_equal(e.key, e2.key);
        assert_int_equal(e.topic, j == 0 ? BP_ARCH_T_ROLLEDBACK : BP_ARCH_T_REAPPLIED);
        assert_true(e.hash_count > 0);
        for (size_t i = 0; i < e.hash_count; i++) {
            yajl_val root, res;
            bp_arch_tx t;
            char p[80];
            snprintf(p, sizeof(p), "[\"%s\"]", e.hashes[i]);
            const char *a = ask(f, "get_processed_transaction", p);
            assert_int_equal(bp_arch_result(a, strlen(a), "gpt", &root, &res, &err), 0);
            assert_int_equal(bp_arch_decode_tx(res, e.hashes[i], e.block_height, &t, &err), 0);
            assert_int_equal(t.rolled_back, j == 0);
            assert_true(j == 0 ? t.rollback_reason != NULL : t.rollback_reason == NULL);
            bp_arch_tx_free(&t);
            bp_json_free(root);
        }
        bp_arch_event_free(&e);
        bp_arch_event_free(&e2);
        collected_free(&c);
    }
    bp_buf_release(&s);
}

#define H64 "1111111111111111111111111111111111111111111111111111111111111111"

/* The book's get_processed_transaction example: status "Confirmed", bitcoin_txids strings,
 * no rollback_status. */
static void test_book_shapes(void **state)
{
    (void)state;
    static const char tx[] =
        "{\"runtime_transaction\":{\"version\":0,\"signatures\":[],\"message\":{\"header\":"
        "{\"num_required_signatures\":1,\"num_readonly_signed_accounts\":0,"
        "\"num_readonly_unsigned_accounts\":1},\"account_keys\":[\"0x" H64 "\",\"" H64
        "\"],\"recent_blockhash\":[],\"instructions\":[{\"program_id_index\":1,\"accounts\":[0],"
        "\"data\":[]}]}},\"status\":\"Confirmed\",\"bitcoin_txids\":[\"" H64 "\",\"" H64 "\"]}";
    bp_error err = {0};
    yajl_val v = bp_json_parse(tx, strlen(tx), NULL, 0);
    bp_arch_tx t;
    assert_int_equal(bp_arch_decode_tx(v, H64, 9, &t, &err), 0);
    assert_int_equal(t.status, BP_ARCH_PROCESSED);
    assert_int_equal(t.account_count, 1);
    assert_string_equal(t.program_ids, "[\"" H64 "\"]");
    assert_string_equal(t.bitcoin_txids, "[\"" H64 "\",\"" H64 "\"]");
    bp_arch_tx_free(&t);
    bp_json_free(v);
    static const char ev[] = "{\"topic\":\"transaction\",\"data\":{\"hash\":\"" H64
                             "\",\"status\":{\"Failed\":\"out of funds\"},\"program_ids\":[],"
                             "\"block_height\":3}}";
    bp_arch_event e;
    assert_int_equal(bp_arch_decode_event(ev, strlen(ev), 0, &e, &err), 0);
    assert_int_equal(e.status, BP_ARCH_FAILED);
    assert_string_equal(e.failure, "out of funds");
    bp_arch_event_free(&e);
}

/* ---- arch-sdk's wire format (sdk/tests/rpc_wire_format.rs, sdk/src/types/event.rs tests):
 * their JSON values written out here (serde's Hash / Pubkey: arrays of 32 byte numbers) ---- */

#define B4(x) x "," x "," x "," x
#define B32(x) "[" B4(x) "," B4(x) "," B4(x) "," B4(x) "," B4(x) "," B4(x) "," B4(x) "," B4(x) "]"
#define Z32 B32("0")
#define ZHEX "0000000000000000000000000000000000000000000000000000000000000000"

static yajl_val parse(const char *text)
{
    yajl_val v = bp_json_parse(text, strlen(text), NULL, 0);
    assert_non_null(v);
    return v;
}

static void decode_block(const char *text, bp_arch_block *b)
{
    bp_error err = {0};
    yajl_val v = parse(text);
    if (bp_arch_decode_block(v, H64, b, &err) != 0)
        fail_msg("%s", err.msg);
    bp_json_free(v);
}

static void decode_tx(const char *text, bp_arch_tx *t)
{
    bp_error err = {0};
    yajl_val v = parse(text);
    if (bp_arch_decode_tx(v, H64, 7, t, &err) != 0)
        fail_msg("%s", err.msg);
    bp_json_free(v);
}

/* block_response_deserialization, block_json_round_trip; full_block_response_deserialization
 * (get_full_block_*, not asked by blockpipe: refused by get_block's decoder, naming the field) */
static void test_wire_block(void **state)
{
    (void)state;
    bp_arch_block b;
    decode_block(
        "{\"transactions\":[" Z32 "],\"previous_block_hash\":" Z32
        ",\"timestamp\":1700000000000,\"block_height\":42,\"bitcoin_block_height\":800000}",
        &b);
    assert_int_equal(b.height, 42);
    assert_int_equal(b.bitcoin_height, 800000);
    assert_false(b.no_bitcoin_height);
    assert_int_equal(b.txid_count, 1);
    assert_int_equal(b.tx_count, 1); /* the list's length: Block has no transactions_count */
    assert_string_equal(b.txids[0], ZHEX);
    assert_string_equal(b.prev_hash, ZHEX);
    assert_int_equal(b.timestamp, 1700000000); /* ms to seconds */
    assert_string_equal(b.merkle_root, "");    /* none: NULL in arch_blocks */
    assert_string_equal(b.hash, H64);          /* get_block's parameter */
    bp_arch_block_free(&b);

    decode_block("{\"transactions\":[" B32("1") "," B32("2") "],\"previous_block_hash\":" B32(
                     "3") ",\"timestamp\":1700000000000,\"block_height\":100,"
                          "\"bitcoin_block_height\":800000}",
                 &b);
    assert_int_equal(b.txid_count, 2);
    assert_string_equal(b.txids[0],
                        "0101010101010101010101010101010101010101010101010101010101010101");
    assert_string_equal(b.txids[1],
                        "0202020202020202020202020202020202020202020202020202020202020202");
    assert_string_equal(b.prev_hash,
                        "0303030303030303030303030303030303030303030303030303030303030303");
    assert_int_equal(b.height, 100);
    bp_arch_block_free(&b);

    bp_error err = {0};
    yajl_val v =
        parse("{\"transactions\":[{\"runtime_transaction\":{}}],\"previous_block_hash\":" Z32
              ",\"timestamp\":1700000000000,\"block_height\":100,"
              "\"bitcoin_block_height\":800001}");
    assert_int_equal(bp_arch_decode_block(v, H64, &b, &err), BP_EPARSE);
    assert_non_null(strstr(err.msg, "transactions[0]"));
    bp_json_free(v);
}

/* processed_transaction_response_deserialization, processed_transaction_json_round_trip,
 * runtime_transaction_response_deserialization (as a ProcessedTransaction's),
 * status_response_deserialization, rollback_status_response_deserialization. */
static void test_wire_tx(void **state)
{
    (void)state;
#define MSG0                                                                                       \
    "{\"header\":{\"num_required_signatures\":0,\"num_readonly_signed_accounts\":0,"               \
    "\"num_readonly_unsigned_accounts\":0},\"account_keys\":[],\"recent_blockhash\":" Z32          \
    ",\"instructions\":[]}"
#define PTX(msg, status, btc, rb)                                                                  \
    "{\"runtime_transaction\":{\"version\":0,\"signatures\":[],\"message\":" msg                   \
    "},\"status\":" status ",\"bitcoin_txid\":" btc                                                \
    ",\"logs\":[\"Program log: hello\"],\"rollback_status\":" rb                                   \
    ",\"inner_instructions_list\":[]}"
    bp_arch_tx t;
    decode_tx(PTX(MSG0, "{\"type\":\"processed\"}", "null", "{\"type\":\"notRolledback\"}"), &t);
    assert_int_equal(t.status, BP_ARCH_PROCESSED);
    assert_null(t.failure);
    assert_string_equal(t.bitcoin_txids, "[]");
    assert_false(t.rolled_back);
    assert_null(t.rollback_reason);
    assert_string_equal(t.program_ids, "[]");
    assert_int_equal(t.account_count, 0);
    assert_int_equal(t.block_height, 7);
    bp_arch_tx_free(&t);

    decode_tx(PTX(MSG0, "{\"type\":\"failed\",\"message\":\"test error\"}", B32("255"),
                  "{\"type\":\"rolledback\",\"message\":\"reason\"}"),
              &t);
    assert_int_equal(t.status, BP_ARCH_FAILED);
    assert_string_equal(t.failure, "test error");
    assert_string_equal(t.bitcoin_txids,
                        "[\"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\"]");
    assert_true(t.rolled_back);
    assert_string_equal(t.rollback_reason, "reason");
    bp_arch_tx_free(&t);

    /* header {1, 0, 1}, account_keys [zeros, ones], one instruction of program 1 */
    decode_tx(PTX("{\"header\":{\"num_required_signatures\":1,\"num_readonly_signed_accounts\":0,"
                  "\"num_readonly_unsigned_accounts\":1},\"account_keys\":[" Z32
                  "," B32("1") "],\"recent_blockhash\":" Z32
                               ",\"instructions\":[{\"program_id_index\":1,"
                               "\"accounts\":[0],\"data\":[1,2,3]}]}",
                  "{\"type\":\"queued\"}", "null", "{\"type\":\"notRolledback\"}"),
              &t);
    assert_int_equal(t.status, BP_ARCH_QUEUED);
    assert_string_equal(t.program_ids,
                        "[\"0101010101010101010101010101010101010101010101010101010101010101\"]");
    assert_int_equal(t.account_count, 1); /* the signer; the program is read-only */
    assert_string_equal(t.accounts[0], ZHEX);
    bp_arch_tx_free(&t);
    decode_tx(PTX(MSG0, "{\"type\":\"failed\",\"message\":\"out of gas\"}", "null",
                  "{\"type\":\"notRolledback\"}"),
              &t);
    assert_string_equal(t.failure, "out of gas");
    bp_arch_tx_free(&t);
    /* Status::from_value: any string but "Queued" is processed */
    decode_tx(PTX(MSG0, "\"Weird\"", "null", "{\"type\":\"notRolledback\"}"), &t);
    assert_int_equal(t.status, BP_ARCH_PROCESSED);
    bp_arch_tx_free(&t);
#undef PTX
#undef MSG0
}

static void decode_ev(const char *text, bp_arch_event *e)
{
    bp_error err = {0};
    if (bp_arch_decode_event(text, strlen(text), 5.0, e, &err) != 0)
        fail_msg("%s: %s", err.msg, text);
}

/* event.rs: Event is {"topic", "data"} (serde tag / content); BlockEvent's timestamp a string
 * (block_event_timestamp_serializes_as_string, with a 64-digit hash for its "h"); a
 * TransactionEvent's status a serde Status; the others' fields; the TypeScript SDK's
 * {"event", "data"} envelope and number timestamp. */
static void test_wire_events(void **state)
{
    (void)state;
    bp_arch_event e;
    decode_ev("{\"topic\":\"block\",\"data\":{\"hash\":\"" H64
              "\",\"timestamp\":\"12345678901234567890\"}}",
              &e);
    assert_int_equal(e.topic, BP_ARCH_T_BLOCK);
    assert_string_equal(e.hash, H64);
    assert_int_equal(e.timestamp, 12345678901ull); /* taken for nanoseconds by its size */
    bp_arch_event_free(&e);
    decode_ev("{\"topic\":\"block\",\"data\":{\"hash\":\"" H64
              "\",\"timestamp\":\"1700000000123\"}}",
              &e);
    assert_int_equal(e.timestamp, 1700000000);
    bp_arch_event_free(&e);
    decode_ev("{\"event\":\"block\",\"data\":{\"hash\":\"" H64 "\",\"timestamp\":1700000000}}", &e);
    assert_int_equal(e.topic, BP_ARCH_T_BLOCK);
    assert_int_equal(e.timestamp, 1700000000);
    bp_arch_event_free(&e);
    decode_ev("{\"topic\":\"transaction\",\"data\":{\"hash\":\"" H64
              "\",\"status\":{\"type\":\"failed\",\"message\":\"boom\"},\"program_ids\":[\"" ZHEX
              "\"],\"block_height\":9}}",
              &e);
    assert_int_equal(e.status, BP_ARCH_FAILED);
    assert_string_equal(e.failure, "boom");
    assert_string_equal(e.program_ids, "[\"" ZHEX "\"]");
    assert_int_equal(e.block_height, 9);
    bp_arch_event_free(&e);
    decode_ev("{\"topic\":\"transaction\",\"data\":{\"hash\":\"" H64
              "\",\"status\":\"Settled\",\"program_ids\":[],\"block_height\":9}}",
              &e);
    assert_int_equal(e.status, BP_ARCH_PROCESSED); /* Status::from_value */
    bp_arch_event_free(&e);
    decode_ev("{\"topic\":\"account_update\",\"data\":{\"account\":\"" ZHEX
              "\",\"transaction_hash\":\"" H64 "\",\"block_height\":3}}",
              &e);
    assert_string_equal(e.account, ZHEX);
    assert_string_equal(e.hash, H64);
    bp_arch_event_free(&e);
    decode_ev("{\"topic\":\"rolledback_transactions\",\"data\":{\"block_height\":4,"
              "\"transaction_hashes\":[\"" H64 "\",\"" ZHEX "\"]}}",
              &e);
    assert_int_equal(e.topic, BP_ARCH_T_ROLLEDBACK);
    assert_int_equal(e.hash_count, 2);
    assert_string_equal(e.hashes[1], ZHEX);
    assert_int_equal(e.block_height, 4);
    bp_arch_event_free(&e);
    decode_ev("{\"topic\":\"reapplied_transactions\",\"data\":{\"block_height\":4,"
              "\"transaction_hashes\":[\"" H64 "\"]}}",
              &e);
    assert_int_equal(e.topic, BP_ARCH_T_REAPPLIED);
    bp_arch_event_free(&e);
    decode_ev("{\"topic\":\"dkg\",\"data\":{\"status\":\"Completed\"}}", &e);
    assert_string_equal(e.dkg_status, "Completed");
    bp_arch_event_free(&e);
}

/* The variants no one source has all of: hex strings with a us timestamp, a null
 * bitcoin_block_height and merkle_root, both counts given and agreeing; seconds. */
static void test_block_variants(void **state)
{
    (void)state;
    bp_arch_block b;
    decode_block("{\"transactions\":[\"" H64 "\"],\"previous_block_hash\":\"0x" H64
                 "\",\"timestamp\":1700000000999999,\"block_height\":1,\"bitcoin_block_height\":"
                 "null,\"transactions_count\":1,\"merkle_root\":null}",
                 &b);
    assert_int_equal(b.timestamp, 1700000000); /* microseconds (arch-rust-indexer's reading) */
    assert_true(b.no_bitcoin_height);
    assert_string_equal(b.merkle_root, "");
    assert_int_equal(b.tx_count, 1);
    bp_arch_block_free(&b);
    decode_block("{\"transactions\":[],\"previous_block_hash\":\"" H64
                 "\",\"timestamp\":99999999999,\"block_height\":1}",
                 &b);
    assert_int_equal(b.timestamp, 99999999999ull); /* below 1e11: seconds */
    assert_true(b.no_bitcoin_height);
    bp_arch_block_free(&b);
}

static void refused(const char *text, const char *want)
{
    bp_error err = {0};
    bp_arch_event e;
    int rc = bp_arch_decode_event(text, strlen(text), 0, &e, &err);
    assert_true(rc == BP_EPARSE || rc == BP_EINVAL);
    if (!strstr(err.msg, want))
        fail_msg("'%s': message '%s' does not name '%s'", text, err.msg, want);
}

/* Malformed events and answers: refused, the message naming the field. */
static void test_malformed(void **state)
{
    (void)state;
    refused("{\"topic\":\"block\"", "not JSON");
    refused("[1]", "message");
    refused("{\"data\":{}}", "topic");
    refused("{\"topic\":\"blocks\",\"data\":{}}", "unknown topic");
    refused("{\"topic\":\"block\",\"data\":[]}", "data");
    refused("{\"topic\":\"block\",\"data\":{\"hash\":\"12\",\"timestamp\":1}}", "hash");
    refused("{\"topic\":\"block\",\"data\":{\"hash\":\"" H64 "\",\"timestamp\":-1}}", "timestamp");
    refused("{\"topic\":\"transaction\",\"data\":{\"hash\":\"" H64
            "\",\"status\":7,\"program_ids\":[],\"block_height\":1}}",
            "status");
    refused("{\"topic\":\"transaction\",\"data\":{\"hash\":\"" H64
            "\",\"status\":{\"type\":\"weird\"},\"program_ids\":[],\"block_height\":1}}",
            "status");
    refused("{\"topic\":\"block\",\"data\":{\"hash\":\"" H64 "\",\"timestamp\":\"12a\"}}",
            "timestamp");
    /* event.rs block_event_timestamp_handles_u128_max: a u128 no u64 holds */
    refused("{\"topic\":\"block\",\"data\":{\"hash\":\"" H64
            "\",\"timestamp\":\"340282366920938463463374607431768211455\"}}",
            "timestamp");
    refused("{\"event\":7,\"data\":{}}", "topic");
    refused("{\"topic\":\"transaction\",\"data\":{\"hash\":\"" H64
            "\",\"status\":\"Processed\",\"program_ids\":[7],\"block_height\":1}}",
            "program_ids[0]");
    refused("{\"topic\":\"account_update\",\"data\":{\"account\":\"" H64
            "\",\"transaction_hash\":\"" H64 "\"}}",
            "block_height");
    refused("{\"topic\":\"rolledback_transactions\",\"data\":{\"transaction_hashes\":[\"" H64
            "\",\"x\"],\"block_height\":1}}",
            "transaction_hashes[1]");
    refused("{\"topic\":\"dkg\",\"data\":{\"status\":1}}", "status");
    refused("{\"status\":\"Subscribed\",\"subscription_id\":\"a\",\"topic\":\"block\"}",
            "not an event");

    bp_error err = {0};
    bp_arch_block b;
    static const char blk[] = "{\"transactions\":[],\"previous_block_hash\":\"" H64
                              "\",\"timestamp\":1,\"block_height\":2,\"bitcoin_block_height\":"
                              "\"x\",\"transactions_count\":0,\"merkle_root\":\"" H64 "\"}";
    yajl_val v = bp_json_parse(blk, strlen(blk), NULL, 0);
    assert_int_equal(bp_arch_decode_block(v, H64, &b, &err), BP_EPARSE);
    assert_non_null(strstr(err.msg, "bitcoin_block_height"));
    bp_json_free(v);
    static const char cnt[] = "{\"transactions\":[],\"previous_block_hash\":\"" H64
                              "\",\"timestamp\":1,\"block_height\":2,\"bitcoin_block_height\":"
                              "\"5\",\"transactions_count\":3,\"merkle_root\":\"" H64 "\"}";
    v = bp_json_parse(cnt, strlen(cnt), NULL, 0);
    assert_int_equal(bp_arch_decode_block(v, H64, &b, &err), BP_EPARSE);
    assert_non_null(strstr(err.msg, "transactions_count"));
    bp_json_free(v);
    static const char tx[] = "{\"runtime_transaction\":{\"message\":{\"header\":{"
                             "\"num_required_signatures\":3,\"num_readonly_signed_accounts\":0,"
                             "\"num_readonly_unsigned_accounts\":0},\"account_keys\":[],"
                             "\"instructions\":[]}},\"status\":{\"type\":\"processed\"}}";
    v = bp_json_parse(tx, strlen(tx), NULL, 0);
    bp_arch_tx t;
    assert_int_equal(bp_arch_decode_tx(v, H64, 1, &t, &err), BP_EPARSE);
    assert_non_null(strstr(err.msg, "message.header"));
    bp_json_free(v);
    yajl_val root, res;
    assert_int_equal(
        bp_arch_result("{\"jsonrpc\":\"2.0\",\"id\":1}", 24, "get_block_count", &root, &res, &err),
        BP_EPARSE);
    assert_non_null(strstr(err.msg, "result"));
    bp_json_free(root);
}

/* simnode's subscribe / unsubscribe answers (SDK types/messages.ts). */
static void test_ws_messages(void **state)
{
    fixture *f = *state;
    bp_sim_arch_subs subs = {0};
    bool sub = false;
    static const char s1[] =
        "{\"method\":\"subscribe\",\"params\":{\"topic\":\"account_update\",\"filter\":{},"
        "\"request_id\":\"req_1\"}}";
    assert_int_equal(bp_sim_arch_ws_message(&f->arch, &subs, s1, strlen(s1), &f->out, &sub), 0);
    assert_true(sub);
    assert_int_equal(bp_sim_arch_subs_mask(&subs), 1u << BP_SIM_ARCH_ACCOUNT_UPDATE);
    yajl_val v = bp_json_parse(f->out.data, f->out.len, NULL, 0);
    yajl_val st = yajl_tree_get(v, (const char *[]){"status", NULL}, yajl_t_string);
    yajl_val id = yajl_tree_get(v, (const char *[]){"subscription_id", NULL}, yajl_t_string);
    yajl_val rq = yajl_tree_get(v, (const char *[]){"request_id", NULL}, yajl_t_string);
    assert_non_null(st);
    assert_non_null(id);
    assert_non_null(rq);
    assert_string_equal(st->u.string, "Subscribed");
    assert_string_equal(rq->u.string, "req_1");
    char sid[40], body[160];
    snprintf(sid, sizeof(sid), "%s", id->u.string);
    bp_json_free(v);
    static const char s2[] = "{\"method\":\"subscribe\",\"params\":{\"topic\":\"blocks\"}}";
    sub = false;
    assert_int_equal(bp_sim_arch_ws_message(&f->arch, &subs, s2, strlen(s2), &f->out, &sub), 0);
    assert_false(sub);
    assert_non_null(strstr(f->out.data, "\"status\":\"Error\""));
    snprintf(body, sizeof(body),
             "{\"method\":\"unsubscribe\",\"params\":{\"topic\":\"account_update\","
             "\"subscription_id\":\"%s\"}}",
             sid);
    assert_int_equal(bp_sim_arch_ws_message(&f->arch, &subs, body, strlen(body), &f->out, &sub), 0);
    assert_non_null(strstr(f->out.data, "\"status\":\"Unsubscribed\""));
    assert_int_equal(bp_sim_arch_subs_mask(&subs), 0);
    assert_int_equal(bp_sim_arch_ws_message(&f->arch, &subs, body, strlen(body), &f->out, &sub), 0);
    assert_non_null(strstr(f->out.data, "\"status\":\"Error\""));
    static const char rpc[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"get_block_count\"}";
    assert_int_equal(bp_sim_arch_ws_message(&f->arch, &subs, rpc, strlen(rpc), &f->out, &sub), 1);
}

/* rollback_status of transaction idx of block n: true when rolled back. */
static bool rolled(fixture *f, const bp_sim_block *b, size_t idx)
{
    char p[80] = "[\"";
    bp_sim_arch_put_hex(p + 2, &b->txs[idx].hash);
    strcpy(p + 66, "\"]");
    const char *a = ask(f, "get_processed_transaction", p);
    assert_non_null(strstr(a, "\"rollback_status\""));
    return strstr(a, "\"rollback_status\":{\"type\":\"rolledback\"") != NULL;
}

static void expect_error(fixture *f, const char *method, const char *params, int code,
                         const char *words)
{
    const char *a = ask(f, method, params);
    char c[64];
    snprintf(c, sizeof(c), "\"error\":{\"code\":%d,", code);
    if (!strstr(a, c) || !strstr(a, words))
        fail_msg("%s %s: want %s ... %s, got %s", method, params, c, words, a);
}

/* simnode_rollback / simnode_reapply: the timer's choice by default, a chosen block, chosen
 * txids; answers name exactly what was rolled back; the event lists the same; bad params
 * (unknown txid, two blocks, above the head, a rollback over a rollback, a re-apply of
 * nothing) are -32602 naming what was wrong, and change nothing. */
static void test_control_rollback(void **state)
{
    fixture *f = *state;
    bp_sim_block b;
    bp_error err = {0};
    bp_sim_block_init(&b);
    expect_error(f, "simnode_reapply", "[]", -32602, "nothing is rolled back");
    uint64_t n = 30; /* a block with 2 transactions or more */
    for (; n > 0; n--) {
        assert_int_equal(bp_sim_block_gen(&f->chain, n, 0, &b, &err), 0);
        if (b.tx_count >= 2)
            break;
    }
    assert_true(n > 0);
    char want[2048], p[200];
    snprintf(p, sizeof(p), "[{\"height\":%llu}]", (unsigned long long)n);
    const char *a = ask(f, "simnode_rollback", p);
    int len = snprintf(want, sizeof(want), "{\"episode\":0,\"block_height\":%llu,\"block_hash\":\"",
                       (unsigned long long)n);
    char *w = bp_sim_arch_put_hex(want + len, &b.hash);
    w += sprintf(w, "\",\"txids\":[");
    for (size_t i = 0; i < b.tx_count; i += 2) {
        w += sprintf(w, "%s", i ? ",\"" : "\"");
        w = bp_sim_arch_put_hex(w, &b.txs[i].hash);
        *w++ = '"';
    }
    strcpy(w, "]}");
    assert_non_null(strstr(a, want));
    for (size_t i = 0; i < b.tx_count; i++)
        assert_int_equal(rolled(f, &b, i), i % 2 == 0);
    char words[100];
    snprintf(words, sizeof(words), "block %llu are rolled back: simnode_reapply",
             (unsigned long long)n);
    expect_error(f, "simnode_rollback", "[]", -32602, words);
    a = ask(f, "simnode_reapply", "[]");
    want[11] = '1'; /* "episode":1, the same block and txids */
    assert_non_null(strstr(a, want));
    for (size_t i = 0; i < b.tx_count; i++)
        assert_false(rolled(f, &b, i));

    /* one chosen transaction (an odd index, which the timer never picks) */
    strcpy(p, "[{\"txids\":[\"");
    *bp_sim_arch_put_hex(p + strlen(p), &b.txs[1].hash) = '\0';
    strcat(p, "\"]}]");
    a = ask(f, "simnode_rollback", p);
    snprintf(words, sizeof(words), "\"episode\":2,\"block_height\":%llu,", (unsigned long long)n);
    assert_non_null(strstr(a, words));
    for (size_t i = 0; i < b.tx_count; i++)
        assert_int_equal(rolled(f, &b, i), i == 1);
    static collected c;
    bp_buf s;
    bp_buf_init(&s, 0);
    assert_int_equal(bp_sim_arch_episode_event(&f->arch, 2, 0x3f, &s, collect, &c), 0);
    assert_int_equal(c.n, 1);
    char one[80];
    one[0] = '"';
    bp_sim_arch_put_hex(one + 1, &b.txs[1].hash);
    strcpy(one + 65, "\"]");
    assert_non_null(strstr(c.msg[0], "\"transaction_hashes\":["));
    assert_non_null(strstr(c.msg[0], one)); /* the only one: it closes the list */
    assert_int_equal(strstr(c.msg[0], one) - strstr(c.msg[0], "[") - 1, 0);
    collected_free(&c);
    bp_buf_release(&s);
    a = ask(f, "simnode_reapply", "[]");
    snprintf(words, sizeof(words), "\"episode\":3,\"block_height\":%llu,", (unsigned long long)n);
    assert_non_null(strstr(a, words));

    /* bad params: nothing made */
    char bad[300];
    snprintf(bad, sizeof(bad), "[{\"txids\":[\"%064d\"]}]", 0);
    expect_error(f, "simnode_rollback", bad, -32602, "txids[0] 0000");
    expect_error(f, "simnode_rollback", bad, -32602, "not a transaction of the canonical chain");
    expect_error(f, "simnode_rollback", "[{\"txids\":[\"zz\"]}]", -32602,
                 "txids[0]: expected 64 hex digits");
    expect_error(f, "simnode_rollback", "[{\"txids\":[]}]", -32602, "txids: expected a list");
    expect_error(f, "simnode_rollback", "[{\"height\":41}]", -32602, "height 41: above the head");
    expect_error(f, "simnode_rollback", "[{\"height\":\"x\"}]", -32602, "height: expected");
    expect_error(f, "simnode_rollback", "[7]", -32602, "invalid params");
    bp_sim_block b2;
    bp_sim_block_init(&b2);
    assert_int_equal(bp_sim_block_gen(&f->chain, n + 1, 0, &b2, &err), 0);
    assert_true(b2.tx_count > 0);
    char two[300] = "[{\"txids\":[\"";
    *bp_sim_arch_put_hex(two + strlen(two), &b.txs[0].hash) = '\0';
    strcat(two, "\",\"");
    *bp_sim_arch_put_hex(two + strlen(two), &b2.txs[0].hash) = '\0';
    strcat(two, "\"]}]");
    snprintf(words, sizeof(words), "in block %llu, not %llu (one block per rollback)",
             (unsigned long long)n + 1, (unsigned long long)n);
    expect_error(f, "simnode_rollback", two, -32602, words);
    two[strlen(two) - 2] = '\0';
    snprintf(two + strlen(two), 40, ",\"height\":%llu}]", (unsigned long long)n - 1);
    snprintf(words, sizeof(words), "in block %llu, not %llu", (unsigned long long)n,
             (unsigned long long)n - 1);
    expect_error(f, "simnode_rollback", two, -32602, words);
    expect_error(f, "simnode_fork", "[41]", -32602, "depth 41: expected 1 to 40");
    expect_error(f, "simnode_nope", "[]", -32601, "simnode_nope does not exist");
    assert_int_equal(atomic_load(&f->arch.episodes), 4);
    bp_sim_block_release(&b2);
    bp_sim_block_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_blocks_and_txs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blocks_and_txs, setup_ts, teardown),
        cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup_ts, teardown),
        cmocka_unit_test(test_event_nul),
        cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ws_messages, setup, teardown),
        cmocka_unit_test(test_book_shapes),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_wire_block),
        cmocka_unit_test(test_wire_tx),
        cmocka_unit_test(test_wire_events),
        cmocka_unit_test(test_block_variants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
