/*
 * model.c - rm_load() and rm_free(): read a Hugging Face model directory into
 * an rm_model (config, weights, tokenizer, chat template, head, engine).
 */
#include "model.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pack/pack.h"
#include "parallel/tp.h"

#define TOKENIZER_CONFIG_MAX (64u << 20)  /* a tokenizer_config.json is kilobytes; refuse giants */
#define TEMPLATE_MAX (16u << 20)

void rm_params_init(rm_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->device = RM_DEVICE_AUTO;
    p->head = RM_HEAD_AUTO;
    p->logits_begin = -1;
    p->logits_end = -1;
    p->rank = -1;
    p->local_rank = -1;
}

void rm_item_init(rm_item *item) {
    if (!item) return;
    memset(item, 0, sizeof *item);
    item->struct_size = sizeof *item;
}

/* Copies the caller's params, reading only the fields its struct_size covers. */
static rm_status params_copy(rm_params *dst, const rm_params *src, rm_err *err) {
    rm_params_init(dst);
    if (!src) return RM_OK;
    if (src->struct_size < offsetof(rm_params, head) || src->struct_size > (1u << 16))
        return rm_fail(err, RM_ERR_INVALID_ARG,
                       "rm_params.struct_size is %zu: initialise params with rm_params_init()",
                       src->struct_size);
    size_t n = src->struct_size < sizeof *dst ? src->struct_size : sizeof *dst;
    memcpy(dst, src, n);
    dst->struct_size = sizeof *dst;
    return RM_OK;
}

/* A token in tokenizer_config.json is a string or an AddedToken object {"content": ...}. */
static rm_status token_field(json_t *root, const char *key, const char *path, char **out, rm_err *err) {
    json_t *v = json_object_get(root, key);
    *out = NULL;
    if (!v || json_is_null(v)) return RM_OK;
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!json_is_string(v))
        return rm_fail(err, RM_ERR_FORMAT, "%s: field \"%s\" must be a string or {\"content\": string}", path,
                       key);
    *out = rm_strndup(json_string_value(v), json_string_length(v));
    return *out ? RM_OK : rm_fail(err, RM_ERR_NOMEM, "%s: out of memory", path);
}

/* The template text: params override, then chat_template.jinja, then tokenizer_config.json's
 * "chat_template" (a string, or a list of {name, template} of which "default" is used). */
static rm_status load_tokenizer_config(rm_model *m, const rm_params *p, rm_err *err) {
    rm_status st = RM_OK;
    char *tc_path = rm_path_join(m->path, "tokenizer_config.json");
    char *jinja_path = rm_path_join(m->path, "chat_template.jinja");
    char *text = NULL, *tmpl = NULL;
    size_t len = 0, tmpl_len = 0;
    json_t *root = NULL;
    if (!tc_path || !jinja_path) { st = rm_fail(err, RM_ERR_NOMEM, "out of memory"); goto done; }

    struct stat sb;
    if (stat(tc_path, &sb) == 0) {
        if ((st = rm_read_file(tc_path, TOKENIZER_CONFIG_MAX, &text, &len, err)) != RM_OK) goto done;
        if ((st = rm_json_parse(text, len, JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, tc_path, &root, err))) goto done;
        if (!json_is_object(root)) {
            st = rm_fail(err, RM_ERR_FORMAT, "%s: must hold a JSON object", tc_path);
            goto done;
        }
        if ((st = token_field(root, "bos_token", tc_path, &m->bos_token, err)) != RM_OK) goto done;
        if ((st = token_field(root, "eos_token", tc_path, &m->eos_token, err)) != RM_OK) goto done;
    }

    if (p->chat_template) {
        tmpl = rm_strdup(p->chat_template);
        if (!tmpl) { st = rm_fail(err, RM_ERR_NOMEM, "out of memory"); goto done; }
        tmpl_len = strlen(tmpl);
    } else if (stat(jinja_path, &sb) == 0) {
        if ((st = rm_read_file(jinja_path, TEMPLATE_MAX, &tmpl, &tmpl_len, err)) != RM_OK) goto done;
    } else if (root) {
        json_t *ct = json_object_get(root, "chat_template");
        if (json_is_array(ct)) {
            size_t i;
            json_t *e, *pick = NULL;
            json_array_foreach(ct, i, e) {
                const char *name = json_string_value(json_object_get(e, "name"));
                if (name && strcmp(name, "default") == 0) pick = json_object_get(e, "template");
            }
            ct = pick;
        }
        if (json_is_string(ct)) {
            tmpl = rm_strndup(json_string_value(ct), json_string_length(ct));
            if (!tmpl) { st = rm_fail(err, RM_ERR_NOMEM, "out of memory"); goto done; }
            tmpl_len = json_string_length(ct);
        } else if (ct && !json_is_null(ct)) {
            st = rm_fail(err, RM_ERR_FORMAT, "%s: field \"chat_template\" must be a string or a list of "
                         "{\"name\", \"template\"} with a \"default\" entry", tc_path);
            goto done;
        }
    }
    if (!tmpl) {
        st = rm_fail(err, RM_ERR_FORMAT, "%s: no chat template: neither chat_template.jinja nor "
                     "\"chat_template\" in tokenizer_config.json (set rm_params.chat_template)", m->path);
        goto done;
    }
    if ((st = rm_template_parse(&m->chat_template, tmpl, tmpl_len, err)) != RM_OK)
        rm_err_prefix(err, "%s", p->chat_template ? "rm_params.chat_template"
                                 : stat(jinja_path, &sb) == 0 ? jinja_path : tc_path);
done:
    json_decref(root);
    rm_mfree(text);
    rm_mfree(tmpl);
    rm_mfree(tc_path);
    rm_mfree(jinja_path);
    return st;
}

static rm_status pick_engine(rm_model *m, const rm_params *p, rm_err *err) {
    if (p->dtype < RM_DTYPE_AUTO || p->dtype > RM_DTYPE_FP8)
        return rm_fail(err, RM_ERR_INVALID_ARG, "rm_params.dtype %d is not an rm_dtype", p->dtype);
    if (p->gpu < 0) return rm_fail(err, RM_ERR_INVALID_ARG, "rm_params.gpu %d is negative", p->gpu);
    switch (p->device) {
    case RM_DEVICE_AUTO:
    case RM_DEVICE_CPU:
        m->engine_ops = &rm_engine_cpu;
        m->device = RM_DEVICE_CPU;
        m->dtype = p->dtype == RM_DTYPE_AUTO ? RM_DTYPE_FP32 : (rm_dtype)p->dtype;
        return RM_OK;
    case RM_DEVICE_CUDA:
        return rm_fail(err, RM_ERR_UNSUPPORTED,
                       "device cuda: this build of libnimreward has no CUDA engine (use cpu or auto)");
    default:
        return rm_fail(err, RM_ERR_INVALID_ARG, "rm_params.device %d is not an rm_device", p->device);
    }
}

static rm_status load(rm_model *m, const char *path, const rm_params *p, rm_err *err) {
    rm_status st;
    m->path = rm_strdup(path);
    if (!m->path) return rm_fail(err, RM_ERR_NOMEM, "out of memory");
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return rm_fail(err, RM_ERR_IO, "%s: not a model directory", path);

    char *cfg_path = rm_path_join(path, "config.json");
    if (!cfg_path) return rm_fail(err, RM_ERR_NOMEM, "out of memory");
    st = rm_config_load(&m->cfg, cfg_path, err);
    rm_mfree(cfg_path);
    if (st != RM_OK) return st;

    if (rm_pack_present(path)) {   /* the ranks read their own files when the engine is made */
        if ((st = rm_pack_open(&m->pack, path, err)) != RM_OK) return st;
    } else {
        if ((st = rm_weights_open(&m->weights, path, err)) != RM_OK) return st;
        if ((st = rm_model_weights_bind(&m->mw, m->weights, &m->cfg, err)) != RM_OK) return st;
    }

    char *tok_path = rm_path_join(path, "tokenizer.json");
    if (!tok_path) return rm_fail(err, RM_ERR_NOMEM, "out of memory");
    st = rm_tok_load(&m->tok, tok_path, err);
    rm_mfree(tok_path);
    if (st != RM_OK) return st;
    if (rm_tok_vocab_size(m->tok) > m->cfg.vocab)
        return rm_fail(err, RM_ERR_SHAPE, "%s: tokenizer.json has ids up to %d but config.json vocab_size is %lld",
                       path, rm_tok_vocab_size(m->tok) - 1, (long long)m->cfg.vocab);

    if ((st = load_tokenizer_config(m, p, err)) != RM_OK) return st;

    m->content_special_tokens = p->content_special_tokens != 0;
    if (p->now) {
        if (!(m->now = rm_strdup(p->now))) return rm_fail(err, RM_ERR_NOMEM, "out of memory");
    }
    if (p->max_tokens < 0) return rm_fail(err, RM_ERR_INVALID_ARG, "rm_params.max_tokens is negative");
    m->n_ctx = m->cfg.max_pos;
    if (p->max_tokens > 0 && p->max_tokens < m->n_ctx) m->n_ctx = p->max_tokens;

    if ((st = rm_heads_init(m, p, err)) != RM_OK) return st;
    if ((st = pick_engine(m, p, err)) != RM_OK) return st;
    if (p->n_threads < 0) return rm_fail(err, RM_ERR_INVALID_ARG, "rm_params.n_threads is negative");
    rm_engine_opts opts = {.n_threads = p->n_threads, .dtype = m->dtype, .gpu = p->gpu,
                           .max_device_bytes = p->max_device_bytes};
    rm_tp_plan plan;
    if (p->tp != 0 || m->pack) {   /* tensor parallel: the tp engine runs the chosen engine on each rank */
        if ((st = rm_tp_plan_make(&plan, p, &m->cfg, &m->mw, m->pack, m->device, m->engine_ops, err))) return st;
        opts.tp = &plan;
        m->engine_ops = &rm_engine_tp;
    }
    if ((st = m->engine_ops->create(&m->engine, &m->cfg, &m->mw, &opts, err))) return st;
    if (m->pack) rm_engine_tp_head_weights(m->engine, &m->mw);
    return RM_OK;
}

rm_status rm_load(const char *path, const rm_params *params, rm_model **out, char *errmsg, size_t errmsg_size) {
    rm_err err = {0};
    rm_status st;
    rm_model *m = NULL;
    rm_params p;
    rm_global_init();
    if (out) *out = NULL;
    if (!path || !out) {
        st = rm_fail(&err, RM_ERR_INVALID_ARG, "rm_load: path and out must not be NULL");
        goto fail;
    }
    if ((st = params_copy(&p, params, &err)) != RM_OK) goto fail;
    m = rm_calloc(1, sizeof *m);
    if (!m) {
        st = rm_fail(&err, RM_ERR_NOMEM, "rm_load: out of memory");
        goto fail;
    }
    static _Atomic uint64_t next_serial = 1;
    m->serial = atomic_fetch_add(&next_serial, 1);
    pthread_mutex_init(&m->counter_lock, NULL);
    m->yes_id = m->no_id = -1;
    if ((st = load(m, path, &p, &err)) != RM_OK) goto fail;
    *out = m;
    return RM_OK;
fail:
    rm_free(m);
    if (errmsg && errmsg_size) snprintf(errmsg, errmsg_size, "%s", err.msg);
    return st;
}

void rm_free(rm_model *m) {
    if (!m) return;
    if (m->engine) m->engine_ops->destroy(m->engine);
    rm_heads_free(m);
    rm_template_free(m->chat_template);
    rm_tok_free(m->tok);
    rm_model_weights_free(&m->mw);
    rm_weights_close(m->weights);
    rm_pack_close(m->pack);
    rm_config_free(&m->cfg);
    rm_mfree(m->bos_token);
    rm_mfree(m->eos_token);
    rm_mfree(m->now);
    rm_mfree(m->path);
    pthread_mutex_destroy(&m->counter_lock);
    rm_mfree(m);
}
