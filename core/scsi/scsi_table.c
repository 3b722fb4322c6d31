/* The command table: every command a disk LUN serves, in opcode and
 * service action order (REPORT SUPPORTED OPERATION CODES lists it as is).
 *
 * usage[] is the CDB usage data (SPC-4 REPORT SUPPORTED OPERATION CODES):
 * byte 0 the opcode, the service action in its field, then the bits the
 * device server evaluates. ignore[] are bits accepted and not acted on:
 * DPO (no cache to bypass) and GROUP NUMBER (no grouping function). Every
 * other bit, reserved, obsolete or for a feature not offered (protection
 * information, ANCHOR, duration limits, power conditions), must be zero.
 *
 * OPF_DATA_IN / OPF_DATA_OUT give the direction of a command's data for
 * transports that cannot tell it (SCSI_DIR_BY_CDB): VERIFY's is out (the
 * data BYTCHK compares), WRITE SAME's out even with NDOB (then there is
 * none). */
#include "scsi/scsi_int.h"

#define LBA4 0xff, 0xff, 0xff, 0xff
#define LBA8 LBA4, LBA4
#define DPO 0x10
#define GROUP 0x3f
#define PROTECT_FIELD 0x60          /* RD/WR/VRPROTECT: bits 6, 5 continue bit 7 */

const struct scsi_op scsi_ops[] = {
    { "TEST UNIT READY", OP_TEST_UNIT_READY, SCSI_NO_SA, 6, OPF_MEDIUM, 10,
      .usage = { OP_TEST_UNIT_READY, 0, 0, 0, 0, 0 },
      .prepare = spc_prep_tur },
    { "REQUEST SENSE", OP_REQUEST_SENSE, SCSI_NO_SA, 6, OPF_NO_UA | OPF_DATA_IN, 10,
      .usage = { OP_REQUEST_SENSE, 0x01, 0, 0, 0xff, 0 },
      .prepare = spc_prep_request_sense },
    { "READ(6)", OP_READ6, SCSI_NO_SA, 6, OPF_MEDIUM | OPF_DATA_IN, 30,
      .usage = { OP_READ6, 0x1f, 0xff, 0xff, 0xff, 0 },
      .prepare = sbc_prep_rw, .execute = sbc_exec_read },
    { "WRITE(6)", OP_WRITE6, SCSI_NO_SA, 6, OPF_MEDIUM | OPF_DATA_OUT, 30,
      .usage = { OP_WRITE6, 0x1f, 0xff, 0xff, 0xff, 0 },
      .prepare = sbc_prep_rw, .execute = sbc_exec_write },
    { "INQUIRY", OP_INQUIRY, SCSI_NO_SA, 6, OPF_NO_UA | OPF_DATA_IN, 10,
      .usage = { OP_INQUIRY, 0x01, 0xff, 0xff, 0xff, 0 },
      .prepare = spc_prep_inquiry },
    { "MODE SELECT(6)", OP_MODE_SELECT6, SCSI_NO_SA, 6, OPF_DATA_OUT, 10,
      .usage = { OP_MODE_SELECT6, 0x10, 0, 0, 0xff, 0 },
      .prepare = spc_prep_mode_select, .execute = spc_exec_mode_select },
    { "MODE SENSE(6)", OP_MODE_SENSE6, SCSI_NO_SA, 6, OPF_DATA_IN, 10,
      .usage = { OP_MODE_SENSE6, 0x08, 0xff, 0xff, 0xff, 0 },
      .prepare = spc_prep_mode_sense },
    { "START STOP UNIT", OP_START_STOP_UNIT, SCSI_NO_SA, 6, 0, 60,
      .usage = { OP_START_STOP_UNIT, 0x01, 0, 0, 0x05, 0 },
      .cont = { 0, 0, 0, 0x07, 0x70 },   /* POWER CONDITION MODIFIER, POWER CONDITION */
      .prepare = sbc_prep_start_stop, .execute = sbc_exec_start_stop },
    { "PREVENT ALLOW MEDIUM REMOVAL", OP_PREVENT_ALLOW, SCSI_NO_SA, 6, 0, 10,
      .usage = { OP_PREVENT_ALLOW, 0, 0, 0, 0x01, 0 },
      .prepare = sbc_prep_prevent_allow },
    { "READ CAPACITY(10)", OP_READ_CAPACITY10, SCSI_NO_SA, 10, OPF_DATA_IN, 10,
      .usage = { OP_READ_CAPACITY10, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
      .prepare = sbc_prep_read_capacity10 },
    { "READ(10)", OP_READ10, SCSI_NO_SA, 10, OPF_MEDIUM | OPF_DATA_IN, 30,
      .usage = { OP_READ10, 0x08, LBA4, 0, 0xff, 0xff, 0 },
      .ignore = { 0, DPO, 0, 0, 0, 0, GROUP },
      .cont = { 0, PROTECT_FIELD },
      .prepare = sbc_prep_rw, .execute = sbc_exec_read },
    { "WRITE(10)", OP_WRITE10, SCSI_NO_SA, 10, OPF_MEDIUM | OPF_DATA_OUT, 30,
      .usage = { OP_WRITE10, 0x08, LBA4, 0, 0xff, 0xff, 0 },
      .ignore = { 0, DPO, 0, 0, 0, 0, GROUP },
      .cont = { 0, PROTECT_FIELD },
      .prepare = sbc_prep_rw, .execute = sbc_exec_write },
    { "WRITE AND VERIFY(10)", OP_WRITE_VERIFY10, SCSI_NO_SA, 10, OPF_MEDIUM | OPF_DATA_OUT, 60,
      .usage = { OP_WRITE_VERIFY10, 0x02, LBA4, 0, 0xff, 0xff, 0 },
      .ignore = { 0, DPO, 0, 0, 0, 0, GROUP },
      .cont = { 0, PROTECT_FIELD | 0x02 },
      .prepare = sbc_prep_write_verify, .execute = sbc_exec_write_verify },
    { "VERIFY(10)", OP_VERIFY10, SCSI_NO_SA, 10, OPF_MEDIUM | OPF_DATA_OUT, 60,
      .usage = { OP_VERIFY10, 0x06, LBA4, 0, 0xff, 0xff, 0 },
      .ignore = { 0, DPO, 0, 0, 0, 0, GROUP },
      .cont = { 0, PROTECT_FIELD | 0x02 },
      .prepare = sbc_prep_verify, .execute = sbc_exec_verify },
    { "PRE-FETCH(10)", OP_PRE_FETCH10, SCSI_NO_SA, 10, OPF_MEDIUM, 60,
      .usage = { OP_PRE_FETCH10, 0x02, LBA4, 0, 0xff, 0xff, 0 },
      .ignore = { 0, 0, 0, 0, 0, 0, GROUP },
      .prepare = sbc_prep_prefetch, .execute = sbc_exec_prefetch },
    { "SYNCHRONIZE CACHE(10)", OP_SYNC_CACHE10, SCSI_NO_SA, 10, OPF_MEDIUM, 60,
      .usage = { OP_SYNC_CACHE10, 0x02, LBA4, 0, 0xff, 0xff, 0 },
      .ignore = { 0, 0, 0, 0, 0, 0, GROUP },
      .prepare = sbc_prep_sync_cache, .execute = sbc_exec_sync_cache },
    { "READ DEFECT DATA(10)", OP_READ_DEFECT_DATA10, SCSI_NO_SA, 10, OPF_DATA_IN, 10,
      .usage = { OP_READ_DEFECT_DATA10, 0, 0x1f, 0, 0, 0, 0, 0xff, 0xff, 0 },
      .prepare = sbc_prep_read_defect_data },
    { "WRITE SAME(10)", OP_WRITE_SAME10, SCSI_NO_SA, 10, OPF_MEDIUM | OPF_DATA_OUT, 60,
      .usage = { OP_WRITE_SAME10, 0x08, LBA4, 0, 0xff, 0xff, 0 },
      .ignore = { 0, 0, 0, 0, 0, 0, GROUP },
      .cont = { 0, PROTECT_FIELD },
      .prepare = sbc_prep_write_same, .execute = sbc_exec_write_same },
    { "UNMAP", OP_UNMAP, SCSI_NO_SA, 10, OPF_MEDIUM | OPF_NEEDS_DISCARD | OPF_DATA_OUT, 60,
      .usage = { OP_UNMAP, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0 },
      .ignore = { 0, 0, 0, 0, 0, 0, GROUP },
      .prepare = sbc_prep_unmap, .execute = sbc_exec_unmap },
    { "SANITIZE OVERWRITE", OP_SANITIZE, 0x01, 10, OPF_MEDIUM | OPF_DATA_OUT, 600,
      .usage = { OP_SANITIZE, 0xa0 | 0x01, 0, 0, 0, 0, 0, 0xff, 0xff, 0 },
      .prepare = sbc_prep_sanitize, .execute = sbc_exec_sanitize },
    { "SANITIZE BLOCK ERASE", OP_SANITIZE, 0x02, 10, OPF_MEDIUM | OPF_DATA_OUT, 600,
      .usage = { OP_SANITIZE, 0xa0 | 0x02, 0, 0, 0, 0, 0, 0xff, 0xff, 0 },
      .prepare = sbc_prep_sanitize, .execute = sbc_exec_sanitize },
    { "SANITIZE CRYPTOGRAPHIC ERASE", OP_SANITIZE, 0x03, 10, OPF_MEDIUM | OPF_DATA_OUT, 600,
      .usage = { OP_SANITIZE, 0xa0 | 0x03, 0, 0, 0, 0, 0, 0xff, 0xff, 0 },
      .prepare = sbc_prep_sanitize, .execute = sbc_exec_sanitize },
    { "SANITIZE EXIT FAILURE MODE", OP_SANITIZE, 0x1f, 10, OPF_MEDIUM | OPF_DATA_OUT, 600,
      .usage = { OP_SANITIZE, 0xa0 | 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, 0 },
      .prepare = sbc_prep_sanitize, .execute = sbc_exec_sanitize },
    { "MODE SELECT(10)", OP_MODE_SELECT10, SCSI_NO_SA, 10, OPF_DATA_OUT, 10,
      .usage = { OP_MODE_SELECT10, 0x10, 0, 0, 0, 0, 0, 0xff, 0xff, 0 },
      .prepare = spc_prep_mode_select, .execute = spc_exec_mode_select },
    { "MODE SENSE(10)", OP_MODE_SENSE10, SCSI_NO_SA, 10, OPF_DATA_IN, 10,
      .usage = { OP_MODE_SENSE10, 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, 0 },
      .prepare = spc_prep_mode_sense },
    { "EXTENDED COPY(LID1)", OP_EXTENDED_COPY, 0x00, 16, OPF_MEDIUM | OPF_DATA_OUT, 600,
      .usage = { OP_EXTENDED_COPY, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, LBA4, 0, 0 },
      .prepare = sbc_prep_xcopy, .execute = sbc_exec_xcopy },
    { "RECEIVE COPY STATUS(LID1)", OP_RECEIVE_COPY_RESULTS, 0x00, 16, OPF_DATA_IN, 10,
      .usage = { OP_RECEIVE_COPY_RESULTS, 0x00, 0xff, 0, 0, 0, 0, 0, 0, 0, LBA4, 0, 0 },
      .prepare = sbc_prep_receive_copy_results },
    { "RECEIVE COPY OPERATING PARAMETERS", OP_RECEIVE_COPY_RESULTS, 0x03, 16, OPF_DATA_IN, 10,
      .usage = { OP_RECEIVE_COPY_RESULTS, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, LBA4, 0, 0 },
      .prepare = sbc_prep_receive_copy_results },
    { "READ(16)", OP_READ16, SCSI_NO_SA, 16, OPF_MEDIUM | OPF_DATA_IN, 30,
      .usage = { OP_READ16, 0x08, LBA8, LBA4, 0, 0 },
      .ignore = { 0, DPO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, GROUP },
      .cont = { 0, PROTECT_FIELD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40 },
      .prepare = sbc_prep_rw, .execute = sbc_exec_read },
    { "COMPARE AND WRITE", OP_COMPARE_AND_WRITE, SCSI_NO_SA, 16, OPF_MEDIUM | OPF_DATA_OUT, 30,
      .usage = { OP_COMPARE_AND_WRITE, 0x08, LBA8, 0, 0, 0, 0xff, 0, 0 },
      .ignore = { 0, DPO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, GROUP },
      .cont = { 0, PROTECT_FIELD },
      .prepare = sbc_prep_caw, .execute = sbc_exec_caw },
    { "WRITE(16)", OP_WRITE16, SCSI_NO_SA, 16, OPF_MEDIUM | OPF_DATA_OUT, 30,
      .usage = { OP_WRITE16, 0x08, LBA8, LBA4, 0, 0 },
      .ignore = { 0, DPO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, GROUP },
      .cont = { 0, PROTECT_FIELD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40 },
      .prepare = sbc_prep_rw, .execute = sbc_exec_write },
    { "ORWRITE(16)", OP_ORWRITE16, SCSI_NO_SA, 16, OPF_MEDIUM | OPF_DATA_OUT, 30,
      .usage = { OP_ORWRITE16, 0x08, LBA8, LBA4, 0, 0 },
      .ignore = { 0, DPO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, GROUP },
      .cont = { 0, PROTECT_FIELD },
      .prepare = sbc_prep_orwrite, .execute = sbc_exec_orwrite },
    { "WRITE AND VERIFY(16)", OP_WRITE_VERIFY16, SCSI_NO_SA, 16, OPF_MEDIUM | OPF_DATA_OUT, 60,
      .usage = { OP_WRITE_VERIFY16, 0x02, LBA8, LBA4, 0, 0 },
      .ignore = { 0, DPO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, GROUP },
      .cont = { 0, PROTECT_FIELD | 0x02 },
      .prepare = sbc_prep_write_verify, .execute = sbc_exec_write_verify },
    { "VERIFY(16)", OP_VERIFY16, SCSI_NO_SA, 16, OPF_MEDIUM | OPF_DATA_OUT, 60,
      .usage = { OP_VERIFY16, 0x06, LBA8, LBA4, 0, 0 },
      .ignore = { 0, DPO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, GROUP },
      .cont = { 0, PROTECT_FIELD | 0x02 },
      .prepare = sbc_prep_verify, .execute = sbc_exec_verify },
    { "PRE-FETCH(16)", OP_PRE_FETCH16, SCSI_NO_SA, 16, OPF_MEDIUM, 60,
      .usage = { OP_PRE_FETCH16, 0x02, LBA8, LBA4, 0, 0 },
      .ignore = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, GROUP },
      .prepare = sbc_prep_prefetch, .execute = sbc_exec_prefetch },
    { "SYNCHRONIZE CACHE(16)", OP_SYNC_CACHE16, SCSI_NO_SA, 16, OPF_MEDIUM, 60,
      .usage = { OP_SYNC_CACHE16, 0x02, LBA8, LBA4, 0, 0 },
      .ignore = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, GROUP },
      .prepare = sbc_prep_sync_cache, .execute = sbc_exec_sync_cache },
    { "WRITE SAME(16)", OP_WRITE_SAME16, SCSI_NO_SA, 16, OPF_MEDIUM | OPF_DATA_OUT, 60,
      .usage = { OP_WRITE_SAME16, 0x09, LBA8, LBA4, 0, 0 },
      .ignore = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, GROUP },
      .cont = { 0, PROTECT_FIELD },
      .prepare = sbc_prep_write_same, .execute = sbc_exec_write_same },
    { "WRITE ATOMIC(16)", OP_WRITE_ATOMIC16, SCSI_NO_SA, 16, OPF_MEDIUM | OPF_DATA_OUT, 30,
      .usage = { OP_WRITE_ATOMIC16, 0x08, LBA8, 0xff, 0xff, 0xff, 0xff, 0, 0 },
      .ignore = { 0, DPO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, GROUP },
      .cont = { 0, PROTECT_FIELD },
      .prepare = sbc_prep_write_atomic, .execute = sbc_exec_write_atomic },
    { "READ CAPACITY(16)", OP_SERVICE_ACTION_IN16, SA_READ_CAPACITY16, 16, OPF_DATA_IN, 10,
      .usage = { OP_SERVICE_ACTION_IN16, SA_READ_CAPACITY16, 0, 0, 0, 0, 0, 0, 0, 0,
                 LBA4, 0, 0 },
      .prepare = sbc_prep_read_capacity16 },
    { "GET LBA STATUS", OP_SERVICE_ACTION_IN16, SA_GET_LBA_STATUS, 16,
      OPF_MEDIUM | OPF_DATA_IN, 30,
      .usage = { OP_SERVICE_ACTION_IN16, SA_GET_LBA_STATUS, LBA8, LBA4, 0, 0 },
      .prepare = sbc_prep_get_lba_status, .execute = sbc_exec_get_lba_status },
    { "REPORT LUNS", OP_REPORT_LUNS, SCSI_NO_SA, 12, OPF_NO_UA | OPF_DATA_IN, 10,
      .usage = { OP_REPORT_LUNS, 0, 0xff, 0, 0, 0, LBA4, 0, 0 },
      .prepare = spc_prep_report_luns },
    { "REPORT SUPPORTED OPERATION CODES", OP_MAINTENANCE_IN, SA_REPORT_SUPPORTED_OPCODES, 12,
      OPF_DATA_IN, 10,
      .usage = { OP_MAINTENANCE_IN, SA_REPORT_SUPPORTED_OPCODES, 0x87, 0xff, 0xff, 0xff,
                 LBA4, 0, 0 },
      .prepare = spc_prep_rsoc },
    { "REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS", OP_MAINTENANCE_IN, SA_REPORT_SUPPORTED_TMF,
      12, OPF_DATA_IN, 10,
      .usage = { OP_MAINTENANCE_IN, SA_REPORT_SUPPORTED_TMF, 0x80, 0, 0, 0, LBA4, 0, 0 },
      .prepare = spc_prep_rtmf },
    { "READ(12)", OP_READ12, SCSI_NO_SA, 12, OPF_MEDIUM | OPF_DATA_IN, 30,
      .usage = { OP_READ12, 0x08, LBA4, LBA4, 0, 0 },
      .ignore = { 0, DPO, 0, 0, 0, 0, 0, 0, 0, 0, GROUP },
      .cont = { 0, PROTECT_FIELD },
      .prepare = sbc_prep_rw, .execute = sbc_exec_read },
    { "WRITE(12)", OP_WRITE12, SCSI_NO_SA, 12, OPF_MEDIUM | OPF_DATA_OUT, 30,
      .usage = { OP_WRITE12, 0x08, LBA4, LBA4, 0, 0 },
      .ignore = { 0, DPO, 0, 0, 0, 0, 0, 0, 0, 0, GROUP },
      .cont = { 0, PROTECT_FIELD },
      .prepare = sbc_prep_rw, .execute = sbc_exec_write },
    { "WRITE AND VERIFY(12)", OP_WRITE_VERIFY12, SCSI_NO_SA, 12, OPF_MEDIUM | OPF_DATA_OUT, 60,
      .usage = { OP_WRITE_VERIFY12, 0x02, LBA4, LBA4, 0, 0 },
      .ignore = { 0, DPO, 0, 0, 0, 0, 0, 0, 0, 0, GROUP },
      .cont = { 0, PROTECT_FIELD | 0x02 },
      .prepare = sbc_prep_write_verify, .execute = sbc_exec_write_verify },
    { "VERIFY(12)", OP_VERIFY12, SCSI_NO_SA, 12, OPF_MEDIUM | OPF_DATA_OUT, 60,
      .usage = { OP_VERIFY12, 0x06, LBA4, LBA4, 0, 0 },
      .ignore = { 0, DPO, 0, 0, 0, 0, 0, 0, 0, 0, GROUP },
      .cont = { 0, PROTECT_FIELD | 0x02 },
      .prepare = sbc_prep_verify, .execute = sbc_exec_verify },
    { "READ DEFECT DATA(12)", OP_READ_DEFECT_DATA12, SCSI_NO_SA, 12, OPF_DATA_IN, 10,
      .usage = { OP_READ_DEFECT_DATA12, 0x1f, LBA4, LBA4, 0, 0 },
      .prepare = sbc_prep_read_defect_data },
};

const unsigned scsi_n_ops = sizeof(scsi_ops) / sizeof(scsi_ops[0]);

bool scsi_opcode_has_sa(uint8_t opcode)
{
    return opcode == OP_SERVICE_ACTION_IN16 || opcode == OP_MAINTENANCE_IN ||
           opcode == OP_SANITIZE || opcode == OP_EXTENDED_COPY ||
           opcode == OP_RECEIVE_COPY_RESULTS;
}

uint16_t scsi_cdb_sa(const uint8_t *cdb)
{
    return scsi_opcode_has_sa(cdb[0]) ? (uint16_t)(cdb[1] & 0x1f) : SCSI_NO_SA;
}

/* The entry for opcode (and sa, for opcodes that have service actions). */
static const struct scsi_op *find_in(const struct scsi_op *ops, unsigned n, uint8_t opcode,
                                     uint16_t sa)
{
    bool has_sa = scsi_opcode_has_sa(opcode);
    for (unsigned i = 0; i < n; i++)
        if (ops[i].opcode == opcode && (!has_sa || ops[i].sa == sa))
            return &ops[i];
    return NULL;
}

const struct scsi_op *scsi_op_find(uint8_t opcode, uint16_t sa)
{
    return find_in(scsi_ops, scsi_n_ops, opcode, sa);
}

const struct scsi_op *scsi_lun_op_find(const struct scsi_lun *lun, uint8_t opcode, uint16_t sa)
{
    return find_in(lun->ops, lun->n_ops, opcode, sa);
}

const struct scsi_op *scsi_cdb_op(const uint8_t *cdb, uint32_t cdb_len)
{
    if (!cdb || cdb_len == 0)
        return NULL;
    if (!scsi_opcode_has_sa(cdb[0]))
        return scsi_op_find(cdb[0], SCSI_NO_SA);
    return cdb_len >= 2 ? scsi_op_find(cdb[0], scsi_cdb_sa(cdb)) : NULL;
}

void scsi_cmd_resolve_dir(struct scsi_cmd *cmd, const struct scsi_op *op)
{
    if (cmd->dir != SCSI_DIR_BY_CDB)
        return;
    unsigned f = op ? op->flags : 0;
    cmd->dir = (f & OPF_DATA_IN) ? SCSI_DIR_FROM_DEV : (f & OPF_DATA_OUT) ? SCSI_DIR_TO_DEV
                                                                           : SCSI_DIR_NONE;
}

unsigned scsi_cdb_length(const uint8_t *cdb, unsigned avail)
{
    /* By group code, the opcode's top three bits (SPC-4); the reserved
     * group 3 and the vendor-specific groups 6 and 7 as Linux sizes them
     * (it is the kernel that put the CDB on a TCMU ring). */
    static const uint8_t by_group[8] = { 6, 10, 10, 12, 16, 12, 10, 10 };
    if (avail < 1)
        return 0;
    if (cdb[0] == 0x7f)             /* variable length: 8 + ADDITIONAL CDB LENGTH */
        return avail < 8 ? 0 : 8u + cdb[7];
    return by_group[cdb[0] >> 5];
}
