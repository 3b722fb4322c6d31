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
/* Where the metadata item guid (as stored) is in the file: 0, -ENOENT, -ENOMEM. */
int vhdx_meta_find(int fd, const uint8_t *guid, uint64_t *off, uint32_t *len);

/* A differencing VHDX's parent locator: the paths it records, as UTF-8
 * with '/' for '\' (empty when absent). 0, or -errno with why set. */
struct vhdx_locator {
    char relative[1024], absolute[1024], volume[1024];
};
int vhdx_parent_locator(int fd, struct vhdx_locator *loc, char *why, size_t wl);

#endif
