/* fuzz_prices_file.c - the --prices file (prices.c: CSV with a header, or JSON lines) on
 * arbitrary bytes, for the symbol ETH, and the first line as a timestamp on its own
 * (bp_prices_parse_time). Any file must give a store or an error message naming the file,
 * never a crash, a leak or UB; the store holds one point per timestamp, none negative. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_file.h"
#include "metrics/prices.h"
#include "util/arena.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void load(const char *path)
{
    bp_prices_config cfg = {.symbol = "ETH", .file = path, .max_age = 3600};
    bp_error err = {0};
    bp_prices *p = bp_prices_new(&cfg, &err);
    if (!p) {
        if (!strstr(err.msg, path))
            abort(); /* an error names the file */
        return;
    }
    int r = bp_prices_join(p);
    bp_arena *a = bp_arena_new(0);
    bp_price_row *rows;
    size_t n;
    if (r < 0 || !a || bp_prices_take_new(p, r, a, &rows, &n) != 0 || n != bp_prices_count(p))
        abort();
    for (size_t i = 0; i < n; i++) {
        double usd = -1;
        if ((i && rows[i - 1].timestamp >= rows[i].timestamp) || !(rows[i].usd.v >= 0) ||
            !bp_prices_at(p, rows[i].timestamp, &usd) || usd != rows[i].usd.v)
            abort();
    }
    bp_arena_free(a);
    bp_prices_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bp_fuzz_with_file(data, size, load);
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    text[strcspn(text, "\n")] = '\0';
    uint64_t ts;
    (void)bp_prices_parse_time(text, &ts);
    free(text);
    return 0;
}
