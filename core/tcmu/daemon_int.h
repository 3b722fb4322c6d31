/* The daemon's insides (daemon.c: events, start-up scan, the loop;
 * served.c: one device). The unit tests drive these directly, with
 * sysfs, configfs and /dev trees of their own and no netlink socket. */
#ifndef SCUSE_TCMU_DAEMON_INT_H
#define SCUSE_TCMU_DAEMON_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "scsi/scsi.h"
#include "tcmu/config.h"
#include "tcmu/daemon.h"
#include "tcmu/dev.h"
#include "tcmu/netlink.h"
#include "tcmu/uio.h"

struct tcmu_daemon;

/* A device scuse serves. */
struct tcmu_served {
    struct tcmu_daemon *dm;
    struct tcmu_uio_dev uio;        /* minor, UIO name (parsed), map size */
    struct tcmu_image_cfg img;      /* what dev_config names */
    bool kernel_waits;              /* the kernel waits for *_DONE replies for it */
    int fd;
    void *map;
    struct blk_node *bs;            /* NULL: the image could not be opened */
    struct scsi_lun *lun;
    struct scsi_lun_config lcfg;
    struct tcmu_dev dev;
    bool ring_up;                   /* dev initialised */
    uint64_t last_recovery_ms;      /* CLOCK_MONOTONIC of the last ring reset, 0: none */
    uint64_t retry_ms;              /* pump again at this time (a slot allocation failed,
                                       a reset waits its turn), 0: only on an event */
    char label[TCMU_NAME_MAX + 48]; /* "user_1/vm1 (uio3)" for log lines */
    struct tcmu_served *next;
};

struct tcmu_daemon {
    char configfs[PATH_MAX], sysfs[PATH_MAX], dev_dir[PATH_MAX];
    struct scsi_disp *disp;
    struct tcmu_nl nl;
    bool have_nl;
    bool no_netlink;
    int epfd;
    int sig_fd;                     /* the caller's signalfd, or -1 */
    tcmu_domain_disk_fn domain_disk;
    int wake_fd;                    /* eventfd: tcmu_daemon_stop / tcmu_daemon_wake */
    bool stop;                      /* set by tcmu_daemon_stop (atomic) */
    struct tcmu_served *served;
    unsigned n_served;
};

/* What to tell the kernel after an event. */
struct tcmu_reply {
    bool send;
    uint8_t cmd;                    /* TCMU_CMD_*_DONE */
    uint32_t dev_id;
    int32_t status;                 /* 0 or a negative errno */
};

/* daemon.c */
/* Serve the scuse devices sysfs shows that are not served yet (their
 * rings reset first), and stop serving those that are gone. */
void tcmu_daemon_scan(struct tcmu_daemon *dm);
/* Handle one event; *reply says whether and what to answer. */
void tcmu_daemon_event(struct tcmu_daemon *dm, const struct tcmu_nl_event *ev,
                       struct tcmu_reply *reply);
/* The device served at this minor whose UIO name has this HBA and name. */
struct tcmu_served *tcmu_daemon_find(struct tcmu_daemon *dm, unsigned minor,
                                     const struct tcmu_uio_name *n);
/* Pump every device. */
void tcmu_daemon_pump_all(struct tcmu_daemon *dm);
/* Now, in CLOCK_MONOTONIC milliseconds (never 0). */
uint64_t tcmu_now_ms(void);

/* served.c */
/* Serve the device u. Without the image (missing, unreadable), fails
 * when medium_required, else serves it without medium (NOT READY). With
 * reset (a device found at start-up), what an earlier daemon left on the
 * ring is completed by the kernel with BUSY before scuse reads the ring. */
int tcmu_served_open(struct tcmu_daemon *dm, const struct tcmu_uio_dev *u,
                     bool medium_required, bool reset, struct tcmu_served **out,
                     struct scuse_err *err);
/* Drain, flush and close s's image, stop serving it. Returns 0, or the
 * flush's negative errno (logged). */
int tcmu_served_close(struct tcmu_served *s);
/* A RECONFIG_DEVICE event for s: new size, new config, or write cache. */
int tcmu_served_reconfig(struct tcmu_served *s, const struct tcmu_nl_event *ev,
                         struct scuse_err *err);
/* Pump s; a broken ring is reset once its commands have drained. Sets
 * s->retry_ms when s must be pumped again without an event. */
void tcmu_served_pump(struct tcmu_served *s);

#endif
