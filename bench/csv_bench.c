/* csv_bench.c - CPU the etl-csv output spends per block, without the network or the decoder:
 * simnode's blocks (with receipts) are decoded once, then written again and again through the
 * real etl-csv sink into a fresh directory (put it on a tmpfs, e.g. /dev/shm, so the disk
 * does not blur the figure). Only the sink's write() calls are timed, with the calling
 * thread's own CPU clock (user + sys: formatting and the write() copies), after one warm-up
 * round on the same sink.
 *
 * Prints `blocks=.. bytes=.. best_us_per_block=.. median_us_per_block=.. mb_per_s=..`.
 *
 * usage: bench_csv DIR [BLOCKS [TXS_PER_BLOCK [ROUNDS [BATCH]]]]
 *   defaults: 200 blocks of 200 txs, 7 rounds, 100 blocks per batch. DIR is emptied first
 *   and at the end (it must not hold anything else); it grows by every round. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blockpipe/model.h"
#include "blockpipe/sink.h"
#include "chain/decode.h"
#include "chain/rpc_envelope.h"
#include "chain/json.h"
#include "sim/node.h"

static const char *const g_files[] = {"blocks.csv",         "transactions.csv", "receipts.csv",
                                      "logs.csv",           "reverts.csv",      "checkpoint.json",
                                      "checkpoint.json.tmp"};

static bp_block *fetch_block(const bp_sim_chain *c, uint64_t n, bp_buf *out)
{
    char body[256];
    snprintf(body, sizeof(body),
             "[{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"eth_getBlockByNumber\",\"params\":"
             "[\"0x%llx\",true]},{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
             "\"eth_getBlockReceipts\",\"params\":[\"0x%llx\"]}]",
             (unsigned long long)n, (unsigned long long)n);
    bp_sim_scratch s;
    bp_sim_scratch_init(&s);
    bp_sim_request r = {.chain = c, .head = bp_sim_chain_head(c, 0), .scratch = &s};
    bp_buf_reset(out);
    yajl_val root = NULL, results[2], errors[2];
    bp_error err = {0};
    bp_block *b = bp_block_new();
    int rc = b ? bp_sim_answer(&r, body, strlen(body), out) : BP_ENOMEM;
    if (rc == 0)
        rc = bp_decode_rpc_response(out->data, out->len, 2, &root, results, errors, &err);
    if (rc == 0)
        rc = bp_decode_block(results[0], true, b, &err);
    if (rc == 0)
        rc = bp_decode_block_receipts(results[1], b, &err);
    bp_json_free(root);
    bp_sim_scratch_release(&s);
    if (rc != 0) {
        fprintf(stderr, "block %llu: %s (%d)\n", (unsigned long long)n, err.msg, rc);
        bp_block_free(b);
        return NULL;
    }
    return b;
}

static double thread_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void empty_dir(const char *dir)
{
    char path[4096];
    for (size_t i = 0; i < sizeof(g_files) / sizeof(g_files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, g_files[i]);
        unlink(path);
    }
}

/* One round: every block once, BATCH per write(). Returns the CPU microseconds, < 0 on error. */
static double round_us(bp_sink *s, bp_block **blocks, size_t n, size_t batch_size)
{
    bp_event *ev = calloc(batch_size, sizeof(*ev));
    bp_error err = {0};
    double us = 0;
    int rc = ev ? 0 : BP_ENOMEM;
    for (size_t i = 0; i < n && rc == 0; i += batch_size) {
        size_t k = n - i < batch_size ? n - i : batch_size;
        for (size_t j = 0; j < k; j++)
            ev[j] = (bp_event){BP_EVENT_APPLY, blocks[i + j]};
        bp_batch b = {.chain = "bench", .chain_id = 1337, .events = ev, .count = k};
        b.checkpoint.set = true;
        b.checkpoint.number = blocks[i + k - 1]->number;
        snprintf(b.checkpoint.hash, sizeof(b.checkpoint.hash), "%s", blocks[i + k - 1]->hash);
        double t0 = thread_cpu_us();
        rc = s->ops->write(s, &b, &err);
        us += thread_cpu_us() - t0;
    }
    if (rc != 0)
        fprintf(stderr, "write: %s\n", err.msg);
    free(ev);
    return rc == 0 ? us : -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static long long dir_bytes(const char *dir)
{
    char path[4096];
    long long total = 0;
    for (size_t i = 0; i < 5; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, g_files[i]);
        FILE *f = fopen(path, "rb");
        if (f && fseek(f, 0, SEEK_END) == 0)
            total += ftell(f);
        if (f)
            fclose(f);
    }
    return total;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 6) {
        fprintf(stderr, "usage: %s DIR [BLOCKS [TXS_PER_BLOCK [ROUNDS [BATCH]]]]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 200;
    uint32_t txs = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 200;
    int rounds = argc > 4 ? atoi(argv[4]) : 7;
    size_t batch = argc > 5 ? strtoul(argv[5], NULL, 10) : 100;
    if (n == 0 || rounds <= 0 || rounds > 1000 || batch == 0)
        return 2;
    bp_sim_params p = {.seed = 1, .length = n, .txs_min = txs, .txs_max = txs, .chain_id = 1337};
    bp_sim_chain c;
    bp_error err = {0};
    if (bp_sim_chain_init(&c, &p, 0, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    bp_block **blocks = calloc(n, sizeof(*blocks));
    bp_buf text;
    bp_buf_init(&text, 0);
    for (size_t i = 0; blocks && i < n; i++)
        if (!(blocks[i] = fetch_block(&c, i, &text)))
            return 1;
    /* One sink for every round, as in a run: its buffers are grown by the first round. */
    char url[4200];
    snprintf(url, sizeof(url), "etl-csv:%s", dir);
    empty_dir(dir);
    bp_sink *s = NULL;
    if (bp_sink_open_url(url, &s, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double *us = calloc((size_t)rounds + 1, sizeof(*us));
    for (int r = 0; us && r <= rounds; r++)
        if ((us[r] = round_us(s, blocks, n, batch)) < 0)
            return 1;
    bp_sink_close(s);
    long long bytes = dir_bytes(dir) / (rounds + 1);
    us++; /* the warm-up round */
    qsort(us, (size_t)rounds, sizeof(*us), cmp_double);
    printf("blocks=%zu bytes=%lld best_us_per_block=%.1f median_us_per_block=%.1f "
           "mb_per_s=%.0f\n",
           n, bytes, us[0] / (double)n, us[rounds / 2] / (double)n, (double)bytes / us[0]);
    empty_dir(dir);
    for (size_t i = 0; i < n; i++)
        bp_block_free(blocks[i]);
    free(blocks);
    free(us - 1);
    bp_buf_release(&text);
    bp_sim_chain_release(&c);
    return 0;
}
