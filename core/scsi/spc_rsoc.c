/* REPORT SUPPORTED OPERATION CODES: every command this LUN serves (its
 * policy applied), or one command with its CDB usage data; with RCTD the
 * command timeouts descriptor. Answered in prepare from the table. */
#include <string.h>

#include "scsi/scsi_int.h"

#define TIMEOUTS_LEN 12

static void put_timeouts(uint8_t *p, const struct scsi_op *op)
{
    memset(p, 0, TIMEOUTS_LEN);
    put_be16(p, TIMEOUTS_LEN - 2);
    put_be32(p + 4, 0);             /* nominal processing time: not specified */
    put_be32(p + 8, op->timeout);   /* recommended command timeout, seconds */
}

static void all_commands(struct scsi_lun *lun, struct scsi_cmd *cmd, bool rctd, size_t alloc)
{
    uint8_t b[4 + 96 * (8 + TIMEOUTS_LEN)];
    size_t off = 4;
    for (unsigned i = 0; i < lun->n_ops && off + 8 + TIMEOUTS_LEN <= sizeof(b); i++) {
        const struct scsi_op *op = &lun->ops[i];
        if (!scsi_lun_serves(lun, op))
            continue;
        uint8_t *d = b + off;
        memset(d, 0, 8);
        d[0] = op->opcode;
        if (op->sa != SCSI_NO_SA) {
            put_be16(d + 2, op->sa);
            d[5] |= 0x01;           /* SERVACTV */
        }
        if (rctd)
            d[5] |= 0x02;           /* CTDP */
        put_be16(d + 6, op->cdb_len);
        off += 8;
        if (rctd) {
            put_timeouts(b + off, op);
            off += TIMEOUTS_LEN;
        }
    }
    put_be32(b, (uint32_t)(off - 4));
    scsi_reply(cmd, b, off, alloc);
}

static void one_command(struct scsi_lun *lun, struct scsi_cmd *cmd, const struct scsi_op *op,
                        bool rctd, size_t alloc)
{
    uint8_t b[4 + SCSI_CDB_MAX + TIMEOUTS_LEN];
    memset(b, 0, sizeof(b));
    if (!op || !scsi_lun_serves(lun, op)) {
        b[1] = 0x01;                /* SUPPORT 001b: not supported */
        scsi_reply(cmd, b, 4, alloc);
        return;
    }
    b[1] = 0x03;                    /* SUPPORT 011b: supported as the standard says */
    if (rctd)
        b[1] |= 0x80;               /* CTDP */
    put_be16(b + 2, op->cdb_len);
    /* The bits a CDB may set: those acted on and those accepted and
     * ignored (DPO, GROUP NUMBER), which a client must not think refused. */
    for (unsigned i = 0; i < op->cdb_len; i++)
        b[4 + i] = op->usage[i] | op->ignore[i];
    size_t n = 4 + op->cdb_len;
    if (rctd) {
        put_timeouts(b + n, op);
        n += TIMEOUTS_LEN;
    }
    scsi_reply(cmd, b, n, alloc);
}

SCSI_HANDLER(spc_prep_rsoc)
{
    const uint8_t *cdb = cmd->cdb;
    bool rctd = cdb[2] & 0x80;
    unsigned options = cdb[2] & 0x07;
    uint8_t opcode = cdb[3];
    uint16_t sa = get_be16(cdb + 4);
    size_t alloc = get_be32(cdb + 6);
    bool has_sa = scsi_opcode_has_sa(opcode);

    switch (options) {
    case 0:
        all_commands(lun, cmd, rctd, alloc);
        return;
    case 1:                         /* by opcode: only for opcodes without service actions */
        if (has_sa) {
            scsi_fail_cdb(lun, cmd, 2, 2);
            return;
        }
        one_command(lun, cmd, scsi_lun_op_find(lun, opcode, SCSI_NO_SA), rctd, alloc);
        return;
    case 2:                         /* by opcode and service action */
        if (!has_sa) {
            scsi_fail_cdb(lun, cmd, 2, 2);
            return;
        }
        one_command(lun, cmd, sa > 0x1f ? NULL : scsi_lun_op_find(lun, opcode, sa), rctd, alloc);
        return;
    case 3:                         /* service action only where the opcode has them */
        one_command(lun, cmd,
                    has_sa ? (sa > 0x1f ? NULL : scsi_lun_op_find(lun, opcode, sa))
                           : scsi_lun_op_find(lun, opcode, SCSI_NO_SA),
                    rctd, alloc);
        return;
    default:
        scsi_fail_cdb(lun, cmd, 2, 2);
        return;
    }
}
