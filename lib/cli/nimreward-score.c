/*
 * nimreward-score - score JSON lines with a reward model.
 *
 *   nimreward-score --model DIR [-i IN.jsonl] [-o OUT.jsonl] [--device cpu|cuda|auto]
 *                   [--dtype auto|fp32|bf16|fp8] [--gpu N] [--threads N] [--tp N] [--logits-range A,B] [--names a,b,...]
 *                   [--principle TEXT]... [--tokens] [--batch N] [--now ISO] [--content-special-tokens]
 *                   [--yes-token Yes --no-token No]
 *
 * Input line:  {"prompt": ..., "response": ...} or {"messages": [{"role", "content"}, ...]},
 *              optionally "principles": [...] (replacing the --principle flags for that line).
 * Output line: {"scores": {"name": value, ...}} (+ "tokens" with --tokens), or {"error": "..."},
 *              in input order. Exit 0: every line scored; 3: some failed; other: fatal.
 * Scripts outside the project depend on this contract: keep it stable.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "nimreward.h"

static void usage(FILE *f) {
    fputs("usage: nimreward-score --model DIR [-i IN.jsonl] [-o OUT.jsonl] [--device cpu|cuda|auto]\n"
          "                       [--dtype auto|fp32|bf16|fp8] [--gpu N] [--threads N] [--tp N] [--logits-range A,B] [--names a,b,...]\n"
          "                       [--principle TEXT]... [--tokens] [--batch N] [--now YYYY-MM-DDTHH:MM:SS]\n"
          "                       [--content-special-tokens] [--yes-token Yes --no-token No]\n"
          "Each input line: {\"prompt\": ..., \"response\": ...} or {\"messages\": [...]}, optionally with\n"
          "\"principles\": [...]. Each output line: {\"scores\": {...}} or {\"error\": ...}.\n"
          "Exit status: 0 all lines scored, 3 some lines failed, 1 fatal error, 2 usage error.\n", f);
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
 * not a finite number, or two scores of one name (principles given twice). */
static json_t *result_json(const rm_scores *s, int with_tokens, char *err, size_t n) {
    json_t *scores = json_object();
    for (size_t i = 0; i < s->n_scores; i++) {
        json_t *v = json_real(s->values[i]);   /* NULL for NaN and infinities */
        const char *why = NULL;
        if (!v) why = "is not a finite number";
        else if (json_object_get(scores, s->names[i])) json_decref(v), why = "stands twice";
        else if (json_object_set_new(scores, s->names[i], v)) why = "is not a valid name";   /* v is taken either way */
        if (why) {
            snprintf(err, n, "score \"%.64s\" %s", s->names[i], why);
            json_decref(scores);
            return NULL;
        }
    }
    json_t *o = json_pack("{s:o}", "scores", scores);
    if (o && with_tokens) json_object_set_new(o, "tokens", tokens_json(s));
    return o;
}

int main(int argc, char **argv) {
    const char *model_dir = NULL, *in_path = NULL, *out_path = NULL, *range = NULL;
    int with_tokens = 0;
    long batch = 16;
    const char *principles[CLI_MAX_PRINCIPLES];
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
        else if (!strcmp(a, "--names")) params.score_names = v;
        else if (!strcmp(a, "--now")) params.now = v;
        else if (!strcmp(a, "--yes-token")) params.yes_token = v;
        else if (!strcmp(a, "--no-token")) params.no_token = v;
        else if (!strcmp(a, "--principle")) {
            if (!v) goto missing;
            if (n_principles == CLI_MAX_PRINCIPLES) { fprintf(stderr, "error: at most %d --principle\n", CLI_MAX_PRINCIPLES); return CLI_USAGE; }
            principles[n_principles++] = v;
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
    if (!model_dir) { usage(stderr); return CLI_USAGE; }
    if (range) {
        long long a, b;
        char tail;
        if (sscanf(range, "%lld,%lld%c", &a, &b, &tail) != 2) {
            fprintf(stderr, "error: --logits-range must be A,B (half-open), not \"%s\"\n", range);
            return CLI_USAGE;
        }
        params.logits_begin = a;
        params.logits_end = b;
        params.head = RM_HEAD_LOGITS;
    }

    char err[1024];
    rm_model *model = NULL;
    rm_status st = rm_load(model_dir, &params, &model, err, sizeof err);
    if (st != RM_OK) {
        fprintf(stderr, "error: %s (%s)\n", err, rm_status_string(st));
        return CLI_FATAL;
    }
    FILE *in = cli_open_in(in_path), *out = in ? cli_open_out(out_path) : NULL;
    if (!in || !out) {
        rm_free(model);
        return CLI_FATAL;
    }

    cli_line *lines = calloc((size_t)batch, sizeof *lines);
    rm_item *items = calloc((size_t)batch, sizeof *items);
    rm_scores **results = calloc((size_t)batch, sizeof *results);
    size_t *item_of_line = calloc((size_t)batch, sizeof *item_of_line);
    char *buf = NULL;
    size_t cap = 0;
    long done = 0, failed = 0;
    int fatal = 0, eof = 0;
    cli_progress bar;
    cli_progress_start(&bar, in_path);
    if (!lines || !items || !results || !item_of_line) { fprintf(stderr, "error: out of memory\n"); fatal = 1; eof = 1; }

    while (!eof && !fatal) {
        size_t n_lines = 0, n_items = 0;
        while (n_lines < (size_t)batch) {
            long len = cli_read_line(in, &buf, &cap);
            if (len < 0) { eof = 1; break; }
            cli_line *l = &lines[n_lines++];
            if (cli_line_parse(l, buf, (size_t)len, principles, n_principles) == 0) {
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
            int rc;
            if (l->error[0]) {
                rc = cli_write_error(out, l->error);
                failed++;
            } else {
                rm_scores *s = results[item_of_line[i]];
                char why[256];
                json_t *r = s->status == RM_OK ? result_json(s, with_tokens, why, sizeof why) : NULL;
                if (!r) failed++;
                rc = r ? cli_write(out, r) : cli_write_error(out, s->status == RM_OK ? why : s->error);
            }
            if (rc) { fprintf(stderr, "error: writing output: %s\n", strerror(errno)); fatal = 1; }
            done++;
        }
        for (size_t i = 0; i < n_items; i++) { rm_scores_free(results[i]); results[i] = NULL; }
        for (size_t i = 0; i < n_lines; i++) cli_line_clear(&lines[i]);
        cli_progress_update(&bar, done, failed);
    }
    cli_progress_end(&bar);
    free(buf);
    free(lines);
    free(items);
    free(results);
    free(item_of_line);
    if (in != stdin) fclose(in);
    if (out != stdout && fclose(out) != 0) fatal = 1;
    rm_free(model);
    if (fatal) return CLI_FATAL;
    return failed ? CLI_SOME_FAILED : CLI_OK;
}
