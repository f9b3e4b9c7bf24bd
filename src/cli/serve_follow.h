/* serve_follow.h - `blockpipe serve` follows the database another process writes: it polls the
 * chain's newest committed block and makes of it what a pipeline's writer thread gives the API
 * (a stats snapshot for the status endpoints and the status / metrics topics, and the new
 * blocks, or reverted ones, for the push hub), so that push and /api/sync-status work under
 * serve as beside run.
 *
 * The newest block of the chain in the blocks table is the output's checkpoint: a transactional
 * output (SQLite, PostgreSQL) commits the rows and the checkpoint in one transaction, and a
 * revert deletes the block's rows. The readers have no checkpoints table to read. */
#ifndef BP_CLI_SERVE_FOLLOW_H
#define BP_CLI_SERVE_FOLLOW_H

#include <stdint.h>

#include "api/push.h"
#include "blockpipe/sink.h"
#include "blockpipe/stats.h"

typedef struct bp_serve_follow bp_serve_follow;

/* A follower of the output at url (read-only: it opens a reader, never the writer's handle) for
 * chain (NULL: the chain of the newest block at the first poll). Fails naming the database when
 * it cannot be opened (a missing file); one whose blocks cannot be read yet is warned about. */
int bp_serve_follow_new(const char *url, const bp_sink_settings *settings, const char *chain,
                        bp_serve_follow **out, bp_error *err);
/* One poll: reads the newest block, hands push (may be NULL) what changed since the last poll
 * (the blocks before the first poll are not pushed) and publishes the snapshot into stats (may
 * be NULL). A failed read is returned (the caller logs it and polls again). */
int bp_serve_follow_poll(bp_serve_follow *f, bp_stats_hub *stats, bp_push_hub *push, bp_error *err);
/* Accepts NULL. */
void bp_serve_follow_free(bp_serve_follow *f);

#endif
