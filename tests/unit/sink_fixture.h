/* sink_fixture.h - hand-built blocks for the output tests (test_sink_sqlite, test_sink_files):
 * one block holds a value > 2^64, a nonce > INT64_MAX, a contract creation, a typeless
 * pre-Byzantium tx, a blob tx, logs with 0..4 topics and two withdrawals. */
#ifndef BP_TEST_SINK_FIXTURE_H
#define BP_TEST_SINK_FIXTURE_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "blockpipe/model.h"
#include "blockpipe/sink.h"
#include "util/arena.h"
#include "util/hex.h"

/* "0x" + tag (2 hex) + n (62 hex): a 32-byte hash. */
/* Expected hash / address text of (tag, n), for comparisons: rotating buffers so several may
 * appear in one printf. */
static inline const char *H(unsigned tag, uint64_t n)
{
    static char bufs[32][80];
    static unsigned next;
    char *p = bufs[next++ % 32];
    snprintf(p, 80, "0x%02x%062" PRIx64, tag, n);
    return p;
}

static inline const char *A(unsigned tag, uint64_t n)
{
    static char bufs[32][80];
    static unsigned next;
    char *p = bufs[next++ % 32];
    snprintf(p, 80, "0x%02x%038" PRIx64, tag, n);
    return p;
}

static inline const char *fx_hash(bp_block *b, unsigned tag, uint64_t n)
{
    char tmp[80];
    snprintf(tmp, sizeof(tmp), "0x%02x%062" PRIx64, tag & 0xffu, n);
    return bp_arena_strndup(b->arena, tmp, strlen(tmp));
}

/* "0x" + tag (2 hex) + n (38 hex): a 20-byte address. */
static inline const char *fx_addr(bp_block *b, unsigned tag, uint64_t n)
{
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "0x%02x%038" PRIx64, tag & 0xffu, n);
    return bp_arena_strndup(b->arena, tmp, strlen(tmp));
}

static inline const char *fx_str(bp_block *b, const char *s)
{
    return bp_arena_strndup(b->arena, s, strlen(s));
}

/* Hex text kept as bytes, as the decoder keeps r, s and a receipt's bloom. */
static inline const bp_hexb *fx_hexb(bp_block *b, const char *s)
{
    return bp_hexb_make(b->arena, s, strlen(s));
}

static inline bp_qty fx_qty(uint64_t v)
{
    bp_qty q = {.set = true};
    bp_u256_from_u64(&q.v, v);
    return q;
}

static inline bp_qty fx_qty_dec(const char *dec)
{
    bp_qty q = {.set = true};
    if (bp_u256_from_dec(dec, strlen(dec), &q.v) != 0)
        q.set = false;
    return q;
}

static inline bp_opt_u64 fx_opt(uint64_t v)
{
    return (bp_opt_u64){.v = v, .set = true};
}

/* The hash of block n on fork f (f = 0: the main chain). */
static inline void fx_hash_text(char out[BP_HASH_STRLEN], unsigned fork, uint64_t n)
{
    snprintf(out, BP_HASH_STRLEN, "0x%02x%062" PRIx64, (0xb0u + fork) & 0xffu, n);
}

static inline void fx_fill_header(bp_block *b, unsigned fork, uint64_t n)
{
    b->number = n;
    b->hash = fx_hash(b, 0xb0 + fork, n);
    b->parent_hash = fx_hash(b, 0xb0, n ? n - 1 : 0);
    b->nonce = fx_str(b, "0x0000000000000042");
    b->sha3_uncles = fx_hash(b, 0x5a, 0);
    b->logs_bloom = fx_str(b, "0x00ff");
    b->transactions_root = fx_hash(b, 0x70, n);
    b->state_root = fx_hash(b, 0x71, n);
    b->receipts_root = fx_hash(b, 0x72, n);
    b->miner = fx_addr(b, 0xaa, 1);
    b->mix_hash = fx_hash(b, 0x73, n);
    b->difficulty = fx_qty(7298514125186u);
    b->total_difficulty = fx_qty_dec("58750003716598352816469");
    b->size = fx_opt(1113);
    b->extra_data = fx_str(b, "0xd783");
    b->gas_limit = 30000000;
    b->gas_used = 143706;
    b->timestamp = 1683029999 + n;
    b->base_fee_per_gas = fx_qty(80869370967u);
    b->withdrawals_root = fx_hash(b, 0x74, n);
    b->blob_gas_used = fx_opt(131072);
    b->excess_blob_gas = fx_opt(0);
    b->parent_beacon_block_root = fx_hash(b, 0x75, n);
    b->requests_hash = NULL;
    b->uncle_count = 0;
}

static inline void fx_fill_withdrawals(bp_block *b)
{
    b->has_withdrawals = true;
    b->withdrawal_count = 2;
    b->withdrawals = bp_arena_calloc(b->arena, 2, sizeof(bp_withdrawal));
    for (size_t i = 0; i < 2; i++) {
        b->withdrawals[i].index = 2210752 + i;
        b->withdrawals[i].validator_index = 540230 + i;
        b->withdrawals[i].address = fx_addr(b, 0xb9, 7);
        b->withdrawals[i].amount = 45762059 - i;
    }
}

static inline void fx_tx_common(bp_block *b, bp_tx *t, size_t i)
{
    t->hash = fx_hash(b, 0xe0 + (unsigned)i, b->number);
    t->block_hash = b->hash;
    t->block_number = b->number;
    t->block_timestamp = b->timestamp;
    t->transaction_index = i;
    t->from_address = fx_addr(b, 0xf0, i);
    t->to_address = fx_addr(b, 0x70, i);
    t->nonce = i;
    t->gas = 21000;
    t->value = fx_qty(0);
    t->gas_price = fx_qty(50000000000u);
    t->input = fx_hexb(b, "0x");
    t->v = fx_str(b, "0x1b");
    t->r = fx_hexb(b, fx_hash(b, 0x01, i));
    t->s = fx_hexb(b, fx_hash(b, 0x02, i));
    t->has_receipt = b->has_receipts;
    t->receipt_cumulative_gas_used = 21000 * (i + 1);
    t->receipt_gas_used = 21000;
    t->receipt_effective_gas_price = t->gas_price;
    t->receipt_logs_bloom = fx_hexb(b, "0x00");
}

/* tx0: type 2, value 3*2^64+5, nonce 2^64-1, 2 logs (0 and 1 topics);
 * tx1: type 0 contract creation (to NULL), status 0;
 * tx2: no "type", pre-Byzantium receipt (root, no status), 3 logs (2, 3 and 4 topics);
 * tx3: type 3 blob tx. */
static inline void fx_fill_txs(bp_block *b)
{
    b->tx_count = b->transaction_count = 4;
    b->txs = bp_arena_calloc(b->arena, 4, sizeof(bp_tx));
    for (size_t i = 0; i < 4; i++)
        fx_tx_common(b, &b->txs[i], i);
    bp_tx *t = &b->txs[0];
    t->transaction_type = fx_opt(2);
    t->chain_id = fx_opt(1);
    t->nonce = UINT64_MAX;
    t->value = fx_qty_dec("55340232221128654853");
    t->gas_price = t->receipt_effective_gas_price = fx_qty(91022338812u);
    t->max_fee_per_gas = fx_qty(91022338812u);
    t->max_priority_fee_per_gas = fx_qty(100000000);
    t->y_parity = fx_str(b, "0x1");
    t->access_list_json = fx_str(b, "[]");
    t->receipt_status = fx_opt(1);
    t = &b->txs[1];
    t->transaction_type = fx_opt(0);
    t->to_address = NULL;
    t->input = fx_hexb(b, "0x6060604052");
    t->receipt_contract_address = fx_addr(b, 0xcc, b->number);
    t->receipt_status = fx_opt(0);
    t = &b->txs[2];
    t->rare = bp_arena_calloc(b->arena, 1, sizeof(*t->rare));
    t->rare->receipt_root = fx_hash(b, 0x2f, b->number);
    t = &b->txs[3];
    t->transaction_type = fx_opt(3);
    t->chain_id = fx_opt(1);
    t->max_fee_per_gas = fx_qty(3000000000u);
    t->max_priority_fee_per_gas = fx_qty(1000000000u);
    t->rare = bp_arena_calloc(b->arena, 1, sizeof(*t->rare));
    t->rare->max_fee_per_blob_gas = fx_qty(1);
    t->rare->blob_versioned_hashes_json = fx_str(b, "[\"0x0100000000000000000000000000000000000000"
                                                    "000000000000000000000001\"]");
    t->receipt_status = fx_opt(1);
    t->rare->receipt_blob_gas_used = fx_opt(131072);
    t->rare->receipt_blob_gas_price = fx_qty(1);
}

static inline void fx_log(bp_block *b, bp_log *l, size_t index, size_t tx, unsigned topics)
{
    l->log_index = index;
    l->transaction_index = tx;
    l->transaction_hash = b->txs[tx].hash;
    l->address = fx_addr(b, 0xf4, index);
    l->data = index % 2 ? fx_str(b, "0x") : fx_hash(b, 0xda, index);
    l->topic_count = (uint8_t)topics;
    for (unsigned k = 0; k < topics; k++)
        l->topics[k] = fx_hash(b, 0x10 + k, index);
}

static inline void fx_fill_logs(bp_block *b)
{
    static const struct {
        size_t tx;
        unsigned topics;
    } spec[] = {{0, 0}, {0, 1}, {2, 2}, {2, 3}, {2, 4}};
    b->log_count = 5;
    b->logs = bp_arena_calloc(b->arena, 5, sizeof(bp_log));
    for (size_t i = 0; i < 5; i++)
        fx_log(b, &b->logs[i], i, spec[i].tx, spec[i].topics);
    b->txs[0].log_offset = 0;
    b->txs[0].log_count = 2;
    b->txs[2].log_offset = 2;
    b->txs[2].log_count = 3;
}

/* Block n of fork (0 = main chain); full: 4 txs, logs, withdrawals; else an empty block. */
static inline bp_block *fx_block(uint64_t n, unsigned fork, bool full, bool receipts)
{
    bp_block *b = bp_block_new();
    if (!b)
        return NULL;
    fx_fill_header(b, fork, n);
    b->has_receipts = receipts;
    if (full) {
        fx_fill_withdrawals(b);
        fx_fill_txs(b);
        if (receipts)
            fx_fill_logs(b);
    }
    return b;
}

static inline bp_checkpoint fx_cp(uint64_t n, unsigned fork)
{
    bp_checkpoint cp = {.set = true, .number = n};
    fx_hash_text(cp.hash, fork, n);
    return cp;
}

#endif
