/* jsonl.c - the JSON-lines output (jsonl:DIR): blocks.jsonl, transactions.jsonl, logs.jsonl,
 * one compact object per line in ethereum-etl's stream format (same keys and order, with
 * "chain" after "type", receipt fields merged into transactions with a receipt_ prefix).
 *
 * Quantities are bare JSON numbers of any size (exact decimal text, never a double); a
 * missing value is null; topics and withdrawals are arrays (a block that sent no withdrawals
 * gets [] like ethereum-etl's stream). receipt_* keys are present only for a block fetched
 * with receipts; logs.jsonl is written only then.
 *
 * A block that left the canonical chain is a line in blocks.jsonl, so that it stays in
 * order with the block lines:
 *   {"type":"revert","chain":"mainnet","number":N,"hash":"0x..","parent_hash":"0x.."}
 *
 * An Arch chain (--chain-type arch, docs/ARCH.md "Stream and file outputs") has files of its
 * own, one line per row of the SQL outputs' tables, its columns' names and order after "type"
 * (the Arch table set's rows, arch/arch_tables.h):
 *   arch_blocks.jsonl            {"type":"arch_block","chain":..,"height":N,"hash":..,...}, and
 *                                the revert lines of its blocks (as above; the reverted
 *                                block's transactions and account updates go with it)
 *   arch_transactions.jsonl      {"type":"arch_transaction",...}, and a line per transaction a
 *                                rolledback / reapplied_transactions event lists:
 *                                {"type":"rollback"|"reapply","chain":..,"txid":..,
 *                                 "rolled_back":true|false,"block_height":N|null,"cause":..}
 *   arch_account_updates.jsonl   {"type":"arch_account_update",...}
 *   arch_events.jsonl            {"type":"arch_event","chain":..,"key":..,"topic":..,...}
 * A reader that drops the rows of reverted blocks and sets each transaction's rolled_back by
 * the last rollback / reapply line naming it holds what the SQL tables hold.
 *
 * Exactly-once delivery and restart: see filesink.h (DIR/checkpoint.json). */
#include "blockpipe/sink.h"

#include <inttypes.h>
#include <string.h>

#include "arch/arch_json.h"
#include "arch/arch_tables.h"
#include "blockpipe/columns.h"
#include "blockpipe/tableset.h"
#include "sink/filesink.h"
#include "sink/format.h"

enum {
    F_BLOCKS,
    F_TXS,
    F_LOGS,
    F_ARCH_BLOCKS,
    F_ARCH_TXS,
    F_ARCH_ACCOUNTS,
    F_ARCH_EVENTS,
    F_COUNT
};

static const char *const g_names[F_COUNT] = {
    [F_BLOCKS] = "blocks.jsonl",
    [F_TXS] = "transactions.jsonl",
    [F_LOGS] = "logs.jsonl",
    [F_ARCH_BLOCKS] = "arch_blocks.jsonl",
    [F_ARCH_TXS] = "arch_transactions.jsonl",
    [F_ARCH_ACCOUNTS] = "arch_account_updates.jsonl",
    [F_ARCH_EVENTS] = "arch_events.jsonl",
};

/* A key of a line: a column of the column table (under its name), or one of ethereum-etl's
 * stream fields that are not columns. */
enum {
    K_COL,         /* the column's value */
    K_RECEIPT,     /* the column's value, the key only when the tx has a receipt */
    K_TOPICS,      /* the log's topics as an array */
    K_WITHDRAWALS, /* the block's withdrawals as an array ([] when none were sent) */
    K_SET,         /* the column's value, the key only when it is not null (the L2 columns
                      after ethereum-etl's keys: an Ethereum line stays ethereum-etl's) */
};

typedef struct json_key {
    uint8_t kind;
    uint8_t col;
    const char *key; /* NULL: the column's name */
} json_key;

#define COL(id)                                                                                    \
    {                                                                                              \
        K_COL, BP_C_##id, NULL                                                                     \
    }
#define COL_AS(id, key)                                                                            \
    {                                                                                              \
        K_COL, BP_C_##id, key                                                                      \
    }
#define RCPT(id)                                                                                   \
    {                                                                                              \
        K_RECEIPT, BP_C_##id, NULL                                                                 \
    }
#define SET(id)                                                                                    \
    {                                                                                              \
        K_SET, BP_C_##id, NULL                                                                     \
    }

/* ethereum-etl's stream format, its keys in its order (after "type" and "chain"). */
#define COL_OF(id) COL(id),
static const json_key g_block_keys[] = {
    BP_ETL_BLOCK_FIELDS(COL_OF){K_WITHDRAWALS, BP_C_BLOCK_WITHDRAWALS, NULL},
    SET(BLOCK_EXTRA),
};
#undef COL_OF
static const json_key g_tx_keys[] = {
    COL(TX_HASH),
    COL(TX_NONCE),
    COL(TX_TRANSACTION_INDEX),
    COL(TX_FROM_ADDRESS),
    COL(TX_TO_ADDRESS),
    COL(TX_VALUE),
    COL(TX_GAS),
    COL(TX_GAS_PRICE),
    COL(TX_INPUT),
    COL(TX_BLOCK_TIMESTAMP),
    COL(TX_BLOCK_NUMBER),
    COL(TX_BLOCK_HASH),
    COL(TX_MAX_FEE_PER_GAS),
    COL(TX_MAX_PRIORITY_FEE_PER_GAS),
    COL(TX_TRANSACTION_TYPE),
    RCPT(TX_RECEIPT_CUMULATIVE_GAS_USED),
    RCPT(TX_RECEIPT_GAS_USED),
    RCPT(TX_RECEIPT_CONTRACT_ADDRESS),
    RCPT(TX_RECEIPT_ROOT),
    RCPT(TX_RECEIPT_STATUS),
    RCPT(TX_RECEIPT_EFFECTIVE_GAS_PRICE),
    SET(TX_SOURCE_HASH),
    SET(TX_MINT),
    SET(TX_IS_SYSTEM_TX),
    SET(TX_EXTRA),
};
/* After item_id and item_timestamp, as ethereum-etl's stream writes its L1 fee fields. */
static const json_key g_receipt_l2_keys[] = {
    RCPT(TX_RECEIPT_L1_FEE),
    RCPT(TX_RECEIPT_L1_GAS_USED),
    RCPT(TX_RECEIPT_L1_GAS_PRICE),
    RCPT(TX_RECEIPT_L1_FEE_SCALAR),
    SET(TX_RECEIPT_L1_BLOB_BASE_FEE),
    SET(TX_RECEIPT_L1_BASE_FEE_SCALAR),
    SET(TX_RECEIPT_L1_BLOB_BASE_FEE_SCALAR),
    SET(TX_RECEIPT_DEPOSIT_NONCE),
    SET(TX_RECEIPT_DEPOSIT_RECEIPT_VERSION),
    SET(TX_RECEIPT_GAS_USED_FOR_L1),
    SET(TX_RECEIPT_L1_BLOCK_NUMBER),
    SET(TX_RECEIPT_EXTRA),
};
static const json_key g_log_keys[] = {
    COL(LOG_LOG_INDEX),
    COL(LOG_TRANSACTION_HASH),
    COL(LOG_TRANSACTION_INDEX),
    COL(LOG_ADDRESS),
    COL(LOG_DATA),
    {K_TOPICS, BP_C_LOG_TOPIC0, "topics"},
    COL(LOG_BLOCK_NUMBER),
    COL_AS(BLOCK_TIMESTAMP, "block_timestamp"), /* the log's block's */
    COL(LOG_BLOCK_HASH),
    SET(LOG_EXTRA),
};
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Loops over a layout are unrolled into one function per line kind, so each value folds to a
 * field read (see etlcsv.c). */
#ifdef BP_FUZZ_BUILD /* the coverage instrumentation keeps clang from unrolling these (an          \
                      * error under -Werror: -Wpass-failed); speed does not matter there */
#define UNROLL
#else
#define UNROLL _Pragma("GCC unroll 32")
#endif
#define INLINE static inline __attribute__((always_inline))

/* ,"key": */
static void key(bp_fmt *f, const char *k)
{
    bp_fmt_str(f, ",\"");
    bp_fmt_str(f, k);
    bp_fmt_str(f, "\":");
}

INLINE void value(bp_fmt *f, const bp_value *v, bp_col_type type)
{
    switch (v->kind) {
    case BP_VAL_U64:
        if (type == BP_COL_BOOL) /* a JSON boolean, as the node and the API say */
            bp_fmt_str(f, v->u ? "true" : "false");
        else
            bp_fmt_u64(f, v->u);
        break;
    case BP_VAL_U256:
        bp_fmt_qty(f, v->q, "null");
        break;
    case BP_VAL_STR:
        bp_fmt_json_str(f, v->s);
        break;
    case BP_VAL_HEX:
        bp_fmt_hex_str(f, v->h);
        break;
    case BP_VAL_WITHDRAWALS:
        bp_fmt_char(f, '[');
        bp_fmt_withdrawals(f, v->block, "\"");
        bp_fmt_char(f, ']');
        break;
    default:
        bp_fmt_str(f, "null");
    }
}

static void topics(bp_fmt *f, const bp_log *l)
{
    bp_fmt_char(f, '[');
    for (unsigned k = 0; k < l->topic_count; k++) {
        if (k)
            bp_fmt_char(f, ',');
        bp_fmt_json_str(f, l->topics[k]);
    }
    bp_fmt_char(f, ']');
}

INLINE void keys(bp_fmt *f, const json_key *layout, size_t n, const bp_row *r)
{
    UNROLL
    for (size_t k = 0; k < n; k++) {
        const json_key *jk = &layout[k];
        if (jk->kind == K_RECEIPT && !r->tx->has_receipt)
            continue;
        bp_value v = {.kind = BP_VAL_NULL};
        if (jk->kind == K_SET && (v = bp_value_of((bp_col_id)jk->col, r)).kind == BP_VAL_NULL)
            continue;
        key(f, jk->key ? jk->key : bp_columns[jk->col].name);
        if (jk->kind == K_SET && bp_col_type_of((bp_col_id)jk->col) == BP_COL_JSON) {
            bp_fmt_str(f, v.s); /* JSON text already (the decoder made it) */
        } else if (jk->kind == K_SET) {
            value(f, &v, bp_col_type_of((bp_col_id)jk->col));
        } else if (jk->kind == K_TOPICS) {
            topics(f, r->log);
        } else if (jk->kind == K_WITHDRAWALS) {
            bp_fmt_char(f, '[');
            if (r->block->has_withdrawals)
                bp_fmt_withdrawals(f, r->block, "\"");
            bp_fmt_char(f, ']');
        } else {
            v = bp_value_of((bp_col_id)jk->col, r);
            value(f, &v, bp_col_type_of((bp_col_id)jk->col));
        }
    }
}

/* {"type":"<type>","chain":"<chain>" */
static bp_fmt start(bp_filesink *fs, size_t file, const char *type, const char *chain)
{
    bp_fmt f = {.buf = bp_filesink_buf(fs, file)};
    bp_fmt_str(&f, "{\"type\":\"");
    bp_fmt_str(&f, type);
    bp_fmt_char(&f, '"');
    key(&f, "chain");
    bp_fmt_json_str(&f, chain);
    return f;
}

/* "item_id":"<prefix><id>[_<n>]","item_timestamp":"..." */
static void item(bp_fmt *f, const char *prefix, const char *id, const uint64_t *n,
                 uint64_t timestamp)
{
    key(f, "item_id");
    bp_fmt_char(f, '"');
    bp_fmt_str(f, prefix);
    bp_fmt_str(f, id);
    if (n) {
        bp_fmt_char(f, '_');
        bp_fmt_u64(f, *n);
    }
    bp_fmt_char(f, '"');
    key(f, "item_timestamp");
    bp_fmt_char(f, '"');
    bp_fmt_rfc3339(f, timestamp);
    bp_fmt_char(f, '"');
}

static int block_line(bp_filesink *fs, const bp_row *r)
{
    const bp_block *b = r->block;
    bp_fmt f = start(fs, F_BLOCKS, "block", r->chain);
    keys(&f, g_block_keys, N(g_block_keys), r);
    item(&f, "block_", b->hash, NULL, b->timestamp);
    bp_fmt_str(&f, "}\n");
    return f.rc;
}

static int tx_line(bp_filesink *fs, const bp_row *r)
{
    const bp_tx *t = r->tx;
    bp_fmt f = start(fs, F_TXS, "transaction", r->chain);
    keys(&f, g_tx_keys, N(g_tx_keys), r);
    item(&f, "transaction_", t->hash, NULL, t->block_timestamp);
    keys(&f, g_receipt_l2_keys, N(g_receipt_l2_keys), r);
    bp_fmt_str(&f, "}\n");
    return f.rc;
}

static int log_line(bp_filesink *fs, const bp_row *r)
{
    const bp_log *l = r->log;
    bp_fmt f = start(fs, F_LOGS, "log", r->chain);
    keys(&f, g_log_keys, N(g_log_keys), r);
    item(&f, "log_", l->transaction_hash ? l->transaction_hash : "", &l->log_index,
         r->block->timestamp);
    bp_fmt_str(&f, "}\n");
    return f.rc;
}

/* In the blocks file of the block's family (blocks.jsonl, arch_blocks.jsonl). */
static int revert_line(bp_filesink *fs, size_t file, const char *chain, const bp_block *b)
{
    bp_fmt f = start(fs, file, "revert", chain);
    key(&f, "number");
    bp_fmt_u64(&f, b->number);
    key(&f, "hash");
    bp_fmt_json_str(&f, b->hash);
    key(&f, "parent_hash");
    bp_fmt_json_str(&f, b->parent_hash);
    bp_fmt_str(&f, "}\n");
    return f.rc;
}

static int apply_lines(bp_filesink *fs, const char *chain, const bp_block *b)
{
    bp_row r = {.chain = chain, .block = b};
    int rc = block_line(fs, &r);
    for (size_t i = 0; i < b->tx_count && rc == 0; i++) {
        r.tx = &b->txs[i];
        rc = tx_line(fs, &r);
    }
    r.tx = NULL;
    if (!b->has_receipts)
        return rc;
    for (size_t i = 0; i < b->log_count && rc == 0; i++) {
        r.log = &b->logs[i];
        rc = log_line(fs, &r);
    }
    return rc;
}

/* ---- Arch ------------------------------------------------------------------------------ */

/* An object of arch_json.h (begin: where its '{' is in buf) as a line of type `type`. */
static int arch_line(bp_buf *buf, size_t begin, const char *type, int rc)
{
    if (rc != 0)
        return rc;
    size_t n = buf->len - begin - 1; /* the object without its '{' */
    size_t head = strlen(type) + 11; /* {"type":"T", */
    if (bp_buf_printf(buf, "%*s", (int)head, "") != 0 || bp_buf_puts(buf, "\n") != 0)
        return BP_ENOMEM;
    char *p = buf->data + begin;
    memmove(p + head, p + 1, n);
    memcpy(p, "{\"type\":\"", 9);
    memcpy(p + 9, type, strlen(type));
    memcpy(p + 9 + strlen(type), "\",", 2);
    buf->len = begin + head + n + 1;
    buf->data[buf->len - 1] = '\n';
    buf->data[buf->len] = '\0';
    return 0;
}

#define ARCH_LINE(file, type, call)                                                                \
    do {                                                                                           \
        bp_buf *buf_ = bp_filesink_buf(fs, file);                                                  \
        size_t at_ = buf_->len;                                                                    \
        int rc_ = arch_line(buf_, at_, type, call);                                                \
        if (rc_ != 0)                                                                              \
            return rc_;                                                                            \
    } while (0)

/* The rows event ev brings to each table of the Arch set, a line each in its file. */
static int arch_row_lines(bp_filesink *fs, const char *chain, const bp_event *ev)
{
    /* the line types and files of the Arch tables (arch_tables.h's order) */
    static const char *const types[BP_ARCH_TABLE_COUNT] = {"arch_block", "arch_transaction",
                                                           "arch_account_update", "arch_event"};
    static const size_t files[BP_ARCH_TABLE_COUNT] = {F_ARCH_BLOCKS, F_ARCH_TXS, F_ARCH_ACCOUNTS,
                                                      F_ARCH_EVENTS};
    if (ev->kind == BP_EVENT_APPLY && !ev->block->arch)
        return BP_EINVAL;
    for (size_t t = 0; t < BP_ARCH_TABLE_COUNT; t++) {
        bp_table_row r;
        bp_table_rows(&r, &bp_tables_arch, chain, ev, t);
        while (bp_table_next(&r))
            ARCH_LINE(files[t], types[t], bp_table_row_json(buf_, &r));
    }
    return 0;
}

/* An event carrier's rollback state changes. */
static int arch_state_lines(bp_filesink *fs, const char *chain, const bp_block *b)
{
    for (size_t i = 0; b->arch && i < b->arch->event_count; i++) {
        const bp_arch_event *e = &b->arch->events[i];
        const char *type = e->topic == BP_ARCH_T_ROLLEDBACK ? "rollback" : "reapply";
        for (size_t k = 0; bp_arch_event_is_state(e) && k < e->hash_count; k++)
            ARCH_LINE(F_ARCH_TXS, type, bp_arch_json_state(buf_, chain, e, k));
    }
    return 0;
}

static int lines_of(bp_filesink *fs, const char *chain, const bp_event *ev)
{
    if (ev->block->family == BP_FAMILY_EVM) /* ethereum-etl's format, not the set's columns */
        return ev->kind == BP_EVENT_APPLY ? apply_lines(fs, chain, ev->block)
                                          : revert_line(fs, F_BLOCKS, chain, ev->block);
    if (ev->kind == BP_EVENT_REVERT)
        return revert_line(fs, F_ARCH_BLOCKS, chain, ev->block);
    int rc = arch_row_lines(fs, chain, ev);
    return rc || ev->kind != BP_EVENT_ARCH_EVENTS ? rc : arch_state_lines(fs, chain, ev->block);
}

static int jsonl_format(bp_filesink *fs, const bp_batch *batch, bp_error *err)
{
    for (size_t i = 0; i < batch->count; i++) {
        const bp_event *ev = &batch->events[i];
        int rc = lines_of(fs, batch->chain, ev);
        if (rc != 0)
            return bp_error_set(err, rc, "%s: block %" PRIu64 ": formatting lines: %s", fs->dir,
                                ev->block->number, bp_strerror(rc));
    }
    return 0;
}

static int jsonl_open(bp_sink **out, const char *target, const bp_sink_opts *opts, bp_error *err)
{
    (void)opts;
    int rc = bp_filesink_open(out, target, g_names, F_COUNT, jsonl_format, err);
    if (rc == 0)
        (*out)->families = 1u << BP_FAMILY_ARCH;
    return rc;
}

const bp_sink_ops bp_sink_jsonl_ops = {
    .scheme = "jsonl",
    .title = "JSON lines",
    .usage = "jsonl:DIR",
    .description = "JSON lines in ethereum-etl's stream format (blocks, transactions, logs; "
                   "revert lines; Arch chains: arch_*.jsonl) in a directory",
    .open = jsonl_open,
    .checkpoint = bp_filesink_checkpoint,
    .recent = bp_filesink_recent,
    .write = bp_filesink_write,
    .flush = NULL,
    .close = bp_filesink_close,
    .claim = bp_filesink_claim,
    .unclaim = bp_filesink_unclaim,
};
