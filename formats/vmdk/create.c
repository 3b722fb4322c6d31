/* create: the layouts qemu-img makes (header fields, descriptor text and
 * table placement as qemu-img 7.2 writes them, so that the two tools'
 * images are interchangeable), except streamOptimized, which is made in
 * VMware's layout (GD_AT_END header, footer, end-of-stream marker).
 *
 *   monolithicSparse      one KDMV file, descriptor embedded at sector 1
 *   monolithicFlat        NAME.vmdk + NAME-flat.vmdk
 *   twoGbMaxExtentSparse  NAME.vmdk + NAME-s001.vmdk ... (2 GiB each)
 *   twoGbMaxExtentFlat    NAME.vmdk + NAME-f001.vmdk ...
 *   streamOptimized       one KDMV file, compressed grains with markers
 *
 * Sparse layout (qemu-img's): header | descriptor (20 sectors) |
 * redundant GD | redundant GTs | GD | GTs, every grain table allocated,
 * grains from the first grain boundary after them. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "io/file.h"
#include "vmdk/vmdk.h"

extern const struct blk_driver blk_driver_vmdk;

#define GRAIN 128u                       /* sectors: 64 KiB */
#define GTES 512u
#define DESC_SECTORS 20u
#define SPLIT_SECTORS (4194304ull)       /* 2 GiB per extent, as qemu-img */

const struct blk_opt_desc vmdk_create_opts[] = {
    { "subformat", BLK_OPT_STR, "VMDK flat extent format, can be one of {monolithicSparse "
      "(default) | monolithicFlat | twoGbMaxExtentSparse | twoGbMaxExtentFlat | streamOptimized}" },
    { "adapter_type", BLK_OPT_STR, "Virtual adapter type, can be one of ide (default), lsilogic, "
      "buslogic or legacyESX" },
    { "hwversion", BLK_OPT_STR, "VMDK hardware version" },
    { "compat6", BLK_OPT_BOOL, "VMDK version 6 image" },
    { "zeroed_grain", BLK_OPT_BOOL, "Enable efficient zero writes using the zeroed-grain GTE feature" },
    { "toolsversion", BLK_OPT_STR, "VMware guest tools version" },
    { NULL, 0, NULL },
};

struct vopts {
    const char *subformat, *adapter, *hwversion, *toolsversion;
    bool compat6, zeroed;
    bool split, flat, stream;
};

static int bool_opt(const char *path, const char *key, const char *v, bool *out,
                    struct scuse_err *err)
{
    if (strcmp(v, "on") == 0 || strcmp(v, "true") == 0)
        *out = true;
    else if (strcmp(v, "off") == 0 || strcmp(v, "false") == 0)
        *out = false;
    else
        return err_set(err, -EINVAL, "'%s': option %s takes on or off, not '%s'", path, key, v);
    return 0;
}

static bool digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static int parse_opts(const char *path, const struct blk_create_opts *o, struct vopts *v,
                      struct scuse_err *err)
{
    *v = (struct vopts){ .subformat = "monolithicSparse", .adapter = "ide",
                         .toolsversion = "2147483647" };
    int r = 0;
    for (int i = 0; r == 0 && i < o->o.n; i++) {
        const char *k = o->o.kv[i].key, *val = o->o.kv[i].val;
        if (strcmp(k, "subformat") == 0)
            v->subformat = val;
        else if (strcmp(k, "adapter_type") == 0)
            v->adapter = val;
        else if (strcmp(k, "hwversion") == 0)
            v->hwversion = val;
        else if (strcmp(k, "toolsversion") == 0)
            v->toolsversion = val;
        else if (strcmp(k, "compat6") == 0)
            r = bool_opt(path, k, val, &v->compat6, err);
        else if (strcmp(k, "zeroed_grain") == 0)
            r = bool_opt(path, k, val, &v->zeroed, err);
    }
    if (r < 0)
        return r;
    static const char *const subs[] = { "monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse",
                                        "twoGbMaxExtentFlat", "streamOptimized" };
    size_t i;
    for (i = 0; i < 5; i++)
        if (strcmp(v->subformat, subs[i]) == 0)
            break;
    if (i == 5)
        return err_set(err, -EINVAL, "'%s': unknown subformat '%s' (monolithicSparse, "
                       "monolithicFlat, twoGbMaxExtentSparse, twoGbMaxExtentFlat, "
                       "streamOptimized)", path, v->subformat);
    v->split = i == 2 || i == 3;
    v->flat = i == 1 || i == 3;
    v->stream = i == 4;
    if (strcmp(v->adapter, "ide") && strcmp(v->adapter, "lsilogic") &&
        strcmp(v->adapter, "buslogic") && strcmp(v->adapter, "legacyESX"))
        return err_set(err, -EINVAL, "'%s': unknown adapter_type '%s' (ide, lsilogic, buslogic, "
                       "legacyESX)", path, v->adapter);
    if (v->hwversion && v->compat6)
        return err_set(err, -EINVAL, "'%s': compat6 and hwversion cannot be given together",
                       path);
    if (v->hwversion && (!digits(v->hwversion) || strlen(v->hwversion) > 4))
        return err_set(err, -EINVAL, "'%s': hwversion must be a number, not '%s'", path,
                       v->hwversion);
    if (!digits(v->toolsversion) || strlen(v->toolsversion) > 10)
        return err_set(err, -EINVAL, "'%s': toolsversion must be a number, not '%s'", path,
                       v->toolsversion);
    if (v->flat && o->backing_file)
        return err_set(err, -EINVAL, "'%s': a flat image (%s) cannot have a backing file", path,
                       v->subformat);
    if (v->stream && o->backing_file)
        return err_set(err, -EINVAL, "'%s': a streamOptimized image cannot have a backing file",
                       path);
    if (o->backing_fmt && strcmp(o->backing_fmt, "vmdk") != 0)
        return err_set(err, -EINVAL, "'%s': a VMDK child's parent must be a VMDK image, not %s",
                       path, o->backing_fmt);
    return 0;
}

/* The parent's CID, read the way open reads it. */
static int parent_cid(const char *path, const char *backing, uint32_t *cid, struct scuse_err *err)
{
    struct blk_node fake = { .path = (char *)path, .backing_name = (char *)backing };
    char *bpath = blk_backing_path(&fake);
    if (!bpath)
        return err_set(err, -ENOMEM, "out of memory");
    struct blk_node *p;
    int r = blk_open(bpath, "vmdk", BLK_OPEN_SHARE | BLK_OPEN_NO_BACKING, NULL, &p, err);
    free(bpath);
    if (r < 0)
        return r;
    *cid = ((const struct vmdk_state *)p->state)->desc.cid;
    blk_close(p);
    return 0;
}

static uint32_t new_cid(void)
{
    uint32_t cid = 0;
    do {
        if (getrandom(&cid, sizeof(cid), 0) != sizeof(cid))
            cid = (uint32_t)(uintptr_t)&cid * 2654435761u;
    } while (cid >= 0xfffffffeu);
    return cid;
}

/* NAME.vmdk -> NAME (the extents are NAME-s001.vmdk ...). */
static char *stem(const char *path)
{
    size_t n = strlen(path);
    if (n > 5 && strcmp(path + n - 5, ".vmdk") == 0)
        n -= 5;
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, path, n);
        s[n] = 0;
    }
    return s;
}

static const char *base(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

struct text {
    char *p;
    size_t len, cap;
};

static void add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (t->p && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap + (size_t)n + 256) * 2;
        char *q = realloc(t->p, cap);
        if (!q)
            return;
        t->p = q;
        t->cap = cap;
    }
}

static int write_file(const char *path, const void *buf, size_t len, uint64_t size,
                      struct scuse_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return err_set(err, -errno, "'%s': cannot create: %s", path, strerror(errno));
    int r = len ? file_pwrite_exact(fd, buf, len, 0) : 0;
    if (r == 0 && ftruncate(fd, (off_t)size) < 0)
        r = -errno;
    if (r == 0)
        r = file_sync(fd);
    close(fd);
    return r < 0 ? err_set(err, r, "'%s': cannot write: %s", path, strerror(-r)) : 0;
}

/* A sparse extent of cap sectors in qemu-img's layout (desc: embedded
 * text, or NULL for an empty descriptor area), or an empty stream. */
static int write_sparse(const char *path, uint64_t cap, const char *desc, const struct vopts *v,
                        struct scuse_err *err)
{
    if (desc && strlen(desc) > DESC_SECTORS * VMDK_SECTOR - 1)
        return err_set(err, -EINVAL, "'%s': the descriptor is longer than %u bytes", path,
                       DESC_SECTORS * VMDK_SECTOR - 1);
    uint64_t grains = (cap + GRAIN - 1) / GRAIN;
    uint64_t gt_count = (grains + GTES - 1) / GTES;
    uint64_t gt_sectors = GTES * 4 / VMDK_SECTOR;
    uint64_t gd_sectors = (gt_count * 4 + VMDK_SECTOR - 1) / VMDK_SECTOR;
    if (gt_count > VMDK_MAX_GD_ENTRIES)
        return err_set(err, -EINVAL, "'%s': %" PRIu64 " bytes is too large for one sparse extent",
                       path, cap * VMDK_SECTOR);
    struct vmdk4_header h = {
        .version = v->stream ? 3 : v->zeroed ? 2 : 1,
        .flags = VMDK4_FLAG_NL_DETECT | VMDK4_FLAG_RGD | (v->zeroed ? VMDK4_FLAG_ZERO_GRAIN : 0),
        .capacity = cap, .grain_size = GRAIN, .desc_offset = 1, .desc_size = DESC_SECTORS,
        .num_gtes_per_gt = GTES,
    };
    uint64_t meta_end;
    if (v->stream) {
        /* VMware's: no redundant directory; the directory follows the grains */
        h.flags = VMDK4_FLAG_NL_DETECT | VMDK4_FLAG_COMPRESS | VMDK4_FLAG_MARKER;
        h.compress_algorithm = VMDK4_COMPRESS_DEFLATE;
        h.gd_offset = VMDK_GD_AT_END;
        meta_end = 1 + DESC_SECTORS;
    } else {
        h.rgd_offset = 1 + DESC_SECTORS;
        h.gd_offset = h.rgd_offset + gd_sectors + gt_sectors * gt_count;
        meta_end = h.gd_offset + gd_sectors + gt_sectors * gt_count;
    }
    h.overhead = (meta_end + GRAIN - 1) / GRAIN * GRAIN;
    if (h.overhead > UINT32_MAX)
        return err_set(err, -EINVAL, "'%s': too large for one sparse extent", path);
    size_t n = (size_t)h.overhead * VMDK_SECTOR;
    uint8_t *b = calloc(1, n);
    if (!b)
        return err_set(err, -ENOMEM, "out of memory");
    vmdk4_header_encode(&h, b);
    if (desc)
        memcpy(b + VMDK_SECTOR, desc, strlen(desc));
    if (!v->stream) {
        for (uint64_t i = 0; i < gt_count; i++) {
            vmdk_put32(b + h.rgd_offset * VMDK_SECTOR + 4 * i,
                       (uint32_t)(h.rgd_offset + gd_sectors + i * gt_sectors));
            vmdk_put32(b + h.gd_offset * VMDK_SECTOR + 4 * i,
                       (uint32_t)(h.gd_offset + gd_sectors + i * gt_sectors));
        }
    }
    int r = write_file(path, b, n, n, err);
    free(b);
    if (r == 0 && v->stream) {
        /* no grain yet: an empty directory, the footer, the end marker */
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        uint32_t *const *none = calloc(gt_count ? gt_count : 1, sizeof(uint32_t *));
        uint32_t *gd = calloc(gt_count ? gt_count : 1, sizeof(uint32_t));
        if (fd < 0)
            r = err_set(err, -errno, "'%s': cannot open: %s", path, strerror(errno));
        else if (!none || !gd)
            r = err_set(err, -ENOMEM, "out of memory");
        else
            r = vmdk_stream_write_tail(fd, path, &h, none, gt_count, GTES, n, gd, err);
        if (r == 0 && (r = file_sync(fd)) < 0)
            err_set(err, r, "'%s': cannot sync: %s", path, strerror(-r));
        free((void *)none);
        free(gd);
        if (fd >= 0)
            close(fd);
    }
    return r;
}

int vmdk_create(const char *path, const struct blk_create_opts *o, struct scuse_err *err)
{
    struct vopts v;
    int r = parse_opts(path, o, &v, err);
    if (r < 0)
        return r;
    uint64_t cap = (o->size + VMDK_SECTOR - 1) / VMDK_SECTOR;
    if (cap == 0)
        return err_set(err, -EINVAL, "'%s': a VMDK image needs at least one sector", path);
    if (cap > VMDK_MAX_TOTAL_SECTORS)
        return err_set(err, -EINVAL, "'%s': %" PRIu64 " bytes is larger than 64 PiB", path, o->size);
    if (!v.split && !v.flat && cap > (uint64_t)UINT32_MAX * GRAIN / 2)
        return err_set(err, -EINVAL, "'%s': a %s image holds at most %" PRIu64 " bytes", path,
                       v.subformat, (uint64_t)UINT32_MAX / 2 * GRAIN * VMDK_SECTOR);
    uint32_t pcid = VMDK_CID_NONE;
    if (o->backing_file && (r = parent_cid(path, o->backing_file, &pcid, err)) < 0)
        return r;

    struct text t = { 0 };
    unsigned heads = strcmp(v.adapter, "ide") == 0 ? 16 : 255, sectors = 63;
    uint64_t cyl = cap / (heads * sectors);
    if (cyl > 16383)
        cyl = 16383;
    add(&t, "# Disk DescriptorFile\nversion=1\nCID=%08" PRIx32 "\nparentCID=%08" PRIx32
        "\ncreateType=\"%s\"\n", new_cid(), pcid, v.subformat);
    if (o->backing_file)
        add(&t, "parentFileNameHint=\"%s\"", o->backing_file);
    add(&t, "\n# Extent description\n");
    char *st = stem(path);
    char **files = NULL;
    uint64_t n_ext = v.split ? (cap + SPLIT_SECTORS - 1) / SPLIT_SECTORS : 1;
    if (n_ext == 0)
        n_ext = 1;
    files = calloc(n_ext, sizeof(*files));
    if (!st || !files) {
        r = err_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    for (uint64_t i = 0; i < n_ext; i++) {
        uint64_t sec = v.split ? (cap - i * SPLIT_SECTORS < SPLIT_SECTORS ? cap - i * SPLIT_SECTORS
                                                                         : SPLIT_SECTORS) : cap;
        char name[64];
        const char *fname;
        if (!v.split && !v.flat) {
            fname = path;
        } else {
            if (v.split)
                snprintf(name, sizeof(name), "-%c%03" PRIu64 ".vmdk", v.flat ? 'f' : 's', i + 1);
            else
                snprintf(name, sizeof(name), "-flat.vmdk");
            files[i] = malloc(strlen(st) + strlen(name) + 1);
            if (!files[i]) {
                r = err_set(err, -ENOMEM, "out of memory");
                goto out;
            }
            strcpy(files[i], st);
            strcat(files[i], name);
            fname = files[i];
        }
        add(&t, "RW %" PRIu64 " %s \"%s\"%s\n", sec, v.flat ? "FLAT" : "SPARSE",
            base(fname), v.flat ? " 0" : "");
    }
    add(&t, "\n# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"%s\"\n"
        "ddb.geometry.cylinders = \"%" PRIu64 "\"\nddb.geometry.heads = \"%u\"\n"
        "ddb.geometry.sectors = \"%u\"\nddb.adapterType = \"%s\"\nddb.toolsVersion = \"%s\"\n",
        v.hwversion ? v.hwversion : v.compat6 ? "6" : "4", cyl, heads, sectors, v.adapter,
        v.toolsversion);
    if (!t.p) {
        r = err_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    if (!v.split && !v.flat) {
        r = write_sparse(path, cap, t.p, &v, err);
        goto out;
    }
    for (uint64_t i = 0; r == 0 && i < n_ext; i++) {
        uint64_t sec = v.split ? (cap - i * SPLIT_SECTORS < SPLIT_SECTORS ? cap - i * SPLIT_SECTORS
                                                                         : SPLIT_SECTORS) : cap;
        r = v.flat ? write_file(files[i], NULL, 0, sec * VMDK_SECTOR, err)
                      : write_sparse(files[i], sec, NULL, &v, err);
    }
    if (r == 0)
        r = write_file(path, t.p, t.len, t.len, err);
out:
    if (files)
        for (uint64_t i = 0; i < n_ext; i++)
            free(files[i]);
    free(files);
    free(st);
    free(t.p);
    return r;
}
