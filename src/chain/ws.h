/* ws.h - new-head announcements over a JSON-RPC WebSocket (eth_subscribe "newHeads").
 *
 * A bp_ws_heads runs one thread of its own with a client-only libwebsockets context. It
 * connects in the background, subscribes, parses every notification into a bp_ws_head and
 * queues it; it reconnects by itself (exponential backoff with jitter), sends WebSocket
 * pings every 15 s, treats a connection that brings no head for stale_after seconds as
 * dead, and on stop unsubscribes and closes cleanly.
 *
 * Threading: bp_ws_heads_next, _healthy and _status may be called from any thread at any
 * time between _start and _stop (they take one short internal lock); _next is meant for one
 * consumer. _stop must be called exactly once, by the owner, after every other caller is
 * done. Nothing here calls back into the caller.
 *
 * Heads are announcements, not the chain: a head may repeat, go backwards (reorg) or skip
 * numbers (a reconnect, or the queue dropped old ones); the pipeline's parent checks and
 * gap filling deal with that. */
#ifndef BP_CHAIN_WS_H
#define BP_CHAIN_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/error.h"
#include "chain/auth.h"
#include "util/buf.h"

typedef struct bp_ws_head {
    uint64_t number;
    uint64_t timestamp; /* block timestamp, unix seconds */
    char hash[67];
    char parent_hash[67];
    int64_t received_ms; /* CLOCK_MONOTONIC ms when the notification was parsed */
} bp_ws_head;

/* What a message of another protocol was (bp_ws_protocol.message). */
enum bp_ws_verdict {
    BP_WS_IGNORED,   /* nothing for the client */
    BP_WS_ANSWERED,  /* one subscription confirmed: subscribed once every one is */
    BP_WS_REFUSED,   /* a subscription refused (err says why): the connection is closed and
                        tried again later */
    BP_WS_EVENT,     /* an event the protocol took */
    BP_WS_HEAD,      /* an event that announces a head: *head filled, queued for _next, and the
                        connection is alive (the staleness clock restarts) */
    BP_WS_MALFORMED, /* err names what was wrong: logged and counted, the connection goes on */
};

/* Another subscription protocol than eth_subscribe newHeads on the same connection machinery
 * (reconnect with backoff, pings, staleness, status): e.g. the Arch topics (arch/arch_ws.h).
 * Its callbacks run on the client's thread and must not block. No unsubscribe is sent at
 * stop: the connection is closed. */
typedef struct bp_ws_protocol {
    const char *what;     /* in messages: "subscribe (Arch topics)" */
    size_t subscriptions; /* messages sent once the socket opens, each answered */
    /* The i-th subscribe message into out: 0 or BP_ENOMEM. */
    int (*subscribe)(void *ctx, size_t i, bp_buf *out);
    /* Every message received (text, len: the whole message). */
    enum bp_ws_verdict (*message)(void *ctx, const char *text, size_t len, bp_ws_head *head,
                                  bp_error *err);
    /* Every subscription answered (each connection once), or NULL. */
    void (*subscribed)(void *ctx);
    void *ctx;
} bp_ws_protocol;

/* Zero/NULL members take the default. The strings are copied at start. */
typedef struct bp_ws_config {
    const bp_ws_protocol *protocol; /* NULL: eth_subscribe newHeads; else not copied: it must
                                       outlive the client */
    const char *url;             /* ws://… or wss://…; user:password@ is sent as Basic auth */
    double reconnect_interval_s; /* first backoff delay, default 5; doubles, ±20%, cap 60 s */
    int max_reconnect_attempts;  /* default 10: when the first attempt and this many reconnects
                                    in a row failed, given_up: one attempt a minute */
    double stale_after_s;        /* 0 = auto: max(30, 3 × observed block time); 60 s until a
                                    block time has been observed */
    size_t max_message_bytes;    /* frame and message cap, default 1 MiB */
    double subscribe_timeout_s;  /* no answer to eth_subscribe within this: failed; def. 10 */
    size_t queue_capacity;       /* heads waiting for _next, default 256; oldest dropped */
    bp_endpoint_auth auth;       /* headers for the handshake; wss://: ca_file (trusted besides the
                                    system CA store), cert_file and key_file (our client
                                    certificate), read at start only */
} bp_ws_config;

#define BP_WS_DEFAULT_RECONNECT_S 5.0
#define BP_WS_DEFAULT_MAX_ATTEMPTS 10
#define BP_WS_DEFAULT_MAX_MESSAGE ((size_t)1 << 20)
#define BP_WS_DEFAULT_SUBSCRIBE_TIMEOUT_S 10.0
#define BP_WS_DEFAULT_QUEUE 256
#define BP_WS_BACKOFF_CAP_S 60.0
#define BP_WS_GIVEN_UP_RETRY_S 60.0
#define BP_WS_PING_S 15

typedef enum bp_ws_state {
    BP_WS_CONNECTING, /* TCP/TLS/WebSocket handshake, or waiting for the subscription id */
    BP_WS_SUBSCRIBED, /* notifications flowing (or expected) */
    BP_WS_BACKOFF,    /* waiting before the next attempt */
    BP_WS_GIVEN_UP,   /* 1 + max_reconnect_attempts failed in a row: one attempt a minute */
    BP_WS_STOPPED,
} bp_ws_state;

const char *bp_ws_state_name(bp_ws_state s); /* "connecting", "subscribed", … */

typedef struct bp_ws_status {
    bp_ws_state state;
    bool connected; /* WebSocket open (subscribing or subscribed) */
    bool subscribed;
    char endpoint[256];         /* the URL with its keys masked (bp_url_redact) */
    int64_t connected_since_ms; /* unix ms of the current connection's open; 0 if none */
    uint64_t messages;          /* WebSocket messages received, all connections */
    uint64_t heads;             /* heads parsed and queued */
    uint64_t dropped;           /* heads dropped because the queue was full */
    uint64_t malformed;         /* messages or headers rejected */
    uint64_t reconnects;        /* connection attempts after the first */
    int consecutive_failures;
    bool have_head;
    uint64_t last_head_number;
    int64_t last_head_ms;              /* unix ms the last head arrived */
    double heads_per_s;                /* over the last minute */
    double block_time_s;               /* observed from head timestamps; 0 if not yet */
    double stale_after_s;              /* in effect now */
    int64_t next_attempt_in_ms;        /* in backoff / given_up: time to the next attempt */
    char last_error[BP_ERROR_MSG_MAX]; /* "" if none yet; kept after recovery */
} bp_ws_status;

typedef struct bp_ws_heads bp_ws_heads;

/* libwebsockets' own log lines go to bp_debug (lws_set_log_level is process-wide). */

/* Validates cfg (BP_EINVAL naming the URL or the value), creates the libwebsockets context
 * and starts the thread; returns at once, the connection happens in the background.
 * *out belongs to the caller until bp_ws_heads_stop. */
int bp_ws_heads_start(bp_ws_heads **out, const bp_ws_config *cfg, bp_error *err);

/* Waits up to timeout_ms (0: no wait) for the next announced head: 1 with *out filled,
 * 0 on timeout or once stopping. Heads come in arrival order. */
int bp_ws_heads_next(bp_ws_heads *h, bp_ws_head *out, long timeout_ms);

/* Subscribed and a head (or the subscription) is younger than stale_after: the pipeline may
 * rely on announcements instead of polling. */
bool bp_ws_heads_healthy(bp_ws_heads *h);

void bp_ws_heads_status(bp_ws_heads *h, bp_ws_status *out);

/* Appends the status as one JSON object (keys as the struct members, plus "state" as text
 * and "endpoint"/"last_error" as strings). 0 or BP_E*. */
int bp_ws_status_json(const bp_ws_status *s, bp_buf *out);

/* eth_unsubscribe if subscribed (waits up to 1 s for the answer), close frame, join the
 * thread, free everything. Bounded: returns within ~3 s even if the server is hung. NULL
 * is fine. */
void bp_ws_heads_stop(bp_ws_heads *h);

/* The delay after `failures` failures in a row (1 = the first): interval × 2^(failures-1)
 * × (1 + jitter), jitter in [-0.2, 0.2], never above 60 s. Exposed for the tests. */
int64_t bp_ws_backoff_ms(double interval_s, int failures, double jitter);

#endif
