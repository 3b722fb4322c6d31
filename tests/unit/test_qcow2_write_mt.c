/* Concurrent qcow2 writes, reads, zero writes, discards and flushes.
 *
 * The low half of the image: each of four writer threads owns one quarter
 * of every cluster and writes random pieces of its quarters with its own
 * byte values, so all four allocate, copy on write (over a backing file,
 * under a snapshot, into subclusters) in the same clusters at once; a lost
 * fill or a double allocation shows up as another thread's bytes or stale
 * data. The high half belongs to a thread mixing writes, zero writes and
 * discards. Readers check every byte they see is either the byte the image
 * started with or one the owning thread may have written; a flusher keeps
 * flushing (with a small L2 cache, the writers flush too). Afterwards
 * `qemu-img check` must be clean and the image equal to the threads'
 * combined shadow. Skipped without qemu-img. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "blk/blk.h"
#include "testutil.h"

#define WRITERS 4
#define READERS 2
#define VALUES 40 /* writer t writes bytes t*VALUES+1 .. t*VALUES+VALUES-1 */

static struct blk_node *bs;
static uint64_t vsize, csize;
static uint8_t *start, *shadow;
static bool keeps_on_discard;
static atomic_int stop, failed;
static char failure[256];

static void fail_async(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail_async(const char *fmt, ...)
{
    if (atomic_exchange(&failed, 1))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(failure, sizeof(failure), fmt, ap);
    va_end(ap);
}

static uint64_t low_half(void) { return vsize / 2 / csize * csize; }

static void *writer(void *arg)
{
    int t = (int)(intptr_t)arg;
    uint64_t r = 0x1234567ull + 977 * (uint64_t)t;
    uint64_t q = csize / WRITERS;
    uint8_t *buf = malloc(q);
    for (int i = 0; i < 1200 && !atomic_load(&failed); i++) {
        uint64_t c = tu_below(&r, low_half() / csize);
        uint64_t a = tu_below(&r, q), len = 1 + tu_below(&r, q - a);
        if (tu_below(&r, 4) == 0)
            a = 0, len = q;
        uint64_t off = c * csize + (uint64_t)t * q + a;
        memset(buf, t * VALUES + 1 + (int)tu_below(&r, VALUES - 1), len);
        int e = blk_pwrite(bs, off, buf, len, 0, NULL);
        if (e < 0) {
            fail_async("writer %d: write %lu+%lu: %d", t, (unsigned long)off, (unsigned long)len, e);
            break;
        }
        memcpy(shadow + off, buf, len);
    }
    free(buf);
    return NULL;
}

/* The high half: writes, zero writes and discards, one thread. */
static void *mixer(void *arg)
{
    (void)arg;
    uint64_t r = 0xabcdefull;
    uint64_t base = low_half(), span = vsize - base;
    uint8_t *buf = malloc(3 * csize);
    for (int i = 0; i < 800 && !atomic_load(&failed); i++) {
        uint64_t off = base + tu_below(&r, span - 1), len = 1 + tu_below(&r, 3 * csize);
        if (len > vsize - off)
            len = vsize - off;
        uint64_t k = tu_below(&r, 4);
        int e;
        if (k < 2) {
            memset(buf, 200 + (int)tu_below(&r, 50), len);
            e = blk_pwrite(bs, off, buf, len, 0, NULL);
            memcpy(shadow + off, buf, len);
        } else if (k == 2) {
            e = blk_write_zeroes(bs, off, len, tu_below(&r, 2) ? BLK_ZERO_MAY_UNMAP : 0, NULL);
            memset(shadow + off, 0, len);
        } else {
            e = blk_discard(bs, off, len, NULL);
            uint64_t a = (off + csize - 1) / csize * csize, end = off + len;
            uint64_t b = end == vsize ? vsize : end / csize * csize;
            if (a < b && !keeps_on_discard)
                memset(shadow + a, 0, b - a);
        }
        if (e < 0) {
            fail_async("mixer: op %lu at %lu+%lu: %d", (unsigned long)k, (unsigned long)off,
                       (unsigned long)len, e);
            break;
        }
    }
    free(buf);
    return NULL;
}

static void *reader(void *arg)
{
    uint64_t r = 0x777ull + (uint64_t)(intptr_t)arg;
    uint64_t q = csize / WRITERS;
    uint8_t *buf = malloc(2 * csize);
    while (!atomic_load(&stop) && !atomic_load(&failed)) {
        uint64_t off = tu_below(&r, low_half() - 1), len = 1 + tu_below(&r, 2 * csize);
        if (len > low_half() - off)
            len = low_half() - off;
        int e = blk_pread(bs, off, buf, len, NULL);
        if (e < 0) {
            fail_async("reader: read %lu+%lu: %d", (unsigned long)off, (unsigned long)len, e);
            break;
        }
        for (uint64_t i = 0; i < len; i++) {
            uint64_t p = off + i;
            int owner = (int)((p % csize) / q);
            int v = buf[i];
            if (v != start[p] && (v <= owner * VALUES || v >= (owner + 1) * VALUES)) {
                fail_async("reader: byte %lu is 0x%02x: neither the original 0x%02x nor writer %d's",
                           (unsigned long)p, v, start[p], owner);
                break;
            }
        }
    }
    free(buf);
    return NULL;
}

static void *flusher(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop) && !atomic_load(&failed)) {
        int e = blk_flush(bs, NULL);
        if (e < 0) {
            fail_async("flush: %d", e);
            break;
        }
        usleep(2000);
    }
    return NULL;
}

struct cfg {
    const char *opts;
    uint64_t cs;
    bool overlay, snap;
    uint64_t cache;
};

static void run_cfg(const struct cfg *c)
{
    tu_sh("rm -f *.qcow2 *.raw");
    csize = c->cs;
    vsize = 64 * c->cs;
    keeps_on_discard = c->overlay && strstr(c->opts, "compat=0.10");
    if (c->overlay)
        assert_int_equal(tu_sh("qemu-img create -f qcow2 -o %s b.qcow2 %lu && qemu-io -c 'write -P 0xf1 0 %lu' b.qcow2 && "
                               "qemu-img create -f qcow2 -o %s -b b.qcow2 -F qcow2 t.qcow2 %lu",
                               c->opts, (unsigned long)vsize, (unsigned long)vsize, c->opts,
                               (unsigned long)vsize), 0);
    else
        assert_int_equal(tu_sh("qemu-img create -f qcow2 -o %s t.qcow2 %lu", c->opts, (unsigned long)vsize), 0);
    assert_int_equal(tu_sh("qemu-io -c 'write -P 0xf2 0 %lu' -c 'write -c -P 0xf3 %lu %lu' t.qcow2",
                           (unsigned long)(vsize / 8), (unsigned long)(vsize / 4), (unsigned long)c->cs), 0);
    if (c->snap)
        assert_int_equal(tu_sh("qemu-img snapshot -c s t.qcow2"), 0);
    assert_int_equal(tu_sh("qemu-img convert -O raw t.qcow2 start.raw"), 0);
    start = tu_load("start.raw", vsize);
    shadow = malloc(vsize);
    memcpy(shadow, start, vsize);

    struct scuse_err err = { 0 };
    struct blk_opts o = { 0 };
    char cbuf[32];
    tu_l2_cache(&o, cbuf, sizeof(cbuf), c->cache);
    if (blk_open(tu_path("t.qcow2"), "qcow2", BLK_OPEN_RW, &o, &bs, &err) < 0)
        fail_msg("open: %s", err.msg);
    atomic_store(&stop, 0);
    pthread_t w[WRITERS], rd[READERS], fl, mx;
    for (int i = 0; i < WRITERS; i++)
        pthread_create(&w[i], NULL, writer, (void *)(intptr_t)i);
    for (int i = 0; i < READERS; i++)
        pthread_create(&rd[i], NULL, reader, (void *)(intptr_t)i);
    pthread_create(&fl, NULL, flusher, NULL);
    pthread_create(&mx, NULL, mixer, NULL);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(w[i], NULL);
    pthread_join(mx, NULL);
    atomic_store(&stop, 1);
    for (int i = 0; i < READERS; i++)
        pthread_join(rd[i], NULL);
    pthread_join(fl, NULL);
    blk_close(bs);
    if (atomic_load(&failed))
        fail_msg("%s: %s", c->opts, failure);
    if (tu_sh("qemu-img check t.qcow2") != 0)
        fail_msg("%s: qemu-img check is not clean", c->opts);
    tu_store("end.raw", shadow, vsize);
    if (tu_sh("qemu-img compare -f qcow2 -F raw t.qcow2 end.raw") != 0)
        fail_msg("%s: image differs from the threads' shadow", c->opts);
    free(start);
    free(shadow);
}

static void test_threads(void **state)
{
    (void)state;
    static const struct cfg cfgs[] = {
        { "compat=1.1,cluster_size=65536", 65536, false, false, 0 },
        { "compat=1.1,cluster_size=65536", 65536, true, false, 1 },
        { "compat=1.1,cluster_size=65536", 65536, false, true, 0 },
        { "compat=0.10,cluster_size=4096", 4096, true, true, 1 },
        { "compat=1.1,cluster_size=65536,extended_l2=on", 65536, true, false, 0 },
        { "compat=1.1,cluster_size=131072,extended_l2=on", 131072, true, true, 1 },
        { "compat=1.1,cluster_size=512,refcount_bits=64", 512, false, false, 1 },
    };
    for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++)
        run_cfg(&cfgs[i]);
}

static int setup(void **state)
{
    (void)state;
    return tu_qemu_setup("qcow2-mt", NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_threads, tu_need_qemu),
    };
    return cmocka_run_group_tests(tests, setup, tu_teardown);
}
