/* The writer: flat extents in place; sparse extents grain by grain.
 *
 * An allocated grain is overwritten in place. A grain that is not (grain-
 * table entry 0, or 1 = zeroed) is allocated at the end of the extent
 * file under the extent's lock: its whole grain is written there first,
 * the untouched parts filled from the parent (entry 0) or with zeros
 * (entry 1), and only then does the in-memory grain table point at it. A
 * grain-directory entry of 0 gets a new grain table (and a redundant one)
 * at the end of the file; QEMU cannot do this and overwrites the header.
 *
 * Grain tables reach the file at flush, in an order that a crash at any
 * point leaves consistent (like qcow2's deferred L2 writes):
 *   fdatasync (the new grains) -> changed grain tables, primary and
 *   redundant -> fdatasync -> grain-directory entries of new tables,
 *   primary and redundant -> fdatasync.
 * A table on disk never points at a grain that is not written, nor a
 * directory at a table that is not. Writes not yet flushed live in memory
 * (meta_pending says so): a process killed before flush loses them and
 * leaves at most unreferenced grains at the end of the file, which cost
 * space only.
 *
 * The first write of an open gives the image a new CID, as VMware and
 * QEMU do, so that a child made from it before no longer matches. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "io/file.h"
#include "vmdk/vmdk.h"

/* Grain-table entries are 32-bit sector numbers. */
#define VMDK_MAX_FILE_BYTES ((uint64_t)UINT32_MAX * VMDK_SECTOR)

int vmdk_writer_open(struct vmdk_sparse *sp, struct scuse_err *err)
{
    sp->gt_state = calloc(sp->n_gd, 1);
    sp->wbuf = malloc(sp->grain_bytes);
    if (!sp->gt_state || !sp->wbuf) {
        free(sp->gt_state);
        free(sp->wbuf);
        sp->gt_state = NULL;
        sp->wbuf = NULL;
        return err_set(err, -ENOMEM, "out of memory");
    }
    pthread_mutex_init(&sp->wlock, NULL);
    sp->alloc_end = (sp->file_size + VMDK_SECTOR - 1) & ~(uint64_t)(VMDK_SECTOR - 1);
    sp->writer = true;
    return 0;
}

void vmdk_writer_close(struct vmdk_sparse *sp)
{
    if (!sp->writer)
        return;
    pthread_mutex_destroy(&sp->wlock);
    free(sp->gt_state);
    free(sp->wbuf);
    sp->writer = false;
}

static int refuse(struct vmdk_state *s, const struct vmdk_extent *x, struct scuse_err *err)
{
    unsigned no = (unsigned)(x - s->ext) + 1;
    if (x->access != VMDK_RW)
        return err_set(err, -EACCES, "'%s': extent %u is %s: scuse does not write it", s->path, no,
                       vmdk_access_name(x->access));
    if (x->type == VMDK_ZERO)
        return err_set(err, -EACCES, "'%s': extent %u is a ZERO extent: it cannot store data",
                       s->path, no);
    return err_set(err, -EROFS, "'%s': extent %u is compressed (streamOptimized): it is written "
                   "only whole, by convert", s->path, no);
}

/* ------------------------------------------------------------------ */
/* CID */

static int write_desc(struct blk_node *bs, struct vmdk_state *s, const char *text, size_t n,
                      struct scuse_err *err)
{
    int fd = bs->fd;
    uint64_t at = 0, cap = VMDK_MAX_DESC_BYTES;
    if (s->embedded) {
        const struct vmdk_sparse *sp = s->ext[0].sp;
        at = sp->h.desc_offset * VMDK_SECTOR;
        cap = sp->h.desc_size * VMDK_SECTOR;
    }
    /* NULs over the rest of the old text: a reader stops at the first. */
    size_t len = n > s->desc.len ? n : s->desc.len;
    if (len > cap)
        return err_set(err, -ENOSPC, "'%s': the descriptor with its new CID does not fit in %"
                       PRIu64 " bytes", bs->path, cap);
    char *buf = calloc(1, len);
    if (!buf)
        return err_set(err, -ENOMEM, "out of memory");
    memcpy(buf, text, n);
    int r = file_pwrite_exact(fd, buf, len, at);
    free(buf);
    if (r == 0 && !s->no_flush)
        r = file_sync(fd);
    if (r < 0)
        return err_set(err, r, "'%s': cannot write the descriptor's new CID: %s", bs->path,
                       strerror(-r));
    return 0;
}

static int update_cid(struct blk_node *bs, struct vmdk_state *s, struct scuse_err *err)
{
    if (__atomic_load_n(&s->cid_updated, __ATOMIC_ACQUIRE))
        return 0;
    pthread_mutex_lock(&s->cid_lock);
    int r = 0;
    /* An extent file opened on its own has no descriptor to update. */
    bool has_desc = s->desc.cid_len && !s->no_desc;
    if (!s->cid_updated && has_desc) {
        uint32_t cid;
        do {
            if (getrandom(&cid, sizeof(cid), 0) != sizeof(cid))
                cid = (uint32_t)(uintptr_t)&cid ^ s->desc.cid ^ 0x9e3779b9u;
        } while (cid == s->desc.cid || cid >= 0xfffffffeu);
        size_t n;
        char *text = vmdk_desc_with_cid(&s->desc, cid, &n);
        if (!text)
            r = err_set(err, -ENOMEM, "out of memory");
        else
            r = write_desc(bs, s, text, n, err);
        if (r == 0) {
            free(s->desc.text);
            s->desc.text = text;
            s->desc.len = n;
            s->desc.cid_len = 8;
            s->desc.cid = cid;
        } else {
            free(text);
        }
    }
    if (r == 0)
        __atomic_store_n(&s->cid_updated, true, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&s->cid_lock);
    return r;
}

/* ------------------------------------------------------------------ */
/* Sparse extents */

static void mark(struct vmdk_sparse *sp, uint64_t gi)
{
    if (sp->gt_state[gi] == VMDK_GT_CLEAN)
        sp->gt_state[gi] = VMDK_GT_DIRTY;
    __atomic_store_n(&sp->meta_dirty, true, __ATOMIC_RELEASE);
}

static int reserve(struct vmdk_sparse *sp, uint64_t bytes, uint64_t *at, struct scuse_err *err)
{
    if (sp->alloc_end + bytes > VMDK_MAX_FILE_BYTES)
        return err_set(err, -ENOSPC, "'%s': the extent file would grow past 2 TiB, where grain "
                       "table entries end", sp->path);
    *at = sp->alloc_end;
    sp->alloc_end += bytes;
    return 0;
}

/* The grain table of GD entry gi, allocated (with its redundant copy)
 * when the directory has none. Under wlock. */
static int gt_for_write(struct vmdk_sparse *sp, uint64_t gi, uint32_t **out, struct scuse_err *err)
{
    int r = vmdk_gt_get(sp, gi, out, err);
    if (r < 0 || *out)
        return r;
    uint32_t *gt = calloc(sp->gtes, sizeof(*gt));
    if (!gt)
        return err_set(err, -ENOMEM, "out of memory");
    uint64_t at = 0, rat = 0;
    r = reserve(sp, sp->gt_bytes * (sp->rgd ? 2 : 1), &at, err);
    if (r < 0) {
        free(gt);
        return r;
    }
    if (sp->rgd)
        rat = at + sp->gt_bytes;
    /* The table before its directory entry: a reader that sees the entry
     * finds the table in memory, never an unwritten one on disk. */
    pthread_mutex_lock(&sp->gt_lock);
    __atomic_store_n(&sp->gt[gi], gt, __ATOMIC_RELEASE);
    __atomic_store_n(&sp->gd[gi], (uint32_t)(at / VMDK_SECTOR), __ATOMIC_RELEASE);
    if (sp->rgd)
        sp->rgd[gi] = (uint32_t)(rat / VMDK_SECTOR);
    pthread_mutex_unlock(&sp->gt_lock);
    sp->gt_state[gi] = VMDK_GT_NEW;
    __atomic_store_n(&sp->meta_dirty, true, __ATOMIC_RELEASE);
    *out = gt;
    return 0;
}

static bool is_data(const struct vmdk_sparse *sp, uint32_t e)
{
    return e > 1 || (e == 1 && !sp->zero_grain);
}

/* Write part (inside one grain, at extent offset in) to a grain that was
 * not allocated when mapped. */
static int alloc_write(struct blk_node *bs, struct vmdk_extent *x, uint64_t in,
                       const struct iov_view *part, struct scuse_err *err)
{
    struct vmdk_sparse *sp = x->sp;
    uint64_t g = in >> sp->grain_shift, gi = g / sp->gtes, ti = g % sp->gtes;
    uint64_t gin = in & (sp->grain_bytes - 1);
    pthread_mutex_lock(&sp->wlock);
    uint32_t *gt;
    int r = gt_for_write(sp, gi, &gt, err);
    if (r < 0)
        goto out;
    uint32_t e = gt[ti];
    if (is_data(sp, e)) { /* another writer allocated it meanwhile */
        pthread_mutex_unlock(&sp->wlock);
        r = file_pwritev_view(sp->fd, part, (uint64_t)e * VMDK_SECTOR + gin);
        return r < 0 ? err_set(err, r, "'%s': write at offset %" PRIu64 " failed: %s", sp->path,
                               (uint64_t)e * VMDK_SECTOR + gin, strerror(-r)) : 0;
    }
    uint8_t *buf = sp->wbuf;
    uint64_t gstart = g << sp->grain_shift;
    uint64_t glen = x->len - gstart < sp->grain_bytes ? x->len - gstart : sp->grain_bytes;
    if (part->len < glen) {
        if (e == 0) {
            struct iovec one;
            struct iov_view below = iov_view_of_buf(&one, buf, glen);
            r = blk_read_below(bs, x->start + gstart, &below, err);
            if (r < 0)
                goto out;
        } else {
            memset(buf, 0, glen);
        }
    }
    memset(buf + glen, 0, sp->grain_bytes - glen);
    iov_view_to_buf(part, 0, buf + gin, part->len);
    uint64_t at = 0;
    r = reserve(sp, sp->grain_bytes, &at, err);
    if (r < 0)
        goto out;
    r = file_pwrite_exact(sp->fd, buf, sp->grain_bytes, at);
    if (r < 0) {
        err_set(err, r, "'%s': write of a new grain at offset %" PRIu64 " failed: %s", sp->path,
                at, strerror(-r));
        goto out;
    }
    if (sp->alloc_end > __atomic_load_n(&sp->file_size, __ATOMIC_ACQUIRE))
        __atomic_store_n(&sp->file_size, sp->alloc_end, __ATOMIC_RELEASE);
    __atomic_store_n(&gt[ti], (uint32_t)(at / VMDK_SECTOR), __ATOMIC_RELEASE);
    mark(sp, gi);
out:
    pthread_mutex_unlock(&sp->wlock);
    return r;
}

static int write_sparse(struct blk_node *bs, struct vmdk_extent *x, uint64_t at,
                        const struct iov_view *v, struct scuse_err *err)
{
    struct vmdk_sparse *sp = x->sp;
    size_t done = 0;
    while (done < v->len) {
        uint64_t in = at - x->start + done;
        struct vmdk_run run;
        int r = vmdk_gt_map(sp, in, v->len - done, &run, err);
        if (r < 0)
            return r;
        size_t n;
        if (run.kind == VMDK_K_DATA) {
            n = (size_t)run.len;
            struct iov_view part = iov_view_sub(v, done, n);
            r = file_pwritev_view(sp->fd, &part, run.host);
            if (r < 0)
                err_set(err, r, "'%s': write of %zu bytes at offset %" PRIu64 " failed: %s",
                        sp->path, n, run.host, strerror(-r));
        } else {
            uint64_t room = sp->grain_bytes - (in & (sp->grain_bytes - 1));
            n = v->len - done < room ? v->len - done : (size_t)room;
            struct iov_view part = iov_view_sub(v, done, n);
            r = alloc_write(bs, x, in, &part, err);
        }
        if (r < 0)
            return r;
        done += n;
    }
    return 0;
}

/* Set grain g's entry to "zeroed". */
static int zero_grain(struct vmdk_sparse *sp, uint64_t g, struct scuse_err *err)
{
    uint64_t gi = g / sp->gtes;
    pthread_mutex_lock(&sp->wlock);
    uint32_t *gt;
    int r = gt_for_write(sp, gi, &gt, err);
    if (r == 0 && gt[g % sp->gtes] != VMDK_GTE_ZEROED) {
        __atomic_store_n(&gt[g % sp->gtes], VMDK_GTE_ZEROED, __ATOMIC_RELEASE);
        mark(sp, gi);
    }
    pthread_mutex_unlock(&sp->wlock);
    return r;
}

static const uint8_t zeros[65536];

/* Write zeros through the data path, 64 KiB at a time. */
static int write_zero_bytes(struct blk_node *bs, struct vmdk_extent *x, uint64_t at, uint64_t len,
                            struct scuse_err *err)
{
    for (uint64_t done = 0; done < len;) {
        size_t n = len - done < sizeof(zeros) ? (size_t)(len - done) : sizeof(zeros);
        struct iovec one;
        struct iov_view v = iov_view_of_buf(&one, (void *)zeros, n);
        int r = x->type == VMDK_SPARSE ? write_sparse(bs, x, at + done, &v, err)
                                       : file_pwritev_view(x->fd, &v, x->flat_off + at + done - x->start);
        if (r < 0)
            return x->type == VMDK_SPARSE ? r : err_set(err, r, "'%s': write failed: %s", x->path,
                                                        strerror(-r));
        done += n;
    }
    return 0;
}

/* Zeros over [at, at+len) of a sparse extent: whole grains become zeroed
 * grains where the header allows, or stay unallocated where nothing lies
 * below; the rest is written as zeros. discard_only: touch whole grains
 * only, and only with zeroed grains. */
static int zero_sparse(struct blk_node *bs, struct vmdk_extent *x, uint64_t at, uint64_t len,
                       bool discard_only, struct scuse_err *err)
{
    struct vmdk_sparse *sp = x->sp;
    uint64_t done = 0;
    while (done < len) {
        uint64_t in = at - x->start + done;
        uint64_t g = in >> sp->grain_shift, gin = in & (sp->grain_bytes - 1);
        uint64_t gend = (g + 1) << sp->grain_shift;
        if (gend > x->len)
            gend = x->len;
        uint64_t n = gend - in < len - done ? gend - in : len - done;
        bool whole = gin == 0 && n == gend - (g << sp->grain_shift);
        int r = 0;
        if (whole && sp->zero_grain) {
            r = zero_grain(sp, g, err);
        } else if (!discard_only) {
            struct vmdk_run run;
            r = vmdk_gt_map(sp, in, n, &run, err);
            bool zero_already = r == 0 && (run.kind == VMDK_K_ZERO ||
                                           (run.kind == VMDK_K_UNALLOC && !bs->backing));
            if (r == 0 && !zero_already)
                r = write_zero_bytes(bs, x, at + done, n, err);
        }
        if (r < 0)
            return r;
        done += n;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* The driver's write calls */

enum op { OP_WRITE, OP_ZERO, OP_DISCARD };

/* A stream being written takes whole grains, once each; zeros are what
 * it holds where no grain was written. */
static int stream_op(struct blk_node *bs, struct vmdk_extent *x, enum op op, uint64_t at,
                     uint64_t n, struct iov_view part, struct scuse_err *err)
{
    struct vmdk_state *s = bs->state;
    struct vmdk_sparse *sp = x->sp;
    for (uint64_t done = 0; done < n;) {
        uint64_t in = at - x->start + done;
        uint64_t g = in >> sp->grain_shift;
        uint64_t glen = x->len - (g << sp->grain_shift);
        if (glen > sp->grain_bytes)
            glen = sp->grain_bytes;
        uint64_t gin = in & (sp->grain_bytes - 1);
        uint64_t k = glen - gin < n - done ? glen - gin : n - done;
        struct vmdk_run run;
        int r = vmdk_gt_map(sp, in, k, &run, err);
        if (r < 0)
            return r;
        if (op == OP_WRITE && gin == 0 && k == glen && run.kind == VMDK_K_UNALLOC) {
            struct iov_view g_view = iov_view_sub(&part, (size_t)done, (size_t)k);
            r = vmdk_stream_write_grain(sp, g, &g_view, err);
        } else if (op == OP_WRITE || (op == OP_ZERO && run.kind != VMDK_K_UNALLOC)) {
            r = err_set(err, -ENOTSUP, "'%s': a streamOptimized image is written whole grains "
                        "at a time, each once (offset %" PRIu64 ")", s->path, at + done);
        }
        if (r < 0)
            return r;
        done += k;
    }
    return 0;
}

static int each_extent(struct blk_node *bs, enum op op, uint64_t off, uint64_t len,
                       const struct iov_view *v, unsigned flags, struct scuse_err *err)
{
    struct vmdk_state *s = bs->state;
    /* Refused before anything changes, the CID included. */
    for (uint64_t done = 0; op != OP_DISCARD && done < len;) {
        struct vmdk_extent *x = vmdk_extent_at(s, off + done);
        bool ok = (x->type == VMDK_SPARSE && x->sp->writer) ||
                  ((x->type == VMDK_FLAT || x->type == VMDK_VMFS) && x->access == VMDK_RW);
        if (!ok)
            return refuse(s, x, err);
        done = x->start + x->len - off;
    }
    int r = update_cid(bs, s, err);
    for (uint64_t done = 0; r == 0 && done < len;) {
        uint64_t at = off + done;
        struct vmdk_extent *x = vmdk_extent_at(s, at);
        uint64_t left = x->start + x->len - at;
        uint64_t n = len - done < left ? len - done : left;
        bool sparse_w = x->type == VMDK_SPARSE && x->sp->writer;
        bool flat_w = (x->type == VMDK_FLAT || x->type == VMDK_VMFS) && x->access == VMDK_RW;
        if (sparse_w && x->sp->stream) {
            r = stream_op(bs, x, op, at, n, v ? iov_view_sub(v, (size_t)done, (size_t)n) : (struct iov_view){ 0 }, err);
        } else if (!sparse_w && !flat_w) {
            if (op != OP_DISCARD)
                r = refuse(s, x, err);
        } else if (op == OP_WRITE) {
            struct iov_view part = iov_view_sub(v, (size_t)done, (size_t)n);
            if (sparse_w) {
                r = write_sparse(bs, x, at, &part, err);
            } else {
                r = file_pwritev_view(x->fd, &part, x->flat_off + (at - x->start));
                if (r < 0)
                    err_set(err, r, "'%s': write of %" PRIu64 " bytes at offset %" PRIu64
                            " failed: %s", x->path, n, x->flat_off + (at - x->start), strerror(-r));
            }
        } else if (sparse_w) {
            r = zero_sparse(bs, x, at, n, op == OP_DISCARD, err);
        } else if (op == OP_ZERO) {
            uint64_t host = x->flat_off + (at - x->start);
            r = (flags & BLK_ZERO_MAY_UNMAP) ? file_punch_hole(x->fd, host, n) : -ENOTSUP;
            if (r == -ENOTSUP)
                r = file_zero_range(x->fd, host, n);
            if (r == -ENOTSUP)
                r = write_zero_bytes(bs, x, at, n, err);
            else if (r < 0)
                err_set(err, r, "'%s': zero write at offset %" PRIu64 " failed: %s", x->path,
                        host, strerror(-r));
        }
        done += n;
    }
    return r;
}

int vmdk_pwritev(struct blk_node *bs, uint64_t off, const struct iov_view *v, unsigned flags,
                 struct scuse_err *err)
{
    return each_extent(bs, OP_WRITE, off, v->len, v, flags, err);
}

int vmdk_write_zeroes(struct blk_node *bs, uint64_t off, uint64_t len, unsigned flags,
                      struct scuse_err *err)
{
    return each_extent(bs, OP_ZERO, off, len, NULL, flags, err);
}

int vmdk_discard(struct blk_node *bs, uint64_t off, uint64_t len, struct scuse_err *err)
{
    return each_extent(bs, OP_DISCARD, off, len, NULL, 0, err);
}

/* ------------------------------------------------------------------ */
/* Flush */

static int sync_fd(struct vmdk_state *s, int fd, const char *path, struct scuse_err *err)
{
    if (s->no_flush)
        return 0;
    int r = file_sync(fd);
    return r < 0 ? err_set(err, r, "'%s': flush (fdatasync) failed: %s", path, strerror(-r)) : 0;
}

static int write_table(struct vmdk_sparse *sp, const uint32_t *t, uint64_t n, uint64_t bytes,
                       uint64_t at, uint8_t *buf, struct scuse_err *err)
{
    memset(buf, 0, bytes);
    for (uint64_t i = 0; i < n; i++)
        vmdk_put32(buf + 4 * i, t[i]);
    int r = file_pwrite_exact(sp->fd, buf, bytes, at);
    return r < 0 ? err_set(err, r, "'%s': cannot write a grain table at offset %" PRIu64 ": %s",
                           sp->path, at, strerror(-r)) : 0;
}

static int flush_sparse(struct vmdk_state *s, struct vmdk_sparse *sp, struct scuse_err *err)
{
    pthread_mutex_lock(&sp->wlock);
    int r = 0;
    if (!__atomic_load_n(&sp->meta_dirty, __ATOMIC_ACQUIRE))
        goto out;
    uint8_t *buf = malloc(sp->gt_bytes);
    if (!buf) {
        r = err_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    bool any_new = false;
    r = sync_fd(s, sp->fd, sp->path, err); /* the grains the tables will point at */
    for (uint64_t gi = 0; r == 0 && gi < sp->n_gd; gi++) {
        if (sp->gt_state[gi] == VMDK_GT_CLEAN)
            continue;
        any_new |= sp->gt_state[gi] == VMDK_GT_NEW;
        r = write_table(sp, sp->gt[gi], sp->gtes, sp->gt_bytes, (uint64_t)sp->gd[gi] * VMDK_SECTOR,
                        buf, err);
        if (r == 0 && sp->rgd)
            r = write_table(sp, sp->gt[gi], sp->gtes, sp->gt_bytes,
                            (uint64_t)sp->rgd[gi] * VMDK_SECTOR, buf, err);
    }
    if (r == 0 && any_new) {
        r = sync_fd(s, sp->fd, sp->path, err); /* the tables the directories will point at */
        for (uint64_t gi = 0; r == 0 && gi < sp->n_gd; gi++) {
            if (sp->gt_state[gi] != VMDK_GT_NEW)
                continue;
            uint8_t e[4];
            vmdk_put32(e, sp->gd[gi]);
            r = file_pwrite_exact(sp->fd, e, 4, sp->h.gd_offset * VMDK_SECTOR + 4 * gi);
            if (r == 0 && sp->rgd) {
                vmdk_put32(e, sp->rgd[gi]);
                r = file_pwrite_exact(sp->fd, e, 4, sp->h.rgd_offset * VMDK_SECTOR + 4 * gi);
            }
            if (r < 0)
                err_set(err, r, "'%s': cannot write grain directory entry %" PRIu64 ": %s",
                        sp->path, gi, strerror(-r));
        }
    }
    free(buf);
    if (r == 0) {
        memset(sp->gt_state, VMDK_GT_CLEAN, sp->n_gd);
        __atomic_store_n(&sp->meta_dirty, false, __ATOMIC_RELEASE);
    }
out:
    pthread_mutex_unlock(&sp->wlock);
    return r;
}

int vmdk_flush(struct blk_node *bs, struct scuse_err *err)
{
    struct vmdk_state *s = bs->state;
    int r = 0;
    for (size_t i = 0; r == 0 && i < s->n_ext; i++) {
        struct vmdk_sparse *sp = s->ext[i].sp;
        if (sp && sp->writer)
            r = sp->stream ? vmdk_stream_flush(sp, !s->no_flush, err) : flush_sparse(s, sp, err);
    }
    /* Flat data written in place, and the last directory entries. */
    for (size_t i = 0; r == 0 && i < s->n_files; i++)
        if (s->files[i].rw)
            r = sync_fd(s, s->files[i].fd, i ? "an extent file" : s->path, err);
    return r;
}

bool vmdk_meta_pending(struct blk_node *bs)
{
    struct vmdk_state *s = bs->state;
    for (size_t i = 0; i < s->n_ext; i++)
        if (s->ext[i].sp && s->ext[i].sp->writer &&
            __atomic_load_n(&s->ext[i].sp->meta_dirty, __ATOMIC_ACQUIRE))
            return true;
    return false;
}
