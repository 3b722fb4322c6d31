/* qcow2 reads and block status against a model.
 *
 * A small generator writes qcow2 images directly (no qemu needed): every
 * guest cluster gets a random kind (normal, possibly non-contiguous;
 * zero plain; zero alloc over garbage; unallocated over a raw backing file
 * that may be shorter than the image; zlib or zstd compressed, packed
 * byte-granularly with the last one running up to EOF; with extended L2,
 * random per-subcluster states). The generator records the expected guest
 * bytes and each cluster's kind; reads with random offsets, lengths and
 * iovec splits (several threads, a cache of a few slices) must match.
 *
 * SCUSE_TEST_SEED=<n> reruns with another seed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libdeflate.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include <cmocka.h>

#include "blk/blk.h"
#include "blk/driver.h"
#include "testutil.h"

static uint64_t rng_state;

static uint64_t rnd(void) { return tu_rnd(&rng_state); }
static uint64_t rnd_below(uint64_t n) { return tu_below(&rng_state, n); }

enum kind { K_UNALLOC, K_NORMAL, K_ZERO, K_ZERO_ALLOC, K_COMP, K_SUB };

struct gen {
    unsigned cb;
    uint32_t cs;
    bool v3, extl2, zstd;
    uint64_t size, backing_size;
    uint8_t *file;
    size_t flen, fcap;
    uint8_t *model;
    uint8_t *backing;
    enum kind *kinds;
    uint64_t l1_off, nl1;
};

static void grow(struct gen *g, size_t need)
{
    if (need <= g->fcap)
        return;
    size_t cap = g->fcap ? g->fcap : 65536;
    while (cap < need)
        cap *= 2;
    g->file = realloc(g->file, cap);
    assert_non_null(g->file);
    memset(g->file + g->fcap, 0, cap - g->fcap);
    g->fcap = cap;
}

static void put32(struct gen *g, size_t off, uint32_t v)
{
    grow(g, off + 4);
    for (int i = 0; i < 4; i++)
        g->file[off + i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put64(struct gen *g, size_t off, uint64_t v)
{
    put32(g, off, (uint32_t)(v >> 32));
    put32(g, off + 4, (uint32_t)v);
}

static uint64_t get64(const struct gen *g, size_t off)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | g->file[off + i];
    return v;
}

static uint64_t alloc_cluster(struct gen *g)
{
    size_t off = (g->flen + g->cs - 1) & ~(size_t)(g->cs - 1);
    grow(g, off + g->cs);
    g->flen = off + g->cs;
    return off;
}

static uint8_t pat(uint64_t off, unsigned seed)
{
    uint64_t x = (off >> 6) * 0x9E3779B97F4A7C15ULL + seed * 0x632BE59BD9B4E019ULL;
    return (uint8_t)(x >> 40) ^ (uint8_t)off;
}

/* Compressible but not trivial cluster content. */
static void fill_comp(uint8_t *p, uint32_t n, unsigned seed)
{
    for (uint32_t i = 0; i < n; i++)
        p[i] = (uint8_t)("qcow2-compressed"[(i / 7 + seed) % 16] + (i % 97 == 0 ? seed : 0));
}

static size_t compress_cluster(const struct gen *g, const uint8_t *in, uint8_t *out, size_t cap)
{
    if (g->zstd) {
        size_t n = ZSTD_compress(out, cap, in, g->cs, 3);
        assert_false(ZSTD_isError(n));
        return n;
    }
    struct libdeflate_compressor *c = libdeflate_alloc_compressor(6);
    assert_non_null(c);
    size_t n = libdeflate_deflate_compress(c, in, g->cs, out, cap);
    libdeflate_free_compressor(c);
    assert_true(n > 0);
    return n;
}

static uint64_t l2_slot(struct gen *g, uint64_t ci)
{
    unsigned shift = g->extl2 ? 4 : 3;
    uint64_t per = g->cs >> shift;
    uint64_t l1i = ci / per;
    uint64_t l2 = get64(g, g->l1_off + 8 * l1i) & 0x00fffffffffffe00ull;
    if (!l2) {
        l2 = alloc_cluster(g);
        put64(g, g->l1_off + 8 * l1i, l2 | (1ull << 63));
    }
    return l2 + ((ci % per) << shift);
}

static void below(const struct gen *g, uint64_t off, uint8_t *dst, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        dst[i] = (g->backing && off + i < g->backing_size) ? g->backing[off + i] : 0;
}

static void gen_image(struct gen *g, unsigned cb, bool v3, bool extl2, bool zstd, uint64_t size,
                      bool with_backing)
{
    memset(g, 0, sizeof(*g));
    g->cb = cb;
    g->cs = 1u << cb;
    g->v3 = v3;
    g->extl2 = extl2;
    g->zstd = zstd;
    g->size = size;
    uint64_t nclusters = (size + g->cs - 1) >> cb;
    g->model = malloc(size);
    g->kinds = calloc(nclusters, sizeof(*g->kinds));
    assert_non_null(g->model);
    if (with_backing) {
        g->backing_size = size / 2 + 4096 + rnd_below(size);
        g->backing = malloc(g->backing_size);
        for (uint64_t i = 0; i < g->backing_size; i++)
            g->backing[i] = pat(i, 99);
    }

    /* Header cluster, L1, refcount table (never read). */
    alloc_cluster(g);
    uint64_t per_l1 = (uint64_t)g->cs << (cb - (extl2 ? 4 : 3));
    g->nl1 = (size + per_l1 - 1) / per_l1;
    g->l1_off = alloc_cluster(g);
    for (uint64_t i = g->cs; i < g->nl1 * 8; i += g->cs)
        alloc_cluster(g);
    uint64_t rt = alloc_cluster(g);

    put32(g, 0, 0x514649fb);
    put32(g, 4, v3 ? 3 : 2);
    put32(g, 20, cb);
    put64(g, 24, size);
    put32(g, 36, (uint32_t)g->nl1);
    put64(g, 40, g->l1_off);
    put64(g, 48, rt);
    put32(g, 56, 1);
    size_t ext = 72;
    if (v3) {
        uint64_t incompat = (extl2 ? 1u << 4 : 0) | (zstd ? 1u << 3 : 0);
        put64(g, 72, incompat);
        put32(g, 96, 4);
        put32(g, 100, 112);
        g->file[104] = zstd ? 1 : 0;
        ext = 112;
    }
    if (with_backing) {
        put32(g, ext, 0xe2792aca);
        put32(g, ext + 4, 3);
        memcpy(g->file + ext + 8, "raw", 3);
        ext += 16;
    }
    put32(g, ext, 0);
    put32(g, ext + 4, 0);
    if (with_backing) {
        const char *name = "backing.raw";
        put64(g, 8, ext + 8);
        put32(g, 16, (uint32_t)strlen(name));
        memcpy(g->file + ext + 8, name, strlen(name));
    }

    uint8_t *buf = malloc(g->cs);
    uint8_t *cbuf = malloc(2 * (size_t)g->cs + 1024);
    unsigned x = 70 - cb;
    for (uint64_t ci = 0; ci < nclusters; ci++) {
        uint64_t goff = ci << cb;
        uint64_t n = size - goff < g->cs ? size - goff : g->cs;
        uint8_t *m = g->model + goff;
        unsigned r = (unsigned)rnd_below(100);
        enum kind k = r < 20 ? K_UNALLOC : r < 50 ? K_NORMAL : r < 60 ? K_ZERO
                      : r < 70 ? K_ZERO_ALLOC : r < 85 ? K_COMP : K_SUB;
        if (!v3 && (k == K_ZERO || k == K_ZERO_ALLOC))
            k = K_NORMAL;
        if (!extl2 && k == K_SUB)
            k = K_NORMAL;
        g->kinds[ci] = k;
        if (k == K_UNALLOC) {
            below(g, goff, m, n);
            continue;
        }
        uint64_t slot = l2_slot(g, ci);
        if (k == K_COMP) {
            fill_comp(buf, g->cs, (unsigned)ci);
            memcpy(m, buf, n);
            size_t clen = compress_cluster(g, buf, cbuf, 2 * (size_t)g->cs + 1024);
            size_t off = g->flen;
            grow(g, off + clen);
            memcpy(g->file + off, cbuf, clen);
            g->flen = off + clen;
            uint64_t nsec = ((off + clen - 1) >> 9) - (off >> 9);
            put64(g, slot, (1ull << 62) | (nsec << x) | off);
            continue;
        }
        if (k == K_ZERO) {
            memset(m, 0, n);
            put64(g, slot, extl2 ? 0 : 1);
            if (extl2)
                put64(g, slot + 8, 0xffffffffull << 32);
            continue;
        }
        /* Allocated host cluster; sometimes leave a gap to break runs. */
        if (rnd_below(4) == 0)
            alloc_cluster(g);
        uint64_t host = alloc_cluster(g);
        for (uint32_t i = 0; i < g->cs; i++)
            g->file[host + i] = pat(host + i, 7);
        if (k == K_ZERO_ALLOC) {
            memset(m, 0, n);
            put64(g, slot, (1ull << 63) | host | (extl2 ? 0 : 1));
            if (extl2)
                put64(g, slot + 8, 0xffffffffull << 32);
            continue;
        }
        put64(g, slot, (1ull << 63) | host);
        if (!extl2) {
            memcpy(m, g->file + host, n);
            continue;
        }
        uint32_t alloc = 0xffffffffu, zero = 0;
        if (k == K_SUB) {
            alloc = (uint32_t)rnd();
            zero = (uint32_t)rnd() & ~alloc;
        }
        put64(g, slot + 8, (uint64_t)zero << 32 | alloc);
        uint32_t scs = g->cs / 32;
        for (unsigned sc = 0; sc < 32; sc++) {
            uint64_t o = (uint64_t)sc * scs;
            if (o >= n)
                break;
            uint64_t l = n - o < scs ? n - o : scs;
            if (zero >> sc & 1)
                memset(m + o, 0, l);
            else if (alloc >> sc & 1)
                memcpy(m + o, g->file + host + o, l);
            else
                below(g, goff + o, m + o, l);
        }
    }
    free(buf);
    free(cbuf);
}

static void gen_free(struct gen *g)
{
    free(g->file);
    free(g->model);
    free(g->backing);
    free(g->kinds);
}

static const char *write_image(const struct gen *g)
{
    if (g->backing)
        tu_store("backing.raw", g->backing, g->backing_size);
    tu_store("t.qcow2", g->file, g->flen);
    return tu_path("t.qcow2");
}

static struct blk_node *open_gen(const struct gen *g, uint64_t cache)
{
    const char *path = write_image(g);
    struct blk_opts o = { 0 };
    char cbuf[32];
    tu_l2_cache(&o, cbuf, sizeof(cbuf), cache);
    struct scuse_err err = { 0 };
    struct blk_node *bs = NULL;
    int r = blk_open(path, "qcow2", BLK_OPEN_SHARE, &o, &bs, &err);
    if (r < 0)
        fail_msg("open: %s", err.msg);
    assert_int_equal(bs->size, g->size & ~511ull);
    return bs;
}

struct worker {
    struct blk_node *bs;
    const struct gen *g;
    uint64_t seed;
    int iters;
    int failures;
};

/* Read [off, off+len) through a random iovec split and compare. */
static int check_read(struct blk_node *bs, const struct gen *g, uint64_t off, size_t len,
                      uint64_t *st)
{
    uint8_t *buf = malloc(len + 64);
    struct iovec iov[8];
    int cnt = 0;
    size_t done = 0;
    while (done < len && cnt < 8) {
        size_t piece = cnt == 7 ? len - done : 1 + (size_t)((*st = *st * 6364136223846793005ull + 1) >> 33) % (len - done);
        iov[cnt].iov_base = buf + done + cnt; /* gaps between iovecs */
        iov[cnt].iov_len = piece;
        done += piece;
        cnt++;
    }
    memset(buf, 0x5a, len + 64);
    struct iov_view v = iov_view_make(iov, cnt, len);
    int r = blk_preadv(bs, off, &v, NULL);
    int bad = r != 0;
    done = 0;
    for (int i = 0; i < cnt && !bad; i++) {
        if (memcmp(iov[i].iov_base, g->model + off + done, iov[i].iov_len) != 0)
            bad = 1;
        done += iov[i].iov_len;
    }
    free(buf);
    return bad;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t st = w->seed;
    uint64_t size = w->bs->size;
    for (int i = 0; i < w->iters; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t off = (st >> 11) % size;
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        size_t maxlen = size - off < 3 * (uint64_t)w->g->cs ? (size_t)(size - off) : 3 * w->g->cs;
        size_t len = 1 + (size_t)((st >> 13) % maxlen);
        if (check_read(w->bs, w->g, off, len, &st))
            w->failures++;
    }
    return NULL;
}

static void run_case(unsigned cb, bool v3, bool extl2, bool zstd, uint64_t size, bool backing,
                     uint64_t cache, int threads)
{
    struct gen g;
    gen_image(&g, cb, v3, extl2, zstd, size, backing);
    struct blk_node *bs = open_gen(&g, cache);

    /* Whole image in one read, then random reads from several threads. */
    uint8_t *all = malloc(bs->size);
    assert_int_equal(blk_pread(bs, 0, all, bs->size, NULL), 0);
    assert_memory_equal(all, g.model, bs->size);
    free(all);

    pthread_t th[8];
    struct worker w[8];
    for (int i = 0; i < threads; i++) {
        w[i] = (struct worker){ bs, &g, rnd() | 1, 400, 0 };
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    int failures = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        failures += w[i].failures;
    }
    assert_int_equal(failures, 0);

    /* Block status: runs tile the image and agree with the kinds. */
    for (uint64_t off = 0; off < bs->size;) {
        uint64_t pnum = 0;
        struct blk_status st;
        assert_int_equal(bs->drv->block_status(bs, off, bs->size - off, &pnum, &st, NULL), 0);
        assert_true(pnum > 0 && pnum <= bs->size - off);
        enum kind k = g.kinds[off >> cb];
        switch (k) {
        case K_UNALLOC:
            assert_int_equal(st.flags, 0);
            break;
        case K_NORMAL:
            assert_int_equal(st.flags, BLK_STATUS_ALLOCATED | BLK_STATUS_DATA | BLK_STATUS_OFFSET);
            break;
        case K_ZERO:
            assert_int_equal(st.flags, BLK_STATUS_ALLOCATED | BLK_STATUS_ZERO);
            break;
        case K_ZERO_ALLOC:
            assert_int_equal(st.flags, BLK_STATUS_ALLOCATED | BLK_STATUS_ZERO | BLK_STATUS_OFFSET |
                                       BLK_STATUS_RESERVED);
            break;
        case K_COMP:
            assert_int_equal(st.flags, BLK_STATUS_ALLOCATED | BLK_STATUS_DATA | BLK_STATUS_COMPRESSED);
            break;
        case K_SUB:
            break;
        }
        if (st.flags & BLK_STATUS_OFFSET) {
            /* The host bytes at the offset are what the guest reads. */
            if (st.flags & BLK_STATUS_DATA)
                assert_memory_equal(g.file + st.offset, g.model + off, pnum);
        }
        if (!(st.flags & BLK_STATUS_ALLOCATED)) {
            uint8_t *exp = malloc(pnum);
            below(&g, off, exp, pnum);
            assert_memory_equal(exp, g.model + off, pnum);
            free(exp);
        }
        off += pnum;
    }
    blk_close(bs);
    gen_free(&g);
}

static void test_v2_small_clusters(void **state)
{
    (void)state;
    run_case(9, false, false, false, 1 << 20, true, 2048, 4);
}

static void test_v3_zlib(void **state)
{
    (void)state;
    run_case(12, true, false, false, (4 << 20) + 1536, true, 0, 4);
}

static void test_v3_zstd(void **state)
{
    (void)state;
    run_case(12, true, false, true, 4 << 20, false, 8192, 4);
}

static void test_v3_64k_tiny_cache(void **state)
{
    (void)state;
    run_case(16, true, false, false, 48 << 20, true, 1, 3);
}

static void test_extl2(void **state)
{
    (void)state;
    run_case(14, true, true, false, 8 << 20, true, 4096, 4);
    run_case(16, true, true, true, 16 << 20, true, 0, 2);
}

static void test_2m_clusters(void **state)
{
    (void)state;
    run_case(21, true, false, false, 20 << 20, true, 0, 2);
}

/* Corrupt entries found during reads fail the read with -EIO. */
static void test_corrupt_entries(void **state)
{
    (void)state;
    struct gen g;
    gen_image(&g, 12, true, false, false, 1 << 20, false);
    /* Find the first L2 table and make entry 0 unaligned. */
    uint64_t l2 = get64(&g, g.l1_off) & 0x00fffffffffffe00ull;
    assert_true(l2 != 0);
    put64(&g, l2, (1ull << 63) | (l2 + 512));
    struct blk_node *bs = open_gen(&g, 0);
    uint8_t b[512];
    assert_int_equal(blk_pread(bs, 0, b, sizeof(b), NULL), -EIO);
    blk_close(bs);

    /* L1 entry pointing past EOF. */
    put64(&g, g.l1_off, (1ull << 63) | (1ull << 40));
    bs = open_gen(&g, 0);
    assert_int_equal(blk_pread(bs, 0, b, sizeof(b), NULL), -EIO);
    uint64_t pnum;
    struct blk_status st;
    assert_int_equal(bs->drv->block_status(bs, 0, 4096, &pnum, &st, NULL), -EIO);
    blk_close(bs);
    gen_free(&g);

    /* Extended L2: alloc and zero set for the same subcluster. */
    gen_image(&g, 14, true, true, false, 1 << 20, false);
    l2 = get64(&g, g.l1_off) & 0x00fffffffffffe00ull;
    put64(&g, l2, (1ull << 63) | 0x100000);
    put64(&g, l2 + 8, 0x0000000100000001ull);
    grow(&g, 0x100000 + g.cs);
    if (g.flen < 0x100000 + g.cs)
        g.flen = 0x100000 + g.cs;
    bs = open_gen(&g, 0);
    assert_int_equal(blk_pread(bs, 0, b, sizeof(b), NULL), -EIO);
    blk_close(bs);
    gen_free(&g);
}

static int setup(void **state)
{
    (void)state;
    if (tu_dir_make("qcow2-read") < 0)
        return -1;
    rng_state = tu_seed(0x5eed5eedull);
    printf("# seed %#llx\n", (unsigned long long)rng_state);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v2_small_clusters),
        cmocka_unit_test(test_v3_zlib),
        cmocka_unit_test(test_v3_zstd),
        cmocka_unit_test(test_v3_64k_tiny_cache),
        cmocka_unit_test(test_extl2),
        cmocka_unit_test(test_2m_clusters),
        cmocka_unit_test(test_corrupt_entries),
    };
    return cmocka_run_group_tests(tests, setup, tu_teardown);
}
