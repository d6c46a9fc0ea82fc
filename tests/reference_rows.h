/*
 * reference_rows.h - the reference files of ../shared/fixtures/reference/
 * (one JSON object per line, made with transformers), read for the engine
 * tests: each row's "ids" as int32, and the whole object for the rest; and
 * rows packed into one rm_batch, with or without prefix sharing.
 */
#ifndef RM_TESTS_REFERENCE_ROWS_H
#define RM_TESTS_REFERENCE_ROWS_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine.h"

typedef struct ref_row {
    int32_t *ids;
    size_t n;
    json_t *obj;
} ref_row;

/* Reads every line of a .jsonl file; returns the count (*out malloc'd; free
 * with free_rows). A line that is not JSON is skipped. */
static size_t read_jsonl(const char *path, ref_row **out) {
    FILE *f = fopen(path, "r");
    *out = NULL;
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return 0;
    }
    size_t n = 0, cap = 0, line_cap = 0;
    char *line = NULL;
    ref_row *rows = NULL;
    while (getline(&line, &line_cap, f) > 0) {
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        if (!o) continue;
        json_t *ids = json_object_get(o, "ids");
        if (n == cap) rows = realloc(rows, (cap = cap ? 2 * cap : 64) * sizeof *rows);
        rows[n].n = json_array_size(ids);
        rows[n].ids = malloc((rows[n].n ? rows[n].n : 1) * sizeof(int32_t));
        for (size_t i = 0; i < rows[n].n; i++) rows[n].ids[i] = (int32_t)json_integer_value(json_array_get(ids, i));
        rows[n].obj = o;
        n++;
    }
    free(line);
    fclose(f);
    *out = rows;
    return n;
}

static void free_rows(ref_row *rows, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(rows[i].ids);
        json_decref(rows[i].obj);
    }
    free(rows);
}

/* Reference rows as one packed batch (lib/engine.h's rm_batch). */
typedef struct batch_owner {
    rm_batch b;
    const int32_t **toks;
    size_t *lens, *shared;
    int32_t *parent;
} batch_owner;

/* A batch of the rows; with `share`, each sequence shares its longest common
 * prefix with an earlier one (capped at n - 1 unless full_share). */
static void make_batch(batch_owner *o, ref_row *rows, size_t n, int share, int full_share) {
    o->toks = malloc(n * sizeof *o->toks);
    o->lens = malloc(n * sizeof *o->lens);
    o->shared = calloc(n, sizeof *o->shared);
    o->parent = malloc(n * sizeof *o->parent);
    for (size_t s = 0; s < n; s++) {
        o->toks[s] = rows[s].ids;
        o->lens[s] = rows[s].n;
        o->parent[s] = -1;
        for (size_t j = 0; share && j < s; j++) {
            size_t l = 0, lim = rows[s].n < rows[j].n ? rows[s].n : rows[j].n;
            while (l < lim && rows[s].ids[l] == rows[j].ids[l]) l++;
            if (!full_share && l == rows[s].n) l--;
            if (l > o->shared[s]) o->shared[s] = l, o->parent[s] = (int32_t)j;
        }
    }
    o->b = (rm_batch){n, o->toks, o->lens, share ? o->parent : NULL, share ? o->shared : NULL};
}

static void free_batch(batch_owner *o) {
    free(o->toks), free(o->lens), free(o->shared), free(o->parent);
}

#endif
