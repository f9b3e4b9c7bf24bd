/* derived.c - the derived tables' column table (include/blockpipe/derived.h) made from
 * BP_DTABLES and BP_DCOLUMNS. */
#include "blockpipe/derived.h"

#include <string.h>

const bp_dtable_info bp_dtables[BP_DT_COUNT] = {
#define BP_X_DT(id, name, shape, grain, timecol)                                                   \
    [BP_DT_##id] = {name, BP_DS_##shape, grain, timecol},
    BP_DTABLES(BP_X_DT)
#undef BP_X_DT
};

const uint64_t bp_grain_seconds[BP_GRAIN_COUNT] = {60, 3600, 86400};
const char *const bp_grain_names[BP_GRAIN_COUNT] = {"1m", "1h", "1d"};

const bp_dcolumn bp_dcolumns[BP_D_COUNT] = {
#define BP_X_DCOL(id, shape, name, type, rep, field, agg, flags)                                   \
    [BP_D_##id] = {name, BP_DS_##shape, BP_COL_##type, BP_AGG_##agg, flags},
    BP_DCOLUMNS(BP_X_DCOL)
#undef BP_X_DCOL
};

size_t bp_dshape_columns(bp_dshape s, size_t *first)
{
    size_t i = 0, n = 0;
    while (i < BP_D_COUNT && bp_dcolumns[i].shape != s)
        i++;
    *first = i;
    while (i + n < BP_D_COUNT && bp_dcolumns[i + n].shape == s)
        n++;
    return n;
}

bp_dtable bp_dtable_find(const char *name)
{
    for (int t = 0; t < BP_DT_COUNT; t++)
        if (strcmp(bp_dtables[t].name, name) == 0)
            return (bp_dtable)t;
    return BP_DT_COUNT;
}

const bp_block_derived *bp_derived_find(const bp_derived *d, const bp_block *b, size_t *hint)
{
    if (!d)
        return NULL;
    for (size_t k = 0; k < d->count; k++) {
        size_t i = (*hint + k) % d->count;
        if (d->blocks[i].block == b) {
            *hint = i + 1;
            return &d->blocks[i];
        }
    }
    return NULL;
}

const bp_minute_summary *bp_derived_minute(const bp_derived *d, uint64_t w)
{
    for (size_t i = 0; d && i < d->minute_count; i++)
        if (d->minutes[i].window_start == w)
            return &d->minutes[i];
    return NULL;
}
