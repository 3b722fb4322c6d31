/* The SBC commands issue 15 added, and the fixes it asked for that are
 * not in test_scsi_sbc.c: VERIFY(12) and WRITE AND VERIFY(12), ORWRITE(16),
 * WRITE ATOMIC(16), SANITIZE, READ DEFECT DATA, SWP, EXTENDED COPY and
 * RECEIVE COPY RESULTS (inside a LUN, between LUNs of one target, and the
 * copies that must be refused: a LUN of no common target). Data effects
 * are judged by reading back and, at the end, by qemu-img compare against
 * a shadow of what the commands should have left. */
#include "test_scsi_util.h"
#include "scsi/scsi_int.h"

#define BS 512u
#define IMG (1u << 20)
#define BLOCKS (IMG / BS)

static uint8_t shadow[IMG];

static void fresh(const char *name)
{
    if (ts_sh("rm -f '%s' && qemu-img create -q -f qcow2 '%s' 1M && "
              "qemu-io -f qcow2 -c 'write -P 0x11 0 1M' '%s'", name, name, name) != 0)
        fail_msg("cannot make %s", name);
    memset(shadow, 0x11, IMG);
}

static void judge(const char *name)
{
    ts_store("new-shadow.raw", shadow, IMG);
    if (ts_sh("qemu-img compare -f qcow2 -F raw '%s' new-shadow.raw", name) != 0)
        fail_msg("%s differs from its shadow", name);
    if (ts_sh("qemu-img check '%s'", name) != 0)
        fail_msg("qemu-img check %s is not clean", name);
}

static void rd(struct scsi_lun *lun, uint64_t lba, uint32_t n, uint8_t *out)
{
    uint8_t cdb[16];
    size_t cl = ts_rw_cdb(cdb, 0x88, lba, n);
    struct ts_res r = ts_run(lun, cdb, cl, SCSI_DIR_FROM_DEV, out, (size_t)n * BS);
    ts_good(&r);
}

static void test_verify12_write_verify12(void **state)
{
    (void)state;
    fresh("v12.qcow2");
    struct ts_lun t = ts_open("v12.qcow2", "qcow2", BS);
    static uint8_t d[4 * BS];
    ts_fill(d, sizeof(d), 7);
    uint8_t wv[12] = { 0xae, 0x02 };            /* BYTCHK */
    ts_be(wv + 2, 100, 4);
    ts_be(wv + 6, 4, 4);
    struct ts_res r = TS_OUT(t.lun, wv, d, sizeof(d));
    ts_good(&r);
    assert_int_equal(r.nblocks, 4);
    memcpy(shadow + 100 * BS, d, sizeof(d));
    uint8_t v[12] = { 0xaf, 0x02 };
    ts_be(v + 2, 100, 4);
    ts_be(v + 6, 4, 4);
    r = TS_OUT(t.lun, v, d, sizeof(d));
    ts_good(&r);
    d[BS + 3] ^= 1;
    r = TS_OUT(t.lun, v, d, sizeof(d));
    struct ts_sense s = ts_check(&r, 0xe, 0x1d, 0x00);
    assert_int_equal(s.info, BS + 3);
    /* Past the end; BYTCHK 10b reserved; DPO accepted. */
    ts_be(v + 2, BLOCKS - 2, 4);
    r = TS_OUT(t.lun, v, d, sizeof(d));
    ts_check(&r, 0x5, 0x21, 0x00);
    v[1] = 0x04;
    r = TS_OUT(t.lun, v, d, sizeof(d));
    TS_INVALID_CDB(r, 1, 2);
    v[1] = 0x10;
    ts_be(v + 2, 100, 4);
    r = TS_OUT(t.lun, v, NULL, 0);
    ts_good(&r);
    ts_close(&t);
    judge("v12.qcow2");
}

static struct ts_res orwrite(struct scsi_lun *lun, uint64_t lba, uint32_t n, void *b, size_t len)
{
    uint8_t cdb[16] = { 0x8b };
    ts_be(cdb + 2, lba, 8);
    ts_be(cdb + 10, n, 4);
    return TS_OUT(lun, cdb, b, len);
}

static void test_orwrite(void **state)
{
    (void)state;
    fresh("or.qcow2");
    struct ts_lun t = ts_open("or.qcow2", "qcow2", BS);
    static uint8_t d[20 * BS], back[20 * BS];
    /* 20 blocks (over two scratch chunks): 0x11 | 0x24 = 0x35. */
    memset(d, 0x24, sizeof(d));
    struct ts_res r = orwrite(t.lun, 7, 20, d, sizeof(d));
    ts_good(&r);
    assert_int_equal(r.access, SCSI_ACCESS_ATOMIC);
    rd(t.lun, 7, 20, back);
    for (size_t i = 0; i < sizeof(back); i++)
        assert_int_equal(back[i], 0x35);
    memset(shadow + 7 * BS, 0x35, sizeof(d));
    /* A short buffer writes nothing; range; 0 blocks; ORPROTECT. */
    r = orwrite(t.lun, 40, 2, d, BS);
    ts_check(&r, 0x5, 0x1a, 0x00);
    r = orwrite(t.lun, BLOCKS - 1, 2, d, 2 * BS);
    ts_check(&r, 0x5, 0x21, 0x00);
    r = orwrite(t.lun, 3, 0, NULL, 0);
    ts_good(&r);
    assert_int_equal(r.access, SCSI_ACCESS_DONE);
    uint8_t cdb[16] = { 0x8b, 0x20 };
    ts_be(cdb + 13, 1, 1);
    r = TS_OUT(t.lun, cdb, d, BS);
    TS_INVALID_CDB(r, 1, 7);
    ts_close(&t);
    judge("or.qcow2");
}

static struct ts_res watomic(struct scsi_lun *lun, uint64_t lba, uint16_t boundary, uint16_t n,
                             void *b, size_t len)
{
    uint8_t cdb[16] = { 0x9c };
    ts_be(cdb + 2, lba, 8);
    ts_be(cdb + 10, boundary, 2);
    ts_be(cdb + 12, n, 2);
    return TS_OUT(lun, cdb, b, len);
}

static void test_write_atomic(void **state)
{
    (void)state;
    fresh("wa.qcow2");
    struct ts_lun t = ts_open("wa.qcow2", "qcow2", BS);
    static uint8_t d[8 * BS];
    ts_fill(d, sizeof(d), 9);
    struct ts_res r = watomic(t.lun, 50, 0, 8, d, sizeof(d));
    ts_good(&r);
    assert_int_equal(r.access, SCSI_ACCESS_ATOMIC);
    memcpy(shadow + 50 * BS, d, sizeof(d));
    /* ATOMIC BOUNDARY is not offered; a short buffer and more than the
     * limit write nothing. */
    r = watomic(t.lun, 60, 1, 8, d, sizeof(d));
    TS_INVALID_CDB(r, 10, -1);
    r = watomic(t.lun, 60, 0, 8, d, 7 * BS);
    ts_check(&r, 0x5, 0x1a, 0x00);
    r = watomic(t.lun, 0, 0, (uint16_t)((1u << 20) / BS + 1), d, sizeof(d));
    TS_INVALID_CDB(r, 12, -1);
    /* The limit is in VPD B0 (MAXIMUM ATOMIC TRANSFER LENGTH). */
    uint8_t inq[6] = { 0x12, 0x01, 0xb0, 0, 64, 0 }, b[64];
    r = TS_IN(t.lun, inq, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(ts_get(b + 44, 4), (1u << 20) / BS);
    ts_close(&t);
    judge("wa.qcow2");
}

static struct ts_res sanitize(struct scsi_lun *lun, uint8_t sa, const uint8_t *p, uint16_t plen)
{
    uint8_t cdb[10] = { 0x48, sa };
    ts_be(cdb + 7, plen, 2);
    return TS_OUT(lun, cdb, (void *)p, plen);
}

static void test_sanitize(void **state)
{
    (void)state;
    fresh("san.qcow2");
    struct ts_lun t = ts_open("san.qcow2", "qcow2", BS);
    static uint8_t back[IMG];
    /* OVERWRITE, two passes with INVERT: the last pass is the pattern. */
    uint8_t p[8] = { 0x82, 0, 0, 3, 0xab, 0xcd, 0xef };
    struct ts_res r = sanitize(t.lun, 0x01, p, 7);
    ts_good(&r);
    assert_int_equal(r.access, SCSI_ACCESS_BARRIER);
    rd(t.lun, 0, BLOCKS / 2, back);
    rd(t.lun, BLOCKS / 2, BLOCKS / 2, back + IMG / 2);
    for (size_t i = 0; i < IMG; i++)
        if (back[i] != p[4 + (i % BS) % 3])
            fail_msg("byte %zu is %#x after OVERWRITE", i, back[i]);
    /* Parameter checks: OVERWRITE COUNT 0, a pattern length that does not
     * match, a list longer than a block; the others take no list. */
    uint8_t bad[8] = { 0x00, 0, 0, 3, 1, 2, 3 };
    r = sanitize(t.lun, 0x01, bad, 7);
    TS_INVALID_PARAM(r, 0, 4);
    bad[0] = 1;
    bad[3] = 2;
    r = sanitize(t.lun, 0x01, bad, 7);
    TS_INVALID_PARAM(r, 2, -1);
    r = sanitize(t.lun, 0x01, bad, 0);
    TS_INVALID_CDB(r, 7, -1);
    r = sanitize(t.lun, 0x02, bad, 8);
    TS_INVALID_CDB(r, 7, -1);
    r = sanitize(t.lun, 0x1f, bad, 8);
    TS_INVALID_CDB(r, 7, -1);
    r = sanitize(t.lun, 0x1f, NULL, 0);
    ts_good(&r);
    /* ZNR is refused; an unknown service action too. */
    r = sanitize(t.lun, 0x42, NULL, 0);
    TS_INVALID_CDB(r, 1, 6);
    r = sanitize(t.lun, 0x05, NULL, 0);
    TS_INVALID_CDB(r, 1, 4);
    /* While one runs, commands get NOT READY, SANITIZE IN PROGRESS;
     * INQUIRY still answers. */
    __atomic_store_n(&t.lun->sanitizing, true, __ATOMIC_RELEASE);
    uint8_t tur[6] = { 0 }, inq[6] = { 0x12, 0, 0, 0, 36, 0 }, ib[36];
    r = TS_NONE(t.lun, tur);
    ts_check(&r, 0x2, 0x04, 0x1b);
    r = TS_IN(t.lun, inq, ib, sizeof(ib));
    ts_good(&r);
    __atomic_store_n(&t.lun->sanitizing, false, __ATOMIC_RELEASE);
    /* BLOCK ERASE: zeros, clusters deallocated. */
    r = sanitize(t.lun, 0x02, NULL, 0);
    ts_good(&r);
    memset(shadow, 0, IMG);
    rd(t.lun, 0, 64, back);
    for (size_t i = 0; i < 64 * BS; i++)
        assert_int_equal(back[i], 0);
    /* IMMED: GOOD at once, the OVERWRITE goes on in the background
     * (TEST UNIT READY says NOT READY, SANITIZE IN PROGRESS until it is
     * done); then the pattern is everywhere. */
    uint8_t p2[8] = { 0x01, 0, 0, 1, 0x5e };
    uint8_t cdb[10] = { 0x48, 0x81, 0, 0, 0, 0, 0, 0, 5, 0 };
    r = TS_OUT(t.lun, cdb, p2, 5);
    ts_good(&r);
    unsigned busy = 0;
    for (int i = 0; i < 20000; i++) {
        r = TS_NONE(t.lun, tur);
        if (r.status == SCSI_STATUS_GOOD)
            break;
        ts_check(&r, 0x2, 0x04, 0x1b);
        busy++;
        usleep(1000);
    }
    ts_good(&r);
    print_message("# IMMED SANITIZE: %u TEST UNIT READYs saw it in progress\n", busy);
    rd(t.lun, BLOCKS - 64, 64, back);
    for (size_t i = 0; i < 64 * BS; i++)
        assert_int_equal(back[i], 0x5e);
    /* And a LUN torn down while one runs waits for it. */
    r = sanitize(t.lun, 0x02, NULL, 0);
    ts_good(&r);
    cdb[1] = 0x82;
    cdb[8] = 0;
    r = TS_OUT(t.lun, cdb, NULL, 0);
    ts_good(&r);
    ts_close(&t);
    judge("san.qcow2");
    assert_int_equal(ts_sh("qemu-img map --output=json san.qcow2 | grep -q '\"data\": true'"), 1);
}

static void test_read_defect_data(void **state)
{
    (void)state;
    fresh("rdd.qcow2");
    struct ts_lun t = ts_open("rdd.qcow2", "qcow2", BS);
    uint8_t c10[10] = { 0x37, 0, 0x1d, 0, 0, 0, 0, 0, 64, 0 }, c12[12] = { 0xb7, 0x0b };
    ts_be(c12 + 6, 64, 4);
    uint8_t b[64];
    struct ts_res r = TS_IN(t.lun, c10, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 4);
    assert_int_equal(b[1], 0x1d);
    assert_int_equal(ts_get(b + 2, 2), 0);
    r = TS_IN(t.lun, c12, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 8);
    assert_int_equal(b[1], 0x0b);
    assert_int_equal(ts_get(b + 4, 4), 0);
    c10[1] = 0x01;                              /* reserved */
    r = TS_IN(t.lun, c10, b, sizeof(b));
    TS_INVALID_CDB(r, 1, 0);
    ts_close(&t);
}

static void mode_select_swp(struct scsi_lun *lun, bool on)
{
    uint8_t p[4 + 12] = { 0, 0, 0, 0, 0x0a, 0x0a, 0, 0x10, on ? 0x08 : 0 };
    uint8_t cdb[6] = { 0x15, 0x10, 0, 0, sizeof(p), 0 };
    struct ts_res r = TS_OUT(lun, cdb, p, sizeof(p));
    ts_good(&r);
}

static void test_swp(void **state)
{
    (void)state;
    fresh("swp.qcow2");
    struct ts_lun t = ts_open("swp.qcow2", "qcow2", BS);
    uint8_t d[BS], cdb[16], ms[6] = { 0x1a, 0x08, 0x0a, 0, 64, 0 }, b[64];
    memset(d, 0x66, sizeof(d));
    /* Changeable, as the control page's mask says. */
    ms[2] = 0x4a;
    struct ts_res r = TS_IN(t.lun, ms, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(b[4 + 4] & 0x08, 0x08);
    mode_select_swp(t.lun, true);
    ms[2] = 0x0a;
    r = TS_IN(t.lun, ms, b, sizeof(b));
    assert_int_equal(b[2] & 0x80, 0x80);        /* WP */
    assert_int_equal(b[4 + 4] & 0x08, 0x08);    /* SWP */
    size_t cl = ts_rw_cdb(cdb, 0x2a, 5, 1);
    r = ts_run(t.lun, cdb, cl, SCSI_DIR_TO_DEV, d, BS);
    ts_check(&r, 0x7, 0x27, 0x02);
    r = orwrite(t.lun, 5, 1, d, BS);
    ts_check(&r, 0x7, 0x27, 0x02);
    r = sanitize(t.lun, 0x02, NULL, 0);
    ts_check(&r, 0x7, 0x27, 0x02);
    mode_select_swp(t.lun, false);
    r = ts_run(t.lun, cdb, cl, SCSI_DIR_TO_DEV, d, BS);
    ts_good(&r);
    memcpy(shadow + 5 * BS, d, BS);
    r = TS_IN(t.lun, ms, b, sizeof(b));
    assert_int_equal(b[2] & 0x80, 0);
    ts_close(&t);
    judge("swp.qcow2");
}

/* An EXTENDED COPY parameter list: one identification descriptor per NAA
 * in naas, one block-to-block segment (src, dst index) of n blocks. */
static size_t xc_list(uint8_t *p, uint8_t list_id, uint8_t usage, struct scsi_lun *const *naas,
                      unsigned ntgt, unsigned si, unsigned di, uint16_t n, uint64_t src,
                      uint64_t dst)
{
    memset(p, 0, 16 + 32 * ntgt + 28);
    p[0] = list_id;
    p[1] = (uint8_t)(usage << 3);
    ts_be(p + 2, 32 * ntgt, 2);
    ts_be(p + 8, 28, 4);
    for (unsigned i = 0; i < ntgt; i++) {
        uint8_t *d = p + 16 + 32 * i;
        d[0] = 0xe4;
        d[4] = 0x01;
        d[5] = 0x03;
        d[7] = naas[i]->naa_len;
        memcpy(d + 8, naas[i]->naa, naas[i]->naa_len);
        ts_be(d + 29, scsi_lun_block_size(naas[i]), 3);
    }
    uint8_t *s = p + 16 + 32 * ntgt;
    s[0] = 0x02;
    ts_be(s + 2, 24, 2);
    ts_be(s + 4, si, 2);
    ts_be(s + 6, di, 2);
    ts_be(s + 10, n, 2);
    ts_be(s + 12, src, 8);
    ts_be(s + 20, dst, 8);
    return 16 + 32 * ntgt + 28;
}

static struct ts_res xcopy(struct scsi_lun *lun, uint8_t *p, size_t len)
{
    uint8_t cdb[16] = { 0x83 };
    ts_be(cdb + 10, len, 4);
    return TS_OUT(lun, cdb, p, len);
}

static struct ts_res rcr(struct scsi_lun *lun, uint8_t sa, uint8_t list_id, uint8_t *b, size_t n)
{
    uint8_t cdb[16] = { 0x84, sa, list_id };
    ts_be(cdb + 10, n, 4);
    return TS_IN(lun, cdb, b, n);
}

static void test_xcopy(void **state)
{
    (void)state;
    fresh("xa.qcow2");
    ts_sh("rm -f xb.qcow2 xc.qcow2 && qemu-img create -q -f qcow2 xb.qcow2 1M && "
          "qemu-img create -q -f qcow2 xc.qcow2 1M");
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    struct ts_lun a = ts_open("xa.qcow2", "qcow2", BS), c = ts_open("xc.qcow2", "qcow2", BS);
    struct ts_lun b = { 0 };
    struct scuse_err err = { 0 };
    assert_int_equal(blk_open(ts_path("xb.qcow2"), "qcow2", BLK_OPEN_RW, NULL, &b.bs, &err), 0);
    assert_int_equal(scsi_lun_create(&cfg, b.bs, 1, &b.lun, &err), 0);
    /* a and b behind one target; c alone (the CVE-2020-28374 case). */
    struct scsi_target *tg;
    assert_int_equal(scsi_target_create(&tg, &err), 0);
    assert_int_equal(scsi_target_add_lun(tg, a.lun, &err), 0);
    assert_int_equal(scsi_target_add_lun(tg, b.lun, &err), 0);
    static uint8_t d[16 * BS], back[16 * BS];
    ts_fill(d, sizeof(d), 3);
    uint8_t wr[16];
    size_t cl = ts_rw_cdb(wr, 0x8a, 0, 16);
    struct ts_res r = ts_run(a.lun, wr, cl, SCSI_DIR_TO_DEV, d, sizeof(d));
    ts_good(&r);
    memcpy(shadow, d, sizeof(d));
    uint8_t p[512], st[64];

    /* No copy yet: no status for list 5. */
    r = rcr(a.lun, 0x00, 5, st, sizeof(st));
    TS_INVALID_CDB(r, 2, -1);
    /* Inside a: blocks 0-15 to 1000-1015, status held (usage 00b). */
    struct scsi_lun *one[] = { a.lun };
    size_t n = xc_list(p, 5, 0, one, 1, 0, 0, 16, 0, 1000);
    r = xcopy(a.lun, p, n);
    ts_good(&r);
    assert_int_equal(r.access, SCSI_ACCESS_BARRIER);
    rd(a.lun, 1000, 16, back);
    assert_memory_equal(back, d, sizeof(d));
    memcpy(shadow + 1000 * BS, d, sizeof(d));
    r = rcr(a.lun, 0x00, 5, st, sizeof(st));
    ts_good(&r);
    assert_int_equal(st[4], 0x01);              /* completed, no errors */
    assert_int_equal(ts_get(st + 5, 2), 1);
    assert_int_equal(ts_get(st + 8, 4), sizeof(d));
    /* a to b (the same target): allowed. */
    struct scsi_lun *ab[] = { a.lun, b.lun };
    n = xc_list(p, 6, 2, ab, 2, 0, 1, 16, 0, 8);
    r = xcopy(a.lun, p, n);
    ts_good(&r);
    rd(b.lun, 8, 16, back);
    assert_memory_equal(back, d, sizeof(d));
    /* a to c (no common target) and c to a: COPY ABORTED, UNREACHABLE
     * COPY TARGET, nothing written on either. */
    struct scsi_lun *ac[] = { a.lun, c.lun };
    n = xc_list(p, 7, 2, ac, 2, 0, 1, 16, 0, 0);
    r = xcopy(a.lun, p, n);
    ts_check(&r, 0xa, 0x08, 0x04);
    struct scsi_lun *ca[] = { c.lun, a.lun };
    n = xc_list(p, 7, 2, ca, 2, 0, 1, 16, 0, 0);
    r = xcopy(c.lun, p, n);
    ts_check(&r, 0xa, 0x08, 0x04);
    rd(c.lun, 0, 16, back);
    for (size_t i = 0; i < sizeof(back); i++)
        assert_int_equal(back[i], 0);
    /* Behind the same target, but not copied to: a LUN of 4 KiB blocks
     * (INVALID FIELD IN PARAMETER LIST at the segment) and a CD-ROM,
     * whose medium may go (UNREACHABLE COPY TARGET); nothing written. */
    struct ts_lun e4 = { 0 }, cd = { 0 };
    ts_sh("rm -f x4.raw xcd.iso && truncate -s 1M x4.raw && truncate -s 1M xcd.iso");
    struct scsi_lun_config c4 = cfg, ccd = cfg;
    c4.block_size = 4096;
    ccd.device = SCSI_DEVICE_CDROM;
    assert_int_equal(blk_open(ts_path("x4.raw"), "raw", BLK_OPEN_RW, NULL, &e4.bs, &err), 0);
    assert_int_equal(scsi_lun_create(&c4, e4.bs, 2, &e4.lun, &err), 0);
    assert_int_equal(blk_open(ts_path("xcd.iso"), "raw", 0, NULL, &cd.bs, &err), 0);
    assert_int_equal(scsi_lun_create(&ccd, cd.bs, 3, &cd.lun, &err), 0);
    assert_int_equal(scsi_target_add_lun(tg, e4.lun, &err), 0);
    assert_int_equal(scsi_target_add_lun(tg, cd.lun, &err), 0);
    struct scsi_lun *a4[] = { a.lun, e4.lun };
    n = xc_list(p, 9, 2, a4, 2, 0, 1, 8, 0, 0);
    r = xcopy(a.lun, p, n);
    TS_INVALID_PARAM(r, 16 + 64 + 4, -1);
    struct scsi_lun *acd[] = { a.lun, cd.lun };
    n = xc_list(p, 9, 2, acd, 2, 0, 1, 8, 0, 0);
    r = xcopy(a.lun, p, n);
    ts_check(&r, 0xa, 0x08, 0x04);
    static uint8_t z4[8 * 4096];
    assert_int_equal(blk_pread(e4.bs, 0, z4, sizeof(z4), &err), 0);
    for (size_t i = 0; i < sizeof(z4); i++)
        assert_int_equal(z4[i], 0);
    /* The list's own errors: a segment past the end, unsupported
     * descriptor types, too many targets, the list longer than sent;
     * a segment that cannot be carried out is COPY ABORTED. */
    n = xc_list(p, 8, 2, one, 1, 0, 0, 16, BLOCKS - 8, 0);
    r = xcopy(a.lun, p, n);
    ts_check(&r, 0xa, 0x00, 0x00);
    n = xc_list(p, 8, 2, one, 1, 0, 1, 1, 0, 1);     /* no descriptor 1 */
    r = xcopy(a.lun, p, n);
    ts_check(&r, 0xa, 0x08, 0x04);
    n = xc_list(p, 8, 2, one, 1, 0, 0, 1, 0, 1);
    p[16] = 0xe5;
    r = xcopy(a.lun, p, n);
    ts_check(&r, 0x5, 0x26, 0x07);
    n = xc_list(p, 8, 2, one, 1, 0, 0, 1, 0, 1);
    p[16 + 32] = 0x0a;
    r = xcopy(a.lun, p, n);
    ts_check(&r, 0x5, 0x26, 0x09);
    struct scsi_lun *nine[9] = { a.lun, a.lun, a.lun, a.lun, a.lun, a.lun, a.lun, a.lun, a.lun };
    n = xc_list(p, 8, 2, nine, 9, 0, 0, 1, 0, 1);
    r = xcopy(a.lun, p, n);
    ts_check(&r, 0x5, 0x26, 0x06);
    n = xc_list(p, 8, 2, one, 1, 0, 0, 1, 0, 1);
    r = xcopy(a.lun, p, n - 1);
    ts_check(&r, 0x5, 0x1a, 0x00);
    /* OPERATING PARAMETERS: the limits and the two descriptor types. */
    r = rcr(a.lun, 0x03, 0, st, sizeof(st));
    ts_good(&r);
    assert_int_equal(ts_get(st + 8, 2), 8);
    assert_int_equal(ts_get(st + 10, 2), 64);
    assert_int_equal(st[43], 2);
    assert_int_equal(st[44], 0x02);
    assert_int_equal(st[45], 0xe4);
    /* 3PC in the standard INQUIRY data. */
    uint8_t inq[6] = { 0x12, 0, 0, 0, 36, 0 }, ib[36];
    r = TS_IN(a.lun, inq, ib, sizeof(ib));
    assert_int_equal(ib[5] & 0x08, 0x08);

    scsi_target_destroy(tg);
    ts_close(&cd);
    ts_close(&e4);
    ts_close(&b);
    ts_close(&c);
    ts_close(&a);
    judge("xa.qcow2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TS_TEST(test_verify12_write_verify12),
        TS_TEST(test_orwrite),
        TS_TEST(test_write_atomic),
        TS_TEST(test_sanitize),
        TS_TEST(test_read_defect_data),
        TS_TEST(test_swp),
        TS_TEST(test_xcopy),
    };
    return cmocka_run_group_tests(tests, ts_setup, ts_teardown);
}
