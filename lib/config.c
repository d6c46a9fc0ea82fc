/*
 * config.c - reads a Hugging Face config.json into an rm_config.
 *
 * Both layouts found in the wild are read: the older one (rope_theta at the
 * top level, rope_scaling {rope_type|type, factor, ...} or null, torch_dtype,
 * no head_dim) and the newer one (rope_parameters {rope_theta, rope_type,
 * ...}, dtype, head_dim). Defaults follow transformers' own config classes.
 * Every number is checked for type and range before it sizes anything: a
 * config is untrusted input and an absurd size must be refused, not allocated.
 */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* config.json files are a few KB; anything past this is not a config. */
#define CONFIG_MAX_BYTES (16u << 20)

/* Upper bounds: far above any released model, far below what would make a
 * size computation overflow or an allocation absurd. Past them: RM_ERR_LIMIT. */
#define MAX_HIDDEN      (1 << 17)
#define MAX_LAYERS      1024
#define MAX_HEADS       4096
#define MAX_HEAD_DIM    4096
#define MAX_FFN         (1 << 20)
#define MAX_VOCAB       (1 << 24)
#define MAX_POSITIONS   (1LL << 30)
#define MAX_LABELS      (1 << 16)
#define MAX_LABEL_BYTES 4096

/* Reading context: the file name for messages and where errors go. */
typedef struct cfg_reader {
    const char *name;
    rm_err *err;
} cfg_reader;

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "an unknown value";
}


/* A field that is absent or null counts as absent (transformers writes null
 * for "use the default"). */
static json_t *field(json_t *obj, const char *key) {
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    return v && !json_is_null(v) ? v : NULL;
}

/* The number in field obj.key, in *out; *out = NULL when absent and not
 * required (the caller then uses its default). `expected` names the kind
 * wanted in the message for a field that is not a number. */
static rm_status number_field(const cfg_reader *r, json_t *obj, const char *where, const char *key, int required,
                              const char *expected, json_t **out) {
    json_t *v = field(obj, key);
    *out = NULL;
    if (!v && required) return rm_fail(r->err, RM_ERR_FORMAT, "%s: field \"%s%s\" is missing", r->name, where, key);
    if (!v) return RM_OK;
    if (!json_is_number(v))
        return rm_fail(r->err, RM_ERR_FORMAT, "%s: field \"%s%s\" must be %s, found %s", r->name, where, key,
                       expected, json_kind(v));
    *out = v;
    return RM_OK;
}

/* Reads an integer field of obj (named `where` in messages, e.g. "rope_scaling.")
 * into *out. Absent: RM_ERR_FORMAT when required, else *out = def.
 * Integers arrive as reals (JSON_DECODE_INT_AS_REAL), so integral is checked. */
static rm_status get_int(const cfg_reader *r, json_t *obj, const char *where, const char *key, int required,
                         int64_t def, int64_t lo, int64_t hi, int64_t *out) {
    json_t *v;
    rm_status st = number_field(r, obj, where, key, required, "an integer", &v);
    if (st != RM_OK) return st;
    if (!v) { *out = def; return RM_OK; }
    double d = json_number_value(v);
    if (!isfinite(d) || d != floor(d))
        return rm_fail(r->err, RM_ERR_FORMAT, "%s: field \"%s%s\" must be an integer, found %g", r->name, where,
                       key, d);
    if (d < (double)lo)
        return rm_fail(r->err, RM_ERR_FORMAT, "%s: field \"%s%s\" is %.0f, must be at least %lld", r->name,
                       where, key, d, (long long)lo);
    if (d > (double)hi)
        return rm_fail(r->err, RM_ERR_LIMIT, "%s: field \"%s%s\" is %.0f, more than the supported %lld",
                       r->name, where, key, d, (long long)hi);
    *out = (int64_t)d;
    return RM_OK;
}

/* A real field; must be finite and > 0 when `positive`. */
static rm_status get_real(const cfg_reader *r, json_t *obj, const char *where, const char *key, int required,
                          double def, int positive, double *out) {
    json_t *v;
    rm_status st = number_field(r, obj, where, key, required, "a number", &v);
    if (st != RM_OK) return st;
    if (!v) { *out = def; return RM_OK; }
    double d = json_number_value(v);
    if (!isfinite(d) || (positive && !(d > 0)))
        return rm_fail(r->err, RM_ERR_FORMAT, "%s: field \"%s%s\" is %g, must be a positive number", r->name,
                       where, key, d);
    *out = d;
    return RM_OK;
}

static rm_status get_bool(const cfg_reader *r, json_t *obj, const char *key, int def, int *out) {
    json_t *v = field(obj, key);
    if (!v) {
        *out = def;
        return RM_OK;
    }
    if (!json_is_boolean(v))
        return rm_fail(r->err, RM_ERR_FORMAT, "%s: field \"%s\" must be true or false, found %s", r->name, key,
                       json_kind(v));
    *out = json_is_true(v);
    return RM_OK;
}

/* A string field, or NULL when absent; ill-typed is an error. */
static rm_status get_string(const cfg_reader *r, json_t *obj, const char *where, const char *key,
                            const char **out) {
    json_t *v = field(obj, key);
    *out = NULL;
    if (!v) return RM_OK;
    if (!json_is_string(v))
        return rm_fail(r->err, RM_ERR_FORMAT, "%s: field \"%s%s\" must be a string, found %s", r->name, where,
                       key, json_kind(v));
    *out = json_string_value(v);
    return RM_OK;
}

/* ------------------------------------------------------------ architecture */

static const struct {
    const char *name;
    rm_arch arch;
    int causal;
} known_archs[] = {
    {"LlamaForSequenceClassification", RM_ARCH_LLAMA_SEQCLS, 0},
    {"LlamaForCausalLM", RM_ARCH_LLAMA_CAUSAL, 1},
    {"Qwen2ForSequenceClassification", RM_ARCH_QWEN2_SEQCLS, 0},
    {"Qwen3ForSequenceClassification", RM_ARCH_QWEN3_SEQCLS, 0},
};

static rm_status read_architecture(const cfg_reader *r, json_t *root, rm_config *cfg) {
    json_t *archs = field(root, "architectures");
    if (!archs) return rm_fail(r->err, RM_ERR_FORMAT, "%s: field \"architectures\" is missing", r->name);
    if (!json_is_array(archs) || json_array_size(archs) == 0 || !json_is_string(json_array_get(archs, 0)))
        return rm_fail(r->err, RM_ERR_FORMAT, "%s: field \"architectures\" must be a non-empty array of strings",
                       r->name);
    const char *name = json_string_value(json_array_get(archs, 0));
    for (size_t i = 0; i < sizeof known_archs / sizeof known_archs[0]; i++) {
        if (strcmp(name, known_archs[i].name) == 0) {
            snprintf(cfg->architecture, sizeof cfg->architecture, "%s", name);
            cfg->arch = known_archs[i].arch;
            cfg->is_causal_lm = known_archs[i].causal;
            return RM_OK;
        }
    }
    return rm_fail(r->err, RM_ERR_UNSUPPORTED,
                   "%s: architecture \"%.200s\" is not supported (supported: LlamaForSequenceClassification, "
                   "LlamaForCausalLM, Qwen2ForSequenceClassification, Qwen3ForSequenceClassification)",
                   r->name, name);
}

/* ------------------------------------------------------------ sizes */

static rm_status read_sizes(const cfg_reader *r, json_t *root, rm_config *cfg) {
    rm_status st;
    if ((st = get_int(r, root, "", "hidden_size", 1, 0, 1, MAX_HIDDEN, &cfg->hidden)) ||
        (st = get_int(r, root, "", "num_hidden_layers", 1, 0, 1, MAX_LAYERS, &cfg->n_layers)) ||
        (st = get_int(r, root, "", "num_attention_heads", 1, 0, 1, MAX_HEADS, &cfg->n_heads)) ||
        (st = get_int(r, root, "", "num_key_value_heads", 0, cfg->n_heads, 1, MAX_HEADS, &cfg->n_kv_heads)) ||
        (st = get_int(r, root, "", "intermediate_size", 1, 0, 1, MAX_FFN, &cfg->ffn)) ||
        (st = get_int(r, root, "", "vocab_size", 1, 0, 1, MAX_VOCAB, &cfg->vocab)))
        return st;
    /* transformers' defaults: Llama 2048, Qwen2/Qwen3 32768. */
    int64_t def_pos = cfg->arch == RM_ARCH_QWEN2_SEQCLS || cfg->arch == RM_ARCH_QWEN3_SEQCLS ? 32768 : 2048;
    if ((st = get_int(r, root, "", "max_position_embeddings", 0, def_pos, 1, MAX_POSITIONS, &cfg->max_pos)))
        return st;
    if (!field(root, "head_dim") && cfg->hidden % cfg->n_heads != 0)
        return rm_fail(r->err, RM_ERR_FORMAT,
                       "%s: field \"hidden_size\" (%lld) is not a multiple of \"num_attention_heads\" (%lld) "
                       "and \"head_dim\" is absent",
                       r->name, (long long)cfg->hidden, (long long)cfg->n_heads);
    if ((st = get_int(r, root, "", "head_dim", 0, cfg->hidden / cfg->n_heads, 1, MAX_HEAD_DIM, &cfg->head_dim)))
        return st;
    if (cfg->n_kv_heads > cfg->n_heads || cfg->n_heads % cfg->n_kv_heads != 0)
        return rm_fail(r->err, RM_ERR_FORMAT,
                       "%s: field \"num_attention_heads\" (%lld) is not a multiple of \"num_key_value_heads\" "
                       "(%lld)",
                       r->name, (long long)cfg->n_heads, (long long)cfg->n_kv_heads);
    if (cfg->n_heads * cfg->head_dim > MAX_HIDDEN * 4)
        return rm_fail(r->err, RM_ERR_LIMIT, "%s: num_attention_heads * head_dim = %lld, more than supported",
                       r->name, (long long)(cfg->n_heads * cfg->head_dim));
    if ((st = get_real(r, root, "", "rms_norm_eps", 0, 1e-6, 1, &cfg->rms_eps))) return st;

    const char *act;
    if ((st = get_string(r, root, "", "hidden_act", &act))) return st;
    /* transformers maps "swish" to the same SiLU. */
    if (act && strcmp(act, "silu") != 0 && strcmp(act, "swish") != 0)
        return rm_fail(r->err, RM_ERR_UNSUPPORTED, "%s: field \"hidden_act\" is \"%.100s\"; only \"silu\" is supported",
                       r->name, act);

    /* Qwen2/Qwen3 can window some layers' attention; we compute full attention only. */
    int windowed;
    if ((st = get_bool(r, root, "use_sliding_window", 0, &windowed))) return st;
    if (windowed)
        return rm_fail(r->err, RM_ERR_UNSUPPORTED, "%s: field \"use_sliding_window\" is true; sliding-window "
                       "attention is not supported", r->name);
    json_t *types = field(root, "layer_types");
    if (types) {
        if (!json_is_array(types))
            return rm_fail(r->err, RM_ERR_FORMAT, "%s: field \"layer_types\" must be an array, found %s", r->name,
                           json_kind(types));
        size_t i;
        json_t *t;
        json_array_foreach(types, i, t) {
            if (!json_is_string(t) || strcmp(json_string_value(t), "full_attention") != 0)
                return rm_fail(r->err, RM_ERR_UNSUPPORTED, "%s: field \"layer_types[%zu]\" is %s%s%s; only "
                               "\"full_attention\" is supported", r->name, i, json_is_string(t) ? "\"" : "",
                               json_is_string(t) ? json_string_value(t) : json_kind(t), json_is_string(t) ? "\"" : "");
        }
    }
    return RM_OK;
}

/* ------------------------------------------------------------ rope */

/* The rope settings come from rope_parameters (newer) or rope_scaling (older,
 * may be null) with rope_theta at the top level. */
static rm_status read_rope(const cfg_reader *r, json_t *root, rm_config *cfg) {
    rm_status st;
    json_t *params = field(root, "rope_parameters");
    const char *where = "rope_parameters.";
    if (!params) {
        params = field(root, "rope_scaling");
        where = "rope_scaling.";
    }
    if (params && !json_is_object(params))
        return rm_fail(r->err, RM_ERR_FORMAT, "%s: field \"%.*s\" must be an object, found %s", r->name,
                       (int)strlen(where) - 1, where, json_kind(params));

    /* rope_theta: inside rope_parameters, else at the top level, else 10000. */
    double top_theta;
    if ((st = get_real(r, root, "", "rope_theta", 0, 10000.0, 1, &top_theta))) return st;
    if ((st = get_real(r, params, where, "rope_theta", 0, top_theta, 1, &cfg->rope_theta))) return st;

    const char *type = NULL;
    if ((st = get_string(r, params, where, "rope_type", &type))) return st;
    if (!type && (st = get_string(r, params, where, "type", &type))) return st;
    cfg->rope_type = RM_ROPE_DEFAULT;
    cfg->rope_factor = 1.0;
    cfg->rope_low_freq_factor = 1.0;
    cfg->rope_high_freq_factor = 1.0;
    cfg->rope_orig_max_pos = cfg->max_pos;
    double partial;
    if ((st = get_real(r, params, where, "partial_rotary_factor", 0, 1.0, 1, &partial))) return st;
    if (partial != 1.0)
        return rm_fail(r->err, RM_ERR_UNSUPPORTED, "%s: field \"%spartial_rotary_factor\" is %g; only 1 is supported",
                       r->name, where, partial);
    if (!type || strcmp(type, "default") == 0) return RM_OK;
    if (strcmp(type, "llama3") != 0)
        return rm_fail(r->err, RM_ERR_UNSUPPORTED,
                       "%s: field \"%srope_type\" is \"%.100s\"; supported: \"default\", \"llama3\"", r->name, where,
                       type);
    cfg->rope_type = RM_ROPE_LLAMA3;
    if ((st = get_real(r, params, where, "factor", 1, 0, 1, &cfg->rope_factor)) ||
        (st = get_real(r, params, where, "low_freq_factor", 1, 0, 1, &cfg->rope_low_freq_factor)) ||
        (st = get_real(r, params, where, "high_freq_factor", 1, 0, 1, &cfg->rope_high_freq_factor)) ||
        (st = get_int(r, params, where, "original_max_position_embeddings", 1, 0, 1, MAX_POSITIONS,
                      &cfg->rope_orig_max_pos)))
        return st;
    /* The smoothing step divides by (high - low). */
    if (!(cfg->rope_high_freq_factor > cfg->rope_low_freq_factor))
        return rm_fail(r->err, RM_ERR_FORMAT, "%s: field \"%shigh_freq_factor\" (%g) must exceed \"low_freq_factor\" (%g)",
                       r->name, where, cfg->rope_high_freq_factor, cfg->rope_low_freq_factor);
    return RM_OK;
}

/* ------------------------------------------------------------ labels */

/* Parses an id2label key: a decimal index below n, as transformers writes it. */
static int label_index(const char *key, int64_t n, int64_t *out) {
    if (!*key || strlen(key) > 9) return 0;
    int64_t v = 0;
    for (const char *p = key; *p; p++) {
        if (*p < '0' || *p > '9') return 0;
        v = v * 10 + (*p - '0');
    }
    if (key[0] == '0' && key[1]) return 0;    /* "01" is not how an index is written */
    if (v >= n) return 0;
    *out = v;
    return 1;
}

static rm_status read_labels(const cfg_reader *r, json_t *root, rm_config *cfg) {
    rm_status st;
    json_t *map = field(root, "id2label");
    if (map && !json_is_object(map))
        return rm_fail(r->err, RM_ERR_FORMAT, "%s: field \"id2label\" must be an object, found %s", r->name,
                       json_kind(map));
    if (map && json_object_size(map) > 0) {
        if (json_object_size(map) > MAX_LABELS)
            return rm_fail(r->err, RM_ERR_LIMIT, "%s: field \"id2label\" has %zu labels, more than the supported %d",
                           r->name, json_object_size(map), MAX_LABELS);
        cfg->n_labels = (int64_t)json_object_size(map);
    } else {
        /* transformers' PretrainedConfig default: two labels LABEL_0, LABEL_1. */
        if ((st = get_int(r, root, "", "num_labels", 0, 2, 1, MAX_LABELS, &cfg->n_labels))) return st;
        map = NULL;
    }
    cfg->labels = rm_calloc((size_t)cfg->n_labels, sizeof(char *));
    if (!cfg->labels) return rm_fail(r->err, RM_ERR_NOMEM, "%s: out of memory for %lld labels", r->name,
                                     (long long)cfg->n_labels);
    if (!map) {
        for (int64_t i = 0; i < cfg->n_labels; i++) {
            char name[32];
            snprintf(name, sizeof name, "LABEL_%lld", (long long)i);
            if (!(cfg->labels[i] = rm_strdup(name)))
                return rm_fail(r->err, RM_ERR_NOMEM, "%s: out of memory for labels", r->name);
        }
        return RM_OK;
    }
    const char *key;
    json_t *val;
    json_object_foreach(map, key, val) {
        int64_t idx;
        if (!label_index(key, cfg->n_labels, &idx))
            return rm_fail(r->err, RM_ERR_FORMAT,
                           "%s: field \"id2label\": key \"%.40s\" is not an index in 0..%lld", r->name, key,
                           (long long)cfg->n_labels - 1);
        if (!json_is_string(val))
            return rm_fail(r->err, RM_ERR_FORMAT, "%s: field \"id2label.%s\" must be a string, found %s", r->name,
                           key, json_kind(val));
        if (json_string_length(val) > MAX_LABEL_BYTES)
            return rm_fail(r->err, RM_ERR_LIMIT, "%s: field \"id2label.%s\" is longer than %d bytes", r->name, key,
                           MAX_LABEL_BYTES);
        /* Keys are distinct strings and each is canonical, so indices are distinct: n keys cover 0..n-1. */
        if (!(cfg->labels[idx] = rm_strdup(json_string_value(val))))
            return rm_fail(r->err, RM_ERR_NOMEM, "%s: out of memory for labels", r->name);
    }
    return RM_OK;
}

/* ------------------------------------------------------------ the rest */

static rm_status read_flags(const cfg_reader *r, json_t *root, rm_config *cfg) {
    rm_status st;
    int attention_bias, mlp_bias;
    if ((st = get_bool(r, root, "attention_bias", 0, &attention_bias)) ||
        (st = get_bool(r, root, "mlp_bias", 0, &mlp_bias)) ||
        (st = get_bool(r, root, "tie_word_embeddings", 0, &cfg->tie_embeddings)))
        return st;
    switch (cfg->arch) {
    case RM_ARCH_LLAMA_SEQCLS:
    case RM_ARCH_LLAMA_CAUSAL:     /* attention_bias: q, k, v and o; mlp_bias: gate, up, down */
        cfg->qkv_bias = cfg->o_bias = attention_bias;
        cfg->mlp_bias = mlp_bias;
        break;
    case RM_ARCH_QWEN2_SEQCLS:     /* q/k/v always biased, o never; no mlp bias */
        cfg->qkv_bias = 1;
        cfg->o_bias = 0;
        break;
    case RM_ARCH_QWEN3_SEQCLS:     /* attention_bias covers q, k, v and o */
        cfg->qkv_bias = cfg->o_bias = attention_bias;
        cfg->qk_norm = 1;
        break;
    }
    /* Some converted configs write -1 for "none". */
    if ((st = get_int(r, root, "", "pad_token_id", 0, -1, INT32_MIN, INT32_MAX, &cfg->pad_token_id))) return st;
    if (cfg->pad_token_id < 0) cfg->pad_token_id = -1;

    const char *dtype;
    if ((st = get_string(r, root, "", "dtype", &dtype))) return st;
    if (!dtype && (st = get_string(r, root, "", "torch_dtype", &dtype))) return st;
    snprintf(cfg->dtype, sizeof cfg->dtype, "%s", dtype ? dtype : "");
    return RM_OK;
}

rm_status rm_config_parse(rm_config *cfg, const char *json, size_t len, const char *name, rm_err *err) {
    memset(cfg, 0, sizeof *cfg);
    rm_global_init();
    cfg_reader r = {name ? name : "config.json", err};
    /* Ints as reals: some configs carry integers past int64 (copied from
     * tokenizer_config.json); sizes are checked integral and bounded anyway. */
    json_t *root;
    rm_status st = rm_json_parse(json, len, JSON_DECODE_INT_AS_REAL | JSON_REJECT_DUPLICATES, r.name, &root, err);
    if (st) return st;
    if (!json_is_object(root))
        st = rm_fail(err, RM_ERR_FORMAT, "%s: must hold a JSON object, found %s", r.name, json_kind(root));
    else if ((st = read_architecture(&r, root, cfg)) == RM_OK && (st = read_sizes(&r, root, cfg)) == RM_OK &&
             (st = read_rope(&r, root, cfg)) == RM_OK && (st = read_flags(&r, root, cfg)) == RM_OK)
        st = read_labels(&r, root, cfg);
    json_decref(root);
    if (st != RM_OK) rm_config_free(cfg);
    return st;
}

rm_status rm_config_load(rm_config *cfg, const char *path, rm_err *err) {
    memset(cfg, 0, sizeof *cfg);
    char *text;
    size_t len;
    rm_status st = rm_read_file(path, CONFIG_MAX_BYTES, &text, &len, err);
    if (st != RM_OK) return st;
    st = rm_config_parse(cfg, text, len, path, err);
    rm_mfree(text);
    return st;
}

void rm_config_free(rm_config *cfg) {
    if (!cfg) return;
    if (cfg->labels)
        for (int64_t i = 0; i < cfg->n_labels; i++) rm_mfree(cfg->labels[i]);
    rm_mfree(cfg->labels);
    cfg->labels = NULL;
    cfg->n_labels = 0;
}
