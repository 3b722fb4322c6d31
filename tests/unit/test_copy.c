/* blk_copy_to_fd: a sparse raw source (and a qcow2 chain) copied into a
 * memfd must equal the source byte for byte, with 1, 4 and the default
 * number of workers, into a fresh sparse destination and into one full of
 * garbage; the progress callback is serialised, monotonic and ends at the
 * total. The raw reference is the in-memory model the file was written
 * from; the qcow2 reference is `qemu-img convert -O raw`. */
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
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "blk/blk.h"
#include "blk/copy.h"
#include "testutil.h"

static uint64_t rng_state = 0x1234abcd5678ef01ULL; /* fixed: the source is the same every run */
static uint64_t rnd(void) { return tu_rnd(&rng_state); }

/* ---- the raw source: odd size, data islands, holes, written zeros ---- */

#define SRC_SIZE ((13u << 20) + 4097u)   /* not a multiple of any window */
/* The device a raw file presents: whole sectors, zeros past EOF (as QEMU). */
#define DEV_SIZE ((SRC_SIZE + 511u) & ~511u)

static unsigned char *model;

static void put(int fd, uint64_t off, size_t len, int pattern)
{
    assert_true(off + len <= SRC_SIZE);
    for (size_t i = 0; i < len; i++)
        model[off + i] = pattern < 0 ? (unsigned char)rnd() : (unsigned char)pattern;
    assert_int_equal(pwrite(fd, model + off, len, (off_t)off), (ssize_t)len);
}

static int setup_raw(void **state)
{
    (void)state;
    model = calloc(1, DEV_SIZE);
    assert_non_null(model);
    int fd = open(tu_path("src.raw"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, SRC_SIZE), 0);
    put(fd, 0, 1, 0x01);                               /* first byte */
    put(fd, 4096, 8192, -1);                           /* random data */
    put(fd, (2u << 20) - 777, 1554, -1);               /* across the 2 MiB window edge */
    put(fd, (4u << 20), 65536, 0);                     /* allocated, but zeros */
    put(fd, (4u << 20) + 65536, 3, 0xff);              /* tiny tail after it */
    put(fd, (6u << 20) + 1, (3u << 20) + 5, -1);       /* long run over two windows */
    put(fd, (10u << 20) + 4095, 2, 0x80);              /* across a 4 KiB grain */
    for (int i = 0; i < 40; i++) {                     /* scattered islands */
        uint64_t off = rnd() % (SRC_SIZE - 10000);
        put(fd, off, 1 + rnd() % 9000, (i & 1) ? -1 : (int)(rnd() & 0xff));
    }
    put(fd, SRC_SIZE - 5, 5, 0x5a);                    /* last bytes */
    assert_int_equal(close(fd), 0);
    return 0;
}

static int teardown_raw(void **state)
{
    (void)state;
    free(model);
    unlink(tu_path("src.raw"));
    return 0;
}

struct prog {
    uint64_t last, total, calls;
    int inside;
    int bad_total, not_monotonic, overlapped;
};

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    struct prog *p = ctx;
    if (__atomic_add_fetch(&p->inside, 1, __ATOMIC_SEQ_CST) != 1)
        p->overlapped++;
    if (total != p->total)
        p->bad_total++;
    if (done <= p->last || done > total)
        p->not_monotonic++;
    p->last = done;
    p->calls++;
    usleep(50); /* widen the window for overlapping calls */
    __atomic_sub_fetch(&p->inside, 1, __ATOMIC_SEQ_CST);
}

/* Copy bs into a memfd; prefill: -1 = fresh sparse file, else a byte to
 * fill the destination with first (then dst_is_zeroed is false). */
static int copy_to_memfd(struct blk_node *bs, unsigned threads, int prefill, struct prog *pr)
{
    int fd = memfd_create("scuse-copy-dst", MFD_CLOEXEC);
    assert_true(fd >= 0);
    if (prefill >= 0) {
        size_t chunk = 1u << 20;
        unsigned char *junk = malloc(chunk);
        assert_non_null(junk);
        memset(junk, prefill, chunk);
        for (uint64_t off = 0; off < bs->size; off += chunk) {
            size_t n = bs->size - off < chunk ? (size_t)(bs->size - off) : chunk;
            assert_int_equal(pwrite(fd, junk, n, (off_t)off), (ssize_t)n);
        }
        free(junk);
    } else {
        assert_int_equal(ftruncate(fd, (off_t)bs->size), 0);
    }
    struct blk_copy_opts o = {
        .threads = threads,
        .dst_is_zeroed = prefill < 0,
        .progress = pr ? on_progress : NULL,
        .progress_ctx = pr,
    };
    struct blk_copy_failure f = { .off = 12345 };
    int r = blk_copy_to_fd(bs, fd, &o, &f);
    if (r != 0)
        fail_msg("blk_copy_to_fd(threads=%u) = %d (%s) at %llu: %s", threads, r, strerror(-r),
                 (unsigned long long)f.off, f.msg);
    return fd;
}

static void expect_fd_equals(int fd, const unsigned char *want, uint64_t size)
{
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal((uint64_t)st.st_size, size);
    size_t chunk = 1u << 20;
    unsigned char *buf = malloc(chunk);
    assert_non_null(buf);
    for (uint64_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? (size_t)(size - off) : chunk;
        assert_int_equal(pread(fd, buf, n, (off_t)off), (ssize_t)n);
        if (memcmp(buf, want + off, n) != 0) {
            size_t i = 0;
            while (buf[i] == want[off + i])
                i++;
            unsigned got = buf[i];
            free(buf);
            fail_msg("destination differs at byte %llu: 0x%02x, source 0x%02x",
                     (unsigned long long)(off + i), got, want[off + i]);
        }
    }
    free(buf);
}

static struct blk_node *open_or_fail(const char *path, const char *fmt)
{
    struct blk_node *bs = NULL;
    struct scuse_err err = { 0 };
    int r = blk_open(path, fmt, 0, NULL, &bs, &err);
    if (r < 0)
        fail_msg("blk_open(%s, %s) = %d: %s", path, fmt ? fmt : "probe", r, err.msg);
    return bs;
}

static void copy_raw_case(unsigned threads, int prefill)
{
    struct blk_node *bs = open_or_fail(tu_path("src.raw"), "raw");
    assert_int_equal(bs->size, DEV_SIZE);
    struct prog pr = { .total = bs->size };
    int fd = copy_to_memfd(bs, threads, prefill, &pr);
    expect_fd_equals(fd, model, DEV_SIZE);
    close(fd);
    blk_close(bs);
    assert_int_equal(pr.overlapped, 0);
    assert_int_equal(pr.bad_total, 0);
    assert_int_equal(pr.not_monotonic, 0);
    assert_true(pr.calls > 0);
    assert_int_equal(pr.last, DEV_SIZE);
}

static void test_raw_1_thread(void **state) { (void)state; copy_raw_case(1, -1); }
static void test_raw_4_threads(void **state) { (void)state; copy_raw_case(4, -1); }
static void test_raw_default_threads(void **state) { (void)state; copy_raw_case(0, -1); }
/* Destination not zeroed: holes must be written as zeros. */
static void test_raw_dirty_dst_1(void **state) { (void)state; copy_raw_case(1, 0xee); }
static void test_raw_dirty_dst_4(void **state) { (void)state; copy_raw_case(4, 0xee); }

static void test_no_progress_callback(void **state)
{
    (void)state;
    struct blk_node *bs = open_or_fail(tu_path("src.raw"), "raw");
    int fd = copy_to_memfd(bs, 4, -1, NULL);
    expect_fd_equals(fd, model, DEV_SIZE);
    close(fd);
    blk_close(bs);
}

static void test_empty_source(void **state)
{
    (void)state;
    int fd = open(tu_path("empty.raw"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    close(fd);
    struct blk_node *bs = open_or_fail(tu_path("empty.raw"), "raw");
    assert_int_equal(bs->size, 0);
    struct prog pr = { .total = 0 };
    int dst = copy_to_memfd(bs, 4, -1, &pr);
    struct stat st;
    assert_int_equal(fstat(dst, &st), 0);
    assert_int_equal(st.st_size, 0);
    close(dst);
    blk_close(bs);
    unlink(tu_path("empty.raw"));
}

/* A 2-layer qcow2 chain with data, zero clusters, discards and a
 * compressed cluster, against qemu-img convert -O raw. */
static void test_qcow2_chain_vs_qemu_img(void **state)
{
    (void)state;
    tu_run("qemu-img create -q -f qcow2 -o cluster_size=4k base.qcow2 5M");
    tu_run("qemu-io -f qcow2 -c 'write -P 0x11 0 1M' -c 'write -P 0x22 2M 1M' "
           "-c 'write -z 2560k 64k' -c 'write -P 0x33 5116k 4k' base.qcow2");
    tu_run("qemu-img create -q -f qcow2 -o cluster_size=64k -b base.qcow2 -F qcow2 top.qcow2 6M");
    tu_run("qemu-io -f qcow2 -c 'write -P 0x44 512k 4k' -c 'write -z 2M 128k' "
           "-c 'discard 0 64k' -c 'write -P 0x55 5M 100k' -c 'write -c -P 0x66 3M 64k' top.qcow2");
    tu_run("qemu-img convert -f qcow2 -O raw top.qcow2 want.raw");

    int wfd = open(tu_path("want.raw"), O_RDONLY);
    assert_true(wfd >= 0);
    struct stat st;
    assert_int_equal(fstat(wfd, &st), 0);
    assert_int_equal(st.st_size, 6u << 20);
    unsigned char *want = malloc((size_t)st.st_size);
    assert_non_null(want);
    assert_int_equal(pread(wfd, want, (size_t)st.st_size, 0), st.st_size);
    close(wfd);

    struct blk_node *bs = open_or_fail(tu_path("top.qcow2"), NULL);
    assert_int_equal(bs->size, 6u << 20);
    for (unsigned t = 1; t <= 4; t += 3) {
        for (int prefill = -1; prefill <= 0xee; prefill += 0xef) {
            struct prog pr = { .total = bs->size };
            int fd = copy_to_memfd(bs, t, prefill, &pr);
            expect_fd_equals(fd, want, bs->size);
            close(fd);
            assert_int_equal(pr.last, bs->size);
            assert_int_equal(pr.overlapped + pr.not_monotonic + pr.bad_total, 0);
        }
    }
    blk_close(bs);
    free(want);
    tu_run("rm -f base.qcow2 top.qcow2 want.raw");
}

int main(void)
{
    tu_require_qemu(); /* the qcow2 case's reference */
    if (tu_dir_make("copy") < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_1_thread),
        cmocka_unit_test(test_raw_4_threads),
        cmocka_unit_test(test_raw_default_threads),
        cmocka_unit_test(test_raw_dirty_dst_1),
        cmocka_unit_test(test_raw_dirty_dst_4),
        cmocka_unit_test(test_no_progress_callback),
        cmocka_unit_test(test_empty_source),
        cmocka_unit_test(test_qcow2_chain_vs_qemu_img),
    };
    int rc = cmocka_run_group_tests(tests, setup_raw, teardown_raw);
    tu_dir_remove(); /* a failure is reported, not failed */
    return rc;
}
