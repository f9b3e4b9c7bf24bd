/* sqlread.c - SELECT statements for bp_read_query, made from the column table. */
#include "sink/sqlread.h"

#include <inttypes.h>
#include <string.h>

#include "arch/arch_tables.h"
#include "blockpipe/derived.h"

/* Per table: the block number column, the index that orders rows inside a block, the hash
 * column (NULL: none), and whether it has an address / topic0 / tx hash / block hash filter. */
typedef struct table_shape {
    const char *number, *index, *hash, *block_hash, *tx_hash;
    bool address_either; /* transactions: from or to */
    const char *address, *topic0;
} table_shape;

static const table_shape g_shapes[BP_TABLE_COUNT] = {
    [BP_TABLE_BLOCKS] = {.number = "number", .hash = "hash"},
    [BP_TABLE_TRANSACTIONS] = {.number = "block_number",
                               .index = "transaction_index",
                               .hash = "hash",
                               .block_hash = "block_hash",
                               .address_either = true},
    [BP_TABLE_LOGS] = {.number = "block_number",
                       .index = "log_index",
                       .block_hash = "block_hash",
                       .tx_hash = "transaction_hash",
                       .address = "address",
                       .topic0 = "topic0"},
};

typedef struct builder {
    bp_buf *sql;
    const bp_sql_dialect *d;
    bp_sql_params *p;
    int rc;
    bool where;
} builder;

/* The first failure sticks (BP_EINVAL: too many parameters, else out of memory). */
static void st(builder *b, int rc)
{
    if (b->rc == 0 && rc != 0)
        b->rc = rc == BP_EINVAL ? BP_EINVAL : BP_ENOMEM;
}

static int add_param(builder *b, bp_sql_param v)
{
    if (b->p->n == BP_SQL_MAX_PARAMS)
        return BP_EINVAL;
    b->p->p[b->p->n++] = v;
    return b->d->literal ? b->d->literal(b->sql, &v) : b->d->param(b->sql, b->p->n, v.kind);
}

/* " WHERE col OP ?" or " AND col OP ?" */
static void cond(builder *b, const char *col, const char *op, bp_sql_param v)
{
    st(b, bp_buf_printf(b->sql, " %s %s %s ", b->where ? "AND" : "WHERE", col, op));
    b->where = true;
    st(b, add_param(b, v));
}

static bp_sql_param text(const char *s)
{
    return (bp_sql_param){.kind = BP_SQL_P_TEXT, .s = s};
}

static bp_sql_param hex(const char *s)
{
    return (bp_sql_param){.kind = BP_SQL_P_HEX, .s = s};
}

static bp_sql_param num(uint64_t u)
{
    return (bp_sql_param){.kind = BP_SQL_P_INT, .u = u};
}

static int unsupported(const bp_read_query *q, const char *what, bp_error *err)
{
    return bp_error_set(err, BP_EINVAL, "%s cannot be filtered by %s", bp_table_name(q->table),
                        what);
}

/* The filters a table does not have are refused rather than ignored. */
static int check_filters(const bp_read_query *q, const table_shape *t, bp_error *err)
{
    if (q->hash && !t->hash)
        return unsupported(q, "hash", err);
    if (q->block_hash && !t->block_hash)
        return unsupported(q, "block hash", err);
    if (q->tx_hash && !t->tx_hash)
        return unsupported(q, "transaction hash", err);
    if (q->address && !t->address && !t->address_either)
        return unsupported(q, "address", err);
    if (q->topic0 && !t->topic0)
        return unsupported(q, "topic0", err);
    return 0;
}

/* Keyset: (number, index) after the cursor in the order asked for. */
static void after(builder *b, const bp_read_query *q, const table_shape *t)
{
    const char *op = q->ascending ? ">" : "<";
    if (!t->index) {
        cond(b, t->number, op, num(q->after_number));
        return;
    }
    st(b, bp_buf_printf(b->sql, " %s (%s, %s) %s (", b->where ? "AND" : "WHERE", t->number,
                        t->index, op));
    b->where = true;
    st(b, add_param(b, num(q->after_number)));
    st(b, bp_buf_puts(b->sql, ", "));
    st(b, add_param(b, num(q->after_index)));
    st(b, bp_buf_putc(b->sql, ')'));
}

static void columns(builder *b, bp_table table)
{
    size_t first, n = bp_table_columns(table, &first);
    for (size_t i = 0; i < n; i++) {
        if (i)
            st(b, bp_buf_puts(b->sql, ", "));
        st(b, b->d->select_expr(b->sql, &bp_columns[first + i]));
    }
}

/* One SELECT of q; branch 1 and 2 are the sender and the receiver halves of an address
 * filter on transactions (0: no halves). */
static void select_one(builder *b, const bp_read_query *q, const table_shape *t, int branch)
{
    b->where = false;
    st(b, bp_buf_puts(b->sql, "SELECT "));
    columns(b, q->table);
    st(b, bp_buf_printf(b->sql, " FROM %s%s", bp_table_name(q->table),
                        b->d->table_suffix ? b->d->table_suffix : ""));
    if (q->chain)
        cond(b, "chain", "=", text(q->chain));
    if (q->has_min)
        cond(b, t->number, ">=", num(q->min));
    if (q->has_max)
        cond(b, t->number, "<=", num(q->max));
    if (q->hash)
        cond(b, t->hash, "=", hex(q->hash));
    if (q->block_hash)
        cond(b, t->block_hash, "=", hex(q->block_hash));
    if (q->tx_hash)
        cond(b, t->tx_hash, "=", hex(q->tx_hash));
    if (branch == 1) {
        cond(b, "from_address", "=", hex(q->address));
    } else if (branch == 2) { /* a transaction to itself is the sender half's */
        cond(b, "to_address", "=", hex(q->address));
        st(b, bp_buf_puts(b->sql, " AND (from_address IS NULL OR from_address <> "));
        st(b, add_param(b, hex(q->address)));
        st(b, bp_buf_putc(b->sql, ')'));
    } else if (q->address) {
        cond(b, t->address, "=", hex(q->address));
    }
    if (q->topic0)
        cond(b, t->topic0, "=", hex(q->topic0));
    if (q->has_after)
        after(b, q, t);
}

static void order_limit(builder *b, const bp_read_query *q, const table_shape *t)
{
    const char *dir = q->ascending ? "ASC" : "DESC";
    if (!q->any_order)
        st(b, bp_buf_printf(b->sql, " ORDER BY %s %s", t->number, dir));
    if (t->index && !q->any_order)
        st(b, bp_buf_printf(b->sql, ", %s %s", t->index, dir));
    if (q->limit)
        st(b, bp_buf_printf(b->sql, " LIMIT %zu", q->limit));
}

/* ---- derived tables ---- */

static bool has_dcolumn(bp_dshape shape, const char *name)
{
    size_t first, n = bp_dshape_columns(shape, &first);
    for (size_t i = 0; i < n; i++)
        if (strcmp(bp_dcolumns[first + i].name, name) == 0)
            return true;
    return false;
}

static int dselect(bp_buf *sql, const bp_read_query *q, const bp_sql_dialect *d, bp_sql_params *p,
                   bp_error *err)
{
    if (q->dtable < 1 || q->dtable > BP_DT_COUNT)
        return bp_error_set(err, BP_EINVAL, "no such derived table");
    const bp_dtable_info *ti = &bp_dtables[q->dtable - 1];
    bool window = ti->grain != 0, block = has_dcolumn(ti->shape, "block_number");
    const char *number = window ? "window_start" : block ? "block_number" : NULL;
    const char *key = has_dcolumn(ti->shape, "origin_key") ? "origin_key" : "chain";
    if (q->hash || q->block_hash || q->address || q->topic0 || q->has_after)
        return bp_error_set(err, BP_EINVAL, "%s cannot be filtered so", ti->name);
    if ((q->tx_hash && ti->shape != BP_DS_PREDICTION) || (q->by_txcount && !window) ||
        ((q->has_min || q->has_max) && !number) || (q->chain && !has_dcolumn(ti->shape, key)))
        return bp_error_set(err, BP_EINVAL, "%s cannot be filtered so", ti->name);
    builder b = {.sql = sql, .d = d, .p = p};
    p->n = 0;
    st(&b, bp_buf_puts(sql, "SELECT "));
    size_t first, n = bp_dshape_columns(ti->shape, &first);
    for (size_t i = 0; i < n; i++) {
        const bp_dcolumn *dc = &bp_dcolumns[first + i];
        bp_column c = {.name = dc->name, .qname = dc->name, .type = dc->type, .flags = dc->flags};
        st(&b, bp_buf_puts(sql, i ? ", " : ""));
        st(&b, d->select_expr(sql, &c));
    }
    bool live = d->empty_windows && window;
    st(&b, bp_buf_printf(sql, " FROM %s%s%s", live ? "(SELECT * FROM " : "", ti->name,
                         d->table_suffix ? d->table_suffix : ""));
    if (q->chain)
        cond(&b, key, "=", text(q->chain));
    if (q->has_min)
        cond(&b, number, ">=", num(q->min));
    if (q->has_max)
        cond(&b, number, "<=", num(q->max));
    if (q->tx_hash)
        cond(&b, "transaction_hash", "=", hex(q->tx_hash));
    if (live)
        st(&b, bp_buf_printf(sql, ") AS live WHERE %s > 0",
                             ti->shape == BP_DS_CHAIN_WINDOW ? "block_count" : "txcount"));
    const char *dir = q->ascending ? "ASC" : "DESC";
    if (q->by_txcount)
        st(&b, bp_buf_printf(sql, " ORDER BY txcount DESC, %s %s", number, dir));
    else if (number && !q->any_order)
        st(&b, bp_buf_printf(sql, " ORDER BY %s %s", number, dir));
    if (!q->any_order && ti->shape == BP_DS_CONTRACT_WINDOW) /* ties in a fixed order */
        st(&b, bp_buf_puts(sql, ", contract_address ASC"));
    else if (!q->any_order && ti->shape == BP_DS_PREDICTION)
        st(&b, bp_buf_printf(sql, ", transaction_index %s", dir));
    if (q->limit)
        st(&b, bp_buf_printf(sql, " LIMIT %zu", q->limit));
    if (b.rc != 0)
        return bp_error_set(err, b.rc, b.rc == BP_EINVAL ? "too many filters" : "out of memory");
    return 0;
}

/* ---- Arch tables ---- */

/* Per Arch table: the block column, the keyset columns after it (NULL: none), and the
 * columns of the hash / block hash / tx hash / address / topic filters (NULL: refused). */
typedef struct arch_shape {
    const char *number, *index, *key, *hash, *block_hash, *tx_hash, *address, *topic;
    bool by_time; /* events: ordered by (received_at, key), the range filters block_height */
} arch_shape;

static const arch_shape g_arch[BP_ARCH_TABLE_COUNT] = {
    [BP_ARCH_BLOCKS] = {.number = "height", .hash = "hash"},
    [BP_ARCH_TRANSACTIONS] = {.number = "block_height",
                              .index = "tx_index",
                              .hash = "txid",
                              .block_hash = "block_hash"},
    [BP_ARCH_ACCOUNT_UPDATES] = {.number = "block_height",
                                 .index = "tx_index",
                                 .key = "account",
                                 .tx_hash = "txid",
                                 .address = "account"},
    [BP_ARCH_EVENTS] = {.number = "block_height", .key = "key", .topic = "topic", .by_time = true},
};

static void arch_columns(builder *b, enum bp_arch_table t)
{
    const bp_set_table *tab = &bp_tables_arch.tables[t];
    for (size_t i = 0; i < tab->column_count; i++) {
        const bp_set_column *c = &tab->columns[i];
        st(b, bp_buf_puts(b->sql, i ? ", " : ""));
        if (c->type == BP_COL_HASH) { /* bare hex, not an EVM hash's 0x */
            st(b, b->d->arch_hash_expr(b->sql, c->name));
        } else {
            bp_column col = {.name = c->name, .qname = c->name, .type = c->type};
            st(b, b->d->select_expr(b->sql, &col));
        }
    }
}

static int arch_refused(const char *table, const char *what, bp_error *err)
{
    return bp_error_set(err, BP_EINVAL, "%s cannot be filtered by %s", table, what);
}

/* Keyset: the row strictly after the cursor in the order asked for. */
static void arch_after(builder *b, const bp_read_query *q, const arch_shape *s)
{
    st(b, bp_buf_printf(b->sql, " %s (", b->where ? "AND" : "WHERE"));
    b->where = true;
    if (s->by_time)
        st(b, bp_buf_printf(b->sql, "received_at, %s", s->key));
    else
        st(b, bp_buf_printf(b->sql, "%s%s%s%s%s", s->number, s->index ? ", " : "",
                            s->index ? s->index : "", s->key ? ", " : "", s->key ? s->key : ""));
    st(b, bp_buf_printf(b->sql, ") %s (", q->ascending ? ">" : "<"));
    if (s->by_time) {
        st(b, add_param(b, (bp_sql_param){.kind = BP_SQL_P_REAL, .s = q->after_real}));
        st(b, bp_buf_puts(b->sql, ", "));
        st(b, add_param(b, text(q->after_key)));
    } else {
        st(b, add_param(b, num(q->after_number)));
        if (s->index) {
            st(b, bp_buf_puts(b->sql, ", "));
            st(b, add_param(b, num(q->after_index)));
        }
        if (s->key) {
            st(b, bp_buf_puts(b->sql, ", "));
            st(b, add_param(b, hex(q->after_key)));
        }
    }
    st(b, bp_buf_putc(b->sql, ')'));
}

static int arch_select(bp_buf *sql, const bp_read_query *q, const bp_sql_dialect *d,
                       bp_sql_params *p, bp_error *err)
{
    if (q->arch < 1 || q->arch > BP_ARCH_TABLE_COUNT)
        return bp_error_set(err, BP_EINVAL, "no such Arch table");
    enum bp_arch_table t = (enum bp_arch_table)(q->arch - 1);
    const arch_shape *s = &g_arch[t];
    const char *name = bp_arch_table_name(t);
    if (!d->arch_hash_expr)
        return bp_error_set(err, BP_EINVAL, "this output has no Arch tables (%s)", name);
    if ((q->hash && !s->hash) || (q->block_hash && !s->block_hash) || (q->tx_hash && !s->tx_hash))
        return arch_refused(name, "hash", err);
    if ((q->address && !s->address) || (q->topic && !s->topic) || q->topic0)
        return arch_refused(name, q->topic0 ? "topic0" : "address or topic", err);
    if (q->rolled_back && t != BP_ARCH_TRANSACTIONS)
        return arch_refused(name, "rolled_back", err);
    if (q->has_after && (s->key || s->by_time) && (!q->after_key || (s->by_time && !q->after_real)))
        return arch_refused(name, "a cursor without its key", err);
    builder b = {.sql = sql, .d = d, .p = p};
    p->n = 0;
    st(&b, bp_buf_puts(sql, "SELECT "));
    arch_columns(&b, t);
    st(&b, bp_buf_printf(sql, " FROM %s", name));
    if (q->chain)
        cond(&b, "chain", "=", text(q->chain));
    if (q->has_min)
        cond(&b, s->number, ">=", num(q->min));
    if (q->has_max)
        cond(&b, s->number, "<=", num(q->max));
    if (q->hash)
        cond(&b, s->hash, "=", hex(q->hash));
    if (q->block_hash)
        cond(&b, s->block_hash, "=", hex(q->block_hash));
    if (q->tx_hash)
        cond(&b, s->tx_hash, "=", hex(q->tx_hash));
    if (q->address)
        cond(&b, s->address, "=", hex(q->address));
    if (q->topic)
        cond(&b, s->topic, "=", text(q->topic));
    if (q->rolled_back) {
        st(&b, bp_buf_printf(sql, " %s %srolled_back", b.where ? "AND" : "WHERE",
                             q->rolled_back == 1 ? "" : "NOT "));
        b.where = true;
    }
    if (q->has_after)
        arch_after(&b, q, s);
    const char *dir = q->ascending ? "ASC" : "DESC";
    if (!q->any_order && s->by_time)
        st(&b, bp_buf_printf(sql, " ORDER BY received_at %s, %s %s", dir, s->key, dir));
    else if (!q->any_order)
        st(&b, bp_buf_printf(sql, " ORDER BY %s %s%s%s%s%s%s%s", s->number, dir,
                             s->index ? ", " : "", s->index ? s->index : "", s->index ? " " : "",
                             s->index ? dir : "", s->key ? ", " : "", s->key ? s->key : ""));
    if (!q->any_order && !s->by_time && s->key)
        st(&b, bp_buf_printf(sql, " %s", dir));
    if (q->limit)
        st(&b, bp_buf_printf(sql, " LIMIT %zu", q->limit));
    if (b.rc != 0)
        return bp_error_set(err, b.rc, b.rc == BP_EINVAL ? "too many filters" : "out of memory");
    return 0;
}

int bp_sql_select(bp_buf *sql, const bp_read_query *q, const bp_sql_dialect *d, bp_sql_params *p,
                  bp_error *err)
{
    if (q->arch)
        return arch_select(sql, q, d, p, err);
    if (q->dtable)
        return dselect(sql, q, d, p, err);
    if ((unsigned)q->table >= BP_TABLE_COUNT)
        return bp_error_set(err, BP_EINVAL, "no such table");
    const table_shape *t = &g_shapes[q->table];
    int rc = check_filters(q, t, err);
    if (rc != 0)
        return rc;
    builder b = {.sql = sql, .d = d, .p = p};
    p->n = 0;
    if (q->address && t->address_either) {
        /* "from = A OR to = A" as two index lookups, each ordered and limited, merged: one
         * condition with OR would make the planners walk the table in key order instead. */
        if (d->wrap_union)
            st(&b, bp_buf_puts(sql, "SELECT * FROM ("));
        for (int half = 1; half <= 2; half++) {
            st(&b, bp_buf_puts(sql, half == 1 ? "SELECT * FROM (" : " UNION ALL SELECT * FROM ("));
            select_one(&b, q, t, half);
            order_limit(&b, q, t);
            st(&b, bp_buf_printf(sql, ") AS half%d", half));
        }
        if (d->wrap_union)
            st(&b, bp_buf_puts(sql, ") AS halves"));
    } else {
        select_one(&b, q, t, 0);
    }
    order_limit(&b, q, t);
    if (b.rc == BP_EINVAL)
        return bp_error_set(err, BP_EINVAL, "too many filters");
    if (b.rc != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    return 0;
}
