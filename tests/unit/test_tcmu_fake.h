/* A fake TCMU kernel for the ring tests: a mapping laid out as
 * drivers/target/target_core_user.c lays it out (mailbox, command ring,
 * data area), a producer that writes entries as queue_cmd_ring() does
 * (a PAD when a command does not fit before the ring's end, the CDB after
 * the iovecs, offsets rather than pointers, cmd_head moved with release
 * after the entry), and a reaper that reads completions the way
 * tcmu_handle_completions() does: from its last cleaned offset up to
 * cmd_tail, skipping PAD and TMR slots, taking the cmd_id in each slot. */
#ifndef TEST_TCMU_FAKE_H
#define TEST_TCMU_FAKE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tcmu/uapi.h"

#define FK_CMDR_OFF 128u
#define FK_MAX_ID 4096

struct fk_done {                    /* what the reaper saw for one cmd_id */
    int count;
    uint8_t status, uflags;
    uint32_t read_len;
    uint8_t sense[TCMU_SENSE_BUFFERSIZE];
};

struct fk {
    uint8_t *map;
    uint64_t size;
    uint32_t cmdr_size;
    uint64_t data_off;
    uint32_t head;                  /* producer position */
    uint32_t cleaned;               /* reaper position (cmdr_last_cleaned) */
    uint16_t next_id;
    uint32_t pads, reaped;
    bool owned;                     /* map is ours to free */
    struct fk_done done[FK_MAX_ID];
};

static inline struct tcmu_mailbox *fk_mb(struct fk *k) { return (struct tcmu_mailbox *)k->map; }

static inline uint32_t *fk_head_p(struct fk *k)
{
    return (uint32_t *)(k->map + offsetof(struct tcmu_mailbox, cmd_head));
}

static inline uint32_t *fk_tail_p(struct fk *k)
{
    return (uint32_t *)(k->map + offsetof(struct tcmu_mailbox, cmd_tail));
}

/* The size of a mapping with these ring and data area sizes. */
static inline uint64_t fk_map_size(uint32_t cmdr_size, uint64_t data_size)
{
    return FK_CMDR_OFF + cmdr_size + data_size;
}

/* Lay out map (fk_map_size bytes; NULL: allocated) with a ring of
 * cmdr_size bytes and a data area of data_size. */
static inline struct fk *fk_new_at(void *map, uint32_t cmdr_size, uint64_t data_size,
                                   uint16_t flags)
{
    struct fk *k = calloc(1, sizeof(*k));
    k->cmdr_size = cmdr_size;
    k->data_off = FK_CMDR_OFF + cmdr_size;
    k->size = k->data_off + data_size;
    k->owned = !map;
    k->map = map ? map : aligned_alloc(4096, (k->size + 4095) & ~4095ull);
    memset(k->map, 0, k->size);
    struct tcmu_mailbox *mb = fk_mb(k);
    mb->version = TCMU_MAILBOX_VERSION;
    mb->flags = flags;
    mb->cmdr_off = FK_CMDR_OFF;
    mb->cmdr_size = cmdr_size;
    k->next_id = 1;
    return k;
}

static inline struct fk *fk_new(uint32_t cmdr_size, uint64_t data_size, uint16_t flags)
{
    return fk_new_at(NULL, cmdr_size, data_size, flags);
}

static inline void fk_free(struct fk *k)
{
    if (k->owned)
        free(k->map);
    free(k);
}

static inline uint8_t *fk_ring(struct fk *k, uint32_t off) { return k->map + FK_CMDR_OFF + off; }

static inline uint32_t fk_len_op(enum tcmu_opcode op, uint32_t len)
{
    uint32_t v = 0;
    tcmu_hdr_set_op(&v, op);
    tcmu_hdr_set_len(&v, len);
    return v;
}

/* Free ring space, keeping one byte unused as the kernel does. */
static inline uint32_t fk_space(struct fk *k)
{
    uint32_t used = (k->head + k->cmdr_size - k->cleaned) % k->cmdr_size;
    return k->cmdr_size - used - 1;
}

static inline void fk_publish(struct fk *k)
{
    __atomic_store_n(fk_head_p(k), k->head, __ATOMIC_RELEASE);
}

/* Make room for an entry of len bytes at the head: a PAD to the ring's
 * end when it does not fit there. False when the ring has no room. */
static inline bool fk_reserve(struct fk *k, uint32_t len)
{
    uint32_t to_end = k->cmdr_size - k->head;
    uint32_t need = len + (to_end < len ? to_end : 0);
    if (fk_space(k) < need)
        return false;
    if (to_end < len) {
        struct tcmu_cmd_entry_hdr h = { 0 };
        h.len_op = fk_len_op(TCMU_OP_PAD, to_end);
        memcpy(fk_ring(k, k->head), &h, sizeof(h));
        k->head = 0;
        k->pads++;
        fk_publish(k);
    }
    return true;
}

/* The kernel's command size for n iovecs and a CDB of cdb_len bytes. */
static inline uint32_t fk_cmd_size(uint32_t n, uint32_t cdb_len)
{
    uint32_t base = (uint32_t)offsetof(struct tcmu_cmd_entry, req.iov) + n * 16;
    if (base < sizeof(struct tcmu_cmd_entry))
        base = sizeof(struct tcmu_cmd_entry);
    return base + ((cdb_len + 7) & ~7u);
}

/* Write a command entry: iovecs as (offset, length) pairs relative to
 * the mapping. Returns the cmd_id, or 0 when the ring is full. The entry
 * is published unless publish is false (for tests that corrupt it). */
static inline uint16_t fk_cmd_ex(struct fk *k, const uint8_t *cdb, uint32_t cdb_len,
                                 const uint64_t *off, const uint64_t *len, uint32_t n,
                                 uint32_t bidi, bool publish, uint32_t *entry_pos)
{
    uint32_t size = fk_cmd_size(n + bidi, cdb_len);
    if (!fk_reserve(k, size))
        return 0;
    uint8_t *e = fk_ring(k, k->head);
    memset(e, 0, size);
    struct tcmu_cmd_entry ent;
    memset(&ent, 0, sizeof(ent));
    ent.hdr.len_op = fk_len_op(TCMU_OP_CMD, size);
    uint16_t id = k->next_id;
    k->next_id = (uint16_t)(k->next_id % (FK_MAX_ID - 1) + 1);
    ent.hdr.cmd_id = id;
    ent.req.iov_cnt = n;
    ent.req.iov_bidi_cnt = bidi;
    uint32_t base = size - ((cdb_len + 7) & ~7u);
    ent.req.cdb_off = FK_CMDR_OFF + k->head + base;
    memcpy(e, &ent, offsetof(struct tcmu_cmd_entry, req.iov));
    for (uint32_t i = 0; i < n + bidi; i++) {
        struct iovec v = { (void *)(uintptr_t)off[i], (size_t)len[i] };
        memcpy(e + offsetof(struct tcmu_cmd_entry, req.iov) + 16 * i, &v, 16);
    }
    memcpy(e + base, cdb, cdb_len);
    if (entry_pos)
        *entry_pos = k->head;
    k->head = (k->head + size) % k->cmdr_size;
    k->done[id].count = 0;
    if (publish)
        fk_publish(k);
    return id;
}

static inline uint16_t fk_cmd(struct fk *k, const uint8_t *cdb, uint32_t cdb_len,
                              const uint64_t *off, const uint64_t *len, uint32_t n)
{
    return fk_cmd_ex(k, cdb, cdb_len, off, len, n, 0, true, NULL);
}

/* A TMR entry naming these commands. */
static inline bool fk_tmr(struct fk *k, uint8_t type, const uint16_t *ids, uint32_t n)
{
    uint32_t size = (uint32_t)offsetof(struct tcmu_tmr_entry, cmd_ids) + 2 * n;
    size = (size + 7) & ~7u;
    if (!fk_reserve(k, size))
        return false;
    uint8_t *e = fk_ring(k, k->head);
    memset(e, 0, size);
    struct tcmu_tmr_entry t;
    memset(&t, 0, sizeof(t));
    t.hdr.len_op = fk_len_op(TCMU_OP_TMR, size);
    t.tmr_type = type;
    t.cmd_cnt = n;
    memcpy(e, &t, sizeof(t));
    if (n)
        memcpy(e + offsetof(struct tcmu_tmr_entry, cmd_ids), ids, 2 * n);
    k->head = (k->head + size) % k->cmdr_size;
    fk_publish(k);
    return true;
}

/* Read the completions up to cmd_tail as the kernel does. Returns how
 * many command completions were taken; a slot naming a cmd_id that is
 * not outstanding fails the test (the kernel would call the ring broken). */
static inline int fk_reap(struct fk *k)
{
    uint32_t tail = __atomic_load_n(fk_tail_p(k), __ATOMIC_ACQUIRE);
    int n = 0;
    while (k->cleaned != tail) {
        uint8_t *e = fk_ring(k, k->cleaned);
        struct tcmu_cmd_entry ent;
        memcpy(&ent, e, sizeof(struct tcmu_cmd_entry_hdr));
        uint32_t len = tcmu_hdr_get_len(ent.hdr.len_op);
        enum tcmu_opcode op = tcmu_hdr_get_op(ent.hdr.len_op);
        if (len == 0 || len > k->cmdr_size - k->cleaned)
            fail_msg("fake kernel: slot at %u has length %u", k->cleaned, len);
        if (op != TCMU_OP_PAD && op != TCMU_OP_TMR) {
            memcpy(&ent, e, sizeof(ent));
            uint16_t id = ent.hdr.cmd_id;
            if (id == 0 || id >= FK_MAX_ID)
                fail_msg("fake kernel: slot at %u names cmd_id %u", k->cleaned, id);
            struct fk_done *d = &k->done[id];
            d->count++;
            d->status = ent.rsp.scsi_status;
            d->uflags = ent.hdr.uflags;
            d->read_len = ent.rsp.read_len;
            memcpy(d->sense, ent.rsp.sense_buffer, sizeof(d->sense));
            n++;
            k->reaped++;
        }
        k->cleaned = (k->cleaned + len) % k->cmdr_size;
    }
    return n;
}

/* Sense key, ASC, ASCQ of fixed sense. */
static inline void fk_sense(const struct fk_done *d, int *key, int *asc, int *ascq)
{
    *key = d->sense[2] & 0xf;
    *asc = d->sense[12];
    *ascq = d->sense[13];
}

#endif
