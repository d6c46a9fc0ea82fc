/*
 * heads.c - the three kinds of reward head, reading named scores from the
 * final hidden state of the last position:
 *   CLASSIFIER  score.weight rows (LlamaForSequenceClassification & co)
 *   LOGITS      lm_head rows [begin, end) (Nemotron-70B-Reward; NIM_REWARD_LOGITS_RANGE)
 *   PRINCIPLE   logit(Yes) - logit(No) (Nemotron-70B-Reward-Principle)
 * Only the rows a head reads are computed.
 */
#include "model.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SCORES 4096  /* a head with more named outputs than this is a mistake */

/* Parses "A,B" (NIM_REWARD_LOGITS_RANGE), half-open. */
static rm_status parse_range(const char *s, const char *what, int64_t *a, int64_t *b, rm_err *err) {
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (end == s || *end != ',' || errno) goto bad;
    const char *s2 = end + 1;
    long long y = strtoll(s2, &end, 10);
    if (end == s2 || *end != 0 || errno) goto bad;
    *a = x;
    *b = y;
    return RM_OK;
bad:
    return rm_fail(err, RM_ERR_INVALID_ARG, "%s \"%s\": expected two integers \"A,B\" (half-open range)", what, s);
}

/* Splits a comma-separated list of names into m->names; each name trimmed of spaces. */
static rm_status split_names(rm_model *m, const char *list, const char *what, rm_err *err) {
    size_t n = 1;
    for (const char *c = list; *c; c++) n += *c == ',';
    if (n > MAX_SCORES) return rm_fail(err, RM_ERR_LIMIT, "%s: more than %d names", what, MAX_SCORES);
    m->names = rm_calloc(n, sizeof *m->names);
    if (!m->names) return rm_fail(err, RM_ERR_NOMEM, "out of memory");
    const char *start = list;
    for (size_t i = 0; i < n; i++) {
        const char *end = strchr(start, ',');
        if (!end) end = start + strlen(start);
        const char *a = start, *b = end;
        while (a < b && *a == ' ') a++;
        while (b > a && b[-1] == ' ') b--;
        if (a == b) return rm_fail(err, RM_ERR_INVALID_ARG, "%s \"%s\": name %zu is empty", what, list, i + 1);
        if (!(m->names[i] = rm_strndup(a, (size_t)(b - a)))) return rm_fail(err, RM_ERR_NOMEM, "out of memory");
        m->n_names = i + 1;
        start = end + 1;
    }
    return RM_OK;
}

static rm_status default_names(rm_model *m, rm_err *err) {
    size_t n = m->head == RM_HEAD_CLASSIFIER ? (size_t)m->cfg.n_labels : (size_t)(m->logits_end - m->logits_begin);
    m->names = rm_calloc(n, sizeof *m->names);
    if (!m->names) return rm_fail(err, RM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char buf[64];
        const char *name;
        if (m->head == RM_HEAD_CLASSIFIER) name = m->cfg.labels[i];  /* id2label verbatim */
        else if (n == 1) name = "reward";
        else snprintf(buf, sizeof buf, "logit_%" PRId64, m->logits_begin + (int64_t)i), name = buf;
        if (!(m->names[i] = rm_strdup(name))) return rm_fail(err, RM_ERR_NOMEM, "out of memory");
        m->n_names = i + 1;
    }
    return RM_OK;
}

/* The names of the CLASSIFIER / LOGITS scores: params, NIM_REWARD_MODEL_STRING, or the defaults. */
static rm_status names_init(rm_model *m, const rm_params *p, rm_err *err) {
    const char *names = p->score_names;
    const char *what = "rm_params.score_names";
    if (!names && getenv("NIM_REWARD_MODEL_STRING") && *getenv("NIM_REWARD_MODEL_STRING")) {
        names = getenv("NIM_REWARD_MODEL_STRING");
        what = "NIM_REWARD_MODEL_STRING";
    }
    if (names && rm_utf8_check(names, strlen(names)) != strlen(names))
        return rm_fail(err, RM_ERR_UTF8, "%s: invalid UTF-8 at byte %zu", what, rm_utf8_check(names, strlen(names)));
    rm_status st = names ? split_names(m, names, what, err) : default_names(m, err);
    if (st) return st;
    for (size_t i = 0; names && i < m->n_names; i++)   /* id2label is the checkpoint's: taken as it is */
        for (size_t k = 0; k < i; k++)
            if (strcmp(m->names[i], m->names[k]) == 0)
                return rm_fail(err, RM_ERR_INVALID_ARG, "%s: the name \"%.64s\" stands twice", what, m->names[i]);
    size_t want = rm_head_width(m, 0);
    if (m->n_names != want)
        return rm_fail(err, RM_ERR_INVALID_ARG, "%s gives %zu names but the %s head has %zu scores", what,
                       m->n_names, m->head == RM_HEAD_CLASSIFIER ? "classification" : "logits", want);
    return RM_OK;
}

rm_status rm_heads_init(rm_model *m, const rm_params *p, rm_err *err) {
    rm_status st;
    const rm_config *c = &m->cfg;
    int head = p->head;
    if (head == RM_HEAD_AUTO) head = c->is_causal_lm ? RM_HEAD_LOGITS : RM_HEAD_CLASSIFIER;
    if (head < RM_HEAD_CLASSIFIER || head > RM_HEAD_PRINCIPLE)
        return rm_fail(err, RM_ERR_INVALID_ARG, "rm_params.head %d is not an rm_head", p->head);
    if (head == RM_HEAD_CLASSIFIER && c->is_causal_lm)
        return rm_fail(err, RM_ERR_INVALID_ARG, "%s is a causal LM (%s): it has no classification head; "
                       "use the logits or principle head", m->path, c->architecture);
    if (head != RM_HEAD_CLASSIFIER && !c->is_causal_lm)
        return rm_fail(err, RM_ERR_INVALID_ARG, "%s is a classification model (%s): the %s head needs lm_head",
                       m->path, c->architecture, head == RM_HEAD_LOGITS ? "logits" : "principle");
    /* The principle head is chosen per item (an item with principles); the
     * model's own scores are then the logits head's. */
    m->head = head == RM_HEAD_PRINCIPLE ? RM_HEAD_LOGITS : (rm_head)head;
    m->principle_only = head == RM_HEAD_PRINCIPLE;

    if (m->head == RM_HEAD_LOGITS && !m->principle_only) {
        m->logits_begin = 0;
        m->logits_end = 1;
        const char *env = getenv("NIM_REWARD_LOGITS_RANGE");
        const char *from = "the default logits range";
        if (p->logits_begin >= 0 || p->logits_end >= 0) {
            m->logits_begin = p->logits_begin;
            m->logits_end = p->logits_end;
            from = "rm_params.logits_begin/logits_end";
        } else if (env && *env) {
            if ((st = parse_range(env, "NIM_REWARD_LOGITS_RANGE", &m->logits_begin, &m->logits_end, err)))
                return st;
            from = "NIM_REWARD_LOGITS_RANGE";
        }
        if (m->logits_begin < 0 || m->logits_end <= m->logits_begin || m->logits_end > c->vocab)
            return rm_fail(err, RM_ERR_INVALID_ARG, "%s: the logits range [%" PRId64 ", %" PRId64 ") is empty or "
                           "outside the vocabulary [0, %" PRId64 ")", from, m->logits_begin, m->logits_end, c->vocab);
        if (m->logits_end - m->logits_begin > MAX_SCORES)
            return rm_fail(err, RM_ERR_LIMIT, "logits range [%" PRId64 ", %" PRId64 ") has more than %d rows",
                           m->logits_begin, m->logits_end, MAX_SCORES);
    }

    if (m->head == RM_HEAD_CLASSIFIER && c->n_labels > MAX_SCORES)
        return rm_fail(err, RM_ERR_LIMIT, "%s: %lld labels, more than the %d a head may have", m->path,
                       (long long)c->n_labels, MAX_SCORES);
    if (!m->principle_only && (st = names_init(m, p, err))) return st;   /* principle-only: no names of its own */

    if (c->is_causal_lm) {
        const char *yes = p->yes_token ? p->yes_token : "Yes";
        const char *no = p->no_token ? p->no_token : "No";
        m->yes_id = rm_tok_id(m->tok, yes, strlen(yes));
        m->no_id = rm_tok_id(m->tok, no, strlen(no));
        if ((p->yes_token || p->no_token || m->principle_only) && (m->yes_id < 0 || m->no_id < 0))
            return rm_fail(err, RM_ERR_INVALID_ARG, "rm_params.%s: the principle head's token \"%s\" is not in "
                           "the vocabulary", m->yes_id < 0 ? "yes_token" : "no_token", m->yes_id < 0 ? yes : no);
        if (m->yes_id >= c->vocab || m->no_id >= c->vocab) m->yes_id = m->no_id = -1;
    }
    return RM_OK;
}

void rm_heads_free(rm_model *m) {
    for (size_t i = 0; i < m->n_names; i++) rm_mfree(m->names[i]);
    rm_mfree(m->names);
    m->names = NULL;
    m->n_names = 0;
}

size_t rm_head_width(const rm_model *m, int principle) {
    if (principle) return 1;
    return m->head == RM_HEAD_CLASSIFIER ? (size_t)m->cfg.n_labels : (size_t)(m->logits_end - m->logits_begin);
}

rm_status rm_head_apply(rm_model *m, int principle, const float *hidden, double *out, rm_err *err) {
    int64_t rows[MAX_SCORES];
    float vals[MAX_SCORES];
    size_t n = rm_head_width(m, principle);
    const rm_tensor *t;
    if (principle) {
        if (m->yes_id < 0 || m->no_id < 0)
            return rm_fail(err, RM_ERR_INVALID_ARG, "principle head: the Yes/No tokens are not in the vocabulary");
        t = m->mw.lm_head;
        rows[0] = m->yes_id;
        rows[1] = m->no_id;
        n = 2;
    } else if (m->head == RM_HEAD_CLASSIFIER) {
        t = m->mw.score;
        for (size_t i = 0; i < n; i++) rows[i] = (int64_t)i;
    } else {
        t = m->mw.lm_head;
        for (size_t i = 0; i < n; i++) rows[i] = m->logits_begin + (int64_t)i;
    }
    rm_status st = m->engine_ops->head_rows(m->engine, t, rows, n, hidden, vals, err);
    if (st) return st;
    pthread_mutex_lock(&m->counter_lock);
    m->lm_head_rows += n;
    pthread_mutex_unlock(&m->counter_lock);
    if (principle) out[0] = (double)vals[0] - (double)vals[1];
    else for (size_t i = 0; i < n; i++) out[i] = vals[i];
    return RM_OK;
}
