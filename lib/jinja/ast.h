/*
 * ast.h - the parsed form of a template: an arena that owns everything,
 * the token list the lexer produces, the node tree the parser builds, and
 * the symbol table (every name the template mentions gets a small integer,
 * so scope look-ups compare integers).
 */
#ifndef RM_JINJA_AST_H
#define RM_JINJA_AST_H

#include "common.h"
#include "jinja.h"
#include "jinja/value.h"

/* ---------------------------------------------------------------- arena */

typedef struct jarena_chunk {
    struct jarena_chunk *next;
    size_t used, cap;
    max_align_t data[];
} jarena_chunk;

typedef struct jarena {
    jarena_chunk *head;
} jarena;

void *jarena_alloc(jarena *a, size_t n);        /* zeroed; NULL when out of memory */
char *jarena_strndup(jarena *a, const char *s, size_t n);
void jarena_free(jarena *a);

/* ---------------------------------------------------------------- tokens */

typedef enum jtok_kind {
    T_EOF, T_DATA, T_VAR_BEGIN, T_VAR_END, T_BLOCK_BEGIN, T_BLOCK_END,
    T_NAME, T_STRING, T_INT, T_FLOAT, T_OP
} jtok_kind;

typedef enum jop {
    OP_ADD, OP_SUB, OP_DIV, OP_FLOORDIV, OP_MUL, OP_MOD, OP_POW, OP_TILDE,
    OP_LBRACKET, OP_RBRACKET, OP_LPAREN, OP_RPAREN, OP_LBRACE, OP_RBRACE,
    OP_EQ, OP_NE, OP_GT, OP_GTEQ, OP_LT, OP_LTEQ, OP_ASSIGN, OP_DOT, OP_COLON,
    OP_PIPE, OP_COMMA, OP_SEMICOLON,
    /* comparison operators that are not tokens */
    OP_IN, OP_NOTIN
} jop;

typedef struct jtok {
    uint8_t kind;             /* jtok_kind */
    uint8_t op;               /* jop for T_OP */
    int line;
    const char *s;            /* T_DATA, T_NAME: the text; T_STRING: the decoded value */
    size_t len;
    int64_t i;                /* T_INT */
    double f;                 /* T_FLOAT */
} jtok;

/* Splits the (already newline-normalised) source into tokens, applying
 * Jinja's whitespace control with trim_blocks and lstrip_blocks on. */
rm_status jlex(jarena *a, const char *src, size_t len, jtok **out, size_t *n_out, rm_err *err);

/* ---------------------------------------------------------------- nodes */

typedef enum jnode_kind {
    /* expressions */
    N_CONST, N_NAME, N_LIST, N_TUPLE, N_DICT, N_GETATTR, N_GETITEM, N_SLICE, N_CALL,
    N_FILTER, N_TEST, N_NOT, N_NEG, N_POS, N_BINOP, N_AND, N_OR, N_COMPARE, N_COND, N_NSREF,
    /* statements */
    N_BODY, N_DATA, N_OUTPUT, N_IF, N_FOR, N_SET, N_SETBLOCK, N_MACRO, N_CALLBLOCK,
    N_FILTERBLOCK, N_WITH, N_BREAK, N_CONTINUE
} jnode_kind;

/* N_MACRO / N_CALLBLOCK flags: which implicit names the body uses. */
#define JM_CALLER 1
#define JM_VARARGS 2
#define JM_KWARGS 4
/* N_FOR flag */
#define JF_RECURSIVE 1

/*
 * One node; fields by kind:
 *   N_CONST     val (strings immortal)          N_NAME     sym
 *   N_LIST/N_TUPLE kids                         N_DICT     kids = keys, kids2 = values
 *   N_GETATTR   a = object, sym = attribute, val = its name as a string
 *   N_GETITEM   a = object, b = key             N_SLICE    a = object, b/c/d = start/stop/step
 *   N_CALL      a = callee; kids = positional, kids2 + names = keyword args; b = *args, c = **kwargs
 *   N_FILTER    a = operand (NULL: the body of a filter block), sym = name, op = builtin id
 *               (JB_UNKNOWN when Jinja has no such filter), args as N_CALL
 *   N_TEST      as N_FILTER                     N_NOT/N_NEG/N_POS  a
 *   N_BINOP     op (OP_ADD ... OP_TILDE), a, b  N_AND/N_OR a, b
 *   N_COMPARE   a = first operand, kids = further operands, names = their jop
 *   N_COND      a = test, b = value, c = else value (NULL: undefined)
 *   N_NSREF     sym = namespace name, val = attribute name (assignment target)
 *   N_BODY      kids = statements               N_DATA     val = the text
 *   N_OUTPUT    a                               N_IF       a = test, b = body, c = else (N_BODY or NULL)
 *   N_FOR       a = target, b = iterable, c = body, d = else body, e = filter condition
 *   N_SET       a = target, b = value           N_SETBLOCK a = target, b = body, c = filter chain
 *   N_MACRO     sym = name, names = parameters, kids2 = defaults (NULL entries), b = body
 *   N_CALLBLOCK a = the call (N_CALL), names/kids2 = caller parameters, b = body
 *   N_FILTERBLOCK a = filter chain, b = body    N_WITH     kids = targets, kids2 = values, b = body
 */
struct jnode {
    uint16_t kind;
    uint8_t op;
    uint8_t flags;
    int line;
    jnode *a, *b, *c, *d, *e;
    jnode **kids;
    jnode **kids2;
    int *names;
    uint32_t nkids, nkids2;
    int sym;
    jval val;
};

/* ---------------------------------------------------------------- template */

/* Symbols every template has, in this order (see parser.c). */
enum {
    SYM_LOOP, SYM_CALLER, SYM_VARARGS, SYM_KWARGS, SYM_MESSAGES, SYM_ADD_GENERATION_PROMPT,
    SYM_BOS_TOKEN, SYM_EOS_TOKEN, SYM_TOOLS, SYM_DOCUMENTS,
    /* globals */
    SYM_RANGE, SYM_NAMESPACE, SYM_DICT, SYM_RAISE_EXCEPTION, SYM_STRFTIME_NOW, SYM_LIPSUM,
    SYM_CYCLER, SYM_JOINER,
    SYM_FIRST_GLOBAL = SYM_RANGE, SYM_LAST_GLOBAL = SYM_JOINER,
    SYM_BUILTIN_COUNT
};

struct rm_template {
    jarena arena;
    char *source;             /* newline-normalised copy; data nodes point into it */
    size_t source_len;
    jnode *root;              /* N_BODY */
    jstr **syms;              /* name of each symbol (immortal strings) */
    int n_syms, cap_syms;
};

/* Parses tokens into t->root. */
rm_status jparse(rm_template *t, const jtok *toks, size_t n, rm_err *err);
/* The symbol of a name, or -1 when the template never mentions it. */
int jsym_find(const rm_template *t, const char *name, size_t len);

/* Builtin filter / test ids (filters.c); JB_UNKNOWN when Jinja has none of that name. */
#define JB_UNKNOWN 255
int jfilter_id(const char *name, size_t len);
int jtest_id(const char *name, size_t len);

#endif
