/*
 * nimreward-template - renders JSON-lines conversations with a chat template,
 * as transformers' apply_chat_template(tokenize=False) would.
 *
 *   nimreward-template (--template FILE | --model DIR) [-i IN.jsonl] [-o OUT.jsonl] [--mask] [--bench N]
 *
 * Each input line {"messages": [...], "add_generation_prompt": bool,
 * "bos_token": str, "eos_token": str, "now": "2026-11-26T09:30:00", ...}
 * gives one output line {"rendered": "..."} or {"error": "line N: ..."}, in
 * input order. Every key but "now" is a template variable (so "tools",
 * "documents", "enable_thinking" can be given); "now" fixes the clock of
 * strftime_now. Messages may carry any keys (reasoning_content, tool_calls).
 * A line that is not a JSON object (or is empty) gives an error line and the
 * tool goes on.
 *
 * --model DIR renders with the model's own template, found where rm_load()
 * finds it (chat_template.jinja, else tokenizer_config.json), and takes
 * bos_token / eos_token from its tokenizer_config.json unless a line gives them.
 *
 * --mask adds "mask": a string of '0'/'1', one per byte of "rendered", 1 where
 * the byte came from message data. --bench N renders each line N more times
 * and prints the mean microseconds per render to stderr (parse once, render
 * many: the template is parsed before the first line).
 *
 * Exit: 0 all lines rendered, 3 some lines gave errors, 1 fatal (missing
 * template file, I/O), 2 usage or a template that does not parse (its error
 * on stderr).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "cli_common.h"
#include "clock.h"
#include "common.h"
#include "jinja.h"

#define TEMPLATE_MAX_BYTES ((size_t)16 << 20)

static void usage(FILE *f) {
    fprintf(f,
            "usage: nimreward-template (--template FILE | --model DIR) [-i IN.jsonl] [-o OUT.jsonl] [--mask] [--bench N]\n"
            "  Reads {\"messages\": [...], \"add_generation_prompt\": bool, \"bos_token\": str, \"eos_token\": str,\n"
            "  \"now\": \"YYYY-MM-DDTHH:MM:SS\", ...} per line; writes {\"rendered\": ...} or {\"error\": \"line N: ...\"}.\n"
            "  --template FILE  the Jinja chat template\n"
            "  --model DIR      the template of a model directory (chat_template.jinja or tokenizer_config.json),\n"
            "                   with its bos_token / eos_token unless a line gives them\n"
            "  -i, -o FILE      input / output JSON lines (default: stdin / stdout)\n"
            "  --mask           also write \"mask\": one '0'/'1' per byte, 1 for message data\n"
            "  --bench N        render every line N more times; microseconds per render on stderr\n"
            "Exit: 0 all lines rendered, 3 some lines failed, 1 fatal error, 2 usage or template syntax error.\n");
}

/* Options of one line: the render options and the variables (without "now"). */
static int line_setup(json_t *obj, json_t **vars, rm_render_opts *o, char *msg, size_t n) {
    memset(o, 0, sizeof *o);
    json_t *now = json_object_get(obj, "now");
    if (now && !json_is_string(now) && !json_is_null(now)) {
        snprintf(msg, n, "\"now\" must be a string \"YYYY-MM-DDTHH:MM:SS\"");
        return -1;
    }
    o->now = json_is_string(now) ? json_string_value(now) : NULL;
    rm_err err = {0};
    if (o->now && rm_clock_parse(o->now, "\"now\"", NULL, &err) != RM_OK) {   /* even if the template never reads it */
        snprintf(msg, n, "%s", err.msg);
        return -1;
    }
    json_t *agp = json_object_get(obj, "add_generation_prompt");
    o->add_generation_prompt = agp && json_is_true(agp);
    json_t *msgs = json_object_get(obj, "messages");
    if (!json_is_array(msgs)) {
        snprintf(msg, n, "\"messages\" %s", msgs ? "must be an array" : "is missing");
        return -1;
    }
    *vars = json_deep_copy(obj);
    if (!*vars) {
        snprintf(msg, n, "out of memory");
        return -1;
    }
    json_object_del(*vars, "now");
    return 0;
}

/* The template text: a file, or a model directory's own (with its BOS / EOS). */
static int read_template(const char *template_path, const char *model_dir, rm_chat_template_src *src) {
    rm_err err = {0};
    memset(src, 0, sizeof *src);
    if (model_dir) {
        if (rm_chat_template_read(model_dir, NULL, src, &err) == RM_OK) return 0;
    } else if (rm_read_file(template_path, TEMPLATE_MAX_BYTES, &src->text, &src->len, &err) == RM_OK) {
        if ((src->origin = rm_strdup(template_path))) return 0;
        rm_fail(&err, RM_ERR_NOMEM, "out of memory");
    }
    fprintf(stderr, "nimreward-template: %s\n", err.msg);
    rm_chat_template_src_free(src);
    return -1;
}

int main(int argc, char **argv) {
    const char *template_path = NULL, *model_dir = NULL, *in_path = NULL, *out_path = NULL;
    long bench = 0;
    int want_mask = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **dst = !strcmp(a, "--template") ? &template_path : !strcmp(a, "--model") ? &model_dir
                           : !strcmp(a, "-i") || !strcmp(a, "--input") ? &in_path
                           : !strcmp(a, "-o") || !strcmp(a, "--output") ? &out_path : NULL;
        if (dst || !strcmp(a, "--bench")) {
            if (!v) {
                fprintf(stderr, "nimreward-template: %s needs a value\n", a);
                return CLI_USAGE;
            }
            i++;
            if (dst) *dst = v;
            else if ((bench = cli_parse_count(v)) < 0) {
                fprintf(stderr, "nimreward-template: --bench needs a count\n");
                return CLI_USAGE;
            }
        } else if (!strcmp(a, "--mask")) want_mask = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return CLI_OK; }
        else {
            fprintf(stderr, "nimreward-template: unknown option %s\n", a);
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (!template_path == !model_dir) {
        fprintf(stderr, "nimreward-template: give one of --template FILE and --model DIR\n");
        usage(stderr);
        return CLI_USAGE;
    }
    rm_global_init();

    rm_chat_template_src src;
    if (read_template(template_path, model_dir, &src) != 0) return CLI_FATAL;
    rm_err err = {0};
    rm_template *t = NULL;
    if (rm_template_parse(&t, src.text, src.len, &err) != RM_OK) {
        fprintf(stderr, "nimreward-template: %s: %s\n", src.origin, err.msg);
        rm_chat_template_src_free(&src);
        return 2;
    }
    FILE *in = cli_open_in(in_path), *out = in ? cli_open_out(out_path) : NULL;
    if (!in || !out) {
        if (in && in != stdin) fclose(in);
        rm_template_free(t);
        rm_chat_template_src_free(&src);
        return CLI_FATAL;
    }

    cli_reader reader = {.f = in};
    const char *line;
    long n_lines = 0, n_failed = 0, n_bench = 0;
    double bench_us = 0;
    int fatal = 0;
    long len;
    while ((len = cli_reader_next(&reader, &line)) >= 0) {
        n_lines++;
        char msg[1200];
        json_t *obj = cli_parse_line(line, (size_t)len, JSON_ALLOW_NUL, msg, sizeof msg), *vars = NULL, *result = NULL;
        rm_render_opts opts;
        if (obj && line_setup(obj, &vars, &opts, msg, sizeof msg) == 0) {
            opts.mark_message_data = want_mask;
            opts.bos_token = src.bos_token;   /* the model's, when --model; a line's own key wins */
            opts.eos_token = src.eos_token;
            char *text = NULL;
            uint8_t *mask = NULL;
            size_t text_len = 0;
            rm_status st = rm_template_render_json(t, vars, &opts, &text, &text_len, want_mask ? &mask : NULL, &err);
            if (st == RM_OK) {
                result = json_object();
                json_t *s = json_stringn(text, text_len);
                if (!result || !s || json_object_set_new(result, "rendered", s) != 0) {
                    json_decref(result);
                    result = NULL;
                    snprintf(msg, sizeof msg, "the rendered text cannot be written as JSON");
                } else if (want_mask) {
                    char *m = rm_malloc(text_len + 1);
                    if (m) {
                        for (size_t k = 0; k < text_len; k++) m[k] = mask[k] ? '1' : '0';
                        json_object_set_new(result, "mask", json_stringn(m, text_len));
                        rm_mfree(m);
                    }
                }
                for (long b = 0; b < bench; b++) {
                    char *again = NULL;
                    double t0 = cli_now_seconds();
                    rm_status s2 = rm_template_render_json(t, vars, &opts, &again, NULL, NULL, &err);
                    bench_us += (cli_now_seconds() - t0) * 1e6;
                    n_bench++;
                    rm_mfree(again);
                    if (s2 != RM_OK) break;
                }
            } else {
                snprintf(msg, sizeof msg, "%s", err.msg);
            }
            rm_mfree(text);
            rm_mfree(mask);
        }
        int wrote = result ? cli_write(out, result) : (n_failed++, cli_write_line_error(out, n_lines, msg));
        if (wrote != 0 && !result)
            wrote = cli_write_line_error(out, n_lines, "could not be rendered (unprintable message)");
        json_decref(vars);
        json_decref(obj);
        if (wrote != 0) {
            fprintf(stderr, "nimreward-template: cannot write output\n");
            fatal = 1;
            break;
        }
    }
    if (cli_reader_failed(&reader, in_path)) fatal = 1;
    cli_reader_free(&reader);
    if (bench && n_bench)
        fprintf(stderr, "nimreward-template: %.2f us per render (%ld renders of %ld lines)\n", bench_us / n_bench,
                n_bench, n_lines);
    if (in != stdin) fclose(in);
    if (out != stdout && fclose(out) != 0) fatal = 1;
    rm_template_free(t);
    rm_chat_template_src_free(&src);
    if (fatal) return CLI_FATAL;
    return n_failed ? CLI_SOME_FAILED : CLI_OK;
}
