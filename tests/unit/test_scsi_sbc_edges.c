/* The SBC edges test_scsi_sbc.c leaves: WRITE AND VERIFY, COMPARE AND
 * WRITE and UNMAP on 4096-byte LUNs over qcow2 overlays (boundary LBAs,
 * transfer length 0, longer and shorter buffers with their residuals,
 * descriptor-format sense once the control page asks for it), the
 * commands a read-only LUN still serves, and allocation length 0 for GET
 * LBA STATUS. Data effects are judged by qemu-img compare, map and check. */
#include "test_scsi_util.h"

#define BS 4096u
#define IMG (1u << 20)
#define BLOCKS (IMG / BS)

/* An overlay over a raw backing file of 0x3a bytes, 64 KiB clusters. */
static const char *overlay(const char *name)
{
    if (ts_sh("rm -f '%s' base-%s && qemu-img create -q -f raw base-%s 1M && "
              "qemu-io -f raw -c 'write -P 0x3a 0 1M' base-%s && "
              "qemu-img create -q -f qcow2 -b base-%s -F raw '%s'",
              name, name, name, name, name, name) != 0)
        fail_msg("cannot make %s", name);
    return name;
}

/* A shadow of the guest content, compared by qemu-img at the end. */
static uint8_t shadow[IMG];

static void judge(const char *name)
{
    ts_store("shadow.raw", shadow, IMG);
    if (ts_sh("qemu-img compare -f qcow2 -F raw '%s' shadow.raw", name) != 0)
        fail_msg("%s differs from its shadow", name);
    if (ts_sh("qemu-img check '%s'", name) != 0)
        fail_msg("qemu-img check %s is not clean", name);
}

static struct ts_res wv(struct scsi_lun *lun, bool ten, bool bytchk, uint64_t lba, uint32_t n,
                        void *buf, size_t len)
{
    uint8_t cdb[16];
    size_t cl = ts_rw_cdb(cdb, ten ? 0x2e : 0x8e, lba, n);
    cdb[1] = bytchk ? 0x02 : 0;
    return ts_run(lun, cdb, cl, SCSI_DIR_TO_DEV, buf, len);
}

static void test_write_verify_4k(void **state)
{
    (void)state;
    const char *name = overlay("wv4k.qcow2");
    struct ts_lun t = ts_open(name, "qcow2", BS);
    memset(shadow, 0x3a, IMG);
    static uint8_t d[8 * BS];
    for (int ten = 0; ten < 2; ten++) {
        /* The last block, BYTCHK 1. */
        ts_fill(d, BS, 10 + ten);
        struct ts_res r = wv(t.lun, ten, true, BLOCKS - 1, 1, d, BS);
        ts_good(&r);
        assert_int_equal(r.xfer, BS);
        assert_int_equal(r.resid, 0);
        memcpy(shadow + (BLOCKS - 1) * BS, d, BS);
        /* One past it; a range running off the end; both change nothing. */
        r = wv(t.lun, ten, true, BLOCKS, 1, d, BS);
        ts_check(&r, 0x5, 0x21, 0x00);
        r = wv(t.lun, ten, false, BLOCKS - 1, 2, d, 2 * BS);
        ts_check(&r, 0x5, 0x21, 0x00);
        /* Transfer length 0: nothing to do, whatever the buffer. */
        r = wv(t.lun, ten, true, 3, 0, d, BS);
        ts_good(&r);
        assert_int_equal(r.access, SCSI_ACCESS_DONE);
        assert_int_equal(r.xfer, 0);
        assert_int_equal(r.resid, BS);
        /* A longer buffer: two blocks written, the third is residual. */
        ts_fill(d, 3 * BS, 20 + ten);
        r = wv(t.lun, ten, ten, 10 + 8 * ten, 2, d, 3 * BS);
        ts_good(&r);
        assert_int_equal(r.xfer, 2 * BS);
        assert_int_equal(r.resid, BS);
        assert_false(r.overflow);
        memcpy(shadow + (10 + 8 * ten) * BS, d, 2 * BS);
        /* A shorter one: the whole blocks it holds, overflow for the rest. */
        ts_fill(d, 4 * BS, 30 + ten);
        r = wv(t.lun, ten, true, 40 + 8 * ten, 4, d, 2 * BS + 100);
        ts_good(&r);
        assert_true(r.overflow);
        assert_int_equal(r.xfer, 2 * BS);
        assert_int_equal(r.resid, 4 * BS - (2 * BS + 100));
        memcpy(shadow + (40 + 8 * ten) * BS, d, 2 * BS);
    }
    ts_close(&t);
    judge(name);
}

static struct ts_res caw(struct scsi_lun *lun, uint64_t lba, uint8_t n, void *buf, size_t len)
{
    uint8_t cdb[16] = { 0x89 };
    ts_be(cdb + 2, lba, 8);
    cdb[13] = n;
    return TS_OUT(lun, cdb, buf, len);
}

static void mode_select_dsense(struct scsi_lun *lun, bool on)
{
    uint8_t p[4 + 12] = { 0, 0, 0, 0, 0x0a, 0x0a, on ? 0x04 : 0, 0x10 };
    uint8_t cdb[6] = { 0x15, 0x10, 0, 0, sizeof(p), 0 };
    struct ts_res r = TS_OUT(lun, cdb, p, sizeof(p));
    ts_good(&r);
}

static void test_compare_and_write_4k(void **state)
{
    (void)state;
    const char *name = overlay("caw4k.qcow2");
    struct ts_lun t = ts_open(name, "qcow2", BS);
    memset(shadow, 0x3a, IMG);
    static uint8_t b[2 * 2 * BS + BS];
    /* The last two blocks, still the backing file's: compare, write. */
    memset(b, 0x3a, 2 * BS);
    ts_fill(b + 2 * BS, 2 * BS, 5);
    struct ts_res r = caw(t.lun, BLOCKS - 2, 2, b, 4 * BS);
    ts_good(&r);
    assert_int_equal(r.xfer, 4 * BS);
    memcpy(shadow + (BLOCKS - 2) * BS, b + 2 * BS, 2 * BS);
    /* Past the end. */
    r = caw(t.lun, BLOCKS - 1, 2, b, 4 * BS);
    ts_check(&r, 0x5, 0x21, 0x00);
    /* A buffer longer or shorter than 2 x N blocks: the CDB and the
     * transfer disagree; refused (field pointer on NUMBER OF LOGICAL
     * BLOCKS), nothing written. */
    memset(b, 0x3a, BS);
    ts_fill(b + BS, BS, 6);
    r = caw(t.lun, 7, 1, b, 3 * BS);
    TS_INVALID_CDB(r, 13, -1);
    r = caw(t.lun, 7, 2, b, 3 * BS);
    TS_INVALID_CDB(r, 13, -1);
    /* N = 0 (256 wrapped) with data: refused; with none: GOOD, nothing done. */
    r = caw(t.lun, 7, 0, b, 2 * BS);
    TS_INVALID_CDB(r, 13, -1);
    r = caw(t.lun, 7, 0, NULL, 0);
    ts_good(&r);
    assert_int_equal(r.xfer, 0);
    r = caw(t.lun, 7, 1, b, 2 * BS);
    ts_good(&r);
    memcpy(shadow + 7 * BS, b + BS, BS);
    /* Miscompare in the second block, fixed then descriptor sense. */
    memcpy(b, shadow + (BLOCKS - 2) * BS, 2 * BS);
    b[BS + 1234] ^= 0x10;
    memset(b + 2 * BS, 0xee, 2 * BS);
    r = caw(t.lun, BLOCKS - 2, 2, b, 4 * BS);
    struct ts_sense s = ts_check(&r, 0xe, 0x1d, 0x00);
    assert_false(s.desc);
    assert_true(s.info_valid);
    assert_int_equal(s.info, BS + 1234);
    mode_select_dsense(t.lun, true);
    r = caw(t.lun, BLOCKS - 2, 2, b, 4 * BS);
    s = ts_check(&r, 0xe, 0x1d, 0x00);
    assert_true(s.desc);
    assert_true(s.info_valid);
    assert_int_equal(s.info, BS + 1234);
    /* ...and the other errors too: LBA OUT OF RANGE, a field pointer. */
    r = caw(t.lun, BLOCKS, 1, b, 2 * BS);
    s = ts_check(&r, 0x5, 0x21, 0x00);
    assert_true(s.desc);
    uint8_t bad[16] = { 0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 1 };
    r = TS_OUT(t.lun, bad, b, 2 * BS);
    TS_INVALID_CDB(r, 12, 6);
    mode_select_dsense(t.lun, false);
    r = caw(t.lun, BLOCKS, 1, b, 2 * BS);
    s = ts_check(&r, 0x5, 0x21, 0x00);
    assert_false(s.desc);
    ts_close(&t);
    judge(name);
}

static struct ts_res unmap1(struct scsi_lun *lun, uint64_t lba, uint32_t n)
{
    uint8_t p[24] = { 0, 22, 0, 16 };
    ts_be(p + 8, lba, 8);
    ts_be(p + 16, n, 4);
    uint8_t cdb[10] = { 0x42, 0, 0, 0, 0, 0, 0, 0, sizeof(p), 0 };
    return TS_OUT(lun, cdb, p, sizeof(p));
}

static void test_unmap_4k(void **state)
{
    (void)state;
    const char *name = overlay("unmap4k.qcow2");
    assert_int_equal(ts_sh("qemu-io -c 'write -P 0x41 0 1M' %s", name), 0);
    struct ts_lun t = ts_open(name, "qcow2", BS);
    memset(shadow, 0x41, IMG);
    /* VPD B0 gives the granularity in 4 KiB blocks: one 64 KiB cluster. */
    uint8_t inq[6] = { 0x12, 0x01, 0xb0, 0, 64, 0 };
    uint8_t b0[64];
    struct ts_res r = TS_IN(t.lun, inq, b0, sizeof(b0));
    ts_good(&r);
    assert_int_equal(ts_get(b0 + 28, 4), 16);
    assert_int_equal(ts_get(b0 + 20, 4), (1u << 30) / BS);
    /* Whole clusters: deallocated, read as zeros over the backing file
     * (LBPRZ), never as the backing file's bytes. */
    r = unmap1(t.lun, 32, 32);
    ts_good(&r);
    memset(shadow + 32 * BS, 0, 32 * BS);
    r = unmap1(t.lun, BLOCKS - 16, 16);
    ts_good(&r);
    memset(shadow + (BLOCKS - 16) * BS, 0, 16 * BS);
    /* Inside one cluster: advisory; each block old or zero. */
    r = unmap1(t.lun, 3, 5);
    ts_good(&r);
    uint8_t cdb[16];
    static uint8_t rd[5 * BS];
    size_t cl = ts_rw_cdb(cdb, 0x88, 3, 5);
    r = ts_run(t.lun, cdb, cl, SCSI_DIR_FROM_DEV, rd, sizeof(rd));
    ts_good(&r);
    for (int k = 0; k < 5; k++) {
        const uint8_t *p = rd + k * BS;
        bool zero = p[0] == 0 && memcmp(p, p + 1, BS - 1) == 0;
        if (!zero && memcmp(p, shadow + (3 + k) * BS, BS) != 0)
            fail_msg("block %d after a partial UNMAP is neither zeros nor as before", 3 + k);
    }
    memcpy(shadow + 3 * BS, rd, sizeof(rd));
    /* Limits in 4 KiB blocks; the range check. */
    r = unmap1(t.lun, 0, (1u << 30) / BS + 1);
    TS_INVALID_PARAM(r, 16, -1);
    r = unmap1(t.lun, BLOCKS - 1, 2);
    ts_check(&r, 0x5, 0x21, 0x00);
    ts_close(&t);
    judge(name);
    /* qemu-img map: the unmapped clusters hold no data any more. */
    assert_int_equal(ts_sh("qemu-img map --output=json '%s' | grep '\"start\": 131072,' | "
                           "grep -q '\"data\": false'", name), 0);
}

/* A read-only LUN serves what does not write: VERIFY with and without
 * data, PRE-FETCH, SYNCHRONIZE CACHE, GET LBA STATUS (allocation length
 * 0 too); it refuses WRITE AND VERIFY before looking at the data. */
static void test_read_only_serves(void **state)
{
    (void)state;
    const char *name = overlay("ro4k.qcow2");
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    cfg.block_size = BS;
    cfg.read_only = true;
    struct ts_lun t = ts_open_cfg(name, "qcow2", &cfg, false);
    static uint8_t d[2 * BS];
    memset(d, 0x3a, sizeof(d));
    uint8_t cdb[16];
    size_t cl = ts_rw_cdb(cdb, 0x2f, 4, 2);
    cdb[1] = 0x02;
    struct ts_res r = ts_run(t.lun, cdb, cl, SCSI_DIR_TO_DEV, d, sizeof(d));
    ts_good(&r);
    d[BS + 1] = 0;
    r = ts_run(t.lun, cdb, cl, SCSI_DIR_TO_DEV, d, sizeof(d));
    struct ts_sense s = ts_check(&r, 0xe, 0x1d, 0x00);
    assert_int_equal(s.info, BS + 1);
    cl = ts_rw_cdb(cdb, 0x8f, BLOCKS - 1, 1);
    r = ts_run(t.lun, cdb, cl, SCSI_DIR_NONE, NULL, 0);
    ts_good(&r);
    cl = ts_rw_cdb(cdb, 0x90, 0, 8);
    r = ts_run(t.lun, cdb, cl, SCSI_DIR_NONE, NULL, 0);
    assert_int_equal(r.status, SCSI_STATUS_CONDITION_MET);
    cl = ts_rw_cdb(cdb, 0x91, 0, 0);
    r = ts_run(t.lun, cdb, cl, SCSI_DIR_NONE, NULL, 0);
    ts_good(&r);
    r = wv(t.lun, true, true, 4, 2, d, sizeof(d));
    ts_check(&r, 0x7, 0x27, 0x00);
    uint8_t gls[16] = { 0x9e, 0x12 };
    uint8_t b[32];
    memset(b, 0xee, sizeof(b));
    r = TS_IN(t.lun, gls, b, sizeof(b));        /* allocation length 0 */
    ts_good(&r);
    assert_int_equal(r.xfer, 0);
    assert_int_equal(r.resid, sizeof(b));
    assert_int_equal(b[0], 0xee);
    ts_be(gls + 10, 24, 4);
    r = TS_IN(t.lun, gls, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 24);
    assert_int_equal(ts_get(b + 8, 8), 0);
    assert_int_equal(ts_get(b + 16, 4), BLOCKS);
    /* The backing file's data shows through: mapped (reported
     * deallocated it would have to read as zeros, LBPRZ). */
    assert_int_equal(b[20] & 0x0f, 0);
    ts_close(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TS_TEST(test_write_verify_4k),
        TS_TEST(test_compare_and_write_4k),
        TS_TEST(test_unmap_4k),
        TS_TEST(test_read_only_serves),
    };
    return cmocka_run_group_tests(tests, ts_setup, ts_teardown);
}
