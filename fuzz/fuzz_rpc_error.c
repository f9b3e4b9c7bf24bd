/* fuzz_rpc_error.c - a node's JSON-RPC error objects as the fetch path reads them
 * (chain/limits.c: a method missing, a batch cap, an answer too large; rpc_envelope.c: the
 * error's message): the bytes as the "error" member of an answer. Any error must be
 * classified without a crash or UB; a batch cap learnt is smaller than the batch asked. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chain/json.h"
#include "chain/limits.h"
#include "chain/rpc_envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    yajl_val error = bp_json_parse((const char *)data, size, NULL, 0);
    if (!error)
        return 0;
    bp_error err = {0};
    if (YAJL_IS_OBJECT(error) &&
        (bp_decode_rpc_error(error, "eth_getBlockReceipts", &err) == 0 || !err.msg[0]))
        abort(); /* an error object is an error, with a message */
    (void)bp_rpc_is_method_missing(error);
    (void)bp_rpc_is_response_too_big(error);
    for (size_t asked = 1; asked <= 1000; asked *= 10) {
        int cap = bp_rpc_batch_cap(error, asked);
        if (cap < 0 || (cap > 0 && asked > 1 && (size_t)cap >= asked) || (asked == 1 && cap > 1))
            abort();
    }
    bp_json_free(error);
    return 0;
}
