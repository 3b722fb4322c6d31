/* What the tools ask of formats, through the registry: create (and its
 * option list), info, check, and the format lists for messages. */
#ifndef SCUSE_BLK_FORMAT_H
#define SCUSE_BLK_FORMAT_H

#include <stdio.h>

#include "blk/blk.h"

/* Format-specific facts for `scuse info`, in qemu-img's vocabulary. */
enum blk_info_kind {
    BLK_INFO_STR, BLK_INFO_BOOL, BLK_INFO_INT,
    /* Nesting, as qemu-img prints VMDK's extents: LIST (with a key) opens
     * a list of objects, OBJ (no key) opens one object in it, END closes
     * the innermost open LIST or OBJ. */
    BLK_INFO_LIST, BLK_INFO_OBJ, BLK_INFO_END,
};

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

#define BLK_INFO_MAX_ITEMS 512

struct blk_info {
    const char *type;                          /* "qcow2" */
    int n_items;
    struct blk_info_item item[BLK_INFO_MAX_ITEMS];
    int n_snapshots;
    struct blk_snapshot_info *snapshots;       /* malloc'd; freed by the caller */
};

/* What check found, in qemu-img check's terms. */
struct blk_check_result {
    uint64_t corruptions, leaks, check_errors;
    uint64_t corruptions_fixed, leaks_fixed;
    uint64_t total_clusters, allocated_clusters, fragmented_clusters, compressed_clusters;
    uint64_t image_end_offset;
};

/* Format-level operations (core/blk/format.c), all through the registry.
 * A format named by an alias is the same format. */
int blk_create(const char *path, const char *fmt, const struct blk_create_opts *o,
               struct scuse_err *err);
/* `-o help`: the options fmt's create takes, one per line, to f. */
int blk_create_help(const char *fmt, FILE *f, struct scuse_err *err);
int blk_info(struct blk_node *bs, struct blk_info *info, struct scuse_err *err);
/* What `info` calls disk size, as qemu-img: the host bytes of the image's
 * own files (every extent file), not of its backing files. */
int blk_allocated(struct blk_node *bs, uint64_t *bytes);
enum {
    BLK_CHECK_FIX_LEAKS = 1u << 0,   /* -r leaks */
    BLK_CHECK_FIX_ERRORS = 1u << 1,  /* -r all (with FIX_LEAKS) */
};
/* -ENOTSUP (with a message) where the format has no check. */
int blk_check(struct blk_node *bs, unsigned fix, struct blk_check_result *res,
              struct scuse_err *err);

/* Which formats do what, for messages and --help: "qcow2, raw". */
enum blk_fmt_filter {
    BLK_FMT_OPEN, BLK_FMT_WRITE, BLK_FMT_CREATE, BLK_FMT_CHECK, BLK_FMT_COMPRESS, BLK_FMT_KNOWN,
    BLK_FMT_BACKING, /* its images may name a backing file */
};
void blk_format_list(enum blk_fmt_filter what, char *buf, size_t len);
/* Whether the format named fmt (or an alias) does what. */
bool blk_format_has(const char *fmt, enum blk_fmt_filter what);
/* One line per format, for `scuse --help`. */
void blk_format_help(FILE *f);

#endif
