/* fuzz_rpc_block.c - libFuzzer target: a batch answer [block, receipts] through the decoder. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blockpipe/model.h"
#include "chain/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decoding after a failed step still runs on purpose: the block must stay freeable. */
static void decode_pair(yajl_val block, yajl_val receipts)
{
    bp_block *b = bp_block_new();
    if (!b)
        return;
    bp_error err;
    if (bp_decode_block(block, true, b, &err) == 0 && receipts)
        (void)bp_decode_block_receipts(receipts, b, &err);
    bp_block *h = bp_block_header_copy(b);
    bp_block_free(h);
    bp_block_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The RPC layer hands over NUL-terminated bodies; mimic that exactly. */
    char *body = malloc(size + 1);
    if (!body)
        return 0;
    if (size)
        memcpy(body, data, size);
    body[size] = '\0';
    yajl_val root = NULL, results[2], errors[2];
    bp_error err;
    if (bp_decode_rpc_response(body, size, 2, &root, results, errors, &err) == 0) {
        if (errors[0])
            (void)bp_decode_rpc_error(errors[0], "eth_getBlockByNumber", &err);
        decode_pair(results[0], results[1]);
        bp_json_free(root);
    }
    free(body);
    return 0;
}
