/*
 * fuzz_jsonl.c - libFuzzer harness for nimreward-score's input line parser
 * (cli_line_parse, lib/cli/cli_common.c). The input is one line of JSON.
 * A line that parses must give an item the API can take: a non-empty list of
 * messages whose role and content are strings, at most CLI_MAX_PRINCIPLES
 * principles; a line that does not parse must say why.
 *
 * Built by tests/fuzz/run.sh (make fuzz); replayed without libFuzzer by
 * tests/test_fuzz_regressions.sh through tests/fuzz/replay_main.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_common.h"
#include "fuzz_common.h"

static const char *const DEFAULTS[] = {"helpfulness", "correctness"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size ? size : 1);     /* exact size, no terminator */
    if (!text) return 0;
    memcpy(text, data, size);
    /* The last input byte picks whether --principle defaults are in force. */
    size_t n_default = size && (data[size - 1] & 1) ? 2 : 0;

    cli_line l;
    int rc = cli_line_parse(&l, text, size, n_default ? DEFAULTS : NULL, n_default);
    invariant(memchr(l.error, 0, sizeof l.error) != NULL);
    if (rc != 0) {
        invariant(l.error[0] != 0);
    } else {
        invariant(l.error[0] == 0 && l.json != NULL);
        const rm_item *it = &l.item;
        invariant(it->struct_size == sizeof(rm_item));
        invariant(it->messages != NULL && it->n_messages >= 1);
        for (size_t i = 0; i < it->n_messages; i++) {
            invariant(it->messages[i].role != NULL && it->messages[i].content != NULL);
            (void)strlen(it->messages[i].role);
            (void)strlen(it->messages[i].content);
        }
        invariant(it->n_principles <= CLI_MAX_PRINCIPLES);
        invariant(it->n_principles == 0 || it->principles != NULL);
        for (size_t i = 0; i < it->n_principles; i++) {
            invariant(it->principles[i] != NULL);
            (void)strlen(it->principles[i]);
        }
    }
    cli_line_clear(&l);
    invariant(l.json == NULL && l.msgs == NULL && l.principles == NULL);
    free(text);
    return 0;
}
