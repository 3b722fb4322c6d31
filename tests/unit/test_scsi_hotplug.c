/* LUNs added and removed while commands flow (the control socket's
 * lun-add and lun-remove, in the order cmd_serve_ctl.c does them):
 *  - threads submit READ(16)/WRITE(16) through scsi_target_submit to a
 *    LUN that comes and goes; every command completes exactly once, GOOD
 *    or with the answers SPC gives (LOGICAL UNIT NOT SUPPORTED when it is
 *    gone, a unit attention when it came back), never on a freed LUN
 *    (ASan and TSan run this);
 *  - the other LUN gets REPORTED LUNS DATA HAS CHANGED (06/3F/0E) once
 *    per change, and REPORT LUNS lists the LUN only while it is there;
 *  - removing waits for a command whose done() has not returned;
 *  - a raw image grown and shrunk under reads (lun-resize's steps: the
 *    block layer's size, then the LUN's capacity): every read completes
 *    GOOD, with CAPACITY DATA HAS CHANGED, or out of range, and TSan sees
 *    the size change as the atomic it is. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "blk/blk.h"
#include "test_scsi_dispatch_util.h"
#include "testutil.h"

#define LBS 512
#define HOT 5                       /* the LUN that comes and goes */
#define SUBMITTERS 3

struct env {
    struct scsi_target *t;
    struct scsi_disp *d;
    struct blk_node *bs0, *hot_bs;
    struct scsi_lun *lun0, *hot;
};

static void open_lun(const char *name, uint16_t id, struct blk_node **bs, struct scsi_lun **lun)
{
    struct scuse_err err = { 0 };
    if (blk_open(tu_path(name), "raw", BLK_OPEN_RW, NULL, bs, &err) < 0)
        fail_msg("open %s: %s", name, err.msg);
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    assert_int_equal(scsi_lun_create(&cfg, *bs, id, lun, &err), 0);
}

/* lun-add's order: attached, power-on UA, into the target, the others told. */
static void hot_add(struct env *e)
{
    struct scuse_err err = { 0 };
    open_lun("hot.raw", HOT, &e->hot_bs, &e->hot);
    assert_int_equal(scsi_disp_attach(e->d, e->hot, &err), 0);
    scsi_lun_raise_ua(e->hot, SCSI_UA_POWER_ON);
    assert_int_equal(scsi_target_add_lun(e->t, e->hot, &err), 0);
    scsi_target_raise_ua(e->t, SCSI_UA_LUNS_CHANGED, e->hot);
}

/* lun-remove's order: out of the target, drained, the others told, closed. */
static void hot_remove(struct env *e)
{
    assert_ptr_equal(scsi_target_remove_lun(e->t, HOT), e->hot);
    scsi_disp_detach(e->d, e->hot);
    scsi_target_raise_ua(e->t, SCSI_UA_LUNS_CHANGED, NULL);
    scsi_lun_destroy(e->hot);
    blk_close(e->hot_bs);
    e->hot = NULL;
    e->hot_bs = NULL;
}

static void env_open(struct env *e)
{
    memset(e, 0, sizeof(*e));
    struct scuse_err err = { 0 };
    tu_run("qemu-img create -q -f raw lun0.raw 1M && qemu-img create -q -f raw hot.raw 1M");
    assert_int_equal(scsi_target_create(&e->t, &err), 0);
    struct scsi_disp_config dc = { .workers = 2 };
    assert_int_equal(scsi_disp_create(&dc, &e->d, &err), 0);
    open_lun("lun0.raw", 0, &e->bs0, &e->lun0);
    assert_int_equal(scsi_disp_attach(e->d, e->lun0, &err), 0);
    assert_int_equal(scsi_target_add_lun(e->t, e->lun0, &err), 0);
}

static void env_close(struct env *e)
{
    if (e->hot)
        hot_remove(e);
    scsi_disp_destroy(e->d);
    scsi_target_destroy(e->t);
    scsi_lun_destroy(e->lun0);
    blk_close(e->bs0);
}

static void run_on(struct env *e, uint16_t id, struct tcmd *c)
{
    scsi_target_submit(e->t, e->d, id, &c->cmd);
    td_wait(c);
}

/* The pending unit attention of LUN id, as TEST UNIT READY reports it
 * (asc << 8 | ascq), or 0 when it answers GOOD. */
static int pending_ua(struct env *e, uint16_t id)
{
    struct tcmd c;
    td_init(&c, 0);
    td_tur(&c);
    run_on(e, id, &c);
    int k = 0, a = 0, q = 0;
    if (c.cmd.status == SCSI_STATUS_GOOD) {
        td_free(&c);
        return 0;
    }
    td_sense(&c, &k, &a, &q);
    td_free(&c);
    return k == 6 ? a << 8 | q : -(k << 16 | a << 8 | q);
}

/* REPORT LUNS through LUN 0: how many LUNs, and whether HOT is one. */
static unsigned inventory(struct env *e, bool *has_hot)
{
    struct tcmd c;
    td_init(&c, 64);
    memset(c.cdb, 0, 16);
    c.cdb[0] = 0xa0;
    td_be(c.cdb + 6, 64, 4);
    td_set(&c, 12, SCSI_DIR_FROM_DEV, 64);
    run_on(e, 0, &c);
    assert_int_equal(c.cmd.status, SCSI_STATUS_GOOD);
    unsigned n = (unsigned)td_get_be(c.buf, 4) / 8;
    *has_hot = false;
    for (unsigned i = 0; i < n; i++)
        *has_hot |= c.buf[8 + i * 8 + 1] == HOT;
    td_free(&c);
    return n;
}

static void test_add_remove_ua(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    bool has;
    assert_int_equal(inventory(&e, &has), 1);
    assert_false(has);
    /* Absent: LOGICAL UNIT NOT SUPPORTED. */
    assert_int_equal(pending_ua(&e, HOT), -(5 << 16 | 0x25 << 8));
    hot_add(&e);
    /* The new LUN powers on; LUN 0 hears that the inventory changed. */
    assert_int_equal(pending_ua(&e, HOT), 0x2900);
    assert_int_equal(pending_ua(&e, HOT), 0);
    assert_int_equal(pending_ua(&e, 0), 0x3f0e);
    assert_int_equal(pending_ua(&e, 0), 0);
    assert_int_equal(inventory(&e, &has), 2);
    assert_true(has);
    hot_remove(&e);
    assert_int_equal(pending_ua(&e, 0), 0x3f0e);
    assert_int_equal(inventory(&e, &has), 1);
    assert_false(has);
    assert_int_equal(pending_ua(&e, HOT), -(5 << 16 | 0x25 << 8));
    /* REPORT LUNS itself clears the unit attention (SPC). */
    hot_add(&e);
    assert_int_equal(inventory(&e, &has), 2);
    assert_int_equal(pending_ua(&e, 0), 0);
    env_close(&e);
}

/* ---- commands racing add and remove ---- */

struct racer {
    struct env *e;
    atomic_bool *stop;
    unsigned seed;
    unsigned good, gone, ua, bad;     /* bad: counted here, failed on the main thread */
    int bad_sense;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    struct tcmd c;
    td_init(&c, 8 * LBS);
    uint64_t rng = r->seed;
    while (!atomic_load(r->stop)) {
        bool write = tu_rnd(&rng) & 1;
        uint64_t lba = tu_below(&rng, 2048 - 8);
        td_rw16(&c, write, lba, 8, LBS, false);
        scsi_target_submit(r->e->t, r->e->d, HOT, &c.cmd);
        td_wait(&c);
        int k = 0, a = 0, q = 0;
        if (atomic_load(&c.ndone) != 1) {
            r->bad++;
            r->bad_sense = -1;
            continue;
        }
        if (c.cmd.status == SCSI_STATUS_GOOD) {
            r->good++;
            continue;
        }
        td_sense(&c, &k, &a, &q);
        if (c.cmd.status == SCSI_STATUS_CHECK_CONDITION && k == 5 && a == 0x25) {
            r->gone++;
            usleep(20);             /* not there: no need to spin */
        } else if (c.cmd.status == SCSI_STATUS_CHECK_CONDITION && k == 6 &&
                   ((a == 0x29 && q == 0) || (a == 0x3f && q == 0x0e))) {
            r->ua++;
        } else {
            r->bad++;
            r->bad_sense = c.cmd.status << 24 | k << 16 | a << 8 | q;
        }
    }
    td_free(&c);
    return NULL;
}

static void test_race(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    atomic_bool stop = false;
    struct racer r[SUBMITTERS];
    pthread_t th[SUBMITTERS];
    for (int i = 0; i < SUBMITTERS; i++) {
        r[i] = (struct racer){ .e = &e, .stop = &stop, .seed = 11u + (unsigned)i };
        assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    for (int round = 0; round < 40; round++) {
        hot_add(&e);
        usleep(2000);
        hot_remove(&e);
        usleep(1000);
    }
    atomic_store(&stop, true);
    unsigned good = 0, gone = 0, ua = 0;
    for (int i = 0; i < SUBMITTERS; i++) {
        pthread_join(th[i], NULL);
        good += r[i].good;
        gone += r[i].gone;
        ua += r[i].ua;
        if (r[i].bad)
            fail_msg("%u commands with another answer (last: status/key/asc/ascq %08x, "
                     "-1: not completed once)", r[i].bad, r[i].bad_sense);
    }
    print_message("commands: %u GOOD, %u LUN NOT SUPPORTED, %u unit attentions\n", good, gone,
                  ua);
    /* Both states were reached: the race was a race. */
    assert_true(good > 0);
    assert_true(gone > 0);
    assert_true(ua > 0);
    env_close(&e);
}

/* ---- the size changing under reads ---- */

struct reader {
    struct env *e;
    atomic_bool *stop;
    unsigned good, ua, range, bad;
    int bad_sense;
};

static void *read_main(void *arg)
{
    struct reader *r = arg;
    struct tcmd c;
    td_init(&c, 8 * LBS);
    uint64_t rng = 7;
    while (!atomic_load(r->stop)) {
        td_rw16(&c, false, tu_below(&rng, 4096 - 8), 8, LBS, false);
        scsi_target_submit(r->e->t, r->e->d, 0, &c.cmd);
        td_wait(&c);
        int k = 0, a = 0, q = 0;
        if (c.cmd.status == SCSI_STATUS_GOOD) {
            r->good++;
            continue;
        }
        td_sense(&c, &k, &a, &q);
        if (k == 6 && a == 0x2a && q == 0x09) {
            r->ua++;
        } else if (k == 5 && a == 0x21) {
            r->range++;             /* past the end of the shrunk image */
        } else {
            r->bad++;
            r->bad_sense = c.cmd.status << 24 | k << 16 | a << 8 | q;
        }
    }
    td_free(&c);
    return NULL;
}

static void test_resize_under_reads(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);                   /* LUN 0: lun0.raw, 1 MiB (2048 blocks) */
    atomic_bool stop = false;
    struct reader r[2] = { { .e = &e, .stop = &stop }, { .e = &e, .stop = &stop } };
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, read_main, &r[i]), 0);
    unsigned changes = 0;
    for (int round = 0; round < 40; round++) {
        /* 2 MiB and 1 MiB in turn: reads up to block 4096 fall off the
         * end half of the time. */
        tu_run("truncate -s %dM lun0.raw", round % 2 ? 1 : 2);
        bool moved;
        struct scuse_err err = { 0 };
        assert_int_equal(blk_refresh_size(e.bs0, &moved, &err), 0);
        changes += scsi_lun_refresh_capacity(e.lun0);
        usleep(2000);
    }
    atomic_store(&stop, true);
    unsigned good = 0, ua = 0, range = 0;
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        good += r[i].good;
        ua += r[i].ua;
        range += r[i].range;
        if (r[i].bad)
            fail_msg("%u reads with another answer (last %08x)", r[i].bad, r[i].bad_sense);
    }
    print_message("resizes: %u; reads: %u GOOD, %u CAPACITY DATA HAS CHANGED, %u out of "
                  "range\n", changes, good, ua, range);
    assert_int_equal(changes, 40);
    assert_true(good > 0 && ua > 0);
    env_close(&e);
}

/* ---- removal waits for a done() in progress ---- */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool entered, open;
} gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false };

static void gate_hook(struct tcmd *t)
{
    (void)t;
    pthread_mutex_lock(&gate.lock);
    gate.entered = true;
    pthread_cond_broadcast(&gate.cond);
    while (!gate.open)
        pthread_cond_wait(&gate.cond, &gate.lock);
    pthread_mutex_unlock(&gate.lock);
}

struct remover {
    struct env *e;
    atomic_bool done;
};

static void *remove_main(void *arg)
{
    struct remover *rm = arg;
    hot_remove(rm->e);
    atomic_store(&rm->done, true);
    return NULL;
}

static void test_remove_drains(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    hot_add(&e);
    assert_int_equal(pending_ua(&e, HOT), 0x2900);
    struct tcmd c;
    td_init(&c, 8 * LBS);
    c.hook = gate_hook;
    td_rw16(&c, true, 0, 8, LBS, false);
    memset(c.buf, 0x6b, 8 * LBS);
    scsi_target_submit(e.t, e.d, HOT, &c.cmd);
    pthread_mutex_lock(&gate.lock);
    while (!gate.entered)
        pthread_cond_wait(&gate.cond, &gate.lock);
    pthread_mutex_unlock(&gate.lock);

    struct remover rm = { .e = &e, .done = false };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, remove_main, &rm), 0);
    usleep(200 * 1000);
    assert_false(atomic_load(&rm.done));    /* the done() still runs */
    pthread_mutex_lock(&gate.lock);
    gate.open = true;
    pthread_cond_broadcast(&gate.cond);
    pthread_mutex_unlock(&gate.lock);
    pthread_join(th, NULL);
    assert_true(atomic_load(&rm.done));
    assert_int_equal(c.cmd.status, SCSI_STATUS_GOOD);
    td_free(&c);
    /* The write reached the image before it was closed. */
    uint8_t *img = tu_load("hot.raw", 8 * LBS);
    for (unsigned i = 0; i < 8 * LBS; i++)
        assert_int_equal(img[i], 0x6b);
    free(img);
    env_close(&e);
}

static int setup(void **state)
{
    (void)state;
    return tu_qemu_setup("hotplug", NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_add_remove_ua, tu_need_qemu),
        cmocka_unit_test_setup(test_race, tu_need_qemu),
        cmocka_unit_test_setup(test_remove_drains, tu_need_qemu),
        cmocka_unit_test_setup(test_resize_under_reads, tu_need_qemu),
    };
    return cmocka_run_group_tests(tests, setup, tu_teardown);
}
