/* The vhost-user protocol as the front-end (QEMU) speaks it on the unix
 * socket: message codes, flags, protocol feature bits and the payloads
 * that have no kernel UAPI struct. Written from QEMU's
 * docs/interop/vhost-user.rst; vring state and address payloads use
 * <linux/vhost_types.h>, whose layout vhost-user shares. */
#ifndef SCUSE_VHOST_PROTO_H
#define SCUSE_VHOST_PROTO_H

#include <stdint.h>

#include <linux/vhost_types.h>

/* Header: u32 request, u32 flags, u32 size, then size bytes. */
#define VHU_HDR_SIZE 12
#define VHU_VERSION 0x1u
#define VHU_FLAG_VERSION_MASK 0x3u
#define VHU_FLAG_REPLY (1u << 2)
#define VHU_FLAG_NEED_REPLY (1u << 3)
#define VHU_MAX_FDS 8               /* SCM_RIGHTS per message */

/* Front-end -> back-end requests */
enum vhu_request {
    VHU_GET_FEATURES = 1,
    VHU_SET_FEATURES = 2,
    VHU_SET_OWNER = 3,
    VHU_RESET_OWNER = 4,
    VHU_SET_MEM_TABLE = 5,
    VHU_SET_LOG_BASE = 6,
    VHU_SET_LOG_FD = 7,
    VHU_SET_VRING_NUM = 8,
    VHU_SET_VRING_ADDR = 9,
    VHU_SET_VRING_BASE = 10,
    VHU_GET_VRING_BASE = 11,
    VHU_SET_VRING_KICK = 12,
    VHU_SET_VRING_CALL = 13,
    VHU_SET_VRING_ERR = 14,
    VHU_GET_PROTOCOL_FEATURES = 15,
    VHU_SET_PROTOCOL_FEATURES = 16,
    VHU_GET_QUEUE_NUM = 17,
    VHU_SET_VRING_ENABLE = 18,
    VHU_SEND_RARP = 19,
    VHU_NET_SET_MTU = 20,
    VHU_SET_SLAVE_REQ_FD = 21,
    VHU_IOTLB_MSG = 22,
    VHU_SET_VRING_ENDIAN = 23,
    VHU_GET_CONFIG = 24,
    VHU_SET_CONFIG = 25,
    VHU_GET_INFLIGHT_FD = 31,
    VHU_SET_INFLIGHT_FD = 32,
    VHU_RESET_DEVICE = 34,
    VHU_GET_MAX_MEM_SLOTS = 36,
    VHU_ADD_MEM_REG = 37,
    VHU_REM_MEM_REG = 38,
    VHU_SET_STATUS = 39,
    VHU_GET_STATUS = 40,
};

/* The virtio feature bit that announces protocol features. */
#define VHOST_USER_F_PROTOCOL_FEATURES 30

/* Protocol feature bits */
enum {
    VHU_PROTO_MQ = 0,
    VHU_PROTO_LOG_SHMFD = 1,
    VHU_PROTO_REPLY_ACK = 3,
    VHU_PROTO_SLAVE_REQ = 5,
    VHU_PROTO_CONFIG = 9,
    VHU_PROTO_INFLIGHT_SHMFD = 12,
    VHU_PROTO_RESET_DEVICE = 13,
    VHU_PROTO_CONFIGURE_MEM_SLOTS = 15,
};

/* u64 payload of SET_VRING_KICK/CALL/ERR */
#define VHU_VRING_IDX_MASK 0xffu
#define VHU_VRING_NOFD (1u << 8)

/* One memory region: guest-physical address, size, the front-end's
 * virtual address of it, and where it starts in the fd sent along. */
struct vhu_region {
    uint64_t gpa;
    uint64_t size;
    uint64_t uva;
    uint64_t mmap_offset;
};

#define VHU_MEM_TABLE_MAX 8         /* regions in one SET_MEM_TABLE */

struct vhu_mem_table {
    uint32_t nregions;
    uint32_t padding;
    struct vhu_region regions[VHU_MEM_TABLE_MAX];
};

/* ADD_MEM_REG / REM_MEM_REG */
struct vhu_mem_reg {
    uint64_t padding;
    struct vhu_region region;
};

#endif
