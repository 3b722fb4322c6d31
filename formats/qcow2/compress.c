/* Compressed cluster writes (convert -c), in QEMU's packed layout: each
 * cluster is compressed (raw deflate or a zstd frame) in the caller's
 * thread, then, under one lock, its bytes are placed right after the
 * previous compressed cluster's, byte-granular, every host cluster they
 * touch gaining one reference, and the L2 entry gets the descriptor
 * (offset in bits 0..x-1, additional 512-byte sectors in x..61, bit 62).
 * Output that does not fit in cluster_size - 1 bytes is stored as a
 * normal cluster.
 *
 * Metadata goes straight to the file through refdirect.c (new clusters
 * and refcount blocks at the end of the file, refcounts before the L2
 * entry that references them, a new L2 table zeroed before the L1 entry
 * points at it). The caller must not mix these writes with the writer's
 * cached ones on the same open image (convert -c only writes this way). */
#define _GNU_SOURCE
#include <errno.h>
#include <libdeflate.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>

#include "io/file.h"
#include "qcow2/check.h"

#define DEFLATE_LEVEL 6
#define ZSTD_LEVEL 3
#define SLOTS 4

/* Compression contexts, reused across calls and threads. */
struct cctx {
    struct libdeflate_compressor *deflate;
    ZSTD_CCtx *zstd;
    struct cctx *next;
};

/* Per image: refcounts and where the next compressed bytes go. */
struct packer {
    const struct qcow2_state *s;
    dev_t dev;
    ino_t ino;
    struct qcow2_rd rd;
    bool rd_loaded;
    uint64_t next;           /* end of the last compressed data, 0 = none */
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cctx *pool;
static pthread_mutex_t place_lock = PTHREAD_MUTEX_INITIALIZER;
static struct packer packers[SLOTS];
static unsigned packer_victim;

static struct cctx *cctx_get(bool zstd)
{
    pthread_mutex_lock(&pool_lock);
    struct cctx **pp = &pool;
    while (*pp && (zstd ? !(*pp)->zstd : !(*pp)->deflate))
        pp = &(*pp)->next;
    struct cctx *c = *pp;
    if (c)
        *pp = c->next;
    pthread_mutex_unlock(&pool_lock);
    if (c)
        return c;
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (zstd)
        c->zstd = ZSTD_createCCtx();
    else
        c->deflate = libdeflate_alloc_compressor(DEFLATE_LEVEL);
    if (!c->zstd && !c->deflate) {
        free(c);
        return NULL;
    }
    return c;
}

static void cctx_put(struct cctx *c)
{
    pthread_mutex_lock(&pool_lock);
    c->next = pool;
    pool = c;
    pthread_mutex_unlock(&pool_lock);
}

/* Compressed size, or 0 when it would not be smaller than a cluster. */
static size_t compress(const struct qcow2_state *s, const void *in, size_t len, void *out)
{
    bool zstd = s->compression_type == QCOW2_COMPRESSION_ZSTD;
    struct cctx *c = cctx_get(zstd);
    if (!c)
        return 0;
    size_t cap = s->cluster_size - 1, n;
    if (zstd) {
        n = ZSTD_compressCCtx(c->zstd, out, cap, in, len, ZSTD_LEVEL);
        if (ZSTD_isError(n))
            n = 0;
    } else {
        n = libdeflate_deflate_compress(c->deflate, in, len, out, cap);
    }
    cctx_put(c);
    return n;
}

static struct packer *packer_for(struct qcow2_state *s, int *err)
{
    struct stat st;
    if (fstat(s->fd, &st) < 0) {
        *err = -errno;
        return NULL;
    }
    struct packer *p = NULL;
    for (unsigned i = 0; i < SLOTS && !p; i++)
        if (packers[i].s == s && packers[i].dev == st.st_dev && packers[i].ino == st.st_ino)
            p = &packers[i];
    if (!p) {
        p = &packers[packer_victim++ % SLOTS];
        if (p->rd_loaded)
            qcow2_rd_close(&p->rd);
        memset(p, 0, sizeof(*p));
        p->s = s;
        p->dev = st.st_dev;
        p->ino = st.st_ino;
    }
    /* Someone else moved the refcount table or grew the file: start over. */
    if (p->rd_loaded && (p->rd.fd != s->fd || p->rd.table_offset != s->refcount_table_offset ||
                         p->rd.table_clusters != s->refcount_table_clusters ||
                         p->rd.file_size != (uint64_t)st.st_size)) {
        qcow2_rd_close(&p->rd);
        p->rd_loaded = false;
    }
    if (!p->rd_loaded) {
        *err = qcow2_rd_open(&p->rd, s);
        if (*err < 0)
            return NULL;
        p->rd_loaded = true;
        p->next = 0;
    }
    return p;
}

/* count whole clusters from the end of the file, refcount 1 each. */
static int alloc_clusters(struct packer *p, struct qcow2_state *s, uint64_t count, uint64_t *first)
{
    struct qcow2_rd *rd = &p->rd;
    uint64_t c = (rd->file_size + rd->cluster_size - 1) >> rd->cluster_bits;
    for (uint64_t i = 0; i < count;) {
        uint64_t v;
        int r = qcow2_rd_get(rd, c + i, &v);
        if (r < 0)
            return r;
        if (v) { /* stray refcount past the end: skip it */
            c += i + 1;
            i = 0;
            continue;
        }
        i++;
    }
    /* Reserve the range first so new refcount blocks go after it. */
    rd->file_size = (c + count) << rd->cluster_bits;
    for (uint64_t i = 0; i < count; i++) {
        int r = qcow2_rd_set(rd, s, c + i, 1);
        if (r < 0)
            return r;
    }
    *first = c;
    return 0;
}

static int add_ref(struct packer *p, struct qcow2_state *s, uint64_t k)
{
    uint64_t v;
    int r = qcow2_rd_get(&p->rd, k, &v);
    if (r == 0 && v == 0)
        r = -EIO; /* the packing cluster must be ours */
    return r < 0 ? r : qcow2_rd_set(&p->rd, s, k, v + 1);
}

/* Host bytes [*off, *off + len) for compressed data, packed after the
 * previous compressed cluster when that still ends the file. */
static int place_bytes(struct packer *p, struct qcow2_state *s, size_t len, uint64_t *off)
{
    uint64_t cs = s->cluster_size;
    uint64_t start = p->next;
    bool pack = start && (start & (cs - 1)) && start == p->rd.file_size;
    uint64_t first_new, need, refs = 0;
    int r;
    if (pack && (r = qcow2_rd_get(&p->rd, start >> s->cluster_bits, &refs)) < 0)
        return r;
    if (refs >= p->rd.max)
        pack = false; /* a full refcount (1-bit refcounts, say): start a new cluster */
    if (pack) {
        uint64_t room = cs - (start & (cs - 1));
        r = add_ref(p, s, start >> s->cluster_bits);
        need = len > room ? (len - room + cs - 1) / cs : 0;
        if (r == 0 && need) {
            r = alloc_clusters(p, s, need, &first_new);
            if (r == 0 && first_new != (start >> s->cluster_bits) + 1)
                r = -EIO; /* something came between: cannot happen at the end of the file */
        }
    } else {
        need = (len + cs - 1) / cs;
        r = alloc_clusters(p, s, need, &first_new);
        start = first_new * cs;
    }
    if (r < 0)
        return r;
    *off = start;
    return 0;
}

/* The L2 table offset for guest offset off, allocating a zeroed table. */
static int l2_table(struct packer *p, struct qcow2_state *s, uint64_t off, uint64_t *l2_off)
{
    uint64_t l1i = off >> (s->cluster_bits + s->l2_bits);
    if (l1i >= s->l1_loaded)
        return -EINVAL;
    uint64_t e = __atomic_load_n(&s->l1[l1i], __ATOMIC_ACQUIRE);
    if (e & QCOW2_L1E_OFFSET_MASK) {
        if (!(e & QCOW2_OFLAG_COPIED))
            return -ENOTSUP; /* shared with a snapshot: copy-on-write is the writer's */
        *l2_off = e & QCOW2_L1E_OFFSET_MASK;
        return 0;
    }
    uint64_t c;
    int r = alloc_clusters(p, s, 1, &c);
    uint8_t *zero = r == 0 ? calloc(1, s->cluster_size) : NULL;
    if (r == 0 && !zero)
        r = -ENOMEM;
    if (r == 0)
        r = file_pwrite_exact(s->fd, zero, s->cluster_size, c << s->cluster_bits);
    free(zero);
    if (r < 0)
        return r;
    uint64_t ne = (c << s->cluster_bits) | QCOW2_OFLAG_COPIED;
    uint8_t b[8];
    qcow2_wbe64(b, ne);
    r = file_pwrite_exact(s->fd, b, 8, s->l1_offset + 8 * l1i);
    if (r < 0)
        return r;
    __atomic_store_n(&s->l1[l1i], ne, __ATOMIC_RELEASE);
    *l2_off = c << s->cluster_bits;
    return 0;
}

static int place(struct qcow2_state *s, uint64_t off, const void *data, size_t len, bool compressed)
{
    int r = 0;
    struct packer *p = packer_for(s, &r);
    if (!p)
        return r;
    uint64_t l2_off;
    r = l2_table(p, s, off, &l2_off);
    if (r < 0)
        return r;
    uint32_t esz = 1u << s->l2_entry_shift;
    uint64_t epos = l2_off + ((off >> s->cluster_bits) & ((1ull << s->l2_bits) - 1)) * esz;
    uint8_t ent[16];
    r = qcow2_pread_zf(s->fd, ent, esz, epos);
    if (r < 0)
        return r;
    if (qcow2_be64(ent) || (esz == 16 && qcow2_be64(ent + 8)))
        return -ENOTSUP; /* only unallocated clusters are written compressed */
    uint64_t host, desc;
    if (compressed) {
        r = place_bytes(p, s, len, &host);
        uint64_t extra = ((host + len - 1) >> 9) - (host >> 9);
        desc = QCOW2_OFLAG_COMPRESSED | (extra << s->csize_shift) | host;
    } else {
        uint64_t c;
        r = alloc_clusters(p, s, 1, &c);
        host = c << s->cluster_bits;
        desc = host | QCOW2_OFLAG_COPIED;
    }
    if (r == 0)
        r = file_pwrite_exact(s->fd, data, len, host);
    /* The file now ends after these bytes, or after refcount blocks that
     * had to be added: packing continues only in the first case. */
    if (r == 0)
        r = file_size(s->fd, &p->rd.file_size);
    if (r < 0)
        return r;
    p->next = compressed ? host + len : 0;
    s->file_size = p->rd.file_size;
    qcow2_wbe64(ent, desc);
    if (esz == 16)
        qcow2_wbe64(ent + 8, compressed ? 0 : 0xffffffffull);
    return file_pwrite_exact(s->fd, ent, esz, epos);
}

int qcow2_write_compressed(struct blk_node *bs, uint64_t off, const struct iov_view *v)
{
    struct qcow2_state *s = bs->state;
    uint64_t cs = s->cluster_size;
    if (bs->read_only)
        return -EROFS;
    if ((off & (cs - 1)) || v->len == 0 || v->len > cs ||
        (v->len < cs && off + v->len != bs->size))
        return -EINVAL;
    if (s->data_fd != s->fd)
        return -ENOTSUP;
    uint8_t *in = calloc(1, cs), *out = malloc(cs);
    int r = (in && out) ? 0 : -ENOMEM;
    if (r == 0) {
        iov_view_to_buf(v, 0, in, v->len); /* a short last cluster is padded with zeros */
        size_t n = compress(s, in, cs, out);
        pthread_mutex_lock(&place_lock);
        r = n ? place(s, off, out, n, true) : place(s, off, in, cs, false);
        pthread_mutex_unlock(&place_lock);
    }
    free(in);
    free(out);
    return r;
}
