/* A ring consumer over the fake kernel of test_tcmu_fake.h, shared by
 * the ring tests: the environment, and shorthands for parsing and for
 * what the fake kernel saw. */
#ifndef TEST_TCMU_RING_ENV_H
#define TEST_TCMU_RING_ENV_H

#include "tcmu/ring.h"
#include "test_tcmu_fake.h"

#define ALL_CAPS (TCMU_MAILBOX_FLAG_CAP_OOOC | TCMU_MAILBOX_FLAG_CAP_READ_LEN | \
                  TCMU_MAILBOX_FLAG_CAP_TMR)

static const uint8_t __attribute__((unused)) READ10[10] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0 };
static const uint8_t __attribute__((unused)) WRITE10[10] = { 0x2a, 0, 0, 0, 0, 0, 0, 0, 8, 0 };
static const uint8_t __attribute__((unused)) TUR[6] = { 0 };

struct env {
    struct fk *k;
    struct tcmu_ring r;
    int kicks;
};

static inline void kick(void *arg)
{
    struct env *e = arg;
    __atomic_add_fetch(&e->kicks, 1, __ATOMIC_RELAXED);
}

static inline void env_open(struct env *e, uint32_t ring, uint64_t data, uint16_t flags)
{
    memset(e, 0, sizeof(*e));
    e->k = fk_new(ring, data, flags);
    struct scuse_err err = { 0 };
    if (tcmu_ring_init(&e->r, e->k->map, e->k->size, "test", kick, e, &err) < 0)
        fail_msg("ring init: %s", err.msg);
}

static inline void env_close(struct env *e)
{
    tcmu_ring_fini(&e->r);
    fk_free(e->k);
}

static inline enum tcmu_next next(struct env *e, struct tcmu_req *req)
{
    struct tcmu_tmr tmr;
    return tcmu_ring_next(&e->r, req, &tmr);
}

/* The completion the fake kernel saw for id: CHECK CONDITION with this
 * sense key and ASC. */
static inline void want_check(struct env *e, uint16_t id, int key, int asc)
{
    fk_reap(e->k);
    struct fk_done *d = &e->k->done[id];
    assert_int_equal(d->count, 1);
    assert_int_equal(d->status, 0x02);
    int k, a, q;
    fk_sense(d, &k, &a, &q);
    assert_int_equal(k, key);
    assert_int_equal(a, asc);
}

/* Patch bytes of the entry at pos and publish. */
static inline void patch(struct env *e, uint32_t pos, size_t field, const void *v, size_t n)
{
    memcpy(fk_ring(e->k, pos) + field, v, n);
    fk_publish(e->k);
}

#endif
