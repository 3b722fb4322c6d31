/* The command policy on the TCMU path: the dev_config that `scuse tcmu
 * create --policy` writes (tcmu_config_format_policy) and how it reads
 * back, and the daemon serving it (the fake kernel of
 * test_tcmu_daemon_env.h puts CDBs on the ring): refused commands get
 * ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE and are absent from
 * REPORT SUPPORTED OPERATION CODES, the others are served, and a RECONFIG
 * of dev_config brings a new policy. */
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

#include "test_tcmu_daemon_env.h"
#include "tcmu/config.h"

static struct scsi_lun_config policy_of(const char *spec)
{
    struct scsi_lun_config cfg;
    struct scuse_err err = { 0 };
    scsi_lun_config_default(&cfg);
    if (scsi_policy_parse(spec, &cfg, &err) < 0)
        fail_msg("'%s': %s", spec, err.msg);
    return cfg;
}

static void test_config(void **state)
{
    (void)state;
    char buf[TCMU_CONFIG_MAX];
    struct scuse_err err = { 0 };
    struct tcmu_image_cfg c;
    struct scsi_lun_config p = policy_of("deny=UNMAP:WRITE_SAME_16");
    assert_int_equal(tcmu_config_format_policy("qcow2", &p, "/v/a b.qcow2", buf, sizeof(buf),
                                               &err), 0);
    assert_string_equal(buf, "scuse/qcow2;deny=42+93@/v/a b.qcow2");
    assert_int_equal(tcmu_config_parse(buf, &c, &err), 1);
    assert_string_equal(c.fmt, "qcow2");
    assert_string_equal(c.path, "/v/a b.qcow2");
    assert_string_equal(c.policy, "deny=42:93");
    struct scsi_lun_config back;
    scsi_lun_config_default(&back);
    assert_int_equal(tcmu_config_policy(&c, &back, &err), 0);
    assert_false(back.policy_allow);
    assert_int_equal(back.n_policy, 2);
    assert_memory_equal(back.policy, p.policy, 2 * sizeof(p.policy[0]));
    /* Probed format; a service action entry; '@' in the path. */
    p = policy_of("allow=INQUIRY:READ_CAPACITY_16:28");
    assert_int_equal(tcmu_config_format_policy(NULL, &p, "/x@y", buf, sizeof(buf), &err), 0);
    assert_string_equal(buf, "scuse/;allow=12+9e/10+28@/x@y");
    assert_int_equal(tcmu_config_parse(buf, &c, &err), 1);
    assert_string_equal(c.fmt, "");
    assert_string_equal(c.path, "/x@y");
    assert_string_equal(c.policy, "allow=12:9e/10:28");
    /* No policy: the old forms, unchanged, and none read back. */
    scsi_lun_config_default(&p);
    assert_int_equal(tcmu_config_format_policy("raw", &p, "/r", buf, sizeof(buf), &err), 0);
    assert_string_equal(buf, "scuse/raw@/r");
    assert_int_equal(tcmu_config_parse(buf, &c, &err), 1);
    assert_string_equal(c.policy, "");
    back = policy_of("deny=42");
    assert_int_equal(tcmu_config_policy(&c, &back, &err), 0);
    assert_false(scsi_policy_set(&back));           /* a previous policy is dropped */
    assert_int_equal(tcmu_config_parse("scuse//srv/a.raw", &c, &err), 1);
    assert_string_equal(c.policy, "");
    /* Written by hand: names and ':' are read too (the kernel keeps them). */
    assert_int_equal(tcmu_config_parse("scuse/raw;deny=UNMAP:write_same_16@/r\n", &c, &err), 1);
    assert_string_equal(c.policy, "deny=UNMAP:write_same_16");

    /* A physical block size: its own section, before the policy; read
     * back as the LUN's exponent over its logical block size. */
    p = policy_of("deny=42");
    assert_int_equal(tcmu_config_format_lun("qcow2", &p, 4096, "/p", buf, sizeof(buf), &err), 0);
    assert_string_equal(buf, "scuse/qcow2;pbs=4096;deny=42@/p");
    assert_int_equal(tcmu_config_parse(buf, &c, &err), 1);
    assert_int_equal(c.phys_size, 4096);
    assert_string_equal(c.policy, "deny=42");
    scsi_lun_config_default(&back);
    assert_int_equal(tcmu_config_policy(&c, &back, &err), 0);
    assert_int_equal(back.phys_exp, 3);
    assert_int_equal(back.n_policy, 1);
    scsi_lun_config_default(&p);
    assert_int_equal(tcmu_config_format_lun("raw", &p, 8192, "/p", buf, sizeof(buf), &err), 0);
    assert_string_equal(buf, "scuse/raw;pbs=8192@/p");
    assert_int_equal(tcmu_config_parse(buf, &c, &err), 1);
    back.block_size = 4096;
    assert_int_equal(tcmu_config_policy(&c, &back, &err), 0);
    assert_int_equal(back.phys_exp, 1);
    assert_int_equal(back.n_policy, 0);
    assert_int_equal(tcmu_config_parse("scuse/raw;pbs=512@/p", &c, &err), 1);
    back.block_size = 4096;
    assert_int_equal(tcmu_config_policy(&c, &back, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "less than the block size"));
    static const char *const bad_pbs[] = { "scuse/raw;pbs=1000@/p", "scuse/raw;pbs=@/p",
                                           "scuse/raw;pbs=256@/p", "scuse/raw;pbs=4096x@/p",
                                           "scuse/raw;pbs=2097152@/p" };
    for (unsigned i = 0; i < sizeof(bad_pbs) / sizeof(bad_pbs[0]); i++) {
        err_clear(&err);
        assert_int_equal(tcmu_config_parse(bad_pbs[i], &c, &err), -EINVAL);
        assert_non_null(strstr(err.msg, "pbs="));
    }

    /* Malformed policies name scuse: -EINVAL, the message names the token. */
    static const struct { const char *cfg, *msg; } bad[] = {
        { "scuse/raw;deny=FOO@/r", "unknown command 'FOO'" },
        { "scuse/raw;@/r", "a policy starts with allow= or deny=" },
        { "scuse/raw;deny=@/r", "deny= lists no commands" },
        { "scuse/raw;deny=42++93@/r", "an empty entry after '42'" },
        { "scuse/raw;block=42@/r", "'block=42': a policy starts" },
        { "scuse/RAW;deny=42@/r", "format name 'RAW'" },
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err_clear(&err);
        assert_int_equal(tcmu_config_parse(bad[i].cfg, &c, &err), -EINVAL);
        if (!strstr(err.msg, bad[i].msg))
            fail_msg("'%s': message '%s' lacks '%s'", bad[i].cfg, err.msg, bad[i].msg);
    }
    /* The kernel's 255 bytes: the policy counts, and the message says so. */
    char path[TCMU_CONFIG_MAX];
    memset(path, 'p', sizeof(path));
    path[0] = '/';
    path[255 - strlen("scuse/raw@")] = '\0';
    assert_int_equal(tcmu_config_format("raw", path, buf, sizeof(buf), &err), 0);
    p = policy_of("deny=42");
    err_clear(&err);
    assert_int_equal(tcmu_config_format_policy("raw", &p, path, buf, sizeof(buf), &err),
                     -ENAMETOOLONG);
    assert_non_null(strstr(err.msg, "and its command policy would be 263 bytes"));
    /* Every opcode allowed, with a path of 100 bytes: fits. */
    char all[1024] = "allow=";
    for (unsigned i = 0; i < 256; i++) {
        scsi_lun_config_default(&p);
        char one[16];
        snprintf(one, sizeof(one), "deny=%x", i);
        if (scsi_policy_parse(one, &p, NULL) == 0)
            snprintf(all + strlen(all), sizeof(all) - strlen(all), "%s%x",
                     all[6] ? ":" : "", i);
    }
    p = policy_of(all);
    /* The longest path that still fits beside it: at least 64 bytes (a
     * symlink under /run does), one more byte refused. */
    char text[SCSI_POLICY_TEXT_MAX * 2];
    int pn = scsi_policy_format(&p, '+', text, sizeof(text));
    size_t room = TCMU_CONFIG_MAX - 1 - strlen("scuse/qcow2;@") - (size_t)pn;
    assert_true(room >= 64);
    memset(path, 'p', sizeof(path));
    path[0] = '/';
    path[room + 1] = '\0';
    err_clear(&err);
    assert_int_equal(tcmu_config_format_policy("qcow2", &p, path, buf, sizeof(buf), &err),
                     -ENAMETOOLONG);
    path[room] = '\0';
    assert_int_equal(tcmu_config_format_policy("qcow2", &p, path, buf, sizeof(buf), &err), 0);
    assert_int_equal(tcmu_config_parse(buf, &c, &err), 1);
    print_message("# every opcode allowed: dev_config of %zu bytes with a %zu-byte path\n",
                  strlen(buf), room);
}

/* RSOC, all commands: whether op is listed. */
static bool listed(struct kdev *d, uint8_t op)
{
    uint8_t c[12] = { 0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0 }, *p;
    struct fk_done *r = run(d, c, 12, 4096, &p);
    assert_int_equal(r->status, 0);
    uint32_t len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    for (uint32_t off = 4; off + 8 <= 4 + len; off += 8)
        if (p[off] == op)
            return true;
    return false;
}

static void refused(struct kdev *d, const uint8_t *cdb, unsigned len, uint64_t data)
{
    sense_is(run(d, cdb, len, data, NULL), 0x5, 0x20, 0x00);
}

static void test_daemon(void **state)
{
    (void)state;
    char cfg[TCMU_CONFIG_MAX];
    struct scuse_err err = { 0 };
    struct scsi_lun_config p = policy_of("deny=UNMAP:WRITE_SAME_16");
    assert_int_equal(tcmu_config_format_policy("raw", &p, tu_path("r.raw"), cfg, sizeof(cfg),
                                               &err), 0);
    struct kdev d;
    kdev_make(&d, 2, "pol", cfg);
    struct tcmu_nl_event ev = ev_make(TCMU_CMD_ADDED_DEVICE, "pol", cfg, 2, 50);
    assert_int_equal(handle(&ev).status, 0);
    assert_string_equal(served(2)->img.policy, "deny=42:93");
    ready(&d);
    uint8_t unmap[10] = { 0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0 };
    uint8_t ws16[16] = { 0x93, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0 };
    refused(&d, unmap, 10, 24);
    refused(&d, ws16, 16, 512);
    assert_false(listed(&d, 0x42));
    assert_false(listed(&d, 0x93));
    assert_true(listed(&d, 0x41));                  /* WRITE SAME(10) still served */
    assert_true(listed(&d, 0x2a));
    uint8_t wr[10] = { 0x2a, 0, 0, 0, 0, 8, 0, 0, 1, 0 }, rd[10] = { 0x28, 0, 0, 0, 0, 8, 0, 0, 1, 0 };
    assert_int_equal(run(&d, wr, 10, 512, NULL)->status, 0);
    assert_int_equal(run(&d, rd, 10, 512, NULL)->status, 0);

    /* RECONFIG to an allow list: the new policy, nothing of the old. */
    p = policy_of("allow=TEST_UNIT_READY:INQUIRY:READ_10:REPORT_SUPPORTED_OPERATION_CODES:"
                  "READ_CAPACITY_10");
    char cfg2[TCMU_CONFIG_MAX];
    assert_int_equal(tcmu_config_format_policy("raw", &p, tu_path("r.raw"), cfg2, sizeof(cfg2),
                                               &err), 0);
    ev = ev_make(TCMU_CMD_RECONFIG_DEVICE, "pol", cfg, 2, 50);
    ev.has_cfg = true;
    snprintf(ev.cfg, sizeof(ev.cfg), "%s", cfg2);
    assert_int_equal(handle(&ev).status, 0);
    ready(&d);
    assert_int_equal(run(&d, rd, 10, 512, NULL)->status, 0);
    refused(&d, wr, 10, 512);
    refused(&d, ws16, 16, 512);
    uint8_t ws10[10] = { 0x41, 0, 0, 0, 0, 0, 0, 0, 8, 0 };
    refused(&d, ws10, 10, 512);
    assert_true(listed(&d, 0x28));
    assert_false(listed(&d, 0x2a));
    assert_false(listed(&d, 0x42));
    /* A RECONFIG with a bad policy is refused; the allow list stays. */
    ev.has_cfg = true;
    snprintf(ev.cfg, sizeof(ev.cfg), "scuse/raw;allow=FOO@%s", tu_path("r.raw"));
    assert_int_equal(handle(&ev).status, -EINVAL);
    refused(&d, wr, 10, 512);
    assert_int_equal(run(&d, rd, 10, 512, NULL)->status, 0);
    /* A RECONFIG whose image cannot be opened keeps the policy too. */
    snprintf(ev.cfg, sizeof(ev.cfg), "scuse/raw@%s", tu_path("missing.raw"));
    assert_int_not_equal(handle(&ev).status, 0);
    ready(&d);
    refused(&d, wr, 10, 512);
    kdev_drop(&d);

    /* ADDED with a malformed policy: the enable fails, nothing served. */
    char bad[TCMU_CONFIG_MAX];
    snprintf(bad, sizeof(bad), "scuse/raw;deny=WRITE_SAME_32@%s", tu_path("r.raw"));
    kdev_make(&d, 3, "bad", bad);
    ev = ev_make(TCMU_CMD_ADDED_DEVICE, "bad", bad, 3, 51);
    assert_int_equal(handle(&ev).status, -EINVAL);
    assert_null(served(3));
    kdev_drop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test_setup_teardown(test_daemon, per_test, per_test_done),
    };
    return cmocka_run_group_tests(tests, setup, tu_teardown);
}
