/* daysets_main.c - bench_daysets: the memory the metrics module's active-address sets take
 * through a day of a 1,000 tx/s simnode chain, measured (daysets.h says how). One line per
 * point (every --every blocks, after each --at block and at the end):
 *   point first=.. last=.. txs=.. day_senders=.. day_pairs=.. hour_senders=.. hour_pairs=..
 *     hour_senders_max=.. hour_pairs_max=.. ids=.. id_bytes=.. set_bytes=.. held=.. m1=.. h1=..
 *     d1=.. seconds=.. cpu_seconds=.. metrics_seconds=.. rss_kib=..
 * bench/daysets_bench.py runs it for `make bench` (section metrics-day).
 *
 * usage: bench_daysets [--senders N] [--contracts N] [--zipf S] [--seed N] [--txs N]
 *                      [--first N] [--blocks N] [--batch N] [--every N] [--at N,N,..]
 *   defaults: simnode's population of docs/PERFORMANCE.md's metrics-sets section (--senders
 *   100000000 --contracts 100000 --zipf 1), seed 1, 1,000 tx per one-second block, 86,400
 *   blocks from the first at a UTC day boundary (--first 0), batches of 12, a point an hour. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daysets.h"

#define MAX_AT 256

static int print_point(const ds_point *p, void *ctx)
{
    (void)ctx;
    printf("point first=%" PRIu64 " last=%" PRIu64 " txs=%" PRIu64 " day_senders=%" PRIu64
           " day_pairs=%" PRIu64 " hour_senders=%" PRIu64 " hour_pairs=%" PRIu64
           " hour_senders_max=%" PRIu64 " hour_pairs_max=%" PRIu64
           " ids=%zu id_bytes=%zu set_bytes=%zu held=%zu m1=%zu h1=%zu d1=%zu seconds=%.2f"
           " cpu_seconds=%.2f metrics_seconds=%.2f rss_kib=%ld\n",
           p->first, p->last, p->txs, p->day_senders, p->day_pairs, p->hour_senders, p->hour_pairs,
           p->hour_senders_max, p->hour_pairs_max, p->ids, p->id_bytes, p->set_bytes, p->held,
           p->members[BP_GRAIN_1M], p->members[BP_GRAIN_1H], p->members[BP_GRAIN_1D], p->seconds,
           p->cpu_seconds, p->metrics_seconds, p->rss_kib);
    fflush(stdout);
    return 0;
}

static int usage(const char *why)
{
    fprintf(stderr,
            "bench_daysets: %s\nusage: bench_daysets [--senders N] [--contracts N] [--zipf S] "
            "[--seed N] [--txs N] [--first N] [--blocks N] [--batch N] [--every N] "
            "[--at N,N,..]\n",
            why);
    return 2;
}

static int number(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end)
        return -1;
    *out = v;
    return 0;
}

static int at_list(char *s, uint64_t *at, size_t *n)
{
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ","))
        if (*n == MAX_AT || number(tok, &at[(*n)++]) != 0)
            return -1;
    return 0;
}

int main(int argc, char **argv)
{
    static uint64_t at[MAX_AT];
    ds_params p = {.seed = 1,
                   .senders = 100000000,
                   .contracts = 100000,
                   .zipf = 1.0,
                   .txs = 1000,
                   .blocks = 86400,
                   .batch = 12,
                   .every = 3600,
                   .at = at};
    for (int i = 1; i < argc; i++) {
        if (i + 1 == argc)
            return usage("every option takes a value");
        const char *f = argv[i];
        char *v = argv[++i];
        uint64_t x = 0;
        int rc = strcmp(f, "--zipf") == 0 || strcmp(f, "--at") == 0 ? 0 : number(v, &x);
        if (rc != 0)
            return usage("expected a number");
        if (strcmp(f, "--senders") == 0)
            p.senders = x;
        else if (strcmp(f, "--contracts") == 0)
            p.contracts = x;
        else if (strcmp(f, "--zipf") == 0)
            p.zipf = strtod(v, NULL);
        else if (strcmp(f, "--seed") == 0)
            p.seed = x;
        else if (strcmp(f, "--txs") == 0 && x > 0 && x <= 100000)
            p.txs = (uint32_t)x;
        else if (strcmp(f, "--first") == 0)
            p.first = x;
        else if (strcmp(f, "--blocks") == 0 && x > 0)
            p.blocks = x;
        else if (strcmp(f, "--batch") == 0 && x > 0)
            p.batch = (size_t)x;
        else if (strcmp(f, "--every") == 0)
            p.every = x;
        else if (strcmp(f, "--at") == 0 && at_list(v, at, &p.nat) == 0)
            continue;
        else
            return usage(f);
    }
    bp_error err = {0};
    int rc = ds_run(&p, print_point, NULL, &err);
    if (rc != 0) {
        fprintf(stderr, "bench_daysets: %s\n", err.msg);
        return 1;
    }
    return 0;
}
