/* sqlite_arch.h - the Arch tables of the SQLite output (arch/arch_tables.h): an Arch block's
 * APPLY inserts its arch_blocks, arch_transactions and arch_account_updates rows, its REVERT
 * deletes them, in the batch's transaction like the EVM rows. */
#ifndef BP_SINK_SQLITE_ARCH_H
#define BP_SINK_SQLITE_ARCH_H

#include <sqlite3.h>
#include <stdbool.h>

#include "blockpipe/error.h"
#include "blockpipe/model.h"
#include "blockpipe/columns.h"
#include "util/buf.h"

typedef struct bp_sqlite_arch bp_sqlite_arch;

/* Appends the CREATE TABLE IF NOT EXISTS statements of the Arch set's tables, typed by
 * type_of (the output's, the same as the EVM tables'), and their index. BP_ENOMEM. */
int bp_sqlite_arch_schema(bp_buf *sql, const char *(*type_of)(bp_col_type t));
/* Appends what makes an arch_blocks made before merkle_root could be NULL (arch-sdk's Block
 * has none) take NULLs: the table again with its rows (SQLite cannot drop a NOT NULL); nothing
 * when there is no arch_blocks or it takes NULLs. For the caller's open transaction. */
int bp_sqlite_arch_upgrade(sqlite3 *db, const char *path, bp_buf *sql,
                           const char *(*type_of)(bp_col_type t), bp_error *err);
/* Prepares the statements on db (after the schema exists); path names the file in messages. */
int bp_sqlite_arch_open(sqlite3 *db, const char *path, bp_sqlite_arch **out, bp_error *err);
void bp_sqlite_arch_close(bp_sqlite_arch *a);
/* *skip: the same block (same hash) is stored already (another process wrote it). */
int bp_sqlite_arch_apply(bp_sqlite_arch *a, const char *chain, const bp_block *b, bool *skip,
                         bp_error *err);
int bp_sqlite_arch_revert(bp_sqlite_arch *a, const char *chain, const bp_block *b, bp_error *err);
/* A BP_EVENT_ARCH_EVENTS entry (b->arch->events): arch_events rows (a key already there is
 * kept) and the rollbacks / re-applies of arch_transactions rows, as arch/arch_rows.h says. */
int bp_sqlite_arch_events(bp_sqlite_arch *a, const char *chain, const bp_block *b, bp_error *err);

#endif
