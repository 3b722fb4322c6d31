/* VMDK: on-disk constants, the parsed descriptor, and the per-image state
 * shared by the driver's files. Everything on disk is little-endian.
 *
 * An image is a descriptor (a text file, or text embedded in a KDMV
 * sparse file) naming extents; the disk is the extents one after the
 * other. desc.c parses descriptors, extent.c opens extent files,
 * sparse.c reads KDMV headers and grain directories, gt.c maps grains
 * through grain tables, grain.c reads compressed grains, read.c serves
 * reads and block status, driver.c ties them together. */
#ifndef SCUSE_VMDK_H
#define SCUSE_VMDK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "blk/driver.h"

#define VMDK_SECTOR 512u
#define VMDK4_MAGIC 0x564d444bu /* "KDMV" read as a little-endian u32 */
#define VMDK3_MAGIC 0x44574f43u /* "COWD": vmfsSparse */

/* KDMV header flags */
#define VMDK4_FLAG_NL_DETECT (1u << 0)
#define VMDK4_FLAG_RGD (1u << 1)
#define VMDK4_FLAG_ZERO_GRAIN (1u << 2)
#define VMDK4_FLAG_COMPRESS (1u << 16)
#define VMDK4_FLAG_MARKER (1u << 17)
#define VMDK4_COMPRESS_DEFLATE 1u

#define VMDK_GD_AT_END 0xffffffffffffffffull
#define VMDK_GTE_ZEROED 1u
#define VMDK_CID_NONE 0xffffffffu

/* Stream markers: {u64 val, u32 size, u32 type}; size 0 = metadata marker. */
#define VMDK_MARKER_EOS 0u
#define VMDK_MARKER_GT 1u
#define VMDK_MARKER_GD 2u
#define VMDK_MARKER_FOOTER 3u

/* Limits: beyond QEMU's own where it has none, so that a hostile header
 * cannot make scuse allocate or read without bound. */
#define VMDK_MAX_DESC_BYTES (1u << 20)       /* descriptor text */
#define VMDK_MAX_EXTENTS 4096u
#define VMDK_MAX_TOTAL_SECTORS (1ull << 47)  /* 64 PiB */
#define VMDK_MAX_GRAIN_SECTORS (1u << 15)    /* 16 MiB grains */
#define VMDK_MAX_GTES (1u << 16)             /* entries per grain table */
#define VMDK_MAX_GD_ENTRIES (1u << 24)

/* ------------------------------------------------------------------ */
/* Descriptor (desc.c) */

enum vmdk_access { VMDK_RW, VMDK_RDONLY, VMDK_NOACCESS };
enum vmdk_etype {
    VMDK_FLAT, VMDK_SPARSE, VMDK_ZERO, VMDK_VMFS, VMDK_VMFSSPARSE,
    VMDK_VMFSRAW, VMDK_VMFSRDM, VMDK_SESPARSE,
};

struct vmdk_desc_extent {
    enum vmdk_access access;
    enum vmdk_etype type;
    uint64_t sectors;
    uint64_t offset;          /* FLAT/VMFS: sectors into the file */
    char *file;               /* NULL for ZERO */
    unsigned line;            /* 1-based line number, for messages */
};

struct vmdk_desc {
    int version;
    uint32_t cid, parent_cid;
    bool has_cid;
    char *create_type;        /* NULL if absent */
    char *parent_hint;        /* parentFileNameHint, NULL if absent */
    struct vmdk_desc_extent *ext;
    size_t n_ext;
    uint64_t total_sectors;
    /* The text as read (to its first NUL), kept for rewriting: ddb.* and
     * every line scuse does not interpret stay as they were. */
    char *text;
    size_t len;
    size_t cid_at, cid_len;   /* the CID value's bytes in text (cid_len 0: none) */
};

/* Parse len bytes of descriptor text (stops at a NUL). name is the file
 * for messages. On failure d is left empty. */
int vmdk_desc_parse(const char *text, size_t len, const char *name, struct vmdk_desc *d,
                    struct scuse_err *err);
void vmdk_desc_free(struct vmdk_desc *d);
/* The text with the CID replaced (malloc'd, *out_len set). */
char *vmdk_desc_with_cid(const struct vmdk_desc *d, uint32_t cid, size_t *out_len);
const char *vmdk_etype_name(enum vmdk_etype t);
const char *vmdk_access_name(enum vmdk_access a);
/* Whether the text looks like a descriptor (for probing). */
bool vmdk_desc_looks_like(const uint8_t *buf, size_t len);

/* ------------------------------------------------------------------ */
/* Sparse extents (sparse.c, gt.c, grain.c) */

/* The 512-byte KDMV header, in host order. */
struct vmdk4_header {
    uint32_t version, flags;
    uint64_t capacity, grain_size, desc_offset, desc_size;
    uint32_t num_gtes_per_gt;
    uint64_t rgd_offset, gd_offset, overhead;
    uint8_t unclean;
    uint16_t compress_algorithm;
};

void vmdk4_header_decode(const uint8_t *b, struct vmdk4_header *h);
void vmdk4_header_encode(const struct vmdk4_header *h, uint8_t *b);

/* A byte range of the extent file that grains and tables must not overlap. */
struct vmdk_range { uint64_t start, end; };

struct vmdk_dpool;

struct vmdk_sparse {
    const char *path;         /* the extent file, for messages */
    int fd;
    uint64_t file_size;
    struct vmdk4_header h;    /* as used: the footer's copy for GD_AT_END */
    bool compressed, markers, zero_grain, has_rgd;
    uint32_t grain_shift;     /* log2 of grain bytes */
    uint64_t grain_bytes;
    uint32_t gtes;
    uint64_t gt_bytes;        /* one grain table, rounded to sectors */
    uint64_t n_gd;
    uint32_t *gd, *rgd;       /* host order; rgd NULL without one */
    /* Grain tables, loaded on first use and kept (their total is 1/16384
     * of the virtual size with the usual 64 KiB grains): published with
     * release/acquire so readers take no lock. */
    uint32_t **gt;
    pthread_mutex_t gt_lock;
    struct vmdk_range meta[6]; /* header, footer, descriptor, GD, RGD */
    int n_meta;
    struct vmdk_dpool *dpool; /* decompressors, compressed extents only */

    /* Writer (write.c), on read-write opens of uncompressed extents. */
    bool writer;
    pthread_mutex_t wlock;    /* allocation and every grain-table change */
    uint64_t alloc_end;       /* where the next grain or table goes */
    uint8_t *gt_state;        /* per GD entry: VMDK_GT_* */
    bool meta_dirty;          /* some gt_state is not clean */
    uint8_t *wbuf;            /* one grain, for allocating writes (under wlock) */
    /* Stream writer (stream.c): grains appended compressed, once each;
     * the tables, footer and end-of-stream marker follow them at flush. */
    bool stream;
    struct vmdk_cpool *cpool;
};

/* Grain-table states kept by the writer until flush. */
enum { VMDK_GT_CLEAN = 0, VMDK_GT_DIRTY = 1, VMDK_GT_NEW = 2 /* its GD entry too */ };

/* Open the sparse extent in fd (header at 0, or the footer's). */
int vmdk_sparse_open(int fd, const char *path, struct vmdk_sparse **out, struct scuse_err *err);
void vmdk_sparse_close(struct vmdk_sparse *sp);
/* Read the descriptor embedded in a KDMV file (malloc'd text; NULL with
 * *len 0 when it has none). */
int vmdk_sparse_read_desc(struct vmdk_sparse *sp, char **text, size_t *len, struct scuse_err *err);
bool vmdk_overlaps_meta(const struct vmdk_sparse *sp, uint64_t start, uint64_t end);

/* What a run of grains is. */
enum vmdk_kind { VMDK_K_UNALLOC, VMDK_K_ZERO, VMDK_K_DATA, VMDK_K_COMPRESSED };
struct vmdk_run {
    enum vmdk_kind kind;
    uint64_t len;             /* bytes from the queried offset */
    uint64_t host;            /* DATA: file offset of the first byte; COMPRESSED: grain's sector * 512 */
};
/* Map [off, off+len) of the extent (off in extent bytes): the kind of the
 * first grain and how far the same kind continues (DATA runs only while
 * host-contiguous; COMPRESSED: one grain). */
int vmdk_gt_map(struct vmdk_sparse *sp, uint64_t off, uint64_t len, struct vmdk_run *run,
                struct scuse_err *err);
/* The grain table of GD entry i, loaded if needed (NULL for GD entry 0). */
int vmdk_gt_get(struct vmdk_sparse *sp, uint64_t i, uint32_t **out, struct scuse_err *err);

int vmdk_dpool_new(struct vmdk_dpool **out);
void vmdk_dpool_free(struct vmdk_dpool *p);
/* Decompress the grain whose marker (or data) starts at host and copy
 * [in_grain, in_grain + v->len) of it into v. */
int vmdk_read_compressed(struct vmdk_sparse *sp, uint64_t host, uint64_t in_grain,
                         const struct iov_view *v, struct scuse_err *err);

/* ------------------------------------------------------------------ */
/* Extents and the image (extent.c, driver.c) */

struct vmdk_extent {
    enum vmdk_etype type;
    enum vmdk_access access;
    uint64_t start, len;      /* virtual bytes */
    uint64_t flat_off;        /* FLAT/VMFS: bytes into the file */
    int fd;                   /* -1 for ZERO */
    char *name;               /* as the descriptor names it (info) */
    char *path;               /* as opened */
    const char *type_name;    /* for info: "FLAT", "SPARSE", "" (a KDMV file opened itself) */
    struct vmdk_sparse *sp;   /* SPARSE */
};

/* One file opened for extents (several extents may share it). */
struct vmdk_file {
    int fd;
    bool own;                 /* not the descriptor's fd */
    bool rw;
    dev_t dev;
    ino_t ino;
};

struct vmdk_state {
    const char *path;         /* bs->path */
    bool no_flush;            /* BLK_OPEN_NO_FLUSH */
    /* The first write gives the image a new CID (write.c). */
    pthread_mutex_t cid_lock;
    bool cid_lock_ready;
    bool cid_updated;
    bool no_desc;             /* an extent file opened itself: no descriptor to update */
    struct vmdk_desc desc;
    bool embedded;            /* the descriptor lives in a KDMV file */
    struct vmdk_extent *ext;
    size_t n_ext;
    struct vmdk_file *files;
    size_t n_files;
    uint64_t size;
};

int vmdk_extents_open(struct blk_node *bs, struct vmdk_state *s, struct scuse_err *err);
void vmdk_extents_close(struct vmdk_state *s);
/* The extent holding virtual byte off (off < size). */
struct vmdk_extent *vmdk_extent_at(struct vmdk_state *s, uint64_t off);

int vmdk_preadv(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                struct scuse_err *err);
int vmdk_block_status(struct blk_node *bs, uint64_t off, uint64_t len, uint64_t *pnum,
                      struct blk_status *st, struct scuse_err *err);

/* Stream writer (stream.c) */
int vmdk_stream_writer_open(struct vmdk_sparse *sp, struct scuse_err *err);
void vmdk_stream_writer_close(struct vmdk_sparse *sp);
/* Store grain g (len bytes, a whole grain or the extent's last) compressed. */
int vmdk_stream_write_grain(struct vmdk_sparse *sp, uint64_t g, const struct iov_view *v,
                            struct scuse_err *err);
/* Write the grain tables, directory, footer and end-of-stream marker
 * after the last grain. */
int vmdk_stream_flush(struct vmdk_sparse *sp, bool sync, struct scuse_err *err);
/* The tail of a stream whose grain tables gt[0..n_gd) (NULL: none) end
 * at data_end: written, and the file cut after it. */
int vmdk_stream_write_tail(int fd, const char *path, const struct vmdk4_header *h,
                           uint32_t *const *gt, uint64_t n_gd, uint32_t gtes, uint64_t data_end,
                           uint32_t *gd_out, struct scuse_err *err);
int vmdk_write_compressed(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                          struct scuse_err *err);

/* check.c */
int vmdk_check(struct blk_node *bs, unsigned fix, struct blk_check_result *res,
               struct scuse_err *err);

/* create.c */
int vmdk_create(const char *path, const struct blk_create_opts *o, struct scuse_err *err);
extern const struct blk_opt_desc vmdk_create_opts[];

/* Writer (write.c) */
int vmdk_writer_open(struct vmdk_sparse *sp, struct scuse_err *err);
void vmdk_writer_close(struct vmdk_sparse *sp);
int vmdk_pwritev(struct blk_node *bs, uint64_t off, const struct iov_view *v, unsigned flags,
                 struct scuse_err *err);
int vmdk_write_zeroes(struct blk_node *bs, uint64_t off, uint64_t len, unsigned flags,
                      struct scuse_err *err);
int vmdk_discard(struct blk_node *bs, uint64_t off, uint64_t len, struct scuse_err *err);
int vmdk_flush(struct blk_node *bs, struct scuse_err *err);
bool vmdk_meta_pending(struct blk_node *bs);

static inline uint16_t vmdk_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t vmdk_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t vmdk_le64(const uint8_t *p)
{
    return (uint64_t)vmdk_le32(p) | (uint64_t)vmdk_le32(p + 4) << 32;
}
static inline void vmdk_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void vmdk_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void vmdk_put64(uint8_t *p, uint64_t v)
{
    vmdk_put32(p, (uint32_t)v);
    vmdk_put32(p + 4, (uint32_t)(v >> 32));
}

#endif
