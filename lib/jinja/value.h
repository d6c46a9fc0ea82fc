/*
 * value.h - the values a template computes with, modelled on the Python
 * objects Jinja2 hands around: undefined, None, bool, int, float, str,
 * list/tuple (and the iterators and dict views that print and behave
 * differently), dict, namespace, macro, loop, bound method, global function.
 *
 * A jval is 16 bytes passed by value. Heap objects carry a reference count
 * and sit on the render's heap list, so anything still alive when a render
 * ends (cycles through namespaces or macro closures, values dropped on an
 * error path) is swept in one go. Objects built at parse time (string
 * literals) are immortal: their count is negative and never changes, which
 * keeps one parsed template safe to render from many threads.
 *
 * A string is bytes plus an optional per-byte mask (NULL = nothing marked);
 * the mask records which bytes came from message data and follows the bytes
 * through every string operation.
 */
#ifndef RM_JINJA_VALUE_H
#define RM_JINJA_VALUE_H

#include "common.h"
#include "jinja/unicode.h"

typedef struct jctx jctx;
typedef struct jnode jnode;

typedef enum jkind {
    JV_UNDEF = 0, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT,
    JV_FUNC,      /* a global function (range, namespace, ...); u.i = its id */
    /* kinds below hold a heap object in u.o */
    JV_STR, JV_LIST, JV_DICT, JV_NS, JV_MACRO, JV_LOOP, JV_METHOD, JV_SCOPE
} jkind;

/* Why a value is undefined, for the message Jinja would give when it is used. */
enum {
    UNDEF_NAME = 0,   /* 'x' is undefined (u.o = name or NULL) */
    UNDEF_ATTR,       /* 'dict object' has no attribute 'x' (extra = owner kind) */
    UNDEF_ELEMENT,    /* list object has no element 3 */
    UNDEF_HINT,       /* u.o is the whole message */
    UNDEF_UNSAFE      /* an unsafe attribute: calling it is a SecurityError (message in u.o) */
};

typedef struct jobj {
    int32_t rc;               /* < 0: immortal */
    uint8_t kind;             /* jkind */
    uint8_t flags;
    struct jobj *prev, *next; /* the render's heap list */
} jobj;

typedef struct jval {
    uint8_t kind;
    uint8_t sub;              /* UNDEF_*; for lists see JL_* in jlist flags */
    int16_t extra;
    union { int64_t i; double f; jobj *o; } u;
} jval;

/* String flags */
#define JS_ASCII 1            /* every byte < 0x80: code point index == byte index */
#define JS_MARKUP 2           /* a Markup (escape / safe): not escaped again */

typedef struct jstr {
    jobj h;
    size_t len;
    char *s;                  /* NUL-terminated */
    uint8_t *mask;            /* len bytes or NULL */
} jstr;

/* List flavours (jobj.flags): how Python would print / measure them. */
enum {
    JL_LIST = 0, JL_TUPLE,
    JL_RANGE,                 /* range(): a sequence that prints as range(a, b) */
    JL_GEN,                   /* generator / iterator: always true, no len, no index */
    JL_REVITER,               /* list_reverseiterator (reverse filter) */
    JL_ITEMITER,              /* dict_itemiterator (items filter) */
    JL_ITEMS, JL_KEYS, JL_VALUES /* dict views: len and truth by size, no index */
};
#define JL_IS_ITER(f) ((f) == JL_GEN || (f) == JL_REVITER || (f) == JL_ITEMITER)
#define JL_IS_VIEW(f) ((f) >= JL_ITEMS)

typedef struct jlist {
    jobj h;
    size_t len, cap;
    jval *v;
    int consumed;             /* iterators: already iterated once */
    int group;                /* a (grouper, list) pair made by groupby */
    int64_t r_start, r_stop, r_step; /* JL_RANGE */
} jlist;
/* An ordered sequence that can be indexed: list, tuple, range. */
#define JL_IS_SEQ(f) ((f) <= JL_RANGE)

typedef struct jdict {        /* also a namespace's attributes (kind JV_NS) */
    jobj h;
    size_t len, cap;
    jval *k, *v;
    uint32_t *index;          /* open addressing over k, built past a few entries */
    size_t index_cap;
} jdict;

typedef struct jscope jscope;
typedef struct jmacro {
    jobj h;
    const jnode *def;         /* N_MACRO or N_CALLBLOCK */
    jscope *closure;
    jval caller;              /* the caller passed to a call block's macro */
} jmacro;

typedef struct jloop {
    jobj h;
    jlist *items;
    size_t index;             /* index0 of the current item */
    int depth;                /* 1-based */
    jval last_changed;        /* loop.changed() */
    int have_changed;
    const jnode *node;        /* recursive loops: the N_FOR to re-enter */
    jscope *scope;            /* ... and the scope it runs in */
} jloop;

typedef struct jmethod {
    jobj h;
    jval self;
    int id;                   /* method id (methods.c) */
} jmethod;

struct jscope {
    jobj h;
    jscope *parent;
    size_t n, cap;
    int *sym;
    jval *v;
};

/* ---------------------------------------------------------------- scalars */

static inline jval jv_undef(void) { jval v = {0}; v.kind = JV_UNDEF; return v; }
static inline jval jv_none(void) { jval v = {0}; v.kind = JV_NONE; return v; }
static inline jval jv_bool(int b) { jval v = {0}; v.kind = JV_BOOL; v.u.i = b != 0; return v; }
static inline jval jv_int(int64_t i) { jval v = {0}; v.kind = JV_INT; v.u.i = i; return v; }
static inline jval jv_float(double f) { jval v = {0}; v.kind = JV_FLOAT; v.u.f = f; return v; }
static inline jval jv_obj(jkind kind, void *o) { jval v = {0}; v.kind = (uint8_t)kind; v.u.o = o; return v; }
static inline int jv_isheap(jval v) { return v.kind >= JV_STR || (v.kind == JV_UNDEF && v.u.o); }
static inline jstr *jv_str(jval v) { return (jstr *)v.u.o; }
static inline jlist *jv_list(jval v) { return (jlist *)v.u.o; }
static inline jdict *jv_dict(jval v) { return (jdict *)v.u.o; }
static inline int jv_is_number(jval v) { return v.kind == JV_INT || v.kind == JV_FLOAT || v.kind == JV_BOOL; }

/* ---------------------------------------------------------------- heap */

static inline jval jv_retain(jval v) {
    if (jv_isheap(v) && v.u.o->rc >= 0) v.u.o->rc++;
    return v;
}
void jv_release(jctx *ctx, jval v);
void jobj_release(jctx *ctx, jobj *o);
/* Frees every object still on the heap list (end of a render). */
void jheap_sweep(jctx *ctx);

/* Undefined values with their reason (name may be NULL). */
jval jv_undef_name(jctx *ctx, jstr *name);
jval jv_undef_attr(jctx *ctx, jval owner, jstr *name);
jval jv_undef_element(jctx *ctx, jval owner, jval key);
jval jv_undef_hint(jctx *ctx, const char *msg);
jval jv_undef_unsafe(jctx *ctx, jval owner, const char *attr);
/* The message Jinja gives when an undefined value is used. */
void jv_undef_message(jval v, char *buf, size_t cap);

/* ---------------------------------------------------------------- strings */

/* A new string (mask may be NULL; an all-zero mask is dropped). NULL on failure
 * (the error is in ctx). */
jstr *jstr_new(jctx *ctx, const char *s, size_t len, const uint8_t *mask);
jstr *jstr_cstr(jctx *ctx, const char *s);
/* Sub-range [a, b) in bytes, mask kept. */
jstr *jstr_sub(jctx *ctx, const jstr *s, size_t a, size_t b);
jval jv_str_new(jctx *ctx, const char *s, size_t len); /* kind JV_UNDEF with ctx failed on error */
static inline size_t jstr_cplen(const jstr *s) {
    return (s->h.flags & JS_ASCII) ? s->len : ju_count(s->s, s->len);
}
static inline int jstr_eq(const jstr *a, const jstr *b) {
    return a->len == b->len && (a == b || __builtin_memcmp(a->s, b->s, a->len) == 0);
}
static inline int jstr_is(const jstr *a, const char *lit) {
    size_t n = __builtin_strlen(lit);
    return a->len == n && __builtin_memcmp(a->s, lit, n) == 0;
}

/* A growable string with a lazily allocated mask: the output of a render,
 * of a macro call, and the builder behind every string operation. */
typedef struct jsb {
    char *s;
    uint8_t *m;               /* NULL until a marked byte arrives */
    size_t len, cap;
} jsb;
int jsb_put(jctx *ctx, jsb *b, const char *s, size_t n, const uint8_t *mask); /* 0 on failure */
int jsb_putmark(jctx *ctx, jsb *b, const char *s, size_t n, int mark);
static inline int jsb_cstr(jctx *ctx, jsb *b, const char *s) { return jsb_put(ctx, b, s, __builtin_strlen(s), NULL); }
static inline int jsb_str(jctx *ctx, jsb *b, const jstr *s) { return jsb_put(ctx, b, s->s, s->len, s->mask); }
jstr *jsb_finish(jctx *ctx, jsb *b);        /* hands the bytes to a new string; b is emptied */
void jsb_free(jsb *b);

/* ---------------------------------------------------------------- containers */

jlist *jlist_new(jctx *ctx, size_t cap, int flavour);
int jlist_push(jctx *ctx, jlist *l, jval v);         /* takes ownership of v */
jdict *jdict_new(jctx *ctx, jkind kind);              /* JV_DICT or JV_NS */
/* Index of key or -1 (keys compare as Python's dict does: 1 == 1.0 == True). */
long jdict_find(const jdict *d, jval key);
long jdict_find_str(const jdict *d, const char *s, size_t len);
int jdict_set(jctx *ctx, jdict *d, jval key, jval val);  /* takes ownership of both */
jmacro *jmacro_new(jctx *ctx, const jnode *def, jscope *closure);
jloop *jloop_new(jctx *ctx, jlist *items, int depth);
jmethod *jmethod_new(jctx *ctx, jval self, int id);
jscope *jscope_new(jctx *ctx, jscope *parent);

/* ---------------------------------------------------------------- Python semantics */

int jv_truthy(jval v);
/* Python would accept v as a dict key (lists, dicts and dict views it refuses). */
int jv_hashable(jval v);
/* Python ==; depth guards runaway nesting. */
int jv_eq(jctx *ctx, jval a, jval b);
/* Python <: returns 0 and sets *lt, or -1 with a TypeError in ctx. */
int jv_lt(jctx *ctx, jval a, jval b, int *lt);
/* Python <, <=, >, >= (op is OP_LT, OP_LTEQ, OP_GT, OP_GTEQ of ast.h). */
int jv_compare(jctx *ctx, int op, jval a, jval b, int *out);
/* Python's type name ("str", "NoneType", ...). */
const char *jv_type_name(jval v);
/* str(v) appended to b (the way {{ v }} prints, but None is "None"); repr()
 * when repr is set. */
int jv_write(jctx *ctx, jsb *b, jval v, int repr);
/* str(v) as a string value (strings are returned retained, not copied). */
jstr *jv_to_str(jctx *ctx, jval v);
/* Python's repr of a float (shortest round trip, 1e+16, 1.0). */
void py_float_repr(double x, char *out, size_t cap);

#endif
