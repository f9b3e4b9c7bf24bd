/* callsink.c - the output that calls the library user's callbacks (callsink.h). Its checkpoint
 * is the user's resume answer, else the last block it delivered in this run (kept in memory). */
#include "lib/callsink.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef struct callsink {
    bp_sink base;
    bp_callbacks cb;
    bool asked; /* resume was called (once: later checkpoints are the ones written) */
    bp_checkpoint cp;
} callsink;

static int cs_checkpoint(bp_sink *s, const char *chain, bp_checkpoint *out, bp_error *err)
{
    callsink *c = (callsink *)s;
    if (c->cb.resume && !c->asked) {
        uint64_t number = 0;
        char hash[BP_HASH_STRLEN] = "";
        int r = c->cb.resume(c->cb.user, chain, &number, hash);
        if (r < 0)
            return bp_error_set(err, BP_EINVAL, "the resume callback failed (%d) for chain %s", r,
                                chain);
        hash[BP_HASH_STRLEN - 1] = '\0';
        if (r > 0 && (strlen(hash) != BP_HASH_STRLEN - 1 || strncmp(hash, "0x", 2) != 0))
            return bp_error_set(err, BP_EINVAL,
                                "the resume callback gave block %" PRIu64
                                " with hash '%s': expected 0x and 64 hex digits",
                                number, hash);
        c->cp = (bp_checkpoint){.set = r > 0, .number = number};
        memcpy(c->cp.hash, hash, sizeof(c->cp.hash));
        c->asked = true;
    }
    *out = c->cp;
    return 0;
}

static int cs_write(bp_sink *s, const bp_batch *b, bp_error *err)
{
    callsink *c = (callsink *)s;
    for (size_t i = 0; i < b->count; i++) {
        const bp_event *e = &b->events[i];
        bool apply = e->kind == BP_EVENT_APPLY;
        int (*fn)(void *, const char *, const bp_block *) = apply ? c->cb.applied : c->cb.reverted;
        int r = fn ? fn(c->cb.user, b->chain, e->block) : 0;
        if (r != 0)
            return bp_error_set(err, BP_ESTOPPED, "the %s callback returned %d at block %" PRIu64,
                                apply ? "applied" : "reverted", r, e->block->number);
    }
    c->cp = b->checkpoint;
    return 0;
}

static void cs_close(bp_sink *s)
{
    free(s);
}

static const bp_sink_ops g_callsink_ops = {
    .scheme = "callbacks",
    .title = "callbacks",
    .usage = "(the library's callbacks)",
    .description = "the callbacks of a program using libblockpipe",
    .checkpoint = cs_checkpoint,
    .write = cs_write,
    .close = cs_close,
};

int bp_callsink_open(const bp_callbacks *cb, bp_sink **out, bp_error *err)
{
    callsink *c = calloc(1, sizeof(*c));
    char *url = strdup("callbacks:");
    if (!c || !url) {
        free(c);
        free(url);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    c->base.ops = &g_callsink_ops;
    c->base.url = url;
    c->cb = *cb;
    *out = &c->base;
    return 0;
}
