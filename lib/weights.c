/*
 * weights.c - a model directory's tensors: model.safetensors, or the shards
 * that model.safetensors.index.json names, each memory-mapped read-only once,
 * validated (safetensors.c) and merged into one name-sorted table.
 * Also the conversion of tensor rows to fp32 that every engine uses.
 */
#include "weights.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#include <stdatomic.h>
#define HAVE_X86_F16C 1
#endif

#define INDEX_MAX_BYTES (64u << 20)   /* an index is a few hundred KB even for 400B models */
#define MAX_SHARDS 65536

typedef struct shard {
    char *file;                 /* name inside the directory */
    char *path;                 /* dir/file, for messages */
    void *map;
    size_t map_len;
    rm_st_file *st;
    rm_tensor *adopted;         /* rm_weights_adopt: tensors in memory, instead of st */
    size_t n_adopted;
    void *blob;                 /* their data */
} shard;

struct rm_weights {
    char *dir;
    shard *shards;
    int n_shards;
    const rm_tensor **by_name;  /* every tensor of every shard, sorted by name */
    size_t n;
    size_t bytes_mapped;
};


/* ------------------------------------------------------------ tensors */

int64_t rm_tensor_numel(const rm_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= t->shape[d];
    return n;
}

#ifdef HAVE_X86_F16C
__attribute__((target("avx,f16c"))) static void f16_to_f32_f16c(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = _cvtsh_ss(src[i]);
}

/* F16C and AVX in the CPU, and YMM state enabled by the OS. By cpuid rather
 * than __builtin_cpu_supports, which clang 14 lacks "f16c" for. */
static int cpu_has_f16c(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const unsigned osxsave = 1u << 27, avx = 1u << 28, f16c = 1u << 29;
    if ((c & (osxsave | avx | f16c)) != (osxsave | avx | f16c)) return 0;
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 6) == 6;
}
#endif

static void f16_to_f32(const uint16_t *src, float *dst, size_t n) {
#ifdef HAVE_X86_F16C
    static _Atomic int has_f16c = -1;   /* every thread computes the same answer */
    int has = atomic_load_explicit(&has_f16c, memory_order_relaxed);
    if (has < 0) atomic_store_explicit(&has_f16c, has = cpu_has_f16c(), memory_order_relaxed);
    if (has) {
        f16_to_f32_f16c(src, dst, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = rm_f16_to_f32(src[i]);
}

static void bf16_to_f32(const uint16_t *restrict src, float *restrict dst, size_t n) {
    /* bf16 is the top half of an fp32: a shift, which the compiler vectorises. */
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)src[i] << 16;
        float f;
        memcpy(&f, &u, sizeof f);
        dst[i] = f;
    }
}

void rm_tensor_rows_f32(const rm_tensor *t, int64_t row0, int64_t n_rows, float *out) {
    /* A row is everything after the first dimension; a 1-D tensor is one row. */
    int64_t row_len = 1;
    if (t->n_dims == 1) row_len = t->shape[0];
    for (int d = 1; d < t->n_dims; d++) row_len *= t->shape[d];
    size_t start = (size_t)(row0 * row_len), count = (size_t)(n_rows * row_len);
    switch (t->dtype) {
    case RM_DT_F32:
        memcpy(out, (const float *)t->data + start, count * sizeof(float));
        break;
    case RM_DT_F16:
        f16_to_f32((const uint16_t *)t->data + start, out, count);
        break;
    case RM_DT_BF16:
        bf16_to_f32((const uint16_t *)t->data + start, out, count);
        break;
    case RM_DT_F8_E4M3:   /* projections only, which no caller reads as rows (engines refuse or upload them) */
        memset(out, 0, count * sizeof(float));
        break;
    }
}

/* ------------------------------------------------------------ files */

static void shard_close(shard *s) {
    rm_st_free(s->st);
    for (size_t i = 0; i < s->n_adopted; i++) rm_mfree((char *)s->adopted[i].name);
    rm_mfree(s->adopted);
    rm_mfree(s->blob);
    rm_unmap_file(s->map, s->map_len);
    rm_mfree(s->file);
    rm_mfree(s->path);
    memset(s, 0, sizeof *s);
}

/* Maps s->path read-only and validates its header. */
static rm_status shard_open(shard *s, rm_err *err) {
    void *map;
    size_t len;
    rm_status st = rm_map_file(s->path, &map, &len, err);
    if (st) return st;
    if (len < 8) {
        rm_unmap_file(map, len);
        return rm_fail(err, RM_ERR_FORMAT, "%s: truncated: %zu bytes, shorter than the 8-byte header length", s->path,
                       len);
    }
    s->map = map;
    s->map_len = len;
    return rm_st_parse(&s->st, map, s->map_len, s->path, err);
}

/* A shard name must stay inside the model directory. */
static int shard_name_safe(const char *name) {
    return name[0] && name[0] != '/' && !strstr(name, "..") && !strchr(name, '/') && !strchr(name, '\\');
}

static int tensor_name_cmp(const void *a, const void *b) {
    const rm_tensor *x = *(const rm_tensor *const *)a, *y = *(const rm_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int str_ptr_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const rm_tensor *find_in(const rm_tensor *const *by_name, size_t n, const char *name) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(by_name[mid]->name, name);
        if (c == 0) return by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* Fills w->by_name from every shard, refusing a name held by two files. */
static rm_status build_table(rm_weights *w, const char *dir, rm_err *err) {
    size_t total = 0;
    for (int i = 0; i < w->n_shards; i++) total += w->shards[i].st ? rm_st_count(w->shards[i].st) : w->shards[i].n_adopted;
    w->by_name = rm_calloc(total ? total : 1, sizeof *w->by_name);
    if (!w->by_name) return rm_fail(err, RM_ERR_NOMEM, "%s: out of memory for %zu tensors", dir, total);
    for (int i = 0; i < w->n_shards; i++) {
        const shard *s = &w->shards[i];
        size_t n = s->st ? rm_st_count(s->st) : s->n_adopted;
        for (size_t k = 0; k < n; k++) {
            /* The table is ours (rm_st_parse allocated it); only the shard number is filled in here. */
            rm_tensor *t = s->st ? (rm_tensor *)rm_st_tensor(s->st, k) : &s->adopted[k];
            t->shard = i;
            w->by_name[w->n++] = t;
        }
    }
    qsort(w->by_name, w->n, sizeof *w->by_name, tensor_name_cmp);
    for (size_t k = 1; k < w->n; k++) {
        if (strcmp(w->by_name[k - 1]->name, w->by_name[k]->name) == 0)
            return rm_fail(err, RM_ERR_FORMAT, "%s: tensor \"%s\" is present in both %s and %s", dir,
                           w->by_name[k]->name, w->shards[w->by_name[k - 1]->shard].file,
                           w->shards[w->by_name[k]->shard].file);
    }
    return RM_OK;
}

static rm_status add_shard(rm_weights *w, const char *dir, const char *file, rm_err *err) {
    shard *s = &w->shards[w->n_shards];
    memset(s, 0, sizeof *s);
    if (!(s->file = rm_strdup(file)) || !(s->path = rm_path_join(dir, file))) {
        rm_mfree(s->file);
        s->file = NULL;
        return rm_fail(err, RM_ERR_NOMEM, "%s: out of memory", dir);
    }
    w->n_shards++;
    return RM_OK;
}

/* Reads the index: the distinct shard files (sorted, so shard numbers follow
 * file order), then checks that every tensor is where the index says. */
static rm_status open_index(rm_weights *w, const char *dir, const char *index_path, rm_err *err) {
    char *text;
    size_t len;
    rm_status st = rm_read_file(index_path, INDEX_MAX_BYTES, &text, &len, err);
    if (st != RM_OK) return st;
    json_t *root;
    st = rm_json_parse(text, len, JSON_DECODE_INT_AS_REAL | JSON_REJECT_DUPLICATES, index_path, &root, err);
    rm_mfree(text);
    if (st) return st;
    json_t *map = json_is_object(root) ? json_object_get(root, "weight_map") : NULL;
    if (!json_is_object(map)) {
        json_decref(root);
        return rm_fail(err, RM_ERR_FORMAT, "%s: field \"weight_map\" is missing or not an object", index_path);
    }
    size_t n_entries = json_object_size(map);
    if (n_entries == 0) {
        json_decref(root);
        return rm_fail(err, RM_ERR_FORMAT, "%s: field \"weight_map\" is empty", index_path);
    }
    const char *key;
    json_t *val;
    /* First pass: validate every shard name, then the distinct ones, sorted
     * (so shard numbers follow file order; O(n log n) however many entries). */
    const char **files = rm_calloc(n_entries, sizeof *files);
    if (!files) {
        json_decref(root);
        return rm_fail(err, RM_ERR_NOMEM, "%s: out of memory", index_path);
    }
    size_t n_files = 0, n_distinct = 0;
    json_object_foreach(map, key, val) {
        if (!json_is_string(val)) {
            st = rm_fail(err, RM_ERR_FORMAT, "%s: weight_map entry \"%s\" must be a file name string", index_path,
                         key);
            goto done;
        }
        const char *file = json_string_value(val);
        if (!shard_name_safe(file)) {
            st = rm_fail(err, RM_ERR_FORMAT,
                         "%s: shard name \"%.200s\" (for tensor \"%s\") refused: outside the model directory",
                         index_path, file, key);
            goto done;
        }
        files[n_files++] = file;
    }
    qsort(files, n_files, sizeof *files, str_ptr_cmp);
    for (size_t i = 0; i < n_files; i++) n_distinct += i == 0 || strcmp(files[i - 1], files[i]) != 0;
    if (n_distinct > MAX_SHARDS) {
        st = rm_fail(err, RM_ERR_LIMIT, "%s: %zu shard files, more than the supported %d", index_path, n_distinct,
                     MAX_SHARDS);
        goto done;
    }
    if (!(w->shards = rm_calloc(n_distinct, sizeof *w->shards))) {
        st = rm_fail(err, RM_ERR_NOMEM, "%s: out of memory", index_path);
        goto done;
    }
    for (size_t i = 0; i < n_files; i++)
        if ((i == 0 || strcmp(files[i - 1], files[i]) != 0) && (st = add_shard(w, dir, files[i], err))) goto done;
    for (int i = 0; i < w->n_shards; i++) {
        if ((st = shard_open(&w->shards[i], err))) goto done;
        w->bytes_mapped += w->shards[i].map_len;
    }
    if ((st = build_table(w, dir, err))) goto done;
    /* Second pass: each tensor is in the shard the index names. */
    json_object_foreach(map, key, val) {
        const rm_tensor *t = find_in(w->by_name, w->n, key);
        const char *file = json_string_value(val);
        if (!t) {
            st = rm_fail(err, RM_ERR_FORMAT, "%s: tensor \"%s\" listed in the index is missing from shard %s",
                         index_path, key, file);
            goto done;
        }
        if (strcmp(w->shards[t->shard].file, file) != 0) {
            st = rm_fail(err, RM_ERR_FORMAT, "%s: tensor \"%s\" listed in the index is missing from shard %s "
                         "(found in %s)", index_path, key, file, w->shards[t->shard].file);
            goto done;
        }
    }
done:
    rm_mfree(files);
    json_decref(root);
    return st;
}

rm_status rm_weights_open(rm_weights **out, const char *dir, rm_err *err) {
    *out = NULL;
    rm_global_init();
    rm_weights *w = rm_calloc(1, sizeof *w);
    char *single = rm_path_join(dir, "model.safetensors");
    char *index = rm_path_join(dir, "model.safetensors.index.json");
    rm_status st;
    if (!w || !single || !index || !(w->dir = rm_strdup(dir))) {
        st = rm_fail(err, RM_ERR_NOMEM, "%s: out of memory", dir);
        goto fail;
    }
    /* transformers prefers the single file when both are present. */
    if (access(single, F_OK) == 0) {
        if (!(w->shards = rm_calloc(1, sizeof *w->shards))) {
            st = rm_fail(err, RM_ERR_NOMEM, "%s: out of memory", dir);
            goto fail;
        }
        if ((st = add_shard(w, dir, "model.safetensors", err)) || (st = shard_open(&w->shards[0], err))) goto fail;
        w->bytes_mapped = w->shards[0].map_len;
        if ((st = build_table(w, dir, err))) goto fail;
    } else if (access(index, F_OK) == 0) {
        if ((st = open_index(w, dir, index, err))) goto fail;
    } else {
        st = rm_fail(err, RM_ERR_IO, "%s: cannot open: neither model.safetensors nor model.safetensors.index.json "
                     "exists in the model directory", single);
        goto fail;
    }
    rm_mfree(single);
    rm_mfree(index);
    *out = w;
    return RM_OK;
fail:
    rm_mfree(single);
    rm_mfree(index);
    rm_weights_close(w);
    return st;
}

rm_status rm_weights_adopt(rm_weights **out, const char *dir, const char *file, rm_tensor *tensors, size_t n,
                           void *blob, size_t blob_bytes, rm_err *err) {
    *out = NULL;
    rm_weights *w = rm_calloc(1, sizeof *w);
    shard *s = w ? (w->shards = rm_calloc(1, sizeof *w->shards)) : NULL;
    if (!s) {
        for (size_t i = 0; i < n; i++) rm_mfree((char *)tensors[i].name);
        rm_mfree(tensors);
        rm_mfree(blob);
        rm_mfree(w);
        return rm_fail(err, RM_ERR_NOMEM, "%s: out of memory", dir);
    }
    w->n_shards = 1;   /* from here on rm_weights_close frees what was handed over */
    s->adopted = tensors;
    s->n_adopted = n;
    s->blob = blob;
    w->bytes_mapped = blob_bytes;
    rm_status st;
    if (!(w->dir = rm_strdup(dir)) || !(s->file = rm_strdup(file)) || !(s->path = rm_path_join(dir, file)))
        st = rm_fail(err, RM_ERR_NOMEM, "%s: out of memory", dir);
    else
        st = build_table(w, dir, err);
    if (st) {
        rm_weights_close(w);
        return st;
    }
    *out = w;
    return RM_OK;
}

const rm_tensor *rm_weights_find(const rm_weights *w, const char *name) {
    return w ? find_in(w->by_name, w->n, name) : NULL;
}

size_t rm_weights_bytes_mapped(const rm_weights *w) { return w ? w->bytes_mapped : 0; }
int rm_weights_n_shards(const rm_weights *w) { return w ? w->n_shards : 0; }
size_t rm_weights_count(const rm_weights *w) { return w ? w->n : 0; }
const rm_tensor *rm_weights_tensor(const rm_weights *w, size_t i) { return w && i < w->n ? w->by_name[i] : NULL; }

const char *rm_weights_dir(const rm_weights *w) { return w ? w->dir : NULL; }

const char *rm_weights_shard_file(const rm_weights *w, int shard) {
    return w && shard >= 0 && shard < w->n_shards ? w->shards[shard].path : NULL;
}

void rm_weights_close(rm_weights *w) {
    if (!w) return;
    if (w->shards)
        for (int i = 0; i < w->n_shards; i++) shard_close(&w->shards[i]);
    rm_mfree(w->shards);
    rm_mfree(w->by_name);
    rm_mfree(w->dir);
    rm_mfree(w);
}
