/* Split virtqueue: chain walk with limits, used ring publication and the
 * notification rules of both directions (VIRTIO 1.x, 2.7).
 *
 * Memory ordering with the driver (another process, other CPUs):
 *  - avail: read avail->idx with acquire before the ring entries and the
 *    descriptors it publishes;
 *  - used: write the element, then used->idx with release; a full fence
 *    before reading used_event / avail flags to decide on a notification
 *    (the driver writes those, then reads used->idx);
 *  - kicks: write avail_event, full fence, read avail->idx again.
 * Every value read from guest memory is read once into a local and
 * checked there: the driver may change it at any time. */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/log.h"
#include "vhost/vring.h"

void vq_init(struct vhost_vq *vq, unsigned index)
{
    memset(vq, 0, sizeof(*vq));
    vq->index = index;
    vq->kick_fd = vq->call_fd = vq->err_fd = vq->wake_fd = -1;
    pthread_mutex_init(&vq->lock, NULL);
    pthread_cond_init(&vq->idle, NULL);
}

void vq_destroy(struct vhost_vq *vq)
{
    if (vq->kick_fd >= 0)
        close(vq->kick_fd);
    if (vq->call_fd >= 0)
        close(vq->call_fd);
    if (vq->err_fd >= 0)
        close(vq->err_fd);
    vq->kick_fd = vq->call_fd = vq->err_fd = -1;
    pthread_mutex_destroy(&vq->lock);
    pthread_cond_destroy(&vq->idle);
}

static uint16_t load16(const volatile uint16_t *p, int order)
{
    return le16toh(__atomic_load_n(p, order));
}

int vq_map(struct vhost_vq *vq, const struct vhost_mem *mem, struct scuse_err *err)
{
    vq_unmap(vq);
    if (!vq->num || !vq->addr_set)
        return err_set(err, -EINVAL, "vq %u: ring size or addresses not set", vq->index);
    size_t n = vq->num;
    /* Avail and used rings with their event index fields at the end. */
    void *d = vhost_mem_uva_ptr(mem, vq->desc_uva, 16 * n);
    void *a = vhost_mem_uva_ptr(mem, vq->avail_uva, 4 + 2 * n + 2);
    void *u = vhost_mem_uva_ptr(mem, vq->used_uva, 4 + 8 * n + 2);
    const char *what = !d ? "descriptor table" : !a ? "avail ring" : !u ? "used ring" : NULL;
    if (what)
        return err_set(err, -EFAULT, "vq %u: the %s is outside guest memory", vq->index, what);
    if ((uintptr_t)d % VRING_DESC_ALIGN_SIZE || (uintptr_t)a % VRING_AVAIL_ALIGN_SIZE ||
        (uintptr_t)u % VRING_USED_ALIGN_SIZE)
        return err_set(err, -EFAULT, "vq %u: ring addresses misaligned (desc 0x%llx avail "
                       "0x%llx used 0x%llx)", vq->index, (unsigned long long)vq->desc_uva,
                       (unsigned long long)vq->avail_uva, (unsigned long long)vq->used_uva);
    vq->desc = d;
    vq->avail = a;
    vq->used = u;
    return 0;
}

void vq_unmap(struct vhost_vq *vq)
{
    vq->desc = NULL;
    vq->avail = NULL;
    vq->used = NULL;
}

bool vq_ready(const struct vhost_vq *vq)
{
    return vq->started && vq->enabled && !vq->broken && vq->desc;
}

void vq_set_broken(struct vhost_vq *vq, const char *why)
{
    if (vq->broken)
        return;
    vq->broken = true;
    log_error("vq %u: %s; the ring is stopped until the driver restarts it", vq->index, why);
    if (vq->err_fd >= 0 && eventfd_write(vq->err_fd, 1) < 0)
        log_debug("vq %u: cannot signal the error eventfd: %s", vq->index, strerror(errno));
}

void vq_bad_request(struct vhost_vq *vq, uint16_t head, const char *fmt, ...)
{
    if (vq->err_logs >= VQ_MAX_ERR_LOGS)
        return;
    char why[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    log_warn("vq %u: request at descriptor %u: %s%s", vq->index, head, why,
             ++vq->err_logs == VQ_MAX_ERR_LOGS ?
             " (further bad requests on this ring are not logged)" : "");
}

#define chain_error(vq, e, fmt, ...)                                                  \
    (vq_bad_request(vq, (e)->head, fmt "; answered with length 0", __VA_ARGS__), -EBADMSG)

/* Walk the chain at e->head into iov. */
static int walk(struct vhost_vq *vq, const struct vhost_mem *mem, struct vq_elem *e,
                struct iovec *iov, unsigned max_iov)
{
    const volatile struct vring_desc *table = vq->desc;
    unsigned size = vq->num, i = e->head, seen = 0, n = 0;
    bool indirect = false, writable = false;
    for (;;) {
        struct vring_desc d;
        memcpy(&d, (const void *)&table[i], sizeof(d));
        uint16_t flags = le16toh(d.flags);
        uint64_t addr = le64toh(d.addr);
        uint32_t len = le32toh(d.len);
        if (flags & VRING_DESC_F_INDIRECT) {
            if (indirect)
                return chain_error(vq, e, "descriptor %u of an indirect table is indirect "
                                   "itself", i);
            if (flags & VRING_DESC_F_NEXT)
                return chain_error(vq, e, "descriptor %u is both INDIRECT and NEXT", i);
            if (len == 0 || len % sizeof(struct vring_desc) ||
                len / sizeof(struct vring_desc) > VQ_MAX_SIZE)
                return chain_error(vq, e, "descriptor %u: indirect table of %u bytes", i, len);
            table = vhost_mem_gpa_ptr(mem, addr, len);
            if (!table)
                return chain_error(vq, e, "descriptor %u: indirect table at gpa 0x%llx is not "
                                   "inside one memory region", i, (unsigned long long)addr);
            size = len / sizeof(struct vring_desc);
            i = 0;
            seen = 0;
            indirect = true;
            continue;
        }
        /* A chain visits each descriptor of its table at most once: more
         * steps than the table has entries means a loop. */
        if (++seen > size)
            return chain_error(vq, e, "the chain is longer than its table of %u descriptors "
                               "(a loop?)", size);
        if (flags & VRING_DESC_F_WRITE)
            writable = true;
        else if (writable)
            return chain_error(vq, e, "descriptor %u is readable after a writable one", i);
        if (len) {
            int k = vhost_mem_gpa_iov(mem, addr, len, iov + n, max_iov - n);
            if (k == -E2BIG)
                return chain_error(vq, e, "more than %u memory segments (descriptor at gpa "
                                   "0x%llx)", max_iov, (unsigned long long)addr);
            if (k < 0)
                return chain_error(vq, e, "descriptor %u at gpa 0x%llx is outside guest "
                                   "memory", i, (unsigned long long)addr);
            n += (unsigned)k;
            if (flags & VRING_DESC_F_WRITE) {
                e->in_len += len;
                e->n_in += (unsigned)k;
            } else {
                e->out_len += len;
                e->n_out += (unsigned)k;
            }
            if (e->in_len > UINT32_MAX || e->out_len > UINT32_MAX)
                return chain_error(vq, e, "more than 4 GiB in one direction (descriptor "
                                   "%u)", i);
        }
        if (!(flags & VRING_DESC_F_NEXT))
            return 0;
        i = le16toh(d.next);
        if (i >= size)
            return chain_error(vq, e, "next descriptor %u is past the table of %u", i, size);
    }
}

int vq_pop(struct vhost_vq *vq, const struct vhost_mem *mem, struct vq_elem *e,
           struct iovec *iov, unsigned max_iov)
{
    if (!vq_ready(vq))
        return 0;
    if (vq->last_avail == vq->shadow_avail) {
        uint16_t idx = load16(&vq->avail->idx, __ATOMIC_ACQUIRE);
        if ((uint16_t)(idx - vq->last_avail) > vq->num) {
            char why[120];
            snprintf(why, sizeof(why), "avail index jumped from %u to %u (ring of %u)",
                     vq->last_avail, idx, vq->num);
            vq_set_broken(vq, why);
            return -EPROTO;
        }
        vq->shadow_avail = idx;
        if (idx == vq->last_avail)
            return 0;
    }
    uint16_t pos = vq->last_avail;
    uint16_t head = load16(&vq->avail->ring[pos % vq->num], __ATOMIC_RELAXED);
    if (head >= vq->num) {
        char why[120];
        snprintf(why, sizeof(why), "avail entry %u names descriptor %u (ring of %u)", pos, head,
                 vq->num);
        vq_set_broken(vq, why);
        return -EPROTO;
    }
    vq->last_avail++;
    memset(e, 0, sizeof(*e));
    e->head = head;
    e->avail_pos = pos;
    e->iov = iov;
    int r = walk(vq, mem, e, iov, max_iov);
    return r < 0 ? r : 1;
}

bool vq_enable_kicks(struct vhost_vq *vq)
{
    if (!vq_ready(vq))
        return false;
    if (vq->event_idx) {
        volatile uint16_t *avail_event = (volatile uint16_t *)&vq->used->ring[vq->num];
        __atomic_store_n(avail_event, htole16(vq->last_avail), __ATOMIC_RELAXED);
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    vq->shadow_avail = load16(&vq->avail->idx, __ATOMIC_ACQUIRE);
    return vq->shadow_avail != vq->last_avail;
}

void vq_rewind(struct vhost_vq *vq, uint16_t to_pos)
{
    if ((uint16_t)(vq->last_avail - to_pos) <= vq->num)
        vq->last_avail = to_pos;
    vq->shadow_avail = vq->last_avail;
}

void vq_push_locked(struct vhost_vq *vq, uint16_t head, uint32_t len)
{
    if (!vq->used)
        return;
    struct vring_used_elem *u = &vq->used->ring[vq->used_idx % vq->num];
    __atomic_store_n(&u->id, htole32(head), __ATOMIC_RELAXED);
    __atomic_store_n(&u->len, htole32(len), __ATOMIC_RELAXED);
    vq->used_idx++;
    __atomic_store_n(&vq->used->idx, htole16(vq->used_idx), __ATOMIC_RELEASE);
}

void vq_notify_locked(struct vhost_vq *vq)
{
    if (vq->call_fd < 0 || !vq->avail)
        return;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (vq->event_idx) {
        uint16_t old = vq->signalled_used, now = vq->used_idx;
        bool valid = vq->signalled_valid;
        vq->signalled_used = now;
        vq->signalled_valid = true;
        uint16_t used_event = load16(&vq->avail->ring[vq->num], __ATOMIC_RELAXED);
        if (valid && !vring_need_event(used_event, now, old))
            return;
    } else if (load16(&vq->avail->flags, __ATOMIC_RELAXED) & VRING_AVAIL_F_NO_INTERRUPT) {
        return;
    }
    if (eventfd_write(vq->call_fd, 1) < 0)
        log_debug("vq %u: cannot signal the call eventfd: %s", vq->index, strerror(errno));
}

void vq_get_locked(struct vhost_vq *vq)
{
    vq->inflight++;
}

void vq_put_locked(struct vhost_vq *vq)
{
    if (--vq->inflight == 0)
        pthread_cond_broadcast(&vq->idle);
}

void vq_complete(struct vhost_vq *vq, uint16_t head, uint32_t len)
{
    pthread_mutex_lock(&vq->lock);
    vq_push_locked(vq, head, len);
    vq_notify_locked(vq);
    vq_put_locked(vq);
    pthread_mutex_unlock(&vq->lock);
}

void vq_push_notify(struct vhost_vq *vq, uint16_t head, uint32_t len)
{
    pthread_mutex_lock(&vq->lock);
    vq_push_locked(vq, head, len);
    vq_notify_locked(vq);
    pthread_mutex_unlock(&vq->lock);
}

void vq_drain(struct vhost_vq *vq)
{
    pthread_mutex_lock(&vq->lock);
    while (vq->inflight)
        pthread_cond_wait(&vq->idle, &vq->lock);
    pthread_mutex_unlock(&vq->lock);
}

void vq_set_call(struct vhost_vq *vq, int fd)
{
    pthread_mutex_lock(&vq->lock);
    int old = vq->call_fd;
    vq->call_fd = fd;
    vq->signalled_valid = false;
    if (fd >= 0 && eventfd_write(fd, 1) < 0)
        log_debug("vq %u: cannot signal the new call eventfd: %s", vq->index, strerror(errno));
    pthread_mutex_unlock(&vq->lock);
    if (old >= 0)
        close(old);
}
