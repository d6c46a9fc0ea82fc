/*
 * test_clock.c - the fixed clock "YYYY-MM-DDTHH:MM:SS" (lib/clock.c): real
 * dates accepted with the right weekday, impossible ones refused instead of
 * being normalised into another day (2020-13-45T99:99:99 used to become
 * 18 Feb 2021), random dates against timegm's own calendar; rm_load refuses
 * a bad rm_params.now before it reads any file; a template's strftime_now
 * refuses it too.
 */
#include <time.h>

#include "clock.h"
#include "jinja.h"
#include "test.h"

static unsigned long long rng_state;
static unsigned rnd(unsigned n) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)((rng_state >> 33) % n);
}

static void accepted(const char *s, int wday, int yday) {
    struct tm tm;
    rm_err err = {0};
    rm_status st = rm_clock_parse(s, "now", &tm, &err);
    CHECK(st == RM_OK, "%s accepted: %s", s, err.msg);
    if (st == RM_OK)
        CHECK(tm.tm_wday == wday && tm.tm_yday == yday, "%s: weekday %d day %d", s, tm.tm_wday, tm.tm_yday);
}

static void refused(const char *s, const char *why) {
    rm_err err = {0};
    rm_status st = rm_clock_parse(s, "rm_params.now", NULL, &err);
    CHECK(st == RM_ERR_INVALID_ARG && strstr(err.msg, "rm_params.now") && strstr(err.msg, why),
          "\"%s\" refused naming the field and \"%s\": %d %s", s, why, st, err.msg);
}

static void fixed_cases(void) {
    accepted("2024-02-29T23:59:59", 4, 59);   /* a Thursday, the 60th day */
    accepted("2000-02-29T00:00:00", 2, 59);   /* divisible by 400: a leap year */
    accepted("2026-11-26T09:30:00", 4, 329);
    accepted("0001-01-01T00:00:00", 1, 0);
    accepted("9999-12-31T23:59:59", 5, 364);
    refused("2020-13-45T99:99:99", "month");
    refused("2020-00-10T00:00:00", "month");
    refused("2023-02-29T00:00:00", "no such day");
    refused("1900-02-29T00:00:00", "no such day");   /* divisible by 100, not 400 */
    refused("2020-04-31T00:00:00", "no such day");
    refused("2020-01-00T00:00:00", "no such day");
    refused("2020-01-01T24:00:00", "hour");
    refused("2020-01-01T00:60:00", "minute");
    refused("2020-01-01T00:00:60", "second");
    refused("0000-01-01T00:00:00", "year 0");
    refused("2020-01-01", "YYYY-MM-DDTHH:MM:SS");
    refused("2020-01-01 10:00:00", "YYYY-MM-DDTHH:MM:SS");
    refused("2020-1-01T00:00:00", "YYYY-MM-DDTHH:MM:SS");
    refused("2020-01-01T00:00:00Z", "YYYY-MM-DDTHH:MM:SS");
    refused("+020-01-01T00:00:00", "YYYY-MM-DDTHH:MM:SS");
    refused("", "YYYY-MM-DDTHH:MM:SS");
    refused("yesterday", "YYYY-MM-DDTHH:MM:SS");
}

/* Random fields, some out of range: accepted exactly when timegm keeps them as they are. */
static void random_dates(int n) {
    int wrong = 0, n_valid = 0;
    for (int i = 0; i < n; i++) {
        int Y = 1 + (int)rnd(9999), M = (int)rnd(14), D = (int)rnd(33), h = (int)rnd(26), m = (int)rnd(62),
            s = (int)rnd(62);
        char text[64];
        snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d", Y, M, D, h, m, s);
        struct tm want = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m, .tm_sec = s};
        struct tm norm = want;
        time_t t = timegm(&norm);
        struct tm back;
        gmtime_r(&t, &back);
        int valid = back.tm_year == want.tm_year && back.tm_mon == want.tm_mon && back.tm_mday == want.tm_mday &&
                    back.tm_hour == h && back.tm_min == m && back.tm_sec == s;
        struct tm got;
        rm_err err = {0};
        rm_status st = rm_clock_parse(text, "now", &got, &err);
        int ok = valid ? st == RM_OK && got.tm_wday == back.tm_wday && got.tm_yday == back.tm_yday
                       : st == RM_ERR_INVALID_ARG;
        n_valid += valid;
        if (!ok && wrong++ < 5)
            fprintf(stderr, "%s: timegm says %s, parse gave %d (%s)\n", text, valid ? "valid" : "invalid", st, err.msg);
    }
    CHECK(wrong == 0, "%d of %d random dates judged unlike timegm", wrong, n);
    fprintf(stderr, "%d random dates, %d of them real\n", n, n_valid);
}

static void load_refuses(void) {
    rm_params p;
    rm_params_init(&p);
    p.now = "2020-13-45T99:99:99";
    rm_model *m = (rm_model *)1;
    char msg[512] = "";
    /* A directory that does not exist: the parameter is refused before any file is read. */
    rm_status st = rm_load("/nonexistent/model", &p, &m, msg, sizeof msg);
    CHECK(st == RM_ERR_INVALID_ARG && m == NULL, "rm_load refuses a bad now first: %d", st);
    CHECK(strstr(msg, "rm_params.now") && strstr(msg, "2020-13-45T99:99:99") && strstr(msg, "month"), "message: %s",
          msg);
    p.now = "2020-02-30T00:00:00";
    st = rm_load("/nonexistent/model", &p, &m, msg, sizeof msg);
    CHECK(st == RM_ERR_INVALID_ARG && strstr(msg, "no such day"), "30 February: %d %s", st, msg);
    p.now = "2020-02-29T00:00:00";
    st = rm_load("/nonexistent/model", &p, &m, msg, sizeof msg);
    CHECK(st == RM_ERR_IO, "a valid now gets as far as the directory: %d %s", st, msg);
}

static void template_refuses(void) {
    static const char src[] = "{{ strftime_now('%d %b %Y') }}";
    rm_template *t = NULL;
    rm_err err = {0};
    CHECK(rm_template_parse(&t, src, sizeof src - 1, &err) == RM_OK, "parse: %s", err.msg);
    if (!t) return;
    rm_render_opts o = {0};
    char *out = NULL;
    size_t len = 0;
    o.now = "2021-02-29T10:00:00";
    rm_status st = rm_template_render(t, NULL, 0, &o, &out, &len, NULL, &err);
    CHECK(st == RM_ERR_INVALID_ARG && strstr(err.msg, "no such day"), "strftime_now refuses 29 Feb 2021: %d %s", st,
          err.msg);
    rm_mfree(out);
    out = NULL;
    o.now = "2024-02-29T10:00:00";
    st = rm_template_render(t, NULL, 0, &o, &out, &len, NULL, &err);
    CHECK(st == RM_OK && out && strcmp(out, "29 Feb 2024") == 0, "29 Feb 2024 renders: %s", out ? out : err.msg);
    rm_mfree(out);
    rm_template_free(t);
}

int main(void) {
    rm_global_init();
    rng_state = test_seed();
    fixed_cases();
    random_dates(getenv("RM_QUICK") && *getenv("RM_QUICK") == '1' ? 20000 : 200000);
    load_refuses();
    template_refuses();
    return test_summary("test_clock");
}
