/* The drive as a unit: REQUEST SENSE (what is wrong now: a unit
 * attention, or no medium), START STOP UNIT (the tray, from the
 * initiator's side) and the data reads' checks. */
#include <string.h>

#include "optical/disc.h"
#include "scsi/mmc.h"

/* SeaBIOS ignores autosense and asks after every failed TEST UNIT READY:
 * the answer must say why the medium cannot be read. */
SCSI_HANDLER(mmc_prep_request_sense)
{
    bool desc = cmd->cdb[1] & 0x01;
    size_t alloc = cmd->cdb[4];
    struct scsi_sense s;
    if (!scsi_lun_take_ua(lun, &s)) {
        memset(&s, 0, sizeof(s));
        if (scsi_medium_get(lun, &s)) {
            scsi_medium_put(lun);
            memset(&s, 0, sizeof(s));
        }
    }
    uint8_t b[SCSI_SENSE_MAX];
    uint32_t n = scsi_sense_encode(&s, desc, b);
    scsi_reply(cmd, b, n, alloc);
}

/* LoEj=0: spin up or down, which changes nothing here. LoEj=1: open
 * (Start=0) or close (Start=1) the tray: run in execute, alone. */
SCSI_HANDLER(mmc_prep_start_stop)
{
    (void)lun;
    if (!(cmd->cdb[4] & 0x02)) {
        scsi_good(cmd, 0, 0);
        return;
    }
    cmd->access = SCSI_ACCESS_BARRIER;
}

SCSI_HANDLER(mmc_exec_start_stop)
{
    struct scsi_sense s;
    if (!scsi_lun_guest_tray(lun, cmd->cdb[4] & 0x01, &s)) {
        scsi_fail(lun, cmd, &s);
        return;
    }
    scsi_good(cmd, 0, 0);
}

/* READ(10)/(12): 2048-byte blocks of the disc's data tracks; an audio
 * sector has none (ILLEGAL MODE FOR THIS TRACK, as a drive answers). */
SCSI_HANDLER(mmc_prep_read)
{
    struct sbc_range r;
    sbc_decode(cmd->cdb, &r);
    uint64_t blocks = __atomic_load_n(&lun->blocks, __ATOMIC_ACQUIRE);  /* medium-insert */
    if (r.lba < blocks && r.n <= blocks - r.lba &&
        !optical_range_is_data(lun->disc, (uint32_t)r.lba, (uint32_t)r.n)) {
        uint64_t bad = r.lba;
        while (bad < r.lba + r.n && optical_range_is_data(lun->disc, (uint32_t)bad, 1))
            bad++;
        struct scsi_sense s = { .key = SK_ILLEGAL_REQUEST, .asc = ASC_ILLEGAL_MODE_FOR_TRACK,
                                .info_valid = true, .info = bad };
        scsi_fail(lun, cmd, &s);
        return;
    }
    sbc_prep_rw(lun, cmd);
}
