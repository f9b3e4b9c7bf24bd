/* idset.h - compact exact sets for the metrics module's open windows: addresses interned to
 * 32-bit ids (bp_intern), and hash sets / maps of 64-bit keys made of them (bp_u64map). A
 * window's member is 8 bytes in a table at most three quarters full (10.7 to 21.3 bytes a
 * member), against a 48-byte string-keyed slot and two string copies before: the open day of
 * a busy chain fits the budget for longer and every member test is one multiply and a probe,
 * not a string hash and compare. */
#ifndef BP_METRICS_IDSET_H
#define BP_METRICS_IDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bp_arena;

/* Open addressing on non-zero 64-bit keys (0 marks an empty slot), optional 32-bit values. */
typedef struct bp_u64map {
    uint64_t *keys;
    uint32_t *vals; /* NULL for a set */
    size_t cap;     /* a power of two, 0 before the first put */
    size_t count;
    bool with_values;
    uint64_t probes; /* slots puts walked past their keys' home slots: the probe cost the
                      * load factor and the order of inserts cost, counted (tests, notes) */
} bp_u64map;

/* A map (with_values) or a set. */
void bp_u64map_init(bp_u64map *m, bool with_values);
/* Empties the map and frees its storage. */
void bp_u64map_release(bp_u64map *m);
/* Inserts key (non-zero) with value init when absent (*added set); the key's value slot (NULL
 * for a set, or on BP_ENOMEM, see rc), valid until the next put. 0 or BP_ENOMEM. */
int bp_u64map_put(bp_u64map *m, uint64_t key, uint32_t init, bool *added, uint32_t **val);
/* Makes room for n keys in all without growing on the way (what a merge of one table into
 * another needs: see close_hour in openwin.c). 0 or BP_ENOMEM. */
int bp_u64map_reserve(bp_u64map *m, size_t n);
/* Whether key is there (*found); its value slot (NULL for a set or when absent). */
uint32_t *bp_u64map_find(const bp_u64map *m, uint64_t key, bool *found);
/* The bytes the map holds. */
size_t bp_u64map_bytes(const bp_u64map *m);

/* Strings (addresses) to ids 1, 2, ... BP_INTERN_MAX and back. An address as nodes send it
 * ("0x" and 40 lowercase hex digits) is kept as its 20 bytes; any other string is copied. */
#define BP_INTERN_MAX 0x7fffffffu
#define BP_INTERN_BIN 20                          /* bytes of an address */
#define BP_INTERN_STR (2 + 2 * BP_INTERN_BIN + 1) /* its text, NUL included */
typedef struct bp_intern {
    unsigned char *bin;     /* id - 1 -> the address's 20 bytes (unused for an odd string) */
    const char **odd;       /* id - 1 -> the copy of a string that is not such an address, or
                             * NULL; NULL until the first one */
    struct bp_arena *arena; /* the copies */
    size_t n, cap_ids;
    uint64_t *slots; /* (hash high 32 bits << 32) | id; 0: empty */
    size_t cap;
} bp_intern;

void bp_intern_release(bp_intern *t);
/* Forgets every string (ids start again at 1); keeps a little storage. */
void bp_intern_clear(bp_intern *t);
/* The id of s, made when new. 0 or BP_ENOMEM. */
int bp_intern_id(bp_intern *t, const char *s, uint32_t *id);
/* The id of s, 0 when it is not interned. */
uint32_t bp_intern_find(const bp_intern *t, const char *s);
/* id's string: written into buf, or the interned copy of an odd string. */
const char *bp_intern_str(const bp_intern *t, uint32_t id, char buf[BP_INTERN_STR]);
size_t bp_intern_bytes(const bp_intern *t);

#endif
