/* arch_tables.h - the Arch tables (arch_blocks, arch_transactions, arch_account_updates,
 * arch_events): the Arch family's table set (blockpipe/tableset.h, bp_tables_arch), whose
 * column table in arch_tables.c is the one the SQL of every output that stores Arch rows, the
 * JSON rows of the file and stream outputs and docs/SCHEMA.md (`blockpipe
 * --help-arch-columns`) are made from.
 *
 * Values as the set gives them: integers, hashes and keys as 64 lower-case hex digits without
 * 0x (type BP_COL_HASH: the SQL types are an EVM hash's), rolled_back as a bool, program_ids,
 * bitcoin_txids and an event's data as JSON text, received_at as a float (unix seconds). */
#ifndef BP_ARCH_TABLES_H
#define BP_ARCH_TABLES_H

#include <stdbool.h>
#include <stddef.h>

#include "blockpipe/tableset.h"
#include "util/buf.h"

/* The tables: their index in bp_tables_arch.tables. */
enum bp_arch_table {
    BP_ARCH_BLOCKS,
    BP_ARCH_TRANSACTIONS,
    BP_ARCH_ACCOUNT_UPDATES,
    BP_ARCH_EVENTS,
    BP_ARCH_TABLE_COUNT
};

static inline const char *bp_arch_table_name(enum bp_arch_table t)
{
    return (unsigned)t < BP_ARCH_TABLE_COUNT ? bp_tables_arch.tables[t].name : "?";
}

/* <verb> INTO name(cols) VALUES(?, ...) (PostgreSQL $n placeholders when dollar); verb:
 * "INSERT", "INSERT OR IGNORE", ... */
int bp_arch_insert(bp_buf *out, const char *verb, enum bp_arch_table t, bool dollar);
/* The index the rollback UPDATE needs: CREATE INDEX <if_not_exists>arch_transactions_txid ON
 * arch_transactions(chain, txid); BP_ENOMEM. */
int bp_arch_txid_index(bp_buf *out, const char *if_not_exists);

#endif
