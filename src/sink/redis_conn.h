/* redis_conn.h - one connection to a Redis server for the Redis output: TCP or TLS, commands
 * written in RESP into one buffer and sent as a pipeline, replies parsed by hiredis' reader.
 *
 * Why not hiredis' own connection: the hiredis of Debian 12 (0.14.1) has no TLS and no way to
 * put one under its blocking context, so the socket (and OpenSSL over it for rediss://) is
 * ours and hiredis parses the replies. It also lets one exchange write and read at once
 * (a pipeline of any length never waits on a full socket buffer) with one timeout for "no
 * progress", keepalive set on the socket, and no SIGPIPE from a server that went away.
 *
 * Errors: BP_ETRANSPORT (connection refused, reset, TLS failure; a server still loading its
 * data, which answers LOADING), BP_ETIMEOUT (no progress for timeout_ms), BP_EPARSE (a reply
 * hiredis cannot parse), BP_EDB (the server refused: AUTH, SELECT), each naming the server;
 * the connection is closed after any of them. */
#ifndef BP_SINK_REDIS_CONN_H
#define BP_SINK_REDIS_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include "blockpipe/error.h"
#include "util/buf.h"

/* Where and how to connect: from an output URL's target ("[user[:pass]@]host[:port][/db]"). */
typedef struct bp_redis_target {
    char *host;
    char port[8];
    int db;
    char *user;     /* NULL: AUTH with the password alone (or no AUTH) */
    char *password; /* NULL: no AUTH */
    bool tls;
    char *tls_ca;   /* CA file; NULL: the system's CAs */
    char *tls_cert; /* client certificate and key; NULL: none */
    char *tls_key;
    int timeout_ms;  /* connect, and no progress within an exchange */
    int keepalive_s; /* TCP keepalive idle time; 0: off */
    char where[300]; /* "host:port/db" (with "rediss://" when TLS), for messages */
} bp_redis_target;

/* Parses target (the URL without its scheme and our parameters). BP_EINVAL naming the part
 * that is wrong (an unknown query parameter, a bad port or database number). */
int bp_redis_target_init(bp_redis_target *t, const char *target, bool tls, bp_error *err);
void bp_redis_target_release(bp_redis_target *t);

typedef struct redisReply redisReply;
typedef struct bp_redis bp_redis;

/* Connects, authenticates, selects the database and PINGs. *out is NULL on failure. */
int bp_redis_connect(const bp_redis_target *t, bp_redis **out, bp_error *err);
void bp_redis_free(bp_redis *c);

/* Queues a command: argc arguments, argv[i] of lens[i] bytes (lens NULL: NUL-terminated). */
int bp_redis_cmd(bp_redis *c, int argc, const char *const *argv, const size_t *lens);
/* Queues a command piece by piece: its argument count, then each argument. */
int bp_redis_cmd_begin(bp_redis *c, int argc);
int bp_redis_arg(bp_redis *c, const char *s, size_t n);
int bp_redis_arg_str(bp_redis *c, const char *s);
int bp_redis_arg_u64(bp_redis *c, unsigned long long v);
/* Bytes queued and not sent yet. */
size_t bp_redis_queued_bytes(const bp_redis *c);

/* Sends everything queued and reads one reply per command. The replies are kept in order
 * until the next exchange or bp_redis_free (bp_redis_reply); a reply that is an error is not
 * a failure of the exchange (the caller looks). */
int bp_redis_exchange(bp_redis *c, bp_error *err);
size_t bp_redis_reply_count(const bp_redis *c);
const redisReply *bp_redis_reply(const bp_redis *c, size_t i);
/* Sends what is queued without reading the replies yet (they are read by the next
 * exchange): the bytes reach the server before a crash point. */
int bp_redis_send(bp_redis *c, bp_error *err);

/* One command, its one reply (valid until the next exchange). */
int bp_redis_call(bp_redis *c, int argc, const char *const *argv, const redisReply **reply,
                  bp_error *err);

/* The text of an error or status reply, or a description of an unexpected one. */
const char *bp_redis_reply_text(const redisReply *r, char *buf, size_t cap);

/* r is the server refusing a script: an ACL without @scripting (-NOPERM), EVAL renamed away
 * (unknown command), scripting disabled. */
bool bp_redis_script_refused(const redisReply *r);

#endif
