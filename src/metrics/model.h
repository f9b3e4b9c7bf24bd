/* model.h - the per-transaction anomaly model behind ml_predictions (model.c explains it). */
#ifndef BP_METRICS_MODEL_H
#define BP_METRICS_MODEL_H

#include <stddef.h>

#include "blockpipe/derived.h"

struct bp_arena;
typedef struct bp_model bp_model;

bp_model *bp_model_new(void);
void bp_model_free(bp_model *m);
/* Scores every transaction of b (then learns from them) into *rows (arena). 0 or BP_ENOMEM. */
int bp_model_score_block(bp_model *m, const char *origin_key, const bp_block *b, struct bp_arena *a,
                         bp_prediction_row **rows, size_t *n);

#endif
