/* scuse check: qemu-img check's report, JSON and exit codes (0 clean,
 * 1 check failed, 2 corruptions, 3 leaks only, 63 no checks for the
 * format). With -r the image is repaired, then checked again. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blk/format.h"
#include "cli/cli.h"
#include "util/json.h"

#define EXIT_CHECK_UNSUPPORTED 63
#define EXIT_CHECK_CORRUPT 2
#define EXIT_CHECK_LEAKS 3

static void check_usage(FILE *f)
{
    fprintf(f, "usage: scuse check [-q] [-f FMT] [--output=human|json] [-r leaks|all] [-U] IMG\n"
               "  -f FMT          image format; probed when absent (see 'scuse --help')\n"
               "  --output=json   machine-readable output with qemu-img's field names\n"
               "  -r leaks        free leaked clusters\n"
               "  -r all          also repair corruptions (refcounts, COPIED flags)\n"
               "  -U              force share: take no image locks (not with -r)\n"
               "  -q              print nothing but errors\n"
               "exit status: 0 clean, 1 check failed, 2 corruptions, 3 leaked clusters only,\n"
               "63 the format has no checks\n");
}

static void print_human(const struct blk_check_result *r)
{
    if (!(r->corruptions || r->leaks || r->check_errors)) {
        printf("No errors were found on the image.\n");
    } else {
        if (r->corruptions)
            printf("\n%" PRIu64 " errors were found on the image.\n"
                   "Data may be corrupted, or further writes to the image may corrupt it.\n",
                   r->corruptions);
        if (r->leaks)
            printf("\n%" PRIu64 " leaked clusters were found on the image.\n"
                   "This means waste of disk space, but no harm to data.\n", r->leaks);
        if (r->check_errors)
            printf("\n%" PRIu64 " internal errors have occurred during the check.\n",
                   r->check_errors);
    }
    if (r->total_clusters && r->allocated_clusters)
        printf("%" PRIu64 "/%" PRIu64 " = %0.2f%% allocated, %0.2f%% fragmented, %0.2f%% "
               "compressed clusters\n", r->allocated_clusters, r->total_clusters,
               r->allocated_clusters * 100.0 / r->total_clusters,
               r->fragmented_clusters * 100.0 / r->allocated_clusters,
               r->compressed_clusters * 100.0 / r->allocated_clusters);
    if (r->image_end_offset)
        printf("Image end offset: %" PRIu64 "\n", r->image_end_offset);
}

/* Keys in the order qemu-img prints them; zero counts are left out. */
static void print_json(const struct blk_check_result *r, const char *filename, const char *fmt)
{
    struct json_out j;
    json_init(&j, stdout, false);
    json_obj_begin(&j, NULL);
    if (r->image_end_offset)
        json_uint(&j, "image-end-offset", r->image_end_offset);
    if (r->compressed_clusters)
        json_uint(&j, "compressed-clusters", r->compressed_clusters);
    if (r->total_clusters)
        json_uint(&j, "total-clusters", r->total_clusters);
    if (r->corruptions)
        json_uint(&j, "corruptions", r->corruptions);
    if (r->corruptions_fixed)
        json_uint(&j, "corruptions-fixed", r->corruptions_fixed);
    json_uint(&j, "check-errors", r->check_errors);
    if (r->leaks)
        json_uint(&j, "leaks", r->leaks);
    if (r->leaks_fixed)
        json_uint(&j, "leaks-fixed", r->leaks_fixed);
    if (r->allocated_clusters)
        json_uint(&j, "allocated-clusters", r->allocated_clusters);
    json_str(&j, "filename", filename);
    json_str(&j, "format", fmt);
    if (r->fragmented_clusters)
        json_uint(&j, "fragmented-clusters", r->fragmented_clusters);
    json_obj_end(&j);
    json_end(&j);
}

int cmd_check(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "output", required_argument, NULL, 'o' },
        { "repair", required_argument, NULL, 'r' },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    struct cli_image_opts o = { 0 };
    unsigned fix = 0;
    bool quiet = false;
    int c, r;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:r:qUh", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': /* not cli_image_opt's: this message has its own words */
            o.json = cli_output_format(optarg);
            if (o.json < 0)
                return cli_fail(EXIT_USAGE, "check", "--output takes 'human' or 'json', not '%s'", optarg);
            break;
        case 'r':
            if (strcmp(optarg, "leaks") == 0)
                fix = BLK_CHECK_FIX_LEAKS;
            else if (strcmp(optarg, "all") == 0)
                fix = BLK_CHECK_FIX_LEAKS | BLK_CHECK_FIX_ERRORS;
            else
                return cli_fail(EXIT_USAGE, "check", "-r takes 'leaks' or 'all', not '%s'", optarg);
            break;
        case 'q': quiet = true; break;
        default:
            if ((r = cli_image_opt("check", c, &o, check_usage)) != CLI_OPT_NEXT)
                return r;
        }
    }
    if (argc - optind != 1)
        return cli_fail(EXIT_USAGE, "check", "expected one image");
    if (o.share && fix)
        return cli_fail(EXIT_USAGE, "check", "-U cannot be used with -r (repairs need the image "
                        "to themselves)");
    const char *file = argv[optind];
    struct blk_node *bs = NULL;
    struct scuse_err err = { 0 };
    /* As qemu-img: with -r, no repair at open, and an image marked dirty or
     * corrupt is still opened (for writing) so that it can be repaired. */
    unsigned flags = (o.share ? BLK_OPEN_SHARE : 0) | (fix ? BLK_OPEN_CHECK : 0);
    r = blk_open(file, o.fmt, flags, NULL, &bs, &err);
    if (r < 0)
        return cli_fail(EXIT_USAGE, "check", "%s", err.msg[0] ? err.msg : strerror(-r));
    struct blk_check_result res;
    fflush(stdout);
    err_clear(&err);
    r = blk_check(bs, fix, &res, &err);
    if (r == -ENOTSUP) {
        fprintf(stderr, "scuse check: %s\n", err.msg);
        blk_close(bs);
        return EXIT_CHECK_UNSUPPORTED;
    }
    if (r == 0 && (res.corruptions_fixed || res.leaks_fixed)) {
        if (!o.json && !quiet)
            printf("The following inconsistencies were found and repaired:\n\n"
                   "    %" PRIu64 " leaked clusters\n    %" PRIu64 " corruptions\n\n"
                   "Double checking the fixed image now...\n",
                   res.leaks_fixed, res.corruptions_fixed);
        fflush(stdout);
        uint64_t lf = res.leaks_fixed, cf = res.corruptions_fixed;
        r = blk_check(bs, 0, &res, &err);
        res.leaks_fixed = lf;
        res.corruptions_fixed = cf;
    }
    if (r == 0 && !quiet) {
        if (o.json)
            print_json(&res, file, blk_format_name(bs));
        else
            print_human(&res);
    }
    fflush(stdout);
    int rc = EXIT_OK;
    if (r < 0 || res.check_errors) {
        if (r < 0)
            fprintf(stderr, "scuse check: %s\n", err.msg[0] ? err.msg : strerror(-r));
        else
            fprintf(stderr, "scuse check: '%s': check failed\n", file);
        rc = EXIT_USAGE;
    } else if (res.corruptions) {
        rc = EXIT_CHECK_CORRUPT;
    } else if (res.leaks) {
        rc = EXIT_CHECK_LEAKS;
    }
    blk_close(bs);
    return rc;
}
