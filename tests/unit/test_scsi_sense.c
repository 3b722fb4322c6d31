/* Sense data: fixed and descriptor encodings, the errno -> sense table,
 * and block-layer errors surfacing as the right sense on real commands
 * (preadv64/pwritev64/pread64/fdatasync are interposed to fail on
 * demand), with the INFORMATION field holding the LBA, also past 32 bits
 * where only descriptor format can carry it. */
#include "test_scsi_util.h"

#include <dlfcn.h>
#include <errno.h>
#include <sys/uio.h>

#include "scsi/scsi_int.h"

/* ---- I/O failure injection ---- */

static int fail_read, fail_write, fail_sync;  /* errno to fail with, 0: pass */

ssize_t preadv64(int fd, const struct iovec *iov, int cnt, off64_t off);
ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off);
ssize_t pread64(int fd, void *buf, size_t n, off64_t off);
int fdatasync(int fd);

ssize_t preadv64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
    static ssize_t (*real)(int, const struct iovec *, int, off64_t);
    if (!real)
        real = (ssize_t(*)(int, const struct iovec *, int, off64_t))dlsym(RTLD_NEXT, "preadv64");
    if (fail_read) {
        errno = fail_read;
        return -1;
    }
    return real(fd, iov, cnt, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off64_t off)
{
    static ssize_t (*real)(int, void *, size_t, off64_t);
    if (!real)
        real = (ssize_t(*)(int, void *, size_t, off64_t))dlsym(RTLD_NEXT, "pread64");
    if (fail_read) {
        errno = fail_read;
        return -1;
    }
    return real(fd, buf, n, off);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
    static ssize_t (*real)(int, const struct iovec *, int, off64_t);
    if (!real)
        real = (ssize_t(*)(int, const struct iovec *, int, off64_t))dlsym(RTLD_NEXT, "pwritev64");
    if (fail_write) {
        errno = fail_write;
        return -1;
    }
    return real(fd, iov, cnt, off);
}

int fdatasync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    if (fail_sync) {
        errno = fail_sync;
        return -1;
    }
    return real(fd);
}

/* ---- encodings ---- */

static void test_encode(void **state)
{
    (void)state;
    uint8_t b[SCSI_SENSE_MAX];
    struct scsi_sense s = { .key = SK_ILLEGAL_REQUEST, .asc = ASC_INVALID_FIELD_IN_CDB,
                            .sks_valid = true, .sks = { 0xc8 | 5, 0x00, 0x0a } };
    uint32_t n = scsi_sense_encode(&s, false, b);
    assert_int_equal(n, 18);
    assert_int_equal(b[0], 0x70);   /* current, INFORMATION not valid */
    assert_int_equal(b[2], 0x05);
    assert_int_equal(b[7], 10);
    assert_int_equal(b[12], 0x24);
    assert_int_equal(b[13], 0x00);
    assert_int_equal(b[15], 0xcd);
    assert_int_equal(b[16], 0x00);
    assert_int_equal(b[17], 0x0a);
    n = scsi_sense_encode(&s, true, b);
    assert_int_equal(n, 16);
    assert_int_equal(b[0], 0x72);
    assert_int_equal(b[1], 0x05);
    assert_int_equal(b[2], 0x24);
    assert_int_equal(b[7], 8);
    assert_int_equal(b[8], 0x02);
    assert_int_equal(b[9], 0x06);
    assert_int_equal(b[12], 0xcd);
    assert_int_equal(b[14], 0x0a);
    struct ts_sense d = ts_sense_decode(b, n);
    assert_true(d.sks_valid);
    assert_false(d.info_valid);

    /* INFORMATION: 32 bits fit both; more only the descriptor format. */
    struct scsi_sense m = { .key = SK_MISCOMPARE, .asc = ASC_MISCOMPARE_DURING_VERIFY,
                            .info_valid = true, .info = 0x12345678 };
    n = scsi_sense_encode(&m, false, b);
    assert_int_equal(b[0], 0xf0);
    assert_int_equal(ts_get(b + 3, 4), 0x12345678);
    n = scsi_sense_encode(&m, true, b);
    assert_int_equal(n, 20);
    d = ts_sense_decode(b, n);
    assert_true(d.info_valid);
    assert_int_equal(d.info, 0x12345678);
    m.info = 0x123456789ull;
    n = scsi_sense_encode(&m, false, b);
    assert_int_equal(b[0], 0x70);   /* does not fit: not valid */
    assert_int_equal(ts_get(b + 3, 4), 0);
    n = scsi_sense_encode(&m, true, b);
    d = ts_sense_decode(b, n);
    assert_int_equal(d.info, 0x123456789ull);
    /* Both descriptors. */
    m.sks_valid = true;
    n = scsi_sense_encode(&m, true, b);
    assert_int_equal(n, 28);
    assert_int_equal(b[7], 20);
}

static void test_errno_table(void **state)
{
    (void)state;
    static const struct { int err; bool write; uint8_t status, key; uint16_t asc; } t[] = {
        { -EROFS, true, SCSI_STATUS_CHECK_CONDITION, 0x7, 0x2700 },
        { -EIO, false, SCSI_STATUS_CHECK_CONDITION, 0x3, 0x1100 },
        { -EIO, true, SCSI_STATUS_CHECK_CONDITION, 0x3, 0x0c00 },
        { -EUCLEAN, false, SCSI_STATUS_CHECK_CONDITION, 0x3, 0x1100 },
        { -ENOSPC, true, SCSI_STATUS_CHECK_CONDITION, 0x7, 0x2707 },
        { -EFBIG, true, SCSI_STATUS_CHECK_CONDITION, 0x7, 0x2707 },
        { -EDQUOT, true, SCSI_STATUS_CHECK_CONDITION, 0x7, 0x2707 },
        { -ENOMEM, false, SCSI_STATUS_BUSY, 0, 0 },
        { -EAGAIN, true, SCSI_STATUS_BUSY, 0, 0 },
        { -EINVAL, false, SCSI_STATUS_CHECK_CONDITION, 0x5, 0x2100 },
        { -ENOTSUP, true, SCSI_STATUS_CHECK_CONDITION, 0x5, 0x2000 },
        { -EBADF, false, SCSI_STATUS_CHECK_CONDITION, 0x4, 0x4400 },
    };
    for (unsigned i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct scsi_sense s;
        uint8_t st = scsi_errno_sense(t[i].err, t[i].write, &s);
        assert_int_equal(st, t[i].status);
        if (st == SCSI_STATUS_CHECK_CONDITION) {
            assert_int_equal(s.key, t[i].key);
            assert_int_equal(s.asc, t[i].asc);
        }
    }
}

/* ---- errors on real commands ---- */

static void test_io_errors(void **state)
{
    (void)state;
    ts_image("err.raw", "raw", "1M");
    struct ts_lun t = ts_open("err.raw", "raw", 512);
    uint8_t b[8 * 512];
    memset(b, 0x3c, sizeof(b));
    uint8_t cdb[16];
    size_t cl;
    struct ts_res r;
    struct ts_sense d;

    fail_read = EIO;
    cl = ts_rw_cdb(cdb, 0x28, 77, 8);
    r = ts_run(t.lun, cdb, cl, SCSI_DIR_FROM_DEV, b, sizeof(b));
    d = ts_check(&r, 0x3, 0x11, 0x00);
    assert_true(d.info_valid);
    assert_int_equal(d.info, 77);
    assert_int_equal(r.resid, sizeof(b));
    cl = ts_rw_cdb(cdb, 0x2f, 90, 8);   /* VERIFY */
    r = ts_run(t.lun, cdb, cl, SCSI_DIR_NONE, NULL, 0);
    d = ts_check(&r, 0x3, 0x11, 0x00);
    assert_int_equal(d.info, 90);
    fail_read = ENOMEM;
    cl = ts_rw_cdb(cdb, 0x28, 77, 8);
    r = ts_run(t.lun, cdb, cl, SCSI_DIR_FROM_DEV, b, sizeof(b));
    assert_int_equal(r.status, SCSI_STATUS_BUSY);
    assert_int_equal(r.sense_len, 0);
    fail_read = 0;

    fail_write = EIO;
    cl = ts_rw_cdb(cdb, 0x2a, 5, 8);
    r = ts_run(t.lun, cdb, cl, SCSI_DIR_TO_DEV, b, sizeof(b));
    d = ts_check(&r, 0x3, 0x0c, 0x00);
    assert_int_equal(d.info, 5);
    fail_write = ENOSPC;
    r = ts_run(t.lun, cdb, cl, SCSI_DIR_TO_DEV, b, sizeof(b));
    ts_check(&r, 0x7, 0x27, 0x07);
    fail_write = EFBIG;
    uint8_t ws[16] = { 0x93 };
    ts_be(ws + 10, 4, 4);
    r = TS_OUT(t.lun, ws, b, 512);  /* a non-zero pattern: written */
    ts_check(&r, 0x7, 0x27, 0x07);
    fail_write = 0;

    fail_sync = EIO;
    uint8_t sc[10] = { 0x35 };
    r = TS_NONE(t.lun, sc);
    ts_check(&r, 0x3, 0x0c, 0x00);
    cl = ts_rw_cdb(cdb, 0x2a, 5, 8);
    cdb[1] = 0x08;                  /* FUA: the flush fails */
    r = ts_run(t.lun, cdb, cl, SCSI_DIR_TO_DEV, b, sizeof(b));
    ts_check(&r, 0x3, 0x0c, 0x00);
    fail_sync = 0;
    r = TS_NONE(t.lun, sc);
    ts_good(&r);
    ts_close(&t);
}

/* An LBA past 32 bits in MEDIUM ERROR: fixed format cannot carry it,
 * descriptor format (D_SENSE) does. */
static void test_wide_information(void **state)
{
    (void)state;
    ts_image("huge.raw", "raw", "4T");
    struct ts_lun t = ts_open("huge.raw", "raw", 512);
    uint8_t b[512];
    uint8_t cdb[16];
    uint64_t lba = 0x100000005ull;
    size_t cl = ts_rw_cdb(cdb, 0x88, lba, 1);
    struct ts_res r = ts_run(t.lun, cdb, cl, SCSI_DIR_FROM_DEV, b, sizeof(b));
    ts_good(&r);                    /* readable while nothing fails */
    fail_read = EIO;
    r = ts_run(t.lun, cdb, cl, SCSI_DIR_FROM_DEV, b, sizeof(b));
    struct ts_sense d = ts_check(&r, 0x3, 0x11, 0x00);
    assert_false(d.desc);
    assert_false(d.info_valid);
    fail_read = 0;

    /* D_SENSE on (MODE SELECT of the control page). */
    uint8_t ms[6] = { 0x1a, 0x08, 0x0a, 0, 255, 0 };
    uint8_t page[64];
    r = TS_IN(t.lun, ms, page, sizeof(page));
    ts_good(&r);
    page[0] = 0;
    page[4 + 2] |= 0x04;
    uint8_t sel[6] = { 0x15, 0x10, 0, 0, (uint8_t)r.xfer, 0 };
    r = TS_OUT(t.lun, sel, page, sel[4]);
    ts_good(&r);

    fail_read = EIO;
    r = ts_run(t.lun, cdb, cl, SCSI_DIR_FROM_DEV, b, sizeof(b));
    d = ts_check(&r, 0x3, 0x11, 0x00);
    assert_true(d.desc);
    assert_true(d.info_valid);
    assert_int_equal(d.info, lba);
    fail_read = 0;
    /* Capacity past 32 bits: READ CAPACITY(10) says FFFFFFFFh. */
    uint8_t rc10[10] = { 0x25 };
    r = TS_IN(t.lun, rc10, b, 8);
    ts_good(&r);
    assert_int_equal(ts_get(b, 4), 0xffffffffu);
    uint8_t rc16[16] = { 0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32 };
    r = TS_IN(t.lun, rc16, b, 32);
    ts_good(&r);
    assert_int_equal(ts_get(b, 8), (4ull << 40) / 512 - 1);
    ts_close(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode),
        cmocka_unit_test(test_errno_table),
        TS_TEST(test_io_errors),
        TS_TEST(test_wide_information),
    };
    return cmocka_run_group_tests(tests, ts_setup, ts_teardown);
}
