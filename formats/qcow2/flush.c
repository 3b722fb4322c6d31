/* Crash-safe writeback and the writer's lifetime.
 *
 * Metadata changes live in memory (refcount and L2 slice caches, the L1
 * table, the queue of decrements) until the flush routine writes them in
 * QEMU's order, with a sync between the steps:
 *
 *   (a) refcount slices (increments), sync: the new clusters' refcounts
 *       and the guest data written before any L2 change are durable;
 *   (b) dirty L2 slices, sync: new L2 tables (written when allocated) and
 *       entries now point only at counted clusters holding their data;
 *   (c) changed L1 entries, sync: they point only at durable L2 tables;
 *   (d) queued decrements, applied only now that nothing durable refers
 *       to what they free, written, sync.
 *
 * A crash between any two writes leaves references only to clusters whose
 * refcount is durable: at worst clusters leak. The flush runs for the
 * vtable's flush, at close, and whenever the next step could find the L2
 * cache half dirty or the decrement queue long (qcow2_reserve). Before (d)
 * the barrier is taken exclusively and released: every I/O that mapped a
 * host offset before the L2 changes has finished, so a cluster freed in
 * (d) and reused later is never read or written through a stale mapping. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "qcow2/qcow2.h"
#include "util/log.h"

#include "qcow2/check.h"

#define DEC_QUEUE_MAX 8192
#define RC_SLOTS_MIN 16
#define RC_SLOTS_MAX 256

static int sync_meta(struct qcow2_state *s)
{
    int r = qcow2_sync(s);
    if (r < 0)
        qcow2_note_locked(s, "sync failed: %s", strerror(-r));
    return r;
}

int qcow2_flush_locked(struct qcow2_state *s)
{
    struct qcow2_writer *w = &s->w;
    unsigned n;
    int r = qcow2_rc_writeback(s, &n);
    if (r < 0)
        return r;
    bool data = atomic_exchange(&w->data_unsynced, false);
    if (w->meta_unsynced || data) {
        r = sync_meta(s);
        if (r < 0) {
            if (data)
                atomic_store(&w->data_unsynced, true);
            return r;
        }
        w->meta_unsynced = false;
    }

    r = qcow2_l2c_writeback(&s->cache, s->fd, &n);
    if (r < 0) {
        qcow2_note_locked(s, "cannot write L2 tables: %s", strerror(-r));
        return r;
    }
    if (n && (r = sync_meta(s)) < 0)
        return r;

    r = qcow2_l1_writeback(s, &n);
    if (r < 0)
        return r;
    if (n && (r = sync_meta(s)) < 0)
        return r;

    if (w->ndec) {
        pthread_rwlock_wrlock(&w->barrier);
        pthread_rwlock_unlock(&w->barrier);
        qcow2_dcache_clear(&s->dcache); /* freed compressed bytes may be reused */
        r = qcow2_rc_apply_decs(s);
        if (r < 0)
            return r;
        r = sync_meta(s);
        if (r < 0)
            return r;
        w->meta_unsynced = false;
    }
    return 0;
}

int qcow2_reserve(struct qcow2_state *s)
{
    /* A step dirties at most one L2 slice and queues a bounded number of
     * decrements; readers need clean slices to evict. */
    if (s->cache.ndirty + 2 > s->cache.nslots / 2 || s->w.ndec > DEC_QUEUE_MAX)
        return qcow2_flush_locked(s);
    return 0;
}

int qcow2_flush(struct blk_node *bs, struct scuse_err *err)
{
    struct qcow2_state *s = bs->state;
    if (!s->writable)
        return 0;
    pthread_mutex_lock(&s->w.lock);
    s->w.err = err;
    int r = qcow2_flush_locked(s);
    s->w.err = NULL;
    pthread_mutex_unlock(&s->w.lock);
    return r;
}

bool qcow2_meta_pending(struct blk_node *bs)
{
    struct qcow2_state *s = bs->state;
    if (!s->writable)
        return false;
    /* Under the metadata lock: a flush in progress holds it until all it
     * took is written, so "nothing pending" is never seen half way. */
    pthread_mutex_lock(&s->w.lock);
    pthread_mutex_lock(&s->cache.lock);
    bool pending = s->cache.ndirty != 0;
    pthread_mutex_unlock(&s->cache.lock);
    pending = pending || s->w.rc.ndirty || s->w.l1_any_dirty || s->w.ndec;
    pthread_mutex_unlock(&s->w.lock);
    return pending;
}

static int repair_dirty(struct blk_node *bs, struct qcow2_state *s, struct scuse_err *err)
{
    /* check.c's contract: nothing of the writer exists yet (no caches to
     * flush); afterwards the tables are re-read and the L2 cache emptied. */
    int r = qcow2_rebuild_refcounts(bs, s);
    if (r < 0)
        return err_set(err, r, "'%s': the image is dirty (it was not closed cleanly with lazy "
                       "refcounts) and rebuilding its refcounts failed: %s", bs->path,
                       strerror(-r));
    r = qcow2_reload_tables(bs, s, err);
    if (r < 0)
        return r;
    qcow2_l2c_reset(&s->cache);
    r = qcow2_write_features(s, s->incompat & ~QCOW2_INCOMPAT_DIRTY, s->autoclear);
    if (r < 0)
        return err_set(err, r, "'%s': cannot clear the dirty bit: %s", bs->path, strerror(-r));
    bs->dirty = false;
    return 0;
}

int qcow2_writer_open(struct blk_node *bs, struct qcow2_state *s, struct scuse_err *err)
{
    if (s->data_fd != s->fd)
        return err_set(err, -ENOTSUP, "'%s': writing images with an external data file is not "
                       "supported; open it read-only", bs->path);
    int r;
    if (s->incompat & QCOW2_INCOMPAT_DIRTY) {
        r = repair_dirty(bs, s, err);
        if (r < 0)
            return r;
    }
    if (s->version >= 3 && (s->autoclear & ~QCOW2_AUTOCLEAR_KNOWN)) {
        /* Bits for features this writer does not maintain (bitmaps among
         * them) must not survive its first write. */
        r = qcow2_write_features(s, s->incompat, s->autoclear & QCOW2_AUTOCLEAR_KNOWN);
        if (r < 0)
            return err_set(err, r, "'%s': cannot clear the autoclear feature bits: %s",
                           bs->path, strerror(-r));
    }

    struct qcow2_writer *w = &s->w;
    memset(w, 0, sizeof(*w));
    uint32_t nslots = s->cache.nslots / 4;
    nslots = nslots < RC_SLOTS_MIN ? RC_SLOTS_MIN : nslots > RC_SLOTS_MAX ? RC_SLOTS_MAX : nslots;
    w->l1_dirty = calloc((s->l1_loaded + 63) / 64 + 1, 1);
    r = w->l1_dirty ? qcow2_rc_init(s, nslots) : -ENOMEM;
    if (r < 0) {
        qcow2_rc_destroy(s);
        free(w->l1_dirty);
        w->l1_dirty = NULL;
        return err_set(err, r, "'%s': cannot load the refcount table: %s", bs->path,
                       strerror(-r));
    }
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    /* Readers come and go constantly; the barrier must not starve. */
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&w->barrier, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&w->lock, NULL);
    pthread_mutex_init(&w->cpool_lock, NULL);
    atomic_init(&w->data_unsynced, false);
    s->writable = true;
    return 0;
}

int qcow2_writer_close(struct qcow2_state *s)
{
    if (!s->writable)
        return 0;
    struct qcow2_writer *w = &s->w;
    struct scuse_err err = { 0 };
    pthread_mutex_lock(&w->lock);
    w->err = &err;
    int r = qcow2_flush_locked(s);
    w->err = NULL;
    pthread_mutex_unlock(&w->lock);
    /* Close has no caller to answer: the reason goes to the log. */
    if (r < 0)
        log_error("writing back metadata at close failed: %s; the image may have leaked "
                  "clusters or lost the last writes", err.msg[0] ? err.msg : strerror(-r));
    pthread_mutex_destroy(&w->lock);
    pthread_rwlock_destroy(&w->barrier);
    qcow2_cpool_destroy(s);
    pthread_mutex_destroy(&w->cpool_lock);
    qcow2_rc_destroy(s);
    free(w->l1_dirty);
    free(w->head_buf);
    free(w->tail_buf);
    s->writable = false;
    return r;
}
