/* The daemon tests' world (test_tcmu_daemon*.c): sysfs, configfs and
 * /dev trees in the scratch directory, a file standing in for each
 * /dev/uioN that the test maps as the kernel would and writes commands
 * into with the fake kernel of test_tcmu_fake.h, images made by
 * qemu-img, and a daemon without netlink (dm) per test. */
#ifndef TEST_TCMU_DAEMON_ENV_H
#define TEST_TCMU_DAEMON_ENV_H

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tcmu/daemon_int.h"
#include "tcmu/fsutil.h"
#include "tcmu/uapi.h"
#include "test_tcmu_fake.h"
#include "testutil.h"

#define RING (64 * 1024)
#define DATA (1 << 20)
#define CAPS (TCMU_MAILBOX_FLAG_CAP_OOOC | TCMU_MAILBOX_FLAG_CAP_READ_LEN | \
              TCMU_MAILBOX_FLAG_CAP_TMR)

static struct tcmu_daemon *dm __attribute__((unused));

/* A device the "kernel" made: sysfs entry, configfs attributes, and the
 * mapping behind /dev/uio<minor>, laid out and kept by the test. */
struct kdev {
    unsigned minor;
    struct fk *k;
    void *map;
    uint64_t size;
};

static inline void cfs_attr(const char *dev, const char *attr, const char *value)
{
    tu_run("mkdir -p \"$(dirname cfs/target/core/user_5300/%s/%s)\" && "
           "printf '%%s\\n' '%s' > cfs/target/core/user_5300/%s/%s", dev, attr, value, dev, attr);
}

static inline void kdev_make(struct kdev *d, unsigned minor, const char *dev,
                             const char *config)
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

static inline void kdev_drop(struct kdev *d)
{
    fk_free(d->k);
    munmap(d->map, d->size);
    tu_run("rm -rf sys/class/uio/uio%u dev/uio%u", d->minor, d->minor);
}

static inline struct tcmu_nl_event ev_make(uint8_t cmd, const char *dev, const char *config,
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

static inline struct tcmu_reply handle(const struct tcmu_nl_event *ev)
{
    struct tcmu_reply r;
    tcmu_daemon_event(dm, ev, &r);
    return r;
}

static inline struct tcmu_served *served(unsigned minor)
{
    for (struct tcmu_served *s = dm->served; s; s = s->next)
        if (s->uio.minor == minor)
            return s;
    return NULL;
}

/* Put a command on d's ring, let the daemon pump, wait for the answer.
 * The data buffer (len bytes) is at the data area's start. */
static inline struct fk_done *run(struct kdev *d, const uint8_t *cdb, unsigned cdb_len,
                                  uint64_t len, uint8_t **data)
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

static inline void sense_is(const struct fk_done *r, int key, int asc, int ascq)
{
    assert_int_equal(r->status, 0x02);
    int k, a, q;
    fk_sense(r, &k, &a, &q);
    if (k != key || a != asc || q != ascq)
        fail_msg("sense %x/%02x/%02x, expected %x/%02x/%02x", k, a, q, key, asc, ascq);
}

/* READ CAPACITY(16): blocks and block size. */
static inline void capacity(struct kdev *d, uint64_t *blocks, uint32_t *bs)
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
static inline int wce(struct kdev *d)
{
    uint8_t cdb[6] = { 0x1a, 0x08, 0x08, 0, 64, 0 }, *p;
    struct fk_done *r = run(d, cdb, 6, 64, &p);
    assert_int_equal(r->status, 0);
    const uint8_t *page = p + 4 + p[3];
    assert_int_equal(page[0] & 0x3f, 0x08);
    return (page[2] >> 2) & 1;
}

/* A TEST UNIT READY that must come back GOOD (eats unit attentions). */
static inline void ready(struct kdev *d)
{
    uint8_t tur[6] = { 0 };
    for (int i = 0; i < 4; i++)
        if (run(d, tur, 6, 0, NULL)->status == 0)
            return;
    fail_msg("the LUN never became ready");
}

static inline void images(void)
{
    tu_run("rm -f a.qcow2 b.qcow2 r.raw && "
           "qemu-img create -q -f qcow2 a.qcow2 16M && qemu-io -c 'write -P 0x11 0 64k' a.qcow2 && "
           "qemu-img create -q -f qcow2 b.qcow2 32M && qemu-io -c 'write -P 0x22 0 64k' b.qcow2 && "
           "qemu-img create -q -f raw r.raw 8M");
}

static char cfg_a[256] __attribute__((unused)), cfg_b[256] __attribute__((unused)),
    cfg_r[256] __attribute__((unused));

static inline int setup(void **state)
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

static inline int per_test(void **state)
{
    if (tu_need_qemu(state))
        return 0;
    tu_run("rm -rf sys cfs dev && mkdir -p sys/class/uio cfs/target/core dev");
    images();
    struct tcmu_daemon_config cfg = { .configfs = tu_path("cfs"), .sysfs = tu_path("sys"),
                                      .dev_dir = tu_path("dev"), .workers = 2,
                                      .no_netlink = true, .sig_fd = -1 };
    struct scuse_err err = { 0 };
    if (tcmu_daemon_create(&cfg, &dm, &err) < 0)
        fail_msg("daemon: %s", err.msg);
    return 0;
}

static inline int per_test_done(void **state)
{
    (void)state;
    tcmu_daemon_destroy(dm);
    dm = NULL;
    return 0;
}

#endif
