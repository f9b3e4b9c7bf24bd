/* idset.c - interned addresses and 64-bit key sets (idset.h). */
#include "metrics/idset.h"

#include <stdlib.h>
#include <string.h>

#include "blockpipe/error.h"
#include "metrics/keymap.h"
#include "util/arena.h"

#define INTERN_ARENA_KEEP (1u << 20)

static inline size_t slot_hash(uint64_t k)
{
    k *= 0x9e3779b97f4a7c15ull;
    return (size_t)(k ^ (k >> 29));
}

void bp_u64map_init(bp_u64map *m, bool with_values)
{
    memset(m, 0, sizeof(*m));
    m->with_values = with_values;
}

void bp_u64map_release(bp_u64map *m)
{
    bool v = m->with_values;
    free(m->keys);
    free(m->vals);
    bp_u64map_init(m, v);
}

static int u64map_grow(bp_u64map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 256;
    uint64_t *keys = calloc(cap, sizeof(*keys));
    uint32_t *vals = m->with_values ? malloc(cap * sizeof(*vals)) : NULL;
    if (!keys || (m->with_values && !vals)) {
        free(keys);
        free(vals);
        return BP_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t j = slot_hash(m->keys[i]) & (cap - 1);
        while (keys[j])
            j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        if (vals)
            vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return 0;
}

int bp_u64map_put(bp_u64map *m, uint64_t key, uint32_t init, bool *added, uint32_t **val)
{
    *added = false;
    if (val)
        *val = NULL;
    if (2 * (m->count + 1) > m->cap && u64map_grow(m) != 0)
        return BP_ENOMEM;
    size_t j = slot_hash(key) & (m->cap - 1);
    while (m->keys[j] && m->keys[j] != key)
        j = (j + 1) & (m->cap - 1);
    if (!m->keys[j]) {
        m->keys[j] = key;
        if (m->vals)
            m->vals[j] = init;
        m->count++;
        *added = true;
    }
    if (val && m->vals)
        *val = &m->vals[j];
    return 0;
}

uint32_t *bp_u64map_find(const bp_u64map *m, uint64_t key, bool *found)
{
    *found = false;
    if (m->cap == 0)
        return NULL;
    size_t j = slot_hash(key) & (m->cap - 1);
    while (m->keys[j] && m->keys[j] != key)
        j = (j + 1) & (m->cap - 1);
    *found = m->keys[j] != 0;
    return *found && m->vals ? &m->vals[j] : NULL;
}

size_t bp_u64map_bytes(const bp_u64map *m)
{
    return m->cap * (sizeof(uint64_t) + (m->with_values ? sizeof(uint32_t) : 0));
}

/* ---- interned strings ------------------------------------------------------------------ */

static uint64_t str_hash(const char *s, size_t n)
{
    return bp_hash_bytes(0xcbf29ce484222325ull, s, n);
}

void bp_intern_release(bp_intern *t)
{
    bp_arena_free(t->arena);
    free(t->strs);
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

void bp_intern_clear(bp_intern *t)
{
    if (t->arena)
        bp_arena_recycle(t->arena, INTERN_ARENA_KEEP);
    free(t->slots);
    free(t->strs);
    t->slots = NULL;
    t->strs = NULL;
    t->cap = t->n = t->cap_strs = 0;
}

static int intern_grow(bp_intern *t)
{
    size_t cap = t->cap ? t->cap * 2 : 1024;
    uint64_t *s = calloc(cap, sizeof(*s));
    if (!s)
        return BP_ENOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slots[i])
            continue;
        uint32_t id = (uint32_t)t->slots[i];
        const char *str = t->strs[id - 1];
        size_t j = str_hash(str, strlen(str)) & (cap - 1);
        while (s[j])
            j = (j + 1) & (cap - 1);
        s[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = s;
    t->cap = cap;
    return 0;
}

static int intern_add(bp_intern *t, const char *s, size_t n, uint64_t *slot)
{
    if (t->n >= BP_INTERN_MAX) /* ids leave the top bit of a pair key free */
        return BP_ENOMEM;
    if (!t->arena && !(t->arena = bp_arena_new(1u << 16)))
        return BP_ENOMEM;
    if (t->n == t->cap_strs) {
        size_t cap = t->cap_strs ? t->cap_strs * 2 : 512;
        const char **p = realloc(t->strs, cap * sizeof(*p));
        if (!p)
            return BP_ENOMEM;
        t->strs = p;
        t->cap_strs = cap;
    }
    char *copy = bp_arena_strndup(t->arena, s, n);
    if (!copy)
        return BP_ENOMEM;
    t->strs[t->n++] = copy;
    *slot |= (uint64_t)t->n;
    return 0;
}

uint32_t bp_intern_find(const bp_intern *t, const char *s)
{
    if (t->cap == 0)
        return 0;
    size_t n = strlen(s);
    uint64_t h = str_hash(s, n), tag = h >> 32 << 32;
    for (size_t j = h & (t->cap - 1); t->slots[j]; j = (j + 1) & (t->cap - 1)) {
        uint32_t k = (uint32_t)t->slots[j];
        if ((t->slots[j] & ~(uint64_t)UINT32_MAX) == tag && strcmp(t->strs[k - 1], s) == 0)
            return k;
    }
    return 0;
}

int bp_intern_id(bp_intern *t, const char *s, uint32_t *id)
{
    if (2 * (t->n + 1) > t->cap && intern_grow(t) != 0)
        return BP_ENOMEM;
    size_t n = strlen(s);
    uint64_t h = str_hash(s, n), tag = h >> 32 << 32;
    size_t j = h & (t->cap - 1);
    for (; t->slots[j]; j = (j + 1) & (t->cap - 1)) {
        if ((t->slots[j] & ~(uint64_t)UINT32_MAX) != tag)
            continue;
        uint32_t k = (uint32_t)t->slots[j];
        if (strcmp(t->strs[k - 1], s) == 0) {
            *id = k;
            return 0;
        }
    }
    t->slots[j] = tag;
    int rc = intern_add(t, s, n, &t->slots[j]);
    if (rc != 0) {
        t->slots[j] = 0;
        return rc;
    }
    *id = (uint32_t)t->n;
    return 0;
}

size_t bp_intern_bytes(const bp_intern *t)
{
    return (t->arena ? bp_arena_held(t->arena) : 0) + t->cap_strs * sizeof(*t->strs) +
           t->cap * sizeof(*t->slots);
}
