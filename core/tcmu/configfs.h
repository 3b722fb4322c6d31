/* Provisioning through configfs (tcmu.md §7): a TCMU `user` backstore
 * whose dev_config names scuse and the image, enabled, then exported
 * through a fabric, vhost-scsi (a WWPN QEMU attaches to) or tcm_loop (a
 * local SCSI disk); and the teardown, in reverse. Every step checks what
 * is there first, so running create or delete again finishes what an
 * interrupted run left, and repeating a finished one changes nothing.
 *
 * The configfs root is a parameter: on a plain directory tree (the unit
 * tests) items are made and removed with their attribute files, as
 * configfs itself would. */
#ifndef SCUSE_TCMU_CONFIGFS_H
#define SCUSE_TCMU_CONFIGFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tcmu/uio.h"
#include "util/err.h"

/* scuse's backstores live under core/user_<this>: a number of its own,
 * so that tools numbering their HBAs from 0 (rtslib) do not share it. */
#define TCMU_SCUSE_HBA 5300u
/* hw_block_size of a cdrom backstore (`tcmu create --device cdrom`): scuse's
 * disks have 512 or 4096-byte blocks, so this size alone says "cdrom". */
#define TCMU_CDROM_BLOCK_SIZE 2048u

#define TCMU_WWN_MAX 224              /* an iSCSI name is at most 223 bytes */
#define TCMU_PORTAL_MAX 64
#define TCMU_ACL_MAX 8                  /* --initiator, at most this many */

enum tcmu_fabric { TCMU_FABRIC_NONE, TCMU_FABRIC_VHOST, TCMU_FABRIC_LOOPBACK, TCMU_FABRIC_ISCSI };

/* What `scuse tcmu create` writes. */
struct tcmu_backstore {
    char name[TCMU_NAME_MAX];
    char config[TCMU_CONFIG_MAX];   /* tcmu_config_format() */
    uint64_t size;                  /* dev_size: the image's virtual size */
    uint32_t block_size, max_sectors, data_area_mb;
    char serial[TCMU_NAME_MAX];     /* wwn/vpd_unit_serial ("" = not written) */
    enum tcmu_fabric fabric;
    char wwpn[TCMU_WWN_MAX];        /* the target port: naa.<16 hex digits> */
    char initiator[TCMU_WWN_MAX];   /* the nexus (vhost, loopback) */
    unsigned lun;                   /* the LUN in TPG 1 (a domain's disk: its unit) */
    bool no_write_cache;            /* emulate_write_cache 0 (cache='writethrough' ...) */
    /* iSCSI: wwpn is the target IQN; the portal is "IPv4:PORT" or
     * "[IPv6]:PORT"; demo mode lets any initiator in (no ACL), otherwise
     * only the initiators listed (an ACL each, mapping LUN 0). No CHAP. */
    char portal[TCMU_PORTAL_MAX];
    bool demo_mode;
    unsigned n_acls;
    char acls[TCMU_ACL_MAX][TCMU_WWN_MAX];
};

/* A backstore of scuse's found in configfs. */
struct tcmu_cfs_dev {
    uint32_t hba;
    char name[TCMU_NAME_MAX];
    char config[TCMU_CONFIG_MAX];
    bool enabled;
    uint64_t size;
    enum tcmu_fabric fabric;        /* the first export found, NONE if none */
    char wwpn[TCMU_WWN_MAX];
    unsigned tpgt, lun;
};

/* A backstore name: letters, digits, '_', '-', '.', not starting with
 * '.', at most 64 characters (it becomes a configfs directory). */
bool tcmu_name_valid(const char *name);
/* naa.<16 hex digits>, NAA 5, 6 or 3. */
bool tcmu_wwn_valid(const char *wwn);
/* A WWN derived from a string: NAA 5 with scuse's company id, so the
 * same backstore name always gets the same target and initiator ports. */
void tcmu_wwn_derive(const char *from, unsigned salt, char *out, size_t len);

int tcmu_cfs_create(const char *root, const struct tcmu_backstore *b, struct scuse_err *err);
/* Tear down every scuse backstore called name and its exports. *found
 * says whether there was one; a backstore of that name that is not
 * scuse's is refused. */
int tcmu_cfs_delete(const char *root, const char *name, bool *found, struct scuse_err *err);
/* scuse's backstores (malloc'd array, by HBA then name). */
int tcmu_cfs_list(const char *root, struct tcmu_cfs_dev **out, size_t *n, struct scuse_err *err);

/* <root>/target/core/user_<hba>/<dev> */
void tcmu_cfs_dev_path(const char *root, uint32_t hba, const char *dev, char *out, size_t len);
/* Read an attribute of a backstore (relative path such as
 * "attrib/hw_block_size"), one trailing newline removed. */
int tcmu_cfs_dev_read(const char *root, uint32_t hba, const char *dev, const char *attr,
                      char *buf, size_t len);
/* Before serving a device someone else may have left commands on: stop
 * the kernel queueing, complete what is on the ring with BUSY (so the
 * initiator retries), resume (tcmu.md R2). */
int tcmu_cfs_reset_ring(const char *root, uint32_t hba, const char *dev, struct scuse_err *err);

/* ---- shared with fabric.c ---- */

/* A configfs tree, or a plain directory standing for one. */
struct tcmu_cfs {
    char root[4096];                /* absolute: LUN links point at it */
    bool real;                      /* configfs itself */
};
void tcmu_cfs_init(struct tcmu_cfs *c, const char *root);
int tcmu_cfs_mkdir(const struct tcmu_cfs *c, const char *path);
int tcmu_cfs_rmdir(const struct tcmu_cfs *c, const char *path);
int tcmu_cfs_write(const struct tcmu_cfs *c, const char *path, const char *value);
bool tcmu_cfs_is_dir(const char *path);
/* Whether link (a LUN's symlink) leads to dir. */
bool tcmu_cfs_links_to(const char *link, const char *dir);

/* fabric.c */
int tcmu_fabric_export(const struct tcmu_cfs *c, const struct tcmu_backstore *b,
                       const char *dev_dir, struct scuse_err *err);
/* fabric_iscsi.c: an iSCSI name (iqn./eui./naa., RFC 3720 3.2.6), a
 * portal; the iSCSI parts of a TPG (portal, demo mode or ACL, enable),
 * the ACLs' mappings of a LUN, and all of that before the TPG goes. */
bool tcmu_iscsi_name_valid(const char *name);
bool tcmu_iscsi_portal_valid(const char *portal);
int tcmu_iscsi_export(const struct tcmu_cfs *c, const struct tcmu_backstore *b, const char *tpg,
                      const char *lun, struct scuse_err *err);
int tcmu_iscsi_unmap_lun(const struct tcmu_cfs *c, const char *tpg, const char *lun,
                         struct scuse_err *err);
int tcmu_iscsi_tpg_clear(const struct tcmu_cfs *c, const char *tpg, struct scuse_err *err);
/* Remove every LUN that links to dev_dir, and TPGs and WWNs left empty. */
int tcmu_fabric_unexport(const struct tcmu_cfs *c, const char *dev_dir, struct scuse_err *err);
/* The first export of dev_dir. */
bool tcmu_fabric_find(const struct tcmu_cfs *c, const char *dev_dir, struct tcmu_cfs_dev *d);
const char *tcmu_fabric_name(enum tcmu_fabric f);
/* The backstores (HBA, name) the LUNs of fabric's target port wwpn link
 * to, at most max (*n counts them all). */
int tcmu_fabric_wwn_devs(const char *root, enum tcmu_fabric f, const char *wwpn,
                         uint32_t *hba, char (*names)[TCMU_NAME_MAX], unsigned max, unsigned *n);
/* Remove fabric's target port wwpn when no LUN of it links anywhere:
 * empty LUNs, the nexus, the TPGs, the port (what an interrupted create
 * or delete leaves). -ENOTEMPTY when a LUN still serves a backstore. */
int tcmu_fabric_remove_wwn(const char *root, enum tcmu_fabric f, const char *wwpn,
                           struct scuse_err *err);

#endif
