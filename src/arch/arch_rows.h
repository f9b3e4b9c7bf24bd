/* arch_rows.h - the Arch rows one block carries through the pipeline (bp_block.arch): the
 * arch_blocks row and its transactions' arch_transactions rows (each with its
 * arch_account_updates rows). Owned through the block's arena (bp_arena_adopt_fn).
 *
 * A BP_EVENT_ARCH_EVENTS entry of a batch (blockpipe/sink.h) carries WebSocket events instead:
 * a bp_block whose arch has events and no block row (block.height 0, txs NULL). What an output
 * that stores Arch does with them, in order, in the batch's transaction:
 *   - every event: one arch_events row (chain, key, topic, block_height or NULL, data,
 *     received_at); a row with the same (chain, key) already there is kept (dedup);
 *   - rolledback_transactions: the arch_transactions rows of the chain whose txid is listed get
 *     rolled_back = 1, rollback_reason kept (the event has none; a fetch or an earlier
 *     rollback may have stored the node's message) - even when the event's
 *     row was a duplicate: the same set rolled back again after a re-apply has the same key;
 *   - reapplied_transactions: those rows get rolled_back = 0, rollback_reason = NULL.
 *   - a resync event (bp_arch_event.resync: made from the node's rollback_status after the
 *     socket came back, arch_ws.h) does the same to the rows but has no arch_events row.
 * The rows stay (their account updates too): a rolled-back transaction is one whose
 * rolled_back is 1, as get_processed_transaction's rollback_status says (docs/ARCH.md).
 * SQLite: sink/sqlite_arch.c; PostgreSQL: sink/pg_arch.c (events_run). */
#ifndef BP_ARCH_ROWS_H
#define BP_ARCH_ROWS_H

#include <stddef.h>

#include "arch/arch_decode.h"

typedef struct bp_arch_rows {
    bp_arch_block block;
    bp_arch_tx *txs; /* block.txid_count of them, in the block's order */
    size_t tx_count;
    bp_arch_event *events; /* a BP_EVENT_ARCH_EVENTS entry's, in arrival order; else NULL */
    size_t event_count;
} bp_arch_rows;

/* Frees rows and everything in it (the arena's release function). NULL is fine. */
void bp_arch_rows_free(void *rows);
/* Roughly the heap bytes rows holds, for the memory budget. */
size_t bp_arch_rows_bytes(const bp_arch_rows *rows);

#endif
