/* Pieces shared by the dispatcher tests: CDBs built as an initiator
 * builds them, a command with its own buffers that can be waited for,
 * and opening a LUN over an image with a dispatcher in front. */
#ifndef TEST_SCSI_DISPATCH_UTIL_H
#define TEST_SCSI_DISPATCH_UTIL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "scsi/dispatch.h"
#include "scsi/scsi.h"

static inline void td_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static inline uint64_t td_get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* A command and everything a transport would own for it. */
struct tcmd {
    struct scsi_cmd cmd;
    uint8_t cdb[16];
    uint8_t sense[SCSI_SENSE_MAX];
    struct iovec iov;
    uint8_t *buf;
    size_t cap;
    atomic_int ndone;              /* done() calls */
    atomic_int order;              /* completion rank (1-based) */
    void (*hook)(struct tcmd *t);  /* called first thing in done() */
    void *user;
};

static atomic_int td_rank;
static pthread_mutex_t td_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t td_cond = PTHREAD_COND_INITIALIZER;

static inline void td_done(struct scsi_cmd *cmd)
{
    struct tcmd *t = cmd->priv;
    if (t->hook)
        t->hook(t);
    atomic_store(&t->order, atomic_fetch_add(&td_rank, 1) + 1);
    pthread_mutex_lock(&td_lock);
    atomic_fetch_add(&t->ndone, 1);
    pthread_cond_broadcast(&td_cond);
    pthread_mutex_unlock(&td_lock);
}

static inline void td_init(struct tcmd *t, size_t cap)
{
    memset(t, 0, sizeof(*t));
    t->buf = calloc(1, cap ? cap : 1);
    t->cap = cap;
    t->cmd.sense = t->sense;
    t->cmd.done = td_done;
    t->cmd.priv = t;
    t->cmd.attr = SCSI_TASK_SIMPLE;
}

static inline void td_free(struct tcmd *t)
{
    free(t->buf);
    t->buf = NULL;
}

/* Ready t for a new submission: CDB of len bytes, len data bytes. */
static inline void td_set(struct tcmd *t, int cdb_len, enum scsi_dir dir, size_t len)
{
    t->iov.iov_base = t->buf;
    t->iov.iov_len = len;
    t->cmd.cdb = t->cdb;
    t->cmd.cdb_len = (uint32_t)cdb_len;
    t->cmd.data = iov_view_make(&t->iov, 1, len);
    t->cmd.dir = dir;
    atomic_store(&t->ndone, 0);
}

static inline void td_rw16(struct tcmd *t, bool write, uint64_t lba, uint32_t n, uint32_t lbs, bool fua)
{
    memset(t->cdb, 0, 16);
    t->cdb[0] = write ? 0x8a : 0x88;
    t->cdb[1] = fua ? 0x08 : 0;
    td_be(t->cdb + 2, lba, 8);
    td_be(t->cdb + 10, n, 4);
    td_set(t, 16, write ? SCSI_DIR_TO_DEV : SCSI_DIR_FROM_DEV, (size_t)n * lbs);
}

/* COMPARE AND WRITE: n blocks to compare, then n to write, in buf. */
static inline void td_caw(struct tcmd *t, uint64_t lba, uint8_t n, uint32_t lbs)
{
    memset(t->cdb, 0, 16);
    t->cdb[0] = 0x89;
    td_be(t->cdb + 2, lba, 8);
    t->cdb[13] = n;
    td_set(t, 16, SCSI_DIR_TO_DEV, 2 * (size_t)n * lbs);
}

/* WRITE SAME(16): one block of data in buf unless ndob. */
static inline void td_ws16(struct tcmd *t, uint64_t lba, uint32_t n, bool unmap, bool ndob, uint32_t lbs)
{
    memset(t->cdb, 0, 16);
    t->cdb[0] = 0x93;
    t->cdb[1] = (unmap ? 0x08 : 0) | (ndob ? 0x01 : 0);
    td_be(t->cdb + 2, lba, 8);
    td_be(t->cdb + 10, n, 4);
    td_set(t, 16, ndob ? SCSI_DIR_NONE : SCSI_DIR_TO_DEV, ndob ? 0 : lbs);
}

/* UNMAP of n (lba, count) descriptors, put in buf. */
static inline void td_unmap(struct tcmd *t, const uint64_t *lba, const uint32_t *cnt, int n)
{
    size_t len = 8 + 16 * (size_t)n;
    memset(t->buf, 0, len);
    td_be(t->buf, len - 2, 2);
    td_be(t->buf + 2, len - 8, 2);
    for (int i = 0; i < n; i++) {
        td_be(t->buf + 8 + 16 * i, lba[i], 8);
        td_be(t->buf + 16 + 16 * i, cnt[i], 4);
    }
    memset(t->cdb, 0, 16);
    t->cdb[0] = 0x42;
    td_be(t->cdb + 7, len, 2);
    td_set(t, 10, SCSI_DIR_TO_DEV, len);
}

static inline void td_sync16(struct tcmd *t)
{
    memset(t->cdb, 0, 16);
    t->cdb[0] = 0x91;
    td_set(t, 16, SCSI_DIR_NONE, 0);
}

static inline void td_tur(struct tcmd *t)
{
    memset(t->cdb, 0, 16);
    td_set(t, 6, SCSI_DIR_NONE, 0);
}

/* READ CAPACITY(16) into buf (32 bytes). */
static inline void td_rc16(struct tcmd *t)
{
    memset(t->cdb, 0, 16);
    t->cdb[0] = 0x9e;
    t->cdb[1] = 0x10;
    td_be(t->cdb + 10, 32, 4);
    td_set(t, 16, SCSI_DIR_FROM_DEV, 32);
}

static inline void td_wait(struct tcmd *t)
{
    pthread_mutex_lock(&td_lock);
    while (atomic_load(&t->ndone) == 0)
        pthread_cond_wait(&td_cond, &td_lock);
    pthread_mutex_unlock(&td_lock);
}

static inline void td_run(struct scsi_disp *d, struct scsi_lun *lun, struct tcmd *t)
{
    scsi_submit(d, lun, &t->cmd);
    td_wait(t);
}

/* Sense key, ASC and ASCQ of a CHECK CONDITION (fixed or descriptor). */
static inline void td_sense(const struct tcmd *t, int *key, int *asc, int *ascq)
{
    const uint8_t *s = t->sense;
    *key = *asc = *ascq = -1;
    if (t->cmd.sense_len < 4)
        return;
    if ((s[0] & 0x7f) >= 0x72) {
        *key = s[1] & 0xf, *asc = s[2], *ascq = s[3];
    } else if (t->cmd.sense_len >= 14) {
        *key = s[2] & 0xf, *asc = s[12], *ascq = s[13];
    }
}

/* The INFORMATION field of fixed sense (with VALID), -1 if none. */
static inline int64_t td_sense_info(const struct tcmd *t)
{
    const uint8_t *s = t->sense;
    if (t->cmd.sense_len < 7 || (s[0] & 0x7f) >= 0x72 || !(s[0] & 0x80))
        return -1;
    return (int64_t)td_get_be(s + 3, 4);
}

/* TEST UNIT READY until GOOD (eats the power-on unit attention). */
static inline int td_ready(struct scsi_disp *d, struct scsi_lun *lun)
{
    struct tcmd t;
    td_init(&t, 0);
    int status = -1;
    for (int i = 0; i < 8 && status != SCSI_STATUS_GOOD; i++) {
        td_tur(&t);
        td_run(d, lun, &t);
        status = t.cmd.status;
    }
    td_free(&t);
    return status == SCSI_STATUS_GOOD ? 0 : -1;
}

#endif
