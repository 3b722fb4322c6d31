/* MODE SENSE (6/10) of a cdrom LUN: pages 01h (read error recovery) and
 * 2Ah (CD/DVD capabilities and mechanical status, which Linux sr reads
 * with MODE SENSE(6) to learn what the drive can do), 3Fh both. No block
 * descriptor (a CD/DVD device has none; QEMU's scsi-cd neither), nothing
 * changeable, nothing saveable. Answered in prepare. */
#include <string.h>

#include "scsi/mmc.h"

#define CAP_PAGE_LEN 22
#define SPEED_X 176                 /* kB/s of 1x, as Linux divides */

static size_t page(struct scsi_lun *lun, uint8_t code, int pc, uint8_t *out)
{
    bool chg = pc == MPC_CHANGEABLE;
    switch (code) {
    case MPAGE_RW_ERROR_RECOVERY:
        memset(out, 0, 12);
        out[0] = code;
        out[1] = 0x0a;
        return 12;
    case MPAGE_MM_CAPABILITIES:
        memset(out, 0, CAP_PAGE_LEN);
        out[0] = code;
        out[1] = CAP_PAGE_LEN - 2;
        if (chg)
            return CAP_PAGE_LEN;
        out[2] = 0x3b;              /* reads CD-R, CD-RW, DVD-ROM, DVD-R, DVD-RAM media */
        out[3] = 0x00;              /* writes nothing: Linux keeps the device read-only */
        out[4] = 0x70;              /* multi-session, Mode 2 Form 1 and Form 2 */
        out[5] = 0x03;              /* CD-DA read with READ CD, accurately */
        /* Tray loading mechanism, eject, lock, and whether it is locked. */
        out[6] = 0x29 | (scsi_lun_medium_locked(lun) ? 0x02 : 0);
        put_be16(out + 8, 50 * SPEED_X);    /* maximum read speed (obsolete field) */
        put_be16(out + 12, 2048);           /* buffer size, KiB */
        put_be16(out + 14, 16 * SPEED_X);   /* current read speed (obsolete field) */
        return CAP_PAGE_LEN;
    default:
        return 0;
    }
}

static const uint8_t all_pages[] = { MPAGE_RW_ERROR_RECOVERY, MPAGE_MM_CAPABILITIES };

SCSI_HANDLER(mmc_prep_mode_sense)
{
    const uint8_t *cdb = cmd->cdb;
    bool ten = cdb[0] == OP_MODE_SENSE10;
    int pc = cdb[2] >> 6;
    uint8_t code = cdb[2] & 0x3f, sub = cdb[3];
    size_t alloc = ten ? get_be16(cdb + 7) : cdb[4];
    uint8_t b[8 + 12 + CAP_PAGE_LEN];

    if (pc == MPC_SAVED) {
        scsi_fail_key(lun, cmd, SK_ILLEGAL_REQUEST, ASC_SAVING_PARAMS_UNSUPPORTED);
        return;
    }
    if (code != MPAGE_ALL && !page(lun, code, pc, b)) {
        scsi_fail_cdb(lun, cmd, 2, 5);
        return;
    }
    if (sub != 0 && sub != MSUB_ALL) {
        scsi_fail_cdb(lun, cmd, 3, -1);
        return;
    }
    memset(b, 0, sizeof(b));
    size_t off = ten ? 8 : 4;
    for (unsigned i = 0; i < sizeof(all_pages); i++)
        if (code == MPAGE_ALL || code == all_pages[i])
            off += page(lun, all_pages[i], pc, b + off);
    /* Medium type and device-specific byte 0; no block descriptor. */
    if (ten)
        put_be16(b, (uint16_t)(off - 2));
    else
        b[0] = (uint8_t)(off - 1);
    scsi_reply(cmd, b, off, alloc);
}
