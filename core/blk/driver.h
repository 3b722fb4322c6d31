/* The format driver vtable. A driver answers only for its own layer: where
 * it has nothing it says so (block_status without ALLOCATED) or, in
 * preadv, calls blk_read_below(). The block layer does probing, chain
 * walking, clipping and request splitting; drivers may rely on
 * off + len <= bs->size and on requests aligned to bs->align. */
#ifndef SCUSE_BLK_DRIVER_H
#define SCUSE_BLK_DRIVER_H

#include <stdint.h>

#include "blk/blk.h"

/* Format-specific facts for `scuse info`, in qemu-img's vocabulary. */
enum blk_info_kind { BLK_INFO_STR, BLK_INFO_BOOL, BLK_INFO_INT };

struct blk_info_item {
    const char *key;          /* JSON key, e.g. "refcount-bits" */
    const char *label;        /* human label, e.g. "refcount bits" */
    enum blk_info_kind kind;
    const char *s;            /* static or owned by the driver's state */
    bool b;
    int64_t i;
};

struct blk_snapshot_info {
    char id[128];
    char name[256];
    uint64_t vm_state_size;
    uint32_t date_sec, date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t icount;          /* UINT64_MAX if not recorded */
};

#define BLK_INFO_MAX_ITEMS 16

struct blk_info {
    const char *type;                          /* "qcow2" */
    int n_items;
    struct blk_info_item item[BLK_INFO_MAX_ITEMS];
    int n_snapshots;
    struct blk_snapshot_info *snapshots;       /* malloc'd; freed by the caller */
};

/* `-o key=value,...` for create, as qemu-img spells them. */
#define BLK_CREATE_MAX_OPTS 32
struct blk_create_opts {
    uint64_t size;
    const char *backing_file;   /* NULL if none */
    const char *backing_fmt;
    int n;
    struct { const char *key, *val; } kv[BLK_CREATE_MAX_OPTS];
};

/* What `check` found, in qemu-img check's terms. */
struct blk_check_result {
    uint64_t corruptions, leaks, check_errors;
    uint64_t corruptions_fixed, leaks_fixed;
    uint64_t total_clusters, allocated_clusters, fragmented_clusters, compressed_clusters;
    uint64_t image_end_offset;
};

enum {
    BLK_CHECK_FIX_LEAKS = 1u << 0,   /* -r leaks */
    BLK_CHECK_FIX_ERRORS = 1u << 1,  /* -r all (with FIX_LEAKS) */
};

struct blk_driver {
    const char *name;
    /* 0 = not this format, 100 = certain. buf is the file's first bytes. */
    int (*probe)(const uint8_t *buf, size_t len);
    /* bs->fd, path, filename, read_only and opts are set. Fill size,
     * backing_name/fmt, cluster_size, align, max_transfer, state. */
    int (*open)(struct blk_node *bs, struct scuse_err *err);
    void (*close)(struct blk_node *bs);
    int (*preadv)(struct blk_node *bs, uint64_t off, const struct iov_view *v);
    int (*block_status)(struct blk_node *bs, uint64_t off, uint64_t len,
                        uint64_t *pnum, struct blk_status *st);
    /* Optional: format-specific info. */
    int (*info)(struct blk_node *bs, struct blk_info *info);

    /* Writes (optional; absent = read-only format). The block layer has
     * checked bounds and read-only state. flags: BLK_WRITE_FUA. */
    int (*pwritev)(struct blk_node *bs, uint64_t off, const struct iov_view *v, unsigned flags);
    /* flags: BLK_ZERO_MAY_UNMAP. Absent: the block layer writes zeros. */
    int (*write_zeroes)(struct blk_node *bs, uint64_t off, uint64_t len, unsigned flags);
    /* Advisory: may do nothing; reads afterwards return zeros or old data. */
    int (*discard)(struct blk_node *bs, uint64_t off, uint64_t len);
    int (*flush)(struct blk_node *bs);
    /* Optional: whether flush would write metadata that so far lives only
     * in this process's memory (absent: the format keeps none). */
    bool (*meta_pending)(struct blk_node *bs);

    /* Optional: make a new image at path (the file may exist: replace it).
     * Unknown keys in o->kv are refused naming the key. */
    int (*create)(const char *path, const struct blk_create_opts *o, struct scuse_err *err);

    /* Optional: consistency check, repairing with fix flags (the node is
     * then open read-write). */
    int (*check)(struct blk_node *bs, unsigned fix, struct blk_check_result *res);
    /* Optional: store one whole, aligned cluster compressed (convert -c);
     * -ENOTSUP where the cluster is already allocated. */
    int (*write_compressed)(struct blk_node *bs, uint64_t off, const struct iov_view *v);
    /* Optional: re-read the virtual size (the image was grown or shrunk
     * underneath, e.g. `truncate -s`); store it with blk_set_size(). */
    int (*refresh_size)(struct blk_node *bs);
};

extern const struct blk_driver blk_driver_raw;
extern const struct blk_driver blk_driver_qcow2;

const struct blk_driver *blk_driver_find(const char *name);

#endif
