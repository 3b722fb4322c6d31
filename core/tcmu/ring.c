/* The TCMU ring consumer: see ring.h for the protocol. Every value read
 * from the mapping is copied to a local first and checked there, so a
 * kernel (or anything else) changing the ring under us can make a
 * command fail or the ring break, never an access outside the mapping. */
#define _GNU_SOURCE
#include "tcmu/ring.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcmu/uapi.h"
#include "util/iov.h"
#include "util/log.h"

/* A completion fills this much of a slot, so a command slot is at least
 * this long (the kernel's are longer still: the CDB follows). */
#define SLOT_MIN ((uint32_t)sizeof(struct tcmu_cmd_entry))
#define IOV_OFF ((uint32_t)offsetof(struct tcmu_cmd_entry, req.iov))
#define TMR_IDS_OFF ((uint32_t)offsetof(struct tcmu_tmr_entry, cmd_ids))
#define TMR_IDS_MAX 65536u          /* cmd_ids are 16 bits: more is nonsense */

void tcmu_req_init(struct tcmu_req *req)
{
    memset(req, 0, sizeof(*req));
    req->iov = req->iov_inline;
    req->iov_cap = TCMU_REQ_INLINE_IOV;
}

void tcmu_req_fini(struct tcmu_req *req)
{
    if (req->iov != req->iov_inline)
        free(req->iov);
    req->iov = req->iov_inline;
    req->iov_cap = TCMU_REQ_INLINE_IOV;
}

/* Room for n iovecs. Grows once per request slot to its largest command,
 * so a steady workload allocates nothing. */
static int req_reserve(struct tcmu_req *req, uint64_t n)
{
    if (n <= req->iov_cap)
        return 0;
    struct iovec *v = malloc(n * sizeof(*v));
    if (!v)
        return -ENOMEM;
    if (req->iov != req->iov_inline)
        free(req->iov);
    req->iov = v;
    req->iov_cap = (uint32_t)n;
    return 0;
}

int tcmu_ring_init(struct tcmu_ring *r, void *map, uint64_t size, const char *name,
                   void (*kick)(void *), void *kick_arg, struct scuse_err *err)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", name);
    if (size < sizeof(struct tcmu_mailbox))
        return err_set(err, -EINVAL, "%s: a mapping of %" PRIu64 " bytes cannot hold the mailbox",
                       name, size);
    struct tcmu_mailbox mb;
    memcpy(&mb, map, sizeof(mb));
    if (mb.version != TCMU_MAILBOX_VERSION)
        return err_set(err, -EPROTO, "%s: mailbox version %u (scuse speaks version %d)", name,
                       mb.version, TCMU_MAILBOX_VERSION);
    if (mb.cmdr_off < sizeof(mb) || mb.cmdr_off % TCMU_OP_ALIGN_SIZE)
        return err_set(err, -EPROTO, "%s: mailbox cmdr_off %u overlaps the mailbox or is not "
                       "8-byte aligned", name, mb.cmdr_off);
    if (mb.cmdr_size < 2 * SLOT_MIN || mb.cmdr_size % TCMU_OP_ALIGN_SIZE ||
        (uint64_t)mb.cmdr_off + mb.cmdr_size > size)
        return err_set(err, -EPROTO, "%s: mailbox cmdr_size %u at offset %u does not fit the "
                       "%" PRIu64 "-byte mapping", name, mb.cmdr_size, mb.cmdr_off, size);
    r->map = map;
    r->map_size = size;
    r->cmdr_off = mb.cmdr_off;
    r->cmdr_size = mb.cmdr_size;
    r->data_off = (uint64_t)mb.cmdr_off + mb.cmdr_size;
    r->flags = mb.flags;
    r->head_p = (uint32_t *)(r->map + offsetof(struct tcmu_mailbox, cmd_head));
    r->tail_p = (uint32_t *)(r->map + offsetof(struct tcmu_mailbox, cmd_tail));
    uint32_t tail = __atomic_load_n(r->tail_p, __ATOMIC_ACQUIRE);
    if (tail >= r->cmdr_size || tail % TCMU_OP_ALIGN_SIZE)
        return err_set(err, -EPROTO, "%s: mailbox cmd_tail %u is outside the %u-byte ring", name,
                       tail, r->cmdr_size);
    r->next = r->tail = tail;
    r->kick = kick;
    r->kick_arg = kick_arg;
    /* Every outstanding command slot is at least SLOT_MIN bytes of one
     * lap of the ring. */
    r->fifo_cap = r->cmdr_size / SLOT_MIN + 1;
    r->fifo = calloc(r->fifo_cap, sizeof(*r->fifo));
    r->tmr_ids = malloc(TMR_IDS_MAX * sizeof(*r->tmr_ids));
    int e = pthread_mutex_init(&r->lock, NULL);
    if (!r->fifo || !r->tmr_ids || e) {
        free(r->fifo);
        free(r->tmr_ids);
        r->fifo = NULL;
        r->tmr_ids = NULL;
        if (!e)
            pthread_mutex_destroy(&r->lock);
        return err_set(err, e ? -e : -ENOMEM, "%s: out of memory for the ring's bookkeeping",
                       name);
    }
    /* What the kernel offers and what scuse makes of it: out-of-order
     * completion, READ_LEN residuals and TMR entries are used when
     * offered (TMRs arrive only with attrib/tmr_notification=1);
     * KEEP_BUF never is (a completion always gives its buffer back). */
    char offered[48], used[48];
    tcmu_ring_flag_names(r->flags, offered, sizeof(offered));
    tcmu_ring_flag_names(r->flags & TCMU_RING_FLAGS_USED, used, sizeof(used));
    log_info("tcmu %s: mailbox version %u, flags 0x%x (offered:%s; used:%s), map %" PRIu64
             " bytes, command ring %u bytes at %u, data area %" PRIu64 " bytes at %" PRIu64,
             name, mb.version, r->flags, offered, used, size, r->cmdr_size, r->cmdr_off,
             size - r->data_off, r->data_off);
    return 0;
}

void tcmu_ring_flag_names(uint16_t flags, char *out, size_t len)
{
    snprintf(out, len, "%s%s%s%s%s", flags & TCMU_MAILBOX_FLAG_CAP_OOOC ? " OOOC" : "",
             flags & TCMU_MAILBOX_FLAG_CAP_READ_LEN ? " READ_LEN" : "",
             flags & TCMU_MAILBOX_FLAG_CAP_TMR ? " TMR" : "",
             flags & TCMU_MAILBOX_FLAG_CAP_KEEP_BUF ? " KEEP_BUF" : "",
             flags ? "" : " none");
}

void tcmu_ring_fini(struct tcmu_ring *r)
{
    if (!r->fifo)
        return;
    pthread_mutex_destroy(&r->lock);
    free(r->fifo);
    free(r->tmr_ids);
    r->fifo = NULL;
    r->tmr_ids = NULL;
}

bool tcmu_ring_ooo(const struct tcmu_ring *r)
{
    return r->flags & TCMU_MAILBOX_FLAG_CAP_OOOC;
}

/* Move the tail to t (lock held); returns whether it moved. */
static bool publish(struct tcmu_ring *r, uint32_t t)
{
    if (t == r->tail)
        return false;
    r->tail = t;
    __atomic_store_n(r->tail_p, t, __ATOMIC_RELEASE);
    return true;
}

/* Where the tail may go: up to the oldest slot not handed back, or over
 * everything parsed when there is none (lock held). */
static uint32_t tail_target(const struct tcmu_ring *r)
{
    if (r->fifo_first == r->fifo_end)
        return r->next;
    return r->fifo[r->fifo_first % r->fifo_cap].off;
}

/* The entry [pos, pos + len) has been parsed; a command slot joins the
 * FIFO (its sequence number in *seq). False when the FIFO is full, which
 * the kernel's ring cannot cause. */
static bool consumed(struct tcmu_ring *r, uint32_t pos, uint32_t len, bool slot, uint64_t *seq)
{
    pthread_mutex_lock(&r->lock);
    if (slot) {
        if (r->fifo_end - r->fifo_first == r->fifo_cap) {
            pthread_mutex_unlock(&r->lock);
            return false;
        }
        *seq = r->fifo_end;
        r->fifo[r->fifo_end++ % r->fifo_cap] = (struct tcmu_slot){ pos, len, false };
    }
    r->next = (uint32_t)(((uint64_t)pos + len) % r->cmdr_size);
    bool moved = publish(r, tail_target(r));
    pthread_mutex_unlock(&r->lock);
    if (moved && r->kick)
        r->kick(r->kick_arg);
    return true;
}

static enum tcmu_next broken(struct tcmu_ring *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static enum tcmu_next broken(struct tcmu_ring *r, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    log_error("tcmu %s: ring broken: %s; no more commands are read from it", r->name, why);
    r->broken = true;
    return TCMU_NEXT_BROKEN;
}

/* Write a completion (see ring.h for which slot takes it) and move the tail. */
static void write_completion(struct tcmu_ring *r, const struct tcmu_req *req, uint8_t status,
                             const uint8_t *sense, uint32_t sense_len, uint8_t uflags,
                             uint32_t read_len)
{
    struct tcmu_cmd_entry rsp;
    memset(&rsp, 0, sizeof(rsp));
    rsp.hdr.cmd_id = req->cmd_id;
    rsp.hdr.uflags = uflags;
    rsp.rsp.scsi_status = status;
    rsp.rsp.read_len = read_len;
    if (sense_len > TCMU_SENSE_BUFFERSIZE)
        sense_len = TCMU_SENSE_BUFFERSIZE;
    if (sense_len)
        memcpy(rsp.rsp.sense_buffer, sense, sense_len);
    const size_t body = offsetof(struct tcmu_cmd_entry, rsp);

    pthread_mutex_lock(&r->lock);
    if (r->fifo_first == r->fifo_end) {
        /* More completions than commands: a caller bug, never a write
         * into a slot that is not ours. */
        pthread_mutex_unlock(&r->lock);
        log_error("tcmu %s: completion of cmd_id %u with no slot outstanding", r->name,
                  req->cmd_id);
        return;
    }
    bool ooo = tcmu_ring_ooo(r);
    struct tcmu_slot *s = &r->fifo[(ooo ? r->fifo_first : req->slot) % r->fifo_cap];
    uint8_t *e = r->map + r->cmdr_off + s->off;
    /* len_op and kflags stay as the kernel wrote them. */
    memcpy(e + offsetof(struct tcmu_cmd_entry_hdr, cmd_id), &rsp.hdr.cmd_id,
           sizeof(rsp.hdr.cmd_id));
    memcpy(e + offsetof(struct tcmu_cmd_entry_hdr, uflags), &rsp.hdr.uflags, 1);
    memcpy(e + body, (const uint8_t *)&rsp + body, sizeof(rsp) - body);
    if (ooo) {
        r->fifo_first++;
    } else {
        s->done = true;
        while (r->fifo_first != r->fifo_end && r->fifo[r->fifo_first % r->fifo_cap].done)
            r->fifo_first++;
    }
    bool moved = publish(r, tail_target(r));
    pthread_mutex_unlock(&r->lock);
    if (moved && r->kick)
        r->kick(r->kick_arg);
}

void tcmu_ring_complete(struct tcmu_ring *r, const struct tcmu_req *req, uint8_t status,
                        const uint8_t *sense, uint32_t sense_len, bool data_in,
                        uint64_t filled)
{
    uint8_t uflags = 0;
    uint32_t read_len = 0;
    if (data_in && filled < req->data_len) {
        /* The kernel takes a read_len of 0 as "all of it": a reply of no
         * bytes cannot be told with READ_LEN. */
        if ((r->flags & TCMU_MAILBOX_FLAG_CAP_READ_LEN) && filled > 0) {
            uflags = TCMU_UFLAG_READ_LEN;
            read_len = (uint32_t)filled;
        } else if (status == SCSI_STATUS_GOOD) {
            /* The whole buffer goes back: what was not filled reads as zeros,
             * not as the data area's previous contents. */
            struct iov_view v = iov_view_make(req->iov, (int)req->iov_cnt, req->data_len);
            iov_view_memset(&v, filled, 0, req->data_len - filled);
        }
    }
    write_completion(r, req, status, sense, sense_len, uflags, read_len);
}

/* An entry that is a command slot but cannot be run: answer it now. */
static enum tcmu_next fail_entry(struct tcmu_ring *r, struct tcmu_req *req, uint32_t pos,
                                 uint32_t len, uint8_t uflags, enum scsi_answer answer,
                                 const char *why)
{
    log_error("tcmu %s: command entry at ring offset %u (cmd_id %u): %s; answered with CHECK "
              "CONDITION", r->name, pos, req->cmd_id, why);
    req->iov_cnt = 0;
    req->data_len = 0;
    if (!consumed(r, pos, len, true, &req->slot))
        return broken(r, "more than %" PRIu64 " command slots outstanding", r->fifo_cap);
    uint8_t sense[SCSI_SENSE_MAX];
    uint32_t n = scsi_sense_answer(answer, sense);
    write_completion(r, req, SCSI_STATUS_CHECK_CONDITION, sense, n, uflags, 0);
    __atomic_add_fetch(&r->n_failed, 1, __ATOMIC_RELAXED);
    return TCMU_NEXT_FAILED;
}

static enum tcmu_next take_cmd(struct tcmu_ring *r, const uint8_t *e, uint32_t pos,
                               uint32_t len, struct tcmu_req *req)
{
    char why[192];
    enum scsi_answer answer = SCSI_ANSWER_TARGET_FAILURE;
    struct tcmu_cmd_entry ent;
    memcpy(&ent, e, IOV_OFF);
    const uint64_t ent_off = (uint64_t)r->cmdr_off + pos;
    const uint64_t n = (uint64_t)ent.req.iov_cnt + ent.req.iov_bidi_cnt;
    const uint64_t iov_end = IOV_OFF + n * sizeof(struct iovec);
    req->cdb_len = 0;
    if (iov_end > len) {
        snprintf(why, sizeof(why), "iov_cnt %u and iov_bidi_cnt %u do not fit the %u-byte entry",
                 ent.req.iov_cnt, ent.req.iov_bidi_cnt, len);
        goto fail;
    }
    if (ent.req.iov_dif_cnt) {
        snprintf(why, sizeof(why), "iov_dif_cnt %u: protection information is not served",
                 ent.req.iov_dif_cnt);
        goto fail;
    }
    /* The kernel puts the CDB in the entry, after the iovecs. */
    const uint64_t cdb_off = ent.req.cdb_off;
    if (cdb_off < ent_off + iov_end || cdb_off >= ent_off + len) {
        snprintf(why, sizeof(why), "cdb_off 0x%" PRIx64 " is outside the entry's CDB area "
                 "[0x%" PRIx64 ", 0x%" PRIx64 ")", cdb_off, ent_off + iov_end, ent_off + len);
        goto fail;
    }
    const uint32_t cdb_room = (uint32_t)(ent_off + len - cdb_off);
    const uint8_t *cdb = r->map + cdb_off;
    unsigned clen = scsi_cdb_length(cdb, cdb_room < 8 ? cdb_room : 8);
    if (clen == 0 || clen > cdb_room) {
        snprintf(why, sizeof(why), "the CDB (opcode 0x%02x) runs past the entry's end", cdb[0]);
        goto fail;
    }
    memcpy(req->cdb, cdb, clen);
    req->cdb_len = clen;
    if (ent.req.iov_bidi_cnt) {
        snprintf(why, sizeof(why), "opcode 0x%02x is bidirectional, which is not served",
                 req->cdb[0]);
        answer = SCSI_ANSWER_INVALID_OPCODE;
        goto fail;
    }
    if (req_reserve(req, n) < 0) {
        snprintf(why, sizeof(why), "out of memory for %" PRIu64 " iovecs", n);
        goto fail;
    }
    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct iovec v;
        memcpy(&v, e + IOV_OFF + i * sizeof(v), sizeof(v));
        uint64_t off = (uintptr_t)v.iov_base, l = v.iov_len;
        if (off < r->data_off || off > r->map_size || l > r->map_size - off) {
            snprintf(why, sizeof(why), "iovec %" PRIu64 " [0x%" PRIx64 ", +%" PRIu64 ") is "
                     "outside the data area [0x%" PRIx64 ", 0x%" PRIx64 ")", i, off, l,
                     r->data_off, r->map_size);
            goto fail;
        }
        total += l;
        req->iov[i].iov_base = r->map + off;
        req->iov[i].iov_len = l;
    }
    if (total > r->map_size - r->data_off || total > UINT32_MAX) {
        snprintf(why, sizeof(why), "the iovecs add up to %" PRIu64 " bytes, more than the "
                 "%" PRIu64 "-byte data area", total, r->map_size - r->data_off);
        goto fail;
    }
    req->iov_cnt = (uint32_t)n;
    req->data_len = total;
    if (!consumed(r, pos, len, true, &req->slot))
        return broken(r, "more than %" PRIu64 " command slots outstanding", r->fifo_cap);
    return TCMU_NEXT_CMD;
fail:
    return fail_entry(r, req, pos, len, 0, answer, why);
}

/* A TMR entry: copy its ids out (the slot may be reused as soon as the
 * tail passes it). False when it is unsound: logged and passed over. */
static bool take_tmr(struct tcmu_ring *r, const uint8_t *e, uint32_t pos, uint32_t len,
                     struct tcmu_tmr *tmr)
{
    struct tcmu_tmr_entry t;
    bool ok = len >= TMR_IDS_OFF;
    if (ok) {
        memcpy(&t, e, TMR_IDS_OFF);
        ok = t.cmd_cnt <= TMR_IDS_MAX &&
             TMR_IDS_OFF + (uint64_t)t.cmd_cnt * sizeof(uint16_t) <= len;
    }
    if (!ok) {
        log_error("tcmu %s: TMR entry at ring offset %u: %u bytes cannot hold its header and "
                  "command ids; passed over", r->name, pos, len);
    } else {
        memcpy(r->tmr_ids, e + TMR_IDS_OFF, (size_t)t.cmd_cnt * sizeof(uint16_t));
        tmr->type = t.tmr_type;
        tmr->cnt = t.cmd_cnt;
        tmr->ids = r->tmr_ids;
    }
    consumed(r, pos, len, false, NULL);
    return ok;
}

enum tcmu_next tcmu_ring_next(struct tcmu_ring *r, struct tcmu_req *req, struct tcmu_tmr *tmr)
{
    for (;;) {
        if (r->broken)
            return TCMU_NEXT_BROKEN;
        uint32_t head = __atomic_load_n(r->head_p, __ATOMIC_ACQUIRE);
        if (head >= r->cmdr_size || head % TCMU_OP_ALIGN_SIZE)
            return broken(r, "cmd_head %u is outside the %u-byte ring or not 8-byte aligned",
                          head, r->cmdr_size);
        uint32_t pos = r->next;
        if (pos == head)
            return TCMU_NEXT_EMPTY;
        uint32_t produced = head > pos ? head - pos : r->cmdr_size - pos + head;
        uint32_t to_end = r->cmdr_size - pos;
        const uint8_t *e = r->map + r->cmdr_off + pos;
        struct tcmu_cmd_entry_hdr hdr;
        memcpy(&hdr, e, sizeof(hdr));
        uint32_t len = tcmu_hdr_get_len(hdr.len_op);
        enum tcmu_opcode op = tcmu_hdr_get_op(hdr.len_op);
        if (len == 0 || len > produced || len > to_end)
            return broken(r, "entry at ring offset %u has length %u (%u bytes produced, %u to "
                          "the ring's end)", pos, len, produced, to_end);
        if (op == TCMU_OP_PAD) {
            r->n_pads++;
            consumed(r, pos, len, false, NULL);
            continue;
        }
        if (op == TCMU_OP_TMR) {
            if (take_tmr(r, e, pos, len, tmr))
                return TCMU_NEXT_TMR;
            continue;
        }
        /* A command, or an opcode from a newer kernel: a slot that takes
         * a completion either way. */
        if (len < SLOT_MIN)
            return broken(r, "entry at ring offset %u (opcode %u) has %u bytes, less than the "
                          "%u a completion needs", pos, (unsigned)op, len, SLOT_MIN);
        req->cmd_id = hdr.cmd_id;
        if (op == TCMU_OP_CMD)
            return take_cmd(r, e, pos, len, req);
        char why[64];
        snprintf(why, sizeof(why), "unknown entry opcode %u", (unsigned)op);
        return fail_entry(r, req, pos, len, TCMU_UFLAG_UNKNOWN_OP, SCSI_ANSWER_INVALID_OPCODE,
                          why);
    }
}
