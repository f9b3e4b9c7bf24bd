/* arch_tables.c - the Arch table set: its column table, the rows a batch's events bring to its
 * tables and their values (arch_tables.h), and the SQL made from it. */
#include "arch/arch_tables.h"

#include <string.h>

#include "arch/arch_json.h"
#include "arch/arch_rows.h"
#include "blockpipe/error.h"

/* Each table's columns, in order (their index: the value switches below). */
enum { AB_CHAIN, AB_HEIGHT, AB_HASH, AB_PREV, AB_TIME, AB_BTC, AB_TXS, AB_MERKLE, AB_N };
enum {
    AT_CHAIN,
    AT_HEIGHT,
    AT_INDEX,
    AT_TXID,
    AT_BLOCK_HASH,
    AT_STATUS,
    AT_FAILURE,
    AT_ROLLED_BACK,
    AT_ROLLBACK_REASON,
    AT_PROGRAMS,
    AT_BTC_TXIDS,
    AT_FEE,
    AT_COMPUTE,
    AT_N
};
enum { AA_CHAIN, AA_HEIGHT, AA_INDEX, AA_ACCOUNT, AA_TXID, AA_N };
enum { AE_CHAIN, AE_KEY, AE_TOPIC, AE_HEIGHT, AE_DATA, AE_RECEIVED, AE_N };

#define KEY (BP_COL_KEY | BP_COL_NOTNULL)
#define NN BP_COL_NOTNULL
#define COL(n, ty, flags, d)                                                                       \
    {                                                                                              \
        n, BP_COL_##ty, flags, d                                                                   \
    }

static const bp_set_column g_blocks[AB_N] = {
    [AB_CHAIN] = COL("chain", TEXT, KEY, "the chain's name"),
    [AB_HEIGHT] = COL("height", INT64, KEY, "Block.block_height"),
    [AB_HASH] = COL("hash", HASH, NN, "get_block's parameter (get_block_hash(height))"),
    [AB_PREV] = COL("previous_hash", HASH, NN, "previous_block_hash"),
    [AB_TIME] = COL("timestamp", INT64, NN,
                    "timestamp in unix seconds (ms, us, ns divided down: docs/ARCH.md)"),
    [AB_BTC] = COL("bitcoin_block_height", INT64, 0, "bitcoin_block_height (NULL: null)"),
    [AB_TXS] = COL("transaction_count", INT64, NN, "the transactions listed"),
    [AB_MERKLE] = COL("merkle_root", HASH, 0,
                      "merkle_root (TypeScript SDK only; NULL when the node sends none)"),
};
static const bp_set_column g_txs[AT_N] = {
    [AT_CHAIN] = COL("chain", TEXT, KEY, "the chain's name"),
    [AT_HEIGHT] = COL("block_height", INT64, KEY, "the block that lists it"),
    [AT_INDEX] = COL("tx_index", INT64, KEY, "its place in the block's transactions"),
    [AT_TXID] = COL("txid", HASH, NN, "the txid get_processed_transaction was asked for"),
    [AT_BLOCK_HASH] = COL("block_hash", HASH, NN, "that block's hash"),
    [AT_STATUS] = COL("status", TEXT, NN, "queued, processing, processed or failed"),
    [AT_FAILURE] = COL("failure_reason", TEXT, 0, "the failed status' message"),
    [AT_ROLLED_BACK] =
        COL("rolled_back", BOOL, NN, "rollback_status when fetched, then the rollback events"),
    [AT_ROLLBACK_REASON] = COL("rollback_reason", TEXT, 0, "its message"),
    [AT_PROGRAMS] = COL("program_ids", JSON, NN, "the instructions' programs, distinct"),
    [AT_BTC_TXIDS] = COL("bitcoin_txids", JSON, NN, "bitcoin_txids / bitcoin_txid"),
    [AT_FEE] = COL("fee", INT64, 0, "no documented shape has one: NULL"),
    [AT_COMPUTE] = COL("compute_units", INT64, 0, "no documented shape has one: NULL"),
};
static const bp_set_column g_accounts[AA_N] = {
    [AA_CHAIN] = COL("chain", TEXT, KEY, "the chain's name"),
    [AA_HEIGHT] = COL("block_height", INT64, KEY, "the transaction's block"),
    [AA_INDEX] = COL("tx_index", INT64, KEY, "the transaction's tx_index"),
    [AA_ACCOUNT] = COL("account", HASH, KEY, "a writable account key of the transaction"),
    [AA_TXID] = COL("txid", HASH, NN, "the transaction"),
};
static const bp_set_column g_events[AE_N] = {
    [AE_CHAIN] = COL("chain", TEXT, KEY, "the chain's name"),
    [AE_KEY] = COL("key", TEXT, KEY, "topic + a hash of the data (the dedup key)"),
    [AE_TOPIC] = COL("topic", TEXT, NN, "block, transaction, account_update, ..."),
    [AE_HEIGHT] = COL("block_height", INT64, 0, "when the topic has one"),
    [AE_DATA] = COL("data", JSON, NN, "the event's data object"),
    [AE_RECEIVED] = COL("received_at", FLOAT, NN, "unix seconds"),
};

#define N(a) (sizeof(a) / sizeof((a)[0]))
static const bp_set_table g_tables[BP_ARCH_TABLE_COUNT] = {
    [BP_ARCH_BLOCKS] = {"arch_blocks", g_blocks, N(g_blocks), false},
    [BP_ARCH_TRANSACTIONS] = {"arch_transactions", g_txs, N(g_txs), false},
    [BP_ARCH_ACCOUNT_UPDATES] = {"arch_account_updates", g_accounts, N(g_accounts), false},
    [BP_ARCH_EVENTS] = {"arch_events", g_events, N(g_events), true},
};

static const char *type_name(bp_col_type t)
{
    return t == BP_COL_HASH    ? "hash (64 hex, no 0x)"
           : t == BP_COL_FLOAT ? "real"
                               : bp_col_type_name(t);
}

/* ---- rows: an APPLY's block, transactions and account updates; an event carrier's events -- */

/* The next (i, k) from r's with an account update: a transaction listing an account twice
 * (simnode's sender = receiver) has one. */
static bool next_account(bp_table_row *r, const bp_arch_rows *a)
{
    if (!r->started) {
        r->i = r->k = 0;
        r->started = true;
    } else {
        r->k++;
    }
    for (; r->i < a->tx_count; r->i++, r->k = 0)
        for (; r->k < a->txs[r->i].account_count; r->k++)
            if (bp_arch_account_first(&a->txs[r->i], r->k))
                return true;
    return false;
}

static bool arch_next(bp_table_row *r)
{
    const bp_arch_rows *a = r->ev->block->arch;
    bool apply = r->ev->kind == BP_EVENT_APPLY;
    if (!a || (r->ev->kind != BP_EVENT_ARCH_EVENTS && !apply))
        return false;
    if (r->table == BP_ARCH_ACCOUNT_UPDATES)
        return apply && next_account(r, a);
    size_t n = r->table == BP_ARCH_BLOCKS         ? apply
               : r->table == BP_ARCH_TRANSACTIONS ? (apply ? a->tx_count : 0)
               : r->table == BP_ARCH_EVENTS       ? (apply ? 0 : a->event_count)
                                                  : 0;
    r->i = r->started ? r->i + 1 : 0;
    r->started = true;
    while (r->table == BP_ARCH_EVENTS && r->i < n && a->events[r->i].resync)
        r->i++; /* made by blockpipe, not received: no row */
    return r->i < n;
}

static bp_value u64(uint64_t v)
{
    return bp_val_u64(v);
}

static bp_value block_value(const bp_block *b, const char *chain, size_t c)
{
    const bp_arch_block *r = &b->arch->block;
    switch (c) {
    case AB_CHAIN:
        return bp_val_str(chain);
    case AB_HEIGHT:
        return u64(b->number);
    case AB_HASH:
        return bp_val_str(b->hash);
    case AB_PREV:
        return bp_val_str(b->parent_hash);
    case AB_TIME:
        return u64(r->timestamp);
    case AB_BTC:
        return r->no_bitcoin_height ? bp_val_null() : u64(r->bitcoin_height);
    case AB_TXS:
        return u64(r->tx_count);
    case AB_MERKLE:
        return r->merkle_root[0] ? bp_val_str(r->merkle_root) : bp_val_null();
    default:
        return bp_val_null();
    }
}

static bp_value tx_value(const bp_block *b, const char *chain, size_t i, size_t c)
{
    const bp_arch_tx *t = &b->arch->txs[i];
    switch (c) {
    case AT_CHAIN:
        return bp_val_str(chain);
    case AT_HEIGHT:
        return u64(b->number);
    case AT_INDEX:
        return u64(i);
    case AT_TXID:
        return bp_val_str(t->txid);
    case AT_BLOCK_HASH:
        return bp_val_str(b->hash);
    case AT_STATUS:
        return bp_val_str(bp_arch_status_name(t->status));
    case AT_FAILURE:
        return bp_val_str(t->failure);
    case AT_ROLLED_BACK:
        return u64(t->rolled_back);
    case AT_ROLLBACK_REASON:
        return bp_val_str(t->rollback_reason);
    case AT_PROGRAMS: /* NOT NULL: the decoder always makes the list */
        return bp_val_str(t->program_ids ? t->program_ids : "[]");
    case AT_BTC_TXIDS:
        return bp_val_str(t->bitcoin_txids ? t->bitcoin_txids : "[]");
    case AT_FEE:
        return t->has_fee ? u64(t->fee) : bp_val_null();
    case AT_COMPUTE:
        return t->has_compute ? u64(t->compute_units) : bp_val_null();
    default:
        return bp_val_null();
    }
}

static bp_value account_value(const bp_block *b, const char *chain, size_t i, size_t k, size_t c)
{
    const bp_arch_tx *t = &b->arch->txs[i];
    switch (c) {
    case AA_CHAIN:
        return bp_val_str(chain);
    case AA_HEIGHT:
        return u64(b->number);
    case AA_INDEX:
        return u64(i);
    case AA_ACCOUNT:
        return bp_val_str(t->accounts[k]);
    case AA_TXID:
        return bp_val_str(t->txid);
    default:
        return bp_val_null();
    }
}

static bp_value event_value(const bp_arch_event *e, const char *chain, size_t c)
{
    switch (c) {
    case AE_CHAIN:
        return bp_val_str(chain);
    case AE_KEY:
        return bp_val_str(e->key);
    case AE_TOPIC:
        return bp_val_str(bp_arch_topic_name(e->topic));
    case AE_HEIGHT:
        return e->has_height ? u64(e->block_height) : bp_val_null();
    case AE_DATA:
        return bp_val_str(e->data ? e->data : "{}");
    case AE_RECEIVED:
        return (bp_value){.kind = BP_VAL_F64, .f = e->received_at};
    default:
        return bp_val_null();
    }
}

static bp_value arch_value(const bp_table_row *r, size_t c)
{
    const bp_block *b = r->ev->block;
    switch (r->table) {
    case BP_ARCH_BLOCKS:
        return block_value(b, r->chain, c);
    case BP_ARCH_TRANSACTIONS:
        return tx_value(b, r->chain, r->i, c);
    case BP_ARCH_ACCOUNT_UPDATES:
        return account_value(b, r->chain, r->i, r->k, c);
    case BP_ARCH_EVENTS:
        return event_value(&b->arch->events[r->i], r->chain, c);
    default:
        return bp_val_null();
    }
}

const bp_table_set bp_tables_arch = {
    .family = BP_FAMILY_ARCH,
    .name = "arch",
    .tables = g_tables,
    .table_count = BP_ARCH_TABLE_COUNT,
    .source = "src/arch/arch_tables.c",
    .type_name = type_name,
    .next = arch_next,
    .value = arch_value,
    .row_json = NULL, /* the generic one */
};

/* ---- SQL ------------------------------------------------------------------------------- */

int bp_arch_insert(bp_buf *out, const char *verb, enum bp_arch_table t, bool dollar)
{
    const bp_set_table *tab = &g_tables[t];
    int rc = bp_buf_printf(out, "%s INTO %s(", verb, tab->name);
    for (size_t i = 0; rc == 0 && i < tab->column_count; i++)
        rc = bp_buf_printf(out, "%s%s", i ? ", " : "", tab->columns[i].name);
    if (rc == 0)
        rc = bp_buf_puts(out, ") VALUES(");
    for (size_t i = 0; rc == 0 && i < tab->column_count; i++)
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
