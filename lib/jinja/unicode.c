/*
 * unicode.c - UTF-8 stepping and Python's character classes (see unicode.h).
 * Case mapping and letter/digit classes come from glibc's C.UTF-8 locale,
 * opened once and used through the *_l functions so the caller's locale is
 * never touched; without it we fall back to ASCII rules.
 */
#define _GNU_SOURCE
#include "jinja/unicode.h"

#include <locale.h>
#include <pthread.h>
#include <wctype.h>

size_t ju_decode(const char *str, size_t len, size_t i, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)str;
    unsigned c = s[i];
    size_t n;
    if (c < 0x80) { *cp = c; return 1; }
    if (c >= 0xC2 && c <= 0xDF) n = 1;
    else if (c >= 0xE0 && c <= 0xEF) n = 2;
    else if (c >= 0xF0 && c <= 0xF4) n = 3;
    else { *cp = c; return 1; }
    if (len - i <= n) { *cp = c; return 1; }
    uint32_t v = c & (0x3F >> n);
    for (size_t k = 1; k <= n; k++) {
        if ((s[i + k] & 0xC0) != 0x80) { *cp = c; return 1; }
        v = (v << 6) | (s[i + k] & 0x3F);
    }
    *cp = v;
    return n + 1;
}

size_t ju_encode(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = 0xC0 | (cp >> 6); o[1] = 0x80 | (cp & 0x3F); return 2; }
    if (cp < 0x10000) {
        o[0] = 0xE0 | (cp >> 12); o[1] = 0x80 | ((cp >> 6) & 0x3F); o[2] = 0x80 | (cp & 0x3F);
        return 3;
    }
    o[0] = 0xF0 | (cp >> 18); o[1] = 0x80 | ((cp >> 12) & 0x3F);
    o[2] = 0x80 | ((cp >> 6) & 0x3F); o[3] = 0x80 | (cp & 0x3F);
    return 4;
}

size_t ju_count(const char *s, size_t len) {
    size_t n = 0;
    /* Every byte that is not a continuation byte starts a code point. */
    for (size_t i = 0; i < len; i++) n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

size_t ju_offset(const char *s, size_t len, size_t index) {
    size_t i = 0;
    uint32_t cp;
    while (index > 0 && i < len) { i += ju_decode(s, len, i, &cp); index--; }
    return i;
}

int ju_is_ascii(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80) return 0;
    return 1;
}

int ju_isspace(uint32_t c) {
    if (c < 0x80) return (c >= 9 && c <= 13) || (c >= 0x1C && c <= 0x20);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

int ju_islinebreak(uint32_t c) {
    return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E) || c == 0x85 ||
           c == 0x2028 || c == 0x2029;
}

static locale_t utf8_locale;
static void open_locale(void) { utf8_locale = newlocale(LC_ALL_MASK, "C.UTF-8", (locale_t)0); }
static locale_t loc(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, open_locale);
    return utf8_locale;
}

uint32_t ju_upper(uint32_t c) {
    if (c < 0x80) return c >= 'a' && c <= 'z' ? c - 32 : c;
    return loc() ? (uint32_t)towupper_l((wint_t)c, loc()) : c;
}
uint32_t ju_lower(uint32_t c) {
    if (c < 0x80) return c >= 'A' && c <= 'Z' ? c + 32 : c;
    return loc() ? (uint32_t)towlower_l((wint_t)c, loc()) : c;
}
int ju_isupper(uint32_t c) {
    if (c < 0x80) return c >= 'A' && c <= 'Z';
    return loc() && iswupper_l((wint_t)c, loc());
}
int ju_islower(uint32_t c) {
    if (c < 0x80) return c >= 'a' && c <= 'z';
    return loc() && iswlower_l((wint_t)c, loc());
}
int ju_isalpha(uint32_t c) {
    if (c < 0x80) return (c | 32) >= 'a' && (c | 32) <= 'z';
    return loc() && iswalpha_l((wint_t)c, loc());
}
int ju_isdigit(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    return loc() && iswdigit_l((wint_t)c, loc());
}
int ju_isalnum(uint32_t c) { return ju_isalpha(c) || ju_isdigit(c); }

/* Python's non-printable set: categories Cc, Cf, Cs, Co, Cn, Zl, Zp and Zs
 * other than the space. The format characters and separators are listed;
 * unassigned code points are taken from glibc's print class. */
int ju_isprintable(uint32_t c) {
    if (c < 0x20 || c == 0x7F) return 0;
    if (c < 0x7F) return 1;
    if (c <= 0xA0 || c == 0xAD) return 0;
    static const uint32_t ranges[][2] = {
        {0x0600, 0x0605}, {0x061C, 0x061C}, {0x06DD, 0x06DD}, {0x070F, 0x070F}, {0x0890, 0x0891},
        {0x08E2, 0x08E2}, {0x1680, 0x1680}, {0x180E, 0x180E}, {0x2000, 0x200F}, {0x2028, 0x202F},
        {0x205F, 0x2064}, {0x2066, 0x206F}, {0x3000, 0x3000}, {0xD800, 0xF8FF}, {0xFEFF, 0xFEFF},
        {0xFFF9, 0xFFFB}, {0x110BD, 0x110BD}, {0x110CD, 0x110CD}, {0x13430, 0x1343F},
        {0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A}, {0xE0001, 0xE0001}, {0xE0020, 0xE007F},
        {0xF0000, 0x10FFFF},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (c >= ranges[i][0] && c <= ranges[i][1]) return 0;
    return loc() ? iswprint_l((wint_t)c, loc()) != 0 : 1;
}
