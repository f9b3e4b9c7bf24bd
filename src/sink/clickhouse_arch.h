/* clickhouse_arch.h - the Arch tables of the ClickHouse output (arch/arch_tables.h), schema
 * version 4, the counterpart of sqlite_arch.h and pg_arch.h.
 *
 * arch_blocks, arch_transactions and arch_account_updates are CollapsingMergeTree tables like
 * the EVM ones (clickhouse.c): their rows carry _sign and _seq, an APPLY writes them with +1,
 * a REVERT and the crash recovery take them back by (chain, block height, block hash) through
 * the same code as blocks / transactions / logs. Each row key holds the block hash, so a fork's
 * rows at a height never share a key with the rows they replace: arch_account_updates has a
 * block_hash column the SQL outputs do not need (they delete by height).
 *
 * What the WebSocket events change (arch/arch_rows.h) is never an UPDATE:
 *   - arch_events: ReplacingMergeTree ORDER BY (chain, key); a batch's events are inserted but
 *     for the keys already there (read first: one writer per chain), so each key has one row;
 *     FINAL dedups the rows a lost INSERT reply could add;
 *   - arch_rollbacks (chain, txid, rolled_back, version): one row per txid a rollback, re-apply
 *     or resync names, ReplacingMergeTree(version) ORDER BY (chain, txid); version is the
 *     chain's greatest + 1, in the events' order, so the newest row is a transaction's state;
 *   - arch_transactions keeps rolled_back / rollback_reason as fetched; the view
 *     arch_transactions_current is arch_transactions FINAL with rolled_back from the newest
 *     arch_rollbacks row of its txid (the fetched value when there is none), and
 *     rollback_reason the fetched one while rolled back, else NULL.
 * Neither table has _seq: the rows of a batch that never got its checkpoint stay. They are
 * what the node said before the crash (an event is not sent again), and whatever comes later
 * has a higher version (the state after a restart: the resync reads the node's). */
#ifndef BP_SINK_CLICKHOUSE_ARCH_H
#define BP_SINK_CLICKHOUSE_ARCH_H

#include "blockpipe/error.h"
#include "blockpipe/sink.h"
#include "sink/clickhouse_http.h"
#include "sink/clickhouse_table.h"

/* The tables in bp_ch_arch_table order: the first BP_CHA_ROW_TABLES take APPLY rows (with
 * _sign and _seq), the others the events'. */
enum {
    BP_CHA_BLOCKS,
    BP_CHA_TXS,
    BP_CHA_ACCOUNTS,
    BP_CHA_ROW_TABLES,
    BP_CHA_EVENTS = BP_CHA_ROW_TABLES,
    BP_CHA_ROLLBACKS,
    BP_CHA_TABLES
};

void bp_ch_arch_table(int k, bp_ch_table *out);

/* Version 4: the five tables and the view (every statement IF NOT EXISTS). */
int bp_ch_arch_schema(bp_ch_http *h, bp_error *err);

/* The rows of APPLY block b (an Arch one, b->arch set) into enc[0..BP_CHA_ROW_TABLES) with
 * _sign 1 and _seq seq; an encoding error is left in the encoder's rc (bad hash: BP_EINVAL). */
void bp_ch_arch_encode(bp_ch_enc *const *enc, const char *chain, const bp_block *b, uint64_t seq);

/* The events' writer: encoders for arch_events and arch_rollbacks, the version counter. */
typedef struct bp_ch_arch bp_ch_arch;

/* tables: arch_events and arch_rollbacks as the server has them (bp_ch_load_types). */
int bp_ch_arch_new(bp_ch_arch **out, enum bp_ch_format format, const bp_ch_table *events,
                   const bp_ch_table *rollbacks, bp_error *err);
void bp_ch_arch_free(bp_ch_arch *a);
/* The next chain's version counter is read again (another chain, or after a failure). */
void bp_ch_arch_forget(bp_ch_arch *a);
/* Bytes its buffers hold (the memory budget); trim gives their storage back. */
size_t bp_ch_arch_held(const bp_ch_arch *a);
void bp_ch_arch_trim(bp_ch_arch *a);

/* The BP_EVENT_ARCH_EVENTS entries of batch: their arch_events rows (keys already stored or
 * repeated in the batch skipped) and, in order, one arch_rollbacks row per txid a rollback,
 * re-apply or resync lists. Two INSERTs at most, one SELECT of the keys, one of the version the
 * first time for a chain; idempotent but for the versions (a repeat writes the same states
 * again, newer). */
int bp_ch_arch_events(bp_ch_arch *a, bp_ch_http *h, const bp_batch *batch, bp_error *err);

/* Whether batch has a BP_EVENT_ARCH_EVENTS entry. */
bool bp_ch_arch_has_events(const bp_batch *batch);

#endif
