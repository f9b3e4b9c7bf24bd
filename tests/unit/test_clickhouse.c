/* test_clickhouse.c - the clickhouse output's pieces that need no server: URL parsing, types,
 * the raw tables' DDL for old and current servers, RowBinary and Native bytes, TSV answers;
 * and empty answers from a stand-in HTTP server (python3).
 * (tests/integration/test_clickhouse_*.py run the output against a real server.) */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sink/clickhouse_conn.h"
#include "sink/clickhouse_derived.h"
#include "sink/clickhouse_http.h"
#include "sink/clickhouse_table.h"
#include "testproc.h"
#include "util/hex.h"

static void test_server_parse(void **state)
{
    (void)state;
    bp_ch_server s;
    bp_error err = {0};
    assert_int_equal(
        bp_ch_server_parse(&s, "bp:p%40w@db.example:9123/chain1?max_threads=2", false, &err), 0);
    assert_string_equal(s.base, "http://bp:p%40w@db.example:9123/");
    assert_string_equal(s.where, "db.example:9123");
    assert_string_equal(s.database, "chain1");
    assert_string_equal(s.settings, "&max_threads=2");
    bp_ch_server_release(&s);
    assert_int_equal(bp_ch_server_parse(&s, "h", true, &err), 0);
    assert_string_equal(s.base, "https://h:8443/");
    assert_null(s.database);
    assert_string_equal(s.settings, "");
    bp_ch_server_release(&s);
    assert_int_equal(bp_ch_server_parse(&s, "[::1]:8123/", false, &err), 0);
    assert_string_equal(s.where, "[::1]:8123");
    assert_null(s.database);
    bp_ch_server_release(&s);
    static const char *const bad[] = {"",         "u:p@:8123/db", "h:0/db",           "h:99999",
                                      "h:12x/db", "h/a/b",        "h/db?max_threads", "h/db?=1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(bp_ch_server_parse(&s, bad[i], false, &err), BP_EINVAL);
        assert_null(strstr(err.msg, "p@")); /* never the credentials */
    }
}

static void test_types(void **state)
{
    (void)state;
    static const char *const names[] = {"UInt8",
                                        "Int8",
                                        "UInt32",
                                        "UInt64",
                                        "UInt256",
                                        "DateTime",
                                        "String",
                                        "FixedString(32)",
                                        "Nullable(FixedString(20))",
                                        "Nullable(UInt256)",
                                        "Nullable(String)"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        bp_ch_type t;
        char back[48];
        assert_int_equal(bp_ch_type_parse(names[i], &t), 0);
        bp_ch_type_name(&t, back, sizeof(back));
        assert_string_equal(back, names[i]);
    }
    static const char *const refused[] = {"Decimal(38, 0)", "LowCardinality(String)",
                                          "FixedString(0)", "Nullable(Nullable(String))",
                                          "Array(String)",  "UInt6"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        bp_ch_type t;
        assert_int_equal(bp_ch_type_parse(refused[i], &t), -1);
    }
    bp_ch_caps c;
    assert_int_equal(bp_ch_caps_from_version("18.16.1", &c), 0);
    assert_false(c.ttl);
    assert_int_equal(bp_ch_caps_from_version("19.6.2.11", &c), 0);
    assert_false(c.ttl); /* TTLs, but no REMOVE TTL (ttl=off) */
    assert_int_equal(bp_ch_caps_from_version("20.10.3.30", &c), 0);
    assert_true(c.ttl);
    assert_int_equal(bp_ch_caps_from_version("24.3.1.2672", &c), 0);
    assert_true(c.ttl);
    assert_int_equal(c.major, 24);
    assert_int_equal(bp_ch_caps_from_version("devel", &c), -1);
}

/* UInt256 is decided by what a table can hold: 20.8 .. 21.5 have toUInt256 but refuse the column
 * without allow_experimental_bigint_types (ClickHouse#16050), so there a table is asked. */
static void test_uint256_step(void **state)
{
    (void)state;
    static const struct {
        const char *version;
        bool function_ok;
        bp_ch_u256 step;
    } cases[] = {
        {"18.16.1", false, BP_CH_U256_NO},        {"20.7.4.11", false, BP_CH_U256_NO},
        {"20.8.2.3", true, BP_CH_U256_ASK_TABLE}, {"21.1.9.41", true, BP_CH_U256_ASK_TABLE},
        {"21.5.9.4", true, BP_CH_U256_ASK_TABLE}, {"21.6.1.1", true, BP_CH_U256_YES},
        {"21.12.4.1", true, BP_CH_U256_YES},      {"24.3.1.2672", true, BP_CH_U256_YES},
        {"24.3.1.2672", false, BP_CH_U256_NO},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bp_ch_caps c;
        assert_int_equal(bp_ch_caps_from_version(cases[i].version, &c), 0);
        if (bp_ch_uint256_step(&c, cases[i].function_ok) != cases[i].step)
            fail_msg("%s function_ok=%d: step %d, want %d", cases[i].version, cases[i].function_ok,
                     bp_ch_uint256_step(&c, cases[i].function_ok), cases[i].step);
    }
}

static const char *type_of(const bp_ch_table *t, const char *col)
{
    static char name[48];
    for (size_t i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i].name, col) == 0) {
            bp_ch_type_name(&t->cols[i].type, name, sizeof(name));
            return name;
        }
    return "(none)";
}

/* The raw tables follow the column table; 256-bit amounts are exact on every server. */
static void test_raw_tables(void **state)
{
    (void)state;
    bp_ch_caps old = {.major = 18, .minor = 16}, now = {.major = 24, .uint256 = true, .ttl = true};
    bp_ch_table t;
    bp_ch_raw_table(BP_TABLE_TRANSACTIONS, &old, &t);
    size_t first, n = bp_table_columns(BP_TABLE_TRANSACTIONS, &first);
    assert_int_equal(t.ncols, n + 2);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(t.cols[i].name, bp_columns[first + i].name);
    assert_string_equal(type_of(&t, "value"), "Nullable(String)");
    assert_string_equal(type_of(&t, "hash"), "FixedString(32)");
    assert_string_equal(type_of(&t, "block_hash"), "FixedString(32)"); /* a key: never NULL */
    assert_string_equal(type_of(&t, "to_address"), "Nullable(FixedString(20))");
    assert_string_equal(type_of(&t, "input"), "Nullable(String)");
    assert_string_equal(type_of(&t, "nonce"), "Nullable(UInt64)");
    assert_string_equal(type_of(&t, "_sign"), "Int8");
    assert_string_equal(type_of(&t, "_seq"), "UInt64");
    assert_string_equal(t.block_col, "block_number");
    bp_buf sql;
    bp_buf_init(&sql, 0);
    assert_int_equal(bp_ch_create_sql(&sql, &t), 0);
    assert_non_null(strstr(sql.data, "CREATE TABLE IF NOT EXISTS transactions (chain String, "));
    assert_non_null(strstr(sql.data, ") ENGINE = CollapsingMergeTree(_sign) PARTITION BY "
                                     "intDiv(block_number, 1000000) ORDER BY (chain, "
                                     "block_number, block_hash, transaction_index)"));
    bp_buf_release(&sql);
    bp_ch_raw_table(BP_TABLE_BLOCKS, &now, &t);
    assert_string_equal(type_of(&t, "difficulty"), "Nullable(UInt256)");
    assert_string_equal(type_of(&t, "number"), "UInt64");
    assert_string_equal(t.order_by, "chain, number, hash");
    size_t keys = 0;
    for (size_t i = 0; i < t.ncols; i++)
        keys += t.cols[i].key;
    assert_int_equal(keys, 3);
}

/* The derived tables for 18.16 (no TTL, no UInt256: decimal text) and for a current server
 * (UInt256, and a TTL on each table with a retention: the end the shared plan cuts by plus the
 * effective retention; none for a retention of 0); the views the example queries read. */
static void test_derived_tables(void **state)
{
    (void)state;
    bp_ch_caps old = {.major = 18, .minor = 16}, now = {.major = 24, .uint256 = true, .ttl = true};
    bp_ch_table t;
    bp_buf sql;
    bp_buf_init(&sql, 0);
    bp_ch_derived_row_table(BP_CHD_BLOCK, &old, &t);
    assert_string_equal(type_of(&t, "fees_paid_wei"), "String");
    assert_string_equal(type_of(&t, "fees_paid_native"), "Float64");
    assert_string_equal(type_of(&t, "fees_paid_usd"), "Nullable(Float64)");
    assert_string_equal(type_of(&t, "median_gas_price"), "Nullable(String)");
    assert_string_equal(type_of(&t, "block_hash"), "FixedString(32)");
    assert_string_equal(t.chain_col, "origin_key");
    assert_string_equal(type_of(&t, "_rev"), "UInt64"); /* the price revision, in the key */
    assert_int_equal(bp_ch_create_sql(&sql, &t), 0);
    assert_non_null(strstr(sql.data, "CollapsingMergeTree(_sign) PARTITION BY (origin_key, "
                                     "intDiv(block_timestamp, 86400)) ORDER BY (origin_key, "
                                     "block_number, block_hash, _rev)"));
    assert_null(strstr(sql.data, "TTL"));
    bp_buf_reset(&sql);
    bp_ch_derived_row_table(BP_CHD_BLOCK, &now, &t);
    assert_string_equal(type_of(&t, "fees_paid_wei"), "UInt256");
    assert_int_equal(bp_ch_create_sql(&sql, &t), 0);
    assert_non_null(strstr(sql.data, "CollapsingMergeTree(_sign) PARTITION BY (origin_key, "
                                     "intDiv(block_timestamp, 86400)) ORDER BY (origin_key, "
                                     "block_number, block_hash, _rev)"));
    assert_null(strstr(sql.data, "TTL"));
    /* the sets: a row per (window, address), keyed by the block it came with */
    bp_ch_derived_row_table(BP_CHD_SENDERS, &now, &t);
    assert_string_equal(t.block_col, "first_block");
    assert_string_equal(t.hash_col, "first_hash");
    assert_string_equal(type_of(&t, "first_hash"), "FixedString(32)");
    assert_string_equal(type_of(&t, "contract_address"), "FixedString(20)");
    bp_ch_derived_row_table(BP_CHD_PREDICTIONS, &old, &t);
    assert_string_equal(type_of(&t, "block_hash"), "FixedString(32)");
    /* rollups: newest version wins */
    bp_ch_derived_rollup_table(0, &now, &t);
    assert_string_equal(t.engine, "ReplacingMergeTree(_ver)");
    assert_string_equal(type_of(&t, "_ver"), "UInt64");
    bp_ch_derived_rollup_table(5, &old, &t);
    assert_string_equal(t.name, "contract_metrics_1d");
    assert_string_equal(t.order_by, "origin_key, window_start, contract_address");
    size_t n = 0, ttls = 0;
    bool view_1m = false, view_kd = false;
    /* block rows 600 s, sets 900 s, minutes 3000 s (effective: block + 1 h), hours 2 days,
     * days forever */
    bp_retention ret = {.block = 600, .sets = 900, .grain = {3000, 172800, 0}};
    for (int rc; bp_buf_reset(&sql), (rc = bp_ch_derived_ddl(n, &now, &ret, 604800, &sql)) != 1;
         n++) {
        assert_int_equal(rc, 0);
        /* the tables that may get a TTL have _written, filled by the server */
        bool table = strstr(sql.data, "CREATE TABLE") && !strstr(sql.data, "EXISTS prices ");
        assert_true(!table || strstr(sql.data, ", _written DateTime DEFAULT now()) ENGINE = "));
        const char *ttl = strstr(sql.data, " TTL greatest(");
        ttls += ttl != NULL;
        if (strstr(sql.data, "EXISTS chain_metrics_block ") ||
            strstr(sql.data, "EXISTS contract_metrics_block "))
            assert_string_equal(ttl,
                                " TTL greatest(toDateTime(intDiv(block_timestamp, 60) * 60 + 60) + "
                                "toIntervalSecond(600), "
                                "_written + toIntervalSecond(604800))");
        else if (strstr(sql.data, "EXISTS contract_senders ") ||
                 strstr(sql.data, "EXISTS active_addresses "))
            assert_string_equal(
                ttl, " TTL greatest(toDateTime(intDiv(window_start, multiIf(grain = '1d', "
                     "86400, 3600)) * multiIf(grain = '1d', 86400, 3600) + "
                     "multiIf(grain = '1d', 86400, 3600)) + "
                     "toIntervalSecond(900), "
                     "_written + toIntervalSecond(604800))");
        else if (strstr(sql.data, "EXISTS chain_metrics_1m "))
            assert_string_equal(
                ttl, " TTL greatest(toDateTime(intDiv(window_start, 3600) * 3600 + 3600) + "
                     "toIntervalSecond(4200), "
                     "_written + toIntervalSecond(604800))");
        else if (strstr(sql.data, "EXISTS contract_metrics_1m "))
            assert_string_equal(
                ttl, " TTL greatest(toDateTime(window_start + 60) + toIntervalSecond(4200), "
                     "_written + toIntervalSecond(604800))");
        else if (strstr(sql.data, "EXISTS chain_metrics_1h "))
            assert_string_equal(ttl,
                                " TTL greatest(toDateTime(intDiv(window_start, 86400) * 86400 + "
                                "86400) + toIntervalSecond(172800), "
                                "_written + toIntervalSecond(604800))");
        else if (strstr(sql.data, "EXISTS contract_metrics_1h "))
            assert_string_equal(
                ttl, " TTL greatest(toDateTime(window_start + 3600) + toIntervalSecond(172800), "
                     "_written + toIntervalSecond(604800))");
        else
            assert_null(ttl); /* token_transfers, ml_predictions, the days, prices, views */
        /* none without a retention or on 18.16 */
        bp_buf_reset(&sql);
        assert_int_equal(bp_ch_derived_ddl(n, &now, NULL, 604800, &sql), 0);
        assert_null(strstr(sql.data, "TTL"));
        bp_buf_reset(&sql);
        assert_int_equal(bp_ch_derived_ddl(n, &old, &ret, 604800, &sql), 0);
        assert_null(strstr(sql.data, "TTL"));
        assert_null(strstr(sql.data, "_written"));
    }
    assert_int_equal(n, 19);
    assert_int_equal(ttls, 8);
    bp_retention forever = {0};
    bp_buf_reset(&sql);
    assert_int_equal(bp_ch_derived_ttl("chain_metrics_block", &now, &forever, 604800, &sql), 0);
    assert_int_equal(sql.len, 0);
    n = 0;
    for (int rc; bp_buf_reset(&sql), (rc = bp_ch_derived_ddl(n, &old, NULL, 604800, &sql)) != 1;
         n++) {
        assert_int_equal(rc, 0);
        view_1m |= strstr(sql.data, "VIEW IF NOT EXISTS chain_metrics_1m_v AS SELECT origin_key, "
                                    "toDateTime(_w, 'UTC') AS timestamp, block_count") &&
                   strstr(sql.data, "FROM chain_metrics_1m FINAL WHERE block_count > 0");
        view_kd |= strstr(sql.data, "contract_metrics_1d_v") &&
                   strstr(sql.data, "AS day_ts, concat('0x', lower(hex(_c))) AS contract_address");
        assert_null(strstr(sql.data, "TTL"));
    }
    assert_int_equal(n, 19);
    assert_true(view_1m);
    assert_true(view_kd);
    bp_buf_release(&sql);
}

/* Float64 (fees in the native token, USD): 8 bytes little-endian IEEE 754; NULL where
 * Nullable; a double into an integer column is refused. */
static void test_float64(void **state)
{
    (void)state;
    static const bp_ch_col cols[] = {{"x", {.kind = BP_CH_FLOAT64}, false},
                                     {"y", {.kind = BP_CH_FLOAT64, .nullable = true}, false}};
    bp_ch_enc e;
    assert_int_equal(bp_ch_enc_init(&e, BP_CH_ROWBINARY, cols, 2), 0);
    bp_ch_put_f64(&e, 1.5);
    bp_ch_put_null(&e);
    bp_ch_row_end(&e);
    static const unsigned char want[] = {0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 1};
    assert_int_equal(e.rc, 0);
    assert_int_equal(e.data[0].len, sizeof(want));
    assert_memory_equal(e.data[0].data, want, sizeof(want));
    bp_ch_enc_release(&e);
    static const bp_ch_col ints[] = {{"x", {.kind = BP_CH_UINT64}, false}};
    assert_int_equal(bp_ch_enc_init(&e, BP_CH_ROWBINARY, ints, 1), 0);
    bp_ch_put_f64(&e, 1.5);
    assert_int_equal(e.rc, BP_EINVAL);
    bp_ch_enc_release(&e);
}

/* A table of every kind the encoder writes. */
static const bp_ch_col g_cols[] = {
    {"a", {.kind = BP_CH_UINT64}, true},
    {"b", {.kind = BP_CH_FIXED, .len = 2, .nullable = true}, false},
    {"c", {.kind = BP_CH_STRING}, false},
    {"d", {.kind = BP_CH_UINT256, .nullable = true}, false},
    {"e", {.kind = BP_CH_STRING, .nullable = true}, false},
    {"f", {.kind = BP_CH_INT8}, false},
};
#define NCOLS (sizeof(g_cols) / sizeof(g_cols[0]))

static void two_rows(bp_ch_enc *e)
{
    bp_u256 big = {{1, 0, 0, 1}}; /* 2^192 + 1 */
    bp_ch_put_u64(e, 0x0102);
    bp_ch_put_hex(e, "0xabcd");
    bp_ch_put_hex(e, "0x00ff");
    bp_ch_put_u256(e, &big);
    bp_ch_put_u256(e, &big); /* decimal text in a String */
    bp_ch_put_i8(e, -1);
    bp_ch_row_end(e);
    bp_ch_put_u64(e, 7);
    bp_ch_put_null(e);
    bp_ch_put_text(e, "hi", 2);
    bp_ch_put_null(e);
    bp_ch_put_null(e);
    bp_ch_put_i8(e, 1);
    bp_ch_row_end(e);
}

static void flatten(bp_ch_enc *e, bp_buf *out)
{
    bp_ch_piece p[BP_CH_MAX_PIECES(NCOLS)];
    size_t n = bp_ch_enc_pieces(e, p, sizeof(p) / sizeof(p[0]));
    assert_int_equal(e->rc, 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(bp_buf_append(out, p[i].data, p[i].len), 0);
}

#define DEC "6277101735386680763835789423207666416102355444464034512897" /* 2^192 + 1 */

static void test_rowbinary(void **state)
{
    (void)state;
    bp_ch_enc e;
    bp_buf got;
    bp_buf_init(&got, 0);
    assert_int_equal(bp_ch_enc_init(&e, BP_CH_ROWBINARY, g_cols, NCOLS), 0);
    two_rows(&e);
    assert_int_equal(e.rows, 2);
    flatten(&e, &got);
    static const unsigned char row1[] = {
        2, 1,    0,    0, 0, 0, 0, 0,                            /* a */
        0, 0xab, 0xcd,                                           /* b: not null, 2 bytes */
        2, 0,    0xff,                                           /* c: length 2 */
        0, 1,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* d: not null, w[0] = 1 */
        0, 0,    0,    0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,    /* ... w[3] = 1 */
    };
    assert_memory_equal(got.data, row1, sizeof(row1));
    size_t at = sizeof(row1);
    assert_int_equal((unsigned char)got.data[at], 0); /* e: not null */
    assert_int_equal((unsigned char)got.data[at + 1], strlen(DEC));
    assert_memory_equal(got.data + at + 2, DEC, strlen(DEC));
    at += 2 + strlen(DEC);
    static const unsigned char rest[] = {
        0xff,                                               /* f: -1 */
        7,    0, 0, 0, 0, 0, 0, 0, 1, 2, 'h', 'i', 1, 1, 1, /* row 2: b, d, e NULL */
    };
    assert_int_equal(got.len, at + sizeof(rest));
    assert_memory_equal(got.data + at, rest, sizeof(rest));
    bp_ch_enc_release(&e);
    bp_buf_release(&got);
}

/* Native: [columns rows] then per column its name, type, null map and values, NULL cells
 * holding the type's default. */
static void test_native(void **state)
{
    (void)state;
    bp_ch_enc e;
    bp_buf got, want;
    bp_buf_init(&got, 0);
    bp_buf_init(&want, 0);
    assert_int_equal(bp_ch_enc_init(&e, BP_CH_NATIVE, g_cols, NCOLS), 0);
    two_rows(&e);
    flatten(&e, &got);
#define PUT(...)                                                                                   \
    do {                                                                                           \
        const unsigned char b_[] = {__VA_ARGS__};                                                  \
        assert_int_equal(bp_buf_append(&want, b_, sizeof(b_)), 0);                                 \
    } while (0)
#define NAME(s)                                                                                    \
    do {                                                                                           \
        PUT((unsigned char)strlen(s));                                                             \
        assert_int_equal(bp_buf_puts(&want, s), 0);                                                \
    } while (0)
    PUT(6, 2);
    NAME("a");
    NAME("UInt64");
    PUT(2, 1, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0);
    NAME("b");
    NAME("Nullable(FixedString(2))");
    PUT(0, 1, 0xab, 0xcd, 0, 0);
    NAME("c");
    NAME("String");
    PUT(2, 0, 0xff, 2, 'h', 'i');
    NAME("d");
    NAME("Nullable(UInt256)");
    PUT(0, 1);
    PUT(1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,
        0);
    for (int i = 0; i < 32; i++)
        PUT(0);
    NAME("e");
    NAME("Nullable(String)");
    PUT(0, 1);
    NAME(DEC);
    PUT(0);
    NAME("f");
    NAME("Int8");
    PUT(0xff, 1);
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.data, want.data, want.len);
    bp_ch_enc_release(&e);
    bp_buf_release(&got);
    bp_buf_release(&want);
}

/* A value that does not fit its column stops the encoder at that column. */
static void test_refusals(void **state)
{
    (void)state;
    bp_ch_enc e;
    bp_u256 big = {{0, 1, 0, 0}};
    static const bp_ch_col u64[] = {{"x", {.kind = BP_CH_UINT64}, false}};
    assert_int_equal(bp_ch_enc_init(&e, BP_CH_ROWBINARY, g_cols, NCOLS), 0);
    bp_ch_put_null(&e); /* a: not Nullable */
    assert_int_equal(e.rc, BP_EINVAL);
    assert_int_equal(e.bad, 0);
    bp_ch_enc_reset(&e);
    bp_ch_put_u64(&e, 1);
    bp_ch_put_hex(&e, "0xabcdef"); /* FixedString(2) */
    assert_int_equal(e.rc, BP_EINVAL);
    assert_int_equal(e.bad, 1);
    bp_ch_enc_reset(&e);
    bp_ch_put_u64(&e, 1);
    bp_ch_put_hex(&e, "0xabc"); /* odd */
    assert_int_equal(e.rc, BP_EINVAL);
    bp_ch_enc_reset(&e);
    bp_ch_put_u64(&e, 1);
    bp_ch_row_end(&e); /* too few cells */
    assert_int_equal(e.rc, BP_EINVAL);
    assert_int_equal(e.rows, 0);
    bp_ch_enc_release(&e);
    assert_int_equal(bp_ch_enc_init(&e, BP_CH_NATIVE, u64, 1), 0);
    bp_ch_put_u256(&e, &big); /* 2^64 in a UInt64 */
    assert_int_equal(e.rc, BP_EINVAL);
    bp_ch_enc_release(&e);
}

/* An HTTP server that answers every request 200 with an empty body (a proxy gone wrong). */
static const char g_empty_server[] =
    "import http.server\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_POST(self):\n"
    "        self.rfile.read(int(self.headers.get('Content-Length') or 0))\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Length', '0')\n"
    "        self.end_headers()\n"
    "    def log_message(self, *a):\n"
    "        pass\n"
    "s = http.server.HTTPServer(('127.0.0.1', 0), H)\n"
    "print('PORT', s.server_address[1], flush=True)\n"
    "s.serve_forever()\n";

/* Empty 200 answers are empty text, never a NULL buffer: version() was read through one
 * (SIGSEGV on connecting); now it is refused as not N.N, and an answer taken is "". */
static void test_empty_answers(void **state)
{
    (void)state;
    bp_test_server srv = {0};
    char log[] = "/tmp/bp_test_ch_empty_XXXXXX";
    int fd = mkstemp(log);
    assert_true(fd >= 0);
    close(fd);
    char *argv[] = {"python3", "-c", (char *)g_empty_server, NULL};
    assert_int_equal(bp_test_server_start(&srv, log, argv, "PORT "), 0);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d/db", srv.port);
    bp_ch_target t;
    bp_error err = {0};
    assert_int_equal(bp_ch_target_init(&t, target, NULL, &err), 0);
    bp_ch_http *h = NULL;
    bp_ch_caps caps;
    assert_int_equal(bp_ch_connect(&t, &h, &caps, &err), BP_EDB);
    assert_non_null(strstr(err.msg, "version() is '', not N.N"));
    assert_int_equal(bp_ch_http_new(&h, &t.srv, "db", 10000, 0, &err), 0);
    bp_buf ans;
    bp_buf_init(&ans, 0);
    assert_int_equal(bp_ch_query(h, "SELECT 1", &ans, "empty", &err), 0);
    assert_non_null(ans.data);
    assert_string_equal(ans.data, "");
    bp_buf_release(&ans);
    bp_ch_http_free(h);
    bp_ch_target_release(&t);
    bp_test_server_stop(&srv, SIGTERM);
    unlink(log);
}

static void test_sql_text(void **state)
{
    (void)state;
    bp_buf b;
    bp_buf_init(&b, 0);
    assert_int_equal(bp_ch_quote(&b, "it's a \\ x"), 0);
    assert_string_equal(b.data, "'it\\'s a \\\\ x'");
    bp_buf_reset(&b);
    assert_int_equal(bp_ch_ident(&b, "a`b"), 0);
    assert_string_equal(b.data, "`a\\`b`");
    bp_buf_release(&b);
    char text[] = "1\t0xab\\tc\t\\N\n2\t\\\\\t\n";
    char *p = text, *cells[4];
    assert_int_equal(bp_ch_tsv_row(&p, cells, 4), 3);
    assert_string_equal(cells[0], "1");
    assert_string_equal(cells[1], "0xab\tc");
    assert_null(cells[2]);
    assert_int_equal(bp_ch_tsv_row(&p, cells, 4), 3);
    assert_string_equal(cells[1], "\\");
    assert_string_equal(cells[2], "");
    assert_int_equal(bp_ch_tsv_row(&p, cells, 4), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_parse),   cmocka_unit_test(test_types),
        cmocka_unit_test(test_uint256_step),   cmocka_unit_test(test_raw_tables),
        cmocka_unit_test(test_derived_tables), cmocka_unit_test(test_float64),
        cmocka_unit_test(test_rowbinary),      cmocka_unit_test(test_native),
        cmocka_unit_test(test_refusals),       cmocka_unit_test(test_sql_text),
        cmocka_unit_test(test_empty_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
