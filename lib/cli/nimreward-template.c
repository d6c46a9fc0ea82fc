/*
 * nimreward-template - renders JSON-lines conversations with a chat template,
 * as transformers' apply_chat_template(tokenize=False) would.
 *
 *   nimreward-template --template FILE [-i IN.jsonl] [-o OUT.jsonl] [--mask] [--bench N]
 *
 * Each input line {"messages": [...], "add_generation_prompt": bool,
 * "bos_token": str, "eos_token": str, "now": "2026-11-26T09:30:00", ...}
 * gives one output line {"rendered": "..."} or {"error": "..."}, in input
 * order. Every key but "now" is a template variable (so "tools",
 * "documents", "enable_thinking" can be given); "now" fixes the clock of
 * strftime_now. Messages may carry any keys (reasoning_content, tool_calls).
 * A line that is not a JSON object gives an error line and the tool goes on.
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

#include "cli_common.h"
#include "common.h"
#include "jinja.h"

#define TEMPLATE_MAX_BYTES ((size_t)16 << 20)

static void usage(FILE *f) {
    fprintf(f,
            "usage: nimreward-template --template FILE [-i IN.jsonl] [-o OUT.jsonl] [--mask] [--bench N]\n"
            "  Reads {\"messages\": [...], \"add_generation_prompt\": bool, \"bos_token\": str, \"eos_token\": str,\n"
            "  \"now\": \"YYYY-MM-DDTHH:MM:SS\", ...} per line; writes {\"rendered\": ...} or {\"error\": ...}.\n"
            "  --template FILE  the Jinja chat template\n"
            "  -i, -o           input / output files (default stdin / stdout)\n"
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
    json_t *agp = json_object_get(obj, "add_generation_prompt");
    o->add_generation_prompt = agp && json_is_true(agp);
    if (!json_is_array(json_object_get(obj, "messages"))) {
        snprintf(msg, n, "expected {\"messages\": [...], ...}");
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

int main(int argc, char **argv) {
    const char *template_path = NULL, *in_path = NULL, *out_path = NULL;
    long bench = 0;
    int want_mask = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--template") && v) { template_path = v; i++; }
        else if (!strcmp(a, "-i") && v) { in_path = v; i++; }
        else if (!strcmp(a, "-o") && v) { out_path = v; i++; }
        else if (!strcmp(a, "--mask")) want_mask = 1;
        else if (!strcmp(a, "--bench") && v) {
            bench = cli_parse_count(v);
            if (bench < 0) { fprintf(stderr, "nimreward-template: --bench needs a count\n"); return CLI_USAGE; }
            i++;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return CLI_OK; }
        else { usage(stderr); return CLI_USAGE; }
    }
    if (!template_path) { usage(stderr); return CLI_USAGE; }
    rm_global_init();

    char *src = NULL;
    size_t src_len = 0;
    rm_err err = {0};
    if (rm_read_file(template_path, TEMPLATE_MAX_BYTES, &src, &src_len, &err) != RM_OK) {
        fprintf(stderr, "nimreward-template: %s\n", err.msg);
        return CLI_FATAL;
    }
    rm_template *t = NULL;
    if (rm_template_parse(&t, src, src_len, &err) != RM_OK) {
        fprintf(stderr, "nimreward-template: %s: %s\n", template_path, err.msg);
        rm_mfree(src);
        return 2;
    }
    rm_mfree(src);
    FILE *in = cli_open_in(in_path), *out = in ? cli_open_out(out_path) : NULL;
    if (!in || !out) {
        rm_template_free(t);
        return CLI_FATAL;
    }

    char *line = NULL;
    size_t cap = 0;
    long n_lines = 0, n_failed = 0, n_bench = 0;
    double bench_us = 0;
    int fatal = 0;
    long len;
    while ((len = cli_read_line(in, &line, &cap)) >= 0) {
        n_lines++;
        char msg[1200];
        json_error_t je;
        json_t *obj = json_loadb(line, (size_t)len, JSON_ALLOW_NUL, &je), *vars = NULL, *result = NULL;
        rm_render_opts opts;
        if (!obj || !json_is_object(obj)) {
            if (!obj) snprintf(msg, sizeof msg, "line %ld: invalid JSON at column %d: %s", n_lines, je.column, je.text);
            else snprintf(msg, sizeof msg, "line %ld: each line must be a JSON object", n_lines);
        } else if (line_setup(obj, &vars, &opts, msg, sizeof msg) == 0) {
            opts.mark_message_data = want_mask;
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
                    snprintf(msg, sizeof msg, "line %ld: the rendered text cannot be written as JSON", n_lines);
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
        int wrote = result ? cli_write(out, result) : (n_failed++, cli_write_error(out, msg));
        if (wrote != 0 && !result) wrote = cli_write_error(out, "line could not be rendered (unprintable message)");
        json_decref(vars);
        json_decref(obj);
        if (wrote != 0) {
            fprintf(stderr, "nimreward-template: cannot write output\n");
            fatal = 1;
            break;
        }
    }
    free(line);
    if (bench && n_bench)
        fprintf(stderr, "nimreward-template: %.2f us per render (%ld renders of %ld lines)\n", bench_us / n_bench,
                n_bench, n_lines);
    if (in != stdin) fclose(in);
    if (out != stdout && fclose(out) != 0) fatal = 1;
    rm_template_free(t);
    if (fatal) return CLI_FATAL;
    return n_failed ? CLI_SOME_FAILED : CLI_OK;
}
