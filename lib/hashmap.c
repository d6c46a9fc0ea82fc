/*
 * hashmap.c - open addressing with linear probing, kept at most 5/8 full so
 * probes stay short; keys are borrowed (see hashmap.h).
 */
#include "hashmap.h"

#include <string.h>

static inline uint64_t mix64(uint64_t h) {   /* MurmurHash3's finaliser */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

uint64_t rm_hash_bytes(const void *data, size_t n) {
    const unsigned char *p = data;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)n * 0xbf58476d1ce4e5b9ULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ mix64(w)) * 0x94d049bb133111ebULL;
        p += 8;
        n -= 8;
    }
    uint64_t tail = 0;
    for (size_t i = 0; i < n; i++) tail |= (uint64_t)p[i] << (8 * i);
    return mix64(h ^ tail ^ (uint64_t)n << 59);
}

static size_t capacity_for(size_t count) {
    size_t cap = 16;
    if (count > SIZE_MAX / 16) return 0;      /* rm_calloc then fails: out of memory */
    while ((count + 1) * 8 > cap * 5) cap <<= 1;   /* the same 5/8 bound put() keeps */
    return cap;
}

static int rehash(rm_hashmap *m, size_t cap) {
    rm_hashmap_slot *slots = rm_calloc(cap, sizeof *slots);
    if (!slots) return 0;
    size_t mask = cap - 1;
    if (m->slots) {
        for (size_t i = 0; i <= m->mask; i++) {
            rm_hashmap_slot s = m->slots[i];
            if (!s.key) continue;
            /* The full hash is not stored; the low 32 bits place the key as well
             * as any bits do for tables below 2^32 slots. Larger tables rehash
             * from the bytes. */
            size_t j = (mask > 0xffffffffULL ? (size_t)rm_hash_bytes(s.key, s.len) : s.hash) & mask;
            while (slots[j].key) j = (j + 1) & mask;
            slots[j] = s;
        }
    }
    rm_mfree(m->slots);
    m->slots = slots;
    m->mask = mask;
    return 1;
}

int rm_hashmap_init(rm_hashmap *m, size_t expected) {
    memset(m, 0, sizeof *m);
    size_t cap = capacity_for(expected);
    return cap && rehash(m, cap);
}

int rm_hashmap_put(rm_hashmap *m, const char *key, size_t len, int32_t value, int32_t *existing) {
    if (len > UINT32_MAX) return -1;
    if (!key) key = "";   /* only with len 0; an empty key still needs a pointer to mark its slot */
    if (!m->slots || (m->count + 1) * 8 > (m->mask + 1) * 5) {
        size_t cap = m->slots ? (m->mask + 1) * 2 : 16;
        if (cap == 0 || !rehash(m, cap)) return -1;
    }
    uint64_t h = rm_hash_bytes(key, len);
    size_t j = (m->mask > 0xffffffffULL ? (size_t)h : (uint32_t)h) & m->mask;
    for (;; j = (j + 1) & m->mask) {
        rm_hashmap_slot *s = &m->slots[j];
        if (!s->key) break;
        if (s->hash == (uint32_t)h && s->len == len && memcmp(s->key, key, len) == 0) {
            if (existing) *existing = s->value;
            return 0;
        }
    }
    m->slots[j] = (rm_hashmap_slot){key, (uint32_t)len, (uint32_t)h, value};
    m->count++;
    return 1;
}

int rm_hashmap_get(const rm_hashmap *m, const char *key, size_t len, int32_t *value) {
    if (!m->slots || len > UINT32_MAX) return 0;
    if (!key) key = "";
    uint64_t h = rm_hash_bytes(key, len);
    size_t j = (m->mask > 0xffffffffULL ? (size_t)h : (uint32_t)h) & m->mask;
    for (;; j = (j + 1) & m->mask) {
        const rm_hashmap_slot *s = &m->slots[j];
        if (!s->key) return 0;
        if (s->hash == (uint32_t)h && s->len == len && memcmp(s->key, key, len) == 0) {
            *value = s->value;
            return 1;
        }
    }
}

void rm_hashmap_free(rm_hashmap *m) {
    rm_mfree(m->slots);
    memset(m, 0, sizeof *m);
}
