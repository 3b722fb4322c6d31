/* scuse convert: export an image chain to a raw file, or to a new image of
 * any format scuse creates (options as `scuse create`), optionally with
 * every cluster compressed (-c) where the format can store that. */
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
#include "blk/format.h"
#include "cli/cli.h"
#include "io/lock.h"

static void convert_usage(FILE *f)
{
    char out[256], comp[256];
    blk_format_list(BLK_FMT_CREATE, out, sizeof(out));
    blk_format_list(BLK_FMT_COMPRESS, comp, sizeof(comp));
    fprintf(f, "usage: scuse convert [-f FMT] [-O FMT] [-c] [-o OPT=VAL[,...]] [-t CACHE] [-p]\n"
               "                     [-m THREADS] [-W] [-U] SRC DST\n"
               "  -f FMT      source format; probed when absent\n"
               "  -O FMT      output format: %s (default raw)\n"
               "  -c          store every cluster compressed (%s)\n"
               "  -o OPTS     creation options, as for 'scuse create -f FMT' ('-o help' lists them)\n", out, comp);
    fprintf(f, 
               "  -t CACHE    unsafe (default, as qemu-img: no flush at the end) or writeback\n"
               "              (flush the output before exiting)\n"
               "  -p          show progress\n"
               "  -m THREADS  parallel workers (default: one per CPU, at least 8)\n"
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

struct convert_ctx {
    struct blk_node *src;
    const char *dst_name, *out_fmt;
    bool compress, progress, flush_at_end;
    unsigned threads;
    char **opts;
    int nopt;
};

/* Split one -o string into o; keys that describe a new image's origin
 * have no meaning for a conversion. */
static int split_opts(char *s, struct blk_create_opts *o, bool compress)
{
    int first = o->o.n;
    int rc = cli_split_kv("convert", s, &o->o);
    for (int i = first; rc == EXIT_OK && i < o->o.n; i++) {
        const char *k = o->o.kv[i].key, *v = o->o.kv[i].val;
        if (strcmp(k, "backing_file") == 0 || strcmp(k, "backing_fmt") == 0 || strcmp(k, "size") == 0)
            return cli_fail(EXIT_USAGE, "convert", "option '%s' cannot be used with convert", k);
        if (strcmp(k, "preallocation") == 0 && strcmp(v, "off") != 0 && compress)
            return cli_fail(EXIT_USAGE, "convert", "-c cannot be used with preallocation=%s", v);
    }
    return rc;
}

static void report_failure(int r, const struct blk_copy_failure *why, const char *src_name,
                           const char *dst_name)
{
    if (r < 0 && why->writing && why->msg[0])
        cli_fail(EXIT_IMAGE, "convert", "%s (writing guest offset %" PRIu64 ")", why->msg, why->off);
    else if (r < 0 && why->writing)
        cli_fail(EXIT_IMAGE, "convert", "'%s': write at offset %" PRIu64 " failed: %s",
                 dst_name, why->off, strerror(-r));
    else if (r < 0 && why->msg[0])
        cli_fail(EXIT_IMAGE, "convert", "%s (reading guest offset %" PRIu64 ")", why->msg, why->off);
    else if (r < 0)
        cli_fail(EXIT_IMAGE, "convert", "'%s': read at guest offset %" PRIu64 " failed: %s",
                 src_name, why->off, strerror(-r));
}

/* A new image made by its format's create, then filled through the block
 * layer (compressed clusters through blk_write_compressed). */
static int convert_to_format(struct convert_ctx *cc)
{
    struct blk_create_opts co = { 0 };
    char *owned[8] = { 0 };
    int rc = EXIT_OK;
    for (int i = 0; i < cc->nopt && rc == EXIT_OK; i++) {
        owned[i] = strdup(cc->opts[i]);
        rc = owned[i] ? split_opts(owned[i], &co, cc->compress) : cli_fail(EXIT_IMAGE, "convert", "out of memory");
    }
    co.size = cc->src->size;
    /* Refuse a destination in use (a layer of the source chain included)
     * before create truncates it, as the raw path does. */
    int lfd = rc == EXIT_OK ? open(cc->dst_name, O_RDWR | O_CLOEXEC) : -1;
    if (lfd >= 0) {
        struct scuse_err err = { 0 };
        if (image_lock(lfd, cc->dst_name, LOCK_PERM_READ | LOCK_PERM_WRITE | LOCK_PERM_RESIZE,
                       LOCK_PERM_WRITE | LOCK_PERM_RESIZE, &err) < 0)
            rc = cli_fail(EXIT_IMAGE, "convert", "%s", err.msg);
    }
    if (rc == EXIT_OK) {
        struct scuse_err err = { 0 };
        int r = blk_create(cc->dst_name, cc->out_fmt, &co, &err);
        if (r < 0)
            rc = cli_fail(r == -EINVAL ? EXIT_USAGE : EXIT_IMAGE, "convert", "%s",
                          err.msg[0] ? err.msg : strerror(-r));
    }
    if (lfd >= 0)
        close(lfd);
    for (int i = 0; i < cc->nopt; i++)
        free(owned[i]);
    if (rc != EXIT_OK)
        return rc;
    struct blk_node *dst;
    /* -t unsafe, as qemu-img's cache=unsafe: not even the metadata is
     * synced (a failed convert leaves an output to throw away anyway). */
    unsigned flags = BLK_OPEN_RW | BLK_OPEN_NO_BACKING | (cc->flush_at_end ? 0 : BLK_OPEN_NO_FLUSH);
    if (cli_open("convert", cc->dst_name, cc->out_fmt, flags, NULL, &dst) < 0)
        return EXIT_IMAGE;
    struct progress pr = { .tty = isatty(STDOUT_FILENO), .last = -10000 };
    struct blk_copy_opts o = {
        .threads = cc->threads,
        .dst_is_zeroed = true,
        .compress = cc->compress,
        .progress = cc->progress ? draw_progress : NULL,
        .progress_ctx = &pr,
    };
    if (cc->progress)
        draw_progress(&pr, 0, cc->src->size);
    struct blk_copy_failure why = { 0 };
    int r = blk_copy_to_node(cc->src, dst, &o, &why);
    if (cc->progress) {
        if (r == 0)
            draw_progress(&pr, cc->src->size, cc->src->size);
        printf("\n");
    }
    if (r == -ENOTSUP && !why.writing && !why.msg[0])
        rc = cli_fail(EXIT_IMAGE, "convert", "'%s': this image cannot take compressed clusters",
                      cc->dst_name);
    else if (r < 0) {
        report_failure(r, &why, cc->src->filename, cc->dst_name);
        rc = EXIT_IMAGE;
    }
    struct scuse_err ferr = { 0 };
    if (rc == EXIT_OK && cc->flush_at_end && (r = blk_flush(dst, &ferr)) < 0)
        rc = cli_fail(EXIT_IMAGE, "convert", "%s", cli_reason(&ferr, r));
    blk_close(dst);
    return rc;
}

int cmd_convert(int argc, char **argv)
{
    const char *fmt = NULL, *out_fmt = "raw";
    bool progress = false, share = false, flush_at_end = false, compress = false;
    char *optstr[8];
    int nopt = 0;
    unsigned threads = 0;
    int c;
    optind = 1;
    static const struct option longopts[] = { { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
    while ((c = getopt_long(argc, argv, "f:O:t:pm:WhUco:", longopts, NULL)) != -1) {
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
        case 'c': compress = true; break;
        case 'o':
            if (nopt == 8)
                return cli_fail(EXIT_USAGE, "convert", "too many -o");
            optstr[nopt++] = optarg;
            break;
        case 'U': share = true; break;
        case 'h': convert_usage(stdout); return EXIT_OK;
        default: convert_usage(stderr); return EXIT_USAGE;
        }
    }
    if (argc - optind != 2)
        return cli_fail(EXIT_USAGE, "convert", "expected a source and a destination");
    /* raw is exported straight to the file; every other format is made by
     * its driver and written through the block layer. */
    bool to_raw = strcmp(out_fmt, "raw") == 0;
    if (!to_raw && !blk_format_has(out_fmt, BLK_FMT_CREATE)) {
        char list[256];
        blk_format_list(BLK_FMT_CREATE, list, sizeof(list));
        return cli_fail(EXIT_USAGE, "convert", "output format '%s' is not supported (%s)", out_fmt,
                        list);
    }
    if (compress && !blk_format_has(out_fmt, BLK_FMT_COMPRESS)) {
        char list[256];
        blk_format_list(BLK_FMT_COMPRESS, list, sizeof(list));
        return cli_fail(EXIT_USAGE, "convert", "-c needs an output format that stores compressed "
                        "clusters (%s)", list);
    }
    if (to_raw && nopt)
        return cli_fail(EXIT_USAGE, "convert", "-o is not supported with -O raw");
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

    if (!to_raw) {
        struct convert_ctx cc = { .src = src, .dst_name = dst_name, .out_fmt = out_fmt,
                                  .compress = compress,
                                  .progress = progress, .threads = threads,
                                  .flush_at_end = flush_at_end, .opts = optstr, .nopt = nopt };
        int rc = convert_to_format(&cc);
        blk_close(src);
        return rc;
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
    /* A fresh sparse file reads as zeros, so zero ranges need no writes.
     * An empty file is not truncated: on ext4 a truncation to 0 makes the
     * close write back the whole output (auto_da_alloc), 0.45 s per GiB
     * measured, which qemu-img does not pay either. */
    if (regular && ((dst.st_size && ftruncate(fd, 0) < 0) ||
                    ftruncate(fd, (off_t)src->size) < 0)) {
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
