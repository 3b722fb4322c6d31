/* The TCMU daemon: events, the start-up scan, and the event loop (see
 * daemon.h); one served device is served.c. */
#define _GNU_SOURCE
#include "tcmu/daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "scsi/dispatch.h"
#include "tcmu/configfs.h"
#include "tcmu/daemon_int.h"
#include "tcmu/uapi.h"
#include "util/log.h"

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

#define TICK_MS 500

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
    dm->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (dm->epfd < 0) {
        int e = errno;
        free(dm);
        return err_set(err, -e, "epoll: %s", strerror(e));
    }
    struct scsi_disp_config dc = { .workers = cfg->workers };
    int r = scsi_disp_create(&dc, &dm->disp, err);
    if (r < 0) {
        close(dm->epfd);
        free(dm);
        return r;
    }
    *out = dm;
    return 0;
}

void tcmu_daemon_destroy(struct tcmu_daemon *dm)
{
    if (!dm)
        return;
    while (dm->served)
        tcmu_served_close(dm->served);
    scsi_disp_destroy(dm->disp);
    if (dm->have_nl)
        tcmu_nl_close(&dm->nl);
    close(dm->epfd);
    free(dm);
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
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    if (epoll_ctl(dm->epfd, EPOLL_CTL_ADD, tcmu_nl_fd(&dm->nl), &ev) < 0)
        return err_set(err, -errno, "epoll: %s", strerror(errno));
    /* From now on the kernel waits for our replies (for devices whose
     * nl_reply_supported allows it); events queued before the scan below
     * are answered after it. */
    if (tcmu_nl_send(&dm->nl, tcmu_nl_set_features(dm->nl.family)) < 0)
        return err_set(err, -EIO, "netlink: SET_FEATURES could not be sent");
    return 0;
}

int tcmu_daemon_run(const struct tcmu_daemon_config *cfg, volatile sig_atomic_t *stop,
                    struct scuse_err *err)
{
    struct tcmu_daemon *dm;
    int r = tcmu_daemon_create(cfg, &dm, err);
    if (r < 0)
        return r;
    if (!cfg->no_netlink && (r = start_netlink(dm, err)) < 0) {
        tcmu_daemon_destroy(dm);
        return r;
    }
    /* Writeback through a device this process serves must not wait on
     * this process's own allocations (tcm_loop on the same host). */
    if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) < 0)
        log_debug("tcmu: PR_SET_IO_FLUSHER: %s", strerror(errno));
    tcmu_daemon_scan(dm);
    log_info("tcmu: serving %u devices; %s", dm->n_served,
             dm->have_nl ? "waiting for netlink events" : "no netlink events");
    struct epoll_event evs[64];
    /* Set by a signal handler, or by another thread (tests, an embedder). */
    while (!__atomic_load_n(stop, __ATOMIC_RELAXED)) {
        int n = epoll_wait(dm->epfd, evs, 64, TICK_MS);
        if (n < 0 && errno != EINTR) {
            r = err_set(err, -errno, "epoll: %s", strerror(errno));
            break;
        }
        if (n <= 0) {
            tcmu_daemon_pump_all(dm); /* nothing lost waits for an event */
            continue;
        }
        for (int i = 0; i < n; i++) {
            struct tcmu_served *s = evs[i].data.ptr;
            if (s) {
                tcmu_uio_ack(s->fd);
                tcmu_served_pump(s);
                continue;
            }
            /* A device a netlink event removed may be in evs: handle the
             * socket after the devices of this batch. */
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr)
                continue;
            if (tcmu_nl_recv(&dm->nl) == -ENOBUFS) {
                log_warn("tcmu: netlink events were lost; rescanning the devices");
                tcmu_daemon_scan(dm);
            }
        }
    }
    tcmu_daemon_destroy(dm);
    return r;
}
