/* format.h - text formatting shared by the file outputs (etl-csv, jsonl) and SQLite:
 * decimal quantities of any size, CSV cells, JSON strings, withdrawals and timestamps.
 *
 * A bp_fmt is a sticky writer over a caller-owned bp_buf: every call after the first
 * failure does nothing, so a whole row is formatted and rc checked once. */
#ifndef BP_SINK_FORMAT_H
#define BP_SINK_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "blockpipe/model.h"
#include "util/buf.h"

typedef struct bp_fmt {
    bp_buf *buf;
    int rc; /* 0, or the first BP_ENOMEM / BP_ETOOBIG */
} bp_fmt;

/* Direct writing for hot rows: take room for a whole row's worst case once, fill it with the
 * bp_put_* helpers (no checks, no failures), then hand back the end. A buffer cap (bp_buf.max)
 * is checked against the worst case. bp_fmt_room returns NULL, with f->rc set, when f has
 * failed or the buffer cannot grow. */
char *bp_fmt_room(bp_fmt *f, size_t n);
void bp_fmt_done(bp_fmt *f, char *end); /* end: one past the last byte written */
/* A BP_VAL_HEX value's text as a JSON string (quoted; hex digits need no escape). */
void bp_fmt_hex_str(bp_fmt *f, const bp_hexb *h);

#define BP_PUT_U64_MAX 20 /* digits of UINT64_MAX */
#define BP_PUT_QTY_MAX 80 /* BP_U256_DEC_MAX: 78 digits and the NUL bp_u256_to_dec adds */
char *bp_put_u64(char *p, uint64_t v);
/* Decimal of q, nothing when !q->set. */
char *bp_put_qty(char *p, const bp_qty *q);
/* A CSV cell of s[0..n) as bp_fmt_csv_text writes it; needs room for 2 * n + 2 bytes. */
char *bp_put_csv(char *p, const char *s, size_t n);

void bp_fmt_raw(bp_fmt *f, const char *s, size_t n);
void bp_fmt_str(bp_fmt *f, const char *s); /* s as is; NULL writes nothing */
void bp_fmt_char(bp_fmt *f, char c);
void bp_fmt_u64(bp_fmt *f, uint64_t v);
/* Decimal of q, or null_text when !q->set. */
void bp_fmt_qty(bp_fmt *f, const bp_qty *q, const char *null_text);
void bp_fmt_opt(bp_fmt *f, bp_opt_u64 v, const char *null_text);

/* A CSV cell as Python's csv module writes it (QUOTE_MINIMAL): quoted, with "" for ",
 * only when it holds a comma, a quote or a line break. NULL is an empty cell. */
void bp_fmt_csv_text(bp_fmt *f, const char *s);
/* A JSON string literal with escapes, or null for NULL. */
void bp_fmt_json_str(bp_fmt *f, const char *s);

/* The block's withdrawals as compact JSON objects joined with "," (no brackets):
 * {"index":..,"validator_index":..,"address":"0x..","amount":..}. quote is what each JSON
 * quote becomes: "\"" for JSON, "\"\"" inside a quoted CSV cell. */
void bp_fmt_withdrawals(bp_fmt *f, const bp_block *b, const char *quote);
/* The same written straight into room of at least bp_withdrawals_room(b, strlen(quote)). */
size_t bp_withdrawals_room(const bp_block *b, size_t quote_len);
char *bp_put_withdrawals(char *p, const bp_block *b, const char *quote);

/* Unix seconds as RFC 3339 UTC, "YYYY-MM-DDTHH:MM:SSZ". */
void bp_fmt_rfc3339(bp_fmt *f, uint64_t unix_seconds);

/* ethereum-etl's block fields up to withdrawals_root, in its order (blocks.csv and the stream's
 * block lines; withdrawals follow in each its own way): X(column id without BP_C_). */
#define BP_ETL_BLOCK_FIELDS(X)                                                                     \
    X(BLOCK_NUMBER)                                                                                \
    X(BLOCK_HASH)                                                                                  \
    X(BLOCK_PARENT_HASH)                                                                           \
    X(BLOCK_NONCE)                                                                                 \
    X(BLOCK_SHA3_UNCLES)                                                                           \
    X(BLOCK_LOGS_BLOOM)                                                                            \
    X(BLOCK_TRANSACTIONS_ROOT)                                                                     \
    X(BLOCK_STATE_ROOT)                                                                            \
    X(BLOCK_RECEIPTS_ROOT)                                                                         \
    X(BLOCK_MINER)                                                                                 \
    X(BLOCK_DIFFICULTY)                                                                            \
    X(BLOCK_TOTAL_DIFFICULTY)                                                                      \
    X(BLOCK_SIZE)                                                                                  \
    X(BLOCK_EXTRA_DATA)                                                                            \
    X(BLOCK_GAS_LIMIT)                                                                             \
    X(BLOCK_GAS_USED)                                                                              \
    X(BLOCK_TIMESTAMP)                                                                             \
    X(BLOCK_TRANSACTION_COUNT)                                                                     \
    X(BLOCK_BASE_FEE_PER_GAS)                                                                      \
    X(BLOCK_WITHDRAWALS_ROOT)

#endif
