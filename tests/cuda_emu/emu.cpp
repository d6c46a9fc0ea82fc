/*
 * emu.cpp - a CPU emulator for the subset of CUDA the kernels use, so that
 * tests/test_kernels runs without a GPU (tests/test_kernels_emu.sh).
 *
 *  - Blocks run one after another; a block's threads are fibers on one OS
 *    thread (entered through ucontext, switched with _setjmp / _longjmp),
 *    each running until it reaches a barrier.
 *  - __syncthreads releases when every thread of the block is there; a warp
 *    collective (shuffle, ldmatrix, mma) when its 32 lanes are, which of the
 *    ready warps go on is drawn at random so warps drift apart; a barrier
 *    that can never be released (divergent code, a thread that returned)
 *    aborts with the threads' states.
 *  - Collectives exchange values through per-warp slots between two warp
 *    barriers; ldmatrix and mma follow the PTX ISA's fragment layouts.
 *  - cp.async: the destination turns to garbage at the issue and receives the
 *    data when a cp.async.wait_group retires its group; a thread that exits
 *    with copies in flight aborts.
 *  - Dynamic shared memory starts as 0xFF bytes (NaN in bf16 and fp32), so a
 *    read of an element nobody wrote shows; launch limits (block size, grid,
 *    48 KB of dynamic shared memory unless raised, 227 KB at most) are
 *    checked as the driver would and reported by cudaGetLastError.
 *  - Device memory is host memory; streams are synchronous.
 * RM_EMU_SEED sets the warp drift's seed.
 */
#include <setjmp.h>
#include <ucontext.h>

#include <cstdarg>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <vector>

#include "cuda_runtime.h"

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

enum State { READY, WAIT_BLOCK, WAIT_WARP, DONE };
struct Copy {
    void *dst;
    const void *src;
    long group;
};
struct Fiber {
    ucontext_t ctx; /* only to enter the fiber the first time */
    jmp_buf jb;     /* every later switch: no signal-mask system call */
    bool started;
    std::vector<char> stack;
    State st;
    std::vector<Copy> pending;
    long next_group;
};

static std::vector<Fiber> fibers;
static ucontext_t sched_ctx;
static jmp_buf sched_jb;
static int cur;
static const std::function<void()> *body_fn;
static std::vector<char> dyn_smem_buf;
static char *dyn_smem;
static size_t dyn_smem_size;
static std::vector<uint64_t> warp_slots;
static cudaError_t last_error = cudaSuccess;
static std::map<const void *, int> smem_limits;
static long n_launches, n_blocks, n_switches;
static uint64_t rng_state = getenv("RM_EMU_SEED") ? strtoull(getenv("RM_EMU_SEED"), NULL, 0) : 0x1234567;
static uint64_t rng() {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return rng_state >> 33;
}

void emu_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "EMU FAIL [block %u,%u,%u thread %u]: ", blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static void yield(State s) {
    fibers[cur].st = s;
    n_switches++;
    if (_setjmp(fibers[cur].jb) == 0) _longjmp(sched_jb, 1);
}
void __syncthreads() { yield(WAIT_BLOCK); }
void emu_warp_barrier() { yield(WAIT_WARP); }
uint64_t *emu_warp_slots(int words) {
    if (words > 8) emu_fail("exchange of more than 8 words");
    return &warp_slots[(size_t)(threadIdx.x / 32) * 32 * 8];
}
void *emu_dynamic_smem() { return dyn_smem; }

static int in_smem(const void *p, size_t n) {
    const char *c = (const char *)p;
    return c >= dyn_smem && c + n <= dyn_smem + dyn_smem_size;
}

static void fiber_entry() {
    (*body_fn)();
    if (!fibers[cur].pending.empty())
        emu_fail("exits with %zu cp.async copies never waited for", fibers[cur].pending.size());
    fibers[cur].st = DONE;
    _longjmp(sched_jb, 1); /* never returns: uc_link would resume a stale scheduler frame */
}

static void run_block(unsigned n) {
    for (unsigned i = 0; i < n; i++) {
        Fiber &f = fibers[i];
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack.data();
        f.ctx.uc_stack.ss_size = f.stack.size();
        f.ctx.uc_link = &sched_ctx;
        makecontext(&f.ctx, fiber_entry, 0);
        f.st = READY;
        f.started = false;
        f.pending.clear();
        f.next_group = 0;
    }
    memset(dyn_smem, 0xFF, dyn_smem_size);
    for (;;) {
        for (unsigned i = 0; i < n; i++)
            if (fibers[i].st == READY) {
                cur = (int)i;
                threadIdx = uint3{i, 0, 0};
                if (_setjmp(sched_jb) == 0) {
                    if (!fibers[i].started) {
                        fibers[i].started = true;
                        swapcontext(&sched_ctx, &fibers[i].ctx);
                    } else {
                        _longjmp(fibers[i].jb, 1);
                    }
                }
            }
        unsigned done = 0, wb = 0;
        for (unsigned i = 0; i < n; i++) done += fibers[i].st == DONE, wb += fibers[i].st == WAIT_BLOCK;
        if (done == n) return;
        /* Warps whose collective is complete are released at random (one at
         * least), so that warps drift apart as they do on hardware and a
         * missing __syncthreads shows. */
        int released = 0, ready_warps[32], n_ready = 0;
        for (unsigned w = 0; w * 32 < n; w++) {
            unsigned lo = w * 32, hi = std::min(n, lo + 32), ww = 0;
            for (unsigned i = lo; i < hi; i++) ww += fibers[i].st == WAIT_WARP;
            if (ww == hi - lo) ready_warps[n_ready++] = (int)w;
        }
        int forced = n_ready ? ready_warps[rng() % n_ready] : -1;
        for (int k = 0; k < n_ready; k++) {
            int w = ready_warps[k];
            if (w != forced && rng() % 4 == 0) continue; /* this one lags a pass */
            unsigned lo = (unsigned)w * 32, hi = std::min(n, lo + 32);
            for (unsigned i = lo; i < hi; i++) fibers[i].st = READY;
            released = 1;
        }
        if (wb == n) {
            for (unsigned i = 0; i < n; i++) fibers[i].st = READY;
            released = 1;
        }
        if (!released) {
            threadIdx = uint3{0, 0, 0};
            fprintf(stderr, "states:");
            for (unsigned i = 0; i < n; i++) fprintf(stderr, " %d", fibers[i].st);
            fputc('\n', stderr);
            emu_fail("deadlock: a barrier or warp collective not reached by all its threads (%u done, %u at "
                     "__syncthreads)",
                     done, wb);
        }
    }
}

cudaError_t emu_set_smem_limit(const void *k, int bytes) {
    if (bytes < 0 || bytes > 232448) return cudaErrorInvalidValue; /* H100 / H200: 227 KB per block */
    smem_limits[k] = bytes;
    return cudaSuccess;
}

void emu_run(const void *kernel, dim3 grid, dim3 block, size_t smem, const std::function<void()> &body) {
    auto lim = smem_limits.find(kernel);
    size_t limit = lim == smem_limits.end() ? 49152 : (size_t)lim->second;
    if (block.x == 0 || block.x > 1024 || block.y != 1 || block.z != 1 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
        grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) {
        last_error = cudaErrorInvalidConfiguration;
        return;
    }
    if (smem > limit) {
        last_error = cudaErrorInvalidValue;
        return;
    }
    n_launches++;
    if (fibers.size() < block.x) fibers.resize(block.x);
    for (auto &f : fibers)
        if (f.stack.empty()) f.stack.resize(1 << 18);
    dyn_smem_buf.assign(smem + 256, 0);
    dyn_smem = (char *)(((uintptr_t)dyn_smem_buf.data() + 127) & ~(uintptr_t)127);
    dyn_smem_size = smem;
    warp_slots.assign((size_t)(block.x + 31) / 32 * 32 * 8, 0);
    body_fn = &body;
    gridDim = grid;
    blockDim = block;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                blockIdx = uint3{x, y, z};
                n_blocks++;
                run_block(block.x);
            }
}

/* ---------------------------------------------------------------- PTX */

void emu_cp_async16(void *dst, const void *src) {
    if ((uintptr_t)dst % 16 || (uintptr_t)src % 16)
        emu_fail("cp.async of 16 bytes not 16-byte aligned (%p <- %p)", dst, src);
    if (!in_smem(dst, 16)) emu_fail("cp.async destination outside dynamic shared memory");
    /* The destination is undefined from the issue until the wait retires the
     * copy: garbage now (a buffer overwritten while another warp reads it
     * shows), the data at the wait (a read before the wait shows). */
    memset(dst, 0xFF, 16);
    fibers[cur].pending.push_back(Copy{dst, src, -1});
}
void emu_cp_async_commit() {
    Fiber &f = fibers[cur];
    for (auto &c : f.pending)
        if (c.group < 0) c.group = f.next_group;
    f.next_group++;
}
void emu_cp_async_wait(int n) {
    Fiber &f = fibers[cur];
    long newest_kept = f.next_group - n; /* groups >= this may stay in flight */
    std::vector<Copy> keep;
    for (auto &c : f.pending)
        if (c.group >= 0 && c.group < newest_kept)
            memcpy(c.dst, c.src, 16);
        else
            keep.push_back(c);
    f.pending.swap(keep);
}

void emu_ldmatrix_x4(uint32_t r[4], const void *p, bool trans) {
    if ((uintptr_t)p % 16) emu_fail("ldmatrix row address not 16-byte aligned");
    if (!in_smem(p, 16)) emu_fail("ldmatrix outside dynamic shared memory");
    uint64_t *slots = emu_warp_slots(1);
    int t = threadIdx.x & 31;
    slots[t] = (uintptr_t)p;
    emu_warp_barrier();
    for (int i = 0; i < 4; i++) {
        uint16_t lo, hi;
        if (!trans) {
            const uint16_t *row = (const uint16_t *)slots[8 * i + t / 4];
            lo = row[2 * (t % 4)], hi = row[2 * (t % 4) + 1];
        } else {
            const uint16_t *r0 = (const uint16_t *)slots[8 * i + 2 * (t % 4)],
                           *r1 = (const uint16_t *)slots[8 * i + 2 * (t % 4) + 1];
            lo = r0[t / 4], hi = r1[t / 4];
        }
        r[i] = (uint32_t)lo | ((uint32_t)hi << 16);
    }
    emu_warp_barrier();
}

static float bf(uint32_t h) { return __uint_as_float(h << 16); }

void emu_mma_bf16(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    uint64_t *slots = emu_warp_slots(6);
    int lane = threadIdx.x & 31;
    for (int k = 0; k < 4; k++) slots[lane * 6 + k] = a[k];
    slots[lane * 6 + 4] = b0, slots[lane * 6 + 5] = b1;
    emu_warp_barrier();
    float A[16][16], B[16][8];
    for (int l = 0; l < 32; l++) {
        int g = l / 4, t = l % 4;
        const uint64_t *s = slots + l * 6;
        A[g][2 * t] = bf(s[0] & 0xffff), A[g][2 * t + 1] = bf(s[0] >> 16);
        A[g + 8][2 * t] = bf(s[1] & 0xffff), A[g + 8][2 * t + 1] = bf(s[1] >> 16);
        A[g][2 * t + 8] = bf(s[2] & 0xffff), A[g][2 * t + 9] = bf(s[2] >> 16);
        A[g + 8][2 * t + 8] = bf(s[3] & 0xffff), A[g + 8][2 * t + 9] = bf(s[3] >> 16);
        B[2 * t][g] = bf(s[4] & 0xffff), B[2 * t + 1][g] = bf(s[4] >> 16);
        B[2 * t + 8][g] = bf(s[5] & 0xffff), B[2 * t + 9][g] = bf(s[5] >> 16);
    }
    int g = lane / 4, t = lane % 4;
    int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
    for (int k = 0; k < 4; k++) {
        float acc = d[k];
        for (int kk = 0; kk < 16; kk++) acc += A[rows[k]][kk] * B[kk][cols[k]];
        d[k] = acc;
    }
    emu_warp_barrier();
}

/* ---------------------------------------------------------------- runtime API */

extern "C" {
cudaError_t cudaMalloc(void **p, size_t n) {
    *p = aligned_alloc(256, (n + 255) / 256 * 256);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFree(void *p) {
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMemset(void *p, int v, size_t n) {
    memset(p, v, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, enum cudaMemcpyKind) {
    memcpy(d, s, n);
    return cudaSuccess;
}
cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int) {
    memset(p, 0, sizeof *p);
    strcpy(p->name, "CPU emulator");
    p->major = 9, p->minor = 0, p->multiProcessorCount = 132;
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) {
    *s = (cudaStream_t)0x1;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) {
    static int reported;
    if (!reported++)
        atexit([] {
            fprintf(stderr,
                    "emu: %ld launches, %ld blocks, %ld fiber switches (RM_EMU_SEED to vary the warp drift)\n",
                    n_launches, n_blocks, n_switches);
        });
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
/* Events time the host: the emulator's speed says nothing of a GPU's. */
cudaError_t cudaEventCreate(cudaEvent_t *e) {
    *e = (cudaEvent_t) new double(0);
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete (double *)e;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    *(double *)e = ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    *ms = (float)(*(double *)b - *(double *)a);
    return cudaSuccess;
}
cudaError_t cudaGetLastError(void) {
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}
const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess:
        return "cudaSuccess";
    case cudaErrorInvalidValue:
        return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
        return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration:
        return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice:
        return "cudaErrorNoDevice";
    default:
        return "cudaError?";
    }
}
const char *cudaGetErrorString(cudaError_t e) { return cudaGetErrorName(e); }
}
