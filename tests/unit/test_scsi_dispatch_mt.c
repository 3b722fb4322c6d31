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

#include "test_scsi_dispatch_mt.h"

static uint64_t seed;

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
