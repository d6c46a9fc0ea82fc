/*
 * test_batch_invariance.c - a conversation's scores depend on what it is
 * batched with, and on the thread count, only within 1e-5 absolute plus
 * 1e-5 relative (docs/performance.md, "Batch and thread invariance", says
 * where the differences come from).
 *
 * For each model, conversations are scored alone on one thread (the
 * reference), then again inside batches of 1 to 64 others drawn from the
 * same pool, at a random place in the batch, on 1 or 2 threads. The pool
 * holds conversations that share prompts and system turns, so batches share
 * token prefixes (the engine computes a shared prefix once and the suffix's
 * attention may then take the other path). Models: the four fixtures (the
 * causal one also with principles, whose sequences share the conversation),
 * and a wider checkpoint written here (hidden 192, ffn 768) whose
 * projections are large enough to be split over the threads, which the
 * fixtures' never are.
 *
 * Seeded (RM_SEED replays); RM_QUICK=1 scores fewer targets. stderr reports,
 * per model, how many scores differed at all and the largest difference.
 */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <time.h>
#include <unistd.h>

#include "st_writer.h"
#include "test.h"
#include "nimreward.h"

#define TOL_ABS 1e-5
#define TOL_REL 1e-5
#define MAX_MSGS 8
#define MAX_POOL 96

typedef struct conv {
    rm_message msgs[MAX_MSGS];
    size_t n;
} conv;

static conv pool[MAX_POOL];
static size_t n_pool;
static char *owned[MAX_POOL * MAX_MSGS * 2 + 64];
static size_t n_owned;
static unsigned long long rng_state;
static char repo[4096] = ".";

static unsigned rnd(unsigned n) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)((rng_state >> 33) % n);
}

static const char *keep(const char *s) { return owned[n_owned++] = strdup(s); }

static void pool_clear(void) {
    for (size_t i = 0; i < n_owned; i++) free(owned[i]);
    n_owned = n_pool = 0;
}

/* The reference conversations of a fixture, plus variants that answer the same prompt
 * differently (another row's last answer), so prompts are shared inside a batch. */
static void pool_from_reference(const char *rel) {
    json_error_t je;
    FILE *f = fopen(fixture(rel), "r");
    CHECK(f != NULL, "cannot open %s", fixture(rel));
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0 && n_pool < MAX_POOL / 2) {
        json_t *row = json_loads(line, 0, &je), *msgs = json_object_get(row, "messages");
        conv *c = &pool[n_pool];
        c->n = 0;
        size_t bytes = 0;
        for (size_t i = 0; i < json_array_size(msgs); i++)
            bytes += json_string_length(json_object_get(json_array_get(msgs, i), "content"));
        if (bytes > 6000) {   /* the 2,643-token row: its quadratic attention would dominate every batch */
            json_decref(row);
            continue;
        }
        for (size_t i = 0; i < json_array_size(msgs) && c->n < MAX_MSGS; i++) {
            json_t *m = json_array_get(msgs, i);
            c->msgs[c->n++] = RM_MESSAGE(keep(json_string_value(json_object_get(m, "role"))),
                                         keep(json_string_value(json_object_get(m, "content"))));
        }
        n_pool += c->n > 0;
        json_decref(row);
    }
    free(line);
    fclose(f);
    size_t n_rows = n_pool;
    for (size_t i = 0; i < n_rows && n_pool < MAX_POOL; i++) {
        conv *src = &pool[i], *other = &pool[(i + 1 + rnd((unsigned)n_rows - 1)) % n_rows];
        if (strcmp(src->msgs[src->n - 1].role, "assistant") || strcmp(other->msgs[other->n - 1].role, "assistant"))
            continue;
        pool[n_pool] = *src;
        pool[n_pool].msgs[src->n - 1].content = other->msgs[other->n - 1].content;
        n_pool++;
    }
}

/* Made-up conversations for the written checkpoint: a few prompts and system turns, many answers. */
static void pool_generated(void) {
    static const char *prompts[] = {"I am going to Paris, what should I see?", "Is 17 a prime number?",
                                    "Write a haiku about the sea.", "Say hi.", "Explain what a reward model is."};
    static const char *words[] = {"the", "reward", "model", "reads", "a", "conversation", "and", "returns", "score",
                                  "Paris", "Louvre", "prime", "sea", "waves", "yes", "no", "because", "17", "is"};
    char text[2048];
    for (n_pool = 0; n_pool < 48; n_pool++) {
        conv *c = &pool[n_pool];
        c->n = 0;
        if (rnd(3) == 0) c->msgs[c->n++] = RM_MESSAGE("system", "You are a careful grader.");
        c->msgs[c->n++] = RM_MESSAGE("user", prompts[rnd(5)]);
        size_t len = 0, n_words = 3 + rnd(60);
        for (size_t w = 0; w < n_words && len + 32 < sizeof text; w++)
            len += (size_t)snprintf(text + len, sizeof text - len, "%s%s", w ? " " : "", words[rnd(19)]);
        c->msgs[c->n++] = RM_MESSAGE("assistant", keep(text));
    }
}

typedef struct stats {
    size_t compared, differ, outside;
    double max_abs, max_rel;
} stats;

static void compare(stats *st, const char *label, const rm_scores *want, const rm_scores *got, size_t k, int threads) {
    if (!got || got->status != RM_OK || got->n_scores != want->n_scores) {
        CHECK(0, "%s: scoring inside a batch of %zu others on %d threads failed: %s", label, k, threads,
              got ? got->error : "no result");
        return;
    }
    for (size_t i = 0; i < want->n_scores; i++) {
        double a = want->values[i], b = got->values[i], d = fabs(a - b);
        st->compared++;
        st->differ += a != b;
        if (d > st->max_abs) st->max_abs = d;
        if (a != 0 && d / fabs(a) > st->max_rel) st->max_rel = d / fabs(a);
        if (!(d <= TOL_ABS + TOL_REL * fabs(a)) && st->outside++ < 5)
            fprintf(stderr, "%s: score %zu alone %.9g, among %zu others on %d threads %.9g\n", label, i, a, k, threads,
                    b);
    }
}

static rm_item item_of(size_t c, const char *const *principles, size_t n_principles) {
    rm_item it;
    rm_item_init(&it);
    it.messages = pool[c].msgs;
    it.n_messages = pool[c].n;
    it.principles = principles;
    it.n_principles = n_principles;
    return it;
}

static void invariance(const char *label, const char *dir, int n_targets, const char *const *principles,
                       size_t n_principles) {
    static const size_t others[] = {1, 2, 3, 5, 8, 15, 16, 31, 47, 63, 64};
    rm_model *m[3] = {NULL, NULL, NULL};   /* by thread count */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char err[1024];
    for (int t = 1; t <= 2; t++) {
        rm_params p;
        rm_params_init(&p);
        p.n_threads = t;
        p.device = RM_DEVICE_CPU;   /* the bound is the CPU engine's; CUDA has its own check */
        p.now = "2026-11-26T09:30:00";
        rm_status st = rm_load(dir, &p, &m[t], err, sizeof err);
        CHECK(st == RM_OK, "%s: rm_load(%d threads): %s", label, t, err);
        if (st) {
            rm_free(m[1]);
            return;
        }
    }
    stats st = {0};
    rm_item batch[65];
    rm_scores *out[65];
    for (int target = 0; target < n_targets; target++) {
        size_t c = rnd((unsigned)n_pool);
        rm_item alone = item_of(c, principles, n_principles);
        rm_scores *want = NULL, *two = NULL;
        CHECK(rm_score_item(m[1], &alone, &want) == RM_OK, "%s: conversation %zu alone: %s", label, c, rm_errmsg(m[1]));
        if (!want) continue;
        CHECK(rm_score_item(m[2], &alone, &two) == RM_OK, "%s: alone on 2 threads", label);
        compare(&st, label, want, two, 0, 2);
        rm_scores_free(two);
        for (size_t s = 0; s < sizeof others / sizeof *others; s++) {
            size_t k = others[s], at = rnd((unsigned)k + 1);
            int threads = 1 + (int)rnd(2);
            for (size_t i = 0; i <= k; i++)
                batch[i] = i == at ? alone : item_of(rnd((unsigned)n_pool), principles, n_principles);
            rm_status bs = rm_score_batch(m[threads], batch, k + 1, out);   /* sets every out[i], or all NULL */
            CHECK(bs == RM_OK, "%s: a batch of %zu: %s", label, k + 1, rm_errmsg(m[threads]));
            compare(&st, label, want, out[at], k, threads);
            for (size_t i = 0; i <= k; i++) rm_scores_free(out[i]);
        }
        rm_scores_free(want);
    }
    CHECK(st.outside == 0 && st.compared > 0, "%s: %zu of %zu scores moved more than 1e-5 + 1e-5 relative with the "
          "batch or the threads", label, st.outside, st.compared);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "%s: %zu scores compared, %zu differ in any bit, largest difference %.3g (relative %.3g); %.1f s\n",
            label, st.compared, st.differ, st.max_abs, st.max_rel,
            (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    rm_free(m[1]);
    rm_free(m[2]);
}

static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4096];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    if (d) closedir(d);
    rmdir(dir);
}

/* A wider checkpoint with the demo model's tokenizer and template: its projections are split over the threads. */
static int write_wide(const char *dir) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "python3 '%s/scripts/make_demo_model.py' '%s' > /dev/null", repo, dir);
    if (system(cmd) != 0) return -1;
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    json_t *tok = json_load_file(path, 0, NULL);
    int vocab = (int)json_object_size(json_object_get(json_object_get(tok, "model"), "vocab")) +
                (int)json_array_size(json_object_get(tok, "added_tokens"));
    json_decref(tok);
    st_spec s = st_spec_default("LlamaForSequenceClassification");
    s.hidden = 192, s.ffn = 768, s.n_layers = 2, s.n_heads = 6, s.n_kv_heads = 2, s.vocab = vocab, s.n_labels = 3;
    return vocab > 256 ? st_write_model(dir, &s) : -1;
}

int main(int argc, char **argv) {
    if (access("scripts/make_demo_model.py", R_OK) != 0 && argc > 0) {   /* run from elsewhere: find the repo */
        snprintf(repo, sizeof repo, "%s", argv[0]);
        char *slash = strrchr(repo, '/');
        if (slash) *slash = 0;
        strncat(repo, "/../..", sizeof repo - strlen(repo) - 1);
    }
    rng_state = test_seed();
    int quick = getenv("RM_QUICK") && *getenv("RM_QUICK") == '1';
    int targets = quick ? 1 : 6;   /* conversations scored alone, each then in 11 batches */

    char dir[] = "/tmp/rm_batch_inv_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    CHECK(write_wide(dir) == 0, "cannot write the wide checkpoint in %s", dir);
    pool_generated();
    invariance("wide (hidden 192, ffn 768)", dir, quick ? 2 : targets, NULL, 0);
    pool_clear();
    remove_dir(dir);

    static const char *models[] = {"tiny-llama3-seqcls", "tiny-llama3-causal", "tiny-qwen2-seqcls",
                                   "tiny-qwen3-seqcls"};
    for (size_t i = 0; i < 4; i++) {
        if (!test_have_fixtures()) {
            test_skip_fixtures(1);
            continue;
        }
        char rel[256], model_dir[4096];
        snprintf(rel, sizeof rel, "reference/%s.reference.jsonl", models[i]);
        pool_from_reference(rel);
        snprintf(model_dir, sizeof model_dir, "%s", fixture("models/"));
        strncat(model_dir, models[i], sizeof model_dir - strlen(model_dir) - 1);
        invariance(models[i], model_dir, targets, NULL, 0);
        if (i == 1) {
            static const char *principles[] = {"the response is factually correct", "the response is concise"};
            invariance("tiny-llama3-causal, principles", model_dir, quick ? 1 : 3, principles, 2);
        }
        pool_clear();
    }
    return test_summary("test_batch_invariance");
}
