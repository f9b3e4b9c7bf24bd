/* callsink.c - the output that calls the library user's callbacks (callsink.h). Its checkpoint
 * is the user's resume answer, else the last block it delivered in this run (kept in memory). */
#include "lib/callsink.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where one chain stands (the chains of a chains: list share the output, each its own). */
typedef struct chain_state {
    char name[64];
    bool asked;         /* resume was called (once: later checkpoints are the ones written) */
    bp_checkpoint cp;   /* the last block delivered (or resume's newest) */
    bp_block_ref *held; /* resume's answer, newest first (the `recent` op) */
    size_t held_n;
} chain_state;

typedef struct callsink {
    bp_sink base;
    bp_callbacks cb;
    /* the chains seen, by name (calls come one at a time: core/multi.c serializes them) */
    chain_state *chains;
    size_t n, cap;
} callsink;

#define HELD_MAX 128 /* as many as core/outputs.c keeps */

static bool hash_ok(const char *h)
{
    if (strlen(h) != BP_HASH_STRLEN - 1 || strncmp(h, "0x", 2) != 0)
        return false;
    return strspn(h + 2, "0123456789abcdefABCDEF") == BP_HASH_STRLEN - 3;
}

/* chain's state, added on first sight; NULL when out of memory. */
static chain_state *state_of(callsink *c, const char *chain)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->chains[i].name, chain) == 0)
            return &c->chains[i];
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4;
        chain_state *more = realloc(c->chains, cap * sizeof(*more));
        if (!more)
            return NULL;
        c->chains = more;
        c->cap = cap;
    }
    chain_state *st = &c->chains[c->n++];
    memset(st, 0, sizeof(*st));
    snprintf(st->name, sizeof(st->name), "%s", chain);
    return st;
}

/* Asks resume once per chain: its blocks, checked (newest first, consecutive numbers,
 * hashes). */
static int ask_resume(callsink *cs, chain_state *c, const char *chain, bp_error *err)
{
    c->asked = true;
    if (!cs->cb.resume)
        return 0;
    c->held = calloc(HELD_MAX, sizeof(*c->held));
    if (!c->held)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    int r = cs->cb.resume(cs->cb.user, chain, c->held, HELD_MAX);
    if (r < 0 || r > HELD_MAX)
        return bp_error_set(err, BP_EINVAL, "the resume callback returned %d for chain %s", r,
                            chain);
    for (int i = 0; i < r; i++) {
        bp_block_ref *b = &c->held[i];
        b->hash[BP_HASH_STRLEN - 1] = '\0';
        for (char *p = b->hash; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
        if (!hash_ok(b->hash) || (i > 0 && b->number + 1 != c->held[i - 1].number))
            return bp_error_set(err, BP_EINVAL,
                                "the resume callback's block %d (number %" PRIu64
                                ", hash '%s'): expected newest first, consecutive numbers, "
                                "hashes of 0x and 64 hex digits",
                                i, b->number, b->hash);
    }
    c->held_n = (size_t)r;
    if (r > 0) {
        c->cp = (bp_checkpoint){.set = true, .number = c->held[0].number};
        memcpy(c->cp.hash, c->held[0].hash, sizeof(c->cp.hash));
    }
    return 0;
}

static int cs_checkpoint(bp_sink *s, const char *chain, bp_checkpoint *out, bp_error *err)
{
    callsink *cs = (callsink *)s;
    chain_state *c = state_of(cs, chain);
    if (!c)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    int rc = c->asked ? 0 : ask_resume(cs, c, chain, err);
    if (rc != 0)
        return rc;
    *out = c->cp;
    return 0;
}

/* resume's blocks while the checkpoint is still its newest, else the checkpoint alone. */
static int cs_recent(bp_sink *s, const char *chain, bp_checkpoint *out, size_t max, size_t *n,
                     bp_error *err)
{
    chain_state *c = state_of((callsink *)s, chain);
    *n = 0;
    if (!c)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    bool from_resume = c->held_n > 0 && c->cp.number == c->held[0].number &&
                       strcmp(c->cp.hash, c->held[0].hash) == 0;
    for (size_t i = 0; from_resume && i < c->held_n && i < max; i++) {
        out[i] = (bp_checkpoint){.set = true, .number = c->held[i].number};
        memcpy(out[i].hash, c->held[i].hash, sizeof(out[i].hash));
        *n = i + 1;
    }
    if (*n == 0 && c->cp.set && max > 0)
        out[(*n)++] = c->cp;
    return 0;
}

static int cs_write(bp_sink *s, const bp_batch *b, bp_error *err)
{
    callsink *c = (callsink *)s;
    chain_state *st = state_of(c, b->chain);
    if (!st)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    for (size_t i = 0; i < b->count; i++) {
        const bp_event *e = &b->events[i];
        bool apply = e->kind == BP_EVENT_APPLY;
        int (*fn)(void *, const char *, const bp_block *) = apply ? c->cb.applied : c->cb.reverted;
        int r = fn ? fn(c->cb.user, b->chain, e->block) : 0;
        if (r != 0)
            return bp_error_set(err, BP_ESTOPPED,
                                "the %s callback returned %d at block %" PRIu64 " of chain %s",
                                apply ? "applied" : "reverted", r, e->block->number, b->chain);
    }
    st->cp = b->checkpoint;
    return 0;
}

static void cs_close(bp_sink *s)
{
    callsink *c = (callsink *)s;
    for (size_t i = 0; i < c->n; i++)
        free(c->chains[i].held);
    free(c->chains);
    free(s);
}

static const bp_sink_ops g_callsink_ops = {
    .scheme = "callbacks",
    .title = "callbacks",
    .usage = "(the library's callbacks)",
    .description = "the callbacks of a program using libblockpipe",
    .checkpoint = cs_checkpoint,
    .recent = cs_recent,
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
