/* `scuse serve --vhost-user-scsi` driven by a front-end that sends what
 * QEMU 7.2 sends (docs: vhost-user-scsi.md §2), with two LUNs over images
 * made by qemu-img; data judged by qemu-io after the server exits.
 *
 * - the boot cycle: device creation, SeaBIOS (one request queue, no
 *   EVENT_IDX, a kick before the final SET_VRING_CALL), the Linux
 *   restart (GET_VRING_BASE hand-off, EVENT_IDX, INDIRECT, two request
 *   queues, event buffers), poweroff; `--once` then exits 0;
 * - requests laid out at odd offsets, headers split across descriptors,
 *   indirect tables, many in flight on two queues at once;
 * - REPORT LUNS with two LUNs, a BAD_TARGET probe, an absent LUN, TMFs,
 *   AN queries, EVENT_IDX suppression both ways, a PARAM_CHANGE event
 *   after the raw image grows and SIGHUP, and the event buffers given back
 *   on stop;
 * - a reboot (stop and start again on one connection), SET_MEM_TABLE
 *   without CONFIGURE_MEM_SLOTS, and the next connection after one. */
#define _GNU_SOURCE
#include <endian.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "front.h"
#include "testutil.h"

#define SEABIOS_FEATURES ((1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES))
#define LINUX_FEATURES                                                                     \
    (SEABIOS_FEATURES | (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_RING_F_INDIRECT_DESC) | \
     (1ull << VIRTIO_SCSI_F_CHANGE))

static const size_t odd_split[] = { 5, 13, 1, 40, 7, 0 };
static const size_t resp_split[] = { 100, 9, 7, 1, 0 };

/* ---- CDBs ---- */

static void be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static void cdb_rw(uint8_t *c, bool write, bool sixteen, uint64_t lba, uint32_t n)
{
    memset(c, 0, 32);
    if (sixteen) {
        c[0] = write ? 0x8a : 0x88;
        be(c + 2, lba, 8);
        be(c + 10, n, 4);
    } else {
        c[0] = write ? 0x2a : 0x28;
        be(c + 2, lba, 4);
        be(c + 7, n, 2);
    }
}

static const uint8_t TUR[6] = { 0 };
static const uint8_t INQUIRY[6] = { 0x12, 0, 0, 0, 96, 0 };
static const uint8_t RC10[10] = { 0x25 };
static const uint8_t RC16[16] = { 0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0 };
static const uint8_t REPORT_LUNS[12] = { 0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0 };

static void want_good(const struct f_scsi *r)
{
    if (r->resp.response != VIRTIO_SCSI_S_OK || r->resp.status != 0) {
        int k, a, q;
        f_sense(r, &k, &a, &q);
        fail_msg("CDB %02x: response %u status 0x%x sense %x/%02x/%02x", r->cdb[0],
                 r->resp.response, r->resp.status, k, a, q);
    }
}

static void want_check(const struct f_scsi *r, int key, int asc, int ascq)
{
    int k, a, q;
    assert_int_equal(r->resp.response, VIRTIO_SCSI_S_OK);
    assert_int_equal(r->resp.status, 0x02);
    f_sense(r, &k, &a, &q);
    if (k != key || a != asc || q != ascq)
        fail_msg("CDB %02x: sense %x/%02x/%02x, expected %x/%02x/%02x", r->cdb[0], k, a, q, key,
                 asc, ascq);
}

/* TEST UNIT READY until GOOD, expecting this unit attention first. */
static void clear_ua(struct front *f, unsigned vq, unsigned lun, int asc, int ascq)
{
    struct f_scsi r = { 0 };
    f_cmd(f, vq, lun, TUR, 6, NULL, 0, 0, &r);
    want_check(&r, 6, asc, ascq);
    f_cmd(f, vq, lun, TUR, 6, NULL, 0, 0, &r);
    want_good(&r);
    f_scsi_free(&r);
}

static uint64_t capacity16(struct front *f, unsigned vq, unsigned lun)
{
    struct f_scsi r = { 0 };
    f_cmd(f, vq, lun, RC16, 16, NULL, 0, 32, &r);
    want_good(&r);
    assert_int_equal(r.used_len, sizeof(struct virtio_scsi_cmd_resp) + 32);
    uint64_t n = get_be(r.din, 8) + 1;
    f_scsi_free(&r);
    return n;
}

/* ---- control queue ---- */

static uint8_t tmf(struct front *f, uint32_t subtype, unsigned target, unsigned lun, uint64_t tag)
{
    struct virtio_scsi_ctrl_tmf_req req;
    memset(&req, 0, sizeof(req));
    req.type = htole32(VIRTIO_SCSI_T_TMF);
    req.subtype = htole32(subtype);
    f_lun(req.lun, target, lun);
    req.tag = htole64(tag);
    uint64_t rg = f_alloc(f, sizeof(req), 8), wg = f_alloc(f, 1, 8);
    memcpy(f_ptr(f, rg), &req, sizeof(req));
    *(uint8_t *)f_ptr(f, wg) = 0xee;
    uint16_t d0 = f_desc_get(f, 0), d1 = f_desc_get(f, 0);
    struct vring_desc *t = f_desc(f, 0);
    t[d0] = (struct vring_desc){ htole64(rg), htole32(sizeof(req)), htole16(VRING_DESC_F_NEXT),
                                 htole16(d1) };
    t[d1] = (struct vring_desc){ htole64(wg), htole32(1), htole16(VRING_DESC_F_WRITE), 0 };
    f_publish(f, 0, d0, true);
    struct f_used u;
    f_used_wait(f, 0, &u, 1);
    assert_int_equal(u.id, d0);
    assert_int_equal(u.len, 1);
    f_desc_put(f, 0, d0);
    f_desc_put(f, 0, d1);
    return *(uint8_t *)f_ptr(f, wg);
}

static void an_query(struct front *f)
{
    struct virtio_scsi_ctrl_an_req req;
    memset(&req, 0, sizeof(req));
    req.type = htole32(VIRTIO_SCSI_T_AN_QUERY);
    f_lun(req.lun, 0, 0);
    req.event_requested = htole32(0xffffffff);
    uint64_t rg = f_alloc(f, sizeof(req), 8), wg = f_alloc(f, 8, 8);
    memcpy(f_ptr(f, rg), &req, sizeof(req));
    memset(f_ptr(f, wg), 0xee, 8);
    uint16_t d0 = f_desc_get(f, 0), d1 = f_desc_get(f, 0);
    struct vring_desc *t = f_desc(f, 0);
    t[d0] = (struct vring_desc){ htole64(rg), htole32(sizeof(req)), htole16(VRING_DESC_F_NEXT),
                                 htole16(d1) };
    t[d1] = (struct vring_desc){ htole64(wg), htole32(8), htole16(VRING_DESC_F_WRITE), 0 };
    f_publish(f, 0, d0, true);
    struct f_used u;
    f_used_wait(f, 0, &u, 1);
    assert_int_equal(u.len, sizeof(struct virtio_scsi_ctrl_an_resp));
    struct virtio_scsi_ctrl_an_resp resp;
    memcpy(&resp, f_ptr(f, wg), sizeof(resp));
    assert_int_equal(le32toh(resp.event_actual), 0);
    assert_int_equal(resp.response, VIRTIO_SCSI_S_OK);
    f_desc_put(f, 0, d0);
    f_desc_put(f, 0, d1);
}

/* Event buffers: 16 writable bytes each, split 7 + 9. */
static uint64_t event_buf[8];

static void post_events(struct front *f, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint64_t g = f_alloc(f, 24, 8) + 1;
        event_buf[i] = g;
        memset(f_ptr(f, g), 0xee, 16);
        uint16_t d0 = f_desc_get(f, 1), d1 = f_desc_get(f, 1);
        struct vring_desc *t = f_desc(f, 1);
        t[d0] = (struct vring_desc){ htole64(g), htole32(7),
                                     htole16(VRING_DESC_F_WRITE | VRING_DESC_F_NEXT), htole16(d1) };
        t[d1] = (struct vring_desc){ htole64(g + 7), htole32(9), htole16(VRING_DESC_F_WRITE), 0 };
        f_publish(f, 1, d0, i + 1 == n);
    }
}

/* ---- phases ---- */

static struct f_server srv;
static char img0[256], img1[256];

static void make_images(void)
{
    tu_run("qemu-img create -q -f qcow2 a.qcow2 8M && "
           "qemu-io -f qcow2 -c 'write -P 0x5a 0 1M' -c 'write -P 0xa5 2M 64k' a.qcow2 >/dev/null");
    tu_run("qemu-img create -q -f raw b.raw 4M && "
           "qemu-io -f raw -c 'write -P 0x11 0 4M' b.raw >/dev/null");
    snprintf(img0, sizeof(img0), "0=%s,format=qcow2,serial=SER-0,vendor=ACME", tu_path("a.qcow2"));
    snprintf(img1, sizeof(img1), "1=%s,format=raw,product=second disk", tu_path("b.raw"));
}

/* SeaBIOS's turn: features without EVENT_IDX, one request queue. The
 * first request is kicked while vq 2 has no call fd (QEMU sends the
 * final SET_VRING_CALL after KICK and ENABLE). */
static void seabios(struct front *f, bool first_boot)
{
    f_set_features(f, SEABIOS_FEATURES);
    if (first_boot)
        f_add_memory(f);
    /* No call fd on vq 2 until the end of the phase. */
    uint64_t nofd = 2 | VHU_VRING_NOFD;
    assert_int_equal(f_send(f, VHU_SET_VRING_CALL, VHU_VERSION, &nofd, 8, NULL, 0), 0);
    f_get_u64(f, VHU_GET_FEATURES); /* handled in order: the old call fd is done with */
    f_calls(f, 2);
    f_vq_setup(f, 2, 128, 0, true);
    for (unsigned i = 0; i < 3; i++)
        f_vq_enable(f, i, true);

    struct f_scsi r = { 0 };
    f_scsi_reset(&r);
    f_lun(r.lun, 0, 0);
    memcpy(r.cdb, REPORT_LUNS, sizeof(REPORT_LUNS));
    r.din_len = 256;
    f_scsi_post(f, 2, &r, true);
    struct f_used u;
    f_used_wait(f, 2, &u, 1);       /* done without any call fd */
    f_scsi_finish(f, 2, &r, u.len);
    want_good(&r);
    static const uint8_t luns[] = { 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                    0, 1, 0, 0, 0, 0, 0, 0 };
    assert_memory_equal(r.din, luns, sizeof(luns));
    assert_int_equal(le32toh(r.resp.resid), 256 - 24);
    assert_int_equal(f_calls(f, 2), 0);
    for (unsigned i = 0; i < 3; i++)
        f_vq_call_fd(f, i);
    /* The new call fd is signalled once, so a completion pushed while
     * there was none is not lost. */
    for (int i = 0; i < 100 && f_calls(f, 2) == 0; i++) {
        if (i == 99)
            fail_msg("vq 2: the new call fd was not signalled");
        usleep(10000);
    }

    f_cmd(f, 2, 0, INQUIRY, 6, NULL, 0, 96, &r);
    want_good(&r);
    assert_int_equal(r.din[0], 0x00);
    assert_memory_equal(r.din + 8, "ACME    ", 8);
    if (first_boot) {
        clear_ua(f, 2, 0, 0x29, 0x00);
    } else {
        f_cmd(f, 2, 0, TUR, 6, NULL, 0, 0, &r);
        want_good(&r);
    }
    f_cmd(f, 2, 0, RC10, 10, NULL, 0, 8, &r);
    want_good(&r);
    assert_int_equal(get_be(r.din, 4), 16383);
    assert_int_equal(get_be(r.din + 4, 4), 512);
    /* READ(10) of 64 blocks, as SeaBIOS reads. */
    uint8_t c[32];
    cdb_rw(c, false, false, 4096 - 32, 64);
    f_cmd(f, 2, 0, c, 10, NULL, 0, 64 * 512, &r);
    want_good(&r);
    for (unsigned i = 0; i < 64 * 512; i++)
        if (r.din[i] != (i < 32 * 512 ? 0x00 : 0xa5))
            fail_msg("READ(10): byte %u is 0x%02x", i, r.din[i]);
    /* The other targets: SeaBIOS probes them all. */
    for (unsigned t = 1; t < 256; t += 37) {
        f_scsi_reset(&r);
        f_lun(r.lun, t, 0);
        memcpy(r.cdb, INQUIRY, 6);
        r.din_len = 96;
        f_scsi_run(f, 2, &r);
        assert_int_equal(r.resp.response, VIRTIO_SCSI_S_BAD_TARGET);
        assert_int_equal(r.used_len, sizeof(struct virtio_scsi_cmd_resp));
    }
    f_scsi_free(&r);
}

/* Linux's turn: the rings stop and restart with EVENT_IDX and INDIRECT,
 * two request queues. Returns the number of requests SeaBIOS made. */
static void linux_start(struct front *f, unsigned nvqs)
{
    for (unsigned i = 0; i < 3; i++)
        f_vq_enable(f, i, false);
    uint16_t base = f_vq_stop(f, 2);
    assert_int_equal(base, f->vq[2].avail_idx);
    f_set_features(f, LINUX_FEATURES);
    for (unsigned i = 0; i < nvqs; i++)
        f_vq_setup(f, i, i == 2 ? 256 : 128, 0, true);
    for (unsigned i = 0; i < nvqs; i++)
        f_vq_enable(f, i, true);
    for (unsigned i = 0; i < nvqs; i++)
        f_vq_call_fd(f, i);
}

static void poweroff(struct front *f, unsigned nvqs, uint16_t *bases)
{
    for (unsigned i = 0; i < nvqs; i++)
        f_vq_enable(f, i, false);
    for (unsigned i = 0; i < nvqs; i++)
        bases[i] = f_vq_stop(f, i);
}

static void test_boot_cycle(void **state)
{
    (void)state;
    make_images();
    f_server_start(&srv, "boot", "--lun", img0, "--lun", img1, "--once", NULL);
    struct front *f = calloc(1, sizeof(*f));
    f_connect(f, &srv);
    f_init_device(f, 4);
    assert_true(f->features & (1ull << VIRTIO_RING_F_EVENT_IDX));
    assert_true(f->features & (1ull << VIRTIO_RING_F_INDIRECT_DESC));
    assert_true(f->features & (1ull << VIRTIO_SCSI_F_CHANGE));
    assert_true(f->features & (1ull << VIRTIO_SCSI_F_HOTPLUG)); /* for Linux to post event buffers */
    assert_true(f->protocol_features & (1ull << VHU_PROTO_CONFIGURE_MEM_SLOTS));
    seabios(f, true);
    linux_start(f, 4);
    post_events(f, 4);

    struct f_scsi r = { 0 };
    clear_ua(f, 3, 1, 0x29, 0x00);  /* LUN 1: its power-on attention still pending */

    /* WRITE(16) with the header cut at odd places, in an indirect table;
     * READ(16) back with the response header cut too. */
    uint8_t *pat = malloc(16 * 512);
    for (unsigned i = 0; i < 16 * 512; i++)
        pat[i] = (uint8_t)(0x77 ^ (i * 7));
    f_scsi_reset(&r);
    f_lun(r.lun, 0, 0);
    cdb_rw(r.cdb, true, true, 100, 16);
    r.dout = pat;
    r.dout_len = 16 * 512;
    r.rsplit = odd_split;
    r.indirect = true;
    f_scsi_run(f, 2, &r);
    want_good(&r);
    assert_int_equal(r.used_len, sizeof(struct virtio_scsi_cmd_resp));
    f_scsi_reset(&r);
    f_lun(r.lun, 0, 0);
    cdb_rw(r.cdb, false, true, 100, 16);
    r.din_len = 16 * 512;
    r.wsplit = resp_split;
    r.rsplit = odd_split;
    f_scsi_run(f, 3, &r);
    want_good(&r);
    assert_int_equal(r.used_len, sizeof(struct virtio_scsi_cmd_resp) + 16 * 512);
    assert_memory_equal(r.din, pat, 16 * 512);
    f_scsi_free(&r);

    /* 48 requests in flight on two queues, posted before one kick each:
     * writes to LUN 1 then reads of other ranges, each its own pattern. */
    enum { N = 48 };
    struct f_scsi *many = calloc(N, sizeof(*many));
    uint8_t (*bufs)[8 * 512] = calloc(N, sizeof(*bufs));
    for (unsigned i = 0; i < N; i++) {
        unsigned vq = 2 + (i & 1);
        bool write = i < N / 2;
        memset(bufs[i], 0x30 + i, sizeof(bufs[i]));
        struct f_scsi *m = &many[i];
        f_lun(m->lun, 0, 1);
        m->tag = 1000 + i;
        cdb_rw(m->cdb, write, i % 3 == 0, write ? 64 * i : 64 * (i - N / 2), 8);
        if (write) {
            m->dout = bufs[i];
            m->dout_len = sizeof(bufs[i]);
        } else {
            m->din_len = sizeof(bufs[i]);
        }
        m->indirect = i % 4 < 2;
        m->rsplit = i % 5 == 0 ? odd_split : NULL;
        m->wsplit = i % 7 == 0 ? resp_split : NULL;
        f_scsi_post(f, vq, m, false);
    }
    f_kick(f, 2);
    f_kick(f, 3);
    struct f_used u2[N / 2], u3[N / 2];
    f_used_wait(f, 2, u2, N / 2);
    f_used_wait(f, 3, u3, N / 2);
    unsigned done = 0;
    for (unsigned i = 0; i < N; i++) {
        unsigned vq = 2 + (i & 1);
        struct f_used *u = vq == 2 ? u2 : u3;
        for (unsigned k = 0; k < N / 2; k++) {
            if (u[k].id == many[i].head) {
                f_scsi_finish(f, vq, &many[i], u[k].len);
                want_good(&many[i]);
                done++;
                break;
            }
        }
    }
    assert_int_equal(done, N);
    for (unsigned i = N / 2; i < N; i++) {
        /* Reads of ranges written in the same batch: the image had 0x11,
         * and the write to the same range may have come first or not. */
        unsigned w = i - N / 2;
        uint8_t a = many[i].din[0];
        assert_true(a == 0x11 || a == (uint8_t)(0x30 + w));
        for (unsigned k = 0; k < 8 * 512; k++)
            assert_int_equal(many[i].din[k], a);
    }
    uint8_t c[32];
    for (unsigned i = 0; i < N / 2; i++) {
        cdb_rw(c, false, false, 64 * i, 8);
        f_cmd(f, 2 + (i & 1), 1, c, 10, NULL, 0, 8 * 512, &r);
        want_good(&r);
        assert_memory_equal(r.din, bufs[i], 8 * 512);
    }
    for (unsigned i = 0; i < N; i++)
        f_scsi_free(&many[i]);
    free(many);
    free(bufs);

    /* A LUN the target does not have; REPORT LUNS through it. */
    f_cmd(f, 2, 5, INQUIRY, 6, NULL, 0, 96, &r);
    want_good(&r);
    assert_int_equal(r.din[0], 0x7f);
    f_cmd(f, 2, 5, TUR, 6, NULL, 0, 0, &r);
    want_check(&r, 5, 0x25, 0x00);
    f_cmd(f, 3, 5, REPORT_LUNS, 12, NULL, 0, 64, &r);
    want_good(&r);
    assert_int_equal(get_be(r.din, 4), 16);
    /* A response area too small for the data: a residual. */
    f_cmd(f, 3, 1, INQUIRY, 6, NULL, 0, 200, &r);
    want_good(&r);
    assert_int_equal(le32toh(r.resp.resid), 200 - 96);
    assert_memory_equal(r.din + 16, "second disk     ", 16);

    /* Task management. */
    an_query(f);
    assert_int_equal(tmf(f, VIRTIO_SCSI_T_TMF_ABORT_TASK, 0, 0, 12345),
                     0 /* FUNCTION COMPLETE */);
    assert_int_equal(tmf(f, VIRTIO_SCSI_T_TMF_QUERY_TASK, 0, 0, 12345), 0);
    assert_int_equal(tmf(f, VIRTIO_SCSI_T_TMF_QUERY_TASK_SET, 0, 1, 0), 0);
    assert_int_equal(tmf(f, VIRTIO_SCSI_T_TMF_ABORT_TASK_SET, 0, 1, 0), 0);
    assert_int_equal(tmf(f, VIRTIO_SCSI_T_TMF_CLEAR_ACA, 0, 0, 0),
                     VIRTIO_SCSI_S_FUNCTION_REJECTED);
    assert_int_equal(tmf(f, VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, 3, 0, 0),
                     VIRTIO_SCSI_S_BAD_TARGET);
    assert_int_equal(tmf(f, VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, 0, 9, 0),
                     VIRTIO_SCSI_S_INCORRECT_LUN);
    assert_int_equal(tmf(f, VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, 0, 0, 0), 0);
    clear_ua(f, 2, 0, 0x29, 0x00);
    assert_int_equal(tmf(f, VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET, 0, 0, 0), 0);
    clear_ua(f, 2, 0, 0x29, 0x07);
    clear_ua(f, 3, 1, 0x29, 0x07);

    /* EVENT_IDX, device side: the back-end asks for a kick at the next
     * avail index. Driver side: a call only when used_event is passed. */
    assert_int_equal(f_avail_event(f, 2), f->vq[2].avail_idx);
    f_calls(f, 2);
    uint16_t used = f->vq[2].used_seen;
    f_set_used_event(f, 2, (uint16_t)(used + 2));
    for (unsigned i = 0; i < 3; i++) {
        f_cmd(f, 2, 0, TUR, 6, NULL, 0, 0, &r);
        want_good(&r);
        usleep(20000);
        uint64_t calls = f_calls(f, 2);
        if (i < 2 && calls)
            fail_msg("completion %u of 3 signalled the driver before used_event", i + 1);
        if (i == 2 && !calls)
            fail_msg("the completion that passed used_event did not signal");
    }

    /* The raw image grows: SIGHUP, a PARAM_CHANGE event, the unit
     * attention, the new capacity. */
    assert_int_equal(capacity16(f, 2, 1), 8192);
    f_calls(f, 1);
    tu_run("truncate -s 8M b.raw");
    f_server_signal(&srv, SIGHUP);
    struct f_used ev;
    f_used_wait(f, 1, &ev, 1);
    assert_int_equal(ev.len, sizeof(struct virtio_scsi_event));
    struct virtio_scsi_event e;
    memcpy(&e, f_ptr(f, event_buf[0]), sizeof(e));
    assert_int_equal(le32toh(e.event), VIRTIO_SCSI_T_PARAM_CHANGE);
    assert_int_equal(le32toh(e.reason), 0x2a | 0x09 << 8);
    static const uint8_t lun1[8] = { 1, 0, 0, 1, 0, 0, 0, 0 };    /* as REPORT LUNS has it */
    assert_memory_equal(e.lun, lun1, 8);
    clear_ua(f, 2, 1, 0x2a, 0x09);
    assert_int_equal(capacity16(f, 3, 1), 16384);
    cdb_rw(c, false, true, 16383, 1);
    f_cmd(f, 3, 1, c, 16, NULL, 0, 512, &r);
    want_good(&r);
    f_scsi_free(&r);

    uint16_t bases[4];
    poweroff(f, 4, bases);
    /* Event buffers not used are given back: the ring restarts at the
     * first of them. */
    assert_int_equal(bases[1], 1);
    assert_int_equal(bases[2], f->vq[2].avail_idx);
    assert_int_equal(bases[3], f->vq[3].avail_idx);
    f_disconnect(f);
    free(f);
    assert_int_equal(f_server_wait(&srv), 0);   /* --once: gone with the VM */
    assert_true(f_log_has(&srv, "connection 1 ended"));

    /* qemu-img judges what was written and that the qcow2 is sound. */
    assert_int_equal(tu_sh("qemu-img check -q a.qcow2"), 0);
    assert_int_equal(tu_sh("qemu-io -f qcow2 -r -c 'read -P 0x5a 0 51200' "
                           "-c 'read -P 0x5a 59392 989184' -c 'read -P 0xa5 2M 64k' a.qcow2"), 0);
    tu_run("qemu-img convert -f qcow2 -O raw a.qcow2 a-out.raw");
    uint8_t *img = tu_load("a-out.raw", 2 << 20);
    assert_memory_equal(img + 100 * 512, pat, 16 * 512);
    for (unsigned i = 0; i < 1 << 20; i++)
        if ((i < 100 * 512 || i >= 116 * 512) && img[i] != 0x5a)
            fail_msg("a.qcow2: byte %u is 0x%02x, 0x5a expected", i, img[i]);
    free(img);
    for (unsigned i = 0; i < N / 2; i++)
        assert_int_equal(tu_sh("qemu-io -f raw -r -c 'read -P 0x%02x %u 4096' b.raw",
                               0x30 + i, 64 * 512 * i), 0);
    free(pat);
}

/* Stop and start again on one connection (a guest reboot), then the next
 * connection, which uses SET_MEM_TABLE (no CONFIGURE_MEM_SLOTS). */
static void test_reboot_and_next_connection(void **state)
{
    (void)state;
    f_server_start(&srv, "reboot", "--lun", img0, "--lun", img1, NULL);
    struct front *f = calloc(1, sizeof(*f));
    f_connect(f, &srv);
    f_init_device(f, 3);
    seabios(f, true);
    linux_start(f, 3);
    struct f_scsi r = { 0 };
    clear_ua(f, 2, 1, 0x29, 0x00);
    uint16_t bases[3];
    poweroff(f, 3, bases);
    /* Reboot: SeaBIOS again on fresh rings, then Linux again. */
    seabios(f, false);
    linux_start(f, 3);
    f_cmd(f, 2, 1, TUR, 6, NULL, 0, 0, &r);
    want_good(&r);
    f_disconnect(f);
    free(f);

    /* The next VM: everything of the first connection is gone. */
    f = calloc(1, sizeof(*f));
    f_connect(f, &srv);
    f->features = f_get_u64(f, VHU_GET_FEATURES);
    uint64_t pf = 1ull << VHU_PROTO_REPLY_ACK;
    assert_int_equal(f_send(f, VHU_SET_PROTOCOL_FEATURES, VHU_VERSION, &pf, 8, NULL, 0), 0);
    f->protocol_features = pf;
    f_set_features(f, LINUX_FEATURES);
    struct vhu_mem_table mt = { .nregions = 2 };
    mt.regions[0] = (struct vhu_region){ 0, F_HOLE_START, F_UVA_BASE, 0 };
    mt.regions[1] = (struct vhu_region){ F_HOLE_END, F_RAM_SIZE - F_HOLE_END,
                                         F_UVA_BASE + F_HOLE_END, F_HOLE_END };
    int fds[2] = { f->memfd, f->memfd };
    assert_int_equal(f_ack(f, VHU_SET_MEM_TABLE, &mt, 8 + 2 * sizeof(struct vhu_region), fds, 2),
                     0);
    for (unsigned i = 0; i < 3; i++) {
        f_vq_call_fd(f, i);
        f_vq_setup(f, i, 64, 0, true);
        f_vq_enable(f, i, true);
    }
    clear_ua(f, 2, 0, 0x29, 0x00);  /* a new initiator: power-on attention */
    uint8_t c[32];
    cdb_rw(c, false, true, 0, 8);
    f_cmd(f, 2, 0, c, 16, NULL, 0, 4096, &r);
    want_good(&r);
    for (unsigned i = 0; i < 4096; i++)
        assert_int_equal(r.din[i], 0x5a);
    f_scsi_free(&r);
    /* SIGTERM with writes in flight: they drain, the images are flushed
     * and closed, exit 0. */
    enum { W = 32 };
    struct f_scsi *w = calloc(W, sizeof(*w));
    static uint8_t wbuf[64 << 10];
    memset(wbuf, 0x6b, sizeof(wbuf));
    for (unsigned i = 0; i < W; i++) {
        f_lun(w[i].lun, 0, i & 1);
        cdb_rw(w[i].cdb, true, true, 2048 + 128 * i, 128);
        w[i].dout = wbuf;
        w[i].dout_len = sizeof(wbuf);
        w[i].indirect = true;
        f_scsi_post(f, 2, &w[i], false);
    }
    f_kick(f, 2);
    assert_int_equal(f_server_stop(&srv, true), 0);
    assert_true(f_closed(f, F_TIMEOUT_MS));
    f_disconnect(f);
    free(f);
    free(w);
    assert_true(f_log_has(&srv, "connection 2 ended"));
    assert_true(f_log_has(&srv, "SIGTERM: stopping"));
    assert_int_equal(tu_sh("qemu-img check -q a.qcow2"), 0);
}

/* Driven by notifications alone, as a guest driver is: 32 requests kept in
 * flight on two queues for 4000 completions, the driver sleeping on the
 * call eventfds and re-arming used_event (virtqueue_enable_cb's protocol),
 * and kicking only when avail_event asks for it. A lost notification or
 * kick stalls the loop: fail after 2 s without progress. */
static void test_notifications(void **state)
{
    (void)state;
    f_server_start(&srv, "notify", "--lun", img0, "--lun", img1, NULL);
    struct front *f = calloc(1, sizeof(*f));
    f_connect(f, &srv);
    f_init_device(f, 4);
    f_set_features(f, LINUX_FEATURES);
    f_add_memory(f);
    for (unsigned i = 0; i < 4; i++) {
        f_vq_setup(f, i, 64, 0, true);
        f_vq_enable(f, i, true);
    }
    clear_ua(f, 2, 0, 0x29, 0x00);
    clear_ua(f, 2, 1, 0x29, 0x00);
    enum { QD = 16, TOTAL = 4000 };
    struct f_scsi *r = calloc(2 * QD, sizeof(*r));
    unsigned posted = 0, done = 0;
    for (unsigned i = 0; i < 2 * QD; i++) {
        unsigned vq = 2 + i / QD;
        f_lun(r[i].lun, 0, i & 1);
        cdb_rw(r[i].cdb, false, i % 3 == 0, (posted * 8) % 8000, 8);
        r[i].din_len = 4096;
        r[i].indirect = i & 2;
        f_scsi_post(f, vq, &r[i], false);
        posted++;
    }
    f_kick(f, 2);
    f_kick(f, 3);
    while (done < TOTAL) {
        struct pollfd p[2] = { { f->vq[2].call, POLLIN, 0 }, { f->vq[3].call, POLLIN, 0 } };
        if (poll(p, 2, 2000) == 0)
            fail_msg("no notification for 2 s with %u requests in flight (%u done)",
                     posted - done, done);
        for (unsigned vq = 2; vq < 4; vq++) {
            f_calls(f, vq);
            struct f_used u[QD];
            unsigned n = 0, more;
            do {
                more = f_used(f, vq, u + n, QD - n, 0);
                n += more;
                f_set_used_event(f, vq, f->vq[vq].used_seen);
                __atomic_thread_fence(__ATOMIC_SEQ_CST);
            } while (more && n < QD);
            n += f_used(f, vq, u + n, QD - n, 0);
            uint16_t before = f->vq[vq].avail_idx;
            for (unsigned k = 0; k < n; k++) {
                unsigned i = (vq - 2) * QD;
                while (i < (vq - 1) * QD && r[i].head != u[k].id)
                    i++;
                assert_true(i < (vq - 1) * QD);
                f_scsi_finish(f, vq, &r[i], u[k].len);
                want_good(&r[i]);
                done++;
                if (posted < TOTAL) {
                    cdb_rw(r[i].cdb, false, i % 3 == 0, (posted * 8) % 8000, 8);
                    f_scsi_post(f, vq, &r[i], false);
                    posted++;
                }
            }
            /* Kick only if the device asked for one in what was added. */
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
            uint16_t after = f->vq[vq].avail_idx;
            if (after != before && vring_need_event(f_avail_event(f, vq), after, before))
                f_kick(f, vq);
        }
    }
    for (unsigned i = 0; i < 2 * QD; i++)
        f_scsi_free(&r[i]);
    free(r);
    f_disconnect(f);
    free(f);
    assert_int_equal(f_server_stop(&srv, true), 0);
}

/* A failed test leaves its server running: stop it (it holds the images'
 * locks). */
static int kill_server(void **state)
{
    (void)state;
    if (srv.pid > 0) {
        kill(srv.pid, SIGKILL);
        f_server_wait(&srv);
    }
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    return tu_qemu_setup("vhost-serve", NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_boot_cycle, tu_need_qemu, kill_server),
        cmocka_unit_test_setup_teardown(test_reboot_and_next_connection, tu_need_qemu, kill_server),
        cmocka_unit_test_setup_teardown(test_notifications, tu_need_qemu, kill_server),
    };
    return cmocka_run_group_tests(tests, group_setup, tu_teardown);
}
