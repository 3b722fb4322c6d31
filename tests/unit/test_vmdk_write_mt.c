/* Concurrent VMDK writes, reads, zero writes, discards and flushes
 * (the threads: write_mt.h). The writers first write every grain in
 * lockstep, so all four allocate the same grains at once (filling the
 * rest of a new grain from the parent or zeros) and, where the grain
 * directory has holes, the same new grain tables; the flusher keeps
 * writing the grain tables out. Afterwards `qemu-img check` must be clean,
 * the image equal to the threads' combined shadow, and the redundant
 * tables equal to the primary ones. Skipped without qemu-img. */
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

/* lib/vmdkgen.py beside this file's tests/formats */
static const char *gen_path(void)
{
    static char p[4096];
    snprintf(p, sizeof(p), "%s", __FILE__);
    char *s = strrchr(p, '/');
    snprintf(s ? s + 1 : p, sizeof(p) - (size_t)(s ? s + 1 - p : 0), "../formats/lib/vmdkgen.py");
    return p;
}

struct cfg {
    const char *what;
    const char *make;         /* shell commands making t.vmdk (and its parent); %s: vmdkgen.py */
    bool zeroed;
};

static void run_cfg(const struct cfg *c)
{
    tu_sh("rm -f *.vmdk *.raw");
    uint64_t csize = 65536, vsize;
    assert_int_equal(tu_sh(c->make, gen_path()), 0);
    assert_int_equal(tu_sh("qemu-img convert -O raw t.vmdk start.raw"), 0);
    assert_int_equal(tu_sh("test $(stat -c %%s start.raw) -gt 0"), 0);
    FILE *f = fopen(tu_path("start.raw"), "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    vsize = (uint64_t)ftell(f);
    fclose(f);
    uint8_t *start = tu_load("start.raw", vsize);

    struct scuse_err err = { 0 };
    struct blk_node *bs;
    if (blk_open(tu_path("t.vmdk"), "vmdk", BLK_OPEN_RW, NULL, &bs, &err) < 0)
        fail_msg("open: %s", err.msg);
    /* without zeroed grains a discard is advisory */
    uint8_t *shadow = wmt_run(bs, vsize, csize, start, !c->zeroed, true);
    blk_close(bs);
    if (!shadow)
        fail_msg("%s: %s", c->what, failure);
    if (tu_sh("qemu-img check t.vmdk") != 0)
        fail_msg("%s: qemu-img check is not clean", c->what);
    tu_store("end.raw", shadow, vsize);
    if (tu_sh("qemu-img compare -f vmdk -F raw t.vmdk end.raw") != 0)
        fail_msg("%s: image differs from the threads' shadow", c->what);
    if (tu_sh("python3 %s rgdcheck t.vmdk", gen_path()) != 0)
        fail_msg("%s: the redundant grain tables differ from the primary ones", c->what);
    free(start);
    free(shadow);
}

static void test_threads(void **state)
{
    (void)state;
    static const struct cfg cfgs[] = {
        { "monolithicSparse", ": %s; qemu-img create -f vmdk t.vmdk 64M && "
          "qemu-io -c 'write -P 0xf2 0 512k' -c 'write -P 0xf3 3M 64k' t.vmdk", false },
        { "zeroed grains over a parent", ": %s; qemu-img create -f vmdk b.vmdk 4M && "
          "qemu-io -c 'write -P 0xf1 0 4M' b.vmdk && "
          "qemu-img create -f vmdk -o zeroed_grain=on -b b.vmdk -F vmdk t.vmdk && "
          "qemu-io -c 'write -z 64k 128k' -c 'write -P 0xf4 1M 64k' t.vmdk", true },
        { "grain-directory holes (8-entry grain tables)",
          "python3 %s sparse t.vmdk g.raw --size 4194304 --seed 5 --grain 128 --gtes 8 --gd-holes", false },
    };
    for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++)
        run_cfg(&cfgs[i]);
}

static int setup(void **state)
{
    (void)state;
    return tu_qemu_setup("vmdk-mt", NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_threads, tu_need_qemu),
    };
    return cmocka_run_group_tests(tests, setup, tu_teardown);
}
