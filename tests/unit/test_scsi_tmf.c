/* Task management through the dispatcher, as a transport's TMF channel
 * uses it: QUERY TASK / QUERY TASK SET see what is in the task set; ABORT
 * TASK aborts a command that has not started and returns only after its
 * done() returned (also for a command whose done() is running); ABORT
 * TASK SET ends every command of the LUN without a unit attention.
 *
 * One worker is held inside a completion (a gate in done()), so commands
 * submitted meanwhile cannot start and the waits are observable. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include <cmocka.h>

#include "scsi/scsi_int.h"   /* the LUN's sanitize waiter */
#include "test_scsi_env.h"

#define LBS TE_LBS

/* A TMF run on its own thread, so the test can see that it waits. */
struct tmf {
    struct te_env *e;
    enum { ABORT_TASK, ABORT_TASK_SET } what;
    uint64_t tag;
    bool found;
    atomic_bool returned;
    pthread_t th;
};

static void *tmf_main(void *arg)
{
    struct tmf *t = arg;
    if (t->what == ABORT_TASK)
        t->found = scsi_abort_task(t->e->d, t->e->lun, t->tag);
    else
        scsi_abort_task_set(t->e->d, t->e->lun);
    atomic_store(&t->returned, true);
    return NULL;
}

/* Starts the TMF, checks it is still waiting a while later, lets the held
 * worker go, and joins. */
static void tmf_run_held(struct tmf *t)
{
    atomic_store(&t->returned, false);
    pthread_create(&t->th, NULL, tmf_main, t);
    usleep(100 * 1000);
    assert_false(atomic_load(&t->returned));
    te_gate_open();
    pthread_join(t->th, NULL);
    assert_true(atomic_load(&t->returned));
}

static void test_query_and_abort_task(void **state)
{
    (void)state;
    struct te_env e;
    te_open(&e, "abort.qcow2", 1);
    struct tcmd hold, w, r;
    td_init(&hold, 0);
    td_init(&w, LBS);
    td_init(&r, LBS);
    te_gate_close(&e, &hold, 1);
    memset(w.buf, 0xee, LBS);
    td_rw16(&w, true, 0, 1, LBS, false);
    w.cmd.tag = 2;
    td_rw16(&r, false, 0, 1, LBS, false);
    r.cmd.tag = 3;
    scsi_submit(e.d, e.lun, &w.cmd);
    scsi_submit(e.d, e.lun, &r.cmd);

    assert_true(scsi_query_task(e.d, e.lun, 2));
    assert_true(scsi_query_task(e.d, e.lun, 3));
    assert_false(scsi_query_task(e.d, e.lun, 1));  /* finished (its done() runs) */
    assert_false(scsi_query_task(e.d, e.lun, 99));
    assert_true(scsi_query_task_set(e.d, e.lun));

    /* The write has not started: aborted, and the abort returns after its
     * done() did, which needs the held worker. */
    struct tmf t = { .e = &e, .what = ABORT_TASK, .tag = 2 };
    tmf_run_held(&t);
    assert_true(t.found);
    assert_int_equal(atomic_load(&w.ndone), 1);
    assert_int_equal(w.cmd.status, SCSI_STATUS_TASK_ABORTED);
    td_wait(&r);
    assert_int_equal(r.cmd.status, SCSI_STATUS_GOOD);
    assert_int_equal(r.buf[0], 0x5a);              /* the write never happened */
    assert_false(scsi_query_task(e.d, e.lun, 3));
    assert_false(scsi_query_task_set(e.d, e.lun));
    assert_false(scsi_abort_task(e.d, e.lun, 3));  /* gone: nothing to wait for */

    /* A command in its done(): not in the task set, but the abort still
     * waits for that done() to return. */
    te_gate_close(&e, &hold, 7);
    struct tmf t2 = { .e = &e, .what = ABORT_TASK, .tag = 7 };
    tmf_run_held(&t2);
    assert_false(t2.found);
    assert_int_equal(atomic_load(&hold.ndone), 1);
    te_close(&e);
    td_free(&hold);
    td_free(&w);
    td_free(&r);
}

static void test_abort_task_set(void **state)
{
    (void)state;
    enum { N = 8 };
    struct te_env e;
    te_open(&e, "set.qcow2", 1);
    struct tcmd hold, t[N];
    td_init(&hold, 0);
    te_gate_close(&e, &hold, 100);
    for (int i = 0; i < N; i++) {
        td_init(&t[i], LBS);
        memset(t[i].buf, 0x20 + i, LBS);
        td_rw16(&t[i], true, (uint64_t)i, 1, LBS, false);
        t[i].cmd.tag = (uint64_t)i;
        scsi_submit(e.d, e.lun, &t[i].cmd);
    }
    struct tmf a = { .e = &e, .what = ABORT_TASK_SET };
    tmf_run_held(&a);
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&t[i].ndone), 1);
        assert_int_equal(t[i].cmd.status, SCSI_STATUS_TASK_ABORTED);
    }
    assert_int_equal(atomic_load(&hold.ndone), 1);
    /* Unlike a LUN reset, no unit attention follows. */
    struct tcmd rd;
    td_init(&rd, N * LBS);
    td_rw16(&rd, false, 0, N, LBS, false);
    td_run(e.d, e.lun, &rd);
    assert_int_equal(rd.cmd.status, SCSI_STATUS_GOOD);
    for (int i = 0; i < N * LBS; i++)
        if (rd.buf[i] != 0x5a)
            fail_msg("byte %d is 0x%02x: an aborted write reached the image", i, rd.buf[i]);
    te_close(&e);
    for (int i = 0; i < N; i++)
        td_free(&t[i]);
    td_free(&hold);
    td_free(&rd);
}

/* A SANITIZE without IMMED that an abort or a reset names ends at once
 * (TASK ABORTED) and the sanitize goes on to the end (SBC-4 4.11): under
 * LIO the abort would otherwise wait for the whole sanitize. Three ways
 * to name it: ABORT TASK, TCMU's abort (scsi_abort), LUN RESET. */
enum { SAN_ABORT_TASK, SAN_TCMU_ABORT, SAN_LUN_RESET };

static bool sanitize_waits(struct scsi_lun *lun)
{
    pthread_mutex_lock(&lun->sanitize_lock);
    bool w = lun->sanitize_waiter != NULL;
    pthread_mutex_unlock(&lun->sanitize_lock);
    return w;
}

static void sanitize_named(struct te_env *e, int how, uint8_t pattern)
{
    struct tcmd san, tur;
    td_init(&san, 5);
    td_init(&tur, 0);
    /* OVERWRITE, 31 passes of the 8 MiB LUN: long enough to be named. */
    uint8_t plist[5] = { 0x1f, 0, 0, 1, pattern };
    memcpy(san.buf, plist, 5);
    td_set(&san, 10, SCSI_DIR_TO_DEV, 5);
    memset(san.cdb, 0, 16);
    san.cdb[0] = 0x48;
    san.cdb[1] = 0x01;
    san.cdb[8] = 5;
    san.cmd.tag = 40 + (uint64_t)how;
    scsi_submit(e->d, e->lun, &san.cmd);
    for (int i = 0; i < 100000 && !sanitize_waits(e->lun); i++)
        usleep(100);
    assert_true(sanitize_waits(e->lun));
    if (how == SAN_ABORT_TASK)
        assert_true(scsi_abort_task(e->d, e->lun, san.cmd.tag));
    else if (how == SAN_TCMU_ABORT)
        assert_true(scsi_abort(e->d, e->lun, san.cmd.tag));
    else
        scsi_lun_reset(e->d, e->lun);
    td_wait(&san);
    assert_int_equal(san.cmd.status, SCSI_STATUS_TASK_ABORTED);
    /* The sanitize goes on: TEST UNIT READY says so until it is done (a
     * unit attention first, after the reset). */
    unsigned busy = 0;
    for (int i = 0; i < 200000; i++) {
        td_tur(&tur);
        td_run(e->d, e->lun, &tur);
        if (tur.cmd.status == SCSI_STATUS_GOOD)
            break;
        assert_int_equal(tur.cmd.status, SCSI_STATUS_CHECK_CONDITION);
        int key, asc, ascq;
        td_sense(&tur, &key, &asc, &ascq);
        if (key == 0x6)
            continue;
        assert_int_equal(key, 0x2);
        assert_int_equal(asc, 0x04);
        assert_int_equal(ascq, 0x1b);
        busy++;
        usleep(500);
    }
    assert_int_equal(tur.cmd.status, SCSI_STATUS_GOOD);
    assert_true(busy > 0);
    print_message("# sanitize named (%d): %u TEST UNIT READYs saw it go on\n", how, busy);
    /* and it ran to the end: the pattern is in the last block. */
    struct tcmd rd;
    td_init(&rd, LBS);
    td_rw16(&rd, false, TE_IMG_BLOCKS - 1, 1, LBS, false);
    td_run(e->d, e->lun, &rd);
    assert_int_equal(rd.cmd.status, SCSI_STATUS_GOOD);
    for (int i = 0; i < LBS; i++)
        assert_int_equal(rd.buf[i], pattern);
    td_free(&rd);
    td_free(&tur);
    td_free(&san);
}

/* A READ prepared before the SANITIZE began waits behind it; when an
 * abort ends the SANITIZE command, the READ runs while the sanitize still
 * goes on: NOT READY, SANITIZE IN PROGRESS, not the image half sanitized.
 * One worker, held in a completion while both are submitted. */
static void test_sanitize_queued(void **state)
{
    (void)state;
    struct te_env e;
    te_open(&e, "sanq.qcow2", 1);
    struct tcmd hold, san, rd;
    td_init(&hold, 0);
    td_init(&san, 5);
    td_init(&rd, LBS);
    te_gate_close(&e, &hold, 1);
    uint8_t plist[5] = { 0x1f, 0, 0, 1, 0x64 };
    memcpy(san.buf, plist, 5);
    td_set(&san, 10, SCSI_DIR_TO_DEV, 5);
    memset(san.cdb, 0, 16);
    san.cdb[0] = 0x48;
    san.cdb[1] = 0x01;
    san.cdb[8] = 5;
    san.cmd.tag = 2;
    scsi_submit(e.d, e.lun, &san.cmd);
    td_rw16(&rd, false, TE_IMG_BLOCKS - 1, 1, LBS, false);
    rd.cmd.tag = 3;
    scsi_submit(e.d, e.lun, &rd.cmd);
    te_gate_open();
    for (int i = 0; i < 100000 && !sanitize_waits(e.lun); i++)
        usleep(100);
    assert_true(sanitize_waits(e.lun));
    assert_true(scsi_abort_task(e.d, e.lun, 2));
    td_wait(&san);
    td_wait(&rd);
    assert_int_equal(san.cmd.status, SCSI_STATUS_TASK_ABORTED);
    assert_int_equal(rd.cmd.status, SCSI_STATUS_CHECK_CONDITION);
    int key, asc, ascq;
    td_sense(&rd, &key, &asc, &ascq);
    assert_int_equal(key, 0x2);
    assert_int_equal(asc, 0x04);
    assert_int_equal(ascq, 0x1b);
    te_close(&e);                   /* waits for the sanitize */
    td_free(&hold);
    td_free(&san);
    td_free(&rd);
}

static void test_sanitize_named(void **state)
{
    (void)state;
    struct te_env e;
    te_open(&e, "san.qcow2", 2);
    sanitize_named(&e, SAN_ABORT_TASK, 0x61);
    sanitize_named(&e, SAN_TCMU_ABORT, 0x62);
    sanitize_named(&e, SAN_LUN_RESET, 0x63);
    te_close(&e);
}

static int group_setup(void **state)
{
    (void)state;
    return tu_qemu_setup("scsi-tmf", NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_query_and_abort_task, tu_need_qemu),
        cmocka_unit_test_setup(test_abort_task_set, tu_need_qemu),
        cmocka_unit_test_setup(test_sanitize_named, tu_need_qemu),
        cmocka_unit_test_setup(test_sanitize_queued, tu_need_qemu),
    };
    return cmocka_run_group_tests(tests, group_setup, tu_teardown);
}
