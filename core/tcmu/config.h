/* scuse's dev_config string: "scuse/<format>@<absolute image path>", or
 * "scuse/<absolute image path>" to probe the format (what a hand-made
 * targetcli backstore `user:scuse` with cfgstring=<path> gives), or with
 * the LUN's command policy after the format:
 *     scuse/qcow2;deny=42+93@/var/lib/images/vm1.qcow2
 *     scuse/;allow=00+12+25+28+a0@/srv/ro.raw        (format probed)
 * The policy is scsi_policy_parse's text with '+' between entries (the
 * kernel splits the control string at ',', rtslib refuses ':'); the first
 * '@' ends it. It lives in dev_config, not in a file beside it: the
 * kernel keeps it with the device for as long as the device exists, every
 * daemon (a restarted one, one in another mount namespace) reads the same
 * text, and writing attrib/dev_config changes it (RECONFIG). A daemon
 * older than this format refuses such a device (its format check fails)
 * rather than serving it without the policy. The price is length: the
 * whole string is at most 255 bytes: an allow list of every command
 * (122 bytes today, at most SCSI_POLICY_TEXT_MAX) leaves about 120 for
 * the path, a deny list of a few commands costs 20.
 *
 * A physical block size bigger than the logical one rides the same way,
 * as a section before the policy: scuse/qcow2;pbs=4096;deny=42@/srv/a.qcow2.
 *
 * The kernel splits its control string at ',' and newlines and keeps at
 * most 255 bytes, so neither may appear and the whole must fit; the
 * subtype before the first '/' is the handler's name, as targetcli and
 * tcmu-runner use it. A config that does not start with "scuse/" belongs
 * to another TCMU daemon and is left alone.
 *
 * A disk of a libvirt domain (`scuse tcmu up`) is named instead of
 * described: "scuse/domain=C.U@/run/scuse/vm1.tcmu.xml", the disk at
 * unit U of controller C of the domain in that file (the copy `tcmu up`
 * keeps), so every setting its <disk> gives (chain, identity, cache,
 * discard, read-only, policy, open options) reaches the daemon, which
 * none of 255 bytes could carry. */
#ifndef SCUSE_TCMU_CONFIG_H
#define SCUSE_TCMU_CONFIG_H

#include <stddef.h>

#include "scsi/scsi.h"
#include "tcmu/uio.h"
#include "util/err.h"

#define TCMU_SUBTYPE "scuse"
#define TCMU_FMT_MAX 16

struct tcmu_image_cfg {
    char fmt[TCMU_FMT_MAX];         /* "" = probe */
    char path[TCMU_CONFIG_MAX];
    char policy[TCMU_CONFIG_MAX];   /* "" = none; else scsi_policy_parse's text, ':' between
                                       entries (checked: it parses) */
    bool domain;                    /* path is a domain's XML: its disk ctrl.unit */
    unsigned ctrl, unit;
    uint32_t phys_size;             /* pbs=: physical block size, 0 = the logical one */
};

/* 1 when config names scuse and is well formed (out filled), 0 when it
 * is another handler's, -EINVAL (err names what is wrong) when it names
 * scuse but is malformed. */
int tcmu_config_parse(const char *config, struct tcmu_image_cfg *out, struct scuse_err *err);

/* Build the config for fmt (NULL or "" = probe) and an absolute path.
 * -EINVAL when the path cannot be carried (not absolute, ',' or a
 * control character in it, too long). */
int tcmu_config_format(const char *fmt, const char *path, char *out, size_t len,
                       struct scuse_err *err);
/* The same with cfg's command policy (none: as tcmu_config_format). */
int tcmu_config_format_policy(const char *fmt, const struct scsi_lun_config *cfg,
                              const char *path, char *out, size_t len, struct scuse_err *err);
/* "scuse/domain=C.U@XML" for the disk at unit U of controller C. */
int tcmu_config_format_domain(unsigned ctrl, unsigned unit, const char *xml, char *out,
                              size_t len, struct scuse_err *err);
/* The same with a physical block size (0: none written). */
int tcmu_config_format_lun(const char *fmt, const struct scsi_lun_config *cfg, uint32_t phys_size,
                           const char *path, char *out, size_t len, struct scuse_err *err);
/* Set cfg's command policy from img (none when img has none), and its
 * physical block exponent (cfg->block_size set first). */
int tcmu_config_policy(const struct tcmu_image_cfg *img, struct scsi_lun_config *cfg,
                       struct scuse_err *err);

#endif
