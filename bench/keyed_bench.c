/* keyed_bench.c - round trips of the keyed streams API (include/blockpipe/keyed.h) as the
 * figures of the system we replace are measured: C concurrent clients (threads, each with its
 * own handle, as the HTTP API's workers), each doing one operation at a time (W 0, the calls
 * that return the outcome) or keeping W operations in flight through the asynchronous calls
 * (bp_keyed_*_async and bp_keyed_poll, as redis-benchmark's event loop keeps its clients'
 * requests in flight: each outcome delivered submits the next operation). Every operation is
 * timed on its own, from its submission to its outcome in the caller's hands. Prints
 *   clients=C window=W ops=N seconds=S ops_per_s=R mean_us=M p50_us=P p99_us=Q cpu_us_per_op=U
 * (U: this process's user + system CPU time over the operations: on a shared machine the rate
 * is what the scheduler left us, the CPU time what an operation costs here; a Redis server's
 * own CPU time is not in it)
 * usage: bench_keyed URL publish|latest N [C [W]]   (C default 1, W default 0) */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "blockpipe/keyed.h"

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
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

typedef struct client {
    const char *url;
    bool publish;
    long first, n, window;
    long submitted, finished;
    int64_t *started; /* per operation: when it was submitted (async) */
    int64_t *lat;
    bp_keyed *k; /* async: the handle the next operations are submitted on */
    int rc;
    bp_error err;
    pthread_t tid;
} client;

/* ---- W operations in flight on one thread (the asynchronous calls) ---- */

typedef struct slot {
    client *c;
    long i; /* the operation's number in the client's share */
} slot;

static void submit_next(bp_keyed *k, slot *sl);

static void on_done(void *ctx, int rc, bp_keyed_entry *e, const bp_error *err)
{
    slot *sl = ctx;
    client *c = sl->c;
    c->lat[sl->i] = now_ns() - c->started[sl->i];
    c->finished++;
    if (rc == 0 && !c->publish && !e)
        rc = bp_error_set(&c->err, BP_EINVAL, "latest: the key has no entry");
    else if (rc != 0 && c->rc == 0)
        c->err = *err;
    if (c->rc == 0)
        c->rc = rc;
    sl->i = -1;
    submit_next(c->k, sl); /* the outcome in hand: that client's next operation */
}

static void submit_next(bp_keyed *k, slot *sl)
{
    client *c = sl->c;
    if (c->rc != 0 || c->submitted >= c->n)
        return;
    long i = c->submitted++;
    sl->i = i;
    c->started[i] = now_ns();
    int rc;
    if (c->publish) {
        char json[128];
        snprintf(json, sizeof(json), "{\"seq\":%ld,\"price\":\"3120.%02ld\",\"pair\":\"ETH/USD\"}",
                 c->first + i, (c->first + i) % 100);
        rc = bp_keyed_publish_async(k, "bench:eth-usd", json, on_done, sl, &c->err);
    } else {
        rc = bp_keyed_latest_async(k, "bench:eth-usd", on_done, sl, &c->err);
    }
    if (rc != 0)
        c->rc = rc;
}

static void run_async(client *c, bp_keyed *k)
{
    slot *slots = calloc((size_t)c->window, sizeof(*slots));
    if (!slots) {
        c->rc = bp_error_set(&c->err, BP_ENOMEM, "out of memory");
        return;
    }
    for (long j = 0; j < c->window; j++) {
        slots[j] = (slot){.c = c, .i = -1};
        submit_next(k, &slots[j]);
    }
    while (bp_keyed_pending(k) > 0)
        bp_keyed_poll(k);
    if (c->rc == 0 && c->finished != c->n)
        c->rc = bp_error_set(&c->err, BP_EINVAL, "%ld of %ld operations done", c->finished, c->n);
    free(slots);
}

static void *client_main(void *arg)
{
    client *c = arg;
    bp_keyed *k = NULL;
    c->rc = bp_keyed_open(c->url, &k, &c->err);
    if (c->rc == 0 && c->window > 0) {
        c->k = k;
        run_async(c, k);
        bp_keyed_close(k);
        return NULL;
    }
    for (long i = 0; c->rc == 0 && i < c->n; i++) {
        int64_t a = now_ns();
        c->rc = one(k, c->publish, c->first + i, &c->err);
        c->lat[i] = now_ns() - a;
    }
    bp_keyed_close(k);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 6 ||
        (strcmp(argv[2], "publish") != 0 && strcmp(argv[2], "latest") != 0)) {
        fprintf(stderr, "usage: bench_keyed URL publish|latest N [CLIENTS [IN_FLIGHT]]\n");
        return 2;
    }
    bool publish = strcmp(argv[2], "publish") == 0;
    long n = strtol(argv[3], NULL, 10), nc = argc >= 5 ? strtol(argv[4], NULL, 10) : 1;
    long window = argc == 6 ? strtol(argv[5], NULL, 10) : 0;
    if (n < 1 || nc < 1 || nc > 1024 || window < 0 || window > 65536) {
        fprintf(stderr, "bench_keyed: N >= 1, 1 <= CLIENTS <= 1024, 0 <= IN_FLIGHT <= 65536\n");
        return 2;
    }
    bp_error err = {0};
    bp_keyed *k = NULL;
    int64_t *lat = calloc((size_t)n, sizeof(*lat)), *stamps = calloc((size_t)n, sizeof(*lat));
    client *cs = calloc((size_t)nc, sizeof(*cs));
    int rc = lat && cs && stamps ? bp_keyed_open(argv[1], &k, &err)
                                 : bp_error_set(&err, BP_ENOMEM, "no memory");
    if (rc == 0 && !publish) /* something to read */
        rc = one(k, true, 0, &err);
    int64_t t0 = now_ns(), c0 = cpu_ns();
    long started = 0;
    for (long i = 0, at = 0; rc == 0 && i < nc; i++) {
        long share = n / nc + (i < n % nc);
        cs[i] = (client){.url = argv[1],
                         .publish = publish,
                         .first = at,
                         .n = share,
                         .window = window,
                         .lat = lat + at,
                         .started = stamps + at};
        at += share;
        if (pthread_create(&cs[i].tid, NULL, client_main, &cs[i]) != 0)
            rc = bp_error_set(&err, BP_ENOMEM, "cannot start client %ld", i);
        else
            started++;
    }
    for (long i = 0; i < started; i++) {
        pthread_join(cs[i].tid, NULL);
        if (rc == 0 && cs[i].rc != 0) {
            rc = cs[i].rc;
            err = cs[i].err;
        }
    }
    int64_t t1 = now_ns(), c1 = cpu_ns();
    if (rc == 0) {
        double sum = 0;
        for (long i = 0; i < n; i++)
            sum += (double)lat[i];
        qsort(lat, (size_t)n, sizeof(*lat), cmp_i64);
        double s = (double)(t1 - t0) / 1e9;
        printf(
            "clients=%ld window=%ld ops=%ld seconds=%.3f ops_per_s=%.0f mean_us=%.1f p50_us=%.1f "
            "p99_us=%.1f cpu_us_per_op=%.1f\n",
            nc, window, n, s, (double)n / s, sum / (double)n / 1e3, (double)lat[n / 2] / 1e3,
            (double)lat[(size_t)((double)n * 0.99)] / 1e3, (double)(c1 - c0) / (double)n / 1e3);
    }
    if (rc != 0)
        fprintf(stderr, "bench_keyed: %s\n", err.msg);
    bp_keyed_close(k);
    free(lat);
    free(stamps);
    free(cs);
    return rc == 0 ? 0 : 1;
}
