/* The write path: fixed disks in place; dynamic and differencing disks by
 * block, allocating at the end of the file.
 *
 * Allocation (under s->lock) puts the block where the footer is and moves
 * the footer after it: the new footer is written first, so the file always
 * ends with a valid footer; then what lies in the block's place is zeroed
 * (bytes past the last block: a crashed allocation's leftovers) and its
 * bitmap written, all ones in a dynamic disk (its data reads as zeros until
 * written), all zeros in a differencing one (the parent answers until a
 * sector is written). The BAT entry changes in memory and reaches the file
 * at the next flush, after a sync (flush.c): nothing durable points at a
 * block before its footer, bitmap and data are durable.
 *
 * Data goes to the block without the lock; the bits of the sectors written
 * are set afterwards in the cached bitmap (bitmap.c), so a sector reads
 * from this disk only once its data is there. FULL blocks (every bit set)
 * need no bitmap work at all. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/file.h"
#include "vhd/vhd.h"

static void note_data(struct vhd_state *s)
{
    __atomic_store_n(&s->data_unsynced, true, __ATOMIC_RELEASE);
}

/* Zeros over [host, host+len) of the file: a hole where asked (unmap) or
 * where zero-range is missing, written zeros as the last resort. */
static int zero_host(struct vhd_state *s, uint64_t host, uint64_t len, bool unmap)
{
    int r = unmap ? file_punch_hole(s->fd, host, len) : -ENOTSUP;
    if (r == -ENOTSUP)
        r = file_zero_range(s->fd, host, len);
    if (r == -ENOTSUP)
        r = file_punch_hole(s->fd, host, len);
    if (r != -ENOTSUP)
        return r;
    static const uint8_t zeros[65536];
    for (uint64_t done = 0; done < len;) {
        size_t n = len - done < sizeof(zeros) ? (size_t)(len - done) : sizeof(zeros);
        r = file_pwrite_exact(s->fd, zeros, n, host + done);
        if (r < 0)
            return r;
        done += n;
    }
    return 0;
}

static int alloc_block(struct vhd_state *s, uint32_t blk, struct scuse_err *err)
{
    uint64_t b = s->data_end, data = b + s->bitmap_size, e = data + s->block_size;
    uint64_t old = s->file_size;
    int r = file_pwrite_exact(s->fd, s->footer_raw, VHD_FOOTER_SIZE, e);
    if (r == 0 && old > e + VHD_FOOTER_SIZE && ftruncate(s->fd, (off_t)(e + VHD_FOOTER_SIZE)) < 0)
        r = -errno;
    if (r == 0 && old > data)
        r = zero_host(s, data, (old < e ? old : e) - data, true);
    uint8_t *bm = NULL;
    if (r == 0) {
        bm = malloc(s->bitmap_size);
        if (!bm)
            return err_set(err, -ENOMEM, "'%s': out of memory for a bitmap", s->path);
        memset(bm, s->diff ? 0x00 : 0xff, s->bitmap_size);
        r = file_pwrite_exact(s->fd, bm, s->bitmap_size, b);
    }
    if (r < 0) {
        free(bm);
        return err_set(err, r, "'%s': cannot allocate block %u at %" PRIu64 ": %s", s->path, blk,
                       b, strerror(-r));
    }
    s->file_size = e + VHD_FOOTER_SIZE;
    s->data_end = e;
    s->meta_unsynced = true;
    if (s->diff) {
        __atomic_store_n(&s->bstate[blk], (uint8_t)VHD_BS_MIXED, __ATOMIC_RELEASE);
        r = vhd_bitmap_insert_locked(s, blk, bm, err);
    } else {
        __atomic_store_n(&s->bstate[blk], (uint8_t)VHD_BS_FULL, __ATOMIC_RELEASE);
    }
    free(bm);
    if (r < 0)
        return r;
    __atomic_store_n(&s->bat[blk], (uint32_t)(b / VHD_SECTOR), __ATOMIC_RELEASE);
    uint32_t piece = (uint32_t)((uint64_t)blk * 4 / VHD_SECTOR);
    s->bat_dirty[piece] = 1;
    s->bat_any_dirty = true;
    return 0;
}

/* The host offset of allocated block blk's data, allocating it if needed. */
static int block_data(struct vhd_state *s, uint32_t blk, uint64_t *data, struct scuse_err *err)
{
    uint32_t e = vhd_bat_get(s, blk);
    if (e == VHD_BAT_FREE) {
        pthread_mutex_lock(&s->lock);
        int r = 0;
        if (vhd_bat_get(s, blk) == VHD_BAT_FREE)
            r = alloc_block(s, blk, err);
        pthread_mutex_unlock(&s->lock);
        if (r < 0)
            return r;
        e = vhd_bat_get(s, blk);
    }
    *data = (uint64_t)e * VHD_SECTOR + s->bitmap_size;
    return 0;
}

/* After the data of sectors [first, first+n) of block blk is written:
 * their bits, where the block is not FULL already. */
static int mark(struct vhd_state *s, uint32_t blk, uint32_t first, uint32_t n,
                struct scuse_err *err)
{
    int st;
    int r = vhd_block_state(s, blk, &st, err);
    if (r < 0 || st == VHD_BS_FULL)
        return r;
    pthread_mutex_lock(&s->lock);
    r = vhd_bitmap_set_locked(s, blk, first, n, err);
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* One piece inside one block: data from v, or zeros (v NULL). */
static int write_piece(struct vhd_state *s, uint64_t off, uint64_t len, const struct iov_view *v,
                       bool unmap, struct scuse_err *err)
{
    uint32_t blk = (uint32_t)(off >> s->block_shift);
    uint64_t in = off & (s->block_size - 1);
    uint64_t data;
    int r = block_data(s, blk, &data, err);
    if (r < 0)
        return r;
    r = v ? file_pwritev_view(s->fd, v, data + in) : zero_host(s, data + in, len, unmap);
    if (r < 0)
        return err_set(err, r, "'%s': %s of %" PRIu64 " bytes at host offset %" PRIu64
                       " failed: %s", s->path, v ? "write" : "zero write", len, data + in,
                       strerror(-r));
    note_data(s);
    return mark(s, blk, (uint32_t)(in / VHD_SECTOR), (uint32_t)(len / VHD_SECTOR), err);
}

int vhd_pwritev(struct blk_node *bs, uint64_t off, const struct iov_view *v, unsigned flags,
                struct scuse_err *err)
{
    (void)flags;
    struct vhd_state *s = bs->state;
    if (!s->sparse) {
        int r = file_pwritev_view(s->fd, v, off);
        if (r < 0)
            return err_set(err, r, "'%s': write of %zu bytes at %" PRIu64 " failed: %s", bs->path,
                           v->len, off, strerror(-r));
        note_data(s);
        return 0;
    }
    for (size_t done = 0; done < v->len;) {
        uint64_t o = off + done;
        uint64_t room = s->block_size - (o & (s->block_size - 1));
        size_t n = v->len - done < room ? v->len - done : (size_t)room;
        struct iov_view part = iov_view_sub(v, done, n);
        int r = write_piece(s, o, n, &part, false, err);
        if (r < 0)
            return r;
        done += n;
    }
    return 0;
}

/* Whether [off, off+len) reads as zeros below a differencing disk. */
static int below_is_zero(struct blk_node *bs, uint64_t off, uint64_t len, bool *zero,
                         struct scuse_err *err)
{
    struct blk_node *b = bs->backing;
    *zero = true;
    if (!b || off >= b->size)
        return 0;
    uint64_t end = off + len < b->size ? off + len : b->size;
    while (off < end) {
        uint64_t n;
        struct blk_status st;
        int r = blk_block_status(b, off, end - off, &n, &st, err);
        if (r < 0)
            return r;
        if (!(st.flags & BLK_STATUS_ZERO)) {
            *zero = false;
            return 0;
        }
        off += n;
    }
    return 0;
}

/* Zeros in a sparse disk without a buffer. Unallocated blocks of a dynamic
 * disk read as zeros already, and so do those of a differencing disk over
 * zeros; anywhere else the data is zeroed in place and, in a differencing
 * disk over data, the sectors' bits set (so the parent no longer shows
 * through: such zero writes allocate). */
static int zero_sparse(struct blk_node *bs, uint64_t off, uint64_t len, bool unmap,
                       struct scuse_err *err)
{
    struct vhd_state *s = bs->state;
    for (uint64_t done = 0; done < len;) {
        uint64_t o = off + done;
        uint64_t room = s->block_size - (o & (s->block_size - 1));
        uint64_t n = len - done < room ? len - done : room;
        uint32_t blk = (uint32_t)(o >> s->block_shift);
        bool allocated = vhd_bat_get(s, blk) != VHD_BAT_FREE;
        bool over_data = false;
        if (s->diff) {
            bool z;
            int r = below_is_zero(bs, o, n, &z, err);
            if (r < 0)
                return r;
            over_data = !z;
        }
        int r = 0;
        if (over_data) {
            r = write_piece(s, o, n, NULL, unmap, err);
        } else if (allocated) {
            uint64_t data = (uint64_t)vhd_bat_get(s, blk) * VHD_SECTOR + s->bitmap_size;
            uint64_t in = o & (s->block_size - 1);
            r = zero_host(s, data + in, n, unmap);
            if (r < 0)
                return err_set(err, r, "'%s': zero write of %" PRIu64 " bytes at host offset %"
                               PRIu64 " failed: %s", s->path, n, data + in, strerror(-r));
            note_data(s);
        }
        if (r < 0)
            return r;
        done += n;
    }
    return 0;
}

int vhd_write_zeroes(struct blk_node *bs, uint64_t off, uint64_t len, unsigned flags,
                     struct scuse_err *err)
{
    struct vhd_state *s = bs->state;
    bool unmap = flags & BLK_ZERO_MAY_UNMAP;
    if (s->sparse)
        return zero_sparse(bs, off, len, unmap, err);
    int r = zero_host(s, off, len, unmap);
    if (r < 0)
        return err_set(err, r, "'%s': zero write of %" PRIu64 " bytes at %" PRIu64 " failed: %s",
                       bs->path, len, off, strerror(-r));
    note_data(s);
    return 0;
}

/* Fixed and dynamic disks give the space back (the range reads as zeros);
 * a differencing disk cannot: its unallocated sectors show the parent. */
int vhd_discard(struct blk_node *bs, uint64_t off, uint64_t len, struct scuse_err *err)
{
    struct vhd_state *s = bs->state;
    if (s->diff)
        return 0;
    return vhd_write_zeroes(bs, off, len, BLK_ZERO_MAY_UNMAP, err);
}
