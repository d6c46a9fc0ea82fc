/*
 * unicode.h - the few Unicode facts the template interpreter needs to behave
 * like Python's str: UTF-8 stepping, code point counts, whitespace and line
 * breaks as str.split()/str.splitlines() see them, simple case mapping and
 * character classes (through glibc's C.UTF-8 tables), and repr()'s idea of
 * a printable character. Strings reaching here are valid UTF-8 (inputs are
 * checked at the door), but every function stays in bounds on any bytes.
 */
#ifndef RM_JINJA_UNICODE_H
#define RM_JINJA_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* Decodes the code point starting at s[i] (i < len) into *cp and returns its
 * byte length (1 for a stray byte, which decodes as itself). */
size_t ju_decode(const char *s, size_t len, size_t i, uint32_t *cp);
/* Encodes cp as UTF-8 into out (room for 4 bytes); returns the length. */
size_t ju_encode(uint32_t cp, char *out);
/* Number of code points in s[0..len). */
size_t ju_count(const char *s, size_t len);
/* Byte offset of code point number `index` (clamped to len). */
size_t ju_offset(const char *s, size_t len, size_t index);
/* 1 when every byte is ASCII. */
int ju_is_ascii(const char *s, size_t len);

/* Python's str.isspace() for one code point. */
int ju_isspace(uint32_t cp);
/* Line boundaries of str.splitlines() (\n \r \v \f \x1c-\x1e \x85 \u2028 \u2029). */
int ju_islinebreak(uint32_t cp);
/* Simple (one to one) case mapping and classes. */
uint32_t ju_upper(uint32_t cp);
uint32_t ju_lower(uint32_t cp);
int ju_isupper(uint32_t cp);
int ju_islower(uint32_t cp);
int ju_isalpha(uint32_t cp);
int ju_isdigit(uint32_t cp);
int ju_isalnum(uint32_t cp);
/* Python's str.isprintable() for one code point (what repr() leaves as is). */
int ju_isprintable(uint32_t cp);

#endif
