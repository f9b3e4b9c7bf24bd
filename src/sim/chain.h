/* chain.h - simnode's deterministic synthetic chain: block n of fork f is a pure function of
 * (seed, n, f); head growth and reorgs follow the clock.
 *
 * Hashes are NOT keccak: they are pseudo-random 32-byte values from a splitmix64 mix of
 * (seed, number, fork[, tx index]). Block and tx hashes carry their own coordinates (XORed
 * with a seed-derived key) so eth_getBlockByHash / eth_getTransactionReceipt find them in
 * O(1): decode the coordinates, regenerate the hash, compare.
 *
 * Forks: fork 0 is the original chain. Reorg k (k = 1, 2, ...) replaces the heights
 * start_k..head with fork k, start_k = max(1, head - depth + 1); the timer's (--reorg-every)
 * and the on-demand ones (bp_sim_chain_fork: simnode_fork) are numbered in the order made.
 * The canonical fork at height n is the largest k with start_k <= n: a binary search while
 * start_k never decreases (the timer's depth is fixed and the head never goes back), a scan
 * of the forks from the first one deeper than the fork before (first_dip, on demand only).
 * Blocks of an orphaned fork still answer by hash.
 *
 * Threading: bp_sim_chain_tick may run in any thread (one at a time under an internal lock);
 * every other function reads a consistent prefix of the reorg list without locking. */
#ifndef BP_SIM_CHAIN_H
#define BP_SIM_CHAIN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/error.h"
#include "blockpipe/model.h"

#define BP_SIM_MAX_FORKS 65535u
#define BP_SIM_MAX_TXS 100000u
#define BP_SIM_WITHDRAWALS 16

typedef struct bp_sim_params {
    uint64_t seed;
    uint64_t length;  /* blocks 0..length-1 at most */
    uint32_t txs_min; /* transactions per block: uniform in [txs_min, txs_max] */
    uint32_t txs_max;
    double block_time;   /* seconds; 0 = the whole chain exists from the start */
    uint64_t start_head; /* head at start when block_time > 0 */
    uint64_t chain_id;
    double reorg_every; /* seconds; 0 = no reorgs */
    uint32_t reorg_depth;
    /* The address populations: externally owned accounts (senders, recipients, log topics,
     * withdrawals) and called contracts, drawn uniformly (zipf 0) or Zipf-like: rank r of the
     * pool with probability about proportional to (r + 1)^-zipf, so distinct addresses keep
     * growing over a window as on a real chain. 0: the defaults (4,096 and 256). */
    uint64_t senders, contracts;
    double zipf;
} bp_sim_params;

#define BP_SIM_DEFAULT_SENDERS 4096u
#define BP_SIM_DEFAULT_CONTRACTS 256u
#define BP_SIM_MAX_POOL (1ull << 40)
#define BP_SIM_MAX_ZIPF 4.0

/* 32 bytes as four big-endian words, w[0] first. */
typedef struct bp_sim_h256 {
    uint64_t w[4];
} bp_sim_h256;

/* 20 bytes: w[0], w[1], then the high 4 bytes of w[2]. */
typedef struct bp_sim_addr {
    uint64_t w[3];
} bp_sim_addr;

typedef struct bp_sim_log {
    bp_sim_addr address;
    bp_sim_h256 topics[4];
    uint8_t topic_count;
    uint16_t data_words; /* data is data_words x 32 bytes, from data_seed */
    uint64_t data_seed;
} bp_sim_log;

enum bp_sim_input { BP_SIM_IN_EMPTY, BP_SIM_IN_TRANSFER, BP_SIM_IN_CALL, BP_SIM_IN_CREATE };

typedef struct bp_sim_tx {
    bp_sim_h256 hash;
    uint8_t type; /* 0..4 */
    bool has_to;  /* false: contract creation */
    bool status;  /* receipt status 1 / 0 */
    uint8_t y_parity;
    uint8_t access_count; /* accessList entries (types 1-4), keys from access_seed */
    uint8_t blob_count;   /* type 3 */
    uint8_t auth_count;   /* type 4 */
    uint8_t input_kind;   /* enum bp_sim_input */
    uint16_t input_words; /* 32-byte words after the selector / of init code */
    bp_sim_addr from, to, contract;
    uint64_t nonce, gas, gas_used, cumulative_gas_used;
    bp_u256 value;
    uint64_t gas_price; /* legacy / type 1: the price; else the effective price */
    uint64_t max_fee, max_priority_fee, max_fee_per_blob_gas;
    uint64_t input_seed, access_seed, auth_seed;
    bp_sim_h256 r, s;
    uint32_t log_offset, log_count;
} bp_sim_tx;

typedef struct bp_sim_withdrawal {
    uint64_t index, validator_index, amount;
    bp_sim_addr address;
} bp_sim_withdrawal;

typedef struct bp_sim_block {
    uint64_t number;
    uint32_t fork;
    bp_sim_h256 hash, parent_hash, state_root, transactions_root, receipts_root;
    bp_sim_h256 parent_beacon_block_root, requests_hash, withdrawals_root;
    bp_sim_addr miner;
    uint64_t timestamp, gas_limit, gas_used, base_fee, blob_gas_used, excess_blob_gas, size;
    uint64_t bloom[32]; /* 256 bytes, big-endian words */
    bp_sim_tx *txs;
    size_t tx_count, tx_cap;
    bp_sim_log *logs;
    size_t log_count, log_cap;
    bp_sim_withdrawal withdrawals[BP_SIM_WITHDRAWALS];
    size_t withdrawal_count;
} bp_sim_block;

typedef struct bp_sim_chain {
    bp_sim_params p;
    double t0; /* clock value at bp_sim_chain_init */
    pthread_mutex_t tick_lock;
    atomic_uint nforks;      /* reorgs so far: forks 1..nforks exist */
    uint64_t *fork_start;    /* [0..BP_SIM_MAX_FORKS]: first height of fork k (fork_start[0] = 0) */
    uint64_t *fork_head;     /* head when fork k was made */
    atomic_uint first_dip;   /* the first k with fork_start[k] < fork_start[k - 1], 0: none */
    atomic_uint timer_forks; /* forks the --reorg-every schedule made */
} bp_sim_chain;

/* What a fork did: fork `fork` replaced the heights start..head (the fork point: start - 1). */
typedef struct bp_sim_fork_info {
    uint32_t fork;
    uint64_t start, head;
} bp_sim_fork_info;

/* Checks p (message names the bad parameter) and starts the clock at now (seconds). */
int bp_sim_chain_init(bp_sim_chain *c, const bp_sim_params *p, double now, bp_error *err);
void bp_sim_chain_release(bp_sim_chain *c);
/* Applies the reorgs due by `now` (lazy: nothing happens between requests). Returns the
 * number of reorgs applied by this call. */
unsigned bp_sim_chain_tick(bp_sim_chain *c, double now);
/* Makes one reorg at once (for tests and the reorg schedule). Returns BP_EINVAL when the
 * fork ids are used up. */
int bp_sim_chain_reorg(bp_sim_chain *c, double now);
/* A fork of the last `depth` blocks at once (simnode_fork), after the reorgs due by now:
 * BP_EINVAL with a message when depth is 0 or more than the blocks above genesis, or the fork
 * ids are used up. info (may be NULL) says what it replaced. */
int bp_sim_chain_fork(bp_sim_chain *c, double now, uint64_t depth, bp_sim_fork_info *info,
                      bp_error *err);
/* The chain head at time now (block_time growth, capped by length). */
uint64_t bp_sim_chain_head(const bp_sim_chain *c, double now);
/* The canonical fork at height n (as of the reorgs applied so far). */
uint32_t bp_sim_chain_fork_at(const bp_sim_chain *c, uint64_t n);
/* The fork at height n as of reorg k (the block (m, k)'s ancestor at n for m >= n). */
uint32_t bp_sim_chain_fork_upto(const bp_sim_chain *c, uint64_t n, uint32_t k);
/* True when block (n, fork) ever existed on some branch at or before head `head`. */
bool bp_sim_chain_block_exists(const bp_sim_chain *c, uint64_t n, uint32_t fork, uint64_t head);

/* Hashes (pure functions of the seed). */
void bp_sim_block_hash(const bp_sim_chain *c, uint64_t n, uint32_t fork, bp_sim_h256 *out);
void bp_sim_tx_hash(const bp_sim_chain *c, uint64_t n, uint32_t fork, uint32_t idx,
                    bp_sim_h256 *out);
/* Recover the coordinates of a block / tx hash; false when it is not one of ours. */
bool bp_sim_block_hash_decode(const bp_sim_chain *c, const bp_sim_h256 *h, uint64_t *n,
                              uint32_t *fork);
bool bp_sim_tx_hash_decode(const bp_sim_chain *c, const bp_sim_h256 *h, uint64_t *n, uint32_t *fork,
                           uint32_t *idx);

void bp_sim_block_init(bp_sim_block *b);
void bp_sim_block_release(bp_sim_block *b);
/* Generates block (n, fork) into b (storage reused). BP_ENOMEM only. */
int bp_sim_block_gen(const bp_sim_chain *c, uint64_t n, uint32_t fork, bp_sim_block *b,
                     bp_error *err);

/* ORs the bloom bits of one log (address and topics; 3 bits each, not keccak) into bloom. */
void bp_sim_log_bloom(const bp_sim_log *l, uint64_t bloom[32]);

/* splitmix64 and the mixes built on it (also used by the renderer for byte streams). */
static inline uint64_t bp_sim_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static inline uint64_t bp_sim_mix4(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    return bp_sim_mix64(a ^ bp_sim_mix64(b ^ bp_sim_mix64(c ^ bp_sim_mix64(d))));
}

/* Next value of a splitmix64 stream. */
static inline uint64_t bp_sim_next(uint64_t *state)
{
    *state += 0x9e3779b97f4a7c15ull;
    uint64_t x = *state;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

#endif
