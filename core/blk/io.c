/* Reads and block status through a chain: clipping, alignment, splitting
 * and the walk into backing files. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blk/driver.h"

/* Hand [off, off+len) to the driver in pieces of at most max_transfer. */
static int driver_read(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                       struct scuse_err *err)
{
    uint64_t max = bs->max_transfer ? bs->max_transfer : v->len;
    for (size_t done = 0; done < v->len;) {
        size_t n = v->len - done < max ? v->len - done : (size_t)max;
        struct iov_view piece = iov_view_sub(v, done, n);
        int r = bs->drv->preadv(bs, off + done, &piece, err);
        if (r < 0)
            return r;
        done += n;
    }
    return 0;
}

/* The aligned range around [off, off+len): whole blocks, but never past
 * the end of the image (size: the request's one load of it; its last
 * block may be short). */
void blk_align_range(const struct blk_node *bs, uint64_t size, uint64_t off, uint64_t len,
                     uint64_t *start, uint64_t *end)
{
    uint64_t a = bs->align;
    *start = off & ~(a - 1);
    *end = (off + len + a - 1) & ~(a - 1);
    if (*end > size)
        *end = size;
}

/* Unaligned requests go through a bounce buffer; only drivers that
 * declare an alignment above 1 ever take this path. */
static int unaligned_read(struct blk_node *bs, uint64_t size, uint64_t off,
                          const struct iov_view *v, struct scuse_err *err)
{
    uint64_t a = bs->align, start, end;
    blk_align_range(bs, size, off, v->len, &start, &end);
    size_t blen = (size_t)(end - start);
    char *buf = aligned_alloc((size_t)a, (blen + a - 1) & ~(a - 1));
    if (!buf)
        return err_set(err, -ENOMEM, "'%s': out of memory for an unaligned read", bs->path);
    struct iovec one;
    struct iov_view bv = iov_view_of_buf(&one, buf, blen);
    int r = driver_read(bs, start, &bv, err);
    if (r == 0)
        iov_view_from_buf(v, 0, buf + (off - start), v->len);
    free(buf);
    return r;
}

static bool aligned(const struct blk_node *bs, uint64_t size, uint64_t off, uint64_t len)
{
    uint64_t m = bs->align - 1;
    return (off & m) == 0 && ((len & m) == 0 || off + len == size);
}

int blk_preadv(struct blk_node *bs, uint64_t off, const struct iov_view *v, struct scuse_err *err)
{
    uint64_t size = blk_size_now(bs);
    if (off > size || v->len > size - off)
        return err_set(err, -EINVAL, "'%s': read of %zu bytes at %llu is past the end (%llu)",
                       bs->path, v->len, (unsigned long long)off, (unsigned long long)size);
    if (v->len == 0)
        return 0;
    struct scuse_err local;
    if (!err) {
        err_clear(&local);
        err = &local;
    }
    if (bs->align > 1 && !aligned(bs, size, off, v->len))
        return unaligned_read(bs, size, off, v, err);
    return driver_read(bs, off, v, err);
}

int blk_pread(struct blk_node *bs, uint64_t off, void *buf, size_t len, struct scuse_err *err)
{
    struct iovec one;
    struct iov_view v = iov_view_of_buf(&one, buf, len);
    return blk_preadv(bs, off, &v, err);
}

int blk_read_below(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                   struct scuse_err *err)
{
    struct blk_node *b = bs->backing;
    size_t have = 0;
    if (b && off < b->size) {
        /* A larger backing file is seen only up to the overlay's size,
         * which the caller's range already respects. */
        have = b->size - off < v->len ? (size_t)(b->size - off) : v->len;
        struct iov_view part = iov_view_sub(v, 0, have);
        int r = blk_preadv(b, off, &part, err);
        if (r < 0)
            return r;
    }
    if (have < v->len)
        iov_view_memset(v, have, 0, v->len - have);
    return 0;
}

/* One layer's answer for [off, off+len), asked in whole blocks when the
 * driver wants them and trimmed back to start at off. */
static int layer_status(struct blk_node *node, uint64_t size, uint64_t off, uint64_t len,
                        uint64_t *pnum, struct blk_status *st, struct scuse_err *err)
{
    uint64_t start = off, end = off + len;
    if (node->align > 1)
        blk_align_range(node, size, off, len, &start, &end);
    uint64_t n = 0;
    memset(st, 0, sizeof(*st));
    int r = node->drv->block_status(node, start, end - start, &n, st, err);
    if (r < 0)
        return r;
    if (n <= off - start || n > end - start)
        return err_set(err, -EIO, "'%s': block status at %llu answered %llu bytes of %llu "
                       "(a driver bug)", node->path, (unsigned long long)start,
                       (unsigned long long)n, (unsigned long long)(end - start));
    n -= off - start;
    if (st->flags & BLK_STATUS_OFFSET)
        st->offset += off - start;
    *pnum = n < len ? n : len;
    return 0;
}

int blk_block_status(struct blk_node *bs, uint64_t off, uint64_t len,
                     uint64_t *pnum, struct blk_status *st, struct scuse_err *err)
{
    uint64_t size = blk_size_now(bs);
    if (off >= size || len == 0)
        return err_set(err, -EINVAL, "'%s': block status at %llu is past the end (%llu)",
                       bs->path, (unsigned long long)off, (unsigned long long)size);
    if (len > size - off)
        len = size - off;
    struct scuse_err local;
    if (!err) {
        err_clear(&local);
        err = &local;
    }
    struct blk_node *node = bs;
    unsigned depth = 0;
    for (;;) {
        uint64_t n = 0;
        /* the top's size as checked above; a backing node's does not change */
        int r = layer_status(node, node == bs ? size : node->size, off, len, &n, st, err);
        if (r < 0)
            return r;
        st->layer = node;
        st->depth = depth;
        if (st->flags & BLK_STATUS_ALLOCATED) {
            *pnum = n;
            return 0;
        }
        /* Nothing here: zeros unless a backing file covers this range. */
        if (!node->backing || off >= node->backing->size) {
            st->flags = BLK_STATUS_ZERO;
            *pnum = n;
            return 0;
        }
        len = n;
        if (len > node->backing->size - off)
            len = node->backing->size - off;
        node = node->backing;
        depth++;
    }
}
