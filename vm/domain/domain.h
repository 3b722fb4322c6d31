/* libvirt domain XML as scuse reads it: the SCSI disks of virtio-scsi
 * controllers, in libvirt's own <disk> syntax, as LUN settings and image
 * chains (one parser for `scuse domain`, `scuse serve --domain` and the
 * libvirt hook).
 *
 * Which disks are scuse's: those whose <address> (or, without one, the
 * address libvirt gives them: controller = index / 7, unit = index % 7
 * from the target name, sda = 0) names a <controller type='scsi'
 * model='virtio-scsi'>, in <devices> or already moved into scuse's
 * <metadata> element. Disks on other buses or other controllers are left
 * alone. Each of scuse's disks is checked whole: anything scuse cannot
 * serve as libvirt means it is an error naming the file, the line and the
 * element. The mapping of each element is docs/scuse-domain.5. */
#ifndef SCUSE_DOMAIN_H
#define SCUSE_DOMAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "blk/blk.h"
#include "scsi/scsi.h"
#include "util/err.h"

/* scuse's namespace in <metadata> (one element, <scuse:domain>). */
#define DOM_NS "urn:scuse:domain:1"
#define DOM_MAX_CHAIN 64            /* <backingStore> nesting, as blk's depth limit */
#define DOM_MAX_DISKS 1024
#define DOM_MAX_CONTROLLERS 64

/* libvirt's cache= modes, served as QEMU serves them (docs/scuse-domain.5). */
enum dom_cache {
    DOM_CACHE_DEFAULT,              /* writeback */
    DOM_CACHE_NONE,
    DOM_CACHE_WRITEBACK,
    DOM_CACHE_WRITETHROUGH,
    DOM_CACHE_DIRECTSYNC,
    DOM_CACHE_UNSAFE,
};

struct dom_disk {
    unsigned line;                  /* of <disk> */
    char dev[32];                   /* <target dev> */
    char *source;                   /* <source file|dev>; NULL: an empty cdrom drive */
    bool block;                     /* type='block' */
    const char *fmt;                /* scuse's format name (libvirt's default: raw) */
    const char *libvirt_fmt;        /* as written in <driver type> ("vhd") */
    enum dom_cache cache;
    /* <backingStore>: links as written; n_chain 0 and !chain_given: read
     * the chain from the image headers. */
    struct blk_backing chain[DOM_MAX_CHAIN];
    unsigned n_chain;
    bool chain_given;               /* at least one <backingStore> */
    bool chain_end;                 /* ends in <backingStore/> */
    struct scsi_lun_config cfg;     /* identity, block sizes, WCE, discard, policy... */
    unsigned open_flags;            /* for blk_open: BLK_OPEN_RW, _SHARE, _NO_FLUSH */
    bool shareable;
    unsigned boot_order;            /* <boot order>, 0 = none */
    unsigned controller, bus, target, unit;
    bool in_metadata;               /* moved into scuse's element already */
    struct blk_kv fmt_opts;         /* <scuse:option name value> (strings owned) */
    void *node;                     /* its xmlNode */
};

struct dom_controller {
    unsigned line;
    unsigned index;
    unsigned queues;                /* <driver queues>, 0 = not given */
    char wwpn[24];                  /* <scuse:controller wwpn>, "" = derived */
    bool in_metadata;
    unsigned n_disks;               /* scuse's disks on it */
    void *node;
};

struct domain {
    char *file;                     /* as named, for messages */
    char *name;                     /* <name> */
    uint8_t uuid[16];
    bool has_uuid;
    char transport[24];             /* <scuse:transport type>, "" = not converted */
    char *socket_dir;               /* <scuse:transport socket-dir>, or NULL */
    int socket_mode;                /* <scuse:transport socket-mode> (octal), -1: not given */
    char *socket_group;             /* <scuse:transport socket-group>, or NULL */
    struct dom_controller ctrl[DOM_MAX_CONTROLLERS];
    unsigned n_ctrl;
    struct dom_disk *disks;         /* scuse's only */
    unsigned n_disks;
    void *doc;                      /* the xmlDoc, for the converter */
};

/* Parse a domain from a file, or from memory (file then only names it in
 * messages). Errors: one line "FILE:LINE: <element>: why" in err, -EINVAL
 * (-ENOENT and the like for a file that cannot be read). */
int dom_load(const char *file, struct domain **out, struct scuse_err *err);
int dom_parse(const char *buf, size_t len, const char *file, struct domain **out,
              struct scuse_err *err);
void dom_free(struct domain *d);

/* The controller with this index among scuse's, or NULL. */
struct dom_controller *dom_controller(struct domain *d, unsigned index);

/* libvirt's <driver type> / <format type> name to scuse's format name:
 * NULL for a name scuse does not know. */
const char *dom_format_from_libvirt(const char *libvirt_name);
/* The names dom_format_from_libvirt knows, for messages. */
const char *dom_format_libvirt_names(void);

/* ---- Conversion (dom_convert.c): the domain libvirt runs with scuse ---- */

enum dom_transport { DOM_VHOST_USER_SCSI, DOM_VHOST_SCSI };
#define DOM_SOCKET_DIR "/run/scuse"

/* Rewrite d's document for the transport and serialize it (*out malloc'd,
 * no XML declaration): every scuse controller with disks moves, with its
 * disks, verbatim into scuse's <metadata> element; vhost-user-scsi adds a
 * chardev and a JSON -device per controller in <qemu:commandline> and
 * shared memory; vhost-scsi adds a <hostdev> per controller. Everything
 * else is left as it was, and converting the output again gives it back.
 * socket_dir: NULL for the one the domain records, else DOM_SOCKET_DIR.
 * socket_mode (>= 0) and socket_group (non-NULL) are recorded for `scuse
 * serve --domain` and the hook: the sockets QEMU's user must reach. */
int dom_convert(struct domain *d, enum dom_transport t, const char *socket_dir,
                int socket_mode, const char *socket_group, char **out, size_t *len,
                struct scuse_err *err);
/* The socket of controller k: DIR/<name>-scsi<index>.sock, DIR as
 * dom_convert chooses it. -ENAMETOOLONG when it does not fit. */
int dom_socket_path(const struct domain *d, const struct dom_controller *k, const char *dir,
                    char *buf, size_t len);
/* Controller k's vhost-scsi WWPN: the one scuse's element gives, else
 * derived from the domain's UUID (its name without one) and the index. */
void dom_controller_wwpn(const struct domain *d, const struct dom_controller *k, char out[24]);

/* blk_open for a disk: its chain and options. */
int dom_disk_open(const struct dom_disk *disk, struct blk_node **out, struct scuse_err *err);

#endif
