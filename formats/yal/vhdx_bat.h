/* A VHDX's BAT, read for block status (vhdx_bat.c). */
#ifndef SCUSE_YAL_VHDX_BAT_H
#define SCUSE_YAL_VHDX_BAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blk/blk.h"

enum {
    VHDX_BLOCK_NOT_PRESENT = 0,
    VHDX_BLOCK_ZERO = 2,
    VHDX_BLOCK_FULLY_PRESENT = 6,
};

struct vhdx_bat {
    uint64_t *entry;          /* as stored (little-endian) */
    uint64_t n_entries, n_blocks;
    uint32_t block, chunk;    /* block size; payload blocks per sector-bitmap entry */
    bool has_parent;
};

/* 0 loaded; 1 not understood (no status: all data); -ENOMEM. size: the
 * virtual size libvhdi reports. */
int vhdx_bat_load(int fd, uint64_t size, struct vhdx_bat *b);
void vhdx_bat_free(struct vhdx_bat *b);
/* off < the virtual size; len > 0. */
void vhdx_bat_status(const struct vhdx_bat *b, uint64_t off, uint64_t len, uint64_t *pnum,
                     struct blk_status *st);
uint32_t vhdx_crc32c(const uint8_t *p, size_t n);

#endif
