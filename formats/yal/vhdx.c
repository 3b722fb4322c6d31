/* VHDX (Hyper-V), read through libvhdi.
 *
 * libvhdi does not replay VHDX's log: a file whose current header names a
 * log (a non-zero log GUID: entries not yet replayed, e.g. after a crash
 * in Hyper-V) would read stale, so it is refused before libvhdi opens it,
 * and never written. Differencing VHDX (which QEMU does not read either)
 * is refused: nothing here can make one to test it with. Block status
 * comes from the BAT, read here (vhdx_bat.c): libvhdi does not say. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvhdi.h>

#include "io/file.h"
#include "yal/vhdx_bat.h"
#include "yal/yal.h"

#define VHDX_HEADER1 (64u << 10)
#define VHDX_HEADER2 (128u << 10)
#define VHDX_HEADER_SIZE 4096u

struct vhdx_state {
    struct yal_image im;       /* first: bs->state is both */
    uint32_t disk_type;
    uint64_t sequence;
    struct vhdx_bat bat;
};

static int vhdx_probe(const struct blk_probe *p)
{
    return p->head_len >= 8 && memcmp(p->head, "vhdxfile", 8) == 0 ? 100 : 0;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* The current header (valid checksum, highest sequence number) must not
 * name a log. */
static int check_log(struct blk_node *bs, struct vhdx_state *s, struct scuse_err *err)
{
    static const uint32_t at[2] = { VHDX_HEADER1, VHDX_HEADER2 };
    uint8_t h[2][VHDX_HEADER_SIZE];
    int best = -1;
    for (int i = 0; i < 2; i++) {
        if (file_pread_exact(bs->fd, h[i], VHDX_HEADER_SIZE, at[i]) < 0 || memcmp(h[i], "head", 4))
            continue;
        uint32_t want = le32(h[i] + 4);
        memset(h[i] + 4, 0, 4);
        if (vhdx_crc32c(h[i], VHDX_HEADER_SIZE) != want)
            continue;
        if (best < 0 || le64(h[i] + 8) > le64(h[best] + 8))
            best = i;
    }
    if (best < 0)
        return err_set(err, -EINVAL, "'%s': no valid VHDX header (signature 'head' and CRC-32C) "
                       "at 64 KiB or 128 KiB", bs->path);
    s->sequence = le64(h[best] + 8);
    static const uint8_t zero[16];
    const uint8_t *g = h[best] + 48;
    if (memcmp(g, zero, 16) != 0)
        return err_set(err, -EINVAL, "'%s': the VHDX log holds entries not yet replayed (log GUID "
                       "%02x%02x%02x%02x-...): libvhdi would read stale data; replay the log "
                       "first (qemu-img check -r all '%s', or open it in Hyper-V)",
                       bs->path, g[3], g[2], g[1], g[0], bs->path);
    return 0;
}

static void why_of(libvhdi_error_t *e, char *why, size_t len)
{
    why[0] = '\0';
    if (e) {
        libvhdi_error_sprint(e, why, len);
        libvhdi_error_free(&e);
    }
}

static int vhdx_open_handle(struct yal_pool *p, void **out, struct scuse_err *err)
{
    libvhdi_file_t *f = NULL;
    libvhdi_error_t *e = NULL;
    char why[512];
    if (libvhdi_file_initialize(&f, &e) != 1) {
        why_of(e, why, sizeof(why));
        return err_set(err, -ENOMEM, "'%s': libvhdi: %s", p->path, why);
    }
    if (libvhdi_file_open(f, p->path, LIBVHDI_OPEN_READ, &e) != 1) {
        why_of(e, why, sizeof(why));
        yal_one_line(why);
        libvhdi_file_free(&f, NULL);
        return err_set(err, -EINVAL, "'%s': libvhdi cannot open it: %s", p->path, why);
    }
    *out = f;
    return 0;
}

static void vhdx_close_handle(void *h)
{
    libvhdi_file_t *f = h;
    libvhdi_file_close(f, NULL);
    libvhdi_file_free(&f, NULL);
}

static int vhdx_read_handle(void *h, void *buf, size_t len, uint64_t off, char *why, size_t wl)
{
    libvhdi_error_t *e = NULL;
    ssize_t n = libvhdi_file_read_buffer_at_offset(h, buf, len, (off64_t)off, &e);
    if (n == (ssize_t)len)
        return 0;
    why_of(e, why, wl);
    return -EIO;
}

static const struct yal_ops vhdx_ops = {
    .lib = "libvhdi",
    .open = vhdx_open_handle,
    .close = vhdx_close_handle,
    .read = vhdx_read_handle,
};

static void free_own(struct yal_image *im)
{
    vhdx_bat_free(&((struct vhdx_state *)im)->bat);
}

static int bat_status(struct blk_node *bs, uint64_t off, uint64_t len, uint64_t *pnum,
                      struct blk_status *st, struct scuse_err *err)
{
    (void)err;
    vhdx_bat_status(&((struct vhdx_state *)bs->state)->bat, off, len, pnum, st);
    return 0;
}

static int vhdx_open(struct blk_node *bs, struct scuse_err *err)
{
    if (!bs->read_only && !bs->check_only)
        return yal_refuse_write(bs, "vhdx", err);
    struct vhdx_state *s = calloc(1, sizeof(*s));
    if (!s)
        return err_set(err, -ENOMEM, "out of memory");
    s->im.free_own = free_own;
    void *h;
    int r = check_log(bs, s, err);
    if (r == 0)
        r = yal_image_init(bs, &s->im, &vhdx_ops, &h, err);
    if (r < 0) {
        free(s);
        return r;
    }
    libvhdi_error_t *e = NULL;
    int type = 0;
    char why[512];
    if (libvhdi_file_get_file_type(h, &type, &e) != 1 || type != LIBVHDI_FILE_TYPE_VHDX) {
        why_of(e, why, sizeof(why));
        r = err_set(err, -EINVAL, "'%s': not a VHDX image (libvhdi says file type %d)", bs->path,
                    type);
    } else if (libvhdi_file_get_disk_type(h, &s->disk_type, &e) != 1 ||
               libvhdi_file_get_media_size(h, &s->im.size, &e) != 1) {
        why_of(e, why, sizeof(why));
        yal_one_line(why);
        r = err_set(err, -EINVAL, "'%s': libvhdi: %s", bs->path, why);
    } else if (s->disk_type == LIBVHDI_DISK_TYPE_DIFFERENTIAL) {
        r = err_set(err, -ENOTSUP, "'%s': differencing VHDX images are not supported (put a qcow2 "
                    "overlay on a full VHDX instead)", bs->path);
    }
    if (r == 0) {
        int b = vhdx_bat_load(bs->fd, s->im.size, &s->bat);
        if (b < 0)
            r = err_set(err, b, "out of memory");
        else if (b == 0)
            s->im.status = bat_status;
    }
    if (r < 0) {
        yal_image_free(&s->im);
        return r;
    }
    yal_info_add(&s->im, "subformat", "disk type",
                 s->disk_type == LIBVHDI_DISK_TYPE_FIXED ? "fixed" : "dynamic");
    yal_info_add(&s->im, "reader", "reader", "libvhdi");
    yal_image_attach(bs, &s->im);
    return 0;
}

static const struct blk_opt_desc vhdx_open_opts[] = {
    { "handles", BLK_OPT_NUM, "libvhdi handles for concurrent reads (1 to 64, default 4)" },
    { NULL, 0, NULL },
};

const struct blk_driver blk_driver_vhdx = {
    .name = "vhdx",
    .description = "Hyper-V VHDX (through libvhdi)",
    .open_opts = vhdx_open_opts,
    .probe = vhdx_probe,
    .open = vhdx_open,
    .close = yal_close,
    .preadv = yal_preadv,
    .block_status = yal_block_status,
    .info = yal_info,
};
