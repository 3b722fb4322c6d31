/* test_scsi_dispatch_mt's workload: the image layout and shadow, what
 * written blocks hold (stamps that a crossing read can check whole), and
 * the commands a submitter issues, each updating the shadow as it is
 * submitted. The .c file checks completions and runs the configurations;
 * its header comment explains why the shadow is exact. */
#ifndef TEST_SCSI_DISPATCH_MT_H
#define TEST_SCSI_DISPATCH_MT_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#endif
