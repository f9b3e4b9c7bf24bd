/* wsframe.h - the pure parts of simnode's WebSocket server (RFC 6455): the handshake's accept
 * key and frame encoding/decoding. No sockets here.
 *
 * Only what a JSON-RPC client needs: text, close, ping and pong frames, unfragmented (a
 * fragment is a protocol error). Client frames must be masked; server frames are not. */
#ifndef BP_SIM_WSFRAME_H
#define BP_SIM_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum bp_sim_ws_op {
    BP_SIM_WS_TEXT = 0x1,
    BP_SIM_WS_BINARY = 0x2,
    BP_SIM_WS_CLOSE = 0x8,
    BP_SIM_WS_PING = 0x9,
    BP_SIM_WS_PONG = 0xa
};

#define BP_SIM_WS_ACCEPT_LEN 28 /* base64 of a SHA-1 digest */
#define BP_SIM_WS_HEADER_MAX 10 /* a server frame's header: 2 + 8 length bytes */

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + RFC 6455 GUID)) into
 * out[BP_SIM_WS_ACCEPT_LEN + 1]. BP_EINVAL when the key is not 24 characters. */
int bp_sim_ws_accept(const char *key, char out[BP_SIM_WS_ACCEPT_LEN + 1]);

/* Writes the header of an unmasked final frame with `len` payload bytes; returns its size. */
size_t bp_sim_ws_header(enum bp_sim_ws_op op, uint64_t len, uint8_t hdr[BP_SIM_WS_HEADER_MAX]);

typedef struct bp_sim_ws_frame {
    enum bp_sim_ws_op op;
    uint8_t *payload; /* inside the parsed buffer, unmasked in place */
    size_t len;
} bp_sim_ws_frame;

/* Decodes one client frame at buf[0..len): returns the bytes it takes (> 0) with *f filled,
 * 0 when more bytes are needed, BP_EPARSE for an unmasked or fragmented frame, a reserved
 * bit or opcode, a control frame over 125 bytes, and BP_ETOOBIG above max payload bytes. */
long bp_sim_ws_parse(uint8_t *buf, size_t len, size_t max, bp_sim_ws_frame *f);

#endif
