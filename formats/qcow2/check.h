/* qcow2 create, check/repair and compressed writes: the parts of the
 * driver that work on refcounts directly (pread/pwrite + fdatasync on
 * s->fd, no caches), for an image nobody else is doing I/O on. */
#ifndef SCUSE_QCOW2_CHECK_H
#define SCUSE_QCOW2_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "qcow2/qcow2.h"

/* create.c: the driver's create (qemu-img create -f qcow2 options). */
int qcow2_create(const char *path, const struct blk_create_opts *o, struct scuse_err *err);

/* check.c: the driver's check, in qemu-img check's terms. With fix flags
 * the node must be open read-write (-EROFS otherwise). Messages about
 * each inconsistency go to stderr as qemu-img prints them. */
int qcow2_check(struct blk_node *bs, unsigned fix, struct blk_check_result *res);

/* Repair an image opened read-write, as QEMU does on a read-write open of
 * an image whose dirty bit is set (lazy refcounts), and as `check -r all`
 * does: recompute every refcount from the header, the active and snapshot
 * L1/L2 tables, the snapshot table, the refcount structures and bitmaps;
 * fix stored refcounts in place, or write a new refcount table and blocks
 * at the end of the file (durable before the header points at them) when
 * the old ones cannot hold the result; then fix COPIED flags in the active
 * L1 and L2 tables; fdatasync.
 *
 * Contract with the caller (the writer's open):
 *  - no other I/O on the image while it runs; the caller's refcount and
 *    L2 caches hold nothing dirty (flush them first);
 *  - afterwards the caller drops its cached refcount blocks, refcount
 *    table copy and L2 slices: this function rewrites refcount blocks and
 *    active L2 tables on disk, may move the refcount table (it updates
 *    s->refcount_table_offset and s->refcount_table_clusters), rewrites
 *    L1 entries on disk and in s->l1[], and updates s->file_size;
 *  - it does not touch the dirty bit: the caller clears it once this
 *    returns 0.
 * Returns 0 when the image is consistent afterwards, -EIO when corruption
 * remains that it cannot repair (e.g. an L2 table outside the file), or
 * another negative errno on an I/O error. Prints nothing. */
int qcow2_rebuild_refcounts(struct blk_node *bs, struct qcow2_state *s);

/* compress.c: the driver's write_compressed. Stores one whole cluster at
 * guest offset off (cluster aligned; the image's last cluster may be
 * short and is padded with zeros) compressed with the image's compression
 * type, packed byte-granularly after the previous compressed cluster as
 * QEMU does; incompressible data is stored as a normal cluster. -ENOTSUP
 * when the guest cluster is already allocated. Safe to call from several
 * threads: compression runs in parallel, placement under a lock. */
int qcow2_write_compressed(struct blk_node *bs, uint64_t off, const struct iov_view *v);

#endif
