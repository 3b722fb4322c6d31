/* scuse io: qemu-io's basic commands against an image chain, for tests,
 * long scripted runs and crash trials (commands from -c or, one per line,
 * from standard input) and for poking at an image by hand. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blk/blk.h"
#include "cli/cli.h"

#define IO_MAX_ARGS 16
#define IO_QUIT (-1)     /* run_cmd: "quit" ends the run */

static void io_commands(FILE *f)
{
    fprintf(f, "commands (offsets and lengths take k/M/G suffixes):\n"
               "  read [-P BYTE] [-q] OFF LEN      read; with -P verify every byte (exit 1 on mismatch)\n"
               "  write [-P BYTE] [-q] OFF LEN     write BYTE (default 0xcd)\n"
               "  write -z [-u] [-q] OFF LEN       write zeros (-u: may deallocate)\n"
               "  discard [-q] OFF LEN             discard\n"
               "  flush                            make completed writes durable\n"
               "  quit                             stop here (also: end of input)\n");
}

static void io_usage(FILE *f)
{
    fprintf(f, "usage: scuse io [-f FMT] [-r] [-U] IMG [-c CMD ...]\n"
               "Without -c, commands come from standard input, one per line (blank lines\n"
               "and lines starting with '#' are skipped; a prompt when it is a terminal).\n");
    io_commands(f);
}

struct io_ctx {
    struct blk_node *bs;
    int status;          /* worst exit code so far */
    unsigned long line;  /* the input line being run (standard input), else 0 */
};

/* cli_fail, naming the input line when commands come from standard input. */
static int __attribute__((format(printf, 3, 4))) io_fail(const struct io_ctx *io, int code,
                                                         const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (io->line)
        return cli_fail(code, "io", "line %lu: %s", io->line, msg);
    return cli_fail(code, "io", "%s", msg);
}

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
            return io_fail(io, EXIT_USAGE, "too many words in command");
        argv[argc++] = t;
    }
    argv[argc] = NULL;
    if (argc == 0)
        return EXIT_OK;
    const char *verb = argv[0];
    if (strcmp(verb, "quit") == 0 || strcmp(verb, "q") == 0)
        return IO_QUIT;
    if (strcmp(verb, "help") == 0) {
        io_commands(stdout);
        return EXIT_OK;
    }
    if (strcmp(verb, "flush") == 0) {
        struct scuse_err err = { 0 };
        int r = blk_flush(io->bs, &err);
        if (r < 0)
            return io_fail(io, EXIT_IMAGE, "flush failed: %s", cli_reason(&err, r));
        return EXIT_OK;
    }
    bool is_read = strcmp(verb, "read") == 0, is_write = strcmp(verb, "write") == 0;
    bool is_discard = strcmp(verb, "discard") == 0;
    if (!is_read && !is_write && !is_discard)
        return io_fail(io, EXIT_USAGE, "unknown command '%s'", verb);

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
                return io_fail(io, EXIT_USAGE, "%s: bad pattern '%s'", verb, optarg);
            break;
        case 'z': if (!is_write) goto bad; zero = true; break;
        case 'u': if (!is_write) goto bad; unmap = true; break;
        case 'q': quiet = true; break;
        default: goto bad;
        }
    }
    if (argc - optind != 2)
        return io_fail(io, EXIT_USAGE, "%s: expected OFFSET and LENGTH", verb);
    uint64_t off, len;
    if (cli_parse_size(argv[optind], &off) < 0 || cli_parse_size(argv[optind + 1], &len) < 0)
        return io_fail(io, EXIT_USAGE, "%s: bad offset or length '%s %s'", verb, argv[optind],
                        argv[optind + 1]);
    if (unmap && !zero)
        return io_fail(io, EXIT_USAGE, "write: -u needs -z");
    if (zero && pattern >= 0)
        return io_fail(io, EXIT_USAGE, "write: -z and -P exclude each other");
    if (off > io->bs->size || len > io->bs->size - off)
        return io_fail(io, EXIT_USAGE, "%s: %" PRIu64 "+%" PRIu64 " is beyond the image size %" PRIu64,
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
            return io_fail(io, EXIT_USAGE, "%s: length too large", verb);
        unsigned char *buf = malloc(len ? (size_t)len : 1);
        if (!buf)
            return io_fail(io, EXIT_IMAGE, "%s: out of memory for %" PRIu64 " bytes", verb, len);
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
                        if (io->line) /* a script goes on, as with -c: say where it failed */
                            fprintf(stderr, "scuse io: line %lu: read: pattern verification failed "
                                    "at offset %" PRIu64 "\n", io->line, off + i);
                        io->status = io->status > EXIT_USAGE ? io->status : EXIT_USAGE;
                        break;
                    }
                }
            }
        }
        free(buf);
    }
    if (r < 0)
        return io_fail(io, EXIT_IMAGE, "%s %" PRIu64 " %" PRIu64 " failed: %s", verb, off, len,
                       cli_reason(&err, r));
    if (!quiet)
        report(is_read ? "read" : is_write ? "wrote" : "discard", off, len, now_sec() - t0);
    return EXIT_OK;
bad:
    return io_fail(io, EXIT_USAGE, "%s: unknown option", verb);
}

/* Commands from standard input, one per line, until end of input or quit.
 * A script stops at its first failing command (as a -c list does); at a
 * terminal a failure is reported and the next command is read. */
static void run_stdin(struct io_ctx *io)
{
    bool tty = isatty(STDIN_FILENO);
    char *line = NULL;
    size_t cap = 0;
    for (;;) {
        if (tty) {
            fputs("scuse io> ", stdout);
            fflush(stdout);
        }
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0)
            break;
        io->line++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        const char *p = line + strspn(line, " \t");
        if (*p == '\0' || *p == '#')
            continue;
        int rc = run_cmd(io, line);
        if (rc == IO_QUIT)
            break;
        if (rc != EXIT_OK) {
            io->status = rc > io->status ? rc : io->status;
            if (!tty)
                break;
        }
    }
    if (ferror(stdin))
        io->status = cli_fail(EXIT_IMAGE, "io", "reading commands from standard input: %s",
                              strerror(errno));
    else if (tty && feof(stdin))
        putchar('\n');
    free(line);
    io->line = 0;
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
    char **cmds = NULL;  /* the -c arguments (argv's strings), as many as given */
    size_t ncmds = 0, cap = 0;
    int c, r;
    bool ro = false;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:c:rUh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (ncmds == cap) {
                size_t ncap = cap ? 2 * cap : 64;
                char **n = realloc(cmds, ncap * sizeof(*n));
                if (!n) {
                    free(cmds);
                    return cli_fail(EXIT_IMAGE, "io", "out of memory for %zu commands", ncap);
                }
                cmds = n;
                cap = ncap;
            }
            cmds[ncmds++] = optarg;
            break;
        case 'r': ro = true; break;
        default: /* no --output here: 'o' never comes */
            if ((r = cli_image_opt("io", c, &o, io_usage)) != CLI_OPT_NEXT) {
                free(cmds);
                return r;
            }
        }
    }
    const char *bad = optind != argc - 1 ? "expected exactly one image"
                      : o.share && !ro ? "-U needs -r (a writer always takes its locks)" : NULL;
    if (bad) {
        free(cmds);
        return cli_fail(EXIT_USAGE, "io", "%s", bad);
    }
    struct io_ctx io = { 0 };
    unsigned flags = (ro ? 0 : BLK_OPEN_RW) | (o.share ? BLK_OPEN_SHARE : 0);
    if (cli_open("io", argv[optind], o.fmt, flags, NULL, &io.bs) < 0) {
        free(cmds);
        return EXIT_IMAGE;
    }
    if (ncmds == 0)
        run_stdin(&io);
    for (size_t i = 0; i < ncmds; i++) {
        char *copy = strdup(cmds[i]);
        if (!copy) {
            io.status = EXIT_IMAGE;
            break;
        }
        int rc = run_cmd(&io, copy);
        free(copy);
        if (rc == IO_QUIT)
            break;
        if (rc != EXIT_OK) {
            io.status = rc;
            break;
        }
    }
    free(cmds);
    /* Closing flushes, as qemu-io does, so that what was written lands. */
    struct scuse_err ferr = { 0 };
    r = blk_flush(io.bs, &ferr);
    if (r < 0 && io.status == EXIT_OK)
        io.status = cli_fail(EXIT_IMAGE, "io", "flush at close failed: %s", cli_reason(&ferr, r));
    blk_close(io.bs);
    return io.status;
}
