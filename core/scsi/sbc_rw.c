/* READ and WRITE (6/10/12/16), VERIFY and WRITE AND VERIFY (10/16),
 * COMPARE AND WRITE. Data moves straight between cmd->data and the image;
 * compares read the image in chunks into a stack buffer. */
#include <string.h>

#include "scsi/scsi_int.h"

void sbc_decode(const uint8_t *cdb, struct sbc_range *r)
{
    switch (cdb[0] >> 5) {
    case 0:                         /* 6-byte: 21-bit LBA, 0 blocks means 256 */
        r->lba = get_be24(cdb + 1) & 0x1fffff;
        r->n = cdb[4] ? cdb[4] : 256;
        r->len_byte = 4;
        break;
    case 1:
    case 2:                         /* 10-byte */
        r->lba = get_be32(cdb + 2);
        r->n = get_be16(cdb + 7);
        r->len_byte = 7;
        break;
    case 5:                         /* 12-byte */
        r->lba = get_be32(cdb + 2);
        r->n = get_be32(cdb + 6);
        r->len_byte = 6;
        break;
    default:                        /* 16-byte */
        r->lba = get_be64(cdb + 2);
        r->n = get_be32(cdb + 10);
        r->len_byte = 10;
        break;
    }
}

static bool is_write_op(uint8_t opcode)
{
    return opcode == OP_WRITE6 || opcode == OP_WRITE10 || opcode == OP_WRITE12 ||
           opcode == OP_WRITE16;
}

bool sbc_prep_range(struct scsi_lun *lun, struct scsi_cmd *cmd, uint64_t lba, uint64_t n,
                    uint64_t max, unsigned len_byte, bool write, enum scsi_access access)
{
    if (n > max) {
        scsi_fail_cdb(lun, cmd, len_byte, -1);
        return false;
    }
    if (!scsi_check_range(lun, cmd, lba, n))
        return false;
    if (write && scsi_lun_wp(lun)) {
        scsi_fail_wp(lun, cmd);
        return false;
    }
    if (n == 0) {
        scsi_good(cmd, 0, 0);       /* transfer length 0: nothing to do */
        return false;
    }
    cmd->lba = lba;
    cmd->nblocks = n;
    cmd->access = access;
    return true;
}

/* The transfer commands: their CDB decoded, at most SCSI_MAX_XFER_BYTES. */
static bool prep_transfer(struct scsi_lun *lun, struct scsi_cmd *cmd, bool write,
                          enum scsi_access access)
{
    struct sbc_range r;
    sbc_decode(cmd->cdb, &r);
    return sbc_prep_range(lun, cmd, r.lba, r.n, SCSI_MAX_XFER_BYTES >> lun->shift, r.len_byte,
                          write, access);
}

SCSI_HANDLER(sbc_prep_rw)
{
    bool write = is_write_op(cmd->cdb[0]);
    prep_transfer(lun, cmd, write, write ? SCSI_ACCESS_WRITE : SCSI_ACCESS_READ);
}

static bool fua_bit(const struct scsi_cmd *cmd)
{
    return cmd->cdb[0] != OP_READ6 && cmd->cdb[0] != OP_WRITE6 && (cmd->cdb[1] & 0x08);
}

unsigned sbc_write_flags(struct scsi_lun *lun, bool fua)
{
    /* Without a write cache every write is write-through. */
    return (fua || !scsi_lun_write_cache(lun)) ? BLK_WRITE_FUA : 0;
}

SCSI_HANDLER(sbc_exec_read)
{
    uint64_t want = cmd->nblocks << lun->shift;
    size_t room = scsi_data_len(cmd, SCSI_DIR_FROM_DEV);
    size_t len = want < room ? (size_t)want : room;
    if (len) {
        struct iov_view v = iov_view_sub(&cmd->data, 0, len);
        struct scuse_err err;
        err_clear(&err);
        int r = blk_preadv(lun->bs, cmd->lba << lun->shift, &v, &err);
        if (r < 0) {
            scsi_fail_errno(lun, cmd, r, false, cmd->lba, &err);
            return;
        }
    }
    scsi_good_xfer(cmd, SCSI_DIR_FROM_DEV, want, len);
}

/* Write whole blocks of data-out at lba: what fits of n blocks. */
static int write_blocks(struct scsi_lun *lun, struct scsi_cmd *cmd, size_t doff, uint64_t lba,
                        uint64_t n, unsigned flags, size_t *done, struct scuse_err *err)
{
    uint64_t want = n << lun->shift;
    size_t room = scsi_data_len(cmd, SCSI_DIR_TO_DEV);
    room = room > doff ? room - doff : 0;
    size_t len = want < room ? (size_t)want : room & ~(size_t)(lun->block_size - 1);
    *done = len;
    if (!len)
        return 0;
    struct iov_view v = iov_view_sub(&cmd->data, doff, len);
    return blk_pwritev(lun->bs, lba << lun->shift, &v, flags, err);
}

SCSI_HANDLER(sbc_exec_write)
{
    size_t done;
    struct scuse_err err;
    err_clear(&err);
    int r = write_blocks(lun, cmd, 0, cmd->lba, cmd->nblocks,
                         sbc_write_flags(lun, fua_bit(cmd)), &done, &err);
    if (r < 0) {
        scsi_fail_errno(lun, cmd, r, true, cmd->lba, &err);
        return;
    }
    scsi_good_xfer(cmd, SCSI_DIR_TO_DEV, cmd->nblocks << lun->shift, done);
}

/* --- compare and verify --- */

/* Read [lba, lba+n) in chunks; with pattern (BYTCHK 1: data-out from doff
 * on; BYTCHK 3: one block at doff repeated) compare. Returns 0 when equal
 * or readable, 1 on a miscompare (*mis: its byte offset from doff), or a
 * negative errno (*bad_lba: the chunk that failed). */
enum cmp_mode { CMP_NONE, CMP_DATA, CMP_BLOCK };

static int compare_medium(struct scsi_lun *lun, struct scsi_cmd *cmd, uint64_t lba, uint64_t n,
                          enum cmp_mode mode, size_t doff, uint64_t *mis, uint64_t *bad_lba,
                          struct scuse_err *err)
{
    uint8_t img[SCSI_SCRATCH];
    uint8_t out[SCSI_SCRATCH];
    uint8_t block[4096];
    size_t bsz = lun->block_size;
    if (mode == CMP_BLOCK)
        iov_view_to_buf(&cmd->data, doff, block, bsz);
    uint64_t total = n << lun->shift;
    for (uint64_t done = 0; done < total;) {
        size_t len = total - done < sizeof(img) ? (size_t)(total - done) : sizeof(img);
        int r = blk_pread(lun->bs, (lba << lun->shift) + done, img, len, err);
        if (r < 0) {
            *bad_lba = lba + (done >> lun->shift);
            return r;
        }
        const uint8_t *want = NULL;
        if (mode == CMP_DATA) {
            struct iov_view v = iov_view_sub(&cmd->data, doff + done, len);
            want = iov_view_contig(&v, 0, len);
            if (!want) {
                iov_view_to_buf(&v, 0, out, len);
                want = out;
            }
        }
        for (size_t o = 0; mode != CMP_NONE && o < len; o += bsz) {
            const uint8_t *w = mode == CMP_DATA ? want + o : block;
            size_t step = len - o < bsz ? len - o : bsz;
            if (memcmp(img + o, w, step) != 0) {
                size_t i = 0;
                while (img[o + i] == w[i])
                    i++;
                *mis = done + o + i;
                return 1;
            }
        }
        done += len;
    }
    return 0;
}

static void miscompare(struct scsi_lun *lun, struct scsi_cmd *cmd, uint64_t offset)
{
    struct scsi_sense s = { .key = SK_MISCOMPARE, .asc = ASC_MISCOMPARE_DURING_VERIFY,
                            .info_valid = true, .info = offset };
    scsi_fail(lun, cmd, &s);
}

SCSI_HANDLER(sbc_prep_verify)
{
    unsigned bytchk = (cmd->cdb[1] >> 1) & 3;
    if (bytchk == 2) {              /* reserved */
        scsi_fail_cdb(lun, cmd, 1, 2);
        return;
    }
    prep_transfer(lun, cmd, false, SCSI_ACCESS_READ);
}

SCSI_HANDLER(sbc_exec_verify)
{
    unsigned bytchk = (cmd->cdb[1] >> 1) & 3;
    uint64_t n = cmd->nblocks, want = 0;
    enum cmp_mode mode = CMP_NONE;
    if (bytchk == 1) {
        /* Compare what data-out holds (whole blocks); the rest is overflow. */
        mode = CMP_DATA;
        want = n << lun->shift;
        size_t room = scsi_data_len(cmd, SCSI_DIR_TO_DEV);
        if (want > room)
            n = room >> lun->shift;
    } else if (bytchk == 3) {
        mode = CMP_BLOCK;
        want = lun->block_size;
        if (scsi_data_len(cmd, SCSI_DIR_TO_DEV) < want) {
            scsi_fail_short_data(lun, cmd, want);
            return;
        }
    }
    uint64_t mis = 0, bad = 0;
    struct scuse_err err;
    err_clear(&err);
    int r = compare_medium(lun, cmd, cmd->lba, n, mode, 0, &mis, &bad, &err);
    if (r < 0) {
        scsi_fail_errno(lun, cmd, r, false, bad, &err);
        return;
    }
    if (r > 0) {
        miscompare(lun, cmd, mis);
        return;
    }
    scsi_good_xfer(cmd, SCSI_DIR_TO_DEV, want, mode == CMP_DATA ? n << lun->shift : want);
}

SCSI_HANDLER(sbc_prep_write_verify)
{
    prep_transfer(lun, cmd, true, SCSI_ACCESS_WRITE);
}

SCSI_HANDLER(sbc_exec_write_verify)
{
    bool bytchk = cmd->cdb[1] & 0x02;
    size_t done;
    struct scuse_err err;
    err_clear(&err);
    /* Verification reads the medium: the data must be there, not cached. */
    int r = write_blocks(lun, cmd, 0, cmd->lba, cmd->nblocks, BLK_WRITE_FUA, &done, &err);
    if (r < 0) {
        scsi_fail_errno(lun, cmd, r, true, cmd->lba, &err);
        return;
    }
    uint64_t mis = 0, bad = 0;
    r = compare_medium(lun, cmd, cmd->lba, done >> lun->shift, bytchk ? CMP_DATA : CMP_NONE, 0,
                       &mis, &bad, &err);
    if (r < 0) {
        scsi_fail_errno(lun, cmd, r, false, bad, &err);
        return;
    }
    if (r > 0) {
        miscompare(lun, cmd, mis);
        return;
    }
    scsi_good_xfer(cmd, SCSI_DIR_TO_DEV, cmd->nblocks << lun->shift, done);
}

SCSI_HANDLER(sbc_prep_caw)
{
    uint64_t lba = get_be64(cmd->cdb + 2);
    uint64_t n = cmd->cdb[13];
    if (!scsi_check_range(lun, cmd, lba, n))
        return;
    if (scsi_lun_wp(lun)) {
        scsi_fail_wp(lun, cmd);
        return;
    }
    /* The data-out buffer is the verify data then the write data, N blocks
     * each (SBC-4 5.3); N = 0 moves nothing and is no error. A buffer of
     * another size means the CDB and the transfer disagree (an initiator
     * that wrapped 256 blocks to 0, say): refused whole, never run in part
     * or padded, whichever side is longer. */
    size_t have = scsi_data_len(cmd, SCSI_DIR_TO_DEV);
    if (have != 2 * (n << lun->shift)) {
        scsi_fail_cdb(lun, cmd, 13, -1);
        return;
    }
    if (n == 0) {
        scsi_good(cmd, 0, 0);
        return;
    }
    cmd->lba = lba;
    cmd->nblocks = n;
    /* Read, compare, write: the dispatcher keeps other writes to these
     * blocks out until it completes. */
    cmd->access = SCSI_ACCESS_ATOMIC;
}

SCSI_HANDLER(sbc_exec_caw)
{
    uint64_t half = cmd->nblocks << lun->shift;
    if (scsi_data_len(cmd, SCSI_DIR_TO_DEV) < 2 * half) {
        scsi_fail_short_data(lun, cmd, 2 * half);
        return;
    }
    uint64_t mis = 0, bad = 0;
    struct scuse_err err;
    err_clear(&err);
    int r = compare_medium(lun, cmd, cmd->lba, cmd->nblocks, CMP_DATA, 0, &mis, &bad, &err);
    if (r < 0) {
        scsi_fail_errno(lun, cmd, r, false, bad, &err);
        return;
    }
    if (r > 0) {
        miscompare(lun, cmd, mis);
        return;
    }
    size_t done;
    r = write_blocks(lun, cmd, (size_t)half, cmd->lba, cmd->nblocks,
                     sbc_write_flags(lun, cmd->cdb[1] & 0x08), &done, &err);
    if (r < 0) {
        scsi_fail_errno(lun, cmd, r, true, cmd->lba, &err);
        return;
    }
    scsi_good_xfer(cmd, SCSI_DIR_TO_DEV, 2 * half, 2 * half);
}
