/*
 * cuda_module.c - finds and loads the CUDA module (lib/cuda_module.h) the
 * first time a model asks for CUDA. Nothing here links CUDA: the module
 * brings its own libraries, and when one is missing dlopen() says which.
 */
#define _GNU_SOURCE   /* dladdr */
#include "cuda_module.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The install LIBDIR, baked in by the Makefile (the last place searched). */
#ifndef RM_MODULE_LIBDIR
#define RM_MODULE_LIBDIR "/usr/local/lib"
#endif

#define N_PLACES 4

typedef struct place {
    char dir[PATH_MAX];
    const char *why;                /* how this directory was chosen, for messages */
} place;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static const rm_cuda_module *loaded;
static rm_err load_err;
static char tried_path[PATH_MAX];

static void dirname_of(const char *file, char *out, size_t n) {
    snprintf(out, n, "%s", file);
    char *slash = strrchr(out, '/');
    if (!slash) snprintf(out, n, ".");
    else if (slash == out) out[1] = 0;
    else *slash = 0;
}

/* The executable's path, or "" when /proc is not there. */
static void self_exe(char *out, size_t n) {
    ssize_t len = readlink("/proc/self/exe", out, n - 1);
    out[len > 0 ? len : 0] = 0;
}

/* The directories to search, in order, duplicates dropped. NIMREWARD_MODULE_DIR,
 * when set, is the only one: a deployment or a test pins the module with it. */
static int search_places(place *pl) {
    int n = 0;
    const char *env = getenv("NIMREWARD_MODULE_DIR");
    if (env && *env) {
        snprintf(pl[n].dir, sizeof pl[n].dir, "%s", env);
        pl[n++].why = "$NIMREWARD_MODULE_DIR";
        return n;
    }
    char exe[PATH_MAX], real_exe[PATH_MAX] = "", real_lib[PATH_MAX] = "", dir[PATH_MAX];
    self_exe(exe, sizeof exe);
    if (exe[0] && !realpath(exe, real_exe)) real_exe[0] = 0;
    Dl_info info;
    /* The library's own file: libnimreward.so when linked shared; the
     * executable itself when linked statically (then this step adds nothing). */
    if (dladdr((void *)&rm_cuda_module_get, &info) && info.dli_fname && realpath(info.dli_fname, real_lib) &&
        strcmp(real_lib, real_exe) != 0) {
        dirname_of(real_lib, dir, sizeof dir);
        snprintf(pl[n].dir, sizeof pl[n].dir, "%s/nimreward", dir);
        pl[n++].why = "beside libnimreward.so";
    }
    if (real_exe[0]) {
        dirname_of(real_exe, dir, sizeof dir);
        snprintf(pl[n].dir, sizeof pl[n].dir, "%s/../lib/nimreward", dir);
        pl[n++].why = "the executable's ../lib/nimreward";
    }
    snprintf(pl[n].dir, sizeof pl[n].dir, "%s/nimreward", RM_MODULE_LIBDIR);
    pl[n++].why = "the install LIBDIR";
    /* Drop a directory already listed (e.g. an installed tool beside an installed library). */
    int m = 0;
    for (int i = 0; i < n; i++) {
        char ri[PATH_MAX], rj[PATH_MAX];
        int dup = 0;
        for (int j = 0; j < m && !dup; j++)
            dup = strcmp(pl[i].dir, pl[j].dir) == 0 ||
                  (realpath(pl[i].dir, ri) && realpath(pl[j].dir, rj) && strcmp(ri, rj) == 0);
        if (!dup) pl[m++] = pl[i];
    }
    return m;
}

void rm_cuda_module_search_dirs(char *buf, size_t size) {
    place pl[N_PLACES];
    int n = search_places(pl);
    size_t used = 0;
    if (size) buf[0] = 0;
    for (int i = 0; i < n && used < size; i++) {
        int w = snprintf(buf + used, size - used, "%s%s (%s)", i ? "\n" : "", pl[i].dir, pl[i].why);
        if (w < 0) break;
        used += (size_t)w;
    }
}

rm_status rm_cuda_module_check(const rm_cuda_module *mod, const char *path, rm_err *err) {
    if (!mod)
        return rm_fail(err, RM_ERR_UNSUPPORTED, "CUDA module %s: %s() returned nothing", path, RM_CUDA_MODULE_SYMBOL);
    if (mod->abi != RM_CUDA_MODULE_ABI)
        return rm_fail(err, RM_ERR_UNSUPPORTED, "CUDA module %s has interface version %u, this libnimreward %s "
                       "needs version %u: install the module built with this library", path, mod->abi,
                       RM_VERSION_STRING, RM_CUDA_MODULE_ABI);
    if (mod->struct_size < sizeof *mod || !mod->version || !mod->ops)
        return rm_fail(err, RM_ERR_UNSUPPORTED, "CUDA module %s: its table is incomplete (%u bytes, expected %zu)",
                       path, mod->struct_size, sizeof *mod);
    if (strcmp(mod->version, RM_VERSION_STRING) != 0)
        return rm_fail(err, RM_ERR_UNSUPPORTED, "CUDA module %s was built with libnimreward %s, this is %s: "
                       "install the module built with this library", path, mod->version, RM_VERSION_STRING);
    rm_cuda_layout want = RM_CUDA_LAYOUT_INIT;
    if (memcmp(&want, &mod->layout, sizeof want) != 0)
        return rm_fail(err, RM_ERR_UNSUPPORTED, "CUDA module %s was built from another source tree (the sizes of "
                       "its internal structs differ): rebuild it with this library", path);
    return RM_OK;
}

static void load(void) {
    place pl[N_PLACES];
    int n = search_places(pl);
    char path[PATH_MAX + 32];
    struct stat sb;
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", pl[i].dir, RM_CUDA_MODULE_FILE);
        if (stat(path, &sb) != 0) continue;
        snprintf(tried_path, sizeof tried_path, "%s", path);
        /* RTLD_NOW: a library the module needs that is missing (cuBLAS, a
         * driver-less machine's absent runtime) is reported here, by name,
         * rather than as a crash at first use. Never closed: CUDA libraries
         * do not support being unloaded while their threads live. */
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            const char *why = dlerror();
            rm_fail(&load_err, RM_ERR_UNSUPPORTED, "CUDA module %s (found in %s) cannot be loaded: %s", path,
                    pl[i].why, why ? why : "unknown dlopen error");
            return;
        }
        rm_cuda_module_fn fn = (rm_cuda_module_fn)dlsym(h, RM_CUDA_MODULE_SYMBOL);
        if (!fn) {
            rm_fail(&load_err, RM_ERR_UNSUPPORTED, "CUDA module %s does not export %s: not a libnimreward CUDA "
                    "module of this version", path, RM_CUDA_MODULE_SYMBOL);
            return;
        }
        const rm_cuda_module *mod = fn();
        if (rm_cuda_module_check(mod, path, &load_err) == RM_OK) loaded = mod;
        return;
    }
    char dirs[N_PLACES * (PATH_MAX + 64)];
    size_t used = 0;
    for (int i = 0; i < n; i++)
        used += (size_t)snprintf(dirs + used, sizeof dirs - used, "%s%s (%s)", i ? ", " : "", pl[i].dir, pl[i].why);
    rm_fail(&load_err, RM_ERR_UNSUPPORTED, "no CUDA module: %s is in none of %s (build it with make GPU=1, "
            "install it with make install, or set NIMREWARD_MODULE_DIR)", RM_CUDA_MODULE_FILE, dirs);
}

rm_status rm_cuda_module_get(const rm_cuda_module **out, const char **path_out, rm_err *err) {
    pthread_once(&load_once, load);
    if (out) *out = loaded;
    if (path_out) *path_out = tried_path;
    if (loaded) return RM_OK;
    return rm_fail(err, load_err.status ? load_err.status : RM_ERR_INTERNAL, "%s", load_err.msg);
}
