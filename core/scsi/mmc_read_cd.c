/* READ CD: sectors with the fields the initiator selects. Served: the
 * user data alone (main channel selection 10h: 2048 bytes of a data
 * sector, 2352 of an audio one) and the whole sector (F8h: sync, header,
 * data, EDC/ECC; stored raw sectors as they are, others built around the
 * user data), no sub-channel; the combinations Linux's CDROMREADMODE2 /
 * raw ioctls ask beyond those are refused with INVALID FIELD IN CDB, as
 * QEMU's ATAPI drive does. The expected sector type is checked against
 * each sector's track (ILLEGAL MODE FOR THIS TRACK). */
#include <string.h>

#include "optical/disc.h"
#include "scsi/mmc.h"

#define SEL_USER 0x10
#define SEL_ALL 0xf8

enum { TYPE_ANY, TYPE_CDDA, TYPE_MODE1, TYPE_MODE2, TYPE_M2F1, TYPE_M2F2 };

static bool type_matches(unsigned type, const struct optical_track *t)
{
    switch (type) {
    case TYPE_ANY: return true;
    case TYPE_CDDA: return t->mode == OPTICAL_AUDIO;
    case TYPE_MODE1: return t->mode == OPTICAL_MODE1;
    case TYPE_M2F1: return t->mode == OPTICAL_MODE2;
    default: return false;          /* formless and Form 2 sectors: none here */
    }
}

static uint32_t sector_bytes(unsigned sel, const struct optical_track *t)
{
    return sel == SEL_ALL || t->mode == OPTICAL_AUDIO ? OPTICAL_RAW : OPTICAL_USER;
}

SCSI_HANDLER(mmc_prep_read_cd)
{
    const uint8_t *cdb = cmd->cdb;
    unsigned type = (cdb[1] >> 2) & 0x07, sel = cdb[9];
    uint32_t lba = get_be32(cdb + 2), n = get_be24(cdb + 6);
    if (type > TYPE_M2F2) {
        scsi_fail_cdb(lun, cmd, 1, 4);
        return;
    }
    if (sel != SEL_USER && sel != SEL_ALL && !(sel == 0 && n == 0)) {
        scsi_fail_cdb(lun, cmd, 9, -1);
        return;
    }
    if (cdb[10] & 0x07) {           /* sub-channel data: none kept */
        scsi_fail_cdb(lun, cmd, 10, 2);
        return;
    }
    if (n > (SCSI_MAX_XFER_BYTES / OPTICAL_RAW)) {
        scsi_fail_cdb(lun, cmd, 6, -1);
        return;
    }
    if (!scsi_check_range(lun, cmd, lba, n))
        return;
    const struct optical_disc *d = lun->disc;
    for (uint32_t i = 0; i < n;) {
        const struct optical_track *t = optical_track_at(d, lba + i);
        if (!t || !type_matches(type, t)) {
            struct scsi_sense s = { .key = SK_ILLEGAL_REQUEST, .asc = ASC_ILLEGAL_MODE_FOR_TRACK,
                                    .info_valid = true, .info = lba + i };
            scsi_fail(lun, cmd, &s);
            return;
        }
        i = t->end - lba;
    }
    if (n == 0) {
        scsi_good(cmd, 0, 0);
        return;
    }
    cmd->lba = lba;
    cmd->nblocks = n;
    cmd->access = SCSI_ACCESS_READ;
}

/* One sector of track t at lba as sel asks, into out. */
static int one_sector(struct scsi_lun *lun, const struct optical_track *t, uint32_t lba,
                      unsigned sel, uint8_t *out, struct scuse_err *err)
{
    if (t->file >= 0 && t->sector_size == OPTICAL_RAW && (sel == SEL_ALL || t->mode ==
                                                          OPTICAL_AUDIO))
        return optical_read_stored(lun->bs, t, lba, 0, out, OPTICAL_RAW, err);
    if (t->mode == OPTICAL_AUDIO)   /* a pregap the file does not hold: silence */
        return optical_read_stored(lun->bs, t, lba, 0, out, OPTICAL_RAW, err);
    uint8_t user[OPTICAL_USER];
    int r = blk_pread(lun->bs, (uint64_t)lba * OPTICAL_USER, sel == SEL_ALL ? user : out,
                      OPTICAL_USER, err);
    if (r < 0 || sel != SEL_ALL)
        return r;
    /* Mode 2 sectors not stored raw are built as Mode 1 would be around
     * the same data: scuse knows no Form 1 subheader to give them. */
    optical_mode1_sector(lba, user, out);
    return 0;
}

SCSI_HANDLER(mmc_exec_read_cd)
{
    unsigned sel = cmd->cdb[9];
    const struct optical_disc *d = lun->disc;
    size_t room = scsi_data_len(cmd, SCSI_DIR_FROM_DEV), off = 0;
    uint64_t want = 0;
    uint8_t sec[OPTICAL_RAW];
    for (uint64_t i = 0; i < cmd->nblocks; i++) {
        uint32_t lba = (uint32_t)(cmd->lba + i);
        const struct optical_track *t = optical_track_at(d, lba);
        uint32_t len = sector_bytes(sel, t);
        want += len;
        if (off >= room)
            continue;               /* counted for the residual only */
        struct scuse_err err;
        err_clear(&err);
        int r = one_sector(lun, t, lba, sel, sec, &err);
        if (r < 0) {
            scsi_fail_errno(lun, cmd, r, false, lba, &err);
            return;
        }
        size_t put = room - off < len ? room - off : len;
        iov_view_from_buf(&cmd->data, off, sec, put);
        off += put;
    }
    scsi_good_xfer(cmd, SCSI_DIR_FROM_DEV, want, off);
}
