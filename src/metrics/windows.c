/* windows.c - touched windows and retention plans (windows.h). */
#include "metrics/windows.h"

#include <stdlib.h>
#include <string.h>

#include "blockpipe/error.h"
#include "metrics/metrics.h"

void bp_windows_clear(bp_windows *t)
{
    for (int g = 0; g < BP_GRAIN_COUNT; g++) {
        bp_keymap_clear(&t->map[g]);
        t->n[g] = 0;
    }
}

void bp_windows_release(bp_windows *t)
{
    for (int g = 0; g < BP_GRAIN_COUNT; g++) {
        bp_keymap_release(&t->map[g]);
        free(t->v[g]);
    }
    memset(t, 0, sizeof(*t));
}

int bp_windows_touch(bp_windows *t, int g, uint64_t w, int64_t delta)
{
    bool added;
    size_t *i = bp_keymap_ref(&t->map[g], w, NULL, NULL, t->n[g], &added);
    if (!i)
        return BP_ENOMEM;
    if (added) {
        if (bp_grow((void **)&t->v[g], &t->cap[g], t->n[g] + 1, sizeof(*t->v[g])) != 0)
            return BP_ENOMEM;
        t->v[g][t->n[g]++] = (bp_window_delta){w, 0};
    }
    t->v[g][*i].delta += delta;
    return 0;
}

int bp_windows_close(bp_windows *t)
{
    for (int g = 0; g + 1 < BP_GRAIN_COUNT; g++)
        for (size_t i = 0; i < t->n[g]; i++)
            if (bp_windows_touch(t, g + 1, bp_window_of(t->v[g][i].w, g + 1), 0) != 0)
                return BP_ENOMEM;
    return 0;
}

/* min(newest - keep, frozen) floored to a multiple of unit; 0: nothing expires (kept forever,
 * nothing that old, or the frontier not known yet). */
static uint64_t cut_of(const bp_derived *der, uint64_t keep, uint64_t unit)
{
    if (keep == 0 || der->frozen_ts == 0 || der->newest_ts <= keep)
        return 0;
    uint64_t c = der->newest_ts - keep < der->frozen_ts ? der->newest_ts - keep : der->frozen_ts;
    return c - c % unit;
}

size_t bp_retention_plan(const bp_retention *in, const bp_derived *der, bp_expiry *out)
{
    bp_retention r;
    bp_retention_effective(in, &r);
    size_t n = 0;
    /* block rows are the 1m windows' finer rows: whole minutes go */
    out[n++] = (bp_expiry){BP_DT_CHAIN_BLOCK, -1, "block_timestamp", cut_of(der, r.block, 60)};
    for (int g = 0; g < BP_GRAIN_COUNT; g++) {
        uint64_t len = bp_grain_seconds[g];
        uint64_t parent = g + 1 < BP_GRAIN_COUNT ? bp_grain_seconds[g + 1] : len;
        out[n++] = (bp_expiry){(bp_dtable)(BP_DT_CHAIN_1M + g), -1, "window_start",
                               cut_of(der, r.grain[g], parent)};
        out[n++] = (bp_expiry){(bp_dtable)(BP_DT_CONTRACT_1M + g), -1, "window_start",
                               cut_of(der, r.grain[g], len)};
        if (g < BP_GRAIN_SETS)
            continue;
        out[n++] = (bp_expiry){BP_DT_ACTIVE_ADDRESSES, g, "window_start", cut_of(der, r.sets, len)};
        out[n++] = (bp_expiry){BP_DT_CONTRACT_SENDERS, g, "window_start", cut_of(der, r.sets, len)};
    }
    return n;
}
