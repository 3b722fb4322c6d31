/* A hostile or broken front-end and guest against `scuse serve`: every
 * case ends in a refused message (REPLY_ACK status 1, an empty GET
 * reply), a request answered with length 0 or FAILURE, a ring marked
 * broken (error eventfd, log line), or a closed connection; never a
 * crash. After each case the server still serves, and the next
 * connection works. Run under ASan by `./build.sh asan`. */
#define _GNU_SOURCE
#include <endian.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "front.h"
#include "testutil.h"

#define FEATURES                                                                     \
    ((1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES) |        \
     (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_RING_F_INDIRECT_DESC) |      \
     (1ull << VIRTIO_SCSI_F_CHANGE))
#define RESP_LEN sizeof(struct virtio_scsi_cmd_resp)

static struct f_server srv;
static const uint8_t TUR[6] = { 0 };

/* A connected, initialised device with memory and vqs 0..nvqs-1 running. */
static struct front *up(unsigned nvqs, uint16_t num)
{
    struct front *f = calloc(1, sizeof(*f));
    f_connect(f, &srv);
    f_init_device(f, nvqs);
    f_set_features(f, FEATURES);
    f_add_memory(f);
    for (unsigned i = 0; i < nvqs; i++) {
        f_vq_setup(f, i, num, 0, true);
        f_vq_enable(f, i, true);
    }
    return f;
}

static void down(struct front *f)
{
    f_disconnect(f);
    free(f);
}

/* The device still answers: a TEST UNIT READY on request queue vq. */
static void alive_on(struct front *f, unsigned vq)
{
    struct f_scsi r = { 0 };
    f_cmd(f, vq, 0, TUR, 6, NULL, 0, 0, &r);
    assert_int_equal(r.resp.response, VIRTIO_SCSI_S_OK);
    f_scsi_free(&r);
}

static void alive(struct front *f) { alive_on(f, 2); }

static uint64_t state_ack(struct front *f, uint32_t req, unsigned index, unsigned num)
{
    struct vhost_vring_state st = { index, num };
    return f_ack(f, req, &st, sizeof(st), NULL, 0);
}

/* Post a chain of raw descriptors on vq (d[0] the head, linked in order
 * unless their NEXT flag is cleared by the caller) and return its used
 * length. */
static uint32_t raw_chain(struct front *f, unsigned vq, const struct vring_desc *d, unsigned n)
{
    uint16_t idx[64];
    if (n == 0 || n > 64) {
        fail_msg("raw_chain: a list of %u descriptors (1 to 64)", n);
        return 0;
    }
    for (unsigned k = 0; k < n; k++)
        idx[k] = f_desc_get(f, vq);
    for (unsigned k = 0; k < n; k++) {
        struct vring_desc x = d[k];
        if (le16toh(x.flags) & VRING_DESC_F_NEXT) {
            /* A link names a member of this list (the test's own slip
             * otherwise): idx[] holds ring slots for those only. */
            unsigned to = x.next == 0xffff ? k + 1 : le16toh(x.next);
            if (to >= n) {
                fail_msg("raw_chain: descriptor %u links to %u of a list of %u", k, to, n);
                return 0;
            }
            x.next = htole16(idx[to]);
        }
        f_desc(f, vq)[idx[k]] = x;
    }
    f_publish(f, vq, idx[0], true);
    struct f_used u;
    f_used_wait(f, vq, &u, 1);
    assert_int_equal(u.id, idx[0]);
    for (unsigned k = 0; k < n; k++)
        f_desc_put(f, vq, idx[k]);
    return u.len;
}

static struct vring_desc desc(uint64_t gpa, uint32_t len, uint16_t flags, uint16_t next)
{
    return (struct vring_desc){ htole64(gpa), htole32(len), htole16(flags), htole16(next) };
}

/* A valid request header for LUN 0 (TEST UNIT READY) in guest RAM. */
static uint64_t req_header(struct front *f)
{
    struct virtio_scsi_cmd_req h;
    memset(&h, 0, sizeof(h));
    f_lun(h.lun, 0, 0);
    uint64_t g = f_alloc(f, sizeof(h), 8);
    memcpy(f_ptr(f, g), &h, sizeof(h));
    return g;
}

#define NX 0xffff /* raw_chain: link to the next descriptor of the list */

static void test_bad_messages(void **state)
{
    (void)state;
    struct front *f = up(3, 64);
    alive(f);
    /* Sizes that do not fit the request. */
    uint32_t four = 0;
    assert_int_equal(f_ack(f, VHU_SET_VRING_NUM, &four, 4, NULL, 0), 1);
    uint8_t sixteen[16] = { 0 };
    assert_int_equal(f_ack(f, VHU_SET_FEATURES, sixteen, 16, NULL, 0), 1);
    assert_int_equal(f_send(f, VHU_GET_VRING_BASE, VHU_VERSION, NULL, 0, NULL, 0), 0);
    f_reply(f, VHU_GET_VRING_BASE, NULL, 0);            /* refused: empty */
    struct vhu_mem_table mt = { .nregions = 9 };
    int fds[8] = { f->memfd, f->memfd, f->memfd, f->memfd, f->memfd, f->memfd, f->memfd,
                   f->memfd };
    assert_int_equal(f_ack(f, VHU_SET_MEM_TABLE, &mt, sizeof(mt), fds, 8), 1);
    /* Descriptor counts. */
    struct vhu_mem_reg reg = { 0, { 0x40000000, 4096, F_UVA_BASE + 0x40000000, 0 } };
    assert_int_equal(f_ack(f, VHU_ADD_MEM_REG, &reg, sizeof(reg), NULL, 0), 1);
    uint64_t v = 2;
    assert_int_equal(f_ack(f, VHU_SET_VRING_KICK, &v, 8, fds, 2), 1);
    assert_int_equal(f_ack(f, VHU_SET_VRING_CALL, &v, 8, NULL, 0), 1);
    v = 2 | VHU_VRING_NOFD;
    assert_int_equal(f_ack(f, VHU_SET_VRING_ERR, &v, 8, fds, 1), 1);
    assert_int_equal(f_ack(f, VHU_SET_OWNER, NULL, 0, fds, 1), 1);
    mt.nregions = 2;
    assert_int_equal(f_ack(f, VHU_SET_MEM_TABLE, &mt, 8 + 2 * 32, fds, 1), 1);
    /* vq indexes out of range. */
    assert_int_equal(state_ack(f, VHU_SET_VRING_NUM, 70, 64), 1);
    assert_int_equal(state_ack(f, VHU_SET_VRING_ENABLE, 64, 1), 1);
    v = 99;
    assert_int_equal(f_ack(f, VHU_SET_VRING_KICK, &v, 8, &f->vq[0].kick, 1), 1);
    struct vhost_vring_state st = { 200, 0 };
    assert_int_equal(f_send(f, VHU_GET_VRING_BASE, VHU_VERSION, &st, sizeof(st), NULL, 0), 0);
    f_reply(f, VHU_GET_VRING_BASE, NULL, 0);
    v = 5 | (1ull << 20);                                 /* unknown bits */
    assert_int_equal(f_ack(f, VHU_SET_VRING_CALL, &v, 8, &f->vq[0].call, 1), 1);
    /* Ring sizes, bases, enable values, a running ring. */
    assert_int_equal(state_ack(f, VHU_SET_VRING_NUM, 5, 100), 1);
    assert_int_equal(state_ack(f, VHU_SET_VRING_NUM, 5, 0), 1);
    assert_int_equal(state_ack(f, VHU_SET_VRING_NUM, 5, 65536), 1);
    assert_int_equal(state_ack(f, VHU_SET_VRING_NUM, 5, 32768), 0);
    assert_int_equal(state_ack(f, VHU_SET_VRING_BASE, 5, 0x10000), 1);
    assert_int_equal(state_ack(f, VHU_SET_VRING_ENABLE, 5, 2), 1);
    assert_int_equal(state_ack(f, VHU_SET_VRING_NUM, 2, 128), 1);   /* running */
    assert_int_equal(state_ack(f, VHU_SET_VRING_BASE, 2, 0), 1);
    /* Ring addresses misaligned, outside memory, changed while running. */
    struct vhost_vring_addr a = { .index = 5, .desc_user_addr = F_UVA_BASE + 0x100008,
                                  .used_user_addr = F_UVA_BASE + 0x101000,
                                  .avail_user_addr = F_UVA_BASE + 0x102000 };
    assert_int_equal(f_ack(f, VHU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1);
    a.desc_user_addr = 0x1000;
    assert_int_equal(f_ack(f, VHU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1);
    a.desc_user_addr = F_UVA_BASE + F_HOLE_START;         /* in the hole */
    assert_int_equal(f_ack(f, VHU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1);
    a.index = 2;
    a.desc_user_addr = F_UVA_BASE + 0x200000;
    assert_int_equal(f_ack(f, VHU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1);
    /* Memory regions: overlaps, past the end of the fd, empty, wrapping. */
    reg.region = (struct vhu_region){ 0x1000, 4096, F_UVA_BASE + 0x50000000, 0 };
    assert_int_equal(f_ack(f, VHU_ADD_MEM_REG, &reg, sizeof(reg), &f->memfd, 1), 1);
    reg.region = (struct vhu_region){ 0x80000000, 4096, F_UVA_BASE + 0x1000, 0 };
    assert_int_equal(f_ack(f, VHU_ADD_MEM_REG, &reg, sizeof(reg), &f->memfd, 1), 1);
    reg.region = (struct vhu_region){ 0x80000000, F_RAM_SIZE, F_UVA_BASE + 0x80000000, 4096 };
    assert_int_equal(f_ack(f, VHU_ADD_MEM_REG, &reg, sizeof(reg), &f->memfd, 1), 1);
    reg.region = (struct vhu_region){ 0x80000000, 0, F_UVA_BASE + 0x80000000, 0 };
    assert_int_equal(f_ack(f, VHU_ADD_MEM_REG, &reg, sizeof(reg), &f->memfd, 1), 1);
    reg.region = (struct vhu_region){ ~0ull - 100, 4096, F_UVA_BASE + 0x80000000, 0 };
    assert_int_equal(f_ack(f, VHU_ADD_MEM_REG, &reg, sizeof(reg), &f->memfd, 1), 1);
    reg.region = (struct vhu_region){ 0x80000000, 4096, 0x1234, 0 };
    assert_int_equal(f_ack(f, VHU_REM_MEM_REG, &reg, sizeof(reg), NULL, 0), 1);
    /* Features the back-end cannot serve; unknown requests. */
    uint64_t packed = FEATURES | (1ull << VIRTIO_F_RING_PACKED);
    assert_int_equal(f_ack(f, VHU_SET_FEATURES, &packed, 8, NULL, 0), 1);
    assert_int_equal(f_ack(f, 99, NULL, 0, NULL, 0), 1);
    assert_int_equal(f_ack(f, VHU_SET_CONFIG, sixteen, 16, NULL, 0), 1);
    alive(f);
    assert_true(f_log_has(&srv, "vq index 70"));
    assert_true(f_log_has(&srv, "size 100 (a power of 2"));
    assert_true(f_log_has(&srv, "overlaps the region"));
    down(f);
}

static void test_broken_streams(void **state)
{
    (void)state;
    /* A payload larger than any request: the connection ends. */
    struct front *f = up(3, 64);
    static uint8_t big[100000];
    assert_int_equal(f_send(f, VHU_SET_FEATURES, VHU_VERSION, big, sizeof(big), NULL, 0), 0);
    assert_true(f_closed(f, F_TIMEOUT_MS));
    down(f);
    /* A wrong protocol version. */
    f = up(3, 64);
    uint64_t v = FEATURES;
    assert_int_equal(f_send(f, VHU_SET_FEATURES, 0x2, &v, 8, NULL, 0), 0);
    assert_true(f_closed(f, F_TIMEOUT_MS));
    down(f);
    /* More descriptors than a message may carry. */
    f = up(3, 64);
    int fds[12];
    for (int i = 0; i < 12; i++)
        fds[i] = f->memfd;
    assert_int_equal(f_send(f, VHU_SET_OWNER, VHU_VERSION, NULL, 0, fds, 12), 0);
    assert_true(f_closed(f, F_TIMEOUT_MS));
    down(f);
    /* A message cut in the middle of its payload. */
    f = up(3, 64);
    uint32_t hdr[3] = { VHU_SET_FEATURES, VHU_VERSION, 8 };
    assert_int_equal(write(f->sock, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
    assert_int_equal(write(f->sock, &v, 3), 3);
    shutdown(f->sock, SHUT_WR);
    assert_true(f_closed(f, F_TIMEOUT_MS));
    down(f);
    /* A message that stops halfway, the connection left open: dropped
     * after a few seconds rather than holding the loop. */
    f = up(3, 64);
    assert_int_equal(write(f->sock, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
    assert_true(f_closed(f, F_TIMEOUT_MS));
    down(f);
    /* The next front-end is served. */
    f = up(3, 64);
    alive(f);
    down(f);
    assert_true(f_log_has(&srv, "payload of 100000 bytes"));
    assert_true(f_log_has(&srv, "protocol version 2"));
    assert_true(f_log_has(&srv, "more than 8 file descriptors"));
    assert_true(f_log_has(&srv, "payload stopped halfway"));
}

static void test_bad_chains(void **state)
{
    (void)state;
    struct front *f = up(4, 64);
    alive(f);
    uint64_t h = req_header(f);
    uint64_t resp = f_alloc(f, RESP_LEN, 8);
    uint64_t table = f_alloc(f, 16 * 8, 16);
    struct vring_desc *t = f_ptr(f, table);
    struct vring_desc d[4];

    /* Outside guest RAM; across the hole; in the hole. */
    d[0] = desc(h, 51, VRING_DESC_F_NEXT, NX);
    d[1] = desc(F_RAM_SIZE + 4096, RESP_LEN, VRING_DESC_F_WRITE, 0);
    assert_int_equal(raw_chain(f, 2, d, 2), 0);
    d[1] = desc(F_HOLE_START - 64, RESP_LEN, VRING_DESC_F_WRITE, 0);
    assert_int_equal(raw_chain(f, 2, d, 2), 0);
    d[0] = desc(F_HOLE_START + 16, 51, VRING_DESC_F_NEXT, NX);
    d[1] = desc(resp, RESP_LEN, VRING_DESC_F_WRITE, 0);
    assert_int_equal(raw_chain(f, 2, d, 2), 0);
    d[0] = desc(~0ull - 10, 51, VRING_DESC_F_NEXT, NX);   /* wraps */
    assert_int_equal(raw_chain(f, 2, d, 2), 0);
    /* A loop: the last descriptor points back at the first. */
    d[0] = desc(h, 51, VRING_DESC_F_NEXT, NX);
    d[1] = desc(resp, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, NX);
    d[2] = desc(resp + 8, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
    assert_int_equal(raw_chain(f, 2, d, 3), 0);
    /* Readable after writable. */
    d[0] = desc(h, 51, VRING_DESC_F_NEXT, NX);
    d[1] = desc(resp, RESP_LEN, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, NX);
    d[2] = desc(h, 8, 0, 0);
    assert_int_equal(raw_chain(f, 2, d, 3), 0);
    /* next past the ring. */
    {
        uint16_t i0 = f_desc_get(f, 2);
        f_desc(f, 2)[i0] = desc(h, 51, VRING_DESC_F_NEXT, 64);
        f_publish(f, 2, i0, true);
        struct f_used u;
        f_used_wait(f, 2, &u, 1);
        assert_int_equal(u.len, 0);
        f_desc_put(f, 2, i0);
    }
    /* Indirect: zero length, not a multiple of 16, with NEXT, nested,
     * looping inside, pointing past its table, outside RAM. */
    d[0] = desc(table, 0, VRING_DESC_F_INDIRECT, 0);
    assert_int_equal(raw_chain(f, 2, d, 1), 0);
    d[0] = desc(table, 40, VRING_DESC_F_INDIRECT, 0);
    assert_int_equal(raw_chain(f, 2, d, 1), 0);
    t[0] = desc(h, 51, VRING_DESC_F_NEXT, 1);
    t[1] = desc(resp, RESP_LEN, VRING_DESC_F_WRITE, 0);
    d[0] = desc(table, 32, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, NX);
    d[1] = desc(resp, RESP_LEN, VRING_DESC_F_WRITE, 0);
    assert_int_equal(raw_chain(f, 2, d, 2), 0);
    t[1] = desc(table, 32, VRING_DESC_F_INDIRECT, 0);
    d[0] = desc(table, 32, VRING_DESC_F_INDIRECT, 0);
    assert_int_equal(raw_chain(f, 2, d, 1), 0);
    t[1] = desc(resp, RESP_LEN, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
    assert_int_equal(raw_chain(f, 2, d, 1), 0);
    t[1] = desc(resp, RESP_LEN, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
    assert_int_equal(raw_chain(f, 2, d, 1), 0);
    d[0] = desc(F_HOLE_START - 16, 32, VRING_DESC_F_INDIRECT, 0);   /* straddles the hole */
    assert_int_equal(raw_chain(f, 2, d, 1), 0);
    /* The same table, well formed: answered. */
    t[1] = desc(resp, RESP_LEN, VRING_DESC_F_WRITE, 0);
    d[0] = desc(table, 32, VRING_DESC_F_INDIRECT, 0);
    assert_int_equal(raw_chain(f, 2, d, 1), RESP_LEN);

    /* Headers too short: no room for the response (length 0), a request
     * header cut short (FAILURE), data both ways (FAILURE). */
    struct f_scsi r = { 0 };
    f_scsi_reset(&r);
    f_lun(r.lun, 0, 0);
    r.resp_len = 50;
    f_scsi_run(f, 3, &r);
    assert_int_equal(r.used_len, 0);
    f_scsi_reset(&r);
    f_lun(r.lun, 0, 0);
    r.req_len = 20;
    f_scsi_run(f, 3, &r);
    assert_int_equal(r.used_len, RESP_LEN);
    assert_int_equal(r.resp.response, VIRTIO_SCSI_S_FAILURE);
    f_scsi_reset(&r);
    f_lun(r.lun, 0, 0);
    static uint8_t data[512];
    r.cdb[0] = 0x28;
    r.dout = data;
    r.dout_len = 512;
    r.din_len = 512;
    f_scsi_run(f, 3, &r);
    assert_int_equal(r.resp.response, VIRTIO_SCSI_S_FAILURE);
    /* A READ whose buffer is shorter than its transfer length: OVERRUN. */
    f_scsi_reset(&r);
    f_lun(r.lun, 0, 0);
    r.cdb[0] = 0x28;
    r.cdb[8] = 4;
    r.din_len = 512;
    f_scsi_run(f, 3, &r);
    assert_int_equal(r.resp.response, VIRTIO_SCSI_S_OVERRUN);
    f_scsi_free(&r);

    /* More memory segments than a request may have. */
    {
        enum { SEGS = 300 };
        uint64_t tb = f_alloc(f, 16 * SEGS, 16);
        struct vring_desc *it = f_ptr(f, tb);
        it[0] = desc(h, 51, VRING_DESC_F_NEXT, 1);
        for (unsigned k = 1; k < SEGS; k++)
            it[k] = desc(resp + (k % 64), 1, VRING_DESC_F_WRITE |
                         (k + 1 < SEGS ? VRING_DESC_F_NEXT : 0), (uint16_t)(k + 1));
        d[0] = desc(tb, 16 * SEGS, VRING_DESC_F_INDIRECT, 0);
        assert_int_equal(raw_chain(f, 2, d, 1), 0);
    }
    /* Control queue: short requests, unknown types. */
    uint64_t c = f_alloc(f, 64, 8);
    memset(f_ptr(f, c), 0, 64);
    d[0] = desc(c, 2, VRING_DESC_F_NEXT, NX);
    d[1] = desc(c + 32, 8, VRING_DESC_F_WRITE, 0);
    assert_int_equal(raw_chain(f, 0, d, 2), 0);
    *(uint32_t *)f_ptr(f, c) = htole32(77);
    d[0] = desc(c, 24, VRING_DESC_F_NEXT, NX);
    assert_int_equal(raw_chain(f, 0, d, 2), 0);
    *(uint32_t *)f_ptr(f, c) = htole32(VIRTIO_SCSI_T_TMF);
    d[0] = desc(c, 10, VRING_DESC_F_NEXT, NX);
    assert_int_equal(raw_chain(f, 0, d, 2), 0);
    /* Event queue: a readable buffer, a short one. */
    d[0] = desc(c, 16, 0, 0);
    assert_int_equal(raw_chain(f, 1, d, 1), 0);
    d[0] = desc(c, 8, VRING_DESC_F_WRITE, 0);
    assert_int_equal(raw_chain(f, 1, d, 1), 0);

    alive(f);
    assert_int_equal(f_errs(f, 2), 0);                     /* none of this broke the ring */
    assert_true(f_log_has(&srv, "is outside guest memory"));
    assert_true(f_log_has(&srv, "a loop?"));
    assert_true(f_log_has(&srv, "readable after a writable"));
    down(f);
}

static void test_broken_rings(void **state)
{
    (void)state;
    struct front *f = up(4, 64);
    alive(f);
    /* The avail index jumps by more than the ring: broken, error fd. */
    struct vring_avail *a = f_ptr(f, f->vq[2].avail_gpa);
    uint16_t was = f->vq[2].avail_idx;
    __atomic_store_n(&a->idx, htole16((uint16_t)(was + 65)), __ATOMIC_RELEASE);
    f_kick(f, 2);
    for (int i = 0; i < 500 && !f_errs(f, 2); i++) {
        if (i == 499)
            fail_msg("vq 2: no error signalled for an avail index jump");
        usleep(10000);
    }
    /* A ring restart (as a driver reset does) brings it back. */
    f_vq_enable(f, 2, false);
    assert_int_equal(f_vq_stop(f, 2), was);
    f_vq_setup(f, 2, 64, 0, true);
    f_vq_enable(f, 2, true);
    alive(f);
    /* A head index past the ring. */
    a = f_ptr(f, f->vq[2].avail_gpa);
    a->ring[f->vq[2].avail_idx % 64] = htole16(64);
    f->vq[2].avail_idx++;
    __atomic_store_n(&a->idx, htole16(f->vq[2].avail_idx), __ATOMIC_RELEASE);
    f_kick(f, 2);
    for (int i = 0; i < 500 && !f_errs(f, 2); i++) {
        if (i == 499)
            fail_msg("vq 2: no error signalled for a head past the ring");
        usleep(10000);
    }
    /* The other request queue is not affected. */
    alive_on(f, 3);
    assert_true(f_log_has(&srv, "avail index jumped"));
    assert_true(f_log_has(&srv, "names descriptor 64"));
    down(f);
}

/* The VM leaves with requests in flight: they drain, and the next VM is
 * served. Memory is removed under a running ring, too. */
static void test_disconnect_in_flight(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        struct front *f = up(4, 128);
        enum { N = 48 };
        struct f_scsi *r = calloc(N, sizeof(*r));
        for (unsigned i = 0; i < N; i++) {
            f_lun(r[i].lun, 0, i & 1);
            r[i].cdb[0] = 0x88;                          /* READ(16) of 256 KiB */
            r[i].cdb[9] = (uint8_t)(i * 8);
            r[i].cdb[12] = 0x02;
            r[i].din_len = 256 << 10;
            r[i].indirect = i & 2;
            f_scsi_post(f, 2 + (i & 1), &r[i], false);
        }
        f_kick(f, 2);
        f_kick(f, 3);
        if (round == 1) {
            /* Take the memory away under the running rings first. */
            struct vhu_mem_reg reg = { 0, { F_HOLE_END, F_RAM_SIZE - F_HOLE_END,
                                            F_UVA_BASE + F_HOLE_END, F_HOLE_END } };
            assert_int_equal(f_ack(f, VHU_REM_MEM_REG, &reg, sizeof(reg), NULL, 0), 0);
        }
        down(f);
        for (unsigned i = 0; i < N; i++)
            f_scsi_free(&r[i]);
        free(r);
    }
    struct front *f = up(3, 64);
    alive(f);
    down(f);
}

static int server_up(void **state)
{
    (void)state;
    tu_run("qemu-img create -q -f qcow2 h0.qcow2 16M && qemu-img create -q -f raw h1.raw 16M");
    char l0[300], l1[300];
    snprintf(l0, sizeof(l0), "0=%s", tu_path("h0.qcow2"));
    snprintf(l1, sizeof(l1), "1=%s,format=raw", tu_path("h1.raw"));
    f_server_start(&srv, "hostile", "--lun", l0, "--lun", l1, NULL);
    return 0;
}

static int group_setup(void **state)
{
    if (tu_qemu_setup("vhost-hostile", NULL, 0) < 0)
        return -1;
    if (!tu_have_qemu())
        return 0;
    return server_up(state);
}

static int group_teardown(void **state)
{
    if (srv.pid > 0) {
        /* Still alive after all that, and stops cleanly. */
        int rc = f_server_stop(&srv, true);
        if (rc != 0) {
            fprintf(stderr, "scuse serve exited %d; see %s\n", rc, srv.log);
            return -1;
        }
    }
    return tu_teardown(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_bad_messages, tu_need_qemu),
        cmocka_unit_test_setup(test_broken_streams, tu_need_qemu),
        cmocka_unit_test_setup(test_bad_chains, tu_need_qemu),
        cmocka_unit_test_setup(test_broken_rings, tu_need_qemu),
        cmocka_unit_test_setup(test_disconnect_in_flight, tu_need_qemu),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
