/*
 * pack_format.c - what the pack writer and reader agree on besides the
 * JSON: dtype names, file names, and the byte-plane transform.
 */
#include "pack/pack.h"

#include <stdio.h>
#include <string.h>

const char *rm_pack_elem_name(rm_pack_elem d) {
    switch (d) {
    case RM_PACK_BF16: return "BF16";
    case RM_PACK_F32: return "F32";
    case RM_PACK_F8_E4M3: return "F8_E4M3";
    }
    return "?";
}

int rm_pack_elem_parse(const char *s, rm_pack_elem *out) {
    for (int d = RM_PACK_BF16; d <= RM_PACK_F8_E4M3; d++)
        if (s && strcmp(s, rm_pack_elem_name((rm_pack_elem)d)) == 0) return *out = (rm_pack_elem)d, 1;
    return 0;
}

size_t rm_pack_elem_size(rm_pack_elem d) { return d == RM_PACK_F32 ? 4 : d == RM_PACK_BF16 ? 2 : 1; }

void rm_pack_rank_file(char *buf, size_t n, int rank, int tp) {
    snprintf(buf, n, "rank-%05d-of-%05d.nrpack", rank, tp);
}

void rm_pack_planes_split(uint8_t *restrict dst, const uint8_t *restrict src, size_t n, size_t width) {
    if (width == 2) {   /* the common case (bf16), written out so it vectorises */
        uint8_t *lo = dst, *hi = dst + n;
        for (size_t i = 0; i < n; i++) lo[i] = src[2 * i], hi[i] = src[2 * i + 1];
        return;
    }
    for (size_t b = 0; b < width; b++)
        for (size_t i = 0; i < n; i++) dst[b * n + i] = src[i * width + b];
}

void rm_pack_planes_merge(uint8_t *restrict dst, const uint8_t *restrict src, size_t n, size_t width) {
    if (width == 2) {
        const uint8_t *lo = src, *hi = src + n;
        for (size_t i = 0; i < n; i++) dst[2 * i] = lo[i], dst[2 * i + 1] = hi[i];
        return;
    }
    for (size_t b = 0; b < width; b++)
        for (size_t i = 0; i < n; i++) dst[i * width + b] = src[b * n + i];
}
