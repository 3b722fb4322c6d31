/* Leaked space in a sparse extent: bytes past the header's overhead that
 * no grain table, grain directory or grain-table entry covers. Grains and
 * tables are only ever appended, so a writer killed between writing a
 * grain and flushing the table that points at it leaves such bytes (the
 * crash-safe order of write.c: data first); they waste space, nothing
 * reads them. Counted as qemu-img counts qcow2's leaked clusters: one per
 * grain-sized piece (rounded up).
 *
 * VMDK has no free-space map, so the only repair is to give the space
 * back: grains at the end of the file move down into the leaked holes
 * (data written and synced before the tables point at it, primary table
 * then redundant one, synced), then the file is cut after its last used
 * byte. Holes smaller than a grain, or with a table after them, stay. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/file.h"
#include "vmdk/leaks.h"

#define SECT_UP(x) (((x) + VMDK_SECTOR - 1) & ~(uint64_t)(VMDK_SECTOR - 1))
#define SECT_DOWN(x) ((x) & ~(uint64_t)(VMDK_SECTOR - 1))

static uint64_t grains_in(const struct vmdk_sparse *sp, uint64_t bytes)
{
    return (bytes + sp->grain_bytes - 1) >> sp->grain_shift;
}

/* Where appended data may start: past the overhead and the fixed metadata. */
static uint64_t data_start(const struct vmdk_sparse *sp)
{
    uint64_t s = sp->h.overhead * VMDK_SECTOR;
    for (int i = 0; i < sp->n_meta; i++)
        if (sp->meta[i].end > s)
            s = sp->meta[i].end;
    return SECT_UP(s);
}

/* Point grain g at sector to (both tables, on disk and in memory). */
static int repoint(struct vmdk_sparse *sp, uint64_t g, uint32_t to, struct scuse_err *err)
{
    uint64_t gi = g / sp->gtes, k = g % sp->gtes;
    uint8_t b[4];
    vmdk_put32(b, to);
    int r = file_pwrite_exact(sp->fd, b, 4, (uint64_t)sp->gd[gi] * VMDK_SECTOR + 4 * k);
    if (r == 0 && sp->rgd && sp->rgd[gi])
        r = file_pwrite_exact(sp->fd, b, 4, (uint64_t)sp->rgd[gi] * VMDK_SECTOR + 4 * k);
    if (r < 0)
        return err_set(err, r, "'%s': cannot rewrite a grain-table entry: %s", sp->path,
                       strerror(-r));
    __atomic_store_n(&sp->gt[gi][k], to, __ATOMIC_RELEASE);
    return 0;
}

/* Copy the grain at from to to, synced. */
static int copy_grain(struct vmdk_sparse *sp, uint8_t *buf, uint64_t from, uint64_t to,
                      struct scuse_err *err)
{
    int r = file_pread_exact(sp->fd, buf, sp->grain_bytes, from);
    if (r == 0)
        r = file_pwrite_exact(sp->fd, buf, sp->grain_bytes, to);
    if (r == 0)
        r = file_sync(sp->fd);
    return r < 0 ? err_set(err, r, "'%s': cannot move a grain from offset %" PRIu64 " to %" PRIu64
                           ": %s", sp->path, from, to, strerror(-r)) : 0;
}

int vmdk_leaks(struct vmdk_sparse *sp, struct vmdk_span *s, size_t n, bool fix,
               struct blk_check_result *res, struct scuse_err *err)
{
    uint64_t fsize = __atomic_load_n(&sp->file_size, __ATOMIC_ACQUIRE);
    uint64_t start = data_start(sp);
    if (sp->compressed || start >= fsize)
        return 0;
    /* The holes, in order (s is sorted by start). */
    size_t nh = 0, cap = 16;
    struct vmdk_range *hole = malloc(cap * sizeof(*hole));
    if (!hole)
        return err_set(err, -ENOMEM, "out of memory");
    uint64_t reach = start;
    for (size_t i = 0; i <= n; i++) {
        uint64_t next = i < n ? s[i].start : fsize;
        if (next > fsize)
            next = fsize;
        uint64_t a = SECT_UP(reach), b = SECT_DOWN(next);
        if (b > a) {
            if (nh == cap) {
                struct vmdk_range *m = realloc(hole, (cap *= 2) * sizeof(*m));
                if (!m) {
                    free(hole);
                    return err_set(err, -ENOMEM, "out of memory");
                }
                hole = m;
            }
            hole[nh++] = (struct vmdk_range){ a, b };
        }
        if (i < n && s[i].end > reach)
            reach = s[i].end;
    }
    uint64_t leaked = 0;
    for (size_t i = 0; i < nh; i++) {
        uint64_t k = grains_in(sp, hole[i].end - hole[i].start);
        fprintf(stderr, "%s '%s': bytes %" PRIu64 " to %" PRIu64 " (%" PRIu64 " grain%s) are "
                "not referenced by any grain table\n", fix ? "Repairing leak:" : "Leaked:",
                sp->path, hole[i].start, hole[i].end, k, k == 1 ? "" : "s");
        leaked += k;
    }
    int r = 0;
    for (size_t i = 1; fix && i < n; i++)
        if (s[i].start < s[i - 1].end && s[i].end > start) {
            fprintf(stderr, "'%s': leaks are not repaired: used ranges overlap at offset %" PRIu64
                    "\n", sp->path, s[i].start);
            fix = false;
        }
    if (!fix || nh == 0) {
        res->leaks += leaked;
        free(hole);
        return 0;
    }
    /* Grains from the end into the holes from the front. */
    uint8_t *buf = malloc(sp->grain_bytes);
    if (!buf)
        r = err_set(err, -ENOMEM, "out of memory");
    size_t tail = n, h = 0;
    while (r == 0 && tail > 0 && h < nh) {
        struct vmdk_span *t = &s[tail - 1];
        if (t->start < start) /* the fixed metadata: nothing more to move */
            break;
        if (hole[h].end - hole[h].start < sp->grain_bytes || hole[h].start >= t->start) {
            if (hole[h].start >= t->start)
                break;
            h++;
            continue;
        }
        if (t->kind != VMDK_SPAN_GRAIN) /* a table (or a bad grain) last: it stays */
            break;
        uint64_t to = hole[h].start;
        r = copy_grain(sp, buf, t->start, to, err);
        if (r == 0)
            r = repoint(sp, t->id, (uint32_t)(to / VMDK_SECTOR), err);
        if (r == 0)
            r = file_sync(sp->fd) < 0 ? err_set(err, -EIO, "'%s': cannot sync", sp->path) : 0;
        if (r < 0)
            break;
        t->end = to + (t->end - t->start);
        t->start = to;
        hole[h].start += sp->grain_bytes;
        /* the moved grain now sits before every other hole: re-sort by one step */
        struct vmdk_span moved = *t;
        size_t at = tail - 1;
        while (at > 0 && s[at - 1].start > moved.start) {
            s[at] = s[at - 1];
            at--;
        }
        s[at] = moved;
        /* the tail is the last span whose end is the furthest */
    }
    free(buf);
    if (r == 0) {
        uint64_t end = start;
        for (size_t i = 0; i < n; i++)
            if (s[i].end > end)
                end = s[i].end;
        end = SECT_UP(end);
        if (end < fsize) {
            if (ftruncate(sp->fd, (off_t)end) < 0 || file_sync(sp->fd) < 0)
                r = err_set(err, -errno, "'%s': cannot cut the file at %" PRIu64 ": %s", sp->path,
                            end, strerror(errno));
            else {
                __atomic_store_n(&sp->file_size, end, __ATOMIC_RELEASE);
                if (sp->writer && sp->alloc_end > end)
                    sp->alloc_end = end;
            }
        }
        /* what is left: the holes before the new end */
        uint64_t left = 0;
        for (size_t i = 0; r == 0 && i < nh; i++)
            if (hole[i].start < end && hole[i].end > hole[i].start)
                left += grains_in(sp, (hole[i].end < end ? hole[i].end : end) - hole[i].start);
        if (r == 0) {
            res->leaks_fixed += leaked > left ? leaked - left : 0;
            res->leaks += left;
        }
    }
    free(hole);
    return r;
}
