/*
 * replay_main.c - runs a libFuzzer harness without libFuzzer: links with any
 * tests/fuzz/fuzz_*.c and calls LLVMFuzzerTestOneInput on every file named
 * (directories are read one level deep), each in its own child process so
 * one crash does not hide the rest, and a sanitizer's report (leaks
 * included) names the input. Used by tests/test_fuzz_regressions.sh.
 *
 *     replay NAME PATH...     prints "PASS|FAIL NAME/file" per input, then
 *                             "replay NAME: N passed, N failed"
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int passed, failed;

/* Reads the whole file into an exact-size buffer (so over-reads show). */
static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *b = realloc(buf, cap);
            if (!b) { free(buf); fclose(f); return NULL; }
            buf = b;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    fclose(f);
    uint8_t *exact = malloc(n ? n : 1);
    if (exact) memcpy(exact, buf, n);
    free(buf);
    *len = n;
    return exact;
}

static void run_one(const char *name, const char *path) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); failed++; return; }
    if (pid == 0) {
        size_t len = 0;
        uint8_t *data = slurp(path, &len);
        if (!data) { fprintf(stderr, "%s: cannot read\n", path); exit(2); }
        LLVMFuzzerTestOneInput(data, len);
        free(data);
        exit(0);                  /* exit, not _exit: LeakSanitizer checks at exit */
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {}
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (ok) passed++;
    else failed++;
    if (!ok) {
        if (WIFSIGNALED(status)) fprintf(stderr, "%s: %s: killed by signal %d\n", name, path, WTERMSIG(status));
        else fprintf(stderr, "%s: %s: exit status %d\n", name, path, WEXITSTATUS(status));
    }
    printf("%s %s\n", ok ? "PASS" : "FAIL", path);
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s NAME PATH...\n", argv[0]);
        return 2;
    }
    const char *name = argv[1];
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 2; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) continue;          /* an absent regressions dir is fine */
        if (!S_ISDIR(st.st_mode)) { run_one(name, argv[i]); continue; }
        struct dirent **list;
        int n = scandir(argv[i], &list, NULL, by_name);
        for (int k = 0; k < n; k++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], list[k]->d_name);
            if (list[k]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode)) run_one(name, path);
            free(list[k]);
        }
        if (n >= 0) free(list);
    }
    printf("replay %s: %d passed, %d failed\n", name, passed, failed);
    return failed != 0;
}
