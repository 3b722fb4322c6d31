/* Reading and validating a VHD's metadata: which footer to trust, the
 * virtual size, the dynamic header and the BAT. Every field is checked
 * against the file before anything indexes with it; messages name the file
 * and the field. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "vhd/vhd.h"

/* A footer found at off (len 512, or 511 for old Virtual PC files whose
 * last reserved byte is missing): cookie present, checksum right. */
struct found {
    bool cookie, sum_ok;
    uint32_t stored, computed;
    uint8_t raw[VHD_FOOTER_SIZE];
    struct vhd_footer f;
};

static void examine(const uint8_t *p, size_t len, struct found *x)
{
    memset(x, 0, sizeof(*x));
    memcpy(x->raw, p, len);
    x->cookie = memcmp(x->raw, VHD_COOKIE, 8) == 0;
    if (!x->cookie)
        return;
    vhd_footer_decode(x->raw, &x->f);
    x->stored = x->f.checksum;
    x->computed = vhd_checksum(x->raw, VHD_FOOTER_SIZE, 64);
    x->sum_ok = x->stored == x->computed;
}

static int bad_sum(struct blk_node *bs, const char *where, const struct found *x,
                   struct scuse_err *err)
{
    return err_set(err, -EINVAL, "'%s': footer checksum %s is 0x%08x but the footer sums to 0x%08x",
                   bs->path, where, x->stored, x->computed);
}

/* A fixed disk has its footer only at the end (its data may start with
 * anything, even another VHD); dynamic and differencing disks start with
 * a copy, which QEMU reads and so does this driver. */
static int choose_footer(struct blk_node *bs, struct vhd_state *s, struct scuse_err *err)
{
    if (s->file_size < VHD_FOOTER_SIZE)
        return err_set(err, -EINVAL, "'%s': file is too short for a VHD footer (%" PRIu64 " bytes)",
                       bs->path, s->file_size);
    uint8_t buf[VHD_FOOTER_SIZE];
    struct found head, tail;
    int r = file_pread_exact(s->fd, buf, sizeof(buf), 0);
    if (r < 0)
        return err_set(err, r, "'%s': cannot read the footer copy at 0: %s", bs->path, strerror(-r));
    examine(buf, sizeof(buf), &head);
    uint64_t toff = s->file_size - VHD_FOOTER_SIZE;
    r = file_pread_exact(s->fd, buf, sizeof(buf), toff);
    if (r < 0)
        return err_set(err, r, "'%s': cannot read the footer at %" PRIu64 ": %s", bs->path, toff,
                       strerror(-r));
    examine(buf, sizeof(buf), &tail);
    if (!tail.cookie && memcmp(buf + 1, VHD_COOKIE, 8) == 0) {
        examine(buf + 1, VHD_FOOTER_SIZE - 1, &tail);
        toff++;
    }
    s->tail_ok = tail.cookie && tail.sum_ok;

    const struct found *use;
    if (s->tail_ok && tail.f.type == VHD_TYPE_FIXED) {
        use = &tail;
    } else if (head.cookie) {
        if (!head.sum_ok)
            return bad_sum(bs, "at offset 0", &head, err);
        use = &head;
        s->head_copy = true;
    } else if (tail.cookie) {
        if (!tail.sum_ok)
            return bad_sum(bs, "at the end of the file", &tail, err);
        use = &tail;
    } else {
        return err_set(err, -EINVAL, "'%s': not a VHD image (no 'conectix' footer at offset 0 or "
                       "at the end of the file)", bs->path);
    }
    s->ft = use->f;
    memcpy(s->footer_raw, use->raw, VHD_FOOTER_SIZE);
    s->footer_off = toff;
    return 0;
}

static int check_footer(struct blk_node *bs, struct vhd_state *s, struct scuse_err *err)
{
    const struct vhd_footer *f = &s->ft;
    if (f->version >> 16 != 1)
        return err_set(err, -ENOTSUP, "'%s': unsupported footer version 0x%08x (major version 1 "
                       "is supported)", bs->path, f->version);
    if (f->type != VHD_TYPE_FIXED && f->type != VHD_TYPE_DYNAMIC && f->type != VHD_TYPE_DIFF)
        return err_set(err, -ENOTSUP, "'%s': unsupported disk type %u in the footer (2 fixed, "
                       "3 dynamic, 4 differencing)", bs->path, f->type);
    if (f->type == VHD_TYPE_FIXED && s->head_copy)
        return err_set(err, -EINVAL, "'%s': the footer at offset 0 says disk type 2 (fixed), "
                       "whose only footer ends the file", bs->path);
    s->size = vhd_virtual_size(f, &s->size_from_chs);
    if (s->size > VHD_MAX_SECTORS * VHD_SECTOR)
        return err_set(err, -EFBIG, "'%s': virtual size %" PRIu64 " (%s) is over the VHD limit "
                       "of 2040 GiB", bs->path, s->size,
                       s->size_from_chs ? "geometry" : "current_size");
    if (f->type == VHD_TYPE_FIXED && s->size > s->footer_off)
        return err_set(err, -EINVAL, "'%s': virtual size %" PRIu64 " (%s) is larger than the %"
                       PRIu64 " bytes of data before the footer", bs->path, s->size,
                       s->size_from_chs ? "geometry" : "current_size", s->footer_off);
    return 0;
}

static int check_dyn_header(struct blk_node *bs, struct vhd_state *s, struct scuse_err *err)
{
    const struct vhd_dyn_header *h = &s->dh;
    if (h->version >> 16 != 1)
        return err_set(err, -ENOTSUP, "'%s': unsupported dynamic header version 0x%08x", bs->path,
                       h->version);
    uint32_t bsz = h->block_size;
    if (bsz < VHD_MIN_BLOCK || bsz > VHD_MAX_BLOCK || (bsz & (bsz - 1)))
        return err_set(err, -EINVAL, "'%s': block_size %u is invalid (a power of two from %u to "
                       "%u)", bs->path, bsz, VHD_MIN_BLOCK, VHD_MAX_BLOCK);
    s->block_size = bsz;
    s->block_shift = (uint32_t)__builtin_ctz(bsz);
    s->spb = bsz / VHD_SECTOR;
    s->bitmap_size = ((s->spb + 7) / 8 + VHD_SECTOR - 1) / VHD_SECTOR * VHD_SECTOR;
    uint64_t need = (s->size + bsz - 1) >> s->block_shift;
    if (h->max_entries > VHD_MAX_BAT_ENTRIES)
        return err_set(err, -EINVAL, "'%s': max_table_entries %u is too large (the limit is %u)",
                       bs->path, h->max_entries, VHD_MAX_BAT_ENTRIES);
    if (h->max_entries < need)
        return err_set(err, -EINVAL, "'%s': max_table_entries %u is too small for the virtual "
                       "size %" PRIu64 " (%" PRIu64 " blocks of %u bytes)", bs->path,
                       h->max_entries, s->size, need, bsz);
    uint64_t bat_bytes = (uint64_t)h->max_entries * 4;
    if (h->table_offset > s->file_size || bat_bytes > s->file_size - h->table_offset)
        return err_set(err, -EINVAL, "'%s': the BAT at table_offset %" PRIu64 " (%u entries) "
                       "extends past the end of the file (size %" PRIu64 ")", bs->path,
                       h->table_offset, h->max_entries, s->file_size);
    s->n_bat = h->max_entries;
    s->n_blocks = (uint32_t)need;
    uint64_t hdr_end = h->table_offset + ((bat_bytes + VHD_SECTOR - 1) & ~(uint64_t)(VHD_SECTOR - 1));
    s->meta_end = s->ft.data_offset + VHD_DYN_HEADER_SIZE;
    if (hdr_end > s->meta_end)
        s->meta_end = hdr_end;
    return 0;
}

static int load_bat(struct blk_node *bs, struct vhd_state *s, struct scuse_err *err)
{
    size_t n = s->n_bat ? s->n_bat : 1;
    s->bat = malloc(n * 4);
    s->bstate = calloc(s->n_blocks ? s->n_blocks : 1, 1);
    if (!s->bat || !s->bstate)
        return err_set(err, -ENOMEM, "'%s': out of memory for the BAT (%u entries)", bs->path,
                       s->n_bat);
    int r = s->n_bat ? file_pread_exact(s->fd, s->bat, (size_t)s->n_bat * 4, s->dh.table_offset) : 0;
    if (r < 0)
        return err_set(err, r, "'%s': cannot read the BAT at %" PRIu64 ": %s", bs->path,
                       s->dh.table_offset, strerror(-r));
    for (uint32_t i = 0; i < s->n_bat; i++)
        s->bat[i] = vhd_be32((const uint8_t *)&s->bat[i]);
    /* Entries pointing past the end of the file are refused where they are
     * used (read.c) and by a writable open (flush.c), so that check can
     * still open the image to repair them. */
    return 0;
}

int vhd_read_meta(struct blk_node *bs, struct vhd_state *s, struct scuse_err *err)
{
    int r = file_size(s->fd, &s->file_size);
    if (r < 0)
        return err_set(err, r, "'%s': cannot get size: %s", bs->path, strerror(-r));
    r = choose_footer(bs, s, err);
    if (r == 0)
        r = check_footer(bs, s, err);
    if (r < 0 || s->ft.type == VHD_TYPE_FIXED)
        return r;

    s->sparse = true;
    s->diff = s->ft.type == VHD_TYPE_DIFF;
    uint64_t hoff = s->ft.data_offset;
    if (hoff < VHD_FOOTER_SIZE || hoff > s->file_size ||
        VHD_DYN_HEADER_SIZE > s->file_size - hoff)
        return err_set(err, -EINVAL, "'%s': the dynamic header at data_offset %" PRIu64 " does not "
                       "lie inside the file (size %" PRIu64 ")", bs->path, hoff, s->file_size);
    r = file_pread_exact(s->fd, s->dh_raw, sizeof(s->dh_raw), hoff);
    if (r < 0)
        return err_set(err, r, "'%s': cannot read the dynamic header at %" PRIu64 ": %s", bs->path,
                       hoff, strerror(-r));
    if (memcmp(s->dh_raw, VHD_DYN_COOKIE, 8) != 0)
        return err_set(err, -EINVAL, "'%s': no 'cxsparse' cookie in the dynamic header at "
                       "data_offset %" PRIu64, bs->path, hoff);
    vhd_dyn_decode(s->dh_raw, &s->dh);
    uint32_t sum = vhd_checksum(s->dh_raw, sizeof(s->dh_raw), 36);
    if (sum != s->dh.checksum)
        return err_set(err, -EINVAL, "'%s': dynamic header checksum is 0x%08x but the header sums "
                       "to 0x%08x", bs->path, s->dh.checksum, sum);
    r = check_dyn_header(bs, s, err);
    if (r == 0)
        r = load_bat(bs, s, err);
    return r;
}
