/* statsline.h - the stats log lines, made from a snapshot (blockpipe/stats.h):
 *   head=... indexed=... lag=... pending=... reorgs=N [left=N eta=T] [mem=...]
 *   [rate_limited=...] [waiting_on=N (error)]
 *   rpc[i] URL state=... head=... ...           (one per endpoint)
 *   realtime mode=... ...                        (run only)
 * Each line without the "stats " prefix the log adds. */
#ifndef BP_CORE_STATSLINE_H
#define BP_CORE_STATSLINE_H

#include "blockpipe/stats.h"
#include "util/buf.h"

/* Appends the lines, '\n'-separated. The rates are the caller's (over the time since its
 * previous line), not the snapshot's own window. left: the blocks not committed yet up to
 * where the pipeline is going now (a backfill's --to, the head less the confirmations),
 * shown with the time they take at blocks_per_s; 0 shows nothing. */
void bp_stats_lines(const bp_stats *s, double blocks_per_s, double txs_per_s, uint64_t left,
                    bp_buf *out);

#endif
