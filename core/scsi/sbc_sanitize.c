/* SANITIZE (SBC-4 5.30): OVERWRITE with the initialization pattern of the
 * parameter list (INVERT between passes, OVERWRITE COUNT passes), BLOCK
 * ERASE and CRYPTOGRAPHIC ERASE (on an image both are a zero write that
 * deallocates: afterwards every block reads zeros and no old data is left
 * in the image's clusters), and EXIT FAILURE MODE (a sanitize here never
 * ends in failure mode, so there is nothing to leave: GOOD).
 *
 * It runs as a barrier (no other command of the LUN runs beside it);
 * while it runs, the commands that arrive are answered NOT READY,
 * SANITIZE IN PROGRESS (INQUIRY, REPORT LUNS and REQUEST SENSE still
 * work). The sanitize runs on a thread of its own (the LUN's teardown
 * waits for it). With IMMED, status comes once the CDB and the parameters
 * are checked; without, the command waits for the sanitize, unless an
 * abort or a reset names it: the command then ends and the sanitize goes
 * on (SBC-4 4.11: an abort or a reset does not end a sanitize; under LIO
 * the abort would otherwise wait for the whole sanitize). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "scsi/scsi_int.h"
#include "util/log.h"

#define SA_OVERWRITE 0x01
#define SA_BLOCK_ERASE 0x02
#define SA_CRYPTO_ERASE 0x03
#define SA_EXIT_FAILURE_MODE 0x1f
#define OVERWRITE_HDR 4

SCSI_HANDLER(sbc_prep_sanitize)
{
    unsigned sa = cmd->cdb[1] & 0x1f;
    size_t plen = get_be16(cmd->cdb + 7);
    if (sa == SA_OVERWRITE) {
        /* The header and a pattern of 1..block size bytes. */
        if (plen <= OVERWRITE_HDR || plen > OVERWRITE_HDR + lun->block_size) {
            scsi_fail_cdb(lun, cmd, 7, -1);
            return;
        }
    } else if (plen != 0) {
        scsi_fail_cdb(lun, cmd, 7, -1);
        return;
    }
    if (sa == SA_EXIT_FAILURE_MODE) {
        scsi_good(cmd, 0, 0);
        return;
    }
    if (scsi_lun_wp(lun)) {
        scsi_fail_wp(lun, cmd);
        return;
    }
    if (sa == SA_OVERWRITE) {
        uint8_t h[OVERWRITE_HDR];
        if (scsi_data_len(cmd, SCSI_DIR_TO_DEV) < plen) {
            scsi_fail_short_data(lun, cmd, plen);
            return;
        }
        iov_view_to_buf(&cmd->data, 0, h, sizeof(h));
        size_t pat = get_be16(h + 2);
        if ((h[0] & 0x1f) == 0) {               /* OVERWRITE COUNT 0 */
            scsi_fail_param(lun, cmd, 0, 4);
            return;
        }
        if (h[0] & 0x60) {                      /* TEST: vendor's, not offered */
            scsi_fail_param(lun, cmd, 0, 6);
            return;
        }
        if (pat == 0 || pat > lun->block_size || pat + OVERWRITE_HDR != plen) {
            scsi_fail_param(lun, cmd, 2, -1);
            return;
        }
    }
    cmd->lba = 0;
    cmd->nblocks = lun->blocks;
    cmd->access = SCSI_ACCESS_BARRIER;
}

/* The whole medium with the block pat (pass by pass), or zeros. */
static int overwrite(struct scsi_lun *lun, const uint8_t *block, struct scuse_err *err)
{
    enum { CHUNK = 64 };
    size_t bsz = lun->block_size;
    uint8_t *buf = malloc(CHUNK * bsz);
    if (!buf)
        return err_set(err, -ENOMEM, "out of memory");
    for (unsigned i = 0; i < CHUNK; i++)
        memcpy(buf + i * bsz, block, bsz);
    int r = 0;
    for (uint64_t lba = 0; lba < lun->blocks && r == 0; lba += CHUNK) {
        uint64_t n = lun->blocks - lba < CHUNK ? lun->blocks - lba : CHUNK;
        r = blk_pwrite(lun->bs, lba << lun->shift, buf, (size_t)(n * bsz), 0, err);
    }
    free(buf);
    return r;
}

/* The sanitize itself, 0 or a negative errno (err says why). */
static int run(struct scsi_lun *lun, unsigned sa, const uint8_t *p, struct scuse_err *err)
{
    int r = 0;
    if (sa == SA_OVERWRITE) {
        uint8_t block[4096];
        size_t pat = get_be16(p + 2);
        /* The pattern repeated over the block; INVERT: every other pass
         * writes its complement, and the last pass is the pattern itself. */
        for (size_t i = 0; i < lun->block_size; i++)
            block[i] = p[OVERWRITE_HDR + i % pat];
        unsigned passes = p[0] & 0x1f;
        bool invert = p[0] & 0x80;
        for (unsigned k = 0; k < passes && r == 0; k++) {
            uint8_t b[4096];
            bool inv = invert && ((passes - 1 - k) & 1);
            for (size_t i = 0; i < lun->block_size; i++)
                b[i] = inv ? (uint8_t)~block[i] : block[i];
            r = overwrite(lun, b, err);
        }
    } else {
        r = blk_write_zeroes(lun->bs, 0, lun->blocks << lun->shift,
                             lun->lbpme ? BLK_ZERO_MAY_UNMAP : 0, err);
    }
    if (r == 0)
        r = blk_flush(lun->bs, err);
    return r;
}

/* A sanitize on its thread. A command without IMMED waits for it (waited
 * set): the thread then leaves the result in r/err and the waiter frees
 * the job; once nobody waits (IMMED, or the command was detached by an
 * abort or a reset) the thread logs a failure and frees it. */
struct sanitize_job {
    struct scsi_lun *lun;
    unsigned sa;
    uint64_t tag;
    bool waited, finished;
    int r;
    struct scuse_err err;
    uint8_t p[OVERWRITE_HDR + 4096];
};

static void *background(void *arg)
{
    struct sanitize_job *j = arg;
    struct scsi_lun *lun = j->lun;
    struct scuse_err err;
    err_clear(&err);
    int r = run(lun, j->sa, j->p, &err);
    pthread_mutex_lock(&lun->sanitize_lock);
    __atomic_store_n(&lun->sanitizing, false, __ATOMIC_RELEASE);
    bool waited = j->waited;
    if (waited) {
        j->r = r;
        j->err = err;
        j->finished = true;
        pthread_cond_broadcast(&lun->sanitize_cv);
    }
    pthread_mutex_unlock(&lun->sanitize_lock);
    if (!waited) {
        if (r < 0)
            log_error("SANITIZE of LUN %u failed: %s", lun->id, err.msg);
        free(j);
    }
    return NULL;
}

void sbc_sanitize_wait(struct scsi_lun *lun)
{
    if (lun->sanitize_thread_live) {
        pthread_join(lun->sanitize_thread, NULL);
        lun->sanitize_thread_live = false;
    }
}

bool sbc_sanitize_detach(struct scsi_lun *lun, const uint64_t *tag)
{
    bool hit = false;
    pthread_mutex_lock(&lun->sanitize_lock);
    struct sanitize_job *j = lun->sanitize_waiter;
    if (j && !j->finished && (!tag || j->tag == *tag)) {
        j->waited = false;          /* the thread frees it now */
        lun->sanitize_waiter = NULL;
        pthread_cond_broadcast(&lun->sanitize_cv);
        hit = true;
    }
    pthread_mutex_unlock(&lun->sanitize_lock);
    if (hit)
        log_info("SANITIZE of LUN %u: its command was aborted; the sanitize goes on", lun->id);
    return hit;
}

SCSI_HANDLER(sbc_exec_sanitize)
{
    unsigned sa = cmd->cdb[1] & 0x1f;
    bool immed = cmd->cdb[1] & 0x80;
    size_t plen = get_be16(cmd->cdb + 7);
    struct sanitize_job *j = calloc(1, sizeof(*j));
    if (!j) {
        scsi_fail_key(lun, cmd, SK_HARDWARE_ERROR, ASC_INTERNAL_TARGET_FAILURE);
        return;
    }
    j->lun = lun;
    j->sa = sa;
    j->tag = cmd->tag;
    j->waited = !immed;
    iov_view_to_buf(&cmd->data, 0, j->p, plen);
    sbc_sanitize_wait(lun);         /* the previous one ended: its flag is clear */
    __atomic_store_n(&lun->sanitizing, true, __ATOMIC_RELEASE);
    if (!immed) {
        pthread_mutex_lock(&lun->sanitize_lock);
        lun->sanitize_waiter = j;
        pthread_mutex_unlock(&lun->sanitize_lock);
    }
    if (pthread_create(&lun->sanitize_thread, NULL, background, j) != 0) {
        /* No thread: run it here (nothing can detach it then). */
        pthread_mutex_lock(&lun->sanitize_lock);
        lun->sanitize_waiter = NULL;
        pthread_mutex_unlock(&lun->sanitize_lock);
        err_clear(&j->err);
        j->r = run(lun, sa, j->p, &j->err);
        __atomic_store_n(&lun->sanitizing, false, __ATOMIC_RELEASE);
        j->finished = true;
    } else {
        lun->sanitize_thread_live = true;
        if (immed) {
            scsi_good_xfer(cmd, SCSI_DIR_TO_DEV, plen, plen);
            return;
        }
        pthread_mutex_lock(&lun->sanitize_lock);
        while (!j->finished && lun->sanitize_waiter == j)
            pthread_cond_wait(&lun->sanitize_cv, &lun->sanitize_lock);
        bool detached = !j->finished;
        lun->sanitize_waiter = NULL;
        pthread_mutex_unlock(&lun->sanitize_lock);
        if (detached) {
            /* An abort or a reset named this command: it ends; the job is
             * the thread's now. The transport drops this status. */
            cmd->status = SCSI_STATUS_TASK_ABORTED;
            cmd->sense_len = 0;
            cmd->xfer = 0;
            cmd->resid = (uint32_t)cmd->data.len;
            cmd->overflow = false;
            return;
        }
    }
    int r = j->r;
    struct scuse_err err = j->err;
    free(j);
    if (r < 0) {
        scsi_fail_errno(lun, cmd, r, true, 0, &err);
        return;
    }
    scsi_good_xfer(cmd, SCSI_DIR_TO_DEV, plen, plen);
}
