/* test_sim.c - simnode: deterministic chain, parent links, reorgs, our decoder on every
 * rendered block and receipt list, JSON-RPC envelopes, fault profile syntax, WebSocket
 * handshake key, frames and subscription calls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "blockpipe/error.h"
#include "blockpipe/model.h"
#include "chain/decode.h"
#include "chain/json.h"
#include "chain/rpc_envelope.h"
#include "sim/chain.h"
#include "sim/control.h"
#include "sim/faults.h"
#include "sim/node.h"
#include "sim/render.h"
#include "util/buf.h"

#define T0 1000.0

static bp_sim_params params(uint64_t seed, uint32_t txs)
{
    return (bp_sim_params){.seed = seed,
                           .length = 1000,
                           .txs_min = txs,
                           .txs_max = txs,
                           .block_time = 0,
                           .chain_id = 1337};
}

static void chain_init(bp_sim_chain *c, const bp_sim_params *p)
{
    bp_error err = {0};
    assert_int_equal(bp_sim_chain_init(c, p, T0, &err), 0);
}

/* Answers body on chain c at its head into out (a fresh scratch each time). */
static void ask(const bp_sim_chain *c, const char *body, bp_buf *out)
{
    bp_sim_scratch s;
    bp_sim_scratch_init(&s);
    bp_sim_request r = {.chain = c, .head = bp_sim_chain_head(c, T0), .scratch = &s};
    bp_buf_reset(out);
    assert_int_equal(bp_sim_answer(&r, body, strlen(body), out), 0);
    bp_sim_scratch_release(&s);
}

/* The same with the control methods (simnode_*) on. */
static void ask_ctl(bp_sim_chain *c, const char *body, bp_buf *out)
{
    bp_sim_scratch s;
    bp_sim_scratch_init(&s);
    bp_sim_control ctl = {.chain = c};
    bp_sim_request r = {
        .chain = c, .head = bp_sim_chain_head(c, T0), .scratch = &s, .control = &ctl};
    bp_buf_reset(out);
    assert_int_equal(bp_sim_answer(&r, body, strlen(body), out), 0);
    bp_sim_scratch_release(&s);
}

static void render_block(const bp_sim_chain *c, uint64_t n, bp_buf *out)
{
    bp_sim_block b;
    bp_error err = {0};
    bp_sim_block_init(&b);
    assert_int_equal(bp_sim_block_gen(c, n, bp_sim_chain_fork_at(c, n), &b, &err), 0);
    bp_buf_reset(out);
    assert_int_equal(bp_sim_render_block(c, &b, true, out), 0);
    assert_int_equal(bp_sim_render_receipts(&b, out), 0);
    bp_sim_block_release(&b);
}

static void hash_of(const bp_sim_chain *c, uint64_t n, char out[BP_HASH_STRLEN])
{
    bp_sim_h256 h;
    bp_sim_block_hash(c, n, bp_sim_chain_fork_at(c, n), &h);
    char quoted[80];
    bp_sim_put_h256(quoted, &h);
    memcpy(out, quoted + 1, 66);
    out[66] = '\0';
}

static int addr_cmp(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(bp_sim_addr));
}

/* FNV-1a of the JSON of blocks 0..7 (full transactions) and their receipts. */
static uint64_t chain_digest(const bp_sim_params *p)
{
    bp_sim_chain c;
    bp_buf out;
    uint64_t h = 0xcbf29ce484222325ull;
    chain_init(&c, p);
    bp_buf_init(&out, 0);
    for (uint64_t n = 0; n < 8; n++) {
        render_block(&c, n, &out);
        for (size_t i = 0; i < out.len; i++)
            h = (h ^ (unsigned char)out.data[i]) * 0x100000001b3ull;
    }
    bp_buf_release(&out);
    bp_sim_chain_release(&c);
    return h;
}

/* The default populations are the chain simnode always served: the digest was taken with
 * the code before --senders / --contracts / --zipf existed (tests elsewhere and people's
 * benchmark notes compare that chain), and spelling the defaults out changes nothing. */
/* missing_method: that method's calls are answered -32601 as an unknown method's (a node
 * without it), the other calls of the batch as usual. */
static void test_missing_method(void **state)
{
    (void)state;
    bp_sim_params p = params(1, 2);
    bp_sim_chain c;
    chain_init(&c, &p);
    bp_sim_scratch s;
    bp_sim_scratch_init(&s);
    bp_sim_request r = {.chain = &c,
                        .head = bp_sim_chain_head(&c, T0),
                        .scratch = &s,
                        .missing_method = "eth_blockNumber"};
    const char *body =
        "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_chainId\",\"params\":[]},"
        "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"eth_blockNumber\",\"params\":[]}]";
    bp_buf out;
    bp_buf_init(&out, 0);
    assert_int_equal(bp_sim_answer(&r, body, strlen(body), &out), 0);
    assert_non_null(strstr(out.data, "\"result\":\"0x539\""));
    assert_non_null(
        strstr(out.data, "{\"code\":-32601,\"message\":\"Method not found: eth_blockNumber\"}"));
    bp_buf_release(&out);
    bp_sim_scratch_release(&s);
    bp_sim_chain_release(&c);
}

static void test_default_population_unchanged(void **state)
{
    (void)state;
    bp_sim_params p = params(1, 200);
    assert_true(chain_digest(&p) == 0x563647d6bbd7e4c4ull);
    p.senders = BP_SIM_DEFAULT_SENDERS;
    p.contracts = BP_SIM_DEFAULT_CONTRACTS;
    assert_true(chain_digest(&p) == 0x563647d6bbd7e4c4ull);
    p.senders++;
    assert_true(chain_digest(&p) != 0x563647d6bbd7e4c4ull);
}

typedef struct population {
    size_t txs, senders, contracts; /* distinct senders; distinct `to` of calls */
    size_t top;                     /* transactions of the busiest sender */
} population;

static size_t distinct(bp_sim_addr *a, size_t n, size_t *top)
{
    size_t d = 0, run = 0;
    *top = 0;
    qsort(a, n, sizeof(*a), addr_cmp);
    for (size_t i = 0; i < n; i++) {
        bool same = i > 0 && memcmp(&a[i], &a[i - 1], sizeof(*a)) == 0;
        d += !same;
        run = same ? run + 1 : 1;
        *top = run > *top ? run : *top;
    }
    return d;
}

static population population_of(const bp_sim_params *p, uint64_t blocks)
{
    bp_sim_chain c;
    bp_sim_block b;
    bp_error err = {0};
    population pop = {0};
    size_t cap = (size_t)blocks * p->txs_max, nf = 0, nc = 0, top;
    bp_sim_addr *from = calloc(cap, sizeof(*from)), *to = calloc(cap, sizeof(*to));
    assert_non_null(from);
    assert_non_null(to);
    chain_init(&c, p);
    bp_sim_block_init(&b);
    for (uint64_t n = 1; n <= blocks; n++) {
        assert_int_equal(bp_sim_block_gen(&c, n, 0, &b, &err), 0);
        for (size_t i = 0; i < b.tx_count; i++) {
            from[nf++] = b.txs[i].from;
            if (b.txs[i].input_kind == BP_SIM_IN_CALL || b.txs[i].input_kind == BP_SIM_IN_TRANSFER)
                to[nc++] = b.txs[i].to;
        }
    }
    pop.txs = nf;
    pop.senders = distinct(from, nf, &pop.top);
    pop.contracts = distinct(to, nc, &top);
    bp_sim_block_release(&b);
    bp_sim_chain_release(&c);
    free(from);
    free(to);
    return pop;
}

/* --senders / --contracts bound the distinct addresses; a large pool drawn Zipf-like keeps
 * adding new senders where the default pool has run out, with a busiest sender far above a
 * uniform draw's. */
static void test_populations(void **state)
{
    (void)state;
    bp_sim_params p = params(9, 1000);
    population def = population_of(&p, 20);
    assert_int_equal(def.txs, 20000);
    assert_true(def.senders <= BP_SIM_DEFAULT_SENDERS && def.senders > 4000);
    assert_true(def.contracts <= BP_SIM_DEFAULT_CONTRACTS);

    p.senders = 10;
    p.contracts = 3;
    population small = population_of(&p, 20);
    assert_int_equal(small.senders, 10);
    assert_int_equal(small.contracts, 3);

    p.senders = 100000000;
    p.contracts = 100000;
    p.zipf = 1.0;
    population zipf = population_of(&p, 20);
    /* about 0.58 of 20,000 (simnode --help); uniform over 10^8 would be all of them */
    assert_true(zipf.senders > 2 * BP_SIM_DEFAULT_SENDERS && zipf.senders < 19000);
    assert_true(zipf.contracts > BP_SIM_DEFAULT_CONTRACTS);
    /* rank 0 takes ln 2 / ln(10^8 + 1) = 3.8 % of the draws: about 750 of 20,000 */
    assert_true(zipf.top > 500 && zipf.top < 1000);
    assert_true(def.top < 30);
}

static void test_deterministic(void **state)
{
    (void)state;
    bp_sim_chain a, b, other;
    bp_sim_params p = params(7, 60), q = params(8, 60);
    chain_init(&a, &p);
    chain_init(&b, &p);
    chain_init(&other, &q);
    bp_buf x, y, z;
    bp_buf_init(&x, 0);
    bp_buf_init(&y, 0);
    bp_buf_init(&z, 0);
    for (uint64_t n = 0; n < 20; n++) {
        render_block(&a, n, &x);
        render_block(&b, n, &y);
        render_block(&other, n, &z);
        assert_int_equal(x.len, y.len);
        assert_memory_equal(x.data, y.data, x.len);
        assert_true(x.len != z.len || memcmp(x.data, z.data, x.len) != 0);
    }
    bp_buf_release(&x);
    bp_buf_release(&y);
    bp_buf_release(&z);
    bp_sim_chain_release(&a);
    bp_sim_chain_release(&b);
    bp_sim_chain_release(&other);
}

static void test_parent_links_and_hash_coordinates(void **state)
{
    (void)state;
    bp_sim_chain c;
    bp_sim_params p = params(3, 5);
    chain_init(&c, &p);
    bp_sim_block b;
    bp_error err = {0};
    bp_sim_block_init(&b);
    bp_sim_h256 prev = {{0}};
    for (uint64_t n = 0; n < 200; n++) {
        assert_int_equal(bp_sim_block_gen(&c, n, 0, &b, &err), 0);
        assert_memory_equal(&b.parent_hash, &prev, sizeof(prev));
        uint64_t dn;
        uint32_t df, di;
        assert_true(bp_sim_block_hash_decode(&c, &b.hash, &dn, &df));
        assert_int_equal(dn, n);
        assert_int_equal(df, 0);
        assert_false(bp_sim_tx_hash_decode(&c, &b.hash, &dn, &df, &di));
        for (size_t i = 0; i < b.tx_count; i++) {
            assert_true(bp_sim_tx_hash_decode(&c, &b.txs[i].hash, &dn, &df, &di));
            assert_int_equal(dn, n);
            assert_int_equal(di, i);
        }
        prev = b.hash;
    }
    prev.w[1] ^= 1; /* one bit off: not one of ours */
    uint64_t dn;
    uint32_t df;
    assert_false(bp_sim_block_hash_decode(&c, &prev, &dn, &df));
    bp_sim_block_release(&b);
    bp_sim_chain_release(&c);
}

/* What the decoded blocks showed, summed over a range. */
typedef struct seen {
    size_t txs, logs, big_values, blob_txs, auth_txs, creations, failed, withdrawals;
    size_t types[5];
    size_t topics[5];
} seen;

static void check_tx(const bp_tx *t, const bp_sim_tx *g, seen *s)
{
    assert_int_equal(t->transaction_type.v, g->type);
    assert_int_equal(t->gas, g->gas);
    assert_int_equal(t->receipt_gas_used, g->gas_used);
    assert_int_equal(t->receipt_cumulative_gas_used, g->cumulative_gas_used);
    assert_int_equal(t->log_count, g->log_count);
    assert_memory_equal(t->value.v.w, g->value.w, sizeof(g->value.w));
    assert_int_equal(t->receipt_status.v, g->status ? 1 : 0);
    s->types[g->type]++;
    s->big_values += g->value.w[1] != 0;
    if (g->type == 3) {
        assert_true(t->rare->max_fee_per_blob_gas.set);
        assert_int_equal(t->rare->max_fee_per_blob_gas.v.w[0], g->max_fee_per_blob_gas);
        assert_non_null(t->rare->blob_versioned_hashes_json);
        assert_int_equal(t->rare->receipt_blob_gas_used.v, g->blob_count * 131072ull);
        s->blob_txs++;
    }
    if (g->type == 4) {
        assert_non_null(t->rare->authorization_list_json);
        assert_non_null(strstr(t->rare->authorization_list_json, "\"yParity\""));
        s->auth_txs++;
    }
    if (!g->has_to) {
        assert_null(t->to_address);
        assert_non_null(t->receipt_contract_address);
        s->creations++;
    } else {
        assert_non_null(t->to_address);
        assert_null(t->receipt_contract_address);
    }
    s->failed += !g->status;
}

static void decode_block(const bp_sim_chain *c, uint64_t n, bp_buf *buf, seen *s)
{
    char body[256];
    snprintf(body, sizeof(body),
             "[{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"eth_getBlockByNumber\",\"params\":"
             "[\"0x%llx\",true]},{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
             "\"eth_getBlockReceipts\",\"params\":[\"0x%llx\"]}]",
             (unsigned long long)n, (unsigned long long)n);
    ask(c, body, buf);
    yajl_val root, results[2], errors[2];
    bp_error err = {0};
    assert_int_equal(bp_decode_rpc_response(buf->data, buf->len, 2, &root, results, errors, &err),
                     0);
    bp_block *b = bp_block_new();
    int rc = bp_decode_block(results[0], true, b, &err);
    if (rc == 0)
        rc = bp_decode_block_receipts(results[1], b, &err);
    if (rc != 0)
        fail_msg("block %llu: %s", (unsigned long long)n, err.msg);
    bp_sim_block g;
    bp_sim_block_init(&g);
    assert_int_equal(bp_sim_block_gen(c, n, 0, &g, &err), 0);
    assert_int_equal(b->number, n);
    assert_int_equal(b->tx_count, g.tx_count);
    assert_int_equal(b->log_count, g.log_count);
    assert_int_equal(b->withdrawal_count, g.withdrawal_count);
    assert_int_equal(b->gas_used, g.gas_used);
    assert_int_equal(b->blob_gas_used.v, g.blob_gas_used);
    assert_true(b->has_withdrawals);
    for (size_t i = 0; i < b->tx_count; i++)
        check_tx(&b->txs[i], &g.txs[i], s);
    for (size_t i = 0; i < b->log_count; i++) {
        assert_int_equal(b->logs[i].log_index, i);
        s->topics[b->logs[i].topic_count]++;
    }
    s->txs += b->tx_count;
    s->logs += b->log_count;
    s->withdrawals += b->withdrawal_count;
    bp_sim_block_release(&g);
    bp_block_free(b);
    bp_json_free(root);
}

static void test_decoder_accepts_every_block(void **state)
{
    (void)state;
    bp_sim_chain c;
    bp_sim_params p = params(11, 50);
    p.txs_min = 20;
    p.txs_max = 80;
    chain_init(&c, &p);
    bp_buf buf;
    bp_buf_init(&buf, 0);
    seen s = {0};
    for (uint64_t n = 0; n < 40; n++)
        decode_block(&c, n, &buf, &s);
    assert_true(s.txs >= 40 * 20);
    assert_true(s.logs > s.txs / 2);
    assert_true(s.big_values > 0);
    assert_true(s.blob_txs > 0);
    assert_true(s.auth_txs > 0);
    assert_true(s.creations > 0);
    assert_true(s.failed > 0);
    assert_int_equal(s.withdrawals, 39 * BP_SIM_WITHDRAWALS);
    for (int t = 0; t < 5; t++) {
        assert_true(s.types[t] > 0);
        assert_true(s.topics[t] > 0);
    }
    bp_buf_release(&buf);
    bp_sim_chain_release(&c);
}

static void test_reorg_replaces_last_depth(void **state)
{
    (void)state;
    bp_sim_chain c;
    bp_sim_params p = params(5, 3);
    p.length = 100;
    p.reorg_depth = 5;
    chain_init(&c, &p);
    char before[100][BP_HASH_STRLEN], after[BP_HASH_STRLEN];
    for (uint64_t n = 0; n < 100; n++)
        hash_of(&c, n, before[n]);
    assert_int_equal(bp_sim_chain_reorg(&c, T0), 0);
    for (uint64_t n = 0; n < 100; n++) {
        hash_of(&c, n, after);
        if (n <= 94)
            assert_string_equal(after, before[n]);
        else
            assert_string_not_equal(after, before[n]);
    }
    bp_sim_block b;
    bp_error err = {0};
    bp_sim_block_init(&b);
    assert_int_equal(bp_sim_block_gen(&c, 95, 1, &b, &err), 0);
    bp_sim_h256 h94;
    bp_sim_block_hash(&c, 94, 0, &h94);
    assert_memory_equal(&b.parent_hash, &h94, sizeof(h94)); /* the new branch hangs off 94 */
    assert_int_equal(bp_sim_block_gen(&c, 97, 1, &b, &err), 0);
    bp_sim_h256 h96;
    bp_sim_block_hash(&c, 96, 1, &h96);
    assert_memory_equal(&b.parent_hash, &h96, sizeof(h96));
    /* The orphaned block still exists by hash; a fork that never reached 94 does not. */
    assert_true(bp_sim_chain_block_exists(&c, 97, 0, 99));
    assert_true(bp_sim_chain_block_exists(&c, 97, 1, 99));
    assert_false(bp_sim_chain_block_exists(&c, 94, 1, 99));
    assert_false(bp_sim_chain_block_exists(&c, 97, 2, 99));
    bp_sim_block_release(&b);
    bp_sim_chain_release(&c);
}

static void test_clock_head_and_reorg_schedule(void **state)
{
    (void)state;
    bp_sim_chain c;
    bp_sim_params p = params(5, 1);
    p.length = 50;
    p.block_time = 2;
    p.start_head = 10;
    p.reorg_every = 10;
    p.reorg_depth = 2;
    chain_init(&c, &p);
    assert_int_equal(bp_sim_chain_head(&c, T0), 10);
    assert_int_equal(bp_sim_chain_head(&c, T0 + 5), 12);
    assert_int_equal(bp_sim_chain_head(&c, T0 + 1000), 49);
    assert_int_equal(bp_sim_chain_tick(&c, T0 + 9), 0);
    assert_int_equal(bp_sim_chain_tick(&c, T0 + 25), 2);
    assert_int_equal(bp_sim_chain_tick(&c, T0 + 25), 0);
    /* reorg 1 at t=10 (head 15): 14..15; reorg 2 at t=20 (head 20): 19..20 */
    assert_int_equal(bp_sim_chain_fork_at(&c, 13), 0);
    assert_int_equal(bp_sim_chain_fork_at(&c, 14), 1);
    assert_int_equal(bp_sim_chain_fork_at(&c, 18), 1);
    assert_int_equal(bp_sim_chain_fork_at(&c, 19), 2);
    assert_int_equal(bp_sim_chain_fork_at(&c, 40), 2);
    bp_sim_chain_release(&c);
}

/* simnode_fork: the answer names the fork point and both branches' hashes exactly; a deeper
 * fork after a shallower one (fork_start no longer monotonic) still gives every height its
 * newest fork and the old forks their own ancestry; bad depths are -32602 naming the range. */
static void test_control_fork(void **state)
{
    (void)state;
    bp_sim_chain c;
    bp_sim_params p = params(9, 2);
    p.length = 20;
    chain_init(&c, &p);
    bp_buf out;
    bp_buf_init(&out, 0);
    char before[20][BP_HASH_STRLEN], h[BP_HASH_STRLEN], want[200];
    for (uint64_t n = 0; n < 20; n++)
        hash_of(&c, n, before[n]);
    ask_ctl(&c, "{\"id\":1,\"method\":\"simnode_fork\",\"params\":[3]}", &out);
    assert_non_null(strstr(out.data, "\"result\":{\"fork\":1,\"depth\":3,\"fork_point\":16,"
                                     "\"head\":19,\"hashes\":[\""));
    for (uint64_t n = 0; n < 20; n++) {
        hash_of(&c, n, h);
        snprintf(want, sizeof(want), "\"%.66s\"", h);
        if (n <= 16) {
            assert_string_equal(h, before[n]);
        } else {
            assert_string_not_equal(h, before[n]);
            assert_non_null(strstr(out.data, want)); /* listed in hashes */
            snprintf(want, sizeof(want), "\"%.66s\"", before[n]);
            assert_non_null(strstr(out.data, want)); /* and the old one in replaced */
        }
    }
    ask_ctl(&c, "{\"id\":2,\"method\":\"simnode_fork\",\"params\":[5]}", &out);
    assert_non_null(strstr(out.data, "{\"fork\":2,\"depth\":5,\"fork_point\":14,"));
    ask_ctl(&c, "{\"id\":3,\"method\":\"simnode_fork\",\"params\":[1]}", &out);
    assert_non_null(strstr(out.data, "{\"fork\":3,\"depth\":1,\"fork_point\":18,"));
    assert_int_equal(bp_sim_chain_fork_at(&c, 14), 0);
    for (uint64_t n = 15; n <= 18; n++)
        assert_int_equal(bp_sim_chain_fork_at(&c, n), 2);
    assert_int_equal(bp_sim_chain_fork_at(&c, 19), 3);
    assert_int_equal(bp_sim_chain_fork_upto(&c, 18, 1), 1); /* fork 1's own ancestry */
    assert_int_equal(bp_sim_chain_fork_upto(&c, 16, 1), 0);
    bp_sim_block b;
    bp_error err = {0};
    bp_sim_h256 parent;
    bp_sim_block_init(&b);
    assert_int_equal(bp_sim_block_gen(&c, 15, 2, &b, &err), 0);
    bp_sim_block_hash(&c, 14, 0, &parent);
    assert_memory_equal(&b.parent_hash, &parent, sizeof(parent));
    assert_int_equal(bp_sim_block_gen(&c, 19, 3, &b, &err), 0);
    bp_sim_block_hash(&c, 18, 2, &parent);
    assert_memory_equal(&b.parent_hash, &parent, sizeof(parent));
    bp_sim_block_release(&b);
    /* the same calls on the same seed: the same chain */
    bp_sim_chain d;
    chain_init(&d, &p);
    bp_buf again;
    bp_buf_init(&again, 0);
    static const int depths[] = {3, 5, 1};
    for (size_t i = 0; i < 3; i++) {
        char body[100];
        snprintf(body, sizeof(body), "{\"id\":1,\"method\":\"simnode_fork\",\"params\":[%d]}",
                 depths[i]);
        ask_ctl(&d, body, &again);
    }
    assert_string_equal(strstr(again.data, "\"result\""), strstr(out.data, "\"result\""));
    for (uint64_t n = 0; n < 20; n++) {
        char hd[BP_HASH_STRLEN];
        hash_of(&c, n, h);
        hash_of(&d, n, hd);
        assert_string_equal(h, hd);
    }
    bp_buf_release(&again);
    bp_sim_chain_release(&d);

    static const char *const bad[][2] = {
        {"[0]", "depth 0: expected 1 to 19"}, {"[20]", "depth 20: expected 1 to 19"},
        {"[\"3\"]", "expected [depth]"},      {"[]", "expected [depth]"},
        {"[-1]", "expected [depth]"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char body[100];
        snprintf(body, sizeof(body), "{\"id\":7,\"method\":\"simnode_fork\",\"params\":%s}",
                 bad[i][0]);
        ask_ctl(&c, body, &out);
        assert_non_null(strstr(out.data, "\"error\":{\"code\":-32602,\"message\":\""));
        assert_non_null(strstr(out.data, bad[i][1]));
    }
    assert_int_equal(atomic_load(&c.nforks), 3); /* refused calls made nothing */
    ask_ctl(&c, "{\"id\":8,\"method\":\"simnode_rollback\",\"params\":[]}", &out);
    assert_non_null(strstr(out.data, "\"code\":-32601"));
    assert_non_null(strstr(out.data, "--chain-type arch only"));
    ask(&c, "{\"id\":9,\"method\":\"simnode_fork\",\"params\":[1]}", &out); /* no control */
    assert_non_null(strstr(out.data, "\"code\":-32601"));
    bp_buf_release(&out);
    bp_sim_chain_release(&c);
}

/* An on-demand fork between the timer's: the schedule still makes its own two (it counts
 * its forks, not all of them), numbered after it; a deeper one later makes a dip. */
static void test_fork_between_timer_reorgs(void **state)
{
    (void)state;
    bp_sim_chain c;
    bp_sim_params p = params(5, 1);
    p.length = 50;
    p.block_time = 2;
    p.start_head = 10;
    p.reorg_every = 10;
    p.reorg_depth = 2;
    chain_init(&c, &p);
    bp_sim_fork_info f;
    bp_error err = {0};
    assert_int_equal(bp_sim_chain_fork(&c, T0 + 5, 1, &f, &err), 0); /* head 12 */
    assert_true(f.fork == 1 && f.start == 12 && f.head == 12);
    assert_int_equal(bp_sim_chain_tick(&c, T0 + 25), 2); /* t=10: 14..15, t=20: 19..20 */
    assert_int_equal(bp_sim_chain_tick(&c, T0 + 25), 0);
    assert_int_equal(bp_sim_chain_fork_at(&c, 11), 0);
    assert_int_equal(bp_sim_chain_fork_at(&c, 13), 1);
    assert_int_equal(bp_sim_chain_fork_at(&c, 14), 2);
    assert_int_equal(bp_sim_chain_fork_at(&c, 19), 3);
    /* at t=29 (head 24): the timer's reorg of t=20 is made; a fork of 20 goes below 19 */
    assert_int_equal(bp_sim_chain_fork(&c, T0 + 29, 20, &f, &err), 0);
    assert_true(f.fork == 4 && f.start == 5 && f.head == 24);
    assert_int_equal(bp_sim_chain_fork_at(&c, 4), 0);
    assert_int_equal(bp_sim_chain_fork_at(&c, 5), 4);
    assert_int_equal(bp_sim_chain_fork_at(&c, 24), 4);
    assert_int_equal(bp_sim_chain_fork_upto(&c, 13, 3), 1); /* the history stays */
    assert_int_equal(bp_sim_chain_tick(&c, T0 + 31), 1);    /* t=30: 24..25 */
    assert_int_equal(bp_sim_chain_fork_at(&c, 23), 4);
    assert_int_equal(bp_sim_chain_fork_at(&c, 24), 5);
    assert_int_equal(bp_sim_chain_fork(&c, T0 + 31, 0, &f, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "depth 0: expected 1 to 25"));
    bp_sim_chain_release(&c);
}

static void test_rpc_envelopes(void **state)
{
    (void)state;
    bp_sim_chain c;
    bp_sim_params p = params(1, 4);
    p.length = 10;
    chain_init(&c, &p);
    bp_buf out;
    bp_buf_init(&out, 0);
    ask(&c, "{\"jsonrpc\":\"2.0\",\"id\":\"a\\\"b\",\"method\":\"eth_chainId\"}", &out);
    assert_string_equal(out.data, "{\"jsonrpc\":\"2.0\",\"id\":\"a\\\"b\",\"result\":\"0x539\"}");
    ask(&c, "[{\"id\":1.50,\"method\":\"eth_blockNumber\",\"params\":[]}]", &out);
    assert_string_equal(out.data, "[{\"jsonrpc\":\"2.0\",\"id\":1.50,\"result\":\"0x9\"}]");
    ask(&c, "{\"id\":2,\"method\":\"eth_nope\",\"params\":[]}", &out);
    assert_non_null(strstr(out.data, "\"id\":2,\"error\":{\"code\":-32601"));
    ask(&c, "{\"id\":3,\"method\":\"eth_getBlockByNumber\",\"params\":[\"0xzz\",true]}", &out);
    assert_non_null(strstr(out.data, "\"code\":-32602"));
    ask(&c, "{\"id\":3,\"method\":\"eth_getBlockByHash\",\"params\":[12]}", &out);
    assert_non_null(strstr(out.data, "\"code\":-32602"));
    ask(&c, "[{\"id\":4,", &out);
    assert_non_null(strstr(out.data, "\"id\":null,\"error\":{\"code\":-32700"));
    ask(&c, "[]", &out);
    assert_non_null(strstr(out.data, "\"code\":-32600"));
    ask(&c, "{\"id\":5,\"method\":\"eth_getBlockByNumber\",\"params\":[\"0xa\",false]}", &out);
    assert_string_equal(out.data, "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":null}");
    ask(&c, "{\"id\":6,\"method\":\"eth_getBlockReceipts\",\"params\":[\"finalized\"]}", &out);
    assert_non_null(strstr(out.data, "\"result\":[]}")); /* head 9: finalized is genesis */
    ask(&c, "{\"id\":6,\"method\":\"eth_getBlockReceipts\",\"params\":[\"pending\"]}", &out);
    assert_non_null(strstr(out.data, "\"result\":[{"));
    ask(&c, "{\"id\":7,\"method\":\"eth_getBlockByNumber\",\"params\":[\"latest\",false]}", &out);
    assert_non_null(strstr(out.data, "\"number\":\"0x9\""));
    ask(&c,
        "{\"id\":8,\"method\":\"eth_getTransactionReceipt\",\"params\":[\"0x00000000000000000000"
        "00000000000000000000000000000000000000000000\"]}",
        &out);
    assert_string_equal(out.data, "{\"jsonrpc\":\"2.0\",\"id\":8,\"result\":null}");
    bp_buf_release(&out);
    bp_sim_chain_release(&c);
}

static void test_by_hash_and_tx_receipt(void **state)
{
    (void)state;
    bp_sim_chain c;
    bp_sim_params p = params(2, 6);
    p.length = 20;
    p.reorg_depth = 3;
    chain_init(&c, &p);
    bp_sim_block b;
    bp_error err = {0};
    bp_sim_block_init(&b);
    assert_int_equal(bp_sim_block_gen(&c, 18, 0, &b, &err), 0);
    char hash[80], txh[80], body[512];
    *bp_sim_put_h256(hash, &b.hash) = '\0';
    *bp_sim_put_h256(txh, &b.txs[2].hash) = '\0';
    bp_buf one, all;
    bp_buf_init(&one, 0);
    bp_buf_init(&all, 0);
    snprintf(body, sizeof(body),
             "{\"id\":1,\"method\":\"eth_getTransactionReceipt\",\"params\":[%s]}", txh);
    ask(&c, body, &one);
    snprintf(body, sizeof(body), "{\"id\":1,\"method\":\"eth_getBlockReceipts\",\"params\":[%s]}",
             hash);
    ask(&c, body, &all);
    /* The single receipt is exactly the third element of the block's receipts. */
    const char *prefix = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":";
    assert_true(strncmp(one.data, prefix, strlen(prefix)) == 0);
    one.data[one.len - 1] = '\0';
    assert_non_null(strstr(all.data, one.data + strlen(prefix)));
    assert_non_null(strstr(one.data, "\"transactionIndex\":\"0x2\""));

    /* Reorged away: the old block answers by hash, its tx no longer has a receipt. */
    assert_int_equal(bp_sim_chain_reorg(&c, T0), 0);
    snprintf(body, sizeof(body),
             "{\"id\":0,\"method\":\"eth_getBlockByHash\",\"params\":[%s,false]}", hash);
    ask(&c, body, &all);
    assert_non_null(strstr(all.data, "\"number\":\"0x12\""));
    snprintf(body, sizeof(body),
             "{\"id\":1,\"method\":\"eth_getTransactionReceipt\",\"params\":[%s]}", txh);
    ask(&c, body, &one);
    assert_string_equal(one.data, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":null}");
    bp_buf_release(&one);
    bp_buf_release(&all);
    bp_sim_block_release(&b);
    bp_sim_chain_release(&c);
}

static void test_fault_syntax(void **state)
{
    (void)state;
    bp_sim_faults f[3];
    bp_error err = {0};
    bp_sim_faults_clear(f, 3);
    assert_int_equal(bp_sim_faults_parse("ep1:latency=50ms,error_rate=0.1;ep3:lag=5,stall=2s,"
                                         "stall_rate=0.5;*:rate_limit=20",
                                         f, 3, &err),
                     0);
    assert_true(f[0].latency_s > 0.049 && f[0].latency_s < 0.051);
    assert_true(f[0].rate[BP_SIM_F_ERROR] > 0.09);
    assert_int_equal(f[2].lag, 5);
    assert_true(f[2].stall_s == 2.0);
    assert_true(f[1].rate_limit == 20 && f[2].rate_limit == 20);
    assert_int_equal(bp_sim_faults_parse("ep4:lag=1", f, 3, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "ep4"));
    assert_int_equal(bp_sim_faults_parse("ep1:error_rate=2", f, 3, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "error_rate='2'"));
    assert_int_equal(bp_sim_faults_parse("ep1:latency=50", f, 3, &err), BP_EINVAL);
    assert_int_equal(bp_sim_faults_parse("ep2:ws_drop_every=1.5,ws_silent=1", f, 3, &err), 0);
    assert_true(f[1].ws_drop_every == 1.5 && f[1].ws_silent && !f[0].ws_silent);
    assert_int_equal(bp_sim_faults_parse("ep1:ws_drop_every=500ms", f, 3, &err), 0);
    assert_true(f[0].ws_drop_every == 0.5);
    assert_int_equal(bp_sim_faults_parse("ep1:ws_silent=2", f, 3, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "ws_silent='2'"));
    assert_int_equal(bp_sim_faults_parse("ep1:jitter=5ms", f, 3, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "unknown key 'jitter'"));
    /* the strict provider: a quota per window and what its 429s say */
    assert_true(f[0].quota == 0 && f[0].quota_window == 4 && f[0].retry_after == BP_SIM_RA_AUTO);
    assert_int_equal(bp_sim_faults_parse("ep1:quota=8,quota_window=500ms,retry_after=3;"
                                         "ep2:retry_after=none;ep3:retry_after=date",
                                         f, 3, &err),
                     0);
    assert_true(f[0].quota == 8 && f[0].quota_window == 0.5);
    assert_true(f[0].retry_after == BP_SIM_RA_FIXED && f[0].retry_after_s == 3);
    assert_true(f[1].retry_after == BP_SIM_RA_NONE && f[2].retry_after == BP_SIM_RA_DATE);
    assert_int_equal(bp_sim_faults_parse("ep1:retry_after=soon", f, 3, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "retry_after='soon'"));
    assert_int_equal(bp_sim_faults_parse("ep1:quota=2.5", f, 3, &err), BP_EINVAL);
    assert_int_equal(bp_sim_faults_parse("ep1:quota_window=0", f, 3, &err), BP_EINVAL);
    /* Arch: events broken in place (some topics), errors on one method only */
    assert_int_equal(bp_sim_faults_parse("ep2:ws_corrupt_every=3,ws_corrupt_topic=rolledback_"
                                         "transactions+dkg,error_method=get_block",
                                         f, 3, &err),
                     0);
    assert_int_equal(f[1].ws_corrupt_every, 3);
    assert_int_equal(f[1].ws_corrupt_topics, (1u << 3) | (1u << 5));
    assert_string_equal(f[1].error_method, "get_block");
    assert_int_equal(
        bp_sim_faults_parse("ep3:missing_method=get_best_finalized_block_hash", f, 3, &err), 0);
    assert_string_equal(f[2].missing_method, "get_best_finalized_block_hash");
    assert_int_equal(bp_sim_faults_parse("ep3:missing_method=", f, 3, &err), BP_EINVAL);
    assert_int_equal(bp_sim_faults_parse("ep2:ws_corrupt_topic=rolledback", f, 3, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "ws_corrupt_topic='rolledback'"));

    char path[] = "/tmp/bp_test_sim_faults_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *json = "{\"ep2\": {\"truncate_rate\": 0.25, \"latency\": \"1s\"}}";
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    assert_int_equal(bp_sim_faults_load(path, f, 3, &err), 0);
    assert_true(f[1].rate[BP_SIM_F_TRUNCATE] == 0.25 && f[1].latency_s == 1.0);
    unlink(path);
}

static bool sub_cb(void *ud, const char *kind, char id[BP_SIM_SUB_ID_MAX])
{
    (void)ud;
    if (strcmp(kind, "newHeads") != 0)
        return false;
    snprintf(id, BP_SIM_SUB_ID_MAX, "0xab");
    return true;
}

static bool unsub_cb(void *ud, const char *id)
{
    (void)ud;
    return strcmp(id, "0xab") == 0;
}

static void test_subscribe_calls(void **state)
{
    (void)state;
    bp_sim_chain c;
    bp_sim_params p = params(3, 1);
    chain_init(&c, &p);
    bp_sim_scratch s;
    bp_sim_scratch_init(&s);
    bp_sim_subs subs = {.subscribe = sub_cb, .unsubscribe = unsub_cb};
    bp_sim_request r = {.chain = &c, .head = 10, .scratch = &s, .subs = &subs};
    bp_buf out;
    bp_buf_init(&out, 0);
    const char *sub = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_subscribe\","
                      "\"params\":[\"newHeads\"]}";
    assert_int_equal(bp_sim_answer(&r, sub, strlen(sub), &out), 0);
    assert_string_equal(out.data, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"0xab\"}");
    const char *bad = "[{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"eth_subscribe\","
                      "\"params\":[\"logs\"]},{\"jsonrpc\":\"2.0\",\"id\":3,"
                      "\"method\":\"eth_unsubscribe\",\"params\":[\"0xab\"]}]";
    assert_int_equal(bp_sim_answer(&r, bad, strlen(bad), &out), 0);
    assert_non_null(strstr(out.data, "\"id\":2,\"error\":{\"code\":-32602"));
    assert_non_null(strstr(out.data, "\"id\":3,\"result\":true}"));
    r.subs = NULL; /* HTTP */
    assert_int_equal(bp_sim_answer(&r, sub, strlen(sub), &out), 0);
    assert_non_null(strstr(out.data, "-32601"));

    /* The header renderer: block keys minus transactions, uncles and withdrawals. */
    bp_sim_block b;
    bp_error err = {0};
    bp_sim_block_init(&b);
    assert_int_equal(bp_sim_block_gen(&c, 5, 0, &b, &err), 0);
    bp_buf_reset(&out);
    assert_int_equal(bp_sim_render_header(&b, &out), 0);
    assert_non_null(strstr(out.data, "\"number\":\"0x5\""));
    assert_non_null(strstr(out.data, "\"parentHash\":\"0x"));
    assert_non_null(strstr(out.data, "\"timestamp\":"));
    assert_non_null(strstr(out.data, "\"withdrawalsRoot\":\"0x"));
    assert_null(strstr(out.data, "\"transactions\":"));
    assert_null(strstr(out.data, "\"uncles\""));
    assert_true(out.data[0] == '{' && out.data[out.len - 1] == '}');
    bp_sim_block_release(&b);
    bp_buf_release(&out);
    bp_sim_scratch_release(&s);
    bp_sim_chain_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_missing_method),
        cmocka_unit_test(test_default_population_unchanged),
        cmocka_unit_test(test_populations),
        cmocka_unit_test(test_parent_links_and_hash_coordinates),
        cmocka_unit_test(test_decoder_accepts_every_block),
        cmocka_unit_test(test_reorg_replaces_last_depth),
        cmocka_unit_test(test_clock_head_and_reorg_schedule),
        cmocka_unit_test(test_control_fork),
        cmocka_unit_test(test_fork_between_timer_reorgs),
        cmocka_unit_test(test_rpc_envelopes),
        cmocka_unit_test(test_by_hash_and_tx_receipt),
        cmocka_unit_test(test_fault_syntax),
        cmocka_unit_test(test_subscribe_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
