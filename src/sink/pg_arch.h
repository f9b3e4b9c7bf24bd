/* pg_arch.h - the Arch tables of the PostgreSQL output (arch/arch_tables.h), the counterpart
 * of sqlite_arch.h: an Arch block's APPLY COPYs its arch_blocks, arch_transactions and
 * arch_account_updates rows, its REVERT deletes them by (chain, height), inside the batch's
 * transaction with its checkpoint, like the EVM rows. */
#ifndef BP_SINK_PG_ARCH_H
#define BP_SINK_PG_ARCH_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "blockpipe/error.h"
#include "blockpipe/sink.h"
#include "util/buf.h"

typedef struct bp_pg_arch bp_pg_arch;

/* Schema version 4: the four tables (hashes bytea, JSON jsonb). BP_ENOMEM. */
int bp_pg_arch_schema(bp_buf *sql);

int bp_pg_arch_new(bp_pg_arch **out, bp_error *err);
void bp_pg_arch_free(bp_pg_arch *a);
/* The connection was replaced (or its transaction rolled back): the staging tables are gone. */
void bp_pg_arch_reset(bp_pg_arch *a);

/* The events of batch (every block an Arch one), inside its transaction: a run of APPLYs is
 * one binary COPY per table (staging: through temporary tables and INSERT ... ON CONFLICT DO
 * NOTHING, then a stored block with another hash is an error naming both), a run of REVERTs
 * one round trip of DELETEs. sqlstate (6 bytes) receives a failed statement's SQLSTATE. */
int bp_pg_arch_write(bp_pg_arch *a, PGconn *c, const bp_batch *batch, bool staging, char *sqlstate,
                     bp_error *err);

/* Whether batch has a BP_EVENT_ARCH_EVENTS entry (WebSocket events, arch/arch_rows.h). */
bool bp_pg_arch_has_events(const bp_batch *batch);
/* Only the batch's BP_EVENT_ARCH_EVENTS entries: a batch the checkpoint already covers may
 * still carry events (an entry of events alone carries the tip's checkpoint, which is stored
 * already); writing them again is harmless (arch_events is keyed, the rollback UPDATEs set a
 * value), skipping them would lose them. */
int bp_pg_arch_write_events(bp_pg_arch *a, PGconn *conn, const bp_batch *batch, char *sqlstate,
                            bp_error *err);

/* SQL: the checkpoint hash column `hash` (bytea) of chain `chain_expr` as the chain's blocks
 * spell hashes: bare hex for a chain arch_blocks has rows of, else 0x-hex. */
#define BP_PG_ARCH_CP_HASH(chain_expr)                                                             \
    "CASE WHEN EXISTS (SELECT 1 FROM arch_blocks WHERE chain = " chain_expr ") THEN '' ELSE "      \
    "'0x' END || encode(hash, 'hex')"

#endif
