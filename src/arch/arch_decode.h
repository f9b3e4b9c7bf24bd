/* arch_decode.h - Arch Network answers and WebSocket events into rows for the tables
 * arch_blocks, arch_transactions, arch_account_updates and arch_events (issue 14).
 *
 * Shapes (docs/ARCH.md lists each field and its source): the Rust SDK's wire format
 * (Arch-Network/arch-sdk sdk/src/types/block.rs, processed_transaction.rs, event.rs, pinned by
 * sdk/tests/rpc_wire_format.rs: what a current node answers), the TypeScript SDK's objects
 * (SaturnBTC/arch-typescript-sdk src/struct/, src/websocket-client/types/, older) and the
 * book's examples (Arch-Network/book src/rpc/http-methods/). Where they disagree, all are read:
 *   - hashes and keys: 64 hex digits with or without 0x (book, TS SDK, event strings) or
 *     arrays of 32 byte numbers (serde's Hash / Pubkey: Block.transactions,
 *     previous_block_hash, account_keys, bitcoin_txid);
 *   - Block: transactions_count and merkle_root only in the TS SDK (optional here; a count
 *     that is not the list's length is an error), bitcoin_block_height a number, a string
 *     (TS SDK) or null (arch-rust-indexer), timestamp in s / ms / us / ns (to seconds);
 *   - status: {"type": "queued"|"processed"|"failed", "message"} (serde's Status, TS struct),
 *     a string (book "Confirmed", TS events "Processed"; any unknown string is processed, as
 *     arch-sdk's Status::from_value reads it) or {"Failed": "message"};
 *   - bitcoin_txids: a list of strings (book) or bitcoin_txid: a byte array or null (SDKs);
 *   - events: {"topic": T, "data"} (event.rs) or {"event": T, "data"} (TS ws-adapter.ts);
 *     the block event's timestamp a number or a string of digits (event.rs).
 * Hashes and keys come out as 64 lower-case hex digits without 0x.
 *
 * Every malformed input is an error (BP_EPARSE) whose message names the field, e.g.
 * "get_block result: previous_block_hash: expected 64 hex digits or 32 bytes, got a number". */
#ifndef BP_ARCH_DECODE_H
#define BP_ARCH_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

#include "blockpipe/error.h"

#define BP_ARCH_HEX 65 /* 64 hex digits + NUL */

typedef char bp_arch_hash[BP_ARCH_HEX];

/* One arch_blocks row (plus the txids the block lists, for fetching its transactions). */
typedef struct bp_arch_block {
    bp_arch_hash hash; /* the block's own hash: get_block's parameter (Block has no hash) */
    bp_arch_hash prev_hash;
    uint64_t height;
    uint64_t timestamp; /* unix seconds, whatever unit the node sent (bp_arch_decode_block) */
    uint64_t bitcoin_height;
    bool no_bitcoin_height;   /* null or absent: the column is NULL */
    uint64_t tx_count;        /* the transactions listed (= transactions_count where sent) */
    bp_arch_hash merkle_root; /* "" when the node sends none (arch-sdk's Block has none): NULL */
    bp_arch_hash *txids;      /* owned */
    size_t txid_count;
} bp_arch_block;

enum bp_arch_status {
    BP_ARCH_QUEUED,
    BP_ARCH_PROCESSING,
    BP_ARCH_PROCESSED,
    BP_ARCH_FAILED,
};
/* "queued", "processing", "processed", "failed": the status column's values. */
const char *bp_arch_status_name(enum bp_arch_status s);

/* One arch_transactions row; its writable accounts are its arch_account_updates rows. */
typedef struct bp_arch_tx {
    bp_arch_hash txid;
    uint64_t block_height;
    enum bp_arch_status status;
    char *failure; /* owned; NULL unless failed */
    bool rolled_back;
    char *rollback_reason; /* owned; NULL unless rolled back */
    char *program_ids;     /* owned: JSON array of hex strings */
    char *bitcoin_txids;   /* owned: JSON array of hex strings ([] when none) */
    /* No documented shape has a fee or compute units: never set today (the columns stay
     * NULL); kept for nodes that add them. */
    bool has_fee, has_compute;
    uint64_t fee, compute_units;
    bp_arch_hash *accounts; /* owned: the writable account keys */
    size_t account_count;
} bp_arch_tx;

enum bp_arch_topic {
    BP_ARCH_T_BLOCK,
    BP_ARCH_T_TRANSACTION,
    BP_ARCH_T_ACCOUNT_UPDATE,
    BP_ARCH_T_ROLLEDBACK,
    BP_ARCH_T_REAPPLIED,
    BP_ARCH_T_DKG,
    BP_ARCH_T_COUNT
};
const char *bp_arch_topic_name(enum bp_arch_topic t);

/* One arch_events row, with the event's fields decoded. */
typedef struct bp_arch_event {
    enum bp_arch_topic topic;
    char key[72]; /* dedup key: "topic:" + 32 hex digits of a hash of the compact data */
    char *data;   /* owned: the data object, compact JSON */
    double received_at;
    bool has_height;
    uint64_t block_height;
    bp_arch_hash hash;          /* block: the block; transaction / account_update: the tx */
    uint64_t timestamp;         /* block */
    enum bp_arch_status status; /* transaction */
    char *failure;              /* owned; transaction Failed */
    char *program_ids;          /* owned; transaction: JSON array */
    bp_arch_hash account;       /* account_update */
    bp_arch_hash *hashes;       /* owned; rolledback / reapplied transaction_hashes */
    size_t hash_count;
    char *dkg_status; /* owned; dkg */
    /* Not received: made by blockpipe from the node's rollback_status after the socket was
     * (re)subscribed (arch/arch_ws.h bp_arch_ws_resync): applied to arch_transactions like a
     * rolledback / reapplied event, but no arch_events row (key and data are empty). */
    bool resync;
} bp_arch_event;

/* The result of a JSON-RPC answer text: *root (free with bp_json_free) and *result inside it.
 * An error object is BP_ENOTFOUND for code 404 (the SDK's not found), else BP_ERPC; both
 * with the node's code and message in err. `method` names the call in messages. */
int bp_arch_result(const char *text, size_t len, const char *method, yajl_val *root,
                   yajl_val *result, bp_error *err);

/* get_block's result (a Block) for the block of hash `hash` (get_block's parameter). A
 * transactions_count, where sent, must equal the list of transactions. */
int bp_arch_decode_block(yajl_val result, const char *hash, bp_arch_block *out, bp_error *err);
void bp_arch_block_free(bp_arch_block *b);

/* get_processed_transaction's result for txid, listed by the block at block_height. */
int bp_arch_decode_tx(yajl_val result, const char *txid, uint64_t block_height, bp_arch_tx *out,
                      bp_error *err);
void bp_arch_tx_free(bp_arch_tx *t);

/* One WebSocket message {"topic": T, "data": {...}} (or {"event": T, ...}) received at
 * received_at (unix seconds).
 * Subscription answers ({"status", "subscription_id", ...}) are BP_EINVAL "not an event".
 * A malformed event (another error) leaves out->topic the topic it named, BP_ARCH_T_COUNT when
 * none could be read (not JSON, no topic, an unknown one): the caller knows what was lost. */
int bp_arch_decode_event(const char *text, size_t len, double received_at, bp_arch_event *out,
                         bp_error *err);
void bp_arch_event_free(bp_arch_event *e);

#endif
