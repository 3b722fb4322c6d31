/* The TCMU daemon across a restart and as a whole: a previous daemon's
 * commands left on the ring are never run (the ring is reset, through
 * configfs, before it is mapped), and tcmu_daemon_run (no netlink; the
 * file standing in for /dev/uioN cannot be polled, so the test wakes the
 * loop as the kernel's UIO event would) answers what comes next until
 * another thread stops it. Signals: through a signalfd in the loop,
 * SIGHUP serves a device that appeared without an event, SIGTERM stops
 * the loop, and the image is flushed and closed after it.
 * Helpers: test_tcmu_daemon_env.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_tcmu_daemon_env.h"
#include "util/daemon_sig.h"

/* ---- a restart: the previous daemon's commands, the reset, the loop ---- */

/* The kernel's side of action/reset_ring (tcmu_reset_ring: commands on
 * the ring completed with BUSY, cmd_head and cmd_tail back to 0), done
 * deterministically: once block_dev=1 was written, the ring is zeroed,
 * then reset_ring (a FIFO here) is opened for reading, which is what the
 * daemon's write waits for. A daemon that read the ring before resetting
 * it would have seen the old tail. */
struct resetter {
    struct kdev *d;
    const char *dev;                /* its configfs name */
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
            char rel[128];
            snprintf(rel, sizeof(rel), "cfs/target/core/user_5300/%s/action/reset_ring", r->dev);
            int fd = open(tu_path(rel), O_RDONLY);
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
    struct tcmu_daemon *dm;
    int rc;
    struct scuse_err err;
};

static void *run_main(void *arg)
{
    struct run_arg *a = arg;
    a->rc = tcmu_daemon_run(a->dm, &a->err);
    return NULL;
}

static struct tcmu_daemon *daemon_make(int sig_fd)
{
    struct tcmu_daemon_config cfg = { .configfs = tu_path("cfs"), .sysfs = tu_path("sys"),
                                      .dev_dir = tu_path("dev"), .workers = 2,
                                      .no_netlink = true, .sig_fd = sig_fd };
    struct tcmu_daemon *d;
    struct scuse_err err = { 0 };
    if (tcmu_daemon_create(&cfg, &d, &err) < 0)
        fail_msg("daemon: %s", err.msg);
    return d;
}

/* Wait until the fake kernel has n more completions than before. */
static void reap_until(struct kdev *d, uint32_t n)
{
    for (int i = 0; d->k->reaped < n; i++) {
        if (i > 10000)
            fail_msg("the daemon answered %u of %u commands", d->k->reaped, n);
        fk_reap(d->k);
        usleep(1000);
    }
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
    struct resetter r = { .d = &d, .dev = "re", .ifd = inotify_init1(0) };
    assert_true(inotify_add_watch(r.ifd, tu_path("cfs/target/core/user_5300/re/action"),
                                  IN_CLOSE_WRITE) >= 0);
    pthread_create(&r.t, NULL, resetter_main, &r);
    struct run_arg *a = calloc(1, sizeof(*a));
    a->dm = daemon_make(-1);
    pthread_t t;
    pthread_create(&t, NULL, run_main, a);
    pthread_join(r.t, NULL);
    close(r.ifd);
    assert_int_equal(r.resets, 1);
    /* New commands from 0; the file-backed device is pumped when the
     * loop is woken (the kernel's UIO event for a real one). */
    uint16_t ids[6];
    for (int i = 0; i < 5; i++)
        ids[i] = fk_cmd(d.k, tur, 6, NULL, NULL, 0);
    uint64_t off = d.k->data_off, len = 4096;
    uint8_t rd[10] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0 };
    ids[5] = fk_cmd(d.k, rd, 10, &off, &len, 1);
    tcmu_daemon_wake(a->dm);
    reap_until(&d, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(d.k->done[ids[i]].status, 0);
    assert_int_equal(d.k->map[off], 0x11);
    /* Stopped from another thread: the loop returns without a timeout. */
    tcmu_daemon_stop(a->dm);
    pthread_join(t, NULL);
    if (a->rc != 0)
        fail_msg("tcmu_daemon_run: %s", a->err.msg);
    assert_int_equal(tcmu_daemon_destroy(a->dm), 0);
    free(a);
    kdev_drop(&d);
    tu_run("qemu-io -r -c 'read -P 0 %d 4096' a.qcow2 > stale.out; cat stale.out; "
           "! grep -q 'verification failed' stale.out && grep -q 'read 4096/4096' stale.out",
           1000 * 512);
}

/* The daemon's signals through a signalfd in its loop: SIGHUP looks for
 * devices again (one made after start-up, without an event, is served),
 * SIGTERM stops the loop; destroying the daemon then flushes the image:
 * a write into an unallocated cluster is in the file without a
 * SYNCHRONIZE CACHE. The signals are sent to the process: every thread
 * blocks them (daemon_sig_open before any thread starts), so only the
 * signalfd takes them. */
static void test_signals(void **state)
{
    (void)state;
    tcmu_daemon_destroy(dm); /* its workers did not block the signals */
    dm = NULL;
    int sfd = daemon_sig_open();
    assert_true(sfd >= 0);
    struct run_arg *a = calloc(1, sizeof(*a));
    a->dm = daemon_make(sfd);
    pthread_t t;
    pthread_create(&t, NULL, run_main, a);
    /* A device that appears while the daemon runs, with no event. */
    struct kdev d;
    kdev_make(&d, 9, "hup", cfg_a);
    tu_run("mkfifo cfs/target/core/user_5300/hup/action/reset_ring");
    struct resetter r = { .d = &d, .dev = "hup", .ifd = inotify_init1(0) };
    assert_true(inotify_add_watch(r.ifd, tu_path("cfs/target/core/user_5300/hup/action"),
                                  IN_CLOSE_WRITE) >= 0);
    pthread_create(&r.t, NULL, resetter_main, &r);
    assert_int_equal(kill(getpid(), SIGHUP), 0);
    pthread_join(r.t, NULL); /* the rescan found it and reset its ring */
    close(r.ifd);
    assert_int_equal(r.resets, 1);
    /* WRITE(10) of 0x77 at 1 MiB (unallocated in a.qcow2). */
    uint64_t off = d.k->data_off, len = 4096;
    memset(d.k->map + off, 0x77, len);
    uint8_t wr[10] = { 0x2a, 0, 0, 0, 0x08, 0, 0, 0, 8, 0 };
    uint16_t id = fk_cmd(d.k, wr, 10, &off, &len, 1);
    tcmu_daemon_wake(a->dm);
    reap_until(&d, 1);
    assert_int_equal(d.k->done[id].status, 0);
    assert_int_equal(kill(getpid(), SIGTERM), 0);
    pthread_join(t, NULL);
    if (a->rc != 0)
        fail_msg("tcmu_daemon_run: %s", a->err.msg);
    assert_int_equal(tcmu_daemon_destroy(a->dm), 0);
    close(sfd);
    free(a);
    kdev_drop(&d);
    tu_run("qemu-img check -q a.qcow2 && qemu-io -r -c 'read -P 0x77 1M 4k' a.qcow2 > hup.out "
           "&& ! grep -q 'verification failed' hup.out");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_restart_and_run, per_test, per_test_done),
        cmocka_unit_test_setup_teardown(test_signals, per_test, per_test_done),
    };
    return cmocka_run_group_tests(tests, setup, tu_teardown);
}
