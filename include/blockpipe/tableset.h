/* tableset.h - the tables a chain family writes (issue 14: part of what a family provides,
 * src/core/source.h `tables`): their names, each table's columns (name, logical type, key /
 * not null), the rows each event of a batch brings to each table, and each row's values, read
 * the same way for every family. An output finds a chain's set by the family of its blocks
 * (bp_table_set_of) and makes its tables, docs and JSON rows from it; a bulk writer that has a
 * faster path for one family selects it once per batch by set->family.
 *
 * One source of truth each: the EVM set is made from BP_COLUMNS (columns.h), the Arch one is
 * the Arch column table (src/arch/arch_tables.c).
 *
 * What a REVERT of a block means for the tables: its rows of every table whose
 * kept_on_revert is false go with it (an output deletes them, or a stream sends a revert entry
 * for them); rows of a table that keeps them stay (arch_events: what the node sent stays
 * sent). A family whose rows change state without a reorg (Arch's rolled-back and re-applied
 * transactions, src/arch/arch_rows.h) says what that does in its own header. */
#ifndef BLOCKPIPE_TABLESET_H
#define BLOCKPIPE_TABLESET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "blockpipe/columns.h"
#include "blockpipe/sink.h"

typedef struct bp_buf bp_buf; /* src/util/buf.h */

typedef struct bp_set_column {
    const char *name; /* the SQL and JSON name */
    bp_col_type type; /* what an output needs to choose its own column type */
    unsigned flags;   /* BP_COL_NOTNULL | BP_COL_KEY (the key: these, in column order) */
    const char *doc;  /* where its value comes from (docs/SCHEMA.md); NULL: not documented so */
} bp_set_column;

typedef struct bp_set_table {
    const char *name; /* "blocks", "arch_blocks", ... */
    const bp_set_column *columns;
    size_t column_count;
    bool kept_on_revert; /* its rows stay when their block is reverted (see above) */
} bp_set_table;

struct bp_table_set;

/* A cursor over the rows one event brings to one table (bp_table_rows, then next until false).
 * The position fields are the family's: EVM i is the transaction or log; Arch i the
 * transaction (or the event) and k its account. */
typedef struct bp_table_row {
    const struct bp_table_set *set;
    const char *chain;
    const bp_event *ev;
    size_t table;
    size_t i, k;
    bool started;
} bp_table_row;

typedef struct bp_table_set {
    enum bp_family family;
    const char *name; /* "evm", "arch" */
    const bp_set_table *tables;
    size_t table_count;
    /* The file with the column table, for the generated docs' note. */
    const char *source;
    /* A type as the docs name it for this family (Arch hashes have no 0x: "hash (64 hex, no
     * 0x)"). */
    const char *(*type_name)(bp_col_type t);
    /* Moves r to the next row its event brings to r->table; false when none is left. */
    bool (*next)(bp_table_row *r);
    /* The value of column c of r->table in the row r is at (borrowed from the block). */
    bp_value (*value)(const bp_table_row *r, size_t c);
    /* The row as bp_table_row_json writes it, faster (EVM: unrolled per table); NULL: none. */
    int (*row_json)(bp_buf *out, const bp_table_row *r);
} bp_table_set;

extern const bp_table_set bp_tables_evm;
extern const bp_table_set bp_tables_arch;

/* The set of family f's blocks (NULL for a family without one). */
const bp_table_set *bp_table_set_of(enum bp_family f);
/* The table of set called name, NULL when none; *index its place in set->tables. */
const bp_set_table *bp_table_set_find(const bp_table_set *set, const char *name, size_t *index);

/* Starts r over the rows event ev of chain brings to table `table` of set. */
void bp_table_rows(bp_table_row *r, const bp_table_set *set, const char *chain, const bp_event *ev,
                   size_t table);
/* r at a row the caller found (the family's position i, k), e.g. a stream's newest row. */
static inline void bp_table_row_at(bp_table_row *r, const bp_table_set *set, const char *chain,
                                   const bp_event *ev, size_t table, size_t i, size_t k)
{
    *r = (bp_table_row){
        .set = set, .chain = chain, .ev = ev, .table = table, .i = i, .k = k, .started = true};
}
static inline bool bp_table_next(bp_table_row *r)
{
    return r->set->next(r);
}

/* Appends row r as a compact JSON object keyed by its table's column names, in column order:
 * integers as JSON numbers (bool columns as true / false), 256-bit amounts as decimal strings,
 * text, hashes and bytes as strings, JSON columns nested, floats with 6 decimals, a missing
 * value as null. 0, or bp_buf's BP_ENOMEM / BP_ETOOBIG. */
int bp_table_row_json(bp_buf *out, const bp_table_row *r);
/* The same without the family's fast path (for tests: both must agree). */
int bp_table_row_json_generic(bp_buf *out, const bp_table_row *r);

/* The set's tables as one Markdown table (table, column, type, key, from): docs/SCHEMA.md. */
void bp_table_set_markdown(const bp_table_set *set, FILE *f);

#endif
