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
 * Exactly-once delivery and restart: see filesink.h (DIR/checkpoint.json). */
#include "blockpipe/sink.h"

#include <inttypes.h>

#include "sink/filesink.h"
#include "sink/format.h"

enum { F_BLOCKS, F_TXS, F_LOGS, F_COUNT };

static const char *const g_names[F_COUNT] = {
    [F_BLOCKS] = "blocks.jsonl",
    [F_TXS] = "transactions.jsonl",
    [F_LOGS] = "logs.jsonl",
};

/* ,"key": */
static void key(bp_fmt *f, const char *k)
{
    bp_fmt_str(f, ",\"");
    bp_fmt_str(f, k);
    bp_fmt_str(f, "\":");
}

static void k_str(bp_fmt *f, const char *k, const char *s)
{
    key(f, k);
    bp_fmt_json_str(f, s);
}

static void k_u64(bp_fmt *f, const char *k, uint64_t v)
{
    key(f, k);
    bp_fmt_u64(f, v);
}

static void k_qty(bp_fmt *f, const char *k, const bp_qty *q)
{
    key(f, k);
    bp_fmt_qty(f, q, "null");
}

static void k_opt(bp_fmt *f, const char *k, bp_opt_u64 v)
{
    key(f, k);
    bp_fmt_opt(f, v, "null");
}

/* {"type":"<type>","chain":"<chain>" */
static bp_fmt start(bp_filesink *fs, size_t file, const char *type, const char *chain)
{
    bp_fmt f = {.buf = bp_filesink_buf(fs, file)};
    bp_fmt_str(&f, "{\"type\":\"");
    bp_fmt_str(&f, type);
    bp_fmt_char(&f, '"');
    k_str(&f, "chain", chain);
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

static void block_head(bp_fmt *f, const bp_block *b)
{
    k_u64(f, "number", b->number);
    k_str(f, "hash", b->hash);
    k_str(f, "parent_hash", b->parent_hash);
    k_str(f, "nonce", b->nonce);
    k_str(f, "sha3_uncles", b->sha3_uncles);
    k_str(f, "logs_bloom", b->logs_bloom);
    k_str(f, "transactions_root", b->transactions_root);
    k_str(f, "state_root", b->state_root);
    k_str(f, "receipts_root", b->receipts_root);
    k_str(f, "miner", b->miner);
    k_qty(f, "difficulty", &b->difficulty);
    k_qty(f, "total_difficulty", &b->total_difficulty);
    k_opt(f, "size", b->size);
    k_str(f, "extra_data", b->extra_data);
    k_u64(f, "gas_limit", b->gas_limit);
    k_u64(f, "gas_used", b->gas_used);
    k_u64(f, "timestamp", b->timestamp);
    k_u64(f, "transaction_count", b->transaction_count);
    k_qty(f, "base_fee_per_gas", &b->base_fee_per_gas);
}

static int block_line(bp_filesink *fs, const char *chain, const bp_block *b)
{
    bp_fmt f = start(fs, F_BLOCKS, "block", chain);
    block_head(&f, b);
    k_str(&f, "withdrawals_root", b->withdrawals_root);
    key(&f, "withdrawals");
    bp_fmt_char(&f, '[');
    bp_fmt_withdrawals(&f, b, "\"");
    bp_fmt_char(&f, ']');
    item(&f, "block_", b->hash, NULL, b->timestamp);
    bp_fmt_str(&f, "}\n");
    return f.rc;
}

static void receipt_fields(bp_fmt *f, const bp_tx *t)
{
    k_u64(f, "receipt_cumulative_gas_used", t->receipt_cumulative_gas_used);
    k_u64(f, "receipt_gas_used", t->receipt_gas_used);
    k_str(f, "receipt_contract_address", t->receipt_contract_address);
    k_str(f, "receipt_root", t->receipt_root);
    k_opt(f, "receipt_status", t->receipt_status);
    k_qty(f, "receipt_effective_gas_price", &t->receipt_effective_gas_price);
}

static int tx_line(bp_filesink *fs, const char *chain, const bp_tx *t)
{
    bp_fmt f = start(fs, F_TXS, "transaction", chain);
    k_str(&f, "hash", t->hash);
    k_u64(&f, "nonce", t->nonce);
    k_u64(&f, "transaction_index", t->transaction_index);
    k_str(&f, "from_address", t->from_address);
    k_str(&f, "to_address", t->to_address);
    k_qty(&f, "value", &t->value);
    k_u64(&f, "gas", t->gas);
    k_qty(&f, "gas_price", &t->gas_price);
    k_str(&f, "input", t->input);
    k_u64(&f, "block_timestamp", t->block_timestamp);
    k_u64(&f, "block_number", t->block_number);
    k_str(&f, "block_hash", t->block_hash);
    k_qty(&f, "max_fee_per_gas", &t->max_fee_per_gas);
    k_qty(&f, "max_priority_fee_per_gas", &t->max_priority_fee_per_gas);
    k_opt(&f, "transaction_type", t->transaction_type);
    if (t->has_receipt)
        receipt_fields(&f, t);
    item(&f, "transaction_", t->hash, NULL, t->block_timestamp);
    if (t->has_receipt)
        bp_fmt_str(&f, ",\"receipt_l1_fee\":null,\"receipt_l1_gas_used\":null,"
                       "\"receipt_l1_gas_price\":null,\"receipt_l1_fee_scalar\":null");
    bp_fmt_str(&f, "}\n");
    return f.rc;
}

static int log_line(bp_filesink *fs, const char *chain, const bp_block *b, const bp_log *l)
{
    bp_fmt f = start(fs, F_LOGS, "log", chain);
    k_u64(&f, "log_index", l->log_index);
    k_str(&f, "transaction_hash", l->transaction_hash);
    k_u64(&f, "transaction_index", l->transaction_index);
    k_str(&f, "address", l->address);
    k_str(&f, "data", l->data);
    key(&f, "topics");
    bp_fmt_char(&f, '[');
    for (unsigned k = 0; k < l->topic_count; k++) {
        if (k)
            bp_fmt_char(&f, ',');
        bp_fmt_json_str(&f, l->topics[k]);
    }
    bp_fmt_char(&f, ']');
    k_u64(&f, "block_number", b->number);
    k_u64(&f, "block_timestamp", b->timestamp);
    k_str(&f, "block_hash", b->hash);
    item(&f, "log_", l->transaction_hash ? l->transaction_hash : "", &l->log_index, b->timestamp);
    bp_fmt_str(&f, "}\n");
    return f.rc;
}

static int revert_line(bp_filesink *fs, const char *chain, const bp_block *b)
{
    bp_fmt f = start(fs, F_BLOCKS, "revert", chain);
    k_u64(&f, "number", b->number);
    k_str(&f, "hash", b->hash);
    k_str(&f, "parent_hash", b->parent_hash);
    bp_fmt_str(&f, "}\n");
    return f.rc;
}

static int apply_lines(bp_filesink *fs, const char *chain, const bp_block *b)
{
    int rc = block_line(fs, chain, b);
    for (size_t i = 0; i < b->tx_count && rc == 0; i++)
        rc = tx_line(fs, chain, &b->txs[i]);
    if (!b->has_receipts)
        return rc;
    for (size_t i = 0; i < b->log_count && rc == 0; i++)
        rc = log_line(fs, chain, b, &b->logs[i]);
    return rc;
}

static int jsonl_format(bp_filesink *fs, const bp_batch *batch, bp_error *err)
{
    for (size_t i = 0; i < batch->count; i++) {
        const bp_event *ev = &batch->events[i];
        int rc = ev->kind == BP_EVENT_APPLY ? apply_lines(fs, batch->chain, ev->block)
                                            : revert_line(fs, batch->chain, ev->block);
        if (rc != 0)
            return bp_error_set(err, rc, "%s: block %" PRIu64 ": formatting lines: %s", fs->dir,
                                ev->block->number, bp_strerror(rc));
    }
    return 0;
}

static int jsonl_open(bp_sink **out, const char *target, const bp_sink_opts *opts,
                      bp_error *err)
{
    (void)opts;
    return bp_filesink_open(out, target, g_names, F_COUNT, jsonl_format, err);
}

const bp_sink_ops bp_sink_jsonl_ops = {
    .scheme = "jsonl",
    .title = "JSON lines",
    .usage = "jsonl:DIR",
    .description = "JSON lines in ethereum-etl's stream format (blocks, transactions, logs; "
                   "revert lines) in a directory",
    .open = jsonl_open,
    .checkpoint = bp_filesink_checkpoint,
    .recent = bp_filesink_recent,
    .write = bp_filesink_write,
    .flush = NULL,
    .close = bp_filesink_close,
};
