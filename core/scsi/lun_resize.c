/* A LUN whose image changed size under it: the new capacity, and the
 * unit attention that tells the initiator to read it again. */
#include "scsi/scsi_int.h"
#include "util/log.h"

uint16_t scsi_lun_id(const struct scsi_lun *lun) { return lun->id; }

bool scsi_lun_refresh_capacity(struct scsi_lun *lun)
{
    if (lun->removable)
        return false;               /* a disc does not grow: eject and insert instead */
    uint64_t size = __atomic_load_n(&lun->bs->size, __ATOMIC_ACQUIRE);
    uint64_t blocks = size >> lun->shift;
    uint64_t old = __atomic_load_n(&lun->blocks, __ATOMIC_ACQUIRE);
    if (blocks == old)
        return false;
    if (blocks == 0) {
        /* READ CAPACITY cannot say "no blocks": keep the old capacity;
         * reads past the end of the file come back as zeros. */
        log_warn("LUN %u: the image is now smaller than one block; capacity kept", lun->id);
        return false;
    }
    /* Commands already prepared keep the range they were checked
     * against; a shrink makes their tail read as zeros or fail with LBA
     * OUT OF RANGE in the block layer, as on a real disk resized live. */
    __atomic_store_n(&lun->blocks, blocks, __ATOMIC_RELEASE);
    log_info("LUN %u: capacity %llu -> %llu blocks of %u bytes", lun->id,
             (unsigned long long)old, (unsigned long long)blocks, lun->block_size);
    scsi_lun_raise_ua(lun, SCSI_UA_CAPACITY_CHANGED);
    return true;
}
