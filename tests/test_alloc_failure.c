/*
 * test_alloc_failure.c - out of memory at every point: with the allocation
 * hook (common.h: rm_alloc_fail_after), the Nth allocation and all after it
 * fail while rm_load, rm_score and rm_score_batch run. Each failure must come
 * back as an error status with a message (never a crash, never a result
 * that differs from the one computed with memory available), and once the
 * hook is reset the same call must succeed with the same scores: the library
 * stays usable. Leaks on these error paths are LeakSanitizer's to find when
 * this runs under `make san`.
 *
 * Models:
 *   demo         scripts/make_demo_model.py (LlamaForSequenceClassification,
 *                its small BPE tokenizer): EVERY N over load + score + batch.
 *   demo-causal  a LlamaForCausalLM written by tests/st_writer.h with the demo
 *                tokenizer: EVERY N over load + score + a batch with principles.
 *   fixtures     tiny-llama3-seqcls, tiny-llama3-causal (+ a principle) with
 *                the 128k Llama 3 tokenizer: loading allocates ~10^6 times,
 *                so a spread sample of N (log-spaced + random, seed printed),
 *                then EVERY N of scoring on one loaded model.
 * Samples per fixture: 160, RM_QUICK=1 60, RM_SANITIZED=1 24; RM_ALLOC_SAMPLES=N
 * sets it; RM_SEED replays the random points; RM_ALLOC_VERBOSE=1 prints every
 * failure that is not reported as out of memory.
 */
#define _GNU_SOURCE
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "st_writer.h"
#include "test.h"
#include "tokenizer.h"

#define MAX_VALUES 64

/* ------------------------------------------------------------ helpers */

static char root[4096];
static char repo[4096] = ".";

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng_state;
static uint64_t rng_next(void) {               /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int env_flag(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

/* ------------------------------------------------------------ one scenario */

/* What one pass of the calls produced. */
typedef struct outcome {
    double score[MAX_VALUES];     /* rm_score */
    size_t n_score;
    double item[2][MAX_VALUES];   /* rm_score_batch, per item */
    size_t n_item[2];
    int item_ok[2];
} outcome;

typedef struct scenario {
    const char *name;
    char dir[4096];
    rm_params params;
    int principles;               /* the batch carries principles (causal models) */
    outcome ref;                  /* computed with memory available */
    /* Tallies over the failure points. */
    uint64_t points, failed_ok, by_status[RM_ERR_INTERNAL + 1];
    char first_msg[RM_ERR_INTERNAL + 1][256];
} scenario;

static const char *PRINCIPLES[] = {"The response is correct.", "The response is brief."};

typedef enum { STAGE_LOAD, STAGE_SCORE, STAGE_BATCH, STAGE_DONE } stage;
static const char *const STAGE_NAMES[] = {"rm_load", "rm_score", "rm_score_batch", "done"};

static rm_status call_score(rm_model *m, outcome *o, char *msg, size_t msg_n) {
    rm_scores *s = NULL;
    o->n_score = 0;
    rm_status st = rm_score(m, "Is 17 a prime number?", "Yes: 17 has no divisor but 1 and itself.", &s);
    if (st != RM_OK) {
        CHECK(s == NULL, "rm_score failed (%d) but set *out", st);
        snprintf(msg, msg_n, "%s", rm_errmsg(m));
        rm_scores_free(s);
        return st;
    }
    CHECK(s && s->status == RM_OK && s->n_scores > 0 && s->n_scores <= MAX_VALUES, "rm_score OK without scores");
    for (size_t i = 0; s && i < s->n_scores && i < MAX_VALUES; i++) o->score[o->n_score++] = s->values[i];
    rm_scores_free(s);
    return RM_OK;
}

/* Two items; returns the first failure (the call's, else an item's). */
static rm_status call_batch(rm_model *m, int principles, outcome *o, char *msg, size_t msg_n) {
    rm_message a[2] = {RM_MESSAGE("user", "Write a haiku about the sea."),
                       RM_MESSAGE("assistant", "Grey waves fold and break / salt wind over the harbour / gulls stitch sky to foam")};
    rm_message b[3] = {RM_MESSAGE("system", "Be brief."), RM_MESSAGE("user", "What is the capital of France?"), RM_MESSAGE("assistant", "Paris.")};
    rm_item items[2];
    rm_item_init(&items[0]);
    rm_item_init(&items[1]);
    items[0].messages = a;
    items[0].n_messages = 2;
    items[1].messages = b;
    items[1].n_messages = 3;
    if (principles) {
        items[0].principles = PRINCIPLES;
        items[0].n_principles = 2;
        items[1].principles = PRINCIPLES;
        items[1].n_principles = 1;
    }
    rm_scores *out[2] = {NULL, NULL};
    rm_status st = rm_score_batch(m, items, 2, out);
    rm_status first = RM_OK;
    for (int i = 0; i < 2; i++) {
        o->n_item[i] = 0;
        o->item_ok[i] = 0;
        if (!out[i]) {
            CHECK(st != RM_OK, "rm_score_batch OK but out[%d] NULL", i);
            continue;
        }
        if (out[i]->status != RM_OK) {
            CHECK(out[i]->n_scores == 0 && out[i]->error && out[i]->error[0], "failed item %d: scores or no message",
                  i);
            if (first == RM_OK) {
                first = out[i]->status;
                snprintf(msg, msg_n, "item %d: %s", i, out[i]->error);
            }
            continue;
        }
        o->item_ok[i] = 1;
        for (size_t k = 0; k < out[i]->n_scores && k < MAX_VALUES; k++) o->item[i][o->n_item[i]++] = out[i]->values[k];
    }
    if (st != RM_OK && first == RM_OK) {
        first = st;
        snprintf(msg, msg_n, "%s", rm_errmsg(m));
    }
    CHECK((st == RM_OK) == (first == RM_OK), "rm_score_batch returned %d but its items say %d", st, first);
    rm_scores_free(out[0]);
    rm_scores_free(out[1]);
    return first;
}

static int same_values(const double *a, size_t na, const double *b, size_t nb) {
    if (na != nb) return 0;
    for (size_t i = 0; i < na; i++)
        if (a[i] != b[i]) return 0;      /* one thread, same inputs: bit-identical */
    return 1;
}

static int score_matches(const scenario *sc, const outcome *o) {
    return same_values(o->score, o->n_score, sc->ref.score, sc->ref.n_score);
}

/* Every item that scored matches the reference (all items when `all`). */
static int batch_matches(const scenario *sc, const outcome *o, int all) {
    for (int i = 0; i < 2; i++) {
        if (!o->item_ok[i]) {
            if (all) return 0;
            continue;
        }
        if (!same_values(o->item[i], o->n_item[i], sc->ref.item[i], sc->ref.n_item[i])) return 0;
    }
    return 1;
}

static void tally_failure(scenario *sc, rm_status st, const char *msg, stage where, int64_t n_fail) {
    CHECK(n_fail >= 0, "%s: %s failed with memory available: %s", sc->name, STAGE_NAMES[where], msg);
    CHECK(msg[0] != 0, "%s: %s failed at N=%lld without a message", sc->name, STAGE_NAMES[where], (long long)n_fail);
    if (st != RM_ERR_NOMEM && getenv("RM_ALLOC_VERBOSE"))
        fprintf(stderr, "  %s: N=%lld %s: %s: %s\n", sc->name, (long long)n_fail, STAGE_NAMES[where],
                rm_status_string(st), msg);
    if (st > 0 && st <= RM_ERR_INTERNAL && sc->by_status[st]++ == 0)
        snprintf(sc->first_msg[st], sizeof sc->first_msg[st], "%s at N=%lld: %s", STAGE_NAMES[where],
                 (long long)n_fail, msg);
    sc->failed_ok++;
}

/* Runs load + score + batch with allocations failing from the n_fail-th on
 * (n_fail < 0: never). On a failure the hook is reset and the failed call is
 * made again, which must now succeed with the reference scores (for a load,
 * only when `reload`, as it costs a whole load). Returns the stage that
 * failed, or STAGE_DONE when everything succeeded with the hook armed. */
static stage run_sequence(scenario *sc, int64_t n_fail, int reload, outcome *o) {
    char msg[1024] = "";
    outcome local;
    if (!o) o = &local;
    memset(o, 0, sizeof *o);
    rm_model *m = NULL;

    rm_alloc_fail_after(n_fail);
    rm_status st = rm_load(sc->dir, &sc->params, &m, msg, sizeof msg);
    if (st != RM_OK) {
        rm_alloc_fail_after(-1);
        CHECK(m == NULL, "%s: rm_load failed but set *out", sc->name);
        tally_failure(sc, st, msg, STAGE_LOAD, n_fail);
        if (reload && n_fail >= 0) {
            st = rm_load(sc->dir, &sc->params, &m, msg, sizeof msg);
            CHECK(st == RM_OK, "%s: rm_load after a failure at N=%lld: %s", sc->name, (long long)n_fail, msg);
            if (st == RM_OK) {
                msg[0] = 0;
                st = call_score(m, o, msg, sizeof msg);
                CHECK(st == RM_OK && score_matches(sc, o), "%s: scores after reloading (N=%lld): %s", sc->name,
                      (long long)n_fail, msg);
            }
            rm_free(m);
        }
        return STAGE_LOAD;
    }

    stage reached = STAGE_DONE;
    for (stage s = STAGE_SCORE; s <= STAGE_BATCH; s++) {
        msg[0] = 0;
        st = s == STAGE_SCORE ? call_score(m, o, msg, sizeof msg) : call_batch(m, sc->principles, o, msg, sizeof msg);
        if (st == RM_OK) continue;
        rm_alloc_fail_after(-1);
        tally_failure(sc, st, msg, s, n_fail);
        reached = s;
        /* Items that scored while others failed must be right all the same. */
        if (s == STAGE_BATCH)
            CHECK(batch_matches(sc, o, 0), "%s: an item scored while failing (N=%lld) differs", sc->name,
                  (long long)n_fail);
        /* The same call with memory available, on the same model. */
        msg[0] = 0;
        st = s == STAGE_SCORE ? call_score(m, o, msg, sizeof msg) : call_batch(m, sc->principles, o, msg, sizeof msg);
        CHECK(st == RM_OK && (s == STAGE_SCORE ? score_matches(sc, o) : batch_matches(sc, o, 1)),
              "%s: %s after a failure at N=%lld: status %d %s", sc->name, STAGE_NAMES[s], (long long)n_fail, st, msg);
        break;
    }
    rm_alloc_fail_after(-1);
    rm_free(m);
    return reached;
}

/* The reference run (after a warm-up that initialises globals): sets sc->ref
 * and the number of allocations of the whole sequence and of rm_load. */
static int reference(scenario *sc, uint64_t *total, uint64_t *load) {
    if (run_sequence(sc, -1, 0, &sc->ref) != STAGE_DONE) return 0;   /* tally_failure said why */
    uint64_t a0 = rm_alloc_count();
    rm_model *m = NULL;
    char msg[1024];
    rm_status st = rm_load(sc->dir, &sc->params, &m, msg, sizeof msg);
    uint64_t a1 = rm_alloc_count();
    rm_free(m);
    CHECK(st == RM_OK, "%s: rm_load: %s", sc->name, msg);
    if (st != RM_OK) return 0;
    outcome again;
    uint64_t b0 = rm_alloc_count();
    stage r = run_sequence(sc, -1, 0, &again);
    *total = rm_alloc_count() - b0;
    *load = a1 - a0;
    CHECK(r == STAGE_DONE && score_matches(sc, &again) && batch_matches(sc, &again, 1),
          "%s: two runs with memory available differ", sc->name);
    return r == STAGE_DONE && *load > 0;
}

static void report(const scenario *sc, const char *what, double secs) {
    fprintf(stderr, "  %s: %s: %llu failure points, each an error status; %.1f s\n", sc->name, what,
            (unsigned long long)sc->points, secs);
    for (int s = 1; s <= RM_ERR_INTERNAL; s++)
        if (sc->by_status[s] && s != RM_ERR_NOMEM)
            fprintf(stderr, "  %s: note: %llu out-of-memory failures reported as \"%s\"; first: %s\n", sc->name,
                    (unsigned long long)sc->by_status[s], rm_status_string((rm_status)s), sc->first_msg[s]);
}

/* EVERY N: from 0 until the whole sequence completes with the hook armed. */
static uint64_t sweep_all(scenario *sc) {
    uint64_t total = 0, load = 0;
    if (!reference(sc, &total, &load)) return 0;
    double t0 = now();
    int64_t n;
    for (n = 0; n <= (int64_t)(total * 4 + 100); n++) {
        outcome o;
        if (run_sequence(sc, n, 1, &o) == STAGE_DONE) {
            CHECK(score_matches(sc, &o) && batch_matches(sc, &o, 1), "%s: completed at N=%lld with other scores",
                  sc->name, (long long)n);
            break;
        }
        sc->points++;
    }
    CHECK((uint64_t)n == total, "%s: completed at N=%lld; the reference made %llu allocations", sc->name,
          (long long)n, (unsigned long long)total);
    char what[128];
    snprintf(what, sizeof what, "every N (%llu allocations, %llu of them loading)", (unsigned long long)total,
             (unsigned long long)load);
    report(sc, what, now() - t0);
    return sc->points;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* A sample of rm_load's points (log-spaced + random), then EVERY N of
 * scoring on one loaded model. Returns the points covered. */
static uint64_t sweep_sampled(scenario *sc, int samples) {
    uint64_t total = 0, load = 0;
    if (!reference(sc, &total, &load)) return 0;
    double t0 = now();
    int64_t *pts = calloc((size_t)samples, sizeof *pts);
    /* Three quarters log-spaced (every stage of loading, cheap early ones
     * dense), a quarter uniform (the bulk: the tokenizer's vocabulary and merges). */
    int n_pts = 0, n_log = samples * 3 / 4;
    for (int i = 0; i < n_log; i++)
        pts[n_pts++] = (int64_t)(n_log > 1 ? exp(log((double)load) * i / (n_log - 1)) : 1.0) - 1;
    while (n_pts < samples) pts[n_pts++] = (int64_t)(rng_next() % load);
    qsort(pts, (size_t)n_pts, sizeof *pts, cmp_i64);
    for (int i = 0; i < n_pts; i++) {
        if (i && pts[i] == pts[i - 1]) continue;
        sc->points++;
        /* Reloading after every failure would double the cost: every 32nd point. */
        stage r = run_sequence(sc, pts[i], sc->points % 32 == 1, NULL);
        CHECK(r == STAGE_LOAD, "%s: failing from N=%lld of %llu did not fail rm_load", sc->name, (long long)pts[i],
              (unsigned long long)load);
    }
    free(pts);
    char what[160];
    snprintf(what, sizeof what, "rm_load, sampled among %llu allocations (log-spaced + random)",
             (unsigned long long)load);
    report(sc, what, now() - t0);
    uint64_t covered = sc->points;

    /* Scoring: one loaded model, every N until score + batch complete. */
    t0 = now();
    sc->points = sc->failed_ok = 0;
    memset(sc->by_status, 0, sizeof sc->by_status);
    rm_model *m = NULL;
    char msg[1024];
    rm_status st = rm_load(sc->dir, &sc->params, &m, msg, sizeof msg);
    CHECK(st == RM_OK, "%s: rm_load: %s", sc->name, msg);
    if (st != RM_OK) return covered;
    outcome o;
    msg[0] = 0;
    call_score(m, &o, msg, sizeof msg);      /* warm: a first call may set up what later ones reuse */
    for (int64_t n = 0; n <= (int64_t)(total * 4 + 100); n++) {
        msg[0] = 0;
        rm_alloc_fail_after(n);
        stage where = STAGE_SCORE;
        st = call_score(m, &o, msg, sizeof msg);
        if (st == RM_OK) {
            where = STAGE_BATCH;
            st = call_batch(m, sc->principles, &o, msg, sizeof msg);
        }
        rm_alloc_fail_after(-1);
        if (st == RM_OK) {
            CHECK(score_matches(sc, &o) && batch_matches(sc, &o, 1), "%s: scoring completed at N=%lld with other "
                  "scores", sc->name, (long long)n);
            break;
        }
        sc->points++;
        tally_failure(sc, st, msg, where, n);
        if (where == STAGE_BATCH)
            CHECK(batch_matches(sc, &o, 0), "%s: an item scored while failing (N=%lld) differs", sc->name,
                  (long long)n);
        /* The same calls, memory available again, on the same model. */
        msg[0] = 0;
        st = call_score(m, &o, msg, sizeof msg);
        if (st == RM_OK) st = call_batch(m, sc->principles, &o, msg, sizeof msg);
        CHECK(st == RM_OK && score_matches(sc, &o) && batch_matches(sc, &o, 1),
              "%s: scoring after a failure at N=%lld: status %d %s", sc->name, (long long)n, st, msg);
    }
    rm_free(m);
    report(sc, "scoring on a loaded model, every N", now() - t0);
    return covered + sc->points;
}

/* ------------------------------------------------------------ set-up */

static int run(const char *cmd) {
    int rc = system(cmd);
    CHECK(rc == 0, "%s", cmd);
    return rc == 0;
}

/* A causal model sized to the demo tokenizer, written by st_writer.h. */
static int make_demo_causal(const char *demo, const char *dir) {
    mkdir(dir, 0700);
    char path[8192];
    snprintf(path, sizeof path, "%s/tokenizer.json", demo);
    rm_tokenizer *tok = NULL;
    rm_err err = {0};
    if (rm_tok_load(&tok, path, &err) != RM_OK) {
        CHECK(0, "%s: %s", path, err.msg);
        return 0;
    }
    st_spec s = st_spec_default("LlamaForCausalLM");
    s.vocab = rm_tok_vocab_size(tok);
    rm_tok_free(tok);
    if (st_write_model(dir, &s) != 0) {
        CHECK(0, "st_write_model %s", dir);
        return 0;
    }
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "cp '%s/tokenizer.json' '%s/tokenizer_config.json' '%s/'", demo, demo, dir);
    return run(cmd);
}

int main(int argc, char **argv) {
    if (access("scripts/make_demo_model.py", R_OK) != 0 && argc > 0) {
        snprintf(repo, sizeof repo, "%s", argv[0]);
        char *slash = strrchr(repo, '/');
        if (slash) *slash = 0;
        strncat(repo, "/../..", sizeof repo - strlen(repo) - 1);
    }
    rng_state = test_seed();
    int quick = env_flag("RM_QUICK"), sanitized = env_flag("RM_SANITIZED");
    int samples = sanitized ? 24 : quick ? 60 : 160;
    const char *s_env = getenv("RM_ALLOC_SAMPLES");
    if (s_env && *s_env) samples = atoi(s_env);
    if (samples < 2) samples = 2;

    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/rm_allocfail_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    rm_global_init();
    setenv("OMP_NUM_THREADS", "1", 0);   /* one thread: allocation order is the same each run */

    static scenario demo, causal, fx_seqcls, fx_causal;
    uint64_t demo_points = 0, fixture_points = 0;

    demo.name = "demo";
    snprintf(demo.dir, sizeof demo.dir, "%s/demo", root);
    rm_params_init(&demo.params);
    demo.params.n_threads = 1;
    demo.params.now = "2026-01-15T10:00:00";
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "python3 '%s/scripts/make_demo_model.py' '%s' > /dev/null", repo, demo.dir);
    if (run(cmd)) {
        demo_points += sweep_all(&demo);

        causal.params = demo.params;
        causal.name = "demo-causal";
        snprintf(causal.dir, sizeof causal.dir, "%s/demo-causal", root);
        causal.params.yes_token = "Y";  /* single bytes: in every byte-level vocabulary */
        causal.params.no_token = "N";
        causal.principles = 1;
        if (make_demo_causal(demo.dir, causal.dir)) demo_points += sweep_all(&causal);
    }

    struct stat sb;
    fx_seqcls.name = "tiny-llama3-seqcls";
    snprintf(fx_seqcls.dir, sizeof fx_seqcls.dir, "%s", fixture("models/tiny-llama3-seqcls"));
    fx_causal.name = "tiny-llama3-causal";
    snprintf(fx_causal.dir, sizeof fx_causal.dir, "%s", fixture("models/tiny-llama3-causal"));
    fx_causal.principles = 1;
    scenario *fx[2] = {&fx_seqcls, &fx_causal};
    for (int i = 0; i < 2; i++) {
        rm_params_init(&fx[i]->params);
        fx[i]->params.n_threads = 1;
        fx[i]->params.now = "2026-01-15T10:00:00";
        if (!test_have_fixtures()) {
            test_skip_fixtures(1);
            continue;
        }
        if (stat(fx[i]->dir, &sb) != 0) {
            CHECK(0, "fixture %s missing (set RM_FIXTURES)", fx[i]->dir);
            continue;
        }
        fixture_points += sweep_sampled(fx[i], samples);
    }

    printf("alloc failure points: demo %llu (all), fixtures %llu (rm_load sampled, %d per model; scoring all)\n",
           (unsigned long long)demo_points, (unsigned long long)fixture_points, samples);
    nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    int rc = test_summary("test_alloc_failure");
    fflush(stdout);     /* before LeakSanitizer's report at exit, which ends the process */
    return rc;
}
