#define _GNU_SOURCE
#include "tcmu/netlink.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

#include "tcmu/uapi.h"
#include "util/log.h"

static const char *cmd_name(uint8_t cmd)
{
    switch (cmd) {
    case TCMU_CMD_ADDED_DEVICE: return "ADDED_DEVICE";
    case TCMU_CMD_REMOVED_DEVICE: return "REMOVED_DEVICE";
    case TCMU_CMD_RECONFIG_DEVICE: return "RECONFIG_DEVICE";
    default: return "?";
    }
}

/* The attribute is there with exactly len bytes of payload. */
static int sized(struct nlattr *a, int len, const char *what, uint8_t cmd, struct scuse_err *err)
{
    if (nla_len(a) != len)
        return err_set(err, -EINVAL, "netlink %s: %s has %d bytes, not %d", cmd_name(cmd), what,
                       nla_len(a), len);
    return 0;
}

/* A string attribute whose only NUL ends it, copied into out. */
static int string(struct nlattr *a, char *out, size_t len, const char *what, uint8_t cmd,
                  struct scuse_err *err)
{
    const char *s = nla_data(a);
    size_t n = (size_t)nla_len(a);
    if (n == 0 || n > len || strnlen(s, n) != n - 1)
        return err_set(err, -EINVAL, "netlink %s: %s is not a string of at most %zu bytes",
                       cmd_name(cmd), what, len - 1);
    memcpy(out, s, n);
    return 0;
}

int tcmu_nl_parse(struct nlmsghdr *nlh, int family, struct tcmu_nl_event *ev,
                  struct scuse_err *err)
{
    memset(ev, 0, sizeof(*ev));
    if (nlh->nlmsg_type != family)
        return err_set(err, -EINVAL, "netlink: message type %u is not the TCM-USER family (%d)",
                       nlh->nlmsg_type, family);
    if (!genlmsg_valid_hdr(nlh, 0))
        return err_set(err, -EINVAL, "netlink: message of %u bytes has no generic header",
                       nlh->nlmsg_len);
    uint8_t cmd = genlmsg_hdr(nlh)->cmd;
    if (cmd != TCMU_CMD_ADDED_DEVICE && cmd != TCMU_CMD_REMOVED_DEVICE &&
        cmd != TCMU_CMD_RECONFIG_DEVICE)
        return err_set(err, -EINVAL, "netlink: command %u is not a device event", cmd);
    ev->cmd = cmd;
    struct nla_policy pol[TCMU_ATTR_MAX + 1];
    memset(pol, 0, sizeof(pol));
    pol[TCMU_ATTR_DEVICE].type = NLA_STRING;
    pol[TCMU_ATTR_MINOR].type = NLA_U32;
    pol[TCMU_ATTR_DEV_CFG].type = NLA_STRING;
    pol[TCMU_ATTR_DEV_SIZE].type = NLA_U64;
    pol[TCMU_ATTR_WRITECACHE].type = NLA_U8;
    pol[TCMU_ATTR_DEVICE_ID].type = NLA_U32;
    struct nlattr *tb[TCMU_ATTR_MAX + 1];
    int r = genlmsg_parse(nlh, 0, tb, TCMU_ATTR_MAX, pol);
    if (r < 0)
        return err_set(err, -EINVAL, "netlink %s: attributes: %s", cmd_name(cmd), nl_geterror(r));
    if (!tb[TCMU_ATTR_DEVICE] || !tb[TCMU_ATTR_MINOR])
        return err_set(err, -EINVAL, "netlink %s: no %s attribute", cmd_name(cmd),
                       tb[TCMU_ATTR_DEVICE] ? "MINOR" : "DEVICE");
    if ((r = string(tb[TCMU_ATTR_DEVICE], ev->device, sizeof(ev->device), "DEVICE", cmd,
                    err)) < 0 ||
        (r = sized(tb[TCMU_ATTR_MINOR], 4, "MINOR", cmd, err)) < 0)
        return r;
    ev->minor = nla_get_u32(tb[TCMU_ATTR_MINOR]);
    if (tb[TCMU_ATTR_DEVICE_ID]) {
        if ((r = sized(tb[TCMU_ATTR_DEVICE_ID], 4, "DEVICE_ID", cmd, err)) < 0)
            return r;
        ev->has_dev_id = true;
        ev->dev_id = nla_get_u32(tb[TCMU_ATTR_DEVICE_ID]);
    }
    if (cmd != TCMU_CMD_RECONFIG_DEVICE)
        return 0;
    int changes = 0;
    if (tb[TCMU_ATTR_DEV_CFG]) {
        if ((r = string(tb[TCMU_ATTR_DEV_CFG], ev->cfg, sizeof(ev->cfg), "DEV_CFG", cmd, err)) < 0)
            return r;
        ev->has_cfg = true;
        changes++;
    }
    if (tb[TCMU_ATTR_DEV_SIZE]) {
        if ((r = sized(tb[TCMU_ATTR_DEV_SIZE], 8, "DEV_SIZE", cmd, err)) < 0)
            return r;
        ev->has_size = true;
        ev->size = nla_get_u64(tb[TCMU_ATTR_DEV_SIZE]);
        changes++;
    }
    if (tb[TCMU_ATTR_WRITECACHE]) {
        if ((r = sized(tb[TCMU_ATTR_WRITECACHE], 1, "WRITECACHE", cmd, err)) < 0)
            return r;
        ev->has_wc = true;
        ev->wc = nla_get_u8(tb[TCMU_ATTR_WRITECACHE]) != 0;
        changes++;
    }
    if (changes != 1)
        return err_set(err, -EINVAL, "netlink RECONFIG_DEVICE: %d of DEV_CFG, DEV_SIZE and "
                       "WRITECACHE (exactly one expected)", changes);
    return 0;
}

uint8_t tcmu_nl_done_cmd(uint8_t event_cmd)
{
    switch (event_cmd) {
    case TCMU_CMD_ADDED_DEVICE: return TCMU_CMD_ADDED_DEVICE_DONE;
    case TCMU_CMD_REMOVED_DEVICE: return TCMU_CMD_REMOVED_DEVICE_DONE;
    case TCMU_CMD_RECONFIG_DEVICE: return TCMU_CMD_RECONFIG_DEVICE_DONE;
    default: return 0;
    }
}

static struct nl_msg *start(int family, uint8_t cmd)
{
    struct nl_msg *m = nlmsg_alloc();
    if (m && !genlmsg_put(m, NL_AUTO_PORT, NL_AUTO_SEQ, family, 0, 0, cmd, TCMU_GENL_VERSION)) {
        nlmsg_free(m);
        m = NULL;
    }
    return m;
}

struct nl_msg *tcmu_nl_reply(int family, uint8_t done_cmd, uint32_t dev_id, int32_t status)
{
    struct nl_msg *m = start(family, done_cmd);
    if (m && (nla_put_s32(m, TCMU_ATTR_CMD_STATUS, status) < 0 ||
              nla_put_u32(m, TCMU_ATTR_DEVICE_ID, dev_id) < 0)) {
        nlmsg_free(m);
        m = NULL;
    }
    return m;
}

struct nl_msg *tcmu_nl_set_features(int family)
{
    struct nl_msg *m = start(family, TCMU_CMD_SET_FEATURES);
    if (m && nla_put_u8(m, TCMU_ATTR_SUPP_KERN_CMD_REPLY, 1) < 0) {
        nlmsg_free(m);
        m = NULL;
    }
    return m;
}

/* ---- the socket ---- */

static int on_valid(struct nl_msg *msg, void *arg)
{
    struct tcmu_nl *nl = arg;
    struct nlmsghdr *nlh = nlmsg_hdr(msg);
    if (nlh->nlmsg_type == nl->family)
        nl->handler(nlh, nl->arg);
    return NL_OK;
}

static int on_error(struct sockaddr_nl *who, struct nlmsgerr *e, void *arg)
{
    (void)who, (void)arg;
    log_warn("tcmu: netlink: the kernel refused a message (command %u): %s",
             e->msg.nlmsg_len >= NLMSG_HDRLEN + GENL_HDRLEN
                 ? ((struct genlmsghdr *)NLMSG_DATA(&e->msg))->cmd : 0,
             strerror(-e->error));
    return NL_SKIP;
}

int tcmu_nl_open(struct tcmu_nl *nl, void (*handler)(struct nlmsghdr *, void *), void *arg,
                 struct scuse_err *err)
{
    memset(nl, 0, sizeof(*nl));
    nl->handler = handler;
    nl->arg = arg;
    nl->sk = nl_socket_alloc();
    if (!nl->sk)
        return err_set(err, -ENOMEM, "netlink: out of memory");
    nl_socket_disable_seq_check(nl->sk);
    /* Replies are fire and forget; only refusals come back. */
    nl_socket_disable_auto_ack(nl->sk);
    int r = genl_connect(nl->sk);
    if (r < 0) {
        tcmu_nl_close(nl);
        return err_set(err, -EIO, "netlink: cannot open a generic netlink socket: %s",
                       nl_geterror(r));
    }
    nl->family = genl_ctrl_resolve(nl->sk, TCMU_GENL_FAMILY);
    nl->group = nl->family < 0 ? nl->family
                               : genl_ctrl_resolve_grp(nl->sk, TCMU_GENL_FAMILY, TCMU_GENL_GROUP);
    if (nl->family < 0 || nl->group < 0) {
        tcmu_nl_close(nl);
        return err_set(err, -ENOENT, "netlink: the kernel has no " TCMU_GENL_FAMILY " family "
                       "with a '" TCMU_GENL_GROUP "' group (modprobe target_core_user)");
    }
    if ((r = nl_socket_add_membership(nl->sk, nl->group)) < 0 ||
        (r = nl_socket_set_nonblocking(nl->sk)) < 0) {
        tcmu_nl_close(nl);
        return err_set(err, -EIO, "netlink: cannot join " TCMU_GENL_FAMILY "/" TCMU_GENL_GROUP
                       ": %s", nl_geterror(r));
    }
    /* After the lookups above, which run on copies of these callbacks. */
    nl_socket_modify_cb(nl->sk, NL_CB_VALID, NL_CB_CUSTOM, on_valid, nl);
    nl_socket_modify_err_cb(nl->sk, NL_CB_CUSTOM, on_error, nl);
    /* Room for bursts of events (many devices enabled at once). */
    nl_socket_set_buffer_size(nl->sk, 1 << 20, 0);
    return 0;
}

void tcmu_nl_close(struct tcmu_nl *nl)
{
    if (nl->sk)
        nl_socket_free(nl->sk);
    nl->sk = NULL;
}

int tcmu_nl_fd(const struct tcmu_nl *nl)
{
    return nl_socket_get_fd(nl->sk);
}

int tcmu_nl_recv(struct tcmu_nl *nl)
{
    /* Bounded: epoll calls again while more is queued. */
    for (int i = 0; i < 256; i++) {
        int r = nl_recvmsgs_default(nl->sk);
        if (r >= 0)
            continue;
        if (r == -NLE_AGAIN)
            return 0;
        if (r == -NLE_NOMEM)
            return -ENOBUFS; /* the socket overran: events were lost */
        log_warn("tcmu: netlink: %s", nl_geterror(r));
        return -EIO;
    }
    return 0;
}

int tcmu_nl_send(struct tcmu_nl *nl, struct nl_msg *msg)
{
    if (!msg)
        return -ENOMEM;
    int r = nl_send_auto(nl->sk, msg);
    nlmsg_free(msg);
    return r < 0 ? -EIO : 0;
}
