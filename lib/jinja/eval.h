/*
 * eval.h - the state of one render and the interface between the evaluator
 * (eval.c) and the builtins it calls: filters and tests (filters.c), methods
 * of str/dict/list (methods.c), JSON output (tojson.c).
 *
 * Conventions: functions return 0 on success and -1 on failure, with the
 * error (status and message naming the template line) recorded in the ctx.
 * A jval handed to a caller through `out` is owned by the caller.
 */
#ifndef RM_JINJA_EVAL_H
#define RM_JINJA_EVAL_H

#include "jinja.h"
#include "jinja/ast.h"
#include "jinja/value.h"

struct jctx {
    const rm_template *t;
    rm_err *err;
    int failed;
    int line;                 /* template line being evaluated, for messages */
    jobj heap;                /* sentinel of the list of live heap objects */
    jobj *pending;            /* objects whose count reached zero, freed iteratively */
    int freeing;
    size_t mem_live, mem_limit;
    size_t max_output;
    int64_t steps, max_steps;
    int depth, max_depth;     /* macro calls in progress */
    int nest, max_nest;       /* C recursion of the evaluator */
    int mark;                 /* mark message data */
    jscope *root;
    const char *now;          /* fixed clock or NULL */
    jsb *out;                 /* where output goes now */
};

/* Records an error (first one wins) and returns -1. */
int jfail(jctx *ctx, rm_status status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int jfail_nomem(jctx *ctx);
/* Charges work against max_steps: 1 per call/iteration, plus bytes/256 for
 * the strings and lists built, so a hostile template cannot spin. */
int jctx_work(jctx *ctx, size_t units);
/* The error for using an undefined value (UndefinedError / SecurityError). */
int jfail_undefined(jctx *ctx, jval v);

/* Evaluated call arguments. */
typedef struct jargs {
    size_t n;
    jval *pos;
    size_t nkw;
    const jstr **kname;
    jval *kval;
} jargs;

/* Binds args to named parameters: slot i gets the positional i or the
 * keyword names[i]; have[i] says whether it was given. Too many positionals
 * or an unknown keyword is an error naming `what`. Values are borrowed. */
int jargs_bind(jctx *ctx, const char *what, const jargs *args, const char *const *names, int n_names,
               jval *slots, int *have);

/* Binds sym in scope s itself (not its parents), replacing a value it had.
 * Takes ownership of v, also on failure. */
int jscope_set(jctx *ctx, jscope *s, int sym, jval v);

/* Attribute / item look-up the way the sandboxed environment does it. */
int jgetattr(jctx *ctx, jval obj, const jstr *name, jval *out);
int jgetitem(jctx *ctx, jval obj, jval key, jval *out);
/* Calls any callable value. */
int jcall_value(jctx *ctx, jval callee, const jargs *args, jval *out);
/* Python operators shared with the filters. */
int jbinop(jctx *ctx, int op, jval a, jval b, jval *out);
int jcontains(jctx *ctx, jval container, jval item, int *out);
/* Materialises an iterable into a new list (strings: one string per code
 * point; dicts: keys). Iterators are consumed. Errors for non-iterables. */
int jiterate(jctx *ctx, jval v, jlist **out);
/* Python len(); -1 with an error when v has none. */
int jlen(jctx *ctx, jval v, int64_t *out);

/* filters.c */
int jfilter_call(jctx *ctx, int id, const jstr *name, jval value, const jargs *args, jval *out);
int jtest_call(jctx *ctx, int id, const jstr *name, jval value, const jargs *args, int *out);
int jfilter_call_by_name(jctx *ctx, const jstr *name, jval value, const jargs *args, jval *out);
int jtest_call_by_name(jctx *ctx, const jstr *name, jval value, const jargs *args, int *out);

/* methods.c: the method id of `name` on v's type, or -1. Unsafe (mutating)
 * methods have ids too; calling them is a SecurityError. */
int jmethod_find(jval v, const char *name, size_t len);
int jmethod_is_unsafe(int id);
int jmethod_call(jctx *ctx, jval self, int id, const jargs *args, jval *out);
const char *jmethod_name(int id);
/* str methods the filters reuse */
int jstr_strip(jctx *ctx, const jstr *s, const jstr *chars, int left, int right, jval *out);
int jstr_case(jctx *ctx, const jstr *s, int mode, jval *out); /* 0 lower, 1 upper, 2 capitalize, 3 title(filter) */
int jstr_replace(jctx *ctx, const jstr *s, const jstr *old, const jstr *rep, int64_t count, jval *out);
int jstr_splitlines(jctx *ctx, const jstr *s, int keepends, jlist **out);

/* tojson.c: Python's json.dumps(v, ensure_ascii=..., indent=..., separators=...,
 * sort_keys=...). Bytes of marked strings stay marked in the output. */
typedef struct jjson_opts {
    const jstr *indent;       /* NULL: one line */
    int sort_keys;
    int ensure_ascii;
    const jstr *item_sep;     /* NULL: ", " (one line) or "," (indented) */
    const jstr *key_sep;      /* NULL: ": " */
} jjson_opts;
int jtojson(jctx *ctx, jsb *b, jval v, const jjson_opts *opts);
/* Markup escaping (& < > " ') of str(v); Markup strings are returned as is
 * unless force. */
int jescape(jctx *ctx, jval v, int force, jval *out);

/* eval.c: strftime_now */
int jstrftime_now(jctx *ctx, const jstr *fmt, jval *out);

#endif
