/* SBC commands beyond READ/WRITE at the CDB level: VERIFY, WRITE AND
 * VERIFY, COMPARE AND WRITE, WRITE SAME, UNMAP, SYNCHRONIZE CACHE,
 * PRE-FETCH, GET LBA STATUS; results judged by qemu-img compare / map /
 * check where they prove something. */
#include "test_scsi_util.h"

static int img_k;

/* A fresh image of the given format and size, filled by qemu-io cmds. */
static const char *fresh(const char *fmt, const char *size, const char *io)
{
    static char name[4][64];
    char *n = name[img_k & 3];
    snprintf(n, sizeof(name[0]), "sbc-%d.%s", img_k++, fmt);
    ts_image(n, fmt, size);
    if (io && ts_sh("qemu-io -f %s %s '%s'", fmt, io, n) != 0)
        fail_msg("qemu-io %s on %s failed", io, n);
    return n;
}

static void write_blocks(struct scsi_lun *lun, uint64_t lba, uint32_t n, uint32_t bsz,
                         const uint8_t *b)
{
    uint8_t cdb[16];
    size_t cl = ts_rw_cdb(cdb, 0x8a, lba, n);
    struct ts_res r = ts_run(lun, cdb, cl, SCSI_DIR_TO_DEV, (void *)b, (size_t)n * bsz);
    ts_good(&r);
}

static void read_blocks(struct scsi_lun *lun, uint64_t lba, uint32_t n, uint32_t bsz, uint8_t *b)
{
    uint8_t cdb[16];
    size_t cl = ts_rw_cdb(cdb, 0x88, lba, n);
    struct ts_res r = ts_run(lun, cdb, cl, SCSI_DIR_FROM_DEV, b, (size_t)n * bsz);
    ts_good(&r);
}

static void test_verify(void **state)
{
    (void)state;
    for (int bs4k = 0; bs4k < 2; bs4k++) {
        uint32_t bsz = bs4k ? 4096 : 512;
        struct ts_lun t = ts_open(fresh("qcow2", "1M", NULL), "qcow2", bsz);
        uint64_t blocks = (1u << 20) / bsz;
        uint8_t *d = malloc(8 * 4096), *pat = malloc(4096);
        ts_fill(d, 8 * bsz, 3);
        write_blocks(t.lun, 4, 8, bsz, d);
        for (int ten = 0; ten < 2; ten++) {
            uint8_t op = ten ? 0x2f : 0x8f;
            uint8_t cdb[16];
            size_t cl = ts_rw_cdb(cdb, op, 4, 8);
            /* BYTCHK 0: the medium is readable. */
            struct ts_res r = ts_run(t.lun, cdb, cl, SCSI_DIR_NONE, NULL, 0);
            ts_good(&r);
            assert_int_equal(r.access, SCSI_ACCESS_READ);
            assert_int_equal(r.lba, 4);
            assert_int_equal(r.nblocks, 8);
            /* BYTCHK 1: equal data, then one byte off. */
            cdb[1] = 0x02;
            r = ts_run(t.lun, cdb, cl, SCSI_DIR_TO_DEV, d, 8 * bsz);
            ts_good(&r);
            assert_int_equal(r.xfer, 8 * bsz);
            d[bsz + 123] ^= 0x40;
            r = ts_run(t.lun, cdb, cl, SCSI_DIR_TO_DEV, d, 8 * bsz);
            struct ts_sense s = ts_check(&r, 0xe, 0x1d, 0x00);
            assert_true(s.info_valid);
            assert_int_equal(s.info, bsz + 123);
            d[bsz + 123] ^= 0x40;
            /* ...with the data-out buffer split across iovecs. */
            struct iovec iov[3] = { { d, 700 }, { d + 700, 3 * bsz - 700 },
                                    { d + 3 * bsz, 5 * bsz } };
            r = ts_runv(t.lun, cdb, cl, SCSI_DIR_TO_DEV, iov, 3);
            ts_good(&r);
            d[7 * bsz + 5] ^= 1;
            r = ts_runv(t.lun, cdb, cl, SCSI_DIR_TO_DEV, iov, 3);
            s = ts_check(&r, 0xe, 0x1d, 0x00);
            assert_int_equal(s.info, 7 * bsz + 5);
            d[7 * bsz + 5] ^= 1;
            /* A shorter buffer: the blocks it holds are compared. */
            r = ts_run(t.lun, cdb, cl, SCSI_DIR_TO_DEV, d, 3 * bsz + 10);
            ts_good(&r);
            assert_true(r.overflow);
            assert_int_equal(r.xfer, 3 * bsz);
            /* BYTCHK 3: one block against every block (unwritten ones are zeros). */
            cdb[1] = 0x06;
            memset(pat, 0, bsz);
            cl = ts_rw_cdb(cdb, op, 20, 10);
            cdb[1] = 0x06;
            r = ts_run(t.lun, cdb, cl, SCSI_DIR_TO_DEV, pat, bsz);
            ts_good(&r);
            cl = ts_rw_cdb(cdb, op, 10, 4);  /* runs into the written blocks at 4..11 */
            cdb[1] = 0x06;
            r = ts_run(t.lun, cdb, cl, SCSI_DIR_TO_DEV, pat, bsz);
            s = ts_check(&r, 0xe, 0x1d, 0x00);
            size_t first = 0;
            while (d[6 * bsz + first] == 0)
                first++;
            assert_int_equal(s.info, first);
            r = ts_run(t.lun, cdb, cl, SCSI_DIR_TO_DEV, pat, bsz - 1);
            ts_check(&r, 0x5, 0x1a, 0x00);
            assert_true(r.overflow);
            /* BYTCHK 2 reserved; VRPROTECT; bit 0 obsolete. */
            cdb[1] = 0x04;
            r = ts_run(t.lun, cdb, cl, SCSI_DIR_NONE, NULL, 0);
            TS_INVALID_CDB(r, 1, 2);
            cdb[1] = 0x40;
            r = ts_run(t.lun, cdb, cl, SCSI_DIR_NONE, NULL, 0);
            TS_INVALID_CDB(r, 1, 7);
            cdb[1] = 0x01;
            r = ts_run(t.lun, cdb, cl, SCSI_DIR_NONE, NULL, 0);
            TS_INVALID_CDB(r, 1, 0);
            /* Boundaries and length 0. */
            cl = ts_rw_cdb(cdb, op, blocks - 1, 1);
            r = ts_run(t.lun, cdb, cl, SCSI_DIR_NONE, NULL, 0);
            ts_good(&r);
            cl = ts_rw_cdb(cdb, op, blocks - 1, 2);
            r = ts_run(t.lun, cdb, cl, SCSI_DIR_NONE, NULL, 0);
            ts_check(&r, 0x5, 0x21, 0x00);
            cl = ts_rw_cdb(cdb, op, blocks - 1, 0);
            r = ts_run(t.lun, cdb, cl, SCSI_DIR_NONE, NULL, 0);
            ts_good(&r);
            assert_int_equal(r.access, SCSI_ACCESS_DONE);
        }
        free(d);
        free(pat);
        ts_close(&t);
    }
}

static void test_write_verify(void **state)
{
    (void)state;
    const char *name = fresh("raw", "1M", NULL);
    struct ts_lun t = ts_open(name, "raw", 512);
    uint8_t d[8 * 512], rd[8 * 512];
    for (int ten = 0; ten < 2; ten++) {
        for (int bytchk = 0; bytchk < 2; bytchk++) {
            ts_fill(d, sizeof(d), (unsigned)(ten * 2 + bytchk));
            uint8_t cdb[16];
            size_t cl = ts_rw_cdb(cdb, ten ? 0x2e : 0x8e, 16, 8);
            cdb[1] = bytchk ? 0x02 : 0;
            struct ts_res r = ts_run(t.lun, cdb, cl, SCSI_DIR_TO_DEV, d, sizeof(d));
            ts_good(&r);
            assert_int_equal(r.access, SCSI_ACCESS_WRITE);
            assert_int_equal(r.xfer, sizeof(d));
            read_blocks(t.lun, 16, 8, 512, rd);
            assert_memory_equal(d, rd, sizeof(d));
            cdb[1] = 0x04;          /* BYTCHK 1x: not for WRITE AND VERIFY here */
            r = ts_run(t.lun, cdb, cl, SCSI_DIR_TO_DEV, d, sizeof(d));
            TS_INVALID_CDB(r, 1, 2);
            cdb[1] = 0x20;
            r = ts_run(t.lun, cdb, cl, SCSI_DIR_TO_DEV, d, sizeof(d));
            TS_INVALID_CDB(r, 1, 7);
            cdb[1] = 0x08;          /* no FUA bit in WRITE AND VERIFY */
            r = ts_run(t.lun, cdb, cl, SCSI_DIR_TO_DEV, d, sizeof(d));
            TS_INVALID_CDB(r, 1, 3);
        }
    }
    ts_close(&t);
    ts_store("wv-expect.raw", d, sizeof(d));
    assert_int_equal(ts_sh("cmp -n 4096 -i 8192:0 '%s' wv-expect.raw", name), 0);
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    cfg.read_only = true;
    t = ts_open_cfg(name, "raw", &cfg, false);
    uint8_t cdb[16];
    ts_rw_cdb(cdb, 0x2e, 0, 1);
    struct ts_res r = TS_OUT(t.lun, cdb, d, 512);
    ts_check(&r, 0x7, 0x27, 0x00);
    ts_close(&t);
}

static void test_compare_and_write(void **state)
{
    (void)state;
    const char *name = fresh("qcow2", "1M", "-c 'write -P 0x61 0 64k'");
    struct ts_lun t = ts_open(name, "qcow2", 512);
    uint8_t buf[2 * 4 * 512], rd[4 * 512];
    memset(buf, 0x61, 4 * 512);
    ts_fill(buf + 4 * 512, 4 * 512, 77);
    uint8_t cdb[16] = { 0x89, 0x08 };   /* FUA */
    ts_be(cdb + 2, 10, 8);
    cdb[13] = 4;
    struct ts_res r = TS_OUT(t.lun, cdb, buf, sizeof(buf));
    ts_good(&r);
    assert_int_equal(r.access, SCSI_ACCESS_ATOMIC);
    assert_int_equal(r.lba, 10);
    assert_int_equal(r.nblocks, 4);
    assert_int_equal(r.xfer, sizeof(buf));
    read_blocks(t.lun, 10, 4, 512, rd);
    assert_memory_equal(rd, buf + 4 * 512, sizeof(rd));
    /* Again with the same verify data: the blocks changed, a miscompare
     * at the first byte that differs, and nothing written. */
    uint8_t newer[2 * 4 * 512];
    memcpy(newer, buf + 4 * 512, 4 * 512);
    newer[700] ^= 0xff;
    memset(newer + 4 * 512, 0x99, 4 * 512);
    r = TS_OUT(t.lun, cdb, newer, sizeof(newer));
    struct ts_sense s = ts_check(&r, 0xe, 0x1d, 0x00);
    assert_true(s.info_valid);
    assert_int_equal(s.info, 700);
    read_blocks(t.lun, 10, 4, 512, rd);
    assert_memory_equal(rd, buf + 4 * 512, sizeof(rd));
    newer[700] ^= 0xff;
    r = TS_OUT(t.lun, cdb, newer, sizeof(newer));
    ts_good(&r);
    read_blocks(t.lun, 10, 4, 512, rd);
    assert_memory_equal(rd, newer + 4 * 512, sizeof(rd));
    /* Short data-out (the CDB and the transfer disagree: INVALID FIELD
     * IN CDB at NUMBER OF LOGICAL BLOCKS), 0 blocks, range, fields. */
    r = TS_OUT(t.lun, cdb, newer, sizeof(newer) - 1);
    TS_INVALID_CDB(r, 13, -1);
    cdb[13] = 0;
    r = TS_OUT(t.lun, cdb, newer, 0);
    ts_good(&r);
    cdb[13] = 2;
    ts_be(cdb + 2, 2047, 8);
    r = TS_OUT(t.lun, cdb, newer, 2 * 2 * 512);
    ts_check(&r, 0x5, 0x21, 0x00);
    ts_be(cdb + 2, 0, 8);
    cdb[12] = 1;                    /* reserved */
    r = TS_OUT(t.lun, cdb, newer, 4 * 512);
    TS_INVALID_CDB(r, 12, 0);
    cdb[12] = 0;
    cdb[1] = 0x80;
    r = TS_OUT(t.lun, cdb, newer, 4 * 512);
    TS_INVALID_CDB(r, 1, 7);
    ts_close(&t);
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    cfg.read_only = true;
    t = ts_open_cfg(name, "qcow2", &cfg, false);
    cdb[1] = 0;
    r = TS_OUT(t.lun, cdb, newer, 4 * 512);
    ts_check(&r, 0x7, 0x27, 0x00);
    ts_close(&t);
    assert_int_equal(ts_sh("qemu-img check '%s'", name), 0);
}

/* Descriptors of GET LBA STATUS from lba: (lba, count, status) triples. */
struct lbas {
    unsigned n;
    uint64_t lba[64], count[64];
    int ps[64];
    uint32_t param_len, xfer;
};

static struct lbas lba_status(struct scsi_lun *lun, uint64_t lba, uint32_t alloc)
{
    uint8_t cdb[16] = { 0x9e, 0x12 };
    ts_be(cdb + 2, lba, 8);
    ts_be(cdb + 10, alloc, 4);
    uint8_t b[8 + 64 * 16];
    memset(b, 0xee, sizeof(b));
    struct ts_res r = TS_IN(lun, cdb, b, alloc < sizeof(b) ? alloc : sizeof(b));
    ts_good(&r);
    struct lbas s;
    memset(&s, 0, sizeof(s));
    s.xfer = r.xfer;
    s.param_len = (uint32_t)ts_get(b, 4);
    for (size_t off = 8; off + 16 <= r.xfer && s.n < 64; off += 16, s.n++) {
        s.lba[s.n] = ts_get(b + off, 8);
        s.count[s.n] = ts_get(b + off + 8, 4);
        s.ps[s.n] = b[off + 12] & 0x0f;
    }
    return s;
}

static void test_get_lba_status(void **state)
{
    (void)state;
    /* mapped [0,128K), unallocated, preallocated zero (anchored), zero
     * clusters without a host cluster, unallocated to the end. */
    const char *name = fresh("qcow2", "1M",
                             "-c 'write -P 1 0 128k' -c 'write -P 2 192k 64k' "
                             "-c 'write -z 192k 64k' -c 'write -P 3 256k 64k' "
                             "-c 'write -z -u 256k 64k' -c 'write -z 384k 64k'");
    struct ts_lun t = ts_open(name, "qcow2", 512);
    struct lbas s = lba_status(t.lun, 0, 1024);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.param_len, 4 + 4 * 16);
    uint64_t want[4][3] = { { 0, 256, 0 }, { 256, 128, 1 }, { 384, 128, 2 }, { 512, 1536, 1 } };
    for (int i = 0; i < 4; i++) {
        assert_int_equal(s.lba[i], want[i][0]);
        assert_int_equal(s.count[i], want[i][1]);
        assert_int_equal(s.ps[i], (int)want[i][2]);
    }
    /* From inside an extent: the first descriptor starts there. */
    s = lba_status(t.lun, 100, 1024);
    assert_int_equal(s.lba[0], 100);
    assert_int_equal(s.count[0], 156);
    /* The allocation length holds one descriptor: one is made. */
    s = lba_status(t.lun, 0, 24);
    assert_int_equal(s.xfer, 24);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.param_len, 20);
    /* Shorter than one: truncated. */
    s = lba_status(t.lun, 0, 12);
    assert_int_equal(s.xfer, 12);
    /* The last LBA; one past it. */
    s = lba_status(t.lun, 2047, 1024);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.count[0], 1);
    assert_int_equal(s.ps[0], 1);
    uint8_t cdb[16] = { 0x9e, 0x12 };
    ts_be(cdb + 2, 2048, 8);
    ts_be(cdb + 10, 64, 4);
    uint8_t b[64];
    struct ts_res r = TS_IN(t.lun, cdb, b, sizeof(b));
    ts_check(&r, 0x5, 0x21, 0x00);
    ts_be(cdb + 2, 0, 8);
    cdb[14] = 1;                    /* REPORT TYPE: only "all" is offered */
    r = TS_IN(t.lun, cdb, b, sizeof(b));
    TS_INVALID_CDB(r, 14, 0);
    ts_close(&t);

    /* 4096-byte blocks over 512-byte clusters: a block with any data in
     * it is mapped. */
    assert_int_equal(ts_sh("qemu-img create -q -f qcow2 -o cluster_size=512 sbc-small.qcow2 64k "
                           "&& qemu-io -f qcow2 -c 'write -P 1 4608 512' sbc-small.qcow2"), 0);
    t = ts_open("sbc-small.qcow2", "qcow2", 4096);
    s = lba_status(t.lun, 0, 1024);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.count[0], 1);
    assert_int_equal(s.ps[0], 1);
    assert_int_equal(s.lba[1], 1);
    assert_int_equal(s.count[1], 1);
    assert_int_equal(s.ps[1], 0);
    assert_int_equal(s.ps[2], 1);
    ts_close(&t);

    /* Discard off: fully provisioned, everything mapped. */
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    cfg.discard = false;
    t = ts_open_cfg("sbc-small.qcow2", "qcow2", &cfg, true);
    s = lba_status(t.lun, 3, 1024);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.lba[0], 3);
    assert_int_equal(s.count[0], 128 - 3);
    assert_int_equal(s.ps[0], 0);
    ts_close(&t);
}

static void ws(struct scsi_lun *lun, bool sixteen, uint8_t flags, uint64_t lba, uint32_t n,
               void *blk, size_t len, struct ts_res *r)
{
    uint8_t cdb[16];
    size_t cl = ts_rw_cdb(cdb, sixteen ? 0x93 : 0x41, lba, n);
    cdb[1] = flags;
    *r = ts_run(lun, cdb, cl, len ? SCSI_DIR_TO_DEV : SCSI_DIR_NONE, blk, len);
}

static void write_same_on(const char *fmt, uint32_t bsz)
{
    const char *name = fresh(fmt, "2M", "-c 'write -P 0x5c 0 2M'");
    struct ts_lun t = ts_open(name, fmt, bsz);
    size_t size = 2u << 20;
    uint64_t blocks = size / bsz;
    uint8_t *shadow = malloc(size), *blk = malloc(2 * 4096);
    memset(shadow, 0x5c, size);
    struct ts_res r;

    /* A pattern over 300 blocks (more than one batch of iovecs). */
    ts_fill(blk, bsz, 42);
    ws(t.lun, true, 0, 5, 300, blk, bsz, &r);
    ts_good(&r);
    assert_int_equal(r.access, SCSI_ACCESS_WRITE);
    assert_int_equal(r.xfer, bsz);
    for (int i = 0; i < 300; i++)
        memcpy(shadow + (5 + i) * (size_t)bsz, blk, bsz);
    /* The pattern block split across two iovecs. */
    ts_fill(blk, bsz, 43);
    uint8_t cdb[16];
    size_t cl = ts_rw_cdb(cdb, 0x41, 400, 7);
    struct iovec iov[2] = { { blk, 100 }, { blk + 100, bsz - 100 } };
    r = ts_runv(t.lun, cdb, cl, SCSI_DIR_TO_DEV, iov, 2);
    ts_good(&r);
    for (int i = 0; i < 7; i++)
        memcpy(shadow + (400 + i) * (size_t)bsz, blk, bsz);
    /* Zeros, with and without UNMAP; NDOB. */
    memset(blk, 0, bsz);
    ws(t.lun, false, 0x08, 0, 3, blk, bsz, &r);
    ts_good(&r);
    memset(shadow, 0, 3 * (size_t)bsz);
    ws(t.lun, true, 0x00, blocks - 50, 50, blk, bsz, &r);
    ts_good(&r);
    memset(shadow + size - 50 * (size_t)bsz, 0, 50 * (size_t)bsz);
    uint64_t big = (1u << 20) / bsz;        /* 1 MiB: whole clusters deallocate */
    ws(t.lun, true, 0x09, big / 2, (uint32_t)big, NULL, 0, &r);
    ts_good(&r);
    assert_int_equal(r.xfer, 0);
    memset(shadow + (size_t)(big / 2) * bsz, 0, (size_t)big * bsz);
    /* UNMAP with a non-zero pattern: written, not deallocated. */
    memset(blk, 0x01, bsz);
    ws(t.lun, true, 0x08, 1000 * 512 / bsz, 2, blk, bsz, &r);
    ts_good(&r);
    memset(shadow + 1000 * 512, 0x01, 2 * (size_t)bsz);

    /* 0 blocks (WSNZ 0): from the LBA to the end of the medium, (16) and
     * (10); at the capacity, LBA OUT OF RANGE. */
    memset(blk, 0x0b, bsz);
    ws(t.lun, true, 0, blocks - 3, 0, blk, bsz, &r);
    ts_good(&r);
    assert_int_equal(r.lba, blocks - 3);
    assert_int_equal(r.nblocks, 3);
    ws(t.lun, false, 0, blocks - 2, 0, blk, bsz, &r);
    ts_good(&r);
    assert_int_equal(r.nblocks, 2);
    memset(shadow + size - 3 * (size_t)bsz, 0x0b, 3 * (size_t)bsz);
    ws(t.lun, true, 0, blocks, 0, blk, bsz, &r);
    ts_check(&r, 0x5, 0x21, 0x00);
    memset(blk, 0x01, bsz);

    /* Refused: over the limit, ANCHOR, WRPROTECT, PBDATA, LBDATA, NDOB in
     * (10), range, short data-out. */
    ws(t.lun, true, 0, 0, (uint32_t)((256u << 20) / bsz + 1), blk, bsz, &r);
    TS_INVALID_CDB(r, 10, -1);
    ws(t.lun, true, 0x18, 0, 1, blk, bsz, &r);
    TS_INVALID_CDB(r, 1, 4);
    ws(t.lun, true, 0x60, 0, 1, blk, bsz, &r);
    TS_INVALID_CDB(r, 1, 7);
    ws(t.lun, false, 0x04, 0, 1, blk, bsz, &r);
    TS_INVALID_CDB(r, 1, 2);
    ws(t.lun, false, 0x02, 0, 1, blk, bsz, &r);
    TS_INVALID_CDB(r, 1, 1);
    ws(t.lun, false, 0x01, 0, 1, blk, bsz, &r);
    TS_INVALID_CDB(r, 1, 0);
    ws(t.lun, true, 0, blocks - 1, 2, blk, bsz, &r);
    ts_check(&r, 0x5, 0x21, 0x00);
    ws(t.lun, true, 0, blocks - 1, 1, blk, bsz, &r);
    ts_good(&r);
    memset(shadow + size - bsz, 0x01, bsz);
    ws(t.lun, true, 0, 0, 1, blk, bsz - 1, &r);
    ts_check(&r, 0x5, 0x1a, 0x00);
    ts_close(&t);

    ts_store("ws-shadow.raw", shadow, size);
    if (ts_sh("qemu-img compare -f %s -F raw '%s' ws-shadow.raw", fmt, name) != 0)
        fail_msg("%s (%u-byte blocks) differs from its shadow", name, bsz);
    if (strcmp(fmt, "qcow2") == 0) {
        assert_int_equal(ts_sh("qemu-img check '%s'", name), 0);
        /* The NDOB+UNMAP megabyte no longer holds data clusters. */
        assert_int_equal(ts_sh("qemu-img map --output=json '%s' | grep '\"start\": %u,' | "
                               "grep -q '\"data\": false'", name, (1u << 20) / 2), 0);
    }
    free(shadow);
    free(blk);

    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    cfg.read_only = true;
    cfg.block_size = bsz;
    t = ts_open_cfg(name, fmt, &cfg, false);
    uint8_t z[4096] = { 0 };
    ws(t.lun, true, 0x08, 0, 1, z, bsz, &r);
    ts_check(&r, 0x7, 0x27, 0x00);
    ts_close(&t);
}

static void test_write_same_raw_512(void **state) { (void)state; write_same_on("raw", 512); }
static void test_write_same_qcow2_512(void **state) { (void)state; write_same_on("qcow2", 512); }
static void test_write_same_qcow2_4k(void **state) { (void)state; write_same_on("qcow2", 4096); }

/* UNMAP parameter list: header, then (lba, count) descriptors. */
static size_t unmap_list(uint8_t *p, const uint64_t (*d)[2], unsigned n)
{
    memset(p, 0, 8 + 16 * n);
    ts_be(p, 6 + 16 * n, 2);
    ts_be(p + 2, 16 * n, 2);
    for (unsigned i = 0; i < n; i++) {
        ts_be(p + 8 + 16 * i, d[i][0], 8);
        ts_be(p + 8 + 16 * i + 8, d[i][1], 4);
    }
    return 8 + 16 * n;
}

static struct ts_res unmap(struct scsi_lun *lun, uint8_t *p, size_t plen, size_t buflen)
{
    uint8_t cdb[10] = { 0x42 };
    ts_be(cdb + 7, plen, 2);
    return TS_OUT(lun, cdb, p, buflen);
}

static void test_unmap(void **state)
{
    (void)state;
    const char *name = fresh("qcow2", "2M", "-c 'write -P 0x37 0 2M'");
    struct ts_lun t = ts_open(name, "qcow2", 512);
    size_t size = 2u << 20;
    uint8_t *shadow = malloc(size);
    memset(shadow, 0x37, size);
    uint8_t p[8 + 300 * 16];

    /* Two cluster-aligned ranges. */
    static const uint64_t two[][2] = { { 128, 256 }, { 2048, 384 } };
    size_t n = unmap_list(p, two, 2);
    struct ts_res r = unmap(t.lun, p, n, n);
    ts_good(&r);
    assert_int_equal(r.access, SCSI_ACCESS_WRITE);
    assert_int_equal(r.lba, 128);
    assert_int_equal(r.nblocks, 2048 + 384 - 128);
    memset(shadow + 128 * 512, 0, 256 * 512);
    memset(shadow + 2048 * 512, 0, 384 * 512);
    struct lbas s = lba_status(t.lun, 0, 1024);
    assert_int_equal(s.n, 5);
    assert_int_equal(s.ps[1], 1);
    assert_int_equal(s.lba[1], 128);
    assert_int_equal(s.count[1], 256);
    assert_int_equal(s.ps[3], 1);

    /* Every descriptor is checked before any is applied: a valid one
     * followed by one past the end changes nothing. */
    static const uint64_t bad_range[][2] = { { 1024, 128 }, { 4095, 2 } };
    n = unmap_list(p, bad_range, 2);
    r = unmap(t.lun, p, n, n);
    ts_check(&r, 0x5, 0x21, 0x00);
    static const uint64_t bad_rsv[][2] = { { 1024, 128 }, { 0, 1 } };
    n = unmap_list(p, bad_rsv, 2);
    p[8 + 16 + 13] = 1;
    r = unmap(t.lun, p, n, n);
    TS_INVALID_PARAM(r, 8 + 16 + 12, -1);
    static const uint64_t bad_count[][2] = { { 1024, 128 }, { 0, (1u << 30) / 512 + 1 } };
    n = unmap_list(p, bad_count, 2);
    r = unmap(t.lun, p, n, n);
    TS_INVALID_PARAM(r, 8 + 16 + 8, -1);
    n = unmap_list(p, bad_rsv, 1);
    p[5] = 1;                       /* header reserved */
    r = unmap(t.lun, p, n, n);
    TS_INVALID_PARAM(r, 4, -1);
    uint64_t many[257][2];
    for (int i = 0; i < 257; i++) {
        many[i][0] = 1024;
        many[i][1] = 1;
    }
    n = unmap_list(p, many, 257);
    r = unmap(t.lun, p, n, n);
    TS_INVALID_PARAM(r, 2, -1);
    uint8_t rd[128 * 512];
    read_blocks(t.lun, 1024, 128, 512, rd);
    for (size_t i = 0; i < sizeof(rd); i++)
        assert_int_equal(rd[i], 0x37);

    /* Lengths: 0 is nothing; under 8 is an error; a short buffer; a
     * trailing partial descriptor is ignored; empty descriptors. */
    r = unmap(t.lun, p, 0, 0);
    ts_good(&r);
    r = unmap(t.lun, p, 7, 7);
    ts_check(&r, 0x5, 0x1a, 0x00);
    n = unmap_list(p, bad_range, 1);
    r = unmap(t.lun, p, n, 6);
    ts_check(&r, 0x5, 0x1a, 0x00);
    assert_true(r.overflow);
    static const uint64_t tail[][2] = { { 3072, 128 }, { 0, 4096 } };
    n = unmap_list(p, tail, 2);
    ts_be(p + 2, 16 + 10, 2);       /* descriptor data length: 1 and a part */
    r = unmap(t.lun, p, n, n);
    ts_good(&r);
    assert_int_equal(r.nblocks, 128);
    memset(shadow + 3072 * 512, 0, 128 * 512);
    static const uint64_t empty[][2] = { { 5, 0 } };
    n = unmap_list(p, empty, 1);
    r = unmap(t.lun, p, n, n);
    ts_good(&r);
    assert_int_equal(r.access, SCSI_ACCESS_DONE);
    /* Unaligned to clusters (5 blocks inside one): LBPRZ is claimed, so
     * they read zeros at once, though the cluster stays allocated. */
    static const uint64_t odd[][2] = { { 3, 5 } };
    n = unmap_list(p, odd, 1);
    r = unmap(t.lun, p, n, n);
    ts_good(&r);
    read_blocks(t.lun, 3, 5, 512, rd);
    for (size_t i = 0; i < 5 * 512; i++)
        if (rd[i] != 0)
            fail_msg("an unmapped block (LBPRZ) reads %#x", rd[i]);
    memset(shadow + 3 * 512, 0, 5 * 512);
    /* MAXIMUM UNMAP LBA COUNT bounds the command, all descriptors
     * together: 4096 blocks then 2^20 - 4095 are refused at the second's
     * count, before its range is looked at. */
    static const uint64_t big[][2] = { { 0, 4096 }, { 0, (1u << 20) - 4095 } };
    n = unmap_list(p, big, 2);
    r = unmap(t.lun, p, n, n);
    TS_INVALID_PARAM(r, 8 + 16 + 8, -1);
    /* ANCHOR; CDB reserved bytes. */
    uint8_t cdb[10] = { 0x42, 0x01, 0, 0, 0, 0, 0, 0, 24, 0 };
    r = TS_OUT(t.lun, cdb, p, 24);
    TS_INVALID_CDB(r, 1, 0);
    cdb[1] = 0;
    cdb[3] = 1;
    r = TS_OUT(t.lun, cdb, p, 24);
    TS_INVALID_CDB(r, 3, 0);

    /* The list changed in the transport's memory between prepare and
     * execute: refused, not applied outside the announced range. */
    static const uint64_t one[][2] = { { 3200, 64 } };
    n = unmap_list(p, one, 1);
    uint8_t c2[10] = { 0x42, 0, 0, 0, 0, 0, 0, 0, (uint8_t)n, 0 };
    struct iovec iov = { p, n };
    struct scsi_cmd cmd;
    uint8_t sense[SCSI_SENSE_MAX];
    memset(&cmd, 0, sizeof(cmd));
    cmd.cdb = c2;
    cmd.cdb_len = 10;
    cmd.data = iov_view_make(&iov, 1, n);
    cmd.dir = SCSI_DIR_TO_DEV;
    cmd.sense = sense;
    scsi_cmd_prepare(t.lun, &cmd);
    assert_int_equal(cmd.access, SCSI_ACCESS_WRITE);
    ts_be(p + 8, 0, 8);
    scsi_cmd_execute(t.lun, &cmd);
    assert_int_equal(cmd.status, SCSI_STATUS_CHECK_CONDITION);
    read_blocks(t.lun, 0, 64, 512, rd);
    assert_memory_equal(rd, shadow, 64 * 512);
    ts_close(&t);

    ts_store("unmap-shadow.raw", shadow, size);
    assert_int_equal(ts_sh("qemu-img compare -f qcow2 -F raw '%s' unmap-shadow.raw", name), 0);
    assert_int_equal(ts_sh("qemu-img check '%s'", name), 0);
    free(shadow);

    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    cfg.read_only = true;
    t = ts_open_cfg(name, "qcow2", &cfg, false);
    n = unmap_list(p, one, 1);
    r = unmap(t.lun, p, n, n);
    ts_check(&r, 0x7, 0x27, 0x00);
    ts_close(&t);
}

static void test_sync_cache_prefetch(void **state)
{
    (void)state;
    const char *name = fresh("raw", "32M", "-c 'write -P 1 0 64k'");
    struct ts_lun t = ts_open(name, "raw", 512);
    uint64_t blocks = (32u << 20) / 512;
    for (int sixteen = 0; sixteen < 2; sixteen++) {
        uint8_t cdb[16];
        size_t cl = ts_rw_cdb(cdb, sixteen ? 0x91 : 0x35, 10, 20);
        struct ts_res r = ts_run(t.lun, cdb, cl, SCSI_DIR_NONE, NULL, 0);
        ts_good(&r);
        assert_int_equal(r.access, SCSI_ACCESS_FLUSH);
        assert_int_equal(r.lba, 10);
        assert_int_equal(r.nblocks, 20);
        cdb[1] = 0x02;              /* IMMED */
        r = ts_run(t.lun, cdb, cl, SCSI_DIR_NONE, NULL, 0);
        ts_good(&r);
        cdb[1] = 0x04;              /* SYNC_NV: obsolete */
        r = ts_run(t.lun, cdb, cl, SCSI_DIR_NONE, NULL, 0);
        TS_INVALID_CDB(r, 1, 2);
        cl = ts_rw_cdb(cdb, sixteen ? 0x91 : 0x35, 100, 0);   /* to the end */
        r = ts_run(t.lun, cdb, cl, SCSI_DIR_NONE, NULL, 0);
        ts_good(&r);
        assert_int_equal(r.nblocks, blocks - 100);
        cl = ts_rw_cdb(cdb, sixteen ? 0x91 : 0x35, blocks, 0);
        r = ts_run(t.lun, cdb, cl, SCSI_DIR_NONE, NULL, 0);
        ts_check(&r, 0x5, 0x21, 0x00);

        /* PRE-FETCH: what fits the cache gets CONDITION MET. */
        cl = ts_rw_cdb(cdb, sixteen ? 0x90 : 0x34, 0, 256);
        r = ts_run(t.lun, cdb, cl, SCSI_DIR_NONE, NULL, 0);
        assert_int_equal(r.status, SCSI_STATUS_CONDITION_MET);
        assert_int_equal(r.sense_len, 0);
        assert_int_equal(r.access, SCSI_ACCESS_READ);
        cdb[1] = 0x02;              /* IMMED */
        r = ts_run(t.lun, cdb, cl, SCSI_DIR_NONE, NULL, 0);
        assert_int_equal(r.status, SCSI_STATUS_CONDITION_MET);
        cl = ts_rw_cdb(cdb, sixteen ? 0x90 : 0x34, 0, 0);     /* 32 MiB: more than fits */
        r = ts_run(t.lun, cdb, cl, SCSI_DIR_NONE, NULL, 0);
        ts_good(&r);
        assert_int_equal(r.nblocks, blocks);
        cl = ts_rw_cdb(cdb, sixteen ? 0x90 : 0x34, blocks - 1, 2);
        r = ts_run(t.lun, cdb, cl, SCSI_DIR_NONE, NULL, 0);
        ts_check(&r, 0x5, 0x21, 0x00);
        cl = ts_rw_cdb(cdb, sixteen ? 0x90 : 0x34, 0, 1);
        cdb[1] = 0x01;
        r = ts_run(t.lun, cdb, cl, SCSI_DIR_NONE, NULL, 0);
        TS_INVALID_CDB(r, 1, 0);
    }
    ts_close(&t);
    /* Read-only: nothing to flush, still GOOD. */
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    cfg.read_only = true;
    t = ts_open_cfg(name, "raw", &cfg, false);
    uint8_t sc[10] = { 0x35 };
    struct ts_res r = TS_NONE(t.lun, sc);
    ts_good(&r);
    ts_close(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TS_TEST(test_verify),
        TS_TEST(test_write_verify),
        TS_TEST(test_compare_and_write),
        TS_TEST(test_get_lba_status),
        TS_TEST(test_write_same_raw_512),
        TS_TEST(test_write_same_qcow2_512),
        TS_TEST(test_write_same_qcow2_4k),
        TS_TEST(test_unmap),
        TS_TEST(test_sync_cache_prefetch),
    };
    return cmocka_run_group_tests(tests, ts_setup, ts_teardown);
}
