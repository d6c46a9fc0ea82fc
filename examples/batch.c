/*
 * batch.c - score several responses to one prompt in one call, as an RLHF
 * loop scores a policy's rollouts. The shared prompt is computed once.
 *
 *   ./batch /path/to/model
 */
#include <stdio.h>

#include "nimreward.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    char err[1024];
    rm_params params;
    rm_params_init(&params);
    params.n_threads = 2;
    rm_model *model = NULL;
    if (rm_load(argv[1], &params, &model, err, sizeof err) != RM_OK) {
        fprintf(stderr, "rm_load: %s\n", err);
        return 1;
    }
    const char *prompt = "I am going to Paris, what should I see?";
    const char *responses[3] = {"The Louvre, the Eiffel Tower and Montmartre.", "Paris is a city.",
                                "I would rather not say."};
    rm_message msgs[3][2];
    rm_item items[3];
    rm_scores *out[3];
    for (int i = 0; i < 3; i++) {
        msgs[i][0] = RM_MESSAGE("user", prompt);
        msgs[i][1] = RM_MESSAGE("assistant", responses[i]);
        rm_item_init(&items[i]);
        items[i].messages = msgs[i];
        items[i].n_messages = 2;
    }
    rm_status st = rm_score_batch(model, items, 3, out);
    for (int i = 0; i < 3 && out[0]; i++) {
        printf("response %d:", i);
        if (out[i]->status != RM_OK) printf(" error: %s", out[i]->error);
        for (size_t k = 0; k < out[i]->n_scores; k++) printf(" %s=%.6g", out[i]->names[k], out[i]->values[k]);
        printf("\n");
        rm_scores_free(out[i]);
    }
    rm_counters c = {.struct_size = sizeof c};
    rm_model_counters(model, &c);
    printf("tokens in the inputs: %llu, token rows computed over all layers: %llu\n",
           (unsigned long long)c.tokens_input, (unsigned long long)c.tokens_computed);
    rm_free(model);
    return st == RM_OK ? 0 : 1;
}
