/* A differencing VHDX's parent locator (MS-VHDX 2.6.2.6): a header (the
 * locator type GUID, a key-value count), then entries {key offset, value
 * offset, key length, value length} pointing at UTF-16LE strings inside
 * the item. libvhdi reads the parent's data once given the parent, but
 * does not say where the parent is. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "yal/vhdx_bat.h"

#define LOCATOR_MAX (64u << 10)

static const uint8_t GUID_PLOC[16] = { 0x2d, 0x5f, 0xd3, 0xa8, 0x0b, 0xb3, 0x4d, 0x45,
                                       0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c };
static const uint8_t GUID_VHDX_LOC[16] = { 0xb7, 0xef, 0x4a, 0xb0, 0x9e, 0xd1, 0x81, 0x4a,
                                           0xb7, 0x89, 0x25, 0xb8, 0xe9, 0x44, 0x59, 0x13 };

static unsigned u16(const uint8_t *p)
{
    return (unsigned)p[0] | (unsigned)p[1] << 8;
}

/* UTF-16LE to UTF-8, '\\' as '/'; false on bad UTF-16 or no room. */
static bool utf8_of(const uint8_t *p, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    if (n % 2)
        return false;
    for (size_t i = 0; i + 1 < n; i += 2) {
        unsigned c = u16(p + i);
        if (c >= 0xd800 && c < 0xdc00) {
            if (i + 3 >= n || u16(p + i + 2) < 0xdc00 || u16(p + i + 2) >= 0xe000)
                return false;
            c = 0x10000 + ((c - 0xd800) << 10) + (u16(p + i + 2) - 0xdc00);
            i += 2;
        } else if (c >= 0xdc00 && c < 0xe000) {
            return false;
        }
        if (c == 0)
            return false;
        if (c == '\\')
            c = '/';
        uint8_t b[4];
        size_t k = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
        if (k == 1) {
            b[0] = (uint8_t)c;
        } else if (k == 2) {
            b[0] = (uint8_t)(0xc0 | c >> 6);
            b[1] = (uint8_t)(0x80 | (c & 0x3f));
        } else if (k == 3) {
            b[0] = (uint8_t)(0xe0 | c >> 12);
            b[1] = (uint8_t)(0x80 | (c >> 6 & 0x3f));
            b[2] = (uint8_t)(0x80 | (c & 0x3f));
        } else {
            b[0] = (uint8_t)(0xf0 | c >> 18);
            b[1] = (uint8_t)(0x80 | (c >> 12 & 0x3f));
            b[2] = (uint8_t)(0x80 | (c >> 6 & 0x3f));
            b[3] = (uint8_t)(0x80 | (c & 0x3f));
        }
        if (o + k >= cap)
            return false;
        memcpy(out + o, b, k);
        o += k;
    }
    out[o] = '\0';
    return true;
}

static bool key_is(const uint8_t *p, size_t n, const char *ascii)
{
    size_t l = strlen(ascii);
    if (n != 2 * l)
        return false;
    for (size_t i = 0; i < l; i++)
        if (p[2 * i] != (uint8_t)ascii[i] || p[2 * i + 1] != 0)
            return false;
    return true;
}

int vhdx_parent_locator(int fd, struct vhdx_locator *loc, char *why, size_t wl)
{
    memset(loc, 0, sizeof(*loc));
    uint64_t off;
    uint32_t len;
    int r = vhdx_meta_find(fd, GUID_PLOC, &off, &len);
    if (r < 0) {
        snprintf(why, wl, "%s", r == -ENOENT ? "no parent locator in its metadata" : strerror(-r));
        return r == -ENOENT ? -EINVAL : r;
    }
    if (len < 20 || len > LOCATOR_MAX) {
        snprintf(why, wl, "a parent locator of %u bytes (20 to 65536)", len);
        return -EINVAL;
    }
    uint8_t *p = malloc(len);
    if (!p)
        return -ENOMEM;
    r = file_pread_exact(fd, p, len, off);
    if (r < 0) {
        snprintf(why, wl, "cannot read the parent locator: %s", strerror(-r));
        free(p);
        return r;
    }
    r = 0;
    unsigned n = u16(p + 18);
    if (memcmp(p, GUID_VHDX_LOC, 16) != 0) {
        snprintf(why, wl, "the parent locator is not of the VHDX type");
        r = -ENOTSUP;
    } else if (20 + 12 * (size_t)n > len) {
        snprintf(why, wl, "the parent locator's %u entries run past its %u bytes", n, len);
        r = -EINVAL;
    }
    for (unsigned i = 0; r == 0 && i < n; i++) {
        const uint8_t *e = p + 20 + 12 * i;
        uint32_t ko = (uint32_t)u16(e) | (uint32_t)u16(e + 2) << 16;
        uint32_t vo = (uint32_t)u16(e + 4) | (uint32_t)u16(e + 6) << 16;
        unsigned kl = u16(e + 8), vl = u16(e + 10);
        if (ko > len || kl > len - ko || vo > len || vl > len - vo) {
            snprintf(why, wl, "parent locator entry %u points past the locator", i);
            r = -EINVAL;
            break;
        }
        char *dst = key_is(p + ko, kl, "relative_path") ? loc->relative
                    : key_is(p + ko, kl, "absolute_win32_path") ? loc->absolute
                    : key_is(p + ko, kl, "volume_path") ? loc->volume : NULL;
        if (dst && !utf8_of(p + vo, vl, dst, sizeof(loc->relative))) {
            snprintf(why, wl, "parent locator entry %u: not a UTF-16 path (or too long)", i);
            r = -EINVAL;
        }
    }
    free(p);
    return r;
}
