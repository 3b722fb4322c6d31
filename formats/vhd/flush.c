/* Crash-safe writeback and the writer's lifetime.
 *
 * Metadata changes live in memory (BAT entries of new blocks, bits of
 * sectors written) until a flush writes them in this order:
 *
 *   (a) sync: guest data, new blocks' footers and bitmaps are durable;
 *   (b) dirty bitmaps and dirty pieces of the BAT, written;
 *   (c) sync.
 *
 * A crash before (b) finishes leaves the file as the last flush left it
 * plus blocks nothing points at (reused by the next allocation after a
 * reopen: write.c zeroes them) and, for a crash after a block's footer,
 * that footer at the end. A BAT entry or a bitmap bit on disk only ever
 * describes data that was durable first. The flush runs for the vtable's
 * flush, at close, and when the bitmap cache holds only dirty bitmaps. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "vhd/vhd.h"

int vhd_sync(struct vhd_state *s)
{
    return s->no_flush ? 0 : file_sync(s->fd);
}

static int sync_or_note(struct vhd_state *s, struct scuse_err *err)
{
    int r = vhd_sync(s);
    return r < 0 ? err_set(err, r, "'%s': flush (fdatasync) failed: %s", s->path, strerror(-r)) : 0;
}

static int bat_writeback(struct vhd_state *s, struct scuse_err *err)
{
    if (!s->bat_any_dirty)
        return 0;
    uint64_t bytes = (uint64_t)s->n_bat * 4;
    uint8_t buf[VHD_SECTOR];
    for (uint32_t p = 0; p < s->bat_pieces; p++) {
        if (!s->bat_dirty[p])
            continue;
        uint64_t start = (uint64_t)p * VHD_SECTOR;
        size_t n = bytes - start < VHD_SECTOR ? (size_t)(bytes - start) : VHD_SECTOR;
        for (size_t i = 0; i < n / 4; i++)
            vhd_put_be32(buf + 4 * i, vhd_bat_get(s, (uint32_t)(start / 4 + i)));
        uint64_t at = s->dh.table_offset + start;
        int r = file_pwrite_exact(s->fd, buf, n, at);
        if (r < 0)
            return err_set(err, r, "'%s': cannot write the BAT at %" PRIu64 ": %s", s->path, at,
                           strerror(-r));
        s->bat_dirty[p] = 0;
        s->meta_unsynced = true;
    }
    s->bat_any_dirty = false;
    return 0;
}

int vhd_flush_locked(struct vhd_state *s, struct scuse_err *err)
{
    bool data = __atomic_exchange_n(&s->data_unsynced, false, __ATOMIC_ACQ_REL);
    bool meta = s->ndirty || s->bat_any_dirty;
    if (!data && !meta && !s->meta_unsynced)
        return 0;
    if (data || s->meta_unsynced) {
        int r = sync_or_note(s, err);
        if (r < 0) {
            if (data)
                __atomic_store_n(&s->data_unsynced, true, __ATOMIC_RELEASE);
            return r;
        }
        s->meta_unsynced = false;
    }
    if (!meta)
        return 0;
    int r = vhd_bitmap_writeback_locked(s, err);
    if (r == 0)
        r = bat_writeback(s, err);
    if (r == 0 && s->meta_unsynced) {
        r = sync_or_note(s, err);
        if (r == 0)
            s->meta_unsynced = false;
    }
    return r;
}

int vhd_flush(struct blk_node *bs, struct scuse_err *err)
{
    struct vhd_state *s = bs->state;
    if (!s->writable)
        return 0;
    if (!s->sparse) {
        __atomic_store_n(&s->data_unsynced, false, __ATOMIC_RELEASE);
        return sync_or_note(s, err);
    }
    pthread_mutex_lock(&s->lock);
    int r = vhd_flush_locked(s, err);
    pthread_mutex_unlock(&s->lock);
    return r;
}

bool vhd_meta_pending(struct blk_node *bs)
{
    struct vhd_state *s = bs->state;
    if (!s->writable || !s->sparse)
        return false;
    pthread_mutex_lock(&s->lock);
    bool p = s->ndirty || s->bat_any_dirty;
    pthread_mutex_unlock(&s->lock);
    return p;
}

static uint64_t round_sector(uint64_t x)
{
    return (x + VHD_SECTOR - 1) / VHD_SECTOR * VHD_SECTOR;
}

uint64_t vhd_used_end(const struct vhd_state *s)
{
    uint64_t end = round_sector(s->meta_end);
    for (int i = 0; s->diff && i < VHD_NLOC; i++) {
        const struct vhd_locator *l = &s->dh.loc[i];
        if (l->code && l->length && l->offset < s->file_size) {
            uint64_t e = round_sector(l->offset + l->length);
            if (e > end)
                end = e;
        }
    }
    uint64_t span = (uint64_t)s->bitmap_size + s->block_size;
    for (uint32_t i = 0; i < s->n_bat; i++) {
        if (s->bat[i] == VHD_BAT_FREE)
            continue;
        uint64_t e = (uint64_t)s->bat[i] * VHD_SECTOR + span;
        if (e > end)
            end = e;
    }
    return end;
}

int vhd_writer_open(struct blk_node *bs, struct vhd_state *s, struct scuse_err *err)
{
    s->writable = true;
    s->no_flush = bs->no_flush;
    if (!s->sparse)
        return 0;
    struct vhd_problem p;
    if (vhd_layout_problem(s, &p))
        return err_set(err, -EINVAL, "'%s': %s; it cannot be written until 'scuse check -r all' "
                       "repairs it", bs->path, p.msg);
    s->data_end = vhd_used_end(s);
    s->bat_pieces = (uint32_t)(((uint64_t)s->n_bat * 4 + VHD_SECTOR - 1) / VHD_SECTOR);
    s->bat_dirty = calloc(s->bat_pieces ? s->bat_pieces : 1, 1);
    if (!s->bat_dirty)
        return err_set(err, -ENOMEM, "out of memory");
    return 0;
}
