/* `scuse tcmu serve --control SOCKET`: the control socket's commands on
 * the TCMU daemon. A LUN here is a TCMU device (a LIO backstore), named
 * in commands by its UIO minor (query-luns lists them, with the device's
 * name): LIO makes and removes them (`scuse tcmu create`/`delete`), so
 * lun-add and lun-remove say that. The commands run on the daemon's
 * loop thread, the one that adds, reconfigures and removes devices. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blk/format.h"
#include "cli/cli.h"
#include "ctl/ctl.h"
#include "tcmu/daemon_int.h"
#include "util/log.h"

#ifndef SCUSE_VERSION
#error "SCUSE_VERSION is defined by the build (CMakeLists.txt, project VERSION)"
#endif

struct tcmu_ctl {
    struct tcmu_daemon *dm;
    struct ctl_server *ctl;
};

static struct tcmu_served *find(struct tcmu_daemon *dm, uint16_t minor, struct scuse_err *err)
{
    for (struct tcmu_served *s = dm->served; s; s = s->next)
        if (s->uio.minor == minor)
            return s;
    err_set(err, -ENODEV, "no TCMU device served at uio%u", minor);
    return NULL;
}

static bool is_cdrom(const struct tcmu_served *s)
{
    return s->lun && scsi_lun_device(s->lun) == SCSI_DEVICE_CDROM;
}

static int query_luns(void *o, json_t **ret, struct scuse_err *err)
{
    struct tcmu_ctl *c = o;
    json_t *a = json_array();
    if (!a)
        return err_set(err, -ENOMEM, "out of memory");
    for (struct tcmu_served *s = c->dm->served; s; s = s->next) {
        struct ctl_lun_view v = { .lun = (uint16_t)s->uio.minor, .name = s->label,
                                  .device = is_cdrom(s) ? CTL_DEVICE_CDROM : CTL_DEVICE_DISK,
                                  .slun = s->lun, .bs = s->bs,
                                  .file = s->bs ? s->img.path : NULL, .cfg = &s->lcfg,
                                  .disp = c->dm->disp };
        json_array_append_new(a, ctl_lun_json(&v));
    }
    *ret = a;
    return 0;
}

static int lun_add(void *o, const struct ctl_lun_add *a, json_t **ret, struct scuse_err *err)
{
    (void)o;
    (void)a;
    (void)ret;
    return err_set(err, -ENOTSUP, "on the TCMU path a LUN is a LIO backstore: `scuse tcmu "
                   "create NAME IMG` adds one (this daemon serves it at once)");
}

static int lun_remove(void *o, uint16_t lun, struct scuse_err *err)
{
    (void)o;
    (void)lun;
    return err_set(err, -ENOTSUP, "on the TCMU path a LUN is a LIO backstore: `scuse tcmu "
                   "delete NAME` removes one");
}

static int lun_resize(void *o, uint16_t minor, json_t **ret, struct scuse_err *err)
{
    struct tcmu_ctl *c = o;
    struct tcmu_served *s = find(c->dm, minor, err);
    if (!s)
        return err->code;
    if (!s->bs || !s->lun)
        return err_set(err, -ENOMEDIUM, "%s: no image open", s->label);
    if (is_cdrom(s))
        return err_set(err, -ENOTSUP, "%s is a CD-ROM: a disc does not change size "
                       "(medium-eject, then medium-insert)", s->label);
    bool moved = false;
    int r = blk_refresh_size(s->bs, &moved, err);
    if (r < 0) {
        err_prefix(err, "%s: ", s->label);
        return r == -ENODEV ? -EIO : r;
    }
    bool changed = scsi_lun_refresh_capacity(s->lun);
    *ret = json_pack("{s:i,s:I,s:I,s:b}", "lun", minor, "size", (json_int_t)s->bs->size,
                     "blocks", (json_int_t)scsi_lun_blocks(s->lun), "changed", changed);
    return 0;
}

static struct tcmu_served *drive(struct tcmu_ctl *c, uint16_t minor, const char *cmd,
                                 struct scuse_err *err)
{
    struct tcmu_served *s = find(c->dm, minor, err);
    if (s && !is_cdrom(s)) {
        err_set(err, -ENOTSUP, "%s is not a CD-ROM: %s needs one", s->label, cmd);
        return NULL;
    }
    return s;
}

static int medium_eject(void *o, uint16_t minor, bool force, struct scuse_err *err)
{
    struct tcmu_ctl *c = o;
    struct tcmu_served *s = drive(c, minor, "medium-eject", err);
    if (!s)
        return err->code;
    int r = ctl_medium_eject(c->ctl, s->lun, minor, force, err);
    if (r == 0)
        s->bs = NULL;
    return r;
}

static int medium_insert(void *o, uint16_t minor, const char *file, const char *format,
                         struct scuse_err *err)
{
    struct tcmu_ctl *c = o;
    struct tcmu_served *s = drive(c, minor, "medium-insert", err);
    if (!s)
        return err->code;
    if (s->bs)
        return err_set(err, -EEXIST, "%s holds '%s': medium-eject it first", s->label,
                       s->img.path);
    if (strlen(file) >= sizeof(s->img.path) || (format && strlen(format) >= sizeof(s->img.fmt)))
        return err_set(err, -ENAMETOOLONG, "'%s': name too long", file);
    int r = ctl_medium_insert(c->ctl, s->lun, minor, file, format, &s->bs, err);
    if (r < 0)
        return r;
    snprintf(s->img.path, sizeof(s->img.path), "%s", file);
    snprintf(s->img.fmt, sizeof(s->img.fmt), "%s", format ? format : "");
    return 0;
}

static void quit(void *o)
{
    struct tcmu_ctl *c = o;
    log_info("control: quit");
    tcmu_daemon_stop(c->dm);
}

static const struct ctl_backend tcmu_backend = {
    .query_luns = query_luns,
    .lun_add = lun_add,
    .lun_remove = lun_remove,
    .lun_resize = lun_resize,
    .medium_eject = medium_eject,
    .medium_insert = medium_insert,
    .quit = quit,
    .name = "scuse tcmu serve",
};

/* The guest pressed eject (a dispatcher worker). */
static void on_lun_event(void *opaque, unsigned minor, int event)
{
    struct tcmu_ctl *c = opaque;
    if (event == SCSI_LUN_EVENT_GUEST_EJECT_REQUEST)
        ctl_server_event(c->ctl, "GUEST_EJECT_REQUEST", json_pack("{s:i}", "lun", minor));
}

static void on_control(void *arg)
{
    struct tcmu_ctl *c = arg;
    ctl_server_handle(c->ctl);
}

int tcmu_ctl_start(struct tcmu_daemon *dm, const char *path, gid_t gid, bool have_gid,
                   struct tcmu_ctl **out, struct scuse_err *err)
{
    struct tcmu_ctl *c = calloc(1, sizeof(*c));
    if (!c)
        return err_set(err, -ENOMEM, "out of memory");
    c->dm = dm;
    struct ctl_server_config cfg = { .path = path, .gid = gid, .have_gid = have_gid,
                                     .version = SCUSE_VERSION };
    int r = ctl_server_create(&cfg, &tcmu_backend, c, &c->ctl, err);
    if (r == 0 && (r = tcmu_daemon_watch(dm, ctl_server_fd(c->ctl), on_control, c)) < 0)
        err_set(err, r, "cannot watch the control socket: %s", strerror(-r));
    if (r < 0) {
        ctl_server_destroy(c->ctl);
        free(c);
        return r;
    }
    tcmu_daemon_set_lun_event(dm, on_lun_event, c);
    *out = c;
    return 0;
}

void tcmu_ctl_stop(struct tcmu_ctl *c)
{
    if (!c)
        return;
    ctl_server_destroy(c->ctl);
    free(c);
}
