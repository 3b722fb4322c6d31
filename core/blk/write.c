/* Writes through the block layer: bounds, read-only state, FUA, the
 * zero-write fallback, and the guard that keeps a probed raw image raw. */
#include <errno.h>
#include <string.h>

#include "blk/driver.h"
#include "util/log.h"

const struct blk_driver *blk_driver_probe(const uint8_t *buf, size_t len);

#define GUARD_BYTES 512

static int check_range(struct blk_node *bs, uint64_t off, uint64_t len)
{
    if (bs->read_only)
        return -EROFS;
    if (off > bs->size || len > bs->size - off)
        return -EINVAL;
    return 0;
}

/* A raw image whose format was probed must not become another format by
 * a write to its first sector (a guest writing a qcow2 header would turn
 * the next probe into a backing-file read of host files). */
static int probed_raw_guard(struct blk_node *bs, uint64_t off, const struct iov_view *v)
{
    if (!bs->probed || bs->drv != &blk_driver_raw || off >= GUARD_BYTES)
        return 0;
    uint8_t head[GUARD_BYTES];
    size_t have = bs->size < GUARD_BYTES ? (size_t)bs->size : GUARD_BYTES;
    int r = blk_pread(bs, 0, head, have);
    if (r < 0)
        return r;
    size_t n = have - off < v->len ? have - (size_t)off : v->len;
    iov_view_to_buf(v, 0, head + off, n);
    if (blk_driver_probe(head, have) != &blk_driver_raw) {
        log_error("'%s': refused a write to sector 0 of a probed raw image that would make it "
                  "look like another format; give the format explicitly (-f raw)", bs->path);
        return -EPERM;
    }
    return 0;
}

int blk_pwritev(struct blk_node *bs, uint64_t off, const struct iov_view *v, unsigned flags)
{
    int r = check_range(bs, off, v->len);
    if (r < 0 || v->len == 0)
        return r;
    if (!bs->drv->pwritev)
        return -ENOTSUP;
    r = probed_raw_guard(bs, off, v);
    if (r < 0)
        return r;
    uint64_t max = bs->max_transfer ? bs->max_transfer : v->len;
    for (size_t done = 0; done < v->len;) {
        size_t n = v->len - done < max ? v->len - done : (size_t)max;
        struct iov_view piece = iov_view_sub(v, done, n);
        r = bs->drv->pwritev(bs, off + done, &piece, flags & ~BLK_WRITE_FUA);
        if (r < 0)
            return r;
        done += n;
    }
    return (flags & BLK_WRITE_FUA) ? blk_flush(bs) : 0;
}

int blk_pwrite(struct blk_node *bs, uint64_t off, const void *buf, size_t len, unsigned flags)
{
    struct iovec one;
    struct iov_view v = iov_view_of_buf(&one, (void *)buf, len);
    return blk_pwritev(bs, off, &v, flags);
}

int blk_write_zeroes(struct blk_node *bs, uint64_t off, uint64_t len, unsigned flags)
{
    int r = check_range(bs, off, len);
    if (r < 0 || len == 0)
        return r;
    if (bs->drv->write_zeroes) {
        r = bs->drv->write_zeroes(bs, off, len, flags & ~BLK_WRITE_FUA);
        if (r != -ENOTSUP)
            return r < 0 ? r : (flags & BLK_WRITE_FUA) ? blk_flush(bs) : 0;
    }
    static const char zeros[65536];
    for (uint64_t done = 0; done < len;) {
        size_t n = len - done < sizeof(zeros) ? (size_t)(len - done) : sizeof(zeros);
        r = blk_pwrite(bs, off + done, zeros, n, 0);
        if (r < 0)
            return r;
        done += n;
    }
    return (flags & BLK_WRITE_FUA) ? blk_flush(bs) : 0;
}

int blk_discard(struct blk_node *bs, uint64_t off, uint64_t len)
{
    int r = check_range(bs, off, len);
    if (r < 0 || len == 0)
        return r;
    return bs->drv->discard ? bs->drv->discard(bs, off, len) : 0;
}

int blk_flush(struct blk_node *bs)
{
    if (bs->read_only || !bs->drv->flush)
        return 0;
    return bs->drv->flush(bs);
}

bool blk_meta_pending(struct blk_node *bs)
{
    return !bs->read_only && bs->drv->meta_pending && bs->drv->meta_pending(bs);
}
