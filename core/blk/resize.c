/* Size changes from outside: a raw image grown with `truncate -s` while a
 * daemon serves it. The driver re-reads the size; the SCSI layer then
 * reports the new capacity (scsi_lun_refresh_capacity). */
#include <errno.h>
#include <string.h>

#include "blk/driver.h"

void blk_set_size(struct blk_node *bs, uint64_t size)
{
    __atomic_store_n(&bs->size, size, __ATOMIC_RELEASE);
}

int blk_refresh_size(struct blk_node *bs, bool *changed, struct scuse_err *err)
{
    *changed = false;
    if (!bs->drv->refresh_size)
        return err_set(err, -ENOTSUP, "'%s': %s images are not resized while served",
                       bs->path, bs->drv->name);
    uint64_t old = __atomic_load_n(&bs->size, __ATOMIC_ACQUIRE);
    struct scuse_err local = { 0 };
    int r = bs->drv->refresh_size(bs, err ? err : &local);
    if (r < 0)
        return r;
    *changed = __atomic_load_n(&bs->size, __ATOMIC_ACQUIRE) != old;
    return 0;
}
