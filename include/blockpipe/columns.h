/* columns.h - the one table of the columns blockpipe writes: for each, its name (the SQL and
 * JSON name every output uses), ethereum-etl's name, its logical type, its table and where its
 * value lives in the model (model.h). The SQL outputs' DDL and row encoders, the ethereum-etl
 * CSV and JSON-lines layouts and any new output are made from it, so a column is added in one
 * place (and in the decoder that fills the model).
 *
 * Reading a value: fill a bp_row with the block (and the tx / log for those tables) and call
 * bp_column_value(); the value borrows from the block. */
#ifndef BLOCKPIPE_COLUMNS_H
#define BLOCKPIPE_COLUMNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/model.h"

/* The tables. */
typedef enum bp_table {
    BP_TABLE_BLOCKS,
    BP_TABLE_TRANSACTIONS, /* receipt fields merged in as receipt_* */
    BP_TABLE_LOGS,
    BP_TABLE_COUNT
} bp_table;

/* Logical types: what an output needs to choose its own column type. */
typedef enum bp_col_type {
    BP_COL_INT64,   /* unsigned integer that fits 63 bits in practice (numbers, gas, counts) */
    BP_COL_UINT64,  /* unsigned integer that may use all 64 bits (nonce, chain_id) */
    BP_COL_UINT256, /* unsigned 256-bit amount (value, prices, difficulty): exact decimal */
    BP_COL_HASH,    /* 32-byte 0x-hex */
    BP_COL_ADDRESS, /* 20-byte 0x-hex */
    BP_COL_BYTES,   /* 0x-hex of any length (input, data, extra_data, logs_bloom, nonce) */
    BP_COL_TEXT,    /* text (chain; v, r, s, y_parity: hex quantities kept as the node sent) */
    BP_COL_JSON,    /* JSON text (access lists, withdrawals, raw transactions, extra fields) */
    BP_COL_BOOL,    /* true / false */
    BP_COL_FLOAT,   /* a double (derived tables: fees in the native token, USD, scores) */
} bp_col_type;

#define BP_COL_NOTNULL 1u  /* NOT NULL in SQL */
#define BP_COL_KEY 2u      /* part of the table's primary key */
#define BP_COL_RECEIPTS 4u /* ethereum-etl puts it in receipts.csv (under etl_name) */

/* X(id, table, name, etl_name, type, src, rep, field, flags): every column, each table's in
 * its SQL order. etl_name is NULL for a column ethereum-etl does not have. The value is
 * `field` of src: BLOCK (bp_row.block), TX (bp_row.tx), RECEIPT (bp_row.tx, null when it has
 * no receipt), RARE (bp_row.tx->rare, null without it), RARE_RECEIPT (both), OP (bp_row.tx->op,
 * null without it), OP_RECEIPT (both), ARB_RECEIPT (bp_row.tx->arb
 * and a receipt), LOG (bp_row.log) or CHAIN
 * (bp_row.chain; field unused), read as rep: STR (const char *, NULL is null), HEXB (const bp_hexb
 * *: hex kept as bytes, NULL is null), U64, SIZE (size_t), OPT_U64 (bp_opt_u64), QTY (bp_qty) or
 * WITHDRAWALS (the block's withdrawals as a JSON array, null when the node sent none). */
#define BP_COLUMNS(X)                                                                              \
    X(BLOCK_CHAIN, blocks, "chain", NULL, TEXT, CHAIN, STR, number, BP_COL_NOTNULL | BP_COL_KEY)   \
    X(BLOCK_NUMBER, blocks, "number", "number", INT64, BLOCK, U64, number,                         \
      BP_COL_NOTNULL | BP_COL_KEY)                                                                 \
    X(BLOCK_HASH, blocks, "hash", "hash", HASH, BLOCK, STR, hash, BP_COL_NOTNULL)                  \
    X(BLOCK_PARENT_HASH, blocks, "parent_hash", "parent_hash", HASH, BLOCK, STR, parent_hash, 0)   \
    X(BLOCK_NONCE, blocks, "nonce", "nonce", BYTES, BLOCK, STR, nonce, 0)                          \
    X(BLOCK_SHA3_UNCLES, blocks, "sha3_uncles", "sha3_uncles", HASH, BLOCK, STR, sha3_uncles, 0)   \
    X(BLOCK_LOGS_BLOOM, blocks, "logs_bloom", "logs_bloom", BYTES, BLOCK, STR, logs_bloom, 0)      \
    X(BLOCK_TRANSACTIONS_ROOT, blocks, "transactions_root", "transactions_root", HASH, BLOCK, STR, \
      transactions_root, 0)                                                                        \
    X(BLOCK_STATE_ROOT, blocks, "state_root", "state_root", HASH, BLOCK, STR, state_root, 0)       \
    X(BLOCK_RECEIPTS_ROOT, blocks, "receipts_root", "receipts_root", HASH, BLOCK, STR,             \
      receipts_root, 0)                                                                            \
    X(BLOCK_MINER, blocks, "miner", "miner", ADDRESS, BLOCK, STR, miner, 0)                        \
    X(BLOCK_MIX_HASH, blocks, "mix_hash", NULL, HASH, BLOCK, STR, mix_hash, 0)                     \
    X(BLOCK_DIFFICULTY, blocks, "difficulty", "difficulty", UINT256, BLOCK, QTY, difficulty, 0)    \
    X(BLOCK_TOTAL_DIFFICULTY, blocks, "total_difficulty", "total_difficulty", UINT256, BLOCK, QTY, \
      total_difficulty, 0)                                                                         \
    X(BLOCK_SIZE, blocks, "size", "size", INT64, BLOCK, OPT_U64, size, 0)                          \
    X(BLOCK_EXTRA_DATA, blocks, "extra_data", "extra_data", BYTES, BLOCK, STR, extra_data, 0)      \
    X(BLOCK_GAS_LIMIT, blocks, "gas_limit", "gas_limit", INT64, BLOCK, U64, gas_limit, 0)          \
    X(BLOCK_GAS_USED, blocks, "gas_used", "gas_used", INT64, BLOCK, U64, gas_used, 0)              \
    X(BLOCK_TIMESTAMP, blocks, "timestamp", "timestamp", INT64, BLOCK, U64, timestamp, 0)          \
    X(BLOCK_TRANSACTION_COUNT, blocks, "transaction_count", "transaction_count", INT64, BLOCK,     \
      SIZE, transaction_count, 0)                                                                  \
    X(BLOCK_BASE_FEE_PER_GAS, blocks, "base_fee_per_gas", "base_fee_per_gas", UINT256, BLOCK, QTY, \
      base_fee_per_gas, 0)                                                                         \
    X(BLOCK_WITHDRAWALS_ROOT, blocks, "withdrawals_root", "withdrawals_root", HASH, BLOCK, STR,    \
      withdrawals_root, 0)                                                                         \
    X(BLOCK_WITHDRAWALS, blocks, "withdrawals", "withdrawals", JSON, BLOCK, WITHDRAWALS,           \
      withdrawals, 0)                                                                              \
    X(BLOCK_BLOB_GAS_USED, blocks, "blob_gas_used", NULL, INT64, BLOCK, OPT_U64, blob_gas_used, 0) \
    X(BLOCK_EXCESS_BLOB_GAS, blocks, "excess_blob_gas", NULL, INT64, BLOCK, OPT_U64,               \
      excess_blob_gas, 0)                                                                          \
    X(BLOCK_PARENT_BEACON_BLOCK_ROOT, blocks, "parent_beacon_block_root", NULL, HASH, BLOCK, STR,  \
      parent_beacon_block_root, 0)                                                                 \
    X(BLOCK_REQUESTS_HASH, blocks, "requests_hash", NULL, HASH, BLOCK, STR, requests_hash, 0)      \
    X(BLOCK_UNCLE_COUNT, blocks, "uncle_count", NULL, INT64, BLOCK, SIZE, uncle_count, 0)          \
    X(BLOCK_EXTRA, blocks, "extra", NULL, JSON, BLOCK, STR, extra_json, 0)                         \
                                                                                                   \
    X(TX_CHAIN, transactions, "chain", NULL, TEXT, CHAIN, STR, number,                             \
      BP_COL_NOTNULL | BP_COL_KEY)                                                                 \
    X(TX_HASH, transactions, "hash", "hash", HASH, TX, STR, hash, BP_COL_NOTNULL)                  \
    X(TX_NONCE, transactions, "nonce", "nonce", UINT64, TX, U64, nonce, 0)                         \
    X(TX_BLOCK_HASH, transactions, "block_hash", "block_hash", HASH, TX, STR, block_hash, 0)       \
    X(TX_BLOCK_NUMBER, transactions, "block_number", "block_number", INT64, TX, U64, block_number, \
      BP_COL_NOTNULL | BP_COL_KEY)                                                                 \
    X(TX_TRANSACTION_INDEX, transactions, "transaction_index", "transaction_index", INT64, TX,     \
      U64, transaction_index, BP_COL_NOTNULL | BP_COL_KEY)                                         \
    X(TX_FROM_ADDRESS, transactions, "from_address", "from_address", ADDRESS, TX, STR,             \
      from_address, 0)                                                                             \
    X(TX_TO_ADDRESS, transactions, "to_address", "to_address", ADDRESS, TX, STR, to_address, 0)    \
    X(TX_VALUE, transactions, "value", "value", UINT256, TX, QTY, value, 0)                        \
    X(TX_GAS, transactions, "gas", "gas", INT64, TX, U64, gas, 0)                                  \
    X(TX_GAS_PRICE, transactions, "gas_price", "gas_price", UINT256, TX, QTY, gas_price, 0)        \
    X(TX_INPUT, transactions, "input", "input", BYTES, TX, HEXB, input, 0)                         \
    X(TX_BLOCK_TIMESTAMP, transactions, "block_timestamp", "block_timestamp", INT64, TX, U64,      \
      block_timestamp, 0)                                                                          \
    X(TX_MAX_FEE_PER_GAS, transactions, "max_fee_per_gas", "max_fee_per_gas", UINT256, TX, QTY,    \
      max_fee_per_gas, 0)                                                                          \
    X(TX_MAX_PRIORITY_FEE_PER_GAS, transactions, "max_priority_fee_per_gas",                       \
      "max_priority_fee_per_gas", UINT256, TX, QTY, max_priority_fee_per_gas, 0)                   \
    X(TX_MAX_FEE_PER_BLOB_GAS, transactions, "max_fee_per_blob_gas", NULL, UINT256, RARE, QTY,     \
      max_fee_per_blob_gas, 0)                                                                     \
    X(TX_TRANSACTION_TYPE, transactions, "transaction_type", "transaction_type", INT64, TX,        \
      OPT_U64, transaction_type, 0)                                                                \
    X(TX_CHAIN_ID, transactions, "chain_id", NULL, UINT64, TX, OPT_U64, chain_id, 0)               \
    X(TX_V, transactions, "v", NULL, TEXT, TX, STR, v, 0)                                          \
    X(TX_R, transactions, "r", NULL, TEXT, TX, HEXB, r, 0)                                         \
    X(TX_S, transactions, "s", NULL, TEXT, TX, HEXB, s, 0)                                         \
    X(TX_Y_PARITY, transactions, "y_parity", NULL, TEXT, TX, STR, y_parity, 0)                     \
    X(TX_ACCESS_LIST, transactions, "access_list", NULL, JSON, TX, STR, access_list_json, 0)       \
    X(TX_BLOB_VERSIONED_HASHES, transactions, "blob_versioned_hashes", NULL, JSON, RARE, STR,      \
      blob_versioned_hashes_json, 0)                                                               \
    X(TX_AUTHORIZATION_LIST, transactions, "authorization_list", NULL, JSON, RARE, STR,            \
      authorization_list_json, 0)                                                                  \
    X(TX_RAW, transactions, "raw", NULL, JSON, RARE, STR, raw_json, 0)                             \
    X(TX_RECEIPT_CUMULATIVE_GAS_USED, transactions, "receipt_cumulative_gas_used",                 \
      "cumulative_gas_used", INT64, RECEIPT, U64, receipt_cumulative_gas_used, BP_COL_RECEIPTS)    \
    X(TX_RECEIPT_GAS_USED, transactions, "receipt_gas_used", "gas_used", INT64, RECEIPT, U64,      \
      receipt_gas_used, BP_COL_RECEIPTS)                                                           \
    X(TX_RECEIPT_CONTRACT_ADDRESS, transactions, "receipt_contract_address", "contract_address",   \
      ADDRESS, RECEIPT, STR, receipt_contract_address, BP_COL_RECEIPTS)                            \
    X(TX_RECEIPT_ROOT, transactions, "receipt_root", "root", HASH, RARE_RECEIPT, STR,              \
      receipt_root, BP_COL_RECEIPTS)                                                               \
    X(TX_RECEIPT_STATUS, transactions, "receipt_status", "status", INT64, RECEIPT, OPT_U64,        \
      receipt_status, BP_COL_RECEIPTS)                                                             \
    X(TX_RECEIPT_EFFECTIVE_GAS_PRICE, transactions, "receipt_effective_gas_price",                 \
      "effective_gas_price", UINT256, RECEIPT, QTY, receipt_effective_gas_price, BP_COL_RECEIPTS)  \
    X(TX_RECEIPT_BLOB_GAS_USED, transactions, "receipt_blob_gas_used", NULL, INT64, RARE_RECEIPT,  \
      OPT_U64, receipt_blob_gas_used, 0)                                                           \
    X(TX_RECEIPT_BLOB_GAS_PRICE, transactions, "receipt_blob_gas_price", NULL, UINT256,            \
      RARE_RECEIPT, QTY, receipt_blob_gas_price, 0)                                                \
    X(TX_RECEIPT_LOGS_BLOOM, transactions, "receipt_logs_bloom", NULL, BYTES, RECEIPT, HEXB,       \
      receipt_logs_bloom, 0)                                                                       \
    X(TX_SOURCE_HASH, transactions, "source_hash", NULL, HASH, OP, STR, source_hash, 0)            \
    X(TX_MINT, transactions, "mint", NULL, UINT256, OP, QTY, mint, 0)                              \
    X(TX_IS_SYSTEM_TX, transactions, "is_system_tx", NULL, BOOL, OP, OPT_U64, is_system_tx, 0)     \
    X(TX_EXTRA, transactions, "extra", NULL, JSON, TX, STR, extra_json, 0)                         \
    X(TX_RECEIPT_L1_FEE, transactions, "receipt_l1_fee", "l1_fee", UINT256, OP_RECEIPT, QTY,       \
      receipt_l1_fee, BP_COL_RECEIPTS)                                                             \
    X(TX_RECEIPT_L1_GAS_USED, transactions, "receipt_l1_gas_used", "l1_gas_used", UINT256,         \
      OP_RECEIPT, QTY, receipt_l1_gas_used, BP_COL_RECEIPTS)                                       \
    X(TX_RECEIPT_L1_GAS_PRICE, transactions, "receipt_l1_gas_price", "l1_gas_price", UINT256,      \
      OP_RECEIPT, QTY, receipt_l1_gas_price, BP_COL_RECEIPTS)                                      \
    X(TX_RECEIPT_L1_FEE_SCALAR, transactions, "receipt_l1_fee_scalar", "l1_fee_scalar", TEXT,      \
      OP_RECEIPT, STR, receipt_l1_fee_scalar, BP_COL_RECEIPTS)                                     \
    X(TX_RECEIPT_L1_BLOB_BASE_FEE, transactions, "receipt_l1_blob_base_fee", NULL, UINT256,        \
      OP_RECEIPT, QTY, receipt_l1_blob_base_fee, 0)                                                \
    X(TX_RECEIPT_L1_BASE_FEE_SCALAR, transactions, "receipt_l1_base_fee_scalar", NULL, INT64,      \
      OP_RECEIPT, OPT_U64, receipt_l1_base_fee_scalar, 0)                                          \
    X(TX_RECEIPT_L1_BLOB_BASE_FEE_SCALAR, transactions, "receipt_l1_blob_base_fee_scalar", NULL,   \
      INT64, OP_RECEIPT, OPT_U64, receipt_l1_blob_base_fee_scalar, 0)                              \
    X(TX_RECEIPT_DEPOSIT_NONCE, transactions, "receipt_deposit_nonce", NULL, UINT64, OP_RECEIPT,   \
      OPT_U64, receipt_deposit_nonce, 0)                                                           \
    X(TX_RECEIPT_DEPOSIT_RECEIPT_VERSION, transactions, "receipt_deposit_receipt_version", NULL,   \
      INT64, OP_RECEIPT, OPT_U64, receipt_deposit_receipt_version, 0)                              \
    X(TX_RECEIPT_GAS_USED_FOR_L1, transactions, "receipt_gas_used_for_l1", NULL, INT64,            \
      ARB_RECEIPT, OPT_U64, receipt_gas_used_for_l1, 0)                                            \
    X(TX_RECEIPT_L1_BLOCK_NUMBER, transactions, "receipt_l1_block_number", NULL, INT64,            \
      ARB_RECEIPT, OPT_U64, receipt_l1_block_number, 0)                                            \
    X(TX_RECEIPT_EXTRA, transactions, "receipt_extra", NULL, JSON, RECEIPT, STR,                   \
      receipt_extra_json, 0)                                                                       \
                                                                                                   \
    X(LOG_CHAIN, logs, "chain", NULL, TEXT, CHAIN, STR, number, BP_COL_NOTNULL | BP_COL_KEY)       \
    X(LOG_BLOCK_NUMBER, logs, "block_number", "block_number", INT64, BLOCK, U64, number,           \
      BP_COL_NOTNULL | BP_COL_KEY)                                                                 \
    X(LOG_BLOCK_HASH, logs, "block_hash", "block_hash", HASH, BLOCK, STR, hash, 0)                 \
    X(LOG_LOG_INDEX, logs, "log_index", "log_index", INT64, LOG, U64, log_index,                   \
      BP_COL_NOTNULL | BP_COL_KEY)                                                                 \
    X(LOG_TRANSACTION_HASH, logs, "transaction_hash", "transaction_hash", HASH, LOG, STR,          \
      transaction_hash, 0)                                                                         \
    X(LOG_TRANSACTION_INDEX, logs, "transaction_index", "transaction_index", INT64, LOG, U64,      \
      transaction_index, 0)                                                                        \
    X(LOG_ADDRESS, logs, "address", "address", ADDRESS, LOG, STR, address, 0)                      \
    X(LOG_DATA, logs, "data", "data", BYTES, LOG, STR, data, 0)                                    \
    X(LOG_TOPIC0, logs, "topic0", NULL, HASH, LOG, STR, topics[0], 0)                              \
    X(LOG_TOPIC1, logs, "topic1", NULL, HASH, LOG, STR, topics[1], 0)                              \
    X(LOG_TOPIC2, logs, "topic2", NULL, HASH, LOG, STR, topics[2], 0)                              \
    X(LOG_TOPIC3, logs, "topic3", NULL, HASH, LOG, STR, topics[3], 0)                              \
    X(LOG_EXTRA, logs, "extra", NULL, JSON, LOG, STR, extra_json, 0)

typedef enum bp_col_id {
#define BP_X_COL_ID(id, table, name, etl, type, src, rep, field, flags) BP_C_##id,
    BP_COLUMNS(BP_X_COL_ID)
#undef BP_X_COL_ID
        BP_C_COUNT
} bp_col_id;

typedef struct bp_column {
    const char *name;     /* as every output names it */
    const char *etl_name; /* ethereum-etl's name, NULL: not in ethereum-etl */
    const char *qname;    /* "table.name", for messages */
    bp_table table;
    bp_col_type type;
    unsigned flags; /* BP_COL_NOTNULL | BP_COL_KEY | BP_COL_RECEIPTS */
} bp_column;

/* All columns, indexed by bp_col_id. */
extern const bp_column bp_columns[BP_C_COUNT];

/* The columns of a table, in order: bp_columns[*first .. *first + count). */
size_t bp_table_columns(bp_table t, size_t *first);
/* "blocks", "transactions", "logs". */
const char *bp_table_name(bp_table t);
/* Lower-case name of a type ("uint256", ...), for docs and tests. */
const char *bp_col_type_name(bp_col_type t);

/* One row's sources: the block always, the tx for transactions, the log for logs. */
typedef struct bp_row {
    const char *chain;
    const bp_block *block;
    const bp_tx *tx;
    const bp_log *log;
} bp_row;

enum bp_value_kind {
    BP_VAL_NULL,
    BP_VAL_U64,
    BP_VAL_U256,        /* .q; a bp_qty that is set */
    BP_VAL_STR,         /* .s */
    BP_VAL_HEX,         /* .h: hex kept as bytes, written as its text (bp_hexb_text) */
    BP_VAL_WITHDRAWALS, /* the withdrawals of .block (has_withdrawals) */
    BP_VAL_F64,         /* .f (derived tables) */
};

typedef struct bp_value {
    enum bp_value_kind kind;
    uint64_t u;
    const bp_qty *q;
    const char *s;
    const bp_hexb *h;
    const bp_block *block;
    double f;
} bp_value;

static inline bp_value bp_val_null(void)
{
    return (bp_value){.kind = BP_VAL_NULL};
}

static inline bp_value bp_val_str(const char *s)
{
    return (bp_value){.kind = s ? BP_VAL_STR : BP_VAL_NULL, .s = s};
}

/* The text of a BP_VAL_HEX value: "0x" and its digits, at most BP_HEXB_TEXT bytes with the
 * NUL. */
#define BP_HEXB_TEXT (2 + BP_HEXB_MAX + 1)

/* Writes h's text and a NUL at dst (room for bp_hexb_text_len(h) + 1 bytes: at most
 * BP_HEXB_TEXT for a BP_VAL_HEX value); returns its length. Not BP_HEXB_IS_TEXT. */
static inline size_t bp_hexb_text(char *dst, const bp_hexb *h)
{
    static const char digit[16] = "0123456789abcdef";
    size_t n = bp_hexb_len(h);
    const unsigned char *b = bp_hexb_bytes(h);
    dst[0] = '0';
    dst[1] = 'x';
    for (size_t i = 0; i < n / 2; i++) {
        dst[2 + 2 * i] = digit[b[i] >> 4];
        dst[3 + 2 * i] = digit[b[i] & 15];
    }
    if (n & 1)
        dst[1 + n] = digit[b[n / 2] >> 4];
    dst[2 + n] = '\0';
    return 2 + n;
}

/* The length of h's text (not BP_HEXB_IS_TEXT). */
static inline size_t bp_hexb_text_len(const bp_hexb *h)
{
    return 2 + bp_hexb_len(h);
}

/* The text of a long-form h (BP_HEXB_IS_LONG), in this thread's buffer: valid until the thread
 * reads the next long value (a row has at most one: a transaction's input). Out of memory it
 * stops the process (before the batch commits: nothing lost), never NULL. So that no output needs
 * room for more than BP_HEXB_TEXT of a BP_VAL_HEX value. */
const char *bp_hexb_long_text(const bp_hexb *h);

/* Hex kept as bytes: BP_VAL_HEX for the short form, the text (BP_VAL_STR) for a long one or
 * one kept as text. */
static inline bp_value bp_val_hexb(const bp_hexb *h)
{
    if (!h)
        return (bp_value){.kind = BP_VAL_NULL};
    unsigned n = bp_hexb_digits(h);
    if (n == BP_HEXB_IS_TEXT)
        return (bp_value){.kind = BP_VAL_STR, .s = (const char *)h->b};
    if (n == BP_HEXB_IS_LONG)
        return bp_val_str(bp_hexb_long_text(h));
    return (bp_value){.kind = BP_VAL_HEX, .h = h};
}

static inline bp_value bp_val_u64(uint64_t u)
{
    return (bp_value){.kind = BP_VAL_U64, .u = u};
}

static inline bp_value bp_val_opt(const bp_opt_u64 *o)
{
    return (bp_value){.kind = o->set ? BP_VAL_U64 : BP_VAL_NULL, .u = o->v};
}

static inline bp_value bp_val_qty(const bp_qty *q)
{
    return (bp_value){.kind = q->set ? BP_VAL_U256 : BP_VAL_NULL, .q = q};
}

static inline bp_value bp_val_withdrawals(const bp_block *b)
{
    return (bp_value){.kind = b->has_withdrawals ? BP_VAL_WITHDRAWALS : BP_VAL_NULL, .block = b};
}

/* How each source and representation is read (see BP_COLUMNS). */
#define BP_GET_CHAIN(r, REP, f) bp_val_str((r)->chain)
#define BP_GET_BLOCK(r, REP, f) REP((r)->block, f)
#define BP_GET_TX(r, REP, f) REP((r)->tx, f)
#define BP_GET_RECEIPT(r, REP, f) ((r)->tx->has_receipt ? REP((r)->tx, f) : bp_val_null())
#define BP_GET_RARE(r, REP, f) ((r)->tx->rare ? REP((r)->tx->rare, f) : bp_val_null())
#define BP_GET_RARE_RECEIPT(r, REP, f)                                                             \
    ((r)->tx->has_receipt && (r)->tx->rare ? REP((r)->tx->rare, f) : bp_val_null())
#define BP_GET_OP(r, REP, f) ((r)->tx->op ? REP((r)->tx->op, f) : bp_val_null())
#define BP_GET_OP_RECEIPT(r, REP, f)                                                               \
    ((r)->tx->has_receipt && (r)->tx->op ? REP((r)->tx->op, f) : bp_val_null())
#define BP_GET_ARB_RECEIPT(r, REP, f)                                                              \
    ((r)->tx->has_receipt && (r)->tx->arb ? REP((r)->tx->arb, f) : bp_val_null())
#define BP_GET_LOG(r, REP, f) REP((r)->log, f)
#define BP_REP_STR_OF(p, f) bp_val_str((p)->f)
#define BP_REP_HEXB_OF(p, f) bp_val_hexb((p)->f)
#define BP_REP_U64_OF(p, f) bp_val_u64((p)->f)
#define BP_REP_SIZE_OF(p, f) bp_val_u64((uint64_t)(p)->f)
#define BP_REP_OPT_U64_OF(p, f) bp_val_opt(&(p)->f)
#define BP_REP_QTY_OF(p, f) bp_val_qty(&(p)->f)
#define BP_REP_WITHDRAWALS_OF(p, f) bp_val_withdrawals(p)

/* The value of column id in row r (borrowed from the block). A switch the compiler folds
 * away when id is a constant (row encoders with a fixed layout); a jump table otherwise. */
/* always_inline: GCC otherwise keeps the 75-case switch out of line even for a constant id. */
static inline __attribute__((always_inline)) bp_value bp_value_of(bp_col_id id, const bp_row *r)
{
    switch (id) {
#define BP_X_COL_VALUE(id, table, name, etl, type, src, rep, field, flags)                         \
    case BP_C_##id:                                                                                \
        return BP_GET_##src(r, BP_REP_##rep##_OF, field);
        BP_COLUMNS(BP_X_COL_VALUE)
#undef BP_X_COL_VALUE
    default:
        return bp_val_null();
    }
}

/* The logical type of column id (folds to a constant for a constant id). */
static inline __attribute__((always_inline)) bp_col_type bp_col_type_of(bp_col_id id)
{
    switch (id) {
#define BP_X_COL_TYPE(id, table, name, etl, type, src, rep, field, flags)                          \
    case BP_C_##id:                                                                                \
        return BP_COL_##type;
        BP_COLUMNS(BP_X_COL_TYPE)
#undef BP_X_COL_TYPE
    default:
        return BP_COL_TEXT;
    }
}

/* The columns schema version 3 added (OP stack, Arbitrum, the extra JSON of every table): each
 * table's from these ids to its end. They are each table's last, so a table made new and one
 * upgraded in place (ALTER TABLE ... ADD COLUMN appends) have the same column order. */
#define BP_C_BLOCKS_V3 BP_C_BLOCK_EXTRA
#define BP_C_TRANSACTIONS_V3 BP_C_TX_SOURCE_HASH
#define BP_C_LOGS_V3 BP_C_LOG_EXTRA

/* Each table's columns are the ids [BP_C_<TABLE>_FIRST, the next table's first). */
#define BP_C_BLOCKS_FIRST BP_C_BLOCK_CHAIN
#define BP_C_TRANSACTIONS_FIRST BP_C_TX_CHAIN
#define BP_C_LOGS_FIRST BP_C_LOG_CHAIN

/* The value of column c in row r. */
static inline bp_value bp_column_value(const bp_column *c, const bp_row *r)
{
    return bp_value_of((bp_col_id)(c - bp_columns), r);
}

#endif
