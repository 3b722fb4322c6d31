/* MMC (CD/DVD-ROM) constants and the handlers of the cdrom device type
 * (mmc_*.c), beside the SPC/SBC ones of scsi_int.h. Written from what
 * Linux sr, SeaBIOS and OVMF send and QEMU's scsi-cd answers
 * (shared/docs/mmc.md); internal to core/scsi. */
#ifndef SCUSE_SCSI_MMC_H
#define SCUSE_SCSI_MMC_H

#include "scsi/scsi_int.h"

#define MMC_BLOCK_SIZE 2048
#define MMC_BLOCK_SHIFT 11

/* Operation codes (MMC-6) */
#define OP_READ_SUBCHANNEL 0x42
#define OP_READ_TOC 0x43
#define OP_GET_CONFIGURATION 0x46
#define OP_GESN 0x4a
#define OP_READ_DISC_INFO 0x51
#define OP_READ_TRACK_INFO 0x52
#define OP_GET_PERFORMANCE 0xac
#define OP_SET_CD_SPEED 0xbb
#define OP_MECHANISM_STATUS 0xbd
#define OP_READ_CD 0xbe

/* Additional sense codes */
#define ASC_MEDIUM_MAY_HAVE_CHANGED 0x2800
#define ASC_MEDIUM_NOT_PRESENT_TRAY_CLOSED 0x3a01
#define ASC_MEDIUM_NOT_PRESENT_TRAY_OPEN 0x3a02
#define ASC_MEDIUM_REMOVAL_PREVENTED 0x5302
#define ASC_ILLEGAL_MODE_FOR_TRACK 0x6400
#define ASC_CANNOT_READ_MEDIUM_INCOMPATIBLE 0x3002

/* GET EVENT STATUS NOTIFICATION media event codes */
#define MMC_EVENT_EJECT_REQUEST 1
#define MMC_EVENT_NEW_MEDIA 2
#define MMC_EVENT_MEDIA_REMOVAL 3

/* Mode page: CD/DVD capabilities and mechanical status */
#define MPAGE_MM_CAPABILITIES 0x2a

/* medium.c: the initiator's START STOP UNIT with LoEj (load: Start=1).
 * false, with the sense, when removal is prevented. */
bool scsi_lun_guest_tray(struct scsi_lun *lun, bool load, struct scsi_sense *s);
/* The GET EVENT STATUS NOTIFICATION media event pending (0: none), cleared. */
uint8_t scsi_lun_take_media_event(struct scsi_lun *lun);

/* The track list for a medium (malloc'd: the cue driver's, or one Mode 1
 * track over the whole node); NULL with err when out of memory. */
struct optical_disc *scsi_medium_disc(struct blk_node *bs, struct scuse_err *err);

/* Handlers (mmc_*.c) */
SCSI_HANDLER(mmc_prep_request_sense);
SCSI_HANDLER(mmc_prep_start_stop);
SCSI_HANDLER(mmc_exec_start_stop);
SCSI_HANDLER(mmc_prep_read);
SCSI_HANDLER(mmc_prep_mode_sense);
SCSI_HANDLER(mmc_prep_read_toc);
SCSI_HANDLER(mmc_prep_disc_info);
SCSI_HANDLER(mmc_prep_track_info);
SCSI_HANDLER(mmc_prep_get_configuration);
SCSI_HANDLER(mmc_prep_gesn);
SCSI_HANDLER(mmc_prep_mechanism_status);
SCSI_HANDLER(mmc_prep_get_performance);
SCSI_HANDLER(mmc_prep_set_cd_speed);
SCSI_HANDLER(mmc_prep_read_cd);
SCSI_HANDLER(mmc_exec_read_cd);

#endif
