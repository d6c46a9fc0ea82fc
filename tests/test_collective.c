/*
 * test_collective.c - the in-process collective group (lib/parallel/
 * comm_threads.c) and the ranks' input check (rank_inputs.c): sums against
 * an independent rank-order sum, bit for bit on every rank, over fp32 and
 * bf16, many rounds and sizes; broadcast and barrier; calls out of step
 * refused on every rank; a rank that never arrives ends in a timeout on the
 * others within the bound; an abort wakes every waiting rank; a reset group
 * serves again; ranks given different inputs all fail. The device path
 * (ranks sharing one GPU: rm_comm_device) runs against a stand-in device
 * whose memory is host memory: the same bits as the host path, its scratch
 * allocated and released, a failed allocation failing every rank.
 */
#include <math.h>
#include <pthread.h>
#include <time.h>

#include <stddef.h>

#include "cpu_ops.h"
#include "parallel/collective.h"
#include "parallel/tp.h"
#include "test.h"

static unsigned long long seed;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static float rnd_value(unsigned long long s, size_t rank, size_t round, size_t i) {
    unsigned long long x = s ^ (rank * 0x9e3779b97f4a7c15ULL) ^ (round * 0xbf58476d1ce4e5b9ULL) ^ (i * 0x94d049bb133111ebULL);
    x ^= x >> 31;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 29;
    return (float)((double)(x >> 11) / (double)(1ULL << 53) * 2.0 - 1.0) * (float)(1 + rank);
}

static uint16_t bf16_bits(float f) {   /* nearest even, written here independently of the library */
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ------------------------------------------------ rounds of sums */

#define ROUNDS 40

typedef struct rank_arg {
    rm_comm *c;
    int n;
    void *stream;               /* NULL: host buffers; else the stand-in device's */
    int failures;               /* values not as expected */
    rm_status st;
    char msg[1024];
} rank_arg;

static size_t round_count(size_t round) { return (size_t[]){1, 7, 64, 1000, 4099, 0, 3}[round % 7] + round; }

static void *sums_rank(void *p) {
    rank_arg *a = p;
    int r = a->c->rank;
    for (size_t round = 0; round < ROUNDS; round++) {
        size_t n = round_count(round);
        int bf = round % 3 == 2;
        float *f = malloc((n + 1) * sizeof *f);
        uint16_t *h = malloc((n + 1) * sizeof *h);
        for (size_t i = 0; i < n; i++) {
            f[i] = rnd_value(seed, (size_t)r, round, i);
            h[i] = bf16_bits(f[i]);
        }
        rm_err err = {0};
        rm_status st = rm_comm_all_reduce(a->c, bf ? (void *)h : (void *)f, n, bf ? RM_COMM_BF16 : RM_COMM_F32, a->stream,
                                          &err);
        if (st) {
            a->st = st;
            snprintf(a->msg, sizeof a->msg, "%s", err.msg);
            free(f);
            free(h);
            return NULL;
        }
        for (size_t i = 0; i < n; i++) {
            float want = bf ? from_bf16(bf16_bits(rnd_value(seed, 0, round, i))) : rnd_value(seed, 0, round, i);
            for (int k = 1; k < a->n; k++)
                want += bf ? from_bf16(bf16_bits(rnd_value(seed, (size_t)k, round, i))) : rnd_value(seed, (size_t)k, round, i);
            if (bf ? h[i] != bf16_bits(want) : memcmp(&f[i], &want, 4) != 0) a->failures++;
        }
        free(f);
        free(h);
    }
    return NULL;
}

static void run_ranks_on(rm_comm **c, int n, void *(*fn)(void *), rank_arg *args, void *stream) {
    pthread_t t[8];
    for (int r = 0; r < n; r++) {
        memset(&args[r], 0, sizeof args[r]);
        args[r].c = c[r];
        args[r].n = n;
        args[r].stream = stream;
        pthread_create(&t[r], NULL, fn, &args[r]);
    }
    for (int r = 0; r < n; r++) pthread_join(t[r], NULL);
}

static void run_ranks(rm_comm **c, int n, void *(*fn)(void *), rank_arg *args) { run_ranks_on(c, n, fn, args, NULL); }

static void test_sums(void) {
    for (int n = 1; n <= 5; n++) {
        rm_comm *c[8];
        rm_err err = {0};
        CHECK(rm_comm_threads_create(c, n, 30, NULL, &err) == RM_OK, "create %d: %s", n, err.msg);
        rank_arg a[8];
        run_ranks(c, n, sums_rank, a);
        for (int r = 0; r < n; r++) {
            CHECK(a[r].st == RM_OK, "%d ranks, rank %d: %s", n, r, a[r].msg);
            CHECK(a[r].failures == 0, "%d ranks, rank %d: %d values differ from the rank-order sum", n, r, a[r].failures);
        }
        for (int r = 0; r < n; r++) c[r]->ops->destroy(c[r]);
    }
}

/* ------------------------------------------------ the device path, on a stand-in device */

/* "Device" memory is host memory here; the calls are counted. */
static struct {
    int sums, copies, syncs, allocs, releases, fail_alloc;
    pthread_mutex_t mu;
} fake = {.mu = PTHREAD_MUTEX_INITIALIZER};
#define FAKE_STREAM ((void *)0x5)

static void fake_count(int *n) {
    pthread_mutex_lock(&fake.mu);
    (*n)++;
    pthread_mutex_unlock(&fake.mu);
}
static rm_status fake_sum(void *dst, void *const *srcs, int n_srcs, size_t offset, size_t count, rm_comm_dtype dt,
                          void *stream, rm_err *err) {
    if (stream != FAKE_STREAM) return rm_fail(err, RM_ERR_INTERNAL, "sum on another stream");
    fake_count(&fake.sums);
    rm_cpu_sum_ranks(dst, srcs, n_srcs, offset, offset + count, dt == RM_COMM_BF16);
    return RM_OK;
}
static rm_status fake_copy(void *dst, const void *src, size_t bytes, void *stream, rm_err *err) {
    if (stream != FAKE_STREAM) return rm_fail(err, RM_ERR_INTERNAL, "copy on another stream");
    fake_count(&fake.copies);
    memcpy(dst, src, bytes);
    return RM_OK;
}
static rm_status fake_sync(void *stream, rm_err *err) {
    if (stream != FAKE_STREAM) return rm_fail(err, RM_ERR_INTERNAL, "sync of another stream");
    fake_count(&fake.syncs);
    return RM_OK;
}
static rm_status fake_alloc(void **out, size_t bytes, rm_err *err) {
    fake_count(&fake.allocs);
    if (fake.fail_alloc) return rm_fail(err, RM_ERR_DEVICE, "stand-in device: out of memory for %zu bytes", bytes);
    *out = malloc(bytes ? bytes : 1);
    return *out ? RM_OK : rm_fail(err, RM_ERR_NOMEM, "malloc");
}
static void fake_release(void *p) {
    fake_count(&fake.releases);
    free(p);
}
static const rm_comm_device fake_device = {fake_sum, fake_copy, fake_sync, fake_alloc, fake_release};

static void test_device_path(void) {
    for (int n = 2; n <= 4; n++) {
        memset(&fake, 0, offsetof(__typeof__(fake), mu));
        rm_comm *c[8];
        rm_err err = {0};
        CHECK(rm_comm_threads_create(c, n, 30, &fake_device, &err) == RM_OK, "create %d on a device: %s", n, err.msg);
        rank_arg a[8];
        run_ranks_on(c, n, sums_rank, a, FAKE_STREAM);
        for (int r = 0; r < n; r++)
            CHECK(a[r].st == RM_OK && a[r].failures == 0, "device path, %d ranks, rank %d: %d values differ (%s)", n, r,
                  a[r].failures, a[r].msg);
        CHECK(fake.sums == n * ROUNDS && fake.copies == fake.sums && fake.allocs >= 1,
              "device path, %d ranks: %d sums, %d copies, %d allocations", n, fake.sums, fake.copies, fake.allocs);
        /* A host buffer on the same group still takes the host path. */
        run_ranks(c, n, sums_rank, a);
        for (int r = 0; r < n; r++) CHECK(a[r].st == RM_OK && a[r].failures == 0, "host buffers on a device group");
        for (int r = 0; r < n; r++) c[r]->ops->destroy(c[r]);
        CHECK(fake.releases == fake.allocs, "device scratch: %d allocations, %d released", fake.allocs, fake.releases);
    }
    /* The scratch cannot be had: every rank fails with the device's words. */
    memset(&fake, 0, offsetof(__typeof__(fake), mu));
    fake.fail_alloc = 1;
    rm_comm *c[8];
    rm_err err = {0};
    CHECK(rm_comm_threads_create(c, 3, 30, &fake_device, &err) == RM_OK, "create: %s", err.msg);
    rank_arg a[8];
    run_ranks_on(c, 3, sums_rank, a, FAKE_STREAM);
    for (int r = 0; r < 3; r++)
        CHECK(a[r].st == RM_ERR_DEVICE && strstr(a[r].msg, "stand-in device: out of memory"), "rank %d: %s", r, a[r].msg);
    for (int r = 0; r < 3; r++) c[r]->ops->destroy(c[r]);
    /* A device buffer on a group made without device operations is refused. */
    CHECK(rm_comm_threads_create(c, 2, 30, NULL, &err) == RM_OK, "create: %s", err.msg);
    float x = 1;
    CHECK(rm_comm_all_reduce(c[0], &x, 1, RM_COMM_F32, FAKE_STREAM, &err) == RM_ERR_INVALID_ARG &&
              strstr(err.msg, "without device operations"), "%s", err.msg);
    for (int r = 0; r < 2; r++) c[r]->ops->destroy(c[r]);
}

/* ------------------------------------------------ broadcast, barrier, mismatch */

static void *bcast_rank(void *p) {
    rank_arg *a = p;
    int r = a->c->rank;
    char buf[64];
    rm_err err = {0};
    for (int root = 0; root < a->n; root++) {
        snprintf(buf, sizeof buf, "from rank %d", r);
        rm_status st = a->c->ops->broadcast(a->c, buf, sizeof buf, root, NULL, &err);
        char want[64];
        snprintf(want, sizeof want, "from rank %d", root);
        if (st || strcmp(buf, want)) a->failures++;
        if ((st = a->c->ops->barrier(a->c, &err))) a->failures++;
    }
    return NULL;
}

static void *mismatch_rank(void *p) {
    rank_arg *a = p;
    float buf[8] = {0};
    rm_err err = {0};
    a->st = rm_comm_all_reduce(a->c, buf, a->c->rank == 0 ? 4 : 5, RM_COMM_F32, NULL, &err);
    snprintf(a->msg, sizeof a->msg, "%s", err.msg);
    return NULL;
}

static void test_broadcast_mismatch(void) {
    rm_comm *c[3];
    rm_err err = {0};
    rank_arg a[3];
    CHECK(rm_comm_threads_create(c, 3, 30, NULL, &err) == RM_OK, "create: %s", err.msg);
    run_ranks(c, 3, bcast_rank, a);
    for (int r = 0; r < 3; r++) CHECK(a[r].failures == 0, "broadcast/barrier on rank %d", r);
    run_ranks(c, 3, mismatch_rank, a);
    for (int r = 0; r < 3; r++) {
        CHECK(a[r].st == RM_ERR_INVALID_ARG, "rank %d: status %d", r, a[r].st);
        CHECK(strstr(a[r].msg, "out of step") && strstr(a[r].msg, "same order"), "rank %d: %s", r, a[r].msg);
    }
    /* Reset, then the group serves again. */
    CHECK(c[0]->ops->reset(c[0], &err) == RM_OK, "reset");
    run_ranks(c, 3, bcast_rank, a);
    for (int r = 0; r < 3; r++) CHECK(a[r].failures == 0, "broadcast after reset, rank %d", r);
    for (int r = 0; r < 3; r++) c[r]->ops->destroy(c[r]);
}

/* ------------------------------------------------ timeouts and aborts */

static void *one_reduce(void *p) {
    rank_arg *a = p;
    float buf[16] = {1};
    rm_err err = {0};
    double t0 = now_s();
    a->st = rm_comm_all_reduce(a->c, buf, 16, RM_COMM_F32, NULL, &err);
    a->failures = (int)((now_s() - t0) * 1000);   /* ms waited */
    snprintf(a->msg, sizeof a->msg, "%s", err.msg);
    return NULL;
}

static void test_timeout(void) {
    rm_comm *c[3];
    rm_err err = {0};
    const double timeout = 0.4;
    CHECK(rm_comm_threads_create(c, 3, timeout, NULL, &err) == RM_OK, "create: %s", err.msg);
    /* Ranks 0 and 1 reduce; rank 2 never comes. */
    rank_arg a[3];
    run_ranks(c, 2, one_reduce, a);
    for (int r = 0; r < 2; r++) {
        CHECK(a[r].st == RM_ERR_DEVICE, "rank %d: status %d (%s)", r, a[r].st, a[r].msg);
        CHECK(strstr(a[r].msg, "timed out") && strstr(a[r].msg, "waiting for rank 2"), "rank %d: %s", r, a[r].msg);
        CHECK(a[r].failures >= (int)(timeout * 1000) - 50 && a[r].failures < (int)(timeout * 1000) + 2000,
              "rank %d returned after %d ms, the timeout is %g s", r, a[r].failures, timeout);
    }
    /* The late rank finds the group aborted, at once. */
    float buf[16];
    double t0 = now_s();
    CHECK(rm_comm_all_reduce(c[2], buf, 16, RM_COMM_F32, NULL, &err) == RM_ERR_DEVICE && now_s() - t0 < 0.2,
          "late rank: %s", err.msg);
    for (int r = 0; r < 3; r++) c[r]->ops->destroy(c[r]);
}

typedef struct abort_arg {
    rm_comm *c;
    double delay;
} abort_arg;

static void *abort_later(void *p) {
    abort_arg *a = p;
    struct timespec ts = {0, (long)(a->delay * 1e9)};
    nanosleep(&ts, NULL);
    a->c->ops->abort(a->c, RM_ERR_NOMEM, "tensor-parallel rank 2 of 3: out of memory (test)");
    return NULL;
}

static void test_abort(void) {
    rm_comm *c[3];
    rm_err err = {0};
    CHECK(rm_comm_threads_create(c, 3, 60, NULL, &err) == RM_OK, "create: %s", err.msg);
    abort_arg ab = {c[2], 0.1};
    pthread_t t;
    pthread_create(&t, NULL, abort_later, &ab);
    rank_arg a[3];
    run_ranks(c, 2, one_reduce, a);
    pthread_join(t, NULL);
    for (int r = 0; r < 2; r++) {
        CHECK(a[r].st == RM_ERR_NOMEM, "rank %d: status %d", r, a[r].st);
        CHECK(strstr(a[r].msg, "rank 2 of 3: out of memory"), "rank %d: %s", r, a[r].msg);
        CHECK(a[r].failures < 5000, "rank %d waited %d ms for an abort (timeout 60 s)", r, a[r].failures);
    }
    rm_status st;
    char msg[256];
    CHECK(c[1]->ops->aborted(c[1], &st, msg, sizeof msg) && st == RM_ERR_NOMEM, "aborted() reports it");
    CHECK(c[0]->ops->reset(c[0], &err) == RM_OK && !c[1]->ops->aborted(c[1], NULL, NULL, 0), "reset clears it");
    run_ranks(c, 3, one_reduce, a);
    for (int r = 0; r < 3; r++) CHECK(a[r].st == RM_OK, "after reset, rank %d: %s", r, a[r].msg);
    for (int r = 0; r < 3; r++) c[r]->ops->destroy(c[r]);
}

/* ------------------------------------------------ the input check */

typedef struct input_arg {
    rm_comm *c;
    int differ;                 /* this rank changes one token */
    rm_status st;
    char msg[1024];
} input_arg;

static void *inputs_rank(void *p) {
    input_arg *a = p;
    int32_t s0[] = {128000, 9906, 1917, 13}, s1[] = {128000, 9906, 1917, 30, 1};
    if (a->differ) s1[3] = 31;
    const int32_t *toks[] = {s0, s1};
    size_t lens[] = {4, 5}, shared[] = {0, 3};
    int32_t parent[] = {-1, 0};
    rm_batch b = {2, toks, lens, parent, shared};
    rm_err err = {0};
    a->st = rm_tp_inputs_check(a->c, &b, &err);
    snprintf(a->msg, sizeof a->msg, "%s", err.msg);
    return NULL;
}

static void test_inputs(void) {
    rm_comm *c[3];
    rm_err err = {0};
    CHECK(rm_comm_threads_create(c, 3, 30, NULL, &err) == RM_OK, "create: %s", err.msg);
    for (int bad = -1; bad < 3; bad++) {
        input_arg a[3];
        pthread_t t[3];
        for (int r = 0; r < 3; r++) {
            memset(&a[r], 0, sizeof a[r]);
            a[r].c = c[r];
            a[r].differ = r == bad;
            pthread_create(&t[r], NULL, inputs_rank, &a[r]);
        }
        for (int r = 0; r < 3; r++) pthread_join(t[r], NULL);
        for (int r = 0; r < 3; r++) {
            if (bad < 0) {
                CHECK(a[r].st == RM_OK, "same inputs, rank %d: %s", r, a[r].msg);
                continue;
            }
            CHECK(a[r].st == RM_ERR_INVALID_ARG, "rank %d differs, rank %d: status %d", bad, r, a[r].st);
            CHECK(strstr(a[r].msg, "differ from rank 0's") && strstr(a[r].msg, "same calls in the same order"),
                  "rank %d: %s", r, a[r].msg);
            /* Rank 0 is the reference: a differing rank 0 shows as every other rank differing. */
            int says_mine = strstr(a[r].msg, "this rank's inputs differ") != NULL;
            CHECK(says_mine == (bad == 0 ? r != 0 : r == bad), "rank %d (bad %d): %s", r, bad, a[r].msg);
        }
    }
    for (int r = 0; r < 3; r++) c[r]->ops->destroy(c[r]);
}

int main(void) {
    seed = test_seed();
    test_sums();
    test_device_path();
    test_broadcast_mismatch();
    test_timeout();
    test_abort();
    test_inputs();
    return test_summary("test_collective");
}
