/* A vhost-user front-end for tests, playing QEMU's part: guest RAM in a
 * memfd shared with the back-end (two regions around a hole, as QEMU's
 * q35 layout below 1 MiB), the vhost-user messages in QEMU 7.2's order,
 * split rings built in that RAM by hand, and virtio-scsi requests laid
 * out over descriptors in any split (odd offsets, separate buffers,
 * indirect tables). Failures fail the calling cmocka test.
 *
 * `scuse serve` runs as a child process (SCUSE names the binary); its
 * stderr goes to the scratch directory (tu_dir) as serve.log. */
#ifndef SCUSE_TEST_VHOST_FRONT_H
#define SCUSE_TEST_VHOST_FRONT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/virtio_scsi.h>

#include "vhost/proto.h"

#define F_RAM_SIZE (64u << 20)
#define F_HOLE_START 0xa0000u       /* guest-physical hole [0xa0000, 0xc0000) */
#define F_HOLE_END 0xc0000u
#define F_UVA_BASE 0x7f3a00000000ull /* the "QEMU virtual address" of RAM byte 0 */
#define F_MAX_VQS 8
#define F_TIMEOUT_MS 10000

/* ---- the back-end process ---- */

struct f_server {
    pid_t pid;
    char sock[256];
    char log[256];
};
/* Start `scuse serve --vhost-user-scsi DIR/NAME.sock ARGS...` (NULL
 * terminated) and wait for its socket; -vv is added. */
void f_server_start(struct f_server *s, const char *name, ...) __attribute__((sentinel));
/* SIGTERM (or nothing when it should exit by itself) and wait; returns
 * its exit status (128 + signal when killed). */
int f_server_stop(struct f_server *s, bool term);
int f_server_wait(struct f_server *s);
void f_server_signal(struct f_server *s, int sig);
/* Whether the log has a line containing text. */
bool f_log_has(const struct f_server *s, const char *text);

/* ---- rings as the driver sees them ---- */

struct f_vq {
    unsigned index;
    uint16_t num;
    uint64_t desc_gpa, avail_gpa, used_gpa;
    int kick, call, err;            /* our ends of the eventfds (sent to the back-end) */
    uint16_t avail_idx;             /* next avail index we publish */
    uint16_t used_seen;             /* used entries consumed */
    uint16_t free_head[32768];      /* free descriptor indexes (a stack) */
    unsigned nfree;
    bool started;
};

struct f_used {
    uint32_t id, len;
};

/* ---- the connection ---- */

struct front {
    int sock;
    int memfd;
    uint8_t *ram;
    uint64_t alloc_next;            /* bump allocator in guest RAM */
    uint64_t alloc_floor;           /* where it wraps to: above every ring */
    uint64_t features;              /* offered by the back-end */
    uint64_t protocol_features;
    struct f_vq vq[F_MAX_VQS];
};

/* Connect (and map RAM); no message yet. */
void f_connect(struct front *f, const struct f_server *s);
void f_disconnect(struct front *f);
/* Bytes of guest RAM at gpa (inside RAM). */
void *f_ptr(struct front *f, uint64_t gpa);
/* Allocate len bytes of guest RAM above 1 MiB, aligned; never the hole.
 * When RAM runs out it starts again above the last ring set up. */
uint64_t f_alloc(struct front *f, size_t len, size_t align);

/* Messages. f_send: header + payload + fds; returns 0 or -errno.
 * f_reply: read a reply to request (payload of want bytes); fails the
 * test on timeout or mismatch. f_ack: f_send with NEED_REPLY and the
 * u64 REPLY_ACK status (0 = success). */
int f_send(struct front *f, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
           const int *fds, unsigned nfds);
void f_reply(struct front *f, uint32_t req, void *payload, uint32_t want);
uint64_t f_ack(struct front *f, uint32_t req, const void *payload, uint32_t size,
               const int *fds, unsigned nfds);
uint64_t f_get_u64(struct front *f, uint32_t req);
/* True when the back-end closed the connection within timeout_ms. */
bool f_closed(struct front *f, int timeout_ms);

/* QEMU 7.2's device creation: features, protocol features (MQ,
 * REPLY_ACK, CONFIGURE_MEM_SLOTS as offered), queue num, max mem slots,
 * owner, CALL+ERR for nvqs vqs. */
void f_init_device(struct front *f, unsigned nvqs);
/* ADD_MEM_REG of the two RAM regions (with reply-ack). */
void f_add_memory(struct front *f);
void f_set_features(struct front *f, uint64_t features);
/* Build vq i of num entries in fresh guest RAM and send NUM, BASE,
 * ADDR and (unless no_kick) KICK. */
void f_vq_setup(struct front *f, unsigned i, uint16_t num, uint16_t base, bool kick);
void f_vq_kick_fd(struct front *f, unsigned i);
void f_vq_call_fd(struct front *f, unsigned i);
void f_vq_enable(struct front *f, unsigned i, bool on);
/* GET_VRING_BASE: stops the ring; the base it answers. */
uint16_t f_vq_stop(struct front *f, unsigned i);

/* Ring access. */
struct vring_desc;
struct vring_desc *f_desc(struct front *f, unsigned i);
uint16_t f_desc_get(struct front *f, unsigned i);
void f_desc_put(struct front *f, unsigned i, uint16_t d);
/* Publish head in the avail ring (idx after a release fence) and kick
 * unless no_kick. */
void f_publish(struct front *f, unsigned i, uint16_t head, bool kick);
void f_kick(struct front *f, unsigned i);
/* Used entries not yet consumed (none: wait up to timeout_ms). Returns
 * how many were written into out (at most max). */
unsigned f_used(struct front *f, unsigned i, struct f_used *out, unsigned max, int timeout_ms);
/* Wait for exactly n more used entries (fails the test otherwise). */
void f_used_wait(struct front *f, unsigned i, struct f_used *out, unsigned n);
long long f_now_ms(void);
/* EVENT_IDX fields. */
void f_set_used_event(struct front *f, unsigned i, uint16_t v);
uint16_t f_avail_event(struct front *f, unsigned i);
/* Read (and reset) the call / err eventfd counter; 0 if not signalled. */
uint64_t f_calls(struct front *f, unsigned i);
uint64_t f_errs(struct front *f, unsigned i);

/* ---- virtio-scsi requests (front_scsi.c) ---- */

/* A byte stream cut into pieces, each in its own guest buffer. */
struct f_piece {
    uint64_t gpa;
    size_t len;
};

struct f_scsi {
    /* in */
    uint8_t lun[8];
    uint64_t tag;
    uint8_t attr;
    uint8_t cdb[32];
    const void *dout;
    size_t dout_len;
    size_t din_len;
    size_t resp_len;                /* writable bytes for the response (default: 108) */
    size_t req_len;                 /* readable bytes for the header (default: 51) */
    const size_t *rsplit;           /* piece sizes of the readable stream (0-terminated) */
    const size_t *wsplit;
    bool indirect;
    /* set by f_scsi_post */
    uint16_t head;
    struct f_piece r[64], w[64];
    unsigned nr, nw;
    uint16_t descs[130];
    unsigned ndescs;
    /* set by f_scsi_finish */
    uint32_t used_len;
    struct virtio_scsi_cmd_resp resp;
    uint8_t *din;                   /* din_len bytes (malloc'd) */
};

void f_lun(uint8_t lun[8], unsigned target, unsigned id);
/* Lay the request out in guest RAM and publish it (kick unless no_kick). */
void f_scsi_post(struct front *f, unsigned vq, struct f_scsi *r, bool kick);
/* Take its used entry's length, read the response and data-in back, and
 * free its descriptors. */
void f_scsi_finish(struct front *f, unsigned vq, struct f_scsi *r, uint32_t used_len);
/* Post, wait for the one used entry, finish. */
void f_scsi_run(struct front *f, unsigned vq, struct f_scsi *r);
void f_scsi_free(struct f_scsi *r);
/* Free and zero (a request struct starts zeroed: `= { 0 }`). */
void f_scsi_reset(struct f_scsi *r);
/* Sense key/ASC/ASCQ from the response (fixed or descriptor format). */
void f_sense(const struct f_scsi *r, int *key, int *asc, int *ascq);

/* A plain request on queue vq, run: cdb of cdb_len bytes (r is reset
 * first: zeroed or used before). */
void f_cmd(struct front *f, unsigned vq, unsigned lun, const uint8_t *cdb, size_t cdb_len,
           const void *dout, size_t dout_len, size_t din_len, struct f_scsi *r);

#endif
