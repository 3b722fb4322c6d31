/* The harness the image fuzzers share (fuzz_qcow2, fuzz_vhd, fuzz_vmdk):
 * any byte string opened as an image of one format and read.
 *
 * Define FUZZ_NAME ("fuzz_vmdk": the prefix of every message) before
 * including this, once, in the target's only source file; the target's
 * LLVMFuzzerTestOneInput calls fuzz_image_run().
 *
 * The input goes into a memfd that blk_open() opens as /proc/self/fd/N
 * with BLK_OPEN_NO_BACKING. If it opens: format info (snapshots freed),
 * a bounded block-status walk, the first up-to-4 MiB and a few spread and
 * unaligned ranges through blk_pread, then blk_close. Besides ASan/UBSan/
 * LSan findings, the harness aborts on broken contracts:
 *   - a failed open without an error message (or a node handed out);
 *   - block status that is empty, overlong, or says "zeros" where a read
 *     of the same (small) range returns something else;
 *   - a file descriptor still open after blk_close / a failed open.
 *
 * Images name other files (qcow2 external data files, VHD parents through
 * locators, VMDK extent files); inside the harness every open() of a path
 * other than the image itself is redirected to the image (read only), so
 * that code runs against the image, and no input can make the fuzzer read
 * host files or block on /proc/self/fd/0. */
#ifndef SCUSE_FUZZ_IMAGE_H
#define SCUSE_FUZZ_IMAGE_H

#ifndef FUZZ_NAME
#error "define FUZZ_NAME before including fuzz_image.h"
#endif

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "blk/blk.h"
#include "blk/driver.h"
#include "blk/format.h"

#define READ_CAP (4u << 20)       /* first bytes read in full */
#define SMALL_CHECK (64u << 10)   /* zero extents up to this are verified */
#define STATUS_STEPS 512

static int img_fd = -1;
static char img_path[64];
static int in_target;             /* redirect opens only while the library runs */
static unsigned redirected;
static unsigned char rbuf[READ_CAP];

static int real_open(const char *path, int flags, mode_t mode)
{
    return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

static int fuzz_open(const char *path, int flags, va_list ap)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE))
        mode = (mode_t)va_arg(ap, int);
    if (in_target && strcmp(path, img_path) != 0) {
        if (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) {
            errno = EACCES;
            return -1;
        }
        redirected++;
        path = img_path;
    }
    return real_open(path, flags, mode);
}

/* The library's open() calls land here (the executable's definition wins
 * over libc's). With _FILE_OFFSET_BITS=64 glibc's header renames open() to
 * open64, so both symbols are defined, by assembler name. */
int fuzz_sym_open(const char *path, int flags, ...) __asm__("open");
int fuzz_sym_open64(const char *path, int flags, ...) __asm__("open64");

int fuzz_sym_open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    int r = fuzz_open(path, flags, ap);
    va_end(ap);
    return r;
}

int fuzz_sym_open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    int r = fuzz_open(path, flags, ap);
    va_end(ap);
    return r;
}

/* stdout: run.sh closes stderr (-close_fd_mask=2) to drop the library's
 * error log lines; libFuzzer and the sanitizers keep their own copy. */
static void fuzz_die(const char *what, uint64_t a, uint64_t b)
{
    fprintf(stdout, "%s: %s (%llu, %llu)\n", FUZZ_NAME, what, (unsigned long long)a,
            (unsigned long long)b);
    fflush(stdout);
    abort();
}

/* Descriptors open on files, directories or memfds: what the library
 * could leak. Pipes and sockets are libFuzzer's (its symbolizer stays
 * running once it named a new function), never the library's. */
static int path_fds(char *last, size_t last_size)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
            continue;
        char link[300], target[256];
        snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
        ssize_t k = readlink(link, target, sizeof(target) - 1);
        if (k <= 0 || target[0] != '/')
            continue;
        target[k] = 0;
        n++;
        snprintf(last, last_size, "fd %s: %s", e->d_name, target);
    }
    closedir(d);
    return n;
}

static void read_range(struct blk_node *bs, uint64_t off, uint64_t len)
{
    if (off >= bs->size)
        return;
    if (len > bs->size - off)
        len = bs->size - off;
    if (len > sizeof(rbuf))
        len = sizeof(rbuf);
    (void)blk_pread(bs, off, rbuf, (size_t)len, NULL);
}

static void walk_status(struct blk_node *bs)
{
    uint64_t off = 0;
    for (int step = 0; step < STATUS_STEPS && off < bs->size; step++) {
        uint64_t pnum = 0;
        struct blk_status st;
        int r = blk_block_status(bs, off, bs->size - off, &pnum, &st, NULL);
        if (r < 0)
            return;
        if (pnum == 0 || pnum > bs->size - off)
            fuzz_die("block status returned a bad length", off, pnum);
        if ((st.flags & BLK_STATUS_ZERO) && !(st.flags & BLK_STATUS_DATA)) {
            /* "reads return zeros": check a bounded prefix */
            size_t n = pnum < SMALL_CHECK ? (size_t)pnum : SMALL_CHECK;
            memset(rbuf, 0xa5, n);
            if (blk_pread(bs, off, rbuf, n, NULL) == 0) {
                for (size_t i = 0; i < n; i++)
                    if (rbuf[i] != 0)
                        fuzz_die("block status says zeros, read returned data at", off + i, rbuf[i]);
            }
        }
        off += pnum;
        /* huge sparse images: hop ahead instead of walking every extent */
        if (step == STATUS_STEPS / 2 && off < bs->size / 2)
            off = bs->size / 2;
    }
}

/* One input: write it to the memfd, open it as fmt (with opts, may be
 * NULL) and read it; abort on a broken contract. */
static int fuzz_image_run(const char *fmt, const struct blk_opts *opts, const uint8_t *data,
                          size_t size)
{
    static int base_fds = -1;
    char what[320] = "";
    if (img_fd < 0) {
        img_fd = memfd_create(FUZZ_NAME, MFD_CLOEXEC);
        if (img_fd < 0)
            fuzz_die("memfd_create failed", (uint64_t)errno, 0);
        snprintf(img_path, sizeof(img_path), "/proc/self/fd/%d", img_fd);
        base_fds = path_fds(what, sizeof(what));
    }
    if (ftruncate(img_fd, 0) < 0)
        fuzz_die("ftruncate failed", (uint64_t)errno, 0);
    for (size_t done = 0; done < size;) {
        ssize_t n = pwrite(img_fd, data + done, size - done, (off_t)done);
        if (n <= 0)
            fuzz_die("pwrite to memfd failed", (uint64_t)errno, done);
        done += (size_t)n;
    }

    struct blk_node *bs = NULL;
    struct scuse_err err = { 0 };
    in_target = 1;
    int r = blk_open(img_path, fmt, BLK_OPEN_NO_BACKING | BLK_OPEN_SHARE, opts, &bs, &err);
    if (r < 0) {
        in_target = 0;
        if (bs)
            fuzz_die("failed blk_open handed out a node", (uint64_t)-r, 0);
        if (!err.msg[0])
            fuzz_die("blk_open failed without an error message", (uint64_t)-r, 0);
    } else {
        if (bs->drv->info) {
            struct blk_info info;
            memset(&info, 0, sizeof(info));
            struct scuse_err ierr = { 0 };
            if (blk_info(bs, &info, &ierr) == 0) {
                size_t sum = 0;
                for (int i = 0; i < info.n_items; i++)
                    if (info.item[i].kind == BLK_INFO_STR && info.item[i].s)
                        sum += strlen(info.item[i].s);
                for (int i = 0; i < info.n_snapshots; i++)
                    sum += strnlen(info.snapshots[i].id, sizeof(info.snapshots[i].id)) +
                           strnlen(info.snapshots[i].name, sizeof(info.snapshots[i].name));
                (void)sum;
            }
            free(info.snapshots);
        }
        walk_status(bs);
        read_range(bs, 0, READ_CAP);
        uint64_t sz = bs->size;
        if (sz > 0) {
            for (int i = 1; i < 8; i++)
                read_range(bs, sz / 8 * i + (uint64_t)i * 4099, 65536 + (uint64_t)i * 511);
            read_range(bs, sz - 1, 1);
            read_range(bs, sz > 4096 ? sz - 4096 : 0, 4096);
            read_range(bs, sz / 3 | 1, 3);
            read_range(bs, sz / 2 + 511, 70000);
        }
        blk_close(bs);
        in_target = 0;
    }
    int now = path_fds(what, sizeof(what));
    if (now != base_fds) {
        fprintf(stdout, "%s: %d descriptors on files, %d before; the last: %s\n", FUZZ_NAME, now,
                base_fds, what);
        fuzz_die("file descriptor leaked", (uint64_t)base_fds, (uint64_t)now);
    }
    return 0;
}

#endif
