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

/* The LUN number in single-level format: peripheral device addressing up
 * to 255, flat space addressing above. */
static void put_lun(uint8_t *p, uint16_t id)
{
    memset(p, 0, 8);
    if (id < 256) {
        p[1] = (uint8_t)id;
    } else {
        p[0] = (uint8_t)(0x40 | (id >> 8));
        p[1] = (uint8_t)id;
    }
}

/* This LUN's view: it lists itself. A transport serving several LUNs
 * behind one target answers REPORT LUNS for the target itself. */
SCSI_HANDLER(spc_prep_report_luns)
{
    uint8_t select = cmd->cdb[2];
    size_t alloc = get_be32(cmd->cdb + 6);
    unsigned n;
    switch (select) {
    case 0x00:                      /* every logical unit */
    case 0x02:                      /* every logical unit, well-known ones too */
        n = 1;
        break;
    case 0x01:                      /* well-known logical units only: none */
        n = 0;
        break;
    default:
        scsi_fail_cdb(lun, cmd, 2, -1);
        return;
    }
    uint8_t b[16];
    memset(b, 0, sizeof(b));
    put_be32(b, n * 8);
    if (n)
        put_lun(b + 8, lun->id);
    /* Reporting the inventory clears REPORTED LUNS DATA HAS CHANGED. */
    __atomic_and_fetch(&lun->ua, ~(1u << SCSI_UA_LUNS_CHANGED), __ATOMIC_RELEASE);
    scsi_reply(cmd, b, 8 + n * 8, alloc);
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
