/* The block layer: one image chain seen as a byte-addressed device.
 *
 * blk_open() opens the top image (format given or probed), then its backing
 * chain with the formats the overlays record, read-only, relative names
 * resolved against the overlay's directory, with a depth limit and loop
 * detection. Reads walk down the chain where a layer says "not allocated
 * here"; past the end of a shorter backing file they return zeros. */
#ifndef SCUSE_BLK_H
#define SCUSE_BLK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/err.h"
#include "util/iov.h"

struct blk_driver;

#define BLK_MAX_DEPTH_DEFAULT 64

/* key=value options, as qemu-img spells them: create's -o, and the
 * per-format open options (qcow2's l2-cache-size...). */
#define BLK_MAX_KV 32
struct blk_kv {
    int n;
    struct { const char *key, *val; } kv[BLK_MAX_KV];
};

/* A backing file named by the caller rather than by the image (libvirt's
 * <backingStore>): used as written, in this format, never probed. */
struct blk_backing {
    const char *file;
    const char *fmt;
};

struct blk_opts {
    unsigned max_depth;      /* backing chain depth limit; 0 = default */
    /* A chain given explicitly: backing[i] is the backing file of the
     * image at depth i, used instead of whatever that image records (its
     * recorded name and format are not followed). With backing_end the
     * chain stops after the last one given (n_backing 0: the top image
     * has no backing file); without it, the last one's own backing file is
     * the one its header records, as usual. Strings are the caller's. */
    const struct blk_backing *backing;
    unsigned n_backing;
    bool backing_end;
    /* Formats of the caller's own (an embedder's, a test's), looked up and
     * probed before the registry's; NULL-terminated, or NULL. */
    const struct blk_driver *const *drivers;
    /* Options for the top image's driver (checked against its open_opts;
     * backing files get none). Strings are the caller's. */
    struct blk_kv fmt;
};

/* `-o key=value,...` and the rest of what create takes. */
struct blk_create_opts {
    uint64_t size;
    const char *backing_file;   /* NULL if none */
    const char *backing_fmt;
    struct blk_kv o;
};

/* What probing sees of a file: its first bytes and its last 512 (VHD
 * keeps its only footer at the end of a fixed disk). */
struct blk_probe {
    const uint8_t *head;
    size_t head_len;
    const uint8_t *tail;      /* the last tail_len bytes of the file */
    size_t tail_len;
    uint64_t file_size;
};

enum {
    BLK_OPEN_RW = 1u << 0,         /* top image read-write (backing files never) */
    BLK_OPEN_NO_BACKING = 1u << 1, /* do not open backing files */
    BLK_OPEN_SHARE = 1u << 2,      /* take no image locks (qemu-img -U) */
    /* For check -r: the top image's file read-write and locked as a
     * writer, but no guest writes, no repair at open, and images marked
     * dirty or corrupt are accepted (the driver's check repairs them). */
    BLK_OPEN_CHECK = 1u << 3,
    /* qemu-img's cache=unsafe: the top image's file is never synced, not
     * even by flush (a crash may lose anything; for conversions). */
    BLK_OPEN_NO_FLUSH = 1u << 4,
};

/* block_status flags */
enum {
    BLK_STATUS_DATA = 1u << 0,      /* reads return stored data */
    BLK_STATUS_ZERO = 1u << 1,      /* reads return zeros */
    BLK_STATUS_ALLOCATED = 1u << 2, /* this layer answers (not the one below) */
    BLK_STATUS_OFFSET = 1u << 3,    /* offset is the host offset of the data */
    BLK_STATUS_COMPRESSED = 1u << 4,
    /* Zeros for which the layer keeps host storage (a preallocated zero
     * cluster): SCSI calls such blocks anchored, not deallocated. */
    BLK_STATUS_RESERVED = 1u << 5,
};

struct blk_node;

struct blk_status {
    unsigned flags;
    uint64_t offset;          /* host offset in layer's file, with BLK_STATUS_OFFSET */
    struct blk_node *layer;   /* set by blk_block_status: the layer that answered */
    unsigned depth;           /* 0 = top */
};

struct blk_node {
    const struct blk_driver *drv;
    void *state;              /* the driver's */
    int fd;
    char *filename;           /* as named by the user or by the overlay */
    char *path;               /* the path actually opened */
    bool read_only;
    bool check_only;          /* opened with BLK_OPEN_CHECK */
    bool no_flush;            /* opened with BLK_OPEN_NO_FLUSH */
    bool probed;              /* format was guessed, not given */
    bool share;               /* BLK_OPEN_SHARE: take no image locks (drivers' extra files too) */
    unsigned depth;           /* 0 = top of the chain */
    struct blk_opts opts;

    /* Set by the driver's open: */
    uint64_t size;            /* virtual size in bytes */
    char *backing_name;       /* as recorded in the image (malloc'd), or NULL */
    char *backing_fmt;        /* recorded backing format (malloc'd), or NULL */
    uint32_t cluster_size;    /* allocation unit for info, 0 if none */
    uint32_t align;           /* request alignment in bytes (power of two, >= 1) */
    uint64_t max_transfer;    /* largest request handed to the driver, 0 = any */
    bool dirty;               /* the image says it was not closed cleanly */
    bool discard_zeroes;      /* what discard deallocates reads back as zeros (LBPRZ) */
    /* The image takes data only as whole compressed clusters (VMDK
     * streamOptimized): copies into it use write_compressed. */
    bool compressed_only;

    struct blk_node *backing; /* opened by the block layer */
    /* With align > 1: writes that cover whole blocks share it, a
     * read-modify-write of a partial block holds it alone. */
    pthread_rwlock_t rmw_lock;
    bool rmw_lock_ready;
};

/* bs->size as the I/O paths read it: a daemon may change it meanwhile
 * (blk_refresh_size, from the control socket or SIGHUP), so one atomic
 * load per request, used for every check of that request. */
static inline uint64_t blk_size_now(const struct blk_node *bs)
{
    return __atomic_load_n(&bs->size, __ATOMIC_ACQUIRE);
}

int blk_open(const char *filename, const char *fmt, unsigned flags,
             const struct blk_opts *opts, struct blk_node **out, struct scuse_err *err);
void blk_close(struct blk_node *bs);

/* Every I/O call below returns 0 or a negative errno and, on failure, puts
 * the reason (naming the image and what failed) in err, which may be NULL.
 * Only the first reason is kept: pass a cleared err per request. */

/* Read v->len bytes at off; off + len must not exceed bs->size. */
int blk_preadv(struct blk_node *bs, uint64_t off, const struct iov_view *v, struct scuse_err *err);
int blk_pread(struct blk_node *bs, uint64_t off, void *buf, size_t len, struct scuse_err *err);

/* Status of [off, off+len) through the whole chain: *pnum > 0 bytes from
 * off share st. Unallocated everywhere reads as zeros (flags ZERO only). */
int blk_block_status(struct blk_node *bs, uint64_t off, uint64_t len,
                     uint64_t *pnum, struct blk_status *st, struct scuse_err *err);

/* Write flags */
enum {
    BLK_WRITE_FUA = 1u << 0,      /* durable when the call returns */
    BLK_ZERO_MAY_UNMAP = 1u << 1, /* write_zeroes may deallocate */
};

/* Writes: -EROFS on a read-only node, -EINVAL past the end. Once
 * blk_flush() returns, every write completed before it is durable. */
int blk_pwritev(struct blk_node *bs, uint64_t off, const struct iov_view *v, unsigned flags,
                struct scuse_err *err);
int blk_pwrite(struct blk_node *bs, uint64_t off, const void *buf, size_t len, unsigned flags,
               struct scuse_err *err);
int blk_write_zeroes(struct blk_node *bs, uint64_t off, uint64_t len, unsigned flags,
                     struct scuse_err *err);
int blk_discard(struct blk_node *bs, uint64_t off, uint64_t len, struct scuse_err *err);
int blk_flush(struct blk_node *bs, struct scuse_err *err);
/* Store one whole cluster compressed (convert -c): -ENOTSUP where the
 * format cannot or the cluster is already allocated. */
int blk_write_compressed(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                         struct scuse_err *err);
bool blk_can_compress(const struct blk_node *bs);
/* Whether completed writes changed metadata that so far lives only in
 * this process's memory: a process that dies before blk_flush() loses
 * those writes even though their data reached the file. */
bool blk_meta_pending(struct blk_node *bs);

/* Re-read the top image's virtual size (for a daemon told that an image
 * was resized). Sets *changed when bs->size moved. -ENOTSUP for formats
 * whose size only changes through their own metadata (qcow2). */
int blk_refresh_size(struct blk_node *bs, bool *changed, struct scuse_err *err);
/* For drivers' refresh_size: publish a new size (readers on other threads
 * see either the old or the new value). */
void blk_set_size(struct blk_node *bs, uint64_t size);

/* For drivers: read [off, off+len) of what lies below bs (its backing
 * chain, zeros where there is none or past its end) into v. */
int blk_read_below(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                   struct scuse_err *err);

/* The path bs's backing file resolves to (malloc'd), or NULL if none. */
/* name as a file beside the image at path (a file an image names: its
 * backing file, a VMDK extent, a CUE's BIN, a VHD or VHDX parent): as it
 * is when absolute, else in path's directory. malloc'd; NULL: no memory. */
char *blk_path_beside(const char *path, const char *name);
char *blk_backing_path(const struct blk_node *bs);

/* Nodes of the chain from the top, for tools: bs, bs->backing, ... */
unsigned blk_chain_length(const struct blk_node *bs);

/* The format of an open node ("qcow2"). */
const char *blk_format_name(const struct blk_node *bs);
/* Whether the node's driver can store anything (a read-only format is not). */
bool blk_format_writable(const struct blk_node *bs);

#endif
