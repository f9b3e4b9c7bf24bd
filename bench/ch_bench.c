/* ch_bench.c - the ClickHouse output's speed: synthetic blocks through the sink, and the same
 * rows sent by a plain HTTP client (libcurl, one kept-alive connection) in the same format and
 * batches, driven by bench/clickhouse_bench.py.
 *
 *   ch_bench sink URL BLOCKS TXS_PER_BLOCK BATCH   blocks through the clickhouse output, BATCH
 *                                                  blocks per write
 *   ch_bench insert BASE DIR BATCHES FMT           per batch i, per table t: POST
 *       BASE&query=INSERT INTO t FORMAT FMT with the body DIR/<i>.<t> (BASE is
 *       "http://user:pass@host:port/?database=DB"): nothing but the rows
 * sink prints "rows=N seconds=S rows_per_s=R cpu=C", insert "bytes=N seconds=S cpu=C"; seconds
 * (and cpu, the client's CPU seconds) count only the work with the server (blocks are built,
 * files read, before each batch's clock starts). */
#include <curl/curl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "synth.h"
#include "util/buf.h"

static const char *const g_tables[] = {"blocks", "transactions", "logs"};
#define TABLES 3

static size_t discard(char *p, size_t size, size_t n, void *user)
{
    bp_buf *b = user;
    (void)p;
    if (b->len < 2000)
        bp_buf_append(b, p, size * n < 2000 ? size * n : 2000);
    return size * n;
}

/* One INSERT of data into table; the server's answer goes to answer. */
static bool insert(CURL *c, const char *base, const char *table, const char *fmt,
                   const bp_buf *data, bp_buf *answer)
{
    char sql[256], url[4096];
    snprintf(sql, sizeof(sql), "INSERT INTO %s FORMAT %s", table, fmt);
    char *q = curl_easy_escape(c, sql, 0);
    snprintf(url, sizeof(url), "%s&query=%s", base, q ? q : "");
    curl_free(q);
    bp_buf_reset(answer);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, data->data ? data->data : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)data->len);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (cc != CURLE_OK || status != 200)
        fprintf(stderr, "ch_bench: INSERT INTO %s: %s HTTP %ld %.500s\n", table,
                curl_easy_strerror(cc), status, answer->data ? answer->data : "");
    return cc == CURLE_OK && status == 200;
}

static int bench_insert(const char *base, const char *dir, size_t batches, const char *fmt)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    bp_buf data[TABLES], answer;
    for (int t = 0; t < TABLES; t++)
        bp_buf_init(&data[t], 0);
    bp_buf_init(&answer, 0);
    bool ok = c && h;
    if (ok) {
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer);
        curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    }
    uint64_t bytes = 0;
    double secs = 0, cpu = 0;
    for (size_t i = 0; ok && i < batches; i++) {
        for (int t = 0; ok && t < TABLES; t++)
            ok = bench_slurp("ch_bench", dir, i, g_tables[t], &data[t]);
        double t0 = bench_now_s(), c0 = bench_cpu_s();
        for (int t = 0; ok && t < TABLES; t++) {
            ok = data[t].len == 0 || insert(c, base, g_tables[t], fmt, &data[t], &answer);
            bytes += data[t].len;
        }
        secs += bench_now_s() - t0;
        cpu += bench_cpu_s() - c0;
    }
    if (ok)
        printf("bytes=%" PRIu64 " seconds=%.3f cpu=%.3f\n", bytes, secs, cpu);
    for (int t = 0; t < TABLES; t++)
        bp_buf_release(&data[t]);
    bp_buf_release(&answer);
    curl_slist_free_all(h);
    if (c)
        curl_easy_cleanup(c);
    return !ok;
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "sink") == 0)
        return bench_sink("ch_bench", argv[2], strtoull(argv[3], NULL, 10),
                          strtoul(argv[4], NULL, 10), strtoul(argv[5], NULL, 10));
    if (argc == 6 && strcmp(argv[1], "insert") == 0)
        return bench_insert(argv[2], argv[3], strtoul(argv[4], NULL, 10), argv[5]);
    fprintf(stderr, "usage: ch_bench sink URL BLOCKS TXS BATCH | insert BASE DIR BATCHES FMT\n");
    return 2;
}
