/* Metadata write-through (scsi_lun_config.meta_write_through), at the
 * SCSI layer through the dispatcher: with it on, every command that
 * changes a qcow2 image (WRITE, WRITE SAME with a pattern and with
 * UNMAP, UNMAP, COMPARE AND WRITE, WRITE AND VERIFY) has no metadata
 * left pending when its done() runs, and a copy of the file taken then,
 * as a process killed at that moment leaves it, holds every write and
 * passes qemu-img check. With it off nothing is forced: the allocating
 * write's L2 entry is still only in memory at done(), the copy reads
 * zeros there, and SYNCHRONIZE CACHE writes it. */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "blk/blk.h"
#include "scsi/dispatch.h"
#include "scsi/scsi.h"
#include "testutil.h"

#define LBS 512

struct env {
    struct blk_node *bs;
    struct scsi_lun *lun;
    struct scsi_disp *d;
};

/* 8 MiB, 64 KiB clusters, 0x5a in the first MiB; the rest unallocated. */
static void env_open(struct env *e, bool write_through)
{
    tu_run("rm -f a.qcow2 && qemu-img create -q -f qcow2 -o cluster_size=65536 a.qcow2 8M && "
           "qemu-io -c 'write -P 0x5a 0 1M' a.qcow2 >/dev/null");
    struct scuse_err err = { 0 };
    if (blk_open(tu_path("a.qcow2"), "qcow2", BLK_OPEN_RW, NULL, &e->bs, &err) < 0)
        fail_msg("open: %s", err.msg);
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    cfg.meta_write_through = write_through;
    if (scsi_lun_create(&cfg, e->bs, 0, &e->lun, &err) < 0)
        fail_msg("LUN: %s", err.msg);
    struct scsi_disp_config dc = { .workers = 2 };
    if (scsi_disp_create(&dc, &e->d, &err) < 0)
        fail_msg("dispatcher: %s", err.msg);
}

static void env_close(struct env *e)
{
    scsi_disp_destroy(e->d);
    scsi_lun_destroy(e->lun);
    blk_close(e->bs);
}

/* One command through the dispatcher; what done() saw. */
struct run {
    struct scsi_cmd cmd;
    uint8_t sense[SCSI_SENSE_MAX];
    struct blk_node *bs;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    bool pending_at_done;           /* blk_meta_pending() inside done() */
};

static void on_done(struct scsi_cmd *cmd)
{
    struct run *r = cmd->priv;
    bool pending = blk_meta_pending(r->bs);
    pthread_mutex_lock(&r->lock);
    r->pending_at_done = pending;
    r->done = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

/* Run cdb with buf as its data-out (the direction left to the CDB, as
 * TCMU leaves it); returns whether metadata was pending at done(). */
static bool run(struct env *e, const uint8_t *cdb, uint32_t cdb_len, void *buf, size_t len)
{
    struct run r;
    memset(&r, 0, sizeof(r));
    pthread_mutex_init(&r.lock, NULL);
    pthread_cond_init(&r.cond, NULL);
    r.bs = e->bs;
    struct iovec iov = { buf, len };
    r.cmd.cdb = cdb;
    r.cmd.cdb_len = cdb_len;
    r.cmd.data = iov_view_make(&iov, 1, len);
    r.cmd.dir = SCSI_DIR_BY_CDB;
    r.cmd.sense = r.sense;
    r.cmd.done = on_done;
    r.cmd.priv = &r;
    scsi_submit(e->d, e->lun, &r.cmd);
    pthread_mutex_lock(&r.lock);
    while (!r.done)
        pthread_cond_wait(&r.cond, &r.lock);
    pthread_mutex_unlock(&r.lock);
    if (r.cmd.status != SCSI_STATUS_GOOD)
        fail_msg("opcode 0x%02x: status 0x%02x, sense %02x/%02x/%02x", cdb[0], r.cmd.status,
                 r.sense[2] & 0x0f, r.sense[12], r.sense[13]);
    pthread_mutex_destroy(&r.lock);
    pthread_cond_destroy(&r.cond);
    return r.pending_at_done;
}

static void be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static bool write10(struct env *e, uint32_t lba, uint16_t n, uint8_t pattern)
{
    static uint8_t buf[64 * LBS];
    uint8_t cdb[10] = { 0x2a };
    be(cdb + 2, lba, 4);
    be(cdb + 7, n, 2);
    memset(buf, pattern, (size_t)n * LBS);
    return run(e, cdb, sizeof(cdb), buf, (size_t)n * LBS);
}

/* Every kind of command that changes the image, each into clusters it
 * allocates, zeroes or deallocates. */
static void test_on(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, true);
    uint8_t blk[LBS];

    assert_false(write10(&e, 4096, 8, 0x11));               /* 2M, unallocated */

    uint8_t w16[16] = { 0x8a };
    be(w16 + 2, 4224, 8);                                   /* 2M + 64K */
    be(w16 + 10, 8, 4);
    uint8_t buf[8 * LBS];
    memset(buf, 0x22, sizeof(buf));
    assert_false(run(&e, w16, sizeof(w16), buf, sizeof(buf)));

    uint8_t ws16[16] = { 0x93 };
    be(ws16 + 2, 4352, 8);                                  /* 2M + 128K, a pattern */
    be(ws16 + 10, 16, 4);
    memset(blk, 0x33, sizeof(blk));
    assert_false(run(&e, ws16, sizeof(ws16), blk, sizeof(blk)));

    uint8_t ws10[10] = { 0x41, 0x08 };                      /* UNMAP bit, zeros at 0 */
    be(ws10 + 7, 128, 2);
    memset(blk, 0, sizeof(blk));
    assert_false(run(&e, ws10, sizeof(ws10), blk, sizeof(blk)));

    uint8_t unmap[10] = { 0x42 };                           /* the second cluster */
    be(unmap + 7, 24, 2);
    uint8_t list[24] = { 0 };
    be(list, 22, 2);
    be(list + 2, 16, 2);
    be(list + 8, 128, 8);
    be(list + 16, 128, 4);
    assert_false(run(&e, unmap, sizeof(unmap), list, sizeof(list)));

    uint8_t caw[16] = { 0x89 };                             /* 2M + 192K: zeros -> 0x44 */
    be(caw + 2, 4480, 8);
    caw[13] = 1;
    uint8_t cw[2 * LBS];
    memset(cw, 0, LBS);
    memset(cw + LBS, 0x44, LBS);
    assert_false(run(&e, caw, sizeof(caw), cw, sizeof(cw)));

    assert_false(blk_meta_pending(e.bs));
    /* The file as a process killed now leaves it. */
    tu_run("cp a.qcow2 killed.qcow2 && qemu-img check -q killed.qcow2 && "
           "qemu-io -r -c 'read -P 0x11 2M 4k' -c 'read -P 0x22 2112k 4k' "
           "-c 'read -P 0x33 2176k 8k' -c 'read -P 0 0 64k' -c 'read -P 0 64k 64k' "
           "-c 'read -P 0x5a 128k 896k' -c 'read -P 0x44 2240k 512' killed.qcow2 "
           "> killed.out && ! grep -q 'verification failed' killed.out");

    /* WRITE AND VERIFY writes through anyway (it verifies the medium). */
    uint8_t wv[10] = { 0x2e };                              /* 2M + 256K */
    be(wv + 2, 4608, 4);
    be(wv + 7, 8, 2);
    memset(buf, 0x55, sizeof(buf));
    assert_false(run(&e, wv, sizeof(wv), buf, sizeof(buf)));
    tu_run("cp a.qcow2 killed.qcow2 && qemu-img check -q killed.qcow2 && "
           "qemu-io -r -c 'read -P 0x55 2304k 4k' killed.qcow2 > killed.out && "
           "! grep -q 'verification failed' killed.out");
    env_close(&e);
}

/* Off: the allocating write's metadata is left to SYNCHRONIZE CACHE. */
static void test_off(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, false);
    assert_true(write10(&e, 4096, 8, 0x11));
    tu_run("cp a.qcow2 killed.qcow2 && qemu-io -r -c 'read -P 0 2M 4k' killed.qcow2 "
           "> killed.out && ! grep -q 'verification failed' killed.out");
    /* A write into an allocated cluster leaves nothing new pending... */
    uint8_t sync[10] = { 0x35 };
    assert_false(run(&e, sync, sizeof(sync), NULL, 0));
    assert_false(write10(&e, 4100, 4, 0x12));
    /* ...and SYNCHRONIZE CACHE wrote the first one's. */
    tu_run("cp a.qcow2 synced.qcow2 && qemu-img check -q synced.qcow2 && "
           "qemu-io -r -c 'read -P 0x11 2M 2k' -c 'read -P 0x12 2050k 2k' synced.qcow2 "
           "> synced.out && ! grep -q 'verification failed' synced.out");
    env_close(&e);
}

static int setup(void **state)
{
    (void)state;
    return tu_qemu_setup("scsi-meta-wt", NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_on, tu_need_qemu),
        cmocka_unit_test_setup(test_off, tu_need_qemu),
    };
    return cmocka_run_group_tests(tests, setup, tu_teardown);
}
