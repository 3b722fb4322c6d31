/* Concurrent VMDK writes, reads, zero writes, discards and flushes.
 *
 * The low half of the image: each of four writer threads owns one quarter
 * of every grain and writes random pieces of its quarters with its own
 * byte values, so all four allocate the same grains at once (filling the
 * rest of a new grain from the parent or zeros) and, where the grain
 * directory has holes, the same new grain tables; a lost fill or a double
 * allocation shows up as another thread's bytes or stale data. The high
 * half belongs to a thread mixing writes, zero writes and discards.
 * Readers check every byte they see is either the byte the image started
 * with or one the owning thread may have written; a flusher keeps
 * writing the grain tables out. Afterwards `qemu-img check` must be clean,
 * the image equal to the threads' combined shadow, and the redundant
 * tables equal to the primary ones. Skipped without qemu-img. */
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
static bool keeps_on_discard; /* no zeroed grains: discard is advisory */
static atomic_int stop, failed;
static pthread_barrier_t together;
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
    /* First every writer writes its quarter of the same grains at once
     * (a barrier per grain), so that four threads find each grain
     * unallocated together; then random pieces. */
    for (uint64_t c = 0; c < low_half() / csize; c++) { /* every thread to the end: the barrier */
        pthread_barrier_wait(&together);
        if (atomic_load(&failed))
            continue;
        uint64_t off = c * csize + (uint64_t)t * q + (c % 3) * 512;
        uint64_t len = q - (c % 3) * 1024;
        memset(buf, t * VALUES + 1 + (int)(c % (VALUES - 1)), len);
        int e = blk_pwrite(bs, off, buf, len, 0, NULL);
        if (e < 0) {
            fail_async("writer %d: write %lu+%lu: %d", t, (unsigned long)off, (unsigned long)len, e);
            continue;
        }
        memcpy(shadow + off, buf, len);
    }
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

/* lib/vmdkgen.py beside this file's tests/formats */
static const char *gen_path(void)
{
    static char p[4096];
    snprintf(p, sizeof(p), "%s", __FILE__);
    char *s = strrchr(p, '/');
    snprintf(s ? s + 1 : p, sizeof(p) - (size_t)(s ? s + 1 - p : 0), "../formats/lib/vmdkgen.py");
    return p;
}

struct cfg {
    const char *what;
    const char *make;         /* shell commands making t.vmdk (and its parent); %s: vmdkgen.py */
    bool zeroed;
};

static void run_cfg(const struct cfg *c)
{
    tu_sh("rm -f *.vmdk *.raw");
    csize = 65536;
    assert_int_equal(tu_sh(c->make, gen_path()), 0);
    assert_int_equal(tu_sh("qemu-img convert -O raw t.vmdk start.raw"), 0);
    assert_int_equal(tu_sh("test $(stat -c %%s start.raw) -gt 0"), 0);
    FILE *f = fopen(tu_path("start.raw"), "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    vsize = (uint64_t)ftell(f);
    fclose(f);
    keeps_on_discard = !c->zeroed;
    start = tu_load("start.raw", vsize);
    shadow = malloc(vsize);
    memcpy(shadow, start, vsize);

    struct scuse_err err = { 0 };
    if (blk_open(tu_path("t.vmdk"), "vmdk", BLK_OPEN_RW, NULL, &bs, &err) < 0)
        fail_msg("open: %s", err.msg);
    atomic_store(&stop, 0);
    pthread_barrier_init(&together, NULL, WRITERS);
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
    pthread_barrier_destroy(&together);
    blk_close(bs);
    if (atomic_load(&failed))
        fail_msg("%s: %s", c->what, failure);
    if (tu_sh("qemu-img check t.vmdk") != 0)
        fail_msg("%s: qemu-img check is not clean", c->what);
    tu_store("end.raw", shadow, vsize);
    if (tu_sh("qemu-img compare -f vmdk -F raw t.vmdk end.raw") != 0)
        fail_msg("%s: image differs from the threads' shadow", c->what);
    if (tu_sh("python3 %s rgdcheck t.vmdk", gen_path()) != 0)
        fail_msg("%s: the redundant grain tables differ from the primary ones", c->what);
    free(start);
    free(shadow);
}

static void test_threads(void **state)
{
    (void)state;
    static const struct cfg cfgs[] = {
        { "monolithicSparse", ": %s; qemu-img create -f vmdk t.vmdk 64M && "
          "qemu-io -c 'write -P 0xf2 0 512k' -c 'write -P 0xf3 3M 64k' t.vmdk", false },
        { "zeroed grains over a parent", ": %s; qemu-img create -f vmdk b.vmdk 4M && "
          "qemu-io -c 'write -P 0xf1 0 4M' b.vmdk && "
          "qemu-img create -f vmdk -o zeroed_grain=on -b b.vmdk -F vmdk t.vmdk && "
          "qemu-io -c 'write -z 64k 128k' -c 'write -P 0xf4 1M 64k' t.vmdk", true },
        { "grain-directory holes (8-entry grain tables)",
          "python3 %s sparse t.vmdk g.raw --size 4194304 --seed 5 --grain 128 --gtes 8 --gd-holes", false },
    };
    for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++)
        run_cfg(&cfgs[i]);
}

static int setup(void **state)
{
    (void)state;
    return tu_qemu_setup("vmdk-mt", NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_threads, tu_need_qemu),
    };
    return cmocka_run_group_tests(tests, setup, tu_teardown);
}
