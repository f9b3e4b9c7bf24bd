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

/* Rehashes into cap slots (a power of two that holds every key). */
static int u64map_resize(bp_u64map *m, size_t cap)
{
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

/* The slots n keys need: three quarters full at most. At half, a window's member took 16 to
 * 32 bytes; the longer probes are measured in docs/PERFORMANCE.md (metrics notes). */
static size_t cap_for(size_t n, size_t cap)
{
    for (cap = cap ? cap : 256; 4 * n > 3 * cap;)
        cap *= 2;
    return cap;
}

int bp_u64map_reserve(bp_u64map *m, size_t n)
{
    size_t cap = cap_for(n, m->cap);
    return cap == m->cap ? 0 : u64map_resize(m, cap);
}

/* The slot holding key, or the empty one where it would go; the slots walked past its home
 * are added to m->probes. */
static size_t u64map_slot(bp_u64map *m, uint64_t key)
{
    size_t mask = m->cap - 1, home = slot_hash(key) & mask, j = home;
    while (m->keys[j] && m->keys[j] != key)
        j = (j + 1) & mask;
    m->probes += (j - home) & mask;
    return j;
}

int bp_u64map_put(bp_u64map *m, uint64_t key, uint32_t init, bool *added, uint32_t **val)
{
    *added = false;
    if (val)
        *val = NULL;
    /* one walk: a member seen again is found without growing the table (a repeat could tip a
     * window over the sets' share), a new one goes where the walk stopped unless the table
     * must double first */
    size_t j = m->cap ? u64map_slot(m, key) : 0;
    if (!m->cap || !m->keys[j]) {
        if (4 * (m->count + 1) > 3 * m->cap) {
            if (u64map_resize(m, cap_for(m->count + 1, m->cap)) != 0)
                return BP_ENOMEM;
            j = u64map_slot(m, key);
        }
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

/* A lowercase hex digit's value | 0x10; 0 for any other byte (uppercase digits too: they
 * would come back lowercase, so such a string is kept whole). */
#define LOWER_HEX(c, v) [c] = 0x10 | (v)
static const unsigned char lower_hex[256] = {
    LOWER_HEX('0', 0),  LOWER_HEX('1', 1),  LOWER_HEX('2', 2),  LOWER_HEX('3', 3),
    LOWER_HEX('4', 4),  LOWER_HEX('5', 5),  LOWER_HEX('6', 6),  LOWER_HEX('7', 7),
    LOWER_HEX('8', 8),  LOWER_HEX('9', 9),  LOWER_HEX('a', 10), LOWER_HEX('b', 11),
    LOWER_HEX('c', 12), LOWER_HEX('d', 13), LOWER_HEX('e', 14), LOWER_HEX('f', 15)};

/* An address as nodes send it ("0x" and 40 lowercase hex digits) is kept as its 20 bytes: 20
 * bytes an id instead of a 48-byte arena copy and an 8-byte pointer, which was most of what a
 * busy minute held (docs/PERFORMANCE.md, metrics-sets). Any other string is copied whole. Every
 * address of a block is parsed so: one table lookup a digit and one test at the end (285
 * instructions an address, 400 with bp_hex_digit and a test for uppercase digits). */
static bool to_bin(const char *s, size_t n, unsigned char *out)
{
    if (n != 2 + 2 * BP_INTERN_BIN || s[0] != '0' || s[1] != 'x')
        return false;
    const unsigned char *h = (const unsigned char *)s + 2;
    unsigned all = 0x10;
    for (size_t i = 0; i < BP_INTERN_BIN; i++) {
        unsigned hi = lower_hex[h[2 * i]], lo = lower_hex[h[2 * i + 1]];
        all &= hi & lo;
        out[i] = (unsigned char)((hi & 15) << 4 | (lo & 15));
    }
    return all != 0;
}

static uint64_t bin_hash(const unsigned char *b)
{
    return bp_hash_bytes(0x84222325cbf29ce4ull, (const char *)b, BP_INTERN_BIN);
}

static uint64_t str_hash(const char *s, size_t n)
{
    return bp_hash_bytes(0xcbf29ce484222325ull, s, n);
}

/* The hash of id's key: its bytes, or its string. */
static uint64_t id_hash(const bp_intern *t, uint32_t id)
{
    const char *odd = t->odd ? t->odd[id - 1] : NULL;
    return odd ? str_hash(odd, strlen(odd)) : bin_hash(t->bin + (size_t)(id - 1) * BP_INTERN_BIN);
}

void bp_intern_release(bp_intern *t)
{
    bp_arena_free(t->arena);
    free(t->bin);
    free(t->odd);
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

void bp_intern_clear(bp_intern *t)
{
    if (t->arena)
        bp_arena_recycle(t->arena, INTERN_ARENA_KEEP);
    free(t->slots);
    free(t->bin);
    free(t->odd);
    t->slots = NULL;
    t->bin = NULL;
    t->odd = NULL;
    t->cap = t->n = t->cap_ids = 0;
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
        size_t j = id_hash(t, (uint32_t)t->slots[i]) & (cap - 1);
        while (s[j])
            j = (j + 1) & (cap - 1);
        s[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = s;
    t->cap = cap;
    return 0;
}

/* A new id for the bytes bin, or (bin NULL) for a copy of s[0..n). */
static int intern_add(bp_intern *t, const unsigned char *bin, const char *s, size_t n)
{
    if (t->n >= BP_INTERN_MAX) /* ids leave the top bit of a pair key free */
        return BP_ENOMEM;
    if (t->n == t->cap_ids) {
        size_t cap = t->cap_ids ? t->cap_ids * 2 : 512;
        unsigned char *b = realloc(t->bin, cap * BP_INTERN_BIN);
        if (!b)
            return BP_ENOMEM;
        t->bin = b;
        if (t->odd) {
            const char **o = realloc(t->odd, cap * sizeof(*o));
            if (!o)
                return BP_ENOMEM;
            memset(o + t->cap_ids, 0, (cap - t->cap_ids) * sizeof(*o));
            t->odd = o;
        }
        t->cap_ids = cap;
    }
    if (!bin) {
        if (!t->odd && !(t->odd = calloc(t->cap_ids, sizeof(*t->odd))))
            return BP_ENOMEM;
        if (!t->arena && !(t->arena = bp_arena_new(1u << 16)))
            return BP_ENOMEM;
        if (!(t->odd[t->n] = bp_arena_strndup(t->arena, s, n)))
            return BP_ENOMEM;
    } else {
        memcpy(t->bin + t->n * BP_INTERN_BIN, bin, BP_INTERN_BIN);
        if (t->odd)
            t->odd[t->n] = NULL;
    }
    t->n++;
    return 0;
}

/* The slot of s (its id in the low 32 bits), or the empty slot it would take. */
static size_t intern_slot(const bp_intern *t, const unsigned char *bin, const char *s, size_t n,
                          uint64_t *tag)
{
    uint64_t h = bin ? bin_hash(bin) : str_hash(s, n);
    *tag = h >> 32 << 32;
    size_t j = h & (t->cap - 1);
    for (; t->slots[j]; j = (j + 1) & (t->cap - 1)) {
        if ((t->slots[j] & ~(uint64_t)UINT32_MAX) != *tag)
            continue;
        uint32_t k = (uint32_t)t->slots[j];
        const char *odd = t->odd ? t->odd[k - 1] : NULL;
        if (bin ? !odd && memcmp(t->bin + (size_t)(k - 1) * BP_INTERN_BIN, bin, BP_INTERN_BIN) == 0
                : odd && strcmp(odd, s) == 0)
            return j;
    }
    return j;
}

uint32_t bp_intern_find(const bp_intern *t, const char *s)
{
    if (t->cap == 0)
        return 0;
    unsigned char b[BP_INTERN_BIN];
    size_t n = strlen(s);
    uint64_t tag;
    size_t j = intern_slot(t, to_bin(s, n, b) ? b : NULL, s, n, &tag);
    return (uint32_t)t->slots[j];
}

int bp_intern_id(bp_intern *t, const char *s, uint32_t *id)
{
    if (2 * (t->n + 1) > t->cap && intern_grow(t) != 0)
        return BP_ENOMEM;
    unsigned char b[BP_INTERN_BIN];
    size_t n = strlen(s);
    const unsigned char *bin = to_bin(s, n, b) ? b : NULL;
    uint64_t tag;
    size_t j = intern_slot(t, bin, s, n, &tag);
    if (t->slots[j]) {
        *id = (uint32_t)t->slots[j];
        return 0;
    }
    int rc = intern_add(t, bin, s, n);
    if (rc != 0)
        return rc;
    t->slots[j] = tag | (uint64_t)t->n;
    *id = (uint32_t)t->n;
    return 0;
}

const char *bp_intern_str(const bp_intern *t, uint32_t id, char buf[BP_INTERN_STR])
{
    const char *odd = t->odd ? t->odd[id - 1] : NULL;
    if (odd)
        return odd;
    static const char digits[] = "0123456789abcdef";
    const unsigned char *b = t->bin + (size_t)(id - 1) * BP_INTERN_BIN;
    buf[0] = '0';
    buf[1] = 'x';
    for (size_t i = 0; i < BP_INTERN_BIN; i++) {
        buf[2 + 2 * i] = digits[b[i] >> 4];
        buf[3 + 2 * i] = digits[b[i] & 15];
    }
    buf[2 + 2 * BP_INTERN_BIN] = '\0';
    return buf;
}

size_t bp_intern_bytes(const bp_intern *t)
{
    return (t->arena ? bp_arena_held(t->arena) : 0) + t->cap_ids * BP_INTERN_BIN +
           (t->odd ? t->cap_ids * sizeof(*t->odd) : 0) + t->cap * sizeof(*t->slots);
}
