/* blk_open and the chain it builds: probing, explicit formats, backing
 * resolution, the missing-backing-format error, loops, the depth limit,
 * read-only backing nodes, smaller and larger backing files, block status
 * through two layers and request bounds.
 *
 * Images are made with qemu-img/qemu-io in a mkdtemp directory; expected
 * data comes from in-test models of what was written, expected block
 * status from `qemu-img map --output=json` on the same chain. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "blk/blk.h"
#include "blk/driver.h"
#include "testutil.h"

static int saved_cwd = -1;

/* ---------------------------------------------------------------- helpers */

/* A byte that depends on the offset, so misplaced reads show. */
static unsigned char pat(uint64_t off, unsigned seed)
{
    uint64_t x = (off >> 9) * 0x9E3779B97F4A7C15ULL + seed * 0x632BE59BD9B4E019ULL + (off & 511);
    return (unsigned char)(x ^ (x >> 29) ^ (x >> 47)) | 1; /* never 0 */
}

static unsigned char *make_raw(const char *name, size_t size, unsigned seed)
{
    unsigned char *b = malloc(size ? size : 1);
    assert_non_null(b);
    for (size_t i = 0; i < size; i++)
        b[i] = pat(i, seed);
    tu_store(name, b, size);
    return b;
}

static struct blk_node *xopen(const char *path, const char *fmt, unsigned flags,
                              const struct blk_opts *o)
{
    struct blk_node *bs = NULL;
    struct scuse_err err = { 0 };
    int r = blk_open(path, fmt, flags, o, &bs, &err);
    if (r < 0)
        fail_msg("blk_open('%s', %s) = %d: %s", path, fmt ? fmt : "probe", r, err.msg);
    assert_non_null(bs);
    return bs;
}

/* blk_open must fail; returns the code and leaves the message in *err. */
static int xopen_fail(const char *path, const char *fmt, unsigned flags, const struct blk_opts *o,
                      struct scuse_err *err)
{
    struct blk_node *bs = (struct blk_node *)0x1;
    err_clear(err);
    int r = blk_open(path, fmt, flags, o, &bs, err);
    if (r >= 0) {
        blk_close(bs);
        fail_msg("blk_open('%s') succeeded, an error was expected", path);
    }
    assert_null(bs);
    assert_int_equal(err->code, r);
    assert_true(err->msg[0] != '\0');
    return r;
}

static uint64_t file_bytes(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

static void expect_read(struct blk_node *bs, uint64_t off, const unsigned char *want, size_t len)
{
    unsigned char *got = malloc(len ? len : 1);
    assert_non_null(got);
    memset(got, 0xcc, len);
    int r = blk_pread(bs, off, got, len, NULL);
    if (r != 0) {
        free(got);
        fail_msg("blk_pread(%llu, %zu, NULL) = %d", (unsigned long long)off, len, r);
    }
    for (size_t i = 0; i < len; i++) {
        if (got[i] != want[i]) {
            unsigned g = got[i];
            free(got);
            fail_msg("guest byte %llu is 0x%02x, expected 0x%02x", (unsigned long long)(off + i),
                     g, want[i]);
        }
    }
    free(got);
}

static void patch_u32(const char *path, uint64_t off, uint32_t v)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char b[4] = { v >> 24, v >> 16, v >> 8, v };
    assert_int_equal(pwrite(fd, b, 4, (off_t)off), 4);
    close(fd);
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Turn the backing-format header extension (0xe2792aca) into an unknown
 * one, which a reader must skip: the image then records no backing format. */
static void drop_backing_fmt_ext(const char *path)
{
    unsigned char h[4096];
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, h, sizeof(h), 0), (ssize_t)sizeof(h));
    close(fd);
    assert_int_equal(be32(h), 0x514649fb);
    uint32_t version = be32(h + 4);
    uint32_t off = version >= 3 ? be32(h + 100) : 72;
    while (off + 8 <= sizeof(h)) {
        uint32_t type = be32(h + off), len = be32(h + off + 4);
        if (type == 0)
            break;
        if (type == 0xe2792aca) {
            patch_u32(path, off, 0x0badf00d);
            return;
        }
        off += 8 + ((len + 7) & ~7u);
    }
    fail_msg("'%s': no backing format extension found", path);
}

static int setup(void **state)
{
    (void)state;
    tu_require_qemu();
    assert_int_equal(tu_dir_make("open"), 0); /* absolute: tests chdir around */
    saved_cwd = open(".", O_RDONLY | O_DIRECTORY);
    assert_true(saved_cwd >= 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (saved_cwd >= 0) {
        if (fchdir(saved_cwd) != 0)
            perror("fchdir");
        close(saved_cwd);
    }
    tu_dir_remove(); /* a failure is reported, not failed */
    return 0;
}

/* Every test starts from the directory the program was started in. */
static int each_setup(void **state)
{
    (void)state;
    assert_int_equal(fchdir(saved_cwd), 0);
    return 0;
}

/* ---------------------------------------------------------------- probing */

static void test_probe_qcow2(void **state)
{
    (void)state;
    tu_run("qemu-img create -q -f qcow2 probe.qcow2 3M");
    struct blk_node *bs = xopen(tu_path("probe.qcow2"), NULL, 0, NULL);
    assert_string_equal(bs->drv->name, "qcow2");
    assert_string_equal(blk_format_name(bs), "qcow2");
    assert_true(bs->probed);
    assert_int_equal(bs->size, 3u << 20);
    assert_int_equal(bs->cluster_size, 65536);
    assert_true(bs->read_only);
    assert_null(bs->backing);
    assert_int_equal(blk_chain_length(bs), 1);
    blk_close(bs);

    /* v2 (compat=0.10) as well */
    tu_run("qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=512 probe2.qcow2 100k");
    bs = xopen(tu_path("probe2.qcow2"), NULL, 0, NULL);
    assert_string_equal(bs->drv->name, "qcow2");
    assert_int_equal(bs->size, 100 * 1024);
    assert_int_equal(bs->cluster_size, 512);
    blk_close(bs);
}

static void test_probe_raw(void **state)
{
    (void)state;
    /* arbitrary bytes, odd size */
    free(make_raw("probe.raw", 12345, 1));
    struct blk_node *bs = xopen(tu_path("probe.raw"), NULL, 0, NULL);
    assert_string_equal(bs->drv->name, "raw");
    assert_true(bs->probed);
    assert_int_equal(bs->size, 12800); /* whole sectors, as QEMU presents it */
    blk_close(bs);

    /* the first three bytes of the qcow2 magic are not qcow2 */
    tu_store("qfi.raw", "QFI", 3);
    bs = xopen(tu_path("qfi.raw"), NULL, 0, NULL);
    assert_string_equal(bs->drv->name, "raw");
    assert_int_equal(bs->size, 512);
    blk_close(bs);

    /* "QFI\xfa": one bit off the magic */
    tu_store("qfi2.raw", "QFI\xfa\0\0\0\3", 8);
    bs = xopen(tu_path("qfi2.raw"), NULL, 0, NULL);
    assert_string_equal(bs->drv->name, "raw");
    blk_close(bs);

    /* empty file */
    tu_store("empty.raw", "", 0);
    bs = xopen(tu_path("empty.raw"), NULL, 0, NULL);
    assert_string_equal(bs->drv->name, "raw");
    assert_int_equal(bs->size, 0);
    blk_close(bs);
}

static void test_explicit_raw_on_qcow2(void **state)
{
    (void)state;
    tu_run("qemu-img create -q -f raw rb.raw 1M");
    tu_run("qemu-img create -q -f qcow2 -b rb.raw -F raw asraw.qcow2 8M");
    struct blk_node *bs = xopen(tu_path("asraw.qcow2"), "raw", 0, NULL);
    assert_string_equal(bs->drv->name, "raw");
    assert_false(bs->probed);
    assert_int_equal(bs->size, (file_bytes(tu_path("asraw.qcow2")) + 511) & ~511ull);
    assert_true(bs->size != 8u << 20);
    assert_null(bs->backing_name);
    assert_null(bs->backing);
    unsigned char magic[4];
    assert_int_equal(blk_pread(bs, 0, magic, 4, NULL), 0);
    assert_memory_equal(magic, "QFI\xfb", 4);
    blk_close(bs);

    /* and "qcow2" on a raw file is an error, not a silent raw */
    struct scuse_err err;
    xopen_fail(tu_path("rb.raw"), "qcow2", 0, NULL, &err);

    /* unknown format name */
    int r = xopen_fail(tu_path("rb.raw"), "vmdk-nope", 0, NULL, &err);
    assert_int_equal(r, -EINVAL);
    assert_non_null(strstr(err.msg, "vmdk-nope"));
}

static void test_open_errors(void **state)
{
    (void)state;
    struct scuse_err err;
    int r = xopen_fail(tu_path("does-not-exist.qcow2"), NULL, 0, NULL, &err);
    assert_int_equal(r, -ENOENT);
    assert_non_null(strstr(err.msg, "does-not-exist.qcow2"));
    r = xopen_fail(tu_dir(), NULL, 0, NULL, &err);
    assert_int_equal(r, -EISDIR);
}

/* ------------------------------------------------------- backing chains */

/* sub/ov.qcow2 names "../base.raw"; run from a directory where
 * "../base.raw" is a different file (a decoy) and from the parent. */
static void test_backing_relative_to_overlay_dir(void **state)
{
    (void)state;
    tu_run("mkdir -p sub elsewhere/inner");
    unsigned char *base = make_raw("base.raw", 1u << 20, 7);
    unsigned char *decoy = make_raw("elsewhere/base.raw", 1u << 20, 99);
    tu_run("qemu-img create -q -f qcow2 -b ../base.raw -F raw sub/ov.qcow2 1M");

    assert_int_equal(chdir(tu_path("elsewhere/inner")), 0);
    struct blk_node *bs = xopen(tu_path("sub/ov.qcow2"), NULL, 0, NULL);
    assert_non_null(bs->backing);
    assert_string_equal(bs->backing_name, "../base.raw");
    assert_string_equal(bs->backing_fmt, "raw");
    assert_string_equal(bs->backing->path, tu_path("sub/../base.raw"));
    char *bp = blk_backing_path(bs);
    assert_string_equal(bp, tu_path("sub/../base.raw"));
    free(bp);
    assert_int_equal(blk_chain_length(bs), 2);
    assert_int_equal(bs->backing->depth, 1);
    expect_read(bs, 0, base, 1u << 20);
    blk_close(bs);

    /* a relative overlay path: the backing is relative to it, not to cwd */
    assert_int_equal(chdir(tu_dir()), 0);
    bs = xopen("sub/ov.qcow2", NULL, 0, NULL);
    assert_string_equal(bs->backing->path, "sub/../base.raw");
    expect_read(bs, 0, base, 1u << 20);
    blk_close(bs);
    assert_int_equal(chdir("sub"), 0);
    bs = xopen("ov.qcow2", NULL, 0, NULL);
    assert_string_equal(bs->backing->path, "../base.raw");
    expect_read(bs, 0, base, 1u << 20);
    blk_close(bs);

    /* absolute backing names are used verbatim */
    tu_run("qemu-img create -q -f qcow2 -b '%s' -F raw elsewhere/abs.qcow2 1M", tu_path("base.raw"));
    assert_int_equal(chdir("/"), 0);
    bs = xopen(tu_path("elsewhere/abs.qcow2"), NULL, 0, NULL);
    assert_string_equal(bs->backing->path, tu_path("base.raw"));
    expect_read(bs, 0, base, 1u << 20);
    blk_close(bs);
    free(base);
    free(decoy);
}

static void test_backing_missing_format(void **state)
{
    (void)state;
    tu_run("qemu-img create -q -f qcow2 nofmt-base.qcow2 1M");
    tu_run("qemu-img create -q -f qcow2 -b nofmt-base.qcow2 -F qcow2 nofmt-ov.qcow2");
    drop_backing_fmt_ext(tu_path("nofmt-ov.qcow2"));
    /* qemu-img agrees the format is gone */
    tu_run("qemu-img info nofmt-ov.qcow2 | grep -q 'backing file: nofmt-base.qcow2' && "
           "! qemu-img info nofmt-ov.qcow2 | grep -q 'backing file format'");

    struct scuse_err err;
    xopen_fail(tu_path("nofmt-ov.qcow2"), NULL, 0, NULL, &err);
    if (!strstr(err.msg, "qemu-img rebase") || !strstr(err.msg, "nofmt-ov.qcow2") ||
        !strstr(err.msg, "nofmt-base.qcow2"))
        fail_msg("message should name both files and suggest 'qemu-img rebase': %s", err.msg);

    /* without backing files the overlay opens and says what it lacks */
    struct blk_node *bs = xopen(tu_path("nofmt-ov.qcow2"), NULL, BLK_OPEN_NO_BACKING, NULL);
    assert_string_equal(bs->backing_name, "nofmt-base.qcow2");
    assert_null(bs->backing_fmt);
    assert_null(bs->backing);
    /* unallocated and no backing opened: zeros */
    unsigned char z[4096], buf[4096];
    memset(z, 0, sizeof(z));
    memset(buf, 0xcc, sizeof(buf));
    assert_int_equal(blk_pread(bs, 4096, buf, sizeof(buf), NULL), 0);
    assert_memory_equal(buf, z, sizeof(z));
    blk_close(bs);
}

/* A chain given by the caller (libvirt's <backingStore>): used instead of
 * what the images record, never probed, ended where the caller ends it. */
static void test_backing_given(void **state)
{
    (void)state;
    const size_t sz = 1u << 20;
    unsigned char *b1 = make_raw("base1.raw", sz, 1);
    unsigned char *b2 = make_raw("base2.raw", sz, 2);
    unsigned char *zero = calloc(1, sz);
    assert_non_null(zero);
    tu_run("qemu-img create -q -f qcow2 -b base1.raw -F raw mid.qcow2 1M");
    tu_run("qemu-img create -q -f qcow2 -b base2.raw -F raw mid2.qcow2 1M");
    /* top records a file that does not exist: only the given chain opens */
    tu_run("qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2 1M");
    tu_run("qemu-io -f qcow2 -c 'write -P 0x5a 0 64k' top.qcow2 >/dev/null");
    tu_run("qemu-img rebase -u -b missing.qcow2 -F qcow2 top.qcow2");
    unsigned char top64[65536];
    memset(top64, 0x5a, sizeof(top64));

    /* top -> mid2 given, mid2's own backing (base2.raw) from its header */
    struct blk_backing chain[2] = { { tu_path("mid2.qcow2"), "qcow2" },
                                    { tu_path("base1.raw"), "raw" } };
    struct blk_opts o = { .backing = chain, .n_backing = 1 };
    struct blk_node *bs = xopen(tu_path("top.qcow2"), "qcow2", 0, &o);
    assert_int_equal(blk_chain_length(bs), 3);
    assert_string_equal(bs->backing->path, tu_path("mid2.qcow2"));
    assert_string_equal(bs->backing_name, "missing.qcow2"); /* what it records, unfollowed */
    assert_true(bs->backing->read_only);
    expect_read(bs, 0, top64, sizeof(top64));
    expect_read(bs, 65536, b2 + 65536, sz - 65536);
    blk_close(bs);

    /* top -> mid2 -> base1: the second link replaces mid2's base2.raw */
    o.n_backing = 2;
    bs = xopen(tu_path("top.qcow2"), "qcow2", 0, &o);
    assert_int_equal(blk_chain_length(bs), 3);
    assert_string_equal(bs->backing->backing->path, tu_path("base1.raw"));
    expect_read(bs, 65536, b1 + 65536, sz - 65536);
    blk_close(bs);

    /* <backingStore/> after mid2: nothing below it, unallocated is zero */
    o.n_backing = 1;
    o.backing_end = true;
    bs = xopen(tu_path("top.qcow2"), "qcow2", 0, &o);
    assert_int_equal(blk_chain_length(bs), 2);
    expect_read(bs, 65536, zero, sz - 65536);
    blk_close(bs);

    /* ended at the top: no backing file at all, though one is recorded */
    o.n_backing = 0;
    bs = xopen(tu_path("top.qcow2"), "qcow2", BLK_OPEN_RW, &o);
    assert_int_equal(blk_chain_length(bs), 1);
    expect_read(bs, 0, top64, sizeof(top64));
    expect_read(bs, 65536, zero, sz - 65536);
    blk_close(bs);

    struct scuse_err err;
    /* a raw image cannot have one */
    o = (struct blk_opts){ .backing = chain + 1, .n_backing = 1 };
    xopen_fail(tu_path("base2.raw"), "raw", 0, &o, &err);
    assert_non_null(strstr(err.msg, "raw images have no backing file"));
    /* no format given: refused, not probed */
    struct blk_backing nofmt = { tu_path("mid2.qcow2"), NULL };
    o = (struct blk_opts){ .backing = &nofmt, .n_backing = 1 };
    xopen_fail(tu_path("top.qcow2"), "qcow2", 0, &o, &err);
    assert_non_null(strstr(err.msg, "without its format"));
    /* a missing file names the overlay that was given it */
    struct blk_backing gone = { tu_path("gone.qcow2"), "qcow2" };
    o.backing = &gone;
    xopen_fail(tu_path("top.qcow2"), "qcow2", 0, &o, &err);
    assert_non_null(strstr(err.msg, "top.qcow2': cannot open its backing file"));
    assert_non_null(strstr(err.msg, "gone.qcow2"));
    /* a loop through the given chain is still a loop */
    struct blk_backing loop[2] = { { tu_path("mid2.qcow2"), "qcow2" },
                                   { tu_path("top.qcow2"), "qcow2" } };
    o = (struct blk_opts){ .backing = loop, .n_backing = 2 };
    assert_int_equal(xopen_fail(tu_path("top.qcow2"), "qcow2", 0, &o, &err), -ELOOP);
    free(b1);
    free(b2);
    free(zero);
}

static void test_backing_protocol_refused(void **state)
{
    (void)state;
    tu_run("qemu-img create -q -f qcow2 proto.qcow2 1M");
    tu_run("qemu-img rebase -u -b 'nbd://localhost/x' -F raw proto.qcow2");
    struct scuse_err err;
    int r = xopen_fail(tu_path("proto.qcow2"), NULL, 0, NULL, &err);
    assert_int_equal(r, -ENOTSUP);
    assert_non_null(strstr(err.msg, "nbd://localhost/x"));
}

static void test_backing_loop(void **state)
{
    (void)state;
    struct scuse_err err;
    /* a -> b -> a */
    tu_run("qemu-img create -q -f qcow2 loop-a.qcow2 1M");
    tu_run("qemu-img create -q -f qcow2 -b loop-a.qcow2 -F qcow2 loop-b.qcow2");
    tu_run("qemu-img rebase -u -b loop-b.qcow2 -F qcow2 loop-a.qcow2");
    int r = xopen_fail(tu_path("loop-a.qcow2"), NULL, 0, NULL, &err);
    assert_int_equal(r, -ELOOP);
    r = xopen_fail(tu_path("loop-b.qcow2"), NULL, 0, NULL, &err);
    assert_int_equal(r, -ELOOP);

    /* self */
    tu_run("qemu-img create -q -f qcow2 loop-self.qcow2 1M");
    tu_run("qemu-img rebase -u -b loop-self.qcow2 -F qcow2 loop-self.qcow2");
    r = xopen_fail(tu_path("loop-self.qcow2"), NULL, 0, NULL, &err);
    assert_int_equal(r, -ELOOP);
    assert_non_null(strstr(err.msg, "loop-self.qcow2"));

    /* the same file under another name: c -> link-to-d, d -> c */
    tu_run("qemu-img create -q -f qcow2 loop-c.qcow2 1M");
    tu_run("qemu-img create -q -f qcow2 -b loop-c.qcow2 -F qcow2 loop-d.qcow2");
    tu_run("ln -s loop-d.qcow2 loop-d-link.qcow2");
    tu_run("qemu-img rebase -u -b loop-d-link.qcow2 -F qcow2 loop-c.qcow2");
    r = xopen_fail(tu_path("loop-c.qcow2"), NULL, 0, NULL, &err);
    assert_int_equal(r, -ELOOP);

    /* the same file twice is not a loop when the chain does not revisit
     * it... but a diamond cannot be expressed, so: a long non-looping
     * chain through a symlink opens fine */
    tu_run("qemu-img create -q -f qcow2 nl-base.qcow2 1M && ln -s nl-base.qcow2 nl-link.qcow2");
    tu_run("qemu-img create -q -f qcow2 -b nl-link.qcow2 -F qcow2 nl-top.qcow2");
    struct blk_node *bs = xopen(tu_path("nl-top.qcow2"), NULL, 0, NULL);
    assert_int_equal(blk_chain_length(bs), 2);
    blk_close(bs);
}

/* chain0 <- chain1 <- chain2 <- chain3: four images */
static void test_depth_limit(void **state)
{
    (void)state;
    tu_run("qemu-img create -q -f qcow2 chain0.qcow2 1M");
    tu_run("qemu-io -f qcow2 -c 'write -P 0x10 0 64k' chain0.qcow2");
    for (int i = 1; i <= 3; i++) {
        tu_run("qemu-img create -q -f qcow2 -b chain%d.qcow2 -F qcow2 chain%d.qcow2", i - 1, i);
        tu_run("qemu-io -f qcow2 -c 'write -P 0x%x %dk 64k' chain%d.qcow2", 0x10 + i, 64 * i, i);
    }
    struct blk_opts o = { .max_depth = 3 };
    struct scuse_err err;
    xopen_fail(tu_path("chain3.qcow2"), NULL, 0, &o, &err);
    assert_non_null(strstr(err.msg, "3"));

    /* three images fit in max_depth 3 */
    struct blk_node *bs = xopen(tu_path("chain2.qcow2"), NULL, 0, &o);
    assert_int_equal(blk_chain_length(bs), 3);
    blk_close(bs);

    /* four images in max_depth 4 and by default; every layer's data shows */
    o.max_depth = 4;
    bs = xopen(tu_path("chain3.qcow2"), NULL, 0, &o);
    assert_int_equal(blk_chain_length(bs), 4);
    blk_close(bs);
    bs = xopen(tu_path("chain3.qcow2"), NULL, 0, NULL);
    assert_int_equal(blk_chain_length(bs), 4);
    unsigned depth = 0;
    for (struct blk_node *n = bs; n; n = n->backing)
        assert_int_equal(n->depth, depth++);
    for (int i = 0; i <= 3; i++) {
        unsigned char want[65536];
        memset(want, 0x10 + i, sizeof(want));
        expect_read(bs, (uint64_t)i * 65536, want, sizeof(want));
        uint64_t pnum;
        struct blk_status st;
        assert_int_equal(blk_block_status(bs, (uint64_t)i * 65536, 65536, &pnum, &st, NULL), 0);
        assert_int_equal(pnum, 65536);
        assert_int_equal(st.depth, 3 - i);
        assert_true(st.flags & BLK_STATUS_DATA);
    }
    blk_close(bs);

    /* NO_BACKING stops at the top: the limit does not apply */
    o.max_depth = 1;
    bs = xopen(tu_path("chain3.qcow2"), NULL, BLK_OPEN_NO_BACKING, &o);
    assert_int_equal(blk_chain_length(bs), 1);
    blk_close(bs);
}

static void test_backing_read_only(void **state)
{
    (void)state;
    tu_run("qemu-img create -q -f raw ro-base.raw 1M");
    tu_run("qemu-img create -q -f qcow2 ro-mid.qcow2 -b ro-base.raw -F raw");
    tu_run("qemu-img create -q -f qcow2 ro-top.qcow2 -b ro-mid.qcow2 -F qcow2");
    struct blk_node *bs = NULL;
    struct scuse_err err = { 0 };
    int r = blk_open(tu_path("ro-top.qcow2"), NULL, BLK_OPEN_RW, NULL, &bs, &err);
    if (r < 0) {
        /* a driver that cannot write yet may refuse RW; check RO instead */
        print_message("# RW open refused (%s); checking a read-only open\n", err.msg);
        bs = xopen(tu_path("ro-top.qcow2"), NULL, 0, NULL);
        assert_true(bs->read_only);
    } else {
        assert_false(bs->read_only);
        assert_int_equal(fcntl(bs->fd, F_GETFL) & O_ACCMODE, O_RDWR);
    }
    assert_int_equal(blk_chain_length(bs), 3);
    for (struct blk_node *b = bs->backing; b; b = b->backing) {
        assert_true(b->read_only);
        assert_int_equal(fcntl(b->fd, F_GETFL) & O_ACCMODE, O_RDONLY);
        char x = 1;
        assert_int_equal(blk_pwrite(b, 0, &x, 1, 0, NULL), -EROFS);
    }
    blk_close(bs);
}

/* ----------------------------------------- smaller and larger backing files */

static void test_read_below_smaller_backing(void **state)
{
    (void)state;
    const size_t bsize = 65536 + 100; /* ragged raw backing file */
    const size_t osize = 1u << 20;
    unsigned char *base = make_raw("small.raw", bsize, 3);
    tu_run("qemu-img create -q -f qcow2 -o cluster_size=4k -b small.raw -F raw small-ov.qcow2 1M");
    tu_run("qemu-io -f qcow2 -c 'write -P 0x11 32k 4k' -c 'write -P 0x22 64k 4k' small-ov.qcow2");

    unsigned char *want = calloc(1, osize);
    assert_non_null(want);
    memcpy(want, base, bsize);
    memset(want + 32768, 0x11, 4096);
    memset(want + 65536, 0x22, 4096);
    struct blk_node *bs = xopen(tu_path("small-ov.qcow2"), NULL, 0, NULL);
    assert_int_equal(bs->size, osize);
    assert_int_equal(bs->backing->size, (bsize + 511) & ~(size_t)511);
    expect_read(bs, 0, want, osize);
    /* unaligned reads across the backing EOF */
    expect_read(bs, 65536 + 4096 - 7, want + 65536 + 4096 - 7, 300);
    expect_read(bs, 65000, want + 65000, 9000);

    /* blk_read_below directly, into a garbage-filled multi-iovec view that
     * straddles the backing EOF: 1636 bytes of backing data, then zeros */
    unsigned char a[1000], b[3], c[7189];
    memset(a, 0xee, sizeof(a));
    memset(b, 0xee, sizeof(b));
    memset(c, 0xee, sizeof(c));
    struct iovec iov[4] = { { a, sizeof(a) }, { b, 0 }, { b, sizeof(b) }, { c, sizeof(c) } };
    struct iov_view v = iov_view_make(iov, 4, 8192);
    uint64_t off = 64000;
    assert_int_equal(blk_read_below(bs, off, &v, NULL), 0);
    unsigned char flat[8192];
    iov_view_to_buf(&v, 0, flat, sizeof(flat));
    for (size_t i = 0; i < sizeof(flat); i++) {
        unsigned char w = off + i < bsize ? base[off + i] : 0;
        if (flat[i] != w)
            fail_msg("read_below byte %zu: 0x%02x, expected 0x%02x", i, flat[i], w);
    }
    /* wholly past the backing EOF: all zeros */
    memset(a, 0xee, sizeof(a));
    struct iovec one;
    struct iov_view v1 = iov_view_of_buf(&one, a, sizeof(a));
    assert_int_equal(blk_read_below(bs, 500000, &v1, NULL), 0);
    for (size_t i = 0; i < sizeof(a); i++)
        assert_int_equal(a[i], 0);
    /* a node without backing: zeros */
    memset(a, 0xee, sizeof(a));
    assert_int_equal(blk_read_below(bs->backing, 0, &v1, NULL), 0);
    for (size_t i = 0; i < sizeof(a); i++)
        assert_int_equal(a[i], 0);
    /* block status past the backing EOF: zeros, answered by the top layer */
    uint64_t pnum;
    struct blk_status st;
    assert_int_equal(blk_block_status(bs, 131072, osize - 131072, &pnum, &st, NULL), 0);
    assert_int_equal(st.flags, BLK_STATUS_ZERO);
    assert_int_equal(pnum, osize - 131072);
    blk_close(bs);

    /* the same with a qcow2 backing file smaller than the overlay */
    tu_run("qemu-img create -q -f qcow2 -o cluster_size=512 smallq.qcow2 20k");
    tu_run("qemu-io -f qcow2 -c 'write -P 0x33 0 20k' smallq.qcow2");
    tu_run("qemu-img create -q -f qcow2 -b smallq.qcow2 -F qcow2 smallq-ov.qcow2 1M");
    memset(want, 0, osize);
    memset(want, 0x33, 20480);
    bs = xopen(tu_path("smallq-ov.qcow2"), NULL, 0, NULL);
    expect_read(bs, 0, want, osize);
    expect_read(bs, 20000, want + 20000, 1000);
    blk_close(bs);
    free(want);
    free(base);
}

static void test_larger_backing_cut(void **state)
{
    (void)state;
    unsigned char *base = make_raw("large.raw", 2u << 20, 5);
    tu_run("qemu-img create -q -f qcow2 -b large.raw -F raw large-ov.qcow2 1M");
    struct blk_node *bs = xopen(tu_path("large-ov.qcow2"), NULL, 0, NULL);
    assert_int_equal(bs->size, 1u << 20);
    assert_int_equal(bs->backing->size, 2u << 20);
    expect_read(bs, 0, base, 1u << 20);
    unsigned char buf[8192];
    assert_int_equal(blk_pread(bs, (1u << 20) - 4096, buf, 8192, NULL), -EINVAL);
    uint64_t pnum = 0;
    struct blk_status st;
    assert_int_equal(blk_block_status(bs, (1u << 20) - 4096, 1u << 20, &pnum, &st, NULL), 0);
    assert_int_equal(pnum, 4096);
    assert_int_equal(st.depth, 1);
    assert_ptr_equal(st.layer, bs->backing);
    assert_true(st.flags & BLK_STATUS_DATA);
    blk_close(bs);
    free(base);
}

/* ------------------------------------------------------------ block status */

struct map_row {
    uint64_t start, length, offset;
    unsigned depth;
    bool present, zero, data, has_offset;
};

static int qemu_map(const char *img, struct map_row *rows, int max)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "qemu-img map --output=json '%s'", tu_path(img));
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof(line), f) && n < max) {
        struct map_row *r = &rows[n];
        char p[8], z[8], d[8];
        unsigned long long s, l;
        int got = sscanf(line, "%*[[,]{ \"start\": %llu, \"length\": %llu, \"depth\": %u, "
                               "\"present\": %5[a-z], \"zero\": %5[a-z], \"data\": %5[a-z]",
                         &s, &l, &r->depth, p, z, d);
        if (got != 6)
            got = sscanf(line, "{ \"start\": %llu, \"length\": %llu, \"depth\": %u, "
                               "\"present\": %5[a-z], \"zero\": %5[a-z], \"data\": %5[a-z]",
                         &s, &l, &r->depth, p, z, d);
        assert_int_equal(got, 6);
        r->start = s;
        r->length = l;
        r->present = strcmp(p, "true") == 0;
        r->zero = strcmp(z, "true") == 0;
        r->data = strcmp(d, "true") == 0;
        const char *o = strstr(line, "\"offset\": ");
        r->has_offset = o != NULL;
        r->offset = o ? strtoull(o + 10, NULL, 10) : 0;
        n++;
    }
    assert_int_equal(pclose(f), 0);
    return n;
}

/* Walk blk_block_status over the image and check every extent against
 * the qemu-img map row that covers it. */
static void compare_with_qemu_map(struct blk_node *bs, const char *img)
{
    struct map_row rows[256];
    int n = qemu_map(img, rows, 256);
    assert_true(n > 0);
    assert_int_equal(rows[n - 1].start + rows[n - 1].length, bs->size);
    int k = 0;
    for (uint64_t off = 0; off < bs->size;) {
        uint64_t pnum = 0;
        struct blk_status st;
        assert_int_equal(blk_block_status(bs, off, bs->size - off, &pnum, &st, NULL), 0);
        assert_true(pnum > 0);
        while (k < n && rows[k].start + rows[k].length <= off)
            k++;
        assert_true(k < n);
        const struct map_row *r = &rows[k];
        if (off + pnum > r->start + r->length)
            fail_msg("%s: extent [%llu,+%llu) crosses qemu-img's row [%llu,+%llu)", img,
                     (unsigned long long)off, (unsigned long long)pnum,
                     (unsigned long long)r->start, (unsigned long long)r->length);
        bool present = st.flags & BLK_STATUS_ALLOCATED, zero = st.flags & BLK_STATUS_ZERO,
             data = st.flags & BLK_STATUS_DATA;
        if (st.depth != r->depth || present != r->present || zero != r->zero || data != r->data)
            fail_msg("%s @%llu: scuse depth %u present %d zero %d data %d; qemu-img depth %u "
                     "present %d zero %d data %d", img, (unsigned long long)off, st.depth, present,
                     zero, data, r->depth, r->present, r->zero, r->data);
        if (data && r->has_offset) {
            assert_true(st.flags & BLK_STATUS_OFFSET);
            assert_int_equal(st.offset, r->offset + (off - r->start));
        }
        /* the layer that answered is the node at that depth */
        struct blk_node *layer = bs;
        for (unsigned d = 0; d < st.depth; d++)
            layer = layer->backing;
        assert_ptr_equal(st.layer, layer);
        off += pnum;
    }
}

static void test_block_status_two_layers(void **state)
{
    (void)state;
    tu_run("qemu-img create -q -f qcow2 -o cluster_size=4k bs-base.qcow2 256k");
    tu_run("qemu-io -f qcow2 -c 'write -P 1 0 8k' -c 'write -z 16k 4k' -c 'write -P 2 64k 4k' "
           "-c 'write -P 5 128k 8k' bs-base.qcow2");
    tu_run("qemu-img create -q -f qcow2 -o cluster_size=4k -b bs-base.qcow2 -F qcow2 bs-ov.qcow2");
    tu_run("qemu-io -f qcow2 -c 'write -P 3 4k 4k' -c 'write -P 4 32k 4k' -c 'write -z 64k 4k' "
           "-c 'write -z 132k 4k' bs-ov.qcow2");
    struct blk_node *bs = xopen(tu_path("bs-ov.qcow2"), NULL, 0, NULL);
    uint64_t pnum;
    struct blk_status st;

    /* base data under an unallocated overlay cluster */
    assert_int_equal(blk_block_status(bs, 0, 4096, &pnum, &st, NULL), 0);
    assert_int_equal(pnum, 4096);
    assert_int_equal(st.depth, 1);
    assert_ptr_equal(st.layer, bs->backing);
    assert_int_equal(st.flags & ~BLK_STATUS_COMPRESSED,
                     BLK_STATUS_DATA | BLK_STATUS_ALLOCATED | BLK_STATUS_OFFSET);
    /* overlay data */
    assert_int_equal(blk_block_status(bs, 4096, 4096, &pnum, &st, NULL), 0);
    assert_int_equal(st.depth, 0);
    assert_ptr_equal(st.layer, bs);
    assert_int_equal(st.flags, BLK_STATUS_DATA | BLK_STATUS_ALLOCATED | BLK_STATUS_OFFSET);
    /* nothing anywhere: zeros only */
    assert_int_equal(blk_block_status(bs, 8192, 8192, &pnum, &st, NULL), 0);
    assert_int_equal(st.flags, BLK_STATUS_ZERO);
    assert_int_equal(st.depth, 1);
    assert_int_equal(pnum, 8192);
    /* zero cluster in the base */
    assert_int_equal(blk_block_status(bs, 16384, 4096, &pnum, &st, NULL), 0);
    assert_int_equal(st.depth, 1);
    assert_int_equal(st.flags & (BLK_STATUS_ZERO | BLK_STATUS_ALLOCATED | BLK_STATUS_DATA),
                     BLK_STATUS_ZERO | BLK_STATUS_ALLOCATED);
    /* overlay zero cluster hiding base data */
    assert_int_equal(blk_block_status(bs, 65536, 4096, &pnum, &st, NULL), 0);
    assert_int_equal(st.depth, 0);
    assert_int_equal(st.flags & (BLK_STATUS_ZERO | BLK_STATUS_ALLOCATED | BLK_STATUS_DATA),
                     BLK_STATUS_ZERO | BLK_STATUS_ALLOCATED);
    unsigned char z[4096], buf[4096];
    memset(z, 0, sizeof(z));
    assert_int_equal(blk_pread(bs, 65536, buf, 4096, NULL), 0);
    assert_memory_equal(buf, z, 4096);
    /* a request ending mid-extent is clipped */
    assert_int_equal(blk_block_status(bs, 131072, 1000, &pnum, &st, NULL), 0);
    assert_int_equal(pnum, 1000);
    /* bounds */
    assert_int_equal(blk_block_status(bs, bs->size, 1, &pnum, &st, NULL), -EINVAL);
    assert_int_equal(blk_block_status(bs, 0, 0, &pnum, &st, NULL), -EINVAL);

    compare_with_qemu_map(bs, "bs-ov.qcow2");
    blk_close(bs);
    bs = xopen(tu_path("bs-base.qcow2"), NULL, 0, NULL);
    compare_with_qemu_map(bs, "bs-base.qcow2");
    blk_close(bs);

    /* the data matches qemu-img convert */
    tu_run("qemu-img convert -O raw bs-ov.qcow2 bs-ov.raw");
    size_t n = (size_t)file_bytes(tu_path("bs-ov.raw"));
    unsigned char *want = malloc(n);
    int fd = open(tu_path("bs-ov.raw"), O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, want, n, 0), (ssize_t)n);
    close(fd);
    bs = xopen(tu_path("bs-ov.qcow2"), NULL, 0, NULL);
    assert_int_equal(bs->size, n);
    expect_read(bs, 0, want, n);
    blk_close(bs);
    free(want);
}

/* ------------------------------------------------------------------ bounds */

static void check_bounds(struct blk_node *bs)
{
    uint64_t size = bs->size;
    unsigned char buf[16];
    struct iovec one;
    struct iov_view v;
    assert_int_equal(blk_pread(bs, size, buf, 1, NULL), -EINVAL);
    assert_int_equal(blk_pread(bs, size - 1, buf, 2, NULL), -EINVAL);
    assert_int_equal(blk_pread(bs, size + 1, buf, 0, NULL), -EINVAL);
    assert_int_equal(blk_pread(bs, UINT64_MAX, buf, 2, NULL), -EINVAL);
    assert_int_equal(blk_pread(bs, UINT64_MAX - 1, buf, 4, NULL), -EINVAL);
    assert_int_equal(blk_pread(bs, 1, buf, 0, NULL), 0);
    assert_int_equal(blk_pread(bs, size, buf, 0, NULL), 0);
    assert_int_equal(blk_pread(bs, size - 1, buf, 1, NULL), 0);
    assert_int_equal(blk_pread(bs, size - 16, buf, 16, NULL), 0);
    v = iov_view_of_buf(&one, buf, 16);
    assert_int_equal(blk_preadv(bs, size - 15, &v, NULL), -EINVAL);
    /* off + len wrapping around 2^64 must not pass the check (the view
     * claims more bytes than buf has: it must be refused before use) */
    v.len = SIZE_MAX;
    assert_int_equal(blk_preadv(bs, 1, &v, NULL), -EINVAL);
    v.len = SIZE_MAX - size + 2;
    assert_int_equal(blk_preadv(bs, size - 1, &v, NULL), -EINVAL);
}

static void test_preadv_bounds(void **state)
{
    (void)state;
    free(make_raw("bounds.raw", 10000, 9));
    struct blk_node *bs = xopen(tu_path("bounds.raw"), "raw", 0, NULL);
    check_bounds(bs);
    blk_close(bs);
    tu_run("qemu-img create -q -f qcow2 bounds.qcow2 1M");
    bs = xopen(tu_path("bounds.qcow2"), NULL, 0, NULL);
    check_bounds(bs);
    blk_close(bs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_probe_qcow2, each_setup),
        cmocka_unit_test_setup(test_probe_raw, each_setup),
        cmocka_unit_test_setup(test_explicit_raw_on_qcow2, each_setup),
        cmocka_unit_test_setup(test_open_errors, each_setup),
        cmocka_unit_test_setup(test_backing_relative_to_overlay_dir, each_setup),
        cmocka_unit_test_setup(test_backing_missing_format, each_setup),
        cmocka_unit_test_setup(test_backing_given, each_setup),
        cmocka_unit_test_setup(test_backing_protocol_refused, each_setup),
        cmocka_unit_test_setup(test_backing_loop, each_setup),
        cmocka_unit_test_setup(test_depth_limit, each_setup),
        cmocka_unit_test_setup(test_backing_read_only, each_setup),
        cmocka_unit_test_setup(test_read_below_smaller_backing, each_setup),
        cmocka_unit_test_setup(test_larger_backing_cut, each_setup),
        cmocka_unit_test_setup(test_block_status_two_layers, each_setup),
        cmocka_unit_test_setup(test_preadv_bounds, each_setup),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
