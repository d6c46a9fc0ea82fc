/*
 * model.h - struct rm_model: everything rm_load() builds, immutable after.
 * Internal; the public type is opaque.
 */
#ifndef RM_MODEL_H
#define RM_MODEL_H

#include <pthread.h>

#include "common.h"
#include "config.h"
#include "engine.h"
#include "jinja.h"
#include "tokenizer.h"
#include "weights.h"

struct rm_model {
    uint64_t serial;                /* unique per load: a new model at a freed one's address is another model */
    char *path;                     /* the model directory */
    rm_config cfg;
    rm_weights *weights;            /* mapped safetensors files */
    rm_model_weights mw;            /* tensors bound to the architecture (a pack: rank 0's heads only) */
    struct rm_pack *pack;           /* a model pack (lib/pack/), else NULL */
    rm_tokenizer *tok;
    rm_template *chat_template;
    char *bos_token, *eos_token;    /* from tokenizer_config.json; NULL when absent */

    const rm_engine_ops *engine_ops;
    rm_engine *engine;
    rm_device device;
    rm_dtype dtype;                 /* chosen at load, never AUTO */

    /* Head (heads.c). */
    rm_head head;                   /* CLASSIFIER or LOGITS; PRINCIPLE is per item */
    int principle_only;             /* head PRINCIPLE was asked for: items must carry principles */
    int64_t logits_begin, logits_end;
    size_t n_names;
    char **names;                   /* score names of the CLASSIFIER / LOGITS head */
    int32_t yes_id, no_id;          /* PRINCIPLE head tokens; -1 when not in the vocabulary */

    /* Prompt building (prompt.c). */
    int content_special_tokens;
    char *now;                      /* fixed clock or NULL */
    int64_t n_ctx;

    /* Counters the engine does not keep. */
    pthread_mutex_t counter_lock;
    uint64_t sequences, tokens_input, lm_head_rows;

    /* Sticky fault (a device error): every later call reports it. */
    rm_status sticky;
    char sticky_msg[256];
};

/* Remembers err as this thread's last error on the model (rm_errmsg). */
RM_INTERNAL rm_status rm_model_set_error(const rm_model *m, const rm_err *err);

/* ---- prompt.c: conversation -> token ids */

/* One token sequence per principle (or one when n_principles is 0). */
typedef struct rm_prompt {
    rm_ids ids;                     /* all sequences, concatenated */
    size_t n_seqs;
    size_t *offsets;                /* n_seqs + 1 */
} rm_prompt;

/* Renders (template, message data marked as plain text unless
 * content_special_tokens) and tokenizes. With principles, one sequence per
 * principle: the conversation (which must end with an assistant turn), then
 * the principle question as a user turn, rendered with the generation prompt. */
RM_INTERNAL rm_status rm_prompt_build(const rm_model *m, const rm_message *msgs, size_t n_msgs,
                                      const char *const *principles, size_t n_principles,
                                      int add_generation_prompt, rm_prompt *out, rm_err *err);
RM_INTERNAL void rm_prompt_free(rm_prompt *p);
/* Renders only (rm_render); *mask may be NULL. */
RM_INTERNAL rm_status rm_prompt_render(const rm_model *m, const rm_message *msgs, size_t n_msgs,
                                       int add_generation_prompt, char **out, size_t *out_len,
                                       uint8_t **mask, rm_err *err);

/* ---- heads.c: hidden state -> named scores */

/* Chooses the head and its names from params, the environment and the config. */
RM_INTERNAL rm_status rm_heads_init(rm_model *m, const rm_params *p, rm_err *err);
RM_INTERNAL void rm_heads_free(rm_model *m);
/* Number of scores one sequence gives (CLASSIFIER / LOGITS head), 1 for PRINCIPLE. */
RM_INTERNAL size_t rm_head_width(const rm_model *m, int principle);
/* Computes the scores of one sequence from its final hidden state. */
RM_INTERNAL rm_status rm_head_apply(rm_model *m, int principle, const float *hidden, double *out,
                                    rm_err *err);

#endif
