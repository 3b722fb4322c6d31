/* A connection's device: creation and teardown, ring start and stop, and
 * the loop events (socket message, kick, wake). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "util/log.h"
#include "vhost/dev_int.h"

static int watch(struct vhost_dev *d, int fd, uint64_t data)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = data };
    return epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* Kick fds are shared with the front-end: closing ours alone would leave
 * the epoll registration alive, so it is removed first. */
static void unwatch(struct vhost_dev *d, int fd)
{
    epoll_ctl(d->epfd, EPOLL_CTL_DEL, fd, NULL);
}

int vhost_dev_create(int sock, int epfd, const struct vhost_dev_ops *ops,
                     struct vhost_dev **out, struct scuse_err *err)
{
    *out = NULL;
    struct vhost_dev *d = calloc(1, sizeof(*d));
    if (!d) {
        close(sock);
        return err_set(err, -ENOMEM, "out of memory for a connection");
    }
    d->sock = sock;
    d->epfd = epfd;
    d->ops = ops;
    vhost_mem_init(&d->mem);
    d->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    for (unsigned i = 0; i < VHOST_MAX_VQS; i++) {
        vq_init(&d->vq[i], i);
        d->vq[i].wake_fd = d->wake_fd;
    }
    int r = d->wake_fd < 0 ? -errno : 0;
    /* A message arrives whole in one write; one that stops halfway must
     * not hold the loop (and with it signals and the next VM) forever. */
    struct timeval tv = { .tv_sec = VHOST_MSG_TIMEOUT_S };
    if (r == 0 && (setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
                   setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0))
        r = -errno;
    if (r == 0)
        r = watch(d, sock, vhost_ev(VHOST_EV_SOCK, 0));
    if (r == 0)
        r = watch(d, d->wake_fd, vhost_ev(VHOST_EV_WAKE, 0));
    if (r < 0) {
        err_set(err, r, "cannot set up the connection: %s", strerror(-r));
        vhost_dev_destroy(d);
        return r;
    }
    *out = d;
    return 0;
}

void vhost_dev_set_opaque(struct vhost_dev *d, void *opaque) { d->opaque = opaque; }

void vhost_dev_destroy(struct vhost_dev *d)
{
    if (!d)
        return;
    for (unsigned i = 0; i < VHOST_MAX_VQS; i++)
        dev_ring_stop(d, &d->vq[i]);
    for (unsigned i = 0; i < VHOST_MAX_VQS; i++)
        vq_destroy(&d->vq[i]);
    vhost_mem_clear(&d->mem);
    if (d->wake_fd >= 0) {
        unwatch(d, d->wake_fd);
        close(d->wake_fd);
    }
    unwatch(d, d->sock);
    close(d->sock);
    free(d);
}

const struct vhost_mem *vhost_dev_mem(const struct vhost_dev *d) { return &d->mem; }
uint64_t vhost_dev_features(const struct vhost_dev *d) { return d->features; }

struct vhost_vq *vhost_dev_vq(struct vhost_dev *d, unsigned i)
{
    return i < VHOST_MAX_VQS ? &d->vq[i] : NULL;
}

void dev_set_kick(struct vhost_dev *d, struct vhost_vq *vq, int fd)
{
    if (vq->kick_fd >= 0) {
        unwatch(d, vq->kick_fd);
        close(vq->kick_fd);
    }
    vq->kick_fd = fd;
    if (fd < 0)
        return;
    /* The front-end creates its eventfds non-blocking; make sure, since a
     * read must never stall the loop. */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK))
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    int r = watch(d, fd, vhost_ev(VHOST_EV_KICK, vq->index));
    if (r < 0)
        log_error("vq %u: cannot watch the kick fd: %s", vq->index, strerror(-r));
}

void dev_process(struct vhost_dev *d, struct vhost_vq *vq)
{
    if (vq_ready(vq) && d->ops->ring_kick)
        d->ops->ring_kick(d->opaque, vq);
}

void dev_ring_start(struct vhost_dev *d, struct vhost_vq *vq)
{
    struct scuse_err err = { 0 };
    vq->broken = false;
    vq->err_logs = 0;
    vq->event_idx = d->features & (1ull << VIRTIO_RING_F_EVENT_IDX);
    if (!(d->features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES)))
        vq->enabled = true;         /* no SET_VRING_ENABLE will come */
    vq->shadow_avail = vq->last_avail;
    if (vq_map(vq, &d->mem, &err) < 0) {
        /* Not fatal yet: a memory table change may make it mappable. */
        log_warn("%s", err.msg);
    }
    pthread_mutex_lock(&vq->lock);
    vq->used_idx = vq->used ? le16toh(__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE)) : 0;
    vq->signalled_valid = false;
    vq->starved = false;
    pthread_mutex_unlock(&vq->lock);
    vq->started = true;
    if (d->ops->ring_start && d->ops->ring_start(d->opaque, vq, &err) < 0) {
        vq->started = false;
        vq_set_broken(vq, err.msg);
        return;
    }
    log_debug("vq %u: started (size %u, base %u, used %u, event_idx %d, enabled %d)",
              vq->index, vq->num, vq->last_avail, vq->used_idx, vq->event_idx, vq->enabled);
    dev_process(d, vq);
}

void dev_ring_stop(struct vhost_dev *d, struct vhost_vq *vq)
{
    if (vq->started) {
        vq->started = false;
        vq_drain(vq);
        if (d->ops->ring_stop)
            d->ops->ring_stop(d->opaque, vq);
        log_debug("vq %u: stopped at avail index %u", vq->index, vq->last_avail);
    }
    dev_set_kick(d, vq, -1);
}

void dev_mem_begin(struct vhost_dev *d)
{
    for (unsigned i = 0; i < d->nvqs; i++) {
        struct vhost_vq *vq = &d->vq[i];
        vq_drain(vq);
        if (vq->started && d->ops->ring_quiesce)
            d->ops->ring_quiesce(d->opaque, vq);
        vq_unmap(vq);
    }
}

void dev_mem_end(struct vhost_dev *d)
{
    for (unsigned i = 0; i < d->nvqs; i++) {
        struct vhost_vq *vq = &d->vq[i];
        if (!vq->addr_set || !vq->num)
            continue;
        struct scuse_err err = { 0 };
        if (vq_map(vq, &d->mem, &err) < 0 && vq->started)
            log_warn("%s", err.msg);
    }
    for (unsigned i = 0; i < d->nvqs; i++)
        dev_process(d, &d->vq[i]);
}

int vhost_dev_handle(struct vhost_dev *d)
{
    struct scuse_err err = { 0 };
    struct vhu_msg *m = &d->msg;
    int r = vhu_msg_recv(d->sock, m, &err);
    if (r == -ECONNRESET) {
        log_info("vhost-user: the front-end closed the connection");
        return r;
    }
    if (r < 0) {
        log_error("vhost-user: %s; closing the connection", err.msg);
        return r;
    }
    log_debug("vhost-user: %s (size %u, %u fds, flags 0x%x)", vhu_request_name(m->request),
              m->size, m->nfds, m->flags);
    r = vhu_msg_check(m, &err);
    if (r == 0)
        r = dev_dispatch(d, m, &err);
    if (r < 0)
        log_error("vhost-user: %s", err.msg[0] ? err.msg : strerror(-r));
    vhu_msg_close_fds(m);
    if (vhu_msg_has_reply(m)) {
        /* A failed GET still gets an answer, or the front-end would wait
         * forever: an empty one it will refuse. */
        if (r < 0)
            vhu_msg_reply(d->sock, m, NULL, 0);
    } else if ((m->flags & VHU_FLAG_NEED_REPLY) &&
               (d->protocol_features & (1ull << VHU_PROTO_REPLY_ACK))) {
        uint64_t status = r < 0 ? 1 : 0;
        if (vhu_msg_reply(d->sock, m, &status, sizeof(status)) < 0)
            return -EPIPE;
    }
    return 0;
}

void vhost_dev_kick(struct vhost_dev *d, unsigned index)
{
    struct vhost_vq *vq = vhost_dev_vq(d, index);
    if (!vq || vq->kick_fd < 0)
        return;
    eventfd_t v;
    if (eventfd_read(vq->kick_fd, &v) < 0 && errno != EAGAIN)
        log_debug("vq %u: reading the kick fd: %s", index, strerror(errno));
    dev_process(d, vq);
}

void vhost_dev_wake(struct vhost_dev *d)
{
    eventfd_t v;
    if (eventfd_read(d->wake_fd, &v) < 0)
        return;
    for (unsigned i = 0; i < d->nvqs; i++)
        dev_process(d, &d->vq[i]);
}
