/* The TCM-USER generic netlink family (tcmu.md §6), through libnl-genl:
 * parsing the kernel's device events, building the replies, and the
 * socket. Parsing and building take and give plain messages, so the unit
 * tests drive them with messages of their own, without a kernel. */
#ifndef SCUSE_TCMU_NETLINK_H
#define SCUSE_TCMU_NETLINK_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/netlink.h>

#include "tcmu/uio.h"
#include "util/err.h"

struct nl_msg;
struct nl_sock;

/* A device event: ADDED, REMOVED or RECONFIG_DEVICE. */
struct tcmu_nl_event {
    uint8_t cmd;                    /* TCMU_CMD_* */
    char device[TCMU_NAME_MAX + TCMU_CONFIG_MAX + 32]; /* the UIO name */
    uint32_t minor;
    bool has_dev_id;                /* kernels before 4.18 sent none (and waited for nothing) */
    uint32_t dev_id;
    /* RECONFIG_DEVICE: exactly one of */
    bool has_cfg, has_size, has_wc;
    char cfg[TCMU_CONFIG_MAX];
    uint64_t size;
    bool wc;
};

/* Parse one message of the family. -EINVAL (err names the attribute)
 * for anything malformed: unknown command, missing or mis-sized
 * attribute, unterminated string, a RECONFIG without exactly one change. */
int tcmu_nl_parse(struct nlmsghdr *nlh, int family, struct tcmu_nl_event *ev,
                  struct scuse_err *err);

/* The *_DONE command answering an event command (0 for any other). */
uint8_t tcmu_nl_done_cmd(uint8_t event_cmd);

/* Messages to the kernel (NULL when out of memory). */
struct nl_msg *tcmu_nl_reply(int family, uint8_t done_cmd, uint32_t dev_id, int32_t status);
struct nl_msg *tcmu_nl_set_features(int family);

/* The socket: subscribed to the "config" group, non-blocking; handler
 * gets each valid message of the family. */
struct tcmu_nl {
    struct nl_sock *sk;
    int family, group;
    void (*handler)(struct nlmsghdr *nlh, void *arg);
    void *arg;
};

int tcmu_nl_open(struct tcmu_nl *nl, void (*handler)(struct nlmsghdr *, void *), void *arg,
                 struct scuse_err *err);
void tcmu_nl_close(struct tcmu_nl *nl);
int tcmu_nl_fd(const struct tcmu_nl *nl);
/* Read what is queued: 0, or -ENOBUFS when events were lost (the caller
 * rescans), or another negative errno. */
int tcmu_nl_recv(struct tcmu_nl *nl);
/* Send and free msg. */
int tcmu_nl_send(struct tcmu_nl *nl, struct nl_msg *msg);

#endif
