/* scuse create: a new image, with qemu-img create's options. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blk/format.h"
#include "cli/cli.h"

static void create_usage(FILE *f)
{
    char list[256];
    blk_format_list(BLK_FMT_CREATE, list, sizeof(list));
    fprintf(f, "usage: scuse create [-q] -f FMT [-o OPT=VAL[,...]] [-b BACKING -F BACKING_FMT] IMG [SIZE]\n"
               "       scuse create -f FMT -o help\n"
               "  FMT: %s (default raw); '-o help' lists a format's options.\n"
               "  SIZE may be omitted with -b: the backing file's size is used.\n", list);
}

/* Split one -o string; the keys every format shares become fields. */
static int parse_opts(char *s, struct blk_create_opts *o)
{
    int rc = cli_split_kv("create", s, &o->o);
    for (int i = 0; rc == EXIT_OK && i < o->o.n;) {
        const char *k = o->o.kv[i].key, *val = o->o.kv[i].val;
        if (strcmp(k, "backing_file") == 0) {
            o->backing_file = val;
        } else if (strcmp(k, "backing_fmt") == 0) {
            o->backing_fmt = val;
        } else if (strcmp(k, "size") == 0) {
            if (cli_parse_size(val, &o->size) < 0)
                return cli_fail(EXIT_USAGE, "create", "invalid size '%s'", val);
        } else {
            i++;
            continue;
        }
        cli_kv_remove(&o->o, i);
    }
    return rc;
}

/* "-o help" alone (qemu-img's spelling: a key with no value). */
static bool is_help(const char *s)
{
    return strcmp(s, "help") == 0 || strcmp(s, "?") == 0;
}

int cmd_create(int argc, char **argv)
{
    static const struct option longopts[] = { { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
    struct blk_create_opts o = { 0 };
    const char *fmt = "raw";
    char *optstr[8];
    int nopt = 0, c;
    bool quiet = false, want_help = false;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:o:b:F:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': fmt = optarg; break;
        case 'o':
            if (is_help(optarg)) {
                want_help = true;
                break;
            }
            if (nopt == 8)
                return cli_fail(EXIT_USAGE, "create", "too many -o");
            optstr[nopt++] = optarg;
            break;
        case 'b': o.backing_file = optarg; break;
        case 'F': o.backing_fmt = optarg; break;
        case 'q': quiet = true; break;
        case 'h': create_usage(stdout); return EXIT_OK;
        default: create_usage(stderr); return EXIT_USAGE;
        }
    }
    if (want_help) {
        struct scuse_err err = { 0 };
        if (blk_create_help(fmt, stdout, &err) < 0)
            return cli_fail(EXIT_USAGE, "create", "%s", err.msg);
        return EXIT_OK;
    }
    int left = argc - optind;
    if (left < 1 || left > 2)
        return cli_fail(EXIT_USAGE, "create", "expected IMG [SIZE]");
    const char *path = argv[optind];

    char *owned[8] = { 0 };
    int rc = EXIT_OK;
    for (int i = 0; i < nopt && rc == EXIT_OK; i++) {
        owned[i] = strdup(optstr[i]);
        rc = owned[i] ? parse_opts(owned[i], &o) : EXIT_IMAGE;
    }
    bool have_size = o.size != 0;
    if (rc == EXIT_OK && left == 2) {
        if (cli_parse_size(argv[optind + 1], &o.size) < 0)
            rc = cli_fail(EXIT_USAGE, "create", "invalid size '%s'", argv[optind + 1]);
        have_size = true;
    }
    if (rc == EXIT_OK && o.backing_file && !o.backing_fmt)
        rc = cli_fail(EXIT_USAGE, "create", "a backing file needs its format: add -F FMT");
    if (rc == EXIT_OK && !have_size) {
        if (!o.backing_file) {
            rc = cli_fail(EXIT_USAGE, "create", "no SIZE given and no backing file to take it from");
        } else {
            /* The backing name is relative to the new image's directory. */
            struct blk_node *tmp = NULL;
            struct blk_node fake = { .path = (char *)path, .backing_name = (char *)o.backing_file };
            char *bpath = blk_backing_path(&fake);
            if (!bpath || cli_open("create", bpath, o.backing_fmt, BLK_OPEN_SHARE, NULL, &tmp) < 0)
                rc = EXIT_IMAGE;
            else
                o.size = tmp->size;
            blk_close(tmp);
            free(bpath);
        }
    }
    if (rc == EXIT_OK) {
        if (!quiet)
            printf("Formatting '%s', fmt=%s size=%" PRIu64 "\n", path, fmt, o.size);
        struct scuse_err err = { 0 };
        int r = blk_create(path, fmt, &o, &err);
        if (r < 0)
            rc = cli_fail(r == -EINVAL || r == -ENOTSUP ? EXIT_USAGE : EXIT_IMAGE, "create", "%s",
                          err.msg[0] ? err.msg : strerror(-r));
    }
    for (int i = 0; i < nopt; i++)
        free(owned[i]);
    return rc;
}
