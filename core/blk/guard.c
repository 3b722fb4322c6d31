/* The guard that keeps a probed raw image raw (QEMU's rule): a write that
 * would make the file's first bytes, or its last 512, look like another
 * format is refused, because the next probe would open the guest's data
 * as that format (a qcow2 header naming a host file as its backing file,
 * say). Only writes to those places of images whose format was guessed
 * pay for the check. */
#include <errno.h>
#include <string.h>

#include "blk/driver.h"

#define GUARD_HEAD 4096
#define GUARD_TAIL 512

int blk_probe_guard(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                    struct scuse_err *err)
{
    if (!bs->probed || strcmp(bs->drv->name, "raw") != 0)
        return 0;
    uint64_t size = blk_size_now(bs), end = off + v->len;
    uint64_t tail_at = size > GUARD_TAIL ? size - GUARD_TAIL : 0;
    if (off >= GUARD_HEAD && end <= tail_at)
        return 0;
    uint8_t head[GUARD_HEAD], tail[GUARD_TAIL];
    size_t hlen = size < GUARD_HEAD ? (size_t)size : GUARD_HEAD;
    size_t tlen = (size_t)(size - tail_at);
    int r = blk_pread(bs, 0, head, hlen, err);
    if (r == 0)
        r = blk_pread(bs, tail_at, tail, tlen, err);
    if (r < 0)
        return r;
    /* Lay the write over both windows. */
    if (off < hlen) {
        size_t n = hlen - off < v->len ? hlen - (size_t)off : v->len;
        iov_view_to_buf(v, 0, head + off, n);
    }
    if (end > tail_at) {
        uint64_t from = off > tail_at ? off : tail_at;
        iov_view_to_buf(v, (size_t)(from - off), tail + (from - tail_at), (size_t)(end - from));
    }
    struct blk_probe p = { .head = head, .head_len = hlen, .tail = tail, .tail_len = tlen,
                           .file_size = size };
    const struct blk_driver *d = blk_driver_probe_in(bs->opts.drivers, &p);
    if (d && d != bs->drv)
        return err_set(err, -EPERM, "'%s': refused a write that would make this probed raw image "
                       "look like a %s image; give the format explicitly (-f raw, format=raw)",
                       bs->path, d->unsupported ? d->unsupported : d->name);
    return 0;
}
