/* prober.h - the coordinator's own questions to its endpoints (head polls, the eth_chainId
 * check of an unchecked or rechecked endpoint, an ejected endpoint's probe), each asked on a
 * thread of the endpoint's own. An endpoint that accepts and never answers then holds that
 * thread for the RPC timeout, never the coordinator, which follows the head from the other
 * endpoints meanwhile (core/pipeline.c starts the questions and takes the answers).
 *
 * One question at a time per endpoint: eth_chainId first when asked to check the chain, then
 * the head ("latest") unless the check failed or named another chain. Each request is framed
 * by bp_pool_may_call / bp_pool_called (a 429 pauses the endpoint for everyone; an endpoint a
 * 429 paused is not asked: BP_ERATELIMIT, nothing sent). The answers only say what happened:
 * the coordinator applies them to the pool (it alone writes an endpoint's chain state). */
#ifndef BP_CORE_PROBER_H
#define BP_CORE_PROBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/error.h"
#include "chain/rpc.h"
#include "core/pool.h"
#include "core/source.h"

typedef struct bp_probe_answer {
    bool chain_asked; /* eth_chainId was part of the question */
    int chain_rc;     /* 0: chain_id holds the answer */
    uint64_t chain_id;
    bool head_asked; /* the head was asked (after a check that named want_chain) */
    int head_rc;     /* 0: head holds the answer */
    bp_header head;
    int64_t done_ms; /* monotonic ms of the answer (when the head was seen) */
    bp_error err;    /* of the request that failed */
} bp_probe_answer;

typedef struct bp_prober bp_prober;

/* One bp_rpc per endpoint of `pool`, from cfgs[i] (their abort_flag is replaced by the
 * prober's own: bp_prober_free stops what is in flight at once); questions are asked in
 * src's protocol (its identity and header calls). */
int bp_prober_new(bp_prober **out, bp_pool *pool, const bp_source_ops *src,
                  const bp_rpc_config *cfgs, size_t n, bp_error *err);
/* Called (from a prober thread, under the prober's lock) when an answer is ready: the
 * coordinator sleeps elsewhere. NULL: nobody to wake. Clear it before what it wakes goes. */
void bp_prober_set_wake(bp_prober *pr, void (*wake)(void *ctx), void *ctx);
/* Asks endpoint ep (check_chain: its identity first - EVM eth_chainId -, the head only when
 * it says want_chain).
 * BP_EBUSY when its previous question has no answer yet (it is not asked twice). */
int bp_prober_ask(bp_prober *pr, size_t ep, bool check_chain, uint64_t want_chain, bp_error *err);
/* A question to ep is out and its answer not taken yet. */
bool bp_prober_busy(bp_prober *pr, size_t ep);
/* Any question out (answered or not) not taken yet. */
bool bp_prober_any_busy(bp_prober *pr);
/* True and the answer of ep's question when it has one (then ep may be asked again). */
bool bp_prober_take(bp_prober *pr, size_t ep, bp_probe_answer *out);
/* Waits up to timeout_ms for an answer not taken yet (returns at once if there is one). */
void bp_prober_wait(bp_prober *pr, long timeout_ms);
/* Stops the requests in flight (BP_ESTOPPED) and joins their threads. */
void bp_prober_free(bp_prober *pr);

#endif
