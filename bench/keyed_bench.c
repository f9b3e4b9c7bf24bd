/* keyed_bench.c - round trips of the keyed streams API (include/blockpipe/keyed.h): one
 * client, one operation at a time, as `blockpipe stream publish` / `stream latest` and the
 * HTTP API do. Each operation is timed on its own; prints
 *   ops=N seconds=S ops_per_s=R mean_us=M p50_us=P p99_us=Q
 * usage: bench_keyed URL publish|latest N */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blockpipe/keyed.h"

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* One operation: a publication of a small price-like value, or a read of the latest. */
static int one(bp_keyed *k, bool publish, long i, bp_error *err)
{
    if (publish) {
        char json[128];
        snprintf(json, sizeof(json), "{\"seq\":%ld,\"price\":\"3120.%02ld\",\"pair\":\"ETH/USD\"}",
                 i, i % 100);
        return bp_keyed_publish(k, "bench:eth-usd", json, NULL, err);
    }
    bp_keyed_entry e;
    bool found = false;
    int rc = bp_keyed_latest(k, "bench:eth-usd", &e, &found, err);
    if (rc == 0 && !found)
        rc = bp_error_set(err, BP_EINVAL, "latest: the key has no entry");
    if (rc == 0)
        bp_keyed_entry_release(&e);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 4 || (strcmp(argv[2], "publish") != 0 && strcmp(argv[2], "latest") != 0)) {
        fprintf(stderr, "usage: bench_keyed URL publish|latest N\n");
        return 2;
    }
    bool publish = strcmp(argv[2], "publish") == 0;
    long n = strtol(argv[3], NULL, 10);
    bp_error err = {0};
    bp_keyed *k = NULL;
    int64_t *lat = calloc(n > 0 ? (size_t)n : 1, sizeof(*lat));
    int rc = lat ? bp_keyed_open(argv[1], &k, &err) : bp_error_set(&err, BP_ENOMEM, "no memory");
    if (rc == 0 && !publish) /* something to read */
        rc = one(k, true, 0, &err);
    int64_t t0 = now_ns();
    for (long i = 0; rc == 0 && i < n; i++) {
        int64_t a = now_ns();
        rc = one(k, publish, i, &err);
        lat[i] = now_ns() - a;
    }
    int64_t t1 = now_ns();
    if (rc == 0 && n > 0) {
        double sum = 0;
        for (long i = 0; i < n; i++)
            sum += (double)lat[i];
        qsort(lat, (size_t)n, sizeof(*lat), cmp_i64);
        double s = (double)(t1 - t0) / 1e9;
        printf("ops=%ld seconds=%.3f ops_per_s=%.0f mean_us=%.1f p50_us=%.1f p99_us=%.1f\n", n, s,
               (double)n / s, sum / (double)n / 1e3, (double)lat[n / 2] / 1e3,
               (double)lat[(size_t)((double)n * 0.99)] / 1e3);
    }
    if (rc != 0)
        fprintf(stderr, "bench_keyed: %s\n", err.msg);
    bp_keyed_close(k);
    free(lat);
    return rc == 0 ? 0 : 1;
}
