/* iov_view against a flat reference model.
 *
 * Every case builds a random iovec array (odd lengths, empty iovecs
 * anywhere, guard bytes between the buffers), keeps a byte-for-byte mirror
 * of the whole storage, applies the same operation to the mirror by plain
 * index arithmetic and then compares the entire storage, guards included,
 * so stray writes outside a view are caught as well as wrong data.
 *
 * SCUSE_TEST_SEED=<n> reruns with another seed (the seed is printed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"
#include "util/iov.h"

#define MAX_IOV 14
#define GUARD 8
#define GUARD_BYTE 0xa5
#define STORAGE (MAX_IOV * (64 + GUARD) + GUARD)

static uint64_t rng_state;

static uint64_t rnd(void) { return tu_rnd(&rng_state); }
static size_t rnd_below(size_t n) { return (size_t)tu_below(&rng_state, n); }

struct model {
    unsigned char storage[STORAGE];
    unsigned char mirror[STORAGE];
    struct iovec iov[MAX_IOV];
    size_t start[MAX_IOV + 1]; /* flat offset where iov[i] begins; start[cnt] = total */
    size_t at[MAX_IOV];        /* index into storage where iov[i] begins */
    int cnt;
    size_t total;
};

/* Lay out cnt iovecs of random (often odd, sometimes zero) length. */
static void model_init(struct model *m)
{
    memset(m->storage, GUARD_BYTE, sizeof(m->storage));
    m->cnt = 1 + (int)rnd_below(MAX_IOV);
    size_t pos = GUARD, flat = 0;
    for (int i = 0; i < m->cnt; i++) {
        size_t len;
        switch (rnd_below(5)) {
        case 0: len = 0; break;
        case 1: len = 1; break;
        default: len = rnd_below(64); break;
        }
        m->iov[i].iov_base = m->storage + pos;
        m->iov[i].iov_len = len;
        m->at[i] = pos;
        m->start[i] = flat;
        for (size_t k = 0; k < len; k++)
            m->storage[pos + k] = (unsigned char)rnd();
        pos += len + GUARD;
        flat += len;
    }
    m->start[m->cnt] = flat;
    m->total = flat;
    memcpy(m->mirror, m->storage, sizeof(m->storage));
}

/* Storage index of flat byte f (f < total). */
static size_t model_idx(const struct model *m, size_t f)
{
    for (int i = 0; i < m->cnt; i++)
        if (f >= m->start[i] && f < m->start[i + 1])
            return m->at[i] + (f - m->start[i]);
    fail_msg("flat offset %zu out of range %zu", f, m->total);
    return 0;
}

/* A view of the model as [base, base+len) of the flat byte stream, made
 * the way callers make them: iov_view_make from some first iovec, then
 * (maybe) one or two iov_view_sub steps. */
struct mview {
    struct iov_view v;
    size_t base;
};

static struct mview model_view(struct model *m)
{
    int first = (int)rnd_below((size_t)m->cnt);
    size_t avail = m->total - m->start[first];
    size_t len = rnd_below(4) == 0 ? avail : rnd_below(avail + 1);
    struct mview r = { iov_view_make(&m->iov[first], m->cnt - first, len), m->start[first] };
    int subs = (int)rnd_below(3);
    for (int s = 0; s < subs; s++) {
        size_t off = rnd_below(r.v.len + 1);
        size_t sl = rnd_below(r.v.len - off + 1);
        r.v = iov_view_sub(&r.v, off, sl);
        r.base += off;
    }
    return r;
}

static void check_storage(const struct model *m)
{
    for (size_t i = 0; i < STORAGE; i++)
        if (m->storage[i] != m->mirror[i])
            fail_msg("storage byte %zu is 0x%02x, model says 0x%02x (seed-dependent case)", i,
                     m->storage[i], m->mirror[i]);
}

static void pick_range(const struct mview *mv, size_t *off, size_t *len)
{
    *off = rnd_below(mv->v.len + 1);
    *len = rnd_below(mv->v.len - *off + 1);
}

/* ---- individual operations, each against the model ---- */

static void test_make_len(void **state)
{
    (void)state;
    for (int iter = 0; iter < 2000; iter++) {
        struct model m;
        model_init(&m);
        struct mview mv = model_view(&m);
        /* The view's bytes are the model's bytes. */
        unsigned char got[STORAGE];
        memset(got, 0x5a, sizeof(got));
        iov_view_to_buf(&mv.v, 0, got, mv.v.len);
        for (size_t k = 0; k < mv.v.len; k++)
            assert_int_equal(got[k], m.mirror[model_idx(&m, mv.base + k)]);
        /* and to_buf writes exactly len bytes */
        assert_int_equal(got[mv.v.len], 0x5a);
        check_storage(&m);
    }
}

static void test_make_skips_leading_empty(void **state)
{
    (void)state;
    char a[3] = { 1, 2, 3 }, b[2] = { 4, 5 };
    struct iovec iov[5] = {
        { b, 0 }, { a, 0 }, { a, 3 }, { b, 0 }, { b, 2 },
    };
    struct iov_view v = iov_view_make(iov, 5, 5);
    assert_int_equal(v.len, 5);
    assert_ptr_equal(v.iov, &iov[2]);
    assert_int_equal(v.cnt, 3);
    assert_int_equal(v.skip, 0);
    char out[5];
    iov_view_to_buf(&v, 0, out, 5);
    assert_memory_equal(out, ((char[]){ 1, 2, 3, 4, 5 }), 5);
    /* Sub-view starting exactly at the end of a: lands in b, past the empty one. */
    struct iov_view s = iov_view_sub(&v, 3, 2);
    assert_ptr_equal(iov_view_contig(&s, 0, 2), b);
    assert_ptr_equal(iov_view_contig(&v, 3, 2), b);
    assert_ptr_equal(iov_view_contig(&v, 2, 1), a + 2);
    assert_null(iov_view_contig(&v, 2, 2));
    /* All-empty array. */
    struct iovec e[3] = { { NULL, 0 }, { NULL, 0 }, { NULL, 0 } };
    struct iov_view ev = iov_view_make(e, 3, 0);
    assert_int_equal(ev.len, 0);
    assert_true(iov_view_is_zero(&ev));
    size_t bytes = 99;
    struct iovec out_iov[3];
    assert_int_equal(iov_view_to_iovec(&ev, out_iov, 3, &bytes), 0);
    assert_int_equal(bytes, 0);
}

/* Empty iovecs with a NULL base are legal (POSIX only reads iov_base when
 * iov_len > 0); every operation must cope without touching them, which
 * includes not passing NULL to memcpy/memset (UB, caught by UBSan). */
static void test_empty_iovec_null_base(void **state)
{
    (void)state;
    char a[3] = { 1, 2, 3 }, b[2] = { 4, 5 };
    struct iovec iov[5] = {
        { NULL, 0 }, { a, 3 }, { NULL, 0 }, { b, 2 }, { NULL, 0 },
    };
    struct iov_view v = iov_view_make(iov, 5, 5);
    char out[5];
    iov_view_to_buf(&v, 0, out, 5);
    assert_memory_equal(out, ((char[]){ 1, 2, 3, 4, 5 }), 5);
    iov_view_from_buf(&v, 0, ((char[]){ 9, 8, 7, 6, 5 }), 5);
    assert_memory_equal(a, ((char[]){ 9, 8, 7 }), 3);
    assert_memory_equal(b, ((char[]){ 6, 5 }), 2);
    iov_view_memset(&v, 1, 0, 4);
    assert_memory_equal(a, ((char[]){ 9, 0, 0 }), 3);
    assert_memory_equal(b, ((char[]){ 0, 0 }), 2);
    assert_false(iov_view_is_zero(&v));
    struct iov_view s = iov_view_sub(&v, 1, 4);
    assert_true(iov_view_is_zero(&s));
    struct iovec o[4];
    size_t bytes;
    assert_int_equal(iov_view_to_iovec(&v, o, 4, &bytes), 2);
    assert_int_equal(bytes, 5);
}

static void test_of_buf(void **state)
{
    (void)state;
    char buf[37];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (char)i;
    struct iovec slot;
    struct iov_view v = iov_view_of_buf(&slot, buf, sizeof(buf));
    assert_int_equal(v.len, 37);
    assert_ptr_equal(iov_view_contig(&v, 0, 37), buf);
    assert_ptr_equal(iov_view_contig(&v, 36, 1), buf + 36);
    struct iov_view s = iov_view_sub(&v, 10, 20);
    assert_ptr_equal(iov_view_contig(&s, 0, 20), buf + 10);
    char out[20];
    iov_view_to_buf(&s, 0, out, 20);
    assert_memory_equal(out, buf + 10, 20);
}

static void test_to_buf_from_buf_memset(void **state)
{
    (void)state;
    for (int iter = 0; iter < 5000; iter++) {
        struct model m;
        model_init(&m);
        struct mview mv = model_view(&m);
        size_t off, len;
        pick_range(&mv, &off, &len);
        switch (rnd_below(3)) {
        case 0: { /* to_buf: reads, never writes the storage */
            unsigned char got[STORAGE + 1];
            memset(got, 0x3c, sizeof(got));
            iov_view_to_buf(&mv.v, off, got, len);
            for (size_t k = 0; k < len; k++)
                assert_int_equal(got[k], m.mirror[model_idx(&m, mv.base + off + k)]);
            assert_int_equal(got[len], 0x3c);
            break;
        }
        case 1: { /* from_buf */
            unsigned char src[STORAGE];
            for (size_t k = 0; k < len; k++)
                src[k] = (unsigned char)rnd();
            iov_view_from_buf(&mv.v, off, src, len);
            for (size_t k = 0; k < len; k++)
                m.mirror[model_idx(&m, mv.base + off + k)] = src[k];
            break;
        }
        default: { /* memset */
            int c = (int)rnd_below(256);
            iov_view_memset(&mv.v, off, c, len);
            for (size_t k = 0; k < len; k++)
                m.mirror[model_idx(&m, mv.base + off + k)] = (unsigned char)c;
            break;
        }
        }
        check_storage(&m);
    }
}

static void test_sub_boundaries(void **state)
{
    (void)state;
    /* Sub-views starting and ending exactly on every iovec boundary. */
    for (int iter = 0; iter < 500; iter++) {
        struct model m;
        model_init(&m);
        struct iov_view v = iov_view_make(m.iov, m.cnt, m.total);
        for (int i = 0; i <= m.cnt; i++) {
            for (int j = i; j <= m.cnt; j++) {
                size_t off = m.start[i], len = m.start[j] - m.start[i];
                struct iov_view s = iov_view_sub(&v, off, len);
                assert_int_equal(s.len, len);
                unsigned char got[STORAGE];
                iov_view_to_buf(&s, 0, got, len);
                for (size_t k = 0; k < len; k++)
                    assert_int_equal(got[k], m.mirror[model_idx(&m, off + k)]);
                /* A sub-view of the sub-view, one byte in from each side. */
                if (len >= 2) {
                    struct iov_view s2 = iov_view_sub(&s, 1, len - 2);
                    iov_view_to_buf(&s2, 0, got, len - 2);
                    for (size_t k = 0; k + 2 < len; k++)
                        assert_int_equal(got[k], m.mirror[model_idx(&m, off + 1 + k)]);
                }
                /* Writing a boundary-aligned sub-view touches only it. */
                iov_view_memset(&s, 0, 0xee, len);
                for (size_t k = 0; k < len; k++)
                    m.mirror[model_idx(&m, off + k)] = 0xee;
                check_storage(&m);
            }
        }
    }
}

static void test_contig(void **state)
{
    (void)state;
    for (int iter = 0; iter < 5000; iter++) {
        struct model m;
        model_init(&m);
        struct mview mv = model_view(&m);
        if (mv.v.len == 0)
            continue;
        size_t off = rnd_below(mv.v.len);
        size_t len = 1 + rnd_below(mv.v.len - off);
        /* Expected: the (non-empty) iovec holding flat byte base+off, if
         * the whole range fits in it. */
        size_t f = mv.base + off;
        void *want = NULL;
        for (int i = 0; i < m.cnt; i++) {
            if (f >= m.start[i] && f < m.start[i + 1]) {
                if (f + len <= m.start[i + 1])
                    want = m.storage + m.at[i] + (f - m.start[i]);
                break;
            }
        }
        assert_ptr_equal(iov_view_contig(&mv.v, off, len), want);
    }
}

static void test_to_iovec(void **state)
{
    (void)state;
    for (int iter = 0; iter < 5000; iter++) {
        struct model m;
        model_init(&m);
        struct mview mv = model_view(&m);
        /* Expected pieces: the non-empty intersections of [base, base+len)
         * with each iovec, in order. */
        struct iovec want[MAX_IOV];
        int nwant = 0;
        size_t lo = mv.base, hi = mv.base + mv.v.len;
        for (int i = 0; i < m.cnt; i++) {
            size_t a = m.start[i] > lo ? m.start[i] : lo;
            size_t b = m.start[i + 1] < hi ? m.start[i + 1] : hi;
            if (a < b) {
                want[nwant].iov_base = m.storage + m.at[i] + (a - m.start[i]);
                want[nwant].iov_len = b - a;
                nwant++;
            }
        }
        int max = 1 + (int)rnd_below(MAX_IOV);
        struct iovec out[MAX_IOV + 1];
        memset(out, 0, sizeof(out));
        size_t bytes = (size_t)-1;
        int n = iov_view_to_iovec(&mv.v, out, max, &bytes);
        int expect_n = nwant < max ? nwant : max;
        assert_int_equal(n, expect_n);
        size_t expect_bytes = 0;
        for (int k = 0; k < expect_n; k++) {
            assert_ptr_equal(out[k].iov_base, want[k].iov_base);
            assert_int_equal(out[k].iov_len, want[k].iov_len);
            expect_bytes += want[k].iov_len;
        }
        assert_int_equal(bytes, expect_bytes);
        /* never writes past max */
        assert_null(out[max].iov_base);
    }
}

static void test_is_zero(void **state)
{
    (void)state;
    for (int iter = 0; iter < 5000; iter++) {
        struct model m;
        model_init(&m);
        /* Zero every iovec, then maybe put one nonzero byte somewhere. */
        for (int i = 0; i < m.cnt; i++) {
            memset(m.iov[i].iov_base, 0, m.iov[i].iov_len);
            memset(m.mirror + m.at[i], 0, m.iov[i].iov_len);
        }
        struct mview mv = model_view(&m);
        bool expect = true;
        if (m.total > 0 && rnd_below(3) != 0) {
            size_t f = rnd_below(m.total);
            unsigned char c = (unsigned char)(1 + rnd_below(255));
            m.storage[model_idx(&m, f)] = c;
            m.mirror[model_idx(&m, f)] = c;
            if (f >= mv.base && f < mv.base + mv.v.len)
                expect = false;
        }
        assert_int_equal(iov_view_is_zero(&mv.v), expect);
    }
}

static void test_is_zero_guards_not_counted(void **state)
{
    (void)state;
    /* Bytes right after a view's end (same iovec) are not part of it. */
    char a[8] = { 0, 0, 0, 0, 0, 0, 0, 7 };
    char b[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
    struct iovec iov[2] = { { a, 8 }, { b, 8 } };
    struct iov_view v = iov_view_make(iov, 2, 16);
    assert_false(iov_view_is_zero(&v));
    struct iov_view s = iov_view_sub(&v, 0, 7);
    assert_true(iov_view_is_zero(&s));
    s = iov_view_sub(&v, 8, 8);
    assert_true(iov_view_is_zero(&s));
    s = iov_view_sub(&v, 7, 1);
    assert_false(iov_view_is_zero(&s));
    struct iov_view short_v = iov_view_make(iov, 2, 7);
    assert_true(iov_view_is_zero(&short_v));
}

int main(void)
{
    rng_state = tu_seed(0x5c05e1234567ULL);
    printf("# test_iov seed 0x%llx\n", (unsigned long long)rng_state);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_make_len),
        cmocka_unit_test(test_make_skips_leading_empty),
        cmocka_unit_test(test_empty_iovec_null_base),
        cmocka_unit_test(test_of_buf),
        cmocka_unit_test(test_to_buf_from_buf_memset),
        cmocka_unit_test(test_sub_boundaries),
        cmocka_unit_test(test_contig),
        cmocka_unit_test(test_to_iovec),
        cmocka_unit_test(test_is_zero),
        cmocka_unit_test(test_is_zero_guards_not_counted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
