/* libFuzzer target: the TCMU ring consumer against a producer that writes
 * entries the way the kernel does, except for the fields the input
 * chooses to make hostile (entry length and opcode, iovec counts and
 * offsets, cdb_off, cmd_head), so the fuzzer reaches the deep checks
 * instead of stopping at the first length.
 *
 * The mapping is malloc'd to its exact size (mailbox, a 4 KiB ring, a
 * 64 KiB data area), so ASan sees any access outside it. Commands parsed
 * are completed in an order the input picks, each writing its whole data
 * buffer first, as the SCSI layer would. Besides sanitizer findings the
 * target aborts on broken contracts: a parsed command with an iovec
 * outside the data area or a CDB outside the ring, or a published
 * cmd_tail outside the ring or unaligned. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tcmu/ring.h"
#include "tcmu/uapi.h"
#include "util/iov.h"
#include "util/log.h"

#define CMDR_OFF 128u
#define RING 4096u
#define DATA 65536u
#define MAP (CMDR_OFF + RING + DATA)
#define MAXQ 32

static struct tcmu_req reqs[MAXQ];
static int idx[MAXQ];              /* idx[0..live): parsed, not completed */
static int inited;

struct input {
    const uint8_t *p;
    size_t n;
};

static uint64_t take(struct input *in, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes && in->n; i++, in->p++, in->n--)
        v = v << 8 | *in->p;
    return v;
}

struct fuzz {
    uint8_t *map;
    struct tcmu_ring r;
    uint32_t head;
    int live;
    uint16_t next_id;
};

static uint32_t *mb_u32(struct fuzz *f, size_t off) { return (uint32_t *)(f->map + off); }

static void check_tail(struct fuzz *f)
{
    uint32_t tail = __atomic_load_n(mb_u32(f, offsetof(struct tcmu_mailbox, cmd_tail)),
                                    __ATOMIC_ACQUIRE);
    if (tail >= RING || tail % 8)
        abort();
}

static void complete_all(struct fuzz *f, struct input *in)
{
    while (f->live) {
        int i = (int)(take(in, 1) % (unsigned)f->live);
        struct tcmu_req *q = &reqs[idx[i]];
        struct iov_view v = iov_view_make(q->iov, (int)q->iov_cnt, q->data_len);
        iov_view_memset(&v, 0, 0x5a, q->data_len);
        uint8_t sense[18] = { 0x70, 0, 0x05, [7] = 10, [12] = 0x24 };
        unsigned how = (unsigned)take(in, 1);
        tcmu_ring_complete(&f->r, q, (uint8_t)(how & 0x02), sense, how & 1 ? sizeof(sense) : 0,
                           how & 4, q->data_len >> (how & 3));
        check_tail(f);
        int t = idx[i];
        idx[i] = idx[f->live - 1];
        idx[f->live - 1] = t;
        f->live--;
    }
}

/* Parse what is there; commands are kept for completion. */
static void consume(struct fuzz *f, struct input *in)
{
    for (int steps = 0; steps < 256; steps++) {
        if (f->live == MAXQ)
            complete_all(f, in);
        struct tcmu_req *q = &reqs[idx[f->live]];
        struct tcmu_tmr tmr;
        enum tcmu_next k = tcmu_ring_next(&f->r, q, &tmr);
        if (k == TCMU_NEXT_EMPTY || k == TCMU_NEXT_BROKEN)
            return;
        check_tail(f);
        if (k != TCMU_NEXT_CMD)
            continue;
        if (q->cdb_len == 0 || q->cdb_len > SCSI_CDB_LEN_MAX)
            abort();
        for (uint32_t i = 0; i < q->iov_cnt; i++) {
            const uint8_t *b = q->iov[i].iov_base;
            if (b < f->map + CMDR_OFF + RING || b > f->map + MAP ||
                q->iov[i].iov_len > (size_t)(f->map + MAP - b))
                abort();
        }
        f->live++;
    }
}

static uint32_t free_space(struct fuzz *f)
{
    uint32_t tail = __atomic_load_n(mb_u32(f, offsetof(struct tcmu_mailbox, cmd_tail)),
                                    __ATOMIC_ACQUIRE);
    return RING - (f->head + RING - tail) % RING - 1;
}

static void publish(struct fuzz *f, uint32_t head)
{
    __atomic_store_n(mb_u32(f, offsetof(struct tcmu_mailbox, cmd_head)), head, __ATOMIC_RELEASE);
}

/* One entry, as queue_cmd_ring() writes it, but for the hostile fields. */
static int produce(struct fuzz *f, struct input *in)
{
    unsigned sel = (unsigned)take(in, 2);
    unsigned op = sel & 3;                         /* 0 PAD, 1-2 CMD, 3 TMR */
    uint32_t n = (uint32_t)take(in, 1) % 24;
    uint8_t cdb[SCSI_CDB_LEN_MAX] = { (uint8_t)take(in, 1) };
    cdb[7] = (uint8_t)take(in, 1);
    uint32_t cdb_len = scsi_cdb_length(cdb, 8);
    uint32_t base = op == 3 ? (uint32_t)offsetof(struct tcmu_tmr_entry, cmd_ids) + 2 * n
                            : 48 + 16 * n;
    if (op != 3 && base < sizeof(struct tcmu_cmd_entry))
        base = sizeof(struct tcmu_cmd_entry);
    base = (base + 7) & ~7u;
    uint32_t size = op == 0 ? 8 * (1 + (uint32_t)take(in, 1) % 32)
                            : base + (op == 3 ? 0 : (cdb_len + 7) & ~7u);
    uint32_t to_end = RING - f->head;
    if (free_space(f) < size + (to_end < size ? to_end : 0))
        return -1;
    if (to_end < size) {                           /* PAD to the end, as the kernel */
        uint32_t lo = to_end | TCMU_OP_PAD;
        memcpy(f->map + CMDR_OFF + f->head, &lo, 4);
        f->head = 0;
        publish(f, 0);
    }
    uint8_t *e = f->map + CMDR_OFF + f->head;
    memset(e, 0, size);
    uint32_t len_op = size | (op == 0 ? TCMU_OP_PAD : op == 3 ? TCMU_OP_TMR : TCMU_OP_CMD);
    if (sel & 0x04)
        len_op = (uint32_t)take(in, 4);
    memcpy(e, &len_op, 4);
    uint16_t id = f->next_id++;
    memcpy(e + 4, &id, 2);
    if (op == 3) {
        e[8] = (uint8_t)take(in, 1);
        uint32_t cnt = sel & 0x08 ? (uint32_t)take(in, 4) : n;
        memcpy(e + 12, &cnt, 4);
    } else if (op != 0) {
        uint32_t cnt = sel & 0x08 ? (uint32_t)take(in, 4) : n, bidi = sel & 0x10 ? 1 : 0;
        uint32_t dif = sel & 0x20 ? 1 : 0;
        uint64_t cdb_off = CMDR_OFF + f->head + base;
        if (sel & 0x40)
            cdb_off = take(in, 8);
        memcpy(e + 8, &cnt, 4);
        memcpy(e + 12, &bidi, 4);
        memcpy(e + 16, &dif, 4);
        memcpy(e + 24, &cdb_off, 8);
        for (uint32_t i = 0; i < n; i++) {
            uint64_t off = CMDR_OFF + RING + take(in, 2) % DATA, len = take(in, 2);
            if (off + len > MAP)
                len = MAP - off;
            if (sel & (0x80u << (i % 8)))
                off = take(in, 8), len = take(in, 8);
            memcpy(e + 48 + 16 * i, &off, 8);
            memcpy(e + 56 + 16 * i, &len, 8);
        }
        if (base + cdb_len <= size)
            memcpy(e + base, cdb, cdb_len);
    }
    f->head = (f->head + size) % RING;
    publish(f, sel & 0x8000 ? (uint32_t)take(in, 4) : f->head);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!inited) {
        log_set_level(LOG_LVL_OFF);
        for (int i = 0; i < MAXQ; i++) {
            tcmu_req_init(&reqs[i]);
            idx[i] = i;
        }
        inited = 1;
    }
    struct input in = { data, size };
    struct fuzz f = { .map = calloc(1, MAP), .next_id = 1 };
    if (!f.map)
        return 0;
    struct tcmu_mailbox mb;
    memset(&mb, 0, sizeof(mb));
    mb.version = TCMU_MAILBOX_VERSION;
    mb.flags = (uint16_t)(take(&in, 1) & 0xf);
    mb.cmdr_off = CMDR_OFF;
    mb.cmdr_size = RING;
    memcpy(f.map, &mb, sizeof(mb));
    if (tcmu_ring_init(&f.r, f.map, MAP, "fuzz", NULL, NULL, NULL) < 0)
        abort(); /* a sound mailbox is accepted */
    for (int round = 0; round < 256 && in.n; round++) {
        if (produce(&f, &in) < 0)
            complete_all(&f, &in);
        consume(&f, &in);
        if (take(&in, 1) & 1)
            complete_all(&f, &in);
    }
    complete_all(&f, &in);
    tcmu_ring_fini(&f.r);
    free(f.map);
    return 0;
}
