/* The target (several LUNs behind one port) and live capacity changes:
 * REPORT LUNS through any LUN, present or not, lists the whole inventory
 * (peripheral and flat addressing); a LUN that is not there answers
 * INQUIRY with qualifier 3 / type 1Fh, REQUEST SENSE with GOOD and
 * LOGICAL UNIT NOT SUPPORTED as data, everything else with CHECK
 * CONDITION 05/25/00; a raw image grown with truncate raises CAPACITY
 * DATA HAS CHANGED and READ CAPACITY reports the new size; qcow2 is not
 * resized. Images are made by qemu-img. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "blk/blk.h"
#include "test_scsi_dispatch_util.h"
#include "testutil.h"

#define LBS 512

struct env {
    struct blk_node *bs[3];
    struct scsi_lun *lun[3];
    struct scsi_target *t;
    struct scsi_disp *d;
};

static const uint16_t ids[3] = { 0, 3, 300 };

static void env_open(struct env *e)
{
    memset(e, 0, sizeof(*e));
    struct scuse_err err = { 0 };
    assert_int_equal(scsi_target_create(&e->t, &err), 0);
    struct scsi_disp_config dc = { .workers = 2 };
    assert_int_equal(scsi_disp_create(&dc, &e->d, &err), 0);
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof(name), "lun%d.raw", i);
        tu_run("qemu-img create -q -f raw %s 1M", name);
        if (blk_open(tu_path(name), "raw", BLK_OPEN_RW, NULL, &e->bs[i], &err) < 0)
            fail_msg("open %s: %s", name, err.msg);
        struct scsi_lun_config cfg;
        scsi_lun_config_default(&cfg);
        assert_int_equal(scsi_lun_create(&cfg, e->bs[i], ids[i], &e->lun[i], &err), 0);
    }
    /* Added out of order: the inventory comes back sorted. */
    assert_int_equal(scsi_target_add_lun(e->t, e->lun[2], &err), 0);
    assert_int_equal(scsi_target_add_lun(e->t, e->lun[0], &err), 0);
    assert_int_equal(scsi_target_add_lun(e->t, e->lun[1], &err), 0);
}

static void env_close(struct env *e)
{
    scsi_disp_destroy(e->d);
    scsi_target_destroy(e->t);
    for (int i = 0; i < 3; i++) {
        scsi_lun_destroy(e->lun[i]);
        blk_close(e->bs[i]);
    }
}

static void run_on(struct env *e, uint16_t id, struct tcmd *c)
{
    scsi_target_submit(e->t, e->d, id, &c->cmd);
    td_wait(c);
}

static void report_luns(struct tcmd *c, uint8_t select, uint32_t alloc)
{
    memset(c->cdb, 0, 16);
    c->cdb[0] = 0xa0;
    c->cdb[2] = select;
    td_be(c->cdb + 6, alloc, 4);
    td_set(c, 12, SCSI_DIR_FROM_DEV, alloc);
}

static void want_check(const struct tcmd *c, int key, int asc, int ascq)
{
    int k, a, q;
    assert_int_equal(c->cmd.status, SCSI_STATUS_CHECK_CONDITION);
    td_sense(c, &k, &a, &q);
    assert_int_equal(k, key);
    assert_int_equal(a, asc);
    assert_int_equal(q, ascq);
}

static void test_inventory(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    struct scuse_err err = { 0 };
    assert_int_equal(scsi_target_count(e.t), 3);
    assert_ptr_equal(scsi_target_lun(e.t, 3), e.lun[1]);
    assert_null(scsi_target_lun(e.t, 1));
    assert_int_equal(scsi_target_add_lun(e.t, e.lun[1], &err), -EBUSY);

    static const uint8_t want[] = {
        0, 0, 0, 24, 0, 0, 0, 0,
        0x00, 0x00, 0, 0, 0, 0, 0, 0,   /* LUN 0 */
        0x00, 0x03, 0, 0, 0, 0, 0, 0,   /* LUN 3 */
        0x41, 0x2c, 0, 0, 0, 0, 0, 0,   /* LUN 300: flat space addressing */
    };
    struct tcmd c;
    td_init(&c, 64);
    /* Through a present LUN (which still has its power-on state: REPORT
     * LUNS is served with unit attentions pending) and an absent one. */
    for (int via = 0; via < 2; via++) {
        memset(c.buf, 0xee, 64);
        report_luns(&c, 0, 64);
        run_on(&e, via ? 7 : 3, &c);
        assert_int_equal(c.cmd.status, SCSI_STATUS_GOOD);
        assert_int_equal(c.cmd.xfer, sizeof(want));
        assert_int_equal(c.cmd.resid, 64 - sizeof(want));
        assert_memory_equal(c.buf, want, sizeof(want));
    }
    /* A short allocation length: the first bytes only. */
    memset(c.buf, 0xee, 64);
    report_luns(&c, 0x02, 20);
    run_on(&e, 0, &c);
    assert_int_equal(c.cmd.status, SCSI_STATUS_GOOD);
    assert_int_equal(c.cmd.xfer, 20);
    assert_memory_equal(c.buf, want, 20);
    assert_int_equal(c.buf[20], 0xee);
    /* Well-known LUNs only: none. */
    report_luns(&c, 0x01, 64);
    run_on(&e, 5, &c);
    assert_int_equal(c.cmd.status, SCSI_STATUS_GOOD);
    assert_int_equal(c.cmd.xfer, 8);
    assert_int_equal(c.buf[3], 0);
    /* Unknown SELECT REPORT, on a present and an absent LUN. */
    report_luns(&c, 0x10, 64);
    run_on(&e, 0, &c);
    want_check(&c, 5, 0x24, 0);
    report_luns(&c, 0x10, 64);
    run_on(&e, 9, &c);
    want_check(&c, 5, 0x24, 0);
    td_free(&c);
    env_close(&e);
}

static void test_absent_lun(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    struct tcmd c;
    td_init(&c, 96);

    memset(c.cdb, 0, 16);
    c.cdb[0] = 0x12;
    c.cdb[4] = 96;
    td_set(&c, 6, SCSI_DIR_FROM_DEV, 96);
    run_on(&e, 1, &c);
    assert_int_equal(c.cmd.status, SCSI_STATUS_GOOD);
    assert_int_equal(c.buf[0], 0x7f);   /* qualifier 3, type 1Fh */
    assert_int_equal(c.cmd.xfer, 36);
    /* The same INQUIRY on a present LUN: a direct-access block device. */
    td_set(&c, 6, SCSI_DIR_FROM_DEV, 96);
    run_on(&e, 0, &c);
    assert_int_equal(c.cmd.status, SCSI_STATUS_GOOD);
    assert_int_equal(c.buf[0], 0x00);

    /* VPD pages of an absent LUN, a reserved bit. */
    c.cdb[1] = 0x01;
    c.cdb[2] = 0x80;
    td_set(&c, 6, SCSI_DIR_FROM_DEV, 96);
    run_on(&e, 1, &c);
    want_check(&c, 5, 0x25, 0);
    c.cdb[1] = 0x02;
    c.cdb[2] = 0;
    td_set(&c, 6, SCSI_DIR_FROM_DEV, 96);
    run_on(&e, 1, &c);
    want_check(&c, 5, 0x24, 0);

    /* REQUEST SENSE: GOOD, the sense data say the unit is not there. */
    memset(c.cdb, 0, 16);
    c.cdb[0] = 0x03;
    c.cdb[4] = 96;
    td_set(&c, 6, SCSI_DIR_FROM_DEV, 96);
    run_on(&e, 2, &c);
    assert_int_equal(c.cmd.status, SCSI_STATUS_GOOD);
    assert_int_equal(c.cmd.xfer, 18);
    assert_int_equal(c.buf[0], 0x70);
    assert_int_equal(c.buf[2], 0x05);
    assert_int_equal(c.buf[12], 0x25);
    c.cdb[1] = 0x01;                    /* descriptor format */
    td_set(&c, 6, SCSI_DIR_FROM_DEV, 96);
    run_on(&e, 2, &c);
    assert_int_equal(c.cmd.status, SCSI_STATUS_GOOD);
    assert_int_equal(c.buf[0], 0x72);
    assert_int_equal(c.buf[2], 0x25);

    /* Anything else. */
    td_tur(&c);
    run_on(&e, 2, &c);
    want_check(&c, 5, 0x25, 0);
    td_rw16(&c, false, 0, 1, LBS, false);
    run_on(&e, 16383, &c);
    want_check(&c, 5, 0x25, 0);
    assert_int_equal(c.cmd.resid, LBS);
    td_free(&c);
    env_close(&e);
}

static void read_capacity(struct env *e, struct tcmd *c, uint16_t id, uint64_t *blocks)
{
    for (int i = 0; i < 4; i++) {           /* past the power-on attention */
        td_rc16(c);
        run_on(e, id, c);
        if (c->cmd.status == SCSI_STATUS_GOOD)
            break;
    }
    assert_int_equal(c->cmd.status, SCSI_STATUS_GOOD);
    *blocks = td_get_be(c->buf, 8) + 1;
}

static void test_resize(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    struct tcmd c;
    td_init(&c, 32);
    uint64_t blocks;
    read_capacity(&e, &c, 3, &blocks);
    assert_int_equal(blocks, 2048);

    struct scuse_err err = { 0 };
    bool changed;
    assert_int_equal(blk_refresh_size(e.bs[1], &changed, &err), 0);
    assert_false(changed);
    assert_false(scsi_lun_refresh_capacity(e.lun[1]));

    tu_run("truncate -s 3M lun1.raw");
    assert_int_equal(blk_refresh_size(e.bs[1], &changed, &err), 0);
    assert_true(changed);
    assert_true(scsi_lun_refresh_capacity(e.lun[1]));
    td_tur(&c);
    run_on(&e, 3, &c);
    want_check(&c, 6, 0x2a, 0x09);        /* CAPACITY DATA HAS CHANGED */
    td_tur(&c);
    run_on(&e, 3, &c);
    assert_int_equal(c.cmd.status, SCSI_STATUS_GOOD);
    read_capacity(&e, &c, 3, &blocks);
    assert_int_equal(blocks, 6144);
    /* The new blocks are served. */
    td_rw16(&c, false, 6143, 1, LBS, false);
    c.buf = realloc(c.buf, LBS);
    c.iov.iov_base = c.buf;
    run_on(&e, 3, &c);
    assert_int_equal(c.cmd.status, SCSI_STATUS_GOOD);

    /* An empty file: the capacity stays. */
    tu_run("truncate -s 0 lun1.raw");
    assert_int_equal(blk_refresh_size(e.bs[1], &changed, &err), 0);
    assert_false(scsi_lun_refresh_capacity(e.lun[1]));
    tu_run("truncate -s 3M lun1.raw");
    assert_int_equal(blk_refresh_size(e.bs[1], &changed, &err), 0);
    td_free(&c);
    env_close(&e);

    /* qcow2 sizes change through its own header only. */
    struct blk_node *q;
    tu_run("qemu-img create -q -f qcow2 q.qcow2 1M");
    assert_int_equal(blk_open(tu_path("q.qcow2"), "qcow2", 0, NULL, &q, &err), 0);
    err_clear(&err);
    assert_int_equal(blk_refresh_size(q, &changed, &err), -ENOTSUP);
    assert_non_null(strstr(err.msg, "q.qcow2"));
    blk_close(q);
}

static int group_setup(void **state)
{
    (void)state;
    return tu_qemu_setup("scsi-target", NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_inventory, tu_need_qemu),
        cmocka_unit_test_setup(test_absent_lun, tu_need_qemu),
        cmocka_unit_test_setup(test_resize, tu_need_qemu),
    };
    return cmocka_run_group_tests(tests, group_setup, tu_teardown);
}
