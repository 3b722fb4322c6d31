#ifndef SCUSE_UTF16_H
#define SCUSE_UTF16_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* n bytes of UTF-16 (big- or little-endian), up to the first NUL, as a
 * malloc'd UTF-8 string; NULL with *why set (an odd length, a lone
 * surrogate, out of memory). */
char *utf16_to_utf8(const uint8_t *p, size_t n, bool big_endian, const char **why);

#endif
