/* A vhost-user back-end device for one connection: the protocol state
 * (features, memory table, rings) driven by the front-end's messages, and
 * the hooks through which the device on top (virtio-scsi) serves its
 * rings. Everything here runs on the connection's loop thread, except
 * what vring.h says about completions. */
#ifndef SCUSE_VHOST_DEV_H
#define SCUSE_VHOST_DEV_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/virtio_config.h>

#include "util/err.h"
#include "vhost/mem.h"
#include "vhost/vring.h"

/* Virtqueues a device may use (virtio-scsi: control, event and up to 62
 * request queues). A larger index is refused with a log line. */
#define VHOST_MAX_VQS 64

/* Seconds the rest of a started message (or a reply) may take. */
#define VHOST_MSG_TIMEOUT_S 3

struct vhost_dev;

struct vhost_dev_ops {
    uint64_t features;              /* device-type feature bits offered */
    /* The driver's features (SET_FEATURES), before any ring starts. */
    void (*set_features)(void *opaque, uint64_t features);
    /* vq starts (its kick fd arrived): size what its requests need by
     * vq->num. A failure leaves the ring broken. */
    int (*ring_start)(void *opaque, struct vhost_vq *vq, struct scuse_err *err);
    /* Buffers may be waiting on vq (a kick, an enable, a freed slot). */
    void (*ring_kick)(void *opaque, struct vhost_vq *vq);
    /* Guest memory is about to change (requests already drained): drop
     * every pointer into it kept across kicks (vq_rewind held buffers). */
    void (*ring_quiesce)(void *opaque, struct vhost_vq *vq);
    /* vq stops (requests already drained): give back held buffers and
     * free what ring_start made. */
    void (*ring_stop)(void *opaque, struct vhost_vq *vq);
};

/* epoll event data of the connection's loop: kind << 32 | argument. */
enum vhost_ev_kind {
    VHOST_EV_LISTEN = 1,
    VHOST_EV_SOCK,
    VHOST_EV_WAKE,
    VHOST_EV_KICK,                  /* argument: vq index */
    VHOST_EV_WATCH,                 /* argument: the server's watch index */
};
static inline uint64_t vhost_ev(enum vhost_ev_kind kind, uint32_t arg)
{
    return (uint64_t)kind << 32 | arg;
}

/* Serve the connected socket sock (owned from now on) in the loop epfd:
 * the socket, a wake eventfd and the rings' kick fds are added to it. */
int vhost_dev_create(int sock, int epfd, const struct vhost_dev_ops *ops,
                     struct vhost_dev **out, struct scuse_err *err);
void vhost_dev_set_opaque(struct vhost_dev *d, void *opaque);
/* Stops every ring (waiting for requests in flight), unmaps guest memory
 * and closes every fd of the connection. */
void vhost_dev_destroy(struct vhost_dev *d);

/* The socket is readable: handle one message. 0: go on; negative: the
 * connection is over (the peer left, or its stream cannot be trusted). */
int vhost_dev_handle(struct vhost_dev *d);
/* A kick fd (vq index) or the wake eventfd is readable. */
void vhost_dev_kick(struct vhost_dev *d, unsigned index);
void vhost_dev_wake(struct vhost_dev *d);

const struct vhost_mem *vhost_dev_mem(const struct vhost_dev *d);
uint64_t vhost_dev_features(const struct vhost_dev *d);
/* vq index i if it exists (i < VHOST_MAX_VQS), else NULL. */
struct vhost_vq *vhost_dev_vq(struct vhost_dev *d, unsigned i);

/* Virtio feature bits the transport itself offers (besides the device's). */
#define VHOST_TRANSPORT_FEATURES                                                  \
    ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_INDIRECT_DESC) |          \
     (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES))
/* Protocol features offered. */
#define VHOST_PROTOCOL_FEATURES                                                   \
    ((1ull << VHU_PROTO_MQ) | (1ull << VHU_PROTO_REPLY_ACK) |                     \
     (1ull << VHU_PROTO_CONFIGURE_MEM_SLOTS))

#endif
