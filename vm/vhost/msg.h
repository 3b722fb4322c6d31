/* vhost-user messages on the socket: one message (header, payload, file
 * descriptors) at a time, checked against what its request code allows
 * before anything acts on it. */
#ifndef SCUSE_VHOST_MSG_H
#define SCUSE_VHOST_MSG_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"
#include "vhost/proto.h"

/* Largest payload accepted: the biggest message handled here is a full
 * SET_MEM_TABLE (8 + 8 * 32 bytes); anything larger ends the connection. */
#define VHU_MAX_PAYLOAD 512

struct vhu_msg {
    uint32_t request;
    uint32_t flags;
    uint32_t size;
    union {
        uint64_t u64;
        struct vhost_vring_state state;
        struct vhost_vring_addr addr;
        struct vhu_mem_table mem;
        struct vhu_mem_reg reg;
        uint8_t raw[VHU_MAX_PAYLOAD];
    } p;
    int fds[VHU_MAX_FDS];
    unsigned nfds;
};

/* Read one message from sock. 0: a message; -ECONNRESET: the peer closed
 * the socket between messages; other negative errno: the stream cannot
 * be trusted any more (short message, bad version, oversized payload,
 * descriptors cut off), err says why. File descriptors received are in
 * m->fds, owned by the caller (vhu_msg_close_fds). */
int vhu_msg_recv(int sock, struct vhu_msg *m, struct scuse_err *err);
void vhu_msg_close_fds(struct vhu_msg *m);
/* Take fds[i] out of the message (the caller now owns it). */
int vhu_msg_take_fd(struct vhu_msg *m, unsigned i);

/* Check the payload size and descriptor count the request code allows.
 * Returns 0 or -EINVAL with err naming the request and the field. */
int vhu_msg_check(const struct vhu_msg *m, struct scuse_err *err);

/* Requests answered with a payload of their own (the GET_* family); the
 * others are answered only with REPLY_ACK's status, when asked. */
bool vhu_msg_has_reply(const struct vhu_msg *m);

/* Send the reply to req: its code with the reply flag and size bytes. */
int vhu_msg_reply(int sock, const struct vhu_msg *req, const void *payload, uint32_t size);

const char *vhu_request_name(uint32_t request);

#endif
