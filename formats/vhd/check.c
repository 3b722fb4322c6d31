/* check -f vpc (qemu-img has none): the layout (BAT entries past the end
 * of the file, blocks overlapping each other or the metadata), the footer
 * at the end against the one in use, bytes past the last block, and, in a
 * dynamic disk, data under clear bitmap bits (which QEMU would read and
 * the specification reads as zeros).
 *
 * Repairs (-r all): entries past the end or overlapping are freed (their
 * blocks are lost; of two overlapping blocks the one with the lower BAT
 * index is kept), data under clear bits is zeroed, the footer is written
 * after the last block. -r leaks cuts what lies past the last block. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/file.h"
#include "vhd/vhd.h"

struct extent {
    uint64_t start, end;
    int64_t blk;        /* BAT index, or -1 for metadata */
    const char *what;   /* metadata's name */
};

static int by_start(const void *a, const void *b)
{
    const struct extent *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->blk < y->blk ? -1 : x->blk > y->blk;
}

static void name_of(const struct extent *e, char *buf, size_t len)
{
    if (e->blk >= 0)
        snprintf(buf, len, "block %" PRId64 " at %" PRIu64, e->blk, e->start);
    else
        snprintf(buf, len, "%s at %" PRIu64, e->what, e->start);
}

/* Every structure of a sparse disk, sorted by offset. */
static int extents(const struct vhd_state *s, struct extent **out, size_t *n)
{
    size_t cap = 4 + VHD_NLOC, k = 0;
    for (uint32_t i = 0; i < s->n_bat; i++)
        cap += s->bat[i] != VHD_BAT_FREE;
    struct extent *e = malloc(cap * sizeof(*e));
    if (!e)
        return -ENOMEM;
    if (s->head_copy)
        e[k++] = (struct extent){ 0, VHD_FOOTER_SIZE, -1, "the footer copy" };
    e[k++] = (struct extent){ s->ft.data_offset, s->ft.data_offset + VHD_DYN_HEADER_SIZE, -1,
                              "the dynamic header" };
    if (s->n_bat)
        e[k++] = (struct extent){ s->dh.table_offset, s->dh.table_offset + (uint64_t)s->n_bat * 4,
                                  -1, "the BAT" };
    static const char *const locnames[VHD_NLOC] = {
        "parent locator 0", "parent locator 1", "parent locator 2", "parent locator 3",
        "parent locator 4", "parent locator 5", "parent locator 6", "parent locator 7",
    };
    for (int i = 0; s->diff && i < VHD_NLOC; i++)
        if (s->dh.loc[i].code && s->dh.loc[i].length)
            e[k++] = (struct extent){ s->dh.loc[i].offset,
                                      s->dh.loc[i].offset + s->dh.loc[i].length, -1, locnames[i] };
    uint64_t span = (uint64_t)s->bitmap_size + s->block_size;
    for (uint32_t i = 0; i < s->n_bat; i++)
        if (s->bat[i] != VHD_BAT_FREE)
            e[k++] = (struct extent){ (uint64_t)s->bat[i] * VHD_SECTOR,
                                      (uint64_t)s->bat[i] * VHD_SECTOR + span, i, NULL };
    qsort(e, k, sizeof(*e), by_start);
    *out = e;
    *n = k;
    return 0;
}

/* Walks the problems: each block past the end of the file, and each block
 * overlapping something before it. fn returns nonzero to stop. */
typedef int (*problem_fn)(void *ctx, uint32_t blk, const char *msg);

static int walk(const struct vhd_state *s, problem_fn fn, void *ctx)
{
    struct extent *e;
    size_t n;
    if (extents(s, &e, &n) < 0)
        return -ENOMEM;
    uint64_t limit = s->file_size;
    if (s->tail_ok && !s->writable)
        limit = s->file_size - VHD_FOOTER_SIZE;
    int stop = 0;
    size_t last = SIZE_MAX; /* the extent that reaches furthest so far */
    for (size_t i = 0; i < n && !stop; i++) {
        char a[96], b[96], msg[256];
        if (e[i].blk >= 0 && e[i].end > s->file_size) {
            name_of(&e[i], a, sizeof(a));
            snprintf(msg, sizeof(msg), "BAT entry %" PRId64 " puts %s, past the end of the file "
                     "(size %" PRIu64 ")", e[i].blk, a, s->file_size);
            stop = fn(ctx, (uint32_t)e[i].blk, msg);
            continue;
        }
        if (last != SIZE_MAX && e[i].start < e[last].end) {
            /* of the two, a block is the one at fault (the later index) */
            const struct extent *bad = &e[i], *other = &e[last];
            if (bad->blk < 0 || (other->blk >= 0 && other->blk > bad->blk)) {
                bad = &e[last];
                other = &e[i];
            }
            if (bad->blk >= 0) {
                name_of(bad, a, sizeof(a));
                name_of(other, b, sizeof(b));
                snprintf(msg, sizeof(msg), "%s overlaps %s", a, b);
                stop = fn(ctx, (uint32_t)bad->blk, msg);
                if (bad == &e[last]) {
                    last = i;
                }
                continue;
            }
        }
        if (e[i].blk >= 0 && s->tail_ok && e[i].end > limit && !s->writable) {
            name_of(&e[i], a, sizeof(a));
            snprintf(msg, sizeof(msg), "%s overlaps the footer at the end of the file", a);
            stop = fn(ctx, (uint32_t)e[i].blk, msg);
            continue;
        }
        if (last == SIZE_MAX || e[i].end > e[last].end)
            last = i;
    }
    free(e);
    return stop;
}

static int first_problem(void *ctx, uint32_t blk, const char *msg)
{
    (void)blk;
    struct vhd_problem *p = ctx;
    snprintf(p->msg, sizeof(p->msg), "%s", msg);
    return 1;
}

int vhd_layout_problem(const struct vhd_state *s, struct vhd_problem *p)
{
    return walk(s, first_problem, p) == 1;
}

struct fixes {
    struct vhd_state *s;
    unsigned fix;
    uint64_t corruptions, fixed;
    uint32_t *bad;
    size_t nbad;
};

static int collect(void *ctx, uint32_t blk, const char *msg)
{
    struct fixes *f = ctx;
    fprintf(stderr, "ERROR %s\n", msg);
    f->corruptions++;
    f->bad[f->nbad++] = blk;
    return 0;
}

static int write_bat_entry(struct vhd_state *s, uint32_t i, uint32_t v)
{
    uint8_t b[4];
    vhd_put_be32(b, v);
    return file_pwrite_exact(s->fd, b, 4, s->dh.table_offset + (uint64_t)i * 4);
}

/* Data under clear bits of allocated blocks of a dynamic disk. */
static int check_bitmaps(struct vhd_state *s, unsigned fix, struct blk_check_result *res,
                         struct scuse_err *err)
{
    uint8_t *bm = malloc(s->bitmap_size), *sec = malloc(VHD_SECTOR);
    static const uint8_t zero[VHD_SECTOR];
    int r = bm && sec ? 0 : err_set(err, -ENOMEM, "out of memory");
    for (uint32_t blk = 0; r == 0 && blk < s->n_blocks; blk++) {
        uint32_t e = s->bat[blk];
        if (e == VHD_BAT_FREE)
            continue;
        uint64_t host = (uint64_t)e * VHD_SECTOR;
        if (host + s->bitmap_size + s->block_size > s->file_size)
            continue; /* reported (and freed by -r all) above */
        r = file_pread_exact(s->fd, bm, s->bitmap_size, host);
        if (r < 0) {
            r = err_set(err, r, "'%s': cannot read the bitmap of block %u: %s", s->path, blk,
                        strerror(-r));
            break;
        }
        uint64_t left = (s->size - ((uint64_t)blk << s->block_shift)) / VHD_SECTOR;
        uint32_t n = left < s->spb ? (uint32_t)left : s->spb;
        uint64_t stale = 0, fixed = 0;
        for (uint32_t sct = 0; r == 0 && sct < n; sct++) {
            if (vhd_bit(bm, sct))
                continue;
            uint64_t at = host + s->bitmap_size + (uint64_t)sct * VHD_SECTOR;
            r = file_pread_exact(s->fd, sec, VHD_SECTOR, at);
            if (r == -EIO)
                r = 0, memset(sec, 0, VHD_SECTOR); /* past EOF: zeros */
            if (r < 0)
                break;
            if (memcmp(sec, zero, VHD_SECTOR) == 0)
                continue;
            stale++;
            if ((fix & BLK_CHECK_FIX_ERRORS) && (r = file_pwrite_exact(s->fd, zero, VHD_SECTOR, at)) == 0)
                fixed++;
        }
        if (r < 0) {
            r = err_set(err, r, "'%s': cannot read or repair block %u: %s", s->path, blk,
                        strerror(-r));
            break;
        }
        if (stale) {
            fprintf(stderr, "%s block %u: %" PRIu64 " sector(s) with a clear bitmap bit hold "
                    "data (QEMU reads it, the specification reads zeros)\n",
                    fixed == stale ? "Repairing" : "ERROR", blk, stale);
            res->corruptions++;
            if (fixed == stale)
                res->corruptions_fixed++;
        }
    }
    free(bm);
    free(sec);
    return r;
}

int vhd_check(struct blk_node *bs, unsigned fix, struct blk_check_result *res,
              struct scuse_err *err)
{
    struct vhd_state *s = bs->state;
    if (!s->sparse) {
        res->image_end_offset = s->file_size;
        return 0;
    }
    struct fixes f = { .s = s, .fix = fix };
    f.bad = malloc(((size_t)s->n_bat + 1) * sizeof(*f.bad));
    if (!f.bad)
        return err_set(err, -ENOMEM, "out of memory");
    int r = walk(s, collect, &f);
    if (r < 0) {
        free(f.bad);
        return err_set(err, r, "out of memory");
    }
    res->corruptions += f.corruptions;
    for (size_t i = 0; (fix & BLK_CHECK_FIX_ERRORS) && i < f.nbad; i++) {
        if (s->bat[f.bad[i]] == VHD_BAT_FREE)
            continue;
        r = write_bat_entry(s, f.bad[i], VHD_BAT_FREE);
        if (r < 0) {
            free(f.bad);
            return err_set(err, r, "'%s': cannot repair BAT entry %u: %s", bs->path, f.bad[i],
                           strerror(-r));
        }
        s->bat[f.bad[i]] = VHD_BAT_FREE;
        res->corruptions_fixed++;
        fprintf(stderr, "Repairing BAT entry %u: freed\n", f.bad[i]);
    }
    free(f.bad);

    r = check_bitmaps(s, fix, res, err);
    if (r < 0)
        return r;

    /* The file ends with the footer in use; what lies between the last
     * block and it (blocks a crash left unreferenced) is leaked. */
    uint64_t end = vhd_used_end(s);
    uint8_t tail[VHD_FOOTER_SIZE];
    bool tail_ok = s->file_size >= end + VHD_FOOTER_SIZE &&
                   file_pread_exact(s->fd, tail, sizeof(tail), s->file_size - VHD_FOOTER_SIZE) == 0 &&
                   memcmp(tail, s->footer_raw, VHD_FOOTER_SIZE) == 0;
    uint64_t extra = tail_ok ? s->file_size - end - VHD_FOOTER_SIZE : 0;
    if (!tail_ok) {
        res->corruptions++;
        fprintf(stderr, "%s the file does not end with the footer in use (it goes at %" PRIu64
                ", after the last block)\n", fix & BLK_CHECK_FIX_ERRORS ? "Repairing" : "ERROR", end);
    } else if (extra) {
        res->leaks++;
        fprintf(stderr, "%s %" PRIu64 " bytes between the last block and the footer\n",
                fix & BLK_CHECK_FIX_LEAKS ? "Repairing" : "Leaked", extra);
    }
    bool rewrite = (!tail_ok && (fix & BLK_CHECK_FIX_ERRORS)) ||
                   (extra && (fix & BLK_CHECK_FIX_LEAKS));
    if (rewrite) {
        r = file_pwrite_exact(s->fd, s->footer_raw, VHD_FOOTER_SIZE, end);
        if (r == 0 && ftruncate(s->fd, (off_t)(end + VHD_FOOTER_SIZE)) < 0)
            r = -errno;
        if (r < 0)
            return err_set(err, r, "'%s': cannot rewrite the footer at %" PRIu64 ": %s", bs->path,
                           end, strerror(-r));
        s->file_size = end + VHD_FOOTER_SIZE;
        if (!tail_ok)
            res->corruptions_fixed++;
        else
            res->leaks_fixed++;
    }
    if (fix && (r = file_sync(s->fd)) < 0)
        return err_set(err, r, "'%s': cannot sync the repairs: %s", bs->path, strerror(-r));

    uint64_t alloc = 0, frag = 0, prev_end = 0;
    uint64_t span = (uint64_t)s->bitmap_size + s->block_size;
    for (uint32_t i = 0; i < s->n_blocks; i++) {
        if (s->bat[i] == VHD_BAT_FREE)
            continue;
        uint64_t h = (uint64_t)s->bat[i] * VHD_SECTOR;
        if (alloc && h != prev_end)
            frag++;
        prev_end = h + span;
        alloc++;
    }
    res->total_clusters = s->n_blocks;
    res->allocated_clusters = alloc;
    res->fragmented_clusters = frag;
    res->image_end_offset = end + VHD_FOOTER_SIZE;
    return 0;
}
