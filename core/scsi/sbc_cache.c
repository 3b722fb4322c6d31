/* SYNCHRONIZE CACHE, PRE-FETCH (10/16), START STOP UNIT and PREVENT ALLOW
 * MEDIUM REMOVAL. */
#include <string.h>

#include "scsi/scsi_int.h"

/* LBA and count where a count of 0 means "to the last block". */
static bool prep_to_end(struct scsi_lun *lun, struct scsi_cmd *cmd, enum scsi_access access)
{
    struct sbc_range r;
    sbc_decode(cmd->cdb, &r);
    if (!scsi_check_range(lun, cmd, r.lba, r.n))
        return false;
    cmd->lba = r.lba;
    cmd->nblocks = r.n ? r.n : __atomic_load_n(&lun->blocks, __ATOMIC_ACQUIRE) - r.lba;
    cmd->access = access;
    return true;
}

/* The image has one cache (the block layer's and the host's): a flush
 * of everything covers the range asked for. IMMED is honoured by simply
 * finishing first, which SBC allows. */
SCSI_HANDLER(sbc_prep_sync_cache)
{
    prep_to_end(lun, cmd, SCSI_ACCESS_FLUSH);
}

SCSI_HANDLER(sbc_exec_sync_cache)
{
    struct scuse_err err;
    err_clear(&err);
    int r = blk_flush(lun->bs, &err);
    if (r < 0) {
        scsi_fail_errno(lun, cmd, r, true, cmd->lba, &err);
        return;
    }
    scsi_good(cmd, 0, 0);
}

SCSI_HANDLER(sbc_prep_prefetch)
{
    prep_to_end(lun, cmd, SCSI_ACCESS_READ);
}

/* Read the blocks through the block layer (filling the host page cache
 * and the image's metadata caches), into a scratch buffer that is thrown
 * away. SBC: CONDITION MET when all of them went to the cache, GOOD when
 * the cache (here SCSI_MAX_PREFETCH_BYTES, reported in VPD B0) took only
 * part of them. */
SCSI_HANDLER(sbc_exec_prefetch)
{
    uint8_t buf[SCSI_SCRATCH];
    uint64_t total = cmd->nblocks << lun->shift;
    bool all = total <= SCSI_MAX_PREFETCH_BYTES;
    if (!all)
        total = SCSI_MAX_PREFETCH_BYTES;
    uint64_t off = cmd->lba << lun->shift;
    struct scuse_err err;
    err_clear(&err);
    for (uint64_t done = 0; done < total;) {
        size_t len = total - done < sizeof(buf) ? (size_t)(total - done) : sizeof(buf);
        int r = blk_pread(lun->bs, off + done, buf, len, &err);
        if (r < 0) {
            scsi_fail_errno(lun, cmd, r, false, cmd->lba + (done >> lun->shift), &err);
            return;
        }
        done += len;
    }
    scsi_good(cmd, 0, 0);
    if (all)
        cmd->status = SCSI_STATUS_CONDITION_MET;
}

/* START=0 stops the unit: medium access commands then get NOT READY,
 * INITIALIZING COMMAND REQUIRED until a START=1 (or a reset). Unless
 * NO_FLUSH, stopping flushes first. LOEJ and power conditions are refused
 * by the table (the medium is not removable). */
SCSI_HANDLER(sbc_prep_start_stop)
{
    (void)lun;
    cmd->access = SCSI_ACCESS_BARRIER;
}

SCSI_HANDLER(sbc_exec_start_stop)
{
    bool start = cmd->cdb[4] & 0x01, no_flush = cmd->cdb[4] & 0x04;
    if (!start && !no_flush) {
        struct scuse_err err;
        err_clear(&err);
        int r = blk_flush(lun->bs, &err);
        if (r < 0) {
            scsi_fail_errno(lun, cmd, r, true, 0, &err);
            return;
        }
    }
    pthread_mutex_lock(&lun->lock);
    __atomic_store_n(&lun->stopped, !start, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&lun->lock);
    scsi_good(cmd, 0, 0);
}

/* The medium is not removable: the state is kept (and cleared by a
 * reset) but prevents nothing. */
SCSI_HANDLER(sbc_prep_prevent_allow)
{
    pthread_mutex_lock(&lun->lock);
    lun->prevent = cmd->cdb[4] & 0x01;
    pthread_mutex_unlock(&lun->lock);
    scsi_good(cmd, 0, 0);
}
