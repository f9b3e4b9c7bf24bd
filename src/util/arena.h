/* arena.h - bump allocator owned by one bp_block. Chunks grow geometrically; everything is
 * freed at once by bp_arena_free. Not thread-safe (one block is built by one thread). */
#ifndef BP_UTIL_ARENA_H
#define BP_UTIL_ARENA_H

#include <stddef.h>

typedef struct bp_arena bp_arena;

bp_arena *bp_arena_new(size_t first_chunk);
void bp_arena_free(bp_arena *a);
/* 16-byte aligned, uninitialised; NULL when out of memory. */
void *bp_arena_alloc(bp_arena *a, size_t n);
/* Unaligned, uninitialised: for text and bytes. A string rounded up to 16 bytes wasted 7.5
 * bytes on average, 3.6 MiB of a 50,000-tx block's arena (docs/PERFORMANCE.md "Memory per
 * chain"). NULL when out of memory. */
void *bp_arena_alloc_bytes(bp_arena *a, size_t n);
/* Zeroed array of n elements of size sz; NULL on overflow or out of memory. */
void *bp_arena_calloc(bp_arena *a, size_t n, size_t sz);
/* Copies s[0..len) and adds a NUL (unaligned, as bp_arena_alloc_bytes). */
char *bp_arena_strndup(bp_arena *a, const char *s, size_t len);
/* Same, lower-casing ASCII letters on the way (hashes/addresses at the text boundary). */
char *bp_arena_strndup_lower(bp_arena *a, const char *s, size_t len);
/* Makes p (from malloc) part of the arena: it is freed by bp_arena_free, after nothing in
 * the arena needs it. 0, or -1 when out of memory: then p is NOT adopted (the caller still
 * owns it). Zero-copy decoding hands the HTTP body to the block this way. */
int bp_arena_adopt(bp_arena *a, void *p);
/* Same with a release function instead of free (e.g. dropping one reference of a buffer
 * several arenas share); `bytes` is added to bp_arena_used so memory accounting sees it. */
int bp_arena_adopt_fn(bp_arena *a, void *p, size_t bytes, void (*release)(void *));
/* Empties the arena for reuse: adopted memory is released and every chunk is freed except
 * the largest, kept (all of it free again) when it is at most max_keep bytes. Returns the
 * bytes now free in the arena. Spares a thread that parses one answer after another from
 * mapping and faulting in fresh pages each time. */
size_t bp_arena_recycle(bp_arena *a, size_t max_keep);
/* Total bytes handed out plus bytes declared by bp_arena_adopt_fn (for memory accounting). */
size_t bp_arena_used(const bp_arena *a);
/* What the arena holds resident (for memory accounting): its chunks whole (a chunk's free
 * tail is memory too, resident once malloc reuses freed pages for it), but of a chunk malloc
 * maps (1 MiB and more) only the pages ever handed out (a recycled one's stay resident), plus
 * the bytes declared by bp_arena_adopt_fn. Walks the chunks (a few dozen for the biggest blocks).
 */
size_t bp_arena_held(const bp_arena *a);

#endif
