/* control.h - simnode's control methods: forks, rollbacks and re-applies made at once, for a
 * test to choose the moment (the --reorg-every / --rollback-every timers make the same ones).
 *
 * JSON-RPC in a namespace no real node uses, on every endpoint's HTTP and WebSocket (the same
 * dispatcher, sim/node.h; never failed by error_rate):
 *   simnode_fork(depth)                   the last `depth` blocks below the head get a new fork
 *   simnode_rollback({height?, txids?})   arch: a rollback (rolledback_transactions event)
 *   simnode_reapply()                     arch: the re-apply of the set rolled back
 * Each answers with what it did (docs/ARCH.md, "simnode's control methods"); a bad parameter
 * is a -32602 error naming it. Params: an array holding the value, or the bare value. */
#ifndef BP_SIM_CONTROL_H
#define BP_SIM_CONTROL_H

#include <stdbool.h>
#include <yajl/yajl_tree.h>

#include "sim/arch.h"
#include "sim/chain.h"
#include "util/buf.h"

#define BP_SIM_CONTROL_MAX_DEPTH 100000u /* simnode_fork's depth (its answer lists each block) */

typedef struct bp_sim_control {
    bp_sim_chain *chain;
    bp_sim_arch *arch; /* NULL: an EVM node (no rollbacks) */
} bp_sim_control;

/* True when m is in the control namespace (simnode_*). */
bool bp_sim_control_method(const char *m);

/* Does what m asks and appends its result value to out. Returns BP_ENOMEM / BP_ETOOBIG, else
 * 0 with *code set when the call is an error (message in msg; out then holds a partial
 * result: the caller drops it). */
int bp_sim_control_result(const bp_sim_control *ctl, const char *m, yajl_val params, bp_buf *out,
                          int *code, char msg[160]);

#endif
