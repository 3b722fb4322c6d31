/* READ/WRITE 6/10/12/16 and READ CAPACITY 10/16 at the CDB level, over
 * raw and qcow2 images made by qemu-img, 512- and 4096-byte blocks:
 * round trips judged by `qemu-img compare` against a shadow, boundary
 * LBAs, transfer length 0, residuals for short and long buffers, every
 * refused CDB field with its sense-key-specific pointer, read-only LUNs. */
#include "test_scsi_util.h"

#define IMG_SIZE (1u << 20)

static const uint8_t read_ops[] = { 0x08, 0x28, 0xa8, 0x88 };
static const uint8_t write_ops[] = { 0x0a, 0x2a, 0xaa, 0x8a };

static void test_read_capacity(void **state)
{
    (void)state;
    ts_image("cap.raw", "raw", "1M");
    for (int bs4k = 0; bs4k < 2; bs4k++) {
        struct scsi_lun_config cfg;
        scsi_lun_config_default(&cfg);
        cfg.block_size = bs4k ? 4096 : 512;
        cfg.phys_exp = bs4k ? 0 : 3;
        struct ts_lun t = ts_open_cfg("cap.raw", "raw", &cfg, true);
        uint64_t blocks = IMG_SIZE / cfg.block_size;

        uint8_t rc10[10] = { 0x25 };
        uint8_t b[64];
        memset(b, 0xee, sizeof(b));
        struct ts_res r = TS_IN(t.lun, rc10, b, sizeof(b));
        ts_good(&r);
        assert_int_equal(r.xfer, 8);
        assert_int_equal(r.resid, sizeof(b) - 8);
        assert_false(r.overflow);
        assert_int_equal(ts_get(b, 4), blocks - 1);
        assert_int_equal(ts_get(b + 4, 4), cfg.block_size);
        assert_int_equal(b[8], 0xee);

        uint8_t rc16[16] = { 0x9e, 0x10 };
        ts_be(rc16 + 10, 32, 4);
        memset(b, 0xee, sizeof(b));
        r = TS_IN(t.lun, rc16, b, sizeof(b));
        ts_good(&r);
        assert_int_equal(r.xfer, 32);
        assert_int_equal(ts_get(b, 8), blocks - 1);
        assert_int_equal(ts_get(b + 8, 4), cfg.block_size);
        assert_int_equal(b[13] & 0x0f, cfg.phys_exp);
        assert_int_equal(b[14] & 0xc0, 0xc0);          /* LBPME, LBPRZ (raw holes read zeros) */
        assert_int_equal(b[32], 0xee);

        /* Allocation length shorter than the data: truncated. */
        ts_be(rc16 + 10, 12, 4);
        memset(b, 0xee, sizeof(b));
        r = TS_IN(t.lun, rc16, b, 16);
        ts_good(&r);
        assert_int_equal(r.xfer, 12);
        assert_int_equal(r.resid, 4);
        assert_int_equal(b[12], 0xee);
        /* Allocation length 0: nothing. */
        ts_be(rc16 + 10, 0, 4);
        r = TS_IN(t.lun, rc16, b, 16);
        ts_good(&r);
        assert_int_equal(r.xfer, 0);
        /* A buffer shorter than the allocation length: overflow. */
        ts_be(rc16 + 10, 32, 4);
        r = TS_IN(t.lun, rc16, b, 20);
        ts_good(&r);
        assert_int_equal(r.xfer, 20);
        assert_true(r.overflow);
        assert_int_equal(r.resid, 12);

        /* Obsolete fields (PMI, LBA) are refused. */
        uint8_t bad10[10] = { 0x25, 0, 0, 0, 0, 1, 0, 0, 0x01, 0 };
        r = TS_IN(t.lun, bad10, b, sizeof(b));
        TS_INVALID_CDB(r, 5, 0);
        bad10[5] = 0;
        r = TS_IN(t.lun, bad10, b, sizeof(b));
        TS_INVALID_CDB(r, 8, 0);
        uint8_t bad16[16] = { 0x9e, 0x10, 0x80 };
        r = TS_IN(t.lun, bad16, b, sizeof(b));
        TS_INVALID_CDB(r, 2, 7);
        bad16[2] = 0;
        bad16[1] = 0x30;            /* reserved bit above the service action */
        r = TS_IN(t.lun, bad16, b, sizeof(b));
        TS_INVALID_CDB(r, 1, 5);
        ts_close(&t);
    }

    /* Discard off: no LBPME, no LBPRZ. */
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    cfg.discard = false;
    struct ts_lun t = ts_open_cfg("cap.raw", "raw", &cfg, true);
    uint8_t rc16[16] = { 0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32 };
    uint8_t b[32];
    struct ts_res r = TS_IN(t.lun, rc16, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(b[14] & 0xc0, 0);
    ts_close(&t);
}

/* Random writes through every WRITE opcode, reads through every READ
 * opcode, mirrored into a shadow; qemu-img compare judges the image. */
static void roundtrip(const char *fmt, uint32_t bsz)
{
    char name[64];
    snprintf(name, sizeof(name), "rt-%u.%s", bsz, fmt);
    ts_image(name, fmt, "1M");
    struct ts_lun t = ts_open(name, fmt, bsz);
    uint64_t blocks = IMG_SIZE / bsz;
    uint8_t *shadow = calloc(1, IMG_SIZE);
    uint8_t *buf = malloc(64 * 4096);
    uint8_t *rd = malloc(64 * 4096);
    assert_non_null(shadow);
    assert_non_null(buf);
    assert_non_null(rd);
    uint64_t seed = 12345;
    for (int i = 0; i < 200; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        int k = (int)((seed >> 33) % 4);
        uint32_t n = 1 + (uint32_t)((seed >> 40) % 32);
        uint64_t lba = (seed >> 20) % (blocks - n + 1);
        if (k == 0 && lba > 0x1fffff)
            k = 1;
        uint8_t cdb[16];
        size_t cl = ts_rw_cdb(cdb, write_ops[k], lba, n);
        if (i % 3 == 0 && k > 0)
            cdb[1] |= 0x08;         /* FUA */
        if (i % 5 == 0 && k > 0)
            cdb[1] |= 0x10;         /* DPO: accepted, ignored */
        ts_fill(buf, (size_t)n * bsz, (unsigned)i);
        struct ts_res r = ts_run(t.lun, cdb, cl, SCSI_DIR_TO_DEV, buf, (size_t)n * bsz);
        ts_good(&r);
        assert_int_equal(r.access, SCSI_ACCESS_WRITE);
        assert_int_equal(r.lba, lba);
        assert_int_equal(r.nblocks, n);
        assert_int_equal(r.xfer, n * bsz);
        assert_int_equal(r.resid, 0);
        memcpy(shadow + lba * bsz, buf, (size_t)n * bsz);

        /* Read back a window around it with another READ opcode. */
        uint64_t rl = lba > 2 ? lba - 2 : 0;
        uint32_t rn = n + 4;
        if (rl + rn > blocks)
            rn = (uint32_t)(blocks - rl);
        int rk = (k + 1 + i) % 4;
        if (rk == 0 && rl > 0x1fffff)
            rk = 2;
        cl = ts_rw_cdb(cdb, read_ops[rk], rl, rn);
        memset(rd, 0xa5, (size_t)rn * bsz);
        r = ts_run(t.lun, cdb, cl, SCSI_DIR_FROM_DEV, rd, (size_t)rn * bsz);
        ts_good(&r);
        assert_int_equal(r.access, SCSI_ACCESS_READ);
        assert_int_equal(r.xfer, rn * bsz);
        assert_memory_equal(rd, shadow + rl * bsz, (size_t)rn * bsz);
    }
    ts_close(&t);
    FILE *f = fopen(ts_path("shadow.raw"), "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(shadow, 1, IMG_SIZE, f), IMG_SIZE);
    fclose(f);
    if (ts_sh("qemu-img compare -f %s -F raw '%s' shadow.raw", fmt, name) != 0)
        fail_msg("%s differs from the shadow", name);
    if (strcmp(fmt, "qcow2") == 0 && ts_sh("qemu-img check '%s'", name) != 0)
        fail_msg("qemu-img check %s is not clean", name);
    free(shadow);
    free(buf);
    free(rd);
}

static void test_roundtrip_raw_512(void **state) { (void)state; roundtrip("raw", 512); }
static void test_roundtrip_raw_4k(void **state) { (void)state; roundtrip("raw", 4096); }
static void test_roundtrip_qcow2_512(void **state) { (void)state; roundtrip("qcow2", 512); }
static void test_roundtrip_qcow2_4k(void **state) { (void)state; roundtrip("qcow2", 4096); }

/* Data written with qemu-io is what READ returns, at the right LBA. */
static void test_read_qemu_data(void **state)
{
    (void)state;
    ts_image("q.qcow2", "qcow2", "1M");
    assert_int_equal(ts_sh("qemu-io -f qcow2 -c 'write -P 0x5a 8192 4096' "
                           "-c 'write -P 0x33 1044480 4096' q.qcow2"), 0);
    struct ts_lun t = ts_open("q.qcow2", "qcow2", 4096);
    uint8_t cdb[16], b[3 * 4096];
    size_t cl = ts_rw_cdb(cdb, 0x28, 1, 3);
    struct ts_res r = ts_run(t.lun, cdb, cl, SCSI_DIR_FROM_DEV, b, sizeof(b));
    ts_good(&r);
    for (int i = 0; i < 4096; i++) {
        assert_int_equal(b[i], 0);
        assert_int_equal(b[4096 + i], 0x5a);
        assert_int_equal(b[8192 + i], 0);
    }
    cl = ts_rw_cdb(cdb, 0x88, 255, 1);   /* the last block */
    r = ts_run(t.lun, cdb, cl, SCSI_DIR_FROM_DEV, b, 4096);
    ts_good(&r);
    assert_int_equal(b[0], 0x33);
    assert_int_equal(b[4095], 0x33);
    ts_close(&t);
}

static void test_boundaries(void **state)
{
    (void)state;
    ts_image("edge.raw", "raw", "1M");
    for (int bs4k = 0; bs4k < 2; bs4k++) {
        uint32_t bsz = bs4k ? 4096 : 512;
        uint64_t blocks = IMG_SIZE / bsz;
        struct ts_lun t = ts_open("edge.raw", "raw", bsz);
        uint8_t b[2 * 4096];
        for (unsigned k = 0; k < 4; k++) {
            for (int w = 0; w < 2; w++) {
                uint8_t op = w ? write_ops[k] : read_ops[k];
                enum scsi_dir dir = w ? SCSI_DIR_TO_DEV : SCSI_DIR_FROM_DEV;
                uint8_t cdb[16];
                size_t cl;
                struct ts_res r;
                memset(b, 0x11, sizeof(b));
                /* The last block. */
                cl = ts_rw_cdb(cdb, op, blocks - 1, 1);
                r = ts_run(t.lun, cdb, cl, dir, b, bsz);
                ts_good(&r);
                assert_int_equal(r.xfer, bsz);
                /* Two blocks from the last one: one past the end. */
                cl = ts_rw_cdb(cdb, op, blocks - 1, 2);
                r = ts_run(t.lun, cdb, cl, dir, b, 2 * bsz);
                ts_check(&r, 0x5, 0x21, 0x00);
                assert_int_equal(r.resid, 2 * bsz);
                /* The block past the end. */
                cl = ts_rw_cdb(cdb, op, blocks, 1);
                r = ts_run(t.lun, cdb, cl, dir, b, bsz);
                ts_check(&r, 0x5, 0x21, 0x00);
                if (k == 0)
                    continue;       /* (6) has no transfer length 0 */
                /* Transfer length 0: nothing moves, not an error... */
                cl = ts_rw_cdb(cdb, op, blocks - 1, 0);
                r = ts_run(t.lun, cdb, cl, dir, b, 0);
                ts_good(&r);
                assert_int_equal(r.access, SCSI_ACCESS_DONE);
                assert_int_equal(r.xfer, 0);
                /* ...except past the end. */
                cl = ts_rw_cdb(cdb, op, blocks, 0);
                r = ts_run(t.lun, cdb, cl, dir, b, 0);
                ts_check(&r, 0x5, 0x21, 0x00);
                /* An LBA that wraps around 64 (or 32) bits. */
                cl = ts_rw_cdb(cdb, op, k == 3 ? UINT64_MAX : 0xffffffffu, 2);
                r = ts_run(t.lun, cdb, cl, dir, b, 2 * bsz);
                ts_check(&r, 0x5, 0x21, 0x00);
            }
        }
        ts_close(&t);
    }
}

/* READ(6)/WRITE(6): transfer length 0 means 256 blocks. */
static void test_six_byte_256(void **state)
{
    (void)state;
    ts_image("six.raw", "raw", "1M");
    struct ts_lun t = ts_open("six.raw", "raw", 512);
    uint8_t *b = malloc(256 * 512), *rd = malloc(256 * 512);
    memset(b, 0x6b, 256 * 512);
    uint8_t cdb[6] = { 0x0a, 0, 0, 10, 0, 0 };
    struct ts_res r = TS_OUT(t.lun, cdb, b, 256 * 512);
    ts_good(&r);
    assert_int_equal(r.nblocks, 256);
    assert_int_equal(r.xfer, 256 * 512);
    cdb[0] = 0x08;
    r = TS_IN(t.lun, cdb, rd, 256 * 512);
    ts_good(&r);
    assert_memory_equal(b, rd, 256 * 512);
    ts_close(&t);
    /* 256 blocks from LBA 10, and nothing around them. */
    assert_int_equal(ts_sh("qemu-io -f raw -c 'read -P 0x6b 5120 131072' "
                           "-c 'read -P 0 0 5120' -c 'read -P 0 136192 512' six.raw"), 0);
    free(b);
    free(rd);
}

/* Buffers that do not match the transfer length: the CDB rules, the
 * buffer is never overrun, the residual tells the difference. */
static void test_residuals(void **state)
{
    (void)state;
    ts_image("res.raw", "raw", "1M");
    struct ts_lun t = ts_open("res.raw", "raw", 512);
    uint8_t *b = malloc(16 * 512), *rd = malloc(16 * 512);
    ts_fill(b, 16 * 512, 9);
    uint8_t cdb[16];
    ts_rw_cdb(cdb, 0x2a, 100, 8);
    struct ts_res r = TS_OUT(t.lun, cdb, b, 8 * 512);
    ts_good(&r);

    /* Longer buffer (underrun): 8 blocks moved, resid the rest. */
    ts_rw_cdb(cdb, 0x28, 100, 8);
    memset(rd, 0xcc, 16 * 512);
    r = TS_IN(t.lun, cdb, rd, 16 * 512);
    ts_good(&r);
    assert_int_equal(r.xfer, 8 * 512);
    assert_int_equal(r.resid, 8 * 512);
    assert_false(r.overflow);
    assert_memory_equal(rd, b, 8 * 512);
    assert_int_equal(rd[8 * 512], 0xcc);

    /* Shorter buffer (overflow): what fits, and not a byte more. */
    memset(rd, 0xcc, 16 * 512);
    r = TS_IN(t.lun, cdb, rd, 3 * 512 + 100);
    ts_good(&r);
    assert_true(r.overflow);
    assert_int_equal(r.xfer, 3 * 512 + 100);
    assert_int_equal(r.resid, 8 * 512 - (3 * 512 + 100));
    assert_memory_equal(rd, b, 3 * 512 + 100);
    assert_int_equal(rd[3 * 512 + 100], 0xcc);

    /* A short data-out buffer: only whole blocks are written. */
    uint8_t *w2 = malloc(8 * 512);
    memset(w2, 0x77, 8 * 512);
    ts_rw_cdb(cdb, 0x2a, 100, 8);
    r = TS_OUT(t.lun, cdb, w2, 2 * 512 + 300);
    ts_good(&r);
    assert_true(r.overflow);
    assert_int_equal(r.xfer, 2 * 512);
    assert_int_equal(r.resid, 8 * 512 - (2 * 512 + 300));
    ts_rw_cdb(cdb, 0x28, 100, 8);
    r = TS_IN(t.lun, cdb, rd, 8 * 512);
    ts_good(&r);
    for (int i = 0; i < 2 * 512; i++)
        assert_int_equal(rd[i], 0x77);
    assert_memory_equal(rd + 2 * 512, b + 2 * 512, 6 * 512);

    /* The wrong direction: the buffer is neither read nor written. */
    memset(rd, 0xcc, 16 * 512);
    ts_rw_cdb(cdb, 0x28, 100, 2);
    r = ts_run(t.lun, cdb, 10, SCSI_DIR_TO_DEV, rd, 2 * 512);
    ts_good(&r);
    assert_int_equal(r.xfer, 0);
    assert_true(r.overflow);
    assert_int_equal(rd[0], 0xcc);
    ts_rw_cdb(cdb, 0x2a, 100, 2);
    r = ts_run(t.lun, cdb, 10, SCSI_DIR_FROM_DEV, rd, 2 * 512);
    ts_good(&r);
    assert_int_equal(r.xfer, 0);
    ts_rw_cdb(cdb, 0x28, 100, 1);
    r = TS_IN(t.lun, cdb, rd, 512);
    assert_int_equal(rd[0], 0x77);  /* unchanged by the misdirected write */
    ts_close(&t);
    free(b);
    free(rd);
    free(w2);
}

/* Every CDB bit the commands do not use is refused, with the field
 * pointer on its left-most bit. */
static void test_refused_fields(void **state)
{
    (void)state;
    ts_image("fld.raw", "raw", "1M");
    struct ts_lun t = ts_open("fld.raw", "raw", 512);
    uint8_t b[4096];
    for (unsigned k = 1; k < 4; k++) {
        for (int w = 0; w < 2; w++) {
            uint8_t op = w ? write_ops[k] : read_ops[k];
            enum scsi_dir dir = w ? SCSI_DIR_TO_DEV : SCSI_DIR_FROM_DEV;
            uint8_t cdb[16];
            size_t cl = ts_rw_cdb(cdb, op, 0, 1);
            struct ts_res r;
            static const uint8_t protect[] = { 0x20, 0x40, 0x60, 0x80, 0xe0 };
            for (unsigned i = 0; i < sizeof(protect); i++) {
                cdb[1] = protect[i];   /* RD/WRPROTECT: no protection information */
                r = ts_run(t.lun, cdb, cl, dir, b, 512);
                TS_INVALID_CDB(r, 1, 7);
            }
            cdb[1] = 0x04;          /* reserved / RARC */
            r = ts_run(t.lun, cdb, cl, dir, b, 512);
            TS_INVALID_CDB(r, 1, 2);
            cdb[1] = 0x02;          /* obsolete FUA_NV */
            r = ts_run(t.lun, cdb, cl, dir, b, 512);
            TS_INVALID_CDB(r, 1, 1);
            cdb[1] = 0x01;
            r = ts_run(t.lun, cdb, cl, dir, b, 512);
            TS_INVALID_CDB(r, 1, 0);
            cdb[1] = 0x18;          /* DPO + FUA: fine */
            r = ts_run(t.lun, cdb, cl, dir, b, 512);
            ts_good(&r);
            cdb[1] = 0;
            /* group number is ignored */
            size_t gb = k == 1 ? 6 : k == 2 ? 10 : 14;
            cdb[gb] = 0x3f;
            r = ts_run(t.lun, cdb, cl, dir, b, 512);
            ts_good(&r);
            cdb[gb] = 0x80;         /* above the group number */
            r = ts_run(t.lun, cdb, cl, dir, b, 512);
            TS_INVALID_CDB(r, (unsigned)gb, 7);
            cdb[gb] = 0;
            cdb[cl - 1] = 0x04;     /* NACA in the control byte */
            r = ts_run(t.lun, cdb, cl, dir, b, 512);
            TS_INVALID_CDB(r, (unsigned)(cl - 1), 2);
            cdb[cl - 1] = 0;
            /* More than the maximum transfer length (VPD B0; a 10-byte
             * CDB cannot ask for that much at 512 bytes). */
            if (k == 1)
                continue;
            size_t lb = k == 2 ? 6 : 10;
            ts_rw_cdb(cdb, op, 0, (32u << 20) / 512 + 1);
            r = ts_run(t.lun, cdb, cl, dir, b, 512);
            TS_INVALID_CDB(r, (unsigned)lb, -1);
        }
    }
    /* (6): the bits above the 21-bit LBA are reserved. */
    uint8_t r6[6] = { 0x08, 0x20, 0, 0, 1, 0 };
    struct ts_res r = TS_IN(t.lun, r6, b, 512);
    TS_INVALID_CDB(r, 1, 5);
    /* A CDB shorter than its opcode's. */
    uint8_t shortcdb[6] = { 0x28, 0, 0, 0, 0, 1 };
    r = TS_IN(t.lun, shortcdb, b, 512);
    ts_check(&r, 0x5, 0x24, 0x00);
    ts_close(&t);
}

static void test_read_only(void **state)
{
    (void)state;
    ts_image("ro.raw", "raw", "1M");
    assert_int_equal(ts_sh("qemu-io -f raw -c 'write -P 0x42 0 4096' ro.raw"), 0);
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    for (int how = 0; how < 2; how++) {
        /* Configured read-only over a writable image; a read-only image. */
        cfg.read_only = how == 0;
        struct ts_lun t = ts_open_cfg("ro.raw", "raw", &cfg, how == 0);
        uint8_t b[4096];
        memset(b, 0, sizeof(b));
        for (unsigned k = 0; k < 4; k++) {
            uint8_t cdb[16];
            size_t cl = ts_rw_cdb(cdb, write_ops[k], 0, 1);
            struct ts_res r = ts_run(t.lun, cdb, cl, SCSI_DIR_TO_DEV, b, 512);
            ts_check(&r, 0x7, 0x27, 0x00);
            cl = ts_rw_cdb(cdb, read_ops[k], 0, 1);
            r = ts_run(t.lun, cdb, cl, SCSI_DIR_FROM_DEV, b, 512);
            ts_good(&r);
            assert_int_equal(b[0], 0x42);
        }
        ts_close(&t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TS_TEST(test_read_capacity),
        TS_TEST(test_roundtrip_raw_512),
        TS_TEST(test_roundtrip_raw_4k),
        TS_TEST(test_roundtrip_qcow2_512),
        TS_TEST(test_roundtrip_qcow2_4k),
        TS_TEST(test_read_qemu_data),
        TS_TEST(test_boundaries),
        TS_TEST(test_six_byte_256),
        TS_TEST(test_residuals),
        TS_TEST(test_refused_fields),
        TS_TEST(test_read_only),
    };
    return cmocka_run_group_tests(tests, ts_setup, ts_teardown);
}
