/* The TCMU daemon (`scuse tcmu serve`, and `scuse serve --tcmu`): serves
 * every TCMU device whose dev_config names scuse, through one dispatcher.
 *
 * At start-up it joins the TCM-USER netlink family (and tells the kernel
 * it replies, SET_FEATURES), then finds the devices that already exist
 * in sysfs and resets their rings (commands left by a previous daemon
 * complete with BUSY, so initiators retry). From then on netlink events
 * add, remove and reconfigure devices, each answered with its *_DONE
 * reply when the kernel waits for one. One thread runs the event loop
 * (epoll over the UIO devices, the netlink socket, the signalfd and a
 * wake eventfd, with no timeout unless a retry is due); the dispatcher's
 * workers run the commands and complete them into the rings. */
#ifndef SCUSE_TCMU_DAEMON_H
#define SCUSE_TCMU_DAEMON_H

#include <stdbool.h>

#include "blk/blk.h"
#include "scsi/scsi.h"
#include "util/err.h"

/* A device whose dev_config names a disk of a libvirt domain
 * ("scuse/domain=C.U@XML", config.h): the daemon asks its caller for the
 * disk's LUN settings and its image chain (opened), so core/tcmu reads no
 * XML. NULL: such devices are served without medium. */
typedef int (*tcmu_domain_disk_fn)(const char *xml, unsigned ctrl, unsigned unit,
                                   struct scsi_lun_config *cfg, struct blk_node **bs,
                                   struct scuse_err *err);

struct tcmu_daemon_config {
    const char *configfs;           /* NULL: /sys/kernel/config */
    const char *sysfs;              /* NULL: /sys */
    const char *dev_dir;            /* NULL: /dev */
    unsigned workers;               /* dispatcher workers, 0: the dispatcher's choice */
    bool no_netlink;                /* serve what sysfs shows, take no events (tests) */
    int sig_fd;                     /* a signalfd from daemon_sig_open() read by the loop
                                       (SIGTERM/SIGINT stop it, SIGHUP rescans the
                                       devices), or -1 */
    tcmu_domain_disk_fn domain_disk;
};

struct tcmu_daemon;

/* The daemon, before it serves anything (its dispatcher's workers start
 * here: block the signals first). */
int tcmu_daemon_create(const struct tcmu_daemon_config *cfg, struct tcmu_daemon **out,
                       struct scuse_err *err);
/* Serve until a stop (SIGTERM or SIGINT on sig_fd, or tcmu_daemon_stop)
 * or a failure of the loop itself. Returns 0, or a negative errno with
 * err saying why. Stopping drains no device: tcmu_daemon_destroy does. */
int tcmu_daemon_run(struct tcmu_daemon *dm, struct scuse_err *err);
/* Make tcmu_daemon_run return, from any thread (async-signal-safe). */
void tcmu_daemon_stop(struct tcmu_daemon *dm);
/* Pump every device now, from any thread: what a device's own event
 * does, for a stand-in of /dev/uioN that cannot be polled (tests). */
void tcmu_daemon_wake(struct tcmu_daemon *dm);
/* Every device's commands drained, its image flushed and closed.
 * Returns 0, or -EIO when an image could not be flushed (logged). */
int tcmu_daemon_destroy(struct tcmu_daemon *dm);

#endif
