/* A target: the LUNs behind one target port, REPORT LUNS over all of
 * them, and the answers SPC gives for a LUN the target does not have.
 * LUNs come and go while commands flow (the control socket's lun-add and
 * lun-remove): a read lock covers a lookup and the submit that follows,
 * so a LUN being removed is either reached whole or not at all. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "scsi/scsi_int.h"

struct scsi_target {
    /* Readers: lookups with their submit, REPORT LUNS. Writers: add and
     * remove. Readers may nest (REPORT LUNS inside a submit): the
     * default, reader-preferring lock allows it. */
    pthread_rwlock_t lock;
    struct scsi_lun **luns;         /* sorted by id */
    unsigned n, cap;
};

int scsi_target_create(struct scsi_target **out, struct scuse_err *err)
{
    *out = calloc(1, sizeof(**out));
    if (!*out)
        return err_set(err, -ENOMEM, "out of memory for a SCSI target");
    pthread_rwlock_init(&(*out)->lock, NULL);
    return 0;
}

void scsi_target_destroy(struct scsi_target *t)
{
    if (!t)
        return;
    for (unsigned i = 0; i < t->n; i++)
        t->luns[i]->target = NULL;
    pthread_rwlock_destroy(&t->lock);
    free(t->luns);
    free(t);
}

static int add_locked(struct scsi_target *t, struct scsi_lun *lun, struct scuse_err *err)
{
    if (lun->target)
        return err_set(err, -EBUSY, "LUN %u already belongs to a target", lun->id);
    unsigned pos = 0;
    while (pos < t->n && t->luns[pos]->id < lun->id)
        pos++;
    if (pos < t->n && t->luns[pos]->id == lun->id)
        return err_set(err, -EEXIST, "LUN %u is given twice", lun->id);
    if (t->n == t->cap) {
        unsigned cap = t->cap ? t->cap * 2 : 8;
        struct scsi_lun **p = realloc(t->luns, cap * sizeof(*p));
        if (!p)
            return err_set(err, -ENOMEM, "out of memory for the LUN list");
        t->luns = p;
        t->cap = cap;
    }
    memmove(t->luns + pos + 1, t->luns + pos, (t->n - pos) * sizeof(*t->luns));
    t->luns[pos] = lun;
    t->n++;
    lun->target = t;
    return 0;
}

int scsi_target_add_lun(struct scsi_target *t, struct scsi_lun *lun, struct scuse_err *err)
{
    pthread_rwlock_wrlock(&t->lock);
    int r = add_locked(t, lun, err);
    pthread_rwlock_unlock(&t->lock);
    return r;
}

struct scsi_lun *scsi_target_remove_lun(struct scsi_target *t, uint16_t id)
{
    struct scsi_lun *lun = NULL;
    pthread_rwlock_wrlock(&t->lock);
    for (unsigned i = 0; i < t->n; i++) {
        if (t->luns[i]->id == id) {
            lun = t->luns[i];
            memmove(t->luns + i, t->luns + i + 1, (t->n - i - 1) * sizeof(*t->luns));
            t->n--;
            lun->target = NULL;
            break;
        }
    }
    pthread_rwlock_unlock(&t->lock);
    return lun;
}

static struct scsi_lun *lookup(const struct scsi_target *t, uint16_t id)
{
    unsigned lo = 0, hi = t->n;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        uint16_t m = t->luns[mid]->id;
        if (m == id)
            return t->luns[mid];
        if (m < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The lock is taken for reading only: the const is the callers' view. */
static void rdlock(const struct scsi_target *t)
{
    pthread_rwlock_rdlock((pthread_rwlock_t *)&t->lock);
}

static void unlock(const struct scsi_target *t)
{
    pthread_rwlock_unlock((pthread_rwlock_t *)&t->lock);
}

struct scsi_lun *scsi_target_lun(const struct scsi_target *t, uint16_t id)
{
    rdlock(t);
    struct scsi_lun *lun = lookup(t, id);
    unlock(t);
    return lun;
}

unsigned scsi_target_count(const struct scsi_target *t)
{
    rdlock(t);
    unsigned n = t->n;
    unlock(t);
    return n;
}

struct scsi_lun *scsi_target_lun_at(const struct scsi_target *t, unsigned i)
{
    rdlock(t);
    struct scsi_lun *lun = i < t->n ? t->luns[i] : NULL;
    unlock(t);
    return lun;
}

void scsi_target_hold(const struct scsi_target *t)
{
    rdlock(t);
}

void scsi_target_release(const struct scsi_target *t)
{
    unlock(t);
}

struct scsi_lun *scsi_target_find_naa_held(const struct scsi_target *t, const uint8_t *naa,
                                           unsigned len)
{
    for (unsigned i = 0; i < t->n; i++) {
        struct scsi_lun *c = t->luns[i];
        if (c->naa_len == len && memcmp(c->naa, naa, len) == 0)
            return c;
    }
    return NULL;
}

void scsi_target_raise_ua(struct scsi_target *t, enum scsi_ua ua, const struct scsi_lun *except)
{
    rdlock(t);
    for (unsigned i = 0; i < t->n; i++)
        if (t->luns[i] != except)
            scsi_lun_raise_ua(t->luns[i], ua);
    unlock(t);
}

/* The LUN in single-level format: peripheral device addressing up to
 * 255, flat space addressing above. */
static void put_lun(uint8_t *p, uint16_t id)
{
    memset(p, 0, 8);
    if (id < 256) {
        p[1] = (uint8_t)id;
    } else {
        p[0] = (uint8_t)(0x40 | (id >> 8));
        p[1] = (uint8_t)id;
    }
}

void scsi_target_reply_luns(const struct scsi_target *t, uint16_t self, bool well_known_only,
                            struct scsi_cmd *cmd, size_t alloc)
{
    if (t)
        rdlock(t);
    unsigned n = well_known_only ? 0 : t ? t->n : 1;
    size_t avail = 8 + (size_t)n * 8;
    size_t room = scsi_data_len(cmd, SCSI_DIR_FROM_DEV);
    size_t want = avail < alloc ? avail : alloc;
    size_t moved = want < room ? want : room;
    /* Up to 16384 entries: written piece by piece into the initiator's
     * buffer rather than built on the stack. */
    uint8_t b[8];
    memset(b, 0, sizeof(b));
    put_be32(b, n * 8);
    iov_view_from_buf(&cmd->data, 0, b, moved < 8 ? moved : 8);
    for (unsigned i = 0; i < n && 8 + (size_t)i * 8 < moved; i++) {
        size_t off = 8 + (size_t)i * 8;
        put_lun(b, t ? t->luns[i]->id : self);
        iov_view_from_buf(&cmd->data, off, b, moved - off < 8 ? moved - off : 8);
    }
    if (t)
        unlock(t);
    scsi_good_xfer(cmd, SCSI_DIR_FROM_DEV, want, moved);
}

/* ---- a LUN the target does not have ---- */

static void absent_fail(struct scsi_cmd *cmd, uint16_t asc, int field_byte)
{
    struct scsi_sense s = { .key = SK_ILLEGAL_REQUEST, .asc = asc };
    if (field_byte >= 0) {
        s.sks_valid = true;
        s.sks[0] = 0x80 | 0x40;     /* SKSV, C/D: in the CDB */
        put_be16(s.sks + 1, (uint16_t)field_byte);
    }
    cmd->status = SCSI_STATUS_CHECK_CONDITION;
    cmd->sense_len = cmd->sense ? scsi_sense_encode(&s, false, cmd->sense) : 0;
    cmd->xfer = 0;
    cmd->overflow = false;
    cmd->resid = cmd->data.len > UINT32_MAX ? UINT32_MAX : (uint32_t)cmd->data.len;
    cmd->access = SCSI_ACCESS_DONE;
}

/* Bytes 1..len-1 of the CDB that must be zero (mask per byte: 1 = bit
 * may be set). Returns the first bad byte or -1. */
static int bad_byte(const uint8_t *cdb, unsigned len, const uint8_t *ok)
{
    for (unsigned i = 1; i < len; i++)
        if (cdb[i] & (uint8_t)~ok[i])
            return (int)i;
    return -1;
}

static void absent_inquiry(struct scsi_cmd *cmd)
{
    static const uint8_t ok[6] = { 0, 0x01, 0xff, 0xff, 0xff, 0 };
    const uint8_t *cdb = cmd->cdb;
    int bad = cmd->cdb_len < 6 ? 0 : bad_byte(cdb, 6, ok);
    if (bad >= 0) {
        absent_fail(cmd, ASC_INVALID_FIELD_IN_CDB, bad);
        return;
    }
    if (cdb[1] & 0x01) {            /* VPD pages: the unit is not there */
        absent_fail(cmd, ASC_LUN_NOT_SUPPORTED, -1);
        return;
    }
    if (cdb[2]) {
        absent_fail(cmd, ASC_INVALID_FIELD_IN_CDB, 2);
        return;
    }
    uint8_t b[36];
    memset(b, 0, sizeof(b));
    b[0] = 0x7f;                    /* qualifier 3 (no unit possible here), type 1Fh */
    b[2] = 0x06;                    /* SPC-4 */
    b[3] = 0x02;                    /* response data format 2 */
    b[4] = sizeof(b) - 5;
    memset(b + 8, ' ', 28);
    scsi_reply(cmd, b, sizeof(b), get_be16(cdb + 3));
}

static void absent_request_sense(struct scsi_cmd *cmd)
{
    static const uint8_t ok[6] = { 0, 0x01, 0, 0, 0xff, 0 };
    int bad = cmd->cdb_len < 6 ? 0 : bad_byte(cmd->cdb, 6, ok);
    if (bad >= 0) {
        absent_fail(cmd, ASC_INVALID_FIELD_IN_CDB, bad);
        return;
    }
    struct scsi_sense s = { .key = SK_ILLEGAL_REQUEST, .asc = ASC_LUN_NOT_SUPPORTED };
    uint8_t b[SCSI_SENSE_MAX];
    uint32_t n = scsi_sense_encode(&s, cmd->cdb[1] & 0x01, b);
    scsi_reply(cmd, b, n, cmd->cdb[4]);
}

static void absent_report_luns(const struct scsi_target *t, struct scsi_cmd *cmd)
{
    static const uint8_t ok[12] = { 0, 0, 0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0 };
    int bad = cmd->cdb_len < 12 ? 0 : bad_byte(cmd->cdb, 12, ok);
    if (bad < 0 && cmd->cdb[2] > 0x02)
        bad = 2;
    if (bad >= 0) {
        absent_fail(cmd, ASC_INVALID_FIELD_IN_CDB, bad);
        return;
    }
    scsi_target_reply_luns(t, 0, cmd->cdb[2] == 0x01, cmd, get_be32(cmd->cdb + 6));
}

void scsi_target_submit(struct scsi_target *t, struct scsi_disp *d, uint16_t id,
                        struct scsi_cmd *cmd)
{
    /* Held over the submit: a remover (write lock) then waits until the
     * command is in the LUN's queue, where its detach waits for it. */
    rdlock(t);
    struct scsi_lun *lun = lookup(t, id);
    if (lun) {
        scsi_submit(d, lun, cmd);
        unlock(t);
        return;
    }
    unlock(t);
    cmd->status = SCSI_STATUS_GOOD;
    cmd->sense_len = 0;
    cmd->xfer = 0;
    cmd->resid = 0;
    cmd->overflow = false;
    cmd->access = SCSI_ACCESS_DONE;
    cmd->op = NULL;
    scsi_cmd_resolve_dir(cmd, scsi_cdb_op(cmd->cdb, cmd->cdb_len));
    switch (cmd->cdb && cmd->cdb_len ? cmd->cdb[0] : 0xff) {
    case OP_INQUIRY:
        absent_inquiry(cmd);
        break;
    case OP_REQUEST_SENSE:
        absent_request_sense(cmd);
        break;
    case OP_REPORT_LUNS:
        absent_report_luns(t, cmd);
        break;
    default:
        absent_fail(cmd, ASC_LUN_NOT_SUPPORTED, -1);
        break;
    }
    cmd->done(cmd);
}
