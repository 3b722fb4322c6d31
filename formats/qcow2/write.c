/* Guest writes.
 *
 * Fast path (no metadata lock): a run of clusters that are allocated with
 * COPIED set (refcount 1; with extended L2, every touched subcluster
 * allocated) is overwritten in place with one pwritev of the caller's
 * iovecs, under the barrier held shared (see flush.c) and without
 * allocating memory.
 *
 * Everything else takes the per-image metadata lock for one step and holds
 * it across that step's data I/O, so two allocating writes to the same
 * cluster are serialised and the second sees the first's L2 entry.
 * Correctness first: allocating writes of one image do not overlap in
 * time, overwrites in place still run in parallel with them and with
 * reads. A step is one of:
 *
 *  - allocate: a run of clusters that cannot be written in place (never
 *    written, zero, compressed, or shared with a snapshot: COPIED clear)
 *    gets host-contiguous new clusters. The head before the write and the
 *    tail after it are filled with the cluster's current content (old data,
 *    decompressed data, zeros, or what lies below: read through the read
 *    path, never from host offset 0), data and fills go out in one
 *    pwritev, then the L2 entries point at the new clusters with COPIED
 *    and the old clusters' decrements are queued for the flush. With
 *    extended L2 a cluster with no host cluster gets only the touched
 *    subclusters (partial ones filled) and their alloc bits; the rest of
 *    its bitmap is kept. A cluster copied from an allocated or compressed
 *    one is copied whole, all subclusters allocated.
 *  - reuse: a ZERO_ALLOC cluster with COPIED set is written in place, the
 *    rest of it zeroed, and the zero flag cleared; with extended L2, an
 *    allocated COPIED cluster whose touched subclusters are unallocated or
 *    zero gets those subclusters filled and their alloc bits set.
 *
 * In-memory L2 entries change only after the data is written, so a
 * concurrent read never sees an entry before its data. Nothing reaches
 * disk in the wrong order: see flush.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "qcow2/qcow2.h"

#define STACK_IOV 64
#define MAX_STEP 512 /* L2 entries in one cached slice, at most */
#define ALL_SUBCLUSTERS 0xffffffffull

enum how { HOW_INPLACE, HOW_REUSE, HOW_ALLOC };

/* A data cluster must not be the header, the active L1 table or the
 * refcount table: a corrupt L2 entry pointing there is refused rather
 * than written through. */
static bool hits_metadata(const struct qcow2_state *s, uint64_t host, uint64_t len)
{
    uint64_t cs = s->cluster_size;
    uint64_t l1_end = (s->l1_offset + s->l1_size * 8 + cs - 1) & ~(cs - 1);
    uint64_t rt_end = s->refcount_table_offset +
                      ((uint64_t)s->refcount_table_clusters << s->cluster_bits);
    return host < cs || (host < l1_end && host + len > s->l1_offset) ||
           (host < rt_end && host + len > s->refcount_table_offset);
}

static int bad_host(struct qcow2_state *s, uint64_t ci, uint64_t e)
{
    qcow2_note_locked(s, "invalid L2 entry 0x%016" PRIx64 " at guest offset 0x%" PRIx64
                 " (unaligned, beyond the end of the file or pointing at the image's metadata)",
                 e, ci << s->cluster_bits);
    return -EIO;
}

static uint32_t unit_mask(unsigned u0, unsigned u1)
{
    /* Subclusters u0..u1 inclusive. */
    uint64_t m = ((2ull << u1) - 1) & ~((1ull << u0) - 1);
    return (uint32_t)m;
}

/* How cluster ci (entry e, bitmap bm) takes a write of [off, end). */
static int classify(struct qcow2_state *s, uint64_t ci, uint64_t e, uint64_t bm, uint64_t off,
                    uint64_t end, enum how *how)
{
    uint64_t host = e & QCOW2_L2E_OFFSET_MASK;
    *how = HOW_ALLOC;
    if (e & QCOW2_OFLAG_COMPRESSED)
        return 0;
    /* The file may end inside a data cluster (QEMU writes only the
     * allocated subclusters of the last one), so compare whole clusters. */
    uint64_t cs = s->cluster_size;
    uint64_t end_rounded = (__atomic_load_n(&s->meta_end, __ATOMIC_ACQUIRE) + cs - 1) & ~(cs - 1);
    if (host && ((host & (cs - 1)) || host + cs > end_rounded || hits_metadata(s, host, cs)))
        return bad_host(s, ci, e);
    if (!host || !(e & QCOW2_OFLAG_COPIED))
        return 0;
    if (!s->ext_l2) {
        *how = (e & QCOW2_OFLAG_ZERO) ? HOW_REUSE : HOW_INPLACE;
        return 0;
    }
    uint32_t alloc = (uint32_t)bm, zero = (uint32_t)(bm >> 32);
    if (alloc & zero) {
        qcow2_note_locked(s, "invalid subcluster bitmap 0x%016" PRIx64 " at guest offset 0x%" PRIx64,
                     bm, ci << s->cluster_bits);
        return -EIO;
    }
    uint64_t c0 = ci << s->cluster_bits;
    uint64_t wend = end < c0 + s->cluster_size ? end : c0 + s->cluster_size;
    uint32_t m = unit_mask((unsigned)((off - c0) >> s->sc_bits),
                           (unsigned)((wend - 1 - c0) >> s->sc_bits));
    *how = (alloc & m) == m ? HOW_INPLACE : HOW_REUSE;
    return 0;
}

static int ensure_buffers(struct qcow2_state *s)
{
    if (!s->w.head_buf)
        s->w.head_buf = malloc(s->cluster_size);
    if (!s->w.tail_buf)
        s->w.tail_buf = malloc(s->cluster_size);
    return s->w.head_buf && s->w.tail_buf ? 0 : -ENOMEM;
}

/* Current guest content of [off, off + len) into buf: zeros past the disk. */
static int read_current(struct blk_node *bs, uint64_t off, uint8_t *buf, uint64_t len)
{
    uint64_t have = off >= bs->size ? 0 : bs->size - off < len ? bs->size - off : len;
    if (have < len)
        memset(buf + have, 0, len - have);
    if (!have)
        return 0;
    struct iovec one;
    struct iov_view v = iov_view_of_buf(&one, buf, have);
    struct qcow2_state *s = bs->state;
    return qcow2_read_mapped(bs, off, &v, s->w.err); /* under the metadata lock */
}

/* Write head fill, the caller's bytes and tail fill with one pwritev. */
static int write_filled(struct qcow2_state *s, uint64_t host, uint64_t head,
                        const struct iov_view *data, uint64_t tail)
{
    struct iovec stack[STACK_IOV], *arr = stack;
    int max = STACK_IOV;
    if (data->cnt + 2 > STACK_IOV) {
        max = data->cnt + 2;
        arr = malloc(sizeof(*arr) * (size_t)max);
        if (!arr)
            return -ENOMEM;
    }
    int cnt = 0;
    if (head) {
        arr[cnt].iov_base = s->w.head_buf;
        arr[cnt++].iov_len = head;
    }
    size_t got = 0;
    if (data->len)
        cnt += iov_view_to_iovec(data, arr + cnt, max - 2, &got);
    if (tail) {
        arr[cnt].iov_base = s->w.tail_buf;
        arr[cnt++].iov_len = tail;
    }
    int r = -EIO;
    if (got == data->len) {
        struct iov_view all = iov_view_make(arr, cnt, head + data->len + tail);
        r = file_pwritev_view(s->fd, &all, host);
        if (r < 0)
            qcow2_note_locked(s, "write of %zu bytes at host offset 0x%" PRIx64 " failed: %s",
                         (size_t)(head + data->len + tail), host, strerror(-r));
    }
    if (arr != stack)
        free(arr);
    if (r == 0)
        s->w.meta_unsynced = true; /* data the next L2 writeback depends on */
    return r;
}

/* Reuse cluster ci in place (see the top of the file). */
static int write_reuse(struct blk_node *bs, struct qcow2_state *s, uint64_t l2_off, uint64_t ci,
                       uint64_t e, uint64_t bm, uint64_t off, const struct iov_view *v,
                       size_t *done)
{
    uint64_t c0 = ci << s->cluster_bits, cs = s->cluster_size;
    uint64_t host = e & QCOW2_L2E_OFFSET_MASK;
    uint64_t wend = off + v->len < c0 + cs ? off + v->len : c0 + cs;
    uint64_t fs = c0, fe = c0 + cs;
    uint32_t m = 0;
    if (s->ext_l2) {
        uint64_t scs = 1ull << s->sc_bits;
        unsigned u0 = (unsigned)((off - c0) >> s->sc_bits);
        unsigned u1 = (unsigned)((wend - 1 - c0) >> s->sc_bits);
        m = unit_mask(u0, u1);
        /* Allocated subclusters already hold their data: no fill there. */
        fs = ((uint32_t)bm >> u0 & 1) ? off : c0 + u0 * scs;
        fe = ((uint32_t)bm >> u1 & 1) ? wend : c0 + (u1 + 1) * scs;
    }
    int r = read_current(bs, fs, s->w.head_buf, off - fs);
    if (r == 0)
        r = read_current(bs, wend, s->w.tail_buf, fe - wend);
    if (r < 0)
        return r;
    struct iov_view data = iov_view_sub(v, 0, wend - off);
    r = write_filled(s, host + (fs - c0), off - fs, &data, fe - wend);
    if (r < 0)
        return r;
    uint64_t ne = s->ext_l2 ? e : host | QCOW2_OFLAG_COPIED;
    uint64_t nbm = s->ext_l2 ? ((bm | m) & ~((uint64_t)m << 32)) : 0;
    r = qcow2_l2_store(s, l2_off, ci, 1, &ne, &nbm);
    if (r == 0)
        *done = wend - off;
    return r;
}

/* Where the fill of an allocated cluster starts (first cluster) or ends
 * (last cluster): subcluster granularity only for an extended L2 cluster
 * that has no host cluster yet. */
static bool subcluster_grain(const struct qcow2_state *s, uint64_t e)
{
    return s->ext_l2 && !(e & QCOW2_OFLAG_COMPRESSED) && !(e & QCOW2_L2E_OFFSET_MASK);
}

static int write_alloc(struct blk_node *bs, struct qcow2_state *s, uint64_t l2_off, uint64_t ci,
                       uint64_t count, const uint64_t *e, const uint64_t *bm, uint64_t off,
                       const struct iov_view *v, size_t *done)
{
    uint32_t cb = s->cluster_bits;
    uint64_t cs = s->cluster_size, scs = 1ull << s->sc_bits;
    uint64_t h0, got;
    int r = qcow2_alloc_clusters(s, count, &h0, &got);
    if (r < 0)
        return r;
    count = got;
    uint64_t c0 = ci << cb, cend = (ci + count) << cb;
    uint64_t bend = off + v->len < cend ? off + v->len : cend;
    uint64_t fs = c0, fe = (bend + cs - 1) & ~(cs - 1);
    if (subcluster_grain(s, e[0]))
        fs = off & ~(scs - 1);
    if (subcluster_grain(s, e[count - 1]))
        fe = (bend + scs - 1) & ~(scs - 1);
    r = read_current(bs, fs, s->w.head_buf, off - fs);
    if (r == 0)
        r = read_current(bs, bend, s->w.tail_buf, fe - bend);
    struct iov_view data = iov_view_sub(v, 0, bend - off);
    if (r == 0)
        r = write_filled(s, (h0 << cb) + (fs - c0), off - fs, &data, fe - bend);
    if (r < 0) {
        qcow2_rc_queue_dec(s, h0, count); /* never referenced: a free at the flush */
        return r;
    }

    uint64_t ne[MAX_STEP], nbm[MAX_STEP];
    for (uint64_t j = 0; j < count; j++) {
        ne[j] = ((h0 + j) << cb) | QCOW2_OFLAG_COPIED;
        nbm[j] = 0;
        if (!s->ext_l2)
            continue;
        if (!subcluster_grain(s, e[j])) {
            nbm[j] = ALL_SUBCLUSTERS;
            continue;
        }
        uint64_t a = (ci + j) << cb, b = a + cs;
        uint64_t lo = fs > a ? fs : a, hi = fe < b ? fe : b;
        uint32_t m = unit_mask((unsigned)((lo - a) >> s->sc_bits),
                               (unsigned)((hi - 1 - a) >> s->sc_bits));
        uint32_t zero = (uint32_t)(bm[j] >> 32) & ~m;
        nbm[j] = (uint64_t)zero << 32 | m;
    }
    r = qcow2_l2_store(s, l2_off, ci, count, ne, nbm);
    if (r < 0) {
        qcow2_rc_queue_dec(s, h0, count);
        return r;
    }
    for (uint64_t j = 0; j < count; j++) {
        r = qcow2_l2_release(s, e[j]);
        if (r < 0)
            return r;
    }
    *done = bend - off;
    return 0;
}

/* One step under the metadata lock, from off. */
static int write_step(struct blk_node *bs, struct qcow2_state *s, uint64_t off,
                      const struct iov_view *v, size_t *done)
{
    int r = qcow2_reserve(s);
    if (r == 0)
        r = ensure_buffers(s);
    if (r < 0)
        return r;
    uint32_t cb = s->cluster_bits;
    uint64_t ci = off >> cb, end = off + v->len;
    uint64_t l2_off;
    r = qcow2_l2_prepare(s, ci >> s->l2_bits, &l2_off);
    if (r < 0)
        return r;
    uint64_t n = ((end - 1) >> cb) - ci + 1, span = qcow2_l2_span(s, ci);
    if (n > span)
        n = span;
    if (n > MAX_STEP)
        n = MAX_STEP;
    uint64_t e[MAX_STEP], bm[MAX_STEP];
    r = qcow2_l2_load(s, l2_off, ci, n, e, bm);
    if (r < 0)
        return r;
    enum how how;
    r = classify(s, ci, e[0], bm[0], off, end, &how);
    if (r < 0)
        return r;
    if (how == HOW_INPLACE) {
        /* Allocated by a step that ran while this one waited. */
        uint64_t c0 = ci << cb;
        uint64_t len = end < c0 + s->cluster_size ? end - off : c0 + s->cluster_size - off;
        struct iov_view data = iov_view_sub(v, 0, len);
        r = write_filled(s, (e[0] & QCOW2_L2E_OFFSET_MASK) + (off - c0), 0, &data, 0);
        if (r == 0)
            *done = len;
        return r;
    }
    if (how == HOW_REUSE)
        return write_reuse(bs, s, l2_off, ci, e[0], bm[0], off, v, done);
    uint64_t count = 1;
    while (count < n) {
        uint64_t a = (ci + count) << cb;
        r = classify(s, ci + count, e[count], bm[count], a, end, &how);
        if (r < 0)
            return r;
        if (how != HOW_ALLOC)
            break;
        count++;
    }
    return write_alloc(bs, s, l2_off, ci, count, e, bm, off, v, done);
}

/* The fast path: *done = 0 when the start of v cannot be written in place. */
static int write_in_place(struct qcow2_state *s, uint64_t off, const struct iov_view *v,
                          size_t *done, struct scuse_err *err)
{
    struct qcow2_run run;
    *done = 0;
    pthread_rwlock_rdlock(&s->w.barrier);
    int r = qcow2_map(s, off, v->len, false, &run, err);
    if (r == 0 && run.kind == QCOW2_NORMAL && run.copied) {
        size_t len = run.len < v->len ? (size_t)run.len : v->len;
        if (hits_metadata(s, run.host, len)) {
            pthread_rwlock_unlock(&s->w.barrier);
            qcow2_note(s, err, "the L2 entry for guest offset 0x%" PRIx64 " points at the image's "
                         "metadata (host offset 0x%" PRIx64 "); refusing to write there",
                         off, run.host);
            return -EIO;
        }
        struct iov_view part = iov_view_sub(v, 0, len);
        r = file_pwritev_view(s->fd, &part, run.host);
        if (r == 0) {
            atomic_store(&s->w.data_unsynced, true);
            *done = len;
        } else {
            qcow2_note(s, err, "write of %zu bytes at host offset 0x%" PRIx64 " failed: %s", len,
                         run.host, strerror(-r));
        }
    }
    pthread_rwlock_unlock(&s->w.barrier);
    return r;
}

int qcow2_pwritev(struct blk_node *bs, uint64_t off, const struct iov_view *v, unsigned flags,
                  struct scuse_err *err)
{
    (void)flags; /* never FUA: the driver does not declare BLK_DRV_FUA */
    struct qcow2_state *s = bs->state;
    if (!s->writable)
        return err_set(err, -EROFS, "'%s': the image is not open for writing", s->path);
    if (bs->backing_name && !bs->backing) {
        qcow2_note(s, err, "cannot write: the backing file was not opened, so partial clusters "
                     "could not be filled from it");
        return -ENOTSUP;
    }
    size_t pos = 0;
    while (pos < v->len) {
        struct iov_view rest = iov_view_sub(v, pos, v->len - pos);
        size_t done;
        int r = write_in_place(s, off + pos, &rest, &done, err);
        if (r < 0)
            return r;
        if (done == 0) {
            pthread_mutex_lock(&s->w.lock);
            s->w.err = err;
            r = write_step(bs, s, off + pos, &rest, &done);
            s->w.err = NULL;
            pthread_mutex_unlock(&s->w.lock);
            if (r < 0)
                return r;
        }
        pos += done;
    }
    return 0;
}

int qcow2_write_zero_data(struct blk_node *bs, uint64_t off, uint64_t len, struct scuse_err *err)
{
    static const uint8_t zeros[65536];
    struct iovec iov[16];
    for (int i = 0; i < 16; i++) {
        iov[i].iov_base = (void *)zeros;
        iov[i].iov_len = sizeof(zeros);
    }
    while (len > 0) {
        size_t n = len < sizeof(zeros) * 16 ? (size_t)len : sizeof(zeros) * 16;
        struct iov_view v = iov_view_make(iov, 16, n);
        int r = qcow2_pwritev(bs, off, &v, 0, err);
        if (r < 0)
            return r;
        off += n;
        len -= n;
    }
    return 0;
}
