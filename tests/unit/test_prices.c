/* test_prices.c - the price store's readers (src/metrics/prices.c): every chain's metrics
 * module takes every point (one reader each), a point changed twice before a take comes once
 * with its last value (PostgreSQL refuses an upsert that changes a row twice), a resend hands
 * everything again to that reader only, a reader that falls far behind is handed the whole
 * store, a --prices file's ticks in one second are one point, and each symbol in use has its
 * own store; CoinGecko's answers as the fetcher takes them. (The fetcher, end to end:
 * integration/test_metrics_prices*.py.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "metrics/prices_internal.h"
#include "util/arena.h"

static bp_prices *store(void)
{
    bp_prices_config cfg = {.symbol = "ETH", .max_age = 600};
    bp_error e = {0};
    bp_prices *p = bp_prices_new(&cfg, &e);
    assert_non_null(p);
    return p;
}

/* The rows reader r takes now, as "ts=usd ts=usd ..." */
static const char *take(bp_prices *p, int r, bp_arena *a)
{
    static char out[512];
    bp_price_row *rows;
    size_t n;
    assert_int_equal(bp_prices_take_new(p, r, a, &rows, &n), 0);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(rows[i].symbol, "ETH");
        assert_true(rows[i].usd.set);
        snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%llu=%g", i ? " " : "",
                 (unsigned long long)rows[i].timestamp, rows[i].usd.v);
    }
    return out;
}

static void test_every_reader_takes_every_point(void **state)
{
    (void)state;
    bp_prices *p = store();
    bp_arena *a = bp_arena_new(4096);
    assert_int_equal(bp_prices_add(p, 100, 1.5, "file"), 0);
    int r1 = bp_prices_join(p), r2 = bp_prices_join(p);
    assert_true(r1 >= 0 && r2 >= 0 && r1 != r2);
    /* a reader's first take hands what the store held when it joined */
    assert_string_equal(take(p, r1, a), "100=1.5");
    assert_int_equal(bp_prices_add(p, 200, 2, "coingecko"), 0);
    assert_string_equal(take(p, r1, a), "200=2");
    assert_string_equal(take(p, r1, a), "");
    /* the other chain was not robbed of them */
    assert_string_equal(take(p, r2, a), "100=1.5 200=2");
    assert_string_equal(take(p, r2, a), "");
    /* the same value again is no news; a changed one is */
    assert_int_equal(bp_prices_add(p, 200, 2, "coingecko"), 0);
    assert_string_equal(take(p, r1, a), "");
    assert_int_equal(bp_prices_add(p, 200, 3, "coingecko"), 0);
    assert_string_equal(take(p, r2, a), "200=3");
    assert_string_equal(take(p, r1, a), "200=3");
    bp_arena_free(a);
    bp_prices_free(p);
}

static void test_changed_twice_comes_once(void **state)
{
    (void)state;
    bp_prices *p = store();
    bp_arena *a = bp_arena_new(4096);
    int r = bp_prices_join(p);
    assert_string_equal(take(p, r, a), "");
    assert_int_equal(bp_prices_add(p, 300, 1, "coingecko"), 0);
    assert_int_equal(bp_prices_add(p, 100, 5, "coingecko"), 0);
    assert_int_equal(bp_prices_add(p, 300, 2, "coingecko"), 0);
    assert_int_equal(bp_prices_add(p, 300, 4, "coingecko"), 0);
    assert_int_equal(bp_prices_add(p, 200, 7, "coingecko"), 0);
    assert_string_equal(take(p, r, a), "100=5 200=7 300=4");
    bp_arena_free(a);
    bp_prices_free(p);
}

static void test_resend_and_leave(void **state)
{
    (void)state;
    bp_prices *p = store();
    bp_arena *a = bp_arena_new(4096);
    int r1 = bp_prices_join(p), r2 = bp_prices_join(p);
    assert_int_equal(bp_prices_add(p, 100, 1, "file"), 0);
    assert_int_equal(bp_prices_add(p, 200, 2, "file"), 0);
    assert_string_equal(take(p, r1, a), "100=1 200=2");
    assert_string_equal(take(p, r2, a), "100=1 200=2");
    bp_prices_resend(p, r1);
    assert_string_equal(take(p, r1, a), "100=1 200=2");
    assert_string_equal(take(p, r2, a), "");
    /* a reader that left takes nothing more, and its slot goes to the next that joins */
    bp_prices_leave(p, r2);
    assert_int_equal(bp_prices_add(p, 300, 3, "file"), 0);
    assert_string_equal(take(p, r2, a), "");
    assert_int_equal(bp_prices_join(p), r2);
    assert_string_equal(take(p, r2, a), "100=1 200=2 300=3");
    assert_string_equal(take(p, r1, a), "300=3");
    bp_arena_free(a);
    bp_prices_free(p);
}

/* A chain that writes no batch for a long time: its list stays bounded by the store's size
 * (it is handed the whole store instead). */
static void test_idle_reader_bounded(void **state)
{
    (void)state;
    bp_prices *p = store();
    bp_arena *a = bp_arena_new(4096);
    int idle = bp_prices_join(p), busy = bp_prices_join(p);
    assert_string_equal(take(p, idle, a), "");
    for (int i = 0; i < 1000; i++)
        assert_int_equal(bp_prices_add(p, 100 + (uint64_t)(i % 3), i, "coingecko"), 0);
    assert_true(p->readers[idle].n <= p->n);
    assert_string_equal(take(p, idle, a), "100=999 101=997 102=998");
    assert_string_equal(take(p, busy, a), "100=999 101=997 102=998");
    bp_arena_free(a);
    bp_prices_free(p);
}

/* --prices with millisecond ticks in one second: one point, the file's last value. */
static void test_file_ticks_in_one_second(void **state)
{
    (void)state;
    char path[] = "/tmp/bp-test-prices-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("timestamp,symbol,usd\n1700000000123,ETH,2000\n1700000000456,ETH,2001\n"
          "1700000001000,ETH,2002\n",
          f);
    fclose(f);
    bp_prices_config cfg = {.symbol = "ETH", .file = path, .max_age = 600};
    bp_error e = {0};
    bp_prices *p = bp_prices_new(&cfg, &e);
    unlink(path);
    assert_non_null(p);
    bp_arena *a = bp_arena_new(4096);
    int r = bp_prices_join(p);
    assert_string_equal(take(p, r, a), "1700000000=2001 1700000001=2002");
    bp_arena_free(a);
    bp_prices_free(p);
}

/* Chains with other native tokens in one process: each symbol its own store (its rows of
 * the file, its own points and readers), the first store's symbol the first store itself. */
static void test_store_per_symbol(void **state)
{
    (void)state;
    char path[] = "/tmp/bp-test-prices-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("timestamp,symbol,usd\n1700000000,ETH,2000\n1700000000,BNB,300\n"
          "1700000060,BNB,301\n",
          f);
    fclose(f);
    bp_prices_config cfg = {.symbol = "ETH", .file = path, .max_age = 600};
    bp_error e = {0};
    bp_prices *p = bp_prices_new(&cfg, &e);
    assert_non_null(p);
    bp_prices *bnb = bp_prices_for(p, "BNB", NULL, &e);
    unlink(path);
    assert_non_null(bnb);
    assert_ptr_not_equal(bnb, p);
    assert_ptr_equal(bp_prices_for(p, "eth", NULL, &e), p);
    assert_ptr_equal(bp_prices_for(p, "bnb", NULL, &e), bnb);
    assert_string_equal(bnb->cfg.coin_id, "binancecoin");
    double usd = 0;
    assert_true(bp_prices_at(p, 1700000100, &usd));
    assert_true(usd == 2000);
    assert_true(bp_prices_at(bnb, 1700000100, &usd));
    assert_true(usd == 301);
    bp_arena *a = bp_arena_new(4096);
    int r = bp_prices_join(bnb);
    bp_price_row *rows;
    size_t n;
    assert_int_equal(bp_prices_take_new(bnb, r, a, &rows, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].symbol, "BNB");
    assert_true(rows[1].usd.v == 301);
    assert_string_equal(take(p, bp_prices_join(p), a), "1700000000=2000");
    bp_arena_free(a);
    bp_prices_free(p);
}

static bp_buf body_of(const char *text)
{
    bp_buf b;
    bp_buf_init(&b, 0);
    assert_int_equal(bp_buf_puts(&b, text), 0);
    return b;
}

/* CoinGecko's range answer: its points stored; a time past what a timestamp holds (1e30 ms)
 * refused like any point that is not [milliseconds, usd], where it was converted to an
 * integer it does not fit (undefined behaviour: a point at a made-up time). */
static void test_range_answer(void **state)
{
    (void)state;
    bp_prices *p = store();
    bp_error e = {0};
    size_t added = 0;
    uint64_t newest = 0, gap = 0;
    bp_buf b = body_of("{\"prices\": [[1700000000000, 2000.5], [1700003600000, 2001]], "
                       "\"market_caps\": [], \"total_volumes\": []}");
    assert_int_equal(bp_prices_take_range(p, 200, &b, &added, &newest, &gap, &e), 0);
    assert_int_equal(added, 2);
    assert_int_equal(newest, 1700003600);
    assert_int_equal(gap, 3600);
    bp_buf_release(&b);
    static const char *const bad[] = {"{\"prices\": [[1e30, 1]]}", "{\"prices\": [[-1, 1]]}",
                                      "{\"prices\": [[1700000000000, -1]]}",
                                      "{\"prices\": [[1700000000000]]}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        b = body_of(bad[i]);
        e = (bp_error){0};
        assert_int_equal(bp_prices_take_range(p, 200, &b, &added, &newest, &gap, &e), BP_EPARSE);
        assert_non_null(strstr(e.msg, "point 0 is not [milliseconds, usd]"));
        bp_buf_release(&b);
    }
    assert_int_equal(bp_prices_count(p), 2);
    b = body_of("{\"error\": {\"status\": {\"error_code\": 10012, \"error_message\": \"Your "
                "request exceeds the allowed time range.\"}}}");
    assert_int_equal(bp_prices_take_range(p, 401, &b, &added, &newest, &gap, &e), BP_EINVAL);
    assert_string_equal(e.msg, "prices: market_chart/range: HTTP 401: Your request exceeds the "
                               "allowed time range.");
    bp_buf_release(&b);
    bp_prices_free(p);
}

/* CoinGecko's current price: a last_updated_at past what a timestamp holds is no time (the
 * point is now), never converted to an integer it does not fit. */
static void test_current_answer(void **state)
{
    (void)state;
    bp_prices *p = store();
    bp_error e = {0};
    bp_buf b = body_of("{\"ethereum\": {\"usd\": 2345.5, \"last_updated_at\": 1700000000}}");
    assert_int_equal(bp_prices_take_current(p, 200, &b, &e), 0);
    double usd = 0;
    assert_true(bp_prices_at(p, 1700000000, &usd) && usd == 2345.5);
    bp_buf_release(&b);
    uint64_t before = (uint64_t)time(NULL);
    b = body_of("{\"ethereum\": {\"usd\": 7, \"last_updated_at\": 1e30}}");
    assert_int_equal(bp_prices_take_current(p, 200, &b, &e), 0);
    bp_buf_release(&b);
    assert_true(bp_prices_at(p, (uint64_t)time(NULL), &usd) && usd == 7);
    assert_false(bp_prices_at(p, before - 601, &usd)); /* no point at a made-up time */
    b = body_of("{\"status\": {\"error_code\": 429, \"error_message\": \"limit\"}}");
    assert_int_equal(bp_prices_take_current(p, 429, &b, &e), BP_ETRANSPORT);
    assert_string_equal(e.msg, "prices: /simple/price: HTTP 429: limit");
    bp_buf_release(&b);
    bp_prices_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_reader_takes_every_point),
        cmocka_unit_test(test_changed_twice_comes_once),
        cmocka_unit_test(test_resend_and_leave),
        cmocka_unit_test(test_idle_reader_bounded),
        cmocka_unit_test(test_file_ticks_in_one_second),
        cmocka_unit_test(test_store_per_symbol),
        cmocka_unit_test(test_range_answer),
        cmocka_unit_test(test_current_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
