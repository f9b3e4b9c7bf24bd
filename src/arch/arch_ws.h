/* arch_ws.h - the Arch node's WebSocket topics for the pipeline (issue 14, docs/ARCH.md
 * "WebSocket event stream"): the subscribe protocol the WebSocket client (chain/ws.h) speaks
 * for --chain-type arch, and the events it receives, held until the batch they belong in.
 *
 * Subscribes to the six topics as the SDK does (src/websocket-client/managers/ws-adapter.ts:
 * {"method":"subscribe","params":{"topic","filter":{},"request_id"}}, once per topic, every
 * connection). A `block` event is a head announcement without a height (the SDK's BlockEvent
 * has hash and timestamp only): it wakes the pipeline, whose head poll then asks the height.
 * Every event, block included, is decoded (arch_decode.h) and queued with its receive time.
 *
 * Ordering: an event that names a block height h is held until the pipeline has committed
 * block h (the batch that applies h, or a later one, carries it after its blocks): a block
 * fetched before a rolledback_transactions event arrived but committed after it must not
 * overwrite what the event says. Events without a height go out with the next batch. A block
 * fetched after the event already shows the node's state then. Events go in arrival order: a
 * held one holds back the later ones (a re-apply must not land before its rollback).
 *
 * Threading: the protocol's callbacks run on the WebSocket client's thread; _take and _stats
 * on the coordinator's; one lock between them. */
#ifndef BP_ARCH_WS_H
#define BP_ARCH_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/arch_rows.h"
#include "blockpipe/error.h"
#include "chain/ws.h"

/* Events held beyond this many (a pipeline far below the head with --ws on) go out with the
 * next batch anyway, oldest first, with one warning. */
#define BP_ARCH_WS_HELD_MAX 65536

typedef struct bp_arch_ws bp_arch_ws;

int bp_arch_ws_new(bp_arch_ws **out, bp_error *err);
/* The protocol for bp_ws_config.protocol; valid until bp_arch_ws_free. */
const bp_ws_protocol *bp_arch_ws_protocol(bp_arch_ws *a);
/* The events that may go into a batch now, in arrival order: the longest run from the oldest
 * of events without a height or at or below `committed` (have_committed false: nothing is);
 * an event held for its block holds back every later one, so a re-apply never lands before
 * the rollback it answers. *out is NULL when none, else a bp_arch_rows carrying only events
 * (the caller owns it). */
int bp_arch_ws_take(bp_arch_ws *a, bool have_committed, uint64_t committed, bp_arch_rows **out,
                    bp_error *err);
/* How many times every topic was subscribed (each connection once), plus the malformed
 * events that may have been rollbacks or re-applies (their topic, or none could be read;
 * *lost, when not NULL, is that count): a new value means a subscription, or a lost event,
 * since the last look, after which a resync is due. A malformed event is logged, counted and
 * dropped (it is not in arch_events: it has no data to store); what it would have changed is
 * read back from the node by that resync. */
uint64_t bp_arch_ws_epoch(bp_arch_ws *a, uint64_t *lost);
/* How many events are queued now: the place for a resync's events (bp_arch_ws_resync) read
 * from the node after this moment. Only the coordinator takes events, so that place stays. */
size_t bp_arch_ws_mark(bp_arch_ws *a);
/* After the socket was (re)subscribed, what the node says now of the transactions of the
 * blocks committed before (their rollback_status): events sent meanwhile (while the socket was
 * down, or to a process killed before it committed them) are not replayed by the node. Queued
 * as two resync events (bp_arch_event.resync) at `mark` (bp_arch_ws_mark taken before the
 * node was asked): after everything received before, before what came while it was read (an
 * event received meanwhile is newer than what was read). The listed rolled-back transactions
 * (rolled, nr of them) and the others (kept, nk). Copies the hashes. */
int bp_arch_ws_resync(bp_arch_ws *a, size_t mark, const bp_arch_hash *rolled, size_t nr,
                      const bp_arch_hash *kept, size_t nk, bp_error *err);
/* Events received, malformed, and held now. */
void bp_arch_ws_stats(bp_arch_ws *a, uint64_t *received, uint64_t *malformed, size_t *held);
void bp_arch_ws_free(bp_arch_ws *a);

#endif
