/* test_api.c - the API's pure parts: query decoding and checked parameters, push
 * subscriptions (parameters and JSON), the SELECTs of sqlread.c, rows as JSON, the latency
 * buckets of the stats snapshot and the Prometheus text of /metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/push.h"
#include "api/request.h"
#include "api/routes.h"
#include "api/rows.h"
#include "api/status.h"
#include "blockpipe/derived.h"
#include "sink/sqlread.h"
#include "util/histogram.h"
#include "util/hex.h"

static void request(bp_api_request *r, const char *path, const char *qs)
{
    bp_error err = {0};
    bp_api_request_init(r, BP_API_GET, path, strlen(path));
    assert_int_equal(bp_api_request_query(r, qs, strlen(qs), &err), 0);
}

static void test_query_decoding(void **state)
{
    (void)state;
    bp_api_request r;
    request(&r, "/api/blocks", "a=1&b=%41%62+c&&flag&a=2&empty=");
    assert_int_equal(r.nparams, 5);
    assert_string_equal(bp_api_param_get(&r, "a"), "2"); /* the last one wins */
    assert_string_equal(bp_api_param_get(&r, "b"), "Ab c");
    assert_string_equal(bp_api_param_get(&r, "flag"), "");
    assert_string_equal(bp_api_param_get(&r, "empty"), "");
    assert_null(bp_api_param_get(&r, "none"));
    bp_api_param_remove(&r, "a");
    assert_null(bp_api_param_get(&r, "a"));
    assert_int_equal(r.nparams, 3);

    bp_error err = {0};
    bp_api_request_init(&r, BP_API_GET, "/", 1);
    assert_int_equal(bp_api_request_query(&r, "x=%4", 4, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "percent"));
    assert_int_equal(bp_api_request_query(&r, "x=%zz", 5, &err), BP_EINVAL);
    char many[400] = "";
    for (int i = 0; i < 40; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "p%d=1&", i);
    bp_api_request_init(&r, BP_API_GET, "/", 1);
    assert_int_equal(bp_api_request_query(&r, many, strlen(many), &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "too many"));
}

static void test_checked_values(void **state)
{
    (void)state;
    bp_api_request r;
    bp_error err = {0};
    uint64_t v;
    bool set;
    char hex[67];
    const char *word;
    request(&r, "/x",
            "limit=50&big=1001&neg=-1&addr=0xABCDEFabcdef0123456789012345678901234567&short=0x12"
            "&order=asc&bad=%ff%fe");
    assert_int_equal(bp_api_param_u64(&r, "limit", 1, 1000, &set, &v, &err), 0);
    assert_true(set);
    assert_int_equal(v, 50);
    assert_int_equal(bp_api_param_u64(&r, "none", 1, 1000, &set, &v, &err), 0);
    assert_false(set);
    assert_int_equal(bp_api_param_u64(&r, "big", 1, 1000, &set, &v, &err), BP_EINVAL);
    assert_string_equal(err.msg, "big: '1001' is not valid: expected an integer from 1 to 1000");
    assert_int_equal(bp_api_param_u64(&r, "neg", 0, 10, &set, &v, &err), BP_EINVAL);
    assert_int_equal(bp_api_param_hex(&r, "addr", 20, &set, hex, &err), 0);
    assert_string_equal(hex, "0xabcdefabcdef0123456789012345678901234567");
    assert_int_equal(bp_api_param_hex(&r, "short", 20, &set, hex, &err), BP_EINVAL);
    assert_string_equal(err.msg, "short: '0x12' is not valid: expected 0x and 40 hex digits");
    assert_int_equal(bp_api_param_hex(&r, "bad", 20, &set, hex, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "'\\xff\\xfe'")); /* invalid UTF-8 shown escaped */
    assert_int_equal(bp_api_param_enum(&r, "order", "desc|asc", &set, &word, &err), 0);
    assert_string_equal(word, "asc");
    assert_int_equal(bp_api_param_enum(&r, "limit", "desc|asc", &set, &word, &err), BP_EINVAL);
    static const char *const known[] = {"limit", "big", NULL};
    assert_int_equal(bp_api_params_known(&r, known, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "unknown parameter 'neg' (expected limit, big)"));
    char shown[300], long_text[200];
    memset(long_text, 'a', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    bp_api_printable(long_text, shown, sizeof(shown));
    assert_int_equal(strlen(shown), 64 + 3); /* 64 bytes and "..." */
}

static void test_filter_params(void **state)
{
    (void)state;
    bp_api_request r;
    bp_push_filter f;
    char since[BP_PUSH_CURSOR_MAX];
    bp_error err = {0};
    request(&r, "/api/events",
            "topics=blocks,logs&address=0xAAaa000000000000000000000000000000000001&min_value="
            "0x10&since=0a0b0c0d-5-0");
    assert_int_equal(bp_push_filter_params(&r, &f, since, &err), 0);
    assert_int_equal(f.topics, BP_TOPIC_BLOCKS | BP_TOPIC_LOGS);
    assert_true(f.has_address);
    assert_string_equal(f.address, "0xaaaa000000000000000000000000000000000001");
    assert_true(f.has_min_value);
    assert_true(bp_u256_fits_u64(&f.min_value));
    assert_string_equal(since, "0a0b0c0d-5-0");
    request(&r, "/api/events", "");
    assert_int_equal(bp_push_filter_params(&r, &f, since, &err), 0);
    assert_int_equal(f.topics, BP_TOPIC_BLOCKS); /* the default */
    request(&r, "/api/events", "topics=all");
    assert_int_equal(bp_push_filter_params(&r, &f, since, &err), 0);
    assert_int_equal(f.topics, BP_TOPIC_ALL);
    request(&r, "/api/events", "topics=blocks,planets");
    assert_int_equal(bp_push_filter_params(&r, &f, since, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "topics: 'planets'"));
    request(&r, "/api/events", "topic0=0x12");
    assert_int_equal(bp_push_filter_params(&r, &f, since, &err), BP_EINVAL);
    request(&r, "/api/events", "min_value=-5");
    assert_int_equal(bp_push_filter_params(&r, &f, since, &err), BP_EINVAL);
    request(&r, "/api/events", "colour=1");
    assert_int_equal(bp_push_filter_params(&r, &f, since, &err), BP_EINVAL);
}

static void test_filter_json(void **state)
{
    (void)state;
    bp_push_filter f;
    char since[BP_PUSH_CURSOR_MAX];
    bp_error err = {0};
    const char *ok = "{\"subscribe\": [\"transactions\", \"reorgs\"], \"address\": "
                     "\"0x00000000000000000000000000000000000000Ff\", \"min_value\": "
                     "1000000000000000000000, \"since\": \"x-1-2\"}";
    assert_int_equal(bp_push_filter_json(ok, strlen(ok), &f, since, &err), 0);
    assert_int_equal(f.topics, BP_TOPIC_TRANSACTIONS | BP_TOPIC_REORGS);
    assert_string_equal(f.address, "0x00000000000000000000000000000000000000ff");
    assert_false(bp_u256_fits_u64(&f.min_value)); /* a number above 2^64, kept exact */
    assert_string_equal(since, "x-1-2");
    const char *list = "{\"subscribe\": \"logs,status\"}";
    assert_int_equal(bp_push_filter_json(list, strlen(list), &f, since, &err), 0);
    assert_int_equal(f.topics, BP_TOPIC_LOGS | BP_TOPIC_STATUS);
    static const struct {
        const char *json, *says;
    } bad[] = {
        {"not json", "not JSON"},
        {"[1]", "expected an object"},
        {"{\"subscribe\": 5}", "expected a list"},
        {"{\"subscribe\": [5]}", "expected topic names"},
        {"{\"address\": 5}", "expected a string"},
        {"{\"topic0\": \"0x1\"}", "topic0: '0x1'"},
        {"{\"hello\": 1}", "unknown key 'hello'"},
        {"{\"subscribe\": \"\xff\"}", "not JSON"}, /* invalid UTF-8 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err.msg[0] = '\0';
        assert_int_equal(bp_push_filter_json(bad[i].json, strlen(bad[i].json), &f, since, &err),
                         BP_EINVAL);
        if (!strstr(err.msg, bad[i].says))
            fail_msg("%s: message '%s' does not say '%s'", bad[i].json, err.msg, bad[i].says);
    }
}

/* A dialect that shows every parameter with its kind. */
static int sel(bp_buf *out, const bp_column *c)
{
    return bp_buf_printf(out, "%s", c->name);
}

static int par(bp_buf *out, int n, enum bp_sql_param_kind k)
{
    return bp_buf_printf(out, "%c%d", "TIH"[k], n);
}

static void test_sqlread(void **state)
{
    (void)state;
    static const bp_sql_dialect d = {.select_expr = sel, .param = par};
    bp_buf sql;
    bp_sql_params p;
    bp_error err = {0};
    bp_buf_init(&sql, 0);
    bp_read_query q = {.table = BP_TABLE_TRANSACTIONS,
                       .chain = "main",
                       .has_min = true,
                       .min = 5,
                       .address = "0xab",
                       .has_after = true,
                       .after_number = 9,
                       .after_index = 2,
                       .limit = 21};
    assert_int_equal(bp_sql_select(&sql, &q, &d, &p, &err), 0);
    /* from = A OR to = A: two ordered, limited index lookups merged */
    static const char *const parts[] = {
        "SELECT * FROM (SELECT chain, hash, nonce, ",
        " FROM transactions WHERE chain = T1 AND block_number >= I2 AND from_address = H3 AND "
        "(block_number, transaction_index) < (I4, I5) ORDER BY block_number DESC, "
        "transaction_index DESC LIMIT 21) AS half1 UNION ALL SELECT * FROM (SELECT ",
        " FROM transactions WHERE chain = T6 AND block_number >= I7 AND to_address = H8 AND "
        "(from_address IS NULL OR from_address <> H9) AND (block_number, transaction_index) < "
        "(I10, I11) ORDER BY block_number DESC, transaction_index DESC LIMIT 21) AS half2 ORDER "
        "BY block_number DESC, transaction_index DESC LIMIT 21",
    };
    const char *at = sql.data;
    for (size_t i = 0; i < 3; i++) {
        const char *f = strstr(at, parts[i]);
        if (!f)
            fail_msg("SQL lacks '%s' after offset %zu:\n%s", parts[i], (size_t)(at - sql.data),
                     sql.data);
        at = f + strlen(parts[i]);
    }
    assert_int_equal(*at, '\0');
    assert_int_equal(p.n, 11);
    assert_string_equal(p.p[0].s, "main");
    assert_int_equal(p.p[4].u, 2);

    bp_buf_reset(&sql);
    bp_read_query b = {.table = BP_TABLE_BLOCKS, .hash = "0x1", .ascending = true};
    assert_int_equal(bp_sql_select(&sql, &b, &d, &p, &err), 0);
    assert_non_null(strstr(sql.data, "FROM blocks WHERE hash = H1 ORDER BY number ASC"));
    assert_null(strstr(sql.data, "LIMIT"));

    bp_buf_reset(&sql);
    bp_read_query t = {.table = BP_TABLE_BLOCKS, .topic0 = "0x1"};
    assert_int_equal(bp_sql_select(&sql, &t, &d, &p, &err), BP_EINVAL);
    assert_string_equal(err.msg, "blocks cannot be filtered by topic0");
    bp_buf_release(&sql);
}

static int lit(bp_buf *out, const bp_sql_param *v)
{
    return v->kind == BP_SQL_P_INT ? bp_buf_printf(out, "%llu", (unsigned long long)v->u)
                                   : bp_buf_printf(out, "'%s'", v->s);
}

/* ClickHouse's shape: values inline, FINAL after each table, the union wrapped (its ORDER BY
 * would order the last SELECT only); and a derived table's SELECT. */
static void test_sqlread_dialects(void **state)
{
    (void)state;
    static const bp_sql_dialect ch = {.select_expr = sel,
                                      .param = par,
                                      .literal = lit,
                                      .table_suffix = " FINAL",
                                      .wrap_union = true,
                                      .empty_windows = true};
    static const bp_sql_dialect d = {.select_expr = sel, .param = par};
    bp_buf sql;
    bp_sql_params p;
    bp_error err = {0};
    bp_buf_init(&sql, 0);
    bp_read_query q = {
        .table = BP_TABLE_TRANSACTIONS, .chain = "main", .address = "0xab", .limit = 3};
    assert_int_equal(bp_sql_select(&sql, &q, &ch, &p, &err), 0);
    assert_true(strncmp(sql.data, "SELECT * FROM (SELECT * FROM (SELECT chain, ", 44) == 0);
    assert_non_null(strstr(sql.data, " FROM transactions FINAL WHERE chain = 'main' AND "
                                     "from_address = '0xab' ORDER BY"));
    assert_non_null(strstr(sql.data, ") AS half2) AS halves ORDER BY block_number DESC, "
                                     "transaction_index DESC LIMIT 3"));
    assert_null(strstr(sql.data, "T1"));

    bp_buf_reset(&sql);
    bp_read_query w = {.dtable = BP_DT_CONTRACT_1H + 1,
                       .chain = "main",
                       .has_min = true,
                       .min = 3600,
                       .has_max = true,
                       .max = 7200,
                       .by_txcount = true,
                       .limit = 10};
    assert_int_equal(bp_sql_select(&sql, &w, &d, &p, &err), 0);
    assert_non_null(strstr(sql.data, " FROM contract_metrics_1h WHERE origin_key = T1 AND "
                                     "window_start >= I2 AND window_start <= I3 ORDER BY "
                                     "txcount DESC, window_start DESC, contract_address ASC "
                                     "LIMIT 10"));
    /* ClickHouse: FINAL over the key filters, the empty windows left out after it */
    bp_buf_reset(&sql);
    assert_int_equal(bp_sql_select(&sql, &w, &ch, &p, &err), 0);
    assert_non_null(strstr(sql.data, " FROM (SELECT * FROM contract_metrics_1h FINAL WHERE "
                                     "origin_key = 'main' AND window_start >= 3600 AND "
                                     "window_start <= 7200) AS live WHERE txcount > 0 ORDER BY "
                                     "txcount DESC, window_start DESC, contract_address ASC "
                                     "LIMIT 10"));
    bp_buf_reset(&sql);
    bp_read_query cw = {.dtable = BP_DT_CHAIN_1D + 1, .chain = "main", .limit = 2};
    assert_int_equal(bp_sql_select(&sql, &cw, &ch, &p, &err), 0);
    assert_non_null(strstr(sql.data, " FROM (SELECT * FROM chain_metrics_1d FINAL WHERE "
                                     "origin_key = 'main') AS live WHERE block_count > 0 ORDER BY "
                                     "window_start DESC LIMIT 2"));
    bp_buf_reset(&sql);
    bp_read_query m = {.dtable = BP_DT_ML_PREDICTIONS + 1,
                       .has_min = true,
                       .min = 7,
                       .has_max = true,
                       .max = 7,
                       .tx_hash = "0xcd",
                       .limit = 1};
    assert_int_equal(bp_sql_select(&sql, &m, &d, &p, &err), 0);
    assert_non_null(strstr(sql.data, " FROM ml_predictions WHERE block_number >= I1 AND "
                                     "block_number <= I2 AND transaction_hash = H3 ORDER BY "
                                     "block_number DESC, transaction_index DESC LIMIT 1"));
    bp_read_query bad = {.dtable = BP_DT_CHAIN_1M + 1, .tx_hash = "0xcd"};
    assert_int_equal(bp_sql_select(&sql, &bad, &d, &p, &err), BP_EINVAL);
    bp_read_query badtx = {.dtable = BP_DT_PRICES + 1, .by_txcount = true};
    assert_int_equal(bp_sql_select(&sql, &badtx, &d, &p, &err), BP_EINVAL);
    bp_buf_release(&sql);
}

static void test_row_json(void **state)
{
    (void)state;
    size_t first, n = bp_table_columns(BP_TABLE_TRANSACTIONS, &first);
    bp_read_cell *cells = calloc(n, sizeof(*cells));
    assert_non_null(cells);
    for (size_t i = 0; i < n; i++) {
        const char *name = bp_columns[first + i].name;
        const char *v = strcmp(name, "value") == 0          ? "123456789012345678901234567890"
                        : strcmp(name, "nonce") == 0        ? "7"
                        : strcmp(name, "access_list") == 0  ? "[{\"a\":1}]"
                        : strcmp(name, "hash") == 0         ? "0xab\"c"
                        : strcmp(name, "block_number") == 0 ? "not a number"
                                                            : NULL;
        cells[i] = (bp_read_cell){v, v ? strlen(v) : 0};
    }
    bp_buf b;
    bp_buf_init(&b, 0);
    bp_jsonw w;
    bp_jsonw_init(&w, &b, BP_JSONW_ESC_U);
    bp_api_row_json(&w, BP_TABLE_TRANSACTIONS, cells, n);
    assert_int_equal(bp_jsonw_finish(&w), 0);
    assert_non_null(strstr(b.data, "\"value\":\"123456789012345678901234567890\""));
    assert_non_null(strstr(b.data, "\"nonce\":7,"));
    assert_non_null(strstr(b.data, "\"access_list\":[{\"a\":1}]"));
    assert_non_null(strstr(b.data, "\"hash\":\"0xab\\\"c\""));
    assert_non_null(strstr(b.data, "\"block_number\":\"not a number\"")); /* never bad JSON */
    assert_non_null(strstr(b.data, "\"to_address\":null"));
    assert_string_equal(bp_api_cell(BP_TABLE_TRANSACTIONS, cells, n, "nonce")->s, "7");
    assert_null(bp_api_cell(BP_TABLE_TRANSACTIONS, cells, n, "nope")->s);
    bp_buf_release(&b);
    free(cells);
}

static void test_latency_buckets(void **state)
{
    (void)state;
    bp_hist h;
    bp_hist_init(&h);
    static const uint64_t us[] = {100, 900, 2000, 2000, 40000, 3000000, 90000000};
    for (size_t i = 0; i < sizeof(us) / sizeof(us[0]); i++)
        bp_hist_add(&h, us[i]);
    bp_stats_latency l;
    bp_hist_latency_ms(&h, &l);
    assert_int_equal(l.count, 7);
    assert_true(l.sum_ms > 93000 && l.sum_ms < 93100);
    assert_int_equal(l.le[0], 1);                     /* <= 0.5 ms: 100 µs */
    assert_int_equal(l.le[2], 4);                     /* <= 2.5 ms: and 900 µs, 2 ms twice */
    assert_int_equal(l.le[6], 5);                     /* <= 50 ms: and 40 ms */
    assert_int_equal(l.le[BP_STATS_LE_COUNT - 1], 6); /* <= 10 s: all but 90 s */
    for (int i = 1; i < BP_STATS_LE_COUNT; i++)
        assert_true(l.le[i] >= l.le[i - 1]);
}

/* POST /api/predictions with a body of 500,000 arrays in one another (1,000,000 bytes, under
 * the default --api-max-body): refused as too deep (400) before any output is read, where
 * yajl_tree_free's recursion took the worker off its stack. */
static void test_predictions_deep_body(void **state)
{
    (void)state;
    size_t depth = 500000;
    char *body = malloc(2 * depth);
    assert_non_null(body);
    memset(body, '[', depth);
    memset(body + depth, ']', depth);
    static bp_api_config cfg; /* no output: the body is checked first */
    bp_api_ctx ctx = {.cfg = &cfg};
    bp_api_request *req = malloc(sizeof(*req));
    assert_non_null(req);
    bp_api_request_init(req, BP_API_POST, "/api/predictions", strlen("/api/predictions"));
    req->body = body;
    req->body_len = 2 * depth;
    bp_api_worker w = {0};
    bp_api_response resp = {0};
    bp_buf_init(&resp.body, BP_API_BODY_MAX);
    bp_api_route(&ctx, &w, req, &resp);
    assert_int_equal(resp.status, 400);
    assert_non_null(strstr(resp.body.data, "nested deeper"));
    bp_buf_release(&resp.body);
    bp_api_worker_release(&w);
    free(req);
    free(body);
}

static void test_metrics_text(void **state)
{
    (void)state;
    bp_stats *s = calloc(1, sizeof(*s));
    bp_api_counters *c = calloc(1, sizeof(*c));
    assert_non_null(s);
    assert_non_null(c);
    s->version = 3;
    snprintf(s->chain, sizeof(s->chain), "ma\"in");
    s->have_head = s->have_indexed = true;
    s->head = 100;
    s->indexed = 98;
    s->lag = 2;
    s->done = 99;
    s->endpoint_count = 1;
    snprintf(s->endpoints[0].url, sizeof(s->endpoints[0].url), "http://node:8545");
    snprintf(s->endpoints[0].state, sizeof(s->endpoints[0].state), "ejected");
    s->endpoints[0].requests = 12;
    s->endpoints[0].latency.count = 12;
    s->endpoints[0].latency.le[5] = 3;
    s->output_count = 1;
    snprintf(s->outputs[0].url, sizeof(s->outputs[0].url), "sqlite:x.db");
    s->outputs[0].checkpoint_set = true;
    s->outputs[0].checkpoint = 98;
    atomic_store(&c->requests[BP_ROUTE_BLOCKS][0], 5);
    bp_push_stats p = {.ws_clients = 2, .reorgs = 3, .depth_le = {1, 2, 3, 3, 3, 3, 3, 3}};
    bp_buf b;
    bp_buf_init(&b, 0);
    assert_int_equal(bp_api_metrics(s, 10, &p, c, &b), 0);
    static const char *const want[] = {
        "# TYPE blockpipe_head_block gauge\nblockpipe_head_block{chain=\"ma\\\"in\"} 100\n",
        "blockpipe_indexed_block{chain=\"ma\\\"in\"} 98\n",
        "blockpipe_ready{chain=\"ma\\\"in\"} 1\n",
        "blockpipe_rpc_requests_total{chain=\"ma\\\"in\",endpoint=\"http://node:8545\"} 12\n",
        "blockpipe_rpc_up{chain=\"ma\\\"in\",endpoint=\"http://node:8545\"} 0\n",
        "blockpipe_rpc_request_duration_seconds_bucket{chain=\"ma\\\"in\",endpoint=\"http://"
        "node:8545\",le=\"0.025\"} 3\n",
        "blockpipe_rpc_request_duration_seconds_count{chain=\"ma\\\"in\",endpoint=\"http://"
        "node:8545\"} 12\n",
        "blockpipe_output_checkpoint_block{chain=\"ma\\\"in\",output=\"sqlite:x.db\"} 98\n",
        "blockpipe_push_clients{transport=\"websocket\"} 2\n",
        "blockpipe_reorg_depth_blocks_bucket{le=\"+Inf\"} 3\n",
        "blockpipe_api_requests_total{route=\"/api/blocks\",code=\"2xx\"} 5\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(b.data, want[i]))
            fail_msg("/metrics lacks: %s\n--- got:\n%s", want[i], b.data);
    /* every sample comes after its family's TYPE line */
    for (char *line = b.data; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (*line == '#' || *line == '\n')
            continue;
        char name[128];
        size_t k = strcspn(line, "{ ");
        snprintf(name, sizeof(name), "%.*s", (int)k, line);
        for (const char *suffix = NULL; !suffix;) {
            suffix = "";
            char type[160];
            snprintf(type, sizeof(type), "# TYPE %s ", name);
            if (!strstr(b.data, type)) {
                char *u = strrchr(name, '_'); /* _bucket, _sum, _count of a histogram */
                assert_non_null(u);
                *u = '\0';
                suffix = NULL;
            }
        }
    }
    /* an output retrying whose failure stops the run: not ready, whatever the lag */
    snprintf(s->outputs[0].state, sizeof(s->outputs[0].state), "retrying");
    s->outputs[0].failure_stops = true;
    bp_buf_reset(&b);
    assert_int_equal(bp_api_metrics(s, 10, &p, c, &b), 0);
    assert_non_null(strstr(b.data, "blockpipe_ready{chain=\"ma\\\"in\"} 0\n"));
    assert_non_null(strstr(b.data, "blockpipe_output_retrying{chain=\"ma\\\"in\",output=\"sqlite:"
                                   "x.db\"} 1\n"));
    /* --output-failure continue with another output left: it is set aside if it keeps failing */
    s->outputs[0].failure_stops = false;
    bp_buf_reset(&b);
    assert_int_equal(bp_api_metrics(s, 10, &p, c, &b), 0);
    assert_non_null(strstr(b.data, "blockpipe_ready{chain=\"ma\\\"in\"} 1\n"));
    bp_buf_reset(&b);
    assert_int_equal(bp_api_metrics(NULL, 10, NULL, c, &b), 0); /* no pipeline: serve */
    assert_non_null(strstr(b.data, "blockpipe_up 1\n"));
    assert_null(strstr(b.data, "blockpipe_head_block"));
    bp_buf_release(&b);
    free(s);
    free(c);
}

/* /api/sync-status's eta_s counts the blocks left to the pipeline's target (a backfill's --to),
 * not to the head: a backfill of 100..200 far below a head of 1000 is told 10 s at 10 blocks/s,
 * not 90 s. Unknown target: null; at the target: 0. */
static void test_sync_status_eta(void **state)
{
    (void)state;
    bp_stats *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->version = 1;
    s->backfill = true;
    s->have_head = s->have_indexed = true;
    s->head = 1000;
    s->indexed = 100;
    s->lag = 900;
    s->have_target = true;
    s->target = 200;
    s->left = 100;
    s->blocks_per_s = 10.0;
    static const struct {
        bool have_target;
        uint64_t left;
        double bps;
        const char *want;
    } cases[] = {
        {true, 100, 10.0, "\"target\":200,\"left\":100,\"eta_s\":10,"},
        {true, 101, 10.0, "\"left\":101,\"eta_s\":11,"}, /* rounded up */
        {true, 0, 10.0, "\"left\":0,\"eta_s\":0,"},
        {true, 100, 0.0, "\"eta_s\":null,"}, /* nothing committed lately */
        {false, 0, 10.0, "\"target\":null,\"left\":null,\"eta_s\":null,"},
    };
    bp_buf b;
    bp_buf_init(&b, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        s->have_target = cases[i].have_target;
        s->left = cases[i].left;
        s->blocks_per_s = cases[i].bps;
        bp_buf_reset(&b);
        bp_jsonw w;
        bp_jsonw_init(&w, &b, BP_JSONW_ESC_U);
        bp_jsonw_begin_object(&w);
        bp_api_sync_members(&w, s, 10);
        bp_jsonw_end_object(&w);
        assert_int_equal(bp_jsonw_finish(&w), 0);
        if (!strstr(b.data, cases[i].want))
            fail_msg("case %zu: sync-status lacks %s\n--- got:\n%s", i, cases[i].want, b.data);
    }
    bp_buf_release(&b);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_decoding),
        cmocka_unit_test(test_checked_values),
        cmocka_unit_test(test_filter_params),
        cmocka_unit_test(test_filter_json),
        cmocka_unit_test(test_sqlread),
        cmocka_unit_test(test_sqlread_dialects),
        cmocka_unit_test(test_row_json),
        cmocka_unit_test(test_latency_buckets),
        cmocka_unit_test(test_predictions_deep_body),
        cmocka_unit_test(test_metrics_text),
        cmocka_unit_test(test_sync_status_eta),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
