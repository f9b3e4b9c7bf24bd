/* curl_loop.c - the source-bound baseline: a plain libcurl loop that fetches the same
 * methods for the same blocks with the same concurrency as `blockpipe backfill`, and
 * discards the bytes. blockpipe's rate divided by this one is the "source-bound" ratio.
 *
 * usage: bench_curl_loop URL FROM TO THREADS */
#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const char *g_url;
static uint64_t g_to;
static atomic_uint_fast64_t g_next;
static atomic_uint_fast64_t g_bytes;

static size_t discard(char *p, size_t sz, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    atomic_fetch_add(&g_bytes, sz * n);
    return sz * n;
}

static void *loop(void *arg)
{
    (void)arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, g_url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    char body[256];
    for (;;) {
        uint64_t n = atomic_fetch_add(&g_next, 1);
        if (n > g_to)
            break;
        snprintf(body, sizeof(body),
                 "[{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"eth_getBlockByNumber\","
                 "\"params\":[\"0x%" PRIx64 "\",true]},{\"jsonrpc\":\"2.0\",\"id\":1,"
                 "\"method\":\"eth_getBlockReceipts\",\"params\":[\"0x%" PRIx64 "\"]}]",
                 n, n);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        if (curl_easy_perform(c) != CURLE_OK) {
            fprintf(stderr, "block %" PRIu64 ": request failed\n", n);
            exit(1);
        }
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s URL FROM TO THREADS\n", argv[0]);
        return 2;
    }
    g_url = argv[1];
    atomic_store(&g_next, strtoull(argv[2], NULL, 10));
    g_to = strtoull(argv[3], NULL, 10);
    int threads = atoi(argv[4]);
    uint64_t blocks = g_to - atomic_load(&g_next) + 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pthread_t t[256];
    for (int i = 0; i < threads && i < 256; i++)
        pthread_create(&t[i], NULL, loop, NULL);
    for (int i = 0; i < threads && i < 256; i++)
        pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    printf("blocks=%" PRIu64 " seconds=%.3f blocks/s=%.1f bytes=%" PRIuFAST64 "\n", blocks, s,
           (double)blocks / s, atomic_load(&g_bytes));
    curl_global_cleanup();
    return 0;
}
