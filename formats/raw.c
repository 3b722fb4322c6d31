/* raw: the file is the disk. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <string.h>

#include "blk/driver.h"
#include "io/file.h"

static int raw_probe(const struct blk_probe *p)
{
    (void)p;
    return 1; /* anything can be raw; every real format outbids this */
}

static int raw_open(struct blk_node *bs, struct scuse_err *err)
{
    int r = file_size(bs->fd, &bs->size);
    if (r < 0)
        return err_set(err, r, "'%s': cannot get size: %s", bs->path, strerror(-r));
    /* A disk is whole sectors: like QEMU, round the length up to 512 and
     * read the tail past EOF as zeros. */
    bs->size = (bs->size + 511) & ~511ull;
    bs->discard_zeroes = true; /* a punched hole reads as zeros */
    return 0;
}

static void raw_close(struct blk_node *bs) { (void)bs; }

static int raw_refresh_size(struct blk_node *bs, struct scuse_err *err)
{
    uint64_t size;
    int r = file_size(bs->fd, &size);
    if (r < 0)
        return err_set(err, r, "'%s': cannot read the size: %s", bs->path, strerror(-r));
    blk_set_size(bs, (size + 511) & ~511ull);
    return 0;
}

/* The reason for a failed syscall on the image, naming what and where. */
static int io_fail(struct blk_node *bs, int r, const char *what, uint64_t off, uint64_t len,
                   struct scuse_err *err)
{
    return err_set(err, r, "'%s': %s of %llu bytes at %llu failed: %s", bs->path, what,
                   (unsigned long long)len, (unsigned long long)off, strerror(-r));
}

static int raw_preadv(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                      struct scuse_err *err)
{
    int r = file_preadv_view(bs->fd, v, off);
    return r < 0 ? io_fail(bs, r, "read", off, v->len, err) : 0;
}

static int raw_block_status(struct blk_node *bs, uint64_t off, uint64_t len,
                            uint64_t *pnum, struct blk_status *st, struct scuse_err *err)
{
    bool data;
    int r = file_extent(bs->fd, off, len, &data, pnum);
    if (r < 0)
        return io_fail(bs, r, "extent query", off, len, err);
    st->flags = BLK_STATUS_ALLOCATED | BLK_STATUS_OFFSET | (data ? BLK_STATUS_DATA : BLK_STATUS_ZERO);
    st->offset = off;
    return 0;
}

static int raw_pwritev(struct blk_node *bs, uint64_t off, const struct iov_view *v, unsigned flags,
                       struct scuse_err *err)
{
    (void)flags;
    int r = file_pwritev_view(bs->fd, v, off);
    return r < 0 ? io_fail(bs, r, "write", off, v->len, err) : 0;
}

static int raw_write_zeroes(struct blk_node *bs, uint64_t off, uint64_t len, unsigned flags,
                            struct scuse_err *err)
{
    /* Punching keeps the file sparse; zero-range keeps it allocated. Both
     * read back as zeros; -ENOTSUP lets the block layer write zeros. */
    int r = (flags & BLK_ZERO_MAY_UNMAP) ? file_punch_hole(bs->fd, off, len) : -ENOTSUP;
    if (r == -ENOTSUP)
        r = file_zero_range(bs->fd, off, len);
    return r < 0 && r != -ENOTSUP ? io_fail(bs, r, "zero write", off, len, err) : r;
}

static int raw_discard(struct blk_node *bs, uint64_t off, uint64_t len, struct scuse_err *err)
{
    int r = file_punch_hole(bs->fd, off, len);
    return r < 0 && r != -ENOTSUP ? io_fail(bs, r, "discard", off, len, err) : 0;
}

static int raw_flush(struct blk_node *bs, struct scuse_err *err)
{
    if (bs->no_flush)
        return 0;
    int r = file_sync(bs->fd);
    return r < 0 ? err_set(err, r, "'%s': flush (fdatasync) failed: %s", bs->path, strerror(-r)) : 0;
}

static int raw_create(const char *path, const struct blk_create_opts *o, struct scuse_err *err)
{
    const char *prealloc = "off";
    for (int i = 0; i < o->o.n; i++)
        if (strcmp(o->o.kv[i].key, "preallocation") == 0)
            prealloc = o->o.kv[i].val;
    bool falloc = strcmp(prealloc, "falloc") == 0, full = strcmp(prealloc, "full") == 0;
    if (!falloc && !full && strcmp(prealloc, "off") != 0)
        return err_set(err, -EINVAL, "'%s': preallocation must be off, falloc or full, not '%s'",
                       path, prealloc);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return err_set(err, -errno, "'%s': cannot create: %s", path, strerror(errno));
    int r = 0;
    uint64_t size = (o->size + 511) & ~511ull; /* whole sectors, as qemu-img makes them */
    if (ftruncate(fd, (off_t)size) < 0)
        r = -errno;
    if (r == 0 && falloc && size && posix_fallocate(fd, 0, (off_t)size) != 0)
        r = -ENOSPC;
    static const char zeros[65536];
    for (uint64_t done = 0; r == 0 && full && done < size;) {
        size_t n = size - done < sizeof(zeros) ? (size_t)(size - done) : sizeof(zeros);
        r = file_pwrite_exact(fd, zeros, n, done);
        done += n;
    }
    if (r == 0)
        r = file_sync(fd);
    close(fd);
    if (r < 0)
        return err_set(err, r, "'%s': cannot create: %s", path, strerror(-r));
    return 0;
}

static const struct blk_opt_desc raw_create_opts[] = {
    { "preallocation", BLK_OPT_STR, "Preallocation mode (allowed values: off, falloc, full)" },
    { NULL, 0, NULL },
};

const struct blk_driver blk_driver_raw = {
    .name = "raw",
    .description = "the file is the disk",
    .create_opts = raw_create_opts,
    .probe = raw_probe,
    .open = raw_open,
    .close = raw_close,
    .preadv = raw_preadv,
    .block_status = raw_block_status,
    .pwritev = raw_pwritev,
    .write_zeroes = raw_write_zeroes,
    .discard = raw_discard,
    .flush = raw_flush,
    .create = raw_create,
    .refresh_size = raw_refresh_size,
};
