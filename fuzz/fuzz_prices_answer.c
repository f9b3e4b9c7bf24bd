/* fuzz_prices_answer.c - CoinGecko's answers as the price fetcher takes them (prices_fetch.c):
 * the bytes as a /simple/price answer (two stores: ids=ethereum,binancecoin), as a
 * market_chart/range answer, and as the error body of a 429 and a 401. Any body must give
 * points or an error message, never a crash, a leak or UB; the points taken are what the store
 * then hands its readers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/prices_internal.h"
#include "util/arena.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void refused_with_message(int rc, const bp_error *err, const char *what)
{
    if (rc != 0 && !err->msg[0]) {
        fprintf(stderr, "%s refused without a message\n", what);
        abort();
    }
}

/* Every point the store holds, handed to a reader: one row per timestamp, ascending. */
static void rows_right(bp_prices *p)
{
    int r = bp_prices_join(p);
    bp_arena *a = bp_arena_new(0);
    bp_price_row *rows;
    size_t n;
    if (r < 0 || !a || bp_prices_take_new(p, r, a, &rows, &n) != 0)
        abort();
    if (n != bp_prices_count(p))
        abort();
    for (size_t i = 1; i < n; i++)
        if (rows[i - 1].timestamp >= rows[i].timestamp || !(rows[i].usd.v >= 0))
            abort();
    bp_arena_free(a);
    bp_prices_leave(p, r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    if (!quiet) {
        bp_log_set_level(BP_LOG_ERROR); /* the other store's refusal is a warning */
        quiet = true;
    }
    bp_prices_config cfg = {.symbol = "ETH",
                            .url = "http://127.0.0.1:9/api/v3",
                            .interval = 60,
                            .max_age = 3600,
                            .timeout = 1};
    bp_error err = {0};
    bp_prices *p = bp_prices_new(&cfg, &err);
    bp_prices *bnb = p ? bp_prices_for(p, "BNB", NULL, &err) : NULL;
    bp_buf body;
    bp_buf_init(&body, 0);
    if (!bnb || (size && bp_buf_append(&body, data, size) != 0))
        abort();
    int rc = bp_prices_take_current(p, 200, &body, &err);
    refused_with_message(rc, &err, "/simple/price");
    size_t added = 0;
    uint64_t newest = 0, gap = 0;
    err = (bp_error){0};
    rc = bp_prices_take_range(p, 200, &body, &added, &newest, &gap, &err);
    refused_with_message(rc, &err, "market_chart/range");
    rows_right(p);
    rows_right(bnb);
    for (long status = 401; status <= 429; status += 28) {
        err = (bp_error){0};
        if (bp_prices_take_current(p, status, &body, &err) == 0 ||
            bp_prices_take_range(p, status, &body, &added, &newest, &gap, &err) == 0 ||
            !strstr(err.msg, "HTTP "))
            abort(); /* a refusal is an error that names the status */
    }
    bp_buf_release(&body);
    bp_prices_free(p);
    return 0;
}
