/* The internal snapshot table, for `info`. Entries are variable-length
 * ({40-byte header, extra data, id, name, pad8}); each one is bounds-checked
 * against the file and QEMU's size limits before anything is copied. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "qcow2/qcow2.h"
#include "util/log.h"

#define SN_HEADER 40

static void copy_str(char *dst, size_t dsz, const uint8_t *src, size_t n)
{
    size_t i = 0;
    for (; i < n && i + 1 < dsz && src[i]; i++)
        dst[i] = (char)src[i];
    dst[i] = '\0';
}

static int bad(struct qcow2_state *s, int idx, const char *what, uint64_t v)
{
    log_error("'%s': snapshot %d: %s (0x%" PRIx64 ")", s->path, idx, what, v);
    return -EINVAL;
}

static int read_entry(struct qcow2_state *s, int idx, uint64_t *pos, uint64_t end,
                      struct blk_snapshot_info *sn)
{
    uint8_t h[SN_HEADER];
    uint64_t off = *pos;
    if (off > end || end - off < SN_HEADER)
        return bad(s, idx, "entry extends beyond the snapshot table or the file", off);
    int r = file_pread_exact(s->fd, h, SN_HEADER, off);
    if (r < 0)
        return r;
    uint64_t l1_off = qcow2_be64(h);
    uint32_t l1_size = qcow2_be32(h + 8);
    uint16_t id_len = qcow2_be16(h + 12), name_len = qcow2_be16(h + 14);
    uint32_t extra_len = qcow2_be32(h + 36);
    if (l1_off & (s->cluster_size - 1))
        return bad(s, idx, "l1_table_offset is not cluster aligned", l1_off);
    if (l1_size > QCOW2_MAX_L1_BYTES / 8)
        return bad(s, idx, "l1_size is too large", l1_size);
    if (extra_len > QCOW2_MAX_SNAPSHOT_EXTRA)
        return bad(s, idx, "extra_data_size is too large", extra_len);
    uint64_t total = SN_HEADER + (uint64_t)extra_len + id_len + name_len;
    /* The padding to 8 bytes may be missing after the last entry (QEMU
     * does not write it when the table ends the file). */
    if (total > end - off)
        return bad(s, idx, "entry extends beyond the snapshot table or the file", off);
    total = (total + 7) & ~7ull;

    memset(sn, 0, sizeof(*sn));
    sn->date_sec = qcow2_be32(h + 16);
    sn->date_nsec = qcow2_be32(h + 20);
    sn->vm_clock_nsec = qcow2_be64(h + 24);
    sn->vm_state_size = qcow2_be32(h + 32);
    sn->icount = UINT64_MAX;
    uint8_t extra[24];
    size_t want = extra_len < sizeof(extra) ? extra_len : sizeof(extra);
    if (want) {
        r = file_pread_exact(s->fd, extra, want, off + SN_HEADER);
        if (r < 0)
            return r;
        /* Later writers store a 64-bit VM state size and the icount. */
        if (want >= 8)
            sn->vm_state_size = qcow2_be64(extra);
        if (want >= 24)
            sn->icount = qcow2_be64(extra + 16);
    }
    uint8_t str[256];
    uint64_t str_off = off + SN_HEADER + extra_len;
    size_t n = id_len < sizeof(sn->id) - 1 ? id_len : sizeof(sn->id) - 1;
    if (n) {
        r = file_pread_exact(s->fd, str, n, str_off);
        if (r < 0)
            return r;
    }
    copy_str(sn->id, sizeof(sn->id), str, n);
    n = name_len < sizeof(sn->name) - 1 ? name_len : sizeof(sn->name) - 1;
    if (n) {
        r = file_pread_exact(s->fd, str, n, str_off + id_len);
        if (r < 0)
            return r;
    }
    copy_str(sn->name, sizeof(sn->name), str, n);
    *pos = off + total;
    return 0;
}

int qcow2_read_snapshots(struct qcow2_state *s, struct blk_snapshot_info **out, int *count)
{
    *out = NULL;
    *count = 0;
    if (s->nb_snapshots == 0)
        return 0;
    uint64_t pos = s->snapshots_offset;
    uint64_t end = s->file_size;
    if (pos >= end)
        return bad(s, -1, "snapshots_offset is beyond the end of the file", pos);
    if (end - pos > QCOW2_MAX_SNAPSHOT_TABLE)
        end = pos + QCOW2_MAX_SNAPSHOT_TABLE;
    struct blk_snapshot_info *sn = calloc(s->nb_snapshots, sizeof(*sn));
    if (!sn)
        return -ENOMEM;
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        int r = read_entry(s, (int)i, &pos, end, &sn[i]);
        if (r < 0) {
            free(sn);
            return r;
        }
    }
    *out = sn;
    *count = (int)s->nb_snapshots;
    return 0;
}
