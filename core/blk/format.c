/* Format-level operations the tools use: create (with its option list),
 * info, check, and the per-format option tables checked in one place. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "blk/driver.h"
#include "io/file.h"

/* The driver for a format name given by a user, or an error that names
 * what scuse can do instead. */
static const struct blk_driver *find_for(const char *fmt, enum blk_fmt_filter what,
                                         const char *verb, struct scuse_err *err)
{
    const struct blk_driver *d = blk_driver_find(fmt);
    char list[256];
    blk_format_list(what, list, sizeof(list));
    if (!d) {
        err_set(err, -EINVAL, "unknown format '%s' (scuse can %s: %s)", fmt, verb, list);
        return NULL;
    }
    if (d->unsupported) {
        err_set(err, -ENOTSUP, "scuse cannot %s %s images yet (it can %s: %s)", verb,
                d->unsupported, verb, list);
        return NULL;
    }
    return d;
}

static const struct blk_opt_desc *opt_find(const struct blk_opt_desc *t, const char *key)
{
    for (; t && t->name; t++)
        if (strcmp(t->name, key) == 0)
            return t;
    return NULL;
}

/* Every key must be one the driver lists; `what` says whose option. */
static int check_keys(const struct blk_driver *d, const struct blk_opt_desc *table,
                      const struct blk_kv *kv, const char *path, const char *what,
                      struct scuse_err *err)
{
    for (int i = 0; i < kv->n; i++) {
        if (opt_find(table, kv->kv[i].key))
            continue;
        char names[256] = "none";
        size_t used = 0;
        for (const struct blk_opt_desc *t = table; t && t->name; t++) {
            if (t->type == BLK_OPT_REFUSED)
                continue;
            int w = snprintf(names + used, sizeof(names) - used, "%s%s", used ? ", " : "", t->name);
            if (w < 0 || (size_t)w >= sizeof(names) - used)
                break;
            used += (size_t)w;
        }
        return err_set(err, -EINVAL, "'%s': unknown option '%s' (%s images take %s options: %s)",
                       path, kv->kv[i].key, d->name, what, names);
    }
    return 0;
}

int blk_create(const char *path, const char *fmt, const struct blk_create_opts *o,
               struct scuse_err *err)
{
    const struct blk_driver *d = find_for(fmt, BLK_FMT_CREATE, "create", err);
    if (!d)
        return err ? err->code : -EINVAL;
    if (!d->create) {
        char list[256];
        blk_format_list(BLK_FMT_CREATE, list, sizeof(list));
        return err_set(err, -ENOTSUP, "scuse cannot create %s images (it can create: %s)",
                       d->name, list);
    }
    if (o->backing_file && !(d->caps & BLK_DRV_BACKING))
        return err_set(err, -EINVAL, "'%s': %s images cannot have a backing file", path, d->name);
    int r = check_keys(d, d->create_opts, &o->o, path, "create", err);
    if (r < 0)
        return r;
    return d->create(path, o, err);
}

static const char *type_name(enum blk_opt_type t)
{
    switch (t) {
    case BLK_OPT_SIZE: return "<size>";
    case BLK_OPT_BOOL: return "<bool (on/off)>";
    case BLK_OPT_NUM: return "<num>";
    case BLK_OPT_STR: case BLK_OPT_REFUSED: break;
    }
    return "<str>";
}

int blk_create_help(const char *fmt, FILE *f, struct scuse_err *err)
{
    const struct blk_driver *d = find_for(fmt, BLK_FMT_CREATE, "create", err);
    if (!d)
        return err ? err->code : -EINVAL;
    if (!d->create)
        return err_set(err, -ENOTSUP, "scuse cannot create %s images", d->name);
    fprintf(f, "Supported %s options:\n", d->name);
    if (d->caps & BLK_DRV_BACKING) {
        fprintf(f, "  %-22s - %s\n", "backing_file=<str>", "File name of a base image (also -b)");
        fprintf(f, "  %-22s - %s\n", "backing_fmt=<str>", "Image format of the base image (also -F)");
    }
    for (const struct blk_opt_desc *t = d->create_opts; t && t->name; t++) {
        if (t->type == BLK_OPT_REFUSED)
            continue;
        char left[64];
        snprintf(left, sizeof(left), "%s=%s", t->name, type_name(t->type));
        fprintf(f, "  %-22s - %s\n", left, t->help);
    }
    fprintf(f, "  %-22s - %s\n", "size=<size>", "Virtual disk size");
    return 0;
}

int blk_info(struct blk_node *bs, struct blk_info *info, struct scuse_err *err)
{
    memset(info, 0, sizeof(*info));
    if (!bs->drv->info)
        return 0; /* no format-specific data: info->type stays NULL */
    info->type = bs->drv->name;
    struct scuse_err local = { 0 };
    return bs->drv->info(bs, info, err ? err : &local);
}

int blk_allocated(struct blk_node *bs, uint64_t *bytes)
{
    *bytes = 0;
    return bs->drv->allocated ? bs->drv->allocated(bs, bytes) : file_allocated(bs->fd, bytes);
}

int blk_check(struct blk_node *bs, unsigned fix, struct blk_check_result *res,
              struct scuse_err *err)
{
    memset(res, 0, sizeof(*res));
    if (!bs->drv->check) {
        char list[256];
        blk_format_list(BLK_FMT_CHECK, list, sizeof(list));
        return err_set(err, -ENOTSUP, "'%s': format '%s' has no consistency check (scuse checks: %s)",
                       bs->path, bs->drv->name, list);
    }
    struct scuse_err local = { 0 };
    int r = bs->drv->check(bs, fix, res, err ? err : &local);
    return r;
}

/* Called by blk_open before the driver's open. */
int blk_check_open_opts(const struct blk_driver *d, const struct blk_kv *kv, const char *path,
                        struct scuse_err *err)
{
    return check_keys(d, d->open_opts, kv, path, "open", err);
}

const char *blk_open_opt(const struct blk_node *bs, const char *key)
{
    for (int i = 0; i < bs->opts.fmt.n; i++)
        if (strcmp(bs->opts.fmt.kv[i].key, key) == 0)
            return bs->opts.fmt.kv[i].val;
    return NULL;
}

const char *blk_format_name(const struct blk_node *bs)
{
    return bs->drv->name;
}

bool blk_format_writable(const struct blk_node *bs)
{
    return bs->drv->pwritev != NULL;
}
