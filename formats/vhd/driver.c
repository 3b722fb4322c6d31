/* VHD driver vtable ("vpc", as QEMU and libvirt name it; alias "vhd"):
 * probe, open/close and `info`. Validation is in open.c, the parent in
 * parent.c, the read path in read.c, the writer in write.c and flush.c,
 * create.c and check.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vhd/vhd.h"

/* Dynamic and differencing disks copy their footer to offset 0; a fixed
 * disk has it only at the end (512 bytes, or 511 from old Virtual PCs). */
static int vpc_probe(const struct blk_probe *p)
{
    if (p->head_len >= 8 && memcmp(p->head, VHD_COOKIE, 8) == 0)
        return 100;
    if (p->tail_len >= 512 && (memcmp(p->tail, VHD_COOKIE, 8) == 0 ||
                               memcmp(p->tail + 1, VHD_COOKIE, 8) == 0))
        return 100;
    return 0;
}

static void state_free(struct vhd_state *s)
{
    if (!s)
        return;
    vhd_bcache_destroy(s);
    free(s->bat);
    free(s->bstate);
    free(s->parent_name);
    free(s->bat_dirty);
    free(s);
}

static int vpc_open(struct blk_node *bs, struct scuse_err *err)
{
    struct vhd_state *s = calloc(1, sizeof(*s));
    if (!s)
        return err_set(err, -ENOMEM, "out of memory");
    s->path = bs->path;
    s->fd = bs->fd;
    int r = vhd_read_meta(bs, s, err);
    if (r == 0 && s->sparse && vhd_bcache_init(s) < 0)
        r = err_set(err, -ENOMEM, "'%s': out of memory for the bitmap cache", bs->path);
    if (r == 0 && s->diff)
        r = vhd_find_parent(bs, s, err);
    if (r < 0) {
        state_free(s);
        return r;
    }
    bs->size = s->size;
    bs->cluster_size = s->sparse ? s->block_size : 0;
    /* Bitmaps count whole sectors; a fixed disk is its file. */
    bs->align = s->sparse ? VHD_SECTOR : 1;
    bs->discard_zeroes = !s->diff;
    bs->state = s;
    const struct vhd_footer *f = &s->ft;
    vhd_creator_text(f->creator_app, s->txt.creator);
    vhd_creator_text(f->creator_os, s->txt.os);
    snprintf(s->txt.version, sizeof(s->txt.version), "%u.%u", f->creator_version >> 16,
             f->creator_version & 0xffff);
    vhd_uuid_text(f->uuid, s->txt.uuid);
    vhd_uuid_text(s->dh.parent_uuid, s->txt.parent_uuid);
    if (!bs->read_only && !bs->check_only) {
        r = vhd_writer_open(bs, s, err);
        if (r < 0) {
            bs->state = NULL;
            state_free(s);
            return r;
        }
    }
    return 0;
}

static void vpc_close(struct blk_node *bs)
{
    struct vhd_state *s = bs->state;
    if (s && s->writable) {
        /* Tools flush before closing and report failures; this is the
         * last chance for the metadata of anyone who did not. */
        struct scuse_err err = { 0 };
        (void)vhd_flush(bs, &err);
    }
    state_free(s);
    bs->state = NULL;
}

static void add_str(struct blk_info *info, const char *key, const char *label, const char *v)
{
    if (info->n_items < BLK_INFO_MAX_ITEMS)
        info->item[info->n_items++] = (struct blk_info_item){ .key = key, .label = label,
                                                              .kind = BLK_INFO_STR, .s = v };
}

static void add_int(struct blk_info *info, const char *key, const char *label, int64_t v)
{
    if (info->n_items < BLK_INFO_MAX_ITEMS)
        info->item[info->n_items++] = (struct blk_info_item){ .key = key, .label = label,
                                                              .kind = BLK_INFO_INT, .i = v };
}

static int vpc_info(struct blk_node *bs, struct blk_info *info, struct scuse_err *err)
{
    (void)err;
    struct vhd_state *s = bs->state;
    const struct vhd_footer *f = &s->ft;
    const struct vhd_text *t = &s->txt;
    add_str(info, "subformat", "disk type", vhd_type_name(f->type));
    add_str(info, "creator", "creator", t->creator);
    add_str(info, "creator-version", "creator version", t->version);
    add_str(info, "creator-os", "creator os", t->os);
    add_int(info, "cylinders", "cylinders", f->cyls);
    add_int(info, "heads", "heads", f->heads);
    add_int(info, "sectors-per-track", "sectors per track", f->secs);
    add_int(info, "current-size", "current size", (int64_t)f->cur_size);
    add_str(info, "size-from", "size from", s->size_from_chs ? "geometry" : "current_size");
    add_str(info, "uuid", "uuid", t->uuid);
    add_int(info, "timestamp", "timestamp", f->timestamp);
    if (s->diff) {
        add_str(info, "parent-uuid", "parent uuid", t->parent_uuid);
        add_int(info, "parent-timestamp", "parent timestamp", s->dh.parent_ts);
        add_str(info, "parent-name", "parent name", s->parent_name);
    }
    return 0;
}

static const char *const vpc_aliases[] = { "vhd", NULL };

const struct blk_driver blk_driver_vpc = {
    .name = "vpc",
    .aliases = vpc_aliases,
    .description = "Virtual PC / Hyper-V VHD",
    .caps = BLK_DRV_BACKING,
    .probe = vpc_probe,
    .open = vpc_open,
    .close = vpc_close,
    .preadv = vhd_preadv,
    .block_status = vhd_block_status,
    .info = vpc_info,
    .pwritev = vhd_pwritev,
    .write_zeroes = vhd_write_zeroes,
    .discard = vhd_discard,
    .flush = vhd_flush,
    .meta_pending = vhd_meta_pending,
    .create = vhd_create,
    .create_opts = vhd_create_opts,
    .check = vhd_check,
    .verify_backing = vhd_verify_parent,
};
