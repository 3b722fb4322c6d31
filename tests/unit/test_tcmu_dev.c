/* TCMU devices end to end, short of the kernel: a fake kernel
 * (test_tcmu_fake.h) puts SCSI commands on a ring, the device parses
 * them and runs them through the real SCSI core and dispatcher over a
 * qcow2 made by qemu-img, and qemu-io / qemu-img compare judge what
 * reached the image. Covers many commands in flight with scattered
 * iovecs, READ_LEN on short replies (INQUIRY), TMR abort and reset, an
 * unsound entry among sound ones, a device without medium, writes whose
 * qcow2 metadata is in the file when they complete (what a restarted
 * daemon finds), and a producer thread racing the pump and the workers. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "blk/blk.h"
#include "scsi/dispatch.h"
#include "scsi/scsi.h"
#include "tcmu/dev.h"
#include "test_tcmu_fake.h"
#include "testutil.h"

#define LBS 512
#define IMG_MB 16
#define ALL_CAPS (TCMU_MAILBOX_FLAG_CAP_OOOC | TCMU_MAILBOX_FLAG_CAP_READ_LEN | \
                  TCMU_MAILBOX_FLAG_CAP_TMR)

static uint64_t seed;

/* Holds a worker inside its completion's kick (armed from the test). */
struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool armed, entered, open;
    pthread_t main;
};

struct env {
    struct fk *k;
    struct blk_node *bs;
    struct scsi_lun *lun;
    struct scsi_disp *disp;
    struct tcmu_dev dev;
    int efd;                        /* kicks, as the uio fd would count them */
    struct gate gate;
};

static void kick(void *arg)
{
    struct env *e = arg;
    struct gate *g = &e->gate;
    pthread_mutex_lock(&g->lock);
    if (g->armed && !pthread_equal(pthread_self(), g->main)) {
        g->armed = false;
        g->entered = true;
        pthread_cond_broadcast(&g->cond);
        while (!g->open)
            pthread_cond_wait(&g->cond, &g->lock);
    }
    pthread_mutex_unlock(&g->lock);
    uint64_t one = 1;
    if (write(e->efd, &one, sizeof(one)) != sizeof(one))
        abort();
}

static void env_open(struct env *e, const char *img, uint16_t flags, unsigned workers,
                     bool with_lun)
{
    memset(e, 0, sizeof(*e));
    pthread_mutex_init(&e->gate.lock, NULL);
    pthread_cond_init(&e->gate.cond, NULL);
    e->gate.main = pthread_self();
    e->efd = eventfd(0, EFD_NONBLOCK);
    assert_true(e->efd >= 0);
    e->k = fk_new(32 * 1024, 4 << 20, flags);
    struct scuse_err err = { 0 };
    if (with_lun) {
        if (blk_open(tu_path(img), "qcow2", BLK_OPEN_RW, NULL, &e->bs, &err) < 0)
            fail_msg("open %s: %s", img, err.msg);
        /* As the daemon makes its LUNs (served.c): metadata write-through. */
        struct scsi_lun_config cfg;
        scsi_lun_config_default(&cfg);
        cfg.meta_write_through = true;
        if (scsi_lun_create(&cfg, e->bs, 0, &e->lun, &err) < 0)
            fail_msg("LUN: %s", err.msg);
    }
    struct scsi_disp_config dc = { .workers = workers };
    if (scsi_disp_create(&dc, &e->disp, &err) < 0)
        fail_msg("dispatcher: %s", err.msg);
    if (tcmu_dev_init(&e->dev, e->k->map, e->k->size, "test", e->disp, e->lun, kick, e, &err) < 0)
        fail_msg("device: %s", err.msg);
}

static void env_close(struct env *e)
{
    tcmu_dev_fini(&e->dev);
    scsi_disp_destroy(e->disp);
    scsi_lun_destroy(e->lun);
    if (e->bs)
        blk_close(e->bs);
    fk_free(e->k);
    close(e->efd);
}

/* Reap until the fake kernel has seen `want` completions in all. */
static void wait_reaped(struct env *e, uint32_t want)
{
    for (int spins = 0; e->k->reaped < want; spins++) {
        if (spins > 20000)
            fail_msg("only %u of %u completions after 20 s", e->k->reaped, want);
        fk_reap(e->k);
        if (e->k->reaped < want) {
            struct pollfd p = { e->efd, POLLIN, 0 };
            poll(&p, 1, 1);
            uint64_t v;
            if (read(e->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                fail_msg("eventfd: %s", strerror(errno));
        }
    }
}

static void be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* READ(16)/WRITE(16) of n blocks at lba, its data at data-area offset
 * `at` split into `pieces` iovecs laid out in reverse order. */
static uint16_t post_rw(struct fk *k, bool write, uint64_t lba, uint32_t n, uint64_t at,
                        unsigned pieces)
{
    uint8_t cdb[16] = { write ? 0x8a : 0x88 };
    be(cdb + 2, lba, 8);
    be(cdb + 10, n, 4);
    uint64_t total = (uint64_t)n * LBS, off[32], len[32];
    uint64_t pos = k->data_off + at + total;
    for (unsigned i = 0; i < pieces; i++) {
        len[i] = total / pieces + (i == pieces - 1 ? total % pieces : 0);
        pos -= len[i];
        off[i] = pos;
    }
    return fk_cmd(k, cdb, 16, off, len, pieces);
}

/* The bytes of a command's data (iovecs in entry order) in buf. */
static void gather(struct fk *k, uint64_t at, uint64_t total, unsigned pieces, uint8_t *buf)
{
    uint64_t pos = k->data_off + at + total, done = 0;
    for (unsigned i = 0; i < pieces; i++) {
        uint64_t l = total / pieces + (i == pieces - 1 ? total % pieces : 0);
        pos -= l;
        memcpy(buf + done, k->map + pos, l);
        done += l;
    }
}

static void scatter(struct fk *k, uint64_t at, const uint8_t *buf, uint64_t total,
                    unsigned pieces)
{
    uint64_t pos = k->data_off + at + total, done = 0;
    for (unsigned i = 0; i < pieces; i++) {
        uint64_t l = total / pieces + (i == pieces - 1 ? total % pieces : 0);
        pos -= l;
        memcpy(k->map + pos, buf + done, l);
        done += l;
    }
}

static void make_image(const char *name)
{
    tu_run("qemu-img create -q -f qcow2 %s %dM && qemu-io -c 'write -P 0x5a 0 1M' %s >/dev/null",
           name, IMG_MB, name);
}

/* Run qemu-io read-only with these -c commands: every read's pattern
 * must verify, and there must be nreads of them. */
static void qio_check(const char *img, const char *cmds, int nreads)
{
    tu_run("qemu-io -r %s %s > qio.out 2>&1; true", cmds, img);
    FILE *f = fopen(tu_path("qio.out"), "r");
    assert_non_null(f);
    char line[512];
    int reads = 0;
    while (fgets(line, sizeof(line), f)) {
        if (strstr(line, "verification failed") || strstr(line, "error"))
            fail_msg("qemu-io on %s: %s", img, line);
        if (strncmp(line, "read ", 5) == 0)
            reads++;
    }
    fclose(f);
    if (reads != nreads)
        fail_msg("qemu-io on %s: %d reads reported, %d expected", img, reads, nreads);
}

static void pump(struct env *e)
{
    assert_true(tcmu_dev_pump(&e->dev) >= 0);
}

/* ---- data through the ring ---- */

/* 32 writes in flight at once, each in 5 scattered iovecs, then reads
 * through the ring; qemu-io checks every pattern in the image. */
static void test_writes_in_flight(void **state)
{
    (void)state;
    make_image("w.qcow2");
    struct env e;
    env_open(&e, "w.qcow2", ALL_CAPS, 4, true);
    enum { N = 32, BLK = 16 };
    uint16_t id[N];
    uint8_t buf[BLK * LBS];
    for (int i = 0; i < N; i++) {
        memset(buf, 0x10 + i, sizeof(buf));
        scatter(e.k, (uint64_t)i * 65536, buf, sizeof(buf), 5);
        id[i] = post_rw(e.k, true, 4096 + (uint64_t)i * 64, BLK, (uint64_t)i * 65536, 5);
        assert_int_not_equal(id[i], 0);
    }
    pump(&e);
    wait_reaped(&e, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(e.k->done[id[i]].count, 1);
        assert_int_equal(e.k->done[id[i]].status, 0);
    }
    /* Read back one of them and the qemu-io-written start through the ring. */
    memset(e.k->map + e.k->data_off, 0xee, 2 << 20);
    uint16_t r1 = post_rw(e.k, false, 4096 + 7 * 64, BLK, 0, 3);
    uint16_t r2 = post_rw(e.k, false, 0, 2048, 1 << 20, 7);
    pump(&e);
    wait_reaped(&e, N + 2);
    assert_int_equal(e.k->done[r1].status, 0);
    assert_int_equal(e.k->done[r2].status, 0);
    assert_int_equal(e.k->done[r1].uflags, 0);
    gather(e.k, 0, sizeof(buf), 3, buf);
    for (size_t i = 0; i < sizeof(buf); i++)
        assert_int_equal(buf[i], 0x10 + 7);
    uint8_t *big = malloc(1 << 20);
    gather(e.k, 1 << 20, 1 << 20, 7, big);
    for (size_t i = 0; i < (1 << 20); i++)
        if (big[i] != 0x5a)
            fail_msg("byte %zu read through the ring is 0x%02x", i, big[i]);
    free(big);
    assert_true(e.dev.n_cmds == N + 2);
    env_close(&e);
    char cmd[8192];
    int n = 0;
    for (int i = 0; i < N; i++)
        n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " -c 'read -P 0x%02x %d %d'", 0x10 + i,
                      (4096 + i * 64) * LBS, BLK * LBS);
    snprintf(cmd + n, sizeof(cmd) - (size_t)n, " -c 'read -P 0 %d 512'", 4095 * LBS);
    qio_check("w.qcow2", cmd, N + 1);
    tu_run("qemu-img check -q w.qcow2");
}

/* INQUIRY with a 255-byte allocation: the LUN sends less, and the kernel
 * is told how much with READ_LEN (the length the data itself states). */
static void test_short_reply(void **state)
{
    (void)state;
    make_image("s.qcow2");
    for (int caps = 0; caps < 2; caps++) {
        struct env e;
        env_open(&e, "s.qcow2", caps ? ALL_CAPS : TCMU_MAILBOX_FLAG_CAP_OOOC, 2, true);
        uint8_t *data = e.k->map + e.k->data_off;
        memset(data, 0xee, 4096);
        uint8_t inq[6] = { 0x12, 0, 0, 0, 255, 0 };
        uint8_t vpd80[6] = { 0x12, 1, 0x80, 0, 255, 0 };
        uint64_t off = e.k->data_off, off2 = e.k->data_off + 1024, len = 255;
        uint16_t a = fk_cmd(e.k, inq, 6, &off, &len, 1);
        uint16_t b = fk_cmd(e.k, vpd80, 6, &off2, &len, 1);
        pump(&e);
        wait_reaped(&e, 2);
        uint32_t std_len = data[4] + 5u;
        uint32_t vpd_len = ((uint32_t)data[1024 + 2] << 8 | data[1024 + 3]) + 4;
        assert_true(std_len >= 36 && std_len < 255);
        assert_int_equal(data[1024 + 1], 0x80);
        struct fk_done *da = &e.k->done[a], *db = &e.k->done[b];
        assert_int_equal(da->status, 0);
        if (caps) {
            assert_int_equal(da->uflags, TCMU_UFLAG_READ_LEN);
            assert_int_equal(da->read_len, std_len);
            assert_int_equal(db->read_len, vpd_len);
        } else {
            assert_int_equal(da->uflags, 0);
            for (uint32_t i = std_len; i < 255; i++)
                assert_int_equal(data[i], 0);
        }
        env_close(&e);
    }
}

/* Writes that allocate clusters (and one into an allocated cluster), no
 * SYNCHRONIZE CACHE: once the kernel has their completions, a copy of
 * the file, as a daemon killed now would leave it, holds them (the L2
 * entries were written before the completions) and is consistent. */
static void test_acked_writes_in_file(void **state)
{
    (void)state;
    make_image("a.qcow2");
    struct env e;
    env_open(&e, "a.qcow2", ALL_CAPS, 4, true);
    enum { N = 12, BLK = 24 };
    uint16_t id[N];
    uint8_t buf[BLK * LBS];
    for (int i = 0; i < N; i++) {
        memset(buf, 0x60 + i, sizeof(buf));
        scatter(e.k, (uint64_t)i * 65536, buf, sizeof(buf), 2);
        /* i = 0 lands in the first MiB, which qemu-io allocated */
        id[i] = post_rw(e.k, true, 1000 + (uint64_t)i * 2500, BLK, (uint64_t)i * 65536, 2);
    }
    pump(&e);
    wait_reaped(&e, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(e.k->done[id[i]].status, 0);
    assert_false(blk_meta_pending(e.bs));
    tu_run("cp a.qcow2 a-killed.qcow2 && qemu-img check -q a-killed.qcow2");
    char cmd[4096];
    int n = 0;
    for (int i = 0; i < N; i++)
        n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " -c 'read -P 0x%02x %d %d'", 0x60 + i,
                      (1000 + i * 2500) * LBS, BLK * LBS);
    qio_check("a-killed.qcow2", cmd, N);
    env_close(&e);
}

/* ---- task management ---- */

static void gate_wait_entered(struct gate *g)
{
    pthread_mutex_lock(&g->lock);
    while (!g->entered)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->open = true;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

/* One worker, held in the first completion: two writes wait behind it;
 * an ABORT TASK naming the first drops it (TASK ABORTED, never written),
 * the second runs. A LUN RESET returns the unit to its power-on state
 * and raises no unit attention of scuse's (LIO's core reports the reset's
 * own to every nexus). */
static void test_tmr_abort_and_reset(void **state)
{
    (void)state;
    make_image("t.qcow2");
    struct env e;
    env_open(&e, "t.qcow2", ALL_CAPS, 1, true);
    e.gate.armed = true;
    uint8_t tur[6] = { 0 };
    uint16_t a = fk_cmd(e.k, tur, 6, NULL, NULL, 0);
    pump(&e);
    gate_wait_entered(&e.gate);
    uint8_t buf[8 * LBS];
    memset(buf, 0xbb, sizeof(buf));
    scatter(e.k, 0, buf, sizeof(buf), 2);
    uint16_t b = post_rw(e.k, true, 8192, 8, 0, 2);
    memset(buf, 0xcc, sizeof(buf));
    scatter(e.k, 65536, buf, sizeof(buf), 2);
    uint16_t c = post_rw(e.k, true, 9000, 8, 65536, 2);
    pump(&e);
    assert_true(fk_tmr(e.k, TCMU_TMR_ABORT_TASK, &b, 1));
    pump(&e);
    assert_int_equal(e.dev.n_tmrs, 1);
    gate_open(&e.gate);
    wait_reaped(&e, 3);
    assert_int_equal(e.k->done[a].status, 0);
    assert_int_equal(e.k->done[b].status, 0x40);
    assert_int_equal(e.k->done[c].status, 0);
    /* A stopped unit: NOT READY. A LUN RESET starts it again (the unit
     * back to its power-on state) without a unit attention of scuse's:
     * the next command is answered GOOD. */
    uint8_t stop[6] = { 0x1b, 0, 0, 0, 0, 0 };
    uint16_t st = fk_cmd(e.k, stop, 6, NULL, NULL, 0);
    pump(&e);
    wait_reaped(&e, 4);
    uint16_t t1 = fk_cmd(e.k, tur, 6, NULL, NULL, 0);
    pump(&e);
    wait_reaped(&e, 5);
    assert_int_equal(e.k->done[st].status, 0);
    assert_int_equal(e.k->done[t1].status, 0x02);
    assert_true(fk_tmr(e.k, TCMU_TMR_LUN_RESET, NULL, 0));
    uint16_t d = fk_cmd(e.k, tur, 6, NULL, NULL, 0);
    pump(&e);
    wait_reaped(&e, 6);
    assert_int_equal(e.dev.n_tmrs, 2);
    assert_int_equal(e.k->done[d].status, 0);
    env_close(&e);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "-c 'read -P 0 %d 4096' -c 'read -P 0xcc %d 4096'", 8192 * LBS,
             9000 * LBS);
    qio_check("t.qcow2", cmd, 2);
}

/* ---- unsound entries and no medium ---- */

static void test_bad_entry_among_good(void **state)
{
    (void)state;
    make_image("b.qcow2");
    struct env e;
    env_open(&e, "b.qcow2", ALL_CAPS, 2, true);
    uint16_t good1 = post_rw(e.k, false, 0, 8, 0, 1);
    uint64_t off = FK_CMDR_OFF, len = 4096; /* an iovec over the ring itself */
    uint8_t rd[16] = { 0x88 };
    be(rd + 10, 8, 4);
    uint16_t bad = fk_cmd(e.k, rd, 16, &off, &len, 1);
    uint16_t good2 = post_rw(e.k, false, 8, 8, 8192, 1);
    pump(&e);
    wait_reaped(&e, 3);
    assert_int_equal(e.k->done[good1].status, 0);
    assert_int_equal(e.k->done[good2].status, 0);
    assert_int_equal(e.k->done[bad].status, 0x02);
    int key, asc, ascq;
    fk_sense(&e.k->done[bad], &key, &asc, &ascq);
    assert_int_equal(key, 0x4);
    assert_int_equal(asc, 0x44);
    assert_int_equal(e.dev.ring.n_failed, 1);
    env_close(&e);
}

static void test_no_medium(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, NULL, ALL_CAPS, 2, false);
    uint16_t r = post_rw(e.k, false, 0, 8, 0, 1);
    pump(&e);
    wait_reaped(&e, 1);
    assert_int_equal(e.k->done[r].status, 0x02);
    int key, asc, ascq;
    fk_sense(&e.k->done[r], &key, &asc, &ascq);
    assert_int_equal(key, 0x2);
    assert_int_equal(asc, 0x3a);
    env_close(&e);
}

/* ---- a producer thread racing the pump and four workers ---- */

struct race {
    struct env *e;
    int total;
    uint8_t *shadow;                /* the image's first 2 MiB, as the writes leave it */
    atomic_bool stop;
};

static void *pump_thread(void *arg)
{
    struct race *r = arg;
    while (!atomic_load(&r->stop)) {
        int n = tcmu_dev_pump(&r->e->dev);
        if (n < 0)
            fail_msg("pump: %d", n);
        if (n == 0)
            usleep(50);
    }
    return NULL;
}

/* Random writes of 1-16 blocks in the first 2 MiB: dispatched in ring
 * order, so the shadow applied in ring order is what the image holds. */
static void test_race(void **state)
{
    (void)state;
    make_image("r.qcow2");
    struct env e;
    env_open(&e, "r.qcow2", ALL_CAPS, 4, true);
    struct race r = { .e = &e, .total = getenv("SCUSE_TEST_OPS") ? 300 : 3000 };
    r.shadow = calloc(1, 2 << 20);
    memset(r.shadow, 0x5a, 1 << 20);
    pthread_t t;
    pthread_create(&t, NULL, pump_thread, &r);
    uint64_t rng = seed;
    uint8_t buf[16 * LBS];
    static uint16_t owner[512];
    memset(owner, 0, sizeof(owner));
    unsigned next_slot = 0;
    for (int i = 0; i < r.total;) {
        uint32_t n = 1 + (uint32_t)tu_below(&rng, 16);
        uint64_t lba = tu_below(&rng, 4096 - n);
        for (uint32_t j = 0; j < n * LBS; j += 8) {
            uint64_t v = tu_rnd(&rng);
            memcpy(buf + j, &v, 8);
        }
        /* Data in a free slot of the data area. A slot is free once its
         * command is reaped, not once the ring moved past its entry: with
         * out-of-order completion a command that waits (here behind an
         * overlapping write) gives its ring slot to one that finished,
         * while its data stays in use, as the kernel's blocks do. */
        unsigned pieces = 1 + (unsigned)tu_below(&rng, 6);
        int slot = -1;
        for (int s = 0; s < 512 && slot < 0; s++) {
            int c = (int)((next_slot + (unsigned)s) % 512);
            if (!owner[c] || e.k->done[owner[c]].count)
                slot = c;
        }
        if (slot < 0 || fk_space(e.k) < 2 * fk_cmd_size(pieces, 16)) {
            fk_reap(e.k);
            continue;
        }
        next_slot = (unsigned)slot + 1;
        uint64_t at = (uint64_t)slot * 8192;
        scatter(e.k, at, buf, (uint64_t)n * LBS, pieces);
        uint16_t id = post_rw(e.k, true, lba, n, at, pieces);
        assert_int_not_equal(id, 0);
        owner[slot] = id;
        memcpy(r.shadow + lba * LBS, buf, (size_t)n * LBS);
        i++;
        fk_reap(e.k);
    }
    wait_reaped(&e, (uint32_t)r.total);
    atomic_store(&r.stop, true);
    pthread_join(t, NULL);
    for (int id = 1; id < FK_MAX_ID; id++)
        if (e.k->done[id].count)
            assert_int_equal(e.k->done[id].status, 0);
    env_close(&e);
    tu_store("r.raw", r.shadow, 2 << 20);
    tu_run("qemu-img convert -f qcow2 -O raw r.qcow2 r.out && head -c 2097152 r.out > r.head && "
           "cmp r.head r.raw && qemu-img check -q r.qcow2");
    free(r.shadow);
}

int main(void)
{
    if (tu_qemu_setup("tcmu-dev", &seed, 0x5eed7) < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_writes_in_flight, tu_need_qemu),
        cmocka_unit_test_setup(test_short_reply, tu_need_qemu),
        cmocka_unit_test_setup(test_acked_writes_in_file, tu_need_qemu),
        cmocka_unit_test_setup(test_tmr_abort_and_reset, tu_need_qemu),
        cmocka_unit_test_setup(test_bad_entry_among_good, tu_need_qemu),
        cmocka_unit_test(test_no_medium),
        cmocka_unit_test_setup(test_race, tu_need_qemu),
    };
    return cmocka_run_group_tests(tests, NULL, tu_teardown);
}
