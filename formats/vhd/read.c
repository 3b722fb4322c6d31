/* The data path: guest offset -> run (stored data, zeros, or the parent's),
 * then one action per run. A fixed disk is its file up to the footer. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "io/file.h"
#include "vhd/vhd.h"

int vhd_map(struct vhd_state *s, uint64_t off, uint64_t len, struct vhd_run *run,
            struct scuse_err *err)
{
    uint32_t blk = (uint32_t)(off >> s->block_shift);
    uint64_t in = off & (s->block_size - 1);
    uint64_t n = s->block_size - in < len ? s->block_size - in : len;
    uint32_t e = vhd_bat_get(s, blk);
    enum vhd_kind absent = s->diff ? VHD_RUN_BELOW : VHD_RUN_ZERO;
    if (e == VHD_BAT_FREE) {
        /* Unallocated blocks in a row make one run. */
        while (n < len && vhd_bat_get(s, blk + 1) == VHD_BAT_FREE) {
            blk++;
            n += s->block_size < len - n ? s->block_size : len - n;
        }
        *run = (struct vhd_run){ .kind = absent, .len = n };
        return 0;
    }
    uint64_t host = (uint64_t)e * VHD_SECTOR, data = host + s->bitmap_size;
    /* (a writable open has checked every entry) */
    if (!s->writable && (host >= s->file_size || s->bitmap_size > s->file_size - host))
        return err_set(err, -EIO, "'%s': BAT entry %u puts the bitmap of block %u at %" PRIu64
                       ", past the end of the file (size %" PRIu64 ")", s->path, blk, blk, host,
                       s->file_size);
    if (!s->writable && s->block_size > s->file_size - data)
        return err_set(err, -EIO, "'%s': BAT entry %u puts block %u at %" PRIu64 ", whose %u "
                       "bytes of data run past the end of the file (size %" PRIu64 ")", s->path,
                       blk, blk, host, s->block_size, s->file_size);
    int st;
    int r = vhd_block_state(s, blk, &st, err);
    if (r < 0)
        return r;
    if (st == VHD_BS_FULL) {
        *run = (struct vhd_run){ .kind = VHD_RUN_DATA, .len = n, .host = data + in,
                                 .allocated = true };
        return 0;
    }
    uint32_t first = (uint32_t)(in / VHD_SECTOR);
    uint32_t nsec = (uint32_t)((n + in % VHD_SECTOR + VHD_SECTOR - 1) / VHD_SECTOR);
    bool set;
    uint32_t count;
    r = vhd_bitmap_run(s, blk, first, nsec, &set, &count, err);
    if (r < 0)
        return r;
    uint64_t bytes = (uint64_t)(first + count) * VHD_SECTOR - in;
    *run = (struct vhd_run){ .kind = set ? VHD_RUN_DATA : absent, .len = bytes < n ? bytes : n,
                             .host = set ? data + in : 0, .allocated = true };
    return 0;
}

int vhd_preadv(struct blk_node *bs, uint64_t off, const struct iov_view *v,
               struct scuse_err *err)
{
    struct vhd_state *s = bs->state;
    if (!s->sparse) {
        int r = file_preadv_view(s->fd, v, off);
        return r < 0 ? err_set(err, r, "'%s': read of %zu bytes at %" PRIu64 " failed: %s",
                               bs->path, v->len, off, strerror(-r)) : 0;
    }
    for (size_t done = 0; done < v->len;) {
        struct vhd_run run;
        int r = vhd_map(s, off + done, v->len - done, &run, err);
        if (r < 0)
            return r;
        size_t n = (size_t)run.len;
        struct iov_view part = iov_view_sub(v, done, n);
        switch (run.kind) {
        case VHD_RUN_DATA:
            r = file_preadv_view(s->fd, &part, run.host);
            if (r < 0)
                return err_set(err, r, "'%s': read of %zu bytes at host offset %" PRIu64
                               " failed: %s", bs->path, n, run.host, strerror(-r));
            break;
        case VHD_RUN_ZERO:
            iov_view_memset(&part, 0, 0, n);
            break;
        case VHD_RUN_BELOW:
            r = blk_read_below(bs, off + done, &part, err);
            if (r < 0)
                return r;
            break;
        }
        done += n;
    }
    return 0;
}

int vhd_block_status(struct blk_node *bs, uint64_t off, uint64_t len, uint64_t *pnum,
                     struct blk_status *st, struct scuse_err *err)
{
    struct vhd_state *s = bs->state;
    if (!s->sparse) {
        bool data;
        int r = file_extent(s->fd, off, len, &data, pnum);
        if (r < 0)
            return err_set(err, r, "'%s': extent query at %" PRIu64 " failed: %s", bs->path, off,
                           strerror(-r));
        /* As QEMU: the format maps every byte (data); a hole in the
         * file also reads as zeros. */
        st->flags = BLK_STATUS_ALLOCATED | BLK_STATUS_OFFSET | BLK_STATUS_DATA |
                    (data ? 0 : BLK_STATUS_ZERO);
        st->offset = off;
        return 0;
    }
    struct vhd_run run;
    int r = vhd_map(s, off, len, &run, err);
    if (r < 0)
        return r;
    *pnum = run.len;
    st->offset = 0;
    switch (run.kind) {
    case VHD_RUN_DATA:
        st->flags = BLK_STATUS_ALLOCATED | BLK_STATUS_DATA | BLK_STATUS_OFFSET;
        st->offset = run.host;
        break;
    case VHD_RUN_ZERO:
        /* As QEMU: a dynamic disk answers for its whole range. */
        st->flags = BLK_STATUS_ALLOCATED | BLK_STATUS_ZERO;
        break;
    case VHD_RUN_BELOW:
        st->flags = 0;
        break;
    }
    return 0;
}
