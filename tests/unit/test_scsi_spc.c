/* SPC commands at the CDB level: TEST UNIT READY, INQUIRY (standard and
 * VPD 00/80/83/B0/B1/B2), REQUEST SENSE, unit attentions, REPORT LUNS,
 * MODE SENSE/SELECT (6/10), START STOP UNIT, PREVENT ALLOW MEDIUM
 * REMOVAL, REPORT SUPPORTED OPERATION CODES (and that its CDB usage data
 * matches what the commands refuse), REPORT SUPPORTED TASK MANAGEMENT
 * FUNCTIONS. */
#include "test_scsi_util.h"

/* A fresh 8 MiB raw image per call (a failed test leaves its LUN open). */
static struct ts_lun lun_default(void)
{
    static int k;
    char name[32];
    snprintf(name, sizeof(name), "spc-%d.raw", k++);
    ts_image(name, "raw", "8M");
    ts_image("spc.raw", "raw", "8M");
    return ts_open(name, "raw", 512);
}

static void test_tur_start_stop(void **state)
{
    (void)state;
    struct ts_lun t = lun_default();
    uint8_t tur[6] = { 0 };
    struct ts_res r = TS_NONE(t.lun, tur);
    ts_good(&r);
    assert_int_equal(r.access, SCSI_ACCESS_DONE);
    uint8_t tur_bad[6] = { 0, 0x01 };
    r = TS_NONE(t.lun, tur_bad);
    TS_INVALID_CDB(r, 1, 0);

    uint8_t stop[6] = { 0x1b, 0x01, 0, 0, 0x00, 0 };   /* IMMED, STOP */
    r = TS_NONE(t.lun, stop);
    ts_good(&r);
    assert_int_equal(r.access, SCSI_ACCESS_BARRIER);
    r = TS_NONE(t.lun, tur);
    ts_check(&r, 0x2, 0x04, 0x02);
    uint8_t b[512];
    uint8_t rd[10] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
    r = TS_IN(t.lun, rd, b, 512);
    ts_check(&r, 0x2, 0x04, 0x02);
    uint8_t rs[6] = { 0x03, 0, 0, 0, 18, 0 };
    r = TS_IN(t.lun, rs, b, sizeof(b));
    ts_good(&r);
    struct ts_sense d = ts_sense_decode(b, r.xfer);
    assert_int_equal(d.key, 0x2);
    assert_int_equal(d.asc, 0x04);
    assert_int_equal(d.ascq, 0x02);
    uint8_t inq[6] = { 0x12, 0, 0, 0, 36, 0 };
    r = TS_IN(t.lun, inq, b, sizeof(b));
    ts_good(&r);                    /* INQUIRY still works */

    uint8_t start[6] = { 0x1b, 0, 0, 0, 0x01, 0 };
    r = TS_NONE(t.lun, start);
    ts_good(&r);
    r = TS_NONE(t.lun, tur);
    ts_good(&r);
    r = TS_IN(t.lun, rd, b, 512);
    ts_good(&r);

    /* NO_FLUSH stop, then a reset restarts the unit. */
    uint8_t stop_nf[6] = { 0x1b, 0, 0, 0, 0x04, 0 };
    r = TS_NONE(t.lun, stop_nf);
    ts_good(&r);
    r = TS_NONE(t.lun, tur);
    ts_check(&r, 0x2, 0x04, 0x02);
    scsi_lun_raise_ua(t.lun, SCSI_UA_POWER_ON);
    r = TS_NONE(t.lun, tur);
    ts_check(&r, 0x6, 0x29, 0x00);
    r = TS_NONE(t.lun, tur);
    ts_good(&r);

    /* LOEJ (not removable), power conditions, modifier, reserved. */
    uint8_t ss[6] = { 0x1b, 0, 0, 0, 0x03, 0 };
    r = TS_NONE(t.lun, ss);
    TS_INVALID_CDB(r, 4, 1);
    ss[4] = 0x11;
    r = TS_NONE(t.lun, ss);
    TS_INVALID_CDB(r, 4, 7);
    ss[4] = 0x01;
    ss[3] = 0x02;
    r = TS_NONE(t.lun, ss);
    TS_INVALID_CDB(r, 3, 3);
    ss[3] = 0;
    ss[1] = 0x02;
    r = TS_NONE(t.lun, ss);
    TS_INVALID_CDB(r, 1, 1);

    /* PREVENT ALLOW: 0 and 1; the MMC values 2 and 3 are refused. */
    uint8_t pa[6] = { 0x1e, 0, 0, 0, 1, 0 };
    r = TS_NONE(t.lun, pa);
    ts_good(&r);
    pa[4] = 0;
    r = TS_NONE(t.lun, pa);
    ts_good(&r);
    pa[4] = 2;
    r = TS_NONE(t.lun, pa);
    TS_INVALID_CDB(r, 4, 1);
    ts_close(&t);
}

static void test_inquiry_standard(void **state)
{
    (void)state;
    ts_image("inq.raw", "raw", "1M");
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    snprintf(cfg.vendor, sizeof(cfg.vendor), "ACME");
    snprintf(cfg.product, sizeof(cfg.product), "ImageDisk");
    snprintf(cfg.revision, sizeof(cfg.revision), "1.0");
    struct ts_lun t = ts_open_cfg("inq.raw", "raw", &cfg, true);
    uint8_t b[256];
    memset(b, 0xee, sizeof(b));
    uint8_t inq[6] = { 0x12, 0, 0, 0, 255, 0 };
    struct ts_res r = TS_IN(t.lun, inq, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 96);
    assert_int_equal(r.resid, sizeof(b) - 96);
    assert_int_equal(b[0], 0x00);   /* connected direct access block device */
    assert_int_equal(b[1] & 0x80, 0);   /* not removable */
    assert_int_equal(b[2], 0x06);
    assert_int_equal(b[3] & 0x0f, 2);
    assert_int_equal(b[4], 96 - 5);
    assert_int_equal(b[7] & 0x02, 0x02);   /* CMDQUE */
    assert_memory_equal(b + 8, "ACME    ", 8);
    assert_memory_equal(b + 16, "ImageDisk       ", 16);
    assert_memory_equal(b + 32, "1.0 ", 4);
    assert_int_equal(ts_get(b + 60, 2), 0x0460);   /* SPC-4 */
    assert_int_equal(b[96], 0xee);

    /* Allocation length 36 (what Linux asks first), 5, 0. */
    inq[4] = 36;
    r = TS_IN(t.lun, inq, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 36);
    inq[4] = 5;
    memset(b, 0xee, sizeof(b));
    r = TS_IN(t.lun, inq, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 5);
    assert_int_equal(b[4], 91);
    assert_int_equal(b[5], 0xee);
    inq[4] = 0;
    r = TS_IN(t.lun, inq, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 0);
    assert_int_equal(r.resid, sizeof(b));
    /* The buffer shorter than the allocation length. */
    inq[4] = 96;
    r = TS_IN(t.lun, inq, b, 40);
    ts_good(&r);
    assert_int_equal(r.xfer, 40);
    assert_true(r.overflow);
    assert_int_equal(r.resid, 56);

    /* A page code without EVPD, CMDDT, reserved bits, unknown VPD page. */
    uint8_t bad[6] = { 0x12, 0, 0x80, 0, 255, 0 };
    r = TS_IN(t.lun, bad, b, sizeof(b));
    TS_INVALID_CDB(r, 2, -1);
    bad[2] = 0;
    bad[1] = 0x02;
    r = TS_IN(t.lun, bad, b, sizeof(b));
    TS_INVALID_CDB(r, 1, 1);
    bad[1] = 0x81;
    r = TS_IN(t.lun, bad, b, sizeof(b));
    TS_INVALID_CDB(r, 1, 7);
    bad[1] = 0x01;
    bad[2] = 0x99;
    r = TS_IN(t.lun, bad, b, sizeof(b));
    TS_INVALID_CDB(r, 2, -1);
    ts_close(&t);

    /* Bad settings are refused at creation with a message. */
    struct blk_node *bs;
    struct scuse_err err = { 0 };
    assert_int_equal(blk_open(ts_path("inq.raw"), "raw", 0, NULL, &bs, &err), 0);
    struct scsi_lun *lun = NULL;
    cfg.block_size = 1024;
    assert_true(scsi_lun_create(&cfg, bs, 0, &lun, &err) < 0);
    assert_non_null(strstr(err.msg, "1024"));
    err_clear(&err);
    cfg.block_size = 512;
    snprintf(cfg.vendor, sizeof(cfg.vendor), "A\tB");
    assert_true(scsi_lun_create(&cfg, bs, 0, &lun, &err) < 0);
    assert_non_null(strstr(err.msg, "vendor"));
    assert_null(lun);
    blk_close(bs);
}

static size_t vpd(struct scsi_lun *lun, uint8_t page, uint8_t *b, size_t alloc)
{
    uint8_t cdb[6] = { 0x12, 0x01, page, (uint8_t)(alloc >> 8), (uint8_t)alloc, 0 };
    memset(b, 0xee, alloc);
    struct ts_res r = TS_IN(lun, cdb, b, alloc);
    ts_good(&r);
    assert_int_equal(b[0], 0x00);
    assert_int_equal(b[1], page);
    assert_int_equal(r.xfer, ts_get(b + 2, 2) + 4 < alloc ? ts_get(b + 2, 2) + 4 : alloc);
    return r.xfer;
}

/* The NAA designator of VPD 83 (its length in *len). */
static const uint8_t *naa_of(const uint8_t *b, size_t n, unsigned *len)
{
    for (size_t off = 4; off + 4 <= n; off += 4 + b[off + 3]) {
        if ((b[off + 1] & 0x0f) == 3 && (b[off + 1] & 0x30) == 0) {
            *len = b[off + 3];
            return b + off + 4;
        }
    }
    fail_msg("no NAA designator");
    return NULL;
}

static void test_vpd(void **state)
{
    (void)state;
    ts_image("vpd-a.raw", "raw", "4M");
    ts_image("vpd-b.qcow2", "qcow2", "4M");
    assert_int_equal(ts_sh("ln -sf vpd-a.raw vpd-link.raw"), 0);
    struct ts_lun a = ts_open("vpd-a.raw", "raw", 512);
    uint8_t b[512];

    size_t n = vpd(a.lun, 0x00, b, 255);
    static const uint8_t pages[] = { 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2 };
    assert_int_equal(n, 4 + sizeof(pages));
    assert_memory_equal(b + 4, pages, sizeof(pages));
    /* every listed page is served */
    for (unsigned i = 0; i < sizeof(pages); i++)
        vpd(a.lun, pages[i], b, 255);

    /* Derived serial and NAA: stable for the same image (also through a
     * symbolic link), different for another image. */
    char serial_a[80];
    n = vpd(a.lun, 0x80, b, 255);
    assert_int_equal(n, 4 + 16);
    memcpy(serial_a, b + 4, 16);
    serial_a[16] = 0;
    uint8_t naa_a[16];
    unsigned naa_len;
    n = vpd(a.lun, 0x83, b, 255);
    memcpy(naa_a, naa_of(b, n, &naa_len), 16);
    assert_int_equal(naa_len, 16);
    assert_int_equal(naa_a[0] >> 4, 6);                /* NAA 6: IEEE registered extended */
    assert_int_equal(b[4] & 0x0f, 1);                   /* binary */
    ts_close(&a);

    struct ts_lun l = ts_open("vpd-link.raw", "raw", 4096);
    n = vpd(l.lun, 0x80, b, 255);
    assert_memory_equal(b + 4, serial_a, 16);
    n = vpd(l.lun, 0x83, b, 255);
    assert_memory_equal(naa_of(b, n, &naa_len), naa_a, 16);
    ts_close(&l);

    struct ts_lun q = ts_open("vpd-b.qcow2", "qcow2", 512);
    n = vpd(q.lun, 0x80, b, 255);
    assert_memory_not_equal(b + 4, serial_a, 16);
    n = vpd(q.lun, 0x83, b, 255);
    assert_memory_not_equal(naa_of(b, n, &naa_len), naa_a, 16);
    /* B0 on qcow2: the unmap granularity is the cluster (64 KiB). */
    n = vpd(q.lun, 0xb0, b, 255);
    assert_int_equal(n, 64);
    assert_int_equal(ts_get(b + 28, 4), 65536 / 512);
    ts_close(&q);

    /* Configured identity: serial, 64-bit WWN (NAA 5, as libvirt gives). */
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    snprintf(cfg.serial, sizeof(cfg.serial), "SER-0001");
    snprintf(cfg.vendor, sizeof(cfg.vendor), "ACME");
    cfg.wwn = 0x5000c50015ea71adull;
    cfg.rotation_rate = 1;
    struct ts_lun c = ts_open_cfg("vpd-a.raw", "raw", &cfg, true);
    n = vpd(c.lun, 0x80, b, 255);
    assert_int_equal(n, 4 + 8);
    assert_memory_equal(b + 4, "SER-0001", 8);
    n = vpd(c.lun, 0x83, b, 255);
    const uint8_t *naa = naa_of(b, n, &naa_len);
    assert_int_equal(naa_len, 8);
    assert_int_equal(ts_get(naa, 8), 0x5000c50015ea71adull);
    /* the T10 vendor ID designator: vendor, then the serial */
    bool t10 = false;
    for (size_t off = 4; off + 4 <= n; off += 4 + b[off + 3]) {
        if ((b[off + 1] & 0x0f) == 1) {
            assert_int_equal(b[off] & 0x0f, 2);         /* ASCII */
            assert_int_equal(b[off + 3], 16);
            assert_memory_equal(b + off + 4, "ACME    SER-0001", 16);
            t10 = true;
        }
    }
    assert_true(t10);
    /* Truncated by the allocation length: the page length still tells all. */
    uint8_t cdb[6] = { 0x12, 0x01, 0x83, 0, 6, 0 };
    struct ts_res r = TS_IN(c.lun, cdb, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 6);
    assert_int_equal(ts_get(b + 2, 2), n - 4);
    /* B1: rotation rate */
    n = vpd(c.lun, 0xb1, b, 255);
    assert_int_equal(n, 64);
    assert_int_equal(ts_get(b + 4, 2), 1);
    /* B0: limits */
    n = vpd(c.lun, 0xb0, b, 255);
    assert_int_equal(b[4] & 1, 0);                      /* WSNZ: 0 blocks is to the end */
    assert_int_equal(ts_get(b + 44, 4), (1u << 20) / 512);  /* MAXIMUM ATOMIC TRANSFER LENGTH */
    assert_int_equal(b[5], 255);                        /* COMPARE AND WRITE */
    assert_int_equal(ts_get(b + 8, 4), (32u << 20) / 512);   /* maximum transfer */
    assert_int_equal(ts_get(b + 12, 4), 0);             /* optimal transfer: not a cap */
    assert_true(ts_get(b + 20, 4) > 0);                 /* unmap LBA count */
    assert_true(ts_get(b + 24, 4) > 0);                 /* unmap descriptors */
    assert_int_equal(ts_get(b + 32, 4), 0x80000000u);   /* UGAVALID */
    assert_true(ts_get(b + 36, 8) > 0);                 /* WRITE SAME */
    /* B2: thin, UNMAP and WRITE SAME unmap, LBPRZ */
    n = vpd(c.lun, 0xb2, b, 255);
    assert_int_equal(n, 8);
    assert_int_equal(b[5] & 0xe4, 0xe4);
    assert_int_equal(b[6] & 0x07, 2);
    ts_close(&c);

    /* 64-bit NAA 6 WWN: its high half, the extension derived. */
    cfg.wwn = 0x6001405aabbccdd0ull;
    c = ts_open_cfg("vpd-a.raw", "raw", &cfg, true);
    n = vpd(c.lun, 0x83, b, 255);
    naa = naa_of(b, n, &naa_len);
    assert_int_equal(naa_len, 16);
    assert_int_equal(ts_get(naa, 8), 0x6001405aabbccdd0ull);
    assert_memory_equal(naa + 8, naa_a + 8, 8);
    ts_close(&c);

    /* Discard off: no provisioning, no unmap limits. */
    cfg.discard = false;
    cfg.block_size = 4096;
    c = ts_open_cfg("vpd-a.raw", "raw", &cfg, true);
    n = vpd(c.lun, 0xb2, b, 255);
    assert_int_equal(b[5], 0);
    assert_int_equal(b[6] & 0x07, 0);
    n = vpd(c.lun, 0xb0, b, 255);
    assert_int_equal(ts_get(b + 8, 4), (32u << 20) / 4096);
    assert_int_equal(ts_get(b + 20, 4), 0);
    assert_int_equal(ts_get(b + 24, 4), 0);
    ts_close(&c);

    /* A policy refusing UNMAP and WRITE SAME(10) takes their bits away. */
    scsi_lun_config_default(&cfg);
    struct scuse_err err = { 0 };
    assert_int_equal(scsi_policy_parse("deny=0x42,0x41", &cfg, &err), 0);
    c = ts_open_cfg("vpd-a.raw", "raw", &cfg, true);
    n = vpd(c.lun, 0xb2, b, 255);
    assert_int_equal(b[5] & 0xe0, 0x40);
    ts_close(&c);
}

static void test_request_sense_and_ua(void **state)
{
    (void)state;
    struct ts_lun t = lun_default();
    uint8_t b[256];
    uint8_t rs[6] = { 0x03, 0, 0, 0, 252, 0 };
    struct ts_res r = TS_IN(t.lun, rs, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 18);
    assert_int_equal(b[0], 0x70);
    assert_int_equal(b[2], 0);      /* NO SENSE */
    rs[1] = 0x01;                   /* DESC */
    r = TS_IN(t.lun, rs, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 8);
    assert_int_equal(b[0], 0x72);
    rs[1] = 0x02;
    r = TS_IN(t.lun, rs, b, sizeof(b));
    TS_INVALID_CDB(r, 1, 1);
    rs[1] = 0;

    /* Unit attentions: INQUIRY and REPORT LUNS pass and leave them;
     * other commands report them one at a time, power-on first. */
    scsi_lun_raise_ua(t.lun, SCSI_UA_MODE_CHANGED);
    scsi_lun_raise_ua(t.lun, SCSI_UA_CAPACITY_CHANGED);
    uint8_t inq[6] = { 0x12, 0, 0, 0, 36, 0 };
    r = TS_IN(t.lun, inq, b, sizeof(b));
    ts_good(&r);
    uint8_t rl[12] = { 0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0 };
    r = TS_IN(t.lun, rl, b, sizeof(b));
    ts_good(&r);
    uint8_t tur[6] = { 0 };
    r = TS_NONE(t.lun, tur);
    ts_check(&r, 0x6, 0x2a, 0x09);
    r = TS_NONE(t.lun, tur);
    ts_check(&r, 0x6, 0x2a, 0x01);
    r = TS_NONE(t.lun, tur);
    ts_good(&r);

    /* A reset supersedes what was pending. */
    scsi_lun_raise_ua(t.lun, SCSI_UA_MODE_CHANGED);
    scsi_lun_raise_ua(t.lun, SCSI_UA_POWER_ON);
    r = TS_NONE(t.lun, tur);
    ts_check(&r, 0x6, 0x29, 0x00);
    r = TS_NONE(t.lun, tur);
    ts_good(&r);

    /* REQUEST SENSE returns the unit attention and clears it; truncated
     * by its allocation length. */
    scsi_lun_raise_ua(t.lun, SCSI_UA_POWER_ON);
    rs[4] = 14;
    r = TS_IN(t.lun, rs, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 14);
    assert_int_equal(b[2], 0x6);
    assert_int_equal(b[12], 0x29);
    r = TS_NONE(t.lun, tur);
    ts_good(&r);

    /* An unknown opcode reports (and consumes) the pending attention. */
    scsi_lun_raise_ua(t.lun, SCSI_UA_CAPACITY_CHANGED);
    uint8_t unk[6] = { 0x02 };
    r = TS_NONE(t.lun, unk);
    ts_check(&r, 0x6, 0x2a, 0x09);
    r = TS_NONE(t.lun, unk);
    ts_check(&r, 0x5, 0x20, 0x00);

    /* REPORT LUNS clears REPORTED LUNS DATA HAS CHANGED. */
    scsi_lun_raise_ua(t.lun, SCSI_UA_LUNS_CHANGED);
    r = TS_IN(t.lun, rl, b, sizeof(b));
    ts_good(&r);
    r = TS_NONE(t.lun, tur);
    ts_good(&r);
    scsi_lun_raise_ua(t.lun, SCSI_UA_LUNS_CHANGED);
    r = TS_NONE(t.lun, tur);
    ts_check(&r, 0x6, 0x3f, 0x0e);
    ts_close(&t);
}

static void test_report_luns(void **state)
{
    (void)state;
    ts_image("luns.raw", "raw", "1M");
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    struct blk_node *bs;
    struct scuse_err err = { 0 };
    assert_int_equal(blk_open(ts_path("luns.raw"), "raw", 0, NULL, &bs, &err), 0);
    static const uint16_t ids[] = { 0, 5, 255, 300, 16383 };
    for (unsigned i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        struct scsi_lun *lun;
        assert_int_equal(scsi_lun_create(&cfg, bs, ids[i], &lun, &err), 0);
        uint8_t b[64];
        memset(b, 0xee, sizeof(b));
        uint8_t rl[12] = { 0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0 };
        struct ts_res r = TS_IN(lun, rl, b, sizeof(b));
        ts_good(&r);
        assert_int_equal(r.xfer, 16);
        assert_int_equal(ts_get(b, 4), 8);
        if (ids[i] < 256) {
            assert_int_equal(b[8], 0);
            assert_int_equal(b[9], ids[i]);
        } else {
            assert_int_equal(b[8], 0x40 | (ids[i] >> 8));   /* flat space */
            assert_int_equal(b[9], ids[i] & 0xff);
        }
        assert_int_equal(ts_get(b + 10, 6), 0);
        /* SELECT REPORT 02h: the same; 01h: no well-known LUs. */
        rl[2] = 0x02;
        r = TS_IN(lun, rl, b, sizeof(b));
        ts_good(&r);
        assert_int_equal(r.xfer, 16);
        rl[2] = 0x01;
        r = TS_IN(lun, rl, b, sizeof(b));
        ts_good(&r);
        assert_int_equal(r.xfer, 8);
        assert_int_equal(ts_get(b, 4), 0);
        rl[2] = 0x03;
        r = TS_IN(lun, rl, b, sizeof(b));
        TS_INVALID_CDB(r, 2, -1);
        rl[2] = 0;
        rl[1] = 0x10;
        r = TS_IN(lun, rl, b, sizeof(b));
        TS_INVALID_CDB(r, 1, 4);
        rl[1] = 0;
        /* Allocation length 4: only the list length. */
        rl[9] = 4;
        r = TS_IN(lun, rl, b, sizeof(b));
        ts_good(&r);
        assert_int_equal(r.xfer, 4);
        assert_int_equal(ts_get(b, 4), 8);
        scsi_lun_destroy(lun);
    }
    struct scsi_lun *lun = NULL;
    assert_true(scsi_lun_create(&cfg, bs, 16384, &lun, &err) < 0);
    blk_close(bs);
}

/* MODE SENSE; returns the bytes moved. */
static size_t mode_sense(struct scsi_lun *lun, bool ten, uint8_t byte1, uint8_t pcpage,
                         uint8_t sub, uint8_t *b, size_t alloc)
{
    uint8_t c6[6] = { 0x1a, byte1, pcpage, sub, (uint8_t)alloc, 0 };
    uint8_t c10[10] = { 0x5a, byte1, pcpage, sub, 0, 0, 0, (uint8_t)(alloc >> 8),
                        (uint8_t)alloc, 0 };
    memset(b, 0xee, 512);
    struct ts_res r = ten ? TS_IN(lun, c10, b, 512) : TS_IN(lun, c6, b, 512);
    ts_good(&r);
    return r.xfer;
}

/* Offset of page in a MODE SENSE answer, or 0. */
static size_t find_page(const uint8_t *b, size_t n, bool ten, uint8_t page)
{
    size_t hlen = ten ? 8 : 4;
    size_t bd = ten ? ts_get(b + 6, 2) : b[3];
    for (size_t off = hlen + bd; off + 2 <= n; off += 2 + b[off + 1])
        if ((b[off] & 0x3f) == page)
            return off;
    return 0;
}

static void test_mode_sense(void **state)
{
    (void)state;
    struct ts_lun t = lun_default();
    uint8_t b[512];
    for (int ten = 0; ten < 2; ten++) {
        size_t hlen = ten ? 8 : 4;
        size_t n = mode_sense(t.lun, ten, 0, 0x3f, 0, b, 255);
        size_t total = hlen + 8 + 12 + 20 + 12;
        assert_int_equal(n, total);
        assert_int_equal(ten ? ts_get(b, 2) : b[0], total - (ten ? 2 : 1));
        uint8_t dev = b[ten ? 3 : 2];
        assert_int_equal(dev, 0x10);                    /* DPOFUA, not WP */
        assert_int_equal(ten ? ts_get(b + 6, 2) : b[3], 8);
        assert_int_equal(ts_get(b + hlen, 4), (8u << 20) / 512);
        assert_int_equal(ts_get(b + hlen + 5, 3), 512);
        size_t p1 = find_page(b, n, ten, 0x01), p8 = find_page(b, n, ten, 0x08),
               pa = find_page(b, n, ten, 0x0a);
        assert_int_equal(p1, hlen + 8);
        assert_int_equal(p8, p1 + 12);
        assert_int_equal(pa, p8 + 20);
        assert_int_equal(b[p8 + 1], 0x12);
        assert_int_equal(b[p8 + 2] & 0x04, 0x04);        /* WCE on by default */
        assert_int_equal(b[pa + 2] & 0x04, 0);           /* fixed sense */
        assert_int_equal(b[total], 0xee);

        /* DBD: no block descriptor; one page. */
        n = mode_sense(t.lun, ten, 0x08, 0x08, 0, b, 255);
        assert_int_equal(n, hlen + 20);
        assert_int_equal(b[hlen], 0x08);
        /* Subpage FFh: all subpages of the page (only 0 here). */
        n = mode_sense(t.lun, ten, 0x08, 0x0a, 0xff, b, 255);
        assert_int_equal(n, hlen + 12);
        /* Changeable values: WCE and D_SENSE only. */
        n = mode_sense(t.lun, ten, 0x08, 0x40 | 0x3f, 0, b, 255);
        assert_int_equal(n, hlen + 44);
        for (size_t i = hlen + 2; i < hlen + 12; i++)
            assert_int_equal(b[i], 0);                   /* page 01: nothing */
        assert_int_equal(b[hlen + 12 + 2], 0x04);
        for (size_t i = hlen + 12 + 3; i < hlen + 32; i++)
            assert_int_equal(b[i], 0);
        assert_int_equal(b[hlen + 32 + 2], 0x04);
        /* Defaults. */
        n = mode_sense(t.lun, ten, 0x08, 0x80 | 0x08, 0, b, 255);
        assert_int_equal(b[hlen + 2] & 0x04, 0x04);
        /* Truncation: the mode data length still counts everything. */
        n = mode_sense(t.lun, ten, 0, 0x3f, 0, b, 6);
        assert_int_equal(n, 6);
        assert_int_equal(ten ? ts_get(b, 2) : b[0], total - (ten ? 2 : 1));
        assert_int_equal(b[6], 0xee);
    }
    /* LLBAA: the 16-byte block descriptor. */
    size_t n = mode_sense(t.lun, true, 0x10, 0x08, 0, b, 255);
    assert_int_equal(n, 8 + 16 + 20);
    assert_int_equal(b[4] & 1, 1);
    assert_int_equal(ts_get(b + 6, 2), 16);
    assert_int_equal(ts_get(b + 8, 8), (8u << 20) / 512);
    assert_int_equal(ts_get(b + 20, 4), 512);

    /* Refused: saved values, unknown page, subpage, LLBAA in (6). */
    uint8_t c[6] = { 0x1a, 0, 0xc0 | 0x08, 0, 255, 0 };
    struct ts_res r = TS_IN(t.lun, c, b, 255);
    ts_check(&r, 0x5, 0x39, 0x00);
    c[2] = 0x1c;
    r = TS_IN(t.lun, c, b, 255);
    TS_INVALID_CDB(r, 2, 5);
    c[2] = 0x08;
    c[3] = 0x01;
    r = TS_IN(t.lun, c, b, 255);
    TS_INVALID_CDB(r, 3, -1);
    c[3] = 0;
    c[1] = 0x10;
    r = TS_IN(t.lun, c, b, 255);
    TS_INVALID_CDB(r, 1, 4);
    ts_close(&t);

    /* Read-only: WP. Write cache off: WCE 0. 4096-byte blocks. */
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    cfg.read_only = true;
    cfg.write_cache = false;
    cfg.block_size = 4096;
    t = ts_open_cfg("spc.raw", "raw", &cfg, false);
    n = mode_sense(t.lun, false, 0, 0x08, 0, b, 255);
    assert_int_equal(b[2], 0x90);
    assert_int_equal(ts_get(b + 4, 4), (8u << 20) / 4096);
    assert_int_equal(ts_get(b + 9, 3), 4096);
    assert_int_equal(b[12 + 2] & 0x04, 0);
    ts_close(&t);
}

static struct ts_res mode_select(struct scsi_lun *lun, bool ten, uint8_t byte1, uint8_t *p,
                                 size_t len)
{
    uint8_t c6[6] = { 0x15, byte1, 0, 0, (uint8_t)len, 0 };
    uint8_t c10[10] = { 0x55, byte1, 0, 0, 0, 0, 0, (uint8_t)(len >> 8), (uint8_t)len, 0 };
    return ten ? TS_OUT(lun, c10, p, len) : TS_OUT(lun, c6, p, len);
}

static void test_mode_select(void **state)
{
    (void)state;
    struct ts_lun t = lun_default();
    uint8_t b[512], p[128];
    for (int ten = 0; ten < 2; ten++) {
        size_t hlen = ten ? 8 : 4;
        /* Sense the caching page with its block descriptor, clear WCE,
         * send it back (as sdparm/Linux do). */
        size_t n = mode_sense(t.lun, ten, 0, 0x08, 0, b, 255);
        memcpy(p, b, n);
        memset(p, 0, ten ? 2 : 1);   /* mode data length: reserved */
        p[ten ? 3 : 2] = 0;          /* device-specific: reserved */
        p[hlen + 8 + 2] &= (uint8_t)~0x04;
        struct ts_res r = mode_select(t.lun, ten, 0x10, p, n);
        ts_good(&r);
        assert_int_equal(r.access, SCSI_ACCESS_BARRIER);
        assert_int_equal(r.xfer, n);
        n = mode_sense(t.lun, ten, 0x08, 0x08, 0, b, 255);
        assert_int_equal(b[hlen + 2] & 0x04, 0);
        /* and back on, without block descriptor */
        memcpy(p, b, n);
        memset(p, 0, hlen);
        p[hlen + 2] |= 0x04;
        r = mode_select(t.lun, ten, 0x10, p, n);
        ts_good(&r);
        mode_sense(t.lun, ten, 0x08, 0x08, 0, b, 255);
        assert_int_equal(b[hlen + 2] & 0x04, 0x04);

        /* Every refused field, each leaving everything unchanged. */
        n = mode_sense(t.lun, ten, 0x08, 0x3f, 0, b, 255);
        size_t p8 = hlen + 12, pa = hlen + 32;
        #define RESET() do { memcpy(p, b, n); memset(p, 0, hlen); p[p8 + 2] &= (uint8_t)~0x04; } while (0)
        RESET();
        p[p8 + 2] |= 0x01;          /* RCD: not changeable */
        r = mode_select(t.lun, ten, 0x10, p, n);
        TS_INVALID_PARAM(r, (unsigned)(p8 + 2), 0);
        RESET();
        p[pa + 3] = 0;              /* queue algorithm modifier: not changeable */
        r = mode_select(t.lun, ten, 0x10, p, n);
        TS_INVALID_PARAM(r, (unsigned)(pa + 3), 4);
        RESET();
        p[p8 + 1] = 0x10;           /* wrong page length */
        r = mode_select(t.lun, ten, 0x10, p, n);
        TS_INVALID_PARAM(r, (unsigned)(p8 + 1), -1);
        RESET();
        p[p8] = 0x1c;               /* a page not served */
        r = mode_select(t.lun, ten, 0x10, p, n);
        TS_INVALID_PARAM(r, (unsigned)p8, 5);
        RESET();
        p[p8] = 0x48;               /* SPF */
        r = mode_select(t.lun, ten, 0x10, p, n);
        TS_INVALID_PARAM(r, (unsigned)p8, 6);
        RESET();
        p[ten ? 2 : 1] = 0x05;      /* medium type */
        r = mode_select(t.lun, ten, 0x10, p, n);
        TS_INVALID_PARAM(r, ten ? 2 : 1, -1);
        /* truncated page */
        RESET();
        r = mode_select(t.lun, ten, 0x10, p, n - 3);
        ts_check(&r, 0x5, 0x1a, 0x00);
        r = mode_select(t.lun, ten, 0x10, p, hlen - 1);
        ts_check(&r, 0x5, 0x1a, 0x00);
        /* SP: saving not supported */
        RESET();
        r = mode_select(t.lun, ten, 0x11, p, n);
        TS_INVALID_CDB(r, 1, 0);
        #undef RESET
        mode_sense(t.lun, ten, 0x08, 0x08, 0, b, 255);
        assert_int_equal(b[hlen + 2] & 0x04, 0x04);     /* still on */

        /* A block descriptor with another block length. */
        n = mode_sense(t.lun, ten, 0, 0x08, 0, b, 255);
        memcpy(p, b, n);
        memset(p, 0, hlen);
        p[ten ? 7 : 3] = 8;
        p[hlen + 6] = 0x10;         /* 4096 */
        r = mode_select(t.lun, ten, 0x10, p, n);
        TS_INVALID_PARAM(r, (unsigned)(hlen + 5), -1);
        p[hlen + 6] = 0x02;
        p[ten ? 7 : 3] = 4;         /* a descriptor length other than 0 or 8 */
        r = mode_select(t.lun, ten, 0x10, p, n);
        TS_INVALID_PARAM(r, ten ? 6 : 3, -1);
        /* Parameter list length 0: nothing. */
        r = mode_select(t.lun, ten, 0x10, p, 0);
        ts_good(&r);
        assert_int_equal(r.access, SCSI_ACCESS_DONE);
    }

    /* D_SENSE: errors come in descriptor format from then on; a reset
     * returns the default (fixed), as it does WCE. */
    size_t n = mode_sense(t.lun, false, 0x08, 0x0a, 0, b, 255);
    memcpy(p, b, n);
    p[0] = 0;
    p[4 + 2] |= 0x04;
    struct ts_res r = mode_select(t.lun, false, 0x10, p, n);
    ts_good(&r);
    uint8_t bad[6] = { 0x12, 0x80, 0, 0, 36, 0 };
    r = TS_IN(t.lun, bad, b, sizeof(b));
    TS_INVALID_CDB(r, 1, 7);
    assert_int_equal(r.sense[0], 0x72);
    assert_int_equal(r.sense_len, 8 + 8);
    n = mode_sense(t.lun, false, 0x08, 0x08, 0, b, 255);
    memcpy(p, b, n);
    p[0] = 0;
    p[4 + 2] &= (uint8_t)~0x04;
    r = mode_select(t.lun, false, 0x10, p, n);
    ts_good(&r);
    scsi_lun_raise_ua(t.lun, SCSI_UA_POWER_ON);
    uint8_t rs[6] = { 0x03, 0, 0, 0, 18, 0 };
    r = TS_IN(t.lun, rs, b, sizeof(b));
    ts_good(&r);
    mode_sense(t.lun, false, 0x08, 0x3f, 0, b, 255);
    assert_int_equal(b[4 + 12 + 2] & 0x04, 0x04);       /* WCE back */
    assert_int_equal(b[4 + 32 + 2] & 0x04, 0);          /* D_SENSE back */
    r = TS_IN(t.lun, bad, b, sizeof(b));
    TS_INVALID_CDB(r, 1, 7);
    assert_int_equal(r.sense[0], 0x70);
    ts_close(&t);
}

/* The commands a default LUN serves, as (opcode, service action). */
static const struct { uint8_t op; int sa; uint8_t len; } served[] = {
    { 0x00, -1, 6 }, { 0x03, -1, 6 }, { 0x08, -1, 6 }, { 0x0a, -1, 6 }, { 0x12, -1, 6 },
    { 0x15, -1, 6 }, { 0x1a, -1, 6 }, { 0x1b, -1, 6 }, { 0x1e, -1, 6 }, { 0x25, -1, 10 },
    { 0x28, -1, 10 }, { 0x2a, -1, 10 }, { 0x2e, -1, 10 }, { 0x2f, -1, 10 }, { 0x34, -1, 10 },
    { 0x35, -1, 10 }, { 0x37, -1, 10 }, { 0x41, -1, 10 }, { 0x42, -1, 10 },
    { 0x48, 0x01, 10 }, { 0x48, 0x02, 10 }, { 0x48, 0x03, 10 }, { 0x48, 0x1f, 10 },
    { 0x55, -1, 10 }, { 0x5a, -1, 10 }, { 0x83, 0x00, 16 }, { 0x84, 0x00, 16 }, { 0x84, 0x03, 16 },
    { 0x88, -1, 16 }, { 0x89, -1, 16 }, { 0x8a, -1, 16 }, { 0x8b, -1, 16 }, { 0x8e, -1, 16 },
    { 0x8f, -1, 16 }, { 0x90, -1, 16 }, { 0x91, -1, 16 }, { 0x93, -1, 16 }, { 0x9c, -1, 16 },
    { 0x9e, 0x10, 16 }, { 0x9e, 0x12, 16 }, { 0xa0, -1, 12 }, { 0xa3, 0x0c, 12 },
    { 0xa3, 0x0d, 12 }, { 0xa8, -1, 12 }, { 0xaa, -1, 12 }, { 0xae, -1, 12 }, { 0xaf, -1, 12 },
    { 0xb7, -1, 12 },
};
#define N_SERVED (sizeof(served) / sizeof(served[0]))

static size_t rsoc(struct scsi_lun *lun, uint8_t options, uint8_t op, uint16_t sa,
                   uint32_t alloc, uint8_t *b, size_t blen, struct ts_res *out)
{
    uint8_t c[12] = { 0xa3, 0x0c, options, op, (uint8_t)(sa >> 8), (uint8_t)sa };
    ts_be(c + 6, alloc, 4);
    memset(b, 0xee, blen);
    *out = TS_IN(lun, c, b, blen);
    return out->xfer;
}

static void test_rsoc(void **state)
{
    (void)state;
    struct ts_lun t = lun_default();
    uint8_t b[2048];
    struct ts_res r;
    for (int rctd = 0; rctd < 2; rctd++) {
        size_t dl = rctd ? 20 : 8;
        size_t n = rsoc(t.lun, rctd ? 0x80 : 0, 0, 0, sizeof(b), b, sizeof(b), &r);
        ts_good(&r);
        assert_int_equal(n, 4 + N_SERVED * dl);
        assert_int_equal(ts_get(b, 4), N_SERVED * dl);
        for (size_t i = 0; i < N_SERVED; i++) {
            const uint8_t *d = b + 4 + i * dl;
            assert_int_equal(d[0], served[i].op);
            assert_int_equal(!!(d[5] & 0x01), served[i].sa >= 0);
            if (served[i].sa >= 0)
                assert_int_equal(ts_get(d + 2, 2), served[i].sa);
            assert_int_equal(!!(d[5] & 0x02), rctd);
            assert_int_equal(ts_get(d + 6, 2), served[i].len);
            if (rctd) {
                assert_int_equal(ts_get(d + 8, 2), 10);
                assert_true(ts_get(d + 16, 4) > 0);      /* recommended timeout */
            }
        }
    }
    /* Truncated by the allocation length. */
    size_t n = rsoc(t.lun, 0, 0, 0, 10, b, sizeof(b), &r);
    ts_good(&r);
    assert_int_equal(n, 10);
    assert_int_equal(ts_get(b, 4), N_SERVED * 8);
    assert_int_equal(b[10], 0xee);

    /* One command: READ(10) with its usage data: DPO and GROUP NUMBER are
     * accepted (and ignored), so they are there too. */
    n = rsoc(t.lun, 1, 0x28, 0, 64, b, sizeof(b), &r);
    ts_good(&r);
    static const uint8_t read10[] = { 0x28, 0x18, 0xff, 0xff, 0xff, 0xff, 0x3f, 0xff, 0xff, 0x00 };
    assert_int_equal(n, 4 + 10);
    assert_int_equal(b[1] & 0x07, 3);
    assert_int_equal(ts_get(b + 2, 2), 10);
    assert_memory_equal(b + 4, read10, 10);
    /* With the timeouts descriptor. */
    n = rsoc(t.lun, 0x81, 0x28, 0, 64, b, sizeof(b), &r);
    ts_good(&r);
    assert_int_equal(n, 4 + 10 + 12);
    assert_int_equal(b[1] & 0x80, 0x80);
    assert_int_equal(ts_get(b + 14, 2), 10);
    /* opcode + service action: READ CAPACITY(16). */
    n = rsoc(t.lun, 2, 0x9e, 0x10, 64, b, sizeof(b), &r);
    ts_good(&r);
    assert_int_equal(n, 4 + 16);
    assert_int_equal(b[4], 0x9e);
    assert_int_equal(b[5], 0x10);
    assert_int_equal(ts_get(b + 14, 4), 0xffffffff);   /* allocation length */
    /* option 3 serves both kinds */
    n = rsoc(t.lun, 3, 0x9e, 0x12, 64, b, sizeof(b), &r);
    ts_good(&r);
    assert_int_equal(b[5], 0x12);
    n = rsoc(t.lun, 3, 0x2a, 0x1234, 64, b, sizeof(b), &r);
    ts_good(&r);
    assert_int_equal(b[4], 0x2a);
    /* Not supported: opcode unknown, service action unknown. */
    n = rsoc(t.lun, 1, 0xff, 0, 64, b, sizeof(b), &r);
    ts_good(&r);
    assert_int_equal(n, 4);
    assert_int_equal(b[1] & 0x07, 1);
    n = rsoc(t.lun, 2, 0x9e, 0x11, 64, b, sizeof(b), &r);
    ts_good(&r);
    assert_int_equal(b[1] & 0x07, 1);
    /* Options that do not fit the opcode, reserved options. */
    rsoc(t.lun, 1, 0x9e, 0, 64, b, sizeof(b), &r);
    TS_INVALID_CDB(r, 2, 2);
    rsoc(t.lun, 2, 0x28, 0, 64, b, sizeof(b), &r);
    TS_INVALID_CDB(r, 2, 2);
    rsoc(t.lun, 4, 0x28, 0, 64, b, sizeof(b), &r);
    TS_INVALID_CDB(r, 2, 2);
    rsoc(t.lun, 0x40, 0, 0, 64, b, sizeof(b), &r);
    TS_INVALID_CDB(r, 2, 6);
    ts_close(&t);

    /* Discard off: UNMAP is not served and not listed. */
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    cfg.discard = false;
    t = ts_open_cfg("spc.raw", "raw", &cfg, true);
    n = rsoc(t.lun, 0, 0, 0, sizeof(b), b, sizeof(b), &r);
    assert_int_equal(n, 4 + (N_SERVED - 1) * 8);
    for (size_t i = 4; i < n; i += 8)
        assert_int_not_equal(b[i], 0x42);
    rsoc(t.lun, 1, 0x42, 0, 64, b, sizeof(b), &r);
    assert_int_equal(b[1] & 0x07, 1);
    uint8_t unmap[10] = { 0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0 };
    uint8_t list[24] = { 0 };
    r = TS_OUT(t.lun, unmap, list, sizeof(list));
    ts_check(&r, 0x5, 0x20, 0x00);
    ts_close(&t);
}

/* What RSOC says about each CDB bit is what the command does: a bit its
 * usage data leaves out is refused (INVALID FIELD IN CDB pointing at its
 * byte) or ignored (the outcome of the command without it). */
static void test_usage_data_honest(void **state)
{
    (void)state;
    struct ts_lun t = lun_default();
    uint8_t *b = malloc(1 << 20);
    assert_non_null(b);
    unsigned refused = 0, ignored = 0;
    for (size_t i = 0; i < N_SERVED; i++) {
        uint8_t u[32];
        struct ts_res r;
        size_t n = rsoc(t.lun, served[i].sa >= 0 ? 2 : 1, served[i].op,
                        served[i].sa >= 0 ? (uint16_t)served[i].sa : 0, sizeof(u), u, sizeof(u),
                        &r);
        ts_good(&r);
        assert_int_equal(n, 4 + served[i].len);
        const uint8_t *usage = u + 4;
        /* Baseline: opcode and service action, everything else zero
         * (TEST UNIT READY-like; some commands refuse it, which is fine). */
        uint8_t cdb[16] = { served[i].op, served[i].sa >= 0 ? (uint8_t)served[i].sa : 0 };
        if (served[i].op == 0x1a || served[i].op == 0x5a)
            cdb[2] = 0x08;          /* MODE SENSE: a page that exists */
        struct ts_res base = ts_run(t.lun, cdb, served[i].len, SCSI_DIR_NONE, NULL, 0);
        for (unsigned byte = 1; byte < served[i].len; byte++) {
            for (int bit = 0; bit < 8; bit++) {
                uint8_t m = (uint8_t)(1u << bit);
                if (usage[byte] & m)
                    continue;
                /* The SERVICE ACTION field: another bit names another
                 * command (SANITIZE's OVERWRITE and CRYPTOGRAPHIC ERASE). */
                if (byte == 1 && bit < 5 && served[i].sa >= 0)
                    continue;
                uint8_t c2[16];
                memcpy(c2, cdb, sizeof(c2));
                c2[byte] |= m;
                r = ts_run(t.lun, c2, served[i].len, SCSI_DIR_NONE, NULL, 0);
                if (r.status == SCSI_STATUS_CHECK_CONDITION) {
                    struct ts_sense d = ts_sense_decode(r.sense, r.sense_len);
                    if (d.key == 0x5 && d.asc == 0x24 && d.sks_valid &&
                        ts_get(d.sks + 1, 2) == byte && (d.sks[0] & 0x07) >= bit) {
                        refused++;
                        continue;
                    }
                }
                if (r.status != base.status)
                    fail_msg("%02x/%d byte %u bit %d: status %#x, without it %#x",
                             served[i].op, served[i].sa, byte, bit, r.status, base.status);
                ignored++;
            }
        }
        /* Start the next command on a started unit with nothing pending. */
        uint8_t start[6] = { 0x1b, 0, 0, 0, 1, 0 };
        r = TS_NONE(t.lun, start);
    }
    printf("# usage data: %u unused bits refused, %u ignored\n", refused, ignored);
    assert_true(refused > 300);
    free(b);
    ts_close(&t);
}

static void test_rtmf(void **state)
{
    (void)state;
    struct ts_lun t = lun_default();
    uint8_t b[32];
    uint8_t c[12] = { 0xa3, 0x0d, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0 };
    memset(b, 0xee, sizeof(b));
    struct ts_res r = TS_IN(t.lun, c, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 4);
    assert_int_equal(b[0], 0x88);   /* ABORT TASK, LOGICAL UNIT RESET */
    assert_int_equal(b[1], 0);
    c[2] = 0x80;                    /* REPD: the extended format */
    r = TS_IN(t.lun, c, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 16);
    assert_int_equal(b[3], 0x0c);
    c[9] = 2;
    r = TS_IN(t.lun, c, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 2);
    c[2] = 0x40;
    r = TS_IN(t.lun, c, b, sizeof(b));
    TS_INVALID_CDB(r, 2, 6);
    /* An unknown MAINTENANCE IN service action: the field is bad. */
    c[1] = 0x0e;
    c[2] = 0;
    r = TS_IN(t.lun, c, b, sizeof(b));
    TS_INVALID_CDB(r, 1, 4);
    ts_close(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TS_TEST(test_tur_start_stop),
        TS_TEST(test_inquiry_standard),
        TS_TEST(test_vpd),
        TS_TEST(test_request_sense_and_ua),
        TS_TEST(test_report_luns),
        TS_TEST(test_mode_sense),
        TS_TEST(test_mode_select),
        TS_TEST(test_rsoc),
        TS_TEST(test_usage_data_honest),
        TS_TEST(test_rtmf),
    };
    return cmocka_run_group_tests(tests, ts_setup, ts_teardown);
}
