/* arch_rows.h - the Arch rows one block carries through the pipeline (bp_block.arch): the
 * arch_blocks row and its transactions' arch_transactions rows (each with its
 * arch_account_updates rows). Owned through the block's arena (bp_arena_adopt_fn). */
#ifndef BP_ARCH_ROWS_H
#define BP_ARCH_ROWS_H

#include <stddef.h>

#include "arch/arch_decode.h"

typedef struct bp_arch_rows {
    bp_arch_block block;
    bp_arch_tx *txs; /* block.txid_count of them, in the block's order */
    size_t tx_count;
} bp_arch_rows;

/* Frees rows and everything in it (the arena's release function). NULL is fine. */
void bp_arch_rows_free(void *rows);
/* Roughly the heap bytes rows holds, for the memory budget. */
size_t bp_arch_rows_bytes(const bp_arch_rows *rows);

#endif
