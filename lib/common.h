/*
 * common.h - what every file of the library shares: the error record, the
 * allocator (with a failure hook for tests), growable buffers, file reading.
 * Internal: nothing here is API.
 */
#ifndef RM_COMMON_H
#define RM_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "nimreward.h"

#define RM_INTERNAL __attribute__((visibility("hidden")))

/* ---------------------------------------------------------------- errors */

/* An error record filled by the function that failed. Functions return an
 * rm_status and, on failure, also write a message naming the file, field or
 * line into err (err may be NULL). */
typedef struct rm_err {
    rm_status status;
    char msg[1024];
} rm_err;

/* Sets err (if not NULL) and returns status, so a failure is one line:
 *     return rm_fail(err, RM_ERR_FORMAT, "%s: header length %llu past end", path, n); */
RM_INTERNAL rm_status rm_fail(rm_err *err, rm_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefixes the message already in err with "prefix: " (adds context while unwinding). */
RM_INTERNAL void rm_err_prefix(rm_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "auto", "fp32", "bf16", "fp8" (api.c). */
RM_INTERNAL const char *rm_dtype_name(rm_dtype d);

/* ---------------------------------------------------------------- memory */

/* All library allocations go through these, so tests can fail the Nth one.
 * rm_malloc(0) returns a valid pointer. Sizes that overflow return NULL. */
RM_INTERNAL void *rm_malloc(size_t n);
RM_INTERNAL void *rm_calloc(size_t count, size_t size);
RM_INTERNAL void *rm_realloc(void *p, size_t n);
RM_INTERNAL void rm_mfree(void *p);
RM_INTERNAL char *rm_strdup(const char *s);
RM_INTERNAL char *rm_strndup(const char *s, size_t n);
/* Checked size arithmetic: returns 0 on overflow (and sets *out to SIZE_MAX). */
RM_INTERNAL int rm_mul_ok(size_t a, size_t b, size_t *out);

/* Allocation-failure hook (test builds, RM_TEST_HOOKS): after `n` more
 * successful allocations, every allocation fails until reset with -1. Also
 * counts allocations so a sweep knows how many points there are. */
RM_INTERNAL void rm_alloc_fail_after(int64_t n);
RM_INTERNAL uint64_t rm_alloc_count(void);

/* Parses JSON text with jansson (flags as json_loadb's). On failure: RM_ERR_NOMEM
 * when the parser ran out of memory, else RM_ERR_FORMAT naming `name`, the line
 * and column. */
struct json_t;
RM_INTERNAL rm_status rm_json_parse(const char *text, size_t len, size_t flags, const char *name,
                                    struct json_t **out, rm_err *err);

/* One-time global set-up (routes jansson's allocations through rm_malloc). */
RM_INTERNAL void rm_global_init(void);

/* ---------------------------------------------------------------- buffers */

/* A growable byte buffer. Zero-initialise; free with rm_buf_free(). */
typedef struct rm_buf {
    char *data;
    size_t len, cap;
    int oom;                  /* sticky: an append failed */
} rm_buf;
RM_INTERNAL int rm_buf_reserve(rm_buf *b, size_t extra);  /* 0 on failure (sets oom) */
RM_INTERNAL int rm_buf_append(rm_buf *b, const void *data, size_t n);
RM_INTERNAL int rm_buf_putc(rm_buf *b, char c);
RM_INTERNAL int rm_buf_printf(rm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
RM_INTERNAL void rm_buf_free(rm_buf *b);

/* A growable array of token ids. A non-zero limit bounds len: a push past it
 * fails and sets limit_hit, so an encoder stops at a context's worth of
 * tokens instead of tokenizing megabytes it will refuse anyway. */
typedef struct rm_ids {
    int32_t *data;
    size_t len, cap;
    size_t limit;
    int limit_hit;
} rm_ids;
RM_INTERNAL int rm_ids_push(rm_ids *v, int32_t id);       /* 0 on failure (memory, or the limit) */
RM_INTERNAL void rm_ids_release(rm_ids *v);

/* ---------------------------------------------------------------- files and text */

/* Reads a whole file (at most max_bytes; 0 = no bound) into a NUL-terminated
 * buffer from rm_malloc. Errors: RM_ERR_IO (missing, unreadable), RM_ERR_LIMIT. */
RM_INTERNAL rm_status rm_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len,
                                   rm_err *err);
/* Maps a whole regular file read-only (private): *map and *len; the
 * descriptor is closed, the mapping keeps the file. An empty file gives
 * *map NULL, *len 0 and RM_OK (the caller's size check says what is wrong
 * with it). Errors: RM_ERR_IO (missing, not a regular file, mmap failed),
 * RM_ERR_NOMEM, RM_ERR_LIMIT. Undo with rm_unmap_file. */
RM_INTERNAL rm_status rm_map_file(const char *path, void **map, size_t *len, rm_err *err);
RM_INTERNAL void rm_unmap_file(void *map, size_t len);
/* Joins dir and name into a new string from rm_malloc, or NULL. */
RM_INTERNAL char *rm_path_join(const char *dir, const char *name);
/* Returns the byte offset of the first invalid UTF-8 sequence, or len when all valid. */
RM_INTERNAL size_t rm_utf8_check(const char *s, size_t len);

/* bf16 / fp16 -> fp32 */
RM_INTERNAL float rm_bf16_to_f32(uint16_t h);
RM_INTERNAL float rm_f16_to_f32(uint16_t h);

#endif /* RM_COMMON_H */
