/* The event queue: the driver posts writable buffers, the device holds
 * them until it has something to report. Held buffers are always the
 * last ones taken from the ring (events use the oldest first), so
 * giving them back is rewinding the ring to the oldest one. */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "util/log.h"
#include "virtio_scsi/vscsi_int.h"

static unsigned hold_limit(const struct vhost_vq *vq)
{
    return vq->num < VSCSI_EVENT_HOLD ? vq->num : VSCSI_EVENT_HOLD;
}

/* Write an event into the oldest held buffer and hand it back. */
static bool deliver(struct vscsi *v, uint32_t event, const uint8_t lun[8], uint32_t reason)
{
    struct vhost_vq *vq = vhost_dev_vq(v->dev, VSCSI_EVENT_VQ);
    if (!vq_ready(vq) || v->held_count == 0)
        return false;
    struct vscsi_held *h = &v->held[v->held_first];
    v->held_first = (v->held_first + 1) % VSCSI_EVENT_HOLD;
    v->held_count--;
    struct virtio_scsi_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.event = htole32(event | (v->events_missed ? VIRTIO_SCSI_T_EVENTS_MISSED : 0));
    memcpy(ev.lun, lun, 8);
    ev.reason = htole32(reason);
    struct iov_view view = iov_view_make(h->iov, (int)h->n, h->len);
    iov_view_from_buf(&view, 0, &ev, sizeof(ev));
    vq_push_notify(vq, h->head, sizeof(ev));
    v->events_missed = false;
    return true;
}

void vscsi_event_kick(struct vscsi *v, struct vhost_vq *vq)
{
    const struct vhost_mem *mem = vhost_dev_mem(v->dev);
    while (v->held_count < hold_limit(vq)) {
        struct vscsi_held *h = &v->held[(v->held_first + v->held_count) % VSCSI_EVENT_HOLD];
        struct vq_elem e;
        int n = vq_pop(vq, mem, &e, h->iov, VSCSI_EVENT_IOV);
        if (n == 0 && vq_enable_kicks(vq))
            continue;
        if (n == 0 || n == -EPROTO)
            break;
        bool bad = n == -EBADMSG || e.n_out || e.in_len < sizeof(struct virtio_scsi_event);
        if (bad) {
            if (v->held_count) {
                /* Pushing it now would leave held buffers in the middle of
                 * the ring, which a stop could not give back. */
                vq_set_broken(vq, "malformed event buffer");
                break;
            }
            if (n != -EBADMSG)
                vq_bad_request(vq, e.head, "event buffer of %zu writable and %zu readable "
                               "bytes; answered with length 0", e.in_len, e.out_len);
            vq_push_notify(vq, e.head, 0);
            continue;
        }
        h->head = e.head;
        h->pos = e.avail_pos;
        h->n = e.n_in;
        h->len = e.in_len;
        v->held_count++;
    }
    if (v->events_missed) {
        static const uint8_t none[8];
        deliver(v, VIRTIO_SCSI_T_NO_EVENT, none, 0);
    }
}

void vscsi_event_release(struct vscsi *v, struct vhost_vq *vq)
{
    if (v->held_count)
        vq_rewind(vq, v->held[v->held_first].pos);
    v->held_first = v->held_count = 0;
}

/* Send an event about a LUN, or remember that one was missed (the
 * driver then rescans everything on the next event it gets). */
static void send_lun_event(struct vscsi *v, uint16_t lun_id, uint32_t event, uint32_t reason,
                           const char *what)
{
    uint8_t lun[8];
    vscsi_lun_encode(lun_id, lun);
    if (deliver(v, event, lun, reason)) {
        log_info("virtio-scsi: LUN %u: %s event sent", lun_id, what);
        /* A full hold stopped taking buffers without asking for kicks:
         * take what waits now that there is room. */
        vscsi_event_kick(v, vhost_dev_vq(v->dev, VSCSI_EVENT_VQ));
    } else {
        v->events_missed = true;
        log_info("virtio-scsi: LUN %u: no event buffer posted for %s; the next event says "
                 "events were missed", lun_id, what);
    }
}

void vscsi_capacity_changed(struct vscsi *v, uint16_t lun_id)
{
    if (!v->f_change)
        return;                     /* the unit attention tells the driver */
    /* reason: ASC in bits 0-7, ASCQ in 8-15 (CAPACITY DATA HAS CHANGED) */
    send_lun_event(v, lun_id, VIRTIO_SCSI_T_PARAM_CHANGE, 0x2a | 0x09 << 8, "PARAM_CHANGE");
}

void vscsi_lun_hotplug(struct vscsi *v, uint16_t lun_id, bool added)
{
    if (!v->f_hotplug)
        return;                     /* REPORTED LUNS DATA HAS CHANGED tells the driver */
    send_lun_event(v, lun_id, VIRTIO_SCSI_T_TRANSPORT_RESET,
                   added ? VIRTIO_SCSI_EVT_RESET_RESCAN : VIRTIO_SCSI_EVT_RESET_REMOVED,
                   added ? "TRANSPORT_RESET/RESCAN" : "TRANSPORT_RESET/REMOVED");
}
