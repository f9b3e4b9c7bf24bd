/* node.h - simnode's JSON-RPC answers: parses a request body (single call or batch, with
 * yajl_tree) and renders the answer from the synthetic chain. No HTTP here.
 *
 * Methods: eth_chainId, eth_blockNumber, eth_getBlockByNumber, eth_getBlockByHash,
 * eth_getBlockReceipts, eth_getTransactionReceipt, net_version, web3_clientVersion; over a
 * WebSocket also eth_subscribe / eth_unsubscribe (through bp_sim_subs).
 * With request.arch set, the Arch Network methods instead (sim/arch.h; params may be a bare
 * value, as Arch's docs send them). With request.control set, also the simnode_* control
 * methods (sim/control.h), never failed by fail_call.
 * Ids are echoed exactly as sent (a number's own text, a string re-escaped).
 * Errors: -32700 malformed JSON, -32600 not a call object or a batch over max_batch,
 * -32601 unknown method, -32003 a batch answer over max_response_bytes,
 * -32602 bad params, -32000 an injected internal error. */
#ifndef BP_SIM_NODE_H
#define BP_SIM_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim/chain.h"
#include "sim/render.h"
#include "util/buf.h"

#define BP_SIM_SUB_ID_MAX 40

/* Scratch a thread reuses between requests: the last generated block. */
typedef struct bp_sim_scratch {
    bp_sim_block block;
    bool valid;
    uint64_t number;
    uint32_t fork;
} bp_sim_scratch;

void bp_sim_scratch_init(bp_sim_scratch *s);
void bp_sim_scratch_release(bp_sim_scratch *s);

/* Subscriptions of one WebSocket connection (HTTP has none: -32601). */
typedef struct bp_sim_subs {
    /* eth_subscribe(kind): the new id (a hex string, unquoted) into id; false when the kind is
     * not supported (-32602). */
    bool (*subscribe)(void *ud, const char *kind, char id[BP_SIM_SUB_ID_MAX]);
    /* eth_unsubscribe(id): true when id was a subscription of this connection. */
    bool (*unsubscribe)(void *ud, const char *id);
    void *ud;
} bp_sim_subs;

typedef struct bp_sim_request {
    const bp_sim_chain *chain;
    uint64_t head; /* this endpoint's head (its lag applied) */
    /* Called once per call with its method; true answers the call with -32000 (fault
     * injection). May be NULL. */
    bool (*fail_call)(void *ud, const char *method);
    void *ud;
    /* A method this endpoint does not have: its calls are answered -32601 "Method not found"
     * as an unknown method's (a node without get_best_finalized_block_hash). NULL or "": none. */
    const char *missing_method;
    bp_sim_scratch *scratch;
    const bp_sim_subs *subs; /* NULL: no subscriptions (HTTP) */
    /* A provider's limits (0: none): a batch of more calls than max_batch is refused whole
     * with one error object (-32600; 1: no batches at all); a batch's answers stop once
     * they pass max_response_bytes, the rest answered -32003 "response too large" (geth). */
    size_t max_batch, max_response_bytes;
    enum bp_sim_bad bad; /* the rule its answers break (render.h) */
    /* NULL: the EVM methods; else the Arch Network ones (sim/arch.h) */
    const struct bp_sim_arch *arch;
    /* simnode_fork / _rollback / _reapply (sim/control.h); NULL: unknown methods */
    const struct bp_sim_control *control;
    size_t calls; /* out: calls answered */
} bp_sim_request;

/* Answers body[0..len) (NUL-terminated) into out (reset first). Protocol errors are answers,
 * not failures: returns 0, or BP_ENOMEM / BP_ETOOBIG when the answer cannot be built. */
int bp_sim_answer(bp_sim_request *r, const char *body, size_t len, bp_buf *out);
/* Block (n, fork) of r->chain in r->scratch, generated unless it is already there (a batch of
 * calls about one block generates it once); *out is valid until the scratch's next block. */
int bp_sim_load_block(bp_sim_request *r, uint64_t n, uint32_t fork, const bp_sim_block **out);

#endif
