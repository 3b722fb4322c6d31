/* Compressed clusters. The descriptor gives an unaligned byte offset and
 * a count of additional 512-byte sectors; exactly that range is read
 * (clipped at EOF) and must inflate to one full cluster. Trailing bytes
 * after the stream are normal: the writer rounds up to a sector. */
#include <errno.h>
#include <inttypes.h>
#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "io/file.h"
#include "qcow2/qcow2.h"

/* A deflate stream that overruns the cluster is still accepted (zlib's
 * Z_BUF_ERROR with a full buffer); libdeflate reports no partial output,
 * so retry into a buffer with room for one more stored block. */
#define INFLATE_SLACK (65536 + 1024)
/* zstd's window limit bounds what a hostile frame header can allocate. */
#define ZSTD_WINDOW_LOG_MAX 23

struct qcow2_dctx {
    struct libdeflate_decompressor *inflate;
    ZSTD_DCtx *zstd;
    uint8_t *in;               /* 2 * cluster + 512 */
    uint8_t *out;              /* cluster + INFLATE_SLACK */
    struct qcow2_dctx *next_free;
    struct qcow2_dctx *next_all;
};

void qcow2_dpool_init(struct qcow2_dpool *p, unsigned max)
{
    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->max = max ? max : 1;
}

static void dctx_free(struct qcow2_dctx *d)
{
    if (!d)
        return;
    if (d->inflate)
        libdeflate_free_decompressor(d->inflate);
    ZSTD_freeDCtx(d->zstd);
    free(d->in);
    free(d->out);
    free(d);
}

void qcow2_dpool_destroy(struct qcow2_dpool *p)
{
    struct qcow2_dctx *d = p->all;
    while (d) {
        struct qcow2_dctx *n = d->next_all;
        dctx_free(d);
        d = n;
    }
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    memset(p, 0, sizeof(*p));
}

static struct qcow2_dctx *dctx_new(const struct qcow2_state *s)
{
    struct qcow2_dctx *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->in = malloc(2 * (size_t)s->cluster_size + 512);
    d->out = malloc((size_t)s->cluster_size + INFLATE_SLACK);
    if (s->compression_type == QCOW2_COMPRESSION_ZSTD) {
        d->zstd = ZSTD_createDCtx();
        if (d->zstd && ZSTD_isError(ZSTD_DCtx_setParameter(d->zstd, ZSTD_d_windowLogMax,
                                                           ZSTD_WINDOW_LOG_MAX))) {
            ZSTD_freeDCtx(d->zstd);
            d->zstd = NULL;
        }
    } else {
        d->inflate = libdeflate_alloc_decompressor();
    }
    if (!d->in || !d->out || (!d->zstd && !d->inflate)) {
        dctx_free(d);
        return NULL;
    }
    return d;
}

/* Take a context: a free one, else a new one while under the limit, else
 * wait. Creation happens at most max times per image. */
static int dctx_get(struct qcow2_state *s, struct qcow2_dctx **out)
{
    struct qcow2_dpool *p = &s->dpool;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        if (p->free_list) {
            *out = p->free_list;
            p->free_list = (*out)->next_free;
            pthread_mutex_unlock(&p->lock);
            return 0;
        }
        if (p->created < p->max) {
            p->created++;
            pthread_mutex_unlock(&p->lock);
            struct qcow2_dctx *d = dctx_new(s);
            pthread_mutex_lock(&p->lock);
            if (!d) {
                p->created--;
                pthread_cond_signal(&p->cond);
                pthread_mutex_unlock(&p->lock);
                return -ENOMEM;
            }
            d->next_all = p->all;
            p->all = d;
            pthread_mutex_unlock(&p->lock);
            *out = d;
            return 0;
        }
        pthread_cond_wait(&p->cond, &p->lock);
    }
}

static void dctx_put(struct qcow2_state *s, struct qcow2_dctx *d)
{
    struct qcow2_dpool *p = &s->dpool;
    pthread_mutex_lock(&p->lock);
    d->next_free = p->free_list;
    p->free_list = d;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static int inflate_cluster(struct qcow2_dctx *d, const uint8_t *in, size_t in_len, uint8_t *dst,
                           size_t cs)
{
    size_t used = 0, got = 0;
    enum libdeflate_result r = libdeflate_deflate_decompress_ex(d->inflate, in, in_len, dst, cs,
                                                                &used, &got);
    if (r == LIBDEFLATE_SUCCESS)
        return got == cs ? 0 : -EIO;
    if (r != LIBDEFLATE_INSUFFICIENT_SPACE)
        return -EIO;
    r = libdeflate_deflate_decompress_ex(d->inflate, in, in_len, d->out, cs + INFLATE_SLACK,
                                         &used, &got);
    if (r != LIBDEFLATE_SUCCESS || got < cs)
        return -EIO;
    if (dst != d->out)
        memcpy(dst, d->out, cs);
    return 0;
}

static int zstd_cluster(struct qcow2_dctx *d, const uint8_t *in, size_t in_len, uint8_t *dst,
                        size_t cs)
{
    ZSTD_DCtx_reset(d->zstd, ZSTD_reset_session_only);
    ZSTD_inBuffer ib = { in, in_len, 0 };
    ZSTD_outBuffer ob = { dst, cs, 0 };
    while (ob.pos < ob.size) {
        size_t in0 = ib.pos, out0 = ob.pos;
        size_t r = ZSTD_decompressStream(d->zstd, &ob, &ib);
        if (ZSTD_isError(r))
            return -EIO;
        if (ib.pos == in0 && ob.pos == out0)
            return -EIO; /* input exhausted before the cluster was full */
    }
    return 0;
}

int qcow2_read_compressed(struct qcow2_state *s, uint64_t l2e, uint32_t in_off,
                          const struct iov_view *v, struct scuse_err *err)
{
    size_t cs = s->cluster_size;
    uint64_t coff = l2e & s->coffset_mask;
    uint64_t nsec = ((l2e >> s->csize_shift) & s->csize_mask) + 1;
    uint64_t clen = nsec * 512 - (coff & 511);
    /* The file end as the writer knows it (it may have packed this cluster) */
    uint64_t file_end = __atomic_load_n(&s->meta_end, __ATOMIC_ACQUIRE);
    if (coff >= file_end) {
        qcow2_note(s, err, "compressed cluster at 0x%" PRIx64 " is beyond the end of the file", coff);
        return -EIO;
    }
    if (clen > file_end - coff)
        clen = file_end - coff;

    bool whole = in_off == 0 && v->len == cs;
    if (!whole && qcow2_dcache_read(&s->dcache, coff, nsec, in_off, v))
        return 0;

    struct qcow2_dctx *d;
    int r = dctx_get(s, &d);
    if (r < 0)
        return r;
    /* Zeros past the file's end: the writer's last packed bytes may end
     * before the sector the descriptor rounds up to. */
    struct iovec one;
    struct iov_view in = iov_view_of_buf(&one, d->in, (size_t)clen);
    r = file_preadv_view(s->fd, &in, coff);
    if (r < 0) {
        qcow2_note(s, err, "cannot read compressed cluster at 0x%" PRIx64 ": %s", coff, strerror(-r));
        goto out;
    }
    /* Whole cluster into one contiguous buffer: decompress in place. */
    uint8_t *dst = whole ? iov_view_contig(v, 0, cs) : NULL;
    uint8_t *target = dst ? dst : d->out;
    r = s->compression_type == QCOW2_COMPRESSION_ZSTD
            ? zstd_cluster(d, d->in, (size_t)clen, target, cs)
            : inflate_cluster(d, d->in, (size_t)clen, target, cs);
    if (r < 0) {
        qcow2_note(s, err, "compressed cluster at 0x%" PRIx64 " (%" PRIu64 " bytes) does not "
                     "decompress to one cluster", coff, clen);
        goto out;
    }
    if (!dst)
        iov_view_from_buf(v, 0, d->out + in_off, v->len);
    if (!whole)
        qcow2_dcache_insert(&s->dcache, coff, nsec, d->out);
out:
    dctx_put(s, d);
    return r;
}
