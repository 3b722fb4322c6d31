/* EXTENDED COPY (LID1) and RECEIVE COPY RESULTS (SPC-4 6.4, 6.18): the
 * copy manager copies blocks between LUNs it serves, named by their NAA
 * designator (VPD 83h) in identification CSCD descriptors (E4h), with
 * block-to-block segment descriptors (02h).
 *
 * Which LUNs a copy may reach (CVE-2020-28374 was LIO copying between
 * backstores of targets the initiator could not see): the LUN itself, and
 * the other LUNs of its scsi_target, the set one initiator sees behind one
 * target port of this process. A LUN without a target (each TCMU device:
 * the ring says nothing of the initiator or of what it may see) reaches
 * only itself. Nothing else in the process, and nothing of another scuse
 * process, is ever looked up.
 *
 * The copy runs as a barrier on the LUN that received it; the status of
 * the last copy whose LIST ID USAGE asked to hold it is kept for RECEIVE
 * COPY RESULTS (COPY STATUS); OPERATING PARAMETERS gives the limits. */
#include <stdlib.h>
#include <string.h>

#include "scsi/scsi_int.h"

#define XC_HDR 16
#define XC_TGT_LEN 32
#define XC_SEG_LEN 28
#define XC_MAX_TGT 8
#define XC_MAX_SEG 64
#define XC_MAX_LIST (XC_MAX_TGT * XC_TGT_LEN + XC_MAX_SEG * XC_SEG_LEN)
#define XC_TYPE_B2B 0x02
#define XC_TYPE_ID 0xe4
#define XC_CHUNK (1u << 20)

#define ASC_TOO_MANY_TARGET_DESC 0x2606
#define ASC_UNSUPPORTED_TARGET_DESC 0x2607
#define ASC_TOO_MANY_SEGMENT_DESC 0x2608
#define ASC_UNSUPPORTED_SEGMENT_DESC 0x2609
#define ASC_UNREACHABLE_COPY_TARGET 0x0804

/* The LUN an identification descriptor names, among those lun may reach
 * (its target held by the caller): a disk, not a removable LUN whose
 * medium may go. */
static struct scsi_lun *reach(struct scsi_lun *lun, const uint8_t *d)
{
    uint8_t code_set = d[4] & 0x0f, assoc = (d[5] >> 4) & 0x03, type = d[5] & 0x0f;
    uint8_t len = d[7];
    if (code_set != 0x01 || assoc != 0 || type != 0x03 || len > 20)
        return NULL;                /* only the LU's NAA designator names a LUN */
    struct scsi_lun *c = lun->target ? scsi_target_find_naa_held(lun->target, d + 8, len)
                         : lun->naa_len == len && memcmp(lun->naa, d + 8, len) == 0 ? lun
                                                                                     : NULL;
    return c && !c->removable ? c : NULL;
}

struct xc_seg {
    struct scsi_lun *src, *dst;
    uint64_t src_lba, dst_lba, n;
};

/* Parse and check the whole list before any block moves. Returns the
 * number of segments, or -1 when the command was failed. */
static int parse(struct scsi_lun *lun, struct scsi_cmd *cmd, const uint8_t *p, size_t plen,
                 struct xc_seg *segs)
{
    size_t tlen = get_be16(p + 2), slen = get_be32(p + 8), ilen = get_be32(p + 12);
    if (tlen + slen > XC_MAX_LIST) {
        scsi_fail_key(lun, cmd, SK_ILLEGAL_REQUEST, ASC_PARAMETER_LIST_LENGTH_ERROR);
        return -1;
    }
    if (XC_HDR + tlen + slen + ilen > plen) {
        scsi_fail_key(lun, cmd, SK_ILLEGAL_REQUEST, ASC_PARAMETER_LIST_LENGTH_ERROR);
        return -1;
    }
    if (ilen) {
        scsi_fail_param(lun, cmd, 12, -1);      /* no inline data (limit 0) */
        return -1;
    }
    if ((p[1] & 0x18) == 0x18 && p[0] != 0) {
        scsi_fail_param(lun, cmd, 0, -1);       /* LIST ID USAGE 11b: identifier 0 */
        return -1;
    }
    if (tlen % XC_TGT_LEN) {
        scsi_fail_param(lun, cmd, 2, -1);
        return -1;
    }
    unsigned ntgt = (unsigned)(tlen / XC_TGT_LEN);
    if (ntgt > XC_MAX_TGT) {
        scsi_fail_key(lun, cmd, SK_ILLEGAL_REQUEST, ASC_TOO_MANY_TARGET_DESC);
        return -1;
    }
    struct scsi_lun *tgt[XC_MAX_TGT];
    for (unsigned i = 0; i < ntgt; i++) {
        const uint8_t *d = p + XC_HDR + i * XC_TGT_LEN;
        unsigned at = (unsigned)(XC_HDR + i * XC_TGT_LEN);
        if (d[0] != XC_TYPE_ID) {
            scsi_fail_key(lun, cmd, SK_ILLEGAL_REQUEST, ASC_UNSUPPORTED_TARGET_DESC);
            return -1;
        }
        if ((d[1] & 0x1f) != 0) {               /* PERIPHERAL DEVICE TYPE: block */
            scsi_fail_param(lun, cmd, at + 1, 4);
            return -1;
        }
        tgt[i] = reach(lun, d);
        if (!tgt[i]) {
            scsi_fail_key(lun, cmd, SK_COPY_ABORTED, ASC_UNREACHABLE_COPY_TARGET);
            return -1;
        }
        if (get_be24(d + 29) != tgt[i]->block_size) {
            scsi_fail_param(lun, cmd, at + 29, -1);
            return -1;
        }
    }
    int nseg = 0;
    for (size_t off = XC_HDR + tlen; off < XC_HDR + tlen + slen; nseg++) {
        const uint8_t *d = p + off;
        unsigned at = (unsigned)off;
        if (off + 4 > XC_HDR + tlen + slen) {
            scsi_fail_param(lun, cmd, at, -1);
            return -1;
        }
        if (d[0] != XC_TYPE_B2B) {
            scsi_fail_key(lun, cmd, SK_ILLEGAL_REQUEST, ASC_UNSUPPORTED_SEGMENT_DESC);
            return -1;
        }
        if (nseg == XC_MAX_SEG) {
            scsi_fail_key(lun, cmd, SK_ILLEGAL_REQUEST, ASC_TOO_MANY_SEGMENT_DESC);
            return -1;
        }
        if (get_be16(d + 2) != XC_SEG_LEN - 4 || off + XC_SEG_LEN > XC_HDR + tlen + slen) {
            scsi_fail_param(lun, cmd, at + 2, -1);
            return -1;
        }
        unsigned si = get_be16(d + 4), di = get_be16(d + 6);
        /* A segment the copy manager cannot carry out (an index with no
         * descriptor, blocks past a capacity) aborts the copy: COPY
         * ABORTED, as SPC-4 reports errors in processing segments. */
        if (si >= ntgt || di >= ntgt) {
            /* The index names no copy target at all. */
            scsi_fail_key(lun, cmd, SK_COPY_ABORTED, ASC_UNREACHABLE_COPY_TARGET);
            return -1;
        }
        struct xc_seg *s = &segs[nseg];
        s->src = tgt[si];
        s->dst = tgt[di];
        s->n = get_be16(d + 10);
        s->src_lba = get_be64(d + 12);
        s->dst_lba = get_be64(d + 20);
        if (s->src->block_size != s->dst->block_size) {
            scsi_fail_param(lun, cmd, at + 4, -1);  /* blocks of two sizes: not copied */
            return -1;
        }
        if (s->src_lba >= s->src->blocks || s->n > s->src->blocks - s->src_lba ||
            s->dst_lba >= s->dst->blocks || s->n > s->dst->blocks - s->dst_lba) {
            /* No additional sense code: the one initiators (libiscsi)
             * accept with COPY ABORTED here. */
            scsi_fail_key(lun, cmd, SK_COPY_ABORTED, ASC_NO_ADDITIONAL_SENSE);
            return -1;
        }
        if (scsi_lun_wp(s->dst)) {
            scsi_fail_wp(lun, cmd);
            return -1;
        }
        off += XC_SEG_LEN;
    }
    return nseg;
}

SCSI_HANDLER(sbc_prep_xcopy)
{
    size_t plen = get_be32(cmd->cdb + 10);
    if (plen == 0) {
        scsi_good(cmd, 0, 0);
        return;
    }
    if (plen < XC_HDR) {
        scsi_fail_key(lun, cmd, SK_ILLEGAL_REQUEST, ASC_PARAMETER_LIST_LENGTH_ERROR);
        return;
    }
    if (scsi_data_len(cmd, SCSI_DIR_TO_DEV) < plen) {
        scsi_fail_short_data(lun, cmd, plen);
        return;
    }
    cmd->lba = 0;
    cmd->nblocks = lun->blocks;
    cmd->access = SCSI_ACCESS_BARRIER;
}

static int copy_seg(const struct xc_seg *s, uint8_t *buf, uint64_t *done_bytes,
                    struct scuse_err *err)
{
    uint64_t bytes = s->n << s->src->shift;
    for (uint64_t done = 0; done < bytes;) {
        size_t len = bytes - done < XC_CHUNK ? (size_t)(bytes - done) : XC_CHUNK;
        int r = blk_pread(s->src->bs, (s->src_lba << s->src->shift) + done, buf, len, err);
        if (r == 0)
            r = blk_pwrite(s->dst->bs, (s->dst_lba << s->dst->shift) + done, buf, len,
                           sbc_write_flags(s->dst, false), err);
        if (r < 0)
            return r;
        done += len;
        *done_bytes += len;
    }
    return 0;
}

SCSI_HANDLER(sbc_exec_xcopy)
{
    size_t plen = get_be32(cmd->cdb + 10);
    uint8_t *p = malloc(plen);
    struct xc_seg *segs = malloc(XC_MAX_SEG * sizeof(*segs));
    uint8_t *buf = malloc(XC_CHUNK);
    if (!p || !segs || !buf) {
        free(p), free(segs), free(buf);
        scsi_fail_key(lun, cmd, SK_HARDWARE_ERROR, ASC_INTERNAL_TARGET_FAILURE);
        return;
    }
    iov_view_to_buf(&cmd->data, 0, p, plen);
    /* The other LUNs stay for the whole copy: none is removed under it. */
    const struct scsi_target *t = lun->target;
    if (t)
        scsi_target_hold(t);
    int nseg = parse(lun, cmd, p, plen, segs);
    uint64_t bytes = 0;
    int done = 0, r = 0;
    struct scuse_err err;
    err_clear(&err);
    for (; nseg > 0 && done < nseg && r == 0; done++)
        r = copy_seg(&segs[done], buf, &bytes, &err);
    if (t)
        scsi_target_release(t);
    if (nseg >= 0 && (p[1] & 0x18) == 0) {
        /* LIST ID USAGE 00b: the status is held for RECEIVE COPY RESULTS. */
        pthread_mutex_lock(&lun->lock);
        lun->xcopy.held = true;
        lun->xcopy.list_id = p[0];
        lun->xcopy.failed = r < 0;
        lun->xcopy.segments = (uint16_t)(r < 0 ? done - 1 : done);
        lun->xcopy.bytes = bytes;
        pthread_mutex_unlock(&lun->lock);
    }
    free(p), free(segs), free(buf);
    if (nseg < 0)
        return;
    if (r < 0) {
        struct scsi_sense s;
        scsi_errno_sense(r, true, &s);
        s.key = SK_COPY_ABORTED;
        scsi_fail(lun, cmd, &s);
        return;
    }
    scsi_good_xfer(cmd, SCSI_DIR_TO_DEV, plen, plen);
}

#define SA_COPY_STATUS 0x00
#define SA_OPERATING_PARAMETERS 0x03

SCSI_HANDLER(sbc_prep_receive_copy_results)
{
    unsigned sa = cmd->cdb[1] & 0x1f;
    size_t alloc = get_be32(cmd->cdb + 10);
    uint8_t b[64];
    memset(b, 0, sizeof(b));
    if (sa == SA_OPERATING_PARAMETERS) {
        if (cmd->cdb[2] != 0) {
            scsi_fail_cdb(lun, cmd, 2, -1);
            return;
        }
        b[4] = 0x01;                            /* SNLID: LIST ID USAGE 11b is supported */
        put_be16(b + 8, XC_MAX_TGT);
        put_be16(b + 10, XC_MAX_SEG);
        put_be32(b + 12, XC_MAX_LIST);
        put_be32(b + 16, 0xffffu << lun->shift);    /* a segment's most bytes */
        /* inline data, held data, stream transfer: 0 (none) */
        put_be16(b + 36, 1);                    /* TOTAL CONCURRENT COPIES */
        b[38] = 1;                              /* MAXIMUM CONCURRENT COPIES */
        b[39] = (uint8_t)lun->shift;            /* DATA SEGMENT GRANULARITY (log2) */
        b[43] = 2;                              /* the descriptor types implemented: */
        b[44] = XC_TYPE_B2B;
        b[45] = XC_TYPE_ID;
        put_be32(b, 46 - 4);
        scsi_reply(cmd, b, 46, alloc);
        return;
    }
    /* COPY STATUS of the list identifier: held only after a copy asked. */
    pthread_mutex_lock(&lun->lock);
    bool held = lun->xcopy.held && lun->xcopy.list_id == cmd->cdb[2];
    bool failed = lun->xcopy.failed;
    uint16_t segs = lun->xcopy.segments;
    uint64_t bytes = lun->xcopy.bytes;
    pthread_mutex_unlock(&lun->lock);
    if (!held) {
        scsi_fail_cdb(lun, cmd, 2, -1);
        return;
    }
    put_be32(b, 8);
    b[4] = failed ? 0x02 : 0x01;        /* COPY MANAGER STATUS: done with/without errors */
    put_be16(b + 5, segs);
    /* TRANSFER COUNT UNITS 00h: the count is in bytes. */
    put_be32(b + 8, (uint32_t)(bytes > 0xffffffffu ? 0xffffffffu : bytes));
    scsi_reply(cmd, b, 12, alloc);
}
