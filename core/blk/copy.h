/* Copy a whole chain's guest view into a raw file descriptor, in parallel,
 * skipping what reads as zeros (block status first, then a scan of the
 * data itself), as `qemu-img convert -O raw` does. */
#ifndef SCUSE_BLK_COPY_H
#define SCUSE_BLK_COPY_H

#include <stdbool.h>
#include <stdint.h>

#include "blk/blk.h"

struct blk_copy_opts {
    unsigned threads;        /* 0 = one per online CPU */
    bool dst_is_zeroed;      /* destination reads as zeros already (fresh sparse file) */
    bool compress;           /* blk_copy_to_node: write whole clusters compressed */
    /* Called with bytes done so far, from any worker, serialised. */
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *progress_ctx;
};

/* Where and why a copy failed. */
struct blk_copy_failure {
    uint64_t off;             /* guest offset of the failing request */
    bool writing;             /* the destination failed, not the source */
    char msg[SCUSE_ERR_MAX];            /* the driver's logged reason, or "" */
};

/* 0 or negative errno; on failure *f (if given) says where and why. */
int blk_copy_to_fd(struct blk_node *src, int dst_fd, const struct blk_copy_opts *o,
                   struct blk_copy_failure *f);

/* The same into an open, writable node (e.g. a new qcow2 image; no backing
 * file). With o->compress, every destination cluster that is not all zeros
 * goes through the driver's write_compressed (compression runs in the
 * workers); otherwise data runs go through blk_pwritev, zero grains left
 * out when o->dst_is_zeroed. */
int blk_copy_to_node(struct blk_node *src, struct blk_node *dst, const struct blk_copy_opts *o,
                     struct blk_copy_failure *f);

#endif
