/* statsline.h - the stats log lines, made from a snapshot (blockpipe/stats.h):
 *   head=... indexed=... lag=... pending=... reorgs=N [left=N eta=T] [mem=...]
 *   [rate_limited=...] [waiting_on=N (error)]
 *   rpc[i] URL state=... head=... ...           (one per endpoint)
 *   realtime mode=... ...                        (run only)
 * Each line without the "stats " prefix the log adds. */
#ifndef BP_CORE_STATSLINE_H
#define BP_CORE_STATSLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/stats.h"
#include "util/buf.h"

/* Appends the lines, '\n'-separated. The rates are the caller's (over the time since its
 * previous line), not the snapshot's own window. left: the blocks not committed yet up to
 * where the pipeline is going now (a backfill's --to, the head less the confirmations),
 * shown with the time they take at blocks_per_s; 0 shows nothing. */
void bp_stats_lines(const bp_stats *s, double blocks_per_s, double txs_per_s, uint64_t left,
                    bp_buf *out);

/* The terminal's progress line (bp_log_status): blocks [start, target] of which those below
 * next are committed, at blocks_per_s:
 *   [#########...........]  45.2%  12,345/27,300 blocks  210.5 blocks/s  eta 3m20s
 * At the target (a run at the head): "head 27,299  lag 0  2.1 blocks/s". have_target false:
 * the head is not known yet. */
void bp_progress_text(bool have_target, uint64_t start, uint64_t next, uint64_t target,
                      uint64_t lag, double blocks_per_s, char *out, size_t cap);

#endif
