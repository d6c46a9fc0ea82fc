/*
 * model.c - rm_load() and rm_free(): read a Hugging Face model directory into
 * an rm_model (config, weights, tokenizer, chat template, head, engine).
 */
#include "model.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chat_template.h"
#include "clock.h"
#include "cuda_module.h"
#include "pack/pack.h"
#include "parallel/tp.h"

void rm_params_init_size(rm_params *p, size_t size) {
    if (!p || size < sizeof p->struct_size) return;
    rm_params d;
    memset(&d, 0, sizeof d);
    d.struct_size = size < sizeof d ? size : sizeof d;
    d.device = RM_DEVICE_AUTO;
    d.head = RM_HEAD_AUTO;
    d.logits_begin = -1;
    d.logits_end = -1;
    d.rank = -1;
    d.local_rank = -1;
    memset(p, 0, size);
    memcpy(p, &d, d.struct_size);
}

/* The 0.1 symbol: a binary built against 0.1 has the struct up to chat_template. */
void (rm_params_init)(rm_params *p) {
    rm_params_init_size(p, offsetof(rm_params, dtype));
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

/* The chat template (params override, then the directory's) and the BOS / EOS strings. */
static rm_status load_tokenizer_config(rm_model *m, const rm_params *p, rm_err *err) {
    rm_chat_template_src src;
    rm_status st = rm_chat_template_read(m->path, p->chat_template, &src, err);
    if (st) return st;
    m->bos_token = src.bos_token;
    m->eos_token = src.eos_token;
    src.bos_token = src.eos_token = NULL;
    if ((st = rm_template_parse(&m->chat_template, src.text, src.len, err)) != RM_OK)
        rm_err_prefix(err, "%s", src.origin);
    rm_chat_template_src_free(&src);
    return st;
}

/* The CUDA engine when the module loads and GPU `gpu` is usable: RM_OK with
 * *mod and *info set, else err says why (module missing, a library missing,
 * no driver, driver too old, no GPU, compute capability not built for). */
static rm_status cuda_usable(int gpu, const rm_cuda_module **mod, rm_cuda_device_info *info, rm_err *err) {
    rm_status st = rm_cuda_module_get(mod, NULL, err);
    if (st) return st;
    return (*mod)->probe(gpu, info, err);
}

/* Resolves the device and dtype: CPU runs fp32; CUDA runs bf16 (AUTO) and
 * FP8 from compute capability 8.9. */
static rm_status pick_engine(rm_model *m, const rm_params *p, rm_err *err) {
    if (p->dtype < RM_DTYPE_AUTO || p->dtype > RM_DTYPE_FP8)
        return rm_fail(err, RM_ERR_INVALID_ARG, "rm_params.dtype %d is not an rm_dtype", p->dtype);
    if (p->gpu < 0) return rm_fail(err, RM_ERR_INVALID_ARG, "rm_params.gpu %d is negative", p->gpu);
    if (p->device != RM_DEVICE_AUTO && p->device != RM_DEVICE_CPU && p->device != RM_DEVICE_CUDA)
        return rm_fail(err, RM_ERR_INVALID_ARG, "rm_params.device %d is not an rm_device", p->device);
    int want_cuda = p->device == RM_DEVICE_CUDA || (p->device == RM_DEVICE_AUTO && p->dtype != RM_DTYPE_FP32);
    const rm_cuda_module *mod = NULL;
    rm_cuda_device_info info;
    memset(&info, 0, sizeof info);
    if (want_cuda) {
        rm_err why = {0};
        rm_status st = cuda_usable(p->gpu, &mod, &info, &why);
        if (st && p->device == RM_DEVICE_CUDA) return rm_fail(err, st, "device cuda: %s", why.msg);
        if (st && p->dtype == RM_DTYPE_FP8)    /* auto device, fp8 asked: only CUDA runs it */
            return rm_fail(err, RM_ERR_UNSUPPORTED, "rm_params.dtype fp8 needs the CUDA engine, and device auto "
                           "found none usable: %s", why.msg);
        if (st) mod = NULL;                    /* auto: the CPU then (fp32 or bf16) */
    }
    if (!mod) {
        m->engine_ops = &rm_engine_cpu;
        m->device = RM_DEVICE_CPU;
        m->dtype = p->dtype == RM_DTYPE_AUTO ? RM_DTYPE_FP32 : (rm_dtype)p->dtype;
        return RM_OK;
    }
    if (p->dtype == RM_DTYPE_FP32)
        return rm_fail(err, RM_ERR_UNSUPPORTED, "rm_params.dtype fp32: the CUDA engine runs bf16 and fp8 (fp32 is "
                       "the CPU engine's: use device cpu)");
    if (p->dtype == RM_DTYPE_FP8 && info.cc_major * 10 + info.cc_minor < 89)
        return rm_fail(err, RM_ERR_UNSUPPORTED, "rm_params.dtype fp8 needs compute capability 8.9 or later (FP8 "
                       "tensor cores); GPU %d (%s) is %d.%d: use bf16", p->gpu, info.name, info.cc_major,
                       info.cc_minor);
    m->engine_ops = mod->ops;
    m->device = RM_DEVICE_CUDA;
    m->dtype = p->dtype == RM_DTYPE_AUTO ? RM_DTYPE_BF16 : (rm_dtype)p->dtype;
    return RM_OK;
}

/* The caller's own mistakes, refused before any file is read: a bad value
 * costs nothing to report, not the seconds a large checkpoint takes to map. */
static rm_status params_check(const rm_params *p, rm_err *err) {
    if (p->now && rm_clock_parse(p->now, "rm_params.now", NULL, err) != RM_OK) return RM_ERR_INVALID_ARG;
    if (p->max_tokens < 0) return rm_fail(err, RM_ERR_INVALID_ARG, "rm_params.max_tokens is negative");
    if (p->n_threads < 0) return rm_fail(err, RM_ERR_INVALID_ARG, "rm_params.n_threads is negative");
    return RM_OK;
}

static rm_status load(rm_model *m, const char *path, const rm_params *p, rm_err *err) {
    rm_status st;
    if ((st = params_check(p, err)) != RM_OK) return st;
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
    m->n_ctx = m->cfg.max_pos;
    if (p->max_tokens > 0 && p->max_tokens < m->n_ctx) m->n_ctx = p->max_tokens;

    if ((st = rm_heads_init(m, p, err)) != RM_OK) return st;
    if ((st = pick_engine(m, p, err)) != RM_OK) return st;
    /* dtype auto on a pack means the pack's: an FP8 pack runs FP8 on CUDA
     * (the CPU refuses it below, naming the pack). */
    if (m->pack && p->dtype == RM_DTYPE_AUTO && m->device == RM_DEVICE_CUDA) m->dtype = rm_pack_dtype(m->pack);
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
