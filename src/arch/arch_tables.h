/* arch_tables.h - the Arch tables' columns (arch_blocks, arch_transactions,
 * arch_account_updates, arch_events): one table the SQL of every output that stores Arch rows
 * and docs/SCHEMA.md (`blockpipe --help-arch-columns`) are made from. */
#ifndef BP_ARCH_TABLES_H
#define BP_ARCH_TABLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "util/buf.h"

enum bp_arch_table {
    BP_ARCH_BLOCKS,
    BP_ARCH_TRANSACTIONS,
    BP_ARCH_ACCOUNT_UPDATES,
    BP_ARCH_EVENTS,
    BP_ARCH_TABLE_COUNT
};

enum bp_arch_coltype {
    BP_ARCH_INT,  /* unsigned 64-bit */
    BP_ARCH_TEXT, /* text */
    BP_ARCH_HASH, /* 64 lower-case hex digits, no 0x */
    BP_ARCH_JSON, /* JSON text */
    BP_ARCH_BOOL, /* 0 / 1 */
    BP_ARCH_REAL, /* unix seconds with a fraction */
};

typedef struct bp_arch_column {
    enum bp_arch_table table;
    const char *name;
    enum bp_arch_coltype type;
    bool key;     /* part of the primary key (in this order) */
    bool notnull; /* never NULL */
    const char *doc;
} bp_arch_column;

extern const bp_arch_column bp_arch_columns[];
extern const size_t bp_arch_column_count;

const char *bp_arch_table_name(enum bp_arch_table t);
const char *bp_arch_coltype_name(enum bp_arch_coltype t);
/* CREATE TABLE <if_not_exists>name(...) with type_of(column)'s SQL types. BP_ENOMEM. */
int bp_arch_create_table(bp_buf *out, enum bp_arch_table t, const char *if_not_exists,
                         const char *(*type_of)(enum bp_arch_coltype));
/* <verb> INTO name(cols) VALUES(?, ...) (PostgreSQL $n placeholders when dollar); verb:
 * "INSERT", "INSERT OR IGNORE", ... */
int bp_arch_insert(bp_buf *out, const char *verb, enum bp_arch_table t, bool dollar);
/* The index the rollback UPDATE needs: CREATE INDEX <if_not_exists>arch_transactions_txid ON
 * arch_transactions(chain, txid); BP_ENOMEM. */
int bp_arch_txid_index(bp_buf *out, const char *if_not_exists);
/* The table of every column as Markdown (docs/SCHEMA.md). */
void bp_arch_columns_markdown(FILE *f);

#endif
