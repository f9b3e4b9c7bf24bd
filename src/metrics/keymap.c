/* keymap.c - open addressing with linear probing; grows at 1/2 load. */
#include "metrics/keymap.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "blockpipe/error.h"

uint64_t bp_hash_bytes(uint64_t h, const char *s, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 32;
    }
    uint64_t w = 0;
    memcpy(&w, s + i, n - i);
    h = (h ^ w ^ (uint64_t)n << 56) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}

static uint64_t mix(uint64_t h, const char *s)
{
    if (!s)
        return (h ^ 0x9e37) * 0x9e3779b97f4a7c15ull;
    return bp_hash_bytes(h, s, strlen(s));
}

static uint64_t hash_of(uint64_t n, const char *a, const char *b)
{
    uint64_t h = 0xcbf29ce484222325ull ^ (n * 0x9e3779b97f4a7c15ull);
    h = mix(mix(h, a), b);
    return h ^ (h >> 31);
}

static bool str_eq(const char *x, const char *y)
{
    return x == y || (x && y && strcmp(x, y) == 0);
}

int bp_grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * size);
    if (!q)
        return BP_ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

void bp_keymap_clear(bp_keymap *m)
{
    m->count = 0;
    if (++m->gen == 0) { /* wrapped: old slots could look current */
        if (m->slots)
            memset(m->slots, 0, m->cap * sizeof(*m->slots));
        m->gen = 1;
    }
}

void bp_keymap_release(bp_keymap *m)
{
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

static int grow(bp_keymap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    bp_keymap_slot *s = calloc(cap, sizeof(*s));
    if (!s)
        return BP_ENOMEM;
    if (m->gen == 0)
        m->gen = 1;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].gen != m->gen)
            continue;
        size_t j = m->slots[i].hash & (cap - 1);
        while (s[j].gen == m->gen)
            j = (j + 1) & (cap - 1);
        s[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = s;
    m->cap = cap;
    return 0;
}

/* The slot of the key, or the empty slot where it would go. */
static bp_keymap_slot *slot_of(const bp_keymap *m, uint64_t h, uint64_t n, const char *a,
                               const char *b)
{
    size_t j = h & (m->cap - 1);
    for (; m->slots[j].gen == m->gen; j = (j + 1) & (m->cap - 1)) {
        bp_keymap_slot *s = &m->slots[j];
        if (s->hash == h && s->n == n && str_eq(s->a, a) && str_eq(s->b, b))
            return s;
    }
    return &m->slots[j];
}

size_t *bp_keymap_ref(bp_keymap *m, uint64_t n, const char *a, const char *b, size_t init,
                      bool *added)
{
    *added = false;
    if (2 * (m->count + 1) > m->cap && grow(m) != 0)
        return NULL;
    uint64_t h = hash_of(n, a, b);
    bp_keymap_slot *s = slot_of(m, h, n, a, b);
    if (s->gen != m->gen) {
        *s = (bp_keymap_slot){.hash = h, .n = n, .a = a, .b = b, .value = init, .gen = m->gen};
        m->count++;
        *added = true;
    }
    return &s->value;
}

void bp_keymap_rekey(size_t *value, const char *a, const char *b)
{
    bp_keymap_slot *s = (bp_keymap_slot *)((char *)value - offsetof(bp_keymap_slot, value));
    s->a = a;
    s->b = b;
}

size_t *bp_keymap_get(const bp_keymap *m, uint64_t n, const char *a, const char *b)
{
    if (m->count == 0)
        return NULL;
    bp_keymap_slot *s = slot_of(m, hash_of(n, a, b), n, a, b);
    return s->gen == m->gen ? &s->value : NULL;
}

int bp_keymap_put(bp_keymap *m, uint64_t n, const char *a, const char *b, size_t next,
                  size_t *value, bool *added)
{
    size_t *v = bp_keymap_ref(m, n, a, b, next, added);
    if (!v)
        return BP_ENOMEM;
    *value = *v;
    return 0;
}
