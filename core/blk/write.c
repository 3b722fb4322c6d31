/* Writes through the block layer: bounds, read-only state, alignment
 * (read-modify-write of partial blocks), FUA, the zero-write fallback, and
 * the guard that keeps a probed raw image raw. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blk/driver.h"

void blk_align_range(const struct blk_node *bs, uint64_t size, uint64_t off, uint64_t len,
                     uint64_t *start, uint64_t *end);
int blk_probe_guard(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                    struct scuse_err *err);

/* *size: the image size this request is checked against, and then used
 * for every other decision of the request (one load: a resize between
 * two loads would make them disagree). */
static int check_range(struct blk_node *bs, uint64_t off, uint64_t len, const char *what,
                       uint64_t *psize, struct scuse_err *err)
{
    uint64_t size = *psize = blk_size_now(bs);
    if (bs->read_only)
        return err_set(err, -EROFS, "'%s': %s refused: the image is open read-only",
                       bs->path, what);
    if (off > size || len > size - off)
        return err_set(err, -EINVAL, "'%s': %s of %llu bytes at %llu is past the end (%llu)",
                       bs->path, what, (unsigned long long)len, (unsigned long long)off,
                       (unsigned long long)size);
    return 0;
}

static bool is_aligned(const struct blk_node *bs, uint64_t size, uint64_t off, uint64_t len)
{
    uint64_t m = bs->align - 1;
    return (off & m) == 0 && ((len & m) == 0 || off + len == size);
}

/* Whole blocks (or no alignment to keep): split by max_transfer. */
static int driver_write(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                        unsigned flags, struct scuse_err *err)
{
    if (!bs->drv->pwritev)
        return err_set(err, -ENOTSUP, "'%s': %s images are read-only in scuse", bs->path,
                       bs->drv->name);
    uint64_t max = bs->max_transfer ? bs->max_transfer : v->len;
    for (size_t done = 0; done < v->len;) {
        size_t n = v->len - done < max ? v->len - done : (size_t)max;
        struct iov_view piece = iov_view_sub(v, done, n);
        int r = bs->drv->pwritev(bs, off + done, &piece, flags, err);
        if (r < 0)
            return r;
        done += n;
    }
    return 0;
}

/* One partial block: read it whole, lay [off, off+len) of src over it
 * (src NULL: zeros), write it back. The caller holds rmw_lock alone. */
static int rmw_block(struct blk_node *bs, uint64_t size, uint64_t off, uint64_t len,
                     const struct iov_view *src, size_t src_off, unsigned flags,
                     struct scuse_err *err)
{
    uint64_t start, end;
    blk_align_range(bs, size, off, len, &start, &end);
    size_t blen = (size_t)(end - start);
    uint8_t *buf = aligned_alloc(bs->align, bs->align);
    if (!buf)
        return err_set(err, -ENOMEM, "'%s': out of memory for a partial-block write", bs->path);
    int r = blk_pread(bs, start, buf, blen, err);
    if (r == 0) {
        if (src)
            iov_view_to_buf(src, src_off, buf + (off - start), (size_t)len);
        else
            memset(buf + (off - start), 0, (size_t)len);
        struct iovec one;
        struct iov_view bv = iov_view_of_buf(&one, buf, blen);
        r = driver_write(bs, start, &bv, flags, err);
    }
    free(buf);
    return r;
}

/* Splits [off, off+len) into a partial head block, whole middle blocks and
 * a partial tail block. `mid` writes the middle; the edges are written by
 * read-modify-write with src's bytes (or zeros). */
typedef int (*mid_fn)(struct blk_node *bs, uint64_t off, uint64_t len, size_t src_off,
                      const void *ctx, unsigned flags, struct scuse_err *err);

static int write_unaligned(struct blk_node *bs, uint64_t size, uint64_t off, uint64_t len,
                           const struct iov_view *src, mid_fn mid, const void *ctx,
                           unsigned flags, struct scuse_err *err)
{
    uint64_t a = bs->align;
    pthread_rwlock_wrlock(&bs->rmw_lock);
    int r = 0;
    uint64_t pos = off, stop = off + len;
    if (pos & (a - 1)) {
        uint64_t head_end = (pos | (a - 1)) + 1;
        uint64_t n = (head_end < stop ? head_end : stop) - pos;
        r = rmw_block(bs, size, pos, n, src, (size_t)(pos - off), flags, err);
        pos += n;
    }
    uint64_t mid_end = stop == size ? stop : stop & ~(a - 1);
    if (r == 0 && mid_end > pos) {
        r = mid(bs, pos, mid_end - pos, (size_t)(pos - off), ctx, flags, err);
        pos = mid_end;
    }
    if (r == 0 && pos < stop)
        r = rmw_block(bs, size, pos, stop - pos, src, (size_t)(pos - off), flags, err);
    pthread_rwlock_unlock(&bs->rmw_lock);
    return r;
}

static int mid_data(struct blk_node *bs, uint64_t off, uint64_t len, size_t src_off,
                    const void *ctx, unsigned flags, struct scuse_err *err)
{
    struct iov_view piece = iov_view_sub(ctx, src_off, (size_t)len);
    return driver_write(bs, off, &piece, flags, err);
}

static unsigned driver_flags(const struct blk_node *bs, unsigned flags)
{
    return (bs->drv->caps & BLK_DRV_FUA) ? flags & BLK_WRITE_FUA : 0;
}

/* FUA for drivers that cannot do it themselves: a flush afterwards. */
static int finish(struct blk_node *bs, int r, unsigned flags, struct scuse_err *err)
{
    if (r < 0 || !(flags & BLK_WRITE_FUA) || (bs->drv->caps & BLK_DRV_FUA))
        return r;
    return blk_flush(bs, err);
}

int blk_pwritev(struct blk_node *bs, uint64_t off, const struct iov_view *v, unsigned flags,
                struct scuse_err *err)
{
    uint64_t size;
    int r = check_range(bs, off, v->len, "write", &size, err);
    if (r < 0 || v->len == 0)
        return r;
    struct scuse_err local;
    if (!err) {
        err_clear(&local);
        err = &local;
    }
    r = blk_probe_guard(bs, off, v, err);
    if (r < 0)
        return r;
    unsigned df = driver_flags(bs, flags);
    if (bs->align <= 1) {
        r = driver_write(bs, off, v, df, err);
    } else if (is_aligned(bs, size, off, v->len)) {
        pthread_rwlock_rdlock(&bs->rmw_lock);
        r = driver_write(bs, off, v, df, err);
        pthread_rwlock_unlock(&bs->rmw_lock);
    } else {
        r = write_unaligned(bs, size, off, v->len, v, mid_data, v, df, err);
    }
    return finish(bs, r, flags, err);
}

int blk_pwrite(struct blk_node *bs, uint64_t off, const void *buf, size_t len, unsigned flags,
               struct scuse_err *err)
{
    struct iovec one;
    struct iov_view v = iov_view_of_buf(&one, (void *)buf, len);
    return blk_pwritev(bs, off, &v, flags, err);
}

/* Whole blocks of zeros: the driver's zero write, else written zeros. */
static int zero_blocks(struct blk_node *bs, uint64_t off, uint64_t len, unsigned flags,
                       struct scuse_err *err)
{
    if (bs->drv->write_zeroes) {
        int r = bs->drv->write_zeroes(bs, off, len, flags & BLK_ZERO_MAY_UNMAP, err);
        if (r != -ENOTSUP)
            return r;
    }
    static const char zeros[65536];
    uint64_t step = sizeof(zeros) & ~((uint64_t)bs->align - 1);
    for (uint64_t done = 0; done < len;) {
        size_t n = len - done < step ? (size_t)(len - done) : (size_t)step;
        struct iovec one;
        struct iov_view v = iov_view_of_buf(&one, (void *)zeros, n);
        int r = driver_write(bs, off + done, &v, 0, err);
        if (r < 0)
            return r;
        done += n;
    }
    return 0;
}

static int mid_zero(struct blk_node *bs, uint64_t off, uint64_t len, size_t src_off,
                    const void *ctx, unsigned flags, struct scuse_err *err)
{
    (void)src_off;
    (void)ctx;
    return zero_blocks(bs, off, len, flags, err);
}

int blk_write_zeroes(struct blk_node *bs, uint64_t off, uint64_t len, unsigned flags,
                     struct scuse_err *err)
{
    uint64_t size;
    int r = check_range(bs, off, len, "zero write", &size, err);
    if (r < 0 || len == 0)
        return r;
    struct scuse_err local;
    if (!err) {
        err_clear(&local);
        err = &local;
    }
    if (!bs->drv->pwritev)
        return driver_write(bs, off, &(struct iov_view){ 0 }, 0, err);
    if (bs->align <= 1) {
        r = zero_blocks(bs, off, len, flags, err);
    } else if (is_aligned(bs, size, off, len)) {
        pthread_rwlock_rdlock(&bs->rmw_lock);
        r = zero_blocks(bs, off, len, flags, err);
        pthread_rwlock_unlock(&bs->rmw_lock);
    } else {
        r = write_unaligned(bs, size, off, len, NULL, mid_zero, NULL, flags, err);
    }
    return finish(bs, r, flags, err);
}

int blk_discard(struct blk_node *bs, uint64_t off, uint64_t len, struct scuse_err *err)
{
    uint64_t size;
    int r = check_range(bs, off, len, "discard", &size, err);
    if (r < 0 || len == 0 || !bs->drv->discard)
        return r;
    struct scuse_err local;
    if (!err) {
        err_clear(&local);
        err = &local;
    }
    /* Advisory: only the whole blocks inside the range are handed on. */
    uint64_t a = bs->align, start = off, end = off + len;
    if (a > 1) {
        start = (off + a - 1) & ~(a - 1);
        end = end == size ? end : end & ~(a - 1);
        if (end <= start)
            return 0;
        pthread_rwlock_rdlock(&bs->rmw_lock);
    }
    r = bs->drv->discard(bs, start, end - start, err);
    if (a > 1)
        pthread_rwlock_unlock(&bs->rmw_lock);
    return r;
}

int blk_flush(struct blk_node *bs, struct scuse_err *err)
{
    if (bs->read_only || !bs->drv->flush)
        return 0;
    struct scuse_err local;
    if (!err) {
        err_clear(&local);
        err = &local;
    }
    return bs->drv->flush(bs, err);
}

bool blk_meta_pending(struct blk_node *bs)
{
    return !bs->read_only && bs->drv->meta_pending && bs->drv->meta_pending(bs);
}

bool blk_can_compress(const struct blk_node *bs)
{
    return bs->drv->write_compressed && bs->cluster_size;
}

int blk_write_compressed(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                         struct scuse_err *err)
{
    uint64_t size;
    int r = check_range(bs, off, v->len, "compressed write", &size, err);
    if (r < 0)
        return r;
    if (!blk_can_compress(bs))
        return err_set(err, -ENOTSUP, "'%s': %s images cannot store compressed data", bs->path,
                       bs->drv->name);
    if (off % bs->cluster_size ||
        (v->len != bs->cluster_size && off + v->len != size))
        return err_set(err, -EINVAL, "'%s': a compressed write must cover one whole cluster",
                       bs->path);
    struct scuse_err local;
    if (!err) {
        err_clear(&local);
        err = &local;
    }
    return bs->drv->write_compressed(bs, off, v, err);
}
