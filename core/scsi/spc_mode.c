/* MODE SENSE (6/10), answered in prepare, and MODE SELECT (6/10), run in
 * execute as a barrier. Pages: 01h read-write error recovery, 08h caching
 * (WCE changeable), 0Ah control (D_SENSE changeable), 3Fh all of them.
 * No page is saveable: PC=saved and SP=1 are refused.
 *
 * Unit attention: SPC raises MODE PARAMETERS CHANGED for the I_T nexuses
 * other than the one that sent MODE SELECT. A LUN here has one nexus (the
 * transport's), so a MODE SELECT raises none; scsi_lun_raise_ua() with
 * SCSI_UA_MODE_CHANGED is there for a transport that tells nexuses apart. */
#include <string.h>

#include "scsi/scsi_int.h"

#define PAGE_MAX 20

/* Page bytes for pc (current, changeable or default). 0: unknown page. */
size_t scsi_mode_page(struct scsi_lun *lun, uint8_t page, int pc, uint8_t *out)
{
    bool chg = pc == MPC_CHANGEABLE;
    bool wce = pc == MPC_DEFAULT ? lun->cfg.write_cache : scsi_lun_write_cache(lun);
    bool dsense = pc == MPC_DEFAULT ? false : scsi_lun_desc_sense(lun);
    bool swp = pc == MPC_DEFAULT ? false : __atomic_load_n(&lun->swp, __ATOMIC_RELAXED);
    switch (page) {
    case MPAGE_RW_ERROR_RECOVERY:
        memset(out, 0, 12);
        out[0] = page;
        out[1] = 0x0a;
        return 12;
    case MPAGE_CACHING:
        memset(out, 0, 20);
        out[0] = page;
        out[1] = 0x12;
        if (chg || wce)
            out[2] = 0x04;          /* WCE */
        return 20;
    case MPAGE_CONTROL:
        memset(out, 0, 12);
        out[0] = page;
        out[1] = 0x0a;
        if (chg || dsense)
            out[2] = 0x04;          /* D_SENSE */
        if (!chg)
            out[3] = 0x10;          /* QUEUE ALGORITHM MODIFIER 1: unrestricted reordering */
        if (chg || swp)
            out[4] = 0x08;          /* SWP */
        return 12;
    default:
        return 0;
    }
}

static const uint8_t all_pages[] = { MPAGE_RW_ERROR_RECOVERY, MPAGE_CACHING, MPAGE_CONTROL };

SCSI_HANDLER(spc_prep_mode_sense)
{
    const uint8_t *cdb = cmd->cdb;
    bool ten = cdb[0] == OP_MODE_SENSE10;
    bool dbd = cdb[1] & 0x08;
    bool llbaa = ten && (cdb[1] & 0x10);
    int pc = cdb[2] >> 6;
    uint8_t page = cdb[2] & 0x3f, sub = cdb[3];
    size_t alloc = ten ? get_be16(cdb + 7) : cdb[4];

    if (pc == MPC_SAVED) {
        scsi_fail_key(lun, cmd, SK_ILLEGAL_REQUEST, ASC_SAVING_PARAMS_UNSUPPORTED);
        return;
    }
    if (page != MPAGE_ALL) {
        uint8_t tmp[PAGE_MAX];
        if (!scsi_mode_page(lun, page, pc, tmp)) {
            scsi_fail_cdb(lun, cmd, 2, 5);
            return;
        }
    }
    if (sub != 0 && sub != MSUB_ALL) {
        scsi_fail_cdb(lun, cmd, 3, -1);
        return;
    }

    uint8_t b[8 + 16 + 3 * PAGE_MAX];
    memset(b, 0, sizeof(b));
    size_t hlen = ten ? 8 : 4, off = hlen;
    uint8_t dev = 0x10;             /* DPOFUA: FUA is honoured */
    if (scsi_lun_wp(lun))
        dev |= 0x80;                /* WP (a read-only LUN, or SWP) */
    b[ten ? 3 : 2] = dev;
    if (!dbd) {
        size_t dlen = llbaa ? 16 : 8;
        if (pc == MPC_CHANGEABLE) {
            if (llbaa)
                b[4] = 0x01;        /* a mask of zeros: nothing in it changes */
        } else if (llbaa) {
            b[4] = 0x01;            /* LONGLBA */
            put_be64(b + off, lun->blocks);
            put_be32(b + off + 12, lun->block_size);
        } else {
            put_be32(b + off, lun->blocks > 0xffffffffull ? 0xffffffffu : (uint32_t)lun->blocks);
            b[off + 5] = (uint8_t)(lun->block_size >> 16);
            put_be16(b + off + 6, (uint16_t)lun->block_size);
        }
        if (ten)
            put_be16(b + 6, (uint16_t)dlen);
        else
            b[3] = (uint8_t)dlen;
        off += dlen;
    }
    for (unsigned i = 0; i < sizeof(all_pages); i++)
        if (page == MPAGE_ALL || page == all_pages[i])
            off += scsi_mode_page(lun, all_pages[i], pc, b + off);
    if (ten)
        put_be16(b, (uint16_t)(off - 2));
    else
        b[0] = (uint8_t)(off - 1);
    scsi_reply(cmd, b, off, alloc);
}

/* --- MODE SELECT --- */

#define MODE_SELECT_MAX 512         /* a parameter list longer than this is refused */

SCSI_HANDLER(spc_prep_mode_select)
{
    bool ten = cmd->cdb[0] == OP_MODE_SELECT10;
    size_t plen = ten ? get_be16(cmd->cdb + 7) : cmd->cdb[4];
    if (plen == 0) {
        scsi_good(cmd, 0, 0);       /* no parameters: nothing changes */
        return;
    }
    if (plen > MODE_SELECT_MAX) {
        scsi_fail_cdb(lun, cmd, ten ? 7 : 4, -1);
        return;
    }
    cmd->access = SCSI_ACCESS_BARRIER;
}

static int top_bit(uint8_t v)
{
    int b = 7;
    while (b > 0 && !(v & (1u << b)))
        b--;
    return b;
}

SCSI_HANDLER(spc_exec_mode_select)
{
    bool ten = cmd->cdb[0] == OP_MODE_SELECT10;
    size_t plen = ten ? get_be16(cmd->cdb + 7) : cmd->cdb[4];
    size_t room = scsi_data_len(cmd, SCSI_DIR_TO_DEV);
    size_t len = plen < room ? plen : room;
    uint8_t p[MODE_SELECT_MAX];
    iov_view_to_buf(&cmd->data, 0, p, len);

    size_t hlen = ten ? 8 : 4;
    if (len < hlen) {
        scsi_fail_short_data(lun, cmd, plen);
        return;
    }
    /* Medium type must be 0; the device-specific byte (WP, DPOFUA) is
     * reserved in MODE SELECT and ignored, as is the mode data length. */
    if (p[ten ? 2 : 1] != 0) {
        scsi_fail_param(lun, cmd, ten ? 2 : 1, -1);
        return;
    }
    bool longlba = ten && (p[4] & 0x01);
    size_t bdlen = ten ? get_be16(p + 6) : p[3];
    if (bdlen != 0 && bdlen != (longlba ? 16u : 8u)) {
        scsi_fail_param(lun, cmd, ten ? 6 : 3, -1);
        return;
    }
    if (hlen + bdlen > len) {
        scsi_fail_short_data(lun, cmd, plen);
        return;
    }
    if (bdlen) {
        /* The block length cannot change; the block count is ignored. */
        size_t at = hlen + (longlba ? 12 : 5);
        uint32_t bl = longlba ? get_be32(p + at) : get_be24(p + at);
        if (bl != lun->block_size) {
            scsi_fail_param(lun, cmd, (unsigned)at, -1);
            return;
        }
    }

    /* Check every page against the current values and the changeable
     * mask before applying any. */
    bool wce = scsi_lun_write_cache(lun), dsense = scsi_lun_desc_sense(lun);
    bool swp = __atomic_load_n(&lun->swp, __ATOMIC_RELAXED);
    for (size_t off = hlen + bdlen; off < len;) {
        if (len - off < 2) {
            scsi_fail_short_data(lun, cmd, plen);
            return;
        }
        if (p[off] & 0x40) {        /* SPF: no subpages here */
            scsi_fail_param(lun, cmd, (unsigned)off, 6);
            return;
        }
        uint8_t code = p[off] & 0x3f;
        uint8_t cur[PAGE_MAX], chg[PAGE_MAX];
        size_t n = scsi_mode_page(lun, code, MPC_CURRENT, cur);
        if (!n) {
            scsi_fail_param(lun, cmd, (unsigned)off, 5);
            return;
        }
        scsi_mode_page(lun, code, MPC_CHANGEABLE, chg);
        if ((size_t)p[off + 1] + 2 != n) {
            scsi_fail_param(lun, cmd, (unsigned)off + 1, -1);
            return;
        }
        if (off + n > len) {
            scsi_fail_short_data(lun, cmd, plen);
            return;
        }
        for (size_t i = 2; i < n; i++) {
            uint8_t diff = (uint8_t)((p[off + i] ^ cur[i]) & ~chg[i]);
            if (diff) {
                scsi_fail_param(lun, cmd, (unsigned)(off + i), top_bit(diff));
                return;
            }
        }
        if (code == MPAGE_CACHING)
            wce = p[off + 2] & 0x04;
        if (code == MPAGE_CONTROL) {
            dsense = p[off + 2] & 0x04;
            swp = p[off + 4] & 0x08;
        }
        off += n;
    }
    if (!wce && scsi_lun_write_cache(lun)) {
        /* Turning the write cache off: what it held becomes durable now. */
        struct scuse_err err;
        err_clear(&err);
        int r = blk_flush(lun->bs, &err);
        if (r < 0) {
            scsi_fail_errno(lun, cmd, r, true, 0, &err);
            return;
        }
    }
    pthread_mutex_lock(&lun->lock);
    __atomic_store_n(&lun->wce, wce, __ATOMIC_RELAXED);
    __atomic_store_n(&lun->d_sense, dsense, __ATOMIC_RELAXED);
    __atomic_store_n(&lun->swp, swp, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&lun->lock);
    scsi_good_xfer(cmd, SCSI_DIR_TO_DEV, plen, len);
}
