/* INQUIRY: standard data and the VPD pages 00, 80, 83, B0, B1, B2.
 * Answered in prepare from LUN settings (no I/O). */
#include <string.h>

#include "scsi/scsi_int.h"

#define STD_INQUIRY_LEN 96

static void put_padded(uint8_t *dst, const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    memcpy(dst, s, len);
    memset(dst + len, ' ', n - len);
}

static bool served(const struct scsi_lun *lun, uint8_t opcode, uint16_t sa)
{
    const struct scsi_op *op = scsi_lun_op_find(lun, opcode, sa);
    return op && scsi_lun_serves(lun, op);
}

static size_t std_inquiry(struct scsi_lun *lun, uint8_t *b)
{
    memset(b, 0, STD_INQUIRY_LEN);
    b[0] = 0x00;                    /* connected, direct access block device */
    if (lun->removable) {
        b[0] = 0x05;                /* CD/DVD device (MMC) */
        b[1] = 0x80;                /* RMB: removable medium */
    }
    b[2] = 0x06;                    /* SPC-4 */
    b[3] = 0x10 | 0x02;             /* HISUP, response data format 2 */
    b[4] = STD_INQUIRY_LEN - 5;
    b[7] = 0x02;                    /* CMDQUE */
    if (served(lun, OP_EXTENDED_COPY, 0x00))
        b[5] |= 0x08;               /* 3PC: third-party copy (EXTENDED COPY) */
    put_padded(b + 8, lun->cfg.vendor, 8);
    put_padded(b + 16, lun->cfg.product, 16);
    put_padded(b + 32, lun->cfg.revision, 4);
    put_be16(b + 58, VERSION_SAM5);
    put_be16(b + 60, VERSION_SPC4);
    if (!lun->removable)
        put_be16(b + 62, VERSION_SBC3);
    return STD_INQUIRY_LEN;
}

static const uint8_t vpd_list[] = {
    VPD_SUPPORTED, VPD_UNIT_SERIAL, VPD_DEVICE_ID,
    VPD_BLOCK_LIMITS, VPD_BLOCK_CHARACTERISTICS, VPD_LB_PROVISIONING,
};

/* A CD/DVD device has no block limits, characteristics or provisioning
 * pages (QEMU's scsi-cd lists 00, 80, 83 too). */
#define VPD_CDROM_PAGES 3

static size_t vpd_supported(const struct scsi_lun *lun, uint8_t *b)
{
    size_t n = lun->removable ? VPD_CDROM_PAGES : sizeof(vpd_list);
    memcpy(b + 4, vpd_list, n);
    return 4 + n;
}

static size_t vpd_serial(struct scsi_lun *lun, uint8_t *b)
{
    size_t n = strlen(lun->serial);
    memcpy(b + 4, lun->serial, n);
    return 4 + n;
}

static size_t vpd_device_id(struct scsi_lun *lun, uint8_t *b)
{
    size_t off = 4;
    /* NAA designator, binary, associated with the logical unit. */
    b[off] = 0x01;
    b[off + 1] = 0x03;
    b[off + 3] = lun->naa_len;
    memcpy(b + off + 4, lun->naa, lun->naa_len);
    off += 4 + lun->naa_len;
    /* T10 vendor ID designator, ASCII: vendor then the unit serial. */
    size_t sn = strlen(lun->serial);
    b[off] = 0x02;
    b[off + 1] = 0x01;
    b[off + 3] = (uint8_t)(8 + sn);
    put_padded(b + off + 4, lun->cfg.vendor, 8);
    memcpy(b + off + 12, lun->serial, sn);
    off += 12 + sn;
    return off;
}

static size_t vpd_block_limits(struct scsi_lun *lun, uint8_t *b)
{
    b[3] = 0x3c;
    /* WSNZ 0: WRITE SAME of 0 blocks writes to the end of the medium. */
    b[5] = served(lun, OP_COMPARE_AND_WRITE, SCSI_NO_SA) ? SCSI_MAX_CAW_BLOCKS : 0;
    put_be16(b + 6, (uint16_t)(1u << lun->cfg.phys_exp));   /* optimal granularity */
    put_be32(b + 8, SCSI_MAX_XFER_BYTES >> lun->shift);     /* maximum transfer */
    put_be32(b + 12, 0);            /* optimal transfer length: not reported (0), so
                                       Linux does not cap its I/O size at it */
    /* Maximum prefetch length stays 0 (not reported): a longer PRE-FETCH
     * is served in part and answered GOOD, as SBC describes. */
    if (served(lun, OP_UNMAP, SCSI_NO_SA)) {
        put_be32(b + 20, (uint32_t)scsi_max_unmap_blocks(lun->shift));
        put_be32(b + 24, SCSI_MAX_UNMAP_DESC);
        put_be32(b + 28, lun->unmap_gran);
        put_be32(b + 32, 0x80000000u);                      /* UGAVALID, alignment 0 */
    }
    put_be64(b + 36, SCSI_MAX_WS_BYTES >> lun->shift);
    if (served(lun, OP_WRITE_ATOMIC16, SCSI_NO_SA)) {
        /* MAXIMUM ATOMIC TRANSFER LENGTH; alignment and granularity 0 (no
         * requirement); no atomic boundary (the last two fields 0). */
        put_be32(b + 44, sbc_max_atomic_blocks(lun));
    }
    return 64;
}

static size_t vpd_block_chars(struct scsi_lun *lun, uint8_t *b)
{
    b[3] = 0x3c;
    put_be16(b + 4, lun->cfg.rotation_rate);
    /* WABEREQ, WACEREQ 01b: after BLOCK or CRYPTOGRAPHIC ERASE a read
     * completes GOOD (with zeros here). */
    if (served(lun, OP_SANITIZE, 0x02) || served(lun, OP_SANITIZE, 0x03))
        b[7] = 0x50;
    return 64;
}

static size_t vpd_provisioning(struct scsi_lun *lun, uint8_t *b)
{
    b[3] = 0x04;
    if (lun->lbpme) {
        if (served(lun, OP_UNMAP, SCSI_NO_SA))
            b[5] |= 0x80;           /* LBPU */
        if (served(lun, OP_WRITE_SAME16, SCSI_NO_SA))
            b[5] |= 0x40;           /* LBPWS */
        if (served(lun, OP_WRITE_SAME10, SCSI_NO_SA))
            b[5] |= 0x20;           /* LBPWS10 */
        if (lun->lbprz)
            b[5] |= 0x04;           /* LBPRZ: deallocated blocks read zeros */
        b[6] = 0x02;                /* thin provisioned */
    }
    return 8;
}

SCSI_HANDLER(spc_prep_inquiry)
{
    const uint8_t *cdb = cmd->cdb;
    bool evpd = cdb[1] & 0x01;
    uint8_t page = cdb[2];
    size_t alloc = get_be16(cdb + 3);
    uint8_t b[256];
    size_t n;

    if (!evpd) {
        if (page != 0) {
            scsi_fail_cdb(lun, cmd, 2, -1);
            return;
        }
        scsi_reply(cmd, b, std_inquiry(lun, b), alloc);
        return;
    }
    memset(b, 0, sizeof(b));
    b[0] = lun->removable ? 0x05 : 0x00;    /* the peripheral device type, as above */
    b[1] = page;
    switch (page) {
    case VPD_SUPPORTED: n = vpd_supported(lun, b); break;
    case VPD_UNIT_SERIAL: n = vpd_serial(lun, b); break;
    case VPD_DEVICE_ID: n = vpd_device_id(lun, b); break;
    case VPD_BLOCK_LIMITS: n = vpd_block_limits(lun, b); break;
    case VPD_BLOCK_CHARACTERISTICS: n = vpd_block_chars(lun, b); break;
    case VPD_LB_PROVISIONING: n = vpd_provisioning(lun, b); break;
    default:
        scsi_fail_cdb(lun, cmd, 2, -1);
        return;
    }
    if (lun->removable && page > VPD_DEVICE_ID) {
        scsi_fail_cdb(lun, cmd, 2, -1);
        return;
    }
    put_be16(b + 2, (uint16_t)(n - 4));
    scsi_reply(cmd, b, n, alloc);
}
