/*
 * jinja.h - the chat-template interpreter: the subset of Jinja2 that chat
 * templates use, with transformers' environment (trim_blocks, lstrip_blocks,
 * loopcontrols, its tojson and raise_exception, strftime_now; tools and
 * documents none). Output is byte-identical to transformers' apply_chat_template.
 *
 * Every string value carries an optional per-byte mask; bytes that came from
 * message data (role, content) are marked, and the mark survives
 * concatenation, slicing, strip, split, replace, ... so the tokenizer can
 * treat them as plain text (see tokenizer.h, plain_mask).
 */
#ifndef RM_JINJA_H
#define RM_JINJA_H

#include "common.h"

typedef struct rm_template rm_template;

/* Bounds that protect the caller from a hostile template. */
typedef struct rm_jinja_limits {
    size_t max_output;          /* bytes rendered; default 64 MiB */
    int64_t max_steps;          /* loop iterations + calls; default 10 million */
    int max_depth;              /* nesting of macro calls / expressions; default 200 */
    size_t max_memory;          /* bytes of live values; default 4 x max_output, at least 64 MiB */
} rm_jinja_limits;
/* Zero fields take the defaults. Exceeding a bound is RM_ERR_LIMIT. */

/* Parses a template. Errors (RM_ERR_TEMPLATE) name the line and construct. */
RM_INTERNAL rm_status rm_template_parse(rm_template **out, const char *src, size_t len, rm_err *err);
RM_INTERNAL void rm_template_free(rm_template *t);

typedef struct rm_chat_message {
    const char *role;    size_t role_len;
    const char *content; size_t content_len;
} rm_chat_message;

typedef struct rm_render_opts {
    const char *bos_token;      /* may be NULL: then undefined in the template */
    const char *eos_token;
    int add_generation_prompt;
    const char *now;            /* "YYYY-MM-DDTHH:MM:SS" for strftime_now; NULL = the real clock (local) */
    int mark_message_data;      /* 1: mark bytes from role/content in out_mask */
    const rm_jinja_limits *limits; /* NULL = defaults */
} rm_render_opts;

/* Renders. *out (NUL-terminated, from rm_malloc) has *out_len bytes; when
 * out_mask is not NULL, *out_mask gets *out_len bytes, 1 where the byte came
 * from message data. A raise_exception in the template is RM_ERR_TEMPLATE
 * with the template's own message. Thread-safe on one template. */
RM_INTERNAL rm_status rm_template_render(const rm_template *t, const rm_chat_message *msgs, size_t n_msgs,
                                         const rm_render_opts *opts, char **out, size_t *out_len,
                                         uint8_t **out_mask, rm_err *err);

/* Renders with the template variables given as a JSON object (jansson):
 * "messages" (an array of message objects, any keys, kept in order: e.g.
 * "reasoning_content", "tool_calls"), and any other variable the template
 * reads ("tools", "documents", "enable_thinking", ...). JSON null is None;
 * integers and reals stay distinct. Variables not given default as in
 * rm_template_render: tools and documents None, add_generation_prompt,
 * bos_token and eos_token from opts (a key in vars wins). With
 * opts->mark_message_data every string value inside "messages" (not the
 * keys) is marked.
 * Call rm_global_init() first if jansson objects are created by the caller. */
struct json_t;
RM_INTERNAL rm_status rm_template_render_json(const rm_template *t, const struct json_t *vars,
                                              const rm_render_opts *opts, char **out, size_t *out_len,
                                              uint8_t **out_mask, rm_err *err);

#endif
