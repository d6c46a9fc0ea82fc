/*
 * methods.c - the Python methods templates call on values: str (split,
 * strip, startswith, replace, ...), dict (get, items, keys, values), list
 * and tuple (index, count), and loop.cycle / loop.changed. The mutating
 * methods (list.append, dict.update, ...) exist so that calling them gives
 * the SecurityError of transformers' ImmutableSandboxedEnvironment.
 * Every string result keeps the mask of the bytes it came from.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "jinja/eval.h"
#include "jinja/unicode.h"

enum {
    M_STR = 1, M_DICT = 2, M_LIST = 4, M_TUPLE = 8, M_LOOP = 16
};

enum method_id {
    /* str */
    S_SPLIT, S_RSPLIT, S_STRIP, S_LSTRIP, S_RSTRIP, S_STARTSWITH, S_ENDSWITH, S_REPLACE, S_UPPER, S_LOWER,
    S_TITLE, S_CAPITALIZE, S_SWAPCASE, S_CASEFOLD, S_FIND, S_RFIND, S_INDEX, S_RINDEX, S_COUNT, S_FORMAT,
    S_JOIN, S_SPLITLINES, S_ISDIGIT, S_ISALPHA, S_ISALNUM, S_ISSPACE, S_ISLOWER, S_ISUPPER, S_ISNUMERIC,
    S_ISDECIMAL, S_ZFILL, S_LJUST, S_RJUST, S_CENTER, S_PARTITION, S_RPARTITION, S_REMOVEPREFIX,
    S_REMOVESUFFIX,
    /* dict */
    D_GET, D_ITEMS, D_KEYS, D_VALUES, D_COPY, D_POP, D_POPITEM, D_SETDEFAULT, D_UPDATE, D_CLEAR,
    /* list / tuple */
    L_INDEX, L_COUNT, L_COPY, L_APPEND, L_EXTEND, L_INSERT, L_POP, L_REMOVE, L_REVERSE, L_SORT, L_CLEAR,
    /* loop */
    P_CYCLE, P_CHANGED,
    N_METHODS
};

static const struct {
    const char *name;
    int types;
    int unsafe;
} methods[N_METHODS] = {
    [S_SPLIT] = {"split", M_STR, 0}, [S_RSPLIT] = {"rsplit", M_STR, 0}, [S_STRIP] = {"strip", M_STR, 0},
    [S_LSTRIP] = {"lstrip", M_STR, 0}, [S_RSTRIP] = {"rstrip", M_STR, 0},
    [S_STARTSWITH] = {"startswith", M_STR, 0}, [S_ENDSWITH] = {"endswith", M_STR, 0},
    [S_REPLACE] = {"replace", M_STR, 0}, [S_UPPER] = {"upper", M_STR, 0}, [S_LOWER] = {"lower", M_STR, 0},
    [S_TITLE] = {"title", M_STR, 0}, [S_CAPITALIZE] = {"capitalize", M_STR, 0},
    [S_SWAPCASE] = {"swapcase", M_STR, 0}, [S_CASEFOLD] = {"casefold", M_STR, 0}, [S_FIND] = {"find", M_STR, 0},
    [S_RFIND] = {"rfind", M_STR, 0}, [S_INDEX] = {"index", M_STR, 0}, [S_RINDEX] = {"rindex", M_STR, 0},
    [S_COUNT] = {"count", M_STR, 0}, [S_FORMAT] = {"format", M_STR, 0}, [S_JOIN] = {"join", M_STR, 0},
    [S_SPLITLINES] = {"splitlines", M_STR, 0}, [S_ISDIGIT] = {"isdigit", M_STR, 0},
    [S_ISALPHA] = {"isalpha", M_STR, 0}, [S_ISALNUM] = {"isalnum", M_STR, 0}, [S_ISSPACE] = {"isspace", M_STR, 0},
    [S_ISLOWER] = {"islower", M_STR, 0}, [S_ISUPPER] = {"isupper", M_STR, 0},
    [S_ISNUMERIC] = {"isnumeric", M_STR, 0}, [S_ISDECIMAL] = {"isdecimal", M_STR, 0},
    [S_ZFILL] = {"zfill", M_STR, 0}, [S_LJUST] = {"ljust", M_STR, 0}, [S_RJUST] = {"rjust", M_STR, 0},
    [S_CENTER] = {"center", M_STR, 0}, [S_PARTITION] = {"partition", M_STR, 0},
    [S_RPARTITION] = {"rpartition", M_STR, 0}, [S_REMOVEPREFIX] = {"removeprefix", M_STR, 0},
    [S_REMOVESUFFIX] = {"removesuffix", M_STR, 0},
    [D_GET] = {"get", M_DICT, 0}, [D_ITEMS] = {"items", M_DICT, 0}, [D_KEYS] = {"keys", M_DICT, 0},
    [D_VALUES] = {"values", M_DICT, 0}, [D_COPY] = {"copy", M_DICT, 0}, [D_POP] = {"pop", M_DICT, 1},
    [D_POPITEM] = {"popitem", M_DICT, 1}, [D_SETDEFAULT] = {"setdefault", M_DICT, 1},
    [D_UPDATE] = {"update", M_DICT, 1}, [D_CLEAR] = {"clear", M_DICT, 1},
    [L_INDEX] = {"index", M_LIST | M_TUPLE, 0}, [L_COUNT] = {"count", M_LIST | M_TUPLE, 0},
    [L_COPY] = {"copy", M_LIST, 0}, [L_APPEND] = {"append", M_LIST, 1}, [L_EXTEND] = {"extend", M_LIST, 1},
    [L_INSERT] = {"insert", M_LIST, 1}, [L_POP] = {"pop", M_LIST, 1}, [L_REMOVE] = {"remove", M_LIST, 1},
    [L_REVERSE] = {"reverse", M_LIST, 1}, [L_SORT] = {"sort", M_LIST, 1}, [L_CLEAR] = {"clear", M_LIST, 1},
    [P_CYCLE] = {"cycle", M_LOOP, 0}, [P_CHANGED] = {"changed", M_LOOP, 0},
};

static int type_bit(jval v) {
    switch (v.kind) {
    case JV_STR: return M_STR;
    case JV_DICT: return M_DICT;
    case JV_LIST:
        return jv_list(v)->h.flags == JL_LIST ? M_LIST : jv_list(v)->h.flags == JL_TUPLE ? M_TUPLE : 0;
    case JV_LOOP: return M_LOOP;
    default: return 0;
    }
}

int jmethod_find(jval v, const char *name, size_t len) {
    int bit = type_bit(v);
    if (!bit) return -1;
    for (int i = 0; i < N_METHODS; i++)
        if ((methods[i].types & bit) && strlen(methods[i].name) == len && memcmp(methods[i].name, name, len) == 0)
            return i;
    return -1;
}

int jmethod_is_unsafe(int id) { return id >= 0 && id < N_METHODS && methods[id].unsafe; }
const char *jmethod_name(int id) { return id >= 0 && id < N_METHODS ? methods[id].name : "?"; }

/* ---------------------------------------------------------------- string helpers */

static int ret_str(jctx *ctx, jstr *s, jval *out) {
    if (!s) return -1;
    *out = jv_obj(JV_STR, s);
    return 0;
}

/* Is code point cp one of the code points of chars? */
static int in_chars(const jstr *chars, uint32_t cp) {
    for (size_t i = 0; i < chars->len;) {
        uint32_t c;
        i += ju_decode(chars->s, chars->len, i, &c);
        if (c == cp) return 1;
    }
    return 0;
}

static size_t prev_cp(const char *s, size_t i) {
    size_t k = i - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    return k;
}

int jstr_strip(jctx *ctx, const jstr *s, const jstr *chars, int left, int right, jval *out) {
    size_t a = 0, b = s->len;
    uint32_t cp;
    if (left)
        while (a < b) {
            size_t k = ju_decode(s->s, b, a, &cp);
            if (chars ? !in_chars(chars, cp) : !ju_isspace(cp)) break;
            a += k;
        }
    if (right)
        while (b > a) {
            size_t k = prev_cp(s->s, b);
            ju_decode(s->s, b, k, &cp);
            if (chars ? !in_chars(chars, cp) : !ju_isspace(cp)) break;
            b = k;
        }
    if (a == 0 && b == s->len && s->h.rc >= 0) {
        jval v = jv_obj(JV_STR, (jstr *)s);
        *out = jv_retain(v);
        return 0;
    }
    return ret_str(ctx, jstr_sub(ctx, s, a, b), out);
}

/* Python's full case mappings that are not one to one (SpecialCasing.txt,
 * the unconditional ones templates can meet); NULL when the simple mapping
 * applies. title: the titlecase form used by capitalize() / title(). */
static const char *special_case(uint32_t cp, int upper, int title) {
    if (!upper) return cp == 0x130 ? "i\xcc\x87" : NULL;
    switch (cp) {
    case 0xDF: return title ? "Ss" : "SS";
    case 0x149: return title ? "\xca\xbcN" : "\xca\xbcN";
    case 0xFB00: return title ? "Ff" : "FF";
    case 0xFB01: return title ? "Fi" : "FI";
    case 0xFB02: return title ? "Fl" : "FL";
    case 0xFB03: return title ? "Ffi" : "FFI";
    case 0xFB04: return title ? "Ffl" : "FFL";
    case 0xFB05:
    case 0xFB06: return title ? "St" : "ST";
    default: return NULL;
    }
}

/* Case mapping code point by code point; each output code point keeps the
 * mark of its source. mode: 0 lower, 1 upper, 2 capitalize, 3 Jinja's title
 * filter, 4 str.title, 5 swapcase. */
int jstr_case(jctx *ctx, const jstr *s, int mode, jval *out) {
    jsb b = {0};
    int prev_cased = 0, word_start = 1, first = 1;
    for (size_t i = 0; i < s->len;) {
        uint32_t cp, m;
        size_t k = ju_decode(s->s, s->len, i, &cp);
        int to_upper = -1, title = 0;   /* which way this code point goes, for special_case */
        switch (mode) {
        case 0: m = ju_lower(cp); break;
        case 1: m = ju_upper(cp); break;
        case 2: m = first ? ju_upper(cp) : ju_lower(cp); break;
        case 3: {
            /* words are split at runs of [-\s({\[<]; each word: first upper, rest lower */
            int sep = cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || ju_isspace(cp);
            if (sep) { m = cp; word_start = 1; }
            else { m = word_start ? ju_upper(cp) : ju_lower(cp); word_start = 0; }
            break;
        }
        case 4:
            m = prev_cased ? ju_lower(cp) : ju_upper(cp);
            prev_cased = ju_isupper(cp) || ju_islower(cp);
            break;
        default: m = ju_isupper(cp) ? ju_lower(cp) : ju_islower(cp) ? ju_upper(cp) : cp; break;
        }
        if (m != cp || cp >= 0x80) {
            if (m == ju_upper(cp) && mode != 0) to_upper = 1, title = (mode == 2 || mode == 3 || mode == 4);
            else if (m == ju_lower(cp)) to_upper = 0;
        }
        first = 0;
        char enc[8];
        size_t n = ju_encode(m, enc);
        if (m == cp) { memcpy(enc, s->s + i, k); n = k; }   /* keep the exact bytes when unchanged */
        const char *sp = to_upper >= 0 ? special_case(cp, to_upper, title) : NULL;
        if (sp) { n = strlen(sp); memcpy(enc, sp, n); }
        if (!jsb_putmark(ctx, &b, enc, n, s->mask && s->mask[i])) { jsb_free(&b); return -1; }
        i += k;
    }
    return ret_str(ctx, jsb_finish(ctx, &b), out);
}

int jstr_replace(jctx *ctx, const jstr *s, const jstr *old, const jstr *rep, int64_t count, jval *out) {
    jsb b = {0};
    int64_t done = 0;
    if (old->len == 0) {
        /* Python inserts the replacement before every character and at the end */
        size_t i = 0;
        while (count < 0 || done < count) {
            if (!jsb_str(ctx, &b, rep)) goto fail;
            done++;
            if (i >= s->len) break;
            uint32_t cp;
            size_t k = ju_decode(s->s, s->len, i, &cp);
            if (!jsb_put(ctx, &b, s->s + i, k, s->mask ? s->mask + i : NULL)) goto fail;
            i += k;
        }
        if (i < s->len && !jsb_put(ctx, &b, s->s + i, s->len - i, s->mask ? s->mask + i : NULL)) goto fail;
    } else {
        size_t i = 0;
        while (i <= s->len && (count < 0 || done < count)) {
            const char *hit = memmem(s->s + i, s->len - i, old->s, old->len);
            if (!hit) break;
            size_t at = (size_t)(hit - s->s);
            if (!jsb_put(ctx, &b, s->s + i, at - i, s->mask ? s->mask + i : NULL) || !jsb_str(ctx, &b, rep)) goto fail;
            i = at + old->len;
            done++;
        }
        if (!jsb_put(ctx, &b, s->s + i, s->len - i, s->mask ? s->mask + i : NULL)) goto fail;
    }
    if (jctx_work(ctx, b.len / 256) != 0) goto fail;
    return ret_str(ctx, jsb_finish(ctx, &b), out);
fail:
    jsb_free(&b);
    return -1;
}

int jstr_splitlines(jctx *ctx, const jstr *s, int keepends, jlist **out) {
    jlist *l = jlist_new(ctx, 0, JL_LIST);
    if (!l) return -1;
    size_t start = 0, i = 0;
    while (i < s->len) {
        uint32_t cp;
        size_t k = ju_decode(s->s, s->len, i, &cp);
        if (ju_islinebreak(cp)) {
            size_t end = i, next = i + k;
            if (cp == '\r' && next < s->len && s->s[next] == '\n') next++;
            jstr *line = jstr_sub(ctx, s, start, keepends ? next : end);
            if (!line || jlist_push(ctx, l, jv_obj(JV_STR, line)) != 0) { jobj_release(ctx, &l->h); return -1; }
            start = i = next;
            continue;
        }
        i += k;
    }
    if (start < s->len) {
        jstr *line = jstr_sub(ctx, s, start, s->len);
        if (!line || jlist_push(ctx, l, jv_obj(JV_STR, line)) != 0) { jobj_release(ctx, &l->h); return -1; }
    }
    *out = l;
    return 0;
}

/* str.split / str.rsplit */
static int split(jctx *ctx, const jstr *s, const jstr *sep, int64_t maxsplit, int from_right, jval *out) {
    jlist *l = jlist_new(ctx, 0, JL_LIST);
    if (!l) return -1;
    *out = jv_obj(JV_LIST, l);
    /* pieces are collected as [a, b) byte ranges */
    size_t *ranges = NULL, n = 0, cap = 0;
#define ADD_RANGE(x, y)                                                              \
    do {                                                                             \
        if (n + 2 > cap) {                                                           \
            cap = cap ? cap * 2 : 16;                                                \
            size_t *nr = rm_realloc(ranges, cap * sizeof(size_t));                   \
            if (!nr) { rm_mfree(ranges); return jfail_nomem(ctx); }                  \
            ranges = nr;                                                             \
        }                                                                            \
        ranges[n++] = (x);                                                           \
        ranges[n++] = (y);                                                           \
    } while (0)
    if (sep) {
        if (sep->len == 0) return jfail(ctx, RM_ERR_TEMPLATE, "ValueError: empty separator");
        if (!from_right) {
            size_t i = 0;
            int64_t splits = 0;
            for (;;) {
                const char *hit = (maxsplit < 0 || splits < maxsplit) ? memmem(s->s + i, s->len - i, sep->s, sep->len) : NULL;
                if (!hit) { ADD_RANGE(i, s->len); break; }
                size_t at = (size_t)(hit - s->s);
                ADD_RANGE(i, at);
                i = at + sep->len;
                splits++;
            }
        } else {
            size_t end = s->len;
            int64_t splits = 0;
            for (;;) {
                size_t found = SIZE_MAX;
                if ((maxsplit < 0 || splits < maxsplit) && end >= sep->len)
                    for (size_t k = end - sep->len + 1; k-- > 0;)
                        if (memcmp(s->s + k, sep->s, sep->len) == 0) { found = k; break; }
                if (found == SIZE_MAX) { ADD_RANGE(0, end); break; }
                ADD_RANGE(found + sep->len, end);
                end = found;
                splits++;
            }
        }
    } else if (!from_right) {
        size_t i = 0;
        int64_t splits = 0;
        uint32_t cp;
        for (;;) {
            while (i < s->len) { size_t k = ju_decode(s->s, s->len, i, &cp); if (!ju_isspace(cp)) break; i += k; }
            if (i >= s->len) break;
            if (maxsplit >= 0 && splits >= maxsplit) {
                ADD_RANGE(i, s->len);
                break;
            }
            size_t j = i;
            while (j < s->len) { size_t k = ju_decode(s->s, s->len, j, &cp); if (ju_isspace(cp)) break; j += k; }
            ADD_RANGE(i, j);
            splits++;
            i = j;
        }
    } else {
        size_t end = s->len;
        int64_t splits = 0;
        uint32_t cp;
        for (;;) {
            while (end > 0) { size_t k = prev_cp(s->s, end); ju_decode(s->s, end, k, &cp); if (!ju_isspace(cp)) break; end = k; }
            if (end == 0) break;
            if (maxsplit >= 0 && splits >= maxsplit) {
                ADD_RANGE(0, end);
                break;
            }
            size_t a = end;
            while (a > 0) { size_t k = prev_cp(s->s, a); ju_decode(s->s, a, k, &cp); if (ju_isspace(cp)) break; a = k; }
            ADD_RANGE(a, end);
            splits++;
            end = a;
        }
    }
#undef ADD_RANGE
    size_t pieces = n / 2;
    for (size_t p = 0; p < pieces; p++) {
        size_t idx = from_right ? pieces - 1 - p : p;
        jstr *piece = jstr_sub(ctx, s, ranges[2 * idx], ranges[2 * idx + 1]);
        if (!piece || jlist_push(ctx, l, jv_obj(JV_STR, piece)) != 0) { rm_mfree(ranges); return -1; }
    }
    rm_mfree(ranges);
    return jctx_work(ctx, pieces / 16);
}

/* Byte offset of the code point index i (negative from the end, clamped). */
static size_t cp_clamp(const jstr *s, int64_t i, int64_t n) {
    if (i < 0) { i += n; if (i < 0) i = 0; }
    if (i > n) i = n;
    return (s->h.flags & JS_ASCII) ? (size_t)i : ju_offset(s->s, s->len, (size_t)i);
}

static int64_t byte_to_cp(const jstr *s, size_t off) {
    return (s->h.flags & JS_ASCII) ? (int64_t)off : (int64_t)ju_count(s->s, off);
}

static int opt_int(jctx *ctx, const char *what, jval v, int have, int64_t dflt, int64_t *out) {
    if (!have || v.kind == JV_NONE) { *out = dflt; return 0; }
    if (v.kind == JV_INT || v.kind == JV_BOOL) { *out = v.u.i; return 0; }
    return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: %s: slice indices must be integers or None", what);
}

static int want_str_arg(jctx *ctx, const char *what, jval v, const jstr **out) {
    if (v.kind == JV_STR) { *out = jv_str(v); return 0; }
    if (v.kind == JV_UNDEF) return jfail_undefined(ctx, v);
    return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: %s arg must be str, not %s", what, jv_type_name(v));
}

/* find / rfind / index / rindex / count over s[start:end] */
static int search(jctx *ctx, const jstr *s, int id, const jargs *a, jval *out) {
    static const char *const names[] = {"sub", "start", "end"};
    const char *what = methods[id].name;
    jval sl[3];
    int have[3];
    const jstr *sub = NULL;
    if (jargs_bind(ctx, what, a, names, 3, sl, have) != 0) return -1;
    if (!have[0]) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: %s() takes at least 1 argument (0 given)", what);
    if (want_str_arg(ctx, what, sl[0], &sub) != 0) return -1;
    int64_t n = (int64_t)jstr_cplen(s), st = 0, en = 0;
    if (opt_int(ctx, what, sl[1], have[1], 0, &st) != 0 || opt_int(ctx, what, sl[2], have[2], n, &en) != 0) return -1;
    size_t a0 = cp_clamp(s, st, n), b0 = cp_clamp(s, en, n);
    if (id == S_COUNT) {
        int64_t c = 0;
        if (b0 < a0) { *out = jv_int(0); return 0; }
        if (sub->len == 0) { *out = jv_int(byte_to_cp(s, b0) - byte_to_cp(s, a0) + 1); return 0; }
        for (size_t i = a0; i + sub->len <= b0;) {
            const char *hit = memmem(s->s + i, b0 - i, sub->s, sub->len);
            if (!hit) break;
            c++;
            i = (size_t)(hit - s->s) + sub->len;
        }
        *out = jv_int(c);
        return 0;
    }
    int64_t found = -1;
    if (b0 >= a0 && b0 - a0 >= sub->len) {
        if (id == S_FIND || id == S_INDEX) {
            const char *hit = memmem(s->s + a0, b0 - a0, sub->s, sub->len);
            if (hit) found = byte_to_cp(s, (size_t)(hit - s->s));
        } else {
            for (size_t k = b0 - sub->len + 1; k-- > a0;)
                if (memcmp(s->s + k, sub->s, sub->len) == 0) { found = byte_to_cp(s, k); break; }
        }
    }
    if (found < 0 && (id == S_INDEX || id == S_RINDEX))
        return jfail(ctx, RM_ERR_TEMPLATE, "ValueError: substring not found");
    *out = jv_int(found);
    return 0;
}

static int affix(jctx *ctx, const jstr *s, jval prefix, int at_end, const char *what, int *out) {
    if (prefix.kind == JV_LIST && jv_list(prefix)->h.flags == JL_TUPLE) {
        jlist *t = jv_list(prefix);
        *out = 0;
        for (size_t i = 0; i < t->len && !*out; i++)
            if (affix(ctx, s, t->v[i], at_end, what, out) != 0) return -1;
        return 0;
    }
    if (prefix.kind != JV_STR)
        return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: %s first arg must be str or a tuple of str, not %s", what,
                     jv_type_name(prefix));
    const jstr *p = jv_str(prefix);
    *out = p->len <= s->len && memcmp(at_end ? s->s + s->len - p->len : s->s, p->s, p->len) == 0;
    return 0;
}

static int str_class(const jstr *s, int id) {
    if (s->len == 0) return 0;
    int cased = 0;
    for (size_t i = 0; i < s->len;) {
        uint32_t cp;
        i += ju_decode(s->s, s->len, i, &cp);
        switch (id) {
        case S_ISDIGIT:
        case S_ISNUMERIC:
        case S_ISDECIMAL: if (!ju_isdigit(cp)) return 0; break;
        case S_ISALPHA: if (!ju_isalpha(cp)) return 0; break;
        case S_ISALNUM: if (!ju_isalnum(cp)) return 0; break;
        case S_ISSPACE: if (!ju_isspace(cp)) return 0; break;
        case S_ISLOWER: if (ju_isupper(cp)) return 0; cased |= ju_islower(cp); break;
        case S_ISUPPER: if (ju_islower(cp)) return 0; cased |= ju_isupper(cp); break;
        }
    }
    return (id == S_ISLOWER || id == S_ISUPPER) ? cased : 1;
}

/* ljust / rjust / center / zfill */
static int pad(jctx *ctx, const jstr *s, int id, const jargs *a, jval *out) {
    static const char *const names[] = {"width", "fillchar"};
    jval sl[2];
    int have[2] = {0, 0};
    if (jargs_bind(ctx, methods[id].name, a, names, id == S_ZFILL ? 1 : 2, sl, have) != 0) return -1;
    if (!have[0] || (sl[0].kind != JV_INT && sl[0].kind != JV_BOOL))
        return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: %s() needs an integer width", methods[id].name);
    const char *fill = " ";
    size_t fill_len = 1;
    if (have[1]) {
        if (sl[1].kind != JV_STR || jstr_cplen(jv_str(sl[1])) != 1)
            return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: The fill character must be exactly one character long");
        fill = jv_str(sl[1])->s;
        fill_len = jv_str(sl[1])->len;
    }
    int64_t width = sl[0].u.i, len = (int64_t)jstr_cplen(s);
    if (width <= len) {
        jval v = jv_obj(JV_STR, (jstr *)s);
        *out = s->h.rc >= 0 ? jv_retain(v) : jv_undef();
        if (s->h.rc < 0) return ret_str(ctx, jstr_new(ctx, s->s, s->len, s->mask), out);
        return 0;
    }
    if ((uint64_t)width > ctx->max_output) return jfail(ctx, RM_ERR_LIMIT, "%s(): width exceeds the output bound", methods[id].name);
    int64_t total = width - len, left;
    if (id == S_LJUST) left = 0;
    else if (id == S_RJUST || id == S_ZFILL) left = total;
    else left = total / 2 + (total & width & 1);
    jsb b = {0};
    size_t start = 0;
    if (id == S_ZFILL) {
        fill = "0";
        if (s->len && (s->s[0] == '+' || s->s[0] == '-')) { jsb_put(ctx, &b, s->s, 1, s->mask); start = 1; }
    }
    for (int64_t i = 0; i < left; i++) jsb_put(ctx, &b, fill, fill_len, NULL);
    jsb_put(ctx, &b, s->s + start, s->len - start, s->mask ? s->mask + start : NULL);
    for (int64_t i = left; i < total; i++) jsb_put(ctx, &b, fill, fill_len, NULL);
    if (ctx->failed) { jsb_free(&b); return -1; }
    return ret_str(ctx, jsb_finish(ctx, &b), out);
}

static int partition(jctx *ctx, const jstr *s, const jargs *a, int from_right, jval *out) {
    const jstr *sep = NULL;
    if (a->n != 1 || a->nkw) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: partition() takes exactly one argument");
    if (want_str_arg(ctx, "partition", a->pos[0], &sep) != 0) return -1;
    if (!sep->len) return jfail(ctx, RM_ERR_TEMPLATE, "ValueError: empty separator");
    size_t at = SIZE_MAX;
    if (!from_right) {
        const char *hit = memmem(s->s, s->len, sep->s, sep->len);
        if (hit) at = (size_t)(hit - s->s);
    } else if (s->len >= sep->len) {
        for (size_t k = s->len - sep->len + 1; k-- > 0;)
            if (memcmp(s->s + k, sep->s, sep->len) == 0) { at = k; break; }
    }
    jlist *t = jlist_new(ctx, 3, JL_TUPLE);
    if (!t) return -1;
    *out = jv_obj(JV_LIST, t);
    jstr *p[3];
    if (at == SIZE_MAX) {
        p[from_right ? 2 : 0] = jstr_sub(ctx, s, 0, s->len);
        p[1] = jstr_cstr(ctx, "");
        p[from_right ? 0 : 2] = jstr_cstr(ctx, "");
    } else {
        p[0] = jstr_sub(ctx, s, 0, at);
        p[1] = jstr_sub(ctx, s, at, at + sep->len);
        p[2] = jstr_sub(ctx, s, at + sep->len, s->len);
    }
    for (int i = 0; i < 3; i++) {
        if (!p[i]) return -1;
        t->v[t->len++] = jv_obj(JV_STR, p[i]);
    }
    return 0;
}

/* str.format with plain fields: {} {0} {name} and !s / !r; format specs are refused. */
static int str_format(jctx *ctx, const jstr *s, const jargs *a, jval *out) {
    jsb b = {0};
    size_t auto_idx = 0;
    for (size_t i = 0; i < s->len; i++) {
        char c = s->s[i];
        if (c == '}') {
            if (i + 1 < s->len && s->s[i + 1] == '}') { jsb_put(ctx, &b, "}", 1, NULL); i++; continue; }
            jsb_free(&b);
            return jfail(ctx, RM_ERR_TEMPLATE, "ValueError: Single '}' encountered in format string");
        }
        if (c != '{') { jsb_put(ctx, &b, s->s + i, 1, s->mask ? s->mask + i : NULL); continue; }
        if (i + 1 < s->len && s->s[i + 1] == '{') { jsb_put(ctx, &b, "{", 1, NULL); i++; continue; }
        size_t j = i + 1;
        while (j < s->len && s->s[j] != '}') j++;
        if (j >= s->len) { jsb_free(&b); return jfail(ctx, RM_ERR_TEMPLATE, "ValueError: expected '}' before end of string"); }
        const char *f = s->s + i + 1;
        size_t fl = j - i - 1, nl = 0;
        while (nl < fl && f[nl] != '!' && f[nl] != ':') nl++;
        int conv_repr = 0;
        if (nl < fl && f[nl] == '!') {
            if (nl + 2 > fl || (f[nl + 1] != 'r' && f[nl + 1] != 's') || (nl + 2 < fl && f[nl + 2] != ':')) {
                jsb_free(&b);
                return jfail(ctx, RM_ERR_TEMPLATE, "ValueError: unknown conversion in format string");
            }
            conv_repr = f[nl + 1] == 'r';
            if (nl + 2 < fl) { jsb_free(&b); return jfail(ctx, RM_ERR_TEMPLATE, "str.format(): format specs are not supported"); }
        } else if (nl < fl) {
            jsb_free(&b);
            return jfail(ctx, RM_ERR_TEMPLATE, "str.format(): format specs are not supported");
        }
        jval arg = jv_undef();
        int found = 0;
        if (nl == 0) {
            if (auto_idx < a->n) { arg = a->pos[auto_idx]; found = 1; }
            auto_idx++;
        } else if (f[0] >= '0' && f[0] <= '9') {
            size_t idx = (size_t)strtoul(f, NULL, 10);
            if (idx < a->n) { arg = a->pos[idx]; found = 1; }
        } else {
            for (size_t k = 0; k < a->nkw; k++)
                if (a->kname[k]->len == nl && memcmp(a->kname[k]->s, f, nl) == 0) { arg = a->kval[k]; found = 1; }
        }
        if (!found) {
            jsb_free(&b);
            return jfail(ctx, RM_ERR_TEMPLATE, "IndexError/KeyError: replacement field {%.*s} has no argument", (int)nl, f);
        }
        if (jv_write(ctx, &b, arg, conv_repr) != 0) { jsb_free(&b); return -1; }
        i = j;
    }
    if (ctx->failed) { jsb_free(&b); return -1; }
    return ret_str(ctx, jsb_finish(ctx, &b), out);
}

/* ---------------------------------------------------------------- dispatch */

static int no_args(jctx *ctx, int id, const jargs *a) {
    if (a->n || a->nkw) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: %s() takes no arguments", methods[id].name);
    return 0;
}

static int str_method(jctx *ctx, const jstr *s, int id, const jargs *a, jval *out) {
    switch (id) {
    case S_SPLIT:
    case S_RSPLIT: {
        static const char *const names[] = {"sep", "maxsplit"};
        jval sl[2];
        int have[2];
        int64_t maxsplit = -1;
        const jstr *sep = NULL;
        if (jargs_bind(ctx, methods[id].name, a, names, 2, sl, have) != 0) return -1;
        if (have[0] && sl[0].kind != JV_NONE && want_str_arg(ctx, methods[id].name, sl[0], &sep) != 0) return -1;
        if (have[1]) {
            if (sl[1].kind != JV_INT && sl[1].kind != JV_BOOL)
                return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: '%s' object cannot be interpreted as an integer",
                             jv_type_name(sl[1]));
            maxsplit = sl[1].u.i;
        }
        return split(ctx, s, sep, maxsplit, id == S_RSPLIT, out);
    }
    case S_STRIP:
    case S_LSTRIP:
    case S_RSTRIP: {
        const jstr *chars = NULL;
        if (a->nkw || a->n > 1) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: %s() takes at most 1 argument", methods[id].name);
        if (a->n && a->pos[0].kind != JV_NONE && want_str_arg(ctx, methods[id].name, a->pos[0], &chars) != 0) return -1;
        return jstr_strip(ctx, s, chars, id != S_RSTRIP, id != S_LSTRIP, out);
    }
    case S_STARTSWITH:
    case S_ENDSWITH: {
        if (a->n < 1 || a->nkw) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: %s() takes at least 1 argument", methods[id].name);
        const jstr *target = s;
        jstr *sub = NULL;
        if (a->n > 1) {
            int64_t n = (int64_t)jstr_cplen(s), st = 0, en = 0;
            if (opt_int(ctx, methods[id].name, a->pos[1], 1, 0, &st) != 0 ||
                opt_int(ctx, methods[id].name, a->n > 2 ? a->pos[2] : jv_none(), a->n > 2, n, &en) != 0)
                return -1;
            size_t x = cp_clamp(s, st, n), y = cp_clamp(s, en, n);
            if (y < x) { *out = jv_bool(0); return 0; }
            if (!(sub = jstr_sub(ctx, s, x, y))) return -1;
            target = sub;
        }
        int r;
        int bad = affix(ctx, target, a->pos[0], id == S_ENDSWITH, methods[id].name, &r);
        if (sub) jobj_release(ctx, &sub->h);
        if (bad) return -1;
        *out = jv_bool(r);
        return 0;
    }
    case S_REPLACE: {
        const jstr *old = NULL, *rep = NULL;
        int64_t count = -1;
        if (a->nkw || a->n < 2 || a->n > 3) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: replace() takes 2 or 3 arguments");
        if (want_str_arg(ctx, "replace", a->pos[0], &old) != 0 || want_str_arg(ctx, "replace", a->pos[1], &rep) != 0) return -1;
        if (a->n == 3) {
            if (a->pos[2].kind != JV_INT && a->pos[2].kind != JV_BOOL)
                return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: replace() count must be an integer");
            count = a->pos[2].u.i;
        }
        return jstr_replace(ctx, s, old, rep, count, out);
    }
    case S_UPPER: return no_args(ctx, id, a) ? -1 : jstr_case(ctx, s, 1, out);
    case S_LOWER:
    case S_CASEFOLD: return no_args(ctx, id, a) ? -1 : jstr_case(ctx, s, 0, out);
    case S_TITLE: return no_args(ctx, id, a) ? -1 : jstr_case(ctx, s, 4, out);
    case S_CAPITALIZE: return no_args(ctx, id, a) ? -1 : jstr_case(ctx, s, 2, out);
    case S_SWAPCASE: return no_args(ctx, id, a) ? -1 : jstr_case(ctx, s, 5, out);
    case S_FIND:
    case S_RFIND:
    case S_INDEX:
    case S_RINDEX:
    case S_COUNT: return search(ctx, s, id, a, out);
    case S_FORMAT: return str_format(ctx, s, a, out);
    case S_JOIN: {
        if (a->n != 1 || a->nkw) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: join() takes exactly one argument");
        jlist *items;
        if (jiterate(ctx, a->pos[0], &items) != 0) return -1;
        jsb b = {0};
        for (size_t i = 0; i < items->len; i++) {
            if (items->v[i].kind != JV_STR) {
                jfail(ctx, RM_ERR_TEMPLATE, "TypeError: sequence item %zu: expected str instance, %s found", i,
                      jv_type_name(items->v[i]));
                break;
            }
            if ((i && !jsb_str(ctx, &b, s)) || !jsb_str(ctx, &b, jv_str(items->v[i]))) break;
        }
        jobj_release(ctx, &items->h);
        if (ctx->failed) { jsb_free(&b); return -1; }
        return ret_str(ctx, jsb_finish(ctx, &b), out);
    }
    case S_SPLITLINES: {
        jlist *l;
        int keep = a->n ? jv_truthy(a->pos[0]) : a->nkw ? jv_truthy(a->kval[0]) : 0;
        if (jstr_splitlines(ctx, s, keep, &l) != 0) return -1;
        *out = jv_obj(JV_LIST, l);
        return 0;
    }
    case S_ISDIGIT: case S_ISALPHA: case S_ISALNUM: case S_ISSPACE: case S_ISLOWER: case S_ISUPPER:
    case S_ISNUMERIC: case S_ISDECIMAL:
        if (no_args(ctx, id, a)) return -1;
        *out = jv_bool(str_class(s, id));
        return 0;
    case S_ZFILL:
    case S_LJUST:
    case S_RJUST:
    case S_CENTER: return pad(ctx, s, id, a, out);
    case S_PARTITION:
    case S_RPARTITION: return partition(ctx, s, a, id == S_RPARTITION, out);
    case S_REMOVEPREFIX:
    case S_REMOVESUFFIX: {
        const jstr *x = NULL;
        if (a->n != 1 || a->nkw) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: %s() takes exactly one argument", methods[id].name);
        if (want_str_arg(ctx, methods[id].name, a->pos[0], &x) != 0) return -1;
        int hit;
        affix(ctx, s, a->pos[0], id == S_REMOVESUFFIX, methods[id].name, &hit);
        size_t from = hit && id == S_REMOVEPREFIX ? x->len : 0, to = hit && id == S_REMOVESUFFIX ? s->len - x->len : s->len;
        return ret_str(ctx, jstr_sub(ctx, s, from, to), out);
    }
    }
    return jfail(ctx, RM_ERR_INTERNAL, "unknown str method %d", id);
}

static int dict_view(jctx *ctx, jdict *d, int flavour, jval *out) {
    jlist *l = jlist_new(ctx, d->len, flavour);
    if (!l) return -1;
    *out = jv_obj(JV_LIST, l);
    for (size_t i = 0; i < d->len; i++) {
        jval v;
        if (flavour == JL_KEYS) v = jv_retain(d->k[i]);
        else if (flavour == JL_VALUES) v = jv_retain(d->v[i]);
        else {
            jlist *t = jlist_new(ctx, 2, JL_TUPLE);
            if (!t) return -1;
            t->v[0] = jv_retain(d->k[i]);
            t->v[1] = jv_retain(d->v[i]);
            t->len = 2;
            v = jv_obj(JV_LIST, t);
        }
        l->v[l->len++] = v;
    }
    return 0;
}

static int dict_method(jctx *ctx, jdict *d, int id, const jargs *a, jval *out) {
    switch (id) {
    case D_GET: {
        if (a->nkw || a->n < 1 || a->n > 2)
            return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: get expected 1 or 2 arguments, got %zu", a->n + a->nkw);
        jval k = a->pos[0];
        if (!jv_hashable(k))
            return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: unhashable type: '%s'", jv_type_name(k));
        long i = jdict_find(d, k);
        *out = i >= 0 ? jv_retain(d->v[i]) : a->n == 2 ? jv_retain(a->pos[1]) : jv_none();
        return 0;
    }
    case D_ITEMS: return no_args(ctx, id, a) ? -1 : dict_view(ctx, d, JL_ITEMS, out);
    case D_KEYS: return no_args(ctx, id, a) ? -1 : dict_view(ctx, d, JL_KEYS, out);
    case D_VALUES: return no_args(ctx, id, a) ? -1 : dict_view(ctx, d, JL_VALUES, out);
    case D_COPY: {
        if (no_args(ctx, id, a)) return -1;
        jdict *c = jdict_new(ctx, JV_DICT);
        if (!c) return -1;
        *out = jv_obj(JV_DICT, c);
        for (size_t i = 0; i < d->len; i++)
            if (jdict_set(ctx, c, jv_retain(d->k[i]), jv_retain(d->v[i])) != 0) return -1;
        return 0;
    }
    }
    return jfail(ctx, RM_ERR_INTERNAL, "unknown dict method %d", id);
}

static int list_method(jctx *ctx, jlist *l, int id, const jargs *a, jval *out) {
    switch (id) {
    case L_INDEX:
    case L_COUNT: {
        if (a->nkw || a->n < 1) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: %s() takes at least 1 argument", methods[id].name);
        int64_t c = 0;
        for (size_t i = 0; i < l->len; i++) {
            int e = jv_eq(ctx, l->v[i], a->pos[0]);
            if (ctx->failed) return -1;
            if (e && id == L_INDEX) { *out = jv_int((int64_t)i); return 0; }
            c += e;
        }
        if (id == L_INDEX) return jfail(ctx, RM_ERR_TEMPLATE, "ValueError: the value is not in the %s", l->h.flags == JL_TUPLE ? "tuple" : "list");
        *out = jv_int(c);
        return 0;
    }
    case L_COPY: {
        if (no_args(ctx, id, a)) return -1;
        jlist *c = jlist_new(ctx, l->len, JL_LIST);
        if (!c) return -1;
        for (size_t i = 0; i < l->len; i++) c->v[c->len++] = jv_retain(l->v[i]);
        *out = jv_obj(JV_LIST, c);
        return 0;
    }
    }
    return jfail(ctx, RM_ERR_INTERNAL, "unknown list method %d", id);
}

static int loop_method(jctx *ctx, jloop *l, int id, const jargs *a, jval *out) {
    if (a->nkw) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: loop.%s() takes no keyword arguments", methods[id].name);
    if (id == P_CYCLE) {
        if (!a->n) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: no items for cycling given");
        *out = jv_retain(a->pos[l->index % a->n]);
        return 0;
    }
    /* changed(*values): true when the values differ from the previous call's */
    jlist *now = jlist_new(ctx, a->n, JL_TUPLE);
    if (!now) return -1;
    for (size_t i = 0; i < a->n; i++) now->v[now->len++] = jv_retain(a->pos[i]);
    jval nv = jv_obj(JV_LIST, now);
    int changed = !l->have_changed || !jv_eq(ctx, l->last_changed, nv);
    if (changed) {
        jv_release(ctx, l->last_changed);
        l->last_changed = nv;
        l->have_changed = 1;
    } else {
        jv_release(ctx, nv);
    }
    *out = jv_bool(changed);
    return ctx->failed ? -1 : 0;
}

int jmethod_call(jctx *ctx, jval self, int id, const jargs *args, jval *out) {
    if (id < 0 || id >= N_METHODS) return jfail(ctx, RM_ERR_INTERNAL, "bad method id %d", id);
    if (methods[id].unsafe)
        return jfail(ctx, RM_ERR_TEMPLATE, "SecurityError: access to attribute '%s' of '%s' object is unsafe.",
                     methods[id].name, jv_type_name(self));
    switch (self.kind) {
    case JV_STR: return str_method(ctx, jv_str(self), id, args, out);
    case JV_DICT: return dict_method(ctx, jv_dict(self), id, args, out);
    case JV_LIST: return list_method(ctx, jv_list(self), id, args, out);
    case JV_LOOP: return loop_method(ctx, (jloop *)self.u.o, id, args, out);
    default: return jfail(ctx, RM_ERR_INTERNAL, "method on a %s", jv_type_name(self));
    }
}

/* ---------------------------------------------------------------- printf-style % */

/* fmt % args, Python's printf-style formatting for the common conversions. */
/* '%' formatting: widths and precisions up to 999999 (Python has no bound;
 * the output bound would refuse more anyway). */
#define FORMAT_DIGITS 6

/* snprintf of one number into b, however wide the spec makes it. */
static void put_number(jctx *ctx, jsb *b, const char *spec, int is_float, long long iv, double fv) {
    char small[128];
    int need = is_float ? snprintf(small, sizeof small, spec, fv) : snprintf(small, sizeof small, spec, iv);
    if (need < 0) { jfail(ctx, RM_ERR_TEMPLATE, "ValueError: bad format '%s'", spec); return; }
    if ((size_t)need < sizeof small) { jsb_put(ctx, b, small, (size_t)need, NULL); return; }
    char *big = rm_malloc((size_t)need + 1);
    if (!big) { jfail(ctx, RM_ERR_NOMEM, "out of memory formatting a number"); return; }
    if (is_float) snprintf(big, (size_t)need + 1, spec, fv);
    else snprintf(big, (size_t)need + 1, spec, iv);
    jsb_put(ctx, b, big, (size_t)need, NULL);
    rm_mfree(big);
}

int jstr_percent_format(jctx *ctx, const jstr *fmt, jval args, jval *out) {
    jsb b = {0};
    const jval *items = &args;
    size_t n_items = 1, next = 0;
    int mapping = args.kind == JV_DICT;
    if (args.kind == JV_LIST && jv_list(args)->h.flags == JL_TUPLE) {
        items = jv_list(args)->v;
        n_items = jv_list(args)->len;
    }
    for (size_t i = 0; i < fmt->len; i++) {
        char c = fmt->s[i];
        if (c != '%') { jsb_put(ctx, &b, fmt->s + i, 1, fmt->mask ? fmt->mask + i : NULL); continue; }
        if (++i >= fmt->len) { jfail(ctx, RM_ERR_TEMPLATE, "ValueError: incomplete format"); break; }
        jval arg = jv_undef();
        int have_arg = 0;
        if (fmt->s[i] == '(') {
            size_t j = i + 1;
            while (j < fmt->len && fmt->s[j] != ')') j++;
            if (j >= fmt->len || !mapping) { jfail(ctx, RM_ERR_TEMPLATE, "TypeError: format requires a mapping"); break; }
            long k = jdict_find_str(jv_dict(args), fmt->s + i + 1, j - i - 1);
            if (k < 0) { jfail(ctx, RM_ERR_TEMPLATE, "KeyError: '%.*s'", (int)(j - i - 1), fmt->s + i + 1); break; }
            arg = jv_dict(args)->v[k];
            have_arg = 1;
            i = j + 1;
        }
        char spec[64];
        size_t sl = 0, digits;
        spec[sl++] = '%';
        while (i < fmt->len && strchr("-+ #0", fmt->s[i]) && sl < 20) spec[sl++] = fmt->s[i++];
        /* Width and precision: at most FORMAT_DIGITS digits each, so they stay small numbers. */
        for (digits = 0; i < fmt->len && fmt->s[i] >= '0' && fmt->s[i] <= '9' && digits <= FORMAT_DIGITS; digits++)
            spec[sl++] = fmt->s[i++];
        if (digits <= FORMAT_DIGITS && i < fmt->len && fmt->s[i] == '.') {
            spec[sl++] = fmt->s[i++];
            for (digits = 0; i < fmt->len && fmt->s[i] >= '0' && fmt->s[i] <= '9' && digits <= FORMAT_DIGITS; digits++)
                spec[sl++] = fmt->s[i++];
        }
        if (digits > FORMAT_DIGITS) {
            jfail(ctx, RM_ERR_LIMIT, "%% format: a width or precision of more than %d digits", FORMAT_DIGITS);
            break;
        }
        if (i >= fmt->len) { jfail(ctx, RM_ERR_TEMPLATE, "ValueError: incomplete format"); break; }
        char conv = fmt->s[i];
        if (conv == '%') { jsb_put(ctx, &b, "%", 1, NULL); continue; }
        if (!have_arg) {
            if (mapping) { arg = args; }
            else if (next >= n_items) { jfail(ctx, RM_ERR_TEMPLATE, "TypeError: not enough arguments for format string"); break; }
            else arg = items[next++];
        }
        switch (conv) {
        case 's':
        case 'r':
        case 'a': {
            jsb tmp = {0};
            if (jv_write(ctx, &tmp, arg, conv != 's') != 0) { jsb_free(&tmp); goto fail; }
            /* flags, width and precision count characters */
            int left = 0;
            size_t k = 1;
            long width = 0, prec = -1;
            while (k < sl && strchr("-+ #0", spec[k])) left |= spec[k++] == '-';
            while (k < sl && spec[k] >= '0' && spec[k] <= '9') width = width * 10 + (spec[k++] - '0');
            if (k < sl && spec[k] == '.') {
                prec = 0;
                for (k++; k < sl && spec[k] >= '0' && spec[k] <= '9'; k++) prec = prec * 10 + (spec[k] - '0');
            }
            size_t bytes = tmp.len, chars = ju_count(tmp.s ? tmp.s : "", tmp.len);
            if (prec >= 0 && (size_t)prec < chars) {
                bytes = ju_offset(tmp.s, tmp.len, (size_t)prec);
                chars = (size_t)prec;
            }
            long padn = width > (long)chars ? width - (long)chars : 0;
            for (long p = 0; !left && p < padn; p++) jsb_put(ctx, &b, " ", 1, NULL);
            jsb_put(ctx, &b, tmp.s ? tmp.s : "", bytes, tmp.m);
            for (long p = 0; left && p < padn; p++) jsb_put(ctx, &b, " ", 1, NULL);
            jsb_free(&tmp);
            break;
        }
        case 'd': case 'i': case 'u': case 'x': case 'X': case 'o': case 'c': {
            int64_t v;
            if (arg.kind == JV_INT || arg.kind == JV_BOOL) v = arg.u.i;
            else if (arg.kind == JV_FLOAT && conv != 'x' && conv != 'X' && conv != 'o' && conv != 'c') {
                /* Python truncates any float to an int of any size; ours are 64-bit */
                if (isnan(arg.u.f)) { jfail(ctx, RM_ERR_TEMPLATE, "ValueError: cannot convert float NaN to integer"); goto fail; }
                if (!(arg.u.f > -9223372036854775808.0 && arg.u.f < 9223372036854775808.0)) {
                    jfail(ctx, RM_ERR_LIMIT, "%%%c format: %g does not fit a 64-bit integer", conv, arg.u.f);
                    goto fail;
                }
                v = (int64_t)arg.u.f;
            } else { jfail(ctx, RM_ERR_TEMPLATE, "TypeError: %%%c format: a number is required, not %s", conv, jv_type_name(arg)); goto fail; }
            if (conv == 'c') {
                char enc[4];
                size_t k = ju_encode((uint32_t)v, enc);
                jsb_put(ctx, &b, enc, k, NULL);
                break;
            }
            memcpy(spec + sl, "ll", 2);
            sl += 2;
            spec[sl++] = conv == 'u' || conv == 'i' ? 'd' : conv;
            spec[sl] = 0;
            put_number(ctx, &b, spec, 0, (long long)v, 0);
            break;
        }
        case 'e': case 'E': case 'f': case 'F': case 'g': case 'G': {
            double v;
            if (jv_is_number(arg)) v = arg.kind == JV_FLOAT ? arg.u.f : (double)arg.u.i;
            else { jfail(ctx, RM_ERR_TEMPLATE, "TypeError: must be real number, not %s", jv_type_name(arg)); goto fail; }
            spec[sl++] = conv;
            spec[sl] = 0;
            put_number(ctx, &b, spec, 1, 0, v);
            break;
        }
        default:
            jfail(ctx, RM_ERR_TEMPLATE, "ValueError: unsupported format character '%c'", conv);
            goto fail;
        }
        if (ctx->failed) goto fail;
    }
    if (!ctx->failed && !mapping && next < n_items)
        jfail(ctx, RM_ERR_TEMPLATE, "TypeError: not all arguments converted during string formatting");
fail:
    if (ctx->failed) { jsb_free(&b); return -1; }
    return ret_str(ctx, jsb_finish(ctx, &b), out);
}
