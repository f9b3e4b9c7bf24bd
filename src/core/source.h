/* source.h - what a chain family provides to the pipeline (issue 14): one bp_source_ops
 * table per family, chosen by --chain-type evm|arch (config: chain_type). The coordinator
 * (reorder buffer, canon window, batches, outputs, writer, budget, pool, retries) stays
 * family-neutral: it deals in numbers, hashes, parent hashes and decoded bp_blocks with a
 * byte cost (their arena); everything that speaks the node's protocol is behind these ops.
 *
 * Every op runs on the thread that owns the bp_rpc (one per endpoint on the coordinator,
 * one per worker and endpoint in the fetcher) and returns 0 or a BP_E* code with err set,
 * the same codes as bp_rpc_* (BP_ETRANSPORT, BP_ETIMEOUT, BP_EHTTP, BP_ERATELIMIT, BP_ERPC,
 * BP_EPARSE...), so the pool's ejection and retry rules hold for every family. */
#ifndef BP_CORE_SOURCE_H
#define BP_CORE_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/error.h"
#include "blockpipe/model.h"
#include "blockpipe/tableset.h"
#include "chain/fetch.h"
#include "chain/rpc.h"

typedef struct bp_source_ops {
    const char *name;      /* "evm", "arch": --chain-type's value */
    enum bp_family family; /* what its blocks carry (bp_block.family) */
    /* The call that names the chain, for messages: "eth_chainId", "get_block_hash(0)". */
    const char *identity_call;
    /* What the identity is, for messages: "chain id", "genesis id"; a family other than EVM's
     * shows it in hex. */
    const char *identity_name;
    /* The endpoint's chain identity: EVM its chain id; Arch the first 8 bytes of its genesis
     * block's hash, once the node says it is ready (docs/ARCH.md). */
    int (*identity)(bp_rpc *rpc, uint64_t *id, bp_error *err);
    /* The head (number UINT64_MAX) or the canonical block at number: at least number and
     * hash (the reorg walk needs no more); the head also parent_hash and timestamp. */
    int (*header)(bp_rpc *rpc, uint64_t number, bp_header *out, bp_error *err);
    /* Blocks first .. first+count-1 with everything the outputs store, each with its own
     * outcome: out[i] (caller owns) or rcs[i] / errs[i]; 0 when every block came, else the
     * first failure's code (bp_fetch_range's contract). */
    int (*fetch_range)(bp_rpc *rpc, bp_fetch_shared *shared, uint64_t first, size_t count,
                       bp_block **out, int *rcs, bp_error *errs);
    /* The head subscription is eth_subscribe newHeads (core/realtime.c): without it the
     * family follows the head by polling only (a ws URL is refused at start). */
    bool newheads_ws;
    /* The tables its blocks are written to (blockpipe/tableset.h): names, columns, the rows
     * each event brings and their values; the outputs find it by the blocks' family
     * (bp_table_set_of), which is this. */
    const bp_table_set *tables;
    /* Instead: the family's own event stream over --ws (Arch: arch/arch_ws.h), whose events
     * go into the batches (BP_EVENT_ARCH_EVENTS) and whose block events, without a height,
     * make the next head poll happen at once. */
    bool ws_events;
} bp_source_ops;

extern const bp_source_ops bp_source_evm;
extern const bp_source_ops bp_source_arch;

/* The family named name ("evm", "arch"), NULL when none. */
const bp_source_ops *bp_source_find(const char *name);
/* "evm|arch", for messages and --help. */
const char *bp_source_names(void);

#endif
