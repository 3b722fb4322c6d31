/* write_zeroes and discard.
 *
 * Whole clusters (whole subclusters with extended L2) change only their L2
 * entries; partial ones get real zeros through the write path (discard,
 * being advisory, leaves them alone). Per cluster:
 *
 *   write_zeroes, v3:  ZERO_PLAIN where the cluster may be freed (asked to
 *       unmap, or nothing worth keeping: compressed / unallocated), else
 *       ZERO_ALLOC keeping the host cluster; extended L2: zero bits for the
 *       covered subclusters, the host cluster dropped only for a whole
 *       cluster with unmap. A standalone image's unallocated entries
 *       already read as zeros and are left alone.
 *   write_zeroes, v2:  no zero flag: a standalone image asked to unmap
 *       deallocates, anything else writes zeros.
 *   discard:  standalone: deallocate; overlay (v3): ZERO_PLAIN so backing
 *       data never reappears; v2 overlay: nothing (advisory).
 *
 * A dropped host cluster's decrement is queued: the flush applies it after
 * the L2 change is durable. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "qcow2/qcow2.h"

#define MAX_STEP 512
#define ALL_ZERO (0xffffffffull << 32)

enum zmode { Z_ZERO, Z_ZERO_UNMAP, Z_DISCARD };

/* New entry for cluster ci, covered on [lo, hi) (whole units), or 1 when a
 * compressed cluster is only partly covered (its units cannot be zeroed
 * in the bitmap). *release says the old host cluster is dropped. */
static int zero_entry(const struct blk_node *bs, const struct qcow2_state *s, enum zmode mode,
                      uint64_t ci, uint64_t lo, uint64_t hi, uint64_t *e, uint64_t *bm,
                      bool *release)
{
    uint64_t c0 = ci << s->cluster_bits;
    bool full = lo == c0 && hi == c0 + s->cluster_size;
    bool standalone = !bs->backing_name;
    uint64_t host = *e & QCOW2_L2E_OFFSET_MASK;
    bool compressed = *e & QCOW2_OFLAG_COMPRESSED;
    *release = false;
    if (!s->ext_l2) {
        bool unmap = mode != Z_ZERO || compressed || !host;
        if (unmap) {
            *release = compressed || host;
            if (standalone && (mode == Z_DISCARD || s->version < 3 || *e == 0))
                *e = 0;
            else
                *e = QCOW2_OFLAG_ZERO;
        } else {
            *e = host | QCOW2_OFLAG_ZERO | (*e & QCOW2_OFLAG_COPIED);
        }
        return 0;
    }
    if (compressed && !full)
        return 1;
    uint32_t m = (uint32_t)(((2ull << ((hi - 1 - c0) >> s->sc_bits)) - 1) &
                            ~((1ull << ((lo - c0) >> s->sc_bits)) - 1));
    if (full && (mode != Z_ZERO || compressed || !host)) {
        *release = compressed || host;
        *e = 0;
        *bm = (standalone && mode == Z_DISCARD) ? 0 : ALL_ZERO;
        return 0;
    }
    uint64_t alloc = (uint32_t)*bm & ~m, zero = (*bm >> 32) | m;
    *bm = zero << 32 | alloc;
    return 0;
}

/* One step under the metadata lock: clusters from a (unit aligned) up to
 * b or the end of a cached L2 slice. *next is where the next step starts;
 * *partial_comp is set when the first cluster was compressed and only
 * partly covered (the caller writes zeros there). */
static int zero_step(struct blk_node *bs, struct qcow2_state *s, enum zmode mode, uint64_t a,
                     uint64_t b, uint64_t *next, bool *partial_comp)
{
    uint32_t cb = s->cluster_bits;
    uint64_t ci = a >> cb, l1i = ci >> s->l2_bits;
    *partial_comp = false;
    int r = qcow2_reserve(s);
    if (r < 0)
        return r;
    if (!(qcow2_l1_get(s, l1i) & QCOW2_L1E_OFFSET_MASK) && !bs->backing_name) {
        /* No L2 table in a standalone image: all of it reads as zeros. */
        uint64_t stop = (l1i + 1) << (cb + s->l2_bits);
        *next = stop < b && stop != 0 ? stop : b;
        return 0;
    }
    uint64_t l2_off;
    r = qcow2_l2_prepare(s, l1i, &l2_off);
    if (r < 0)
        return r;
    uint64_t n = ((b - 1) >> cb) - ci + 1, span = qcow2_l2_span(s, ci);
    if (n > span)
        n = span;
    if (n > MAX_STEP)
        n = MAX_STEP;
    uint64_t e[MAX_STEP], bm[MAX_STEP], old[MAX_STEP];
    bool rel[MAX_STEP];
    r = qcow2_l2_load(s, l2_off, ci, n, e, bm);
    if (r < 0)
        return r;
    uint64_t j = 0;
    bool changed = false;
    for (; j < n; j++) {
        uint64_t c0 = (ci + j) << cb;
        uint64_t lo = a > c0 ? a : c0, hi = b < c0 + s->cluster_size ? b : c0 + s->cluster_size;
        uint64_t ob = bm[j];
        old[j] = e[j];
        if (zero_entry(bs, s, mode, ci + j, lo, hi, &e[j], &bm[j], &rel[j])) {
            if (j == 0)
                *partial_comp = true;
            break;
        }
        changed |= e[j] != old[j] || bm[j] != ob;
    }
    *next = j == 0 ? (ci + 1) << cb : (ci + j) << cb;
    if (*next > b)
        *next = b;
    if (!changed)
        return 0;
    r = qcow2_l2_store(s, l2_off, ci, j, e, bm);
    for (uint64_t k = 0; r == 0 && k < j; k++)
        if (rel[k])
            r = qcow2_l2_release(s, old[k]);
    return r;
}

static int zero_units(struct blk_node *bs, struct qcow2_state *s, enum zmode mode, uint64_t a,
                      uint64_t b, struct scuse_err *err)
{
    while (a < b) {
        uint64_t next;
        bool partial_comp;
        pthread_mutex_lock(&s->w.lock);
        s->w.err = err;
        int r = zero_step(bs, s, mode, a, b, &next, &partial_comp);
        s->w.err = NULL;
        pthread_mutex_unlock(&s->w.lock);
        if (r == 0 && partial_comp && mode != Z_DISCARD)
            r = qcow2_write_zero_data(bs, a, next - a, err);
        if (r < 0)
            return r;
        a = next;
    }
    return 0;
}

static int check_writable(struct blk_node *bs, struct qcow2_state *s, struct scuse_err *err)
{
    if (!s->writable)
        return err_set(err, -EROFS, "'%s': the image is not open for writing", s->path);
    if (bs->backing_name && !bs->backing) {
        qcow2_note(s, err, "cannot write: the backing file was not opened");
        return -ENOTSUP;
    }
    return 0;
}

/* [*a, *b): the whole units inside [off, off + len); a request that runs
 * to the end of the disk covers the last unit whole. */
static void whole_units(const struct blk_node *bs, uint64_t unit, uint64_t off, uint64_t len,
                        uint64_t *a, uint64_t *b)
{
    uint64_t end = off + len;
    *a = (off + unit - 1) & ~(unit - 1);
    *b = end == bs->size ? (end + unit - 1) & ~(unit - 1) : end & ~(unit - 1);
    if (*b < *a)
        *b = *a;
}

int qcow2_write_zeroes(struct blk_node *bs, uint64_t off, uint64_t len, unsigned flags,
                       struct scuse_err *err)
{
    struct qcow2_state *s = bs->state;
    int r = check_writable(bs, s, err);
    if (r < 0)
        return r;
    bool unmap = flags & BLK_ZERO_MAY_UNMAP;
    if (s->version < 3 && (bs->backing_name || !unmap))
        return qcow2_write_zero_data(bs, off, len, err);
    uint64_t unit = 1ull << s->sc_bits, a, b;
    whole_units(bs, unit, off, len, &a, &b);
    if (a >= b)
        return qcow2_write_zero_data(bs, off, len, err);
    if (off < a && (r = qcow2_write_zero_data(bs, off, a - off, err)) < 0)
        return r;
    r = zero_units(bs, s, unmap ? Z_ZERO_UNMAP : Z_ZERO, a, b, err);
    if (r == 0 && b < off + len)
        r = qcow2_write_zero_data(bs, b, off + len - b, err);
    return r;
}

int qcow2_discard(struct blk_node *bs, uint64_t off, uint64_t len, struct scuse_err *err)
{
    struct qcow2_state *s = bs->state;
    int r = check_writable(bs, s, err);
    if (r < 0)
        return r;
    if (s->version < 3 && bs->backing_name)
        return 0; /* no zero clusters: leaving the data is the only safe choice */
    uint64_t a, b;
    whole_units(bs, s->cluster_size, off, len, &a, &b);
    return a < b ? zero_units(bs, s, Z_DISCARD, a, b, err) : 0;
}
