/* The dispatcher's ordering rules on one LUN queue (dispatch_queue.c),
 * without threads: commands are built by hand with the access and range
 * scsi_cmd_prepare would give them, then added, taken, finished and
 * aborted in chosen orders. A random walk checks the queue's counts
 * against a brute-force recomputation of the rules after every step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "scsi/dispatch.h"

static struct scsi_cmd mk(enum scsi_access a, uint64_t lba, uint64_t n)
{
    struct scsi_cmd c;
    memset(&c, 0, sizeof(c));
    c.access = a;
    c.lba = lba;
    c.nblocks = n;
    c.attr = SCSI_TASK_SIMPLE;
    return c;
}

static struct scsi_cmd mk_attr(enum scsi_access a, uint64_t lba, uint64_t n, enum scsi_task_attr t)
{
    struct scsi_cmd c = mk(a, lba, n);
    c.attr = t;
    return c;
}

/* Take every runnable command; returns how many were taken. */
static int take_all(struct scsi_disp_lun *q, struct scsi_cmd **out, int max)
{
    int n = 0;
    struct scsi_cmd *c;
    while (n < max && (c = disp_queue_take(q)))
        out[n++] = c;
    return n;
}

static void test_conflict_rules(void **state)
{
    (void)state;
    struct scsi_cmd r1 = mk(SCSI_ACCESS_READ, 0, 8), r2 = mk(SCSI_ACCESS_READ, 4, 8);
    struct scsi_cmd w1 = mk(SCSI_ACCESS_WRITE, 7, 1), w2 = mk(SCSI_ACCESS_WRITE, 8, 8);
    struct scsi_cmd cw = mk(SCSI_ACCESS_ATOMIC, 0, 1), fl = mk(SCSI_ACCESS_FLUSH, 0, 0);
    struct scsi_cmd none = mk(SCSI_ACCESS_NONE, 0, 0), done = mk(SCSI_ACCESS_DONE, 0, 8);
    struct scsi_cmd bar = mk(SCSI_ACCESS_BARRIER, 0, 0);
    struct scsi_cmd ord = mk_attr(SCSI_ACCESS_READ, 100, 1, SCSI_TASK_ORDERED);
    struct scsi_cmd top = mk(SCSI_ACCESS_WRITE, UINT64_MAX - 4, 4);
    struct scsi_cmd top2 = mk(SCSI_ACCESS_READ, 3, UINT64_MAX - 6);
    struct scsi_cmd top3 = mk(SCSI_ACCESS_READ, 3, UINT64_MAX - 7);

    assert_false(disp_conflict(&r1, &r2));    /* reads share */
    assert_true(disp_conflict(&r1, &w1));     /* block 7 */
    assert_true(disp_conflict(&w1, &r2));
    assert_false(disp_conflict(&w1, &w2));    /* 7 and 8..15: adjacent */
    assert_true(disp_conflict(&r2, &w2));
    assert_true(disp_conflict(&cw, &r1));     /* C&W excludes readers of its block */
    assert_false(disp_conflict(&cw, &w1));
    assert_false(disp_conflict(&fl, &w1));    /* flush runs at once */
    assert_false(disp_conflict(&none, &w1));
    assert_false(disp_conflict(&done, &w1));  /* answered by prepare */
    assert_false(disp_conflict(&done, &bar));
    assert_true(disp_conflict(&bar, &none));  /* a barrier runs alone */
    assert_true(disp_conflict(&fl, &bar));
    assert_true(disp_conflict(&ord, &fl));    /* ORDERED against everything */
    assert_true(disp_conflict(&r1, &ord));
    assert_true(disp_conflict(&top, &top2));  /* no wrap at the top of the LBA space */
    assert_true(disp_conflict(&top2, &top));
    assert_false(disp_conflict(&top, &top3)); /* ends where top starts */
    assert_false(disp_conflict(&top3, &top));
    struct scsi_cmd z = mk(SCSI_ACCESS_WRITE, 0, 0);
    assert_false(disp_conflict(&z, &r1));     /* empty range */
}

static void test_overlapping_writes_in_order(void **state)
{
    (void)state;
    struct scsi_disp_lun q = { 0 };
    struct scsi_cmd a = mk(SCSI_ACCESS_WRITE, 0, 8), b = mk(SCSI_ACCESS_WRITE, 4, 8);
    struct scsi_cmd c = mk(SCSI_ACCESS_READ, 10, 1), d = mk(SCSI_ACCESS_WRITE, 100, 1);
    struct scsi_cmd *got[8];
    assert_true(disp_queue_add(&q, &a));
    assert_false(disp_queue_add(&q, &b));     /* overlaps a */
    assert_false(disp_queue_add(&q, &c));     /* reads what b will write */
    assert_true(disp_queue_add(&q, &d));      /* elsewhere: runs beside a */
    assert_int_equal(take_all(&q, got, 8), 2);
    assert_ptr_equal(got[0], &a);
    assert_ptr_equal(got[1], &d);
    assert_int_equal(disp_queue_finish(&q, &d), 0);
    assert_int_equal(disp_queue_finish(&q, &a), 1); /* b, not c */
    assert_int_equal(take_all(&q, got, 8), 1);
    assert_ptr_equal(got[0], &b);
    assert_int_equal(disp_queue_finish(&q, &b), 1);
    assert_ptr_equal(disp_queue_take(&q), &c);
    disp_queue_finish(&q, &c);
    assert_int_equal(q.n_active, 0);
    assert_null(q.head);
    assert_null(q.tail);
    assert_int_equal(q.n_excl, 0);
}

static void test_write_waits_for_reads(void **state)
{
    (void)state;
    struct scsi_disp_lun q = { 0 };
    struct scsi_cmd r1 = mk(SCSI_ACCESS_READ, 0, 4), r2 = mk(SCSI_ACCESS_READ, 2, 4);
    struct scsi_cmd w = mk(SCSI_ACCESS_WRITE, 3, 1), r3 = mk(SCSI_ACCESS_READ, 0, 1);
    struct scsi_cmd r4 = mk(SCSI_ACCESS_READ, 3, 1);
    assert_true(disp_queue_add(&q, &r1));
    assert_true(disp_queue_add(&q, &r2));
    assert_false(disp_queue_add(&q, &w));
    assert_true(disp_queue_add(&q, &r3));  /* later read of another block passes */
    assert_false(disp_queue_add(&q, &r4)); /* a later read of block 3 sees the write */
    struct scsi_cmd *got[8];
    assert_int_equal(take_all(&q, got, 8), 3);
    assert_int_equal(disp_queue_finish(&q, got[0]), 0);
    assert_int_equal(disp_queue_finish(&q, got[2]), 0);
    assert_int_equal(disp_queue_finish(&q, got[1]), 1);
    assert_ptr_equal(disp_queue_take(&q), &w);
    assert_null(disp_queue_take(&q));
    assert_int_equal(disp_queue_finish(&q, &w), 1);
    assert_ptr_equal(disp_queue_take(&q), &r4);
    disp_queue_finish(&q, &r4);
    assert_int_equal(q.n_active, 0);
}

static void test_compare_and_write_exclusive(void **state)
{
    (void)state;
    struct scsi_disp_lun q = { 0 };
    struct scsi_cmd r = mk(SCSI_ACCESS_READ, 10, 1), cw = mk(SCSI_ACCESS_ATOMIC, 10, 1);
    struct scsi_cmd r2 = mk(SCSI_ACCESS_READ, 10, 1), w = mk(SCSI_ACCESS_WRITE, 9, 2);
    struct scsi_cmd cw2 = mk(SCSI_ACCESS_ATOMIC, 11, 1);
    assert_true(disp_queue_add(&q, &r));
    assert_false(disp_queue_add(&q, &cw));
    assert_false(disp_queue_add(&q, &r2));
    assert_false(disp_queue_add(&q, &w));
    assert_true(disp_queue_add(&q, &cw2)); /* another block: runs beside */
    struct scsi_cmd *got[8];
    assert_int_equal(take_all(&q, got, 8), 2);
    disp_queue_finish(&q, &r);
    assert_ptr_equal(disp_queue_take(&q), &cw);
    assert_null(disp_queue_take(&q));      /* nothing beside the C&W on block 10 */
    disp_queue_finish(&q, &cw);
    assert_ptr_equal(disp_queue_take(&q), &r2);
    assert_null(disp_queue_take(&q));      /* w also waits for cw2 (block 11) */
    disp_queue_finish(&q, &cw2);
    assert_null(disp_queue_take(&q));      /* and for r2 */
    disp_queue_finish(&q, &r2);
    assert_ptr_equal(disp_queue_take(&q), &w);
    disp_queue_finish(&q, &w);
    assert_int_equal(q.n_active, 0);
}

static void test_ordered_and_barrier(void **state)
{
    (void)state;
    struct scsi_disp_lun q = { 0 };
    struct scsi_cmd r = mk(SCSI_ACCESS_READ, 0, 1);
    struct scsi_cmd o = mk_attr(SCSI_ACCESS_READ, 50, 1, SCSI_TASK_ORDERED);
    struct scsi_cmd r2 = mk(SCSI_ACCESS_READ, 60, 1), inq = mk(SCSI_ACCESS_NONE, 0, 0);
    struct scsi_cmd b = mk(SCSI_ACCESS_BARRIER, 0, 0), fl = mk(SCSI_ACCESS_FLUSH, 0, 0);
    struct scsi_cmd bad = mk(SCSI_ACCESS_DONE, 0, 0);
    assert_true(disp_queue_add(&q, &r));
    assert_false(disp_queue_add(&q, &o));    /* waits for r although disjoint */
    assert_false(disp_queue_add(&q, &r2));   /* waits for o */
    assert_false(disp_queue_add(&q, &inq));
    assert_false(disp_queue_add(&q, &b));
    assert_false(disp_queue_add(&q, &fl));   /* waits for the barrier */
    assert_true(disp_queue_add(&q, &bad));   /* answered already: completes at once */
    assert_ptr_equal(disp_queue_take(&q), &r);
    assert_ptr_equal(disp_queue_take(&q), &bad);
    assert_null(disp_queue_take(&q));
    disp_queue_finish(&q, &bad);
    disp_queue_finish(&q, &r);
    assert_ptr_equal(disp_queue_take(&q), &o);
    assert_null(disp_queue_take(&q));
    disp_queue_finish(&q, &o);
    struct scsi_cmd *got[8];
    assert_int_equal(take_all(&q, got, 8), 2); /* r2 and inq together */
    disp_queue_finish(&q, got[0]);
    assert_null(disp_queue_take(&q));
    disp_queue_finish(&q, got[1]);
    assert_ptr_equal(disp_queue_take(&q), &b);
    assert_null(disp_queue_take(&q));
    disp_queue_finish(&q, &b);
    assert_ptr_equal(disp_queue_take(&q), &fl);
    disp_queue_finish(&q, &fl);
    assert_int_equal(q.n_active, 0);
    assert_int_equal(q.n_excl, 0);
}

static void test_flush_does_not_wait(void **state)
{
    (void)state;
    struct scsi_disp_lun q = { 0 };
    struct scsi_cmd w = mk(SCSI_ACCESS_WRITE, 0, 8), w2 = mk(SCSI_ACCESS_WRITE, 0, 8);
    struct scsi_cmd fl = mk(SCSI_ACCESS_FLUSH, 0, 0);
    assert_true(disp_queue_add(&q, &w));
    assert_false(disp_queue_add(&q, &w2));
    /* SYNCHRONIZE CACHE covers writes completed before it: neither w nor
     * w2 has, so it need not wait (blk_flush covers what completed). */
    assert_true(disp_queue_add(&q, &fl));
}

static void test_head_of_queue(void **state)
{
    (void)state;
    struct scsi_disp_lun q = { 0 };
    struct scsi_cmd w = mk(SCSI_ACCESS_WRITE, 0, 8), r = mk(SCSI_ACCESS_READ, 20, 1);
    struct scsi_cmd o = mk_attr(SCSI_ACCESS_NONE, 0, 0, SCSI_TASK_ORDERED);
    struct scsi_cmd w2 = mk(SCSI_ACCESS_WRITE, 20, 1);
    struct scsi_cmd h1 = mk_attr(SCSI_ACCESS_READ, 30, 1, SCSI_TASK_HEAD_OF_QUEUE);
    struct scsi_cmd h2 = mk_attr(SCSI_ACCESS_READ, 4, 1, SCSI_TASK_HEAD_OF_QUEUE);
    struct scsi_cmd h3 = mk_attr(SCSI_ACCESS_WRITE, 20, 1, SCSI_TASK_HEAD_OF_QUEUE);
    assert_true(disp_queue_add(&q, &w));
    assert_true(disp_queue_add(&q, &r));
    assert_false(disp_queue_add(&q, &o));
    assert_false(disp_queue_add(&q, &w2));
    struct scsi_cmd *got[8];
    assert_int_equal(take_all(&q, got, 8), 2);       /* w and r run */
    assert_true(disp_queue_add(&q, &h1));            /* past the ORDERED one */
    assert_false(disp_queue_add(&q, &h2));           /* waits for the running w only */
    assert_false(disp_queue_add(&q, &h3));           /* waits for the running r */
    assert_ptr_equal(q.head, &h3);                   /* the newest head of queue first */
    assert_ptr_equal(disp_queue_take(&q), &h1);
    assert_null(disp_queue_take(&q));
    disp_queue_finish(&q, &w);
    assert_ptr_equal(disp_queue_take(&q), &h2);
    disp_queue_finish(&q, &r);
    assert_ptr_equal(disp_queue_take(&q), &h3);
    assert_null(disp_queue_take(&q));                /* o waits for all three */
    disp_queue_finish(&q, &h1);
    disp_queue_finish(&q, &h2);
    assert_null(disp_queue_take(&q));
    disp_queue_finish(&q, &h3);
    assert_ptr_equal(disp_queue_take(&q), &o);
    disp_queue_finish(&q, &o);
    assert_ptr_equal(disp_queue_take(&q), &w2);
    disp_queue_finish(&q, &w2);
    assert_int_equal(q.n_active, 0);
    assert_int_equal(q.n_waiting + q.n_runnable + q.n_excl, 0);
}

static void test_abort_releases(void **state)
{
    (void)state;
    struct scsi_disp_lun q = { 0 };
    struct scsi_cmd w = mk(SCSI_ACCESS_WRITE, 0, 8), w2 = mk(SCSI_ACCESS_WRITE, 0, 8);
    struct scsi_cmd r = mk(SCSI_ACCESS_READ, 0, 1);
    w.tag = 1, w2.tag = 2, r.tag = 3;
    assert_true(disp_queue_add(&q, &w));
    assert_false(disp_queue_add(&q, &w2));
    assert_false(disp_queue_add(&q, &r));
    assert_ptr_equal(disp_queue_take(&q), &w);
    assert_null(disp_queue_find_unstarted(&q, 1)); /* running: not abortable */
    assert_ptr_equal(disp_queue_find_unstarted(&q, 2), &w2);
    assert_int_equal(disp_queue_abort(&q, &w2), 1); /* r still waits for w */
    assert_null(disp_queue_find_unstarted(&q, 2));
    assert_ptr_equal(disp_queue_take(&q), &w2);
    assert_int_equal(disp_phase(&w2), DISP_ABORTING);
    assert_int_equal(disp_queue_finish(&q, &w2), 0);
    assert_null(disp_queue_take(&q));
    assert_int_equal(disp_queue_finish(&q, &w), 1);
    assert_ptr_equal(disp_queue_take(&q), &r);
    disp_queue_finish(&q, &r);
    assert_int_equal(q.n_active, 0);

    /* Aborting the command others wait for lets them start. */
    struct scsi_cmd a = mk(SCSI_ACCESS_WRITE, 0, 8), b = mk(SCSI_ACCESS_WRITE, 0, 8);
    struct scsi_cmd c = mk(SCSI_ACCESS_READ, 4, 1);
    a.tag = 7, b.tag = 8, c.tag = 9;
    assert_true(disp_queue_add(&q, &a));
    assert_false(disp_queue_add(&q, &b));
    assert_false(disp_queue_add(&q, &c));
    assert_int_equal(disp_queue_abort(&q, &a), 2); /* a (to complete) and b */
    struct scsi_cmd *got[4];
    assert_int_equal(take_all(&q, got, 4), 2);
    assert_ptr_equal(got[0], &a);
    assert_ptr_equal(got[1], &b);
    disp_queue_finish(&q, &a);
    disp_queue_finish(&q, &b);
    assert_ptr_equal(disp_queue_take(&q), &c);
    disp_queue_finish(&q, &c);
    assert_int_equal(q.n_active + q.n_excl + q.n_waiting + q.n_runnable, 0);
}

/* ---- random walk against a brute-force model ---- */

#define POOL 48

struct rng {
    uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1DULL;
}

static bool in_queue(const struct scsi_disp_lun *q, const struct scsi_cmd *c)
{
    for (const struct scsi_cmd *p = q->head; p; p = p->next)
        if (p == c)
            return true;
    return false;
}

/* Recompute what the rules say and compare with the queue's counts. */
static void check_model(const struct scsi_disp_lun *q)
{
    unsigned active = 0, waiting = 0, runnable = 0, excl = 0;
    for (const struct scsi_cmd *c = q->head; c; c = c->next) {
        active++;
        int ph = disp_phase(c);
        if (!c->next)
            assert_ptr_equal(q->tail, c);
        if (ph == DISP_ABORTED || ph == DISP_ABORTING) {
            runnable += ph == DISP_ABORTED;
            continue;
        }
        if (c->access != SCSI_ACCESS_DONE &&
            (c->attr == SCSI_TASK_ORDERED || c->access == SCSI_ACCESS_BARRIER ||
             c->access == SCSI_ACCESS_WRITE || c->access == SCSI_ACCESS_ATOMIC))
            excl++;
        if (ph == DISP_RUNNING) {
            /* nothing running conflicts with it */
            for (const struct scsi_cmd *o = q->head; o; o = o->next)
                if (o != c && disp_phase(o) == DISP_RUNNING)
                    assert_false(disp_conflict(o, c));
            continue;
        }
        uint64_t want = 0;
        bool ahead = true;
        for (const struct scsi_cmd *o = q->head; o; o = o->next) {
            if (o == c) {
                ahead = false;
                continue;
            }
            if (disp_phase(o) == DISP_ABORTED || disp_phase(o) == DISP_ABORTING ||
                !disp_conflict(o, c))
                continue;
            if (ahead || disp_phase(o) == DISP_RUNNING)
                want++;
        }
        assert_int_equal(c->seq, want);
        assert_int_equal(ph, want ? DISP_WAITING : DISP_READY);
        if (want)
            waiting++;
        else
            runnable++;
    }
    assert_int_equal(active, q->n_active);
    assert_int_equal(waiting, q->n_waiting);
    assert_int_equal(runnable, q->n_runnable);
    assert_int_equal(excl, q->n_excl);
}

static void random_cmd(struct rng *r, struct scsi_cmd *c, uint64_t tag)
{
    static const enum scsi_access acc[] = {
        SCSI_ACCESS_READ, SCSI_ACCESS_READ, SCSI_ACCESS_READ, SCSI_ACCESS_WRITE,
        SCSI_ACCESS_WRITE, SCSI_ACCESS_ATOMIC, SCSI_ACCESS_FLUSH, SCSI_ACCESS_NONE,
        SCSI_ACCESS_DONE, SCSI_ACCESS_BARRIER,
    };
    enum scsi_access a = acc[rnd(r) % (sizeof(acc) / sizeof(acc[0]))];
    bool ranged = a == SCSI_ACCESS_READ || a == SCSI_ACCESS_WRITE || a == SCSI_ACCESS_ATOMIC;
    *c = mk(a, ranged ? rnd(r) % 64 : 0, ranged ? 1 + rnd(r) % 8 : 0);
    unsigned t = (unsigned)(rnd(r) % 16);
    c->attr = t == 0 ? SCSI_TASK_ORDERED : t == 1 ? SCSI_TASK_HEAD_OF_QUEUE : SCSI_TASK_SIMPLE;
    c->tag = tag;
}

static void test_random_walk(void **state)
{
    (void)state;
    struct rng r = { 0x9e3779b97f4a7c15ull };
    struct scsi_cmd pool[POOL];
    struct scsi_cmd *running[POOL];
    int nrunning = 0;
    uint64_t tag = 0, finished = 0;
    struct scsi_disp_lun q = { 0 };
    memset(pool, 0, sizeof(pool));
    for (int step = 0; step < 60000; step++) {
        unsigned op = (unsigned)(rnd(&r) % 10);
        if (op < 4) {                 /* submit an idle slot */
            struct scsi_cmd *c = &pool[rnd(&r) % POOL];
            if (c->state == 0 || (c->state == -1)) {
                random_cmd(&r, c, ++tag);
                disp_queue_add(&q, c);
            }
        } else if (op < 7) {          /* a worker takes one */
            struct scsi_cmd *c = disp_queue_take(&q);
            if (c)
                running[nrunning++] = c;
        } else if (op < 9) {          /* a taken one finishes */
            if (nrunning) {
                int i = (int)(rnd(&r) % (uint64_t)nrunning);
                struct scsi_cmd *c = running[i];
                running[i] = running[--nrunning];
                disp_queue_finish(&q, c);
                assert_false(in_queue(&q, c));
                c->state = -1;        /* idle again */
                finished++;
            }
        } else {                      /* abort a tag that may or may not be waiting */
            uint64_t t = tag - rnd(&r) % 8;
            struct scsi_cmd *c = disp_queue_find_unstarted(&q, t);
            if (c) {
                assert_int_equal(c->tag, t);
                disp_queue_abort(&q, c);
            }
        }
        check_model(&q);
    }
    assert_true(finished > 10000);
    /* Drain: everything left completes. */
    for (;;) {
        struct scsi_cmd *c = disp_queue_take(&q);
        if (c) {
            running[nrunning++] = c;
            continue;
        }
        if (!nrunning)
            break;
        disp_queue_finish(&q, running[--nrunning]);
        check_model(&q);
    }
    assert_int_equal(q.n_active, 0);
    assert_null(q.head);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conflict_rules),
        cmocka_unit_test(test_overlapping_writes_in_order),
        cmocka_unit_test(test_write_waits_for_reads),
        cmocka_unit_test(test_compare_and_write_exclusive),
        cmocka_unit_test(test_ordered_and_barrier),
        cmocka_unit_test(test_flush_does_not_wait),
        cmocka_unit_test(test_head_of_queue),
        cmocka_unit_test(test_abort_releases),
        cmocka_unit_test(test_random_walk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
