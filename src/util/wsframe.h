/* wsframe.h - the socket-free parts of a WebSocket server (RFC 6455): the handshake's accept
 * key, frame encoding and decoding, close codes. simnode's connections use it; so can any
 * server of ours (no libwebsockets context, no sockets here).
 *
 * Only what a JSON-RPC server needs: text, close, ping and pong frames, unfragmented (a
 * fragment is a protocol error). Client frames must be masked; server frames are not. */
#ifndef BP_UTIL_WSFRAME_H
#define BP_UTIL_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

enum bp_wsframe_op {
    BP_WSFRAME_TEXT = 0x1,
    BP_WSFRAME_BINARY = 0x2,
    BP_WSFRAME_CLOSE = 0x8,
    BP_WSFRAME_PING = 0x9,
    BP_WSFRAME_PONG = 0xa
};

/* Close status codes (RFC 6455 7.4.1) a server sends. */
#define BP_WSFRAME_GOING_AWAY 1001 /* the server is stopping */
#define BP_WSFRAME_PROTOCOL 1002   /* a frame broke the protocol */
#define BP_WSFRAME_TOO_BIG 1009    /* a message over the server's limit */

#define BP_WSFRAME_ACCEPT_LEN 28 /* base64 of a SHA-1 digest */
#define BP_WSFRAME_HEADER_MAX 10 /* a server frame's header: 2 + 8 length bytes */

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + RFC 6455 GUID)) into
 * out[BP_WSFRAME_ACCEPT_LEN + 1]. BP_EINVAL when the key is not 24 characters. */
int bp_wsframe_accept(const char *key, char out[BP_WSFRAME_ACCEPT_LEN + 1]);

/* Writes the header of an unmasked final frame with `len` payload bytes; returns its size. */
size_t bp_wsframe_header(enum bp_wsframe_op op, uint64_t len, uint8_t hdr[BP_WSFRAME_HEADER_MAX]);

/* Appends a whole unmasked frame (header and payload) to out: 0 or bp_buf's error. */
int bp_wsframe_append(bp_buf *out, enum bp_wsframe_op op, const void *payload, size_t len);
/* Appends a close frame carrying status code (a BP_WSFRAME_* close code). */
int bp_wsframe_append_close(bp_buf *out, unsigned code);

typedef struct bp_wsframe {
    enum bp_wsframe_op op;
    uint8_t *payload; /* inside the parsed buffer, unmasked in place */
    size_t len;
} bp_wsframe;

/* Decodes one client frame at buf[0..len): returns the bytes it takes (> 0) with *f filled,
 * 0 when more bytes are needed, BP_EPARSE for an unmasked or fragmented frame, a reserved
 * bit or opcode, a control frame over 125 bytes, and BP_ETOOBIG above max payload bytes. */
long bp_wsframe_parse(uint8_t *buf, size_t len, size_t max, bp_wsframe *f);

/* The close code that answers a bp_wsframe_parse failure (BP_ETOOBIG: too big, else protocol). */
unsigned bp_wsframe_close_code(long parse_rc);

#endif
