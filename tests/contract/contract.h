/* contract.h - the parts of the output contract test (outputs_contract.c): a synthetic chain
 * with branches, the normalised text form of an output's content, and one reader per backend
 * that returns that form. A test program: a failed check prints what was wrong and exits 1. */
#ifndef BP_TEST_CONTRACT_H
#define BP_TEST_CONTRACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/model.h"
#include "blockpipe/sink.h"

/* Prints "FAIL: <message>" and exits 1 (from a forked child too: its exit status shows it). */
void ct_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
#define CT_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ct_die(__VA_ARGS__);                                                                   \
    } while (0)

/* --family arch: the chain is made of Arch blocks (bp_block.arch, arch/arch_rows.h) and the
 * readers read the arch_* tables (docs/SCHEMA.md); only outputs with the family's bit
 * (bp_sink.families) are tested so. */
extern bool ct_arch;

/* ---- normalised content ----------------------------------------------------------------
 * What an output holds, one line per row, "-" for a missing value, topics joined by ",":
 *   B number hash parent_hash timestamp transaction_count
 *   T block_number transaction_index hash block_hash from_address to_address value
 *   R block_number transaction_index transaction_hash receipt_status receipt_gas_used
 *   L block_number log_index block_hash transaction_hash transaction_index address data topics
 * and with --family arch:
 *   A height hash previous_hash timestamp bitcoin_block_height transaction_count merkle_root
 *   X block_height tx_index txid block_hash status failure_reason rolled_back program_ids
 *     bitcoin_txids
 *   U block_height tx_index account txid
 *   E key topic block_height                      (arch_events: the WebSocket events)
 * Compared as sorted multisets: a row stored twice is a difference. */
typedef struct ct_lines {
    char **v;
    size_t n, cap;
} ct_lines;

void ct_lines_add(ct_lines *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ct_lines_sort(ct_lines *l);
void ct_lines_free(ct_lines *l);
/* True when equal; else the first differences (sorted order) go to msg. */
bool ct_lines_equal(const ct_lines *want, const ct_lines *got, char *msg, size_t cap);
/* The lines of one applied block: its B, T, R and L lines. */
void ct_render_block(ct_lines *l, const bp_block *b);

/* ---- the synthetic chain ---------------------------------------------------------------- */

#define CT_MAX_BLOCKS 512 /* blocks of one chain view */

/* Every block generated, owned here. A block is (branch, number): its hash, its transactions'
 * hashes and its logs depend on both, so two branches share nothing above their fork. */
typedef struct ct_world {
    bp_block **blocks;
    size_t n, cap;
} ct_world;

/* A chain: at[k] is block k (from 0), each the parent of the next. Does not own blocks. */
typedef struct ct_view {
    const bp_block *at[CT_MAX_BLOCKS];
    size_t len;
} ct_view;

void ct_world_free(ct_world *w);
/* The block with this hash, or NULL. */
const bp_block *ct_world_find(const ct_world *w, const char *hash);
/* Appends count new blocks of branch to v. */
void ct_extend(ct_world *w, ct_view *v, unsigned branch, size_t count);
/* A reorg: keeps v's blocks below number keep, then count new blocks of branch. */
void ct_fork(ct_world *w, ct_view *v, size_t keep, unsigned branch, size_t count);
/* The chain that ends at the block with this hash (parents followed down to block 0). */
void ct_view_from_tip(const ct_world *w, const char *hash, ct_view *out);
/* The checkpoint of a view: its top block (unset when empty). */
bp_checkpoint ct_view_cp(const ct_view *v);
void ct_render_view(ct_lines *l, const ct_view *v);

/* ---- readers ----------------------------------------------------------------------------- */

/* The normalised content of chain in the output at url (opened on its own, read-only):
 * SQL tables as they are; the file outputs with their reverts applied. A malformed or
 * inconsistent output (a row of a block that was never applied, duplicate rows that are not
 * whole re-applications) is a failure. Unknown scheme: failure (every backend needs one). */
void ct_read(const char *url, const char *chain, ct_lines *out);

#endif
