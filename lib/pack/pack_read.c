/*
 * pack_read.c - a pack's manifest, and one rank's file into memory. The
 * files are untrusted: the manifest fixes each rank file's size and its
 * index's XXH64, every number of the index is checked before it sizes or
 * addresses anything, and every chunk's XXH64 is checked after it is
 * decompressed. Chunks decompress in parallel, over the threads given.
 */
#include "pack/pack.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#define MANIFEST_MAX_BYTES (16u << 20)
#define INDEX_MAX_BYTES ((uint64_t)64 << 20)   /* ~100 bytes a 4 MiB chunk: 2 MB for a 70 GB rank */
#define MAX_TENSORS (1u << 20)
#define MAX_NAME 512

typedef struct pack_file {
    char *name;
    uint64_t bytes, index_hash;
} pack_file;

struct rm_pack {
    char *dir;
    char *manifest;             /* its path, for messages */
    int tp;
    rm_dtype dtype;
    size_t chunk_bytes;
    pack_file *files;           /* [tp] */
};

static int online_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int rm_pack_present(const char *dir) {
    char *path = rm_path_join(dir, RM_PACK_MANIFEST);
    struct stat sb;
    int yes = path && stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
    rm_mfree(path);
    return yes;
}

static int parse_hex64(const char *s, uint64_t *out) {
    if (!s || strlen(s) != 16) return 0;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return 0;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 1;
}

/* A JSON number that is a whole number in [lo, hi]. */
static int get_count(json_t *v, int64_t lo, int64_t hi, int64_t *out) {
    if (!json_is_integer(v)) return 0;
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) return 0;
    *out = x;
    return 1;
}

static int file_name_safe(const char *name) {
    return name && name[0] && name[0] != '.' && !strchr(name, '/') && !strchr(name, '\\') && strlen(name) < 256;
}

void rm_pack_close(rm_pack *p) {
    if (!p) return;
    if (p->files)
        for (int r = 0; r < p->tp; r++) rm_mfree(p->files[r].name);
    rm_mfree(p->files);
    rm_mfree(p->dir);
    rm_mfree(p->manifest);
    rm_mfree(p);
}

rm_status rm_pack_open(rm_pack **out, const char *dir, rm_err *err) {
    *out = NULL;
    rm_global_init();
    rm_pack *p = rm_calloc(1, sizeof *p);
    char *text = NULL;
    size_t len;
    json_t *root = NULL;
    rm_status st;
    if (!p || !(p->dir = rm_strdup(dir)) || !(p->manifest = rm_path_join(dir, RM_PACK_MANIFEST))) {
        st = rm_fail(err, RM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    const char *m = p->manifest;
    if ((st = rm_read_file(m, MANIFEST_MAX_BYTES, &text, &len, err)) ||
        (st = rm_json_parse(text, len, JSON_REJECT_DUPLICATES, m, &root, err)))
        goto fail;
    const char *format = json_string_value(json_object_get(root, "format"));
    int64_t version, tp, chunk;
    if (!json_is_object(root) || !format || strcmp(format, "nimreward-pack") != 0) {
        st = rm_fail(err, RM_ERR_FORMAT, "%s: \"format\" is not \"nimreward-pack\"", m);
        goto fail;
    }
    if (!get_count(json_object_get(root, "version"), 1, INT32_MAX, &version)) {
        st = rm_fail(err, RM_ERR_FORMAT, "%s: \"version\" must be a positive integer", m);
        goto fail;
    }
    if (version != RM_PACK_VERSION) {
        st = rm_fail(err, RM_ERR_UNSUPPORTED, "%s: pack format version %lld; this libnimreward reads version %d "
                     "(make the pack again with this release's nimreward-pack)", m, (long long)version, RM_PACK_VERSION);
        goto fail;
    }
    if (!get_count(json_object_get(root, "tp"), 1, 4096, &tp)) {
        st = rm_fail(err, RM_ERR_FORMAT, "%s: \"tp\" must be an integer from 1 to 4096", m);
        goto fail;
    }
    p->tp = (int)tp;
    const char *dtype = json_string_value(json_object_get(root, "dtype"));
    if (dtype && strcmp(dtype, "bf16") == 0) p->dtype = RM_DTYPE_BF16;
    else if (dtype && strcmp(dtype, "fp8") == 0) p->dtype = RM_DTYPE_FP8;
    else {
        st = rm_fail(err, RM_ERR_FORMAT, "%s: \"dtype\" must be \"bf16\" or \"fp8\"", m);
        goto fail;
    }
    const char *comp = json_string_value(json_object_get(root, "compression"));
    if (!comp || strcmp(comp, "zstd") != 0) {
        st = rm_fail(err, RM_ERR_UNSUPPORTED, "%s: \"compression\" must be \"zstd\"", m);
        goto fail;
    }
    if (!get_count(json_object_get(root, "chunk_bytes"), 4096, (int64_t)1 << 30, &chunk) || chunk % 4) {
        st = rm_fail(err, RM_ERR_FORMAT, "%s: \"chunk_bytes\" must be a multiple of 4 from 4096 to 2^30", m);
        goto fail;
    }
    p->chunk_bytes = (size_t)chunk;
    json_t *files = json_object_get(root, "files");
    if (!json_is_array(files) || json_array_size(files) != (size_t)tp) {
        st = rm_fail(err, RM_ERR_FORMAT, "%s: \"files\" must list the %lld rank files", m, (long long)tp);
        goto fail;
    }
    if (!(p->files = rm_calloc((size_t)tp, sizeof *p->files))) {
        st = rm_fail(err, RM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int r = 0; r < p->tp; r++) {
        json_t *f = json_array_get(files, (size_t)r);
        const char *name = json_string_value(json_object_get(f, "name"));
        int64_t rank, bytes;
        if (!file_name_safe(name) || !get_count(json_object_get(f, "rank"), r, r, &rank) ||
            !get_count(json_object_get(f, "bytes"), 8 + RM_PACK_TRAILER_BYTES, INT64_MAX, &bytes) ||
            !parse_hex64(json_string_value(json_object_get(f, "index_xxh64")), &p->files[r].index_hash)) {
            st = rm_fail(err, RM_ERR_FORMAT, "%s: files[%d] must be {\"name\": a file in the pack's directory, "
                         "\"rank\": %d, \"bytes\", \"index_xxh64\": 16 hex digits}", m, r, r);
            goto fail;
        }
        p->files[r].bytes = (uint64_t)bytes;
        if (!(p->files[r].name = rm_strdup(name))) {
            st = rm_fail(err, RM_ERR_NOMEM, "out of memory");
            goto fail;
        }
    }
    json_decref(root);
    rm_mfree(text);
    *out = p;
    return RM_OK;
fail:
    json_decref(root);
    rm_mfree(text);
    rm_pack_close(p);
    return st;
}

int rm_pack_tp(const rm_pack *p) { return p->tp; }
uint64_t rm_pack_file_bytes(const rm_pack *p, int rank) { return rank >= 0 && rank < p->tp ? p->files[rank].bytes : 0; }
rm_dtype rm_pack_dtype(const rm_pack *p) { return p->dtype; }

rm_status rm_pack_check_request(const rm_pack *p, int tp, int dtype, rm_device device, int *tp_out, rm_err *err) {
    if (tp != 0 && tp != p->tp)
        return rm_fail(err, RM_ERR_INVALID_ARG, "%s: the pack was made for tp %d, but rm_params.tp is %d (make one for "
                       "%d ranks with nimreward-pack --tp %d, or leave tp 0 to take the pack's)", p->manifest, p->tp, tp,
                       tp, tp);
    const char *have = p->dtype == RM_DTYPE_FP8 ? "fp8" : "bf16";
    int ok = dtype == RM_DTYPE_AUTO || dtype == (int)p->dtype || (dtype == RM_DTYPE_FP32 && p->dtype == RM_DTYPE_BF16);
    if (!ok)
        return rm_fail(err, RM_ERR_INVALID_ARG, "%s: the pack holds %s weights, but rm_params.dtype is %s (a pack is "
                       "made for one dtype: nimreward-pack --dtype bf16 or fp8)", p->manifest, have,
                       rm_dtype_name((rm_dtype)dtype));
    if (p->dtype == RM_DTYPE_FP8 && device == RM_DEVICE_CPU)
        return rm_fail(err, RM_ERR_UNSUPPORTED, "%s: an FP8 pack can only be scored on CUDA (the CPU engine has no e4m3 "
                       "arithmetic); use --device cuda, or a bf16 pack on the CPU", p->manifest);
    *tp_out = p->tp;
    return RM_OK;
}

/* ------------------------------------------------ one rank's file */

/* A chunk to decompress: where it lies in the file and where it goes. */
typedef struct chunk_job {
    size_t tensor, k;           /* tensor index, chunk within it */
    const uint8_t *src;
    size_t src_len;
    uint8_t *dst;
    size_t raw_len;
    size_t width;               /* byte planes (1: none) */
    uint64_t hash, stored_hash; /* XXH64 of the raw bytes, of the stored (compressed) bytes */
} chunk_job;

static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

void rm_pack_rank_free(rm_pack_rank *r) {
    if (!r) return;
    for (size_t i = 0; r->tensors && i < r->n; i++) rm_mfree(r->tensors[i].name);
    rm_mfree(r->tensors);
    rm_mfree(r->blob);
    memset(r, 0, sizeof *r);
}

/* Checks one index entry and fills t (data not yet placed); counts its chunks. */
static rm_status parse_tensor(const rm_pack *p, const char *path, json_t *e, size_t i, uint64_t data_end,
                              rm_pack_tensor *t, size_t *n_chunks, rm_err *err) {
    const char *name = json_string_value(json_object_get(e, "name"));
    if (!name || !*name || strlen(name) > MAX_NAME)
        return rm_fail(err, RM_ERR_FORMAT, "%s: index: tensors[%zu] has no valid \"name\"", path, i);
    if (!rm_pack_elem_parse(json_string_value(json_object_get(e, "dtype")), &t->dtype))
        return rm_fail(err, RM_ERR_FORMAT, "%s: tensor \"%s\": unknown \"dtype\"", path, name);
    json_t *shape = json_object_get(e, "shape"), *chunks = json_object_get(e, "chunks");
    if (!json_is_array(shape) || json_array_size(shape) > 4)
        return rm_fail(err, RM_ERR_FORMAT, "%s: tensor \"%s\": \"shape\" must be a list of at most 4 sizes", path, name);
    uint64_t numel = 1;
    t->n_dims = (int)json_array_size(shape);
    for (int d = 0; d < t->n_dims; d++) {
        int64_t v;
        if (!get_count(json_array_get(shape, (size_t)d), 0, INT64_MAX, &v) ||
            __builtin_mul_overflow(numel, (uint64_t)v, &numel))
            return rm_fail(err, RM_ERR_FORMAT, "%s: tensor \"%s\": shape[%d] is not a valid size", path, name, d);
        t->shape[d] = v;
    }
    size_t es = rm_pack_elem_size(t->dtype);
    int64_t bytes, planes;
    uint64_t want;
    if (__builtin_mul_overflow(numel, (uint64_t)es, &want) || !get_count(json_object_get(e, "bytes"), 0, INT64_MAX, &bytes) ||
        (uint64_t)bytes != want || want > SIZE_MAX)
        return rm_fail(err, RM_ERR_FORMAT, "%s: tensor \"%s\": \"bytes\" is not its shape times %zu", path, name, es);
    if (!get_count(json_object_get(e, "planes"), 1, 8, &planes) || (planes != 1 && (size_t)planes != es))
        return rm_fail(err, RM_ERR_FORMAT, "%s: tensor \"%s\": \"planes\" must be 1 or %zu", path, name, es);
    size_t n = (size_t)((want + p->chunk_bytes - 1) / p->chunk_bytes);
    if (!json_is_array(chunks) || json_array_size(chunks) != n)
        return rm_fail(err, RM_ERR_FORMAT, "%s: tensor \"%s\": %zu bytes need %zu chunks, the index lists %zu", path,
                       name, (size_t)want, n, json_is_array(chunks) ? json_array_size(chunks) : 0);
    for (size_t k = 0; k < n; k++) {
        json_t *c = json_array_get(chunks, k);
        int64_t off, len;
        uint64_t h;
        if (!json_is_array(c) || json_array_size(c) != 4 || !get_count(json_array_get(c, 0), 8, INT64_MAX, &off) ||
            !get_count(json_array_get(c, 1), 1, INT64_MAX, &len) ||
            !parse_hex64(json_string_value(json_array_get(c, 2)), &h) ||
            !parse_hex64(json_string_value(json_array_get(c, 3)), &h))
            return rm_fail(err, RM_ERR_FORMAT, "%s: tensor \"%s\": chunk %zu must be [offset, bytes, xxh64 raw, xxh64 "
                           "stored]", path, name, k);
        if ((uint64_t)off > data_end || (uint64_t)len > data_end - (uint64_t)off)
            return rm_fail(err, RM_ERR_FORMAT, "%s: tensor \"%s\": chunk %zu [%lld, +%lld] lies outside the data "
                           "section (%llu bytes)", path, name, k, (long long)off, (long long)len,
                           (unsigned long long)data_end);
    }
    if (!(t->name = rm_strdup(name))) return rm_fail(err, RM_ERR_NOMEM, "out of memory");
    t->n_bytes = (size_t)want;
    *n_chunks = n;
    return RM_OK;
}

/* Maps the rank file and checks its frame: size, magics, index placement and checksum. */
static rm_status map_rank(const rm_pack *p, const pack_file *pf, const char *path, uint8_t **map, size_t *len,
                          uint64_t *index_at, uint64_t *index_len, rm_err *err) {
    void *m;
    size_t n;
    rm_status st = rm_map_file(path, &m, &n, err);
    if (st) return st;
    if ((uint64_t)n != pf->bytes) {
        rm_unmap_file(m, n);
        return rm_fail(err, RM_ERR_FORMAT, "%s: %zu bytes, but %s says %llu: the file is %s", path, n, p->manifest,
                       (unsigned long long)pf->bytes, (uint64_t)n < pf->bytes ? "truncated" : "not the one the pack was made with");
    }
    *map = m;
    *len = n;
    const uint8_t *b = m, *tr = b + *len - RM_PACK_TRAILER_BYTES;
    if (memcmp(b, RM_PACK_MAGIC, 8) != 0 || memcmp(tr + 16, RM_PACK_END_MAGIC, 8) != 0)
        return rm_fail(err, RM_ERR_FORMAT, "%s: not a nimreward pack rank file (bad magic)", path);
    *index_at = get_u64(tr);
    *index_len = get_u64(tr + 8);
    if (*index_at < 8 || *index_len > INDEX_MAX_BYTES || *index_at > *len - RM_PACK_TRAILER_BYTES ||
        *index_len != *len - RM_PACK_TRAILER_BYTES - *index_at)
        return rm_fail(err, RM_ERR_FORMAT, "%s: the trailer's index [%llu, +%llu] does not fit the file", path,
                       (unsigned long long)*index_at, (unsigned long long)*index_len);
    uint64_t h = XXH64(b + *index_at, (size_t)*index_len, 0);
    if (h != pf->index_hash)
        return rm_fail(err, RM_ERR_FORMAT, "%s: index checksum mismatch (XXH64 %016llx, %s says %016llx): the file is "
                       "corrupt", path, (unsigned long long)h, p->manifest, (unsigned long long)pf->index_hash);
    return RM_OK;
}

/* Decompresses and verifies the chunks over n_threads threads. On failure
 * the first failing chunk (in file order) is reported, so the message does
 * not depend on the thread count. */
static rm_status decompress_all(const rm_pack *p, const char *path, const rm_pack_rank *r, const chunk_job *jobs,
                                size_t n_jobs, int n_threads, rm_err *err) {
    size_t bad = SIZE_MAX;
    int bad_kind = 0;           /* 1 zstd error, 2 wrong size, 3 checksum, 4 no memory, 5 stored checksum */
    size_t bad_code = 0;
    uint64_t bad_hash = 0;
#pragma omp parallel num_threads(n_threads)
    {
        ZSTD_DCtx *dc = ZSTD_createDCtx();
        uint8_t *tmp = rm_malloc(p->chunk_bytes);
#pragma omp for schedule(dynamic, 1)
        for (size_t j = 0; j < n_jobs; j++) {
            const chunk_job *c = &jobs[j];
            int kind = 0;
            size_t code = 0;
            uint64_t h = 0;
            if (!dc || !tmp) {
                kind = 4;
            } else if ((h = XXH64(c->src, c->src_len, 0)) != c->stored_hash) {
                kind = 5;   /* caught before zstd reads it: every stored byte counts, even one zstd would skip */
            } else {
                uint8_t *into = c->width > 1 ? tmp : c->dst;
                code = ZSTD_decompressDCtx(dc, into, c->raw_len, c->src, c->src_len);
                if (ZSTD_isError(code)) kind = 1;
                else if (code != c->raw_len) kind = 2;
                else {
                    if (c->width > 1) rm_pack_planes_merge(c->dst, tmp, c->raw_len / c->width, c->width);
                    if ((h = XXH64(c->dst, c->raw_len, 0)) != c->hash) kind = 3;
                }
            }
            if (kind) {
#pragma omp critical(pack_read_error)
                if (j < bad) bad = j, bad_kind = kind, bad_code = code, bad_hash = h;
            }
        }
        ZSTD_freeDCtx(dc);
        rm_mfree(tmp);
    }
    if (bad == SIZE_MAX) return RM_OK;
    const chunk_job *c = &jobs[bad];
    const rm_pack_tensor *t = &r->tensors[c->tensor];
    size_t n_chunks = (t->n_bytes + p->chunk_bytes - 1) / p->chunk_bytes;
    switch (bad_kind) {
    case 1:
        return rm_fail(err, RM_ERR_FORMAT, "%s: tensor \"%s\": chunk %zu of %zu does not decompress (zstd: %s): the "
                       "file is corrupt", path, t->name, c->k, n_chunks, ZSTD_getErrorName(bad_code));
    case 2:
        return rm_fail(err, RM_ERR_FORMAT, "%s: tensor \"%s\": chunk %zu of %zu decompresses to %zu bytes, not %zu: "
                       "the file is corrupt", path, t->name, c->k, n_chunks, bad_code, c->raw_len);
    case 3:
        return rm_fail(err, RM_ERR_FORMAT, "%s: tensor \"%s\": chunk %zu of %zu: checksum mismatch (XXH64 %016llx, "
                       "the index says %016llx): the file is corrupt", path, t->name, c->k, n_chunks,
                       (unsigned long long)bad_hash, (unsigned long long)c->hash);
    case 5:
        return rm_fail(err, RM_ERR_FORMAT, "%s: tensor \"%s\": chunk %zu of %zu: checksum mismatch of its stored bytes "
                       "(XXH64 %016llx, the index says %016llx): the file is corrupt", path, t->name, c->k, n_chunks,
                       (unsigned long long)bad_hash, (unsigned long long)c->stored_hash);
    default:
        return rm_fail(err, RM_ERR_NOMEM, "%s: out of memory for decompression", path);
    }
}

rm_status rm_pack_read_rank(const rm_pack *p, int rank, int n_threads, rm_pack_rank *out, rm_err *err) {
    memset(out, 0, sizeof *out);
    if (rank < 0 || rank >= p->tp)
        return rm_fail(err, RM_ERR_INVALID_ARG, "%s: rank %d outside the pack's %d", p->manifest, rank, p->tp);
    const pack_file *pf = &p->files[rank];
    char *path = rm_path_join(p->dir, pf->name);
    if (!path) return rm_fail(err, RM_ERR_NOMEM, "out of memory");
    uint8_t *map = NULL;
    size_t len = 0, n_jobs = 0;
    uint64_t index_at = 0, index_len = 0;
    json_t *index = NULL;
    chunk_job *jobs = NULL;
    rm_status st = map_rank(p, pf, path, &map, &len, &index_at, &index_len, err);
    if (st) goto done;
    if ((st = rm_json_parse((const char *)map + index_at, (size_t)index_len, JSON_REJECT_DUPLICATES, path, &index, err)))
        goto done;
    int64_t v;
    const char *dtype = json_string_value(json_object_get(index, "dtype"));
    json_t *tensors = json_object_get(index, "tensors");
    if (!json_is_object(index) || !get_count(json_object_get(index, "rank"), rank, rank, &v) ||
        !get_count(json_object_get(index, "tp"), p->tp, p->tp, &v) || !dtype ||
        strcmp(dtype, p->dtype == RM_DTYPE_FP8 ? "fp8" : "bf16") != 0 ||
        !get_count(json_object_get(index, "chunk_bytes"), (int64_t)p->chunk_bytes, (int64_t)p->chunk_bytes, &v) ||
        !json_is_array(tensors) || json_array_size(tensors) > MAX_TENSORS) {
        st = rm_fail(err, RM_ERR_FORMAT, "%s: the index is not rank %d of a tp %d %s pack with %zu-byte chunks, as %s "
                     "says", path, rank, p->tp, p->dtype == RM_DTYPE_FP8 ? "fp8" : "bf16", p->chunk_bytes, p->manifest);
        goto done;
    }
    size_t n = json_array_size(tensors), total = 0;
    out->tensors = rm_calloc(n ? n : 1, sizeof *out->tensors);
    size_t *first_job = rm_calloc(n + 1, sizeof *first_job);
    if (!out->tensors || !first_job) {
        rm_mfree(first_job);
        st = rm_fail(err, RM_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        size_t nc = 0;
        if ((st = parse_tensor(p, path, json_array_get(tensors, i), i, index_at, &out->tensors[i], &nc, err))) break;
        out->n = i + 1;
        first_job[i] = n_jobs;
        n_jobs += nc;
        size_t aligned = (out->tensors[i].n_bytes + 63) & ~(size_t)63;
        if (aligned < out->tensors[i].n_bytes || total + aligned < total) {
            st = rm_fail(err, RM_ERR_FORMAT, "%s: the tensors' sizes overflow", path);
            break;
        }
        total += aligned;
    }
    first_job[n] = n_jobs;
    if (!st && (!(out->blob = rm_malloc(total ? total : 1)) || !(jobs = rm_calloc(n_jobs ? n_jobs : 1, sizeof *jobs))))
        st = rm_fail(err, RM_ERR_NOMEM, "%s: out of memory for %zu bytes of tensors", path, total);
    if (!st) {
        out->blob_bytes = total;
        size_t at = 0;
        for (size_t i = 0; i < n; i++) {
            rm_pack_tensor *t = &out->tensors[i];
            json_t *e = json_array_get(tensors, i), *chunks = json_object_get(e, "chunks");
            size_t es = rm_pack_elem_size(t->dtype);
            size_t width = (size_t)json_integer_value(json_object_get(e, "planes"));
            t->data = (uint8_t *)out->blob + at;
            for (size_t k = 0; k < first_job[i + 1] - first_job[i]; k++) {
                json_t *c = json_array_get(chunks, k);
                chunk_job *jb = &jobs[first_job[i] + k];
                size_t off = k * p->chunk_bytes;
                jb->tensor = i;
                jb->k = k;
                jb->src = map + json_integer_value(json_array_get(c, 0));
                jb->src_len = (size_t)json_integer_value(json_array_get(c, 1));
                jb->dst = (uint8_t *)t->data + off;
                jb->raw_len = t->n_bytes - off < p->chunk_bytes ? t->n_bytes - off : p->chunk_bytes;
                jb->width = width > 1 && jb->raw_len % es == 0 ? width : 1;
                parse_hex64(json_string_value(json_array_get(c, 2)), &jb->hash);
                parse_hex64(json_string_value(json_array_get(c, 3)), &jb->stored_hash);
            }
            at += (t->n_bytes + 63) & ~(size_t)63;
        }
        st = decompress_all(p, path, out, jobs, n_jobs, n_threads > 0 ? n_threads : online_cores(), err);
    }
    rm_mfree(first_job);
done:
    rm_mfree(jobs);
    json_decref(index);
    rm_unmap_file(map, len);
    rm_mfree(path);
    if (st) rm_pack_rank_free(out);
    return st;
}

rm_status rm_pack_load_rank(const rm_pack *p, int rank, int n_threads, rm_weights **out, rm_err *err) {
    *out = NULL;
    rm_pack_rank r;
    rm_status st = rm_pack_read_rank(p, rank, n_threads, &r, err);
    if (st) return st;
    const char *file = p->files[rank].name;
    rm_tensor *ts = rm_calloc(r.n ? r.n : 1, sizeof *ts);
    if (!ts) {
        rm_pack_rank_free(&r);
        return rm_fail(err, RM_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < r.n; i++) {
        const rm_pack_tensor *t = &r.tensors[i];
        rm_st_dtype dt = t->dtype == RM_PACK_F32 ? RM_DT_F32 : t->dtype == RM_PACK_F8_E4M3 ? RM_DT_F8_E4M3 : RM_DT_BF16;
        ts[i] = (rm_tensor){.name = t->name, .dtype = dt,
                            .n_dims = t->n_dims, .data = t->data, .n_bytes = t->n_bytes};
        memcpy(ts[i].shape, t->shape, sizeof t->shape);
    }
    /* The names and the blob move to the weights. */
    size_t n = r.n;
    void *blob = r.blob;
    size_t blob_bytes = r.blob_bytes;
    rm_mfree(r.tensors);
    return rm_weights_adopt(out, p->dir, file, ts, n, blob, blob_bytes, err);
}
