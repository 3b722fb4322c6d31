/* scuse's dev_config string: "scuse/<format>@<absolute image path>", or
 * "scuse/<absolute image path>" to probe the format (what a hand-made
 * targetcli backstore `user:scuse` with cfgstring=<path> gives).
 *
 * The kernel splits its control string at ',' and newlines and keeps at
 * most 255 bytes, so neither may appear and the whole must fit; the
 * subtype before the first '/' is the handler's name, as targetcli and
 * tcmu-runner use it. A config that does not start with "scuse/" belongs
 * to another TCMU daemon and is left alone. */
#ifndef SCUSE_TCMU_CONFIG_H
#define SCUSE_TCMU_CONFIG_H

#include <stddef.h>

#include "tcmu/uio.h"
#include "util/err.h"

#define TCMU_SUBTYPE "scuse"
#define TCMU_FMT_MAX 16

struct tcmu_image_cfg {
    char fmt[TCMU_FMT_MAX];         /* "" = probe */
    char path[TCMU_CONFIG_MAX];
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

#endif
