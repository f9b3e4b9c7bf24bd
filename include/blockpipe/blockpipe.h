/* blockpipe.h - blockpipe as a C library (libblockpipe.so / libblockpipe.a, pkg-config
 * blockpipe): a chain's pipeline - or one per chain of a config file's chains: list - inside
 * your program, handing you each block as it joins the canonical chain and each block that
 * leaves it in a reorg, in order and exactly once per run, beside (or instead of) the outputs
 * the blockpipe command writes.
 *
 *     bp_option opts[] = {{"rpc", "http://127.0.0.1:8545"}, {"confirmations", "2"}};
 *     bp_callbacks cb = {.applied = on_block, .reverted = on_revert, .user = &mine};
 *     bp_pipe *p;
 *     bp_error err;
 *     if (bp_pipe_open(opts, 2, &cb, &p, &err) != 0 || bp_pipe_start(p, &err) != 0)
 *         ... err.msg says what was wrong ...
 *     ... later, from any thread or a signal handler: bp_pipe_stop(p);
 *     bp_pipe_wait(p, &err);
 *     bp_pipe_close(p);
 *
 * Config: the keys of blockpipe's config file (docs/CLI.md: rpc, ws, output, confirmations,
 * reorg_window, start_block, fetch, workers, max_memory, pg_schema, log_level, ...), each value
 * as text. A list key (rpc, output) is given once per item; rpc also takes the inline object
 * {"url": ..., "priority": ...}. Four more keys: "config" names a YAML/JSON config file read
 * first (the pairs win over its keys), "from" and "to" (with "to" the range [from, to] is
 * indexed and the pipeline ends; without it the chain head is followed), and "progress":
 * "true" draws the command's progress line (bar, blocks, rate, ETA) on stderr when it is a
 * terminal; by default ("false") the library draws none on your terminal. The environment is
 * not read (a value's ${NAME} still is), and there is no default output: with no output key
 * the callbacks are the only consumer. state_dir keeps each chain's failed blocks in
 * DIR/<chain>.json when the run ends (and says at the next start what the last run left), as
 * the command does; nothing is run again by itself: open the pipe again, it resumes from its
 * checkpoints, the failed blocks first.
 *
 * Several chains: a config file with a chains: list (docs/CLI.md) makes one pipe run every
 * chain of it at once, as `blockpipe run` does: one pipeline per chain, sharing the outputs
 * (each chain its own checkpoints), the memory (max_memory) and the fetch workers
 * (workers_total). The pairs are the file's top level, shared by the chains; a chain's own
 * keys in the file win over them. The key chain (NAME[,NAME...]) runs only the chains it
 * names. Each callback's chain argument is the chain's name (its name: in the file); a chain
 * that fails (every endpoint down, a reorg deeper than its window) stops alone while the
 * others go on, and bp_pipe_wait names each chain that failed once all have ended.
 *
 * Callbacks: called on the pipeline's writer thread (each chain's own with a chains: list),
 * one at a time across every chain of the pipe (never two at once), each chain's blocks in
 * chain order, after the configured outputs have committed the same batch (so what a callback
 * sees is in the outputs too). A block passed to a callback - with its transactions (receipt fields
 * merged in: see bp_tx), logs and withdrawals, as the fetch key asked - is the pipeline's and valid
 * during the call only: copy what you keep. A reverted block carries its header only (number, hash,
 * parent_hash, timestamp); reverts come highest first, before the blocks of the new branch.
 * A callback returns 0 to go on; any other value stops the pipeline with BP_ESTOPPED (the
 * blocks of the batch delivered before it stay delivered). A callback may call bp_pipe_stop
 * and bp_pipe_stats, never bp_pipe_wait or bp_pipe_close (they wait for the callback).
 *
 * Where it starts (each chain for itself): from resume's answer when given (your own record of
 * the last blocks you applied for that chain, e.g. read from your database: the pipeline goes on
 * after the newest, reverting first those the chain left), else from the lowest checkpoint of the
 * configured outputs, else from start_block, else (following the head) at the head.
 *
 * Threads and ownership: bp_pipe_open copies the options and the callbacks struct (not
 * callbacks.user, which must outlive the pipe). bp_pipe_start runs the pipeline on threads of
 * its own; the caller's thread is free. bp_pipe_stop and bp_pipe_stats may be called from any
 * thread at any time between open and close (bp_pipe_stop also from a signal handler: it only
 * sets a flag). open, start, wait and close are for one thread at a time per pipe. Several
 * pipes may run in one process. The library installs no signal handler and never exits the
 * process; the log settings (log_level, log_format: lines on stderr) are process-wide, set by
 * the last bp_pipe_open. */
#ifndef BLOCKPIPE_BLOCKPIPE_H
#define BLOCKPIPE_BLOCKPIPE_H

#include <stddef.h>
#include <stdint.h>

#include "blockpipe/export.h"

#ifdef __cplusplus
extern "C" { /* the headers below declare C functions too */
#endif

#include "blockpipe/error.h"
#include "blockpipe/model.h"
#include "blockpipe/stats.h"

/* One config key and its value (see above). */
typedef struct bp_option {
    const char *key;
    const char *value;
} bp_option;

/* A block by number and hash ("0x" + 64 hex digits). */
typedef struct bp_block_ref {
    uint64_t number;
    char hash[BP_HASH_STRLEN];
} bp_block_ref;

typedef struct bp_callbacks {
    /* block joined the canonical chain (chain: the chain's name, e.g. "31337" or the key
     * chain). May be NULL. */
    int (*applied)(void *user, const char *chain, const bp_block *block);
    /* block (header only) left the canonical chain. May be NULL. */
    int (*reverted)(void *user, const char *chain, const bp_block *block);
    /* Optional: where your program stands for chain - the blocks it applied last, newest
     * first (out[0] the last one, then out[0].number - 1, ...), up to max (128) of them.
     * Return how many were written (0: none), a negative value on an error (the run then
     * fails). Give a few: when the chain left out[0] while you were stopped, the pipeline
     * reverts down to the newest of them it still has; with out[0] alone it cannot, and stops
     * with BP_EREORG. Called once, on the pipeline's thread, as the run starts. */
    int (*resume)(void *user, const char *chain, bp_block_ref *out, size_t max);
    void *user;
} bp_callbacks;

typedef struct bp_pipe bp_pipe;

/* The library's version, e.g. "0.2.0" (0.2: several chains in one pipe, bp_pipe_chains,
 * bp_pipe_chain_stats, state_dir; bp_tx's L2 fields in bp_tx_op / bp_tx_arb). */
BP_EXPORT const char *bp_version(void);

/* Reads the config (n options), opens the outputs it names and checks what can be checked
 * without the node. cb may be NULL (the outputs alone). BP_EINVAL naming the key and value for
 * a bad config; *out is NULL after a failure. */
BP_EXPORT int bp_pipe_open(const bp_option *opts, size_t n, const bp_callbacks *cb, bp_pipe **out,
                           bp_error *err);
/* Starts the pipeline on its own threads and returns. BP_EINVAL when already started; the
 * node's errors (unreachable endpoints, a chain id that differs, ...) come from bp_pipe_wait. */
BP_EXPORT int bp_pipe_start(bp_pipe *p, bp_error *err);
/* Asks the pipeline to stop: it commits what is complete, flushes the outputs and ends. Any
 * thread, a signal handler too; returns at once. */
BP_EXPORT void bp_pipe_stop(bp_pipe *p);
/* Waits until the pipeline ends: stopped (0), the range indexed (0), or an error it cannot get
 * over (a reorg deeper than reorg_window, an output failing, a callback's non-zero return,
 * every endpoint failing at start). 0 at once when it was never started. */
BP_EXPORT int bp_pipe_wait(bp_pipe *p, bp_error *err);
/* 1 once the pipeline has ended (bp_pipe_wait would not block), 0 before. */
BP_EXPORT int bp_pipe_done(bp_pipe *p);
/* The latest stats snapshot (blockpipe/stats.h; out->version is 0 before the first) of the
 * pipe's first chain. Copies it under a lock and never waits for the pipeline. */
BP_EXPORT void bp_pipe_stats(bp_pipe *p, bp_stats *out);
/* How many chains p runs: those of its chains: list it runs, else 1. Known from open on. */
BP_EXPORT size_t bp_pipe_chains(bp_pipe *p);
/* bp_pipe_stats of chain i (0 .. bp_pipe_chains(p) - 1, in the list's order; out->chain names
 * it once published). BP_EINVAL (out zeroed) when i is out of range. */
BP_EXPORT int bp_pipe_chain_stats(bp_pipe *p, size_t i, bp_stats *out);
/* Stops the pipeline if it runs, waits for it, closes the outputs and frees p. NULL is fine. */
BP_EXPORT void bp_pipe_close(bp_pipe *p);

#ifdef __cplusplus
}
#endif

#endif
