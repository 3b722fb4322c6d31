/* The command table of a cdrom LUN (MMC-6 over SPC-4): what Linux sr,
 * SeaBIOS and OVMF send, in opcode order (RSOC lists it as is). Same
 * rules as scsi_table.c: usage[] the bits evaluated, ignore[] the bits
 * accepted and not acted on, anything else refused with INVALID FIELD IN
 * CDB. OPF_MEDIUM here: the command needs the medium (NOT READY, MEDIUM
 * NOT PRESENT without one); the others are served with the tray open, as
 * a drive does (INQUIRY, MODE SENSE, START STOP UNIT, PREVENT ALLOW,
 * GET CONFIGURATION, GET EVENT STATUS NOTIFICATION, REQUEST SENSE...). */
#include "scsi/mmc.h"

#define LBA4 0xff, 0xff, 0xff, 0xff
#define DPO 0x10
#define FUA 0x08

const struct scsi_op mmc_ops[] = {
    { "TEST UNIT READY", OP_TEST_UNIT_READY, SCSI_NO_SA, 6, OPF_MEDIUM, 10,
      .usage = { OP_TEST_UNIT_READY, 0, 0, 0, 0, 0 },
      .prepare = spc_prep_tur },
    { "REQUEST SENSE", OP_REQUEST_SENSE, SCSI_NO_SA, 6, OPF_NO_UA | OPF_DATA_IN, 10,
      .usage = { OP_REQUEST_SENSE, 0x01, 0, 0, 0xff, 0 },
      .prepare = mmc_prep_request_sense },
    { "INQUIRY", OP_INQUIRY, SCSI_NO_SA, 6, OPF_NO_UA | OPF_DATA_IN, 10,
      .usage = { OP_INQUIRY, 0x01, 0xff, 0xff, 0xff, 0 },
      .prepare = spc_prep_inquiry },
    { "MODE SENSE(6)", OP_MODE_SENSE6, SCSI_NO_SA, 6, OPF_DATA_IN, 10,
      .usage = { OP_MODE_SENSE6, 0x08, 0xff, 0xff, 0xff, 0 },
      .prepare = mmc_prep_mode_sense },
    { "START STOP UNIT", OP_START_STOP_UNIT, SCSI_NO_SA, 6, 0, 60,
      .usage = { OP_START_STOP_UNIT, 0x01, 0, 0, 0x03, 0 },
      .prepare = mmc_prep_start_stop, .execute = mmc_exec_start_stop },
    { "PREVENT ALLOW MEDIUM REMOVAL", OP_PREVENT_ALLOW, SCSI_NO_SA, 6, 0, 10,
      .usage = { OP_PREVENT_ALLOW, 0, 0, 0, 0x01, 0 },
      .ignore = { 0, 0, 0, 0, 0x02, 0 },    /* persistent prevent: as prevent */
      .prepare = sbc_prep_prevent_allow },
    { "READ CAPACITY(10)", OP_READ_CAPACITY10, SCSI_NO_SA, 10, OPF_MEDIUM | OPF_DATA_IN, 10,
      .usage = { OP_READ_CAPACITY10, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
      .prepare = sbc_prep_read_capacity10 },
    { "READ(10)", OP_READ10, SCSI_NO_SA, 10, OPF_MEDIUM | OPF_DATA_IN, 30,
      .usage = { OP_READ10, FUA, LBA4, 0, 0xff, 0xff, 0 },
      .ignore = { 0, DPO },
      .prepare = mmc_prep_read, .execute = sbc_exec_read },
    { "READ TOC/PMA/ATIP", OP_READ_TOC, SCSI_NO_SA, 10, OPF_MEDIUM | OPF_DATA_IN, 10,
      .usage = { OP_READ_TOC, 0x02, 0x0f, 0, 0, 0, 0xff, 0xff, 0xff, 0xc0 },
      .cont = { 0, 0, 0x07 },
      .prepare = mmc_prep_read_toc },
    { "GET CONFIGURATION", OP_GET_CONFIGURATION, SCSI_NO_SA, 10, OPF_NO_UA | OPF_DATA_IN, 10,
      .usage = { OP_GET_CONFIGURATION, 0x03, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, 0 },
      .cont = { 0, 0x01 },
      .prepare = mmc_prep_get_configuration },
    { "GET EVENT STATUS NOTIFICATION", OP_GESN, SCSI_NO_SA, 10, OPF_NO_UA | OPF_DATA_IN, 10,
      .usage = { OP_GESN, 0x01, 0, 0, 0xff, 0, 0, 0xff, 0xff, 0 },
      .prepare = mmc_prep_gesn },
    { "READ DISC INFORMATION", OP_READ_DISC_INFO, SCSI_NO_SA, 10, OPF_MEDIUM | OPF_DATA_IN, 10,
      .usage = { OP_READ_DISC_INFO, 0x07, 0, 0, 0, 0, 0, 0xff, 0xff, 0 },
      .cont = { 0, 0x03 },
      .prepare = mmc_prep_disc_info },
    { "READ TRACK INFORMATION", OP_READ_TRACK_INFO, SCSI_NO_SA, 10, OPF_MEDIUM | OPF_DATA_IN,
      10,
      .usage = { OP_READ_TRACK_INFO, 0x03, LBA4, 0, 0xff, 0xff, 0 },
      .cont = { 0, 0x01 },
      .prepare = mmc_prep_track_info },
    { "MODE SENSE(10)", OP_MODE_SENSE10, SCSI_NO_SA, 10, OPF_DATA_IN, 10,
      .usage = { OP_MODE_SENSE10, 0x08, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, 0 },
      .prepare = mmc_prep_mode_sense },
    { "REPORT LUNS", OP_REPORT_LUNS, SCSI_NO_SA, 12, OPF_NO_UA | OPF_DATA_IN, 10,
      .usage = { OP_REPORT_LUNS, 0, 0xff, 0, 0, 0, LBA4, 0, 0 },
      .prepare = spc_prep_report_luns },
    { "REPORT SUPPORTED OPERATION CODES", OP_MAINTENANCE_IN, SA_REPORT_SUPPORTED_OPCODES, 12,
      OPF_DATA_IN, 10,
      .usage = { OP_MAINTENANCE_IN, SA_REPORT_SUPPORTED_OPCODES, 0x87, 0xff, 0xff, 0xff,
                 LBA4, 0, 0 },
      .prepare = spc_prep_rsoc },
    { "READ(12)", OP_READ12, SCSI_NO_SA, 12, OPF_MEDIUM | OPF_DATA_IN, 30,
      .usage = { OP_READ12, FUA, LBA4, LBA4, 0, 0 },
      .ignore = { 0, DPO, 0, 0, 0, 0, 0, 0, 0, 0, 0x80 },  /* STREAMING: a hint */
      .prepare = mmc_prep_read, .execute = sbc_exec_read },
    { "GET PERFORMANCE", OP_GET_PERFORMANCE, SCSI_NO_SA, 12, OPF_MEDIUM | OPF_DATA_IN, 10,
      .usage = { OP_GET_PERFORMANCE, 0x1f, LBA4, 0, 0, 0xff, 0xff, 0xff, 0 },
      .cont = { 0, 0x0f },
      .prepare = mmc_prep_get_performance },
    { "SET CD SPEED", OP_SET_CD_SPEED, SCSI_NO_SA, 12, 0, 10,
      .usage = { OP_SET_CD_SPEED, 0x03, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0 },
      .cont = { 0, 0x01 },
      .prepare = mmc_prep_set_cd_speed },
    { "MECHANISM STATUS", OP_MECHANISM_STATUS, SCSI_NO_SA, 12, OPF_DATA_IN, 10,
      .usage = { OP_MECHANISM_STATUS, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0 },
      .prepare = mmc_prep_mechanism_status },
    { "READ CD", OP_READ_CD, SCSI_NO_SA, 12, OPF_MEDIUM | OPF_DATA_IN, 30,
      .usage = { OP_READ_CD, 0x1e, LBA4, 0xff, 0xff, 0xff, 0xff, 0x07, 0 },
      .cont = { 0, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0x03 },
      .prepare = mmc_prep_read_cd, .execute = mmc_exec_read_cd },
};

const unsigned mmc_n_ops = sizeof(mmc_ops) / sizeof(mmc_ops[0]);
