/* UTF-16 text from images (VHD parent names and locators, VHDX parent
 * locators) as UTF-8. */
#include <stdlib.h>

#include "util/utf16.h"

char *utf16_to_utf8(const uint8_t *p, size_t n, bool big_endian, const char **why)
{
    if (n & 1) {
        *why = "an odd number of bytes";
        return NULL;
    }
    char *out = malloc(n / 2 * 3 + 1);
    if (!out) {
        *why = "out of memory";
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        uint32_t u = big_endian ? (uint32_t)(p[i] << 8 | p[i + 1]) : (uint32_t)(p[i + 1] << 8 | p[i]);
        if (u == 0)
            break;
        if (u >= 0xdc00 && u <= 0xdfff) {
            *why = "a lone low surrogate";
            free(out);
            return NULL;
        }
        if (u >= 0xd800 && u <= 0xdbff) {
            uint32_t lo = 0;
            if (i + 3 < n)
                lo = big_endian ? (uint32_t)(p[i + 2] << 8 | p[i + 3])
                                : (uint32_t)(p[i + 3] << 8 | p[i + 2]);
            if (lo < 0xdc00 || lo > 0xdfff) {
                *why = "a high surrogate without its low half";
                free(out);
                return NULL;
            }
            u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
            i += 2;
        }
        if (u < 0x80) {
            out[o++] = (char)u;
        } else if (u < 0x800) {
            out[o++] = (char)(0xc0 | u >> 6);
            out[o++] = (char)(0x80 | (u & 0x3f));
        } else if (u < 0x10000) {
            out[o++] = (char)(0xe0 | u >> 12);
            out[o++] = (char)(0x80 | (u >> 6 & 0x3f));
            out[o++] = (char)(0x80 | (u & 0x3f));
        } else {
            out[o++] = (char)(0xf0 | u >> 18);
            out[o++] = (char)(0x80 | (u >> 12 & 0x3f));
            out[o++] = (char)(0x80 | (u >> 6 & 0x3f));
            out[o++] = (char)(0x80 | (u & 0x3f));
        }
    }
    out[o] = '\0';
    return out;
}
