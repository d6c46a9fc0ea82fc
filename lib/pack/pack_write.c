/*
 * pack_write.c - a checkpoint into a pack (pack.h): for each rank, the same
 * shard the tensor-parallel engine would slice at load (parallel/shard.c),
 * each tensor converted to the pack's dtype (bf16; FP8 e4m3 projections
 * with one fp32 scale per output row, from rm_cpu_quantize_fp8_rows, the
 * one quantiser both devices follow), cut into chunks, each chunk
 * compressed with zstd on its own (so reading spreads over every thread)
 * and checked by the XXH64 of its raw bytes. The manifest is written last:
 * a pack whose writing failed is not a pack.
 */
#include "pack/pack.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "cpu_ops.h"
#include "parallel/tp.h"

/* Files copied next to the rank files, when the checkpoint has them. */
static const char *const copied_files[] = {
    "config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
    "generation_config.json", "special_tokens_map.json",
};

/* Chunks compressed per round: bounds the compressed bytes held in memory
 * (64 x 4 MiB) while giving every thread work. */
#define CHUNKS_PER_ROUND 64

typedef struct writer {
    const rm_pack_options *o;
    int n_threads;
    int level;
    FILE *f;
    const char *path;           /* the rank file, for messages */
    uint64_t offset;            /* bytes written so far */
    json_t *tensors;            /* the index's tensor list */
    rm_pack_stats *stats;
    rm_err *err;
    ZSTD_CCtx **cctx;           /* one per thread, made once */
    uint8_t **tmp;              /* one chunk per thread: the byte planes */
    uint8_t **out;              /* CHUNKS_PER_ROUND compressed chunks */
} writer;

static int online_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static rm_status write_bytes(writer *w, const void *data, size_t n) {
    if (n && fwrite(data, 1, n, w->f) != n)
        return rm_fail(w->err, RM_ERR_IO, "%s: cannot write: %s", w->path, strerror(errno));
    w->offset += n;
    return RM_OK;
}

static void hex64(char out[17], uint64_t v) { snprintf(out, 17, "%016llx", (unsigned long long)v); }

/* Compresses one chunk (split into planes first when width > 1), returns
 * the frame's size or a zstd error code. */
static size_t compress_chunk(ZSTD_CCtx *cc, uint8_t *dst, size_t cap, const uint8_t *src, size_t n, size_t width,
                             uint8_t *tmp, int level) {
    if (width > 1) {
        rm_pack_planes_split(tmp, src, n / width, width);
        src = tmp;
    }
    return ZSTD_compressCCtx(cc, dst, cap, src, n, level);
}

/* Byte planes are kept for a tensor when they make its first chunk smaller. */
static rm_status choose_planes(writer *w, const char *name, const uint8_t *data, size_t n, size_t es, size_t *width) {
    *width = 1;
    if (es == 1 || w->o->planes == 0 || n == 0) return RM_OK;
    if (w->o->planes == 1) return *width = es, RM_OK;
    size_t len = n < RM_PACK_CHUNK_BYTES ? n : RM_PACK_CHUNK_BYTES, cap = ZSTD_compressBound(RM_PACK_CHUNK_BYTES);
    size_t plain = compress_chunk(w->cctx[0], w->out[0], cap, data, len, 1, w->tmp[0], w->level);
    size_t split = compress_chunk(w->cctx[0], w->out[0], cap, data, len, es, w->tmp[0], w->level);
    if (ZSTD_isError(plain) || ZSTD_isError(split))
        return rm_fail(w->err, RM_ERR_INTERNAL, "%s: tensor \"%s\": zstd: %s", w->path, name,
                       ZSTD_getErrorName(ZSTD_isError(plain) ? plain : split));
    if (split < plain) *width = es;
    return RM_OK;
}

/* Writes one tensor: its chunks, compressed in parallel rounds, and its
 * index entry. */
static rm_status emit(writer *w, const char *name, rm_pack_elem dt, int n_dims, const int64_t *shape,
                      const uint8_t *data, size_t bytes) {
    size_t es = rm_pack_elem_size(dt), width;
    rm_status st = choose_planes(w, name, data, bytes, es, &width);
    if (st) return st;
    size_t n_chunks = (bytes + RM_PACK_CHUNK_BYTES - 1) / RM_PACK_CHUNK_BYTES;
    size_t cap = ZSTD_compressBound(RM_PACK_CHUNK_BYTES);
    size_t round = n_chunks < CHUNKS_PER_ROUND ? n_chunks : CHUNKS_PER_ROUND;
    size_t out_len[CHUNKS_PER_ROUND];
    uint64_t hash[CHUNKS_PER_ROUND], stored_hash[CHUNKS_PER_ROUND];
    json_t *entry = json_object(), *chunks = json_array(), *jshape = json_array();
    if (!entry || !chunks || !jshape) {
        st = rm_fail(w->err, RM_ERR_NOMEM, "%s: tensor \"%s\": out of memory", w->path, name);
        goto done;
    }
    for (size_t k0 = 0; k0 < n_chunks && !st; k0 += round) {
        size_t k1 = k0 + round < n_chunks ? k0 + round : n_chunks;
        size_t zerr = 0;
        /* One chunk: no team to start (most tensors are one small chunk). */
#pragma omp parallel for num_threads(w->n_threads) schedule(dynamic, 1) if (k1 - k0 > 1)
        for (size_t k = k0; k < k1; k++) {
            int t = omp_get_thread_num();
            size_t off = k * RM_PACK_CHUNK_BYTES, len = bytes - off < RM_PACK_CHUNK_BYTES ? bytes - off : RM_PACK_CHUNK_BYTES;
            hash[k - k0] = XXH64(data + off, len, 0);
            size_t z = compress_chunk(w->cctx[t], w->out[k - k0], cap, data + off, len, width, w->tmp[t], w->level);
            if (ZSTD_isError(z)) {
#pragma omp critical(pack_write_error)
                zerr = z;
            } else {
                stored_hash[k - k0] = XXH64(w->out[k - k0], z, 0);
            }
            out_len[k - k0] = z;
        }
        if (zerr) {
            st = rm_fail(w->err, RM_ERR_INTERNAL, "%s: tensor \"%s\": zstd: %s", w->path, name, ZSTD_getErrorName(zerr));
            break;
        }
        for (size_t k = k0; k < k1 && !st; k++) {
            char hx[17], hs[17];
            hex64(hx, hash[k - k0]);
            hex64(hs, stored_hash[k - k0]);
            json_t *c = json_pack("[I, I, s, s]", (json_int_t)w->offset, (json_int_t)out_len[k - k0], hx, hs);
            if (!c || json_array_append_new(chunks, c)) {
                st = rm_fail(w->err, RM_ERR_NOMEM, "%s: out of memory", w->path);
                break;
            }
            st = write_bytes(w, w->out[k - k0], out_len[k - k0]);
            w->stats->stored_bytes += out_len[k - k0];
        }
    }
    if (st) goto done;
    for (int d = 0; d < n_dims; d++) json_array_append_new(jshape, json_integer(shape[d]));
    json_object_set_new(entry, "name", json_string(name));
    json_object_set_new(entry, "dtype", json_string(rm_pack_elem_name(dt)));
    json_object_set(entry, "shape", jshape);
    json_object_set_new(entry, "bytes", json_integer((json_int_t)bytes));
    json_object_set_new(entry, "planes", json_integer((json_int_t)width));
    json_object_set(entry, "chunks", chunks);
    if (json_array_append(w->tensors, entry))
        st = rm_fail(w->err, RM_ERR_NOMEM, "%s: out of memory", w->path);
    w->stats->tensors++;
    w->stats->tensors_planes += width > 1;
    w->stats->raw_bytes += bytes;
done:
    json_decref(entry);
    json_decref(chunks);
    json_decref(jshape);
    return st;
}

/* bf16 of an fp32 value, rounding to nearest even (NaN kept a NaN). */
static uint16_t bf16_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static int64_t rows_of(const rm_tensor *t) { return t->n_dims >= 2 ? t->shape[0] : 1; }

/* One tensor of the shard, in the pack's dtype. A bf16 tensor's bytes are
 * taken as they are, so a bf16 pack holds exactly the checkpoint's values. */
static rm_status put_tensor(writer *w, const rm_tensor *t, int quantise) {
    int64_t numel = rm_tensor_numel(t), rows = rows_of(t), cols = rows ? numel / rows : 0;
    if (!quantise && t->dtype == RM_DT_BF16) return emit(w, t->name, RM_PACK_BF16, t->n_dims, t->shape, t->data, t->n_bytes);
    size_t n = (size_t)numel;
    float *f = rm_malloc((n ? n : 1) * sizeof *f);
    if (!f) return rm_fail(w->err, RM_ERR_NOMEM, "%s: tensor \"%s\": out of memory", w->path, t->name);
    rm_cpu_convert(t, rows, cols, f, w->n_threads);
    rm_status st;
    if (quantise) {
        /* e4m3 values plus one fp32 scale per output row (rm_cpu_quantize_fp8_rows),
         * from the weights in bf16, as the CUDA engine quantises at load (an fp32
         * or fp16 checkpoint is rounded to bf16 first): the pack is bitwise the
         * GPU-quantised checkpoint. */
        if (t->dtype != RM_DT_BF16)
            for (size_t i = 0; i < n; i++) f[i] = rm_bf16_to_f32(bf16_of(f[i]));
        uint8_t *q = rm_malloc(n ? n : 1);
        float *scales = rm_malloc((size_t)(rows ? rows : 1) * sizeof *scales);
        if (!q || !scales) {
            st = rm_fail(w->err, RM_ERR_NOMEM, "%s: tensor \"%s\": out of memory", w->path, t->name);
        } else {
            rm_cpu_quantize_fp8_rows(f, (size_t)rows, (size_t)cols, q, scales, w->n_threads);
            char scale_name[512];
            snprintf(scale_name, sizeof scale_name, "%s_scale", t->name);
            int64_t sshape[1] = {rows};
            st = emit(w, t->name, RM_PACK_F8_E4M3, t->n_dims, t->shape, q, n);
            if (!st) st = emit(w, scale_name, RM_PACK_F32, 1, sshape, (const uint8_t *)scales, (size_t)rows * sizeof *scales);
        }
        rm_mfree(q);
        rm_mfree(scales);
    } else {
        uint16_t *b = rm_malloc((n ? n : 1) * sizeof *b);
        if (!b) {
            st = rm_fail(w->err, RM_ERR_NOMEM, "%s: tensor \"%s\": out of memory", w->path, t->name);
        } else {
            for (size_t i = 0; i < n; i++) b[i] = bf16_of(f[i]);
            st = emit(w, t->name, RM_PACK_BF16, t->n_dims, t->shape, (const uint8_t *)b, n * sizeof *b);
        }
        rm_mfree(b);
    }
    rm_mfree(f);
    return st;
}

/* The shard's tensors in a fixed order: embedding, each layer, final norm, heads. */
static rm_status put_shard(writer *w, const rm_shard *s) {
    const rm_model_weights *m = &s->mw;
    int fp8 = w->o->dtype == RM_DTYPE_FP8;
    rm_status st;
    if ((st = put_tensor(w, m->embed, 0))) return st;
    for (int64_t l = 0; l < m->n_layers; l++) {
        const rm_layer_weights *L = &m->layers[l];
        const rm_tensor *vec[] = {L->attn_norm, L->bq, L->bk, L->bv, L->bo, L->q_norm, L->k_norm,
                                  L->mlp_norm, L->b_gate, L->b_up, L->b_down};
        const rm_tensor *mat[] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        for (size_t i = 0; i < sizeof mat / sizeof *mat; i++)
            if ((st = put_tensor(w, mat[i], fp8))) return st;
        for (size_t i = 0; i < sizeof vec / sizeof *vec; i++)
            if (vec[i] && (st = put_tensor(w, vec[i], 0))) return st;
    }
    if ((st = put_tensor(w, m->final_norm, 0))) return st;
    if (m->lm_head && m->lm_head != m->embed && (st = put_tensor(w, m->lm_head, 0))) return st;
    if (m->score && (st = put_tensor(w, m->score, 0))) return st;
    return RM_OK;
}

typedef struct file_info {
    char name[64];
    uint64_t bytes, index_hash;
} file_info;

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static rm_status write_rank(const char *out_dir, const rm_shard *s, const rm_pack_options *o, int n_threads,
                            file_info *info, rm_pack_stats *stats, rm_err *err) {
    rm_pack_rank_file(info->name, sizeof info->name, s->rank, s->tp);
    char *path = rm_path_join(out_dir, info->name);
    if (!path) return rm_fail(err, RM_ERR_NOMEM, "out of memory");
    writer w = {o, n_threads, o->level > 0 ? o->level : 3, fopen(path, "wb"), path, 0, json_array(), stats, err,
                rm_calloc((size_t)n_threads, sizeof(ZSTD_CCtx *)), rm_calloc((size_t)n_threads, sizeof(uint8_t *)),
                rm_calloc(CHUNKS_PER_ROUND, sizeof(uint8_t *))};
    rm_status st = RM_OK;
    json_t *index = NULL;
    char *text = NULL;
    if (!w.f) {
        st = rm_fail(err, RM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        goto done;
    }
    int ok = w.tensors && w.cctx && w.tmp && w.out;
    for (int t = 0; ok && t < n_threads; t++) ok = (w.cctx[t] = ZSTD_createCCtx()) && (w.tmp[t] = rm_malloc(RM_PACK_CHUNK_BYTES));
    for (int k = 0; ok && k < CHUNKS_PER_ROUND; k++) ok = (w.out[k] = rm_malloc(ZSTD_compressBound(RM_PACK_CHUNK_BYTES))) != NULL;
    if (!ok) {
        st = rm_fail(err, RM_ERR_NOMEM, "%s: out of memory for the compressors", path);
        goto done;
    }
    if ((st = write_bytes(&w, RM_PACK_MAGIC, 8)) || (st = put_shard(&w, s))) goto done;
    index = json_pack("{s:s, s:i, s:i, s:i, s:s, s:I, s:O}", "format", "nimreward-pack-rank", "version",
                      RM_PACK_VERSION, "rank", s->rank, "tp", s->tp, "dtype",
                      o->dtype == RM_DTYPE_FP8 ? "fp8" : "bf16", "chunk_bytes", (json_int_t)RM_PACK_CHUNK_BYTES,
                      "tensors", w.tensors);
    text = index ? json_dumps(index, JSON_COMPACT) : NULL;
    if (!text) {
        st = rm_fail(err, RM_ERR_NOMEM, "out of memory for the index of %s", path);
        goto done;
    }
    size_t len = strlen(text);
    uint64_t index_at = w.offset;
    uint8_t trailer[RM_PACK_TRAILER_BYTES];
    put_u64(trailer, index_at);
    put_u64(trailer + 8, len);
    memcpy(trailer + 16, RM_PACK_END_MAGIC, 8);
    if ((st = write_bytes(&w, text, len)) || (st = write_bytes(&w, trailer, sizeof trailer))) goto done;
    info->index_hash = XXH64(text, len, 0);
    info->bytes = w.offset;
    stats->stored_bytes += 8 + len + sizeof trailer;
done:
    if (w.f && fclose(w.f) != 0 && !st) st = rm_fail(err, RM_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    if (st && w.f) unlink(path);
    rm_mfree(text);   /* jansson allocates through rm_malloc */
    json_decref(index);
    json_decref(w.tensors);
    for (int t = 0; w.cctx && t < n_threads; t++) ZSTD_freeCCtx(w.cctx[t]);
    for (int t = 0; w.tmp && t < n_threads; t++) rm_mfree(w.tmp[t]);
    for (int k = 0; w.out && k < CHUNKS_PER_ROUND; k++) rm_mfree(w.out[k]);
    rm_mfree(w.cctx);
    rm_mfree(w.tmp);
    rm_mfree(w.out);
    rm_mfree(path);
    return st;
}

static rm_status copy_file(const char *from, const char *to, rm_err *err) {
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    rm_status st = RM_OK;
    if (!in || !out) {
        st = rm_fail(err, RM_ERR_IO, "%s: cannot %s: %s", in ? to : from, in ? "create" : "open", strerror(errno));
    } else {
        char buf[1 << 16];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, in)) > 0)
            if (fwrite(buf, 1, n, out) != n) {
                st = rm_fail(err, RM_ERR_IO, "%s: cannot write: %s", to, strerror(errno));
                break;
            }
        if (!st && ferror(in)) st = rm_fail(err, RM_ERR_IO, "%s: cannot read", from);
    }
    if (in) fclose(in);
    if (out && fclose(out) != 0 && !st) st = rm_fail(err, RM_ERR_IO, "%s: cannot write: %s", to, strerror(errno));
    return st;
}

static rm_status write_manifest(const char *out_dir, const rm_config *cfg, const rm_pack_options *o, int level,
                                const file_info *files, json_t *copied, const rm_pack_stats *stats, rm_err *err) {
    json_t *jfiles = json_array();
    for (int r = 0; jfiles && r < o->tp; r++) {
        char hx[17];
        hex64(hx, files[r].index_hash);
        json_array_append_new(jfiles, json_pack("{s:s, s:i, s:I, s:s}", "name", files[r].name, "rank", r, "bytes",
                                                (json_int_t)files[r].bytes, "index_xxh64", hx));
    }
    json_t *m = json_pack("{s:s, s:i, s:i, s:s, s:s, s:i, s:s, s:I, s:s, s:I, s:o, s:O, s:I, s:I}",
                          "format", "nimreward-pack", "version", RM_PACK_VERSION, "tp", o->tp,
                          "dtype", o->dtype == RM_DTYPE_FP8 ? "fp8" : "bf16", "compression", "zstd",
                          "zstd_level", level, "checksum", "xxh64 of each chunk's raw and stored bytes",
                          "chunk_bytes", (json_int_t)RM_PACK_CHUNK_BYTES, "architecture", cfg->architecture,
                          "layers", (json_int_t)cfg->n_layers, "files", jfiles, "copied", copied,
                          "raw_bytes", (json_int_t)stats->raw_bytes, "stored_bytes", (json_int_t)stats->stored_bytes);
    char *path = rm_path_join(out_dir, RM_PACK_MANIFEST), *tmp = rm_path_join(out_dir, RM_PACK_MANIFEST ".tmp");
    rm_status st = RM_OK;
    if (!m || !path || !tmp) st = rm_fail(err, RM_ERR_NOMEM, "out of memory");
    else if (json_dump_file(m, tmp, JSON_INDENT(2)) != 0) st = rm_fail(err, RM_ERR_IO, "%s: cannot write", tmp);
    else if (rename(tmp, path) != 0) st = rm_fail(err, RM_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    json_decref(m);
    rm_mfree(path);
    rm_mfree(tmp);
    return st;
}

/* mkdir -p: the missing directories of path, 0755. */
static int make_dirs(const char *path) {
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return errno = ENAMETOOLONG, -1;
    memcpy(buf, path, n + 1);
    for (char *c = buf + 1; ; c++) {
        if (*c == '/' || *c == 0) {
            char keep = *c;
            *c = 0;
            struct stat sb;
            if (stat(buf, &sb) != 0 && mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
            if (!(*c = keep)) break;
        }
    }
    return 0;
}

static int same_dir(const char *a, const char *b) {
    char ra[PATH_MAX], rb[PATH_MAX];
    return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

rm_status rm_pack_write(const char *model_dir, const char *out_dir, const rm_pack_options *o, rm_pack_stats *stats,
                        rm_err *err) {
    rm_pack_stats local_stats;
    if (!stats) stats = &local_stats;
    memset(stats, 0, sizeof *stats);
    if (!model_dir || !out_dir || !o) return rm_fail(err, RM_ERR_INVALID_ARG, "rm_pack_write: NULL argument");
    if (o->tp < 1 || o->tp > 4096) return rm_fail(err, RM_ERR_INVALID_ARG, "--tp %d: 1 to 4096 ranks", o->tp);
    if (o->dtype != RM_DTYPE_BF16 && o->dtype != RM_DTYPE_FP8)
        return rm_fail(err, RM_ERR_INVALID_ARG, "--dtype %s: a pack is bf16 or fp8", rm_dtype_name(o->dtype));
    int level = o->level > 0 ? o->level : 3;
    if (level > ZSTD_maxCLevel())
        return rm_fail(err, RM_ERR_INVALID_ARG, "--level %d: zstd levels go from 1 to %d", level, ZSTD_maxCLevel());
    rm_global_init();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct stat sb;
    if (stat(out_dir, &sb) != 0 && make_dirs(out_dir) != 0)
        return rm_fail(err, RM_ERR_IO, "%s: cannot create: %s", out_dir, strerror(errno));
    if (stat(out_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return rm_fail(err, RM_ERR_IO, "%s: not a directory", out_dir);
    if (same_dir(model_dir, out_dir))
        return rm_fail(err, RM_ERR_INVALID_ARG, "%s: the pack must go to another directory than the model's", out_dir);
    char *stale = rm_path_join(out_dir, RM_PACK_MANIFEST);
    if (stale) unlink(stale);   /* an earlier pack here stops being one until this one is complete */
    rm_mfree(stale);

    rm_config cfg;
    memset(&cfg, 0, sizeof cfg);
    rm_weights *wts = NULL;
    rm_model_weights mw;
    memset(&mw, 0, sizeof mw);
    file_info *files = rm_calloc((size_t)o->tp, sizeof *files);
    json_t *copied = json_array();
    char *cfg_path = rm_path_join(model_dir, "config.json");
    rm_status st;
    if (!files || !copied || !cfg_path) {
        st = rm_fail(err, RM_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = rm_config_load(&cfg, cfg_path, err)) || (st = rm_weights_open(&wts, model_dir, err)) ||
        (st = rm_model_weights_bind(&mw, wts, &cfg, err)) || (st = rm_shard_check(&cfg, o->tp, err)))
        goto done;
    int n_threads = o->n_threads > 0 ? o->n_threads : online_cores();
    rm_shard_source src = {&cfg, &mw, NULL};
    for (int r = 0; r < o->tp && !st; r++) {
        rm_shard *s;
        if ((st = rm_shard_load(&s, &src, o->tp, r, n_threads, err))) break;
        st = write_rank(out_dir, s, o, n_threads, &files[r], stats, err);
        rm_shard_free(s);
    }
    for (size_t i = 0; !st && i < sizeof copied_files / sizeof *copied_files; i++) {
        char *from = rm_path_join(model_dir, copied_files[i]), *to = rm_path_join(out_dir, copied_files[i]);
        if (!from || !to) st = rm_fail(err, RM_ERR_NOMEM, "out of memory");
        else if (stat(from, &sb) == 0 && (st = copy_file(from, to, err)) == RM_OK)
            json_array_append_new(copied, json_string(copied_files[i]));
        rm_mfree(from);
        rm_mfree(to);
    }
    if (!st) st = write_manifest(out_dir, &cfg, o, level, files, copied, stats, err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    stats->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
done:
    json_decref(copied);
    rm_mfree(files);
    rm_mfree(cfg_path);
    rm_model_weights_free(&mw);
    rm_weights_close(wts);
    rm_config_free(&cfg);
    return st;
}
