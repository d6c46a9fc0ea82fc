/*
 * nimreward-score - score JSON lines with a reward model.
 *
 *   nimreward-score --model DIR [-i IN.jsonl] [-o OUT.jsonl] [--device cpu|cuda|auto]
 *                   [--dtype auto|fp32|bf16|fp8] [--gpu N] [--threads N] [--tp N] [--logits-range A,B] [--names a,b,...]
 *                   [--principle [NAME=]TEXT]... [--tokens] [--batch N] [--now ISO] [--content-special-tokens]
 *                   [--yes-token Yes --no-token No]
 *
 * Input line:  {"prompt": ..., "response": ...} or {"messages": [{"role", "content"}, ...]},
 *              optionally "principles": [...] (replacing the --principle flags for that line).
 *              A flag's score is named NAME when given, else after its text (cli_principle.h).
 * Output line: {"scores": {"name": value, ...}} (+ "tokens" with --tokens), or {"error": "line N: ..."},
 *              in input order, one per input line (an empty line gets an error line too). Each
 *              score is the shortest number that reads back to the same double.
 * Exit 0: every line scored; 3: some failed; 2: a usage mistake, refused once at start-up
 * (a bad flag or NIM_* variable, --principle on a classification model, --names that do not
 * fit the head); 1: fatal (the model cannot load, I/O).
 * Scripts outside the project depend on this contract: keep it stable.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "cli_principle.h"
#include "clock.h"
#include "nimreward.h"

/* Names --names may give: the most scores a head may have. */
#define CLI_MAX_NAMES 4096

static void usage(FILE *f) {
    fputs("usage: nimreward-score --model DIR [-i IN.jsonl] [-o OUT.jsonl] [--device cpu|cuda|auto]\n"
          "                       [--dtype auto|fp32|bf16|fp8] [--gpu N] [--threads N] [--tp N] [--logits-range A,B] [--names a,b,...]\n"
          "                       [--principle [NAME=]TEXT]... [--tokens] [--batch N] [--now YYYY-MM-DDTHH:MM:SS]\n"
          "                       [--content-special-tokens] [--yes-token Yes --no-token No]\n"
          "Each input line: {\"prompt\": ..., \"response\": ...} or {\"messages\": [...]}, optionally with\n"
          "\"principles\": [...]. Each output line: {\"scores\": {...}} or {\"error\": \"line N: ...\"}.\n"
          "  --model DIR   a Hugging Face model directory (required)\n"
          "  -i, -o FILE   input / output JSON lines (default: stdin / stdout)\n"
          "Exit status: 0 all lines scored, 3 some lines failed, 2 usage error (a bad flag, refused\n"
          "before any line is read), 1 fatal error (the model cannot load, I/O).\n", f);
}

static json_t *tokens_json(const rm_scores *s) {
    json_t *all = json_array();
    for (size_t k = 0; k < s->n_sequences; k++) {
        json_t *seq = json_array();
        for (size_t i = s->seq_offsets[k]; i < s->seq_offsets[k + 1]; i++)
            json_array_append_new(seq, json_integer(s->tokens[i]));
        json_array_append_new(all, seq);
    }
    if (s->n_sequences == 1) {        /* one sequence: a plain list of ids */
        json_t *only = json_incref(json_array_get(all, 0));
        json_decref(all);
        return only;
    }
    return all;
}

/* {"scores": {...}} (+ "tokens"), or NULL with why in err: a score that is
 * not a finite number, or two scores of one name (principles given twice).
 * names (NULL, or NULL entries) replaces the library's names: --names, or the
 * --principle NAME=. */
static json_t *result_json(const rm_scores *s, const char *const *names, int with_tokens, char *err, size_t n) {
    json_t *scores = json_object();
    for (size_t i = 0; i < s->n_scores; i++) {
        const char *name = names && names[i] ? names[i] : s->names[i];
        json_t *v = json_real(s->values[i]);   /* NULL for NaN and infinities */
        const char *why = NULL;
        if (!v) why = "is not a finite number";
        else if (json_object_get(scores, name)) json_decref(v), why = "stands twice";
        else if (json_object_set_new(scores, name, v)) why = "is not a valid name";   /* v is taken either way */
        if (why) {
            snprintf(err, n, "score \"%.64s\" %s", name, why);
            json_decref(scores);
            return NULL;
        }
    }
    json_t *o = json_pack("{s:o}", "scores", scores);
    if (o && with_tokens) json_object_set_new(o, "tokens", tokens_json(s));
    return o;
}

/* --names as a list: split at commas and trimmed of spaces, as the library
 * splits rm_params.score_names; an empty or repeated name is refused.
 * Returns the count, or -1 after printing why. list is modified in place. */
static long names_split(char *list, const char **names, size_t max) {
    size_t n = 0;
    for (char *start = list;; n++) {
        char *end = strchr(start, ','), *a = start, *b;
        if (end) *end = 0;
        b = a + strlen(a);
        while (*a == ' ') a++;
        while (b > a && b[-1] == ' ') *--b = 0;
        if (!*a) return fprintf(stderr, "error: --names: name %zu is empty\n", n + 1), -1;
        if (n == max) return fprintf(stderr, "error: --names: more than %zu names\n", max), -1;
        for (size_t k = 0; k < n; k++)
            if (!strcmp(names[k], a)) return fprintf(stderr, "error: --names: \"%s\" stands twice\n", a), -1;
        json_t *valid = json_string(a);   /* NULL when not UTF-8: it could not be written as a JSON key */
        if (!valid) return fprintf(stderr, "error: --names: name %zu is not valid UTF-8\n", n + 1), -1;
        json_decref(valid);
        names[n] = a;
        if (!end) return (long)n + 1;
        start = end + 1;
    }
}

/* rm_load's message, with the parameter fields it names written as the flags that set them. */
static void print_load_error(const char *model_dir, const char *msg, rm_status st) {
    static const struct { const char *field, *flag; } flags[] = {
        {"rm_params.logits_begin/logits_end", "--logits-range"}, {"rm_params.now", "--now"},
        {"rm_params.yes_token", "--yes-token"}, {"rm_params.no_token", "--no-token"},
        {"rm_params.n_threads", "--threads"}, {"rm_params.dtype", "--dtype"}, {"rm_params.gpu", "--gpu"},
        {"rm_params.device", "--device"},
    };
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
        size_t n = strlen(flags[i].field);
        if (!strncmp(msg, flags[i].field, n)) {
            fprintf(stderr, "error: %s%s\n", flags[i].flag, msg + n);
            return;
        }
    }
    fprintf(stderr, "error: %s: %s (%s)\n", model_dir, msg, rm_status_string(st));
}

/* The mistakes that would fail every line, refused once before any is read. */
static int check_run(rm_model *model, const char *model_dir, size_t n_principles, const char *yes_token,
                     const char *no_token, const char *const *names, long n_names) {
    if (n_principles && rm_model_head(model) == RM_HEAD_CLASSIFIER) {
        fprintf(stderr, "error: --principle: %s is a classification model (%s); principle scoring needs a causal "
                "LM (*ForCausalLM)\n", model_dir, rm_model_architecture(model));
        return -1;
    }
    const rm_tokenizer *tok = rm_model_tokenizer(model);
    const char *yes = yes_token ? yes_token : "Yes", *no = no_token ? no_token : "No";
    const char *absent = rm_token_id(tok, yes) < 0 ? yes : rm_token_id(tok, no) < 0 ? no : NULL;
    if (n_principles && absent) {
        fprintf(stderr, "error: --principle: the vocabulary has no token \"%s\" to read the answer from (name the "
                "model's tokens with --yes-token and --no-token)\n", absent);
        return -1;
    }
    size_t have = rm_model_n_scores(model);
    if (names && (size_t)n_names != have) {
        fprintf(stderr, "error: --names gives %ld name%s, the model has %zu score%s:", n_names,
                n_names == 1 ? "" : "s", have, have == 1 ? "" : "s");
        for (size_t i = 0; i < have && i < 16; i++)
            fprintf(stderr, "%s %s", i ? "," : "", rm_model_score_name(model, i));
        fprintf(stderr, "%s\n", have > 16 ? ", ..." : "");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *model_dir = NULL, *in_path = NULL, *out_path = NULL, *range = NULL, *names_arg = NULL;
    int with_tokens = 0;
    long batch = 16;
    const char *principles[CLI_MAX_PRINCIPLES];
    char *principle_names[CLI_MAX_PRINCIPLES] = {0};   /* NAME of --principle NAME=TEXT, else NULL */
    size_t n_principles = 0;
    rm_params params;
    rm_params_init(&params);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1, dev = cli_device_option(a, v, &params);
        if (dev < 0) return CLI_USAGE;
        if (dev) { i++; continue; }
        if (!strcmp(a, "--model")) model_dir = v;
        else if (!strcmp(a, "-i") || !strcmp(a, "--input")) in_path = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out_path = v;
        else if (!strcmp(a, "--batch")) {
            batch = cli_parse_count(v);
            if (batch < 1 || batch > 4096) { fprintf(stderr, "error: --batch needs a count from 1 to 4096\n"); return CLI_USAGE; }
        } else if (!strcmp(a, "--logits-range")) range = v;
        else if (!strcmp(a, "--names")) names_arg = v;
        else if (!strcmp(a, "--now")) params.now = v;
        else if (!strcmp(a, "--yes-token")) params.yes_token = v;
        else if (!strcmp(a, "--no-token")) params.no_token = v;
        else if (!strcmp(a, "--principle")) {
            if (!v) goto missing;
            if (n_principles == CLI_MAX_PRINCIPLES) { fprintf(stderr, "error: at most %d --principle\n", CLI_MAX_PRINCIPLES); return CLI_USAGE; }
            cli_principle pr;
            if (cli_principle_parse(v, &pr)) { fprintf(stderr, "error: --principle \"%s\" has no text\n", v); return CLI_USAGE; }
            if (pr.name && !(principle_names[n_principles] = strndup(pr.name, pr.name_len))) { fprintf(stderr, "error: out of memory\n"); return CLI_FATAL; }
            principles[n_principles++] = pr.text;
        } else if (!strcmp(a, "--tokens")) with_tokens = 1, takes = 0;
        else if (!strcmp(a, "--content-special-tokens")) params.content_special_tokens = 1, takes = 0;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return CLI_OK; }
        else { fprintf(stderr, "error: unknown option %s\n", a); usage(stderr); return CLI_USAGE; }
        if (takes) {
            if (!v) goto missing;
            i++;
        }
        continue;
    missing:
        fprintf(stderr, "error: %s needs a value\n", a);
        return CLI_USAGE;
    }
    if (!model_dir) {
        fprintf(stderr, "error: --model is required\n");
        usage(stderr);
        return CLI_USAGE;
    }
    if (range) {
        long long a, b;
        char tail;
        if (sscanf(range, "%lld,%lld%c", &a, &b, &tail) != 2) {
            fprintf(stderr, "error: --logits-range must be A,B (half-open), not \"%s\"\n", range);
            return CLI_USAGE;
        }
        if (a < 0 || b <= a) {
            fprintf(stderr, "error: --logits-range %s: the range [A, B) is empty or negative\n", range);
            return CLI_USAGE;
        }
        params.logits_begin = a;
        params.logits_end = b;
        params.head = RM_HEAD_LOGITS;
    }

    rm_err clock_err = {0};
    if (params.now && rm_clock_parse(params.now, "--now", NULL, &clock_err) != RM_OK) {
        fprintf(stderr, "error: %s\n", clock_err.msg);
        return CLI_USAGE;
    }
    /* --names are checked against the head here, in the tool's words, so the
     * library loads with its own names (and the flag wins over NIM_REWARD_MODEL_STRING). */
    const char *names[CLI_MAX_NAMES];
    long n_names = 0;
    char *names_buf = names_arg ? strdup(names_arg) : NULL;
    if (names_arg && (!names_buf || (n_names = names_split(names_buf, names, CLI_MAX_NAMES)) < 0)) {
        free(names_buf);
        return CLI_USAGE;
    }
    if (names_arg) unsetenv("NIM_REWARD_MODEL_STRING");

    /* The input first: a wrong -i fails before a model that takes minutes to load. */
    FILE *in = cli_open_in(in_path);
    if (!in) {
        free(names_buf);
        return CLI_FATAL;
    }
    char err[1024];
    rm_model *model = NULL;
    rm_status st = rm_load(model_dir, &params, &model, err, sizeof err);
    int refused = st == RM_OK && check_run(model, model_dir, n_principles, params.yes_token, params.no_token,
                                           names_arg ? names : NULL, n_names) != 0;
    FILE *out = st == RM_OK && !refused ? cli_open_out(out_path) : NULL;
    if (!out) {
        if (st != RM_OK) print_load_error(model_dir, err, st);
        if (in != stdin) fclose(in);
        rm_free(model);
        free(names_buf);
        /* A parameter the library refused came from a flag or a NIM_* variable: a usage mistake. */
        return refused || st == RM_ERR_INVALID_ARG ? CLI_USAGE : CLI_FATAL;
    }
    /* The start-up line: what --device auto / --dtype auto resolved to. */
    rm_device device = rm_model_device(model);
    char where[32];
    if (device == RM_DEVICE_CUDA) snprintf(where, sizeof where, "cuda (GPU %d)", params.gpu);
    else snprintf(where, sizeof where, "%s", cli_device_name(device));
    fprintf(stderr, "nimreward-score: %s: %s, %d layers, device %s, dtype %s\n", model_dir,
            rm_model_architecture(model), rm_model_n_layers(model), where, cli_dtype_name(rm_model_dtype(model)));

    cli_line *lines = calloc((size_t)batch, sizeof *lines);
    rm_item *items = calloc((size_t)batch, sizeof *items);
    rm_scores **results = calloc((size_t)batch, sizeof *results);
    size_t *item_of_line = calloc((size_t)batch, sizeof *item_of_line);
    cli_reader reader = {.f = in};
    long done = 0, failed = 0;
    int fatal = 0, eof = 0;
    cli_progress bar;
    cli_progress_start(&bar, in_path, out);
    if (!lines || !items || !results || !item_of_line) { fprintf(stderr, "error: out of memory\n"); fatal = 1; eof = 1; }

    while (!eof && !fatal) {
        size_t n_lines = 0, n_items = 0;
        while (n_lines < (size_t)batch) {
            const char *text;
            long len = cli_reader_next(&reader, &text);
            if (len < 0) {
                eof = 1;
                fatal = cli_reader_failed(&reader, in_path);
                break;
            }
            cli_line *l = &lines[n_lines++];
            if (cli_line_parse(l, text, (size_t)len, principles, n_principles) == 0) {
                item_of_line[n_lines - 1] = n_items;
                items[n_items++] = l->item;
            }
        }
        if (n_items) {
            st = rm_score_batch(model, items, n_items, results);
            if (st != RM_OK && !results[0]) {      /* the whole call failed */
                fprintf(stderr, "error: %s (%s)\n", rm_errmsg(model), rm_status_string(st));
                fatal = 1;
            }
        }
        for (size_t i = 0; i < n_lines && !fatal; i++) {
            cli_line *l = &lines[i];
            long line_no = done + 1;
            int rc;
            if (l->error[0]) {
                rc = cli_write_line_error(out, line_no, l->error);
                failed++;
            } else {
                rm_scores *s = results[item_of_line[i]];
                char why[256];
                /* --names for a head's scores; the flags' NAME= where the line took the flags' principles */
                const char *const *own = names_arg && !l->item.n_principles ? names
                                         : l->item.n_principles && l->item.principles == principles
                                         ? (const char *const *)principle_names : NULL;
                json_t *r = s->status == RM_OK ? result_json(s, own, with_tokens, why, sizeof why) : NULL;
                if (!r) failed++;
                rc = r ? cli_write(out, r) : cli_write_line_error(out, line_no, s->status == RM_OK ? why : s->error);
            }
            if (rc) { fprintf(stderr, "error: writing output: %s\n", strerror(errno)); fatal = 1; }
            done++;
        }
        for (size_t i = 0; i < n_items; i++) { rm_scores_free(results[i]); results[i] = NULL; }
        for (size_t i = 0; i < n_lines; i++) cli_line_clear(&lines[i]);
        cli_progress_update(&bar, done, failed);
    }
    cli_progress_end(&bar);
    cli_reader_free(&reader);
    free(names_buf);
    free(lines);
    free(items);
    free(results);
    free(item_of_line);
    for (size_t i = 0; i < n_principles; i++) free(principle_names[i]);
    if (in != stdin) fclose(in);
    if (out != stdout && fclose(out) != 0) fatal = 1;
    rm_free(model);
    if (fatal) return CLI_FATAL;
    return failed ? CLI_SOME_FAILED : CLI_OK;
}
