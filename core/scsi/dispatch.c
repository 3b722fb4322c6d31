/* The dispatcher: a pool of worker threads running prepared commands of
 * any number of LUNs, in the order dispatch_queue.c allows.
 *
 * One mutex per dispatcher guards the LUN queues and the list of LUNs
 * with work. A command costs two critical sections besides its submit:
 * a worker finishes the command it ran and takes the next one in the same
 * section, then calls done() and runs the next command without the lock.
 * What happens after done() returned (counts a reset or destroy waits on)
 * is recorded at the worker's next critical section, so when those return
 * every done() they waited for has returned too.
 *
 * Nothing is allocated per command: commands are the transport's memory,
 * queues run through cmd->next, and the per-LUN state is allocated once,
 * when the LUN is attached (scsi_lun_disp_slot).
 *
 * The lock is adaptive (spins briefly before sleeping): a command from the
 * page cache takes about a microsecond, so the lock changes hands more
 * often than a sleep and wake-up can pay for. Measured with `scuse bench`
 * (2-CPU VM, page-cached 1 GiB qcow2, 4 KiB QD32 reads, 3 workers): 780k
 * IOPS with a plain mutex, 1.12M adaptive, and CPU time per GiB the same.
 *
 * Worker count: see default_workers(). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scsi/dispatch.h"
#include "scsi/scsi_int.h"
#include "util/log.h"

struct scsi_disp {
    pthread_mutex_t lock;
    pthread_cond_t work;           /* workers wait here for commands */
    pthread_cond_t quiet;          /* reset, detach and destroy wait here */
    struct scsi_disp_lun *ready_head, *ready_tail; /* LUNs with runnable commands */
    struct scsi_disp_lun *all;
    unsigned idle;                 /* workers waiting on work */
    unsigned quiet_waiters;
    bool stopping;
    unsigned nworkers;
    struct disp_worker *workers;
};

struct disp_worker {
    struct scsi_disp *d;
    pthread_t thread;
    /* The LUN of the command whose done() this worker calls (NULL: none),
     * and whether a reset waits for that done() to return. */
    struct scsi_disp_lun *in_done;
    bool drain;
    uint64_t done_tag;              /* the tag of that command */
};

static void ready_push(struct scsi_disp *d, struct scsi_disp_lun *q)
{
    if (q->on_ready || !q->n_runnable)
        return;
    q->on_ready = true;
    q->ready_next = NULL;
    if (d->ready_tail)
        d->ready_tail->ready_next = q;
    else
        d->ready_head = q;
    d->ready_tail = q;
}

static void wake(struct scsi_disp *d, unsigned n)
{
    if (n >= 2 && d->idle >= 2)
        pthread_cond_broadcast(&d->work);
    else if (n && d->idle)
        pthread_cond_signal(&d->work);
}

/* The next command of the first LUN with work; that LUN goes to the back
 * of the list if it has more, so LUNs take turns. */
static struct scsi_cmd *take(struct scsi_disp *d, struct scsi_disp_lun **qp)
{
    struct scsi_disp_lun *q = d->ready_head;
    if (!q)
        return NULL;
    struct scsi_cmd *cmd = disp_queue_take(q);
    d->ready_head = q->ready_next;
    if (!d->ready_head)
        d->ready_tail = NULL;
    q->on_ready = false;
    ready_push(d, q);
    *qp = q;
    return cmd;
}

/* w's done() returned: count it (lock held). */
static void record(struct scsi_disp *d, struct disp_worker *w)
{
    struct scsi_disp_lun *q = w->in_done;
    if (!q)
        return;
    q->n_inflight--;
    if (w->drain)
        q->n_drain--;
    if (d->quiet_waiters && (q->n_inflight == 0 || (w->drain && q->n_drain == 0)))
        pthread_cond_broadcast(&d->quiet);
    w->in_done = NULL;
    w->drain = false;
}

/* Set while a worker with nothing else to run calls a done(): the first
 * command that done() submits to the same dispatcher is left for that
 * worker, which takes it right after done() returns, instead of waking
 * another worker for it (a wake-up and a switch per command at QD1).
 * A done() is expected to return promptly (it may resubmit, not wait). */
static __thread struct scsi_disp *absorb_for;

static void run(struct scsi_disp_lun *q, struct scsi_cmd *cmd)
{
    if (disp_phase(cmd) == DISP_ABORTING) {
        scsi_cmd_drop(q->lun, cmd);  /* what its prepare took (a removable medium) */
        cmd->status = SCSI_STATUS_TASK_ABORTED;
        cmd->sense_len = 0;
        cmd->xfer = 0;
        cmd->resid = (uint32_t)cmd->data.len;
        cmd->overflow = false;
    } else if (cmd->access != SCSI_ACCESS_DONE) {
        scsi_cmd_execute(q->lun, cmd);
    }
}

/* A finished command in its LUN's counters (lock held). */
static void count(struct scsi_disp_lun *q, const struct scsi_cmd *c)
{
    struct scsi_lun_stats *st = &q->stats;
    st->commands++;
    if (c->status != SCSI_STATUS_GOOD) {
        st->errors++;
        return;
    }
    switch (c->access) {
    case SCSI_ACCESS_READ:
        st->reads++;
        st->read_blocks += c->nblocks;
        break;
    case SCSI_ACCESS_WRITE:
    case SCSI_ACCESS_ATOMIC:
        st->writes++;
        st->write_blocks += c->nblocks;
        break;
    case SCSI_ACCESS_FLUSH:
        st->flushes++;
        break;
    default:
        break;
    }
}

static void *worker_main(void *arg)
{
    struct disp_worker *w = arg;
    struct scsi_disp *d = w->d;
    struct scsi_cmd *ran = NULL;
    struct scsi_disp_lun *ran_q = NULL;
    pthread_mutex_lock(&d->lock);
    for (;;) {
        record(d, w);
        struct scsi_cmd *fin = ran;
        if (fin) {
            count(ran_q, fin);
            unsigned woken = disp_queue_finish(ran_q, fin);
            ready_push(d, ran_q);
            wake(d, woken);
            w->in_done = ran_q;
            w->drain = fin->state & DISP_DRAIN;
            w->done_tag = fin->tag;
        }
        ran = NULL;
        struct scsi_disp_lun *next_q = NULL;
        struct scsi_cmd *next = take(d, &next_q);
        if (!fin && !next) {
            if (d->stopping)
                break;
            d->idle++;
            pthread_cond_wait(&d->work, &d->lock);
            d->idle--;
            continue;
        }
        pthread_mutex_unlock(&d->lock);
        if (fin) {
            absorb_for = next ? NULL : d;
            fin->done(fin);
            absorb_for = NULL;
        }
        if (next) {
            run(next_q, next);
            ran = next;
            ran_q = next_q;
        }
        pthread_mutex_lock(&d->lock);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

static unsigned default_workers(void)
{
    /* Measured with `scuse bench --workers N --qd 32` on a 2-CPU VM,
     * best of 3, IOPS:
     *   workers                         1      2      3      4      6
     *   4 KiB reads, page-cached qcow2  1.25M  1.16M  1.12M  1.09M  1.13M
     *   4 KiB reads, one per compressed
     *   cluster (inflate-bound)         11.8k  21.8k  20.9k  21.8k  21.5k
     *   64 KiB reads, page-cached       118k   211k   207k   208k   209k
     * One worker per CPU is needed for work that takes CPU (inflate,
     * copies); beyond that the count hardly matters while data comes from
     * the page cache. One more than CPUs keeps the CPUs busy while a
     * worker waits for the disk or a lock. Commands that wait on a slow
     * disk want more: set workers. */
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    long w = (n > 0 ? n : 1) + DISP_EXTRA_WORKERS;
    return w < DISP_MIN_WORKERS ? DISP_MIN_WORKERS : w > DISP_MAX_WORKERS ? DISP_MAX_WORKERS
                                                                          : (unsigned)w;
}

int scsi_disp_create(const struct scsi_disp_config *cfg, struct scsi_disp **out,
                     struct scuse_err *err)
{
    *out = NULL;
    unsigned n = cfg && cfg->workers ? cfg->workers : default_workers();
    if (n > DISP_MAX_WORKERS)
        return err_set(err, -EINVAL, "%u dispatcher workers asked for, at most %u", n,
                       DISP_MAX_WORKERS);
    struct scsi_disp *d = calloc(1, sizeof(*d));
    struct disp_worker *w = calloc(n, sizeof(*w));
    if (!d || !w) {
        free(d);
        free(w);
        return err_set(err, -ENOMEM, "out of memory for the dispatcher");
    }
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&d->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    pthread_cond_init(&d->work, NULL);
    pthread_cond_init(&d->quiet, NULL);
    d->workers = w;
    for (unsigned i = 0; i < n; i++) {
        w[i].d = d;
        int r = pthread_create(&w[i].thread, NULL, worker_main, &w[i]);
        if (r != 0) {
            d->nworkers = i;
            scsi_disp_destroy(d);
            return err_set(err, -r, "cannot start dispatcher worker %u: %s", i, strerror(r));
        }
        d->nworkers = i + 1;
    }
    *out = d;
    return 0;
}

unsigned scsi_disp_workers(const struct scsi_disp *d)
{
    return d->nworkers;
}

/* Wait (lock held) until q has no command whose done() has not returned. */
static void wait_lun_idle(struct scsi_disp *d, struct scsi_disp_lun *q)
{
    d->quiet_waiters++;
    while (q->n_inflight)
        pthread_cond_wait(&d->quiet, &d->lock);
    d->quiet_waiters--;
}

static void forget(struct scsi_disp *d, struct scsi_disp_lun *q)
{
    for (struct scsi_disp_lun **p = &d->all; *p; p = &(*p)->all_next) {
        if (*p == q) {
            *p = q->all_next;
            break;
        }
    }
    *scsi_lun_disp_slot(q->lun) = NULL;
    free(q);
}

void scsi_disp_destroy(struct scsi_disp *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->lock);
    while (d->all) {
        struct scsi_disp_lun *q = d->all;
        wait_lun_idle(d, q);
        forget(d, q);
    }
    d->stopping = true;
    pthread_cond_broadcast(&d->work);
    pthread_mutex_unlock(&d->lock);
    for (unsigned i = 0; i < d->nworkers; i++)
        pthread_join(d->workers[i].thread, NULL);
    pthread_cond_destroy(&d->work);
    pthread_cond_destroy(&d->quiet);
    pthread_mutex_destroy(&d->lock);
    free(d->workers);
    free(d);
}

/* lun's queue in d, attaching it on first use (lock held). *out is the
 * queue, or NULL when this fails: set on every path, so no caller reads
 * an unset pointer (GCC -O3 cannot see through err_set's return). */
static int lun_queue(struct scsi_disp *d, struct scsi_lun *lun, struct scsi_disp_lun **out,
                     struct scuse_err *err)
{
    struct scsi_disp_lun **slot = scsi_lun_disp_slot(lun);
    *out = NULL;
    if (*slot) {
        if ((*slot)->disp != d)
            return err_set(err, -EBUSY, "the LUN is attached to another dispatcher");
        *out = *slot;
        return 0;
    }
    struct scsi_disp_lun *q = calloc(1, sizeof(*q));
    if (!q)
        return err_set(err, -ENOMEM, "out of memory for a LUN queue");
    q->lun = lun;
    q->disp = d;
    q->all_next = d->all;
    d->all = q;
    *slot = q;
    *out = q;
    return 0;
}

int scsi_disp_attach(struct scsi_disp *d, struct scsi_lun *lun, struct scuse_err *err)
{
    struct scsi_disp_lun *q;
    pthread_mutex_lock(&d->lock);
    int r = lun_queue(d, lun, &q, err);
    pthread_mutex_unlock(&d->lock);
    return r;
}

void scsi_disp_detach(struct scsi_disp *d, struct scsi_lun *lun)
{
    pthread_mutex_lock(&d->lock);
    struct scsi_disp_lun *q = *scsi_lun_disp_slot(lun);
    if (q && q->disp == d) {
        wait_lun_idle(d, q);
        forget(d, q);
    }
    pthread_mutex_unlock(&d->lock);
}

void scsi_disp_lun_stats(struct scsi_disp *d, struct scsi_lun *lun, struct scsi_lun_stats *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&d->lock);
    struct scsi_disp_lun *q = *scsi_lun_disp_slot(lun);
    if (q && q->disp == d)
        *out = q->stats;
    pthread_mutex_unlock(&d->lock);
}

void scsi_submit(struct scsi_disp *d, struct scsi_lun *lun, struct scsi_cmd *cmd)
{
    cmd->status = SCSI_STATUS_GOOD;
    cmd->sense_len = 0;
    cmd->xfer = 0;
    cmd->resid = 0;
    cmd->overflow = false;
    cmd->next = NULL;
    scsi_cmd_prepare(lun, cmd);

    pthread_mutex_lock(&d->lock);
    struct scsi_disp_lun *q;
    struct scuse_err err = { 0 };
    if (lun_queue(d, lun, &q, &err) < 0) {
        pthread_mutex_unlock(&d->lock);
        log_error("scsi: command refused with BUSY: %s", err.msg);
        scsi_cmd_drop(lun, cmd);
        cmd->status = SCSI_STATUS_BUSY;
        cmd->sense_len = 0;
        cmd->resid = (uint32_t)cmd->data.len;
        cmd->done(cmd);
        return;
    }
    q->n_inflight++;
    if (disp_queue_add(q, cmd)) {
        ready_push(d, q);
        if (absorb_for == d)
            absorb_for = NULL;  /* this worker takes it next */
        else
            wake(d, 1);
    }
    pthread_mutex_unlock(&d->lock);
}

bool scsi_abort(struct scsi_disp *d, struct scsi_lun *lun, uint64_t tag)
{
    bool found = false;
    pthread_mutex_lock(&d->lock);
    struct scsi_disp_lun *q = *scsi_lun_disp_slot(lun);
    if (q && q->disp == d) {
        struct scsi_cmd *cmd = disp_queue_find_unstarted(q, tag);
        if (cmd) {
            wake(d, disp_queue_abort(q, cmd));
            ready_push(d, q);
            found = true;
        } else {
            found = sbc_sanitize_detach(lun, &tag);  /* a running one that may end early */
        }
    }
    pthread_mutex_unlock(&d->lock);
    return found;
}

/* Have a reset or an abort wait for c: abort it if it has not started,
 * and count it until its done() returns (lock held). */
static unsigned drain_cmd(struct scsi_disp_lun *q, struct scsi_cmd *c)
{
    unsigned woken = 0;
    int ph = disp_phase(c);
    if (ph == DISP_WAITING || ph == DISP_READY)
        woken = disp_queue_abort(q, c);
    else if (ph == DISP_RUNNING)
        sbc_sanitize_detach(q->lun, &c->tag);   /* ends now; the sanitize goes on */
    if (!(c->state & DISP_DRAIN)) {
        c->state |= DISP_DRAIN;
        q->n_drain++;
    }
    return woken;
}

/* The same for commands of q that finished and whose done() is still
 * running on a worker: all of them, or those with *tag (lock held). */
static void drain_in_done(struct scsi_disp *d, struct scsi_disp_lun *q, const uint64_t *tag)
{
    for (unsigned i = 0; i < d->nworkers; i++) {
        struct disp_worker *w = &d->workers[i];
        if (w->in_done == q && !w->drain && (!tag || w->done_tag == *tag)) {
            w->drain = true;
            q->n_drain++;
        }
    }
}

static void wait_drained(struct scsi_disp *d, struct scsi_disp_lun *q)
{
    d->quiet_waiters++;
    while (q->n_drain)
        pthread_cond_wait(&d->quiet, &d->lock);
    d->quiet_waiters--;
}

static struct scsi_disp_lun *lun_of(struct scsi_disp *d, struct scsi_lun *lun)
{
    struct scsi_disp_lun *q = *scsi_lun_disp_slot(lun);
    return q && q->disp == d ? q : NULL;
}

static struct scsi_cmd *find_tag(struct scsi_disp_lun *q, uint64_t tag)
{
    for (struct scsi_cmd *c = q->head; c; c = c->next)
        if (c->tag == tag)
            return c;
    return NULL;
}

void scsi_lun_reset(struct scsi_disp *d, struct scsi_lun *lun)
{
    scsi_abort_task_set(d, lun);
    scsi_lun_raise_ua(lun, SCSI_UA_POWER_ON);
}

void scsi_abort_task_set(struct scsi_disp *d, struct scsi_lun *lun)
{
    pthread_mutex_lock(&d->lock);
    struct scsi_disp_lun *q = lun_of(d, lun);
    if (q) {
        unsigned woken = 0;
        for (struct scsi_cmd *c = q->head; c; c = c->next)
            woken += drain_cmd(q, c);
        drain_in_done(d, q, NULL);
        ready_push(d, q);
        wake(d, woken);
        wait_drained(d, q);
    }
    pthread_mutex_unlock(&d->lock);
}

bool scsi_abort_task(struct scsi_disp *d, struct scsi_lun *lun, uint64_t tag)
{
    bool found = false;
    pthread_mutex_lock(&d->lock);
    struct scsi_disp_lun *q = lun_of(d, lun);
    if (q) {
        struct scsi_cmd *c = find_tag(q, tag);
        found = c != NULL;
        if (c) {
            wake(d, drain_cmd(q, c));
            ready_push(d, q);
        }
        /* A command already finished whose done() still runs is waited
         * for too: the initiator must not see the abort answered first. */
        drain_in_done(d, q, &tag);
        wait_drained(d, q);
    }
    pthread_mutex_unlock(&d->lock);
    return found;
}

bool scsi_query_task(struct scsi_disp *d, struct scsi_lun *lun, uint64_t tag)
{
    pthread_mutex_lock(&d->lock);
    struct scsi_disp_lun *q = lun_of(d, lun);
    bool found = q && find_tag(q, tag);
    pthread_mutex_unlock(&d->lock);
    return found;
}

bool scsi_query_task_set(struct scsi_disp *d, struct scsi_lun *lun)
{
    pthread_mutex_lock(&d->lock);
    struct scsi_disp_lun *q = lun_of(d, lun);
    bool any = q && q->head;
    pthread_mutex_unlock(&d->lock);
    return any;
}
