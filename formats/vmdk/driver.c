/* vmdk driver vtable: probe, open/close, the parent check and `info`.
 * The read path is in read.c; descriptors in desc.c; extents in
 * extent.c; KDMV headers in sparse.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/file.h"
#include "vmdk/vmdk.h"
#include "yal/yal.h"

extern const struct blk_driver blk_driver_vmdk;

static int vmdk_probe(const struct blk_probe *p)
{
    if (p->head_len >= 4 && (vmdk_le32(p->head) == VMDK4_MAGIC || vmdk_le32(p->head) == VMDK3_MAGIC))
        return 100;
    /* Descriptor text: a small file only, so that a guest that writes a
     * descriptor into its raw disk cannot make a probe follow extent
     * names to host files (a disk is far larger than 1 MiB). */
    if (p->file_size > VMDK_MAX_DESC_BYTES)
        return 0;
    return vmdk_desc_looks_like(p->head, p->head_len) ? 90 : 0;
}

static void state_free(struct vmdk_state *s)
{
    if (!s)
        return;
    vmdk_extents_close(s);
    if (s->cid_lock_ready)
        pthread_mutex_destroy(&s->cid_lock);
    vmdk_desc_free(&s->desc);
    free(s);
}

/* A KDMV file opened itself (monolithicSparse, streamOptimized, or one
 * extent of a split disk): one sparse extent of the header's capacity;
 * the embedded descriptor, if any, gives the CIDs and the parent (its
 * extent line names this file and is not used). */
static int open_kdmv(struct blk_node *bs, struct vmdk_state *s, struct scuse_err *err)
{
    s->embedded = true;
    s->ext = calloc(1, sizeof(*s->ext));
    if (!s->ext)
        return err_set(err, -ENOMEM, "out of memory");
    s->n_ext = 1;
    struct vmdk_extent *x = &s->ext[0];
    x->fd = bs->fd;
    x->type = VMDK_SPARSE;
    x->access = VMDK_RW;
    x->type_name = "";
    x->name = strdup(bs->filename);
    x->path = strdup(bs->filename);
    if (!x->name || !x->path)
        return err_set(err, -ENOMEM, "out of memory");
    int r = vmdk_sparse_open(bs->fd, bs->path, &x->sp, err);
    if (r < 0)
        return r;
    x->len = x->sp->h.capacity * VMDK_SECTOR;
    s->size = x->len;
    char *text;
    size_t len;
    r = vmdk_sparse_read_desc(x->sp, &text, &len, err);
    if (r < 0)
        return r;
    if (text && (len == 0 || text[0] == '\0')) { /* an empty descriptor area */
        free(text);
        text = NULL;
    }
    if (!text) {
        /* An extent of a split disk opened on its own has no descriptor. */
        static const char none[] = "CID=ffffffff\nparentCID=ffffffff\ncreateType=\"monolithicSparse\"\n";
        s->no_desc = true;
        return vmdk_desc_parse(none, sizeof(none) - 1, bs->path, &s->desc, err);
    }
    r = vmdk_desc_parse(text, len, bs->path, &s->desc, err);
    free(text);
    return r;
}

static int open_descriptor(struct blk_node *bs, struct vmdk_state *s, struct scuse_err *err)
{
    uint64_t size;
    int r = file_size(bs->fd, &size);
    if (r < 0)
        return err_set(err, r, "'%s': cannot get size: %s", bs->path, strerror(-r));
    if (size > VMDK_MAX_DESC_BYTES)
        return err_set(err, -EINVAL, "'%s': not a VMDK image: no KDMV header, and too large "
                       "(over 1 MiB) for a descriptor file", bs->path);
    char *text = malloc(size ? size : 1);
    if (!text)
        return err_set(err, -ENOMEM, "out of memory");
    r = file_pread_exact(bs->fd, text, size, 0);
    if (r < 0) {
        free(text);
        return err_set(err, r, "'%s': cannot read: %s", bs->path, strerror(-r));
    }
    if (!vmdk_desc_looks_like((const uint8_t *)text, size)) {
        free(text);
        return err_set(err, -EINVAL, "'%s': not a VMDK image: neither a KDMV header nor "
                       "descriptor text", bs->path);
    }
    r = vmdk_desc_parse(text, size, bs->path, &s->desc, err);
    free(text);
    if (r == 0)
        r = vmdk_extents_open(bs, s, err);
    return r;
}

static int vmdk_open(struct blk_node *bs, struct scuse_err *err)
{
    struct vmdk_state *s = calloc(1, sizeof(*s));
    if (!s)
        return err_set(err, -ENOMEM, "out of memory");
    s->path = bs->path;
    uint8_t magic[4] = { 0 };
    int r = 0;
    ssize_t n = pread(bs->fd, magic, sizeof(magic), 0);
    if (n < 0)
        r = err_set(err, -errno, "'%s': cannot read: %s", bs->path, strerror(errno));
    else if (n == 4 && vmdk_le32(magic) == VMDK4_MAGIC)
        r = open_kdmv(bs, s, err);
    else if (n == 4 && vmdk_le32(magic) == VMDK3_MAGIC)
        r = err_set(err, -ENOTSUP, "'%s' is a COWD (vmfsSparse) VMDK; scuse cannot open it yet",
                    bs->path);
    else
        r = open_descriptor(bs, s, err);
    if (r == 0 && s->size == 0)
        r = err_set(err, -EINVAL, "'%s': the disk has no sectors", bs->path);
    if (r == 0 && s->desc.parent_hint) {
        bs->backing_name = strdup(s->desc.parent_hint);
        bs->backing_fmt = strdup("vmdk");
        if (!bs->backing_name || !bs->backing_fmt)
            r = err_set(err, -ENOMEM, "out of memory");
    }
    /* Writers for the sparse extents scuse can write: RW, uncompressed. */
    bool rw = !bs->read_only && !bs->check_only;
    for (size_t i = 0; r == 0 && rw && i < s->n_ext; i++) {
        struct vmdk_extent *x = &s->ext[i];
        if (x->sp && x->access == VMDK_RW && !x->sp->compressed)
            r = vmdk_writer_open(x->sp, err);
        else if (x->sp && x->access == VMDK_RW)
            r = vmdk_stream_writer_open(x->sp, err);
        /* copies into it go through write_compressed, whole grains */
        if (x->sp && x->sp->stream)
            bs->compressed_only = true;
    }
    if (r == 0) {
        pthread_mutex_init(&s->cid_lock, NULL);
        s->cid_lock_ready = true;
    }
    if (r < 0) {
        state_free(s);
        /* variants this driver refuses: libvmdk may read them (formats/yal) */
        return r == -ENOTSUP ? yal_vmdk_fallback(bs, r, err) : r;
    }
    s->no_flush = bs->no_flush;
    bs->size = s->size;
    bs->align = VMDK_SECTOR;
    if (s->ext[0].sp)
        bs->cluster_size = (uint32_t)s->ext[0].sp->grain_bytes;
    bs->state = s;
    return 0;
}

static void vmdk_close(struct blk_node *bs)
{
    /* Grain tables still in memory reach the file in the safe order; a
     * failure here has nobody to tell, and loses only unflushed writes. */
    if (bs->state && !bs->read_only && vmdk_meta_pending(bs)) {
        struct scuse_err err = { 0 };
        (void)vmdk_flush(bs, &err);
    }
    state_free(bs->state);
    bs->state = NULL;
}

/* A child records its parent's CID: a parent changed since (its CID
 * rewritten by the write) no longer matches, and reading the child
 * through it would mix two disks. */
static int vmdk_verify_backing(struct blk_node *bs, struct scuse_err *err)
{
    struct vmdk_state *s = bs->state;
    if (!bs->backing || bs->backing->drv != &blk_driver_vmdk)
        return 0;
    const struct vmdk_state *ps = bs->backing->state;
    if (ps->desc.cid != s->desc.parent_cid)
        return err_set(err, -EINVAL, "'%s': parentCID %08" PRIx32 " does not match the CID "
                       "%08" PRIx32 " of its parent '%s' (the parent changed after the child "
                       "was made)", bs->path, s->desc.parent_cid, ps->desc.cid, bs->backing->path);
    return 0;
}

static void add(struct blk_info *info, const char *key, const char *label,
                enum blk_info_kind kind, const char *str, bool b, int64_t i)
{
    if (info->n_items >= BLK_INFO_MAX_ITEMS)
        return;
    struct blk_info_item *it = &info->item[info->n_items++];
    *it = (struct blk_info_item){ .key = key, .label = label, .kind = kind, .s = str, .b = b, .i = i };
}

/* Keys, order and nesting as qemu-img prints format-specific data. A
 * list longer than the item table holds is cut short, never unbalanced. */
static int vmdk_info(struct blk_node *bs, struct blk_info *info, struct scuse_err *err)
{
    (void)err;
    struct vmdk_state *s = bs->state;
    add(info, "cid", "cid", BLK_INFO_INT, NULL, false, s->desc.cid);
    add(info, "parent-cid", "parent cid", BLK_INFO_INT, NULL, false, s->desc.parent_cid);
    add(info, "create-type", "create type", BLK_INFO_STR, s->desc.create_type, false, 0);
    add(info, "extents", "extents", BLK_INFO_LIST, NULL, false, 0);
    for (size_t i = 0; i < s->n_ext && info->n_items + 8 < BLK_INFO_MAX_ITEMS; i++) {
        const struct vmdk_extent *x = &s->ext[i];
        add(info, NULL, NULL, BLK_INFO_OBJ, NULL, false, 0);
        if (x->sp && x->sp->compressed)
            add(info, "compressed", "compressed", BLK_INFO_BOOL, NULL, true, 0);
        add(info, "virtual-size", "virtual size", BLK_INFO_INT, NULL, false, (int64_t)x->len);
        if (x->path)
            add(info, "filename", "filename", BLK_INFO_STR, x->path, false, 0);
        if (x->sp)
            add(info, "cluster-size", "cluster size", BLK_INFO_INT, NULL, false,
                (int64_t)x->sp->grain_bytes);
        add(info, "format", "format", BLK_INFO_STR, x->type_name, false, 0);
        add(info, NULL, NULL, BLK_INFO_END, NULL, false, 0);
    }
    add(info, NULL, NULL, BLK_INFO_END, NULL, false, 0);
    return 0;
}

/* Disk size as qemu-img gives it: the descriptor and every extent file,
 * each once. */
static int vmdk_allocated(struct blk_node *bs, uint64_t *bytes)
{
    const struct vmdk_state *s = bs->state;
    struct stat d;
    int r = file_allocated(bs->fd, bytes);
    if (r < 0 || fstat(bs->fd, &d) < 0)
        return r;
    for (size_t i = 0; i < s->n_files; i++) {
        const struct vmdk_file *f = &s->files[i];
        uint64_t n;
        if (f->own && !(f->dev == d.st_dev && f->ino == d.st_ino) && file_allocated(f->fd, &n) == 0)
            *bytes += n;
    }
    return 0;
}

const struct blk_driver blk_driver_vmdk = {
    .name = "vmdk",
    .description = "VMware disk",
    .caps = BLK_DRV_BACKING,
    .probe = vmdk_probe,
    .open = vmdk_open,
    .close = vmdk_close,
    .verify_backing = vmdk_verify_backing,
    .preadv = vmdk_preadv,
    .block_status = vmdk_block_status,
    .info = vmdk_info,
    .allocated = vmdk_allocated,
    .pwritev = vmdk_pwritev,
    .write_zeroes = vmdk_write_zeroes,
    .discard = vmdk_discard,
    .flush = vmdk_flush,
    .meta_pending = vmdk_meta_pending,
    .write_compressed = vmdk_write_compressed,
    .create = vmdk_create,
    .check = vmdk_check,
    .create_opts = vmdk_create_opts,
};
