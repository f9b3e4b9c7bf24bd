/* model.h - the per-transaction anomaly model behind ml_predictions: an isolation forest
 * (Liu, Ting, Zhou 2008) learnt online from the chain's own recent traffic.
 *
 * Every transaction becomes a point of BP_MODEL_FEATURES numbers (model.c lists them: value,
 * gas price against its block's median, the sender's age in the window, nonce, creation,
 * failure, calldata size, the share of its gas limit it used). A block's points are scored by
 * the forest as it was before the block, then join a sliding window of the last
 * BP_MODEL_WINDOW points. A score is 2^(-E[h(x)] / c(psi)): the mean depth at which the
 * forest's trees isolate the point against the depth a typical point needs; near 1 for points
 * that are easy to isolate (far from the traffic the window holds), about 0.5 or less for
 * ordinary ones.
 *
 * The state before a block is a function of the canonical transactions before it (from the
 * first block the output holds), never of where a process started or what it saw and then
 * reverted, so that a restart or a reorg gives every transaction the score an uninterrupted
 * run gives it:
 *   - the window is the last BP_MODEL_WINDOW points before the block, and a sender's age is
 *     counted from its first transaction in that window;
 *   - the forest is rebuilt before block N (one with transactions: empty blocks change
 *     nothing), from the window, with a random stream seeded by N, once the window is warm
 *     (BP_MODEL_WARMUP points): when there is no warm forest yet, when BP_MODEL_REBUILD points
 *     came since the last rebuild, or when a multiple of BP_MODEL_ANCHOR lies in (the last
 *     rebuild's block, N] (the anchor bounds how far back that count must be replayed);
 *   - before warm-up (the first transactions an output holds) every block is scored by a forest
 *     of everything so far, the block's own points included (a lone first transaction: 0.5), so
 *     that no transaction goes unscored.
 * The metrics module rebuilds the state after a restart or a reorg by replaying the blocks
 * before (bp_model_learn_block): the last 2 x BP_MODEL_WINDOW points before the anchor and the
 * blocks since it (metrics.c, history). */
#ifndef BP_METRICS_MODEL_H
#define BP_METRICS_MODEL_H

#include <stddef.h>

#include "blockpipe/derived.h"

#define BP_MODEL_NAME "iforest-v1"
#define BP_MODEL_FEATURES 8
#define BP_MODEL_TREES 64
#define BP_MODEL_SAMPLE 256 /* points per tree (psi) */
#define BP_MODEL_WINDOW 4096
#define BP_MODEL_REBUILD 1024
#define BP_MODEL_WARMUP 256
#define BP_MODEL_ANCHOR 64 /* blocks: the forest is rebuilt before each multiple */

struct bp_arena;
typedef struct bp_model bp_model;

bp_model *bp_model_new(void);
void bp_model_free(bp_model *m);
/* Forgets everything (the state before an output's first block). */
void bp_model_reset(bp_model *m);
/* Scores every transaction of bd's block into *rows (arena, one per transaction), then learns
 * from them. 0 or BP_ENOMEM. */
int bp_model_score_block(bp_model *m, const bp_block_derived *bd, struct bp_arena *a,
                         bp_prediction_row **rows, size_t *n);
/* Learns from block b as bp_model_score_block would, without scoring it: the replay of blocks
 * an output holds. 0 or BP_ENOMEM. */
int bp_model_learn_block(bp_model *m, const bp_block *b);
/* The block's median gas price as the metrics module derives it (chain_metrics_block). */
double bp_model_block_median(const bp_block *b);
/* The features of one transaction against the current window (for tests): median is its
 * block's median gas price. */
void bp_model_features(const bp_model *m, const bp_block *b, const bp_tx *tx, double median,
                       double out[BP_MODEL_FEATURES]);
/* The score of a point under the current forest, -1 before the first. */
double bp_model_score(const bp_model *m, const double x[BP_MODEL_FEATURES]);

#endif
