/*
 * hf_cache.c - hf:// in the local Hugging Face cache (see hf_cache.h).
 */
#include "hf_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int srv_hf_is_uri(const char *s) {
    return s && !strncmp(s, SRV_HF_PREFIX, strlen(SRV_HF_PREFIX));
}

static char *join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", a, b);
    return s;
}

static const char *env(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

char *srv_hf_cache_root(void) {
    const char *v;
    if ((v = env("HF_HUB_CACHE"))) return strdup(v);
    if ((v = env("HF_HOME"))) return join(v, "hub");
    if ((v = env("XDG_CACHE_HOME"))) return join(v, "huggingface/hub");
    if ((v = env("HOME"))) return join(v, ".cache/huggingface/hub");
    return NULL;
}

/* A repository id part: what the Hub allows (letters, digits, '-', '_', '.'), not "." or "..". */
static int id_part_ok(const char *s, size_t n) {
    if (!n || (n <= 2 && !strncmp(s, "..", n))) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.'))
            return 0;
    }
    return 1;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

char *srv_hf_resolve(const char *uri, char **repo_id, char *err, size_t n) {
    *repo_id = NULL;
    const char *id = uri + strlen(SRV_HF_PREFIX), *slash = strchr(id, '/');
    size_t len = strlen(id);
    while (len && id[len - 1] == '/') len--;            /* hf://org/name/ */
    if (slash && slash >= id + len) slash = NULL;
    if (len > 256 || (slash ? !id_part_ok(id, (size_t)(slash - id)) || !id_part_ok(slash + 1, (size_t)(id + len - slash - 1))
                            : !id_part_ok(id, len))) {
        snprintf(err, n, "%s: not a model id: expected hf://org/name", uri);
        return NULL;
    }
    char *root = srv_hf_cache_root(), *repo = NULL, *refs = NULL, *snap = NULL, *snapshots = NULL;
    char folder[600], commit[128] = "";
    if (!root) {
        snprintf(err, n, "%s: no Hugging Face cache: set HF_HUB_CACHE, HF_HOME or HOME", uri);
        return NULL;
    }
    /* models--org--name: the id with '/' as "--" */
    size_t k = (size_t)snprintf(folder, sizeof folder, "models--");
    for (size_t i = 0; i < len; i++) {
        if (id[i] == '/') folder[k++] = '-', folder[k++] = '-';
        else folder[k++] = id[i];
    }
    folder[k] = 0;
    if (!(repo = join(root, folder)) || !(refs = join(repo, "refs/main")) || !(snapshots = join(repo, "snapshots")))
        goto oom;
    if (!is_dir(repo)) {
        snprintf(err, n, "%s is not downloaded: %s does not exist (the Hugging Face cache is %s; download the model "
                 "first, e.g. `huggingface-cli download %.*s`; this server fetches nothing)", uri, repo, root, (int)len,
                 id);
        goto fail;
    }
    FILE *f = fopen(refs, "r");
    if (!f) {
        snprintf(err, n, "%s is not downloaded completely: %s is missing (this server fetches nothing)", uri, refs);
        goto fail;
    }
    size_t got = fread(commit, 1, sizeof commit - 1, f);
    fclose(f);
    commit[got] = 0;
    commit[strcspn(commit, " \t\r\n")] = 0;
    if (!id_part_ok(commit, strlen(commit)) || strchr(commit, '.')) {
        snprintf(err, n, "%s: %s does not hold a commit hash", uri, refs);
        goto fail;
    }
    if (!(snap = join(snapshots, commit))) goto oom;
    if (!is_dir(snap)) {
        snprintf(err, n, "%s is not downloaded: refs/main names the snapshot %s, but %s does not exist (this server "
                 "fetches nothing)", uri, commit, snap);
        goto fail;
    }
    if (!(*repo_id = malloc(len + 1))) goto oom;
    memcpy(*repo_id, id, len);
    (*repo_id)[len] = 0;
    free(root), free(repo), free(refs), free(snapshots);
    return snap;
oom:
    snprintf(err, n, "out of memory");
fail:
    free(root), free(repo), free(refs), free(snapshots), free(snap);
    return NULL;
}
