/*
 * lexer.c - template source to tokens, following jinja2/lexer.py with
 * transformers' settings: trim_blocks (the newline after a block or comment
 * tag is dropped), lstrip_blocks (spaces before a block or comment tag on
 * its own line are dropped), "-" strips all whitespace on that side, "+"
 * keeps it. Whitespace here means Python's \s, which includes Unicode spaces.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja/ast.h"
#include "jinja/unicode.h"

#define BALANCE_MAX 256

typedef struct lexer {
    jarena *arena;
    const char *s;
    size_t len, pos;
    int line;
    int line_starting;        /* the previous match ended with a newline */
    jtok *toks;
    size_t n, cap;
    rm_err *err;
} lexer;

static int lex_fail(lexer *L, int line, const char *fmt, const char *arg) {
    char msg[512];
    snprintf(msg, sizeof msg, fmt, arg);
    rm_fail(L->err, RM_ERR_TEMPLATE, "template line %d: syntax error: %s", line, msg);
    return -1;
}

static jtok *push(lexer *L, int kind, int line) {
    if (L->n == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 256;
        jtok *t = rm_realloc(L->toks, cap * sizeof(jtok));
        if (!t) {
            rm_fail(L->err, RM_ERR_NOMEM, "out of memory lexing the template");
            return NULL;
        }
        L->toks = t;
        L->cap = cap;
    }
    jtok *t = &L->toks[L->n++];
    memset(t, 0, sizeof *t);
    t->kind = (uint8_t)kind;
    t->line = line;
    return t;
}

/* Length of the Python-whitespace code point at i, or 0. */
static size_t space_at(const char *s, size_t len, size_t i) {
    if (i >= len) return 0;
    uint32_t cp;
    size_t n = ju_decode(s, len, i, &cp);
    return ju_isspace(cp) ? n : 0;
}

static size_t skip_spaces(lexer *L, size_t i) {
    size_t n;
    while ((n = space_at(L->s, L->len, i)) > 0) {
        if (L->s[i] == '\n') L->line++;
        i += n;
    }
    return i;
}

static int count_newlines(const char *s, size_t n) {
    int c = 0;
    for (size_t i = 0; i < n; i++) c += s[i] == '\n';
    return c;
}

/* Length of text[0..n) without trailing Python whitespace. */
static size_t rstrip_len(const char *s, size_t n) {
    while (n > 0) {
        /* step back to the start of the last code point */
        size_t k = n - 1;
        while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
        uint32_t cp;
        ju_decode(s, n, k, &cp);
        if (!ju_isspace(cp)) break;
        n = k;
    }
    return n;
}

/* Applies the whitespace control of the tag that follows text[0..n):
 * sign '-' strips all trailing whitespace; no sign with lstrip_blocks drops
 * the blanks between the last newline and a block/comment tag. */
static size_t strip_before_tag(lexer *L, const char *text, size_t n, char sign, int is_variable) {
    if (sign == '-') return rstrip_len(text, n);
    if (sign == '+' || is_variable) return n;
    size_t l_pos = n;
    while (l_pos > 0 && text[l_pos - 1] != '\n') l_pos--;
    if (l_pos == 0 && !L->line_starting) return n;
    if (l_pos == n) return n;           /* \s+ needs at least one character */
    size_t i = l_pos;
    while (i < n) {
        size_t k = space_at(text, n, i);
        if (!k) return n;
        i += k;
    }
    return l_pos;
}

static int emit_data(lexer *L, const char *text, size_t n, int line) {
    if (n == 0) return 0;
    jtok *t = push(L, T_DATA, line);
    if (!t) return -1;
    t->s = text;
    t->len = n;
    return 0;
}

/* `{%[-+]?\s*NAME\s*` at i: returns the position after it, or 0. */
static size_t match_tag_word(const lexer *L, size_t i, const char *word, char *sign) {
    const char *s = L->s;
    size_t len = L->len, wl = strlen(word), k;
    if (i + 2 > len || s[i] != '{' || s[i + 1] != '%') return 0;
    i += 2;
    *sign = 0;
    if (i < len && (s[i] == '-' || s[i] == '+')) *sign = s[i++];
    while ((k = space_at(s, len, i)) > 0) i += k;
    if (i + wl > len || memcmp(s + i, word, wl) != 0) return 0;
    i += wl;
    while ((k = space_at(s, len, i)) > 0) i += k;
    return i;
}

/* A block end at i for raw tags: `+%}` | `-%}\s*` | `%}\n?` (trim_blocks).
 * Returns the position after it, or 0. `allow_plus` is off for raw begin. */
static size_t match_block_end(const lexer *L, size_t i, int trim) {
    const char *s = L->s;
    size_t len = L->len, k;
    if (i + 3 <= len && s[i] == '+' && s[i + 1] == '%' && s[i + 2] == '}') return trim ? i + 3 : 0;
    if (i + 3 <= len && s[i] == '-' && s[i + 1] == '%' && s[i + 2] == '}') {
        i += 3;
        while ((k = space_at(s, len, i)) > 0) i += k;
        return i;
    }
    if (i + 2 <= len && s[i] == '%' && s[i + 1] == '}') {
        i += 2;
        if (trim && i < len && s[i] == '\n') i++;
        return i;
    }
    return 0;
}

/* Python's unicode-escape decoding of a string literal body. */
static int unescape(lexer *L, const char *s, size_t n, int line, jtok *t) {
    char *out = jarena_alloc(L->arena, n * 2 + 16);
    if (!out) return rm_fail(L->err, RM_ERR_NOMEM, "out of memory lexing the template"), -1;
    size_t o = 0, i = 0;
    while (i < n) {
        if (s[i] != '\\' || i + 1 >= n) { out[o++] = s[i++]; continue; }
        char c = s[i + 1];
        uint32_t cp;
        int digits = 0;
        i += 2;
        switch (c) {
        case '\n': continue;
        case '\\': out[o++] = '\\'; continue;
        case '\'': out[o++] = '\''; continue;
        case '"': out[o++] = '"'; continue;
        case 'a': out[o++] = 7; continue;
        case 'b': out[o++] = 8; continue;
        case 'f': out[o++] = 12; continue;
        case 'n': out[o++] = '\n'; continue;
        case 'r': out[o++] = '\r'; continue;
        case 't': out[o++] = '\t'; continue;
        case 'v': out[o++] = 11; continue;
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        case 'N': return lex_fail(L, line, "%s", "\\N{...} escapes are not supported");
        default:
            if (c >= '0' && c <= '7') {
                cp = (uint32_t)(c - '0');
                for (int k = 0; k < 2 && i < n && s[i] >= '0' && s[i] <= '7'; k++) cp = cp * 8 + (uint32_t)(s[i++] - '0');
                o += ju_encode(cp, out + o);
                continue;
            }
            if ((unsigned char)c >= 0x80) {
                /* encode('ascii', 'backslashreplace') turned the character into
                 * an escape whose backslash the user's backslash now escapes */
                size_t k = ju_decode(s, n, i - 1, &cp);
                i = i - 1 + k;
                o += (size_t)snprintf(out + o, 16, cp < 0x100 ? "\\x%02x" : cp < 0x10000 ? "\\u%04x" : "\\U%08x", cp);
                continue;
            }
            out[o++] = '\\';
            out[o++] = c;
            continue;
        }
        cp = 0;
        for (int k = 0; k < digits; k++) {
            char h = i < n ? s[i] : 0;
            int v = h >= '0' && h <= '9' ? h - '0' : (h | 32) >= 'a' && (h | 32) <= 'f' ? (h | 32) - 'a' + 10 : -1;
            if (v < 0) return lex_fail(L, line, "truncated \\%s escape in a string literal", c == 'x' ? "xXX" : c == 'u' ? "uXXXX" : "UXXXXXXXX");
            cp = cp * 16 + (uint32_t)v;
            i++;
        }
        if (cp > 0x10FFFF) return lex_fail(L, line, "%s", "illegal Unicode character in a string literal");
        if (cp >= 0xD800 && cp <= 0xDFFF) return lex_fail(L, line, "%s", "surrogate escapes are not supported");
        o += ju_encode(cp, out + o);
    }
    out[o] = 0;
    t->s = out;
    t->len = o;
    return 0;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* (\d+_)*\d+ at i: returns the end, or i when absent. */
static size_t digit_run(const char *s, size_t len, size_t i) {
    size_t j = i;
    if (j >= len || !is_digit(s[j])) return i;
    while (j < len && is_digit(s[j])) {
        j++;
        if (j + 1 < len && s[j] == '_' && is_digit(s[j + 1])) j++;
    }
    return j;
}

static int lex_number(lexer *L, size_t *pos) {
    const char *s = L->s;
    size_t len = L->len, i = *pos;
    /* float: digits ( [.digits] e[+-]digits | .digits ), not right after a dot */
    if (!(i > 0 && s[i - 1] == '.')) {
        size_t d = digit_run(s, len, i);
        size_t end = 0;
        size_t frac = (d < len && s[d] == '.') ? digit_run(s, len, d + 1) : 0;
        if (frac == d + 1) frac = 0;
        size_t e = frac ? frac : d;
        if (e < len && (s[e] | 32) == 'e') {
            size_t x = e + 1;
            if (x < len && (s[x] == '+' || s[x] == '-')) x++;
            size_t xe = digit_run(s, len, x);
            if (xe > x) end = xe;
        }
        if (!end && frac) end = frac;
        if (end) {
            char buf[128];
            size_t b = 0;
            for (size_t k = i; k < end && b < sizeof buf - 1; k++)
                if (s[k] != '_') buf[b++] = s[k];
            buf[b] = 0;
            jtok *t = push(L, T_FLOAT, L->line);
            if (!t) return -1;
            t->f = strtod(buf, NULL);
            *pos = end;
            return 0;
        }
    }
    /* integer: 0b / 0o / 0x prefixed, [1-9](_?\d)*, 0(_?0)* */
    int base = 10;
    size_t j = i, start;
    if (s[i] == '0' && i + 1 < len && strchr("bBoOxX", s[i + 1]) && s[i + 1]) {
        char p = (char)(s[i + 1] | 32);
        base = p == 'b' ? 2 : p == 'o' ? 8 : 16;
        j = i + 2;
    }
    start = j;
    uint64_t v = 0;
    int overflow = 0, any = 0;
    for (;;) {
        size_t k = j;
        if (k < len && s[k] == '_' && (base != 10 || k > start)) k++;
        if (k >= len) break;
        int d = is_digit(s[k]) ? s[k] - '0' : ((s[k] | 32) >= 'a' && (s[k] | 32) <= 'f') ? (s[k] | 32) - 'a' + 10 : 99;
        if (d >= base) break;
        if (base == 10 && s[start] == '0' && d != 0) break;   /* 0(_?0)* only */
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) overflow = 1;
        v = v * (uint64_t)base + (uint64_t)d;
        any = 1;
        j = k + 1;
    }
    if (!any) {
        if (base != 10) return lex_fail(L, L->line, "%s", "malformed integer literal");
        j = i + 1;   /* a lone 0 */
    }
    if (overflow || v > INT64_MAX) return lex_fail(L, L->line, "%s", "integer literal does not fit in 64 bits");
    jtok *t = push(L, T_INT, L->line);
    if (!t) return -1;
    t->i = (int64_t)v;
    *pos = j;
    return 0;
}

static const struct { const char *text; jop op; } operators[] = {
    {"**", OP_POW}, {"//", OP_FLOORDIV}, {"==", OP_EQ}, {"!=", OP_NE}, {">=", OP_GTEQ}, {"<=", OP_LTEQ},
    {"+", OP_ADD}, {"-", OP_SUB}, {"/", OP_DIV}, {"*", OP_MUL}, {"%", OP_MOD}, {"~", OP_TILDE},
    {"[", OP_LBRACKET}, {"]", OP_RBRACKET}, {"(", OP_LPAREN}, {")", OP_RPAREN}, {"{", OP_LBRACE},
    {"}", OP_RBRACE}, {">", OP_GT}, {"<", OP_LT}, {"=", OP_ASSIGN}, {".", OP_DOT}, {":", OP_COLON},
    {"|", OP_PIPE}, {",", OP_COMMA}, {";", OP_SEMICOLON},
};

/* The inside of {% ... %} or {{ ... }} up to and including its end. */
static int lex_tag(lexer *L, int is_block) {
    const char *s = L->s;
    size_t len = L->len;
    char balance[BALANCE_MAX];
    int depth = 0;
    int begin_line = L->line;
    for (;;) {
        size_t i = L->pos;
        if (i >= len)
            return lex_fail(L, begin_line, "unexpected end of template, %s was never closed", is_block ? "'{%'" : "'{{'");
        if (depth == 0) {
            size_t end = 0;
            if (is_block) end = match_block_end(L, i, 1);
            else if (i + 3 <= len && s[i] == '-' && s[i + 1] == '}' && s[i + 2] == '}') {
                end = i + 3;
                while (space_at(s, len, end)) end += space_at(s, len, end);
            } else if (i + 2 <= len && s[i] == '}' && s[i + 1] == '}') end = i + 2;
            if (end) {
                if (!push(L, is_block ? T_BLOCK_END : T_VAR_END, L->line)) return -1;
                L->line += count_newlines(s + i, end - i);
                L->pos = end;
                L->line_starting = s[end - 1] == '\n';
                return 0;
            }
        }
        char c = s[i];
        if (space_at(s, len, i)) { L->pos = skip_spaces(L, i); continue; }
        if (is_digit(c)) {
            if (lex_number(L, &L->pos) != 0) return -1;
            continue;
        }
        if ((c | 32) >= 'a' && (c | 32) <= 'z' ? 1 : c == '_') {
            size_t j = i + 1;
            while (j < len && (is_digit(s[j]) || s[j] == '_' || ((s[j] | 32) >= 'a' && (s[j] | 32) <= 'z'))) j++;
            jtok *t = push(L, T_NAME, L->line);
            if (!t) return -1;
            t->s = s + i;
            t->len = j - i;
            L->pos = j;
            continue;
        }
        if (c == '\'' || c == '"') {
            size_t j = i + 1;
            while (j < len && s[j] != c) j += (s[j] == '\\' && j + 1 < len) ? 2 : 1;
            if (j >= len) return lex_fail(L, L->line, "%s", "unterminated string literal");
            jtok *t = push(L, T_STRING, L->line);
            if (!t) return -1;
            if (unescape(L, s + i + 1, j - i - 1, L->line, t) != 0) return -1;
            L->line += count_newlines(s + i, j - i);
            L->pos = j + 1;
            continue;
        }
        size_t k;
        for (k = 0; k < sizeof operators / sizeof operators[0]; k++) {
            size_t ol = strlen(operators[k].text);
            if (i + ol <= len && memcmp(s + i, operators[k].text, ol) == 0) break;
        }
        if (k == sizeof operators / sizeof operators[0]) {
            char ch[8] = {0};
            uint32_t cp;
            size_t n = ju_decode(s, len, i, &cp);
            memcpy(ch, s + i, n < 7 ? n : 7);
            return lex_fail(L, L->line, "unexpected char '%s'", ch);
        }
        jop op = operators[k].op;
        if (op == OP_LBRACE || op == OP_LPAREN || op == OP_LBRACKET) {
            if (depth == BALANCE_MAX) return lex_fail(L, L->line, "%s", "brackets nested too deeply");
            balance[depth++] = op == OP_LBRACE ? '}' : op == OP_LPAREN ? ')' : ']';
        } else if (op == OP_RBRACE || op == OP_RPAREN || op == OP_RBRACKET) {
            char ch[2] = {c, 0};
            if (depth == 0) return lex_fail(L, L->line, "unexpected '%s'", ch);
            if (balance[depth - 1] != c) {
                char msg[64];
                snprintf(msg, sizeof msg, "unexpected '%c', expected '%c'", c, balance[depth - 1]);
                return lex_fail(L, L->line, "%s", msg);
            }
            depth--;
        }
        jtok *t = push(L, T_OP, L->line);
        if (!t) return -1;
        t->op = (uint8_t)op;
        L->pos = i + strlen(operators[k].text);
    }
}

rm_status jlex(jarena *arena, const char *src, size_t len, jtok **out, size_t *n_out, rm_err *err) {
    lexer L = {.arena = arena, .s = src, .len = len, .line = 1, .line_starting = 1, .err = err};
    *out = NULL;
    *n_out = 0;
    while (L.pos < len) {
        /* the next tag start */
        size_t i = L.pos;
        const char *p = src + i;
        for (;;) {
            p = memchr(p, '{', len - (size_t)(p - src));
            if (!p || p + 1 >= src + len) { p = NULL; break; }
            if (p[1] == '{' || p[1] == '%' || p[1] == '#') break;
            p++;
        }
        if (!p) {
            if (emit_data(&L, src + L.pos, len - L.pos, L.line) != 0) goto fail;
            L.pos = len;
            break;
        }
        i = (size_t)(p - src);
        char kind = p[1];
        char sign = (i + 2 < len && (p[2] == '-' || p[2] == '+')) ? p[2] : 0;
        size_t raw_end = 0;
        if (kind == '%') {
            char rs;
            size_t w = match_tag_word(&L, i, "raw", &rs);
            if (w) {
                /* raw begin: `-%}\s*` or a plain `%}` (no trim_blocks here) */
                size_t e = match_block_end(&L, w, 0);
                if (e && src[w] != '+') raw_end = e;
            }
        }
        const char *text = src + L.pos;
        size_t text_len = i - L.pos;
        int text_line = L.line;
        size_t kept = strip_before_tag(&L, text, text_len, sign, kind == '{');
        if (emit_data(&L, text, kept, text_line) != 0) goto fail;
        L.line += count_newlines(text, text_len);
        L.line_starting = 0;
        if (raw_end) {
            L.line += count_newlines(src + i, raw_end - i);
            L.line_starting = src[raw_end - 1] == '\n';
            L.pos = raw_end;
            /* find {%[-+]?\s*endraw\s*(end) */
            size_t k = L.pos, found = 0, after = 0;
            char esign = 0;
            while (k + 1 < len) {
                const char *q = memchr(src + k, '{', len - k);
                if (!q) break;
                k = (size_t)(q - src);
                size_t w = match_tag_word(&L, k, "endraw", &esign);
                if (w) {
                    after = match_block_end(&L, w, 1);
                    if (after) { found = 1; break; }
                }
                k++;
            }
            if (!found) {
                rm_fail(err, RM_ERR_TEMPLATE, "template line %d: syntax error: Missing end of raw directive", L.line);
                goto fail;
            }
            const char *body = src + L.pos;
            size_t body_len = k - L.pos;
            size_t keep = strip_before_tag(&L, body, body_len, esign, 0);
            if (emit_data(&L, body, keep, L.line) != 0) goto fail;
            L.line += count_newlines(src + L.pos, after - L.pos);
            L.line_starting = src[after - 1] == '\n';
            L.pos = after;
            continue;
        }
        L.pos = i + 2 + (sign ? 1 : 0);
        if (kind == '#') {
            /* the first #} (taking a sign just before it) ends the comment */
            size_t k = L.pos;
            const char *q = NULL;
            while (k + 1 < len) {
                q = memchr(src + k, '#', len - k - 1);
                if (!q) break;
                if (q[1] == '}') break;
                k = (size_t)(q - src) + 1;
                q = NULL;
            }
            if (!q) {
                rm_fail(err, RM_ERR_TEMPLATE, "template line %d: syntax error: Missing end of comment tag", L.line);
                goto fail;
            }
            size_t j = (size_t)(q - src), end = j + 2;
            char csign = (j > L.pos && (src[j - 1] == '-' || src[j - 1] == '+')) ? src[j - 1] : 0;
            if (csign == '-') {
                while (space_at(src, len, end)) end += space_at(src, len, end);
            } else if (csign != '+' && end < len && src[end] == '\n') {
                end++;
            }
            L.line += count_newlines(src + L.pos, end - L.pos);
            L.line_starting = src[end - 1] == '\n';
            L.pos = end;
            continue;
        }
        if (!push(&L, kind == '%' ? T_BLOCK_BEGIN : T_VAR_BEGIN, L.line)) goto fail;
        if (lex_tag(&L, kind == '%') != 0) goto fail;
    }
    if (!push(&L, T_EOF, L.line)) goto fail;
    *out = L.toks;
    *n_out = L.n;
    return RM_OK;
fail:
    rm_mfree(L.toks);
    return err ? err->status : RM_ERR_TEMPLATE;
}
