/*
 * test_pack.c - the model pack (lib/pack/, nimreward-pack):
 *  - the byte-plane transform round-trips;
 *  - every tensor of every rank file is byte for byte the slice the
 *    tensor-parallel engine takes from the checkpoint, whatever the
 *    decompression thread count;
 *  - a bf16 pack scores bitwise as the checkpoint it was made from, --tp 1
 *    and 2 (through the API and at the engine);
 *  - FP8: each projection is rm_cpu_quantize_fp8_rows of the rank's slice in bf16,
 *    and loading the pack on the CPU is refused;
 *  - refused, naming the file and the tensor: a flipped byte in a tensor's
 *    data (checksum mismatch or zstd's error), in the index, a truncated
 *    file, a pack for another tp, another dtype, a manifest that lies;
 *  - the nimreward-pack tool's exit codes.
 */
#define _XOPEN_SOURCE 700   /* nftw */
#define _DEFAULT_SOURCE
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cpu_ops.h"
#include "model.h"
#include "pack/pack.h"
#include "parallel/tp.h"
#include "test.h"

#define NOW "2024-07-26T12:00:00"

static char tmp_root[4096];
static unsigned long long seed;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static const char *path_in(const char *dir, const char *name) {
    static char buf[8192];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

static const char *model_dir(const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s", fixture("models/"));
    strncat(buf, name, sizeof buf - strlen(buf) - 1);
    return buf;
}

/* Writes the pack of fixture `model` for tp into tmp_root/<name>. */
static const char *make_pack(const char *model, const char *name, int tp, rm_dtype dt, int planes) {
    static char out[4096];
    snprintf(out, sizeof out, "%s/%s", tmp_root, name);
    nftw(out, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    rm_pack_options o = {.tp = tp, .dtype = dt, .n_threads = 2, .level = 3, .planes = planes};
    rm_pack_stats s;
    rm_err err = {0};
    CHECK(rm_pack_write(model_dir(model), out, &o, &s, &err) == RM_OK, "pack %s tp %d: %s", model, tp, err.msg);
    CHECK(s.raw_bytes > 0 && s.stored_bytes > 0 && s.tensors > 0, "stats of %s", name);
    fprintf(stderr, "pack %s tp %d %s planes %d: %llu tensors (%llu split), %.2f MB -> %.2f MB (ratio %.3f), %.2f s\n",
            model, tp, dt == RM_DTYPE_FP8 ? "fp8" : "bf16", planes, (unsigned long long)s.tensors,
            (unsigned long long)s.tensors_planes, s.raw_bytes / 1e6, s.stored_bytes / 1e6,
            (double)s.raw_bytes / (double)s.stored_bytes, s.seconds);
    return out;
}

/* ------------------------------------------------ byte planes */

static void test_planes(void) {
    unsigned long long x = seed;
    for (size_t width = 1; width <= 4; width *= 2)
        for (size_t n = 0; n < 300; n += 37) {
            uint8_t src[1200], mid[1200], back[1200];
            for (size_t i = 0; i < n * width; i++) x = x * 6364136223846793005ULL + 1, src[i] = (uint8_t)(x >> 56);
            rm_pack_planes_split(mid, src, n, width);
            int placed = 1;
            for (size_t i = 0; i < n; i++)
                for (size_t b = 0; b < width; b++) placed &= mid[b * n + i] == src[i * width + b];
            rm_pack_planes_merge(back, mid, n, width);
            CHECK(placed && memcmp(back, src, n * width) == 0, "planes width %zu, %zu values", width, n);
        }
}

/* ------------------------------------------------ the pack's tensors are the shards' */

static void test_contents(const char *model, int tp) {
    char name[64];
    snprintf(name, sizeof name, "%s-tp%d", model, tp);
    const char *dir = make_pack(model, name, tp, RM_DTYPE_BF16, -1);
    rm_err err = {0};
    rm_config cfg;
    rm_weights *w = NULL;
    rm_model_weights mw;
    rm_pack *p = NULL;
    if (rm_config_load(&cfg, path_in(model_dir(model), "config.json"), &err) || rm_weights_open(&w, model_dir(model), &err) ||
        rm_model_weights_bind(&mw, w, &cfg, &err) || rm_pack_open(&p, dir, &err)) {
        CHECK(0, "%s: %s", name, err.msg);
        return;
    }
    CHECK(rm_pack_tp(p) == tp && rm_pack_dtype(p) == RM_DTYPE_BF16, "%s: manifest tp %d", name, rm_pack_tp(p));
    for (int r = 0; r < tp; r++) {
        rm_shard *sh = NULL;
        rm_shard_source src = {&cfg, &mw, NULL};
        CHECK(rm_shard_load(&sh, &src, tp, r, 1, &err) == RM_OK, "shard: %s", err.msg);
        rm_pack_rank pr[3];
        int threads[3] = {1, 2, 5};
        for (int k = 0; k < 3; k++) CHECK(rm_pack_read_rank(p, r, threads[k], &pr[k], &err) == RM_OK, "read rank %d: %s", r, err.msg);
        /* Every tensor of the shard's weights is in the file, bytes equal. */
        size_t found = 0, bad = 0;
        for (size_t i = 0; i < pr[0].n; i++) {
            const rm_pack_tensor *t = &pr[0].tensors[i];
            const rm_tensor *want = NULL;
            const rm_model_weights *m = &sh->mw;
            const rm_tensor *all[] = {m->embed, m->final_norm, m->lm_head, m->score};
            for (size_t a = 0; a < 4 && !want; a++)
                if (all[a] && !strcmp(all[a]->name, t->name)) want = all[a];
            for (int64_t l = 0; l < m->n_layers && !want; l++) {
                const rm_layer_weights *L = &m->layers[l];
                const rm_tensor *lt[] = {L->attn_norm, L->wq, L->wk, L->wv, L->wo, L->bq, L->bk, L->bv, L->bo, L->q_norm,
                                         L->k_norm, L->mlp_norm, L->w_gate, L->w_up, L->w_down, L->b_gate, L->b_up, L->b_down};
                for (size_t a = 0; a < sizeof lt / sizeof *lt && !want; a++)
                    if (lt[a] && !strcmp(lt[a]->name, t->name)) want = lt[a];
            }
            if (!want) {
                CHECK(0, "%s rank %d: tensor %s not in the shard", name, r, t->name);
                continue;
            }
            found++;
            bad += t->dtype != RM_PACK_BF16 || t->n_bytes != want->n_bytes || memcmp(t->data, want->data, t->n_bytes) != 0 ||
                   t->shape[0] != want->shape[0] || (t->n_dims == 2 && t->shape[1] != want->shape[1]);
            for (int k = 1; k < 3; k++)
                bad += pr[k].n != pr[0].n || strcmp(pr[k].tensors[i].name, t->name) ||
                       memcmp(pr[k].tensors[i].data, t->data, t->n_bytes) != 0;
        }
        size_t expect = 2 + (mw.lm_head && mw.lm_head != mw.embed) + (mw.score != NULL);
        for (int64_t l = 0; l < mw.n_layers; l++) {
            const rm_layer_weights *L = &mw.layers[l];
            const rm_tensor *lt[] = {L->attn_norm, L->wq, L->wk, L->wv, L->wo, L->bq, L->bk, L->bv, L->bo, L->q_norm,
                                     L->k_norm, L->mlp_norm, L->w_gate, L->w_up, L->w_down, L->b_gate, L->b_up, L->b_down};
            for (size_t a = 0; a < sizeof lt / sizeof *lt; a++) expect += lt[a] != NULL;
        }
        CHECK(found == expect && found == pr[0].n, "%s rank %d: %zu tensors, the shard has %zu", name, r, found, expect);
        CHECK(!bad, "%s rank %d: %zu tensors differ from the shard's slices", name, r, bad);
        for (int k = 0; k < 3; k++) rm_pack_rank_free(&pr[k]);
        rm_shard_free(sh);
    }
    rm_pack_close(p);
    rm_model_weights_free(&mw);
    rm_weights_close(w);
    rm_config_free(&cfg);
}

/* ------------------------------------------------ scores: pack = checkpoint, bit for bit */

static int score_lines(rm_model *m, double *out, size_t n_out) {
    static const char *prompts[][2] = {
        {"What is 2+2?", "4"},
        {"Write a haiku about the sea.", "Waves fold into foam / the tide forgets every name / salt keeps the counting"},
        {"Why is the sky blue?", "Rayleigh scattering: shorter wavelengths scatter more in the atmosphere."},
    };
    size_t k = 0;
    for (size_t i = 0; i < 3; i++) {
        rm_scores *s = NULL;
        if (rm_score(m, prompts[i][0], prompts[i][1], &s) != RM_OK) return 0;
        for (size_t j = 0; j < s->n_scores && k < n_out; j++) out[k++] = s->values[j];
        rm_scores_free(s);
    }
    return (int)k;
}

static rm_model *load(const char *dir, int tp, int dtype, char *msg, size_t n, rm_status *st) {
    rm_params p;
    rm_params_init(&p);
    p.device = RM_DEVICE_CPU;
    p.tp = tp;
    p.dtype = dtype;
    p.n_threads = 2;
    p.now = NOW;
    rm_model *m = NULL;
    rm_status s = rm_load(dir, &p, &m, msg, n);
    if (st) *st = s;
    return m;
}

static void test_scores_bitwise(const char *model) {
    for (int tp = 1; tp <= 2; tp++) {
        char name[64], msg[1024];
        snprintf(name, sizeof name, "%s-tp%d", model, tp);
        const char *dir = make_pack(model, name, tp, RM_DTYPE_BF16, -1);
        char pack[4096];
        snprintf(pack, sizeof pack, "%s", dir);
        double a[32], b[32];
        /* tp 1: the checkpoint as it is served without tensor parallelism. */
        rm_model *m = load(model_dir(model), tp == 1 ? 0 : tp, RM_DTYPE_AUTO, msg, sizeof msg, NULL);
        int na = m ? score_lines(m, a, 32) : 0;
        CHECK(na > 0, "%s checkpoint: %s", name, m ? rm_errmsg(m) : msg);
        rm_free(m);
        m = load(pack, 0, RM_DTYPE_AUTO, msg, sizeof msg, NULL);   /* tp 0: the pack's */
        int nb = m ? score_lines(m, b, 32) : 0;
        CHECK(nb == na && memcmp(a, b, (size_t)na * sizeof *a) == 0, "%s: the pack's %d scores are not the checkpoint's",
              name, nb);
        if (m) CHECK(rm_model_dtype(m) == RM_DTYPE_FP32 && m->pack && rm_engine_tp_n_local(m->engine) == tp,
                     "%s: served fp32 by %d ranks", name, tp);
        rm_free(m);
        if (tp == 2 && strstr(model, "llama")) {   /* the same tp asked explicitly, and fp32 */
            m = load(pack, tp, RM_DTYPE_FP32, msg, sizeof msg, NULL);
            CHECK(m != NULL, "%s: tp %d, fp32 asked: %s", name, tp, msg);
            rm_free(m);
        }
    }
}

/* ------------------------------------------------ FP8 */

static void test_fp8(void) {
    const char *model = "tiny-qwen3-seqcls";
    const char *dir = make_pack(model, "fp8", 2, RM_DTYPE_FP8, -1);
    char pack[4096], msg[1024];
    snprintf(pack, sizeof pack, "%s", dir);
    rm_status st;
    rm_model *m = load(pack, 0, RM_DTYPE_AUTO, msg, sizeof msg, &st);
    CHECK(!m && st == RM_ERR_UNSUPPORTED && strstr(msg, "FP8 pack can only be scored on CUDA") &&
              strstr(msg, RM_PACK_MANIFEST), "FP8 on the CPU: %s", msg);
    rm_free(m);
    m = load(pack, 0, RM_DTYPE_BF16, msg, sizeof msg, &st);
    CHECK(!m && st == RM_ERR_INVALID_ARG && strstr(msg, "holds fp8 weights") && strstr(msg, "dtype is bf16"), "%s", msg);
    rm_free(m);

    rm_err err = {0};
    rm_config cfg;
    rm_weights *w = NULL;
    rm_model_weights mw;
    rm_pack *p = NULL;
    if (rm_config_load(&cfg, path_in(model_dir(model), "config.json"), &err) || rm_weights_open(&w, model_dir(model), &err) ||
        rm_model_weights_bind(&mw, w, &cfg, &err) || rm_pack_open(&p, pack, &err)) {
        CHECK(0, "fp8: %s", err.msg);
        return;
    }
    /* As weights: the projections e4m3, bound with their scales, as the CUDA
     * engine takes them; the CPU engine refuses them, naming one. */
    rm_weights *as_weights = NULL;
    rm_config rank_cfg;
    rm_model_weights rank_mw;
    rm_shard_config(&cfg, 2, 0, &rank_cfg);
    CHECK(rm_pack_load_rank(p, 0, 2, &as_weights, &err) == RM_OK && rm_model_weights_bind(&rank_mw, as_weights, &rank_cfg, &err) == RM_OK,
          "fp8 rank 0 as weights: %s", err.msg);
    if (as_weights && rank_mw.layers) {
        const rm_layer_weights *L0 = &rank_mw.layers[0];
        const rm_tensor *proj[7] = {L0->wq, L0->wk, L0->wv, L0->wo, L0->w_gate, L0->w_up, L0->w_down};
        int bound = 0;
        for (int k = 0; k < 7; k++)
            bound += proj[k]->dtype == RM_DT_F8_E4M3 && L0->scale[k] && L0->scale[k]->dtype == RM_DT_F32 &&
                     L0->scale[k]->shape[0] == proj[k]->shape[0];
        CHECK(bound == 7 && L0->attn_norm->dtype != RM_DT_F8_E4M3, "fp8: %d of 7 projections e4m3 with their scales", bound);
        rm_engine *cpu = NULL;
        CHECK(rm_engine_cpu.create(&cpu, &rank_cfg, &rank_mw, &(rm_engine_opts){.n_threads = 1, .dtype = RM_DTYPE_FP32},
                                   &err) == RM_ERR_UNSUPPORTED && !cpu && strstr(err.msg, "FP8") && strstr(err.msg, "q_proj"),
              "the CPU engine on e4m3 weights: %s", err.msg);
        if (cpu) rm_engine_cpu.destroy(cpu);
        rm_model_weights_free(&rank_mw);
    }
    rm_weights_close(as_weights);
    for (int r = 0; r < 2; r++) {
        rm_shard *sh = NULL;
        rm_shard_source src = {&cfg, &mw, NULL};
        rm_pack_rank pr;
        if (rm_shard_load(&sh, &src, 2, r, 1, &err) || rm_pack_read_rank(p, r, 2, &pr, &err)) {
            CHECK(0, "fp8 rank %d: %s", r, err.msg);
            continue;
        }
        int n_quant = 0, bad = 0;
        for (int64_t l = 0; l < sh->mw.n_layers; l++) {
            const rm_layer_weights *L = &sh->mw.layers[l];
            const rm_tensor *mat[] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
            for (size_t i = 0; i < 7; i++) {
                const rm_tensor *t = mat[i];
                size_t rows = (size_t)t->shape[0], cols = (size_t)t->shape[1];
                float *f = malloc(rows * cols * sizeof *f), *sc = malloc(rows * sizeof *sc);
                uint8_t *q = malloc(rows * cols);
                rm_tensor_rows_f32(t, 0, (int64_t)rows, f);
                if (t->dtype != RM_DT_BF16)   /* quantised from bf16, as the GPU does */
                    for (size_t k = 0; k < rows * cols; k++) f[k] = rm_bf16_to_f32(rm_bf16_from_f32(f[k]));
                rm_cpu_quantize_fp8_rows(f, rows, cols, q, sc, 1);
                char scale_name[512];
                snprintf(scale_name, sizeof scale_name, "%s_scale", t->name);
                const rm_pack_tensor *pq = NULL, *ps = NULL;
                for (size_t k = 0; k < pr.n; k++) {
                    if (!strcmp(pr.tensors[k].name, t->name)) pq = &pr.tensors[k];
                    if (!strcmp(pr.tensors[k].name, scale_name)) ps = &pr.tensors[k];
                }
                if (!pq || !ps || pq->dtype != RM_PACK_F8_E4M3 || ps->dtype != RM_PACK_F32 || pq->n_bytes != rows * cols ||
                    ps->n_bytes != rows * 4 || memcmp(pq->data, q, rows * cols) || memcmp(ps->data, sc, rows * 4))
                    bad++;
                n_quant++;
                free(f), free(sc), free(q);
            }
        }
        CHECK(n_quant == 14 && !bad, "fp8 rank %d: %d of %d projections are not rm_cpu_quantize_fp8_rows of the slice", r,
              bad, n_quant);
        /* The rest stays bf16, the checkpoint's bytes. */
        const rm_pack_tensor *emb = NULL;
        for (size_t k = 0; k < pr.n; k++)
            if (!strcmp(pr.tensors[k].name, "model.embed_tokens.weight")) emb = &pr.tensors[k];
        CHECK(emb && emb->dtype == RM_PACK_BF16 && !memcmp(emb->data, mw.embed->data, mw.embed->n_bytes), "fp8: embedding");
        rm_pack_rank_free(&pr);
        rm_shard_free(sh);
    }
    rm_pack_close(p);
    rm_model_weights_free(&mw);
    rm_weights_close(w);
    rm_config_free(&cfg);
}

/* ------------------------------------------------ corruption */

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*len + 1);
    if (fread(b, 1, *len, f) != *len) *len = 0;
    fclose(f);
    return b;
}

static void spit(const char *path, const uint8_t *b, size_t len) {
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, len, f);
    fclose(f);
}

/* The index of a rank file, parsed. */
static json_t *index_of(const uint8_t *b, size_t len) {
    uint64_t at = 0, n = 0;
    for (int i = 7; i >= 0; i--) at = at << 8 | b[len - 24 + i], n = n << 8 | b[len - 16 + i];
    return json_loadb((const char *)b + at, n, 0, NULL);
}

static rm_status read_rank(const char *pack, int rank, char *msg, size_t n) {
    rm_pack *p = NULL;
    rm_err err = {0};
    rm_pack_rank r;
    rm_status st = rm_pack_open(&p, pack, &err);
    if (!st) st = rm_pack_read_rank(p, rank, 2, &r, &err);
    if (!st) rm_pack_rank_free(&r);
    rm_pack_close(p);
    snprintf(msg, n, "%s", err.msg);
    return st;
}

static void test_corruption(void) {
    const char *dir = make_pack("tiny-llama3-causal", "corrupt", 2, RM_DTYPE_BF16, -1);
    char pack[4096], file[8192], msg[1024];
    snprintf(pack, sizeof pack, "%s", dir);
    snprintf(file, sizeof file, "%s/rank-00001-of-00002.nrpack", pack);
    size_t len = 0;
    uint8_t *orig = slurp(file, &len), *b = malloc(len + 1);
    json_t *idx = orig ? index_of(orig, len) : NULL;
    if (!idx) {
        CHECK(0, "cannot read %s", file);
        return;
    }
    /* A byte flipped inside each of a few tensors' data: refused, naming the tensor. */
    const char *victims[] = {"model.layers.1.mlp.down_proj.weight", "model.embed_tokens.weight", "model.norm.weight",
                             "model.layers.0.self_attn.q_proj.weight", "lm_head.weight"};
    int checksum_seen = 0;
    for (size_t v = 0; v < sizeof victims / sizeof *victims; v++) {
        json_t *ts = json_object_get(idx, "tensors"), *chunk = NULL;
        for (size_t i = 0; i < json_array_size(ts); i++)
            if (!strcmp(json_string_value(json_object_get(json_array_get(ts, i), "name")), victims[v]))
                chunk = json_array_get(json_object_get(json_array_get(ts, i), "chunks"), 0);
        if (!chunk) {
            CHECK(0, "no %s in the index", victims[v]);
            continue;
        }
        size_t off = (size_t)json_integer_value(json_array_get(chunk, 0)), n = (size_t)json_integer_value(json_array_get(chunk, 1));
        /* Several places: the frame header (a byte zstd itself might not miss), the middle, near the end. */
        size_t places[] = {off + 5, off + n / 2, off + n - 9};
        for (size_t k = 0; k < 3; k++) {
            memcpy(b, orig, len);
            b[places[k]] ^= 0x10;
            spit(file, b, len);
            rm_status st = read_rank(pack, 1, msg, sizeof msg);
            char want[256];
            snprintf(want, sizeof want, "tensor \"%s\": chunk 0 of", victims[v]);
            CHECK(st == RM_ERR_FORMAT && strstr(msg, want) && strstr(msg, "rank-00001-of-00002.nrpack") &&
                      strstr(msg, "corrupt"), "%s, byte %zu of its chunk flipped: %s", victims[v], places[k] - off, msg);
            checksum_seen |= strstr(msg, "checksum mismatch") != NULL;
        }
    }
    CHECK(checksum_seen, "a flipped byte is caught by the stored bytes' XXH64");
    /* Through rm_load: the message names the file and the tensor. */
    rm_status st;
    rm_model *m = load(pack, 0, RM_DTYPE_AUTO, msg, sizeof msg, &st);
    CHECK(!m && st == RM_ERR_FORMAT && strstr(msg, "tensor \"lm_head.weight\"") && strstr(msg, "tensor-parallel rank 1 of 2"),
          "rm_load of a corrupt pack: %s", msg);
    rm_free(m);
    /* A flipped byte in the index. */
    uint64_t at = 0;
    for (int i = 7; i >= 0; i--) at = at << 8 | orig[len - 24 + i];
    memcpy(b, orig, len);
    b[at + 40] ^= 0x01;
    spit(file, b, len);
    CHECK(read_rank(pack, 1, msg, sizeof msg) == RM_ERR_FORMAT && strstr(msg, "index checksum mismatch") &&
              strstr(msg, "rank-00001-of-00002.nrpack"), "index: %s", msg);
    /* Truncated. */
    spit(file, orig, len - 100);
    CHECK(read_rank(pack, 1, msg, sizeof msg) == RM_ERR_FORMAT && strstr(msg, "truncated") &&
              strstr(msg, "rank-00001-of-00002.nrpack") && strstr(msg, RM_PACK_MANIFEST), "truncated: %s", msg);
    m = load(pack, 0, RM_DTYPE_AUTO, msg, sizeof msg, &st);
    CHECK(!m && st == RM_ERR_FORMAT && strstr(msg, "truncated"), "rm_load of a truncated pack: %s", msg);
    rm_free(m);
    /* Truncated, and the manifest edited to match: the trailer is gone. */
    char mpath[8192];
    snprintf(mpath, sizeof mpath, "%s/%s", pack, RM_PACK_MANIFEST);
    json_t *man = json_load_file(mpath, 0, NULL);
    json_object_set_new(json_array_get(json_object_get(man, "files"), 1), "bytes", json_integer((json_int_t)(len - 100)));
    json_dump_file(man, mpath, 0);
    CHECK(read_rank(pack, 1, msg, sizeof msg) == RM_ERR_FORMAT && strstr(msg, "rank-00001-of-00002.nrpack") &&
              (strstr(msg, "magic") || strstr(msg, "trailer")), "truncated behind the manifest's back: %s", msg);
    json_object_set_new(json_array_get(json_object_get(man, "files"), 1), "bytes", json_integer((json_int_t)len));
    json_dump_file(man, mpath, 0);
    spit(file, orig, len);
    CHECK(read_rank(pack, 1, msg, sizeof msg) == RM_OK, "restored: %s", msg);
    /* Another tp, another dtype. */
    m = load(pack, 4, RM_DTYPE_AUTO, msg, sizeof msg, &st);
    CHECK(!m && st == RM_ERR_INVALID_ARG && strstr(msg, "made for tp 2") && strstr(msg, "rm_params.tp is 4") &&
              strstr(msg, RM_PACK_MANIFEST), "wrong tp: %s", msg);
    rm_free(m);
    m = load(pack, 0, RM_DTYPE_FP8, msg, sizeof msg, &st);
    CHECK(!m && st == RM_ERR_INVALID_ARG && strstr(msg, "holds bf16 weights") && strstr(msg, "dtype is fp8"), "dtype: %s", msg);
    rm_free(m);
    /* A manifest listing the files of another tp. */
    json_object_set_new(man, "tp", json_integer(3));
    json_dump_file(man, mpath, 0);
    m = load(pack, 0, RM_DTYPE_AUTO, msg, sizeof msg, &st);
    CHECK(!m && st == RM_ERR_FORMAT && strstr(msg, "\"files\" must list the 3 rank files"), "manifest: %s", msg);
    rm_free(m);
    json_object_set_new(man, "tp", json_integer(2));
    json_object_set_new(json_array_get(json_object_get(man, "files"), 1), "name", json_string("../rank-00001-of-00002.nrpack"));
    json_dump_file(man, mpath, 0);
    m = load(pack, 0, RM_DTYPE_AUTO, msg, sizeof msg, &st);
    CHECK(!m && st == RM_ERR_FORMAT && strstr(msg, "files[1]"), "a file outside the pack: %s", msg);
    rm_free(m);
    json_decref(man);
    json_decref(idx);
    free(orig);
    free(b);
}

/* ------------------------------------------------ the tool */

static void test_tool(void) {
    const char *build = getenv("BUILD") && *getenv("BUILD") ? getenv("BUILD") : "build";
    char tool[4096], cmd[16384];
    snprintf(tool, sizeof tool, "%s/bin/nimreward-pack", build);
    if (access(tool, X_OK) != 0) {
        CHECK(0, "no %s", tool);
        return;
    }
    snprintf(cmd, sizeof cmd, "'%s' '%s' > /dev/null 2>&1", tool, model_dir("tiny-qwen2-seqcls"));
    CHECK(WEXITSTATUS(system(cmd)) == 2, "no OUT_DIR: usage");
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s/tool' --tp 3 > /dev/null 2>&1", tool, model_dir("tiny-qwen2-seqcls"), tmp_root);
    CHECK(WEXITSTATUS(system(cmd)) == 1, "tp 3 over 4 heads: fatal");
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' --tp 1 > /dev/null 2>&1", tool, model_dir("tiny-qwen2-seqcls"),
             model_dir("tiny-qwen2-seqcls"));
    CHECK(WEXITSTATUS(system(cmd)) == 1, "into the model's own directory: refused");
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s/tool/deeper' --tp 2 --threads 2 --planes off > '%s/tool.json'", tool,
             model_dir("tiny-qwen2-seqcls"), tmp_root, tmp_root);
    CHECK(WEXITSTATUS(system(cmd)) == 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "%s/tool.json", tmp_root);
    json_t *o = json_load_file(cmd, 0, NULL);
    CHECK(o && json_integer_value(json_object_get(o, "tp")) == 2 && json_integer_value(json_object_get(o, "tensors_byte_planes")) == 0 &&
              json_number_value(json_object_get(o, "ratio")) > 1.0, "the tool's summary line");
    json_decref(o);
    char msg[1024];
    snprintf(cmd, sizeof cmd, "%s/tool/deeper", tmp_root);
    rm_model *m = load(cmd, 0, RM_DTYPE_AUTO, msg, sizeof msg, NULL);
    CHECK(m != NULL, "the tool's pack loads: %s", msg);
    rm_free(m);
}

int main(void) {
    seed = test_seed();
    if (access(fixture("models/tiny-llama3-causal/config.json"), R_OK) != 0)
        return test_skip("test_pack", 1, "no fixtures in ../shared/fixtures");
    int quick = getenv("RM_QUICK") && !strcmp(getenv("RM_QUICK"), "1");
    snprintf(tmp_root, sizeof tmp_root, "%s/nimreward-test-pack-%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    mkdir(tmp_root, 0755);
    test_planes();
    test_contents("tiny-llama3-causal", 2);   /* three shard files; untied lm_head */
    test_contents("tiny-qwen2-seqcls", 4);    /* q/k/v biases; kv heads replicated */
    test_contents("tiny-qwen3-seqcls", 1);
    test_scores_bitwise("tiny-llama3-causal");
    if (!quick) test_scores_bitwise("tiny-qwen2-seqcls");
    test_fp8();
    test_corruption();
    test_tool();
    nftw(tmp_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return test_summary("test_pack");
}
