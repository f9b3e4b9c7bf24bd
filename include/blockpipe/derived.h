/* derived.h - the tables blockpipe derives from the ordered APPLY/REVERT stream (chain
 * analytics): their columns (one X-macro table, the same idea as columns.h, so DDL, views,
 * rollup SQL and row encoders are generated), the rows the metrics module (src/metrics/)
 * computes once per batch, and bp_derived, what a batch carries to the outputs that write
 * derived tables (bp_batch.derived).
 *
 * The tables (docs/SCHEMA.md has their meaning):
 *   chain_metrics_block                 one row per canonical block
 *   chain_metrics_1m / _1h / _1d        per window, recomputed from the finer grain
 *                                       (block -> 1m -> 1h -> 1d) for every touched window
 *   contract_metrics_1m / _1h / _1d     per window and contract: 1m recomputed from the raw
 *                                       transactions, 1h and 1d added / subtracted
 *   active_addresses, contract_senders  the 1h and 1d windows' sets of senders (with the first
 *                                       block of the window the address sent in): exact
 *                                       distinct counts through reorgs; a minute's distinct
 *                                       senders are counted from its raw transactions
 *   token_transfers                     ERC-20/721 Transfer, ERC-1155 TransferSingle/Batch
 *   prices                              USD prices of the native token
 *   ml_predictions                      per-transaction anomaly score
 * Each window table has a view <table>_v whose time column is `timestamp` (1m), `hour_ts`
 * (1h) or `day_ts` (1d) in place of window_start. */
#ifndef BLOCKPIPE_DERIVED_H
#define BLOCKPIPE_DERIVED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/columns.h"
#include "blockpipe/error.h"
#include "blockpipe/model.h"

/* The shapes: tables of one shape have the same columns (the three grains of a rollup). */
typedef enum bp_dshape {
    BP_DS_CHAIN_BLOCK,
    BP_DS_CHAIN_WINDOW,
    BP_DS_CONTRACT_WINDOW,
    BP_DS_ADDRESS_SET,
    BP_DS_CONTRACT_SENDER_SET,
    BP_DS_TOKEN_TRANSFER,
    BP_DS_PRICE,
    BP_DS_PREDICTION,
    BP_DS_COUNT
} bp_dshape;

/* X(id, name, shape, grain seconds (0: not a window table), time column of its view) */
#define BP_DTABLES(X)                                                                              \
    X(CHAIN_BLOCK, "chain_metrics_block", CHAIN_BLOCK, 0, NULL)                                    \
    X(CHAIN_1M, "chain_metrics_1m", CHAIN_WINDOW, 60, "timestamp")                                 \
    X(CHAIN_1H, "chain_metrics_1h", CHAIN_WINDOW, 3600, "hour_ts")                                 \
    X(CHAIN_1D, "chain_metrics_1d", CHAIN_WINDOW, 86400, "day_ts")                                 \
    X(CONTRACT_1M, "contract_metrics_1m", CONTRACT_WINDOW, 60, "timestamp")                        \
    X(CONTRACT_1H, "contract_metrics_1h", CONTRACT_WINDOW, 3600, "hour_ts")                        \
    X(CONTRACT_1D, "contract_metrics_1d", CONTRACT_WINDOW, 86400, "day_ts")                        \
    X(ACTIVE_ADDRESSES, "active_addresses", ADDRESS_SET, 0, NULL)                                  \
    X(CONTRACT_SENDERS, "contract_senders", CONTRACT_SENDER_SET, 0, NULL)                          \
    X(TOKEN_TRANSFERS, "token_transfers", TOKEN_TRANSFER, 0, NULL)                                 \
    X(PRICES, "prices", PRICE, 0, NULL)                                                            \
    X(ML_PREDICTIONS, "ml_predictions", PREDICTION, 0, NULL)

typedef enum bp_dtable {
#define BP_X_DT_ID(id, name, shape, grain, timecol) BP_DT_##id,
    BP_DTABLES(BP_X_DT_ID)
#undef BP_X_DT_ID
        BP_DT_COUNT
} bp_dtable;

typedef struct bp_dtable_info {
    const char *name;
    bp_dshape shape;
    uint64_t grain;      /* window length in seconds, 0 for the other tables */
    const char *timecol; /* the view's time column, NULL: no view */
} bp_dtable_info;

extern const bp_dtable_info bp_dtables[BP_DT_COUNT];

/* The grains of the rollups, finest first. */
enum { BP_GRAIN_1M, BP_GRAIN_1H, BP_GRAIN_1D, BP_GRAIN_COUNT };
extern const uint64_t bp_grain_seconds[BP_GRAIN_COUNT];
extern const char *const bp_grain_names[BP_GRAIN_COUNT]; /* "1m", "1h", "1d" */

/* How a rollup column is computed from the rows of the next finer grain (chain_metrics_block
 * for 1m, 1m for 1h, 1h for 1d); the recomputation SQL is made from it (sink/sqlgen.h). */
typedef enum bp_agg {
    BP_AGG_NONE,        /* not a rollup column */
    BP_AGG_KEY,         /* the group key (origin_key) */
    BP_AGG_WINDOW,      /* the window's start (unix seconds, UTC) */
    BP_AGG_COUNT,       /* blocks: count of block rows, sum of block_count */
    BP_AGG_FIRST_BLOCK, /* min(block_number) / min(first_block) */
    BP_AGG_LAST_BLOCK,  /* max(block_number) / max(last_block) */
    BP_AGG_SUM,         /* integer sum */
    BP_AGG_SUM256,      /* exact 256-bit sum */
    BP_AGG_NATIVE,      /* fees_paid_wei of the window / 1e18, as a double */
    BP_AGG_USD,         /* sum, NULL unless every finer row has a value */
    BP_AGG_MEDIAN,      /* lower median of the finer rows' values (NULLs ignored) */
    BP_AGG_DISTINCT,    /* the size of the window's set (maintained with the set) */
} bp_agg;

/* Logical types beyond columns.h: BP_COL_FLOAT (a double; the type list is shared). */

#define BP_DCOL_NOTNULL BP_COL_NOTNULL
#define BP_DCOL_KEY BP_COL_KEY

/* X(id, shape, name, type, rep, field, agg, flags): every derived column, each shape's in its
 * SQL order. The value C writes is `field` of the shape's row struct (bp_dshape_row below),
 * read as rep: STR, U64, QTY, F64 (bp_opt_f64) or NONE (rows made by SQL only). */
#define BP_DCOLUMNS(X)                                                                             \
    X(CB_ORIGIN_KEY, CHAIN_BLOCK, "origin_key", TEXT, STR, origin_key, NONE,                       \
      BP_COL_NOTNULL | BP_COL_KEY)                                                                 \
    X(CB_BLOCK_NUMBER, CHAIN_BLOCK, "block_number", INT64, U64, block_number, NONE,                \
      BP_COL_NOTNULL | BP_COL_KEY)                                                                 \
    X(CB_BLOCK_HASH, CHAIN_BLOCK, "block_hash", HASH, STR, block_hash, NONE, BP_COL_NOTNULL)       \
    X(CB_BLOCK_TIMESTAMP, CHAIN_BLOCK, "block_timestamp", INT64, U64, block_timestamp, NONE,       \
      BP_COL_NOTNULL)                                                                              \
    X(CB_TXCOUNT, CHAIN_BLOCK, "txcount", INT64, U64, txcount, NONE, BP_COL_NOTNULL)               \
    X(CB_TXCOUNT_FAILED, CHAIN_BLOCK, "txcount_failed", INT64, U64, txcount_failed, NONE,          \
      BP_COL_NOTNULL)                                                                              \
    X(CB_TXCOUNT_CONTRACT_CREATION, CHAIN_BLOCK, "txcount_contract_creation", INT64, U64,          \
      txcount_contract_creation, SUM, BP_COL_NOTNULL)                                              \
    X(CB_GAS_USED, CHAIN_BLOCK, "gas_used", INT64, U64, gas_used, NONE, BP_COL_NOTNULL)            \
    X(CB_GAS_LIMIT, CHAIN_BLOCK, "gas_limit", INT64, U64, gas_limit, NONE, BP_COL_NOTNULL)         \
    X(CB_FEES_PAID_WEI, CHAIN_BLOCK, "fees_paid_wei", UINT256, QTY, fees_paid_wei, NONE,           \
      BP_COL_NOTNULL)                                                                              \
    X(CB_FEES_PAID_NATIVE, CHAIN_BLOCK, "fees_paid_native", FLOAT, F64, fees_paid_native, NONE,    \
      BP_COL_NOTNULL)                                                                              \
    X(CB_FEES_PAID_USD, CHAIN_BLOCK, "fees_paid_usd", FLOAT, F64, fees_paid_usd, NONE, 0)          \
    X(CB_BASE_FEE_PER_GAS, CHAIN_BLOCK, "base_fee_per_gas", UINT256, QTY, base_fee_per_gas,        \
      MEDIAN, 0)                                                                                   \
    X(CB_MEDIAN_GAS_PRICE, CHAIN_BLOCK, "median_gas_price", UINT256, QTY, median_gas_price,        \
      MEDIAN, 0)                                                                                   \
    X(CB_ACTIVE_ADDRESSES, CHAIN_BLOCK, "active_addresses", INT64, U64, active_addresses,          \
      DISTINCT, BP_COL_NOTNULL)                                                                    \
                                                                                                   \
    X(CW_ORIGIN_KEY, CHAIN_WINDOW, "origin_key", TEXT, NONE, -, KEY, BP_COL_NOTNULL | BP_COL_KEY)  \
    X(CW_WINDOW_START, CHAIN_WINDOW, "window_start", INT64, NONE, -, WINDOW,                       \
      BP_COL_NOTNULL | BP_COL_KEY)                                                                 \
    X(CW_BLOCK_COUNT, CHAIN_WINDOW, "block_count", INT64, NONE, -, COUNT, BP_COL_NOTNULL)          \
    X(CW_FIRST_BLOCK, CHAIN_WINDOW, "first_block", INT64, NONE, -, FIRST_BLOCK, BP_COL_NOTNULL)    \
    X(CW_LAST_BLOCK, CHAIN_WINDOW, "last_block", INT64, NONE, -, LAST_BLOCK, BP_COL_NOTNULL)       \
    X(CW_TXCOUNT, CHAIN_WINDOW, "txcount", INT64, NONE, -, SUM, BP_COL_NOTNULL)                    \
    X(CW_TXCOUNT_FAILED, CHAIN_WINDOW, "txcount_failed", INT64, NONE, -, SUM, BP_COL_NOTNULL)      \
    X(CW_TXCOUNT_CONTRACT_CREATION, CHAIN_WINDOW, "txcount_contract_creation", INT64, NONE, -,     \
      SUM, BP_COL_NOTNULL)                                                                         \
    X(CW_GAS_USED, CHAIN_WINDOW, "gas_used", INT64, NONE, -, SUM, BP_COL_NOTNULL)                  \
    X(CW_GAS_LIMIT, CHAIN_WINDOW, "gas_limit", INT64, NONE, -, SUM, BP_COL_NOTNULL)                \
    X(CW_FEES_PAID_WEI, CHAIN_WINDOW, "fees_paid_wei", UINT256, NONE, -, SUM256, BP_COL_NOTNULL)   \
    X(CW_FEES_PAID_NATIVE, CHAIN_WINDOW, "fees_paid_native", FLOAT, NONE, -, NATIVE,               \
      BP_COL_NOTNULL)                                                                              \
    X(CW_FEES_PAID_USD, CHAIN_WINDOW, "fees_paid_usd", FLOAT, NONE, -, USD, 0)                     \
    X(CW_BASE_FEE_PER_GAS, CHAIN_WINDOW, "base_fee_per_gas", UINT256, NONE, -, MEDIAN, 0)          \
    X(CW_MEDIAN_GAS_PRICE, CHAIN_WINDOW, "median_gas_price", UINT256, NONE, -, MEDIAN, 0)          \
    X(CW_ACTIVE_ADDRESSES, CHAIN_WINDOW, "active_addresses", INT64, NONE, -, DISTINCT,             \
      BP_COL_NOTNULL)                                                                              \
                                                                                                   \
    X(KW_ORIGIN_KEY, CONTRACT_WINDOW, "origin_key", TEXT, STR, origin_key, NONE,                   \
      BP_COL_NOTNULL | BP_COL_KEY)                                                                 \
    X(KW_WINDOW_START, CONTRACT_WINDOW, "window_start", INT64, U64, window_start, NONE,            \
      BP_COL_NOTNULL | BP_COL_KEY)                                                                 \
    X(KW_CONTRACT_ADDRESS, CONTRACT_WINDOW, "contract_address", ADDRESS, STR, contract_address,    \
      NONE, BP_COL_NOTNULL | BP_COL_KEY)                                                           \
    X(KW_TXCOUNT, CONTRACT_WINDOW, "txcount", INT64, U64, txcount, NONE, BP_COL_NOTNULL)           \
    X(KW_GAS_USED, CONTRACT_WINDOW, "gas_used", INT64, U64, gas_used, NONE, BP_COL_NOTNULL)        \
    X(KW_FEES_PAID_WEI, CONTRACT_WINDOW, "fees_paid_wei", UINT256, QTY, fees_paid_wei, NONE,       \
      BP_COL_NOTNULL)                                                                              \
    X(KW_FEES_PAID_NATIVE, CONTRACT_WINDOW, "fees_paid_native", FLOAT, F64, fees_paid_native,      \
      NONE, BP_COL_NOTNULL)                                                                        \
    X(KW_UNIQUE_SENDERS, CONTRACT_WINDOW, "unique_senders", INT64, U64, unique_senders, NONE,      \
      BP_COL_NOTNULL)                                                                              \
                                                                                                   \
    X(AS_ORIGIN_KEY, ADDRESS_SET, "origin_key", TEXT, STR, origin_key, NONE,                       \
      BP_COL_NOTNULL | BP_COL_KEY)                                                                 \
    X(AS_GRAIN, ADDRESS_SET, "grain", TEXT, STR, grain, NONE, BP_COL_NOTNULL | BP_COL_KEY)         \
    X(AS_WINDOW_START, ADDRESS_SET, "window_start", INT64, U64, window_start, NONE,                \
      BP_COL_NOTNULL | BP_COL_KEY)                                                                 \
    X(AS_ADDRESS, ADDRESS_SET, "address", ADDRESS, STR, address, NONE,                             \
      BP_COL_NOTNULL | BP_COL_KEY)                                                                 \
    X(AS_FIRST_BLOCK, ADDRESS_SET, "first_block", INT64, U64, first_block, NONE, BP_COL_NOTNULL)   \
                                                                                                   \
    X(CS_ORIGIN_KEY, CONTRACT_SENDER_SET, "origin_key", TEXT, STR, origin_key, NONE,               \
      BP_COL_NOTNULL | BP_COL_KEY)                                                                 \
    X(CS_GRAIN, CONTRACT_SENDER_SET, "grain", TEXT, STR, grain, NONE, BP_COL_NOTNULL | BP_COL_KEY) \
    X(CS_WINDOW_START, CONTRACT_SENDER_SET, "window_start", INT64, U64, window_start, NONE,        \
      BP_COL_NOTNULL | BP_COL_KEY)                                                                 \
    X(CS_CONTRACT_ADDRESS, CONTRACT_SENDER_SET, "contract_address", ADDRESS, STR,                  \
      contract_address, NONE, BP_COL_NOTNULL | BP_COL_KEY)                                         \
    X(CS_ADDRESS, CONTRACT_SENDER_SET, "address", ADDRESS, STR, address, NONE,                     \
      BP_COL_NOTNULL | BP_COL_KEY)                                                                 \
    X(CS_FIRST_BLOCK, CONTRACT_SENDER_SET, "first_block", INT64, U64, first_block, NONE,           \
      BP_COL_NOTNULL)                                                                              \
                                                                                                   \
    X(TT_CHAIN, TOKEN_TRANSFER, "chain", TEXT, STR, chain, NONE, BP_COL_NOTNULL | BP_COL_KEY)      \
    X(TT_TOKEN_ADDRESS, TOKEN_TRANSFER, "token_address", ADDRESS, STR, token_address, NONE,        \
      BP_COL_NOTNULL)                                                                              \
    X(TT_FROM_ADDRESS, TOKEN_TRANSFER, "from_address", ADDRESS, STR, from_address, NONE, 0)        \
    X(TT_TO_ADDRESS, TOKEN_TRANSFER, "to_address", ADDRESS, STR, to_address, NONE, 0)              \
    X(TT_VALUE, TOKEN_TRANSFER, "value", UINT256, QTY, value, NONE, 0)                             \
    X(TT_TRANSACTION_HASH, TOKEN_TRANSFER, "transaction_hash", HASH, STR, transaction_hash, NONE,  \
      0)                                                                                           \
    X(TT_LOG_INDEX, TOKEN_TRANSFER, "log_index", INT64, U64, log_index, NONE,                      \
      BP_COL_NOTNULL | BP_COL_KEY)                                                                 \
    X(TT_BLOCK_NUMBER, TOKEN_TRANSFER, "block_number", INT64, U64, block_number, NONE,             \
      BP_COL_NOTNULL | BP_COL_KEY)                                                                 \
    X(TT_BLOCK_TIMESTAMP, TOKEN_TRANSFER, "block_timestamp", INT64, U64, block_timestamp, NONE, 0) \
    X(TT_BLOCK_HASH, TOKEN_TRANSFER, "block_hash", HASH, STR, block_hash, NONE, 0)                 \
    X(TT_TOKEN_STANDARD, TOKEN_TRANSFER, "token_standard", TEXT, STR, token_standard, NONE,        \
      BP_COL_NOTNULL)                                                                              \
    X(TT_TOKEN_ID, TOKEN_TRANSFER, "token_id", UINT256, QTY, token_id, NONE, 0)                    \
    X(TT_OPERATOR_ADDRESS, TOKEN_TRANSFER, "operator_address", ADDRESS, STR, operator_address,     \
      NONE, 0)                                                                                     \
    X(TT_BATCH_INDEX, TOKEN_TRANSFER, "batch_index", INT64, U64, batch_index, NONE,                \
      BP_COL_NOTNULL | BP_COL_KEY)                                                                 \
                                                                                                   \
    X(PR_SYMBOL, PRICE, "symbol", TEXT, STR, symbol, NONE, BP_COL_NOTNULL | BP_COL_KEY)            \
    X(PR_TIMESTAMP, PRICE, "timestamp", INT64, U64, timestamp, NONE, BP_COL_NOTNULL | BP_COL_KEY)  \
    X(PR_USD, PRICE, "usd", FLOAT, F64, usd, NONE, BP_COL_NOTNULL)                                 \
    X(PR_SOURCE, PRICE, "source", TEXT, STR, source, NONE, 0)                                      \
                                                                                                   \
    X(ML_ORIGIN_KEY, PREDICTION, "origin_key", TEXT, STR, origin_key, NONE,                        \
      BP_COL_NOTNULL | BP_COL_KEY)                                                                 \
    X(ML_BLOCK_NUMBER, PREDICTION, "block_number", INT64, U64, block_number, NONE,                 \
      BP_COL_NOTNULL | BP_COL_KEY)                                                                 \
    X(ML_TRANSACTION_INDEX, PREDICTION, "transaction_index", INT64, U64, transaction_index, NONE,  \
      BP_COL_NOTNULL | BP_COL_KEY)                                                                 \
    X(ML_TRANSACTION_HASH, PREDICTION, "transaction_hash", HASH, STR, transaction_hash, NONE,      \
      BP_COL_NOTNULL)                                                                              \
    X(ML_FRAUD_SCORE, PREDICTION, "fraud_score", FLOAT, F64, fraud_score, NONE, BP_COL_NOTNULL)    \
    X(ML_MODEL, PREDICTION, "model", TEXT, STR, model, NONE, BP_COL_NOTNULL)                       \
    X(ML_PREDICTION_TIME, PREDICTION, "prediction_time", INT64, U64, prediction_time, NONE,        \
      BP_COL_NOTNULL)

typedef enum bp_dcol_id {
#define BP_X_DCOL_ID(id, shape, name, type, rep, field, agg, flags) BP_D_##id,
    BP_DCOLUMNS(BP_X_DCOL_ID)
#undef BP_X_DCOL_ID
        BP_D_COUNT
} bp_dcol_id;

typedef struct bp_dcolumn {
    const char *name;
    bp_dshape shape;
    bp_col_type type;
    bp_agg agg;
    unsigned flags; /* BP_COL_NOTNULL | BP_COL_KEY */
} bp_dcolumn;

extern const bp_dcolumn bp_dcolumns[BP_D_COUNT];

/* The columns of a shape, in order: bp_dcolumns[*first .. *first + count). */
size_t bp_dshape_columns(bp_dshape s, size_t *first);
/* The table called name, BP_DT_COUNT when none. */
bp_dtable bp_dtable_find(const char *name);

/* ---- the selection of an output's derived tables (derived=LIST) ------------------------- */

/* The groups an output selects its derived tables by (the option derived=, shared by the SQL
 * outputs). A group is written whole or not at all, and needs the groups its tables are
 * computed or reverted with:
 *   chain_metrics     chain_metrics_block, _1m, _1h, _1d (+ views); needs active_addresses
 *                     (the hours' and days' exact distinct senders are their sets) and prices
 *                     (fees_paid_usd is priced from the output's prices table)
 *   active_addresses  active_addresses; needs chain_metrics (a set row leaves with its block,
 *                     found by its chain_metrics_block row)
 *   contract_metrics  contract_metrics_1m, _1h, _1d (+ views), contract_senders; needs
 *                     chain_metrics (a minute is counted from the raw transactions of the
 *                     blocks that have a chain_metrics_block row, a REVERT finds its block's
 *                     rows by it)
 *   token_transfers   token_transfers; needs chain_metrics (REVERT, as above)
 *   prices            prices
 *   ml_predictions    ml_predictions (scored only with --ml); needs chain_metrics
 * So every selection but "prices" alone holds chain_metrics, active_addresses and prices:
 * chain_metrics_block stays the one record of which blocks the derived tables count. */
#define BP_DGROUPS(X)                                                                              \
    X(CHAIN_METRICS, "chain_metrics")                                                              \
    X(CONTRACT_METRICS, "contract_metrics")                                                        \
    X(ACTIVE_ADDRESSES, "active_addresses")                                                        \
    X(TOKEN_TRANSFERS, "token_transfers")                                                          \
    X(PRICES, "prices")                                                                            \
    X(ML_PREDICTIONS, "ml_predictions")

typedef enum bp_dgroup {
#define BP_X_DG_ID(id, name) BP_DG_##id,
    BP_DGROUPS(BP_X_DG_ID)
#undef BP_X_DG_ID
        BP_DG_COUNT
} bp_dgroup;

#define BP_DG_BIT(g) (1u << (g))
#define BP_DG_ALL ((1u << BP_DG_COUNT) - 1u)
/* The groups whose rows belong to a block (taken out by its REVERT): all but prices. */
#define BP_DG_BLOCK_KEYED (BP_DG_ALL & ~BP_DG_BIT(BP_DG_PRICES))

extern const char *const bp_dgroup_names[BP_DG_COUNT];

/* The group table t belongs to. */
bp_dgroup bp_dtable_group(bp_dtable t);
/* Whether the selection groups (a mask of BP_DG_BIT) has table t. */
static inline bool bp_dtable_selected(unsigned groups, bp_dtable t)
{
    return (groups & BP_DG_BIT(bp_dtable_group(t))) != 0;
}
/* "chain_metrics,token_transfers" (also "all", "none"; spaces ignored) into *groups; checks
 * that each group's needs are in the list. who names the setting in messages (e.g. "derived
 * (--derived)"). BP_EINVAL with err naming the group and what to add. */
int bp_dgroups_parse(const char *list, const char *who, unsigned *groups, bp_error *err);
/* Whether an output may write the selection groups with --ml on (ml) or off: a list that names
 * ml_predictions (groups other than all) without --ml on is refused, BP_EINVAL naming both
 * options (nothing would score its transactions, yet the database's record would say the table
 * holds them: a later --ml on would leave a gap the record hides). all with --ml off keeps
 * ml_predictions as metrics=off keeps every group: --ml on later scores the blocks from then on
 * (docs/SCHEMA.md, ml_predictions). */
int bp_dgroups_check_ml(unsigned groups, bool ml, bp_error *err);
/* groups as a list in BP_DGROUPS order ("none" for 0) into out[cap]. */
void bp_dgroups_format(unsigned groups, char *out, size_t cap);
/* What an output's derived tables hold once it opens with the selection `now` (0: metrics
 * off), given the database's record of the groups its tables were written with (*stored;
 * NULL: no record, i.e. a fresh database or one written before derived= existed, which had
 * every group) and whether they hold rows (`written`: a chain_metrics_block or
 * chain_metrics_1d row). The groups of blocks (all but prices) must stay what the rows were
 * written with while chain_metrics is written (a group turned on later would count only the
 * blocks from then on in windows that began before, one turned off would stop in the middle
 * of its windows): else BP_EINVAL naming the group, its tables and what to do. With
 * chain_metrics off (metrics=off, derived=prices or none) nothing of a block is written and
 * the record stays (as for metrics=off; its blocks are in no window).
 * *has: the groups the tables hold from now on (what a REVERT takes out, what is written
 * with metrics on); *record: the record must be (re)written as *has. */
int bp_dgroups_open(unsigned now, const unsigned *stored, bool written, unsigned *has, bool *record,
                    bp_error *err);
/* bp_dgroups_open with the record as the database keeps it: stored_text NULL (no record) or
 * the list; *record_out (cap bytes) the list to store, "" when the record stays. */
int bp_dgroups_open_text(unsigned now, const char *stored_text, bool written, unsigned *has,
                         char *record_out, size_t cap, bp_error *err);

struct bp_block_derived;
/* b as an output that writes the groups `has` takes it: b itself when it has no rows of the
 * others, else *copy made from it with their counts 0 (token_transfers, ml_predictions,
 * contract rows and (contract, sender) pairs computed for another output; set_rows stay
 * whole: an output without contract_metrics skips their contract_senders rows). Borrows b's
 * arrays. */
const struct bp_block_derived *bp_derived_trim(const struct bp_block_derived *b, unsigned has,
                                               struct bp_block_derived *copy);

/* ---- rows ------------------------------------------------------------------------------- */

typedef struct bp_opt_f64 {
    double v;
    bool set;
} bp_opt_f64;

typedef struct bp_chain_block_row {
    const char *origin_key;
    uint64_t block_number;
    const char *block_hash;
    uint64_t block_timestamp;
    uint64_t txcount;
    uint64_t txcount_failed;            /* receipt status 0 */
    uint64_t txcount_contract_creation; /* to is null */
    uint64_t gas_used, gas_limit;       /* the header's */
    bp_qty fees_paid_wei;               /* sum of receipt gasUsed x effectiveGasPrice */
    bp_opt_f64 fees_paid_native;        /* fees_paid_wei / 1e18 */
    bp_opt_f64 fees_paid_usd;           /* unset: the outputs price it from their prices table */
    bp_qty base_fee_per_gas;
    bp_qty median_gas_price;   /* lower median of the txs' effective gas prices; unset: no txs */
    uint64_t active_addresses; /* distinct senders */
} bp_chain_block_row;

/* A block's aggregate for one contract (block_number) or a contract window's increment
 * (window_start). */
typedef struct bp_contract_row {
    const char *origin_key;
    uint64_t block_number;
    uint64_t window_start;
    const char *contract_address;
    uint64_t block_timestamp;
    uint64_t txcount, gas_used;
    bp_qty fees_paid_wei;
    bp_opt_f64 fees_paid_native;
    uint64_t unique_senders;
} bp_contract_row;

/* active_addresses (contract_address NULL) and contract_senders rows: an address is in its
 * window's set while one of the window's canonical blocks has it; first_block is the lowest of
 * them. Blocks are applied in ascending order and reverted highest first, so a REVERT of block
 * B removes exactly the rows whose first_block is B (their only block), and an APPLY inserts
 * the rows that are not there yet: a set row is written once, never updated. */
typedef struct bp_set_row {
    const char *origin_key;
    const char *grain;
    uint64_t window_start;
    const char *contract_address;
    const char *address;
    uint64_t first_block;
    /* The metrics module saw the window whole (from its start, no REVERT since): the row is
     * in no output's table yet, an output may write it without looking (PostgreSQL COPYs it
     * straight into its table). False: the output keeps it only if its table lacks it. */
    bool known_new;
} bp_set_row;

typedef struct bp_token_transfer_row {
    const char *chain;
    const char *token_address, *from_address, *to_address;
    bp_qty value; /* ERC-721: the token id, as ethereum-etl has it */
    const char *transaction_hash;
    uint64_t log_index, block_number, block_timestamp;
    const char *block_hash;
    const char *token_standard;   /* "erc20", "erc721", "erc1155" */
    bp_qty token_id;              /* ERC-721 and ERC-1155 */
    const char *operator_address; /* ERC-1155 */
    uint64_t batch_index;         /* position in a TransferBatch, else 0 */
} bp_token_transfer_row;

typedef struct bp_price_row {
    const char *symbol;
    uint64_t timestamp;
    bp_opt_f64 usd;
    const char *source;
} bp_price_row;

typedef struct bp_prediction_row {
    const char *origin_key;
    uint64_t block_number, transaction_index;
    const char *transaction_hash;
    bp_opt_f64 fraud_score;
    const char *model;
    uint64_t prediction_time;
} bp_prediction_row;

#define BP_DSHAPE_ROW_CHAIN_BLOCK bp_chain_block_row
#define BP_DSHAPE_ROW_CHAIN_WINDOW void
#define BP_DSHAPE_ROW_CONTRACT_WINDOW bp_contract_row
#define BP_DSHAPE_ROW_ADDRESS_SET bp_set_row
#define BP_DSHAPE_ROW_CONTRACT_SENDER_SET bp_set_row
#define BP_DSHAPE_ROW_TOKEN_TRANSFER bp_token_transfer_row
#define BP_DSHAPE_ROW_PRICE bp_price_row
#define BP_DSHAPE_ROW_PREDICTION bp_prediction_row

static inline bp_value bp_val_f64(const bp_opt_f64 *f)
{
    return (bp_value){.kind = f->set ? BP_VAL_F64 : BP_VAL_NULL, .f = f->v};
}

#define BP_DREP_STR(r, T, f) bp_val_str(((const T *)(r))->f)
#define BP_DREP_U64(r, T, f) bp_val_u64(((const T *)(r))->f)
#define BP_DREP_QTY(r, T, f) bp_val_qty(&((const T *)(r))->f)
#define BP_DREP_F64(r, T, f) bp_val_f64(&((const T *)(r))->f)
#define BP_DREP_NONE(r, T, f) bp_val_null()

/* The value of derived column id in row (a pointer to its shape's row struct), borrowed. */
static inline __attribute__((always_inline)) bp_value bp_dvalue_of(bp_dcol_id id, const void *row)
{
    switch (id) {
#define BP_X_DCOL_VALUE(id, shape, name, type, rep, field, agg, flags)                             \
    case BP_D_##id:                                                                                \
        return BP_DREP_##rep(row, BP_DSHAPE_ROW_##shape, field);
        BP_DCOLUMNS(BP_X_DCOL_VALUE)
#undef BP_X_DCOL_VALUE
    default:
        return bp_val_null();
    }
}

/* ---- what a batch carries ------------------------------------------------------------- */

/* A (contract, sender) pair of a block. */
typedef struct bp_pair {
    const char *contract_address;
    const char *address;
} bp_pair;

/* Everything derived from one APPLY block. Strings borrow from the block (or the batch's
 * derived arena); valid while the batch is written. */
typedef struct bp_block_derived {
    const bp_block *block; /* the APPLY event's block */
    bp_chain_block_row chain;
    bp_contract_row *contracts; /* one per contract the block's txs called or created */
    size_t contract_count;
    const char **senders; /* distinct from addresses */
    size_t sender_count;
    bp_pair *pairs; /* distinct (contract, sender) */
    size_t pair_count;
    bp_token_transfer_row *transfers;
    size_t transfer_count;
    bp_prediction_row *predictions;
    size_t prediction_count;
    /* The block's hour and day set rows (active_addresses: contract_address NULL;
     * contract_senders): only the ones new to their window when the metrics module has seen
     * the window whole, else every distinct one of the block (the output keeps what its table
     * lacks). */
    bp_set_row *set_rows;
    size_t set_row_count;
} bp_block_derived;

/* A minute's distinct senders and contract rows, for every block of it up to the batch's
 * end, when the metrics module saw the minute from its start (else the outputs count from
 * the minute's raw transactions). */
typedef struct bp_minute_summary {
    uint64_t window_start;
    uint64_t active_addresses;
    const bp_contract_row *contracts; /* window_start set, unique_senders counted */
    size_t contract_count;
} bp_minute_summary;

/* The derived data of a batch: one entry per APPLY event (in event order, found by the
 * event's block pointer: outputs see the events they have not seen yet, in order). */
typedef struct bp_derived {
    const char *origin_key; /* the batch's chain */
    bp_block_derived *blocks;
    size_t count;
    /* Prices learnt since the previous batch: every output stores them and reprices the
     * blocks (and windows) they apply to. */
    const bp_price_row *prices;
    size_t price_count;
    const bp_minute_summary *minutes; /* the minutes the batch's blocks are in (see above) */
    size_t minute_count;
    const char *native_symbol; /* e.g. "ETH": the prices rows that apply */
    uint64_t price_max_age;    /* seconds: an older price is no price (USD stays NULL) */
    /* The price at ts under the max-age rule from every point known now (true and *usd), for
     * outputs without a prices table of their own (the stream outputs); NULL: no prices. */
    bool (*price_at)(void *ctx, uint64_t ts, double *usd);
    void *price_ctx;
    /* Retention: the newest block timestamp of the stream, and the timestamp below which
     * nothing can change any more (the block reorg_window below the newest; 0: not known
     * yet, then nothing expires). */
    uint64_t newest_ts;
    uint64_t frozen_ts;
} bp_derived;

/* The entry of block b, searching from *hint (an index the caller keeps, 0 at first) on;
 * NULL when the batch has none for it. */
const bp_block_derived *bp_derived_find(const bp_derived *d, const bp_block *b, size_t *hint);
/* The summary of the minute starting at w, NULL when the batch has none. */
const bp_minute_summary *bp_derived_minute(const bp_derived *d, uint64_t w);

/* Retention of the derived tables in seconds of chain time (0: forever), the options every
 * output with derived tables has (BP_METRICS_SINK_OPTIONS). */
typedef struct bp_retention {
    uint64_t block; /* chain_metrics_block */
    uint64_t sets;  /* active_addresses, contract_senders (only once their window is final) */
    uint64_t grain[BP_GRAIN_COUNT];
} bp_retention;

#endif
