/* sqlread.h - the SELECT of a bp_read_query (blockpipe/sink.h) for the SQL outputs' readers:
 * one statement text, its parameters in order, each backend giving its own spelling of a
 * column's value and of a parameter (SQLite keeps hashes as text, PostgreSQL as bytea). */
#ifndef BP_SINK_SQLREAD_H
#define BP_SINK_SQLREAD_H

#include <stdint.h>

#include "blockpipe/columns.h"
#include "blockpipe/sink.h"
#include "util/buf.h"

#define BP_SQL_MAX_PARAMS 32

enum bp_sql_param_kind {
    BP_SQL_P_TEXT, /* chain */
    BP_SQL_P_INT,  /* a block number or an index (.u) */
    BP_SQL_P_HEX,  /* 0x-hex of a hash or an address column (Arch: bare hex) */
    BP_SQL_P_REAL, /* a double, as text (.s) */
};

typedef struct bp_sql_param {
    enum bp_sql_param_kind kind;
    const char *s; /* TEXT, HEX: borrowed from the query */
    uint64_t u;    /* INT */
} bp_sql_param;

typedef struct bp_sql_params {
    bp_sql_param p[BP_SQL_MAX_PARAMS];
    int n;
} bp_sql_params;

typedef struct bp_sql_dialect {
    /* Appends the SELECT expression of column c (e.g. the name, or "'0x' || encode(...)"). */
    int (*select_expr)(bp_buf *out, const bp_column *c);
    /* Appends the placeholder of parameter number n (1-based) of kind k. */
    int (*param)(bp_buf *out, int n, enum bp_sql_param_kind k);
    /* Optional, in place of param: appends the value itself as a literal (a server without
     * bound parameters, ClickHouse over HTTP). */
    int (*literal)(bp_buf *out, const bp_sql_param *v);
    const char *table_suffix; /* after each table name (e.g. " FINAL"), NULL: none */
    /* ORDER BY / LIMIT after a UNION ALL order only its last SELECT (ClickHouse): the union is
     * wrapped in a subquery. */
    bool wrap_union;
    /* The window tables keep a row of 0 blocks / 0 transactions for a window left empty, and
     * FINAL must see every row of a key before a filter on a column outside the key
     * (ClickHouse's rollups): they are read as (SELECT * FROM t FINAL WHERE <key filters>)
     * WHERE block_count > 0 (txcount > 0 for the contract windows). */
    bool empty_windows;
    /* The Arch tables (bp_read_query.arch): appends the SELECT expression of an Arch hash
     * column as bare lower-case hex (e.g. "encode(c, 'hex')"). NULL: the output has no Arch
     * tables and such a read is refused. */
    int (*arch_hash_expr)(bp_buf *out, const char *column);
} bp_sql_dialect;

/* "SELECT <every column of q->table> FROM <table> WHERE ... ORDER BY ... LIMIT n" into sql
 * (appended) and the parameters into p. 0, BP_ENOMEM, or BP_EINVAL for a filter the table does
 * not have (e.g. topic0 on blocks). */
int bp_sql_select(bp_buf *sql, const bp_read_query *q, const bp_sql_dialect *d, bp_sql_params *p,
                  bp_error *err);

#endif
