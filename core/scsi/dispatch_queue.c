/* One LUN's queue and SCSI's ordering rules (see dispatch.h). No locks
 * here: dispatch.c holds the dispatcher's lock around every call.
 *
 * Invariant: a command that is not running counts in cmd->seq exactly the
 * active (not aborted) commands it conflicts with that are ahead of it in
 * the list, or running. So:
 *  - adding a command counts the conflicting ones ahead of it (for HEAD OF
 *    QUEUE, put at the front: the running ones) and, for HEAD OF QUEUE,
 *    adds itself to the counts of the conflicting commands behind it that
 *    have not started;
 *  - a running command that finishes was counted by every command not
 *    started that conflicts with it (one behind it counted it on arrival;
 *    one ahead of it can only be a HEAD OF QUEUE that came while it ran);
 *  - an aborted command was counted by the conflicting commands behind it
 *    that have not started (a running one behind it would have waited).
 * The hot case (reads, nothing that writes in the queue) costs no scan. */
#include "scsi/dispatch.h"

static bool is_ordered(const struct scsi_cmd *c)
{
    return c->attr == SCSI_TASK_ORDERED || c->access == SCSI_ACCESS_BARRIER;
}

static bool writes(const struct scsi_cmd *c)
{
    return c->access == SCSI_ACCESS_WRITE || c->access == SCSI_ACCESS_ATOMIC;
}

static bool ranged(const struct scsi_cmd *c)
{
    return c->access == SCSI_ACCESS_READ || writes(c);
}

/* May conflict with a plain read: what the no-scan fast path looks for. */
static bool exclusive(const struct scsi_cmd *c)
{
    return c->access != SCSI_ACCESS_DONE && (is_ordered(c) || writes(c));
}

static bool overlap(const struct scsi_cmd *a, const struct scsi_cmd *b)
{
    if (!a->nblocks || !b->nblocks)
        return false;
    /* Differences, not ends: prepare bounds the ranges, but a sum could
     * still wrap for a range at the top of a 64-bit LBA space. */
    return a->lba >= b->lba ? a->lba - b->lba < b->nblocks : b->lba - a->lba < a->nblocks;
}

bool disp_conflict(const struct scsi_cmd *a, const struct scsi_cmd *b)
{
    if (a->access == SCSI_ACCESS_DONE || b->access == SCSI_ACCESS_DONE)
        return false;          /* answered by prepare: touches nothing */
    if (is_ordered(a) || is_ordered(b))
        return true;
    if (!ranged(a) || !ranged(b) || (!writes(a) && !writes(b)))
        return false;          /* NONE, FLUSH: no range; two reads share */
    return overlap(a, b);
}

static void set_phase(struct scsi_cmd *c, int phase)
{
    c->state = (c->state & ~DISP_PHASE_MASK) | phase;
}

/* cmd waited and counted one command less: may it start now? */
static unsigned unblock(struct scsi_disp_lun *q, struct scsi_cmd *c)
{
    if (--c->seq)
        return 0;
    set_phase(c, DISP_READY);
    q->n_waiting--;
    q->n_runnable++;
    return 1;
}

static void block(struct scsi_disp_lun *q, struct scsi_cmd *c)
{
    if (c->seq++ == 0) {
        set_phase(c, DISP_WAITING);
        q->n_runnable--;
        q->n_waiting++;
    }
}

static bool live(const struct scsi_cmd *c)
{
    int ph = disp_phase(c);
    return ph != DISP_ABORTED && ph != DISP_ABORTING;
}

bool disp_queue_add(struct scsi_disp_lun *q, struct scsi_cmd *cmd)
{
    bool hoq = cmd->attr == SCSI_TASK_HEAD_OF_QUEUE;
    bool excl = exclusive(cmd);
    uint64_t waits = 0;
    cmd->state = DISP_READY;
    if (q->n_excl || excl) {
        for (struct scsi_cmd *c = q->head; c; c = c->next) {
            if (!live(c) || !disp_conflict(c, cmd))
                continue;
            if (!hoq || disp_phase(c) == DISP_RUNNING)
                waits++;
            else
                block(q, c);   /* it now waits for the newcomer ahead of it */
        }
    }
    cmd->seq = waits;
    if (hoq) {
        cmd->next = q->head;
        q->head = cmd;
        if (!q->tail)
            q->tail = cmd;
    } else {
        cmd->next = NULL;
        if (q->tail)
            q->tail->next = cmd;
        else
            q->head = cmd;
        q->tail = cmd;
    }
    q->n_active++;
    if (excl)
        q->n_excl++;
    if (waits) {
        set_phase(cmd, DISP_WAITING);
        q->n_waiting++;
        return false;
    }
    q->n_runnable++;
    return true;
}

struct scsi_cmd *disp_queue_take(struct scsi_disp_lun *q)
{
    if (!q->n_runnable)
        return NULL;
    for (struct scsi_cmd *c = q->head; c; c = c->next) {
        int ph = disp_phase(c);
        if (ph == DISP_READY || ph == DISP_ABORTED) {
            q->n_runnable--;
            set_phase(c, ph == DISP_READY ? DISP_RUNNING : DISP_ABORTING);
            return c;
        }
    }
    return NULL; /* not reached: n_runnable says one exists */
}

static void unlink_cmd(struct scsi_disp_lun *q, struct scsi_cmd *cmd)
{
    struct scsi_cmd *prev = NULL;
    for (struct scsi_cmd *c = q->head; c; prev = c, c = c->next) {
        if (c != cmd)
            continue;
        if (prev)
            prev->next = c->next;
        else
            q->head = c->next;
        if (q->tail == c)
            q->tail = prev;
        c->next = NULL;
        q->n_active--;
        return;
    }
}

unsigned disp_queue_finish(struct scsi_disp_lun *q, struct scsi_cmd *cmd)
{
    unlink_cmd(q, cmd);
    if (!live(cmd))
        return 0; /* released when it was aborted */
    if (exclusive(cmd))
        q->n_excl--;
    unsigned woken = 0;
    if (q->n_waiting) {
        for (struct scsi_cmd *c = q->head; c; c = c->next)
            if (disp_phase(c) == DISP_WAITING && disp_conflict(cmd, c))
                woken += unblock(q, c);
    }
    return woken;
}

unsigned disp_queue_abort(struct scsi_disp_lun *q, struct scsi_cmd *cmd)
{
    int ph = disp_phase(cmd);
    if (ph == DISP_WAITING)
        q->n_waiting--;
    else
        q->n_runnable--;   /* READY: it stays runnable as ABORTED below */
    if (exclusive(cmd))
        q->n_excl--;
    set_phase(cmd, DISP_ABORTED);
    q->n_runnable++;
    unsigned woken = 1;
    if (q->n_waiting) {
        for (struct scsi_cmd *c = cmd->next; c; c = c->next)
            if (disp_phase(c) == DISP_WAITING && disp_conflict(cmd, c))
                woken += unblock(q, c);
    }
    return woken;
}

struct scsi_cmd *disp_queue_find_unstarted(struct scsi_disp_lun *q, uint64_t tag)
{
    for (struct scsi_cmd *c = q->head; c; c = c->next) {
        int ph = disp_phase(c);
        if (c->tag == tag && (ph == DISP_WAITING || ph == DISP_READY))
            return c;
    }
    return NULL;
}
