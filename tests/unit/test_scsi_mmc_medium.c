/* The removable medium of a cdrom LUN at the CDB level and through the
 * dispatcher: an empty drive, insert and eject from the host (the control
 * socket's calls), the initiator's START STOP UNIT and PREVENT ALLOW
 * MEDIUM REMOVAL, the sense of every medium state (NOT READY, MEDIUM NOT
 * PRESENT, tray open or closed; the unit attentions of a change), the
 * event callback, and an eject racing reads on several workers (the node
 * handed back is closed at once: ASan and TSan see any late reader). */
#include "test_scsi_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

#include "test_scsi_dispatch_util.h"

#define BLK 2048

static int setup(void **state)
{
    (void)state;
    return tu_mkdtemp(ts_dir, sizeof(ts_dir), "/tmp/scuse-test-mmc-") ? 0 : -1;
}

/* An "ISO" of n blocks, block b filled with (seed + b) & 0xff. */
static void make_iso(const char *name, unsigned n, uint8_t seed)
{
    uint8_t *b = malloc((size_t)n * BLK);
    assert_non_null(b);
    for (unsigned i = 0; i < n; i++)
        memset(b + (size_t)i * BLK, (uint8_t)(seed + i), BLK);
    ts_store(name, b, (size_t)n * BLK);
    free(b);
}

static struct blk_node *open_iso(const char *name)
{
    struct blk_node *bs;
    struct scuse_err err = { 0 };
    if (blk_open(ts_path(name), "raw", 0, NULL, &bs, &err) < 0)
        fail_msg("open %s: %s", name, err.msg);
    return bs;
}

static struct scsi_lun *cdrom(struct blk_node *bs)
{
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    cfg.device = SCSI_DEVICE_CDROM;
    struct scsi_lun *lun;
    struct scuse_err err = { 0 };
    if (scsi_lun_create(&cfg, bs, 0, &lun, &err) < 0)
        fail_msg("cdrom LUN: %s", err.msg);
    return lun;
}

static const uint8_t tur[6] = { 0 };

/* The sense REQUEST SENSE gives now. */
static struct ts_sense request_sense(struct scsi_lun *lun)
{
    uint8_t rs[6] = { 0x03, 0, 0, 0, 18, 0 }, b[18];
    struct ts_res r = TS_IN(lun, rs, b, sizeof(b));
    ts_good(&r);
    return ts_sense_decode(b, r.xfer);
}

static void expect_rs(int line, struct scsi_lun *lun, uint8_t key, uint8_t asc, uint8_t ascq)
{
    struct ts_sense d = request_sense(lun);
    if (d.key != key || d.asc != asc || d.ascq != ascq)
        fail_msg("line %d: REQUEST SENSE %x/%02x/%02x, expected %x/%02x/%02x", line, d.key,
                 d.asc, d.ascq, key, asc, ascq);
}
#define EXPECT_RS(lun, k, a, q) expect_rs(__LINE__, lun, k, a, q)

/* READ(10) of one block: GOOD and block lba of the ISO made with seed. */
static void expect_block(int line, struct scsi_lun *lun, uint32_t lba, uint8_t seed)
{
    uint8_t cdb[16], b[BLK];
    size_t n = ts_rw_cdb(cdb, 0x28, lba, 1);
    struct ts_res r = ts_run(lun, cdb, n, SCSI_DIR_FROM_DEV, b, sizeof(b));
    ts_good_at(line, &r);
    for (unsigned i = 0; i < BLK; i++)
        if (b[i] != (uint8_t)(seed + lba))
            fail_msg("line %d: block %u byte %u: %#x, expected %#x", line, lba, i, b[i],
                     (uint8_t)(seed + lba));
}

struct events {
    int n[4];
    int last;
};

static void on_event(void *opaque, struct scsi_lun *lun, int event)
{
    (void)lun;
    struct events *e = opaque;
    assert_true(event >= 0 && event < 4);
    e->n[event]++;
    e->last = event;
}

static void test_identity_and_empty(void **state)
{
    (void)state;
    struct scsi_lun *lun = cdrom(NULL);
    assert_int_equal(scsi_lun_device(lun), SCSI_DEVICE_CDROM);
    assert_int_equal(scsi_lun_medium_state(lun), SCSI_MEDIUM_ABSENT);
    assert_null(scsi_lun_medium(lun));
    uint8_t inq[6] = { 0x12, 0, 0, 0, 36, 0 }, b[256];
    struct ts_res r = TS_IN(lun, inq, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(b[0], 0x05);   /* CD/DVD */
    assert_int_equal(b[1], 0x80);   /* RMB */
    /* VPD 00 lists 00, 80, 83 only; B0 is refused. */
    uint8_t vpd[6] = { 0x12, 0x01, 0x00, 0, 255, 0 };
    r = TS_IN(lun, vpd, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(b[0], 0x05);
    assert_int_equal(b[3], 3);
    assert_int_equal(b[6], 0x83);
    uint8_t vpd_b0[6] = { 0x12, 0x01, 0xb0, 0, 255, 0 };
    r = TS_IN(lun, vpd_b0, b, sizeof(b));
    TS_INVALID_CDB(r, 2, -1);

    /* No medium, tray closed: 02/3A/01 for whatever needs the medium. */
    r = TS_NONE(lun, tur);
    ts_check(&r, 0x2, 0x3a, 0x01);
    EXPECT_RS(lun, 0x2, 0x3a, 0x01);
    uint8_t rc[10] = { 0x25 };
    r = TS_IN(lun, rc, b, 8);
    ts_check(&r, 0x2, 0x3a, 0x01);
    uint8_t cdb[16];
    size_t n = ts_rw_cdb(cdb, 0x28, 0, 1);
    r = ts_run(lun, cdb, n, SCSI_DIR_FROM_DEV, b, BLK < sizeof(b) ? BLK : sizeof(b));
    ts_check(&r, 0x2, 0x3a, 0x01);
    /* MODE SENSE works without a medium: page 2Ah, no block descriptor. */
    uint8_t ms6[6] = { 0x1a, 0, 0x2a, 0, 128, 0 };
    r = TS_IN(lun, ms6, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(b[3], 0);      /* block descriptor length */
    assert_int_equal(b[4] & 0x3f, 0x2a);
    assert_int_equal(b[0] + 1, r.xfer);
    assert_int_equal(b[4 + 6] & 0xe8, 0x28);    /* tray, eject */
    /* A write is no command of a CD-ROM. */
    n = ts_rw_cdb(cdb, 0x2a, 0, 1);
    r = ts_run(lun, cdb, n, SCSI_DIR_TO_DEV, b, BLK < sizeof(b) ? BLK : sizeof(b));
    ts_check(&r, 0x5, 0x20, 0x00);

    /* A disk has no removable medium. */
    struct blk_node *old = (struct blk_node *)1;
    struct scuse_err err = { 0 };
    make_iso("disk.raw", 8, 0);
    scsi_lun_destroy(lun);
    struct scsi_lun_config dcfg;
    scsi_lun_config_default(&dcfg);
    struct blk_node *dbs = open_iso("disk.raw");
    struct scsi_lun *disk;
    assert_int_equal(scsi_lun_create(&dcfg, dbs, 0, &disk, &err), 0);
    assert_int_equal(scsi_lun_medium_eject(disk, true, &old, &err), -ENOTSUP);
    assert_null(old);
    assert_int_equal(scsi_lun_medium_insert(disk, dbs, &err), -ENOTSUP);
    assert_int_equal(scsi_lun_medium_state(disk), SCSI_MEDIUM_PRESENT);
    /* ... and needs an image. */
    struct scsi_lun *none = NULL;
    assert_true(scsi_lun_create(&dcfg, NULL, 1, &none, &err) < 0);
    assert_null(none);
    scsi_lun_destroy(disk);
    blk_close(dbs);
}

static void test_insert_eject_host(void **state)
{
    (void)state;
    make_iso("a.iso", 64, 0x10);
    make_iso("b.iso", 32, 0x80);
    struct scsi_lun *lun = cdrom(NULL);
    struct events ev = { { 0 }, -1 };
    scsi_lun_set_event_cb(lun, on_event, &ev);
    struct scuse_err err = { 0 };

    struct blk_node *a = open_iso("a.iso");
    assert_int_equal(scsi_lun_medium_insert(lun, a, &err), 0);
    assert_int_equal(ev.n[SCSI_LUN_EVENT_MEDIUM_INSERTED], 1);
    assert_int_equal(scsi_lun_medium_state(lun), SCSI_MEDIUM_PRESENT);
    assert_ptr_equal(scsi_lun_medium(lun), a);
    /* A second medium cannot go in beside it. */
    struct blk_node *b = open_iso("b.iso");
    assert_int_equal(scsi_lun_medium_insert(lun, b, &err), -EEXIST);
    assert_non_null(strstr(err.msg, "eject"));
    assert_int_equal(ev.n[SCSI_LUN_EVENT_MEDIUM_INSERTED], 1);

    /* The change is reported once: 06/28/00, then ready. INQUIRY does not
     * consume it; REQUEST SENSE reports it as its data. */
    uint8_t inq[6] = { 0x12, 0, 0, 0, 36, 0 }, buf[64];
    struct ts_res r = TS_IN(lun, inq, buf, sizeof(buf));
    ts_good(&r);
    r = TS_NONE(lun, tur);
    ts_check(&r, 0x6, 0x28, 0x00);
    r = TS_NONE(lun, tur);
    ts_good(&r);
    EXPECT_RS(lun, 0x0, 0x00, 0x00);
    uint8_t rc[10] = { 0x25 }, cap[8];
    r = TS_IN(lun, rc, cap, sizeof(cap));
    ts_good(&r);
    assert_int_equal(ts_get(cap, 4), 63);
    assert_int_equal(ts_get(cap + 4, 4), BLK);
    expect_block(__LINE__, lun, 0, 0x10);
    expect_block(__LINE__, lun, 63, 0x10);
    uint8_t cdb[16];
    size_t n = ts_rw_cdb(cdb, 0x28, 64, 1);
    uint8_t blk[BLK];
    r = ts_run(lun, cdb, n, SCSI_DIR_FROM_DEV, blk, sizeof(blk));
    ts_check(&r, 0x5, 0x21, 0x00);

    /* The initiator locks the door: the host's eject is refused, the
     * guest learns of the request (its media event), the medium stays. */
    uint8_t prevent[6] = { 0x1e, 0, 0, 0, 0x01, 0 };
    r = TS_NONE(lun, prevent);
    ts_good(&r);
    assert_true(scsi_lun_medium_locked(lun));
    struct blk_node *old = NULL;
    err_clear(&err);
    assert_int_equal(scsi_lun_medium_eject(lun, false, &old, &err), -EBUSY);
    assert_non_null(strstr(err.msg, "prevents"));
    assert_null(old);
    assert_int_equal(ev.n[SCSI_LUN_EVENT_MEDIUM_EJECTED], 0);
    assert_int_equal(scsi_lun_medium_state(lun), SCSI_MEDIUM_PRESENT);
    r = TS_NONE(lun, tur);
    ts_good(&r);
    /* The page 2Ah lock state says locked. */
    uint8_t ms6[6] = { 0x1a, 0x08, 0x2a, 0, 64, 0 };
    r = TS_IN(lun, ms6, buf, sizeof(buf));
    ts_good(&r);
    assert_int_equal(buf[4 + 6] & 0x03, 0x03);

    /* Forced: out it comes, the lock is lifted, the tray stays open. */
    err_clear(&err);
    assert_int_equal(scsi_lun_medium_eject(lun, true, &old, &err), 0);
    assert_ptr_equal(old, a);
    blk_close(old);
    assert_int_equal(ev.n[SCSI_LUN_EVENT_MEDIUM_EJECTED], 1);
    assert_int_equal(ev.last, SCSI_LUN_EVENT_MEDIUM_EJECTED);
    assert_false(scsi_lun_medium_locked(lun));
    assert_int_equal(scsi_lun_medium_state(lun), SCSI_MEDIUM_TRAY_OPEN);
    assert_null(scsi_lun_medium(lun));
    /* 06/3A/00 once (the removal), then 02/3A/02 (tray open). */
    r = TS_NONE(lun, tur);
    ts_check(&r, 0x6, 0x3a, 0x00);
    r = TS_NONE(lun, tur);
    ts_check(&r, 0x2, 0x3a, 0x02);
    EXPECT_RS(lun, 0x2, 0x3a, 0x02);
    r = TS_IN(lun, rc, cap, sizeof(cap));
    ts_check(&r, 0x2, 0x3a, 0x02);
    /* Ejecting an empty drive is no error and hands back nothing. */
    assert_int_equal(scsi_lun_medium_eject(lun, false, &old, &err), 0);
    assert_null(old);

    /* The other disc: a fresh 28/00, its own capacity and data. */
    assert_int_equal(scsi_lun_medium_insert(lun, b, &err), 0);
    r = TS_NONE(lun, tur);
    ts_check(&r, 0x6, 0x28, 0x00);
    r = TS_IN(lun, rc, cap, sizeof(cap));
    ts_good(&r);
    assert_int_equal(ts_get(cap, 4), 31);
    expect_block(__LINE__, lun, 5, 0x80);

    /* Eject and insert before the initiator looks: only the insertion's
     * attention is left. */
    assert_int_equal(scsi_lun_medium_eject(lun, false, &old, &err), 0);
    assert_ptr_equal(old, b);
    assert_int_equal(scsi_lun_medium_insert(lun, b, &err), 0);
    r = TS_NONE(lun, tur);
    ts_check(&r, 0x6, 0x28, 0x00);
    r = TS_NONE(lun, tur);
    ts_good(&r);

    /* A reset clears the prevention. */
    r = TS_NONE(lun, prevent);
    ts_good(&r);
    scsi_lun_raise_ua(lun, SCSI_UA_POWER_ON);
    assert_false(scsi_lun_medium_locked(lun));
    r = TS_NONE(lun, tur);
    ts_check(&r, 0x6, 0x29, 0x00);

    assert_int_equal(scsi_lun_medium_eject(lun, false, &old, &err), 0);
    blk_close(old);
    scsi_lun_destroy(lun);
}

static void test_guest_tray(void **state)
{
    (void)state;
    make_iso("c.iso", 16, 0x40);
    struct blk_node *c = open_iso("c.iso");
    struct scsi_lun *lun = cdrom(c);
    struct events ev = { { 0 }, -1 };
    scsi_lun_set_event_cb(lun, on_event, &ev);
    /* Created with its medium: no attention pending, ready at once. */
    struct ts_res r = TS_NONE(lun, tur);
    ts_good(&r);
    expect_block(__LINE__, lun, 3, 0x40);

    uint8_t eject[6] = { 0x1b, 0, 0, 0, 0x02, 0 }, load[6] = { 0x1b, 0, 0, 0, 0x03, 0 };
    uint8_t prevent[6] = { 0x1e, 0, 0, 0, 0x01, 0 }, allow[6] = { 0x1e, 0, 0, 0, 0x00, 0 };
    r = TS_NONE(lun, prevent);
    ts_good(&r);
    /* Locked: 05/53/02, and the control side hears the request. */
    r = TS_NONE(lun, eject);
    assert_int_equal(r.access, SCSI_ACCESS_BARRIER);
    ts_check(&r, 0x5, 0x53, 0x02);
    assert_int_equal(ev.n[SCSI_LUN_EVENT_GUEST_EJECT_REQUEST], 1);
    assert_int_equal(scsi_lun_medium_state(lun), SCSI_MEDIUM_PRESENT);
    r = TS_NONE(lun, allow);
    ts_good(&r);
    r = TS_NONE(lun, eject);
    ts_good(&r);
    assert_int_equal(ev.n[SCSI_LUN_EVENT_GUEST_EJECT_REQUEST], 2);
    assert_int_equal(scsi_lun_medium_state(lun), SCSI_MEDIUM_TRAY_OPEN);
    /* The disc lies in the open tray: still the host's node, not readable. */
    assert_ptr_equal(scsi_lun_medium(lun), c);
    r = TS_NONE(lun, tur);
    ts_check(&r, 0x2, 0x3a, 0x02);
    /* Locking an open tray, then opening it again: 02/53/02 (no medium
     * to hold in), and closing it is always allowed. */
    r = TS_NONE(lun, prevent);
    ts_good(&r);
    r = TS_NONE(lun, eject);
    ts_check(&r, 0x2, 0x53, 0x02);
    r = TS_NONE(lun, load);
    ts_good(&r);
    assert_int_equal(ev.n[SCSI_LUN_EVENT_GUEST_LOAD], 1);
    assert_int_equal(scsi_lun_medium_state(lun), SCSI_MEDIUM_PRESENT);
    r = TS_NONE(lun, tur);
    ts_good(&r);
    expect_block(__LINE__, lun, 15, 0x40);
    /* Spinning up or down (LoEj 0) changes nothing; power conditions are
     * refused. */
    uint8_t stop[6] = { 0x1b, 0x01, 0, 0, 0x00, 0 };
    r = TS_NONE(lun, stop);
    ts_good(&r);
    assert_int_equal(r.access, SCSI_ACCESS_DONE);
    r = TS_NONE(lun, tur);
    ts_good(&r);
    uint8_t power[6] = { 0x1b, 0, 0, 0, 0x10, 0 };
    r = TS_NONE(lun, power);
    TS_INVALID_CDB(r, 4, 4);
    scsi_lun_destroy(lun);
    blk_close(c);
}

/* ---- eject against reads in flight on the dispatcher ---- */

#define RACE_CMDS 4

struct race {
    struct scsi_disp *d;
    struct scsi_lun *lun;
    atomic_bool stop;
    atomic_int good, not_ready, ua, bad;
};

/* Each READ(10) of 4 blocks must read as one whole disc, a or b. */
static void *reader(void *arg)
{
    struct race *rc = arg;
    struct tcmd t;
    td_init(&t, 4 * BLK);
    while (!atomic_load(&rc->stop)) {
        memset(t.cdb, 0, 16);
        t.cdb[0] = 0x28;
        td_be(t.cdb + 2, 4, 4);
        td_be(t.cdb + 7, 4, 2);
        td_set(&t, 10, SCSI_DIR_FROM_DEV, 4 * BLK);
        td_run(rc->d, rc->lun, &t);
        if (t.cmd.status == SCSI_STATUS_GOOD) {
            uint8_t seed = (uint8_t)(t.buf[0] - 4);
            bool ok = seed == 0x10 || seed == 0x80;
            for (unsigned i = 0; ok && i < 4 * BLK; i++)
                ok = t.buf[i] == (uint8_t)(seed + 4 + i / BLK);
            atomic_fetch_add(ok ? &rc->good : &rc->bad, 1);
            continue;
        }
        int key, asc, ascq;
        td_sense(&t, &key, &asc, &ascq);
        if (key == 0x2 && asc == 0x3a)
            atomic_fetch_add(&rc->not_ready, 1);
        else if (key == 0x6 && (asc == 0x28 || asc == 0x3a))
            atomic_fetch_add(&rc->ua, 1);
        else
            atomic_fetch_add(&rc->bad, 1);
    }
    td_free(&t);
    return NULL;
}

static void test_eject_drains(void **state)
{
    (void)state;
    make_iso("a.iso", 64, 0x10);
    make_iso("b.iso", 32, 0x80);
    struct race rc = { 0 };
    struct scuse_err err = { 0 };
    rc.lun = cdrom(open_iso("a.iso"));
    struct scsi_disp_config dc = { .workers = 3 };
    assert_int_equal(scsi_disp_create(&dc, &rc.d, &err), 0);
    pthread_t th[RACE_CMDS];
    for (int i = 0; i < RACE_CMDS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader, &rc), 0);
    for (int round = 0; round < 40; round++) {
        usleep(2000);
        struct blk_node *old = NULL;
        assert_int_equal(scsi_lun_medium_eject(rc.lun, false, &old, &err), 0);
        assert_non_null(old);
        blk_close(old);             /* nobody reads it any more */
        usleep(500);
        assert_int_equal(scsi_lun_medium_insert(rc.lun, open_iso(round & 1 ? "a.iso" : "b.iso"),
                                                &err), 0);
    }
    usleep(2000);
    atomic_store(&rc.stop, true);
    for (int i = 0; i < RACE_CMDS; i++)
        pthread_join(th[i], NULL);
    print_message("# reads: %d good, %d not ready, %d unit attentions\n", atomic_load(&rc.good),
                  atomic_load(&rc.not_ready), atomic_load(&rc.ua));
    assert_int_equal(atomic_load(&rc.bad), 0);
    assert_true(atomic_load(&rc.good) > 0);
    assert_true(atomic_load(&rc.ua) > 0);
    struct blk_node *old = NULL;
    assert_int_equal(scsi_lun_medium_eject(rc.lun, false, &old, &err), 0);
    blk_close(old);
    scsi_disp_destroy(rc.d);
    scsi_lun_destroy(rc.lun);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TS_TEST(test_identity_and_empty),
        TS_TEST(test_insert_eject_host),
        TS_TEST(test_guest_tray),
        TS_TEST(test_eject_drains),
    };
    return cmocka_run_group_tests(tests, setup, ts_teardown);
}
