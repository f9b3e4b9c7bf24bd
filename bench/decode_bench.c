/* decode_bench.c - in-memory cost of each decoding layer over one recorded batch answer
 * [eth_getBlockByNumber(n, true), eth_getBlockReceipts(n)]:
 *   sax        yajl's SAX parser with empty callbacks (yajl's floor: lexing and validation)
 *   jp_sax     bp_jp (jsonparse.c, what bp_json runs on) with empty callbacks: our floor
 *   yajl_tree  yajl_tree_parse + yajl_tree_free (what blockpipe used before bp_json)
 *   bp_json    bp_json_parse + bp_json_free
 *   decode     bp_decode_rpc_response + bp_decode_block + bp_decode_block_receipts + frees
 *   decode_zc  the same zero-copy: the text copied into a fresh malloc'd body (standing in for
 *              the HTTP answer), parsed in place, the block adopting it (fetch before streaming)
 *   decode_stream  as fetch runs it: the text fed in 16 KiB pieces (curl's write size) to
 *              bp_json_stream, transactions and receipts decoded as they arrive
 * One `name=value` line per figure, after bytes=, txs= and arena_bytes= (the block's arena
 * after a streamed decode: what the memory budget counts); decode_vs_sax is decode's MB/s
 * over sax's, jp_sax_vs_sax our lexer's over yajl's, decode_vs_jp_sax decode's over our lexer's
 * (how much the work on top of reading the JSON costs). bench/ingest_bench.py runs one figure per
 * process (FIGURE) for each one's peak RSS and computes the ratios itself.
 *
 * usage: bench_decode FILE [SECONDS_PER_FIGURE [FIGURE]]   (FIGURE alone: for perf record;
 * record FILE with curl, see bench/run.sh)
 *        bench_decode FILE --resident K   (what K decoded blocks add to the resident set,
 *        against what the memory budget charges them: see resident() below) */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_parse.h>

#include "blockpipe/model.h"
#include "chain/decode.h"
#include "chain/decode_stream.h"
#include "chain/rpc_envelope.h"
#include "chain/json.h"
#include "chain/jsonparse.h"
#include "core/budget.h"
#include "util/arena.h"

#define ROUNDS 3

typedef bool (*bench_fn)(const char *text, size_t len);

static int on_null(void *ctx)
{
    (void)ctx;
    return 1;
}

static int on_bool(void *ctx, int b)
{
    (void)ctx;
    (void)b;
    return 1;
}

static int on_number(void *ctx, const char *s, size_t len)
{
    (void)ctx;
    (void)s;
    (void)len;
    return 1;
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
    (void)ctx;
    (void)s;
    (void)len;
    return 1;
}

/* Empty but present: yajl skips unescaping strings when there is no string callback. */
static const yajl_callbacks empty_callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_bool,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_null,
    .yajl_map_key = on_string,
    .yajl_end_map = on_null,
    .yajl_start_array = on_null,
    .yajl_end_array = on_null,
};

static bool run_sax(const char *text, size_t len)
{
    yajl_handle h = yajl_alloc(&empty_callbacks, NULL, NULL);
    if (!h)
        return false;
    yajl_config(h, yajl_allow_comments, 1);
    bool ok = yajl_parse(h, (const unsigned char *)text, len) == yajl_status_ok &&
              yajl_complete_parse(h) == yajl_status_ok;
    yajl_free(h);
    return ok;
}

static const bp_jp_callbacks jp_empty = {
    .null = on_null,
    .boolean = on_bool,
    .number = on_number,
    .string = on_string,
    .start_map = on_null,
    .map_key = on_string,
    .end_map = on_null,
    .start_array = on_null,
    .end_array = on_null,
};

static bool run_jp_sax(const char *text, size_t len)
{
    bp_jp *p = malloc(sizeof(*p));
    if (!p)
        return false;
    bp_jp_init(p, &jp_empty, NULL);
    bool ok = bp_jp_feed(p, text, len) == 0 && bp_jp_finish(p) == 0;
    bp_jp_release(p);
    free(p);
    return ok;
}

static bool run_yajl_tree(const char *text, size_t len)
{
    (void)len; /* text is NUL-terminated by read_file */
    yajl_val v = yajl_tree_parse(text, NULL, 0);
    yajl_tree_free(v);
    return v != NULL;
}

static bool run_bp_json(const char *text, size_t len)
{
    yajl_val v = bp_json_parse(text, len, NULL, 0);
    bp_json_free(v);
    return v != NULL;
}

static bool run_decode(const char *text, size_t len)
{
    yajl_val root, results[2], errors[2];
    bp_error err = {0};
    if (bp_decode_rpc_response(text, len, 2, &root, results, errors, &err) != 0) {
        fprintf(stderr, "decode: %s\n", err.msg);
        return false;
    }
    bp_block *b = bp_block_new();
    int rc = b ? bp_decode_block(results[0], true, b, &err) : BP_ENOMEM;
    if (rc == 0)
        rc = bp_decode_block_receipts(results[1], b, &err);
    if (rc != 0)
        fprintf(stderr, "decode: %s\n", err.msg);
    bp_block_free(b);
    bp_json_free(root);
    return rc == 0;
}

static bool run_decode_zc(const char *text, size_t len)
{
    yajl_val root, results[2], errors[2];
    bp_error err = {0};
    bp_body body = {malloc(len + 1), len};
    bp_block *b = bp_block_new();
    if (!body.data || !b || bp_arena_adopt(b->arena, body.data) != 0) {
        free(body.data);
        bp_block_free(b);
        return false;
    }
    memcpy(body.data, text, len + 1);
    int rc = bp_decode_rpc_response_inplace(body.data, len, 2, &root, results, errors, &err);
    if (rc == 0)
        rc = bp_decode_block_in(results[0], true, &body, b, &err);
    if (rc == 0)
        rc = bp_decode_block_receipts_in(results[1], &body, b, &err);
    if (rc != 0)
        fprintf(stderr, "decode_zc: %s\n", err.msg);
    bp_json_free(root);
    bp_block_free(b);
    return rc == 0;
}

#define STREAM_PIECE 16384

/* One streamed decode; *used (may be NULL) gets the block's arena bytes and *txs its
 * transactions, read before the block is freed; with keep the block is not freed but handed
 * there (NULL on failure). */
static bool decode_stream_keep(const char *text, size_t len, size_t *used, size_t *txs,
                               bp_block **keep)
{
    bp_block_stream bs;
    bp_stream_route sr = {.bs = &bs, .count = 1, .per = 2};
    yajl_val root = NULL, results[2], errors[2];
    bp_error err = {0};
    bp_block *b = bp_block_new();
    bp_json_stream *s = b ? bp_json_stream_new(&bp_stream_route_ops, &sr) : NULL;
    int rc = s ? 0 : BP_ENOMEM;
    bp_block_stream_init(&bs, b);
    for (size_t off = 0; rc == 0 && off < len; off += STREAM_PIECE)
        rc =
            bp_json_stream_feed(s, text + off, len - off < STREAM_PIECE ? len - off : STREAM_PIECE);
    if (rc == 0)
        root = bp_json_stream_finish(s, err.msg, sizeof(err.msg));
    if (rc == 0 && root)
        rc = bp_decode_rpc_tree(root, 2, results, errors, &err);
    else
        rc = BP_EPARSE;
    if (rc == 0)
        rc = bp_decode_block_streamed(results[0], true, &bs, &err);
    if (rc == 0)
        rc = bp_decode_receipts_streamed(results[1], &bs, &err);
    if (rc != 0)
        fprintf(stderr, "decode_stream: %s\n", err.msg);
    bp_block_stream_release(&bs);
    bp_json_stream_free(s);
    bp_json_free(root);
    if (rc == 0 && used)
        *used = bp_arena_held(b->arena);
    if (rc == 0 && txs)
        *txs = b->tx_count;
    if (keep && rc == 0)
        *keep = b;
    else
        bp_block_free(b);
    return rc == 0;
}

static bool decode_stream_once(const char *text, size_t len, size_t *used, size_t *txs)
{
    return decode_stream_keep(text, len, used, txs, NULL);
}

static bool run_decode_stream(const char *text, size_t len)
{
    return decode_stream_once(text, len, NULL, NULL);
}

/* A field of /proc/self/status in bytes (RssAnon: what the process allocated; VmHWM, VmRSS). */
static size_t status_bytes(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256], fmt[64];
    size_t kib = 0;
    snprintf(fmt, sizeof(fmt), "%s: %%zu", field);
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, fmt, &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib << 10;
}

static size_t rss_anon(void)
{
    return status_bytes("RssAnon");
}

/* Resets VmHWM to the current VmRSS (Linux: clear_refs 5). */
static void reset_hwm(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

/* --resident K: what a decoded block costs in resident memory against what the memory budget
 * charges it (src/core/budget.c variable_cost). With blockpipe's malloc settings, the blocks
 * are decoded one after another (as a fetch worker does, streamed) and kept (as the reorder
 * window and the batches keep them), twice: the first round on a fresh heap, the second after
 * the first's blocks were freed (malloc's heaps as a running backfill leaves them). Per block:
 * the RssAnon it added, bp_arena_held (what the budget counts before its margin) and the
 * budget's charge; then what stays resident once they are freed. */
static int resident(const char *text, size_t len, int k)
{
    bp_budget_tune_malloc();
    bp_block **blocks = calloc((size_t)k, sizeof(*blocks));
    if (!blocks)
        return 1;
    size_t txs = 0, base = rss_anon();
    printf("bytes=%zu\nbase_rss_anon=%zu\n", len, base);
    for (int round = 1; round <= 2; round++) {
        size_t r0 = rss_anon(), held = 0, cost = 0;
        reset_hwm();
        for (int i = 0; i < k; i++) {
            size_t used = 0;
            if (!decode_stream_keep(text, len, &used, &txs, &blocks[i])) {
                fprintf(stderr, "cannot decode the answer\n");
                return 1;
            }
            held += used;
            cost += bp_budget_block_cost(blocks[i]);
        }
        size_t r1 = rss_anon(), added = r1 > r0 ? r1 - r0 : 0;
        /* the decoding's own peak on top of the blocks it leaves (parser, vectors moving) */
        long long transient = (long long)status_bytes("VmHWM") - (long long)status_bytes("VmRSS");
        for (int i = 0; i < k; i++)
            bp_block_free(blocks[i]);
        size_t r2 = rss_anon();
        printf("round=%d txs=%zu blocks=%d arena_held=%zu rss_added=%zu budget_cost=%zu "
               "rss_over_held=%.4f rss_over_cost=%.4f beyond_arena_per_block=%lld "
               "kept_after_free=%lld decode_peak_over_kept=%lld\n",
               round, txs, k, held / (size_t)k, added / (size_t)k, cost / (size_t)k,
               (double)added / (double)held, (double)added / (double)cost,
               ((long long)added - (long long)held) / k, (long long)r2 - (long long)r0, transient);
    }
    free(blocks);
    return 0;
}

/* The process's CPU time (user + system, page faults included): on a shared machine the wall
 * clock also counts the time other processes had the core. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Best of ROUNDS rounds of at least secs / ROUNDS CPU seconds each, in MB/s (10^6 bytes per CPU
 * second); < 0 on failure. */
static double measure(bench_fn fn, const char *text, size_t len, double secs)
{
    double best = 0;
    if (!fn(text, len)) /* warm-up, and the input must be valid */
        return -1;
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = now_s(), t;
        long n = 0;
        do {
            if (!fn(text, len))
                return -1;
            n++;
        } while ((t = now_s() - t0) < secs / ROUNDS);
        double mbs = (double)len * (double)n / t / 1e6;
        best = mbs > best ? mbs : best;
    }
    return best;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0)
        buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = '\0';
        *len = (size_t)n;
    } else {
        free(buf);
        buf = NULL;
    }
    if (f)
        fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: %s FILE [SECONDS_PER_FIGURE [FIGURE]] | FILE --resident K\n",
                argv[0]);
        return 2;
    }
    size_t len;
    char *text = read_file(argv[1], &len);
    if (text && argc == 4 && strcmp(argv[2], "--resident") == 0) {
        int rc = resident(text, len, atoi(argv[3]) > 0 ? atoi(argv[3]) : 1);
        free(text);
        return rc;
    }
    double secs = argc >= 3 ? atof(argv[2]) : 3.0;
    const char *only = argc == 4 ? argv[3] : NULL;
    if (!text) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }
    static const struct {
        const char *name;
        bench_fn fn;
    } figs[] = {
        {"sax", run_sax},       {"yajl_tree", run_yajl_tree}, {"bp_json", run_bp_json},
        {"decode", run_decode}, {"decode_zc", run_decode_zc}, {"decode_stream", run_decode_stream},
        {"jp_sax", run_jp_sax}};
    double mbs[7] = {0};
    size_t used = 0, txs = 0;
    if (!decode_stream_once(text, len, &used, &txs)) {
        fprintf(stderr, "cannot decode %s\n", argv[1]);
        free(text);
        return 1;
    }
    /* the block as fetch leaves it (streamed): what the memory budget counts per block */
    printf("bytes=%zu\ntxs=%zu\narena_bytes=%zu\n", len, txs, used);
    for (size_t i = 0; i < 7; i++) {
        if (only && strcmp(only, figs[i].name) != 0)
            continue;
        mbs[i] = measure(figs[i].fn, text, len, secs);
        if (mbs[i] < 0) {
            fprintf(stderr, "%s failed on %s\n", figs[i].name, argv[1]);
            free(text);
            return 1;
        }
        printf("%s_mb_s=%.1f\n", figs[i].name, mbs[i]);
    }
    if (only) {
        free(text);
        return 0;
    }
    printf("decode_blocks_s=%.0f\n", mbs[3] * 1e6 / (double)len);
    printf("bp_json_vs_yajl_tree=%.2f\n", mbs[2] / mbs[1]);
    printf("decode_vs_sax=%.2f\n", mbs[3] / mbs[0]);
    printf("decode_zc_blocks_s=%.0f\n", mbs[4] * 1e6 / (double)len);
    printf("decode_zc_vs_sax=%.2f\n", mbs[4] / mbs[0]);
    printf("decode_stream_blocks_s=%.0f\n", mbs[5] * 1e6 / (double)len);
    printf("decode_stream_vs_sax=%.2f\n", mbs[5] / mbs[0]);
    printf("jp_sax_vs_sax=%.2f\n", mbs[6] / mbs[0]);
    printf("decode_vs_jp_sax=%.2f\n", mbs[3] / mbs[6]);
    printf("decode_zc_vs_jp_sax=%.2f\n", mbs[4] / mbs[6]);
    printf("decode_stream_vs_jp_sax=%.2f\n", mbs[5] / mbs[6]);
    free(text);
    return 0;
}
