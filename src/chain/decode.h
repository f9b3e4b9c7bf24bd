/* decode.h - JSON-RPC answers (yajl trees) -> bp_block / bp_tx / bp_log.
 *
 * Keys we do not model are kept, per object, as one compact JSON object (bp_block.extra_json,
 * bp_tx.extra_json and receipt_extra_json, bp_log.extra_json): a chain's own fields (Arbitrum's
 * l1BlockNumber, zkSync's l1BatchNumber, ...) are stored, not dropped. A malformed value (bad hex,
 * a missing required field, a wrong JSON type) is BP_EPARSE with a message naming the block,
 * the tx or log index and the field, e.g.
 *   "block 483920: transaction 2: field 'gasPrice': not a hex quantity: \"0xZZ\"".
 * Never a crash, never a silently wrong row.
 *
 * The same objects decoded while the answer is parsed: decode_stream.h. The answer's JSON-RPC
 * envelope (ids, results, errors): rpc_envelope.h. */
#ifndef BP_CHAIN_DECODE_H
#define BP_CHAIN_DECODE_H

#include <yajl/yajl_tree.h>

#include "blockpipe/error.h"
#include "blockpipe/model.h"

/* Zero-copy decoding: the text a tree from bp_json_parse_inplace points into. */
typedef struct bp_body {
    char *data;
    size_t len;
} bp_body;

/* Decode the `result` of eth_getBlockByNumber / eth_getBlockByHash into b (from
 * bp_block_new()). full_txs: the request asked for full transaction objects (true) or only
 * hashes (false); with hashes only, tx_count stays 0, transaction_count is set and
 * txs[i].hash is still filled (receipt fallback needs the hashes). A JSON null result is
 * BP_ENOTFOUND. */
int bp_decode_block(yajl_val result, bool full_txs, bp_block *b, bp_error *err);

/* Same, zero-copy: result is (part of) a tree parsed by bp_json_parse_inplace over body, and
 * b owns body or a reference to it (bp_arena_adopt*) before the tree's text goes away. Hex
 * strings inside body are validated and lower-cased there and b points at them; strings
 * elsewhere (escaped ones, other trees) are copied as by bp_decode_block. body NULL: copy. */
int bp_decode_block_in(yajl_val result, bool full_txs, const bp_body *body, bp_block *b,
                       bp_error *err);

/* Merge receipts into b: `result` is the array answered by eth_getBlockReceipts (one
 * receipt per tx, in tx order). Fills the receipt_* fields of b->txs, b->logs, and sets
 * b->has_receipts. The receipts' blockHash must equal b->hash (else BP_EPARSE naming both
 * hashes: the node answered for another fork) and their count must equal the tx count,
 * except for Polygon PoS's state-sync receipt: one more receipt than transactions, the last
 * with gasUsed 0, becomes a transaction of its own (type 0x7f, tx_count grows by one). */
int bp_decode_block_receipts(yajl_val result, bp_block *b, bp_error *err);

/* bp_decode_block_receipts, zero-copy as bp_decode_block_in. */
int bp_decode_block_receipts_in(yajl_val result, const bp_body *body, bp_block *b, bp_error *err);

/* Same from individual eth_getTransactionReceipt results: receipts[i] belongs to b->txs[i]. */
int bp_decode_receipt_list(yajl_val const *receipts, size_t n, bp_block *b, bp_error *err);

/* A transaction type of an L2 or sidechain we know (OP deposit 0x7e, Arbitrum 0x64-0x6a and
 * 0x78, zkSync 0x71 and 0xff, Polygon state sync 0x7f): decoded like the Ethereum types, its
 * own fields in extra_json, no raw_json. */
bool bp_l2_tx_type(uint64_t type);

#endif
