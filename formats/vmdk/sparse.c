/* KDMV sparse extents: the 512-byte header (or, for a stream whose header
 * says GD_AT_END, the copy in the footer), the grain directory and its
 * redundant copy, all bounds-checked against the file before anything is
 * allocated or read. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "vmdk/vmdk.h"

void vmdk4_header_decode(const uint8_t *b, struct vmdk4_header *h)
{
    h->version = vmdk_le32(b + 4);
    h->flags = vmdk_le32(b + 8);
    h->capacity = vmdk_le64(b + 12);
    h->grain_size = vmdk_le64(b + 20);
    h->desc_offset = vmdk_le64(b + 28);
    h->desc_size = vmdk_le64(b + 36);
    h->num_gtes_per_gt = vmdk_le32(b + 44);
    h->rgd_offset = vmdk_le64(b + 48);
    h->gd_offset = vmdk_le64(b + 56);
    h->overhead = vmdk_le64(b + 64);
    h->unclean = b[72];
    h->compress_algorithm = vmdk_le16(b + 77);
}

void vmdk4_header_encode(const struct vmdk4_header *h, uint8_t *b)
{
    memset(b, 0, VMDK_SECTOR);
    vmdk_put32(b, VMDK4_MAGIC);
    vmdk_put32(b + 4, h->version);
    vmdk_put32(b + 8, h->flags);
    vmdk_put64(b + 12, h->capacity);
    vmdk_put64(b + 20, h->grain_size);
    vmdk_put64(b + 28, h->desc_offset);
    vmdk_put64(b + 36, h->desc_size);
    vmdk_put32(b + 44, h->num_gtes_per_gt);
    vmdk_put64(b + 48, h->rgd_offset);
    vmdk_put64(b + 56, h->gd_offset);
    vmdk_put64(b + 64, h->overhead);
    b[72] = h->unclean;
    /* The line-ending check: a file mangled by a text-mode transfer
     * changes these bytes. */
    b[73] = '\n';
    b[74] = ' ';
    b[75] = '\r';
    b[76] = '\n';
    vmdk_put16(b + 77, h->compress_algorithm);
}

bool vmdk_overlaps_meta(const struct vmdk_sparse *sp, uint64_t start, uint64_t end)
{
    for (int i = 0; i < sp->n_meta; i++)
        if (start < sp->meta[i].end && sp->meta[i].start < end)
            return true;
    return false;
}

void vmdk_sparse_close(struct vmdk_sparse *sp)
{
    if (!sp)
        return;
    if (sp->gt) {
        for (uint64_t i = 0; i < sp->n_gd; i++)
            free(sp->gt[i]);
        free(sp->gt);
        pthread_mutex_destroy(&sp->gt_lock);
    }
    vmdk_dpool_free(sp->dpool);
    vmdk_stream_writer_close(sp);
    vmdk_writer_close(sp);
    free(sp->gd);
    free(sp->rgd);
    free(sp);
}

/* A stream whose header says GD_AT_END: the footer (marker, header copy,
 * end-of-stream marker) ends the file. */
static int read_footer(struct vmdk_sparse *sp, struct scuse_err *err)
{
    uint8_t b[3 * VMDK_SECTOR];
    if (sp->file_size < 4 * VMDK_SECTOR)
        return err_set(err, -EINVAL, "'%s': gdOffset is GD_AT_END but the file is too short "
                       "for a footer", sp->path);
    int r = file_pread_exact(sp->fd, b, sizeof(b), sp->file_size - sizeof(b));
    if (r < 0)
        return err_set(err, r, "'%s': cannot read the footer: %s", sp->path, strerror(-r));
    if (vmdk_le32(b + 12) != VMDK_MARKER_FOOTER || vmdk_le32(b + 8) != 0 ||
        vmdk_le32(b + VMDK_SECTOR) != VMDK4_MAGIC)
        return err_set(err, -EINVAL, "'%s': gdOffset is GD_AT_END but no footer precedes the "
                       "end-of-stream marker", sp->path);
    if (vmdk_le32(b + 2 * VMDK_SECTOR + 12) != VMDK_MARKER_EOS || vmdk_le32(b + 2 * VMDK_SECTOR + 8))
        return err_set(err, -EINVAL, "'%s': the file does not end with an end-of-stream marker",
                       sp->path);
    vmdk4_header_decode(b + VMDK_SECTOR, &sp->h);
    if (sp->h.gd_offset == VMDK_GD_AT_END)
        return err_set(err, -EINVAL, "'%s': footer: gdOffset is GD_AT_END too", sp->path);
    sp->meta[sp->n_meta++] = (struct vmdk_range){ sp->file_size - sizeof(b), sp->file_size };
    return 0;
}

static int check_header(struct vmdk_sparse *sp, struct scuse_err *err)
{
    const struct vmdk4_header *h = &sp->h;
    const char *p = sp->path;
    if (h->version < 1 || h->version > 3)
        return err_set(err, -ENOTSUP, "'%s': KDMV version %" PRIu32 " is not supported (1 to 3)",
                       p, h->version);
    sp->compressed = h->flags & VMDK4_FLAG_COMPRESS;
    sp->markers = h->flags & VMDK4_FLAG_MARKER;
    sp->zero_grain = h->flags & VMDK4_FLAG_ZERO_GRAIN;
    if (sp->compressed && h->compress_algorithm != VMDK4_COMPRESS_DEFLATE)
        return err_set(err, -ENOTSUP, "'%s': compressAlgorithm %u is not supported (1, deflate)",
                       p, h->compress_algorithm);
    if (h->grain_size == 0 || h->grain_size > VMDK_MAX_GRAIN_SECTORS ||
        (h->grain_size & (h->grain_size - 1)))
        return err_set(err, -EINVAL, "'%s': grainSize %" PRIu64 " sectors is not a power of two "
                       "from 1 to %u", p, h->grain_size, VMDK_MAX_GRAIN_SECTORS);
    if (h->num_gtes_per_gt == 0 || h->num_gtes_per_gt > VMDK_MAX_GTES)
        return err_set(err, -EINVAL, "'%s': numGTEsPerGT %" PRIu32 " is not from 1 to %u", p,
                       h->num_gtes_per_gt, VMDK_MAX_GTES);
    if (h->capacity == 0 || h->capacity > VMDK_MAX_TOTAL_SECTORS)
        return err_set(err, -EINVAL, "'%s': capacity %" PRIu64 " sectors is not from 1 to 2^47",
                       p, h->capacity);
    sp->grain_bytes = h->grain_size * VMDK_SECTOR;
    sp->grain_shift = (uint32_t)__builtin_ctzll(sp->grain_bytes);
    sp->gtes = h->num_gtes_per_gt;
    sp->gt_bytes = ((uint64_t)sp->gtes * 4 + VMDK_SECTOR - 1) & ~(uint64_t)(VMDK_SECTOR - 1);
    uint64_t per_gt = h->grain_size * sp->gtes;
    sp->n_gd = (h->capacity + per_gt - 1) / per_gt;
    if (sp->n_gd > VMDK_MAX_GD_ENTRIES)
        return err_set(err, -EINVAL, "'%s': capacity %" PRIu64 " needs %" PRIu64 " grain "
                       "directory entries (at most %u)", p, h->capacity, sp->n_gd,
                       VMDK_MAX_GD_ENTRIES);
    if (h->desc_offset) {
        if (h->desc_offset > sp->file_size / VMDK_SECTOR ||
            h->desc_size > (sp->file_size / VMDK_SECTOR) - h->desc_offset)
            return err_set(err, -EINVAL, "'%s': descriptorOffset %" PRIu64 " + descriptorSize %"
                           PRIu64 " sectors lies past the end of the file", p, h->desc_offset,
                           h->desc_size);
        sp->meta[sp->n_meta++] = (struct vmdk_range){ h->desc_offset * VMDK_SECTOR,
                                                      (h->desc_offset + h->desc_size) * VMDK_SECTOR };
    }
    return 0;
}

/* Load one grain directory (gdOffset or rgdOffset) and check its entries. */
static int load_gd(struct vmdk_sparse *sp, uint64_t sector, const char *field, uint32_t **out,
                   struct scuse_err *err)
{
    const char *p = sp->path;
    uint64_t bytes = sp->n_gd * 4;
    if (sector == 0 || sector > sp->file_size / VMDK_SECTOR ||
        bytes > sp->file_size - sector * VMDK_SECTOR)
        return err_set(err, -EINVAL, "'%s': %s %" PRIu64 ": the grain directory (%" PRIu64
                       " bytes) lies past the end of the file (%" PRIu64 " bytes)", p, field,
                       sector, bytes, sp->file_size);
    uint64_t start = sector * VMDK_SECTOR, end = start + bytes;
    if (vmdk_overlaps_meta(sp, start, end))
        return err_set(err, -EINVAL, "'%s': %s %" PRIu64 ": the grain directory overlaps the "
                       "header or descriptor", p, field, sector);
    uint8_t *raw = malloc(bytes);
    uint32_t *gd = malloc(bytes);
    if (!raw || !gd) {
        free(raw);
        free(gd);
        return err_set(err, -ENOMEM, "out of memory");
    }
    int r = file_pread_exact(sp->fd, raw, bytes, start);
    if (r < 0) {
        free(raw);
        free(gd);
        return err_set(err, r, "'%s': cannot read the grain directory: %s", p, strerror(-r));
    }
    for (uint64_t i = 0; i < sp->n_gd; i++)
        gd[i] = vmdk_le32(raw + 4 * i);
    free(raw);
    sp->meta[sp->n_meta++] = (struct vmdk_range){ start, (end + VMDK_SECTOR - 1) & ~(uint64_t)511 };
    *out = gd;
    return 0;
}

static int check_gd(struct vmdk_sparse *sp, const uint32_t *gd, const char *which,
                    struct scuse_err *err)
{
    for (uint64_t i = 0; i < sp->n_gd; i++) {
        if (!gd[i])
            continue;
        uint64_t start = (uint64_t)gd[i] * VMDK_SECTOR, end = start + sp->gtes * 4ull;
        if (end > sp->file_size)
            return err_set(err, -EINVAL, "'%s': %s entry %" PRIu64 ": grain table at sector %"
                           PRIu32 " lies past the end of the file", sp->path, which, i, gd[i]);
        if (vmdk_overlaps_meta(sp, start, end))
            return err_set(err, -EINVAL, "'%s': %s entry %" PRIu64 ": grain table at sector %"
                           PRIu32 " overlaps the header, descriptor or a grain directory",
                           sp->path, which, i, gd[i]);
    }
    return 0;
}

int vmdk_sparse_open(int fd, const char *path, struct vmdk_sparse **out, struct scuse_err *err)
{
    *out = NULL;
    struct vmdk_sparse *sp = calloc(1, sizeof(*sp));
    if (!sp)
        return err_set(err, -ENOMEM, "out of memory");
    sp->fd = fd;
    sp->path = path;
    int r = file_size(fd, &sp->file_size);
    if (r < 0) {
        err_set(err, r, "'%s': cannot get size: %s", path, strerror(-r));
        goto fail;
    }
    uint8_t b[VMDK_SECTOR];
    if (sp->file_size < VMDK_SECTOR) {
        r = err_set(err, -EINVAL, "'%s': truncated KDMV header (%" PRIu64 " bytes of 512)", path,
                    sp->file_size);
        goto fail;
    }
    r = file_pread_exact(fd, b, sizeof(b), 0);
    if (r < 0) {
        err_set(err, r, "'%s': cannot read the header: %s", path, strerror(-r));
        goto fail;
    }
    if (vmdk_le32(b) != VMDK4_MAGIC) {
        r = err_set(err, -EINVAL, "'%s': not a KDMV sparse extent (bad magic)", path);
        goto fail;
    }
    vmdk4_header_decode(b, &sp->h);
    sp->meta[sp->n_meta++] = (struct vmdk_range){ 0, VMDK_SECTOR };
    if (sp->h.gd_offset == VMDK_GD_AT_END) {
        if ((r = read_footer(sp, err)) < 0)
            goto fail;
    }
    if ((r = check_header(sp, err)) < 0)
        goto fail;
    sp->has_rgd = (sp->h.flags & VMDK4_FLAG_RGD) && sp->h.rgd_offset != 0;
    if ((r = load_gd(sp, sp->h.gd_offset, "gdOffset", &sp->gd, err)) < 0)
        goto fail;
    if (sp->has_rgd && (r = load_gd(sp, sp->h.rgd_offset, "rgdOffset", &sp->rgd, err)) < 0)
        goto fail;
    if ((r = check_gd(sp, sp->gd, "grain directory", err)) < 0)
        goto fail;
    if (sp->rgd && (r = check_gd(sp, sp->rgd, "redundant grain directory", err)) < 0)
        goto fail;
    sp->gt = calloc(sp->n_gd, sizeof(*sp->gt));
    if (!sp->gt) {
        r = err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    pthread_mutex_init(&sp->gt_lock, NULL);
    if (sp->compressed && (r = vmdk_dpool_new(&sp->dpool)) < 0) {
        err_set(err, r, "out of memory");
        goto fail;
    }
    *out = sp;
    return 0;
fail:
    vmdk_sparse_close(sp);
    return r;
}

int vmdk_sparse_read_desc(struct vmdk_sparse *sp, char **text, size_t *len, struct scuse_err *err)
{
    *text = NULL;
    *len = 0;
    if (!sp->h.desc_offset || !sp->h.desc_size)
        return 0;
    uint64_t n = sp->h.desc_size * VMDK_SECTOR;
    if (n > VMDK_MAX_DESC_BYTES)
        n = VMDK_MAX_DESC_BYTES; /* the text ends at its first NUL long before */
    char *t = malloc(n);
    if (!t)
        return err_set(err, -ENOMEM, "out of memory");
    int r = file_pread_exact(sp->fd, t, n, sp->h.desc_offset * VMDK_SECTOR);
    if (r < 0) {
        free(t);
        return err_set(err, r, "'%s': cannot read the embedded descriptor: %s", sp->path,
                       strerror(-r));
    }
    *text = t;
    *len = n;
    return 0;
}
