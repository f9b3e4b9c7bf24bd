/* blockpipe error convention: every fallible function returns int, 0 on success or a
 * negative BP_E* code, and fills a caller-owned bp_error with a message that names what
 * was wrong (the block, the field, the key, the value). */
#ifndef BLOCKPIPE_ERROR_H
#define BLOCKPIPE_ERROR_H

#include <stddef.h>
#include "blockpipe/export.h"

#define BP_ERRORS(X)                                                                               \
    X(BP_OK, 0, "ok")                                                                              \
    X(BP_ENOMEM, -1, "out of memory")                                                              \
    X(BP_EINVAL, -2, "invalid argument or configuration")                                          \
    X(BP_EPARSE, -3, "malformed answer")                                                           \
    X(BP_ERPC, -4, "JSON-RPC error")                                                               \
    X(BP_EHTTP, -5, "HTTP error")                                                                  \
    X(BP_ETRANSPORT, -6, "transport error")                                                        \
    X(BP_ETIMEOUT, -7, "timed out")                                                                \
    X(BP_ENOTFOUND, -8, "not found")                                                               \
    X(BP_EUNSUPPORTED, -9, "method not supported by the node")                                     \
    X(BP_EIO, -10, "I/O error")                                                                    \
    X(BP_EDB, -11, "database error")                                                               \
    X(BP_EREORG, -12, "reorg deeper than the reorg window")                                        \
    X(BP_ESTOPPED, -13, "stopped")                                                                 \
    X(BP_ETOOBIG, -14, "answer larger than the cap")                                               \
    X(BP_ERATELIMIT, -15, "rate limited")                                                          \
    X(BP_EBUSY, -16, "held by another writer")                                                     \
    X(BP_ELOCKLOST, -17, "writer lock lost to another writer")

enum bp_error_code {
#define BP_X_ENUM(name, value, text) name = value,
    BP_ERRORS(BP_X_ENUM)
#undef BP_X_ENUM
};

#define BP_ERROR_MSG_MAX 512

typedef struct bp_error {
    int code;
    char msg[BP_ERROR_MSG_MAX];
} bp_error;

/* Sets err (if not NULL) and returns code, so callers can `return bp_error_set(...)`. */
BP_EXPORT int bp_error_set(bp_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends context ("block 12: ") to an existing message; returns err->code. */
BP_EXPORT int bp_error_prefix(bp_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
BP_EXPORT void bp_error_clear(bp_error *err);
BP_EXPORT const char *bp_strerror(int code);

/* True for the errors another attempt may not meet, so worth retrying (with backoff, or at
 * another endpoint): a transport failure or timeout, an HTTP error or rate limit, a JSON-RPC
 * error or malformed answer from a node, a block the node does not have yet, an I/O error.
 * False for the rest: bad input or configuration, out of memory, a database refusing the
 * statement, a method the node lacks, a deep reorg, a stop, a cap. The one notion of
 * "retryable" in the program: the start-up calls and the reorg walk (core/pipeline.c) and an
 * output's write (core/outputs.c) ask it; PostgreSQL also retries serialization failures and
 * deadlocks (bp_pg_retryable). A block fetch is retried whatever its error, up to
 * --max-retries: a node's answer may be bad once and good from another endpoint. */
BP_EXPORT int bp_error_is_transient(int code);

#endif
