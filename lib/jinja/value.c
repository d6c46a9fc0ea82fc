/*
 * value.c - values: the heap and its reference counts, strings with masks,
 * lists and dicts, and the Python behaviour of values (truth, ==, <, str(),
 * repr(), float formatting) that Jinja2 inherits.
 */
#include "jinja/value.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja/ast.h"
#include "jinja/eval.h"
#include "jinja/unicode.h"

/* Nesting beyond this in ==, <, repr and json is refused (Python would hit
 * its recursion limit about there too). */
#define VALUE_NEST_MAX 512

/* ---------------------------------------------------------------- heap */

static size_t obj_size(const jobj *o) {
    switch (o->kind) {
    case JV_STR: {
        const jstr *s = (const jstr *)o;
        return sizeof(jstr) + s->len + 1 + (s->mask ? s->len : 0);
    }
    case JV_LIST: return sizeof(jlist) + ((const jlist *)o)->cap * sizeof(jval);
    case JV_DICT:
    case JV_NS: {
        const jdict *d = (const jdict *)o;
        return sizeof(jdict) + d->cap * 2 * sizeof(jval) + d->index_cap * sizeof(uint32_t);
    }
    case JV_MACRO: return sizeof(jmacro);
    case JV_LOOP: return sizeof(jloop);
    case JV_METHOD: return sizeof(jmethod);
    case JV_SCOPE: return sizeof(jscope) + ((const jscope *)o)->cap * (sizeof(int) + sizeof(jval));
    }
    return 0;
}

static int mem_charge(jctx *ctx, size_t n) {
    if (n > ctx->mem_limit - ctx->mem_live || ctx->mem_live > ctx->mem_limit)
        return jfail(ctx, RM_ERR_LIMIT, "values take more than %zu bytes of memory", ctx->mem_limit);
    ctx->mem_live += n;
    return 0;
}

static void *obj_alloc(jctx *ctx, size_t size, jkind kind) {
    if (mem_charge(ctx, size) != 0) return NULL;
    jobj *o = rm_calloc(1, size);
    if (!o) {
        ctx->mem_live -= size;
        jfail_nomem(ctx);
        return NULL;
    }
    o->rc = 1;
    o->kind = (uint8_t)kind;
    o->next = ctx->heap.next;
    o->prev = &ctx->heap;
    ctx->heap.next->prev = o;
    ctx->heap.next = o;
    return o;
}

/* Frees the object's own storage (children are released by the caller). */
static void obj_free_storage(jctx *ctx, jobj *o) {
    size_t size = obj_size(o);
    ctx->mem_live -= size < ctx->mem_live ? size : ctx->mem_live;
    switch (o->kind) {
    case JV_LIST: rm_mfree(((jlist *)o)->v); break;
    case JV_DICT:
    case JV_NS: {
        jdict *d = (jdict *)o;
        rm_mfree(d->k);
        rm_mfree(d->v);
        rm_mfree(d->index);
        break;
    }
    case JV_SCOPE: {
        jscope *s = (jscope *)o;
        rm_mfree(s->sym);
        rm_mfree(s->v);
        break;
    }
    default: break;
    }
    rm_mfree(o);
}

static void release_children(jctx *ctx, jobj *o) {
    switch (o->kind) {
    case JV_LIST: {
        jlist *l = (jlist *)o;
        for (size_t i = 0; i < l->len; i++) jv_release(ctx, l->v[i]);
        break;
    }
    case JV_DICT:
    case JV_NS: {
        jdict *d = (jdict *)o;
        for (size_t i = 0; i < d->len; i++) {
            jv_release(ctx, d->k[i]);
            jv_release(ctx, d->v[i]);
        }
        break;
    }
    case JV_MACRO: {
        jmacro *m = (jmacro *)o;
        if (m->closure) jobj_release(ctx, &m->closure->h);
        jv_release(ctx, m->caller);
        break;
    }
    case JV_LOOP: {
        jloop *l = (jloop *)o;
        if (l->items) jobj_release(ctx, &l->items->h);
        jv_release(ctx, l->last_changed);
        if (l->scope) jobj_release(ctx, &l->scope->h);
        break;
    }
    case JV_METHOD: jv_release(ctx, ((jmethod *)o)->self); break;
    case JV_SCOPE: {
        jscope *s = (jscope *)o;
        if (s->parent) jobj_release(ctx, &s->parent->h);
        for (size_t i = 0; i < s->n; i++) jv_release(ctx, s->v[i]);
        break;
    }
    default: break;
    }
}

void jobj_release(jctx *ctx, jobj *o) {
    if (!o || o->rc < 0) return;
    if (--o->rc > 0) return;
    /* Unlink from the heap list and queue: freeing is iterative so a deeply
     * nested value cannot exhaust the C stack. */
    o->prev->next = o->next;
    o->next->prev = o->prev;
    o->prev = NULL;
    o->next = ctx->pending;
    ctx->pending = o;
    if (ctx->freeing) return;
    ctx->freeing = 1;
    while (ctx->pending) {
        jobj *p = ctx->pending;
        ctx->pending = p->next;
        release_children(ctx, p);
        obj_free_storage(ctx, p);
    }
    ctx->freeing = 0;
}

void jv_release(jctx *ctx, jval v) {
    if (jv_isheap(v)) jobj_release(ctx, v.u.o);
}

void jheap_sweep(jctx *ctx) {
    while (ctx->pending) {
        jobj *p = ctx->pending;
        ctx->pending = p->next;
        obj_free_storage(ctx, p);
    }
    jobj *o = ctx->heap.next;
    while (o && o != &ctx->heap) {
        jobj *next = o->next;
        obj_free_storage(ctx, o);
        o = next;
    }
    ctx->heap.next = ctx->heap.prev = &ctx->heap;
}

/* ---------------------------------------------------------------- undefined */

jval jv_undef_name(jctx *ctx, jstr *name) {
    (void)ctx;
    jval v = jv_undef();
    v.sub = UNDEF_NAME;
    if (name) v.u.o = &name->h, jv_retain(v);
    return v;
}

jval jv_undef_attr(jctx *ctx, jval owner, jstr *name) {
    (void)ctx;
    jval v = jv_undef();
    v.sub = UNDEF_ATTR;
    v.extra = (int16_t)(owner.kind | ((owner.kind == JV_LIST ? jv_list(owner)->h.flags : 0) << 8));
    if (name) v.u.o = &name->h, jv_retain(v);
    return v;
}

static const char *kind_type_name(int kind, int flavour) {
    static const char *const list_names[] = {"list", "tuple", "range", "generator", "list_reverseiterator",
                                             "dict_itemiterator", "dict_items", "dict_keys", "dict_values"};
    switch (kind) {
    case JV_UNDEF: return "Undefined";
    case JV_NONE: return "NoneType";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_FUNC: return "function";
    case JV_STR: return "str";
    case JV_LIST: return flavour >= 0 && flavour <= JL_VALUES ? list_names[flavour] : "list";
    case JV_DICT: return "dict";
    case JV_NS: return "Namespace";
    case JV_MACRO: return "Macro";
    case JV_LOOP: return "LoopContext";
    case JV_METHOD: return "builtin_function_or_method";
    case JV_SCOPE: return "scope";
    }
    return "object";
}

const char *jv_type_name(jval v) { return kind_type_name(v.kind, v.kind == JV_LIST ? jv_list(v)->h.flags : 0); }

/* Jinja's object_type_repr: "None", "dict object", "jinja2.utils.Namespace object". */
static void object_type_repr(int kind, int flavour, char *buf, size_t cap) {
    if (kind == JV_NONE) snprintf(buf, cap, "None");
    else if (kind == JV_NS) snprintf(buf, cap, "jinja2.utils.Namespace object");
    else if (kind == JV_LOOP) snprintf(buf, cap, "jinja2.runtime.LoopContext object");
    else if (kind == JV_MACRO) snprintf(buf, cap, "jinja2.runtime.Macro object");
    else snprintf(buf, cap, "%s object", kind_type_name(kind, flavour));
}

jval jv_undef_element(jctx *ctx, jval owner, jval key) {
    char type[64], msg[256];
    object_type_repr(owner.kind, owner.kind == JV_LIST ? jv_list(owner)->h.flags : 0, type, sizeof type);
    jsb b = {0};
    if (jv_write(ctx, &b, key, 1) != 0) { jsb_free(&b); return jv_undef(); }
    snprintf(msg, sizeof msg, "%s has no element %.*s", type, (int)(b.len > 160 ? 160 : b.len), b.s ? b.s : "");
    jsb_free(&b);
    return jv_undef_hint(ctx, msg);
}

jval jv_undef_hint(jctx *ctx, const char *msg) {
    jval v = jv_undef();
    v.sub = UNDEF_HINT;
    jstr *s = jstr_cstr(ctx, msg);
    if (s) v.u.o = &s->h;
    return v;
}

jval jv_undef_unsafe(jctx *ctx, jval owner, const char *attr) {
    char msg[256];
    snprintf(msg, sizeof msg, "access to attribute '%s' of '%s' object is unsafe.", attr, jv_type_name(owner));
    jval v = jv_undef_hint(ctx, msg);
    v.sub = UNDEF_UNSAFE;
    return v;
}

void jv_undef_message(jval v, char *buf, size_t cap) {
    const jstr *s = v.u.o ? (const jstr *)v.u.o : NULL;
    char type[64];
    switch (v.sub) {
    case UNDEF_ATTR:
        object_type_repr(v.extra & 0xFF, v.extra >> 8, type, sizeof type);
        snprintf(buf, cap, "'%s' has no attribute '%.*s'", type, s ? (int)s->len : 0, s ? s->s : "");
        break;
    case UNDEF_HINT:
    case UNDEF_UNSAFE:
    case UNDEF_ELEMENT: snprintf(buf, cap, "%.*s", s ? (int)s->len : 0, s ? s->s : ""); break;
    default:
        if (s) snprintf(buf, cap, "'%.*s' is undefined", (int)s->len, s->s);
        else snprintf(buf, cap, "undefined value");
    }
}

/* ---------------------------------------------------------------- strings */

static jstr *jstr_alloc(jctx *ctx, size_t len, int with_mask) {
    size_t size = sizeof(jstr) + len + 1 + (with_mask ? len : 0);
    if (len > ctx->max_output) {
        jfail(ctx, RM_ERR_LIMIT, "a string of %zu bytes exceeds the output bound of %zu", len, ctx->max_output);
        return NULL;
    }
    jstr *s = obj_alloc(ctx, size, JV_STR);
    if (!s) return NULL;
    ctx->steps += (int64_t)(len >> 8);   /* building text is work: checked at the next call or iteration */
    s->len = len;
    s->s = (char *)(s + 1);
    s->s[len] = 0;
    s->mask = with_mask ? (uint8_t *)s->s + len + 1 : NULL;
    return s;
}

static int mask_any(const uint8_t *m, size_t n) {
    if (!m) return 0;
    for (size_t i = 0; i < n; i++)
        if (m[i]) return 1;
    return 0;
}

jstr *jstr_new(jctx *ctx, const char *src, size_t len, const uint8_t *mask) {
    int marked = mask_any(mask, len);
    jstr *s = jstr_alloc(ctx, len, marked);
    if (!s) return NULL;
    if (len) memcpy(s->s, src, len);
    if (marked) memcpy(s->mask, mask, len);
    if (ju_is_ascii(s->s, len)) s->h.flags |= JS_ASCII;
    return s;
}

jstr *jstr_cstr(jctx *ctx, const char *s) { return jstr_new(ctx, s, strlen(s), NULL); }

jstr *jstr_sub(jctx *ctx, const jstr *s, size_t a, size_t b) {
    if (a > s->len) a = s->len;
    if (b > s->len) b = s->len;
    if (b < a) b = a;
    return jstr_new(ctx, s->s + a, b - a, s->mask ? s->mask + a : NULL);
}

jval jv_str_new(jctx *ctx, const char *s, size_t len) {
    jstr *r = jstr_new(ctx, s, len, NULL);
    return r ? jv_obj(JV_STR, r) : jv_undef();
}

static int jsb_grow(jctx *ctx, jsb *b, size_t n) {
    if (n > ctx->max_output || b->len > ctx->max_output - n)
        return jfail(ctx, RM_ERR_LIMIT, "rendered text exceeds the output bound of %zu bytes", ctx->max_output);
    size_t need = b->len + n + 1;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    char *s = rm_realloc(b->s, cap);
    if (!s) return jfail_nomem(ctx);
    b->s = s;
    if (b->m) {
        uint8_t *m = rm_realloc(b->m, cap);
        if (!m) return jfail_nomem(ctx);
        b->m = m;
    }
    b->cap = cap;
    return 0;
}

static int jsb_start_mask(jctx *ctx, jsb *b) {
    b->m = rm_malloc(b->cap ? b->cap : 1);
    if (!b->m) return jfail_nomem(ctx);
    if (b->len) memset(b->m, 0, b->len);
    return 0;
}

int jsb_put(jctx *ctx, jsb *b, const char *s, size_t n, const uint8_t *mask) {
    if (jsb_grow(ctx, b, n) != 0) return 0;
    if (mask && !b->m && mask_any(mask, n) && jsb_start_mask(ctx, b) != 0) return 0;
    if (n) memcpy(b->s + b->len, s, n);
    if (b->m) {
        if (mask) memcpy(b->m + b->len, mask, n);
        else memset(b->m + b->len, 0, n);
    }
    b->len += n;
    b->s[b->len] = 0;
    return 1;
}

int jsb_putmark(jctx *ctx, jsb *b, const char *s, size_t n, int mark) {
    if (jsb_grow(ctx, b, n) != 0) return 0;
    if (mark && n && !b->m && jsb_start_mask(ctx, b) != 0) return 0;
    if (n) memcpy(b->s + b->len, s, n);
    if (b->m) memset(b->m + b->len, mark ? 1 : 0, n);
    b->len += n;
    b->s[b->len] = 0;
    return 1;
}

jstr *jsb_finish(jctx *ctx, jsb *b) {
    jstr *s = jstr_new(ctx, b->s ? b->s : "", b->len, b->m);
    jsb_free(b);
    return s;
}

void jsb_free(jsb *b) {
    rm_mfree(b->s);
    rm_mfree(b->m);
    memset(b, 0, sizeof *b);
}

/* ---------------------------------------------------------------- containers */

jlist *jlist_new(jctx *ctx, size_t cap, int flavour) {
    jlist *l = obj_alloc(ctx, sizeof(jlist), JV_LIST);
    if (!l) return NULL;
    ctx->steps += (int64_t)(cap >> 4);   /* building lists is work too */
    l->h.flags = (uint8_t)flavour;
    if (cap) {
        if (mem_charge(ctx, cap * sizeof(jval)) != 0) return NULL;
        l->v = rm_malloc(cap * sizeof(jval));
        if (!l->v) { jfail_nomem(ctx); return NULL; }
        l->cap = cap;
    }
    return l;
}

int jlist_push(jctx *ctx, jlist *l, jval v) {
    ctx->steps += (l->len & 15) == 0;
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        if (cap > (SIZE_MAX / 2) / sizeof(jval)) { jv_release(ctx, v); return jfail_nomem(ctx); }
        if (mem_charge(ctx, (cap - l->cap) * sizeof(jval)) != 0) { jv_release(ctx, v); return -1; }
        jval *nv = rm_realloc(l->v, cap * sizeof(jval));
        if (!nv) { ctx->mem_live -= (cap - l->cap) * sizeof(jval); jv_release(ctx, v); return jfail_nomem(ctx); }
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->len++] = v;
    return 0;
}

jdict *jdict_new(jctx *ctx, jkind kind) { return obj_alloc(ctx, sizeof(jdict), kind); }

/* Python's hash equivalence for keys: numbers by value (1 == 1.0 == True). */
static uint64_t key_hash(jval k) {
    switch (k.kind) {
    case JV_STR: {
        const jstr *s = jv_str(k);
        uint64_t h = 1469598103934665603ULL;
        for (size_t i = 0; i < s->len; i++) h = (h ^ (unsigned char)s->s[i]) * 1099511628211ULL;
        return h;
    }
    case JV_BOOL:
    case JV_INT: return (uint64_t)k.u.i * 0x9E3779B97F4A7C15ULL;
    case JV_FLOAT:
        if (k.u.f == floor(k.u.f) && fabs(k.u.f) < 9e18) return (uint64_t)(int64_t)k.u.f * 0x9E3779B97F4A7C15ULL;
        {
            uint64_t bits;
            memcpy(&bits, &k.u.f, 8);
            return bits * 0x9E3779B97F4A7C15ULL;
        }
    case JV_NONE: return 0x5bd1e995;
    default: return (uint64_t)(uintptr_t)k.u.o * 0x9E3779B97F4A7C15ULL;
    }
}

static int key_eq(jval a, jval b) {
    if (a.kind == JV_STR && b.kind == JV_STR) return jstr_eq(jv_str(a), jv_str(b));
    if (jv_is_number(a) && jv_is_number(b)) {
        double x = a.kind == JV_FLOAT ? a.u.f : (double)a.u.i, y = b.kind == JV_FLOAT ? b.u.f : (double)b.u.i;
        if (a.kind != JV_FLOAT && b.kind != JV_FLOAT) return a.u.i == b.u.i;
        return x == y;
    }
    if (a.kind != b.kind) return 0;
    if (a.kind == JV_NONE || a.kind == JV_UNDEF) return 1;
    if (a.kind == JV_LIST) {
        const jlist *x = jv_list(a), *y = jv_list(b);
        if (x->len != y->len || x->h.flags != y->h.flags) return 0;
        for (size_t i = 0; i < x->len; i++)
            if (!key_eq(x->v[i], y->v[i])) return 0;
        return 1;
    }
    if (a.kind == JV_FUNC) return a.u.i == b.u.i;
    return a.u.o == b.u.o;
}

#define INDEX_FROM 8

static int index_build(jctx *ctx, jdict *d) {
    size_t cap = 16;
    while (cap < d->cap * 2) cap *= 2;
    if (mem_charge(ctx, cap * sizeof(uint32_t)) != 0) return -1;
    uint32_t *idx = rm_calloc(cap, sizeof(uint32_t));
    if (!idx) { ctx->mem_live -= cap * sizeof(uint32_t); return jfail_nomem(ctx); }
    for (size_t i = 0; i < d->len; i++) {
        size_t h = key_hash(d->k[i]) & (cap - 1);
        while (idx[h]) h = (h + 1) & (cap - 1);
        idx[h] = (uint32_t)i + 1;
    }
    if (d->index) {
        rm_mfree(d->index);
        ctx->mem_live -= d->index_cap * sizeof(uint32_t);
    }
    d->index = idx;
    d->index_cap = cap;
    return 0;
}

long jdict_find(const jdict *d, jval key) {
    if (d->index) {
        size_t h = key_hash(key) & (d->index_cap - 1);
        while (d->index[h]) {
            size_t i = d->index[h] - 1;
            if (key_eq(d->k[i], key)) return (long)i;
            h = (h + 1) & (d->index_cap - 1);
        }
        return -1;
    }
    for (size_t i = 0; i < d->len; i++)
        if (key_eq(d->k[i], key)) return (long)i;
    return -1;
}

long jdict_find_str(const jdict *d, const char *s, size_t len) {
    jstr tmp = {0};
    tmp.h.kind = JV_STR;
    tmp.s = (char *)s;
    tmp.len = len;
    return jdict_find(d, jv_obj(JV_STR, &tmp));
}

int jdict_set(jctx *ctx, jdict *d, jval key, jval val) {
    long i = jdict_find(d, key);
    if (i >= 0) {
        jv_release(ctx, key);         /* Python keeps the first key: {1: 'a', true: 'b'} is {1: 'b'} */
        jv_release(ctx, d->v[i]);
        d->v[i] = val;
        return 0;
    }
    if (d->len == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        if (mem_charge(ctx, (cap - d->cap) * 2 * sizeof(jval)) != 0) goto fail;
        jval *k = rm_realloc(d->k, cap * sizeof(jval));
        if (!k) goto nomem;
        d->k = k;
        jval *v = rm_realloc(d->v, cap * sizeof(jval));
        if (!v) goto nomem;
        d->v = v;
        d->cap = cap;
        if (cap >= INDEX_FROM && index_build(ctx, d) != 0) goto fail;
    }
    d->k[d->len] = key;
    d->v[d->len] = val;
    if (d->index) {
        size_t h = key_hash(key) & (d->index_cap - 1);
        while (d->index[h]) h = (h + 1) & (d->index_cap - 1);
        d->index[h] = (uint32_t)d->len + 1;
    }
    d->len++;
    return 0;
nomem:
    jfail_nomem(ctx);
fail:
    jv_release(ctx, key);
    jv_release(ctx, val);
    return -1;
}

jmacro *jmacro_new(jctx *ctx, const jnode *def, jscope *closure) {
    jmacro *m = obj_alloc(ctx, sizeof(jmacro), JV_MACRO);
    if (!m) return NULL;
    m->def = def;
    m->closure = closure;
    if (closure) closure->h.rc++;
    m->caller = jv_undef();
    return m;
}

jloop *jloop_new(jctx *ctx, jlist *items, int depth) {
    jloop *l = obj_alloc(ctx, sizeof(jloop), JV_LOOP);
    if (!l) return NULL;
    l->items = items;
    items->h.rc++;
    l->depth = depth;
    l->last_changed = jv_undef();
    return l;
}

jmethod *jmethod_new(jctx *ctx, jval self, int id) {
    jmethod *m = obj_alloc(ctx, sizeof(jmethod), JV_METHOD);
    if (!m) return NULL;
    m->self = jv_retain(self);
    m->id = id;
    return m;
}

jscope *jscope_new(jctx *ctx, jscope *parent) {
    jscope *s = obj_alloc(ctx, sizeof(jscope), JV_SCOPE);
    if (!s) return NULL;
    s->parent = parent;
    if (parent) parent->h.rc++;
    return s;
}

/* ---------------------------------------------------------------- truth, ==, < */

int jv_hashable(jval v) {
    if (v.kind == JV_DICT) return 0;
    if (v.kind != JV_LIST) return 1;
    int f = jv_list(v)->h.flags;
    return !(f == JL_LIST || f == JL_ITEMS || f == JL_KEYS);
}

int jv_truthy(jval v) {
    switch (v.kind) {
    case JV_UNDEF:
    case JV_NONE: return 0;
    case JV_BOOL:
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0.0;
    case JV_STR: return jv_str(v)->len != 0;
    case JV_LIST: return JL_IS_ITER(jv_list(v)->h.flags) ? 1 : jv_list(v)->len != 0;
    case JV_DICT: return jv_dict(v)->len != 0;
    default: return 1;
    }
}

static int eq_depth(jctx *ctx, jval a, jval b, int depth) {
    if (depth > VALUE_NEST_MAX) return jfail(ctx, RM_ERR_LIMIT, "values nested more than %d deep", VALUE_NEST_MAX), 0;
    if (jv_is_number(a) && jv_is_number(b)) return key_eq(a, b);
    if (a.kind != b.kind) return 0;
    switch (a.kind) {
    case JV_STR: return jstr_eq(jv_str(a), jv_str(b));
    case JV_LIST: {
        const jlist *x = jv_list(a), *y = jv_list(b);
        if (x == y) return 1;
        ctx->steps += (int64_t)(x->len >> 4);   /* comparing is work: checked at the next call */
        int fx = x->h.flags, fy = y->h.flags;
        if (JL_IS_ITER(fx) || JL_IS_ITER(fy) || fx != fy) return 0;
        if (x->len != y->len) return 0;
        for (size_t i = 0; i < x->len; i++)
            if (!eq_depth(ctx, x->v[i], y->v[i], depth + 1)) return 0;
        return 1;
    }
    case JV_DICT: {
        const jdict *x = jv_dict(a), *y = jv_dict(b);
        if (x == y) return 1;
        if (x->len != y->len) return 0;
        for (size_t i = 0; i < x->len; i++) {
            long j = jdict_find(y, x->k[i]);
            if (j < 0 || !eq_depth(ctx, x->v[i], y->v[j], depth + 1)) return 0;
        }
        return 1;
    }
    default: return key_eq(a, b);
    }
}

int jv_eq(jctx *ctx, jval a, jval b) { return eq_depth(ctx, a, b, 0); }

static double num(jval v) { return v.kind == JV_FLOAT ? v.u.f : (double)v.u.i; }

/* Three-way order: *c in {-1, 0, 1}, 2 when unordered (NaN). -1 return: TypeError. */
static int ordering(jctx *ctx, jval a, jval b, int *c, int depth) {
    if (depth > VALUE_NEST_MAX) return jfail(ctx, RM_ERR_LIMIT, "values nested more than %d deep", VALUE_NEST_MAX);
    if (jv_is_number(a) && jv_is_number(b)) {
        if (a.kind != JV_FLOAT && b.kind != JV_FLOAT) *c = a.u.i < b.u.i ? -1 : a.u.i > b.u.i;
        else {
            double x = num(a), y = num(b);
            *c = isnan(x) || isnan(y) ? 2 : x < y ? -1 : x > y;
        }
        return 0;
    }
    if (a.kind == JV_STR && b.kind == JV_STR) {
        const jstr *x = jv_str(a), *y = jv_str(b);
        size_t n = x->len < y->len ? x->len : y->len;
        int r = memcmp(x->s, y->s, n);
        *c = r < 0 ? -1 : r > 0 ? 1 : x->len < y->len ? -1 : x->len > y->len;
        return 0;
    }
    if (a.kind == JV_LIST && b.kind == JV_LIST) {
        const jlist *x = jv_list(a), *y = jv_list(b);
        int fx = x->h.flags, fy = y->h.flags;
        if ((fx == JL_LIST || fx == JL_TUPLE) && fx == fy) {
            for (size_t i = 0; i < x->len && i < y->len; i++) {
                int e = eq_depth(ctx, x->v[i], y->v[i], depth + 1);
                if (ctx->failed) return -1;
                if (!e) return ordering(ctx, x->v[i], y->v[i], c, depth + 1);
            }
            *c = x->len < y->len ? -1 : x->len > y->len;
            return 0;
        }
    }
    return -1;
}

int jv_lt(jctx *ctx, jval a, jval b, int *lt) {
    int c;
    if (ordering(ctx, a, b, &c, 0) != 0) {
        if (!ctx->failed)
            jfail(ctx, RM_ERR_TEMPLATE, "TypeError: '<' not supported between instances of '%s' and '%s'",
                  jv_type_name(a), jv_type_name(b));
        return -1;
    }
    *lt = c == -1;
    return 0;
}

int jv_compare(jctx *ctx, int op, jval a, jval b, int *out) {
    int c;
    if (ordering(ctx, a, b, &c, 0) != 0) {
        static const char *const names[] = {[OP_LT] = "<", [OP_LTEQ] = "<=", [OP_GT] = ">", [OP_GTEQ] = ">="};
        if (!ctx->failed)
            jfail(ctx, RM_ERR_TEMPLATE, "TypeError: '%s' not supported between instances of '%s' and '%s'",
                  names[op], jv_type_name(a), jv_type_name(b));
        return -1;
    }
    switch (op) {
    case OP_LT: *out = c == -1; break;
    case OP_LTEQ: *out = c == -1 || c == 0; break;
    case OP_GT: *out = c == 1; break;
    default: *out = c == 1 || c == 0; break;
    }
    return 0;
}

/* ---------------------------------------------------------------- str() and repr() */

void py_float_repr(double x, char *out, size_t cap) {
    if (isnan(x)) { snprintf(out, cap, "nan"); return; }
    if (isinf(x)) { snprintf(out, cap, x < 0 ? "-inf" : "inf"); return; }
    if (x == 0) { snprintf(out, cap, signbit(x) ? "-0.0" : "0.0"); return; }
    char buf[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, sizeof buf, "%.*e", p - 1, x);
        if (strtod(buf, NULL) == x) break;
    }
    /* buf: [-]d[.ddd]e[+-]XX -> digits and decimal exponent */
    const char *p = buf;
    int neg = 0;
    if (*p == '-') { neg = 1; p++; }
    char digits[24];
    int nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < 20) digits[nd++] = *p;
    int e10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    int decpt = e10 + 1;  /* value = 0.digits * 10^decpt */
    char res[64];
    size_t r = 0;
    if (neg) res[r++] = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            res[r++] = '0';
            res[r++] = '.';
            for (int i = 0; i < -decpt; i++) res[r++] = '0';
            for (int i = 0; i < nd; i++) res[r++] = digits[i];
        } else if (decpt >= nd) {
            for (int i = 0; i < nd; i++) res[r++] = digits[i];
            for (int i = nd; i < decpt; i++) res[r++] = '0';
            res[r++] = '.';
            res[r++] = '0';
        } else {
            for (int i = 0; i < decpt; i++) res[r++] = digits[i];
            res[r++] = '.';
            for (int i = decpt; i < nd; i++) res[r++] = digits[i];
        }
        res[r] = 0;
    } else {
        res[r++] = digits[0];
        if (nd > 1) {
            res[r++] = '.';
            for (int i = 1; i < nd; i++) res[r++] = digits[i];
        }
        res[r] = 0;
        int e = decpt - 1;
        snprintf(res + r, sizeof res - r, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
    snprintf(out, cap, "%s", res);
}

/* repr() of a str: Python's quoting and escapes; marked bytes stay marked. */
static int write_str_repr(jctx *ctx, jsb *b, const jstr *s) {
    int has_sq = memchr(s->s, '\'', s->len) != NULL, has_dq = memchr(s->s, '"', s->len) != NULL;
    char quote = has_sq && !has_dq ? '"' : '\'';
    if (!jsb_put(ctx, b, &quote, 1, NULL)) return -1;
    size_t i = 0;
    while (i < s->len) {
        uint32_t cp;
        size_t n = ju_decode(s->s, s->len, i, &cp);
        int mark = s->mask && s->mask[i];
        char esc[16];
        const char *piece = s->s + i;
        size_t plen = n;
        if (cp == (uint32_t)quote || cp == '\\') { esc[0] = '\\'; esc[1] = (char)cp; piece = esc; plen = 2; }
        else if (cp == '\t') { piece = "\\t"; plen = 2; }
        else if (cp == '\n') { piece = "\\n"; plen = 2; }
        else if (cp == '\r') { piece = "\\r"; plen = 2; }
        else if (!ju_isprintable(cp)) {
            if (cp < 0x100) snprintf(esc, sizeof esc, "\\x%02x", cp);
            else if (cp < 0x10000) snprintf(esc, sizeof esc, "\\u%04x", cp);
            else snprintf(esc, sizeof esc, "\\U%08x", cp);
            piece = esc;
            plen = strlen(esc);
        }
        if (!jsb_putmark(ctx, b, piece, plen, mark)) return -1;
        i += n;
    }
    return jsb_put(ctx, b, &quote, 1, NULL) ? 0 : -1;
}

static int write_value(jctx *ctx, jsb *b, jval v, int repr, int depth);

static int write_items(jctx *ctx, jsb *b, const jlist *l, int depth) {
    for (size_t i = 0; i < l->len; i++) {
        if (i && !jsb_cstr(ctx, b, ", ")) return -1;
        if (write_value(ctx, b, l->v[i], 1, depth + 1) != 0) return -1;
    }
    return 0;
}

static int write_dict_body(jctx *ctx, jsb *b, const jdict *d, int depth) {
    if (!jsb_cstr(ctx, b, "{")) return -1;
    for (size_t i = 0; i < d->len; i++) {
        if (i && !jsb_cstr(ctx, b, ", ")) return -1;
        if (write_value(ctx, b, d->k[i], 1, depth + 1) != 0 || !jsb_cstr(ctx, b, ": ") ||
            write_value(ctx, b, d->v[i], 1, depth + 1) != 0)
            return -1;
    }
    return jsb_cstr(ctx, b, "}") ? 0 : -1;
}

static int write_value(jctx *ctx, jsb *b, jval v, int repr, int depth) {
    char buf[128];
    if (depth > VALUE_NEST_MAX) return jfail(ctx, RM_ERR_LIMIT, "values nested more than %d deep", VALUE_NEST_MAX);
    switch (v.kind) {
    case JV_UNDEF: return repr && !jsb_cstr(ctx, b, "Undefined") ? -1 : 0;
    case JV_NONE: return jsb_cstr(ctx, b, "None") ? 0 : -1;
    case JV_BOOL: return jsb_cstr(ctx, b, v.u.i ? "True" : "False") ? 0 : -1;
    case JV_INT:
        snprintf(buf, sizeof buf, "%" PRId64, v.u.i);
        return jsb_cstr(ctx, b, buf) ? 0 : -1;
    case JV_FLOAT:
        py_float_repr(v.u.f, buf, sizeof buf);
        return jsb_cstr(ctx, b, buf) ? 0 : -1;
    case JV_STR:
        if (repr) return write_str_repr(ctx, b, jv_str(v));
        return jsb_str(ctx, b, jv_str(v)) ? 0 : -1;
    case JV_LIST: {
        const jlist *l = jv_list(v);
        switch (l->h.flags) {
        case JL_LIST:
            if (!jsb_cstr(ctx, b, "[") || write_items(ctx, b, l, depth) != 0 || !jsb_cstr(ctx, b, "]")) return -1;
            return 0;
        case JL_TUPLE:
            if (!jsb_cstr(ctx, b, "(") || write_items(ctx, b, l, depth) != 0) return -1;
            return jsb_cstr(ctx, b, l->len == 1 ? ",)" : ")") ? 0 : -1;
        case JL_RANGE:
            if (l->r_step == 1) snprintf(buf, sizeof buf, "range(%lld, %lld)", (long long)l->r_start, (long long)l->r_stop);
            else snprintf(buf, sizeof buf, "range(%lld, %lld, %lld)", (long long)l->r_start, (long long)l->r_stop,
                          (long long)l->r_step);
            return jsb_cstr(ctx, b, buf) ? 0 : -1;
        case JL_ITEMS:
        case JL_KEYS:
        case JL_VALUES:
            snprintf(buf, sizeof buf, "%s([", jv_type_name(v));
            if (!jsb_cstr(ctx, b, buf) || write_items(ctx, b, l, depth) != 0 || !jsb_cstr(ctx, b, "])")) return -1;
            return 0;
        default:
            /* Python prints an address here; a prompt must not carry a heap
             * address (irreproducible, and it leaks the layout). */
            (void)l;
            snprintf(buf, sizeof buf, "<%s object>", jv_type_name(v));
            return jsb_cstr(ctx, b, buf) ? 0 : -1;
        }
    }
    case JV_DICT: return write_dict_body(ctx, b, jv_dict(v), depth);
    case JV_NS:
        if (!jsb_cstr(ctx, b, "<Namespace ") || write_dict_body(ctx, b, jv_dict(v), depth) != 0) return -1;
        return jsb_cstr(ctx, b, ">") ? 0 : -1;
    case JV_MACRO: {
        const jmacro *m = (const jmacro *)v.u.o;
        const jstr *name = m->def->kind == N_MACRO ? ctx->t->syms[m->def->sym] : NULL;
        snprintf(buf, sizeof buf, "<Macro '%.*s'>", name ? (int)name->len : 6, name ? name->s : "caller");
        return jsb_cstr(ctx, b, buf) ? 0 : -1;
    }
    case JV_LOOP: {
        const jloop *l = (const jloop *)v.u.o;
        snprintf(buf, sizeof buf, "<LoopContext %zu/%zu>", l->index + 1, l->items->len);
        return jsb_cstr(ctx, b, buf) ? 0 : -1;
    }
    case JV_METHOD: {
        const jmethod *m = (const jmethod *)v.u.o;
        snprintf(buf, sizeof buf, "<built-in method %s of %s object>", jmethod_name(m->id),
                 jv_type_name(m->self));   /* no address: see above */
        return jsb_cstr(ctx, b, buf) ? 0 : -1;
    }
    case JV_FUNC: {
        static const char *const names[] = {"<class 'range'>", "<class 'jinja2.utils.Namespace'>", "<class 'dict'>",
                                            "<function raise_exception>", "<function strftime_now>",
                                            "<function generate_lorem_ipsum>", "<class 'jinja2.utils.Cycler'>",
                                            "<class 'jinja2.utils.Joiner'>"};
        int id = (int)v.u.i - SYM_FIRST_GLOBAL;
        return jsb_cstr(ctx, b, id >= 0 && id < 8 ? names[id] : "<function>") ? 0 : -1;
    }
    default: return jsb_cstr(ctx, b, "<object>") ? 0 : -1;
    }
}

int jv_write(jctx *ctx, jsb *b, jval v, int repr) { return write_value(ctx, b, v, repr, 0); }

jstr *jv_to_str(jctx *ctx, jval v) {
    if (v.kind == JV_STR) {
        jv_retain(v);
        return jv_str(v);
    }
    jsb b = {0};
    if (jv_write(ctx, &b, v, 0) != 0) {
        jsb_free(&b);
        return NULL;
    }
    return jsb_finish(ctx, &b);
}
