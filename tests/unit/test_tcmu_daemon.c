/* The TCMU daemon's event handling, without a kernel: sysfs, configfs
 * and /dev trees of the test's own (a file stands in for each
 * /dev/uioN, mapped by the test as the kernel maps it), netlink events as
 * the parser gives them, and commands put on the served rings by the fake
 * kernel of test_tcmu_fake.h, answered by the real SCSI core over qcow2
 * and raw images made by qemu-img.
 *
 * Covers: ADDED (settings from configfs: block size, write cache, unit
 * serial), replies only for scuse's devices and only when the kernel
 * waits, error statuses (image missing, malformed config, a name that
 * does not match its minor: uio1 is not uio10), RECONFIG (write cache,
 * size, new image, refusals), REMOVED, and the start-up scan (rings
 * reset, devices without their image served NOT READY, vanished devices
 * dropped). A restart and the whole loop: test_tcmu_daemon_run.c. */
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
#include <unistd.h>

#include <cmocka.h>

#include "test_tcmu_daemon_env.h"

/* ---- ADDED ---- */

static void test_added(void **state)
{
    (void)state;
    struct kdev d;
    kdev_make(&d, 3, "vm1", cfg_a);
    cfs_attr("vm1", "attrib/hw_block_size", "4096");
    cfs_attr("vm1", "attrib/emulate_write_cache", "0");
    cfs_attr("vm1", "wwn/vpd_unit_serial", "T10 VPD Unit Serial Number: SER-42");
    struct tcmu_nl_event ev = ev_make(TCMU_CMD_ADDED_DEVICE, "vm1", cfg_a, 3, 9);
    struct tcmu_reply r = handle(&ev);
    assert_true(r.send);
    assert_int_equal(r.cmd, TCMU_CMD_ADDED_DEVICE_DONE);
    assert_int_equal(r.dev_id, 9);
    assert_int_equal(r.status, 0);
    assert_non_null(served(3));
    /* What configfs says is what the initiator sees. */
    uint64_t blocks;
    uint32_t bs;
    capacity(&d, &blocks, &bs);
    assert_int_equal(bs, 4096);
    assert_int_equal(blocks, (16 << 20) / 4096);
    assert_int_equal(wce(&d), 0);
    uint8_t vpd80[6] = { 0x12, 1, 0x80, 0, 64, 0 }, *p;
    struct fk_done *res = run(&d, vpd80, 6, 64, &p);
    assert_int_equal(res->status, 0);
    assert_int_equal(p[3], 6);
    assert_memory_equal(p + 4, "SER-42", 6);
    /* The qemu-io-written data, through the ring. */
    uint8_t rd[10] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 16, 0 };
    res = run(&d, rd, 10, 65536, &p);
    assert_int_equal(res->status, 0);
    for (int i = 0; i < 65536; i++)
        assert_int_equal(p[i], 0x11);
    /* The same event again (or after the scan found it): still fine. */
    r = handle(&ev);
    assert_int_equal(r.status, 0);
    assert_int_equal(dm->n_served, 1);
    kdev_drop(&d);
}

static void test_added_refusals(void **state)
{
    (void)state;
    struct kdev d1, d10;
    char missing[700], cfg[700];
    snprintf(missing, sizeof(missing), "scuse/qcow2@%s", tu_path("nope.qcow2"));
    kdev_make(&d1, 1, "one", cfg_a);
    kdev_make(&d10, 10, "ten", cfg_r);
    /* uio1 and uio10: each event finds its own device, never the other. */
    struct tcmu_nl_event ev = ev_make(TCMU_CMD_ADDED_DEVICE, "ten", cfg_r, 10, 20);
    assert_int_equal(handle(&ev).status, 0);
    assert_string_equal(served(10)->uio.name.dev, "ten");
    ev = ev_make(TCMU_CMD_ADDED_DEVICE, "ten", cfg_r, 1, 21);  /* name of 10, minor 1 */
    struct tcmu_reply r = handle(&ev);
    assert_true(r.send);
    assert_int_equal(r.status, -ENODEV);
    assert_null(served(1));
    /* The image cannot be opened: the enable fails with its errno. */
    kdev_drop(&d1);
    kdev_make(&d1, 1, "one", missing);
    ev = ev_make(TCMU_CMD_ADDED_DEVICE, "one", missing, 1, 22);
    r = handle(&ev);
    assert_true(r.send);
    assert_int_equal(r.status, -ENOENT);
    assert_null(served(1));
    /* A config naming scuse, malformed. */
    ev = ev_make(TCMU_CMD_ADDED_DEVICE, "one", "scuse/qcow2", 1, 23);
    r = handle(&ev);
    assert_true(r.send);
    assert_int_equal(r.status, -EINVAL);
    /* A block size scuse does not serve. */
    kdev_drop(&d1);
    kdev_make(&d1, 1, "one", cfg_a);
    cfs_attr("one", "attrib/hw_block_size", "1024");
    ev = ev_make(TCMU_CMD_ADDED_DEVICE, "one", cfg_a, 1, 24);
    assert_int_equal(handle(&ev).status, -EINVAL);
    cfs_attr("one", "attrib/hw_block_size", "512");
    /* Another handler's device: no reply at all (its daemon answers). */
    ev = ev_make(TCMU_CMD_ADDED_DEVICE, "fil", "file//srv/x.img", 5, 25);
    r = handle(&ev);
    assert_false(r.send);
    ev = ev_make(TCMU_CMD_REMOVED_DEVICE, "fil", "file//srv/x.img", 5, 25);
    assert_false(handle(&ev).send);
    /* The kernel does not wait (nl_reply_supported -1, or no DEVICE_ID):
     * served, no reply. */
    cfs_attr("one", "attrib/nl_reply_supported", "-1");
    ev = ev_make(TCMU_CMD_ADDED_DEVICE, "one", cfg_a, 1, 26);
    r = handle(&ev);
    assert_false(r.send);
    assert_int_equal(r.status, 0);
    assert_non_null(served(1));
    ev = ev_make(TCMU_CMD_REMOVED_DEVICE, "one", cfg_a, 1, 26);
    assert_false(handle(&ev).send); /* remembered from when it was added */
    assert_null(served(1));
    snprintf(cfg, sizeof(cfg), "%s", cfg_a);
    ev = ev_make(TCMU_CMD_ADDED_DEVICE, "one", cfg, 1, 27);
    ev.has_dev_id = false;
    tu_run("rm cfs/target/core/user_5300/one/attrib/nl_reply_supported");
    r = handle(&ev);
    assert_false(r.send);
    assert_int_equal(r.status, 0);
    kdev_drop(&d1);
    kdev_drop(&d10);
}

/* ---- RECONFIG ---- */

static void test_reconfig(void **state)
{
    (void)state;
    struct kdev d;
    kdev_make(&d, 4, "rc", cfg_a);
    cfs_attr("rc", "attrib/emulate_write_cache", "1");
    struct tcmu_nl_event ev = ev_make(TCMU_CMD_ADDED_DEVICE, "rc", cfg_a, 4, 30);
    assert_int_equal(handle(&ev).status, 0);
    ready(&d);
    assert_int_equal(wce(&d), 1);
    /* Write cache off: MODE PARAMETERS CHANGED, then WCE 0. */
    ev = ev_make(TCMU_CMD_RECONFIG_DEVICE, "rc", cfg_a, 4, 30);
    ev.has_wc = true;
    ev.wc = false;
    struct tcmu_reply r = handle(&ev);
    assert_true(r.send);
    assert_int_equal(r.cmd, TCMU_CMD_RECONFIG_DEVICE_DONE);
    assert_int_equal(r.status, 0);
    uint8_t tur[6] = { 0 };
    sense_is(run(&d, tur, 6, 0, NULL), 0x6, 0x2a, 0x01);
    assert_int_equal(wce(&d), 0);
    /* A new image. */
    ev = ev_make(TCMU_CMD_RECONFIG_DEVICE, "rc", cfg_a, 4, 30);
    ev.has_cfg = true;
    snprintf(ev.cfg, sizeof(ev.cfg), "%s", cfg_b);
    assert_int_equal(handle(&ev).status, 0);
    sense_is(run(&d, tur, 6, 0, NULL), 0x6, 0x29, 0x00);
    uint64_t blocks;
    uint32_t bs;
    capacity(&d, &blocks, &bs);
    assert_int_equal(blocks * bs, 32 << 20);
    uint8_t rd[10] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0 }, *p;
    assert_int_equal(run(&d, rd, 10, 512, &p)->status, 0);
    assert_int_equal(p[0], 0x22);
    /* Refused: another handler, a missing image (b stays served). */
    snprintf(ev.cfg, sizeof(ev.cfg), "file//srv/x");
    ev.device[0] = '\0';
    tcmu_pathf(ev.device, sizeof(ev.device), "tcm-user/5300/rc/%s", cfg_b);
    assert_int_equal(handle(&ev).status, -EINVAL);
    snprintf(ev.cfg, sizeof(ev.cfg), "scuse/qcow2@%s", tu_path("gone.qcow2"));
    assert_int_equal(handle(&ev).status, -ENOENT);
    ready(&d);
    assert_int_equal(run(&d, rd, 10, 512, &p)->status, 0);
    assert_int_equal(p[0], 0x22);
    /* RECONFIG of a scuse device that is not served. */
    ev = ev_make(TCMU_CMD_RECONFIG_DEVICE, "other", cfg_a, 9, 31);
    ev.has_wc = true;
    assert_int_equal(handle(&ev).status, -ENODEV);
    kdev_drop(&d);
}

/* A raw image grown (by truncate: qemu-img resize respects the write
 * lock scuse holds): the new dev_size is accepted, the initiator told the
 * capacity changed; a size the image does not have is refused. */
static void test_resize(void **state)
{
    (void)state;
    struct kdev d;
    kdev_make(&d, 6, "rs", cfg_r);
    struct tcmu_nl_event ev = ev_make(TCMU_CMD_ADDED_DEVICE, "rs", cfg_r, 6, 40);
    assert_int_equal(handle(&ev).status, 0);
    ready(&d);
    assert_int_not_equal(tu_sh("qemu-img resize -q -f raw r.raw 12M"), 0);
    tu_run("truncate -s 12M r.raw");
    ev = ev_make(TCMU_CMD_RECONFIG_DEVICE, "rs", cfg_r, 6, 40);
    ev.has_size = true;
    ev.size = 12 << 20;
    assert_int_equal(handle(&ev).status, 0);
    uint8_t tur[6] = { 0 };
    sense_is(run(&d, tur, 6, 0, NULL), 0x6, 0x2a, 0x09);
    uint64_t blocks;
    uint32_t bs;
    capacity(&d, &blocks, &bs);
    assert_int_equal(blocks * bs, 12 << 20);
    ev.size = 20 << 20;
    assert_int_equal(handle(&ev).status, -EINVAL);
    capacity(&d, &blocks, &bs);
    assert_int_equal(blocks * bs, 12 << 20);
    kdev_drop(&d);
}

/* ---- REMOVED ---- */

static void test_removed(void **state)
{
    (void)state;
    struct kdev d;
    kdev_make(&d, 7, "rm", cfg_a);
    struct tcmu_nl_event ev = ev_make(TCMU_CMD_ADDED_DEVICE, "rm", cfg_a, 7, 50);
    assert_int_equal(handle(&ev).status, 0);
    ev = ev_make(TCMU_CMD_REMOVED_DEVICE, "rm", cfg_a, 7, 50);
    struct tcmu_reply r = handle(&ev);
    assert_true(r.send);
    assert_int_equal(r.cmd, TCMU_CMD_REMOVED_DEVICE_DONE);
    assert_int_equal(r.status, 0);
    assert_null(served(7));
    /* Again, or a scuse device never served: answered all the same. */
    r = handle(&ev);
    assert_true(r.send);
    assert_int_equal(r.status, 0);
    /* REMOVED comes from the rmdir of the device, with its directories
     * locked: nothing below them may be looked up (a FIFO stands in for
     * an attribute whose lookup would wait forever; alarm() catches it). */
    tu_run("mkdir -p cfs/target/core/user_5300/gone/attrib && "
           "mkfifo cfs/target/core/user_5300/gone/attrib/nl_reply_supported");
    ev = ev_make(TCMU_CMD_REMOVED_DEVICE, "gone", cfg_a, 8, 51);
    alarm(20);
    r = handle(&ev);
    alarm(0);
    assert_true(r.send);
    assert_int_equal(r.status, 0);
    /* The image is free again: qemu-img can take its write lock. */
    tu_run("qemu-io -c 'write -P 0x33 0 512' a.qcow2");
    kdev_drop(&d);
}

/* ---- start-up ---- */

static void test_scan(void **state)
{
    (void)state;
    struct kdev a, m, f;
    char missing[700];
    snprintf(missing, sizeof(missing), "scuse/qcow2@%s", tu_path("nope.qcow2"));
    kdev_make(&a, 1, "a", cfg_a);
    kdev_make(&m, 2, "m", missing);
    kdev_make(&f, 3, "f", "file//srv/f.img");
    tcmu_daemon_scan(dm);
    assert_int_equal(dm->n_served, 2);
    assert_non_null(served(1));
    assert_non_null(served(2));
    assert_null(served(3));
    /* Rings of scuse's devices were reset (the last write unblocks). */
    char buf[16];
    assert_true(tcmu_read_line(tu_path("cfs/target/core/user_5300/a/action/reset_ring"), buf,
                               sizeof(buf)) > 0 && !strcmp(buf, "1"));
    assert_true(tcmu_read_line(tu_path("cfs/target/core/user_5300/a/action/block_dev"), buf,
                               sizeof(buf)) > 0 && !strcmp(buf, "0"));
    assert_true(access(tu_path("cfs/target/core/user_5300/f/action/reset_ring"), F_OK) < 0);
    /* Without its image, a device answers NOT READY, MEDIUM NOT PRESENT. */
    uint8_t tur[6] = { 0 };
    sense_is(run(&m, tur, 6, 0, NULL), 0x2, 0x3a, 0x00);
    assert_int_equal(run(&a, tur, 6, 0, NULL)->status, 0);
    /* A rescan after lost events: a vanished device is dropped, a new one served. */
    kdev_drop(&m);
    struct kdev b;
    kdev_make(&b, 4, "b", cfg_b);
    tcmu_daemon_scan(dm);
    assert_null(served(2));
    assert_non_null(served(4));
    assert_non_null(served(1));
    assert_int_equal(dm->n_served, 2);
    kdev_drop(&a);
    kdev_drop(&f);
    kdev_drop(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_added, per_test, per_test_done),
        cmocka_unit_test_setup_teardown(test_added_refusals, per_test, per_test_done),
        cmocka_unit_test_setup_teardown(test_reconfig, per_test, per_test_done),
        cmocka_unit_test_setup_teardown(test_resize, per_test, per_test_done),
        cmocka_unit_test_setup_teardown(test_removed, per_test, per_test_done),
        cmocka_unit_test_setup_teardown(test_scan, per_test, per_test_done),
    };
    return cmocka_run_group_tests(tests, setup, tu_teardown);
}
