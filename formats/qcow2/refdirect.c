/* Refcounts read and written straight from the file, for check/repair and
 * the compressed writer: no cache, so the caller must be the only one
 * doing I/O on the image. New refcount blocks and tables go after the end
 * of the file and describe themselves; a moved table is durable before the
 * header points at it, and the old one is freed only afterwards, so a
 * crash leaves either structure whole (at worst leaking clusters). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "qcow2/check.h"

uint64_t qcow2_rd_entry(const uint8_t *blk, uint32_t order, uint64_t i)
{
    switch (order) {
    case 0: return blk[i >> 3] >> (i & 7) & 1;
    case 1: return blk[i >> 2] >> ((i & 3) * 2) & 3;
    case 2: return blk[i >> 1] >> ((i & 1) * 4) & 15;
    case 3: return blk[i];
    case 4: return qcow2_be16(blk + 2 * i);
    case 5: return qcow2_be32(blk + 4 * i);
    default: return qcow2_be64(blk + 8 * i);
    }
}

void qcow2_rd_set_entry(uint8_t *blk, uint32_t order, uint64_t i, uint64_t v)
{
    if (order < 3) {
        unsigned bits = 1u << order, per = 8u >> order;
        unsigned shift = (unsigned)(i % per) * bits, mask = ((1u << bits) - 1) << shift;
        uint8_t *b = &blk[i / per];
        *b = (uint8_t)((*b & ~mask) | (((unsigned)v << shift) & mask));
        return;
    }
    switch (order) {
    case 3: blk[i] = (uint8_t)v; break;
    case 4: qcow2_wbe16(blk + 2 * i, (uint16_t)v); break;
    case 5: qcow2_wbe32(blk + 4 * i, (uint32_t)v); break;
    default: qcow2_wbe64(blk + 8 * i, v); break;
    }
}

int qcow2_pread_zf(int fd, void *buf, size_t len, uint64_t off)
{
    struct iovec one;
    struct iov_view v = iov_view_of_buf(&one, buf, len);
    return file_preadv_view(fd, &v, off);
}

int qcow2_rd_open(struct qcow2_rd *rd, const struct qcow2_state *s)
{
    memset(rd, 0, sizeof(*rd));
    rd->fd = s->fd;
    rd->cluster_bits = s->cluster_bits;
    rd->cluster_size = s->cluster_size;
    rd->order = s->refcount_order;
    rd->epb_bits = s->cluster_bits + 3 - s->refcount_order;
    rd->max = rd->order == 6 ? UINT64_MAX : (1ull << (1u << rd->order)) - 1;
    rd->table_offset = s->refcount_table_offset;
    rd->table_clusters = s->refcount_table_clusters;
    rd->table_entries = (uint64_t)s->refcount_table_clusters << (s->cluster_bits - 3);
    int r = file_size(rd->fd, &rd->file_size);
    if (r < 0)
        return r;
    rd->table = malloc(rd->table_entries * 8);
    if (!rd->table)
        return -ENOMEM;
    r = qcow2_pread_zf(rd->fd, rd->table, rd->table_entries * 8, rd->table_offset);
    if (r < 0) {
        qcow2_rd_close(rd);
        return r;
    }
    for (uint64_t i = 0; i < rd->table_entries; i++)
        rd->table[i] = qcow2_be64((const uint8_t *)&rd->table[i]);
    return 0;
}

void qcow2_rd_close(struct qcow2_rd *rd)
{
    free(rd->table);
    rd->table = NULL;
}

static bool missing(const struct qcow2_rd *rd, uint64_t t)
{
    return t >= rd->table_entries || !(rd->table[t] & QCOW2_REFT_OFFSET_MASK);
}

int qcow2_rd_read_block(struct qcow2_rd *rd, uint64_t t, uint8_t *buf)
{
    if (missing(rd, t)) {
        memset(buf, 0, rd->cluster_size);
        return 0;
    }
    uint64_t off = rd->table[t] & QCOW2_REFT_OFFSET_MASK;
    if (off & (rd->cluster_size - 1))
        return -EIO;
    return qcow2_pread_zf(rd->fd, buf, rd->cluster_size, off);
}

/* Where cluster k's entry lives: file offset of its first byte, the
 * number of bytes holding it and its index within those bytes. */
static int locate(const struct qcow2_rd *rd, uint64_t k, uint64_t *pos, size_t *len,
                  uint64_t *idx)
{
    uint64_t t = k >> rd->epb_bits, i = k & ((1ull << rd->epb_bits) - 1);
    uint64_t off = rd->table[t] & QCOW2_REFT_OFFSET_MASK;
    if (off & (rd->cluster_size - 1))
        return -EIO;
    *pos = off + ((i << rd->order) >> 3);
    *len = rd->order >= 3 ? 1u << (rd->order - 3) : 1;
    *idx = rd->order >= 3 ? 0 : i & ((8u >> rd->order) - 1);
    return 0;
}

int qcow2_rd_get(struct qcow2_rd *rd, uint64_t k, uint64_t *v)
{
    *v = 0;
    if (missing(rd, k >> rd->epb_bits))
        return 0;
    uint64_t pos, idx;
    size_t len;
    uint8_t b[8];
    int r = locate(rd, k, &pos, &len, &idx);
    if (r == 0)
        r = qcow2_pread_zf(rd->fd, b, len, pos);
    if (r == 0)
        *v = qcow2_rd_entry(b, rd->order, idx);
    return r;
}

/* Set k's entry in an existing block. */
static int set_on_disk(struct qcow2_rd *rd, uint64_t k, uint64_t v)
{
    uint64_t pos, idx;
    size_t len;
    uint8_t b[8];
    int r = locate(rd, k, &pos, &len, &idx);
    if (r == 0 && rd->order < 3)
        r = qcow2_pread_zf(rd->fd, b, 1, pos);
    if (r < 0)
        return r;
    qcow2_rd_set_entry(b, rd->order, idx, v);
    return file_pwrite_exact(rd->fd, b, len, pos);
}

int qcow2_rd_set(struct qcow2_rd *rd, struct qcow2_state *s, uint64_t k, uint64_t v)
{
    if (v > rd->max)
        return -ERANGE;
    if (missing(rd, k >> rd->epb_bits)) {
        int r = qcow2_rd_cover(rd, s, k + 1);
        if (r < 0)
            return r;
    }
    return set_on_disk(rd, k, v);
}

int qcow2_rd_switch_table(struct qcow2_rd *rd, struct qcow2_state *s, uint64_t off,
                          uint32_t clusters)
{
    uint8_t h[12];
    qcow2_wbe64(h, off);
    qcow2_wbe32(h + 8, clusters);
    int r = file_sync(rd->fd);
    if (r == 0)
        r = file_pwrite_exact(rd->fd, h, sizeof(h), 48);
    if (r == 0)
        r = file_sync(rd->fd);
    if (r == 0) {
        s->refcount_table_offset = off;
        s->refcount_table_clusters = clusters;
    }
    return r;
}

static uint64_t div_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* Blocks missing for clusters [a, b) */
static uint64_t count_missing(const struct qcow2_rd *rd, uint64_t a, uint64_t b, uint64_t skip_lo,
                              uint64_t skip_hi)
{
    uint64_t n = 0;
    if (a >= b)
        return 0;
    for (uint64_t t = a >> rd->epb_bits; t <= (b - 1) >> rd->epb_bits; t++)
        if (missing(rd, t) && (t < skip_lo || t >= skip_hi))
            n++;
    return n;
}

int qcow2_rd_cover(struct qcow2_rd *rd, struct qcow2_state *s, uint64_t upto)
{
    uint64_t cs = rd->cluster_size, epb = 1ull << rd->epb_bits;
    uint64_t end = div_up(rd->file_size, cs);
    uint64_t want_t = (upto - 1) >> rd->epb_bits;
    uint64_t nb = 0, nt = 0;
    for (;;) {
        /* Blocks for the target and for every new cluster; a new table
         * when some needed index lies past the current one. */
        uint64_t last = end + nb + nt; /* one past the new clusters */
        uint64_t cnt = missing(rd, want_t) ? 1 : 0;
        cnt += count_missing(rd, end, last, want_t, want_t + 1);
        uint64_t top = want_t > (last - 1) / epb ? want_t : (last - 1) / epb;
        uint64_t tcl = 0;
        if (top >= rd->table_entries) {
            tcl = div_up((top + 1) * 8, cs);
            if (tcl < 2ull * rd->table_clusters)
                tcl = 2ull * rd->table_clusters;
            if (tcl > QCOW2_MAX_REFTABLE_BYTES / cs)
                tcl = QCOW2_MAX_REFTABLE_BYTES / cs;
            if (tcl * cs / 8 <= top)
                return -EFBIG;
        }
        if (cnt == nb && tcl == nt)
            break;
        nb = cnt;
        nt = tcl;
    }
    if (nb == 0 && nt == 0)
        return 0;
    uint64_t tentries = nt ? nt * cs / 8 : rd->table_entries;
    uint64_t *table = calloc(tentries, 8);
    uint8_t *blocks = calloc(nb ? nb : 1, cs);
    uint64_t *bidx = calloc(nb ? nb : 1, 8); /* reftable index of each new block */
    int r = (!table || !blocks || !bidx) ? -ENOMEM : 0;
    if (r == 0) {
        memcpy(table, rd->table, rd->table_entries * 8);
        uint64_t last = end + nb + nt, j = 0;
        for (uint64_t t = 0; t < tentries && j < nb; t++) {
            bool needed = t == want_t || (t >= end / epb && t <= (last - 1) / epb);
            if (needed && !(table[t] & QCOW2_REFT_OFFSET_MASK)) {
                bidx[j] = t;
                table[t] = (end + j) * cs;
                j++;
            }
        }
        /* Every new cluster has refcount 1, in a new block or an old one. */
        for (uint64_t c = end; c < last && r == 0; c++) {
            uint64_t t = c >> rd->epb_bits, k;
            for (k = 0; k < nb && bidx[k] != t; k++)
                ;
            if (k < nb)
                qcow2_rd_set_entry(blocks + k * cs, rd->order, c & (epb - 1), 1);
            else
                r = set_on_disk(rd, c, 1);
        }
        for (uint64_t k = 0; k < nb && r == 0; k++)
            r = file_pwrite_exact(rd->fd, blocks + k * cs, cs, (end + k) * cs);
    }
    if (r == 0 && nt) {
        uint8_t *raw = (uint8_t *)table;
        for (uint64_t t = 0; t < tentries; t++)
            qcow2_wbe64(raw + 8 * t, table[t]);
        r = file_pwrite_exact(rd->fd, raw, tentries * 8, (end + nb) * cs);
        for (uint64_t t = 0; t < tentries; t++)
            table[t] = qcow2_be64(raw + 8 * t);
        uint64_t old_off = rd->table_offset, old_cl = rd->table_clusters;
        if (r == 0)
            r = qcow2_rd_switch_table(rd, s, (end + nb) * cs, (uint32_t)nt);
        if (r == 0) {
            free(rd->table);
            rd->table = table;
            table = NULL;
            rd->table_offset = (end + nb) * cs;
            rd->table_clusters = (uint32_t)nt;
            rd->table_entries = tentries;
            for (uint64_t c = 0; c < old_cl && r == 0; c++)
                r = set_on_disk(rd, (old_off >> rd->cluster_bits) + c, 0);
        }
    } else if (r == 0 && nb) {
        r = file_sync(rd->fd);
        for (uint64_t k = 0; k < nb && r == 0; k++) {
            uint8_t e[8];
            qcow2_wbe64(e, table[bidx[k]]);
            r = file_pwrite_exact(rd->fd, e, 8, rd->table_offset + 8 * bidx[k]);
            rd->table[bidx[k]] = table[bidx[k]];
        }
    }
    if (r == 0 && (nb || nt)) {
        rd->file_size = (end + nb + nt) * cs;
        s->file_size = rd->file_size;
    }
    free(table);
    free(blocks);
    free(bidx);
    return r;
}

int qcow2_rd_rebuild(struct qcow2_rd *rd, struct qcow2_state *s, const uint32_t *want,
                     uint64_t n)
{
    uint64_t cs = rd->cluster_size, epb = 1ull << rd->epb_bits;
    uint64_t end = div_up(rd->file_size, cs);
    if (end < n)
        end = n;
    uint64_t nb = 0, nt = 0;
    for (;;) {
        uint64_t nb2 = div_up(end + nb + nt, epb), nt2 = div_up(nb2 * 8, cs);
        if (nb2 == nb && nt2 == nt)
            break;
        nb = nb2;
        nt = nt2;
    }
    if (nt > QCOW2_MAX_REFTABLE_BYTES / cs)
        return -EFBIG;
    uint64_t total = end + nb + nt;
    uint8_t *blk = malloc(cs);
    uint8_t *table = calloc(nt, cs);
    int r = (!blk || !table) ? -ENOMEM : 0;
    bool overflow = false;
    for (uint64_t t = 0; t < nb && r == 0; t++) {
        memset(blk, 0, cs);
        for (uint64_t i = 0; i < epb; i++) {
            uint64_t c = t * epb + i, v = c < n ? want[c] : 0;
            if (c >= end && c < total)
                v = 1;
            if (v > rd->max) {
                v = rd->max;
                overflow = true;
            }
            qcow2_rd_set_entry(blk, rd->order, i, v);
        }
        qcow2_wbe64(table + 8 * t, (end + t) * cs);
        r = file_pwrite_exact(rd->fd, blk, cs, (end + t) * cs);
    }
    if (r == 0)
        r = file_pwrite_exact(rd->fd, table, nt * cs, (end + nb) * cs);
    if (r == 0)
        r = qcow2_rd_switch_table(rd, s, (end + nb) * cs, (uint32_t)nt);
    if (r == 0) {
        free(rd->table);
        rd->table = (uint64_t *)table;
        table = NULL;
        rd->table_entries = nt * cs / 8;
        for (uint64_t t = 0; t < rd->table_entries; t++)
            rd->table[t] = qcow2_be64((const uint8_t *)&rd->table[t]);
        rd->table_offset = (end + nb) * cs;
        rd->table_clusters = (uint32_t)nt;
        rd->file_size = total * cs;
        s->file_size = rd->file_size;
    }
    free(blk);
    free(table);
    return r < 0 ? r : overflow ? -ERANGE : 0;
}
