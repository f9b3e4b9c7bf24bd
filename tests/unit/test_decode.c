/* test_decode.c - the JSON-RPC decoder against recorded mainnet (ethereum-etl) and geth
 * (execution-apis) answers, plus malformed variants that must fail naming the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "blockpipe/columns.h"
#include "blockpipe/error.h"
#include "blockpipe/model.h"
#include "chain/decode.h"
#include "chain/json.h"
#include "chain/rpc_envelope.h"
#include "util/arena.h"
#include "testfile.h"
#include "util/buf.h"
#include "util/hex.h"

#define ETL BP_CONFORMANCE_DIR "/ethereum-etl/"
#define XAPI BP_CONFORMANCE_DIR "/execution-apis/tests/"
#define BLOCK_483920                                                                               \
    ETL "export_blocks_job/block_with_logs/web3_response.eth_getBlockByNumber_0x76250_true.json"
#define RECEIPTS_DIR ETL "export_receipts_job/receipts_with_logs/"

/* ---- small helpers ---- */

/* The whole file; a test cannot go on without it. */
static char *slurp(const char *path, size_t *len)
{
    char *data = bp_test_slurp(path, len);
    if (!data)
        fail_msg("cannot read %s", path);
    return data;
}

/* The "<< response" line of an execution-apis .io file (a malloc'd copy). */
static char *io_response(const char *path)
{
    char *text = slurp(path, NULL);
    char *p = strstr(text, "\n<< ");
    assert_non_null(p);
    p += 4;
    char *end = strchr(p, '\n');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    char *out = strndup(p, n);
    free(text);
    return out;
}

/* s with the first `from` replaced by `to` (which must be there); free() it. */
static char *replace(const char *s, const char *from, const char *to)
{
    char *out = bp_test_replace(s, from, to);
    if (!out)
        fail_msg("'%s' not in the text", from);
    return out;
}

typedef struct answer {
    yajl_val root;
    yajl_val result;
} answer;

static int parse_one(const char *body, answer *a, bp_error *err)
{
    yajl_val error = NULL;
    int rc = bp_decode_rpc_response(body, strlen(body), 1, &a->root, &a->result, &error, err);
    if (rc == 0)
        assert_null(error);
    return rc;
}

/* The second run of the suite decodes blocks zero-copy (as fetch does): parsed in place in a
 * copy of the text that the block adopts. Every expectation must hold both ways. */
static bool g_inplace;

static int decode_block_inplace(const char *body, bool full, bp_block *b, bp_error *err)
{
    yajl_val root, result, error = NULL;
    bp_body text = {strdup(body), strlen(body)};
    assert_non_null(text.data);
    assert_int_equal(bp_arena_adopt(b->arena, text.data), 0);
    int rc = bp_decode_rpc_response_inplace(text.data, text.len, 1, &root, &result, &error, err);
    if (rc != 0)
        return rc;
    assert_null(error);
    rc = bp_decode_block_in(result, full, &text, b, err);
    bp_json_free(root);
    return rc;
}

static int decode_block_text(const char *body, bool full, bp_block **out, bp_error *err)
{
    answer a;
    *out = bp_block_new();
    assert_non_null(*out);
    if (g_inplace)
        return decode_block_inplace(body, full, *out, err);
    int rc = parse_one(body, &a, err);
    if (rc != 0)
        return rc;
    rc = bp_decode_block(a.result, full, *out, err);
    bp_json_free(a.root);
    return rc;
}

static bp_block *decode_block_file(const char *path, bool full)
{
    char *body = slurp(path, NULL);
    bp_block *b;
    bp_error err = {0};
    int rc = decode_block_text(body, full, &b, &err);
    free(body);
    if (rc != 0)
        fail_msg("%s: %s", path, err.msg);
    return b;
}

/* ---- expected CSV files ---- */

typedef struct csv {
    char **cells; /* rows * cols, row 0 is the header */
    size_t rows, cols;
} csv;

/* Reads one cell starting at *p (quoted cells may hold commas and "" escapes). */
static char *csv_cell(const char **p)
{
    bp_buf b;
    bp_buf_init(&b, 0);
    assert_int_equal(bp_buf_append(&b, "", 0), 0);
    const char *s = *p;
    if (*s == '"') {
        for (s++; *s && !(*s == '"' && s[1] != '"'); s++) {
            if (*s == '"')
                s++;
            bp_buf_putc(&b, *s);
        }
        if (*s == '"')
            s++;
    } else {
        for (; *s && *s != ',' && *s != '\n' && *s != '\r'; s++)
            bp_buf_putc(&b, *s);
    }
    *p = s;
    return b.data;
}

static csv csv_load(const char *path)
{
    char *text = slurp(path, NULL);
    csv c = {NULL, 0, 0};
    size_t cap = 0;
    for (const char *p = text; *p;) {
        size_t col = 0;
        while (1) {
            if (c.rows * (c.cols ? c.cols : 64) + col >= cap) {
                cap = cap ? cap * 2 : 1024;
                c.cells = realloc(c.cells, cap * sizeof(char *));
            }
            c.cells[c.rows * (c.cols ? c.cols : 64) + col++] = csv_cell(&p);
            if (*p != ',')
                break;
            p++;
        }
        if (!c.cols) {
            /* Header row: now the width is known; move it to a packed layout. */
            c.cols = col;
        } else {
            assert_int_equal(col, c.cols);
        }
        c.rows++;
        while (*p == '\r' || *p == '\n')
            p++;
    }
    free(text);
    return c;
}

static const char *csv_get(const csv *c, size_t row, const char *col)
{
    for (size_t j = 0; j < c->cols; j++) {
        if (strcmp(c->cells[j], col) == 0)
            return c->cells[row * c->cols + j];
    }
    fail_msg("no column %s", col);
    return NULL;
}

static void csv_free(csv *c)
{
    for (size_t i = 0; i < c->rows * c->cols; i++)
        free(c->cells[i]);
    free(c->cells);
}

/* ---- model -> ethereum-etl cell text ---- */

static void u64_dec(uint64_t v, char *out)
{
    snprintf(out, BP_U256_DEC_MAX, "%llu", (unsigned long long)v);
}

static void qty_dec(const bp_qty *q, char *out)
{
    if (q->set)
        bp_u256_to_dec(&q->v, out);
    else
        out[0] = '\0';
}

static void opt_dec(const bp_opt_u64 *o, char *out)
{
    if (o->set)
        u64_dec(o->v, out);
    else
        out[0] = '\0';
}

static void str_cell(const char *s, char *out)
{
    snprintf(out, 1024, "%s", s ? s : "");
}

/* The text the outputs write of a value kept as bytes (a long one's is valid until the next). */
static const char *hexb_str(const bp_hexb *h)
{
    static char text[BP_HEXB_TEXT];
    bp_value v = bp_val_hexb(h);
    if (v.kind != BP_VAL_HEX)
        return v.s;
    bp_hexb_text(text, v.h);
    return text;
}

static void block_cell(const bp_block *b, const char *col, char *out)
{
    const struct {
        const char *name;
        const char *val;
    } text[] = {
        {"hash", b->hash},
        {"parent_hash", b->parent_hash},
        {"nonce", b->nonce},
        {"sha3_uncles", b->sha3_uncles},
        {"logs_bloom", b->logs_bloom},
        {"transactions_root", b->transactions_root},
        {"state_root", b->state_root},
        {"receipts_root", b->receipts_root},
        {"miner", b->miner},
        {"extra_data", b->extra_data},
        {"withdrawals_root", b->withdrawals_root},
    };
    for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++) {
        if (strcmp(col, text[i].name) == 0)
            return str_cell(text[i].val, out);
    }
    if (!strcmp(col, "number"))
        u64_dec(b->number, out);
    else if (!strcmp(col, "difficulty"))
        qty_dec(&b->difficulty, out);
    else if (!strcmp(col, "total_difficulty"))
        qty_dec(&b->total_difficulty, out);
    else if (!strcmp(col, "size"))
        opt_dec(&b->size, out);
    else if (!strcmp(col, "gas_limit"))
        u64_dec(b->gas_limit, out);
    else if (!strcmp(col, "gas_used"))
        u64_dec(b->gas_used, out);
    else if (!strcmp(col, "timestamp"))
        u64_dec(b->timestamp, out);
    else if (!strcmp(col, "transaction_count"))
        u64_dec(b->transaction_count, out);
    else if (!strcmp(col, "base_fee_per_gas"))
        qty_dec(&b->base_fee_per_gas, out);
    else if (!strcmp(col, "withdrawals"))
        str_cell(b->withdrawal_count ? "(withdrawals)" : "", out);
    else
        fail_msg("unknown block column %s", col);
}

static void tx_cell(const bp_tx *t, const char *col, char *out)
{
    if (!strcmp(col, "hash"))
        str_cell(t->hash, out);
    else if (!strcmp(col, "nonce"))
        u64_dec(t->nonce, out);
    else if (!strcmp(col, "block_hash"))
        str_cell(t->block_hash, out);
    else if (!strcmp(col, "block_number"))
        u64_dec(t->block_number, out);
    else if (!strcmp(col, "transaction_index"))
        u64_dec(t->transaction_index, out);
    else if (!strcmp(col, "from_address"))
        str_cell(t->from_address, out);
    else if (!strcmp(col, "to_address"))
        str_cell(t->to_address, out);
    else if (!strcmp(col, "value"))
        qty_dec(&t->value, out);
    else if (!strcmp(col, "gas"))
        u64_dec(t->gas, out);
    else if (!strcmp(col, "gas_price"))
        qty_dec(&t->gas_price, out);
    else if (!strcmp(col, "input"))
        str_cell(hexb_str(t->input), out);
    else if (!strcmp(col, "block_timestamp"))
        u64_dec(t->block_timestamp, out);
    else if (!strcmp(col, "max_fee_per_gas"))
        qty_dec(&t->max_fee_per_gas, out);
    else if (!strcmp(col, "max_priority_fee_per_gas"))
        qty_dec(&t->max_priority_fee_per_gas, out);
    else if (!strcmp(col, "transaction_type"))
        opt_dec(&t->transaction_type, out);
    else
        fail_msg("unknown transaction column %s", col);
}

static void receipt_cell(const bp_tx *t, const char *col, char *out)
{
    out[0] = '\0';
    if (!strcmp(col, "transaction_hash"))
        str_cell(t->hash, out);
    else if (!strcmp(col, "transaction_index"))
        u64_dec(t->transaction_index, out);
    else if (!strcmp(col, "block_hash"))
        str_cell(t->block_hash, out);
    else if (!strcmp(col, "block_number"))
        u64_dec(t->block_number, out);
    else if (!strcmp(col, "cumulative_gas_used"))
        u64_dec(t->receipt_cumulative_gas_used, out);
    else if (!strcmp(col, "gas_used"))
        u64_dec(t->receipt_gas_used, out);
    else if (!strcmp(col, "contract_address"))
        str_cell(t->receipt_contract_address, out);
    else if (!strcmp(col, "root"))
        str_cell(t->rare ? t->rare->receipt_root : NULL, out);
    else if (!strcmp(col, "status"))
        opt_dec(&t->receipt_status, out);
    else if (!strcmp(col, "effective_gas_price"))
        qty_dec(&t->receipt_effective_gas_price, out);
    else if (strncmp(col, "l1_", 3) != 0)
        fail_msg("unknown receipt column %s", col);
}

static void log_cell(const bp_block *b, const bp_log *l, const char *col, char *out)
{
    if (!strcmp(col, "log_index"))
        u64_dec(l->log_index, out);
    else if (!strcmp(col, "transaction_hash"))
        str_cell(l->transaction_hash, out);
    else if (!strcmp(col, "transaction_index"))
        u64_dec(l->transaction_index, out);
    else if (!strcmp(col, "block_hash"))
        str_cell(b->hash, out);
    else if (!strcmp(col, "block_number"))
        u64_dec(b->number, out);
    else if (!strcmp(col, "address"))
        str_cell(l->address, out);
    else if (!strcmp(col, "data"))
        str_cell(l->data, out);
    else if (!strcmp(col, "topics")) {
        out[0] = '\0';
        for (size_t i = 0; i < l->topic_count; i++) {
            if (i)
                strcat(out, ",");
            strcat(out, l->topics[i]);
        }
    } else
        fail_msg("unknown log column %s", col);
}

#define CELL_MAX 4096

static void expect_cell(const char *what, const char *col, const char *want, const char *got)
{
    if (strcmp(want, got) != 0)
        fail_msg("%s: column %s: expected '%s', got '%s'", what, col, want, got);
}

/* Every column of every expected block row must match a decoded block with that number. */
static void compare_blocks(const char *csv_path, bp_block **blocks, size_t n)
{
    csv c = csv_load(csv_path);
    assert_int_equal(c.rows - 1, n);
    char got[CELL_MAX];
    for (size_t r = 1; r < c.rows; r++) {
        const bp_block *b = NULL;
        for (size_t i = 0; i < n; i++) {
            block_cell(blocks[i], "number", got);
            if (!strcmp(got, csv_get(&c, r, "number")))
                b = blocks[i];
        }
        assert_non_null(b);
        for (size_t j = 0; j < c.cols; j++) {
            block_cell(b, c.cells[j], got);
            expect_cell("block", c.cells[j], c.cells[r * c.cols + j], got);
        }
    }
    csv_free(&c);
}

static const bp_tx *find_tx(bp_block **blocks, size_t n, const char *hash)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < blocks[i]->tx_count; k++) {
            if (!strcmp(blocks[i]->txs[k].hash, hash))
                return &blocks[i]->txs[k];
        }
    }
    fail_msg("no decoded tx %s", hash);
    return NULL;
}

static void compare_txs(const char *csv_path, bp_block **blocks, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += blocks[i]->tx_count;
    csv c = csv_load(csv_path);
    /* An entity without rows is an empty file, not even a header. */
    assert_int_equal(c.rows ? c.rows - 1 : 0, total);
    char got[CELL_MAX];
    for (size_t r = 1; r < c.rows; r++) {
        const bp_tx *t = find_tx(blocks, n, csv_get(&c, r, "hash"));
        for (size_t j = 0; j < c.cols; j++) {
            tx_cell(t, c.cells[j], got);
            expect_cell("transaction", c.cells[j], c.cells[r * c.cols + j], got);
        }
    }
    csv_free(&c);
}

static void check_export_case(const char *dir, const char *const *files, size_t n)
{
    bp_block *blocks[4];
    char path[1024];
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s%s/%s", ETL, dir, files[i]);
        blocks[i] = decode_block_file(path, true);
    }
    snprintf(path, sizeof(path), "%s%s/expected_blocks.csv", ETL, dir);
    compare_blocks(path, blocks, n);
    snprintf(path, sizeof(path), "%s%s/expected_transactions.csv", ETL, dir);
    compare_txs(path, blocks, n);
    for (size_t i = 0; i < n; i++)
        bp_block_free(blocks[i]);
}

static void test_etl_genesis(void **state)
{
    (void)state;
    const char *f[] = {"web3_response.eth_getBlockByNumber_0x0_true.json"};
    check_export_case("export_blocks_job/block_without_transactions", f, 1);
}

static void test_etl_block_with_logs(void **state)
{
    (void)state;
    const char *f[] = {"web3_response.eth_getBlockByNumber_0x76250_true.json"};
    check_export_case("export_blocks_job/block_with_logs", f, 1);
}

static void test_etl_blocks_with_transactions(void **state)
{
    (void)state;
    const char *f[] = {"web3_response.eth_getBlockByNumber_0xb872_true.json",
                       "web3_response.eth_getBlockByNumber_0xb873_true.json"};
    check_export_case("export_blocks_job/blocks_with_transactions", f, 2);
}

/* ---- receipts (pre-Byzantium, Parity) ---- */

typedef struct receipts {
    answer a[16];
    yajl_val r[16];
    size_t n;
} receipts;

static void load_receipts(const char *dir, const bp_block *b, receipts *out)
{
    out->n = b->transaction_count;
    assert_true(out->n <= 16);
    for (size_t i = 0; i < out->n; i++) {
        char path[1024];
        snprintf(path, sizeof(path), "%sweb3_response.eth_getTransactionReceipt_%s.json", dir,
                 b->txs[i].hash);
        char *body = slurp(path, NULL);
        bp_error err = {0};
        assert_int_equal(parse_one(body, &out->a[i], &err), 0);
        out->r[i] = out->a[i].result;
        free(body);
    }
}

static void free_receipts(receipts *r)
{
    for (size_t i = 0; i < r->n; i++)
        bp_json_free(r->a[i].root);
}

static void compare_receipts(const char *csv_path, const bp_block *b)
{
    csv c = csv_load(csv_path);
    assert_int_equal(c.rows - 1, b->tx_count);
    char got[CELL_MAX];
    for (size_t r = 1; r < c.rows; r++) {
        bp_block *bb = (bp_block *)b;
        const bp_tx *t = find_tx(&bb, 1, csv_get(&c, r, "transaction_hash"));
        assert_true(t->has_receipt);
        for (size_t j = 0; j < c.cols; j++) {
            receipt_cell(t, c.cells[j], got);
            expect_cell("receipt", c.cells[j], c.cells[r * c.cols + j], got);
        }
    }
    csv_free(&c);
}

static void compare_logs(const char *csv_path, const bp_block *b)
{
    csv c = csv_load(csv_path);
    assert_int_equal(c.rows - 1, b->log_count);
    char got[CELL_MAX];
    for (size_t r = 1; r < c.rows; r++) {
        const bp_log *l = NULL;
        for (size_t i = 0; i < b->log_count; i++) {
            u64_dec(b->logs[i].log_index, got);
            if (!strcmp(got, csv_get(&c, r, "log_index")))
                l = &b->logs[i];
        }
        assert_non_null(l);
        for (size_t j = 0; j < c.cols; j++) {
            log_cell(b, l, c.cells[j], got);
            expect_cell("log", c.cells[j], c.cells[r * c.cols + j], got);
        }
    }
    csv_free(&c);
}

static void test_etl_receipts_with_logs(void **state)
{
    (void)state;
    bp_block *b = decode_block_file(BLOCK_483920, true);
    receipts rs;
    load_receipts(RECEIPTS_DIR, b, &rs);
    bp_error err = {0};
    int rc = bp_decode_receipt_list(rs.r, rs.n, b, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_true(b->has_receipts);
    compare_receipts(RECEIPTS_DIR "expected_receipts.csv", b);
    compare_logs(RECEIPTS_DIR "expected_logs.csv", b);
    /* Each tx's logs are its own slice of the block-wide array, in block order. */
    size_t pos = 0;
    for (size_t i = 0; i < b->tx_count; i++) {
        assert_int_equal(b->txs[i].log_offset, pos);
        for (size_t k = 0; k < b->txs[i].log_count; k++)
            assert_string_equal(b->logs[pos + k].transaction_hash, b->txs[i].hash);
        pos += b->txs[i].log_count;
        assert_false(b->txs[i].receipt_status.set);
        assert_true(b->txs[i].rare && b->txs[i].rare->receipt_root);
    }
    assert_int_equal(pos, b->log_count);
    free_receipts(&rs);
    bp_block_free(b);
}

/* The stream case: a block with an absent-status receipt; spot checks from the JSON lines. */
static void test_etl_stream_block(void **state)
{
    (void)state;
    const char *dir = ETL "stream/blocks_1755634_1755635/";
    char path[1024];
    snprintf(path, sizeof(path), "%sweb3_response.eth_getBlockByNumber_0x1ac9f3_true.json", dir);
    bp_block *b = decode_block_file(path, true);
    receipts rs;
    load_receipts(dir, b, &rs);
    bp_error err = {0};
    if (bp_decode_receipt_list(rs.r, rs.n, b, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(b->number, 1755635);
    assert_int_equal(b->tx_count, 2);
    assert_int_equal(b->txs[0].block_timestamp, 1466669562);
    assert_string_equal(b->txs[0].hash,
                        "0x2e3dcd051a91d3a694f6b8de2ac4b5fe7acdba55f58bcf8471ff00d4a430074d");
    assert_int_equal(b->txs[0].nonce, 34160);
    assert_int_equal(b->log_count, 2);
    free_receipts(&rs);
    bp_block_free(b);
    snprintf(path, sizeof(path), "%sweb3_response.eth_getBlockByNumber_latest_false.json", dir);
    b = decode_block_file(path, false);
    assert_int_equal(b->tx_count, 0);
    for (size_t i = 0; i < b->transaction_count; i++)
        assert_true(b->txs[i].hash && strlen(b->txs[i].hash) == 66);
    bp_block_free(b);
}

/* ---- execution-apis (geth, newer forks) ---- */

static bp_block *decode_io_block(const char *path, bool full)
{
    char *body = io_response(path);
    bp_block *b;
    bp_error err = {0};
    int rc = decode_block_text(body, full, &b, &err);
    free(body);
    if (rc)
        fail_msg("%s: %s", path, err.msg);
    return b;
}

static void test_xapi_block_54_receipts(void **state)
{
    (void)state;
    bp_block *b = decode_io_block(XAPI "eth_getBlockByNumber/get-latest.io", true);
    assert_int_equal(b->number, 54);
    assert_int_equal(b->timestamp, 540);
    assert_false(b->total_difficulty.set);
    assert_non_null(b->requests_hash);
    assert_non_null(b->parent_beacon_block_root);
    assert_true(b->blob_gas_used.set && b->excess_blob_gas.set);
    assert_true(b->has_withdrawals);
    assert_int_equal(b->withdrawal_count, 0);
    char *body = io_response(XAPI "eth_getBlockReceipts/get-block-receipts-latest.io");
    answer a;
    bp_error err = {0};
    assert_int_equal(parse_one(body, &a, &err), 0);
    if (bp_decode_block_receipts(a.result, b, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(b->tx_count, 4);
    assert_int_equal(b->log_count, 11);
    assert_true(b->has_receipts);
    size_t pos = 0;
    for (size_t i = 0; i < b->tx_count; i++) {
        const bp_tx *t = &b->txs[i];
        assert_true(t->has_receipt && t->receipt_status.set &&
                    (!t->rare || !t->rare->receipt_root));
        assert_true(t->receipt_effective_gas_price.set);
        assert_int_equal(t->log_offset, pos);
        for (size_t k = 0; k < t->log_count; k++) {
            const bp_log *l = &b->logs[pos + k];
            assert_int_equal(l->log_index, pos + k);
            assert_int_equal(l->transaction_index, i);
            assert_ptr_equal(l->transaction_hash, t->hash);
            assert_true(l->topic_count <= 4 && l->data != NULL);
        }
        pos += t->log_count;
    }
    assert_non_null(b->txs[0].receipt_contract_address);
    bp_json_free(a.root);
    free(body);
    bp_block_free(b);
}

static void test_xapi_hash_only_and_withdrawals(void **state)
{
    (void)state;
    bp_block *b = decode_io_block(XAPI "eth_getBlockByNumber/get-block-shanghai-fork.io", false);
    assert_int_equal(b->number, 0x27);
    assert_int_equal(b->tx_count, 0);
    assert_true(b->transaction_count > 0);
    assert_non_null(b->txs[0].hash);
    assert_true(b->has_withdrawals);
    assert_int_equal(b->withdrawal_count, 1);
    assert_int_equal(b->withdrawals[0].index, 0);
    assert_int_equal(b->withdrawals[0].validator_index, 5);
    assert_int_equal(b->withdrawals[0].amount, 0x64);
    assert_string_equal(b->withdrawals[0].address, "0x3ae75c08b4c907eb63a8960c45b86e1e9ab6123c");
    assert_non_null(b->withdrawals_root);
    bp_block_free(b);
    b = decode_io_block(XAPI "eth_getBlockByHash/get-block-by-hash.io", true);
    assert_int_equal(b->tx_count, 4);
    bp_block_free(b);
}

static void test_xapi_not_found(void **state)
{
    (void)state;
    char *body = io_response(XAPI "eth_getBlockByNumber/get-block-notfound.io");
    bp_block *b;
    bp_error err = {0};
    assert_int_equal(decode_block_text(body, true, &b, &err), BP_ENOTFOUND);
    bp_block_free(b);
    free(body);
}

/* A one-tx answer (eth_getTransactionByHash) wrapped in a minimal block, with filler txs
 * before it so its transactionIndex matches its position. */
static char *wrap_tx(const char *tx_json, const char *block_hash, const char *block_number,
                     size_t index)
{
    bp_buf b;
    bp_buf_init(&b, 0);
    bp_buf_printf(&b,
                  "{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{\"number\":\"%s\",\"hash\":\"%s\","
                  "\"parentHash\":\"0x%064d\",\"logsBloom\":\"0x00\",\"transactionsRoot\":"
                  "\"0x%064d\",\"stateRoot\":\"0x%064d\",\"receiptsRoot\":\"0x%064d\","
                  "\"miner\":\"0x%040d\",\"extraData\":\"0x\",\"gasLimit\":\"0x1\","
                  "\"gasUsed\":\"0x1\",\"timestamp\":\"0x1c2\",\"transactions\":[",
                  block_number, block_hash, 0, 0, 0, 0, 0);
    for (size_t i = 0; i < index; i++)
        bp_buf_printf(&b,
                      "{\"hash\":\"0x%064zu\",\"from\":\"0x%040d\",\"nonce\":\"0x0\",\"gas\":"
                      "\"0x0\",\"value\":\"0x0\",\"input\":\"0x\",\"transactionIndex\":\"0x%zx\"},",
                      i, 0, i);
    bp_buf_printf(&b, "%s]}}", tx_json);
    return b.data;
}

static char *wrap_receipts(const char *receipt_json, const char *block_hash, size_t index)
{
    bp_buf b;
    bp_buf_init(&b, 0);
    bp_buf_puts(&b, "{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":[");
    for (size_t i = 0; i < index; i++)
        bp_buf_printf(
            &b,
            "{\"transactionHash\":\"0x%064zu\",\"blockHash\":\"%s\",\"cumulativeGasUsed\":"
            "\"0x0\",\"gasUsed\":\"0x0\",\"logs\":[]},",
            i, block_hash);
    bp_buf_printf(&b, "%s]}", receipt_json);
    return b.data;
}

/* Text of the "result" object in an .io answer line. */
static char *result_text(const char *line)
{
    const char *p = strstr(line, "\"result\":");
    assert_non_null(p);
    p += 9;
    size_t n = strlen(p);
    assert_true(n > 1 && p[n - 1] == '}');
    return strndup(p, n - 1);
}

static const char *field_text(const char *json, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":\"", key);
    const char *p = strstr(json, pat);
    assert_non_null(p);
    p += strlen(pat);
    size_t n = (size_t)(strchr(p, '"') - p);
    assert_true(n < cap);
    memcpy(out, p, n);
    out[n] = '\0';
    return out;
}

/* Each chain family's fields go to its own part of bp_tx, made only when one appears: an
 * Arbitrum receipt's gasUsedForL1 / l1BlockNumber make bp_tx.arb alone, an OP-stack receipt's
 * l1Fee bp_tx.op alone (so an Arbitrum tx does not carry the OP fields' bytes). */
static void test_l2_family_parts(void **state)
{
    (void)state;
    const char *tx = "{\"hash\":\"0x%064d\",\"from\":\"0x%040d\",\"nonce\":\"0x0\",\"gas\":\"0x1\","
                     "\"value\":\"0x0\",\"input\":\"0x\",\"transactionIndex\":\"0x%d\","
                     "\"type\":\"0x2\"}";
    char t0[512], t1[512], both[1100];
    snprintf(t0, sizeof(t0), tx, 1, 0, 0);
    snprintf(t1, sizeof(t1), tx, 2, 0, 1);
    snprintf(both, sizeof(both), "%s,%s", t0, t1);
    const char *bh = "0x3333333333333333333333333333333333333333333333333333333333333333";
    char *body = wrap_tx(both, bh, "0x6", 0);
    bp_block *b;
    bp_error err = {0};
    if (decode_block_text(body, true, &b, &err))
        fail_msg("%s", err.msg);
    free(body);
    static const char *own[] = {"\"gasUsedForL1\":\"0x5\",\"l1BlockNumber\":\"0x10\"",
                                "\"l1Fee\":\"0x7\",\"l1FeeScalar\":\"0.684\""};
    char r[4096];
    size_t len = (size_t)snprintf(r, sizeof(r), "{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":[");
    for (int i = 0; i < 2; i++)
        len += (size_t)snprintf(r + len, sizeof(r) - len,
                                "%s{\"transactionHash\":\"0x%064d\",\"blockHash\":\"%s\","
                                "\"cumulativeGasUsed\":\"0x1\",\"gasUsed\":\"0x1\",\"logs\":[],"
                                "\"status\":\"0x1\",%s}",
                                i ? "," : "", i + 1, bh, own[i]);
    snprintf(r + len, sizeof(r) - len, "]}");
    answer a;
    assert_int_equal(parse_one(r, &a, &err), 0);
    if (bp_decode_block_receipts(a.result, b, &err))
        fail_msg("receipts: %s", err.msg);
    bp_json_free(a.root);
    assert_null(b->txs[0].op);
    assert_non_null(b->txs[0].arb);
    assert_true(b->txs[0].arb->receipt_gas_used_for_l1.set);
    assert_int_equal(b->txs[0].arb->receipt_gas_used_for_l1.v, 5);
    assert_int_equal(b->txs[0].arb->receipt_l1_block_number.v, 16);
    assert_null(b->txs[1].arb);
    assert_non_null(b->txs[1].op);
    assert_true(b->txs[1].op->receipt_l1_fee.set);
    assert_string_equal(b->txs[1].op->receipt_l1_fee_scalar, "0.684");
    assert_false(b->txs[1].op->mint.set);
    bp_block_free(b);
}

/* Decodes the tx and receipt fixtures of one execution-apis test name into a block. */
static bp_block *decode_typed(const char *name, size_t *index)
{
    char path[1024], bh[80], bn[24], ti[24];
    snprintf(path, sizeof(path), XAPI "eth_getTransactionByHash/%s.io", name);
    char *line = io_response(path);
    char *tx = result_text(line);
    field_text(tx, "blockHash", bh, sizeof(bh));
    field_text(tx, "blockNumber", bn, sizeof(bn));
    uint64_t idx;
    field_text(tx, "transactionIndex", ti, sizeof(ti));
    assert_int_equal(bp_hex_to_u64(ti, strlen(ti), &idx), 0);
    char *body = wrap_tx(tx, bh, bn, idx);
    bp_block *b;
    bp_error err = {0};
    if (decode_block_text(body, true, &b, &err))
        fail_msg("%s: %s", name, err.msg);
    free(body);
    free(tx);
    free(line);

    snprintf(path, sizeof(path), XAPI "eth_getTransactionReceipt/%s.io", name);
    line = io_response(path);
    char *rc_json = result_text(line);
    body = wrap_receipts(rc_json, bh, idx);
    answer a;
    assert_int_equal(parse_one(body, &a, &err), 0);
    if (bp_decode_block_receipts(a.result, b, &err))
        fail_msg("%s receipts: %s", name, err.msg);
    bp_json_free(a.root);
    free(body);
    free(rc_json);
    free(line);
    *index = idx;
    return b;
}

static void test_xapi_type1(void **state)
{
    (void)state;
    size_t i;
    bp_block *b = decode_typed("get-access-list", &i);
    const bp_tx *t = &b->txs[i];
    assert_int_equal(t->transaction_type.v, 1);
    assert_true(t->chain_id.set);
    assert_int_equal(t->chain_id.v, 0xc72dd9d5e883eULL);
    assert_non_null(t->access_list_json);
    assert_non_null(strstr(t->access_list_json, "\"storageKeys\":["));
    assert_true(!t->rare || !t->rare->raw_json);
    assert_non_null(t->y_parity);
    assert_true(t->has_receipt && t->receipt_status.set);
    bp_block_free(b);
}

static void test_xapi_type2(void **state)
{
    (void)state;
    size_t i;
    bp_block *b = decode_typed("get-dynamic-fee", &i);
    const bp_tx *t = &b->txs[i];
    assert_int_equal(t->transaction_type.v, 2);
    assert_true(t->max_fee_per_gas.set && t->max_priority_fee_per_gas.set);
    assert_non_null(strstr(t->access_list_json,
                           "[{\"address\":\"0x7dcd17433742f4c0ca53122ab541d0ba67fc27df\""));
    assert_true(t->receipt_effective_gas_price.set);
    assert_int_equal(t->receipt_effective_gas_price.v.w[0], 0x3b9aca01);
    bp_block_free(b);
}

static void test_xapi_type3_blob(void **state)
{
    (void)state;
    size_t i;
    bp_block *b = decode_typed("get-blob-tx", &i);
    const bp_tx *t = &b->txs[i];
    assert_int_equal(t->transaction_type.v, 3);
    assert_true(t->rare->max_fee_per_blob_gas.set);
    assert_int_equal(t->rare->max_fee_per_blob_gas.v.w[0], 0x20000);
    assert_string_equal(t->rare->blob_versioned_hashes_json,
                        "[\"0x015a4cab4911426699ed34483de6640cf55a568afc5c5edffdcbd8bcd4452f68\"]");
    assert_true(t->rare->receipt_blob_gas_used.set);
    assert_int_equal(t->rare->receipt_blob_gas_used.v, 0x20000);
    assert_true(t->rare->receipt_blob_gas_price.set);
    assert_int_equal(t->rare->receipt_blob_gas_price.v.w[0], 1);
    bp_block_free(b);
}

static void test_xapi_type4_setcode(void **state)
{
    (void)state;
    size_t i;
    bp_block *b = decode_typed("get-setcode-tx", &i);
    assert_int_equal(i, 1);
    const bp_tx *t = &b->txs[i];
    assert_int_equal(t->transaction_type.v, 4);
    assert_non_null(t->rare->authorization_list_json);
    assert_non_null(strstr(t->rare->authorization_list_json,
                           "\"address\":\"0x8c2319620d7c348bb4e2b2a0b230c81f310e9561\""));
    assert_true(t->has_receipt);
    assert_int_equal(t->log_offset + t->log_count, b->log_count);
    bp_block_free(b);
}

/* A type nobody told us of (0x99): the whole object is kept verbatim. */
static void test_unknown_type_raw_json(void **state)
{
    (void)state;
    const char *tx =
        "{\"hash\":\"0xAB00000000000000000000000000000000000000000000000000000000000001\","
        "\"from\":\"0xdeaddeaddeaddeaddeaddeaddeaddeaddead0001\",\"type\":\"0x99\","
        "\"l2Field\":\"0x01\",\"flag\":false,"
        "\"gas\":\"0xf4240\",\"transactionIndex\":\"0x0\",\"extra\":[1.5,null,{}]}";
    char *body = wrap_tx(tx,
                         "0x"
                         "11111111111111111111111111111111"
                         "11111111111111111111111111111111",
                         "0x5", 0);
    bp_block *b;
    bp_error err = {0};
    if (decode_block_text(body, true, &b, &err))
        fail_msg("%s", err.msg);
    const bp_tx *t = &b->txs[0];
    assert_int_equal(t->transaction_type.v, 0x99);
    assert_non_null(t->rare->raw_json);
    /* and what we do not model is in extra as well */
    assert_non_null(t->extra_json);
    assert_non_null(strstr(t->extra_json, "\"extra\":[1.5,null,{}]"));
    assert_non_null(strstr(t->rare->raw_json, "\"l2Field\":\"0x01\""));
    assert_non_null(strstr(t->rare->raw_json, "\"flag\":false"));
    assert_non_null(strstr(t->rare->raw_json, "\"extra\":[1.5,null,{}]"));
    assert_string_equal(t->hash,
                        "0xab00000000000000000000000000000000000000000000000000000000000001");
    assert_string_equal(hexb_str(t->input), "0x");
    bp_block_free(b);
    free(body);
}

/* geth 1.16's copy of the block's timestamp in a tx and a receipt is not an extra field; a
 * receipt without logs has the all-zero bloom, one copy shared by every such receipt; an L1
 * tx carries no L2 part. */
static void test_block_timestamp_and_zero_bloom(void **state)
{
    (void)state;
    const char *tx = "{\"hash\":\"0x%064d\",\"from\":\"0x%040d\",\"nonce\":\"0x0\",\"gas\":\"0x1\","
                     "\"value\":\"0x0\",\"input\":\"0x\",\"transactionIndex\":\"0x%d\","
                     "\"type\":\"0x2\",\"blockTimestamp\":\"0x1c2\"}";
    char t0[512], t1[512], r[2048];
    char zeros[515] = "0x";
    memset(zeros + 2, '0', 512);
    zeros[514] = '\0';
    snprintf(t0, sizeof(t0), tx, 1, 0, 0);
    snprintf(t1, sizeof(t1), tx, 2, 0, 1);
    char both[1100];
    snprintf(both, sizeof(both), "%s,%s", t0, t1);
    const char *bh = "0x2222222222222222222222222222222222222222222222222222222222222222";
    char *body = wrap_tx(both, bh, "0x5", 0);
    bp_block *b;
    bp_error err = {0};
    if (decode_block_text(body, true, &b, &err))
        fail_msg("%s", err.msg);
    free(body);
    assert_int_equal(b->tx_count, 2);
    bp_buf rb;
    bp_buf_init(&rb, 0);
    bp_buf_puts(&rb, "{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":[");
    for (int i = 0; i < 2; i++) {
        snprintf(r, sizeof(r),
                 "%s{\"transactionHash\":\"0x%064d\",\"blockHash\":\"%s\",\"cumulativeGasUsed\":"
                 "\"0x1\",\"gasUsed\":\"0x1\",\"logs\":[],\"logsBloom\":\"%s\","
                 "\"blockTimestamp\":\"0x1c2\",\"status\":\"0x1\"}",
                 i ? "," : "", i + 1, bh, zeros);
        bp_buf_puts(&rb, r);
    }
    bp_buf_puts(&rb, "]}");
    answer a;
    assert_int_equal(parse_one(rb.data, &a, &err), 0);
    if (bp_decode_block_receipts(a.result, b, &err))
        fail_msg("receipts: %s", err.msg);
    bp_json_free(a.root);
    bp_buf_release(&rb);
    for (int i = 0; i < 2; i++) {
        assert_null(b->txs[i].extra_json);
        assert_null(b->txs[i].receipt_extra_json);
        assert_null(b->txs[i].op);
        assert_null(b->txs[i].arb);
        char text[BP_HEXB_TEXT];
        bp_hexb_text(text, b->txs[i].receipt_logs_bloom);
        assert_string_equal(text, zeros);
    }
    /* kept as bytes, in place too: one shared copy */
    assert_ptr_equal(b->txs[0].receipt_logs_bloom, b->txs[1].receipt_logs_bloom);
    bp_block_free(b);
}

/* ---- malformed answers ---- */

static void expect_block_error(const char *body, int code, const char *const *needles)
{
    bp_block *b;
    bp_error err = {0};
    int rc = decode_block_text(body, true, &b, &err);
    bp_block_free(b);
    if (rc != code)
        fail_msg("expected %d, got %d (%s)", code, rc, err.msg);
    for (size_t i = 0; needles[i]; i++) {
        if (!strstr(err.msg, needles[i]))
            fail_msg("message '%s' lacks '%s'", err.msg, needles[i]);
    }
}

static void mutate_block(const char *from, const char *to, const char *const *needles)
{
    char *good = slurp(BLOCK_483920, NULL);
    char *bad = replace(good, from, to);
    expect_block_error(bad, BP_EPARSE, needles);
    free(bad);
    free(good);
}

static void test_bad_blocks(void **state)
{
    (void)state;
    mutate_block("\"gasPrice\": \"0xba43b7400\"", "\"gasPrice\": \"0xZZ\"",
                 (const char *[]){"block 483920", "transaction 0", "'gasPrice'", "0xZZ", NULL});
    mutate_block("\"hash\": \"0x04cb", "\"hashh\": \"0x04cb",
                 (const char *[]){"block 483920", "transaction 0", "'hash'", "missing", NULL});
    mutate_block("\"number\": \"0x76250\"", "\"number\": 483920",
                 (const char *[]){"'number'", "a number", NULL});
    mutate_block("\"transactions\": [", "\"transactions\": \"x\", \"t2\": [",
                 (const char *[]){"block 483920", "'transactions'", "an array", NULL});
    mutate_block("\"gasLimit\": \"0x2fefd8\"", "\"gasLimit\": \"0x10000000000000000\"",
                 (const char *[]){"'gasLimit'", "too large", NULL});
    mutate_block("\"transactionIndex\": \"0x1\"", "\"transactionIndex\": \"0x7\"",
                 (const char *[]){"transaction 1", "'transactionIndex'", NULL});
    mutate_block("\"miner\": \"0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5\"",
                 "\"miner\": \"0x52bc\"", (const char *[]){"'miner'", "address", NULL});
    mutate_block("\"timestamp\": \"0x5638c858\"", "\"timestamp\": null",
                 (const char *[]){"'timestamp'", "missing", NULL});

    char *good = slurp(BLOCK_483920, NULL);
    good[strlen(good) / 2] = '\0';
    expect_block_error(good, BP_EPARSE, (const char *[]){"not JSON", NULL});
    free(good);
    expect_block_error("{\"id\":0,\"result\":[]}", BP_EPARSE,
                       (const char *[]){"expected an object", NULL});
    expect_block_error("{\"id\":0,\"result\":{\"number\":\"0x1\",\"hash\":\"0x12\"}}", BP_EPARSE,
                       (const char *[]){"block 1", "'hash'", NULL});
}

/* Hex data is checked and lower-cased in one pass: every byte that is not a hex digit fails,
 * whatever its bits (the check works on c | 0x20). */
static char *input_tx(const char *input)
{
    bp_buf tx;
    bp_buf_init(&tx, 0);
    bp_buf_printf(&tx,
                  "{\"hash\":\"0x%064d\",\"from\":\"0x%040d\",\"nonce\":\"0x0\",\"gas\":\"0x0\","
                  "\"value\":\"0x0\",\"input\":\"%s\",\"transactionIndex\":\"0x0\"}",
                  7, 0, input);
    char *body = wrap_tx(tx.data,
                         "0x"
                         "1111111111111111111111111111111111111111111111111111111111111111",
                         "0x5", 0);
    bp_buf_release(&tx);
    return body;
}

static void test_hex_data_checked_and_lowered(void **state)
{
    (void)state;
    const char *good[][2] = {
        {"0xAbCdEf0123456789aBcDeF", "0xabcdef0123456789abcdef"}, {"0X12", "0x12"}, {"0x", "0x"}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char *body = input_tx(good[i][0]);
        bp_block *b;
        bp_error err = {0};
        if (decode_block_text(body, true, &b, &err))
            fail_msg("%s: %s", good[i][0], err.msg);
        assert_string_equal(hexb_str(b->txs[0].input), good[i][1]);
        bp_block_free(b);
        free(body);
    }
    /* Past the 512 digits the short form holds, an odd count too: the long form, the same
     * text back, and its bytes (calldata: what src/metrics measures). */
    const size_t longs[] = {513, 514, 20001};
    for (size_t i = 0; i < sizeof(longs) / sizeof(longs[0]); i++) {
        size_t n = longs[i];
        char *in = malloc(n + 3), *want = malloc(n + 3);
        assert_true(in && want);
        memcpy(in, "0x", 2);
        memcpy(want, "0x", 2);
        for (size_t k = 0; k < n; k++) {
            in[2 + k] = "0123456789ABCDEF"[(k * 7) % 16];
            want[2 + k] = "0123456789abcdef"[(k * 7) % 16];
        }
        in[2 + n] = want[2 + n] = '\0';
        char *body = input_tx(in);
        bp_block *b;
        bp_error err = {0};
        if (decode_block_text(body, true, &b, &err))
            fail_msg("%zu digits: %s", n, err.msg);
        const bp_hexb *h = b->txs[0].input;
        assert_int_equal(bp_hexb_digits(h), BP_HEXB_IS_LONG);
        assert_int_equal(bp_hexb_len(h), n);
        assert_int_equal(bp_hexb_bytes(h)[0], 0x07);
        assert_string_equal(hexb_str(h), want);
        bp_block_free(b);
        free(body);
        free(in);
        free(want);
    }
    const char *bad[] = {"0x1g", "0x1G",     "0x1:", "0x1@", "0x1`", "0x1/",
                         "0x1 ", "0x\u00e9", "0xx1", "1x12", "0",    "x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *body = input_tx(bad[i]);
        expect_block_error(body, BP_EPARSE, (const char *[]){"'input'", "hex data", NULL});
        free(body);
    }
}

static bp_block *block_with_receipts_ready(receipts *rs)
{
    bp_block *b = decode_block_file(BLOCK_483920, true);
    load_receipts(RECEIPTS_DIR, b, rs);
    return b;
}

static void test_bad_receipts(void **state)
{
    (void)state;
    receipts rs;
    bp_block *b = block_with_receipts_ready(&rs);
    bp_error err = {0};
    assert_int_equal(bp_decode_receipt_list(rs.r, 3, b, &err), BP_EPARSE);
    assert_non_null(strstr(err.msg, "3 receipts for 4 transactions"));

    /* Swapped receipts: the tx hash at position 0 is the other tx's. */
    yajl_val swapped[4] = {rs.r[1], rs.r[0], rs.r[2], rs.r[3]};
    assert_int_equal(bp_decode_receipt_list(swapped, 4, b, &err), BP_EPARSE);
    assert_non_null(strstr(err.msg, "receipt 0"));
    assert_non_null(strstr(err.msg, "'transactionHash'"));
    assert_non_null(strstr(err.msg, b->txs[0].hash));
    assert_non_null(strstr(err.msg, b->txs[1].hash));
    assert_false(b->has_receipts);
    free_receipts(&rs);
    bp_block_free(b);

    /* A receipt from another fork of the chain. */
    b = decode_block_file(BLOCK_483920, true);
    char path[1024];
    snprintf(path, sizeof(path), "%sweb3_response.eth_getTransactionReceipt_%s.json", RECEIPTS_DIR,
             b->txs[0].hash);
    char *good = slurp(path, NULL);
    char *bad = replace(good, "\"blockHash\": \"0x246e", "\"blockHash\": \"0x999e");
    answer a;
    assert_int_equal(parse_one(bad, &a, &err), 0);
    yajl_val list[4] = {a.result, a.result, a.result, a.result};
    assert_int_equal(bp_decode_receipt_list(list, 4, b, &err), BP_EPARSE);
    assert_non_null(strstr(err.msg, "'blockHash'"));
    assert_non_null(strstr(err.msg, "0x999e"));
    assert_non_null(strstr(err.msg, b->hash));
    bp_json_free(a.root);
    free(bad);
    free(good);

    /* An eth_getBlockReceipts answer that is not an array, and one that is null. */
    assert_int_equal(parse_one("{\"id\":0,\"result\":{}}", &a, &err), 0);
    assert_int_equal(bp_decode_block_receipts(a.result, b, &err), BP_EPARSE);
    bp_json_free(a.root);
    assert_int_equal(parse_one("{\"id\":0,\"result\":null}", &a, &err), 0);
    assert_int_equal(bp_decode_block_receipts(a.result, b, &err), BP_ENOTFOUND);
    bp_json_free(a.root);
    bp_block_free(b);
}

static void test_bad_log(void **state)
{
    (void)state;
    receipts rs;
    bp_block *b = block_with_receipts_ready(&rs);
    free_receipts(&rs);
    char path[1024];
    snprintf(path, sizeof(path), "%sweb3_response.eth_getTransactionReceipt_%s.json", RECEIPTS_DIR,
             b->txs[0].hash);
    char *good = slurp(path, NULL);
    char *bad = replace(good, "\"topics\": [", "\"topics\": [\"0x1\",");
    answer a;
    bp_error err = {0};
    assert_int_equal(parse_one(bad, &a, &err), 0);
    yajl_val list[4] = {a.result, NULL, NULL, NULL};
    assert_int_equal(bp_decode_receipt_list(list, 4, b, &err), BP_EPARSE);
    assert_non_null(strstr(err.msg, "log 0: field 'topics'"));
    bp_json_free(a.root);
    free(bad);
    free(good);
    bp_block_free(b);
}

/* ---- JSON-RPC envelope ---- */

static void test_rpc_batch_order(void **state)
{
    (void)state;
    const char *body =
        "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"b\"},"
        "{\"jsonrpc\":\"2.0\",\"id\":0,\"error\":{\"code\":-32000,\"message\":\"x\"}},"
        "{\"jsonrpc\":\"2.0\",\"id\":\"2\",\"result\":null}]";
    yajl_val root, res[3], errs[3];
    bp_error err = {0};
    assert_int_equal(bp_decode_rpc_response(body, strlen(body), 3, &root, res, errs, &err), 0);
    assert_string_equal(YAJL_GET_STRING(res[1]), "b");
    assert_null(res[0]);
    assert_non_null(errs[0]);
    assert_true(YAJL_IS_NULL(res[2]));
    assert_int_equal(bp_decode_rpc_error(errs[0], "eth_getBlockByNumber", &err), BP_ERPC);
    assert_non_null(strstr(err.msg, "-32000"));
    assert_non_null(strstr(err.msg, "eth_getBlockByNumber"));
    bp_json_free(root);

    /* No ids: by position (as in the ethereum-etl fixtures). */
    const char *noid = "[{\"result\":\"a\"},{\"result\":\"b\"}]";
    assert_int_equal(bp_decode_rpc_response(noid, strlen(noid), 2, &root, res, errs, &err), 0);
    assert_string_equal(YAJL_GET_STRING(res[0]), "a");
    assert_string_equal(YAJL_GET_STRING(res[1]), "b");
    bp_json_free(root);
}

static void expect_rpc_fail(const char *body, size_t len, size_t n, const char *needle)
{
    yajl_val root = (yajl_val)1, res[4], errs[4];
    bp_error err = {0};
    assert_int_equal(bp_decode_rpc_response(body, len, n, &root, res, errs, &err), BP_EPARSE);
    assert_null(root);
    if (!strstr(err.msg, needle))
        fail_msg("message '%s' lacks '%s'", err.msg, needle);
}

static void test_rpc_bad_envelopes(void **state)
{
    (void)state;
    const char *dup = "[{\"id\":0,\"result\":1},{\"id\":0,\"result\":2}]";
    expect_rpc_fail(dup, strlen(dup), 2, "duplicate id");
    const char *few = "[{\"id\":0,\"result\":1}]";
    expect_rpc_fail(few, strlen(few), 2, "1 entries, expected 2");
    const char *range = "[{\"id\":5,\"result\":1}]";
    expect_rpc_fail(range, strlen(range), 1, "unexpected id");
    const char *neither = "{\"id\":0,\"jsonrpc\":\"2.0\"}";
    expect_rpc_fail(neither, strlen(neither), 1, "neither");
    expect_rpc_fail("42", 2, 1, "expected an object or array");
    expect_rpc_fail("", 0, 1, "not JSON");
    expect_rpc_fail("{\"result\":1} trailing", 21, 1, "not JSON");
    expect_rpc_fail("{\"result\":1}\0x", 14, 1, "NUL");
    const char *one = "{\"id\":0,\"result\":1}";
    expect_rpc_fail(one, strlen(one), 2, "one answer for a batch of 2");

    /* len is honoured even when the text goes on past it. */
    yajl_val root, res[1], errs[1];
    bp_error err = {0};
    const char *longer = "{\"result\":7}GARBAGE";
    assert_int_equal(bp_decode_rpc_response(longer, 12, 1, &root, res, errs, &err), 0);
    assert_int_equal(YAJL_GET_INTEGER(res[0]), 7);
    bp_json_free(root);
}

static void test_rpc_whole_batch_error(void **state)
{
    (void)state;
    const char *body =
        "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32005,\"message\":\"limit\"}}";
    yajl_val root, res[3], errs[3];
    bp_error err = {0};
    assert_int_equal(bp_decode_rpc_response(body, strlen(body), 3, &root, res, errs, &err), 0);
    for (int i = 0; i < 3; i++) {
        assert_null(res[i]);
        assert_ptr_equal(errs[i], errs[0]);
    }
    assert_int_equal(bp_decode_rpc_error(errs[2], "eth_getBlockReceipts", &err), BP_ERATELIMIT);
    bp_json_free(root);
}

static int classify(const char *error_json)
{
    char ebuf[128];
    yajl_val v = yajl_tree_parse(error_json, ebuf, sizeof(ebuf));
    assert_non_null(v);
    bp_error err = {0};
    int rc = bp_decode_rpc_error(v, "m", &err);
    assert_non_null(strstr(err.msg, "m: node error"));
    yajl_tree_free(v);
    return rc;
}

static void test_rpc_error_mapping(void **state)
{
    (void)state;
    assert_int_equal(classify("{\"code\":-32601,\"message\":\"the method eth_getBlockReceipts "
                              "does not exist/is not available\"}"),
                     BP_EUNSUPPORTED);
    assert_int_equal(classify("{\"code\":-32000,\"message\":\"Method not found\"}"),
                     BP_EUNSUPPORTED);
    assert_int_equal(classify("{\"code\":-32005,\"message\":\"slow down\"}"), BP_ERATELIMIT);
    assert_int_equal(classify("{\"code\":429,\"message\":\"x\"}"), BP_ERATELIMIT);
    assert_int_equal(classify("{\"code\":-32000,\"message\":\"Too Many Requests\"}"),
                     BP_ERATELIMIT);
    /* Providers' own words for "slower" (QuickNode, Alchemy, quotas)... */
    assert_int_equal(classify("{\"code\":-32007,\"message\":\"15/second request limit "
                              "reached - reduce calls per second or upgrade your account\"}"),
                     BP_ERATELIMIT);
    assert_int_equal(classify("{\"code\":-32000,\"message\":\"Your app has exceeded its compute "
                              "units per second capacity\"}"),
                     BP_ERATELIMIT);
    assert_int_equal(classify("{\"code\":-32000,\"message\":\"daily request count exceeded, "
                              "request rate limited\"}"),
                     BP_ERATELIMIT);
    assert_int_equal(classify("{\"code\":-32000,\"message\":\"monthly quota exhausted\"}"),
                     BP_ERATELIMIT);
    /* ... but not a cap on one request's size, which limits.c learns (a pause never helps). */
    assert_int_equal(classify("{\"code\":-32000,\"message\":\"batch request limit exceeded\"}"),
                     BP_ERPC);
    assert_int_equal(
        classify("{\"code\":-32000,\"message\":\"block range limit exceeded (max 1000)\"}"),
        BP_ERPC);
    assert_int_equal(classify("{\"code\":-32000,\"message\":\"response size limit reached\"}"),
                     BP_ERPC);
    /* QuickNode's, by code and by message */
    assert_int_equal(classify("{\"code\":-32007,\"message\":\"15/second request limit reached - "
                              "reduce calls per second or upgrade your account at "
                              "quicknode.com\"}"),
                     BP_ERATELIMIT);
    assert_int_equal(classify("{\"code\":-32000,\"message\":\"request limit reached\"}"),
                     BP_ERATELIMIT);
    assert_int_equal(classify("{\"code\":-32000,\"message\":\"header not found\"}"), BP_ERPC);
    assert_int_equal(classify("{\"message\":17}"), BP_ERPC);
    assert_int_equal(classify("[]"), BP_ERPC);
}

static void test_header_copy(void **state)
{
    (void)state;
    bp_block *b = decode_block_file(BLOCK_483920, true);
    bp_block *h = bp_block_header_copy(b);
    assert_non_null(h);
    assert_int_equal(h->number, b->number);
    assert_int_equal(h->timestamp, b->timestamp);
    assert_int_equal(h->transaction_count, 4);
    assert_string_equal(h->hash, b->hash);
    assert_string_equal(h->parent_hash, b->parent_hash);
    assert_ptr_not_equal(h->hash, b->hash);
    assert_null(h->txs);
    bp_block_free(b);
    bp_block_free(h);
    bp_block_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_etl_genesis),
        cmocka_unit_test(test_etl_block_with_logs),
        cmocka_unit_test(test_etl_blocks_with_transactions),
        cmocka_unit_test(test_etl_receipts_with_logs),
        cmocka_unit_test(test_etl_stream_block),
        cmocka_unit_test(test_xapi_block_54_receipts),
        cmocka_unit_test(test_xapi_hash_only_and_withdrawals),
        cmocka_unit_test(test_xapi_not_found),
        cmocka_unit_test(test_xapi_type1),
        cmocka_unit_test(test_xapi_type2),
        cmocka_unit_test(test_xapi_type3_blob),
        cmocka_unit_test(test_xapi_type4_setcode),
        cmocka_unit_test(test_unknown_type_raw_json),
        cmocka_unit_test(test_bad_blocks),
        cmocka_unit_test(test_hex_data_checked_and_lowered),
        cmocka_unit_test(test_bad_receipts),
        cmocka_unit_test(test_bad_log),
        cmocka_unit_test(test_rpc_batch_order),
        cmocka_unit_test(test_rpc_bad_envelopes),
        cmocka_unit_test(test_rpc_whole_batch_error),
        cmocka_unit_test(test_rpc_error_mapping),
        cmocka_unit_test(test_header_copy),
        cmocka_unit_test(test_block_timestamp_and_zero_bloom),
        cmocka_unit_test(test_l2_family_parts),
    };
    int failed = cmocka_run_group_tests_name("copying", tests, NULL, NULL);
    g_inplace = true;
    return failed + cmocka_run_group_tests_name("zero-copy", tests, NULL, NULL);
}
