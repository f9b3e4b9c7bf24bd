/* rpc.h - JSON-RPC over HTTP with libcurl.
 *
 * One bp_rpc per thread (it wraps one CURL easy handle, reused for keep-alive); not
 * thread-safe. Requests may be single or batch bodies; the body cap bounds memory. */
#ifndef BP_CHAIN_RPC_H
#define BP_CHAIN_RPC_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

#include "blockpipe/error.h"
#include "chain/auth.h"
#include "chain/json.h"
#include "chain/limits.h"
#include "util/buf.h"

typedef struct bp_rpc_config {
    const char *url; /* user:password@ in it is sent as Basic auth (libcurl) */
    bp_endpoint_auth auth;
    long connect_timeout_ms;   /* default 5000 */
    long timeout_ms;           /* whole request; default 30000 */
    size_t max_response_bytes; /* default 256 MiB */
    /* When not NULL and non-zero, transfers in progress stop at once with BP_ESTOPPED: a
     * shutdown must not wait for a hung node. Read from curl's progress callback. */
    const volatile sig_atomic_t *abort_flag;
    /* What the endpoint refuses, shared by every bp_rpc of the endpoint (not owned); NULL:
     * the bp_rpc learns on its own. */
    bp_rpc_limits *limits;
} bp_rpc_config;

typedef struct bp_rpc bp_rpc;

/* Call once from main before any thread starts (curl_global_init). */
int bp_rpc_global_init(bp_error *err);
void bp_rpc_global_cleanup(void);

int bp_rpc_new(bp_rpc **out, const bp_rpc_config *cfg, bp_error *err);
void bp_rpc_free(bp_rpc *rpc);
/* Seconds the node asked us to wait in the Retry-After header of its last answer (0: none). */
long bp_rpc_last_retry_after(const bp_rpc *rpc);
/* Size of the last answer body (what the adaptive batch size watches). */
size_t bp_rpc_last_bytes(const bp_rpc *rpc);
/* The URL for messages and logs: as configured, keys masked (bp_url_redact). */
const char *bp_rpc_url(const bp_rpc *rpc);
/* The endpoint's limits (chain/limits.h), as learnt so far. */
bp_rpc_limits *bp_rpc_limits_of(bp_rpc *rpc);
/* Counts the answer bytes of the requests that follow and cuts the answer that would take
 * their total past `share` (BP_ETOOBIG, the message naming --max-memory); 0: no share, only
 * max_response_bytes. A fetch worker holds a job to the memory the job was granted. */
void bp_rpc_set_share(bp_rpc *rpc, size_t share);
/* Calls admit(ctx) on the thread of the request when the first bytes of each 2xx answer
 * arrive, before any is kept (NULL: none). A non-zero BP_E* from it cuts the answer with that code
 * (BP_ETIMEOUT: "no memory was free for the answer in time"). A fetch worker waits there for
 * the memory of an answer the node was asked for before that memory was free. */
void bp_rpc_set_admit(bp_rpc *rpc, int (*admit)(void *ctx), void *ctx);
/* Answer bytes received since bp_rpc_set_share; *cut (may be NULL): the share cut one. */
size_t bp_rpc_share_used(const bp_rpc *rpc, bool *cut);

/* POST body; on HTTP 200 the answer is in resp (reset first). Errors: BP_ETRANSPORT
 * (connect/reset), BP_ETIMEOUT, BP_EHTTP (non-2xx; 429 -> BP_ERATELIMIT), BP_ETOOBIG. The
 * message names the URL and what happened (status code, curl error). *retry_after_s is set
 * from a Retry-After header when there is one (else 0); it may be NULL. */
int bp_rpc_post(bp_rpc *rpc, const char *body, size_t len, bp_buf *resp, long *retry_after_s,
                bp_error *err);

/* Post a request body holding n calls with ids 0..n-1 (a batch array, or one object when
 * n == 1) and decode the answer with bp_decode_rpc_response into *root, results[0..n) and
 * errors[0..n). The answer goes into a buffer owned by rpc. JSON-RPC error objects are
 * left in errors[] for the caller; only transport/HTTP/parse failures are returned. */
int bp_rpc_batch(bp_rpc *rpc, const char *body, size_t len, size_t n, yajl_val *root,
                 yajl_val *results, yajl_val *errors, bp_error *err);

/* Same, parsing the answer while it is received (bp_json_stream with ops/ud picking the
 * elements handed off): no answer buffer at all, so memory is the tree minus the elements,
 * whatever the answer's size. On success *root is the tree (bp_json_free). Elements were
 * handed to ops->on_elem during the call, even when it then fails. */
int bp_rpc_batch_stream(bp_rpc *rpc, const char *body, size_t len, size_t n,
                        const bp_json_stream_ops *ops, void *ud, yajl_val *root, yajl_val *results,
                        yajl_val *errors, bp_error *err);

/* One call: builds {"jsonrpc":"2.0","id":0,"method":method,"params":params_json}, posts it
 * and decodes the envelope. On success *root owns the tree (bp_json_free) and *result
 * points into it (it may be a JSON null). A JSON-RPC error object is returned as
 * bp_decode_rpc_error() maps it. */
int bp_rpc_call(bp_rpc *rpc, const char *method, const char *params_json, yajl_val *root,
                yajl_val *result, bp_error *err);

int bp_rpc_chain_id(bp_rpc *rpc, uint64_t *out, bp_error *err);
int bp_rpc_block_number(bp_rpc *rpc, uint64_t *out, bp_error *err);

/* Header of a block ("latest" when number is UINT64_MAX) with eth_getBlockByNumber(n,false):
 * number, hash and parentHash. BP_ENOTFOUND when the node has no such block. */
typedef struct bp_header {
    uint64_t number;
    uint64_t timestamp;
    char hash[67];
    char parent_hash[67];
    /* The head only, from a family whose node names its best finalized block (Arch's
     * get_best_finalized_block_hash): --confirmations then means "up to it" (core/pipeline.c
     * target()); false: --confirmations counts blocks below the head. */
    bool has_final;
    uint64_t final_number;
    /* The node has a finalized block but did not say which this time (its call failed, or
     * the block's get_block did), unlike a node without one (the method unknown to it): a
     * pipeline that never learnt a finalized height then waits rather than count blocks. */
    bool final_unknown;
} bp_header;
int bp_rpc_header(bp_rpc *rpc, uint64_t number, bp_header *out, bp_error *err);

#endif
