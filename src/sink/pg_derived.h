/* pg_derived.h - the PostgreSQL output's derived tables (blockpipe/derived.h): the same
 * tables and rules as SQLite's (sqlite_derived.h), written set-wise inside the batch's
 * transaction: binary COPY of the block rows and of the runs' increments into temporary
 * tables, then a few statements per run, the rollups of the touched windows in one round trip
 * at the end of the batch. */
#ifndef BP_SINK_PG_DERIVED_H
#define BP_SINK_PG_DERIVED_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "blockpipe/derived.h"
#include "blockpipe/error.h"
#include "util/buf.h"

typedef struct bp_pg_derived bp_pg_derived;

/* Schema version 2: the derived tables, the index the rollups read by and the views. */
int bp_pg_derived_schema(bp_buf *sql);
/* The lookup indexes of the derived tables that nothing in blockpipe reads by
 * (token_transfers_token_idx): not in the schema version, made by a writer once its backfill is
 * over (postgres.c: make_lookup_indexes), IF NOT EXISTS (a schema made before has it). */
extern const char bp_pg_derived_lookup_indexes[];
/* Schema version 5: lazy_set_windows, the hour and day windows whose sets are not stored row by
 * row but are their blocks' raw transactions' (pg_derived.c, "lazy sets"). */
int bp_pg_derived_schema_lazy(bp_buf *sql);
/* The schema's record of the derived groups its tables were written with (table
 * derived_groups, made here), checked against groups, the output's selection (derived.h
 * bp_dgroups_open: a change is refused); *has: the groups the tables hold from now on. */
int bp_pg_derived_select(PGconn *c, const char *schema, unsigned groups, unsigned *has,
                         bp_error *err);
/* Stores the sets of every lazy window (of every chain) and empties the list: for an output
 * opened with metrics off, whose blocks have raw rows but no derived rows. has: the groups the
 * tables hold (bp_pg_derived_select; the contract_senders sets only with contract_metrics). */
int bp_pg_derived_unlazy(PGconn *c, unsigned has, bp_error *err);

/* has: the groups the tables hold (bp_pg_derived_select): without contract_metrics no statement
 * writes its tables. */
int bp_pg_derived_new(const bp_retention *ret, unsigned has, bp_pg_derived **out, bp_error *err);
void bp_pg_derived_free(bp_pg_derived *d);
/* The connection was replaced, or the transaction rolled back: its temporary tables are gone,
 * and what a group held with them. */
void bp_pg_derived_reset(bp_pg_derived *d);
/* The SQLSTATE of the last failure ("" when none). */
const char *bp_pg_derived_sqlstate(const bp_pg_derived *d);

/* A batch of chain origin, inside its transaction: begin (serializes writers of the chain,
 * stores the prices learnt), then per run of APPLY events apply (skip_existing: only blocks
 * without derived rows yet, for a run another process may have written), per REVERT revert
 * before the raw rows go, finish (rollups, retention). der NULL (metrics off: the output
 * writes no derived rows): begin, the reverts and finish only, so that a REVERT still takes
 * its block's rows (written while metrics was on) out of every derived table and its windows
 * are recomputed; no prices, no retention. settle: the batch has REVERTs, which read the
 * windows: what a group held is written first (bp_pg_derived_settle). */
int bp_pg_derived_begin(bp_pg_derived *d, PGconn *c, const char *origin, const bp_derived *der,
                        bool settle, bp_error *err);
/* The prices of der, for a batch whose derived rows came after begin (with der NULL) and the
 * raw rows: before its first apply. */
int bp_pg_derived_prices(bp_pg_derived *d, PGconn *c, const bp_derived *der, bp_error *err);
int bp_pg_derived_apply(bp_pg_derived *d, PGconn *c, const bp_derived *der,
                        const bp_block_derived *const *blocks, size_t n, bool skip_existing,
                        bp_error *err);
int bp_pg_derived_revert(bp_pg_derived *d, PGconn *c, const char *origin, const bp_block *b,
                         bp_error *err);
/* Leaves the batch end's statements pending: they go with the checkpoint and COMMIT. hold: the
 * batch is not the last of its group (postgres.c: the transaction stays open for the next
 * batches of a backfill): the 1h and 1d contract increments of its runs (folded per window and
 * contract), its last minute (which the next batch usually continues), the 1h and 1d rollups
 * and retention are held for the group's end (the finish of a batch without hold, or
 * bp_pg_derived_settle); its other minutes are written as without hold, the statements going
 * with the next batch's first round trip. */
int bp_pg_derived_finish(bp_pg_derived *d, PGconn *c, const bp_derived *der, bool hold,
                         bp_error *err);
/* Writes what a group's batches held (nothing when none was): before a batch with REVERTs and
 * at the group's end without another batch (flush, close); pending like finish's. */
int bp_pg_derived_settle(bp_pg_derived *d, PGconn *c, bp_error *err);

/* Between begin and COMMIT, statements that return nothing wait for the batch's next round
 * trip (the chain's lock, the runs' merges, the batch end): the SQL the output's next round
 * trip of the batch must run first (NULL: none; d may be NULL), and that it was sent. */
const char *bp_pg_derived_pending(const bp_pg_derived *d);
void bp_pg_derived_sent(bp_pg_derived *d);
/* The batch's COMMIT succeeded (retention's cut moves on). */
void bp_pg_derived_committed(bp_pg_derived *d);

#endif
