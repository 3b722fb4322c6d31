/* scuse info: what qemu-img info says, in its words and JSON names. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blk/format.h"
#include "cli/cli.h"
#include "io/file.h"
#include "util/json.h"

static void info_usage(FILE *f)
{
    fprintf(f, "usage: scuse info [-f FMT] [--output=human|json] [--backing-chain] [-U] IMG\n"
               "  -f FMT           image format; probed when absent (see 'scuse --help')\n"
               "  --output=json    machine-readable output with qemu-img's field names\n"
               "  --backing-chain  also describe every backing file\n"
               "  -U               force share: take no image locks (the image may be in use)\n");
}

static void json_node(struct json_out *j, struct blk_node *bs, const struct blk_info *fi)
{
    uint64_t actual = 0;
    blk_allocated(bs, &actual);
    json_obj_begin(j, NULL);
    if (fi && fi->n_snapshots > 0) {
        json_arr_begin(j, "snapshots");
        for (int i = 0; i < fi->n_snapshots; i++) {
            const struct blk_snapshot_info *s = &fi->snapshots[i];
            json_obj_begin(j, NULL);
            if (s->icount != UINT64_MAX)
                json_uint(j, "icount", s->icount);
            json_uint(j, "vm-clock-nsec", s->vm_clock_nsec % 1000000000ull);
            json_str(j, "name", s->name);
            json_uint(j, "date-sec", s->date_sec);
            json_uint(j, "date-nsec", s->date_nsec);
            json_uint(j, "vm-clock-sec", s->vm_clock_nsec / 1000000000ull);
            json_str(j, "id", s->id);
            json_uint(j, "vm-state-size", s->vm_state_size);
            json_obj_end(j);
        }
        json_arr_end(j);
    }
    json_uint(j, "virtual-size", bs->size);
    json_str(j, "filename", bs->filename);
    if (bs->cluster_size)
        json_uint(j, "cluster-size", bs->cluster_size);
    json_str(j, "format", blk_format_name(bs));
    json_uint(j, "actual-size", actual);
    if (fi && fi->type) {
        json_obj_begin(j, "format-specific");
        json_str(j, "type", fi->type);
        json_obj_begin(j, "data");
        /* open[d]: whether nesting level d is a list (else an object) */
        bool open[8];
        int depth = 0;
        for (int i = 0; i < fi->n_items; i++) {
            const struct blk_info_item *it = &fi->item[i];
            if (it->kind == BLK_INFO_STR)
                json_str(j, it->key, it->s ? it->s : "");
            else if (it->kind == BLK_INFO_BOOL)
                json_bool(j, it->key, it->b);
            else if (it->kind == BLK_INFO_INT)
                json_int(j, it->key, it->i);
            else if (it->kind == BLK_INFO_END && depth > 0)
                open[--depth] ? json_arr_end(j) : json_obj_end(j);
            else if (it->kind != BLK_INFO_END && depth < 8) {
                open[depth++] = it->kind == BLK_INFO_LIST;
                if (it->kind == BLK_INFO_LIST)
                    json_arr_begin(j, it->key);
                else
                    json_obj_begin(j, NULL);
            }
        }
        while (depth > 0)
            open[--depth] ? json_arr_end(j) : json_obj_end(j);
        json_obj_end(j);
        json_obj_end(j);
    }
    if (bs->backing_name) {
        char *full = blk_backing_path(bs);
        json_str(j, "full-backing-filename", full ? full : bs->backing_name);
        free(full);
        json_str(j, "backing-filename", bs->backing_name);
        if (bs->backing_fmt)
            json_str(j, "backing-filename-format", bs->backing_fmt);
    }
    json_bool(j, "dirty-flag", bs->dirty);
    json_obj_end(j);
}

static void human_snapshots(const struct blk_info *fi)
{
    printf("Snapshot list:\n");
    printf("%-10s%-17s%8s%20s%13s%11s\n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT");
    for (int i = 0; i < fi->n_snapshots; i++) {
        const struct blk_snapshot_info *s = &fi->snapshots[i];
        char size[32], date[32], clock[32], icount[32] = "";
        cli_human_size(s->vm_state_size, size, sizeof(size));
        time_t t = (time_t)s->date_sec;
        struct tm tm;
        localtime_r(&t, &tm);
        strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
        uint64_t ms = s->vm_clock_nsec / 1000000ull;
        snprintf(clock, sizeof(clock), "%02llu:%02llu:%02llu.%03llu",
                 (unsigned long long)(ms / 3600000ull), (unsigned long long)(ms / 60000ull % 60),
                 (unsigned long long)(ms / 1000ull % 60), (unsigned long long)(ms % 1000ull));
        if (s->icount != UINT64_MAX)
            snprintf(icount, sizeof(icount), "%llu", (unsigned long long)s->icount);
        printf("%-9s %-16s %10s%20s%13s%11s\n", s->id, s->name, size, date, clock, icount);
    }
}

static void human_node(struct blk_node *bs, const struct blk_info *fi)
{
    uint64_t actual = 0;
    char vs[32], ds[32];
    blk_allocated(bs, &actual);
    cli_human_size(bs->size, vs, sizeof(vs));
    cli_human_size(actual, ds, sizeof(ds));
    printf("image: %s\n", bs->filename);
    printf("file format: %s\n", blk_format_name(bs));
    printf("virtual size: %s (%llu bytes)\n", vs, (unsigned long long)bs->size);
    printf("disk size: %s\n", ds);
    if (bs->cluster_size)
        printf("cluster_size: %u\n", bs->cluster_size);
    if (bs->backing_name) {
        char *full = blk_backing_path(bs);
        if (full && strcmp(full, bs->backing_name) != 0)
            printf("backing file: %s (actual path: %s)\n", bs->backing_name, full);
        else
            printf("backing file: %s\n", bs->backing_name);
        free(full);
        if (bs->backing_fmt)
            printf("backing file format: %s\n", bs->backing_fmt);
    }
    if (bs->dirty)
        printf("dirty flag: true\n");
    if (fi && fi->n_snapshots > 0)
        human_snapshots(fi);
    if (fi && fi->type && fi->n_items > 0) {
        printf("Format specific information:\n");
        /* As qemu-img: a list's objects are numbered "[0]:", each level
         * indented by four more spaces. */
        int ind = 4, index[8] = { 0 }, depth = 0;
        for (int i = 0; i < fi->n_items; i++) {
            const struct blk_info_item *it = &fi->item[i];
            if (it->kind == BLK_INFO_STR)
                printf("%*s%s: %s\n", ind, "", it->label, it->s ? it->s : "");
            else if (it->kind == BLK_INFO_BOOL)
                printf("%*s%s: %s\n", ind, "", it->label, it->b ? "true" : "false");
            else if (it->kind == BLK_INFO_INT)
                printf("%*s%s: %lld\n", ind, "", it->label, (long long)it->i);
            else if (it->kind == BLK_INFO_LIST && depth < 8) {
                printf("%*s%s:\n", ind, "", it->label);
                index[depth++] = 0;
                ind += 4;
            } else if (it->kind == BLK_INFO_OBJ && depth > 0 && depth < 8) {
                printf("%*s[%d]:\n", ind, "", index[depth - 1]++);
                index[depth++] = 0;
                ind += 4;
            } else if (it->kind == BLK_INFO_END && depth > 0) {
                depth--;
                ind -= 4;
            }
        }
    }
}

int cmd_info(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "output", required_argument, NULL, 'o' },
        { "backing-chain", no_argument, NULL, 'b' },
        { "format", required_argument, NULL, 'f' },
        { "force-share", no_argument, NULL, 'U' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct cli_image_opts o = { 0 };
    bool chain = false;
    int c, r;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:hU", longopts, NULL)) != -1) {
        if (c == 'b')
            chain = true;
        else if ((r = cli_image_opt("info", c, &o, info_usage)) != CLI_OPT_NEXT)
            return r;
    }
    if (optind != argc - 1)
        return cli_fail(EXIT_USAGE, "info", "expected exactly one image");

    struct blk_node *top;
    unsigned flags = (chain ? 0 : BLK_OPEN_NO_BACKING) | (o.share ? BLK_OPEN_SHARE : 0);
    if (cli_open("info", argv[optind], o.fmt, flags, NULL, &top) < 0)
        return EXIT_IMAGE;

    struct json_out j;
    if (o.json) {
        json_init(&j, stdout, false);
        if (chain)
            json_arr_begin(&j, NULL);
    }
    int rc = EXIT_OK;
    for (struct blk_node *bs = top; bs; bs = bs->backing) {
        struct blk_info fi = { 0 };
        struct scuse_err err = { 0 };
        r = blk_info(bs, &fi, &err);
        if (r < 0) {
            cli_fail(EXIT_IMAGE, "info", "'%s': cannot read format details: %s", bs->path,
                     cli_reason(&err, r));
            rc = EXIT_IMAGE;
            free(fi.snapshots);
            break;
        }
        if (o.json)
            json_node(&j, bs, &fi);
        else {
            if (bs != top)
                printf("\n");
            human_node(bs, &fi);
        }
        free(fi.snapshots);
        if (!chain)
            break;
    }
    if (o.json) {
        if (chain)
            json_arr_end(&j);
        json_end(&j);
    }
    blk_close(top);
    return rc;
}
