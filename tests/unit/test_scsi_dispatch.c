/* The dispatcher with the real emulation over a qcow2 made by qemu-img:
 * overlapping writes and reads apply in submission order with several
 * workers, COMPARE AND WRITE is atomic, a command aborted before it
 * started completes with TASK ABORTED (done() once), HEAD OF QUEUE goes
 * first, a LUN reset aborts what waits, drains what runs and raises the
 * reset unit attention, and LUNs attach and detach.
 *
 * Deterministic interleavings use a dispatcher with one worker held
 * inside a completion (a gate in done()): commands submitted meanwhile
 * cannot start. The random concurrent workload is test_scsi_dispatch_mt. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_scsi_env.h"

#define LBS TE_LBS
#define IMG_BLOCKS TE_IMG_BLOCKS

static uint64_t seed;

static void fill_random(uint64_t *rng, uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = tu_rnd(rng);
        memcpy(p + i, &v, n - i < 8 ? n - i : 8);
    }
}

/* Writes and reads over one small window, all in flight at once from one
 * submitter: every read sees exactly the writes submitted before it, and
 * the window ends as the writes applied in submission order. */
static void test_submission_order(void **state)
{
    (void)state;
    enum { N = 600, WINDOW = 64, MAXB = 24 };
    struct te_env e;
    te_open(&e, "order.qcow2", 4);
    uint64_t rng = seed;
    uint8_t shadow[WINDOW * LBS];
    struct tcmd rd;
    td_init(&rd, WINDOW * LBS);
    td_rw16(&rd, false, 0, WINDOW, LBS, false);
    td_run(e.d, e.lun, &rd);
    assert_int_equal(rd.cmd.status, SCSI_STATUS_GOOD);
    memcpy(shadow, rd.buf, sizeof(shadow));

    static struct tcmd t[N];
    static uint8_t expect[N][MAXB * LBS];
    bool is_read[N];
    for (int i = 0; i < N; i++) {
        uint64_t lba = tu_below(&rng, WINDOW);
        uint32_t n = 1 + (uint32_t)tu_below(&rng, MAXB);
        if (lba + n > WINDOW)
            n = (uint32_t)(WINDOW - lba);
        td_init(&t[i], MAXB * LBS);
        t[i].cmd.tag = (uint64_t)i;
        is_read[i] = tu_below(&rng, 4) == 0;
        if (is_read[i]) {
            td_rw16(&t[i], false, lba, n, LBS, false);
            memcpy(expect[i], shadow + lba * LBS, (size_t)n * LBS);
        } else {
            fill_random(&rng, t[i].buf, (size_t)n * LBS);
            td_rw16(&t[i], true, lba, n, LBS, tu_below(&rng, 8) == 0);
            memcpy(shadow + lba * LBS, t[i].buf, (size_t)n * LBS);
        }
    }
    for (int i = 0; i < N; i++)
        scsi_submit(e.d, e.lun, &t[i].cmd);
    int out_of_order = 0;
    for (int i = 0; i < N; i++) {
        td_wait(&t[i]);
        assert_int_equal(t[i].cmd.status, SCSI_STATUS_GOOD);
        if (is_read[i] && memcmp(t[i].buf, expect[i], t[i].cmd.data.len) != 0)
            fail_msg("read %d (LBA %lu, %zu bytes) does not see exactly the writes before it", i,
                     (unsigned long)t[i].cmd.lba, t[i].cmd.data.len);
        if (i && atomic_load(&t[i].order) < atomic_load(&t[i - 1].order))
            out_of_order++;
    }
    td_rw16(&rd, false, 0, WINDOW, LBS, false);
    td_run(e.d, e.lun, &rd);
    assert_memory_equal(rd.buf, shadow, sizeof(shadow));
    te_close(&e);
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&t[i].ndone), 1);
        td_free(&t[i]);
    }
    td_free(&rd);
    print_message("# %d of %d completions came before the previous command's\n", out_of_order, N);
}

/* ---- COMPARE AND WRITE as a shared counter ---- */

enum { CTR_BLOCKS = 4, CTR_THREADS = 4, CTR_INCS = 120 };

struct ctr_ctx {
    struct te_env *e;
    int id;
    unsigned wins[CTR_BLOCKS];
    unsigned miscompares;
    char failure[160];
};

/* Block content for counter value c: stamped with c all over. */
static void ctr_block(uint8_t *p, uint64_t blk, uint64_t c)
{
    for (int i = 0; i < LBS; i += 16) {
        td_be(p + i, blk, 8);
        td_be(p + i + 8, c, 8);
    }
}

static void *ctr_thread(void *arg)
{
    struct ctr_ctx *c = arg;
    uint64_t rng = seed + 77 * (uint64_t)c->id;
    struct tcmd t;
    td_init(&t, 2 * LBS);
    for (int k = 0; k < CTR_INCS && !c->failure[0];) {
        uint64_t blk = tu_below(&rng, CTR_BLOCKS);
        td_rw16(&t, false, 1000 + blk, 1, LBS, false);
        td_run(c->e->d, c->e->lun, &t);
        uint64_t cur = td_get_be(t.buf + 8, 8);
        uint8_t want[LBS];
        ctr_block(want, blk, cur);
        if (t.cmd.status != SCSI_STATUS_GOOD || memcmp(want, t.buf, LBS) != 0) {
            snprintf(c->failure, sizeof(c->failure), "read of counter %lu: torn or failed",
                     (unsigned long)blk);
            break;
        }
        ctr_block(t.buf, blk, cur);
        ctr_block(t.buf + LBS, blk, cur + 1);
        td_caw(&t, 1000 + blk, 1, LBS);
        td_run(c->e->d, c->e->lun, &t);
        if (t.cmd.status == SCSI_STATUS_GOOD) {
            c->wins[blk]++;
            k++;
            continue;
        }
        int key, asc, ascq;
        td_sense(&t, &key, &asc, &ascq);
        if (t.cmd.status != SCSI_STATUS_CHECK_CONDITION || key != 0xe || asc != 0x1d) {
            snprintf(c->failure, sizeof(c->failure), "C&W: status 0x%x key 0x%x asc 0x%x",
                     t.cmd.status, key, asc);
            break;
        }
        c->miscompares++;
    }
    td_free(&t);
    return NULL;
}

static void test_compare_and_write_atomic(void **state)
{
    (void)state;
    struct te_env e;
    te_open(&e, "caw.qcow2", 4);
    struct tcmd t;
    td_init(&t, LBS);
    for (uint64_t b = 0; b < CTR_BLOCKS; b++) {
        ctr_block(t.buf, b, 0);
        td_rw16(&t, true, 1000 + b, 1, LBS, false);
        td_run(e.d, e.lun, &t);
        assert_int_equal(t.cmd.status, SCSI_STATUS_GOOD);
    }
    struct ctr_ctx ctx[CTR_THREADS];
    pthread_t th[CTR_THREADS];
    for (int i = 0; i < CTR_THREADS; i++) {
        memset(&ctx[i], 0, sizeof(ctx[i]));
        ctx[i].e = &e;
        ctx[i].id = i;
        pthread_create(&th[i], NULL, ctr_thread, &ctx[i]);
    }
    unsigned miscompares = 0;
    for (int i = 0; i < CTR_THREADS; i++) {
        pthread_join(th[i], NULL);
        if (ctx[i].failure[0])
            fail_msg("thread %d: %s", i, ctx[i].failure);
        miscompares += ctx[i].miscompares;
    }
    for (uint64_t b = 0; b < CTR_BLOCKS; b++) {
        unsigned wins = 0;
        for (int i = 0; i < CTR_THREADS; i++)
            wins += ctx[i].wins[b];
        td_rw16(&t, false, 1000 + b, 1, LBS, false);
        td_run(e.d, e.lun, &t);
        uint8_t want[LBS];
        ctr_block(want, b, wins);
        if (memcmp(t.buf, want, LBS) != 0)
            fail_msg("counter %lu is %lu after %u successful COMPARE AND WRITEs",
                     (unsigned long)b, (unsigned long)td_get_be(t.buf + 8, 8), wins);
    }
    print_message("# %u miscompares (lost races) among %d increments\n", miscompares,
                  CTR_THREADS * CTR_INCS);
    td_free(&t);
    te_close(&e);
}

/* ---- abort, HEAD OF QUEUE and reset, one worker held in a done() ---- */

static void test_abort_before_start(void **state)
{
    (void)state;
    struct te_env e;
    te_open(&e, "abort.qcow2", 1);
    struct tcmd hold, w, r;
    td_init(&hold, 0);
    td_init(&w, LBS);
    td_init(&r, LBS);
    hold.cmd.tag = 1;
    w.cmd.tag = 2;
    r.cmd.tag = 3;
    te_gate_close(&e, &hold, hold.cmd.tag);
    memset(w.buf, 0xee, LBS);
    td_rw16(&w, true, 0, 1, LBS, false);
    td_rw16(&r, false, 0, 1, LBS, false);
    scsi_submit(e.d, e.lun, &w.cmd);
    scsi_submit(e.d, e.lun, &r.cmd);
    assert_false(scsi_abort(e.d, e.lun, 1));   /* finished: in its done() */
    assert_false(scsi_abort(e.d, e.lun, 99));  /* no such tag */
    assert_true(scsi_abort(e.d, e.lun, 2));
    assert_false(scsi_abort(e.d, e.lun, 2));   /* already aborted */
    assert_int_equal(atomic_load(&w.ndone), 0); /* completed by a worker, not here */
    te_gate_open();
    td_wait(&r);
    td_wait(&w);
    assert_int_equal(w.cmd.status, SCSI_STATUS_TASK_ABORTED);
    assert_int_equal(w.cmd.xfer, 0);
    assert_int_equal(r.cmd.status, SCSI_STATUS_GOOD);
    for (int i = 0; i < LBS; i++)
        if (r.buf[i] != 0x5a)
            fail_msg("byte %d is 0x%02x: the aborted write reached the image", i, r.buf[i]);
    te_close(&e);
    assert_int_equal(atomic_load(&hold.ndone), 1);
    assert_int_equal(atomic_load(&w.ndone), 1);
    assert_int_equal(atomic_load(&r.ndone), 1);
    td_free(&hold);
    td_free(&w);
    td_free(&r);
}

static void test_head_of_queue_first(void **state)
{
    (void)state;
    struct te_env e;
    te_open(&e, "hoq.qcow2", 1);
    struct tcmd hold, s1, s2, h;
    td_init(&hold, 0);
    td_init(&s1, LBS);
    td_init(&s2, LBS);
    td_init(&h, LBS);
    te_gate_close(&e, &hold, hold.cmd.tag);
    td_rw16(&s1, false, 0, 1, LBS, false);
    td_rw16(&s2, false, 8, 1, LBS, false);
    td_rw16(&h, false, 16, 1, LBS, false);
    h.cmd.attr = SCSI_TASK_HEAD_OF_QUEUE;
    scsi_submit(e.d, e.lun, &s1.cmd);
    scsi_submit(e.d, e.lun, &s2.cmd);
    scsi_submit(e.d, e.lun, &h.cmd);
    te_gate_open();
    td_wait(&s1);
    td_wait(&s2);
    td_wait(&h);
    assert_true(atomic_load(&h.order) < atomic_load(&s1.order));
    assert_true(atomic_load(&s1.order) < atomic_load(&s2.order));
    te_close(&e);
    td_free(&hold);
    td_free(&s1);
    td_free(&s2);
    td_free(&h);
}

struct reset_arg {
    struct te_env *e;
    atomic_bool returned;
};

static void *reset_thread(void *arg)
{
    struct reset_arg *a = arg;
    scsi_lun_reset(a->e->d, a->e->lun);
    atomic_store(&a->returned, true);
    return NULL;
}

static void test_reset_drains(void **state)
{
    (void)state;
    enum { N = 12 };
    struct te_env e;
    te_open(&e, "reset.qcow2", 1);
    struct tcmd hold, t[N];
    td_init(&hold, 0);
    te_gate_close(&e, &hold, hold.cmd.tag);
    for (int i = 0; i < N; i++) {
        td_init(&t[i], LBS);
        memset(t[i].buf, 0x11 + i, LBS);
        td_rw16(&t[i], true, (uint64_t)i % 4, 1, LBS, false);   /* some wait on others */
        t[i].cmd.attr = i == 5 ? SCSI_TASK_ORDERED : SCSI_TASK_SIMPLE;
        scsi_submit(e.d, e.lun, &t[i].cmd);
    }
    struct reset_arg ra = { .e = &e };
    pthread_t th;
    pthread_create(&th, NULL, reset_thread, &ra);
    usleep(100 * 1000);
    /* The held command's done() has not returned: the reset waits. */
    assert_false(atomic_load(&ra.returned));
    te_gate_open();
    pthread_join(th, NULL);
    assert_true(atomic_load(&ra.returned));
    for (int i = 0; i < N; i++) {
        /* Completed before the reset returned, each exactly once. */
        assert_int_equal(atomic_load(&t[i].ndone), 1);
        assert_int_equal(t[i].cmd.status, SCSI_STATUS_TASK_ABORTED);
    }
    assert_int_equal(atomic_load(&hold.ndone), 1);

    struct tcmd tur, rd;
    td_init(&tur, 0);
    td_tur(&tur);
    td_run(e.d, e.lun, &tur);
    int key, asc, ascq;
    td_sense(&tur, &key, &asc, &ascq);
    assert_int_equal(tur.cmd.status, SCSI_STATUS_CHECK_CONDITION);
    assert_int_equal(key, 0x6);   /* UNIT ATTENTION */
    assert_int_equal(asc, 0x29);  /* POWER ON, RESET, OR BUS DEVICE RESET OCCURRED */
    td_tur(&tur);
    td_run(e.d, e.lun, &tur);
    assert_int_equal(tur.cmd.status, SCSI_STATUS_GOOD);
    td_init(&rd, 4 * LBS);
    td_rw16(&rd, false, 0, 4, LBS, false);
    td_run(e.d, e.lun, &rd);
    for (int i = 0; i < 4 * LBS; i++)
        if (rd.buf[i] != 0x5a)
            fail_msg("byte %d is 0x%02x: an aborted write reached the image", i, rd.buf[i]);
    te_close(&e);
    for (int i = 0; i < N; i++)
        td_free(&t[i]);
    td_free(&hold);
    td_free(&tur);
    td_free(&rd);
}

/* Two LUNs on one dispatcher; one detached while the other keeps going. */
static void test_two_luns_detach(void **state)
{
    (void)state;
    struct te_env e;
    te_open(&e, "lun0.qcow2", 3);
    tu_run("qemu-img create -f qcow2 lun1.qcow2 1M");
    struct blk_node *bs1;
    struct scsi_lun *lun1;
    struct scuse_err err = { 0 };
    assert_int_equal(blk_open(tu_path("lun1.qcow2"), "qcow2", BLK_OPEN_RW, NULL, &bs1, &err), 0);
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    assert_int_equal(scsi_lun_create(&cfg, bs1, 1, &lun1, &err), 0);
    assert_int_equal(scsi_disp_attach(e.d, lun1, &err), 0);
    assert_int_equal(td_ready(e.d, lun1), 0);
    enum { N = 64 };
    static struct tcmd t[N];
    for (int i = 0; i < N; i++) {
        td_init(&t[i], LBS);
        memset(t[i].buf, i, LBS);
        td_rw16(&t[i], true, (uint64_t)i, 1, LBS, false);
        scsi_submit(e.d, i % 2 ? lun1 : e.lun, &t[i].cmd);
    }
    scsi_disp_detach(e.d, lun1);   /* waits for lun1's commands */
    for (int i = 1; i < N; i += 2)
        assert_int_equal(atomic_load(&t[i].ndone), 1);
    assert_null(*scsi_lun_disp_slot(lun1));
    scsi_lun_destroy(lun1);
    for (int i = 0; i < N; i += 2)
        td_wait(&t[i]);
    for (int i = 0; i < N; i++) {
        assert_int_equal(t[i].cmd.status, SCSI_STATUS_GOOD);
        td_free(&t[i]);
    }
    uint8_t buf[LBS];
    assert_int_equal(blk_pread(bs1, 3 * LBS, buf, LBS, NULL), 0);
    assert_int_equal(buf[0], 3);
    assert_int_equal(buf[LBS - 1], 3);
    blk_close(bs1);
    te_close(&e);
}

static int group_setup(void **state)
{
    (void)state;
    return tu_qemu_setup("scsi-dispatch", &seed, 0x5eed0d15ull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_submission_order, tu_need_qemu),
        cmocka_unit_test_setup(test_compare_and_write_atomic, tu_need_qemu),
        cmocka_unit_test_setup(test_abort_before_start, tu_need_qemu),
        cmocka_unit_test_setup(test_head_of_queue_first, tu_need_qemu),
        cmocka_unit_test_setup(test_reset_drains, tu_need_qemu),
        cmocka_unit_test_setup(test_two_luns_detach, tu_need_qemu),
    };
    return cmocka_run_group_tests(tests, group_setup, tu_teardown);
}
