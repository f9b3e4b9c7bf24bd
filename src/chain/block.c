/* block.c - bp_block lifecycle: a block and the arena that owns everything in it. */
#include "blockpipe/model.h"

#include <stdlib.h>
#include <string.h>

#include "util/arena.h"

/* Most blocks decode into a few hundred KB; start small and let the arena double. */
#define BP_BLOCK_FIRST_CHUNK (16 * 1024)

bp_block *bp_block_new(void)
{
    bp_block *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->arena = bp_arena_new(BP_BLOCK_FIRST_CHUNK);
    if (!b->arena) {
        free(b);
        return NULL;
    }
    return b;
}

void bp_block_free(bp_block *b)
{
    if (!b)
        return;
    bp_arena_free(b->arena);
    free(b);
}

static const char *dup_opt(bp_arena *a, const char *s, int *failed)
{
    if (!s)
        return NULL;
    char *p = bp_arena_strndup(a, s, strlen(s));
    if (!p)
        *failed = 1;
    return p;
}

bp_block *bp_block_header_copy(const bp_block *b)
{
    bp_block *c = bp_block_new();
    if (!c)
        return NULL;
    int failed = 0;
    c->number = b->number;
    c->timestamp = b->timestamp;
    c->transaction_count = b->transaction_count;
    c->family = b->family;
    c->hash = dup_opt(c->arena, b->hash, &failed);
    c->parent_hash = dup_opt(c->arena, b->parent_hash, &failed);
    if (failed) {
        bp_block_free(c);
        return NULL;
    }
    return c;
}
