/* qcow2 (read-only): on-disk constants and the per-image state shared by
 * the driver's files. Everything on disk is big-endian; tables are kept in
 * host order once loaded. */
#ifndef SCUSE_QCOW2_H
#define SCUSE_QCOW2_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "blk/driver.h"

#define QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */

#define QCOW2_V2_HEADER_LEN 72
#define QCOW2_V3_HEADER_MIN 104

#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_REFCOUNT_ORDER 6
#define QCOW2_MAX_BACKING_NAME 1023
#define QCOW2_MAX_BACKING_FMT 15       /* QEMU keeps it in char[16] */
#define QCOW2_MAX_L1_BYTES (32u << 20) /* QEMU's caps */
#define QCOW2_MAX_REFTABLE_BYTES (8u << 20)
#define QCOW2_MAX_SNAPSHOTS 65536
#define QCOW2_MAX_SNAPSHOT_TABLE (64u << 20)
#define QCOW2_MAX_SNAPSHOT_EXTRA 1024

/* Header extension types */
#define QCOW2_EXT_END 0x00000000u
#define QCOW2_EXT_BACKING_FMT 0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE 0x6803f857u
#define QCOW2_EXT_BITMAPS 0x23852875u
#define QCOW2_EXT_CRYPTO 0x0537be77u
#define QCOW2_EXT_DATA_FILE 0x44415441u

/* Feature bits */
#define QCOW2_INCOMPAT_DIRTY (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ull << 4)
#define QCOW2_INCOMPAT_KNOWN 0x1full
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW (1ull << 1)

#define QCOW2_COMPRESSION_ZLIB 0
#define QCOW2_COMPRESSION_ZSTD 1

/* Table entries */
#define QCOW2_L1E_OFFSET_MASK 0x00fffffffffffe00ull
#define QCOW2_L2E_OFFSET_MASK 0x00fffffffffffe00ull
#define QCOW2_OFLAG_COPIED (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO (1ull << 0)
#define QCOW2_EXTL2_SUBCLUSTERS 32

/* Bounded cache of L2 table slices, keyed by the slice's file offset. */
struct qcow2_l2cache {
    pthread_mutex_t lock;
    uint32_t slice_bytes;
    uint32_t nslots;
    uint32_t bucket_mask;
    int32_t *buckets;          /* hash heads, -1 = empty */
    struct qcow2_l2slot *slots;
    uint64_t *data;            /* nslots slices, host order */
    int32_t lru_head, lru_tail; /* head = most recently used */
};

/* Pool of decompression contexts: created on first use, never more than
 * max, reused so the read path does not allocate. */
struct qcow2_dctx;
struct qcow2_dpool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct qcow2_dctx *free_list;
    struct qcow2_dctx *all;    /* every context created, for teardown */
    unsigned created, max;
};

struct qcow2_feature_name {
    uint8_t type, bit;
    char name[47];
};

struct qcow2_state {
    const char *path;          /* bs->path, for messages */
    int fd;                    /* metadata (and data unless external) */
    int data_fd;               /* guest data; == fd without a data file */
    uint64_t file_size;

    uint32_t version;
    uint32_t cluster_bits, cluster_size;
    uint32_t header_length;
    uint32_t refcount_order;
    uint64_t size;             /* virtual size as recorded */
    uint64_t incompat, compat, autoclear;
    uint8_t compression_type;
    bool ext_l2;
    uint32_t sc_bits;          /* subcluster size bits (== cluster_bits without ext L2) */
    uint32_t l2_bits;          /* log2 of L2 entries per table */
    uint32_t l2_entry_shift;   /* 3, or 4 with extended L2 (two words per entry) */

    uint64_t *l1;              /* host order, l1_loaded entries */
    uint64_t l1_loaded;
    uint64_t l1_size, l1_offset;
    uint64_t refcount_table_offset;
    uint32_t refcount_table_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;

    char *data_file_name;      /* from the data-file extension */
    uint64_t csize_shift;      /* compressed descriptor: x = 70 - cluster_bits */
    uint64_t csize_mask;
    uint64_t coffset_mask;

    struct qcow2_l2cache cache;
    struct qcow2_dpool dpool;
    atomic_uint io_errors_logged;
};

/* Run kinds, in QEMU's decision order. */
enum qcow2_kind {
    QCOW2_UNALLOCATED,         /* read what lies below */
    QCOW2_ZERO_PLAIN,
    QCOW2_ZERO_ALLOC,
    QCOW2_NORMAL,
    QCOW2_COMPRESSED,
};

struct qcow2_run {
    enum qcow2_kind kind;
    uint64_t len;              /* bytes from the queried offset */
    uint64_t host;             /* NORMAL/ZERO_ALLOC: host offset of the first byte */
    uint64_t l2e;              /* COMPRESSED: the first cluster's descriptor */
};

static inline uint32_t qcow2_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t qcow2_be64(const uint8_t *p)
{
    return (uint64_t)qcow2_be32(p) << 32 | qcow2_be32(p + 4);
}

static inline uint16_t qcow2_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* map.c: log a read-path error naming the image; after a few per image
 * the rest are dropped so a guest hammering a bad region cannot flood
 * the log. */
void qcow2_log_io(struct qcow2_state *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* header.c: parse and validate the header and its extensions; fills s and
 * the node's backing_name/backing_fmt. */
int qcow2_read_header(struct blk_node *bs, struct qcow2_state *s, struct scuse_err *err);
/* header.c: open the external data file named by the extension. */
int qcow2_open_data_file(struct blk_node *bs, struct qcow2_state *s, struct scuse_err *err);

/* l2cache.c */
int qcow2_l2c_init(struct qcow2_l2cache *c, uint32_t slice_bytes, uint64_t bytes);
void qcow2_l2c_destroy(struct qcow2_l2cache *c);
/* Find or load the slice at file offset off. On success the cache lock is
 * held and *ent points at slice_bytes/8 host-order words; release with
 * qcow2_l2c_unlock(). On failure the lock is not held. */
int qcow2_l2c_get(struct qcow2_l2cache *c, int fd, uint64_t off, const uint64_t **ent);
void qcow2_l2c_unlock(struct qcow2_l2cache *c);

/* map.c: the longest run from off (at most len bytes, len > 0) of one
 * kind, with contiguous host offsets for NORMAL and ZERO_ALLOC. A
 * compressed run covers one cluster unless merge_compressed. */
int qcow2_map(struct qcow2_state *s, uint64_t off, uint64_t len, bool merge_compressed,
              struct qcow2_run *run);

/* decomp.c */
void qcow2_dpool_init(struct qcow2_dpool *p, unsigned max);
void qcow2_dpool_destroy(struct qcow2_dpool *p);
/* Read the compressed cluster described by l2e and copy bytes
 * [in_off, in_off + v->len) of its data into v. */
int qcow2_read_compressed(struct qcow2_state *s, uint64_t l2e, uint32_t in_off,
                          const struct iov_view *v);

/* read.c */
int qcow2_preadv(struct blk_node *bs, uint64_t off, const struct iov_view *v);
int qcow2_block_status(struct blk_node *bs, uint64_t off, uint64_t len, uint64_t *pnum,
                       struct blk_status *st);

/* snapshot.c: parse the snapshot table into a malloc'd array. */
int qcow2_read_snapshots(struct qcow2_state *s, struct blk_snapshot_info **out, int *count);

#endif
