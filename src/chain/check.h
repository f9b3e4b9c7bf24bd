/* check.h - what a node must get right about every block, checked before the block is used.
 *
 * Decoding already refuses an answer that mixes objects up (a receipt or log whose
 * blockHash, blockNumber, transactionHash or transactionIndex is not its transaction's, a
 * transaction whose transactionIndex is not its position, a receipt count that is not the
 * transaction count). What is left is the block as a whole: transaction indexes run
 * 0..n-1, every transaction has its receipt, and log indexes strictly increase across the
 * block. One violation has a certain repair: log indexes that restart at 0 in every
 * transaction (ganache 7's receipts) are renumbered by position across the block, which is
 * what the index means and what the same node's eth_getLogs says; the endpoint is warned
 * about once. Under `strict` that is refused like any other violation. */
#ifndef BP_CHAIN_CHECK_H
#define BP_CHAIN_CHECK_H

#include <stdbool.h>

#include "blockpipe/error.h"
#include "blockpipe/model.h"
#include "chain/limits.h"

/* 0, or BP_EPARSE naming the endpoint (as shown), block, transaction and field. `once` is
 * the endpoint's (a repair is said once per endpoint). */
int bp_block_check(bp_block *b, const char *endpoint, bool strict, bp_rpc_limits *once,
                   bp_error *err);

#endif
