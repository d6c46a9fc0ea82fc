/*
 * tokenizer.c - encoding with a loaded tokenizer.json, in Hugging Face's order:
 * split out added tokens (leftmost-longest, lstrip/rstrip/single_word),
 * normalize the text between them (utf8proc) and split out the normalized
 * added tokens there, run the pre-tokenizers (regex splits, Isolated) on what
 * is left, and merge each piece with the BPE model. Everything a call writes
 * lives in its own encode_ctx, so threads may share one tokenizer.
 */
#include <stdint.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer_impl.h"

typedef struct encode_ctx {
    const rm_tokenizer *tok;
    const char *text;         /* the whole input (for offsets in messages), or while normalized
                               * tokens are split out, the normalized segment */
    size_t len;
    const uint8_t *mask;      /* bytes of `text` where added tokens are not recognised, or NULL */
    rm_ids *out;
    rm_err *err;
    pcre2_match_data *md;
    pcre2_match_context *mctx;     /* made when a match needs a larger JIT stack */
    pcre2_jit_stack *jit_stack;
    rm_bpe_scratch scratch;
} encode_ctx;

#define JIT_STACK_MAX (64u << 20)  /* a pattern needing more is reported as RM_ERR_LIMIT */

/* ---------------------------------------------------------------- characters */

/* Unicode White_Space (Rust's char::is_whitespace, used by HF's lstrip/rstrip). */
static int is_white_space(uint32_t c) {
    return (c >= 0x9 && c <= 0xD) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Decodes the (valid) UTF-8 character at s[0..n); returns its length. */
static size_t decode_char(const char *str, size_t n, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)str;
    size_t k = s[0] < 0x80 ? 1 : s[0] < 0xE0 ? 2 : s[0] < 0xF0 ? 3 : 4;
    if (k > n) k = 1;
    uint32_t c = k == 1 ? s[0] : s[0] & (0x7F >> k);
    for (size_t i = 1; i < k; i++) c = c << 6 | (s[i] & 0x3F);
    *cp = c;
    return k;
}

/* Start of the character that ends at `pos` (pos > begin). */
static size_t char_before(const char *text, size_t begin, size_t pos) {
    pos--;
    while (pos > begin && ((unsigned char)text[pos] & 0xC0) == 0x80) pos--;
    return pos;
}

/* Whether the character at text[at] (subject text[0..end)) is a word character, as \w. */
static int word_char_at(encode_ctx *c, size_t at, size_t end) {
    int rc = pcre2_match(c->tok->word_re, (PCRE2_SPTR)c->text, end, at, PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK, c->md,
                         NULL);
    return rc >= 0;
}

/* ---------------------------------------------------------------- normalizer */

/* What utf8proc_NFC & co. pass, less NULLTERM: the text has a length and may hold NUL. */
static utf8proc_option_t form_options(rm_norm_form form) {
    switch (form) {
    case RM_NORM_NFD: return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE;
    case RM_NORM_NFKC: return UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
    case RM_NORM_NFKD: return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
    case RM_NORM_NFC: break;
    }
    return UTF8PROC_STABLE | UTF8PROC_COMPOSE;
}

static rm_status utf8proc_failed(utf8proc_ssize_t code, const char *what, rm_err *err) {
    rm_status st = code == UTF8PROC_ERROR_NOMEM ? RM_ERR_NOMEM
                   : code == UTF8PROC_ERROR_OVERFLOW ? RM_ERR_LIMIT
                                                     : RM_ERR_INTERNAL;
    return rm_fail(err, st, "%s: normalizing: %s", what, utf8proc_errmsg(code));
}

/* One form into a new buffer: the steps of utf8proc_map, which would allocate
 * with malloc where we want rm_malloc (so allocation failures can be tested). */
static rm_status apply_form(const char *s, size_t n, rm_norm_form form, char **out, size_t *out_len,
                            const char *what, rm_err *err) {
    utf8proc_option_t opt = form_options(form);
    if (n > (size_t)(SIZE_MAX / 2 / sizeof(utf8proc_int32_t)))
        return rm_fail(err, RM_ERR_LIMIT, "%s: %zu bytes are too many to normalize", what, n);
    utf8proc_ssize_t need = utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, NULL, 0, opt);
    if (need < 0) return utf8proc_failed(need, what, err);
    /* Decomposed code points, then re-encoded in place as UTF-8 (at most 4 bytes each) plus a NUL. */
    utf8proc_int32_t *buf = rm_malloc((size_t)need * sizeof *buf + 1);
    if (!buf) return rm_fail(err, RM_ERR_NOMEM, "%s: out of memory normalizing %zu bytes", what, n);
    utf8proc_ssize_t got = utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, buf, need, opt);
    if (got >= 0) got = utf8proc_reencode(buf, got, opt);
    if (got < 0) {
        rm_mfree(buf);
        return utf8proc_failed(got, what, err);
    }
    *out = (char *)buf;
    *out_len = (size_t)got;
    return RM_OK;
}

/* All the forms, in order, over s[0..n) into a new buffer. */
static rm_status apply_forms(const rm_tokenizer *tok, const char *s, size_t n, char **out, size_t *out_len,
                             const char *what, rm_err *err) {
    char *cur = NULL;
    size_t cur_len = n;
    for (size_t k = 0; k < tok->n_norms; k++) {
        char *next = NULL;
        size_t next_len = 0;
        rm_status st = apply_form(cur ? cur : s, cur_len, tok->norms[k], &next, &next_len, what, err);
        rm_mfree(cur);
        if (st != RM_OK) return st;
        cur = next;
        cur_len = next_len;
    }
    *out = cur;
    *out_len = cur_len;
    return RM_OK;
}

static int is_ascii(char c) { return (unsigned char)c < 0x80; }

/* No form changes an ASCII character, composes one onto what precedes it or
 * reorders marks across it, so text may be cut before any ASCII character
 * and the parts normalized apart: only runs of non-ASCII characters, with the
 * ASCII one before them (it may take a combining mark), go through utf8proc.
 * English prompts then cost a copy. */
rm_status rm_tok_normalize(const rm_tokenizer *tok, const char *s, size_t n, char **out, size_t *out_len,
                           const char *what, rm_err *err) {
    *out = NULL;
    *out_len = n;
    size_t i = 0;
    while (i < n && is_ascii(s[i])) i++;
    if (i == n || tok->n_norms == 0) return RM_OK;
    rm_buf res = {0};
    size_t done = 0;   /* s[0..done) is in res */
    while (i < n) {
        size_t start = i ? i - 1 : 0, stop = i;
        while (stop < n && !is_ascii(s[stop])) stop++;
        char *part;
        size_t part_len;
        rm_status st = apply_forms(tok, s + start, stop - start, &part, &part_len, what, err);
        if (st != RM_OK) {
            rm_buf_free(&res);
            return st;
        }
        rm_buf_append(&res, s + done, start - done);
        rm_buf_append(&res, part, part_len);
        rm_mfree(part);
        done = stop;
        for (i = stop; i < n && is_ascii(s[i]); i++) {}
    }
    rm_buf_append(&res, s + done, n - done);
    if (!rm_buf_putc(&res, 0) || res.oom) {
        rm_buf_free(&res);
        return rm_fail(err, RM_ERR_NOMEM, "%s: out of memory normalizing %zu bytes", what, n);
    }
    *out = res.data;
    *out_len = res.len - 1;
    return RM_OK;
}

/* ---------------------------------------------------------------- pre-tokenizers */

static rm_status regex_failed(encode_ctx *c, int rc, size_t at) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    rm_status st = rc == PCRE2_ERROR_NOMEMORY ? RM_ERR_NOMEM
                   : (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT ||
                      rc == PCRE2_ERROR_JIT_STACKLIMIT)
                       ? RM_ERR_LIMIT
                       : RM_ERR_INTERNAL;
    return rm_fail(c->err, st, "text: pre-tokenizer pattern failed near byte %zu: %s", at, (const char *)msg);
}

/* Runs pcre2_match, growing the JIT stack once if the default 32 KiB is too small. */
static int match(encode_ctx *c, const pcre2_code *re, const char *s, size_t n, size_t from) {
    int rc = pcre2_match(re, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK, c->md, c->mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !c->jit_stack) {
        c->mctx = pcre2_match_context_create(c->tok->gctx);
        c->jit_stack = c->mctx ? pcre2_jit_stack_create(64 * 1024, JIT_STACK_MAX, c->tok->gctx) : NULL;
        if (!c->jit_stack) return PCRE2_ERROR_NOMEMORY;
        pcre2_jit_stack_assign(c->mctx, NULL, c->jit_stack);
        rc = pcre2_match(re, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK, c->md, c->mctx);
    }
    return rc;
}

static size_t offset_of(const encode_ctx *c, const char *s) {
    return s >= c->text && s <= c->text + c->len ? (size_t)(s - c->text) : 0;
}

static rm_status run_steps(encode_ctx *c, size_t step, const char *s, size_t n);

/* Isolated split of s[0..n) by re: every match is a piece, and so is the text
 * between matches; each piece continues at pre-tokenizer `next`. */
static rm_status split_isolated(encode_ctx *c, const pcre2_code *re, size_t next, const char *s, size_t n) {
    size_t off = 0, last = 0;
    rm_status r;
    while (off < n) {
        int rc = match(c, re, s, n, off);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return regex_failed(c, rc, offset_of(c, s) + off);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
        size_t a = ov[0], b = ov[1];
        if (b <= a || a < last || b > n) {   /* an empty match (or \K trickery): step over one character */
            uint32_t cp;
            off = a < last ? last : a;
            if (off >= n) break;
            off += decode_char(s + off, n - off, &cp);
            continue;
        }
        if (a > last && (r = run_steps(c, next, s + last, a - last)) != RM_OK) return r;
        if ((r = run_steps(c, next, s + a, b - a)) != RM_OK) return r;
        last = off = b;
    }
    return last < n ? run_steps(c, next, s + last, n - last) : RM_OK;
}

/* Applies pre-tokenizer `step` onwards to the piece s[0..n); past the last
 * step the piece goes to the BPE model. */
static rm_status run_steps(encode_ctx *c, size_t step, const char *s, size_t n) {
    if (n == 0) return RM_OK;
    const rm_tokenizer *tok = c->tok;
    if (step == tok->n_steps) {
        if (!rm_bpe_encode_word(&tok->bpe, (const uint8_t *)s, n, &c->scratch, c->out))
            return rm_fail(c->err, RM_ERR_NOMEM, "text: out of memory encoding a piece of %zu bytes", n);
        return RM_OK;
    }
    const rm_pretok_step *st = &tok->steps[step];
    if (st->kind == RM_PRETOK_BYTELEVEL && st->add_prefix_space && s[0] != ' ') {
        /* HF's ByteLevel prepends a space to every piece that lacks one. */
        char *spaced = rm_malloc(n + 1);
        if (!spaced) return rm_fail(c->err, RM_ERR_NOMEM, "text: out of memory");
        spaced[0] = ' ';
        memcpy(spaced + 1, s, n);
        rm_status r = st->re ? split_isolated(c, st->re, step + 1, spaced, n + 1)
                             : run_steps(c, step + 1, spaced, n + 1);
        rm_mfree(spaced);
        return r;
    }
    return st->re ? split_isolated(c, st->re, step + 1, s, n) : run_steps(c, step + 1, s, n);
}

/* ---------------------------------------------------------------- added tokens */

/* The longest token of m written at text[i..end) whose bytes are all unmasked, or NULL. */
static const rm_added_token *longest_at(const encode_ctx *c, const rm_token_matcher *m, size_t i, size_t end) {
    const rm_added_token *best = NULL;
    size_t lo = 0, hi = m->n;
    for (size_t d = 0;; d++) {
        /* Entries in [lo, hi) all begin with text[i..i+d); one of length d is a match. */
        if (lo < hi && m->sorted[lo]->len == d) best = m->sorted[lo++];
        if (lo >= hi || i + d >= end || (c->mask && c->mask[i + d])) break;
        unsigned char ch = (unsigned char)c->text[i + d];
        size_t a = lo, b = hi;
        while (a < b) {
            size_t mid = a + (b - a) / 2;
            if ((unsigned char)m->sorted[mid]->content[d] < ch) a = mid + 1;
            else b = mid;
        }
        size_t first = a;
        b = hi;
        while (a < b) {
            size_t mid = a + (b - a) / 2;
            if ((unsigned char)m->sorted[mid]->content[d] <= ch) a = mid + 1;
            else b = mid;
        }
        lo = first;
        hi = a;
    }
    return best;
}

static rm_status split_added(encode_ctx *c, size_t begin, size_t end, int pass);

/* Whether the character at text[i..end) has a masked byte; *next is where the next one starts. */
static int char_masked(const encode_ctx *c, size_t i, size_t end, size_t *next) {
    uint32_t cp;
    size_t stop = i + decode_char(c->text + i, end - i, &cp);
    int masked = 0;
    for (size_t k = i; k < stop; k++) masked |= c->mask[k] != 0;
    *next = stop;
    return masked;
}

/* Normalizing changed text[begin..end) (mixed mask) into norm[0..norm_len):
 * which normalized bytes came from masked ones. Each run of characters of
 * equal mask (a character is masked when any of its bytes is) is normalized
 * alone; when those pieces put together give `norm`, each keeps its run's
 * mask. When a character composes across a run boundary they do not, and the
 * whole segment is masked: no added token is recognised in bytes partly made
 * of message content. */
static rm_status mask_normalized(encode_ctx *c, size_t begin, size_t end, const char *norm, size_t norm_len,
                                 uint8_t *mask) {
    size_t at = 0, run = begin, stop;
    int aligned = 1, masked = char_masked(c, run, end, &stop);
    while (run < end && aligned) {
        int next_masked = masked;
        size_t next_stop = stop;
        while (stop < end && (next_masked = char_masked(c, stop, end, &next_stop)) == masked) stop = next_stop;
        char *piece;
        size_t piece_len;
        rm_status st = rm_tok_normalize(c->tok, c->text + run, stop - run, &piece, &piece_len, "text", c->err);
        if (st != RM_OK) return st;
        const char *p = piece ? piece : c->text + run;
        aligned = at + piece_len <= norm_len && memcmp(norm + at, p, piece_len) == 0;
        if (aligned) memset(mask + at, masked, piece_len);
        at += piece_len;
        rm_mfree(piece);
        run = stop;
        stop = next_stop;
        masked = next_masked;
    }
    if (!aligned || at != norm_len) memset(mask, 1, norm_len);
    return RM_OK;
}

/* Text between non-normalized added tokens goes through the normalizer, then
 * (when `split`) the normalized added tokens are split out of the result as
 * HF does, else it goes straight to the pre-tokenizers. */
static rm_status normalized_segment(encode_ctx *c, size_t begin, size_t end, int split) {
    char *norm;
    size_t n;
    rm_status r = rm_tok_normalize(c->tok, c->text + begin, end - begin, &norm, &n, "text", c->err);
    if (r != RM_OK) return r;
    if (!norm) return split ? split_added(c, begin, end, 1) : run_steps(c, 0, c->text + begin, end - begin);
    if (!split) {
        r = run_steps(c, 0, norm, n);
        rm_mfree(norm);
        return r;
    }
    /* Match in the normalized text: the context points at it for the pass. */
    uint8_t *mask = NULL;
    int any_masked = 0;
    for (size_t i = begin; c->mask && i < end && !any_masked; i++) any_masked = c->mask[i] != 0;
    if (any_masked) {
        mask = rm_malloc(n + 1);
        if (!mask) r = rm_fail(c->err, RM_ERR_NOMEM, "text: out of memory");
        else r = mask_normalized(c, begin, end, norm, n, mask);
    }
    if (r == RM_OK) {
        const char *text = c->text;
        size_t len = c->len;
        const uint8_t *outer_mask = c->mask;
        c->text = norm;
        c->len = n;
        c->mask = mask;
        r = split_added(c, 0, n, 1);
        c->text = text;
        c->len = len;
        c->mask = outer_mask;
    }
    rm_mfree(mask);
    rm_mfree(norm);
    return r;
}

/* Text between added tokens: after the raw-text pass, normalized and the
 * normalized-token pass; after that, the pre-tokenizers. */
static rm_status plain_segment(encode_ctx *c, size_t begin, size_t end, int pass) {
    if (begin >= end) return RM_OK;
    if (pass == 0 && c->tok->n_norms) return normalized_segment(c, begin, end, c->tok->matchers[1].n != 0);
    if (pass == 0 && c->tok->matchers[1].n) return split_added(c, begin, end, 1);
    return run_steps(c, 0, c->text + begin, end - begin);
}

/* HF's AddedVocabulary::find_matches on text[begin..end): non-overlapping
 * leftmost-longest matches; a match failing single_word is skipped whole. */
static rm_status split_added(encode_ctx *c, size_t begin, size_t end, int pass) {
    const rm_token_matcher *m = &c->tok->matchers[pass];
    const char *t = c->text;
    size_t seg = begin, i = begin;
    rm_status r;
    while (i < end) {
        if (!m->first[(unsigned char)t[i]]) { i++; continue; }
        const rm_added_token *tk = longest_at(c, m, i, end);
        if (!tk) { i++; continue; }
        size_t start = i, stop = i + tk->len;
        i = stop;
        if (tk->single_word) {
            int alone_left = start == begin || !word_char_at(c, char_before(t, begin, start), start);
            int alone_right = stop == end || !word_char_at(c, stop, end);
            if (!alone_left || !alone_right) continue;
        }
        if (tk->lstrip) {
            while (start > seg) {
                size_t p = char_before(t, seg, start);
                uint32_t cp;
                decode_char(t + p, start - p, &cp);
                if (!is_white_space(cp)) break;
                start = p;
            }
        }
        if (tk->rstrip) {
            while (stop < end) {
                uint32_t cp;
                size_t k = decode_char(t + stop, end - stop, &cp);
                if (!is_white_space(cp)) break;
                stop += k;
            }
            i = stop;   /* a match inside the stripped spaces would overlap this one */
        }
        if ((r = plain_segment(c, seg, start, pass)) != RM_OK) return r;
        if (!rm_ids_push(c->out, tk->id)) return rm_fail(c->err, RM_ERR_NOMEM, "text: out of memory");
        seg = stop;
    }
    return plain_segment(c, seg, end, pass);
}

/* ---------------------------------------------------------------- API */

rm_status rm_tok_encode(const rm_tokenizer *tok, const char *text, size_t len, const uint8_t *plain_mask,
                        int parse_special, rm_ids *out, rm_err *err) {
    if (!tok || !out || (!text && len))
        return rm_fail(err, RM_ERR_INVALID_ARG, "rm_tok_encode: %s is NULL", !tok ? "tok" : !out ? "out" : "text");
    size_t bad = rm_utf8_check(text, len);
    if (bad != len) return rm_fail(err, RM_ERR_UTF8, "text: invalid UTF-8 at byte offset %zu", bad);
    encode_ctx c = {.tok = tok, .text = text ? text : "", .len = len, .mask = plain_mask, .out = out, .err = err};
    c.md = pcre2_match_data_create(1, tok->gctx);   /* the patterns have no capture groups we read */
    if (!c.md) return rm_fail(err, RM_ERR_NOMEM, "text: out of memory");
    size_t before = out->len;
    rm_status st = parse_special && tok->n_added ? split_added(&c, 0, len, 0)
                   : tok->n_norms && len            ? normalized_segment(&c, 0, len, 0)
                                                    : run_steps(&c, 0, c.text, len);
    if (st != RM_OK) out->len = before;   /* no partial output */
    rm_bpe_scratch_free(&c.scratch);
    pcre2_match_data_free(c.md);
    pcre2_match_context_free(c.mctx);
    pcre2_jit_stack_free(c.jit_stack);
    return st;
}

static const rm_added_token *added_with_id(const rm_tokenizer *tok, int32_t id) {
    size_t lo = 0, hi = tok->n_added;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const rm_added_token *t = &tok->added[tok->added_by_id[mid]];
        if (t->id == id) return t;
        if (t->id < id) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

int32_t rm_tok_id(const rm_tokenizer *tok, const char *token, size_t len) {
    int32_t id;
    if (!tok || (!token && len)) return -1;
    /* Added tokens first, as HF's token_to_id. */
    if (rm_hashmap_get(&tok->added_ids, token, len, &id)) return id;
    if (rm_hashmap_get(&tok->bpe.by_text, token, len, &id)) return id;
    return -1;
}

const char *rm_tok_str(const rm_tokenizer *tok, int32_t id) {
    if (!tok || id < 0 || id >= tok->n_ids) return NULL;
    const rm_added_token *t = added_with_id(tok, id);
    if (t) return t->content;
    if (id < tok->bpe.n_ids && tok->bpe.text_len[id] != RM_TOK_NO_TOKEN) return tok->bpe.text + tok->bpe.text_off[id];
    return NULL;
}

int32_t rm_tok_vocab_size(const rm_tokenizer *tok) { return tok ? tok->n_ids : 0; }

int rm_tok_is_added(const rm_tokenizer *tok, int32_t id, int *special) {
    const rm_added_token *t = tok ? added_with_id(tok, id) : NULL;
    if (t && special) *special = t->special;
    return t != NULL;
}

rm_status rm_tok_decode(const rm_tokenizer *tok, const int32_t *ids, size_t n, rm_buf *out, rm_err *err) {
    if (!tok || !out || (!ids && n)) return rm_fail(err, RM_ERR_INVALID_ARG, "rm_tok_decode: NULL argument");
    const rm_bpe *bpe = &tok->bpe;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        const rm_added_token *t = added_with_id(tok, id);
        int ok;
        if (t) ok = rm_buf_append(out, t->content, t->len);
        else if (id >= 0 && id < bpe->n_ids && bpe->raw_len[id] != RM_TOK_NO_TOKEN)
            ok = rm_buf_append(out, bpe->raw + bpe->raw_off[id], bpe->raw_len[id]);
        else if (id >= 0 && id < bpe->n_ids && bpe->text_len[id] != RM_TOK_NO_TOKEN)   /* not byte-level: as written */
            ok = rm_buf_append(out, bpe->text + bpe->text_off[id], bpe->text_len[id]);
        else
            return rm_fail(err, RM_ERR_INVALID_ARG, "ids[%zu]: %d is not a token id", i, (int)id);
        if (!ok) return rm_fail(err, RM_ERR_NOMEM, "out of memory decoding %zu ids", n);
    }
    return RM_OK;
}
