/*
 * kernels.h - the launchers of the CUDA kernels (kernels/, one .cu per op
 * family): the contract between the kernels and the CUDA engine (lib/cuda/).
 * Plain C (only <cuda_runtime_api.h>), so host code compiled by gcc can call
 * them.
 *
 * Conventions:
 *  - bf16 values travel as uint16_t (the bit pattern of __nv_bfloat16).
 *  - The residual stream is fp32; what feeds a GEMM is bf16 (or FP8 after
 *    rm_cu_quantize_fp8_rows); every accumulation is fp32.
 *  - Matrices are row-major; a *_stride is the distance between rows in
 *    elements, so a kernel can work on columns of a fused output (QKV).
 *  - Every launcher enqueues on `stream`, does not synchronise, and returns the
 *    launch's cudaError_t (cudaSuccess for an empty problem).
 *  - Each op has a CPU twin of the same name in lib/cpu_ops.c
 *    (rm_cu_X <-> rm_cpu_X) that tests/test_kernels.c compares it against.
 */
#ifndef RM_KERNELS_H
#define RM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* embedding.cu: x[r] = fp32(embed[tokens[r]]) for n_rows rows of `hidden`. */
cudaError_t rm_cu_embedding(float *x, const uint16_t *embed, const int32_t *tokens, size_t n_rows,
                            size_t hidden, cudaStream_t stream);

/* rmsnorm.cu: the residual add fused with the RMSNorm that follows it.
 * When delta is not NULL: x[r] += fp32(delta[r]) (delta rows at delta_stride).
 * Then y = x[r] * rsqrt(mean(x[r]^2) + eps) computed in fp32, and
 * out[r] = bf16(bf16(y) * w) (transformers' LlamaRMSNorm in bf16: normalise in
 * fp32, cast, multiply by the bf16 weight), or, when out_f32 is given instead
 * of out, out_f32[r] = y * fp32(w) (the final norm, read by the heads). */
cudaError_t rm_cu_add_rmsnorm(float *x, const uint16_t *delta, size_t delta_stride, const uint16_t *w,
                              uint16_t *out, float *out_f32, size_t n_rows, size_t dim, float eps,
                              cudaStream_t stream);

/* qknorm.cu: Qwen3's per-head RMSNorm in place: each row holds n_heads vectors
 * of head_dim at x + r * stride; same arithmetic as rm_cu_add_rmsnorm's bf16 out. */
cudaError_t rm_cu_head_rmsnorm(uint16_t *x, size_t stride, const uint16_t *w, size_t n_rows, size_t n_heads,
                               size_t head_dim, float eps, cudaStream_t stream);

/* bias.cu: y[r][c] = bf16(fp32(y[r][c]) + fp32(b[c])) for c < cols (Qwen2's q/k/v biases). */
cudaError_t rm_cu_add_bias(uint16_t *y, size_t stride, const uint16_t *b, size_t n_rows, size_t cols,
                           cudaStream_t stream);

/* reduce.cu: dst[i] = srcs[0][i] + srcs[1][i] + ... for i in [offset, offset + count): summed in fp32 in
 * that order, rounded to bf16 once when bf16 is 1 (else fp32 throughout); the sum of tensor-parallel ranks
 * sharing one GPU. 1 to RM_CU_SUM_MAX_SRCS buffers; dst may be one of them. */
#define RM_CU_SUM_MAX_SRCS 16
cudaError_t rm_cu_sum_ranks(void *dst, const void *const *srcs, int n_srcs, size_t offset, size_t count, int bf16,
                            cudaStream_t stream);

/* rope.cu: rotates n_heads vectors of head_dim in each row in place (rotate_half
 * pairs (i, i + head_dim/2)); row r is at position pos[r]. The angle is
 * fp32((float)pos * inv_freq[i]) and cos/sin are taken in fp32, as transformers
 * does (inv_freq from rm_cpu_rope_inv_freq: default and llama3 types), then the
 * rotation is done in fp32 and rounded to bf16 once. */
cudaError_t rm_cu_rope(uint16_t *x, size_t stride, size_t n_rows, size_t n_heads, size_t head_dim,
                       const int32_t *pos, const float *inv_freq, cudaStream_t stream);

/* swiglu.cu: out[r][i] = bf16(silu(fp32(gate[r][i])) * fp32(up[r][i])), where
 * gate and up are the two halves of a fused row: gate_up + r * stride holds
 * gate[0 .. ffn) then up[0 .. ffn). out rows are ffn wide (dense). */
cudaError_t rm_cu_silu_mul(uint16_t *out, const uint16_t *gate_up, size_t stride, size_t n_rows, size_t ffn,
                           cudaStream_t stream);

/* fp8.cu: row-wise e4m3 quantisation of bf16 rows, bit for bit
 * rm_cpu_quantize_fp8_rows (lib/cpu_ops.h) applied to the rows converted to
 * fp32: scale = amax / 448 (1 when 0 or not finite), q = e4m3(x / scale),
 * round to nearest even, saturating. Weights (one scale per output channel)
 * and activations (one per token) both use it. */
cudaError_t rm_cu_quantize_fp8_rows(const uint16_t *x, size_t stride, size_t n_rows, size_t cols, uint8_t *q,
                                    float *scales, cudaStream_t stream);

/* gather.cu: dst[i] = src[rows[i]] for n rows of cols floats (fp32), e.g. the
 * residual rows of the last tokens before the last layer's MLP and the heads. */
cudaError_t rm_cu_gather_rows(float *dst, const float *src, const int32_t *rows, size_t n, size_t cols,
                              cudaStream_t stream);

/* attention.cu: causal grouped-query attention over a packed batch with
 * prefix sharing, flash-style (online softmax, the score matrix never
 * materialised), fp32 accumulation, bf16 in and out.
 * Sequence s owns query rows q_begin[s] .. q_begin[s + 1] (rows of q and out);
 * its first query is at position q_pos0[s], the next at q_pos0[s] + 1, ...
 * Query at position p attends keys at positions 0 .. p of its sequence; the
 * key/value of position j of sequence s is row key_rows[key_off[s] + j] of k
 * and v, so a shared prefix points at the parent's rows (computed once).
 * Head h of the query uses kv head h / (n_heads / n_kv_heads).
 * head_dim 64 and 128 take the fast path; any even head_dim <= 256 works. */
typedef struct rm_cu_attn {
    const uint16_t *q;              /* [rows, q_stride], head h at column h * head_dim */
    const uint16_t *k, *v;          /* [rows, kv_stride], kv head g at column g * head_dim */
    uint16_t *out;                  /* [rows, out_stride] */
    size_t q_stride, kv_stride, out_stride;
    int n_heads, n_kv_heads, head_dim;
    float scale;                    /* 1 / sqrt(head_dim) */
    int n_seqs;
    int max_q;                      /* most query rows of one sequence */
    int max_keys;                   /* most keys of one sequence */
    const int32_t *q_begin;         /* [n_seqs + 1], device */
    const int32_t *q_pos0;          /* [n_seqs], device */
    const int32_t *key_off;         /* [n_seqs + 1], device */
    const int32_t *key_rows;        /* [key_off[n_seqs]], device */
} rm_cu_attn;
cudaError_t rm_cu_attention(const rm_cu_attn *a, cudaStream_t stream);
/* The same through the generic CUDA-core path whatever head_dim and alignment
 * (rm_cu_attention takes it when the fast path does not apply). Added by
 * the kernels branch: tests hold both paths to the CPU twin, and an engine
 * can fall back to it should the tensor-core path misbehave on a device. */
cudaError_t rm_cu_attention_generic(const rm_cu_attn *a, cudaStream_t stream);

/* random.cu: the counter-based generator behind random models (benchmarks,
 * the 70B-shaped test): value i of tensor `tensor` is
 * rm_random_value(seed, tensor, i) (lib/random.h), written as bf16 scaled by
 * `scale`, so the CPU and the GPU build the same model without a file. */
cudaError_t rm_cu_random_bf16(uint16_t *out, size_t n, uint64_t seed, uint64_t tensor, float scale,
                              cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
