/* scuse convert: export an image chain to a raw file. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk/copy.h"
#include "blk/driver.h"
#include "cli/cli.h"
#include "io/lock.h"

static void convert_usage(FILE *f)
{
    fprintf(f, "usage: scuse convert [-f FMT] [-O raw] [-t CACHE] [-p] [-m THREADS] [-W] [-U] SRC DST\n"
               "  -f FMT      source format (qcow2, raw); probed when absent\n"
               "  -O raw      output format\n"
               "  -t CACHE    unsafe (default, as qemu-img: no flush at the end) or writeback\n"
               "              (flush the output before exiting)\n"
               "  -p          show progress\n"
               "  -m THREADS  parallel workers (default: one per CPU)\n"
               "  -U          force share: read the source without taking image locks\n"
               "  -W          accepted for qemu-img compatibility (writes are always out of order)\n");
}

struct progress {
    bool tty;
    int last;   /* last drawn in hundredths of a percent, -1 none */
};

static void draw_progress(void *ctx, uint64_t done, uint64_t total)
{
    struct progress *p = ctx;
    int pct = total ? (int)(done * 10000 / total) : 10000;
    if (pct == p->last || (pct - p->last < 100 && pct != 10000))
        return;
    p->last = pct;
    if (p->tty) {
        char bar[41];
        int fill = pct * 40 / 10000;
        for (int i = 0; i < 40; i++)
            bar[i] = i < fill ? '#' : ' ';
        bar[40] = '\0';
        printf("\r[%s] %3d.%02d%%", bar, pct / 100, pct % 100);
    } else {
        printf("    (%d.%02d/100%%)\r", pct / 100, pct % 100);
    }
    fflush(stdout);
}

int cmd_convert(int argc, char **argv)
{
    const char *fmt = NULL, *out_fmt = "raw";
    bool progress = false, share = false, flush_at_end = false;
    unsigned threads = 0;
    int c;
    optind = 1;
    static const struct option longopts[] = { { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
    while ((c = getopt_long(argc, argv, "f:O:t:pm:WhU", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': fmt = optarg; break;
        case 'O': out_fmt = optarg; break;
        case 'p': progress = true; break;
        case 't':
            if (strcmp(optarg, "writeback") == 0)
                flush_at_end = true;
            else if (strcmp(optarg, "unsafe") == 0)
                flush_at_end = false;
            else
                return cli_fail(EXIT_USAGE, "convert", "-t takes 'unsafe' or 'writeback', not '%s'", optarg);
            break;
        case 'm': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 16)
                return cli_fail(EXIT_USAGE, "convert", "-m takes a number of workers from 1 to 16, not '%s'", optarg);
            threads = (unsigned)v;
            break;
        }
        case 'W': break;
        case 'U': share = true; break;
        case 'h': convert_usage(stdout); return EXIT_OK;
        default: convert_usage(stderr); return EXIT_USAGE;
        }
    }
    if (argc - optind != 2)
        return cli_fail(EXIT_USAGE, "convert", "expected a source and a destination");
    if (strcmp(out_fmt, "raw") != 0)
        return cli_fail(EXIT_USAGE, "convert", "output format '%s' is not supported (use -O raw)", out_fmt);
    const char *src_name = argv[optind], *dst_name = argv[optind + 1];

    struct blk_node *src;
    if (cli_open("convert", src_name, fmt, share ? BLK_OPEN_SHARE : 0, NULL, &src) < 0)
        return EXIT_IMAGE;

    struct stat sst, dst_st;
    if (fstat(src->fd, &sst) == 0 && stat(dst_name, &dst_st) == 0 &&
        sst.st_dev == dst_st.st_dev && sst.st_ino == dst_st.st_ino) {
        blk_close(src);
        return cli_fail(EXIT_USAGE, "convert", "'%s': destination is the source image", dst_name);
    }

    int fd = open(dst_name, O_RDWR | O_CREAT | O_CLOEXEC, 0644); /* read locks need read access */
    if (fd < 0) {
        int e = errno;
        blk_close(src);
        return cli_fail(EXIT_IMAGE, "convert", "'%s': cannot create: %s", dst_name, strerror(e));
    }
    struct stat dst;
    bool regular = fstat(fd, &dst) == 0 && S_ISREG(dst.st_mode);
    /* Lock before truncating: this refuses a destination that is any layer
     * of the source chain (its reader lock does not share "write") or an
     * image another process is using, as qemu-img does. */
    if (regular) {
        struct scuse_err err = { 0 };
        if (image_lock(fd, dst_name, LOCK_PERM_READ | LOCK_PERM_WRITE | LOCK_PERM_RESIZE,
                       LOCK_PERM_WRITE | LOCK_PERM_RESIZE, &err) < 0) {
            close(fd);
            blk_close(src);
            return cli_fail(EXIT_IMAGE, "convert", "%s", err.msg);
        }
    }
    /* A fresh sparse file reads as zeros, so zero ranges need no writes. */
    if (regular && (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)src->size) < 0)) {
        int e = errno;
        close(fd);
        blk_close(src);
        return cli_fail(EXIT_IMAGE, "convert", "'%s': cannot size to %" PRIu64 " bytes: %s",
                        dst_name, src->size, strerror(e));
    }

    struct progress pr = { .tty = isatty(STDOUT_FILENO), .last = -10000 };
    struct blk_copy_opts o = {
        .threads = threads,
        .dst_is_zeroed = regular,
        .progress = progress ? draw_progress : NULL,
        .progress_ctx = &pr,
    };
    if (progress)
        draw_progress(&pr, 0, src->size);
    struct blk_copy_failure why = { 0 };
    int r = blk_copy_to_fd(src, fd, &o, &why);
    if (progress) {
        if (r == 0)
            draw_progress(&pr, src->size, src->size);
        printf("\n");
    }
    int rc = EXIT_OK;
    if (r < 0 && why.writing)
        rc = cli_fail(EXIT_IMAGE, "convert", "'%s': write at offset %" PRIu64 " failed: %s",
                      dst_name, why.off, strerror(-r));
    else if (r < 0 && why.msg[0])
        rc = cli_fail(EXIT_IMAGE, "convert", "%s (reading guest offset %" PRIu64 ")", why.msg, why.off);
    else if (r < 0)
        rc = cli_fail(EXIT_IMAGE, "convert", "'%s': read at guest offset %" PRIu64 " failed: %s",
                      src_name, why.off, strerror(-r));
    else if (flush_at_end && fdatasync(fd) < 0 && errno != EINVAL)
        rc = cli_fail(EXIT_IMAGE, "convert", "'%s': flush failed: %s", dst_name, strerror(errno));
    if (close(fd) < 0 && rc == EXIT_OK)
        rc = cli_fail(EXIT_IMAGE, "convert", "'%s': close failed: %s", dst_name, strerror(errno));
    blk_close(src);
    return rc;
}
