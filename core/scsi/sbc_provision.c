/* WRITE SAME (10/16) and UNMAP: logical block provisioning. */
#include <string.h>

#include "scsi/scsi_int.h"

#define WS_IOV 128                  /* blocks of a pattern per block-layer write */

SCSI_HANDLER(sbc_prep_write_same)
{
    struct sbc_range r;
    sbc_decode(cmd->cdb, &r);
    /* WSNZ is 0 in VPD B0: 0 blocks writes from the LBA to the end of the
     * medium, within MAXIMUM WRITE SAME LENGTH like any other count. */
    if (r.n == 0 && r.lba < lun->blocks)
        r.n = lun->blocks - r.lba;
    if (r.n == 0 || r.n > (SCSI_MAX_WS_BYTES >> lun->shift)) {
        if (r.lba >= lun->blocks)
            scsi_check_range(lun, cmd, r.lba, 1);
        else
            scsi_fail_cdb(lun, cmd, r.len_byte, -1);
        return;
    }
    if (!scsi_check_range(lun, cmd, r.lba, r.n))
        return;
    if (scsi_lun_wp(lun)) {
        scsi_fail_wp(lun, cmd);
        return;
    }
    cmd->lba = r.lba;
    cmd->nblocks = r.n;
    cmd->access = SCSI_ACCESS_WRITE;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    return p[0] == 0 && memcmp(p, p + 1, n - 1) == 0;
}

/* A zero block becomes a zero write (deallocating when UNMAP is set and
 * the LUN does discard: the block layer guarantees zeros either way). Any
 * other pattern is written WS_IOV blocks per call, every iovec pointing
 * at the one data-out block: no allocation, no copy unless the block
 * straddles the transport's iovecs. */
SCSI_HANDLER(sbc_exec_write_same)
{
    bool ndob = cmd->cdb[0] == OP_WRITE_SAME16 && (cmd->cdb[1] & 0x01);
    bool unmap = cmd->cdb[1] & 0x08;
    size_t bsz = lun->block_size;
    uint8_t copy[4096];
    uint8_t *pat = NULL;
    bool zero = true;
    if (!ndob) {
        if (scsi_data_len(cmd, SCSI_DIR_TO_DEV) < bsz) {
            scsi_fail_short_data(lun, cmd, bsz);
            return;
        }
        pat = iov_view_contig(&cmd->data, 0, bsz);
        if (!pat) {
            iov_view_to_buf(&cmd->data, 0, copy, bsz);
            pat = copy;
        }
        zero = all_zero(pat, bsz);
    }
    unsigned flags = sbc_write_flags(lun, false);
    uint64_t off = cmd->lba << lun->shift;
    int r = 0;
    struct scuse_err err;
    err_clear(&err);
    if (zero) {
        if (unmap && lun->lbpme)
            flags |= BLK_ZERO_MAY_UNMAP;
        r = blk_write_zeroes(lun->bs, off, cmd->nblocks << lun->shift, flags, &err);
    } else {
        struct iovec iov[WS_IOV];
        for (unsigned i = 0; i < WS_IOV; i++) {
            iov[i].iov_base = pat;
            iov[i].iov_len = bsz;
        }
        for (uint64_t done = 0; done < cmd->nblocks && r == 0;) {
            uint64_t k = cmd->nblocks - done < WS_IOV ? cmd->nblocks - done : WS_IOV;
            struct iov_view v = iov_view_make(iov, (int)k, (size_t)k * bsz);
            r = blk_pwritev(lun->bs, off + (done << lun->shift), &v, 0, &err);
            done += k;
        }
        if (r == 0 && (flags & BLK_WRITE_FUA))
            r = blk_flush(lun->bs, &err);
    }
    if (r < 0) {
        scsi_fail_errno(lun, cmd, r, true, cmd->lba, &err);
        return;
    }
    scsi_good_xfer(cmd, SCSI_DIR_TO_DEV, ndob ? 0 : bsz, ndob ? 0 : bsz);
}

/* --- UNMAP --- */

#define UNMAP_HDR 8
#define UNMAP_DESC 16

/* Parse and check the whole parameter list, copied once out of the
 * transport's memory (which the initiator may still change). With apply
 * false, lo and hi get the hull of the ranges; with apply true every range
 * must also lie in [cmd->lba, cmd->lba + nblocks), the range prepare
 * announced, and only then are they discarded. Returns false when the
 * command was failed. */
static bool unmap_list(struct scsi_lun *lun, struct scsi_cmd *cmd, bool apply, uint64_t *lo,
                       uint64_t *hi)
{
    size_t plen = get_be16(cmd->cdb + 7);
    size_t room = scsi_data_len(cmd, SCSI_DIR_TO_DEV);
    size_t len = plen < room ? plen : room;
    if (plen < UNMAP_HDR) {
        scsi_fail_key(lun, cmd, SK_ILLEGAL_REQUEST, ASC_PARAMETER_LIST_LENGTH_ERROR);
        return false;
    }
    if (len < UNMAP_HDR) {
        scsi_fail_short_data(lun, cmd, plen);
        return false;
    }
    uint8_t h[UNMAP_HDR];
    iov_view_to_buf(&cmd->data, 0, h, UNMAP_HDR);
    if (get_be32(h + 4) != 0) {
        scsi_fail_param(lun, cmd, 4, -1);
        return false;
    }
    /* Descriptors: what the descriptor data length says and the list
     * holds; a trailing partial descriptor is ignored (SBC). */
    size_t bddl = get_be16(h + 2);
    size_t have = len - UNMAP_HDR;
    size_t ndesc = (bddl < have ? bddl : have) / UNMAP_DESC;
    if (ndesc > SCSI_MAX_UNMAP_DESC) {
        scsi_fail_param(lun, cmd, 2, -1);
        return false;
    }
    uint8_t list[SCSI_MAX_UNMAP_DESC * UNMAP_DESC];
    iov_view_to_buf(&cmd->data, UNMAP_HDR, list, ndesc * UNMAP_DESC);

    uint64_t max_count = scsi_max_unmap_blocks(lun->shift), total = 0;
    *lo = UINT64_MAX;
    *hi = 0;
    for (size_t i = 0; i < ndesc; i++) {
        const uint8_t *d = list + i * UNMAP_DESC;
        unsigned at = (unsigned)(UNMAP_HDR + i * UNMAP_DESC);
        uint64_t lba = get_be64(d), n = get_be32(d + 8);
        if (get_be32(d + 12) != 0) {
            scsi_fail_param(lun, cmd, at + 12, -1);
            return false;
        }
        total += n;
        if (total > max_count) {
            /* The descriptor that takes the command past the limit. */
            scsi_fail_param(lun, cmd, at + 8, -1);
            return false;
        }
        if (n == 0)
            continue;               /* allowed, and nothing to do */
        if (!scsi_check_range(lun, cmd, lba, n))
            return false;
        if (apply && (lba < cmd->lba || lba + n > cmd->lba + cmd->nblocks)) {
            scsi_fail_param(lun, cmd, at, -1);
            return false;
        }
        if (lba < *lo)
            *lo = lba;
        if (lba + n > *hi)
            *hi = lba + n;
    }
    for (size_t i = 0; apply && i < ndesc; i++) {
        const uint8_t *d = list + i * UNMAP_DESC;
        uint64_t lba = get_be64(d), n = get_be32(d + 8);
        if (n == 0)
            continue;
        struct scuse_err err;
        err_clear(&err);
        /* LBPRZ promises zeros for every unmapped block, also those in
         * part of an allocation unit a discard would leave as it is: a
         * zero write that may deallocate keeps the promise (whole units
         * deallocated, the edges written with zeros). */
        int r = lun->lbprz ? blk_write_zeroes(lun->bs, lba << lun->shift, n << lun->shift,
                                              BLK_ZERO_MAY_UNMAP, &err)
                           : blk_discard(lun->bs, lba << lun->shift, n << lun->shift, &err);
        if (r < 0) {
            scsi_fail_errno(lun, cmd, r, true, lba, &err);
            return false;
        }
    }
    return true;
}

/* Prepare reads the parameter list (the transport's memory holds it
 * already) and checks every descriptor, so the dispatcher can order the
 * command as one write over the hull of its ranges. */
SCSI_HANDLER(sbc_prep_unmap)
{
    size_t plen = get_be16(cmd->cdb + 7);
    if (scsi_lun_wp(lun)) {
        scsi_fail_wp(lun, cmd);
        return;
    }
    if (plen == 0) {
        scsi_good(cmd, 0, 0);
        return;
    }
    uint64_t lo, hi;
    if (!unmap_list(lun, cmd, false, &lo, &hi))
        return;
    if (hi == 0) {
        /* No descriptor, or only empty ones. */
        size_t room = scsi_data_len(cmd, SCSI_DIR_TO_DEV);
        scsi_good_xfer(cmd, SCSI_DIR_TO_DEV, plen, plen < room ? plen : room);
        return;
    }
    cmd->lba = lo;
    cmd->nblocks = hi - lo;
    cmd->access = SCSI_ACCESS_WRITE;
}

SCSI_HANDLER(sbc_exec_unmap)
{
    uint64_t lo, hi;
    if (!unmap_list(lun, cmd, true, &lo, &hi))
        return;
    size_t plen = get_be16(cmd->cdb + 7);
    size_t room = scsi_data_len(cmd, SCSI_DIR_TO_DEV);
    scsi_good_xfer(cmd, SCSI_DIR_TO_DEV, plen, plen < room ? plen : room);
}
