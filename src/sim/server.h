/* server.h - simnode's HTTP endpoints (libmicrohttpd, a thread per connection): K endpoints
 * over one chain, each with its own fault profile and counters; GET /stats on any of them.
 * A GET with `Upgrade: websocket` is handed to sim/wsconn.h (JSON-RPC and newHeads on the
 * same port, as geth and anvil serve it).
 * Faults are decided per request from a hash of (fault seed, endpoint, request number), so a
 * run with the same request order injects the same faults. */
#ifndef BP_SIM_SERVER_H
#define BP_SIM_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/error.h"
#include "sim/arch.h"
#include "sim/chain.h"
#include "sim/faults.h"
#include "util/buf.h"

#define BP_SIM_MAX_ENDPOINTS 64

typedef struct bp_sim_server_config {
    bp_sim_params chain;
    bool arch;               /* --chain-type arch: Arch Network answers and events (sim/arch.h) */
    double rollback_every;   /* arch: seconds between rollback / re-apply episodes, 0 = none */
    uint64_t rollback_depth; /* arch: an episode's block at least this many below the head (0: 1) */
    uint64_t finality;       /* arch: the best finalized block this many below the head (0: 6) */
    bool arch_ts;            /* arch: the TypeScript SDK's shapes (--arch-shape ts, sim/arch.h) */
    const char *dkg_status;  /* arch: the dkg events' status (--dkg-status); NULL: Completed */
    const char *host;        /* IPv4 address, "localhost" allowed */
    uint16_t port;           /* endpoint i listens on port + i; 0 = free ports */
    size_t endpoints;
    const bp_sim_faults *faults; /* [endpoints] */
    /* "Name: value" headers every JSON-RPC request and WebSocket upgrade must carry (a
     * provider's key): else HTTP 401 whose body quotes what came, as some providers do */
    const char *const *require_headers;
    size_t require_count;
} bp_sim_server_config;

typedef struct bp_sim_endpoint bp_sim_endpoint;

typedef struct bp_sim_server {
    bp_sim_chain chain;
    bp_sim_arch arch;
    bool is_arch;
    bp_sim_endpoint *eps;
    size_t n;
    atomic_bool stopping;
    const char *const *require_headers; /* from the config (not copied) */
    size_t require_count;
    double started; /* monotonic seconds */
} bp_sim_server;

/* Monotonic clock in seconds (the chain's clock). */
double bp_sim_now(void);
/* Starts every endpoint; on failure nothing is left running. */
int bp_sim_server_start(bp_sim_server *s, const bp_sim_server_config *cfg, bp_error *err);
/* The port endpoint i listens on. */
uint16_t bp_sim_server_port(const bp_sim_server *s, size_t i);
/* The counters as JSON (what GET /stats answers) into out (reset first). */
int bp_sim_server_stats(bp_sim_server *s, bp_buf *out);
/* Stops every endpoint (stalls and latencies in progress end at once) and frees all. */
void bp_sim_server_stop(bp_sim_server *s);

#endif
