/* Power loss during qcow2 writes, simulated.
 *
 * pwrite64, pwritev64 and fdatasync are interposed for the image's file
 * descriptor: every write is also recorded, and a sync moves the recorded
 * writes into a model of what is durable. At random points (between
 * operations, and inside flushes just before a sync) a crash image is
 * made from the durable model plus a random subset of the writes issued
 * since the last sync (whole, dropped, or torn into a random subset of
 * their 512-byte sectors), as a disk cache losing power may leave it.
 *
 * Each crash image must pass `qemu-img check` without corruption (leaked
 * clusters are allowed) and must read back, through qemu-img, everything
 * written before the last completed flush that was not overwritten since.
 * Judged by QEMU; skipped without qemu-img. SCUSE_TEST_SEED=<n> reruns;
 * SCUSE_CRASH_IMAGES=<n> crash images per configuration (22). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cmocka.h>

#include "blk/blk.h"
#include "testutil.h"

static uint64_t rng;

static uint64_t below(uint64_t n) { return tu_below(&rng, n); }

/* ---- The durable-state model ---- */

struct rec {
    uint64_t off, len;
    uint8_t *data;
};

static int target_fd = -1;
static uint8_t *durable;
static uint64_t durable_len, durable_cap;
static struct rec *pending;
static size_t npending, cap_pending;
static int evals_left, in_eval;
static unsigned sync_eval_odds;
static void evaluate(void);

static void durable_put(uint64_t off, const uint8_t *p, uint64_t len)
{
    if (off + len > durable_cap) {
        uint64_t cap = durable_cap ? durable_cap : 1 << 20;
        while (cap < off + len)
            cap *= 2;
        durable = realloc(durable, cap);
        memset(durable + durable_cap, 0, cap - durable_cap);
        durable_cap = cap;
    }
    memcpy(durable + off, p, len);
    if (off + len > durable_len)
        durable_len = off + len;
}

static void record(uint64_t off, const void *p, uint64_t len)
{
    if (npending == cap_pending) {
        cap_pending = cap_pending ? 2 * cap_pending : 256;
        pending = realloc(pending, cap_pending * sizeof(*pending));
    }
    struct rec *r = &pending[npending++];
    r->off = off;
    r->len = len;
    r->data = malloc(len);
    memcpy(r->data, p, len);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    static ssize_t (*real)(int, const void *, size_t, off64_t);
    if (!real)
        real = (ssize_t(*)(int, const void *, size_t, off64_t))dlsym(RTLD_NEXT, "pwrite64");
    ssize_t r = real(fd, buf, n, off);
    if (r > 0 && fd == target_fd)
        record((uint64_t)off, buf, (uint64_t)r);
    return r;
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
    static ssize_t (*real)(int, const struct iovec *, int, off64_t);
    if (!real)
        real = (ssize_t(*)(int, const struct iovec *, int, off64_t))dlsym(RTLD_NEXT, "pwritev64");
    ssize_t r = real(fd, iov, cnt, off);
    if (r > 0 && fd == target_fd) {
        uint8_t *all = malloc((size_t)r);
        size_t got = 0;
        for (int i = 0; i < cnt && got < (size_t)r; i++) {
            size_t k = iov[i].iov_len < (size_t)r - got ? iov[i].iov_len : (size_t)r - got;
            memcpy(all + got, iov[i].iov_base, k);
            got += k;
        }
        record((uint64_t)off, all, (uint64_t)r);
        free(all);
    }
    return r;
}

int fdatasync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    if (fd == target_fd && !in_eval && npending && below(sync_eval_odds) == 0)
        evaluate(); /* power lost just before this sync */
    int r = real(fd);
    if (r == 0 && fd == target_fd) {
        for (size_t i = 0; i < npending; i++) {
            durable_put(pending[i].off, pending[i].data, pending[i].len);
            free(pending[i].data);
        }
        npending = 0;
    }
    return r;
}

/* ---- Workload and judgement ---- */

static uint8_t *live, *flushed, *mask; /* mask: touched since the last completed flush */
static uint64_t vsize, csize;
static bool discard_keeps; /* v2 overlay: discard leaves the data */
static unsigned n_evals, n_leaky;

static void evaluate(void)
{
    if (evals_left <= 0)
        return;
    evals_left--;
    in_eval = 1;
    uint64_t len = durable_len;
    for (size_t i = 0; i < npending; i++)
        if (pending[i].off + pending[i].len > len)
            len = pending[i].off + pending[i].len;
    uint8_t *img = calloc(1, len);
    assert_non_null(img);
    memcpy(img, durable, durable_len);
    uint64_t end = durable_len;
    for (size_t i = 0; i < npending; i++) {
        const struct rec *r = &pending[i];
        uint64_t how = below(5);
        for (uint64_t o = 0; o < r->len && how; o += 512) {
            uint64_t k = r->len - o < 512 ? r->len - o : 512;
            if (how <= 2 || below(2)) { /* whole write, or this sector of a torn one */
                memcpy(img + r->off + o, r->data + o, k);
                if (r->off + o + k > end)
                    end = r->off + o + k;
            }
        }
    }
    tu_store("crash.qcow2", img, end);
    free(img);
    int rc = tu_sh("qemu-img check crash.qcow2");
    if (rc != 0 && rc != 3) {
        tu_sh("cp crash.qcow2 crash-failed.qcow2; qemu-img check crash.qcow2 >&2");
        fail_msg("crash image is corrupt (qemu-img check rc %d), kept as crash-failed.qcow2", rc);
    }
    n_leaky += rc == 3;
    assert_int_equal(tu_sh("qemu-img convert -O raw crash.qcow2 crash.raw"), 0);
    uint8_t *got = tu_load("crash.raw", vsize);
    for (uint64_t i = 0; i < vsize; i++)
        if (!mask[i] && got[i] != flushed[i])
            fail_msg("crash image lost flushed data at %lu: 0x%02x, expected 0x%02x",
                     (unsigned long)i, got[i], flushed[i]);
    free(got);
    n_evals++;
    in_eval = 0;
}

static void touched(uint64_t off, uint64_t len)
{
    memset(mask + off, 1, len);
}

static void flushed_now(void)
{
    memcpy(flushed, live, vsize);
    memset(mask, 0, vsize);
}

static void workload(struct blk_node *bs, int ops)
{
    uint8_t *buf = malloc(4 * csize + 8192);
    assert_non_null(buf);
    for (int i = 0; i < ops; i++) {
        uint64_t off = below(vsize - 1), len = 1 + below(3 * csize + 5000);
        if (below(10) == 0) {
            off = off / csize * csize;
            len = (1 + below(3)) * csize;
        }
        if (len > vsize - off)
            len = vsize - off;
        uint64_t k = below(20);
        if (k < 12) {
            bool fua = below(15) == 0;
            memset(buf, (int)below(256), len);
            touched(off, len);
            assert_int_equal(blk_pwrite(bs, off, buf, len, fua ? BLK_WRITE_FUA : 0, NULL), 0);
            memcpy(live + off, buf, len);
            if (fua)
                flushed_now();
        } else if (k < 15) {
            touched(off, len);
            assert_int_equal(blk_write_zeroes(bs, off, len, below(2) ? BLK_ZERO_MAY_UNMAP : 0, NULL), 0);
            memset(live + off, 0, len);
        } else if (k < 18) {
            touched(off, len);
            assert_int_equal(blk_discard(bs, off, len, NULL), 0);
            uint64_t a = (off + csize - 1) / csize * csize, e = off + len;
            uint64_t b = e == vsize ? (e + csize - 1) / csize * csize : e / csize * csize;
            if (b > vsize)
                b = vsize;
            if (a < b && !discard_keeps)
                memset(live + a, 0, b - a);
        } else {
            assert_int_equal(blk_flush(bs, NULL), 0);
            flushed_now();
        }
        if (below(12) == 0)
            evaluate();
    }
    free(buf);
}

struct cfg {
    const char *opts;
    uint64_t cs, size;
    bool overlay, snap;
    uint64_t cache; /* l2_cache_size, 0 = default */
};

/* Crash images judged per configuration (SCUSE_CRASH_IMAGES: the
 * sanitizer pass uses fewer). */
static unsigned images_per_cfg(void)
{
    const char *ci = getenv("SCUSE_CRASH_IMAGES");
    return ci && atoi(ci) > 0 ? (unsigned)atoi(ci) : 22;
}

static void run_cfg(const struct cfg *c)
{
    tu_sh("rm -f *.qcow2 *.raw");
    vsize = c->size;
    csize = c->cs;
    discard_keeps = c->overlay && strstr(c->opts, "compat=0.10");
    if (c->overlay) {
        assert_int_equal(tu_sh("qemu-img create -f qcow2 -o %s b.qcow2 %lu && qemu-io -c 'write -P 0x5a 0 %lu' b.qcow2 && "
                               "qemu-img create -f qcow2 -o %s -b b.qcow2 -F qcow2 t.qcow2 %lu",
                               c->opts, (unsigned long)c->size, (unsigned long)c->size, c->opts,
                               (unsigned long)c->size), 0);
    } else {
        assert_int_equal(tu_sh("qemu-img create -f qcow2 -o %s t.qcow2 %lu", c->opts, (unsigned long)c->size), 0);
    }
    assert_int_equal(tu_sh("qemu-io -c 'write -P 0x21 0 %lu' -c 'write -c -P 0x31 %lu %lu' t.qcow2",
                           (unsigned long)(c->size / 4), (unsigned long)(c->size / 2), (unsigned long)c->cs), 0);
    if (c->snap)
        assert_int_equal(tu_sh("qemu-img snapshot -c s t.qcow2"), 0);
    assert_int_equal(tu_sh("qemu-img convert -O raw t.qcow2 start.raw"), 0);
    live = tu_load("start.raw", vsize);
    flushed = malloc(vsize);
    mask = calloc(1, vsize);
    memcpy(flushed, live, vsize);

    struct blk_node *bs;
    struct scuse_err err = { 0 };
    struct blk_opts o = { 0 };
    char cbuf[32];
    tu_l2_cache(&o, cbuf, sizeof(cbuf), c->cache);
    if (blk_open(tu_path("t.qcow2"), "qcow2", BLK_OPEN_RW, &o, &bs, &err) < 0)
        fail_msg("open: %s", err.msg);
    /* The durable model starts as the file is now. */
    durable_len = 0;
    FILE *f = fopen(tu_path("t.qcow2"), "rb");
    assert_non_null(f);
    uint8_t chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        durable_put(durable_len, chunk, n);
    fclose(f);
    npending = 0;
    target_fd = bs->fd;
    evals_left = images_per_cfg();
    workload(bs, 400);
    target_fd = -1;
    blk_close(bs);
    for (size_t i = 0; i < npending; i++)
        free(pending[i].data);
    npending = 0;
    assert_int_equal(tu_sh("qemu-img check t.qcow2"), 0);
    tu_store("end.raw", live, vsize);
    assert_int_equal(tu_sh("qemu-img compare -f qcow2 -F raw t.qcow2 end.raw"), 0);
    free(live);
    free(flushed);
    free(mask);
}

static void test_power_loss(void **state)
{
    (void)state;
    static const struct cfg cfgs[] = {
        { "compat=1.1,cluster_size=65536", 65536, 8 << 20, false, false, 0 },
        { "compat=1.1,cluster_size=65536", 65536, 8 << 20, true, false, 1 },
        { "compat=1.1,cluster_size=4096,refcount_bits=2", 4096, 4 << 20, false, true, 0 },
        { "compat=1.1,cluster_size=4096,refcount_bits=1", 4096, 4 << 20, true, false, 0 },
        { "compat=0.10,cluster_size=65536", 65536, 8 << 20, true, true, 0 },
        { "compat=1.1,cluster_size=65536,extended_l2=on", 65536, 8 << 20, true, false, 0 },
        { "compat=1.1,cluster_size=512,refcount_bits=64", 512, 2 << 20, false, false, 1 },
        { "compat=1.1,cluster_size=2097152", 2097152, 16 << 20, true, true, 0 },
    };
    sync_eval_odds = 6;
    for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++)
        run_cfg(&cfgs[i]);
    printf("# %u crash images judged, %u with leaked clusters\n", n_evals, n_leaky);
    /* Most configurations must reach their count (a short workload may not). */
    assert_true(n_evals * 4 >= 3 * images_per_cfg() * (sizeof(cfgs) / sizeof(cfgs[0])));
}

static int setup(void **state)
{
    (void)state;
    return tu_qemu_setup("qcow2-crash", &rng, 0xc0ffeeull);
}

static int teardown(void **state)
{
    free(durable);
    free(pending);
    return tu_teardown(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_power_loss, tu_need_qemu),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
