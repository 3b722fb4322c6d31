/* virtio-scsi (VIRTIO 1.x, 5.6) over a vhost-user connection: request
 * queues handed to the SCSI core without copying data, the control queue
 * wired to the dispatcher's task management, the event queue for
 * capacity changes. One target (id 0) with the LUNs of a scsi_target;
 * other targets answer BAD_TARGET. */
#ifndef SCUSE_VSCSI_H
#define SCUSE_VSCSI_H

#include <stdbool.h>
#include <stdint.h>

#include "scsi/scsi.h"
#include "vhost/dev.h"

/* What outlives connections: the LUNs and the dispatcher running them. */
struct vscsi_shared {
    struct scsi_target *target;
    struct scsi_disp *disp;
};

struct vscsi;

/* The device ops vhost_dev calls with a struct vscsi as opaque. */
extern const struct vhost_dev_ops vscsi_dev_ops;

/* A device for a new connection: a new initiator, so every LUN gets a
 * power-on unit attention. */
struct vscsi *vscsi_new(const struct vscsi_shared *sh, struct vhost_dev *dev);
/* After vhost_dev_destroy (the rings are stopped). */
void vscsi_free(struct vscsi *v);

/* LUN lun_id changed capacity (its unit attention is raised already):
 * with VIRTIO_SCSI_F_CHANGE, a PARAM_CHANGE event (2Ah/09h) when the
 * driver has an event buffer posted, else the missed-events flag for the
 * next event. Loop thread. */
void vscsi_capacity_changed(struct vscsi *v, uint16_t lun_id);
/* LUN lun_id was added to the target (or removed from it): with
 * VIRTIO_SCSI_F_HOTPLUG, a TRANSPORT_RESET event with reason RESCAN (or
 * REMOVED), which Linux answers by probing (or deleting) that LUN. Loop
 * thread. */
void vscsi_lun_hotplug(struct vscsi *v, uint16_t lun_id, bool added);

#endif
