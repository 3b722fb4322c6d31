/* The vhost-user-scsi daemon's state (cmd_serve.c), shared with its
 * control-socket commands (cmd_serve_ctl.c). */
#ifndef SCUSE_SERVE_INT_H
#define SCUSE_SERVE_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "blk/blk.h"
#include "scsi/scsi.h"
#include "virtio_scsi/vscsi.h"

struct ctl_server;

#define SERVE_MAX_LUNS 256

struct serve_lun {
    uint16_t id;
    char *spec;                     /* the --lun argument, for messages */
    char *file;
    char *fmt;
    char *items;                    /* the parsed copy of spec: opts.fmt points into it */
    struct blk_opts opts;           /* the format's own open options (l2-cache-size...) */
    bool readonly;
    unsigned open_flags;            /* more blk_open flags (serve --domain: SHARE, NO_FLUSH) */
    const char *policy_key;         /* allow, deny or policy-file: the one given */
    struct scsi_lun_config cfg;
    struct blk_node *bs;
    struct scsi_lun *lun;
    bool resize_unsupported;        /* told once */
    uint32_t phys_size;             /* physical-block-size=, 0 if not given */
};

struct serve {
    const char *socket, *pidfile;
    bool once;
    int verbose;
    unsigned workers;
    struct serve_lun luns[SERVE_MAX_LUNS];
    unsigned nluns;
    struct scsi_target *target;
    struct scsi_disp *disp;
    struct vscsi_shared shared;
    struct vhost_server *server;
    int sigfd;
    const char *control;            /* --control SOCKET, or NULL */
    gid_t control_gid;              /* --control-group */
    bool control_have_gid;
    struct ctl_server *ctl;
};

/* cmd_serve_ctl.c: the control socket (--control), watched by the loop. */
int serve_ctl_start(struct serve *s, struct scuse_err *err);
/* Remove every trace of LUN l (its image flushed and closed). */
void serve_lun_release(struct serve_lun *l);

#endif
