/* metrics.h - the metrics module: derives the analytics rows (blockpipe/derived.h) from the
 * ordered APPLY/REVERT stream, once per batch, in the writer thread before the outputs write
 * (core/outputs.c attaches the result to the batch as bp_batch.derived). It keeps only what
 * the stream itself implies: the timestamps of the last reorg_window blocks (what can still
 * change, for retention), the anomaly model's sliding window, the prices learnt. Everything a
 * REVERT must undo lives in the outputs' own tables, so a restart loses nothing.
 *
 * Threading: one thread (the writer) calls compute; the price source has its own lock. */
#ifndef BP_METRICS_METRICS_H
#define BP_METRICS_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "blockpipe/derived.h"
#include "blockpipe/error.h"
#include "blockpipe/sink.h"

typedef struct bp_prices bp_prices;

/* Where the anomaly model reads back the transactions an output holds, to rebuild its state
 * after a start, a reorg or a jump of the stream (metrics/history.h): bp_sink_read's contract
 * on an output of the pipeline. read NULL: none (the model then starts from nothing there).
 * The module owns ctx from bp_metrics_new on (close, when not NULL, is called once by
 * bp_metrics_free, or by a bp_metrics_new that fails). */
typedef struct bp_metrics_history {
    int (*read)(void *ctx, const bp_read_query *q, bp_read_row_fn fn, void *fctx, bp_error *err);
    void (*close)(void *ctx);
    void *ctx;
} bp_metrics_history;

typedef struct bp_metrics_config {
    uint64_t reorg_window;      /* the pipeline's: blocks below newest - this never change */
    const char *native_symbol;  /* "ETH" */
    uint64_t price_max_age;     /* seconds */
    bp_prices *prices;          /* not owned; NULL: no prices (USD stays NULL) */
    bool predictions;           /* fill ml_predictions */
    bp_metrics_history history; /* for predictions */
    /* The derived groups no output wants (blockpipe/derived.h BP_DG_BIT): their rows are not
     * computed (contract rows and pairs, token transfers; predictions follow `predictions`).
     * 0: all computed. */
    unsigned skip_groups;
} bp_metrics_config;

typedef struct bp_metrics bp_metrics;

bp_metrics *bp_metrics_new(const bp_metrics_config *cfg, bp_error *err);
void bp_metrics_free(bp_metrics *m);

struct bp_budget;
/* Charges what the module holds (the batch's derived rows, the open windows' sets) to budget
 * (NULL: none; what was charged to the previous one is refunded), and bounds the open windows
 * at max_window_bytes (0: unbounded; metrics/openwin.h says what happens past it). */
void bp_metrics_set_budget(bp_metrics *m, struct bp_budget *budget, size_t max_window_bytes);
/* The batch *out of the last compute was written: its rows' memory is emptied (a chunk kept
 * for the next batch) and the budget follows. */
void bp_metrics_written(bp_metrics *m);
/* Lets go of every byte it can: the batch arena and the open windows (given up, as past their
 * bound). For a pipeline that waits for memory nothing else will give back; the writer must be
 * idle. Returns the bytes refunded. */
size_t bp_metrics_shed(bp_metrics *m);
/* Windows given up for memory so far. */
uint64_t bp_metrics_windows_dropped(const bp_metrics *m);
struct bp_open_peak;
/* What the open windows' address sets hold now (bytes, interned addresses, members per
 * window: the account bp_metrics_log_sets gives of their peak); bench/daysets.c reports it
 * through a day of chain. */
void bp_metrics_sets_now(const bp_metrics *m, struct bp_open_peak *now);
/* The bytes the module holds now, as it charges them to its budget: the batch's rows, the
 * open windows, the derived blocks' array. */
size_t bp_metrics_held(const bp_metrics *m);
/* Logs (info) the most the open windows' address sets held, per member, and the windows given
 * up for memory: what sizes --max-memory for a chain's distinct senders. */
void bp_metrics_log_sets(const bp_metrics *m);

/* Derives the batch's APPLY blocks into *out (owned by m, valid until the next call).
 * outputs_empty: no output it is for holds any block yet (the windows of the first block
 * begin with it). */
int bp_metrics_compute(bp_metrics *m, const bp_batch *batch, bool outputs_empty,
                       const bp_derived **out, bp_error *err);

/* Derives one block into d, its arrays in arena (used by compute and by the tests). */
int bp_metrics_derive_block(const char *origin_key, const bp_block *b, struct bp_arena *arena,
                            bp_block_derived *d);

/* The "contract" of a transaction: the created address for a creation, the to address when
 * the input is not empty, else NULL. */
const char *bp_metrics_contract_of(const bp_tx *tx);

/* ---- a run of APPLY blocks, aggregated per window (what the outputs upsert) ------------ */

/* The grains whose windows keep their sets (active_addresses, contract_senders) and get their
 * contract rows by increments: 1h and 1d. A minute's distinct senders and contract rows are
 * recomputed from its raw transactions instead (a few thousand rows to read, against one set
 * row per transaction to write). */
#define BP_GRAIN_SETS BP_GRAIN_1H

/* A run's contract window increments, per grain from BP_GRAIN_SETS on (the 1m entries stay
 * empty). Its set rows are not gathered here: an output writes the blocks' bp_set_rows in key
 * order, the lowest block of a key first, so that it is the one kept
 * (bp_derived_sorted_set_rows: 8 bytes of pointer per row, not a copy of them or a map of their
 * keys, which for a 50,000-tx block was 20 MiB: 100,000 rows and 48-byte slots). */
typedef struct bp_derived_run {
    bp_contract_row *contracts[BP_GRAIN_COUNT]; /* contract window increments */
    size_t contract_count[BP_GRAIN_COUNT];
    /* private */
    size_t cap[BP_GRAIN_COUNT];
    struct bp_keymap *maps;
} bp_derived_run;

void bp_derived_run_init(bp_derived_run *r);
void bp_derived_run_release(bp_derived_run *r);
/* Aggregates blocks[0..n) into r (emptied first). 0 or BP_ENOMEM. */
int bp_derived_run_build(bp_derived_run *r, const bp_block_derived *const *blocks, size_t n);

/* The grain of a set row (BP_GRAIN_1H or BP_GRAIN_1D). */
int bp_derived_set_grain(const bp_set_row *row);

/* The set rows of blocks[0..n) in the set tables' key order (active_addresses first, then
 * contract_senders; origin_key, grain, window_start, contract_address, address as bytes, which
 * is the order of SQLite's BINARY texts and of PostgreSQL's bytea), rows of one key lowest block
 * first, as pointers into the blocks in *rows (grown to *cap; the caller frees it). An output
 * that upserts them in this order visits each page of a set's index once per run; in block
 * order every row lands on a random page of its window's key range. *count of them; 0 or
 * BP_ENOMEM. */
int bp_derived_sorted_set_rows(const bp_block_derived *const *blocks, size_t n,
                               const bp_set_row ***rows, size_t *cap, size_t *count);
/* The order of bp_derived_sorted_set_rows' keys (first_block aside): 0 for one key. */
int bp_set_row_key_cmp(const bp_set_row *a, const bp_set_row *b);

/* The window of grain g holding timestamp ts. */
static inline uint64_t bp_window_of(uint64_t ts, int g)
{
    return ts - ts % bp_grain_seconds[g];
}

/* u256 as the nearest double (correctly rounded). */
double bp_u256_to_double(const bp_u256 *v);

/* ---- the outputs' options for their derived tables --------------------------------------- */

/* Every output with derived tables lists these among its options (they share the flags). */
#define BP_METRICS_RETENTION_OPTION(nm, fl, ev, dflt, what)                                        \
    {                                                                                              \
        .name = nm, .flag = fl, .env = ev, .key = nm, .type = BP_SINK_OPT_INT, .arg = "S",         \
        .def = dflt, .min = 0, .max = 3153600000LL,                                                \
        .help = "seconds of chain time " what " are kept once they can no longer change (0: "      \
                "forever)"                                                                         \
    }
#define BP_METRICS_SINK_OPTIONS                                                                    \
    {.name = "metrics",                                                                            \
     .flag = "metrics",                                                                            \
     .env = "METRICS",                                                                             \
     .key = "metrics",                                                                             \
     .type = BP_SINK_OPT_BOOL,                                                                     \
     .arg = "on|off",                                                                              \
     .def = "on",                                                                                  \
     .help = "write the derived analytics tables (chain_metrics_*, contract_metrics_*, "           \
             "active_addresses, token_transfers, prices, ml_predictions) with every batch"},       \
        {.name = "derived",                                                                        \
         .flag = "derived",                                                                        \
         .env = "DERIVED",                                                                         \
         .key = "derived",                                                                         \
         .type = BP_SINK_OPT_STRING,                                                               \
         .arg = "LIST",                                                                            \
         .def = "all",                                                                             \
         .help = "the derived tables written with metrics on, a list of chain_metrics, "           \
                 "active_addresses, prices (these three go together), contract_metrics, "          \
                 "token_transfers, ml_predictions; or prices alone; all; none"},                   \
        BP_METRICS_RETENTION_OPTION("retention_block", "retention-block", "RETENTION_BLOCK",       \
                                    "43200", "chain_metrics_block rows"),                          \
        BP_METRICS_RETENTION_OPTION("retention_sets", "retention-sets", "RETENTION_SETS", "43200", \
                                    "active_addresses and contract_senders rows"),                 \
        BP_METRICS_RETENTION_OPTION("retention_1m", "retention-1m", "RETENTION_1M", "604800",      \
                                    "1-minute rollup rows"),                                       \
        BP_METRICS_RETENTION_OPTION("retention_1h", "retention-1h", "RETENTION_1H", "7776000",     \
                                    "1-hour rollup rows"),                                         \
        BP_METRICS_RETENTION_OPTION("retention_1d", "retention-1d", "RETENTION_1D", "0",           \
                                    "1-day rollup rows")

/* The derived groups (blockpipe/derived.h) an output with BP_METRICS_SINK_OPTIONS writes:
 * derived= when metrics is on, none when it is off. BP_EINVAL naming the option when the
 * list is not valid (an unknown group, a group without what it needs). */
int bp_derived_groups_of(const bp_sink_opts *o, unsigned *groups, bp_error *err);

/* The retention options' values (opts of an output that lists BP_METRICS_SINK_OPTIONS). */
void bp_retention_from_opts(const bp_sink_opts *o, bp_retention *r);
/* What is really kept: a rollup is recomputed from the next finer rows, so those live at least
 * as long as a block row could be priced again (retention_block) plus one coarser window:
 * 1m >= block + 1 h, 1h >= block + 1 d; block rows kept forever keep 1m and 1h forever. */
void bp_retention_effective(const bp_retention *in, bp_retention *out);

#endif
