/* The device's state, shared by dev.c (rings, lifecycle) and dev_msg.c
 * (message handlers). */
#ifndef SCUSE_VHOST_DEV_INT_H
#define SCUSE_VHOST_DEV_INT_H

#include "vhost/dev.h"
#include "vhost/msg.h"

struct vhost_dev {
    int sock, epfd, wake_fd;
    const struct vhost_dev_ops *ops;
    void *opaque;
    uint64_t features;              /* acked by the driver (SET_FEATURES) */
    bool features_set;
    uint64_t protocol_features;     /* acked by the front-end */
    struct vhost_mem mem;
    unsigned nvqs;                  /* highest vq index configured + 1 */
    struct vhost_vq vq[VHOST_MAX_VQS];
    struct vhu_msg msg;             /* the message being handled */
};

/* dev.c */
/* Start vq (kick fd given): map, reset per-start state, ring_start. */
void dev_ring_start(struct vhost_dev *d, struct vhost_vq *vq);
/* Stop vq: no more pops, wait for requests in flight, ring_stop, drop
 * the kick fd. */
void dev_ring_stop(struct vhost_dev *d, struct vhost_vq *vq);
/* Replace vq's kick fd (-1: none), watching it in the loop. */
void dev_set_kick(struct vhost_dev *d, struct vhost_vq *vq, int fd);
/* Around a memory table change: drain every ring and let the device drop
 * its pointers; afterwards remap the rings and look for work. */
void dev_mem_begin(struct vhost_dev *d);
void dev_mem_end(struct vhost_dev *d);
void dev_process(struct vhost_dev *d, struct vhost_vq *vq);

/* dev_msg.c: one checked message; returns 0 or a negative errno, with
 * the reply already sent for GET_* requests. */
int dev_dispatch(struct vhost_dev *d, struct vhu_msg *m, struct scuse_err *err);

#endif
