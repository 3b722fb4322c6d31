/* The libyal readers (formats/yal) through the block layer, judged by
 * qemu-img's raw exports:
 *   - a legacy AES-encrypted qcow (v1) made by qemu-img, read with the
 *     password open option; refused without it, refused with a bad one;
 *   - the handle pool under concurrent readers: 4 threads of random reads
 *     (4 KiB to 192 KiB) of a VHDX, every byte checked, with handles=1 (a
 *     lock around one handle) and handles=4 (one handle per reader); both
 *     timings printed, which is the measurement behind the default.
 * Labelled concurrency: ./build.sh tsan runs it. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "blk/blk.h"
#include "testutil.h"

#define SIZE (48u << 20)
#define THREADS 4
#define READS 600

static uint64_t seed;

static int group_setup(void **state)
{
    (void)state;
    if (tu_qemu_setup("yal", &seed, 7) < 0)
        return -1;
    if (!tu_have_qemu())
        return 0;
    tu_run("qemu-img create -q -f vhdx -o block_size=1M d.vhdx %u", SIZE);
    tu_run("qemu-io -f vhdx -c 'write -P 0x11 0 5M' -c 'write -P 0x22 9M 7M' "
           "-c 'write -P 0x33 30M 100k' -c 'write -P 0x44 47M 1M' d.vhdx >/dev/null");
    /* random bytes too, so that a read from the wrong place shows */
    tu_run("dd if=/dev/urandom of=r.raw bs=1M count=4 status=none && "
           "qemu-img dd -f raw -O vhdx if=r.raw of=d.vhdx bs=1M seek=24 count=4 conv=notrunc "
           "2>/dev/null || qemu-io -f vhdx -c 'write -P 0x55 24M 4M' d.vhdx >/dev/null");
    tu_run("qemu-img convert -f vhdx -O raw d.vhdx d.raw");
    tu_run("qemu-img create -q -f qcow --object secret,id=s0,data=sesame "
           "-o encrypt.format=aes,encrypt.key-secret=s0 e.qcow 4M");
    tu_run("qemu-io --object secret,id=s0,data=sesame --image-opts "
           "driver=qcow,file.filename=e.qcow,encrypt.key-secret=s0 "
           "-c 'write -P 0x5a 4096 70000' -c 'write -P 0x5b 3M 512' >/dev/null");
    tu_run("qemu-img convert --object secret,id=s0,data=sesame --image-opts "
           "driver=qcow,file.filename=e.qcow,encrypt.key-secret=s0 -O raw e.raw");
    return 0;
}

static void open_with(const char *name, const char *fmt, const char *key, const char *val,
                      struct blk_node **bs, int *r, struct scuse_err *err)
{
    struct blk_opts o = { 0 };
    if (key) {
        o.fmt.n = 1;
        o.fmt.kv[0].key = key;
        o.fmt.kv[0].val = val;
    }
    err_clear(err);
    *r = blk_open(tu_path(name), fmt, 0, &o, bs, err);
}

static void test_qcow_aes(void **state)
{
    (void)state;
    struct blk_node *bs = NULL;
    struct scuse_err err;
    int r;
    open_with("e.qcow", NULL, NULL, NULL, &bs, &r, &err);
    assert_true(r < 0);
    assert_non_null(strstr(err.msg, "encrypted (legacy AES)"));
    open_with("e.qcow", "qcow", "password", "sesame", &bs, &r, &err);
    if (r < 0)
        fail_msg("open with the password: %s", err.msg);
    assert_string_equal(blk_format_name(bs), "qcow");
    uint8_t *want = tu_load("e.raw", 4u << 20);
    uint8_t *got = malloc(4u << 20);
    assert_non_null(got);
    assert_int_equal(blk_pread(bs, 0, got, 4u << 20, &err), 0);
    assert_memory_equal(want, got, 4u << 20);
    blk_close(bs);
    /* a wrong password decrypts to something else, never the data */
    open_with("e.qcow", "qcow", "password", "wrong", &bs, &r, &err);
    if (r == 0) {
        assert_int_equal(blk_pread(bs, 4096, got, 70000, &err), 0);
        assert_memory_not_equal(want + 4096, got, 70000);
        blk_close(bs);
    }
    free(want);
    free(got);
}

struct reader {
    struct blk_node *bs;
    const uint8_t *want;
    uint64_t rnd;
    int bad;
};

static void *read_loop(void *arg)
{
    struct reader *rd = arg;
    uint8_t *buf = malloc(192u << 10);
    for (int i = 0; buf && i < READS; i++) {
        size_t len = (size_t)(1 + tu_below(&rd->rnd, 48)) * 4096;
        uint64_t off = tu_below(&rd->rnd, (SIZE - len) / 512) * 512;
        struct scuse_err err = { 0 };
        if (blk_pread(rd->bs, off, buf, len, &err) < 0 || memcmp(buf, rd->want + off, len) != 0)
            rd->bad++;
    }
    free(buf);
    return NULL;
}

static double run_readers(const char *handles, const uint8_t *want)
{
    struct blk_node *bs = NULL;
    struct scuse_err err;
    int r;
    open_with("d.vhdx", "vhdx", "handles", handles, &bs, &r, &err);
    if (r < 0)
        fail_msg("open: %s", err.msg);
    struct reader rd[THREADS];
    pthread_t t[THREADS];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < THREADS; i++) {
        rd[i] = (struct reader){ .bs = bs, .want = want, .rnd = seed * 31 + (uint64_t)i + 1 };
        assert_int_equal(pthread_create(&t[i], NULL, read_loop, &rd[i]), 0);
    }
    int bad = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        bad += rd[i].bad;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    blk_close(bs);
    assert_int_equal(bad, 0);
    return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

static void test_vhdx_threads(void **state)
{
    (void)state;
    uint8_t *want = tu_load("d.raw", SIZE);
    double one = run_readers("1", want);
    double four = run_readers("4", want);
    printf("# vhdx, %d threads x %d random reads of 4-192 KiB: handles=1 %.3f s, handles=4 %.3f s "
           "(%.2fx)\n", THREADS, READS, one, four, one / four);
    free(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_qcow_aes, tu_need_qemu),
        cmocka_unit_test_setup(test_vhdx_threads, tu_need_qemu),
    };
    return cmocka_run_group_tests(tests, group_setup, tu_teardown);
}
