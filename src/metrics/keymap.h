/* keymap.h - an open-addressing hash map from (number, string, string) to an index: the
 * distinct senders, contracts and (contract, sender) pairs of a block, and a run's set and
 * contract increments per window. Keys borrow their strings (blocks outlive the map's use). */
#ifndef BP_METRICS_KEYMAP_H
#define BP_METRICS_KEYMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bp_keymap_slot {
    uint64_t hash;
    uint64_t n;
    const char *a, *b;
    size_t value;
    uint32_t gen; /* in use when it is the map's generation */
} bp_keymap_slot;

typedef struct bp_keymap {
    bp_keymap_slot *slots;
    size_t cap; /* a power of two, 0 before the first put */
    size_t count;
    uint32_t gen; /* emptying the map is a new generation, not a memset of every slot */
} bp_keymap;

/* A hash of s[0..n) mixed into h, 8 bytes at a time: keys are 0x-hex addresses and hashes (42
 * and 66 bytes), hashed several times per transaction. */
uint64_t bp_hash_bytes(uint64_t h, const char *s, size_t n);

/* Makes room for need elements of size bytes in the array *p of capacity *cap (doubling).
 * 0 or BP_ENOMEM (the array is then as it was). The metrics module's one growth rule. */
int bp_grow(void **p, size_t *cap, size_t need, size_t size);

/* Empties the map, keeping its storage (in O(1)). */
void bp_keymap_clear(bp_keymap *m);
void bp_keymap_release(bp_keymap *m);
/* Finds key (n, a, b) (a, b may be NULL); when absent inserts it with value next and sets
 * *added. *value gets the key's value. 0 or BP_ENOMEM. */
int bp_keymap_put(bp_keymap *m, uint64_t n, const char *a, const char *b, size_t next,
                  size_t *value, bool *added);

/* The value of key (n, a, b), inserted as init when absent (*added set): a pointer valid until
 * the next put or ref, NULL when out of memory. */
size_t *bp_keymap_ref(bp_keymap *m, uint64_t n, const char *a, const char *b, size_t init,
                      bool *added);
/* Points the key of the slot holding *value (from bp_keymap_ref) at other, equal strings:
 * copies that outlive the ones it was inserted with. */
void bp_keymap_rekey(size_t *value, const char *a, const char *b);
/* The value of key, or NULL when absent. */
size_t *bp_keymap_get(const bp_keymap *m, uint64_t n, const char *a, const char *b);

#endif
