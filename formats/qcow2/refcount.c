/* Refcounts for the writer: the refcount table (kept whole in memory), a
 * bounded cache of refcount block slices in their on-disk bytes, get/add
 * for every width from 1 to 64 bits, and the queue of decrements that may
 * reach disk only after the L2/L1 change that dropped the reference.
 *
 * A dirty slice holds increments, or decrements whose reason is already
 * durable (they are applied only then), so writing one early is always
 * safe: eviction of a dirty slice simply writes it. Everything here runs
 * under the metadata lock. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "qcow2/qcow2.h"
#include "util/log.h"

#define RC_MAX_SLICE 4096u
#define DEC_CHUNK 256

struct qcow2_rslot {
    uint64_t key;    /* file offset of the slice; 0 = empty */
    uint64_t used;   /* LRU clock value of the last use */
    int32_t hnext;
    bool dirty;
};

uint64_t qcow2_rc_entry(const uint8_t *blk, uint64_t idx, uint32_t order)
{
    switch (order) {
    case 0:
    case 1:
    case 2: {
        /* Sub-byte widths: entry 0 in the least significant bits. */
        unsigned per_byte = 8u >> order, bits = 1u << order;
        unsigned shift = (unsigned)(idx % per_byte) * bits;
        return (uint64_t)(blk[idx / per_byte] >> shift) & ((1u << bits) - 1);
    }
    case 3:
        return blk[idx];
    case 4:
        return qcow2_be16(blk + 2 * idx);
    case 5:
        return qcow2_be32(blk + 4 * idx);
    default:
        return qcow2_be64(blk + 8 * idx);
    }
}

void qcow2_rc_set_entry(uint8_t *blk, uint64_t idx, uint32_t order, uint64_t v)
{
    switch (order) {
    case 0:
    case 1:
    case 2: {
        unsigned per_byte = 8u >> order, bits = 1u << order;
        unsigned shift = (unsigned)(idx % per_byte) * bits;
        uint8_t mask = (uint8_t)(((1u << bits) - 1) << shift);
        uint8_t *p = &blk[idx / per_byte];
        *p = (uint8_t)((*p & ~mask) | (((unsigned)v << shift) & mask));
        break;
    }
    case 3:
        blk[idx] = (uint8_t)v;
        break;
    case 4:
        blk[2 * idx] = (uint8_t)(v >> 8);
        blk[2 * idx + 1] = (uint8_t)v;
        break;
    case 5:
        qcow2_put_be32(blk + 4 * idx, (uint32_t)v);
        break;
    default:
        qcow2_put_be64(blk + 8 * idx, v);
        break;
    }
}

static uint64_t rc_max(uint32_t order)
{
    return order == 6 ? UINT64_MAX : (1ull << (1u << order)) - 1;
}

static uint32_t rc_hash(const struct qcow2_rcache *c, uint64_t key)
{
    uint64_t h = (key >> 9) * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(h >> 32) & c->bucket_mask;
}

static int load_reftable(struct qcow2_state *s)
{
    struct qcow2_writer *w = &s->w;
    uint64_t bytes = (uint64_t)s->refcount_table_clusters << s->cluster_bits;
    w->reftable_entries = bytes / 8;
    w->reftable = malloc(bytes);
    if (!w->reftable)
        return -ENOMEM;
    int r = file_pread_exact(s->fd, w->reftable, bytes, s->refcount_table_offset);
    if (r < 0)
        return r;
    for (uint64_t i = 0; i < w->reftable_entries; i++)
        w->reftable[i] = qcow2_be64((const uint8_t *)&w->reftable[i]);
    return 0;
}

int qcow2_rc_init(struct qcow2_state *s, uint32_t nslots)
{
    struct qcow2_writer *w = &s->w;
    struct qcow2_rcache *c = &w->rc;
    memset(c, 0, sizeof(*c));
    c->slice_bytes = s->cluster_size < RC_MAX_SLICE ? s->cluster_size : RC_MAX_SLICE;
    c->nslots = nslots < 4 ? 4 : nslots;
    uint32_t nb = 1;
    while (nb < 2 * c->nslots)
        nb <<= 1;
    c->bucket_mask = nb - 1;
    c->buckets = malloc(sizeof(*c->buckets) * nb);
    c->slots = calloc(c->nslots, sizeof(*c->slots));
    c->data = malloc((size_t)c->nslots * c->slice_bytes);
    if (!c->buckets || !c->slots || !c->data)
        return -ENOMEM;
    for (uint32_t i = 0; i < nb; i++)
        c->buckets[i] = -1;
    for (uint32_t i = 0; i < c->nslots; i++)
        c->slots[i].hnext = -1;
    w->rb_bits = s->cluster_bits + 3 - s->refcount_order;
    uint32_t sb = 0;
    while ((1u << sb) < c->slice_bytes)
        sb++;
    w->rs_bits = sb + 3 - s->refcount_order;
    return load_reftable(s);
}

void qcow2_rc_destroy(struct qcow2_state *s)
{
    struct qcow2_rcache *c = &s->w.rc;
    free(c->buckets);
    free(c->slots);
    free(c->data);
    memset(c, 0, sizeof(*c));
    free(s->w.reftable);
    s->w.reftable = NULL;
    free(s->w.dec);
    s->w.dec = NULL;
    s->w.ndec = s->w.dec_cap = 0;
}

static int32_t rc_find(const struct qcow2_rcache *c, uint64_t key)
{
    for (int32_t i = c->buckets[rc_hash(c, key)]; i >= 0; i = c->slots[i].hnext)
        if (c->slots[i].key == key)
            return i;
    return -1;
}

static void rc_unhash(struct qcow2_rcache *c, int32_t i)
{
    int32_t *pp = &c->buckets[rc_hash(c, c->slots[i].key)];
    while (*pp >= 0) {
        if (*pp == i) {
            *pp = c->slots[i].hnext;
            break;
        }
        pp = &c->slots[*pp].hnext;
    }
    c->slots[i].hnext = -1;
    c->slots[i].key = 0;
}

static uint8_t *rc_data(const struct qcow2_rcache *c, int32_t i)
{
    return c->data + (size_t)i * c->slice_bytes;
}

static int rc_write_slot(struct qcow2_state *s, int32_t i)
{
    struct qcow2_rcache *c = &s->w.rc;
    int r = file_pwrite_exact(s->fd, rc_data(c, i), c->slice_bytes, c->slots[i].key);
    if (r < 0) {
        qcow2_note_locked(s, "cannot write refcount block at 0x%" PRIx64 ": %s", c->slots[i].key,
                     strerror(-r));
        return r;
    }
    c->slots[i].dirty = false;
    c->ndirty--;
    s->w.meta_unsynced = true;
    return 0;
}

/* The cached slice at file offset off, loaded if missing. */
static int rc_slice(struct qcow2_state *s, uint64_t off, int32_t *slot)
{
    struct qcow2_rcache *c = &s->w.rc;
    int32_t i = rc_find(c, off);
    if (i < 0) {
        /* Least recently used slot; a dirty one is written first. */
        i = 0;
        for (uint32_t k = 1; k < c->nslots; k++)
            if (c->slots[k].used < c->slots[i].used)
                i = (int32_t)k;
        if (c->slots[i].dirty) {
            int r = rc_write_slot(s, i);
            if (r < 0)
                return r;
        }
        if (c->slots[i].key)
            rc_unhash(c, i);
        int r = file_pread_exact(s->fd, rc_data(c, i), c->slice_bytes, off);
        if (r < 0) {
            qcow2_note_locked(s, "cannot read refcount block at 0x%" PRIx64 ": %s", off, strerror(-r));
            return r;
        }
        uint32_t b = rc_hash(c, off);
        c->slots[i].key = off;
        c->slots[i].hnext = c->buckets[b];
        c->buckets[b] = i;
    }
    c->slots[i].used = ++c->tick;
    *slot = i;
    return 0;
}

/* Block offset for cluster, 0 if none; -EIO if the table entry is bad. */
static int block_of(struct qcow2_state *s, uint64_t cluster, uint64_t *off)
{
    uint64_t ri = cluster >> s->w.rb_bits;
    *off = 0;
    if (ri >= s->w.reftable_entries)
        return 0;
    uint64_t e = s->w.reftable[ri];
    if (e & (s->cluster_size - 1)) {
        qcow2_note_locked(s, "refcount table entry %" PRIu64 " (0x%" PRIx64 ") is not cluster aligned",
                     ri, e);
        return -EIO;
    }
    *off = e;
    return 0;
}

/* Slice holding cluster's refcount: slot and index inside the slice. */
static int rc_locate(struct qcow2_state *s, uint64_t cluster, int32_t *slot, uint64_t *idx,
                     bool *present)
{
    uint64_t boff;
    int r = block_of(s, cluster, &boff);
    *present = boff != 0;
    if (r < 0 || !boff)
        return r;
    uint64_t in_block = cluster & ((1ull << s->w.rb_bits) - 1);
    uint64_t sl = in_block >> s->w.rs_bits;
    *idx = in_block & ((1ull << s->w.rs_bits) - 1);
    return rc_slice(s, boff + sl * s->w.rc.slice_bytes, slot);
}

int qcow2_rc_get(struct qcow2_state *s, uint64_t cluster, uint64_t *val)
{
    int32_t slot;
    uint64_t idx;
    bool present;
    *val = 0;
    int r = rc_locate(s, cluster, &slot, &idx, &present);
    if (r < 0 || !present)
        return r;
    *val = qcow2_rc_entry(rc_data(&s->w.rc, slot), idx, s->refcount_order);
    return 0;
}

/* Add delta to the refcounts of *n clusters from *cluster, advancing both
 * as it goes (so a caller knows what is left after an I/O error). With
 * tolerate, an impossible change (no block, over/underflow: the image was
 * already inconsistent) is logged and skipped; without, it fails. */
static int rc_add(struct qcow2_state *s, uint64_t *cluster, uint64_t *n, int delta, bool tolerate)
{
    struct qcow2_rcache *c = &s->w.rc;
    uint64_t per_slice = 1ull << s->w.rs_bits, max = rc_max(s->refcount_order);
    while (*n > 0) {
        int32_t slot;
        uint64_t idx;
        bool present;
        int r = rc_locate(s, *cluster, &slot, &idx, &present);
        if (r < 0 && !(tolerate && r == -EIO))
            return r;
        if (r < 0 || !present) {
            qcow2_note_locked(s, "no refcount block covers cluster 0x%" PRIx64 " (refcount %s)",
                         *cluster << s->cluster_bits, delta > 0 ? "increment" : "decrement");
            if (!tolerate)
                return -EIO;
            uint64_t bend = ((*cluster >> s->w.rb_bits) + 1) << s->w.rb_bits;
            uint64_t k = bend - *cluster < *n ? bend - *cluster : *n;
            *cluster += k;
            *n -= k;
            continue;
        }
        uint8_t *d = rc_data(c, slot);
        uint64_t k = per_slice - idx < *n ? per_slice - idx : *n;
        for (uint64_t j = 0; j < k; j++) {
            uint64_t v = qcow2_rc_entry(d, idx + j, s->refcount_order);
            if ((delta > 0 && v > max - (uint64_t)delta) || (delta < 0 && v < (uint64_t)-delta)) {
                qcow2_note_locked(s, "refcount of cluster 0x%" PRIx64 " would %s (it is %" PRIu64 ")",
                             (*cluster + j) << s->cluster_bits,
                             delta > 0 ? "overflow" : "drop below zero", v);
                if (!tolerate) {
                    *cluster += j;
                    *n -= j;
                    return -EINVAL;
                }
                continue;
            }
            v += (uint64_t)(int64_t)delta;
            qcow2_rc_set_entry(d, idx + j, s->refcount_order, v);
            if (v == 0 && *cluster + j < s->w.free_hint)
                s->w.free_hint = *cluster + j;
            if (v == 0 && *cluster + j == s->w.free_byte >> s->cluster_bits)
                s->w.free_byte = 0; /* the packing cluster is free: never pack into it again */
            if (!c->slots[slot].dirty) {
                c->slots[slot].dirty = true;
                c->ndirty++;
            }
        }
        *cluster += k;
        *n -= k;
    }
    return 0;
}

int qcow2_rc_add(struct qcow2_state *s, uint64_t cluster, uint64_t n, int delta)
{
    return rc_add(s, &cluster, &n, delta, false);
}

int qcow2_rc_scan_free(struct qcow2_state *s, uint64_t c, uint64_t limit, uint64_t *first,
                       uint64_t *run)
{
    int32_t slot;
    uint64_t idx;
    bool present;
    int r = rc_locate(s, c, &slot, &idx, &present);
    if (r < 0)
        return r;
    if (!present)
        return -EIO;
    const uint8_t *d = rc_data(&s->w.rc, slot);
    uint64_t per_slice = 1ull << s->w.rs_bits;
    uint64_t end = c + (per_slice - idx);
    if (end > limit)
        end = limit;
    uint64_t x = c;
    while (x < end && qcow2_rc_entry(d, idx + (x - c), s->refcount_order) != 0)
        x++;
    *first = x;
    uint64_t y = x;
    while (y < end && qcow2_rc_entry(d, idx + (y - c), s->refcount_order) == 0)
        y++;
    *run = y - x;
    return 0;
}

int qcow2_rc_install_block(struct qcow2_state *s, uint64_t off, const uint8_t *blk)
{
    struct qcow2_rcache *c = &s->w.rc;
    for (uint64_t k = 0; k < s->cluster_size; k += c->slice_bytes) {
        int32_t i = rc_find(c, off + k);
        if (i < 0)
            continue;
        /* Reused offset: the cached copy must match what was written. */
        memcpy(rc_data(c, i), blk + k, c->slice_bytes);
        if (c->slots[i].dirty) {
            c->slots[i].dirty = false;
            c->ndirty--;
        }
    }
    return 0;
}

int qcow2_rc_writeback(struct qcow2_state *s, unsigned *count)
{
    struct qcow2_rcache *c = &s->w.rc;
    *count = 0;
    for (uint32_t i = 0; i < c->nslots && c->ndirty > 0; i++) {
        if (!c->slots[i].dirty)
            continue;
        int r = rc_write_slot(s, (int32_t)i);
        if (r < 0)
            return r;
        (*count)++;
    }
    return 0;
}

int qcow2_rc_queue_dec(struct qcow2_state *s, uint64_t start, uint64_t n)
{
    struct qcow2_writer *w = &s->w;
    if (n == 0)
        return 0;
    if (w->ndec > 0) {
        struct qcow2_dec *last = &w->dec[w->ndec - 1];
        if (last->start + last->n == start) {
            last->n += n;
            return 0;
        }
    }
    if (w->ndec == w->dec_cap) {
        size_t cap = w->dec_cap + DEC_CHUNK;
        struct qcow2_dec *d = realloc(w->dec, cap * sizeof(*d));
        if (!d)
            return -ENOMEM;
        w->dec = d;
        w->dec_cap = cap;
    }
    w->dec[w->ndec].start = start;
    w->dec[w->ndec].n = n;
    w->ndec++;
    return 0;
}

int qcow2_rc_queue_dec_compressed(struct qcow2_state *s, uint64_t l2e)
{
    uint64_t coff = l2e & s->coffset_mask;
    uint64_t nsec = ((l2e >> s->csize_shift) & s->csize_mask) + 1;
    uint64_t first = (coff & ~511ull) >> s->cluster_bits;
    uint64_t last = ((coff & ~511ull) + nsec * 512 - 1) >> s->cluster_bits;
    return qcow2_rc_queue_dec(s, first, last - first + 1);
}

int qcow2_rc_apply_decs(struct qcow2_state *s)
{
    struct qcow2_writer *w = &s->w;
    size_t i = 0;
    int r = 0;
    for (; i < w->ndec; i++) {
        r = rc_add(s, &w->dec[i].start, &w->dec[i].n, -1, true);
        if (r < 0)
            break;
    }
    /* Keep what was not applied (an I/O error) for the next flush. */
    memmove(w->dec, w->dec + i, (w->ndec - i) * sizeof(*w->dec));
    w->ndec -= i;
    if (r < 0)
        return r;
    unsigned n;
    return qcow2_rc_writeback(s, &n);
}
