/* limits.h - what one endpoint has shown it refuses, learnt from its answers: a cap on the
 * calls in one request (1: no batches at all), a cap on an answer's size, methods it lacks.
 * One bp_rpc_limits per endpoint, shared by every thread that talks to it (atomics: no
 * lock); the fetch path lives within it and the pool sizes requests by it. A limit learnt
 * is never a failed attempt: the blocks are asked for again within it at once. */
#ifndef BP_CHAIN_LIMITS_H
#define BP_CHAIN_LIMITS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <yajl/yajl_tree.h>

typedef struct bp_rpc_limits {
    atomic_int max_calls;         /* calls per HTTP request it accepts; 0: no cap seen */
    atomic_int max_blocks;        /* blocks per request since an answer was too large; 0: none */
    atomic_size_t max_bytes;      /* about the largest answer it sends (0: none seen) */
    atomic_int no_block_receipts; /* it lacks eth_getBlockReceipts */
    atomic_int warned;            /* enum bp_limits_once bits: what was said once */
} bp_rpc_limits;

/* Things said once per endpoint. */
enum bp_limits_once { BP_ONCE_LOG_INDEX = 1 };

void bp_rpc_limits_init(bp_rpc_limits *l);

/* True the first time `what` is asked for on this endpoint. */
bool bp_rpc_limits_once(bp_rpc_limits *l, enum bp_limits_once what);

/* What an answer taught: at most `calls` calls per request; at most `blocks` blocks per
 * request (answers of about `bytes` were refused). True when the limit got lower (say so). */
bool bp_rpc_limits_learn_calls(bp_rpc_limits *l, int calls);
bool bp_rpc_limits_learn_blocks(bp_rpc_limits *l, int blocks, size_t bytes);

/* "no-batches", "batch<=10" (calls), "answers<=1024KiB", "no-eth_getBlockReceipts", joined
 * by ","; "" when nothing was learnt. */
void bp_rpc_limits_describe(bp_rpc_limits *l, char *out, size_t cap);

/* The node says it lacks the method: -32601, or a message like "method not found",
 * "unsupported method", "the method X does not exist/is not available", "not supported"
 * (ganache answers eth_getBlockReceipts with -32700 and such a message). */
bool bp_rpc_is_method_missing(yajl_val error);

/* An error answering a whole batch of `asked` calls that refuses the batch as such (code
 * -32600 or a message about the batch's size): the cap it names ("exceeds the limit of 10",
 * "max 10"), else asked / 2 (at least 1). 0: not a batch refusal. */
int bp_rpc_batch_cap(yajl_val error, size_t asked);

/* The node refused to send an answer that large ("response size exceeded", geth's
 * "response too large", -32003 with "too large"). */
bool bp_rpc_is_response_too_big(yajl_val error);

#endif
