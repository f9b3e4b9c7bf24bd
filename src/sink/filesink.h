/* filesink.h - the shared core of the file outputs (etl-csv, jsonl): a directory of
 * append-only files, one buffer per file, and an atomic DIR/checkpoint.json.
 *
 * Exactly once, resumable: write() formats the batch into the buffers (one format callback
 * per backend), appends them to the files (every BP_FILESINK_SPILL bytes while formatting,
 * the rest at the end), fsyncs the files, then replaces DIR/checkpoint.json (tmp + fsync +
 * rename + fsync of the directory):
 *
 *   {"version":1,"chains":{"mainnet":{"number":17173050,"hash":"0x.."}},
 *    "sizes":{"blocks.csv":123,"transactions.csv":0,...}}
 *
 * "sizes" are the bytes of each file that the checkpoints cover; a chain also has "recent"
 * (below) and, an Arch chain with --ws, "resync_floor" (bp_checkpoint.floor). open() (when nobody
 * holds the directory's lock) and the claim that takes the lock truncate every file back to its
 * recorded size (a batch torn by a crash disappears; a file missing from the record goes back to 0)
 * and refuses a file shorter than its record (data was lost). A directory with non-empty files and
 * no checkpoint.json is not ours: open() refuses it rather than overwrite it. A new directory gets
 * an initial checkpoint.json with every size 0.
 *
 * Every file is created at open, so an entity with no rows is an empty file (no header).
 *
 * One writer per directory: DIR/blockpipe.lock (bp_filesink_claim). */
#ifndef BP_SINK_FILESINK_H
#define BP_SINK_FILESINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/sink.h"
#include "util/buf.h"

#define BP_FILESINK_MAX_FILES 8

typedef struct bp_filesink bp_filesink;

/* Appends the rows of batch to fs's buffers (bp_filesink_buf). Returns 0 or a BP_E* code
 * with err set; the buffers are dropped on failure. */
typedef int (*bp_filesink_format_fn)(bp_filesink *fs, const bp_batch *batch, bp_error *err);

typedef struct bp_filesink_file {
    const char *name; /* static */
    int fd;
    uint64_t size;    /* bytes covered by checkpoint.json */
    uint64_t spilled; /* bytes of this batch already appended (see bp_filesink_buf) */
    bp_buf buf;       /* rows of the batch not appended yet */
} bp_filesink_file;

/* The last blocks applied, kept in checkpoint.json ("recent") so that a restart can rebuild
 * the reorg window: without it a reorg at the checkpoint height while blockpipe was stopped
 * could not find a common ancestor. */
#define BP_FILESINK_RECENT 128

typedef struct bp_filesink_chain {
    char *name;
    bp_checkpoint cp;
    bp_checkpoint recent[BP_FILESINK_RECENT]; /* ascending, consecutive numbers */
    size_t nrecent;
} bp_filesink_chain;

struct bp_filesink {
    struct bp_sink base;
    char *dir;
    int dirfd;
    int lockfd;    /* DIR/blockpipe.lock: flock while this handle writes the directory */
    bool loaded;   /* the lock is ours and the files are read */
    char **claims; /* the chains claimed (bp_filesink_claim): the lock is held while any is */
    size_t nclaims;
    bp_filesink_format_fn format;
    size_t nfiles;
    bp_filesink_file files[BP_FILESINK_MAX_FILES];
    bp_filesink_chain *chains;
    size_t nchains;
    int spill_errno; /* a failed early append: the batch fails at commit */
    size_t spill_file;
};

/* Opens (creating if missing) directory dir holding the files names[0..n) (static strings).
 * Returns 0, BP_EIO (path and errno text), BP_EPARSE (bad checkpoint.json), BP_EINVAL
 * (foreign files) or BP_ENOMEM. */
int bp_filesink_open(bp_sink **out, const char *dir, const char *const *names, size_t n,
                     bp_filesink_format_fn format, bp_error *err);
/* The buffer of file i for this batch. Once it holds BP_FILESINK_SPILL bytes they are
 * appended to the file first (not yet covered by checkpoint.json, as the rest of the batch):
 * the kernel copies them while they are still in the CPU cache, and a batch needs no buffer
 * of its own size. Call it once per row. */
#define BP_FILESINK_SPILL (256u << 10)
bp_buf *bp_filesink_buf(bp_filesink *fs, size_t i);
/* True when file i has no byte yet, written or buffered: its header goes first. */
bool bp_filesink_is_empty(const bp_filesink *fs, size_t i);

/* bp_sink_ops members shared by the file backends. */
int bp_filesink_checkpoint(bp_sink *s, const char *chain, bp_checkpoint *out, bp_error *err);
/* The sink contract's recent(): the kept blocks of chain, highest first. */
int bp_filesink_recent(bp_sink *s, const char *chain, bp_checkpoint *out, size_t max, size_t *n,
                       bp_error *err);
int bp_filesink_write(bp_sink *s, const bp_batch *batch, bp_error *err);
void bp_filesink_close(bp_sink *s);
/* The directory's writer lock (sink.h claim): one for all its chains, flock on
 * DIR/blockpipe.lock (naming its holder), taken by the first claim (the files then read) and
 * let go (the files closed, what was read of them forgotten) when the last chain claimed is
 * unclaimed, or at close. open() reads the files to check them when the lock is free, and
 * lets it go again; while another process holds it, open() succeeds without reading them.
 * A read or write without a claim takes the lock too, held until a last unclaim or close. */
int bp_filesink_claim(bp_sink *s, const char *chain, char *holder, size_t cap, bp_error *err);
void bp_filesink_unclaim(bp_sink *s, const char *chain);

#endif
