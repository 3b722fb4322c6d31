/* ORWRITE(16) and WRITE ATOMIC(16).
 *
 * ORWRITE (SBC-4 5.9) reads the blocks, ORs the data-out into them and
 * writes the result back; like COMPARE AND WRITE it is atomic per range
 * (the dispatcher keeps every other access to those blocks out while it
 * runs), so two ORWRITEs of different bits both land. Only the plain
 * operation (BMOP 000b) exists in the 16-byte CDB.
 *
 * WRITE ATOMIC (SBC-4 5.46) is a write that no other command sees in
 * part: it also runs as an atomic access. Its limits are in the Block
 * Limits VPD (MAXIMUM ATOMIC TRANSFER LENGTH, alignment and granularity
 * 1); ATOMIC BOUNDARY is not offered (0 in the VPD), so a non-zero one
 * is refused. */
#include <string.h>

#include "scsi/scsi_int.h"

SCSI_HANDLER(sbc_prep_orwrite)
{
    sbc_prep_range(lun, cmd, get_be64(cmd->cdb + 2), get_be32(cmd->cdb + 10),
                   SCSI_MAX_XFER_BYTES >> lun->shift, 10, true, SCSI_ACCESS_ATOMIC);
}

SCSI_HANDLER(sbc_exec_orwrite)
{
    uint64_t want = cmd->nblocks << lun->shift;
    size_t room = scsi_data_len(cmd, SCSI_DIR_TO_DEV);
    if (room < want) {
        /* Read-modify-write cannot run in part. */
        scsi_fail_short_data(lun, cmd, want);
        return;
    }
    uint8_t img[SCSI_SCRATCH], add[SCSI_SCRATCH];
    unsigned flags = sbc_write_flags(lun, cmd->cdb[1] & 0x08);
    struct scuse_err err;
    err_clear(&err);
    for (uint64_t done = 0; done < want;) {
        size_t len = want - done < sizeof(img) ? (size_t)(want - done) : sizeof(img);
        uint64_t off = (cmd->lba << lun->shift) + done;
        int r = blk_pread(lun->bs, off, img, len, &err);
        if (r < 0) {
            scsi_fail_errno(lun, cmd, r, false, off >> lun->shift, &err);
            return;
        }
        iov_view_to_buf(&cmd->data, done, add, len);
        for (size_t i = 0; i < len; i++)
            img[i] |= add[i];
        r = blk_pwrite(lun->bs, off, img, len, flags, &err);
        if (r < 0) {
            scsi_fail_errno(lun, cmd, r, true, off >> lun->shift, &err);
            return;
        }
        done += len;
    }
    scsi_good_xfer(cmd, SCSI_DIR_TO_DEV, want, want);
}

uint32_t sbc_max_atomic_blocks(const struct scsi_lun *lun)
{
    return SCSI_MAX_ATOMIC_BYTES >> lun->shift;
}

SCSI_HANDLER(sbc_prep_write_atomic)
{
    if (get_be16(cmd->cdb + 10) != 0) {
        scsi_fail_cdb(lun, cmd, 10, -1);    /* ATOMIC BOUNDARY: not offered */
        return;
    }
    sbc_prep_range(lun, cmd, get_be64(cmd->cdb + 2), get_be16(cmd->cdb + 12),
                   sbc_max_atomic_blocks(lun), 12, true, SCSI_ACCESS_ATOMIC);
}

SCSI_HANDLER(sbc_exec_write_atomic)
{
    uint64_t want = cmd->nblocks << lun->shift;
    if (scsi_data_len(cmd, SCSI_DIR_TO_DEV) < want) {
        /* All or nothing: a short buffer writes nothing. */
        scsi_fail_short_data(lun, cmd, want);
        return;
    }
    struct iov_view v = iov_view_sub(&cmd->data, 0, (size_t)want);
    struct scuse_err err;
    err_clear(&err);
    int r = blk_pwritev(lun->bs, cmd->lba << lun->shift, &v,
                        sbc_write_flags(lun, cmd->cdb[1] & 0x08), &err);
    if (r < 0) {
        scsi_fail_errno(lun, cmd, r, true, cmd->lba, &err);
        return;
    }
    scsi_good_xfer(cmd, SCSI_DIR_TO_DEV, want, want);
}
