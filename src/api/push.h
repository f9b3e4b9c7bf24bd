/* push.h - the push hub: committed blocks, transactions and logs (apply / revert), reorgs,
 * status and metrics, to WebSocket and Server-Sent Events clients, each with its own filters,
 * bounded queue and cursor.
 *
 * Where events come from: the output writer thread calls bp_push_batch() with each batch once
 * every output has committed it. That call only copies the blocks' headers (number, hash,
 * parent, timestamp, counts) into a ring of the last `ring` events and wakes the hub's thread;
 * it never waits for a client. The hub thread reads each applied block's rows back from the
 * output (a read-only connection of its own: the messages carry exactly what the REST
 * endpoints return) and fans the messages out.
 *
 * Order and cursors: every event has a sequence number, every message of an event an ordinal
 * (0: the block, 1 + transaction_index: a transaction, 2^32 + log_index: a log; a revert's
 * messages 0, 1, 2 for blocks, transactions, logs). A message's cursor "EPOCH-SEQ-ORD" names
 * the last message a client has; a client that reconnects with it (Last-Event-ID, or `since`)
 * gets every message after it that matches its filters, reverts included, as long as that
 * event is still in the ring; an older cursor, or one of another process (EPOCH), is refused
 * with the reason (resubscribe without a cursor and read the gap from the REST endpoints).
 *
 * Slow clients: a client's queue holds at most queue_bytes; the hub fills it as it drains, so
 * a slow client falls behind instead of growing memory. A client more than `ring` events
 * behind, or whose queue has not moved for stall_timeout seconds, is dropped with the reason.
 * Nothing a client does slows the pipeline.
 *
 * Memory: the messages built for an event are shared by every client (a cache of built events,
 * each freed once every client has passed it) and queued by reference. Everything alive (the
 * cache, the queues, messages being sent, each message counted once) is kept within
 * memory_bytes, a fixed share of the memory budget: no event is built while it is full (one
 * piece may go beyond it while it is built: an applied block's messages are built in pieces of
 * at most a quarter of the share, the next once a client reached it), the cache keeps at most
 * half of it (the oldest events are freed first, the newest is kept, and a freed one is built
 * again from the output when a client reaches it), and when it stays full the client whose
 * queue stood still the longest (1 s or more) is dropped.
 *
 * A revert message means: the block (number, hash) left the chain; drop it and every
 * transaction and log of it. */
#ifndef BP_API_PUSH_H
#define BP_API_PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/request.h"
#include "blockpipe/model.h"
#include "blockpipe/sink.h"
#include "blockpipe/stats.h"
#include "util/jsonw.h"

enum bp_push_topic {
    BP_TOPIC_BLOCKS = 1,
    BP_TOPIC_TRANSACTIONS = 2,
    BP_TOPIC_LOGS = 4,
    BP_TOPIC_REORGS = 8,
    BP_TOPIC_METRICS = 16,
    BP_TOPIC_STATUS = 32,
    BP_TOPIC_ALL = 63,     /* "all": the topics above (keyed streams are asked for by name) */
    BP_TOPIC_STREAMS = 64, /* keyed streams: each entry published to a key (filter key) */
};
#define BP_PUSH_TOPICS 7
#define BP_PUSH_KEY_MAX 513 /* a stream key and its NUL (blockpipe/keyed.h: 1 to 512 bytes) */

typedef struct bp_push_filter {
    unsigned topics; /* BP_TOPIC_* bits */
    bool has_address, has_topic0, has_min_value;
    char address[43];          /* transactions: from or to; logs: the emitter */
    char topic0[67];           /* logs */
    bp_u256 min_value;         /* transactions */
    char key[BP_PUSH_KEY_MAX]; /* streams: the key followed, "" every key */
} bp_push_filter;

#define BP_PUSH_CURSOR_MAX 64

/* The subscription of ?topics=a,b&address=..&topic0=..&min_value=..&key=..&since=CURSOR (since is
 * copied to since[BP_PUSH_CURSOR_MAX], "" when absent). Unknown parameters are refused. */
int bp_push_filter_params(const bp_api_request *r, bp_push_filter *f, char *since, bp_error *err);
/* The same from a WebSocket message {"subscribe": ["blocks", ...], "address": ..,
 * "topic0": .., "min_value": "..", "key": "..", "since": ".."} (topics may also be a comma
 * list). */
int bp_push_filter_json(const char *json, size_t len, bp_push_filter *f, char *since,
                        bp_error *err);

typedef struct bp_push_config {
    size_t ring;          /* events kept for cursors */
    size_t queue_bytes;   /* per client */
    double stall_timeout; /* seconds */
    size_t max_clients;
    const char *read_url; /* the output messages are read from; NULL: block headers only */
    const bp_sink_settings *settings;
    const char *chain;      /* the pipeline's chain name (NULL: from the snapshot) */
    bp_stats_hub *stats;    /* for the status and metrics topics; may be NULL */
    double status_interval; /* seconds between status / metrics messages */
    size_t memory_bytes;    /* the push share: messages alive at most (0: the default) */
    uint64_t ready_lag;     /* for the status topic's "ready" */
} bp_push_config;

typedef struct bp_push_hub bp_push_hub;
typedef struct bp_push_client bp_push_client;
typedef struct bp_push_msg bp_push_msg;

/* Starts the hub's thread. NULL with err set on failure. */
bp_push_hub *bp_push_hub_new(const bp_push_config *cfg, bp_error *err);
/* Stops the thread; every client must be detached first. Accepts NULL. */
void bp_push_hub_free(bp_push_hub *h);
/* What a ring of `events` events takes: resident from the hub's start, for the whole run, so
 * the memory budget counts it in the process's fixed part (core/pipeline.h push_ring_bytes). */
size_t bp_push_ring_bytes(size_t events);
/* The ring h holds (bp_push_ring_bytes of its size); 0 for NULL. */
size_t bp_push_hub_ring_bytes(const bp_push_hub *h);
/* --api-push-memory's default: the messages the push side may hold (cache and queues). */
#define BP_PUSH_MEMORY_DEFAULT ((size_t)3 << 20)
/* The push share (bp_push_config.memory_bytes): charged in the process's fixed part with the
 * ring (core/pipeline.h push_memory_bytes); 0 for NULL. */
size_t bp_push_hub_memory_bytes(const bp_push_hub *h);
/* What the push side holds now within that share (any thread; hub is a bp_push_hub, NULL: 0):
 * the messages alive, each once, and the queues' index arrays. */
size_t bp_push_hub_held(void *hub);

/* The writer thread's hook (bp_pipeline_config.batch_committed; ctx is the hub). */
void bp_push_batch(void *hub, const bp_batch *b);
/* How many batches every output has committed so far (any thread): an answer read while it
 * stays the same is still the database's. */
uint64_t bp_push_commits(bp_push_hub *h);

/* ---- the server's side (the libwebsockets service thread) ---- */

/* wake(ctx) is called from any thread when some client has new messages; the server then
 * calls bp_push_ready() on its own thread. */
void bp_push_set_wake(bp_push_hub *h, void (*wake)(void *ctx), void *ctx);
/* A new client (conn: the server's connection, handed back by bp_push_ready). NULL with err:
 * BP_EINVAL for a cursor that cannot be served, BP_ERATELIMIT when there are max_clients. */
bp_push_client *bp_push_attach(bp_push_hub *h, const bp_push_filter *f, const char *since, bool sse,
                               void *conn, bp_error *err);
/* A new subscription for a client (a WebSocket subscribe message). */
int bp_push_update(bp_push_client *c, const bp_push_filter *f, const char *since, bp_error *err);
/* The next message for the client, NULL when none (release it once sent); *more (may be NULL)
 * says whether another one is queued behind it. */
bp_push_msg *bp_push_next(bp_push_client *c, bool *more);
void bp_push_msg_release(bp_push_msg *m);
const char *bp_push_msg_json(const bp_push_msg *m, size_t *len);
const char *bp_push_msg_topic(const bp_push_msg *m);
/* The cursor of the message ("" for status and metrics, which have none). */
const char *bp_push_msg_cursor(const bp_push_msg *m);
/* Why the hub dropped this client (NULL: it did not). */
const char *bp_push_dropped(bp_push_client *c);
/* The connection closed: the client is forgotten. */
void bp_push_detach(bp_push_client *c);
/* Calls fn(conn, ctx) for every client with messages or a drop reason since the last call. */
void bp_push_ready(bp_push_hub *h, void (*fn)(void *conn, void *ctx), void *ctx);

/* ---- keyed streams (api/streams.c follows the store and calls these) ----
 * A streams subscription starts when the follower has the position of its key: the client is
 * sent {"topic":"streams","type":"subscribed","key":K,"after":ID} and from then on every
 * entry of K published after ID, once each, in order; key null: every key. Entries go straight
 * to the clients' queues (no ring, no cursor); a full queue drops the client, as for blocks. */

/* fn(ctx) is called (any thread) when a streams subscription starts or changes. */
void bp_push_set_stream_wake(bp_push_hub *h, void (*fn)(void *ctx), void *ctx);
/* The distinct keys the streams subscribers follow (malloc'd, bp_keyed_keys_free), *all when
 * some follow every key. */
int bp_push_stream_keys(bp_push_hub *h, char ***keys, size_t *n, bool *all);
/* Starts the subscriptions not started yet whose key after(ctx, key) knows (key NULL: every
 * key; after returns NULL for a key not followed yet, "" when there is no one position). */
void bp_push_stream_start(bp_push_hub *h, const char *(*after)(void *ctx, const char *key),
                          void *ctx);
/* Queues the message json (an entry of key) to every started subscriber of key. */
void bp_push_stream_entry(bp_push_hub *h, const char *key, const bp_buf *json);

/* ---- what it knows, for the status endpoints and /metrics ---- */

#define BP_PUSH_DEPTH_LE 8
typedef struct bp_push_stats {
    size_t clients, ws_clients, sse_clients;
    size_t topic_clients[BP_PUSH_TOPICS]; /* per topic bit, in enum order */
    uint64_t messages, bytes, dropped, refused, events, reorgs, reverted;
    uint64_t depth_le[BP_PUSH_DEPTH_LE]; /* reorg depth histogram: <= 1, 2, 4, ..., 128 */
    uint64_t depth_sum;
    uint64_t first_seq, last_seq; /* the ring */
    bool have_block;
    uint64_t last_block;
    char last_hash[67];
    int64_t last_block_unix_ms;    /* when it was committed (wall clock) */
    uint64_t last_block_timestamp; /* its own timestamp */
    double events_per_s;
} bp_push_stats;

void bp_push_stats_read(bp_push_hub *h, bp_push_stats *out);
/* The recent events (new block, reorg, gap filled, endpoint down / up, socket down / up) as
 * {"events": [...], "counts": {...}, "last_update": ms} into w. */
void bp_push_events_json(bp_push_hub *h, bp_jsonw *w, size_t max);
/* Topic names, for messages and errors. */
const char *bp_push_topic_name(unsigned bit);

#endif
