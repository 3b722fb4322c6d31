/* scuse: SCSI in userspace. One binary, subcommands in qemu-img's manner. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blk/format.h"
#include "cli/cli.h"
#include "util/log.h"

/* From CMakeLists.txt's project(VERSION), the one place it is kept. */
#ifndef SCUSE_VERSION
#error "SCUSE_VERSION is defined by the build (CMakeLists.txt, project VERSION)"
#endif

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    { "create", cmd_create, "make a new image, optionally over a backing file" },
    { "info", cmd_info, "show an image's format, size, backing chain and format details" },
    { "map", cmd_map, "show which ranges hold data, zeros, or nothing, and in which layer" },
    { "convert", cmd_convert, "convert an image (and its backing chain) to another format [-c]" },
    { "check", cmd_check, "check an image's metadata for leaks and corruption, and repair them" },
    { "io", cmd_io, "read, write, zero, discard and flush ranges, as qemu-io does" },
    { "bench", cmd_bench, "drive an image through the SCSI dispatcher as a transport would" },
    { "serve", cmd_serve, "serve images as SCSI LUNs: to QEMU over vhost-user-scsi, or to LIO (--tcmu)" },
    { "domain", cmd_domain, "a libvirt domain's virtio-scsi disks as scuse serves them" },
    { "libvirt-hook", cmd_libvirt_hook, "libvirt's qemu hook: serve a converted domain while it runs" },
    { "ctl", cmd_ctl, "send a command to a running scuse serve's control socket, or follow its events" },
    { "tcmu", cmd_tcmu, "LIO TCMU backstores for images (vhost-scsi, loopback) and their daemon" },
};

static void usage(FILE *f)
{
    fprintf(f, "usage: scuse <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nformats (-f, -O, format=):\n");
    blk_format_help(f);
    fprintf(f, "\n'scuse <command> --help' shows a command's options.\n");
}

/* Tools print one line per failure themselves (with the reason the call
 * returned, see cli_reason), so the log stays quiet unless SCUSE_LOG asks. */
static void setup_logging(void)
{
    static const char *const names[] = { "off", "error", "warn", "info", "debug" };
    const char *want = getenv("SCUSE_LOG");
    log_set_level(LOG_LVL_OFF);
    for (int i = 0; want && i < 5; i++)
        if (strcmp(want, names[i]) == 0)
            log_set_level((enum log_level)i);
}

int main(int argc, char **argv)
{
    setup_logging();
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("scuse version %s\n", SCUSE_VERSION);
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "scuse: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
