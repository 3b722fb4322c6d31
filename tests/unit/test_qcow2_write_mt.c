/* Concurrent qcow2 writes, reads, zero writes, discards and flushes (the
 * threads: write_mt.h): four writers allocate and copy on write (over a
 * backing file, under a snapshot, into subclusters) in the same clusters
 * at once; with a small L2 cache, the writers flush too. Afterwards
 * `qemu-img check` must be clean and the image equal to the threads'
 * combined shadow. Skipped without qemu-img. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "write_mt.h"

struct cfg {
    const char *opts;
    uint64_t cs;
    bool overlay, snap;
    uint64_t cache;
};

static void run_cfg(const struct cfg *c)
{
    tu_sh("rm -f *.qcow2 *.raw");
    uint64_t vsize = 64 * c->cs;
    if (c->overlay)
        assert_int_equal(tu_sh("qemu-img create -f qcow2 -o %s b.qcow2 %lu && qemu-io -c 'write -P 0xf1 0 %lu' b.qcow2 && "
                               "qemu-img create -f qcow2 -o %s -b b.qcow2 -F qcow2 t.qcow2 %lu",
                               c->opts, (unsigned long)vsize, (unsigned long)vsize, c->opts,
                               (unsigned long)vsize), 0);
    else
        assert_int_equal(tu_sh("qemu-img create -f qcow2 -o %s t.qcow2 %lu", c->opts, (unsigned long)vsize), 0);
    assert_int_equal(tu_sh("qemu-io -c 'write -P 0xf2 0 %lu' -c 'write -c -P 0xf3 %lu %lu' t.qcow2",
                           (unsigned long)(vsize / 8), (unsigned long)(vsize / 4), (unsigned long)c->cs), 0);
    if (c->snap)
        assert_int_equal(tu_sh("qemu-img snapshot -c s t.qcow2"), 0);
    assert_int_equal(tu_sh("qemu-img convert -O raw t.qcow2 start.raw"), 0);
    uint8_t *start = tu_load("start.raw", vsize);

    struct scuse_err err = { 0 };
    struct blk_opts o = { 0 };
    char cbuf[32];
    tu_l2_cache(&o, cbuf, sizeof(cbuf), c->cache);
    struct blk_node *bs;
    if (blk_open(tu_path("t.qcow2"), "qcow2", BLK_OPEN_RW, &o, &bs, &err) < 0)
        fail_msg("open: %s", err.msg);
    /* a v2 overlay keeps its backing file's data on discard */
    bool keeps = c->overlay && strstr(c->opts, "compat=0.10");
    uint8_t *shadow = wmt_run(bs, vsize, c->cs, start, keeps, false);
    blk_close(bs);
    if (!shadow)
        fail_msg("%s: %s", c->opts, failure);
    if (tu_sh("qemu-img check t.qcow2") != 0)
        fail_msg("%s: qemu-img check is not clean", c->opts);
    tu_store("end.raw", shadow, vsize);
    if (tu_sh("qemu-img compare -f qcow2 -F raw t.qcow2 end.raw") != 0)
        fail_msg("%s: image differs from the threads' shadow", c->opts);
    free(start);
    free(shadow);
}

static void test_threads(void **state)
{
    (void)state;
    static const struct cfg cfgs[] = {
        { "compat=1.1,cluster_size=65536", 65536, false, false, 0 },
        { "compat=1.1,cluster_size=65536", 65536, true, false, 1 },
        { "compat=1.1,cluster_size=65536", 65536, false, true, 0 },
        { "compat=0.10,cluster_size=4096", 4096, true, true, 1 },
        { "compat=1.1,cluster_size=65536,extended_l2=on", 65536, true, false, 0 },
        { "compat=1.1,cluster_size=131072,extended_l2=on", 131072, true, true, 1 },
        { "compat=1.1,cluster_size=512,refcount_bits=64", 512, false, false, 1 },
    };
    for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++)
        run_cfg(&cfgs[i]);
}

static int setup(void **state)
{
    (void)state;
    return tu_qemu_setup("qcow2-mt", NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_threads, tu_need_qemu),
    };
    return cmocka_run_group_tests(tests, setup, tu_teardown);
}
