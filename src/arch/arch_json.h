/* arch_json.h - what the Arch family's stream and file rows have besides its tables' rows
 * (those are its table set's, blockpipe/tableset.h bp_table_row_json: compact JSON objects keyed
 * by the arch_* tables' column names, in the column table's order, "chain" first; the data of
 * a stream entry (Redis, Kafka) and, with a "type" in front, a line of the JSONL output).
 *
 * A rollback state change (rolledback_transactions, reapplied_transactions, or a resync made
 * after the socket came back: arch_rows.h) is one object per listed transaction:
 *   {"chain":"..","txid":"..","rolled_back":true,"block_height":N|null,"cause":"..."}
 * cause: the event's topic, or "resync"; block_height: the event's (a resync has none). What
 * the SQL outputs do with it: arch_transactions.rolled_back of that txid (arch_rows.h). */
#ifndef BP_ARCH_JSON_H
#define BP_ARCH_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "arch/arch_rows.h"
#include "blockpipe/model.h"
#include "util/buf.h"

/* False when transaction t lists account k before (simnode's sender = receiver): one update,
 * one arch_account_updates row, as the SQL outputs keep it. */
bool bp_arch_account_first(const bp_arch_tx *t, size_t k);
/* True for the events that change transactions' rollback state (rolledback / reapplied
 * transactions, resyncs included): their hashes[0..hash_count). */
bool bp_arch_event_is_state(const bp_arch_event *e);
/* The rollback state change of e's transaction k (e: bp_arch_event_is_state). */
int bp_arch_json_state(bp_buf *out, const char *chain, const bp_arch_event *e, size_t k);

#endif
