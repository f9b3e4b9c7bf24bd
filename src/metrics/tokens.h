/* tokens.h - token transfers decoded from a block's logs: ERC-20 and ERC-721 Transfer as
 * ethereum-etl extracts them (same rows, same values), ERC-1155 TransferSingle and
 * TransferBatch (one row per id). */
#ifndef BP_METRICS_TOKENS_H
#define BP_METRICS_TOKENS_H

#include "blockpipe/derived.h"

struct bp_arena;

#define BP_TOPIC_TRANSFER "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
#define BP_TOPIC_TRANSFER_SINGLE                                                                   \
    "0xc3d58168c5ae7397731d063d5bbf3d657854427343f4c083240f7aacaa2d0f62"
#define BP_TOPIC_TRANSFER_BATCH "0x4a39dc06d4c0dbc64b70af90fd698a233a518aa5d07e595d983b8c0526c8f7fb"

/* The transfers of block b (its logs, when it has receipts) into *rows (arena), *n of them.
 * A log that does not decode (ethereum-etl's "weird event": not 4 words in topics and data,
 * malformed ERC-1155 arrays) gives no row. 0 or BP_ENOMEM. */
int bp_tokens_decode(struct bp_arena *a, const char *chain, const bp_block *b,
                     bp_token_transfer_row **rows, size_t *n);

/* The transfers of one log (block fields from b) appended to rows[*n..] (room for cap rows):
 * the count it would take is returned in *need when cap is too small. For tests and for
 * logs outside a block. */
int bp_tokens_decode_log(struct bp_arena *a, const char *chain, const bp_block *b,
                         const bp_log *log, bp_token_transfer_row *rows, size_t cap, size_t *n);

#endif
