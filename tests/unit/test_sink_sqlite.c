/* test_sink_sqlite.c - the SQLite output: every column read back, REVERT, atomic batches with
 * their checkpoint, idempotent same-hash APPLY, recent(), reopen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "arch/arch_rows.h"
#include "arch/arch_tables.h"
#include "sink/sqlgen.h"
#include "util/arena.h"
#include "sink_fixture.h"

extern const bp_sink_ops bp_sink_sqlite_ops;

typedef struct fixture {
    char dir[64];
    char path[128];
    bp_sink *sink;
    sqlite3 *db; /* a second connection, for reading back */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/bp_sqlite_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/out.db", f->dir);
    bp_error err = {0};
    assert_int_equal(bp_sink_sqlite_ops.open(&f->sink, f->path, NULL, &err), 0);
    f->sink->ops = &bp_sink_sqlite_ops;
    assert_int_equal(sqlite3_open(f->path, &f->db), SQLITE_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sqlite3_close(f->db);
    if (f->sink)
        bp_sink_sqlite_ops.close(f->sink);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* The single row of sql as "col|col|..." with NULL for SQL NULL (caller frees). */
static char *row(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db));
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        for (int i = 0; i < sqlite3_column_count(st); i++) {
            const unsigned char *t = sqlite3_column_text(st, i);
            fprintf(m, "%s%s", i ? "|" : "", t ? (const char *)t : "NULL");
        }
    } else {
        fprintf(m, "(no row)");
    }
    fclose(m);
    sqlite3_finalize(st);
    return out;
}

static void assert_row(sqlite3 *db, const char *sql, const char *expected)
{
    char *got = row(db, sql);
    if (strcmp(got, expected) != 0)
        fail_msg("%s\n  got      %s\n  expected %s", sql, got, expected);
    free(got);
}

static long long count(sqlite3 *db, const char *sql)
{
    char *got = row(db, sql);
    long long n = atoll(got);
    free(got);
    return n;
}

static int write_events(fixture *f, const char *chain, const bp_event *ev, size_t n,
                        bp_checkpoint cp, bp_error *err)
{
    bp_batch batch = {.chain = chain, .chain_id = 1, .events = ev, .count = n, .checkpoint = cp};
    return bp_sink_sqlite_ops.write(f->sink, &batch, err);
}

/* Applies blocks [from, to] of fork 0 (full, with receipts) in one batch. */
static void apply_range(fixture *f, const char *chain, uint64_t from, uint64_t to)
{
    bp_event ev[16];
    bp_block *blocks[16];
    size_t n = 0;
    for (uint64_t i = from; i <= to; i++, n++) {
        blocks[n] = fx_block(i, 0, true, true);
        ev[n] = (bp_event){.kind = BP_EVENT_APPLY, .block = blocks[n]};
    }
    bp_error err = {0};
    int rc = write_events(f, chain, ev, n, fx_cp(to, 0), &err);
    for (size_t i = 0; i < n; i++)
        bp_block_free(blocks[i]);
    if (rc != 0)
        fail_msg("apply %" PRIu64 "..%" PRIu64 ": %s", from, to, err.msg);
}

static void test_block_columns(void **state)
{
    fixture *f = *state;
    apply_range(f, "main", 1, 1);
    char want[4096];
    snprintf(want, sizeof(want),
             "main|1|%s|%s|0x0000000000000042|%s|0x00ff|%s|%s|%s|%s|%s|7298514125186|"
             "58750003716598352816469|1113|0xd783|30000000|143706|1683030000|4|80869370967|%s|"
             "[{\"index\":2210752,\"validator_index\":540230,\"address\":\"%s\","
             "\"amount\":45762059},{\"index\":2210753,\"validator_index\":540231,"
             "\"address\":\"%s\",\"amount\":45762058}]|131072|0|%s|NULL|0|NULL",
             H(0xb0, 1), H(0xb0, 0), H(0x5a, 0), H(0x70, 1), H(0x71, 1), H(0x72, 1), A(0xaa, 1),
             H(0x73, 1), H(0x74, 1), A(0xb9, 7), A(0xb9, 7), H(0x75, 1));
    assert_row(f->db, "SELECT * FROM blocks", want);
    assert_row(f->db,
               "SELECT typeof(number), typeof(difficulty), typeof(total_difficulty),"
               " typeof(size), typeof(base_fee_per_gas) FROM blocks",
               "integer|text|text|integer|text");
}

static void test_tx_columns(void **state)
{
    fixture *f = *state;
    apply_range(f, "main", 7, 7);
    char want[4096];
    /* tx0: type 2, nonce 2^64-1 (exact digits, as a BLOB), value > 2^64. */
    snprintf(
        want, sizeof(want),
        "main|%s|18446744073709551615|%s|7|0|%s|%s|55340232221128654853|21000|91022338812|"
        "0x|1683030006|91022338812|100000000|NULL|2|1|0x1b|%s|%s|0x1|[]|NULL|NULL|NULL|"
        "21000|21000|NULL|NULL|1|91022338812|NULL|NULL|0x00|NULL|NULL|NULL|NULL|NULL|NULL|NULL|"
        "NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL",
        H(0xe0, 7), H(0xb0, 7), A(0xf0, 0), A(0x70, 0), H(0x01, 0), H(0x02, 0));
    assert_row(f->db, "SELECT * FROM transactions WHERE transaction_index = 0", want);
    assert_row(f->db,
               "SELECT typeof(nonce), typeof(value), typeof(gas), typeof(transaction_type)"
               " FROM transactions WHERE transaction_index = 0",
               "blob|text|integer|integer");
    /* tx1: contract creation. */
    snprintf(want, sizeof(want), "NULL|%s|0|0|0x6060604052", A(0xcc, 7));
    assert_row(f->db,
               "SELECT to_address, receipt_contract_address, receipt_status, value, input"
               " FROM transactions WHERE transaction_index = 1",
               want);
    /* tx2: no type, pre-Byzantium receipt. */
    snprintf(want, sizeof(want), "NULL|%s|NULL|63000|NULL|NULL", H(0x2f, 7));
    assert_row(f->db,
               "SELECT transaction_type, receipt_root, receipt_status,"
               " receipt_cumulative_gas_used, max_fee_per_gas, chain_id"
               " FROM transactions WHERE transaction_index = 2",
               want);
    /* tx3: blob. */
    assert_row(f->db,
               "SELECT transaction_type, max_fee_per_blob_gas, blob_versioned_hashes,"
               " receipt_blob_gas_used, receipt_blob_gas_price"
               " FROM transactions WHERE transaction_index = 3",
               "3|1|[\"0x0100000000000000000000000000000000000000000000000000000000000001\"]|"
               "131072|1");
}

static void test_log_columns(void **state)
{
    fixture *f = *state;
    apply_range(f, "main", 3, 3);
    assert_int_equal(count(f->db, "SELECT count(*) FROM logs"), 5);
    char want[2048];
    snprintf(want, sizeof(want), "main|3|%s|0|%s|0|%s|%s|NULL|NULL|NULL|NULL|NULL", H(0xb0, 3),
             H(0xe0, 3), A(0xf4, 0), H(0xda, 0));
    assert_row(f->db, "SELECT * FROM logs WHERE log_index = 0", want);
    snprintf(want, sizeof(want), "main|3|%s|1|%s|0|%s|0x|%s|NULL|NULL|NULL|NULL", H(0xb0, 3),
             H(0xe0, 3), A(0xf4, 1), H(0x10, 1));
    assert_row(f->db, "SELECT * FROM logs WHERE log_index = 1", want);
    snprintf(want, sizeof(want), "main|3|%s|4|%s|2|%s|%s|%s|%s|%s|%s|NULL", H(0xb0, 3), H(0xe2, 3),
             A(0xf4, 4), H(0xda, 4), H(0x10, 4), H(0x11, 4), H(0x12, 4), H(0x13, 4));
    assert_row(f->db, "SELECT * FROM logs WHERE log_index = 4", want);
    assert_row(f->db, "SELECT group_concat(topic2 IS NULL) FROM logs ORDER BY log_index",
               "1,1,1,0,0");
}

static void test_without_receipts(void **state)
{
    fixture *f = *state;
    bp_block *b = fx_block(5, 0, true, false);
    bp_event ev = {.kind = BP_EVENT_APPLY, .block = b};
    bp_error err = {0};
    assert_int_equal(write_events(f, "main", &ev, 1, fx_cp(5, 0), &err), 0);
    bp_block_free(b);
    assert_int_equal(count(f->db, "SELECT count(*) FROM transactions"), 4);
    assert_int_equal(count(f->db, "SELECT count(*) FROM logs"), 0);
    assert_row(f->db,
               "SELECT count(*) FROM transactions WHERE receipt_gas_used IS NULL AND"
               " receipt_status IS NULL AND receipt_effective_gas_price IS NULL AND"
               " receipt_logs_bloom IS NULL AND receipt_cumulative_gas_used IS NULL",
               "4");
}

static void test_checkpoint_row(void **state)
{
    fixture *f = *state;
    apply_range(f, "main", 1, 3);
    char want[256];
    snprintf(want, sizeof(want), "main|sqlite|3|%s|1", H(0xb0, 3));
    assert_row(f->db,
               "SELECT chain, output, number, hash,"
               " updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*Z'"
               " FROM checkpoints",
               want);
    bp_checkpoint cp;
    bp_error err = {0};
    assert_int_equal(bp_sink_sqlite_ops.checkpoint(f->sink, "main", &cp, &err), 0);
    assert_true(cp.set);
    assert_int_equal(cp.number, 3);
    assert_string_equal(cp.hash, H(0xb0, 3));
    assert_int_equal(bp_sink_sqlite_ops.checkpoint(f->sink, "other", &cp, &err), 0);
    assert_false(cp.set);
    /* An unset checkpoint in a batch deletes the row. */
    assert_int_equal(write_events(f, "main", NULL, 0, (bp_checkpoint){0}, &err), 0);
    assert_int_equal(count(f->db, "SELECT count(*) FROM checkpoints"), 0);
}

static void test_revert(void **state)
{
    fixture *f = *state;
    apply_range(f, "main", 1, 3);
    apply_range(f, "side", 1, 3); /* same numbers, other chain: must stay */
    bp_block *r3 = fx_block(3, 0, false, false), *r2 = fx_block(2, 0, false, false);
    bp_event ev[] = {{BP_EVENT_REVERT, r3}, {BP_EVENT_REVERT, r2}};
    bp_error err = {0};
    assert_int_equal(write_events(f, "main", ev, 2, fx_cp(1, 0), &err), 0);
    bp_block_free(r3);
    bp_block_free(r2);
    assert_row(f->db, "SELECT group_concat(number) FROM blocks WHERE chain = 'main'", "1");
    assert_row(f->db,
               "SELECT count(*), min(block_number), max(block_number) FROM transactions"
               " WHERE chain = 'main'",
               "4|1|1");
    assert_row(f->db,
               "SELECT count(*), min(block_number), max(block_number) FROM logs"
               " WHERE chain = 'main'",
               "5|1|1");
    assert_row(f->db,
               "SELECT (SELECT count(*) FROM blocks WHERE chain = 'side'),"
               " (SELECT count(*) FROM transactions WHERE chain = 'side'),"
               " (SELECT count(*) FROM logs WHERE chain = 'side')",
               "3|12|15");
    assert_row(f->db, "SELECT number FROM checkpoints WHERE chain = 'main'", "1");
    /* The new branch applies cleanly over the reverted numbers. */
    bp_block *n2 = fx_block(2, 1, true, true);
    bp_event ap = {BP_EVENT_APPLY, n2};
    assert_int_equal(write_events(f, "main", &ap, 1, fx_cp(2, 1), &err), 0);
    bp_block_free(n2);
    assert_row(f->db, "SELECT hash FROM blocks WHERE chain = 'main' AND number = 2", H(0xb1, 2));
}

/* An Arch block at height n whose hash is n's digit repeated (parent: n - 1's) with two
 * transactions, the first listing one account twice. */
static bp_block *arch_block(uint64_t n, char digit)
{
    bp_block *b = bp_block_new();
    bp_arch_rows *r = calloc(1, sizeof(*r));
    assert_true(b && r);
    memset(r->block.hash, digit, 64);
    memset(r->block.prev_hash, digit - 1, 64);
    memset(r->block.merkle_root, 'f', 64);
    r->block.height = n;
    r->block.timestamp = 1700000000 + n;
    r->block.tx_count = 2;
    r->txs = calloc(2, sizeof(*r->txs));
    r->tx_count = 2;
    for (size_t i = 0; i < 2; i++) {
        bp_arch_tx *t = &r->txs[i];
        memset(t->txid, (char)('a' + i), 64);
        t->block_height = n;
        t->status = i ? BP_ARCH_FAILED : BP_ARCH_PROCESSED;
        t->failure = i ? strdup("custom program error: 0x1") : NULL;
        t->program_ids = strdup("[]");
        t->bitcoin_txids = strdup("[]");
        t->accounts = calloc(2, sizeof(*t->accounts));
        t->account_count = 2;
        memset(t->accounts[0], '1', 64);
        memset(t->accounts[1], i ? '2' : '1', 64); /* tx 0: the same account twice */
    }
    b->family = BP_FAMILY_ARCH;
    b->number = n;
    b->hash = bp_arena_strndup(b->arena, r->block.hash, 64);
    b->parent_hash = bp_arena_strndup(b->arena, r->block.prev_hash, 64);
    assert_int_equal(bp_arena_adopt_fn(b->arena, r, 0, bp_arch_rows_free), 0);
    b->arch = r;
    return b;
}

#define ARCH_TABLES                                                                                \
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'arch\\_%' ESCAPE '\\'"

static void test_arch_rows(void **state)
{
    fixture *f = *state;
    bp_block *b1 = arch_block(1, '4'), *b2 = arch_block(2, '5');
    bp_event ev[] = {{BP_EVENT_APPLY, b1}, {BP_EVENT_APPLY, b2}};
    bp_checkpoint cp = {.set = true, .number = 2};
    memcpy(cp.hash, b2->hash, 65);
    bp_error err = {0};
    /* an EVM chain's file has no Arch tables; an Arch chain's first write makes them */
    apply_range(f, "main", 1, 2);
    assert_int_equal(count(f->db, ARCH_TABLES), 0);
    assert_int_equal(write_events(f, "arch", ev, 2, cp, &err), 0);
    assert_int_equal(count(f->db, ARCH_TABLES), 4);
    assert_row(f->db, "SELECT group_concat(height) FROM arch_blocks WHERE chain = 'arch'", "1,2");
    assert_row(f->db,
               "SELECT count(*), group_concat(status), group_concat(failure_reason)"
               " FROM arch_transactions WHERE block_height = 2",
               "2|processed,failed|custom program error: 0x1");
    /* tx 0's account listed twice is one update */
    assert_int_equal(count(f->db, "SELECT count(*) FROM arch_account_updates"), 6);
    assert_int_equal(count(f->db, "SELECT count(*) FROM blocks WHERE chain = 'arch'"), 0);
    bp_checkpoint recent[4];
    size_t n = 0;
    assert_int_equal(bp_sink_sqlite_ops.recent(f->sink, "arch", recent, 4, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(recent[0].hash, b2->hash);
    bp_block *r2 = bp_block_header_copy(b2);
    r2->arch = NULL; /* a REVERT carries the header and the family only */
    bp_event rev = {BP_EVENT_REVERT, r2};
    cp.number = 1;
    memcpy(cp.hash, b1->hash, 65);
    assert_int_equal(write_events(f, "arch", &rev, 1, cp, &err), 0);
    assert_row(f->db,
               "SELECT (SELECT group_concat(height) FROM arch_blocks),"
               " (SELECT count(*) FROM arch_transactions WHERE block_height = 2),"
               " (SELECT count(*) FROM arch_account_updates WHERE block_height = 2)",
               "1|0|0");
    /* reopened: the tables are found, recent() reads them again */
    bp_sink_sqlite_ops.close(f->sink);
    assert_int_equal(bp_sink_sqlite_ops.open(&f->sink, f->path, NULL, &err), 0);
    f->sink->ops = &bp_sink_sqlite_ops;
    assert_int_equal(bp_sink_sqlite_ops.recent(f->sink, "arch", recent, 4, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(recent[0].hash, b1->hash);
    assert_int_equal(bp_sink_sqlite_ops.recent(f->sink, "main", recent, 4, &n, &err), 0);
    assert_int_equal(n, 2);
    bp_block_free(r2);
    bp_block_free(b1);
    bp_block_free(b2);
}

static int count_row(void *ctx, const bp_read_cell *cells, size_t n)
{
    (void)cells;
    (void)n;
    (*(size_t *)ctx)++;
    return 0;
}

/* rows of Arch table t of chain through the reader r: its rc, and their count in *n */
static int arch_read(bp_sink_reader *r, enum bp_arch_table t, size_t *n, bp_error *err)
{
    bp_read_query q = {.arch = (int)t + 1, .chain = "arch", .limit = 10};
    *n = 0;
    return bp_sink_sqlite_ops.read(r, &q, count_row, n, err);
}

/* The reader answers an Arch read of a file without Arch tables (an EVM chain's) with no rows,
 * and the rows once an Arch chain's first write made them, the reader opened before; an
 * arch_* table that is there but cannot be read is an error, though its message names a
 * missing table. */
static void test_arch_read_absent(void **state)
{
    fixture *f = *state;
    bp_error err = {0};
    bp_sink_reader *r = NULL;
    size_t n = 99;
    apply_range(f, "main", 1, 2);
    assert_int_equal(bp_sink_sqlite_ops.open_reader(&r, f->path, NULL, &err), 0);
    for (int t = 0; t < BP_ARCH_TABLE_COUNT; t++) {
        assert_int_equal(arch_read(r, (enum bp_arch_table)t, &n, &err), 0);
        assert_int_equal(n, 0);
    }
    bp_block *b = arch_block(1, '4');
    bp_event ev = {BP_EVENT_APPLY, b};
    bp_checkpoint cp = {.set = true, .number = 1};
    memcpy(cp.hash, b->hash, 65);
    assert_int_equal(write_events(f, "arch", &ev, 1, cp, &err), 0);
    assert_int_equal(arch_read(r, BP_ARCH_BLOCKS, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(arch_read(r, BP_ARCH_TRANSACTIONS, &n, &err), 0);
    assert_int_equal(n, 2);
    bp_sink_sqlite_ops.close_reader(r);
    bp_block_free(b);

    char path[160];
    sqlite3 *db = NULL;
    snprintf(path, sizeof(path), "%s/broken.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "CREATE VIEW arch_blocks AS SELECT * FROM arch_gone", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(bp_sink_sqlite_ops.open_reader(&r, path, NULL, &err), 0);
    assert_int_equal(arch_read(r, BP_ARCH_BLOCKS, &n, &err), BP_EDB);
    assert_non_null(strstr(err.msg, "arch_blocks"));
    assert_non_null(strstr(err.msg, "no such table: main.arch_gone"));
    assert_int_equal(arch_read(r, BP_ARCH_EVENTS, &n, &err), 0); /* absent: no rows */
    assert_int_equal(n, 0);
    bp_sink_sqlite_ops.close_reader(r);
}

/* A BP_EVENT_ARCH_EVENTS entry carrying the events decoded from texts (arch_rows.h). */
static bp_block *arch_events(const char *const *texts, size_t n)
{
    bp_block *b = bp_block_new();
    bp_arch_rows *r = calloc(1, sizeof(*r));
    assert_true(b && r);
    r->events = calloc(n, sizeof(*r->events));
    for (size_t i = 0; i < n; i++) {
        bp_error err = {0};
        assert_int_equal(bp_arch_decode_event(texts[i], strlen(texts[i]), 1700000000.5 + (double)i,
                                              &r->events[i], &err),
                         0);
        r->event_count++;
    }
    b->family = BP_FAMILY_ARCH;
    b->number = 1;
    b->hash = bp_arena_strndup(b->arena, "", 0);
    b->parent_hash = bp_arena_strndup(b->arena, "", 0);
    assert_int_equal(bp_arena_adopt_fn(b->arena, r, 0, bp_arch_rows_free), 0);
    b->arch = r;
    return b;
}

#define TXA "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""
#define ROLLBACK                                                                                   \
    "{\"topic\":\"rolledback_transactions\",\"data\":{\"transaction_hashes\":[" TXA                \
    "],\"block_height\":1}}"
#define REAPPLY                                                                                    \
    "{\"topic\":\"reapplied_transactions\",\"data\":{\"transaction_hashes\":[" TXA                 \
    "],\"block_height\":1}}"
#define DKG "{\"topic\":\"dkg\",\"data\":{\"status\":\"Completed\"}}"

/* Rollbacks and re-applies change the listed transactions' rolled_back in event order, a key
 * seen again is one arch_events row (but its rollback still counts), the checkpoint stays. */
static void test_arch_events(void **state)
{
    fixture *f = *state;
    bp_block *b1 = arch_block(1, '4');
    bp_event ev = {BP_EVENT_APPLY, b1};
    bp_checkpoint cp = {.set = true, .number = 1};
    memcpy(cp.hash, b1->hash, 65);
    bp_error err = {0};
    assert_int_equal(write_events(f, "arch", &ev, 1, cp, &err), 0);
    const char *first[] = {ROLLBACK, DKG, DKG};
    bp_block *e1 = arch_events(first, 3);
    ev = (bp_event){BP_EVENT_ARCH_EVENTS, e1};
    assert_int_equal(write_events(f, "arch", &ev, 1, cp, &err), 0);
    assert_row(f->db, "SELECT group_concat(rolled_back) FROM arch_transactions ORDER BY tx_index",
               "1,0");
    assert_row(f->db, "SELECT count(*), group_concat(topic) FROM arch_events",
               "2|rolledback_transactions,dkg");
    const char *second[] = {REAPPLY, ROLLBACK, REAPPLY};
    bp_block *e2 = arch_events(second, 3);
    ev = (bp_event){BP_EVENT_ARCH_EVENTS, e2};
    assert_int_equal(write_events(f, "arch", &ev, 1, cp, &err), 0);
    assert_row(f->db, "SELECT group_concat(rolled_back) FROM arch_transactions ORDER BY tx_index",
               "0,0");
    /* a rollback keeps the node's message a fetch stored; a re-apply clears it */
    assert_int_equal(sqlite3_exec(f->db,
                                  "UPDATE arch_transactions SET rollback_reason = 'replaced' "
                                  "WHERE tx_index = 0",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    const char *third[] = {ROLLBACK};
    bp_block *e3 = arch_events(third, 1);
    ev = (bp_event){BP_EVENT_ARCH_EVENTS, e3};
    assert_int_equal(write_events(f, "arch", &ev, 1, cp, &err), 0);
    assert_row(f->db,
               "SELECT (SELECT group_concat(rolled_back) FROM arch_transactions),"
               " (SELECT count(*) FROM arch_events), (SELECT block_height FROM arch_events WHERE"
               " topic = 'rolledback_transactions'), (SELECT number FROM checkpoints),"
               " (SELECT rollback_reason FROM arch_transactions WHERE tx_index = 0)",
               "1,0|3|1|1|replaced");
    /* a resync (arch_ws.h): the rows change, no arch_events row */
    bp_block *e4 = arch_events(NULL, 0);
    bp_arch_rows *r4 = (bp_arch_rows *)e4->arch;
    free(r4->events);
    r4->events = calloc(1, sizeof(*r4->events));
    r4->events[0] = (bp_arch_event){.topic = BP_ARCH_T_REAPPLIED,
                                    .resync = true,
                                    .hashes = calloc(1, sizeof(bp_arch_hash)),
                                    .hash_count = 1};
    memset(r4->events[0].hashes[0], 'a', 64);
    r4->event_count = 1;
    ev = (bp_event){BP_EVENT_ARCH_EVENTS, e4};
    assert_int_equal(write_events(f, "arch", &ev, 1, cp, &err), 0);
    assert_row(f->db,
               "SELECT (SELECT group_concat(rolled_back) FROM arch_transactions),"
               " (SELECT count(*) FROM arch_events),"
               " (SELECT rollback_reason IS NULL FROM arch_transactions WHERE tx_index = 0)",
               "0,0|3|1");
    bp_block_free(e4);
    bp_block_free(b1);
    bp_block_free(e1);
    bp_block_free(e2);
    bp_block_free(e3);
}

/* The second APPLY collides with a different hash: the whole batch and its checkpoint are
 * rolled back, and the error names the block and both hashes. */
static void test_batch_is_atomic(void **state)
{
    fixture *f = *state;
    apply_range(f, "main", 1, 2);
    bp_block *b3 = fx_block(3, 0, true, true), *other2 = fx_block(2, 1, true, true);
    bp_event ev[] = {{BP_EVENT_APPLY, b3}, {BP_EVENT_APPLY, other2}};
    bp_error err = {0};
    int rc = write_events(f, "main", ev, 2, fx_cp(3, 0), &err);
    assert_int_equal(rc, BP_EDB);
    assert_non_null(strstr(err.msg, "block 2"));
    assert_non_null(strstr(err.msg, H(0xb0, 2)));
    assert_non_null(strstr(err.msg, H(0xb1, 2)));
    bp_block_free(b3);
    bp_block_free(other2);
    assert_row(f->db, "SELECT group_concat(number) FROM blocks", "1,2");
    assert_row(f->db, "SELECT max(block_number) FROM transactions", "2");
    assert_row(f->db, "SELECT max(block_number) FROM logs", "2");
    assert_row(f->db, "SELECT number FROM checkpoints", "2");
    /* The sink is usable after the failure. */
    apply_range(f, "main", 3, 3);
    assert_row(f->db, "SELECT number FROM checkpoints", "3");
}

static void test_same_hash_apply_is_skipped(void **state)
{
    fixture *f = *state;
    apply_range(f, "main", 1, 2);
    apply_range(f, "main", 2, 3); /* block 2 again (another writer did it): skipped */
    assert_row(f->db,
               "SELECT (SELECT count(*) FROM blocks), (SELECT count(*) FROM transactions),"
               " (SELECT count(*) FROM logs)",
               "3|12|15");
    assert_row(f->db, "SELECT number FROM checkpoints", "3");
}

static void test_recent(void **state)
{
    fixture *f = *state;
    apply_range(f, "main", 10, 14);
    bp_checkpoint out[8];
    size_t n = 0;
    bp_error err = {0};
    assert_int_equal(bp_sink_sqlite_ops.recent(f->sink, "main", out, 3, &n, &err), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(out[i].number, 14 - i);
        assert_string_equal(out[i].hash, H(0xb0, 14 - i));
    }
    assert_int_equal(bp_sink_sqlite_ops.recent(f->sink, "main", out, 8, &n, &err), 0);
    assert_int_equal(n, 5);
    assert_int_equal(bp_sink_sqlite_ops.recent(f->sink, "none", out, 8, &n, &err), 0);
    assert_int_equal(n, 0);
}

static void test_reopen_and_pragmas(void **state)
{
    fixture *f = *state;
    apply_range(f, "main", 1, 1);
    bp_sink_sqlite_ops.close(f->sink);
    f->sink = NULL;
    bp_error err = {0};
    assert_int_equal(bp_sink_sqlite_ops.open(&f->sink, f->path, NULL, &err), 0);
    bp_checkpoint cp;
    assert_int_equal(bp_sink_sqlite_ops.checkpoint(f->sink, "main", &cp, &err), 0);
    assert_true(cp.set);
    assert_int_equal(cp.number, 1);
    assert_row(f->db, "PRAGMA user_version", "4");
    assert_row(f->db, "PRAGMA journal_mode", "wal");
    apply_range(f, "main", 2, 2);
    assert_row(f->db, "SELECT count(*) FROM blocks", "2");
}

/* A database of schema version 2 (made before the L2 columns) is upgraded in place when
 * opened: the columns appended, its rows kept, new rows written with them. */
static void test_upgrade_from_v2(void **state)
{
    fixture *f = *state;
    apply_range(f, "main", 1, 1);
    bp_sink_sqlite_ops.close(f->sink);
    f->sink = NULL;
    bp_buf sql;
    bp_buf_init(&sql, 0);
    for (bp_table t = 0; t < BP_TABLE_COUNT; t++) {
        size_t first, n = bp_table_columns(t, &first);
        for (size_t i = bp_sql_v3_first(t); i < first + n; i++)
            assert_int_equal(bp_buf_printf(&sql, "ALTER TABLE %s DROP COLUMN %s;", bp_table_name(t),
                                           bp_columns[i].name),
                             0);
    }
    assert_int_equal(bp_buf_puts(&sql, "PRAGMA user_version = 2;"), 0);
    char *msg = NULL;
    if (sqlite3_exec(f->db, sql.data, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s", msg);
    bp_buf_release(&sql);
    assert_row(f->db,
               "SELECT count(*) FROM pragma_table_info('transactions') WHERE name LIKE"
               " 'receipt_l1%'",
               "0");
    bp_error err = {0};
    assert_int_equal(bp_sink_sqlite_ops.open(&f->sink, f->path, NULL, &err), 0);
    assert_row(f->db, "PRAGMA user_version", "4");
    assert_row(f->db,
               "SELECT count(*) FROM pragma_table_info('transactions') WHERE name LIKE"
               " 'receipt_l1%'",
               "8");
    assert_row(f->db, "SELECT name FROM pragma_table_info('logs') ORDER BY cid DESC LIMIT 1",
               "extra");
    assert_row(f->db, "SELECT count(*), count(extra) FROM blocks", "1|0");
    apply_range(f, "main", 2, 2);
    assert_row(f->db, "SELECT count(*) FROM blocks", "2");
}

/* The checkpoint's resync floor (an Arch chain's, bp_checkpoint.floor) is stored and read back
 * with it; a file of schema version 3 (no resync_floor column) gets the column when opened. */
static void test_checkpoint_floor(void **state)
{
    fixture *f = *state;
    bp_block *b = fx_block(1, 0, true, true);
    bp_event ev = {.kind = BP_EVENT_APPLY, .block = b};
    bp_checkpoint cp = fx_cp(1, 0);
    cp.floor_set = true;
    cp.floor = 7;
    bp_error err = {0};
    assert_int_equal(write_events(f, "main", &ev, 1, cp, &err), 0);
    bp_block_free(b);
    bp_checkpoint got;
    assert_int_equal(bp_sink_sqlite_ops.checkpoint(f->sink, "main", &got, &err), 0);
    assert_true(got.set && got.floor_set);
    assert_int_equal(got.floor, 7);
    bp_sink_sqlite_ops.close(f->sink);
    f->sink = NULL;
    assert_int_equal(sqlite3_exec(f->db,
                                  "ALTER TABLE checkpoints DROP COLUMN resync_floor;"
                                  "PRAGMA user_version = 3;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(bp_sink_sqlite_ops.open(&f->sink, f->path, NULL, &err), 0);
    assert_row(f->db, "PRAGMA user_version", "4");
    assert_int_equal(bp_sink_sqlite_ops.checkpoint(f->sink, "main", &got, &err), 0);
    assert_true(got.set && !got.floor_set);
    assert_int_equal(got.number, 1);
    apply_range(f, "main", 2, 2); /* no floor: NULL */
    assert_row(f->db, "SELECT number, resync_floor IS NULL FROM checkpoints", "2|1");
}

/* A block the insert refuses for another reason than its key: the error names the block and
 * the constraint, nothing is written. */
static void test_insert_error_names_block(void **state)
{
    fixture *f = *state;
    bp_block *b = fx_block(9, 0, true, true);
    b->hash = NULL;
    bp_event ev = {BP_EVENT_APPLY, b};
    bp_error err = {0};
    assert_int_equal(write_events(f, "main", &ev, 1, fx_cp(9, 0), &err), BP_EDB);
    bp_block_free(b);
    assert_non_null(strstr(err.msg, "block 9"));
    assert_non_null(strstr(err.msg, "NOT NULL"));
    assert_int_equal(count(f->db, "SELECT count(*) FROM checkpoints"), 0);
}

/* A checkpoint above INT64_MAX keeps its exact value. */
static void test_huge_checkpoint(void **state)
{
    fixture *f = *state;
    bp_error err = {0};
    bp_checkpoint cp = fx_cp(UINT64_MAX - 1, 0), got;
    assert_int_equal(write_events(f, "main", NULL, 0, cp, &err), 0);
    assert_int_equal(bp_sink_sqlite_ops.checkpoint(f->sink, "main", &got, &err), 0);
    assert_true(got.number == UINT64_MAX - 1);
    assert_row(f->db, "SELECT CAST(number AS TEXT) FROM checkpoints", "18446744073709551614");
}

static void test_open_errors(void **state)
{
    (void)state;
    bp_sink *s = NULL;
    bp_error err = {0};
    int rc = bp_sink_sqlite_ops.open(&s, "/nonexistent-dir/x/y.db", NULL, &err);
    assert_int_equal(rc, BP_EDB);
    assert_null(s);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x/y.db"));
    /* A database from a newer blockpipe is refused. */
    char dir[] = "/tmp/bp_sqlite_XXXXXX", path[64], cmd[96];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/new.db", dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 9", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(bp_sink_sqlite_ops.open(&s, path, NULL, &err), BP_EDB);
    assert_non_null(strstr(err.msg, "schema version 9"));
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_block_columns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_columns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_columns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_without_receipts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arch_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arch_read_absent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arch_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_is_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_hash_apply_is_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_and_pragmas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_from_v2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_floor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_error_names_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_huge_checkpoint, setup, teardown),
        cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
