/* The per-LUN command policy: the parser (what the command line, a policy
 * file and the TCMU dev_config hand over), its formatter, and its effect:
 * a refused command gets INVALID COMMAND OPERATION CODE and is absent
 * from REPORT SUPPORTED OPERATION CODES in both forms. */
#include "test_scsi_util.h"

#include "scsi/scsi_int.h"   /* the command table, to list every command */

#include <errno.h>

/* The policy of spec, formatted back with ':' ("" for none). */
static const char *roundtrip(const char *spec)
{
    static char out[512];
    struct scsi_lun_config cfg;
    struct scuse_err err = { 0 };
    scsi_lun_config_default(&cfg);
    if (scsi_policy_parse(spec, &cfg, &err) < 0)
        fail_msg("'%s': %s", spec, err.msg);
    int n = scsi_policy_format(&cfg, ':', out, sizeof(out));
    assert_int_equal((size_t)n, strlen(out));
    /* What format writes, parse reads back as the same policy. */
    struct scsi_lun_config again;
    scsi_lun_config_default(&again);
    assert_int_equal(scsi_policy_parse(out, &again, &err), 0);
    assert_int_equal(again.policy_allow, cfg.policy_allow);
    assert_int_equal(again.n_policy, cfg.n_policy);
    assert_memory_equal(again.policy, cfg.policy, cfg.n_policy * sizeof(cfg.policy[0]));
    return out;
}

static void test_parse(void **state)
{
    (void)state;
    struct scsi_lun_config cfg;
    struct scuse_err err = { 0 };
    scsi_lun_config_default(&cfg);
    assert_false(scsi_policy_set(&cfg));
    assert_int_equal(scsi_policy_parse("deny=0x9e/0x12,0x35", &cfg, &err), 0);
    assert_true(scsi_policy_set(&cfg));
    assert_false(cfg.policy_allow);
    assert_int_equal(cfg.n_policy, 2);
    assert_int_equal(cfg.policy[0], 0x9e0012u);
    assert_int_equal(cfg.policy[1], 0x35ffffu);
    /* Hex with or without 0x, as sg_opcodes prints opcodes. */
    assert_int_equal(scsi_policy_parse(" allow=0x00, 12 ,25,0X28,a3", &cfg, &err), 0);
    assert_true(cfg.policy_allow);
    assert_int_equal(cfg.n_policy, 5);
    assert_int_equal(cfg.policy[1], 0x12ffffu);
    assert_int_equal(cfg.policy[2], 0x25ffffu);
    assert_int_equal(cfg.policy[4], 0xa3ffffu);    /* every service action */

    /* Names: the table's, case and punctuation ignored; ':' separates too. */
    assert_string_equal(roundtrip("deny=UNMAP:WRITE_SAME_16"), "deny=42:93");
    assert_string_equal(roundtrip("deny=unmap,write-same-16,Write Same(10)"), "deny=42:93:41");
    assert_string_equal(roundtrip("allow=READ_CAPACITY_16:get_lba_status:9e/10"),
                        "allow=9e/10:9e/12");       /* a duplicate counted once */
    assert_string_equal(roundtrip("allow=test_unit_ready:inquiry:report-luns:"
                                  "REPORT_SUPPORTED_OPERATION_CODES:read_10"),
                        "allow=00:12:a0:a3/0c:28");
    assert_string_equal(roundtrip("allow=PRE-FETCH(16)"), "allow=90");
    assert_string_equal(roundtrip("deny=9e"), "deny=9e");
    assert_string_equal(roundtrip("DENY=0x28"), "deny=28");
    /* The word alone, then line breaks (a file's layout); names as T10
     * writes them, spaces and all. */
    assert_string_equal(roundtrip("allow\n  INQUIRY   # identify\n\n0x00\n\tREAD(16)\r\n"
                                  "WRITE SAME(16)"),
                        "allow=12:00:88:93");
    assert_string_equal(roundtrip("# only reads\ndeny # none of these\nWRITE_10\n"),
                        "deny=2a");
    /* No policy: formats as nothing. */
    scsi_lun_config_default(&cfg);
    char out[16] = "x";
    assert_int_equal(scsi_policy_format(&cfg, ':', out, sizeof(out)), 0);
    assert_string_equal(out, "");
    /* A short buffer: truncated as snprintf does, the full length returned. */
    assert_int_equal(scsi_policy_parse("deny=UNMAP:WRITE_SAME_16:WRITE_SAME_10", &cfg, &err), 0);
    assert_int_equal(scsi_policy_format(&cfg, '+', out, 8), 13);
    assert_string_equal(out, "deny=42");
    assert_int_equal(scsi_policy_format(&cfg, '+', out, sizeof(out)), 13);
    assert_string_equal(out, "deny=42+93+41");

    static const struct { const char *spec, *msg; } bad[] = {
        { "refuse=0x28", "'refuse=0x28': a policy starts with allow= or deny=" },
        { "0x28", "'0x28': a policy starts with allow= or deny=" },
        { "allowed=0x28", "'allowed=0x28': a policy starts" },
        { "", "a policy starts with allow= or deny=" },
        { "deny=", "deny= lists no commands" },
        { "allow  # nothing\n", "allow= lists no commands" },
        { "deny=0x28,", "an empty entry after '0x28'" },
        { "deny=0x28,,0x2a", "an empty entry after '0x28'" },
        { "deny=0x28: :0x2a", "an empty entry after '0x28'" },
        { "deny=,0x28", "an empty entry before ',0x28'" },
        { "deny=0x100", "opcode '0x100' is out of range" },
        { "deny=28/1", "'28/1': opcode 28 has no service actions" },
        { "deny=9e/20", "'9e/20': service action out of range" },
        { "deny=9e/", "'9e/': expected opcode/service action" },
        { "deny=9e/zz", "'9e/zz': expected opcode/service action" },
        { "deny=9e/11", "'9e/11' is not a command scuse serves" },
        { "deny=0x99", "'0x99' is not a command scuse serves" },
        { "deny=10", "'10' is not a command scuse serves" },
        { "deny=0x28;0x2a", "unknown command '0x28;0x2a'" },
        { "deny=0x28 0x2a", "unknown command '0x28 0x2a'" },
        { "allow=zero", "unknown command 'zero'" },
        { "deny=UNMAP:WRITE_SAME_32", "unknown command 'WRITE_SAME_32'" },
        { "deny=READ_CAPACITY_16/10", "'READ_CAPACITY_16/10': a service action follows a hex" },
        { "deny=0x", "unknown command '0x'" },
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        scsi_lun_config_default(&cfg);
        err_clear(&err);
        assert_int_equal(scsi_policy_parse(bad[i].spec, &cfg, &err), -EINVAL);
        if (!strstr(err.msg, bad[i].msg))
            fail_msg("'%s': message '%s' lacks '%s'", bad[i].spec, err.msg, bad[i].msg);
        assert_int_equal(cfg.n_policy, 0);          /* untouched on error */
        assert_false(cfg.policy_allow);
    }
    /* At most 64 distinct entries (repeats count once). */
    char spec[2048] = "deny=";
    for (int i = 0; i < 100; i++)
        strcat(spec, i ? ",0x28" : "0x28");
    assert_int_equal(scsi_policy_parse(spec, &cfg, &err), 0);
    assert_int_equal(cfg.n_policy, 1);
    assert_int_equal(scsi_policy_parse("allow=0x9e/10:9e/12:9e", &cfg, &err), 0);
    assert_int_equal(cfg.n_policy, 3);
}

/* Every command of the table, by name and by number, and the longest
 * policy: all of them (the TCMU carrier's bound, core/tcmu/config.h). */
static void test_every_command(void **state)
{
    (void)state;
    char all[2048] = "allow=", names[4096] = "allow=";
    for (unsigned i = 0; i < scsi_n_ops; i++) {
        const struct scsi_op *o = &scsi_ops[i];
        char item[64];
        if (o->sa == SCSI_NO_SA)
            snprintf(item, sizeof(item), "%s%x", i ? ":" : "", o->opcode);
        else
            snprintf(item, sizeof(item), "%s%x/%x", i ? ":" : "", o->opcode, o->sa);
        strcat(all, item);
        snprintf(item, sizeof(item), "%s%s", i ? "," : "", o->name);
        strcat(names, item);
    }
    struct scsi_lun_config a, b;
    struct scuse_err err = { 0 };
    scsi_lun_config_default(&a);
    scsi_lun_config_default(&b);
    assert_int_equal(scsi_policy_parse(all, &a, &err), 0);
    if (scsi_policy_parse(names, &b, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(a.n_policy, scsi_n_ops);
    assert_int_equal(b.n_policy, scsi_n_ops);
    assert_memory_equal(a.policy, b.policy, scsi_n_ops * sizeof(a.policy[0]));
    for (unsigned i = 0; i < scsi_n_ops; i++)
        assert_true(scsi_policy_allows(&a, scsi_ops[i].opcode, scsi_ops[i].sa));
    char out[512];
    int n = scsi_policy_format(&a, '+', out, sizeof(out));
    print_message("# every command: %d bytes formatted\n", n);
    assert_true(n < (int)sizeof(out));
    assert_true(n <= SCSI_POLICY_TEXT_MAX);
}

/* A policy file: comments, one entry a line; errors name file and line. */
static void test_file(void **state)
{
    (void)state;
    char dir[64], path[96];
    assert_non_null(tu_mkdtemp(dir, sizeof(dir), "/tmp/scuse-test-policy-"));
    snprintf(path, sizeof(path), "%s/policy", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("# what the backup appliance may send\n"
          "allow\n"
          "TEST_UNIT_READY\n"
          "INQUIRY        # identify\n"
          "READ_CAPACITY_16\n"
          "\n"
          "0x28, 0x88\n", f);
    fclose(f);
    struct scsi_lun_config cfg;
    struct scuse_err err = { 0 };
    scsi_lun_config_default(&cfg);
    assert_int_equal(scsi_policy_load(path, &cfg, &err), 0);
    char out[128];
    scsi_policy_format(&cfg, ':', out, sizeof(out));
    assert_string_equal(out, "allow=00:12:9e/10:28:88");

    f = fopen(path, "w");
    assert_non_null(f);
    fputs("deny\nUNMAP\n# next\nWRITE_SAME_61\n", f);
    fclose(f);
    scsi_lun_config_default(&cfg);
    assert_int_equal(scsi_policy_load(path, &cfg, &err), -EINVAL);
    char want[200];
    snprintf(want, sizeof(want), "'%s' line 4: unknown command 'WRITE_SAME_61'", path);
    if (!strstr(err.msg, want))
        fail_msg("message '%s' lacks '%s'", err.msg, want);
    assert_false(scsi_policy_set(&cfg));

    f = fopen(path, "w");
    assert_non_null(f);
    fputs("# nothing but comments\n\n", f);
    fclose(f);
    err_clear(&err);
    assert_int_equal(scsi_policy_load(path, &cfg, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "line 3: a policy starts with allow= or deny="));

    f = fopen(path, "w");
    assert_non_null(f);
    fputc('\0', f);
    fclose(f);
    err_clear(&err);
    assert_int_equal(scsi_policy_load(path, &cfg, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "not a text file"));
    unlink(path);
    err_clear(&err);
    assert_int_equal(scsi_policy_load(path, &cfg, &err), -ENOENT);
    assert_non_null(strstr(err.msg, path));
    rmdir(dir);
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
        cmocka_unit_test(test_every_command),
        cmocka_unit_test(test_file),
        TS_TEST(test_deny),
        TS_TEST(test_allow),
    };
    return cmocka_run_group_tests(tests, ts_setup, ts_teardown);
}
