/* The data path: map a run, then serve it with one action (one preadv for
 * a run of host-contiguous clusters, one read below for an unallocated
 * run, a memset for zeros, a decompression per compressed cluster). */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "io/file.h"
#include "qcow2/qcow2.h"

int qcow2_read_mapped(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                      struct scuse_err *err)
{
    struct qcow2_state *s = bs->state;
    size_t done = 0;
    while (done < v->len) {
        struct qcow2_run run;
        int r = qcow2_map(s, off + done, v->len - done, false, &run, err);
        if (r < 0)
            return r;
        size_t n = run.len < v->len - done ? (size_t)run.len : v->len - done;
        struct iov_view part = iov_view_sub(v, done, n);
        switch (run.kind) {
        case QCOW2_UNALLOCATED:
            r = blk_read_below(bs, off + done, &part, err);
            break;
        case QCOW2_ZERO_PLAIN:
        case QCOW2_ZERO_ALLOC:
            iov_view_memset(&part, 0, 0, n);
            break;
        case QCOW2_NORMAL:
            r = file_preadv_view(s->data_fd, &part, run.host);
            if (r < 0)
                qcow2_note(s, err, "read of %zu bytes at host offset 0x%" PRIx64 " failed: %s", n,
                             run.host, strerror(-r));
            break;
        case QCOW2_COMPRESSED:
            r = qcow2_read_compressed(s, run.l2e,
                                      (uint32_t)((off + done) & (s->cluster_size - 1)), &part, err);
            break;
        }
        if (r < 0)
            return r;
        done += n;
    }
    return 0;
}

int qcow2_preadv(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                 struct scuse_err *err)
{
    struct qcow2_state *s = bs->state;
    if (!s->writable)
        return qcow2_read_mapped(bs, off, v, err);
    /* Host offsets mapped here stay owned until the read is done. */
    pthread_rwlock_rdlock(&s->w.barrier);
    int r = qcow2_read_mapped(bs, off, v, err);
    pthread_rwlock_unlock(&s->w.barrier);
    return r;
}

int qcow2_block_status(struct blk_node *bs, uint64_t off, uint64_t len, uint64_t *pnum,
                       struct blk_status *st, struct scuse_err *err)
{
    struct qcow2_state *s = bs->state;
    struct qcow2_run run;
    int r = qcow2_map(s, off, len, true, &run, err);
    if (r < 0)
        return r;
    *pnum = run.len < len ? run.len : len;
    st->offset = 0;
    switch (run.kind) {
    case QCOW2_UNALLOCATED:
        st->flags = 0;
        break;
    case QCOW2_ZERO_PLAIN:
        st->flags = BLK_STATUS_ALLOCATED | BLK_STATUS_ZERO;
        break;
    case QCOW2_ZERO_ALLOC:
        st->flags = BLK_STATUS_ALLOCATED | BLK_STATUS_ZERO | BLK_STATUS_OFFSET | BLK_STATUS_RESERVED;
        st->offset = run.host;
        break;
    case QCOW2_NORMAL:
        st->flags = BLK_STATUS_ALLOCATED | BLK_STATUS_DATA | BLK_STATUS_OFFSET;
        st->offset = run.host;
        break;
    case QCOW2_COMPRESSED:
        st->flags = BLK_STATUS_ALLOCATED | BLK_STATUS_DATA | BLK_STATUS_COMPRESSED;
        break;
    }
    return 0;
}
