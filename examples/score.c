/*
 * score.c - the smallest use of libnimreward: load a model, score one answer.
 *
 *   cc score.c $(pkg-config --cflags --libs nimreward) -o score
 *   ./score /path/to/model "What is 2+2?" "4"
 */
#include <stdio.h>

#include "nimreward.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL_DIR PROMPT RESPONSE\n", argv[0]);
        return 2;
    }
    char err[1024];
    rm_model *model = NULL;
    rm_status st = rm_load(argv[1], NULL, &model, err, sizeof err);   /* NULL: default params */
    if (st != RM_OK) {
        fprintf(stderr, "rm_load: %s (%s)\n", err, rm_status_string(st));
        return 1;
    }
    rm_scores *scores = NULL;
    st = rm_score(model, argv[2], argv[3], &scores);
    if (st != RM_OK) {
        fprintf(stderr, "rm_score: %s (%s)\n", rm_errmsg(model), rm_status_string(st));
        rm_free(model);
        return 1;
    }
    for (size_t i = 0; i < scores->n_scores; i++) printf("%s:%.9g\n", scores->names[i], scores->values[i]);
    rm_scores_free(scores);
    rm_free(model);
    return 0;
}
