/* What a transport that does not interpret CDBs (TCMU) gets from the
 * SCSI layer: the length of a CDB (scsi_cdb_length), the direction of a
 * command it hands over as SCSI_DIR_BY_CDB (resolved by prepare, also
 * for the commands it answers at once and through a target for a LUN
 * that is not there), and the sense of the answers it gives by itself
 * (scsi_sense_answer). The directions are checked against SBC's and
 * SPC's definitions written out here, and by what the commands do with
 * the buffer. */
#include "test_scsi_util.h"

#include "scsi/scsi_int.h"

/* ---- CDB length ---- */

static void test_cdb_length(void **state)
{
    (void)state;
    /* Every command the LUN serves: its CDB is as long as the table says. */
    for (unsigned i = 0; i < scsi_n_ops; i++)
        if (scsi_cdb_length(&scsi_ops[i].opcode, 1) != scsi_ops[i].cdb_len)
            fail_msg("%s: length %u, table %u", scsi_ops[i].name,
                     scsi_cdb_length(&scsi_ops[i].opcode, 1), scsi_ops[i].cdb_len);
    /* One opcode of each group, served or not (groups 3, 6 and 7 as Linux
     * sizes them). */
    static const uint8_t op[8] = { 0x1d, 0x3b, 0x5e, 0x60, 0x83, 0xa4, 0xc0, 0xe0 };
    static const unsigned len[8] = { 6, 10, 10, 12, 16, 12, 10, 10 };
    for (int g = 0; g < 8; g++)
        assert_int_equal(scsi_cdb_length(&op[g], 1), len[g]);
    /* Variable length: 8 + ADDITIONAL CDB LENGTH, which byte 7 holds. */
    uint8_t var[8] = { 0x7f, 0, 0, 0, 0, 0, 0, 0x18 };
    assert_int_equal(scsi_cdb_length(var, 8), 32);
    assert_int_equal(scsi_cdb_length(var, 7), 0);
    var[7] = 0xff;
    assert_int_equal(scsi_cdb_length(var, 8), SCSI_CDB_LEN_MAX);
    assert_int_equal(scsi_cdb_length(var, 0), 0);
}

/* ---- direction ---- */

/* SBC-4/SPC-5: the served commands that send data to the device, and
 * those without data; every other served command returns data. */
static bool spec_out(uint8_t op)
{
    static const uint8_t out[] = { 0x0a, 0x15, 0x2a, 0x2e, 0x2f, 0x41, 0x42, 0x55,
                                   0x89, 0x8a, 0x8e, 0x8f, 0x93, 0xaa,
                                   0x48, 0x83, 0x8b, 0x9c, 0xae, 0xaf };
    return memchr(out, op, sizeof(out)) != NULL;
}

static bool spec_none(uint8_t op)
{
    static const uint8_t none[] = { 0x00, 0x1b, 0x1e, 0x34, 0x35, 0x90, 0x91 };
    return memchr(none, op, sizeof(none)) != NULL;
}

static struct ts_res by_cdb(struct scsi_lun *lun, const uint8_t *cdb, size_t n, void *buf,
                            size_t len)
{
    return ts_run(lun, cdb, n, SCSI_DIR_BY_CDB, buf, len);
}

/* Every served command, prepared with SCSI_DIR_BY_CDB: its direction as
 * SBC/SPC define it, whatever the answer (unit attention first). */
static void test_dir_every_command(void **state)
{
    (void)state;
    ts_image("d.raw", "raw", "1M");
    struct ts_lun t = ts_open("d.raw", "raw", 512);
    scsi_lun_raise_ua(t.lun, SCSI_UA_POWER_ON);
    for (unsigned i = 0; i < scsi_n_ops; i++) {
        const struct scsi_op *op = &scsi_ops[i];
        uint8_t cdb[16] = { op->opcode };
        if (op->sa != SCSI_NO_SA)
            cdb[1] = (uint8_t)op->sa;
        uint8_t buf[64];
        struct ts_res r = by_cdb(t.lun, cdb, op->cdb_len, buf, sizeof(buf));
        enum scsi_dir want = spec_out(op->opcode) ? SCSI_DIR_TO_DEV
                             : spec_none(op->opcode) ? SCSI_DIR_NONE : SCSI_DIR_FROM_DEV;
        if (r.dir != want)
            fail_msg("%s: direction %d, expected %d", op->name, r.dir, want);
    }
    ts_close(&t);
}

/* The buffer is used in the direction resolved: written by data-in
 * commands, read by data-out ones, left alone by a command the layer
 * does not know or the LUN refuses. */
static void test_dir_by_what_commands_do(void **state)
{
    (void)state;
    ts_image("d.raw", "raw", "1M");
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    struct scuse_err err = { 0 };
    assert_int_equal(scsi_policy_parse("deny=0xa8", &cfg, &err), 0); /* READ(12) refused */
    struct ts_lun t = ts_open_cfg("d.raw", "raw", &cfg, true);
    uint8_t out[4096], in[4096];

    /* WRITE(10) then READ(10), both BY_CDB. */
    memset(out, 0x6b, sizeof(out));
    uint8_t w[10] = { 0x2a };
    ts_be(w + 2, 16, 4);
    ts_be(w + 7, 8, 2);
    struct ts_res r = by_cdb(t.lun, w, sizeof(w), out, sizeof(out));
    ts_good(&r);
    assert_int_equal(r.dir, SCSI_DIR_TO_DEV);
    assert_int_equal(r.xfer, 4096);
    uint8_t rd[10] = { 0x28 };
    ts_be(rd + 2, 16, 4);
    ts_be(rd + 7, 8, 2);
    memset(in, 0, sizeof(in));
    r = by_cdb(t.lun, rd, sizeof(rd), in, sizeof(in));
    ts_good(&r);
    assert_int_equal(r.dir, SCSI_DIR_FROM_DEV);
    assert_memory_equal(in, out, sizeof(in));

    /* VERIFY(10) with BYTCHK 1 compares the buffer it was sent. */
    uint8_t v[10] = { 0x2f, 0x02 };
    ts_be(v + 2, 16, 4);
    ts_be(v + 7, 8, 2);
    r = by_cdb(t.lun, v, sizeof(v), out, sizeof(out));
    ts_good(&r);
    out[700] ^= 1;
    r = by_cdb(t.lun, v, sizeof(v), out, sizeof(out));
    struct ts_sense s = ts_check(&r, 0xe, 0x1d, 0x00);     /* MISCOMPARE at byte 700 */
    assert_int_equal(s.info, 700);

    /* INQUIRY fills the buffer; a short allocation length leaves the rest. */
    memset(in, 0xcc, sizeof(in));
    uint8_t inq[6] = { 0x12, 0, 0, 0, 36, 0 };
    r = by_cdb(t.lun, inq, sizeof(inq), in, sizeof(in));
    ts_good(&r);
    assert_int_equal(r.dir, SCSI_DIR_FROM_DEV);
    assert_int_equal(r.xfer, 36);
    assert_memory_equal(in + 8, "SCUSE   ", 8);
    assert_int_equal(in[36], 0xcc);

    /* An opcode the layer does not know: no direction, buffer untouched. */
    memset(in, 0xcc, sizeof(in));
    uint8_t vendor[10] = { 0xc0 };
    r = by_cdb(t.lun, vendor, sizeof(vendor), in, sizeof(in));
    ts_check(&r, 0x5, 0x20, 0x00);
    assert_int_equal(r.dir, SCSI_DIR_NONE);
    assert_int_equal(r.xfer, 0);
    for (size_t i = 0; i < sizeof(in); i++)
        assert_int_equal(in[i], 0xcc);

    /* A command the LUN refuses keeps its own direction, moves nothing. */
    uint8_t rd12[12] = { 0xa8 };
    ts_be(rd12 + 6, 8, 4);
    r = by_cdb(t.lun, rd12, sizeof(rd12), in, sizeof(in));
    ts_check(&r, 0x5, 0x20, 0x00);
    assert_int_equal(r.dir, SCSI_DIR_FROM_DEV);
    assert_int_equal(in[0], 0xcc);
    ts_close(&t);
}

struct absent {
    bool done;
};

static void absent_done(struct scsi_cmd *cmd)
{
    ((struct absent *)cmd->priv)->done = true;
}

/* A LUN the target does not have: INQUIRY is still data-in. */
static void test_dir_absent_lun(void **state)
{
    (void)state;
    struct scsi_target *tg;
    struct scuse_err err = { 0 };
    assert_int_equal(scsi_target_create(&tg, &err), 0);
    uint8_t cdb[6] = { 0x12, 0, 0, 0, 36, 0 };
    uint8_t buf[96], sense[SCSI_SENSE_MAX];
    memset(buf, 0xcc, sizeof(buf));
    struct iovec iov = { buf, sizeof(buf) };
    struct absent a = { false };
    struct scsi_cmd cmd;
    memset(&cmd, 0, sizeof(cmd));
    cmd.cdb = cdb;
    cmd.cdb_len = sizeof(cdb);
    cmd.data = iov_view_make(&iov, 1, sizeof(buf));
    cmd.dir = SCSI_DIR_BY_CDB;
    cmd.sense = sense;
    cmd.done = absent_done;
    cmd.priv = &a;
    scsi_target_submit(tg, NULL, 7, &cmd);
    assert_true(a.done);
    assert_int_equal(cmd.status, SCSI_STATUS_GOOD);
    assert_int_equal(cmd.dir, SCSI_DIR_FROM_DEV);
    assert_int_equal(cmd.xfer, 36);
    assert_int_equal(buf[0], 0x7f);                         /* PQ 3, type 1Fh */
    scsi_target_destroy(tg);
}

/* ---- answers a transport gives itself ---- */

static void test_answers(void **state)
{
    (void)state;
    static const struct {
        enum scsi_answer a;
        uint8_t key, asc;
    } want[] = {
        { SCSI_ANSWER_INVALID_OPCODE, 0x5, 0x20 },
        { SCSI_ANSWER_TARGET_FAILURE, 0x4, 0x44 },
        { SCSI_ANSWER_NO_MEDIUM, 0x2, 0x3a },
    };
    for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        uint8_t b[SCSI_SENSE_MAX];
        uint32_t n = scsi_sense_answer(want[i].a, b);
        assert_int_equal(n, 18);
        assert_int_equal(b[0], 0x70);                       /* fixed, current */
        struct ts_sense s = ts_sense_decode(b, n);
        assert_int_equal(s.key, want[i].key);
        assert_int_equal(s.asc, want[i].asc);
        assert_int_equal(s.ascq, 0);
        assert_false(s.info_valid);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cdb_length),
        TS_TEST(test_dir_every_command),
        TS_TEST(test_dir_by_what_commands_do),
        cmocka_unit_test(test_dir_absent_lun),
        cmocka_unit_test(test_answers),
    };
    return cmocka_run_group_tests(tests, ts_setup, ts_teardown);
}
