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
 * Exactly-once delivery and restart: see filesink.h (DIR/checkpoint.json).
 *
 * etl-csv:DIR/{chain}: one directory per chain, {chain} replaced by the chain's name - the
 * way several chains share the output (a `chains:` run). Each directory is an etl-csv output
 * of its own (its files, its checkpoint.json), opened when its chain first asks for its
 * checkpoint. */
#include "blockpipe/sink.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockpipe/columns.h"
#include "sink/filesink.h"
#include "sink/format.h"

enum { F_BLOCKS, F_TXS, F_RECEIPTS, F_LOGS, F_REVERTS, F_COUNT };

static const char *const g_names[F_COUNT] = {
    [F_BLOCKS] = "blocks.csv", [F_TXS] = "transactions.csv", [F_RECEIPTS] = "receipts.csv",
    [F_LOGS] = "logs.csv",     [F_REVERTS] = "reverts.csv",
};

/* A cell of a file: a column of the column table under its ethereum-etl name (or `name`), the
 * same CSV-quoted when it needs it (the first cell of a row, as before: a row's key stays
 * parseable whatever the node sent), the topics joined in one cell, or a column
 * ethereum-etl has and we never fill (empty). */
enum { K_COL, K_QUOTED, K_TOPICS, K_EMPTY };

typedef struct csv_cell {
    uint8_t kind;
    uint8_t col; /* bp_col_id for K_COL and K_TOPICS (the first topic) */
    const char *name;
} csv_cell;

#define COL(id)                                                                                    \
    {                                                                                              \
        K_COL, BP_C_##id, NULL                                                                     \
    }
#define COL_AS(id, name)                                                                           \
    {                                                                                              \
        K_COL, BP_C_##id, name                                                                     \
    }
#define QUOTED(id, name)                                                                           \
    {                                                                                              \
        K_QUOTED, BP_C_##id, name                                                                  \
    }
#define EMPTY(name)                                                                                \
    {                                                                                              \
        K_EMPTY, 0, name                                                                           \
    }

/* ethereum-etl's files, their columns in its order. */
#define COL_OF(id) COL(id),
static const csv_cell g_blocks[] = {
    BP_ETL_BLOCK_FIELDS(COL_OF) COL(BLOCK_WITHDRAWALS),
};
#undef COL_OF
static const csv_cell g_txs[] = {
    QUOTED(TX_HASH, NULL),
    COL(TX_NONCE),
    COL(TX_BLOCK_HASH),
    COL(TX_BLOCK_NUMBER),
    COL(TX_TRANSACTION_INDEX),
    COL(TX_FROM_ADDRESS),
    COL(TX_TO_ADDRESS),
    COL(TX_VALUE),
    COL(TX_GAS),
    COL(TX_GAS_PRICE),
    COL(TX_INPUT),
    COL(TX_BLOCK_TIMESTAMP),
    COL(TX_MAX_FEE_PER_GAS),
    COL(TX_MAX_PRIORITY_FEE_PER_GAS),
    COL(TX_TRANSACTION_TYPE),
};
static const csv_cell g_receipts[] = {
    QUOTED(TX_HASH, "transaction_hash"),
    COL(TX_TRANSACTION_INDEX),
    COL(TX_BLOCK_HASH),
    COL(TX_BLOCK_NUMBER),
    COL(TX_RECEIPT_CUMULATIVE_GAS_USED),
    COL(TX_RECEIPT_GAS_USED),
    COL(TX_RECEIPT_CONTRACT_ADDRESS),
    COL(TX_RECEIPT_ROOT),
    COL(TX_RECEIPT_STATUS),
    COL(TX_RECEIPT_EFFECTIVE_GAS_PRICE),
    COL(TX_RECEIPT_L1_FEE),
    COL(TX_RECEIPT_L1_GAS_USED),
    COL(TX_RECEIPT_L1_GAS_PRICE),
    COL(TX_RECEIPT_L1_FEE_SCALAR),
};
static const csv_cell g_logs[] = {
    COL(LOG_LOG_INDEX),
    COL(LOG_TRANSACTION_HASH),
    COL(LOG_TRANSACTION_INDEX),
    COL(LOG_BLOCK_HASH),
    COL(LOG_BLOCK_NUMBER),
    COL(LOG_ADDRESS),
    COL(LOG_DATA),
    {K_TOPICS, BP_C_LOG_TOPIC0, "topics"},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))
static const struct {
    const csv_cell *cells;
    size_t n;
} g_layout[F_REVERTS] = {
    [F_BLOCKS] = {g_blocks, N(g_blocks)},
    [F_TXS] = {g_txs, N(g_txs)},
    [F_RECEIPTS] = {g_receipts, N(g_receipts)},
    [F_LOGS] = {g_logs, N(g_logs)},
};

static const char *cell_name(const csv_cell *c)
{
    return c->name ? c->name : bp_columns[c->col].etl_name;
}

/* The header row of file i ("a,b,c\n"), made once from its layout. */
static const char *header(size_t i)
{
    static char text[F_COUNT][512];
    if (i == F_REVERTS)
        return "block_number,block_hash,parent_hash\n";
    if (!text[i][0]) {
        size_t len = 0;
        for (size_t k = 0; k < g_layout[i].n; k++)
            len += (size_t)snprintf(text[i] + len, sizeof(text[i]) - len, "%s%s", k ? "," : "",
                                    cell_name(&g_layout[i].cells[k]));
        snprintf(text[i] + len, sizeof(text[i]) - len, "\n");
    }
    return text[i];
}

/* A writer on file i's buffer, the header first when the file has nothing yet. */
static bp_fmt row(bp_filesink *fs, size_t i)
{
    bp_fmt f = {.buf = bp_filesink_buf(fs, i)};
    if (bp_filesink_is_empty(fs, i))
        bp_fmt_str(&f, header(i));
    return f;
}

/* The rows are written straight into the file's buffer: the values and text lengths first,
 * room for the row's worst case once, then the cells. Every text field of the model is 0x-hex
 * checked by the decoder (model.h), so it never needs CSV quoting: the quoting scan was 6% of
 * a backfill. */
#define MAX_CELLS 24

typedef struct cells {
    bp_value v[MAX_CELLS];
    size_t len[MAX_CELLS]; /* of text values */
} cells;

/* The loops over a layout are unrolled and csv_row is inlined into one function per file, so
 * that each cell's bp_value_of() folds to a plain field read (the generic loop took twice the
 * instructions of the hand-written rows it replaced: bench_csv). */
#define UNROLL _Pragma("GCC unroll 32")
#define INLINE static inline __attribute__((always_inline))

INLINE size_t measure(const csv_cell *layout, size_t n, const bp_row *r, cells *c)
{
    size_t room = n + 1; /* commas and the newline */
    UNROLL
    for (size_t k = 0; k < n; k++) {
        const csv_cell *cc = &layout[k];
        c->len[k] = 0;
        if (cc->kind == K_EMPTY) {
            c->v[k].kind = BP_VAL_NULL;
            continue;
        }
        if (cc->kind == K_TOPICS) {
            unsigned nt = r->log->topic_count < 4 ? r->log->topic_count : 4;
            for (unsigned t = 0; t < nt; t++)
                room += strlen(r->log->topics[t]) + 1;
            room += 2; /* quotes */
            continue;
        }
        c->v[k] = bp_value_of((bp_col_id)cc->col, r);
        switch (c->v[k].kind) {
        case BP_VAL_STR:
            c->len[k] = strlen(c->v[k].s);
            room += cc->kind == K_QUOTED ? 2 * c->len[k] + 2 : c->len[k];
            break;
        case BP_VAL_HEX: /* hex digits need no quotes */
            c->len[k] = bp_hexb_text_len(c->v[k].h);
            room += c->len[k] + 1; /* bp_hexb_text's NUL, written over by the next cell */
            break;
        case BP_VAL_U64:
            room += BP_PUT_U64_MAX;
            break;
        case BP_VAL_U256:
            room += BP_PUT_QTY_MAX;
            break;
        case BP_VAL_WITHDRAWALS:
            room += bp_withdrawals_room(c->v[k].block, 2) + 2;
            break;
        default:
            break;
        }
    }
    return room;
}

/* The topics joined with "," in one cell, quoted when that put a comma in it. */
static char *put_topics(char *p, const bp_log *l)
{
    unsigned n = l->topic_count < 4 ? l->topic_count : 4;
    if (n > 1)
        *p++ = '"';
    for (unsigned k = 0; k < n; k++) {
        size_t len = strlen(l->topics[k]);
        if (k)
            *p++ = ',';
        memcpy(p, l->topics[k], len);
        p += len;
    }
    if (n > 1)
        *p++ = '"';
    return p;
}

INLINE char *put_cell(char *p, const bp_value *v, size_t len)
{
    switch (v->kind) {
    case BP_VAL_STR:
        memcpy(p, v->s, len);
        return p + len;
    case BP_VAL_HEX:
        return p + bp_hexb_text(p, v->h);
    case BP_VAL_U64:
        return bp_put_u64(p, v->u);
    case BP_VAL_U256:
        return bp_put_qty(p, v->q);
    case BP_VAL_WITHDRAWALS:
        if (v->block->withdrawal_count == 0)
            return p; /* ethereum-etl writes no [] */
        *p++ = '"';
        p = bp_put_withdrawals(p, v->block, "\"\"");
        *p++ = '"';
        return p;
    default:
        return p;
    }
}

INLINE int csv_row(bp_filesink *fs, size_t file, const csv_cell *layout, size_t n, const bp_row *r)
{
    cells c;
    bp_fmt f = row(fs, file);
    char *p = bp_fmt_room(&f, measure(layout, n, r, &c));
    if (!p)
        return f.rc;
    UNROLL
    for (size_t k = 0; k < n; k++) {
        if (k)
            *p++ = ',';
        if (layout[k].kind == K_TOPICS)
            p = put_topics(p, r->log);
        else if (layout[k].kind == K_QUOTED && c.v[k].kind == BP_VAL_STR)
            p = bp_put_csv(p, c.v[k].s, c.len[k]);
        else
            p = put_cell(p, &c.v[k], c.len[k]);
    }
    *p++ = '\n';
    bp_fmt_done(&f, p);
    return f.rc;
}

static int block_row(bp_filesink *fs, const bp_row *r)
{
    return csv_row(fs, F_BLOCKS, g_blocks, N(g_blocks), r);
}

static int tx_row(bp_filesink *fs, const bp_row *r)
{
    return csv_row(fs, F_TXS, g_txs, N(g_txs), r);
}

static int receipt_row(bp_filesink *fs, const bp_row *r)
{
    return csv_row(fs, F_RECEIPTS, g_receipts, N(g_receipts), r);
}

static int log_row(bp_filesink *fs, const bp_row *r)
{
    return csv_row(fs, F_LOGS, g_logs, N(g_logs), r);
}

static int revert_row(bp_filesink *fs, const bp_block *b)
{
    bp_fmt f = row(fs, F_REVERTS);
    bp_fmt_u64(&f, b->number);
    bp_fmt_char(&f, ',');
    bp_fmt_str(&f, b->hash);
    bp_fmt_char(&f, ',');
    bp_fmt_str(&f, b->parent_hash);
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
    bp_row r = {.block = b};
    int rc = block_row(fs, &r);
    for (size_t i = 0; i < b->tx_count && rc == 0; i++) {
        prefetch_tx(b, i);
        r.tx = &b->txs[i];
        rc = tx_row(fs, &r);
    }
    if (!b->has_receipts)
        return rc;
    for (size_t i = 0; i < b->tx_count && rc == 0; i++) {
        r.tx = &b->txs[i];
        if (r.tx->has_receipt)
            rc = receipt_row(fs, &r);
    }
    r.tx = NULL;
    for (size_t i = 0; i < b->log_count && rc == 0; i++) {
        prefetch_log(b, i);
        r.log = &b->logs[i];
        rc = log_row(fs, &r);
    }
    return rc;
}

/* ethereum-etl's files have no chain column: rows of two chains in one directory could not be
 * told apart (nor could reverts.csv's), so a directory holds one chain. */
static int one_chain(const bp_filesink *fs, const char *chain, bp_error *err)
{
    for (size_t i = 0; i < fs->nchains; i++)
        if (strcmp(fs->chains[i].name, chain) != 0)
            return bp_error_set(err, BP_EINVAL,
                                "%s holds chain '%s': not writing chain '%s' there too "
                                "(ethereum-etl's CSV files have no chain column; give each "
                                "chain a directory of its own, e.g. etl-csv:DIR/{chain}, or "
                                "use jsonl:DIR)",
                                fs->dir, fs->chains[i].name, chain);
    return 0;
}

static int etlcsv_format(bp_filesink *fs, const bp_batch *batch, bp_error *err)
{
    int rc0 = one_chain(fs, batch->chain, err);
    if (rc0 != 0)
        return rc0;
    for (size_t i = 0; i < batch->count; i++) {
        const bp_event *ev = &batch->events[i];
        int rc = ev->kind == BP_EVENT_APPLY ? apply_rows(fs, ev->block) : revert_row(fs, ev->block);
        if (rc != 0)
            return bp_error_set(err, rc, "%s: block %" PRIu64 ": formatting rows: %s", fs->dir,
                                ev->block->number, bp_strerror(rc));
    }
    return 0;
}

/* ---- etl-csv:DIR/{chain}: a directory per chain ------------------------------------------ */

#define CHAIN_MARK "{chain}"

typedef struct chain_dir {
    char *chain;
    bp_sink *fs; /* the chain's directory: a bp_filesink */
} chain_dir;

/* The registry gives both kinds of etl-csv output the same ops, so the per-chain kind starts
 * as a directory does, with no format callback to tell it apart (every directory has one):
 * etl-csv:DIR stays the bp_filesink it always was. */
typedef struct per_chain {
    bp_filesink as; /* only .base and .format (NULL) are used */
    char *pattern;  /* the target, with CHAIN_MARK */
    chain_dir *dirs;
    size_t n;
} per_chain;

static per_chain *per_chain_of(bp_sink *s)
{
    return ((bp_filesink *)s)->format ? NULL : (per_chain *)s;
}

/* pattern with every CHAIN_MARK replaced by chain (NULL: out of memory). */
static char *expand(const char *pattern, const char *chain)
{
    size_t marks = 0, mlen = strlen(CHAIN_MARK), clen = strlen(chain);
    for (const char *p = strstr(pattern, CHAIN_MARK); p; p = strstr(p + mlen, CHAIN_MARK))
        marks++;
    char *out = malloc(strlen(pattern) + marks * clen + 1), *w = out;
    for (const char *p = pattern; out && *p;) {
        if (strncmp(p, CHAIN_MARK, mlen) == 0) {
            memcpy(w, chain, clen);
            w += clen, p += mlen;
        } else {
            *w++ = *p++;
        }
    }
    if (out)
        *w = '\0';
    return out;
}

/* The directory of chain, opened the first time. */
static int open_chain_dir(per_chain *pc, const char *chain, bp_sink **fs, bp_error *err)
{
    /* the name becomes part of a path: it must not lead out of the pattern's directory */
    if (!*chain || strchr(chain, '/') || strcmp(chain, ".") == 0 || strcmp(chain, "..") == 0)
        return bp_error_set(err, BP_EINVAL,
                            "%s: chain name '%s' cannot stand for " CHAIN_MARK
                            " (it must be a file name: no '/', not '.' or '..')",
                            pc->pattern, chain);
    chain_dir *grown = realloc(pc->dirs, (pc->n + 1) * sizeof(*grown));
    if (!grown)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    pc->dirs = grown;
    chain_dir *d = &pc->dirs[pc->n];
    char *dir = expand(pc->pattern, chain);
    if (!dir || !(d->chain = strdup(chain))) {
        free(dir);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    int rc = bp_filesink_open(&d->fs, dir, g_names, F_COUNT, etlcsv_format, err);
    free(dir);
    if (rc != 0) {
        free(d->chain);
        return rc;
    }
    pc->n++;
    *fs = d->fs;
    return 0;
}

/* The directory chain's rows go to: s itself, or chain's of a per-chain output. */
static int dir_of(bp_sink *s, const char *chain, bp_sink **fs, bp_error *err)
{
    per_chain *pc = per_chain_of(s);
    if (!pc)
        return *fs = s, 0;
    for (size_t i = 0; i < pc->n; i++)
        if (strcmp(pc->dirs[i].chain, chain) == 0)
            return *fs = pc->dirs[i].fs, 0;
    return open_chain_dir(pc, chain, fs, err);
}

static int etlcsv_checkpoint(bp_sink *s, const char *chain, bp_checkpoint *out, bp_error *err)
{
    bp_sink *fs;
    int rc = dir_of(s, chain, &fs, err);
    return rc ? rc : bp_filesink_checkpoint(fs, chain, out, err);
}

static int etlcsv_recent(bp_sink *s, const char *chain, bp_checkpoint *out, size_t max, size_t *n,
                         bp_error *err)
{
    bp_sink *fs;
    int rc = dir_of(s, chain, &fs, err);
    return rc ? rc : bp_filesink_recent(fs, chain, out, max, n, err);
}

static int etlcsv_write(bp_sink *s, const bp_batch *batch, bp_error *err)
{
    bp_sink *fs;
    int rc = dir_of(s, batch->chain, &fs, err);
    return rc ? rc : bp_filesink_write(fs, batch, err);
}

/* The writer lock of the directory chain's rows go to (DIR/blockpipe.lock). */
static int etlcsv_claim(bp_sink *s, const char *chain, char *holder, size_t cap, bp_error *err)
{
    bp_sink *fs;
    int rc = dir_of(s, chain, &fs, err);
    return rc ? rc : bp_filesink_claim(fs, chain, holder, cap, err);
}

static void etlcsv_unclaim(bp_sink *s, const char *chain)
{
    bp_sink *fs;
    bp_error err = {0};
    if (dir_of(s, chain, &fs, &err) == 0)
        bp_filesink_unclaim(fs, chain);
}

static void etlcsv_close(bp_sink *s)
{
    per_chain *pc = per_chain_of(s);
    if (!pc) {
        bp_filesink_close(s);
        return;
    }
    for (size_t i = 0; i < pc->n; i++) {
        bp_filesink_close(pc->dirs[i].fs);
        free(pc->dirs[i].chain);
    }
    free(pc->dirs);
    free(pc->pattern);
    free(pc);
}

/* Why an Arch chain is refused here (the pipeline's message). */
#define NO_ARCH                                                                                    \
    "etl-csv is ethereum-etl's EVM format (its blocks, transactions, receipts and logs columns "   \
    "have no place for Arch blocks, transactions or account updates): use jsonl: for files"

static int etlcsv_open(bp_sink **out, const char *target, const bp_sink_opts *opts, bp_error *err)
{
    (void)opts;
    if (!strstr(target, CHAIN_MARK)) {
        int rc = bp_filesink_open(out, target, g_names, F_COUNT, etlcsv_format, err);
        if (rc == 0)
            (*out)->families_why = NO_ARCH;
        return rc;
    }
    /* a chain's directory is opened when the chain asks for its checkpoint, at its start */
    per_chain *pc = calloc(1, sizeof(*pc));
    if (!pc || !(pc->pattern = strdup(target))) {
        free(pc);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    pc->as.base.families_why = NO_ARCH;
    *out = &pc->as.base;
    return 0;
}

const bp_sink_ops bp_sink_etlcsv_ops = {
    .scheme = "etl-csv",
    .title = "ethereum-etl CSV",
    .usage = "etl-csv:DIR",
    .description = "ethereum-etl's blocks, transactions, receipts and logs CSV files (and "
                   "reverts.csv) in a directory; etl-csv:DIR/{chain} gives each chain a "
                   "directory of its own",
    .open = etlcsv_open,
    .checkpoint = etlcsv_checkpoint,
    .recent = etlcsv_recent,
    .write = etlcsv_write,
    .flush = NULL,
    .close = etlcsv_close,
    .claim = etlcsv_claim,
    .unclaim = etlcsv_unclaim,
};
