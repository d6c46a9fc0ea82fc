/*
 * test_templates_reference - the published chat templates against what
 * transformers rendered (../shared/fixtures/reference/templates.jsonl):
 * every row rendered byte for byte, every row transformers refused refused
 * here too. Also: all templates in ../shared/fixtures/templates/ parse, and
 * each renders a plain two-turn conversation or refuses it with a message.
 */
#include <dirent.h>
#include <jansson.h>

#include "jinja.h"
#include "test.h"

#define MAX_TEMPLATES 64

typedef struct cached {
    char name[256];
    rm_template *t;
    rm_status st;
    char msg[1024];
} cached;

static cached cache[MAX_TEMPLATES];
static int n_cached;

static cached *get_template(const char *name) {
    for (int i = 0; i < n_cached; i++)
        if (strcmp(cache[i].name, name) == 0) return &cache[i];
    if (n_cached == MAX_TEMPLATES) return NULL;
    cached *c = &cache[n_cached++];
    snprintf(c->name, sizeof c->name, "%s", name);
    char rel[512];
    snprintf(rel, sizeof rel, "templates/%s.jinja", name);
    char *src = NULL;
    size_t len = 0;
    rm_err err = {0};
    c->st = rm_read_file(fixture(rel), 0, &src, &len, &err);
    if (c->st == RM_OK) c->st = rm_template_parse(&c->t, src, len, &err);
    snprintf(c->msg, sizeof c->msg, "%s", err.msg);
    rm_mfree(src);
    return c;
}

static void test_rows(void) {
    const char *path = fixture("reference/templates.jsonl");
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "cannot open %s", path);
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rows = 0, refusals = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        json_error_t je;
        json_t *row = json_loadb(line, (size_t)n, 0, &je);
        CHECK(row != NULL, "row %d: %s", rows + 1, je.text);
        if (!row) continue;
        rows++;
        const char *name = json_string_value(json_object_get(row, "template"));
        json_t *msgs = json_object_get(row, "messages");
        json_t *want = json_object_get(row, "rendered");
        cached *c = name ? get_template(name) : NULL;
        CHECK(c && c->st == RM_OK, "row %d: template %s does not parse: %s", rows, name ? name : "?", c ? c->msg : "");
        if (!c || c->st != RM_OK) { json_decref(row); continue; }
        size_t nm = json_array_size(msgs);
        rm_chat_message *cm = calloc(nm ? nm : 1, sizeof *cm);
        for (size_t i = 0; i < nm; i++) {
            json_t *m = json_array_get(msgs, i);
            json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
            cm[i].role = json_string_value(role);
            cm[i].role_len = json_string_length(role);
            cm[i].content = json_string_value(content);
            cm[i].content_len = json_string_length(content);
        }
        rm_render_opts o = {0};
        o.bos_token = json_string_value(json_object_get(row, "bos_token"));
        o.eos_token = json_string_value(json_object_get(row, "eos_token"));
        o.add_generation_prompt = json_is_true(json_object_get(row, "add_generation_prompt"));
        o.now = json_string_value(json_object_get(row, "now"));
        o.mark_message_data = 1;
        char *out = NULL;
        uint8_t *mask = NULL;
        size_t len = 0;
        rm_err err = {0};
        rm_status st = rm_template_render(c->t, cm, nm, &o, &out, &len, &mask, &err);
        if (want) {
            const char *w = json_string_value(want);
            size_t wl = json_string_length(want);
            int same = st == RM_OK && len == wl && memcmp(out, w, wl) == 0;
            size_t at = 0;
            while (st == RM_OK && at < len && at < wl && out[at] == w[at]) at++;
            CHECK(same, "row %d (%s): %s; first difference at byte %zu", rows, name,
                  st == RM_OK ? "text differs" : err.msg, at);
        } else {
            refusals++;
            CHECK(st == RM_ERR_TEMPLATE && err.msg[0], "row %d (%s): transformers refused (%s) but we gave status %d", rows,
                  name, json_string_value(json_object_get(row, "error")), st);
        }
        free(out);
        free(mask);
        free(cm);
        json_decref(row);
    }
    free(line);
    fclose(f);
    CHECK(rows == 110, "expected 110 rows, read %d", rows);
    CHECK(refusals > 0, "no refusal rows read");
}

static void test_all_templates(void) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", fixture("templates"));
    DIR *d = opendir(dir);
    CHECK(d != NULL, "cannot open %s", dir);
    if (!d) return;
    int count = 0;
    struct dirent *e;
    static const rm_chat_message convo[] = {
        {"user", 4, "What is 2+2?", 12},
        {"assistant", 9, "4", 1},
        {"user", 4, "Thanks!", 7},
    };
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 7 || strcmp(e->d_name + l - 6, ".jinja") != 0) continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(l - 6), e->d_name);
        cached *c = get_template(name);
        count++;
        CHECK(c && c->st == RM_OK, "%s does not parse: %s", name, c ? c->msg : "cache full");
        if (!c || c->st != RM_OK) continue;
        rm_render_opts o = {0};
        o.bos_token = "<s>";
        o.eos_token = "</s>";
        o.add_generation_prompt = 1;
        o.now = "2026-11-26T09:30:00";
        char *out = NULL;
        rm_err err = {0};
        rm_status st = rm_template_render(c->t, convo, 3, &o, &out, NULL, NULL, &err);
        CHECK(st == RM_OK || (st == RM_ERR_TEMPLATE && err.msg[0]), "%s: status %d %s", name, st, err.msg);
        if (st == RM_OK) CHECK(strstr(out, "What is 2+2?") != NULL, "%s: the user's text is missing", name);
        free(out);
    }
    closedir(d);
    CHECK(count == 23, "expected 23 templates, found %d", count);
}

int main(void) {
    rm_global_init();
    if (!test_have_fixtures()) {   /* the templates and their renderings are fixtures */
        test_skip_fixtures(2);
        return test_summary("test_templates_reference");
    }
    test_rows();
    test_all_templates();
    for (int i = 0; i < n_cached; i++) rm_template_free(cache[i].t);
    return test_summary("test_templates_reference");
}
