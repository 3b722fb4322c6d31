/* The removable medium of a cdrom LUN: the tray, the node in it, who is
 * reading it, and how an eject waits for them (see scsi.h, "Draining").
 *
 * Readers are counted without the LUN lock (the data path takes none):
 * a command adds itself to users, then checks ready; an eject clears
 * ready, then waits for users to reach zero. Both sides use sequentially
 * consistent atomics, so either the command sees ready cleared or the
 * eject sees the command counted. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "optical/disc.h"
#include "scsi/mmc.h"
#include "util/log.h"

enum scsi_device_type scsi_lun_device(const struct scsi_lun *lun) { return lun->cfg.device; }

/* ready follows the state (lock held). */
static void update_ready(struct scsi_lun *lun)
{
    bool r = lun->bs && !lun->tray_open && !lun->changing;
    __atomic_store_n(&lun->ready, r, __ATOMIC_SEQ_CST);
}

static enum scsi_medium_state state_locked(const struct scsi_lun *lun)
{
    if (lun->tray_open)
        return SCSI_MEDIUM_TRAY_OPEN;
    return lun->bs ? SCSI_MEDIUM_PRESENT : SCSI_MEDIUM_ABSENT;
}

enum scsi_medium_state scsi_lun_medium_state(const struct scsi_lun *lun)
{
    if (!lun->removable)
        return SCSI_MEDIUM_PRESENT;
    struct scsi_lun *l = (struct scsi_lun *)lun;   /* the lock, not the state */
    pthread_mutex_lock(&l->lock);
    enum scsi_medium_state st = state_locked(lun);
    pthread_mutex_unlock(&l->lock);
    return st;
}

bool scsi_lun_medium_locked(const struct scsi_lun *lun)
{
    struct scsi_lun *l = (struct scsi_lun *)lun;
    pthread_mutex_lock(&l->lock);
    bool p = lun->prevent;
    pthread_mutex_unlock(&l->lock);
    return p;
}

struct blk_node *scsi_lun_medium(const struct scsi_lun *lun)
{
    struct scsi_lun *l = (struct scsi_lun *)lun;
    pthread_mutex_lock(&l->lock);
    struct blk_node *bs = lun->bs;
    pthread_mutex_unlock(&l->lock);
    return bs;
}

bool scsi_medium_get(struct scsi_lun *lun, struct scsi_sense *s)
{
    __atomic_add_fetch(&lun->users, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&lun->ready, __ATOMIC_SEQ_CST))
        return true;
    scsi_medium_put(lun);
    memset(s, 0, sizeof(*s));
    s->key = SK_NOT_READY;
    /* MMC: tray open or closed; a change under way reads as the latter. */
    pthread_mutex_lock(&lun->lock);
    s->asc = lun->tray_open ? ASC_MEDIUM_NOT_PRESENT_TRAY_OPEN
                            : ASC_MEDIUM_NOT_PRESENT_TRAY_CLOSED;
    pthread_mutex_unlock(&lun->lock);
    return false;
}

void scsi_medium_put(struct scsi_lun *lun)
{
    if (__atomic_sub_fetch(&lun->users, 1, __ATOMIC_SEQ_CST) == 0 &&
        __atomic_load_n(&lun->ejecting, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&lun->lock);
        pthread_cond_broadcast(&lun->medium_idle);
        pthread_mutex_unlock(&lun->lock);
    }
}

bool scsi_cmd_holds_medium(const struct scsi_lun *lun, const struct scsi_cmd *cmd)
{
    const struct scsi_op *op = cmd->op;
    return lun->removable && op && (op->flags & OPF_MEDIUM) && cmd->access != SCSI_ACCESS_DONE;
}

void scsi_cmd_drop(struct scsi_lun *lun, struct scsi_cmd *cmd)
{
    if (scsi_cmd_holds_medium(lun, cmd))
        scsi_medium_put(lun);
}

void scsi_lun_set_event_cb(struct scsi_lun *lun,
                           void (*cb)(void *opaque, struct scsi_lun *lun, int event),
                           void *opaque)
{
    pthread_mutex_lock(&lun->lock);
    lun->event_cb = cb;
    lun->event_opaque = opaque;
    pthread_mutex_unlock(&lun->lock);
}

void scsi_lun_event(struct scsi_lun *lun, int event)
{
    pthread_mutex_lock(&lun->lock);
    void (*cb)(void *, struct scsi_lun *, int) = lun->event_cb;
    void *opaque = lun->event_opaque;
    pthread_mutex_unlock(&lun->lock);
    if (cb)
        cb(opaque, lun, event);
}

struct optical_disc *scsi_medium_disc(struct blk_node *bs, struct scuse_err *err)
{
    struct optical_disc *d = malloc(sizeof(*d));
    if (!d) {
        err_set(err, -ENOMEM, "out of memory for a disc's track list");
        return NULL;
    }
    const struct optical_disc *cue = optical_disc_of(bs);
    if (cue)
        *d = *cue;
    else
        optical_disc_iso(d, (uint32_t)(bs->size / MMC_BLOCK_SIZE > UINT32_MAX
                                           ? UINT32_MAX : bs->size / MMC_BLOCK_SIZE));
    return d;
}

/* Pending unit attentions: a removal supersedes an insertion's and the
 * reverse (lock held). */
static void medium_ua(struct scsi_lun *lun, enum scsi_ua set, enum scsi_ua clear)
{
    __atomic_and_fetch(&lun->ua, ~(1u << clear), __ATOMIC_RELEASE);
    __atomic_or_fetch(&lun->ua, 1u << set, __ATOMIC_RELEASE);
}

int scsi_lun_medium_eject(struct scsi_lun *lun, bool force, struct blk_node **old,
                          struct scuse_err *err)
{
    *old = NULL;
    if (!lun->removable)
        return err_set(err, -ENOTSUP, "LUN %u is a disk: its medium is not removable",
                       lun->id);
    pthread_mutex_lock(&lun->lock);
    if (lun->changing) {
        pthread_mutex_unlock(&lun->lock);
        return err_set(err, -EBUSY, "LUN %u: a medium change is already under way", lun->id);
    }
    if (lun->prevent && !force) {
        /* As a drive's button does: the guest is told someone asked. */
        lun->media_event = MMC_EVENT_EJECT_REQUEST;
        pthread_mutex_unlock(&lun->lock);
        return err_set(err, -EBUSY, "LUN %u: the guest prevents medium removal "
                       "(force to eject anyway)", lun->id);
    }
    lun->prevent = false;
    lun->changing = true;
    update_ready(lun);
    /* Wait for the commands reading the node to finish. */
    __atomic_add_fetch(&lun->ejecting, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&lun->users, __ATOMIC_SEQ_CST) != 0)
        pthread_cond_wait(&lun->medium_idle, &lun->lock);
    __atomic_sub_fetch(&lun->ejecting, 1, __ATOMIC_SEQ_CST);
    bool had = lun->bs != NULL;
    *old = lun->bs;
    lun->bs = NULL;
    free(lun->disc);
    lun->disc = NULL;
    __atomic_store_n(&lun->blocks, 0, __ATOMIC_RELEASE);
    lun->tray_open = true;
    lun->changing = false;
    if (had) {
        medium_ua(lun, SCSI_UA_NO_MEDIUM, SCSI_UA_MEDIUM_CHANGED);
        lun->media_event = MMC_EVENT_MEDIA_REMOVAL;
    }
    update_ready(lun);
    pthread_mutex_unlock(&lun->lock);
    if (had)
        log_info("LUN %u: medium ejected", lun->id);
    scsi_lun_event(lun, SCSI_LUN_EVENT_MEDIUM_EJECTED);
    return 0;
}

int scsi_lun_medium_insert(struct scsi_lun *lun, struct blk_node *bs, struct scuse_err *err)
{
    if (!lun->removable)
        return err_set(err, -ENOTSUP, "LUN %u is a disk: its medium is not removable",
                       lun->id);
    if (bs->size < MMC_BLOCK_SIZE)
        return err_set(err, -EINVAL, "'%s': %llu bytes is less than one %u-byte block",
                       bs->path, (unsigned long long)bs->size, MMC_BLOCK_SIZE);
    struct optical_disc *disc = scsi_medium_disc(bs, err);
    if (!disc)
        return -ENOMEM;
    pthread_mutex_lock(&lun->lock);
    if (lun->changing || lun->bs) {
        bool busy = lun->changing;
        pthread_mutex_unlock(&lun->lock);
        free(disc);
        if (busy)
            return err_set(err, -EBUSY, "LUN %u: a medium change is already under way",
                           lun->id);
        return err_set(err, -EEXIST, "LUN %u already holds a medium: eject it first", lun->id);
    }
    if (bs->size % MMC_BLOCK_SIZE)
        log_warn("'%s': the last %llu bytes are not a whole 2048-byte block and are not "
                 "served", bs->path, (unsigned long long)(bs->size % MMC_BLOCK_SIZE));
    lun->bs = bs;
    lun->disc = disc;
    __atomic_store_n(&lun->blocks, bs->size / MMC_BLOCK_SIZE, __ATOMIC_RELEASE);
    lun->tray_open = false;
    medium_ua(lun, SCSI_UA_MEDIUM_CHANGED, SCSI_UA_NO_MEDIUM);
    lun->media_event = MMC_EVENT_NEW_MEDIA;
    update_ready(lun);
    pthread_mutex_unlock(&lun->lock);
    log_info("LUN %u: medium '%s' inserted (%llu blocks of 2048 bytes)", lun->id, bs->path,
             (unsigned long long)(bs->size / MMC_BLOCK_SIZE));
    scsi_lun_event(lun, SCSI_LUN_EVENT_MEDIUM_INSERTED);
    return 0;
}

/* START STOP UNIT with LoEj from the initiator: open or close the tray.
 * Returns false (and the sense) when the medium is locked in. */
bool scsi_lun_guest_tray(struct scsi_lun *lun, bool load, struct scsi_sense *s)
{
    pthread_mutex_lock(&lun->lock);
    if (!load && lun->prevent) {
        memset(s, 0, sizeof(*s));
        s->key = lun->bs && !lun->tray_open ? SK_ILLEGAL_REQUEST : SK_NOT_READY;
        s->asc = ASC_MEDIUM_REMOVAL_PREVENTED;
        pthread_mutex_unlock(&lun->lock);
        scsi_lun_event(lun, SCSI_LUN_EVENT_GUEST_EJECT_REQUEST);
        return false;
    }
    bool was_open = lun->tray_open;
    lun->tray_open = !load;
    if (load && was_open && lun->bs)
        lun->media_event = MMC_EVENT_NEW_MEDIA;
    update_ready(lun);
    pthread_mutex_unlock(&lun->lock);
    scsi_lun_event(lun, load ? SCSI_LUN_EVENT_GUEST_LOAD : SCSI_LUN_EVENT_GUEST_EJECT_REQUEST);
    return true;
}

/* The GESN media event to report, cleared (0: none). */
uint8_t scsi_lun_take_media_event(struct scsi_lun *lun)
{
    pthread_mutex_lock(&lun->lock);
    uint8_t e = lun->media_event;
    lun->media_event = 0;
    pthread_mutex_unlock(&lun->lock);
    return e;
}
