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
#include "util/endian.h"
#include "util/utf16.h"
#include "yal/vhdx_bat.h"

#define LOCATOR_MAX (64u << 10)

static const uint8_t GUID_PLOC[16] = { 0x2d, 0x5f, 0xd3, 0xa8, 0x0b, 0xb3, 0x4d, 0x45,
                                       0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c };
static const uint8_t GUID_VHDX_LOC[16] = { 0xb7, 0xef, 0x4a, 0xb0, 0x9e, 0xd1, 0x81, 0x4a,
                                           0xb7, 0x89, 0x25, 0xb8, 0xe9, 0x44, 0x59, 0x13 };

/* UTF-16LE to UTF-8 in out (cap bytes), '\\' as '/'; false on bad UTF-16,
 * a NUL inside, or no room. */
static bool utf8_of(const uint8_t *p, size_t n, char *out, size_t cap)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        if (p[i] == 0 && p[i + 1] == 0)
            return false;
    const char *why;
    char *s = utf16_to_utf8(p, n, false, &why);
    if (!s)
        return false;
    size_t l = strlen(s);
    bool ok = l < cap;
    if (ok) {
        for (size_t i = 0; i <= l; i++)
            out[i] = s[i] == '\\' ? '/' : s[i];
    }
    free(s);
    return ok;
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
    unsigned n = le16_at(p + 18);
    if (memcmp(p, GUID_VHDX_LOC, 16) != 0) {
        snprintf(why, wl, "the parent locator is not of the VHDX type");
        r = -ENOTSUP;
    } else if (20 + 12 * (size_t)n > len) {
        snprintf(why, wl, "the parent locator's %u entries run past its %u bytes", n, len);
        r = -EINVAL;
    }
    for (unsigned i = 0; r == 0 && i < n; i++) {
        const uint8_t *e = p + 20 + 12 * i;
        uint32_t ko = le32_at(e), vo = le32_at(e + 4);
        unsigned kl = le16_at(e + 8), vl = le16_at(e + 10);
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
