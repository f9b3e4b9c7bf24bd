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
 * Threading: one bp_keyed per thread. Errors: BP_EINVAL (bad URL, key, or a value that is not
 * JSON), BP_EDB / BP_ETRANSPORT / BP_ETIMEOUT from the store, with a message naming it. */
#ifndef BLOCKPIPE_KEYED_H
#define BLOCKPIPE_KEYED_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/error.h"

typedef struct bp_keyed bp_keyed;

typedef struct bp_keyed_entry {
    char id[48];
    int64_t time_ms; /* when it was published (Unix ms) */
    char *value;     /* JSON text; owned by the entry (bp_keyed_entry_release) */
} bp_keyed_entry;

int bp_keyed_open(const char *url, bp_keyed **out, bp_error *err);
void bp_keyed_close(bp_keyed *k);
/* key: 1 to 512 bytes, no control characters. json: a JSON value (checked), stored compact
 * (one line; numbers keep their digits). out (may be NULL) gets the entry as stored. */
int bp_keyed_publish(bp_keyed *k, const char *key, const char *json, bp_keyed_entry *out,
                     bp_error *err);
/* The newest entry of key; *found false when the key has none. */
int bp_keyed_latest(bp_keyed *k, const char *key, bp_keyed_entry *out, bool *found, bp_error *err);
/* Up to max entries of key, newest first, into out[0..*n). */
int bp_keyed_history(bp_keyed *k, const char *key, size_t max, bp_keyed_entry *out, size_t *n,
                     bp_error *err);
/* The keys that start with prefix ("" or NULL: all), sorted; free with bp_keyed_keys_free. */
int bp_keyed_keys(bp_keyed *k, const char *prefix, char ***keys, size_t *n, bp_error *err);
void bp_keyed_keys_free(char **keys, size_t n);

/* Calls fn for each entry of key published after the entry after_id, in order: NULL or "":
 * only entries published from now on; "0": every entry kept. Returns 0 when fn returned
 * non-zero or *stop (may be NULL) became non-zero (checked at least every second), or the
 * store's error. The entry passed to fn is valid during the call only. */
int bp_keyed_subscribe(bp_keyed *k, const char *key, const char *after_id,
                       int (*fn)(void *ctx, const bp_keyed_entry *e), void *ctx,
                       volatile sig_atomic_t *stop, bp_error *err);

void bp_keyed_entry_release(bp_keyed_entry *e);

#endif
