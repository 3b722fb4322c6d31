/* scuse io: qemu-io's basic commands against an image chain, for tests
 * and for poking at an image by hand. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blk/blk.h"
#include "cli/cli.h"

#define IO_MAX_CMDS 256
#define IO_MAX_ARGS 16

static void io_usage(FILE *f)
{
    fprintf(f, "usage: scuse io [-f FMT] [-r] [-U] IMG -c CMD [-c CMD ...]\n"
               "commands (offsets and lengths take k/M/G suffixes):\n"
               "  read [-P BYTE] [-q] OFF LEN      read; with -P verify every byte (exit 1 on mismatch)\n"
               "  write [-P BYTE] [-q] OFF LEN     write BYTE (default 0xcd)\n"
               "  write -z [-u] [-q] OFF LEN       write zeros (-u: may deallocate)\n"
               "  discard [-q] OFF LEN             discard\n"
               "  flush                            make completed writes durable\n");
}

struct io_ctx {
    struct blk_node *bs;
    int status;          /* worst exit code so far */
};

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *verb, uint64_t off, uint64_t len, double secs)
{
    char sz[32], rate[32];
    cli_human_size(len, sz, sizeof(sz));
    double bps = secs > 0 ? (double)len / secs : 0;
    cli_human_size((uint64_t)bps, rate, sizeof(rate));
    printf("%s %" PRIu64 "/%" PRIu64 " bytes at offset %" PRIu64 "\n", verb, len, len, off);
    printf("%s, 1 ops; %.4f sec (%s/sec and %.4f ops/sec)\n", sz, secs, rate,
           secs > 0 ? 1.0 / secs : 0.0);
}

static int parse_byte(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 0);
    if (*end || v < 0 || v > 255)
        return -EINVAL;
    *out = (int)v;
    return 0;
}

static int run_cmd(struct io_ctx *io, char *line)
{
    char *argv[IO_MAX_ARGS + 1];
    int argc = 0;
    for (char *save = NULL, *t = strtok_r(line, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        if (argc == IO_MAX_ARGS)
            return cli_fail(EXIT_USAGE, "io", "too many words in command");
        argv[argc++] = t;
    }
    argv[argc] = NULL;
    if (argc == 0)
        return EXIT_OK;
    const char *verb = argv[0];
    if (strcmp(verb, "flush") == 0) {
        struct scuse_err err = { 0 };
        int r = blk_flush(io->bs, &err);
        if (r < 0)
            return cli_fail(EXIT_IMAGE, "io", "flush failed: %s", cli_reason(&err, r));
        return EXIT_OK;
    }
    bool is_read = strcmp(verb, "read") == 0, is_write = strcmp(verb, "write") == 0;
    bool is_discard = strcmp(verb, "discard") == 0;
    if (!is_read && !is_write && !is_discard)
        return cli_fail(EXIT_USAGE, "io", "unknown command '%s'", verb);

    int pattern = -1, c;
    bool zero = false, unmap = false, quiet = false;
    /* optind = 0 makes glibc forget the previous command's scan state;
     * opterr = 0 leaves the one error line to us. */
    optind = 0;
    opterr = 0;
    while ((c = getopt(argc, argv, "P:zuq")) != -1) {
        switch (c) {
        case 'P':
            if (is_discard || parse_byte(optarg, &pattern) < 0)
                return cli_fail(EXIT_USAGE, "io", "%s: bad pattern '%s'", verb, optarg);
            break;
        case 'z': if (!is_write) goto bad; zero = true; break;
        case 'u': if (!is_write) goto bad; unmap = true; break;
        case 'q': quiet = true; break;
        default: goto bad;
        }
    }
    if (argc - optind != 2)
        return cli_fail(EXIT_USAGE, "io", "%s: expected OFFSET and LENGTH", verb);
    uint64_t off, len;
    if (cli_parse_size(argv[optind], &off) < 0 || cli_parse_size(argv[optind + 1], &len) < 0)
        return cli_fail(EXIT_USAGE, "io", "%s: bad offset or length '%s %s'", verb, argv[optind],
                        argv[optind + 1]);
    if (unmap && !zero)
        return cli_fail(EXIT_USAGE, "io", "write: -u needs -z");
    if (zero && pattern >= 0)
        return cli_fail(EXIT_USAGE, "io", "write: -z and -P exclude each other");
    if (off > io->bs->size || len > io->bs->size - off)
        return cli_fail(EXIT_USAGE, "io", "%s: %" PRIu64 "+%" PRIu64 " is beyond the image size %" PRIu64,
                        verb, off, len, io->bs->size);

    double t0 = now_sec();
    int r = 0;
    struct scuse_err err = { 0 };
    if (is_discard) {
        r = blk_discard(io->bs, off, len, &err);
    } else if (zero) {
        r = blk_write_zeroes(io->bs, off, len, unmap ? BLK_ZERO_MAY_UNMAP : 0, &err);
    } else {
        if (len > SIZE_MAX / 2)
            return cli_fail(EXIT_USAGE, "io", "%s: length too large", verb);
        unsigned char *buf = malloc(len ? (size_t)len : 1);
        if (!buf)
            return cli_fail(EXIT_IMAGE, "io", "%s: out of memory for %" PRIu64 " bytes", verb, len);
        if (is_write) {
            memset(buf, pattern >= 0 ? pattern : 0xcd, (size_t)len);
            r = blk_pwrite(io->bs, off, buf, (size_t)len, 0, &err);
        } else {
            r = blk_pread(io->bs, off, buf, (size_t)len, &err);
            if (r == 0 && pattern >= 0) {
                for (uint64_t i = 0; i < len; i++) {
                    if (buf[i] != pattern) {
                        printf("Pattern verification failed at offset %" PRIu64 ", %" PRIu64
                               " bytes\n", off + i, len);
                        io->status = io->status > EXIT_USAGE ? io->status : EXIT_USAGE;
                        break;
                    }
                }
            }
        }
        free(buf);
    }
    if (r < 0)
        return cli_fail(EXIT_IMAGE, "io", "%s %" PRIu64 " %" PRIu64 " failed: %s", verb, off, len,
                        cli_reason(&err, r));
    if (!quiet)
        report(is_read ? "read" : is_write ? "wrote" : "discard", off, len, now_sec() - t0);
    return EXIT_OK;
bad:
    return cli_fail(EXIT_USAGE, "io", "%s: unknown option", verb);
}

int cmd_io(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "format", required_argument, NULL, 'f' },
        { "cmd", required_argument, NULL, 'c' },
        { "read-only", no_argument, NULL, 'r' },
        { "force-share", no_argument, NULL, 'U' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct cli_image_opts o = { 0 };
    char *cmds[IO_MAX_CMDS];
    int ncmds = 0, c, r;
    bool ro = false;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:c:rUh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (ncmds == IO_MAX_CMDS)
                return cli_fail(EXIT_USAGE, "io", "at most %d commands", IO_MAX_CMDS);
            cmds[ncmds++] = optarg;
            break;
        case 'r': ro = true; break;
        default: /* no --output here: 'o' never comes */
            if ((r = cli_image_opt("io", c, &o, io_usage)) != CLI_OPT_NEXT)
                return r;
        }
    }
    if (optind != argc - 1)
        return cli_fail(EXIT_USAGE, "io", "expected exactly one image");
    if (o.share && !ro)
        return cli_fail(EXIT_USAGE, "io", "-U needs -r (a writer always takes its locks)");
    struct io_ctx io = { 0 };
    unsigned flags = (ro ? 0 : BLK_OPEN_RW) | (o.share ? BLK_OPEN_SHARE : 0);
    if (cli_open("io", argv[optind], o.fmt, flags, NULL, &io.bs) < 0)
        return EXIT_IMAGE;
    for (int i = 0; i < ncmds; i++) {
        char *copy = strdup(cmds[i]);
        if (!copy) {
            io.status = EXIT_IMAGE;
            break;
        }
        int rc = run_cmd(&io, copy);
        free(copy);
        if (rc != EXIT_OK) {
            io.status = rc;
            break;
        }
    }
    /* Closing flushes, as qemu-io does, so that what was written lands. */
    struct scuse_err ferr = { 0 };
    r = blk_flush(io.bs, &ferr);
    if (r < 0 && io.status == EXIT_OK)
        io.status = cli_fail(EXIT_IMAGE, "io", "flush at close failed: %s", cli_reason(&ferr, r));
    blk_close(io.bs);
    return io.status;
}
