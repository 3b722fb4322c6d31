/* Compressed grains (streamOptimized). With markers (VMware and QEMU
 * both set the flag) a grain starts with {u64 lba, u32 size} and size
 * bytes of zlib stream follow; without, the zlib stream starts at the
 * grain's sector and its own end says where it stops. The stream is
 * zlib-wrapped (RFC 1950), unlike qcow2's raw deflate.
 *
 * Decompressors and their buffers are pooled per extent; each remembers
 * the last grain it inflated, so reads smaller than a grain that walk
 * through it (a guest's 4 KiB reads) inflate it once. Compressed extents
 * are never written in place, so a cached grain cannot go stale. */
#include <errno.h>
#include <inttypes.h>
#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "vmdk/vmdk.h"

#define DPOOL_KEEP 8

struct vmdk_dctx {
    struct libdeflate_decompressor *d;
    uint8_t *in, *out;
    size_t in_cap;
    uint64_t cached;          /* host offset of the grain in out, or UINT64_MAX */
    struct vmdk_dctx *next;
};

struct vmdk_dpool {
    pthread_mutex_t lock;
    struct vmdk_dctx *free_list;
    unsigned n_free;
};

int vmdk_dpool_new(struct vmdk_dpool **out)
{
    struct vmdk_dpool *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    pthread_mutex_init(&p->lock, NULL);
    *out = p;
    return 0;
}

static void dctx_free(struct vmdk_dctx *c)
{
    if (!c)
        return;
    if (c->d)
        libdeflate_free_decompressor(c->d);
    free(c->in);
    free(c->out);
    free(c);
}

void vmdk_dpool_free(struct vmdk_dpool *p)
{
    if (!p)
        return;
    while (p->free_list) {
        struct vmdk_dctx *c = p->free_list;
        p->free_list = c->next;
        dctx_free(c);
    }
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* A context, preferring one that holds grain host already. */
static struct vmdk_dctx *dctx_get(struct vmdk_sparse *sp, uint64_t host, size_t in_cap)
{
    struct vmdk_dpool *p = sp->dpool;
    pthread_mutex_lock(&p->lock);
    struct vmdk_dctx **best = NULL;
    for (struct vmdk_dctx **c = &p->free_list; *c; c = &(*c)->next) {
        if ((*c)->cached == host) {
            best = c;
            break;
        }
        best = c; /* any will do otherwise: take the last (least recently freed) */
    }
    struct vmdk_dctx *got = NULL;
    if (best) {
        got = *best;
        *best = got->next;
        p->n_free--;
    }
    pthread_mutex_unlock(&p->lock);
    if (!got) {
        got = calloc(1, sizeof(*got));
        if (!got)
            return NULL;
        got->cached = UINT64_MAX;
        got->d = libdeflate_alloc_decompressor();
        got->out = malloc(sp->grain_bytes);
        if (!got->d || !got->out) {
            dctx_free(got);
            return NULL;
        }
    }
    if (got->in_cap < in_cap) {
        free(got->in);
        got->in = malloc(in_cap);
        got->in_cap = got->in ? in_cap : 0;
        if (!got->in) {
            dctx_free(got);
            return NULL;
        }
    }
    return got;
}

static void dctx_put(struct vmdk_sparse *sp, struct vmdk_dctx *c)
{
    struct vmdk_dpool *p = sp->dpool;
    pthread_mutex_lock(&p->lock);
    if (p->n_free < DPOOL_KEEP) {
        c->next = p->free_list;
        p->free_list = c;
        p->n_free++;
        c = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    dctx_free(c);
}

/* Worst case of deflate on a grain, plus the zlib wrapper and a margin:
 * what a marker's size may say before it is taken for garbage. */
static uint64_t max_compressed(const struct vmdk_sparse *sp)
{
    return sp->grain_bytes + sp->grain_bytes / 8 + 1024;
}

/* Inflate the grain at host into out (grain_bytes), zero-filling a short
 * one. */
static int inflate_grain(struct vmdk_sparse *sp, struct vmdk_dctx *c, uint64_t host, uint8_t *out,
                         struct scuse_err *err)
{
    uint64_t fsize = __atomic_load_n(&sp->file_size, __ATOMIC_ACQUIRE);
    uint64_t at = host, n;
    if (sp->markers) {
        uint8_t m[12];
        if (host + sizeof(m) > fsize)
            return err_set(err, -EINVAL, "'%s': grain marker at offset %" PRIu64 " lies past the "
                           "end of the file", sp->path, host);
        int r = file_pread_exact(sp->fd, m, sizeof(m), host);
        if (r < 0)
            return err_set(err, r, "'%s': cannot read the grain marker at offset %" PRIu64 ": %s",
                           sp->path, host, strerror(-r));
        n = vmdk_le32(m + 8);
        if (n == 0)
            return err_set(err, -EINVAL, "'%s': grain table entry points at a metadata marker "
                           "(offset %" PRIu64 "), not a grain", sp->path, host);
        if (n > max_compressed(sp))
            return err_set(err, -EINVAL, "'%s': grain marker at offset %" PRIu64 ": size %" PRIu64
                           " is larger than a compressed grain can be", sp->path, host, n);
        at += sizeof(m);
        if (n > fsize - at)
            return err_set(err, -EINVAL, "'%s': compressed grain at offset %" PRIu64 " (%" PRIu64
                           " bytes) runs past the end of the file", sp->path, host, n);
    } else {
        n = fsize - at;
        if (n > max_compressed(sp))
            n = max_compressed(sp);
    }
    int r = file_pread_exact(sp->fd, c->in, n, at);
    if (r < 0)
        return err_set(err, r, "'%s': cannot read the compressed grain at offset %" PRIu64 ": %s",
                       sp->path, host, strerror(-r));
    size_t in_used = 0, out_got = 0;
    enum libdeflate_result res = libdeflate_zlib_decompress_ex(c->d, c->in, n, out,
                                                                sp->grain_bytes, &in_used, &out_got);
    if (res != LIBDEFLATE_SUCCESS)
        return err_set(err, -EIO, "'%s': compressed grain at offset %" PRIu64 ": %s", sp->path,
                       host, res == LIBDEFLATE_INSUFFICIENT_SPACE
                                 ? "inflates to more than a grain" : "not a valid zlib stream");
    /* The last grain of a disk may be stored short. */
    memset(out + out_got, 0, sp->grain_bytes - out_got);
    return 0;
}

int vmdk_read_compressed(struct vmdk_sparse *sp, uint64_t host, uint64_t in_grain,
                         const struct iov_view *v, struct scuse_err *err)
{
    struct vmdk_dctx *c = dctx_get(sp, host, max_compressed(sp));
    if (!c)
        return err_set(err, -ENOMEM, "out of memory");
    int r = 0;
    /* A whole grain into one buffer (a conversion's reads): straight there. */
    uint8_t *direct = in_grain == 0 && v->len == sp->grain_bytes
                          ? iov_view_contig(v, 0, v->len) : NULL;
    if (direct && c->cached != host) {
        r = inflate_grain(sp, c, host, direct, err);
    } else {
        if (c->cached != host) {
            c->cached = UINT64_MAX;
            r = inflate_grain(sp, c, host, c->out, err);
            if (r == 0)
                c->cached = host;
        }
        if (r == 0)
            iov_view_from_buf(v, 0, c->out + in_grain, v->len);
    }
    dctx_put(sp, c);
    return r;
}
