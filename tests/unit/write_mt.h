/* The concurrent-write harness the image formats' unit tests share
 * (test_qcow2_write_mt.c, test_vmdk_write_mt.c): include it once, in the
 * test's only source file.
 *
 * The low half of the image: each of four writer threads owns one quarter
 * of every cluster (grain) and writes random pieces of its quarters with
 * its own byte values, so all four allocate and fill the same clusters at
 * once; a lost fill or a double allocation shows up as another thread's
 * bytes or stale data. The high half belongs to a thread mixing writes,
 * zero writes and discards. Readers check every byte they see is either
 * the byte the image started with or one the owning thread may have
 * written; a flusher keeps flushing. wmt_run() runs them all and leaves
 * in shadow what the image must hold afterwards; the test judges the
 * image against it with qemu-img. */
#ifndef SCUSE_TEST_WRITE_MT_H
#define SCUSE_TEST_WRITE_MT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blk/blk.h"
#include "testutil.h"

#define WRITERS 4
#define READERS 2
#define VALUES 40 /* writer t writes bytes t*VALUES+1 .. t*VALUES+VALUES-1 */

static struct blk_node *bs;
static uint64_t vsize, csize;
static uint8_t *start, *shadow;
static bool keeps_on_discard; /* discard may leave the data (advisory) */
static bool same_first;       /* the writers' lockstep pass first */
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
    /* With same_first, every writer first writes its quarter of the same
     * cluster at once (a barrier per cluster), so that four threads find
     * each cluster unallocated together; then random pieces. */
    for (uint64_t c = 0; same_first && c < low_half() / csize; c++) { /* every thread to the end: the barrier */
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

/* Run the threads on b (opened read-write; vs bytes in clusters of cs)
 * whose content is st (vs bytes). keeps: a discard may leave the data;
 * lockstep: the writers first write every cluster together. Returns the
 * content the image must now have (malloc'd), or NULL with the first
 * failure in failure. */
static uint8_t *wmt_run(struct blk_node *b, uint64_t vs, uint64_t cs, const uint8_t *st,
                        bool keeps, bool lockstep)
{
    bs = b;
    vsize = vs;
    csize = cs;
    start = (uint8_t *)st;
    keeps_on_discard = keeps;
    same_first = lockstep;
    shadow = malloc(vsize);
    memcpy(shadow, start, vsize);
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
    if (atomic_load(&failed)) {
        free(shadow);
        return NULL;
    }
    return shadow;
}

#endif
