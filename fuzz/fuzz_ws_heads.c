/* fuzz_ws_heads.c - a node's WebSocket messages as the newHeads client takes them (ws.c): the
 * bytes as one message (bp_ws_parse_message), routed as on_message routes it (a notification's
 * params.result to bp_ws_parse_header, a subscribe answer's result to bp_ws_id_is_safe, its error
 * to bp_decode_rpc_error). Any message must give a head or an error naming the field, never a
 * crash, a leak or UB; a head's hashes are 32-byte hex, and a safe id can be put in JSON. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain/json.h"
#include "chain/rpc_envelope.h"
#include "chain/ws_internal.h"
#include "util/hex.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void head(yajl_val root)
{
    const char *rpath[] = {"params", "result", NULL};
    bp_ws_head h;
    bp_error err = {0};
    if (bp_ws_parse_header(yajl_tree_get(root, rpath, yajl_t_any), &h, &err) != 0) {
        if (!strstr(err.msg, "newHeads notification: field '"))
            abort();
        return;
    }
    if (strlen(h.hash) != 66 || !bp_hex_is_data(h.hash, 66) || strlen(h.parent_hash) != 66 ||
        !bp_hex_is_data(h.parent_hash, 66))
        abort();
}

static void answer(yajl_val root)
{
    const char *rpath[] = {"result", NULL}, *epath[] = {"error", NULL};
    yajl_val error = yajl_tree_get(root, epath, yajl_t_object);
    yajl_val result = yajl_tree_get(root, rpath, yajl_t_string);
    bp_error err = {0};
    if (error && bp_decode_rpc_error(error, "eth_subscribe", &err) == 0)
        abort(); /* an error object is an error */
    const char *id = result ? YAJL_GET_STRING(result) : NULL;
    if (!id || !bp_ws_id_is_safe(id))
        return;
    /* the unsubscribe's JSON with the id in it parses, with the id unchanged */
    char json[256];
    snprintf(json, sizeof(json), "{\"params\":[\"%s\"]}", id);
    yajl_val v = bp_json_parse(json, strlen(json), NULL, 0);
    const char *ppath[] = {"params", NULL};
    yajl_val params = v ? yajl_tree_get(v, ppath, yajl_t_array) : NULL;
    if (!params || params->u.array.len != 1 || !YAJL_IS_STRING(params->u.array.values[0]) ||
        strcmp(params->u.array.values[0]->u.string, id) != 0)
        abort();
    bp_json_free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1); /* the client's message buffer is NUL-terminated */
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char why[128];
    yajl_val root = bp_ws_parse_message(text, size, why, sizeof(why));
    if (root && YAJL_IS_OBJECT(root)) {
        head(root);
        answer(root);
    }
    if (!root && !why[0])
        abort(); /* a refusal says why */
    bp_json_free(root);
    free(text);
    return 0;
}
