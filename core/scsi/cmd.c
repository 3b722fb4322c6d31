/* Command entry points: find the table entry, apply the LUN's policy,
 * report unit attentions, refuse CDB bits the command does not use, then
 * hand over to the command's prepare; execute runs what prepare left.
 *
 * Prepare answers everything that needs no I/O and changes no state
 * (INQUIRY, READ CAPACITY, MODE SENSE, REPORT LUNS, RSOC, ...) on the
 * spot: access stays SCSI_ACCESS_DONE. Commands that read or write the
 * image or change LUN state (MODE SELECT, START STOP UNIT) are left to
 * execute: their prepare sets cmd->access as its last step, after every
 * check. Nothing writes cmd->access after prepare: the dispatcher reads
 * it, under its lock, while a worker executes the command. A LUN with
 * metadata write-through writes the image's metadata back after the
 * commands that changed the image, before they complete. */
#include <string.h>

#include "scsi/scsi_int.h"
#include "util/log.h"

bool scsi_policy_allows(const struct scsi_lun_config *cfg, uint8_t opcode, uint16_t sa)
{
    bool listed = false;
    unsigned n = cfg->n_policy;
    if (n > sizeof(cfg->policy) / sizeof(cfg->policy[0]))
        n = sizeof(cfg->policy) / sizeof(cfg->policy[0]);
    for (unsigned i = 0; i < n && !listed; i++) {
        uint32_t e = cfg->policy[i];
        if ((e >> 16) == opcode && ((e & 0xffff) == 0xffff || (e & 0xffff) == sa))
            listed = true;
    }
    return cfg->policy_allow ? listed : !listed;
}

bool scsi_lun_serves(const struct scsi_lun *lun, const struct scsi_op *op)
{
    if ((op->flags & OPF_NEEDS_DISCARD) && !lun->lbpme)
        return false;
    return scsi_policy_allows(&lun->cfg, op->opcode, op->sa);
}

bool scsi_check_range(struct scsi_lun *lun, struct scsi_cmd *cmd, uint64_t lba, uint64_t n)
{
    uint64_t blocks = __atomic_load_n(&lun->blocks, __ATOMIC_ACQUIRE);  /* lun-resize */
    if (lba >= blocks || n > blocks - lba) {
        scsi_fail_key(lun, cmd, SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
        return false;
    }
    return true;
}

/* Bits outside usage and ignore: INVALID FIELD IN CDB, pointing at the
 * left-most bit of the first offending field. */
static bool check_cdb_bits(struct scsi_lun *lun, struct scsi_cmd *cmd, const struct scsi_op *op)
{
    for (unsigned i = 1; i < op->cdb_len; i++) {
        uint8_t ok = op->usage[i] | op->ignore[i];
        if (i == 1 && op->sa != SCSI_NO_SA)
            ok |= 0x1f;             /* the SERVICE ACTION field */
        uint8_t bad = cmd->cdb[i] & (uint8_t)~ok;
        if (!bad)
            continue;
        int bit = 7;
        while (!(bad & (1u << bit)))
            bit--;
        while (bit < 7 && (op->cont[i] & (1u << bit)))
            bit++;
        scsi_fail_cdb(lun, cmd, i, bit);
        return false;
    }
    return true;
}

/* No table entry for this CDB: unknown opcode, or a known opcode with an
 * unknown service action. */
static void refuse(struct scsi_lun *lun, struct scsi_cmd *cmd, uint8_t opcode)
{
    if (scsi_opcode_has_sa(opcode)) {
        /* Some service action of this opcode is served: the field is bad. */
        for (unsigned i = 0; i < lun->n_ops; i++) {
            if (lun->ops[i].opcode == opcode && scsi_lun_serves(lun, &lun->ops[i])) {
                scsi_fail_cdb(lun, cmd, 1, 4);
                return;
            }
        }
    }
    scsi_fail_key(lun, cmd, SK_ILLEGAL_REQUEST, ASC_INVALID_COMMAND_OPCODE);
}

void scsi_cmd_prepare(struct scsi_lun *lun, struct scsi_cmd *cmd)
{
    cmd->status = SCSI_STATUS_GOOD;
    cmd->sense_len = 0;
    cmd->xfer = 0;
    cmd->resid = 0;
    cmd->overflow = false;
    cmd->access = SCSI_ACCESS_DONE;  /* until a prepare handler defers the command */
    cmd->lba = 0;
    cmd->nblocks = 0;
    cmd->op = NULL;

    const struct scsi_op *op = NULL;
    if (cmd->cdb && cmd->cdb_len && (!scsi_opcode_has_sa(cmd->cdb[0]) || cmd->cdb_len >= 2))
        op = scsi_lun_op_find(lun, cmd->cdb[0], scsi_cdb_sa(cmd->cdb));
    /* The direction first: every answer below, and the transport after
     * it, reads cmd->dir (what the command is, whatever the LUN serves). */
    scsi_cmd_resolve_dir(cmd, op);
    if (!cmd->cdb || cmd->cdb_len == 0) {
        scsi_fail_key(lun, cmd, SK_ILLEGAL_REQUEST, ASC_INVALID_COMMAND_OPCODE);
        return;
    }
    uint8_t opcode = cmd->cdb[0];
    /* A known command the LUN does not serve (policy, discard off) is an
     * unknown opcode to the initiator, service action or not. */
    bool refused = op && !scsi_lun_serves(lun, op);
    if (refused)
        op = NULL;

    /* Every command but INQUIRY, REPORT LUNS and REQUEST SENSE reports a
     * pending unit attention (and consumes it) before anything else. */
    if (!op || !(op->flags & OPF_NO_UA)) {
        struct scsi_sense s;
        if (scsi_lun_take_ua(lun, &s)) {
            scsi_fail(lun, cmd, &s);
            return;
        }
    }
    if (!op) {
        if (refused)
            scsi_fail_key(lun, cmd, SK_ILLEGAL_REQUEST, ASC_INVALID_COMMAND_OPCODE);
        else
            refuse(lun, cmd, opcode);
        return;
    }
    if (cmd->cdb_len < op->cdb_len) {
        /* The transport handed fewer bytes than the opcode's CDB has. */
        scsi_fail_key(lun, cmd, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        return;
    }
    if (!check_cdb_bits(lun, cmd, op))
        return;
    if (!(op->flags & OPF_NO_UA) && __atomic_load_n(&lun->sanitizing, __ATOMIC_ACQUIRE)) {
        scsi_fail_key(lun, cmd, SK_NOT_READY, ASC_LUN_NOT_READY_SANITIZE);
        return;
    }
    if (op->flags & OPF_MEDIUM) {
        if (lun->removable) {
            /* Held from here to the end of execute (medium.c). */
            struct scsi_sense s;
            if (!scsi_medium_get(lun, &s)) {
                scsi_fail(lun, cmd, &s);
                return;
            }
        } else if (__atomic_load_n(&lun->stopped, __ATOMIC_ACQUIRE)) {
            scsi_fail_key(lun, cmd, SK_NOT_READY, ASC_LUN_NOT_READY_INIT_REQUIRED);
            return;
        }
    }
    cmd->op = op;
    op->prepare(lun, cmd);
    if (lun->removable && (op->flags & OPF_MEDIUM) && cmd->access == SCSI_ACCESS_DONE)
        scsi_medium_put(lun);       /* answered: nothing left to read */
}

/* Metadata write-through (scsi_lun_config.meta_write_through): the image
 * metadata a command that changed the image left in the process goes to
 * the file before the command completes. Here, on the worker that ran the
 * command, never in the transport's done(). */
static void meta_write_through(struct scsi_lun *lun, struct scsi_cmd *cmd)
{
    if (!blk_meta_pending(lun->bs))
        return;
    struct scuse_err err;
    err_clear(&err);
    int r = blk_flush(lun->bs, &err);
    if (r < 0) {
        /* scsi_fail_errno logs the reason with the command */
        err_prefix(&err, "writing back the image's metadata after the command: ");
        scsi_fail_errno(lun, cmd, r, true, cmd->lba, &err);
    }
}

void scsi_cmd_execute(struct scsi_lun *lun, struct scsi_cmd *cmd)
{
    if (cmd->access == SCSI_ACCESS_DONE)
        return;
    const struct scsi_op *op = cmd->op;
    if (!op || !op->execute) {
        /* Not prepared: a caller bug, answered rather than crashed on. */
        scsi_fail_key(lun, cmd, SK_HARDWARE_ERROR, ASC_INTERNAL_TARGET_FAILURE);
        return;
    }
    /* Checked again here: a command prepared before a SANITIZE began waits
     * behind it and runs once its barrier lifts, which with IMMED, or once
     * an abort ended the command, is while the sanitize still runs. */
    if (!(op->flags & OPF_NO_UA) && __atomic_load_n(&lun->sanitizing, __ATOMIC_ACQUIRE)) {
        scsi_cmd_drop(lun, cmd);
        scsi_fail_key(lun, cmd, SK_NOT_READY, ASC_LUN_NOT_READY_SANITIZE);
        return;
    }
    op->execute(lun, cmd);
    scsi_cmd_drop(lun, cmd);        /* the medium, when the command held it */
    /* WRITE and ATOMIC are the commands that change the image. */
    if (lun->cfg.meta_write_through && cmd->status == SCSI_STATUS_GOOD &&
        (cmd->access == SCSI_ACCESS_WRITE || cmd->access == SCSI_ACCESS_ATOMIC))
        meta_write_through(lun, cmd);
}
