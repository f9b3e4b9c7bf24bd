/* decode_stream.h - streamed decoding: a block's transactions and receipts decoded as the
 * answer is parsed, with the tree decoder's exact results and messages (decode.h), and the
 * routing of a batch answer's objects to the blocks they belong to. */
#ifndef BP_CHAIN_DECODE_STREAM_H
#define BP_CHAIN_DECODE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <yajl/yajl_tree.h>

#include "blockpipe/error.h"
#include "blockpipe/model.h"
#include "chain/decode.h"
#include "chain/decode_internal.h"
#include "chain/json.h"

/* With bp_json_stream the objects of a block's "transactions" array and of a receipts array
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
    bp_tx sync;    /* Polygon's state-sync receipt, one past the txs (has_sync) */
    bool has_sync;
    bp_intern intern; /* the block's addresses and topics, one copy each */
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

#endif
