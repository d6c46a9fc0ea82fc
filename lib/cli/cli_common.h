/*
 * cli_common.h - what the command-line tools share: JSON-lines input and
 * output, option values, the progress bar. The tools use only the public API
 * plus jansson.
 */
#ifndef RM_CLI_COMMON_H
#define RM_CLI_COMMON_H

#include <jansson.h>
#include <stdio.h>

#include "nimreward.h"

/* Exit codes: the contract scripts depend on. */
enum { CLI_OK = 0, CLI_FATAL = 1, CLI_USAGE = 2, CLI_SOME_FAILED = 3 };

/* Opens -i / -o (NULL or "-" = stdin / stdout). Prints the error and returns
 * NULL on failure; a directory is an error ("is a directory"), while pipes,
 * /dev/stdin and process substitutions are read as they come. */
FILE *cli_open_in(const char *path);
FILE *cli_open_out(const char *path);

/* JSON-lines input, one line at a time: "\n" and "\r\n" endings, no newline
 * needed after the last line, and a UTF-8 byte-order mark at the start of
 * the input skipped. Zero-initialise, set f. */
typedef struct cli_reader {
    FILE *f;
    char *buf;
    size_t cap;
    long line_no;              /* of the line last read, from 1 */
} cli_reader;
/* Reads the next line (without its ending) into *line, valid until the next
 * call; returns its length, or -1 at the end of the input or on a read error
 * (then ferror(r->f) is set: report it with cli_reader_failed()). */
long cli_reader_next(cli_reader *r, const char **line);
/* After -1: prints "error: reading PATH: why" and returns 1 when the input failed, else 0. */
int cli_reader_failed(cli_reader *r, const char *path);
void cli_reader_free(cli_reader *r);

/* Parses one input line as a JSON object (json_loadb flags, e.g.
 * JSON_ALLOW_NUL); on failure writes a message to err (size n) and returns
 * NULL: an empty or blank line, invalid JSON (with its column), not an object. */
json_t *cli_parse_line(const char *line, size_t len, size_t flags, char *err, size_t n);

/* Writes obj as one compact line and flushes: UTF-8 kept, every real
 * number as cli_format_double() writes it (with ".0" when that looks like
 * an integer, so it stays a real). Steals the reference. Returns 0 on success. */
int cli_write(FILE *out, json_t *obj);
/* Writes {"error": msg}. */
int cli_write_error(FILE *out, const char *msg);
/* Writes {"error": "line N: msg"}: every error line names its input line. */
int cli_write_line_error(FILE *out, long line_no, const char *msg);

/* Formats v as the shortest decimal string that reads back (strtod) to the
 * same double: at most 17 significant digits, "%.*g" style. buf holds at
 * least 32 bytes. NaN and infinities print as "nan" / "inf" / "-inf".
 * Scores are printed this way everywhere (tools and server). Returns buf. */
char *cli_format_double(char *buf, size_t n, double v);

/* The device options every tool that loads a model shares:
 * --device cpu|cuda|auto, --dtype auto|fp32|bf16|fp8, --gpu N, --threads N, --tp N.
 * a is the option, v its value (may be NULL). Returns 2 when it took a and
 * v, 0 when a is not one of them, -1 after printing the error (usage). */
int cli_device_option(const char *a, const char *v, rm_params *p);
/* The names of a dtype / device for start-up lines. */
const char *cli_dtype_name(int dtype);
const char *cli_device_name(int device);

/* Parses a non-negative integer option value; returns -1 when malformed. */
long cli_parse_count(const char *s);

/* Seconds on the monotonic clock, for timing (--bench, the progress bar). */
double cli_now_seconds(void);

/* A progress bar on stderr, shown only when stderr is a terminal and the
 * output is not one: the bar redraws its line with "\r", so output lines on
 * the same terminal would be glued to it. */
typedef struct cli_progress {
    int enabled;
    double start;
    long total;        /* 0 when unknown */
} cli_progress;
/* total: the lines of in_path when it is a regular file (NULL or "-": unknown);
 * out: where the results go. */
void cli_progress_start(cli_progress *p, const char *in_path, FILE *out);
void cli_progress_update(cli_progress *p, long done, long failed);
void cli_progress_end(cli_progress *p);
/* Lines in a regular file (the progress bar's total); 0 for stdin, a pipe or on error. */
long cli_count_lines(const char *path);

/* One nimreward-score input line: {"prompt", "response"} or {"messages": [...]},
 * optionally "principles": [...], parsed into an rm_item that points into json. */
#define CLI_MAX_PRINCIPLES 256
typedef struct cli_line {
    json_t *json;
    char error[512];              /* set when the line itself is bad (without "line N: ") */
    rm_message *msgs;
    const char **principles;
    rm_item item;
} cli_line;
/* Returns 0, or -1 with l->error set. Lines without "principles" use the
 * defaults (the --principle flags). Free with cli_line_clear() either way. */
int cli_line_parse(cli_line *l, const char *text, size_t len, const char *const *default_principles,
                   size_t n_default);
void cli_line_clear(cli_line *l);

#endif
