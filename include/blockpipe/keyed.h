/* keyed.h - keyed streams: any program publishes JSON values under a key of its own and reads
 * them back (the latest, the history, the keys) or follows them as they come, in Redis or in
 * an embedded SQLite file. `blockpipe stream ...` is this API on the command line.
 *
 * Stores (URLs as the outputs take them):
 *   sqlite:PATH                 table keyed_entries in PATH (WAL; any number of processes);
 *                               every entry is kept
 *   redis://[:pass@]host:port/db, rediss://...   a stream {prefix}kv:{key} per key
 *                               (XADD MAXLEN ~ maxlen, default 1000) and the set
 *                               {prefix}kv:keys; the Redis output's parameters apply
 *                               (prefix, maxlen, timeout, tls_ca, ...)
 * An entry's id grows with each publication under a key (a Redis stream id "ms-seq", or the
 * SQLite row's sequence number); ids of different stores are not comparable.
 *
 * Threading: one bp_keyed per thread (the asynchronous calls below too). Errors: BP_EINVAL (bad
 * URL, key, or a value that is not JSON), BP_EDB / BP_ETRANSPORT / BP_ETIMEOUT from the store, with
 * a message naming it. */
#ifndef BLOCKPIPE_KEYED_H
#define BLOCKPIPE_KEYED_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/error.h"
#include "blockpipe/export.h"

typedef struct bp_keyed bp_keyed;

typedef struct bp_keyed_entry {
    char id[48];
    int64_t time_ms; /* when it was published (Unix ms) */
    char *value;     /* JSON text; owned by the entry (bp_keyed_entry_release) */
} bp_keyed_entry;

BP_EXPORT int bp_keyed_open(const char *url, bp_keyed **out, bp_error *err);
BP_EXPORT void bp_keyed_close(bp_keyed *k);
/* key: 1 to 512 bytes, no control characters. json: a JSON value (checked), stored compact
 * (one line; numbers keep their digits). out (may be NULL) gets the entry as stored. */
BP_EXPORT int bp_keyed_publish(bp_keyed *k, const char *key, const char *json, bp_keyed_entry *out,
                               bp_error *err);
/* The newest entry of key; *found false when the key has none. */
BP_EXPORT int bp_keyed_latest(bp_keyed *k, const char *key, bp_keyed_entry *out, bool *found,
                              bp_error *err);
/* Up to max entries of key, newest first, into out[0..*n). */
BP_EXPORT int bp_keyed_history(bp_keyed *k, const char *key, size_t max, bp_keyed_entry *out,
                               size_t *n, bp_error *err);
/* The keys that start with prefix ("" or NULL: all), sorted; free with bp_keyed_keys_free. */
BP_EXPORT int bp_keyed_keys(bp_keyed *k, const char *prefix, char ***keys, size_t *n,
                            bp_error *err);
BP_EXPORT void bp_keyed_keys_free(char **keys, size_t n);

/* Calls fn for each entry of key published after the entry after_id, in order: NULL or "":
 * only entries published from now on; "0": every entry kept. Returns 0 when fn returned
 * non-zero or *stop (may be NULL) became non-zero (checked at least every second), or the
 * store's error. The entry passed to fn is valid during the call only. */
BP_EXPORT int bp_keyed_subscribe(bp_keyed *k, const char *key, const char *after_id,
                                 int (*fn)(void *ctx, const bp_keyed_entry *e), void *ctx,
                                 volatile sig_atomic_t *stop, bp_error *err);

BP_EXPORT void bp_keyed_entry_release(bp_keyed_entry *e);

/* ---- asynchronous operations: many in flight from one thread ----
 * A submission queues the operation on the handle and returns at once; bp_keyed_poll then
 * hands every queued operation to the store together and calls each one's done function with
 * its outcome. Redis: the publications in one MULTI/EXEC, the reads in one pipeline of
 * XREVRANGEs, so N operations cost about one round trip; SQLite: the publications in one
 * transaction, the reads one prepared SELECT each. Semantics are those of the calls above
 * (the same entries, ids, keys listed, errors; each entry's own outcome); an operation's
 * outcome is known to its caller only when done is called. A round's reads see its
 * publications. Queued operations are sent by bp_keyed_poll only (not by the calls above,
 * which may be made meanwhile); they are the handle's, not shared with other handles' group
 * commits.
 *
 * Threading and ownership: the handle's thread submits and polls; done is called on it, inside
 * bp_keyed_poll (or bp_keyed_close), and may submit more (they are sent by the next poll). key
 * and json are copied by the submission. The entry passed to done is valid during the call;
 * done may keep its value by taking it (e->value = NULL after; free() it later).
 * A submission that fails (a bad key or value, BP_EINVAL; out of memory) returns the error
 * and done is never called for it; once it returned 0, done is called exactly once. */

/* rc: 0 or the operation's error (err, NULL when rc is 0). e: a publication's entry as stored;
 * a latest read's newest entry, NULL when the key has none; NULL when rc is not 0. */
typedef void (*bp_keyed_done_fn)(void *ctx, int rc, bp_keyed_entry *e, const bp_error *err);

BP_EXPORT int bp_keyed_publish_async(bp_keyed *k, const char *key, const char *json,
                                     bp_keyed_done_fn done, void *ctx, bp_error *err);
BP_EXPORT int bp_keyed_latest_async(bp_keyed *k, const char *key, bp_keyed_done_fn done, void *ctx,
                                    bp_error *err);
/* Operations submitted and not yet done. */
BP_EXPORT size_t bp_keyed_pending(const bp_keyed *k);
/* Sends every operation queued when it is called (in rounds of up to 1024 operations and
 * 4 MiB of values), waits for their outcomes (each wait bounded by the store's timeout) and
 * calls done for each: the publications of a round first, then its reads, each in submission
 * order. Returns how many were done (store errors are the operations' own, given to their
 * done; a lost connection fails its round's publications, not sent again: they may be
 * stored). bp_keyed_close calls done with BP_ESTOPPED for the operations still queued (an
 * operation a done function submits meanwhile is refused: BP_ESTOPPED). */
BP_EXPORT size_t bp_keyed_poll(bp_keyed *k);

#endif
