/* VMDK variants the native driver (formats/vmdk) refuses, read through
 * libvmdk: vmfsSparse (COWD extents under a descriptor) above all. The
 * native driver hands a refused open here (yal_vmdk_fallback); if libvmdk
 * reads the image, the node is served by blk_driver_vmdk_yal (still
 * named vmdk, read-only, no allocation map: libvmdk does not expose one);
 * if it cannot either, the native reason stays, with libvmdk's added.
 * Children are refused: libvmdk would need the parent attached to every
 * handle, and formats.md §5 does not trust libvmdk on parents' CIDs.
 * Only variants are handed on (a COWD file, a descriptor naming
 * VMFSSPARSE or SESPARSE extents): a damaged image the native driver
 * refuses stays refused, whatever libvmdk would make of it. */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libvmdk.h>

#include "yal/yal.h"

extern const struct blk_driver blk_driver_vmdk_yal;

static void why_of(libvmdk_error_t *e, char *why, size_t len)
{
    why[0] = '\0';
    if (e) {
        libvmdk_error_backtrace_sprint(e, why, len);
        libvmdk_error_free(&e);
    }
    yal_one_line(why);
}

static void handle_free(libvmdk_handle_t *h)
{
    libvmdk_handle_close(h, NULL);
    libvmdk_handle_free(&h, NULL);
}

/* A handle with its extent files open (they are found next to path). */
static int open_handle(const char *path, libvmdk_handle_t **out, char *why, size_t wl)
{
    libvmdk_handle_t *h = NULL;
    libvmdk_error_t *e = NULL;
    char *dup = strdup(path);
    if (!dup || libvmdk_handle_initialize(&h, &e) != 1) {
        free(dup);
        why_of(e, why, wl);
        return -ENOMEM;
    }
    const char *dir = dirname(dup);
    int ok = libvmdk_handle_open(h, path, LIBVMDK_OPEN_READ, &e) == 1 &&
             libvmdk_handle_set_extent_data_files_path(h, dir, strlen(dir), &e) == 1 &&
             libvmdk_handle_open_extent_data_files(h, &e) == 1;
    free(dup);
    if (!ok) {
        why_of(e, why, wl);
        libvmdk_handle_close(h, NULL);
        libvmdk_handle_free(&h, NULL);
        return -EINVAL;
    }
    *out = h;
    return 0;
}

static int vmdk_open_handle(struct yal_pool *p, void **out, struct scuse_err *err)
{
    char why[512];
    libvmdk_handle_t *h;
    int r = open_handle(p->path, &h, why, sizeof(why));
    if (r < 0)
        return err_set(err, r, "'%s': libvmdk cannot open it: %s", p->path, why);
    *out = h;
    return 0;
}

static void vmdk_close_handle(void *h)
{
    handle_free(h);
}

static int vmdk_read_handle(void *h, void *buf, size_t len, uint64_t off, char *why, size_t wl)
{
    libvmdk_error_t *e = NULL;
    ssize_t n = libvmdk_handle_read_buffer_at_offset(h, buf, len, (off64_t)off, &e);
    if (n == (ssize_t)len)
        return 0;
    why_of(e, why, wl);
    return -EIO;
}

static const struct yal_ops vmdk_ops = {
    .lib = "libvmdk",
    .open = vmdk_open_handle,
    .close = vmdk_close_handle,
    .read = vmdk_read_handle,
};

static const char *type_name(int t)
{
    switch (t) {
    case LIBVMDK_DISK_TYPE_VMFS_SPARSE: return "vmfsSparse";
    case LIBVMDK_DISK_TYPE_VMFS_SPARSE_THIN: return "vmfsSparseThin";
    case LIBVMDK_DISK_TYPE_MONOLITHIC_SPARSE: return "monolithicSparse";
    case LIBVMDK_DISK_TYPE_2GB_EXTENT_SPARSE: return "twoGbMaxExtentSparse";
    case LIBVMDK_DISK_TYPE_STREAM_OPTIMIZED: return "streamOptimized";
    case LIBVMDK_DISK_TYPE_MONOLITHIC_FLAT: return "monolithicFlat";
    case LIBVMDK_DISK_TYPE_2GB_EXTENT_FLAT: return "twoGbMaxExtentFlat";
    case LIBVMDK_DISK_TYPE_VMFS_FLAT: return "vmfs";
    case LIBVMDK_DISK_TYPE_CUSTOM: return "custom";
    default: return "other";
    }
}

/* The host bytes of the descriptor and of every extent file, each file
 * once (qemu-img's disk size); extents are named as libvmdk finds them:
 * relative to the descriptor's directory. */
static uint64_t files_allocated(libvmdk_handle_t *h, struct blk_node *bs)
{
    enum { SEEN_MAX = 64 };
    struct stat d, seen[SEEN_MAX];
    if (fstat(bs->fd, &d) < 0)
        return 0;
    uint64_t total = (uint64_t)d.st_blocks * 512;
    unsigned n_seen = 0;
    seen[n_seen++] = d;
    int n = 0;
    if (libvmdk_handle_get_number_of_extents(h, &n, NULL) != 1)
        return total;
    for (int i = 0; i < n; i++) {
        libvmdk_extent_descriptor_t *x = NULL;
        char name[PATH_MAX];
        if (libvmdk_handle_get_extent_descriptor(h, i, &x, NULL) != 1)
            continue;
        int ok = libvmdk_extent_descriptor_get_utf8_filename(x, (uint8_t *)name, sizeof(name),
                                                             NULL) == 1;
        libvmdk_extent_descriptor_free(&x, NULL);
        if (!ok)
            continue;
        char *path = blk_path_beside(bs->path, name);
        struct stat st;
        bool there = path && stat(path, &st) == 0;
        free(path);
        if (!there)
            continue;
        bool dup_file = false;
        for (unsigned k = 0; k < n_seen && !dup_file; k++)
            dup_file = seen[k].st_dev == st.st_dev && seen[k].st_ino == st.st_ino;
        if (dup_file)
            continue;
        total += (uint64_t)st.st_blocks * 512;
        if (n_seen < SEEN_MAX)
            seen[n_seen++] = st;
    }
    return total;
}

/* The native reason (in err) followed by more. */
static int extend(struct scuse_err *err, int r, const char *fmt, const char *arg)
{
    char native[SCUSE_ERR_MAX];
    snprintf(native, sizeof(native), "%s", err->msg);
    err_clear(err);
    char more[SCUSE_ERR_MAX];
    snprintf(more, sizeof(more), fmt, arg);
    return err_set(err, r, "%s; %s", native, more);
}

#define DESC_SCAN (64u << 10)

/* A COWD file, or descriptor text naming a COWD or seSparse extent. */
static bool is_variant(struct blk_node *bs)
{
    char *buf = malloc(DESC_SCAN + 1);
    if (!buf)
        return false;
    ssize_t n = pread(bs->fd, buf, DESC_SCAN, 0);
    bool yes = false;
    if (n >= 4 && memcmp(buf, "COWD", 4) == 0) {
        yes = true;
    } else if (n > 0 && memchr(buf, '\0', (size_t)n) == NULL) {
        buf[n] = '\0';
        yes = strstr(buf, " VMFSSPARSE ") || strstr(buf, " SESPARSE ");
    }
    free(buf);
    return yes;
}

int yal_vmdk_fallback(struct blk_node *bs, int native, struct scuse_err *err)
{
    if (!is_variant(bs))
        return native;
    char why[512];
    libvmdk_handle_t *h;
    if (open_handle(bs->path, &h, why, sizeof(why)) < 0)
        return extend(err, native, "libvmdk cannot read it either: %s", why);
    uint32_t pcid = 0xffffffffu;
    int type = 0;
    uint64_t size = 0;
    libvmdk_error_t *e = NULL;
    if (libvmdk_handle_get_parent_content_identifier(h, &pcid, &e) != 1 ||
        libvmdk_handle_get_disk_type(h, &type, &e) != 1 ||
        libvmdk_handle_get_media_size(h, &size, &e) != 1) {
        why_of(e, why, sizeof(why));
        handle_free(h);
        return extend(err, native, "libvmdk cannot read it either: %s", why);
    }
    uint64_t files_bytes = files_allocated(h, bs);
    handle_free(h);
    if (pcid != 0xffffffffu)
        return extend(err, native, "libvmdk reads it, but scuse does not read %s children "
                      "through libvmdk (qemu-img convert -O vmdk makes one image of the chain)",
                      type_name(type));
    if (size == 0)
        return extend(err, native, "libvmdk reads it as %s of 0 bytes", type_name(type));
    if (!bs->read_only && !bs->check_only) {
        char more[SCUSE_ERR_MAX];
        snprintf(more, sizeof(more), "scuse reads it only through libvmdk, read-only: put a "
                 "qcow2 overlay on it and write that: scuse create -f qcow2 -b %s -F vmdk "
                 "OVERLAY.qcow2", bs->filename);
        return extend(err, -EROFS, "%s", more);
    }
    struct yal_image *im = calloc(1, sizeof(*im));
    if (!im)
        return -ENOMEM; /* err keeps the native reason */
    void *first;
    struct scuse_err e2 = { 0 };
    int r = yal_image_init(bs, im, &vmdk_ops, &first, &e2);
    if (r < 0) {
        free(im);
        return extend(err, native, "%s", e2.msg);
    }
    im->size = size;
    im->files_bytes = files_bytes;
    yal_info_add(im, "create-type", "create type", type_name(type));
    yal_info_add(im, "reader", "reader", "libvmdk");
    err_clear(err);
    bs->drv = &blk_driver_vmdk_yal;
    yal_image_attach(bs, im);
    return 0;
}

/* Reached only through yal_vmdk_fallback (not in the registry: the name
 * vmdk is the native driver's); open is there for the contract. */
static int vmdk_yal_open(struct blk_node *bs, struct scuse_err *err)
{
    return err_set(err, -ENOTSUP, "'%s': opened through the native vmdk driver only", bs->path);
}

const struct blk_driver blk_driver_vmdk_yal = {
    .name = "vmdk",
    .description = "VMware VMDK variants the native driver refuses (through libvmdk)",
    .open = vmdk_yal_open,
    .close = yal_close,
    .preadv = yal_preadv,
    .block_status = yal_block_status,
    .info = yal_info,
    .allocated = yal_allocated,
};
