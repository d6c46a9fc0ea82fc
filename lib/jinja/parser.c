/*
 * parser.c - tokens to the node tree, a port of jinja2/parser.py (same
 * grammar, same precedence, same quirks: `-x|f` is `(-x)|f`, `not a is b`
 * is `not (a is b)`, ** is left-associative, adjacent string literals join).
 * After parsing, a check pass refuses what Jinja refuses at compile time:
 * unknown filters and tests outside if-branches, break/continue outside a
 * loop. Statements Jinja has but chat templates have no use for (include,
 * extends, import, block, ...) are refused with a message naming them.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "jinja/ast.h"

/* Nesting of expressions and statements accepted by the parser. CPython's
 * own recursion limit stops Jinja at roughly the same depth. */
#define PARSE_DEPTH_MAX 100
/* Depth of the finished tree (long operator chains and elif ladders nest
 * without recursion in the parser); deeper trees are refused. */
#define CHECK_DEPTH_MAX 1000

/* ---------------------------------------------------------------- arena */

void *jarena_alloc(jarena *a, size_t n) {
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    jarena_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        c = rm_malloc(sizeof(jarena_chunk) + cap);
        if (!c) return NULL;
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *jarena_strndup(jarena *a, const char *s, size_t n) {
    char *d = jarena_alloc(a, n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

void jarena_free(jarena *a) {
    jarena_chunk *c = a->head;
    while (c) {
        jarena_chunk *next = c->next;
        rm_mfree(c);
        c = next;
    }
    a->head = NULL;
}

/* ---------------------------------------------------------------- parser state */

typedef struct parser {
    rm_template *t;
    const jtok *tok;
    size_t n, pos;
    rm_err *err;
    int depth;
    int loop_depth;            /* for bodies enclosing the statement (0 inside macros) */
    uint32_t *sym_index;       /* open addressing over t->syms */
    size_t sym_index_cap;
} parser;

static const char *const builtin_syms[SYM_BUILTIN_COUNT] = {
    "loop", "caller", "varargs", "kwargs", "messages", "add_generation_prompt", "bos_token", "eos_token",
    "tools", "documents", "range", "namespace", "dict", "raise_exception", "strftime_now", "lipsum",
    "cycler", "joiner",
};

static int fail(parser *P, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(parser *P, int line, const char *fmt, ...) {
    if (P->err && P->err->status != RM_OK && P->err->msg[0]) return -1;  /* first error wins */
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rm_fail(P->err, RM_ERR_TEMPLATE, "template line %d: %s", line, msg);
    return -1;
}

static int nomem(parser *P) {
    rm_fail(P->err, RM_ERR_NOMEM, "out of memory parsing the template");
    return -1;
}

static uint64_t name_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static jstr *immortal_str(jarena *a, const char *s, size_t n) {
    jstr *str = jarena_alloc(a, sizeof(jstr) + n + 1);
    if (!str) return NULL;
    str->h.rc = -1;
    str->h.kind = JV_STR;
    str->len = n;
    str->s = (char *)(str + 1);
    memcpy(str->s, s, n);
    str->s[n] = 0;
    int ascii = 1;
    for (size_t i = 0; i < n; i++) ascii &= (unsigned char)s[i] < 0x80;
    if (ascii) str->h.flags |= JS_ASCII;
    return str;
}

static int sym_index_rebuild(rm_template *t, uint32_t **index, size_t *cap_out, size_t want) {
    size_t cap = 64;
    while (cap < want * 2) cap *= 2;
    uint32_t *idx = jarena_alloc(&t->arena, cap * sizeof(uint32_t));
    if (!idx) return -1;
    for (int i = 0; i < t->n_syms; i++) {
        size_t h = name_hash(t->syms[i]->s, t->syms[i]->len) & (cap - 1);
        while (idx[h]) h = (h + 1) & (cap - 1);
        idx[h] = (uint32_t)i + 1;
    }
    *index = idx;
    *cap_out = cap;
    return 0;
}

/* The symbol of a name, added when new. */
static int intern(parser *P, const char *s, size_t n) {
    rm_template *t = P->t;
    if (P->sym_index) {
        size_t h = name_hash(s, n) & (P->sym_index_cap - 1);
        while (P->sym_index[h]) {
            const jstr *x = t->syms[P->sym_index[h] - 1];
            if (x->len == n && memcmp(x->s, s, n) == 0) return (int)P->sym_index[h] - 1;
            h = (h + 1) & (P->sym_index_cap - 1);
        }
    }
    if (t->n_syms == t->cap_syms) {
        int cap = t->cap_syms ? t->cap_syms * 2 : 64;
        jstr **syms = jarena_alloc(&t->arena, (size_t)cap * sizeof(jstr *));
        if (!syms) return nomem(P);
        if (t->n_syms) memcpy(syms, t->syms, (size_t)t->n_syms * sizeof(jstr *));
        t->syms = syms;
        t->cap_syms = cap;
    }
    jstr *name = immortal_str(&t->arena, s, n);
    if (!name) return nomem(P);
    t->syms[t->n_syms++] = name;
    if ((size_t)t->n_syms * 2 > P->sym_index_cap) {
        if (sym_index_rebuild(t, &P->sym_index, &P->sym_index_cap, (size_t)t->n_syms) != 0) return nomem(P);
    } else {
        size_t h = name_hash(s, n) & (P->sym_index_cap - 1);
        while (P->sym_index[h]) h = (h + 1) & (P->sym_index_cap - 1);
        P->sym_index[h] = (uint32_t)t->n_syms;
    }
    return t->n_syms - 1;
}

int jsym_find(const rm_template *t, const char *name, size_t len) {
    for (int i = 0; i < t->n_syms; i++)
        if (t->syms[i]->len == len && memcmp(t->syms[i]->s, name, len) == 0) return i;
    return -1;
}

/* ---------------------------------------------------------------- token helpers */

static const jtok *cur(parser *P) { return &P->tok[P->pos]; }
static const jtok *peek(parser *P, size_t k) {
    size_t i = P->pos + k;
    return &P->tok[i < P->n ? i : P->n - 1];
}
static const jtok *next_tok(parser *P) {
    const jtok *t = &P->tok[P->pos];
    if (P->pos + 1 < P->n) P->pos++;
    return t;
}
static int is_name(const jtok *t, const char *name) {
    return t->kind == T_NAME && t->len == strlen(name) && memcmp(t->s, name, t->len) == 0;
}
static int is_op(const jtok *t, jop op) { return t->kind == T_OP && t->op == op; }

static const char *op_text(int op) {
    static const char *const text[] = {"+", "-", "/", "//", "*", "%", "**", "~", "[", "]", "(", ")", "{", "}",
                                       "==", "!=", ">", ">=", "<", "<=", "=", ".", ":", "|", ",", ";"};
    return op >= 0 && op <= OP_SEMICOLON ? text[op] : "?";
}

static void describe(const jtok *t, char *buf, size_t cap) {
    switch (t->kind) {
    case T_EOF: snprintf(buf, cap, "end of template"); break;
    case T_DATA: snprintf(buf, cap, "template data"); break;
    case T_VAR_BEGIN: snprintf(buf, cap, "begin of print statement"); break;
    case T_VAR_END: snprintf(buf, cap, "end of print statement"); break;
    case T_BLOCK_BEGIN: snprintf(buf, cap, "begin of statement block"); break;
    case T_BLOCK_END: snprintf(buf, cap, "end of statement block"); break;
    case T_NAME: snprintf(buf, cap, "%.*s", (int)(t->len > 60 ? 60 : t->len), t->s); break;
    case T_STRING: snprintf(buf, cap, "string"); break;
    case T_INT: snprintf(buf, cap, "integer"); break;
    case T_FLOAT: snprintf(buf, cap, "float"); break;
    default: snprintf(buf, cap, "%s", op_text(t->op)); break;
    }
}

static int expect_op(parser *P, jop op) {
    if (is_op(cur(P), op)) {
        next_tok(P);
        return 0;
    }
    char got[80];
    describe(cur(P), got, sizeof got);
    return fail(P, cur(P)->line, "syntax error: expected token '%s', got '%s'", op_text(op), got);
}

static int expect_kind(parser *P, int kind, const char *what) {
    if (cur(P)->kind == kind) {
        next_tok(P);
        return 0;
    }
    char got[80];
    describe(cur(P), got, sizeof got);
    return fail(P, cur(P)->line, "syntax error: expected token '%s', got '%s'", what, got);
}

static int expect_name(parser *P, const char *name) {
    if (is_name(cur(P), name)) {
        next_tok(P);
        return 0;
    }
    char got[80];
    describe(cur(P), got, sizeof got);
    return fail(P, cur(P)->line, "syntax error: expected token '%s', got '%s'", name, got);
}

static jnode *node(parser *P, int kind, int line) {
    jnode *n = jarena_alloc(&P->t->arena, sizeof(jnode));
    if (!n) {
        nomem(P);
        return NULL;
    }
    n->kind = (uint16_t)kind;
    n->line = line;
    return n;
}

/* A growable array of node pointers, moved into the arena when done. */
typedef struct nvec {
    jnode **v;
    int *ints;
    uint32_t n, cap;
} nvec;

static int nvec_push(parser *P, nvec *v, jnode *x, int i) {
    if (v->n == v->cap) {
        uint32_t cap = v->cap ? v->cap * 2 : 8;
        jnode **nv = rm_realloc(v->v, cap * sizeof(jnode *));
        if (!nv) return nomem(P);
        v->v = nv;
        int *ni = rm_realloc(v->ints, cap * sizeof(int));
        if (!ni) return nomem(P);
        v->ints = ni;
        v->cap = cap;
    }
    v->v[v->n] = x;
    v->ints[v->n] = i;
    v->n++;
    return 0;
}

static jnode **nvec_nodes(parser *P, nvec *v) {
    jnode **out = jarena_alloc(&P->t->arena, (v->n ? v->n : 1) * sizeof(jnode *));
    if (!out) { nomem(P); return NULL; }
    if (v->n) memcpy(out, v->v, v->n * sizeof(jnode *));
    return out;
}

static int *nvec_ints(parser *P, nvec *v) {
    int *out = jarena_alloc(&P->t->arena, (v->n ? v->n : 1) * sizeof(int));
    if (!out) { nomem(P); return NULL; }
    if (v->n) memcpy(out, v->ints, v->n * sizeof(int));
    return out;
}

static void nvec_free(nvec *v) {
    rm_mfree(v->v);
    rm_mfree(v->ints);
    memset(v, 0, sizeof *v);
}

static int enter(parser *P) {
    if (++P->depth > PARSE_DEPTH_MAX)
        return fail(P, cur(P)->line, "template nested more than %d levels deep", PARSE_DEPTH_MAX);
    return 0;
}

/* ---------------------------------------------------------------- expressions */

static jnode *parse_expression(parser *P, int with_condexpr);
static jnode *parse_tuple(parser *P, int simplified, int with_condexpr, const char *extra_end, int explicit_parens);
static jnode *parse_unary(parser *P, int with_filter);
static jnode *parse_primary(parser *P);
static jnode *parse_postfix(parser *P, jnode *n);
static jnode *parse_filter(parser *P, jnode *n, int start_inline);

static jnode *parse_or(parser *P);

static jnode *parse_condexpr(parser *P) {
    int line = cur(P)->line;
    jnode *e1 = parse_or(P);
    if (!e1) return NULL;
    while (is_name(cur(P), "if")) {
        next_tok(P);
        jnode *e2 = parse_or(P);
        if (!e2) return NULL;
        jnode *e3 = NULL;
        if (is_name(cur(P), "else")) {
            next_tok(P);
            if (enter(P) != 0) return NULL;
            e3 = parse_condexpr(P);
            P->depth--;
            if (!e3) return NULL;
        }
        jnode *c = node(P, N_COND, line);
        if (!c) return NULL;
        c->a = e2;
        c->b = e1;
        c->c = e3;
        e1 = c;
        line = cur(P)->line;
    }
    return e1;
}

static jnode *parse_not(parser *P);

static jnode *parse_and(parser *P) {
    jnode *left = parse_not(P);
    while (left && is_name(cur(P), "and")) {
        int line = next_tok(P)->line;
        jnode *right = parse_not(P);
        if (!right) return NULL;
        jnode *n = node(P, N_AND, line);
        if (!n) return NULL;
        n->a = left;
        n->b = right;
        left = n;
    }
    return left;
}

static jnode *parse_or(parser *P) {
    jnode *left = parse_and(P);
    while (left && is_name(cur(P), "or")) {
        int line = next_tok(P)->line;
        jnode *right = parse_and(P);
        if (!right) return NULL;
        jnode *n = node(P, N_OR, line);
        if (!n) return NULL;
        n->a = left;
        n->b = right;
        left = n;
    }
    return left;
}

static jnode *parse_compare(parser *P);

static jnode *parse_not(parser *P) {
    if (is_name(cur(P), "not")) {
        int line = next_tok(P)->line;
        if (enter(P) != 0) return NULL;
        jnode *inner = parse_not(P);
        P->depth--;
        if (!inner) return NULL;
        jnode *n = node(P, N_NOT, line);
        if (!n) return NULL;
        n->a = inner;
        return n;
    }
    return parse_compare(P);
}

static jnode *parse_math1(parser *P);

static jnode *parse_compare(parser *P) {
    int line = cur(P)->line;
    jnode *expr = parse_math1(P);
    if (!expr) return NULL;
    nvec ops = {0};
    for (;;) {
        const jtok *t = cur(P);
        int op = -1;
        if (t->kind == T_OP && (t->op == OP_EQ || t->op == OP_NE || t->op == OP_LT || t->op == OP_LTEQ ||
                                t->op == OP_GT || t->op == OP_GTEQ)) {
            op = t->op;
            next_tok(P);
        } else if (is_name(t, "in")) {
            op = OP_IN;
            next_tok(P);
        } else if (is_name(t, "not") && is_name(peek(P, 1), "in")) {
            op = OP_NOTIN;
            next_tok(P);
            next_tok(P);
        } else {
            break;
        }
        jnode *operand = parse_math1(P);
        if (!operand || nvec_push(P, &ops, operand, op) != 0) { nvec_free(&ops); return NULL; }
        line = cur(P)->line;
    }
    if (!ops.n) return expr;
    jnode *n = node(P, N_COMPARE, line);
    if (n) {
        n->a = expr;
        n->kids = nvec_nodes(P, &ops);
        n->names = nvec_ints(P, &ops);
        n->nkids = ops.n;
    }
    nvec_free(&ops);
    return n && n->kids && n->names ? n : NULL;
}

static jnode *binop(parser *P, int op, jnode *a, jnode *b, int line) {
    jnode *n = node(P, N_BINOP, line);
    if (!n) return NULL;
    n->op = (uint8_t)op;
    n->a = a;
    n->b = b;
    return n;
}

static jnode *parse_pow(parser *P) {
    jnode *left = parse_unary(P, 1);
    while (left && is_op(cur(P), OP_POW)) {
        int line = next_tok(P)->line;
        jnode *right = parse_unary(P, 1);
        if (!right) return NULL;
        left = binop(P, OP_POW, left, right, line);
    }
    return left;
}

static jnode *parse_math2(parser *P) {
    jnode *left = parse_pow(P);
    while (left && cur(P)->kind == T_OP &&
           (cur(P)->op == OP_MUL || cur(P)->op == OP_DIV || cur(P)->op == OP_FLOORDIV || cur(P)->op == OP_MOD)) {
        const jtok *t = next_tok(P);
        jnode *right = parse_pow(P);
        if (!right) return NULL;
        left = binop(P, t->op, left, right, t->line);
    }
    return left;
}

static jnode *parse_concat(parser *P) {
    jnode *left = parse_math2(P);
    while (left && is_op(cur(P), OP_TILDE)) {
        int line = next_tok(P)->line;
        jnode *right = parse_math2(P);
        if (!right) return NULL;
        left = binop(P, OP_TILDE, left, right, line);
    }
    return left;
}

static jnode *parse_math1(parser *P) {
    jnode *left = parse_concat(P);
    while (left && cur(P)->kind == T_OP && (cur(P)->op == OP_ADD || cur(P)->op == OP_SUB)) {
        const jtok *t = next_tok(P);
        jnode *right = parse_concat(P);
        if (!right) return NULL;
        left = binop(P, t->op, left, right, t->line);
    }
    return left;
}

static jnode *parse_filter_expr(parser *P, jnode *n);

static jnode *parse_unary(parser *P, int with_filter) {
    const jtok *t = cur(P);
    jnode *n;
    if (is_op(t, OP_SUB) || is_op(t, OP_ADD)) {
        next_tok(P);
        if (enter(P) != 0) return NULL;
        jnode *inner = parse_unary(P, 0);
        P->depth--;
        if (!inner) return NULL;
        n = node(P, is_op(t, OP_SUB) ? N_NEG : N_POS, t->line);
        if (n) n->a = inner;
    } else {
        n = parse_primary(P);
    }
    if (n) n = parse_postfix(P, n);
    if (n && with_filter) n = parse_filter_expr(P, n);
    return n;
}

static jnode *const_node(parser *P, int line, jval v) {
    jnode *n = node(P, N_CONST, line);
    if (n) n->val = v;
    return n;
}

static jnode *parse_list(parser *P) {
    int line = cur(P)->line;
    if (expect_op(P, OP_LBRACKET) != 0) return NULL;
    nvec items = {0};
    while (!is_op(cur(P), OP_RBRACKET)) {
        if (items.n && expect_op(P, OP_COMMA) != 0) goto fail;
        if (is_op(cur(P), OP_RBRACKET)) break;
        jnode *e = parse_expression(P, 1);
        if (!e || nvec_push(P, &items, e, 0) != 0) goto fail;
    }
    if (expect_op(P, OP_RBRACKET) != 0) goto fail;
    jnode *n = node(P, N_LIST, line);
    if (!n || !(n->kids = nvec_nodes(P, &items))) goto fail;
    n->nkids = items.n;
    nvec_free(&items);
    return n;
fail:
    nvec_free(&items);
    return NULL;
}

static jnode *parse_dict(parser *P) {
    int line = cur(P)->line;
    if (expect_op(P, OP_LBRACE) != 0) return NULL;
    nvec keys = {0}, vals = {0};
    while (!is_op(cur(P), OP_RBRACE)) {
        if (keys.n && expect_op(P, OP_COMMA) != 0) goto fail;
        if (is_op(cur(P), OP_RBRACE)) break;
        jnode *k = parse_expression(P, 1);
        if (!k || expect_op(P, OP_COLON) != 0) goto fail;
        jnode *v = parse_expression(P, 1);
        if (!v || nvec_push(P, &keys, k, 0) != 0 || nvec_push(P, &vals, v, 0) != 0) goto fail;
    }
    if (expect_op(P, OP_RBRACE) != 0) goto fail;
    jnode *n = node(P, N_DICT, line);
    if (!n || !(n->kids = nvec_nodes(P, &keys)) || !(n->kids2 = nvec_nodes(P, &vals))) goto fail;
    n->nkids = n->nkids2 = keys.n;
    nvec_free(&keys);
    nvec_free(&vals);
    return n;
fail:
    nvec_free(&keys);
    nvec_free(&vals);
    return NULL;
}

static jnode *parse_primary(parser *P) {
    const jtok *t = cur(P);
    switch (t->kind) {
    case T_NAME: {
        next_tok(P);
        if (is_name(t, "true") || is_name(t, "True")) return const_node(P, t->line, jv_bool(1));
        if (is_name(t, "false") || is_name(t, "False")) return const_node(P, t->line, jv_bool(0));
        if (is_name(t, "none") || is_name(t, "None")) return const_node(P, t->line, jv_none());
        jnode *n = node(P, N_NAME, t->line);
        if (!n) return NULL;
        n->sym = intern(P, t->s, t->len);
        return n->sym < 0 ? NULL : n;
    }
    case T_STRING: {
        /* adjacent literals are one string */
        size_t total = 0, k = P->pos;
        while (P->tok[k].kind == T_STRING) total += P->tok[k++].len;
        char *buf = jarena_alloc(&P->t->arena, total + 1);
        if (!buf) { nomem(P); return NULL; }
        size_t o = 0;
        while (cur(P)->kind == T_STRING) {
            memcpy(buf + o, cur(P)->s, cur(P)->len);
            o += cur(P)->len;
            next_tok(P);
        }
        jstr *s = immortal_str(&P->t->arena, buf, total);
        if (!s) { nomem(P); return NULL; }
        return const_node(P, t->line, jv_obj(JV_STR, s));
    }
    case T_INT: next_tok(P); return const_node(P, t->line, jv_int(t->i));
    case T_FLOAT: next_tok(P); return const_node(P, t->line, jv_float(t->f));
    case T_OP:
        if (t->op == OP_LPAREN) {
            next_tok(P);
            jnode *n = parse_tuple(P, 0, 1, NULL, 1);
            if (!n || expect_op(P, OP_RPAREN) != 0) return NULL;
            return n;
        }
        if (t->op == OP_LBRACKET) return parse_list(P);
        if (t->op == OP_LBRACE) return parse_dict(P);
        break;
    default: break;
    }
    char got[80];
    describe(t, got, sizeof got);
    fail(P, t->line, "syntax error: unexpected '%s'", got);
    return NULL;
}

static int is_tuple_end(parser *P, const char *extra_end) {
    const jtok *t = cur(P);
    if (t->kind == T_VAR_END || t->kind == T_BLOCK_END || is_op(t, OP_RPAREN)) return 1;
    return extra_end && is_name(t, extra_end);
}

static jnode *parse_tuple(parser *P, int simplified, int with_condexpr, const char *extra_end, int explicit_parens) {
    int line = cur(P)->line;
    nvec args = {0};
    int is_tuple = 0;
    for (;;) {
        if (args.n && expect_op(P, OP_COMMA) != 0) goto fail;
        if (is_tuple_end(P, extra_end)) break;
        jnode *e;
        if (simplified) {
            if (enter(P) != 0) goto fail;
            e = parse_primary(P);
            P->depth--;
        } else {
            e = parse_expression(P, with_condexpr);
        }
        if (!e || nvec_push(P, &args, e, 0) != 0) goto fail;
        if (is_op(cur(P), OP_COMMA)) is_tuple = 1;
        else break;
        line = cur(P)->line;
    }
    if (!is_tuple) {
        if (args.n) {
            jnode *only = args.v[0];
            nvec_free(&args);
            return only;
        }
        if (!explicit_parens) {
            char got[80];
            describe(cur(P), got, sizeof got);
            fail(P, cur(P)->line, "syntax error: Expected an expression, got '%s'", got);
            goto fail;
        }
    }
    jnode *n = node(P, N_TUPLE, line);
    if (!n || !(n->kids = nvec_nodes(P, &args))) goto fail;
    n->nkids = args.n;
    nvec_free(&args);
    return n;
fail:
    nvec_free(&args);
    return NULL;
}

static jnode *parse_expression(parser *P, int with_condexpr) {
    if (enter(P) != 0) return NULL;
    jnode *n = with_condexpr ? parse_condexpr(P) : parse_or(P);
    P->depth--;
    return n;
}

/* ( args, kw=args, *dyn, **dynkw ) into n->kids / kids2 / names / b / c */
static int parse_call_args(parser *P, jnode *n) {
    int line = cur(P)->line;
    if (expect_op(P, OP_LPAREN) != 0) return -1;
    nvec args = {0}, kwargs = {0};
    int require_comma = 0;
    while (!is_op(cur(P), OP_RPAREN)) {
        if (require_comma) {
            if (expect_op(P, OP_COMMA) != 0) goto fail;
            if (is_op(cur(P), OP_RPAREN)) break;
        }
        if (is_op(cur(P), OP_MUL)) {
            if (n->b || n->c) goto bad;
            next_tok(P);
            if (!(n->b = parse_expression(P, 1))) goto fail;
        } else if (is_op(cur(P), OP_POW)) {
            if (n->c) goto bad;
            next_tok(P);
            if (!(n->c = parse_expression(P, 1))) goto fail;
        } else if (cur(P)->kind == T_NAME && is_op(peek(P, 1), OP_ASSIGN)) {
            if (n->c) goto bad;
            const jtok *key = next_tok(P);
            next_tok(P);
            int sym = intern(P, key->s, key->len);
            if (sym < 0) goto fail;
            jnode *v = parse_expression(P, 1);
            if (!v || nvec_push(P, &kwargs, v, sym) != 0) goto fail;
        } else {
            if (n->b || n->c || kwargs.n) goto bad;
            jnode *v = parse_expression(P, 1);
            if (!v || nvec_push(P, &args, v, 0) != 0) goto fail;
        }
        require_comma = 1;
    }
    if (expect_op(P, OP_RPAREN) != 0) goto fail;
    if (!(n->kids = nvec_nodes(P, &args)) || !(n->kids2 = nvec_nodes(P, &kwargs)) || !(n->names = nvec_ints(P, &kwargs)))
        goto fail;
    n->nkids = args.n;
    n->nkids2 = kwargs.n;
    nvec_free(&args);
    nvec_free(&kwargs);
    return 0;
bad:
    fail(P, line, "syntax error: invalid syntax for function call expression");
fail:
    nvec_free(&args);
    nvec_free(&kwargs);
    return -1;
}

static jnode *parse_call(parser *P, jnode *callee) {
    jnode *n = node(P, N_CALL, cur(P)->line);
    if (!n) return NULL;
    n->a = callee;
    return parse_call_args(P, n) == 0 ? n : NULL;
}

static jnode *parse_subscribed(parser *P) {
    int line = cur(P)->line;
    jnode *parts[3] = {NULL, NULL, NULL};
    if (is_op(cur(P), OP_COLON)) {
        next_tok(P);
    } else {
        jnode *e = parse_expression(P, 1);
        if (!e) return NULL;
        if (!is_op(cur(P), OP_COLON)) return e;
        next_tok(P);
        parts[0] = e;
    }
    if (!is_op(cur(P), OP_COLON) && !is_op(cur(P), OP_RBRACKET) && !is_op(cur(P), OP_COMMA)) {
        if (!(parts[1] = parse_expression(P, 1))) return NULL;
    }
    if (is_op(cur(P), OP_COLON)) {
        next_tok(P);
        if (!is_op(cur(P), OP_RBRACKET) && !is_op(cur(P), OP_COMMA)) {
            if (!(parts[2] = parse_expression(P, 1))) return NULL;
        }
    }
    jnode *n = node(P, N_SLICE, line);
    if (!n) return NULL;
    n->b = parts[0];
    n->c = parts[1];
    n->d = parts[2];
    return n;
}

static jnode *parse_subscript(parser *P, jnode *obj) {
    const jtok *t = next_tok(P);
    if (t->kind == T_OP && t->op == OP_DOT) {
        const jtok *attr = next_tok(P);
        if (attr->kind == T_NAME) {
            jnode *n = node(P, N_GETATTR, t->line);
            if (!n) return NULL;
            n->a = obj;
            n->sym = intern(P, attr->s, attr->len);
            if (n->sym < 0) return NULL;
            n->val = jv_obj(JV_STR, P->t->syms[n->sym]);
            return n;
        }
        if (attr->kind != T_INT) {
            fail(P, attr->line, "syntax error: expected name or number");
            return NULL;
        }
        jnode *n = node(P, N_GETITEM, t->line);
        if (!n || !(n->b = const_node(P, attr->line, jv_int(attr->i)))) return NULL;
        n->a = obj;
        return n;
    }
    /* [ subscribed, ... ] */
    nvec args = {0};
    while (!is_op(cur(P), OP_RBRACKET)) {
        if (args.n && expect_op(P, OP_COMMA) != 0) goto fail;
        jnode *s = parse_subscribed(P);
        if (!s || nvec_push(P, &args, s, 0) != 0) goto fail;
    }
    if (expect_op(P, OP_RBRACKET) != 0) goto fail;
    if (args.n == 1 && args.v[0]->kind == N_SLICE) {
        jnode *s = args.v[0];
        nvec_free(&args);
        s->a = obj;
        return s;
    }
    jnode *n = node(P, N_GETITEM, t->line);
    if (!n) goto fail;
    n->a = obj;
    if (args.n == 1) {
        n->b = args.v[0];
    } else {
        for (uint32_t i = 0; i < args.n; i++)
            if (args.v[i]->kind == N_SLICE) {
                fail(P, t->line, "multi-dimensional slices are not supported");
                goto fail;
            }
        if (!(n->b = node(P, N_TUPLE, t->line)) || !(n->b->kids = nvec_nodes(P, &args))) goto fail;
        n->b->nkids = args.n;
    }
    nvec_free(&args);
    return n;
fail:
    nvec_free(&args);
    return NULL;
}

static jnode *parse_postfix(parser *P, jnode *n) {
    while (n) {
        const jtok *t = cur(P);
        if (is_op(t, OP_DOT) || is_op(t, OP_LBRACKET)) n = parse_subscript(P, n);
        else if (is_op(t, OP_LPAREN)) n = parse_call(P, n);
        else break;
    }
    return n;
}

/* A filter or test name, possibly dotted; returns its symbol. */
static int parse_dotted_name(parser *P, int *line, int *dotted) {
    const jtok *t = cur(P);
    if (t->kind != T_NAME) {
        char got[80];
        describe(t, got, sizeof got);
        return fail(P, t->line, "syntax error: expected token 'name', got '%s'", got);
    }
    *line = t->line;
    *dotted = 0;
    next_tok(P);
    char buf[256];
    size_t o = 0;
    o += (size_t)snprintf(buf, sizeof buf, "%.*s", (int)(t->len > 200 ? 200 : t->len), t->s);
    while (is_op(cur(P), OP_DOT)) {
        next_tok(P);
        const jtok *p = cur(P);
        if (p->kind != T_NAME) return fail(P, p->line, "syntax error: expected token 'name'");
        next_tok(P);
        *dotted = 1;
        if (o < sizeof buf - 1) o += (size_t)snprintf(buf + o, sizeof buf - o, ".%.*s", (int)p->len, p->s);
    }
    if (o >= sizeof buf) o = sizeof buf - 1;
    return intern(P, buf, o);
}

static jnode *parse_filter(parser *P, jnode *operand, int start_inline) {
    while (is_op(cur(P), OP_PIPE) || start_inline) {
        if (!start_inline) next_tok(P);
        int line, dotted;
        int sym = parse_dotted_name(P, &line, &dotted);
        if (sym < 0) return NULL;
        jnode *n = node(P, N_FILTER, line);
        if (!n) return NULL;
        n->a = operand;
        n->sym = sym;
        const jstr *name = P->t->syms[sym];
        n->op = (uint8_t)(dotted ? JB_UNKNOWN : jfilter_id(name->s, name->len));
        if (is_op(cur(P), OP_LPAREN) && parse_call_args(P, n) != 0) return NULL;
        operand = n;
        start_inline = 0;
    }
    return operand;
}

static jnode *parse_test(parser *P, jnode *operand) {
    const jtok *is_tok = next_tok(P);
    int negated = 0;
    if (is_name(cur(P), "not")) {
        next_tok(P);
        negated = 1;
    }
    int line, dotted;
    int sym = parse_dotted_name(P, &line, &dotted);
    if (sym < 0) return NULL;
    jnode *n = node(P, N_TEST, is_tok->line);
    if (!n) return NULL;
    n->a = operand;
    n->sym = sym;
    const jstr *name = P->t->syms[sym];
    n->op = (uint8_t)(dotted ? JB_UNKNOWN : jtest_id(name->s, name->len));
    const jtok *t = cur(P);
    if (is_op(t, OP_LPAREN)) {
        if (parse_call_args(P, n) != 0) return NULL;
    } else if ((t->kind == T_NAME || t->kind == T_STRING || t->kind == T_INT || t->kind == T_FLOAT ||
                is_op(t, OP_LPAREN) || is_op(t, OP_LBRACKET) || is_op(t, OP_LBRACE)) &&
               !is_name(t, "else") && !is_name(t, "or") && !is_name(t, "and")) {
        if (is_name(t, "is")) {
            fail(P, t->line, "syntax error: You cannot chain multiple tests with is");
            return NULL;
        }
        if (enter(P) != 0) return NULL;
        jnode *arg = parse_primary(P);
        if (arg) arg = parse_postfix(P, arg);
        P->depth--;
        if (!arg) return NULL;
        n->kids = jarena_alloc(&P->t->arena, sizeof(jnode *));
        n->kids2 = jarena_alloc(&P->t->arena, sizeof(jnode *));
        n->names = jarena_alloc(&P->t->arena, sizeof(int));
        if (!n->kids || !n->kids2 || !n->names) { nomem(P); return NULL; }
        n->kids[0] = arg;
        n->nkids = 1;
    } else {
        n->kids = jarena_alloc(&P->t->arena, sizeof(jnode *));
        n->kids2 = jarena_alloc(&P->t->arena, sizeof(jnode *));
        n->names = jarena_alloc(&P->t->arena, sizeof(int));
        if (!n->kids || !n->kids2 || !n->names) { nomem(P); return NULL; }
    }
    if (negated) {
        jnode *x = node(P, N_NOT, is_tok->line);
        if (!x) return NULL;
        x->a = n;
        return x;
    }
    return n;
}

static jnode *parse_filter_expr(parser *P, jnode *n) {
    while (n) {
        const jtok *t = cur(P);
        if (is_op(t, OP_PIPE)) n = parse_filter(P, n, 0);
        else if (is_name(t, "is")) n = parse_test(P, n);
        else if (is_op(t, OP_LPAREN)) n = parse_call(P, n);
        else break;
    }
    return n;
}

/* ---------------------------------------------------------------- statements */

static jnode *subparse(parser *P, const char *const *end_tokens);

static int is_end_token(const jtok *t, const char *const *end_tokens) {
    for (int i = 0; end_tokens && end_tokens[i]; i++)
        if (is_name(t, end_tokens[i])) return 1;
    return 0;
}

static int fail_eof(parser *P, const char *const *end_tokens, const char *innermost) {
    char want[256] = "";
    size_t o = 0;
    for (int i = 0; end_tokens && end_tokens[i] && o < sizeof want; i++)
        o += (size_t)snprintf(want + o, sizeof want - o, "%s'%s'", i ? " or " : "", end_tokens[i]);
    return fail(P, cur(P)->line,
                "syntax error: Unexpected end of template. Jinja was looking for the following tags: %s. "
                "The innermost block that needs to be closed is '%s'.",
                want, innermost);
}

/* block_end, the body up to one of end_tokens; leaves the end tag name current
 * (or consumes it when drop_needle). */
static jnode *parse_statements(parser *P, const char *const *end_tokens, int drop_needle, const char *innermost) {
    if (is_op(cur(P), OP_COLON)) next_tok(P);
    if (expect_kind(P, T_BLOCK_END, "end of statement block") != 0) return NULL;
    jnode *body = subparse(P, end_tokens);
    if (!body) return NULL;
    if (cur(P)->kind == T_EOF) {
        fail_eof(P, end_tokens, innermost);
        return NULL;
    }
    if (drop_needle) next_tok(P);
    return body;
}

/* An assignment target: a name, a (possibly parenthesised) tuple of names,
 * or with_namespace: name.attr. */
static jnode *parse_assign_target(parser *P, int name_only, const char *extra_end, int with_namespace) {
    const jtok *t = cur(P);
    if (with_namespace && t->kind == T_NAME && is_op(peek(P, 1), OP_DOT)) {
        next_tok(P);
        next_tok(P);
        const jtok *attr = cur(P);
        if (expect_kind(P, T_NAME, "name") != 0) return NULL;
        jnode *n = node(P, N_NSREF, t->line);
        if (!n) return NULL;
        n->sym = intern(P, t->s, t->len);
        int asym = intern(P, attr->s, attr->len);
        if (n->sym < 0 || asym < 0) return NULL;
        n->val = jv_obj(JV_STR, P->t->syms[asym]);
        return n;
    }
    if (name_only) {
        if (t->kind != T_NAME) {
            char got[80];
            describe(t, got, sizeof got);
            fail(P, t->line, "syntax error: expected token 'name', got '%s'", got);
            return NULL;
        }
        next_tok(P);
        jnode *n = node(P, N_NAME, t->line);
        if (!n || (n->sym = intern(P, t->s, t->len)) < 0) return NULL;
        return n;
    }
    jnode *target = parse_tuple(P, 1, 1, extra_end, 0);
    if (!target) return NULL;
    /* only names and tuples of assignable targets */
    jnode *stack[64];
    int sp = 0;
    stack[sp++] = target;
    while (sp) {
        jnode *x = stack[--sp];
        if (x->kind == N_TUPLE) {
            for (uint32_t i = 0; i < x->nkids; i++) {
                if (sp == 64) { fail(P, x->line, "assignment target nested too deeply"); return NULL; }
                stack[sp++] = x->kids[i];
            }
        } else if (x->kind != N_NAME) {
            static const char *const kind_names[] = {"const", "name", "list", "tuple", "dict", "getattr", "getitem",
                                                     "slice", "call", "filter", "test"};
            fail(P, x->line, "syntax error: can't assign to '%s'", x->kind <= N_TEST ? kind_names[x->kind] : "expression");
            return NULL;
        } else {
            const jstr *name = P->t->syms[x->sym];
            if (jstr_is(name, "true") || jstr_is(name, "false") || jstr_is(name, "none") || jstr_is(name, "True") ||
                jstr_is(name, "False") || jstr_is(name, "None")) {
                fail(P, x->line, "syntax error: can't assign to 'const'");
                return NULL;
            }
        }
    }
    return target;
}

/* (a, b=default, ...) into names / kids2 */
static int parse_signature(parser *P, jnode *n) {
    if (expect_op(P, OP_LPAREN) != 0) return -1;
    nvec params = {0};
    int have_default = 0;
    while (!is_op(cur(P), OP_RPAREN)) {
        if (params.n && expect_op(P, OP_COMMA) != 0) goto fail;
        jnode *name = parse_assign_target(P, 1, NULL, 0);
        if (!name) goto fail;
        jnode *def = NULL;
        if (is_op(cur(P), OP_ASSIGN)) {
            next_tok(P);
            if (!(def = parse_expression(P, 1))) goto fail;
            have_default = 1;
        } else if (have_default) {
            fail(P, name->line, "syntax error: non-default argument follows default argument");
            goto fail;
        }
        if (nvec_push(P, &params, def, name->sym) != 0) goto fail;
    }
    if (expect_op(P, OP_RPAREN) != 0) goto fail;
    if (!(n->kids2 = nvec_nodes(P, &params)) || !(n->names = nvec_ints(P, &params))) goto fail;
    n->nkids2 = params.n;
    nvec_free(&params);
    return 0;
fail:
    nvec_free(&params);
    return -1;
}

static jnode *parse_for(parser *P) {
    int line = next_tok(P)->line;
    jnode *n = node(P, N_FOR, line);
    if (!n || !(n->a = parse_assign_target(P, 0, "in", 0)) || expect_name(P, "in") != 0) return NULL;
    if (!(n->b = parse_tuple(P, 0, 0, "recursive", 0))) return NULL;
    if (is_name(cur(P), "if")) {
        next_tok(P);
        if (!(n->e = parse_expression(P, 1))) return NULL;
    }
    if (is_name(cur(P), "recursive")) {
        next_tok(P);
        n->flags |= JF_RECURSIVE;
    }
    static const char *const ends[] = {"endfor", "else", NULL};
    static const char *const ends2[] = {"endfor", NULL};
    P->loop_depth++;
    n->c = parse_statements(P, ends, 0, "for");
    P->loop_depth--;
    if (!n->c) return NULL;
    if (is_name(next_tok(P), "else")) {
        if (!(n->d = parse_statements(P, ends2, 1, "for"))) return NULL;
    }
    return n;
}

static jnode *parse_if(parser *P) {
    int line = next_tok(P)->line;
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    static const char *const ends2[] = {"endif", NULL};
    jnode *result = node(P, N_IF, line), *n = result;
    if (!n) return NULL;
    for (;;) {
        if (!(n->a = parse_tuple(P, 0, 0, NULL, 0))) return NULL;
        if (!(n->b = parse_statements(P, ends, 0, "if"))) return NULL;
        const jtok *t = next_tok(P);
        if (is_name(t, "elif")) {
            jnode *e = node(P, N_IF, cur(P)->line);
            if (!e) return NULL;
            n->c = e;      /* elif: an if in the else branch */
            n = e;
            continue;
        }
        if (is_name(t, "else")) {
            if (!(n->c = parse_statements(P, ends2, 1, "if"))) return NULL;
        }
        break;
    }
    return result;
}

static jnode *parse_set(parser *P) {
    int line = next_tok(P)->line;
    jnode *target = parse_assign_target(P, 0, NULL, 1);
    if (!target) return NULL;
    if (is_op(cur(P), OP_ASSIGN)) {
        next_tok(P);
        jnode *n = node(P, N_SET, line);
        if (!n || !(n->b = parse_tuple(P, 0, 1, NULL, 0))) return NULL;
        n->a = target;
        return n;
    }
    jnode *n = node(P, N_SETBLOCK, line);
    if (!n) return NULL;
    n->a = target;
    if (is_op(cur(P), OP_PIPE) && !(n->c = parse_filter(P, NULL, 0))) return NULL;
    static const char *const ends[] = {"endset", NULL};
    if (!(n->b = parse_statements(P, ends, 1, "set"))) return NULL;
    return n;
}

/* Which of caller / varargs / kwargs a macro body mentions. */
static int implicit_uses(const jnode *n, int depth) {
    if (!n) return 0;
    if (depth > CHECK_DEPTH_MAX) return JM_CALLER | JM_VARARGS | JM_KWARGS;  /* check() refuses it anyway */
    int f = 0;
    if (n->kind == N_NAME) {
        if (n->sym == SYM_CALLER) f |= JM_CALLER;
        else if (n->sym == SYM_VARARGS) f |= JM_VARARGS;
        else if (n->sym == SYM_KWARGS) f |= JM_KWARGS;
        return f;
    }
    depth++;
    f |= implicit_uses(n->a, depth) | implicit_uses(n->b, depth) | implicit_uses(n->c, depth) |
         implicit_uses(n->d, depth) | implicit_uses(n->e, depth);
    for (uint32_t i = 0; i < n->nkids; i++) f |= implicit_uses(n->kids[i], depth);
    if (n->kind != N_COMPARE)
        for (uint32_t i = 0; i < n->nkids2; i++) f |= implicit_uses(n->kids2[i], depth);
    return f;
}

static jnode *parse_macro(parser *P) {
    int line = next_tok(P)->line;
    jnode *n = node(P, N_MACRO, line);
    if (!n) return NULL;
    jnode *name = parse_assign_target(P, 1, NULL, 0);
    if (!name || parse_signature(P, n) != 0) return NULL;
    n->sym = name->sym;
    static const char *const ends[] = {"endmacro", NULL};
    int saved = P->loop_depth;
    P->loop_depth = 0;
    n->b = parse_statements(P, ends, 1, "macro");
    P->loop_depth = saved;
    if (!n->b) return NULL;
    n->flags = (uint8_t)implicit_uses(n->b, 0);
    return n;
}

static jnode *parse_call_block(parser *P) {
    int line = next_tok(P)->line;
    jnode *n = node(P, N_CALLBLOCK, line);
    if (!n) return NULL;
    if (is_op(cur(P), OP_LPAREN)) {
        if (parse_signature(P, n) != 0) return NULL;
    } else {
        n->kids2 = jarena_alloc(&P->t->arena, sizeof(jnode *));
        n->names = jarena_alloc(&P->t->arena, sizeof(int));
        if (!n->kids2 || !n->names) { nomem(P); return NULL; }
    }
    if (!(n->a = parse_expression(P, 1))) return NULL;
    if (n->a->kind != N_CALL) {
        fail(P, line, "syntax error: expected call");
        return NULL;
    }
    static const char *const ends[] = {"endcall", NULL};
    int saved = P->loop_depth;
    P->loop_depth = 0;
    n->b = parse_statements(P, ends, 1, "call");
    P->loop_depth = saved;
    if (!n->b) return NULL;
    n->flags = (uint8_t)implicit_uses(n->b, 0);
    return n;
}

static jnode *parse_filter_block(parser *P) {
    int line = next_tok(P)->line;
    jnode *n = node(P, N_FILTERBLOCK, line);
    if (!n || !(n->a = parse_filter(P, NULL, 1))) return NULL;
    static const char *const ends[] = {"endfilter", NULL};
    if (!(n->b = parse_statements(P, ends, 1, "filter"))) return NULL;
    return n;
}

static jnode *parse_with(parser *P) {
    int line = next_tok(P)->line;
    jnode *n = node(P, N_WITH, line);
    if (!n) return NULL;
    nvec targets = {0}, values = {0};
    while (cur(P)->kind != T_BLOCK_END) {
        if (targets.n && expect_op(P, OP_COMMA) != 0) goto fail;
        jnode *t = parse_assign_target(P, 0, NULL, 0);
        if (!t || expect_op(P, OP_ASSIGN) != 0) goto fail;
        jnode *v = parse_expression(P, 1);
        if (!v || nvec_push(P, &targets, t, 0) != 0 || nvec_push(P, &values, v, 0) != 0) goto fail;
    }
    if (!(n->kids = nvec_nodes(P, &targets)) || !(n->kids2 = nvec_nodes(P, &values))) goto fail;
    n->nkids = n->nkids2 = targets.n;
    nvec_free(&targets);
    nvec_free(&values);
    static const char *const ends[] = {"endwith", NULL};
    if (!(n->b = parse_statements(P, ends, 1, "with"))) return NULL;
    return n;
fail:
    nvec_free(&targets);
    nvec_free(&values);
    return NULL;
}

/* transformers' {% generation %} ... {% endgeneration %}: marks the
 * assistant's tokens for its masks; the text renders as is. */
static jnode *parse_generation(parser *P) {
    next_tok(P);
    static const char *const ends[] = {"endgeneration", NULL};
    return parse_statements(P, ends, 1, "generation");
}

static jnode *parse_statement(parser *P) {
    const jtok *t = cur(P);
    if (t->kind != T_NAME) {
        fail(P, t->line, "syntax error: tag name expected");
        return NULL;
    }
    if (enter(P) != 0) return NULL;
    jnode *n = NULL;
    if (is_name(t, "for")) n = parse_for(P);
    else if (is_name(t, "if")) n = parse_if(P);
    else if (is_name(t, "set")) n = parse_set(P);
    else if (is_name(t, "macro")) n = parse_macro(P);
    else if (is_name(t, "call")) n = parse_call_block(P);
    else if (is_name(t, "filter")) n = parse_filter_block(P);
    else if (is_name(t, "with")) n = parse_with(P);
    else if (is_name(t, "generation")) n = parse_generation(P);
    else if (is_name(t, "break") || is_name(t, "continue")) {
        next_tok(P);
        if (P->loop_depth == 0) fail(P, t->line, "syntax error: '%.*s' outside loop", (int)t->len, t->s);
        else n = node(P, is_name(t, "break") ? N_BREAK : N_CONTINUE, t->line);
    } else {
        static const char *const unsupported[] = {"include", "extends", "import", "from", "block", "autoescape",
                                                  "do", "print", "trans", "pluralize", NULL};
        for (int i = 0; unsupported[i]; i++)
            if (is_name(t, unsupported[i])) {
                fail(P, t->line, "the '%s' statement is not supported by libnimreward's template interpreter",
                     unsupported[i]);
                P->depth--;
                return NULL;
            }
        fail(P, t->line, "syntax error: Encountered unknown tag '%.*s'.", (int)(t->len > 60 ? 60 : t->len), t->s);
    }
    P->depth--;
    return n;
}

static jnode *subparse(parser *P, const char *const *end_tokens) {
    nvec body = {0};
    int line = cur(P)->line;
    for (;;) {
        const jtok *t = cur(P);
        jnode *n = NULL;
        if (t->kind == T_EOF) break;
        if (t->kind == T_DATA) {
            next_tok(P);
            jstr *s = immortal_str(&P->t->arena, t->s, t->len);
            if (!s) { nomem(P); goto fail; }
            if (!(n = node(P, N_DATA, t->line))) goto fail;
            n->val = jv_obj(JV_STR, s);
        } else if (t->kind == T_VAR_BEGIN) {
            next_tok(P);
            jnode *e = parse_tuple(P, 0, 1, NULL, 0);
            if (!e || expect_kind(P, T_VAR_END, "end of print statement") != 0) goto fail;
            if (!(n = node(P, N_OUTPUT, t->line))) goto fail;
            n->a = e;
        } else if (t->kind == T_BLOCK_BEGIN) {
            next_tok(P);
            if (end_tokens && is_end_token(cur(P), end_tokens)) break;
            if (!(n = parse_statement(P))) goto fail;
            if (expect_kind(P, T_BLOCK_END, "end of statement block") != 0) goto fail;
        } else {
            fail(P, t->line, "internal parser error");
            goto fail;
        }
        if (nvec_push(P, &body, n, 0) != 0) goto fail;
    }
    jnode *b = node(P, N_BODY, line);
    if (!b || !(b->kids = nvec_nodes(P, &body))) goto fail;
    b->nkids = body.n;
    nvec_free(&body);
    return b;
fail:
    nvec_free(&body);
    return NULL;
}

/* ---------------------------------------------------------------- compile-time checks */

/* Jinja refuses unknown filters and tests when compiling, except inside
 * if-branches and conditional expressions ("soft" frames), where the error
 * waits until the filter actually runs. Loops, macros, call/filter blocks,
 * with and set blocks open fresh frames that are not soft. */
static int check_depth(parser *P, const jnode *n, int soft, int depth);
#define check(P, n, soft) check_depth(P, n, soft, depth + 1)
static int check_depth(parser *P, const jnode *n, int soft, int depth) {
    if (!n) return 0;
    if (depth > CHECK_DEPTH_MAX) return fail(P, n->line, "template nested more than %d levels deep", CHECK_DEPTH_MAX);
    switch (n->kind) {
    case N_FILTER:
    case N_TEST:
        if (n->op == JB_UNKNOWN && !soft) {
            const jstr *name = P->t->syms[n->sym];
            return fail(P, n->line, "No %s named '%.*s'.", n->kind == N_FILTER ? "filter" : "test", (int)name->len,
                        name->s);
        }
        break;
    case N_IF:
        return check(P, n->a, 1) || check(P, n->b, 1) || check(P, n->c, 1) ? -1 : 0;
    case N_COND:
        return check(P, n->a, 1) || check(P, n->b, 1) || check(P, n->c, 1) ? -1 : 0;
    case N_FOR:
        return check(P, n->a, soft) || check(P, n->b, soft) || check(P, n->c, 0) || check(P, n->d, 0) ||
                       check(P, n->e, 0)
                   ? -1
                   : 0;
    case N_MACRO:
    case N_CALLBLOCK:
    case N_FILTERBLOCK:
    case N_SETBLOCK:
    case N_WITH:
        if (n->kind == N_CALLBLOCK && check(P, n->a, soft)) return -1;
        if (n->kind == N_WITH)
            for (uint32_t i = 0; i < n->nkids2; i++)
                if (check(P, n->kids2[i], soft)) return -1;
        if (n->kind == N_FILTERBLOCK || n->kind == N_SETBLOCK) {
            if (check(P, n->kind == N_FILTERBLOCK ? n->a : n->c, 0)) return -1;
        }
        if (n->kind == N_MACRO || n->kind == N_CALLBLOCK)
            for (uint32_t i = 0; i < n->nkids2; i++)
                if (check(P, n->kids2[i], 0)) return -1;
        return check(P, n->b, 0);
    default: break;
    }
    if (check(P, n->a, soft) || check(P, n->b, soft) || check(P, n->c, soft) || check(P, n->d, soft) ||
        check(P, n->e, soft))
        return -1;
    for (uint32_t i = 0; i < n->nkids; i++)
        if (check(P, n->kids[i], soft)) return -1;
    if (n->kind != N_COMPARE)
        for (uint32_t i = 0; i < n->nkids2; i++)
            if (check(P, n->kids2[i], soft)) return -1;
    return 0;
}

rm_status jparse(rm_template *t, const jtok *toks, size_t n, rm_err *err) {
    parser P = {.t = t, .tok = toks, .n = n, .err = err};
    if (err) {
        err->status = RM_OK;
        err->msg[0] = 0;
    }
    for (int i = 0; i < SYM_BUILTIN_COUNT; i++)
        if (intern(&P, builtin_syms[i], strlen(builtin_syms[i])) != i) return err ? err->status : RM_ERR_NOMEM;
    jnode *root = subparse(&P, NULL);
    if (!root) return err && err->status ? err->status : RM_ERR_TEMPLATE;
    if (check_depth(&P, root, 0, 0) != 0) return err->status;
    t->root = root;
    return RM_OK;
}
