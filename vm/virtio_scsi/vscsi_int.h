/* The virtio-scsi device's insides, shared by its files: vscsi.c (glue,
 * LUN addressing), vscsi_cmd.c (request queues), vscsi_ctrl.c (control
 * queue), vscsi_event.c (event queue). */
#ifndef SCUSE_VSCSI_INT_H
#define SCUSE_VSCSI_INT_H

#include <stdbool.h>

#include <linux/virtio_scsi.h>

#include "virtio_scsi/vscsi.h"

/* TMF response FUNCTION COMPLETE: 0, which the UAPI header names only
 * as VIRTIO_SCSI_S_OK. */
#ifndef VIRTIO_SCSI_S_FUNCTION_COMPLETE
#define VIRTIO_SCSI_S_FUNCTION_COMPLETE VIRTIO_SCSI_S_OK
#endif

#define VSCSI_TARGET 0              /* the one target served */
#define VSCSI_NO_LUN 0xffff         /* a LUN field no LUN can have */
#define VSCSI_CTRL_VQ 0
#define VSCSI_EVENT_VQ 1
#define VSCSI_FIRST_REQ_VQ 2

/* Requests in flight per request queue (slots preallocated at ring
 * start, fewer when the ring is smaller): more wait in the ring. */
#define VSCSI_MAX_SLOTS 1024
/* Memory segments of one request: Linux sends at most seg_max (126) data
 * segments plus the headers; a segment crossing a region edge is two. */
#define VSCSI_MAX_IOV 260
#define VSCSI_CTRL_IOV 16
#define VSCSI_EVENT_HOLD 64         /* event buffers held */
#define VSCSI_EVENT_IOV 8

struct vscsi_rq;

/* One request slot: the command and all the transport memory it names. */
struct vscsi_req {
    struct scsi_cmd cmd;
    struct vscsi_rq *rq;
    uint16_t head;
    struct iov_view resp;           /* the writable part: response header, data-in */
    uint8_t cdb[VIRTIO_SCSI_CDB_SIZE];
    uint8_t sense[SCSI_SENSE_MAX];
    struct vscsi_req *next_free;
    struct iovec iov[VSCSI_MAX_IOV];
};

/* A request queue. free is under vq->lock (completions return slots). */
struct vscsi_rq {
    struct vscsi *v;
    struct vhost_vq *vq;
    struct vscsi_req *slots;
    unsigned nslots;
    struct vscsi_req *free;
};

struct vscsi_held {
    uint16_t head, pos;
    unsigned n;
    size_t len;
    struct iovec iov[VSCSI_EVENT_IOV];
};

struct vscsi {
    struct vscsi_shared sh;
    struct vhost_dev *dev;
    bool f_change, f_t10_pi, f_hotplug;
    struct vscsi_rq *rq[VHOST_MAX_VQS];
    /* Event queue: buffers held, oldest first (loop thread only). */
    struct vscsi_held held[VSCSI_EVENT_HOLD];
    unsigned held_first, held_count;
    bool events_missed;
    struct iovec ctrl_iov[VSCSI_CTRL_IOV];
};

/* vscsi.c: the LUN field. 0 with *id set (VSCSI_NO_LUN for a malformed
 * address on our target), or -1 for another target. */
int vscsi_lun_decode(const uint8_t lun[8], uint16_t *id);
/* A LUN field for events (the REPORT LUNS form of the LUN). */
void vscsi_lun_encode(uint16_t id, uint8_t lun[8]);

/* vscsi_cmd.c */
int vscsi_rq_start(struct vscsi *v, struct vhost_vq *vq, struct scuse_err *err);
void vscsi_rq_kick(struct vscsi *v, struct vhost_vq *vq);
void vscsi_rq_stop(struct vscsi *v, struct vhost_vq *vq);

/* vscsi_ctrl.c */
void vscsi_ctrl_kick(struct vscsi *v, struct vhost_vq *vq);

/* vscsi_event.c */
void vscsi_event_kick(struct vscsi *v, struct vhost_vq *vq);
/* Give the held buffers back to the ring (stop, memory change). */
void vscsi_event_release(struct vscsi *v, struct vhost_vq *vq);

#endif
