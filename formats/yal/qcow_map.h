/* Where a qcow version 1 image keeps data: its L1 and L2 tables, read for
 * block status (qcow_map.c); libqcow reads the data but does not say. */
#ifndef SCUSE_YAL_QCOW_MAP_H
#define SCUSE_YAL_QCOW_MAP_H

#include <stdint.h>

#include "blk/blk.h"

struct qcow_map {
    int fd;
    uint64_t *l1;             /* host order */
    uint64_t n_l1, fsize;
    unsigned cluster_bits, l2_bits;
    bool encrypted;
};

/* 0 loaded; 1 not understood (no status: all data); -ENOMEM. */
int qcow_map_load(int fd, uint64_t size, struct qcow_map *m);
void qcow_map_free(struct qcow_map *m);
/* off < the virtual size; len > 0. -errno when an L2 table cannot be read. */
int qcow_map_status(const struct qcow_map *m, uint64_t off, uint64_t len, uint64_t *pnum,
                    struct blk_status *st);

#endif
