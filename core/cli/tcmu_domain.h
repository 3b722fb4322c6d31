/* The kernel path for a libvirt domain (`scuse tcmu up|down FILE.xml`,
 * the libvirt hook for domains converted with --transport vhost-scsi):
 * per virtio-scsi controller with disks one vhost-scsi target port (the
 * WWPN of the domain's <hostdev>, dom_controller_wwpn), TPG 1, and per
 * disk a TCMU backstore at LUN = the disk's unit. The backstore's
 * dev_config names the disk in a copy of the domain XML kept in the state
 * directory ("scuse/domain=C.U@DIR/NAME.tcmu.xml"), from which the daemon
 * (`scuse tcmu serve`, through tcmu_domain_disk) takes every setting of
 * the <disk>. Both directions are idempotent: up finishes or confirms
 * what is there, down removes what is there (what a crash left half made
 * included) and is content with nothing. */
#ifndef SCUSE_CLI_TCMU_DOMAIN_H
#define SCUSE_CLI_TCMU_DOMAIN_H

#include <stdio.h>

#include "domain/domain.h"

struct tcmu_domain_opts {
    const char *configfs;           /* NULL: /sys/kernel/config */
    const char *state_dir;          /* NULL: the domain's socket-dir, else DOM_SOCKET_DIR */
    unsigned data_area_mb;          /* per backstore; 0: 1024 (at least what a command needs) */
    FILE *out;                      /* a line per target and LUN, or NULL */
};

/* Provision d (xml, len: its text, kept as the state directory's copy). */
int tcmu_domain_up(const struct domain *d, const char *xml, size_t len,
                   const struct tcmu_domain_opts *o, struct scuse_err *err);
/* Remove d's targets and backstores, and the copy. */
int tcmu_domain_down(const struct domain *d, const struct tcmu_domain_opts *o,
                     struct scuse_err *err);
/* The daemon's tcmu_domain_disk_fn: the disk at ctrl.unit of the domain
 * in xml, its LUN settings and its chain opened as the <disk> says. */
int tcmu_domain_disk(const char *xml, unsigned ctrl, unsigned unit, struct scsi_lun_config *cfg,
                     struct blk_node **bs, struct scuse_err *err);
/* The unit serial the SCSI core gives a LUN of bs with cfg (INQUIRY page
 * 80h; "" when it cannot tell), for configfs to show what the initiator
 * sees. */
void tcmu_lun_serial(struct blk_node *bs, const struct scsi_lun_config *cfg, char *out,
                     size_t len);
/* `scuse tcmu up|down` (argv[0] "up" or "down"). */
int cmd_tcmu_updown(int argc, char **argv);

#endif
