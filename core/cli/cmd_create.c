/* scuse create: a new image, with qemu-img create's options. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blk/driver.h"
#include "cli/cli.h"

static void create_usage(FILE *f)
{
    fprintf(f, "usage: scuse create [-q] -f FMT [-o OPT=VAL[,...]] [-b BACKING -F BACKING_FMT] IMG [SIZE]\n"
               "  qcow2 options: cluster_size, compat (0.10|1.1|v2|v3), refcount_bits,\n"
               "                 extended_l2, compression_type (zlib|zstd), lazy_refcounts,\n"
               "                 preallocation (off|metadata|falloc|full)\n"
               "  raw options:   preallocation (off|falloc|full)\n"
               "  SIZE may be omitted with -b: the backing file's size is used.\n");
}

/* Split "a=1,b=2" into o->kv (pointers into the writable string s). */
static int parse_opts(char *s, struct blk_create_opts *o)
{
    for (char *save = NULL, *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        if (!eq)
            return cli_fail(EXIT_USAGE, "create", "option '%s' needs a value (OPT=VAL)", t);
        *eq = '\0';
        const char *val = eq + 1;
        if (strcmp(t, "backing_file") == 0) {
            o->backing_file = val;
        } else if (strcmp(t, "backing_fmt") == 0) {
            o->backing_fmt = val;
        } else if (strcmp(t, "size") == 0) {
            if (cli_parse_size(val, &o->size) < 0)
                return cli_fail(EXIT_USAGE, "create", "invalid size '%s'", val);
        } else {
            if (o->n == BLK_CREATE_MAX_OPTS)
                return cli_fail(EXIT_USAGE, "create", "too many options");
            o->kv[o->n].key = t;
            o->kv[o->n].val = val;
            o->n++;
        }
    }
    return EXIT_OK;
}

int cmd_create(int argc, char **argv)
{
    static const struct option longopts[] = { { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
    struct blk_create_opts o = { 0 };
    const char *fmt = "raw";
    char *optstr[8];
    int nopt = 0, c;
    bool quiet = false;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:o:b:F:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': fmt = optarg; break;
        case 'o':
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
    int left = argc - optind;
    if (left < 1 || left > 2)
        return cli_fail(EXIT_USAGE, "create", "expected IMG [SIZE]");
    const char *path = argv[optind];
    const struct blk_driver *drv = blk_driver_find(fmt);
    if (!drv || !drv->create)
        return cli_fail(EXIT_USAGE, "create", "cannot create images of format '%s' (qcow2, raw)", fmt);

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
        int r = drv->create(path, &o, &err);
        if (r < 0)
            rc = cli_fail(r == -EINVAL ? EXIT_USAGE : EXIT_IMAGE, "create", "%s",
                          err.msg[0] ? err.msg : strerror(-r));
    }
    for (int i = 0; i < nopt; i++)
        free(owned[i]);
    return rc;
}
