/* The control queue: task management functions and asynchronous
 * notification queries, answered on the loop thread. A TMF returns when
 * the commands it names are out of the task set (their used elements
 * pushed): completions never need this thread, so waiting here is safe. */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "util/log.h"
#include "virtio_scsi/vscsi_int.h"

static const char *tmf_name(uint32_t subtype)
{
    static const char *const names[] = {
        "ABORT TASK", "ABORT TASK SET", "CLEAR ACA", "CLEAR TASK SET",
        "I_T NEXUS RESET", "LOGICAL UNIT RESET", "QUERY TASK", "QUERY TASK SET",
    };
    return subtype < sizeof(names) / sizeof(names[0]) ? names[subtype] : "unknown TMF";
}

static uint8_t tmf(struct vscsi *v, const struct virtio_scsi_ctrl_tmf_req *req)
{
    uint32_t subtype = le32toh(req->subtype);
    uint64_t tag = le64toh(req->tag);
    uint16_t id;
    if (vscsi_lun_decode(req->lun, &id) < 0)
        return VIRTIO_SCSI_S_BAD_TARGET;
    struct scsi_target *t = v->sh.target;
    struct scsi_disp *d = v->sh.disp;
    if (subtype == VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET) {
        log_info("virtio-scsi: I_T NEXUS RESET");
        for (unsigned i = 0; i < scsi_target_count(t); i++) {
            struct scsi_lun *lun = scsi_target_lun_at(t, i);
            scsi_abort_task_set(d, lun);
            scsi_lun_raise_ua(lun, SCSI_UA_NEXUS_LOSS);
        }
        return VIRTIO_SCSI_S_FUNCTION_COMPLETE;
    }
    struct scsi_lun *lun = scsi_target_lun(t, id);
    if (!lun)
        return VIRTIO_SCSI_S_INCORRECT_LUN;
    if (subtype != VIRTIO_SCSI_T_TMF_QUERY_TASK && subtype != VIRTIO_SCSI_T_TMF_QUERY_TASK_SET)
        log_info("virtio-scsi: LUN %u: %s (tag 0x%llx)", id, tmf_name(subtype),
                 (unsigned long long)tag);
    switch (subtype) {
    case VIRTIO_SCSI_T_TMF_ABORT_TASK:
        scsi_abort_task(d, lun, tag);
        return VIRTIO_SCSI_S_FUNCTION_COMPLETE;
    case VIRTIO_SCSI_T_TMF_ABORT_TASK_SET:
    case VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET:
        scsi_abort_task_set(d, lun);
        return VIRTIO_SCSI_S_FUNCTION_COMPLETE;
    case VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET:
        scsi_lun_reset(d, lun);
        return VIRTIO_SCSI_S_FUNCTION_COMPLETE;
    case VIRTIO_SCSI_T_TMF_QUERY_TASK:
        return scsi_query_task(d, lun, tag) ? VIRTIO_SCSI_S_FUNCTION_SUCCEEDED
                                            : VIRTIO_SCSI_S_FUNCTION_COMPLETE;
    case VIRTIO_SCSI_T_TMF_QUERY_TASK_SET:
        return scsi_query_task_set(d, lun) ? VIRTIO_SCSI_S_FUNCTION_SUCCEEDED
                                           : VIRTIO_SCSI_S_FUNCTION_COMPLETE;
    default:                        /* CLEAR ACA (no ACA here), unknown ones */
        return VIRTIO_SCSI_S_FUNCTION_REJECTED;
    }
}

/* One control request; returns the used length. */
static uint32_t handle(struct vscsi *v, struct vhost_vq *vq, const struct vq_elem *e)
{
    struct iov_view out = iov_view_make(e->iov, (int)e->n_out, e->out_len);
    struct iov_view in = iov_view_make(e->iov + e->n_out, (int)e->n_in, e->in_len);
    uint32_t type;
    if (e->out_len < sizeof(type)) {
        vq_bad_request(vq, e->head, "control request of %zu bytes; answered with length 0",
                       e->out_len);
        return 0;
    }
    iov_view_to_buf(&out, 0, &type, sizeof(type));
    type = le32toh(type);
    if (type == VIRTIO_SCSI_T_TMF) {
        struct virtio_scsi_ctrl_tmf_req req;
        struct virtio_scsi_ctrl_tmf_resp resp;
        if (e->out_len < sizeof(req) || e->in_len < sizeof(resp)) {
            vq_bad_request(vq, e->head, "TMF with %zu/%zu bytes (request/response); answered "
                           "with length 0", e->out_len, e->in_len);
            return 0;
        }
        iov_view_to_buf(&out, 0, &req, sizeof(req));
        resp.response = tmf(v, &req);
        iov_view_from_buf(&in, 0, &resp, sizeof(resp));
        return sizeof(resp);
    }
    if (type == VIRTIO_SCSI_T_AN_QUERY || type == VIRTIO_SCSI_T_AN_SUBSCRIBE) {
        struct virtio_scsi_ctrl_an_req req;
        struct virtio_scsi_ctrl_an_resp resp;
        if (e->out_len < sizeof(req) || e->in_len < sizeof(resp)) {
            vq_bad_request(vq, e->head, "AN request with %zu/%zu bytes (request/response); "
                           "answered with length 0", e->out_len, e->in_len);
            return 0;
        }
        iov_view_to_buf(&out, 0, &req, sizeof(req));
        uint16_t id;
        memset(&resp, 0, sizeof(resp));
        /* No asynchronous events are reported: none supported. */
        resp.response = vscsi_lun_decode(req.lun, &id) < 0 ? VIRTIO_SCSI_S_BAD_TARGET
                                                           : VIRTIO_SCSI_S_OK;
        iov_view_from_buf(&in, 0, &resp, sizeof(resp));
        return sizeof(resp);
    }
    vq_bad_request(vq, e->head, "control request type %u; answered with length 0", type);
    return 0;
}

void vscsi_ctrl_kick(struct vscsi *v, struct vhost_vq *vq)
{
    const struct vhost_mem *mem = vhost_dev_mem(v->dev);
    for (;;) {
        struct vq_elem e;
        int n = vq_pop(vq, mem, &e, v->ctrl_iov, VSCSI_CTRL_IOV);
        if (n == 1 || n == -EBADMSG) {
            vq_push_notify(vq, e.head, n == 1 ? handle(v, vq, &e) : 0);
            continue;
        }
        if (n == 0 && vq_enable_kicks(vq))
            continue;
        return;
    }
}
