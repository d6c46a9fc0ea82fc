/*
 * safetensors.c - one safetensors file, parsed and validated in memory.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON
 * ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__": {string: string}}), then the data section that the offsets
 * index. The file is untrusted: every number is checked before it is used to
 * size or address anything, and the tensor views handed out are known to lie
 * inside the buffer, not to overlap, and to be aligned to their element size.
 */
#include "weights.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* The bound safetensors itself uses; real headers are kilobytes. */
#define ST_MAX_HEADER ((uint64_t)100000000)
#define ST_MAX_DIMS 4
/* Tensors per file, and JSON values per tensor: checked by a scan of the
 * text before the JSON parser builds anything, since a header of 100 MB
 * of tiny entries would otherwise cost the parser gigabytes (about 130
 * bytes of memory per "k":0 member, 40 per element of a long list). Real
 * files hold at most a few thousand tensors of about 10 values each. */
#define ST_MAX_TENSORS 65536
#define ST_MAX_VALUES_PER_TENSOR 16

struct rm_st_file {
    rm_tensor *tensors;         /* in header order */
    size_t n;
};


size_t rm_dtype_size(rm_st_dtype dt) {
    switch (dt) {
    case RM_DT_F32: return 4;
    case RM_DT_F16: return 2;
    case RM_DT_BF16: return 2;
    case RM_DT_F8_E4M3: return 1;
    }
    return 0;
}

size_t rm_st_count(const rm_st_file *f) { return f ? f->n : 0; }
const rm_tensor *rm_st_tensor(const rm_st_file *f, size_t i) { return f && i < f->n ? &f->tensors[i] : NULL; }

void rm_st_free(rm_st_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) rm_mfree((void *)f->tensors[i].name);
    rm_mfree(f->tensors);
    rm_mfree(f);
}

/* dtype names safetensors defines that we recognise but cannot compute with. */
static const char *const other_dtypes[] = {"F64", "I64", "I32", "I16", "I8", "U8", "U16", "U32", "U64", "BOOL",
                                           "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64",
                                           "E8M0"};

static rm_status parse_dtype(const char *file, const char *tname, json_t *v, rm_st_dtype *out, rm_err *err) {
    if (!json_is_string(v))
        return rm_fail(err, RM_ERR_FORMAT, "%s: tensor \"%s\": \"dtype\" must be a string", file, tname);
    const char *s = json_string_value(v);
    if (strcmp(s, "F32") == 0) *out = RM_DT_F32;
    else if (strcmp(s, "F16") == 0) *out = RM_DT_F16;
    else if (strcmp(s, "BF16") == 0) *out = RM_DT_BF16;
    else {
        int known = 0;
        for (size_t i = 0; i < sizeof other_dtypes / sizeof other_dtypes[0]; i++) known |= !strcmp(s, other_dtypes[i]);
        return rm_fail(err, RM_ERR_UNSUPPORTED, "%s: tensor \"%s\": %s dtype \"%.32s\" is not supported (F32, F16, BF16 are)",
                       file, tname, known ? "safetensors" : "unknown", s);
    }
    return RM_OK;
}

/* Reads a JSON integer that must be >= 0 (jansson refuses ones past int64). */
static int nonneg_int(json_t *v, uint64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return 0;
    *out = (uint64_t)json_integer_value(v);
    return 1;
}

/* Validates one header entry and fills t (except name). `data` is the data
 * section, `data_len` its size. */
static rm_status parse_entry(const char *file, const char *tname, json_t *entry, const uint8_t *data,
                             size_t data_len, rm_tensor *t, uint64_t *begin_out, uint64_t *end_out, rm_err *err) {
    if (!json_is_object(entry))
        return rm_fail(err, RM_ERR_FORMAT, "%s: tensor \"%s\": entry must be an object", file, tname);
    json_t *dt = json_object_get(entry, "dtype"), *shape = json_object_get(entry, "shape"),
           *offs = json_object_get(entry, "data_offsets");
    if (!dt || !shape || !offs)
        return rm_fail(err, RM_ERR_FORMAT, "%s: tensor \"%s\": missing \"%s\"", file, tname,
                       !dt ? "dtype" : !shape ? "shape" : "data_offsets");
    rm_status st = parse_dtype(file, tname, dt, &t->dtype, err);
    if (st != RM_OK) return st;

    if (!json_is_array(shape))
        return rm_fail(err, RM_ERR_FORMAT, "%s: tensor \"%s\": \"shape\" must be an array", file, tname);
    size_t nd = json_array_size(shape);
    if (nd > ST_MAX_DIMS)
        return rm_fail(err, RM_ERR_UNSUPPORTED, "%s: tensor \"%s\": %zu dimensions, at most %d supported", file,
                       tname, nd, ST_MAX_DIMS);
    uint64_t numel = 1;
    for (size_t d = 0; d < nd; d++) {
        uint64_t dim;
        if (!nonneg_int(json_array_get(shape, d), &dim))
            return rm_fail(err, RM_ERR_FORMAT, "%s: tensor \"%s\": shape[%zu] is not a non-negative integer", file,
                           tname, d);
        if (__builtin_mul_overflow(numel, dim, &numel) || dim > INT64_MAX)
            return rm_fail(err, RM_ERR_FORMAT, "%s: tensor \"%s\": shape overflows", file, tname);
        t->shape[d] = (int64_t)dim;
    }
    t->n_dims = (int)nd;
    uint64_t bytes;
    if (__builtin_mul_overflow(numel, (uint64_t)rm_dtype_size(t->dtype), &bytes))
        return rm_fail(err, RM_ERR_FORMAT, "%s: tensor \"%s\": size overflows", file, tname);

    uint64_t begin, end;
    if (!json_is_array(offs) || json_array_size(offs) != 2 || !nonneg_int(json_array_get(offs, 0), &begin) ||
        !nonneg_int(json_array_get(offs, 1), &end))
        return rm_fail(err, RM_ERR_FORMAT,
                       "%s: tensor \"%s\": \"data_offsets\" must be two non-negative integers [begin, end]", file,
                       tname);
    if (begin > end || end > data_len)
        return rm_fail(err, RM_ERR_FORMAT,
                       "%s: tensor \"%s\": data_offsets [%llu, %llu] lie outside the data section of %zu bytes "
                       "(truncated file?)",
                       file, tname, (unsigned long long)begin, (unsigned long long)end, data_len);
    if (end - begin != bytes)
        return rm_fail(err, RM_ERR_FORMAT,
                       "%s: tensor \"%s\": data_offsets span %llu bytes but the shape and dtype need %llu", file,
                       tname, (unsigned long long)(end - begin), (unsigned long long)bytes);
    t->data = data + begin;
    t->n_bytes = (size_t)bytes;
    /* Engines read elements in place; a misaligned one would be undefined
     * behaviour. Writers since safetensors 0.3 pad the header so every tensor
     * is aligned; only an old or foreign writer leaves them misaligned. */
    if ((uintptr_t)t->data % rm_dtype_size(t->dtype) != 0)
        return rm_fail(err, RM_ERR_UNSUPPORTED,
                       "%s: tensor \"%s\": data at offset %llu is not aligned to its %zu-byte elements (re-save the "
                       "checkpoint with a current safetensors)",
                       file, tname, (unsigned long long)begin, rm_dtype_size(t->dtype));
    *begin_out = begin;
    *end_out = end;
    return RM_OK;
}

static rm_status check_metadata(const char *file, json_t *meta, rm_err *err) {
    if (!json_is_object(meta))
        return rm_fail(err, RM_ERR_FORMAT, "%s: \"__metadata__\" must be an object of strings", file);
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v) {
        if (!json_is_string(v))
            return rm_fail(err, RM_ERR_FORMAT, "%s: \"__metadata__\" entry \"%.64s\" must be a string", file, k);
    }
    return RM_OK;
}

/* Extent of one tensor, for the overlap check. */
typedef struct extent {
    uint64_t begin, end;
    size_t index;
} extent;

static int extent_cmp(const void *a, const void *b) {
    const extent *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static rm_status parse_header(rm_st_file *f, json_t *root, const uint8_t *data, size_t data_len, const char *file,
                              rm_err *err) {
    size_t cap = json_object_size(root);
    f->tensors = rm_calloc(cap ? cap : 1, sizeof(rm_tensor));
    extent *ext = rm_calloc(cap ? cap : 1, sizeof(extent));
    if (!f->tensors || !ext) {
        rm_mfree(ext);
        return rm_fail(err, RM_ERR_NOMEM, "%s: out of memory for %zu tensors", file, cap);
    }
    rm_status st = RM_OK;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if ((st = check_metadata(file, val, err))) break;
            continue;
        }
        rm_tensor *t = &f->tensors[f->n];
        if ((st = parse_entry(file, key, val, data, data_len, t, &ext[f->n].begin, &ext[f->n].end, err))) break;
        if (!(t->name = rm_strdup(key))) {
            st = rm_fail(err, RM_ERR_NOMEM, "%s: out of memory", file);
            break;
        }
        ext[f->n].index = f->n;
        f->n++;
    }
    if (st == RM_OK) {
        /* Sorted by offset, each tensor must start at or after every earlier end. */
        qsort(ext, f->n, sizeof *ext, extent_cmp);
        size_t reach = 0;        /* index into ext of the tensor ending furthest so far */
        for (size_t i = 1; i < f->n; i++) {
            if (ext[reach].end > ext[i].begin) {
                const extent *a = &ext[reach], *b = &ext[i];
                st = rm_fail(err, RM_ERR_FORMAT,
                             "%s: tensors \"%s\" [%llu, %llu] and \"%s\" [%llu, %llu] overlap", file,
                             f->tensors[a->index].name, (unsigned long long)a->begin, (unsigned long long)a->end,
                             f->tensors[b->index].name, (unsigned long long)b->begin, (unsigned long long)b->end);
                break;
            }
            if (ext[i].end > ext[reach].end) reach = i;
        }
    }
    rm_mfree(ext);
    return st;
}

/* Counts, outside strings, the root object's members and every JSON value
 * (commas and opening brackets bound it from above). Returns 0 when within
 * the bounds; malformed text is left to the parser. */
static rm_status scan_counts(const char *file, const char *h, size_t n, rm_err *err) {
    uint64_t members = 1, values = 1;
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
            continue;
        }
        if (c == '"') in_str = 1;
        else if (c == '{' || c == '[') depth++, values++;
        else if (c == '}' || c == ']') depth--;
        else if (c == ',') members += depth == 1, values++;
        if (members > ST_MAX_TENSORS)
            return rm_fail(err, RM_ERR_LIMIT, "%s: header lists more than %d tensors, the bound for one file", file,
                           ST_MAX_TENSORS);
        if (values > (uint64_t)ST_MAX_TENSORS * ST_MAX_VALUES_PER_TENSOR)
            return rm_fail(err, RM_ERR_LIMIT, "%s: header holds more than %d JSON values (%d tensors of %d values: "
                           "the bound for one file)", file, ST_MAX_TENSORS * ST_MAX_VALUES_PER_TENSOR, ST_MAX_TENSORS,
                           ST_MAX_VALUES_PER_TENSOR);
    }
    return RM_OK;
}

rm_status rm_st_parse(rm_st_file **out, const void *buf, size_t len, const char *name, rm_err *err) {
    *out = NULL;
    rm_global_init();
    const char *file = name ? name : "safetensors";
    const uint8_t *bytes = buf;
    if (len < 8)
        return rm_fail(err, RM_ERR_FORMAT, "%s: truncated: %zu bytes, shorter than the 8-byte header length", file,
                       len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | bytes[i];
    if (n > len - 8)
        return rm_fail(err, RM_ERR_FORMAT,
                       "%s: header length %llu points past the end of the file (%zu bytes; truncated or not "
                       "safetensors)",
                       file, (unsigned long long)n, len);
    if (n > ST_MAX_HEADER)
        return rm_fail(err, RM_ERR_LIMIT, "%s: header length %llu exceeds the bound of %llu bytes", file,
                       (unsigned long long)n, (unsigned long long)ST_MAX_HEADER);
    if (n < 2 || bytes[8] != '{')
        return rm_fail(err, RM_ERR_FORMAT, "%s: header is not a JSON object (not a safetensors file?)", file);
    rm_status bound = scan_counts(file, (const char *)bytes + 8, (size_t)n, err);
    if (bound) return bound;

    /* Duplicate names would make two tensors answer to one name. */
    json_t *root;
    rm_status jst = rm_json_parse((const char *)bytes + 8, (size_t)n, JSON_REJECT_DUPLICATES, file, &root, err);
    if (jst) {
        rm_err_prefix(err, "header");
        return jst;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return rm_fail(err, RM_ERR_FORMAT, "%s: header is not a JSON object", file);
    }
    rm_st_file *f = rm_calloc(1, sizeof *f);
    if (!f) {
        json_decref(root);
        return rm_fail(err, RM_ERR_NOMEM, "%s: out of memory", file);
    }
    rm_status st = parse_header(f, root, bytes + 8 + n, (size_t)(len - 8 - n), file, err);
    json_decref(root);
    if (st != RM_OK) {
        rm_st_free(f);
        return st;
    }
    *out = f;
    return RM_OK;
}
