/* Reads and block status through a chain: clipping, alignment, splitting
 * and the walk into backing files. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blk/driver.h"

/* Hand [off, off+len) to the driver in pieces of at most max_transfer. */
static int driver_read(struct blk_node *bs, uint64_t off, const struct iov_view *v)
{
    uint64_t max = bs->max_transfer ? bs->max_transfer : v->len;
    for (size_t done = 0; done < v->len;) {
        size_t n = v->len - done < max ? v->len - done : (size_t)max;
        struct iov_view piece = iov_view_sub(v, done, n);
        int r = bs->drv->preadv(bs, off + done, &piece);
        if (r < 0)
            return r;
        done += n;
    }
    return 0;
}

/* Unaligned requests go through a bounce buffer; only drivers that
 * declare an alignment above 1 ever take this path. */
static int unaligned_read(struct blk_node *bs, uint64_t off, const struct iov_view *v)
{
    uint64_t a = bs->align;
    uint64_t start = off & ~(a - 1);
    uint64_t end = (off + v->len + a - 1) & ~(a - 1);
    if (end > bs->size)
        end = bs->size;
    size_t blen = (size_t)(end - start);
    char *buf = aligned_alloc((size_t)a, (blen + a - 1) & ~(a - 1));
    if (!buf)
        return -ENOMEM;
    struct iovec one;
    struct iov_view bv = iov_view_of_buf(&one, buf, blen);
    int r = driver_read(bs, start, &bv);
    if (r == 0)
        iov_view_from_buf(v, 0, buf + (off - start), v->len);
    free(buf);
    return r;
}

int blk_preadv(struct blk_node *bs, uint64_t off, const struct iov_view *v)
{
    if (off > bs->size || v->len > bs->size - off)
        return -EINVAL;
    if (v->len == 0)
        return 0;
    if (bs->align > 1 && ((off | v->len) & (bs->align - 1)))
        return unaligned_read(bs, off, v);
    return driver_read(bs, off, v);
}

int blk_pread(struct blk_node *bs, uint64_t off, void *buf, size_t len)
{
    struct iovec one;
    struct iov_view v = iov_view_of_buf(&one, buf, len);
    return blk_preadv(bs, off, &v);
}

int blk_read_below(struct blk_node *bs, uint64_t off, const struct iov_view *v)
{
    struct blk_node *b = bs->backing;
    size_t have = 0;
    if (b && off < b->size) {
        /* A larger backing file is seen only up to the overlay's size,
         * which the caller's range already respects. */
        have = b->size - off < v->len ? (size_t)(b->size - off) : v->len;
        struct iov_view part = iov_view_sub(v, 0, have);
        int r = blk_preadv(b, off, &part);
        if (r < 0)
            return r;
    }
    if (have < v->len)
        iov_view_memset(v, have, 0, v->len - have);
    return 0;
}

int blk_block_status(struct blk_node *bs, uint64_t off, uint64_t len,
                     uint64_t *pnum, struct blk_status *st)
{
    if (off >= bs->size || len == 0)
        return -EINVAL;
    if (len > bs->size - off)
        len = bs->size - off;
    struct blk_node *node = bs;
    unsigned depth = 0;
    for (;;) {
        uint64_t n = 0;
        memset(st, 0, sizeof(*st));
        int r = node->drv->block_status(node, off, len, &n, st);
        if (r < 0)
            return r;
        if (n == 0 || n > len)
            return -EIO; /* driver bug: never loop forever */
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
