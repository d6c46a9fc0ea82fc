/*
 * nimreward-pack - write a model as a pack pre-sharded for tensor
 * parallelism: one zstd-compressed, checksummed file per rank, FP8 already
 * quantised when asked, config and tokenizer copied alongside. rm_load and
 * every tool load the pack directory like a model directory.
 *
 *   nimreward-pack MODEL_DIR OUT_DIR --tp N [--dtype bf16|fp8] [--threads N]
 *                  [--level N] [--planes auto|on|off]
 *   nimreward-pack --verify PACK_DIR [--threads N]
 *
 * Prints one summary line on stdout (JSON): tensors, bytes before and after
 * compression, seconds. --verify reads every rank file as rm_load would
 * (checksums included) and prints one line per rank with the rate.
 * Exit 0 on success, 1 on failure, 2 on a usage error.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli_common.h"
#include "pack/pack.h"

static void usage(FILE *f) {
    fputs("usage: nimreward-pack MODEL_DIR OUT_DIR --tp N [--dtype bf16|fp8] [--threads N] [--level N]\n"
          "                      [--planes auto|on|off]\n"
          "       nimreward-pack --verify PACK_DIR [--threads N]\n"
          "Writes OUT_DIR/nimreward-pack.json and one rank-NNNNN-of-NNNNN.nrpack file per rank, and copies the\n"
          "config, tokenizer and template. --dtype fp8 stores the projections as e4m3 with one scale per\n"
          "output row (scored on CUDA only). --level is zstd's (default 3); --planes splits each value's\n"
          "bytes into planes before compression (auto: per tensor, when it makes it smaller).\n", f);
}

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* Reads every rank as rm_load does: decompression and checksums, timed. */
static int verify(const char *dir, int n_threads) {
    rm_err err = {0};
    rm_pack *p = NULL;
    if (rm_pack_open(&p, dir, &err) != RM_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        return CLI_FATAL;
    }
    int rc = CLI_OK;
    for (int r = 0; r < rm_pack_tp(p) && rc == CLI_OK; r++) {
        rm_pack_rank pr;
        struct timespec c0, c1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        double t0 = seconds();
        if (rm_pack_read_rank(p, r, n_threads, &pr, &err) != RM_OK) {
            fprintf(stderr, "error: %s\n", err.msg);
            rc = CLI_FATAL;
            break;
        }
        double dt = seconds() - t0;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        double cpu = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) * 1e-9;   /* all threads */
        uint64_t raw = 0;
        for (size_t i = 0; i < pr.n; i++) raw += pr.tensors[i].n_bytes;
        /* The CPU-time rate is what one core does, whatever else shares the machine. */
        printf("{\"rank\": %d, \"tensors\": %zu, \"raw_bytes\": %llu, \"stored_bytes\": %llu, \"seconds\": %.3f, "
               "\"cpu_seconds\": %.3f, \"raw_gb_per_s\": %.3f, \"raw_gb_per_cpu_s\": %.3f}\n", r, pr.n,
               (unsigned long long)raw, (unsigned long long)rm_pack_file_bytes(p, r), dt, cpu, dt > 0 ? raw / dt / 1e9 : 0,
               cpu > 0 ? raw / cpu / 1e9 : 0);
        rm_pack_rank_free(&pr);
    }
    rm_pack_close(p);
    return rc;
}

int main(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *check = NULL;
    rm_pack_options o = {.tp = 0, .dtype = RM_DTYPE_BF16, .n_threads = 0, .level = 3, .planes = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return CLI_OK;
        }
        if (a[0] != '-') {
            if (!in) in = a;
            else if (!out) out = a;
            else return fprintf(stderr, "error: unexpected argument %s\n", a), usage(stderr), CLI_USAGE;
            continue;
        }
        if (!v) return fprintf(stderr, "error: %s needs a value\n", a), CLI_USAGE;
        long n = cli_parse_count(v);
        if (!strcmp(a, "--verify")) {
            check = v;
        } else if (!strcmp(a, "--tp")) {
            if (n < 1 || n > 4096) return fprintf(stderr, "error: --tp needs a rank count from 1 to 4096\n"), CLI_USAGE;
            o.tp = (int)n;
        } else if (!strcmp(a, "--threads")) {
            if (n < 0 || n > 4096) return fprintf(stderr, "error: --threads needs a count from 0 to 4096\n"), CLI_USAGE;
            o.n_threads = (int)n;
        } else if (!strcmp(a, "--level")) {
            if (n < 1 || n > 22) return fprintf(stderr, "error: --level needs a zstd level from 1 to 22\n"), CLI_USAGE;
            o.level = (int)n;
        } else if (!strcmp(a, "--dtype")) {
            if (!strcmp(v, "bf16")) o.dtype = RM_DTYPE_BF16;
            else if (!strcmp(v, "fp8")) o.dtype = RM_DTYPE_FP8;
            else return fprintf(stderr, "error: --dtype must be bf16 or fp8, not \"%s\"\n", v), CLI_USAGE;
        } else if (!strcmp(a, "--planes")) {
            if (!strcmp(v, "auto")) o.planes = -1;
            else if (!strcmp(v, "on")) o.planes = 1;
            else if (!strcmp(v, "off")) o.planes = 0;
            else return fprintf(stderr, "error: --planes must be auto, on or off, not \"%s\"\n", v), CLI_USAGE;
        } else {
            fprintf(stderr, "error: unknown option %s\n", a);
            usage(stderr);
            return CLI_USAGE;
        }
        i++;
    }
    if (check) return in ? (fprintf(stderr, "error: --verify takes only a pack directory\n"), CLI_USAGE)
                         : verify(check, o.n_threads);
    if (!in || !out || !o.tp) {
        usage(stderr);
        return CLI_USAGE;
    }
    rm_err err = {0};
    rm_pack_stats s;
    if (rm_pack_write(in, out, &o, &s, &err) != RM_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        return CLI_FATAL;
    }
    double ratio = s.stored_bytes ? (double)s.raw_bytes / (double)s.stored_bytes : 0;
    printf("{\"tp\": %d, \"dtype\": \"%s\", \"tensors\": %llu, \"tensors_byte_planes\": %llu, \"raw_bytes\": %llu, "
           "\"stored_bytes\": %llu, \"ratio\": %.4f, \"seconds\": %.3f}\n", o.tp,
           o.dtype == RM_DTYPE_FP8 ? "fp8" : "bf16", (unsigned long long)s.tensors,
           (unsigned long long)s.tensors_planes, (unsigned long long)s.raw_bytes, (unsigned long long)s.stored_bytes,
           ratio, s.seconds);
    return CLI_OK;
}
