/* Thousands of random concurrent commands through the dispatcher on a
 * qcow2 over a two-deep backing chain made by qemu-img and qemu-io,
 * mirrored into a raw shadow that `qemu-img compare` and `qemu-img check`
 * judge at the end.
 *
 * Why the shadow is exact despite the concurrency:
 *  - the image is cut into one region per submitter thread plus a few
 *    counter blocks. Only the owner writes its region (READ/WRITE 6-16
 *    with FUA, UNMAP with several descriptors, WRITE SAME 10/16 with and
 *    without UNMAP and NDOB, COMPARE AND WRITE, VERIFY), keeping QD
 *    commands in flight at once, overlapping each other;
 *  - the owner updates its part of the shadow when it submits, in
 *    submission order. The dispatcher runs overlapping commands of a LUN
 *    in submission order (dispatch.h), so a read of the own region must
 *    return exactly the shadow as it was when the read was submitted,
 *    and the image ends as the shadow;
 *  - reads and COMPARE AND WRITEs may cross into other regions. There the
 *    content is not deterministic, so every written block carries a stamp
 *    (its LBA, a generation, bytes derived from both) and a crossing read
 *    checks each block is whole: the starting content, zeros, a stamp
 *    for that LBA, a WRITE SAME pattern block or a counter block. A
 *    crossing COMPARE AND WRITE compares a block starting with 0xff,
 *    which no block can hold, so it must miscompare at offset 0 and
 *    write nothing;
 *  - the counter blocks are shared by every thread: read the counter,
 *    COMPARE AND WRITE it with the value + 1. Each counter must end at the
 *    number of successful COMPARE AND WRITEs on it (lost updates or a
 *    torn read-compare-write would show);
 *  - UNMAP is advisory for the part of a descriptor that is not whole
 *    clusters (tests/formats/lib/wsim.py, "strict"): whole clusters inside
 *    it read as zeros (LBPRZ), the partial blocks may read as zeros or
 *    as before. Those blocks are marked "zero also fine" until rewritten;
 *    at the end they are read once (quiesced) and the shadow takes what
 *    they hold, after checking it is one of the two.
 * Reads may also be aborted (scsi_abort right after submission): then
 * they complete with TASK ABORTED, otherwise as usual; every command
 * completes exactly once.
 *
 * SCUSE_STRESS_OPS sets the total number of commands per configuration
 * (default 6000), SCUSE_TEST_SEED the seed. Also run under TSan
 * (`./build.sh tsan`, label concurrency). */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "blk/blk.h"
#include "scsi/dispatch.h"
#include "test_scsi_dispatch_util.h"
#include "testutil.h"

#define THREADS 4
#define QD 6
#define WORKERS 4
#define NCTR 2
#define MAXBYTES (192u << 10)      /* longest transfer */
#define BUFCAP (2 * MAXBYTES)

enum kind {
    K_READ_OWN, K_READ_ANY, K_VERIFY, K_WRITE, K_UNMAP, K_WS, K_CAW_OWN, K_CAW_CROSS,
    K_CTR_READ, K_CTR_CAW, K_SYNC, K_NKINDS
};
static const char *const kind_names[] = { "read", "read-any", "verify", "write", "unmap",
                                          "write-same", "caw", "caw-cross", "ctr-read",
                                          "ctr-caw", "sync" };

static uint64_t seed;

/* One configuration's image, LUN and shadow. */
static struct {
    uint32_t lbs, shift;
    uint64_t blocks, cpb;          /* blocks, blocks per top-image cluster */
    uint64_t region;               /* blocks per submitter region */
    uint64_t ctr_lba;              /* first counter block */
    uint8_t *start, *shadow;
    uint8_t *zok;                  /* per block: zeros are also fine */
    struct blk_node *bs;
    struct scsi_lun *lun;
    struct scsi_disp *d;
    atomic_int failed;
    char failure[512];
    atomic_uint wins[NCTR];
} g;

static void fail_async(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail_async(const char *fmt, ...)
{
    if (atomic_exchange(&g.failed, 1))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g.failure, sizeof(g.failure), fmt, ap);
    va_end(ap);
}

/* ---- block contents ---- */

static void fill_hash(uint8_t *p, size_t n, uint64_t h)
{
    uint64_t x = h * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i += 8) {
        x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
        uint64_t v = x * 0x2545f4914f6cdd1dull;
        memcpy(p + i, &v, n - i < 8 ? n - i : 8);
    }
}

/* Written data: 0xc5, LBA, generation, then bytes derived from both. */
static void stamp(uint8_t *b, uint64_t lba, uint64_t gen)
{
    memset(b, 0, 24);
    b[0] = 0xc5;
    td_be(b + 8, lba, 8);
    td_be(b + 16, gen, 8);
    fill_hash(b + 24, g.lbs - 24, lba * 0x100000001b3ull ^ gen);
}

/* A WRITE SAME block: 0xc6, generation, derived bytes (no LBA). */
static void ws_block(uint8_t *b, uint64_t gen)
{
    memset(b, 0, 24);
    b[0] = 0xc6;
    td_be(b + 16, gen, 8);
    fill_hash(b + 24, g.lbs - 24, ~gen);
}

/* A counter: 0xc7, LBA, value, then the value's bytes repeated. */
static void ctr_block(uint8_t *b, uint64_t lba, uint64_t v)
{
    memset(b, 0, g.lbs);
    b[0] = 0xc7;
    td_be(b + 8, lba, 8);
    for (uint32_t i = 16; i < g.lbs; i += 8)
        td_be(b + i, v, 8);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    return p[0] == 0 && memcmp(p, p + 1, n - 1) == 0;
}

static bool is_ctr(uint64_t lba) { return lba >= g.ctr_lba && lba < g.ctr_lba + NCTR; }

/* A block read where the content is not deterministic: one of the forms
 * any command could have left there, whole. */
static bool block_whole(uint64_t lba, const uint8_t *b)
{
    uint8_t want[4096];
    if (memcmp(b, g.start + (lba << g.shift), g.lbs) == 0 || all_zero(b, g.lbs))
        return true;
    switch (b[0]) {
    case 0xc5:
        stamp(want, lba, td_get_be(b + 16, 8));
        break;
    case 0xc6:
        ws_block(want, td_get_be(b + 16, 8));
        break;
    case 0xc7:
        if (!is_ctr(lba))
            return false;
        ctr_block(want, lba, td_get_be(b + 16, 8));
        break;
    default:
        return false;
    }
    return memcmp(b, want, g.lbs) == 0;
}

/* ---- submitters ---- */

struct sub;

struct slot {
    struct scsi_cmd cmd;
    uint8_t cdb[16];
    uint8_t sense[SCSI_SENSE_MAX];
    struct iovec iov[3];
    uint8_t *buf, *expect, *maybe0;
    enum kind kind;
    uint64_t lba, n;
    int64_t mis;                   /* expected miscompare offset; -1: GOOD expected */
    bool aborted;                  /* scsi_abort found it not started */
    int ctr;
    atomic_int ndone;
    struct sub *sub;
    struct slot *next;
};

struct sub {
    int id;
    uint64_t rng, lo, hi;          /* own region [lo, hi) */
    uint64_t ops, gen;
    struct slot slots[QD];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct slot *done_head;
    unsigned count[K_NKINDS], aborts, miscompares;
};

static void on_done(struct scsi_cmd *cmd)
{
    struct slot *s = cmd->priv;
    struct sub *u = s->sub;
    atomic_fetch_add(&s->ndone, 1);
    pthread_mutex_lock(&u->lock);
    s->next = u->done_head;
    u->done_head = s;
    pthread_cond_signal(&u->cond);
    pthread_mutex_unlock(&u->lock);
}

/* The data buffer as one to three iovecs, cut at arbitrary bytes. */
static void set_data(struct sub *u, struct slot *s, enum scsi_dir dir, size_t len)
{
    int n = len >= 4 ? 1 + (int)tu_below(&u->rng, 3) : 1;
    size_t a = n > 1 ? 1 + tu_below(&u->rng, len - 2) : len;
    size_t b = n > 2 ? a + tu_below(&u->rng, len - a) : len;
    s->iov[0] = (struct iovec){ s->buf, a };
    s->iov[1] = (struct iovec){ s->buf + a, b - a };
    s->iov[2] = (struct iovec){ s->buf + b, len - b };
    s->cmd.data = iov_view_make(s->iov, n, len);
    s->cmd.dir = dir;
}

/* READ/WRITE CDB of a random size that can carry lba and n. */
static void rw_cdb(struct sub *u, struct slot *s, bool write, uint64_t lba, uint32_t n, bool fua)
{
    static const uint8_t rd[] = { 0x08, 0x28, 0xa8, 0x88 }, wr[] = { 0x0a, 0x2a, 0xaa, 0x8a };
    int k = (int)tu_below(&u->rng, 4);
    if (k == 0 && (lba > 0x1fffff || n > 255))
        k = 1;
    if (k == 1 && n > 0xffff)
        k = 3;
    uint8_t op = write ? wr[k] : rd[k];
    memset(s->cdb, 0, 16);
    s->cdb[0] = op;
    s->cmd.cdb_len = k == 0 ? 6 : k == 1 ? 10 : k == 2 ? 12 : 16;
    if (k == 0) {
        td_be(s->cdb + 1, lba, 3);
        s->cdb[4] = (uint8_t)n;
        return;
    }
    if (fua)
        s->cdb[1] = 0x08;
    if (k == 3) {
        td_be(s->cdb + 2, lba, 8);
        td_be(s->cdb + 10, n, 4);
    } else {
        td_be(s->cdb + 2, lba, 4);
        td_be(s->cdb + (k == 1 ? 7 : 6), n, k == 1 ? 2 : 4);
    }
}

static void submit(struct sub *u, struct slot *s, enum kind k)
{
    s->kind = k;
    s->cmd.cdb = s->cdb;
    s->cmd.tag = (uint64_t)u->id << 40 | u->gen;
    atomic_store(&s->ndone, 0);
    u->count[k]++;
    scsi_submit(g.d, g.lun, &s->cmd);
}

/* A random range of at most max blocks inside [lo, hi). */
static void pick(struct sub *u, uint64_t lo, uint64_t hi, uint64_t max, uint64_t *lba, uint64_t *n)
{
    uint64_t len = 1 + tu_below(&u->rng, tu_below(&u->rng, 10) == 0 ? max : max / 8 + 1);
    if (len > hi - lo)
        len = hi - lo;
    *lba = lo + tu_below(&u->rng, hi - lo - len + 1);
    *n = len;
}

static bool certain(uint64_t lba, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (g.zok[lba + i])
            return false;
    return true;
}

static void shadow_set(uint64_t lba, uint64_t n, const uint8_t *src)
{
    if (src)
        memcpy(g.shadow + (lba << g.shift), src, n << g.shift);
    else
        memset(g.shadow + (lba << g.shift), 0, n << g.shift);
    memset(g.zok + lba, 0, n);
}

static void issue_read(struct sub *u, struct slot *s, bool own)
{
    uint64_t max = MAXBYTES >> g.shift;
    if (own)
        pick(u, u->lo, u->hi, max, &s->lba, &s->n);
    else
        pick(u, 0, g.blocks, max, &s->lba, &s->n);
    if (own) {
        memcpy(s->expect, g.shadow + (s->lba << g.shift), s->n << g.shift);
        memcpy(s->maybe0, g.zok + s->lba, s->n);
    }
    rw_cdb(u, s, false, s->lba, (uint32_t)s->n, false);
    set_data(u, s, SCSI_DIR_FROM_DEV, s->n << g.shift);
    s->cmd.attr = SCSI_TASK_SIMPLE;
    submit(u, s, own ? K_READ_OWN : K_READ_ANY);
    s->aborted = tu_below(&u->rng, 30) == 0 && scsi_abort(g.d, g.lun, s->cmd.tag);
    u->aborts += s->aborted;
}

static void issue_write(struct sub *u, struct slot *s)
{
    pick(u, u->lo, u->hi, MAXBYTES >> g.shift, &s->lba, &s->n);
    for (uint64_t i = 0; i < s->n; i++)
        stamp(s->buf + (i << g.shift), s->lba + i, u->gen);
    shadow_set(s->lba, s->n, s->buf);
    rw_cdb(u, s, true, s->lba, (uint32_t)s->n, tu_below(&u->rng, 4) == 0);
    set_data(u, s, SCSI_DIR_TO_DEV, s->n << g.shift);
    s->cmd.attr = tu_below(&u->rng, 50) == 0 ? SCSI_TASK_ORDERED : SCSI_TASK_SIMPLE;
    submit(u, s, K_WRITE);
}

/* UNMAP: whole clusters inside a descriptor become zeros, the partial
 * blocks at its ends may. */
static void shadow_unmap(uint64_t lba, uint64_t n)
{
    uint64_t a = (lba + g.cpb - 1) / g.cpb * g.cpb, b = (lba + n) / g.cpb * g.cpb;
    if (a >= b)
        a = b = lba + n;
    for (uint64_t x = lba; x < lba + n; x++) {
        if (x >= a && x < b)
            shadow_set(x, 1, NULL);
        else if (!all_zero(g.shadow + (x << g.shift), g.lbs))
            g.zok[x] = 1;
    }
}

static void issue_unmap(struct sub *u, struct slot *s)
{
    int nd = 1 + (int)tu_below(&u->rng, 4);
    size_t len = 8 + 16 * (size_t)nd;
    memset(s->buf, 0, len);
    td_be(s->buf, len - 2, 2);
    td_be(s->buf + 2, len - 8, 2);
    for (int i = 0; i < nd; i++) {
        uint64_t lba, n;
        if (tu_below(&u->rng, 2)) {      /* whole clusters */
            uint64_t nc = (u->hi - u->lo) / g.cpb;
            uint64_t c = tu_below(&u->rng, nc), k = 1 + tu_below(&u->rng, 3);
            if (c + k > nc)
                k = nc - c;
            lba = u->lo + c * g.cpb;
            n = k * g.cpb;
        } else {
            pick(u, u->lo, u->hi, 3 * g.cpb, &lba, &n);
        }
        td_be(s->buf + 8 + 16 * i, lba, 8);
        td_be(s->buf + 16 + 16 * i, n, 4);
        shadow_unmap(lba, n);
    }
    memset(s->cdb, 0, 16);
    s->cdb[0] = 0x42;
    td_be(s->cdb + 7, len, 2);
    s->cmd.cdb_len = 10;
    set_data(u, s, SCSI_DIR_TO_DEV, len);
    s->cmd.attr = SCSI_TASK_SIMPLE;
    submit(u, s, K_UNMAP);
}

static void issue_ws(struct sub *u, struct slot *s)
{
    pick(u, u->lo, u->hi, 4 * g.cpb, &s->lba, &s->n);
    bool sixteen = tu_below(&u->rng, 2), unmap = tu_below(&u->rng, 2);
    bool ndob = sixteen && tu_below(&u->rng, 4) == 0, zero = ndob || tu_below(&u->rng, 2);
    memset(s->cdb, 0, 16);
    s->cdb[0] = sixteen ? 0x93 : 0x41;
    s->cdb[1] = (unmap ? 0x08 : 0) | (ndob ? 0x01 : 0);
    if (sixteen) {
        td_be(s->cdb + 2, s->lba, 8);
        td_be(s->cdb + 10, s->n, 4);
    } else {
        td_be(s->cdb + 2, s->lba, 4);
        td_be(s->cdb + 7, s->n, 2);
    }
    s->cmd.cdb_len = sixteen ? 16 : 10;
    if (zero)
        memset(s->buf, 0, g.lbs);
    else
        ws_block(s->buf, u->gen);
    for (uint64_t i = 0; i < s->n; i++)
        shadow_set(s->lba + i, 1, zero ? NULL : s->buf);
    if (ndob)
        set_data(u, s, SCSI_DIR_NONE, 0);
    else
        set_data(u, s, SCSI_DIR_TO_DEV, g.lbs);
    s->cmd.attr = SCSI_TASK_SIMPLE;
    submit(u, s, K_WS);
}

/* COMPARE AND WRITE or VERIFY(16) BYTCHK=1 on the own region, either
 * matching the shadow (GOOD; C&W writes new stamps) or with one byte
 * changed (MISCOMPARE at that offset, nothing written). */
static void issue_compare(struct sub *u, struct slot *s, bool caw)
{
    for (int tries = 0;; tries++) {
        pick(u, u->lo, u->hi, caw ? 8 : MAXBYTES >> g.shift >> 1, &s->lba, &s->n);
        if (certain(s->lba, s->n))
            break;
        if (tries == 8) {
            issue_read(u, s, true);
            return;
        }
    }
    size_t half = s->n << g.shift;
    memcpy(s->buf, g.shadow + (s->lba << g.shift), half);
    s->mis = -1;
    if (tu_below(&u->rng, 3) == 0) {
        s->mis = (int64_t)tu_below(&u->rng, half);
        s->buf[s->mis] ^= (uint8_t)(1 + tu_below(&u->rng, 255));
    }
    memset(s->cdb, 0, 16);
    s->cmd.cdb_len = 16;
    td_be(s->cdb + 2, s->lba, 8);
    if (caw) {
        for (uint64_t i = 0; i < s->n; i++)
            stamp(s->buf + half + (i << g.shift), s->lba + i, u->gen);
        if (s->mis < 0)
            shadow_set(s->lba, s->n, s->buf + half);
        s->cdb[0] = 0x89;
        s->cdb[13] = (uint8_t)s->n;
        set_data(u, s, SCSI_DIR_TO_DEV, 2 * half);
    } else {
        s->cdb[0] = 0x8f;
        s->cdb[1] = 0x02;           /* BYTCHK 01b */
        td_be(s->cdb + 10, s->n, 4);
        set_data(u, s, SCSI_DIR_TO_DEV, half);
    }
    s->cmd.attr = SCSI_TASK_SIMPLE;
    submit(u, s, caw ? K_CAW_OWN : K_VERIFY);
}

static void issue_caw_cross(struct sub *u, struct slot *s)
{
    pick(u, 0, g.blocks, 4, &s->lba, &s->n);
    size_t half = s->n << g.shift;
    fill_hash(s->buf, 2 * half, u->gen);
    s->buf[0] = 0xff;               /* no block starts with it */
    memset(s->cdb, 0, 16);
    s->cdb[0] = 0x89;
    td_be(s->cdb + 2, s->lba, 8);
    s->cdb[13] = (uint8_t)s->n;
    s->cmd.cdb_len = 16;
    set_data(u, s, SCSI_DIR_TO_DEV, 2 * half);
    s->cmd.attr = SCSI_TASK_SIMPLE;
    s->mis = 0;
    submit(u, s, K_CAW_CROSS);
}

static void issue_ctr_read(struct sub *u, struct slot *s)
{
    s->ctr = (int)tu_below(&u->rng, NCTR);
    s->lba = g.ctr_lba + (uint64_t)s->ctr;
    s->n = 1;
    rw_cdb(u, s, false, s->lba, 1, false);
    set_data(u, s, SCSI_DIR_FROM_DEV, g.lbs);
    s->cmd.attr = SCSI_TASK_SIMPLE;
    submit(u, s, K_CTR_READ);
}

static void issue_sync(struct sub *u, struct slot *s)
{
    bool sixteen = tu_below(&u->rng, 2);
    memset(s->cdb, 0, 16);
    s->cdb[0] = sixteen ? 0x91 : 0x35;
    s->cmd.cdb_len = sixteen ? 16 : 10;
    set_data(u, s, SCSI_DIR_NONE, 0);
    s->cmd.attr = tu_below(&u->rng, 3) == 0 ? SCSI_TASK_HEAD_OF_QUEUE : SCSI_TASK_SIMPLE;
    s->lba = s->n = 0;
    submit(u, s, K_SYNC);
}

static void issue(struct sub *u, struct slot *s)
{
    u->gen++;
    s->mis = -1;
    s->aborted = false;
    unsigned r = (unsigned)tu_below(&u->rng, 100);
    if (r < 18)
        issue_read(u, s, true);
    else if (r < 25)
        issue_read(u, s, false);
    else if (r < 29)
        issue_compare(u, s, false);
    else if (r < 50)
        issue_write(u, s);
    else if (r < 57)
        issue_unmap(u, s);
    else if (r < 66)
        issue_ws(u, s);
    else if (r < 73)
        issue_compare(u, s, true);
    else if (r < 77)
        issue_caw_cross(u, s);
    else if (r < 97)
        issue_ctr_read(u, s);
    else
        issue_sync(u, s);
}

/* ---- completions ---- */

static int64_t sense_info(const struct slot *s, int *key, int *asc)
{
    struct tcmd t;                 /* td_sense reads cmd and sense only */
    memcpy(&t.cmd, &s->cmd, sizeof(t.cmd));
    memcpy(t.sense, s->sense, sizeof(t.sense));
    int ascq;
    td_sense(&t, key, asc, &ascq);
    return td_sense_info(&t);
}

static const char *describe(const struct slot *s)
{
    static __thread char b[160];
    snprintf(b, sizeof(b), "thread %d %s (CDB %02x) LBA %lu+%lu", s->sub->id,
             kind_names[s->kind], s->cdb[0], (unsigned long)s->lba, (unsigned long)s->n);
    return b;
}

/* Check a completed command; returns true when the slot was resubmitted. */
static bool complete(struct sub *u, struct slot *s)
{
    if (atomic_load(&s->ndone) != 1) {
        fail_async("%s: done() called %d times", describe(s), atomic_load(&s->ndone));
        return false;
    }
    uint8_t st = s->cmd.status;
    if (s->aborted || st == SCSI_STATUS_TASK_ABORTED) {
        if (!s->aborted || st != SCSI_STATUS_TASK_ABORTED)
            fail_async("%s: abort said %d, status 0x%x", describe(s), s->aborted, st);
        return false;
    }
    if (s->mis >= 0 || (s->kind == K_CTR_CAW && st == SCSI_STATUS_CHECK_CONDITION)) {
        int key, asc;
        int64_t info = sense_info(s, &key, &asc);
        bool ctr = s->kind == K_CTR_CAW;
        if (st != SCSI_STATUS_CHECK_CONDITION || key != 0xe || asc != 0x1d ||
            (ctr ? info < 16 || info >= 24 : info != s->mis))
            fail_async("%s: status 0x%x key 0x%x asc 0x%x info %ld, expected MISCOMPARE at %ld",
                       describe(s), st, key, asc, (long)info, (long)s->mis);
        u->miscompares++;
        return false;
    }
    if (st != SCSI_STATUS_GOOD) {
        int key, asc;
        sense_info(s, &key, &asc);
        fail_async("%s: status 0x%x key 0x%x asc 0x%x", describe(s), st, key, asc);
        return false;
    }
    switch (s->kind) {
    case K_READ_OWN:
        for (uint64_t i = 0; i < s->n; i++) {
            const uint8_t *got = s->buf + (i << g.shift), *want = s->expect + (i << g.shift);
            if (memcmp(got, want, g.lbs) != 0 && !(s->maybe0[i] && all_zero(got, g.lbs))) {
                fail_async("%s: block %lu is not what the commands before it left "
                           "(got %02x.. want %02x..)", describe(s), (unsigned long)(s->lba + i),
                           got[0], want[0]);
                break;
            }
        }
        break;
    case K_READ_ANY:
        for (uint64_t i = 0; i < s->n; i++) {
            if (!block_whole(s->lba + i, s->buf + (i << g.shift))) {
                fail_async("%s: block %lu is torn or misplaced", describe(s),
                           (unsigned long)(s->lba + i));
                break;
            }
        }
        break;
    case K_CTR_READ: {
        uint64_t v = td_get_be(s->buf + 16, 8);
        uint8_t want[4096];
        ctr_block(want, s->lba, v);
        if (memcmp(s->buf, want, g.lbs) != 0) {
            fail_async("%s: counter block torn", describe(s));
            break;
        }
        ctr_block(s->buf + g.lbs, s->lba, v + 1);   /* compare: what was read */
        memset(s->cdb, 0, 16);
        s->cdb[0] = 0x89;
        td_be(s->cdb + 2, s->lba, 8);
        s->cdb[13] = 1;
        s->cmd.cdb_len = 16;
        set_data(u, s, SCSI_DIR_TO_DEV, 2 * (size_t)g.lbs);
        s->mis = -1;
        submit(u, s, K_CTR_CAW);
        return true;
    }
    case K_CTR_CAW:
        atomic_fetch_add(&g.wins[s->ctr], 1);
        break;
    default:
        if (s->cmd.resid || s->cmd.overflow)
            fail_async("%s: GOOD with residual %u", describe(s), s->cmd.resid);
        break;
    }
    return false;
}

static void *submitter(void *arg)
{
    struct sub *u = arg;
    struct slot *free_list = NULL;
    for (int i = QD - 1; i >= 0; i--) {
        u->slots[i].next = free_list;
        free_list = &u->slots[i];
    }
    unsigned inflight = 0;
    uint64_t issued = 0;
    for (;;) {
        if (free_list && issued < u->ops && !atomic_load(&g.failed)) {
            struct slot *s = free_list;
            free_list = s->next;
            issue(u, s);
            issued++;
            inflight++;
            continue;
        }
        if (!inflight)
            break;
        pthread_mutex_lock(&u->lock);
        while (!u->done_head)
            pthread_cond_wait(&u->cond, &u->lock);
        struct slot *s = u->done_head;
        u->done_head = s->next;
        pthread_mutex_unlock(&u->lock);
        if (!complete(u, s)) {
            s->next = free_list;
            free_list = s;
            inflight--;
        }
    }
    return NULL;
}

/* ---- one configuration ---- */

/* One command from the main thread, waited for (the image quiesced). */
static void sync_cmd(struct slot *s, bool write, uint64_t lba, uint64_t n)
{
    struct sub u = { .id = 99, .rng = 1 };
    pthread_mutex_init(&u.lock, NULL);
    pthread_cond_init(&u.cond, NULL);
    s->sub = &u;
    rw_cdb(&u, s, write, lba, (uint32_t)n, false);
    set_data(&u, s, write ? SCSI_DIR_TO_DEV : SCSI_DIR_FROM_DEV, n << g.shift);
    s->cmd.attr = SCSI_TASK_SIMPLE;
    submit(&u, s, write ? K_WRITE : K_READ_OWN);
    pthread_mutex_lock(&u.lock);
    while (!u.done_head)
        pthread_cond_wait(&u.cond, &u.lock);
    pthread_mutex_unlock(&u.lock);
    if (s->cmd.status != SCSI_STATUS_GOOD)
        fail_msg("%s at LBA %lu: status 0x%x", write ? "write" : "read", (unsigned long)lba,
                 s->cmd.status);
    pthread_mutex_destroy(&u.lock);
    pthread_cond_destroy(&u.cond);
}

static void slot_init(struct slot *s, struct sub *u)
{
    memset(s, 0, sizeof(*s));
    s->buf = malloc(BUFCAP);
    s->expect = malloc(MAXBYTES);
    s->maybe0 = malloc(MAXBYTES >> 9);
    assert_non_null(s->buf);
    s->cmd.sense = s->sense;
    s->cmd.done = on_done;
    s->cmd.priv = s;
    s->sub = u;
}

static void slot_free(struct slot *s)
{
    free(s->buf);
    free(s->expect);
    free(s->maybe0);
}

struct cfg {
    const char *name;
    uint32_t lbs;
    const char *make;              /* shell: makes top.qcow2 over mid over base */
};

static uint64_t total_ops(void)
{
    const char *e = getenv("SCUSE_STRESS_OPS");
    uint64_t n = e ? strtoull(e, NULL, 0) : 6000;
    return n < THREADS ? THREADS : n;
}

static void run_cfg(const struct cfg *c)
{
    tu_run("rm -f *.qcow2 *.raw *.sum");
    tu_run("%s", c->make);
    tu_run("md5sum base.* mid.qcow2 >chain.sum");
    tu_run("qemu-img convert -O raw top.qcow2 start.raw");
    memset(&g, 0, sizeof(g));
    struct scuse_err err = { 0 };
    if (blk_open(tu_path("top.qcow2"), "qcow2", BLK_OPEN_RW, NULL, &g.bs, &err) < 0)
        fail_msg("open: %s", err.msg);
    assert_int_equal(blk_chain_length(g.bs), 3);
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    cfg.block_size = c->lbs;
    if (scsi_lun_create(&cfg, g.bs, 0, &g.lun, &err) < 0)
        fail_msg("LUN: %s", err.msg);
    struct scsi_disp_config dc = { .workers = WORKERS };
    if (scsi_disp_create(&dc, &g.d, &err) < 0)
        fail_msg("dispatcher: %s", err.msg);
    assert_int_equal(td_ready(g.d, g.lun), 0);

    g.lbs = c->lbs;
    g.shift = c->lbs == 4096 ? 12 : 9;
    g.blocks = scsi_lun_blocks(g.lun);
    g.cpb = g.bs->cluster_size >> g.shift;
    uint64_t span = g.blocks - g.cpb;               /* the last cluster holds the counters */
    g.region = span / THREADS / g.cpb * g.cpb;
    g.ctr_lba = g.blocks - g.cpb;
    g.start = tu_load("start.raw", g.blocks << g.shift);
    g.shadow = malloc(g.blocks << g.shift);
    g.zok = calloc(g.blocks, 1);
    memcpy(g.shadow, g.start, g.blocks << g.shift);

    static struct sub subs[THREADS];
    struct slot main_slot;
    slot_init(&main_slot, NULL);
    for (int i = 0; i < NCTR; i++) {
        ctr_block(main_slot.buf, g.ctr_lba + (uint64_t)i, 0);
        sync_cmd(&main_slot, true, g.ctr_lba + (uint64_t)i, 1);
    }
    uint64_t ops = total_ops() / THREADS;
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        struct sub *u = &subs[i];
        memset(u, 0, sizeof(*u));
        u->id = i;
        u->rng = seed * 31 + (uint64_t)i + 1;
        u->lo = (uint64_t)i * g.region;
        u->hi = u->lo + g.region;
        u->ops = ops;
        pthread_mutex_init(&u->lock, NULL);
        pthread_cond_init(&u->cond, NULL);
        for (int k = 0; k < QD; k++)
            slot_init(&u->slots[k], u);
        pthread_create(&th[i], NULL, submitter, u);
    }
    unsigned count[K_NKINDS] = { 0 }, aborts = 0, mis = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        for (int k = 0; k < K_NKINDS; k++)
            count[k] += subs[i].count[k];
        aborts += subs[i].aborts;
        mis += subs[i].miscompares;
    }
    if (atomic_load(&g.failed))
        fail_msg("%s: %s", c->name, g.failure);

    /* Quiesced: settle the blocks UNMAP may or may not have zeroed. */
    unsigned settled = 0;
    for (uint64_t b = 0; b < g.blocks; b++) {
        if (!g.zok[b])
            continue;
        sync_cmd(&main_slot, false, b, 1);
        const uint8_t *old = g.shadow + (b << g.shift);
        if (memcmp(main_slot.buf, old, g.lbs) != 0 && !all_zero(main_slot.buf, g.lbs))
            fail_msg("%s: block %lu after a partial UNMAP is neither zeros nor as before",
                     c->name, (unsigned long)b);
        shadow_set(b, 1, main_slot.buf);
        settled++;
    }
    unsigned wins = 0;
    for (int i = 0; i < NCTR; i++) {
        uint64_t lba = g.ctr_lba + (uint64_t)i;
        ctr_block(g.shadow + (lba << g.shift), lba, atomic_load(&g.wins[i]));
        wins += atomic_load(&g.wins[i]);
    }
    /* The whole image through the LUN, for a precise first difference. */
    uint64_t chunk = MAXBYTES >> g.shift;
    for (uint64_t b = 0; b < g.blocks; b += chunk) {
        uint64_t n = g.blocks - b < chunk ? g.blocks - b : chunk;
        sync_cmd(&main_slot, false, b, n);
        for (uint64_t i = 0; i < n; i++)
            if (memcmp(main_slot.buf + (i << g.shift), g.shadow + ((b + i) << g.shift), g.lbs))
                fail_msg("%s: block %lu differs from the shadow%s", c->name,
                         (unsigned long)(b + i), is_ctr(b + i) ? " (a counter: lost update)" : "");
    }
    scsi_disp_destroy(g.d);
    scsi_lun_destroy(g.lun);
    blk_close(g.bs);
    print_message("# %s: %lu commands:", c->name, (unsigned long)(ops * THREADS));
    for (int k = 0; k < K_NKINDS; k++)
        print_message(" %s %u", kind_names[k], count[k]);
    print_message("; %u aborted, %u miscompares, %u counter increments, %u blocks settled "
                  "after partial UNMAPs\n", aborts, mis, wins, settled);

    tu_store("shadow.raw", g.shadow, g.blocks << g.shift);
    if (tu_sh("qemu-img compare -f raw -F qcow2 shadow.raw top.qcow2") != 0)
        fail_msg("%s: qemu-img compare: the image differs from the shadow (see log.txt)", c->name);
    if (tu_sh("qemu-img check top.qcow2") != 0)
        fail_msg("%s: qemu-img check is not clean (see log.txt)", c->name);
    if (tu_sh("md5sum -c --quiet chain.sum") != 0)
        fail_msg("%s: a backing file changed", c->name);
    for (int i = 0; i < THREADS; i++) {
        for (int k = 0; k < QD; k++)
            slot_free(&subs[i].slots[k]);
        pthread_mutex_destroy(&subs[i].lock);
        pthread_cond_destroy(&subs[i].cond);
    }
    slot_free(&main_slot);
    free(g.start);
    free(g.shadow);
    free(g.zok);
}

static void test_mt(void **state)
{
    (void)state;
    static const struct cfg cfgs[] = {
        { "512-byte blocks, 64 KiB clusters over a 16 KiB-cluster qcow2 over a compressed qcow2",
          512,
          "qemu-img create -q -f raw base.raw 24M && "
          "qemu-io -f raw -c 'write -P 0x11 0 6M' -c 'write -P 0x12 8M 5M' "
          "  -c 'write -P 0x13 15M 7M' base.raw && "
          "qemu-img convert -c -f raw -O qcow2 base.raw base.qcow2 && rm base.raw && "
          "qemu-img create -q -f qcow2 -o cluster_size=16k -b base.qcow2 -F qcow2 mid.qcow2 && "
          "qemu-io -c 'write -P 0x21 2M 3M' -c 'write -z 9M 1M' -c 'write -P 0x22 16M 72k' "
          "  -c 'discard 20M 1M' mid.qcow2 && "
          "qemu-img create -q -f qcow2 -o cluster_size=64k -b mid.qcow2 -F qcow2 top.qcow2 && "
          "qemu-io -c 'write -P 0x31 1M 2M' -c 'write -P 0x32 7M 3M' -c 'write -z 21M 512k' "
          "  -c 'write -P 0x33 23M 1M' top.qcow2" },
        { "4096-byte blocks, extended L2 over a 4 KiB-cluster qcow2 over raw",
          4096,
          "qemu-img create -q -f raw base.raw 24M && "
          "qemu-io -f raw -c 'write -P 0x14 0 10M' -c 'write -P 0x15 12M 12M' base.raw && "
          "qemu-img create -q -f qcow2 -o cluster_size=4k -b base.raw -F raw mid.qcow2 && "
          "qemu-io -c 'write -P 0x24 3M 5M' -c 'write -z 14M 2M' -c 'discard 18M 1M' mid.qcow2 && "
          "qemu-img create -q -f qcow2 -o cluster_size=32k,extended_l2=on -b mid.qcow2 "
          "  -F qcow2 top.qcow2 && "
          "qemu-io -c 'write -P 0x34 1M 3M' -c 'write -P 0x35 11M 4k' -c 'write -z 19M 2M' "
          "  top.qcow2" },
    };
    for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++)
        run_cfg(&cfgs[i]);
}

static int group_setup(void **state)
{
    (void)state;
    return tu_qemu_setup("scsi-dispatch-mt", &seed, 0xd15ca7c4ull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_mt, tu_need_qemu),
    };
    return cmocka_run_group_tests(tests, group_setup, tu_teardown);
}
