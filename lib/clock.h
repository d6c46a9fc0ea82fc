/*
 * clock.h - the fixed clock behind strftime_now: "YYYY-MM-DDTHH:MM:SS"
 * (rm_params.now, a template line's "now", --now). One parser, so that a
 * date the loader accepts is a date the template renders, and an impossible
 * one (month 13, 30 February, 25:00) is refused everywhere instead of being
 * normalised into another day.
 */
#ifndef RM_CLOCK_H
#define RM_CLOCK_H

#include <time.h>

#include "common.h"

/* Parses s, exactly "YYYY-MM-DDTHH:MM:SS" (year 1 to 9999, a real calendar
 * date, hour 0-23, minute and second 0-59), into *tm as UTC with tm_wday and
 * tm_yday filled (tm may be NULL to only check). On failure returns
 * RM_ERR_INVALID_ARG with a message that begins with `what` (the field or
 * flag the text came from) and says which part is wrong. */
RM_INTERNAL rm_status rm_clock_parse(const char *s, const char *what, struct tm *tm, rm_err *err);

#endif
