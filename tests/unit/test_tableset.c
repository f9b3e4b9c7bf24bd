/* test_tableset.c - the chain families' table sets (blockpipe/tableset.h): the EVM set is the
 * column table (BP_COLUMNS) table by table; each family's source names its set and the blocks'
 * family finds the same one; the rows an event brings to each table (an APPLY's block,
 * transactions, logs only with receipts; a REVERT none); the EVM set's fast JSON rows are the
 * generic ones byte for byte; the stream outputs' entries of an EVM chain; the SQL made from a
 * set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arch/arch_tables.h"
#include "blockpipe/derived.h"
#include "blockpipe/tableset.h"
#include "core/source.h"
#include "sink/rowjson.h"
#include "sink/sqlgen.h"
#include "sink/stream.h"
#include "sink_fixture.h"

static void test_evm_is_the_column_table(void **state)
{
    (void)state;
    const bp_table_set *s = &bp_tables_evm;
    assert_int_equal(s->table_count, BP_TABLE_COUNT);
    for (bp_table t = 0; t < BP_TABLE_COUNT; t++) {
        size_t first, n = bp_table_columns(t, &first);
        assert_string_equal(s->tables[t].name, bp_table_name(t));
        assert_int_equal(s->tables[t].column_count, n);
        assert_false(s->tables[t].kept_on_revert);
        for (size_t i = 0; i < n; i++) {
            const bp_set_column *c = &s->tables[t].columns[i];
            assert_string_equal(c->name, bp_columns[first + i].name);
            assert_int_equal(c->type, bp_columns[first + i].type);
            assert_int_equal(c->flags, bp_columns[first + i].flags);
        }
    }
}

static void test_families(void **state)
{
    (void)state;
    assert_ptr_equal(bp_source_evm.tables, &bp_tables_evm);
    assert_ptr_equal(bp_source_arch.tables, &bp_tables_arch);
    assert_ptr_equal(bp_table_set_of(bp_source_evm.family), bp_source_evm.tables);
    assert_ptr_equal(bp_table_set_of(bp_source_arch.family), bp_source_arch.tables);
    size_t at = 99;
    assert_non_null(bp_table_set_find(&bp_tables_arch, "arch_events", &at));
    assert_int_equal(at, BP_ARCH_EVENTS);
    assert_true(bp_tables_arch.tables[BP_ARCH_EVENTS].kept_on_revert);
    assert_false(bp_tables_arch.tables[BP_ARCH_TRANSACTIONS].kept_on_revert);
    assert_null(bp_table_set_find(&bp_tables_evm, "arch_blocks", NULL));
    /* every table has a key, and every key column is NOT NULL */
    const bp_table_set *sets[] = {&bp_tables_evm, &bp_tables_arch};
    for (size_t k = 0; k < 2; k++)
        for (size_t t = 0; t < sets[k]->table_count; t++) {
            size_t keys = 0;
            for (size_t i = 0; i < sets[k]->tables[t].column_count; i++) {
                unsigned f = sets[k]->tables[t].columns[i].flags;
                keys += (f & BP_COL_KEY) != 0;
                assert_true(!(f & BP_COL_KEY) || (f & BP_COL_NOTNULL));
            }
            assert_true(keys > 0);
        }
}

static size_t count_rows(const bp_event *ev, size_t table, bp_buf *fast, bp_buf *generic)
{
    bp_table_row r;
    size_t n = 0;
    bp_table_rows(&r, &bp_tables_evm, "main\"net", ev, table);
    while (bp_table_next(&r)) {
        bp_buf_reset(fast);
        bp_buf_reset(generic);
        assert_int_equal(bp_table_row_json(fast, &r), 0);
        assert_int_equal(bp_table_row_json_generic(generic, &r), 0);
        assert_string_equal(fast->data, generic->data);
        n++;
    }
    return n;
}

static void test_evm_rows(void **state)
{
    (void)state;
    bp_block *b = fx_block(7, 0, true, true);
    bp_buf fast, generic;
    bp_buf_init(&fast, 0);
    bp_buf_init(&generic, 0);
    bp_event ev = {.kind = BP_EVENT_APPLY, .block = b};
    assert_int_equal(count_rows(&ev, BP_TABLE_BLOCKS, &fast, &generic), 1);
    assert_int_equal(count_rows(&ev, BP_TABLE_TRANSACTIONS, &fast, &generic), b->tx_count);
    assert_int_equal(count_rows(&ev, BP_TABLE_LOGS, &fast, &generic), b->log_count);
    assert_true(b->log_count > 0);
    ev.kind = BP_EVENT_REVERT; /* what a revert does is the table's rule, not rows */
    assert_int_equal(count_rows(&ev, BP_TABLE_BLOCKS, &fast, &generic), 0);
    bp_block_free(b);

    b = fx_block(3, 1, true, false); /* without receipts: no logs */
    ev = (bp_event){.kind = BP_EVENT_APPLY, .block = b};
    assert_int_equal(count_rows(&ev, BP_TABLE_TRANSACTIONS, &fast, &generic), b->tx_count);
    assert_int_equal(count_rows(&ev, BP_TABLE_LOGS, &fast, &generic), 0);
    bp_block_free(b);
    bp_buf_release(&fast);
    bp_buf_release(&generic);
}

typedef struct seen {
    size_t n, applies;
    char first[4096];
} seen;

static int note(void *ctx, const char *type, const char *data, size_t dlen)
{
    seen *s = ctx;
    if (s->n++ == 0)
        snprintf(s->first, sizeof(s->first), "%.*s", (int)dlen, data);
    s->applies += strcmp(type, "apply") == 0;
    return 0;
}

static size_t entries(int e, const bp_batch *batch, size_t i, seen *s)
{
    bp_buf b;
    bp_buf_init(&b, 0);
    size_t hint = 0;
    memset(s, 0, sizeof(*s));
    assert_int_equal(bp_stream_entries(e, batch, i, &b, &hint, note, s), 0);
    bp_buf_release(&b);
    return s->n;
}

/* The stream outputs' entries of an EVM chain are its set's rows (Arch's: test_arch_json). */
static void test_evm_stream_entries(void **state)
{
    (void)state;
    bp_block *b = fx_block(7, 0, true, true);
    const bp_event evs[] = {{BP_EVENT_APPLY, b}, {BP_EVENT_REVERT, b}};
    bp_batch batch = {.chain = "c", .events = evs, .count = 2};
    seen s;
    assert_int_equal(entries(BP_STREAM_BLOCKS, &batch, 0, &s), 1);
    bp_buf want;
    bp_buf_init(&want, 0);
    bp_row r = {.chain = "c", .block = b};
    assert_int_equal(bp_rowjson(&want, BP_TABLE_BLOCKS, &r), 0);
    assert_string_equal(s.first, want.data);
    bp_buf_release(&want);
    assert_int_equal(entries(BP_STREAM_TXS, &batch, 0, &s), b->tx_count);
    assert_int_equal(s.applies, b->tx_count);
    assert_int_equal(entries(BP_STREAM_LOGS, &batch, 0, &s), b->log_count);
    assert_int_equal(entries(BP_STREAM_ARCH_BLOCKS, &batch, 0, &s), 0); /* Arch's entities */
    assert_int_equal(entries(BP_STREAM_ARCH_EVENTS, &batch, 1, &s), 0);
    for (int e = BP_STREAM_BLOCKS; e <= BP_STREAM_METRICS; e++) { /* one revert each */
        assert_int_equal(entries(e, &batch, 1, &s), 1);
        assert_int_equal(s.applies, 0);
        assert_string_equal(s.first, "null");
    }
    bp_block_free(b);
}

static const char *types(bp_col_type t)
{
    return t == BP_COL_INT64 ? "I" : t == BP_COL_HASH ? "H" : "T";
}

static void test_sql(void **state)
{
    (void)state;
    bp_buf sql;
    bp_buf_init(&sql, 0);
    assert_int_equal(bp_sql_create_set_table(&sql, &bp_tables_arch.tables[BP_ARCH_ACCOUNT_UPDATES],
                                             "IF NOT EXISTS ", "", types, ""),
                     0);
    assert_string_equal(sql.data,
                        "CREATE TABLE IF NOT EXISTS arch_account_updates(chain T NOT NULL, "
                        "block_height I NOT NULL, tx_index I NOT NULL, account H NOT NULL, txid H "
                        "NOT NULL, PRIMARY KEY(chain, block_height, tx_index, account));");
    bp_buf_reset(&sql);
    assert_int_equal(bp_sql_create_set(&sql, &bp_tables_evm, "", types), 0);
    assert_non_null(strstr(sql.data, "CREATE TABLE blocks(chain T NOT NULL, number I NOT NULL"));
    assert_non_null(strstr(sql.data, "PRIMARY KEY(chain, block_number, log_index));"));
    bp_buf_release(&sql);
}

/* The derived tables' groups (derived=, blockpipe/derived.h): every table in one group, the
 * list's words, the needs of each group named in the error, and what an output whose tables
 * hold rows may open with (bp_dgroups_open). */
static void test_derived_groups(void **state)
{
    (void)state;
    const unsigned core = BP_DG_BIT(BP_DG_CHAIN_METRICS) | BP_DG_BIT(BP_DG_ACTIVE_ADDRESSES) |
                          BP_DG_BIT(BP_DG_PRICES);
    unsigned found = 0, g = 0;
    for (int t = 0; t < BP_DT_COUNT; t++)
        found |= BP_DG_BIT(bp_dtable_group((bp_dtable)t));
    assert_int_equal(found, BP_DG_ALL); /* every group has tables */
    assert_int_equal(bp_dtable_group(BP_DT_CONTRACT_SENDERS), BP_DG_CONTRACT_METRICS);
    assert_int_equal(bp_dtable_group(BP_DT_CHAIN_1D), BP_DG_CHAIN_METRICS);
    bp_error err = {0};
    assert_int_equal(bp_dgroups_parse("all", "derived", &g, &err), 0);
    assert_int_equal(g, BP_DG_ALL);
    assert_int_equal(bp_dgroups_parse("none", "derived", &g, &err), 0);
    assert_int_equal(g, 0);
    assert_int_equal(bp_dgroups_parse("prices", "derived", &g, &err), 0);
    assert_int_equal(g, BP_DG_BIT(BP_DG_PRICES));
    assert_int_equal(
        bp_dgroups_parse(" chain_metrics, active_addresses,prices,token_transfers", "d", &g, &err),
        0);
    assert_int_equal(g, core | BP_DG_BIT(BP_DG_TOKEN_TRANSFERS));
    char list[160];
    bp_dgroups_format(g, list, sizeof(list));
    assert_string_equal(list, "chain_metrics,active_addresses,token_transfers,prices");
    bp_dgroups_format(0, list, sizeof(list));
    assert_string_equal(list, "none");
    static const struct {
        const char *list, *says;
    } bad[] = {
        {"chain_metrics,prices", "chain_metrics needs active_addresses"},
        {"chain_metrics,active_addresses", "chain_metrics needs prices"},
        {"active_addresses,prices", "active_addresses needs chain_metrics"},
        {"prices,contract_metrics", "contract_metrics needs chain_metrics"},
        {"prices,ml_predictions", "ml_predictions needs chain_metrics"},
        {"prices,token_transfers", "token_transfers needs chain_metrics"},
        {"prices,logs", "'logs' is not a group of derived tables"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(bp_dgroups_parse(bad[i].list, "derived (--derived)", &g, &err), BP_EINVAL);
        if (!strstr(err.msg, bad[i].says) || !strstr(err.msg, "derived (--derived)"))
            fail_msg("%s: '%s'", bad[i].list, err.msg);
    }
    unsigned has = 0, all = BP_DG_ALL, some = core | BP_DG_BIT(BP_DG_ML_PREDICTIONS);
    bool record = false;
    /* nothing written: any selection, recorded */
    assert_int_equal(bp_dgroups_open(core, &all, false, &has, &record, &err), 0);
    assert_int_equal(has, core);
    assert_true(record);
    /* written without a record: by a blockpipe before derived=, which had every group */
    assert_int_equal(bp_dgroups_open(BP_DG_ALL, NULL, true, &has, &record, &err), 0);
    assert_int_equal(has, BP_DG_ALL);
    assert_true(record);
    assert_int_equal(bp_dgroups_open(core, NULL, true, &has, &record, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "contract_metrics is left out"));
    /* written: the same groups of blocks only */
    assert_int_equal(bp_dgroups_open(some, &some, true, &has, &record, &err), 0);
    assert_false(record);
    assert_int_equal(bp_dgroups_open(BP_DG_ALL, &some, true, &has, &record, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "contract_metrics is selected"));
    assert_non_null(strstr(err.msg, "contract_metrics_1m, contract_metrics_1h, "
                                    "contract_metrics_1d, contract_senders"));
    assert_int_equal(bp_dgroups_open(core, &some, true, &has, &record, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "ml_predictions is left out"));
    /* off, or prices alone: nothing of a block written, the record stays, REVERTs take out
     * what the tables hold */
    assert_int_equal(bp_dgroups_open(0, &some, true, &has, &record, &err), 0);
    assert_int_equal(has, some & ~BP_DG_BIT(BP_DG_PRICES));
    assert_false(record);
    assert_int_equal(bp_dgroups_open(BP_DG_BIT(BP_DG_PRICES), &some, true, &has, &record, &err), 0);
    assert_int_equal(has, some);
    assert_false(record);
}

/* ml_predictions named in a list needs --ml on (bp_dgroups_check_ml): else the record would
 * say the table holds the blocks nothing scored. all keeps it with --ml off (the --ml rule:
 * turned on later, the blocks from then on are scored), a list without it takes either. */
static void test_derived_ml(void **state)
{
    (void)state;
    unsigned core = 0, with = 0;
    bp_error err = {0};
    assert_int_equal(bp_dgroups_parse("chain_metrics,active_addresses,prices", "d", &core, &err),
                     0);
    assert_int_equal(
        bp_dgroups_parse("chain_metrics,active_addresses,prices,ml_predictions", "d", &with, &err),
        0);
    assert_int_equal(bp_dgroups_check_ml(with, false, &err), BP_EINVAL);
    if (!strstr(err.msg, "ml_predictions") || !strstr(err.msg, "--ml (ML_PREDICTIONS)") ||
        !strstr(err.msg, "derived (--derived, DERIVED)"))
        fail_msg("the refusal names neither option: '%s'", err.msg);
    assert_int_equal(bp_dgroups_check_ml(with, true, &err), 0);
    assert_int_equal(bp_dgroups_check_ml(core, false, &err), 0);
    assert_int_equal(bp_dgroups_check_ml(core, true, &err), 0);
    assert_int_equal(bp_dgroups_check_ml(BP_DG_ALL, false, &err), 0);
    assert_int_equal(bp_dgroups_check_ml(0, false, &err), 0); /* metrics=off, derived=none */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_evm_is_the_column_table),
        cmocka_unit_test(test_families),
        cmocka_unit_test(test_evm_rows),
        cmocka_unit_test(test_evm_stream_entries),
        cmocka_unit_test(test_sql),
        cmocka_unit_test(test_derived_groups),
        cmocka_unit_test(test_derived_ml),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
