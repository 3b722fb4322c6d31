/* virtio-scsi glue: the device ops vhost_dev calls, ring roles by index,
 * features and LUN addressing. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "virtio_scsi/vscsi_int.h"

int vscsi_lun_decode(const uint8_t lun[8], uint16_t *id)
{
    /* Byte 0 is 1, byte 1 the target, bytes 2-3 the LUN in peripheral
     * (00b, bus 0) or flat space (01b) addressing, the rest zero. */
    if (lun[0] != 1 || lun[1] != VSCSI_TARGET)
        return -1;
    uint8_t method = lun[2] >> 6;
    bool ok = (method == 1 || (method == 0 && (lun[2] & 0x3f) == 0)) &&
              !(lun[4] | lun[5] | lun[6] | lun[7]);
    *id = ok ? (uint16_t)(((lun[2] << 8) | lun[3]) & 0x3fff) : VSCSI_NO_LUN;
    return 0;
}

void vscsi_lun_encode(uint16_t id, uint8_t lun[8])
{
    /* As REPORT LUNS lists it (peripheral addressing below 256, flat
     * above): Linux looks the event's LUN up by those bytes, unmasked. */
    memset(lun, 0, 8);
    lun[0] = 1;
    lun[1] = VSCSI_TARGET;
    lun[2] = (uint8_t)(id < 256 ? 0 : 0x40 | (id >> 8));
    lun[3] = (uint8_t)id;
}

static void set_features(void *opaque, uint64_t features)
{
    struct vscsi *v = opaque;
    v->f_change = features & (1ull << VIRTIO_SCSI_F_CHANGE);
    v->f_t10_pi = features & (1ull << VIRTIO_SCSI_F_T10_PI);
    v->f_hotplug = features & (1ull << VIRTIO_SCSI_F_HOTPLUG);
}

static int ring_start(void *opaque, struct vhost_vq *vq, struct scuse_err *err)
{
    struct vscsi *v = opaque;
    if (vq->index >= VSCSI_FIRST_REQ_VQ)
        return vscsi_rq_start(v, vq, err);
    return 0;
}

static void ring_kick(void *opaque, struct vhost_vq *vq)
{
    struct vscsi *v = opaque;
    if (vq->index == VSCSI_CTRL_VQ)
        vscsi_ctrl_kick(v, vq);
    else if (vq->index == VSCSI_EVENT_VQ)
        vscsi_event_kick(v, vq);
    else
        vscsi_rq_kick(v, vq);
}

static void ring_quiesce(void *opaque, struct vhost_vq *vq)
{
    if (vq->index == VSCSI_EVENT_VQ)
        vscsi_event_release(opaque, vq);
}

static void ring_stop(void *opaque, struct vhost_vq *vq)
{
    struct vscsi *v = opaque;
    if (vq->index == VSCSI_EVENT_VQ)
        vscsi_event_release(v, vq);
    else if (vq->index >= VSCSI_FIRST_REQ_VQ)
        vscsi_rq_stop(v, vq);
}

const struct vhost_dev_ops vscsi_dev_ops = {
    /* HOTPLUG: LUNs added and removed through the control socket are
     * announced as TRANSPORT_RESET events (and Linux posts event buffers
     * only when HOTPLUG is negotiated, so PARAM_CHANGE needs it too). */
    .features = 1ull << VIRTIO_SCSI_F_CHANGE | 1ull << VIRTIO_SCSI_F_HOTPLUG,
    .set_features = set_features,
    .ring_start = ring_start,
    .ring_kick = ring_kick,
    .ring_quiesce = ring_quiesce,
    .ring_stop = ring_stop,
};

struct vscsi *vscsi_new(const struct vscsi_shared *sh, struct vhost_dev *dev)
{
    struct vscsi *v = calloc(1, sizeof(*v));
    if (!v) {
        log_error("virtio-scsi: out of memory for a device");
        return NULL;
    }
    v->sh = *sh;
    v->dev = dev;
    for (unsigned i = 0; i < scsi_target_count(sh->target); i++)
        scsi_lun_raise_ua(scsi_target_lun_at(sh->target, i), SCSI_UA_POWER_ON);
    return v;
}

void vscsi_free(struct vscsi *v)
{
    if (!v)
        return;
    for (unsigned i = 0; i < VHOST_MAX_VQS; i++) {
        if (v->rq[i])
            free(v->rq[i]->slots);
        free(v->rq[i]);
    }
    free(v);
}
