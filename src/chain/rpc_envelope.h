/* rpc_envelope.h - the JSON-RPC envelope: a whole answer (one object or a batch array)
 * parsed and its results / errors matched to the requests by id, and a node's "error" object
 * classified. */
#ifndef BP_CHAIN_RPC_ENVELOPE_H
#define BP_CHAIN_RPC_ENVELOPE_H

#include <stddef.h>
#include <yajl/yajl_tree.h>

#include "blockpipe/error.h"

/* Parse a whole HTTP body holding a JSON-RPC response (single object or batch array).
 * On success *root is the tree (from bp_json_parse: free it with bp_json_free) and results[i] /
 * errors[i] point into it, ordered by the numeric request id 0..n-1 (answers may arrive
 * in any order; a missing id is matched by position). errors[i] is the "error" object or
 * NULL. A body that is not JSON, not the expected shape, or lacks an answer is BP_EPARSE. */
int bp_decode_rpc_response(const char *body, size_t len, size_t n, yajl_val *root,
                           yajl_val *results, yajl_val *errors, bp_error *err);

/* Same, parsing body in place (bp_json_parse_inplace): body must outlive *root and the
 * strings are written to (NULs over closing quotes). For bp_decode_block_in. */
int bp_decode_rpc_response_inplace(char *body, size_t len, size_t n, yajl_val *root,
                                   yajl_val *results, yajl_val *errors, bp_error *err);

/* bp_decode_rpc_response over a tree already parsed (by bp_json_stream). */
int bp_decode_rpc_tree(yajl_val root, size_t n, yajl_val *results, yajl_val *errors, bp_error *err);

/* Turn a JSON-RPC "error" object into a code + message: -32601 / "method not found" ->
 * BP_EUNSUPPORTED; -32005, 429-like "rate limit"/"too many requests" -> BP_ERATELIMIT;
 * anything else BP_ERPC. The message includes the node's code and message. */
int bp_decode_rpc_error(yajl_val error, const char *method, bp_error *err);

#endif
