/* The format driver contract.
 *
 * A format is one `struct blk_driver` in its own folder under formats/ and
 * one line in core/blk/registry.c. Nothing else names it: the tools, the
 * daemons and their messages learn formats from the registry.
 *
 * What a driver may assume (the block layer makes it true):
 * - Threads. open, close, create and check run alone on their node. Every
 *   other callback (preadv, block_status, pwritev, write_zeroes, discard,
 *   flush, meta_pending, write_compressed, refresh_size, info) may run
 *   concurrently with itself and with the others, from any number of
 *   dispatcher threads, on the same node; the driver serialises what its
 *   metadata needs (per image, never across images). The block layer never
 *   issues two requests that overlap with a write between them unless the
 *   caller did (the SCSI dispatcher orders overlapping commands).
 * - Ranges. off + len <= bs->size, len > 0, and len <= max_transfer when the
 *   driver set one. Requests of every kind (reads, writes, zero writes,
 *   discards, block status queries, compressed writes) start and end on a
 *   multiple of bs->align, except that the end may be bs->size itself when
 *   the size is not a multiple. The block layer bounces unaligned reads,
 *   turns unaligned writes and zero writes into read-modify-write of the
 *   edge blocks (serialised against other writes to the node), and shrinks
 *   unaligned discards to the aligned blocks inside them.
 * - Read-only. Write callbacks are called only on nodes opened read-write
 *   (bs->read_only false); backing nodes are always read-only.
 * - Flags. pwritev sees BLK_WRITE_FUA only when the driver declares
 *   BLK_DRV_FUA; otherwise the block layer flushes after the write.
 *   write_zeroes sees BLK_ZERO_MAY_UNMAP and never FUA.
 * - Errors. Every callback that can fail returns 0 or a negative errno and,
 *   when it fails, records why in err (err_set: the first reason wins),
 *   naming the image and the field or offset; err is never NULL. Drivers do
 *   not log I/O failures: the caller that owns the request decides (the
 *   SCSI layer logs per LUN, a tool prints one line).
 *
 * Required: name, open, close, preadv, block_status. Everything else is
 * optional; a missing write callback makes the format read-only (pwritev),
 * writes zeros through pwritev (write_zeroes) or does nothing (discard,
 * flush). A driver with neither open nor preadv only recognises a format it
 * cannot serve (`unsupported`): probing names it, opening refuses it. */
#ifndef SCUSE_BLK_DRIVER_H
#define SCUSE_BLK_DRIVER_H

#include <stdint.h>

#include "blk/blk.h"
#include "blk/format.h"

/* One option a driver takes (create's -o, or open's per-format options).
 * The block layer refuses keys a driver does not list, and prints the list
 * for `-o help`. */
enum blk_opt_type {
    BLK_OPT_STR, BLK_OPT_SIZE, BLK_OPT_BOOL, BLK_OPT_NUM,
    BLK_OPT_REFUSED, /* qemu-img's option that scuse refuses: the driver says why */
};
struct blk_opt_desc {
    const char *name;         /* "cluster_size" */
    enum blk_opt_type type;
    const char *help;         /* one line, no trailing period */
};

/* Driver capabilities that no callback's presence already says. */
enum {
    BLK_DRV_FUA = 1u << 0,     /* pwritev honours BLK_WRITE_FUA itself */
    BLK_DRV_BACKING = 1u << 1, /* images may name a backing file (create -b) */
};

struct blk_driver {
    const char *name;                 /* QEMU's and libvirt's name: "qcow2", "vpc" */
    const char *const *aliases;       /* other accepted names, NULL-terminated, or NULL */
    const char *description;          /* for `scuse --help`: "QEMU copy-on-write v2/v3" */
    /* Set for a format scuse recognises but cannot serve: its name as
     * people write it ("VMDK"). Such a driver has only a probe. */
    const char *unsupported;
    unsigned caps;                    /* BLK_DRV_* */
    /* 0 = not this format, 100 = certain. */
    int (*probe)(const struct blk_probe *p);

    /* bs->fd, path, filename, read_only, opts are set. Fill size,
     * backing_name/fmt, cluster_size, align, max_transfer, state. */
    int (*open)(struct blk_node *bs, struct scuse_err *err);
    void (*close)(struct blk_node *bs);
    /* Optional: called once bs->backing is open (never with
     * BLK_OPEN_NO_BACKING), to check it against what the image records
     * of its parent (VMDK's parentCID, VHD's parent UUID); failing fails the open. */
    int (*verify_backing)(struct blk_node *bs, struct scuse_err *err);
    int (*preadv)(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                  struct scuse_err *err);
    /* Status of [off, off+len) in this layer only: *pnum > 0 bytes share st. */
    int (*block_status)(struct blk_node *bs, uint64_t off, uint64_t len,
                        uint64_t *pnum, struct blk_status *st, struct scuse_err *err);
    int (*info)(struct blk_node *bs, struct blk_info *info, struct scuse_err *err);
    /* Optional: the bytes the image's own files take on the host (extent
     * files; backing files not included), for a format with files besides
     * bs->fd. Absent: bs->fd's allocation. */
    int (*allocated)(struct blk_node *bs, uint64_t *bytes);

    /* flags: BLK_WRITE_FUA (with BLK_DRV_FUA only). */
    int (*pwritev)(struct blk_node *bs, uint64_t off, const struct iov_view *v, unsigned flags,
                   struct scuse_err *err);
    /* flags: BLK_ZERO_MAY_UNMAP. -ENOTSUP, with no reason in err: the
     * block layer writes zeros through pwritev instead. */
    int (*write_zeroes)(struct blk_node *bs, uint64_t off, uint64_t len, unsigned flags,
                        struct scuse_err *err);
    /* Advisory: may do nothing; reads afterwards return zeros (when the
     * node sets discard_zeroes) or old data. */
    int (*discard)(struct blk_node *bs, uint64_t off, uint64_t len, struct scuse_err *err);
    int (*flush)(struct blk_node *bs, struct scuse_err *err);
    /* Whether flush would write metadata that so far lives only in this
     * process's memory (absent: the format keeps none). */
    bool (*meta_pending)(struct blk_node *bs);

    /* Make a new image at path (the file may exist: replace it). The block
     * layer has checked every key of o->kv against create_opts. */
    int (*create)(const char *path, const struct blk_create_opts *o, struct scuse_err *err);
    const struct blk_opt_desc *create_opts;   /* terminated by a NULL name */
    /* Per-format open options (blk_opts.kv), checked the same way. */
    const struct blk_opt_desc *open_opts;

    /* Consistency check, repairing with fix flags (the node is then open
     * with BLK_OPEN_CHECK). */
    int (*check)(struct blk_node *bs, unsigned fix, struct blk_check_result *res,
                 struct scuse_err *err);
    /* Store one whole, aligned cluster compressed (convert -c); -ENOTSUP
     * where the cluster is already allocated. */
    int (*write_compressed)(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                            struct scuse_err *err);
    /* Re-read the virtual size (the image was grown or shrunk underneath,
     * e.g. `truncate -s`); store it with blk_set_size(). */
    int (*refresh_size)(struct blk_node *bs, struct scuse_err *err);
};

/* The registry (core/blk/registry.c); extra (NULL-terminated, may be
 * NULL) is consulted first: blk_opts.drivers. */
const struct blk_driver *blk_driver_find(const char *name);
const struct blk_driver *blk_driver_find_in(const struct blk_driver *const *extra,
                                            const char *name);
const struct blk_driver *blk_driver_probe(const struct blk_probe *p);
const struct blk_driver *blk_driver_probe_in(const struct blk_driver *const *extra,
                                             const struct blk_probe *p);

/* For drivers: the value of a per-format open option, or NULL. */
const char *blk_open_opt(const struct blk_node *bs, const char *key);

#endif
