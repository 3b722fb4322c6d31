/* The driver contract of core/blk/driver.h, held to by the block layer
 * against a fake format that wants 4096-byte alignment ("fake4k", alias
 * "f4k", magic "FAKE4K" at offset 0): every request of every kind reaches
 * it aligned (the end may be the image's ragged end), unaligned writes and
 * zero writes become read-modify-write of the edge blocks without losing
 * concurrent writes to the same block, FUA reaches only a driver that
 * declares it, errors travel with each call, and per-format open options
 * are checked against the driver's table.
 *
 * The fake format stores the disk in the file after a 4096-byte header;
 * it is plugged in through blk_opts.drivers, so this test touches no core
 * file: a real format is a folder under formats/ plus one line in
 * core/blk/registry.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "blk/driver.h"
#include "testutil.h"

#define HDR 4096u
#define ALIGN 4096u
/* Not a multiple of ALIGN: the last block is 512 bytes long. */
#define DISK_SIZE (64u * 4096u + 512u)

enum req_kind { R_READ, R_WRITE, R_ZERO, R_DISCARD, R_STATUS, R_FLUSH };

struct req {
    enum req_kind kind;
    uint64_t off, len;
    unsigned flags;
};

#define MAX_REQS 4096
/* The fake driver's log of what reached it (one image open at a time). */
struct fake_log {
    pthread_mutex_t lock;
    struct req r[MAX_REQS];
    unsigned n;
    unsigned misaligned;       /* requests that broke the promise */
    int fail_reads;            /* > 0: fail that many reads, each with its own reason */
    unsigned failed;
};
static struct fake_log fl = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void log_req(const struct blk_node *bs, enum req_kind k, uint64_t off, uint64_t len,
                    unsigned flags)
{
    pthread_mutex_lock(&fl.lock);
    bool ok = k == R_FLUSH ||
              ((off % ALIGN) == 0 && len > 0 && off + len <= bs->size &&
               ((len % ALIGN) == 0 || off + len == bs->size));
    if (!ok)
        fl.misaligned++;
    if (fl.n < MAX_REQS)
        fl.r[fl.n++] = (struct req){ k, off, len, flags };
    pthread_mutex_unlock(&fl.lock);
}

static void log_reset(void)
{
    pthread_mutex_lock(&fl.lock);
    fl.n = 0;
    fl.misaligned = 0;
    fl.fail_reads = 0;
    fl.failed = 0;
    pthread_mutex_unlock(&fl.lock);
}

static unsigned count(enum req_kind k, unsigned flags_mask)
{
    unsigned c = 0;
    for (unsigned i = 0; i < fl.n; i++)
        if (fl.r[i].kind == k && (!flags_mask || (fl.r[i].flags & flags_mask)))
            c++;
    return c;
}

static int fake_probe(const struct blk_probe *p)
{
    return p->head_len >= 6 && memcmp(p->head, "FAKE4K", 6) == 0 ? 100 : 0;
}

static int fake_open(struct blk_node *bs, struct scuse_err *err)
{
    off_t end = lseek(bs->fd, 0, SEEK_END);
    if (end < (off_t)HDR)
        return err_set(err, -EINVAL, "'%s': shorter than the fake header", bs->path);
    bs->size = (uint64_t)end - HDR;
    bs->align = ALIGN;
    return 0;
}

static void fake_close(struct blk_node *bs) { (void)bs; }

static int fake_preadv(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                       struct scuse_err *err)
{
    log_req(bs, R_READ, off, v->len, 0);
    pthread_mutex_lock(&fl.lock);
    bool fail = fl.fail_reads > 0;
    if (fail) {
        fl.fail_reads--;
        fl.failed++;
    }
    pthread_mutex_unlock(&fl.lock);
    if (fail)
        return err_set(err, -EIO, "'%s': fake read failure at %llu", bs->path,
                       (unsigned long long)off);
    struct iovec iov[64];
    size_t bytes;
    int n = iov_view_to_iovec(v, iov, 64, &bytes);
    ssize_t r = preadv(bs->fd, iov, n, (off_t)(off + HDR));
    return r == (ssize_t)v->len ? 0 : err_set(err, -EIO, "'%s': short read", bs->path);
}

static int fake_pwritev(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                        unsigned flags, struct scuse_err *err)
{
    log_req(bs, R_WRITE, off, v->len, flags);
    struct iovec iov[64];
    size_t bytes;
    int n = iov_view_to_iovec(v, iov, 64, &bytes);
    ssize_t r = pwritev(bs->fd, iov, n, (off_t)(off + HDR));
    return r == (ssize_t)v->len ? 0 : err_set(err, -EIO, "'%s': short write", bs->path);
}

static int fake_block_status(struct blk_node *bs, uint64_t off, uint64_t len, uint64_t *pnum,
                             struct blk_status *st, struct scuse_err *err)
{
    (void)err;
    log_req(bs, R_STATUS, off, len, 0);
    /* Answers in whole blocks: block 5 alone is "zero", the rest data. */
    uint64_t b = off / ALIGN;
    uint64_t end = b == 5 ? 6 * ALIGN : b < 5 ? 5 * ALIGN : bs->size;
    if (end > off + len)
        end = off + len;
    *pnum = end - off;
    st->flags = BLK_STATUS_ALLOCATED | (b == 5 ? BLK_STATUS_ZERO : BLK_STATUS_DATA) |
                BLK_STATUS_OFFSET;
    st->offset = off + HDR;
    return 0;
}

static int fake_write_zeroes(struct blk_node *bs, uint64_t off, uint64_t len, unsigned flags,
                             struct scuse_err *err)
{
    log_req(bs, R_ZERO, off, len, flags);
    static const uint8_t zeros[ALIGN];
    for (uint64_t done = 0; done < len;) {
        size_t n = len - done < ALIGN ? (size_t)(len - done) : ALIGN;
        if (pwrite(bs->fd, zeros, n, (off_t)(off + done + HDR)) != (ssize_t)n)
            return err_set(err, -EIO, "'%s': short zero write", bs->path);
        done += n;
    }
    return 0;
}

static int fake_discard(struct blk_node *bs, uint64_t off, uint64_t len, struct scuse_err *err)
{
    (void)err;
    log_req(bs, R_DISCARD, off, len, 0);
    return 0;
}

static int fake_flush(struct blk_node *bs, struct scuse_err *err)
{
    (void)err;
    log_req(bs, R_FLUSH, 0, 0, 0);
    return 0;
}

static const char *const fake_aliases[] = { "f4k", NULL };
static const struct blk_opt_desc fake_open_opts[] = {
    { "answer", BLK_OPT_NUM, "Accepted and ignored" },
    { NULL, 0, NULL },
};

#define FAKE_DRIVER(caps_)                                                                       \
    { .name = "fake4k", .aliases = fake_aliases, .description = "a test format", .caps = caps_,  \
      .probe = fake_probe, .open = fake_open, .close = fake_close, .preadv = fake_preadv,        \
      .block_status = fake_block_status, .pwritev = fake_pwritev,                                \
      .write_zeroes = fake_write_zeroes, .discard = fake_discard, .flush = fake_flush,           \
      .open_opts = fake_open_opts }

static const struct blk_driver fake_plain = FAKE_DRIVER(0);
static const struct blk_driver fake_fua = FAKE_DRIVER(BLK_DRV_FUA);
static const struct blk_driver *const with_plain[] = { &fake_plain, NULL };
static const struct blk_driver *const with_fua[] = { &fake_fua, NULL };

/* ------------------------------------------------------------ the image */

static uint8_t model[DISK_SIZE];

static unsigned char pat(uint64_t off)
{
    uint64_t x = off * 0x9E3779B97F4A7C15ULL;
    return (unsigned char)(x >> 56) | 1;
}

/* A fresh fake image: header, then the disk filled with pat(). */
static void make_image(void)
{
    uint8_t *f = calloc(1, HDR + DISK_SIZE);
    assert_non_null(f);
    memcpy(f, "FAKE4K", 6);
    for (uint64_t i = 0; i < DISK_SIZE; i++)
        model[i] = f[HDR + i] = pat(i);
    tu_store("fake.img", f, HDR + DISK_SIZE);
    free(f);
}

static struct blk_node *open_fake(const struct blk_driver *const *drivers, const char *fmt)
{
    struct blk_opts o = { .drivers = drivers };
    struct blk_node *bs = NULL;
    struct scuse_err err = { 0 };
    if (blk_open(tu_path("fake.img"), fmt, BLK_OPEN_RW, &o, &bs, &err) < 0)
        fail_msg("open: %s", err.msg);
    log_reset();
    return bs;
}

static void check_disk(struct blk_node *bs)
{
    static uint8_t got[DISK_SIZE];
    assert_int_equal(blk_pread(bs, 0, got, DISK_SIZE, NULL), 0);
    for (uint64_t i = 0; i < DISK_SIZE; i++)
        if (got[i] != model[i])
            fail_msg("byte %llu: 0x%02x, expected 0x%02x", (unsigned long long)i, got[i],
                     model[i]);
}

static int setup(void **state)
{
    (void)state;
    return tu_dir_make("blk-contract");
}

static int per_test(void **state)
{
    (void)state;
    make_image();
    return 0;
}

/* -------------------------------------------------------------- the tests */

static void test_names_and_probe(void **state)
{
    (void)state;
    struct blk_node *bs = open_fake(with_plain, NULL);
    assert_string_equal(blk_format_name(bs), "fake4k");
    assert_true(bs->probed);
    assert_int_equal(bs->size, DISK_SIZE);
    blk_close(bs);
    bs = open_fake(with_plain, "f4k"); /* the alias is the same format */
    assert_string_equal(blk_format_name(bs), "fake4k");
    assert_false(bs->probed);
    blk_close(bs);
    /* Without the caller's table the bytes mean nothing: raw. */
    struct blk_node *raw = NULL;
    struct scuse_err err = { 0 };
    assert_int_equal(blk_open(tu_path("fake.img"), NULL, 0, NULL, &raw, &err), 0);
    assert_string_equal(blk_format_name(raw), "raw");
    blk_close(raw);
}

static void test_unaligned_reads(void **state)
{
    (void)state;
    struct blk_node *bs = open_fake(with_plain, "fake4k");
    static const struct { uint64_t off, len; } cases[] = {
        { 1, 1 }, { 512, 512 }, { 4095, 2 }, { 4096 - 512, 4096 + 1024 }, { 3, 64u * 4096u },
        { DISK_SIZE - 700, 700 }, { DISK_SIZE - 512, 512 }, { 0, DISK_SIZE },
    };
    uint8_t *buf = malloc(DISK_SIZE);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(buf, 0, cases[i].len);
        assert_int_equal(blk_pread(bs, cases[i].off, buf, cases[i].len, NULL), 0);
        assert_memory_equal(buf, model + cases[i].off, cases[i].len);
    }
    free(buf);
    assert_int_equal(fl.misaligned, 0);
    assert_true(count(R_READ, 0) >= 8);
    blk_close(bs);
}

static void write_model(struct blk_node *bs, uint64_t off, uint64_t len, uint8_t byte)
{
    uint8_t *buf = malloc(len);
    memset(buf, byte, len);
    assert_int_equal(blk_pwrite(bs, off, buf, len, 0, NULL), 0);
    memset(model + off, byte, len);
    free(buf);
}

static void test_unaligned_writes(void **state)
{
    (void)state;
    struct blk_node *bs = open_fake(with_plain, "fake4k");
    write_model(bs, 1024, 512, 0xa1);                   /* inside one block */
    write_model(bs, 4096 - 512, 4096 + 1024, 0xa2);     /* head, whole, tail */
    write_model(bs, 3 * 4096 + 7, 3 * 4096, 0xa3);      /* odd bytes */
    write_model(bs, 8 * 4096, 2 * 4096, 0xa4);          /* aligned: no read */
    write_model(bs, DISK_SIZE - 512, 512, 0xa5);        /* the short last block */
    write_model(bs, DISK_SIZE - 4096 - 100, 4096 + 100, 0xa6);
    assert_int_equal(fl.misaligned, 0);
    /* The aligned write cost one driver write and no read. */
    bool found = false;
    for (unsigned i = 0; i < fl.n; i++)
        if (fl.r[i].kind == R_WRITE && fl.r[i].off == 8 * 4096 && fl.r[i].len == 2 * 4096)
            found = true;
    assert_true(found);
    check_disk(bs);
    blk_close(bs);
}

static void test_zero_writes_and_discards(void **state)
{
    (void)state;
    struct blk_node *bs = open_fake(with_plain, "fake4k");
    assert_int_equal(blk_write_zeroes(bs, 100, 3 * 4096, 0, NULL), 0);
    memset(model + 100, 0, 3 * 4096);
    assert_int_equal(blk_write_zeroes(bs, 10 * 4096, 4096, BLK_ZERO_MAY_UNMAP, NULL), 0);
    memset(model + 10 * 4096, 0, 4096);
    assert_int_equal(blk_write_zeroes(bs, DISK_SIZE - 300, 300, 0, NULL), 0);
    memset(model + DISK_SIZE - 300, 0, 300);
    assert_int_equal(fl.misaligned, 0);
    /* The middle of the first went to write_zeroes as two whole blocks. */
    bool mid = false, unmap = false;
    for (unsigned i = 0; i < fl.n; i++) {
        if (fl.r[i].kind == R_ZERO && fl.r[i].off == 4096 && fl.r[i].len == 2 * 4096)
            mid = true;
        if (fl.r[i].kind == R_ZERO && (fl.r[i].flags & BLK_ZERO_MAY_UNMAP))
            unmap = true;
    }
    assert_true(mid);
    assert_true(unmap);
    check_disk(bs);

    /* Discards are advisory: only the whole blocks inside reach the driver. */
    log_reset();
    assert_int_equal(blk_discard(bs, 100, 4000, NULL), 0);        /* no whole block */
    assert_int_equal(count(R_DISCARD, 0), 0);
    assert_int_equal(blk_discard(bs, 100, 3 * 4096, NULL), 0);    /* blocks 1 and 2 */
    assert_int_equal(count(R_DISCARD, 0), 1);
    assert_int_equal(fl.r[fl.n - 1].off, 4096);
    assert_int_equal(fl.r[fl.n - 1].len, 2 * 4096);
    assert_int_equal(blk_discard(bs, 60 * 4096 + 1, DISK_SIZE - 60 * 4096 - 1, NULL), 0);
    assert_int_equal(fl.r[fl.n - 1].off, 61 * 4096);
    assert_int_equal(fl.r[fl.n - 1].len, DISK_SIZE - 61 * 4096); /* to the ragged end */
    assert_int_equal(fl.misaligned, 0);
    blk_close(bs);
}

static void test_block_status(void **state)
{
    (void)state;
    struct blk_node *bs = open_fake(with_plain, "fake4k");
    uint64_t pnum;
    struct blk_status st;
    /* 5 * 4096 + 100 lies in the zero block: answered from there, trimmed. */
    assert_int_equal(blk_block_status(bs, 5 * 4096 + 100, 10000, &pnum, &st, NULL), 0);
    assert_true(st.flags & BLK_STATUS_ZERO);
    assert_int_equal(pnum, 4096 - 100);
    assert_int_equal(st.offset, HDR + 5 * 4096 + 100);
    assert_int_equal(blk_block_status(bs, 7, 100, &pnum, &st, NULL), 0);
    assert_true(st.flags & BLK_STATUS_DATA);
    assert_int_equal(pnum, 100);
    assert_int_equal(blk_block_status(bs, DISK_SIZE - 10, 10, &pnum, &st, NULL), 0);
    assert_int_equal(pnum, 10);
    assert_int_equal(fl.misaligned, 0);
    blk_close(bs);
}

static void test_fua(void **state)
{
    (void)state;
    uint8_t buf[4096];
    memset(buf, 0x5a, sizeof(buf));
    /* Without BLK_DRV_FUA: the driver never sees the flag; a flush follows. */
    struct blk_node *bs = open_fake(with_plain, "fake4k");
    assert_int_equal(blk_pwrite(bs, 4096, buf, 4096, BLK_WRITE_FUA, NULL), 0);
    assert_int_equal(count(R_WRITE, BLK_WRITE_FUA), 0);
    assert_int_equal(count(R_FLUSH, 0), 1);
    log_reset();
    assert_int_equal(blk_pwrite(bs, 4096 + 512, buf, 512, BLK_WRITE_FUA, NULL), 0);
    assert_int_equal(count(R_WRITE, BLK_WRITE_FUA), 0);
    assert_int_equal(count(R_FLUSH, 0), 1);
    blk_close(bs);
    /* With it: the flag reaches the driver (edges of a read-modify-write
     * too) and no flush is added. */
    bs = open_fake(with_fua, "fake4k");
    assert_int_equal(blk_pwrite(bs, 4096, buf, 4096, BLK_WRITE_FUA, NULL), 0);
    assert_int_equal(count(R_WRITE, BLK_WRITE_FUA), 1);
    assert_int_equal(count(R_FLUSH, 0), 0);
    log_reset();
    assert_int_equal(blk_pwrite(bs, 4096 + 512, buf, 512, BLK_WRITE_FUA, NULL), 0);
    assert_int_equal(count(R_WRITE, BLK_WRITE_FUA), 1);
    assert_int_equal(count(R_FLUSH, 0), 0);
    /* Plain writes carry no FUA. */
    log_reset();
    assert_int_equal(blk_pwrite(bs, 4096, buf, 4096, 0, NULL), 0);
    assert_int_equal(count(R_WRITE, BLK_WRITE_FUA), 0);
    blk_close(bs);
}

/* Two threads write different 512-byte sectors of the same 4096-byte
 * blocks, unaligned: each needs a read-modify-write of a block the other
 * is changing. The last value each wrote must survive. */
struct racer {
    struct blk_node *bs;
    unsigned sector;           /* within each block */
    unsigned rounds;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    uint8_t buf[512];
    for (unsigned i = 1; i <= r->rounds; i++) {
        memset(buf, (int)(i & 0xff) | 1, sizeof(buf));
        for (unsigned b = 0; b < 4; b++)
            if (blk_pwrite(r->bs, b * 4096 + r->sector * 512, buf, 512, 0, NULL) < 0)
                return (void *)1;
    }
    return NULL;
}

static void test_rmw_race(void **state)
{
    (void)state;
    struct blk_node *bs = open_fake(with_plain, "fake4k");
    struct racer rs[4];
    pthread_t th[4];
    for (unsigned t = 0; t < 4; t++) {
        rs[t] = (struct racer){ bs, t * 2 + 1, 200 + t * 37 };
        assert_int_equal(pthread_create(&th[t], NULL, race, &rs[t]), 0);
    }
    for (unsigned t = 0; t < 4; t++) {
        void *ret;
        pthread_join(th[t], &ret);
        assert_null(ret);
        for (unsigned b = 0; b < 4; b++)
            memset(model + b * 4096 + rs[t].sector * 512, (int)(rs[t].rounds & 0xff) | 1, 512);
    }
    assert_int_equal(fl.misaligned, 0);
    check_disk(bs);
    blk_close(bs);
}

/* Each failure carries its own reason, however many came before (the old
 * logger kept one slot per thread and a format stopped reporting after 20). */
static void test_errors_travel(void **state)
{
    (void)state;
    struct blk_node *bs = open_fake(with_plain, "fake4k");
    uint8_t buf[4096];
    for (unsigned i = 0; i < 30; i++) {
        fl.fail_reads = 1;
        struct scuse_err err = { 0 };
        uint64_t off = (uint64_t)(i % 60) * 4096;
        assert_int_equal(blk_pread(bs, off, buf, 4096, &err), -EIO);
        char want[64];
        snprintf(want, sizeof(want), "fake read failure at %llu", (unsigned long long)off);
        if (!strstr(err.msg, want))
            fail_msg("failure %u: '%s' does not say '%s'", i, err.msg, want);
    }
    /* A call that succeeds leaves the caller's err alone. */
    struct scuse_err err = { 0 };
    assert_int_equal(blk_pread(bs, 0, buf, 4096, &err), 0);
    assert_string_equal(err.msg, "");
    /* And a failure with no err to fill is still a failure. */
    fl.fail_reads = 1;
    assert_int_equal(blk_pread(bs, 0, buf, 4096, NULL), -EIO);
    /* Out of range: the block layer's own reason. */
    assert_int_equal(blk_pread(bs, DISK_SIZE - 1, buf, 2, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "past the end"));
    blk_close(bs);
}

static void test_open_options(void **state)
{
    (void)state;
    struct blk_opts o = { .drivers = with_plain };
    o.fmt.kv[0].key = "answer";
    o.fmt.kv[0].val = "42";
    o.fmt.n = 1;
    struct blk_node *bs = NULL;
    struct scuse_err err = { 0 };
    assert_int_equal(blk_open(tu_path("fake.img"), "fake4k", 0, &o, &bs, &err), 0);
    assert_string_equal(blk_open_opt(bs, "answer"), "42");
    blk_close(bs);
    o.fmt.kv[0].key = "l2-cache-size"; /* qcow2's, not this format's */
    bs = NULL;
    assert_int_equal(blk_open(tu_path("fake.img"), "fake4k", 0, &o, &bs, &err), -EINVAL);
    assert_null(bs);
    assert_non_null(strstr(err.msg, "unknown option 'l2-cache-size'"));
    assert_non_null(strstr(err.msg, "answer"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_names_and_probe, per_test),
        cmocka_unit_test_setup(test_unaligned_reads, per_test),
        cmocka_unit_test_setup(test_unaligned_writes, per_test),
        cmocka_unit_test_setup(test_zero_writes_and_discards, per_test),
        cmocka_unit_test_setup(test_block_status, per_test),
        cmocka_unit_test_setup(test_fua, per_test),
        cmocka_unit_test_setup(test_rmw_race, per_test),
        cmocka_unit_test_setup(test_errors_travel, per_test),
        cmocka_unit_test_setup(test_open_options, per_test),
    };
    return cmocka_run_group_tests(tests, setup, tu_teardown);
}
