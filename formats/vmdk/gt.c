/* Grain tables: loaded on first use, then looked up without a lock. A
 * grain-table entry is the grain's sector in the extent file; 0 means
 * "not here" (the parent's data, or zeros) and 1 means a zeroed grain
 * when the header's flag allows it (without the flag, sector 1 is the
 * descriptor and an entry pointing there is refused as metadata). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "vmdk/vmdk.h"

int vmdk_gt_get(struct vmdk_sparse *sp, uint64_t i, uint32_t **out, struct scuse_err *err)
{
    uint32_t *gt = __atomic_load_n(&sp->gt[i], __ATOMIC_ACQUIRE);
    if (gt) {
        *out = gt;
        return 0;
    }
    uint32_t sector = __atomic_load_n(&sp->gd[i], __ATOMIC_ACQUIRE);
    if (!sector) {
        *out = NULL;
        return 0;
    }
    pthread_mutex_lock(&sp->gt_lock);
    gt = sp->gt[i];
    int r = 0;
    if (!gt) {
        uint8_t *raw = malloc(sp->gtes * 4ull);
        gt = malloc(sp->gtes * 4ull);
        if (!raw || !gt) {
            r = err_set(err, -ENOMEM, "out of memory");
        } else {
            r = file_pread_exact(sp->fd, raw, sp->gtes * 4ull, (uint64_t)sector * VMDK_SECTOR);
            if (r < 0)
                err_set(err, r, "'%s': cannot read the grain table at sector %" PRIu32 ": %s",
                        sp->path, sector, strerror(-r));
        }
        if (r == 0) {
            for (uint32_t k = 0; k < sp->gtes; k++)
                gt[k] = vmdk_le32(raw + 4 * k);
            __atomic_store_n(&sp->gt[i], gt, __ATOMIC_RELEASE);
        } else {
            free(gt);
            gt = NULL;
        }
        free(raw);
    }
    pthread_mutex_unlock(&sp->gt_lock);
    *out = gt;
    return r;
}

/* Entry of grain g, and what it says. */
static int grain_kind(struct vmdk_sparse *sp, uint64_t g, enum vmdk_kind *kind, uint64_t *host,
                      struct scuse_err *err)
{
    uint32_t *gt;
    int r = vmdk_gt_get(sp, g / sp->gtes, &gt, err);
    if (r < 0)
        return r;
    uint32_t e = gt ? __atomic_load_n(&gt[g % sp->gtes], __ATOMIC_ACQUIRE) : 0;
    *host = (uint64_t)e * VMDK_SECTOR;
    if (e == 0) {
        *kind = VMDK_K_UNALLOC;
        return 0;
    }
    if (e == VMDK_GTE_ZEROED && sp->zero_grain) {
        *kind = VMDK_K_ZERO;
        return 0;
    }
    *kind = sp->compressed ? VMDK_K_COMPRESSED : VMDK_K_DATA;
    uint64_t size = __atomic_load_n(&sp->file_size, __ATOMIC_ACQUIRE);
    uint64_t end = *host + (sp->compressed ? VMDK_SECTOR : sp->grain_bytes);
    if (*host >= size)
        return err_set(err, -EINVAL, "'%s': grain %" PRIu64 " at sector %" PRIu32 " lies past "
                       "the end of the file", sp->path, g, e);
    if (vmdk_overlaps_meta(sp, *host, end))
        return err_set(err, -EINVAL, "'%s': grain table entry for grain %" PRIu64 " points into "
                       "metadata (sector %" PRIu32 ")", sp->path, g, e);
    return 0;
}

int vmdk_gt_map(struct vmdk_sparse *sp, uint64_t off, uint64_t len, struct vmdk_run *run,
                struct scuse_err *err)
{
    uint64_t g = off >> sp->grain_shift;
    uint64_t in = off & (sp->grain_bytes - 1);
    int r = grain_kind(sp, g, &run->kind, &run->host, err);
    if (r < 0)
        return r;
    run->host += in;
    run->len = sp->grain_bytes - in;
    if (run->kind == VMDK_K_COMPRESSED) {
        run->host -= in; /* the grain's marker; the caller picks the bytes */
        if (run->len > len)
            run->len = len;
        return 0;
    }
    while (run->len < len) {
        enum vmdk_kind k;
        uint64_t host;
        g++;
        r = grain_kind(sp, g, &k, &host, err);
        if (r < 0)
            return r;
        if (k != run->kind || (k == VMDK_K_DATA && host != run->host + run->len))
            break;
        run->len += sp->grain_bytes;
    }
    if (run->len > len)
        run->len = len;
    return 0;
}
