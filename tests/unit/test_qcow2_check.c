/* qcow2 check and repair on images damaged byte by byte: a leaked
 * cluster, a refcount lowered to zero (the refcount structure is rebuilt),
 * a flipped COPIED bit, and qcow2_rebuild_refcounts on a dirty image whose
 * refcount block was wiped. After every repair a fresh check is clean and
 * the data reads back unchanged. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "blk/blk.h"
#include "blk/driver.h"
#include "qcow2/check.h"
#include "testutil.h"

#define CS 65536u
static uint8_t data[8][CS];

static int setup(void **st)
{
    (void)st;
    return tu_dir_make("qcow2-check");
}

/* 16 MiB image, 8 clusters of data (incompressible ones stored plainly):
 * 0 header, 1 reftable, 2 refblock, 3 L1, then L2 and data. */
static void make(void)
{
    struct blk_create_opts o = { .size = 16 << 20 };
    struct scuse_err err = { 0 };
    assert_int_equal(qcow2_create(tu_path("a.qcow2"), &o, &err), 0);
    struct blk_node *bs;
    assert_int_equal(blk_open(tu_path("a.qcow2"), "qcow2", BLK_OPEN_RW, NULL, &bs, &err), 0);
    srand(3);
    for (int c = 0; c < 8; c++) {
        for (unsigned i = 0; i < CS; i++)
            data[c][i] = (uint8_t)(c & 1 ? (unsigned)rand() : i / 1000 + (unsigned)c);
        struct iovec one;
        struct iov_view v = iov_view_of_buf(&one, data[c], CS);
        assert_int_equal(blk_write_compressed(bs, (uint64_t)c * CS, &v, NULL), 0);
    }
    blk_close(bs);
}

static void poke(uint64_t off, const void *p, size_t n)
{
    int fd = open(tu_path("a.qcow2"), O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, p, n, (off_t)off), (ssize_t)n);
    close(fd);
}

static void peek(uint64_t off, void *p, size_t n)
{
    int fd = open(tu_path("a.qcow2"), O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, p, n, (off_t)off), (ssize_t)n);
    close(fd);
}

static void set_rc(uint64_t cluster, uint16_t v)
{
    uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
    poke(2 * CS + 2 * cluster, b, 2);
}

static struct blk_check_result check_rc(unsigned fix, int want)
{
    struct blk_node *bs;
    struct scuse_err err = { 0 };
    assert_int_equal(blk_open(tu_path("a.qcow2"), "qcow2", fix ? BLK_OPEN_RW : 0, NULL, &bs, &err), 0);
    struct blk_check_result res;
    int r = qcow2_check(bs, fix, &res, NULL);
    blk_close(bs);
    assert_int_equal(r, want);
    return res;
}

static struct blk_check_result check(unsigned fix)
{
    return check_rc(fix, 0);
}

static void assert_clean_and_intact(void)
{
    struct blk_check_result r = check(0);
    assert_int_equal(r.corruptions + r.leaks + r.check_errors, 0);
    struct blk_node *bs;
    struct scuse_err err = { 0 };
    assert_int_equal(blk_open(tu_path("a.qcow2"), "qcow2", 0, NULL, &bs, &err), 0);
    static uint8_t back[CS];
    for (int c = 0; c < 8; c++) {
        assert_int_equal(blk_pread(bs, (uint64_t)c * CS, back, CS, NULL), 0);
        assert_memory_equal(back, data[c], CS);
    }
    blk_close(bs);
}

static void test_leak(void **st)
{
    (void)st;
    make();
    set_rc(1, 3); /* the refcount table cluster */
    struct blk_check_result r = check(0);
    assert_int_equal(r.leaks, 1);
    assert_int_equal(r.corruptions, 0);
    r = check(BLK_CHECK_FIX_LEAKS);
    assert_int_equal(r.leaks_fixed, 1);
    assert_clean_and_intact();
}

static void test_zeroed_refcount(void **st)
{
    (void)st;
    make();
    uint8_t l1[8];
    peek(3 * CS, l1, 8);
    uint64_t l2 = 0;
    for (int i = 0; i < 8; i++)
        l2 = l2 << 8 | l1[i];
    l2 &= QCOW2_L1E_OFFSET_MASK;
    set_rc(l2 / CS, 0); /* the L2 table: refcount 0 means a rebuild */
    struct blk_check_result r = check(0);
    assert_true(r.corruptions >= 1);
    r = check_rc(BLK_CHECK_FIX_LEAKS, -EIO); /* cannot: needs a rebuild, as qemu-img */
    assert_int_equal(r.check_errors, 1);
    r = check(BLK_CHECK_FIX_LEAKS | BLK_CHECK_FIX_ERRORS);
    assert_true(r.corruptions_fixed >= 1);
    assert_int_equal(r.corruptions, 0);
    assert_clean_and_intact();
}

static void test_copied(void **st)
{
    (void)st;
    make();
    uint8_t l1[8];
    peek(3 * CS, l1, 8);
    l1[0] ^= 0x80;
    poke(3 * CS, l1, 8);
    struct blk_check_result r = check(0);
    assert_int_equal(r.corruptions, 1);
    r = check(BLK_CHECK_FIX_LEAKS | BLK_CHECK_FIX_ERRORS);
    assert_int_equal(r.corruptions_fixed, 1);
    assert_clean_and_intact();
}

static void test_rebuild_dirty(void **st)
{
    (void)st;
    make();
    static uint8_t zero[CS];
    poke(2 * CS, zero, CS); /* every refcount lost, as after a crash with lazy refcounts */
    uint8_t h[8] = { 0, 0, 0, 0, 0, 0, 0, 1 };
    poke(72, h, 8); /* dirty bit */
    struct blk_node *bs;
    struct scuse_err err = { 0 };
    assert_int_equal(blk_open(tu_path("a.qcow2"), "qcow2", 0, NULL, &bs, &err), 0);
    assert_true(bs->dirty);
    /* The repair itself works on the file; reopen its descriptor writable. */
    int fd = open(tu_path("a.qcow2"), O_RDWR);
    assert_true(fd >= 0);
    assert_true(dup2(fd, bs->fd) >= 0);
    close(fd);
    bs->read_only = false;
    assert_int_equal(qcow2_rebuild_refcounts(bs, bs->state), 0);
    blk_close(bs);
    h[7] = 0;
    poke(72, h, 8);
    assert_clean_and_intact();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leak),
        cmocka_unit_test(test_zeroed_refcount),
        cmocka_unit_test(test_copied),
        cmocka_unit_test(test_rebuild_dirty),
    };
    return cmocka_run_group_tests(tests, setup, tu_teardown);
}
