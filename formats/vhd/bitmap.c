/* Sector bitmaps. Each allocated block's bitmap is read once to classify
 * the block: FULL (every sector inside the disk set, the common case: QEMU
 * and Hyper-V set them all) is then served without any lock; MIXED blocks
 * keep their bitmap in a bounded LRU cache, consulted under s->lock.
 *
 * The writer sets bits in the cached copy after the data they cover is
 * written; such a bitmap is dirty, stays cached, and reaches the file at
 * the next flush, after a sync of the data (flush.c). A cache whose slots
 * are all dirty is flushed to make room. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "vhd/vhd.h"

#define BCACHE_BYTES (2u << 20)
#define BCACHE_MIN 8u
#define BCACHE_MAX 4096u

struct vhd_bslot {
    uint32_t blk;
    int32_t next;      /* hash chain */
    uint64_t used;     /* LRU tick */
    bool valid;
    bool dirty;        /* changed here, not written yet */
};

int vhd_bcache_init(struct vhd_state *s)
{
    struct vhd_bcache *c = &s->bc;
    uint32_t n = BCACHE_BYTES / s->bitmap_size;
    if (n < BCACHE_MIN)
        n = BCACHE_MIN;
    if (n > BCACHE_MAX)
        n = BCACHE_MAX;
    if (n > s->n_blocks)
        n = s->n_blocks ? s->n_blocks : 1;
    uint32_t nb = 1;
    while (nb < 2 * n)
        nb <<= 1;
    c->nslots = n;
    c->bucket_mask = nb - 1;
    c->buckets = malloc(nb * sizeof(*c->buckets));
    c->slots = calloc(n, sizeof(*c->slots));
    c->data = malloc((size_t)n * s->bitmap_size);
    if (!c->buckets || !c->slots || !c->data)
        return -ENOMEM;
    for (uint32_t i = 0; i < nb; i++)
        c->buckets[i] = -1;
    if (pthread_mutex_init(&s->lock, NULL) != 0)
        return -ENOMEM;
    s->lock_ready = true;
    return 0;
}

void vhd_bcache_destroy(struct vhd_state *s)
{
    free(s->bc.buckets);
    free(s->bc.slots);
    free(s->bc.data);
    memset(&s->bc, 0, sizeof(s->bc));
    if (s->lock_ready)
        pthread_mutex_destroy(&s->lock);
    s->lock_ready = false;
}

static uint32_t bucket_of(const struct vhd_bcache *c, uint32_t blk)
{
    return (blk * 2654435761u) & c->bucket_mask;
}

static int32_t slot_find(struct vhd_bcache *c, uint32_t blk)
{
    for (int32_t i = c->buckets[bucket_of(c, blk)]; i >= 0; i = c->slots[i].next)
        if (c->slots[i].blk == blk)
            return i;
    return -1;
}

static void unhash(struct vhd_bcache *c, int32_t idx)
{
    int32_t *pp = &c->buckets[bucket_of(c, c->slots[idx].blk)];
    while (*pp >= 0 && *pp != idx)
        pp = &c->slots[*pp].next;
    if (*pp == idx)
        *pp = c->slots[idx].next;
    c->slots[idx].valid = false;
}

/* A slot for block blk: a free one, else the least recently used clean
 * one (all dirty: flush them first). The slot is hashed, not filled. */
static int slot_take(struct vhd_state *s, uint32_t blk, int32_t *out, struct scuse_err *err)
{
    struct vhd_bcache *c = &s->bc;
    for (int pass = 0; pass < 2; pass++) {
        int32_t idx = -1;
        for (uint32_t i = 0; i < c->nslots; i++) {
            if (!c->slots[i].valid) {
                idx = (int32_t)i;
                break;
            }
            if (!c->slots[i].dirty && (idx < 0 || c->slots[i].used < c->slots[idx].used))
                idx = (int32_t)i;
        }
        if (idx < 0) {
            int r = vhd_flush_locked(s, err);
            if (r < 0)
                return r;
            continue;
        }
        if (c->slots[idx].valid)
            unhash(c, idx);
        struct vhd_bslot *sl = &c->slots[idx];
        sl->blk = blk;
        sl->valid = true;
        sl->dirty = false;
        uint32_t b = bucket_of(c, blk);
        sl->next = c->buckets[b];
        c->buckets[b] = idx;
        *out = idx;
        return 0;
    }
    return err_set(err, -EIO, "'%s': no room in the bitmap cache after a flush", s->path);
}

/* The cached bitmap of allocated block blk, read from the file if absent.
 * Called with s->lock held. */
static int bitmap_get(struct vhd_state *s, uint32_t blk, int32_t *slot, uint8_t **out,
                      struct scuse_err *err)
{
    struct vhd_bcache *c = &s->bc;
    int32_t idx = slot_find(c, blk);
    if (idx < 0) {
        int r = slot_take(s, blk, &idx, err);
        if (r < 0)
            return r;
        uint8_t *bm = c->data + (size_t)idx * s->bitmap_size;
        uint64_t host = (uint64_t)vhd_bat_get(s, blk) * VHD_SECTOR;
        r = file_pread_exact(s->fd, bm, s->bitmap_size, host);
        if (r < 0) {
            unhash(c, idx);
            return err_set(err, r, "'%s': cannot read the bitmap of block %u at %" PRIu64 ": %s",
                           s->path, blk, host, strerror(-r));
        }
    }
    c->slots[idx].used = ++c->tick;
    if (slot)
        *slot = idx;
    *out = c->data + (size_t)idx * s->bitmap_size;
    return 0;
}

/* Sectors of block blk that lie inside the virtual disk. */
static uint32_t sectors_in(const struct vhd_state *s, uint32_t blk)
{
    uint64_t start = (uint64_t)blk << s->block_shift;
    uint64_t left = (s->size - start) / VHD_SECTOR;
    return left < s->spb ? (uint32_t)left : s->spb;
}

static bool all_set(const uint8_t *bm, uint32_t n)
{
    uint32_t bytes = n / 8;
    for (uint32_t i = 0; i < bytes; i++)
        if (bm[i] != 0xff)
            return false;
    for (uint32_t sct = bytes * 8; sct < n; sct++)
        if (!vhd_bit(bm, sct))
            return false;
    return true;
}

int vhd_block_state(struct vhd_state *s, uint32_t blk, int *state, struct scuse_err *err)
{
    int st = __atomic_load_n(&s->bstate[blk], __ATOMIC_ACQUIRE);
    if (st != VHD_BS_UNKNOWN) {
        *state = st;
        return 0;
    }
    pthread_mutex_lock(&s->lock);
    st = __atomic_load_n(&s->bstate[blk], __ATOMIC_ACQUIRE);
    int r = 0;
    if (st == VHD_BS_UNKNOWN) {
        uint8_t *bm;
        r = bitmap_get(s, blk, NULL, &bm, err);
        if (r == 0) {
            st = all_set(bm, sectors_in(s, blk)) ? VHD_BS_FULL : VHD_BS_MIXED;
            __atomic_store_n(&s->bstate[blk], (uint8_t)st, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&s->lock);
    *state = st;
    return r;
}

int vhd_bitmap_run(struct vhd_state *s, uint32_t blk, uint32_t first, uint32_t n, bool *set,
                   uint32_t *count, struct scuse_err *err)
{
    pthread_mutex_lock(&s->lock);
    uint8_t *bm;
    int r = bitmap_get(s, blk, NULL, &bm, err);
    if (r == 0) {
        bool v = vhd_bit(bm, first);
        uint32_t i = 1;
        while (i < n) {
            uint32_t sct = first + i;
            /* whole bytes at a time where they agree */
            if ((sct & 7) == 0 && n - i >= 8 && bm[sct >> 3] == (v ? 0xff : 0x00)) {
                i += 8;
                continue;
            }
            if (vhd_bit(bm, sct) != v)
                break;
            i++;
        }
        *set = v;
        *count = i;
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

int vhd_bitmap_set_locked(struct vhd_state *s, uint32_t blk, uint32_t first, uint32_t n,
                          struct scuse_err *err)
{
    int32_t idx;
    uint8_t *bm;
    int r = bitmap_get(s, blk, &idx, &bm, err);
    if (r < 0)
        return r;
    bool changed = false;
    for (uint32_t sct = first; sct < first + n; sct++) {
        uint8_t m = (uint8_t)(0x80u >> (sct & 7));
        if (!(bm[sct >> 3] & m)) {
            bm[sct >> 3] |= m;
            changed = true;
        }
    }
    if (changed && !s->bc.slots[idx].dirty) {
        s->bc.slots[idx].dirty = true;
        s->ndirty++;
    }
    if (changed && all_set(bm, sectors_in(s, blk)))
        __atomic_store_n(&s->bstate[blk], (uint8_t)VHD_BS_FULL, __ATOMIC_RELEASE);
    return 0;
}

int vhd_bitmap_insert_locked(struct vhd_state *s, uint32_t blk, const uint8_t *bm,
                             struct scuse_err *err)
{
    int32_t idx = slot_find(&s->bc, blk);
    int r = idx < 0 ? slot_take(s, blk, &idx, err) : 0;
    if (r < 0)
        return r;
    memcpy(s->bc.data + (size_t)idx * s->bitmap_size, bm, s->bitmap_size);
    s->bc.slots[idx].used = ++s->bc.tick;
    return 0;
}

int vhd_bitmap_writeback_locked(struct vhd_state *s, struct scuse_err *err)
{
    struct vhd_bcache *c = &s->bc;
    for (uint32_t i = 0; i < c->nslots && s->ndirty; i++) {
        struct vhd_bslot *sl = &c->slots[i];
        if (!sl->valid || !sl->dirty)
            continue;
        uint64_t host = (uint64_t)vhd_bat_get(s, sl->blk) * VHD_SECTOR;
        int r = file_pwrite_exact(s->fd, c->data + (size_t)i * s->bitmap_size, s->bitmap_size,
                                  host);
        if (r < 0)
            return err_set(err, r, "'%s': cannot write the bitmap of block %u at %" PRIu64 ": %s",
                           s->path, sl->blk, host, strerror(-r));
        sl->dirty = false;
        s->ndirty--;
        s->meta_unsynced = true;
    }
    return 0;
}

void vhd_bcache_drop(struct vhd_state *s)
{
    struct vhd_bcache *c = &s->bc;
    for (uint32_t i = 0; i < c->nslots; i++)
        if (c->slots[i].valid)
            unhash(c, (int32_t)i);
    s->ndirty = 0;
    if (s->bstate)
        memset(s->bstate, 0, s->n_blocks);
}
