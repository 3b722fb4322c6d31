/* L2 tables for the writer. A missing table is allocated and zeroed on
 * disk; a table shared with a snapshot (L1 COPIED clear) is copied to a
 * new cluster and the old one loses a reference. Either way the new table
 * is written before the in-memory L1 entry points at it (readers then find
 * real content), and the L1 entry reaches disk only at a flush, after the
 * table has been synced. Entries are changed in the L2 slice cache and
 * written back by the flush. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "qcow2/qcow2.h"

#define L1_PIECE 64 /* entries per 512-byte write of the L1 table */

static int check_l2_off(struct qcow2_state *s, uint64_t l1i, uint64_t off)
{
    if ((off & (s->cluster_size - 1)) || off > s->meta_end ||
        s->meta_end - off < s->cluster_size) {
        qcow2_note_locked(s, "L2 table offset 0x%" PRIx64 " (L1 index %" PRIu64 ") is invalid",
                     off, l1i);
        return -EIO;
    }
    return 0;
}

int qcow2_l2_prepare(struct qcow2_state *s, uint64_t l1i, uint64_t *l2_off)
{
    uint64_t l1e = qcow2_l1_get(s, l1i);
    uint64_t old = l1e & QCOW2_L1E_OFFSET_MASK;
    int r;
    if (old) {
        r = check_l2_off(s, l1i, old);
        if (r < 0)
            return r;
        if (l1e & QCOW2_OFLAG_COPIED) {
            *l2_off = old;
            return 0;
        }
    }
    uint8_t *buf = old ? malloc(s->cluster_size) : calloc(1, s->cluster_size);
    if (!buf)
        return -ENOMEM;
    if (old) {
        /* A shared table is never changed in place, so its cached slices
         * are clean and the disk copy is current. */
        r = file_pread_exact(s->fd, buf, s->cluster_size, old);
        if (r < 0) {
            qcow2_note_locked(s, "cannot read L2 table at 0x%" PRIx64 ": %s", old, strerror(-r));
            free(buf);
            return r;
        }
    }
    uint64_t c, got;
    r = qcow2_alloc_clusters(s, 1, &c, &got);
    if (r < 0) {
        free(buf);
        return r;
    }
    uint64_t off = c << s->cluster_bits;
    r = file_pwrite_exact(s->fd, buf, s->cluster_size, off);
    free(buf);
    if (r < 0) {
        qcow2_note_locked(s, "cannot write a new L2 table at 0x%" PRIx64 ": %s", off, strerror(-r));
        qcow2_rc_queue_dec(s, c, 1);
        return r;
    }
    s->w.meta_unsynced = true;
    qcow2_l2c_drop(&s->cache, off, s->cluster_size);
    __atomic_store_n(&s->l1[l1i], off | QCOW2_OFLAG_COPIED, __ATOMIC_RELEASE);
    s->w.l1_dirty[l1i / L1_PIECE] = 1;
    s->w.l1_any_dirty = true;
    if (old) {
        r = qcow2_rc_queue_dec(s, old >> s->cluster_bits, 1);
        if (r < 0)
            return r;
    }
    *l2_off = off;
    return 0;
}

uint64_t qcow2_l2_span(const struct qcow2_state *s, uint64_t ci)
{
    uint64_t se = s->cache.slice_bytes >> s->l2_entry_shift;
    uint64_t l2i = ci & ((1ull << s->l2_bits) - 1);
    return se - l2i % se;
}

static uint64_t slice_of(const struct qcow2_state *s, uint64_t l2_off, uint64_t ci, uint64_t *idx)
{
    uint64_t se = s->cache.slice_bytes >> s->l2_entry_shift;
    uint64_t l2i = ci & ((1ull << s->l2_bits) - 1);
    *idx = l2i % se;
    return l2_off + (l2i / se) * s->cache.slice_bytes;
}

int qcow2_l2_load(struct qcow2_state *s, uint64_t l2_off, uint64_t ci, uint64_t n, uint64_t *e,
                  uint64_t *bm)
{
    uint64_t idx;
    const uint64_t *ent;
    int r = qcow2_l2c_get(&s->cache, s->fd, slice_of(s, l2_off, ci, &idx), &ent);
    if (r < 0) {
        qcow2_note_locked(s, "cannot read L2 table at 0x%" PRIx64 ": %s", l2_off, strerror(-r));
        return r;
    }
    for (uint64_t j = 0; j < n; j++) {
        if (s->ext_l2) {
            e[j] = ent[2 * (idx + j)];
            bm[j] = ent[2 * (idx + j) + 1];
        } else {
            e[j] = ent[idx + j];
            if (bm)
                bm[j] = 0;
        }
    }
    qcow2_l2c_unlock(&s->cache);
    return 0;
}

int qcow2_l2_store(struct qcow2_state *s, uint64_t l2_off, uint64_t ci, uint64_t n,
                   const uint64_t *e, const uint64_t *bm)
{
    uint64_t idx;
    const uint64_t *cent;
    int r = qcow2_l2c_get(&s->cache, s->fd, slice_of(s, l2_off, ci, &idx), &cent);
    if (r < 0) {
        qcow2_note_locked(s, "cannot read L2 table at 0x%" PRIx64 ": %s", l2_off, strerror(-r));
        return r;
    }
    uint64_t *ent = (uint64_t *)cent; /* writer's own slice, under the cache lock */
    for (uint64_t j = 0; j < n; j++) {
        if (s->ext_l2) {
            ent[2 * (idx + j)] = e[j];
            ent[2 * (idx + j) + 1] = bm[j];
        } else {
            ent[idx + j] = e[j];
        }
    }
    qcow2_l2c_unlock_dirty(&s->cache, cent);
    return 0;
}

int qcow2_l2_release(struct qcow2_state *s, uint64_t e)
{
    if (e & QCOW2_OFLAG_COMPRESSED)
        return qcow2_rc_queue_dec_compressed(s, e);
    uint64_t host = e & QCOW2_L2E_OFFSET_MASK;
    return host ? qcow2_rc_queue_dec(s, host >> s->cluster_bits, 1) : 0;
}

int qcow2_l1_writeback(struct qcow2_state *s, unsigned *count)
{
    struct qcow2_writer *w = &s->w;
    *count = 0;
    if (!w->l1_any_dirty)
        return 0;
    uint64_t pieces = (s->l1_loaded + L1_PIECE - 1) / L1_PIECE;
    for (uint64_t p = 0; p < pieces; p++) {
        if (!w->l1_dirty[p])
            continue;
        uint8_t buf[L1_PIECE * 8];
        uint64_t first = p * L1_PIECE;
        uint64_t n = s->l1_loaded - first < L1_PIECE ? s->l1_loaded - first : L1_PIECE;
        for (uint64_t j = 0; j < n; j++)
            qcow2_put_be64(buf + 8 * j, s->l1[first + j]);
        int r = file_pwrite_exact(s->fd, buf, n * 8, s->l1_offset + first * 8);
        if (r < 0) {
            qcow2_note_locked(s, "cannot write the L1 table at 0x%" PRIx64 ": %s",
                         s->l1_offset + first * 8, strerror(-r));
            return r;
        }
        w->l1_dirty[p] = 0;
        (*count)++;
    }
    w->l1_any_dirty = false;
    return 0;
}
