/*
 * test.h - the few macros every C test uses. Each test program prints
 * "name: N passed, N failed" last; tests/run.sh adds them up. A program
 * that cannot run here (no GPU, no fixtures) prints the skip line
 * "name: 0 passed, 0 failed, N skipped (why)" with test_skip() and exits 0.
 * Fixtures are read in place from ../shared/fixtures (RM_FIXTURES overrides);
 * without them a test skips its fixture parts (test_have_fixtures()).
 */
#ifndef RM_TEST_H
#define RM_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int test_passed, test_failed, test_skipped_fixtures;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (cond) {                                                               \
            test_passed++;                                                        \
        } else {                                                                  \
            test_failed++;                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
        }                                                                         \
    } while (0)

static inline const char *test_fixtures(void) {
    const char *f = getenv("RM_FIXTURES");
    return f && *f ? f : "../shared/fixtures";
}

/* Builds "<fixtures>/<rel>" in a static buffer (one at a time). */
static inline const char *fixture(const char *rel) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", test_fixtures(), rel);
    return path;
}

/* 1 when the fixtures folder is there (its models/ and reference/). Where it
 * is not, a test counts the parts it cannot run with test_skip_fixtures()
 * and runs the rest: the suite then reports skips, not failures
 * (tests/run.sh says once, up front, where the fixtures were expected). */
static inline int test_have_fixtures(void) {
    struct stat a, b;
    return stat(fixture("models"), &a) == 0 && S_ISDIR(a.st_mode) && stat(fixture("reference"), &b) == 0 &&
           S_ISDIR(b.st_mode);
}

/* Counts n checks (or parts) not run for want of the fixtures; test_summary() reports them. */
static inline void test_skip_fixtures(int n) { test_skipped_fixtures += n; }

/* Seed: fixed and printed, overridable with RM_SEED, so a failure replays. */
static inline unsigned long long test_seed(void) {
    const char *s = getenv("RM_SEED");
    unsigned long long seed = s && *s ? strtoull(s, NULL, 0) : 0x5eed2026ULL;
    fprintf(stderr, "seed: %llu (set RM_SEED to replay)\n", seed);
    return seed;
}

static inline int test_summary(const char *name) {
    if (test_skipped_fixtures)
        printf("%s: %d passed, %d failed, %d skipped (no fixtures at %s: set RM_FIXTURES)\n", name, test_passed,
               test_failed, test_skipped_fixtures, test_fixtures());
    else
        printf("%s: %d passed, %d failed\n", name, test_passed, test_failed);
    return test_failed != 0;
}

/* The skip line: n_skipped checks that could not run here, and why. Returns
 * 0, the exit status of a skipped program. */
static inline int test_skip(const char *name, int n_skipped, const char *why) {
    printf("%s: 0 passed, 0 failed, %d skipped (%s)\n", name, n_skipped, why);
    return 0;
}

#endif
