/* The qcow2 header: every field is checked against the file before any
 * table is trusted, so later code may index tables without re-checking
 * what was validated here. Messages name the file and the field. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/file.h"
#include "qcow2/qcow2.h"

/* Everything the extensions told us, kept only during open. */
struct ext_info {
    const uint8_t *features;   /* feature-name table, 48-byte entries */
    uint32_t n_features;
    bool have_data_file;
};

/* Copy an on-disk name for a message, replacing unprintable bytes. */
static void printable(char *dst, size_t dsz, const uint8_t *src, size_t n)
{
    size_t i = 0;
    for (; i < n && i + 1 < dsz && src[i]; i++)
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? (char)src[i] : '?';
    dst[i] = '\0';
}

static const uint8_t *feature_name(const struct ext_info *x, uint8_t type, unsigned bit)
{
    for (uint32_t i = 0; i < x->n_features; i++) {
        const uint8_t *f = x->features + 48 * (size_t)i;
        if (f[0] == type && f[1] == bit)
            return f + 2;
    }
    return NULL;
}

static int refuse_unknown_incompat(struct blk_node *bs, uint64_t bits, const struct ext_info *x,
                                   struct scuse_err *err)
{
    char list[700] = "";
    size_t used = 0;
    int count = 0;
    for (unsigned b = 0; b < 64; b++) {
        if (!(bits >> b & 1))
            continue;
        char name[48] = "";
        const uint8_t *fn = feature_name(x, 0, b);
        if (fn)
            printable(name, sizeof(name), fn, 46);
        int n = snprintf(list + used, sizeof(list) - used, fn ? "%s%u (%s)" : "%s%u",
                         count ? ", " : "", b, name);
        if (n < 0 || (size_t)n >= sizeof(list) - used)
            break;
        used += (size_t)n;
        count++;
    }
    return err_set(err, -ENOTSUP, "'%s': unsupported incompatible feature bit%s %s",
                   bs->path, count > 1 ? "s" : "", list);
}

static char *dup_name(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/* Walk {type, len, data, pad8} records in [start, end) of the header
 * cluster, avail bytes of which were read from the file. */
static int read_extensions(struct blk_node *bs, struct qcow2_state *s, const uint8_t *h,
                           uint64_t avail, uint64_t start, uint64_t end, struct ext_info *x,
                           struct scuse_err *err)
{
    uint64_t off = start;
    while (off < end) {
        if (end - off < 8)
            return err_set(err, -EINVAL, "'%s': header extension at 0x%" PRIx64
                           " does not fit before 0x%" PRIx64, bs->path, off, end);
        if (off + 8 > avail)
            return err_set(err, -EINVAL, "'%s': header extension at 0x%" PRIx64
                           " is beyond the end of the file (size %" PRIu64 ")",
                           bs->path, off, s->file_size);
        uint32_t type = qcow2_be32(h + off), len = qcow2_be32(h + off + 4);
        off += 8;
        if (len > end - off)
            return err_set(err, -EINVAL, "'%s': header extension 0x%08x at 0x%" PRIx64
                           " is %u bytes long, more than the %" PRIu64 " bytes left in the header cluster",
                           bs->path, type, off - 8, len, end - off);
        if (off + len > avail)
            return err_set(err, -EINVAL, "'%s': header extension 0x%08x at 0x%" PRIx64
                           " runs past the end of the file (size %" PRIu64 ")",
                           bs->path, type, off - 8, s->file_size);
        const uint8_t *d = h + off;
        switch (type) {
        case QCOW2_EXT_END:
            return 0;
        case QCOW2_EXT_BACKING_FMT:
            if (len > QCOW2_MAX_BACKING_FMT)
                return err_set(err, -EINVAL, "'%s': backing format extension is %u bytes long "
                               "(at most %d)", bs->path, len, QCOW2_MAX_BACKING_FMT);
            if (memchr(d, 0, len))
                return err_set(err, -EINVAL, "'%s': backing format name contains a NUL byte",
                               bs->path);
            free(bs->backing_fmt);
            bs->backing_fmt = dup_name(d, len);
            if (!bs->backing_fmt)
                return err_set(err, -ENOMEM, "out of memory");
            break;
        case QCOW2_EXT_FEATURE_TABLE:
            x->features = d;
            x->n_features = len / 48;
            break;
        case QCOW2_EXT_DATA_FILE:
            if (len == 0 || memchr(d, 0, len))
                return err_set(err, -EINVAL, "'%s': data file name in the header extension is "
                               "empty or contains a NUL byte", bs->path);
            free(s->data_file_name);
            s->data_file_name = dup_name(d, len);
            if (!s->data_file_name)
                return err_set(err, -ENOMEM, "out of memory");
            x->have_data_file = true;
            break;
        default:
            break; /* bitmaps, crypto header, unknown: not needed to read */
        }
        off += ((uint64_t)len + 7) & ~7ull;
    }
    return 0;
}

static int check_table(struct blk_node *bs, struct qcow2_state *s, const char *field,
                       uint64_t off, uint64_t bytes, struct scuse_err *err)
{
    if (off & (s->cluster_size - 1))
        return err_set(err, -EINVAL, "'%s': %s 0x%" PRIx64 " is not aligned to the cluster size %u",
                       bs->path, field, off, s->cluster_size);
    if (bytes == 0)
        return 0;
    if (off >= s->file_size)
        return err_set(err, -EINVAL, "'%s': %s 0x%" PRIx64 " is beyond the end of the file (size %"
                       PRIu64 ")", bs->path, field, off, s->file_size);
    if (bytes > s->file_size - off)
        return err_set(err, -EINVAL, "'%s': table at %s 0x%" PRIx64 " (%" PRIu64 " bytes) extends "
                       "beyond the end of the file (size %" PRIu64 ")",
                       bs->path, field, off, bytes, s->file_size);
    return 0;
}

static int check_features(struct blk_node *bs, struct qcow2_state *s, const struct ext_info *x,
                          struct scuse_err *err)
{
    uint64_t unknown = s->incompat & ~QCOW2_INCOMPAT_KNOWN;
    if (unknown)
        return refuse_unknown_incompat(bs, unknown, x, err);
    /* A read-write open of a dirty image is the driver's decision
     * (refcounts are rebuilt first). */
    if (s->incompat & QCOW2_INCOMPAT_DIRTY)
        bs->dirty = true;
    if ((s->incompat & QCOW2_INCOMPAT_CORRUPT) && !bs->read_only && !bs->check_only)
        return err_set(err, -EACCES, "'%s': the image is marked corrupt (incompatible feature "
                       "bit 1); it can only be opened read-only", bs->path);
    if ((s->incompat & QCOW2_INCOMPAT_DATA_FILE) && !x->have_data_file)
        return err_set(err, -EINVAL, "'%s': the image uses an external data file (incompatible "
                       "feature bit 2) but does not name it (no data-file header extension)",
                       bs->path);
    bool ctype_bit = s->incompat & QCOW2_INCOMPAT_COMPRESSION;
    if (s->compression_type > QCOW2_COMPRESSION_ZSTD)
        return err_set(err, -ENOTSUP, "'%s': unsupported compression_type %u", bs->path,
                       s->compression_type);
    if (ctype_bit && s->compression_type == QCOW2_COMPRESSION_ZLIB)
        return err_set(err, -EINVAL, "'%s': incompatible feature bit 3 (compression type) is set "
                       "but compression_type is 0 (zlib)", bs->path);
    if (!ctype_bit && s->compression_type != QCOW2_COMPRESSION_ZLIB)
        return err_set(err, -EINVAL, "'%s': compression_type %u needs incompatible feature bit 3, "
                       "which is not set", bs->path, s->compression_type);
    s->ext_l2 = s->incompat & QCOW2_INCOMPAT_EXTL2;
    if (s->ext_l2 && s->cluster_bits < 14)
        return err_set(err, -EINVAL, "'%s': extended L2 entries need clusters of at least 16 KiB "
                       "(cluster_bits is %u)", bs->path, s->cluster_bits);
    return 0;
}

/* L1, refcount table and snapshot table fields. */
static int check_tables(struct blk_node *bs, struct qcow2_state *s, struct scuse_err *err)
{
    uint32_t cb = s->cluster_bits;
    uint64_t shift = cb + s->l2_bits;
    uint64_t need = s->size ? ((s->size - 1) >> shift) + 1 : 0;
    if (s->l1_size > QCOW2_MAX_L1_BYTES / 8)
        return err_set(err, -EINVAL, "'%s': l1_size %" PRIu64 " is too large (the limit is %u "
                       "entries, 32 MiB)", bs->path, s->l1_size, QCOW2_MAX_L1_BYTES / 8);
    if (need > QCOW2_MAX_L1_BYTES / 8)
        return err_set(err, -EFBIG, "'%s': virtual size %" PRIu64 " is too large for cluster size "
                       "%u (it needs an L1 table over 32 MiB)", bs->path, s->size, s->cluster_size);
    if (s->l1_size < need)
        return err_set(err, -EINVAL, "'%s': l1_size %" PRIu64 " is too small for size %" PRIu64
                       " (needs %" PRIu64 " entries)", bs->path, s->l1_size, s->size, need);
    /* Entries past what the virtual size needs are never read. */
    s->l1_loaded = need;
    int r = check_table(bs, s, "l1_table_offset", s->l1_offset, need * 8, err);
    if (r < 0)
        return r;

    if (s->refcount_table_clusters == 0)
        return err_set(err, -EINVAL, "'%s': refcount_table_clusters is 0", bs->path);
    if (s->refcount_table_clusters > (QCOW2_MAX_REFTABLE_BYTES >> cb))
        return err_set(err, -EINVAL, "'%s': refcount_table_clusters %u is too large (the limit "
                       "is 8 MiB, %u clusters)", bs->path, s->refcount_table_clusters,
                       QCOW2_MAX_REFTABLE_BYTES >> cb);
    r = check_table(bs, s, "refcount_table_offset", s->refcount_table_offset,
                    (uint64_t)s->refcount_table_clusters << cb, err);
    if (r < 0)
        return r;

    if (s->nb_snapshots > QCOW2_MAX_SNAPSHOTS)
        return err_set(err, -EINVAL, "'%s': nb_snapshots %u is too large (the limit is %d)",
                       bs->path, s->nb_snapshots, QCOW2_MAX_SNAPSHOTS);
    /* Entries are at least 40 bytes; snapshot.c bounds each one exactly. */
    return check_table(bs, s, "snapshots_offset", s->snapshots_offset,
                       (uint64_t)s->nb_snapshots * 40, err);
}

static int read_backing_name(struct blk_node *bs, struct qcow2_state *s, const uint8_t *h,
                             uint64_t avail, uint64_t boff, uint32_t blen, struct scuse_err *err)
{
    if (boff == 0 || blen == 0)
        return 0;
    if (blen > QCOW2_MAX_BACKING_NAME)
        return err_set(err, -EINVAL, "'%s': backing file name is %u bytes long; the limit is %d",
                       bs->path, blen, QCOW2_MAX_BACKING_NAME);
    if (boff > s->cluster_size || blen > s->cluster_size - boff)
        return err_set(err, -EINVAL, "'%s': backing file name at backing_file_offset 0x%" PRIx64
                       " (%u bytes) does not lie inside the header cluster (%u bytes)",
                       bs->path, boff, blen, s->cluster_size);
    if (boff + blen > avail)
        return err_set(err, -EINVAL, "'%s': backing file name at backing_file_offset 0x%" PRIx64
                       " (%u bytes) is beyond the end of the file (size %" PRIu64 ")",
                       bs->path, boff, blen, s->file_size);
    if (memchr(h + boff, 0, blen))
        return err_set(err, -EINVAL, "'%s': backing file name contains a NUL byte", bs->path);
    bs->backing_name = dup_name(h + boff, blen);
    if (!bs->backing_name)
        return err_set(err, -ENOMEM, "out of memory");
    return 0;
}

static int parse(struct blk_node *bs, struct qcow2_state *s, const uint8_t *h, uint64_t avail,
                 struct scuse_err *err)
{
    uint64_t boff = qcow2_be64(h + 8);
    uint32_t blen = qcow2_be32(h + 16);
    s->size = qcow2_be64(h + 24);
    uint32_t crypt = qcow2_be32(h + 32);
    s->l1_size = qcow2_be32(h + 36);
    s->l1_offset = qcow2_be64(h + 40);
    s->refcount_table_offset = qcow2_be64(h + 48);
    s->refcount_table_clusters = qcow2_be32(h + 56);
    s->nb_snapshots = qcow2_be32(h + 60);
    s->snapshots_offset = qcow2_be64(h + 64);
    s->refcount_order = 4;
    s->header_length = QCOW2_V2_HEADER_LEN;
    if (s->version >= 3) {
        s->incompat = qcow2_be64(h + 72);
        s->compat = qcow2_be64(h + 80);
        s->autoclear = qcow2_be64(h + 88);
        s->refcount_order = qcow2_be32(h + 96);
        s->header_length = qcow2_be32(h + 100);
        if (s->header_length < QCOW2_V3_HEADER_MIN || (s->header_length & 7))
            return err_set(err, -EINVAL, "'%s': header_length %u is invalid (at least %d and a "
                           "multiple of 8)", bs->path, s->header_length, QCOW2_V3_HEADER_MIN);
        if (s->header_length > s->cluster_size)
            return err_set(err, -EINVAL, "'%s': header_length %u exceeds the cluster size %u",
                           bs->path, s->header_length, s->cluster_size);
        if (s->header_length > avail)
            return err_set(err, -EINVAL, "'%s': the header (header_length %u) is truncated: the "
                           "file has %" PRIu64 " bytes", bs->path, s->header_length, s->file_size);
        if (s->header_length > 104)
            s->compression_type = h[104];
    }
    if (s->refcount_order > QCOW2_MAX_REFCOUNT_ORDER)
        return err_set(err, -EINVAL, "'%s': refcount_order %u is invalid (at most %d)", bs->path,
                       s->refcount_order, QCOW2_MAX_REFCOUNT_ORDER);
    if (crypt != 0)
        return err_set(err, -ENOTSUP, "'%s': encrypted images are not supported (crypt_method %u)",
                       bs->path, crypt);

    struct ext_info x = { 0 };
    uint64_t ext_end = boff ? boff : s->cluster_size;
    if (ext_end > s->cluster_size)
        ext_end = s->cluster_size;
    int r = read_extensions(bs, s, h, avail, s->header_length, ext_end, &x, err);
    if (r < 0)
        return r;
    r = check_features(bs, s, &x, err);
    if (r < 0)
        return r;
    s->sc_bits = s->ext_l2 ? s->cluster_bits - 5 : s->cluster_bits;
    s->l2_entry_shift = s->ext_l2 ? 4 : 3;
    s->l2_bits = s->cluster_bits - s->l2_entry_shift;
    r = check_tables(bs, s, err);
    if (r < 0)
        return r;
    return read_backing_name(bs, s, h, avail, boff, blen, err);
}

static int load_l1(struct blk_node *bs, struct qcow2_state *s, struct scuse_err *err)
{
    if (s->l1_loaded == 0)
        return 0;
    s->l1 = malloc(s->l1_loaded * 8);
    if (!s->l1)
        return err_set(err, -ENOMEM, "'%s': out of memory for the L1 table", bs->path);
    int r = file_pread_exact(s->fd, s->l1, s->l1_loaded * 8, s->l1_offset);
    if (r < 0)
        return err_set(err, r, "'%s': cannot read the L1 table at 0x%" PRIx64 ": %s", bs->path,
                       s->l1_offset, strerror(-r));
    for (uint64_t i = 0; i < s->l1_loaded; i++)
        s->l1[i] = qcow2_be64((const uint8_t *)&s->l1[i]);
    return 0;
}

int qcow2_read_header(struct blk_node *bs, struct qcow2_state *s, struct scuse_err *err)
{
    int r = file_size(bs->fd, &s->file_size);
    if (r < 0)
        return err_set(err, r, "'%s': cannot get size: %s", bs->path, strerror(-r));
    s->meta_end = s->file_size;
    uint8_t fixed[QCOW2_V2_HEADER_LEN];
    if (s->file_size < sizeof(fixed))
        return err_set(err, -EINVAL, "'%s': file is too short for a qcow2 header (%" PRIu64
                       " bytes)", bs->path, s->file_size);
    r = file_pread_exact(bs->fd, fixed, sizeof(fixed), 0);
    if (r < 0)
        return err_set(err, r, "'%s': cannot read the header: %s", bs->path, strerror(-r));
    if (qcow2_be32(fixed) != QCOW2_MAGIC)
        return err_set(err, -EINVAL, "'%s': not a qcow2 image (bad magic)", bs->path);
    s->version = qcow2_be32(fixed + 4);
    if (s->version != 2 && s->version != 3)
        return err_set(err, -ENOTSUP, "'%s': unsupported qcow2 version %u (2 and 3 are supported)",
                       bs->path, s->version);
    s->cluster_bits = qcow2_be32(fixed + 20);
    if (s->cluster_bits < QCOW2_MIN_CLUSTER_BITS || s->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
        return err_set(err, -EINVAL, "'%s': cluster_bits %u is out of range (%d..%d)", bs->path,
                       s->cluster_bits, QCOW2_MIN_CLUSTER_BITS, QCOW2_MAX_CLUSTER_BITS);
    s->cluster_size = 1u << s->cluster_bits;
    if (s->version >= 3 && s->file_size < QCOW2_V3_HEADER_MIN)
        return err_set(err, -EINVAL, "'%s': file is too short for a version 3 header (%" PRIu64
                       " bytes)", bs->path, s->file_size);

    /* Extensions and the backing name live in cluster 0. */
    uint64_t avail = s->file_size < s->cluster_size ? s->file_size : s->cluster_size;
    uint8_t *h = malloc(avail);
    if (!h)
        return err_set(err, -ENOMEM, "out of memory");
    r = file_pread_exact(bs->fd, h, avail, 0);
    if (r < 0) {
        free(h);
        return err_set(err, r, "'%s': cannot read the header cluster: %s", bs->path, strerror(-r));
    }
    r = parse(bs, s, h, avail, err);
    free(h);
    if (r < 0)
        return r;
    s->csize_shift = 70 - s->cluster_bits;
    s->csize_mask = (1ull << (s->cluster_bits - 8)) - 1;
    s->coffset_mask = (1ull << s->csize_shift) - 1;
    return load_l1(bs, s, err);
}

int qcow2_reload_tables(struct blk_node *bs, struct qcow2_state *s, struct scuse_err *err)
{
    uint8_t h[QCOW2_V2_HEADER_LEN];
    int r = file_size(bs->fd, &s->file_size);
    if (r == 0)
        r = file_pread_exact(bs->fd, h, sizeof(h), 0);
    if (r < 0)
        return err_set(err, r, "'%s': cannot re-read the header: %s", bs->path, strerror(-r));
    s->meta_end = s->file_size;
    s->l1_offset = qcow2_be64(h + 40);
    s->refcount_table_offset = qcow2_be64(h + 48);
    s->refcount_table_clusters = qcow2_be32(h + 56);
    if (qcow2_be32(h + 36) != s->l1_size)
        return err_set(err, -EINVAL, "'%s': l1_size changed while repairing", bs->path);
    r = check_tables(bs, s, err);
    if (r < 0)
        return r;
    free(s->l1);
    s->l1 = NULL;
    return load_l1(bs, s, err);
}

int qcow2_write_features(struct qcow2_state *s, uint64_t incompat, uint64_t autoclear)
{
    uint8_t f[24];
    qcow2_put_be64(f, incompat);
    qcow2_put_be64(f + 8, s->compat);
    qcow2_put_be64(f + 16, autoclear);
    int r = file_pwrite_exact(s->fd, f, sizeof(f), 72);
    if (r == 0)
        r = qcow2_sync(s);
    if (r < 0)
        return r;
    s->incompat = incompat;
    s->autoclear = autoclear;
    return 0;
}

int qcow2_open_data_file(struct blk_node *bs, struct qcow2_state *s, struct scuse_err *err)
{
    const char *name = s->data_file_name;
    char *path = NULL;
    if (name[0] == '/') {
        path = strdup(name);
    } else {
        /* Relative to the image's directory, as backing files are. */
        char *copy = strdup(bs->path);
        if (copy) {
            const char *dir = dirname(copy);
            if (strcmp(dir, ".") == 0)
                path = strdup(name);
            else if (asprintf(&path, "%s/%s", dir, name) < 0)
                path = NULL;
            free(copy);
        }
    }
    if (!path)
        return err_set(err, -ENOMEM, "out of memory");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        err_set(err, -e, "'%s': cannot open data file '%s': %s", bs->path, path, strerror(e));
        free(path);
        return -e;
    }
    free(path);
    s->data_fd = fd;
    return 0;
}
