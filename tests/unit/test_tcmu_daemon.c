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
 * dropped). */
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
#include <poll.h>
#include <pthread.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "tcmu/daemon_int.h"
#include "tcmu/fsutil.h"
#include "tcmu/uapi.h"
#include "test_tcmu_fake.h"
#include "testutil.h"

#define RING (64 * 1024)
#define DATA (1 << 20)
#define CAPS (TCMU_MAILBOX_FLAG_CAP_OOOC | TCMU_MAILBOX_FLAG_CAP_READ_LEN | \
              TCMU_MAILBOX_FLAG_CAP_TMR)

static struct tcmu_daemon *dm;

/* A device the "kernel" made: sysfs entry, configfs attributes, and the
 * mapping behind /dev/uio<minor>, laid out and kept by the test. */
struct kdev {
    unsigned minor;
    struct fk *k;
    void *map;
    uint64_t size;
};

static void cfs_attr(const char *dev, const char *attr, const char *value)
{
    tu_run("mkdir -p \"$(dirname cfs/target/core/user_5300/%s/%s)\" && "
           "printf '%%s\\n' '%s' > cfs/target/core/user_5300/%s/%s", dev, attr, value, dev, attr);
}

static void kdev_make(struct kdev *d, unsigned minor, const char *dev, const char *config)
{
    d->minor = minor;
    d->size = fk_map_size(RING, DATA);
    tu_run("mkdir -p sys/class/uio/uio%u/maps/map0 dev && "
           "printf 'tcm-user/5300/%s/%s\\n' > sys/class/uio/uio%u/name && "
           "printf '0x%lx\\n' > sys/class/uio/uio%u/maps/map0/size && "
           "rm -f dev/uio%u && truncate -s %lu dev/uio%u", minor, dev, config, minor,
           (unsigned long)d->size, minor, minor, (unsigned long)d->size, minor);
    cfs_attr(dev, "attrib/hw_block_size", "512");
    tu_run("mkdir -p cfs/target/core/user_5300/%s/action", dev); /* a configfs default group */
    char path[600];
    snprintf(path, sizeof(path), "%s/uio%u", tu_path("dev"), minor);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    d->map = mmap(NULL, d->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(d->map != MAP_FAILED);
    close(fd);
    d->k = fk_new_at(d->map, RING, DATA, CAPS);
}

static void kdev_drop(struct kdev *d)
{
    fk_free(d->k);
    munmap(d->map, d->size);
    tu_run("rm -rf sys/class/uio/uio%u dev/uio%u", d->minor, d->minor);
}

static struct tcmu_nl_event ev_make(uint8_t cmd, const char *dev, const char *config,
                                    unsigned minor, uint32_t dev_id)
{
    struct tcmu_nl_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.cmd = cmd;
    if (tcmu_pathf(ev.device, sizeof(ev.device), "tcm-user/5300/%s/%s", dev, config) < 0)
        fail_msg("event name too long");
    ev.minor = minor;
    ev.has_dev_id = true;
    ev.dev_id = dev_id;
    return ev;
}

static struct tcmu_reply handle(const struct tcmu_nl_event *ev)
{
    struct tcmu_reply r;
    tcmu_daemon_event(dm, ev, &r);
    return r;
}

static struct tcmu_served *served(unsigned minor)
{
    for (struct tcmu_served *s = dm->served; s; s = s->next)
        if (s->uio.minor == minor)
            return s;
    return NULL;
}

/* Put a command on d's ring, let the daemon pump, wait for the answer.
 * The data buffer (len bytes) is at the data area's start. */
static struct fk_done *run(struct kdev *d, const uint8_t *cdb, unsigned cdb_len, uint64_t len,
                           uint8_t **data)
{
    uint64_t off = d->k->data_off;
    uint16_t id = fk_cmd(d->k, cdb, cdb_len, &off, &len, len ? 1 : 0);
    assert_int_not_equal(id, 0);
    tcmu_daemon_pump_all(dm);
    for (int i = 0; d->k->done[id].count == 0; i++) {
        if (i > 10000)
            fail_msg("no completion for cmd_id %u", id);
        fk_reap(d->k);
        if (!d->k->done[id].count)
            usleep(1000);
    }
    if (data)
        *data = d->k->map + off;
    return &d->k->done[id];
}

static void sense_is(const struct fk_done *r, int key, int asc, int ascq)
{
    assert_int_equal(r->status, 0x02);
    int k, a, q;
    fk_sense(r, &k, &a, &q);
    if (k != key || a != asc || q != ascq)
        fail_msg("sense %x/%02x/%02x, expected %x/%02x/%02x", k, a, q, key, asc, ascq);
}

/* READ CAPACITY(16): blocks and block size. */
static void capacity(struct kdev *d, uint64_t *blocks, uint32_t *bs)
{
    uint8_t cdb[16] = { 0x9e, 0x10, [13] = 32 }, *p;
    struct fk_done *r = run(d, cdb, 16, 32, &p);
    assert_int_equal(r->status, 0);
    uint64_t last = 0;
    for (int i = 0; i < 8; i++)
        last = last << 8 | p[i];
    *blocks = last + 1;
    *bs = (uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 | (uint32_t)p[10] << 8 | p[11];
}

/* WCE of the caching mode page (MODE SENSE(6), page 08h). */
static int wce(struct kdev *d)
{
    uint8_t cdb[6] = { 0x1a, 0x08, 0x08, 0, 64, 0 }, *p;
    struct fk_done *r = run(d, cdb, 6, 64, &p);
    assert_int_equal(r->status, 0);
    const uint8_t *page = p + 4 + p[3];
    assert_int_equal(page[0] & 0x3f, 0x08);
    return (page[2] >> 2) & 1;
}

/* A TEST UNIT READY that must come back GOOD (eats unit attentions). */
static void ready(struct kdev *d)
{
    uint8_t tur[6] = { 0 };
    for (int i = 0; i < 4; i++)
        if (run(d, tur, 6, 0, NULL)->status == 0)
            return;
    fail_msg("the LUN never became ready");
}

static void images(void)
{
    tu_run("rm -f a.qcow2 b.qcow2 r.raw && "
           "qemu-img create -q -f qcow2 a.qcow2 16M && qemu-io -c 'write -P 0x11 0 64k' a.qcow2 && "
           "qemu-img create -q -f qcow2 b.qcow2 32M && qemu-io -c 'write -P 0x22 0 64k' b.qcow2 && "
           "qemu-img create -q -f raw r.raw 8M");
}

static char cfg_a[256], cfg_b[256], cfg_r[256];

static int setup(void **state)
{
    (void)state;
    if (tu_qemu_setup("tcmu-daemon", NULL, 0) < 0)
        return -1;
    if (!tu_dir()[0])
        return 0;
    snprintf(cfg_a, sizeof(cfg_a), "scuse/qcow2@%s", tu_path("a.qcow2"));
    snprintf(cfg_b, sizeof(cfg_b), "scuse/qcow2@%s", tu_path("b.qcow2"));
    snprintf(cfg_r, sizeof(cfg_r), "scuse/raw@%s", tu_path("r.raw"));
    return 0;
}

static int per_test(void **state)
{
    if (tu_need_qemu(state))
        return 0;
    tu_run("rm -rf sys cfs dev && mkdir -p sys/class/uio cfs/target/core dev");
    images();
    struct tcmu_daemon_config cfg = { .configfs = tu_path("cfs"), .sysfs = tu_path("sys"),
                                      .dev_dir = tu_path("dev"), .workers = 2,
                                      .no_netlink = true };
    struct scuse_err err = { 0 };
    if (tcmu_daemon_create(&cfg, &dm, &err) < 0)
        fail_msg("daemon: %s", err.msg);
    return 0;
}

static int per_test_done(void **state)
{
    (void)state;
    tcmu_daemon_destroy(dm);
    dm = NULL;
    return 0;
}

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

/* ---- a restart: the previous daemon's commands, the reset, the loop ---- */

/* The kernel's side of action/reset_ring (tcmu_reset_ring: commands on
 * the ring completed with BUSY, cmd_head and cmd_tail back to 0), done
 * deterministically: once block_dev=1 was written, the ring is zeroed,
 * then reset_ring (a FIFO here) is opened for reading, which is what the
 * daemon's write waits for. A daemon that read the ring before resetting
 * it would have seen the old tail. */
struct resetter {
    struct kdev *d;
    int ifd;
    int resets;
    pthread_t t;
};

static void *resetter_main(void *arg)
{
    struct resetter *r = arg;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        struct pollfd p = { r->ifd, POLLIN, 0 };
        if (poll(&p, 1, 10000) <= 0)
            return NULL;
        ssize_t len = read(r->ifd, buf, sizeof(buf));
        for (char *q = buf; len > 0 && q < buf + len;) {
            struct inotify_event *e = (struct inotify_event *)q;
            q += sizeof(*e) + e->len;
            if (!e->len || strcmp(e->name, "block_dev") != 0)
                continue;
            struct fk *k = r->d->k;
            __atomic_store_n(fk_head_p(k), 0, __ATOMIC_RELEASE);
            __atomic_store_n(fk_tail_p(k), 0, __ATOMIC_RELEASE);
            k->head = k->cleaned = 0;
            int fd = open(tu_path("cfs/target/core/user_5300/re/action/reset_ring"), O_RDONLY);
            char v[8];
            if (fd >= 0 && read(fd, v, sizeof(v)) > 0)
                r->resets++;
            if (fd >= 0)
                close(fd);
            return NULL;
        }
    }
}

struct run_arg {
    struct tcmu_daemon_config cfg;
    volatile sig_atomic_t stop;
    int rc;
    struct scuse_err err;
};

static void *run_main(void *arg)
{
    struct run_arg *a = arg;
    a->rc = tcmu_daemon_run(&a->cfg, &a->stop, &a->err);
    return NULL;
}

/* A previous daemon died with three commands parsed, one completed: the
 * ring is reset before scuse maps it, parsing starts at 0, and the whole
 * daemon (tcmu_daemon_run, no netlink) answers what comes next until it
 * is told to stop. */
static void test_restart_and_run(void **state)
{
    (void)state;
    tcmu_daemon_destroy(dm); /* this test runs its own */
    dm = NULL;
    struct kdev d;
    kdev_make(&d, 5, "re", cfg_a);
    /* What the old daemon left: three writes of 0x66 at LBA 1000.. that
     * must never reach the image (the kernel failed them with BUSY). */
    uint8_t tur[6] = { 0 }, wr[10] = { 0x2a, 0, 0, 0, 0x03, 0xe8, 0, 0, 8, 0 };
    uint64_t woff = d.k->data_off + 8192, wlen = 4096;
    memset(d.k->map + woff, 0x66, wlen);
    for (int i = 0; i < 3; i++)
        fk_cmd(d.k, wr, 10, &woff, &wlen, 1);
    __atomic_store_n(fk_tail_p(d.k), fk_cmd_size(1, 10), __ATOMIC_RELEASE);
    tu_run("mkfifo cfs/target/core/user_5300/re/action/reset_ring");
    struct resetter r = { .d = &d, .ifd = inotify_init1(0) };
    assert_true(inotify_add_watch(r.ifd, tu_path("cfs/target/core/user_5300/re/action"),
                                  IN_CLOSE_WRITE) >= 0);
    pthread_create(&r.t, NULL, resetter_main, &r);
    struct run_arg *a = calloc(1, sizeof(*a));
    a->cfg = (struct tcmu_daemon_config){ .configfs = tu_path("cfs"), .sysfs = tu_path("sys"),
                                          .dev_dir = tu_path("dev"), .workers = 2,
                                          .no_netlink = true };
    pthread_t t;
    pthread_create(&t, NULL, run_main, a);
    pthread_join(r.t, NULL);
    close(r.ifd);
    assert_int_equal(r.resets, 1);
    /* New commands from 0; the loop's tick pumps the file-backed device. */
    uint16_t ids[6];
    for (int i = 0; i < 5; i++)
        ids[i] = fk_cmd(d.k, tur, 6, NULL, NULL, 0);
    uint64_t off = d.k->data_off, len = 4096;
    uint8_t rd[10] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0 };
    ids[5] = fk_cmd(d.k, rd, 10, &off, &len, 1);
    for (int i = 0; d.k->reaped < 6; i++) {
        if (i > 10000)
            fail_msg("the daemon answered %u of 6 commands", d.k->reaped);
        fk_reap(d.k);
        usleep(1000);
    }
    for (int i = 0; i < 6; i++)
        assert_int_equal(d.k->done[ids[i]].status, 0);
    assert_int_equal(d.k->map[off], 0x11);
    a->stop = 1;
    pthread_join(t, NULL);
    if (a->rc != 0)
        fail_msg("tcmu_daemon_run: %s", a->err.msg);
    free(a);
    kdev_drop(&d);
    tu_run("qemu-io -r -c 'read -P 0 %d 4096' a.qcow2 > stale.out; cat stale.out; "
           "! grep -q 'verification failed' stale.out && grep -q 'read 4096/4096' stale.out",
           1000 * 512);
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
        cmocka_unit_test_setup_teardown(test_restart_and_run, per_test, per_test_done),
    };
    return cmocka_run_group_tests(tests, setup, tu_teardown);
}
