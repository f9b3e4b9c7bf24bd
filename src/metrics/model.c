/* model.c - placeholder: no predictions yet. */
#include "metrics/model.h"

#include <stdlib.h>

struct bp_model {
    int unused;
};

bp_model *bp_model_new(void)
{
    return calloc(1, sizeof(bp_model));
}

void bp_model_free(bp_model *m)
{
    free(m);
}

int bp_model_score_block(bp_model *m, const char *origin_key, const bp_block *b, struct bp_arena *a,
                         bp_prediction_row **rows, size_t *n)
{
    (void)m;
    (void)origin_key;
    (void)b;
    (void)a;
    *rows = NULL;
    *n = 0;
    return 0;
}
