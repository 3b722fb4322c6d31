/* A differencing disk's parent: found through the locators (W2ru, then
 * W2ku, then the UTF-16BE name in the header), each a Windows path
 * resolved relative to the child's directory, the first that carries the
 * parent's UUID (else the first that exists); the block layer opens it
 * (depth and loop limits, locks), then vhd_verify_parent checks that it is
 * the disk the child was made from (UUID, and the timestamp when set). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/file.h"
#include "util/utf16.h"
#include "vhd/vhd.h"

extern const struct blk_driver blk_driver_vpc;

/* A Windows path as a path relative to the child's directory (or a Unix
 * absolute one): separators become '/', a leading ".\" goes; a drive
 * letter path ("C:\dir\p.vhd") cannot be reached here, so its last
 * component is looked for next to the child. NULL if nothing is left. */
static char *local_name(const char *win)
{
    char *s = strdup(win);
    if (!s)
        return NULL;
    for (char *c = s; *c; c++)
        if (*c == '\\')
            *c = '/';
    const char *p = s;
    bool drive = ((p[0] >= 'A' && p[0] <= 'Z') || (p[0] >= 'a' && p[0] <= 'z')) && p[1] == ':';
    if (drive || strncmp(p, "//", 2) == 0) {
        const char *slash = strrchr(p, '/');
        p = slash ? slash + 1 : p + (drive ? 2 : 0);
    }
    while (strncmp(p, "./", 2) == 0)
        p += 2;
    char *out = *p ? strdup(p) : NULL;
    free(s);
    return out;
}

static const char *loc_code(uint32_t code, char buf[5])
{
    for (int i = 0; i < 4; i++) {
        uint8_t c = (uint8_t)(code >> (24 - 8 * i));
        buf[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    buf[4] = '\0';
    return buf;
}

/* The path a W2ru/W2ku locator holds, as UTF-8 (malloc'd). */
static int read_locator(struct blk_node *bs, struct vhd_state *s, int i, char **out,
                        struct scuse_err *err)
{
    const struct vhd_locator *l = &s->dh.loc[i];
    char code[5];
    loc_code(l->code, code);
    if (l->length == 0 || l->length > VHD_MAX_LOCATOR_BYTES)
        return err_set(err, -EINVAL, "'%s': parent locator %d (%s) is %u bytes long (1 to %u)",
                       bs->path, i, code, l->length, VHD_MAX_LOCATOR_BYTES);
    if (l->offset > s->file_size || l->length > s->file_size - l->offset)
        return err_set(err, -EINVAL, "'%s': parent locator %d (%s) at offset %" PRIu64 " (%u bytes) "
                       "runs past the end of the file (size %" PRIu64 ")", bs->path, i, code,
                       l->offset, l->length, s->file_size);
    uint8_t *buf = malloc(l->length);
    if (!buf)
        return err_set(err, -ENOMEM, "out of memory");
    int r = file_pread_exact(s->fd, buf, l->length, l->offset);
    if (r < 0) {
        free(buf);
        return err_set(err, r, "'%s': cannot read parent locator %d (%s) at %" PRIu64 ": %s",
                       bs->path, i, code, l->offset, strerror(-r));
    }
    const char *why = NULL;
    *out = utf16_to_utf8(buf, l->length, false, &why);
    free(buf);
    if (!*out)
        return err_set(err, -EINVAL, "'%s': parent locator %d (%s) is not UTF-16 text (%s)",
                       bs->path, i, code, why);
    return 0;
}

/* Whether buf holds a footer with a right checksum whose UUID is uuid. */
static bool footer_has(const uint8_t *buf, const uint8_t *uuid)
{
    return memcmp(buf, VHD_COOKIE, 8) == 0 &&
           vhd_checksum(buf, VHD_FOOTER_SIZE, 64) == vhd_be32(buf + 64) &&
           memcmp(buf + 68, uuid, 16) == 0;
}

/* Does name, taken relative to the child, exist (1), and is it a VHD
 * with the parent's UUID (2)? */
static int look_near(const char *child, const char *name, const uint8_t *uuid)
{
    char *path = blk_path_beside(child, name);
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    free(path);
    if (fd < 0)
        return 0;
    uint8_t buf[VHD_FOOTER_SIZE];
    uint64_t size = 0;
    bool match = file_pread_exact(fd, buf, sizeof(buf), 0) == 0 && footer_has(buf, uuid);
    if (!match && file_size(fd, &size) == 0 && size >= VHD_FOOTER_SIZE)
        match = file_pread_exact(fd, buf, sizeof(buf), size - VHD_FOOTER_SIZE) == 0 &&
                footer_has(buf, uuid);
    close(fd);
    return match ? 2 : 1;
}

int vhd_find_parent(struct blk_node *bs, struct vhd_state *s, struct scuse_err *err)
{
    const char *why = NULL;
    s->parent_name = utf16_to_utf8(s->dh.parent_name, sizeof(s->dh.parent_name), true, &why);
    if (!s->parent_name)
        return err_set(err, -EINVAL, "'%s': the parent name in the dynamic header is not UTF-16 "
                       "text (%s)", bs->path, why);
    /* Candidates in order: every W2ru, every W2ku, the name. */
    char *cand[2 * VHD_NLOC + 1];
    int n = 0, r = 0;
    static const uint32_t order[] = { VHD_PLAT_W2RU, VHD_PLAT_W2KU };
    for (int pass = 0; pass < 2 && r == 0; pass++) {
        for (int i = 0; i < VHD_NLOC && r == 0; i++) {
            if (s->dh.loc[i].code != order[pass])
                continue;
            char *text = NULL;
            r = read_locator(bs, s, i, &text, err);
            if (r == 0) {
                char *name = local_name(text);
                if (name)
                    cand[n++] = name;
            }
            free(text);
        }
    }
    if (r == 0 && s->parent_name[0]) {
        char *name = local_name(s->parent_name);
        if (name)
            cand[n++] = name;
    }
    /* The first that is the parent; else the first that exists, for
     * vhd_verify_parent to refuse with both UUIDs. */
    int pick = -1, found = -1;
    for (int i = 0; r == 0 && i < n && pick < 0; i++) {
        int k = look_near(bs->path, cand[i], s->dh.parent_uuid);
        if (k == 2)
            pick = i;
        else if (k == 1 && found < 0)
            found = i;
    }
    if (pick < 0)
        pick = found;
    if (r == 0 && n == 0)
        r = err_set(err, -EINVAL, "'%s': a differencing disk that names no parent (no W2ru or "
                    "W2ku locator, no parent name)", bs->path);
    if (r == 0) {
        /* None there: the first candidate, for the block layer to report. */
        bs->backing_name = cand[pick < 0 ? 0 : pick];
        cand[pick < 0 ? 0 : pick] = NULL;
        bs->backing_fmt = strdup(blk_driver_vpc.name);
        if (!bs->backing_fmt)
            r = err_set(err, -ENOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++)
        free(cand[i]);
    return r;
}

static void ts_text(uint32_t vhd_ts, char *buf, size_t len)
{
    time_t t = (time_t)vhd_ts + VHD_EPOCH;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

int vhd_verify_parent(struct blk_node *bs, struct scuse_err *err)
{
    struct vhd_state *s = bs->state;
    struct blk_node *p = bs->backing;
    if (!s->diff || !p)
        return 0;
    if (p->drv != &blk_driver_vpc)
        return err_set(err, -EINVAL, "'%s': parent '%s' is not a VHD", bs->path, p->path);
    const struct vhd_state *ps = p->state;
    if (memcmp(ps->ft.uuid, s->dh.parent_uuid, 16) != 0) {
        char want[37], have[37];
        vhd_uuid_text(s->dh.parent_uuid, want);
        vhd_uuid_text(ps->ft.uuid, have);
        return err_set(err, -EINVAL, "'%s': parent UUID mismatch: the child names parent %s, "
                       "'%s' is %s", bs->path, want, p->path, have);
    }
    if (s->dh.parent_ts == 0)
        return 0;
    /* The specification calls it the parent's modification time; writers
     * store the parent file's mtime (blktap, DiscUtils) or its footer's
     * time stamp: either matching is the parent unchanged. */
    struct stat st;
    if (fstat(p->fd, &st) < 0)
        return err_set(err, -errno, "'%s': cannot stat parent '%s': %s", bs->path, p->path,
                       strerror(errno));
    int64_t mtime = (int64_t)st.st_mtime - VHD_EPOCH;
    if (s->dh.parent_ts == ps->ft.timestamp || mtime == (int64_t)s->dh.parent_ts)
        return 0;
    char want[40], have[40];
    ts_text(s->dh.parent_ts, want, sizeof(want));
    ts_text((uint32_t)mtime, have, sizeof(have));
    return err_set(err, -EINVAL, "'%s': parent timestamp mismatch: the child records %u (%s), "
                   "parent '%s' was modified at %" PRId64 " (%s); if the parent is unchanged, "
                   "'touch -d @%" PRIu64 " %s' restores its time", bs->path, s->dh.parent_ts,
                   want, p->path, mtime, have, (uint64_t)s->dh.parent_ts + VHD_EPOCH, p->path);
}
