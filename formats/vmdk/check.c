/* check: what a reader would trip over, found before it does. Per sparse
 * extent: every grain-table entry inside the file, no grain over the
 * header, descriptor, a directory or a grain table, no grain named twice;
 * the redundant directory and tables equal to the primary ones (-r all
 * rewrites the redundant tables from the primary ones); leaked space
 * (leaks.c; -r leaks gives it back). Problems are printed to stderr one a
 * line, as qemu-img check prints them. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "vmdk/leaks.h"

static int by_start(const void *a, const void *b)
{
    const struct vmdk_span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ERROR: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int read_table(struct vmdk_sparse *sp, uint32_t sector, uint32_t *out, struct scuse_err *err)
{
    uint8_t *raw = malloc(sp->gtes * 4ull);
    if (!raw)
        return err_set(err, -ENOMEM, "out of memory");
    int r = file_pread_exact(sp->fd, raw, sp->gtes * 4ull, (uint64_t)sector * VMDK_SECTOR);
    for (uint32_t k = 0; r == 0 && k < sp->gtes; k++)
        out[k] = vmdk_le32(raw + 4 * k);
    free(raw);
    return r < 0 ? err_set(err, r, "'%s': cannot read a grain table: %s", sp->path, strerror(-r)) : 0;
}

/* Whether entry e could be right: empty, zeroed, or a grain in the file
 * clear of the header, descriptor and directories. */
static bool plausible(const struct vmdk_sparse *sp, uint32_t e, uint64_t fsize)
{
    if (e == 0 || (e == VMDK_GTE_ZEROED && sp->zero_grain))
        return true;
    uint64_t start = (uint64_t)e * VMDK_SECTOR;
    uint64_t end = start + (sp->compressed ? VMDK_SECTOR : sp->grain_bytes);
    return start < fsize && !vmdk_overlaps_meta(sp, start, end);
}

static int write_gt(struct vmdk_sparse *sp, uint32_t sector, const uint32_t *t, struct scuse_err *err)
{
    uint8_t *b = calloc(1, sp->gt_bytes);
    if (!b)
        return err_set(err, -ENOMEM, "out of memory");
    for (uint32_t k = 0; k < sp->gtes; k++)
        vmdk_put32(b + 4 * k, t[k]);
    int r = file_pwrite_exact(sp->fd, b, sp->gt_bytes, (uint64_t)sector * VMDK_SECTOR);
    free(b);
    return r < 0 ? err_set(err, r, "'%s': cannot rewrite a grain table: %s", sp->path,
                           strerror(-r)) : 0;
}

/* Make a table and its redundant copy agree, entry by entry: the copy
 * that points somewhere possible wins, the primary one otherwise. */
static int fix_pair(struct vmdk_sparse *sp, uint64_t gi, uint32_t *gt, uint32_t *rgt,
                    uint64_t fsize, struct scuse_err *err)
{
    bool prim = false, red = false;
    for (uint32_t k = 0; k < sp->gtes; k++) {
        if (gt[k] == rgt[k])
            continue;
        if (!plausible(sp, gt[k], fsize) && plausible(sp, rgt[k], fsize)) {
            __atomic_store_n(&gt[k], rgt[k], __ATOMIC_RELEASE);
            prim = true;
        } else {
            rgt[k] = gt[k];
            red = true;
        }
    }
    int r = 0;
    if (prim)
        r = write_gt(sp, sp->gd[gi], gt, err);
    if (r == 0 && red)
        r = write_gt(sp, sp->rgd[gi], rgt, err);
    if (r == 0 && (r = file_sync(sp->fd)) < 0)
        err_set(err, r, "'%s': cannot sync: %s", sp->path, strerror(-r));
    return r;
}

static int check_extent(struct vmdk_sparse *sp, uint64_t len, unsigned fix,
                        struct blk_check_result *res, struct scuse_err *err)
{
    uint64_t grains = (len + sp->grain_bytes - 1) >> sp->grain_shift;
    res->total_clusters += grains;
    uint64_t bad0 = res->corruptions - res->corruptions_fixed;
    uint64_t fsize = __atomic_load_n(&sp->file_size, __ATOMIC_ACQUIRE);
    size_t cap = 64, n = 0;
    struct vmdk_span *sp_list = malloc(cap * sizeof(*sp_list));
    uint32_t *rgt = malloc(sp->gtes * 4ull);
    int r = sp_list && rgt ? 0 : err_set(err, -ENOMEM, "out of memory");
    for (int i = 0; r == 0 && i < sp->n_meta; i++)
        sp_list[n++] = (struct vmdk_span){ sp->meta[i].start, sp->meta[i].end, 0, UINT64_MAX };
    for (uint64_t gi = 0; r == 0 && gi < sp->n_gd; gi++) {
        uint32_t *gt;
        r = vmdk_gt_get(sp, gi, &gt, err);
        if (r < 0)
            break;
        if (sp->rgd && !sp->stream && (sp->rgd[gi] == 0) != (sp->gd[gi] == 0)) {
            report("'%s': grain directory entry %" PRIu64 " is %" PRIu32 ", its redundant copy %"
                   PRIu32, sp->path, gi, sp->gd[gi], sp->rgd[gi]);
            res->corruptions++;
        } else if (sp->rgd && gt && sp->rgd[gi]) {
            r = read_table(sp, sp->rgd[gi], rgt, err);
            if (r == 0 && memcmp(rgt, gt, sp->gtes * 4ull) != 0) {
                uint32_t k = 0;
                while (rgt[k] == gt[k])
                    k++;
                report("'%s': redundant grain table %" PRIu64 " differs from the primary one "
                       "(entry %" PRIu32 ": %" PRIu32 ", primary %" PRIu32 ")", sp->path, gi, k,
                       rgt[k], gt[k]);
                res->corruptions++;
                if (fix & BLK_CHECK_FIX_ERRORS) {
                    r = fix_pair(sp, gi, gt, rgt, fsize, err);
                    if (r == 0)
                        res->corruptions_fixed++;
                }
            }
            if (r == 0 && n + 1 >= cap) { /* the redundant table itself */
                struct vmdk_span *m = realloc(sp_list, (cap *= 2) * sizeof(*m));
                if (!m)
                    r = err_set(err, -ENOMEM, "out of memory");
                else
                    sp_list = m;
            }
            if (r == 0)
                sp_list[n++] = (struct vmdk_span){ (uint64_t)sp->rgd[gi] * VMDK_SECTOR,
                                                (uint64_t)sp->rgd[gi] * VMDK_SECTOR + sp->gtes * 4ull, 0, gi };
        }
        if (r < 0 || !gt)
            continue;
        if (n + sp->gtes + 1 >= cap) {
            while (n + sp->gtes + 1 >= cap)
                cap *= 2;
            struct vmdk_span *m = realloc(sp_list, cap * sizeof(*m));
            if (!m) {
                r = err_set(err, -ENOMEM, "out of memory");
                break;
            }
            sp_list = m;
        }
        sp_list[n++] = (struct vmdk_span){ (uint64_t)sp->gd[gi] * VMDK_SECTOR,
                                        (uint64_t)sp->gd[gi] * VMDK_SECTOR + sp->gtes * 4ull, 0, gi };
        for (uint32_t k = 0; k < sp->gtes; k++) {
            uint32_t e = gt[k];
            uint64_t g = gi * sp->gtes + k;
            if (e == 0 || (e == VMDK_GTE_ZEROED && sp->zero_grain) || g >= grains)
                continue;
            res->allocated_clusters++;
            if (sp->compressed)
                res->compressed_clusters++;
            uint64_t start = (uint64_t)e * VMDK_SECTOR;
            uint64_t end = start + (sp->compressed ? VMDK_SECTOR : sp->grain_bytes);
            if (start >= fsize) {
                report("'%s': grain %" PRIu64 " (sector %" PRIu32 ") points past the end of the "
                       "file", sp->path, g, e);
                res->corruptions++;
                continue;
            }
            sp_list[n++] = (struct vmdk_span){ start, end, 1, g };
        }
    }
    if (r == 0) {
        /* overlaps: sorted by start, each range against the furthest end so far */
        qsort(sp_list, n, sizeof(*sp_list), by_start);
        uint64_t reach = 0;
        size_t owner = 0;
        for (size_t i = 0; i < n; i++) {
            struct vmdk_span *c = &sp_list[i], *o = &sp_list[owner];
            if (i > 0 && c->start < reach && (c->kind != 0 || o->kind != 0) &&
                c->kind != 2 && o->kind != 2) {
                /* one line per bad grain (kind 2: reported) */
                if (c->kind == 1 && o->kind == 1)
                    report("'%s': grains %" PRIu64 " and %" PRIu64 " overlap (offsets %" PRIu64
                           " and %" PRIu64 ")", sp->path, o->id, c->id, o->start, c->start);
                else
                    report("'%s': grain %" PRIu64 " (offset %" PRIu64 ") overlaps metadata (a "
                           "header, descriptor, grain directory or grain table)", sp->path,
                           (c->kind == 1 ? c : o)->id, (c->kind == 1 ? c : o)->start);
                res->corruptions++;
                if (c->kind == 1)
                    c->kind = 2;
                else
                    o->kind = 2;
            }
            if (c->end > reach) {
                reach = c->end;
                owner = i;
            }
        }
    }
    if (r == 0) {
        /* Leaks need the spans apart: with an overlap left, moving grains
         * could move the wrong one, so they are only counted. */
        bool fix_leaks = (fix & BLK_CHECK_FIX_LEAKS) &&
                         res->corruptions - res->corruptions_fixed == bad0;
        if ((fix & BLK_CHECK_FIX_LEAKS) && !fix_leaks)
            fprintf(stderr, "'%s': leaks are not repaired while corruptions remain\n", sp->path);
        r = vmdk_leaks(sp, sp_list, n, fix_leaks, res, err);
        fsize = __atomic_load_n(&sp->file_size, __ATOMIC_ACQUIRE);
        if (fsize > res->image_end_offset)
            res->image_end_offset = fsize;
    }
    free(sp_list);
    free(rgt);
    return r;
}

int vmdk_check(struct blk_node *bs, unsigned fix, struct blk_check_result *res,
               struct scuse_err *err)
{
    struct vmdk_state *s = bs->state;
    if (fix && bs->read_only)
        return err_set(err, -EROFS, "'%s': repairs need a read-write open", bs->path);
    for (size_t i = 0; i < s->n_ext; i++) {
        struct vmdk_extent *x = &s->ext[i];
        if (!x->sp)
            continue;
        int r = check_extent(x->sp, x->len, fix, res, err);
        if (r < 0) {
            res->check_errors++;
            return r;
        }
    }
    return 0;
}
