/* readers.c - the contract test's view of what an output stores: one reader per backend,
 * each giving the normalised lines of contract.h.
 *
 * SQL outputs are their tables. File outputs never rewrite a row; a reader applies their
 * reverts (etlcsv.c, jsonl.c): a block is canonical when it was applied once more than it
 * was reverted. A block may be applied, reverted and applied again (a reorg back to a branch
 * seen before): its rows are then in the files twice, and must be whole, identical copies -
 * anything else (a torn batch left behind, rows written twice) is a failure. */
#include <inttypes.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include <yajl/yajl_tree.h>

#include "arch/arch_decode.h"
#include "contract.h"
#include "sink/clickhouse_http.h"
#include "sink/redis_conn.h"
#include "sink/registry.h"
#include "util/url.h"

/* One row as the normalised line "tag c0 c1 ...": NULL cells are "-"; cells from topics_at
 * on are topics, joined by "," into the last field ("-" when none). */
static void emit(ct_lines *out, char tag, const char *const *cells, int n, int topics_at)
{
    char line[2048];
    size_t off = (size_t)snprintf(line, sizeof(line), "%c", tag);
    int last = topics_at >= 0 ? topics_at : n;
    for (int i = 0; i < last; i++)
        off += (size_t)snprintf(line + off, sizeof(line) - off, " %s",
                                cells[i] && cells[i][0] ? cells[i] : "-");
    if (topics_at >= 0) {
        int shown = 0;
        off += (size_t)snprintf(line + off, sizeof(line) - off, " ");
        for (int i = topics_at; i < n; i++)
            if (cells[i] && cells[i][0])
                off += (size_t)snprintf(line + off, sizeof(line) - off, "%s%s", shown++ ? "," : "",
                                        cells[i]);
        if (!shown)
            snprintf(line + off, sizeof(line) - off, "-");
    }
    CT_CHECK(off < sizeof(line), "row too long: %.100s...", line);
    ct_lines_add(out, "%s", line);
}

/* ---- SQL -------------------------------------------------------------------------------- */

static const struct {
    char tag;
    int topics_at; /* -1: no topics */
    const char *sqlite, *pg;
} g_sql[] = {
#define HX(c) "'0x' || encode(" c ", 'hex')"
    {'B', -1, "SELECT number, hash, parent_hash, timestamp, transaction_count FROM blocks",
     "SELECT number, " HX("hash") ", " HX("parent_hash") ", timestamp, transaction_count"
                                                         " FROM blocks"},
    {'T', -1,
     "SELECT block_number, transaction_index, hash, block_hash, from_address, to_address,"
     " value FROM transactions",
     "SELECT block_number, transaction_index, " HX("hash") ", " HX("block_hash") ", " HX(
         "from_address") ", " HX("to_address") ", value FROM transactions"},
    {'R', -1,
     "SELECT block_number, transaction_index, hash, receipt_status, receipt_gas_used"
     " FROM transactions",
     "SELECT block_number, transaction_index, " HX("hash") ", receipt_status, receipt_gas_used"
                                                           " FROM transactions"},
    {'L', 7,
     "SELECT block_number, log_index, block_hash, transaction_hash, transaction_index, address,"
     " data, topic0, topic1, topic2, topic3 FROM logs",
     "SELECT block_number, log_index, " HX("block_hash") ", " HX(
         "transaction_hash") ","
                             " transaction_index, " HX("address") ", " HX("data") ", " HX(
                                 "topic0") ", " HX("topic1") ", " HX("topic2") ", " HX("topic3") " "
                                                                                                 "F"
                                                                                                 "R"
                                                                                                 "O"
                                                                                                 "M"
                                                                                                 " "
                                                                                                 "l"
                                                                                                 "o"
                                                                                                 "g"
                                                                                                 "s"},
#undef HX
};
#define N_SQL (sizeof(g_sql) / sizeof(g_sql[0]))

/* --family arch: the arch_* tables (PostgreSQL: bytea hashes as bare hex, booleans as 0/1,
 * jsonb arrays without the spaces it prints). */
static const struct {
    char tag;
    int topics_at;
    const char *sqlite, *pg;
} g_arch_sql[] = {
#define AX(c) "encode(" c ", 'hex')"
#define JS(c) "replace(" c "::text, ', ', ',')"
    {'A', -1,
     "SELECT height, hash, previous_hash, timestamp, bitcoin_block_height, transaction_count,"
     " merkle_root FROM arch_blocks",
     "SELECT height, " AX("hash") ", " AX("previous_hash") ", timestamp, bitcoin_block_height,"
                                                           " transaction_count, " AX(
                                                               "merkle_root") " FROM arch_blocks"},
    {'X', -1,
     "SELECT block_height, tx_index, txid, block_hash, status, failure_reason, rolled_back,"
     " program_ids, bitcoin_txids FROM arch_transactions",
     "SELECT block_height, tx_index, " AX("txid") ", " AX(
         "block_hash") ", status, failure_reason, "
                       "rolled_back::int, " JS("pr"
                                               "og"
                                               "ra"
                                               "m_"
                                               "id"
                                               "s") ", " JS("bitcoin_txids") " FROM"
                                                                             " arch"
                                                                             "_tran"
                                                                             "sacti"
                                                                             "ons"},
    {'U', -1, "SELECT block_height, tx_index, account, txid FROM arch_account_updates",
     "SELECT block_height, tx_index, " AX("account") ", " AX("txid") " FROM arch_account_updates"},
    {'E', -1, "SELECT key, topic, block_height FROM arch_events",
     "SELECT key, topic, block_height FROM arch_events"},
#undef AX
#undef JS
};
#define N_ARCH_SQL (sizeof(g_arch_sql) / sizeof(g_arch_sql[0]))

/* The queries of the chain's family: query q's tag, topics_at and SQL. */
static size_t n_sql(void)
{
    return ct_arch ? N_ARCH_SQL : N_SQL;
}

static const char *sql_of(size_t q, bool pg, char *tag, int *topics_at)
{
    *tag = ct_arch ? g_arch_sql[q].tag : g_sql[q].tag;
    *topics_at = ct_arch ? g_arch_sql[q].topics_at : g_sql[q].topics_at;
    if (ct_arch)
        return pg ? g_arch_sql[q].pg : g_arch_sql[q].sqlite;
    return pg ? g_sql[q].pg : g_sql[q].sqlite;
}

/* Whether the file has the table the query reads (the last word of its SQL): the Arch tables
 * are made at an Arch chain's first write, so none yet reads as no rows. */
static bool sqlite_has_table(sqlite3 *db, const char *shown, const char *select)
{
    const char *name = strrchr(select, ' ') + 1;
    sqlite3_stmt *st = NULL;
    CT_CHECK(sqlite3_prepare_v2(db,
                                "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') "
                                "AND name = ?1",
                                -1, &st, NULL) == SQLITE_OK,
             "%s: sqlite_master: %s", shown, sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    CT_CHECK(rc == SQLITE_ROW || rc == SQLITE_DONE, "%s: sqlite_master: %s", shown,
             sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc == SQLITE_ROW;
}

static void read_sqlite(const char *url, const char *shown, const char *path, const char *chain,
                        ct_lines *out)
{
    (void)url;
    sqlite3 *db = NULL;
    CT_CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK,
             "%s: cannot open: %s", shown, db ? sqlite3_errmsg(db) : "out of memory");
    for (size_t q = 0; q < n_sql(); q++) {
        char sql[512], tag;
        int topics_at;
        const char *select = sql_of(q, false, &tag, &topics_at);
        if (ct_arch && !sqlite_has_table(db, shown, select))
            continue;
        snprintf(sql, sizeof(sql), "%s WHERE chain = ?1", select);
        sqlite3_stmt *st = NULL;
        CT_CHECK(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s: %s: %s", shown, sql,
                 sqlite3_errmsg(db));
        sqlite3_bind_text(st, 1, chain, -1, SQLITE_STATIC);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *cells[16];
            int n = sqlite3_column_count(st);
            for (int i = 0; i < n; i++)
                cells[i] = (const char *)sqlite3_column_text(st, i); /* NULL for NULL */
            emit(out, tag, cells, n, topics_at);
        }
        CT_CHECK(rc == SQLITE_DONE, "%s: %s: %s", shown, sql, sqlite3_errmsg(db));
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
}

/* postgres://user:pass@host:port/db?schema=S&...: libpq gets the URL without our query
 * parameters; the tables are in schema S (default public). */
static void read_pg(const char *url, const char *shown, const char *target, const char *chain,
                    ct_lines *out)
{
    (void)target;
    char conninfo[1024], schema[128] = "public";
    snprintf(conninfo, sizeof(conninfo), "%s", url);
    char *q = strchr(conninfo, '?');
    if (q) {
        *q++ = '\0';
        for (char *kv = strtok(q, "&"); kv; kv = strtok(NULL, "&"))
            if (strncmp(kv, "schema=", 7) == 0)
                snprintf(schema, sizeof(schema), "%s", kv + 7);
    }
    PGconn *c = PQconnectdb(conninfo);
    CT_CHECK(PQstatus(c) == CONNECTION_OK, "%s: cannot connect: %s", shown, PQerrorMessage(c));
    char *id = PQescapeIdentifier(c, schema, strlen(schema));
    char *lit = PQescapeLiteral(c, chain, strlen(chain));
    for (size_t k = 0; k <= n_sql(); k++) {
        char sql[1024], tag = 0;
        int topics_at = -1;
        if (k == 0)
            snprintf(sql, sizeof(sql), "SET search_path TO %s", id);
        else
            snprintf(sql, sizeof(sql), "%s WHERE chain = %s", sql_of(k - 1, true, &tag, &topics_at),
                     lit);
        PGresult *r = PQexec(c, sql);
        ExecStatusType st = PQresultStatus(r);
        CT_CHECK(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, "%s: %s: %s", shown, sql,
                 PQerrorMessage(c));
        for (int row = 0; k > 0 && row < PQntuples(r); row++) {
            const char *cells[16];
            int n = PQnfields(r);
            for (int i = 0; i < n; i++)
                cells[i] = PQgetisnull(r, row, i) ? NULL : PQgetvalue(r, row, i);
            emit(out, tag, cells, n, topics_at);
        }
        PQclear(r);
    }
    PQfreemem(id);
    PQfreemem(lit);
    PQfinish(c);
}

/* ---- ClickHouse ---------------------------------------------------------------------------- */

#define CH_HX(c) "concat('0x', lower(hex(" c ")))"

/* What a query sees with FINAL (clickhouse.c: rows are +1 / -1, collapsed per key), each row's
 * _sign last (it must be +1: a lone -1 is a revert of a row never written). */
static const struct {
    char tag;
    int topics_at;
    const char *table, *sql;
} g_ch
    [] =
        {
            {'B', -1, "blocks",
             "SELECT number, " CH_HX("hash") ", " CH_HX(
                 "parent_hash") ", timestamp, transaction_count"},
            {'T', -1, "transactions",
             "SELECT block_number, transaction_index, " CH_HX("hash") ", " CH_HX(
                 "block_hash") ", " CH_HX("from_address") ", " CH_HX("to_address") ", value"},
            {'R', -1, "transactions",
             "SELECT block_number, transaction_index, " CH_HX(
                 "hash") ", receipt_status, receipt_gas_used"},
            {'L', 7, "logs",
             "SELECT block_number, log_index, " CH_HX("block_hash") ", " CH_HX("transaction_hash") ", transaction_index, " CH_HX(
                 "address") ", " CH_HX("data") ", " CH_HX("topic0") ", " CH_HX("topic1") ", " CH_HX("topic2") ", " CH_HX("topic3")},
};

/* --family arch: the Arch tables as SQLite shows them (hashes bare hex). rolled_back: the view
 * arch_transactions_current (fetched, then the rollback events: clickhouse_arch.h), whose rows
 * are arch_transactions FINAL's (sum(_sign) of the table checks them); arch_events is no
 * CollapsingMergeTree (no _sign): FINAL dedups its keys. */
#define CH_AX(c) "lower(hex(" c "))"
static const struct {
    char tag;
    int topics_at;
    const char *table, *sql;
    const char *from; /* NULL: table FINAL, its rows' _sign checked */
} g_ch_arch[] = {
    {'A', -1, "arch_blocks",
     "SELECT height, " CH_AX("hash") ", " CH_AX(
         "previous_hash") ", timestamp, "
                          "bitcoin_block_height, transaction_count, " CH_AX("merkle_root"),
     NULL},
    {'X', -1, "arch_transactions",
     "SELECT block_height, tx_index, " CH_AX("txid") ", " CH_AX(
         "block_hash") ", status, "
                       "failure_reason, rolled_back, program_ids, bitcoin_txids",
     "arch_transactions_current"},
    {'U', -1, "arch_account_updates",
     "SELECT block_height, tx_index, " CH_AX("account") ", " CH_AX("txid"), NULL},
    {'E', -1, "arch_events", "SELECT key, topic, block_height", "arch_events FINAL"},
};
#undef CH_AX

static void ch_run(bp_ch_http *h, const char *shown, const char *sql, bp_buf *ans)
{
    bp_error e = {0};
    CT_CHECK(bp_ch_query(h, sql, ans, "contract reader", &e) == 0, "%s: %s: %s", shown, sql, e.msg);
}

/* clickhouse://user:pass@host:port/db?options: the target and options as the output gets
 * them (the registry takes the options out of the URL). */
static void read_ch(const char *url, const char *shown, const char *target, const char *chain,
                    ct_lines *out)
{
    (void)target;
    bp_sink_resolved r;
    bp_ch_server srv;
    bp_ch_http *h = NULL;
    bp_error e = {0};
    CT_CHECK(bp_sink_resolve(url, NULL, &r, &e) == 0, "%s: %s", shown, e.msg);
    const char *tls = bp_sink_opt(&r.opts, "tls");
    CT_CHECK(bp_ch_server_parse(&srv, r.target.data, tls && !strcmp(tls, "1"), &e) == 0, "%s: %s",
             shown, e.msg);
    const char *db = srv.database ? srv.database : bp_sink_opt(&r.opts, "database");
    CT_CHECK(bp_ch_http_new(&h, &srv, db, 120000, 0, &e) == 0, "%s: %s", shown, e.msg);
    bp_buf sql, ans;
    bp_buf_init(&sql, 0);
    bp_buf_init(&ans, 0);
    size_t nq = ct_arch ? sizeof(g_ch_arch) / sizeof(g_ch_arch[0]) : sizeof(g_ch) / sizeof(g_ch[0]);
    for (size_t q = 0; q < nq; q++) {
        char tag = ct_arch ? g_ch_arch[q].tag : g_ch[q].tag;
        int topics_at = ct_arch ? g_ch_arch[q].topics_at : g_ch[q].topics_at;
        const char *table = ct_arch ? g_ch_arch[q].table : g_ch[q].table;
        const char *from = ct_arch ? g_ch_arch[q].from : NULL;
        bp_buf_reset(&sql);
        if (from)
            bp_buf_printf(&sql, "%s FROM %s WHERE chain = ", g_ch_arch[q].sql, from);
        else
            bp_buf_printf(&sql, "%s, _sign FROM %s FINAL WHERE chain = ",
                          ct_arch ? g_ch_arch[q].sql : g_ch[q].sql, table);
        bp_ch_quote(&sql, chain);
        ch_run(h, shown, sql.data, &ans);
        char *p = ans.data, *cells[16];
        size_t rows = 0;
        for (int n; (n = bp_ch_tsv_row(&p, cells, 16)) > 0; rows++) {
            CT_CHECK(from || (cells[n - 1] && !strcmp(cells[n - 1], "1")),
                     "%s: %s: a row with _sign %s under FINAL (%s ...)", shown, table,
                     cells[n - 1] ? cells[n - 1] : "NULL", cells[0] ? cells[0] : "NULL");
            emit(out, tag, (const char *const *)cells, from ? n : n - 1, topics_at);
        }
        if (tag == 'E')
            continue; /* no _sign */
        /* the other way to read the tables: sign weights, no FINAL */
        bp_buf_reset(&sql);
        bp_buf_printf(&sql, "SELECT sum(_sign) FROM %s WHERE chain = ", table);
        bp_ch_quote(&sql, chain);
        ch_run(h, shown, sql.data, &ans);
        CT_CHECK(strtoull(ans.data, NULL, 10) == rows,
                 "%s: %s: sum(_sign) is %s, FINAL shows %zu rows", shown, table, ans.data, rows);
    }
    bp_buf_release(&sql);
    bp_buf_release(&ans);
    bp_ch_http_free(h);
    bp_ch_server_release(&srv);
    bp_sink_resolved_release(&r);
}

/* ---- file outputs ------------------------------------------------------------------------ */

typedef struct fblock {
    char *hash;
    char *line; /* its B line */
    int applied, reverted;
} fblock;

typedef struct frow {
    char *block_hash;
    char *line; /* a T, R or L line; Arch: X (rolled_back as ROLLED), U or E */
} frow;

/* --family arch: a transaction's rolled_back as the output says it now - its row's or a later
 * rollback state change's, whichever came last (arch_rows.h) - and the block of its last row
 * (the JSONL account updates name their transaction, not their block). */
#define ROLLED '\x01' /* an X line's rolled_back until files_result puts the state in */
typedef struct fstate {
    char *txid, *block_hash;
    char rolled_back; /* '0' or '1' */
} fstate;

/* What the files of one output say, before the reverts are applied. */
typedef struct files {
    const char *url;
    bool ordered; /* reverts are in order with the block rows (jsonl), not apart (etl-csv) */
    fblock *blocks;
    size_t nb, capb;
    frow *rows;
    size_t nr, capr;
    fstate *states;
    size_t ns, caps;
} files;

static fblock *fblock_find(const files *f, const char *hash)
{
    for (size_t i = 0; i < f->nb; i++)
        if (strcmp(f->blocks[i].hash, hash) == 0)
            return &f->blocks[i];
    return NULL;
}

static fblock *fblock_get(files *f, const char *hash)
{
    fblock *have = fblock_find(f, hash);
    if (have)
        return have;
    if (f->nb == f->capb) {
        f->capb = f->capb ? 2 * f->capb : 64;
        f->blocks = realloc(f->blocks, f->capb * sizeof(*f->blocks));
        CT_CHECK(f->blocks, "out of memory");
    }
    fblock *b = &f->blocks[f->nb++];
    memset(b, 0, sizeof(*b));
    b->hash = strdup(hash);
    return b;
}

/* A block row (B, or A with --family arch: hash in cells[1] either way). */
static void file_apply(files *f, const char *where, const char *const *cells)
{
    fblock *b = fblock_get(f, cells[1]);
    ct_lines one = {0};
    emit(&one, ct_arch ? 'A' : 'B', cells, ct_arch ? 7 : 5, -1);
    CT_CHECK(!b->line || strcmp(b->line, one.v[0]) == 0,
             "%s: %s: block %s applied twice with different rows:\n  %s\n  %s", f->url, where,
             cells[1], b->line, one.v[0]);
    if (!b->line)
        b->line = strdup(one.v[0]);
    ct_lines_free(&one);
    CT_CHECK(!f->ordered || b->applied == b->reverted,
             "%s: %s: block %s applied again without a revert in between", f->url, where, cells[1]);
    b->applied++;
}

static void file_revert(files *f, const char *where, const char *hash)
{
    fblock *b = fblock_get(f, hash);
    CT_CHECK(f->ordered ? b->applied == b->reverted + 1 : b->reverted < b->applied,
             "%s: %s: revert of block %s, which is not applied there", f->url, where, hash);
    b->reverted++;
}

static fstate *fstate_get(const files *f, const char *txid)
{
    for (size_t i = 0; i < f->ns; i++)
        if (strcmp(f->states[i].txid, txid) == 0)
            return &f->states[i];
    return NULL;
}

/* A transaction's state from a row (block_hash set) or a rollback state change (NULL). */
static void fstate_set(files *f, const char *txid, const char *block_hash, bool rolled_back)
{
    fstate *st = fstate_get(f, txid);
    if (!st) {
        if (f->ns == f->caps) {
            f->caps = f->caps ? 2 * f->caps : 64;
            f->states = realloc(f->states, f->caps * sizeof(*f->states));
            CT_CHECK(f->states, "out of memory");
        }
        st = &f->states[f->ns++];
        *st = (fstate){strdup(txid), NULL, '0'};
    }
    if (block_hash) {
        free(st->block_hash);
        st->block_hash = strdup(block_hash);
    }
    st->rolled_back = rolled_back ? '1' : '0';
}

static void file_row(files *f, char tag, const char *block_hash, const char *const *cells, int n,
                     int topics_at)
{
    ct_lines one = {0};
    emit(&one, tag, cells, n, topics_at);
    if (f->nr == f->capr) {
        f->capr = f->capr ? 2 * f->capr : 256;
        f->rows = realloc(f->rows, f->capr * sizeof(*f->rows));
        CT_CHECK(f->rows, "out of memory");
    }
    f->rows[f->nr++] = (frow){strdup(block_hash), one.v[0]};
    free(one.v);
}

static const files *g_sorting; /* the rows qsort compares (qsort has no context pointer) */

/* By block hash, then kind, then place in the file. */
static int cmp_row(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    const frow *x = &g_sorting->rows[i], *y = &g_sorting->rows[j];
    int c = strcmp(x->block_hash, y->block_hash);
    if (c == 0)
        c = x->line[0] - y->line[0];
    return c ? c : (i > j) - (i < j);
}

/* The rows of one kind of one block, row[0..m) in file order: b->applied whole identical
 * copies, one of them kept when the block is canonical. */
static void block_rows(const files *f, const fblock *b, const size_t *row, size_t m, ct_lines *out)
{
    const frow *r = f->rows;
    char tag = r[row[0]].line[0];
    CT_CHECK(b && b->applied > 0, "%s: a row of block %s, which was never applied:\n  %s", f->url,
             r[row[0]].block_hash, r[row[0]].line);
    size_t k = (size_t)b->applied, chunk = m / k;
    CT_CHECK(m % k == 0, "%s: block %s was applied %zu times but has %zu '%c' rows", f->url,
             b->hash, k, m, tag);
    for (size_t i = chunk; i < m; i++)
        CT_CHECK(strcmp(r[row[i]].line, r[row[i % chunk]].line) == 0,
                 "%s: block %s: its '%c' rows are not whole copies of one application:\n  %s\n"
                 "  %s",
                 f->url, b->hash, tag, r[row[i % chunk]].line, r[row[i]].line);
    for (size_t i = 0; b->applied - b->reverted == 1 && i < chunk; i++) {
        char *line = r[row[i]].line, *rolled = strchr(line, ROLLED);
        if (rolled) {
            char txid[BP_ARCH_HEX];
            CT_CHECK(sscanf(line, "X %*s %*s %64s", txid) == 1, "bad X line %s", line);
            const fstate *st = fstate_get(f, txid);
            CT_CHECK(st, "%s: no state of transaction %s", f->url, txid);
            *rolled = st->rolled_back;
        }
        ct_lines_add(out, "%s", line);
    }
}

static void files_free(files *f)
{
    for (size_t i = 0; i < f->ns; i++) {
        free(f->states[i].txid);
        free(f->states[i].block_hash);
    }
    free(f->states);
    for (size_t i = 0; i < f->nb; i++) {
        free(f->blocks[i].hash);
        free(f->blocks[i].line);
    }
    for (size_t i = 0; i < f->nr; i++) {
        free(f->rows[i].block_hash);
        free(f->rows[i].line);
    }
    free(f->blocks);
    free(f->rows);
}

static void files_result(files *f, ct_lines *out)
{
    for (size_t i = 0; i < f->nb; i++) {
        fblock *b = &f->blocks[i];
        int live = b->applied - b->reverted;
        CT_CHECK(live == 0 || live == 1, "%s: block %s applied %d times, reverted %d times", f->url,
                 b->hash, b->applied, b->reverted);
        if (live && b->line) /* not the events' pseudo block */
            ct_lines_add(out, "%s", b->line);
    }
    size_t *order = malloc((f->nr + 1) * sizeof(*order));
    CT_CHECK(order, "out of memory");
    for (size_t i = 0; i < f->nr; i++)
        order[i] = i;
    g_sorting = f;
    qsort(order, f->nr, sizeof(*order), cmp_row);
    for (size_t i = 0, j; i < f->nr; i = j) {
        const frow *first = &f->rows[order[i]];
        j = i + 1;
        while (j < f->nr && strcmp(f->rows[order[j]].block_hash, first->block_hash) == 0 &&
               f->rows[order[j]].line[0] == first->line[0])
            j++;
        block_rows(f, fblock_find(f, first->block_hash), order + i, j - i, out);
    }
    free(order);
    files_free(f);
}

/* Whole file, NUL-terminated ("" when absent: an entity with no rows may have no file). */
static char *slurp(const char *dir, const char *name, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, name);
    FILE *fp = fopen(path, "rb");
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    CT_CHECK(m, "out of memory");
    char chunk[65536];
    size_t n;
    while (fp && (n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(m);
    if (fp)
        fclose(fp);
    return text;
}

/* ---- etl-csv ----------------------------------------------------------------------------- */

#define CSV_MAX_CELLS 40

/* Splits the line at *p into cells (in place; quotes removed, "" unescaped); advances *p
 * past it. Returns the number of cells, 0 at the end of the text. */
static int csv_line(char **p, char **cells)
{
    char *s = *p;
    if (!*s)
        return 0;
    int n = 0;
    for (;;) {
        char *w = s, *start = s;
        if (*s == '"') {
            for (s++;; s++) {
                if (*s == '"' && s[1] == '"')
                    *w++ = '"', s++;
                else if (*s == '"' || !*s)
                    break;
                else
                    *w++ = *s;
            }
            if (*s)
                s++;
        } else {
            while (*s && *s != ',' && *s != '\n')
                *w++ = *s++;
        }
        char end = *s;
        *w = '\0';
        CT_CHECK(n < CSV_MAX_CELLS, "csv: more than %d cells", CSV_MAX_CELLS);
        cells[n++] = start;
        if (end == ',') {
            s++;
            continue;
        }
        *p = end ? s + 1 : s;
        return n;
    }
}

/* The index of column name in the header, or a failure naming the file. */
static int csv_col(char **header, int n, const char *name, const char *path)
{
    for (int i = 0; i < n; i++)
        if (strcmp(header[i], name) == 0)
            return i;
    ct_die("%s: no column '%s' in its header", path, name);
}

/* Calls row(f, where, cells-in-cols-order) for each data row of DIR/name. */
static void csv_each(files *f, const char *dir, const char *name, const char *const *cols,
                     int ncols, void (*row)(files *, const char *, const char *const *))
{
    char path[4200], where[4300];
    char *text = slurp(dir, name, path, sizeof(path)), *p = text;
    char *header[CSV_MAX_CELLS], *cells[CSV_MAX_CELLS];
    int nh = csv_line(&p, header), idx[16] = {0};
    for (int i = 0; i < ncols && nh > 0; i++)
        idx[i] = csv_col(header, nh, cols[i], path);
    int n;
    for (int line = 2; (n = csv_line(&p, cells)) > 0; line++) {
        CT_CHECK(n == nh, "%s:%d: %d cells, the header has %d", path, line, n, nh);
        const char *mine[16];
        for (int i = 0; i < ncols; i++)
            mine[i] = cells[idx[i]];
        snprintf(where, sizeof(where), "%s:%d", name, line);
        row(f, where, mine);
    }
    free(text);
}

static void csv_block(files *f, const char *where, const char *const *c)
{
    file_apply(f, where, c);
}

static void csv_revert(files *f, const char *where, const char *const *c)
{
    file_revert(f, where, c[0]);
}

/* The block hash is the last requested column of these. */
static void csv_tx(files *f, const char *where, const char *const *c)
{
    (void)where;
    file_row(f, 'T', c[3], c, 7, -1);
}

static void csv_receipt(files *f, const char *where, const char *const *c)
{
    (void)where;
    file_row(f, 'R', c[5], c, 5, -1);
}

static void csv_log(files *f, const char *where, const char *const *c)
{
    (void)where;
    file_row(f, 'L', c[2], c, 8, 7);
}

static void read_etlcsv(const char *url, const char *shown, const char *dir, const char *chain,
                        ct_lines *out)
{
    (void)url;
    (void)chain; /* the ethereum-etl files have no chain column */
    static const char *const bcols[] = {"number", "hash", "parent_hash", "timestamp",
                                        "transaction_count"};
    static const char *const rvcols[] = {"block_hash"};
    static const char *const tcols[] = {"block_number", "transaction_index", "hash", "block_hash",
                                        "from_address", "to_address",        "value"};
    static const char *const rcols[] = {"block_number", "transaction_index", "transaction_hash",
                                        "status",       "gas_used",          "block_hash"};
    static const char *const lcols[] = {
        "block_number",      "log_index", "block_hash", "transaction_hash",
        "transaction_index", "address",   "data",       "topics"};
    files f = {.url = shown, .ordered = false};
    csv_each(&f, dir, "blocks.csv", bcols, 5, csv_block);
    csv_each(&f, dir, "reverts.csv", rvcols, 1, csv_revert);
    csv_each(&f, dir, "transactions.csv", tcols, 7, csv_tx);
    csv_each(&f, dir, "receipts.csv", rcols, 6, csv_receipt);
    csv_each(&f, dir, "logs.csv", lcols, 8, csv_log);
    files_result(&f, out);
}

/* ---- jsonl ------------------------------------------------------------------------------- */

/* The value of key as normalised text into buf: strings and numbers as written, null "",
 * an array of strings joined by ",". A missing key is a failure. */
static const char *jtext(yajl_val obj, const char *key, char *buf, size_t cap, const char *where)
{
    const char *path[] = {key, NULL};
    yajl_val v = yajl_tree_get(obj, path, yajl_t_any);
    CT_CHECK(v, "%s: no key \"%s\"", where, key);
    buf[0] = '\0';
    if (YAJL_IS_STRING(v))
        snprintf(buf, cap, "%s", YAJL_GET_STRING(v));
    else if (YAJL_IS_NUMBER(v))
        snprintf(buf, cap, "%s", YAJL_GET_NUMBER(v));
    else if (YAJL_IS_ARRAY(v))
        for (size_t i = 0, off = 0; i < v->u.array.len; i++) {
            const char *s = YAJL_GET_STRING(v->u.array.values[i]);
            CT_CHECK(s, "%s: \"%s\"[%zu] is not a string", where, key, i);
            off += (size_t)snprintf(buf + off, cap - off, "%s%s", i ? "," : "", s);
        }
    else
        CT_CHECK(YAJL_IS_NULL(v), "%s: \"%s\" is neither text, number, list nor null", where, key);
    return buf;
}

/* Calls line(f, where, obj) for each line of DIR/name, checking its type and chain. */
static void jsonl_each(files *f, const char *dir, const char *name, const char *chain,
                       void (*line)(files *, const char *, yajl_val))
{
    char path[4200], where[4300], buf[256], msg[256];
    char *text = slurp(dir, name, path, sizeof(path));
    int no = 1;
    for (char *p = text, *nl; *p; p = nl + 1, no++) {
        nl = strchr(p, '\n');
        CT_CHECK(nl, "%s:%d: the last line has no newline (a torn write?)", path, no);
        *nl = '\0';
        snprintf(where, sizeof(where), "%s:%d", path, no);
        yajl_val obj = yajl_tree_parse(p, msg, sizeof(msg));
        CT_CHECK(obj, "%s: not JSON: %s", where, msg);
        CT_CHECK(strcmp(jtext(obj, "chain", buf, sizeof(buf), where), chain) == 0,
                 "%s: chain \"%s\", expected \"%s\"", where, buf, chain);
        line(f, where, obj);
        yajl_tree_free(obj);
    }
    free(text);
}

/* Normalised cells of obj's keys[0..n) into the caller's storage. */
static void jcells(yajl_val obj, const char *const *keys, int n, char (*buf)[1024],
                   const char **cells, const char *where)
{
    for (int i = 0; i < n; i++)
        cells[i] = jtext(obj, keys[i], buf[i], sizeof(buf[i]), where);
}

static void jsonl_block(files *f, const char *where, yajl_val obj)
{
    static const char *const keys[] = {"number", "hash", "parent_hash", "timestamp",
                                       "transaction_count"};
    char buf[5][1024], type[32];
    const char *cells[5];
    jtext(obj, "type", type, sizeof(type), where);
    if (strcmp(type, "revert") == 0) {
        file_revert(f, where, jtext(obj, "hash", buf[0], sizeof(buf[0]), where));
        return;
    }
    CT_CHECK(strcmp(type, "block") == 0, "%s: type \"%s\" in blocks.jsonl", where, type);
    jcells(obj, keys, 5, buf, cells, where);
    file_apply(f, where, cells);
}

static void jsonl_tx(files *f, const char *where, yajl_val obj)
{
    static const char *const tkeys[] = {"block_number", "transaction_index", "hash", "block_hash",
                                        "from_address", "to_address",        "value"};
    static const char *const rkeys[] = {"block_number", "transaction_index", "hash",
                                        "receipt_status", "receipt_gas_used"};
    char buf[7][1024];
    const char *cells[7];
    jcells(obj, tkeys, 7, buf, cells, where);
    file_row(f, 'T', cells[3], cells, 7, -1);
    char bh[128];
    snprintf(bh, sizeof(bh), "%s", cells[3]);
    jcells(obj, rkeys, 5, buf, cells, where);
    file_row(f, 'R', bh, cells, 5, -1);
}

static void jsonl_log(files *f, const char *where, yajl_val obj)
{
    static const char *const keys[] = {
        "block_number",      "log_index", "block_hash", "transaction_hash",
        "transaction_index", "address",   "data",       "topics"};
    char buf[8][1024];
    const char *cells[8];
    jcells(obj, keys, 8, buf, cells, where);
    file_row(f, 'L', cells[2], cells, 8, 7);
}

/* ---- Arch rows in the file and stream outputs (--family arch) ----------------------------
 * The objects of arch/arch_json.h: a JSONL line with a "type" in front, a stream entry's data.
 * Values as SQLite stores them but for rolled_back (true / false: 1 / 0) and the JSON columns
 * (nested arrays: written back compact). A rollback state change (a "rollback" / "reapply"
 * line, a stream entry whose data has a "cause") sets its transaction's rolled_back. */

static const char *const g_arch_block_keys[] = {
    "height",     "hash", "previous_hash", "timestamp", "bitcoin_block_height", "transaction_count",
    "merkle_root"};
static const char *const g_arch_tx_keys[] = {"block_height", "tx_index",    "txid",
                                             "block_hash",   "status",      "failure_reason",
                                             "rolled_back",  "program_ids", "bitcoin_txids"};
static const char *const g_arch_acc_keys[] = {"block_height", "tx_index", "account", "txid"};
static const char *const g_arch_event_keys[] = {"key", "topic", "block_height"};

/* jtext, and true / false as 1 / 0, an array of strings as compact JSON. */
static const char *ajtext(yajl_val obj, const char *key, char *buf, size_t cap, const char *where)
{
    const char *path[] = {key, NULL};
    yajl_val v = yajl_tree_get(obj, path, yajl_t_any);
    CT_CHECK(v, "%s: no key \"%s\"", where, key);
    if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
        snprintf(buf, cap, "%d", YAJL_IS_TRUE(v));
        return buf;
    }
    if (!YAJL_IS_ARRAY(v))
        return jtext(obj, key, buf, cap, where);
    size_t off = (size_t)snprintf(buf, cap, "[");
    for (size_t i = 0; i < v->u.array.len && off < cap; i++) {
        const char *s = YAJL_GET_STRING(v->u.array.values[i]);
        CT_CHECK(s, "%s: \"%s\"[%zu] is not a string", where, key, i);
        off += (size_t)snprintf(buf + off, cap - off, "%s\"%s\"", i ? "," : "", s);
    }
    if (off < cap)
        off += (size_t)snprintf(buf + off, cap - off, "]");
    CT_CHECK(off < cap, "%s: \"%s\" too long", where, key);
    return buf;
}

static void ajcells(yajl_val obj, const char *const *keys, int n, char (*buf)[1024],
                    const char **cells, const char *where)
{
    for (int i = 0; i < n; i++)
        cells[i] = ajtext(obj, keys[i], buf[i], sizeof(buf[i]), where);
}

static bool has_key(yajl_val obj, const char *key)
{
    const char *path[] = {key, NULL};
    return obj && yajl_tree_get(obj, path, yajl_t_any);
}

/* A rollback state change: rolled_back must be what the entry's kind says. */
static void arch_state(files *f, const char *where, yajl_val obj, bool back)
{
    char buf[2][1024];
    const char *txid = ajtext(obj, "txid", buf[0], sizeof(buf[0]), where);
    const char *rb = ajtext(obj, "rolled_back", buf[1], sizeof(buf[1]), where);
    CT_CHECK(strcmp(rb, back ? "1" : "0") == 0, "%s: a %s with rolled_back %s", where,
             back ? "rollback" : "re-apply", rb);
    fstate_set(f, txid, NULL, back);
}

static void arch_block_row(files *f, const char *where, yajl_val obj, const char *hash)
{
    char buf[7][1024];
    const char *cells[7];
    ajcells(obj, g_arch_block_keys, 7, buf, cells, where);
    CT_CHECK(!hash || strcmp(cells[1], hash) == 0, "%s: entry hash %s, data hash %s", where, hash,
             cells[1]);
    file_apply(f, where, cells);
}

/* A transaction row: its rolled_back now, in the X line when its block is kept. */
static void arch_tx_row(files *f, const char *where, yajl_val obj)
{
    char buf[9][1024];
    const char *cells[9];
    ajcells(obj, g_arch_tx_keys, 9, buf, cells, where);
    fstate_set(f, cells[2], cells[3], strcmp(cells[6], "1") == 0);
    static const char rolled[] = {ROLLED, '\0'};
    cells[6] = rolled;
    file_row(f, 'X', cells[3], cells, 9, -1);
}

/* An account update of block hash (NULL: its transaction's, from the rows read before). */
static void arch_acc_row(files *f, const char *where, yajl_val obj, const char *hash)
{
    char buf[4][1024];
    const char *cells[4];
    ajcells(obj, g_arch_acc_keys, 4, buf, cells, where);
    if (!hash) {
        const fstate *st = fstate_get(f, cells[3]);
        CT_CHECK(st && st->block_hash, "%s: an account update of transaction %s, which has no row",
                 where, cells[3]);
        hash = st->block_hash;
    }
    file_row(f, 'U', hash, cells, 4, -1);
}

/* Events belong to no block: one pseudo block "events", applied once, holds them. */
#define EVENTS_BLOCK "events"

static void arch_event_row(files *f, const char *where, yajl_val obj)
{
    char buf[3][1024];
    const char *cells[3];
    ajcells(obj, g_arch_event_keys, 3, buf, cells, where);
    fblock *b = fblock_get(f, EVENTS_BLOCK);
    b->applied = 1;
    file_row(f, 'E', EVENTS_BLOCK, cells, 3, -1);
}

static int g_arch_file; /* the arch_*.jsonl file being read: 0..3 as its table */

static void jsonl_arch_line(files *f, const char *where, yajl_val obj)
{
    static const char *const in[] = {"revert arch_block", "arch_transaction rollback reapply",
                                     "arch_account_update", "arch_event"};
    char type[32], hash[1024], word[40];
    jtext(obj, "type", type, sizeof(type), where);
    snprintf(word, sizeof(word), " %s ", type);
    char list[64];
    snprintf(list, sizeof(list), " %s ", in[g_arch_file]);
    CT_CHECK(strstr(list, word), "%s: a line of type \"%s\" in that file", where, type);
    if (strcmp(type, "revert") == 0)
        file_revert(f, where, jtext(obj, "hash", hash, sizeof(hash), where));
    else if (strcmp(type, "arch_block") == 0)
        arch_block_row(f, where, obj, NULL);
    else if (strcmp(type, "arch_transaction") == 0)
        arch_tx_row(f, where, obj);
    else if (strcmp(type, "rollback") == 0 || strcmp(type, "reapply") == 0)
        arch_state(f, where, obj, type[1] == 'o');
    else if (strcmp(type, "arch_account_update") == 0)
        arch_acc_row(f, where, obj, NULL);
    else if (strcmp(type, "arch_event") == 0)
        arch_event_row(f, where, obj);
    else
        ct_die("%s: type \"%s\"", where, type);
}

/* The four arch_*.jsonl files, in the order that puts rows before what refers to them. */
static void read_jsonl_arch(const char *dir, const char *chain, files *f)
{
    static const char *const names[] = {"arch_blocks.jsonl", "arch_transactions.jsonl",
                                        "arch_account_updates.jsonl", "arch_events.jsonl"};
    for (g_arch_file = 0; g_arch_file < 4; g_arch_file++)
        jsonl_each(f, dir, names[g_arch_file], chain, jsonl_arch_line);
}

static void read_jsonl(const char *url, const char *shown, const char *dir, const char *chain,
                       ct_lines *out)
{
    (void)url;
    files f = {.url = shown, .ordered = true};
    if (ct_arch) {
        read_jsonl_arch(dir, chain, &f);
        files_result(&f, out);
        return;
    }
    jsonl_each(&f, dir, "blocks.jsonl", chain, jsonl_block);
    jsonl_each(&f, dir, "transactions.jsonl", chain, jsonl_tx);
    jsonl_each(&f, dir, "logs.jsonl", chain, jsonl_log);
    files_result(&f, out);
}

/* ---- stream outputs (Redis, Kafka) ------------------------------------------------------
 * Entries of a stream per entity: type apply / revert, the block's hash, and data (the row as
 * JSON with the SQL column names). The blocks stream carries the applies and reverts in order
 * (as blocks.jsonl does); the other streams' rows belong to their block by hash. */

/* One entry: type, block hash, data (parsed; NULL for a revert). */
typedef void (*stream_fn)(files *f, const char *where, const char *type, const char *hash,
                          yajl_val data);

static void stream_block(files *f, const char *where, const char *type, const char *hash,
                         yajl_val data)
{
    static const char *const keys[] = {"number", "hash", "parent_hash", "timestamp",
                                       "transaction_count"};
    char buf[5][1024];
    const char *cells[5];
    if (strcmp(type, "revert") == 0) {
        file_revert(f, where, hash);
        return;
    }
    CT_CHECK(strcmp(type, "apply") == 0 && data, "%s: type \"%s\"", where, type);
    jcells(data, keys, 5, buf, cells, where);
    CT_CHECK(strcmp(cells[1], hash) == 0, "%s: entry hash %s, data hash %s", where, hash, cells[1]);
    file_apply(f, where, cells);
}

static void stream_tx(files *f, const char *where, const char *type, const char *hash,
                      yajl_val data)
{
    (void)hash;
    if (strcmp(type, "revert") != 0)
        jsonl_tx(f, where, data);
}

static void stream_log(files *f, const char *where, const char *type, const char *hash,
                       yajl_val data)
{
    static const char *const keys[] = {
        "block_number", "log_index", "block_hash", "transaction_hash", "transaction_index",
        "address",      "data",      "topic0",     "topic1",           "topic2",
        "topic3"};
    char buf[11][1024];
    const char *cells[11];
    (void)hash;
    if (strcmp(type, "revert") == 0)
        return;
    jcells(data, keys, 11, buf, cells, where);
    file_row(f, 'L', cells[2], cells, 11, 7);
}

/* --family arch: the arch_* streams. A revert entry with data is a rollback state change of a
 * transaction (stream.h), one without a block's revert (arch_blocks) or nothing more (the
 * other streams' rows go with their block). */
static void stream_arch_block(files *f, const char *where, const char *type, const char *hash,
                              yajl_val data)
{
    if (strcmp(type, "revert") == 0) {
        CT_CHECK(!data, "%s: an arch_blocks revert with data", where);
        file_revert(f, where, hash);
    } else {
        arch_block_row(f, where, data, hash);
    }
}

static void stream_arch_tx(files *f, const char *where, const char *type, const char *hash,
                           yajl_val data)
{
    (void)hash;
    if (has_key(data, "cause"))
        arch_state(f, where, data, strcmp(type, "revert") == 0);
    else if (strcmp(type, "apply") == 0)
        arch_tx_row(f, where, data);
    else
        CT_CHECK(!data, "%s: a revert whose data is no state change", where);
}

/* The state changes here repeat arch_transactions' (read before: checked, not applied again). */
static void stream_arch_acc(files *f, const char *where, const char *type, const char *hash,
                            yajl_val data)
{
    char buf[1024];
    if (has_key(data, "cause"))
        CT_CHECK(strcmp(ajtext(data, "rolled_back", buf, sizeof(buf), where),
                        strcmp(type, "revert") == 0 ? "1" : "0") == 0,
                 "%s: a %s with rolled_back %s", where, type, buf);
    else if (strcmp(type, "apply") == 0)
        arch_acc_row(f, where, data, hash);
    else
        CT_CHECK(!data, "%s: a revert whose data is no state change", where);
}

static void stream_arch_event(files *f, const char *where, const char *type, const char *hash,
                              yajl_val data)
{
    (void)hash;
    CT_CHECK(strcmp(type, "apply") == 0, "%s: an arch_events %s", where, type);
    arch_event_row(f, where, data);
}

static const char *const g_arch_streams[] = {"arch_blocks", "arch_transactions",
                                             "arch_account_updates", "arch_events"};
static const stream_fn g_arch_stream_fns[] = {stream_arch_block, stream_arch_tx, stream_arch_acc,
                                              stream_arch_event};

/* An entry's fields, checked, to fn. */
static void stream_entry(files *f, const char *where, const char *type, const char *chain,
                         const char *entry_chain, const char *hash, const char *data, stream_fn fn)
{
    char msg[256];
    CT_CHECK(type && entry_chain && hash && data, "%s: an entry lacks type, chain, hash or data",
             where);
    CT_CHECK(strcmp(entry_chain, chain) == 0, "%s: chain \"%s\", expected \"%s\"", where,
             entry_chain, chain);
    CT_CHECK(strcmp(type, "apply") == 0 || strcmp(type, "revert") == 0, "%s: type \"%s\"", where,
             type);
    yajl_val obj = NULL;
    if (strcmp(type, "apply") == 0 || (ct_arch && strcmp(data, "null") != 0)) {
        obj = yajl_tree_parse(data, msg, sizeof(msg));
        CT_CHECK(obj && YAJL_IS_OBJECT(obj), "%s: data is not a JSON object: %s", where, msg);
    }
    fn(f, where, type, hash, obj);
    yajl_tree_free(obj);
}

static const char *rfield(const redisReply *kv, const char *name)
{
    for (size_t i = 0; kv && kv->type == REDIS_REPLY_ARRAY && i + 1 < kv->elements; i += 2)
        if (strcmp(kv->element[i]->str, name) == 0)
            return kv->element[i + 1]->str;
    return NULL;
}

static void redis_each(files *f, bp_redis *c, const char *prefix, const char *entity,
                       const char *chain, stream_fn fn)
{
    char key[512], where[700];
    snprintf(key, sizeof(key), "%s%s:%s", prefix, entity, chain);
    const redisReply *r = NULL;
    bp_error e = {0};
    CT_CHECK(bp_redis_call(c, 4, (const char *[]){"XRANGE", key, "-", "+"}, &r, &e) == 0,
             "%s: XRANGE %s: %s", f->url, key, e.msg);
    CT_CHECK(r->type == REDIS_REPLY_ARRAY, "%s: XRANGE %s: not an array", f->url, key);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *ent = r->element[i];
        snprintf(where, sizeof(where), "%s: %s entry %s", f->url, key, ent->element[0]->str);
        const redisReply *kv = ent->element[1];
        stream_entry(f, where, rfield(kv, "type"), chain, rfield(kv, "chain"), rfield(kv, "hash"),
                     rfield(kv, "data"), fn);
    }
}

/* redis[s]://...?prefix=P&tls_ca=FILE: the streams {P}{entity}:{chain} from the first entry. */
static void read_redis(const char *url, const char *shown, const char *target, const char *chain,
                       ct_lines *out)
{
    (void)target;
    bp_sink_resolved res;
    bp_redis_target t;
    bp_redis *c = NULL;
    bp_error e = {0};
    CT_CHECK(bp_sink_resolve(url, NULL, &res, &e) == 0, "%s: %s", shown, e.msg);
    CT_CHECK(
        bp_redis_target_init(&t, res.target.data, strcmp(res.opts.scheme, "rediss") == 0, &e) == 0,
        "%s: %s", shown, e.msg);
    const char *ca = bp_sink_opt(&res.opts, "tls_ca");
    t.tls_ca = ca ? strdup(ca) : NULL;
    CT_CHECK(bp_redis_connect(&t, &c, &e) == 0, "%s: %s", shown, e.msg);
    const char *prefix = bp_sink_opt(&res.opts, "prefix");
    files f = {.url = shown, .ordered = true};
    for (int i = 0; ct_arch && i < 4; i++)
        redis_each(&f, c, prefix, g_arch_streams[i], chain, g_arch_stream_fns[i]);
    if (!ct_arch) {
        redis_each(&f, c, prefix, "blocks", chain, stream_block);
        redis_each(&f, c, prefix, "transactions", chain, stream_tx);
        redis_each(&f, c, prefix, "logs", chain, stream_log);
    }
    files_result(&f, out);
    bp_redis_free(c);
    bp_redis_target_release(&t);
    bp_sink_resolved_release(&res);
}

/* kafka://BOOTSTRAP?prefix=P: the topics {P}blocks, {P}transactions, {P}logs read by
 * tests/tools/kafka_consume ($BP_KAFKA_CONSUME) with read_committed. librdkafka's mock cluster
 * keeps aborted records as if committed: a record counts when its bp-txn has a record in the
 * checkpoint topic (src/sink/kafka.c), as read_committed gives on a real broker. */
typedef struct krecs {
    yajl_val *v;
    size_t n, cap;
} krecs;

static void kafka_consume(const char *shown, const char *bootstrap, const char *topic, krecs *out)
{
    const char *prog = getenv("BP_KAFKA_CONSUME");
    CT_CHECK(prog && *prog, "%s: BP_KAFKA_CONSUME (tests/tools/kafka_consume) is not set", shown);
    char cmd[2048], line[1 << 16], msg[256];
    snprintf(cmd, sizeof(cmd), "'%s' '%s' '%s'", prog, bootstrap, topic);
    FILE *p = popen(cmd, "r");
    CT_CHECK(p, "%s: cannot run %s", shown, prog);
    while (fgets(line, sizeof(line), p)) {
        CT_CHECK(strchr(line, '\n'), "%s: %s: a record longer than %zu bytes", shown, topic,
                 sizeof(line));
        yajl_val v = yajl_tree_parse(line, msg, sizeof(msg));
        CT_CHECK(v, "%s: %s: kafka_consume printed no JSON: %s", shown, topic, msg);
        if (out->n == out->cap) {
            out->cap = out->cap ? 2 * out->cap : 256;
            out->v = realloc(out->v, out->cap * sizeof(*out->v));
            CT_CHECK(out->v, "out of memory");
        }
        out->v[out->n++] = v;
    }
    int st = pclose(p);
    CT_CHECK(st == 0, "%s: kafka_consume %s failed (status %d)", shown, topic, st);
}

static void krecs_free(krecs *r)
{
    for (size_t i = 0; i < r->n; i++)
        yajl_tree_free(r->v[i]);
    free(r->v);
    memset(r, 0, sizeof(*r));
}

static yajl_val kget(yajl_val v, const char *a, const char *b)
{
    const char *path[] = {a, b, NULL};
    return yajl_tree_get(v, path, yajl_t_any);
}

static bool committed_txn(const krecs *cps, const char *txn)
{
    for (size_t i = 0; txn && i < cps->n; i++) {
        const char *t = YAJL_GET_STRING(kget(cps->v[i], "value", "txn"));
        if (t && strcmp(t, txn) == 0)
            return true;
    }
    return false;
}

static void kafka_each(files *f, const char *bootstrap, const krecs *cps, const char *topic,
                       const char *chain, stream_fn fn)
{
    krecs recs = {0};
    char where[700];
    kafka_consume(f->url, bootstrap, topic, &recs);
    for (size_t i = 0; i < recs.n; i++) {
        yajl_val r = recs.v[i];
        const char *txn = YAJL_GET_STRING(kget(r, "txn", NULL));
        snprintf(where, sizeof(where), "%s: %s [%lld] offset %lld", f->url, topic,
                 YAJL_GET_INTEGER(kget(r, "partition", NULL)),
                 YAJL_GET_INTEGER(kget(r, "offset", NULL)));
        if (!committed_txn(cps, txn))
            continue; /* an aborted transaction's record */
        const char *key = YAJL_GET_STRING(kget(r, "key", NULL));
        CT_CHECK(key && strcmp(key, chain) == 0, "%s: key %s, expected the chain %s", where,
                 key ? key : "(none)", chain);
        const char *type = YAJL_GET_STRING(kget(r, "value", "type"));
        const char *c = YAJL_GET_STRING(kget(r, "value", "chain"));
        const char *hash = YAJL_GET_STRING(kget(r, "value", "hash"));
        yajl_val data = kget(r, "value", "data");
        CT_CHECK(type && c && hash && data, "%s: a record lacks type, chain, hash or data", where);
        CT_CHECK(strcmp(c, chain) == 0, "%s: chain %s, expected %s", where, c, chain);
        /* an Arch revert with data: a rollback state change (stream.h) */
        CT_CHECK(strcmp(type, "apply") == 0
                     ? YAJL_IS_OBJECT(data)
                     : strcmp(type, "revert") == 0 &&
                           (YAJL_IS_NULL(data) || (ct_arch && YAJL_IS_OBJECT(data))),
                 "%s: type %s with data of the wrong kind", where, type);
        fn(f, where, type, hash, YAJL_IS_OBJECT(data) ? data : NULL);
    }
    krecs_free(&recs);
}

static void read_kafka(const char *url, const char *shown, const char *target, const char *chain,
                       ct_lines *out)
{
    (void)target;
    bp_sink_resolved res;
    bp_error e = {0};
    CT_CHECK(bp_sink_resolve(url, NULL, &res, &e) == 0, "%s: %s", shown, e.msg);
    const char *pre = bp_sink_opt(&res.opts, "prefix");
    char topic[512], bootstrap[512];
    snprintf(bootstrap, sizeof(bootstrap), "%.*s", (int)strcspn(res.target.data, "?"),
             res.target.data);
    krecs cps = {0};
    snprintf(topic, sizeof(topic), "%s%s", pre ? pre : "",
             bp_sink_opt(&res.opts, "checkpoint_topic"));
    kafka_consume(shown, bootstrap, topic, &cps);
    files f = {.url = shown, .ordered = true};
    static const char *const entities[] = {"blocks", "transactions", "logs"};
    static const stream_fn fns[] = {stream_block, stream_tx, stream_log};
    for (int i = 0; i < (ct_arch ? 4 : 3); i++) {
        snprintf(topic, sizeof(topic), "%s%s", pre ? pre : "",
                 ct_arch ? g_arch_streams[i] : entities[i]);
        kafka_each(&f, bootstrap, &cps, topic, chain, ct_arch ? g_arch_stream_fns[i] : fns[i]);
    }
    files_result(&f, out);
    krecs_free(&cps);
    bp_sink_resolved_release(&res);
}

/* ---- dispatch ----------------------------------------------------------------------------- */

/* One line per backend: a new output adds its reader here. */
static const struct {
    const char *scheme;
    void (*read)(const char *url, const char *shown, const char *target, const char *chain,
                 ct_lines *out);
} g_readers[] = {
    {"sqlite", read_sqlite},  {"postgres", read_pg}, {"postgresql", read_pg},
    {"etl-csv", read_etlcsv}, {"jsonl", read_jsonl}, {"redis", read_redis},
    {"rediss", read_redis},   {"kafka", read_kafka}, {"clickhouse", read_ch},
    {"ch", read_ch},
};

void ct_read(const char *url, const char *chain, ct_lines *out)
{
    const char *colon = strchr(url, ':');
    size_t slen = colon ? (size_t)(colon - url) : 0;
    for (size_t i = 0; colon && i < sizeof(g_readers) / sizeof(g_readers[0]); i++) {
        if (strlen(g_readers[i].scheme) != slen || strncmp(url, g_readers[i].scheme, slen) != 0)
            continue;
        const char *target = colon + 1;
        if (strncmp(target, "//", 2) == 0)
            target += 2;
        char shown[512]; /* for messages: no password */
        bp_url_redact(url, shown, sizeof(shown));
        g_readers[i].read(url, shown, target, chain, out);
        ct_lines_sort(out);
        return;
    }
    char shown[512];
    bp_url_redact(url, shown, sizeof(shown));
    ct_die("%s: the contract test has no reader for this kind of output (add one to "
           "tests/contract/readers.c)",
           shown);
}
