/* windows.h - the rollup windows a batch touched, per grain, with how much each window's
 * address set grew or shrank (rows added minus rows deleted): the outputs recompute exactly
 * these at the end of the batch. */
#ifndef BP_METRICS_WINDOWS_H
#define BP_METRICS_WINDOWS_H

#include <stdint.h>

#include "blockpipe/derived.h"
#include "metrics/keymap.h"

typedef struct bp_window_delta {
    uint64_t w;    /* window start */
    int64_t delta; /* change of its active_addresses */
} bp_window_delta;

typedef struct bp_windows {
    bp_keymap map[BP_GRAIN_COUNT]; /* window -> index in v */
    bp_window_delta *v[BP_GRAIN_COUNT];
    size_t n[BP_GRAIN_COUNT], cap[BP_GRAIN_COUNT];
} bp_windows;

void bp_windows_clear(bp_windows *t);
void bp_windows_release(bp_windows *t);
/* Window w of grain g is touched; its set changed by delta. 0 or BP_ENOMEM. */
int bp_windows_touch(bp_windows *t, int g, uint64_t w, int64_t delta);
/* Touches the coarser windows of every touched window (an hour of a touched minute...). */
int bp_windows_close(bp_windows *t);

/* One retention delete: rows of table (of grain, -1: any) whose column is below before. */
typedef struct bp_expiry {
    bp_dtable table;
    int grain;
    const char *column;
    uint64_t before;
} bp_expiry;

#define BP_EXPIRY_MAX (2 + 4 * BP_GRAIN_COUNT)
/* What expires after the batch der (retention r, made effective): *n deletes into out. A row
 * goes once it can no longer change (its window ends at or before der->frozen_ts) and is
 * older than its retention; the finer rows of a rollup stay while the coarser window may be
 * recomputed. */
size_t bp_retention_plan(const bp_retention *r, const bp_derived *der, bp_expiry *out);

#endif
