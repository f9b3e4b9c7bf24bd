/* test_vrow.c - verify's comparable rows: the node's row and the same row read back (with
 * PostgreSQL's jsonb spelling of JSON) encode to the same bytes; any edit changes the hash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/vrow.h"
#include "sink_fixture.h"

static void canon(const char *in, const char *want)
{
    bp_buf b;
    bp_buf_init(&b, 0);
    assert_int_equal(bp_json_canon(&b, in, strlen(in)), 0);
    assert_string_equal(b.data, want);
    bp_buf_release(&b);
}

static void test_json_canon(void **state)
{
    (void)state;
    canon("{\"b\": 1, \"a\": [1, \"x\\u0041\", {\"z\": null, \"y\": true}]}",
          "{\"a\":[1,\"xA\",{\"y\":true,\"z\":null}],\"b\":1}");
    canon("[]", "[]");
    canon("not json {", "not json {"); /* kept as it is: compared as text */
}

/* jsonb's spelling of compact JSON: a space after each ',' and ':' outside strings. */
static char *jsonb_spaced(const char *s, size_t n)
{
    char *out = malloc(2 * n + 1), *p = out;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        *p++ = s[i];
        if (s[i] == '"' && (i == 0 || s[i - 1] != '\\'))
            in_str = !in_str;
        if (!in_str && (s[i] == ',' || s[i] == ':'))
            *p++ = ' ';
    }
    *p = '\0';
    return out;
}

/* Row r of table t encoded from the model, then from cells holding the same text (JSON cells
 * as jsonb prints them): the two encodings are equal. */
static void round_trip(bp_table t, const bp_row *r)
{
    bp_buf a, b, tmp;
    bp_buf_init(&a, 0);
    bp_buf_init(&b, 0);
    bp_buf_init(&tmp, 0);
    assert_int_equal(bp_vrow_from_model(&a, t, r, &tmp), 0);
    size_t first, n = bp_table_columns(t, &first);
    bp_read_cell cells[64];
    char *owned[64] = {0};
    for (size_t i = 0; i < n; i++) {
        bool null;
        const char *s;
        size_t len;
        assert_true(bp_vrow_cell(a.data, a.len, i, &null, &s, &len));
        cells[i] = (bp_read_cell){null ? NULL : s, len};
        if (!null && bp_columns[first + i].type == BP_COL_JSON) {
            owned[i] = jsonb_spaced(s, len);
            cells[i] = (bp_read_cell){owned[i], strlen(owned[i])};
        }
    }
    assert_false(bp_vrow_cell(a.data, a.len, n, &(bool){0}, &(const char *){0}, &(size_t){0}));
    assert_int_equal(bp_vrow_from_cells(&b, t, cells, n), 0);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    assert_true(bp_vhash(a.data, a.len) == bp_vhash(b.data, b.len));
    for (size_t i = 0; i < n; i++)
        free(owned[i]);
    bp_buf_release(&a);
    bp_buf_release(&b);
    bp_buf_release(&tmp);
}

static void test_model_equals_read_back(void **state)
{
    (void)state;
    bp_block *b = fx_block(7, 0, true, true);
    bp_row r = {.chain = "main", .block = b};
    round_trip(BP_TABLE_BLOCKS, &r);
    for (size_t i = 0; i < b->tx_count; i++) {
        r.tx = &b->txs[i];
        round_trip(BP_TABLE_TRANSACTIONS, &r);
    }
    r.tx = NULL;
    for (size_t i = 0; i < b->log_count; i++) {
        r.log = &b->logs[i];
        round_trip(BP_TABLE_LOGS, &r);
    }
    bp_block_free(b);
}

static void test_hash_sees_edits(void **state)
{
    (void)state;
    char row[41] = "0123456789abcdef0123456789abcdef01234567";
    uint64_t h = bp_vhash(row, 40);
    for (size_t i = 0; i < 40; i++) {
        row[i] ^= 1;
        assert_true(bp_vhash(row, 40) != h);
        row[i] ^= 1;
    }
    assert_true(bp_vhash(row, 39) != h);
    assert_true(bp_vhash("", 0) != bp_vhash("\0", 1));
    /* the digest of a block's rows depends on their order */
    uint64_t x = bp_vhash("a", 1), y = bp_vhash("b", 1);
    assert_true(bp_vdigest_add(bp_vdigest_add(0, x), y) != bp_vdigest_add(bp_vdigest_add(0, y), x));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_canon),
        cmocka_unit_test(test_model_equals_read_back),
        cmocka_unit_test(test_hash_sees_edits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
