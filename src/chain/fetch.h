/* fetch.h - fetch one whole block: header, transactions, receipts, logs.
 *
 * One HTTP round trip when the node has eth_getBlockReceipts: a batch of
 * [eth_getBlockByNumber(n, full), eth_getBlockReceipts(n)]. When the node says it lacks
 * eth_getBlockReceipts (by message or code: chain/limits.h), the endpoint's limits remember
 * it and receipts come from batched eth_getTransactionReceipt calls (chunks of at most
 * receipt_batch hashes). The endpoint's other limits (chain/limits.h) are learnt from its
 * answers and lived within: a batch refused for its size is sent again in smaller ones (one
 * call per request when it takes no batches), an answer refused for its size is asked for
 * in fewer blocks. Every block is checked (chain/check.h) before it is returned. */
#ifndef BP_CHAIN_FETCH_H
#define BP_CHAIN_FETCH_H

#include <stdatomic.h>
#include <stdint.h>

#include "blockpipe/error.h"
#include "blockpipe/model.h"
#include "chain/rpc.h"

enum bp_fetch_what {
    BP_FETCH_BLOCKS = 1u << 0,
    BP_FETCH_TRANSACTIONS = 1u << 1,
    BP_FETCH_RECEIPTS = 1u << 2,
    BP_FETCH_LOGS = 1u << 3,
    BP_FETCH_ALL = 0xfu,
};

/* Parses "blocks,transactions,receipts,logs" (any subset, any order); 0 or BP_EINVAL naming
 * the unknown word. "blocks" is always implied. */
int bp_fetch_parse_list(const char *list, unsigned *out, bp_error *err);

/* State shared by all workers of one chain. */
typedef struct bp_fetch_shared {
    bool strict_node;     /* --strict-node: a block that needs a repair is an error */
    unsigned what;        /* enum bp_fetch_what bits */
    size_t receipt_batch; /* eth_getTransactionReceipt calls per batch (default 100) */
} bp_fetch_shared;

void bp_fetch_shared_init(bp_fetch_shared *s, unsigned what);

/* Fetch block n. On success *out is a new block the caller owns. Transactions are fetched
 * in full when what has TRANSACTIONS, RECEIPTS or LOGS; receipts when RECEIPTS or LOGS.
 * BP_ENOTFOUND when the node has no block n yet. Every error message starts "block N: ". */
int bp_fetch_block(bp_rpc *rpc, bp_fetch_shared *shared, uint64_t n, bp_block **out, bp_error *err);

/* Blocks first .. first+count-1 in one HTTP request (a batch of 2 × count calls). Each
 * block has its own outcome: out[i] (caller owns) or rcs[i] / errs[i]. A transport error
 * fails them all. Returns 0 when every block came, else the first failure's code. */
int bp_fetch_range(bp_rpc *rpc, bp_fetch_shared *shared, uint64_t first, size_t count,
                   bp_block **out, int *rcs, bp_error *errs);

/* Same by hash (used while walking back a reorg). */
int bp_fetch_block_by_hash(bp_rpc *rpc, bp_fetch_shared *shared, const char *hash, bp_block **out,
                           bp_error *err);

/* One error object answered a whole batch of `asked` calls: when it refuses the batch for its
 * size, the endpoint learns the cap (bp_rpc_limits_learn_calls; logged once) and this is true:
 * send again within it. Any family's batches (EVM fetch, Arch source). */
bool bp_fetch_batch_refused(bp_rpc *rpc, yajl_val error, size_t asked);

#endif
