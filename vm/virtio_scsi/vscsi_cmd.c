/* Request queues: a chain is the request header and data-out (readable),
 * then the response header and data-in (writable), all byte streams over
 * any descriptor layout. The header is copied out (the driver could
 * change it); data stays in guest RAM and the SCSI core reads or writes
 * it there. Completions arrive on dispatcher workers, in any order. */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#include "util/log.h"
#include "virtio_scsi/vscsi_int.h"

#define RESP_SIZE sizeof(struct virtio_scsi_cmd_resp)

int vscsi_rq_start(struct vscsi *v, struct vhost_vq *vq, struct scuse_err *err)
{
    struct vscsi_rq *rq = v->rq[vq->index];
    unsigned n = vq->num < VSCSI_MAX_SLOTS ? vq->num : VSCSI_MAX_SLOTS;
    if (rq && rq->nslots != n) {
        free(rq->slots);
        free(rq);
        rq = v->rq[vq->index] = NULL;
    }
    if (!rq) {
        rq = calloc(1, sizeof(*rq));
        if (rq)
            rq->slots = calloc(n, sizeof(*rq->slots));
        if (!rq || !rq->slots) {
            free(rq);
            return err_set(err, -ENOMEM, "vq %u: out of memory for %u request slots",
                           vq->index, n);
        }
        rq->nslots = n;
        v->rq[vq->index] = rq;
    }
    rq->v = v;
    rq->vq = vq;
    rq->free = NULL;
    for (unsigned i = n; i-- > 0;) {
        rq->slots[i].rq = rq;
        rq->slots[i].next_free = rq->free;
        rq->free = &rq->slots[i];
    }
    return 0;
}

void vscsi_rq_stop(struct vscsi *v, struct vhost_vq *vq)
{
    /* Drained already: the slots stay allocated for the next start. */
    (void)v;
    (void)vq;
}

/* Push the request's used element, return its slot, and wake the loop if
 * it was waiting for a slot. Any thread; nothing of the request is
 * touched after the unlock. */
static void finish(struct vscsi_req *r, uint32_t len)
{
    struct vscsi_rq *rq = r->rq;
    struct vhost_vq *vq = rq->vq;
    pthread_mutex_lock(&vq->lock);
    vq_push_locked(vq, r->head, len);
    vq_notify_locked(vq);
    r->next_free = rq->free;
    rq->free = r;
    /* Under the lock: once the count drops the loop may stop the ring and
     * close the wake fd. */
    if (vq->starved && vq->wake_fd >= 0)
        eventfd_write(vq->wake_fd, 1);
    vq->starved = false;
    vq_put_locked(vq);
    pthread_mutex_unlock(&vq->lock);
}

/* A transport-level answer with no SCSI status. */
static void respond(struct vscsi_req *r, uint8_t response)
{
    struct virtio_scsi_cmd_resp resp;
    memset(&resp, 0, sizeof(resp));
    resp.response = response;
    iov_view_from_buf(&r->resp, 0, &resp, RESP_SIZE);
    finish(r, RESP_SIZE);
}

/* Completion of a SCSI command (a dispatcher worker, or the loop thread
 * for commands answered at once). */
static void req_done(struct scsi_cmd *cmd)
{
    struct vscsi_req *r = cmd->priv;
    struct virtio_scsi_cmd_resp resp;
    memset(&resp, 0, sizeof(resp));
    resp.status = cmd->status;
    resp.response = cmd->status == SCSI_STATUS_TASK_ABORTED ? VIRTIO_SCSI_S_ABORTED
                                                            : VIRTIO_SCSI_S_OK;
    uint32_t sl = cmd->sense_len < VIRTIO_SCSI_SENSE_SIZE ? cmd->sense_len
                                                          : VIRTIO_SCSI_SENSE_SIZE;
    resp.sense_len = htole32(sl);
    memcpy(resp.sense, r->sense, sl);
    if (cmd->overflow && cmd->status == SCSI_STATUS_GOOD) {
        /* The command wanted more than the buffer holds: as QEMU, an
         * overrun the driver must handle, no residual. */
        resp.response = VIRTIO_SCSI_S_OVERRUN;
    } else if (!cmd->overflow) {
        resp.resid = htole32(cmd->resid);
    }
    iov_view_from_buf(&r->resp, 0, &resp, RESP_SIZE);
    uint32_t len = RESP_SIZE + (cmd->dir == SCSI_DIR_FROM_DEV ? cmd->xfer : 0);
    finish(r, len);
}

static enum scsi_task_attr task_attr(uint8_t a)
{
    switch (a) {
    case VIRTIO_SCSI_S_ORDERED: return SCSI_TASK_ORDERED;
    case VIRTIO_SCSI_S_HEAD: return SCSI_TASK_HEAD_OF_QUEUE;
    case VIRTIO_SCSI_S_ACA: return SCSI_TASK_ACA;
    default: return SCSI_TASK_SIMPLE;
    }
}

static void handle(struct vscsi *v, struct vscsi_req *r, const struct vq_elem *e)
{
    struct vhost_vq *vq = r->rq->vq;
    size_t req_size = v->f_t10_pi ? sizeof(struct virtio_scsi_cmd_req_pi)
                                  : sizeof(struct virtio_scsi_cmd_req);
    struct iov_view out = iov_view_make(e->iov, (int)e->n_out, e->out_len);
    r->resp = iov_view_make(e->iov + e->n_out, (int)e->n_in, e->in_len);
    if (e->in_len < RESP_SIZE) {
        vq_bad_request(vq, e->head, "%zu writable bytes, less than a %zu-byte response; "
                       "answered with length 0", e->in_len, RESP_SIZE);
        finish(r, 0);
        return;
    }
    if (e->out_len < req_size) {
        vq_bad_request(vq, e->head, "%zu readable bytes, less than a %zu-byte request "
                       "header; answered FAILURE", e->out_len, req_size);
        respond(r, VIRTIO_SCSI_S_FAILURE);
        return;
    }
    union {
        struct virtio_scsi_cmd_req plain;
        struct virtio_scsi_cmd_req_pi pi;
    } h;
    iov_view_to_buf(&out, 0, &h, req_size);
    uint16_t id;
    if (vscsi_lun_decode(h.plain.lun, &id) < 0) {
        respond(r, VIRTIO_SCSI_S_BAD_TARGET);
        return;
    }
    if (v->f_t10_pi && (h.pi.pi_bytesout || h.pi.pi_bytesin)) {
        vq_bad_request(vq, e->head, "protection information is not supported; answered "
                       "FAILURE");
        respond(r, VIRTIO_SCSI_S_FAILURE);
        return;
    }
    size_t dout = e->out_len - req_size, din = e->in_len - RESP_SIZE;
    if (dout && din) {
        vq_bad_request(vq, e->head, "data in both directions (INOUT was not negotiated); "
                       "answered FAILURE");
        respond(r, VIRTIO_SCSI_S_FAILURE);
        return;
    }
    memcpy(r->cdb, v->f_t10_pi ? h.pi.cdb : h.plain.cdb, VIRTIO_SCSI_CDB_SIZE);
    struct scsi_cmd *c = &r->cmd;
    c->cdb = r->cdb;
    c->cdb_len = VIRTIO_SCSI_CDB_SIZE;
    if (dout) {
        c->data = iov_view_sub(&out, req_size, dout);
        c->dir = SCSI_DIR_TO_DEV;
    } else {
        c->data = iov_view_sub(&r->resp, RESP_SIZE, din);
        c->dir = din ? SCSI_DIR_FROM_DEV : SCSI_DIR_NONE;
    }
    c->sense = r->sense;
    c->tag = le64toh(h.plain.tag);
    c->attr = task_attr(h.plain.task_attr);
    c->done = req_done;
    c->priv = r;
    scsi_target_submit(v->sh.target, v->sh.disp, id, c);
}

void vscsi_rq_kick(struct vscsi *v, struct vhost_vq *vq)
{
    struct vscsi_rq *rq = v->rq[vq->index];
    const struct vhost_mem *mem = vhost_dev_mem(v->dev);
    if (!rq)
        return;
    for (;;) {
        pthread_mutex_lock(&vq->lock);
        struct vscsi_req *r = rq->free;
        if (!r) {
            vq->starved = true;     /* the next completion wakes the loop */
            pthread_mutex_unlock(&vq->lock);
            return;
        }
        rq->free = r->next_free;
        vq_get_locked(vq);
        pthread_mutex_unlock(&vq->lock);

        struct vq_elem e;
        int n = vq_pop(vq, mem, &e, r->iov, VSCSI_MAX_IOV);
        if (n == 1) {
            r->head = e.head;
            handle(v, r, &e);
            continue;
        }
        if (n == -EBADMSG) {
            r->head = e.head;
            finish(r, 0);
            continue;
        }
        pthread_mutex_lock(&vq->lock);
        r->next_free = rq->free;
        rq->free = r;
        vq_put_locked(vq);
        pthread_mutex_unlock(&vq->lock);
        if (n == 0 && vq_enable_kicks(vq))
            continue;
        return;
    }
}
