/*
 * filters.c - Jinja2's builtin filters and tests (jinja2/filters.py,
 * jinja2/tests.py) with transformers' tojson. Each follows the Python
 * original: same defaults, same return kinds (select/map/unique/batch give
 * generators, reverse gives an iterator, dictsort a list of tuples), same
 * errors. Filters Jinja has but chat templates have no use for (urlize,
 * random, groupby, ...) are known names, so templates mentioning them parse,
 * and refuse when they run.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja/eval.h"
#include "jinja/unicode.h"

/* slice(n) refuses more slices than this (each is a list). */
#define MAX_SLICES_GUARD 100000

typedef int (*filter_fn)(jctx *ctx, jval v, const jargs *a, jval *out);
typedef int (*test_fn)(jctx *ctx, jval v, const jargs *a, int *out);

int jstr_percent_format(jctx *ctx, const jstr *fmt, jval args, jval *out);

/* ---------------------------------------------------------------- helpers */

static int set_str(jctx *ctx, jstr *s, jval *out) {
    if (!s) return -1;
    *out = jv_obj(JV_STR, s);
    return 0;
}

/* str(v), for filters that start with soft_str(value). */
static jstr *soft_str(jctx *ctx, jval v) { return jv_to_str(ctx, v); }

static int want_int(jctx *ctx, const char *what, jval v, int64_t *out) {
    if (v.kind == JV_INT || v.kind == JV_BOOL) { *out = v.u.i; return 0; }
    if (v.kind == JV_UNDEF) return jfail_undefined(ctx, v);
    return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: %s: '%s' object cannot be interpreted as an integer", what,
                 jv_type_name(v));
}

static int want_str(jctx *ctx, const char *what, jval v, const jstr **out) {
    if (v.kind == JV_STR) { *out = jv_str(v); return 0; }
    if (v.kind == JV_UNDEF) return jfail_undefined(ctx, v);
    return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: %s: expected a string, got '%s'", what, jv_type_name(v));
}

/* make_attrgetter: "a.b.0" looked up part by part with environment.getitem. */
static int attr_path(jctx *ctx, jval item, jval attribute, jval *out) {
    if (attribute.kind != JV_STR) {
        if (attribute.kind == JV_NONE || attribute.kind == JV_UNDEF) { *out = jv_retain(item); return 0; }
        return jgetitem(ctx, item, attribute, out);
    }
    const jstr *path = jv_str(attribute);
    jval cur = jv_retain(item);
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < path->len && path->s[j] != '.') j++;
        int digits = j > i;
        for (size_t k = i; k < j; k++) digits &= path->s[k] >= '0' && path->s[k] <= '9';
        jval key;
        if (digits && j - i < 18) key = jv_int(strtoll(path->s + i, NULL, 10));
        else {
            jstr *part = jstr_sub(ctx, path, i, j);
            if (!part) { jv_release(ctx, cur); return -1; }
            key = jv_obj(JV_STR, part);
        }
        jval next;
        int r = jgetitem(ctx, cur, key, &next);
        jv_release(ctx, key);
        jv_release(ctx, cur);
        if (r != 0) return -1;
        cur = next;
        if (j >= path->len) break;
        i = j + 1;
    }
    *out = cur;
    return 0;
}

/* ignore_case: strings lowered, everything else as is. Takes ownership. */
static int lower_if_str(jctx *ctx, jval v, jval *out) {
    if (v.kind != JV_STR) { *out = v; return 0; }
    int r = jstr_case(ctx, jv_str(v), 0, out);
    jv_release(ctx, v);
    return r;
}

static jlist *new_list(jctx *ctx, int flavour) { return jlist_new(ctx, 0, flavour); }

/* Hands res to *out, or releases it when the filter failed on the way. */
static int give_list(jctx *ctx, jlist *res, jval *out) {
    if (ctx->failed || !res) {
        if (res) jobj_release(ctx, &res->h);
        return -1;
    }
    *out = jv_obj(JV_LIST, res);
    return 0;
}

/* (key, value) of d's item i as a new tuple; NULL when out of memory. */
static jlist *item_tuple(jctx *ctx, const jdict *d, size_t i) {
    jlist *t = jlist_new(ctx, 2, JL_TUPLE);
    if (!t) return NULL;
    t->v[0] = jv_retain(d->k[i]);
    t->v[1] = jv_retain(d->v[i]);
    t->len = 2;
    return t;
}

/* The bounds [*a, *b) of s without the whitespace Python's str.strip()
 * removes at either end. */
static void strip_space(const jstr *s, size_t *a_out, size_t *b_out) {
    size_t a = 0, b = s->len;
    uint32_t cp;
    while (a < b) { size_t k = ju_decode(s->s, b, a, &cp); if (!ju_isspace(cp)) break; a += k; }
    while (b > a) {
        size_t k = b - 1;
        while (k > a && ((unsigned char)s->s[k] & 0xC0) == 0x80) k--;
        ju_decode(s->s, b, k, &cp);
        if (!ju_isspace(cp)) break;
        b = k;
    }
    *a_out = a;
    *b_out = b;
}

/* The index of the entry called name[0..len) among the n entries of a
 * builtin table (filters, tests): entries are `size` bytes apart and begin
 * with their name, the way bsearch() sees an array. JB_UNKNOWN if none. */
static int find_named(const void *table, size_t n, size_t size, const char *name, size_t len) {
    const char *entry = table;
    for (size_t i = 0; i < n; i++, entry += size) {
        const char *entry_name = *(const char *const *)entry;
        if (strlen(entry_name) == len && memcmp(entry_name, name, len) == 0) return (int)i;
    }
    return JB_UNKNOWN;
}

/* ---------------------------------------------------------------- sorting */

typedef struct sort_item {
    jval key;
    jval val;
} sort_item;

/* Stable merge sort by key with Python's <; reverse keeps equal items in
 * their original order, as sorted(..., reverse=True) does. */
static int merge_sort(jctx *ctx, sort_item *a, sort_item *tmp, size_t n, int reverse) {
    if (n < 2) return 0;
    size_t h = n / 2;
    if (merge_sort(ctx, a, tmp, h, reverse) != 0 || merge_sort(ctx, a + h, tmp, n - h, reverse) != 0) return -1;
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int lt;
        /* take the right item first only when it must come strictly before */
        if (reverse ? jv_lt(ctx, a[i].key, a[j].key, &lt) : jv_lt(ctx, a[j].key, a[i].key, &lt)) return -1;
        tmp[k++] = lt ? a[j++] : a[i++];
    }
    while (i < h) tmp[k++] = a[i++];
    while (j < n) tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof *a);
    return jctx_work(ctx, n / 64);
}

/* Sorts n items by key (merge_sort with a scratch buffer of its own). */
static int sort_by_key(jctx *ctx, sort_item *items, size_t n, int reverse) {
    sort_item *tmp = rm_malloc((n ? n : 1) * sizeof *tmp);
    int r = tmp ? merge_sort(ctx, items, tmp, n, reverse) : jfail_nomem(ctx);
    rm_mfree(tmp);
    return r;
}

/* Builds (key, value) pairs: key from attribute (comma separated list allowed
 * when multi) then lowered unless case_sensitive. */
static int sort_keys(jctx *ctx, jlist *items, jval attribute, int case_sensitive, int multi, sort_item **out) {
    sort_item *s = rm_calloc(items->len ? items->len : 1, sizeof *s);
    if (!s) return jfail_nomem(ctx);
    for (size_t i = 0; i < items->len; i++) {
        s[i].val = items->v[i];
        jval key;
        if (multi && attribute.kind == JV_STR && memchr(jv_str(attribute)->s, ',', jv_str(attribute)->len)) {
            const jstr *all = jv_str(attribute);
            jlist *parts = new_list(ctx, JL_LIST);
            if (!parts) goto fail;
            key = jv_obj(JV_LIST, parts);
            size_t a = 0;
            for (;;) {
                size_t b = a;
                while (b < all->len && all->s[b] != ',') b++;
                jstr *one = jstr_sub(ctx, all, a, b);
                jval part;
                if (!one) { jv_release(ctx, key); goto fail; }
                int r = attr_path(ctx, items->v[i], jv_obj(JV_STR, one), &part);
                jobj_release(ctx, &one->h);
                if (r != 0 || (!case_sensitive && lower_if_str(ctx, part, &part) != 0) ||
                    jlist_push(ctx, parts, part) != 0) {
                    jv_release(ctx, key);
                    goto fail;
                }
                if (b >= all->len) break;
                a = b + 1;
            }
        } else {
            if (attr_path(ctx, items->v[i], attribute, &key) != 0) goto fail;
            if (!case_sensitive && lower_if_str(ctx, key, &key) != 0) goto fail;
        }
        s[i].key = key;
    }
    *out = s;
    return 0;
fail:
    for (size_t i = 0; i < items->len; i++) jv_release(ctx, s[i].key);
    rm_mfree(s);
    return -1;
}

static void free_keys(jctx *ctx, sort_item *s, size_t n) {
    for (size_t i = 0; i < n; i++) jv_release(ctx, s[i].key);
    rm_mfree(s);
}

/* The items of v (jiterate) with their keys (sort_keys). On failure
 * nothing is left to release. */
static int iterate_keyed(jctx *ctx, jval v, jval attribute, int case_sensitive, int multi, jlist **items,
                         sort_item **keys) {
    if (jiterate(ctx, v, items) != 0) return -1;
    if (sort_keys(ctx, *items, attribute, case_sensitive, multi, keys) != 0) {
        jobj_release(ctx, &(*items)->h);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- filters */

static int f_abs(jctx *ctx, jval v, const jargs *a, jval *out) {
    if (a->n || a->nkw) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: abs() takes no arguments");
    if (v.kind == JV_INT || v.kind == JV_BOOL) {
        if (v.u.i == INT64_MIN) return jfail(ctx, RM_ERR_TEMPLATE, "OverflowError: integer result does not fit in 64 bits");
        *out = jv_int(v.u.i < 0 ? -v.u.i : v.u.i);
        return 0;
    }
    if (v.kind == JV_FLOAT) { *out = jv_float(fabs(v.u.f)); return 0; }
    if (v.kind == JV_UNDEF) return jfail_undefined(ctx, v);
    return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: bad operand type for abs(): '%s'", jv_type_name(v));
}

static int f_attr(jctx *ctx, jval v, const jargs *a, jval *out) {
    static const char *const names[] = {"name"};
    jval s[1];
    int have[1];
    const jstr *name = NULL;
    if (jargs_bind(ctx, "attr", a, names, 1, s, have) != 0) return -1;
    if (!have[0]) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: attr() missing required argument 'name'");
    if (want_str(ctx, "attr", s[0], &name) != 0) return -1;
    /* attributes only: methods, namespace / loop attributes; never dict items */
    if (v.kind == JV_DICT && jmethod_find(v, name->s, name->len) < 0) {
        *out = jv_undef_attr(ctx, v, (jstr *)name);
        return 0;
    }
    return jgetattr(ctx, v, name, out);
}

static int f_batch(jctx *ctx, jval v, const jargs *a, jval *out) {
    static const char *const names[] = {"linecount", "fill_with"};
    jval s[2];
    int have[2];
    int64_t count = 0;
    if (jargs_bind(ctx, "batch", a, names, 2, s, have) != 0) return -1;
    if (!have[0]) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: batch() missing required argument 'linecount'");
    if (want_int(ctx, "batch", s[0], &count) != 0) return -1;
    jlist *items;
    if (jiterate(ctx, v, &items) != 0) return -1;
    jlist *res = new_list(ctx, JL_GEN), *tmp = NULL;
    if (!res) goto fail;
    for (size_t i = 0; i < items->len; i++) {
        if (tmp && (int64_t)tmp->len == count) {
            if (jlist_push(ctx, res, jv_obj(JV_LIST, tmp)) != 0) { tmp = NULL; goto fail; }
            tmp = NULL;
        }
        if (!tmp && !(tmp = new_list(ctx, JL_LIST))) goto fail;
        if (jlist_push(ctx, tmp, jv_retain(items->v[i])) != 0) goto fail;
    }
    if (tmp) {
        int fill = have[1] && s[1].kind != JV_NONE;
        while (fill && (int64_t)tmp->len < count)
            if (jlist_push(ctx, tmp, jv_retain(s[1])) != 0) goto fail;
        if (jlist_push(ctx, res, jv_obj(JV_LIST, tmp)) != 0) { tmp = NULL; goto fail; }
    }
    jobj_release(ctx, &items->h);
    *out = jv_obj(JV_LIST, res);
    return 0;
fail:
    if (tmp) jobj_release(ctx, &tmp->h);
    if (res) jobj_release(ctx, &res->h);
    jobj_release(ctx, &items->h);
    return -1;
}

static int case_filter(jctx *ctx, jval v, const jargs *a, jval *out, int mode, const char *what) {
    if (a->n || a->nkw) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: %s takes no arguments", what);
    jstr *s = soft_str(ctx, v);
    if (!s) return -1;
    int r = jstr_case(ctx, s, mode, out);
    jobj_release(ctx, &s->h);
    return r;
}
static int f_lower(jctx *ctx, jval v, const jargs *a, jval *out) { return case_filter(ctx, v, a, out, 0, "lower"); }
static int f_upper(jctx *ctx, jval v, const jargs *a, jval *out) { return case_filter(ctx, v, a, out, 1, "upper"); }
static int f_capitalize(jctx *ctx, jval v, const jargs *a, jval *out) { return case_filter(ctx, v, a, out, 2, "capitalize"); }
static int f_title(jctx *ctx, jval v, const jargs *a, jval *out) { return case_filter(ctx, v, a, out, 3, "title"); }

static int f_center(jctx *ctx, jval v, const jargs *a, jval *out) {
    static const char *const names[] = {"width"};
    jval s[1];
    int have[1];
    int64_t width = 80;
    if (jargs_bind(ctx, "center", a, names, 1, s, have) != 0) return -1;
    if (have[0] && want_int(ctx, "center", s[0], &width) != 0) return -1;
    jstr *str = soft_str(ctx, v);
    if (!str) return -1;
    int64_t len = (int64_t)jstr_cplen(str);
    if (width <= len) return set_str(ctx, str, out);
    if ((uint64_t)width > ctx->max_output) {
        jobj_release(ctx, &str->h);
        return jfail(ctx, RM_ERR_LIMIT, "center(): width %lld exceeds the output bound", (long long)width);
    }
    int64_t pad = width - len, left = pad / 2 + (pad & width & 1);
    jsb b = {0};
    for (int64_t i = 0; i < left; i++) jsb_put(ctx, &b, " ", 1, NULL);
    jsb_str(ctx, &b, str);
    for (int64_t i = left; i < pad; i++) jsb_put(ctx, &b, " ", 1, NULL);
    jobj_release(ctx, &str->h);
    if (ctx->failed) { jsb_free(&b); return -1; }
    return set_str(ctx, jsb_finish(ctx, &b), out);
}

static int f_length(jctx *ctx, jval v, const jargs *a, jval *out) {
    if (a->n || a->nkw) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: len() takes exactly one argument");
    int64_t n;
    if (jlen(ctx, v, &n) != 0) return -1;
    *out = jv_int(n);
    return 0;
}

static int f_default(jctx *ctx, jval v, const jargs *a, jval *out) {
    static const char *const names[] = {"default_value", "boolean"};
    jval s[2];
    int have[2];
    if (jargs_bind(ctx, "default", a, names, 2, s, have) != 0) return -1;
    int boolean = have[1] && jv_truthy(s[1]);
    if (v.kind == JV_UNDEF || (boolean && !jv_truthy(v))) {
        if (have[0]) *out = jv_retain(s[0]);
        else *out = jv_str_new(ctx, "", 0);
        return ctx->failed ? -1 : 0;
    }
    *out = jv_retain(v);
    return 0;
}

static int f_dictsort(jctx *ctx, jval v, const jargs *a, jval *out) {
    static const char *const names[] = {"case_sensitive", "by", "reverse"};
    jval s[3];
    int have[3];
    if (jargs_bind(ctx, "dictsort", a, names, 3, s, have) != 0) return -1;
    int pos = 0;
    if (have[1]) {
        if (s[1].kind == JV_STR && jstr_is(jv_str(s[1]), "value")) pos = 1;
        else if (!(s[1].kind == JV_STR && jstr_is(jv_str(s[1]), "key")))
            return jfail(ctx, RM_ERR_TEMPLATE, "FilterArgumentError: You can only sort by either \"key\" or \"value\"");
    }
    if (v.kind != JV_DICT) {
        if (v.kind == JV_UNDEF) return jfail_undefined(ctx, v);
        return jfail(ctx, RM_ERR_TEMPLATE, "AttributeError: '%s' object has no attribute 'items'", jv_type_name(v));
    }
    jdict *d = jv_dict(v);
    jlist *pairs = new_list(ctx, JL_LIST);
    if (!pairs) return -1;
    for (size_t i = 0; i < d->len; i++) {
        jlist *t = item_tuple(ctx, d, i);
        if (!t || jlist_push(ctx, pairs, jv_obj(JV_LIST, t)) != 0) { jobj_release(ctx, &pairs->h); return -1; }
    }
    sort_item *items;
    if (sort_keys(ctx, pairs, jv_int(pos), have[0] && jv_truthy(s[0]), 0, &items) != 0) {
        jobj_release(ctx, &pairs->h);
        return -1;
    }
    int r = sort_by_key(ctx, items, pairs->len, have[2] && jv_truthy(s[2]));
    if (r == 0)
        for (size_t i = 0; i < pairs->len; i++) pairs->v[i] = items[i].val;
    free_keys(ctx, items, pairs->len);
    if (r != 0) { jobj_release(ctx, &pairs->h); return -1; }
    *out = jv_obj(JV_LIST, pairs);
    return 0;
}

static int f_escape(jctx *ctx, jval v, const jargs *a, jval *out) {
    if (a->n || a->nkw) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: escape() takes no arguments");
    return jescape(ctx, v, 0, out);
}
static int f_forceescape(jctx *ctx, jval v, const jargs *a, jval *out) {
    if (a->n || a->nkw) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: forceescape() takes no arguments");
    return jescape(ctx, v, 1, out);
}

static int f_first(jctx *ctx, jval v, const jargs *a, jval *out) {
    if (a->n || a->nkw) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: first() takes no arguments");
    jlist *items;
    if (jiterate(ctx, v, &items) != 0) return -1;
    *out = items->len ? jv_retain(items->v[0]) : jv_undef_hint(ctx, "No first item, sequence was empty.");
    jobj_release(ctx, &items->h);
    return ctx->failed ? -1 : 0;
}

static int f_last(jctx *ctx, jval v, const jargs *a, jval *out) {
    if (a->n || a->nkw) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: last() takes no arguments");
    if (v.kind == JV_LIST && (JL_IS_ITER(jv_list(v)->h.flags) || jv_list(v)->h.flags == JL_ITEMS ||
                              jv_list(v)->h.flags == JL_KEYS || jv_list(v)->h.flags == JL_VALUES) &&
        JL_IS_ITER(jv_list(v)->h.flags))
        return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: '%s' object is not reversible", jv_type_name(v));
    if (v.kind != JV_LIST && v.kind != JV_STR && v.kind != JV_DICT && v.kind != JV_UNDEF)
        return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: '%s' object is not reversible", jv_type_name(v));
    jlist *items;
    if (jiterate(ctx, v, &items) != 0) return -1;
    *out = items->len ? jv_retain(items->v[items->len - 1]) : jv_undef_hint(ctx, "No last item, sequence was empty.");
    jobj_release(ctx, &items->h);
    return ctx->failed ? -1 : 0;
}

/* Python float(str): optional blanks, sign, digits with single underscores,
 * inf / nan spellings. Returns 0 on success. */
static int parse_py_float(const jstr *s, double *out) {
    size_t a, b;
    strip_space(s, &a, &b);
    if (a == b || b - a > 400) return -1;
    char buf[512];
    size_t o = 0;
    for (size_t i = a; i < b; i++) {
        char c = s->s[i];
        if (c == '_') {
            int ok = i > a && i + 1 < b && s->s[i - 1] >= '0' && s->s[i - 1] <= '9' && s->s[i + 1] >= '0' && s->s[i + 1] <= '9';
            if (!ok) return -1;
            continue;
        }
        if (!strchr("0123456789+-.eEinfatyINFATY", c)) return -1;
        buf[o++] = c;
    }
    buf[o] = 0;
    const char *p = buf;
    if (*p == '+' || *p == '-') p++;
    if (!strcasecmp(p, "inf") || !strcasecmp(p, "infinity") || !strcasecmp(p, "nan")) {
        *out = strtod(buf, NULL);
        return 0;
    }
    if (!(*p >= '0' && *p <= '9') && !(*p == '.' && p[1] >= '0' && p[1] <= '9')) return -1;
    char *end;
    *out = strtod(buf, &end);
    return *end ? -1 : 0;
}

/* Python int(str, base). Returns 0 on success, 1 when not an integer. */
static int parse_py_int(const jstr *s, int64_t base, int64_t *out) {
    size_t a, b;
    strip_space(s, &a, &b);
    int neg = 0;
    if (a < b && (s->s[a] == '+' || s->s[a] == '-')) neg = s->s[a++] == '-';
    if (a + 1 < b && s->s[a] == '0') {
        char p = (char)(s->s[a + 1] | 32);
        int pb = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
        if (pb && (base == pb || base == 0)) { base = pb; a += 2; if (a < b && s->s[a] == '_') a++; }
    }
    if (base == 0) base = 10;
    if (a == b) return 1;
    uint64_t v = 0;
    int prev_digit = 0;
    for (size_t i = a; i < b; i++) {
        char c = s->s[i];
        if (c == '_') {
            if (!prev_digit || i + 1 >= b) return 1;
            prev_digit = 0;
            continue;
        }
        int d = c >= '0' && c <= '9' ? c - '0' : (c | 32) >= 'a' && (c | 32) <= 'z' ? (c | 32) - 'a' + 10 : 99;
        if (d >= base) return 1;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) return 2;
        v = v * (uint64_t)base + (uint64_t)d;
        prev_digit = 1;
    }
    if (v > (uint64_t)INT64_MAX + (uint64_t)neg) return 2;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

static int f_int(jctx *ctx, jval v, const jargs *a, jval *out) {
    static const char *const names[] = {"default", "base"};
    jval s[2];
    int have[2];
    int64_t base = 10;
    if (jargs_bind(ctx, "int", a, names, 2, s, have) != 0) return -1;
    if (have[1] && want_int(ctx, "int", s[1], &base) != 0) return -1;
    jval dflt = have[0] ? s[0] : jv_int(0);
    switch (v.kind) {
    case JV_INT:
    case JV_BOOL: *out = jv_int(v.u.i); return 0;
    case JV_FLOAT:
        if (isnan(v.u.f)) break;
        if (isinf(v.u.f) || fabs(v.u.f) >= 9.2e18)
            return jfail(ctx, RM_ERR_TEMPLATE, "OverflowError: cannot convert float to a 64-bit integer");
        *out = jv_int((int64_t)v.u.f);
        return 0;
    case JV_STR: {
        int64_t x;
        int r = parse_py_int(jv_str(v), base, &x);
        if (r == 0) { *out = jv_int(x); return 0; }
        if (r == 2) return jfail(ctx, RM_ERR_TEMPLATE, "OverflowError: integer does not fit in 64 bits");
        double f;
        if (parse_py_float(jv_str(v), &f) == 0 && !isnan(f)) {
            if (isinf(f) || fabs(f) >= 9.2e18) break;
            *out = jv_int((int64_t)f);
            return 0;
        }
        break;
    }
    case JV_UNDEF: return jfail_undefined(ctx, v);
    default: break;
    }
    *out = jv_retain(dflt);
    return 0;
}

static int f_float(jctx *ctx, jval v, const jargs *a, jval *out) {
    static const char *const names[] = {"default"};
    jval s[1];
    int have[1];
    if (jargs_bind(ctx, "float", a, names, 1, s, have) != 0) return -1;
    double f;
    if (v.kind == JV_INT || v.kind == JV_BOOL) { *out = jv_float((double)v.u.i); return 0; }
    if (v.kind == JV_FLOAT) { *out = v; return 0; }
    if (v.kind == JV_STR && parse_py_float(jv_str(v), &f) == 0) { *out = jv_float(f); return 0; }
    if (v.kind == JV_UNDEF) return jfail_undefined(ctx, v);
    *out = have[0] ? jv_retain(s[0]) : jv_float(0.0);
    return 0;
}

static int f_format(jctx *ctx, jval v, const jargs *a, jval *out) {
    if (a->n && a->nkw)
        return jfail(ctx, RM_ERR_TEMPLATE, "FilterArgumentError: can't handle positional and keyword arguments at the same time");
    jstr *fmt = soft_str(ctx, v);
    if (!fmt) return -1;
    jval args;
    if (a->nkw) {
        jdict *d = jdict_new(ctx, JV_DICT);
        if (!d) { jobj_release(ctx, &fmt->h); return -1; }
        args = jv_obj(JV_DICT, d);
        for (size_t i = 0; i < a->nkw; i++) {
            jstr *k = jstr_new(ctx, a->kname[i]->s, a->kname[i]->len, NULL);
            if (!k || jdict_set(ctx, d, jv_obj(JV_STR, k), jv_retain(a->kval[i])) != 0) {
                jv_release(ctx, args);
                jobj_release(ctx, &fmt->h);
                return -1;
            }
        }
    } else {
        jlist *t = jlist_new(ctx, a->n, JL_TUPLE);
        if (!t) { jobj_release(ctx, &fmt->h); return -1; }
        for (size_t i = 0; i < a->n; i++) t->v[t->len++] = jv_retain(a->pos[i]);
        args = jv_obj(JV_LIST, t);
    }
    int r = jstr_percent_format(ctx, fmt, args, out);
    jv_release(ctx, args);
    jobj_release(ctx, &fmt->h);
    return r;
}

/* groupby(attribute, default=None, case_sensitive=False): sorted by the
 * key, runs of equal keys become (grouper, list) pairs. */
static int f_groupby(jctx *ctx, jval v, const jargs *a, jval *out) {
    static const char *const names[] = {"attribute", "default", "case_sensitive"};
    jval s[3];
    int have[3];
    if (jargs_bind(ctx, "groupby", a, names, 3, s, have) != 0) return -1;
    if (!have[0]) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: groupby() missing required argument 'attribute'");
    int cs = have[2] && jv_truthy(s[2]);
    jlist *items;
    sort_item *keys;
    if (iterate_keyed(ctx, v, s[0], cs, 0, &items, &keys) != 0) return -1;
    if (have[1] && s[1].kind != JV_NONE)
        for (size_t i = 0; i < items->len; i++)
            if (keys[i].key.kind == JV_UNDEF) {
                jv_release(ctx, keys[i].key);
                keys[i].key = jv_retain(s[1]);
                if (!cs) lower_if_str(ctx, keys[i].key, &keys[i].key);
            }
    int r = sort_by_key(ctx, keys, items->len, 0);
    jlist *res = r == 0 ? new_list(ctx, JL_LIST) : NULL;
    for (size_t i = 0; res && i < items->len && !ctx->failed;) {
        size_t j = i + 1;
        while (j < items->len && jv_eq(ctx, keys[j].key, keys[i].key)) j++;
        jlist *pair = jlist_new(ctx, 2, JL_TUPLE), *members = jlist_new(ctx, j - i, JL_LIST);
        if (!pair || !members) break;
        pair->group = 1;
        for (size_t k = i; k < j; k++) members->v[members->len++] = jv_retain(keys[k].val);
        jval grouper;
        /* the grouper is the first member's real key, not the lowered one */
        if (attr_path(ctx, keys[i].val, s[0], &grouper) != 0) { jobj_release(ctx, &members->h); jobj_release(ctx, &pair->h); break; }
        if (grouper.kind == JV_UNDEF && have[1] && s[1].kind != JV_NONE) { jv_release(ctx, grouper); grouper = jv_retain(s[1]); }
        pair->v[pair->len++] = grouper;
        pair->v[pair->len++] = jv_obj(JV_LIST, members);
        if (jlist_push(ctx, res, jv_obj(JV_LIST, pair)) != 0) break;
        i = j;
    }
    free_keys(ctx, keys, items->len);
    jobj_release(ctx, &items->h);
    return give_list(ctx, res, out);
}

static int f_indent(jctx *ctx, jval v, const jargs *a, jval *out) {
    static const char *const names[] = {"width", "first", "blank"};
    jval s[3];
    int have[3];
    if (jargs_bind(ctx, "indent", a, names, 3, s, have) != 0) return -1;
    if (v.kind == JV_UNDEF) return jfail_undefined(ctx, v);
    if (v.kind != JV_STR)
        return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: unsupported operand type(s) for +=: '%s' and 'str'", jv_type_name(v));
    jsb ind = {0};
    if (have[0] && s[0].kind == JV_STR) {
        jsb_str(ctx, &ind, jv_str(s[0]));
    } else {
        int64_t w = 4;
        if (have[0] && want_int(ctx, "indent", s[0], &w) != 0) return -1;
        if (w > 0 && (uint64_t)w > ctx->max_output) return jfail(ctx, RM_ERR_LIMIT, "indent(): width exceeds the output bound");
        for (int64_t i = 0; i < w; i++) jsb_put(ctx, &ind, " ", 1, NULL);
    }
    int first = have[1] && jv_truthy(s[1]), blank = have[2] && jv_truthy(s[2]);
    /* s += "\n"; lines = s.splitlines() */
    jsb src = {0};
    jsb_str(ctx, &src, jv_str(v));
    jsb_put(ctx, &src, "\n", 1, NULL);
    jstr *whole = ctx->failed ? NULL : jsb_finish(ctx, &src);
    jlist *lines = NULL;
    if (!whole || jstr_splitlines(ctx, whole, 0, &lines) != 0) {
        if (whole) jobj_release(ctx, &whole->h);
        jsb_free(&src);
        jsb_free(&ind);
        return -1;
    }
    jobj_release(ctx, &whole->h);
    jsb b = {0};
    if (first) jsb_put(ctx, &b, ind.s ? ind.s : "", ind.len, ind.m);
    for (size_t i = 0; i < lines->len; i++) {
        const jstr *line = jv_str(lines->v[i]);
        if (i > 0) {
            jsb_put(ctx, &b, "\n", 1, NULL);
            if (blank || line->len) jsb_put(ctx, &b, ind.s ? ind.s : "", ind.len, ind.m);
        }
        jsb_str(ctx, &b, line);
    }
    jobj_release(ctx, &lines->h);
    jsb_free(&ind);
    if (ctx->failed) { jsb_free(&b); return -1; }
    return set_str(ctx, jsb_finish(ctx, &b), out);
}

static int f_items(jctx *ctx, jval v, const jargs *a, jval *out) {
    if (a->n || a->nkw) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: items() takes no arguments");
    jlist *res = new_list(ctx, JL_ITEMITER);
    if (!res) return -1;
    *out = jv_obj(JV_LIST, res);
    if (v.kind == JV_UNDEF) return 0;
    if (v.kind != JV_DICT) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: Can only get item pairs from a mapping.");
    jdict *d = jv_dict(v);
    for (size_t i = 0; i < d->len; i++) {
        jlist *t = item_tuple(ctx, d, i);
        if (!t || jlist_push(ctx, res, jv_obj(JV_LIST, t)) != 0) return -1;
    }
    return 0;
}

static int f_join(jctx *ctx, jval v, const jargs *a, jval *out) {
    static const char *const names[] = {"d", "attribute"};
    jval s[2];
    int have[2];
    if (jargs_bind(ctx, "join", a, names, 2, s, have) != 0) return -1;
    jstr *sep = have[0] ? soft_str(ctx, s[0]) : jstr_cstr(ctx, "");
    if (!sep) return -1;
    jlist *items;
    if (jiterate(ctx, v, &items) != 0) { jobj_release(ctx, &sep->h); return -1; }
    jsb b = {0};
    for (size_t i = 0; i < items->len && !ctx->failed; i++) {
        if (i) jsb_str(ctx, &b, sep);
        jval item = items->v[i], got = jv_undef();
        if (have[1] && s[1].kind != JV_NONE) {
            if (attr_path(ctx, item, s[1], &got) != 0) break;
            item = got;
        }
        jv_write(ctx, &b, item, 0);
        jv_release(ctx, got);
    }
    jobj_release(ctx, &items->h);
    jobj_release(ctx, &sep->h);
    if (ctx->failed) { jsb_free(&b); return -1; }
    jstr *r = jsb_finish(ctx, &b);
    if (!r) return -1;
    *out = jv_obj(JV_STR, r);
    return jctx_work(ctx, r->len / 256);
}

static int f_list(jctx *ctx, jval v, const jargs *a, jval *out) {
    if (a->n || a->nkw) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: list() takes no arguments");
    jlist *items;
    if (jiterate(ctx, v, &items) != 0) return -1;
    jlist *res = jlist_new(ctx, items->len, JL_LIST);
    if (!res) { jobj_release(ctx, &items->h); return -1; }
    for (size_t i = 0; i < items->len; i++) res->v[res->len++] = jv_retain(items->v[i]);
    jobj_release(ctx, &items->h);
    *out = jv_obj(JV_LIST, res);
    return 0;
}

static int f_map(jctx *ctx, jval v, const jargs *a, jval *out) {
    jlist *res = new_list(ctx, JL_GEN);
    if (!res) return -1;
    *out = jv_obj(JV_LIST, res);
    if (!jv_truthy(v)) return 0;   /* "if value:" */
    jval attribute = jv_undef(), dflt = jv_none();
    int by_attr = 0;
    if (a->n == 0) {
        for (size_t k = 0; k < a->nkw; k++) {
            if (jstr_is(a->kname[k], "attribute")) { attribute = a->kval[k]; by_attr = 1; }
            else if (jstr_is(a->kname[k], "default")) dflt = a->kval[k];
            else if (!by_attr) break;
        }
        if (by_attr)
            for (size_t k = 0; k < a->nkw; k++)
                if (!jstr_is(a->kname[k], "attribute") && !jstr_is(a->kname[k], "default"))
                    return jfail(ctx, RM_ERR_TEMPLATE, "FilterArgumentError: Unexpected keyword argument '%.*s'",
                                 (int)a->kname[k]->len, a->kname[k]->s);
        if (!by_attr) return jfail(ctx, RM_ERR_TEMPLATE, "FilterArgumentError: map requires a filter argument");
    } else if (a->pos[0].kind != JV_STR) {
        return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: map(): the filter name must be a string");
    }
    jlist *items;
    if (jiterate(ctx, v, &items) != 0) return -1;
    jargs rest = {a->n ? a->n - 1 : 0, a->n ? a->pos + 1 : NULL, a->nkw, a->kname, a->kval};
    for (size_t i = 0; i < items->len; i++) {
        jval r;
        int bad;
        if (by_attr) {
            bad = attr_path(ctx, items->v[i], attribute, &r);
            if (!bad && r.kind == JV_UNDEF && dflt.kind != JV_NONE) {
                jv_release(ctx, r);
                r = jv_retain(dflt);
            }
        } else {
            bad = jctx_work(ctx, 1) || jfilter_call_by_name(ctx, jv_str(a->pos[0]), items->v[i], &rest, &r);
        }
        if (bad || jlist_push(ctx, res, r) != 0) { jobj_release(ctx, &items->h); return -1; }
    }
    jobj_release(ctx, &items->h);
    return 0;
}

static int minmax(jctx *ctx, jval v, const jargs *a, jval *out, int want_max) {
    static const char *const names[] = {"case_sensitive", "attribute"};
    jval s[2];
    int have[2];
    if (jargs_bind(ctx, want_max ? "max" : "min", a, names, 2, s, have) != 0) return -1;
    jlist *items;
    if (jiterate(ctx, v, &items) != 0) return -1;
    if (!items->len) {
        jobj_release(ctx, &items->h);
        *out = jv_undef_hint(ctx, "No aggregated item, sequence was empty.");
        return ctx->failed ? -1 : 0;
    }
    sort_item *keys;
    if (sort_keys(ctx, items, have[1] ? s[1] : jv_none(), have[0] && jv_truthy(s[0]), 0, &keys) != 0) {
        jobj_release(ctx, &items->h);
        return -1;
    }
    size_t best = 0;
    for (size_t i = 1; i < items->len; i++) {
        int lt;
        if ((want_max ? jv_lt(ctx, keys[best].key, keys[i].key, &lt) : jv_lt(ctx, keys[i].key, keys[best].key, &lt)) != 0)
            break;
        if (lt) best = i;
    }
    if (!ctx->failed) *out = jv_retain(items->v[best]);
    free_keys(ctx, keys, items->len);
    jobj_release(ctx, &items->h);
    return ctx->failed ? -1 : 0;
}
static int f_min(jctx *ctx, jval v, const jargs *a, jval *out) { return minmax(ctx, v, a, out, 0); }
static int f_max(jctx *ctx, jval v, const jargs *a, jval *out) { return minmax(ctx, v, a, out, 1); }

/* select / reject / selectattr / rejectattr */
static int select_reject(jctx *ctx, jval v, const jargs *a, jval *out, int keep_if, int lookup_attr) {
    jlist *res = new_list(ctx, JL_GEN);
    if (!res) return -1;
    *out = jv_obj(JV_LIST, res);
    if (!jv_truthy(v)) return 0;
    size_t off = 0;
    jval attribute = jv_none();
    if (lookup_attr) {
        if (a->n < 1) return jfail(ctx, RM_ERR_TEMPLATE, "FilterArgumentError: Missing parameter for attribute name");
        attribute = a->pos[0];
        off = 1;
    }
    const jstr *test = NULL;
    if (a->n > off) {
        if (a->pos[off].kind != JV_STR) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: the test name must be a string");
        test = jv_str(a->pos[off]);
    }
    jargs rest = {test ? a->n - off - 1 : 0, test ? a->pos + off + 1 : NULL, a->nkw, a->kname, a->kval};
    jlist *items;
    if (jiterate(ctx, v, &items) != 0) return -1;
    for (size_t i = 0; i < items->len; i++) {
        jval x;   /* the item itself when attribute is None (no lookup_attr) */
        if (attr_path(ctx, items->v[i], attribute, &x) != 0) break;
        int t;
        if (test) {
            if (jctx_work(ctx, 1) != 0 || jtest_call_by_name(ctx, test, x, &rest, &t) != 0) { jv_release(ctx, x); break; }
        } else {
            t = jv_truthy(x);
        }
        jv_release(ctx, x);
        if ((t != 0) == keep_if && jlist_push(ctx, res, jv_retain(items->v[i])) != 0) break;
    }
    jobj_release(ctx, &items->h);
    return ctx->failed ? -1 : 0;
}
static int f_select(jctx *ctx, jval v, const jargs *a, jval *out) { return select_reject(ctx, v, a, out, 1, 0); }
static int f_reject(jctx *ctx, jval v, const jargs *a, jval *out) { return select_reject(ctx, v, a, out, 0, 0); }
static int f_selectattr(jctx *ctx, jval v, const jargs *a, jval *out) { return select_reject(ctx, v, a, out, 1, 1); }
static int f_rejectattr(jctx *ctx, jval v, const jargs *a, jval *out) { return select_reject(ctx, v, a, out, 0, 1); }

static int f_replace(jctx *ctx, jval v, const jargs *a, jval *out) {
    static const char *const names[] = {"old", "new", "count"};
    jval s[3];
    int have[3];
    if (jargs_bind(ctx, "replace", a, names, 3, s, have) != 0) return -1;
    if (!have[0] || !have[1]) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: replace() missing required arguments");
    int64_t count = -1;
    if (have[2] && s[2].kind != JV_NONE && want_int(ctx, "replace", s[2], &count) != 0) return -1;
    jstr *str = soft_str(ctx, v), *old = soft_str(ctx, s[0]), *rep = soft_str(ctx, s[1]);
    int r = str && old && rep ? jstr_replace(ctx, str, old, rep, count, out) : -1;
    if (str) jobj_release(ctx, &str->h);
    if (old) jobj_release(ctx, &old->h);
    if (rep) jobj_release(ctx, &rep->h);
    return r;
}

static int f_reverse(jctx *ctx, jval v, const jargs *a, jval *out) {
    if (a->n || a->nkw) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: reverse() takes no arguments");
    if (v.kind == JV_STR) {
        jstr *s = jv_str(v);
        jsb b = {0};
        size_t i = s->len;
        while (i > 0) {
            size_t k = i - 1;
            while (k > 0 && ((unsigned char)s->s[k] & 0xC0) == 0x80) k--;
            jsb_put(ctx, &b, s->s + k, i - k, s->mask ? s->mask + k : NULL);
            i = k;
        }
        if (ctx->failed) { jsb_free(&b); return -1; }
        return set_str(ctx, jsb_finish(ctx, &b), out);
    }
    int flavour = JL_LIST;
    if (v.kind == JV_LIST && JL_IS_SEQ(jv_list(v)->h.flags)) flavour = JL_REVITER;
    else if (v.kind == JV_DICT || (v.kind == JV_LIST && JL_IS_VIEW(jv_list(v)->h.flags))) flavour = JL_GEN;
    jlist *items;
    if (jiterate(ctx, v, &items) != 0) return jfail(ctx, RM_ERR_TEMPLATE, "FilterArgumentError: argument must be iterable");
    jlist *res = jlist_new(ctx, items->len, flavour);
    if (!res) { jobj_release(ctx, &items->h); return -1; }
    for (size_t i = items->len; i > 0; i--) res->v[res->len++] = jv_retain(items->v[i - 1]);
    jobj_release(ctx, &items->h);
    *out = jv_obj(JV_LIST, res);
    return 0;
}

/* Python round(x, ndigits) for floats: correctly rounded, ties to even. */
static double py_round(double x, int64_t nd) {
    if (!isfinite(x) || nd > 320) return x;
    if (nd >= 0) {
        char buf[512];
        snprintf(buf, sizeof buf, "%.*f", (int)nd, x);
        return strtod(buf, NULL);
    }
    if (nd < -320) return copysign(0.0, x);
    double p = pow(10.0, (double)-nd), y = x / p, r = nearbyint(y);
    return r * p;
}

static int f_round(jctx *ctx, jval v, const jargs *a, jval *out) {
    static const char *const names[] = {"precision", "method"};
    jval s[2];
    int have[2];
    int64_t prec = 0;
    if (jargs_bind(ctx, "round", a, names, 2, s, have) != 0) return -1;
    if (have[0] && want_int(ctx, "round", s[0], &prec) != 0) return -1;
    int method = 0;
    if (have[1]) {
        const jstr *m = NULL;
        if (want_str(ctx, "round", s[1], &m) != 0) return -1;
        if (jstr_is(m, "ceil")) method = 1;
        else if (jstr_is(m, "floor")) method = 2;
        else if (!jstr_is(m, "common"))
            return jfail(ctx, RM_ERR_TEMPLATE, "FilterArgumentError: method must be common, ceil or floor");
    }
    if (v.kind == JV_UNDEF) return jfail_undefined(ctx, v);
    if (!jv_is_number(v))
        return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: type %s doesn't define __round__ method", jv_type_name(v));
    if (method == 0) {
        if (v.kind != JV_FLOAT) {   /* round(int, n) stays an int */
            if (prec >= 0) { *out = jv_int(v.u.i); return 0; }
            *out = jv_int((int64_t)py_round((double)v.u.i, prec));
            return 0;
        }
        *out = jv_float(py_round(v.u.f, prec));
        return 0;
    }
    double x = v.kind == JV_FLOAT ? v.u.f : (double)v.u.i, p = pow(10.0, (double)prec);
    *out = jv_float((method == 1 ? ceil(x * p) : floor(x * p)) / p);
    return 0;
}

static int f_safe(jctx *ctx, jval v, const jargs *a, jval *out) {
    if (a->n || a->nkw) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: safe() takes no arguments");
    jstr *s = soft_str(ctx, v);
    if (!s) return -1;
    if (!(s->h.flags & JS_MARKUP)) {
        jstr *c = jstr_new(ctx, s->s, s->len, s->mask);
        jobj_release(ctx, &s->h);
        if (!c) return -1;
        c->h.flags |= JS_MARKUP;
        s = c;
    }
    return set_str(ctx, s, out);
}

static int f_slice(jctx *ctx, jval v, const jargs *a, jval *out) {
    static const char *const names[] = {"slices", "fill_with"};
    jval s[2];
    int have[2];
    int64_t slices = 0;
    if (jargs_bind(ctx, "slice", a, names, 2, s, have) != 0) return -1;
    if (!have[0]) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: slice() missing required argument 'slices'");
    if (want_int(ctx, "slice", s[0], &slices) != 0) return -1;
    if (slices > MAX_SLICES_GUARD) return jfail(ctx, RM_ERR_LIMIT, "slice(): too many slices");
    jlist *items;
    if (jiterate(ctx, v, &items) != 0) return -1;
    jlist *res = new_list(ctx, JL_GEN);
    if (!res) { jobj_release(ctx, &items->h); return -1; }
    *out = jv_obj(JV_LIST, res);
    int64_t len = (int64_t)items->len, per = slices > 0 ? len / slices : 0, extra = slices > 0 ? len % slices : 0, offset = 0;
    for (int64_t k = 0; k < slices && !ctx->failed; k++) {
        int64_t start = offset + k * per;
        if (k < extra) offset++;
        int64_t end = offset + (k + 1) * per;
        jlist *t = new_list(ctx, JL_LIST);
        if (!t) break;
        for (int64_t i = start; i < end && i < len; i++) jlist_push(ctx, t, jv_retain(items->v[i]));
        if (have[1] && s[1].kind != JV_NONE && k >= extra) jlist_push(ctx, t, jv_retain(s[1]));
        jlist_push(ctx, res, jv_obj(JV_LIST, t));
    }
    jobj_release(ctx, &items->h);
    return ctx->failed ? -1 : 0;
}

static int f_sort(jctx *ctx, jval v, const jargs *a, jval *out) {
    static const char *const names[] = {"reverse", "case_sensitive", "attribute"};
    jval s[3];
    int have[3];
    if (jargs_bind(ctx, "sort", a, names, 3, s, have) != 0) return -1;
    jlist *items;
    sort_item *keys;
    if (iterate_keyed(ctx, v, have[2] ? s[2] : jv_none(), have[1] && jv_truthy(s[1]), 1, &items, &keys) != 0)
        return -1;
    int r = sort_by_key(ctx, keys, items->len, have[0] && jv_truthy(s[0]));
    jlist *res = r == 0 ? jlist_new(ctx, items->len, JL_LIST) : NULL;
    if (res)
        for (size_t i = 0; i < items->len; i++) res->v[res->len++] = jv_retain(keys[i].val);
    free_keys(ctx, keys, items->len);
    jobj_release(ctx, &items->h);
    if (!res) return -1;
    *out = jv_obj(JV_LIST, res);
    return 0;
}

static int f_string(jctx *ctx, jval v, const jargs *a, jval *out) {
    if (a->n || a->nkw) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: string() takes no arguments");
    return set_str(ctx, soft_str(ctx, v), out);
}

static int f_sum(jctx *ctx, jval v, const jargs *a, jval *out) {
    static const char *const names[] = {"attribute", "start"};
    jval s[2];
    int have[2];
    if (jargs_bind(ctx, "sum", a, names, 2, s, have) != 0) return -1;
    jlist *items;
    if (jiterate(ctx, v, &items) != 0) return -1;
    jval acc = have[1] ? jv_retain(s[1]) : jv_int(0);
    jval attribute = have[0] ? s[0] : jv_none();   /* None: the items themselves */
    for (size_t i = 0; i < items->len; i++) {
        jval x, r;
        if (attr_path(ctx, items->v[i], attribute, &x) != 0) break;
        if (acc.kind == JV_STR || x.kind == JV_STR) {
            jfail(ctx, RM_ERR_TEMPLATE, "TypeError: unsupported operand type(s) for +: '%s' and '%s'", jv_type_name(acc),
                  jv_type_name(x));
            jv_release(ctx, x);
            break;
        }
        int bad = jbinop(ctx, OP_ADD, acc, x, &r);
        jv_release(ctx, x);
        if (bad) break;
        jv_release(ctx, acc);
        acc = r;
    }
    jobj_release(ctx, &items->h);
    if (ctx->failed) { jv_release(ctx, acc); return -1; }
    *out = acc;
    return 0;
}

static int f_tojson(jctx *ctx, jval v, const jargs *a, jval *out) {
    static const char *const names[] = {"ensure_ascii", "indent", "separators", "sort_keys"};
    jval s[4];
    int have[4];
    if (jargs_bind(ctx, "tojson", a, names, 4, s, have) != 0) return -1;
    jjson_opts o = {0};
    o.ensure_ascii = have[0] && jv_truthy(s[0]);
    o.sort_keys = have[3] && jv_truthy(s[3]);
    jstr *indent = NULL;
    if (have[1] && s[1].kind != JV_NONE) {
        if (s[1].kind == JV_STR) {
            indent = jv_str(s[1]);
            indent->h.rc += indent->h.rc >= 0;
        } else {
            int64_t w = 0;
            if (want_int(ctx, "tojson", s[1], &w) != 0) return -1;
            if (w > 4096) return jfail(ctx, RM_ERR_LIMIT, "tojson(): indent %lld is too large", (long long)w);
            char sp[4097];
            int n = w > 0 ? (int)w : 0;
            memset(sp, ' ', (size_t)n);
            if (!(indent = jstr_new(ctx, sp, (size_t)n, NULL))) return -1;
        }
        o.indent = indent;
    }
    if (have[2] && s[2].kind != JV_NONE) {
        jval sep = s[2];
        if (sep.kind != JV_LIST || jv_list(sep)->len != 2 || jv_list(sep)->v[0].kind != JV_STR ||
            jv_list(sep)->v[1].kind != JV_STR) {
            if (indent) jobj_release(ctx, &indent->h);
            return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: tojson(): separators must be a pair of strings");
        }
        o.item_sep = jv_str(jv_list(sep)->v[0]);
        o.key_sep = jv_str(jv_list(sep)->v[1]);
    }
    jsb b = {0};
    int r = jtojson(ctx, &b, v, &o);
    if (indent) jobj_release(ctx, &indent->h);
    if (r != 0) { jsb_free(&b); return -1; }
    jstr *res = jsb_finish(ctx, &b);
    if (!res) return -1;
    *out = jv_obj(JV_STR, res);
    return jctx_work(ctx, res->len / 256);
}

static int f_trim(jctx *ctx, jval v, const jargs *a, jval *out) {
    static const char *const names[] = {"chars"};
    jval s[1];
    int have[1];
    if (jargs_bind(ctx, "trim", a, names, 1, s, have) != 0) return -1;
    const jstr *chars = NULL;
    if (have[0] && s[0].kind != JV_NONE && want_str(ctx, "trim", s[0], &chars) != 0) return -1;
    jstr *str = soft_str(ctx, v);
    if (!str) return -1;
    int r = jstr_strip(ctx, str, chars, 1, 1, out);
    jobj_release(ctx, &str->h);
    return r;
}

static int f_truncate(jctx *ctx, jval v, const jargs *a, jval *out) {
    static const char *const names[] = {"length", "killwords", "end", "leeway"};
    jval s[4];
    int have[4];
    if (jargs_bind(ctx, "truncate", a, names, 4, s, have) != 0) return -1;
    int64_t length = 255, leeway = 5;
    if (have[0] && want_int(ctx, "truncate", s[0], &length) != 0) return -1;
    if (have[3] && s[3].kind != JV_NONE && want_int(ctx, "truncate", s[3], &leeway) != 0) return -1;
    const jstr *end = NULL;
    if (have[2] && want_str(ctx, "truncate", s[2], &end) != 0) return -1;
    static jstr dots = {.h = {.rc = -1, .kind = JV_STR, .flags = JS_ASCII}, .len = 3, .s = "..."};
    if (!end) end = &dots;
    if (v.kind == JV_UNDEF) return jfail_undefined(ctx, v);
    if (v.kind != JV_STR) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: object of type '%s' has no len()", jv_type_name(v));
    if (length < (int64_t)jstr_cplen(end))
        return jfail(ctx, RM_ERR_TEMPLATE, "AssertionError: expected length >= %zu, got %lld", jstr_cplen(end), (long long)length);
    if (leeway < 0) return jfail(ctx, RM_ERR_TEMPLATE, "AssertionError: expected leeway >= 0, got %lld", (long long)leeway);
    jstr *str = soft_str(ctx, v);
    if (!str) return -1;
    int64_t n = (int64_t)jstr_cplen(str);
    if (n <= length + leeway) return set_str(ctx, str, out);
    size_t cut = ju_offset(str->s, str->len, (size_t)(length - (int64_t)jstr_cplen(end)));
    if (!(have[1] && jv_truthy(s[1]))) {
        /* result.rsplit(" ", 1)[0] */
        size_t k = cut;
        while (k > 0 && str->s[k - 1] != ' ') k--;
        if (k > 0) cut = k - 1;
    }
    jsb b = {0};
    jsb_put(ctx, &b, str->s, cut, str->mask);
    jsb_str(ctx, &b, end);
    jobj_release(ctx, &str->h);
    if (ctx->failed) { jsb_free(&b); return -1; }
    return set_str(ctx, jsb_finish(ctx, &b), out);
}

static int f_unique(jctx *ctx, jval v, const jargs *a, jval *out) {
    static const char *const names[] = {"case_sensitive", "attribute"};
    jval s[2];
    int have[2];
    if (jargs_bind(ctx, "unique", a, names, 2, s, have) != 0) return -1;
    jlist *items;
    sort_item *keys;
    if (iterate_keyed(ctx, v, have[1] ? s[1] : jv_none(), have[0] && jv_truthy(s[0]), 0, &items, &keys) != 0)
        return -1;
    jdict *seen = jdict_new(ctx, JV_DICT);
    jlist *res = new_list(ctx, JL_GEN);
    for (size_t i = 0; seen && res && i < items->len; i++) {
        jval k = keys[i].key;
        if (!jv_hashable(k)) {
            jfail(ctx, RM_ERR_TEMPLATE, "TypeError: unhashable type: '%s'", jv_type_name(k));
            break;
        }
        if (jdict_find(seen, k) >= 0) continue;
        if (jdict_set(ctx, seen, jv_retain(k), jv_none()) != 0) break;
        if (jlist_push(ctx, res, jv_retain(items->v[i])) != 0) break;
    }
    free_keys(ctx, keys, items->len);
    jobj_release(ctx, &items->h);
    if (seen) jobj_release(ctx, &seen->h);
    return give_list(ctx, res, out);
}

static int f_wordcount(jctx *ctx, jval v, const jargs *a, jval *out) {
    if (a->n || a->nkw) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: wordcount() takes no arguments");
    jstr *s = soft_str(ctx, v);
    if (!s) return -1;
    int64_t words = 0;
    int in_word = 0;
    for (size_t i = 0; i < s->len;) {
        uint32_t cp;
        i += ju_decode(s->s, s->len, i, &cp);
        int w = ju_isalnum(cp) || cp == '_';   /* \w */
        if (w && !in_word) words++;
        in_word = w;
    }
    jobj_release(ctx, &s->h);
    *out = jv_int(words);
    return 0;
}

/* ---------------------------------------------------------------- the filter table */

static const struct {
    const char *name;
    filter_fn fn;   /* NULL: Jinja has it, libnimreward does not */
} filters[] = {
    {"abs", f_abs}, {"attr", f_attr}, {"batch", f_batch}, {"capitalize", f_capitalize}, {"center", f_center},
    {"count", f_length}, {"d", f_default}, {"default", f_default}, {"dictsort", f_dictsort}, {"e", f_escape},
    {"escape", f_escape}, {"filesizeformat", NULL}, {"first", f_first}, {"float", f_float},
    {"forceescape", f_forceescape}, {"format", f_format}, {"groupby", f_groupby}, {"indent", f_indent}, {"int", f_int},
    {"join", f_join}, {"last", f_last}, {"length", f_length}, {"list", f_list}, {"lower", f_lower},
    {"items", f_items}, {"map", f_map}, {"min", f_min}, {"max", f_max}, {"pprint", NULL}, {"random", NULL},
    {"reject", f_reject}, {"rejectattr", f_rejectattr}, {"replace", f_replace}, {"reverse", f_reverse},
    {"round", f_round}, {"safe", f_safe}, {"select", f_select}, {"selectattr", f_selectattr}, {"slice", f_slice},
    {"sort", f_sort}, {"string", f_string}, {"striptags", NULL}, {"sum", f_sum}, {"title", f_title},
    {"trim", f_trim}, {"truncate", f_truncate}, {"unique", f_unique}, {"upper", f_upper}, {"urlencode", NULL},
    {"urlize", NULL}, {"wordcount", f_wordcount}, {"wordwrap", NULL}, {"xmlattr", NULL}, {"tojson", f_tojson},
};
#define N_FILTERS (int)(sizeof filters / sizeof filters[0])

int jfilter_id(const char *name, size_t len) { return find_named(filters, N_FILTERS, sizeof filters[0], name, len); }

int jfilter_call(jctx *ctx, int id, const jstr *name, jval value, const jargs *args, jval *out) {
    if (id < 0 || id >= N_FILTERS)
        return jfail(ctx, RM_ERR_TEMPLATE, "TemplateRuntimeError: No filter named '%.*s' found.", (int)name->len, name->s);
    if (!filters[id].fn)
        return jfail(ctx, RM_ERR_TEMPLATE, "the filter '%s' is not supported by libnimreward", filters[id].name);
    int r = filters[id].fn(ctx, value, args, out);
    if (r != 0 && !ctx->failed) jfail(ctx, RM_ERR_INTERNAL, "filter '%s' failed without a message", filters[id].name);
    return r;
}

int jfilter_call_by_name(jctx *ctx, const jstr *name, jval value, const jargs *args, jval *out) {
    int id = jfilter_id(name->s, name->len);
    if (id == JB_UNKNOWN)
        return jfail(ctx, RM_ERR_TEMPLATE, "TemplateRuntimeError: No filter named '%.*s'.", (int)name->len, name->s);
    return jfilter_call(ctx, id, name, value, args, out);
}

/* ---------------------------------------------------------------- tests */

static int no_args(jctx *ctx, const char *what, const jargs *a) {
    if (a->n || a->nkw) return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: test '%s' takes no arguments", what);
    return 0;
}

static int one_arg(jctx *ctx, const char *what, const jargs *a, jval *x) {
    if (a->n != 1 || a->nkw)
        return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: test '%s' takes exactly one argument (%zu given)", what, a->n + a->nkw);
    *x = a->pos[0];
    return 0;
}

#define SIMPLE_TEST(fname, label, expr)                                   \
    static int fname(jctx *ctx, jval v, const jargs *a, int *out) {      \
        if (no_args(ctx, label, a) != 0) return -1;                       \
        *out = (expr);                                                    \
        return 0;                                                         \
    }

SIMPLE_TEST(t_defined, "defined", v.kind != JV_UNDEF)
SIMPLE_TEST(t_undefined, "undefined", v.kind == JV_UNDEF)
SIMPLE_TEST(t_none, "none", v.kind == JV_NONE)
SIMPLE_TEST(t_boolean, "boolean", v.kind == JV_BOOL)
SIMPLE_TEST(t_false, "false", v.kind == JV_BOOL && !v.u.i)
SIMPLE_TEST(t_true, "true", v.kind == JV_BOOL && v.u.i)
SIMPLE_TEST(t_integer, "integer", v.kind == JV_INT)
SIMPLE_TEST(t_float, "float", v.kind == JV_FLOAT)
SIMPLE_TEST(t_number, "number", jv_is_number(v))
SIMPLE_TEST(t_string, "string", v.kind == JV_STR)
SIMPLE_TEST(t_mapping, "mapping", v.kind == JV_DICT)
SIMPLE_TEST(t_iterable, "iterable", v.kind == JV_STR || v.kind == JV_LIST || v.kind == JV_DICT || v.kind == JV_UNDEF ||
                                        v.kind == JV_LOOP)
SIMPLE_TEST(t_sequence, "sequence", v.kind == JV_STR || v.kind == JV_DICT || v.kind == JV_UNDEF ||
                                        (v.kind == JV_LIST && JL_IS_SEQ(jv_list(v)->h.flags)))
SIMPLE_TEST(t_callable, "callable", v.kind == JV_MACRO || v.kind == JV_FUNC || v.kind == JV_METHOD ||
                                        v.kind == JV_UNDEF || v.kind == JV_LOOP)
SIMPLE_TEST(t_escaped, "escaped", v.kind == JV_STR && (jv_str(v)->h.flags & JS_MARKUP))

static int parity(jctx *ctx, jval v, const char *what, int want_odd, const jargs *a, int *out) {
    if (no_args(ctx, what, a) != 0) return -1;
    jval r;
    if (jbinop(ctx, OP_MOD, v, jv_int(2), &r) != 0) return -1;
    *out = jv_truthy(r) == want_odd;
    jv_release(ctx, r);
    return 0;
}
static int t_odd(jctx *ctx, jval v, const jargs *a, int *out) { return parity(ctx, v, "odd", 1, a, out); }
static int t_even(jctx *ctx, jval v, const jargs *a, int *out) { return parity(ctx, v, "even", 0, a, out); }

static int t_divisibleby(jctx *ctx, jval v, const jargs *a, int *out) {
    jval n, r;
    if (one_arg(ctx, "divisibleby", a, &n) != 0 || jbinop(ctx, OP_MOD, v, n, &r) != 0) return -1;
    *out = !jv_truthy(r);
    jv_release(ctx, r);
    return 0;
}

static int case_test(jctx *ctx, jval v, const jargs *a, int *out, int upper) {
    if (no_args(ctx, upper ? "upper" : "lower", a) != 0) return -1;
    jstr *s = jv_to_str(ctx, v);
    if (!s) return -1;
    int cased = 0, ok = 1;
    for (size_t i = 0; i < s->len;) {
        uint32_t cp;
        i += ju_decode(s->s, s->len, i, &cp);
        if (ju_isupper(cp)) { cased = 1; if (!upper) ok = 0; }
        else if (ju_islower(cp)) { cased = 1; if (upper) ok = 0; }
    }
    jobj_release(ctx, &s->h);
    *out = cased && ok;
    return 0;
}
static int t_lower(jctx *ctx, jval v, const jargs *a, int *out) { return case_test(ctx, v, a, out, 0); }
static int t_upper(jctx *ctx, jval v, const jargs *a, int *out) { return case_test(ctx, v, a, out, 1); }

static int t_sameas(jctx *ctx, jval v, const jargs *a, int *out) {
    jval x = jv_undef();
    if (one_arg(ctx, "sameas", a, &x) != 0) return -1;
    if (v.kind != x.kind) *out = 0;
    else if (jv_isheap(v)) *out = v.u.o == x.u.o;
    else if (v.kind == JV_FLOAT) *out = v.u.f == x.u.f;
    else *out = v.u.i == x.u.i;
    return 0;
}

static int t_in(jctx *ctx, jval v, const jargs *a, int *out) {
    jval seq;
    if (one_arg(ctx, "in", a, &seq) != 0) return -1;
    return jcontains(ctx, seq, v, out);
}

static int cmp_test(jctx *ctx, jval v, const jargs *a, int *out, int op, const char *what) {
    jval x;
    if (one_arg(ctx, what, a, &x) != 0) return -1;
    if (op == OP_EQ) { *out = jv_eq(ctx, v, x); return ctx->failed ? -1 : 0; }
    if (op == OP_NE) { *out = !jv_eq(ctx, v, x); return ctx->failed ? -1 : 0; }
    if (v.kind == JV_UNDEF) return jfail_undefined(ctx, v);
    if (x.kind == JV_UNDEF) return jfail_undefined(ctx, x);
    return jv_compare(ctx, op, v, x, out);
}
static int t_eq(jctx *ctx, jval v, const jargs *a, int *out) { return cmp_test(ctx, v, a, out, OP_EQ, "eq"); }
static int t_ne(jctx *ctx, jval v, const jargs *a, int *out) { return cmp_test(ctx, v, a, out, OP_NE, "ne"); }
static int t_lt(jctx *ctx, jval v, const jargs *a, int *out) { return cmp_test(ctx, v, a, out, OP_LT, "lt"); }
static int t_le(jctx *ctx, jval v, const jargs *a, int *out) { return cmp_test(ctx, v, a, out, OP_LTEQ, "le"); }
static int t_gt(jctx *ctx, jval v, const jargs *a, int *out) { return cmp_test(ctx, v, a, out, OP_GT, "gt"); }
static int t_ge(jctx *ctx, jval v, const jargs *a, int *out) { return cmp_test(ctx, v, a, out, OP_GTEQ, "ge"); }

static int t_filter(jctx *ctx, jval v, const jargs *a, int *out) {
    if (no_args(ctx, "filter", a) != 0) return -1;
    *out = v.kind == JV_STR && jfilter_id(jv_str(v)->s, jv_str(v)->len) != JB_UNKNOWN;
    return 0;
}
static int t_test(jctx *ctx, jval v, const jargs *a, int *out) {
    if (no_args(ctx, "test", a) != 0) return -1;
    *out = v.kind == JV_STR && jtest_id(jv_str(v)->s, jv_str(v)->len) != JB_UNKNOWN;
    return 0;
}

static const struct {
    const char *name;
    test_fn fn;
} tests[] = {
    {"odd", t_odd}, {"even", t_even}, {"divisibleby", t_divisibleby}, {"defined", t_defined},
    {"undefined", t_undefined}, {"filter", t_filter}, {"test", t_test}, {"none", t_none}, {"boolean", t_boolean},
    {"false", t_false}, {"true", t_true}, {"integer", t_integer}, {"float", t_float}, {"lower", t_lower},
    {"upper", t_upper}, {"string", t_string}, {"mapping", t_mapping}, {"number", t_number},
    {"sequence", t_sequence}, {"iterable", t_iterable}, {"callable", t_callable}, {"sameas", t_sameas},
    {"escaped", t_escaped}, {"in", t_in}, {"==", t_eq}, {"eq", t_eq}, {"equalto", t_eq}, {"!=", t_ne},
    {"ne", t_ne}, {">", t_gt}, {"gt", t_gt}, {"greaterthan", t_gt}, {"ge", t_ge}, {">=", t_ge}, {"<", t_lt},
    {"lt", t_lt}, {"lessthan", t_lt}, {"<=", t_le}, {"le", t_le},
};
#define N_TESTS (int)(sizeof tests / sizeof tests[0])

int jtest_id(const char *name, size_t len) { return find_named(tests, N_TESTS, sizeof tests[0], name, len); }

int jtest_call(jctx *ctx, int id, const jstr *name, jval value, const jargs *args, int *out) {
    if (id < 0 || id >= N_TESTS)
        return jfail(ctx, RM_ERR_TEMPLATE, "TemplateRuntimeError: No test named '%.*s' found.", (int)name->len, name->s);
    return tests[id].fn(ctx, value, args, out);
}

int jtest_call_by_name(jctx *ctx, const jstr *name, jval value, const jargs *args, int *out) {
    int id = jtest_id(name->s, name->len);
    if (id == JB_UNKNOWN)
        return jfail(ctx, RM_ERR_TEMPLATE, "TemplateRuntimeError: No test named '%.*s'.", (int)name->len, name->s);
    return jtest_call(ctx, id, name, value, args, out);
}
