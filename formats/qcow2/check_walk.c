/* The parts of the check that walk secondary metadata: snapshots (their
 * table and L1/L2 tables), persistent bitmaps, and the COPIED flags of the
 * active tables. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "qcow2/check_int.h"

#define SNAP_HEADER 40
#define BITMAP_DIR_MAX (64u << 20)
#define BME_OFFSET_MASK 0x00fffffffffffe00ull

static uint64_t round8(uint64_t v)
{
    return (v + 7) & ~7ull;
}

int ck_walk_snapshots(struct ck *c)
{
    struct qcow2_state *s = c->s;
    if (s->nb_snapshots == 0)
        return 0;
    if (c->data_file) {
        ck_say(c, "ERROR %u snapshots in image with data file\n", s->nb_snapshots);
        c->res->corruptions++;
    }
    char *id = malloc(65536), *name = malloc(65536);
    int r = (id && name) ? 0 : -ENOMEM;
    uint64_t p = s->snapshots_offset, end = p;
    for (uint32_t i = 0; i < s->nb_snapshots && r == 0; i++) {
        uint8_t h[SNAP_HEADER];
        p = round8(p);
        r = qcow2_pread_zf(s->fd, h, sizeof(h), p);
        if (r < 0)
            break;
        uint64_t l1_off = qcow2_be64(h);
        uint32_t l1_size = qcow2_be32(h + 8);
        uint16_t id_len = qcow2_be16(h + 12), name_len = qcow2_be16(h + 14);
        uint32_t extra = qcow2_be32(h + 36);
        p += SNAP_HEADER + extra;
        r = qcow2_pread_zf(s->fd, id, id_len, p);
        if (r == 0)
            r = qcow2_pread_zf(s->fd, name, name_len, p + id_len);
        if (r < 0)
            break;
        id[id_len] = '\0';
        name[name_len] = '\0';
        p += (uint64_t)id_len + name_len;
        end = p;
        if (l1_off & (c->cs - 1)) {
            ck_say(c, "ERROR snapshot %s (%s) l1_offset=%#" PRIx64 ": L1 table is not cluster "
                   "aligned; snapshot table entry corrupted\n", id, name, l1_off);
            c->res->corruptions++;
            continue;
        }
        if (l1_size > QCOW2_MAX_L1_BYTES / 8) {
            ck_say(c, "ERROR snapshot %s (%s) l1_size=%#" PRIx32 ": L1 table is too large; "
                   "snapshot table entry corrupted\n", id, name, l1_size);
            c->res->corruptions++;
            continue;
        }
        r = ck_walk_l1(c, l1_off, l1_size, false);
    }
    free(id);
    free(name);
    if (r < 0) {
        if (r != -ENOMEM)
            c->res->check_errors++;
        return r;
    }
    return ck_inc(c, s->snapshots_offset, end - s->snapshots_offset);
}

/* The bitmaps extension, if the image has one that is in force. */
static bool find_bitmaps(struct ck *c, const uint8_t *h, uint32_t *nb, uint64_t *dir_size,
                         uint64_t *dir_off)
{
    struct qcow2_state *s = c->s;
    uint64_t pos = s->version >= 3 ? s->header_length : QCOW2_V2_HEADER_LEN;
    uint64_t end = qcow2_be64(h + 8);
    if (end == 0 || end > c->cs)
        end = c->cs;
    while (pos + 8 <= end) {
        uint32_t type = qcow2_be32(h + pos), len = qcow2_be32(h + pos + 4);
        if (type == QCOW2_EXT_END || len > end - pos - 8)
            return false;
        if (type == QCOW2_EXT_BITMAPS && len >= 24) {
            *nb = qcow2_be32(h + pos + 8);
            *dir_size = qcow2_be64(h + pos + 16);
            *dir_off = qcow2_be64(h + pos + 24);
            return *nb != 0;
        }
        pos += 8 + round8(len);
    }
    return false;
}

static int walk_bitmap_table(struct ck *c, uint64_t off, uint32_t size)
{
    int r = ck_inc(c, off, (uint64_t)size * 8);
    if (r < 0 || size == 0)
        return r;
    if ((off & (c->cs - 1)) || (uint64_t)size * 8 > QCOW2_MAX_L1_BYTES) {
        c->res->corruptions++;
        return 0;
    }
    uint8_t *t = malloc((size_t)size * 8);
    if (!t)
        return -ENOMEM;
    r = qcow2_pread_zf(c->s->fd, t, (size_t)size * 8, off);
    for (uint32_t i = 0; i < size && r == 0; i++) {
        uint64_t e = qcow2_be64(t + 8 * (size_t)i), o = e & BME_OFFSET_MASK;
        if ((e & ~BME_OFFSET_MASK & ~1ull) || (o & (c->cs - 1)) || (o && (e & 1))) {
            c->res->corruptions++;
            continue;
        }
        if (o)
            r = ck_inc(c, o, c->cs);
    }
    free(t);
    return r;
}

int ck_walk_bitmaps(struct ck *c)
{
    struct qcow2_state *s = c->s;
    if (s->version < 3 || !(s->autoclear & QCOW2_AUTOCLEAR_BITMAPS))
        return 0;
    uint8_t *h = malloc(c->cs);
    if (!h)
        return -ENOMEM;
    uint32_t nb = 0;
    uint64_t dsize = 0, doff = 0;
    int r = qcow2_pread_zf(s->fd, h, c->cs, 0);
    bool have = r == 0 && find_bitmaps(c, h, &nb, &dsize, &doff);
    free(h);
    if (r < 0 || !have)
        return r;
    r = ck_inc(c, doff, dsize);
    if (r < 0)
        return r;
    if (dsize > BITMAP_DIR_MAX || (doff & (c->cs - 1))) {
        c->res->corruptions++;
        return 0;
    }
    uint8_t *d = malloc(dsize + 1);
    if (!d)
        return -ENOMEM;
    r = qcow2_pread_zf(s->fd, d, dsize, doff);
    uint64_t p = 0;
    for (uint32_t i = 0; i < nb && r == 0; i++) {
        if (p + 24 > dsize) {
            c->res->corruptions++;
            break;
        }
        uint64_t toff = qcow2_be64(d + p);
        uint32_t tsize = qcow2_be32(d + p + 8);
        uint64_t len = 24 + (uint64_t)qcow2_be16(d + p + 18) + qcow2_be32(d + p + 20);
        r = walk_bitmap_table(c, toff, tsize);
        p += round8(len);
    }
    free(d);
    return r;
}

static int write_l1_entry(struct ck *c, uint64_t i, uint64_t e)
{
    struct qcow2_state *s = c->s;
    uint8_t b[8];
    qcow2_wbe64(b, e);
    int r = file_pwrite_exact(s->fd, b, 8, s->l1_offset + 8 * i);
    if (r == 0 && i < s->l1_loaded)
        s->l1[i] = e;
    return r;
}

/* One active L2 table's data entries; returns how many were repaired. */
static int copied_l2(struct ck *c, uint64_t l2_off, bool repair, int *fixed)
{
    struct qcow2_state *s = c->s;
    uint8_t *l2 = c->l2buf;
    uint32_t esz = 1u << s->l2_entry_shift;
    *fixed = 0;
    int r = qcow2_pread_zf(s->fd, l2, c->cs, l2_off);
    if (r < 0) {
        ck_say(c, "ERROR: Could not read L2 table: %s\n", strerror(-r));
        c->res->check_errors++;
        return r;
    }
    for (uint64_t j = 0; j < c->cs / esz; j++) {
        uint64_t e = qcow2_be64(l2 + j * esz), off = e & QCOW2_L2E_OFFSET_MASK;
        bool allocated = !(e & QCOW2_OFLAG_COMPRESSED) &&
                         (off || (c->data_file && (e & QCOW2_OFLAG_COPIED)));
        if (!allocated)
            continue;
        uint64_t rc = 1;
        if (!c->data_file && qcow2_rd_get(&c->rd, off >> s->cluster_bits, &rc) < 0)
            continue;
        if ((rc == 1) == ((e & QCOW2_OFLAG_COPIED) != 0))
            continue;
        c->res->corruptions++;
        ck_say(c, "%s OFLAG_COPIED data cluster: l2_entry=%" PRIx64 " refcount=%" PRIu64 "\n",
               repair ? "Repairing" : "ERROR", e, rc);
        if (repair) {
            qcow2_wbe64(l2 + j * esz, rc == 1 ? e | QCOW2_OFLAG_COPIED : e & ~QCOW2_OFLAG_COPIED);
            (*fixed)++;
        }
    }
    if (*fixed) {
        if (l2_off & (c->cs - 1)) {
            ck_say(c, "ERROR: Could not write L2 table; metadata overlap check failed: %s\n",
                   strerror(EIO));
            c->res->check_errors++;
            return -EIO;
        }
        r = file_pwrite_exact(s->fd, l2, c->cs, l2_off);
        if (r < 0) {
            ck_say(c, "ERROR: Could not write L2 table: %s\n", strerror(-r));
            c->res->check_errors++;
            return r;
        }
    }
    return 0;
}

int ck_check_copied(struct ck *c)
{
    struct qcow2_state *s = c->s;
    struct blk_check_result *res = c->res;
    bool repair = (c->fix & BLK_CHECK_FIX_ERRORS) ||
                  ((c->fix & BLK_CHECK_FIX_LEAKS) && !res->check_errors && !res->corruptions &&
                   !res->leaks);
    if (s->l1_size == 0)
        return 0;
    uint64_t *l1 = malloc(s->l1_size * 8);
    if (!l1)
        return -ENOMEM;
    int r = qcow2_pread_zf(s->fd, l1, s->l1_size * 8, s->l1_offset);
    for (uint64_t i = 0; i < s->l1_size && r == 0; i++) {
        uint64_t e = qcow2_be64((const uint8_t *)&l1[i]), l2_off = e & QCOW2_L1E_OFFSET_MASK;
        if (!l2_off)
            continue;
        uint64_t rc;
        if (qcow2_rd_get(&c->rd, l2_off >> s->cluster_bits, &rc) < 0)
            continue;
        if ((rc == 1) != ((e & QCOW2_OFLAG_COPIED) != 0)) {
            res->corruptions++;
            ck_say(c, "%s OFLAG_COPIED L2 cluster: l1_index=%d l1_entry=%" PRIx64 " refcount=%"
                   PRIu64 "\n", repair ? "Repairing" : "ERROR", (int)i, e, rc);
            if (repair) {
                r = write_l1_entry(c, i, rc == 1 ? e | QCOW2_OFLAG_COPIED : e & ~QCOW2_OFLAG_COPIED);
                if (r < 0) {
                    res->check_errors++;
                    break;
                }
                res->corruptions--;
                res->corruptions_fixed++;
            }
        }
        int fixed;
        r = copied_l2(c, l2_off, repair, &fixed);
        if (r == 0) {
            res->corruptions -= (uint64_t)fixed;
            res->corruptions_fixed += (uint64_t)fixed;
        }
    }
    free(l1);
    if (r == 0 && repair && res->corruptions_fixed)
        r = file_sync(s->fd);
    return r;
}
