/* create -f vpc: qemu-img's layouts (footer copy, dynamic header at 512,
 * BAT at 1536, footer; a fixed disk's data then its footer), its sizes
 * (CHS-rounded up, or exact with force_size) and its creator fields, so
 * QEMU gives the file the same virtual size; and differencing children
 * (-b PARENT -F vpc), which qemu-img cannot make: the parent's size,
 * geometry and UUID, its file's modification time, its name, and W2ru and
 * W2ku locators after the BAT. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/file.h"
#include "vhd/vhd.h"

extern const struct blk_driver blk_driver_vpc;

const struct blk_opt_desc vhd_create_opts[] = {
    { "subformat", BLK_OPT_STR, "Type of virtual hard disk format. Supported formats are {dynamic (default) | fixed}" },
    { "force_size", BLK_OPT_BOOL, "Force disk size calculation to use the actual size specified, rather than using the nearest CHS-based calculation" },
    { "block_size", BLK_OPT_SIZE, "Block size of a dynamic or differencing disk (512 to 256M, a power of two; default 2M)" },
    { NULL, 0, NULL },
};

struct params {
    bool fixed, force_size;
    uint32_t block_size;
};

static int parse_size(const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: break;
    }
    if (errno || end == v || *end || *v == '-' || n > (UINT64_MAX >> shift))
        return -EINVAL;
    *out = (uint64_t)n << shift;
    return 0;
}

static int parse_params(const char *path, const struct blk_create_opts *o, struct params *p,
                        struct scuse_err *err)
{
    *p = (struct params){ .block_size = VHD_DEFAULT_BLOCK };
    for (int i = 0; i < o->o.n; i++) {
        const char *k = o->o.kv[i].key, *v = o->o.kv[i].val;
        if (!strcmp(k, "subformat")) {
            if (!strcmp(v, "fixed"))
                p->fixed = true;
            else if (strcmp(v, "dynamic") != 0)
                return err_set(err, -EINVAL, "'%s': subformat must be dynamic or fixed, not '%s'",
                               path, v);
        } else if (!strcmp(k, "force_size")) {
            if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true"))
                p->force_size = true;
            else if (strcmp(v, "off") && strcmp(v, "no") && strcmp(v, "false"))
                return err_set(err, -EINVAL, "'%s': option 'force_size' takes 'on' or 'off', "
                               "not '%s'", path, v);
        } else if (!strcmp(k, "block_size")) {
            uint64_t b;
            if (parse_size(v, &b) < 0 || b < VHD_MIN_BLOCK || b > VHD_MAX_BLOCK || (b & (b - 1)))
                return err_set(err, -EINVAL, "'%s': block_size must be a power of two from %u to "
                               "%u, not '%s'", path, VHD_MIN_BLOCK, VHD_MAX_BLOCK, v);
            p->block_size = (uint32_t)b;
        }
    }
    if (p->fixed && o->backing_file)
        return err_set(err, -EINVAL, "'%s': a fixed VHD cannot have a parent (a differencing disk "
                       "is dynamic)", path);
    return 0;
}

/* qemu-img's sizing: the smallest CHS geometry holding the size (rounding
 * it up), or with force_size the largest geometry and the exact size. */
static int size_footer(const char *path, uint64_t size, bool force, struct vhd_footer *f,
                       struct scuse_err *err)
{
    uint64_t want = size / VHD_SECTOR;
    uint16_t c = 0;
    uint8_t h = 0, s = 0;
    if (force) {
        c = VHD_CHS_MAX_C;
        h = VHD_CHS_MAX_H;
        s = VHD_CHS_MAX_S;
    } else {
        if (want > VHD_MAX_GEOMETRY)
            want = VHD_MAX_GEOMETRY;
        for (uint64_t i = 0; want > (uint64_t)c * h * s; i++)
            vhd_geometry(want + i, &c, &h, &s);
    }
    uint64_t sectors = (uint64_t)c * h * s;
    if (sectors == VHD_MAX_GEOMETRY)
        sectors = size / VHD_SECTOR;
    if (sectors > VHD_MAX_SECTORS)
        return err_set(err, -EINVAL, "'%s': size %" PRIu64 " is over the VHD limit of 2040 GiB",
                       path, size);
    f->cyls = c;
    f->heads = h;
    f->secs = s;
    f->cur_size = f->orig_size = sectors * VHD_SECTOR;
    memcpy(f->creator_app, force ? "qem2" : "qemu", 4);
    return 0;
}

static void new_footer(struct vhd_footer *f, uint32_t type)
{
    memset(f, 0, sizeof(*f));
    f->features = 2;
    f->version = 0x00010000;
    f->data_offset = type == VHD_TYPE_FIXED ? VHD_FIXED_DATA_OFFSET : VHD_FOOTER_SIZE;
    time_t now = time(NULL);
    f->timestamp = now > VHD_EPOCH ? (uint32_t)(now - VHD_EPOCH) : 0;
    f->creator_version = 0x00050003;
    memcpy(f->creator_os, "Wi2k", 4);
    f->type = type;
    if (getrandom(f->uuid, sizeof(f->uuid), 0) != (ssize_t)sizeof(f->uuid)) {
        /* no entropy source: time and address still make it unique enough */
        uint64_t t = (uint64_t)now ^ (uint64_t)(uintptr_t)f;
        memcpy(f->uuid, &t, sizeof(t));
    }
    f->uuid[6] = (uint8_t)((f->uuid[6] & 0x0f) | 0x40);
    f->uuid[8] = (uint8_t)((f->uuid[8] & 0x3f) | 0x80);
}

/* UTF-8 to UTF-16 (big or little endian) into out; -1 if s is not UTF-8
 * or does not fit. */
static ssize_t to_utf16(const char *s, bool be, uint8_t *out, size_t cap)
{
    size_t o = 0;
    const uint8_t *p = (const uint8_t *)s;
    while (*p) {
        uint32_t u;
        int n;
        if (*p < 0x80) { u = *p; n = 0; }
        else if ((*p & 0xe0) == 0xc0) { u = *p & 0x1f; n = 1; }
        else if ((*p & 0xf0) == 0xe0) { u = *p & 0x0f; n = 2; }
        else if ((*p & 0xf8) == 0xf0) { u = *p & 0x07; n = 3; }
        else return -1;
        p++;
        for (int i = 0; i < n; i++, p++) {
            if ((*p & 0xc0) != 0x80)
                return -1;
            u = u << 6 | (*p & 0x3f);
        }
        uint16_t units[2];
        int k = 1;
        if (u >= 0x10000) {
            units[0] = (uint16_t)(0xd800 + ((u - 0x10000) >> 10));
            units[1] = (uint16_t)(0xdc00 + ((u - 0x10000) & 0x3ff));
            k = 2;
        } else {
            units[0] = (uint16_t)u;
        }
        for (int i = 0; i < k; i++) {
            if (o + 2 > cap)
                return -1;
            out[o++] = be ? (uint8_t)(units[i] >> 8) : (uint8_t)units[i];
            out[o++] = be ? (uint8_t)units[i] : (uint8_t)(units[i] >> 8);
        }
    }
    return (ssize_t)o;
}

/* The path of `to` relative to directory `from` (both absolute and
 * resolved): up from `from` to the deepest common directory, then down. */
static char *relative(const char *from, const char *to)
{
    /* the length of the common prefix, in whole components */
    size_t common = 0;
    for (size_t i = 0;; i++) {
        bool fe = from[i] == '\0' || from[i] == '/', te = to[i] == '\0' || to[i] == '/';
        if (fe && te)
            common = i;
        if (from[i] != to[i] || !from[i])
            break;
    }
    size_t ups = 0;
    for (const char *p = from + common; *p; p++)
        if (*p == '/' && p[1] && p[1] != '/')
            ups++;
    const char *rest = to + common;
    while (*rest == '/')
        rest++;
    char *out = malloc(ups * 3 + strlen(rest) + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (size_t k = 0; k < ups; k++, o += 3)
        memcpy(o, "../", 3);
    strcpy(o, rest);
    return out;
}

/* The Windows spelling of a path: '\' for '/', and ".\" before a
 * relative one. */
static char *windows_path(const char *p, bool rel)
{
    char *out = malloc(strlen(p) + 3);
    if (!out)
        return NULL;
    size_t o = 0;
    if (rel && strncmp(p, "../", 3) != 0) {
        out[o++] = '.';
        out[o++] = '\\';
    }
    for (; *p; p++)
        out[o++] = *p == '/' ? '\\' : *p;
    out[o] = '\0';
    return out;
}

struct parent_info {
    struct vhd_footer ft;
    uint64_t size;
    bool from_chs;
    uint32_t mtime;
    char *rel_win, *abs_win, *name;
};

static int read_parent(const char *path, const struct blk_create_opts *o, struct parent_info *pi,
                       struct scuse_err *err)
{
    const struct blk_driver *d = o->backing_fmt ? blk_driver_find(o->backing_fmt) : NULL;
    if (d != &blk_driver_vpc)
        return err_set(err, -EINVAL, "'%s': a VHD differencing disk's parent is a VHD (-F vpc), "
                       "not '%s'", path, o->backing_fmt ? o->backing_fmt : "(none)");
    struct blk_node fake = { .path = (char *)path, .backing_name = (char *)o->backing_file };
    char *bpath = blk_backing_path(&fake);
    if (!bpath)
        return err_set(err, -ENOMEM, "out of memory");
    struct blk_node *p = NULL;
    int r = blk_open(bpath, "vpc", BLK_OPEN_NO_BACKING | BLK_OPEN_SHARE, NULL, &p, err);
    if (r < 0) {
        free(bpath);
        return r;
    }
    const struct vhd_state *ps = p->state;
    pi->ft = ps->ft;
    pi->size = ps->size;
    pi->from_chs = ps->size_from_chs;
    struct stat st;
    if (fstat(p->fd, &st) == 0 && st.st_mtime > (time_t)VHD_EPOCH)
        pi->mtime = (uint32_t)(st.st_mtime - VHD_EPOCH);
    blk_close(p);

    char *abs = realpath(bpath, NULL);
    char *copy = strdup(path);
    char *dir = copy ? realpath(dirname(copy), NULL) : NULL;
    char *base = strdup(bpath);
    char *rel = NULL;
    if (abs && dir)
        rel = o->backing_file[0] == '/' ? relative(dir, abs) : strdup(o->backing_file);
    if (rel && abs && base) {
        pi->rel_win = windows_path(rel, true);
        pi->abs_win = windows_path(abs, false);
        pi->name = strdup(basename(base));
    }
    r = pi->rel_win && pi->abs_win && pi->name ? 0 : err_set(err, -ENOMEM, "'%s': cannot resolve "
                                                               "parent '%s'", path, bpath);
    free(abs);
    free(copy);
    free(dir);
    free(base);
    free(rel);
    free(bpath);
    return r;
}

static int write_all(int fd, const void *buf, size_t len, uint64_t off, const char *path,
                     const char *what, struct scuse_err *err)
{
    int r = file_pwrite_exact(fd, buf, len, off);
    return r < 0 ? err_set(err, r, "'%s': cannot write the %s: %s", path, what, strerror(-r)) : 0;
}

static int create_fixed(int fd, const char *path, struct vhd_footer *f, struct scuse_err *err)
{
    uint8_t b[VHD_FOOTER_SIZE] = { 0 };
    vhd_footer_encode(f, b);
    if (ftruncate(fd, (off_t)f->cur_size) < 0)
        return err_set(err, -errno, "'%s': cannot size the file: %s", path, strerror(errno));
    return write_all(fd, b, sizeof(b), f->cur_size, path, "footer", err);
}

static int create_sparse(int fd, const char *path, struct vhd_footer *f, uint64_t size,
                         uint32_t block_size, const struct parent_info *pi, struct scuse_err *err)
{
    struct vhd_dyn_header h = { 0 };
    h.data_offset = UINT64_MAX;
    h.table_offset = 3 * VHD_SECTOR;
    h.version = 0x00010000;
    h.block_size = block_size;
    uint64_t entries = (size + block_size - 1) / block_size;
    if (entries > VHD_MAX_BAT_ENTRIES)
        return err_set(err, -EFBIG, "'%s': %" PRIu64 " blocks of %u bytes are more than the BAT "
                       "may hold (%u)", path, entries, block_size, VHD_MAX_BAT_ENTRIES);
    h.max_entries = (uint32_t)entries;
    uint64_t bat_bytes = (entries * 4 + VHD_SECTOR - 1) / VHD_SECTOR * VHD_SECTOR;
    uint64_t end = h.table_offset + bat_bytes;

    uint8_t loc[2][VHD_MAX_LOCATOR_BYTES];
    size_t loc_len[2] = { 0, 0 };
    if (pi) {
        memcpy(h.parent_uuid, pi->ft.uuid, 16);
        h.parent_ts = pi->mtime;
        if (to_utf16(pi->name, true, h.parent_name, sizeof(h.parent_name)) < 0)
            return err_set(err, -EINVAL, "'%s': the parent's name '%s' is not UTF-8 or longer "
                           "than 255 UTF-16 units", path, pi->name);
        const char *texts[2] = { pi->rel_win, pi->abs_win };
        const uint32_t codes[2] = { VHD_PLAT_W2RU, VHD_PLAT_W2KU };
        for (int i = 0; i < 2; i++) {
            ssize_t n = to_utf16(texts[i], false, loc[i], sizeof(loc[i]));
            if (n <= 0)
                return err_set(err, -EINVAL, "'%s': the parent's path '%s' is not UTF-8 or too "
                               "long for a locator", path, texts[i]);
            loc_len[i] = (size_t)n;
            uint32_t space = (uint32_t)((loc_len[i] + VHD_SECTOR - 1) / VHD_SECTOR);
            h.loc[i] = (struct vhd_locator){ .code = codes[i], .space = space,
                                             .length = (uint32_t)n, .offset = end };
            end += (uint64_t)space * VHD_SECTOR;
        }
    }
    uint8_t fb[VHD_FOOTER_SIZE] = { 0 }, hb[VHD_DYN_HEADER_SIZE] = { 0 };
    vhd_footer_encode(f, fb);
    vhd_dyn_encode(&h, hb);
    uint8_t *bat = malloc(bat_bytes ? bat_bytes : 1);
    if (!bat)
        return err_set(err, -ENOMEM, "out of memory");
    memset(bat, 0xff, bat_bytes); /* the padding too, as qemu-img */
    int r = write_all(fd, fb, sizeof(fb), 0, path, "footer copy", err);
    if (r == 0)
        r = write_all(fd, hb, sizeof(hb), VHD_FOOTER_SIZE, path, "dynamic header", err);
    if (r == 0 && bat_bytes)
        r = write_all(fd, bat, bat_bytes, h.table_offset, path, "BAT", err);
    free(bat);
    for (int i = 0; r == 0 && pi && i < 2; i++)
        r = write_all(fd, loc[i], loc_len[i], h.loc[i].offset, path, "parent locator", err);
    if (r == 0 && ftruncate(fd, (off_t)end) < 0)
        r = err_set(err, -errno, "'%s': cannot size the file: %s", path, strerror(errno));
    if (r == 0)
        r = write_all(fd, fb, sizeof(fb), end, path, "footer", err);
    return r;
}

int vhd_create(const char *path, const struct blk_create_opts *o, struct scuse_err *err)
{
    struct params p;
    int r = parse_params(path, o, &p, err);
    if (r < 0)
        return r;
    struct parent_info pi = { 0 };
    struct vhd_footer f;
    new_footer(&f, p.fixed ? VHD_TYPE_FIXED : o->backing_file ? VHD_TYPE_DIFF : VHD_TYPE_DYNAMIC);
    /* whole sectors, rounded up, as qemu-img sizes every image */
    uint64_t size = o->size > UINT64_MAX - VHD_SECTOR ? o->size : (o->size + VHD_SECTOR - 1) &
                                                                   ~(uint64_t)(VHD_SECTOR - 1);
    if (o->backing_file) {
        r = read_parent(path, o, &pi, err);
        if (r == 0 && size != pi.size) {
            struct vhd_footer g;
            r = size_footer(path, size, p.force_size, &g, err);
            bool same = r == 0 && (g.cur_size == pi.size ||
                                   (uint64_t)g.cyls * g.heads * g.secs * VHD_SECTOR == pi.size);
            if (r == 0 && !same)
                r = err_set(err, -EINVAL, "'%s': a differencing disk has its parent's size (%" PRIu64
                            " bytes), not %" PRIu64, path, pi.size, size);
        }
        if (r == 0) {
            /* The parent's geometry, and a creator that makes QEMU size
             * the child as it sizes the parent. */
            f.cyls = pi.ft.cyls;
            f.heads = pi.ft.heads;
            f.secs = pi.ft.secs;
            f.cur_size = f.orig_size = pi.from_chs ? pi.ft.cur_size : pi.size;
            memcpy(f.creator_app, pi.from_chs ? "qemu" : "qem2", 4);
            size = pi.size;
        }
    } else {
        r = size_footer(path, size, p.force_size, &f, err);
        size = f.cur_size;
        if (r == 0) {
            bool chs;
            size = vhd_virtual_size(&f, &chs);
        }
    }
    if (r < 0)
        goto out;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        r = err_set(err, -errno, "'%s': cannot create: %s", path, strerror(errno));
        goto out;
    }
    r = p.fixed ? create_fixed(fd, path, &f, err)
                : create_sparse(fd, path, &f, size, p.block_size, o->backing_file ? &pi : NULL, err);
    if (r == 0 && (r = file_sync(fd)) < 0)
        err_set(err, r, "'%s': cannot sync: %s", path, strerror(-r));
    close(fd);
out:
    free(pi.rel_win);
    free(pi.abs_win);
    free(pi.name);
    return r;
}
