/*
 * clock.c - parsing the fixed clock "YYYY-MM-DDTHH:MM:SS" (see clock.h).
 */
#include "clock.h"

#include <string.h>

/* Reads exactly n decimal digits at s; -1 when one is missing. */
static int digits(const char *s, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int days_in_month(int y, int m) {
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

rm_status rm_clock_parse(const char *s, const char *what, struct tm *out, rm_err *err) {
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    if (!s) return rm_fail(err, RM_ERR_INVALID_ARG, "%s is NULL", what);
    size_t len = strlen(s);
    int ok = len == sizeof shape - 1;
    for (size_t i = 0; ok && i < len; i++) ok = shape[i] == 'd' ? s[i] >= '0' && s[i] <= '9' : s[i] == shape[i];
    if (!ok)
        return rm_fail(err, RM_ERR_INVALID_ARG, "%s \"%.40s\" is not a date and time YYYY-MM-DDTHH:MM:SS", what, s);
    int Y = digits(s, 4), M = digits(s + 5, 2), D = digits(s + 8, 2);
    int h = digits(s + 11, 2), m = digits(s + 14, 2), sec = digits(s + 17, 2);
    const char *bad = NULL;
    if (Y < 1) bad = "year 0 does not exist (years run from 0001)";
    else if (M < 1 || M > 12) bad = "the month is not 01 to 12";
    else if (D < 1 || D > days_in_month(Y, M)) bad = "that month has no such day";
    else if (h > 23) bad = "the hour is not 00 to 23";
    else if (m > 59) bad = "the minute is not 00 to 59";
    else if (sec > 59) bad = "the second is not 00 to 59";
    if (bad) return rm_fail(err, RM_ERR_INVALID_ARG, "%s \"%s\": %s", what, s, bad);
    if (!out) return RM_OK;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);   /* a valid date: fills tm_wday / tm_yday, changes nothing else */
    gmtime_r(&t, &tm);
    *out = tm;
    return RM_OK;
}
