/* A LUN over a qcow2 made by qemu-img, with a dispatcher in front, and a
 * gate that holds the worker completing a command inside its done(), so
 * commands submitted meanwhile cannot start (with one worker). Shared by
 * the dispatcher and task-management tests; include after <cmocka.h>. */
#ifndef TEST_SCSI_ENV_H
#define TEST_SCSI_ENV_H

#include "blk/blk.h"
#include "test_scsi_dispatch_util.h"
#include "testutil.h"

#define TE_LBS 512
#define TE_IMG_BLOCKS 16384 /* 8 MiB */

struct te_env {
    struct blk_node *bs;
    struct scsi_lun *lun;
    struct scsi_disp *d;
};

/* 8 MiB, 64 KiB clusters, 0x5a in [0, 1M) and 0xa5 in [3M, 4M). */
static inline void te_open(struct te_env *e, const char *name, unsigned workers)
{
    tu_run("qemu-img create -q -f qcow2 -o cluster_size=65536 %s %d && "
           "qemu-io -c 'write -P 0x5a 0 1M' -c 'write -P 0xa5 3M 1M' %s >/dev/null",
           name, TE_IMG_BLOCKS * TE_LBS, name);
    struct scuse_err err = { 0 };
    if (blk_open(tu_path(name), "qcow2", BLK_OPEN_RW, NULL, &e->bs, &err) < 0)
        fail_msg("open %s: %s", name, err.msg);
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    cfg.block_size = TE_LBS;
    if (scsi_lun_create(&cfg, e->bs, 0, &e->lun, &err) < 0)
        fail_msg("LUN: %s", err.msg);
    struct scsi_disp_config dc = { .workers = workers };
    if (scsi_disp_create(&dc, &e->d, &err) < 0)
        fail_msg("dispatcher: %s", err.msg);
    assert_int_equal(scsi_disp_workers(e->d), workers);
    assert_int_equal(td_ready(e->d, e->lun), 0);
}

static inline void te_close(struct te_env *e)
{
    scsi_disp_destroy(e->d);
    scsi_lun_destroy(e->lun);
    blk_close(e->bs);
}

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool entered, open;
} te_gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false };

static inline void te_gate_hook(struct tcmd *t)
{
    (void)t;
    pthread_mutex_lock(&te_gate.lock);
    te_gate.entered = true;
    pthread_cond_broadcast(&te_gate.cond);
    while (!te_gate.open)
        pthread_cond_wait(&te_gate.cond, &te_gate.lock);
    pthread_mutex_unlock(&te_gate.lock);
}

/* Submit t (TEST UNIT READY, tag) with the gate hook and return once a
 * worker is held in it. */
static inline void te_gate_close(struct te_env *e, struct tcmd *t, uint64_t tag)
{
    pthread_mutex_lock(&te_gate.lock);
    te_gate.entered = te_gate.open = false;
    pthread_mutex_unlock(&te_gate.lock);
    t->hook = te_gate_hook;
    t->cmd.tag = tag;
    td_tur(t);
    scsi_submit(e->d, e->lun, &t->cmd);
    pthread_mutex_lock(&te_gate.lock);
    while (!te_gate.entered)
        pthread_cond_wait(&te_gate.cond, &te_gate.lock);
    pthread_mutex_unlock(&te_gate.lock);
}

static inline void te_gate_open(void)
{
    pthread_mutex_lock(&te_gate.lock);
    te_gate.open = true;
    pthread_cond_broadcast(&te_gate.cond);
    pthread_mutex_unlock(&te_gate.lock);
}

#endif
