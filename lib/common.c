/*
 * common.c - errors, the allocator with its test hook, buffers, files, UTF-8.
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- errors */

/* Messages quote input (a role, a file name, a principle) and may be cut at
 * the buffer's end: a byte that does not make valid UTF-8 becomes '?', so a
 * message can always be printed and put in JSON. */
static void make_utf8(char *s) {
    size_t len = strlen(s), at;
    while ((at = rm_utf8_check(s, len)) < len) s[at] = '?';
}

rm_status rm_fail(rm_err *err, rm_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        make_utf8(err->msg);
        err->status = status;
    }
    return status;
}

void rm_err_prefix(rm_err *err, const char *fmt, ...) {
    if (!err) return;
    char prefix[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    make_utf8(err->msg);
}

/* ---------------------------------------------------------------- memory */

/* Allocations left before failures start; negative = never fail. */
static _Atomic int64_t alloc_budget = -1;
static _Atomic uint64_t alloc_total;

void rm_alloc_fail_after(int64_t n) { atomic_store(&alloc_budget, n); }
uint64_t rm_alloc_count(void) { return atomic_load(&alloc_total); }

static int alloc_allowed(void) {
    atomic_fetch_add_explicit(&alloc_total, 1, memory_order_relaxed);
    if (atomic_load_explicit(&alloc_budget, memory_order_relaxed) < 0) return 1;
    return atomic_fetch_sub(&alloc_budget, 1) > 0 ? 1 : (atomic_store(&alloc_budget, 0), 0);
}

void *rm_malloc(size_t n) { return alloc_allowed() ? malloc(n ? n : 1) : NULL; }
void *rm_calloc(size_t count, size_t size) {
    size_t total;
    if (!rm_mul_ok(count, size, &total)) return NULL;
    return alloc_allowed() ? calloc(total ? total : 1, 1) : NULL;
}
void *rm_realloc(void *p, size_t n) { return alloc_allowed() ? realloc(p, n ? n : 1) : NULL; }
void rm_mfree(void *p) { free(p); }

char *rm_strndup(const char *s, size_t n) {
    char *d = rm_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}
char *rm_strdup(const char *s) { return s ? rm_strndup(s, strlen(s)) : NULL; }

int rm_mul_ok(size_t a, size_t b, size_t *out) {
    if (__builtin_mul_overflow(a, b, out)) {
        *out = SIZE_MAX;
        return 0;
    }
    return 1;
}

static void jansson_free(void *p) { free(p); }
static void global_init_once(void) { json_set_alloc_funcs(rm_malloc, jansson_free); }
void rm_global_init(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, global_init_once);
}

rm_status rm_json_parse(const char *text, size_t len, size_t flags, const char *name, json_t **out, rm_err *err) {
    rm_global_init();
    json_error_t je;
    *out = json_loadb(text ? text : "", text ? len : 0, flags, &je);
    if (*out) return RM_OK;
    /* jansson reports some allocation failures as syntax errors ("invalid
     * token") and one, before it starts, with no text: an allocator that is
     * failing right now decides. */
    void *probe = rm_malloc(1);
    rm_mfree(probe);
    if (json_error_code(&je) == json_error_out_of_memory || !probe || je.text[0] == 0)
        return rm_fail(err, RM_ERR_NOMEM, "%s: out of memory parsing JSON", name);
    return rm_fail(err, RM_ERR_FORMAT, "%s: invalid JSON at line %d column %d: %s", name, je.line, je.column, je.text);
}

/* ---------------------------------------------------------------- buffers */

int rm_buf_reserve(rm_buf *b, size_t extra) {
    if (b->oom) return 0;
    if (extra > SIZE_MAX - b->len - 1) { b->oom = 1; return 0; }
    size_t need = b->len + extra + 1;       /* room for a NUL */
    if (need <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *d = rm_realloc(b->data, cap);
    if (!d) { b->oom = 1; return 0; }
    b->data = d;
    b->cap = cap;
    return 1;
}

int rm_buf_append(rm_buf *b, const void *data, size_t n) {
    if (!rm_buf_reserve(b, n)) return 0;
    if (n) memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = 0;
    return 1;
}

int rm_buf_putc(rm_buf *b, char c) { return rm_buf_append(b, &c, 1); }

int rm_buf_printf(rm_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !rm_buf_reserve(b, (size_t)n)) return 0;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 1;
}

void rm_buf_free(rm_buf *b) {
    rm_mfree(b->data);
    memset(b, 0, sizeof *b);
}

int rm_ids_push(rm_ids *v, int32_t id) {
    if (v->limit && v->len >= v->limit) {
        v->limit_hit = 1;
        return 0;
    }
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64, bytes;
        if (!rm_mul_ok(cap, sizeof(int32_t), &bytes)) return 0;
        int32_t *d = rm_realloc(v->data, bytes);
        if (!d) return 0;
        v->data = d;
        v->cap = cap;
    }
    v->data[v->len++] = id;
    return 1;
}

void rm_ids_release(rm_ids *v) {
    rm_mfree(v->data);
    memset(v, 0, sizeof *v);
}

/* ---------------------------------------------------------------- files and text */

rm_status rm_map_file(const char *path, void **map, size_t *len, rm_err *err) {
    *map = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return rm_fail(err, RM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return rm_fail(err, RM_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return rm_fail(err, RM_ERR_LIMIT, "%s: too large to map", path);
    }
    if (sb.st_size == 0) {
        close(fd);
        return RM_OK;
    }
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (m == MAP_FAILED)
        return rm_fail(err, map_errno == ENOMEM ? RM_ERR_NOMEM : RM_ERR_IO, "%s: cannot map %lld bytes: %s", path,
                       (long long)sb.st_size, strerror(map_errno));
    *map = m;
    *len = (size_t)sb.st_size;
    return RM_OK;
}

void rm_unmap_file(void *map, size_t len) {
    if (map) munmap(map, len);
}

rm_status rm_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len, rm_err *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return rm_fail(err, RM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return rm_fail(err, RM_ERR_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (max_bytes && size > max_bytes) {
        close(fd);
        return rm_fail(err, RM_ERR_LIMIT, "%s: %zu bytes, more than the bound of %zu", path, size, max_bytes);
    }
    char *data = rm_malloc(size + 1);
    if (!data) {
        close(fd);
        return rm_fail(err, RM_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, data + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = errno;
            close(fd);
            rm_mfree(data);
            return rm_fail(err, RM_ERR_IO, "%s: read failed after %zu of %zu bytes: %s", path, got, size,
                           r < 0 ? strerror(e) : "file shrank");
        }
        got += (size_t)r;
    }
    close(fd);
    data[size] = 0;
    *out = data;
    if (out_len) *out_len = size;
    return RM_OK;
}

char *rm_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    int slash = a > 0 && dir[a - 1] != '/';
    char *p = rm_malloc(a + slash + b + 1);
    if (!p) return NULL;
    memcpy(p, dir, a);
    if (slash) p[a] = '/';
    memcpy(p + a + slash, name, b + 1);
    return p;
}

size_t rm_utf8_check(const char *str, size_t len) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t n;
        unsigned min;
        if (c >= 0xC2 && c <= 0xDF) { n = 1; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { n = 2; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { n = 3; min = 0x10000; }
        else return i;
        if (len - i <= n) return i;
        unsigned cp = c & (0x3F >> n);
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += n + 1;
    }
    return len;
}

float rm_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* IEEE half -> float by bits (portable: clang 14 has no _Float16 on x86). */
float rm_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, mant = h & 0x3FF, u;
    if (exp == 0x1F) u = sign | 0x7F800000u | (mant << 13);          /* inf, nan */
    else if (exp) u = sign | ((exp + 112) << 23) | (mant << 13);     /* normal */
    else if (!mant) u = sign;                                         /* zero */
    else {                                                            /* subnormal: normalise */
        int e = -1;
        do { e++; mant <<= 1; } while (!(mant & 0x400));
        u = sign | ((uint32_t)(112 - e) << 23) | ((mant & 0x3FF) << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}
