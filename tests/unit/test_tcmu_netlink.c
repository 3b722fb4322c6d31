/* TCM-USER netlink messages, built with libnl as the kernel lays them
 * out (target_core_user.c: tcmu_netlink_event_init and the RECONFIG
 * attributes, DEV_SIZE with its PAD) and fed to the parser; malformed
 * ones refused with the attribute named; the replies scuse sends parsed
 * back against the kernel's policy (types, sizes, command numbers). */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include "tcmu/netlink.h"
#include "tcmu/uapi.h"

#define FAMILY 0x1d

static struct nl_msg *event(uint8_t cmd)
{
    struct nl_msg *m = nlmsg_alloc();
    assert_non_null(m);
    /* As the kernel: genlmsg_put(skb, 0, 0, &tcmu_genl_family, 0, cmd). */
    assert_non_null(genlmsg_put(m, 0, 0, FAMILY, 0, 0, cmd, TCMU_GENL_VERSION));
    return m;
}

static void device(struct nl_msg *m, const char *name, uint32_t minor, uint32_t dev_id)
{
    assert_int_equal(nla_put_string(m, TCMU_ATTR_DEVICE, name), 0);
    assert_int_equal(nla_put_u32(m, TCMU_ATTR_MINOR, minor), 0);
    assert_int_equal(nla_put_u32(m, TCMU_ATTR_DEVICE_ID, dev_id), 0);
}

static int parse(struct nl_msg *m, struct tcmu_nl_event *ev, struct scuse_err *err)
{
    err_clear(err);
    int r = tcmu_nl_parse(nlmsg_hdr(m), FAMILY, ev, err);
    nlmsg_free(m);
    return r;
}

static void test_events(void **state)
{
    (void)state;
    struct tcmu_nl_event ev;
    struct scuse_err err = { 0 };
    const char *name = "tcm-user/5300/vm1/scuse/qcow2@/images/vm1.qcow2";
    for (uint8_t cmd = TCMU_CMD_ADDED_DEVICE; cmd <= TCMU_CMD_REMOVED_DEVICE; cmd++) {
        struct nl_msg *m = event(cmd);
        device(m, name, 3, 77);
        assert_int_equal(parse(m, &ev, &err), 0);
        assert_int_equal(ev.cmd, cmd);
        assert_string_equal(ev.device, name);
        assert_int_equal(ev.minor, 3);
        assert_true(ev.has_dev_id);
        assert_int_equal(ev.dev_id, 77);
        assert_false(ev.has_cfg || ev.has_size || ev.has_wc);
    }
    /* RECONFIG: DEV_SIZE as nla_put_u64_64bit puts it, behind a PAD. */
    struct nl_msg *m = event(TCMU_CMD_RECONFIG_DEVICE);
    device(m, name, 3, 77);
    assert_int_equal(nla_put(m, TCMU_ATTR_PAD, 0, NULL), 0);
    assert_int_equal(nla_put_u64(m, TCMU_ATTR_DEV_SIZE, 0x123456789aull), 0);
    assert_int_equal(parse(m, &ev, &err), 0);
    assert_true(ev.has_size);
    assert_int_equal(ev.size, 0x123456789aull);
    m = event(TCMU_CMD_RECONFIG_DEVICE);
    device(m, name, 3, 77);
    assert_int_equal(nla_put_string(m, TCMU_ATTR_DEV_CFG, "scuse/raw@/b.raw"), 0);
    assert_int_equal(parse(m, &ev, &err), 0);
    assert_true(ev.has_cfg);
    assert_string_equal(ev.cfg, "scuse/raw@/b.raw");
    m = event(TCMU_CMD_RECONFIG_DEVICE);
    device(m, name, 3, 77);
    assert_int_equal(nla_put_u8(m, TCMU_ATTR_WRITECACHE, 1), 0);
    assert_int_equal(parse(m, &ev, &err), 0);
    assert_true(ev.has_wc && ev.wc);
    /* A kernel before DEVICE_ID (4.17 and older). */
    m = event(TCMU_CMD_ADDED_DEVICE);
    assert_int_equal(nla_put_string(m, TCMU_ATTR_DEVICE, name), 0);
    assert_int_equal(nla_put_u32(m, TCMU_ATTR_MINOR, 0), 0);
    assert_int_equal(parse(m, &ev, &err), 0);
    assert_false(ev.has_dev_id);
}

/* Each malformed message is refused, its error naming what is wrong. */
static void test_malformed(void **state)
{
    (void)state;
    struct tcmu_nl_event ev;
    struct scuse_err err = { 0 };
    const char *name = "tcm-user/1/d/scuse//x";
    struct {
        const char *why;
        struct nl_msg *m;
    } cases[16];
    int n = 0;
    struct nl_msg *m;

    m = event(TCMU_CMD_ADDED_DEVICE);
    nla_put_u32(m, TCMU_ATTR_MINOR, 1);
    cases[n++] = (typeof(cases[0])){ "DEVICE", m };
    m = event(TCMU_CMD_ADDED_DEVICE);
    nla_put_string(m, TCMU_ATTR_DEVICE, name);
    cases[n++] = (typeof(cases[0])){ "MINOR", m };
    m = event(TCMU_CMD_ADDED_DEVICE);
    nla_put_string(m, TCMU_ATTR_DEVICE, name);
    nla_put_u16(m, TCMU_ATTR_MINOR, 1);
    cases[n++] = (typeof(cases[0])){ "attributes", m }; /* libnl: shorter than its type */
    m = event(TCMU_CMD_ADDED_DEVICE);
    nla_put_string(m, TCMU_ATTR_DEVICE, name);
    nla_put_u64(m, TCMU_ATTR_MINOR, 1);
    cases[n++] = (typeof(cases[0])){ "MINOR has 8 bytes", m };
    m = event(TCMU_CMD_ADDED_DEVICE);
    nla_put(m, TCMU_ATTR_DEVICE, 3, "abc");                 /* no terminating NUL */
    nla_put_u32(m, TCMU_ATTR_MINOR, 1);
    cases[n++] = (typeof(cases[0])){ "attributes", m };
    m = event(TCMU_CMD_ADDED_DEVICE);
    nla_put(m, TCMU_ATTR_DEVICE, 6, "ab\0cd");              /* a NUL inside */
    nla_put_u32(m, TCMU_ATTR_MINOR, 1);
    cases[n++] = (typeof(cases[0])){ "DEVICE", m };
    m = event(TCMU_CMD_ADDED_DEVICE);
    char longname[700];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    nla_put_string(m, TCMU_ATTR_DEVICE, longname);
    nla_put_u32(m, TCMU_ATTR_MINOR, 1);
    cases[n++] = (typeof(cases[0])){ "DEVICE", m };
    m = event(TCMU_CMD_ADDED_DEVICE);
    device(m, name, 1, 2);
    nla_put_u16(m, TCMU_ATTR_DEVICE_ID, 2);
    cases[n++] = (typeof(cases[0])){ "attributes", m };    /* libnl takes the last one */
    m = event(TCMU_CMD_RECONFIG_DEVICE);
    device(m, name, 1, 2);
    cases[n++] = (typeof(cases[0])){ "exactly one", m };
    m = event(TCMU_CMD_RECONFIG_DEVICE);
    device(m, name, 1, 2);
    nla_put_u8(m, TCMU_ATTR_WRITECACHE, 1);
    nla_put_u64(m, TCMU_ATTR_DEV_SIZE, 1);
    cases[n++] = (typeof(cases[0])){ "exactly one", m };
    m = event(TCMU_CMD_RECONFIG_DEVICE);
    device(m, name, 1, 2);
    nla_put_u32(m, TCMU_ATTR_WRITECACHE, 1);
    cases[n++] = (typeof(cases[0])){ "WRITECACHE has 4 bytes", m };
    m = event(TCMU_CMD_SET_FEATURES);
    device(m, name, 1, 2);
    cases[n++] = (typeof(cases[0])){ "not a device event", m };
    m = event(TCMU_CMD_ADDED_DEVICE_DONE);
    device(m, name, 1, 2);
    cases[n++] = (typeof(cases[0])){ "not a device event", m };
    for (int i = 0; i < n; i++) {
        if (parse(cases[i].m, &ev, &err) != -EINVAL)
            fail_msg("case %d (%s) accepted", i, cases[i].why);
        if (!strstr(err.msg, cases[i].why))
            fail_msg("case %d: '%s' does not say '%s'", i, err.msg, cases[i].why);
    }
    /* Another family; a message too short for its generic header. */
    m = event(TCMU_CMD_ADDED_DEVICE);
    device(m, name, 1, 2);
    err_clear(&err);
    assert_int_equal(tcmu_nl_parse(nlmsg_hdr(m), FAMILY + 1, &ev, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "family"));
    nlmsg_hdr(m)->nlmsg_len = NLMSG_HDRLEN + 2;
    err_clear(&err);
    assert_int_equal(tcmu_nl_parse(nlmsg_hdr(m), FAMILY, &ev, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "generic header"));
    nlmsg_free(m);
}

/* What scuse sends, checked against the kernel's tcmu_attr_policy. */
static void test_replies(void **state)
{
    (void)state;
    assert_int_equal(tcmu_nl_done_cmd(TCMU_CMD_ADDED_DEVICE), TCMU_CMD_ADDED_DEVICE_DONE);
    assert_int_equal(tcmu_nl_done_cmd(TCMU_CMD_REMOVED_DEVICE), TCMU_CMD_REMOVED_DEVICE_DONE);
    assert_int_equal(tcmu_nl_done_cmd(TCMU_CMD_RECONFIG_DEVICE), TCMU_CMD_RECONFIG_DEVICE_DONE);
    assert_int_equal(tcmu_nl_done_cmd(TCMU_CMD_SET_FEATURES), 0);
    struct nla_policy pol[TCMU_ATTR_MAX + 1];
    memset(pol, 0, sizeof(pol));
    pol[TCMU_ATTR_CMD_STATUS].type = NLA_S32;
    pol[TCMU_ATTR_DEVICE_ID].type = NLA_U32;
    pol[TCMU_ATTR_SUPP_KERN_CMD_REPLY].type = NLA_U8;
    struct nlattr *tb[TCMU_ATTR_MAX + 1];

    struct nl_msg *m = tcmu_nl_reply(FAMILY, TCMU_CMD_ADDED_DEVICE_DONE, 4242, -ENOENT);
    assert_non_null(m);
    struct nlmsghdr *h = nlmsg_hdr(m);
    assert_int_equal(h->nlmsg_type, FAMILY);
    assert_int_equal(genlmsg_hdr(h)->cmd, TCMU_CMD_ADDED_DEVICE_DONE);
    assert_int_equal(genlmsg_hdr(h)->version, 2);
    assert_int_equal(genlmsg_parse(h, 0, tb, TCMU_ATTR_MAX, pol), 0);
    assert_non_null(tb[TCMU_ATTR_CMD_STATUS]);
    assert_int_equal(nla_len(tb[TCMU_ATTR_CMD_STATUS]), 4);
    assert_int_equal(nla_get_s32(tb[TCMU_ATTR_CMD_STATUS]), -ENOENT);
    assert_int_equal(nla_get_u32(tb[TCMU_ATTR_DEVICE_ID]), 4242);
    nlmsg_free(m);

    m = tcmu_nl_set_features(FAMILY);
    h = nlmsg_hdr(m);
    assert_int_equal(genlmsg_hdr(h)->cmd, TCMU_CMD_SET_FEATURES);
    assert_int_equal(genlmsg_parse(h, 0, tb, TCMU_ATTR_MAX, pol), 0);
    assert_non_null(tb[TCMU_ATTR_SUPP_KERN_CMD_REPLY]);
    assert_int_equal(nla_len(tb[TCMU_ATTR_SUPP_KERN_CMD_REPLY]), 1);
    assert_int_equal(nla_get_u8(tb[TCMU_ATTR_SUPP_KERN_CMD_REPLY]), 1);
    nlmsg_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
