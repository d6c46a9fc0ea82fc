/*
 * cli_common.c - JSON lines, options and the progress bar for the tools.
 */
#include "cli_common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

FILE *cli_open_in(const char *path) {
    if (!path || strcmp(path, "-") == 0) return stdin;
    FILE *f = fopen(path, "rb");
    if (!f) fprintf(stderr, "error: %s: cannot open for reading: %s\n", path, strerror(errno));
    return f;
}

FILE *cli_open_out(const char *path) {
    if (!path || strcmp(path, "-") == 0) return stdout;
    FILE *f = fopen(path, "wb");
    if (!f) fprintf(stderr, "error: %s: cannot open for writing: %s\n", path, strerror(errno));
    return f;
}

long cli_read_line(FILE *in, char **line, size_t *cap) {
    ssize_t n = getline(line, cap, in);
    if (n < 0) return -1;
    while (n > 0 && ((*line)[n - 1] == '\n' || (*line)[n - 1] == '\r')) (*line)[--n] = 0;
    return (long)n;
}

json_t *cli_parse_line(const char *line, size_t len, char *err, size_t n) {
    json_error_t je;
    json_t *v = json_loadb(line, len, 0, &je);
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

int cli_write(FILE *out, json_t *obj) {
    /* 9 significant digits: every float32 score prints exactly, and no noise digits. */
    char *s = obj ? json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(obj);
    if (!s) return -1;
    int rc = fputs(s, out) < 0 || fputc('\n', out) == EOF || fflush(out) != 0;
    free(s);
    return rc ? -1 : 0;
}

int cli_write_error(FILE *out, const char *msg) {
    return cli_write(out, json_pack("{s:s}", "error", msg));
}

long cli_parse_count(const char *s) {
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : -1;
    if (!s || end == s || *end || errno || v < 0) return -1;
    return v;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void cli_progress_start(cli_progress *p, long total) {
    p->enabled = isatty(STDERR_FILENO);
    p->start = now_seconds();
    p->total = total;
}

void cli_progress_update(cli_progress *p, long done, long failed) {
    if (!p->enabled) return;
    double dt = now_seconds() - p->start;
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
    if (!path || strcmp(path, "-") == 0) return 0;
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
