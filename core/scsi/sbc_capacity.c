/* READ CAPACITY(10) and (16), answered in prepare; GET LBA STATUS, from
 * the block layer's block status, run in execute. */
#include <string.h>

#include "blk/blk.h"
#include "scsi/scsi_int.h"

SCSI_HANDLER(sbc_prep_read_capacity10)
{
    uint8_t b[8];
    uint64_t last = __atomic_load_n(&lun->blocks, __ATOMIC_ACQUIRE) - 1;
    /* Too large for 32 bits: FFFFFFFFh sends the initiator to (16). */
    put_be32(b, last > 0xffffffffull ? 0xffffffffu : (uint32_t)last);
    put_be32(b + 4, lun->block_size);
    scsi_reply(cmd, b, sizeof(b), sizeof(b));
}

SCSI_HANDLER(sbc_prep_read_capacity16)
{
    uint8_t b[32];
    memset(b, 0, sizeof(b));
    put_be64(b, __atomic_load_n(&lun->blocks, __ATOMIC_ACQUIRE) - 1);
    put_be32(b + 8, lun->block_size);
    b[12] = 0x10;                   /* RC BASIS 01b: the last LBA of the unit */
    b[13] = lun->cfg.phys_exp & 0x0f;
    b[14] = (lun->lbpme ? 0x80 : 0) | (lun->lbprz ? 0x40 : 0);
    scsi_reply(cmd, b, sizeof(b), get_be32(cmd->cdb + 10));
}

SCSI_HANDLER(sbc_prep_get_lba_status)
{
    uint64_t lba = get_be64(cmd->cdb + 2);
    if (lba >= __atomic_load_n(&lun->blocks, __ATOMIC_ACQUIRE)) {
        scsi_fail_key(lun, cmd, SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
        return;
    }
    cmd->lba = lba;
    /* A metadata query: no block range to order against. */
    cmd->access = SCSI_ACCESS_NONE;
}

enum { PS_MAPPED = 0, PS_DEALLOCATED = 1, PS_ANCHORED = 2 };

static int provisioning(const struct blk_status *st)
{
    if (st->flags & BLK_STATUS_DATA)
        return PS_MAPPED;
    /* Reads zeros. Host storage kept for it (a preallocated zero
     * cluster) is anchored; a raw file's hole is simply deallocated. */
    if (st->flags & BLK_STATUS_RESERVED)
        return PS_ANCHORED;
    return PS_DEALLOCATED;
}

#define STATUS_CALLS_MAX 65536      /* bound on block status calls per command */

struct lba_status_out {
    struct scsi_cmd *cmd;
    size_t room;                    /* bytes the data-in buffer takes */
    size_t limit;                   /* min(allocation length, room) */
    unsigned n, max;
};

static void emit(struct lba_status_out *o, uint64_t lba, uint64_t n, int ps)
{
    uint8_t d[16];
    memset(d, 0, sizeof(d));
    put_be64(d, lba);
    put_be32(d + 8, (uint32_t)n);
    d[12] = (uint8_t)ps;
    size_t off = 8 + (size_t)o->n * 16;
    if (off < o->limit)
        iov_view_from_buf(&o->cmd->data, off, d, o->limit - off < 16 ? o->limit - off : 16);
    o->n++;
}

SCSI_HANDLER(sbc_exec_get_lba_status)
{
    uint64_t alloc = get_be32(cmd->cdb + 10);
    struct lba_status_out o = { .cmd = cmd, .room = scsi_data_len(cmd, SCSI_DIR_FROM_DEV) };
    o.limit = alloc < o.room ? (size_t)alloc : o.room;
    /* As many descriptors as the allocation length holds, at least one. */
    uint64_t fit = alloc > 8 ? (alloc - 8) / 16 : 0;
    o.max = fit < 1 ? 1 : fit > SCSI_MAX_LBA_STATUS_DESC ? SCSI_MAX_LBA_STATUS_DESC : (unsigned)fit;

    uint64_t blocks = __atomic_load_n(&lun->blocks, __ATOMIC_ACQUIRE);  /* lun-resize */
    uint64_t b = cmd->lba, run_lba = b, run_n = 0;
    int run_ps = -1;
    for (unsigned calls = 0; b < blocks && o.n < o.max && calls < STATUS_CALLS_MAX;
         calls++) {
        uint64_t nb;
        int ps;
        if (!lun->lbpme) {
            /* Fully provisioned: every block is mapped. */
            nb = blocks - b;
            ps = PS_MAPPED;
        } else {
            uint64_t pnum = 0;
            struct blk_status st;
            struct scuse_err err;
            err_clear(&err);
            int r = blk_block_status(lun->bs, b << lun->shift, (blocks - b) << lun->shift,
                                     &pnum, &st, &err);
            if (r < 0) {
                scsi_fail_errno(lun, cmd, r, false, b, &err);
                return;
            }
            nb = pnum >> lun->shift;
            ps = provisioning(&st);
            if (nb == 0) {
                /* The status changes inside this block: a block is
                 * deallocated only when all of it is. */
                nb = 1;
                ps = PS_MAPPED;
            }
        }
        if (nb > 0xffffffffull)
            nb = 0xffffffffull;
        if (ps == run_ps && run_n + nb <= 0xffffffffull) {
            run_n += nb;
        } else {
            if (run_ps >= 0) {
                emit(&o, run_lba, run_n, run_ps);
                if (o.n >= o.max) {
                    run_ps = -1;
                    break;
                }
            }
            run_lba = b;
            run_n = nb;
            run_ps = ps;
        }
        b += nb;
    }
    if (run_ps >= 0 && o.n < o.max)
        emit(&o, run_lba, run_n, run_ps);

    uint8_t h[8];
    memset(h, 0, sizeof(h));
    put_be32(h, 4 + o.n * 16);      /* PARAMETER DATA LENGTH: bytes after this field */
    iov_view_from_buf(&cmd->data, 0, h, o.limit < 8 ? o.limit : 8);
    uint64_t total = 8 + (uint64_t)o.n * 16;
    uint64_t want = total < alloc ? total : alloc;
    scsi_good_xfer(cmd, SCSI_DIR_FROM_DEV, want, want < o.room ? want : o.room);
}
