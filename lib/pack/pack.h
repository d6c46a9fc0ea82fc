/*
 * pack.h - the model pack: a checkpoint pre-sharded for a tensor-parallel
 * size, one file per rank, each tensor compressed with zstd and checked
 * with XXH64, FP8 already quantised when asked (nimreward-pack).
 *
 *   OUT_DIR/nimreward-pack.json          the manifest (rm_load recognises a pack by it)
 *   OUT_DIR/rank-00000-of-00002.nrpack   rank 0's tensors: its slices, plus the replicated ones
 *   OUT_DIR/config.json, tokenizer.json, tokenizer_config.json, chat_template.jinja, ... copied
 *
 * A rank file: the 8-byte magic "NRPACK01", the data (zstd frames), the
 * index (JSON: each tensor's name, dtype, shape, byte-plane split, and per
 * chunk its offset, stored size, and the XXH64 of its raw bytes and of its
 * stored bytes), then a 24-byte trailer (index offset, index length,
 * "NRPKEND1"). The manifest records each file's size and its index's XXH64,
 * so every byte of a rank file is covered by a checksum or a check.
 * docs/parallel.md has the details.
 *   pack_format.c  names, the layout constants, the byte-plane transform
 *   pack_write.c   checkpoint -> pack
 *   pack_read.c    pack -> a rank's tensors
 */
#ifndef RM_PACK_H
#define RM_PACK_H

#include "common.h"
#include "config.h"
#include "weights.h"

#define RM_PACK_MANIFEST "nimreward-pack.json"
#define RM_PACK_MAGIC "NRPACK01"
#define RM_PACK_END_MAGIC "NRPKEND1"
#define RM_PACK_TRAILER_BYTES 24
#define RM_PACK_VERSION 1
/* Raw bytes per compressed chunk: big enough for zstd to find its ratio,
 * small enough that one tensor (an embedding of gigabytes) spreads over
 * every thread when decompressed. */
#define RM_PACK_CHUNK_BYTES ((size_t)4 << 20)

/* How a tensor is stored. */
typedef enum rm_pack_elem { RM_PACK_BF16 = 0, RM_PACK_F32 = 1, RM_PACK_F8_E4M3 = 2 } rm_pack_elem;

RM_INTERNAL const char *rm_pack_elem_name(rm_pack_elem d);        /* "BF16", "F32", "F8_E4M3" */
RM_INTERNAL int rm_pack_elem_parse(const char *s, rm_pack_elem *out);
RM_INTERNAL size_t rm_pack_elem_size(rm_pack_elem d);
/* "rank-00001-of-00004.nrpack" into buf (n bytes). */
RM_INTERNAL void rm_pack_rank_file(char *buf, size_t n, int rank, int tp);

/* The byte-plane split: n values of `width` bytes become `width` planes
 * (all first bytes, then all second bytes, ...): bf16's sign-and-exponent
 * bytes then sit together and compress better than interleaved with the
 * mantissa bytes. rm_pack_planes_merge is its inverse. */
RM_INTERNAL void rm_pack_planes_split(uint8_t *dst, const uint8_t *src, size_t n, size_t width);
RM_INTERNAL void rm_pack_planes_merge(uint8_t *dst, const uint8_t *src, size_t n, size_t width);

/* ------------------------------------------------ writing (nimreward-pack) */

typedef struct rm_pack_options {
    int tp;                     /* ranks; >= 1 */
    rm_dtype dtype;             /* RM_DTYPE_BF16 or RM_DTYPE_FP8 (projections e4m3 with per-row scales) */
    int n_threads;              /* 0 = all online cores */
    int level;                  /* zstd level; 0 = 3 */
    int planes;                 /* -1 = per tensor, kept when smaller; 0 = never; 1 = always */
} rm_pack_options;

typedef struct rm_pack_stats {
    uint64_t tensors;           /* over all ranks */
    uint64_t tensors_planes;    /* of which stored byte-plane split */
    uint64_t raw_bytes;         /* the tensors' bytes as stored (bf16 / fp8 / f32), before compression */
    uint64_t stored_bytes;      /* the rank files' bytes */
    double seconds;
} rm_pack_stats;

/* Writes the pack of the model in model_dir to out_dir (created if needed;
 * it must not be model_dir). Errors name the file and the tensor. */
RM_INTERNAL rm_status rm_pack_write(const char *model_dir, const char *out_dir, const rm_pack_options *o,
                                    rm_pack_stats *stats, rm_err *err);

/* ------------------------------------------------ reading */

typedef struct rm_pack rm_pack;

/* 1 when dir holds a pack manifest. */
RM_INTERNAL int rm_pack_present(const char *dir);
/* Reads and validates the manifest. */
RM_INTERNAL rm_status rm_pack_open(rm_pack **out, const char *dir, rm_err *err);
RM_INTERNAL void rm_pack_close(rm_pack *p);
RM_INTERNAL int rm_pack_tp(const rm_pack *p);
RM_INTERNAL uint64_t rm_pack_file_bytes(const rm_pack *p, int rank);   /* rank's file, as the manifest says */
RM_INTERNAL rm_dtype rm_pack_dtype(const rm_pack *p);    /* RM_DTYPE_BF16 or RM_DTYPE_FP8 */

/* What rm_load asked for against what the pack holds: tp 0 takes the
 * pack's; another tp is refused; dtype AUTO or the pack's is taken, FP32 on
 * a bf16 pack too (the CPU computes bf16 weights in fp32, as it does from the
 * checkpoint); any other is refused; an FP8 pack on the CPU is refused.
 * Errors name the manifest. *tp_out is the tp to run. */
RM_INTERNAL rm_status rm_pack_check_request(const rm_pack *p, int tp, int dtype, rm_device device, int *tp_out,
                                            rm_err *err);

/* One rank's tensors, decompressed and verified. */
typedef struct rm_pack_tensor {
    char *name;
    rm_pack_elem dtype;
    int n_dims;
    int64_t shape[4];
    void *data;                 /* inside blob, 64-byte aligned */
    size_t n_bytes;
} rm_pack_tensor;

typedef struct rm_pack_rank {
    rm_pack_tensor *tensors;
    size_t n;
    void *blob;
    size_t blob_bytes;
} rm_pack_rank;

/* Opens only rank `rank`'s file, checks its size, trailer and index
 * against the manifest, then decompresses every chunk over n_threads
 * threads (0 = all cores), verifying each chunk's XXH64. Errors name the
 * file, and the tensor and chunk when one is at fault. */
RM_INTERNAL rm_status rm_pack_read_rank(const rm_pack *p, int rank, int n_threads, rm_pack_rank *out, rm_err *err);
RM_INTERNAL void rm_pack_rank_free(rm_pack_rank *r);

/* The same as an rm_weights: bf16 / f32 tensors, and an FP8 pack's e4m3
 * projections with their "<name>_scale" tensors (RM_DT_F8_E4M3, which only
 * the CUDA engine takes). */
RM_INTERNAL rm_status rm_pack_load_rank(const rm_pack *p, int rank, int n_threads, rm_weights **out, rm_err *err);

#endif
