/* wsframe.c - RFC 6455 accept key (SHA-1 and base64 from libwebsockets) and frame codec. */
#include "util/wsframe.h"

#include <libwebsockets.h>
#include <string.h>

#include "blockpipe/error.h"

static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int bp_wsframe_accept(const char *key, char out[BP_WSFRAME_ACCEPT_LEN + 1])
{
    char both[24 + sizeof(GUID)];
    unsigned char md[20];
    char b64[BP_WSFRAME_ACCEPT_LEN + 8]; /* lws wants room beyond the NUL */
    if (strlen(key) != 24)
        return BP_EINVAL;
    memcpy(both, key, 24);
    memcpy(both + 24, GUID, sizeof(GUID));
    lws_SHA1((const unsigned char *)both, 24 + sizeof(GUID) - 1, md);
    if (lws_b64_encode_string((const char *)md, 20, b64, sizeof(b64)) != BP_WSFRAME_ACCEPT_LEN)
        return BP_EINVAL;
    memcpy(out, b64, BP_WSFRAME_ACCEPT_LEN + 1);
    return 0;
}

size_t bp_wsframe_header(enum bp_wsframe_op op, uint64_t len, uint8_t hdr[BP_WSFRAME_HEADER_MAX])
{
    hdr[0] = (uint8_t)(0x80 | op);
    if (len < 126) {
        hdr[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        hdr[1] = 126;
        hdr[2] = (uint8_t)(len >> 8);
        hdr[3] = (uint8_t)len;
        return 4;
    }
    hdr[1] = 127;
    for (int i = 0; i < 8; i++)
        hdr[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

int bp_wsframe_append(bp_buf *out, enum bp_wsframe_op op, const void *payload, size_t len)
{
    uint8_t hdr[BP_WSFRAME_HEADER_MAX];
    size_t hl = bp_wsframe_header(op, len, hdr);
    int rc = bp_buf_reserve(out, hl + len);
    if (rc == 0)
        rc = bp_buf_append(out, hdr, hl);
    return rc != 0 ? rc : bp_buf_append(out, payload, len);
}

int bp_wsframe_append_close(bp_buf *out, unsigned code)
{
    uint8_t b[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    return bp_wsframe_append(out, BP_WSFRAME_CLOSE, b, sizeof(b));
}

static bool known_op(unsigned op)
{
    return op == BP_WSFRAME_TEXT || op == BP_WSFRAME_BINARY || op == BP_WSFRAME_CLOSE ||
           op == BP_WSFRAME_PING || op == BP_WSFRAME_PONG;
}

long bp_wsframe_parse(uint8_t *buf, size_t len, size_t max, bp_wsframe *f)
{
    if (len < 2)
        return 0;
    unsigned op = buf[0] & 0x0f;
    /* FIN set, no RSV bits (no extension was agreed), client frames masked. */
    if ((buf[0] & 0xf0) != 0x80 || !(buf[1] & 0x80) || !known_op(op))
        return BP_EPARSE;
    uint64_t plen = buf[1] & 0x7f;
    size_t at = 2;
    if (plen >= 126) {
        size_t n = plen == 126 ? 2 : 8;
        if (len < at + n)
            return 0;
        plen = 0;
        for (size_t i = 0; i < n; i++)
            plen = plen << 8 | buf[at + i];
        at += n;
    }
    if (op >= BP_WSFRAME_CLOSE && plen > 125)
        return BP_EPARSE;
    if (plen > max)
        return BP_ETOOBIG;
    if (len < at + 4 + plen)
        return 0;
    const uint8_t *mask = buf + at;
    at += 4;
    for (size_t i = 0; i < plen; i++)
        buf[at + i] ^= mask[i & 3];
    f->op = (enum bp_wsframe_op)op;
    f->payload = buf + at;
    f->len = (size_t)plen;
    return (long)(at + plen);
}

unsigned bp_wsframe_close_code(long parse_rc)
{
    return parse_rc == BP_ETOOBIG ? BP_WSFRAME_TOO_BIG : BP_WSFRAME_PROTOCOL;
}
