/* The TCMU daemon (`scuse tcmu serve`, and `scuse serve --tcmu`): serves
 * every TCMU device whose dev_config names scuse, through one dispatcher.
 *
 * At start-up it joins the TCM-USER netlink family (and tells the kernel
 * it replies, SET_FEATURES), then finds the devices that already exist
 * in sysfs and resets their rings (commands left by a previous daemon
 * complete with BUSY, so initiators retry). From then on netlink events
 * add, remove and reconfigure devices, each answered with its *_DONE
 * reply when the kernel waits for one. One thread runs the event loop
 * (epoll over the UIO devices and the netlink socket); the dispatcher's
 * workers run the commands and complete them into the rings. */
#ifndef SCUSE_TCMU_DAEMON_H
#define SCUSE_TCMU_DAEMON_H

#include <signal.h>
#include <stdbool.h>

#include "util/err.h"

struct tcmu_daemon_config {
    const char *configfs;           /* NULL: /sys/kernel/config */
    const char *sysfs;              /* NULL: /sys */
    const char *dev_dir;            /* NULL: /dev */
    unsigned workers;               /* dispatcher workers, 0: the dispatcher's choice */
    bool no_netlink;                /* serve what sysfs shows, take no events (tests) */
};

/* Run until *stop becomes non-zero (a signal handler sets it). Returns 0,
 * or a negative errno with err saying why it could not start. */
int tcmu_daemon_run(const struct tcmu_daemon_config *cfg, volatile sig_atomic_t *stop,
                    struct scuse_err *err);

#endif
