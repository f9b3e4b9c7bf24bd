/* wsconn.h - simnode's WebSocket JSON-RPC connections: a thread per upgraded socket that
 * answers calls (eth_subscribe "newHeads", eth_unsubscribe and every HTTP method) and
 * announces each new head, or each block of a reorg's new branch from the fork point up.
 * With hub->arch set: Arch's subscribe / unsubscribe messages and topic events instead
 * (sim/arch.h), the blocks announced in the same order.
 *
 * The HTTP server does the handshake and hands the socket over; the connection's thread
 * owns it until it calls done(done_arg), after which the hub no longer counts it. */
#ifndef BP_SIM_WSCONN_H
#define BP_SIM_WSCONN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim/arch.h"
#include "sim/chain.h"

/* One per endpoint: its settings and the connections it has running. */
typedef struct bp_sim_ws_hub {
    bp_sim_chain *chain;
    bp_sim_arch *arch;           /* NULL: EVM JSON-RPC; else Arch's subscribe messages and events */
    const atomic_bool *stopping; /* the server's: connections send close 1001 and end */
    double started;              /* server start (monotonic s): drops are every S from here */
    size_t endpoint;
    uint64_t lag;           /* heads announced this many blocks behind */
    double drop_every;      /* ws_drop_every: close every connection at each multiple of S; 0 off */
    bool silent;            /* ws_silent: subscriptions are accepted, nothing announced */
    uint64_t bad_every;     /* ws_bad_every (Arch): a malformed event after every Nth; 0 off */
    uint64_t corrupt_every; /* ws_corrupt_every (Arch): every Nth event sent broken; 0 off */
    unsigned corrupt_topics; /* ws_corrupt_topic: bit t counts topic t; 0 every topic */
    pthread_mutex_t lock;
    pthread_cond_t idle;
    unsigned active;
    atomic_uint_fast64_t connections, subscriptions, heads, drops, seq, corrupted;
} bp_sim_ws_hub;

/* The fields above `lock` are the caller's to set before the first connection. */
void bp_sim_ws_hub_init(bp_sim_ws_hub *h);
/* Waits until every connection has ended (set *stopping first), then frees the hub. */
void bp_sim_ws_hub_release(bp_sim_ws_hub *h);

/* Starts a connection's thread on fd (already upgraded; `extra` holds bytes read past the
 * handshake). done(done_arg) is called once the thread is finished with fd, also when this
 * fails (BP_ENOMEM or BP_EIO). */
int bp_sim_ws_start(bp_sim_ws_hub *h, int fd, const char *extra, size_t extra_len,
                    void (*done)(void *), void *done_arg);

#endif
