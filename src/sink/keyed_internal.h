/* keyed_internal.h - the stores behind keyed streams (include/blockpipe/keyed.h): each is a
 * bp_keyed with its ops; keyed.c validates, dispatches and builds subscribe on `next`. */
#ifndef BP_SINK_KEYED_INTERNAL_H
#define BP_SINK_KEYED_INTERNAL_H

#include <stdatomic.h>

#include "blockpipe/keyed.h"

typedef int (*bp_keyed_change_fn)(void *ctx, const char *key, const bp_keyed_entry *e);
typedef struct bp_keyed_pub bp_keyed_pub;
/* Commits the n entries of list (in order) on k: returns an error for all of them, or 0 with
 * each entry's rc (and *err when not 0) set. */
typedef int (*bp_keyed_commit_fn)(bp_keyed *k, bp_keyed_pub *list, size_t n, bp_error *err);
struct bp_keyed_async;

typedef struct bp_keyed_ops {
    int (*publish)(bp_keyed *k, const char *key, const char *json, bp_keyed_entry *out,
                   bp_error *err);
    /* The newest max entries, newest first. */
    int (*history)(bp_keyed *k, const char *key, size_t max, bp_keyed_entry *out, size_t *n,
                   bp_error *err);
    /* Every key (unsorted, caller frees). */
    int (*keys)(bp_keyed *k, char ***keys, size_t *n, bp_error *err);
    /* Up to max entries after the id `after` (oldest first), waiting up to wait_ms for one. */
    int (*next)(bp_keyed *k, const char *key, const char *after, size_t max, int wait_ms,
                bp_keyed_entry *out, size_t *n, bp_error *err);
    /* The id before every entry ("0" and "0-0" name it for users). */
    const char *origin;
    void (*close)(bp_keyed *k);
    /* Following many keys at once (bp_keyed_follow_*): the state is the handle's own. */
    int (*follow_set)(bp_keyed *k, char *const *keys, size_t n, bool all, bp_error *err);
    const char *(*follow_after)(bp_keyed *k, const char *key);
    int (*follow_poll)(bp_keyed *k, int wait_ms, bp_keyed_change_fn fn, void *ctx, bool *more,
                       bp_error *err);
    bool follow_waits; /* follow_poll waits for an entry (the server tells) */
    /* Asynchronous operations (bp_keyed_poll), on the handle's own connection, as a group's
     * leader does: a list of publications in one commit, a list of reads in one round. */
    bp_keyed_commit_fn commit, read;
} bp_keyed_ops;

struct bp_keyed {
    const bp_keyed_ops *ops;
    char *where; /* the store's URL without credentials, for messages */
    /* asynchronous operations submitted, not sent yet (keyed.c) */
    struct bp_keyed_async *aq, **aq_tail;
    size_t aq_n;
    bool closing; /* bp_keyed_close runs: submissions (from a done function) are refused */
};

/* The checks of keyed.c every entry point makes: a key, a value (made compact, malloc'd). */
int bp_keyed_check_key(const bp_keyed *k, const char *key, bp_error *err);
int bp_keyed_compact_json(const bp_keyed *k, const char *json, char **out, bp_error *err);
/* Tells the in-process watchers (bp_keyed_watch_add) that key has a new entry. */
void bp_keyed_notify(const char *key);
/* done(BP_ESTOPPED) for every asynchronous operation still queued (keyed_async.c). */
void bp_keyed_async_cancel(bp_keyed *k);

/* ---- following many keys (the API's streams push topic) ----
 * One handle follows a set of keys, or every key, from positions it keeps: each followed key
 * starts at its newest entry when it is first followed, and bp_keyed_follow_poll hands over
 * each entry published after that exactly once, in order per key (SQLite: in publication
 * order over all keys). Entries published by any process are seen: SQLite by reading the
 * table from the last sequence seen (no waiting: the caller polls, or is woken by
 * bp_keyed_watch), Redis by XREAD BLOCK over the followed streams (the server wakes it). */

/* Follows keys[0..n) and, when all, every key (Redis: the key set is read again at most every
 * second; a key that appears later is followed from its first entry). Keys no longer named
 * are forgotten. */
int bp_keyed_follow_set(bp_keyed *k, char *const *keys, size_t n, bool all, bp_error *err);
/* The id after which the entries of key (NULL: of every key) are handed over, NULL when it is
 * not followed (Redis with key NULL: "", the positions are per key). */
const char *bp_keyed_follow_after(bp_keyed *k, const char *key);
/* The next entries of the followed keys, fn(ctx, key, entry) for each (oldest first; the entry
 * is valid during the call only), waiting up to wait_ms for one where the store can wait
 * (Redis); *more: a full batch was read, call again at once. */
int bp_keyed_follow_poll(bp_keyed *k, int wait_ms, bp_keyed_change_fn fn, void *ctx, bool *more,
                         bp_error *err);

/* Whether bp_keyed_follow_poll waits (Redis) or answers at once (SQLite: poll it). */
bool bp_keyed_follow_waits(const bp_keyed *k);

/* In-process notification: fn(ctx, key) is called by every bp_keyed_publish of this process
 * once its entry is stored (on the publishing thread; fn must only note it and return).
 * Publications of other processes are not seen here: follow the store for them. */
int bp_keyed_watch_add(void (*fn)(void *ctx, const char *key), void *ctx);
/* After it returns fn is not called any more. */
void bp_keyed_watch_remove(void (*fn)(void *ctx, const char *key), void *ctx);

/* ---- group commit (keyed_group.c): the publishers of one store in this process share its
 * commits. A publisher queues its entry and returns once the entry's outcome is known; the
 * first publisher that finds no commit under way commits every queued entry (up to 1024, 4 MiB
 * of values) at once on its own handle, in queue order, so N concurrent publishers pay one
 * commit (one SQLite transaction, one Redis round trip) instead of N; each still returns only
 * after the commit that holds its entry. Readers share round trips the same way (a group of
 * their own: the Redis store's reads, one pipeline of every queued read). ---- */

struct bp_keyed_pub {
    const char *key, *json; /* json compact (NULL: a read) */
    int64_t time_ms;
    char id[48]; /* set by the commit */
    /* a read: up to max entries of key, newest first, into out[0..n) (set by the commit) */
    size_t max, n;
    bp_keyed_entry *out;
    int rc; /* the entry's own outcome (0 until the commit sets it) */
    bp_error *err;
    atomic_int state;
    struct bp_keyed_pub *next;
};

typedef struct bp_keyed_group bp_keyed_group;

/* The group of name (a store's identity: its file, its URL; its reads: another name); NULL
 * when out of memory. */
bp_keyed_group *bp_keyed_group_get(const char *name);
void bp_keyed_group_put(bp_keyed_group *g);
/* Queues p (key, json or max, time_ms, err set) and returns when p's outcome is set. */
void bp_keyed_group_publish(bp_keyed_group *g, bp_keyed *k, bp_keyed_commit_fn commit,
                            bp_keyed_pub *p);

/* A Redis store (keyed_redis.c, in the build when the Redis output is). */
int bp_keyed_redis_open(const char *url, bp_keyed **out, bp_error *err);

#endif
