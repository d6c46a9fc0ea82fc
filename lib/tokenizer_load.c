/*
 * tokenizer_load.c - builds an rm_tokenizer from a Hugging Face tokenizer.json:
 * checks the parts we implement (normalizer null or Unicode normalization
 * forms, a Split/ByteLevel pre-tokenizer, a byte-level BPE model,
 * added_tokens) and refuses the rest
 * with RM_ERR_UNSUPPORTED naming the field. decoder, post_processor,
 * truncation and padding are ignored: we only encode, never add BOS.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"

/* What HF's ByteLevel pre-tokenizer splits with when use_regex is true (GPT-2's pattern). */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* Unicode White_Space, which \s means in the Rust and Oniguruma regexes behind
 * tiktoken and HF. PCRE2's \s (with UCP) also takes U+180E, so we spell it out. */
static const char WHITE_SPACE_ITEMS[] =
    "\\x{9}-\\x{D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

/* Letters and numbers of Unicode 15.0-16.0, which tiktoken's and recent HF's
 * regex engines know but PCRE2 before 10.45 does not (Debian 12's 10.42 has
 * Unicode 14): added to \p{L} and \p{N} so the split does not depend on the
 * PCRE2 version. Made by asking tiktoken 0.14 which code points unassigned in
 * Unicode 14 its \p{L}/\p{N} match (probe: c + "'s" keeps "'s" whole), the
 * category taken from unicodedata2; see docs/tokenizer.md. */
static const char UNICODE16_L[] =
    "\\x{1C89}-\\x{1C8A}\\x{A7CB}-\\x{A7CD}\\x{A7DA}-\\x{A7DC}\\x{105C0}-\\x{105F3}"
    "\\x{10D4A}-\\x{10D65}\\x{10D6F}-\\x{10D85}\\x{10EC2}-\\x{10EC4}\\x{1123F}-\\x{11240}"
    "\\x{11380}-\\x{11389}\\x{1138B}\\x{1138E}\\x{11390}-\\x{113B5}\\x{113B7}\\x{113D1}\\x{113D3}"
    "\\x{11BC0}-\\x{11BE0}\\x{11F02}\\x{11F04}-\\x{11F10}\\x{11F12}-\\x{11F33}\\x{1342F}"
    "\\x{13441}-\\x{13446}\\x{13460}-\\x{143FA}\\x{16100}-\\x{1611D}\\x{16D40}-\\x{16D6C}\\x{18CFF}"
    "\\x{1B132}\\x{1B155}\\x{1DF25}-\\x{1DF2A}\\x{1E030}-\\x{1E06D}\\x{1E4D0}-\\x{1E4EB}"
    "\\x{1E5D0}-\\x{1E5ED}\\x{1E5F0}\\x{2B739}\\x{2EBF0}-\\x{2EE5D}\\x{31350}-\\x{323AF}";
static const char UNICODE16_N[] =
    "\\x{10D40}-\\x{10D49}\\x{116D0}-\\x{116E3}\\x{11BF0}-\\x{11BF9}\\x{11F50}-\\x{11F59}"
    "\\x{16130}-\\x{16139}\\x{16D70}-\\x{16D79}\\x{1CCF0}-\\x{1CCF9}\\x{1D2C0}-\\x{1D2D3}"
    "\\x{1E4F0}-\\x{1E4F9}\\x{1E5F1}-\\x{1E5FA}";

/* Appends `items` (class items), bracketed unless already inside a class. */
static void put_class(rm_buf *out, int in_class, const char *negate_or_empty, const char *a, const char *b) {
    if (!in_class) {
        rm_buf_putc(out, '[');
        rm_buf_append(out, negate_or_empty, strlen(negate_or_empty));
    }
    rm_buf_append(out, a, strlen(a));
    if (b) rm_buf_append(out, b, strlen(b));
    if (!in_class) rm_buf_putc(out, ']');
}

static void *pcre_alloc(PCRE2_SIZE n, void *unused) { (void)unused; return rm_malloc(n); }
static void pcre_free(void *p, void *unused) { (void)unused; rm_mfree(p); }

/* Rewrites an HF (Oniguruma / Rust regex) pattern into PCRE2 syntax: \s and
 * \S spelled as White_Space, \p{L} and \p{N} widened to Unicode 16 (other
 * properties keep the PCRE2 library's Unicode version). Constructs PCRE2
 * would read differently (nested classes, class intersection) are refused
 * rather than guessed. */
static rm_status translate_pattern(const char *src, size_t n, rm_buf *out, const char *name, const char *field,
                                   rm_err *err) {
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == '\\' && i + 1 < n) {
            char d = src[++i];
            size_t rest = n - i - 1;   /* bytes after d */
            int letter = (d == 'p' || d == 'P') && rest >= 3 && src[i + 1] == '{' && src[i + 3] == '}' &&
                         (src[i + 2] == 'L' || src[i + 2] == 'N');
            if (letter && (d == 'p' || !in_class)) {
                char prop[] = "\\p{L}";
                prop[3] = src[i + 2];
                put_class(out, in_class, d == 'P' ? "^" : "", prop, src[i + 2] == 'L' ? UNICODE16_L : UNICODE16_N);
                i += 3;
            } else if (d == 's') {
                put_class(out, in_class, "", WHITE_SPACE_ITEMS, NULL);
            } else if (d == 'S') {
                if (in_class)
                    return rm_fail(err, RM_ERR_UNSUPPORTED, "%s: %s: \\S inside a character class is not supported",
                                   name, field);
                rm_buf_append(out, "[^", 2);
                rm_buf_append(out, WHITE_SPACE_ITEMS, sizeof WHITE_SPACE_ITEMS - 1);
                rm_buf_putc(out, ']');
            } else if (d == 'Q') {
                return rm_fail(err, RM_ERR_UNSUPPORTED, "%s: %s: \\Q...\\E quoting is not supported", name, field);
            } else {
                rm_buf_putc(out, c);
                rm_buf_putc(out, d);
            }
            continue;
        }
        if (!in_class && c == '[') {
            in_class = 1;
            rm_buf_putc(out, c);
            if (i + 1 < n && src[i + 1] == '^') rm_buf_putc(out, src[++i]);
            if (i + 1 < n && src[i + 1] == ']') rm_buf_putc(out, src[++i]);   /* a literal ] first */
            continue;
        }
        if (in_class && c == '[') {
            if (i + 1 < n && src[i + 1] == ':') {   /* [:alpha:] means the same in both */
                const char *end = NULL;
                for (size_t k = i + 2; k + 1 < n; k++)
                    if (src[k] == ':' && src[k + 1] == ']') { end = src + k + 2; break; }
                if (end) {
                    rm_buf_append(out, src + i, (size_t)(end - (src + i)));
                    i = (size_t)(end - src) - 1;
                    continue;
                }
            }
            return rm_fail(err, RM_ERR_UNSUPPORTED, "%s: %s: a nested character class is not supported", name, field);
        }
        if (in_class && c == '&' && i + 1 < n && src[i + 1] == '&')
            return rm_fail(err, RM_ERR_UNSUPPORTED, "%s: %s: class intersection (&&) is not supported", name, field);
        if (in_class && c == ']') in_class = 0;
        rm_buf_putc(out, c);
    }
    if (out->oom) return rm_fail(err, RM_ERR_NOMEM, "%s: %s: out of memory", name, field);
    return RM_OK;
}

/* Compiles a pattern (already in PCRE2 syntax unless `literal`) with UTF, UCP and JIT. */
static rm_status compile_pattern(rm_tokenizer *tok, const char *pattern, size_t n, int literal, pcre2_code **out,
                                 const char *name, const char *field, rm_err *err) {
    pcre2_compile_context *cctx = pcre2_compile_context_create(tok->gctx);
    if (!cctx) return rm_fail(err, RM_ERR_NOMEM, "%s: %s: out of memory", name, field);
    int code;
    PCRE2_SIZE at;
    uint32_t options = literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP | PCRE2_NEVER_BACKSLASH_C;
    *out = pcre2_compile((PCRE2_SPTR)pattern, n, options, &code, &at, cctx);
    pcre2_compile_context_free(cctx);
    if (!*out) {
        if (code == PCRE2_ERROR_NOMEMORY || code == PCRE2_ERROR_HEAP_FAILED)
            return rm_fail(err, RM_ERR_NOMEM, "%s: %s: out of memory compiling the pattern", name, field);
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return rm_fail(err, RM_ERR_FORMAT, "%s: %s: bad pattern at offset %zu: %s", name, field, (size_t)at,
                       (const char *)msg);
    }
    /* Without JIT (an exotic CPU, a locked-down kernel) pcre2_match interprets: slower, same result. */
    pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE);
    return RM_OK;
}

static rm_status compile_hf_pattern(rm_tokenizer *tok, const char *src, size_t n, pcre2_code **out, const char *name,
                                    const char *field, rm_err *err) {
    if (n > RM_TOK_MAX_PATTERN)
        return rm_fail(err, RM_ERR_LIMIT, "%s: %s: pattern of %zu bytes, more than %d", name, field, n,
                       RM_TOK_MAX_PATTERN);
    rm_buf pattern = {0};
    rm_status st = translate_pattern(src, n, &pattern, name, field, err);
    if (st == RM_OK) st = compile_pattern(tok, pattern.data ? pattern.data : "", pattern.len, 0, out, name, field, err);
    rm_buf_free(&pattern);
    return st;
}

/* Reads an optional boolean member; absent or null gives `dflt`. */
static rm_status get_flag(json_t *obj, const char *key, int dflt, int *out, const char *name, const char *field,
                          rm_err *err) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return RM_OK;
    }
    if (!json_is_boolean(v)) return rm_fail(err, RM_ERR_FORMAT, "%s: %s.%s: expected true or false", name, field, key);
    *out = json_is_true(v);
    return RM_OK;
}

static rm_status load_step(rm_tokenizer *tok, json_t *pt, const char *name, const char *field, rm_err *err) {
    char sub[160];
    rm_status st;
    if (!json_is_object(pt)) return rm_fail(err, RM_ERR_FORMAT, "%s: %s: expected an object", name, field);
    const char *type = json_string_value(json_object_get(pt, "type"));
    if (!type) return rm_fail(err, RM_ERR_FORMAT, "%s: %s.type: expected a string", name, field);
    if (tok->n_steps == RM_TOK_MAX_STEPS)
        return rm_fail(err, RM_ERR_LIMIT, "%s: %s: more than %d pre-tokenizers", name, field, RM_TOK_MAX_STEPS);
    rm_pretok_step *step = &tok->steps[tok->n_steps];

    if (strcmp(type, "Split") == 0) {
        const char *behavior = json_string_value(json_object_get(pt, "behavior"));
        if (!behavior || strcmp(behavior, "Isolated") != 0)
            return rm_fail(err, RM_ERR_UNSUPPORTED, "%s: %s.behavior: \"%s\" is not supported (only \"Isolated\")",
                           name, field, behavior ? behavior : "(missing)");
        int invert;
        if ((st = get_flag(pt, "invert", 0, &invert, name, field, err)) != RM_OK) return st;
        if (invert) return rm_fail(err, RM_ERR_UNSUPPORTED, "%s: %s.invert: only false is supported", name, field);
        json_t *pattern = json_object_get(pt, "pattern");
        json_t *regex = json_object_get(pattern, "Regex"), *string = json_object_get(pattern, "String");
        snprintf(sub, sizeof sub, "%s.pattern.%s", field, regex ? "Regex" : "String");
        step->kind = RM_PRETOK_SPLIT;
        if (json_is_string(regex))
            st = compile_hf_pattern(tok, json_string_value(regex), json_string_length(regex), &step->re, name, sub, err);
        else if (json_is_string(string))
            st = json_string_length(string) == 0
                     ? rm_fail(err, RM_ERR_FORMAT, "%s: %s: empty pattern", name, sub)
                     : compile_pattern(tok, json_string_value(string), json_string_length(string), 1, &step->re,
                                       name, sub, err);
        else
            st = rm_fail(err, RM_ERR_FORMAT, "%s: %s.pattern: expected {\"Regex\": \"...\"} or {\"String\": \"...\"}",
                         name, field);
        if (st == RM_OK) tok->n_steps++;
        return st;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        int use_regex;
        step->kind = RM_PRETOK_BYTELEVEL;
        if ((st = get_flag(pt, "add_prefix_space", 1, &step->add_prefix_space, name, field, err)) != RM_OK ||
            (st = get_flag(pt, "use_regex", 1, &use_regex, name, field, err)) != RM_OK)
            return st;
        if (use_regex) {
            snprintf(sub, sizeof sub, "%s (ByteLevel's GPT-2 pattern)", field);
            if ((st = compile_hf_pattern(tok, GPT2_PATTERN, sizeof GPT2_PATTERN - 1, &step->re, name, sub, err)) != RM_OK)
                return st;
        }
        tok->n_steps++;
        return RM_OK;
    }
    return rm_fail(err, RM_ERR_UNSUPPORTED, "%s: %s.type: \"%s\" is not supported (Split, ByteLevel or a Sequence of them)",
                   name, field, type);
}

static rm_status load_pre_tokenizer(rm_tokenizer *tok, json_t *pre, const char *name, rm_err *err) {
    if (!pre || json_is_null(pre))
        return rm_fail(err, RM_ERR_UNSUPPORTED, "%s: pre_tokenizer: null; only byte-level BPE (a ByteLevel "
                       "pre-tokenizer) is supported", name);
    rm_status st;
    const char *type = json_string_value(json_object_get(pre, "type"));
    if (type && strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(pre, "pretokenizers");
        if (!json_is_array(list))
            return rm_fail(err, RM_ERR_FORMAT, "%s: pre_tokenizer.pretokenizers: expected an array", name);
        for (size_t i = 0; i < json_array_size(list); i++) {
            char field[64];
            snprintf(field, sizeof field, "pre_tokenizer.pretokenizers[%zu]", i);
            if ((st = load_step(tok, json_array_get(list, i), name, field, err)) != RM_OK) return st;
        }
    } else if ((st = load_step(tok, pre, name, "pre_tokenizer", err)) != RM_OK) {
        return st;
    }
    /* ByteLevel rewrites the text into its alphabet, so anything after it would
     * see that alphabet; we only run it last, where it is a no-op on bytes. */
    for (size_t i = 0; i < tok->n_steps; i++)
        if (tok->steps[i].kind == RM_PRETOK_BYTELEVEL && i + 1 != tok->n_steps)
            return rm_fail(err, RM_ERR_UNSUPPORTED, "%s: pre_tokenizer: a pre-tokenizer after ByteLevel is not supported",
                           name);
    if (tok->n_steps == 0 || tok->steps[tok->n_steps - 1].kind != RM_PRETOK_BYTELEVEL)
        return rm_fail(err, RM_ERR_UNSUPPORTED, "%s: pre_tokenizer: no ByteLevel step; only byte-level BPE is supported",
                       name);
    return RM_OK;
}

/* By content; equal contents (two tokens that normalize alike) keep HF's
 * pattern order, special tokens first and then file order, so the first wins. */
static int cmp_content(const void *a, const void *b) {
    const rm_added_token *x = *(const rm_added_token *const *)a, *y = *(const rm_added_token *const *)b;
    int c = memcmp(x->content, y->content, x->len < y->len ? x->len : y->len);
    if (c) return c;
    if (x->len != y->len) return (x->len > y->len) - (x->len < y->len);
    if (x->special != y->special) return x->special ? -1 : 1;
    return (x > y) - (x < y);   /* both in one array, in file order */
}

typedef struct id_index { int32_t id, index; } id_index;
static int cmp_id(const void *a, const void *b) {
    const id_index *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

/* A matcher over the entries of tokens[0..n) whose `normalized` flag is `normalized`. */
static rm_status build_matcher(rm_token_matcher *m, const rm_added_token *tokens, size_t n, int normalized) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++) count += tokens[i].normalized == normalized;
    m->sorted = rm_malloc(count * sizeof *m->sorted + 1);
    if (!m->sorted) return RM_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        if (tokens[i].normalized == normalized) {
            m->sorted[m->n++] = &tokens[i];
            m->first[(uint8_t)tokens[i].content[0]] = 1;
        }
    qsort(m->sorted, m->n, sizeof *m->sorted, cmp_content);
    return RM_OK;
}

/* HF matches normalized=true tokens in normalized text, and so normalizes
 * their content too (AddedVocabulary::refresh_added_tokens): matchers[1] holds
 * copies of them with the normalized content. */
static rm_status load_normalized_tokens(rm_tokenizer *tok, const char *name, rm_err *err) {
    size_t n = 0;
    for (size_t i = 0; i < tok->n_added; i++) n += tok->added[i].normalized;
    tok->norm_added = rm_calloc(n + 1, sizeof *tok->norm_added);
    size_t *offset = rm_malloc((n + 1) * sizeof *offset);
    rm_buf arena = {0};
    rm_status st = tok->norm_added && offset ? RM_OK : rm_fail(err, RM_ERR_NOMEM, "%s: added_tokens: out of memory", name);
    size_t k = 0;
    for (size_t i = 0; i < tok->n_added && st == RM_OK; i++) {
        const rm_added_token *t = &tok->added[i];
        if (!t->normalized) continue;
        char field[160], *norm;
        size_t len;
        snprintf(field, sizeof field, "%s: added_tokens[%zu].content", name, i);
        if ((st = rm_tok_normalize(tok, t->content, t->len, &norm, &len, field, err)) != RM_OK) break;
        tok->norm_added[k] = *t;
        tok->norm_added[k].len = (uint32_t)len;
        offset[k++] = arena.len;
        rm_buf_append(&arena, norm ? norm : t->content, len);
        rm_buf_putc(&arena, 0);
        rm_mfree(norm);
    }
    if (st == RM_OK && arena.oom) st = rm_fail(err, RM_ERR_NOMEM, "%s: added_tokens: out of memory", name);
    if (st == RM_OK) {
        tok->norm_added_text = arena.data;   /* now owned by tok */
        arena = (rm_buf){0};
        for (size_t i = 0; i < k; i++) tok->norm_added[i].content = tok->norm_added_text + offset[i];
        if (build_matcher(&tok->matchers[1], tok->norm_added, k, 1) != RM_OK)
            st = rm_fail(err, RM_ERR_NOMEM, "%s: added_tokens: out of memory", name);
    }
    rm_buf_free(&arena);
    rm_mfree(offset);
    return st;
}

static rm_status load_added(rm_tokenizer *tok, json_t *list, const char *name, rm_err *err) {
    if (!list || json_is_null(list)) list = NULL;
    else if (!json_is_array(list)) return rm_fail(err, RM_ERR_FORMAT, "%s: added_tokens: expected an array", name);
    size_t n = list ? json_array_size(list) : 0, total = 0;
    if (n > RM_TOK_MAX_ADDED)
        return rm_fail(err, RM_ERR_LIMIT, "%s: added_tokens: %zu entries, more than %d", name, n, RM_TOK_MAX_ADDED);
    for (size_t i = 0; i < n; i++) {
        json_t *content = json_object_get(json_array_get(list, i), "content");
        if (!json_is_string(content) || json_string_length(content) == 0)
            return rm_fail(err, RM_ERR_FORMAT, "%s: added_tokens[%zu].content: expected a non-empty string", name, i);
        if (json_string_length(content) > RM_TOK_MAX_TOKEN_BYTES)
            return rm_fail(err, RM_ERR_LIMIT, "%s: added_tokens[%zu].content: %zu bytes, more than %d", name, i,
                           json_string_length(content), RM_TOK_MAX_TOKEN_BYTES);
        total += json_string_length(content) + 1;
    }
    tok->added = rm_calloc(n + 1, sizeof *tok->added);
    tok->added_text = rm_malloc(total + 1);
    tok->added_by_id = rm_malloc((n + 1) * sizeof *tok->added_by_id);
    if (!tok->added || !tok->added_text || !tok->added_by_id || !rm_hashmap_init(&tok->added_ids, n))
        return rm_fail(err, RM_ERR_NOMEM, "%s: added_tokens: out of memory", name);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *entry = json_array_get(list, i), *content = json_object_get(entry, "content");
        char field[64];
        snprintf(field, sizeof field, "added_tokens[%zu]", i);
        int64_t id;
        if (!rm_json_integer(json_object_get(entry, "id"), &id))
            return rm_fail(err, RM_ERR_FORMAT, "%s: %s.id: expected an integer", name, field);
        if (id < 0 || id > RM_TOK_MAX_ID)
            return rm_fail(err, RM_ERR_LIMIT, "%s: %s.id: %lld outside 0..%d", name, field, (long long)id, RM_TOK_MAX_ID);
        rm_added_token *t = &tok->added[i];
        size_t len = json_string_length(content);
        memcpy(tok->added_text + at, json_string_value(content), len);
        tok->added_text[at + len] = 0;
        t->content = tok->added_text + at;
        t->len = (uint32_t)len;
        t->id = (int32_t)id;
        at += len + 1;
        int special = 0, single_word = 0, lstrip = 0, rstrip = 0, normalized = 0;
        rm_status st;
        if ((st = get_flag(entry, "special", 0, &special, name, field, err)) != RM_OK ||
            (st = get_flag(entry, "single_word", 0, &single_word, name, field, err)) != RM_OK ||
            (st = get_flag(entry, "lstrip", 0, &lstrip, name, field, err)) != RM_OK ||
            (st = get_flag(entry, "rstrip", 0, &rstrip, name, field, err)) != RM_OK ||
            (st = get_flag(entry, "normalized", !special, &normalized, name, field, err)) != RM_OK)
            return st;
        t->special = (uint8_t)special;
        t->single_word = (uint8_t)single_word;
        t->lstrip = (uint8_t)lstrip;
        t->rstrip = (uint8_t)rstrip;
        t->normalized = (uint8_t)normalized;
        int32_t other;
        int r = rm_hashmap_put(&tok->added_ids, t->content, len, t->id, &other);
        if (r < 0) return rm_fail(err, RM_ERR_NOMEM, "%s: added_tokens: out of memory", name);
        if (r == 0)
            return rm_fail(err, RM_ERR_FORMAT, "%s: %s.content: \"%.*s\" is listed twice", name, field,
                           (int)(len > 64 ? 64 : len), t->content);
    }
    tok->n_added = n;
    /* Sorted by id for rm_tok_str; the pair array keeps qsort free of globals. */
    id_index *order = rm_malloc((n + 1) * sizeof *order);
    if (!order) return rm_fail(err, RM_ERR_NOMEM, "%s: added_tokens: out of memory", name);
    for (size_t i = 0; i < n; i++) order[i] = (id_index){tok->added[i].id, (int32_t)i};
    qsort(order, n, sizeof *order, cmp_id);
    for (size_t i = 0; i < n; i++) tok->added_by_id[i] = order[i].index;
    rm_mfree(order);
    for (size_t i = 1; i < n; i++) {
        const rm_added_token *a = &tok->added[tok->added_by_id[i - 1]], *b = &tok->added[tok->added_by_id[i]];
        if (a->id == b->id)
            return rm_fail(err, RM_ERR_FORMAT, "%s: added_tokens[%d].id: %d is also the id of added_tokens[%d]", name,
                           (int)tok->added_by_id[i], b->id, (int)tok->added_by_id[i - 1]);
    }
    if (build_matcher(&tok->matchers[0], tok->added, n, 0) != RM_OK)
        return rm_fail(err, RM_ERR_NOMEM, "%s: added_tokens: out of memory", name);
    if (tok->n_norms) return load_normalized_tokens(tok, name, err);
    if (build_matcher(&tok->matchers[1], tok->added, n, 1) != RM_OK)
        return rm_fail(err, RM_ERR_NOMEM, "%s: added_tokens: out of memory", name);
    return RM_OK;
}

/* One normalizer; a Sequence adds its members in order (nested ones flattened). */
static rm_status load_normalizer(rm_tokenizer *tok, json_t *norm, const char *name, const char *field, int depth,
                                 rm_err *err) {
    static const struct { const char *type; rm_norm_form form; } forms[] = {
        {"NFC", RM_NORM_NFC}, {"NFD", RM_NORM_NFD}, {"NFKC", RM_NORM_NFKC}, {"NFKD", RM_NORM_NFKD}};
    if (!json_is_object(norm)) return rm_fail(err, RM_ERR_FORMAT, "%s: %s: expected an object or null", name, field);
    const char *type = json_string_value(json_object_get(norm, "type"));
    if (!type) return rm_fail(err, RM_ERR_FORMAT, "%s: %s.type: expected a string", name, field);
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++)
        if (strcmp(type, forms[i].type) == 0) {
            if (tok->n_norms == RM_TOK_MAX_NORMALIZERS)
                return rm_fail(err, RM_ERR_LIMIT, "%s: %s: more than %d normalizers", name, field,
                               RM_TOK_MAX_NORMALIZERS);
            tok->norms[tok->n_norms++] = forms[i].form;
            return RM_OK;
        }
    if (strcmp(type, "Sequence") == 0 && depth < RM_TOK_MAX_NORMALIZERS) {
        json_t *list = json_object_get(norm, "normalizers");
        if (!json_is_array(list)) return rm_fail(err, RM_ERR_FORMAT, "%s: %s.normalizers: expected an array", name, field);
        for (size_t i = 0; i < json_array_size(list); i++) {
            char sub[200];
            snprintf(sub, sizeof sub, "%s.normalizers[%zu]", field, i);
            rm_status st = load_normalizer(tok, json_array_get(list, i), name, sub, depth + 1, err);
            if (st != RM_OK) return st;
        }
        return RM_OK;
    }
    if (strcmp(type, "Sequence") == 0)
        return rm_fail(err, RM_ERR_LIMIT, "%s: %s: Sequences nested more than %d deep", name, field,
                       RM_TOK_MAX_NORMALIZERS);
    /* Lowercase is not here: HF lowercases with Rust's full mapping (U+0130 becomes
     * two characters), which utf8proc's simple case mapping does not give. */
    return rm_fail(err, RM_ERR_UNSUPPORTED,
                   "%s: %s.type: normalizer \"%s\" is not supported (only null, NFC, NFD, NFKC, NFKD or a "
                   "Sequence of them)",
                   name, field, type);
}

static rm_status parse_root(rm_tokenizer *tok, json_t *root, const char *name, rm_err *err) {
    rm_status st;
    if (!json_is_object(root)) return rm_fail(err, RM_ERR_FORMAT, "%s: expected a JSON object at the top", name);
    json_t *normalizer = json_object_get(root, "normalizer");
    if (normalizer && !json_is_null(normalizer) &&
        (st = load_normalizer(tok, normalizer, name, "normalizer", 0, err)) != RM_OK)
        return st;
    tok->gctx = pcre2_general_context_create(pcre_alloc, pcre_free, NULL);
    if (!tok->gctx) return rm_fail(err, RM_ERR_NOMEM, "%s: out of memory", name);
    if ((st = compile_pattern(tok, "\\w", 2, 0, &tok->word_re, name, "(word pattern)", err)) != RM_OK ||
        (st = load_pre_tokenizer(tok, json_object_get(root, "pre_tokenizer"), name, err)) != RM_OK ||
        (st = rm_bpe_load(&tok->bpe, json_object_get(root, "model"), name, err)) != RM_OK ||
        (st = load_added(tok, json_object_get(root, "added_tokens"), name, err)) != RM_OK)
        return st;
    tok->n_ids = tok->bpe.n_ids;
    for (size_t i = 0; i < tok->n_added; i++)
        if (tok->added[i].id >= tok->n_ids) tok->n_ids = tok->added[i].id + 1;
    return RM_OK;
}

rm_status rm_tok_parse(rm_tokenizer **out, const char *json, size_t len, const char *name, rm_err *err) {
    if (!out) return rm_fail(err, RM_ERR_INVALID_ARG, "rm_tok_parse: out is NULL");
    *out = NULL;
    if (!name) name = "tokenizer.json";
    if (!json && len) return rm_fail(err, RM_ERR_INVALID_ARG, "%s: no text", name);
    /* Integers as reals: a huge id is then reported as out of range, not as a parse error. */
    json_t *root;
    rm_status jst = rm_json_parse(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, name,
                                  &root, err);
    if (jst) return jst;
    rm_tokenizer *tok = rm_calloc(1, sizeof *tok);
    if (!tok) {
        json_decref(root);
        return rm_fail(err, RM_ERR_NOMEM, "%s: out of memory", name);
    }
    tok->bpe.unk_id = -1;
    rm_status st = parse_root(tok, root, name, err);
    json_decref(root);
    if (st != RM_OK) {
        rm_tok_free(tok);
        return st;
    }
    *out = tok;
    return RM_OK;
}

rm_status rm_tok_load(rm_tokenizer **out, const char *path, rm_err *err) {
    if (!out || !path) return rm_fail(err, RM_ERR_INVALID_ARG, "rm_tok_load: %s is NULL", out ? "path" : "out");
    *out = NULL;
    char *data;
    size_t len;
    rm_status st = rm_read_file(path, RM_TOK_MAX_FILE_BYTES, &data, &len, err);
    if (st != RM_OK) return st;
    st = rm_tok_parse(out, data, len, path, err);
    rm_mfree(data);
    return st;
}

void rm_tok_free(rm_tokenizer *tok) {
    if (!tok) return;
    rm_bpe_free(&tok->bpe);
    rm_mfree(tok->added);
    rm_mfree(tok->added_text);
    rm_mfree(tok->added_by_id);
    rm_hashmap_free(&tok->added_ids);
    for (int i = 0; i < 2; i++) rm_mfree(tok->matchers[i].sorted);
    rm_mfree(tok->norm_added);
    rm_mfree(tok->norm_added_text);
    for (size_t i = 0; i < RM_TOK_MAX_STEPS; i++) pcre2_code_free(tok->steps[i].re);
    pcre2_code_free(tok->word_re);
    pcre2_general_context_free(tok->gctx);
    rm_mfree(tok);
}
