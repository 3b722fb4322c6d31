/* The test front-end's virtio-scsi requests (see front.h): a request
 * laid out over descriptors in any split, its response and data read
 * back. */
#define _GNU_SOURCE
#include <endian.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <linux/virtio_ring.h>

#include "front.h"

/* ---- virtio-scsi ---- */

void f_lun(uint8_t lun[8], unsigned target, unsigned id)
{
    memset(lun, 0, 8);
    lun[0] = 1;
    lun[1] = (uint8_t)target;
    lun[2] = (uint8_t)(0x40 | (id >> 8));
    lun[3] = (uint8_t)id;
}

/* Cut len bytes by the split list into pieces, each in its own guest
 * buffer at an odd address, filled from src (or with poison). */
static unsigned cut(struct front *f, const size_t *split, size_t len, const uint8_t *src,
                    struct f_piece *out)
{
    unsigned n = 0;
    size_t done = 0;
    while (done < len) {
        size_t want = split && split[n] ? split[n] : len - done;
        if (want > len - done)
            want = len - done;
        assert_true(n < 64);
        uint64_t gpa = f_alloc(f, want + 8, 8) + 3;     /* odd: nothing aligned */
        out[n].gpa = gpa;
        out[n].len = want;
        if (src)
            memcpy(f_ptr(f, gpa), src + done, want);
        else
            memset(f_ptr(f, gpa), 0xcc, want);
        done += want;
        n++;
    }
    return n;
}

void f_scsi_post(struct front *f, unsigned vq, struct f_scsi *r, bool kick)
{
    size_t req_len = r->req_len ? r->req_len : sizeof(struct virtio_scsi_cmd_req);
    size_t resp_len = r->resp_len ? r->resp_len : sizeof(struct virtio_scsi_cmd_resp);
    size_t rlen = req_len + r->dout_len, wlen = resp_len + r->din_len;
    uint8_t *rbuf = calloc(1, rlen + sizeof(struct virtio_scsi_cmd_req));
    struct virtio_scsi_cmd_req h;
    memset(&h, 0, sizeof(h));
    memcpy(h.lun, r->lun, 8);
    h.tag = htole64(r->tag);
    h.task_attr = r->attr;
    memcpy(h.cdb, r->cdb, sizeof(h.cdb));
    memcpy(rbuf, &h, sizeof(h) < req_len ? sizeof(h) : req_len);
    if (r->dout_len)
        memcpy(rbuf + req_len, r->dout, r->dout_len);
    r->nr = cut(f, r->rsplit, rlen, rbuf, r->r);
    r->nw = cut(f, r->wsplit, wlen, NULL, r->w);
    free(rbuf);

    unsigned n = r->nr + r->nw;
    struct vring_desc *table;
    uint16_t first;
    r->ndescs = 0;
    if (r->indirect) {
        uint64_t tgpa = f_alloc(f, 16 * n, 16);
        table = f_ptr(f, tgpa);
        first = f_desc_get(f, vq);
        r->descs[r->ndescs++] = first;
        struct vring_desc *d = &f_desc(f, vq)[first];
        d->addr = htole64(tgpa);
        d->len = htole32(16 * n);
        d->flags = htole16(VRING_DESC_F_INDIRECT);
        d->next = 0;
        for (unsigned k = 0; k < n; k++) {
            struct f_piece *p = k < r->nr ? &r->r[k] : &r->w[k - r->nr];
            /* The walk starts at entry 0; the others are in reverse
             * order, so next links must be followed, not assumed. */
            unsigned slot = k ? n - k : 0, next = n - (k + 1);
            table[slot].addr = htole64(p->gpa);
            table[slot].len = htole32((uint32_t)p->len);
            table[slot].flags = htole16((k >= r->nr ? VRING_DESC_F_WRITE : 0) |
                                        (k + 1 < n ? VRING_DESC_F_NEXT : 0));
            table[slot].next = htole16(k + 1 < n ? (uint16_t)next : 0);
        }
    } else {
        uint16_t idx[130];
        assert_true(n <= 130);
        for (unsigned k = 0; k < n; k++)
            r->descs[r->ndescs++] = idx[k] = f_desc_get(f, vq);
        for (unsigned k = 0; k < n; k++) {
            struct f_piece *p = k < r->nr ? &r->r[k] : &r->w[k - r->nr];
            struct vring_desc *d = &f_desc(f, vq)[idx[k]];
            d->addr = htole64(p->gpa);
            d->len = htole32((uint32_t)p->len);
            d->flags = htole16((k >= r->nr ? VRING_DESC_F_WRITE : 0) |
                               (k + 1 < n ? VRING_DESC_F_NEXT : 0));
            d->next = htole16(k + 1 < n ? idx[k + 1] : 0);
        }
        first = idx[0];
    }
    r->head = first;
    f_publish(f, vq, first, kick);
}

static void gather(struct front *f, const struct f_piece *p, unsigned n, size_t off, void *dst,
                   size_t len)
{
    uint8_t *o = dst;
    size_t pos = 0;
    for (unsigned k = 0; k < n && len; k++) {
        size_t end = pos + p[k].len;
        if (off < end) {
            size_t from = off - pos;
            size_t take = p[k].len - from < len ? p[k].len - from : len;
            memcpy(o, (uint8_t *)f_ptr(f, p[k].gpa) + from, take);
            o += take;
            off += take;
            len -= take;
        }
        pos = end;
    }
}

void f_scsi_finish(struct front *f, unsigned vq, struct f_scsi *r, uint32_t used_len)
{
    size_t resp_len = r->resp_len ? r->resp_len : sizeof(struct virtio_scsi_cmd_resp);
    r->used_len = used_len;
    memset(&r->resp, 0xcc, sizeof(r->resp));
    gather(f, r->w, r->nw, 0, &r->resp,
           resp_len < sizeof(r->resp) ? resp_len : sizeof(r->resp));
    free(r->din);
    r->din = malloc(r->din_len ? r->din_len : 1);
    gather(f, r->w, r->nw, resp_len, r->din, r->din_len);
    for (unsigned k = 0; k < r->ndescs; k++)
        f_desc_put(f, vq, r->descs[k]);
    r->ndescs = 0;
}

void f_scsi_run(struct front *f, unsigned vq, struct f_scsi *r)
{
    f_scsi_post(f, vq, r, true);
    struct f_used u;
    f_used_wait(f, vq, &u, 1);
    if (u.id != r->head)
        fail_msg("vq %u: used id %u, expected head %u", vq, u.id, r->head);
    f_scsi_finish(f, vq, r, u.len);
}

void f_scsi_free(struct f_scsi *r)
{
    free(r->din);
    r->din = NULL;
}

void f_scsi_reset(struct f_scsi *r)
{
    free(r->din);
    memset(r, 0, sizeof(*r));
}

void f_sense(const struct f_scsi *r, int *key, int *asc, int *ascq)
{
    const uint8_t *s = r->resp.sense;
    *key = *asc = *ascq = -1;
    uint32_t len = le32toh(r->resp.sense_len);
    if (len < 4)
        return;
    if ((s[0] & 0x7f) >= 0x72) {
        *key = s[1] & 0xf, *asc = s[2], *ascq = s[3];
    } else if (len >= 14) {
        *key = s[2] & 0xf, *asc = s[12], *ascq = s[13];
    }
}

void f_cmd(struct front *f, unsigned vq, unsigned lun, const uint8_t *cdb, size_t cdb_len,
           const void *dout, size_t dout_len, size_t din_len, struct f_scsi *r)
{
    f_scsi_reset(r);
    f_lun(r->lun, 0, lun);
    memcpy(r->cdb, cdb, cdb_len);
    r->dout = dout;
    r->dout_len = dout_len;
    r->din_len = din_len;
    r->tag = (uint64_t)f_now_ms();
    f_scsi_run(f, vq, r);
}
