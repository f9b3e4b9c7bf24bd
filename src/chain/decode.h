/* decode.h - JSON-RPC answers (yajl trees) -> bp_block / bp_tx / bp_log.
 *
 * Unknown keys are ignored (old Parity answers carry many). A malformed value (bad hex,
 * a missing required field, a wrong JSON type) is BP_EPARSE with a message naming the block,
 * the tx or log index and the field, e.g.
 *   "block 483920: transaction 2: field 'gasPrice': not a hex quantity: \"0xZZ\"".
 * Never a crash, never a silently wrong row. */
#ifndef BP_CHAIN_DECODE_H
#define BP_CHAIN_DECODE_H

#include <yajl/yajl_tree.h>

#include "blockpipe/error.h"
#include "blockpipe/model.h"
#include "chain/json.h"

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
 * hashes: the node answered for another fork) and their count must equal the tx count. */
int bp_decode_block_receipts(yajl_val result, bp_block *b, bp_error *err);

/* bp_decode_block_receipts, zero-copy as bp_decode_block_in. */
int bp_decode_block_receipts_in(yajl_val result, const bp_body *body, bp_block *b, bp_error *err);

/* Same from individual eth_getTransactionReceipt results: receipts[i] belongs to b->txs[i]. */
int bp_decode_receipt_list(yajl_val const *receipts, size_t n, bp_block *b, bp_error *err);

/* Parse a whole HTTP body holding a JSON-RPC response (single object or batch array).
 * On success *root is the tree (from bp_json_parse: free it with bp_json_free) and results[i] /
 * errors[i] point into it, ordered by the numeric request id 0..n-1 (answers may arrive
 * in any order; a missing id is matched by position). errors[i] is the "error" object or
 * NULL. A body that is not JSON, not the expected shape, or lacks an answer is BP_EPARSE. */
int bp_decode_rpc_response(const char *body, size_t len, size_t n, yajl_val *root,
                           yajl_val *results, yajl_val *errors, bp_error *err);

/* Same, parsing body in place (bp_json_parse_inplace): body must outlive *root and the
 * strings are written to (NULs over closing quotes). For bp_decode_block_in. */
int bp_decode_rpc_response_inplace(char *body, size_t len, size_t n, yajl_val *root,
                                   yajl_val *results, yajl_val *errors, bp_error *err);

/* bp_decode_rpc_response over a tree already parsed (by bp_json_stream). */
int bp_decode_rpc_tree(yajl_val root, size_t n, yajl_val *results, yajl_val *errors, bp_error *err);

/* ---- Streaming: one block's transactions and receipts decoded as they are parsed ----
 *
 * With bp_json_stream the objects of a block's "transactions" array and of a receipts array
 * arrive one at a time (and are then dropped), so a 50,000-tx block never exists as text or
 * tree. Strings are copied into the block. The flow for one block:
 *   bp_block_stream_init(&s, b);
 *   want a tx element:       bp_block_stream_start_txs(&s, number, hash, timestamp) -> stream?
 *   each tx element:         bp_block_stream_tx(&s, index, obj)
 *   the block's result done: bp_decode_block_streamed(result, full, &s, err) (header, checks,
 *                            whatever was not streamed; the block owns the txs after it)
 *   want a receipt element:  bp_block_stream_start_receipts(&s) -> stream?
 *   each receipt element:    bp_block_stream_receipt(&s, index, obj)
 *   the receipts done:       bp_decode_receipts_streamed(result, &s, err)
 *   always:                  bp_block_stream_release(&s)
 * An element's decode error is kept and reported by the matching *_streamed call, with the
 * same message a whole-tree decode gives; later elements of that block are skipped. When
 * streaming was not started (the block's number, hash and timestamp came after its
 * transactions; receipts are streamed only after streamed transactions, so not when they
 * come before the block) the *_streamed calls decode the tree as bp_decode_block /
 * bp_decode_block_receipts do. */
typedef struct bp_block_stream {
    bp_block *b;
    bool txs_on, receipts_on;
    /* The first error of a streamed tx / receipt (code BP_OK while there is none). */
    bp_error txs_err, receipts_err;
    bp_tx *txs; /* malloc'd until the block adopts it */
    size_t n_txs, cap_txs;
    bp_log *logs;
    size_t n_logs, cap_logs;
    size_t n_seen; /* receipts handed in */
} bp_block_stream;

void bp_block_stream_init(bp_block_stream *s, bp_block *b);
bool bp_block_stream_start_txs(bp_block_stream *s, yajl_val number, yajl_val hash, yajl_val ts);
int bp_block_stream_tx(bp_block_stream *s, size_t index, yajl_val tx);
int bp_decode_block_streamed(yajl_val result, bool full, bp_block_stream *s, bp_error *err);
bool bp_block_stream_start_receipts(bp_block_stream *s);
int bp_block_stream_receipt(bp_block_stream *s, size_t index, yajl_val r);
int bp_decode_receipts_streamed(yajl_val result, bp_block_stream *s, bp_error *err);
void bp_block_stream_release(bp_block_stream *s);

/* The bp_json_stream ops that route a batch answer's objects to their blocks: the request's
 * ids are positions, id i*per is block i and, with per 2, id i*per+1 is its
 * eth_getBlockReceipts. ud is a bp_stream_route; bs[0..count) are initialised streams. */
typedef struct bp_stream_route {
    bp_block_stream *bs;
    size_t count, per;
    bool hashes_only; /* blocks were asked without full txs: those stay in the tree */
} bp_stream_route;

extern const bp_json_stream_ops bp_stream_route_ops;

/* Turn a JSON-RPC "error" object into a code + message: -32601 / "method not found" ->
 * BP_EUNSUPPORTED; -32005, 429-like "rate limit"/"too many requests" -> BP_ERATELIMIT;
 * anything else BP_ERPC. The message includes the node's code and message. */
int bp_decode_rpc_error(yajl_val error, const char *method, bp_error *err);

#endif
