/* curl_loop.c - the source-bound baseline: a plain libcurl loop that fetches the same
 * methods for the same blocks with the same concurrency and the same blocks per request as
 * `blockpipe backfill`, and discards the bytes. blockpipe's rate divided by this one is the
 * "source-bound" ratio.
 *
 * One request is the JSON-RPC batch [eth_getBlockByNumber(n, true), eth_getBlockReceipts(n)]
 * for each of its blocks. Like blockpipe's scheduler, the last blocks are spread over every
 * thread (a request takes at most remaining / THREADS blocks, rounded up) so the run does not
 * end waiting on one long request.
 *
 * usage: bench_curl_loop URL FROM TO THREADS [BLOCKS_PER_REQUEST]   (default 1)
 *
 * Replay (a family whose requests depend on earlier answers, e.g. Arch: get_block_hash, then
 * get_block of those hashes, then get_processed_transaction of the txids they list):
 *        bench_curl_loop --replay FILE URL THREADS
 * FILE: one job per line, "BLOCKS<TAB>BODY<RS>BODY..." (RS: byte 0x1e), made by the caller from
 * the node's answers beforehand; the threads take the jobs in order and send a job's bodies one
 * after another, as blockpipe's fetch of one chunk does. */
#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#define MAX_PER_REQUEST 1024
#define CALL_MAX 160 /* one call's JSON text */

static const char *g_url;
static uint64_t g_to;
static uint64_t g_per_request;
static uint64_t g_threads;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t g_next; /* under g_lock */
static atomic_uint_fast64_t g_bytes;
static atomic_uint_fast64_t g_requests;

static size_t discard(char *p, size_t sz, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    atomic_fetch_add(&g_bytes, sz * n);
    return sz * n;
}

/* The next request's first block and count; false when every block was taken. */
static int take(uint64_t *first, uint64_t *count)
{
    pthread_mutex_lock(&g_lock);
    int ok = g_next <= g_to;
    if (ok) {
        uint64_t left = g_to - g_next + 1;
        uint64_t share = (left + g_threads - 1) / g_threads;
        *first = g_next;
        *count = share < g_per_request ? share : g_per_request;
        g_next += *count;
    }
    pthread_mutex_unlock(&g_lock);
    return ok;
}

static void *loop(void *arg)
{
    (void)arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char *body = malloc(2 * CALL_MAX * g_per_request + 3);
    if (!c || !h || !body) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    curl_easy_setopt(c, CURLOPT_URL, g_url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    uint64_t first, count;
    while (take(&first, &count)) {
        size_t len = 0;
        body[len++] = '[';
        for (uint64_t i = 0; i < count; i++) {
            uint64_t n = first + i;
            len += (size_t)snprintf(
                body + len, 2 * CALL_MAX + 1,
                "%s{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64 ",\"method\":\"eth_getBlockByNumber\","
                "\"params\":[\"0x%" PRIx64 "\",true]},{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64 ","
                "\"method\":\"eth_getBlockReceipts\",\"params\":[\"0x%" PRIx64 "\"]}",
                i ? "," : "", 2 * i, n, 2 * i + 1, n);
        }
        body[len++] = ']';
        body[len] = '\0';
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        long status = 0;
        if (curl_easy_perform(c) != CURLE_OK ||
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status != 200) {
            fprintf(stderr, "blocks %" PRIu64 "..%" PRIu64 ": request failed (HTTP %ld)\n", first,
                    first + count - 1, status);
            exit(1);
        }
        atomic_fetch_add(&g_requests, 1);
    }
    free(body);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

/* ---- replay ---- */

static char **g_jobs;                  /* each: "BLOCKS\tBODY\x1eBODY..." */
static size_t g_job_count, g_job_next; /* under g_lock */
static uint64_t g_replay_blocks;

static char *take_job(void)
{
    pthread_mutex_lock(&g_lock);
    char *j = g_job_next < g_job_count ? g_jobs[g_job_next++] : NULL;
    pthread_mutex_unlock(&g_lock);
    return j;
}

static void *replay_loop(void *arg)
{
    (void)arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (!c || !h) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    curl_easy_setopt(c, CURLOPT_URL, g_url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    for (char *job; (job = take_job());) {
        for (char *body = strchr(job, '\t') + 1, *next; body; body = next) {
            next = strchr(body, '\x1e');
            if (next)
                *next++ = '\0';
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
            long status = 0;
            if (curl_easy_perform(c) != CURLE_OK ||
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK ||
                status != 200) {
                fprintf(stderr, "replay: request failed (HTTP %ld)\n", status);
                exit(1);
            }
            atomic_fetch_add(&g_requests, 1);
        }
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

/* Reads FILE's jobs (their bodies modified in place while sent: each is sent once). */
static int load_jobs(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n')
            line[--n] = '\0';
        if (!strchr(line, '\t'))
            continue;
        char **j = realloc(g_jobs, (g_job_count + 1) * sizeof(*j));
        if (!j || !(j[g_job_count] = strdup(line)))
            return -1;
        g_jobs = j;
        g_replay_blocks += strtoull(line, NULL, 10);
        g_job_count++;
    }
    free(line);
    fclose(f);
    return g_job_count ? 0 : -1;
}

/* Runs fn on `threads` threads (1..256) to the end and prints the result line the benches
 * read: `blocks` fetched over the wall time. */
static void run_threads(void *(*fn)(void *), int threads, uint64_t blocks)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pthread_t t[256];
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, fn, NULL);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    printf("blocks=%" PRIu64 " seconds=%.3f blocks/s=%.1f bytes=%" PRIuFAST64
           " requests=%" PRIuFAST64 "\n",
           blocks, s, (double)blocks / s, atomic_load(&g_bytes), atomic_load(&g_requests));
}

static int replay(int argc, char **argv)
{
    int threads = argc == 5 ? atoi(argv[4]) : 0;
    if (threads < 1 || threads > 256) {
        fprintf(stderr, "usage: %s --replay FILE URL THREADS (1..256)\n", argv[0]);
        return 2;
    }
    if (load_jobs(argv[2]) != 0) {
        fprintf(stderr, "%s: cannot read jobs from %s\n", argv[0], argv[2]);
        return 2;
    }
    g_url = argv[3];
    curl_global_init(CURL_GLOBAL_DEFAULT);
    run_threads(replay_loop, threads, g_replay_blocks);
    for (size_t i = 0; i < g_job_count; i++)
        free(g_jobs[i]);
    free(g_jobs);
    curl_global_cleanup();
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--replay") == 0)
        return replay(argc, argv);
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: %s URL FROM TO THREADS [BLOCKS_PER_REQUEST]\n", argv[0]);
        return 2;
    }
    g_url = argv[1];
    g_next = strtoull(argv[2], NULL, 10);
    g_to = strtoull(argv[3], NULL, 10);
    int threads = atoi(argv[4]);
    g_per_request = argc == 6 ? strtoull(argv[5], NULL, 10) : 1;
    if (threads < 1 || threads > 256 || g_to < g_next || g_per_request < 1 ||
        g_per_request > MAX_PER_REQUEST) {
        fprintf(stderr, "%s: need FROM <= TO, THREADS 1..256, BLOCKS_PER_REQUEST 1..%d\n", argv[0],
                MAX_PER_REQUEST);
        return 2;
    }
    g_threads = (uint64_t)threads;
    uint64_t blocks = g_to - g_next + 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    run_threads(loop, threads, blocks);
    curl_global_cleanup();
    return 0;
}
