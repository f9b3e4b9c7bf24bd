/* sqlite_derived.h - the SQLite output's derived tables (blockpipe/derived.h): schema, the
 * rows of APPLY runs, REVERTs, rollups, prices and retention, all inside the batch's
 * transaction (sqlite.c opens and commits it). */
#ifndef BP_SINK_SQLITE_DERIVED_H
#define BP_SINK_SQLITE_DERIVED_H

#include <sqlite3.h>

#include "blockpipe/derived.h"
#include "blockpipe/error.h"
#include "util/buf.h"

typedef struct bp_sqlite_derived bp_sqlite_derived;

/* The derived tables, their indexes and views (IF NOT EXISTS) appended to sql. */
int bp_sqlite_derived_schema(bp_buf *sql);
/* Registers the SQL functions the derived writes use and prepares the statements. groups: the
 * derived groups the output writes (derived.h BP_DG_BIT; metrics on and derived=); 0 (metrics
 * off): it writes none, but a REVERT still takes the reverted block's rows (written while
 * metrics was on) out of every derived table and the windows they were in are recomputed, so
 * the tables hold exactly the canonical blocks among those applied with metrics on (begin and
 * finish with der NULL, revert). Checks groups against the file's record of the groups its
 * tables were written with (table derived_groups; bp_dgroups_open), and refuses a change. */
int bp_sqlite_derived_open(sqlite3 *db, const char *path, const bp_retention *ret, unsigned groups,
                           bp_sqlite_derived **out, bp_error *err);
/* The groups the tables hold (what is written with metrics on, taken out by a REVERT). */
unsigned bp_sqlite_derived_groups(const bp_sqlite_derived *d);
void bp_sqlite_derived_close(bp_sqlite_derived *d);

/* A batch: begin (prices learnt), the runs and reverts in event order, finish (rollups of the
 * touched windows of chain origin, retention). der NULL (metrics off): no prices, runs nor
 * retention, only the reverts and their windows. */
int bp_sqlite_derived_begin(bp_sqlite_derived *d, const bp_derived *der, bp_error *err);
int bp_sqlite_derived_apply(bp_sqlite_derived *d, const bp_derived *der,
                            const bp_block_derived *const *blocks, size_t n, bp_error *err);
/* Before the raw rows of b are deleted (the revert reads the block's senders from them). */
int bp_sqlite_derived_revert(bp_sqlite_derived *d, const char *origin, const bp_block *b,
                             bp_error *err);
/* hold: the batch is not the last of its group (sqlite.c: the transaction stays open for the
 * next batches of a backfill): the 1h and 1d contract increments of its runs (folded per
 * window and contract, which every run does), its last minute (which the next batch usually
 * continues) and the 1h and 1d rollups and retention are held for the group's end, the
 * finish of a batch without hold, or bp_sqlite_derived_settle. Every touched minute but that
 * one is written as without hold. */
int bp_sqlite_derived_finish(bp_sqlite_derived *d, const char *origin, const bp_derived *der,
                             bool hold, bp_error *err);
/* Writes what the batches held (nothing when none was): before a batch with REVERTs (which
 * read the windows) and at the group's end without another batch (flush, close). */
int bp_sqlite_derived_settle(bp_sqlite_derived *d, const char *origin, bp_error *err);
/* Forgets what is held: the transaction holding the group's batches was rolled back. */
void bp_sqlite_derived_drop(bp_sqlite_derived *d);
/* About how many bytes the held rows take (the output ends a group past its bound). */
size_t bp_sqlite_derived_held_bytes(const bp_sqlite_derived *d);

/* The batch met a block already stored by another process (skipped): the module's minute
 * summaries do not describe this database's minutes then; they are counted from it. */
void bp_sqlite_derived_foreign(bp_sqlite_derived *d);

/* The SQL functions alone (bp_add256, bp_sub256, bp_native, bp_sum256, bp_median256), for
 * readers that want to recompute. */
int bp_sqlite_derived_functions(sqlite3 *db);

#endif
