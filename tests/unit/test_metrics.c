/* test_metrics.c - the metrics module (src/metrics/) and the SQLite output's derived tables:
 * a block's derived row by hand, token transfers on ethereum-etl's own fixtures
 * (export_token_transfers_job, extract_token_transfers_job) and on ERC-1155 logs, the SQL
 * functions, an APPLY then REVERT leaving every derived table as before, and a schema 1
 * database upgraded in place. (Whole chains through reorgs and crashes, recomputed
 * independently: integration/test_metrics_sqlite.py.) */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "blockpipe/derived.h"
#include "core/budget.h"
#include "chain/json.h"
#include "metrics/derive_job.h"
#include "metrics/idset.h"
#include "metrics/metrics.h"
#include "metrics/model.h"
#include "metrics/openwin.h"
#include "metrics/tokens.h"
#include "sink/sqlite_derived.h"
#include "sink_fixture.h"
#include "testfile.h"
#include "util/arena.h"
#include "util/hex.h"

#define ETL BP_CONFORMANCE_DIR "/ethereum-etl/"

static const char *dec(const bp_qty *q, char *buf)
{
    if (!q->set)
        return "NULL";
    bp_u256_to_dec(&q->v, buf);
    return buf;
}

static void test_derive_fixture_block(void **state)
{
    (void)state;
    bp_block *b = fx_block(7, 0, true, true);
    bp_arena *a = bp_arena_new(4096);
    bp_block_derived d;
    char buf[BP_U256_DEC_MAX];
    assert_int_equal(bp_metrics_derive_block("main", b, a, &d), 0);
    const bp_chain_block_row *c = &d.chain;
    assert_int_equal(c->block_number, 7);
    assert_int_equal(c->txcount, 4);
    assert_int_equal(c->txcount_failed, 1);            /* tx1: status 0; tx2 has no status */
    assert_int_equal(c->txcount_contract_creation, 1); /* tx1 */
    assert_int_equal(c->active_addresses, 4);
    /* 21000 gas each at 91022338812 (tx0) and 50 gwei (the others) */
    assert_string_equal(dec(&c->fees_paid_wei, buf), "5061469115052000");
    assert_true(c->fees_paid_native.set);
    assert_true(c->fees_paid_native.v == 5061469115052000.0 / 1e18);
    assert_false(c->fees_paid_usd.set);
    assert_string_equal(dec(&c->median_gas_price, buf), "50000000000"); /* lower median */
    assert_int_equal(d.contract_count, 1); /* the creation; the others have no input */
    assert_string_equal(d.contracts[0].contract_address, A(0xcc, 7));
    assert_string_equal(dec(&d.contracts[0].fees_paid_wei, buf), "1050000000000000");
    assert_int_equal(d.pair_count, 1);
    assert_int_equal(d.transfer_count, 0);
    bp_block *empty = fx_block(8, 0, false, true);
    assert_int_equal(bp_metrics_derive_block("main", empty, a, &d), 0);
    assert_false(d.chain.median_gas_price.set);
    assert_string_equal(dec(&d.chain.fees_paid_wei, buf), "0");
    bp_block_free(empty);
    bp_arena_free(a);
    bp_block_free(b);
}

/* An OP-stack receipt's l1Fee is part of what the tx paid (docs/ARCHITECTURE.md "fees_paid"). */
static void test_fees_include_l1_fee(void **state)
{
    (void)state;
    bp_block *b = fx_block(7, 0, true, true);
    bp_arena *a = bp_arena_new(4096);
    bp_block_derived d;
    char buf[BP_U256_DEC_MAX];
    bp_tx_op op = {.receipt_l1_fee = {.v = {{1000000000000000ull}}, .set = true}};
    b->txs[0].op = &op;
    assert_int_equal(bp_metrics_derive_block("main", b, a, &d), 0);
    assert_string_equal(dec(&d.chain.fees_paid_wei, buf), "6061469115052000");
    b->txs[0].has_receipt = false; /* no receipt: nothing paid that we know of */
    assert_int_equal(bp_metrics_derive_block("main", b, a, &d), 0);
    assert_string_equal(dec(&d.chain.fees_paid_wei, buf), "3150000000000000");
    bp_arena_free(a);
    bp_block_free(b);
}

/* ---- token transfers on ethereum-etl's fixtures --------------------------------------------- */

/* "token_address,from_address,to_address,value,transaction_hash,log_index,block_number" */
static void append_row(bp_buf *out, const bp_token_transfer_row *r)
{
    char v[BP_U256_DEC_MAX];
    bp_u256_to_dec(&r->value.v, v);
    bp_buf_printf(out, "%s,%s,%s,%s,%s,%llu,%llu\n", r->token_address, r->from_address,
                  r->to_address, v, r->transaction_hash, (unsigned long long)r->log_index,
                  (unsigned long long)r->block_number);
}

static void decode_into(bp_buf *out, bp_arena *a, bp_block *b, bp_log *log)
{
    bp_token_transfer_row rows[8];
    size_t n = 0;
    assert_int_equal(bp_tokens_decode_log(a, "mainnet", b, log, rows, 8, &n), 0);
    for (size_t i = 0; i < n; i++)
        append_row(out, &rows[i]);
}

/* The expected CSV without its header, lines sorted as ours are (by log index). */
static char *expected_csv(const char *path)
{
    char *text = bp_test_slurp(path, NULL);
    assert_non_null(text);
    char *body = strchr(text, '\n');
    assert_non_null(body);
    char *out = strdup(body + 1);
    free(text);
    for (char *p = out; *p; p++)
        if (*p == '\r')
            memmove(p, p + 1, strlen(p));
    size_t n = strlen(out);
    if (n && out[n - 1] != '\n') {
        out = realloc(out, n + 2);
        strcat(out, "\n");
    }
    return out;
}

static char *cell(char **p)
{
    char *s = *p;
    if (*s == '"') {
        s++;
        char *e = strchr(s, '"');
        *e = '\0';
        *p = e + 1 + (e[1] == ',');
        return s;
    }
    char *e = s + strcspn(s, ",\n");
    *p = *e ? e + 1 : e;
    *e = '\0';
    return s;
}

/* extract_token_transfers_job: logs.csv in, the job's CSV out. */
static void test_extract_job_fixture(void **state)
{
    (void)state;
    char *text = bp_test_slurp(ETL "extract_token_transfers_job/logs/logs.csv", NULL);
    assert_non_null(text);
    bp_block *b = bp_block_new();
    bp_arena *a = bp_arena_new(4096);
    bp_buf got;
    bp_buf_init(&got, 0);
    char *line = strchr(text, '\n') + 1, *next;
    for (; *line; line = next) {
        next = line + strcspn(line, "\n");
        if (*next)
            *next++ = '\0';
        char *p = line;
        bp_log log = {0};
        log.log_index = strtoull(cell(&p), NULL, 10);
        log.transaction_hash = cell(&p);
        log.transaction_index = strtoull(cell(&p), NULL, 10);
        b->hash = cell(&p);
        b->number = strtoull(cell(&p), NULL, 10);
        log.address = cell(&p);
        log.data = cell(&p);
        char *topics = cell(&p);
        for (char *t = strtok(topics, ","); t && log.topic_count < 4; t = strtok(NULL, ","))
            log.topics[log.topic_count++] = t;
        decode_into(&got, a, b, &log);
    }
    char *want = expected_csv(ETL "extract_token_transfers_job/logs/expected_token_transfers.csv");
    assert_string_equal(got.data, want);
    free(want);
    free(text);
    bp_buf_release(&got);
    bp_arena_free(a);
    b->hash = NULL;
    bp_block_free(b);
}

static const char *jstr(yajl_val o, const char *key)
{
    const char *path[] = {key, NULL};
    yajl_val v = yajl_tree_get(o, path, yajl_t_string);
    assert_non_null(v);
    return YAJL_GET_STRING(v);
}

/* export_token_transfers_job: the node's eth_getFilterLogs answer in, the job's CSV out. */
static void test_export_job_fixture(void **state)
{
    (void)state;
    char *text = bp_test_slurp(ETL "export_token_transfers_job/block_with_transfers/"
                                   "web3_response.eth_getFilterLogs_0x0.json",
                               NULL);
    assert_non_null(text);
    yajl_val root = bp_json_parse(text, strlen(text), NULL, 0);
    const char *rp[] = {"result", NULL};
    yajl_val logs = yajl_tree_get(root, rp, yajl_t_array);
    assert_non_null(logs);
    bp_block *b = bp_block_new();
    bp_arena *a = bp_arena_new(4096);
    bp_buf got;
    bp_buf_init(&got, 0);
    for (size_t i = 0; i < logs->u.array.len; i++) {
        yajl_val o = logs->u.array.values[i];
        bp_log log = {0};
        bp_hex_to_u64(jstr(o, "logIndex"), strlen(jstr(o, "logIndex")), &log.log_index);
        bp_hex_to_u64(jstr(o, "blockNumber"), strlen(jstr(o, "blockNumber")), &b->number);
        b->hash = jstr(o, "blockHash");
        log.transaction_hash = jstr(o, "transactionHash");
        log.address = jstr(o, "address");
        log.data = jstr(o, "data");
        const char *tp[] = {"topics", NULL};
        yajl_val t = yajl_tree_get(o, tp, yajl_t_array);
        for (size_t k = 0; k < t->u.array.len && k < 4; k++)
            log.topics[log.topic_count++] = YAJL_GET_STRING(t->u.array.values[k]);
        decode_into(&got, a, b, &log);
    }
    char *want = expected_csv(ETL "export_token_transfers_job/block_with_transfers/"
                                  "expected_token_transfers.csv");
    assert_string_equal(got.data, want);
    free(want);
    bp_json_free(root);
    free(text);
    bp_buf_release(&got);
    bp_arena_free(a);
    b->hash = NULL;
    bp_block_free(b);
}

/* ERC-1155: a TransferSingle, a TransferBatch of two, and malformed ones (no rows). */
static void test_erc1155(void **state)
{
    (void)state;
    bp_block *b = fx_block(9, 0, false, true);
    bp_arena *a = bp_arena_new(4096);
    char op[67], from[67], to[67];
    snprintf(op, sizeof(op), "0x%024d%s", 0, A(0x0a, 1) + 2);
    snprintf(from, sizeof(from), "0x%024d%s", 0, A(0x0b, 2) + 2);
    snprintf(to, sizeof(to), "0x%024d%s", 0, A(0x0c, 3) + 2);
    bp_log log = {.log_index = 4,
                  .transaction_hash = H(0xe0, 1),
                  .address = A(0xee, 5),
                  .topics = {BP_TOPIC_TRANSFER_SINGLE, op, from, to},
                  .topic_count = 4};
    log.data = "0x"
               "0000000000000000000000000000000000000000000000000000000000000007"
               "00000000000000000000000000000000000000000000000000000000000003e8";
    bp_token_transfer_row rows[4];
    size_t n = 0;
    char v[BP_U256_DEC_MAX], id[BP_U256_DEC_MAX];
    assert_int_equal(bp_tokens_decode_log(a, "c", b, &log, rows, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].token_standard, "erc1155");
    assert_string_equal(rows[0].operator_address, A(0x0a, 1));
    assert_string_equal(rows[0].from_address, A(0x0b, 2));
    assert_string_equal(rows[0].to_address, A(0x0c, 3));
    assert_string_equal(dec(&rows[0].token_id, id), "7");
    assert_string_equal(dec(&rows[0].value, v), "1000");
    log.topics[0] = BP_TOPIC_TRANSFER_BATCH; /* ids [1, 2], values [10, 20] */
    log.data = "0x"
               "0000000000000000000000000000000000000000000000000000000000000040"
               "00000000000000000000000000000000000000000000000000000000000000a0"
               "0000000000000000000000000000000000000000000000000000000000000002"
               "0000000000000000000000000000000000000000000000000000000000000001"
               "0000000000000000000000000000000000000000000000000000000000000002"
               "0000000000000000000000000000000000000000000000000000000000000002"
               "000000000000000000000000000000000000000000000000000000000000000a"
               "0000000000000000000000000000000000000000000000000000000000000014";
    assert_int_equal(bp_tokens_decode_log(a, "c", b, &log, rows, 4, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(rows[1].batch_index, 1);
    assert_string_equal(dec(&rows[1].token_id, id), "2");
    assert_string_equal(dec(&rows[1].value, v), "20");
    assert_int_equal(bp_tokens_decode_log(a, "c", b, &log, rows, 1, &n), BP_ETOOBIG);
    assert_int_equal(n, 2); /* what it would take */
    /* lengths that differ, an offset past the end, an odd data length: no rows */
    static const char *const bad[] = {
        ("0x0000000000000000000000000000000000000000000000000000000000000040"
         "0000000000000000000000000000000000000000000000000000000000000080"
         "0000000000000000000000000000000000000000000000000000000000000001"
         "0000000000000000000000000000000000000000000000000000000000000001"
         "0000000000000000000000000000000000000000000000000000000000000002"
         "0000000000000000000000000000000000000000000000000000000000000001"
         "0000000000000000000000000000000000000000000000000000000000000002"),
        ("0x0000000000000000000000000000000000000000000000000000000000000400"
         "0000000000000000000000000000000000000000000000000000000000000040"),
        "0x00000000000000000000000000000000000000000000000000000000000000400",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        log.data = bad[i];
        assert_int_equal(bp_tokens_decode_log(a, "c", b, &log, rows, 4, &n), 0);
        assert_int_equal(n, 0);
    }
    bp_arena_free(a);
    bp_block_free(b);
}

/* ---- SQL functions ------------------------------------------------------------------------ */

static char *one(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    int rc = sqlite3_step(st);
    const char *t = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    char *out = strdup(rc == SQLITE_ROW ? (t ? t : "NULL") : sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return out;
}

static void assert_one(sqlite3 *db, const char *sql, const char *want)
{
    char *got = one(db, sql);
    if (strcmp(got, want) != 0)
        fail_msg("%s\n  got      %s\n  expected %s", sql, got, want);
    free(got);
}

static void test_sql_functions(void **state)
{
    (void)state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(bp_sqlite_derived_functions(db), SQLITE_OK);
    assert_one(db, "SELECT bp_add256('340282366920938463463374607431768211455', 1)",
               "340282366920938463463374607431768211456");
    assert_one(db, "SELECT bp_sub256('340282366920938463463374607431768211456', '1')",
               "340282366920938463463374607431768211455");
    assert_one(db, "SELECT bp_sub256(1, 2)", "bp_sub256: would be negative");
    assert_one(db, "SELECT bp_native('1500000000000000000')", "1.5");
    assert_one(db,
               "WITH v(x) AS (VALUES('5'),('1'),(NULL),('3'),('2')) SELECT bp_median256(x) "
               "FROM v",
               "2");
    assert_one(db,
               "WITH v(x) AS (VALUES('18446744073709551616'),('18446744073709551616')) "
               "SELECT bp_sum256(x) FROM v",
               "36893488147419103232");
    assert_one(db, "SELECT bp_median256(x) FROM (SELECT NULL AS x)", "NULL");
    sqlite3_close(db);
}

/* ---- the SQLite output's derived tables ------------------------------------------------ */

static const char *const g_tables[] = {
    "chain_metrics_block", "chain_metrics_1m",    "chain_metrics_1h",   "chain_metrics_1d",
    "contract_metrics_1m", "contract_metrics_1h", "contract_metrics_1d"};

/* The windows of the stored set rows, from the raw rows (w: grain's window of b.timestamp). */
#define SET_WINDOW "b.timestamp - b.timestamp % CASE s.grain WHEN '1h' THEN 3600 ELSE 86400 END"
#define SET_TXS                                                                                    \
    " FROM transactions t JOIN blocks b ON b.chain = t.chain AND b.number = t.block_number"

/* Rows of a query (the stored sets' differences from the raw rows: none). */
static int count_of(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* SQLite stores a window's set only when a count needed it (sqlite_derived.c): a window it
 * has must hold its whole set, each address with the lowest block it sent in, as the raw
 * transactions say. How many windows are stored. */
static int check_stored_sets(sqlite3 *db)
{
    static const char *const sets[] = {
        "SELECT grain, window_start, address, first_block FROM active_addresses",
        "SELECT s.grain, s.window_start, t.from_address, min(t.block_number)" SET_TXS
        " JOIN (SELECT DISTINCT grain, window_start FROM active_addresses) s"
        " ON " SET_WINDOW " = s.window_start GROUP BY 1, 2, 3",
        "SELECT grain, window_start, contract_address, address, first_block FROM contract_senders",
        "SELECT s.grain, s.window_start, k, a, min(n) FROM (SELECT CASE WHEN t.to_address IS NULL"
        " THEN t.receipt_contract_address WHEN t.input IS NOT NULL AND t.input <> '0x'"
        " THEN t.to_address END AS k, t.from_address AS a, t.block_number AS n, b.timestamp"
        " AS timestamp" SET_TXS ") b JOIN (SELECT DISTINCT grain, window_start FROM"
        " active_addresses) s ON " SET_WINDOW " = s.window_start WHERE k IS NOT NULL"
        " GROUP BY 1, 2, 3, 4"};
    for (int i = 0; i < 4; i += 2) {
        char sql[1024];
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM (%s EXCEPT %s)", sets[i], sets[i + 1]);
        assert_int_equal(count_of(db, sql), 0);
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM (%s EXCEPT %s)", sets[i + 1], sets[i]);
        assert_int_equal(count_of(db, sql), 0);
    }
    return count_of(db, "SELECT count(*) FROM (SELECT DISTINCT grain, window_start"
                        " FROM active_addresses)");
}

static int stored_set_windows(const char *path)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    int n = check_stored_sets(db);
    sqlite3_close(db);
    return n;
}

/* Every derived table's rows as one text (the state to compare); the stored sets checked
 * against the raw rows (whether a window's set is stored is not the state). */
static char *dump(const char *path)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    check_stored_sets(db);
    bp_buf out;
    bp_buf_init(&out, 0);
    for (size_t i = 0; i < sizeof(g_tables) / sizeof(g_tables[0]); i++) {
        char sql[128];
        snprintf(sql, sizeof(sql), "SELECT * FROM %s ORDER BY 1, 2, 3", g_tables[i]);
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        bp_buf_printf(&out, "%s:\n", g_tables[i]);
        while (sqlite3_step(st) == SQLITE_ROW) {
            for (int c = 0; c < sqlite3_column_count(st); c++) {
                const char *t = (const char *)sqlite3_column_text(st, c);
                bp_buf_printf(&out, "%s%s", c ? "|" : "", t ? t : "NULL");
            }
            bp_buf_putc(&out, '\n');
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return out.data ? out.data : strdup("");
}

/* The two files hold the same derived rows (dump). */
static void assert_same_tables(const char *pa, const char *pb)
{
    char *da = dump(pa), *db = dump(pb);
    assert_string_equal(da, db);
    free(da);
    free(db);
}

static char *temp_db(char *path, size_t cap)
{
    snprintf(path, cap, "/tmp/bp_test_metrics_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    return path;
}

static void write_batch(bp_sink *s, bp_metrics *m, bp_event *ev, size_t n, bp_checkpoint cp)
{
    bp_batch batch = {.chain = "main", .events = ev, .count = n, .checkpoint = cp};
    bp_error err = {0};
    assert_int_equal(bp_metrics_compute(m, &batch, false, &batch.derived, &err), 0);
    if (s->ops->write(s, &batch, &err) != 0)
        fail_msg("write: %s", err.msg);
}

/* Blocks 1..3 applied; then 3 and 2 reverted in the same batch as 2' and 3' of a fork, then
 * those reverted: every derived table equals what it held after block 1 alone. */
static void test_apply_revert_roundtrip(void **state)
{
    (void)state;
    char path[64], url[96];
    snprintf(url, sizeof(url), "sqlite:%s", temp_db(path, sizeof(path)));
    bp_sink *s;
    bp_error err = {0};
    assert_int_equal(bp_sink_open_url(url, &s, &err), 0);
    assert_true(s->derived);
    bp_metrics_config mc = {.reorg_window = 64, .native_symbol = "ETH", .price_max_age = 60};
    bp_metrics *m = bp_metrics_new(&mc, &err);
    bp_block *main[4], *fork[4];
    for (int i = 1; i <= 3; i++) {
        main[i] = fx_block((uint64_t)i, 0, true, true);
        main[i]->timestamp = 1700000000 + 50 * (uint64_t)i; /* 2 windows of 1 minute */
        fork[i] = fx_block((uint64_t)i, 1, true, true);
        fork[i]->timestamp = 1700003600 + (uint64_t)i;    /* another hour */
        fork[i]->txs[2].input = fx_hexb(fork[i], "0x01"); /* one contract call more */
    }
    bp_event e1[] = {{BP_EVENT_APPLY, main[1]}};
    write_batch(s, m, e1, 1, fx_cp(1, 0));
    char *after1 = dump(path);
    bp_event e2[] = {{BP_EVENT_APPLY, main[2]}, {BP_EVENT_APPLY, main[3]}};
    write_batch(s, m, e2, 2, fx_cp(3, 0));
    char *after3 = dump(path);
    assert_string_not_equal(after1, after3);
    bp_block *h3 = bp_block_header_copy(main[3]), *h2 = bp_block_header_copy(main[2]);
    h3->timestamp = h2->timestamp = 0; /* as after a restart: the sink must not need them */
    bp_event e3[] = {{BP_EVENT_REVERT, h3},
                     {BP_EVENT_REVERT, h2},
                     {BP_EVENT_APPLY, fork[2]},
                     {BP_EVENT_APPLY, fork[3]}};
    write_batch(s, m, e3, 4, fx_cp(3, 1));
    /* the REVERTs stored their hour's and day's sets (no set rows before: all known new) */
    assert_int_equal(stored_set_windows(path), 2);
    bp_block *f3 = bp_block_header_copy(fork[3]), *f2 = bp_block_header_copy(fork[2]);
    bp_event e4[] = {{BP_EVENT_REVERT, f3}, {BP_EVENT_REVERT, f2}};
    write_batch(s, m, e4, 2, fx_cp(1, 0));
    char *back = dump(path);
    assert_string_equal(back, after1);
    free(after1);
    free(after3);
    free(back);
    for (int i = 1; i <= 3; i++) {
        bp_block_free(main[i]);
        bp_block_free(fork[i]);
    }
    bp_block_free(h2);
    bp_block_free(h3);
    bp_block_free(f2);
    bp_block_free(f3);
    bp_metrics_free(m);
    bp_sink_close(s);
    unlink(path);
}

/* token_transfers' key leads with (chain, block_number): a block's rows append to it, and a
 * REVERT's delete of a block's transfers reads them as a range, not every row of the chain
 * (its columns have log_index before block_number). */
static void test_token_transfers_key(void **state)
{
    (void)state;
    char path[64], url[96];
    snprintf(url, sizeof(url), "sqlite:%s", temp_db(path, sizeof(path)));
    bp_sink *s;
    bp_error err = {0};
    assert_int_equal(bp_sink_open_url(url, &s, &err), 0);
    bp_sink_close(s);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "EXPLAIN QUERY PLAN DELETE FROM token_transfers"
                                        " WHERE chain = ?1 AND block_number = ?2",
                                        -1, &st, NULL),
                     SQLITE_OK);
    bool ranged = false;
    while (sqlite3_step(st) == SQLITE_ROW)
        ranged |= strstr((const char *)sqlite3_column_text(st, 3), "block_number=?") != NULL;
    sqlite3_finalize(st);
    assert_true(ranged);
    sqlite3_close(db);
    unlink(path);
}

/* One table's rows as text, in key order. */
static char *table_text(const char *path, const char *table)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT * FROM %s ORDER BY 1, 2, 3, 4", table);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    bp_buf out;
    bp_buf_init(&out, 0);
    bp_buf_puts(&out, "");
    while (sqlite3_step(st) == SQLITE_ROW) {
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            const char *t = (const char *)sqlite3_column_text(st, c);
            bp_buf_printf(&out, "%s%s", c ? "|" : "", t ? t : "NULL");
        }
        bp_buf_putc(&out, '\n');
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out.data;
}

static void open_fails(const char *url, const char *what1, const char *what2)
{
    bp_sink *s = NULL;
    bp_error err = {0};
    assert_int_not_equal(bp_sink_open_url(url, &s, &err), 0);
    assert_null(s);
    if (!strstr(err.msg, what1) || !strstr(err.msg, what2))
        fail_msg("'%s' lacks '%s' or '%s'", err.msg, what1, what2);
}

/* derived=: one metrics module's rows (every group computed, as for several outputs) written
 * into a file with every group and one with chain_metrics, active_addresses and prices only,
 * through a reorg: the second's chain_metrics_* and active_addresses equal the first's, its
 * other tables stay empty. Then the selection of a file that holds rows cannot change (in
 * either direction: the error names the group and the option), metrics=off opens either, and
 * a list without a group's needs is refused naming them. */
static void test_derived_selection(void **state)
{
    (void)state;
    char pa[64], pb[64], url[160];
    bp_sink *sa, *sb;
    bp_error err = {0};
    temp_db(pa, sizeof(pa));
    temp_db(pb, sizeof(pb));
    snprintf(url, sizeof(url), "sqlite:%s", pa);
    assert_int_equal(bp_sink_open_url(url, &sa, &err), 0);
    assert_int_equal(sa->derived_groups, BP_DG_ALL);
    snprintf(url, sizeof(url), "sqlite:%s?derived=chain_metrics,active_addresses,prices", pb);
    assert_int_equal(bp_sink_open_url(url, &sb, &err), 0);
    assert_true(sb->derived);
    assert_int_equal(sb->derived_groups, BP_DG_BIT(BP_DG_CHAIN_METRICS) |
                                             BP_DG_BIT(BP_DG_ACTIVE_ADDRESSES) |
                                             BP_DG_BIT(BP_DG_PRICES));
    bp_metrics_config mc = {
        .reorg_window = 64, .native_symbol = "ETH", .price_max_age = 60, .predictions = true};
    bp_metrics *m = bp_metrics_new(&mc, &err);
    bp_block *main[4], *fork[4];
    for (int i = 1; i <= 3; i++) {
        main[i] = fx_block((uint64_t)i, 0, true, true);
        main[i]->timestamp = 1700000000 + 50 * (uint64_t)i;
        fork[i] = fx_block((uint64_t)i, 1, true, true);
        fork[i]->timestamp = 1700003600 + (uint64_t)i;
        fork[i]->txs[2].input = fx_hexb(fork[i], "0x01");
    }
    bp_event e1[] = {
        {BP_EVENT_APPLY, main[1]}, {BP_EVENT_APPLY, main[2]}, {BP_EVENT_APPLY, main[3]}};
    bp_batch b1 = {.chain = "main", .events = e1, .count = 3, .checkpoint = fx_cp(3, 0)};
    assert_int_equal(bp_metrics_compute(m, &b1, false, &b1.derived, &err), 0);
    assert_int_equal(sa->ops->write(sa, &b1, &err), 0);
    assert_int_equal(sb->ops->write(sb, &b1, &err), 0);
    bp_block *h3 = bp_block_header_copy(main[3]), *h2 = bp_block_header_copy(main[2]);
    bp_event e2[] = {{BP_EVENT_REVERT, h3},
                     {BP_EVENT_REVERT, h2},
                     {BP_EVENT_APPLY, fork[2]},
                     {BP_EVENT_APPLY, fork[3]}};
    bp_batch b2 = {.chain = "main", .events = e2, .count = 4, .checkpoint = fx_cp(3, 1)};
    assert_int_equal(bp_metrics_compute(m, &b2, false, &b2.derived, &err), 0);
    assert_int_equal(sa->ops->write(sa, &b2, &err), 0);
    assert_int_equal(sb->ops->write(sb, &b2, &err), 0);
    bp_sink_close(sa);
    bp_sink_close(sb);
    for (int t = 0; t < BP_DT_COUNT; t++) {
        char *ta = table_text(pa, bp_dtables[t].name), *tb = table_text(pb, bp_dtables[t].name);
        bp_dgroup g = bp_dtable_group((bp_dtable)t);
        if (g == BP_DG_CHAIN_METRICS || g == BP_DG_ACTIVE_ADDRESSES || g == BP_DG_PRICES)
            assert_string_equal(ta, tb);
        else
            assert_string_equal(tb, "");
        if (t == BP_DT_CHAIN_1H || t == BP_DT_CONTRACT_1M || t == BP_DT_ML_PREDICTIONS)
            assert_string_not_equal(ta, ""); /* the rows left out were there to leave out */
        free(ta);
        free(tb);
    }
    snprintf(url, sizeof(url), "sqlite:%s", pb); /* every group now: refused */
    open_fails(url, "contract_metrics is selected", "derived (--derived");
    snprintf(url, sizeof(url), "sqlite:%s?derived=chain_metrics,active_addresses,prices", pa);
    open_fails(url, "contract_metrics is left out", "derived=chain_metrics,contract_metrics");
    snprintf(url, sizeof(url), "sqlite:%s?derived=all,contract_metrics", pb);
    open_fails(url, "contract_metrics", "Keep derived=chain_metrics,active_addresses,prices");
    snprintf(url, sizeof(url), "sqlite:%s?metrics=off&derived=token_transfers", pb);
    assert_int_equal(bp_sink_open_url(url, &sb, &err), 0); /* off: as before */
    assert_false(sb->derived);
    bp_sink_close(sb);
    snprintf(url, sizeof(url), "sqlite:%s?derived=prices", pa); /* no rows of blocks */
    assert_int_equal(bp_sink_open_url(url, &sa, &err), 0);
    bp_sink_close(sa);
    snprintf(url, sizeof(url), "sqlite:%s?derived=all", pa); /* the record stayed */
    assert_int_equal(bp_sink_open_url(url, &sa, &err), 0);
    bp_sink_close(sa);
    snprintf(url, sizeof(url), "sqlite:%s?derived=chain_metrics,prices", pa);
    open_fails(url, "chain_metrics needs active_addresses", "derived (--derived");
    snprintf(url, sizeof(url), "sqlite:%s?derived=token_transfers", pa);
    open_fails(url, "token_transfers needs chain_metrics", "add chain_metrics");
    snprintf(url, sizeof(url), "sqlite:%s?derived=chain_metrics,blocks", pa);
    open_fails(url, "'blocks' is not a group", "derived (--derived");
    for (int i = 1; i <= 3; i++) {
        bp_block_free(main[i]);
        bp_block_free(fork[i]);
    }
    bp_block_free(h2);
    bp_block_free(h3);
    bp_metrics_free(m);
    unlink(pa);
    unlink(pb);
}

/* What no output wants is not computed: contract rows and pairs, token transfers; with
 * chain_metrics skipped (derived=prices everywhere) no block's rows at all. */
static void test_metrics_skip_groups(void **state)
{
    (void)state;
    bp_error err = {0};
    bp_block *b = fx_block(1, 0, true, true);
    b->txs[2].input = fx_hexb(b, "0x01");
    bp_event ev = {BP_EVENT_APPLY, b};
    bp_batch batch = {.chain = "main", .events = &ev, .count = 1};
    bp_metrics_config all = {.reorg_window = 64, .native_symbol = "ETH"};
    bp_metrics_config some = all, none = all;
    some.skip_groups = BP_DG_BIT(BP_DG_CONTRACT_METRICS) | BP_DG_BIT(BP_DG_TOKEN_TRANSFERS);
    none.skip_groups = BP_DG_ALL & ~BP_DG_BIT(BP_DG_PRICES);
    bp_metrics *ma = bp_metrics_new(&all, &err), *ms = bp_metrics_new(&some, &err),
               *mn = bp_metrics_new(&none, &err);
    const bp_derived *da, *ds, *dn;
    assert_int_equal(bp_metrics_compute(ma, &batch, false, &da, &err), 0);
    assert_int_equal(bp_metrics_compute(ms, &batch, false, &ds, &err), 0);
    assert_int_equal(bp_metrics_compute(mn, &batch, false, &dn, &err), 0);
    assert_int_equal(da->count, 1);
    assert_true(da->blocks[0].contract_count > 0 && da->blocks[0].pair_count > 0);
    assert_int_equal(ds->count, 1);
    assert_int_equal(ds->blocks[0].contract_count, 0);
    assert_int_equal(ds->blocks[0].pair_count, 0);
    assert_int_equal(ds->blocks[0].transfer_count, 0);
    assert_int_equal(ds->blocks[0].chain.txcount, da->blocks[0].chain.txcount);
    assert_int_equal(ds->blocks[0].chain.active_addresses, da->blocks[0].chain.active_addresses);
    assert_int_equal(dn->count, 0);
    /* an output without contract_metrics takes another's rows trimmed */
    bp_block_derived copy;
    const bp_block_derived *t =
        bp_derived_trim(&da->blocks[0], BP_DG_ALL & ~BP_DG_BIT(BP_DG_CONTRACT_METRICS), &copy);
    assert_ptr_equal(t, &copy);
    assert_int_equal(t->contract_count, 0);
    assert_int_equal(t->pair_count, 0);
    assert_ptr_equal(bp_derived_trim(&da->blocks[0], BP_DG_ALL, &copy), &da->blocks[0]);
    bp_metrics_free(ma);
    bp_metrics_free(ms);
    bp_metrics_free(mn);
    bp_block_free(b);
}

/* write_batch with the derived rows computed on a bp_derived_job's thread while the output
 * writes the raw rows (bp_batch.derived_job, as core/outputs.c gives them to an output that
 * takes them late). */
static void write_batch_late(bp_sink *s, bp_metrics *m, bp_event *ev, size_t n, bp_checkpoint cp)
{
    bp_batch batch = {.chain = "main", .events = ev, .count = n, .checkpoint = cp};
    bp_error err = {0};
    bp_derived_job job;
    assert_int_equal(bp_derived_job_start(&job, m, &batch, false, &err), 0);
    batch.derived_job = &job;
    int rc = s->ops->write(s, &batch, &err);
    const bp_derived *d;
    assert_int_equal(bp_derived_job_wait(&job, &d, &err), 0);
    assert_non_null(d);
    if (rc != 0)
        fail_msg("write: %s", err.msg);
}

/* The same batches (applies alone: the raw rows first, the derived ones after; a reorg: the
 * derived rows taken before the REVERTs) written with the derived rows computed before the
 * write and computed beside it: the same tables. */
static void test_derived_late_equal(void **state)
{
    (void)state;
    char pa[64], pb[64], url[96];
    bp_sink *sa, *sb;
    bp_error err = {0};
    snprintf(url, sizeof(url), "sqlite:%s", temp_db(pa, sizeof(pa)));
    assert_int_equal(bp_sink_open_url(url, &sa, &err), 0);
    snprintf(url, sizeof(url), "sqlite:%s", temp_db(pb, sizeof(pb)));
    assert_int_equal(bp_sink_open_url(url, &sb, &err), 0);
    assert_true(sb->derived_late);
    bp_metrics_config mc = {.reorg_window = 64, .native_symbol = "ETH", .price_max_age = 60};
    bp_metrics *ma = bp_metrics_new(&mc, &err), *mb = bp_metrics_new(&mc, &err);
    bp_block *b[5], *f4 = fx_block(4, 1, true, true);
    for (int i = 1; i <= 4; i++) {
        b[i] = fx_block((uint64_t)i, 0, true, true);
        b[i]->timestamp = 1700000000 + 40 * (uint64_t)i;
    }
    f4->timestamp = b[4]->timestamp + 1;
    bp_event e1[] = {{BP_EVENT_APPLY, b[1]}, {BP_EVENT_APPLY, b[2]}, {BP_EVENT_APPLY, b[3]}};
    bp_event e2[] = {{BP_EVENT_APPLY, b[4]}};
    bp_block *h4 = bp_block_header_copy(b[4]);
    bp_event e3[] = {{BP_EVENT_REVERT, h4}, {BP_EVENT_APPLY, f4}};
    write_batch(sa, ma, e1, 3, fx_cp(3, 0));
    write_batch_late(sb, mb, e1, 3, fx_cp(3, 0));
    write_batch(sa, ma, e2, 1, fx_cp(4, 0));
    write_batch_late(sb, mb, e2, 1, fx_cp(4, 0));
    write_batch(sa, ma, e3, 2, fx_cp(4, 1));
    write_batch_late(sb, mb, e3, 2, fx_cp(4, 1));
    assert_same_tables(pa, pb);
    for (int i = 1; i <= 4; i++)
        bp_block_free(b[i]);
    bp_block_free(f4);
    bp_block_free(h4);
    bp_metrics_free(ma);
    bp_metrics_free(mb);
    bp_sink_close(sa);
    bp_sink_close(sb);
    unlink(pa);
    unlink(pb);
}

/* The minutes the metrics module saw whole come with the batch (bp_minute_summary) and are
 * written from it; the outputs fall back to reading the minute's raw transactions without
 * one. Both give the same tables: blocks 1..4 over two minutes, written with and without the
 * summaries. */
static void test_minute_summaries_equal_raw(void **state)
{
    (void)state;
    char pa[64], pb[64], url[96];
    bp_sink *sa, *sb;
    bp_error err = {0};
    snprintf(url, sizeof(url), "sqlite:%s", temp_db(pa, sizeof(pa)));
    assert_int_equal(bp_sink_open_url(url, &sa, &err), 0);
    snprintf(url, sizeof(url), "sqlite:%s", temp_db(pb, sizeof(pb)));
    assert_int_equal(bp_sink_open_url(url, &sb, &err), 0);
    bp_metrics_config mc = {.reorg_window = 64, .native_symbol = "ETH", .price_max_age = 60};
    bp_metrics *m = bp_metrics_new(&mc, &err);
    bp_block *b[5];
    size_t summaries = 0;
    for (uint64_t n = 1; n <= 4; n++) {
        b[n] = fx_block(n, 0, true, true);
        b[n]->timestamp = 1700000000 + 25 * n; /* 1700000025 .. 1700000100: two minutes */
        bp_event ev = {BP_EVENT_APPLY, b[n]};
        bp_batch batch = {.chain = "main", .events = &ev, .count = 1, .checkpoint = fx_cp(n, 0)};
        assert_int_equal(bp_metrics_compute(m, &batch, false, &batch.derived, &err), 0);
        summaries += batch.derived->minute_count;
        assert_int_equal(sa->ops->write(sa, &batch, &err), 0);
        bp_derived raw = *batch.derived;
        raw.minute_count = 0;
        batch.derived = &raw;
        assert_int_equal(sb->ops->write(sb, &batch, &err), 0);
    }
    assert_true(summaries >= 3); /* blocks 2, 3 and 4: their minutes were seen from the start */
    char *da = dump(pa), *db = dump(pb);
    assert_string_equal(da, db);
    assert_non_null(strstr(da, "\nmain|1700000040|2|2|3|")); /* blocks 2 and 3 */
    free(da);
    free(db);
    for (uint64_t n = 1; n <= 4; n++)
        bp_block_free(b[n]);
    bp_metrics_free(m);
    bp_sink_close(sa);
    bp_sink_close(sb);
    unlink(pa);
    unlink(pb);
}

/* ---- the anomaly model -------------------------------------------------------------------- */

static uint64_t g_rng = 88172645463325252ull;

static double unit_rand(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 9007199254740992.0;
}

static const bp_hexb *hex_bytes(bp_block *b, size_t n)
{
    char *s = malloc(2 * n + 3);
    assert_non_null(s);
    strcpy(s, "0x");
    for (size_t i = 0; i < n; i++)
        memcpy(s + 2 + 2 * i, "ab", 2);
    s[2 * n + 2] = '\0';
    const bp_hexb *h = fx_hexb(b, s);
    free(s);
    return h;
}

/* One ordinary transaction: one of 40 regular senders, about 0.1 ETH, a price near 20 gwei,
 * a transfer or a small call. */
static void ordinary_tx(bp_block *b, bp_tx *t, size_t i, uint64_t *nonces)
{
    fx_tx_common(b, t, i);
    size_t who = (size_t)(unit_rand() * 40);
    t->from_address = fx_addr(b, 0x5e, who);
    t->nonce = nonces[who]++;
    bp_u256_from_u64(&t->value.v, (uint64_t)(1e17 * exp(unit_rand() * 2 - 1)));
    t->value.set = true;
    t->gas_price = t->receipt_effective_gas_price =
        fx_qty((uint64_t)(20e9 * (0.9 + 0.2 * unit_rand())));
    t->input = unit_rand() < 0.5 ? fx_hexb(b, "0x") : hex_bytes(b, 68);
    t->gas = 100000;
    t->receipt_gas_used = 30000 + (uint64_t)(40000 * unit_rand());
    t->receipt_status = fx_opt(1);
}

static bp_block *traffic_block(uint64_t n, size_t txs, uint64_t *nonces)
{
    bp_block *b = fx_block(n, 0, false, true);
    b->tx_count = b->transaction_count = txs;
    b->txs = bp_arena_calloc(b->arena, txs + 4, sizeof(bp_tx));
    for (size_t i = 0; i < txs; i++)
        ordinary_tx(b, &b->txs[i], i, nonces);
    return b;
}

/* After ordinary traffic, four planted transactions - a huge value, a 200x gas price, a new
 * sender's failed call with 20 KB of calldata, a 24 KB contract creation - score above every
 * ordinary transaction of their block; the warm-up's transactions are scored too. */
static void test_model_finds_planted_outliers(void **state)
{
    (void)state;
    bp_metrics_config mc = {.reorg_window = 64, .native_symbol = "ETH", .predictions = true};
    bp_error err = {0};
    bp_metrics *m = bp_metrics_new(&mc, &err);
    assert_non_null(m);
    uint64_t nonces[40] = {0};
    size_t scored = 0;
    for (uint64_t n = 1; n <= 40; n++) {
        bp_block *b = traffic_block(n, 100, nonces);
        bp_event ev = {BP_EVENT_APPLY, b};
        bp_batch batch = {.chain = "main", .events = &ev, .count = 1};
        const bp_derived *d;
        assert_int_equal(bp_metrics_compute(m, &batch, false, &d, &err), 0);
        /* warm-up (the first 256 transactions) included: every one scored */
        assert_int_equal(d->blocks[0].prediction_count, 100);
        scored += d->blocks[0].prediction_count;
        bp_block_free(b);
    }
    assert_int_equal(scored, 100 * 40);
    bp_block *b = traffic_block(41, 100, nonces);
    bp_tx *t = &b->txs[100];
    ordinary_tx(b, t, 100, nonces);
    bp_u256_from_u64(&t->value.v, UINT64_MAX);         /* 18 ETH ... */
    bp_u256_mul_u64(&t->value.v, &t->value.v, 100000); /* ... x 1e5 */
    ordinary_tx(b, ++t, 101, nonces);
    t->gas_price = t->receipt_effective_gas_price = fx_qty(4000000000000u);
    ordinary_tx(b, ++t, 102, nonces);
    t->from_address = fx_addr(b, 0x99, 1);
    t->nonce = 0;
    t->input = hex_bytes(b, 20000);
    t->receipt_status = fx_opt(0);
    t->receipt_gas_used = t->gas;
    ordinary_tx(b, ++t, 103, nonces);
    t->to_address = NULL;
    t->input = hex_bytes(b, 24000);
    t->receipt_contract_address = fx_addr(b, 0xcc, 1);
    b->tx_count = b->transaction_count = 104;
    bp_event ev = {BP_EVENT_APPLY, b};
    bp_batch batch = {.chain = "main", .events = &ev, .count = 1};
    const bp_derived *d;
    assert_int_equal(bp_metrics_compute(m, &batch, false, &d, &err), 0);
    const bp_block_derived *bd = &d->blocks[0];
    assert_int_equal(bd->prediction_count, 104);
    double worst = 0, sum = 0;
    for (size_t i = 0; i < 100; i++) {
        double s = bd->predictions[i].fraud_score.v;
        assert_true(s >= 0 && s <= 1);
        assert_string_equal(bd->predictions[i].model, BP_MODEL_NAME);
        worst = s > worst ? s : worst;
        sum += s;
    }
    print_message("ordinary: mean %.3f, max %.3f; planted:", sum / 100, worst);
    for (size_t i = 100; i < 104; i++) {
        double s = bd->predictions[i].fraud_score.v;
        print_message(" %.3f", s);
        assert_true(s > worst);
        assert_true(s <= 1);
    }
    print_message("\n");
    assert_true(sum / 100 < 0.6); /* ordinary traffic scores about 0.5 */
    bp_block_free(b);
    bp_metrics_free(m);
}

/* An output's transactions as its reader gives them back (bp_sink_read's contract): the blocks
 * below `below`, each cell as text. */
typedef struct fake_output {
    bp_block **blocks; /* blocks[i] is block i + 1 */
    size_t count;
    uint64_t below;
    int reads;
} fake_output;

static int fake_row(const bp_tx *t, bp_read_row_fn fn, void *fctx)
{
    size_t first, n = bp_table_columns(BP_TABLE_TRANSACTIONS, &first);
    bp_read_cell cells[80] = {{0}};
    char text[12][BP_HEXB_TEXT];
    assert_true(n <= 80);
    bp_row r = {"main", NULL, t, NULL};
    static const bp_col_id ids[] = {BP_C_TX_BLOCK_NUMBER,
                                    BP_C_TX_TRANSACTION_INDEX,
                                    BP_C_TX_FROM_ADDRESS,
                                    BP_C_TX_TO_ADDRESS,
                                    BP_C_TX_INPUT,
                                    BP_C_TX_NONCE,
                                    BP_C_TX_GAS,
                                    BP_C_TX_VALUE,
                                    BP_C_TX_GAS_PRICE,
                                    BP_C_TX_RECEIPT_GAS_USED,
                                    BP_C_TX_RECEIPT_STATUS,
                                    BP_C_TX_RECEIPT_EFFECTIVE_GAS_PRICE};
    for (size_t k = 0; k < sizeof(ids) / sizeof(ids[0]); k++) {
        bp_value v = bp_value_of(ids[k], &r);
        bp_read_cell *c = &cells[ids[k] - BP_C_TRANSACTIONS_FIRST];
        if (v.kind == BP_VAL_U64)
            snprintf(text[k], sizeof(text[k]), "%llu", (unsigned long long)v.u);
        else if (v.kind == BP_VAL_U256)
            bp_u256_to_dec(&v.q->v, text[k]);
        else if (v.kind == BP_VAL_HEX)
            bp_hexb_text(text[k], v.h);
        if (v.kind == BP_VAL_STR)
            *c = (bp_read_cell){v.s, strlen(v.s)};
        else if (v.kind != BP_VAL_NULL)
            *c = (bp_read_cell){text[k], strlen(text[k])};
    }
    return fn(fctx, cells, n);
}

static int fake_read(void *ctx, const bp_read_query *q, bp_read_row_fn fn, void *fctx,
                     bp_error *err)
{
    (void)err;
    fake_output *o = ctx;
    o->reads++;
    assert_int_equal(q->table, BP_TABLE_TRANSACTIONS);
    assert_string_equal(q->chain, "main");
    size_t sent = 0;
    for (size_t k = 0; k < o->count; k++) {
        size_t bi = q->ascending ? k : o->count - 1 - k;
        const bp_block *b = o->blocks[bi];
        if (b->number >= o->below || (q->has_min && b->number < q->min) ||
            (q->has_max && b->number > q->max))
            continue;
        for (size_t j = 0; j < b->tx_count; j++) {
            const bp_tx *t = &b->txs[q->ascending ? j : b->tx_count - 1 - j];
            bool after = b->number > q->after_number ||
                         (b->number == q->after_number && t->transaction_index > q->after_index);
            if (q->has_after && (q->ascending ? !after : after))
                continue;
            if (q->limit && sent == q->limit)
                return 0;
            int rc = fake_row(t, fn, fctx);
            if (rc != 0)
                return rc;
            sent++;
        }
    }
    return 0;
}

/* The scores of the blocks of batch (APPLYs and REVERTs) into scores[number][index] for the
 * blocks applied last. */
static void score_batch(bp_metrics *m, const bp_event *ev, size_t n, bool empty,
                        double (*scores)[200])
{
    bp_batch batch = {.chain = "main", .events = ev, .count = n};
    const bp_derived *d;
    bp_error err = {0};
    assert_int_equal(bp_metrics_compute(m, &batch, empty, &d, &err), 0);
    for (size_t i = 0; i < d->count; i++) {
        const bp_block_derived *bd = &d->blocks[i];
        assert_int_equal(bd->prediction_count, bd->block->tx_count);
        for (size_t k = 0; k < bd->prediction_count; k++)
            scores[bd->block->number][bd->predictions[k].transaction_index] =
                bd->predictions[k].fraud_score.v;
    }
}

/* A process started at any block, or a reorg, gives every transaction the score an
 * uninterrupted run gives it: the model's state is rebuilt from what the output holds
 * (metrics/history.c), the batch's own blocks not written yet included. Blocks of 0 to 170
 * transactions, 14,000 in all: the restart at 150 replays only the last ~8,200 before its
 * anchor, the one at 5 everything. */
static void test_model_restart_scores_as_uninterrupted(void **state)
{
    (void)state;
    enum { NB = 160 };
    uint64_t nonces[40] = {0};
    static bp_block *blocks[NB];
    static double want[NB + 1][200], got[NB + 1][200];
    size_t total = 0;
    for (uint64_t n = 1; n <= NB; n++) {
        blocks[n - 1] = traffic_block(n, n % 7 == 0 ? 0 : (size_t)(20 + n * 37 % 150), nonces);
        total += blocks[n - 1]->tx_count;
    }
    assert_true(total > 2 * BP_MODEL_WINDOW + 4000);
    bp_error err = {0};
    bp_metrics_config mc = {.reorg_window = 64, .native_symbol = "ETH", .predictions = true};
    bp_metrics *ref = bp_metrics_new(&mc, &err);
    assert_non_null(ref);
    for (size_t i = 0; i < NB; i++) {
        bp_event ev = {BP_EVENT_APPLY, blocks[i]};
        score_batch(ref, &ev, 1, i == 0, want);
    }
    bp_metrics_free(ref);
    static const uint64_t starts[] = {150, 5, 129};
    for (size_t s = 0; s < sizeof(starts) / sizeof(starts[0]); s++) {
        uint64_t from = starts[s];
        fake_output out = {blocks, NB, from, 0};
        mc.history = (bp_metrics_history){fake_read, NULL, &out};
        bp_metrics *m = bp_metrics_new(&mc, &err);
        assert_non_null(m);
        memset(got, 0, sizeof(got));
        /* the batch: from, from + 1, a reorg of from + 1 (the same block comes back), then on */
        bp_event ev[8] = {{BP_EVENT_APPLY, blocks[from - 1]},
                          {BP_EVENT_APPLY, blocks[from]},
                          {BP_EVENT_REVERT, blocks[from]},
                          {BP_EVENT_APPLY, blocks[from]}};
        size_t n = 4;
        for (uint64_t k = from + 2; k <= from + 5; k++)
            ev[n++] = (bp_event){BP_EVENT_APPLY, blocks[k - 1]};
        score_batch(m, ev, n, false, got);
        for (uint64_t k = from; k <= from + 5; k++)
            for (size_t j = 0; j < blocks[k - 1]->tx_count; j++)
                if (got[k][j] != want[k][j])
                    fail_msg("restart at %llu: block %llu tx %zu scored %.17g, uninterrupted %.17g",
                             (unsigned long long)from, (unsigned long long)k, j, got[k][j],
                             want[k][j]);
        assert_true(out.reads >= 3); /* the start, and the reorg (the first in pages) */
        bp_metrics_free(m);
    }
    for (size_t i = 0; i < NB; i++)
        bp_block_free(blocks[i]);
}

/* Two SQLite outputs in fresh temporary files (their paths in pa and pb). */
static void open_pair(char pa[64], char pb[64], bp_sink *s[2])
{
    bp_error err = {0};
    char url[96];
    snprintf(url, sizeof(url), "sqlite:%s", temp_db(pa, 64));
    assert_int_equal(bp_sink_open_url(url, &s[0], &err), 0);
    snprintf(url, sizeof(url), "sqlite:%s", temp_db(pb, 64));
    assert_int_equal(bp_sink_open_url(url, &s[1], &err), 0);
}

/* An output set aside at block 3 rejoins (core/pipeline.c rejoin): the module, which went on to
 * block 6 for the other output, gets blocks 4..6 again. All six share a minute (so an hour and
 * a day) whose sets and sums already hold 4..6: the blocks applied again must not be taken for
 * known (no set rows left out as seen, no minute summary counting them twice), and the rejoined
 * output ends up holding exactly what the other one holds. */
static void test_replay_after_rejoin(void **state)
{
    (void)state;
    char pa[64], pb[64];
    bp_sink *s[2];
    bp_error err = {0};
    open_pair(pa, pb, s);
    bp_metrics_config mc = {.reorg_window = 64, .native_symbol = "ETH", .price_max_age = 60};
    bp_metrics *m = bp_metrics_new(&mc, &err);
    assert_non_null(m);
    uint64_t nonces[40] = {0};
    bp_block *b[7] = {0};
    for (uint64_t n = 1; n <= 6; n++) {
        b[n] = traffic_block(n, 30, nonces);
        b[n]->timestamp = 1700000000 + 5 * n; /* 1700000005 .. 1700000030: one minute */
        bp_event ev = {BP_EVENT_APPLY, b[n]};
        bp_batch batch = {.chain = "main", .events = &ev, .count = 1, .checkpoint = fx_cp(n, 0)};
        assert_int_equal(bp_metrics_compute(m, &batch, n == 1, &batch.derived, &err), 0);
        for (int i = 0; i < (n <= 3 ? 2 : 1); i++)
            assert_int_equal(s[i]->ops->write(s[i], &batch, &err), 0);
    }
    bp_event ev[3] = {{BP_EVENT_APPLY, b[4]}, {BP_EVENT_APPLY, b[5]}, {BP_EVENT_APPLY, b[6]}};
    bp_batch batch = {.chain = "main", .events = ev, .count = 3, .checkpoint = fx_cp(6, 0)};
    assert_int_equal(bp_metrics_compute(m, &batch, false, &batch.derived, &err), 0);
    const bp_block_derived *bd = &batch.derived->blocks[0];
    assert_int_equal(bd->set_row_count, 2 * (bd->sender_count + bd->pair_count));
    for (size_t j = 0; j < bd->set_row_count; j++)
        assert_false(bd->set_rows[j].known_new);
    assert_int_equal(batch.derived->minute_count, 0);
    if (s[1]->ops->write(s[1], &batch, &err) != 0)
        fail_msg("write: %s", err.msg);
    assert_same_tables(pa, pb);
    for (uint64_t n = 1; n <= 6; n++)
        bp_block_free(b[n]);
    bp_metrics_free(m);
    for (int i = 0; i < 2; i++)
        bp_sink_close(s[i]);
    unlink(pa);
    unlink(pb);
}

/* Two SQLite files, each written by a module of its own: m[0] keeps its open windows, m[1]'s
 * are bounded to nothing (every window given up as soon as it holds anything) and charged to
 * budget. */
typedef struct bounded_pair {
    char pa[64], pb[64];
    bp_sink *s[2];
    bp_metrics *m[2];
    bp_budget budget;
} bounded_pair;

static void bounded_pair_open(bounded_pair *p)
{
    bp_error err = {0};
    open_pair(p->pa, p->pb, p->s);
    bp_metrics_config mc = {.reorg_window = 64, .native_symbol = "ETH", .price_max_age = 60};
    bp_budget_init(&p->budget, (size_t)1 << 30);
    for (int i = 0; i < 2; i++)
        assert_non_null(p->m[i] = bp_metrics_new(&mc, &err));
    bp_metrics_set_budget(p->m[1], &p->budget, 1);
}

/* Block n (b) applied through both modules, one batch each: check (may be NULL) sees each
 * module's batch between its computation and its write into that module's file. */
typedef void (*pair_check_fn)(bounded_pair *p, int i, uint64_t n, const bp_batch *batch, void *ctx);

static void bounded_pair_apply(bounded_pair *p, bp_block *b, uint64_t n, pair_check_fn check,
                               void *ctx)
{
    bp_error err = {0};
    bp_event ev = {BP_EVENT_APPLY, b};
    for (int i = 0; i < 2; i++) {
        bp_batch batch = {.chain = "main", .events = &ev, .count = 1, .checkpoint = fx_cp(n, 0)};
        assert_int_equal(bp_metrics_compute(p->m[i], &batch, n == 1, &batch.derived, &err), 0);
        if (check)
            check(p, i, n, &batch, ctx);
        assert_int_equal(p->s[i]->ops->write(p->s[i], &batch, &err), 0);
    }
}

static void bounded_pair_close(bounded_pair *p)
{
    bp_metrics_set_budget(p->m[1], NULL, 0);
    bp_budget_release(&p->budget);
    for (int i = 0; i < 2; i++) {
        bp_metrics_free(p->m[i]);
        bp_sink_close(p->s[i]);
    }
    unlink(p->pa);
    unlink(p->pb);
}

/* Open windows bounded to nothing: every window is given up as soon as it holds anything, a
 * block's set rows are then all of its distinct ones (the outputs' tables decide what is new),
 * and the SQLite output holds exactly what it holds with unbounded windows; what the module
 * holds is charged to the budget, and refunded when it lets go of it (after the write, and
 * all of it when the pipeline waits for memory). */
static void window_bound_check(bounded_pair *p, int i, uint64_t n, const bp_batch *batch, void *ctx)
{
    (void)n;
    (void)ctx;
    const bp_block_derived *bd = &batch->derived->blocks[0];
    if (i == 1) { /* given up: every distinct sender and pair, in the hour and the day */
        assert_int_equal(bd->set_row_count, 2 * (bd->sender_count + bd->pair_count));
        assert_int_equal(batch->derived->minute_count, 0);
        assert_true(bp_budget_used(&p->budget) > 0);
    }
}

static void test_window_bound(void **state)
{
    (void)state;
    bounded_pair bp;
    bounded_pair_open(&bp);
    bp_metrics **m = bp.m;
    uint64_t nonces[40] = {0};
    bp_block *b[7] = {0};
    for (uint64_t n = 1; n <= 6; n++) {
        b[n] = traffic_block(n, 30, nonces);
        b[n]->timestamp = 1700000000 + 20 * n;
        bounded_pair_apply(&bp, b[n], n, window_bound_check, NULL);
    }
    /* after the write the batch's rows are let go of; shedding frees the rest */
    size_t held = bp_budget_used(&bp.budget);
    bp_metrics_written(m[1]);
    assert_true(bp_budget_used(&bp.budget) <= held);
    assert_true(bp_metrics_shed(m[1]) > 0);
    assert_int_equal(bp_budget_used(&bp.budget), 0);
    assert_true(bp_metrics_windows_dropped(m[1]) >= 3);
    assert_int_equal(bp_metrics_windows_dropped(m[0]), 0);
    /* given up, the hour's and day's sets are stored; seen whole, they need not be */
    assert_int_equal(stored_set_windows(bp.pa), 0);
    assert_int_equal(stored_set_windows(bp.pb), 2);
    assert_same_tables(bp.pa, bp.pb);
    bp_metrics_set_budget(m[1], NULL, 0);
    assert_int_equal(bp_budget_used(&bp.budget), 0);
    for (uint64_t n = 1; n <= 6; n++)
        bp_block_free(b[n]);
    bounded_pair_close(&bp);
}

/* A member seen again never grows its window's table: a table one new key short of doubling
 * (three quarters full) keeps its bytes on a repeat, and doubles on the next new key. Before,
 * it doubled on the repeat, which could tip a window over the sets' share and give it up. */
static void test_u64map_repeat_keeps_size(void **state)
{
    (void)state;
    bp_u64map m;
    bp_u64map_init(&m, false);
    bool added = false;
    uint64_t k = 1;
    for (;; k++) {
        assert_int_equal(bp_u64map_put(&m, k, 0, &added, NULL), 0);
        if (m.cap >= 64 && 4 * (m.count + 1) > 3 * m.cap)
            break;
    }
    size_t bytes = bp_u64map_bytes(&m);
    assert_int_equal(bp_u64map_put(&m, 1, 0, &added, NULL), 0);
    assert_false(added);
    assert_int_equal(bp_u64map_bytes(&m), bytes);
    assert_int_equal(bp_u64map_put(&m, k + 1, 0, &added, NULL), 0);
    assert_true(added);
    assert_true(bp_u64map_bytes(&m) > bytes);
    bp_u64map_release(&m);
}

static int cmp_u256_ref(const void *a, const void *b)
{
    return bp_u256_cmp(a, b);
}

/* A block's median gas price (the lower one) is selected, not sorted for: the same as a sort's
 * for every size and shape of prices that makes a selection go wrong or slow (sorted either
 * way, all equal, few values, an organ pipe, above 2^64, random). */
static void test_median_gas_price(void **state)
{
    (void)state;
    const size_t sizes[] = {1, 2, 3, 4, 7, 64, 200, 1001};
    uint64_t nonces[40] = {0};
    bp_arena *a = bp_arena_new(1u << 16);
    assert_non_null(a);
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        size_t n = sizes[si];
        for (int shape = 0; shape < 6; shape++) {
            bp_block *b = traffic_block(1, n, nonces);
            bp_u256 *ref = calloc(n, sizeof(*ref));
            assert_non_null(ref);
            for (size_t i = 0; i < n; i++) {
                uint64_t v = shape == 0   ? i
                             : shape == 1 ? n - i
                             : shape == 2 ? 7
                             : shape == 3 ? i % 3
                             : shape == 4 ? (i < n / 2 ? i : n - i)
                                          : (uint64_t)(unit_rand() * 1e6);
                bp_qty q = fx_qty(v);
                if (shape == 5 && i % 2) /* half of them past 2^64 */
                    bp_u256_mul_u64(&q.v, &q.v, UINT64_MAX);
                b->txs[i].gas_price = b->txs[i].receipt_effective_gas_price = q;
                ref[i] = q.v;
            }
            qsort(ref, n, sizeof(*ref), cmp_u256_ref);
            bp_block_derived d;
            assert_int_equal(bp_metrics_derive_block("main", b, a, &d), 0);
            assert_true(d.chain.median_gas_price.set);
            assert_int_equal(bp_u256_cmp(&d.chain.median_gas_price.v, &ref[(n - 1) / 2]), 0);
            free(ref);
            bp_block_free(b);
            bp_arena_recycle(a, 1u << 16);
        }
    }
    bp_arena_free(a);
}

/* An hour's close merges its members into the day's table in the hour's slot order, which is
 * their hash order. Into a day table that grew as they came (the same hash, a smaller table)
 * the first of them filled its first slots twice over and every later insert walked the
 * cluster: 40,000 senders took 320 probes each. Sized first, the merge probes about
 * as a random insert does; the day's table is no bigger than its members need. */
static void test_hour_close_probes(void **state)
{
    (void)state;
    enum { BLOCKS = 40, SENDERS = 1000 };
    const uint64_t day = 1699920000; /* a day's first second */
    bp_open_windows o = {0};
    bp_arena *arena = bp_arena_new(1u << 20);
    assert_non_null(arena);
    char(*addr)[BP_INTERN_STR] = calloc((size_t)BLOCKS * SENDERS, sizeof(*addr));
    const char **senders = calloc((size_t)BLOCKS * SENDERS, sizeof(*senders));
    assert_non_null(addr);
    assert_non_null(senders);
    for (size_t i = 0; i < (size_t)BLOCKS * SENDERS; i++) {
        snprintf(addr[i], sizeof(addr[i]), "0x%040zx", i + 1);
        senders[i] = addr[i];
    }
    uint64_t prev = 0;
    for (uint64_t n = 0; n <= BLOCKS; n++) { /* the last block begins the day's second hour */
        bp_block_derived bd = {.chain = {.origin_key = "main",
                                         .block_number = n,
                                         .block_timestamp = n < BLOCKS ? day + n : day + 3600}};
        bd.senders = n < BLOCKS ? senders + n * SENDERS : senders;
        bd.sender_count = SENDERS;
        assert_int_equal(bp_open_apply(&o, &bd, NULL, true, prev, arena), 0);
        prev = bd.chain.block_timestamp;
    }
    const bp_u64map *d = &o.win[BP_GRAIN_1D].members;
    assert_true(o.win[BP_GRAIN_1D].valid);
    assert_int_equal(d->count, (size_t)BLOCKS * SENDERS);
    assert_int_equal(d->cap, 65536);       /* the least that holds 40,000 at three quarters */
    assert_true(d->probes < 2 * d->count); /* 0.65 a member; 320 before */
    bp_open_release(&o);
    bp_arena_free(arena);
    free(senders);
    free(addr);
}

/* The day's set holds only its closed hours' members (the open hour's set has the others, so
 * a day in its first hour costs nothing beyond its hour), and its rows stay exact: a sender or
 * pair of an earlier hour of the day is new to the hour, not to the day. Blocks over three
 * hours of one day, through a module that keeps its windows and one bounded to nothing (every
 * window given up: the output's tables decide), give the same tables. */
/* ctx: the count of blocks with a member new to the hour, not to the day */
static void closed_hours_check(bounded_pair *p, int i, uint64_t n, const bp_batch *batch, void *ctx)
{
    size_t *repeats = ctx;
    const bp_block_derived *bd = &batch->derived->blocks[0];
    size_t rows[BP_GRAIN_COUNT] = {0};
    for (size_t j = 0; j < bd->set_row_count; j++) {
        assert_true(bd->set_rows[j].known_new || i == 1); /* (the first block's are) */
        rows[bp_derived_set_grain(&bd->set_rows[j])]++;
    }
    if (i == 0) {
        assert_true(rows[BP_GRAIN_1D] <= rows[BP_GRAIN_1H]);
        *repeats += rows[BP_GRAIN_1D] < rows[BP_GRAIN_1H];
        bp_open_peak now;
        bp_metrics_sets_now(p->m[0], &now);
        assert_true(now.members[BP_GRAIN_1H] > 0);
        assert_true(now.members[BP_GRAIN_1D] >= now.members[BP_GRAIN_1H]);
        /* in the day's first hour its table is empty; later it has the closed hours' */
        if (n <= 3)
            assert_int_equal(now.stored[BP_GRAIN_1D], 0);
        else
            assert_true(now.stored[BP_GRAIN_1D] > 0 &&
                        now.stored[BP_GRAIN_1D] < now.members[BP_GRAIN_1D]);
    }
}

static void test_day_holds_closed_hours(void **state)
{
    (void)state;
    bounded_pair bp;
    bounded_pair_open(&bp);
    bp_metrics **m = bp.m;
    uint64_t nonces[40] = {0};
    bp_block *b[10] = {0};
    const uint64_t day = 1699920000; /* a day's first second */
    size_t repeats = 0;              /* blocks with a member new to the hour, not to the day */
    for (uint64_t n = 1; n <= 9; n++) {
        b[n] = traffic_block(n, 20, nonces);
        b[n]->timestamp = day + 3600 * ((n - 1) / 3) + 100 * n; /* 3 blocks an hour */
        bounded_pair_apply(&bp, b[n], n, closed_hours_check, &repeats);
    }
    assert_true(repeats > 0);
    assert_int_equal(bp_metrics_windows_dropped(m[0]), 0);
    assert_same_tables(bp.pa, bp.pb);
    for (uint64_t n = 1; n <= 9; n++)
        bp_block_free(b[n]);
    bounded_pair_close(&bp);
}

/* A database of schema 1 (raw tables only) gets the derived tables when opened. */
static void test_upgrade_from_schema_1(void **state)
{
    (void)state;
    char path[64], url[96];
    snprintf(url, sizeof(url), "sqlite:%s?metrics=off", temp_db(path, sizeof(path)));
    bp_sink *s;
    bp_error err = {0};
    assert_int_equal(bp_sink_open_url(url, &s, &err), 0);
    assert_false(s->derived);
    bp_sink_close(s);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    for (int t = 0; t < BP_DT_COUNT; t++) {
        char sql[160];
        if (bp_dtables[t].timecol) {
            snprintf(sql, sizeof(sql), "DROP VIEW %s_v", bp_dtables[t].name);
            assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        }
        snprintf(sql, sizeof(sql), "DROP TABLE %s", bp_dtables[t].name);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    }
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
    snprintf(url, sizeof(url), "sqlite:%s", path);
    assert_int_equal(bp_sink_open_url(url, &s, &err), 0);
    assert_true(s->derived);
    assert_one(db, "PRAGMA user_version", "4");
    assert_one(db, "SELECT count(*) FROM chain_metrics_1d_v", "0");
    /* 4 raw tables (blocks, transactions, logs, checkpoints), the 12 derived ones and the
     * record of their groups, derived_groups (the arch_* ones only once an Arch chain
     * writes) */
    assert_one(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table'", "17");
    assert_one(db, "SELECT count(*) FROM sqlite_master WHERE type = 'view'", "6");
    bp_sink_close(s);
    sqlite3_close(db);
    unlink(path);
}

/* Interned addresses: one spelled as nodes send it is kept as its 20 bytes and written out the
 * same; any other string (uppercase digits, another length) keeps its own id and text. */
static void test_intern_addresses(void **state)
{
    (void)state;
    bp_intern t = {0};
    const char *plain = "0x00112233445566778899aabbccddeeff00112233";
    const char *upper = "0x00112233445566778899AABBCCDDEEFF00112233";
    const char *odd[] = {upper, "0xabc", "not an address", ""};
    uint32_t id, again, ids[4];
    char buf[BP_INTERN_STR];
    assert_int_equal(bp_intern_find(&t, plain), 0);
    assert_int_equal(bp_intern_id(&t, plain, &id), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(bp_intern_id(&t, odd[i], &ids[i]), 0);
        assert_int_not_equal(ids[i], id);
    }
    /* enough more to grow the tables (1,024 slots at first) past their first size */
    for (unsigned i = 0; i < 3000; i++) {
        char a[BP_INTERN_STR];
        snprintf(a, sizeof(a), "0x%040x", i + 1);
        assert_int_equal(bp_intern_id(&t, a, &again), 0);
    }
    assert_int_equal(bp_intern_id(&t, plain, &again), 0);
    assert_int_equal(again, id);
    assert_int_equal(bp_intern_find(&t, plain), id);
    assert_string_equal(bp_intern_str(&t, id, buf), plain);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(bp_intern_find(&t, odd[i]), ids[i]);
        assert_string_equal(bp_intern_str(&t, ids[i], buf), odd[i]);
    }
    assert_int_equal(bp_intern_find(&t, "0x0000000000000000000000000000000000000bb8"), 3000 + 5);
    assert_string_equal(bp_intern_str(&t, 3000 + 5, buf),
                        "0x0000000000000000000000000000000000000bb8");
    bp_intern_clear(&t);
    assert_int_equal(bp_intern_find(&t, plain), 0);
    assert_int_equal(bp_intern_id(&t, upper, &again), 0);
    assert_int_equal(again, 1);
    bp_intern_release(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_derive_fixture_block),
        cmocka_unit_test(test_fees_include_l1_fee),
        cmocka_unit_test(test_extract_job_fixture),
        cmocka_unit_test(test_export_job_fixture),
        cmocka_unit_test(test_erc1155),
        cmocka_unit_test(test_sql_functions),
        cmocka_unit_test(test_apply_revert_roundtrip),
        cmocka_unit_test(test_token_transfers_key),
        cmocka_unit_test(test_minute_summaries_equal_raw),
        cmocka_unit_test(test_derived_late_equal),
        cmocka_unit_test(test_model_finds_planted_outliers),
        cmocka_unit_test(test_model_restart_scores_as_uninterrupted),
        cmocka_unit_test(test_window_bound),
        cmocka_unit_test(test_day_holds_closed_hours),
        cmocka_unit_test(test_u64map_repeat_keeps_size),
        cmocka_unit_test(test_hour_close_probes),
        cmocka_unit_test(test_median_gas_price),
        cmocka_unit_test(test_replay_after_rejoin),
        cmocka_unit_test(test_upgrade_from_schema_1),
        cmocka_unit_test(test_intern_addresses),
        cmocka_unit_test(test_derived_selection),
        cmocka_unit_test(test_metrics_skip_groups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
