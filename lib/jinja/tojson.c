/*
 * tojson.c - transformers' tojson filter, which is Python's
 * json.dumps(x, ensure_ascii=False, indent=indent, separators=..., sort_keys=...):
 * keys in insertion order, non-ASCII kept, no HTML escaping, floats as
 * repr() (NaN / Infinity spelled as Python does). Also Markup escaping for
 * the escape filter. Marked string bytes stay marked in both.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "jinja/eval.h"
#include "jinja/unicode.h"

#define JSON_NEST_MAX 512

static int not_serializable(jctx *ctx, jval v) {
    return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: Object of type %s is not JSON serializable", jv_type_name(v));
}

static int put_json_string(jctx *ctx, jsb *b, const char *s, size_t len, const uint8_t *mask, int ensure_ascii) {
    if (!jsb_put(ctx, b, "\"", 1, NULL)) return -1;
    size_t i = 0, run = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char buf[16];
        size_t n = 1;
        if (c == '"') esc = "\\\"";
        else if (c == '\\') esc = "\\\\";
        else if (c == '\n') esc = "\\n";
        else if (c == '\r') esc = "\\r";
        else if (c == '\t') esc = "\\t";
        else if (c == '\b') esc = "\\b";
        else if (c == '\f') esc = "\\f";
        else if (c < 0x20) { snprintf(buf, sizeof buf, "\\u%04x", c); esc = buf; }
        else if (c >= 0x80 && ensure_ascii) {
            uint32_t cp;
            n = ju_decode(s, len, i, &cp);
            if (cp >= 0x10000) {
                uint32_t v = cp - 0x10000;
                snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
            } else {
                snprintf(buf, sizeof buf, "\\u%04x", cp);
            }
            esc = buf;
        }
        if (!esc) { i++; run++; continue; }
        /* flush the plain run before the escape */
        if (run && !jsb_put(ctx, b, s + i - run, run, mask ? mask + i - run : NULL)) return -1;
        run = 0;
        if (!jsb_putmark(ctx, b, esc, strlen(esc), mask && mask[i])) return -1;
        i += n;
    }
    if (run && !jsb_put(ctx, b, s + i - run, run, mask ? mask + i - run : NULL)) return -1;
    return jsb_put(ctx, b, "\"", 1, NULL) ? 0 : -1;
}

static int put_float(jctx *ctx, jsb *b, double f) {
    char buf[64];
    if (isnan(f)) snprintf(buf, sizeof buf, "NaN");
    else if (isinf(f)) snprintf(buf, sizeof buf, f < 0 ? "-Infinity" : "Infinity");
    else py_float_repr(f, buf, sizeof buf);
    return jsb_cstr(ctx, b, buf) ? 0 : -1;
}

static int newline_indent(jctx *ctx, jsb *b, const jjson_opts *o, int level) {
    if (!jsb_put(ctx, b, "\n", 1, NULL)) return -1;
    for (int i = 0; i < level; i++)
        if (!jsb_str(ctx, b, o->indent)) return -1;
    return 0;
}

/* Python's json key coercion: str as is; int, float, bool, None spelled out. */
static int put_key(jctx *ctx, jsb *b, jval k, const jjson_opts *o) {
    char buf[64];
    switch (k.kind) {
    case JV_STR: return put_json_string(ctx, b, jv_str(k)->s, jv_str(k)->len, jv_str(k)->mask, o->ensure_ascii);
    case JV_BOOL: return put_json_string(ctx, b, k.u.i ? "true" : "false", k.u.i ? 4 : 5, NULL, 0);
    case JV_NONE: return put_json_string(ctx, b, "null", 4, NULL, 0);
    case JV_INT:
        snprintf(buf, sizeof buf, "%lld", (long long)k.u.i);
        return put_json_string(ctx, b, buf, strlen(buf), NULL, 0);
    case JV_FLOAT: {
        jsb tmp = {0};
        if (put_float(ctx, &tmp, k.u.f) != 0) { jsb_free(&tmp); return -1; }
        int r = put_json_string(ctx, b, tmp.s, tmp.len, NULL, 0);
        jsb_free(&tmp);
        return r;
    }
    default:
        return jfail(ctx, RM_ERR_TEMPLATE, "TypeError: keys must be str, int, float, bool or None, not %s",
                     jv_type_name(k));
    }
}

static int dump(jctx *ctx, jsb *b, jval v, const jjson_opts *o, int level) {
    if (level > JSON_NEST_MAX) return jfail(ctx, RM_ERR_LIMIT, "tojson: values nested more than %d deep", JSON_NEST_MAX);
    const char *item_sep = o->item_sep ? NULL : (o->indent ? "," : ", ");
    switch (v.kind) {
    case JV_NONE: return jsb_cstr(ctx, b, "null") ? 0 : -1;
    case JV_BOOL: return jsb_cstr(ctx, b, v.u.i ? "true" : "false") ? 0 : -1;
    case JV_INT: {
        char buf[32];
        snprintf(buf, sizeof buf, "%lld", (long long)v.u.i);
        return jsb_cstr(ctx, b, buf) ? 0 : -1;
    }
    case JV_FLOAT: return put_float(ctx, b, v.u.f);
    case JV_STR: return put_json_string(ctx, b, jv_str(v)->s, jv_str(v)->len, jv_str(v)->mask, o->ensure_ascii);
    case JV_LIST: {
        jlist *l = jv_list(v);
        if (l->h.flags != JL_LIST && l->h.flags != JL_TUPLE) return not_serializable(ctx, v);
        if (l->len == 0) return jsb_cstr(ctx, b, "[]") ? 0 : -1;
        if (!jsb_cstr(ctx, b, "[")) return -1;
        for (size_t i = 0; i < l->len; i++) {
            if (i && !(item_sep ? jsb_cstr(ctx, b, item_sep) : jsb_str(ctx, b, o->item_sep))) return -1;
            if (o->indent && newline_indent(ctx, b, o, level + 1) != 0) return -1;
            if (dump(ctx, b, l->v[i], o, level + 1) != 0) return -1;
        }
        if (o->indent && newline_indent(ctx, b, o, level) != 0) return -1;
        return jsb_cstr(ctx, b, "]") ? 0 : -1;
    }
    case JV_DICT: {
        jdict *d = jv_dict(v);
        if (d->len == 0) return jsb_cstr(ctx, b, "{}") ? 0 : -1;
        size_t *order = rm_malloc(d->len * sizeof(size_t));
        if (!order) return jfail_nomem(ctx);
        for (size_t i = 0; i < d->len; i++) order[i] = i;
        if (o->sort_keys) {
            /* insertion sort with Python's < on the keys (stable, small dicts) */
            for (size_t i = 1; i < d->len; i++) {
                size_t x = order[i], j = i;
                while (j > 0) {
                    int lt;
                    if (jv_lt(ctx, d->k[x], d->k[order[j - 1]], &lt) != 0) { rm_mfree(order); return -1; }
                    if (!lt) break;
                    order[j] = order[j - 1];
                    j--;
                }
                order[j] = x;
            }
        }
        int r = jsb_cstr(ctx, b, "{") ? 0 : -1;
        for (size_t i = 0; r == 0 && i < d->len; i++) {
            size_t k = order[i];
            if (i && !(item_sep ? jsb_cstr(ctx, b, item_sep) : jsb_str(ctx, b, o->item_sep))) r = -1;
            else if (o->indent && newline_indent(ctx, b, o, level + 1) != 0) r = -1;
            else if (put_key(ctx, b, d->k[k], o) != 0) r = -1;
            else if (!(o->key_sep ? jsb_str(ctx, b, o->key_sep) : jsb_cstr(ctx, b, ": "))) r = -1;
            else r = dump(ctx, b, d->v[k], o, level + 1);
        }
        rm_mfree(order);
        if (r != 0) return -1;
        if (o->indent && newline_indent(ctx, b, o, level) != 0) return -1;
        return jsb_cstr(ctx, b, "}") ? 0 : -1;
    }
    default: return not_serializable(ctx, v);
    }
}

int jtojson(jctx *ctx, jsb *b, jval v, const jjson_opts *opts) { return dump(ctx, b, v, opts, 0); }

int jescape(jctx *ctx, jval v, int force, jval *out) {
    if (v.kind == JV_STR && (jv_str(v)->h.flags & JS_MARKUP) && !force) {
        *out = jv_retain(v);
        return 0;
    }
    jstr *s = jv_to_str(ctx, v);
    if (!s) return -1;
    jsb b = {0};
    for (size_t i = 0; i < s->len; i++) {
        const char *rep = NULL;
        switch (s->s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&#34;"; break;
        case '\'': rep = "&#39;"; break;
        }
        int ok = rep ? jsb_putmark(ctx, &b, rep, strlen(rep), s->mask && s->mask[i])
                     : jsb_put(ctx, &b, s->s + i, 1, s->mask ? s->mask + i : NULL);
        if (!ok) break;
    }
    jobj_release(ctx, &s->h);
    if (ctx->failed) { jsb_free(&b); return -1; }
    jstr *r = jsb_finish(ctx, &b);
    if (!r) return -1;
    r->h.flags |= JS_MARKUP;
    *out = jv_obj(JV_STR, r);
    return 0;
}
