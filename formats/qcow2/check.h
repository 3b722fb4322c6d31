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
int qcow2_check(struct blk_node *bs, unsigned fix, struct blk_check_result *res,
                struct scuse_err *err);

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

/* ---- Internal to create.c, check*.c and refdirect.c ---- */

#define QCOW2_REFT_OFFSET_MASK 0xfffffffffffffe00ull
#define QCOW2_REFT_RESERVED_MASK 0x1ffull
#define QCOW2_AUTOCLEAR_BITMAPS (1ull << 0)

/* Refcounts straight from the file (refdirect.c). The refcount table is
 * kept in memory (host order); blocks are read and written on demand. */
struct qcow2_rd {
    int fd;
    uint32_t cluster_bits;
    uint64_t cluster_size;
    uint32_t order;            /* refcount_order */
    uint32_t epb_bits;         /* log2 of entries per refcount block */
    uint64_t max;              /* largest storable refcount */
    uint64_t table_offset;
    uint32_t table_clusters;
    uint64_t table_entries;
    uint64_t *table;
    uint64_t file_size;
};

/* Entry i of a refcount block of the given order. */
uint64_t qcow2_rd_entry(const uint8_t *blk, uint32_t order, uint64_t i);
void qcow2_rd_set_entry(uint8_t *blk, uint32_t order, uint64_t i, uint64_t v);

/* pread that returns zeros past the end of the file, as QEMU's reads of
 * metadata do. */
int qcow2_pread_zf(int fd, void *buf, size_t len, uint64_t off);

/* Load the refcount table described by s (and the file size). */
int qcow2_rd_open(struct qcow2_rd *rd, const struct qcow2_state *s);
void qcow2_rd_close(struct qcow2_rd *rd);
/* Block of reftable index t into buf (cluster_size bytes): zeros where the
 * entry is 0, past the table or past EOF; -EIO if the entry is unaligned. */
int qcow2_rd_read_block(struct qcow2_rd *rd, uint64_t t, uint8_t *buf);
/* Refcount of cluster k (0 where no block describes it). */
int qcow2_rd_get(struct qcow2_rd *rd, uint64_t k, uint64_t *v);
/* Set cluster k's refcount, growing the refcount structures at the end
 * of the file if no block describes k yet. */
int qcow2_rd_set(struct qcow2_rd *rd, struct qcow2_state *s, uint64_t k, uint64_t v);
/* Make clusters [0, upto) describable: missing blocks (and a larger table
 * if needed) are placed at the end of the file and describe themselves. */
int qcow2_rd_cover(struct qcow2_rd *rd, struct qcow2_state *s, uint64_t upto);
/* Write a complete new refcount structure for want[0..n) (clusters past n
 * get 0) after the end of the file and the old structure, make it durable,
 * then point the header at it. s's reftable fields follow. */
int qcow2_rd_rebuild(struct qcow2_rd *rd, struct qcow2_state *s, const uint32_t *want,
                     uint64_t n);
/* Write the header's refcount table fields and make them durable. */
int qcow2_rd_switch_table(struct qcow2_rd *rd, struct qcow2_state *s, uint64_t off,
                          uint32_t clusters);

static inline void qcow2_wbe16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void qcow2_wbe32(uint8_t *p, uint32_t v)
{
    qcow2_wbe16(p, (uint16_t)(v >> 16));
    qcow2_wbe16(p + 2, (uint16_t)v);
}

static inline void qcow2_wbe64(uint8_t *p, uint64_t v)
{
    qcow2_wbe32(p, (uint32_t)(v >> 32));
    qcow2_wbe32(p + 4, (uint32_t)v);
}

#endif
