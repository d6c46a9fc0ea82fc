/*
 * nimreward-tokenize - token ids of JSON-lines text with a tokenizer.json.
 *
 *   nimreward-tokenize (--model DIR | --tokenizer FILE) [-i IN.jsonl] [-o OUT.jsonl] [--bench]
 *
 * Each input line {"text": "..."} gives one output line {"ids": [...]}, in
 * order: the text as plain text (no BOS, special-token strings not parsed),
 * exactly rm_tokenize(). A bad line (an empty one too) gives
 * {"error": "line N: ..."} and the tool goes on. Exit status: 0 all lines ok, 3 some lines failed, 1 fatal (tokenizer,
 * files), 2 usage. --bench reports the load time and encoding throughput on
 * stderr (the time inside rm_tokenize only, not JSON reading or writing).
 */
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: nimreward-tokenize (--model DIR | --tokenizer FILE) [-i IN.jsonl] [-o OUT.jsonl] [--bench]\n"
            "  Reads {\"text\": ...} per line, writes {\"ids\": [...]} (plain text, no BOS) or {\"error\": ...}.\n"
            "  --model DIR       use DIR/tokenizer.json\n"
            "  --tokenizer FILE  use FILE\n"
            "  -i, -o FILE       input / output JSON lines (default: stdin / stdout)\n"
            "  --bench           print load time and MB/s to stderr\n"
            "Exit: 0 all lines ok, 3 some lines failed, 1 fatal error, 2 usage.\n");
}

/* One line: writes its {"ids"} or {"error"}; returns 1 when the line was good. */
static int tokenize_line(const rm_tokenizer *tok, const char *line, size_t len, long line_no, FILE *out,
                         double *encode_ms, size_t *bytes, size_t *tokens) {
    char msg[1100];
    /* JSON_ALLOW_NUL: a "\u0000" in the text is a character like any other. */
    json_t *obj = cli_parse_line(line, len, JSON_ALLOW_NUL, msg, sizeof msg);
    json_t *text = json_object_get(obj, "text");
    if (!obj || !json_is_string(text)) {
        if (obj) snprintf(msg, sizeof msg, "\"text\" %s", text ? "must be a string" : "is missing");
        json_decref(obj);
        cli_write_line_error(out, line_no, msg);
        return 0;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    char err[1024];
    double t0 = cli_now_seconds();
    rm_status st = rm_tokenize(tok, json_string_value(text), json_string_length(text), &ids, &n, err, sizeof err);
    *encode_ms += (cli_now_seconds() - t0) * 1e3;
    int ok = st == RM_OK;
    json_t *result = NULL;
    if (ok) {
        *bytes += json_string_length(text);
        *tokens += n;
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++)
            if (json_array_append_new(arr, json_integer(ids[i])) != 0) {
                json_decref(arr);
                arr = NULL;
            }
        result = arr ? json_pack("{s:o}", "ids", arr) : NULL;
        if (!result) {
            ok = 0;
            snprintf(err, sizeof err, "out of memory writing %zu ids", n);
        }
    }
    rm_ids_free(ids);
    json_decref(obj);
    if (ok) return cli_write(out, result) == 0;
    cli_write_line_error(out, line_no, err);
    return 0;
}

int main(int argc, char **argv) {
    const char *model = NULL, *tokenizer = NULL, *in_path = NULL, *out_path = NULL;
    int bench = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **dst = !strcmp(a, "--model") ? &model : !strcmp(a, "--tokenizer") ? &tokenizer
                           : !strcmp(a, "-i") || !strcmp(a, "--input") ? &in_path
                           : !strcmp(a, "-o") || !strcmp(a, "--output") ? &out_path : NULL;
        if (dst) {
            if (!v) {
                fprintf(stderr, "error: %s needs a value\n", a);
                return CLI_USAGE;
            }
            *dst = v;
            i++;
        } else if (strcmp(a, "--bench") == 0) bench = 1;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return CLI_OK;
        } else {
            fprintf(stderr, "error: unknown option %s\n", a);
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (!model == !tokenizer) {
        fprintf(stderr, "error: give exactly one of --model DIR and --tokenizer FILE\n");
        usage(stderr);
        return CLI_USAGE;
    }

    FILE *in = cli_open_in(in_path);   /* before the tokenizer's load: a wrong -i fails at once */
    if (!in) return CLI_FATAL;
    char *path = NULL;
    if (model) {
        size_t n = strlen(model);
        path = malloc(n + sizeof "/tokenizer.json");
        if (!path) {
            if (in != stdin) fclose(in);
            return CLI_FATAL;
        }
        memcpy(path, model, n);
        strcpy(path + n, n && model[n - 1] == '/' ? "tokenizer.json" : "/tokenizer.json");
    }
    char err[1024];
    rm_tokenizer *tok = NULL;
    double t0 = cli_now_seconds();
    rm_status st = rm_tokenizer_load(path ? path : tokenizer, &tok, err, sizeof err);
    double load_ms = (cli_now_seconds() - t0) * 1e3;
    free(path);
    FILE *out = st == RM_OK ? cli_open_out(out_path) : NULL;
    if (!out) {
        if (st != RM_OK) fprintf(stderr, "error: %s\n", err);
        if (in != stdin) fclose(in);
        rm_tokenizer_free(tok);
        return CLI_FATAL;
    }
    if (bench) fprintf(stderr, "load: %.1f ms\n", load_ms);
    cli_reader reader = {.f = in};
    const char *line;
    size_t bytes = 0, tokens = 0;
    long len, failed = 0;
    double encode_ms = 0;
    while ((len = cli_reader_next(&reader, &line)) >= 0)
        if (!tokenize_line(tok, line, (size_t)len, reader.line_no, out, &encode_ms, &bytes, &tokens)) failed++;
    int read_failed = cli_reader_failed(&reader, in_path), write_failed = ferror(out) || fflush(out) != 0;
    long line_no = reader.line_no;
    cli_reader_free(&reader);
    if (in != stdin) fclose(in);
    if (out != stdout && fclose(out) != 0) write_failed = 1;
    rm_tokenizer_free(tok);
    if (bench)
        fprintf(stderr, "encode: %ld lines, %zu bytes, %zu tokens in %.1f ms = %.2f MB/s, %.2f M tokens/s\n", line_no,
                bytes, tokens, encode_ms, encode_ms > 0 ? bytes / 1e3 / encode_ms : 0.0,
                encode_ms > 0 ? tokens / 1e3 / encode_ms : 0.0);
    if (write_failed) fprintf(stderr, "error: writing the output failed\n");
    if (write_failed || read_failed) return CLI_FATAL;
    if (failed) fprintf(stderr, "%ld of %ld lines failed\n", failed, line_no);
    return failed ? CLI_SOME_FAILED : CLI_OK;
}
