/* model.h - the EVM data model blockpipe moves: blocks, transactions (receipt fields
 * merged in), logs and withdrawals, decoded from JSON-RPC answers.
 *
 * Ownership: a bp_block owns everything reachable from it. All strings and arrays live in
 * the block's arena and are freed by bp_block_free(); never free a field on its own.
 *
 * Text fields are NUL-terminated, lower-case, 0x-prefixed hex exactly as the node sent
 * them (lower-cased). A field the node did not send (or sent as null) is NULL.
 * Quantities that may exceed 2^64 are bp_u256; optional ones carry a `set` flag.
 * Threading: a block is built by one fetch worker, then handed over whole; after that it is
 * read-only and may be read from any thread. */
#ifndef BLOCKPIPE_MODEL_H
#define BLOCKPIPE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "blockpipe/export.h"

/* Unsigned 256-bit integer, four 64-bit limbs, w[0] least significant. */
typedef struct bp_u256 {
    uint64_t w[4];
} bp_u256;

/* An optional 256-bit quantity (null / absent when !set). */
typedef struct bp_qty {
    bp_u256 v;
    bool set;
} bp_qty;

/* An optional 64-bit quantity (null / absent when !set). */
typedef struct bp_opt_u64 {
    uint64_t v;
    bool set;
} bp_opt_u64;

/* Hash strings: "0x" + 64 hex digits + NUL. */
#define BP_HASH_STRLEN 67

/* Hex data kept as its bytes, half the size of its text: a receipt's logsBloom (258 bytes
 * instead of 515: 7 MiB of a 50,000-tx block), a transaction's r and s and its input (20.6 MiB
 * of text in that block). The outputs write it back as the text the node sent, lower-cased:
 * "0x" and bp_hexb_len(h) hex digits, an odd count too (r and s are quantities: no leading
 * zeros); columns.h bp_hexb_text. A value of more than BP_HEXB_MAX digits (a long input) is
 * the long form: its n reads BP_HEXB_IS_LONG, b[0..3] hold the digit count (little-endian)
 * and the bytes follow. BP_HEXB_IS_TEXT (b holds the NUL-terminated text) is no longer made
 * by the decoder; it is still read. Byte-aligned (no padding in the arena). */
typedef struct bp_hexb {
    unsigned char n[2]; /* the digit count, little-endian */
    unsigned char b[];  /* two digits a byte, the first one high; an odd count's last low 0 */
} bp_hexb;
#define BP_HEXB_MAX 512 /* a logsBloom's digits: the most the short form holds */
#define BP_HEXB_IS_TEXT 0xffffu
#define BP_HEXB_IS_LONG 0xfffeu

/* The n field: the digit count of the short form, or BP_HEXB_IS_LONG / BP_HEXB_IS_TEXT. */
static inline unsigned bp_hexb_digits(const bp_hexb *h)
{
    return (unsigned)h->n[0] | (unsigned)h->n[1] << 8;
}

/* The digit count of either form (not BP_HEXB_IS_TEXT). */
static inline size_t bp_hexb_len(const bp_hexb *h)
{
    unsigned n = bp_hexb_digits(h);
    if (n != BP_HEXB_IS_LONG)
        return n;
    return (size_t)h->b[0] | (size_t)h->b[1] << 8 | (size_t)h->b[2] << 16 | (size_t)h->b[3] << 24;
}

/* The bytes of either form. */
static inline const unsigned char *bp_hexb_bytes(const bp_hexb *h)
{
    return bp_hexb_digits(h) == BP_HEXB_IS_LONG ? h->b + 4 : h->b;
}

typedef struct bp_log {
    uint64_t log_index;         /* block-wide logIndex */
    uint64_t transaction_index; /* index of the tx in the block */
    const char *transaction_hash;
    const char *address;
    const char *data;      /* "0x" for empty */
    const char *topics[4]; /* topics[0..topic_count-1]; rest NULL */
    uint8_t topic_count;
    bool removed;
    /* The log object's keys we do not model, as one compact JSON object (NULL: none). */
    const char *extra_json;
} bp_log;

typedef struct bp_withdrawal {
    uint64_t index;
    uint64_t validator_index;
    const char *address;
    uint64_t amount; /* Gwei */
} bp_withdrawal;

/* The fields only L2 chains send, kept out of bp_tx (an L1 block's transactions would
 * otherwise carry their empty bytes each, megabytes more in a 50,000-tx block's arena: the
 * memory budget counts it, docs/ARCHITECTURE.md "Memory bounds"), one struct per chain family
 * so that a transaction carries only its family's: each allocated in the block's arena by the
 * decoder when the tx or its receipt has one of its fields. */
typedef struct bp_tx_op {
    /* The transaction's: OP-stack deposits (type 0x7e): the L1 source, the ETH minted on L2, a
     * system tx. */
    const char *source_hash;
    bp_qty mint;
    bp_opt_u64 is_system_tx; /* 0 / 1; unset when the node did not say */
    /* The receipt's: the L1 data fee and what it was computed from (docs/SCHEMA.md).
     * l1FeeScalar is a decimal fraction ("0.684"), kept as the node wrote it. */
    bp_qty receipt_l1_fee;
    bp_qty receipt_l1_gas_used;
    bp_qty receipt_l1_gas_price;
    bp_qty receipt_l1_blob_base_fee;
    const char *receipt_l1_fee_scalar;
    bp_opt_u64 receipt_l1_base_fee_scalar;
    bp_opt_u64 receipt_l1_blob_base_fee_scalar;
    bp_opt_u64 receipt_deposit_nonce;
    bp_opt_u64 receipt_deposit_receipt_version;
} bp_tx_op;

/* Arbitrum's receipt: the part of gasUsed that paid for L1 data, and the L1 block it saw. */
typedef struct bp_tx_arb {
    bp_opt_u64 receipt_gas_used_for_l1;
    bp_opt_u64 receipt_l1_block_number;
} bp_tx_arb;

/* What few of an L1 block's transactions have, kept out of bp_tx as the L2 parts are: blob
 * transactions' fields (type 3), EIP-7702 authorizations (type 4), a pre-Byzantium receipt's
 * root, the whole object of a type the decoder does not know. In bp_tx they took 120 bytes of
 * every transaction (5.7 MiB of a 50,000-tx block); made by the decoder for a tx that has
 * one of them. */
typedef struct bp_tx_rare {
    bp_qty max_fee_per_blob_gas;
    const char *blob_versioned_hashes_json; /* compact JSON text of the list, NULL when absent */
    const char *authorization_list_json;
    /* For a type this decoder does not know (> 4): the whole tx object as compact JSON, so
     * nothing the node said is lost. NULL for known types. */
    const char *raw_json;
    /* The receipt's. */
    const char *receipt_root; /* pre-Byzantium state root, else NULL */
    bp_opt_u64 receipt_blob_gas_used;
    bp_qty receipt_blob_gas_price;
} bp_tx_rare;

typedef struct bp_tx {
    const char *hash;
    const char *block_hash;
    uint64_t block_number;
    uint64_t block_timestamp; /* copied from the block */
    uint64_t transaction_index;
    const char *from_address;
    const char *to_address; /* NULL for a contract creation */
    uint64_t nonce;
    uint64_t gas;
    bp_qty value;
    bp_qty gas_price;
    bp_qty max_fee_per_gas;
    bp_qty max_priority_fee_per_gas;
    bp_opt_u64 transaction_type; /* unset if the node sent no "type" */
    bp_opt_u64 chain_id;
    const bp_hexb *input; /* "0x" (no digits) for empty */
    const char *v, *y_parity;
    const bp_hexb *r, *s;
    /* Compact JSON text of the access list, NULL when absent. */
    const char *access_list_json;
    /* What few txs have (bp_tx_rare) and what only OP-stack / Arbitrum chains send; NULL when
     * the tx and its receipt have none of those fields. */
    bp_tx_rare *rare;
    bp_tx_op *op;
    bp_tx_arb *arb;
    /* The tx object's keys we do not model (a chain's own fields), one compact JSON object;
     * NULL: none. */
    const char *extra_json;

    /* Receipt fields; meaningful only when has_receipt. */
    bool has_receipt;
    uint64_t receipt_cumulative_gas_used;
    uint64_t receipt_gas_used;
    const char *receipt_contract_address; /* NULL unless a creation */
    bp_opt_u64 receipt_status;            /* unset pre-Byzantium */
    bp_qty receipt_effective_gas_price;
    const bp_hexb *receipt_logs_bloom;
    /* The receipt object's keys we do not model, as extra_json. */
    const char *receipt_extra_json;

    /* This tx's logs are block->logs[log_offset .. log_offset + log_count). */
    size_t log_offset;
    size_t log_count;
} bp_tx;

typedef struct bp_arena bp_arena;

/* The chain family a block comes from (--chain-type). */
enum bp_family {
    BP_FAMILY_EVM = 0,
    BP_FAMILY_ARCH = 1, /* Arch Network: the rows are in bp_block.arch */
};

struct bp_arch_rows;

typedef struct bp_block {
    uint64_t number;
    const char *hash;
    const char *parent_hash;
    const char *nonce; /* 8-byte hex, kept as text */
    const char *sha3_uncles;
    const char *logs_bloom;
    const char *transactions_root;
    const char *state_root;
    const char *receipts_root;
    const char *miner;
    const char *mix_hash;
    bp_qty difficulty;
    bp_qty total_difficulty;
    bp_opt_u64 size;
    const char *extra_data;
    uint64_t gas_limit;
    uint64_t gas_used;
    uint64_t timestamp;
    bp_qty base_fee_per_gas;
    const char *withdrawals_root;
    bp_opt_u64 blob_gas_used;
    bp_opt_u64 excess_blob_gas;
    const char *parent_beacon_block_root;
    const char *requests_hash;
    size_t uncle_count;
    /* The block object's keys we do not model (Arbitrum's l1BlockNumber, zkSync's
     * l1BatchNumber, ...), one compact JSON object; NULL: none. */
    const char *extra_json;

    /* Number of transactions in the block's list; tx_count is that when the txs were
     * fetched, plus one for a Polygon PoS state-sync transaction found only in the receipts
     * (txs[tx_count - 1], type 0x7f: see decode.c). */
    size_t transaction_count;
    bp_tx *txs;
    size_t tx_count;

    bool has_receipts; /* receipts fetched and merged into txs, logs filled */
    bp_log *logs;
    size_t log_count;

    bool has_withdrawals; /* the node sent a "withdrawals" field (may be empty) */
    bp_withdrawal *withdrawals;
    size_t withdrawal_count;

    bp_arena *arena; /* owns every string and array above */

    /* BP_FAMILY_ARCH: number, hash, parent_hash and timestamp are the Arch block's (hashes
     * as 64 hex digits without 0x), the EVM fields above stay empty and arch holds the
     * arch_* rows (src/arch/arch_rows.h; owned through the arena); NULL in a REVERT's
     * header-only block. */
    enum bp_family family;
    const struct bp_arch_rows *arch;
} bp_block;

/* Allocates an empty block with its own arena. Returns NULL when out of memory. */
BP_EXPORT bp_block *bp_block_new(void);
/* Frees the block and everything it owns. NULL is fine. */
BP_EXPORT void bp_block_free(bp_block *b);
/* A header-only copy (number, hash, parent_hash, timestamp) for REVERT events and the
 * canonical chain. Returns NULL when out of memory. */
BP_EXPORT bp_block *bp_block_header_copy(const bp_block *b);

#endif
