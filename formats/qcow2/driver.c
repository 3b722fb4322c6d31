/* qcow2 driver vtable: open/close and `info`. The read path is in read.c,
 * header validation in header.c, the writer in write.c, zero.c and
 * flush.c (its state is set up by qcow2_writer_open). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qcow2/check.h"
#include "qcow2/qcow2.h"

#define L2_CACHE_DEFAULT_MAX (32u << 20)
#define L2_SLICE_MAX 4096u
#define DCTX_POOL_SIZE 4

/* Version 1 shares the magic and is another format (qcow); a file too
 * short to hold the version is claimed, so its error names the header. */
static int qcow2_probe(const struct blk_probe *p)
{
    if (p->head_len < 4 || qcow2_be32(p->head) != QCOW2_MAGIC)
        return 0;
    return p->head_len < 8 || qcow2_be32(p->head + 4) >= 2 ? 100 : 0;
}

static void state_free(struct qcow2_state *s, bool dpool_ready)
{
    if (!s)
        return;
    qcow2_writer_close(s);
    qcow2_l2c_destroy(&s->cache);
    if (dpool_ready) {
        qcow2_dpool_destroy(&s->dpool);
        qcow2_dcache_destroy(&s->dcache);
    }
    if (s->data_fd >= 0 && s->data_fd != s->fd)
        close(s->data_fd);
    free(s->l1);
    free(s->data_file_name);
    free(s);
}

/* Bytes of L2 slices that map the whole image, the default cache size. */
static uint64_t l2_coverage(const struct qcow2_state *s, uint32_t slice)
{
    uint64_t clusters = (s->size >> s->cluster_bits) + ((s->size & (s->cluster_size - 1)) != 0);
    uint64_t bytes = clusters << s->l2_entry_shift;
    return (bytes + slice - 1) / slice * slice;
}

/* A size-valued open option ("64k", "1M"), left alone when absent. */
static int open_size_opt(struct blk_node *bs, const char *key, uint64_t *out,
                         struct scuse_err *err)
{
    const char *v = blk_open_opt(bs, key);
    if (!v)
        return 0;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: break;
    }
    if (errno || end == v || *end || *v == '-' || n > (UINT64_MAX >> shift) || n == 0)
        return err_set(err, -EINVAL, "'%s': option %s: '%s' is not a size", bs->path, key, v);
    *out = (uint64_t)n << shift;
    return 0;
}

static int qcow2_open(struct blk_node *bs, struct scuse_err *err)
{
    struct qcow2_state *s = calloc(1, sizeof(*s));
    if (!s)
        return err_set(err, -ENOMEM, "out of memory");
    s->path = bs->path;
    s->fd = bs->fd;
    s->data_fd = bs->fd;
    s->no_flush = bs->no_flush;
    atomic_init(&s->io_errors_logged, 0);
    int r = qcow2_read_header(bs, s, err);
    if (r == 0 && (s->incompat & QCOW2_INCOMPAT_DATA_FILE))
        r = qcow2_open_data_file(bs, s, err);
    if (r < 0) {
        state_free(s, false);
        return r;
    }

    uint32_t slice = s->cluster_size < L2_SLICE_MAX ? s->cluster_size : L2_SLICE_MAX;
    uint64_t cover = l2_coverage(s, slice);
    uint64_t want = 0, dcache = QCOW2_DCACHE_DEFAULT;
    r = open_size_opt(bs, "l2-cache-size", &want, err);
    if (r == 0)
        r = open_size_opt(bs, "compressed-cache-size", &dcache, err);
    if (r < 0) {
        state_free(s, false);
        return r;
    }
    if (want == 0)
        want = cover < L2_CACHE_DEFAULT_MAX ? cover : L2_CACHE_DEFAULT_MAX;
    else if (want > cover)
        want = cover; /* more than the whole image's L2 tables is never used */
    r = qcow2_l2c_init(&s->cache, slice, want);
    if (r < 0) {
        state_free(s, false);
        return err_set(err, r, "'%s': cannot allocate the L2 cache", bs->path);
    }
    qcow2_dpool_init(&s->dpool, DCTX_POOL_SIZE);
    /* Its memory is only touched as clusters are cached (malloc of a large
     * block maps pages lazily), so images without compressed data pay nothing. */
    r = qcow2_dcache_init(&s->dcache, s->cluster_size, dcache);
    if (r < 0) {
        state_free(s, true);
        return err_set(err, r, "'%s': cannot allocate the decompressed-cluster cache", bs->path);
    }

    /* QEMU counts whole sectors; a ragged tail is not part of the disk. */
    bs->size = s->size & ~511ull;
    bs->cluster_size = s->cluster_size;
    bs->align = 1;
    /* Deallocated clusters read as zeros: unallocated in a standalone image,
     * zero clusters in a v3 overlay; a v2 overlay deallocates nothing. */
    bs->discard_zeroes = true;
    bs->max_transfer = 0;
    bs->state = s;
    if (!bs->read_only && !bs->check_only) {
        r = qcow2_writer_open(bs, s, err);
        if (r < 0) {
            bs->state = NULL;
            state_free(s, true);
            return r;
        }
    }
    return 0;
}

static void qcow2_close(struct blk_node *bs)
{
    state_free(bs->state, true);
    bs->state = NULL;
}

static void add_item(struct blk_info *info, const char *key, const char *label,
                     enum blk_info_kind kind, const char *str, bool b, int64_t i)
{
    if (info->n_items >= BLK_INFO_MAX_ITEMS)
        return;
    struct blk_info_item *it = &info->item[info->n_items++];
    it->key = key;
    it->label = label;
    it->kind = kind;
    it->s = str;
    it->b = b;
    it->i = i;
}

/* Keys and order as qemu-img prints format-specific data. */
static int qcow2_info(struct blk_node *bs, struct blk_info *info, struct scuse_err *err)
{
    struct qcow2_state *s = bs->state;
    const char *ctype = s->compression_type == QCOW2_COMPRESSION_ZSTD ? "zstd" : "zlib";
    int64_t refcount_bits = (int64_t)1 << s->refcount_order;
    if (s->version < 3) {
        add_item(info, "compat", "compat", BLK_INFO_STR, "0.10", false, 0);
        add_item(info, "compression-type", "compression type", BLK_INFO_STR, ctype, false, 0);
        add_item(info, "refcount-bits", "refcount bits", BLK_INFO_INT, NULL, false, refcount_bits);
    } else {
        add_item(info, "compat", "compat", BLK_INFO_STR, "1.1", false, 0);
        add_item(info, "compression-type", "compression type", BLK_INFO_STR, ctype, false, 0);
        add_item(info, "lazy-refcounts", "lazy refcounts", BLK_INFO_BOOL, NULL,
                 s->compat & QCOW2_COMPAT_LAZY_REFCOUNTS, 0);
        add_item(info, "refcount-bits", "refcount bits", BLK_INFO_INT, NULL, false, refcount_bits);
        if (s->data_file_name)
            add_item(info, "data-file", "data file", BLK_INFO_STR, s->data_file_name, false, 0);
        if (s->incompat & QCOW2_INCOMPAT_DATA_FILE)
            add_item(info, "data-file-raw", "data file raw", BLK_INFO_BOOL, NULL,
                     s->autoclear & QCOW2_AUTOCLEAR_DATA_FILE_RAW, 0);
        add_item(info, "corrupt", "corrupt", BLK_INFO_BOOL, NULL,
                 s->incompat & QCOW2_INCOMPAT_CORRUPT, 0);
        add_item(info, "extended-l2", "extended l2", BLK_INFO_BOOL, NULL, s->ext_l2, 0);
    }
    int r = qcow2_read_snapshots(s, &info->snapshots, &info->n_snapshots);
    return r < 0 ? err_set(err, r, "'%s': cannot read the snapshot table: %s", s->path,
                           strerror(-r)) : 0;
}

static const struct blk_opt_desc qcow2_create_opts[] = {
    { "cluster_size", BLK_OPT_SIZE, "qcow2 cluster size (512 to 2M, a power of two)" },
    { "compat", BLK_OPT_STR, "Compatibility level (v2 [0.10] or v3 [1.1])" },
    { "compression_type", BLK_OPT_STR, "Compression method for compressed clusters (zlib, zstd)" },
    { "extended_l2", BLK_OPT_BOOL, "Extended L2 tables (32 subclusters per cluster)" },
    { "lazy_refcounts", BLK_OPT_BOOL, "Postpone refcount updates" },
    { "preallocation", BLK_OPT_STR, "Preallocation mode (allowed values: off, metadata, falloc, full)" },
    { "refcount_bits", BLK_OPT_NUM, "Width of a reference count entry in bits" },
    /* Refused by the driver with its reason; not listed in -o help. */
    { "data_file", BLK_OPT_REFUSED, "External data files are not supported" },
    { "data_file_raw", BLK_OPT_REFUSED, "External data files are not supported" },
    { "encryption", BLK_OPT_REFUSED, "Encrypted images are not supported" },
    { "encrypt.format", BLK_OPT_REFUSED, "Encrypted images are not supported" },
    { NULL, 0, NULL },
};

static const struct blk_opt_desc qcow2_open_opts[] = {
    { "l2-cache-size", BLK_OPT_SIZE, "Bytes of L2 table cache (default: enough for the whole image, at most 32M)" },
    { "compressed-cache-size", BLK_OPT_SIZE, "Bytes of decompressed-cluster cache (default 8M)" },
    { NULL, 0, NULL },
};

const struct blk_driver blk_driver_qcow2 = {
    .name = "qcow2",
    .description = "QEMU copy-on-write v2/v3",
    .caps = BLK_DRV_BACKING,
    .create_opts = qcow2_create_opts,
    .open_opts = qcow2_open_opts,
    .probe = qcow2_probe,
    .open = qcow2_open,
    .close = qcow2_close,
    .preadv = qcow2_preadv,
    .block_status = qcow2_block_status,
    .info = qcow2_info,
    .pwritev = qcow2_pwritev,
    .write_zeroes = qcow2_write_zeroes,
    .discard = qcow2_discard,
    .flush = qcow2_flush,
    .meta_pending = qcow2_meta_pending,
    .create = qcow2_create,
    .check = qcow2_check,
    .write_compressed = qcow2_write_compressed,
};
