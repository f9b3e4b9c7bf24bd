/* vrow.h - one row of a raw table (blockpipe/columns.h) in one comparable form, whether it
 * comes from the node (the model, bp_value_of) or from an output read back (bp_read_cell): what
 * `blockpipe verify` hashes and compares.
 *
 * The form of each cell is the reader's text (sink.h, bp_read_cell: decimal integers and
 * amounts, lower-case 0x-hex), except JSON, which is rewritten canonically on both sides (keys
 * sorted, no spaces): PostgreSQL keeps it as jsonb, which reorders keys and adds spaces.
 * Encoding: per cell one byte (0: null, 1: a value), then for a value its length (4 bytes,
 * host order) and its bytes. */
#ifndef BP_CORE_VROW_H
#define BP_CORE_VROW_H

#include <stddef.h>
#include <stdint.h>

#include "blockpipe/columns.h"
#include "blockpipe/sink.h"
#include "util/buf.h"

/* Appends row r of table t (from the model) to out; tmp is scratch. 0 or BP_ENOMEM. */
int bp_vrow_from_model(bp_buf *out, bp_table t, const bp_row *r, bp_buf *tmp);
/* Appends a row read back (n cells, the table's columns in order) to out. 0 or BP_ENOMEM. */
int bp_vrow_from_cells(bp_buf *out, bp_table t, const bp_read_cell *cells, size_t n);

/* Cell i of an encoded row (row[0..len)): *null, or the value in (*s, *n). False when the row
 * has fewer cells. */
bool bp_vrow_cell(const char *row, size_t len, size_t i, bool *null, const char **s, size_t *n);

/* A 64-bit hash of data[0..n) (not cryptographic: it finds accidents and hand edits). */
uint64_t bp_vhash(const void *data, size_t n);
/* Folds the next row's hash into a running digest (the order of rows counts). */
static inline uint64_t bp_vdigest_add(uint64_t digest, uint64_t row_hash)
{
    uint64_t x = (digest ^ row_hash) * 0x9E3779B97F4A7C15ull;
    return x ^ (x >> 29);
}

/* JSON text rewritten canonically into out (objects' keys sorted bytewise, no whitespace,
 * strings re-escaped, numbers as written). Text that is not JSON is appended as it is. */
int bp_json_canon(bp_buf *out, const char *s, size_t n);

#endif
