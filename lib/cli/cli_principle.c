/*
 * cli_principle.c - `--principle [name=]text` (see cli_principle.h).
 */
#include "cli_principle.h"

#include <string.h>

static int is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
}

int cli_principle_parse(const char *value, cli_principle *out) {
    out->name = NULL;
    out->name_len = 0;
    out->text = value;
    const char *eq = strchr(value, '=');
    if (eq == value) {
        out->text = value + 1;              /* "=text": explicitly unnamed */
    } else if (eq) {
        const char *p = value;
        while (p < eq && is_name_char(*p)) p++;
        if (p == eq) {
            out->name = value;
            out->name_len = (size_t)(eq - value);
            out->text = eq + 1;
        }
    }
    return *out->text ? 0 : -1;
}
