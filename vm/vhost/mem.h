/* Guest memory as the front-end shares it: regions of guest-physical
 * space, each an mmap of an fd QEMU sent, and the only way the back-end
 * reaches guest RAM: translations that check every byte lies inside a
 * mapped region. Descriptors carry guest-physical addresses (GPA); ring
 * addresses from SET_VRING_ADDR are QEMU's virtual addresses (UVA). */
#ifndef SCUSE_VHOST_MEM_H
#define SCUSE_VHOST_MEM_H

#include <stdint.h>
#include <sys/uio.h>

#include "util/err.h"
#include "vhost/proto.h"

/* Regions at once (GET_MAX_MEM_SLOTS answers this). */
#define VHOST_MAX_MEM_SLOTS 32

struct vhost_region {
    uint64_t gpa, size, uva;
    uint8_t *host;                  /* the region's first byte in this process */
    void *map;                      /* the mmap (from the page below mmap_offset) */
    size_t map_len;
};

struct vhost_mem {
    struct vhost_region r[VHOST_MAX_MEM_SLOTS];
    unsigned n;
};

void vhost_mem_init(struct vhost_mem *m);
/* Map a region. The fd is closed here whatever happens (a mapping keeps
 * the memory). Refused: empty or wrapping ranges, an fd smaller than
 * mmap_offset + size, overlaps with a mapped region (guest-physical or
 * front-end virtual), more than VHOST_MAX_MEM_SLOTS regions. */
int vhost_mem_add(struct vhost_mem *m, const struct vhu_region *reg, int fd,
                  struct scuse_err *err);
/* Unmap the region with this gpa, size and uva. The caller makes sure
 * nothing uses it (no request in flight). */
int vhost_mem_remove(struct vhost_mem *m, const struct vhu_region *reg, struct scuse_err *err);
void vhost_mem_clear(struct vhost_mem *m);

/* [gpa, gpa + len) as iovecs into iov[0..max), a new one where the range
 * crosses into the next region. Returns the count (0 for len 0),
 * -EFAULT when a byte is outside every region, -E2BIG when max iovecs
 * are not enough. */
int vhost_mem_gpa_iov(const struct vhost_mem *m, uint64_t gpa, uint64_t len,
                      struct iovec *iov, unsigned max);
/* [gpa, gpa + len) when it lies inside one region, else NULL. */
void *vhost_mem_gpa_ptr(const struct vhost_mem *m, uint64_t gpa, uint64_t len);
/* The same for a front-end virtual address range. */
void *vhost_mem_uva_ptr(const struct vhost_mem *m, uint64_t uva, uint64_t len);

#endif
