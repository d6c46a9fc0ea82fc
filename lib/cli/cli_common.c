/*
 * cli_common.c - JSON lines, options and the progress bar for the tools.
 */
#include "cli_common.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>


FILE *cli_open_in(const char *path) {
    int is_stdin = !path || strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "error: %s: cannot open for reading: %s\n", path, strerror(errno));
        return NULL;
    }
    /* A directory opens, then reads as an empty input: say so instead of succeeding with no output. */
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "error: %s: is a directory (give a JSON-lines file, or - for stdin)\n",
                is_stdin ? "standard input" : path);
        if (!is_stdin) fclose(f);
        return NULL;
    }
    return f;
}

FILE *cli_open_out(const char *path) {
    if (!path || strcmp(path, "-") == 0) return stdout;
    FILE *f = fopen(path, "wb");
    if (!f) fprintf(stderr, "error: %s: cannot open for writing: %s\n", path, strerror(errno));
    return f;
}

long cli_reader_next(cli_reader *r, const char **line) {
    ssize_t n = getline(&r->buf, &r->cap, r->f);
    if (n < 0) return -1;
    r->line_no++;
    char *s = r->buf;
    if (n > 0 && s[n - 1] == '\n') s[--n] = 0;
    if (n > 0 && s[n - 1] == '\r') s[--n] = 0;
    if (r->line_no == 1 && n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) s += 3, n -= 3;   /* the BOM */
    *line = s;
    return (long)n;
}

int cli_reader_failed(cli_reader *r, const char *path) {
    if (!ferror(r->f)) return 0;
    fprintf(stderr, "error: reading %s: %s\n", path && strcmp(path, "-") ? path : "standard input", strerror(errno));
    return 1;
}

void cli_reader_free(cli_reader *r) {
    free(r->buf);
    r->buf = NULL;
    r->cap = 0;
}

json_t *cli_parse_line(const char *line, size_t len, size_t flags, char *err, size_t n) {
    size_t blank = 0;
    while (blank < len && strchr(" \t\r\n\f\v", line[blank]) && line[blank]) blank++;
    if (blank == len) {
        snprintf(err, n, len ? "the line holds only whitespace" : "empty line");
        return NULL;
    }
    json_error_t je;
    json_t *v = json_loadb(line, len, flags, &je);
    if (!v) {
        snprintf(err, n, "invalid JSON at column %d: %s", je.column, je.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        snprintf(err, n, "each line must be a JSON object");
        json_decref(v);
        return NULL;
    }
    return v;
}

/* One JSON value, compact, as jansson writes it except for real numbers. */
static int write_value(FILE *f, json_t *v) {
    char num[40];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *item;
        int first = 1;
        if (fputc('{', f) == EOF) return -1;
        json_object_foreach(v, key, item) {
            json_t *k = json_string(key);   /* keys are valid UTF-8: jansson checked them */
            int rc = !k || (!first && fputc(',', f) == EOF) || write_value(f, k) || fputc(':', f) == EOF ||
                     write_value(f, item);
            json_decref(k);
            if (rc) return -1;
            first = 0;
        }
        return fputc('}', f) == EOF ? -1 : 0;
    }
    case JSON_ARRAY:
        if (fputc('[', f) == EOF) return -1;
        for (size_t i = 0; i < json_array_size(v); i++)
            if ((i && fputc(',', f) == EOF) || write_value(f, json_array_get(v, i))) return -1;
        return fputc(']', f) == EOF ? -1 : 0;
    case JSON_REAL:
        cli_format_double(num, sizeof num, json_real_value(v));
        if (!strpbrk(num, ".en")) strcat(num, ".0");   /* 2 would read back as an integer */
        return fputs(num, f) < 0 ? -1 : 0;
    default: {   /* strings, integers, true, false, null: jansson's own encoding */
        char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        int rc = !s || fputs(s, f) < 0;
        free(s);
        return rc ? -1 : 0;
    }
    }
}

int cli_write(FILE *out, json_t *obj) {
    /* Built in memory first, so a failure midway never leaves half a line. */
    char *text = NULL;
    size_t len = 0;
    FILE *mem = obj ? open_memstream(&text, &len) : NULL;
    int bad = !mem || write_value(mem, obj) != 0;
    if (mem) bad |= fclose(mem) != 0;
    json_decref(obj);
    if (!bad) bad = fwrite(text, 1, len, out) != len || fputc('\n', out) == EOF || fflush(out) != 0;
    free(text);
    return bad ? -1 : 0;
}

int cli_write_error(FILE *out, const char *msg) {
    json_t *o = json_pack("{s:s}", "error", msg);
    if (!o) {   /* not UTF-8 (a cut quote): keep the ASCII, mark the rest */
        char safe[1024];
        size_t i = 0;
        for (; msg[i] && i + 1 < sizeof safe; i++) safe[i] = (unsigned char)msg[i] < 0x80 ? msg[i] : '?';
        safe[i] = 0;
        o = json_pack("{s:s}", "error", safe);
    }
    return cli_write(out, o);
}

int cli_write_line_error(FILE *out, long line_no, const char *msg) {
    char buf[1400];
    snprintf(buf, sizeof buf, "line %ld: %s", line_no, msg);
    return cli_write_error(out, buf);
}

char *cli_format_double(char *buf, size_t n, double v) {
    if (isnan(v)) return snprintf(buf, n, "nan"), buf;
    if (isinf(v)) return snprintf(buf, n, v < 0 ? "-inf" : "inf"), buf;
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    return buf;
}

const char *cli_dtype_name(int dtype) {
    static const char *names[] = {"auto", "fp32", "bf16", "fp8"};
    return dtype >= 0 && dtype < 4 ? names[dtype] : "?";
}

const char *cli_device_name(int device) {
    static const char *names[] = {"auto", "cpu", "cuda"};
    return device >= 0 && device < 3 ? names[device] : "?";
}

int cli_device_option(const char *a, const char *v, rm_params *p) {
    int is_device = !strcmp(a, "--device"), is_dtype = !strcmp(a, "--dtype");
    int is_gpu = !strcmp(a, "--gpu"), is_threads = !strcmp(a, "--threads"), is_tp = !strcmp(a, "--tp");
    if (!is_device && !is_dtype && !is_gpu && !is_threads && !is_tp) return 0;
    if (!v) return fprintf(stderr, "error: %s needs a value\n", a), -1;
    if (is_device) {
        for (int d = 0; d < 3; d++)
            if (!strcmp(v, cli_device_name(d))) return p->device = d, 2;
        return fprintf(stderr, "error: --device must be cpu, cuda or auto, not \"%s\"\n", v), -1;
    }
    if (is_dtype) {
        for (int d = 0; d < 4; d++)
            if (!strcmp(v, cli_dtype_name(d))) return p->dtype = d, 2;
        return fprintf(stderr, "error: --dtype must be auto, fp32, bf16 or fp8, not \"%s\"\n", v), -1;
    }
    long n = cli_parse_count(v);
    if (is_gpu) {
        if (n < 0 || n > 1024) return fprintf(stderr, "error: --gpu needs a device ordinal, not \"%s\"\n", v), -1;
        return p->gpu = (int)n, 2;
    }
    if (is_tp) {   /* tensor-parallel ranks (docs/parallel.md); 0 = not split */
        if (n < 0 || n > 4096) return fprintf(stderr, "error: --tp needs a rank count from 0 to 4096, not \"%s\"\n", v), -1;
        return p->tp = (int)n, 2;
    }
    if (n < 0 || n > 4096) return fprintf(stderr, "error: --threads needs a count from 0 to 4096, not \"%s\"\n", v), -1;
    return p->n_threads = (int)n, 2;
}

long cli_parse_count(const char *s) {
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : -1;
    if (!s || end == s || *end || errno || v < 0) return -1;
    return v;
}

double cli_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void cli_progress_start(cli_progress *p, const char *in_path, FILE *out) {
    p->enabled = isatty(STDERR_FILENO) && !isatty(fileno(out));
    p->start = cli_now_seconds();
    p->total = p->enabled ? cli_count_lines(in_path) : 0;
}

void cli_progress_update(cli_progress *p, long done, long failed) {
    if (!p->enabled) return;
    double dt = cli_now_seconds() - p->start;
    double rate = dt > 0 ? done / dt : 0;
    if (p->total > 0) {
        int width = 30, fill = (int)(width * (double)done / (double)p->total);
        if (fill > width) fill = width;
        fprintf(stderr, "\r[%.*s%*s] %ld/%ld lines, %ld failed, %.1f lines/s ", fill,
                "==============================", width - fill, "", done, p->total, failed, rate);
    } else {
        fprintf(stderr, "\r%ld lines, %ld failed, %.1f lines/s ", done, failed, rate);
    }
    fflush(stderr);
}

void cli_progress_end(cli_progress *p) {
    if (p->enabled) fputc('\n', stderr);
}

long cli_count_lines(const char *path) {
    struct stat st;
    /* Only a regular file: counting a pipe (-i /dev/stdin, <(zcat ...)) would drain it. */
    if (!path || strcmp(path, "-") == 0 || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    long n = 0;
    int c, last = '\n';
    while ((c = getc(f)) != EOF) {
        if (c == '\n') n++;
        last = c;
    }
    fclose(f);
    return n + (last != '\n');
}

/* ---------------------------------------------------------------- scoring input lines */

/* One input line, parsed into the API's structs (pointing into `json`). */

void cli_line_clear(cli_line *l) {
    json_decref(l->json);
    free(l->msgs);
    free(l->principles);
    memset(l, 0, sizeof *l);
}

/* The string at obj[key]; NULL with the message "\"PATH\" is missing" or
 * "\"PATH\" must be a string", PATH being where.key (or key). */
static const char *string_field(json_t *obj, const char *key, const char *where, char *err, size_t n) {
    json_t *v = json_object_get(obj, key);
    if (json_is_string(v)) return json_string_value(v);
    snprintf(err, n, "\"%s%s%s\" %s", where ? where : "", where ? "." : "", key,
             v ? "must be a string" : "is missing");
    return NULL;
}

static void line_build(cli_line *l, const char *const *default_principles, size_t n_default) {
    json_t *j = l->json, *msgs = json_object_get(j, "messages");
    rm_item_init(&l->item);
    if (msgs) {
        if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
            snprintf(l->error, sizeof l->error, "\"messages\" must be a non-empty array");
            return;
        }
        size_t n = json_array_size(msgs);
        l->msgs = calloc(n, sizeof *l->msgs);
        if (!l->msgs) { snprintf(l->error, sizeof l->error, "out of memory"); return; }
        for (size_t i = 0; i < n; i++) {
            json_t *m = json_array_get(msgs, i);
            char where[64];
            snprintf(where, sizeof where, "messages[%zu]", i);
            if (!json_is_object(m)) { snprintf(l->error, sizeof l->error, "\"%s\" must be an object", where); return; }
            l->msgs[i].struct_size = sizeof(rm_message);
            if (!(l->msgs[i].role = string_field(m, "role", where, l->error, sizeof l->error))) return;
            if (!(l->msgs[i].content = string_field(m, "content", where, l->error, sizeof l->error))) return;
        }
        l->item.n_messages = n;
    } else {
        l->msgs = calloc(2, sizeof *l->msgs);
        if (!l->msgs) { snprintf(l->error, sizeof l->error, "out of memory"); return; }
        const char *p = string_field(j, "prompt", NULL, l->error, sizeof l->error);
        const char *r = p ? string_field(j, "response", NULL, l->error, sizeof l->error) : NULL;
        if (!r) {
            size_t used = strlen(l->error);
            snprintf(l->error + used, sizeof l->error - used, " (each line has \"prompt\" and \"response\", "
                     "or \"messages\")");
            return;
        }
        l->msgs[0] = RM_MESSAGE("user", p);
        l->msgs[1] = RM_MESSAGE("assistant", r);
        l->item.n_messages = 2;
    }
    l->item.messages = l->msgs;
    json_t *pr = json_object_get(j, "principles");
    if (pr) {
        if (!json_is_array(pr) || json_array_size(pr) > CLI_MAX_PRINCIPLES) {
            snprintf(l->error, sizeof l->error, "\"principles\" must be an array of at most %d strings",
                     CLI_MAX_PRINCIPLES);
            return;
        }
        size_t n = json_array_size(pr);
        l->principles = calloc(n ? n : 1, sizeof *l->principles);
        if (!l->principles) { snprintf(l->error, sizeof l->error, "out of memory"); return; }
        for (size_t i = 0; i < n; i++) {
            json_t *v = json_array_get(pr, i);
            if (!json_is_string(v)) {
                snprintf(l->error, sizeof l->error, "\"principles[%zu]\" must be a string", i);
                return;
            }
            l->principles[i] = json_string_value(v);
        }
        l->item.principles = l->principles;
        l->item.n_principles = n;
    } else {
        l->item.principles = default_principles;
        l->item.n_principles = n_default;
    }
}

int cli_line_parse(cli_line *l, const char *text, size_t len, const char *const *default_principles,
                   size_t n_default) {
    memset(l, 0, sizeof *l);
    l->json = cli_parse_line(text, len, 0, l->error, sizeof l->error);
    if (l->json) line_build(l, default_principles, n_default);
    return l->error[0] ? -1 : 0;
}
