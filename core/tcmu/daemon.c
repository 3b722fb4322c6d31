/* The TCMU daemon: events, the start-up scan, and the event loop (see
 * daemon.h); one served device is served.c. */
#define _GNU_SOURCE
#include "tcmu/daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "scsi/dispatch.h"
#include "tcmu/configfs.h"
#include "tcmu/daemon_int.h"
#include "tcmu/uapi.h"
#include "util/daemon_sig.h"
#include "util/log.h"

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

/* What an epoll event is, besides a served device (its tcmu_served). */
static char tag_netlink, tag_wake, tag_signal;

uint64_t tcmu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + 1;
}

int tcmu_daemon_create(const struct tcmu_daemon_config *cfg, struct tcmu_daemon **out,
                       struct scuse_err *err)
{
    *out = NULL;
    struct tcmu_daemon *dm = calloc(1, sizeof(*dm));
    if (!dm)
        return err_set(err, -ENOMEM, "out of memory");
    snprintf(dm->configfs, sizeof(dm->configfs), "%s", cfg->configfs ? cfg->configfs
                                                                      : "/sys/kernel/config");
    snprintf(dm->sysfs, sizeof(dm->sysfs), "%s", cfg->sysfs ? cfg->sysfs : "/sys");
    snprintf(dm->dev_dir, sizeof(dm->dev_dir), "%s", cfg->dev_dir ? cfg->dev_dir : "/dev");
    dm->no_netlink = cfg->no_netlink;
    dm->sig_fd = cfg->sig_fd;
    dm->domain_disk = cfg->domain_disk;
    dm->epfd = epoll_create1(EPOLL_CLOEXEC);
    dm->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int r = 0;
    struct epoll_event wev = { .events = EPOLLIN, .data.ptr = &tag_wake };
    struct epoll_event sev = { .events = EPOLLIN, .data.ptr = &tag_signal };
    if (dm->epfd < 0 || dm->wake_fd < 0 ||
        epoll_ctl(dm->epfd, EPOLL_CTL_ADD, dm->wake_fd, &wev) < 0 ||
        (dm->sig_fd >= 0 && epoll_ctl(dm->epfd, EPOLL_CTL_ADD, dm->sig_fd, &sev) < 0))
        r = err_set(err, -errno, "epoll, eventfd: %s", strerror(errno));
    /* Writeback through a device this process serves must not wait on
     * this process's own allocations (tcm_loop on the same host). The
     * flag is per thread: set before the dispatcher's workers, which do
     * the I/O, inherit it. */
    if (r == 0 && prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) < 0)
        log_debug("tcmu: PR_SET_IO_FLUSHER: %s", strerror(errno));
    struct scsi_disp_config dc = { .workers = cfg->workers };
    if (r == 0)
        r = scsi_disp_create(&dc, &dm->disp, err);
    if (r < 0) {
        if (dm->epfd >= 0)
            close(dm->epfd);
        if (dm->wake_fd >= 0)
            close(dm->wake_fd);
        free(dm);
        return r;
    }
    *out = dm;
    return 0;
}

int tcmu_daemon_destroy(struct tcmu_daemon *dm)
{
    if (!dm)
        return 0;
    int r = 0;
    while (dm->served)
        if (tcmu_served_close(dm->served) < 0)
            r = -EIO;
    scsi_disp_destroy(dm->disp);
    if (dm->have_nl)
        tcmu_nl_close(&dm->nl);
    close(dm->epfd);
    close(dm->wake_fd);
    free(dm);
    return r;
}

static void wake(struct tcmu_daemon *dm)
{
    uint64_t one = 1;
    /* Only EAGAIN can fail it: the counter is already non-zero. */
    if (write(dm->wake_fd, &one, sizeof(one)) < 0)
        return;
}

void tcmu_daemon_stop(struct tcmu_daemon *dm)
{
    __atomic_store_n(&dm->stop, true, __ATOMIC_RELEASE);
    wake(dm);
}

void tcmu_daemon_wake(struct tcmu_daemon *dm)
{
    wake(dm);
}

struct tcmu_served *tcmu_daemon_find(struct tcmu_daemon *dm, unsigned minor,
                                     const struct tcmu_uio_name *n)
{
    /* The config part may have changed (RECONFIG); the device is its
     * minor, HBA and name. */
    for (struct tcmu_served *s = dm->served; s; s = s->next)
        if (s->uio.minor == minor && s->uio.name.hba == n->hba && !strcmp(s->uio.name.dev, n->dev))
            return s;
    return NULL;
}

/* Whether the kernel waits for a reply about a device scuse does not
 * serve: unless its nl_reply_supported says it does not. Never asked for
 * REMOVED_DEVICE: the kernel sends it from the rmdir of the device,
 * holding the directory locks a lookup below it would wait for, so the
 * answer is sent blind (a reply nobody waits for is only logged). */
static bool kernel_waits(struct tcmu_daemon *dm, uint8_t cmd, const struct tcmu_uio_name *n)
{
    if (cmd == TCMU_CMD_REMOVED_DEVICE)
        return true;
    char buf[32];
    long long v;
    return !(tcmu_cfs_dev_read(dm->configfs, n->hba, n->dev, "attrib/nl_reply_supported", buf,
                               sizeof(buf)) > 0 &&
             sscanf(buf, "%lld", &v) == 1 && v <= 0);
}

static int event_added(struct tcmu_daemon *dm, const struct tcmu_nl_event *ev,
                       struct scuse_err *err)
{
    struct tcmu_uio_dev u;
    int r = tcmu_uio_read(dm->sysfs, ev->minor, &u, err);
    if (r < 0)
        return r == -ENODEV ? err_set(err, r, "uio%u is not a TCMU device", ev->minor) : r;
    /* The whole name, so an event can never be matched to another device. */
    if (strcmp(u.uio_name, ev->device) != 0)
        return err_set(err, -ENODEV, "uio%u is '%s', the event names '%s'", ev->minor,
                       u.uio_name, ev->device);
    struct tcmu_served *s;
    return tcmu_served_open(dm, &u, true, false, &s, err);
}

void tcmu_daemon_event(struct tcmu_daemon *dm, const struct tcmu_nl_event *ev,
                       struct tcmu_reply *reply)
{
    memset(reply, 0, sizeof(*reply));
    struct tcmu_uio_name n;
    struct scuse_err err = { 0 };
    int r = tcmu_uio_parse_name(ev->device, &n, &err);
    if (r < 0) {
        if (r != -ENODEV)
            log_error("tcmu: netlink event: %s", err.msg);
        return;
    }
    struct tcmu_served *s = tcmu_daemon_find(dm, ev->minor, &n);
    struct tcmu_image_cfg img;
    int ours = s ? 1 : tcmu_config_parse(n.config, &img, &err);
    if (ours == 0)
        return; /* another daemon's device: its reply, not ours */
    reply->cmd = tcmu_nl_done_cmd(ev->cmd);
    reply->dev_id = ev->dev_id;
    reply->send = ev->has_dev_id && (s ? s->kernel_waits : kernel_waits(dm, ev->cmd, &n));
    switch (ev->cmd) {
    case TCMU_CMD_ADDED_DEVICE:
        if (s)
            r = 0; /* found by the start-up scan first */
        else if (ours < 0)
            r = ours;
        else
            r = event_added(dm, ev, &err);
        break;
    case TCMU_CMD_REMOVED_DEVICE:
        if (s)
            tcmu_served_close(s);
        r = 0;
        break;
    default:
        r = s ? tcmu_served_reconfig(s, ev, &err)
              : err_set(&err, -ENODEV, "%s is not served (its image could not be opened)",
                        ev->device);
        break;
    }
    reply->status = r;
    if (r < 0)
        log_error("tcmu: %s: %s", ev->device, err.msg);
}

void tcmu_daemon_scan(struct tcmu_daemon *dm)
{
    struct tcmu_uio_dev *v;
    size_t n;
    struct scuse_err err = { 0 };
    if (tcmu_uio_scan(dm->sysfs, &v, &n, &err) < 0) {
        log_error("tcmu: %s", err.msg);
        return;
    }
    /* Devices that went away while events were lost. */
    for (struct tcmu_served *s = dm->served, *next; s; s = next) {
        next = s->next;
        bool present = false;
        for (size_t i = 0; i < n && !present; i++)
            present = v[i].minor == s->uio.minor && v[i].name.hba == s->uio.name.hba &&
                      !strcmp(v[i].name.dev, s->uio.name.dev);
        if (!present)
            tcmu_served_close(s);
    }
    for (size_t i = 0; i < n; i++) {
        struct tcmu_image_cfg img;
        err_clear(&err);
        int r = tcmu_config_parse(v[i].name.config, &img, &err);
        if (r == 0 || tcmu_daemon_find(dm, v[i].minor, &v[i].name))
            continue;
        if (r < 0) {
            log_error("tcmu: uio%u: %s", v[i].minor, err.msg);
            continue;
        }
        /* Whatever a previous daemon left on the ring completes with
         * BUSY; the ring starts empty. */
        struct tcmu_served *s;
        if (tcmu_served_open(dm, &v[i], false, true, &s, &err) < 0)
            log_error("tcmu: uio%u: %s", v[i].minor, err.msg);
    }
    free(v);
}

void tcmu_daemon_pump_all(struct tcmu_daemon *dm)
{
    for (struct tcmu_served *s = dm->served; s; s = s->next)
        tcmu_served_pump(s);
}

/* epoll_wait's timeout: until the earliest retry a device asked for, or
 * none (-1): the loop then sleeps until an event. */
static int next_timeout(struct tcmu_daemon *dm)
{
    uint64_t first = 0;
    for (struct tcmu_served *s = dm->served; s; s = s->next)
        if (s->retry_ms && (!first || s->retry_ms < first))
            first = s->retry_ms;
    if (!first)
        return -1;
    uint64_t now = tcmu_now_ms();
    return first <= now ? 0 : first - now > 60000 ? 60000 : (int)(first - now);
}

/* Devices whose retry is due. */
static void pump_due(struct tcmu_daemon *dm)
{
    uint64_t now = tcmu_now_ms();
    for (struct tcmu_served *s = dm->served; s; s = s->next)
        if (s->retry_ms && s->retry_ms <= now)
            tcmu_served_pump(s);
}

/* ---- the loop ---- */

static void on_netlink(struct nlmsghdr *nlh, void *arg)
{
    struct tcmu_daemon *dm = arg;
    struct tcmu_nl_event ev;
    struct scuse_err err = { 0 };
    if (tcmu_nl_parse(nlh, dm->nl.family, &ev, &err) < 0) {
        log_warn("tcmu: %s", err.msg);
        return;
    }
    struct tcmu_reply reply;
    tcmu_daemon_event(dm, &ev, &reply);
    if (reply.send && tcmu_nl_send(&dm->nl, tcmu_nl_reply(dm->nl.family, reply.cmd,
                                                           reply.dev_id, reply.status)) < 0)
        log_error("tcmu: %s: the reply to the kernel could not be sent", ev.device);
}

static int start_netlink(struct tcmu_daemon *dm, struct scuse_err *err)
{
    int r = tcmu_nl_open(&dm->nl, on_netlink, dm, err);
    if (r < 0)
        return r;
    dm->have_nl = true;
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &tag_netlink };
    if (epoll_ctl(dm->epfd, EPOLL_CTL_ADD, tcmu_nl_fd(&dm->nl), &ev) < 0)
        return err_set(err, -errno, "epoll: %s", strerror(errno));
    /* From now on the kernel waits for our replies (for devices whose
     * nl_reply_supported allows it); events queued before the scan below
     * are answered after it. */
    if (tcmu_nl_send(&dm->nl, tcmu_nl_set_features(dm->nl.family)) < 0)
        return err_set(err, -EIO, "netlink: SET_FEATURES could not be sent");
    return 0;
}

/* The signalfd: false when the loop is to stop. */
static bool on_signals(struct tcmu_daemon *dm)
{
    const char *name;
    enum daemon_sig sig;
    bool go_on = true;
    while ((sig = daemon_sig_next(dm->sig_fd, &name)) != DAEMON_SIG_NONE) {
        if (sig == DAEMON_SIG_HUP) {
            log_info("tcmu: %s: looking for devices again", name);
            tcmu_daemon_scan(dm);
        } else {
            log_info("tcmu: %s: stopping", name);
            go_on = false;
        }
    }
    return go_on;
}

/* The wake eventfd: false when the loop is to stop. */
static bool on_wake(struct tcmu_daemon *dm)
{
    uint64_t v;
    if (read(dm->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_debug("tcmu: wake eventfd: %s", strerror(errno));
    if (__atomic_load_n(&dm->stop, __ATOMIC_ACQUIRE))
        return false;
    tcmu_daemon_pump_all(dm);
    return true;
}

int tcmu_daemon_run(struct tcmu_daemon *dm, struct scuse_err *err)
{
    int r;
    if (!dm->no_netlink && !dm->have_nl && (r = start_netlink(dm, err)) < 0)
        return r;
    tcmu_daemon_scan(dm);
    log_info("tcmu: serving %u devices; %s", dm->n_served,
             dm->have_nl ? "waiting for netlink events" : "no netlink events");
    struct epoll_event evs[64];
    bool go_on = true;
    r = 0;
    while (go_on) {
        int n = epoll_wait(dm->epfd, evs, 64, next_timeout(dm));
        if (n < 0 && errno != EINTR) {
            r = err_set(err, -errno, "epoll: %s", strerror(errno));
            break;
        }
        /* The devices of this batch first: a netlink event or a SIGHUP
         * rescan may remove a device that is in evs. */
        bool netlink = false, woken = false, signalled = false;
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &tag_signal) {
                signalled = true;
            } else if (p == &tag_wake) {
                woken = true;
            } else if (p == &tag_netlink) {
                netlink = true;
            } else {
                struct tcmu_served *s = p;
                tcmu_uio_ack(s->fd);
                tcmu_served_pump(s);
            }
        }
        if (woken && !on_wake(dm))
            go_on = false;
        if (signalled && !on_signals(dm))
            go_on = false;
        if (netlink && tcmu_nl_recv(&dm->nl) == -ENOBUFS) {
            log_warn("tcmu: netlink events were lost; rescanning the devices");
            tcmu_daemon_scan(dm);
        }
        pump_due(dm);
    }
    return r;
}
