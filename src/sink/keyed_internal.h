/* keyed_internal.h - the stores behind keyed streams (include/blockpipe/keyed.h): each is a
 * bp_keyed with its ops; keyed.c validates, dispatches and builds subscribe on `next`. */
#ifndef BP_SINK_KEYED_INTERNAL_H
#define BP_SINK_KEYED_INTERNAL_H

#include "blockpipe/keyed.h"

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
} bp_keyed_ops;

struct bp_keyed {
    const bp_keyed_ops *ops;
    char *where; /* the store's URL without credentials, for messages */
};

/* A Redis store (keyed_redis.c, in the build when the Redis output is). */
int bp_keyed_redis_open(const char *url, bp_keyed **out, bp_error *err);

#endif
