/* The TCMU ring consumer against a fake kernel (test_tcmu_fake.h):
 * mailbox checks, command entries with many iovecs, PAD at the wrap,
 * completions out of order (the slot-stealing the kernel allows with
 * CAP_OOOC) and in order (without it), READ_LEN on short data-in
 * replies, TMR entries (hostile entries: test_tcmu_ring_hostile.c). A
 * random workload finishes the file: thousands of commands through a
 * small ring, completed in random order, each seen by the fake kernel
 * exactly once. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "test_tcmu_ring_env.h"
#include "testutil.h"

/* ---- the mailbox ---- */

static void test_mailbox_checks(void **state)
{
    (void)state;
    static const char *const field[] = { "version", "cmdr_off", "cmdr_size", "cmd_tail" };
    for (unsigned i = 0; i < 4; i++) {
        struct fk *k = fk_new(4096, 4096, ALL_CAPS);
        struct tcmu_mailbox *mb = fk_mb(k);
        switch (i) {
        case 0: mb->version = 1; break;
        case 1: mb->cmdr_off = 64; break;
        case 2: mb->cmdr_size = (uint32_t)k->size; break;
        case 3: *fk_tail_p(k) = 4100; break;
        }
        struct tcmu_ring r;
        struct scuse_err err = { 0 };
        assert_true(tcmu_ring_init(&r, k->map, k->size, "bad", NULL, NULL, &err) < 0);
        if (!strstr(err.msg, field[i]))
            fail_msg("'%s' does not name %s", err.msg, field[i]);
        fk_free(k);
    }
    /* A mapping smaller than the mailbox. */
    struct fk *k = fk_new(4096, 0, 0);
    struct tcmu_ring r;
    struct scuse_err err = { 0 };
    assert_true(tcmu_ring_init(&r, k->map, 100, "tiny", NULL, NULL, &err) < 0);
    fk_free(k);
}

/* ---- parsing ---- */

/* 40 iovecs, scattered backwards through the data area: copied out as
 * pointers in entry order, the CDB copied (its length from the opcode). */
static void test_many_iovs(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, 64 * 1024, 1 << 20, ALL_CAPS);
    enum { N = 40 };
    uint64_t off[N], len[N], total = 0;
    for (int i = 0; i < N; i++) {
        off[i] = e.k->data_off + (uint64_t)(N - 1 - i) * 8192 + (uint64_t)i;
        len[i] = 100 + (uint64_t)i * 7;
        total += len[i];
    }
    uint16_t id = fk_cmd(e.k, WRITE10, sizeof(WRITE10), off, len, N);
    struct tcmu_req req;
    tcmu_req_init(&req);
    assert_int_equal(next(&e, &req), TCMU_NEXT_CMD);
    assert_int_equal(req.cmd_id, id);
    assert_int_equal(req.cdb_len, 10);
    assert_memory_equal(req.cdb, WRITE10, 10);
    assert_int_equal(req.iov_cnt, N);
    assert_int_equal(req.data_len, total);
    for (int i = 0; i < N; i++) {
        assert_ptr_equal(req.iov[i].iov_base, e.k->map + off[i]);
        assert_int_equal(req.iov[i].iov_len, len[i]);
    }
    assert_int_equal(next(&e, &req), TCMU_NEXT_EMPTY);
    /* Nothing handed back yet: the tail has not moved. */
    assert_int_equal(fk_reap(e.k), 0);
    tcmu_ring_complete(&e.r, &req, 0, NULL, 0, false, 0);
    assert_int_equal(fk_reap(e.k), 1);
    assert_int_equal(e.k->done[id].status, 0);
    assert_int_equal(e.k->done[id].uflags, 0);
    assert_int_equal(e.k->cleaned, e.k->head);
    assert_true(e.kicks >= 1);
    /* A data-in command. */
    uint64_t o = e.k->data_off, l = 4096;
    fk_cmd(e.k, READ10, sizeof(READ10), &o, &l, 1);
    assert_int_equal(next(&e, &req), TCMU_NEXT_CMD);
    assert_int_equal(req.data_len, 4096);
    tcmu_ring_complete(&e.r, &req, 0, NULL, 0, true, 4096);
    tcmu_req_fini(&req);
    env_close(&e);
}

/* A ring that wraps: the kernel pads to the end, the consumer passes the
 * PAD and finds the command at offset 0; the tail passes the PAD too. */
static void test_pad_at_wrap(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, 1000, 65536, ALL_CAPS); /* not a multiple of the entry size */
    struct tcmu_req req;
    tcmu_req_init(&req);
    uint64_t o = e.k->data_off, l = 512;
    unsigned done = 0;
    for (int round = 0; round < 40; round++) {
        uint16_t id = fk_cmd(e.k, READ10, sizeof(READ10), &o, &l, 1);
        assert_int_not_equal(id, 0);
        assert_int_equal(next(&e, &req), TCMU_NEXT_CMD);
        assert_int_equal(req.cmd_id, id);
        assert_int_equal(next(&e, &req), TCMU_NEXT_EMPTY);
        tcmu_ring_complete(&e.r, &req, 0, NULL, 0, true, 512);
        done += (unsigned)fk_reap(e.k);
        assert_int_equal(e.k->done[id].count, 1);
        assert_int_equal(*fk_tail_p(e.k), e.k->head);
    }
    assert_int_equal(done, 40);
    assert_true(e.k->pads >= 3);
    assert_int_equal(e.r.n_pads, e.k->pads);
    tcmu_req_fini(&req);
    env_close(&e);
}

/* ---- completion order ---- */

/* Three commands; the third finishes first. With CAP_OOOC its completion
 * takes the first slot at once (the first command was copied out, so
 * losing its slot changes nothing for it); the kernel sees each cmd_id
 * exactly once. */
static void test_out_of_order(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, 8192, 1 << 20, ALL_CAPS);
    assert_true(tcmu_ring_ooo(&e.r));
    struct tcmu_req req[3];
    uint16_t id[3];
    uint64_t off[3][4], len[3][4];
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 4; j++) {
            off[i][j] = e.k->data_off + (uint64_t)(i * 4 + j) * 4096;
            len[i][j] = 4096;
        }
        id[i] = fk_cmd(e.k, READ10, sizeof(READ10), off[i], len[i], 4);
        tcmu_req_init(&req[i]);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(next(&e, &req[i]), TCMU_NEXT_CMD);
    uint8_t sense[18] = { 0x70, 0, 0x03, [7] = 10, [12] = 0x11 };
    tcmu_ring_complete(&e.r, &req[2], 0x02, sense, sizeof(sense), true, 0);
    assert_int_equal(fk_reap(e.k), 1);
    assert_int_equal(e.k->done[id[2]].count, 1);
    assert_int_equal(e.k->done[id[2]].status, 0x02);
    assert_memory_equal(e.k->done[id[2]].sense, sense, sizeof(sense));
    /* The first command's own copy is intact. */
    for (int j = 0; j < 4; j++)
        assert_ptr_equal(req[0].iov[j].iov_base, e.k->map + off[0][j]);
    assert_memory_equal(req[0].cdb, READ10, 10);
    tcmu_ring_complete(&e.r, &req[0], 0, NULL, 0, true, 16384);
    tcmu_ring_complete(&e.r, &req[1], 0, NULL, 0, true, 16384);
    assert_int_equal(fk_reap(e.k), 2);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(e.k->done[id[i]].count, 1);
        tcmu_req_fini(&req[i]);
    }
    assert_int_equal(e.k->cleaned, e.k->head);
    env_close(&e);
}

/* Without CAP_OOOC a completion stays in its own slot and the tail only
 * passes a completed prefix. */
static void test_in_order(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, 8192, 1 << 20, TCMU_MAILBOX_FLAG_CAP_READ_LEN);
    assert_false(tcmu_ring_ooo(&e.r));
    struct tcmu_req req[3];
    uint16_t id[3];
    for (int i = 0; i < 3; i++) {
        id[i] = fk_cmd(e.k, TUR, sizeof(TUR), NULL, NULL, 0);
        tcmu_req_init(&req[i]);
        assert_int_equal(next(&e, &req[i]), TCMU_NEXT_CMD);
    }
    tcmu_ring_complete(&e.r, &req[2], 0x08, NULL, 0, false, 0);
    assert_int_equal(fk_reap(e.k), 0);
    assert_int_equal(*fk_tail_p(e.k), 0);
    tcmu_ring_complete(&e.r, &req[0], 0x00, NULL, 0, false, 0);
    assert_int_equal(fk_reap(e.k), 1);
    assert_int_equal(e.k->done[id[0]].count, 1);
    tcmu_ring_complete(&e.r, &req[1], 0x18, NULL, 0, false, 0);
    assert_int_equal(fk_reap(e.k), 2);
    assert_int_equal(e.k->done[id[1]].status, 0x18);
    assert_int_equal(e.k->done[id[2]].status, 0x08);
    assert_int_equal(e.k->cleaned, e.k->head);
    for (int i = 0; i < 3; i++)
        tcmu_req_fini(&req[i]);
    env_close(&e);
}

/* ---- READ_LEN ---- */

static void test_read_len(void **state)
{
    (void)state;
    for (int caps = 0; caps < 2; caps++) {
        struct env e;
        env_open(&e, 8192, 65536, caps ? ALL_CAPS : TCMU_MAILBOX_FLAG_CAP_OOOC);
        uint64_t off[2] = { e.k->data_off + 8192, e.k->data_off }, len[2] = { 1000, 3096 };
        memset(e.k->map + e.k->data_off, 0xee, 16384);
        struct tcmu_req req;
        tcmu_req_init(&req);
        /* short reply */
        uint16_t id = fk_cmd(e.k, READ10, sizeof(READ10), off, len, 2);
        assert_int_equal(next(&e, &req), TCMU_NEXT_CMD);
        memset(req.iov[0].iov_base, 0x11, 1000);
        memset(req.iov[1].iov_base, 0x22, 500);
        tcmu_ring_complete(&e.r, &req, 0, NULL, 0, true, 1500);
        fk_reap(e.k);
        struct fk_done *d = &e.k->done[id];
        uint8_t *tail_bytes = e.k->map + off[1] + 500;
        if (caps) {
            assert_int_equal(d->uflags, TCMU_UFLAG_READ_LEN);
            assert_int_equal(d->read_len, 1500);
            assert_int_equal(tail_bytes[0], 0xee); /* left alone: not returned */
        } else {
            assert_int_equal(d->uflags, 0);
            for (int i = 0; i < 2596; i++)
                assert_int_equal(tail_bytes[i], 0);
        }
        /* full reply: never READ_LEN */
        id = fk_cmd(e.k, READ10, sizeof(READ10), off, len, 2);
        assert_int_equal(next(&e, &req), TCMU_NEXT_CMD);
        tcmu_ring_complete(&e.r, &req, 0, NULL, 0, true, 4096);
        fk_reap(e.k);
        assert_int_equal(e.k->done[id].uflags, 0);
        /* not data-in (a write): never READ_LEN, the buffer left as it is */
        memset(e.k->map + off[1], 0x33, len[1]);
        id = fk_cmd(e.k, WRITE10, sizeof(WRITE10), off, len, 2);
        assert_int_equal(next(&e, &req), TCMU_NEXT_CMD);
        tcmu_ring_complete(&e.r, &req, 0, NULL, 0, false, 0);
        fk_reap(e.k);
        assert_int_equal(e.k->done[id].uflags, 0);
        for (uint64_t i = 0; i < len[1]; i++)
            assert_int_equal(e.k->map[off[1] + i], 0x33);
        tcmu_req_fini(&req);
        env_close(&e);
    }
}

/* ---- TMR ---- */

static void test_tmr_entry(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, 8192, 65536, ALL_CAPS);
    struct tcmu_req req;
    tcmu_req_init(&req);
    uint16_t id = fk_cmd(e.k, TUR, sizeof(TUR), NULL, NULL, 0);
    assert_int_equal(next(&e, &req), TCMU_NEXT_CMD);
    uint16_t ids[3] = { id, 77, 78 };
    assert_true(fk_tmr(e.k, TCMU_TMR_ABORT_TASK_SET, ids, 3));
    struct tcmu_tmr tmr;
    struct tcmu_req other;
    tcmu_req_init(&other);
    assert_int_equal(tcmu_ring_next(&e.r, &other, &tmr), TCMU_NEXT_TMR);
    assert_int_equal(tmr.type, TCMU_TMR_ABORT_TASK_SET);
    assert_int_equal(tmr.cnt, 3);
    assert_memory_equal(tmr.ids, ids, sizeof(ids));
    /* The TMR slot is passed with the command before it. */
    tcmu_ring_complete(&e.r, &req, 0x40, NULL, 0, false, 0);
    assert_int_equal(fk_reap(e.k), 1);
    assert_int_equal(e.k->cleaned, e.k->head);
    /* A TMR alone is passed at once. */
    assert_true(fk_tmr(e.k, TCMU_TMR_LUN_RESET, NULL, 0));
    assert_int_equal(tcmu_ring_next(&e.r, &other, &tmr), TCMU_NEXT_TMR);
    assert_int_equal(tmr.cnt, 0);
    assert_int_equal(*fk_tail_p(e.k), e.k->head);
    /* A TMR whose count does not fit its entry is passed over. */
    assert_true(fk_tmr(e.k, TCMU_TMR_ABORT_TASK, ids, 1));
    uint32_t at = (e.k->head + e.k->cmdr_size - 40) % e.k->cmdr_size;
    uint32_t huge = 1000;
    memcpy(fk_ring(e.k, at) + offsetof(struct tcmu_tmr_entry, cmd_cnt), &huge, 4);
    id = fk_cmd(e.k, TUR, sizeof(TUR), NULL, NULL, 0);
    assert_int_equal(tcmu_ring_next(&e.r, &other, &tmr), TCMU_NEXT_CMD);
    assert_int_equal(other.cmd_id, id);
    tcmu_ring_complete(&e.r, &other, 0, NULL, 0, false, 0);
    assert_int_equal(fk_reap(e.k), 1);
    tcmu_req_fini(&req);
    tcmu_req_fini(&other);
    env_close(&e);
}

/* ---- random workload ---- */

/* Commands with 1-24 iovecs each through a 6 KiB ring (PADs at every
 * lap), up to 20 outstanding, completed in random order; the fake kernel
 * reclaims space as the tail moves and sees every command exactly once,
 * with the read_len its data-in reply set. */
static void random_workload(uint16_t flags, uint64_t seed)
{
    struct env e;
    env_open(&e, 6144, 1 << 20, flags);
    enum { MAXQ = 20 };
    const int total = getenv("SCUSE_TEST_OPS") ? 3000 : 20000;
    struct tcmu_req req[MAXQ];
    uint32_t want[MAXQ];
    int idx[MAXQ];                  /* idx[0..live): requests parsed, not completed */
    int live = 0, issued = 0, finished = 0;
    for (int i = 0; i < MAXQ; i++) {
        tcmu_req_init(&req[i]);
        idx[i] = i;
    }
    uint64_t rng = seed;
    static uint32_t expect_len[FK_MAX_ID], full_len[FK_MAX_ID];
    memset(expect_len, 0, sizeof(expect_len));
    while (finished < total) {
        int burst = (int)tu_below(&rng, 6);
        for (int b = 0; b < burst && issued < total; b++) {
            uint32_t n = 1 + (uint32_t)tu_below(&rng, 24);
            uint64_t off[24], len[24];
            for (uint32_t i = 0; i < n; i++) {
                off[i] = e.k->data_off + tu_below(&rng, 256) * 4096;
                len[i] = 1 + tu_below(&rng, 4096);
            }
            if (!fk_cmd(e.k, READ10, sizeof(READ10), off, len, n))
                break;
            issued++;
        }
        while (live < MAXQ) {
            struct tcmu_req *r = &req[idx[live]];
            enum tcmu_next k = next(&e, r);
            if (k == TCMU_NEXT_EMPTY)
                break;
            assert_int_equal(k, TCMU_NEXT_CMD);
            want[idx[live]] = (uint32_t)tu_below(&rng, r->data_len) + 1;
            expect_len[r->cmd_id] = want[idx[live]];
            full_len[r->cmd_id] = (uint32_t)r->data_len;
            live++;
        }
        int nc = live ? 1 + (int)tu_below(&rng, (uint64_t)live) : 0;
        for (int c = 0; c < nc; c++) {
            int i = (int)tu_below(&rng, (uint64_t)live);
            tcmu_ring_complete(&e.r, &req[idx[i]], 0, NULL, 0, true, want[idx[i]]);
            int t = idx[i];
            idx[i] = idx[live - 1];
            idx[live - 1] = t;
            live--;
        }
        finished += fk_reap(e.k);
    }
    for (int id = 1; id < FK_MAX_ID; id++) {
        struct fk_done *d = &e.k->done[id];
        if (!expect_len[id])
            continue;
        assert_int_equal(d->count, 1);
        if (expect_len[id] < full_len[id]) {
            assert_int_equal(d->uflags, TCMU_UFLAG_READ_LEN);
            assert_int_equal(d->read_len, expect_len[id]);
        } else {
            assert_int_equal(d->uflags, 0);
        }
    }
    assert_int_equal(live, 0);
    assert_int_equal(e.k->cleaned, e.k->head);
    assert_true(e.k->pads > 10);
    for (int i = 0; i < MAXQ; i++)
        tcmu_req_fini(&req[i]);
    env_close(&e);
}

static uint64_t seed;

static void test_random_ooo(void **state)
{
    (void)state;
    random_workload(ALL_CAPS, seed);
}

static void test_random_in_order(void **state)
{
    (void)state;
    random_workload(TCMU_MAILBOX_FLAG_CAP_READ_LEN, seed + 1);
}

int main(void)
{
    seed = tu_seed(0x7c3u);
    printf("# seed %lu\n", (unsigned long)seed);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mailbox_checks),
        cmocka_unit_test(test_many_iovs),
        cmocka_unit_test(test_pad_at_wrap),
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_in_order),
        cmocka_unit_test(test_read_len),
        cmocka_unit_test(test_tmr_entry),
        cmocka_unit_test(test_random_ooo),
        cmocka_unit_test(test_random_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
