/* etlcsv.c - the ethereum-etl CSV output (etl-csv:DIR): blocks.csv, transactions.csv,
 * receipts.csv and logs.csv with ethereum-etl's exact columns and value formats, plus
 * reverts.csv.
 *
 * Formats (see the conformance README): quantities are unsigned decimals of any size; a
 * missing value is an empty cell; byte strings are copied as given; topics are joined with
 * "," in one cell; withdrawals are compact JSON objects joined with "," (no []), the cell
 * quoted with "" escapes; cells are quoted only when they need it (Python csv QUOTE_MINIMAL);
 * lines end with "\n". A header row is written with a file's first row: a file with no rows
 * stays empty. receipts.csv and logs.csv are written only for blocks fetched with receipts.
 *
 * reverts.csv: a block that left the canonical chain after its rows were written. Rows of
 * the other files are never rewritten; a reader drops the rows of every reverted block
 * (number + hash) that appears before the revert line:
 *   block_number,block_hash,parent_hash
 *   17173050,0x1dec...,0xa06f...
 * A block number may appear again after its revert line (the new branch).
 *
 * Exactly-once delivery and restart: see filesink.h (DIR/checkpoint.json). */
#include "blockpipe/sink.h"

#include <inttypes.h>
#include <string.h>

#include "sink/filesink.h"
#include "sink/format.h"

enum { F_BLOCKS, F_TXS, F_RECEIPTS, F_LOGS, F_REVERTS, F_COUNT };

static const char *const g_names[F_COUNT] = {
    [F_BLOCKS] = "blocks.csv", [F_TXS] = "transactions.csv", [F_RECEIPTS] = "receipts.csv",
    [F_LOGS] = "logs.csv",     [F_REVERTS] = "reverts.csv",
};

static const char *const g_headers[F_COUNT] = {
    [F_BLOCKS] = ("number,hash,parent_hash,nonce,sha3_uncles,logs_bloom,transactions_root,"
                  "state_root,receipts_root,miner,difficulty,total_difficulty,size,extra_data,"
                  "gas_limit,gas_used,timestamp,transaction_count,base_fee_per_gas,"
                  "withdrawals_root,withdrawals\n"),
    [F_TXS] = ("hash,nonce,block_hash,block_number,transaction_index,from_address,to_address,"
               "value,gas,gas_price,input,block_timestamp,max_fee_per_gas,"
               "max_priority_fee_per_gas,transaction_type\n"),
    [F_RECEIPTS] = ("transaction_hash,transaction_index,block_hash,block_number,"
                    "cumulative_gas_used,gas_used,contract_address,root,status,"
                    "effective_gas_price,l1_fee,l1_gas_used,l1_gas_price,l1_fee_scalar\n"),
    [F_LOGS] = ("log_index,transaction_hash,transaction_index,block_hash,block_number,address,"
                "data,topics\n"),
    [F_REVERTS] = ("block_number,block_hash,parent_hash\n"),
};

/* A writer on file i's buffer, the header first when the file has nothing yet. */
static bp_fmt row(bp_filesink *fs, size_t i)
{
    bp_fmt f = {.buf = bp_filesink_buf(fs, i)};
    if (bp_filesink_is_empty(fs, i))
        bp_fmt_str(&f, g_headers[i]);
    return f;
}

/* ",text" / ",u64" / ",qty" cells. Every text field of the model is 0x-hex checked by the
 * decoder (model.h), so it never needs CSV quoting: the quoting scan was 6% of a backfill. */
static void c_text(bp_fmt *f, const char *s)
{
    bp_fmt_char(f, ',');
    if (s)
        bp_fmt_str(f, s);
}

static void c_u64(bp_fmt *f, uint64_t v)
{
    bp_fmt_char(f, ',');
    bp_fmt_u64(f, v);
}

static void c_qty(bp_fmt *f, const bp_qty *q)
{
    bp_fmt_char(f, ',');
    bp_fmt_qty(f, q, "");
}

static void c_opt(bp_fmt *f, bp_opt_u64 v)
{
    bp_fmt_char(f, ',');
    bp_fmt_opt(f, v, "");
}

static void c_withdrawals(bp_fmt *f, const bp_block *b)
{
    bp_fmt_char(f, ',');
    if (!b->has_withdrawals || b->withdrawal_count == 0)
        return;
    bp_fmt_char(f, '"');
    bp_fmt_withdrawals(f, b, "\"\"");
    bp_fmt_char(f, '"');
}

static int block_row(bp_filesink *fs, const bp_block *b)
{
    bp_fmt f = row(fs, F_BLOCKS);
    bp_fmt_u64(&f, b->number);
    c_text(&f, b->hash);
    c_text(&f, b->parent_hash);
    c_text(&f, b->nonce);
    c_text(&f, b->sha3_uncles);
    c_text(&f, b->logs_bloom);
    c_text(&f, b->transactions_root);
    c_text(&f, b->state_root);
    c_text(&f, b->receipts_root);
    c_text(&f, b->miner);
    c_qty(&f, &b->difficulty);
    c_qty(&f, &b->total_difficulty);
    c_opt(&f, b->size);
    c_text(&f, b->extra_data);
    c_u64(&f, b->gas_limit);
    c_u64(&f, b->gas_used);
    c_u64(&f, b->timestamp);
    c_u64(&f, b->transaction_count);
    c_qty(&f, &b->base_fee_per_gas);
    c_text(&f, b->withdrawals_root);
    c_withdrawals(&f, b);
    bp_fmt_char(&f, '\n');
    return f.rc;
}

/* The hot rows (transactions, receipts, logs) are written straight into the file's buffer:
 * text lengths first, room for the row's worst case once, then the cells with bp_put_*. */

/* A text cell: NULL is an empty cell. */
typedef struct cell {
    const char *s;
    size_t n;
} cell;

static cell text(const char *s)
{
    return s ? (cell){s, strlen(s)} : (cell){"", 0};
}

/* The block hash and a tx hash recur in every row of a block or tx: their lengths are kept
 * with the pointer they were measured for. */
static cell text_memo(cell *memo, const char *s)
{
    if (s != memo->s || !s)
        *memo = text(s);
    return *memo;
}

static char *put_text(char *p, cell c)
{
    *p++ = ',';
    memcpy(p, c.s, c.n);
    return p + c.n;
}

static char *put_u64(char *p, uint64_t v)
{
    *p++ = ',';
    return bp_put_u64(p, v);
}

static char *put_qty(char *p, const bp_qty *q)
{
    *p++ = ',';
    return bp_put_qty(p, q);
}

static char *put_opt(char *p, bp_opt_u64 v)
{
    *p++ = ',';
    return v.set ? bp_put_u64(p, v.v) : p;
}

/* Room for a row of `cells` cells (`qtys` of them quantities) besides its texts' bytes:
 * a comma and the widest u64 per cell, the widest quantity per quantity, the newline. */
#define ROW_ROOM(cells, qtys) ((cells) * (1 + BP_PUT_U64_MAX) + (qtys)*BP_PUT_QTY_MAX + 1)

typedef struct memo {
    cell block_hash, tx_hash;
} memo;

static int tx_row(bp_filesink *fs, const bp_tx *t, memo *m)
{
    bp_fmt f = row(fs, F_TXS);
    cell h = text_memo(&m->tx_hash, t->hash), bh = text_memo(&m->block_hash, t->block_hash);
    cell from = text(t->from_address), to = text(t->to_address), in = text(t->input);
    char *p = bp_fmt_room(&f, 2 * h.n + 2 + bh.n + from.n + to.n + in.n + ROW_ROOM(14, 4));
    if (!p)
        return f.rc;
    p = bp_put_csv(p, h.s, h.n);
    p = put_u64(p, t->nonce);
    p = put_text(p, bh);
    p = put_u64(p, t->block_number);
    p = put_u64(p, t->transaction_index);
    p = put_text(p, from);
    p = put_text(p, to);
    p = put_qty(p, &t->value);
    p = put_u64(p, t->gas);
    p = put_qty(p, &t->gas_price);
    p = put_text(p, in);
    p = put_u64(p, t->block_timestamp);
    p = put_qty(p, &t->max_fee_per_gas);
    p = put_qty(p, &t->max_priority_fee_per_gas);
    p = put_opt(p, t->transaction_type);
    *p++ = '\n';
    bp_fmt_done(&f, p);
    return f.rc;
}

static int receipt_row(bp_filesink *fs, const bp_tx *t, memo *m)
{
    static const char l1_cells[] = ",,,,\n"; /* l1_fee, l1_gas_used, l1_gas_price, l1_fee_scalar */
    bp_fmt f = row(fs, F_RECEIPTS);
    cell h = text_memo(&m->tx_hash, t->hash), bh = text_memo(&m->block_hash, t->block_hash);
    cell ca = text(t->receipt_contract_address), root = text(t->receipt_root);
    char *p =
        bp_fmt_room(&f, 2 * h.n + 2 + bh.n + ca.n + root.n + ROW_ROOM(9, 1) + sizeof(l1_cells));
    if (!p)
        return f.rc;
    p = bp_put_csv(p, h.s, h.n);
    p = put_u64(p, t->transaction_index);
    p = put_text(p, bh);
    p = put_u64(p, t->block_number);
    p = put_u64(p, t->receipt_cumulative_gas_used);
    p = put_u64(p, t->receipt_gas_used);
    p = put_text(p, ca);
    p = put_text(p, root);
    p = put_opt(p, t->receipt_status);
    p = put_qty(p, &t->receipt_effective_gas_price);
    memcpy(p, l1_cells, sizeof(l1_cells) - 1);
    bp_fmt_done(&f, p + sizeof(l1_cells) - 1);
    return f.rc;
}

/* The topics joined with "," in one cell, quoted when that put a comma in it. */
static char *put_topics(char *p, const cell *topics, unsigned n)
{
    *p++ = ',';
    if (n > 1)
        *p++ = '"';
    for (unsigned k = 0; k < n; k++) {
        if (k)
            *p++ = ',';
        memcpy(p, topics[k].s, topics[k].n);
        p += topics[k].n;
    }
    if (n > 1)
        *p++ = '"';
    return p;
}

static int log_row(bp_filesink *fs, const bp_block *b, const bp_log *l, memo *m)
{
    bp_fmt f = row(fs, F_LOGS);
    cell th = text_memo(&m->tx_hash, l->transaction_hash), bh = text_memo(&m->block_hash, b->hash);
    cell addr = text(l->address), data = text(l->data), topics[4];
    unsigned nt = l->topic_count < 4 ? l->topic_count : 4;
    size_t room = th.n + bh.n + addr.n + data.n + ROW_ROOM(8, 0) + 2 + 3; /* quotes, commas */
    for (unsigned k = 0; k < nt; k++) {
        topics[k] = text(l->topics[k]);
        room += topics[k].n;
    }
    char *p = bp_fmt_room(&f, room);
    if (!p)
        return f.rc;
    p = bp_put_u64(p, l->log_index);
    p = put_text(p, th);
    p = put_u64(p, l->transaction_index);
    p = put_text(p, bh);
    p = put_u64(p, b->number);
    p = put_text(p, addr);
    p = put_text(p, data);
    p = put_topics(p, topics, nt);
    *p++ = '\n';
    bp_fmt_done(&f, p);
    return f.rc;
}

static int revert_row(bp_filesink *fs, const bp_block *b)
{
    bp_fmt f = row(fs, F_REVERTS);
    bp_fmt_u64(&f, b->number);
    c_text(&f, b->hash);
    c_text(&f, b->parent_hash);
    bp_fmt_char(&f, '\n');
    return f.rc;
}

/* A block's text is cold when its rows are formatted (a fetch worker wrote it a while ago,
 * on another core): asking for the strings of the row two ahead hides part of the cache
 * misses (bench_csv: -10% CPU). A prefetch of NULL or past the row's text is harmless. */
enum { AHEAD = 2 };

static void prefetch_tx(const bp_block *b, size_t i)
{
    if (i + AHEAD < b->tx_count) {
        const bp_tx *t = &b->txs[i + AHEAD];
        __builtin_prefetch(t->hash);
        __builtin_prefetch(t->from_address);
        __builtin_prefetch(t->to_address);
        __builtin_prefetch(t->input);
    }
}

static void prefetch_log(const bp_block *b, size_t i)
{
    if (i + AHEAD < b->log_count) {
        const bp_log *l = &b->logs[i + AHEAD];
        __builtin_prefetch(l->address);
        __builtin_prefetch(l->data);
        __builtin_prefetch(l->topics[0]);
    }
}

static int apply_rows(bp_filesink *fs, const bp_block *b)
{
    memo m = {{NULL, 0}, {NULL, 0}};
    int rc = block_row(fs, b);
    for (size_t i = 0; i < b->tx_count && rc == 0; i++) {
        prefetch_tx(b, i);
        rc = tx_row(fs, &b->txs[i], &m);
    }
    if (!b->has_receipts)
        return rc;
    for (size_t i = 0; i < b->tx_count && rc == 0; i++)
        if (b->txs[i].has_receipt)
            rc = receipt_row(fs, &b->txs[i], &m);
    for (size_t i = 0; i < b->log_count && rc == 0; i++) {
        prefetch_log(b, i);
        rc = log_row(fs, b, &b->logs[i], &m);
    }
    return rc;
}

static int etlcsv_format(bp_filesink *fs, const bp_batch *batch, bp_error *err)
{
    for (size_t i = 0; i < batch->count; i++) {
        const bp_event *ev = &batch->events[i];
        int rc = ev->kind == BP_EVENT_APPLY ? apply_rows(fs, ev->block) : revert_row(fs, ev->block);
        if (rc != 0)
            return bp_error_set(err, rc, "%s: block %" PRIu64 ": formatting rows: %s", fs->dir,
                                ev->block->number, bp_strerror(rc));
    }
    return 0;
}

static int etlcsv_open(bp_sink **out, const char *target, const bp_sink_opts *opts,
                       bp_error *err)
{
    (void)opts;
    return bp_filesink_open(out, target, g_names, F_COUNT, etlcsv_format, err);
}

const bp_sink_ops bp_sink_etlcsv_ops = {
    .scheme = "etl-csv",
    .title = "ethereum-etl CSV",
    .usage = "etl-csv:DIR",
    .description = "ethereum-etl's blocks, transactions, receipts and logs CSV files (and "
                   "reverts.csv) in a directory",
    .open = etlcsv_open,
    .checkpoint = bp_filesink_checkpoint,
    .recent = bp_filesink_recent,
    .write = bp_filesink_write,
    .flush = NULL,
    .close = bp_filesink_close,
};
