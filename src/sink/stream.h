/* stream.h - what the stream outputs (Redis, Kafka) share: the entities a stream carries, one
 * entry's message, and the checkpoint's list of recent blocks with what a batch does to it.
 *
 * An entry is one row of an applied block (type "apply", its data the row as JSON, see
 * rowjson.h) or one reverted block (type "revert", data null), with the block's chain, number,
 * hash and parent hash. Its message:
 *   {"type":"apply","chain":"..","number":N,"hash":"0x..","parent_hash":"0x..","data":{..}}
 *
 * The metrics entity: one entry per applied block whose data is the block's
 * chain_metrics_block row (blockpipe/derived.h, the same columns as the SQL outputs' table:
 * 256-bit values as decimal strings, floats as JSON numbers, null when unset), from the
 * batch's derived rows (bp_batch.derived); fees_paid_usd is priced when the row is written,
 * from the prices known then (a price learnt later does not send the row again). No rollups:
 * a consumer sums the block rows of a minute (docs/ARCHITECTURE.md). */
#ifndef BP_SINK_STREAM_H
#define BP_SINK_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/derived.h"
#include "blockpipe/sink.h"
#include "util/buf.h"

/* The EVM entities, then the Arch ones (--chain-type arch: the arch_* tables, docs/ARCH.md
 * "Stream and file outputs"). An entity carries the rows of its family's chains only. */
enum {
    BP_STREAM_BLOCKS,
    BP_STREAM_TXS,
    BP_STREAM_LOGS,
    BP_STREAM_METRICS,
    BP_STREAM_ARCH_BLOCKS,
    BP_STREAM_ARCH_TXS,
    BP_STREAM_ARCH_ACCOUNTS,
    BP_STREAM_ARCH_EVENTS,
    BP_STREAM_ENTITY_COUNT
};
#define BP_STREAM_ARCH_MASK                                                                        \
    ((1u << BP_STREAM_ARCH_BLOCKS) | (1u << BP_STREAM_ARCH_TXS) |                                  \
     (1u << BP_STREAM_ARCH_ACCOUNTS) | (1u << BP_STREAM_ARCH_EVENTS))

/* "blocks", "transactions", "logs", "metrics", "arch_blocks", "arch_transactions",
 * "arch_account_updates", "arch_events". */
extern const char *const bp_stream_entity_names[BP_STREAM_ENTITY_COUNT];

/* The option every stream output has (shared key: one flag sets them all). */
#define BP_STREAM_ENTITIES_OPTION                                                                  \
    {                                                                                              \
        .name = "entities", .flag = "stream-entities", .env = "STREAM_ENTITIES",                   \
        .key = "stream_entities", .type = BP_SINK_OPT_STRING, .arg = "LIST", .def = "blocks",      \
        .help =                                                                                    \
            "what the stream outputs (Redis, Kafka) carry: a list of blocks, transactions, logs, " \
            "metrics (chain_metrics_block rows); for --chain-type arch chains arch_blocks, "       \
            "arch_transactions, arch_account_updates, arch_events"                                 \
    }

/* The stream outputs' switch of the metrics entity: the same setting as the SQL outputs'
 * `metrics` (one --metrics flag), so --metrics off turns the derived rows off everywhere. */
#define BP_STREAM_METRICS_OPTION                                                                   \
    {                                                                                              \
        .name = "metrics", .flag = "metrics", .env = "METRICS", .key = "metrics",                  \
        .type = BP_SINK_OPT_BOOL, .arg = "on|off", .def = "on",                                    \
        .help = "allow the metrics entity (the derived chain_metrics_block rows); off with "       \
                "metrics among the entities is an error"                                           \
    }

/* "blocks,transactions,logs,metrics" into bits (1 << BP_STREAM_*). BP_EINVAL naming an unknown
 * entity. */
int bp_stream_entities(const char *list, unsigned *out, bp_error *err);
/* The entities and metrics options of an output (opts lists BP_STREAM_ENTITIES_OPTION and
 * BP_STREAM_METRICS_OPTION) into *out; *derived: the output needs the batches' derived rows. */
int bp_stream_entities_of(const bp_sink_opts *opts, unsigned *out, bool *derived, bp_error *err);
/* The chain families the entities carry into sink->families (BP_FAMILY_ARCH with an arch_*
 * entity), and why not (sink->families_why) without one. */
void bp_stream_families(unsigned entities, bp_sink *sink);
/* BP_EINVAL when the batch has APPLYs but not the derived rows the metrics entity needs
 * (derived: the output's bp_sink.derived, which the CLI clears without receipts). */
int bp_stream_check_derived(unsigned entities, bool derived, const bp_batch *b, bp_error *err);

/* Rows of EVM entity e in block b (a block's logs only when it was fetched with receipts). */
size_t bp_stream_rows(int e, const bp_block *b);
/* Row i of entity e of block b (an event of batch) as JSON into out (reset first); *hint is
 * bp_derived_find's (0 at first). */
int bp_stream_row_json(bp_buf *out, int e, const bp_batch *batch, const bp_block *b, size_t i,
                       size_t *hint);
/* The chain_metrics_block row of d as JSON into out (reset first), fees_paid_usd priced by
 * price_at when unset (price_at NULL: left null). */
int bp_stream_metrics_json(bp_buf *out, const bp_chain_block_row *row, const bp_derived *d);
/* The message of an entry into out (reset first): data is JSON text ("null" for a revert). */
int bp_stream_message(bp_buf *out, const char *type, const char *chain, uint64_t number,
                      const char *hash, const char *parent, const char *data, size_t dlen);

/* ---- entries ------------------------------------------------------------------------------
 * Event i of a batch makes, for entity e, in order (an entity is a table of one family's table
 * set, blockpipe/tableset.h, or metrics; it carries that family's chains only):
 *   APPLY: one "apply" entry per row the event brings to the table (the set's row as JSON:
 *     blocks one, transactions one per transaction, logs one per log when fetched with
 *     receipts; arch_blocks one, arch_transactions one per transaction, arch_account_updates
 *     one per account update: the SQL tables' rows); metrics the block's chain_metrics_block
 *     row (*hint: bp_derived_find's, 0 at first);
 *   REVERT: one "revert" entry (data null) unless the table keeps its rows on a revert
 *     (arch_events);
 *   BP_EVENT_ARCH_EVENTS (Arch): arch_events one "apply" entry per event received (its
 *     arch_events row; a resync has none); arch_transactions and arch_account_updates one entry
 *     per transaction a rolledback / reapplied_transactions event (or a resync) lists:
 *     "revert" when it is rolled back, "apply" when re-applied, data its rollback state change
 *     (arch/arch_json.h: txid, rolled_back, ...): a revert whose data is not null names a
 *     transaction, not a block. Their number / hash: the event entry's carrier (the chain's
 *     newest committed block then, sink.h).
 * fn gets each entry's type and data (in scratch); a non-zero return stops and is returned. */
typedef int (*bp_stream_entry_fn)(void *ctx, const char *type, const char *data, size_t dlen);
int bp_stream_entries(int e, const bp_batch *batch, size_t i, bp_buf *scratch, size_t *hint,
                      bp_stream_entry_fn fn, void *ctx);
/* How many events the batch's BP_EVENT_ARCH_EVENTS entries carry (0 for an EVM batch): the
 * stream outputs count them with the checkpoint, so that a batch of events alone, whose
 * checkpoint is the one stored already, is told from one already written. */
uint64_t bp_stream_arch_event_count(const bp_batch *batch);

/* ---- the recent blocks kept with the checkpoint (for the reorg window after a restart) ---- */

#define BP_STREAM_RECENT_MAX 128

typedef struct bp_stream_recent {
    struct {
        uint64_t number;
        char hash[67];
    } at[BP_STREAM_RECENT_MAX]; /* newest first */
    size_t n;
} bp_stream_recent;

/* "n:hash n:hash ..." (newest first), as stored. */
void bp_stream_recent_parse(bp_stream_recent *r, const char *text, size_t len);
int bp_stream_recent_format(const bp_stream_recent *r, bp_buf *out);
/* Up to max entries as checkpoints (the recent op). */
size_t bp_stream_recent_list(const bp_stream_recent *r, bp_checkpoint *out, size_t max);

/* What a batch leaves: which of its APPLYs survive it (their blocks are canonical at its end),
 * whether it reverted blocks written before it, and the recent list after it. */
typedef struct bp_stream_shape {
    bool *survives; /* per event; owned */
    bool below;
    bp_stream_recent recent;
} bp_stream_shape;

int bp_stream_shape_of(const bp_batch *b, const bp_stream_recent *before, bp_stream_shape *sh,
                       bp_error *err);
void bp_stream_shape_release(bp_stream_shape *sh);

#endif
