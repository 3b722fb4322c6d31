/* qcow2 check and repair, with qemu-img check's verdicts: every host
 * cluster's expected refcount is computed from the metadata (header, L1
 * and L2 tables of the image and of each snapshot, compressed byte ranges,
 * the snapshot table, refcount table and blocks, bitmaps), then compared
 * with the stored one. Stored < expected is a corruption, stored >
 * expected a leak; COPIED must be set exactly where the refcount is 1.
 * Repairs change refcounts in place, or write a whole new refcount
 * structure (refdirect.c) when a block is missing or broken. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "qcow2/check.h"
#include "qcow2/check_int.h"

#define L1E_RESERVED 0x7f000000000001ffull
#define L2E_STD_RESERVED 0x3f000000000001feull
#define L2_BITMAP_ALLOC 0xffffffffull

void ck_say(struct ck *c, const char *fmt, ...)
{
    if (c->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

/* One more reference to every cluster [off, off + size) touches. */
int ck_inc(struct ck *c, uint64_t off, uint64_t size)
{
    if (size == 0)
        return 0;
    if (off + size > c->file_size && off + size - c->file_size >= c->cs) {
        ck_say(c, "ERROR: counting reference for region exceeding the end of the file by one "
               "cluster or more: offset 0x%" PRIx64 " size 0x%" PRIx64 "\n", off, size);
        c->res->corruptions++;
        return 0;
    }
    uint64_t first = off >> c->s->cluster_bits, last = (off + size - 1) >> c->s->cluster_bits;
    if (last >= c->n) {
        uint32_t *w = realloc(c->want, (last + 1) * sizeof(*w));
        if (!w) {
            c->res->check_errors++;
            return -ENOMEM;
        }
        memset(w + c->n, 0, (last + 1 - c->n) * sizeof(*w));
        c->want = w;
        c->n = last + 1;
    }
    for (uint64_t k = first; k <= last; k++) {
        if (c->want[k] >= c->max_ref) {
            ck_say(c, "ERROR: overflow cluster offset=0x%" PRIx64 "\n", k << c->s->cluster_bits);
            ck_say(c, "Use qemu-img amend to increase the refcount entry width or qemu-img "
                   "convert to create a clean copy if the image cannot be opened for writing\n");
            c->res->corruptions++;
            continue;
        }
        c->want[k]++;
    }
    return 0;
}

enum ctype { C_UNALLOC, C_ZERO_PLAIN, C_ZERO_ALLOC, C_NORMAL, C_COMPRESSED };

static enum ctype cluster_type(const struct ck *c, uint64_t e)
{
    if (e & QCOW2_OFLAG_COMPRESSED)
        return C_COMPRESSED;
    if ((e & QCOW2_OFLAG_ZERO) && !c->s->ext_l2)
        return (e & QCOW2_L2E_OFFSET_MASK) ? C_ZERO_ALLOC : C_ZERO_PLAIN;
    if (!(e & QCOW2_L2E_OFFSET_MASK))
        return (c->data_file && (e & QCOW2_OFLAG_COPIED)) ? C_NORMAL : C_UNALLOC;
    return C_NORMAL;
}

/* An allocated entry whose offset is not cluster aligned: a preallocated
 * zero cluster can become a plain zero cluster; data cannot be saved. */
static int misaligned(struct ck *c, uint8_t *l2, uint64_t l2_off, uint64_t i, uint64_t e,
                      uint64_t bm, bool *skip)
{
    struct qcow2_state *s = c->s;
    uint64_t off = e & QCOW2_L2E_OFFSET_MASK;
    bool data = s->ext_l2 ? (bm & L2_BITMAP_ALLOC) != 0 : !(e & QCOW2_OFLAG_ZERO);
    c->res->corruptions++;
    if (data) {
        ck_say(c, "ERROR offset=%" PRIx64 ": Data cluster is not properly aligned; L2 entry "
               "corrupted.\n", off);
        return 0;
    }
    bool fix = c->fix & BLK_CHECK_FIX_ERRORS;
    ck_say(c, "%s offset=%" PRIx64 ": Preallocated cluster is not properly aligned; L2 entry "
           "corrupted.\n", fix ? "Repairing" : "ERROR", off);
    if (!fix)
        return 0;
    uint32_t esz = 1u << s->l2_entry_shift;
    qcow2_wbe64(l2 + i * esz, s->ext_l2 ? 0 : QCOW2_OFLAG_ZERO);
    int r = file_pwrite_exact(s->fd, l2 + i * esz, esz, l2_off + i * esz);
    if (r == 0)
        r = file_sync(s->fd);
    if (r < 0) {
        ck_say(c, "ERROR: Failed to overwrite L2 table entry: %s\n", strerror(-r));
        c->res->check_errors++;
        return 0;
    }
    c->res->corruptions--;
    c->res->corruptions_fixed++;
    *skip = true;
    return 0;
}

static int walk_l2(struct ck *c, uint64_t l2_off, bool active)
{
    struct qcow2_state *s = c->s;
    uint8_t *l2 = c->l2buf;
    int r = qcow2_pread_zf(s->fd, l2, c->cs, l2_off);
    if (r < 0) {
        ck_say(c, "ERROR: I/O error in check_refcounts_l2\n");
        c->res->check_errors++;
        return r;
    }
    uint32_t esz = 1u << s->l2_entry_shift;
    uint64_t n = c->cs / esz, next = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t e = qcow2_be64(l2 + i * esz), bm = s->ext_l2 ? qcow2_be64(l2 + i * esz + 8) : 0;
        enum ctype t = cluster_type(c, e);
        if (t != C_COMPRESSED && (e & L2E_STD_RESERVED)) {
            ck_say(c, "ERROR found l2 entry with reserved bits set: %" PRIx64 "\n", e);
            c->res->corruptions++;
        }
        if (t == C_COMPRESSED) {
            if (e & QCOW2_OFLAG_COPIED) {
                ck_say(c, "ERROR: coffset=0x%" PRIx64 ": copied flag must never be set for "
                       "compressed clusters\n", e & s->coffset_mask);
                e &= ~QCOW2_OFLAG_COPIED;
                c->res->corruptions++;
            }
            if (c->data_file) {
                ck_say(c, "ERROR compressed cluster %d with data file, entry=0x%" PRIx64 "\n",
                       (int)i, e);
                c->res->corruptions++;
                continue;
            }
            if (bm) {
                ck_say(c, "ERROR compressed cluster %d with non-zero subcluster allocation "
                       "bitmap, entry=0x%" PRIx64 "\n", (int)i, e);
                c->res->corruptions++;
                continue;
            }
            uint64_t coff = e & s->coffset_mask;
            uint64_t sectors = ((e >> s->csize_shift) & s->csize_mask) + 1;
            r = ck_inc(c, coff, sectors * 512 - (coff & 511));
            if (r < 0)
                return r;
            if (active) {
                c->res->allocated_clusters++;
                c->res->compressed_clusters++;
                c->res->fragmented_clusters++;
            }
        } else if (t == C_NORMAL || t == C_ZERO_ALLOC) {
            uint64_t off = e & QCOW2_L2E_OFFSET_MASK;
            if (active) {
                c->res->allocated_clusters++;
                if (next && off != next)
                    c->res->fragmented_clusters++;
                next = off + c->cs;
            }
            bool skip = false;
            if (off & (c->cs - 1))
                misaligned(c, l2, l2_off, i, e, bm, &skip);
            if (!skip && !c->data_file) {
                r = ck_inc(c, off, c->cs);
                if (r < 0)
                    return r;
            }
        } else if (t == C_UNALLOC && (bm & L2_BITMAP_ALLOC)) {
            c->res->corruptions++;
            ck_say(c, "ERROR: Unallocated cluster has non-zero subcluster allocation bitmap, "
                   "entry=0x%" PRIx64 "\n", e);
        }
    }
    return 0;
}

int ck_walk_l1(struct ck *c, uint64_t l1_off, uint64_t l1_size, bool active)
{
    int r = ck_inc(c, l1_off, l1_size * 8);
    if (r < 0 || l1_size == 0)
        return r;
    uint64_t *l1 = malloc(l1_size * 8);
    if (!l1) {
        c->res->check_errors++;
        return -ENOMEM;
    }
    r = qcow2_pread_zf(c->s->fd, l1, l1_size * 8, l1_off);
    if (r < 0) {
        ck_say(c, "ERROR: I/O error in check_refcounts_l1\n");
        c->res->check_errors++;
    }
    for (uint64_t i = 0; i < l1_size && r == 0; i++) {
        uint64_t e = qcow2_be64((const uint8_t *)&l1[i]);
        if (!e)
            continue;
        if (e & L1E_RESERVED) {
            ck_say(c, "ERROR found L1 entry with reserved bits set: %" PRIx64 "\n", e);
            c->res->corruptions++;
        }
        uint64_t l2_off = e & QCOW2_L1E_OFFSET_MASK;
        r = ck_inc(c, l2_off, c->cs);
        if (r == 0 && (l2_off & (c->cs - 1))) {
            ck_say(c, "ERROR l2_offset=%" PRIx64 ": Table is not cluster aligned; L1 entry "
                   "corrupted\n", l2_off);
            c->res->corruptions++;
        }
        if (r == 0)
            r = walk_l2(c, l2_off, active);
    }
    free(l1);
    return r;
}

static int walk_refblocks(struct ck *c)
{
    struct qcow2_rd *rd = &c->rd;
    uint64_t nb_clusters = (c->file_size + c->cs - 1) / c->cs;
    for (uint64_t i = 0; i < rd->table_entries; i++) {
        uint64_t e = rd->table[i], off = e & QCOW2_REFT_OFFSET_MASK;
        uint64_t k = off >> c->s->cluster_bits;
        if (e & QCOW2_REFT_RESERVED_MASK) {
            ck_say(c, "ERROR refcount table entry %" PRIu64 " has reserved bits set\n", i);
            c->res->corruptions++;
            c->rebuild = true;
            continue;
        }
        if (off & (c->cs - 1)) {
            ck_say(c, "ERROR refcount block %" PRIu64 " is not cluster aligned; refcount table "
                   "entry corrupted\n", i);
            c->res->corruptions++;
            c->rebuild = true;
            continue;
        }
        if (k >= nb_clusters) {
            ck_say(c, "%s refcount block %" PRIu64 " is outside image\n",
                   (c->fix & BLK_CHECK_FIX_ERRORS) ? "Repairing" : "ERROR", i);
            c->res->corruptions++;
            if (c->fix & BLK_CHECK_FIX_ERRORS)
                c->rebuild = true;
            continue;
        }
        if (off) {
            int r = ck_inc(c, off, c->cs);
            if (r < 0)
                return r;
            if (k < c->n && c->want[k] != 1) {
                ck_say(c, "ERROR refcount block %" PRIu64 " refcount=%" PRIu32 "\n", i, c->want[k]);
                c->res->corruptions++;
                c->rebuild = true;
            }
        }
    }
    return 0;
}

/* Every reference the metadata makes, into c->want. */
static int calculate(struct ck *c)
{
    struct qcow2_state *s = c->s;
    int r = ck_inc(c, 0, c->cs);
    if (r == 0)
        r = ck_walk_l1(c, s->l1_offset, s->l1_size, true);
    if (r == 0)
        r = ck_walk_snapshots(c);
    if (r == 0)
        r = ck_inc(c, s->refcount_table_offset, c->rd.table_entries * 8);
    if (r == 0)
        r = ck_walk_bitmaps(c);
    if (r == 0)
        r = walk_refblocks(c);
    return r;
}

/* Stored against expected, block by block; fixes what fix allows. */
static int compare(struct ck *c, unsigned fix)
{
    struct qcow2_rd *rd = &c->rd;
    struct blk_check_result *res = c->res;
    uint64_t epb = 1ull << rd->epb_bits;
    uint8_t *blk = malloc(c->cs);
    if (!blk) {
        res->check_errors++;
        return -ENOMEM;
    }
    int r = 0;
    for (uint64_t t = 0; t * epb < c->n && r == 0; t++) {
        uint64_t first = t * epb, last = first + epb < c->n ? first + epb : c->n;
        int e = qcow2_rd_read_block(rd, t, blk);
        if (e < 0) {
            for (uint64_t i = first; i < last; i++)
                ck_say(c, "Can't get refcount for cluster %" PRIu64 ": %s\n", i, strerror(-e));
            res->check_errors += last - first;
            continue;
        }
        bool dirty = false;
        for (uint64_t i = first; i < last; i++) {
            uint64_t have = qcow2_rd_entry(blk, rd->order, i - first), want = c->want[i];
            if (have || want)
                c->highest = i;
            if (have == want)
                continue;
            uint64_t *fixed = NULL;
            if (have == 0)
                c->rebuild = true;
            else if (have > want && (fix & BLK_CHECK_FIX_LEAKS))
                fixed = &res->leaks_fixed;
            else if (have < want && (fix & BLK_CHECK_FIX_ERRORS))
                fixed = &res->corruptions_fixed;
            ck_say(c, "%s cluster %" PRIu64 " refcount=%" PRIu64 " reference=%" PRIu64 "\n",
                   fixed ? "Repairing" : have < want ? "ERROR" : "Leaked", i, have, want);
            if (fixed) {
                qcow2_rd_set_entry(blk, rd->order, i - first, want);
                dirty = true;
                (*fixed)++;
            } else if (have < want) {
                res->corruptions++;
            } else {
                res->leaks++;
            }
        }
        if (dirty)
            r = file_pwrite_exact(rd->fd, blk, c->cs, rd->table[t] & QCOW2_REFT_OFFSET_MASK);
    }
    if (r == 0 && fix)
        r = file_sync(rd->fd);
    if (r < 0)
        res->check_errors++;
    free(blk);
    return r;
}

/* QEMU's repair sequence: fix in place, or rebuild and fix the leaks the
 * old structure leaves behind. */
static int check_refcounts(struct ck *c)
{
    struct blk_check_result *res = c->res;
    int r = calculate(c);
    if (r < 0)
        return r;
    struct blk_check_result pre = *res;
    r = compare(c, 0);
    if (r < 0)
        return r;
    if (c->rebuild && (c->fix & BLK_CHECK_FIX_ERRORS)) {
        struct blk_check_result old = *res;
        ck_say(c, "Rebuilding refcount structure\n");
        r = qcow2_rd_rebuild(&c->rd, c->s, c->want, c->n);
        if (r < 0) {
            ck_say(c, "ERROR rebuilding the refcount structure failed: %s\n", strerror(-r));
            res->check_errors++;
            return r;
        }
        res->corruptions = 0;
        res->leaks = 0;
        c->rebuild = false;
        memset(c->want, 0, c->n * sizeof(*c->want));
        r = file_size(c->s->fd, &c->file_size);
        if (r == 0)
            r = calculate(c);
        if (r < 0)
            return r;
        uint64_t fresh = 0;
        if (c->fix & BLK_CHECK_FIX_LEAKS) {
            struct blk_check_result saved = *res;
            *res = (struct blk_check_result){ 0 };
            c->highest = 0;
            r = compare(c, BLK_CHECK_FIX_LEAKS);
            if (c->rebuild)
                ck_say(c, "ERROR rebuilt refcount structure is still broken\n");
            fresh = res->leaks;
            *res = saved;
            if (r < 0)
                return r;
        }
        if (res->corruptions < old.corruptions)
            res->corruptions_fixed += old.corruptions - res->corruptions;
        if (res->leaks < old.leaks)
            res->leaks_fixed += old.leaks - res->leaks;
        res->leaks += fresh;
    } else if (c->fix) {
        if (c->rebuild) {
            ck_say(c, "ERROR need to rebuild refcount structures\n");
            res->check_errors++;
            return -EIO;
        }
        if (res->leaks || res->corruptions) {
            *res = pre;
            c->highest = 0;
            r = compare(c, c->fix);
        }
    }
    return r;
}

static int ck_init(struct ck *c, struct blk_node *bs, struct qcow2_state *s, unsigned fix,
                   bool quiet, struct blk_check_result *res)
{
    memset(c, 0, sizeof(*c));
    memset(res, 0, sizeof(*res));
    c->bs = bs;
    c->s = s;
    c->res = res;
    c->fix = fix;
    c->quiet = quiet;
    c->cs = s->cluster_size;
    c->data_file = s->incompat & QCOW2_INCOMPAT_DATA_FILE;
    int r = qcow2_rd_open(&c->rd, s);
    if (r < 0) {
        res->check_errors++;
        return r;
    }
    c->max_ref = c->rd.max > UINT32_MAX ? UINT32_MAX : c->rd.max;
    c->file_size = c->rd.file_size;
    uint64_t nb = (c->file_size + c->cs - 1) / c->cs;
    if (nb > INT32_MAX) {
        res->check_errors++;
        return -EFBIG;
    }
    res->total_clusters = ((s->size & ~511ull) + c->cs - 1) / c->cs;
    c->n = nb;
    c->want = calloc(nb ? nb : 1, sizeof(*c->want));
    c->l2buf = malloc(c->cs);
    if (!c->want || !c->l2buf) {
        res->check_errors++;
        return -ENOMEM;
    }
    return 0;
}

static void ck_fini(struct ck *c)
{
    qcow2_rd_close(&c->rd);
    free(c->want);
    free(c->l2buf);
}

static int run(struct blk_node *bs, struct qcow2_state *s, unsigned fix, bool quiet,
               struct blk_check_result *res)
{
    struct ck c;
    int r = ck_init(&c, bs, s, fix, quiet, res);
    if (r == 0)
        r = check_refcounts(&c);
    if (r == 0)
        r = ck_check_copied(&c);
    if (r == 0)
        res->image_end_offset = (c.highest + 1) * c.cs;
    ck_fini(&c);
    return r;
}

/* Clear the dirty and corrupt bits once the image is consistent. */
static int mark_clean(struct blk_node *bs, struct qcow2_state *s)
{
    uint64_t bits = QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT;
    if (s->version < 3 || !(s->incompat & bits))
        return 0;
    uint8_t f[8];
    qcow2_wbe64(f, s->incompat & ~bits);
    int r = file_sync(s->fd);
    if (r == 0)
        r = file_pwrite_exact(s->fd, f, 8, 72);
    if (r == 0)
        r = file_sync(s->fd);
    if (r == 0) {
        s->incompat &= ~bits;
        bs->dirty = false;
    }
    return r;
}

int qcow2_check(struct blk_node *bs, unsigned fix, struct blk_check_result *res,
                struct scuse_err *err)
{
    if (fix && bs->read_only)
        return err_set(err, -EROFS, "'%s': repairs need the image open for writing", bs->path);
    if (fix & BLK_CHECK_FIX_ERRORS)
        fix |= BLK_CHECK_FIX_LEAKS;
    int r = run(bs, bs->state, fix, false, res);
    if (r < 0)
        return err_set(err, r, "'%s': the check could not complete: %s", bs->path, strerror(-r));
    if (fix && res->check_errors == 0 && res->corruptions == 0) {
        r = mark_clean(bs, bs->state);
        if (r < 0)
            return err_set(err, r, "'%s': cannot mark the image clean: %s", bs->path, strerror(-r));
    }
    return 0;
}

int qcow2_rebuild_refcounts(struct blk_node *bs, struct qcow2_state *s)
{
    struct blk_check_result res;
    int r = run(bs, s, BLK_CHECK_FIX_LEAKS | BLK_CHECK_FIX_ERRORS, true, &res);
    if (r < 0)
        return r;
    r = run(bs, s, 0, true, &res);
    if (r < 0)
        return r;
    return res.corruptions || res.check_errors || res.leaks ? -EIO : 0;
}
