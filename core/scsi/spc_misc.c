/* TEST UNIT READY, REQUEST SENSE, REPORT LUNS and REPORT SUPPORTED TASK
 * MANAGEMENT FUNCTIONS: answered in prepare from LUN state. */
#include <string.h>

#include "scsi/scsi_int.h"

SCSI_HANDLER(spc_prep_tur)
{
    (void)lun;                      /* a stopped unit was refused before this */
    scsi_good(cmd, 0, 0);
}

/* With autosense every failed command carried its own sense, so what is
 * left to report is a pending unit attention or the stopped state. */
SCSI_HANDLER(spc_prep_request_sense)
{
    bool desc = cmd->cdb[1] & 0x01;
    size_t alloc = cmd->cdb[4];
    struct scsi_sense s;
    if (!scsi_lun_take_ua(lun, &s)) {
        memset(&s, 0, sizeof(s));
        if (__atomic_load_n(&lun->stopped, __ATOMIC_ACQUIRE)) {
            s.key = SK_NOT_READY;
            s.asc = ASC_LUN_NOT_READY_INIT_REQUIRED;
        }
    }
    uint8_t b[SCSI_SENSE_MAX];
    uint32_t n = scsi_sense_encode(&s, desc, b);
    scsi_reply(cmd, b, n, alloc);
}

/* The LUN's view of its target: every LUN behind it (scsi_target), or
 * itself alone when it belongs to none. */
SCSI_HANDLER(spc_prep_report_luns)
{
    uint8_t select = cmd->cdb[2];
    size_t alloc = get_be32(cmd->cdb + 6);
    if (select > 0x02) {
        scsi_fail_cdb(lun, cmd, 2, -1);
        return;
    }
    /* Reporting the inventory clears REPORTED LUNS DATA HAS CHANGED. */
    __atomic_and_fetch(&lun->ua, ~(1u << SCSI_UA_LUNS_CHANGED), __ATOMIC_RELEASE);
    /* 0x00: every logical unit; 0x02: the same with the well-known ones
     * (none here); 0x01: well-known logical units only. */
    scsi_target_reply_luns(lun->target, lun->id, select == 0x01, cmd, alloc);
}

/* The task management functions the dispatcher implements: ABORT TASK
 * (scsi_abort) and LOGICAL UNIT RESET (scsi_lun_reset). */
SCSI_HANDLER(spc_prep_rtmf)
{
    bool repd = cmd->cdb[2] & 0x80;
    size_t alloc = get_be32(cmd->cdb + 6);
    uint8_t b[16];
    memset(b, 0, sizeof(b));
    b[0] = 0x80 | 0x08;             /* ATS, LURS */
    if (repd)
        b[3] = 0x0c;                /* additional data length of the extended format */
    (void)lun;
    scsi_reply(cmd, b, repd ? 16 : 4, alloc);
}
