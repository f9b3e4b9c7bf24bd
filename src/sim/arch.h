/* arch.h - simnode --chain-type arch: the synthetic chain answered as an Arch Network node.
 *
 * The blocks are the EVM simnode's (sim/chain.h: same seed, same forks, same reorg schedule)
 * shown in Arch's shapes (docs/ARCH.md lists each field and the doc it comes from): HTTP
 * JSON-RPC get_block_count, get_block_hash, get_block, get_processed_transaction,
 * get_best_block_hash, get_best_finalized_block_hash, is_node_ready; a WebSocket event stream
 * with the topics block, transaction, account_update, rolledback_transactions,
 * reapplied_transactions and dkg.
 *
 * Rollbacks: episode j (j = 0, 1, ...) falls due every rollback_every seconds. An even episode
 * rolls back every other transaction (indices 0, 2, 4, ...) of the newest block with
 * transactions below the head; the odd episode after it re-applies exactly those. So at most
 * one set is rolled back at a time: the last episode's when their count is odd.
 * On demand (simnode_rollback / simnode_reapply, sim/control.h): the same episodes, made at
 * once, of a chosen block or chosen transactions of one block (ep_txs); they take the next
 * episode numbers, so a running --rollback-every schedule re-applies an on-demand rollback and
 * its later episodes come that much later.
 * Shapes: by default arch-sdk's wire format (sdk/src/types/, pinned by
 * sdk/tests/rpc_wire_format.rs: what a current node answers: Block hashes as arrays of 32 byte
 * numbers, timestamps in milliseconds, the block event's as a string, Status as
 * {"type": ...}); with ts_shape the TypeScript SDK's (src/struct/, websocket-client/types/:
 * hex strings, transactions_count, merkle_root, timestamps in seconds, "Processed"). Hashes
 * given as strings are 64 lower-case hex digits without 0x (the get_block_hash doc's example). */
#ifndef BP_SIM_ARCH_H
#define BP_SIM_ARCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

#include "blockpipe/error.h"
#include "sim/chain.h"
#include "util/buf.h"

#define BP_SIM_ARCH_MAX_EPISODES 65536u
#define BP_SIM_ARCH_FINALITY 6    /* get_best_finalized_block_hash's default depth below the head */
#define BP_SIM_ARCH_DKG_EVERY 16  /* a dkg event with every 16th block */
#define BP_SIM_ARCH_NOT_FOUND 404 /* the error code of an unknown block / tx (the SDK's) */

enum bp_sim_arch_topic {
    BP_SIM_ARCH_BLOCK,
    BP_SIM_ARCH_TRANSACTION,
    BP_SIM_ARCH_ACCOUNT_UPDATE,
    BP_SIM_ARCH_ROLLEDBACK,
    BP_SIM_ARCH_REAPPLIED,
    BP_SIM_ARCH_DKG,
    BP_SIM_ARCH_TOPICS
};

/* "block", "transaction", ...; NULL past the last. */
const char *bp_sim_arch_topic_name(unsigned t);

typedef struct bp_sim_arch {
    bp_sim_chain *chain;
    double t0, rollback_every; /* 0: no rollbacks */
    uint64_t rollback_depth;   /* an episode's block is at least this many below the head */
    uint64_t finality;         /* get_best_finalized_block_hash: this many below the head */
    bool ts_shape;             /* the TypeScript SDK's shapes, else arch-sdk's wire format */
    const char *dkg_status;    /* the dkg events' status (not owned); NULL: "Completed" */
    pthread_mutex_t lock;      /* bp_sim_arch_tick */
    atomic_uint episodes;      /* applied so far */
    uint64_t *ep_height;       /* [BP_SIM_ARCH_MAX_EPISODES]: the block of episode j */
    uint32_t *ep_fork;
    uint32_t **ep_txs; /* [j] of a rollback: its transaction indices, sorted; NULL: every other */
    uint32_t *ep_ntx;
} bp_sim_arch;

int bp_sim_arch_init(bp_sim_arch *a, bp_sim_chain *c, double rollback_every, double now,
                     bp_error *err);
void bp_sim_arch_release(bp_sim_arch *a);
/* Applies the episodes due by now (call after bp_sim_chain_tick). Returns how many. */
unsigned bp_sim_arch_tick(bp_sim_arch *a, double now);
/* Makes one episode at once (tests). BP_EINVAL when there is no block with txs. */
int bp_sim_arch_episode(bp_sim_arch *a, double now);
/* A rollback at once, after the episodes due by now: of the transactions txids[0..n) (one
 * canonical block at or below the head), else of every other transaction of block *height,
 * else of the timer's choice. BP_EINVAL with a message naming what was wrong (a set rolled
 * back already, an unknown txid, ...). *episode: its number. */
int bp_sim_arch_rollback(bp_sim_arch *a, double now, const uint64_t *height,
                         const bp_sim_h256 *txids, size_t n, unsigned *episode, bp_error *err);
/* The re-apply of the set rolled back (BP_EINVAL when none is). */
int bp_sim_arch_reapply(bp_sim_arch *a, double now, unsigned *episode, bp_error *err);
/* True when tx idx of its block is in episode j's set (a re-apply's: its rollback's). */
bool bp_sim_arch_episode_has(const bp_sim_arch *a, unsigned j, uint32_t idx);
/* True when tx idx of block (n, fork) is rolled back as of the episodes applied. */
bool bp_sim_arch_rolled_back(const bp_sim_arch *a, uint64_t n, uint32_t fork, uint32_t idx);

/* 64 hex digits, no quotes, no NUL; returns the end. */
char *bp_sim_arch_put_hex(char *p, const bp_sim_h256 *h);
/* 64 hex digits, with or without 0x; false otherwise. */
bool bp_sim_arch_parse_hex(const char *s, bp_sim_h256 *h);

/* The get_block result (a Block object) and one get_processed_transaction result. */
int bp_sim_arch_render_block(const bp_sim_arch *a, const bp_sim_block *b, bp_buf *out);
int bp_sim_arch_render_ptx(const bp_sim_arch *a, const bp_sim_block *b, size_t idx, bp_buf *out);

/* An event message {"topic":...,"data":{...}} goes to emit; non-zero from emit stops. */
typedef int (*bp_sim_arch_emit)(void *ud, unsigned topic, const char *msg, size_t len);
/* The events of a new block for the topics in mask (bit t = topic t): per transaction its
 * transaction event and its account_update events, then the block event, then dkg. */
int bp_sim_arch_block_events(const bp_sim_arch *a, const bp_sim_block *b, unsigned mask,
                             bp_buf *scratch, bp_sim_arch_emit emit, void *ud);
/* The rolledback_transactions / reapplied_transactions event of episode j. */
int bp_sim_arch_episode_event(const bp_sim_arch *a, unsigned j, unsigned mask, bp_buf *scratch,
                              bp_sim_arch_emit emit, void *ud);

/* A JSON-RPC error to answer instead of a result. */
typedef struct bp_sim_arch_fail {
    int code; /* 0: the result was written */
    char msg[160];
} bp_sim_arch_fail;

struct bp_sim_request;
/* Appends the result value of method m (params: an array or a bare value, as the docs' and
 * the SDK's requests differ). Returns BP_ENOMEM / BP_ETOOBIG, else 0 with f->code set when
 * the call is an error (out then holds a partial result: the caller drops it). */
int bp_sim_arch_result(const bp_sim_arch *a, struct bp_sim_request *r, const char *m,
                       yajl_val params, bp_buf *out, bp_sim_arch_fail *f);

/* One WebSocket connection's subscriptions (the SDK's subscribe / unsubscribe messages). */
typedef struct bp_sim_arch_subs {
    char id[BP_SIM_ARCH_TOPICS][40]; /* "" = not subscribed */
    uint64_t seq;
} bp_sim_arch_subs;

/* The topics subscribed, as a mask. */
unsigned bp_sim_arch_subs_mask(const bp_sim_arch_subs *s);
/* A client message: {"method":"subscribe"|"unsubscribe","params":{...}}; the answer into out
 * (reset first). Returns 1 when it was not one of these (the caller answers it as JSON-RPC),
 * 0 when answered, BP_ENOMEM. *subscribed is set when a subscription was made. */
int bp_sim_arch_ws_message(const bp_sim_arch *a, bp_sim_arch_subs *s, const char *text, size_t len,
                           bp_buf *out, bool *subscribed);

#endif
