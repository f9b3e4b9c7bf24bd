/* test_columns.c - the column table (blockpipe/columns.h) and the outputs made from it: the
 * SQLite tables hold exactly its columns (names, order, types, NOT NULL, keys); the ethereum-etl
 * CSV headers and JSON-lines keys are its ethereum-etl columns under their names plus the
 * stream fields ethereum-etl adds; every value accessor reads the field it names. (PostgreSQL's
 * tables are checked against `blockpipe --help-columns` by integration/test_schema_columns.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "blockpipe/columns.h"
#include "sink_fixture.h"
#include "testfile.h"

/* Hex kept as bytes (r, s, a receipt's bloom) reads back as the text it was made from,
 * lower-cased: an odd digit count (r and s are quantities), "0x" alone, a full bloom, and a value
 * past BP_HEXB_MAX digits, kept as text. */
static void test_hexb_values(void **state)
{
    (void)state;
    bp_block *b = fx_block(7, 0, true, true);
    char bloom[2 + BP_HEXB_MAX + 1], long_s[2 + BP_HEXB_MAX + 2 + 1], want[sizeof(long_s)];
    bloom[0] = long_s[0] = '0';
    bloom[1] = long_s[1] = 'x';
    for (size_t i = 0; i < BP_HEXB_MAX + 2; i++) {
        if (i < BP_HEXB_MAX)
            bloom[2 + i] = "0123456789abcdef"[(i * 7) % 16];
        long_s[2 + i] = "0123456789ABCDEF"[i % 16];
    }
    bloom[2 + BP_HEXB_MAX] = long_s[2 + BP_HEXB_MAX + 2] = '\0';
    struct {
        const char *text, *want;
    } cases[] = {{"0x1", "0x1"},   {"0xAbC", "0xabc"}, {"0x", "0x"},
                 {"0x00", "0x00"}, {bloom, bloom},     {long_s, want}};
    for (size_t i = 0; i < sizeof(long_s); i++)
        want[i] = (char)(i > 1 && long_s[i] >= 'A' ? long_s[i] | 0x20 : long_s[i]);
    bp_tx *t = &b->txs[0];
    bp_row r = {.chain = "main", .block = b, .tx = t};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        t->r = bp_hexb_make(b->arena, cases[k].text, strlen(cases[k].text));
        t->receipt_logs_bloom = t->r;
        for (int c = 0; c < 2; c++) {
            bp_value v = bp_value_of(c ? BP_C_TX_RECEIPT_LOGS_BLOOM : BP_C_TX_R, &r);
            char text[BP_HEXB_TEXT];
            if (strlen(cases[k].text) > 2 + BP_HEXB_MAX) {
                assert_int_equal(v.kind, BP_VAL_STR);
                assert_string_equal(v.s, cases[k].want);
                continue;
            }
            assert_int_equal(v.kind, BP_VAL_HEX);
            assert_int_equal(bp_hexb_text(text, v.h), strlen(cases[k].want));
            assert_int_equal(bp_hexb_text_len(v.h), strlen(cases[k].want));
            assert_string_equal(text, cases[k].want);
        }
    }
    t->r = NULL;
    assert_int_equal(bp_value_of(BP_C_TX_R, &r).kind, BP_VAL_NULL);
    bp_block_free(b);
}

static void test_table_shape(void **state)
{
    (void)state;
    size_t seen = 0;
    for (bp_table t = 0; t < BP_TABLE_COUNT; t++) {
        size_t first, n = bp_table_columns(t, &first);
        assert_true(n > 0);
        assert_int_equal(first, seen); /* grouped by table, in table order */
        seen += n;
        assert_string_equal(bp_columns[first].name, "chain");
        for (size_t i = first; i < first + n; i++) {
            const bp_column *c = &bp_columns[i];
            assert_int_equal(c->table, t);
            if (c->flags & BP_COL_KEY)
                assert_true(c->flags & BP_COL_NOTNULL);
            char q[96];
            snprintf(q, sizeof(q), "%s.%s", bp_table_name(t), c->name);
            assert_string_equal(c->qname, q);
            assert_string_not_equal(bp_col_type_name(c->type), "?");
            assert_int_equal(bp_col_type_of((bp_col_id)i), c->type);
            for (size_t j = first; j < i; j++)
                assert_string_not_equal(bp_columns[j].name, c->name);
        }
    }
    assert_int_equal(seen, BP_C_COUNT);
    size_t txs = bp_table_columns(BP_TABLE_TRANSACTIONS, &seen);
    assert_int_equal(seen, BP_C_TRANSACTIONS_FIRST);
    assert_int_equal(txs, BP_C_LOGS_FIRST - BP_C_TRANSACTIONS_FIRST);
}

/* Every accessor reads the field its column names: values of the fixture block compared with
 * the fields themselves. */
static void test_values(void **state)
{
    (void)state;
    bp_block *b = fx_block(7, 0, true, true);
    bp_row r = {.chain = "main", .block = b, .tx = &b->txs[0]};
    bp_value v = bp_value_of(BP_C_BLOCK_NUMBER, &r);
    assert_int_equal(v.kind, BP_VAL_U64);
    assert_int_equal(v.u, 7);
    v = bp_value_of(BP_C_BLOCK_HASH, &r);
    assert_ptr_equal(v.s, b->hash);
    v = bp_value_of(BP_C_BLOCK_CHAIN, &r);
    assert_string_equal(v.s, "main");
    v = bp_value_of(BP_C_BLOCK_TRANSACTION_COUNT, &r);
    assert_int_equal(v.u, b->transaction_count);
    v = bp_value_of(BP_C_BLOCK_WITHDRAWALS, &r);
    assert_int_equal(v.kind, b->has_withdrawals ? BP_VAL_WITHDRAWALS : BP_VAL_NULL);
    v = bp_value_of(BP_C_TX_VALUE, &r);
    assert_int_equal(v.kind, BP_VAL_U256);
    assert_ptr_equal(v.q, &b->txs[0].value);
    v = bp_value_of(BP_C_TX_TO_ADDRESS, &r);
    assert_ptr_equal(v.s, b->txs[0].to_address);
    v = bp_value_of(BP_C_TX_RECEIPT_GAS_USED, &r);
    assert_int_equal(v.u, b->txs[0].receipt_gas_used);
    b->txs[0].has_receipt = false; /* receipt columns are null without a receipt */
    v = bp_value_of(BP_C_TX_RECEIPT_GAS_USED, &r);
    assert_int_equal(v.kind, BP_VAL_NULL);
    b->txs[0].has_receipt = true;
    r.tx = NULL;
    for (size_t i = 0; i < b->log_count; i++) {
        r.log = &b->logs[i];
        v = bp_value_of(BP_C_LOG_LOG_INDEX, &r);
        assert_int_equal(v.u, b->logs[i].log_index);
        v = bp_value_of(BP_C_LOG_BLOCK_HASH, &r);
        assert_ptr_equal(v.s, b->hash);
        for (int k = 0; k < 4; k++) {
            v = bp_value_of((bp_col_id)(BP_C_LOG_TOPIC0 + k), &r);
            assert_int_equal(v.kind, k < b->logs[i].topic_count ? BP_VAL_STR : BP_VAL_NULL);
        }
    }
    bp_block_free(b);
}

static void test_sqlite_schema(void **state)
{
    (void)state;
    char path[] = "/tmp/bp_test_columns_XXXXXX.db", url[64];
    int fd = mkstemps(path, 3);
    assert_true(fd >= 0);
    close(fd);
    snprintf(url, sizeof(url), "sqlite:%s", path);
    bp_sink *s = NULL;
    bp_error err = {0};
    if (bp_sink_open_url(url, &s, &err) != 0)
        fail_msg("%s", err.msg);
    bp_sink_close(s);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    for (bp_table t = 0; t < BP_TABLE_COUNT; t++) {
        char sql[96];
        snprintf(sql, sizeof(sql), "PRAGMA table_info(%s)", bp_table_name(t));
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        size_t first, n = bp_table_columns(t, &first), i = 0;
        for (; sqlite3_step(st) == SQLITE_ROW; i++) {
            assert_true(i < n);
            const bp_column *c = &bp_columns[first + i];
            bool integer =
                c->type == BP_COL_INT64 || c->type == BP_COL_UINT64 || c->type == BP_COL_BOOL;
            assert_string_equal((const char *)sqlite3_column_text(st, 1), c->name);
            assert_string_equal((const char *)sqlite3_column_text(st, 2),
                                integer ? "INTEGER" : "TEXT");
            assert_int_equal(sqlite3_column_int(st, 3), (c->flags & BP_COL_NOTNULL) != 0);
            assert_int_equal(sqlite3_column_int(st, 5) != 0, (c->flags & BP_COL_KEY) != 0);
        }
        assert_int_equal(i, n);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    unlink(path);
    char wal[80];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    unlink(wal);
    snprintf(wal, sizeof(wal), "%s-shm", path);
    unlink(wal);
}

/* One fixture block written through a file output into a new directory. */
static void write_files(const char *scheme, char *dir)
{
    char url[128];
    strcpy(dir, "/tmp/bp_test_columns_XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(url, sizeof(url), "%s:%s", scheme, dir);
    bp_sink *s = NULL;
    bp_error err = {0};
    if (bp_sink_open_url(url, &s, &err) != 0)
        fail_msg("%s", err.msg);
    bp_block *b = fx_block(1, 0, true, true);
    bp_event ev = {BP_EVENT_APPLY, b};
    bp_batch batch = {
        .chain = "main", .events = &ev, .count = 1, .checkpoint = {.set = true, .number = 1}};
    if (s->ops->write(s, &batch, &err) != 0)
        fail_msg("%s", err.msg);
    bp_block_free(b);
    bp_sink_close(s);
}

static char *file_in(const char *dir, const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    char *text = bp_test_slurp(path, NULL);
    if (!text)
        fail_msg("%s: missing", path);
    unlink(path);
    return text;
}

static void remove_dir(const char *dir)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/checkpoint.json", dir);
    unlink(path);
    rmdir(dir);
}

/* Is name one of the fields: "a,b,c" split on sep, ending at stop. */
static bool has_field(const char *fields, const char *name, char sep, char stop)
{
    size_t n = strlen(name);
    for (const char *p = fields; *p && *p != stop;) {
        size_t len = strcspn(p, (char[]){sep, stop, 0});
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        p += len + (p[len] == sep);
    }
    return false;
}

/* The etl columns of table t (receipt ones: receipts.csv) are all in the header, and every
 * header cell is one of them or one of the extras ethereum-etl has. */
static void check_header(const char *header, bp_table t, bool receipts, const char *extras)
{
    size_t first, n = bp_table_columns(t, &first);
    for (size_t i = first; i < first + n; i++) {
        const bp_column *c = &bp_columns[i];
        if (c->etl_name && ((c->flags & BP_COL_RECEIPTS) != 0) == receipts &&
            !has_field(header, c->etl_name, ',', '\n'))
            fail_msg("%s column %s (%s) missing from header %s", bp_table_name(t), c->name,
                     c->etl_name, header);
    }
    for (const char *p = header; *p && *p != '\n';) {
        size_t len = strcspn(p, ",\n");
        char cell[64];
        snprintf(cell, sizeof(cell), "%.*s", (int)len, p);
        bool known = has_field(extras, cell, ',', '\0');
        for (size_t i = first; i < first + n && !known; i++)
            known = bp_columns[i].etl_name && strcmp(bp_columns[i].etl_name, cell) == 0;
        if (!known)
            fail_msg("header cell %s of %s is not a column", cell, bp_table_name(t));
        p += len + (p[len] == ',');
    }
}

static void test_etl_csv_headers(void **state)
{
    (void)state;
    char dir[64];
    write_files("etl-csv", dir);
    char *f = file_in(dir, "blocks.csv");
    check_header(f, BP_TABLE_BLOCKS, false, "");
    free(f);
    f = file_in(dir, "transactions.csv");
    check_header(f, BP_TABLE_TRANSACTIONS, false, "");
    free(f);
    f = file_in(dir, "receipts.csv");
    check_header(f, BP_TABLE_TRANSACTIONS, true,
                 "transaction_hash,transaction_index,block_hash,block_number,l1_fee,l1_gas_used,"
                 "l1_gas_price,l1_fee_scalar");
    free(f);
    f = file_in(dir, "logs.csv");
    check_header(f, BP_TABLE_LOGS, false, "topics");
    free(f);
    char path[128];
    snprintf(path, sizeof(path), "%s/reverts.csv", dir);
    unlink(path);
    remove_dir(dir);
}

/* The keys of the first line: "type","chain", the table's etl columns (by name), the extras. */
static void check_keys(const char *line, bp_table t, const char *extras)
{
    size_t first, n = bp_table_columns(t, &first);
    char keys[4096] = "";
    int depth = 0;
    for (const char *p = line; *p && *p != '\n'; p++) { /* the keys of the outer object */
        if (*p == '{' || *p == '[')
            depth++;
        else if (*p == '}' || *p == ']')
            depth--;
        if (*p != '"')
            continue;
        const char *end = strchr(p + 1, '"'); /* our keys and hex values have no escapes */
        assert_non_null(end);
        if (depth == 1 && end[1] == ':') {
            strncat(keys, p + 1, (size_t)(end - p - 1));
            strcat(keys, ",");
        }
        p = end;
    }
    for (size_t i = first; i < first + n; i++)
        if (bp_columns[i].etl_name && !has_field(keys, bp_columns[i].name, ',', '\0'))
            fail_msg("key %s missing from %s", bp_columns[i].name, line);
    for (const char *p = keys; *p;) {
        size_t len = strcspn(p, ",");
        char key[64];
        snprintf(key, sizeof(key), "%.*s", (int)len, p);
        bool known = has_field(extras, key, ',', '\0');
        for (size_t i = first; i < first + n && !known; i++)
            known = strcmp(bp_columns[i].name, key) == 0;
        if (!known)
            fail_msg("key %s of %s is not a column", key, bp_table_name(t));
        p += len + 1;
    }
}

static void test_jsonl_keys(void **state)
{
    (void)state;
    char dir[64];
    write_files("jsonl", dir);
    char *f = file_in(dir, "blocks.jsonl");
    check_keys(f, BP_TABLE_BLOCKS, "type,chain,item_id,item_timestamp");
    free(f);
    f = file_in(dir, "transactions.jsonl");
    check_keys(f, BP_TABLE_TRANSACTIONS,
               "type,chain,item_id,item_timestamp,receipt_l1_fee,receipt_l1_gas_used,"
               "receipt_l1_gas_price,receipt_l1_fee_scalar");
    free(f);
    f = file_in(dir, "logs.jsonl");
    check_keys(f, BP_TABLE_LOGS, "type,chain,item_id,item_timestamp,topics,block_timestamp");
    free(f);
    remove_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_shape),     cmocka_unit_test(test_values),
        cmocka_unit_test(test_hexb_values),     cmocka_unit_test(test_sqlite_schema),
        cmocka_unit_test(test_etl_csv_headers), cmocka_unit_test(test_jsonl_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
