/* ws_internal.h - what ws.c takes from a node's messages, apart from the connection, for tests
 * and fuzz targets (not for other modules). */
#ifndef BP_CHAIN_WS_INTERNAL_H
#define BP_CHAIN_WS_INTERNAL_H

#include <stdbool.h>
#include <yajl/yajl_tree.h>

#include "chain/ws.h"

/* A message from the node (text[0..len), NUL-terminated) as a JSON tree (bp_json_free), or
 * NULL with why set: not JSON, or nested deeper than BP_JSON_MAX_DEPTH. */
yajl_val bp_ws_parse_message(const char *text, size_t len, char *why, size_t cap);
/* A newHeads notification's params.result into *h (number, hash, parentHash, timestamp; the
 * received time now). BP_EPARSE naming the field that is missing or wrong. */
int bp_ws_parse_header(yajl_val header, bp_ws_head *h, bp_error *err);
/* Whether an eth_subscribe answer's subscription id may go back into the unsubscribe's JSON
 * (1..127 printable characters, no quote or backslash). */
bool bp_ws_id_is_safe(const char *s);

#endif
