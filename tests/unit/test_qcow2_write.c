/* qcow2 writes judged by QEMU.
 *
 * Images (chains, snapshots, compressed, zero and preallocated-zero
 * clusters) are made with qemu-img/qemu-io; random writes, zero writes and
 * discards (unaligned included) go through the block layer and into a
 * shadow copy; afterwards `qemu-img check` must find no error and no leak,
 * `qemu-img compare` must find the image equal to the shadow, and internal
 * snapshots must read back unchanged. Targeted cases: partial writes into
 * every kind of cluster (never the image header in guest data), discard
 * and zero semantics, autoclear bits, refcount widths.
 *
 * Skipped when qemu-img is not installed. SCUSE_TEST_SEED=<n> reruns with
 * another seed; SCUSE_TEST_OPS=<n> changes the operations per image. */
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
#include "qcow2/qcow2.h"
#include "testutil.h"

static uint64_t rng;

static uint64_t rnd(void) { return tu_rnd(&rng); }
static uint64_t below(uint64_t n) { return tu_below(&rng, n); }

static struct blk_node *open_rw(const char *name)
{
    struct blk_node *bs;
    struct scuse_err err = { 0 };
    struct blk_opts o = { 0 };
    static char cbuf[32];
    tu_l2_cache(&o, cbuf, sizeof(cbuf), below(3) == 0 ? 1 : 0); /* sometimes the smallest cache */
    if (blk_open(tu_path(name), "qcow2", BLK_OPEN_RW, &o, &bs, &err) < 0)
        fail_msg("open %s: %s", name, err.msg);
    return bs;
}

/* qemu-img check clean, equal to the shadow. */
static void judge(const char *img, const uint8_t *shadow, uint64_t size)
{
    tu_store("shadow.raw", shadow, size);
    if (tu_sh("qemu-img check '%s'", img) != 0) {
        tu_sh("qemu-img check '%s' >&2", img);
        fail_msg("qemu-img check %s is not clean", img);
    }
    if (tu_sh("qemu-img compare -f qcow2 -F raw '%s' shadow.raw", img) != 0)
        fail_msg("%s differs from its shadow", img);
}

struct cfg {
    const char *opts;
    uint32_t cs;
    uint64_t size;
    int chain;      /* layers below the image */
    bool snap;
};

static void fill_cmds(char *cmds, size_t cap, uint32_t cs, uint64_t size, int n, bool compress)
{
    size_t used = 0;
    cmds[0] = '\0';
    for (int i = 0; i < n; i++) {
        uint64_t off = below(size - 1), len = 1 + below(3 * cs);
        if (len > size - off)
            len = size - off;
        uint64_t k = below(10), c0 = below(size / cs) * cs;
        int w;
        if (k < 6)
            w = snprintf(cmds + used, cap - used, " -c 'write -P %u %lu %lu'", (unsigned)below(256),
                         (unsigned long)off, (unsigned long)len);
        else if (k == 6)
            w = snprintf(cmds + used, cap - used, " -c 'write -z %lu %lu'", (unsigned long)off,
                         (unsigned long)len);
        else if (k == 7)
            w = snprintf(cmds + used, cap - used, " -c 'write -z -u %lu %lu'", (unsigned long)off,
                         (unsigned long)len);
        else if (k == 8 || !compress)
            w = snprintf(cmds + used, cap - used, " -c 'discard %lu %lu'", (unsigned long)off,
                         (unsigned long)len);
        else
            w = snprintf(cmds + used, cap - used, " -c 'write -c -P %u %lu %u'", (unsigned)below(256),
                         (unsigned long)c0, cs);
        if (w < 0 || (size_t)w >= cap - used)
            break;
        used += (size_t)w;
    }
}

/* Build the image (and its chain), return the shadow. */
static uint8_t *build(const struct cfg *c)
{
    static char cmds[64 * 1024];
    char below_name[32] = "";
    for (int i = 0; i < c->chain; i++) {
        char name[32];
        snprintf(name, sizeof(name), "l%d.qcow2", i);
        uint64_t sz = i == 0 ? c->size - 3 * c->cs : c->size; /* a shorter base */
        if (below_name[0])
            assert_int_equal(tu_sh("qemu-img create -f qcow2 -o %s -b %s -F qcow2 %s %lu", c->opts,
                                   below_name, name, (unsigned long)sz), 0);
        else
            assert_int_equal(tu_sh("qemu-img create -f qcow2 -o %s %s %lu", c->opts, name,
                                   (unsigned long)sz), 0);
        fill_cmds(cmds, sizeof(cmds), c->cs, sz, 40, i == 0);
        tu_sh("qemu-io -f qcow2 %s %s", cmds, name);
        strcpy(below_name, name);
    }
    if (below_name[0])
        assert_int_equal(tu_sh("qemu-img create -f qcow2 -o %s -b %s -F qcow2 top.qcow2 %lu", c->opts,
                               below_name, (unsigned long)c->size), 0);
    else
        assert_int_equal(tu_sh("qemu-img create -f qcow2 -o %s top.qcow2 %lu", c->opts,
                               (unsigned long)c->size), 0);
    fill_cmds(cmds, sizeof(cmds), c->cs, c->size, 60, c->chain == 0);
    tu_sh("qemu-io -f qcow2 %s top.qcow2", cmds);
    if (c->snap) {
        assert_int_equal(tu_sh("qemu-img snapshot -c s1 top.qcow2"), 0);
        fill_cmds(cmds, sizeof(cmds), c->cs, c->size, 20, false);
        tu_sh("qemu-io -f qcow2 %s top.qcow2", cmds);
        assert_int_equal(tu_sh("qemu-img snapshot -c s2 top.qcow2"), 0);
        assert_int_equal(tu_sh("qemu-img convert -l snapshot.name=s1 -O raw top.qcow2 s1.raw"), 0);
        assert_int_equal(tu_sh("qemu-img convert -l snapshot.name=s2 -O raw top.qcow2 s2.raw"), 0);
    }
    /* qemu-io sometimes makes an image QEMU itself finds inconsistent or
     * cannot read: not ours to judge. */
    if (tu_sh("qemu-img check top.qcow2") != 0 || tu_sh("qemu-img convert -O raw top.qcow2 start.raw") != 0)
        return NULL;
    return tu_load("start.raw", c->size);
}

static void random_ops(struct blk_node *bs, uint8_t *shadow, const struct cfg *c, int n)
{
    uint64_t size = c->size, cs = c->cs;
    bool v2 = strstr(c->opts, "compat=0.10") != NULL;
    uint8_t *buf = malloc(64 * cs + 8192);
    assert_non_null(buf);
    for (int i = 0; i < n; i++) {
        uint64_t off, len;
        if (below(20) == 0) {
            off = below(size / cs) * cs;
            len = (1 + below(3)) * cs;
        } else {
            off = below(size - 1);
            len = 1 + below(3 * cs + 5000);
            if (below(50) == 0)
                len = (1 + below(63)) * cs;
        }
        if (len > size - off)
            len = size - off;
        uint64_t k = below(20);
        if (k < 12) {
            memset(buf, (int)below(256), len);
            assert_int_equal(blk_pwrite(bs, off, buf, len, below(10) == 0 ? BLK_WRITE_FUA : 0, NULL), 0);
            memcpy(shadow + off, buf, len);
        } else if (k < 15) {
            assert_int_equal(blk_write_zeroes(bs, off, len, below(2) ? BLK_ZERO_MAY_UNMAP : 0, NULL), 0);
            memset(shadow + off, 0, len);
        } else if (k < 18) {
            assert_int_equal(blk_discard(bs, off, len, NULL), 0);
            uint64_t a = (off + cs - 1) / cs * cs, end = off + len;
            uint64_t b = end == size ? (end + cs - 1) / cs * cs : end / cs * cs;
            if (b > size)
                b = size;
            if (a < b && !(v2 && c->chain))
                memset(shadow + a, 0, b - a);
        } else if (k < 19) {
            assert_int_equal(blk_flush(bs, NULL), 0);
        } else {
            assert_int_equal(blk_pread(bs, off, buf, len, NULL), 0);
            if (memcmp(buf, shadow + off, len) != 0)
                fail_msg("read %lu+%lu differs from the shadow (op %d)", (unsigned long)off,
                         (unsigned long)len, i);
        }
    }
    free(buf);
}

static int n_ops(void)
{
    const char *e = getenv("SCUSE_TEST_OPS");
    return e ? atoi(e) : 250;
}

static void run_cfg(const struct cfg *c)
{
    tu_sh("rm -f *.qcow2 *.raw");
    uint8_t *shadow = build(c);
    if (!shadow) {
        printf("# skipped %s chain=%d: qemu-io made an image QEMU rejects\n", c->opts, c->chain);
        return;
    }
    struct blk_node *bs = open_rw("top.qcow2");
    random_ops(bs, shadow, c, n_ops());
    blk_close(bs);
    judge("top.qcow2", shadow, c->size);
    if (c->snap) {
        for (int i = 1; i <= 2; i++) {
            assert_int_equal(tu_sh("qemu-img convert -l snapshot.name=s%d -O raw top.qcow2 after.raw", i), 0);
            if (tu_sh("cmp -s s%d.raw after.raw", i) != 0)
                fail_msg("snapshot s%d changed (%s)", i, c->opts);
        }
    }
    free(shadow);
}

static void test_random(void **state)
{
    (void)state;
    static const struct cfg cfgs[] = {
        { "compat=1.1,cluster_size=65536", 65536, 8 << 20, 0, false },
        { "compat=1.1,cluster_size=65536", 65536, 8 << 20, 3, false },
        { "compat=0.10,cluster_size=65536", 65536, 8 << 20, 0, false },
        { "compat=0.10,cluster_size=4096", 4096, 4 << 20, 3, false },
        { "compat=1.1,cluster_size=512,refcount_bits=64", 512, 2 << 20, 0, false },
        { "compat=1.1,cluster_size=512,refcount_bits=1", 512, 2 << 20, 3, false },
        { "compat=1.1,cluster_size=4096,refcount_bits=1", 4096, 4 << 20, 0, false },
        { "compat=1.1,cluster_size=4096,refcount_bits=64", 4096, 4 << 20, 3, false },
        { "compat=1.1,cluster_size=2097152,refcount_bits=16", 2097152, 40 << 20, 0, false },
        { "compat=1.1,cluster_size=2097152,refcount_bits=2", 2097152, 40 << 20, 3, false },
        { "compat=1.1,cluster_size=65536,extended_l2=on", 65536, 8 << 20, 0, false },
        { "compat=1.1,cluster_size=65536,extended_l2=on,refcount_bits=8", 65536, 8 << 20, 3, false },
        { "compat=1.1,cluster_size=16384,extended_l2=on,refcount_bits=32", 16384, 4 << 20, 3, false },
        { "compat=1.1,cluster_size=2097152,extended_l2=on", 2097152, 40 << 20, 1, false },
        { "compat=1.1,cluster_size=65536", 65536, 8 << 20, 0, true },
        { "compat=1.1,cluster_size=4096", 4096, 4 << 20, 1, true },
        { "compat=0.10,cluster_size=65536", 65536, 8 << 20, 1, true },
        { "compat=1.1,cluster_size=65536,extended_l2=on", 65536, 8 << 20, 1, true },
    };
    for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++)
        run_cfg(&cfgs[i]);
}

/* Reads of [off, off+len) by qemu-io must all be byte b. */
static void expect_qemu(const char *img, uint64_t off, uint64_t len, unsigned b)
{
    if (tu_sh("qemu-io -f qcow2 -r -c 'read -P %u %lu %lu' %s | grep -q 'verification failed' && exit 1 || exit 0",
              b, (unsigned long)off, (unsigned long)len, img) != 0)
        fail_msg("%s: %lu+%lu is not 0x%02x", img, (unsigned long)off, (unsigned long)len, b);
}

/* Partial writes into each kind of cluster: the rest of the cluster keeps
 * what it read as before (backing data, zeros, old or decompressed data). */
static void test_partial_kinds(void **state)
{
    (void)state;
    static const char *variants[] = { "compat=1.1,cluster_size=65536",
                                      "compat=1.1,cluster_size=65536,extended_l2=on" };
    for (int v = 0; v < 2; v++) {
        tu_sh("rm -f *.qcow2 *.raw");
        const char *o = variants[v];
        uint64_t cs = 65536;
        assert_int_equal(tu_sh("qemu-img create -f qcow2 -o %s base.qcow2 1M", o), 0);
        assert_int_equal(tu_sh("qemu-io -c 'write -P 0x5a 0 1M' base.qcow2"), 0);
        assert_int_equal(tu_sh("qemu-img create -f qcow2 -o %s -b base.qcow2 -F qcow2 top.qcow2 1M", o), 0);
        /* 0: unallocated (backing), 1: zero plain, 2: zero alloc, 3: compressed,
         * 4: normal shared with a snapshot, 5: normal. */
        assert_int_equal(tu_sh("qemu-io -c 'write -z -u 64k 64k' -c 'write -P 0x22 128k 64k' "
                               "-c 'write -z 128k 64k' -c 'write -c -P 0x33 192k 64k' "
                               "-c 'write -P 0x44 256k 128k' top.qcow2"), 0);
        assert_int_equal(tu_sh("qemu-img snapshot -c s top.qcow2"), 0);
        assert_int_equal(tu_sh("qemu-img convert -l snapshot.name=s -O raw top.qcow2 s.raw"), 0);
        struct blk_node *bs = open_rw("top.qcow2");
        uint8_t buf[1000];
        memset(buf, 0xee, sizeof(buf));
        for (int c = 0; c < 6; c++)
            assert_int_equal(blk_pwrite(bs, c * cs + 5000, buf, sizeof(buf), 0, NULL), 0);
        blk_close(bs);
        static const unsigned before[6] = { 0x5a, 0, 0, 0x33, 0x44, 0x44 };
        for (int c = 0; c < 6; c++) {
            expect_qemu("top.qcow2", c * cs, 5000, before[c]);
            expect_qemu("top.qcow2", c * cs + 5000, 1000, 0xee);
            expect_qemu("top.qcow2", c * cs + 6000, cs - 6000, before[c]);
        }
        assert_int_equal(tu_sh("qemu-img check top.qcow2"), 0);
        assert_int_equal(tu_sh("qemu-img convert -l snapshot.name=s -O raw top.qcow2 after.raw"), 0);
        assert_int_equal(tu_sh("cmp -s s.raw after.raw"), 0);
    }
}

/* The guest never sees the image header, whatever it writes into a zero
 * cluster at offset 0 of a fresh image. */
static void test_no_header_leak(void **state)
{
    (void)state;
    tu_sh("rm -f *.qcow2");
    assert_int_equal(tu_sh("qemu-img create -f qcow2 t.qcow2 1M && qemu-io -c 'write -z 0 64k' t.qcow2"), 0);
    struct blk_node *bs = open_rw("t.qcow2");
    uint8_t one = 0x77, buf[512];
    assert_int_equal(blk_pwrite(bs, 4096, &one, 1, 0, NULL), 0);
    assert_int_equal(blk_pread(bs, 0, buf, sizeof(buf), NULL), 0);
    for (size_t i = 0; i < sizeof(buf); i++)
        assert_int_equal(buf[i], 0);
    blk_close(bs);
    expect_qemu("t.qcow2", 0, 4096, 0);
    assert_int_equal(tu_sh("qemu-img check t.qcow2"), 0);
}

/* Discard: standalone deallocates, v3 overlay leaves zeros, v2 overlay
 * keeps the data; write_zeroes with and without unmap. */
static void test_discard_zero(void **state)
{
    (void)state;
    for (int v2 = 0; v2 < 2; v2++) {
        tu_sh("rm -f *.qcow2");
        const char *compat = v2 ? "0.10" : "1.1";
        assert_int_equal(tu_sh("qemu-img create -f qcow2 -o compat=%s b.qcow2 1M && "
                               "qemu-io -c 'write -P 0x5a 0 1M' b.qcow2 && "
                               "qemu-img create -f qcow2 -o compat=%s -b b.qcow2 -F qcow2 o.qcow2 1M && "
                               "qemu-img create -f qcow2 -o compat=%s s.qcow2 1M", compat, compat, compat), 0);
        for (int img = 0; img < 2; img++) {
            const char *name = img ? "s.qcow2" : "o.qcow2";
            struct blk_node *bs = open_rw(name);
            uint8_t buf[65536];
            memset(buf, 0x11, sizeof(buf));
            assert_int_equal(blk_pwrite(bs, 0, buf, sizeof(buf), 0, NULL), 0);
            assert_int_equal(blk_pwrite(bs, 65536, buf, sizeof(buf), 0, NULL), 0);
            assert_int_equal(blk_discard(bs, 0, 65536, NULL), 0);
            assert_int_equal(blk_write_zeroes(bs, 65536, 65536, BLK_ZERO_MAY_UNMAP, NULL), 0);
            assert_int_equal(blk_write_zeroes(bs, 131072, 65536, 0, NULL), 0);
            uint64_t pnum;
            struct blk_status st;
            assert_int_equal(blk_block_status(bs, 0, 65536, &pnum, &st, NULL), 0);
            if (img == 1)
                assert_true(st.depth > 0 || !(st.flags & BLK_STATUS_ALLOCATED) ||
                            (st.flags & BLK_STATUS_ZERO));
            blk_close(bs);
            assert_int_equal(tu_sh("qemu-img check %s", name), 0);
            unsigned first = (img == 0 && v2) ? 0x11 : 0;
            expect_qemu(name, 0, 65536, first);
            expect_qemu(name, 65536, 131072, 0);
            expect_qemu(name, 196608, 65536, img == 0 ? 0x5a : 0);
        }
    }
}

/* Unknown autoclear bits (and the bitmaps bit) are cleared by a
 * read-write open, not by a read-only one. */
static void test_autoclear(void **state)
{
    (void)state;
    tu_sh("rm -f *.qcow2");
    assert_int_equal(tu_sh("qemu-img create -f qcow2 t.qcow2 1M"), 0);
    FILE *f = fopen(tu_path("t.qcow2"), "r+b");
    assert_non_null(f);
    uint8_t bits[8] = { 0, 0, 0, 0, 0, 0, 0x01, 0x81 };
    assert_int_equal(fseek(f, 88, SEEK_SET), 0);
    assert_int_equal(fwrite(bits, 1, 8, f), 8);
    fclose(f);
    struct blk_node *bs;
    struct scuse_err err = { 0 };
    assert_int_equal(blk_open(tu_path("t.qcow2"), "qcow2", 0, NULL, &bs, &err), 0);
    blk_close(bs);
    uint8_t *h = tu_load("t.qcow2", 104);
    assert_int_equal(qcow2_be64(h + 88), 0x181);
    free(h);
    bs = open_rw("t.qcow2");
    blk_close(bs);
    h = tu_load("t.qcow2", 104);
    assert_int_equal(qcow2_be64(h + 88), 0);
    free(h);
    assert_int_equal(tu_sh("qemu-img check t.qcow2"), 0);
}

/* With extended L2 QEMU writes only the allocated subclusters, so the file
 * may end inside the last data cluster; writes into its other subclusters
 * must work. */
static void test_cluster_past_eof(void **state)
{
    (void)state;
    tu_sh("rm -f *.qcow2");
    assert_int_equal(tu_sh("qemu-img create -f qcow2 -o extended_l2=on,cluster_size=65536 b.qcow2 1M && "
                           "qemu-io -c 'write -P 0x5a 0 1M' b.qcow2 && "
                           "qemu-img create -f qcow2 -o extended_l2=on,cluster_size=65536 -b b.qcow2 "
                           "-F qcow2 t.qcow2 1M && qemu-io -c 'write -P 0x11 65536 2048' t.qcow2"), 0);
    struct blk_node *bs = open_rw("t.qcow2");
    uint8_t buf[3000];
    memset(buf, 0x22, sizeof(buf));
    assert_int_equal(blk_pwrite(bs, 65536 + 10000, buf, sizeof(buf), 0, NULL), 0);
    blk_close(bs);
    assert_int_equal(tu_sh("qemu-img check t.qcow2"), 0);
    expect_qemu("t.qcow2", 65536, 2048, 0x11);
    expect_qemu("t.qcow2", 65536 + 2048, 10000 - 2048, 0x5a);
    expect_qemu("t.qcow2", 65536 + 10000, 3000, 0x22);
    expect_qemu("t.qcow2", 65536 + 13000, 65536 - 13000, 0x5a);
}

/* An L2 entry pointing at the L1 table is refused, not written through. */
static void test_corrupt_entry_refused(void **state)
{
    (void)state;
    tu_sh("rm -f *.qcow2");
    assert_int_equal(tu_sh("qemu-img create -f qcow2 t.qcow2 1M && qemu-io -c 'write -P 0x11 0 64k' t.qcow2"), 0);
    uint8_t *h = tu_load("t.qcow2", 4 * 65536);
    uint64_t l1 = qcow2_be64(h + 40), l2 = qcow2_be64(h + l1) & QCOW2_L1E_OFFSET_MASK;
    uint8_t before[8];
    memcpy(before, h + l1, 8);
    FILE *f = fopen(tu_path("t.qcow2"), "r+b");
    assert_non_null(f);
    uint8_t e[8];
    for (int i = 0; i < 8; i++)
        e[i] = (uint8_t)((l1 | QCOW2_OFLAG_COPIED) >> (56 - 8 * i));
    assert_int_equal(fseek(f, (long)l2, SEEK_SET), 0);
    assert_int_equal(fwrite(e, 1, 8, f), 8);
    fclose(f);
    free(h);
    struct blk_node *bs = open_rw("t.qcow2");
    uint8_t buf[512];
    memset(buf, 0xff, sizeof(buf));
    assert_int_equal(blk_pwrite(bs, 0, buf, sizeof(buf), 0, NULL), -EIO);
    assert_int_equal(blk_pwrite(bs, 100, buf, sizeof(buf), 0, NULL), -EIO);
    blk_close(bs);
    h = tu_load("t.qcow2", 4 * 65536);
    assert_memory_equal(h + l1, before, 8);
    free(h);
}

/* Every refcount width: get/set round trip without touching neighbours. */
static void test_refcount_widths(void **state)
{
    (void)state;
    for (uint32_t order = 0; order <= 6; order++) {
        uint8_t blk[512], ref[512];
        uint64_t n = 512 * 8 >> order, max = order == 6 ? UINT64_MAX : (1ull << (1u << order)) - 1;
        memset(blk, 0, sizeof(blk));
        uint64_t *want = calloc(n, sizeof(*want));
        assert_non_null(want);
        for (int round = 0; round < 2000; round++) {
            uint64_t i = below(n), v = rnd() & max;
            qcow2_rc_set_entry(blk, i, order, v);
            want[i] = v;
        }
        for (uint64_t i = 0; i < n; i++)
            assert_int_equal(qcow2_rc_entry(blk, i, order), want[i]);
        /* Sub-byte widths: entry 0 sits in the least significant bits. */
        memset(ref, 0, sizeof(ref));
        qcow2_rc_set_entry(ref, 0, order, 1);
        assert_int_equal(order <= 3 ? ref[0] : ref[(1u << order) / 8 - 1], 1);
        free(want);
    }
}

static int setup(void **state)
{
    (void)state;
    return tu_qemu_setup("qcow2-write", &rng, 0x5eed5eedull);
}

#define QTEST(f) cmocka_unit_test_setup(f, tu_need_qemu)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refcount_widths),
        QTEST(test_no_header_leak),
        QTEST(test_partial_kinds),
        QTEST(test_discard_zero),
        QTEST(test_autoclear),
        QTEST(test_cluster_past_eof),
        QTEST(test_corrupt_entry_refused),
        QTEST(test_random),
    };
    return cmocka_run_group_tests(tests, setup, tu_teardown);
}
