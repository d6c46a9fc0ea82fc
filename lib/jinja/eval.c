/*
 * eval.c - renders a parsed template by walking its tree: scopes, the
 * expression evaluator with Python's operator semantics, attribute and item
 * look-up as the sandboxed environment does it, calls (macros, global
 * functions, methods), and the statements (output, if, for with loop, set,
 * macro, call and filter blocks, with, break/continue).
 *
 * Scoping follows Jinja: a for loop body gets a fresh scope on every
 * iteration (a {% set %} inside it never leaks out, which is why templates
 * use namespace()), if-branches share the enclosing scope, macros see the
 * scope they were defined in.
 */
#define _GNU_SOURCE
#include "jinja/eval.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jinja/unicode.h"
#include "clock.h"

/* statement results */
#define EX_OK 0
#define EX_ERR (-1)
#define EX_BREAK 1
#define EX_CONTINUE 2

/* The sandbox refuses ranges longer than this (jinja2.sandbox.MAX_RANGE). */
#define MAX_RANGE 100000

/* ---------------------------------------------------------------- errors and limits */

int jfail(jctx *ctx, rm_status status, const char *fmt, ...) {
    if (ctx->failed) return -1;
    ctx->failed = 1;
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rm_fail(ctx->err, status, "template line %d: %s", ctx->line, msg);
    return -1;
}

int jfail_nomem(jctx *ctx) { return jfail(ctx, RM_ERR_NOMEM, "out of memory while rendering"); }

int jctx_work(jctx *ctx, size_t units) {
    ctx->steps += (int64_t)units;
    if (ctx->steps > ctx->max_steps)
        return jfail(ctx, RM_ERR_LIMIT, "the template ran more than %lld steps (loop iterations, calls, bytes built)",
                     (long long)ctx->max_steps);
    return 0;
}

int jfail_undefined(jctx *ctx, jval v) {
    char msg[600];
    jv_undef_message(v, msg, sizeof msg);
    return jfail(ctx, RM_ERR_TEMPLATE, "%s: %s", v.sub == UNDEF_UNSAFE ? "SecurityError" : "UndefinedError", msg);
}

static int enter(jctx *ctx) {
    if (++ctx->nest > ctx->max_nest) {
        ctx->nest--;
        return jfail(ctx, RM_ERR_LIMIT, "the template nests deeper than the bound of %d", ctx->max_nest);
    }
    return 0;
}

/* ---------------------------------------------------------------- scopes */

static jval *scope_find(jscope *s, int sym) {
    for (; s; s = s->parent)
        for (size_t i = 0; i < s->n; i++)
            if (s->sym[i] == sym) return &s->v[i];
    return NULL;
}

int jscope_set(jctx *ctx, jscope *s, int sym, jval v) {
    for (size_t i = 0; i < s->n; i++)
        if (s->sym[i] == sym) {
            jv_release(ctx, s->v[i]);
            s->v[i] = v;
            return 0;
        }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        int *ns = rm_realloc(s->sym, cap * sizeof(int));
        if (!ns) { jv_release(ctx, v); return jfail_nomem(ctx); }
        s->sym = ns;
        jval *nv = rm_realloc(s->v, cap * sizeof(jval));
        if (!nv) { jv_release(ctx, v); return jfail_nomem(ctx); }
        s->v = nv;
        ctx->mem_live += (cap - s->cap) * (sizeof(int) + sizeof(jval));
        s->cap = cap;
    }
    s->sym[s->n] = sym;
    s->v[s->n] = v;
    s->n++;
    return 0;
}

static jval lookup(jctx *ctx, jscope *s, int sym) {
    jval *v = scope_find(s, sym);
    if (v) return jv_retain(*v);
    if (sym >= SYM_FIRST_GLOBAL && sym <= SYM_LAST_GLOBAL) {
        jval f = jv_undef();
        f.kind = JV_FUNC;
        f.u.i = sym;
        return f;
    }
    return jv_undef_name(ctx, ctx->t->syms[sym]);
}

/* ---------------------------------------------------------------- arguments */

int jargs_bind(jctx *ctx, const char *what, const jargs *args, const char *const *names, int n_names, jval *slots,
               int *have) {
    for (int i = 0; i < n_names; i++) {
        have[i] = 0;
        slots[i] = jv_undef();
    }
    if (args->n > (size_t)n_names)
        return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: %s takes at most %d argument%s (%zu given)", what, n_names,
                     n_names == 1 ? "" : "s", args->n);
    for (size_t i = 0; i < args->n; i++) {
        slots[i] = args->pos[i];
        have[i] = 1;
    }
    for (size_t k = 0; k < args->nkw; k++) {
        int i;
        for (i = 0; i < n_names; i++)
            if (jstr_is(args->kname[k], names[i])) break;
        if (i == n_names)
            return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: %s got an unexpected keyword argument '%.*s'", what,
                         (int)args->kname[k]->len, args->kname[k]->s);
        if (have[i])
            return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: %s got multiple values for argument '%s'", what, names[i]);
        slots[i] = args->kval[k];
        have[i] = 1;
    }
    return 0;
}

typedef struct argbuf {
    jargs a;
    size_t pos_cap, kw_cap;
    jval hold;                /* the **kwargs dict whose keys a.kname points to */
} argbuf;

static int argbuf_pos(jctx *ctx, argbuf *b, jval v) {
    if (b->a.n == b->pos_cap) {
        size_t cap = b->pos_cap ? b->pos_cap * 2 : 4;
        jval *p = rm_realloc(b->a.pos, cap * sizeof(jval));
        if (!p) { jv_release(ctx, v); return jfail_nomem(ctx); }
        b->a.pos = p;
        b->pos_cap = cap;
    }
    b->a.pos[b->a.n++] = v;
    return 0;
}

static int argbuf_kw(jctx *ctx, argbuf *b, const jstr *name, jval v) {
    for (size_t i = 0; i < b->a.nkw; i++)
        if (jstr_eq(b->a.kname[i], name)) {
            jv_release(ctx, v);
            return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: got multiple values for keyword argument '%.*s'",
                         (int)name->len, name->s);
        }
    if (b->a.nkw == b->kw_cap) {
        size_t cap = b->kw_cap ? b->kw_cap * 2 : 4;
        const jstr **k = rm_realloc(b->a.kname, cap * sizeof(jstr *));
        if (!k) { jv_release(ctx, v); return jfail_nomem(ctx); }
        b->a.kname = k;
        jval *vv = rm_realloc(b->a.kval, cap * sizeof(jval));
        if (!vv) { jv_release(ctx, v); return jfail_nomem(ctx); }
        b->a.kval = vv;
        b->kw_cap = cap;
    }
    b->a.kname[b->a.nkw] = name;
    b->a.kval[b->a.nkw++] = v;
    return 0;
}

static void argbuf_free(jctx *ctx, argbuf *b) {
    for (size_t i = 0; i < b->a.n; i++) jv_release(ctx, b->a.pos[i]);
    for (size_t i = 0; i < b->a.nkw; i++) jv_release(ctx, b->a.kval[i]);
    rm_mfree(b->a.pos);
    rm_mfree(b->a.kname);
    rm_mfree(b->a.kval);
    jv_release(ctx, b->hold);
    memset(b, 0, sizeof *b);
}

static int eval(jctx *ctx, const jnode *n, jscope *s, jval *out);

/* Evaluates the argument list of a call / filter / test node. */
static int eval_args(jctx *ctx, const jnode *n, jscope *s, argbuf *b) {
    for (uint32_t i = 0; i < n->nkids; i++) {
        jval v;
        if (eval(ctx, n->kids[i], s, &v) != 0 || argbuf_pos(ctx, b, v) != 0) return -1;
    }
    for (uint32_t i = 0; i < n->nkids2; i++) {
        jval v;
        if (eval(ctx, n->kids2[i], s, &v) != 0 || argbuf_kw(ctx, b, ctx->t->syms[n->names[i]], v) != 0) return -1;
    }
    if (n->b) {   /* *args */
        jval v;
        jlist *items;
        if (eval(ctx, n->b, s, &v) != 0) return -1;
        int r = jiterate(ctx, v, &items);
        jv_release(ctx, v);
        if (r != 0) return -1;
        for (size_t i = 0; i < items->len; i++)
            if (argbuf_pos(ctx, b, jv_retain(items->v[i])) != 0) return -1;
        jobj_release(ctx, &items->h);
    }
    if (n->c) {   /* **kwargs */
        jval v;
        if (eval(ctx, n->c, s, &v) != 0) return -1;
        if (v.kind != JV_DICT) {
            jv_release(ctx, v);
            return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: argument after ** must be a mapping, not %s", jv_type_name(v));
        }
        jdict *d = jv_dict(v);
        for (size_t i = 0; i < d->len; i++) {
            if (d->k[i].kind != JV_STR) {
                jv_release(ctx, v);
                return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: keywords must be strings");
            }
            if (argbuf_kw(ctx, b, jv_str(d->k[i]), jv_retain(d->v[i])) != 0) { jv_release(ctx, v); return -1; }
        }
        b->hold = v;   /* the names point into d */
    }
    return 0;
}

/* ---------------------------------------------------------------- iteration and len */

int jiterate(jctx *ctx, jval v, jlist **out) {
    switch (v.kind) {
    case JV_UNDEF:
        if (!(*out = jlist_new(ctx, 0, JL_LIST))) return -1;
        return 0;
    case JV_LIST: {
        jlist *l = jv_list(v);
        if (JL_IS_ITER(l->h.flags)) {
            if (l->consumed) return (*out = jlist_new(ctx, 0, JL_LIST)) ? 0 : -1;
            l->consumed = 1;
        }
        l->h.rc++;
        *out = l;
        return 0;
    }
    case JV_DICT: {
        jdict *d = jv_dict(v);
        jlist *l = jlist_new(ctx, d->len, JL_LIST);
        if (!l) return -1;
        for (size_t i = 0; i < d->len; i++)
            if (jlist_push(ctx, l, jv_retain(d->k[i])) != 0) return -1;
        *out = l;
        return 0;
    }
    case JV_STR: {
        jstr *str = jv_str(v);
        jlist *l = jlist_new(ctx, jstr_cplen(str), JL_LIST);
        if (!l) return -1;
        for (size_t i = 0; i < str->len;) {
            uint32_t cp;
            size_t k = ju_decode(str->s, str->len, i, &cp);
            jstr *c = jstr_sub(ctx, str, i, i + k);
            if (!c || jlist_push(ctx, l, jv_obj(JV_STR, c)) != 0) return -1;
            i += k;
        }
        *out = l;
        return 0;
    }
    default:
        return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: '%s' object is not iterable", jv_type_name(v));
    }
}

int jlen(jctx *ctx, jval v, int64_t *out) {
    switch (v.kind) {
    case JV_UNDEF: *out = 0; return 0;
    case JV_STR: *out = (int64_t)jstr_cplen(jv_str(v)); return 0;
    case JV_LIST:
        if (!JL_IS_ITER(jv_list(v)->h.flags)) { *out = (int64_t)jv_list(v)->len; return 0; }
        break;
    case JV_DICT: *out = (int64_t)jv_dict(v)->len; return 0;
    default: break;
    }
    return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: object of type '%s' has no len()", jv_type_name(v));
}

int jcontains(jctx *ctx, jval c, jval item, int *out) {
    *out = 0;
    switch (c.kind) {
    case JV_UNDEF: return 0;
    case JV_STR: {
        if (item.kind != JV_STR)
            return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: 'in <string>' requires string as left operand, not %s",
                         jv_type_name(item));
        const jstr *h = jv_str(c), *n = jv_str(item);
        *out = n->len == 0 || memmem(h->s, h->len, n->s, n->len) != NULL;
        return jctx_work(ctx, h->len >> 8);
    }
    case JV_LIST: {
        const jlist *l = jv_list(c);
        if (jctx_work(ctx, l->len >> 4) != 0) return -1;
        for (size_t i = 0; i < l->len; i++) {
            int e = jv_eq(ctx, l->v[i], item);
            if (ctx->failed) return -1;
            if (e) { *out = 1; return 0; }
        }
        return 0;
    }
    case JV_DICT:
        if (!jv_hashable(item))
            return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: unhashable type: '%s'", jv_type_name(item));
        *out = jdict_find(jv_dict(c), item) >= 0;
        return 0;
    default:
        return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: argument of type '%s' is not iterable", jv_type_name(c));
    }
}

/* ---------------------------------------------------------------- attributes and items */

static int is_dunder(const jstr *name) {
    return name->len > 4 && name->s[0] == '_' && name->s[1] == '_' && name->s[name->len - 1] == '_' &&
           name->s[name->len - 2] == '_';
}

static int loop_attr(jctx *ctx, jloop *l, const jstr *name, jval *out) {
    size_t i = l->index, len = l->items->len;
    if (jstr_is(name, "index")) *out = jv_int((int64_t)i + 1);
    else if (jstr_is(name, "index0")) *out = jv_int((int64_t)i);
    else if (jstr_is(name, "revindex")) *out = jv_int((int64_t)(len - i));
    else if (jstr_is(name, "revindex0")) *out = jv_int((int64_t)(len - i - 1));
    else if (jstr_is(name, "first")) *out = jv_bool(i == 0);
    else if (jstr_is(name, "last")) *out = jv_bool(i + 1 == len);
    else if (jstr_is(name, "length")) *out = jv_int((int64_t)len);
    else if (jstr_is(name, "depth")) *out = jv_int(l->depth);
    else if (jstr_is(name, "depth0")) *out = jv_int(l->depth - 1);
    else if (jstr_is(name, "previtem"))
        *out = i > 0 ? jv_retain(l->items->v[i - 1]) : jv_undef_hint(ctx, "there is no previous item");
    else if (jstr_is(name, "nextitem"))
        *out = i + 1 < len ? jv_retain(l->items->v[i + 1]) : jv_undef_hint(ctx, "there is no next item");
    else return 1;
    return ctx->failed ? -1 : 0;
}

int jgetattr(jctx *ctx, jval obj, const jstr *name, jval *out) {
    if (obj.kind == JV_UNDEF && obj.sub == UNDEF_UNSAFE) return jfail_undefined(ctx, obj);
    if (is_dunder(name)) {   /* Python objects have these; the sandbox hides them */
        *out = jv_undef_unsafe(ctx, obj, name->s);
        return ctx->failed ? -1 : 0;
    }
    int id = jmethod_find(obj, name->s, name->len);
    if (id >= 0) {
        if (jmethod_is_unsafe(id)) {
            *out = jv_undef_unsafe(ctx, obj, name->s);
            return ctx->failed ? -1 : 0;
        }
        jmethod *m = jmethod_new(ctx, obj, id);
        if (!m) return -1;
        *out = jv_obj(JV_METHOD, m);
        return 0;
    }
    switch (obj.kind) {
    case JV_DICT:
    case JV_NS: {
        long i = jdict_find_str(jv_dict(obj), name->s, name->len);
        if (i >= 0) {
            *out = jv_retain(jv_dict(obj)->v[i]);
            return 0;
        }
        break;
    }
    case JV_UNDEF: return jfail_undefined(ctx, obj);
    case JV_LIST:
        /* groupby's (grouper, list) tuples */
        if (jv_list(obj)->group && (jstr_is(name, "grouper") || jstr_is(name, "list"))) {
            *out = jv_retain(jv_list(obj)->v[jstr_is(name, "list")]);
            return 0;
        }
        break;
    case JV_LOOP: {
        int r = loop_attr(ctx, (jloop *)obj.u.o, name, out);
        if (r <= 0) return r;
        break;
    }
    default: break;
    }
    *out = jv_undef_attr(ctx, obj, (jstr *)name);
    return 0;
}

/* Python's slice.indices(): clamps start/stop for a sequence of len n. */
static int slice_indices(jctx *ctx, int64_t n, const jval *start, const jval *stop, const jval *step, int64_t *a,
                         int64_t *b, int64_t *st) {
    const jval *parts[3] = {start, stop, step};
    int64_t v[3] = {0, 0, 1};
    int given[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        if (!parts[k] || parts[k]->kind == JV_NONE) continue;
        if (parts[k]->kind != JV_INT && parts[k]->kind != JV_BOOL) return 1;  /* TypeError: not an index */
        v[k] = parts[k]->u.i;
        given[k] = 1;
    }
    if (given[2] && v[2] == 0) return jfail(ctx, RM_ERR_TEMPLATE, "ValueError: slice step cannot be zero");
    int64_t s = given[2] ? v[2] : 1;
    int64_t lo = s < 0 ? -1 : 0, hi = s < 0 ? n - 1 : n;
    int64_t x;
    if (!given[0]) x = s < 0 ? hi : lo;
    else {
        x = v[0];
        if (x < 0) { x += n; if (x < lo) x = lo; }
        else if (x > hi) x = hi;
    }
    *a = x;
    if (!given[1]) x = s < 0 ? lo : hi;
    else {
        x = v[1];
        if (x < 0) { x += n; if (x < lo) x = lo; }
        else if (x > hi) x = hi;
    }
    *b = x;
    *st = s;
    return 0;
}

static int do_slice(jctx *ctx, jval obj, const jval *start, const jval *stop, const jval *step, jval *out) {
    int64_t a = 0, b = 0, st = 1;
    if (obj.kind == JV_UNDEF) return jfail_undefined(ctx, obj);
    int is_seq = obj.kind == JV_STR || (obj.kind == JV_LIST && JL_IS_SEQ(jv_list(obj)->h.flags));
    if (!is_seq) {
        *out = jv_undef_hint(ctx, "the value cannot be sliced");
        return ctx->failed ? -1 : 0;
    }
    int64_t n;
    if (jlen(ctx, obj, &n) != 0) return -1;
    int r = slice_indices(ctx, n, start, stop, step, &a, &b, &st);
    if (r < 0) return -1;
    if (r > 0) {
        *out = jv_undef_hint(ctx, "slice indices must be integers or None");
        return ctx->failed ? -1 : 0;
    }
    if (obj.kind == JV_STR) {
        jstr *s = jv_str(obj);
        if (st == 1) {
            size_t x = b > a ? (size_t)a : 0, y = b > a ? (size_t)b : 0;
            if (!(s->h.flags & JS_ASCII)) {
                size_t bx = ju_offset(s->s, s->len, x);
                y = bx + ju_offset(s->s + bx, s->len - bx, y - x);
                x = bx;
            }
            jstr *r2 = jstr_sub(ctx, s, x, y);
            if (!r2) return -1;
            *out = jv_obj(JV_STR, r2);
            return 0;
        }
        /* general step: collect code point offsets */
        size_t ncp = (size_t)n;
        size_t *off = rm_malloc((ncp + 1) * sizeof(size_t));
        if (!off) return jfail_nomem(ctx);
        for (size_t i = 0, k = 0; k <= ncp; k++) {
            off[k] = i;
            if (i < s->len) { uint32_t cp; i += ju_decode(s->s, s->len, i, &cp); }
        }
        jsb sb = {0};
        for (int64_t i = a; st > 0 ? i < b : i > b; i += st) {
            size_t x = off[i], y = off[i + 1];
            if (!jsb_put(ctx, &sb, s->s + x, y - x, s->mask ? s->mask + x : NULL)) break;
        }
        rm_mfree(off);
        if (ctx->failed) { jsb_free(&sb); return -1; }
        jstr *r2 = jsb_finish(ctx, &sb);
        if (!r2) return -1;
        *out = jv_obj(JV_STR, r2);
        return 0;
    }
    jlist *l = jv_list(obj);
    jlist *res = jlist_new(ctx, 0, l->h.flags == JL_TUPLE ? JL_TUPLE : JL_LIST);
    if (!res) return -1;
    for (int64_t i = a; st > 0 ? i < b : i > b; i += st)
        if (jlist_push(ctx, res, jv_retain(l->v[i])) != 0) return -1;
    *out = jv_obj(JV_LIST, res);
    return jctx_work(ctx, res->len / 64);
}

int jgetitem(jctx *ctx, jval obj, jval key, jval *out) {
    if (obj.kind == JV_UNDEF) return jfail_undefined(ctx, obj);
    switch (obj.kind) {
    case JV_DICT: {
        if (!jv_hashable(key)) break;   /* unhashable: TypeError, which Jinja turns into undefined */
        long i = jdict_find(jv_dict(obj), key);
        if (i >= 0) {
            *out = jv_retain(jv_dict(obj)->v[i]);
            return 0;
        }
        break;
    }
    case JV_LIST: {
        jlist *l = jv_list(obj);
        if (JL_IS_SEQ(l->h.flags) && (key.kind == JV_INT || key.kind == JV_BOOL)) {
            int64_t i = key.u.i;
            if (i < 0) i += (int64_t)l->len;
            if (i >= 0 && i < (int64_t)l->len) {
                *out = jv_retain(l->v[i]);
                return 0;
            }
        }
        break;
    }
    case JV_STR: {
        jstr *s = jv_str(obj);
        if (key.kind == JV_INT || key.kind == JV_BOOL) {
            int64_t n = (int64_t)jstr_cplen(s), i = key.u.i;
            if (i < 0) i += n;
            if (i >= 0 && i < n) {
                size_t a = (s->h.flags & JS_ASCII) ? (size_t)i : ju_offset(s->s, s->len, (size_t)i);
                uint32_t cp;
                size_t k = ju_decode(s->s, s->len, a, &cp);
                jstr *c = jstr_sub(ctx, s, a, a + k);
                if (!c) return -1;
                *out = jv_obj(JV_STR, c);
                return 0;
            }
        }
        break;
    }
    default: break;
    }
    /* environment.getitem: on failure a string key is tried as an attribute */
    if (key.kind == JV_STR) {
        if (obj.kind == JV_DICT) {   /* a key was missing; methods still answer */
            int id = jmethod_find(obj, jv_str(key)->s, jv_str(key)->len);
            if (id < 0 || is_dunder(jv_str(key))) {
                *out = jv_undef_attr(ctx, obj, jv_str(key));
                return 0;
            }
        }
        return jgetattr(ctx, obj, jv_str(key), out);
    }
    *out = jv_undef_element(ctx, obj, key);
    return ctx->failed ? -1 : 0;
}

/* ---------------------------------------------------------------- operators */

static int fail_operands(jctx *ctx, const char *op, jval a, jval b) {
    return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: unsupported operand type(s) for %s: '%s' and '%s'", op,
                 jv_type_name(a), jv_type_name(b));
}

static double as_double(jval v) { return v.kind == JV_FLOAT ? v.u.f : (double)v.u.i; }

static int overflow(jctx *ctx) {
    return jfail(ctx, RM_ERR_TEMPLATE, "OverflowError: integer result does not fit in 64 bits");
}

static int repeat(jctx *ctx, jval seq, int64_t times, jval *out) {
    if (times < 0) times = 0;
    if (seq.kind == JV_STR) {
        jstr *s = jv_str(seq);
        if (!s->len) times = 0;   /* "" * 10**16 is "", at once (fuzz: a hang) */
        if (s->len && (uint64_t)times > ctx->max_output / s->len)
            return jfail(ctx, RM_ERR_LIMIT, "a string repeated %lld times exceeds the output bound", (long long)times);
        jsb b = {0};
        for (int64_t i = 0; i < times; i++)
            if (!jsb_str(ctx, &b, s)) { jsb_free(&b); return -1; }
        jstr *r = jsb_finish(ctx, &b);
        if (!r) return -1;
        *out = jv_obj(JV_STR, r);
        return jctx_work(ctx, r->len / 256);
    }
    jlist *l = jv_list(seq);
    if (!l->len) times = 0;
    if (l->len && (uint64_t)times > (uint64_t)ctx->max_steps / l->len)
        return jfail(ctx, RM_ERR_LIMIT, "a list repeated %lld times exceeds the step bound", (long long)times);
    jlist *r = jlist_new(ctx, 0, l->h.flags);
    if (!r) return -1;
    for (int64_t i = 0; i < times; i++)
        for (size_t k = 0; k < l->len; k++)
            if (jlist_push(ctx, r, jv_retain(l->v[k])) != 0) return -1;
    *out = jv_obj(JV_LIST, r);
    return jctx_work(ctx, r->len);
}

int jstr_percent_format(jctx *ctx, const jstr *fmt, jval args, jval *out);

int jbinop(jctx *ctx, int op, jval a, jval b, jval *out) {
    static const char *const names[] = {[OP_ADD] = "+", [OP_SUB] = "-", [OP_DIV] = "/", [OP_FLOORDIV] = "//",
                                        [OP_MUL] = "*", [OP_MOD] = "%", [OP_POW] = "** or pow()"};
    if (op == OP_TILDE) {
        jsb sb = {0};
        if (jv_write(ctx, &sb, a, 0) != 0 || jv_write(ctx, &sb, b, 0) != 0) { jsb_free(&sb); return -1; }
        jstr *r = jsb_finish(ctx, &sb);
        if (!r) return -1;
        *out = jv_obj(JV_STR, r);
        return 0;
    }
    if (a.kind == JV_UNDEF) return jfail_undefined(ctx, a);
    if (b.kind == JV_UNDEF) return jfail_undefined(ctx, b);
    int an = jv_is_number(a), bn = jv_is_number(b);
    if (an && bn) {
        int ints = a.kind != JV_FLOAT && b.kind != JV_FLOAT;
        int64_t x = a.u.i, y = b.u.i, r;
        double fx = as_double(a), fy = as_double(b);
        switch (op) {
        case OP_ADD:
            if (ints) { if (__builtin_add_overflow(x, y, &r)) return overflow(ctx); *out = jv_int(r); }
            else *out = jv_float(fx + fy);
            return 0;
        case OP_SUB:
            if (ints) { if (__builtin_sub_overflow(x, y, &r)) return overflow(ctx); *out = jv_int(r); }
            else *out = jv_float(fx - fy);
            return 0;
        case OP_MUL:
            if (ints) { if (__builtin_mul_overflow(x, y, &r)) return overflow(ctx); *out = jv_int(r); }
            else *out = jv_float(fx * fy);
            return 0;
        case OP_DIV:
            if (fy == 0) return jfail(ctx, RM_ERR_TEMPLATE, "ZeroDivisionError: division by zero");
            *out = jv_float(fx / fy);
            return 0;
        case OP_FLOORDIV:
        case OP_MOD:
            if (ints) {
                if (y == 0) return jfail(ctx, RM_ERR_TEMPLATE, "ZeroDivisionError: integer division or modulo by zero");
                if (x == INT64_MIN && y == -1) return overflow(ctx);
                int64_t q = x / y, m = x % y;
                if (m != 0 && ((m < 0) != (y < 0))) { q--; m += y; }
                *out = jv_int(op == OP_MOD ? m : q);
                return 0;
            } else {
                if (fy == 0)
                    return jfail(ctx, RM_ERR_TEMPLATE, "ZeroDivisionError: float %s",
                                 op == OP_MOD ? "modulo" : "floor division by zero");
                /* CPython's float_divmod */
                double mod = fmod(fx, fy), div = (fx - mod) / fy, floordiv;
                if (mod) {
                    if ((fy < 0) != (mod < 0)) { mod += fy; div -= 1.0; }
                } else {
                    mod = copysign(0.0, fy);
                }
                if (div) {
                    floordiv = floor(div);
                    if (div - floordiv > 0.5) floordiv += 1.0;
                } else {
                    floordiv = copysign(0.0, fx / fy);
                }
                *out = jv_float(op == OP_MOD ? mod : floordiv);
                return 0;
            }
        case OP_POW:
            if (ints && y >= 0) {
                int64_t base = x, acc = 1;
                for (int64_t e = y; e > 0; e >>= 1) {
                    if (e & 1) { if (__builtin_mul_overflow(acc, base, &acc)) return overflow(ctx); }
                    if (e > 1 && __builtin_mul_overflow(base, base, &base)) return overflow(ctx);
                }
                *out = jv_int(acc);
                return 0;
            }
            if (fx == 0 && fy < 0)
                return jfail(ctx, RM_ERR_TEMPLATE, "ZeroDivisionError: 0.0 cannot be raised to a negative power");
            if (fx < 0 && fy != floor(fy))
                return jfail(ctx, RM_ERR_TEMPLATE, "ValueError: complex results are not supported");
            *out = jv_float(pow(fx, fy));
            return 0;
        }
    }
    switch (op) {
    case OP_ADD:
        if (a.kind == JV_STR && b.kind == JV_STR &&
            ((jv_str(a)->h.flags | jv_str(b)->h.flags) & JS_MARKUP)) {
            /* Markup + str escapes the plain side and stays Markup */
            jval ea, eb;
            if (jescape(ctx, a, 0, &ea) != 0) return -1;
            if (jescape(ctx, b, 0, &eb) != 0) { jv_release(ctx, ea); return -1; }
            jsb sb = {0};
            int ok = jsb_str(ctx, &sb, jv_str(ea)) && jsb_str(ctx, &sb, jv_str(eb));
            jv_release(ctx, ea);
            jv_release(ctx, eb);
            jstr *r = ok ? jsb_finish(ctx, &sb) : (jsb_free(&sb), NULL);
            if (!r) return -1;
            r->h.flags |= JS_MARKUP;
            *out = jv_obj(JV_STR, r);
            return 0;
        }
        if (a.kind == JV_STR && b.kind == JV_STR) {
            jsb sb = {0};
            if (!jsb_str(ctx, &sb, jv_str(a)) || !jsb_str(ctx, &sb, jv_str(b))) { jsb_free(&sb); return -1; }
            jstr *r = jsb_finish(ctx, &sb);
            if (!r) return -1;
            *out = jv_obj(JV_STR, r);
            return jctx_work(ctx, r->len / 256);
        }
        if (a.kind == JV_STR)
            return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: can only concatenate str (not \"%s\") to str", jv_type_name(b));
        if (a.kind == JV_LIST && (jv_list(a)->h.flags == JL_LIST || jv_list(a)->h.flags == JL_TUPLE)) {
            jlist *x = jv_list(a);
            if (b.kind != JV_LIST || jv_list(b)->h.flags != x->h.flags)
                return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: can only concatenate %s (not \"%s\") to %s",
                             jv_type_name(a), jv_type_name(b), jv_type_name(a));
            jlist *y = jv_list(b), *r = jlist_new(ctx, x->len + y->len, x->h.flags);
            if (!r) return -1;
            for (size_t i = 0; i < x->len; i++) r->v[r->len++] = jv_retain(x->v[i]);
            for (size_t i = 0; i < y->len; i++) r->v[r->len++] = jv_retain(y->v[i]);
            *out = jv_obj(JV_LIST, r);
            return jctx_work(ctx, r->len / 16);
        }
        break;
    case OP_MUL:
        if ((a.kind == JV_STR || (a.kind == JV_LIST && jv_list(a)->h.flags <= JL_TUPLE)) &&
            (b.kind == JV_INT || b.kind == JV_BOOL))
            return repeat(ctx, a, b.u.i, out);
        if ((b.kind == JV_STR || (b.kind == JV_LIST && jv_list(b)->h.flags <= JL_TUPLE)) &&
            (a.kind == JV_INT || a.kind == JV_BOOL))
            return repeat(ctx, b, a.u.i, out);
        if (a.kind == JV_STR || b.kind == JV_STR)
            return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: can't multiply sequence by non-int of type '%s'",
                         jv_type_name(a.kind == JV_STR ? b : a));
        break;
    case OP_MOD:
        if (a.kind == JV_STR) return jstr_percent_format(ctx, jv_str(a), b, out);
        break;
    default: break;
    }
    return fail_operands(ctx, names[op], a, b);
}

/* ---------------------------------------------------------------- calls */

static int exec_body(jctx *ctx, const jnode *n, jscope *s);

/* Renders body in scope into a new string. */
static int capture(jctx *ctx, const jnode *body, jscope *s, jval *out) {
    jsb buf = {0}, *saved = ctx->out;
    ctx->out = &buf;
    int r = exec_body(ctx, body, s);
    ctx->out = saved;
    if (r != EX_OK) {
        jsb_free(&buf);
        return r;
    }
    jstr *str = jsb_finish(ctx, &buf);
    if (!str) return EX_ERR;
    *out = jv_obj(JV_STR, str);
    return EX_OK;
}

static int call_macro(jctx *ctx, jmacro *m, const jargs *args, jval *out) {
    const jnode *def = m->def;
    const jstr *name = def->kind == N_MACRO ? ctx->t->syms[def->sym] : NULL;
    char what[128];
    snprintf(what, sizeof what, "macro '%.*s'", name ? (int)name->len : 6, name ? name->s : "caller");
    if (ctx->depth >= ctx->max_depth)
        return jfail(ctx, RM_ERR_LIMIT, "macro calls nested more than %d deep", ctx->max_depth);
    if (jctx_work(ctx, 1) != 0) return -1;
    uint32_t np = def->nkids2;
    int catch_kwargs = def->flags & JM_KWARGS, catch_varargs = def->flags & JM_VARARGS;
    int uses_caller = def->flags & JM_CALLER;
    jscope *s = jscope_new(ctx, m->closure);
    if (!s) return -1;
    int r = -1;
    size_t npos = args->n < np ? args->n : np;
    char *used = rm_calloc(args->nkw ? args->nkw : 1, 1);
    if (!used) { jobj_release(ctx, &s->h); return jfail_nomem(ctx); }
    int found_caller = 0;
    for (uint32_t i = 0; i < np; i++) {
        int sym = def->names[i];
        jval v = jv_undef();
        int have = 0;
        if (i < npos) {
            v = jv_retain(args->pos[i]);
            have = 1;
        } else {
            for (size_t k = 0; k < args->nkw; k++)
                if (!used[k] && jstr_eq(args->kname[k], ctx->t->syms[sym])) {
                    used[k] = 1;
                    v = jv_retain(args->kval[k]);
                    have = 1;
                    break;
                }
            if (sym == SYM_CALLER) found_caller = 1;
        }
        if (!have) {
            if (def->kids2[i]) {
                /* defaults are evaluated at call time, inside the macro's scope */
                if (eval(ctx, def->kids2[i], s, &v) != 0) goto done;
            } else {
                char hint[160];
                snprintf(hint, sizeof hint, "parameter '%.*s' was not provided", (int)ctx->t->syms[sym]->len,
                         ctx->t->syms[sym]->s);
                v = jv_undef_hint(ctx, hint);
                if (ctx->failed) goto done;
            }
        }
        if (jscope_set(ctx, s, sym, v) != 0) goto done;
    }
    if (uses_caller && !found_caller) {
        jval caller = jv_undef();
        int have = 0;
        for (size_t k = 0; k < args->nkw; k++)
            if (!used[k] && jstr_is(args->kname[k], "caller")) {
                used[k] = 1;
                caller = jv_retain(args->kval[k]);
                have = 1;
            }
        if (!have) caller = jv_undef_hint(ctx, "No caller defined");
        if (jscope_set(ctx, s, SYM_CALLER, caller) != 0) goto done;
    }
    if (catch_kwargs) {
        jdict *kw = jdict_new(ctx, JV_DICT);
        if (!kw) goto done;
        if (jscope_set(ctx, s, SYM_KWARGS, jv_obj(JV_DICT, kw)) != 0) goto done;
        for (size_t k = 0; k < args->nkw; k++)
            if (!used[k]) {
                jstr *key = jstr_new(ctx, args->kname[k]->s, args->kname[k]->len, NULL);
                if (!key || jdict_set(ctx, kw, jv_obj(JV_STR, key), jv_retain(args->kval[k])) != 0) goto done;
            }
    } else {
        for (size_t k = 0; k < args->nkw; k++)
            if (!used[k]) {
                if (jstr_is(args->kname[k], "caller"))
                    jfail(ctx, RM_ERR_TEMPLATE,
                          "TypeError: %s was invoked with two values for the special caller argument", what);
                else
                    jfail(ctx, RM_ERR_TEMPLATE, "TypeError: %s takes no keyword argument '%.*s'", what,
                          (int)args->kname[k]->len, args->kname[k]->s);
                goto done;
            }
    }
    if (catch_varargs) {
        jlist *va = jlist_new(ctx, 0, JL_TUPLE);
        if (!va) goto done;
        for (size_t i = np; i < args->n; i++)
            if (jlist_push(ctx, va, jv_retain(args->pos[i])) != 0) goto done;
        if (jscope_set(ctx, s, SYM_VARARGS, jv_obj(JV_LIST, va)) != 0) goto done;
    } else if (args->n > np) {
        jfail(ctx, RM_ERR_TEMPLATE, "TypeError: %s takes not more than %u argument(s)", what, np);
        goto done;
    }
    if (def->kind == N_CALLBLOCK && m->caller.kind != JV_UNDEF) {
        /* a nested call block's body sees its own caller */
    }
    ctx->depth++;
    int saved_line = ctx->line;
    int x = capture(ctx, def->b, s, out);
    ctx->depth--;
    ctx->line = saved_line;
    r = x == EX_OK ? 0 : -1;
    if (x == EX_BREAK || x == EX_CONTINUE) r = jfail(ctx, RM_ERR_TEMPLATE, "break/continue outside of a loop");
done:
    rm_mfree(used);
    jobj_release(ctx, &s->h);
    return r;
}

static int run_for(jctx *ctx, const jnode *n, jscope *s, jlist *items, int depth);

static int call_loop(jctx *ctx, jloop *l, const jargs *args, jval *out) {
    if (!l->node || !(l->node->flags & JF_RECURSIVE))
        return jfail(ctx, RM_ERR_TEMPLATE,
                     "TypeError: Tried to call non recursive loop. Maybe you forgot the 'recursive' modifier.");
    if (args->n != 1 || args->nkw)
        return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: a recursive loop takes exactly one argument");
    if (ctx->depth >= ctx->max_depth)
        return jfail(ctx, RM_ERR_LIMIT, "recursive loops nested more than %d deep", ctx->max_depth);
    jlist *items;
    if (jiterate(ctx, args->pos[0], &items) != 0) return -1;
    jsb buf = {0}, *saved = ctx->out;
    ctx->out = &buf;
    ctx->depth++;
    int r = run_for(ctx, l->node, l->scope, items, l->depth + 1);
    ctx->depth--;
    ctx->out = saved;
    jobj_release(ctx, &items->h);
    if (r != EX_OK) {
        jsb_free(&buf);
        return -1;
    }
    jstr *str = jsb_finish(ctx, &buf);
    if (!str) return -1;
    *out = jv_obj(JV_STR, str);
    return 0;
}

static int int_arg(jctx *ctx, const char *what, jval v, int64_t *out) {
    if (v.kind == JV_INT || v.kind == JV_BOOL) { *out = v.u.i; return 0; }
    if (v.kind == JV_UNDEF) return jfail_undefined(ctx, v);
    return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: '%s' object cannot be interpreted as an integer (%s)",
                 jv_type_name(v), what);
}

static int call_range(jctx *ctx, const jargs *args, jval *out) {
    if (args->nkw) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: range() takes no keyword arguments");
    if (args->n < 1 || args->n > 3)
        return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: range expected 1 to 3 arguments, got %zu", args->n);
    int64_t a = 0, b = 0, st = 1;
    if (args->n == 1) {
        if (int_arg(ctx, "range", args->pos[0], &b) != 0) return -1;
    } else {
        if (int_arg(ctx, "range", args->pos[0], &a) != 0 || int_arg(ctx, "range", args->pos[1], &b) != 0) return -1;
        if (args->n == 3 && int_arg(ctx, "range", args->pos[2], &st) != 0) return -1;
    }
    if (st == 0) return jfail(ctx, RM_ERR_TEMPLATE, "ValueError: range() arg 3 must not be zero");
    int64_t count = 0;
    if (st > 0 && a < b) count = (int64_t)(((uint64_t)b - (uint64_t)a - 1) / (uint64_t)st + 1);
    else if (st < 0 && a > b) count = (int64_t)(((uint64_t)a - (uint64_t)b - 1) / (uint64_t)(-(st + 1) + 1ULL) + 1);
    if (count > MAX_RANGE)
        return jfail(ctx, RM_ERR_TEMPLATE,
                     "OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).", MAX_RANGE);
    if (jctx_work(ctx, (size_t)count / 16) != 0) return -1;
    jlist *l = jlist_new(ctx, (size_t)count, JL_RANGE);
    if (!l) return -1;
    l->r_start = a;
    l->r_stop = b;
    l->r_step = st;
    for (int64_t i = 0; i < count; i++) l->v[l->len++] = jv_int(a + i * st);
    *out = jv_obj(JV_LIST, l);
    return 0;
}

/* dict(...) and namespace(...): a mapping or pairs, then keywords. */
static int build_mapping(jctx *ctx, const char *what, jkind kind, const jargs *args, jval *out) {
    if (args->n > 1) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: %s expected at most 1 argument, got %zu", what, args->n);
    jdict *d = jdict_new(ctx, kind);
    if (!d) return -1;
    *out = jv_obj(kind, d);
    if (args->n == 1) {
        jval src = args->pos[0];
        if (src.kind == JV_DICT || src.kind == JV_NS) {
            jdict *x = jv_dict(src);
            for (size_t i = 0; i < x->len; i++)
                if (jdict_set(ctx, d, jv_retain(x->k[i]), jv_retain(x->v[i])) != 0) return -1;
        } else {
            jlist *items;
            if (jiterate(ctx, src, &items) != 0) return -1;
            for (size_t i = 0; i < items->len; i++) {
                jval p = items->v[i];
                if (p.kind != JV_LIST || jv_list(p)->len != 2 || JL_IS_ITER(jv_list(p)->h.flags)) {
                    jobj_release(ctx, &items->h);
                    return jfail(ctx, RM_ERR_TEMPLATE,
                                 "ValueError: %s update sequence element #%zu has the wrong length", what, i);
                }
                if (jdict_set(ctx, d, jv_retain(jv_list(p)->v[0]), jv_retain(jv_list(p)->v[1])) != 0) {
                    jobj_release(ctx, &items->h);
                    return -1;
                }
            }
            jobj_release(ctx, &items->h);
        }
    }
    for (size_t k = 0; k < args->nkw; k++) {
        jstr *key = jstr_new(ctx, args->kname[k]->s, args->kname[k]->len, NULL);
        if (!key || jdict_set(ctx, d, jv_obj(JV_STR, key), jv_retain(args->kval[k])) != 0) return -1;
    }
    return 0;
}

static int call_global(jctx *ctx, int sym, const jargs *args, jval *out) {
    switch (sym) {
    case SYM_RANGE: return call_range(ctx, args, out);
    case SYM_DICT: return build_mapping(ctx, "dict", JV_DICT, args, out);
    case SYM_NAMESPACE: return build_mapping(ctx, "namespace", JV_NS, args, out);
    case SYM_RAISE_EXCEPTION: {
        jstr *msg = args->n ? jv_to_str(ctx, args->pos[0]) : jstr_cstr(ctx, "");
        if (!msg) return -1;
        if (!ctx->failed) {
            ctx->failed = 1;
            /* the template's own message, as transformers' TemplateError carries it */
            rm_fail(ctx->err, RM_ERR_TEMPLATE, "%.*s", (int)(msg->len > 1000 ? 1000 : msg->len), msg->s);
        }
        jobj_release(ctx, &msg->h);
        return -1;
    }
    case SYM_STRFTIME_NOW: {
        if (args->n != 1 || args->nkw || args->pos[0].kind != JV_STR)
            return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: strftime_now() takes one string argument");
        return jstrftime_now(ctx, jv_str(args->pos[0]), out);
    }
    default: {
        const jstr *name = ctx->t->syms[sym];
        return jfail(ctx, RM_ERR_TEMPLATE, "the global '%.*s' is not supported by libnimreward", (int)name->len, name->s);
    }
    }
}

int jcall_value(jctx *ctx, jval callee, const jargs *args, jval *out) {
    switch (callee.kind) {
    case JV_FUNC: return call_global(ctx, (int)callee.u.i, args, out);
    case JV_MACRO: return call_macro(ctx, (jmacro *)callee.u.o, args, out);
    case JV_METHOD: {
        jmethod *m = (jmethod *)callee.u.o;
        return jmethod_call(ctx, m->self, m->id, args, out);
    }
    case JV_LOOP: return call_loop(ctx, (jloop *)callee.u.o, args, out);
    case JV_UNDEF: return jfail_undefined(ctx, callee);
    default: return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: '%s' object is not callable", jv_type_name(callee));
    }
}

static int eval_call(jctx *ctx, const jnode *n, jscope *s, jval *out) {
    argbuf ab = {0};
    jval callee = jv_undef(), self = jv_undef();
    int method = -1, r = -1;
    if (n->a->kind == N_GETATTR) {
        /* obj.method(...) without building a bound method */
        if (eval(ctx, n->a->a, s, &self) != 0) goto done;
        const jstr *name = jv_str(n->a->val);
        if (self.kind != JV_UNDEF && !is_dunder(name)) method = jmethod_find(self, name->s, name->len);
        if (method < 0 && jgetattr(ctx, self, name, &callee) != 0) goto done;
    } else if (eval(ctx, n->a, s, &callee) != 0) {
        goto done;
    }
    if (eval_args(ctx, n, s, &ab) != 0) goto done;
    ctx->line = n->line;
    if (jctx_work(ctx, 1) != 0) goto done;
    if (method >= 0) r = jmethod_call(ctx, self, method, &ab.a, out);
    else r = jcall_value(ctx, callee, &ab.a, out);
done:
    argbuf_free(ctx, &ab);
    jv_release(ctx, callee);
    jv_release(ctx, self);
    return r;
}

/* ---------------------------------------------------------------- expressions */

static int eval_filter(jctx *ctx, const jnode *n, jscope *s, jval operand_block, jval *out);

static int eval_compare(jctx *ctx, const jnode *n, jscope *s, jval *out) {
    jval left;
    if (eval(ctx, n->a, s, &left) != 0) return -1;
    int result = 1;
    for (uint32_t i = 0; i < n->nkids && result; i++) {
        jval right;
        if (eval(ctx, n->kids[i], s, &right) != 0) { jv_release(ctx, left); return -1; }
        int op = n->names[i], r = 0, bad = 0;
        ctx->line = n->line;
        switch (op) {
        case OP_EQ: r = jv_eq(ctx, left, right); break;
        case OP_NE: r = !jv_eq(ctx, left, right); break;
        case OP_IN: bad = jcontains(ctx, right, left, &r); break;
        case OP_NOTIN: bad = jcontains(ctx, right, left, &r); r = !r; break;
        default:
            if (left.kind == JV_UNDEF) bad = jfail_undefined(ctx, left);
            else if (right.kind == JV_UNDEF) bad = jfail_undefined(ctx, right);
            else bad = jv_compare(ctx, op, left, right, &r);
        }
        jv_release(ctx, left);
        left = right;
        if (bad || ctx->failed) { jv_release(ctx, left); return -1; }
        result = r;
    }
    jv_release(ctx, left);
    *out = jv_bool(result);
    return 0;
}

static int eval_inner(jctx *ctx, const jnode *n, jscope *s, jval *out) {
    ctx->line = n->line;
    switch (n->kind) {
    case N_CONST: *out = n->val; return 0;
    case N_NAME: *out = lookup(ctx, s, n->sym); return ctx->failed ? -1 : 0;
    case N_LIST:
    case N_TUPLE: {
        jlist *l = jlist_new(ctx, n->nkids, n->kind == N_TUPLE ? JL_TUPLE : JL_LIST);
        if (!l) return -1;
        *out = jv_obj(JV_LIST, l);
        for (uint32_t i = 0; i < n->nkids; i++) {
            jval v;
            if (eval(ctx, n->kids[i], s, &v) != 0) return -1;
            l->v[l->len++] = v;
        }
        return 0;
    }
    case N_DICT: {
        jdict *d = jdict_new(ctx, JV_DICT);
        if (!d) return -1;
        *out = jv_obj(JV_DICT, d);
        for (uint32_t i = 0; i < n->nkids; i++) {
            jval k, v;
            if (eval(ctx, n->kids[i], s, &k) != 0) return -1;
            if (!jv_hashable(k)) {
                ctx->line = n->line;
                jfail(ctx, RM_ERR_TEMPLATE, "TypeError: unhashable type: '%s'", jv_type_name(k));
                jv_release(ctx, k);
                return -1;
            }
            if (eval(ctx, n->kids2[i], s, &v) != 0) { jv_release(ctx, k); return -1; }
            if (jdict_set(ctx, d, k, v) != 0) return -1;
        }
        return 0;
    }
    case N_GETATTR: {
        jval obj;
        if (eval(ctx, n->a, s, &obj) != 0) return -1;
        ctx->line = n->line;
        int r = jgetattr(ctx, obj, jv_str(n->val), out);
        jv_release(ctx, obj);
        return r;
    }
    case N_GETITEM: {
        jval obj, key;
        if (eval(ctx, n->a, s, &obj) != 0) return -1;
        if (eval(ctx, n->b, s, &key) != 0) { jv_release(ctx, obj); return -1; }
        ctx->line = n->line;
        int r = jgetitem(ctx, obj, key, out);
        jv_release(ctx, obj);
        jv_release(ctx, key);
        return r;
    }
    case N_SLICE: {
        jval obj, parts[3] = {jv_none(), jv_none(), jv_none()};
        const jnode *pn[3] = {n->b, n->c, n->d};
        if (eval(ctx, n->a, s, &obj) != 0) return -1;
        int r = 0;
        for (int k = 0; k < 3 && r == 0; k++)
            if (pn[k]) r = eval(ctx, pn[k], s, &parts[k]);
        ctx->line = n->line;
        if (r == 0) r = do_slice(ctx, obj, &parts[0], &parts[1], &parts[2], out);
        for (int k = 0; k < 3; k++) jv_release(ctx, parts[k]);
        jv_release(ctx, obj);
        return r;
    }
    case N_CALL: return eval_call(ctx, n, s, out);
    case N_FILTER: return eval_filter(ctx, n, s, jv_undef(), out);
    case N_TEST: {
        jval v;
        argbuf ab = {0};
        if (eval(ctx, n->a, s, &v) != 0) return -1;
        int r = eval_args(ctx, n, s, &ab), res = 0;
        ctx->line = n->line;
        if (r == 0) r = jtest_call(ctx, n->op, ctx->t->syms[n->sym], v, &ab.a, &res);
        argbuf_free(ctx, &ab);
        jv_release(ctx, v);
        *out = jv_bool(res);
        return r;
    }
    case N_NOT: {
        jval v;
        if (eval(ctx, n->a, s, &v) != 0) return -1;
        *out = jv_bool(!jv_truthy(v));
        jv_release(ctx, v);
        return 0;
    }
    case N_NEG:
    case N_POS: {
        jval v;
        if (eval(ctx, n->a, s, &v) != 0) return -1;
        ctx->line = n->line;
        if (v.kind == JV_INT || v.kind == JV_BOOL) {
            if (n->kind == N_NEG && v.u.i == INT64_MIN) return overflow(ctx);
            *out = jv_int(n->kind == N_NEG ? -v.u.i : v.u.i);
            return 0;
        }
        if (v.kind == JV_FLOAT) {
            *out = jv_float(n->kind == N_NEG ? -v.u.f : v.u.f);
            return 0;
        }
        int r = v.kind == JV_UNDEF ? jfail_undefined(ctx, v)
                                   : jfail(ctx, RM_ERR_TEMPLATE, "TypeError: bad operand type for unary %c: '%s'",
                                           n->kind == N_NEG ? '-' : '+', jv_type_name(v));
        jv_release(ctx, v);
        return r;
    }
    case N_BINOP: {
        jval a, b;
        if (eval(ctx, n->a, s, &a) != 0) return -1;
        if (eval(ctx, n->b, s, &b) != 0) { jv_release(ctx, a); return -1; }
        ctx->line = n->line;
        int r = jbinop(ctx, n->op, a, b, out);
        jv_release(ctx, a);
        jv_release(ctx, b);
        return r;
    }
    case N_AND:
    case N_OR: {
        jval a;
        if (eval(ctx, n->a, s, &a) != 0) return -1;
        int t = jv_truthy(a);
        if ((n->kind == N_AND && !t) || (n->kind == N_OR && t)) {
            *out = a;
            return 0;
        }
        jv_release(ctx, a);
        return eval(ctx, n->b, s, out);
    }
    case N_COMPARE: return eval_compare(ctx, n, s, out);
    case N_COND: {
        jval t;
        if (eval(ctx, n->a, s, &t) != 0) return -1;
        int truth = jv_truthy(t);
        jv_release(ctx, t);
        if (truth) return eval(ctx, n->b, s, out);
        if (n->c) return eval(ctx, n->c, s, out);
        char hint[160];
        snprintf(hint, sizeof hint,
                 "the inline if-expression on line %d evaluated to false and no else section was defined.", n->line);
        *out = jv_undef_hint(ctx, hint);
        return ctx->failed ? -1 : 0;
    }
    default: return jfail(ctx, RM_ERR_INTERNAL, "unexpected node %d in an expression", n->kind);
    }
}

static int eval(jctx *ctx, const jnode *n, jscope *s, jval *out) {
    *out = jv_undef();
    if (enter(ctx) != 0) return -1;
    int r = eval_inner(ctx, n, s, out);
    ctx->nest--;
    if (r != 0) {
        jv_release(ctx, *out);
        *out = jv_undef();
        if (!ctx->failed) jfail(ctx, RM_ERR_INTERNAL, "evaluation failed without a message");
        return -1;
    }
    return 0;
}

/* A filter chain node; operand_block is the body of a filter block / set
 * block when the chain's innermost operand is NULL. */
static int eval_filter(jctx *ctx, const jnode *n, jscope *s, jval operand_block, jval *out) {
    jval v;
    if (n->a) {
        if (n->a->kind == N_FILTER) {
            if (enter(ctx) != 0) return -1;
            int r = eval_filter(ctx, n->a, s, operand_block, &v);
            ctx->nest--;
            if (r != 0) return -1;
        } else if (eval(ctx, n->a, s, &v) != 0) {
            return -1;
        }
    } else {
        v = jv_retain(operand_block);
    }
    argbuf ab = {0};
    int r = eval_args(ctx, n, s, &ab);
    ctx->line = n->line;
    if (r == 0) r = jctx_work(ctx, 1);
    if (r == 0) r = jfilter_call(ctx, n->op, ctx->t->syms[n->sym], v, &ab.a, out);
    argbuf_free(ctx, &ab);
    jv_release(ctx, v);
    return r;
}

/* ---------------------------------------------------------------- statements */

/* Binds an assignment target (a name or a tuple of targets) to v (borrowed). */
static int assign(jctx *ctx, const jnode *target, jscope *s, jval v) {
    if (target->kind == N_NAME) return jscope_set(ctx, s, target->sym, jv_retain(v));
    jlist *items;
    if (jiterate(ctx, v, &items) != 0) return -1;
    int r = 0;
    if (items->len != target->nkids) {
        ctx->line = target->line;
        if (items->len < target->nkids)
            r = jfail(ctx, RM_ERR_TEMPLATE, "ValueError: not enough values to unpack (expected %u, got %zu)",
                      target->nkids, items->len);
        else
            r = jfail(ctx, RM_ERR_TEMPLATE, "ValueError: too many values to unpack (expected %u)", target->nkids);
    }
    for (uint32_t i = 0; r == 0 && i < target->nkids; i++) r = assign(ctx, target->kids[i], s, items->v[i]);
    jobj_release(ctx, &items->h);
    return r;
}

static int output_value(jctx *ctx, jval v) {
    if (v.kind == JV_STR) return jsb_str(ctx, ctx->out, jv_str(v)) ? 0 : -1;
    if (v.kind == JV_UNDEF) return 0;
    return jv_write(ctx, ctx->out, v, 0);
}

static int exec_stmt(jctx *ctx, const jnode *n, jscope *s);

static int exec_body(jctx *ctx, const jnode *n, jscope *s) {
    if (!n) return EX_OK;
    if (n->kind != N_BODY) return exec_stmt(ctx, n, s);
    for (uint32_t i = 0; i < n->nkids; i++) {
        int r = exec_stmt(ctx, n->kids[i], s);
        if (r != EX_OK) return r;
    }
    return EX_OK;
}

static int run_for(jctx *ctx, const jnode *n, jscope *s, jlist *items, int depth) {
    jlist *list = items;
    items->h.rc++;
    if (n->e) {
        /* for x in xs if cond: filter first, so loop.length and loop.last see the kept items */
        jlist *kept = jlist_new(ctx, 0, JL_LIST);
        if (!kept) { jobj_release(ctx, &items->h); return EX_ERR; }
        for (size_t i = 0; i < items->len; i++) {
            jscope *fs = jscope_new(ctx, s);
            jval c;
            if (!fs || jctx_work(ctx, 1) != 0 || assign(ctx, n->a, fs, items->v[i]) != 0 || eval(ctx, n->e, fs, &c) != 0) {
                if (fs) jobj_release(ctx, &fs->h);
                jobj_release(ctx, &kept->h);
                jobj_release(ctx, &items->h);
                return EX_ERR;
            }
            jobj_release(ctx, &fs->h);
            int keep = jv_truthy(c);
            jv_release(ctx, c);
            if (keep && jlist_push(ctx, kept, jv_retain(items->v[i])) != 0) {
                jobj_release(ctx, &kept->h);
                jobj_release(ctx, &items->h);
                return EX_ERR;
            }
        }
        jobj_release(ctx, &items->h);
        list = kept;
    }
    int r = EX_OK;
    if (list->len == 0) {
        if (n->d) r = exec_body(ctx, n->d, s);   /* for-else runs in the enclosing scope */
        jobj_release(ctx, &list->h);
        return r;
    }
    jloop *loop = jloop_new(ctx, list, depth);
    if (!loop) { jobj_release(ctx, &list->h); return EX_ERR; }
    if (n->flags & JF_RECURSIVE) {
        loop->node = n;
        loop->scope = s;
        s->h.rc++;
    }
    for (size_t i = 0; i < list->len; i++) {
        loop->index = i;
        if (jctx_work(ctx, 1) != 0) { r = EX_ERR; break; }
        jscope *it = jscope_new(ctx, s);
        if (!it) { r = EX_ERR; break; }
        loop->h.rc++;
        if (jscope_set(ctx, it, SYM_LOOP, jv_obj(JV_LOOP, loop)) != 0 || assign(ctx, n->a, it, list->v[i]) != 0) {
            jobj_release(ctx, &it->h);
            r = EX_ERR;
            break;
        }
        r = exec_body(ctx, n->c, it);
        jobj_release(ctx, &it->h);
        if (r == EX_BREAK) { r = EX_OK; break; }
        if (r == EX_CONTINUE) { r = EX_OK; continue; }
        if (r != EX_OK) break;
    }
    jobj_release(ctx, &loop->h);
    jobj_release(ctx, &list->h);
    return r;
}

static int exec_stmt_inner(jctx *ctx, const jnode *n, jscope *s) {
    ctx->line = n->line;
    switch (n->kind) {
    case N_BODY: return exec_body(ctx, n, s);
    case N_DATA: return jsb_str(ctx, ctx->out, jv_str(n->val)) ? EX_OK : EX_ERR;
    case N_OUTPUT: {
        jval v;
        if (eval(ctx, n->a, s, &v) != 0) return EX_ERR;
        int r = output_value(ctx, v);
        jv_release(ctx, v);
        return r == 0 ? EX_OK : EX_ERR;
    }
    case N_IF: {
        jval t;
        if (eval(ctx, n->a, s, &t) != 0) return EX_ERR;
        int truth = jv_truthy(t);
        jv_release(ctx, t);
        return exec_body(ctx, truth ? n->b : n->c, s);
    }
    case N_FOR: {
        jval v;
        jlist *items;
        if (eval(ctx, n->b, s, &v) != 0) return EX_ERR;
        ctx->line = n->line;
        int r = jiterate(ctx, v, &items);
        jv_release(ctx, v);
        if (r != 0) return EX_ERR;
        r = run_for(ctx, n, s, items, 1);
        jobj_release(ctx, &items->h);
        return r;
    }
    case N_SET: {
        jval v;
        if (eval(ctx, n->b, s, &v) != 0) return EX_ERR;
        int r;
        if (n->a->kind == N_NSREF) {
            jval *ns = scope_find(s, n->a->sym);
            ctx->line = n->line;
            if (!ns || ns->kind != JV_NS) {
                jv_release(ctx, v);
                return jfail(ctx, RM_ERR_TEMPLATE, "TemplateRuntimeError: cannot assign attribute on non-namespace object");
            }
            jval key = jv_retain(n->a->val);
            r = jdict_set(ctx, jv_dict(*ns), key, v);
        } else {
            r = assign(ctx, n->a, s, v);
            jv_release(ctx, v);
        }
        return r == 0 ? EX_OK : EX_ERR;
    }
    case N_SETBLOCK: {
        jscope *inner = jscope_new(ctx, s);
        if (!inner) return EX_ERR;
        jval body;
        int r = capture(ctx, n->b, inner, &body);
        jobj_release(ctx, &inner->h);
        if (r != EX_OK) return r;
        jval v = body;
        if (n->c) {
            r = eval_filter(ctx, n->c, s, body, &v);
            jv_release(ctx, body);
            if (r != 0) return EX_ERR;
        }
        if (n->a->kind == N_NSREF) {
            jval *ns = scope_find(s, n->a->sym);
            if (!ns || ns->kind != JV_NS) {
                jv_release(ctx, v);
                ctx->line = n->line;
                return jfail(ctx, RM_ERR_TEMPLATE, "TemplateRuntimeError: cannot assign attribute on non-namespace object");
            }
            return jdict_set(ctx, jv_dict(*ns), jv_retain(n->a->val), v) == 0 ? EX_OK : EX_ERR;
        }
        r = assign(ctx, n->a, s, v);
        jv_release(ctx, v);
        return r == 0 ? EX_OK : EX_ERR;
    }
    case N_MACRO: {
        jmacro *m = jmacro_new(ctx, n, s);
        if (!m) return EX_ERR;
        return jscope_set(ctx, s, n->sym, jv_obj(JV_MACRO, m)) == 0 ? EX_OK : EX_ERR;
    }
    case N_CALLBLOCK: {
        jmacro *caller = jmacro_new(ctx, n, s);
        if (!caller) return EX_ERR;
        jval cv = jv_obj(JV_MACRO, caller);
        /* evaluate the call with caller= added */
        const jnode *call = n->a;
        argbuf ab = {0};
        jval callee = jv_undef(), self = jv_undef(), res = jv_undef();
        int r = -1, method = -1;
        if (call->a->kind == N_GETATTR) {
            if (eval(ctx, call->a->a, s, &self) != 0) goto cb_done;
            const jstr *name = jv_str(call->a->val);
            if (self.kind != JV_UNDEF && !is_dunder(name)) method = jmethod_find(self, name->s, name->len);
            if (method < 0 && jgetattr(ctx, self, name, &callee) != 0) goto cb_done;
        } else if (eval(ctx, call->a, s, &callee) != 0) {
            goto cb_done;
        }
        if (eval_args(ctx, call, s, &ab) != 0) goto cb_done;
        static jstr caller_name = {.h = {.rc = -1, .kind = JV_STR, .flags = JS_ASCII}, .len = 6, .s = "caller"};
        if (argbuf_kw(ctx, &ab, &caller_name, jv_retain(cv)) != 0) goto cb_done;
        ctx->line = n->line;
        r = method >= 0 ? jmethod_call(ctx, self, method, &ab.a, &res) : jcall_value(ctx, callee, &ab.a, &res);
        if (r == 0) r = output_value(ctx, res);
    cb_done:
        argbuf_free(ctx, &ab);
        jv_release(ctx, callee);
        jv_release(ctx, self);
        jv_release(ctx, res);
        jv_release(ctx, cv);
        return r == 0 ? EX_OK : EX_ERR;
    }
    case N_FILTERBLOCK: {
        jscope *inner = jscope_new(ctx, s);
        if (!inner) return EX_ERR;
        jval body, v;
        int r = capture(ctx, n->b, inner, &body);
        jobj_release(ctx, &inner->h);
        if (r != EX_OK) return r;
        r = eval_filter(ctx, n->a, s, body, &v);
        jv_release(ctx, body);
        if (r != 0) return EX_ERR;
        r = output_value(ctx, v);
        jv_release(ctx, v);
        return r == 0 ? EX_OK : EX_ERR;
    }
    case N_WITH: {
        jscope *inner = jscope_new(ctx, s);
        if (!inner) return EX_ERR;
        for (uint32_t i = 0; i < n->nkids; i++) {
            jval v;
            if (eval(ctx, n->kids2[i], s, &v) != 0) { jobj_release(ctx, &inner->h); return EX_ERR; }
            int r = assign(ctx, n->kids[i], inner, v);
            jv_release(ctx, v);
            if (r != 0) { jobj_release(ctx, &inner->h); return EX_ERR; }
        }
        int r = exec_body(ctx, n->b, inner);
        jobj_release(ctx, &inner->h);
        return r;
    }
    case N_BREAK: return EX_BREAK;
    case N_CONTINUE: return EX_CONTINUE;
    default: return jfail(ctx, RM_ERR_INTERNAL, "unexpected node %d as a statement", n->kind);
    }
}

static int exec_stmt(jctx *ctx, const jnode *n, jscope *s) {
    if (enter(ctx) != 0) return EX_ERR;
    int r = exec_stmt_inner(ctx, n, s);
    ctx->nest--;
    if (r == EX_ERR && !ctx->failed) jfail(ctx, RM_ERR_INTERNAL, "statement failed without a message");
    return r;
}

int jrender_root(jctx *ctx, const jnode *root);
int jrender_root(jctx *ctx, const jnode *root) {
    int r = exec_body(ctx, root, ctx->root);
    return r == EX_OK ? 0 : -1;
}

/* ---------------------------------------------------------------- strftime_now */

static locale_t c_locale;
static void open_c_locale(void) { c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

int jstrftime_now(jctx *ctx, const jstr *fmt, jval *out) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    long micro = 0;
    if (ctx->now) {
        rm_err e = {0};
        if (rm_clock_parse(ctx->now, "now", &tm, &e) != RM_OK)
            return jfail(ctx, e.status, "%s", e.msg);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        micro = ts.tv_nsec / 1000;
    }
    /* Python handles %f itself; the rest goes to strftime in the C locale */
    jsb f = {0};
    for (size_t i = 0; i < fmt->len; i++) {
        if (fmt->s[i] == '%' && i + 1 < fmt->len && fmt->s[i + 1] == 'f') {
            char us[16];
            snprintf(us, sizeof us, "%06ld", micro);
            if (!jsb_cstr(ctx, &f, us)) { jsb_free(&f); return -1; }
            i++;
        } else if (fmt->s[i] == '%' && i + 1 < fmt->len && fmt->s[i + 1] == '%') {
            if (!jsb_cstr(ctx, &f, "%%")) { jsb_free(&f); return -1; }
            i++;
        } else if (!jsb_put(ctx, &f, fmt->s + i, 1, NULL)) {
            jsb_free(&f);
            return -1;
        }
    }
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, open_c_locale);
    size_t cap = 256 + f.len * 8;
    char *buf = rm_malloc(cap);
    if (!buf) { jsb_free(&f); return jfail_nomem(ctx); }
    /* strftime returns 0 both for "too small" and for an empty result; the
     * format's own text bounds the output, so one generous buffer decides */
    size_t n = f.len ? (c_locale ? strftime_l(buf, cap, f.s, &tm, c_locale) : strftime(buf, cap, f.s, &tm)) : 0;
    jsb_free(&f);
    *out = jv_str_new(ctx, buf, n);
    rm_mfree(buf);
    return ctx->failed ? -1 : 0;
}
