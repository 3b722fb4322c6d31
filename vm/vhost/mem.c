/* The memory table: mapping, unmapping and checked translation. A
 * handful of regions (QEMU sends two for a q35 guest below 4 GiB), so a
 * linear scan is the lookup. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vhost/mem.h"

void vhost_mem_init(struct vhost_mem *m)
{
    memset(m, 0, sizeof(*m));
}

/* Do [a, a + alen) and [b, b + blen) share a byte? (no wrap: checked) */
static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

int vhost_mem_add(struct vhost_mem *m, const struct vhu_region *reg, int fd,
                  struct scuse_err *err)
{
    int r = 0;
    uint64_t gpa = reg->gpa, size = reg->size, uva = reg->uva, off = reg->mmap_offset;
    if (m->n == VHOST_MAX_MEM_SLOTS) {
        r = err_set(err, -ENOSPC, "more than %d memory regions", VHOST_MAX_MEM_SLOTS);
        goto out;
    }
    if (size == 0 || gpa + size < gpa || uva + size < uva || off + size < off ||
        size > SIZE_MAX / 2) {
        r = err_set(err, -EINVAL, "memory region gpa 0x%llx size 0x%llx uva 0x%llx offset "
                    "0x%llx: empty or wrapping", (unsigned long long)gpa,
                    (unsigned long long)size, (unsigned long long)uva, (unsigned long long)off);
        goto out;
    }
    for (unsigned i = 0; i < m->n; i++) {
        const struct vhost_region *o = &m->r[i];
        if (overlaps(gpa, size, o->gpa, o->size) || overlaps(uva, size, o->uva, o->size)) {
            r = err_set(err, -EINVAL, "memory region gpa 0x%llx size 0x%llx overlaps the "
                        "region at gpa 0x%llx size 0x%llx", (unsigned long long)gpa,
                        (unsigned long long)size, (unsigned long long)o->gpa,
                        (unsigned long long)o->size);
            goto out;
        }
    }
    /* A mapping past the end of the file would fault on first touch. */
    struct stat st;
    if (fstat(fd, &st) < 0) {
        r = err_set(err, -errno, "memory region fd: %s", strerror(errno));
        goto out;
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < off + size) {
        r = err_set(err, -EINVAL, "memory region gpa 0x%llx: the fd holds %lld bytes, the "
                    "region needs %llu", (unsigned long long)gpa, (long long)st.st_size,
                    (unsigned long long)(off + size));
        goto out;
    }
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t map_off = off & ~(page - 1);
    size_t map_len = (size_t)(size + (off - map_off));
    void *p = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)map_off);
    if (p == MAP_FAILED) {
        r = err_set(err, -errno, "cannot map memory region gpa 0x%llx size 0x%llx: %s",
                    (unsigned long long)gpa, (unsigned long long)size, strerror(errno));
        goto out;
    }
    struct vhost_region *n = &m->r[m->n++];
    n->gpa = gpa;
    n->size = size;
    n->uva = uva;
    n->map = p;
    n->map_len = map_len;
    n->host = (uint8_t *)p + (off - map_off);
out:
    close(fd);
    return r;
}

int vhost_mem_remove(struct vhost_mem *m, const struct vhu_region *reg, struct scuse_err *err)
{
    for (unsigned i = 0; i < m->n; i++) {
        struct vhost_region *o = &m->r[i];
        if (o->gpa == reg->gpa && o->size == reg->size && o->uva == reg->uva) {
            munmap(o->map, o->map_len);
            m->r[i] = m->r[--m->n];
            return 0;
        }
    }
    return err_set(err, -ENOENT, "no memory region at gpa 0x%llx size 0x%llx uva 0x%llx",
                   (unsigned long long)reg->gpa, (unsigned long long)reg->size,
                   (unsigned long long)reg->uva);
}

void vhost_mem_clear(struct vhost_mem *m)
{
    for (unsigned i = 0; i < m->n; i++)
        munmap(m->r[i].map, m->r[i].map_len);
    m->n = 0;
}

static const struct vhost_region *find_gpa(const struct vhost_mem *m, uint64_t gpa)
{
    for (unsigned i = 0; i < m->n; i++)
        if (gpa - m->r[i].gpa < m->r[i].size)
            return &m->r[i];
    return NULL;
}

int vhost_mem_gpa_iov(const struct vhost_mem *m, uint64_t gpa, uint64_t len,
                      struct iovec *iov, unsigned max)
{
    unsigned n = 0;
    if (gpa + len < gpa)
        return -EFAULT;
    while (len) {
        const struct vhost_region *r = find_gpa(m, gpa);
        if (!r)
            return -EFAULT;
        if (n == max)
            return -E2BIG;
        uint64_t in = r->size - (gpa - r->gpa);
        uint64_t take = len < in ? len : in;
        iov[n].iov_base = r->host + (gpa - r->gpa);
        iov[n].iov_len = (size_t)take;
        n++;
        gpa += take;
        len -= take;
    }
    return (int)n;
}

void *vhost_mem_gpa_ptr(const struct vhost_mem *m, uint64_t gpa, uint64_t len)
{
    const struct vhost_region *r = find_gpa(m, gpa);
    if (!r || len > r->size - (gpa - r->gpa))
        return NULL;
    return r->host + (gpa - r->gpa);
}

void *vhost_mem_uva_ptr(const struct vhost_mem *m, uint64_t uva, uint64_t len)
{
    for (unsigned i = 0; i < m->n; i++) {
        const struct vhost_region *r = &m->r[i];
        if (uva - r->uva < r->size && len <= r->size - (uva - r->uva))
            return r->host + (uva - r->uva);
    }
    return NULL;
}
