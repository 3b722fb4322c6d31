/* Shared by the CDB-level SCSI tests (test_scsi_*.c): a scratch directory
 * with images made by qemu-img, LUNs over them, one call to run a CDB
 * through scsi_cmd_prepare + scsi_cmd_execute, and sense checks that read
 * fixed and descriptor format alike. Header-only: each test is one
 * program. */
#ifndef TEST_SCSI_UTIL_H
#define TEST_SCSI_UTIL_H

#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "scsi/scsi.h"

#define TS_UNUSED __attribute__((unused))

static char ts_dir[256];

/* Run a shell command in the scratch directory; its exit status. */
static TS_UNUSED __attribute__((format(printf, 1, 2))) int ts_sh(const char *fmt, ...)
{
    char *cmd, *full;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&cmd, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    assert_true(asprintf(&full, "cd '%s' && (%s) >>log.txt 2>&1", ts_dir, cmd) >= 0);
    int r = system(full);
    free(cmd);
    free(full);
    return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

static TS_UNUSED const char *ts_path(const char *name)
{
    static char p[4][512];
    static int k;
    k = (k + 1) & 3;
    snprintf(p[k], sizeof(p[k]), "%s/%s", ts_dir, name);
    return p[k];
}

/* Group setup/teardown: a scratch directory; without qemu-img the
 * program exits 77 (skipped, tu_require_qemu). */
static TS_UNUSED int ts_setup(void **state)
{
    (void)state;
    tu_require_qemu();
    return tu_mkdtemp(ts_dir, sizeof(ts_dir), "/tmp/scuse-test-scsi-") ? 0 : -1;
}

static TS_UNUSED int ts_teardown(void **state)
{
    (void)state;
    if (ts_dir[0] && !getenv("SCUSE_TEST_KEEP")) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", ts_dir);
        if (system(cmd) != 0)
            return -1;
    }
    return 0;
}

static TS_UNUSED int ts_need_qemu(void **state)
{
    (void)state;
    if (!ts_dir[0])
        skip();
    return 0;
}

#define TS_TEST(f) cmocka_unit_test_setup(f, ts_need_qemu)

/* A LUN over an image; ts_close() undoes it. */
struct ts_lun {
    struct blk_node *bs;
    struct scsi_lun *lun;
};

static TS_UNUSED void ts_image(const char *name, const char *fmt, const char *size)
{
    if (ts_sh("rm -f '%s' && qemu-img create -q -f %s '%s' %s", name, fmt, name, size) != 0)
        fail_msg("qemu-img create %s failed", name);
}

static TS_UNUSED struct ts_lun ts_open_cfg(const char *name, const char *fmt,
                                           const struct scsi_lun_config *cfg, bool rw)
{
    struct ts_lun t = { 0 };
    struct scuse_err err = { 0 };
    if (blk_open(ts_path(name), fmt, rw ? BLK_OPEN_RW : 0, NULL, &t.bs, &err) < 0)
        fail_msg("open %s: %s", name, err.msg);
    if (scsi_lun_create(cfg, t.bs, 0, &t.lun, &err) < 0)
        fail_msg("LUN over %s: %s", name, err.msg);
    return t;
}

static TS_UNUSED struct ts_lun ts_open(const char *name, const char *fmt, uint32_t block_size)
{
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    cfg.block_size = block_size;
    return ts_open_cfg(name, fmt, &cfg, true);
}

static TS_UNUSED void ts_close(struct ts_lun *t)
{
    scsi_lun_destroy(t->lun);
    blk_close(t->bs);
    t->lun = NULL;
    t->bs = NULL;
}

/* One command's outcome. */
struct ts_res {
    uint8_t status;
    uint8_t sense[SCSI_SENSE_MAX];
    uint32_t sense_len;
    uint32_t xfer, resid;
    bool overflow;
    enum scsi_access access;        /* what prepare said */
    uint64_t lba, nblocks;
    enum scsi_dir dir;              /* as prepare left it (SCSI_DIR_BY_CDB resolved) */
};

/* Prepare and (unless answered) execute cdb with iov[0..cnt) as the data
 * buffer in direction dir. */
static TS_UNUSED struct ts_res ts_runv(struct scsi_lun *lun, const uint8_t *cdb, size_t cdb_len,
                                       enum scsi_dir dir, const struct iovec *iov, int cnt)
{
    struct ts_res r;
    memset(&r, 0, sizeof(r));
    size_t len = 0;
    for (int i = 0; i < cnt; i++)
        len += iov[i].iov_len;
    struct scsi_cmd cmd;
    memset(&cmd, 0, sizeof(cmd));
    cmd.cdb = cdb;
    cmd.cdb_len = (uint32_t)cdb_len;
    cmd.data = iov_view_make(iov, cnt, len);
    cmd.dir = dir;
    cmd.sense = r.sense;
    scsi_cmd_prepare(lun, &cmd);
    r.access = cmd.access;
    r.dir = cmd.dir;
    r.lba = cmd.lba;
    r.nblocks = cmd.nblocks;
    if (cmd.access != SCSI_ACCESS_DONE)
        scsi_cmd_execute(lun, &cmd);
    r.status = cmd.status;
    r.sense_len = cmd.sense_len;
    r.xfer = cmd.xfer;
    r.resid = cmd.resid;
    r.overflow = cmd.overflow;
    return r;
}

static TS_UNUSED struct ts_res ts_run(struct scsi_lun *lun, const uint8_t *cdb, size_t cdb_len,
                                      enum scsi_dir dir, void *buf, size_t len)
{
    struct iovec iov = { buf, len };
    return ts_runv(lun, cdb, cdb_len, dir, &iov, 1);
}

/* Write a buffer to a file in the scratch directory. */
static TS_UNUSED void ts_store(const char *name, const void *b, size_t n)
{
    FILE *f = fopen(ts_path(name), "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

#define TS_IN(lun, cdb, buf, len) ts_run(lun, cdb, sizeof(cdb), SCSI_DIR_FROM_DEV, buf, len)
#define TS_OUT(lun, cdb, buf, len) ts_run(lun, cdb, sizeof(cdb), SCSI_DIR_TO_DEV, buf, len)
#define TS_NONE(lun, cdb) ts_run(lun, cdb, sizeof(cdb), SCSI_DIR_NONE, NULL, 0)

/* Decoded sense, either format. */
struct ts_sense {
    uint8_t key, asc, ascq;
    bool info_valid;
    uint64_t info;
    bool sks_valid;
    uint8_t sks[3];
    bool desc;
};

static TS_UNUSED struct ts_sense ts_sense_decode(const uint8_t *s, uint32_t len)
{
    struct ts_sense d;
    memset(&d, 0, sizeof(d));
    assert_true(len >= 8);
    uint8_t code = s[0] & 0x7f;
    if (code == 0x70 || code == 0x71) {
        assert_int_equal(len, 18);
        assert_int_equal(s[7], 10);
        d.key = s[2] & 0x0f;
        d.asc = s[12];
        d.ascq = s[13];
        d.info_valid = s[0] & 0x80;
        d.info = (uint64_t)s[3] << 24 | (uint64_t)s[4] << 16 | (uint64_t)s[5] << 8 | s[6];
        d.sks_valid = s[15] & 0x80;
        memcpy(d.sks, s + 15, 3);
        return d;
    }
    assert_true(code == 0x72 || code == 0x73);
    d.desc = true;
    d.key = s[1] & 0x0f;
    d.asc = s[2];
    d.ascq = s[3];
    assert_int_equal((uint32_t)s[7] + 8, len);
    for (uint32_t off = 8; off + 2 <= len;) {
        const uint8_t *p = s + off;
        assert_true(off + 2 + p[1] <= len);
        if (p[0] == 0x00) {
            assert_int_equal(p[1], 0x0a);
            d.info_valid = p[2] & 0x80;
            d.info = 0;
            for (int i = 0; i < 8; i++)
                d.info = d.info << 8 | p[4 + i];
        } else if (p[0] == 0x02) {
            assert_int_equal(p[1], 0x06);
            d.sks_valid = p[4] & 0x80;
            memcpy(d.sks, p + 4, 3);
        }
        off += 2 + p[1];
    }
    return d;
}

static TS_UNUSED void ts_good_at(int line, const struct ts_res *r)
{
    if (r->status != SCSI_STATUS_GOOD) {
        struct ts_sense d = ts_sense_decode(r->sense, r->sense_len);
        fail_msg("line %d: status %#x, sense %x/%02x/%02x", line, r->status, d.key, d.asc,
                 d.ascq);
    }
    assert_int_equal(r->sense_len, 0);
}

/* CHECK CONDITION with this key/ASC/ASCQ; returns the decoded sense. */
static TS_UNUSED struct ts_sense ts_check_at(int line, const struct ts_res *r, uint8_t key,
                                             uint8_t asc, uint8_t ascq)
{
    if (r->status != SCSI_STATUS_CHECK_CONDITION)
        fail_msg("line %d: status %#x, expected CHECK CONDITION %x/%02x/%02x", line, r->status,
                 key, asc, ascq);
    struct ts_sense d = ts_sense_decode(r->sense, r->sense_len);
    if (d.key != key || d.asc != asc || d.ascq != ascq)
        fail_msg("line %d: sense %x/%02x/%02x, expected %x/%02x/%02x", line, d.key, d.asc,
                 d.ascq, key, asc, ascq);
    assert_int_equal(r->xfer, 0);
    return d;
}

/* INVALID FIELD IN CDB (cdb true) or PARAMETER LIST, pointing at byte
 * and bit (-1: no bit pointer). */
static TS_UNUSED void ts_field(int line, const struct ts_res *r, bool cdb, unsigned byte,
                               int bit)
{
    struct ts_sense d = ts_check_at(line, r, 0x5, cdb ? 0x24 : 0x26, 0x00);
    if (!d.sks_valid || !!(d.sks[0] & 0x40) != cdb)
        fail_msg("line %d: sense-key-specific bytes %02x %02x %02x", line, d.sks[0], d.sks[1],
                 d.sks[2]);
    unsigned fp = (unsigned)d.sks[1] << 8 | d.sks[2];
    int got = (d.sks[0] & 0x08) ? d.sks[0] & 0x07 : -1;
    if (fp != byte || got != bit)
        fail_msg("line %d: field pointer %u bit %d, expected %u bit %d", line, fp, got, byte, bit);
}

#define ts_good(r) ts_good_at(__LINE__, r)
#define ts_check(r, key, asc, ascq) ts_check_at(__LINE__, r, key, asc, ascq)
#define TS_INVALID_CDB(r, byte, bit) ts_field(__LINE__, &(r), true, byte, bit)
#define TS_INVALID_PARAM(r, byte, bit) ts_field(__LINE__, &(r), false, byte, bit)

/* CDB builders */
static TS_UNUSED void ts_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static TS_UNUSED uint64_t ts_get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* READ/WRITE-style CDB of the opcode's size with lba and length (cdb: 16 bytes). */
static TS_UNUSED size_t ts_rw_cdb(uint8_t *cdb, uint8_t op, uint64_t lba, uint32_t n)
{
    memset(cdb, 0, 16);
    cdb[0] = op;
    switch (op >> 5) {
    case 0:
        ts_be(cdb + 1, lba & 0x1fffff, 3);
        cdb[4] = (uint8_t)n;
        return 6;
    case 1:
    case 2:
        ts_be(cdb + 2, lba, 4);
        ts_be(cdb + 7, n, 2);
        return 10;
    case 5:
        ts_be(cdb + 2, lba, 4);
        ts_be(cdb + 6, n, 4);
        return 12;
    default:
        ts_be(cdb + 2, lba, 8);
        ts_be(cdb + 10, n, 4);
        return 16;
    }
}

/* Deterministic, block-distinct fill. */
static TS_UNUSED void ts_fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)((i * 31 + seed * 7 + (i >> 9) * 13) ^ (seed >> 3));
}

#endif
