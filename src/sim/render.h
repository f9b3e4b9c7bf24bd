/* render.h - simnode's JSON renderer: generated blocks, transactions, receipts and logs as a
 * modern geth answers them (same keys, same order), written by hand into a reused buffer.
 * Every function appends to out and keeps it NUL-terminated; returns 0, BP_ENOMEM or
 * BP_ETOOBIG (the buffer's cap). */
#ifndef BP_SIM_RENDER_H
#define BP_SIM_RENDER_H

#include <stdbool.h>
#include <stddef.h>

#include "sim/chain.h"
#include "util/buf.h"

/* A rule of the JSON-RPC answers a node of the tests' own breaks on purpose (simnode
 * --faults bad=KIND), so that each of blockpipe's block checks meets a node that fails it. */
enum bp_sim_bad {
    BP_SIM_BAD_NONE = 0,
    BP_SIM_BAD_LOG_INDEX_PER_TX,   /* receipts' logIndex restarts at 0 in every tx (ganache) */
    BP_SIM_BAD_LOG_INDEX_SWAP,     /* the block's last two logs swap their logIndex */
    BP_SIM_BAD_RECEIPT_HASH,       /* receipts of txs 0 and 1 name each other's hash */
    BP_SIM_BAD_RECEIPT_INDEX,      /* a receipt's transactionIndex is one more than its tx's */
    BP_SIM_BAD_RECEIPT_BLOCK_HASH, /* receipts name the parent block's hash */
    BP_SIM_BAD_RECEIPT_NUMBER,     /* receipts name the next block number */
    BP_SIM_BAD_TX_INDEX,           /* transactions' transactionIndex one more than position */
    BP_SIM_BAD_COUNT
};
/* "log_index_per_tx", ...: the --faults bad= names. */
const char *bp_sim_bad_name(enum bp_sim_bad bad);

/* The eth_getBlockByNumber / ByHash result object; full_txs: objects, else hashes. */
int bp_sim_render_block(const bp_sim_chain *c, const bp_sim_block *b, bool full_txs, bp_buf *out);
int bp_sim_render_block_as(const bp_sim_chain *c, const bp_sim_block *b, bool full_txs,
                           enum bp_sim_bad bad, bp_buf *out);
/* A newHeads notification's header: the block's keys without transactions, uncles and
 * withdrawals (as geth sends it, plus size). */
int bp_sim_render_header(const bp_sim_block *b, bp_buf *out);
/* The eth_getBlockReceipts result: an array with one receipt per tx. */
int bp_sim_render_receipts(const bp_sim_block *b, bp_buf *out);
int bp_sim_render_receipts_as(const bp_sim_block *b, enum bp_sim_bad bad, bp_buf *out);
/* One eth_getTransactionReceipt result (idx < b->tx_count), with `bad` broken. */
int bp_sim_render_receipt(const bp_sim_block *b, size_t idx, enum bp_sim_bad bad, bp_buf *out);
/* "0x" + 64 hex digits, quoted (68 bytes, no NUL). Returns the end. */
char *bp_sim_put_h256(char *p, const bp_sim_h256 *h);
/* "0x" + 40 hex digits, quoted (44 bytes, no NUL), as every address is rendered. Returns the
 * end. */
char *bp_sim_put_addr(char *p, const bp_sim_addr *a);
/* Parses "0x" + 64 hex digits; false otherwise. */
bool bp_sim_parse_h256(const char *s, bp_sim_h256 *h);

#endif
