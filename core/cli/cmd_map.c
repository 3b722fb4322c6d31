/* scuse map: the chain's allocation, in qemu-img map's rows. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "blk/blk.h"
#include "cli/cli.h"

struct map_row {
    uint64_t start, length, offset;
    unsigned depth;
    bool present, zero, data, has_offset;
    const char *file;
};

static void map_usage(FILE *f)
{
    fprintf(f, "usage: scuse map [-f FMT] [--output=human|json] [--start-offset=OFF] "
               "[--max-length=LEN] [--l2-cache-size=BYTES] [-U] IMG\n");
}

static bool mergeable(const struct map_row *a, const struct map_row *b)
{
    if (a->depth != b->depth || a->present != b->present || a->zero != b->zero ||
        a->data != b->data || a->has_offset != b->has_offset)
        return false;
    return !a->has_offset || a->offset + a->length == b->offset;
}

static void print_row(const struct map_row *r, int json, bool first)
{
    if (json) {
        printf("%s{ \"start\": %" PRIu64 ", \"length\": %" PRIu64 ", \"depth\": %u, "
               "\"present\": %s, \"zero\": %s, \"data\": %s",
               first ? "[" : ",\n", r->start, r->length, r->depth, r->present ? "true" : "false",
               r->zero ? "true" : "false", r->data ? "true" : "false");
        if (r->has_offset)
            printf(", \"offset\": %" PRIu64, r->offset);
        printf("}");
    } else if (r->data && r->has_offset) {
        printf("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n", r->start, r->length,
               r->offset, r->file);
    }
}

int cmd_map(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "output", required_argument, NULL, 'o' },
        { "format", required_argument, NULL, 'f' },
        { "start-offset", required_argument, NULL, 's' },
        { "max-length", required_argument, NULL, 'l' },
        { "l2-cache-size", required_argument, NULL, 'C' },
        { "force-share", no_argument, NULL, 'U' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct cli_image_opts o = { 0 };
    uint64_t start = 0, max_len = UINT64_MAX;
    struct blk_opts opts = { 0 };
    int c, r;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:hU", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (cli_parse_size(optarg, &start) < 0)
                return cli_fail(EXIT_USAGE, "map", "invalid --start-offset '%s'", optarg);
            break;
        case 'l':
            if (cli_parse_size(optarg, &max_len) < 0)
                return cli_fail(EXIT_USAGE, "map", "invalid --max-length '%s'", optarg);
            break;
        case 'C': {
            uint64_t v;
            if (cli_parse_size(optarg, &v) < 0)
                return cli_fail(EXIT_USAGE, "map", "invalid --l2-cache-size '%s'", optarg);
            /* qcow2's open option; other formats refuse it by name */
            opts.fmt.kv[0].key = "l2-cache-size";
            opts.fmt.kv[0].val = optarg;
            opts.fmt.n = 1;
            break;
        }
        default:
            if ((r = cli_image_opt("map", c, &o, map_usage)) != CLI_OPT_NEXT)
                return r;
        }
    }
    if (optind != argc - 1)
        return cli_fail(EXIT_USAGE, "map", "expected exactly one image");

    struct blk_node *bs;
    if (cli_open("map", argv[optind], o.fmt, o.share ? BLK_OPEN_SHARE : 0, &opts, &bs) < 0)
        return EXIT_IMAGE;

    uint64_t end = bs->size;
    if (start > end)
        start = end;
    if (max_len < end - start)
        end = start + max_len;
    if (!o.json)
        printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");

    struct map_row cur = { 0 };
    bool have = false, first = true;
    int rc = EXIT_OK;
    for (uint64_t off = start; off < end;) {
        uint64_t n;
        struct blk_status st;
        struct scuse_err err = { 0 };
        r = blk_block_status(bs, off, end - off, &n, &st, &err);
        if (r < 0) {
            rc = cli_fail(EXIT_IMAGE, "map", "%s (block status at guest offset %" PRIu64 ")",
                          cli_reason(&err, r), off);
            break;
        }
        struct map_row row = {
            .start = off, .length = n, .depth = st.depth,
            .present = st.flags & BLK_STATUS_ALLOCATED,
            .zero = st.flags & BLK_STATUS_ZERO,
            .data = st.flags & BLK_STATUS_DATA,
            .has_offset = (st.flags & BLK_STATUS_OFFSET) != 0,
            .offset = st.offset,
            .file = st.layer ? st.layer->filename : bs->filename,
        };
        if (have && mergeable(&cur, &row)) {
            cur.length += row.length;
        } else {
            if (have) {
                print_row(&cur, o.json, first);
                first = false;
            }
            cur = row;
            have = true;
        }
        off += n;
    }
    if (have && rc == EXIT_OK) {
        print_row(&cur, o.json, first);
        first = false;
    }
    if (o.json)
        printf(first ? "[]\n" : "]\n");
    blk_close(bs);
    return rc;
}
