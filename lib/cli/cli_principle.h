/*
 * cli_principle.h - the `--principle [name=]text` flag that nimreward-score
 * and nimreward-server share.
 *
 * "helpfulness=the response helps the user" names the score "helpfulness";
 * "the response helps the user" leaves it unnamed (the tools then name it
 * after its text). The part before the first '=' is a name only when it is
 * made of letters, digits, '_', '.' and '-': so "the answer is x=5" stays one
 * text. A leading '=' means no name ("=x=5 is correct" is the text
 * "x=5 is correct").
 */
#ifndef RM_CLI_PRINCIPLE_H
#define RM_CLI_PRINCIPLE_H

#include <stddef.h>

typedef struct cli_principle {
    const char *name;         /* NULL when unnamed; points into the flag's value, not terminated: name_len */
    size_t name_len;
    const char *text;         /* points into the flag's value (terminated) */
} cli_principle;

/* Splits a flag's value. Returns 0, or -1 when the text is empty (after the name). */
int cli_principle_parse(const char *value, cli_principle *out);

#endif
