/* qcow2: on-disk constants and the per-image state shared by the driver's
 * files. Everything on disk is big-endian; L1, L2 and refcount tables are
 * kept in host order once loaded, refcount blocks in their on-disk bytes.
 *
 * Writer (refcount.c, alloc.c, l2table.c, write.c, zero.c, flush.c): see
 * flush.c for the crash-safe ordering and write.c for the locking. */
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
/* Autoclear bits this writer keeps valid; the others (bitmaps included:
 * they are not updated) are cleared before the first write. */
#define QCOW2_AUTOCLEAR_KNOWN QCOW2_AUTOCLEAR_DATA_FILE_RAW

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
    uint32_t ndirty;           /* slices changed in memory, not yet written */
    uint64_t wb_gen;           /* bumped when a dirty slice has been written */
};

/* Bounded cache of refcount block slices in their on-disk bytes. Used by
 * the writer only, under the metadata lock. */
struct qcow2_rslot;
struct qcow2_cctx;
struct qcow2_rcache {
    uint32_t slice_bytes;
    uint32_t nslots, ndirty;
    uint32_t bucket_mask;
    int32_t *buckets;
    struct qcow2_rslot *slots;
    uint8_t *data;
    uint64_t tick;             /* LRU clock */
};

/* Refcount decrements waiting for the L2/L1 change that dropped the
 * reference to be durable: each cluster of [start, start + n) loses one. */
struct qcow2_dec {
    uint64_t start, n;
};

/* Writer state; exists only on a read-write open. */
struct qcow2_writer {
    pthread_mutex_t lock;      /* metadata: allocation, L1/L2/refcount changes, flush */
    /* The error channel of the call holding `lock` (set after taking it,
     * cleared before releasing it; NULL: nobody to tell, log instead). */
    struct scuse_err *err;
    /* Held shared by every I/O that uses a host offset it mapped; taken
     * exclusively (and released at once) before decrements are applied,
     * so a cluster is never reused while an I/O that mapped it runs. */
    pthread_rwlock_t barrier;
    uint64_t *reftable;        /* host order */
    uint64_t reftable_entries;
    struct qcow2_rcache rc;
    uint32_t rb_bits;          /* log2 refcount entries per block */
    uint32_t rs_bits;          /* log2 refcount entries per cached slice */
    uint64_t free_hint;        /* no free cluster below this one */
    uint64_t free_byte;        /* where the next compressed bytes may be packed, 0 = none */
    pthread_mutex_t cpool_lock;
    struct qcow2_cctx *cpool;  /* compression contexts (compress.c) */
    struct qcow2_dec *dec;
    size_t ndec, dec_cap;
    uint8_t *l1_dirty;         /* per 64-entry (512-byte) piece of the L1 table */
    bool l1_any_dirty;
    bool meta_unsynced;        /* metadata written without a sync since */
    atomic_bool data_unsynced; /* guest data written in place since the last sync */
    uint8_t *head_buf, *tail_buf; /* cluster-sized copy-on-write buffers */
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

/* Decompressed clusters (dcache.c). */
#define QCOW2_DCACHE_DEFAULT (8u << 20)
#define QCOW2_DCACHE_MIN_SLOTS 4
#define QCOW2_DCACHE_MAX_SLOTS 256
struct qcow2_dslot;
struct qcow2_dcache {
    pthread_mutex_t lock;
    uint32_t nslots, cluster_size;
    struct qcow2_dslot *slots;
    uint8_t *data;
    uint64_t tick;
    uint64_t hits, misses;
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
    uint64_t meta_end;         /* file size plus what the writer allocated (atomic) */
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;

    char *data_file_name;      /* from the data-file extension */
    uint64_t csize_shift;      /* compressed descriptor: x = 70 - cluster_bits */
    uint64_t csize_mask;
    uint64_t coffset_mask;

    struct qcow2_l2cache cache;
    struct qcow2_dpool dpool;
    struct qcow2_dcache dcache;
    atomic_uint io_errors_logged;

    bool writable;
    bool no_flush;             /* BLK_OPEN_NO_FLUSH: the writer's syncs are skipped */
    struct qcow2_writer w;
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
    bool copied;               /* NORMAL/ZERO_ALLOC: COPIED set (only split on when writable) */
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

static inline void qcow2_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void qcow2_put_be64(uint8_t *p, uint64_t v)
{
    qcow2_put_be32(p, (uint32_t)(v >> 32));
    qcow2_put_be32(p + 4, (uint32_t)v);
}

/* The L1 entry for l1i as readers may see it while a writer changes it. */
static inline uint64_t qcow2_l1_get(const struct qcow2_state *s, uint64_t l1i)
{
    return __atomic_load_n(&s->l1[l1i], __ATOMIC_ACQUIRE);
}

/* reason.c: record why an operation failed (naming the image) in err, the
 * failing call's; the _locked form in the metadata lock holder's
 * (s->w.err). The first reason of a call wins. Without an err to fill
 * (writeback at close) the reason is logged. */
void qcow2_note(struct qcow2_state *s, struct scuse_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void qcow2_note_locked(struct qcow2_state *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

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
/* Writer side (metadata lock held): a slice got with qcow2_l2c_get may be
 * changed in place (cast away const) and released with
 * qcow2_l2c_unlock_dirty, which pins it until written back. Dirty slices
 * are never evicted; the writer keeps at most half the cache dirty. */
void qcow2_l2c_unlock_dirty(struct qcow2_l2cache *c, const uint64_t *ent);
/* Write every dirty slice (no sync); *count is how many were written. */
int qcow2_l2c_writeback(struct qcow2_l2cache *c, int fd, unsigned *count);
/* Forget clean slices lying in [off, off + len) (a cluster being reused). */
void qcow2_l2c_drop(struct qcow2_l2cache *c, uint64_t off, uint64_t len);
/* Forget every slice; none may be dirty. */
void qcow2_l2c_reset(struct qcow2_l2cache *c);

/* map.c: the longest run from off (at most len bytes, len > 0) of one
 * kind, with contiguous host offsets for NORMAL and ZERO_ALLOC. A
 * compressed run covers one cluster unless merge_compressed. */
int qcow2_map(struct qcow2_state *s, uint64_t off, uint64_t len, bool merge_compressed,
              struct qcow2_run *run, struct scuse_err *err);

/* decomp.c */
void qcow2_dpool_init(struct qcow2_dpool *p, unsigned max);
void qcow2_dpool_destroy(struct qcow2_dpool *p);
/* Read the compressed cluster described by l2e and copy bytes
 * [in_off, in_off + v->len) of its data into v. */
int qcow2_read_compressed(struct qcow2_state *s, uint64_t l2e, uint32_t in_off,
                          const struct iov_view *v, struct scuse_err *err);

/* dcache.c: bytes is the cache size (rounded to whole clusters, clamped
 * to the slot limits). */
int qcow2_dcache_init(struct qcow2_dcache *c, uint32_t cluster_size, uint64_t bytes);
void qcow2_dcache_destroy(struct qcow2_dcache *c);
/* Copy [in_off, in_off + v->len) of the cached cluster into v: false on a miss. */
bool qcow2_dcache_read(struct qcow2_dcache *c, uint64_t coff, uint64_t nsec, uint32_t in_off,
                       const struct iov_view *v);
void qcow2_dcache_insert(struct qcow2_dcache *c, uint64_t coff, uint64_t nsec, const void *data);
/* Forget everything (compressed host bytes may have been freed). */
void qcow2_dcache_clear(struct qcow2_dcache *c);

/* read.c */
int qcow2_preadv(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                 struct scuse_err *err);
/* The read path without the writer's barrier (the caller holds the
 * metadata lock or the barrier). */
int qcow2_read_mapped(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                      struct scuse_err *err);
int qcow2_block_status(struct blk_node *bs, uint64_t off, uint64_t len, uint64_t *pnum,
                       struct blk_status *st, struct scuse_err *err);

/* snapshot.c: parse the snapshot table into a malloc'd array. */
int qcow2_read_snapshots(struct qcow2_state *s, struct blk_snapshot_info **out, int *count);

/* header.c: re-read the L1 table and the refcount table fields (after a
 * refcount rebuild rewrote them). */
int qcow2_reload_tables(struct blk_node *bs, struct qcow2_state *s, struct scuse_err *err);
/* header.c: write the incompatible and autoclear feature fields (v3) and
 * sync. */
int qcow2_write_features(struct qcow2_state *s, uint64_t incompat, uint64_t autoclear);

/* ---- Writer. Unless said otherwise, the metadata lock s->w.lock is held. ---- */

/* refcount.c */
int qcow2_rc_init(struct qcow2_state *s, uint32_t nslots);
void qcow2_rc_destroy(struct qcow2_state *s);
/* Refcount of a cluster (0 where no block covers it). */
int qcow2_rc_get(struct qcow2_state *s, uint64_t cluster, uint64_t *val);
/* Add delta to each of n clusters' refcounts; their blocks must exist.
 * Over- or underflow is -EINVAL (as QEMU), that cluster left unchanged. */
int qcow2_rc_add(struct qcow2_state *s, uint64_t cluster, uint64_t n, int delta);
/* Scan [c, limit) for refcount 0 within one cached slice: *first is the
 * first free cluster (or limit), *run how many free follow it (stopping
 * at a used one, at limit or at the slice end). Needs the block. */
int qcow2_rc_scan_free(struct qcow2_state *s, uint64_t c, uint64_t limit, uint64_t *first,
                       uint64_t *run);
/* Install a refcount block just written to disk at off (clean). */
int qcow2_rc_install_block(struct qcow2_state *s, uint64_t off, const uint8_t *blk);
/* Write dirty refcount slices (no sync). */
int qcow2_rc_writeback(struct qcow2_state *s, unsigned *count);
/* Queue one decrement for each of n clusters from start. */
int qcow2_rc_queue_dec(struct qcow2_state *s, uint64_t start, uint64_t n);
/* Queue the decrements a compressed descriptor owes (every host cluster
 * its bytes touch). */
int qcow2_rc_queue_dec_compressed(struct qcow2_state *s, uint64_t l2e);
/* Apply and write back the queued decrements (no sync). */
int qcow2_rc_apply_decs(struct qcow2_state *s);
/* Refcount value in a block's bytes, and setting it. */
uint64_t qcow2_rc_entry(const uint8_t *blk, uint64_t idx, uint32_t order);
void qcow2_rc_set_entry(uint8_t *blk, uint64_t idx, uint32_t order, uint64_t v);

/* alloc.c: a run of 1..want free, host-contiguous clusters, refcounts set
 * to 1 (in the cache: durable at the next flush, before any L2 entry that
 * points at them). Growth of the refcount structures is written and
 * synced here. */
int qcow2_alloc_clusters(struct qcow2_state *s, uint64_t want, uint64_t *start, uint64_t *got);
/* fdatasync of the image file, unless opened with BLK_OPEN_NO_FLUSH. */
int qcow2_sync(struct qcow2_state *s);
/* Grow s->meta_end to at least end (bytes). */
void qcow2_note_end(struct qcow2_state *s, uint64_t end);

/* l2table.c */
/* The L2 table for L1 index l1i, made writable: allocated (zeroed) where
 * missing, copied where shared with a snapshot (COPIED clear). */
int qcow2_l2_prepare(struct qcow2_state *s, uint64_t l1i, uint64_t *l2_off);
/* Copy out / store n entries (each 1 or 2 words) from the cluster index
 * ci on; the range must lie in one cached slice: see qcow2_l2_span. */
int qcow2_l2_load(struct qcow2_state *s, uint64_t l2_off, uint64_t ci, uint64_t n, uint64_t *e,
                  uint64_t *bm);
int qcow2_l2_store(struct qcow2_state *s, uint64_t l2_off, uint64_t ci, uint64_t n,
                   const uint64_t *e, const uint64_t *bm);
/* How many clusters from ci on share ci's cached L2 slice. */
uint64_t qcow2_l2_span(const struct qcow2_state *s, uint64_t ci);
/* Queue the decrements owed by an L2 entry that is being replaced. */
int qcow2_l2_release(struct qcow2_state *s, uint64_t e);
/* Write the dirty L1 pieces (no sync); *count is how many. */
int qcow2_l1_writeback(struct qcow2_state *s, unsigned *count);

/* write.c */
int qcow2_pwritev(struct blk_node *bs, uint64_t off, const struct iov_view *v, unsigned flags,
                  struct scuse_err *err);
/* Write zeros as data over [off, off + len) through the write path. */
int qcow2_write_zero_data(struct blk_node *bs, uint64_t off, uint64_t len, struct scuse_err *err);

/* compress.c: the driver's write_compressed. Stores one whole cluster at
 * guest offset off (cluster aligned; the image's last cluster may be
 * short and is padded with zeros) compressed with the image's compression
 * type, packed byte-granularly after the previous compressed cluster as
 * QEMU does; incompressible data goes through the normal write path.
 * -ENOTSUP when the guest cluster is already allocated. Safe to call from
 * several threads: compression runs in parallel, placement under the
 * metadata lock (taken here). */
int qcow2_write_compressed(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                           struct scuse_err *err);
/* Free the compression contexts (writer close). */
void qcow2_cpool_destroy(struct qcow2_state *s);

/* zero.c */
int qcow2_write_zeroes(struct blk_node *bs, uint64_t off, uint64_t len, unsigned flags,
                       struct scuse_err *err);
int qcow2_discard(struct blk_node *bs, uint64_t off, uint64_t len, struct scuse_err *err);

/* flush.c */
int qcow2_writer_open(struct blk_node *bs, struct qcow2_state *s, struct scuse_err *err);
/* Flush (when the writer is healthy) and free the writer state. */
int qcow2_writer_close(struct qcow2_state *s);
int qcow2_flush(struct blk_node *bs, struct scuse_err *err);
bool qcow2_meta_pending(struct blk_node *bs);
/* The ordered writeback; callable between operations of a step. */
int qcow2_flush_locked(struct qcow2_state *s);
/* Make room: flush if the next step could find the caches full. */
int qcow2_reserve(struct qcow2_state *s);

#endif
