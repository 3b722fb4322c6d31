/* Extents: the files a descriptor names, opened relative to the
 * descriptor's directory, each size and offset checked against its file,
 * laid end to end as the virtual disk. A file named by several extents
 * (or the descriptor's own file) is opened once: QEMU's image locks are
 * per open file, so a second descriptor of the same file would conflict
 * with the first. Extent files get the same locks as the descriptor. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/file.h"
#include "io/lock.h"
#include "vmdk/vmdk.h"

void vmdk_extents_close(struct vmdk_state *s)
{
    for (size_t i = 0; i < s->n_ext; i++) {
        vmdk_sparse_close(s->ext[i].sp);
        free(s->ext[i].name);
        free(s->ext[i].path);
    }
    free(s->ext);
    s->ext = NULL;
    s->n_ext = 0;
    for (size_t i = 0; i < s->n_files; i++)
        if (s->files[i].own)
            close(s->files[i].fd);
    free(s->files);
    s->files = NULL;
    s->n_files = 0;
}

struct vmdk_extent *vmdk_extent_at(struct vmdk_state *s, uint64_t off)
{
    size_t lo = 0, hi = s->n_ext;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (s->ext[mid].start <= off)
            lo = mid;
        else
            hi = mid;
    }
    return &s->ext[lo];
}

/* A file is opened read-write when any RW extent names it (by name). */
static bool writable(const struct blk_node *bs, const struct vmdk_desc *d, const char *file)
{
    if (bs->read_only)
        return false;
    for (size_t i = 0; i < d->n_ext; i++)
        if (d->ext[i].access == VMDK_RW && d->ext[i].file && strcmp(d->ext[i].file, file) == 0)
            return true;
    return false;
}

/* The fd of path, opened once per file (by device and inode: opened,
 * then compared, so the file compared is the one used). */
static int file_fd(struct blk_node *bs, struct vmdk_state *s, const char *path, bool rw,
                   unsigned ext_no, int *fd, struct scuse_err *err)
{
    int f = open(path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (f < 0)
        return err_set(err, -errno, "'%s': extent %u: cannot open '%s': %s", bs->path, ext_no,
                       path, strerror(errno));
    struct stat st;
    if (fstat(f, &st) < 0) {
        int r = -errno;
        close(f);
        return err_set(err, r, "'%s': extent %u: cannot stat '%s': %s", bs->path, ext_no, path,
                       strerror(-r));
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        close(f);
        return err_set(err, -EINVAL, "'%s': extent %u: '%s' is not a file", bs->path, ext_no, path);
    }
    for (size_t i = 0; i < s->n_files; i++) {
        if (s->files[i].dev == st.st_dev && s->files[i].ino == st.st_ino) {
            close(f);
            if (rw && !s->files[i].rw)
                return err_set(err, -EINVAL, "'%s': extent %u: '%s' is also named by a "
                               "read-only extent under another name", bs->path, ext_no, path);
            *fd = s->files[i].fd;
            return 0;
        }
    }
    if (!bs->share) {
        unsigned perms = rw ? LOCK_PERM_READ | LOCK_PERM_WRITE | LOCK_PERM_RESIZE : LOCK_PERM_READ;
        int r = image_lock(f, path, perms, LOCK_PERM_WRITE | LOCK_PERM_RESIZE, err);
        if (r < 0) {
            close(f);
            return r;
        }
    }
    struct vmdk_file *n = realloc(s->files, (s->n_files + 1) * sizeof(*n));
    if (!n) {
        close(f);
        return err_set(err, -ENOMEM, "out of memory");
    }
    s->files = n;
    s->files[s->n_files++] = (struct vmdk_file){ .fd = f, .own = true, .rw = rw,
                                                 .dev = st.st_dev, .ino = st.st_ino };
    *fd = f;
    return 0;
}

static int open_flat(struct blk_node *bs, struct vmdk_extent *x, unsigned no,
                     const struct vmdk_desc_extent *d, struct scuse_err *err)
{
    uint64_t size;
    int r = file_size(x->fd, &size);
    if (r < 0)
        return err_set(err, r, "'%s': cannot get size: %s", x->path, strerror(-r));
    x->flat_off = d->offset * VMDK_SECTOR;
    if (x->flat_off > size || x->len > size - x->flat_off)
        return err_set(err, -EINVAL, "'%s': extent %u: '%s' holds %" PRIu64 " bytes; the extent "
                       "needs %" PRIu64 " from offset %" PRIu64, bs->path, no, x->name, size,
                       x->len, x->flat_off);
    return 0;
}

static int open_sparse(struct blk_node *bs, struct vmdk_extent *x, unsigned no,
                       struct scuse_err *err)
{
    uint8_t magic[4] = { 0 };
    if (pread(x->fd, magic, sizeof(magic), 0) < 0)
        return err_set(err, -errno, "'%s': cannot read: %s", x->path, strerror(errno));
    if (vmdk_le32(magic) == VMDK3_MAGIC)
        return err_set(err, -ENOTSUP, "'%s': extent %u: '%s' is a COWD (vmfsSparse) extent, "
                       "which scuse cannot read yet", bs->path, no, x->name);
    int r = vmdk_sparse_open(x->fd, x->path, &x->sp, err);
    if (r < 0) {
        err_prefix(err, "'%s': extent %u: ", bs->path, no);
        return r;
    }
    if (x->len > x->sp->h.capacity * VMDK_SECTOR)
        return err_set(err, -EINVAL, "'%s': extent %u: the descriptor gives %" PRIu64 " sectors, "
                       "'%s' holds a capacity of %" PRIu64, bs->path, no, x->len / VMDK_SECTOR,
                       x->name, x->sp->h.capacity);
    return 0;
}

int vmdk_extents_open(struct blk_node *bs, struct vmdk_state *s, struct scuse_err *err)
{
    const struct vmdk_desc *d = &s->desc;
    if (d->n_ext == 0)
        return err_set(err, -EINVAL, "'%s': descriptor names no extent", bs->path);
    struct stat st;
    if (fstat(bs->fd, &st) < 0)
        return err_set(err, -errno, "'%s': cannot stat: %s", bs->path, strerror(errno));
    s->files = calloc(1, sizeof(*s->files));
    s->ext = calloc(d->n_ext, sizeof(*s->ext));
    if (!s->files || !s->ext)
        return err_set(err, -ENOMEM, "out of memory");
    s->files[0] = (struct vmdk_file){ .fd = bs->fd, .own = false, .rw = !bs->read_only,
                                      .dev = st.st_dev, .ino = st.st_ino };
    s->n_files = 1;

    uint64_t start = 0;
    for (size_t i = 0; i < d->n_ext; i++) {
        const struct vmdk_desc_extent *de = &d->ext[i];
        struct vmdk_extent *x = &s->ext[i];
        unsigned no = (unsigned)i + 1;
        s->n_ext = i + 1;
        x->fd = -1;
        x->type = de->type;
        x->access = de->access;
        x->start = start;
        x->len = de->sectors * VMDK_SECTOR;
        x->type_name = vmdk_etype_name(de->type);
        start += x->len;
        switch (de->type) {
        case VMDK_FLAT: case VMDK_VMFS: case VMDK_SPARSE: case VMDK_ZERO:
            break;
        default:
            return err_set(err, -ENOTSUP, "'%s': extent %u (line %u): %s extents are not "
                           "supported", bs->path, no, de->line, vmdk_etype_name(de->type));
        }
        if (de->type == VMDK_ZERO)
            continue;
        x->name = strdup(de->file);
        x->path = blk_path_beside(bs->path, de->file);
        if (!x->name || !x->path)
            return err_set(err, -ENOMEM, "out of memory");
        int r = file_fd(bs, s, x->path, writable(bs, d, de->file), no, &x->fd, err);
        if (r == 0)
            r = de->type == VMDK_SPARSE ? open_sparse(bs, x, no, err) : open_flat(bs, x, no, de, err);
        if (r < 0)
            return r;
    }
    s->size = start;
    return 0;
}
