/*
 * template.c - the entry points of jinja.h: parse a template once, render it
 * many times (from rm_chat_message arrays or from JSON variables), free it.
 * A render builds its variables the way transformers' apply_chat_template
 * passes them (messages, tools=None, documents=None, add_generation_prompt,
 * bos_token, eos_token), runs the tree walker of eval.c with the caller's
 * bounds, and hands back the text and the content mask.
 */
#include <jansson.h>
#include <string.h>

#include "jinja/ast.h"
#include "jinja/eval.h"

#define DEFAULT_MAX_OUTPUT ((size_t)64 << 20)
#define DEFAULT_MAX_STEPS 10000000
#define DEFAULT_MAX_DEPTH 200
#define MIN_MAX_MEMORY ((size_t)64 << 20)
#define JSON_NEST_MAX 512

rm_status rm_template_parse(rm_template **out, const char *src, size_t len, rm_err *err) {
    *out = NULL;
    if (!src && len) return rm_fail(err, RM_ERR_INVALID_ARG, "template: NULL text");
    size_t bad = rm_utf8_check(src ? src : "", len);
    if (bad != len) return rm_fail(err, RM_ERR_TEMPLATE, "template: invalid UTF-8 at byte %zu", bad);
    rm_template *t = rm_calloc(1, sizeof *t);
    if (!t) return rm_fail(err, RM_ERR_NOMEM, "out of memory parsing the template");
    /* Jinja reads \r\n and \r as \n and drops one trailing newline
     * (keep_trailing_newline is off). */
    t->source = jarena_alloc(&t->arena, len + 1);
    if (!t->source) {
        rm_template_free(t);
        return rm_fail(err, RM_ERR_NOMEM, "out of memory parsing the template");
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            t->source[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            t->source[n++] = src[i];
        }
    }
    if (n > 0 && t->source[n - 1] == '\n') n--;
    t->source[n] = 0;
    t->source_len = n;
    jtok *toks = NULL;
    size_t n_toks = 0;
    rm_err local;
    rm_err *e = err ? err : &local;
    rm_status st = jlex(&t->arena, t->source, n, &toks, &n_toks, e);
    if (st == RM_OK) st = jparse(t, toks, n_toks, e);
    rm_mfree(toks);
    if (st != RM_OK) {
        rm_template_free(t);
        return st;
    }
    *out = t;
    return RM_OK;
}

void rm_template_free(rm_template *t) {
    if (!t) return;
    jarena_free(&t->arena);
    rm_mfree(t);
}

/* ---------------------------------------------------------------- the render context */

static void ctx_init(jctx *ctx, const rm_template *t, const rm_render_opts *opts, rm_err *err) {
    memset(ctx, 0, sizeof *ctx);
    ctx->t = t;
    ctx->err = err;
    ctx->heap.next = ctx->heap.prev = &ctx->heap;
    ctx->heap.rc = -1;
    const rm_jinja_limits *l = opts ? opts->limits : NULL;
    ctx->max_output = l && l->max_output ? l->max_output : DEFAULT_MAX_OUTPUT;
    ctx->max_steps = l && l->max_steps > 0 ? l->max_steps : DEFAULT_MAX_STEPS;
    ctx->max_depth = l && l->max_depth > 0 ? l->max_depth : DEFAULT_MAX_DEPTH;
    /* evaluator recursion: room for a few dozen levels of statements and
     * expressions per macro call, capped so the C stack stays small */
    long nest = (long)ctx->max_depth * 10;
    ctx->max_nest = (int)(nest < 200 ? 200 : nest > 4000 ? 4000 : nest);
    size_t mem = l && l->max_memory ? l->max_memory : 0;
    if (!mem) {
        mem = ctx->max_output > SIZE_MAX / 4 ? SIZE_MAX : ctx->max_output * 4;
        if (mem < MIN_MAX_MEMORY) mem = MIN_MAX_MEMORY;
    }
    ctx->mem_limit = mem;
    ctx->mark = opts && opts->mark_message_data;
    ctx->now = opts ? opts->now : NULL;
}

/* A template variable: sym bound in the root scope. Takes ownership of v. */
static int set_var(jctx *ctx, int sym, jval v) { return jscope_set(ctx, ctx->root, sym, v); }

static int set_str_var(jctx *ctx, int sym, const char *s) {
    if (!s) return 0;
    size_t len = strlen(s);
    if (rm_utf8_check(s, len) != len) return jfail(ctx, RM_ERR_UTF8, "%s is not valid UTF-8", ctx->t->syms[sym]->s);
    jstr *str = jstr_new(ctx, s, len, NULL);
    return str ? set_var(ctx, sym, jv_obj(JV_STR, str)) : -1;
}

/* A string from message data: every byte marked when marking is on. */
static jstr *message_str(jctx *ctx, const char *s, size_t len) {
    jstr *str = jstr_new(ctx, s, len, NULL);
    if (str && ctx->mark && len) {
        jstr *m = NULL;
        uint8_t *ones = rm_malloc(len);
        if (!ones) { jfail_nomem(ctx); return NULL; }
        memset(ones, 1, len);
        m = jstr_new(ctx, s, len, ones);
        rm_mfree(ones);
        jobj_release(ctx, &str->h);
        str = m;
    }
    return str;
}

/* Runs the template and moves the output to the caller. */
static rm_status finish(jctx *ctx, char **out, size_t *out_len, uint8_t **out_mask) {
    jsb buf = {0};
    ctx->out = &buf;
    ctx->line = 1;
    int r = ctx->failed ? -1 : 0;
    if (r == 0) {
        extern int jrender_root(jctx *ctx, const jnode *root);
        r = jrender_root(ctx, ctx->t->root);
    }
    if (r == 0 && !buf.s) {
        buf.s = rm_malloc(1);
        buf.cap = 1;
        if (!buf.s) r = jfail_nomem(ctx);
        else buf.s[0] = 0;
    }
    if (r == 0 && out_mask) {
        if (!buf.m) {
            buf.m = rm_calloc(buf.len ? buf.len : 1, 1);
            if (!buf.m) r = jfail_nomem(ctx);
        }
    }
    jheap_sweep(ctx);
    if (r != 0) {
        jsb_free(&buf);
        return ctx->err->status ? ctx->err->status : RM_ERR_INTERNAL;
    }
    *out = buf.s;
    if (out_len) *out_len = buf.len;
    if (out_mask) *out_mask = buf.m;
    else rm_mfree(buf.m);
    return RM_OK;
}

static int common_vars(jctx *ctx, const rm_render_opts *opts) {
    if (set_var(ctx, SYM_TOOLS, jv_none()) || set_var(ctx, SYM_DOCUMENTS, jv_none()) ||
        set_var(ctx, SYM_ADD_GENERATION_PROMPT, jv_bool(opts && opts->add_generation_prompt)))
        return -1;
    if (opts && (set_str_var(ctx, SYM_BOS_TOKEN, opts->bos_token) || set_str_var(ctx, SYM_EOS_TOKEN, opts->eos_token)))
        return -1;
    return 0;
}

/* Clears the outputs and err and sets up ctx with its root scope. On failure
 * ctx is already cleaned up. */
static rm_status start(jctx *ctx, const rm_template *t, const rm_render_opts *opts, rm_err *err, char **out,
                       size_t *out_len, uint8_t **out_mask) {
    err->status = RM_OK;
    *out = NULL;
    if (out_len) *out_len = 0;
    if (out_mask) *out_mask = NULL;
    ctx_init(ctx, t, opts, err);
    if (!t || !t->root) rm_fail(err, RM_ERR_INVALID_ARG, "no template");
    else ctx->root = jscope_new(ctx, NULL);
    if (ctx->root) return RM_OK;
    jheap_sweep(ctx);
    return err->status;
}

rm_status rm_template_render(const rm_template *t, const rm_chat_message *msgs, size_t n_msgs,
                             const rm_render_opts *opts, char **out, size_t *out_len, uint8_t **out_mask,
                             rm_err *err) {
    rm_err local = {0};
    if (!err) err = &local;
    jctx ctx;
    rm_status st = start(&ctx, t, opts, err, out, out_len, out_mask);
    if (st != RM_OK) return st;
    if (n_msgs && !msgs) {
        jheap_sweep(&ctx);
        return rm_fail(err, RM_ERR_INVALID_ARG, "messages: NULL with %zu messages", n_msgs);
    }
    jlist *list = jlist_new(&ctx, n_msgs, JL_LIST);
    if (list && set_var(&ctx, SYM_MESSAGES, jv_obj(JV_LIST, list)) == 0) {
        for (size_t i = 0; i < n_msgs && !ctx.failed; i++) {
            const rm_chat_message *m = &msgs[i];
            size_t rl = m->role ? m->role_len : 0, cl = m->content ? m->content_len : 0;
            if ((m->role && rm_utf8_check(m->role, rl) != rl) || (m->content && rm_utf8_check(m->content, cl) != cl)) {
                jfail(&ctx, RM_ERR_UTF8, "messages[%zu]: invalid UTF-8", i);
                break;
            }
            jdict *d = jdict_new(&ctx, JV_DICT);
            if (!d || jlist_push(&ctx, list, jv_obj(JV_DICT, d)) != 0) break;
            jstr *kr = jstr_cstr(&ctx, "role"), *kc = jstr_cstr(&ctx, "content");
            jstr *role = m->role ? message_str(&ctx, m->role, rl) : NULL;
            jstr *content = m->content ? message_str(&ctx, m->content, cl) : NULL;
            if (!kr || !kc || (m->role && !role) || (m->content && !content)) break;
            if (jdict_set(&ctx, d, jv_obj(JV_STR, kr), role ? jv_obj(JV_STR, role) : jv_none()) != 0 ||
                jdict_set(&ctx, d, jv_obj(JV_STR, kc), content ? jv_obj(JV_STR, content) : jv_none()) != 0)
                break;
        }
    }
    if (!ctx.failed) common_vars(&ctx, opts);
    return finish(&ctx, out, out_len, out_mask);
}

/* ---------------------------------------------------------------- JSON variables */

static int from_json(jctx *ctx, const json_t *j, int mark, int depth, jval *out) {
    *out = jv_none();
    if (depth > JSON_NEST_MAX) return jfail(ctx, RM_ERR_LIMIT, "variables nested more than %d deep", JSON_NEST_MAX);
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        jdict *d = jdict_new(ctx, JV_DICT);
        if (!d) return -1;
        *out = jv_obj(JV_DICT, d);
        const char *key;
        json_t *val;
        /* jansson keeps insertion order, which is the order Python's json gives */
        json_object_foreach((json_t *)j, key, val) {
            size_t kl = strlen(key);
            /* keys are the message's structure, not its text: never marked */
            jstr *k = jstr_new(ctx, key, kl, NULL);
            jval v;
            if (!k) return -1;
            if (rm_utf8_check(key, kl) != kl) {
                jobj_release(ctx, &k->h);
                return jfail(ctx, RM_ERR_UTF8, "a variable key is not valid UTF-8");
            }
            if (from_json(ctx, val, mark, depth + 1, &v) != 0) {
                jobj_release(ctx, &k->h);
                return -1;
            }
            if (jdict_set(ctx, d, jv_obj(JV_STR, k), v) != 0) return -1;
        }
        return 0;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        jlist *l = jlist_new(ctx, n, JL_LIST);
        if (!l) return -1;
        *out = jv_obj(JV_LIST, l);
        for (size_t i = 0; i < n; i++) {
            jval v;
            if (from_json(ctx, json_array_get(j, i), mark, depth + 1, &v) != 0) return -1;
            l->v[l->len++] = v;
        }
        return 0;
    }
    case JSON_STRING: {
        const char *s = json_string_value(j);
        size_t len = json_string_length(j);
        if (rm_utf8_check(s, len) != len) return jfail(ctx, RM_ERR_UTF8, "a string variable is not valid UTF-8");
        jstr *str = mark ? message_str(ctx, s, len) : jstr_new(ctx, s, len, NULL);
        if (!str) return -1;
        *out = jv_obj(JV_STR, str);
        return 0;
    }
    case JSON_INTEGER: *out = jv_int((int64_t)json_integer_value(j)); return 0;
    case JSON_REAL: *out = jv_float(json_real_value(j)); return 0;
    case JSON_TRUE: *out = jv_bool(1); return 0;
    case JSON_FALSE: *out = jv_bool(0); return 0;
    default: *out = jv_none(); return 0;
    }
}

rm_status rm_template_render_json(const rm_template *t, const json_t *vars, const rm_render_opts *opts, char **out,
                                  size_t *out_len, uint8_t **out_mask, rm_err *err) {
    rm_err local = {0};
    if (!err) err = &local;
    jctx ctx;
    rm_status st = start(&ctx, t, opts, err, out, out_len, out_mask);
    if (st != RM_OK) return st;
    if (!json_is_object(vars)) {
        jheap_sweep(&ctx);
        return rm_fail(err, RM_ERR_INVALID_ARG, "template variables: expected a JSON object");
    }
    /* defaults first; the object's own keys override them */
    if (common_vars(&ctx, opts) == 0) {
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)vars, key, val) {
            int sym = jsym_find(t, key, strlen(key));
            if (sym < 0) continue;   /* the template never mentions it */
            jval v;
            if (from_json(&ctx, val, sym == SYM_MESSAGES && ctx.mark, 0, &v) != 0) break;
            if (set_var(&ctx, sym, v) != 0) break;
        }
    }
    return finish(&ctx, out, out_len, out_mask);
}
