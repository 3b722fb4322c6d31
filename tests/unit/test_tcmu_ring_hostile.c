/* The TCMU ring consumer against hostile rings (test_tcmu_fake.h): each
 * unsound command entry (iovecs outside the data area, a CDB outside its
 * entry, counts that do not fit, bidirectional, DIF, an unknown opcode)
 * is answered with CHECK CONDITION and the ring goes on; each ring that
 * cannot be followed (a head outside the ring or unaligned, lengths of 0,
 * past what was produced, past the ring's end, too short for a
 * completion) is declared broken, and completions of what was parsed
 * before still land. Under `./build.sh asan` nothing may touch memory
 * outside the mapping. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "test_tcmu_ring_env.h"

/* ---- hostile command entries: answered, never followed ---- */

static void test_hostile_commands(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, 16384, 65536, ALL_CAPS);
    struct tcmu_req req;
    tcmu_req_init(&req);
    const uint64_t D = e.k->data_off, END = e.k->size;
    uint32_t pos = 0;
    uint16_t id;
    uint64_t off, len;
    const size_t IOV0 = offsetof(struct tcmu_cmd_entry, req.iov);
    const size_t CDB_OFF = offsetof(struct tcmu_cmd_entry, req.cdb_off);

    /* iovecs outside the data area: in the ring, in the mailbox, past the
     * end, wrapping around 2^64, ending one byte past the mapping. */
    const uint64_t bad[][2] = {
        { FK_CMDR_OFF + 64, 512 }, { 0, 64 }, { END, 1 }, { END + 4096, 512 },
        { D + 4096, UINT64_MAX - 100 }, { END - 100, 101 }, { UINT64_MAX - 10, 20 },
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        off = bad[i][0];
        len = bad[i][1];
        id = fk_cmd(e.k, READ10, sizeof(READ10), &off, &len, 1);
        assert_int_equal(next(&e, &req), TCMU_NEXT_FAILED);
        want_check(&e, id, 0x4, 0x44);
    }
    /* ... while the last byte of the data area is fine. */
    off = END - 100;
    len = 100;
    id = fk_cmd(e.k, READ10, sizeof(READ10), &off, &len, 1);
    assert_int_equal(next(&e, &req), TCMU_NEXT_CMD);
    tcmu_ring_complete(&e.r, &req, 0, NULL, 0, true, 100);

    /* cdb_off: into the mailbox, into the ring before the entry, into the
     * iovec array, just past the entry, past the mapping, near 2^64. */
    for (int i = 0; i < 6; i++) {
        off = D;
        len = 512;
        id = fk_cmd_ex(e.k, READ10, sizeof(READ10), &off, &len, 1, 0, false, &pos);
        const uint64_t at = FK_CMDR_OFF + pos;
        const uint64_t v[6] = { 8, FK_CMDR_OFF, at + IOV0, at + fk_cmd_size(1, 10), END,
                                UINT64_MAX - 2 };
        patch(&e, pos, CDB_OFF, &v[i], 8);
        assert_int_equal(next(&e, &req), TCMU_NEXT_FAILED);
        want_check(&e, id, 0x4, 0x44);
    }
    /* A variable-length CDB whose length runs past the entry. */
    uint8_t var[16] = { 0x7f, [7] = 200 };
    id = fk_cmd(e.k, var, sizeof(var), NULL, NULL, 0);
    assert_int_equal(next(&e, &req), TCMU_NEXT_FAILED);
    want_check(&e, id, 0x4, 0x44);
    /* iov_cnt larger than the entry holds (and near 2^32). */
    const uint32_t counts[] = { 5, 0xffffffffu, 0x10000000u };
    for (unsigned i = 0; i < 3; i++) {
        id = fk_cmd_ex(e.k, TUR, sizeof(TUR), NULL, NULL, 0, 0, false, &pos);
        patch(&e, pos, offsetof(struct tcmu_cmd_entry, req.iov_cnt), &counts[i], 4);
        assert_int_equal(next(&e, &req), TCMU_NEXT_FAILED);
        want_check(&e, id, 0x4, 0x44);
    }
    /* iov_cnt + iov_bidi_cnt overflowing 32 bits. */
    id = fk_cmd_ex(e.k, TUR, sizeof(TUR), NULL, NULL, 0, 0, false, &pos);
    uint32_t two[2] = { 0x80000000u, 0x80000000u };
    patch(&e, pos, offsetof(struct tcmu_cmd_entry, req.iov_cnt), two, 8);
    assert_int_equal(next(&e, &req), TCMU_NEXT_FAILED);
    want_check(&e, id, 0x4, 0x44);
    /* iov_dif_cnt set. */
    id = fk_cmd_ex(e.k, TUR, sizeof(TUR), NULL, NULL, 0, 0, false, &pos);
    uint32_t one = 1;
    patch(&e, pos, offsetof(struct tcmu_cmd_entry, req.iov_dif_cnt), &one, 4);
    assert_int_equal(next(&e, &req), TCMU_NEXT_FAILED);
    want_check(&e, id, 0x4, 0x44);
    /* A bidirectional command: ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE. */
    uint64_t boff[2] = { D, D + 4096 }, blen[2] = { 512, 512 };
    id = fk_cmd_ex(e.k, WRITE10, sizeof(WRITE10), boff, blen, 1, 1, true, NULL);
    assert_int_equal(next(&e, &req), TCMU_NEXT_FAILED);
    want_check(&e, id, 0x5, 0x20);
    /* iovecs adding up to more than the data area (overlapping). */
    uint64_t ooff[3] = { D, D, D }, olen[3] = { END - D, END - D, 8 };
    id = fk_cmd(e.k, READ10, sizeof(READ10), ooff, olen, 3);
    assert_int_equal(next(&e, &req), TCMU_NEXT_FAILED);
    want_check(&e, id, 0x4, 0x44);
    /* An unknown entry opcode: answered with UNKNOWN_OP. */
    id = fk_cmd_ex(e.k, TUR, sizeof(TUR), NULL, NULL, 0, 0, false, &pos);
    uint32_t len_op;
    memcpy(&len_op, fk_ring(e.k, pos), 4);
    tcmu_hdr_set_op(&len_op, 5);
    patch(&e, pos, 0, &len_op, 4);
    assert_int_equal(next(&e, &req), TCMU_NEXT_FAILED);
    fk_reap(e.k);
    assert_int_equal(e.k->done[id].count, 1);
    assert_int_equal(e.k->done[id].uflags, TCMU_UFLAG_UNKNOWN_OP);
    /* After all that, a sound command still runs and the ring is whole. */
    id = fk_cmd(e.k, TUR, sizeof(TUR), NULL, NULL, 0);
    assert_int_equal(next(&e, &req), TCMU_NEXT_CMD);
    tcmu_ring_complete(&e.r, &req, 0, NULL, 0, false, 0);
    fk_reap(e.k);
    assert_int_equal(e.k->done[id].count, 1);
    assert_int_equal(e.k->done[id].status, 0);
    assert_int_equal(e.k->cleaned, e.k->head);
    assert_true(e.r.n_failed >= 20);
    tcmu_req_fini(&req);
    env_close(&e);
}

/* ---- hostile rings: broken, and completions of what was parsed still land ---- */

static void test_broken_rings(void **state)
{
    (void)state;
    for (int c = 0; c < 7; c++) {
        struct env e;
        env_open(&e, 4096, 65536, ALL_CAPS);
        struct tcmu_req good, req;
        tcmu_req_init(&good);
        tcmu_req_init(&req);
        uint16_t gid = fk_cmd(e.k, TUR, sizeof(TUR), NULL, NULL, 0);
        assert_int_equal(next(&e, &good), TCMU_NEXT_CMD);
        uint32_t pos = e.k->head;
        uint32_t v;
        switch (c) {
        case 0: /* head outside the ring */
            __atomic_store_n(fk_head_p(e.k), 4096 + 64, __ATOMIC_RELEASE);
            break;
        case 1: /* head not aligned */
            __atomic_store_n(fk_head_p(e.k), pos + 12, __ATOMIC_RELEASE);
            break;
        case 2: /* entry length 0 */
            fk_cmd_ex(e.k, TUR, sizeof(TUR), NULL, NULL, 0, 0, false, &pos);
            v = TCMU_OP_CMD;
            patch(&e, pos, 0, &v, 4);
            break;
        case 3: /* entry longer than what was produced */
            fk_cmd_ex(e.k, TUR, sizeof(TUR), NULL, NULL, 0, 0, false, &pos);
            v = 2048 | TCMU_OP_CMD;
            patch(&e, pos, 0, &v, 4);
            break;
        case 4: /* a command slot too short to take a completion */
            fk_cmd_ex(e.k, TUR, sizeof(TUR), NULL, NULL, 0, 0, false, &pos);
            v = 64 | TCMU_OP_CMD;
            patch(&e, pos, 0, &v, 4);
            break;
        case 5: /* entry running past the ring's end, though produced */
            v = 3984 | TCMU_OP_PAD;
            memcpy(fk_ring(e.k, pos), &v, 4);
            __atomic_store_n(fk_head_p(e.k), 64, __ATOMIC_RELEASE);
            break;
        case 6: /* head jumps a whole lap ahead: stale bytes read as an entry */
            memset(fk_ring(e.k, pos), 0xff, 4096 - pos);
            __atomic_store_n(fk_head_p(e.k), (pos + 4088) % 4096, __ATOMIC_RELEASE);
            break;
        }
        assert_int_equal(next(&e, &req), TCMU_NEXT_BROKEN);
        assert_int_equal(next(&e, &req), TCMU_NEXT_BROKEN);
        tcmu_ring_complete(&e.r, &good, 0, NULL, 0, false, 0);
        fk_reap(e.k);
        assert_int_equal(e.k->done[gid].count, 1);
        tcmu_req_fini(&good);
        tcmu_req_fini(&req);
        env_close(&e);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_commands),
        cmocka_unit_test(test_broken_rings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
