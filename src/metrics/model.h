/* model.h - the per-transaction anomaly model behind ml_predictions: an isolation forest
 * (Liu, Ting, Zhou 2008) learnt online from the chain's own recent traffic.
 *
 * Every transaction becomes a point of BP_MODEL_FEATURES numbers (model.c lists them: value,
 * gas price against its block's median, the sender's age in the model's memory, nonce,
 * creation, failure, calldata size, the share of its gas limit it used). It is scored by the
 * current forest, then joins a sliding window of the last BP_MODEL_WINDOW points; every
 * BP_MODEL_REBUILD points the forest is rebuilt from a random sample of that window. A score
 * is 2^(-E[h(x)] / c(psi)): the mean depth at which the forest's trees isolate the point
 * against the depth a typical point needs; near 1 for points that are easy to isolate (far
 * from the traffic the window holds), about 0.5 or less for ordinary ones. No score before the
 * first forest (BP_MODEL_WARMUP points). Deterministic: the same stream gives the same scores
 * (a restart starts learning again). */
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

struct bp_arena;
typedef struct bp_model bp_model;

bp_model *bp_model_new(void);
void bp_model_free(bp_model *m);
/* Scores every transaction of bd's block (then learns from them) into *rows (arena); no rows
 * before the first forest. 0 or BP_ENOMEM. */
int bp_model_score_block(bp_model *m, const bp_block_derived *bd, struct bp_arena *a,
                         bp_prediction_row **rows, size_t *n);
/* The features of one transaction (for tests): median is its block's median gas price. */
void bp_model_features(bp_model *m, const bp_block *b, const bp_tx *tx, double median,
                       double out[BP_MODEL_FEATURES]);
/* The score of a point under the current forest, -1 before the first. */
double bp_model_score(const bp_model *m, const double x[BP_MODEL_FEATURES]);

#endif
