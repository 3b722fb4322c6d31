/* The front-end's requests, one handler each. Every field is checked
 * before use: vq indexes, ring sizes, addresses, the base index. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"
#include "vhost/dev_int.h"

static int reply_u64(struct vhost_dev *d, const struct vhu_msg *m, uint64_t v)
{
    int r = vhu_msg_reply(d->sock, m, &v, sizeof(v));
    return r < 0 ? r : 0;
}

/* The vq a request names, or NULL (err set). */
static struct vhost_vq *vq_of(struct vhost_dev *d, const struct vhu_msg *m, unsigned index,
                              struct scuse_err *err)
{
    if (index >= VHOST_MAX_VQS) {
        err_set(err, -ERANGE, "%s: vq index %u (this back-end serves at most %d vqs)",
                vhu_request_name(m->request), index, VHOST_MAX_VQS);
        return NULL;
    }
    if (index >= d->nvqs)
        d->nvqs = index + 1;
    return &d->vq[index];
}

static int set_features(struct vhost_dev *d, const struct vhu_msg *m, struct scuse_err *err)
{
    uint64_t f = m->p.u64;
    /* Bits QEMU passes from its own device properties whatever we offer:
     * the ones that change the ring layout or addressing are refused. */
    static const struct { unsigned bit; const char *name; } refused[] = {
        { VIRTIO_F_RING_PACKED, "packed rings" },
        { VIRTIO_F_ACCESS_PLATFORM, "an IOMMU (ACCESS_PLATFORM)" },
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        if (f & (1ull << refused[i].bit))
            return err_set(err, -ENOTSUP, "SET_FEATURES 0x%llx: %s are not supported",
                           (unsigned long long)f, refused[i].name);
    for (unsigned i = 0; i < d->nvqs; i++)
        if (d->vq[i].started)
            log_warn("SET_FEATURES 0x%llx while vq %u runs: it applies at its next start",
                     (unsigned long long)f, i);
    d->features = f;
    d->features_set = true;
    if (d->ops->set_features)
        d->ops->set_features(d->opaque, f);
    log_info("vhost-user: driver features 0x%llx", (unsigned long long)f);
    return 0;
}

/* RESET_OWNER / RESET_DEVICE: back to the state of a new connection,
 * protocol features kept. */
static void reset(struct vhost_dev *d)
{
    for (unsigned i = 0; i < d->nvqs; i++) {
        struct vhost_vq *vq = &d->vq[i];
        dev_ring_stop(d, vq);
        vq_set_call(vq, -1);
        if (vq->err_fd >= 0)
            close(vq->err_fd);
        vq->err_fd = -1;
        vq_unmap(vq);
        vq->num = 0;
        vq->addr_set = false;
        vq->last_avail = vq->shadow_avail = 0;
        vq->enabled = false;
        vq->broken = false;
    }
    vhost_mem_clear(&d->mem);
    d->features = 0;
    d->features_set = false;
}

static int set_mem_table(struct vhost_dev *d, struct vhu_msg *m, struct scuse_err *err)
{
    dev_mem_begin(d);
    vhost_mem_clear(&d->mem);
    int r = 0;
    for (uint32_t i = 0; i < m->p.mem.nregions; i++) {
        int fd = vhu_msg_take_fd(m, i);
        if (r == 0)
            r = vhost_mem_add(&d->mem, &m->p.mem.regions[i], fd, err);
        else
            close(fd);
    }
    if (r < 0) {
        err_prefix(err, "SET_MEM_TABLE: ");
        vhost_mem_clear(&d->mem);
    } else {
        log_info("vhost-user: memory table of %u regions", d->mem.n);
    }
    dev_mem_end(d);
    return r;
}

static int add_mem_reg(struct vhost_dev *d, struct vhu_msg *m, struct scuse_err *err)
{
    const struct vhu_region *reg = &m->p.reg.region;
    int r = vhost_mem_add(&d->mem, reg, vhu_msg_take_fd(m, 0), err);
    if (r < 0) {
        err_prefix(err, "ADD_MEM_REG: ");
        return r;
    }
    log_info("vhost-user: memory region gpa 0x%llx size 0x%llx added",
             (unsigned long long)reg->gpa, (unsigned long long)reg->size);
    /* Nothing mapped moved: only rings waiting for this region gain. */
    for (unsigned i = 0; i < d->nvqs; i++) {
        struct vhost_vq *vq = &d->vq[i];
        if (!vq->desc && vq->addr_set && vq->num && vq_map(vq, &d->mem, NULL) == 0)
            dev_process(d, vq);
    }
    return 0;
}

static int rem_mem_reg(struct vhost_dev *d, const struct vhu_msg *m, struct scuse_err *err)
{
    const struct vhu_region *reg = &m->p.reg.region;
    dev_mem_begin(d);
    int r = vhost_mem_remove(&d->mem, reg, err);
    if (r < 0)
        err_prefix(err, "REM_MEM_REG: ");
    else
        log_info("vhost-user: memory region gpa 0x%llx size 0x%llx removed",
                 (unsigned long long)reg->gpa, (unsigned long long)reg->size);
    dev_mem_end(d);
    return r;
}

static int set_vring_num(struct vhost_dev *d, const struct vhu_msg *m, struct scuse_err *err)
{
    struct vhost_vq *vq = vq_of(d, m, m->p.state.index, err);
    if (!vq)
        return -ERANGE;
    unsigned num = m->p.state.num;
    if (vq->started)
        return err_set(err, -EBUSY, "SET_VRING_NUM: vq %u is running", vq->index);
    if (num == 0 || num > VQ_MAX_SIZE || (num & (num - 1)))
        return err_set(err, -EINVAL, "SET_VRING_NUM: vq %u size %u (a power of 2 up to %d)",
                       vq->index, num, VQ_MAX_SIZE);
    vq->num = (uint16_t)num;
    vq_unmap(vq);
    return 0;
}

static int set_vring_addr(struct vhost_dev *d, const struct vhu_msg *m, struct scuse_err *err)
{
    const struct vhost_vring_addr *a = &m->p.addr;
    struct vhost_vq *vq = vq_of(d, m, a->index, err);
    if (!vq)
        return -ERANGE;
    if (a->flags & ~(1u << VHOST_VRING_F_LOG))
        return err_set(err, -EINVAL, "SET_VRING_ADDR: vq %u: unknown flags 0x%x", vq->index,
                       a->flags);
    if (a->desc_user_addr % VRING_DESC_ALIGN_SIZE || a->avail_user_addr % VRING_AVAIL_ALIGN_SIZE ||
        a->used_user_addr % VRING_USED_ALIGN_SIZE)
        return err_set(err, -EINVAL, "SET_VRING_ADDR: vq %u: misaligned ring (desc 0x%llx, "
                       "avail 0x%llx, used 0x%llx)", vq->index,
                       (unsigned long long)a->desc_user_addr,
                       (unsigned long long)a->avail_user_addr,
                       (unsigned long long)a->used_user_addr);
    if (vq->started) {
        /* QEMU repeats the addresses of a running ring to switch dirty
         * logging: nothing to remap (completions use the mapping now). */
        if (a->desc_user_addr != vq->desc_uva || a->avail_user_addr != vq->avail_uva ||
            a->used_user_addr != vq->used_uva)
            return err_set(err, -EBUSY, "SET_VRING_ADDR: vq %u is running", vq->index);
        return 0;
    }
    vq->desc_uva = a->desc_user_addr;
    vq->avail_uva = a->avail_user_addr;
    vq->used_uva = a->used_user_addr;
    vq->addr_set = true;
    if (!vq->num)
        return 0;
    int r = vq_map(vq, &d->mem, err);
    if (r < 0)
        err_prefix(err, "SET_VRING_ADDR: ");
    return r;
}

static int set_vring_base(struct vhost_dev *d, const struct vhu_msg *m, struct scuse_err *err)
{
    struct vhost_vq *vq = vq_of(d, m, m->p.state.index, err);
    if (!vq)
        return -ERANGE;
    if (vq->started)
        return err_set(err, -EBUSY, "SET_VRING_BASE: vq %u is running", vq->index);
    if (m->p.state.num > 0xffff)
        return err_set(err, -EINVAL, "SET_VRING_BASE: vq %u: base %u does not fit a split "
                       "ring's 16-bit index", vq->index, m->p.state.num);
    vq->last_avail = vq->shadow_avail = (uint16_t)m->p.state.num;
    return 0;
}

static int get_vring_base(struct vhost_dev *d, const struct vhu_msg *m, struct scuse_err *err)
{
    struct vhost_vq *vq = vq_of(d, m, m->p.state.index, err);
    if (!vq)
        return -ERANGE;
    dev_ring_stop(d, vq);
    struct vhost_vring_state st = { .index = vq->index, .num = vq->last_avail };
    return vhu_msg_reply(d->sock, m, &st, sizeof(st));
}

static int set_vring_fd(struct vhost_dev *d, struct vhu_msg *m, struct scuse_err *err)
{
    unsigned index = (unsigned)(m->p.u64 & VHU_VRING_IDX_MASK);
    struct vhost_vq *vq = vq_of(d, m, index, err);
    if (!vq)
        return -ERANGE;
    int fd = (m->p.u64 & VHU_VRING_NOFD) ? -1 : vhu_msg_take_fd(m, 0);
    switch (m->request) {
    case VHU_SET_VRING_KICK:
        if (fd < 0)
            return err_set(err, -ENOTSUP, "SET_VRING_KICK: vq %u without a kick fd (polling) "
                           "is not supported", index);
        dev_set_kick(d, vq, fd);
        if (!vq->started)
            dev_ring_start(d, vq);
        return 0;
    case VHU_SET_VRING_CALL:
        vq_set_call(vq, fd);
        return 0;
    default:
        if (vq->err_fd >= 0)
            close(vq->err_fd);
        vq->err_fd = fd;
        return 0;
    }
}

static int set_vring_enable(struct vhost_dev *d, const struct vhu_msg *m, struct scuse_err *err)
{
    struct vhost_vq *vq = vq_of(d, m, m->p.state.index, err);
    if (!vq)
        return -ERANGE;
    if (m->p.state.num > 1)
        return err_set(err, -EINVAL, "SET_VRING_ENABLE: vq %u: value %u (0 or 1)", vq->index,
                       m->p.state.num);
    vq->enabled = m->p.state.num;
    if (vq->enabled) {
        dev_process(d, vq);
    } else {
        /* Disabled: nothing is taken any more and nothing completes later. */
        vq_drain(vq);
    }
    return 0;
}

int dev_dispatch(struct vhost_dev *d, struct vhu_msg *m, struct scuse_err *err)
{
    switch (m->request) {
    case VHU_GET_FEATURES:
        return reply_u64(d, m, VHOST_TRANSPORT_FEATURES | d->ops->features);
    case VHU_SET_FEATURES:
        return set_features(d, m, err);
    case VHU_SET_OWNER:
        return 0;
    case VHU_RESET_OWNER:
    case VHU_RESET_DEVICE:
        reset(d);
        return 0;
    case VHU_GET_PROTOCOL_FEATURES:
        return reply_u64(d, m, VHOST_PROTOCOL_FEATURES);
    case VHU_SET_PROTOCOL_FEATURES:
        if (m->p.u64 & ~(uint64_t)VHOST_PROTOCOL_FEATURES)
            log_warn("SET_PROTOCOL_FEATURES 0x%llx: bits not offered are ignored",
                     (unsigned long long)m->p.u64);
        d->protocol_features = m->p.u64 & VHOST_PROTOCOL_FEATURES;
        return 0;
    case VHU_GET_QUEUE_NUM:
        return reply_u64(d, m, VHOST_MAX_VQS);
    case VHU_GET_MAX_MEM_SLOTS:
        return reply_u64(d, m, VHOST_MAX_MEM_SLOTS);
    case VHU_SET_MEM_TABLE:
        return set_mem_table(d, m, err);
    case VHU_ADD_MEM_REG:
        return add_mem_reg(d, m, err);
    case VHU_REM_MEM_REG:
        return rem_mem_reg(d, m, err);
    case VHU_SET_VRING_NUM:
        return set_vring_num(d, m, err);
    case VHU_SET_VRING_ADDR:
        return set_vring_addr(d, m, err);
    case VHU_SET_VRING_BASE:
        return set_vring_base(d, m, err);
    case VHU_GET_VRING_BASE:
        return get_vring_base(d, m, err);
    case VHU_SET_VRING_KICK:
    case VHU_SET_VRING_CALL:
    case VHU_SET_VRING_ERR:
        return set_vring_fd(d, m, err);
    case VHU_SET_VRING_ENABLE:
        return set_vring_enable(d, m, err);
    case VHU_SET_SLAVE_REQ_FD:
        return 0;                   /* not offered; its fd is closed with the message */
    default:
        return err_set(err, -ENOTSUP, "request %u (%s) is not supported", m->request,
                       vhu_request_name(m->request));
    }
}
