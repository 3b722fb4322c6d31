/* qcow2 create: header fields and layout for each option, refusals that
 * name the key, and images that open, read as zeros and check clean
 * (scuse's own check; tests/formats compares with qemu-img). Also the
 * compressed writer: clusters written with write_compressed read back,
 * are packed into shared host clusters, and leave the image consistent. */
#define _GNU_SOURCE
#include <errno.h>
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
#include "qcow2/qcow2.h"
#include "testutil.h"


static int setup(void **st)
{
    (void)st;
    return tu_dir_make("qcow2-create");
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static int make(const char *opts, uint64_t size, struct scuse_err *err)
{
    struct blk_create_opts o = { .size = size };
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", opts);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        *eq = '\0';
        o.o.kv[o.o.n].key = t;
        o.o.kv[o.o.n].val = eq + 1;
        o.o.n++;
    }
    memset(err, 0, sizeof(*err));
    return qcow2_create(tu_path("a.qcow2"), &o, err);
}

static void read_head(uint8_t *h, size_t n)
{
    FILE *f = fopen(tu_path("a.qcow2"), "rb");
    assert_non_null(f);
    assert_int_equal(fread(h, 1, n, f), n);
    fclose(f);
}

static void check_clean(void)
{
    struct blk_node *bs;
    struct scuse_err err = { 0 };
    assert_int_equal(blk_open(tu_path("a.qcow2"), "qcow2", 0, NULL, &bs, &err), 0);
    struct blk_check_result res;
    assert_int_equal(qcow2_check(bs, 0, &res, NULL), 0);
    assert_int_equal(res.corruptions, 0);
    assert_int_equal(res.leaks, 0);
    assert_int_equal(res.check_errors, 0);
    blk_close(bs);
}

static void test_defaults(void **st)
{
    (void)st;
    struct scuse_err err;
    assert_int_equal(make("", 1 << 30, &err), 0);
    uint8_t h[520];
    read_head(h, sizeof(h));
    assert_int_equal(be(h, 4), 0x514649fb);
    assert_int_equal(be(h + 4, 4), 3);
    assert_int_equal(be(h + 20, 4), 16);
    assert_int_equal(be(h + 24, 8), 1 << 30);
    assert_int_equal(be(h + 36, 4), 2);          /* l1_size */
    assert_int_equal(be(h + 40, 8), 3 * 65536);  /* L1 after reftable and block */
    assert_int_equal(be(h + 48, 8), 65536);
    assert_int_equal(be(h + 56, 4), 1);
    assert_int_equal(be(h + 96, 4), 4);          /* refcount_order */
    assert_int_equal(be(h + 100, 4), 112);       /* header_length */
    assert_int_equal(be(h + 112, 4), QCOW2_EXT_FEATURE_TABLE);
    assert_int_equal(be(h + 116, 4), 8 * 48);
    assert_memory_equal(h + 114 + 8, "dirty bit", 9);
    check_clean();
}

static void test_options(void **st)
{
    (void)st;
    struct scuse_err err;
    uint8_t h[112];
    assert_int_equal(make("compat=0.10", 1 << 20, &err), 0);
    read_head(h, sizeof(h));
    assert_int_equal(be(h + 4, 4), 2);
    check_clean();
    assert_int_equal(make("compression_type=zstd,extended_l2=on,lazy_refcounts=on,refcount_bits=1",
                          1 << 20, &err), 0);
    read_head(h, sizeof(h));
    assert_int_equal(be(h + 72, 8), QCOW2_INCOMPAT_COMPRESSION | QCOW2_INCOMPAT_EXTL2);
    assert_int_equal(be(h + 80, 8), QCOW2_COMPAT_LAZY_REFCOUNTS);
    assert_int_equal(be(h + 96, 4), 0);
    assert_int_equal(h[104], QCOW2_COMPRESSION_ZSTD);
    check_clean();
    /* Many refcount blocks and a multi-cluster table: 512-byte clusters,
     * 64-bit refcounts, a big L1. */
    assert_int_equal(make("cluster_size=512,refcount_bits=64", 4ull << 30, &err), 0);
    check_clean();
    assert_int_equal(make("preallocation=metadata,cluster_size=4k", 9 << 20, &err), 0);
    check_clean();
    assert_int_equal(make("", 1000, &err), 0); /* rounded up to a sector */
    read_head(h, sizeof(h));
    assert_int_equal(be(h + 24, 8), 1024);
}

static void test_refusals(void **st)
{
    (void)st;
    static const char *const bad[][2] = {
        { "foo=bar", "foo" }, { "cluster_size=1000", "cluster_size" },
        { "cluster_size=4M", "cluster_size" }, { "refcount_bits=3", "refcount_bits" },
        { "compat=0.10,refcount_bits=8", "refcount_bits" }, { "compat=2", "compat" },
        { "extended_l2=on,cluster_size=8k", "extended_l2" }, { "lazy_refcounts=maybe", "lazy_refcounts" },
        { "compression_type=lz4", "compression_type" }, { "preallocation=some", "preallocation" },
        { "data_file=x", "data_file" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct scuse_err err;
        assert_int_equal(make(bad[i][0], 1 << 20, &err), -EINVAL);
        assert_non_null(strstr(err.msg, bad[i][1]));
    }
}

static void test_backing(void **st)
{
    (void)st;
    struct blk_create_opts o = { .size = 1 << 20, .backing_file = "base.raw", .backing_fmt = "raw" };
    struct scuse_err err = { 0 };
    assert_int_equal(qcow2_create(tu_path("a.qcow2"), &o, &err), 0);
    uint8_t h[600];
    read_head(h, sizeof(h));
    assert_int_equal(be(h + 8, 8), 528); /* after fmt ext, feature table, end */
    assert_int_equal(be(h + 16, 4), 8);
    assert_memory_equal(h + 528, "base.raw", 8);
    assert_int_equal(be(h + 112, 4), QCOW2_EXT_BACKING_FMT);
    assert_memory_equal(h + 120, "raw", 3);
    o.backing_file = NULL;
    o.o.n = 1;
    o.o.kv[0].key = "cluster_size";
    o.o.kv[0].val = "512";
    char name[1100];
    memset(name, 'n', 1023);
    name[1023] = '\0';
    o.backing_file = name;
    assert_int_equal(qcow2_create(tu_path("a.qcow2"), &o, &err), -EINVAL); /* does not fit in 512 bytes */
}

static void test_compressed(void **st)
{
    (void)st;
    struct scuse_err err;
    assert_int_equal(make("cluster_size=4k", 1 << 20, &err), 0);
    struct blk_node *bs;
    assert_int_equal(blk_open(tu_path("a.qcow2"), "qcow2", BLK_OPEN_RW, NULL, &bs, &err), 0);
    static uint8_t buf[64][4096], back[4096];
    for (int c = 0; c < 64; c++) {
        for (int i = 0; i < 4096; i++)
            buf[c][i] = (uint8_t)(c % 7 == 0 ? rand() : (i / 100 + c));
        struct iovec one;
        struct iov_view v = iov_view_of_buf(&one, buf[c], sizeof(buf[c]));
        assert_int_equal(blk_write_compressed(bs, (uint64_t)c * 4096, &v, NULL), 0);
    }
    /* Read back through the same open (the writer's own view), then
     * mix a normal write in, then through a fresh open. */
    for (int c = 0; c < 64; c++) {
        assert_int_equal(blk_pread(bs, (uint64_t)c * 4096, back, sizeof(back), NULL), 0);
        assert_memory_equal(buf[c], back, sizeof(back));
    }
    memset(buf[1] + 1000, 0x5a, 2000);
    assert_int_equal(blk_pwrite(bs, 4096 + 1000, buf[1] + 1000, 2000, 0, NULL), 0);
    blk_close(bs);
    assert_int_equal(blk_open(tu_path("a.qcow2"), "qcow2", BLK_OPEN_RW, NULL, &bs, &err), 0);
    for (int c = 0; c < 64; c++) {
        assert_int_equal(blk_pread(bs, (uint64_t)c * 4096, back, sizeof(back), NULL), 0);
        assert_memory_equal(buf[c], back, sizeof(back));
    }
    struct iovec one;
    struct iov_view v = iov_view_of_buf(&one, buf[0], sizeof(buf[0]));
    assert_int_equal(blk_write_compressed(bs, 0, &v, NULL), -ENOTSUP); /* allocated */
    assert_int_equal(blk_write_compressed(bs, 100, &v, NULL), -EINVAL);  /* unaligned */
    struct blk_check_result res;
    assert_int_equal(qcow2_check(bs, 0, &res, NULL), 0);
    assert_int_equal(res.corruptions + res.leaks + res.check_errors, 0);
    assert_true(res.compressed_clusters > 40);
    /* Packed: far fewer host clusters than guest clusters. */
    assert_true(res.image_end_offset < 40 * 4096);
    blk_close(bs);
}

/* The decompressed-cluster cache must not serve a cluster whose host bytes
 * were freed and reused for other compressed data at the same offset. */
static void test_dcache_reuse(void **st)
{
    (void)st;
    struct scuse_err err;
    assert_int_equal(make("cluster_size=4k", 1 << 20, &err), 0);
    struct blk_node *bs;
    assert_int_equal(blk_open(tu_path("a.qcow2"), "qcow2", BLK_OPEN_RW, NULL, &bs, &err), 0);
    struct qcow2_state *s = bs->state;
    static uint8_t a[4096], b[4096], back[512];
    for (int i = 0; i < 4096; i++) {
        a[i] = (uint8_t)('a' + i / 512);
        b[i] = (uint8_t)('A' + i / 512); /* same shape: same compressed length */
    }
    struct iovec one;
    struct iov_view v = iov_view_of_buf(&one, a, sizeof(a));
    assert_int_equal(blk_write_compressed(bs, 0, &v, NULL), 0);
    assert_int_equal(blk_pread(bs, 1024, back, sizeof(back), NULL), 0); /* cached now */
    assert_memory_equal(back, a + 1024, sizeof(back));
    struct qcow2_run r0, r1;
    assert_int_equal(qcow2_map(s, 0, 4096, false, &r0, NULL), 0);
    assert_int_equal(r0.kind, QCOW2_COMPRESSED);

    assert_int_equal(blk_discard(bs, 0, 4096, NULL), 0);
    assert_int_equal(blk_flush(bs, NULL), 0); /* the host cluster is free again */
    v = iov_view_of_buf(&one, b, sizeof(b));
    assert_int_equal(blk_write_compressed(bs, 8192, &v, NULL), 0);
    assert_int_equal(qcow2_map(s, 8192, 4096, false, &r1, NULL), 0);
    assert_int_equal(r1.kind, QCOW2_COMPRESSED);
    /* The test means something only if the new data took the old place. */
    assert_int_equal(r1.l2e & ~(QCOW2_OFLAG_COPIED | QCOW2_OFLAG_COMPRESSED),
                     r0.l2e & ~(QCOW2_OFLAG_COPIED | QCOW2_OFLAG_COMPRESSED));
    assert_int_equal(blk_pread(bs, 8192 + 1024, back, sizeof(back), NULL), 0);
    assert_memory_equal(back, b + 1024, sizeof(back));
    assert_int_equal(blk_pread(bs, 0, back, sizeof(back), NULL), 0);
    for (size_t i = 0; i < sizeof(back); i++)
        assert_int_equal(back[i], 0);
    assert_true(s->dcache.hits + s->dcache.misses > 0);
    blk_close(bs);
    check_clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_backing),
        cmocka_unit_test(test_compressed),
        cmocka_unit_test(test_dcache_reuse),
    };
    return cmocka_run_group_tests(tests, setup, tu_teardown);
}
