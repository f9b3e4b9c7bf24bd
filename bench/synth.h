/* synth.h - synthetic blocks for the output benchmarks and a timed writer through any output. */
#ifndef BP_BENCH_SYNTH_H
#define BP_BENCH_SYNTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/sink.h"
#include "util/buf.h"

double bench_now_s(void);
/* CPU seconds of the process (all its threads) */
double bench_cpu_s(void);
/* Block n with txs transactions (each with a receipt), about one log per transaction,
 * pseudo-random hashes, addresses from small pools, some values above 2^64. Free with
 * bp_block_free. */
bp_block *bench_make_block(uint64_t n, size_t txs);
/* Blocks 1..blocks through the output at url, batch blocks per write; each batch is built
 * before its write is timed (the process holds one batch, as blockpipe's writer does).
 * Prints "rows=N seconds=S rows_per_s=R cpu=C" (seconds, cpu: the write() calls); messages are
 * prefixed with prog. Returns 0 or 1. */
int bench_sink(const char *prog, const char *url, uint64_t blocks, size_t txs, size_t batch);

/* DIR/<batch>.<what> into out (replacing what it held), NUL-terminated; a message prefixed
 * with prog when it cannot be read. */
bool bench_slurp(const char *prog, const char *dir, size_t batch, const char *what, bp_buf *out);

#endif
