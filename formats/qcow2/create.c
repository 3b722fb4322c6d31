/* qcow2 create: qemu-img create's options and QEMU's layout. Cluster 0
 * holds the header, the extensions (backing format, feature names) and
 * the backing file name; then come the refcount table, the refcount
 * blocks and the L1 table, and with preallocation each L2 table followed
 * by the data clusters it maps. Every cluster written has refcount 1. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/file.h"
#include "qcow2/check.h"

#define V3_HEADER_LEN 112
#define FEATURE_ENTRY 48

enum prealloc { PREALLOC_OFF, PREALLOC_METADATA, PREALLOC_FALLOC, PREALLOC_FULL };

struct create_params {
    uint32_t version;
    uint32_t cluster_bits;
    uint32_t refcount_order;
    bool ext_l2, lazy, zstd;
    enum prealloc prealloc;
};

/* Per-cluster-index layout, in clusters. */
struct layout {
    uint64_t cs;
    uint64_t table_at, table_n;   /* refcount table */
    uint64_t blocks_at, blocks_n; /* refcount blocks */
    uint64_t l1_at, l1_n, l1_entries;
    uint64_t l2_entries;          /* entries per L2 table */
    uint64_t data_clusters;       /* preallocated guest clusters */
    uint64_t total;               /* clusters in the file */
};

static const struct { uint8_t type, bit; const char *name; } features[] = {
    { 0, 0, "dirty bit" },
    { 0, 1, "corrupt bit" },
    { 0, 2, "external data file" },
    { 0, 3, "compression type" },
    { 0, 4, "extended L2 entries" },
    { 1, 0, "lazy refcounts" },
    { 2, 0, "bitmaps" },
    { 2, 1, "raw external data" },
};

static int parse_bool(const char *path, const char *key, const char *v, bool *out,
                      struct scuse_err *err)
{
    if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true")) {
        *out = true;
    } else if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false")) {
        *out = false;
    } else {
        return err_set(err, -EINVAL, "'%s': option '%s' takes 'on' or 'off', not '%s'", path, key, v);
    }
    return 0;
}

/* "65536", "64k", "2M": bytes (binary suffixes, as qemu-img). */
static int parse_bytes(const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v || *v == '-')
        return -EINVAL;
    unsigned shift = 0;
    switch (*end) {
    case '\0': break;
    case 'b': case 'B': shift = 0; end++; break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default: return -EINVAL;
    }
    if (*end || (shift && n > (UINT64_MAX >> shift)))
        return -EINVAL;
    *out = (uint64_t)n << shift;
    return 0;
}

static int parse_params(const char *path, const struct blk_create_opts *o, struct create_params *p,
                        struct scuse_err *err)
{
    uint64_t cluster_size = 65536, refcount_bits = 16;
    bool have_refbits = false;
    *p = (struct create_params){ .version = 3, .prealloc = PREALLOC_OFF };
    for (int i = 0; i < o->o.n; i++) {
        const char *k = o->o.kv[i].key, *v = o->o.kv[i].val;
        int r = 0;
        if (!strcmp(k, "cluster_size")) {
            if (parse_bytes(v, &cluster_size) < 0)
                return err_set(err, -EINVAL, "'%s': invalid cluster_size '%s'", path, v);
        } else if (!strcmp(k, "compat")) {
            if (!strcmp(v, "0.10") || !strcmp(v, "v2"))
                p->version = 2;
            else if (!strcmp(v, "1.1") || !strcmp(v, "v3"))
                p->version = 3;
            else
                return err_set(err, -EINVAL, "'%s': compat must be 0.10 (v2) or 1.1 (v3), not '%s'",
                               path, v);
        } else if (!strcmp(k, "refcount_bits")) {
            char *end;
            errno = 0;
            refcount_bits = strtoull(v, &end, 10);
            if (errno || end == v || *end || *v == '-')
                return err_set(err, -EINVAL, "'%s': invalid refcount_bits '%s'", path, v);
            have_refbits = true;
        } else if (!strcmp(k, "extended_l2")) {
            r = parse_bool(path, k, v, &p->ext_l2, err);
        } else if (!strcmp(k, "lazy_refcounts")) {
            r = parse_bool(path, k, v, &p->lazy, err);
        } else if (!strcmp(k, "compression_type")) {
            if (strcmp(v, "zlib") && strcmp(v, "zstd"))
                return err_set(err, -EINVAL, "'%s': compression_type must be zlib or zstd, not '%s'",
                               path, v);
            p->zstd = !strcmp(v, "zstd");
        } else if (!strcmp(k, "preallocation")) {
            static const char *const names[] = { "off", "metadata", "falloc", "full" };
            int m = 0;
            while (m < 4 && strcmp(v, names[m]))
                m++;
            if (m == 4)
                return err_set(err, -EINVAL, "'%s': preallocation must be off, metadata, falloc or "
                               "full, not '%s'", path, v);
            p->prealloc = (enum prealloc)m;
        } else if (!strcmp(k, "data_file") || !strcmp(k, "data_file_raw")) {
            return err_set(err, -EINVAL, "'%s': option '%s': creating images with an external "
                           "data file is not supported", path, k);
        } else if (!strcmp(k, "encryption") || !strncmp(k, "encrypt.", 8)) {
            return err_set(err, -EINVAL, "'%s': option '%s': encrypted images are not supported",
                           path, k);
        } else {
            return err_set(err, -EINVAL, "'%s': qcow2 images have no option '%s'", path, k);
        }
        if (r < 0)
            return r;
    }
    if (cluster_size < 512 || cluster_size > (2u << 20) || (cluster_size & (cluster_size - 1)))
        return err_set(err, -EINVAL, "'%s': cluster_size must be a power of two between 512 and "
                       "2M, not %" PRIu64, path, cluster_size);
    p->cluster_bits = (uint32_t)__builtin_ctzll(cluster_size);
    if (refcount_bits < 1 || refcount_bits > 64 || (refcount_bits & (refcount_bits - 1)))
        return err_set(err, -EINVAL, "'%s': refcount_bits must be a power of two from 1 to 64, "
                       "not %" PRIu64, path, refcount_bits);
    p->refcount_order = (uint32_t)__builtin_ctzll(refcount_bits);
    if (p->version == 2) {
        const char *what = have_refbits && refcount_bits != 16 ? "refcount_bits other than 16"
                           : p->ext_l2 ? "extended_l2" : p->lazy ? "lazy_refcounts"
                           : p->zstd ? "compression_type=zstd" : NULL;
        if (what)
            return err_set(err, -EINVAL, "'%s': %s needs compat=1.1 (v3)", path, what);
    }
    if (p->ext_l2 && cluster_size < 16384)
        return err_set(err, -EINVAL, "'%s': extended_l2 needs a cluster_size of at least 16k", path);
    if (o->backing_file && p->prealloc != PREALLOC_OFF && !p->ext_l2)
        return err_set(err, -EINVAL, "'%s': a backing file and preallocation can only be used "
                       "together with extended_l2=on", path);
    return 0;
}

static uint64_t div_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

static int plan(const char *path, const struct create_params *p, uint64_t size, struct layout *l,
                struct scuse_err *err)
{
    uint64_t cs = 1ull << p->cluster_bits;
    memset(l, 0, sizeof(*l));
    l->cs = cs;
    l->l2_entries = cs >> (p->ext_l2 ? 4 : 3);
    l->l1_entries = div_up(div_up(size, cs), l->l2_entries);
    if (l->l1_entries > QCOW2_MAX_L1_BYTES / 8)
        return err_set(err, -EINVAL, "'%s': size %" PRIu64 " is too large for cluster_size %" PRIu64
                       " (the L1 table would exceed 32 MiB); use a larger cluster_size",
                       path, size, cs);
    l->l1_n = div_up(l->l1_entries * 8, cs);
    if (p->prealloc != PREALLOC_OFF)
        l->data_clusters = div_up(size, cs);
    uint64_t epb = (cs * 8) >> p->refcount_order;
    uint64_t fixed = 1 + l->l1_n + (p->prealloc != PREALLOC_OFF ? l->l1_entries : 0) + l->data_clusters;
    uint64_t nb = 1, nt = 1;
    for (;;) {
        uint64_t nb2 = div_up(fixed + nb + nt, epb), nt2 = div_up(nb2 * 8, cs);
        if (nb2 == nb && nt2 == nt)
            break;
        nb = nb2;
        nt = nt2;
    }
    if (nt * cs > QCOW2_MAX_REFTABLE_BYTES)
        return err_set(err, -EINVAL, "'%s': size %" PRIu64 " needs a refcount table over 8 MiB "
                       "with cluster_size %" PRIu64 "; use a larger cluster_size", path, size, cs);
    l->table_at = 1;
    l->table_n = nt;
    l->blocks_at = 1 + nt;
    l->blocks_n = nb;
    l->l1_at = l->blocks_at + nb;
    l->total = fixed + nb + nt;
    return 0;
}

static void put_ext(uint8_t *h, size_t *pos, uint32_t type, const void *data, uint32_t len)
{
    qcow2_wbe32(h + *pos, type);
    qcow2_wbe32(h + *pos + 4, len);
    memcpy(h + *pos + 8, data, len);
    *pos += 8 + ((len + 7u) & ~7u);
}

/* Cluster 0. */
static int build_header(const char *path, const struct create_params *p, const struct layout *l,
                        uint64_t size, const struct blk_create_opts *o, uint8_t *h,
                        struct scuse_err *err)
{
    qcow2_wbe32(h, QCOW2_MAGIC);
    qcow2_wbe32(h + 4, p->version);
    qcow2_wbe32(h + 20, p->cluster_bits);
    qcow2_wbe64(h + 24, size);
    qcow2_wbe32(h + 36, (uint32_t)l->l1_entries);
    qcow2_wbe64(h + 40, l->l1_entries ? l->l1_at * l->cs : 0);
    qcow2_wbe64(h + 48, l->table_at * l->cs);
    qcow2_wbe32(h + 56, (uint32_t)l->table_n);
    size_t pos = QCOW2_V2_HEADER_LEN;
    if (p->version >= 3) {
        uint64_t incompat = (p->zstd ? QCOW2_INCOMPAT_COMPRESSION : 0) |
                            (p->ext_l2 ? QCOW2_INCOMPAT_EXTL2 : 0);
        qcow2_wbe64(h + 72, incompat);
        qcow2_wbe64(h + 80, p->lazy ? QCOW2_COMPAT_LAZY_REFCOUNTS : 0);
        qcow2_wbe32(h + 96, p->refcount_order);
        qcow2_wbe32(h + 100, V3_HEADER_LEN);
        h[104] = p->zstd ? QCOW2_COMPRESSION_ZSTD : QCOW2_COMPRESSION_ZLIB;
        pos = V3_HEADER_LEN;
    }
    size_t name_len = o->backing_file ? strlen(o->backing_file) : 0;
    size_t fmt_len = o->backing_fmt ? strlen(o->backing_fmt) : 0;
    if (name_len > QCOW2_MAX_BACKING_NAME)
        return err_set(err, -EINVAL, "'%s': backing file name is %zu bytes long; the limit is %d",
                       path, name_len, QCOW2_MAX_BACKING_NAME);
    if (o->backing_file && name_len == 0)
        return err_set(err, -EINVAL, "'%s': backing file name is empty", path);
    if (fmt_len > QCOW2_MAX_BACKING_FMT)
        return err_set(err, -EINVAL, "'%s': backing format name '%s' is longer than %d bytes",
                       path, o->backing_fmt, QCOW2_MAX_BACKING_FMT);
    bool ftable = p->version >= 3 && l->cs > 4096;
    size_t need = pos + (fmt_len ? 8 + ((fmt_len + 7) & ~7u) : 0) +
                  (ftable ? 8 + sizeof(features) / sizeof(features[0]) * FEATURE_ENTRY : 0) + 8 +
                  name_len;
    if (need > l->cs)
        return err_set(err, -EINVAL, "'%s': the backing file name (%zu bytes) does not fit in the "
                       "header cluster of %" PRIu64 " bytes; use a larger cluster_size",
                       path, name_len, l->cs);
    if (fmt_len && o->backing_file)
        put_ext(h, &pos, QCOW2_EXT_BACKING_FMT, o->backing_fmt, (uint32_t)fmt_len);
    if (ftable) {
        uint8_t t[sizeof(features) / sizeof(features[0]) * FEATURE_ENTRY];
        memset(t, 0, sizeof(t));
        for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++) {
            t[i * FEATURE_ENTRY] = features[i].type;
            t[i * FEATURE_ENTRY + 1] = features[i].bit;
            memcpy(t + i * FEATURE_ENTRY + 2, features[i].name, strlen(features[i].name));
        }
        put_ext(h, &pos, QCOW2_EXT_FEATURE_TABLE, t, sizeof(t));
    }
    pos += 8; /* end of extensions */
    if (name_len) {
        qcow2_wbe64(h + 8, pos);
        qcow2_wbe32(h + 16, (uint32_t)name_len);
        memcpy(h + pos, o->backing_file, name_len);
    }
    return 0;
}

/* Host cluster of L2 table i and of guest cluster g (preallocated). */
static uint64_t l2_cluster(const struct layout *l, uint64_t i)
{
    return l->l1_at + l->l1_n + i * (l->l2_entries + 1);
}

static uint64_t data_cluster(const struct layout *l, uint64_t g)
{
    return l2_cluster(l, g / l->l2_entries) + 1 + g % l->l2_entries;
}

static int write_tables(int fd, const struct create_params *p, const struct layout *l)
{
    uint64_t cs = l->cs;
    uint64_t epb = (cs * 8) >> p->refcount_order;
    uint8_t *buf = calloc(1, cs);
    int r = buf ? 0 : -ENOMEM;
    /* Refcount table: one entry per block. */
    for (uint64_t c = 0; c < l->table_n && r == 0; c++) {
        memset(buf, 0, cs);
        for (uint64_t e = 0; e < cs / 8; e++) {
            uint64_t b = c * (cs / 8) + e;
            if (b < l->blocks_n)
                qcow2_wbe64(buf + 8 * e, (l->blocks_at + b) * cs);
        }
        r = file_pwrite_exact(fd, buf, cs, (l->table_at + c) * cs);
    }
    /* Refcount blocks: clusters [0, total) are in use. */
    for (uint64_t b = 0; b < l->blocks_n && r == 0; b++) {
        memset(buf, 0, cs);
        for (uint64_t e = 0; e < epb && b * epb + e < l->total; e++)
            qcow2_rd_set_entry(buf, p->refcount_order, e, 1);
        r = file_pwrite_exact(fd, buf, cs, (l->blocks_at + b) * cs);
    }
    /* L1 (written only as far as its entries reach, as QEMU does). */
    bool pre = p->prealloc != PREALLOC_OFF;
    for (uint64_t c = 0; c < l->l1_n && r == 0; c++) {
        memset(buf, 0, cs);
        uint64_t n = 0;
        for (; n < cs / 8 && c * (cs / 8) + n < l->l1_entries; n++)
            if (pre)
                qcow2_wbe64(buf + 8 * n, (l2_cluster(l, c * (cs / 8) + n) * cs) | QCOW2_OFLAG_COPIED);
        r = file_pwrite_exact(fd, buf, pre ? cs : n * 8, (l->l1_at + c) * cs);
    }
    /* L2 tables mapping every guest cluster to its preallocated one. */
    for (uint64_t i = 0; pre && i < l->l1_entries && r == 0; i++) {
        memset(buf, 0, cs);
        for (uint64_t e = 0; e < l->l2_entries; e++) {
            uint64_t g = i * l->l2_entries + e;
            if (g < l->data_clusters)
                qcow2_wbe64(buf + (e << (p->ext_l2 ? 4 : 3)),
                               (data_cluster(l, g) * cs) | QCOW2_OFLAG_COPIED);
        }
        r = file_pwrite_exact(fd, buf, cs, l2_cluster(l, i) * cs);
    }
    free(buf);
    return r;
}

/* Give the data clusters file space: falloc reserves it, full writes zeros. */
static int allocate_data(int fd, const struct create_params *p, const struct layout *l)
{
    uint64_t end = l->total * l->cs;
    if (p->prealloc == PREALLOC_METADATA || p->prealloc == PREALLOC_OFF)
        return p->prealloc == PREALLOC_OFF ? 0 : (ftruncate(fd, (off_t)end) < 0 ? -errno : 0);
    if (p->prealloc == PREALLOC_FALLOC) {
        int e = posix_fallocate(fd, 0, (off_t)end);
        return e ? -e : 0;
    }
    const size_t chunk = 1u << 20;
    uint8_t *zeros = calloc(1, chunk);
    if (!zeros)
        return -ENOMEM;
    int r = 0;
    for (uint64_t i = 0; i < l->l1_entries && r == 0; i++) {
        uint64_t first = i * l->l2_entries;
        uint64_t n = l->data_clusters - first < l->l2_entries ? l->data_clusters - first : l->l2_entries;
        uint64_t off = data_cluster(l, first) * l->cs, len = n * l->cs;
        for (uint64_t done = 0; done < len && r == 0;) {
            size_t m = len - done < chunk ? (size_t)(len - done) : chunk;
            r = file_pwrite_exact(fd, zeros, m, off + done);
            done += m;
        }
    }
    free(zeros);
    return r;
}

int qcow2_create(const char *path, const struct blk_create_opts *o, struct scuse_err *err)
{
    struct create_params p;
    int r = parse_params(path, o, &p, err);
    if (r < 0)
        return r;
    if (o->size > (1ull << 62))
        return err_set(err, -EINVAL, "'%s': size %" PRIu64 " is too large", path, o->size);
    uint64_t size = (o->size + 511) & ~511ull; /* whole sectors, as qemu-img */
    struct layout l;
    r = plan(path, &p, size, &l, err);
    if (r < 0)
        return r;
    uint8_t *h = calloc(1, l.cs);
    if (!h)
        return err_set(err, -ENOMEM, "out of memory");
    r = build_header(path, &p, &l, size, o, h, err);
    if (r < 0) {
        free(h);
        return r;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        r = -errno;
        free(h);
        return err_set(err, r, "'%s': cannot create: %s", path, strerror(-r));
    }
    r = file_pwrite_exact(fd, h, l.cs, 0);
    free(h);
    if (r == 0)
        r = write_tables(fd, &p, &l);
    if (r == 0)
        r = allocate_data(fd, &p, &l);
    if (r == 0)
        r = file_sync(fd);
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r < 0)
        return err_set(err, r, "'%s': cannot write the new image: %s", path, strerror(-r));
    return 0;
}
