/* arch_tables.c - the Arch tables' column table and the SQL made from it. */
#include "arch/arch_tables.h"

#include "blockpipe/error.h"

#define COL(t, n, ty, k, nn, d)                                                                    \
    {                                                                                              \
        BP_ARCH_##t, n, BP_ARCH_##ty, k, nn, d                                                     \
    }

const bp_arch_column bp_arch_columns[] = {
    COL(BLOCKS, "chain", TEXT, true, true, "the chain's name"),
    COL(BLOCKS, "height", INT, true, true, "Block.block_height"),
    COL(BLOCKS, "hash", HASH, false, true, "get_block's parameter (get_block_hash(height))"),
    COL(BLOCKS, "previous_hash", HASH, false, true, "previous_block_hash"),
    COL(BLOCKS, "timestamp", INT, false, true,
        "timestamp in unix seconds (ms, us, ns divided down: docs/ARCH.md)"),
    COL(BLOCKS, "bitcoin_block_height", INT, false, false, "bitcoin_block_height (NULL: null)"),
    COL(BLOCKS, "transaction_count", INT, false, true, "the transactions listed"),
    COL(BLOCKS, "merkle_root", HASH, false, false,
        "merkle_root (TypeScript SDK only; NULL when the node sends none)"),
    COL(TRANSACTIONS, "chain", TEXT, true, true, "the chain's name"),
    COL(TRANSACTIONS, "block_height", INT, true, true, "the block that lists it"),
    COL(TRANSACTIONS, "tx_index", INT, true, true, "its place in the block's transactions"),
    COL(TRANSACTIONS, "txid", HASH, false, true,
        "the txid get_processed_transaction was asked for"),
    COL(TRANSACTIONS, "block_hash", HASH, false, true, "that block's hash"),
    COL(TRANSACTIONS, "status", TEXT, false, true, "queued, processing, processed or failed"),
    COL(TRANSACTIONS, "failure_reason", TEXT, false, false, "the failed status' message"),
    COL(TRANSACTIONS, "rolled_back", BOOL, false, true,
        "rollback_status when fetched, then the rollback events"),
    COL(TRANSACTIONS, "rollback_reason", TEXT, false, false, "its message"),
    COL(TRANSACTIONS, "program_ids", JSON, false, true, "the instructions' programs, distinct"),
    COL(TRANSACTIONS, "bitcoin_txids", JSON, false, true, "bitcoin_txids / bitcoin_txid"),
    COL(TRANSACTIONS, "fee", INT, false, false, "no documented shape has one: NULL"),
    COL(TRANSACTIONS, "compute_units", INT, false, false, "no documented shape has one: NULL"),
    COL(ACCOUNT_UPDATES, "chain", TEXT, true, true, "the chain's name"),
    COL(ACCOUNT_UPDATES, "block_height", INT, true, true, "the transaction's block"),
    COL(ACCOUNT_UPDATES, "tx_index", INT, true, true, "the transaction's tx_index"),
    COL(ACCOUNT_UPDATES, "account", HASH, true, true, "a writable account key of the transaction"),
    COL(ACCOUNT_UPDATES, "txid", HASH, false, true, "the transaction"),
    COL(EVENTS, "chain", TEXT, true, true, "the chain's name"),
    COL(EVENTS, "key", TEXT, true, true, "topic + a hash of the data (the dedup key)"),
    COL(EVENTS, "topic", TEXT, false, true, "block, transaction, account_update, ..."),
    COL(EVENTS, "block_height", INT, false, false, "when the topic has one"),
    COL(EVENTS, "data", JSON, false, true, "the event's data object"),
    COL(EVENTS, "received_at", REAL, false, true, "unix seconds"),
};
const size_t bp_arch_column_count = sizeof(bp_arch_columns) / sizeof(bp_arch_columns[0]);

const char *bp_arch_table_name(enum bp_arch_table t)
{
    static const char *const n[] = {"arch_blocks", "arch_transactions", "arch_account_updates",
                                    "arch_events"};
    return (unsigned)t < BP_ARCH_TABLE_COUNT ? n[t] : "?";
}

const char *bp_arch_coltype_name(enum bp_arch_coltype t)
{
    static const char *const n[] = {"int64", "text", "hash (64 hex, no 0x)",
                                    "json",  "bool", "real"};
    return (unsigned)t < sizeof(n) / sizeof(n[0]) ? n[t] : "?";
}

int bp_arch_create_table(bp_buf *out, enum bp_arch_table t, const char *if_not_exists,
                         const char *(*type_of)(enum bp_arch_coltype))
{
    int rc = bp_buf_printf(out, "CREATE TABLE %s%s(", if_not_exists, bp_arch_table_name(t));
    const char *sep = "";
    for (size_t i = 0; rc == 0 && i < bp_arch_column_count; i++) {
        const bp_arch_column *c = &bp_arch_columns[i];
        if (c->table != t)
            continue;
        rc = bp_buf_printf(out, "%s%s %s%s", sep, c->name, type_of(c->type),
                           c->notnull ? " NOT NULL" : "");
        sep = ", ";
    }
    if (rc == 0)
        rc = bp_buf_puts(out, ", PRIMARY KEY(");
    sep = "";
    for (size_t i = 0; rc == 0 && i < bp_arch_column_count; i++) {
        const bp_arch_column *c = &bp_arch_columns[i];
        if (c->table == t && c->key) {
            rc = bp_buf_printf(out, "%s%s", sep, c->name);
            sep = ", ";
        }
    }
    if (rc == 0)
        rc = bp_buf_puts(out, "));");
    return rc ? BP_ENOMEM : 0;
}

int bp_arch_insert(bp_buf *out, const char *verb, enum bp_arch_table t, bool dollar)
{
    int rc = bp_buf_printf(out, "%s INTO %s(", verb, bp_arch_table_name(t));
    size_t n = 0;
    for (size_t i = 0; rc == 0 && i < bp_arch_column_count; i++)
        if (bp_arch_columns[i].table == t)
            rc = bp_buf_printf(out, "%s%s", n++ ? ", " : "", bp_arch_columns[i].name);
    if (rc == 0)
        rc = bp_buf_puts(out, ") VALUES(");
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = dollar ? bp_buf_printf(out, "%s$%zu", i ? ", " : "", i + 1)
                    : bp_buf_puts(out, i ? ", ?" : "?");
    if (rc == 0)
        rc = bp_buf_puts(out, ")");
    return rc ? BP_ENOMEM : 0;
}

int bp_arch_txid_index(bp_buf *out, const char *if_not_exists)
{
    return bp_buf_printf(out,
                         "CREATE INDEX %sarch_transactions_txid ON arch_transactions(chain, txid);",
                         if_not_exists)
               ? BP_ENOMEM
               : 0;
}

void bp_arch_columns_markdown(FILE *f)
{
    fputs("<!-- Made by `blockpipe --help-arch-columns` from the Arch column table "
          "(src/arch/arch_tables.c); `make docs` rewrites it and a test checks it. -->\n\n"
          "| table | column | type | key | from |\n|---|---|---|---|---|\n",
          f);
    for (size_t i = 0; i < bp_arch_column_count; i++) {
        const bp_arch_column *c = &bp_arch_columns[i];
        fprintf(f, "| %s | `%s` | %s | %s | %s |\n", bp_arch_table_name(c->table), c->name,
                bp_arch_coltype_name(c->type),
                c->key       ? "key"
                : c->notnull ? "not null"
                             : "",
                c->doc);
    }
}
