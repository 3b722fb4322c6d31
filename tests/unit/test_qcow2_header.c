/* qcow2 open-time validation, feature bits, extensions, external data
 * files, snapshots and `info`, on images written byte by byte: a valid
 * minimal image is built, one field is broken, and the open must fail with
 * the right errno and a message naming the file and the field. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "blk/blk.h"
#include "blk/driver.h"
#include "testutil.h"

#define CB 12
#define CS (1u << CB)
#define NCL 6 /* header, L1, refcount table, L2, two data clusters */

struct img {
    uint8_t f[NCL * CS + 4096];
    size_t len;
    size_t ext;  /* where the next header extension goes */
};

static void put32(struct img *m, size_t off, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        m->f[off + i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put64(struct img *m, size_t off, uint64_t v)
{
    put32(m, off, (uint32_t)(v >> 32));
    put32(m, off + 4, (uint32_t)v);
}

/* 1 MiB image: guest cluster 0 -> host cluster 4 (0x11 bytes), cluster 1
 * -> host cluster 5 (0x22 bytes), the rest unallocated. */
static void base(struct img *m, int version)
{
    memset(m, 0, sizeof(*m));
    m->len = NCL * CS;
    put32(m, 0, 0x514649fb);
    put32(m, 4, (uint32_t)version);
    put32(m, 20, CB);
    put64(m, 24, 1 << 20);
    put32(m, 36, 1);
    put64(m, 40, 1 * CS);
    put64(m, 48, 2 * CS);
    put32(m, 56, 1);
    m->ext = 72;
    if (version >= 3) {
        put32(m, 96, 4);
        put32(m, 100, 104);
        m->ext = 104;
    }
    put64(m, 1 * CS, (1ull << 63) | 3 * CS);
    put64(m, 3 * CS, (1ull << 63) | 4 * CS);
    put64(m, 3 * CS + 8, (1ull << 63) | 5 * CS);
    memset(m->f + 4 * CS, 0x11, CS);
    memset(m->f + 5 * CS, 0x22, CS);
}

static void add_ext(struct img *m, uint32_t type, const void *data, uint32_t len)
{
    put32(m, m->ext, type);
    put32(m, m->ext + 4, len);
    memcpy(m->f + m->ext + 8, data, len);
    m->ext += 8 + ((len + 7) & ~7u);
    put64(m, m->ext, 0); /* end marker */
}

static int open_img(const struct img *m, unsigned flags, struct blk_node **bs, struct scuse_err *err)
{
    tu_store("t.qcow2", m->f, m->len);
    memset(err, 0, sizeof(*err));
    *bs = NULL;
    return blk_open(tu_path("t.qcow2"), "qcow2", flags | BLK_OPEN_SHARE | BLK_OPEN_NO_BACKING,
                    NULL, bs, err);
}

/* Open must fail with errno e and a message containing each of the
 * given substrings (and the file name). */
static void expect_fail(const struct img *m, unsigned flags, int e, const char *s1, const char *s2)
{
    struct blk_node *bs;
    struct scuse_err err;
    int r = open_img(m, flags, &bs, &err);
    if (r >= 0) {
        blk_close(bs);
        fail_msg("open succeeded, expected '%s'", s1);
    }
    if (r != e || !strstr(err.msg, "t.qcow2") || !strstr(err.msg, s1) || (s2 && !strstr(err.msg, s2)))
        fail_msg("got %d '%s', expected %d '%s' '%s'", r, err.msg, e, s1, s2 ? s2 : "");
}

static struct blk_node *expect_ok(const struct img *m, unsigned flags)
{
    struct blk_node *bs;
    struct scuse_err err;
    if (open_img(m, flags, &bs, &err) < 0)
        fail_msg("open failed: %s", err.msg);
    return bs;
}

static void test_probe(void **state)
{
    (void)state;
    const uint8_t good[] = { 'Q', 'F', 'I', 0xfb, 0, 0, 0, 3 };
    const struct blk_driver *q = blk_driver_find("qcow2");
    struct blk_probe p = { .head = good, .head_len = sizeof(good) };
    assert_int_equal(q->probe(&p), 100);
    p.head_len = 3;
    assert_int_equal(q->probe(&p), 0);
    p.head_len = 4; /* the magic alone: claimed, so the header error names it */
    assert_int_equal(q->probe(&p), 100);
    /* version 1 is another format (qcow) */
    const uint8_t v1[] = { 'Q', 'F', 'I', 0xfb, 0, 0, 0, 1 };
    p = (struct blk_probe){ .head = v1, .head_len = sizeof(v1) };
    assert_int_equal(q->probe(&p), 0);
    assert_string_equal(blk_driver_probe(&p)->name, "qcow");
    const uint8_t bad[] = { 'Q', 'F', 'I', 0xfa, 0, 0, 0, 3 };
    p = (struct blk_probe){ .head = bad, .head_len = sizeof(bad) };
    assert_int_equal(q->probe(&p), 0);
}

static void test_valid(void **state)
{
    (void)state;
    for (int v = 2; v <= 3; v++) {
        struct img m;
        base(&m, v);
        struct blk_node *bs = expect_ok(&m, 0);
        assert_int_equal(bs->size, 1 << 20);
        assert_int_equal(bs->cluster_size, CS);
        assert_false(bs->dirty);
        uint8_t b[3 * CS];
        assert_int_equal(blk_pread(bs, 0, b, sizeof(b), NULL), 0);
        assert_int_equal(b[0], 0x11);
        assert_int_equal(b[CS], 0x22);
        assert_int_equal(b[2 * CS], 0);
        blk_close(bs);
    }
}

static void test_bad_fields(void **state)
{
    (void)state;
    struct img m;
    base(&m, 3);
    m.len = 50;
    expect_fail(&m, 0, -EINVAL, "too short", NULL);
    base(&m, 3);
    m.len = 90;
    expect_fail(&m, 0, -EINVAL, "too short", NULL);
    base(&m, 3);
    put32(&m, 4, 4);
    expect_fail(&m, 0, -ENOTSUP, "version 4", NULL);
    base(&m, 3);
    put32(&m, 20, 22);
    expect_fail(&m, 0, -EINVAL, "cluster_bits 22", NULL);
    base(&m, 3);
    put32(&m, 20, 8);
    expect_fail(&m, 0, -EINVAL, "cluster_bits 8", NULL);
    base(&m, 3);
    put32(&m, 32, 2);
    expect_fail(&m, 0, -ENOTSUP, "encrypted images are not supported", NULL);
    base(&m, 3);
    put32(&m, 100, 100);
    expect_fail(&m, 0, -EINVAL, "header_length 100", NULL);
    base(&m, 3);
    put32(&m, 100, 108 + 1);
    expect_fail(&m, 0, -EINVAL, "header_length 109", NULL);
    base(&m, 3);
    put32(&m, 100, CS + 8);
    expect_fail(&m, 0, -EINVAL, "header_length", "cluster size");
    base(&m, 3);
    put32(&m, 96, 7);
    expect_fail(&m, 0, -EINVAL, "refcount_order 7", NULL);
    base(&m, 3);
    put32(&m, 36, 123456789);
    expect_fail(&m, 0, -EINVAL, "l1_size 123456789 is too large", NULL);
    base(&m, 3);
    put64(&m, 24, 1ull << 40);
    expect_fail(&m, 0, -EINVAL, "l1_size 1 is too small", NULL);
    base(&m, 3);
    put64(&m, 24, 1ull << 62);
    expect_fail(&m, 0, -EFBIG, "virtual size", NULL);
    base(&m, 3);
    put64(&m, 40, 0x40000000);
    expect_fail(&m, 0, -EINVAL, "l1_table_offset 0x40000000 is beyond the end of the file", NULL);
    base(&m, 3);
    put64(&m, 40, CS + 512);
    expect_fail(&m, 0, -EINVAL, "l1_table_offset", "not aligned");
    base(&m, 3);
    put64(&m, 40, 5 * CS);
    put32(&m, 36, 4096);
    put64(&m, 24, 1ull << 32);
    expect_fail(&m, 0, -EINVAL, "l1_table_offset", "extends beyond the end of the file");
    base(&m, 3);
    put32(&m, 56, 0);
    expect_fail(&m, 0, -EINVAL, "refcount_table_clusters is 0", NULL);
    base(&m, 3);
    put32(&m, 56, 4096);
    expect_fail(&m, 0, -EINVAL, "refcount_table_clusters 4096 is too large", NULL);
    base(&m, 3);
    put64(&m, 48, 1ull << 30);
    expect_fail(&m, 0, -EINVAL, "refcount_table_offset", "beyond the end of the file");
    base(&m, 3);
    put32(&m, 60, 70000);
    expect_fail(&m, 0, -EINVAL, "nb_snapshots 70000", NULL);
    base(&m, 3);
    put32(&m, 60, 1);
    put64(&m, 64, 100);
    expect_fail(&m, 0, -EINVAL, "snapshots_offset", "not aligned");
}

static void test_incompat_bits(void **state)
{
    (void)state;
    struct img m;
    struct scuse_err err;
    base(&m, 3);
    put64(&m, 72, 1ull << 9);
    expect_fail(&m, 0, -ENOTSUP, "unsupported incompatible feature bit 9", NULL);

    /* Named from the feature table. */
    base(&m, 3);
    uint8_t table[2 * 48] = { 0 };
    table[0] = 0, table[1] = 9;
    strcpy((char *)table + 2, "time travel");
    table[48] = 1, table[49] = 9;
    strcpy((char *)table + 50, "wrong type");
    add_ext(&m, 0x6803f857, table, sizeof(table));
    put64(&m, 72, (1ull << 9) | (1ull << 33));
    expect_fail(&m, 0, -ENOTSUP, "bits 9 (time travel), 33", NULL);

    /* Dirty: read-only is fine; read-write rebuilds the refcounts and
     * clears the bit (in the file too). */
    base(&m, 3);
    put64(&m, 72, 1);
    struct blk_node *bs = expect_ok(&m, 0);
    assert_true(bs->dirty);
    blk_close(bs);
    bs = expect_ok(&m, BLK_OPEN_RW);
    assert_false(bs->dirty);
    blk_close(bs);
    memset(&err, 0, sizeof(err));
    assert_int_equal(blk_open(tu_path("t.qcow2"), "qcow2", BLK_OPEN_SHARE | BLK_OPEN_NO_BACKING,
                              NULL, &bs, &err), 0);
    assert_false(bs->dirty);
    blk_close(bs);

    /* Corrupt: read-only only. */
    base(&m, 3);
    put64(&m, 72, 2);
    bs = expect_ok(&m, 0);
    struct blk_info info;
    assert_int_equal(blk_info(bs, &info, NULL), 0);
    assert_string_equal(info.item[4].key, "corrupt");
    assert_true(info.item[4].b);
    free(info.snapshots);
    blk_close(bs);
    expect_fail(&m, BLK_OPEN_RW, -EACCES, "corrupt", "bit 1");

    /* External data file bit without the extension. */
    base(&m, 3);
    put64(&m, 72, 4);
    expect_fail(&m, 0, -EINVAL, "data file", "extension");

    /* Compression type and its bit must agree. */
    base(&m, 3);
    put32(&m, 100, 112);
    m.ext = 112;
    m.f[104] = 2;
    put64(&m, 72, 8);
    expect_fail(&m, 0, -ENOTSUP, "compression_type 2", NULL);
    m.f[104] = 1;
    put64(&m, 72, 0);
    expect_fail(&m, 0, -EINVAL, "compression_type 1", "bit 3");
    m.f[104] = 0;
    put64(&m, 72, 8);
    expect_fail(&m, 0, -EINVAL, "bit 3", "zlib");
    m.f[104] = 1;
    bs = expect_ok(&m, 0);
    blk_close(bs);

    /* Extended L2 needs 16 KiB clusters. */
    base(&m, 3);
    put64(&m, 72, 16);
    expect_fail(&m, 0, -EINVAL, "extended L2", "cluster_bits is 12");
}

static void test_extensions(void **state)
{
    (void)state;
    struct img m;
    base(&m, 3);
    add_ext(&m, 0x12345678, "unknown", 7); /* tolerated */
    add_ext(&m, 0xe2792aca, "qcow2", 5);
    const char *name = "sub/../back.qcow2";
    put64(&m, 8, 1024);
    put32(&m, 16, (uint32_t)strlen(name));
    memcpy(m.f + 1024, name, strlen(name));
    struct blk_node *bs = expect_ok(&m, 0);
    assert_string_equal(bs->backing_fmt, "qcow2");
    assert_string_equal(bs->backing_name, name);
    blk_close(bs);

    /* Longest name accepted, one more refused. */
    base(&m, 3);
    put64(&m, 8, 1024);
    put32(&m, 16, 1023);
    memset(m.f + 1024, 'a', 1023);
    bs = expect_ok(&m, 0);
    assert_int_equal(strlen(bs->backing_name), 1023);
    blk_close(bs);
    put32(&m, 16, 1024);
    expect_fail(&m, 0, -EINVAL, "backing file name is 1024 bytes", "1023");
    put64(&m, 8, CS - 10);
    put32(&m, 16, 20);
    expect_fail(&m, 0, -EINVAL, "backing file name", "header cluster");

    /* Extension longer than the header cluster. */
    base(&m, 3);
    add_ext(&m, 0xe2792aca, "raw", 3);
    put32(&m, 104 + 4, 0x100000);
    expect_fail(&m, 0, -EINVAL, "header extension", "bytes long");

    /* Extension header cut off by the backing name offset. */
    base(&m, 3);
    put64(&m, 8, 108);
    put32(&m, 16, 4);
    put32(&m, 104, 0x12345678);
    expect_fail(&m, 0, -EINVAL, "header extension at 0x68", NULL);
}

static void test_data_file(void **state)
{
    (void)state;
    struct img m;
    base(&m, 3);
    put64(&m, 72, 4);
    add_ext(&m, 0x44415441, "t.data", 6);
    /* Guest cluster 0: offset 0 + COPIED = data file offset 0; cluster 1
     * at data file offset 3 * CS; cluster 2 unallocated. */
    put64(&m, 3 * CS, 1ull << 63);
    put64(&m, 3 * CS + 8, (1ull << 63) | 3 * CS);
    uint8_t data[4 * CS];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i / CS + 0x40);
    struct blk_node *bs;
    struct scuse_err err;
    assert_int_equal(open_img(&m, 0, &bs, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "data file"));

    tu_store("t.data", data, sizeof(data));
    bs = expect_ok(&m, 0);
    uint8_t b[3 * CS];
    assert_int_equal(blk_pread(bs, 0, b, sizeof(b), NULL), 0);
    assert_int_equal(b[0], 0x40);
    assert_int_equal(b[CS - 1], 0x40);
    assert_int_equal(b[CS], 0x43);
    assert_int_equal(b[2 * CS], 0);
    uint64_t pnum;
    struct blk_status st;
    assert_int_equal(bs->drv->block_status(bs, 0, 1 << 20, &pnum, &st, NULL), 0);
    assert_int_equal(pnum, CS);
    assert_int_equal(st.flags, BLK_STATUS_ALLOCATED | BLK_STATUS_DATA | BLK_STATUS_OFFSET);
    assert_int_equal(st.offset, 0);

    struct blk_info info;
    assert_int_equal(blk_info(bs, &info, NULL), 0);
    const char *keys[] = { "compat", "compression-type", "lazy-refcounts", "refcount-bits",
                           "data-file", "data-file-raw", "corrupt", "extended-l2" };
    assert_int_equal(info.n_items, 8);
    for (int i = 0; i < 8; i++)
        assert_string_equal(info.item[i].key, keys[i]);
    assert_string_equal(info.item[4].s, "t.data");
    assert_false(info.item[5].b);
    free(info.snapshots);
    blk_close(bs);

    /* Compressed clusters cannot live in a data file. */
    put64(&m, 3 * CS, 1ull << 62);
    bs = expect_ok(&m, 0);
    assert_int_equal(blk_pread(bs, 0, b, 512, NULL), -EIO);
    blk_close(bs);
}

static void put_snapshot(struct img *m, size_t off, const char *id, const char *name,
                         uint32_t extra_len, uint64_t icount)
{
    put64(m, off, 1 * CS);
    put32(m, off + 8, 1);
    put32(m, off + 12, (uint32_t)(strlen(id) << 16 | strlen(name)));
    put32(m, off + 16, 1700000000);
    put32(m, off + 20, 5);
    put64(m, off + 24, 123456789);
    put32(m, off + 32, 77);
    put32(m, off + 36, extra_len);
    if (extra_len >= 24) {
        put64(m, off + 40, 1ull << 33);
        put64(m, off + 56, icount);
    }
    memcpy(m->f + off + 40 + extra_len, id, strlen(id));
    memcpy(m->f + off + 40 + extra_len + strlen(id), name, strlen(name));
}

static void test_info_snapshots(void **state)
{
    (void)state;
    struct img m;
    base(&m, 2);
    struct blk_node *bs = expect_ok(&m, 0);
    struct blk_info info;
    assert_int_equal(blk_info(bs, &info, NULL), 0);
    assert_string_equal(info.type, "qcow2");
    assert_int_equal(info.n_items, 3);
    assert_string_equal(info.item[0].key, "compat");
    assert_string_equal(info.item[0].s, "0.10");
    assert_string_equal(info.item[1].key, "compression-type");
    assert_string_equal(info.item[1].label, "compression type");
    assert_string_equal(info.item[2].key, "refcount-bits");
    assert_int_equal(info.item[2].i, 16);
    assert_int_equal(info.n_snapshots, 0);
    assert_null(info.snapshots);
    blk_close(bs);

    base(&m, 3);
    put64(&m, 80, 1); /* lazy refcounts */
    put32(&m, 60, 2);
    put64(&m, 64, 2 * CS + 2048); /* unaligned: refused at open */
    expect_fail(&m, 0, -EINVAL, "snapshots_offset", NULL);
    /* Snapshots in cluster 5 (data of guest cluster 1 is irrelevant here). */
    put64(&m, 64, 5 * CS);
    memset(m.f + 5 * CS, 0, CS);
    put_snapshot(&m, 5 * CS, "1", "first", 24, 42);
    put_snapshot(&m, 5 * CS + 72, "2", "second", 16, 0); /* 40+24+1+5 -> 72 */
    bs = expect_ok(&m, 0);
    assert_int_equal(blk_info(bs, &info, NULL), 0);
    assert_string_equal(info.item[0].s, "1.1");
    assert_string_equal(info.item[2].key, "lazy-refcounts");
    assert_true(info.item[2].b);
    assert_int_equal(info.n_snapshots, 2);
    assert_string_equal(info.snapshots[0].id, "1");
    assert_string_equal(info.snapshots[0].name, "first");
    assert_int_equal(info.snapshots[0].vm_state_size, 1ull << 33);
    assert_int_equal(info.snapshots[0].icount, 42);
    assert_int_equal(info.snapshots[0].date_sec, 1700000000);
    assert_int_equal(info.snapshots[0].vm_clock_nsec, 123456789);
    assert_string_equal(info.snapshots[1].name, "second");
    assert_int_equal(info.snapshots[1].icount, UINT64_MAX);
    free(info.snapshots);
    blk_close(bs);

    /* A snapshot entry running past the end of the file. */
    put32(&m, 60, 3);
    put_snapshot(&m, 5 * CS + 136, "3", "third", 0, 0); /* 72 + (40+16+1+6 -> 64) */
    put32(&m, 5 * CS + 136 + 36, 1000);
    m.len = 5 * CS + 900;
    bs = expect_ok(&m, 0);
    assert_int_equal(blk_info(bs, &info, NULL), -EINVAL);
    blk_close(bs);
}

static int setup(void **state)
{
    (void)state;
    return tu_dir_make("qcow2-hdr");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_bad_fields),
        cmocka_unit_test(test_incompat_bits),
        cmocka_unit_test(test_extensions),
        cmocka_unit_test(test_data_file),
        cmocka_unit_test(test_info_snapshots),
    };
    return cmocka_run_group_tests(tests, setup, tu_teardown);
}
