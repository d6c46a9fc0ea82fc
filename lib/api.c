/*
 * api.c - the small public functions: errors, version, introspection,
 * counters, rendering and tokenizing conversations for a caller.
 */
#include "model.h"

#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- errors */

/* The last error, per thread, for the few models this thread used last:
 * rm_errmsg() answers for a model without any lock. */
#define ERR_SLOTS 4
static __thread struct {
    const rm_model *model;
    uint64_t serial;
    char msg[sizeof(((rm_err *)0)->msg)];
} last_err[ERR_SLOTS];
static __thread unsigned last_err_next;

rm_status rm_model_set_error(const rm_model *m, const rm_err *err) {
    unsigned slot = ERR_SLOTS;
    for (unsigned i = 0; i < ERR_SLOTS; i++)
        if (last_err[i].model == m && last_err[i].serial == m->serial) slot = i;
    if (slot == ERR_SLOTS) slot = last_err_next++ % ERR_SLOTS;
    last_err[slot].model = m;
    last_err[slot].serial = m->serial;
    snprintf(last_err[slot].msg, sizeof last_err[slot].msg, "%s",
             err->msg[0] ? err->msg : rm_status_string(err->status));
    return err->status;
}

const char *rm_errmsg(const rm_model *m) {
    if (m && m->sticky) return m->sticky_msg;
    for (unsigned i = 0; i < ERR_SLOTS; i++)
        if (m && last_err[i].model == m && last_err[i].serial == m->serial) return last_err[i].msg;
    return "";
}

const char *rm_status_string(rm_status s) {
    switch (s) {
    case RM_OK: return "ok";
    case RM_ERR_INVALID_ARG: return "invalid argument";
    case RM_ERR_IO: return "file missing or unreadable";
    case RM_ERR_FORMAT: return "malformed file";
    case RM_ERR_SHAPE: return "tensor shape or dtype does not match the config";
    case RM_ERR_UNSUPPORTED: return "unsupported model feature";
    case RM_ERR_TEMPLATE: return "chat template error";
    case RM_ERR_UTF8: return "invalid UTF-8";
    case RM_ERR_TOO_LONG: return "input too long";
    case RM_ERR_NOMEM: return "out of memory";
    case RM_ERR_LIMIT: return "resource limit exceeded";
    case RM_ERR_DEVICE: return "device fault";
    case RM_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

unsigned rm_version_number(void) { return RM_VERSION_NUMBER; }
const char *rm_version_string(void) { return RM_VERSION_STRING; }

/* ---------------------------------------------------------------- introspection */

rm_head rm_model_head(const rm_model *m) {
    if (!m) return RM_HEAD_AUTO;
    return m->principle_only ? RM_HEAD_PRINCIPLE : m->head;
}
size_t rm_model_n_scores(const rm_model *m) { return m && !m->principle_only ? m->n_names : 0; }
const char *rm_model_score_name(const rm_model *m, size_t i) {
    return m && !m->principle_only && i < m->n_names ? m->names[i] : NULL;
}
const char *rm_model_architecture(const rm_model *m) { return m ? m->cfg.architecture : NULL; }
int64_t rm_model_n_ctx(const rm_model *m) { return m ? m->n_ctx : 0; }
int rm_model_n_layers(const rm_model *m) { return m ? (int)m->cfg.n_layers : 0; }
rm_device rm_model_device(const rm_model *m) { return m ? m->device : RM_DEVICE_AUTO; }
rm_dtype rm_model_dtype(const rm_model *m) { return m ? m->dtype : RM_DTYPE_AUTO; }

const char *rm_dtype_name(rm_dtype d) {
    switch (d) {
    case RM_DTYPE_AUTO: return "auto";
    case RM_DTYPE_FP32: return "fp32";
    case RM_DTYPE_BF16: return "bf16";
    case RM_DTYPE_FP8: return "fp8";
    }
    return "?";
}
const rm_tokenizer *rm_model_tokenizer(const rm_model *m) { return m ? m->tok : NULL; }

rm_status rm_model_counters(const rm_model *m, rm_counters *c) {
    if (!m || !c || c->struct_size < sizeof(size_t)) return RM_ERR_INVALID_ARG;
    rm_counters all = {0};
    rm_engine_counters ec = {0};
    m->engine_ops->counters(m->engine, &ec, NULL);
    all.struct_size = c->struct_size < sizeof all ? c->struct_size : sizeof all;
    all.forward_passes = ec.forward_passes;
    all.tokens_computed = ec.tokens_computed;
    all.tokens_last_layer = ec.tokens_last_layer;
    all.weight_bytes_read = ec.weight_bytes_read;
    all.weight_bytes_mapped = rm_weights_bytes_mapped(m->weights);
    pthread_mutex_t *lock = (pthread_mutex_t *)&m->counter_lock;
    pthread_mutex_lock(lock);
    all.sequences = m->sequences;
    all.tokens_input = m->tokens_input;
    all.lm_head_rows = m->lm_head_rows;
    pthread_mutex_unlock(lock);
    memcpy(c, &all, all.struct_size);
    return RM_OK;
}

rm_status rm_model_layer_tokens(const rm_model *m, uint64_t *out, size_t n) {
    if (!m || (!out && n)) return RM_ERR_INVALID_ARG;
    size_t layers = (size_t)m->cfg.n_layers;
    uint64_t *all = rm_calloc(layers ? layers : 1, sizeof *all);
    if (!all) return RM_ERR_NOMEM;
    rm_engine_counters ec = {0};
    m->engine_ops->counters(m->engine, &ec, all);
    memcpy(out, all, (n < layers ? n : layers) * sizeof *all);
    rm_mfree(all);
    return RM_OK;
}

void rm_model_counters_reset(rm_model *m) {
    if (!m) return;
    m->engine_ops->counters_reset(m->engine);
    pthread_mutex_lock(&m->counter_lock);
    m->sequences = m->tokens_input = m->lm_head_rows = 0;
    pthread_mutex_unlock(&m->counter_lock);
}

/* ---------------------------------------------------------------- prompts */

rm_status rm_render(rm_model *m, const rm_message *msgs, size_t n, int add_generation_prompt, char **out,
                    size_t *out_len) {
    rm_err err = {0};
    if (!m || !out) return RM_ERR_INVALID_ARG;
    size_t len = 0;
    rm_status st = rm_prompt_render(m, msgs, n, add_generation_prompt, out, &len, NULL, &err);
    if (st) return rm_model_set_error(m, &err);
    if (out_len) *out_len = len;
    return RM_OK;
}

rm_status rm_tokenize_messages(rm_model *m, const rm_message *msgs, size_t n, int add_generation_prompt,
                               int32_t **ids, size_t *n_ids) {
    rm_err err = {0};
    rm_prompt p;
    if (!m || !ids || !n_ids) return RM_ERR_INVALID_ARG;
    *ids = NULL;
    *n_ids = 0;
    rm_status st = rm_prompt_build(m, msgs, n, NULL, 0, add_generation_prompt, &p, &err);
    if (st) return rm_model_set_error(m, &err);
    *ids = p.ids.data;   /* handed over: rm_ids_free() releases it */
    *n_ids = p.ids.len;
    p.ids.data = NULL;
    rm_prompt_free(&p);
    return RM_OK;
}

void rm_string_free(char *s) { rm_mfree(s); }

rm_status rm_model_memory(const rm_model *m, rm_memory *out) {
    if (!m || !out || out->struct_size < sizeof(size_t)) return RM_ERR_INVALID_ARG;
    rm_engine_memory em = {0};
    if (m->engine_ops->memory) m->engine_ops->memory(m->engine, &em);
    rm_memory all = {0};
    all.struct_size = out->struct_size < sizeof all ? out->struct_size : sizeof all;
    all.weight_bytes = em.weights;
    all.activation_bytes = em.activations;
    all.workspace_bytes = em.workspace;
    all.budget_bytes = em.budget;
    all.peak_load_bytes = em.peak_load;
    all.tokens_per_pass = em.tokens_per_pass;
    memcpy(out, &all, all.struct_size);
    return RM_OK;
}
