/*
 * chat_template.h - where a Hugging Face model directory keeps its chat
 * template and its BOS / EOS strings: chat_template.jinja, else
 * tokenizer_config.json's "chat_template" (a string, or a list of
 * {name, template} whose "default" entry is used); bos_token / eos_token
 * from tokenizer_config.json. rm_load() and nimreward-template --model read
 * a directory the same way through this one function.
 */
#ifndef RM_CHAT_TEMPLATE_H
#define RM_CHAT_TEMPLATE_H

#include "common.h"

typedef struct rm_chat_template_src {
    char *text;              /* the Jinja source, NUL-terminated */
    size_t len;
    char *origin;            /* what it came from, for messages: a file path or "rm_params.chat_template" */
    char *bos_token;         /* NULL when tokenizer_config.json has none (or there is no such file) */
    char *eos_token;
} rm_chat_template_src;

/* Reads dir's template (or takes `override`, a template text, when not
 * NULL) and its special-token strings. On failure *out is empty and the
 * message names the file and field. Free with rm_chat_template_src_free(). */
RM_INTERNAL rm_status rm_chat_template_read(const char *dir, const char *override, rm_chat_template_src *out,
                                            rm_err *err);
RM_INTERNAL void rm_chat_template_src_free(rm_chat_template_src *s);

#endif
