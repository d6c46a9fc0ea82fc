/*
 * chat_template.c - a model directory's chat template and BOS / EOS strings
 * (see chat_template.h).
 */
#include "chat_template.h"

#include <jansson.h>
#include <string.h>
#include <sys/stat.h>

#define TOKENIZER_CONFIG_MAX (64u << 20)  /* a tokenizer_config.json is kilobytes; refuse giants */
#define TEMPLATE_MAX (16u << 20)

void rm_chat_template_src_free(rm_chat_template_src *s) {
    if (!s) return;
    rm_mfree(s->text);
    rm_mfree(s->origin);
    rm_mfree(s->bos_token);
    rm_mfree(s->eos_token);
    memset(s, 0, sizeof *s);
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

/* tokenizer_config.json's "chat_template": a string, or a list of {name, template} of which "default" is used. */
static rm_status config_template(json_t *root, const char *tc_path, rm_chat_template_src *out, rm_err *err) {
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
        out->text = rm_strndup(json_string_value(ct), json_string_length(ct));
        out->len = json_string_length(ct);
        return out->text ? RM_OK : rm_fail(err, RM_ERR_NOMEM, "out of memory");
    }
    if (ct && !json_is_null(ct))
        return rm_fail(err, RM_ERR_FORMAT, "%s: field \"chat_template\" must be a string or a list of "
                       "{\"name\", \"template\"} with a \"default\" entry", tc_path);
    return RM_OK;
}

rm_status rm_chat_template_read(const char *dir, const char *override, rm_chat_template_src *out, rm_err *err) {
    memset(out, 0, sizeof *out);
    rm_status st = RM_OK;
    char *tc_path = rm_path_join(dir, "tokenizer_config.json");
    char *jinja_path = rm_path_join(dir, "chat_template.jinja");
    char *text = NULL;
    size_t len = 0;
    json_t *root = NULL;
    struct stat sb;
    if (!tc_path || !jinja_path) { st = rm_fail(err, RM_ERR_NOMEM, "out of memory"); goto done; }

    if (stat(tc_path, &sb) == 0) {
        if ((st = rm_read_file(tc_path, TOKENIZER_CONFIG_MAX, &text, &len, err)) != RM_OK) goto done;
        if ((st = rm_json_parse(text, len, JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, tc_path, &root, err))) goto done;
        if (!json_is_object(root)) {
            st = rm_fail(err, RM_ERR_FORMAT, "%s: must hold a JSON object", tc_path);
            goto done;
        }
        if ((st = token_field(root, "bos_token", tc_path, &out->bos_token, err)) != RM_OK) goto done;
        if ((st = token_field(root, "eos_token", tc_path, &out->eos_token, err)) != RM_OK) goto done;
    }

    const char *origin = NULL;
    if (override) {
        origin = "rm_params.chat_template";
        out->len = strlen(override);
        if (!(out->text = rm_strndup(override, out->len))) st = rm_fail(err, RM_ERR_NOMEM, "out of memory");
    } else if (stat(jinja_path, &sb) == 0) {
        origin = jinja_path;
        st = rm_read_file(jinja_path, TEMPLATE_MAX, &out->text, &out->len, err);
    } else if (root) {
        origin = tc_path;
        st = config_template(root, tc_path, out, err);
    }
    if (st) goto done;
    if (!out->text) {
        st = rm_fail(err, RM_ERR_FORMAT, "%s: no chat template: neither chat_template.jinja nor "
                     "\"chat_template\" in tokenizer_config.json (set rm_params.chat_template)", dir);
        goto done;
    }
    if (!(out->origin = rm_strdup(origin))) st = rm_fail(err, RM_ERR_NOMEM, "out of memory");
done:
    json_decref(root);
    rm_mfree(text);
    rm_mfree(tc_path);
    rm_mfree(jinja_path);
    if (st) rm_chat_template_src_free(out);
    return st;
}
