/* A TCMU device: ring entries become SCSI commands on the dispatcher, and
 * completions go back into the ring from the worker that finished them. */
#define _GNU_SOURCE
#include "tcmu/dev.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tcmu/uapi.h"
#include "util/log.h"

#define CTX_CHUNK 64

/* A request slot: everything one command in flight needs. */
struct tcmu_ctx {
    struct scsi_cmd cmd;
    struct tcmu_dev *dev;
    struct tcmu_ctx *next_free;
    bool busy;                      /* submitted, not yet released */
    uint8_t sense[SCSI_SENSE_MAX];
    struct tcmu_req req;
};

int tcmu_dev_init(struct tcmu_dev *d, void *map, uint64_t size, const char *name,
                  struct scsi_disp *disp, struct scsi_lun *lun, void (*kick)(void *),
                  void *kick_arg, struct scuse_err *err)
{
    memset(d, 0, sizeof(*d));
    int r = tcmu_ring_init(&d->ring, map, size, name, kick, kick_arg, err);
    if (r < 0)
        return r;
    d->disp = disp;
    d->lun = lun;
    /* With out-of-order completion a command that runs long gives its
     * ring slot to one that finished, so the ring does not bound the
     * commands in flight: the kernel's 16-bit cmd_ids do (one chunk more
     * covers slots whose completion is being released). */
    d->max_chunks = 65536 / CTX_CHUNK + 1;
    d->chunks = calloc(d->max_chunks, sizeof(*d->chunks));
    if (!d->chunks) {
        tcmu_ring_fini(&d->ring);
        return err_set(err, -ENOMEM, "%s: out of memory for request slots", name);
    }
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->idle, NULL);
    return 0;
}

void tcmu_dev_drain(struct tcmu_dev *d)
{
    pthread_mutex_lock(&d->lock);
    while (d->inflight)
        pthread_cond_wait(&d->idle, &d->lock);
    pthread_mutex_unlock(&d->lock);
}

void tcmu_dev_set_lun(struct tcmu_dev *d, struct scsi_lun *lun)
{
    pthread_mutex_lock(&d->lock);
    d->lun = lun;
    pthread_mutex_unlock(&d->lock);
}

void tcmu_dev_fini(struct tcmu_dev *d)
{
    if (!d->chunks)
        return;
    tcmu_dev_drain(d);
    for (unsigned i = 0; i < d->n_chunks; i++) {
        for (unsigned j = 0; j < CTX_CHUNK; j++)
            tcmu_req_fini(&d->chunks[i][j].req);
        free(d->chunks[i]);
    }
    free(d->chunks);
    d->chunks = NULL;
    tcmu_ring_fini(&d->ring);
    pthread_cond_destroy(&d->idle);
    pthread_mutex_destroy(&d->lock);
}

/* A free request slot; a new chunk when none is left (pump thread only,
 * the one thread that adds chunks). */
static struct tcmu_ctx *ctx_get(struct tcmu_dev *d)
{
    pthread_mutex_lock(&d->lock);
    struct tcmu_ctx *c = d->free;
    if (c)
        d->free = c->next_free;
    pthread_mutex_unlock(&d->lock);
    if (c || d->n_chunks == d->max_chunks)
        return c;
    struct tcmu_ctx *chunk = calloc(CTX_CHUNK, sizeof(*chunk));
    if (!chunk)
        return NULL;
    for (unsigned j = 0; j < CTX_CHUNK; j++) {
        chunk[j].dev = d;
        tcmu_req_init(&chunk[j].req);
    }
    pthread_mutex_lock(&d->lock);
    d->chunks[d->n_chunks++] = chunk;
    for (unsigned j = 1; j < CTX_CHUNK; j++) {
        chunk[j].next_free = d->free;
        d->free = &chunk[j];
    }
    pthread_mutex_unlock(&d->lock);
    return &chunk[0];
}

static void ctx_put(struct tcmu_dev *d, struct tcmu_ctx *c)
{
    pthread_mutex_lock(&d->lock);
    if (c->busy) {
        c->busy = false;
        if (--d->inflight == 0)
            pthread_cond_broadcast(&d->idle);
    }
    c->next_free = d->free;
    d->free = c;
    pthread_mutex_unlock(&d->lock);
}

/* Completion, on the worker that ran the command: into the ring, and
 * nothing else (a done() returns promptly). The SCSI layer resolved the
 * direction (SCSI_DIR_BY_CDB) when it decoded the CDB. */
static void on_done(struct scsi_cmd *cmd)
{
    struct tcmu_ctx *c = cmd->priv;
    struct tcmu_dev *d = c->dev;
    bool in = cmd->dir == SCSI_DIR_FROM_DEV;
    tcmu_ring_complete(&d->ring, &c->req, cmd->status, c->sense, cmd->sense_len, in,
                       in ? cmd->xfer : 0);
    ctx_put(d, c);
}

static void submit(struct tcmu_dev *d, struct tcmu_ctx *c)
{
    struct scsi_cmd *cmd = &c->cmd;
    struct tcmu_req *req = &c->req;
    cmd->cdb = req->cdb;
    cmd->cdb_len = req->cdb_len;
    cmd->data = iov_view_make(req->iov, (int)req->iov_cnt, req->data_len);
    /* The entry gives the buffer, not its direction: the SCSI layer
     * knows it from the CDB. The ring has no task attributes (LIO orders
     * nothing for a pass-through device): every command is SIMPLE. */
    cmd->dir = SCSI_DIR_BY_CDB;
    cmd->sense = c->sense;
    cmd->attr = SCSI_TASK_SIMPLE;
    cmd->done = on_done;
    cmd->priv = c;
    pthread_mutex_lock(&d->lock);
    cmd->tag = ++d->seq << 16 | req->cmd_id;
    c->busy = true;
    d->inflight++;
    d->n_cmds++;
    struct scsi_lun *lun = d->lun;
    pthread_mutex_unlock(&d->lock);
    if (!lun) {
        uint32_t n = scsi_sense_answer(SCSI_ANSWER_NO_MEDIUM, c->sense);
        tcmu_ring_complete(&d->ring, req, SCSI_STATUS_CHECK_CONDITION, c->sense, n, false, 0);
        ctx_put(d, c);
        return;
    }
    scsi_submit(d->disp, lun, cmd);
}

/* The tag of the command in flight with this cmd_id. */
static bool find_tag(struct tcmu_dev *d, uint16_t id, uint64_t *tag)
{
    bool found = false;
    pthread_mutex_lock(&d->lock);
    for (unsigned i = 0; i < d->n_chunks && !found; i++) {
        for (unsigned j = 0; j < CTX_CHUNK; j++) {
            struct tcmu_ctx *c = &d->chunks[i][j];
            if (c->busy && c->req.cmd_id == id) {
                *tag = c->cmd.tag;
                found = true;
                break;
            }
        }
    }
    pthread_mutex_unlock(&d->lock);
    return found;
}

static const char *tmr_name(uint8_t type)
{
    switch (type) {
    case TCMU_TMR_ABORT_TASK: return "ABORT TASK";
    case TCMU_TMR_ABORT_TASK_SET: return "ABORT TASK SET";
    case TCMU_TMR_CLEAR_ACA: return "CLEAR ACA";
    case TCMU_TMR_CLEAR_TASK_SET: return "CLEAR TASK SET";
    case TCMU_TMR_LUN_RESET: return "LOGICAL UNIT RESET";
    case TCMU_TMR_TARGET_WARM_RESET: return "TARGET WARM RESET";
    case TCMU_TMR_TARGET_COLD_RESET: return "TARGET COLD RESET";
    case TCMU_TMR_LUN_RESET_PRO: return "reset by PERSISTENT RESERVE OUT";
    default: return "unknown task management function";
    }
}

/* The kernel names the commands on the ring that the function aborted:
 * those that have not started are dropped (they complete with TASK
 * ABORTED, which the kernel expects of an aborted command); those running
 * finish (a SANITIZE ends at once and its sanitize goes on). A reset
 * returns the unit to its power-on state but raises no unit attention:
 * LIO's core gives every I_T nexus the reset's own (29/03), and a second
 * one from scuse would reach an initiator that has already seen it. */
static void handle_tmr(struct tcmu_dev *d, const struct tcmu_tmr *t)
{
    unsigned found = 0, aborted = 0;
    pthread_mutex_lock(&d->lock);
    d->n_tmrs++;
    struct scsi_lun *lun = d->lun;
    pthread_mutex_unlock(&d->lock);
    for (uint32_t i = 0; i < t->cnt; i++) {
        uint64_t tag;
        if (!find_tag(d, t->ids[i], &tag))
            continue;
        found++;
        if (lun && scsi_abort(d->disp, lun, tag))
            aborted++;
    }
    bool reset = t->type == TCMU_TMR_LUN_RESET || t->type == TCMU_TMR_TARGET_WARM_RESET ||
                 t->type == TCMU_TMR_TARGET_COLD_RESET;
    if (reset && lun)
        scsi_lun_reset_state(lun);
    log_info("tcmu %s: %s naming %u commands: %u in flight, %u aborted before they started",
             d->ring.name, tmr_name(t->type), t->cnt, found, aborted);
}

int tcmu_dev_pump(struct tcmu_dev *d)
{
    int taken = 0;
    struct tcmu_ctx *c = NULL;
    for (;;) {
        if (!c && !(c = ctx_get(d)))
            return taken ? taken : -ENOMEM;
        struct tcmu_tmr tmr;
        switch (tcmu_ring_next(&d->ring, &c->req, &tmr)) {
        case TCMU_NEXT_EMPTY:
            ctx_put(d, c);
            return taken;
        case TCMU_NEXT_BROKEN:
            ctx_put(d, c);
            return -EIO;
        case TCMU_NEXT_FAILED:
            taken++;
            break;
        case TCMU_NEXT_TMR:
            taken++;
            handle_tmr(d, &tmr);
            break;
        case TCMU_NEXT_CMD:
            taken++;
            submit(d, c);
            c = NULL;
            break;
        }
    }
}
