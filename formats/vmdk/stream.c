/* streamOptimized output in VMware's layout (what ESXi and libvmdk expect;
 * QEMU leaves out the markers):
 *
 *   header (gdOffset = GD_AT_END) | descriptor | grains, each a marker
 *   {u64 lba, u32 size} and its zlib stream, padded to a sector |
 *   per grain table that holds a grain: GT marker + table | GD marker +
 *   directory | footer marker + the header again with the real gdOffset |
 *   end-of-stream marker
 *
 * A stream is written once, front to back: each grain is appended when
 * it arrives (compression runs in the caller's thread, outside the lock)
 * and can never be rewritten; flush writes the tail after the last grain
 * (the next grain overwrites it, and the next flush writes it again). */
#include <errno.h>
#include <inttypes.h>
#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/file.h"
#include "vmdk/vmdk.h"

/* libdeflate level 4, as qcow2's -c: on the benchmark's 256 MiB source,
 * one thread, level 6 took 5.4 s of CPU, 4 took 2.9 s, 1 took 1.4 s, for
 * outputs within 1% of each other (qemu-img: zlib's 6, about 15 s).
 * VMware's readers take any level. */
#define STREAM_LEVEL 4
#define CPOOL_KEEP 16

struct vmdk_cctx {
    struct libdeflate_compressor *c;
    uint8_t *in, *out;        /* a grain; marker + its worst-case zlib stream */
    size_t out_cap;
    struct vmdk_cctx *next;
};

struct vmdk_cpool {
    pthread_mutex_t lock;
    struct vmdk_cctx *free_list;
    unsigned n_free;
};

static void cctx_free(struct vmdk_cctx *c)
{
    if (!c)
        return;
    if (c->c)
        libdeflate_free_compressor(c->c);
    free(c->in);
    free(c->out);
    free(c);
}

static struct vmdk_cctx *cctx_get(struct vmdk_sparse *sp)
{
    struct vmdk_cpool *p = sp->cpool;
    pthread_mutex_lock(&p->lock);
    struct vmdk_cctx *c = p->free_list;
    if (c) {
        p->free_list = c->next;
        p->n_free--;
    }
    pthread_mutex_unlock(&p->lock);
    if (c)
        return c;
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->c = libdeflate_alloc_compressor(STREAM_LEVEL);
    c->in = malloc(sp->grain_bytes);
    c->out_cap = 12 + (c->c ? libdeflate_zlib_compress_bound(c->c, sp->grain_bytes) : 0) + VMDK_SECTOR;
    c->out = malloc(c->out_cap);
    if (!c->c || !c->in || !c->out) {
        cctx_free(c);
        return NULL;
    }
    return c;
}

static void cctx_put(struct vmdk_sparse *sp, struct vmdk_cctx *c)
{
    struct vmdk_cpool *p = sp->cpool;
    pthread_mutex_lock(&p->lock);
    if (p->n_free < CPOOL_KEEP) {
        c->next = p->free_list;
        p->free_list = c;
        p->n_free++;
        c = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    cctx_free(c);
}

int vmdk_stream_writer_open(struct vmdk_sparse *sp, struct scuse_err *err)
{
    for (uint64_t i = 0; i < sp->n_gd; i++)
        if (sp->gd[i])
            return 0; /* holds grains already: no writer, writes refused */
    sp->cpool = calloc(1, sizeof(*sp->cpool));
    sp->gt_state = calloc(sp->n_gd, 1);
    if (!sp->cpool || !sp->gt_state) {
        free(sp->cpool);
        free(sp->gt_state);
        sp->cpool = NULL;
        sp->gt_state = NULL;
        return err_set(err, -ENOMEM, "out of memory");
    }
    pthread_mutex_init(&sp->cpool->lock, NULL);
    pthread_mutex_init(&sp->wlock, NULL);
    /* Grains start where the header's overhead ends (past the descriptor). */
    sp->alloc_end = sp->h.overhead * VMDK_SECTOR;
    uint64_t desc_end = (sp->h.desc_offset + sp->h.desc_size) * VMDK_SECTOR;
    if (sp->alloc_end < desc_end) /* an overhead that says less than the header holds */
        sp->alloc_end = desc_end;
    if (sp->alloc_end < VMDK_SECTOR)
        sp->alloc_end = VMDK_SECTOR;
    sp->stream = true;
    sp->writer = true;
    return 0;
}

void vmdk_stream_writer_close(struct vmdk_sparse *sp)
{
    if (!sp->cpool)
        return;
    while (sp->cpool->free_list) {
        struct vmdk_cctx *c = sp->cpool->free_list;
        sp->cpool->free_list = c->next;
        cctx_free(c);
    }
    pthread_mutex_destroy(&sp->cpool->lock);
    free(sp->cpool);
    sp->cpool = NULL;
}

int vmdk_stream_write_grain(struct vmdk_sparse *sp, uint64_t g, const struct iov_view *v,
                            struct scuse_err *err)
{
    struct vmdk_cctx *c = cctx_get(sp);
    if (!c)
        return err_set(err, -ENOMEM, "out of memory");
    /* A short last grain is stored whole, zero-padded: QEMU inflates only
     * whole grains. */
    iov_view_to_buf(v, 0, c->in, v->len);
    memset(c->in + v->len, 0, sp->grain_bytes - v->len);
    size_t n = libdeflate_zlib_compress(c->c, c->in, sp->grain_bytes, c->out + 12,
                                        c->out_cap - 12 - VMDK_SECTOR);
    if (n == 0) {
        cctx_put(sp, c);
        return err_set(err, -EIO, "'%s': cannot compress grain %" PRIu64, sp->path, g);
    }
    vmdk_put64(c->out, g * sp->h.grain_size);
    vmdk_put32(c->out + 8, (uint32_t)n);
    size_t total = (12 + n + VMDK_SECTOR - 1) & ~(size_t)(VMDK_SECTOR - 1);
    memset(c->out + 12 + n, 0, total - 12 - n);

    uint64_t gi = g / sp->gtes, ti = g % sp->gtes;
    int r = 0;
    pthread_mutex_lock(&sp->wlock);
    uint32_t *gt = sp->gt[gi];
    if (!gt) {
        gt = calloc(sp->gtes, sizeof(*gt));
        if (!gt)
            r = err_set(err, -ENOMEM, "out of memory");
        else
            __atomic_store_n(&sp->gt[gi], gt, __ATOMIC_RELEASE);
    }
    if (r == 0 && gt[ti])
        r = err_set(err, -ENOTSUP, "'%s': grain %" PRIu64 " is stored already: a stream takes "
                    "each grain once", sp->path, g);
    if (r == 0 && sp->alloc_end + total > (uint64_t)UINT32_MAX * VMDK_SECTOR)
        r = err_set(err, -ENOSPC, "'%s': the stream would grow past 2 TiB", sp->path);
    uint64_t at = sp->alloc_end;
    if (r == 0) {
        r = file_pwrite_exact(sp->fd, c->out, total, at);
        if (r < 0)
            err_set(err, r, "'%s': write of a grain at offset %" PRIu64 " failed: %s", sp->path,
                    at, strerror(-r));
    }
    if (r == 0) {
        sp->alloc_end += total;
        if (sp->alloc_end > __atomic_load_n(&sp->file_size, __ATOMIC_ACQUIRE))
            __atomic_store_n(&sp->file_size, sp->alloc_end, __ATOMIC_RELEASE);
        __atomic_store_n(&gt[ti], (uint32_t)(at / VMDK_SECTOR), __ATOMIC_RELEASE);
        sp->gt_state[gi] = VMDK_GT_NEW;
        __atomic_store_n(&sp->meta_dirty, true, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&sp->wlock);
    cctx_put(sp, c);
    return r;
}

static void marker(uint8_t *b, uint64_t val, uint32_t type)
{
    memset(b, 0, VMDK_SECTOR);
    vmdk_put64(b, val);
    vmdk_put32(b + 12, type);
}

int vmdk_stream_write_tail(int fd, const char *path, const struct vmdk4_header *h,
                           uint32_t *const *gt, uint64_t n_gd, uint32_t gtes, uint64_t data_end,
                           uint32_t *gd_out, struct scuse_err *err)
{
    uint64_t gt_bytes = ((uint64_t)gtes * 4 + VMDK_SECTOR - 1) & ~(uint64_t)(VMDK_SECTOR - 1);
    uint64_t gd_bytes = (n_gd * 4 + VMDK_SECTOR - 1) & ~(uint64_t)(VMDK_SECTOR - 1);
    uint64_t n_gt = 0;
    for (uint64_t i = 0; i < n_gd; i++)
        n_gt += gt[i] != NULL;
    uint64_t len = n_gt * (VMDK_SECTOR + gt_bytes) + VMDK_SECTOR + gd_bytes + 3 * VMDK_SECTOR;
    if (data_end + len > (uint64_t)UINT32_MAX * VMDK_SECTOR)
        return err_set(err, -ENOSPC, "'%s': the stream would grow past 2 TiB", path);
    uint8_t *b = calloc(1, len);
    if (!b)
        return err_set(err, -ENOMEM, "out of memory");
    uint64_t pos = 0;
    for (uint64_t i = 0; i < n_gd; i++) {
        gd_out[i] = 0;
        if (!gt[i])
            continue;
        marker(b + pos, gt_bytes / VMDK_SECTOR, VMDK_MARKER_GT);
        pos += VMDK_SECTOR;
        gd_out[i] = (uint32_t)((data_end + pos) / VMDK_SECTOR);
        for (uint32_t k = 0; k < gtes; k++)
            vmdk_put32(b + pos + 4 * k, __atomic_load_n(&gt[i][k], __ATOMIC_ACQUIRE));
        pos += gt_bytes;
    }
    marker(b + pos, gd_bytes / VMDK_SECTOR, VMDK_MARKER_GD);
    pos += VMDK_SECTOR;
    uint64_t gd_at = data_end + pos;
    for (uint64_t i = 0; i < n_gd; i++)
        vmdk_put32(b + pos + 4 * i, gd_out[i]);
    pos += gd_bytes;
    marker(b + pos, 1, VMDK_MARKER_FOOTER);
    pos += VMDK_SECTOR;
    struct vmdk4_header f = *h;
    f.gd_offset = gd_at / VMDK_SECTOR;
    vmdk4_header_encode(&f, b + pos);
    pos += VMDK_SECTOR;
    marker(b + pos, 0, VMDK_MARKER_EOS);
    int r = file_pwrite_exact(fd, b, len, data_end);
    free(b);
    if (r == 0 && ftruncate(fd, (off_t)(data_end + len)) < 0)
        r = -errno;
    return r < 0 ? err_set(err, r, "'%s': cannot write the end of the stream: %s", path,
                           strerror(-r)) : 0;
}

int vmdk_stream_flush(struct vmdk_sparse *sp, bool sync, struct scuse_err *err)
{
    pthread_mutex_lock(&sp->wlock);
    int r = 0;
    if (__atomic_load_n(&sp->meta_dirty, __ATOMIC_ACQUIRE)) {
        /* The directory in memory stays as it is (entries 0 until now):
         * the tables live in memory for readers. */
        uint32_t *gd = malloc(sp->n_gd * sizeof(*gd));
        r = gd ? vmdk_stream_write_tail(sp->fd, sp->path, &sp->h, sp->gt, sp->n_gd, sp->gtes,
                                        sp->alloc_end, gd, err)
               : err_set(err, -ENOMEM, "out of memory");
        free(gd);
        if (r == 0 && sync && (r = file_sync(sp->fd)) < 0)
            err_set(err, r, "'%s': flush (fdatasync) failed: %s", sp->path, strerror(-r));
        if (r == 0)
            __atomic_store_n(&sp->meta_dirty, false, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&sp->wlock);
    return r;
}

int vmdk_write_compressed(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                          struct scuse_err *err)
{
    struct vmdk_state *s = bs->state;
    struct vmdk_extent *x = vmdk_extent_at(s, off);
    if (x->type != VMDK_SPARSE || !x->sp->stream)
        return err_set(err, -ENOTSUP, "'%s': only streamOptimized VMDK images store compressed "
                       "grains (-o subformat=streamOptimized)", s->path);
    struct vmdk_sparse *sp = x->sp;
    uint64_t in = off - x->start;
    uint64_t want = x->len - in < sp->grain_bytes ? x->len - in : sp->grain_bytes;
    if ((in & (sp->grain_bytes - 1)) || v->len != want)
        return -ENOTSUP;
    return vmdk_stream_write_grain(sp, in >> sp->grain_shift, v, err);
}
