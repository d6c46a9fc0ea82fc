/*
 * hashmap.h - an open-addressing hash map from byte strings to int32 values.
 *
 * Generic and small: the tokenizer uses it for token -> id, and anything else
 * that needs a string lookup may too. Keys are BORROWED: the map stores the
 * pointer and length, so the bytes must outlive the map (put them in an arena
 * you own). Keys may contain any bytes, NUL included, and be up to
 * UINT32_MAX bytes long. Lookups on a map that is not being modified may run
 * from any number of threads at once.
 */
#ifndef RM_HASHMAP_H
#define RM_HASHMAP_H

#include "common.h"

typedef struct rm_hashmap_slot {
    const char *key;          /* NULL = empty slot */
    uint32_t len;
    uint32_t hash;            /* low 32 bits of the key's hash, compared before the bytes */
    int32_t value;
} rm_hashmap_slot;

typedef struct rm_hashmap {
    rm_hashmap_slot *slots;   /* mask + 1 slots, a power of two */
    size_t mask;
    size_t count;
} rm_hashmap;

/* A 64-bit hash of n bytes (not cryptographic; fine for tables). */
RM_INTERNAL uint64_t rm_hash_bytes(const void *data, size_t n);

/* Prepares an empty map sized for `expected` keys. Returns 0 when out of memory.
 * A zero-initialised rm_hashmap is also a valid empty map. */
RM_INTERNAL int rm_hashmap_init(rm_hashmap *m, size_t expected);

/* Inserts key -> value. Returns 1 when inserted, 0 when the key was already
 * present (the old value is kept and written to *existing if not NULL), and
 * -1 when out of memory or the key is longer than UINT32_MAX bytes. */
RM_INTERNAL int rm_hashmap_put(rm_hashmap *m, const char *key, size_t len, int32_t value,
                               int32_t *existing);

/* Looks key up. Returns 1 and sets *value when found, else 0. */
RM_INTERNAL int rm_hashmap_get(const rm_hashmap *m, const char *key, size_t len, int32_t *value);

/* Frees the slots (not the keys). The map is empty and reusable afterwards. */
RM_INTERNAL void rm_hashmap_free(rm_hashmap *m);

#endif
