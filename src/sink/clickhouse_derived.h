/* clickhouse_derived.h - the clickhouse output's derived analytics tables (blockpipe/derived.h),
 * exactly once and reorg-correct with the raw tables' scheme (clickhouse.c).
 *
 * Two kinds of tables:
 *   per-block rows   chain_metrics_block, contract_metrics_block (a block's sums per contract:
 *                    what the contract windows are recomputed from), token_transfers,
 *                    ml_predictions, and the window sets active_addresses / contract_senders
 *                    (a row per (window, [contract,] address) carrying the window's first block
 *                    the address sent in and that block's hash). CollapsingMergeTree with _sign
 *                    and _seq, written with the batch's APPLY rows and taken back by its REVERTs
 *                    and by the recovery exactly like the raw rows (clickhouse.c keeps them in
 *                    its table list: block_col / hash_col say which block a row belongs to).
 *   rollups          chain_metrics_1m/_1h/_1d, contract_metrics_1m/_1h/_1d: maintained by
 *                    blockpipe, recomputed whole for every window a batch touched (a minute
 *                    from the block rows, an hour from its minutes, a day from its hours;
 *                    distinct counts from the sets), ReplacingMergeTree(_ver): the newest
 *                    version of a window is its value (a window left without blocks gets a row
 *                    of 0 blocks / 0 txs). Read through the _v views (FINAL, empty windows
 *                    left out). A median cannot be taken back by a -1 row, hence
 *                    recomputation rather than sign rows flowing through materialized views.
 *
 * Retention, on every server: partition drops (partitions of a day, 30 days or 360 days of
 * chain time, per chain) at the shared plan's cuts in chain time (metrics/windows.h), as SQLite
 * and PostgreSQL delete rows. Servers with TTL (20.10 on; ttl=on, the default) also give each
 * table with a retention a TTL on the same end as the plan's, and at least ttl_slack after the
 * row's insert (bp_ch_derived_ttl), which the server counts by its clock: row by row, between
 * merges; the slack keeps every row of a window still open unless a chain's writing pauses
 * longer (docs/ARCHITECTURE.md, "Chain analytics", ClickHouse, *Retention*). */
#ifndef BP_SINK_CLICKHOUSE_DERIVED_H
#define BP_SINK_CLICKHOUSE_DERIVED_H

#include <stdbool.h>
#include <stdint.h>

#include "blockpipe/derived.h"
#include "blockpipe/error.h"
#include "sink/clickhouse_http.h"
#include "sink/clickhouse_table.h"

/* The per-block tables, in the order clickhouse.c appends them to its own. */
enum {
    BP_CHD_BLOCK,
    BP_CHD_CONTRACT_BLOCK,
    BP_CHD_TRANSFERS,
    BP_CHD_PREDICTIONS,
    BP_CHD_ADDRESSES,
    BP_CHD_SENDERS,
    BP_CHD_ROW_TABLES
};

/* Per-block table k (BP_CHD_*) / rollup k (0..5: chain 1m, 1h, 1d, contract 1m, 1h, 1d) as a
 * server with caps makes it (its TTL: bp_ch_derived_ttl). */
void bp_ch_derived_row_table(int k, const bp_ch_caps *caps, bp_ch_table *out);
#define BP_CHD_ROLLUPS 6
void bp_ch_derived_rollup_table(int k, const bp_ch_caps *caps, bp_ch_table *out);

/* The column of the derived tables (servers with TTL) the server fills with the time of the
 * row's insert: DateTime DEFAULT now(). */
#define BP_CH_WRITTEN "_written"

/* " TTL greatest(<end> + <retention>, _written + <slack>)" of the derived table named table
 * under retention ret (effective: see bp_retention_effective; end: the end of what the plan
 * cuts the row by) into out (appended): a row goes once both are past by the server's clock.
 * Nothing on a server without TTL, for a table without retention (or ret 0: forever) or ret
 * NULL. BP_ENOMEM. */
int bp_ch_derived_ttl(const char *table, const bp_ch_caps *caps, const bp_retention *ret,
                      uint64_t slack, bp_buf *out);
/* Statement i of the derived schema (tables, with their TTL under ret, which may be NULL;
 * prices; views) into out (appended); 1 when there is no statement i, BP_ENOMEM. */
int bp_ch_derived_ddl(size_t i, const bp_ch_caps *caps, const bp_retention *ret, uint64_t slack,
                      bp_buf *out);
/* Runs them all (migration 2). */
int bp_ch_derived_schema(bp_ch_http *h, const bp_ch_caps *caps, const bp_retention *ret,
                         uint64_t slack, bp_error *err);
/* Brings each derived table's TTL to the one retention ret and slack give it
 * (bp_ch_derived_ttl): ALTER TABLE ... ADD COLUMN IF NOT EXISTS _written, then MODIFY TTL when
 * it differs (the server applies it to the rows there too), REMOVE TTL when it should have none;
 * a refused ALTER is an error naming the table. Tables that exist only. */
int bp_ch_derived_sync_ttl(bp_ch_http *h, const bp_ch_caps *caps, const bp_retention *ret,
                           uint64_t slack, const char *where, bp_error *err);
/* A chain whose pause (the server's now() against its checkpoint's updated_at, the last
 * batch's) was long enough that the server may have deleted rows of windows still open at its
 * checkpoint: their end plus retention past by the clock, and their oldest row written more
 * than the slack ago. Recomputed from what is left they come out short, and a short day is
 * kept for ever; but an idle chain's next blocks fall in later windows, which read none of
 * them. So what is decided at open is only which windows are at risk; the chain's batches
 * (clickhouse.c) are checked against them: a batch that reads one (a block applied in it, a
 * revert of a block at or below the checkpoint's: every window of that block is recomputed,
 * or the recovery of an unfinished batch from before the pause) is refused when refuse is set,
 * and the recovery recomputes nothing before `past` unless a batch of this run wrote there. */
#define BP_CH_OPEN_WINDOWS 3 /* the minute, the hour, the day */
typedef struct bp_ch_paused {
    char *chain;
    uint64_t number;                   /* the checkpoint's block */
    uint64_t from[BP_CH_OPEN_WINDOWS]; /* window k at risk: [from, to) in chain time; */
    uint64_t to[BP_CH_OPEN_WINDOWS];   /* from == to: not at risk */
    uint64_t past;                     /* the end of the largest window at risk; 0: none */
    bool refuse;    /* ttl_slack is the tables' (unchanged) and the chain may be this
                       process's: a batch reading a window at risk is refused */
    bool recompute; /* the open's recovery found an unfinished batch: it left the windows to
                       recompute, which a batch of the chain then refuses (refuse set) */
    bool passed;    /* a block past the windows was written (refuse set) */
    bool opened;    /* the open's recovery of the chain ran */
    char msg[448];  /* the refusal's text after the batch's: what to set, the pause, the windows */
} bp_ch_paused;

typedef struct bp_ch_pauses {
    bp_ch_paused *v;
    size_t n;
} bp_ch_pauses;

/* The entry of chain in ps, NULL: none. */
bp_ch_paused *bp_ch_pauses_find(bp_ch_pauses *ps, const char *chain);
void bp_ch_pauses_release(bp_ch_pauses *ps);
/* Whether a block of chain time ts falls in a window of g at risk; its name ("minute") in
 * *name. */
bool bp_ch_paused_at(const bp_ch_paused *g, uint64_t ts, const char **name);

/* Before bp_ch_derived_sync_ttl, on a server with TTL: for each chain of the checkpoints, the
 * windows open at its checkpoint that may lose rows (see bp_ch_paused) under the tables' slack
 * (the pause's) and under slack (this run's), appended to out. refuse: under slack, when slack
 * is the tables' (nobody changed it) and the chain may be ours (this process's chains,
 * bp_sink_opts.chains; NULL: unknown, any may be). The others are warned here: a chain another
 * process writes (its own process decides), a changed ttl_slack (the user's decision), windows
 * that may have lost rows under the previous slack. */
int bp_ch_derived_check_pause(bp_ch_http *h, const bp_ch_caps *caps, const bp_retention *ret,
                              uint64_t slack, const char *ours, const char *where,
                              bp_ch_pauses *out, bp_error *err);

typedef struct bp_ch_derived bp_ch_derived;

/* h is borrowed (the output's connection, its database in use). groups: the derived groups
 * the output writes (derived.h BP_DG_BIT: metrics on and derived=); 0 (metrics off): it writes
 * none, but a REVERT still takes the reverted blocks' rows (those written while metrics was
 * on) out of every derived table and their windows are recomputed, so the tables hold exactly
 * the canonical blocks among those applied with metrics on (prepare with der NULL, then
 * rollups). Checks groups against the database's record of the groups its tables were written
 * with (table derived_groups; bp_dgroups_open) and refuses a change. */
int bp_ch_derived_new(bp_ch_http *h, const char *database, enum bp_ch_format format,
                      const bp_ch_caps *caps, const bp_retention *ret, unsigned groups,
                      bp_ch_derived **out, bp_error *err);
void bp_ch_derived_free(bp_ch_derived *d);

/* A batch (clickhouse.c's order): prepare, before anything is written (stores the prices
 * learnt, reads what the batch reverts, works out the set rows its APPLYs add; der NULL: only
 * what it reverts, the batch writes no derived rows); encode, the
 * per-block rows of each table, a part at a time (with the raw rows); rollups, once the REVERTs are
 * written (the touched windows recomputed); expire, after the checkpoint. */
int bp_ch_derived_prepare(bp_ch_derived *d, const char *chain, const bp_derived *der,
                          const bp_block *const *reverts, size_t nrev,
                          const bp_block *const *applies, size_t napp, bp_error *err);
/* Where the encoding of one per-block table of a batch is (zeroed at its start). */
typedef struct bp_ch_derived_at {
    size_t blk, row; /* the next row: applies[blk]'s row-th of the table (sets: row-th set row) */
    size_t hint;     /* bp_derived_find's */
} bp_ch_derived_at;
/* The next rows of per-block table k (BP_CHD_*) of the batch into e, from *at on, until e holds
 * about part bytes or the table's rows end (then none are added: the table is done). A value
 * that does not fit its column stops e (e->rc; at->blk is the block, for the table's of block
 * rows); BP_EINVAL when a block has no derived rows. */
int bp_ch_derived_encode_part(bp_ch_derived *d, const bp_derived *der,
                              const bp_block *const *applies, size_t napp, uint64_t seq, int k,
                              bp_ch_enc *e, bp_ch_derived_at *at, size_t part, bp_error *err);
/* (Then the blocks written before their price was known, found by prepare, get it: rows of
 * batch seq.) */
int bp_ch_derived_rollups(bp_ch_derived *d, uint64_t seq, bp_error *err);
int bp_ch_derived_expire(bp_ch_derived *d, const bp_derived *der, bp_error *err);

/* Bytes the per-batch state holds (answers, SQL, the rollups' encoders and scratch, the batch's
 * set rows; not the window sets in memory, which keep to CACHE_BYTES), and giving it back
 * between batches (the clickhouse output charges it to the budget past its fixed part). */
size_t bp_ch_derived_held(const bp_ch_derived *d);
void bp_ch_derived_trim(bp_ch_derived *d);

/* After the output's recovery of chain (rows above block `below` taken back or reverted;
 * UINT64_MAX: the chain has no checkpoint): every window from the one of the block at `below`
 * on is recomputed, so that rollups written before a crash match the blocks that stayed.
 * Without writes, nothing when no block row is near `below` (the derived rows end further
 * down: nothing the recovery took back had any). after: no window before this chain time
 * (bp_ch_paused.past: windows whose rows the server may have deleted, which no batch of this
 * run wrote; 0: none). */
int bp_ch_derived_recover(bp_ch_derived *d, const char *chain, uint64_t below, uint64_t after,
                          bp_error *err);

#endif
