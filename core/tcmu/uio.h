/* TCMU devices as UIO devices: the sysfs view (/sys/class/uio/uioN, its
 * name and map size) and the device node (/dev/uioN). Names are parsed
 * whole and directories matched exactly, never by prefix (uio1 is not
 * uio10). The sysfs and /dev roots are parameters so tests use trees of
 * their own. */
#ifndef SCUSE_TCMU_UIO_H
#define SCUSE_TCMU_UIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define TCMU_NAME_MAX 256           /* a LIO device name (a configfs directory) */
#define TCMU_CONFIG_MAX 256         /* dev_config, NUL included (TCMU_CONFIG_LEN) */

/* "tcm-user/<hba>/<dev>[/<config>]": the UIO name the kernel gives a
 * TCMU device (the config part may itself contain '/'). */
struct tcmu_uio_name {
    uint32_t hba;                   /* N of core/user_N */
    char dev[TCMU_NAME_MAX];
    char config[TCMU_CONFIG_MAX];   /* "" when the device has none */
};

/* Parse a UIO name. Up to two trailing newlines are dropped: sysfs adds
 * one, and a dev_config written with `echo` may end with another.
 * Returns 0, -ENODEV when it is not a TCMU device's name, or -EINVAL
 * when it starts like one but is malformed (err says where). */
int tcmu_uio_parse_name(const char *s, struct tcmu_uio_name *out, struct scuse_err *err);

/* Whether a directory name is "uio" and a minor in canonical decimal. */
bool tcmu_uio_dirname(const char *s, unsigned *minor);

struct tcmu_uio_dev {
    unsigned minor;
    char uio_name[TCMU_NAME_MAX + TCMU_CONFIG_MAX + 32]; /* as sysfs shows it, no newline */
    struct tcmu_uio_name name;
    uint64_t map_size;              /* maps/map0/size */
};

/* Read <sysfs>/class/uio/uio<minor>: 0, -ENODEV (not a TCMU device), or
 * another negative errno with err naming the file. */
int tcmu_uio_read(const char *sysfs, unsigned minor, struct tcmu_uio_dev *out,
                  struct scuse_err *err);

/* Every TCMU device under <sysfs>/class/uio, by minor (malloc'd array). */
int tcmu_uio_scan(const char *sysfs, struct tcmu_uio_dev **out, size_t *n, struct scuse_err *err);

/* Open <dev_dir>/uio<minor> (non-blocking) and map its map0 of size
 * bytes, as the kernel requires (any other size fails). */
int tcmu_uio_open(const char *dev_dir, unsigned minor, uint64_t size, int *fd, void **map,
                  struct scuse_err *err);
void tcmu_uio_close(int fd, void *map, uint64_t size);

/* Tell the kernel the tail moved (a 4-byte write: its irqcontrol). The
 * write goes at map_size: uio ignores the offset, and a plain file that
 * stands in for the device (tests) keeps the mapped bytes intact. */
int tcmu_uio_kick(int fd, uint64_t map_size);
/* Consume the event count after poll said readable. */
void tcmu_uio_ack(int fd);

#endif
