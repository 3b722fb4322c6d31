/* Reads and block status: find the extent, then serve each run with one
 * action (one preadv for host-contiguous grains or a flat range, one read
 * below for unallocated grains, a memset for zeros, an inflate per
 * compressed grain). */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "io/file.h"
#include "vmdk/vmdk.h"

static int noaccess(struct vmdk_state *s, const struct vmdk_extent *x, struct scuse_err *err)
{
    return err_set(err, -EACCES, "'%s': virtual offset %" PRIu64 " lies in a NOACCESS extent",
                   s->path, x->start);
}

static int read_sparse(struct blk_node *bs, struct vmdk_extent *x, uint64_t off,
                       const struct iov_view *v, struct scuse_err *err)
{
    struct vmdk_sparse *sp = x->sp;
    size_t done = 0;
    while (done < v->len) {
        uint64_t in = off - x->start + done;
        struct vmdk_run run;
        int r = vmdk_gt_map(sp, in, v->len - done, &run, err);
        if (r < 0)
            return r;
        size_t n = (size_t)run.len;
        struct iov_view part = iov_view_sub(v, done, n);
        switch (run.kind) {
        case VMDK_K_UNALLOC:
            r = blk_read_below(bs, off + done, &part, err);
            break;
        case VMDK_K_ZERO:
            iov_view_memset(&part, 0, 0, n);
            break;
        case VMDK_K_DATA:
            r = file_preadv_view(sp->fd, &part, run.host);
            if (r < 0)
                err_set(err, r, "'%s': read of %zu bytes at offset %" PRIu64 " failed: %s",
                        sp->path, n, run.host, strerror(-r));
            break;
        case VMDK_K_COMPRESSED:
            r = vmdk_read_compressed(sp, run.host, in & (sp->grain_bytes - 1), &part, err);
            break;
        }
        if (r < 0)
            return r;
        done += n;
    }
    return 0;
}

int vmdk_preadv(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                struct scuse_err *err)
{
    struct vmdk_state *s = bs->state;
    size_t done = 0;
    while (done < v->len) {
        uint64_t at = off + done;
        struct vmdk_extent *x = vmdk_extent_at(s, at);
        uint64_t left = x->start + x->len - at;
        size_t n = v->len - done < left ? v->len - done : (size_t)left;
        struct iov_view part = iov_view_sub(v, done, n);
        int r = 0;
        if (x->access == VMDK_NOACCESS) {
            r = noaccess(s, x, err);
        } else if (x->type == VMDK_ZERO) {
            iov_view_memset(&part, 0, 0, n);
        } else if (x->type == VMDK_SPARSE) {
            r = read_sparse(bs, x, at, &part, err);
        } else {
            r = file_preadv_view(x->fd, &part, x->flat_off + (at - x->start));
            if (r < 0)
                err_set(err, r, "'%s': read of %zu bytes at offset %" PRIu64 " failed: %s",
                        x->path, n, x->flat_off + (at - x->start), strerror(-r));
        }
        if (r < 0)
            return r;
        done += n;
    }
    return 0;
}

int vmdk_block_status(struct blk_node *bs, uint64_t off, uint64_t len, uint64_t *pnum,
                      struct blk_status *st, struct scuse_err *err)
{
    struct vmdk_state *s = bs->state;
    struct vmdk_extent *x = vmdk_extent_at(s, off);
    uint64_t left = x->start + x->len - off;
    if (len > left)
        len = left;
    *pnum = len;
    st->flags = 0;
    if (x->access == VMDK_NOACCESS)
        return noaccess(s, x, err);
    if (x->type == VMDK_ZERO) {
        st->flags = BLK_STATUS_ALLOCATED | BLK_STATUS_ZERO;
        return 0;
    }
    if (x->type != VMDK_SPARSE) {
        st->flags = BLK_STATUS_ALLOCATED | BLK_STATUS_DATA | BLK_STATUS_OFFSET;
        st->offset = x->flat_off + (off - x->start);
        return 0;
    }
    struct vmdk_run run;
    int r = vmdk_gt_map(x->sp, off - x->start, len, &run, err);
    if (r < 0)
        return r;
    *pnum = run.len;
    switch (run.kind) {
    case VMDK_K_UNALLOC:
        break;
    case VMDK_K_ZERO:
        st->flags = BLK_STATUS_ALLOCATED | BLK_STATUS_ZERO;
        break;
    case VMDK_K_DATA:
        st->flags = BLK_STATUS_ALLOCATED | BLK_STATUS_DATA | BLK_STATUS_OFFSET;
        st->offset = run.host;
        break;
    case VMDK_K_COMPRESSED:
        st->flags = BLK_STATUS_ALLOCATED | BLK_STATUS_DATA | BLK_STATUS_COMPRESSED;
        break;
    }
    return 0;
}
