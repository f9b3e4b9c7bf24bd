/* fuzz_wsframe.c - client WebSocket frames as simnode's server takes them (util/wsframe.c):
 * the bytes as a stream of frames, parsed one after another as wsconn.c does, under a
 * message cap of 1000 bytes. Every frame is taken whole, refused, or waits for more bytes,
 * never read past the bytes there are; a frame taken fits its cap and its kind's limits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blockpipe/error.h"
#include "util/wsframe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1); /* exactly size bytes: ASan sees a read past them */
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    for (size_t at = 0; at < size;) {
        bp_wsframe f;
        long used = bp_wsframe_parse(buf + at, size - at, 1000, &f);
        if (used < 0) {
            unsigned code = bp_wsframe_close_code(used);
            if ((used != BP_EPARSE && used != BP_ETOOBIG) || (code != 1002 && code != 1009))
                abort();
            break;
        }
        if (used == 0)
            break; /* more bytes needed */
        if ((size_t)used > size - at || f.len > 1000 || f.payload < buf + at ||
            f.payload + f.len != buf + at + used || (f.op >= BP_WSFRAME_CLOSE && f.len > 125))
            abort();
        at += (size_t)used;
    }
    free(buf);
    return 0;
}
