/* pg_copy.h - rows in PostgreSQL's binary COPY format, appended to a caller-owned bp_buf.
 *
 * A bp_pgcopy is sticky like bp_fmt: after the first failure every call does nothing, so a
 * whole row is encoded and rc checked once. A value that does not fit its column (a u64
 * above INT64_MAX for bigint, odd-length hex for bytea) fails with BP_EINVAL and names the
 * column in bad_column. Values are taken as the decoder made them: lower-case 0x-hex. */
#ifndef BP_SINK_PG_COPY_H
#define BP_SINK_PG_COPY_H

#include <stddef.h>
#include <stdint.h>

#include "blockpipe/model.h"
#include "util/buf.h"

typedef struct bp_pgcopy {
    bp_buf *buf;
    int rc;                 /* 0, or the first BP_ENOMEM / BP_ETOOBIG / BP_EINVAL */
    const char *bad_column; /* the column that did not fit, when rc == BP_EINVAL */
} bp_pgcopy;

/* The 19-byte file header that starts every COPY ... FROM STDIN (FORMAT binary) stream. */
void bp_pgcopy_header(bp_pgcopy *c);
/* The end-of-data marker (field count -1). */
void bp_pgcopy_trailer(bp_pgcopy *c);
/* Starts a row of nfields fields. */
void bp_pgcopy_row(bp_pgcopy *c, uint16_t nfields);

void bp_pgcopy_null(bp_pgcopy *c);
/* text / varchar: the bytes of s; NULL is SQL NULL. */
void bp_pgcopy_text(bp_pgcopy *c, const char *s);
/* jsonb: s is JSON text; NULL is SQL NULL. */
void bp_pgcopy_jsonb(bp_pgcopy *c, const char *s);
/* bigint; v above INT64_MAX fails naming col. */
void bp_pgcopy_i64(bp_pgcopy *c, uint64_t v, const char *col);
/* boolean: v != 0 */
void bp_pgcopy_bool(bp_pgcopy *c, uint64_t v);
void bp_pgcopy_opt_i64(bp_pgcopy *c, bp_opt_u64 v, const char *col);
/* numeric of a u64 (any value). */
void bp_pgcopy_num_u64(bp_pgcopy *c, uint64_t v);
void bp_pgcopy_opt_num_u64(bp_pgcopy *c, bp_opt_u64 v);
/* numeric of a 256-bit quantity; unset is NULL. */
void bp_pgcopy_qty(bp_pgcopy *c, const bp_qty *q);
/* bytea from "0x" + even-length hex; NULL is SQL NULL; anything else fails naming col. */
void bp_pgcopy_hex(bp_pgcopy *c, const char *s, const char *col);
/* A bytea of n bytes already decoded (a bp_hexb's). */
void bp_pgcopy_bytes(bp_pgcopy *c, const unsigned char *b, size_t n);
/* double precision (float8): IEEE 754 bits, big-endian. */
void bp_pgcopy_f64(bp_pgcopy *c, double v);

#endif
