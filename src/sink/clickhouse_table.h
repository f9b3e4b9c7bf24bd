/* clickhouse_table.h - ClickHouse tables as the clickhouse output makes and fills them:
 * column types, CREATE TABLE text, the server's capabilities (from version()), and rows
 * encoded for an INSERT in RowBinary or Native.
 *
 * Table-driven: a table is a bp_ch_table (name, columns with their types, engine, keys);
 * the raw tables are made from the column table (columns.h) by bp_ch_raw_table, and any other
 * table (derived ones) is another bp_ch_table filled by the same bp_ch_put_* calls.
 *
 * Encoding follows the column's type as the server has it (read from system.columns), not
 * the type we would create now: a table made by an older server keeps working after an
 * upgrade (e.g. a 256-bit amount is decimal text in a String column on 18.16 and 32 bytes in a
 * UInt256 column on current servers, from the same bp_ch_put_u256 call). */
#ifndef BP_SINK_CLICKHOUSE_TABLE_H
#define BP_SINK_CLICKHOUSE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "blockpipe/columns.h"
#include "sink/clickhouse_http.h"
#include "util/buf.h"

/* ---- types ---------------------------------------------------------------------------------- */

enum bp_ch_kind {
    BP_CH_UINT8,
    BP_CH_INT8,
    BP_CH_UINT32,
    BP_CH_UINT64,
    BP_CH_UINT256,
    BP_CH_DATETIME, /* UInt32 seconds */
    BP_CH_STRING,   /* bytes of any length */
    BP_CH_FIXED,    /* FixedString(len) */
    BP_CH_FLOAT64,
};

typedef struct bp_ch_type {
    enum bp_ch_kind kind;
    unsigned len; /* FixedString(len) */
    bool nullable;
} bp_ch_type;

/* A type as system.columns names it ("Nullable(FixedString(32))"); -1 for one we do not
 * write. */
int bp_ch_type_parse(const char *text, bp_ch_type *out);
/* Its name, as bp_ch_type_parse reads it, into out (at least 48 bytes). */
void bp_ch_type_name(const bp_ch_type *t, char *out, size_t cap);

/* What the server can do, from version() and one probe. */
typedef struct bp_ch_caps {
    char version[48];
    int major, minor;
    bool ttl;     /* table TTL and REMOVE TTL (20.10 and later): the derived tables' retention
                     (bp_ch_derived_ttl) besides the partition drops */
    bool uint256; /* a table column may be UInt256 (bp_ch_uint256_step) */
} bp_ch_caps;

/* Fills major, minor and ttl from version() text; -1 when it is not "N.N...". */
int bp_ch_caps_from_version(const char *version, bp_ch_caps *caps);

/* What decides caps->uint256 after the probe SELECT toUInt256(1) (function_ok: it ran). */
typedef enum bp_ch_u256 {
    BP_CH_U256_NO,        /* no such type (18.16 .. 20.7): amounts as decimal String */
    BP_CH_U256_YES,       /* 21.6 and later: an ordinary type */
    BP_CH_U256_ASK_TABLE, /* 20.8 .. 21.5: the function exists, but CREATE TABLE refuses the
                             column unless allow_experimental_bigint_types=1 (a setting 21.6
                             removed, so it cannot simply be sent): create one and see */
} bp_ch_u256;
bp_ch_u256 bp_ch_uint256_step(const bp_ch_caps *caps, bool function_ok);

/* ---- tables --------------------------------------------------------------------------------- */

#define BP_CH_MAX_COLS 64

typedef struct bp_ch_col {
    const char *name;
    bp_ch_type type;
    bool key; /* in order_by: identifies the row (with _sign: the rows that collapse) */
} bp_ch_col;

typedef struct bp_ch_table {
    const char *name;
    bp_ch_col cols[BP_CH_MAX_COLS];
    size_t ncols;
    const char *engine;       /* "CollapsingMergeTree(_sign)" */
    const char *partition_by; /* expression, or NULL */
    const char *order_by;     /* "chain, number, hash": the key rows collapse on */
    const char *block_col;    /* the block number and block hash columns: what a REVERT and */
    const char *hash_col;     /* the crash recovery select rows by */
    const char *chain_col;    /* the chain's column ("chain"; derived tables: origin_key) */
    const char *extra;        /* more column definitions, filled by the server and never sent
                                 (", _written DateTime DEFAULT now()"), or NULL */
} bp_ch_table;

/* The bookkeeping columns every table the output writes ends with: _sign (+1 a row written,
 * -1 a row taken back) and _seq (the output's batch that wrote it). */
#define BP_CH_SIGN "_sign"
#define BP_CH_SEQ "_seq"

/* blocks / transactions / logs: the column table's columns in its order with ClickHouse types,
 * then _sign and _seq. CollapsingMergeTree on (chain, block number, block hash, index), one
 * partition per million blocks. */
void bp_ch_raw_table(bp_table t, const bp_ch_caps *caps, bp_ch_table *out);
/* Our type of column c of the column table on a server with caps; key: it is in the sort key
 * (never Nullable). */
bp_ch_type bp_ch_type_of(const bp_column *c, const bp_ch_caps *caps, bool key);
/* The same of a logical type and BP_COL_* flags (any family's table set's column). */
bp_ch_type bp_ch_coltype(bp_col_type type, unsigned flags, const bp_ch_caps *caps, bool key);

/* "CREATE TABLE IF NOT EXISTS name (col type, ...) ENGINE = ... [PARTITION BY ...] ORDER BY
 * (...) [TTL ...]" */
int bp_ch_create_sql(bp_buf *out, const bp_ch_table *t);
/* Whether name is one of the names of list ("a, b, c"). */
bool bp_ch_in_list(const char *list, const char *name);
/* "c1, c2, ..." of cols[0..n) */
int bp_ch_col_list(bp_buf *out, const bp_ch_col *cols, size_t n);

/* ---- rows ----------------------------------------------------------------------------------- */

enum bp_ch_format { BP_CH_ROWBINARY, BP_CH_NATIVE };

const char *bp_ch_format_name(enum bp_ch_format f); /* "RowBinary", "Native" */

/* The rows of one INSERT into one table: put every column of a row in order (one bp_ch_put_*
 * per column), then bp_ch_row_end. A value that does not fit its column (a NULL in a column
 * that is not Nullable, a hash of the wrong length, an amount too big for UInt64) makes rc
 * BP_EINVAL and bad the column's index; later calls do nothing until bp_ch_enc_reset. */
typedef struct bp_ch_enc {
    enum bp_ch_format format;
    const bp_ch_col *cols; /* borrowed */
    size_t ncols;
    bp_buf *data;  /* Native: one per column; RowBinary: data[0] */
    bp_buf *nulls; /* Native: each column's null map (Nullable ones) */
    bp_buf head;   /* Native: the block header and each column's name and type */
    size_t col;    /* the column the next put fills */
    size_t rows;
    int rc;
    size_t bad;
} bp_ch_enc;

int bp_ch_enc_init(bp_ch_enc *e, enum bp_ch_format f, const bp_ch_col *cols, size_t ncols);
void bp_ch_enc_release(bp_ch_enc *e);
void bp_ch_enc_reset(bp_ch_enc *e);
/* Bytes held (the batch's encoded size so far). */
size_t bp_ch_enc_bytes(const bp_ch_enc *e);
/* Bytes its buffers take (what they grew to; reset keeps them). */
size_t bp_ch_enc_held(const bp_ch_enc *e);
/* Gives the buffers' storage back (and resets). */
void bp_ch_enc_trim(bp_ch_enc *e);

void bp_ch_put_null(bp_ch_enc *e);
void bp_ch_put_u64(bp_ch_enc *e, uint64_t v);
void bp_ch_put_i8(bp_ch_enc *e, int8_t v);
void bp_ch_put_u256(bp_ch_enc *e, const bp_u256 *v);
/* "0x" + even-length hex: its bytes (FixedString of that length, or String). */
void bp_ch_put_hex(bp_ch_enc *e, const char *hex);
void bp_ch_put_text(bp_ch_enc *e, const char *s, size_t n);
void bp_ch_put_f64(bp_ch_enc *e, double v);
void bp_ch_row_end(bp_ch_enc *e);

/* A cell from a column-table value (U64, U256, F64, a string: text columns as text, the others
 * as 0x-hex; anything else NULL); type is the value's logical column type. */
static inline __attribute__((always_inline)) void bp_ch_put_value(bp_ch_enc *e, bp_col_type type,
                                                                  const bp_value *v)
{
    switch (v->kind) {
    case BP_VAL_U64:
        bp_ch_put_u64(e, v->u);
        return;
    case BP_VAL_U256:
        bp_ch_put_u256(e, &v->q->v);
        return;
    case BP_VAL_F64:
        bp_ch_put_f64(e, v->f);
        return;
    case BP_VAL_STR:
        if (type == BP_COL_TEXT || type == BP_COL_JSON)
            bp_ch_put_text(e, v->s, strlen(v->s));
        else
            bp_ch_put_hex(e, v->s);
        return;
    case BP_VAL_HEX: {
        char hex[BP_HEXB_TEXT];
        size_t n = bp_hexb_text(hex, v->h);
        if (type == BP_COL_TEXT)
            bp_ch_put_text(e, hex, n);
        else
            bp_ch_put_hex(e, hex);
        return;
    }
    default:
        bp_ch_put_null(e);
    }
}

/* The encoded rows as INSERT data pieces (pointing into e) for "INSERT INTO t(cols) FORMAT
 * <format>"; at most 1 + 4 * ncols pieces. */
size_t bp_ch_enc_pieces(bp_ch_enc *e, bp_ch_piece *out, size_t max);
#define BP_CH_MAX_PIECES(ncols) (1 + 4 * (ncols))

#endif
