/* One device the daemon serves: its image opened as a LUN with the
 * settings its configfs attributes give (block size, write cache, unit
 * serial) and the command policy its dev_config carries, its UIO
 * mapping, its ring (dev.c), and the changes netlink asks for. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "scsi/dispatch.h"
#include "tcmu/configfs.h"
#include "tcmu/daemon_int.h"
#include "tcmu/fsutil.h"
#include "tcmu/uapi.h"
#include "util/log.h"

#define SERIAL_PREFIX "T10 VPD Unit Serial Number: "
#define RECOVERY_MS 10000           /* between resets of a broken ring */
#define SLOT_RETRY_MS 100           /* after a request slot could not be allocated */

static void kick(void *arg)
{
    struct tcmu_served *s = arg;
    int r = tcmu_uio_kick(s->fd, s->uio.map_size);
    if (r < 0)
        log_debug("tcmu %s: kick: %s", s->label, strerror(-r));
}

static int attr(struct tcmu_served *s, const char *name, char *buf, size_t len)
{
    return tcmu_cfs_dev_read(s->dm->configfs, s->uio.name.hba, s->uio.name.dev, name, buf, len);
}

/* The LUN's settings from the backstore's attributes: what LIO was told
 * is what the initiator sees. */
static int lun_settings(struct tcmu_served *s, struct scuse_err *err)
{
    char buf[TCMU_NAME_MAX + 64];
    unsigned long long v;
    scsi_lun_config_default(&s->lcfg);
    /* The kernel keeps the device when this daemon dies: a write it was
     * told is done must not leave its mapping in this process (dev.h). */
    s->lcfg.meta_write_through = true;
    if (attr(s, "attrib/hw_block_size", buf, sizeof(buf)) > 0) {
        if (!tcmu_parse_u64(buf, &v) || (v != 512 && v != 4096 && v != TCMU_CDROM_BLOCK_SIZE))
            return err_set(err, -EINVAL, "%s: attrib/hw_block_size '%s': scuse serves 512 or "
                           "4096-byte blocks (2048: a cdrom)", s->label, buf);
        s->lcfg.block_size = (uint32_t)v;
        if (v == TCMU_CDROM_BLOCK_SIZE)
            s->lcfg.device = SCSI_DEVICE_CDROM;
    }
    if (attr(s, "attrib/emulate_write_cache", buf, sizeof(buf)) > 0 && tcmu_parse_u64(buf, &v))
        s->lcfg.write_cache = v != 0;
    if (attr(s, "wwn/vpd_unit_serial", buf, sizeof(buf)) > 0) {
        const char *serial = buf;
        if (strncmp(buf, SERIAL_PREFIX, strlen(SERIAL_PREFIX)) == 0)
            serial += strlen(SERIAL_PREFIX);
        size_t n = strlen(serial);
        if (n < sizeof(s->lcfg.serial))
            memcpy(s->lcfg.serial, serial, n + 1);
        else
            log_warn("tcmu %s: unit serial '%s' is longer than %zu characters; serving a "
                     "derived one", s->label, serial, sizeof(s->lcfg.serial) - 1);
    }
    /* -1 (set by `scuse tcmu create`) or 0 (no daemon had asked): the
     * kernel does not wait for replies about this device. */
    s->kernel_waits = true;
    long long w;
    if (attr(s, "attrib/nl_reply_supported", buf, sizeof(buf)) > 0 &&
        sscanf(buf, "%lld", &w) == 1 && w <= 0)
        s->kernel_waits = false;
    return 0;
}

/* Open the image and make the LUN (attached to the dispatcher). */
static int open_medium(struct tcmu_served *s, const struct tcmu_image_cfg *img,
                       struct scuse_err *err)
{
    if (!s->bs && img->domain) {
        /* Every setting is the <disk>'s; the kernel keeps the device
         * when this daemon dies, so metadata is written through. */
        if (!s->dm->domain_disk)
            return err_set(err, -ENOTSUP, "%s names a domain's disk, which this daemon does not "
                           "read", img->path);
        struct scsi_lun_config cfg;
        int r = s->dm->domain_disk(img->path, img->ctrl, img->unit, &cfg, &s->bs, err);
        if (r < 0)
            return r;
        cfg.meta_write_through = true;
        s->lcfg = cfg;
    } else if (!s->bs) {
        unsigned flags = s->lcfg.device == SCSI_DEVICE_CDROM ? 0 : BLK_OPEN_RW;
        int r = blk_open(img->path, img->fmt[0] ? img->fmt : NULL, flags, NULL, &s->bs, err);
        if (r < 0)
            return r;
    }
    struct scsi_lun *lun;
    int r = scsi_lun_create(&s->lcfg, s->bs, 0, &lun, err);
    if (r < 0)
        return r;
    if ((r = scsi_disp_attach(s->dm->disp, lun, err)) < 0) {
        scsi_lun_destroy(lun);
        return r;
    }
    s->lun = lun;
    if (s->ring_up)
        tcmu_dev_set_lun(&s->dev, lun);
    return 0;
}

/* Drain the ring's commands and drop the LUN (and the image, flushed,
 * when it is to be reopened or let go). The event loop is not pumping
 * meanwhile. Returns the flush's result. */
static int close_medium(struct tcmu_served *s, bool image_too)
{
    int r = 0;
    if (s->ring_up)
        tcmu_dev_drain(&s->dev);
    if (s->lun) {
        scsi_disp_detach(s->dm->disp, s->lun);
        if (s->ring_up)
            tcmu_dev_set_lun(&s->dev, NULL);
        scsi_lun_destroy(s->lun);
        s->lun = NULL;
    }
    if (image_too && s->bs) {
        /* What the initiator wrote and never synchronised is made
         * durable: the image is let go (stop, removal, a new image). */
        struct scuse_err err = { 0 };
        r = s->bs->read_only ? 0 : blk_flush(s->bs, &err);
        if (r < 0)
            log_error("tcmu %s: flush failed: %s", s->label,
                      err.msg[0] ? err.msg : strerror(-r));
        blk_close(s->bs);
        s->bs = NULL;
    }
    return r;
}

/* A device found at start-up: the kernel completes with BUSY whatever an
 * earlier daemon left on the ring (the initiator retries it) and starts
 * the ring over; logged with how much was outstanding. */
static void reset_ring(struct tcmu_served *s)
{
    uint32_t head = 0, tail = 0, size = 0;
    if (s->uio.map_size >= sizeof(struct tcmu_mailbox)) {
        struct tcmu_mailbox *mb = s->map;
        head = __atomic_load_n(&mb->cmd_head, __ATOMIC_ACQUIRE);
        tail = __atomic_load_n(&mb->cmd_tail, __ATOMIC_ACQUIRE);
        size = mb->cmdr_size;
    }
    uint32_t pending = head >= tail ? head - tail : size > tail ? size - tail + head : 0;
    struct scuse_err err = { 0 };
    if (tcmu_cfs_reset_ring(s->dm->configfs, s->uio.name.hba, s->uio.name.dev, &err) < 0)
        log_warn("tcmu %s: ring not reset: %s", s->label, err.msg);
    else
        log_info("tcmu %s: found at start-up: ring reset, %u bytes of entries were outstanding "
                 "(cmd_head %u, cmd_tail %u): the kernel completed their commands with BUSY",
                 s->label, pending, head, tail);
}

int tcmu_served_open(struct tcmu_daemon *dm, const struct tcmu_uio_dev *u,
                     bool medium_required, bool reset, struct tcmu_served **out,
                     struct scuse_err *err)
{
    *out = NULL;
    struct tcmu_served *s = calloc(1, sizeof(*s));
    if (!s)
        return err_set(err, -ENOMEM, "out of memory");
    s->dm = dm;
    s->uio = *u;
    s->fd = -1;
    snprintf(s->label, sizeof(s->label), "user_%u/%s (uio%u)", u->name.hba, u->name.dev,
             u->minor);
    int r = tcmu_config_parse(u->name.config, &s->img, err);
    if (r == 0)
        r = err_set(err, -EINVAL, "%s: dev_config '%s' does not name scuse", s->label,
                    u->name.config);
    if (r < 0 || (r = lun_settings(s, err)) < 0 ||
        (r = tcmu_config_policy(&s->img, &s->lcfg, err)) < 0)
        goto fail;
    struct scuse_err merr = { 0 };
    r = open_medium(s, &s->img, &merr);
    if (r < 0) {
        if (medium_required) {
            err_set(err, r, "%s: %s", s->label, merr.msg);
            goto fail;
        }
        log_error("tcmu %s: %s; serving it without medium (NOT READY)", s->label, merr.msg);
    }
    if ((r = tcmu_uio_open(dm->dev_dir, u->minor, u->map_size, &s->fd, &s->map, err)) < 0)
        goto fail;
    if (reset)
        reset_ring(s);
    if ((r = tcmu_dev_init(&s->dev, s->map, u->map_size, s->label, dm->disp, s->lun, kick, s,
                           err)) < 0)
        goto fail;
    s->ring_up = true;
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = s };
    if (epoll_ctl(dm->epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
        if (errno != EPERM) {
            r = err_set(err, -errno, "%s: epoll: %s", s->label, strerror(errno));
            goto fail;
        }
        /* Not a device that can be polled (a plain file standing in for
         * one): pumped when the daemon is woken (tcmu_daemon_wake). */
        log_warn("tcmu %s: cannot be polled; pumped only when the daemon is woken", s->label);
    }
    s->next = dm->served;
    dm->served = s;
    dm->n_served++;
    log_info("tcmu %s: serving %s (%s, %" PRIu64 " bytes, %u-byte blocks, write cache %s%s%s)",
             s->label, s->img.path,
             !s->bs ? "no medium" : s->img.domain ? "a domain's disk" :
             s->img.fmt[0] ? s->img.fmt : "format probed",
             s->bs ? s->bs->size : 0, s->lcfg.block_size, s->lcfg.write_cache ? "on" : "off",
             s->img.policy[0] ? ", commands " : "", s->img.policy);
    *out = s;
    tcmu_served_pump(s);
    return 0;
fail:
    if (s->ring_up)
        tcmu_dev_fini(&s->dev);
    close_medium(s, true);
    tcmu_uio_close(s->fd, s->map, u->map_size);
    free(s);
    return r;
}

int tcmu_served_close(struct tcmu_served *s)
{
    struct tcmu_daemon *dm = s->dm;
    for (struct tcmu_served **p = &dm->served; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            dm->n_served--;
            break;
        }
    }
    epoll_ctl(dm->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    int r = close_medium(s, true);
    uint64_t cmds = 0, tmrs = 0, pads = 0;
    if (s->ring_up) {
        cmds = s->dev.n_cmds;
        tmrs = s->dev.n_tmrs;
        pads = s->dev.ring.n_pads;
        tcmu_dev_fini(&s->dev);
    }
    tcmu_uio_close(s->fd, s->map, s->uio.map_size);
    log_info("tcmu %s: no longer served (%" PRIu64 " commands, %" PRIu64 " TMRs, %" PRIu64
             " PAD entries)", s->label, cmds, tmrs, pads);
    free(s);
    return r;
}

int tcmu_served_reconfig(struct tcmu_served *s, const struct tcmu_nl_event *ev,
                         struct scuse_err *err)
{
    int r;
    if (ev->has_wc) {
        /* The LUN's power-on WCE changes: a new LUN over the same image,
         * and the initiator is told its mode data changed. */
        s->lcfg.write_cache = ev->wc;
        close_medium(s, false);
        if ((r = open_medium(s, &s->img, err)) < 0)
            return r;
        scsi_lun_raise_ua(s->lun, SCSI_UA_MODE_CHANGED);
        log_info("tcmu %s: write cache %s", s->label, ev->wc ? "on" : "off");
        return 0;
    }
    if (ev->has_size) {
        /* The size is the image's: reopen it (a raw file may have grown)
         * and accept the new dev_size only when they agree. */
        uint64_t old = s->bs ? s->bs->size : 0;
        close_medium(s, true);
        if ((r = open_medium(s, &s->img, err)) < 0)
            return r;
        if (s->bs->size != old)
            scsi_lun_raise_ua(s->lun, SCSI_UA_CAPACITY_CHANGED);
        if (s->bs->size != ev->size)
            return err_set(err, -EINVAL, "%s: dev_size %" PRIu64 " but %s is %" PRIu64 " bytes "
                           "(resize the image first)", s->label, ev->size, s->img.path,
                           s->bs->size);
        log_info("tcmu %s: %" PRIu64 " bytes", s->label, ev->size);
        return 0;
    }
    struct tcmu_image_cfg img;
    r = tcmu_config_parse(ev->cfg, &img, err);
    if (r == 0)
        return err_set(err, -EINVAL, "%s: dev_config '%s' does not name scuse (a served device "
                       "cannot be handed to another handler)", s->label, ev->cfg);
    if (r < 0)
        return r;
    /* The new dev_config may bring another command policy. */
    struct scsi_lun_config old = s->lcfg;
    if ((r = tcmu_config_policy(&img, &s->lcfg, err)) < 0)
        return r;
    close_medium(s, true);
    if ((r = open_medium(s, &img, err)) < 0) {
        struct scuse_err back = { 0 };
        s->lcfg = old;
        if (open_medium(s, &s->img, &back) < 0)
            log_error("tcmu %s: cannot reopen %s either: %s; serving without medium", s->label,
                      s->img.path, back.msg);
        return r;
    }
    s->img = img;
    snprintf(s->uio.name.config, sizeof(s->uio.name.config), "%s", ev->cfg);
    scsi_lun_raise_ua(s->lun, SCSI_UA_POWER_ON);
    log_info("tcmu %s: now serving %s", s->label, img.path);
    return 0;
}

/* A broken ring: once its commands are back, reset it in the kernel and
 * start over (at most every RECOVERY_MS; until then a retry is due). */
static void recover(struct tcmu_served *s)
{
    uint64_t now = tcmu_now_ms();
    if (s->last_recovery_ms && now - s->last_recovery_ms < RECOVERY_MS) {
        s->retry_ms = s->last_recovery_ms + RECOVERY_MS;
        return;
    }
    s->last_recovery_ms = now;
    tcmu_dev_fini(&s->dev);
    s->ring_up = false;
    struct scuse_err err = { 0 };
    if (tcmu_cfs_reset_ring(s->dm->configfs, s->uio.name.hba, s->uio.name.dev, &err) < 0 ||
        tcmu_dev_init(&s->dev, s->map, s->uio.map_size, s->label, s->dm->disp, s->lun, kick, s,
                      &err) < 0) {
        log_error("tcmu %s: cannot reset the broken ring: %s", s->label, err.msg);
        epoll_ctl(s->dm->epfd, EPOLL_CTL_DEL, s->fd, NULL);
        return;
    }
    s->ring_up = true;
    log_warn("tcmu %s: ring reset; commands it held were completed with BUSY", s->label);
}

void tcmu_served_pump(struct tcmu_served *s)
{
    s->retry_ms = 0;
    if (!s->ring_up)
        return;
    int r = tcmu_dev_pump(&s->dev);
    if (r == -EIO)
        recover(s);
    else if (r == -ENOMEM)
        s->retry_ms = tcmu_now_ms() + SLOT_RETRY_MS;
}
