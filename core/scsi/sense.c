/* Sense data (fixed and descriptor formats), the one errno -> sense table,
 * and the helpers that finish a command with a status and a residual. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "util/log.h"

#include "scsi/scsi_int.h"

uint32_t scsi_sense_encode(const struct scsi_sense *s, bool desc, uint8_t *buf)
{
    memset(buf, 0, SCSI_SENSE_MAX);
    if (!desc) {
        buf[0] = SENSE_FIXED_CURRENT;
        buf[2] = s->key & 0x0f;
        /* The 4-byte INFORMATION field only holds values that fit. */
        if (s->info_valid && s->info <= UINT32_MAX) {
            buf[0] |= 0x80;
            put_be32(buf + 3, (uint32_t)s->info);
        }
        buf[7] = SENSE_FIXED_LEN - 8;
        buf[12] = (uint8_t)(s->asc >> 8);
        buf[13] = (uint8_t)s->asc;
        if (s->sks_valid)
            memcpy(buf + 15, s->sks, 3);
        return SENSE_FIXED_LEN;
    }
    buf[0] = SENSE_DESC_CURRENT;
    buf[1] = s->key & 0x0f;
    buf[2] = (uint8_t)(s->asc >> 8);
    buf[3] = (uint8_t)s->asc;
    uint32_t len = 8;
    if (s->info_valid) {
        uint8_t *d = buf + len;
        d[0] = SENSE_DESC_INFO;
        d[1] = 0x0a;
        d[2] = 0x80;                /* VALID */
        put_be64(d + 4, s->info);
        len += 12;
    }
    if (s->sks_valid) {
        uint8_t *d = buf + len;
        d[0] = SENSE_DESC_SKS;
        d[1] = 0x06;
        memcpy(d + 4, s->sks, 3);
        len += 8;
    }
    buf[7] = (uint8_t)(len - 8);
    return len;
}

uint32_t scsi_sense_answer(enum scsi_answer a, uint8_t *buf)
{
    struct scsi_sense s = { .key = SK_HARDWARE_ERROR, .asc = ASC_INTERNAL_TARGET_FAILURE };
    switch (a) {
    case SCSI_ANSWER_INVALID_OPCODE:
        s.key = SK_ILLEGAL_REQUEST;
        s.asc = ASC_INVALID_COMMAND_OPCODE;
        break;
    case SCSI_ANSWER_NO_MEDIUM:
        s.key = SK_NOT_READY;
        s.asc = ASC_MEDIUM_NOT_PRESENT;
        break;
    case SCSI_ANSWER_TARGET_FAILURE:
        break;
    }
    return scsi_sense_encode(&s, false, buf);
}

bool scsi_lun_desc_sense(struct scsi_lun *lun)
{
    return __atomic_load_n(&lun->d_sense, __ATOMIC_RELAXED);
}

static uint32_t clamp32(uint64_t v) { return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v; }

void scsi_good_xfer(struct scsi_cmd *cmd, enum scsi_dir dir, uint64_t wanted, uint64_t moved)
{
    /* A buffer given in the other direction counts as no buffer. */
    size_t room = dir == SCSI_DIR_NONE ? cmd->data.len : scsi_data_len(cmd, dir);
    cmd->status = SCSI_STATUS_GOOD;
    cmd->sense_len = 0;
    cmd->xfer = clamp32(moved);
    if (wanted > room) {
        cmd->overflow = true;
        cmd->resid = clamp32(wanted - room);
    } else {
        cmd->overflow = false;
        cmd->resid = clamp32(cmd->data.len - wanted);
    }
}

void scsi_good(struct scsi_cmd *cmd, uint64_t wanted, uint64_t moved)
{
    scsi_good_xfer(cmd, SCSI_DIR_NONE, wanted, moved);
}

void scsi_fail(struct scsi_lun *lun, struct scsi_cmd *cmd, const struct scsi_sense *s)
{
    cmd->status = SCSI_STATUS_CHECK_CONDITION;
    cmd->sense_len = cmd->sense ? scsi_sense_encode(s, scsi_lun_desc_sense(lun), cmd->sense) : 0;
    cmd->xfer = 0;
    cmd->overflow = false;
    cmd->resid = clamp32(cmd->data.len);
}

void scsi_fail_key(struct scsi_lun *lun, struct scsi_cmd *cmd, uint8_t key, uint16_t asc)
{
    struct scsi_sense s = { .key = key, .asc = asc };
    scsi_fail(lun, cmd, &s);
}

void scsi_fail_wp(struct scsi_lun *lun, struct scsi_cmd *cmd)
{
    scsi_fail_key(lun, cmd, SK_DATA_PROTECT,
                  lun->read_only ? ASC_WRITE_PROTECTED : ASC_SOFTWARE_WRITE_PROTECTED);
}

static void fail_field(struct scsi_lun *lun, struct scsi_cmd *cmd, uint16_t asc, bool in_cdb,
                       unsigned byte, int bit)
{
    struct scsi_sense s = { .key = SK_ILLEGAL_REQUEST, .asc = asc, .sks_valid = true };
    s.sks[0] = 0x80 | (in_cdb ? 0x40 : 0);   /* SKSV, C/D */
    if (bit >= 0)
        s.sks[0] |= 0x08 | (uint8_t)(bit & 7); /* BPV, BIT POINTER */
    put_be16(s.sks + 1, (uint16_t)(byte > 0xffff ? 0xffff : byte));
    scsi_fail(lun, cmd, &s);
}

void scsi_fail_cdb(struct scsi_lun *lun, struct scsi_cmd *cmd, unsigned byte, int bit)
{
    fail_field(lun, cmd, ASC_INVALID_FIELD_IN_CDB, true, byte, bit);
}

void scsi_fail_param(struct scsi_lun *lun, struct scsi_cmd *cmd, unsigned byte, int bit)
{
    fail_field(lun, cmd, ASC_INVALID_FIELD_IN_PARAM_LIST, false, byte, bit);
}

void scsi_fail_short_data(struct scsi_lun *lun, struct scsi_cmd *cmd, uint64_t wanted)
{
    scsi_fail_key(lun, cmd, SK_ILLEGAL_REQUEST, ASC_PARAMETER_LIST_LENGTH_ERROR);
    if (wanted > cmd->data.len) {
        cmd->overflow = true;
        cmd->resid = clamp32(wanted - cmd->data.len);
    }
}

/* The one errno -> sense table. */
uint8_t scsi_errno_sense(int err, bool write, struct scsi_sense *s)
{
    memset(s, 0, sizeof(*s));
    switch (err) {
    case -EROFS:
    case -EPERM:                    /* a write the block layer refuses */
        s->key = SK_DATA_PROTECT;
        s->asc = ASC_WRITE_PROTECTED;
        break;
    case -ENOSPC:
    case -EFBIG:
    case -EDQUOT:
        s->key = SK_DATA_PROTECT;
        s->asc = ASC_SPACE_ALLOC_FAILED_WP;
        break;
    case -ENOMEM:
    case -EAGAIN:
        return SCSI_STATUS_BUSY;    /* transient: the initiator retries */
    case -EINVAL:                   /* past the end: capacity shrank under us */
        s->key = SK_ILLEGAL_REQUEST;
        s->asc = ASC_LBA_OUT_OF_RANGE;
        break;
    case -ENOTSUP:
        s->key = SK_ILLEGAL_REQUEST;
        s->asc = ASC_INVALID_COMMAND_OPCODE;
        break;
    case -EIO:
    case -EUCLEAN:                  /* corrupt image metadata */
    case -ENODATA:
        s->key = SK_MEDIUM_ERROR;
        s->asc = write ? ASC_WRITE_ERROR : ASC_UNRECOVERED_READ_ERROR;
        break;
    default:
        s->key = SK_HARDWARE_ERROR;
        s->asc = ASC_INTERNAL_TARGET_FAILURE;
        break;
    }
    return SCSI_STATUS_CHECK_CONDITION;
}

#define ERRLOG_BURST 5              /* lines per LUN per second */

/* A guest hammering a bad region must not flood the log, but each line
 * logged carries its own command's reason, never an older one. */
static void log_io_error(struct scsi_lun *lun, struct scsi_cmd *cmd, int err, uint64_t lba,
                         const struct scuse_err *why)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    uint64_t now = (uint64_t)ts.tv_sec;
    uint64_t win = __atomic_load_n(&lun->errlog_window, __ATOMIC_RELAXED);
    if (win != now && __atomic_compare_exchange_n(&lun->errlog_window, &win, now, false,
                                                  __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        __atomic_store_n(&lun->errlog_count, 0, __ATOMIC_RELAXED);
        unsigned dropped = __atomic_exchange_n(&lun->errlog_dropped, 0, __ATOMIC_RELAXED);
        if (dropped)
            log_error("LUN %u: %u more I/O errors were not logged", lun->id, dropped);
    }
    if (__atomic_fetch_add(&lun->errlog_count, 1, __ATOMIC_RELAXED) >= ERRLOG_BURST) {
        __atomic_fetch_add(&lun->errlog_dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    log_error("LUN %u: opcode 0x%02x at LBA %llu failed: %s", lun->id, cmd->cdb[0],
              (unsigned long long)lba, why && why->msg[0] ? why->msg : strerror(-err));
}

void scsi_fail_errno(struct scsi_lun *lun, struct scsi_cmd *cmd, int err, bool write,
                     uint64_t lba, const struct scuse_err *why)
{
    struct scsi_sense s;
    uint8_t status = scsi_errno_sense(err, write, &s);
    if (status == SCSI_STATUS_CHECK_CONDITION &&
        (s.key == SK_MEDIUM_ERROR || s.key == SK_HARDWARE_ERROR))
        log_io_error(lun, cmd, err, lba, why);
    if (status != SCSI_STATUS_CHECK_CONDITION) {
        cmd->status = status;
        cmd->sense_len = 0;
        cmd->xfer = 0;
        cmd->overflow = false;
        cmd->resid = clamp32(cmd->data.len);
        return;
    }
    if (s.key == SK_MEDIUM_ERROR) {
        /* The block layer does not say which block failed: the first one
         * of the request is where the initiator starts over. */
        s.info_valid = true;
        s.info = lba;
    }
    scsi_fail(lun, cmd, &s);
}

size_t scsi_data_len(const struct scsi_cmd *cmd, enum scsi_dir dir)
{
    return cmd->dir == dir ? cmd->data.len : 0;
}

void scsi_reply(struct scsi_cmd *cmd, const void *buf, size_t avail, size_t alloc)
{
    size_t want = avail < alloc ? avail : alloc;
    size_t room = scsi_data_len(cmd, SCSI_DIR_FROM_DEV);
    size_t n = want < room ? want : room;
    if (n)
        iov_view_from_buf(&cmd->data, 0, buf, n);
    scsi_good_xfer(cmd, SCSI_DIR_FROM_DEV, want, n);
}
