/* `scuse serve --control SOCKET`: the control socket's commands on the
 * vhost-user-scsi daemon. They run on the loop thread, the one that
 * submits the guest's commands and sends virtio-scsi events, so a LUN
 * appears to the guest whole and leaves only once its commands are done:
 *
 *   add:    open, create, attach to the dispatcher, then into the target
 *           (the guest can reach it from here on), REPORTED LUNS DATA
 *           HAS CHANGED on the others, TRANSPORT_RESET/RESCAN;
 *   remove: out of the target (no new command reaches it), detach
 *           (waits for those in flight), REPORTED LUNS DATA HAS CHANGED,
 *           TRANSPORT_RESET/REMOVED, flush and close;
 *   eject:  the SCSI layer closes the door to new reads and waits for
 *           those under way (scsi_lun_medium_eject), then the node is
 *           closed; insert opens the new one first. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blk/format.h"
#include "cli/cli.h"
#include "cli/serve_int.h"
#include "ctl/ctl.h"
#include "scsi/dispatch.h"
#include "util/log.h"
#include "vhost/server.h"

#ifndef SCUSE_VERSION
#error "SCUSE_VERSION is defined by the build (CMakeLists.txt, project VERSION)"
#endif

static struct serve_lun *find(struct serve *s, uint16_t id)
{
    for (unsigned i = 0; i < s->nluns; i++)
        if (s->luns[i].id == id && s->luns[i].lun)
            return &s->luns[i];
    return NULL;
}

static int no_lun(uint16_t id, struct scuse_err *err)
{
    return err_set(err, -ENODEV, "LUN %u does not exist", id);
}

static bool is_cdrom(const struct serve_lun *l)
{
    return scsi_lun_device(l->lun) == SCSI_DEVICE_CDROM;
}

static json_t *lun_json(struct serve *s, struct serve_lun *l)
{
    struct ctl_lun_view v = { .lun = l->id,
                              .device = is_cdrom(l) ? CTL_DEVICE_CDROM : CTL_DEVICE_DISK,
                              .slun = l->lun, .bs = l->bs, .file = l->file, .cfg = &l->cfg,
                              .disp = s->disp };
    return ctl_lun_json(&v);
}

/* What a LUN tells on its own (scsi.h): the guest's eject button. Any
 * thread (a dispatcher worker for the guest's START STOP UNIT). Ejects
 * and inserts made here send their events themselves, with the file. */
static void on_lun_event(void *opaque, struct scsi_lun *lun, int event)
{
    struct serve *s = opaque;
    uint16_t id = scsi_lun_id(lun);
    if (event == SCSI_LUN_EVENT_GUEST_EJECT_REQUEST) {
        log_info("LUN %u: the guest asks for the medium to be ejected", id);
        ctl_server_event(s->ctl, "GUEST_EJECT_REQUEST", json_pack("{s:i}", "lun", id));
    } else if (event == SCSI_LUN_EVENT_GUEST_LOAD) {
        log_info("LUN %u: the guest closed the tray", id);
    }
}

static int query_luns(void *o, json_t **ret, struct scuse_err *err)
{
    struct serve *s = o;
    json_t *a = json_array();
    if (!a)
        return err_set(err, -ENOMEM, "out of memory");
    for (unsigned i = 0; i < s->nluns; i++)
        if (s->luns[i].lun)
            json_array_append_new(a, lun_json(s, &s->luns[i]));
    *ret = a;
    return 0;
}

void serve_lun_release(struct serve_lun *l)
{
    scsi_lun_destroy(l->lun);
    blk_close(l->bs);
    free(l->spec);
    free(l->file);
    free(l->fmt);
    free(l->items);
    memset(l, 0, sizeof(*l));
}

static int lun_add(void *o, const struct ctl_lun_add *a, json_t **ret, struct scuse_err *err)
{
    struct serve *s = o;
    bool cd = a->device == CTL_DEVICE_CDROM;
    if (find(s, a->lun))
        return err_set(err, -EEXIST, "LUN %u exists already", a->lun);
    if (s->nluns == SERVE_MAX_LUNS)
        return err_set(err, -ENOSPC, "%d LUNs served already", SERVE_MAX_LUNS);
    if (a->format && !blk_format_has(a->format, BLK_FMT_KNOWN)) {
        char list[256];
        blk_format_list(BLK_FMT_OPEN, list, sizeof(list));
        return err_set(err, -EINVAL, "unknown format '%s' (scuse serves: %s)", a->format, list);
    }
    struct serve_lun *l = &s->luns[s->nluns];
    memset(l, 0, sizeof(*l));
    l->id = a->lun;
    l->readonly = a->readonly || cd;    /* a disc is read-only */
    l->file = strdup(a->file);
    l->fmt = a->format ? strdup(a->format) : NULL;
    if (asprintf(&l->spec, "%u=%s (lun-add)", a->lun, a->file) < 0)
        l->spec = NULL;
    if (!l->file || !l->spec || (a->format && !l->fmt)) {
        serve_lun_release(l);
        return err_set(err, -ENOMEM, "out of memory");
    }
    scsi_lun_config_default(&l->cfg);
    l->cfg.read_only = l->readonly;
    l->cfg.device = cd ? SCSI_DEVICE_CDROM : SCSI_DEVICE_DISK;
    int r = blk_open(l->file, l->fmt, l->readonly ? 0 : BLK_OPEN_RW, &l->opts, &l->bs, err);
    if (r == 0)
        r = scsi_lun_create(&l->cfg, l->bs, l->id, &l->lun, err);
    if (r == 0)
        r = scsi_disp_attach(s->disp, l->lun, err);
    if (r < 0) {
        if (!err->msg[0])
            err_set(err, r, "'%s': %s", a->file, strerror(-r));
        serve_lun_release(l);
        return r == -ENODEV ? -EINVAL : r;  /* not "no such LUN" */
    }
    /* A new unit to the initiator: power-on unit attention first. */
    scsi_lun_raise_ua(l->lun, SCSI_UA_POWER_ON);
    scsi_lun_set_event_cb(l->lun, on_lun_event, s);
    r = scsi_target_add_lun(s->target, l->lun, err);
    if (r < 0) {
        scsi_disp_detach(s->disp, l->lun);
        serve_lun_release(l);
        return r;
    }
    s->nluns++;
    scsi_target_raise_ua(s->target, SCSI_UA_LUNS_CHANGED, l->lun);
    struct vscsi *v = vhost_server_dev_state(s->server);
    if (v)
        vscsi_lun_hotplug(v, l->id, true);
    log_info("LUN %u: '%s' added (%s, %llu bytes%s)", l->id, l->file, blk_format_name(l->bs),
             (unsigned long long)l->bs->size, l->readonly ? ", read-only" : "");
    ctl_server_event(s->ctl, "LUN_ADDED",
                     json_pack("{s:i,s:s,s:o,s:s}", "lun", l->id, "device",
                               cd ? "cdrom" : "disk", "file", ctl_string(l->file), "format",
                               blk_format_name(l->bs)));
    *ret = lun_json(s, l);
    return 0;
}

static int lun_remove(void *o, uint16_t id, struct scuse_err *err)
{
    struct serve *s = o;
    struct serve_lun *l = find(s, id);
    if (!l)
        return no_lun(id, err);
    scsi_target_remove_lun(s->target, id);
    scsi_disp_detach(s->disp, l->lun);     /* its commands in flight finish first */
    scsi_target_raise_ua(s->target, SCSI_UA_LUNS_CHANGED, NULL);
    struct vscsi *v = vhost_server_dev_state(s->server);
    if (v)
        vscsi_lun_hotplug(v, id, false);
    if (l->bs && !l->bs->read_only) {
        struct scuse_err ferr = { 0 };
        int r = blk_flush(l->bs, &ferr);
        if (r < 0)
            log_error("LUN %u: flush failed: %s", id, cli_reason(&ferr, r));
    }
    log_info("LUN %u: '%s' removed", id, l->file);
    serve_lun_release(l);
    unsigned i = (unsigned)(l - s->luns);
    memmove(&s->luns[i], &s->luns[i + 1], (s->nluns - i - 1) * sizeof(*l));
    s->nluns--;
    ctl_server_event(s->ctl, "LUN_REMOVED", json_pack("{s:i}", "lun", id));
    return 0;
}

static int lun_resize(void *o, uint16_t id, json_t **ret, struct scuse_err *err)
{
    struct serve *s = o;
    struct serve_lun *l = find(s, id);
    if (!l)
        return no_lun(id, err);
    if (is_cdrom(l))
        return err_set(err, -ENOTSUP, "LUN %u is a CD-ROM: a disc does not change size "
                       "(medium-eject, then medium-insert)", id);
    bool moved = false;
    int r = blk_refresh_size(l->bs, &moved, err);
    if (r < 0) {
        err_prefix(err, "LUN %u: ", id);
        return r == -ENODEV ? -EIO : r;
    }
    bool changed = scsi_lun_refresh_capacity(l->lun);
    struct vscsi *v = vhost_server_dev_state(s->server);
    if (changed && v)
        vscsi_capacity_changed(v, id);
    *ret = json_pack("{s:i,s:I,s:I,s:b}", "lun", id, "size", (json_int_t)l->bs->size,
                     "blocks", (json_int_t)scsi_lun_blocks(l->lun), "changed", changed);
    return 0;
}

/* The LUN for a medium command: a cdrom one. */
static struct serve_lun *drive(struct serve *s, uint16_t id, const char *cmd,
                               struct scuse_err *err)
{
    struct serve_lun *l = find(s, id);
    if (!l) {
        no_lun(id, err);
        return NULL;
    }
    if (!is_cdrom(l)) {
        err_set(err, -ENOTSUP, "LUN %u is a disk: %s needs a CD-ROM LUN (lun-add with "
                "\"device\": \"cdrom\")", id, cmd);
        return NULL;
    }
    return l;
}

static int medium_eject(void *o, uint16_t id, bool force, struct scuse_err *err)
{
    struct serve *s = o;
    struct serve_lun *l = drive(s, id, "medium-eject", err);
    if (!l)
        return err->code;
    int r = ctl_medium_eject(s->ctl, l->lun, id, force, err);
    if (r < 0)
        return r;
    log_debug("LUN %u: '%s' closed after the eject%s", id, l->file, force ? " (forced)" : "");
    l->bs = NULL;
    free(l->file);
    free(l->fmt);
    l->file = l->fmt = NULL;
    return 0;
}

static int medium_insert(void *o, uint16_t id, const char *file, const char *format,
                         struct scuse_err *err)
{
    struct serve *s = o;
    struct serve_lun *l = drive(s, id, "medium-insert", err);
    if (!l)
        return err->code;
    if (l->bs)
        return err_set(err, -EEXIST, "LUN %u holds '%s': medium-eject it first", id,
                       l->file ? l->file : "a medium");
    char *f = strdup(file), *fmt = format ? strdup(format) : NULL;
    if (!f || (format && !fmt)) {
        free(f);
        free(fmt);
        return err_set(err, -ENOMEM, "out of memory");
    }
    int r = ctl_medium_insert(s->ctl, l->lun, id, file, format, &l->bs, err);
    if (r < 0) {
        free(f);
        free(fmt);
        return r;
    }
    l->file = f;
    l->fmt = fmt;
    return 0;
}

static void quit(void *o)
{
    struct serve *s = o;
    log_info("control: quit");
    vhost_server_stop(s->server);
}

static const struct ctl_backend serve_backend = {
    .query_luns = query_luns,
    .lun_add = lun_add,
    .lun_remove = lun_remove,
    .lun_resize = lun_resize,
    .medium_eject = medium_eject,
    .medium_insert = medium_insert,
    .quit = quit,
    .name = "scuse serve",
};

static void on_control(void *arg)
{
    struct serve *s = arg;
    ctl_server_handle(s->ctl);
}

int serve_ctl_start(struct serve *s, struct scuse_err *err)
{
    struct ctl_server_config cfg = { .path = s->control, .gid = s->control_gid,
                                     .have_gid = s->control_have_gid,
                                     .version = SCUSE_VERSION };
    int r = ctl_server_create(&cfg, &serve_backend, s, &s->ctl, err);
    if (r < 0)
        return r;
    r = vhost_server_watch(s->server, ctl_server_fd(s->ctl), on_control, s);
    if (r < 0)
        return err_set(err, r, "cannot watch the control socket: %s", strerror(-r));
    for (unsigned i = 0; i < s->nluns; i++)
        scsi_lun_set_event_cb(s->luns[i].lun, on_lun_event, s);
    log_info("control socket on %s", s->control);
    return 0;
}
