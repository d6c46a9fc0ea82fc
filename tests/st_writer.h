/*
 * st_writer.h - writes small Hugging Face style checkpoints for tests:
 * config.json plus model.safetensors (or shards with
 * model.safetensors.index.json), deterministic pseudo-random weights in
 * BF16, F16 or F32, tied or untied lm_head, either config layout.
 *
 * Header-only; test code, so it uses plain malloc and stdio.
 *
 *     st_spec s = st_spec_default("LlamaForCausalLM");
 *     s.dtype = "F16"; s.n_shards = 2; s.tie_embeddings = 1;
 *     if (st_write_model(dir, &s) != 0) ...;
 *
 * Every weight is a pure function of (seed, tensor name, element index):
 * st_value(&s, name, i) gives the value before rounding and
 * st_round(s.dtype, v) the value as stored, so a test can check any element
 * it reads back without keeping the data around. Norm weights sit near 1,
 * biases near 0.05, matrices near 0 scaled by 1/sqrt(columns) so a forward
 * pass stays in range.
 *
 * st_write_raw() writes a safetensors file from a header string and raw data
 * for malformed-input tests.
 */
#ifndef RM_ST_WRITER_H
#define RM_ST_WRITER_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct st_spec {
    const char *arch;            /* "LlamaForSequenceClassification", "LlamaForCausalLM",
                                    "Qwen2ForSequenceClassification", "Qwen3ForSequenceClassification" */
    int hidden, n_layers, n_heads, n_kv_heads, ffn, vocab;
    int head_dim;                /* 0: hidden / n_heads and (old layout) not written */
    int n_labels;                /* classification heads: rows of score.weight */
    const char *const *labels;   /* NULL: id2label is LABEL_i */
    const char *dtype;           /* "BF16" (default), "F16", "F32" */
    int n_shards;                /* <= 1: model.safetensors; else that many shards plus the index */
    int tie_embeddings;          /* tie_word_embeddings; a causal model then has no lm_head.weight */
    int write_tied_lm_head;      /* with tie_embeddings: still write an (unused) lm_head.weight */
    int attention_bias, mlp_bias;/* Llama/Qwen3 flags (Qwen2 always has q/k/v bias) */
    int rope_llama3;             /* llama3 rope scaling (factor 8, 1, 4, 8192) */
    int new_layout;              /* rope_parameters/dtype/head_dim instead of rope_theta/rope_scaling/torch_dtype */
    double rope_theta;
    double rms_eps;
    unsigned long long seed;
} st_spec;

static inline st_spec st_spec_default(const char *arch) {
    st_spec s;
    memset(&s, 0, sizeof s);
    s.arch = arch;
    s.hidden = 32;
    s.n_layers = 2;
    s.n_heads = 4;
    s.n_kv_heads = 2;
    s.ffn = 48;
    s.vocab = 96;
    s.n_labels = strstr(arch, "Causal") ? 0 : 2;
    s.dtype = "BF16";
    s.n_shards = 1;
    s.rope_theta = 10000.0;
    s.rms_eps = 1e-5;
    s.seed = 0x5eed2026ULL;
    return s;
}

/* ------------------------------------------------------------ values */

static inline uint64_t st_mix64(uint64_t x) {          /* splitmix64 finaliser */
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static inline uint64_t st_hash(const char *s) {       /* FNV-1a */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

static inline int st_ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The value of element i of tensor `name` (n_cols: its last dimension). */
static inline float st_value_cols(const st_spec *s, const char *name, int64_t i, int64_t n_cols) {
    uint64_t r = st_mix64(s->seed ^ st_hash(name) ^ st_mix64((uint64_t)i));
    float u = (float)((double)(r >> 40) / (double)(1ULL << 23) - 1.0);   /* [-1, 1) */
    if (st_ends_with(name, "norm.weight")) return 1.0f + 0.25f * u;
    if (st_ends_with(name, ".bias")) return 0.05f + 0.1f * u;
    if (strstr(name, "embed_tokens")) return 0.5f * u;
    return u / sqrtf((float)(n_cols > 0 ? n_cols : 1));
}

/* IEEE half precision, written out (no _Float16: clang 14 lacks it on x86),
 * so tests check the library's conversion against an independent one. */
static inline uint16_t st_f32_to_f16_bits(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0));  /* inf, nan */
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);     /* rounds past 65504: inf */
    if (ax < 0x38800000u) {                                       /* below 2^-14: subnormal */
        float v;
        memcpy(&v, &ax, 4);
        return (uint16_t)(sign | (uint32_t)nearbyintf(v * 16777216.0f));   /* units of 2^-24, nearest even */
    }
    uint32_t h = ((((ax >> 23) - 127 + 15) << 10) | ((ax & 0x7fffffu) >> 13)), rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;       /* nearest even; a carry bumps the exponent */
    return (uint16_t)(sign | h);
}

static inline float st_f16_bits_to_f32(uint16_t h) {
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
    float v;
    if (e == 31) {
        u = 0x7f800000u | (m << 13);
        memcpy(&v, &u, 4);
    } else {
        v = e == 0 ? ldexpf((float)m, -24) : ldexpf((float)(m | 0x400u), (int)e - 25);
    }
    memcpy(&u, &v, 4);
    u |= (uint32_t)(h & 0x8000u) << 16;
    memcpy(&v, &u, 4);
    return v;
}

/* Rounds v as the file stores it: "BF16" (nearest even), "F16", "F32". */
static inline float st_round(const char *dtype, float v) {
    if (strcmp(dtype, "F32") == 0) return v;
    if (strcmp(dtype, "F16") == 0) return st_f16_bits_to_f32(st_f32_to_f16_bits(v));
    uint32_t u;
    memcpy(&u, &v, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&v, &u, 4);
    return v;
}

static inline size_t st_dtype_bytes(const char *dtype) { return strcmp(dtype, "F32") == 0 ? 4 : 2; }

static inline void st_store(const char *dtype, float v, unsigned char *dst) {
    v = st_round(dtype, v);
    if (strcmp(dtype, "F32") == 0) {
        memcpy(dst, &v, 4);
    } else if (strcmp(dtype, "F16") == 0) {
        uint16_t h = st_f32_to_f16_bits(v);
        memcpy(dst, &h, 2);
    } else {
        uint32_t u;
        memcpy(&u, &v, 4);
        uint16_t h = (uint16_t)(u >> 16);
        memcpy(dst, &h, 2);
    }
}

/* ------------------------------------------------------------ the tensor list */

typedef struct st_tdesc {
    char name[128];
    int n_dims;
    int64_t shape[2];
} st_tdesc;

static inline void st_add(st_tdesc *t, int *n, const char *name, int n_dims, int64_t d0, int64_t d1) {
    snprintf(t[*n].name, sizeof t[*n].name, "%s", name);
    t[*n].n_dims = n_dims;
    t[*n].shape[0] = d0;
    t[*n].shape[1] = d1;
    (*n)++;
}

static inline int st_head_dim(const st_spec *s) { return s->head_dim ? s->head_dim : s->hidden / s->n_heads; }

/* The tensors the architecture has, in the order HF's state dict lists them.
 * Returns a malloc'd array of *n entries. */
static inline st_tdesc *st_model_tensors(const st_spec *s, int *n) {
    int is_causal = strstr(s->arch, "CausalLM") != NULL, qwen2 = strstr(s->arch, "Qwen2") != NULL,
        qwen3 = strstr(s->arch, "Qwen3") != NULL;
    int64_t h = s->hidden, hd = st_head_dim(s), q = (int64_t)s->n_heads * hd, kv = (int64_t)s->n_kv_heads * hd;
    st_tdesc *t = calloc((size_t)(4 + 20 * s->n_layers), sizeof *t);
    char nm[128];
    *n = 0;
    if (!t) return NULL;
    st_add(t, n, "model.embed_tokens.weight", 2, s->vocab, h);
    for (int l = 0; l < s->n_layers; l++) {
#define ST_L(suffix) (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix), nm)
        st_add(t, n, ST_L("input_layernorm.weight"), 1, h, 0);
        st_add(t, n, ST_L("self_attn.q_proj.weight"), 2, q, h);
        st_add(t, n, ST_L("self_attn.k_proj.weight"), 2, kv, h);
        st_add(t, n, ST_L("self_attn.v_proj.weight"), 2, kv, h);
        st_add(t, n, ST_L("self_attn.o_proj.weight"), 2, h, q);
        if (qwen2 || s->attention_bias) {
            st_add(t, n, ST_L("self_attn.q_proj.bias"), 1, q, 0);
            st_add(t, n, ST_L("self_attn.k_proj.bias"), 1, kv, 0);
            st_add(t, n, ST_L("self_attn.v_proj.bias"), 1, kv, 0);
        }
        if (!qwen2 && s->attention_bias) st_add(t, n, ST_L("self_attn.o_proj.bias"), 1, h, 0);
        if (qwen3) {
            st_add(t, n, ST_L("self_attn.q_norm.weight"), 1, hd, 0);
            st_add(t, n, ST_L("self_attn.k_norm.weight"), 1, hd, 0);
        }
        st_add(t, n, ST_L("post_attention_layernorm.weight"), 1, h, 0);
        st_add(t, n, ST_L("mlp.gate_proj.weight"), 2, s->ffn, h);
        st_add(t, n, ST_L("mlp.up_proj.weight"), 2, s->ffn, h);
        st_add(t, n, ST_L("mlp.down_proj.weight"), 2, h, s->ffn);
        if (s->mlp_bias && !qwen2 && !qwen3) {
            st_add(t, n, ST_L("mlp.gate_proj.bias"), 1, s->ffn, 0);
            st_add(t, n, ST_L("mlp.up_proj.bias"), 1, s->ffn, 0);
            st_add(t, n, ST_L("mlp.down_proj.bias"), 1, h, 0);
        }
#undef ST_L
    }
    st_add(t, n, "model.norm.weight", 1, h, 0);
    if (is_causal && (!s->tie_embeddings || s->write_tied_lm_head)) st_add(t, n, "lm_head.weight", 2, s->vocab, h);
    if (!is_causal) st_add(t, n, "score.weight", 2, s->n_labels, h);
    return t;
}

static inline float st_value(const st_spec *s, const st_tdesc *t, int64_t i) {
    return st_value_cols(s, t->name, i, t->n_dims == 2 ? t->shape[1] : t->shape[0]);
}

/* ------------------------------------------------------------ files */

/* Writes 8-byte length + header (as given, unpadded) + data. 0 on success. */
static inline int st_write_raw(const char *path, const char *header, size_t header_len, const void *data,
                               size_t data_len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)header_len >> (8 * i));
    int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(header, 1, header_len, f) == header_len &&
             (data_len == 0 || fwrite(data, 1, data_len, f) == data_len);
    return fclose(f) == 0 && ok ? 0 : -1;
}

static inline int64_t st_numel(const st_tdesc *t) { return t->n_dims == 2 ? t->shape[0] * t->shape[1] : t->shape[0]; }

/* Writes tensors [first, first + count) of `t` into one safetensors file. */
static inline int st_write_file(const char *path, const st_spec *s, const st_tdesc *t, int first, int count) {
    size_t esz = st_dtype_bytes(s->dtype), cap = 256 + (size_t)count * 256, hl = 0, total = 0;
    char *hdr = malloc(cap);
    if (!hdr) return -1;
    hl += (size_t)snprintf(hdr + hl, cap - hl, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int k = first; k < first + count; k++) {
        size_t bytes = (size_t)st_numel(&t[k]) * esz;
        hl += (size_t)snprintf(hdr + hl, cap - hl, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld", t[k].name, s->dtype,
                               (long long)t[k].shape[0]);
        if (t[k].n_dims == 2) hl += (size_t)snprintf(hdr + hl, cap - hl, ",%lld", (long long)t[k].shape[1]);
        hl += (size_t)snprintf(hdr + hl, cap - hl, "],\"data_offsets\":[%zu,%zu]}", total, total + bytes);
        total += bytes;
    }
    hl += (size_t)snprintf(hdr + hl, cap - hl, "}");
    while (hl % 8) hdr[hl++] = ' ';     /* as safetensors pads: the data section starts 8-aligned */
    unsigned char *data = malloc(total ? total : 1);
    if (!data) { free(hdr); return -1; }
    size_t off = 0;
    for (int k = first; k < first + count; k++) {
        int64_t n = st_numel(&t[k]);
        for (int64_t i = 0; i < n; i++, off += esz) st_store(s->dtype, st_value(s, &t[k], i), data + off);
    }
    int rc = st_write_raw(path, hdr, hl, data, total);
    free(hdr);
    free(data);
    return rc;
}

static inline void st_json_string(FILE *f, const char *v) {
    fputc('"', f);
    for (; *v; v++) {
        if (*v == '"' || *v == '\\') fputc('\\', f);
        fputc(*v, f);
    }
    fputc('"', f);
}

static inline int st_write_config(const char *dir, const st_spec *s) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    const char *torch = strcmp(s->dtype, "F32") == 0 ? "float32" : strcmp(s->dtype, "F16") == 0 ? "float16" : "bfloat16";
    fprintf(f, "{\n  \"architectures\": [\"%s\"],\n", s->arch);
    fprintf(f, "  \"hidden_act\": \"silu\",\n  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n", s->hidden, s->ffn);
    fprintf(f, "  \"num_attention_heads\": %d,\n  \"num_hidden_layers\": %d,\n  \"num_key_value_heads\": %d,\n",
            s->n_heads, s->n_layers, s->n_kv_heads);
    fprintf(f, "  \"vocab_size\": %d,\n  \"max_position_embeddings\": 4096,\n  \"rms_norm_eps\": %.17g,\n", s->vocab,
            s->rms_eps);
    fprintf(f, "  \"attention_bias\": %s,\n  \"mlp_bias\": %s,\n  \"tie_word_embeddings\": %s,\n",
            s->attention_bias ? "true" : "false", s->mlp_bias ? "true" : "false", s->tie_embeddings ? "true" : "false");
    fprintf(f, "  \"pad_token_id\": 0,\n");
    if (s->n_labels > 0) {
        fprintf(f, "  \"id2label\": {");
        for (int i = 0; i < s->n_labels; i++) {
            char def[32];
            snprintf(def, sizeof def, "LABEL_%d", i);
            fprintf(f, "%s\"%d\": ", i ? ", " : "", i);
            st_json_string(f, s->labels ? s->labels[i] : def);
        }
        fprintf(f, "},\n");
    }
    if (s->new_layout || s->head_dim) fprintf(f, "  \"head_dim\": %d,\n", st_head_dim(s));
    if (s->new_layout) {
        fprintf(f, "  \"dtype\": \"%s\",\n  \"rope_parameters\": {\"rope_theta\": %.17g, ", torch, s->rope_theta);
        if (s->rope_llama3)
            fprintf(f, "\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                       "\"original_max_position_embeddings\": 8192}\n");
        else
            fprintf(f, "\"rope_type\": \"default\"}\n");
    } else {
        fprintf(f, "  \"torch_dtype\": \"%s\",\n  \"rope_theta\": %.17g,\n", torch, s->rope_theta);
        if (s->rope_llama3)
            fprintf(f, "  \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, "
                       "\"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}\n");
        else
            fprintf(f, "  \"rope_scaling\": null\n");
    }
    fprintf(f, "}\n");
    return fclose(f) == 0 ? 0 : -1;
}

/* Writes config.json and the weights into dir (which must exist). 0 on success. */
static inline int st_write_model(const char *dir, const st_spec *s) {
    int n, rc = st_write_config(dir, s);
    st_tdesc *t = st_model_tensors(s, &n);
    if (rc != 0 || !t) { free(t); return -1; }
    char path[4096];
    if (s->n_shards <= 1) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        rc = st_write_file(path, s, t, 0, n);
        free(t);
        return rc;
    }
    int ns = s->n_shards > n ? n : s->n_shards;
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    FILE *idx = fopen(path, "w");
    if (!idx) { free(t); return -1; }
    size_t total = 0;
    for (int k = 0; k < n; k++) total += (size_t)st_numel(&t[k]) * st_dtype_bytes(s->dtype);
    fprintf(idx, "{\n  \"metadata\": {\"total_size\": %zu},\n  \"weight_map\": {\n", total);
    for (int sh = 0; sh < ns && rc == 0; sh++) {
        int first = (int)((long long)n * sh / ns), last = (int)((long long)n * (sh + 1) / ns);
        char file[64];
        snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", sh + 1, ns);
        snprintf(path, sizeof path, "%s/%s", dir, file);
        rc = st_write_file(path, s, t, first, last - first);
        for (int k = first; k < last; k++)
            fprintf(idx, "    \"%s\": \"%s\"%s\n", t[k].name, file, k + 1 < n ? "," : "");
    }
    fprintf(idx, "  }\n}\n");
    if (fclose(idx) != 0) rc = -1;
    free(t);
    return rc;
}

#endif /* RM_ST_WRITER_H */
