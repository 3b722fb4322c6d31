/* Compressed cluster writes (convert -c), in QEMU's packed layout: each
 * cluster is compressed (raw deflate or a zstd frame) in the caller's
 * thread, then, under the writer's metadata lock, its bytes are placed
 * right after the previous compressed cluster's (the writer's free_byte),
 * byte-granular, every host cluster they touch gaining one reference, and
 * the L2 entry gets the descriptor (offset in bits 0..x-1, additional
 * 512-byte sectors in x..61, bit 62). Output that does not fit in
 * cluster_size - 1 bytes goes through the normal write path.
 *
 * Allocation, refcounts and the L2 entry use the writer's API, so the
 * crash-safe order of flush.c holds: the refcounts (new clusters and the
 * extra reference on a shared packing cluster) are durable before the L2
 * entry that needs them. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "io/file.h"
#include "qcow2/qcow2.h"

/* libdeflate level 4: measured on 64 KiB clusters of 256 MiB of /usr/lib
 * + /usr/share/doc, it stores 92.4 MiB in 2.7 s of CPU (level 6: 89.9 MiB,
 * 3.6 s), and QEMU's zlib level 6 with its 4 KiB window 96.9 MiB in 7.9 s:
 * output still smaller than qemu-img's, at a third of its CPU. */
#define DEFLATE_LEVEL 4
#define ZSTD_LEVEL 3

/* A compression context with its cluster-sized buffers: taken from the
 * image's pool for one call, so the hot path does not allocate. */
struct qcow2_cctx {
    struct libdeflate_compressor *deflate;
    ZSTD_CCtx *zstd;
    uint8_t *in, *out;
    struct qcow2_cctx *next;
};

static void cctx_free(struct qcow2_cctx *c)
{
    if (c->deflate)
        libdeflate_free_compressor(c->deflate);
    ZSTD_freeCCtx(c->zstd);
    free(c->in);
    free(c->out);
    free(c);
}

static struct qcow2_cctx *cctx_get(struct qcow2_state *s)
{
    struct qcow2_writer *w = &s->w;
    pthread_mutex_lock(&w->cpool_lock);
    struct qcow2_cctx *c = w->cpool;
    if (c)
        w->cpool = c->next;
    pthread_mutex_unlock(&w->cpool_lock);
    if (c)
        return c;
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->in = malloc(s->cluster_size);
    c->out = malloc(s->cluster_size);
    if (s->compression_type == QCOW2_COMPRESSION_ZSTD)
        c->zstd = ZSTD_createCCtx();
    else
        c->deflate = libdeflate_alloc_compressor(DEFLATE_LEVEL);
    if (!c->in || !c->out || (!c->zstd && !c->deflate)) {
        cctx_free(c);
        return NULL;
    }
    return c;
}

static void cctx_put(struct qcow2_state *s, struct qcow2_cctx *c)
{
    struct qcow2_writer *w = &s->w;
    pthread_mutex_lock(&w->cpool_lock);
    c->next = w->cpool;
    w->cpool = c;
    pthread_mutex_unlock(&w->cpool_lock);
}

void qcow2_cpool_destroy(struct qcow2_state *s)
{
    struct qcow2_cctx *c = s->w.cpool;
    while (c) {
        struct qcow2_cctx *next = c->next;
        cctx_free(c);
        c = next;
    }
    s->w.cpool = NULL;
}

/* Compressed size of c->in into c->out, 0 when not smaller than a cluster. */
static size_t compress(const struct qcow2_state *s, struct qcow2_cctx *c)
{
    size_t cap = s->cluster_size - 1, len = s->cluster_size;
    if (c->zstd) {
        size_t n = ZSTD_compressCCtx(c->zstd, c->out, cap, c->in, len, ZSTD_LEVEL);
        return ZSTD_isError(n) ? 0 : n;
    }
    return libdeflate_deflate_compress(c->deflate, c->in, len, c->out, cap);
}

/* Host bytes [*host, *host + len) for compressed data (len < cluster
 * size), packed after the previous compressed cluster when they fit in its
 * host cluster, or spill into the next one if that is the cluster the
 * allocator hands out; otherwise at the start of a new cluster. Every host
 * cluster touched gains one reference (in the refcount cache). */
static int place_bytes(struct qcow2_state *s, size_t len, uint64_t *host)
{
    struct qcow2_writer *w = &s->w;
    uint32_t cb = s->cluster_bits;
    uint64_t cs = s->cluster_size, fb = w->free_byte, k = fb >> cb;
    uint64_t room = (fb & (cs - 1)) ? cs - (fb & (cs - 1)) : 0;
    int r;
    if (room) {
        uint64_t refs;
        r = qcow2_rc_get(s, k, &refs);
        if (r < 0)
            return r;
        uint64_t max = s->refcount_order == 6 ? UINT64_MAX
                                              : (1ull << (1u << s->refcount_order)) - 1;
        if (refs == 0 || refs >= max)
            room = 0; /* freed since, or no reference left to give (1-bit refcounts) */
    }
    if (room >= len) {
        r = qcow2_rc_add(s, k, 1, 1);
        if (r < 0)
            return r;
        *host = fb;
        w->free_byte = fb + len;
        return 0;
    }
    uint64_t c, got;
    r = qcow2_alloc_clusters(s, 1, &c, &got);
    if (r < 0)
        return r;
    if (room && c == k + 1) {
        r = qcow2_rc_add(s, k, 1, 1);
        if (r < 0) {
            qcow2_rc_queue_dec(s, c, 1);
            return r;
        }
        *host = fb;
    } else {
        *host = c << cb;
    }
    w->free_byte = *host + len;
    return 0;
}

/* Under the metadata lock: the writable L2 table of guest cluster ci and
 * its entry, which must have no host cluster yet. */
static int unallocated_entry(struct qcow2_state *s, uint64_t ci, uint64_t *l2_off, uint64_t *e)
{
    uint64_t bm = 0;
    int r = qcow2_reserve(s);
    if (r == 0)
        r = qcow2_l2_prepare(s, ci >> s->l2_bits, l2_off);
    if (r == 0)
        r = qcow2_l2_load(s, *l2_off, ci, 1, e, &bm);
    if (r < 0)
        return r;
    if ((*e & (QCOW2_L2E_OFFSET_MASK | QCOW2_OFLAG_COMPRESSED)) ||
        (s->ext_l2 && (uint32_t)bm)) {
        qcow2_note_locked(s, "compressed write to guest offset 0x%" PRIx64 ": the cluster is "
                     "already allocated (compressed writes go to unallocated clusters only)",
                     ci << s->cluster_bits);
        return -ENOTSUP;
    }
    return 0;
}

/* Under the metadata lock: store n compressed bytes for guest cluster ci. */
static int store(struct qcow2_state *s, uint64_t ci, const uint8_t *data, size_t n)
{
    uint64_t l2_off, e;
    int r = unallocated_entry(s, ci, &l2_off, &e);
    if (r < 0)
        return r;
    uint64_t host;
    r = place_bytes(s, n, &host);
    if (r < 0)
        return r;
    uint64_t extra = ((host + n - 1) >> 9) - (host >> 9);
    uint64_t ne = QCOW2_OFLAG_COMPRESSED | (extra << s->csize_shift) | host;
    r = file_pwrite_exact(s->fd, data, n, host);
    if (r < 0) {
        qcow2_note_locked(s, "write of %zu compressed bytes at host offset 0x%" PRIx64 " failed: %s",
                     n, host, strerror(-r));
        qcow2_rc_queue_dec_compressed(s, ne); /* the references taken: dropped at the flush */
        return r;
    }
    s->w.meta_unsynced = true; /* data the next L2 writeback depends on */
    uint64_t nbm = 0; /* compressed clusters carry no subcluster bitmap */
    r = qcow2_l2_store(s, l2_off, ci, 1, &ne, &nbm);
    return r < 0 ? r : qcow2_l2_release(s, e);
}

int qcow2_write_compressed(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                           struct scuse_err *err)
{
    struct qcow2_state *s = bs->state;
    uint64_t cs = s->cluster_size;
    if (!s->writable)
        return -EROFS;
    if ((off & (cs - 1)) || v->len == 0 || v->len > cs ||
        (v->len < cs && off + v->len != bs->size))
        return err_set(err, -EINVAL, "'%s': a compressed write must cover one whole cluster",
                       s->path);
    struct qcow2_cctx *c = cctx_get(s);
    if (!c)
        return err_set(err, -ENOMEM, "'%s': out of memory for a compression context", s->path);
    iov_view_to_buf(v, 0, c->in, v->len);
    memset(c->in + v->len, 0, cs - v->len); /* a short last cluster is padded with zeros */
    size_t n = compress(s, c);
    uint64_t l2_off, e;
    pthread_mutex_lock(&s->w.lock);
    s->w.err = err;
    int r = n ? store(s, off >> s->cluster_bits, c->out, n)
              : unallocated_entry(s, off >> s->cluster_bits, &l2_off, &e);
    s->w.err = NULL;
    pthread_mutex_unlock(&s->w.lock);
    if (r == 0 && !n)
        r = qcow2_pwritev(bs, off, v, 0, err); /* incompressible: a normal cluster */
    cctx_put(s, c);
    return r;
}
