/* One split virtqueue as the device side sees it: the rings live in
 * guest memory (reached only through vhost_mem), the driver writes the
 * descriptor table and the avail ring, the device the used ring.
 *
 * Threads: the connection's loop thread configures the ring and pops
 * requests; completions (on dispatcher workers) push used elements and
 * notify under vq->lock. The loop waits for in-flight requests
 * (vq_drain) before it stops a ring or changes the memory table, so no
 * completion touches guest memory QEMU has taken back. */
#ifndef SCUSE_VHOST_VRING_H
#define SCUSE_VHOST_VRING_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <linux/virtio_ring.h>

#include "vhost/mem.h"

#define VQ_MAX_SIZE 32768           /* the split ring's limit */
#define VQ_MAX_ERR_LOGS 8           /* chain errors logged per ring start */

struct vhost_vq {
    unsigned index;

    /* Loop thread only. */
    uint16_t num;                   /* ring size, 0 = not set */
    bool addr_set;
    uint64_t desc_uva, avail_uva, used_uva;
    uint16_t last_avail;            /* next avail ring slot to take */
    uint16_t shadow_avail;          /* avail->idx as last read */
    bool started;                   /* SET_VRING_KICK seen, not stopped since */
    bool enabled;                   /* SET_VRING_ENABLE (or started without protocol features) */
    bool broken;                    /* a ring-level error: nothing more is taken */
    bool event_idx;                 /* VIRTIO_RING_F_EVENT_IDX, fixed at start */
    unsigned err_logs;
    int kick_fd;
    int err_fd;
    struct vring_desc *desc;        /* host pointers; NULL until mapped */
    struct vring_avail *avail;
    struct vring_used *used;

    /* Under lock (completions on other threads). */
    pthread_mutex_t lock;
    pthread_cond_t idle;
    int call_fd;
    uint16_t used_idx;
    uint16_t signalled_used;
    bool signalled_valid;
    unsigned inflight;              /* popped, not yet pushed */
    bool starved;                   /* the device ran out of request slots */
    int wake_fd;                    /* the loop's: written when a starved ring frees a slot */
};

/* One popped chain: iov[0..n_out) device-readable, then n_in writable. */
struct vq_elem {
    uint16_t head;
    uint16_t avail_pos;             /* the avail ring index it was taken from */
    struct iovec *iov;
    unsigned n_out, n_in;
    size_t out_len, in_len;
};

void vq_init(struct vhost_vq *vq, unsigned index);
void vq_destroy(struct vhost_vq *vq);
/* Set the ring's host pointers from its addresses (after SET_VRING_ADDR
 * and after every memory table change). Returns 0, or -EFAULT (and the
 * ring stays unmapped) when a part is outside the regions or misaligned. */
int vq_map(struct vhost_vq *vq, const struct vhost_mem *mem, struct scuse_err *err);
void vq_unmap(struct vhost_vq *vq);
/* Ready to take requests. */
bool vq_ready(const struct vhost_vq *vq);
/* Mark the ring broken (log line, error eventfd signalled). */
void vq_set_broken(struct vhost_vq *vq, const char *why);
/* Log a malformed request (the first VQ_MAX_ERR_LOGS per ring start). */
void vq_bad_request(struct vhost_vq *vq, uint16_t head, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Take the next chain into iov[0..max_iov). 1: e is filled; 0: nothing
 * available; -EBADMSG: the chain is malformed (logged): e->head is set and
 * the caller pushes it back with length 0; -EPROTO: the ring itself is
 * broken (vq_set_broken done), nothing was taken. */
int vq_pop(struct vhost_vq *vq, const struct vhost_mem *mem, struct vq_elem *e,
           struct iovec *iov, unsigned max_iov);
/* The ring looks empty: ask for a kick on the next buffer (EVENT_IDX:
 * publish avail_event) and look again. True if buffers came meanwhile. */
bool vq_enable_kicks(struct vhost_vq *vq);
/* Give back every chain taken from avail ring index to_pos on (none of
 * them pushed): the next pop takes them again. For buffers a device
 * holds (event queue) when its ring stops. */
void vq_rewind(struct vhost_vq *vq, uint16_t to_pos);

/* Under vq->lock: publish a used element, notify the driver if it wants
 * it (EVENT_IDX or NO_INTERRUPT), and count the request done. */
void vq_push_locked(struct vhost_vq *vq, uint16_t head, uint32_t len);
void vq_notify_locked(struct vhost_vq *vq);
/* Count one request in flight / done (done wakes vq_drain). */
void vq_get_locked(struct vhost_vq *vq);
void vq_put_locked(struct vhost_vq *vq);
/* Push, notify and put in one locked section. */
void vq_complete(struct vhost_vq *vq, uint16_t head, uint32_t len);
/* Push and notify, for requests answered on the loop thread and never
 * counted in flight (control and event queues). */
void vq_push_notify(struct vhost_vq *vq, uint16_t head, uint32_t len);
/* Wait until no request is in flight. */
void vq_drain(struct vhost_vq *vq);
/* Replace the call eventfd (closing the old one) and signal the new one
 * once, so a completion pushed while there was none is not lost. */
void vq_set_call(struct vhost_vq *vq, int fd);

#endif
