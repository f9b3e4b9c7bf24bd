/* synth.c - synthetic blocks for the output benchmarks (pg_bench, ch_bench) and the timed
 * writer that sends them through any output. */
#include "synth.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/arena.h"
#include "util/hex.h"

double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double bench_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* "0x" + nbytes pseudo-random bytes derived from seed. */
static const char *rnd_hex(bp_block *b, uint64_t seed, size_t nbytes)
{
    char *s = bp_arena_alloc(b->arena, 2 + 2 * nbytes + 1);
    static const char digits[] = "0123456789abcdef";
    s[0] = '0';
    s[1] = 'x';
    for (size_t i = 0; i < nbytes; i++) {
        uint64_t r = mix(seed + i / 8) >> (8 * (i % 8));
        s[2 + 2 * i] = digits[(r >> 4) & 15];
        s[3 + 2 * i] = digits[r & 15];
    }
    s[2 + 2 * nbytes] = '\0';
    return s;
}

/* The same kept as bytes, as the decoder keeps r, s and a receipt's bloom. */
static const bp_hexb *rnd_hexb(bp_block *b, uint64_t seed, size_t nbytes)
{
    const char *s = rnd_hex(b, seed, nbytes);
    return bp_hexb_make(b->arena, s, strlen(s));
}

static bp_qty qty(uint64_t lo, uint64_t hi)
{
    bp_qty q = {.set = true};
    q.v.w[0] = lo;
    q.v.w[1] = hi;
    return q;
}

static void fill_tx(bp_block *b, bp_tx *t, size_t i)
{
    uint64_t k = b->number * 100000 + i;
    t->hash = rnd_hex(b, k * 7 + 1, 32);
    t->block_hash = b->hash;
    t->block_number = b->number;
    t->block_timestamp = b->timestamp;
    t->transaction_index = i;
    t->from_address = rnd_hex(b, 1000000 + mix(k) % 5000, 20); /* 5,000 senders */
    t->to_address = rnd_hex(b, 2000000 + mix(k + 1) % 20000, 20);
    t->nonce = mix(k) % 100000;
    t->gas = 21000 + mix(k + 2) % 300000;
    t->value = qty(mix(k + 3), i % 4 == 0 ? mix(k + 4) % 1000 : 0);
    t->gas_price = qty(1000000000 + mix(k + 5) % 100000000000ull, 0);
    t->max_fee_per_gas = t->gas_price;
    t->max_priority_fee_per_gas = qty(1000000000, 0);
    t->transaction_type = (bp_opt_u64){.v = 2, .set = true};
    t->chain_id = (bp_opt_u64){.v = 1, .set = true};
    t->input = rnd_hexb(b, k * 7 + 2, i % 3 == 0 ? 0 : 4 + mix(k + 6) % 196);
    t->v = "0x1";
    t->r = rnd_hexb(b, k * 7 + 3, 32);
    t->s = rnd_hexb(b, k * 7 + 4, 32);
    t->y_parity = "0x1";
    t->access_list_json = "[]";
    t->has_receipt = true;
    t->receipt_cumulative_gas_used = 21000 * (i + 1);
    t->receipt_gas_used = 21000;
    t->receipt_status = (bp_opt_u64){.v = 1, .set = true};
    t->receipt_effective_gas_price = t->gas_price;
    t->receipt_logs_bloom = rnd_hexb(b, k * 7 + 5, 256);
}

static void fill_logs(bp_block *b)
{
    b->logs = bp_arena_calloc(b->arena, 2 * b->tx_count, sizeof(bp_log));
    size_t n = 0;
    for (size_t i = 0; i < b->tx_count; i++) {
        size_t count = i % 3; /* 0, 1 or 2 logs per tx: one per tx on average */
        b->txs[i].log_offset = n;
        b->txs[i].log_count = count;
        for (size_t j = 0; j < count; j++, n++) {
            bp_log *l = &b->logs[n];
            uint64_t k = b->number * 100000 + n;
            l->log_index = n;
            l->transaction_index = i;
            l->transaction_hash = b->txs[i].hash;
            l->address = rnd_hex(b, 3000000 + mix(k) % 200, 20);
            l->data = rnd_hex(b, k * 5 + 1, 64);
            l->topic_count = 3;
            l->topics[0] = rnd_hex(b, 4000000 + mix(k) % 10, 32);
            l->topics[1] = rnd_hex(b, k * 5 + 2, 32);
            l->topics[2] = rnd_hex(b, k * 5 + 3, 32);
        }
    }
    b->log_count = n;
}

bp_block *bench_make_block(uint64_t n, size_t txs)
{
    bp_block *b = bp_block_new();
    b->number = n;
    b->hash = rnd_hex(b, n * 3 + 1, 32);
    b->parent_hash = rnd_hex(b, (n - 1) * 3 + 1, 32);
    b->nonce = "0x0000000000000000";
    b->sha3_uncles = rnd_hex(b, 5, 32);
    b->logs_bloom = rnd_hex(b, n * 3 + 2, 256);
    b->transactions_root = b->state_root = b->receipts_root = rnd_hex(b, n * 3 + 3, 32);
    b->miner = rnd_hex(b, 6, 20);
    b->mix_hash = b->transactions_root;
    b->difficulty = qty(0, 0);
    b->size = (bp_opt_u64){.v = 100000, .set = true};
    b->extra_data = "0x6265617665726275696c642e6f7267";
    b->gas_limit = 30000000;
    b->gas_used = 21000 * txs;
    b->timestamp = 1700000000 + 12 * n;
    b->base_fee_per_gas = qty(20000000000ull, 0);
    b->transaction_count = b->tx_count = txs;
    b->txs = bp_arena_calloc(b->arena, txs, sizeof(bp_tx));
    for (size_t i = 0; i < txs; i++)
        fill_tx(b, &b->txs[i], i);
    b->has_receipts = true;
    fill_logs(b);
    return b;
}

/* Blocks go through the sink one batch at a time, each built before its write is timed (so
 * the process holds one batch, as blockpipe's writer does); seconds are the write() calls. */
int bench_sink(const char *prog, const char *url, uint64_t blocks, size_t txs, size_t batch)
{
    bp_sink *s = NULL;
    bp_error err = {0};
    if (bp_sink_open_url(url, &s, &err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 1;
    }
    bp_block **bl = calloc(batch, sizeof(*bl));
    bp_event *ev = calloc(batch, sizeof(*ev));
    uint64_t rows = 0;
    double secs = 0, cpu = 0;
    int rc = bl && ev ? 0 : 1;
    for (uint64_t i = 0; i < blocks && rc == 0; i += batch) {
        size_t n = blocks - i < batch ? (size_t)(blocks - i) : batch;
        for (size_t k = 0; k < n; k++) {
            bl[k] = bench_make_block(i + k + 1, txs);
            ev[k] = (bp_event){.kind = BP_EVENT_APPLY, .block = bl[k]};
            rows += 1 + bl[k]->tx_count + bl[k]->log_count;
        }
        bp_batch b = {.chain = "bench", .chain_id = 1, .events = ev, .count = n};
        b.checkpoint = (bp_checkpoint){.set = true, .number = bl[n - 1]->number};
        snprintf(b.checkpoint.hash, sizeof(b.checkpoint.hash), "%s", bl[n - 1]->hash);
        double t0 = bench_now_s(), c0 = bench_cpu_s();
        rc = s->ops->write(s, &b, &err);
        secs += bench_now_s() - t0;
        cpu += bench_cpu_s() - c0;
        for (size_t k = 0; k < n; k++)
            bp_block_free(bl[k]);
    }
    if (rc != 0)
        fprintf(stderr, "%s: %s\n", prog, bl && ev ? err.msg : "out of memory");
    else
        printf("rows=%" PRIu64 " seconds=%.3f rows_per_s=%.0f cpu=%.3f\n", rows, secs,
               (double)rows / secs, cpu);
    free(bl);
    free(ev);
    bp_sink_close(s);
    return rc != 0;
}

bool bench_slurp(const char *prog, const char *dir, size_t batch, const char *what, bp_buf *out)
{
    char path[4096], piece[1 << 16];
    snprintf(path, sizeof(path), "%s/%zu.%s", dir, batch, what);
    FILE *f = fopen(path, "rb");
    bool ok = f != NULL;
    size_t n;
    bp_buf_reset(out);
    while (ok && (n = fread(piece, 1, sizeof(piece), f)) > 0)
        ok = bp_buf_append(out, piece, n) == 0;
    ok = ok && !ferror(f) && bp_buf_putc(out, '\0') == 0; /* a C string, also when empty */
    if (!ok)
        fprintf(stderr, "%s: cannot read %s\n", prog, path);
    else
        out->len--;
    if (f)
        fclose(f);
    return ok;
}
