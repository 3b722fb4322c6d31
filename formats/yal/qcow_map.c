/* qcow version 1's two-level table, for block status (qcow_map.h). The
 * header: cluster_bits at 32, l2_bits at 33, crypt_method at 36,
 * l1_table_offset at 40 (big-endian); an L2 entry is 0 (unallocated),
 * the host offset of the cluster, or with bit 63 a compressed cluster.
 * Anything odd leaves the image "all data": libqcow opened it and reads
 * it, this only says where the holes are. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "util/endian.h"
#include "yal/qcow_map.h"

#define L1_MAX (1u << 24)             /* entries; more: no status */

int qcow_map_load(int fd, uint64_t size, struct qcow_map *m)
{
    memset(m, 0, sizeof(*m));
    uint8_t h[48];
    if (file_pread_exact(fd, h, sizeof(h), 0) < 0 || file_size(fd, &m->fsize) < 0)
        return 1;
    m->fd = fd;
    m->cluster_bits = h[32];
    m->l2_bits = h[33];
    m->encrypted = h[36] | h[37] | h[38] | h[39];
    uint64_t l1_off = be64_at(h + 40);
    /* QEMU's limits: clusters of 512 B to 64 KiB, an L2 table of one cluster at most */
    if (m->cluster_bits < 9 || m->cluster_bits > 16 || m->l2_bits < 6 ||
        m->l2_bits > m->cluster_bits - 3)
        return 1;
    unsigned shift = m->cluster_bits + m->l2_bits;
    m->n_l1 = (size + (1ull << shift) - 1) >> shift;
    if (m->n_l1 == 0 || m->n_l1 > L1_MAX || l1_off > m->fsize || m->n_l1 * 8 > m->fsize - l1_off)
        return 1;
    uint8_t *raw = malloc(m->n_l1 * 8);
    m->l1 = malloc(m->n_l1 * sizeof(*m->l1));
    if (!raw || !m->l1) {
        free(raw);
        free(m->l1);
        m->l1 = NULL;
        return -ENOMEM;
    }
    if (file_pread_exact(fd, raw, m->n_l1 * 8, l1_off) < 0) {
        free(raw);
        free(m->l1);
        m->l1 = NULL;
        return 1;
    }
    for (uint64_t i = 0; i < m->n_l1; i++)
        m->l1[i] = be64_at(raw + 8 * i);
    free(raw);
    return 0;
}

void qcow_map_free(struct qcow_map *m)
{
    free(m->l1);
    m->l1 = NULL;
}

#define QM_BATCH 512            /* L2 entries read at once (4 KiB) */

enum kind { K_HOLE, K_DATA, K_COMPRESSED };

static enum kind kind_of(uint64_t e)
{
    return e == 0 ? K_HOLE : (e >> 63) ? K_COMPRESSED : K_DATA;
}

int qcow_map_status(const struct qcow_map *m, uint64_t off, uint64_t len, uint64_t *pnum,
                    struct blk_status *st)
{
    uint64_t cs = 1ull << m->cluster_bits;
    unsigned shift = m->cluster_bits + m->l2_bits;
    uint64_t l1i = off >> shift;
    uint64_t span = (1ull << shift) - (off & ((1ull << shift) - 1)); /* to the L2's end */
    if (span > len)
        span = len;
    uint64_t l2_off = m->l1[l1i];
    if (l2_off == 0) {
        *pnum = span;
        st->flags = 0;
        return 0;
    }
    /* Only the entries [off, off+span) needs, at most a batch of them (a
     * shorter answer is fine: the caller asks again). */
    size_t n2 = (size_t)1 << m->l2_bits;
    size_t i = (off >> m->cluster_bits) & (n2 - 1);
    uint64_t in = off & (cs - 1);
    uint64_t need = (in + span + cs - 1) >> m->cluster_bits;
    size_t cnt = need < n2 - i ? (size_t)need : n2 - i;
    if (cnt > QM_BATCH)
        cnt = QM_BATCH;
    uint8_t t[QM_BATCH * 8];
    int r = file_pread_exact(m->fd, t, cnt * 8, l2_off + 8 * i);
    if (r < 0)
        return r;
    uint64_t e = be64_at(t);
    enum kind k = kind_of(e);
    uint64_t n = cs - in, next = e + cs;
    for (size_t j = 1; n < span && j < cnt; j++) {
        uint64_t f = be64_at(t + 8 * j);
        if (kind_of(f) != k || (k == K_DATA && f != next))
            break;
        n += cs;
        next += cs;
    }
    *pnum = n < span ? n : span;
    st->offset = 0;
    switch (k) {
    case K_HOLE:
        st->flags = 0; /* as QEMU: not present, zeros (no backing file is served) */
        break;
    case K_COMPRESSED:
        st->flags = BLK_STATUS_ALLOCATED | BLK_STATUS_DATA | BLK_STATUS_COMPRESSED;
        break;
    case K_DATA:
        st->flags = BLK_STATUS_ALLOCATED | BLK_STATUS_DATA;
        if (!m->encrypted) {
            st->flags |= BLK_STATUS_OFFSET;
            st->offset = e + in;
        }
        break;
    }
    return 0;
}
