/* The per-LUN command policy: the parser (what the command line and the
 * domain XML hand over) and its effect: a refused command gets INVALID
 * COMMAND OPERATION CODE and is absent from REPORT SUPPORTED OPERATION
 * CODES in both forms. */
#include "test_scsi_util.h"

#include <errno.h>

static void test_parse(void **state)
{
    (void)state;
    struct scsi_lun_config cfg;
    struct scuse_err err = { 0 };
    scsi_lun_config_default(&cfg);
    assert_int_equal(scsi_policy_parse("deny=0x9e/0x12,0x35", &cfg, &err), 0);
    assert_false(cfg.policy_allow);
    assert_int_equal(cfg.n_policy, 2);
    assert_int_equal(cfg.policy[0], 0x9e0012u);
    assert_int_equal(cfg.policy[1], 0x35ffffu);
    assert_int_equal(scsi_policy_parse(" allow=0x00, 0x12 ,37,0x28,0xa3", &cfg, &err), 0);
    assert_true(cfg.policy_allow);
    assert_int_equal(cfg.n_policy, 5);
    assert_int_equal(cfg.policy[2], 0x25ffffu);    /* decimal 37 */
    assert_int_equal(cfg.policy[4], 0xa3ffffu);    /* every service action */

    static const struct { const char *spec, *msg; } bad[] = {
        { "refuse=0x28", "allow= or deny=" },
        { "0x28", "allow= or deny=" },
        { "deny=", "expected a number" },
        { "deny=0x28,", "expected a number" },
        { "deny=0x28,,0x2a", "expected a number" },
        { "deny=0x100", "out of range" },
        { "deny=0x28/0x1", "no service actions" },
        { "deny=0x9e/0x20", "out of range" },
        { "deny=0x9e/0x11", "not a command" },
        { "deny=0x99", "not a command" },
        { "deny=0x28;0x2a", "unexpected ';'" },
        { "allow=zero", "expected a number" },
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        scsi_lun_config_default(&cfg);
        err_clear(&err);
        assert_int_equal(scsi_policy_parse(bad[i].spec, &cfg, &err), -EINVAL);
        if (!strstr(err.msg, bad[i].msg))
            fail_msg("'%s': message '%s' lacks '%s'", bad[i].spec, err.msg, bad[i].msg);
        assert_int_equal(cfg.n_policy, 0);          /* untouched on error */
    }
    /* At most 64 entries. */
    char spec[1024] = "deny=";
    for (int i = 0; i < 65; i++)
        strcat(spec, i ? ",0x28" : "0x28");
    err_clear(&err);
    assert_int_equal(scsi_policy_parse(spec, &cfg, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "more than 64"));
}

/* Is (op, sa) in the RSOC all-commands list? */
static bool listed(struct scsi_lun *lun, uint8_t op, int sa)
{
    uint8_t c[12] = { 0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0 };
    uint8_t b[4096];
    struct ts_res r = TS_IN(lun, c, b, sizeof(b));
    ts_good(&r);
    for (size_t off = 4; off + 8 <= r.xfer; off += 8)
        if (b[off] == op && (sa < 0 || ts_get(b + off + 2, 2) == (uint64_t)sa))
            return true;
    return false;
}

/* SUPPORT field of the RSOC one-command form. */
static int support(struct scsi_lun *lun, uint8_t op, int sa)
{
    uint8_t c[12] = { 0xa3, 0x0c, sa < 0 ? 1 : 2, op, 0, sa < 0 ? 0 : (uint8_t)sa, 0, 0, 0, 64 };
    uint8_t b[64];
    struct ts_res r = TS_IN(lun, c, b, sizeof(b));
    ts_good(&r);
    return b[1] & 0x07;
}

static void test_deny(void **state)
{
    (void)state;
    ts_image("pol.raw", "raw", "1M");
    struct scsi_lun_config cfg;
    struct scuse_err err = { 0 };
    scsi_lun_config_default(&cfg);
    assert_int_equal(scsi_policy_parse("deny=0x9e/0x12,0x35", &cfg, &err), 0);
    struct ts_lun t = ts_open_cfg("pol.raw", "raw", &cfg, true);
    uint8_t b[64];

    uint8_t gls[16] = { 0x9e, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 64 };
    struct ts_res r = TS_IN(t.lun, gls, b, sizeof(b));
    ts_check(&r, 0x5, 0x20, 0x00);
    uint8_t sc[10] = { 0x35 };
    r = TS_NONE(t.lun, sc);
    ts_check(&r, 0x5, 0x20, 0x00);
    /* Refused before its fields are looked at. */
    sc[1] = 0xff;
    r = TS_NONE(t.lun, sc);
    ts_check(&r, 0x5, 0x20, 0x00);
    /* The rest still served. */
    uint8_t rc16[16] = { 0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32 };
    r = TS_IN(t.lun, rc16, b, sizeof(b));
    ts_good(&r);
    uint8_t sc16[16] = { 0x91 };
    r = TS_NONE(t.lun, sc16);
    ts_good(&r);
    /* Absent from both RSOC forms. */
    assert_false(listed(t.lun, 0x9e, 0x12));
    assert_false(listed(t.lun, 0x35, -1));
    assert_true(listed(t.lun, 0x9e, 0x10));
    assert_true(listed(t.lun, 0x91, -1));
    assert_int_equal(support(t.lun, 0x9e, 0x12), 1);
    assert_int_equal(support(t.lun, 0x35, -1), 1);
    assert_int_equal(support(t.lun, 0x9e, 0x10), 3);
    assert_int_equal(support(t.lun, 0x91, -1), 3);
    /* A service action of 9Eh that is not served at all: the field. */
    uint8_t sai[16] = { 0x9e, 0x13 };
    r = TS_IN(t.lun, sai, b, sizeof(b));
    TS_INVALID_CDB(r, 1, 4);
    ts_close(&t);

    /* The whole opcode refused: every service action, INVALID COMMAND
     * OPERATION CODE even for unknown ones. */
    assert_int_equal(scsi_policy_parse("deny=0x9e", &cfg, &err), 0);
    t = ts_open_cfg("pol.raw", "raw", &cfg, true);
    r = TS_IN(t.lun, rc16, b, sizeof(b));
    ts_check(&r, 0x5, 0x20, 0x00);
    r = TS_IN(t.lun, sai, b, sizeof(b));
    ts_check(&r, 0x5, 0x20, 0x00);
    assert_false(listed(t.lun, 0x9e, -1));
    ts_close(&t);
}

static void test_allow(void **state)
{
    (void)state;
    ts_image("pol2.raw", "raw", "1M");
    struct scsi_lun_config cfg;
    struct scuse_err err = { 0 };
    scsi_lun_config_default(&cfg);
    assert_int_equal(scsi_policy_parse("allow=0x00,0x12,0x25,0x28,0xa3/0x0c", &cfg, &err), 0);
    struct ts_lun t = ts_open_cfg("pol2.raw", "raw", &cfg, true);
    uint8_t b[4096];
    uint8_t tur[6] = { 0 };
    struct ts_res r = TS_NONE(t.lun, tur);
    ts_good(&r);
    uint8_t inq[6] = { 0x12, 0, 0, 0, 36, 0 };
    r = TS_IN(t.lun, inq, b, sizeof(b));
    ts_good(&r);
    uint8_t rc10[10] = { 0x25 };
    r = TS_IN(t.lun, rc10, b, 8);
    ts_good(&r);
    uint8_t rd[10] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
    r = TS_IN(t.lun, rd, b, 512);
    ts_good(&r);
    uint8_t wr[10] = { 0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
    r = TS_OUT(t.lun, wr, b, 512);
    ts_check(&r, 0x5, 0x20, 0x00);
    uint8_t rl[12] = { 0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0 };
    r = TS_IN(t.lun, rl, b, 16);
    ts_check(&r, 0x5, 0x20, 0x00);
    /* RTMF is a3/0d: not in the list. */
    uint8_t rtmf[12] = { 0xa3, 0x0d, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0 };
    r = TS_IN(t.lun, rtmf, b, 4);
    ts_check(&r, 0x5, 0x20, 0x00);  /* refused, though a3/0c is served */
    /* A service action no table knows is a bad field of a served opcode. */
    uint8_t a3_1f[12] = { 0xa3, 0x1f, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0 };
    r = TS_IN(t.lun, a3_1f, b, 4);
    TS_INVALID_CDB(r, 1, 4);
    /* RSOC lists exactly the five. */
    uint8_t c[12] = { 0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0 };
    r = TS_IN(t.lun, c, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 4 + 5 * 8);
    static const uint8_t ops[] = { 0x00, 0x12, 0x25, 0x28, 0xa3 };
    for (int i = 0; i < 5; i++)
        assert_int_equal(b[4 + 8 * i], ops[i]);
    assert_int_equal(support(t.lun, 0x2a, -1), 1);
    /* VPD B0/B2 follow the policy: no COMPARE AND WRITE, no UNMAP. */
    uint8_t vpd[6] = { 0x12, 0x01, 0xb0, 0, 64, 0 };
    r = TS_IN(t.lun, vpd, b, 64);
    ts_good(&r);
    assert_int_equal(b[5], 0);
    assert_int_equal(ts_get(b + 20, 4), 0);
    ts_close(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        TS_TEST(test_deny),
        TS_TEST(test_allow),
    };
    return cmocka_run_group_tests(tests, ts_setup, ts_teardown);
}
