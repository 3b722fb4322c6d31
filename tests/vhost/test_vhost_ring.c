/* The memory table and the split virtqueue in-process, on rings built by
 * hand in a memfd: translations (regions spanning, holes, limits),
 * refused regions, the chain walk's limits (loops, nesting, lengths,
 * order), ring-level errors, used-ring publication and both directions
 * of EVENT_IDX, and giving held buffers back. */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/log.h"
#include "vhost/mem.h"
#include "vhost/vring.h"

#define RAM (4u << 20)
#define HOLE 0x100000u              /* region A: [0, 1M); hole [1M, 2M); region B: [2M, 4M) */
#define UVA 0x500000000000ull

struct env {
    int fd;
    uint8_t *ram;                   /* our view of the memfd */
    struct vhost_mem mem;
    struct vhost_vq vq;
};

static int dupfd(int fd) { return fcntl(fd, F_DUPFD_CLOEXEC, 0); }

static void mem_up(struct env *e)
{
    e->fd = memfd_create("ram", MFD_CLOEXEC);
    assert_true(e->fd >= 0);
    assert_int_equal(ftruncate(e->fd, RAM), 0);
    e->ram = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_SHARED, e->fd, 0);
    assert_true(e->ram != MAP_FAILED);
    vhost_mem_init(&e->mem);
    struct vhu_region a = { 0, HOLE, UVA, 0 }, b = { 2 * HOLE, 2 * HOLE, UVA + 2 * HOLE, 2 * HOLE };
    assert_int_equal(vhost_mem_add(&e->mem, &a, dupfd(e->fd), NULL), 0);
    assert_int_equal(vhost_mem_add(&e->mem, &b, dupfd(e->fd), NULL), 0);
}

static void mem_down(struct env *e)
{
    vhost_mem_clear(&e->mem);
    munmap(e->ram, RAM);
    close(e->fd);
}

static void test_mem(void **state)
{
    (void)state;
    struct env e;
    mem_up(&e);
    struct scuse_err err = { 0 };
    struct iovec iov[4];
    /* A range inside region B, at its mmap offset. */
    assert_int_equal(vhost_mem_gpa_iov(&e.mem, 2 * HOLE + 10, 100, iov, 4), 1);
    e.ram[2 * HOLE + 10] = 0x42;
    assert_int_equal(*(uint8_t *)iov[0].iov_base, 0x42);
    assert_int_equal(iov[0].iov_len, 100);
    /* Into the hole, across it, past the end, wrapping, length 0. */
    assert_int_equal(vhost_mem_gpa_iov(&e.mem, HOLE - 8, 16, iov, 4), -EFAULT);
    assert_int_equal(vhost_mem_gpa_iov(&e.mem, HOLE + 8, 16, iov, 4), -EFAULT);
    assert_int_equal(vhost_mem_gpa_iov(&e.mem, RAM - 8, 16, iov, 4), -EFAULT);
    assert_int_equal(vhost_mem_gpa_iov(&e.mem, ~0ull - 4, 16, iov, 4), -EFAULT);
    assert_int_equal(vhost_mem_gpa_iov(&e.mem, HOLE + 8, 0, iov, 4), 0);
    assert_null(vhost_mem_gpa_ptr(&e.mem, HOLE - 8, 16));
    assert_non_null(vhost_mem_gpa_ptr(&e.mem, HOLE - 16, 16));
    assert_null(vhost_mem_uva_ptr(&e.mem, UVA + HOLE - 8, 16));
    assert_ptr_equal(vhost_mem_uva_ptr(&e.mem, UVA + 2 * HOLE, 16),
                     vhost_mem_gpa_ptr(&e.mem, 2 * HOLE, 16));
    /* Fill the hole with a region: a range across three regions. */
    struct vhu_region h = { HOLE, HOLE, UVA + HOLE, HOLE };
    assert_int_equal(vhost_mem_add(&e.mem, &h, dupfd(e.fd), &err), 0);
    assert_int_equal(vhost_mem_gpa_iov(&e.mem, HOLE - 8, HOLE + 16, iov, 4), 3);
    assert_int_equal(iov[0].iov_len, 8);
    assert_int_equal(iov[1].iov_len, HOLE);
    assert_int_equal(iov[2].iov_len, 8);
    assert_int_equal(vhost_mem_gpa_iov(&e.mem, HOLE - 8, HOLE + 16, iov, 2), -E2BIG);
    assert_null(vhost_mem_gpa_ptr(&e.mem, HOLE - 8, 16));  /* not one region */
    /* Refused: overlaps (guest-physical, front-end virtual), past the
     * fd's end, empty, wrapping, unknown region to remove. */
    struct vhu_region bad[] = {
        { HOLE + 4096, 4096, UVA + 0x10000000, 0 },
        { 0x10000000, 4096, UVA + 8192, 0 },
        { 0x10000000, RAM, UVA + 0x10000000, 4096 },
        { 0x10000000, 0, UVA + 0x10000000, 0 },
        { ~0ull - 4095, 8192, UVA + 0x10000000, 0 },
        { 0x10000000, 4096, ~0ull - 100, 0 },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err_clear(&err);
        assert_true(vhost_mem_add(&e.mem, &bad[i], dupfd(e.fd), &err) < 0);
        assert_true(err.msg[0]);
    }
    assert_int_equal(e.mem.n, 3);
    struct vhu_region other = { HOLE, HOLE, UVA + 7, HOLE };
    assert_int_equal(vhost_mem_remove(&e.mem, &other, &err), -ENOENT);
    assert_int_equal(vhost_mem_remove(&e.mem, &h, &err), 0);
    assert_int_equal(vhost_mem_gpa_iov(&e.mem, HOLE + 8, 16, iov, 4), -EFAULT);
    /* The slot limit. */
    unsigned added = 0;
    for (unsigned i = 0; i < 40; i++) {
        struct vhu_region r = { 0x20000000ull + i * 4096, 4096, UVA + 0x20000000ull + i * 4096, 0 };
        if (vhost_mem_add(&e.mem, &r, dupfd(e.fd), NULL) == 0)
            added++;
    }
    assert_int_equal(added, VHOST_MAX_MEM_SLOTS - 2);
    mem_down(&e);
}

/* ---- rings ---- */

#define NUM 8
#define DESC_GPA 0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA 0x3000
#define BUF_GPA 0x10000

static struct vring_desc *D(struct env *e) { return (struct vring_desc *)(e->ram + DESC_GPA); }
static struct vring_avail *A(struct env *e) { return (struct vring_avail *)(e->ram + AVAIL_GPA); }
static struct vring_used *U(struct env *e) { return (struct vring_used *)(e->ram + USED_GPA); }

static void ring_up(struct env *e, bool event_idx)
{
    mem_up(e);
    vq_init(&e->vq, 2);
    e->vq.num = NUM;
    e->vq.desc_uva = UVA + DESC_GPA;
    e->vq.avail_uva = UVA + AVAIL_GPA;
    e->vq.used_uva = UVA + USED_GPA;
    e->vq.addr_set = true;
    assert_int_equal(vq_map(&e->vq, &e->mem, NULL), 0);
    e->vq.started = e->vq.enabled = true;
    e->vq.event_idx = event_idx;
    e->vq.call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    e->vq.err_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

static void ring_down(struct env *e)
{
    vq_destroy(&e->vq);
    mem_down(e);
}

static uint16_t avail_event(struct env *e)
{
    uint16_t v;
    memcpy(&v, e->ram + USED_GPA + 4 + 8 * NUM, 2);
    return le16toh(v);
}

static void put_desc(struct env *e, unsigned i, uint64_t gpa, uint32_t len, uint16_t flags,
                     uint16_t next)
{
    D(e)[i] = (struct vring_desc){ htole64(gpa), htole32(len), htole16(flags), htole16(next) };
}

static void publish(struct env *e, uint16_t head)
{
    uint16_t idx = le16toh(A(e)->idx);
    A(e)->ring[idx % NUM] = htole16(head);
    A(e)->idx = htole16((uint16_t)(idx + 1));
}

static int pop(struct env *e, struct vq_elem *el, unsigned max_iov)
{
    static struct iovec iov[64];
    return vq_pop(&e->vq, &e->mem, el, iov, max_iov);
}

static uint64_t count(int fd)
{
    eventfd_t v = 0;
    return eventfd_read(fd, &v) == 0 ? v : 0;
}

static void test_chains(void **state)
{
    (void)state;
    struct env e;
    ring_up(&e, false);
    struct vq_elem el;
    assert_int_equal(pop(&e, &el, 64), 0);
    /* readable 10 + 20 (crossing into nothing: fine), writable 30. */
    put_desc(&e, 3, BUF_GPA, 10, VRING_DESC_F_NEXT, 5);
    put_desc(&e, 5, BUF_GPA + 100, 20, VRING_DESC_F_NEXT, 0);
    put_desc(&e, 0, BUF_GPA + 200, 30, VRING_DESC_F_WRITE, 0);
    publish(&e, 3);
    assert_int_equal(pop(&e, &el, 64), 1);
    assert_int_equal(el.head, 3);
    assert_int_equal(el.n_out, 2);
    assert_int_equal(el.n_in, 1);
    assert_int_equal(el.out_len, 30);
    assert_int_equal(el.in_len, 30);
    assert_ptr_equal(el.iov[2].iov_base, vhost_mem_gpa_ptr(&e.mem, BUF_GPA + 200, 30));
    /* Across regions: a descriptor at the end of A running into the
     * hole is refused; iovec space too small is refused. */
    put_desc(&e, 1, HOLE - 8, 16, 0, 0);
    publish(&e, 1);
    assert_int_equal(pop(&e, &el, 64), -EBADMSG);
    assert_int_equal(el.head, 1);
    put_desc(&e, 1, BUF_GPA, 16, VRING_DESC_F_NEXT, 2);
    put_desc(&e, 2, BUF_GPA, 16, 0, 0);
    publish(&e, 1);
    assert_int_equal(pop(&e, &el, 1), -EBADMSG);
    /* A loop through the whole table; a self loop. */
    for (unsigned i = 0; i < NUM; i++)
        put_desc(&e, i, BUF_GPA, 1, VRING_DESC_F_NEXT, (uint16_t)((i + 1) % NUM));
    publish(&e, 4);
    assert_int_equal(pop(&e, &el, 64), -EBADMSG);
    put_desc(&e, 6, BUF_GPA, 1, VRING_DESC_F_NEXT, 6);
    publish(&e, 6);
    assert_int_equal(pop(&e, &el, 64), -EBADMSG);
    /* A chain through every descriptor once is fine. */
    put_desc(&e, 6, BUF_GPA, 1, VRING_DESC_F_NEXT, 7);
    put_desc(&e, NUM - 1, BUF_GPA, 1, 0, 0);
    publish(&e, 0);
    assert_int_equal(pop(&e, &el, 64), 1);
    assert_int_equal(el.out_len, NUM);
    /* next past the table; readable after writable. */
    put_desc(&e, 2, BUF_GPA, 1, VRING_DESC_F_NEXT, NUM);
    publish(&e, 2);
    assert_int_equal(pop(&e, &el, 64), -EBADMSG);
    put_desc(&e, 2, BUF_GPA, 1, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 3);
    put_desc(&e, 3, BUF_GPA, 1, 0, 0);
    publish(&e, 2);
    assert_int_equal(pop(&e, &el, 64), -EBADMSG);
    /* Indirect tables. */
    struct vring_desc *t = (struct vring_desc *)(e.ram + BUF_GPA + 0x1000);
    uint64_t tg = BUF_GPA + 0x1000;
    t[0] = (struct vring_desc){ htole64(BUF_GPA), htole32(51), htole16(VRING_DESC_F_NEXT), htole16(2) };
    t[2] = (struct vring_desc){ htole64(BUF_GPA + 64), htole32(108), htole16(VRING_DESC_F_WRITE), 0 };
    put_desc(&e, 1, tg, 3 * 16, VRING_DESC_F_INDIRECT, 0);
    publish(&e, 1);
    assert_int_equal(pop(&e, &el, 64), 1);
    assert_int_equal(el.out_len, 51);
    assert_int_equal(el.in_len, 108);
    static const struct { uint32_t len; uint16_t flags; } bad_ind[] = {
        { 0, VRING_DESC_F_INDIRECT },                       /* empty */
        { 40, VRING_DESC_F_INDIRECT },                      /* not whole descriptors */
        { 48, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT },  /* with NEXT */
        { 16u * 40000, VRING_DESC_F_INDIRECT },             /* larger than any ring */
    };
    for (size_t i = 0; i < sizeof(bad_ind) / sizeof(bad_ind[0]); i++) {
        put_desc(&e, 1, tg, bad_ind[i].len, bad_ind[i].flags, 2);
        publish(&e, 1);
        assert_int_equal(pop(&e, &el, 64), -EBADMSG);
    }
    put_desc(&e, 1, HOLE - 16, 32, VRING_DESC_F_INDIRECT, 0);   /* across the hole */
    publish(&e, 1);
    assert_int_equal(pop(&e, &el, 64), -EBADMSG);
    t[2] = (struct vring_desc){ htole64(tg), htole32(48), htole16(VRING_DESC_F_INDIRECT), 0 };
    put_desc(&e, 1, tg, 48, VRING_DESC_F_INDIRECT, 0);           /* nested */
    publish(&e, 1);
    assert_int_equal(pop(&e, &el, 64), -EBADMSG);
    t[2] = (struct vring_desc){ htole64(BUF_GPA), htole32(1), htole16(VRING_DESC_F_NEXT), htole16(0) };
    publish(&e, 1);                                              /* loop inside the table */
    assert_int_equal(pop(&e, &el, 64), -EBADMSG);
    t[2] = (struct vring_desc){ htole64(BUF_GPA), htole32(1), htole16(VRING_DESC_F_NEXT), htole16(3) };
    publish(&e, 1);                                              /* past the table */
    assert_int_equal(pop(&e, &el, 64), -EBADMSG);
    /* Every malformed chain was still taken: the ring goes on. */
    assert_false(e.vq.broken);
    assert_int_equal(e.vq.last_avail, le16toh(A(&e)->idx));
    assert_int_equal(count(e.vq.err_fd), 0);
    ring_down(&e);
}

static void test_ring_errors(void **state)
{
    (void)state;
    struct env e;
    ring_up(&e, false);
    struct vq_elem el;
    A(&e)->idx = htole16(NUM + 1);                  /* jumps by more than the ring */
    assert_int_equal(pop(&e, &el, 64), -EPROTO);
    assert_true(e.vq.broken);
    assert_int_equal(count(e.vq.err_fd), 1);
    assert_int_equal(pop(&e, &el, 64), 0);           /* nothing more is taken */
    assert_int_equal(e.vq.last_avail, 0);
    e.vq.broken = false;
    A(&e)->idx = htole16(1);
    A(&e)->ring[0] = htole16(NUM);                   /* a head past the ring */
    assert_int_equal(pop(&e, &el, 64), -EPROTO);
    assert_true(e.vq.broken);
    /* Ring parts outside memory or misaligned are not mapped. */
    struct scuse_err err = { 0 };
    e.vq.used_uva = UVA + HOLE - 8;
    assert_int_equal(vq_map(&e.vq, &e.mem, &err), -EFAULT);
    assert_null(e.vq.desc);
    e.vq.used_uva = UVA + USED_GPA + 2;
    assert_int_equal(vq_map(&e.vq, &e.mem, &err), -EFAULT);
    assert_false(vq_ready(&e.vq));
    ring_down(&e);
}

static void test_used_and_notify(void **state)
{
    (void)state;
    struct env e;
    ring_up(&e, false);
    /* Without EVENT_IDX: every push signals, unless NO_INTERRUPT. */
    vq_push_notify(&e.vq, 5, 77);
    assert_int_equal(le16toh(U(&e)->idx), 1);
    assert_int_equal(le32toh(U(&e)->ring[0].id), 5);
    assert_int_equal(le32toh(U(&e)->ring[0].len), 77);
    assert_int_equal(count(e.vq.call_fd), 1);
    A(&e)->flags = htole16(VRING_AVAIL_F_NO_INTERRUPT);
    vq_push_notify(&e.vq, 6, 1);
    assert_int_equal(count(e.vq.call_fd), 0);
    /* No call fd: pushes work, nothing is signalled; a new call fd is
     * signalled once at once. */
    int call = e.vq.call_fd;
    e.vq.call_fd = -1;
    vq_push_notify(&e.vq, 7, 1);
    assert_int_equal(le16toh(U(&e)->idx), 3);
    vq_set_call(&e.vq, call);
    assert_int_equal(count(call), 1);
    ring_down(&e);

    /* With EVENT_IDX: a signal only when used_event is passed. */
    ring_up(&e, true);
    vq_push_notify(&e.vq, 0, 0);                     /* the first one always */
    assert_int_equal(count(e.vq.call_fd), 1);
    A(&e)->ring[NUM] = htole16(3);                    /* used_event: wake me after 4 */
    vq_push_notify(&e.vq, 0, 0);                     /* used 2 */
    vq_push_notify(&e.vq, 0, 0);                     /* used 3 */
    assert_int_equal(count(e.vq.call_fd), 0);
    vq_push_notify(&e.vq, 0, 0);                     /* used 4: passes 3 */
    assert_int_equal(count(e.vq.call_fd), 1);
    vq_push_notify(&e.vq, 0, 0);
    assert_int_equal(count(e.vq.call_fd), 0);
    /* Kicks: avail_event asks for the next index; a buffer that came
     * meanwhile is reported. */
    struct vq_elem el;
    put_desc(&e, 0, BUF_GPA, 4, 0, 0);
    publish(&e, 0);
    publish(&e, 0);
    assert_int_equal(pop(&e, &el, 64), 1);
    assert_true(vq_enable_kicks(&e.vq));
    assert_int_equal(avail_event(&e), 1);
    assert_int_equal(pop(&e, &el, 64), 1);
    assert_false(vq_enable_kicks(&e.vq));
    assert_int_equal(avail_event(&e), 2);
    /* Rewind: the last two taken are taken again. */
    vq_rewind(&e.vq, 0);
    assert_int_equal(pop(&e, &el, 64), 1);
    assert_int_equal(pop(&e, &el, 64), 1);
    assert_int_equal(pop(&e, &el, 64), 0);
    vq_rewind(&e.vq, (uint16_t)(2 - NUM - 1));       /* further back than the ring: ignored */
    assert_int_equal(e.vq.last_avail, 2);
    /* In flight counting and drain. */
    pthread_mutex_lock(&e.vq.lock);
    vq_get_locked(&e.vq);
    pthread_mutex_unlock(&e.vq.lock);
    vq_complete(&e.vq, 0, 0);
    vq_drain(&e.vq);
    assert_int_equal(e.vq.inflight, 0);
    ring_down(&e);
}

int main(void)
{
    log_set_level(LOG_LVL_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mem),
        cmocka_unit_test(test_chains),
        cmocka_unit_test(test_ring_errors),
        cmocka_unit_test(test_used_and_notify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
