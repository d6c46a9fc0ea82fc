/*
 * attention.cu - causal grouped-query attention over a packed batch with
 * prefix sharing, flash-style: per tile of query rows, the keys stream
 * through shared memory in tiles and an online softmax (fp32) keeps a running
 * max m, a running sum l and the unnormalised output O, so the score matrix
 * never exists in memory.
 *
 * Work decomposition (both paths). A block owns one sequence s (grid.z,
 * strided), one kv head g (grid.y) and one tile of "rows" (grid.x). The rows
 * of a sequence are its (query token, query head of g) pairs, token-major:
 * row m is token m / G of head g * G + m % G, G = n_heads / n_kv_heads. So the
 * G heads that read the same keys share each K/V tile loaded into shared
 * memory, and a single-query sequence (the last layer) still fills G rows of
 * a tile. Row m sees keys 0 .. pos0 + m / G of its sequence (key j is row
 * key_rows[key_off[s] + j] of k and v: a shared prefix is the parent's rows).
 * The tile index is reversed (grid.x - 1 - blockIdx.x) so the tiles with the
 * most keys start first and the causal tail is short.
 *
 * Fast path (head_dim 64, 128; rows 16-byte aligned): tensor cores through
 * mma.sync.m16n8k16 (bf16 in, fp32 accumulate), FlashAttention-2 style.
 * 4 warps, 64 rows x 64 keys per step; each warp owns 16 rows: S = Q K^T in
 * registers, masked and exponentiated there, then reused as the A operand of
 * O += P V without leaving registers (P rounded to bf16, as FA2 and SDPA do;
 * the row sums l are taken from the fp32 P). K and V tiles are double
 * buffered with cp.async, the next tile in flight while this one is used.
 * Shared rows are padded by 16 bytes, so ldmatrix is free of bank conflicts.
 *
 * Generic path (any even head_dim <= 256, any strides and alignment): CUDA
 * cores, 4 warps, 32 rows x 32 keys per step, 8 rows per warp; a lane scores
 * one key of the tile, then the warp accumulates P V with each lane owning
 * pairs of output dimensions. P stays fp32.
 *
 * Both write out = bf16(O / l); a row with no key (only possible with
 * inconsistent metadata) gets 0.
 *
 * What to check and tune first on the H200 (sm_90a):
 *  - correctness of both paths (tests/test_kernels), then the fast path's
 *    TFLOPS at 1x4096 / 16x512 (causal FLOPs = 2 * 2 * head_dim * keys seen);
 *  - 8 warps / 128 rows per block and 128-key tiles for head_dim 64 (FA2's
 *    choices); occupancy is 2 blocks per SM at head_dim 128 (87,040 bytes of
 *    shared memory per block);
 *  - skip the mask on tiles wholly below the diagonal (only the last one or
 *    two tiles of a row block need it);
 *  - the output goes straight from registers (4-byte stores); staging it
 *    through shared memory for 16-byte stores may help;
 *  - Hopper's wgmma + TMA (FlashAttention-3) is the step after that:
 *    mma.sync cannot reach the chip's bf16 peak on sm_90.
 * Without a GPU, tests/test_kernels_emu.sh runs both paths' logic (fragment
 * layouts, barriers, cp.async groups, masking) on a CPU emulator.
 */
#include "common.cuh"
#include "ptx.cuh"

#include <math.h>

#define ATTN_WARPS 4
#define ATTN_THREADS (ATTN_WARPS * 32)
#define ATTN_MAX_HEAD_DIM 256
#define LOG2E 1.4426950408889634f

/* The part of a block's work that depends on its sequence, shared by both
 * paths. Everything is int: the launcher checks that row counts fit. */
struct seq_tile {
    int q0;                 /* first query row of the sequence in q / out */
    int n_rows;             /* n_q * G */
    int m0;                 /* this tile's first row */
    int pos0;               /* position of the first query */
    int n_keys;             /* keys the sequence has */
    int key_end;            /* keys [0, key_end) matter to this tile */
    const int32_t *key_rows;
};

/* Returns 0 when the tile lies past the sequence's rows (nothing to do). */
__device__ __forceinline__ int seq_tile_init(seq_tile *t, const rm_cu_attn &a, int s, int G, int rows_per_tile) {
    int q0 = a.q_begin[s], n_q = a.q_begin[s + 1] - q0;
    t->q0 = q0;
    t->n_rows = n_q > 0 ? n_q * G : 0;
    t->m0 = (int)(gridDim.x - 1 - blockIdx.x) * rows_per_tile;
    if (t->m0 >= t->n_rows) return 0;
    t->pos0 = a.q_pos0[s];
    int k0 = a.key_off[s];
    t->n_keys = a.key_off[s + 1] - k0;
    if (t->n_keys < 0) t->n_keys = 0;
    t->key_rows = a.key_rows + k0;
    int m_last = min(t->m0 + rows_per_tile, t->n_rows) - 1;
    t->key_end = min(t->pos0 + m_last / G + 1, t->n_keys);
    if (t->key_end < 0) t->key_end = 0;
    return 1;
}

/* The last key row m may see, or -1 for a row past the sequence. */
__device__ __forceinline__ int row_key_limit(const seq_tile &t, int m, int G) {
    if (m >= t.n_rows) return -1;
    return min(t.pos0 + m / G, t.n_keys - 1);
}

/* ================================================================ fast path: mma.sync */

template <int HD> struct mma_cfg {
    static constexpr int BM = 16 * ATTN_WARPS;   /* rows per block: 16 per warp */
    static constexpr int BN = 64;                /* keys per step */
    static constexpr int LD = HD + 8;            /* shared row length (bf16), padded by 16 bytes */
    static constexpr int CHUNKS = HD / 8;        /* 16-byte chunks per row */
    static constexpr size_t SMEM = (size_t)(BM + 4 * BN) * LD * sizeof(uint16_t);   /* Q + 2 x (K, V) */
};

/* Loads keys [kt * BN, kt * BN + BN) of kv head g into Ks / Vs; keys at or
 * past key_end are zeros (so 0-weight columns never meet NaN garbage). */
template <int HD>
__device__ __forceinline__ void load_kv_tile(uint16_t *Ks, uint16_t *Vs, const rm_cu_attn &a, const seq_tile &t,
                                             int g, int kt) {
    typedef mma_cfg<HD> C;
    for (int c = threadIdx.x; c < C::BN * C::CHUNKS; c += ATTN_THREADS) {
        int j = c / C::CHUNKS, ch = c % C::CHUNKS, key = kt * C::BN + j;
        uint16_t *kd = Ks + j * C::LD + ch * 8, *vd = Vs + j * C::LD + ch * 8;
        if (key < t.key_end) {
            size_t off = (size_t)(uint32_t)t.key_rows[key] * a.kv_stride + (size_t)g * HD + (size_t)ch * 8;
            cp_async16(kd, a.k + off);
            cp_async16(vd, a.v + off);
        } else {
            *(uint4 *)kd = make_uint4(0, 0, 0, 0);
            *(uint4 *)vd = make_uint4(0, 0, 0, 0);
        }
    }
}

template <int HD>
__global__ void __launch_bounds__(ATTN_THREADS) attention_mma_kernel(const rm_cu_attn a) {
    typedef mma_cfg<HD> C;
    constexpr int BM = C::BM, BN = C::BN, LD = C::LD, KD = HD / 16, ND = HD / 8, NS = BN / 8;
    extern __shared__ __align__(16) uint16_t smem[];
    uint16_t *Qs = smem;                  /* [BM][LD] */
    uint16_t *Ks = Qs + BM * LD;          /* [2][BN][LD] */
    uint16_t *Vs = Ks + 2 * BN * LD;      /* [2][BN][LD] */

    const int G = a.n_heads / a.n_kv_heads, g = blockIdx.y;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int quad = lane >> 2, tq = lane & 3;   /* the fragment's row group and column pair */
    const float sl2 = a.scale * LOG2E;           /* exp(x * scale) = exp2(x * sl2) */

    for (int s = blockIdx.z; s < a.n_seqs; s += gridDim.z) {
        seq_tile t;
        if (!seq_tile_init(&t, a, s, G, BM)) continue;   /* the same for the whole block */
        const int n_kt = (t.key_end + BN - 1) / BN;

        /* Q tile: row m is token m / G, head g * G + m % G. */
        for (int c = threadIdx.x; c < BM * C::CHUNKS; c += ATTN_THREADS) {
            int r = c / C::CHUNKS, ch = c % C::CHUNKS, m = t.m0 + r;
            uint16_t *qd = Qs + r * LD + ch * 8;
            if (m < t.n_rows) {
                size_t off = (size_t)(t.q0 + m / G) * a.q_stride + (size_t)(g * G + m % G) * HD + (size_t)ch * 8;
                cp_async16(qd, a.q + off);
            } else {
                *(uint4 *)qd = make_uint4(0, 0, 0, 0);
            }
        }
        if (n_kt > 0) load_kv_tile<HD>(Ks, Vs, a, t, g, 0);
        cp_async_commit();

        /* This thread's two rows (fragment rows quad and quad + 8 of the warp's 16). */
        const int r_lo = warp * 16 + quad;
        int lim[2] = {row_key_limit(t, t.m0 + r_lo, G), row_key_limit(t, t.m0 + r_lo + 8, G)};
        float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f};
        float o[ND][4];
#pragma unroll
        for (int i = 0; i < ND; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
        uint32_t qf[KD][4];

        for (int kt = 0; kt < n_kt; kt++) {
            const int buf = kt & 1;
            if (kt + 1 < n_kt) {
                /* The other buffer was last read in step kt - 1, which ended with a barrier. */
                load_kv_tile<HD>(Ks + (buf ^ 1) * BN * LD, Vs + (buf ^ 1) * BN * LD, a, t, g, kt + 1);
                cp_async_commit();
                cp_async_wait<1>();   /* everything but the tile just issued */
            } else {
                cp_async_wait<0>();
            }
            __syncthreads();
            if (kt == 0) {
#pragma unroll
                for (int kd = 0; kd < KD; kd++)
                    ldmatrix_x4(qf[kd], Qs + (warp * 16 + (lane & 15)) * LD + kd * 16 + (lane >> 4) * 8);
            }
            const uint16_t *Kb = Ks + buf * BN * LD, *Vb = Vs + buf * BN * LD;

            /* S = Q K^T: NS tiles of 16 rows x 8 keys. */
            float sc[NS][4];
#pragma unroll
            for (int i = 0; i < NS; i++) sc[i][0] = sc[i][1] = sc[i][2] = sc[i][3] = 0.0f;
#pragma unroll
            for (int kd = 0; kd < KD; kd++) {
#pragma unroll
                for (int np = 0; np < NS / 2; np++) {
                    /* matrices: keys 0-7 d 0-7, keys 0-7 d 8-15, keys 8-15 d 0-7, keys 8-15 d 8-15 */
                    uint32_t b[4];
                    int key = np * 16 + (lane >> 4) * 8 + (lane & 7), col = kd * 16 + ((lane >> 3) & 1) * 8;
                    ldmatrix_x4(b, Kb + key * LD + col);
                    mma_bf16(sc[2 * np], qf[kd], b[0], b[1]);
                    mma_bf16(sc[2 * np + 1], qf[kd], b[2], b[3]);
                }
            }

            /* Mask, scale into the exp2 domain, online softmax per row. */
#pragma unroll
            for (int h = 0; h < 2; h++) {
                float mx = -INFINITY;
#pragma unroll
                for (int n = 0; n < NS; n++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        int key = kt * BN + n * 8 + 2 * tq + e;
                        float v = key <= lim[h] ? sc[n][2 * h + e] * sl2 : -INFINITY;
                        sc[n][2 * h + e] = v;
                        mx = fmaxf(mx, v);
                    }
                /* the four lanes of a quad hold the same row */
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                float m_new = fmaxf(row_max[h], mx);
                /* No key yet for this row: keep everything at 0 (and avoid inf - inf). */
                float base = m_new == -INFINITY ? 0.0f : m_new;
                float alpha = m_new == -INFINITY ? 1.0f : exp2f(row_max[h] - m_new);
                row_max[h] = m_new;
                float sum = 0;
#pragma unroll
                for (int n = 0; n < NS; n++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        float p = exp2f(sc[n][2 * h + e] - base);
                        sc[n][2 * h + e] = p;
                        sum += p;
                    }
                row_sum[h] = row_sum[h] * alpha + sum;   /* this lane's share; the quad is summed at the end */
#pragma unroll
                for (int d = 0; d < ND; d++) {
                    o[d][2 * h] *= alpha;
                    o[d][2 * h + 1] *= alpha;
                }
            }

            /* O += P V: P's accumulator layout is the A fragment of the next mma. */
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++) {
                uint32_t pa[4] = {rm_pack_bf16x2(sc[2 * kk][0], sc[2 * kk][1]),
                                  rm_pack_bf16x2(sc[2 * kk][2], sc[2 * kk][3]),
                                  rm_pack_bf16x2(sc[2 * kk + 1][0], sc[2 * kk + 1][1]),
                                  rm_pack_bf16x2(sc[2 * kk + 1][2], sc[2 * kk + 1][3])};
#pragma unroll
                for (int dp = 0; dp < HD / 16; dp++) {
                    /* transposed: keys 0-7 d 0-7, keys 8-15 d 0-7, keys 0-7 d 8-15, keys 8-15 d 8-15 */
                    uint32_t b[4];
                    int key = kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7), col = dp * 16 + (lane >> 4) * 8;
                    ldmatrix_x4_trans(b, Vb + key * LD + col);
                    mma_bf16(o[2 * dp], pa, b[0], b[1]);
                    mma_bf16(o[2 * dp + 1], pa, b[2], b[3]);
                }
            }
            __syncthreads();   /* step kt + 1 loads into the buffer just read */
        }
        if (n_kt == 0) cp_async_wait<0>();

        /* out = O / l, the row sum completed across the quad. */
#pragma unroll
        for (int h = 0; h < 2; h++) {
            float l = row_sum[h];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            int m = t.m0 + r_lo + 8 * h;
            if (m >= t.n_rows) continue;
            float inv = l > 0 ? 1.0f / l : 0.0f;
            uint16_t *dst = a.out + (size_t)(t.q0 + m / G) * a.out_stride + (size_t)(g * G + m % G) * HD + 2 * tq;
#pragma unroll
            for (int d = 0; d < ND; d++)
                *(uint32_t *)(dst + d * 8) = rm_pack_bf16x2(o[d][2 * h] * inv, o[d][2 * h + 1] * inv);
        }
        __syncthreads();   /* the next sequence reuses the shared tiles */
    }
}

/* ================================================================ generic path: CUDA cores */

#define GEN_BM 32              /* rows per block */
#define GEN_BN 32              /* keys per step: one per lane */
#define GEN_RPW (GEN_BM / ATTN_WARPS)

/* Shared row length of K (bf16): an odd number of 32-bit words, so the 32
 * lanes reading 32 different keys at the same dimension hit 32 banks. */
__host__ __device__ __forceinline__ int gen_k_ld(int hd) { return (hd / 2) % 2 ? hd : hd + 2; }
static size_t gen_smem(int hd) {
    return ((size_t)GEN_BM * hd + (size_t)GEN_BN * gen_k_ld(hd) + (size_t)GEN_BN * hd) * sizeof(uint16_t);
}

/* NP: pairs of output dimensions per lane, head_dim <= 64 * NP. */
template <int NP>
__global__ void __launch_bounds__(ATTN_THREADS) attention_generic_kernel(const rm_cu_attn a) {
    extern __shared__ __align__(16) uint16_t smem[];
    const int HD = a.head_dim, HALF = HD / 2, KLD = gen_k_ld(HD);
    uint16_t *Qs = smem;                    /* [GEN_BM][HD] */
    uint16_t *Ks = Qs + GEN_BM * HD;        /* [GEN_BN][KLD] */
    uint16_t *Vs = Ks + GEN_BN * KLD;       /* [GEN_BN][HD] */

    const int G = a.n_heads / a.n_kv_heads, g = blockIdx.y;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const float sl2 = a.scale * LOG2E;

    for (int s = blockIdx.z; s < a.n_seqs; s += gridDim.z) {
        seq_tile t;
        if (!seq_tile_init(&t, a, s, G, GEN_BM)) continue;
        const int n_kt = (t.key_end + GEN_BN - 1) / GEN_BN;

        for (int i = threadIdx.x; i < GEN_BM * HD; i += ATTN_THREADS) {
            int r = i / HD, d = i % HD, m = t.m0 + r;
            Qs[i] = m < t.n_rows
                        ? a.q[(size_t)(t.q0 + m / G) * a.q_stride + (size_t)(g * G + m % G) * HD + d]
                        : (uint16_t)0;
        }
        int lim[GEN_RPW];
        float row_max[GEN_RPW], row_sum[GEN_RPW], o[GEN_RPW][NP][2];
#pragma unroll
        for (int rr = 0; rr < GEN_RPW; rr++) {
            lim[rr] = row_key_limit(t, t.m0 + warp * GEN_RPW + rr, G);
            row_max[rr] = -INFINITY;
            row_sum[rr] = 0;
#pragma unroll
            for (int p = 0; p < NP; p++) o[rr][p][0] = o[rr][p][1] = 0;
        }

        for (int kt = 0; kt < n_kt; kt++) {
            __syncthreads();   /* Q is written; the previous tile is consumed */
            for (int i = threadIdx.x; i < GEN_BN * HD; i += ATTN_THREADS) {
                int j = i / HD, d = i % HD, key = kt * GEN_BN + j;
                uint16_t kv = 0, vv = 0;
                if (key < t.key_end) {
                    size_t off = (size_t)(uint32_t)t.key_rows[key] * a.kv_stride + (size_t)g * HD + d;
                    kv = a.k[off];
                    vv = a.v[off];
                }
                Ks[j * KLD + d] = kv;
                Vs[i] = vv;
            }
            __syncthreads();
#pragma unroll
            for (int rr = 0; rr < GEN_RPW; rr++) {
                if (lim[rr] < kt * GEN_BN) continue;   /* no key of this tile for the row (warp-uniform) */
                const uint32_t *qw = (const uint32_t *)(Qs + (warp * GEN_RPW + rr) * HD);
                const uint32_t *kw = (const uint32_t *)(Ks + lane * KLD);
                float dot = 0;
                for (int d2 = 0; d2 < HALF; d2++) {
                    uint32_t qp = qw[d2], kp = kw[d2];
                    dot += rm_bf16_f32((uint16_t)qp) * rm_bf16_f32((uint16_t)kp);
                    dot += rm_bf16_f32((uint16_t)(qp >> 16)) * rm_bf16_f32((uint16_t)(kp >> 16));
                }
                int key = kt * GEN_BN + lane;
                float sv = key <= lim[rr] ? dot * sl2 : -INFINITY;
                /* key kt * BN (lane 0) is valid, so the max is finite */
                float m_new = fmaxf(row_max[rr], rm_warp_max(sv));
                float alpha = exp2f(row_max[rr] - m_new);
                float p = exp2f(sv - m_new);
                row_max[rr] = m_new;
                row_sum[rr] = row_sum[rr] * alpha + rm_warp_sum(p);
#pragma unroll
                for (int q = 0; q < NP; q++) {
                    o[rr][q][0] *= alpha;
                    o[rr][q][1] *= alpha;
                }
                for (int j = 0; j < GEN_BN; j++) {
                    float pj = __shfl_sync(0xffffffffu, p, j);
                    const uint32_t *vw = (const uint32_t *)(Vs + j * HD);
#pragma unroll
                    for (int q = 0; q < NP; q++) {
                        int d2 = lane + 32 * q;
                        if (d2 < HALF) {
                            uint32_t vp = vw[d2];
                            o[rr][q][0] += pj * rm_bf16_f32((uint16_t)vp);
                            o[rr][q][1] += pj * rm_bf16_f32((uint16_t)(vp >> 16));
                        }
                    }
                }
            }
        }

#pragma unroll
        for (int rr = 0; rr < GEN_RPW; rr++) {
            int m = t.m0 + warp * GEN_RPW + rr;
            if (m >= t.n_rows) continue;
            float inv = row_sum[rr] > 0 ? 1.0f / row_sum[rr] : 0.0f;
            uint16_t *dst = a.out + (size_t)(t.q0 + m / G) * a.out_stride + (size_t)(g * G + m % G) * HD;
#pragma unroll
            for (int q = 0; q < NP; q++) {
                int d2 = lane + 32 * q;
                if (d2 < HALF) {
                    dst[2 * d2] = rm_f32_bf16(o[rr][q][0] * inv);
                    dst[2 * d2 + 1] = rm_f32_bf16(o[rr][q][1] * inv);
                }
            }
        }
        __syncthreads();   /* the next sequence reuses the shared tiles */
    }
}

/* ================================================================ launchers */

/* Checks the description; 1 = launch, 0 = nothing to do, -1 = invalid. */
static int attn_check(const rm_cu_attn *a, int rows_per_tile, dim3 *grid) {
    if (!a || a->n_seqs < 0 || a->max_q < 0) return -1;
    if (a->n_seqs == 0 || a->max_q == 0) return 0;
    if (a->n_heads <= 0 || a->n_kv_heads <= 0 || a->n_heads % a->n_kv_heads != 0) return -1;
    if (a->head_dim <= 0 || a->head_dim % 2 != 0 || a->head_dim > ATTN_MAX_HEAD_DIM) return -1;
    if ((unsigned)a->n_kv_heads > RM_GRID_YZ_MAX) return -1;
    if (!a->q || !a->k || !a->v || !a->out || !a->q_begin || !a->q_pos0 || !a->key_off || !a->key_rows) return -1;
    /* rows of one sequence (n_q * G) must fit an int, with a tile to spare */
    size_t G = (size_t)(a->n_heads / a->n_kv_heads), rows = (size_t)a->max_q * G;
    if (rows > (size_t)0x7fffffff - 256) return -1;
    *grid = dim3((unsigned)rm_ceil_div(rows, (size_t)rows_per_tile), (unsigned)a->n_kv_heads,
                 rm_grid_yz((size_t)a->n_seqs));
    return 1;
}

template <int HD> static cudaError_t launch_mma(const rm_cu_attn *a, dim3 grid, cudaStream_t stream) {
    size_t smem = mma_cfg<HD>::SMEM;
    cudaError_t e = cudaFuncSetAttribute(attention_mma_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)smem);
    if (e != cudaSuccess) return e;
    attention_mma_kernel<HD><<<grid, ATTN_THREADS, smem, stream>>>(*a);
    return rm_launch_status();
}

template <int NP> static cudaError_t launch_generic(const rm_cu_attn *a, dim3 grid, cudaStream_t stream) {
    size_t smem = gen_smem(a->head_dim);
    cudaError_t e = cudaFuncSetAttribute(attention_generic_kernel<NP>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)smem);
    if (e != cudaSuccess) return e;
    attention_generic_kernel<NP><<<grid, ATTN_THREADS, smem, stream>>>(*a);
    return rm_launch_status();
}

extern "C" cudaError_t rm_cu_attention_generic(const rm_cu_attn *a, cudaStream_t stream) {
    dim3 grid;
    int c = attn_check(a, GEN_BM, &grid);
    if (c <= 0) return c == 0 ? cudaSuccess : cudaErrorInvalidValue;
    switch ((a->head_dim + 63) / 64) {
    case 1: return launch_generic<1>(a, grid, stream);
    case 2: return launch_generic<2>(a, grid, stream);
    case 3: return launch_generic<3>(a, grid, stream);
    default: return launch_generic<4>(a, grid, stream);
    }
}

/* The fast path copies 16-byte chunks: every row start must be 16-byte aligned. */
static int rows_aligned16(const void *p, size_t stride) {
    return ((uintptr_t)p % 16) == 0 && (stride * sizeof(uint16_t)) % 16 == 0;
}

extern "C" cudaError_t rm_cu_attention(const rm_cu_attn *a, cudaStream_t stream) {
    if (a && (a->head_dim == 64 || a->head_dim == 128) && rows_aligned16(a->q, a->q_stride) &&
        rows_aligned16(a->k, a->kv_stride) && rows_aligned16(a->v, a->kv_stride) &&
        rows_aligned16(a->out, a->out_stride)) {
        dim3 grid;
        int c = attn_check(a, mma_cfg<64>::BM, &grid);
        if (c <= 0) return c == 0 ? cudaSuccess : cudaErrorInvalidValue;
        return a->head_dim == 64 ? launch_mma<64>(a, grid, stream) : launch_mma<128>(a, grid, stream);
    }
    return rm_cu_attention_generic(a, stream);
}
