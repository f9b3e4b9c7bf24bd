/* faults.h - simnode's fault profiles, one per endpoint, and their syntax.
 *
 * Text syntax (--faults): endpoint profiles separated by ';', each `NAME:key=value,...`
 * with NAME ep1..epK, or `*` / `all` for every endpoint. Keys:
 *   latency=50ms       added to every answer (ms, s or a bare number of ms)
 *   error_rate=0.1     fraction of calls answered with JSON-RPC -32000
 *   rate_limit=20      requests per second above which HTTP 429 + Retry-After: 1
 *   quota=K            a strict provider: K requests per window of `quota_window` (default
 *                      4s; a window starts at the first request after the last one ended),
 *                      the rest of the window HTTP 429 + Retry-After: the whole seconds left
 *   quota_window=4s
 *   limit_answer=http429  how a limit (rate_limit, quota) is said: http429 (HTTP 429 and a
 *                      -32005 body), http503 (HTTP 503 with the Retry-After), rpc32007
 *                      (QuickNode's: HTTP 200, JSON-RPC -32007 "N/second request limit
 *                      reached", no Retry-After)
 *   retry_after=auto   the Retry-After of every 429: auto (the seconds left in the window,
 *                      rounded up), N (always N seconds), none (no header) or date (an
 *                      HTTP-date: the window's end, rounded up to a whole second)
 *   http500_rate=p     HTTP 500
 *   truncate_rate=p    the answer cut in half
 *   garbage_rate=p     HTTP 200 with a body that is not JSON
 *   reset_rate=p       the connection closed without an answer
 *   stall_rate=p       the answer held back for `stall` (default 10s)
 *   stall=10s
 *   lag=N              this endpoint's head is N blocks behind the chain's (HTTP and
 *                      WebSocket newHeads alike)
 *   ws_drop_every=S    every WebSocket connection closed (no close frame) at each multiple
 *                      of S seconds since start (a bare number is seconds)
 *   ws_silent=1        eth_subscribe answered, but no head ever announced
 *   ws_bad_every=N     Arch: after every Nth event a connection sends, a malformed one of the
 *                      same topic (its data lacks the fields: {"hash":"zz"})
 *   ws_corrupt_every=N Arch: every Nth event of ws_corrupt_topic a connection sends goes out
 *                      broken instead of correctly: its first hash or key (a list's first
 *                      element) starts "zz"; an event without one (dkg) is cut in half
 *   ws_corrupt_topic=T the topics ws_corrupt_every counts, joined by '+'
 *                      (rolledback_transactions+reapplied_transactions); default every topic
 *   error_method=M     error_rate applies to the calls of method M only (default: every call)
 *   stall_method=M     stall_rate applies to the requests that call method M only (default:
 *                      every request): a provider that stalls on one kind of request
 *   missing_method=M   every call of method M answered -32601 "Method not found: M", as by a
 *                      node that does not have it
 *   max_batch=N        a provider's batch cap: a batch of more than N calls is answered with
 *                      one error object (-32600 "batch of M exceeds the limit of N"); 1: no
 *                      batches at all
 *   max_response_bytes=N  geth's batch answer cap: once a batch's answers pass N bytes the
 *                      rest of its calls get -32003 "response too large" (single calls never)
 *   bad=KIND           a rule of the answers broken on purpose (sim/render.h): none,
 *                      log_index_per_tx, log_index_swap, receipt_hash, receipt_index,
 *                      receipt_block_hash, receipt_number, tx_index
 * File syntax (--faults-file): YAML or JSON, a mapping of NAME to a mapping of the same keys,
 * e.g. {"ep1": {"latency": "50ms", "error_rate": 0.1}}. */
#ifndef BP_SIM_FAULTS_H
#define BP_SIM_FAULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/error.h"
#include "sim/render.h"

enum bp_sim_fault {
    BP_SIM_F_LATENCY,
    BP_SIM_F_ERROR,
    BP_SIM_F_RATE_LIMIT,
    BP_SIM_F_HTTP500,
    BP_SIM_F_TRUNCATE,
    BP_SIM_F_GARBAGE,
    BP_SIM_F_RESET,
    BP_SIM_F_STALL,
    BP_SIM_F_COUNT
};

/* How a limit is said (key limit_answer). */
enum bp_sim_limit_answer { BP_SIM_LA_HTTP429 = 0, BP_SIM_LA_HTTP503, BP_SIM_LA_RPC32007 };

/* What a 429's Retry-After header says (key retry_after). */
enum bp_sim_retry_after { BP_SIM_RA_AUTO = 0, BP_SIM_RA_FIXED, BP_SIM_RA_NONE, BP_SIM_RA_DATE };

typedef struct bp_sim_faults {
    double latency_s;
    double rate[BP_SIM_F_COUNT]; /* probability per request (per call for ERROR) */
    double rate_limit;           /* requests/s, 0 = none */
    uint64_t quota;              /* requests per quota window, 0 = none */
    double quota_window;         /* seconds */
    enum bp_sim_retry_after retry_after;
    enum bp_sim_limit_answer limit_answer;
    uint64_t retry_after_s; /* BP_SIM_RA_FIXED */
    double stall_s;
    uint64_t lag;
    double ws_drop_every; /* seconds, 0 = never */
    bool ws_silent;
    uint64_t ws_bad_every;       /* Arch: after every Nth event a malformed one; 0 = never */
    uint64_t ws_corrupt_every;   /* Arch: every Nth event (of the topics below) broken; 0 = never */
    unsigned ws_corrupt_topics;  /* bit t: topic t (sim/arch.h) counts; 0 = every topic */
    char error_method[64];       /* error_rate for this method's calls only; "" = every call */
    char stall_method[64];       /* stall_rate for requests calling this method; "" = every one */
    char missing_method[64];     /* a method this endpoint does not have; "" = none */
    uint64_t max_batch;          /* calls per batch, 0 = no cap */
    uint64_t max_response_bytes; /* of a batch answer, 0 = no cap */
    enum bp_sim_bad bad;
} bp_sim_faults;

/* The name of a fault kind as /stats shows it ("latency", "error", ...). */
const char *bp_sim_fault_name(enum bp_sim_fault f);
/* Resets n profiles to "no faults". */
void bp_sim_faults_clear(bp_sim_faults *eps, size_t n);
/* Applies a --faults spec to eps[0..n). BP_EINVAL naming the endpoint, key or value. */
int bp_sim_faults_parse(const char *spec, bp_sim_faults *eps, size_t n, bp_error *err);
/* Applies a YAML/JSON file. */
int bp_sim_faults_load(const char *path, bp_sim_faults *eps, size_t n, bp_error *err);

#endif
