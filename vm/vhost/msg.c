/* Reading, checking and answering vhost-user messages. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vhost/msg.h"

const char *vhu_request_name(uint32_t request)
{
    static const char *const names[] = {
        [VHU_GET_FEATURES] = "GET_FEATURES",
        [VHU_SET_FEATURES] = "SET_FEATURES",
        [VHU_SET_OWNER] = "SET_OWNER",
        [VHU_RESET_OWNER] = "RESET_OWNER",
        [VHU_SET_MEM_TABLE] = "SET_MEM_TABLE",
        [VHU_SET_LOG_BASE] = "SET_LOG_BASE",
        [VHU_SET_LOG_FD] = "SET_LOG_FD",
        [VHU_SET_VRING_NUM] = "SET_VRING_NUM",
        [VHU_SET_VRING_ADDR] = "SET_VRING_ADDR",
        [VHU_SET_VRING_BASE] = "SET_VRING_BASE",
        [VHU_GET_VRING_BASE] = "GET_VRING_BASE",
        [VHU_SET_VRING_KICK] = "SET_VRING_KICK",
        [VHU_SET_VRING_CALL] = "SET_VRING_CALL",
        [VHU_SET_VRING_ERR] = "SET_VRING_ERR",
        [VHU_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
        [VHU_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
        [VHU_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
        [VHU_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
        [VHU_SEND_RARP] = "SEND_RARP",
        [VHU_NET_SET_MTU] = "NET_SET_MTU",
        [VHU_SET_SLAVE_REQ_FD] = "SET_SLAVE_REQ_FD",
        [VHU_IOTLB_MSG] = "IOTLB_MSG",
        [VHU_SET_VRING_ENDIAN] = "SET_VRING_ENDIAN",
        [VHU_GET_CONFIG] = "GET_CONFIG",
        [VHU_SET_CONFIG] = "SET_CONFIG",
        [VHU_GET_INFLIGHT_FD] = "GET_INFLIGHT_FD",
        [VHU_SET_INFLIGHT_FD] = "SET_INFLIGHT_FD",
        [VHU_RESET_DEVICE] = "RESET_DEVICE",
        [VHU_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS",
        [VHU_ADD_MEM_REG] = "ADD_MEM_REG",
        [VHU_REM_MEM_REG] = "REM_MEM_REG",
        [VHU_SET_STATUS] = "SET_STATUS",
        [VHU_GET_STATUS] = "GET_STATUS",
    };
    if (request < sizeof(names) / sizeof(names[0]) && names[request])
        return names[request];
    return "unknown request";
}

void vhu_msg_close_fds(struct vhu_msg *m)
{
    for (unsigned i = 0; i < m->nfds; i++)
        if (m->fds[i] >= 0)
            close(m->fds[i]);
    m->nfds = 0;
}

int vhu_msg_take_fd(struct vhu_msg *m, unsigned i)
{
    if (i >= m->nfds)
        return -1;
    int fd = m->fds[i];
    m->fds[i] = -1;
    return fd;
}

/* Reads exactly len bytes (the rest of a message the peer has sent). */
static int read_full(int sock, void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = recv(sock, (char *)buf + done, len - done, MSG_WAITALL);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n == 0 ? -EPIPE : -errno;
    }
    return 0;
}

int vhu_msg_recv(int sock, struct vhu_msg *m, struct scuse_err *err)
{
    uint32_t hdr[3];
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(VHU_MAX_FDS * sizeof(int))];
    } control;
    struct iovec iov = { hdr, sizeof(hdr) };
    struct msghdr mh = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.buf,
        .msg_controllen = sizeof(control.buf),
    };
    m->nfds = 0;
    ssize_t n;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_WAITALL);
    while (n < 0 && errno == EINTR);
    /* Descriptors arrive with the first bytes: collect them before any
     * check, so every exit below closes them. */
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char *data = CMSG_DATA(c);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, data + i * sizeof(int), sizeof(int));
            if (m->nfds < VHU_MAX_FDS)
                m->fds[m->nfds++] = fd;
            else
                close(fd);
        }
    }
    int r = 0;
    if (n == 0) {
        r = -ECONNRESET;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        r = err_set(err, -ETIMEDOUT, "a message header stopped halfway");
    } else if (n < 0) {
        r = err_set(err, -errno, "reading a message: %s", strerror(errno));
    } else if ((size_t)n < sizeof(hdr)) {
        r = err_set(err, -EPROTO, "the connection closed inside a message header");
    } else if (mh.msg_flags & MSG_CTRUNC) {
        r = err_set(err, -EPROTO, "more than %d file descriptors with one message", VHU_MAX_FDS);
    } else {
        m->request = hdr[0];
        m->flags = hdr[1];
        m->size = hdr[2];
        if ((m->flags & VHU_FLAG_VERSION_MASK) != VHU_VERSION)
            r = err_set(err, -EPROTO, "%s: protocol version %u (flags 0x%x), expected %u",
                        vhu_request_name(m->request), m->flags & VHU_FLAG_VERSION_MASK,
                        m->flags, VHU_VERSION);
        else if (m->size > VHU_MAX_PAYLOAD)
            r = err_set(err, -EPROTO, "%s: payload of %u bytes (at most %u)",
                        vhu_request_name(m->request), m->size, VHU_MAX_PAYLOAD);
        else if (m->size && (r = read_full(sock, m->p.raw, m->size)) < 0)
            r = err_set(err, r == -EPIPE ? -EPROTO : r, "%s: the %u-byte payload %s",
                        vhu_request_name(m->request), m->size,
                        r == -EAGAIN ? "stopped halfway" : "was cut by the end of the "
                        "connection");
    }
    if (r < 0)
        vhu_msg_close_fds(m);
    else
        memset(m->p.raw + m->size, 0, sizeof(m->p.raw) - m->size);
    return r;
}

/* Expected payload size (-1: checked by the handler) and descriptor
 * counts for each request handled. */
struct shape {
    int size;
    unsigned min_fds, max_fds;
};

static bool shape_of(uint32_t request, struct shape *s)
{
    switch (request) {
    case VHU_GET_FEATURES:
    case VHU_GET_PROTOCOL_FEATURES:
    case VHU_GET_QUEUE_NUM:
    case VHU_GET_MAX_MEM_SLOTS:
    case VHU_SET_OWNER:
    case VHU_RESET_OWNER:
    case VHU_RESET_DEVICE:
        *s = (struct shape){ 0, 0, 0 };
        return true;
    case VHU_SET_FEATURES:
    case VHU_SET_PROTOCOL_FEATURES:
        *s = (struct shape){ 8, 0, 0 };
        return true;
    case VHU_SET_VRING_NUM:
    case VHU_SET_VRING_BASE:
    case VHU_GET_VRING_BASE:
    case VHU_SET_VRING_ENABLE:
        *s = (struct shape){ (int)sizeof(struct vhost_vring_state), 0, 0 };
        return true;
    case VHU_SET_VRING_ADDR:
        *s = (struct shape){ (int)sizeof(struct vhost_vring_addr), 0, 0 };
        return true;
    case VHU_SET_VRING_KICK:
    case VHU_SET_VRING_CALL:
    case VHU_SET_VRING_ERR:
        *s = (struct shape){ 8, 0, 1 };     /* exactly 1 unless NOFD: checked below */
        return true;
    case VHU_SET_MEM_TABLE:
        *s = (struct shape){ -1, 1, VHU_MEM_TABLE_MAX };
        return true;
    case VHU_ADD_MEM_REG:
        *s = (struct shape){ (int)sizeof(struct vhu_mem_reg), 1, 1 };
        return true;
    case VHU_REM_MEM_REG:
        /* QEMU 7.2 may send the region's fd along; it is not needed. */
        *s = (struct shape){ (int)sizeof(struct vhu_mem_reg), 0, 1 };
        return true;
    case VHU_SET_SLAVE_REQ_FD:
        *s = (struct shape){ 0, 1, 1 };
        return true;
    default:
        return false;
    }
}

int vhu_msg_check(const struct vhu_msg *m, struct scuse_err *err)
{
    const char *name = vhu_request_name(m->request);
    struct shape s;
    if (!shape_of(m->request, &s))
        return err_set(err, -ENOTSUP, "request %u (%s) is not supported", m->request, name);
    if (m->request == VHU_SET_MEM_TABLE) {
        if (m->size < 8)
            return err_set(err, -EINVAL, "%s: payload of %u bytes, too short for a count",
                           name, m->size);
        uint32_t n = m->p.mem.nregions;
        if (n == 0 || n > VHU_MEM_TABLE_MAX)
            return err_set(err, -EINVAL, "%s: %u regions (1 to %d)", name, n, VHU_MEM_TABLE_MAX);
        if (m->size != 8 + n * sizeof(struct vhu_region))
            return err_set(err, -EINVAL, "%s: payload of %u bytes for %u regions", name,
                           m->size, n);
        if (m->nfds != n)
            return err_set(err, -EINVAL, "%s: %u file descriptors for %u regions", name,
                           m->nfds, n);
        return 0;
    }
    if ((int)m->size != s.size)
        return err_set(err, -EINVAL, "%s: payload of %u bytes, expected %d", name, m->size,
                       s.size);
    if (m->request == VHU_SET_VRING_KICK || m->request == VHU_SET_VRING_CALL ||
        m->request == VHU_SET_VRING_ERR) {
        unsigned want = (m->p.u64 & VHU_VRING_NOFD) ? 0 : 1;
        if (m->p.u64 & ~(uint64_t)(VHU_VRING_IDX_MASK | VHU_VRING_NOFD))
            return err_set(err, -EINVAL, "%s: unknown bits in 0x%llx", name,
                           (unsigned long long)m->p.u64);
        if (m->nfds != want)
            return err_set(err, -EINVAL, "%s: %u file descriptors, expected %u", name,
                           m->nfds, want);
        return 0;
    }
    if (m->nfds < s.min_fds || m->nfds > s.max_fds)
        return err_set(err, -EINVAL, "%s: %u file descriptors, expected %u%s", name, m->nfds,
                       s.min_fds, s.max_fds > s.min_fds ? " or 1" : "");
    return 0;
}

bool vhu_msg_has_reply(const struct vhu_msg *m)
{
    switch (m->request) {
    case VHU_GET_FEATURES:
    case VHU_GET_PROTOCOL_FEATURES:
    case VHU_GET_QUEUE_NUM:
    case VHU_GET_VRING_BASE:
    case VHU_GET_MAX_MEM_SLOTS:
    case VHU_GET_CONFIG:
    case VHU_GET_INFLIGHT_FD:
    case VHU_GET_STATUS:
        return true;
    default:
        return false;
    }
}

int vhu_msg_reply(int sock, const struct vhu_msg *req, const void *payload, uint32_t size)
{
    uint32_t hdr[3] = { req->request, VHU_VERSION | VHU_FLAG_REPLY, size };
    struct iovec iov[2] = { { hdr, sizeof(hdr) }, { (void *)payload, size } };
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = size ? 2 : 1 };
    size_t want = sizeof(hdr) + size;
    ssize_t n;
    do
        n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    return (size_t)n == want ? 0 : -EPIPE;
}
