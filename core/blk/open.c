/* Opening an image chain: format choice, backing resolution, limits. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk/driver.h"
#include "io/lock.h"
#include "util/log.h"

int blk_check_open_opts(const struct blk_driver *d, const struct blk_kv *kv, const char *path,
                        struct scuse_err *err);

#define PROBE_HEAD 4096
#define PROBE_TAIL 512

/* Join a relative backing name to the overlay's directory. */
char *blk_path_beside(const char *overlay_path, const char *name)
{
    if (name[0] == '/')
        return strdup(name);
    char *copy = strdup(overlay_path);
    if (!copy)
        return NULL;
    const char *dir = dirname(copy);
    char *out = NULL;
    if (strcmp(dir, ".") == 0)
        out = strdup(name);
    else if (asprintf(&out, "%s/%s", dir, name) < 0)
        out = NULL;
    free(copy);
    return out;
}

char *blk_backing_path(const struct blk_node *bs)
{
    if (!bs->backing_name)
        return NULL;
    return blk_path_beside(bs->path, bs->backing_name);
}

static bool has_protocol_prefix(const char *name)
{
    /* "nbd://", "json:{...}", "file:x": qemu treats a name with a colon
     * before any slash as a protocol. scuse opens only local files. */
    const char *colon = strchr(name, ':');
    const char *slash = strchr(name, '/');
    return colon && (!slash || colon < slash);
}

static void node_free(struct blk_node *bs)
{
    if (!bs)
        return;
    if (bs->drv && bs->drv->close && bs->state)
        bs->drv->close(bs);
    if (bs->fd >= 0)
        close(bs->fd);
    if (bs->rmw_lock_ready)
        pthread_rwlock_destroy(&bs->rmw_lock);
    free(bs->filename);
    free(bs->path);
    free(bs->backing_name);
    free(bs->backing_fmt);
    free(bs);
}

void blk_close(struct blk_node *bs)
{
    while (bs) {
        struct blk_node *next = bs->backing;
        node_free(bs);
        bs = next;
    }
}

unsigned blk_chain_length(const struct blk_node *bs)
{
    unsigned n = 0;
    for (; bs; bs = bs->backing)
        n++;
    return n;
}

/* The format given, or the one whose probe claims the file's first and
 * last bytes. A format scuse only recognises is refused by name, never
 * served as raw. */
static int choose_driver(struct blk_node *bs, const char *fmt, off_t file_size,
                         struct scuse_err *err)
{
    const char *path = bs->path;
    if (fmt) {
        bs->drv = blk_driver_find_in(bs->opts.drivers, fmt);
        if (!bs->drv) {
            char list[256];
            blk_format_list(BLK_FMT_OPEN, list, sizeof(list));
            return err_set(err, -EINVAL, "'%s': unknown format '%s' (scuse opens: %s)", path, fmt,
                           list);
        }
        if (bs->drv->unsupported)
            return err_set(err, -ENOTSUP, "'%s': scuse cannot open %s images yet", path,
                           bs->drv->unsupported);
        return 0;
    }
    uint8_t head[PROBE_HEAD], tail[PROBE_TAIL];
    ssize_t n = pread(bs->fd, head, sizeof(head), 0);
    if (n < 0)
        return err_set(err, -errno, "'%s': cannot read: %s", path, strerror(errno));
    struct blk_probe p = { .head = head, .head_len = (size_t)n, .tail = tail,
                           .file_size = (uint64_t)file_size };
    if (file_size >= PROBE_TAIL) {
        ssize_t t = pread(bs->fd, tail, sizeof(tail), file_size - PROBE_TAIL);
        if (t < 0)
            return err_set(err, -errno, "'%s': cannot read: %s", path, strerror(errno));
        p.tail_len = (size_t)t;
    }
    bs->drv = blk_driver_probe_in(bs->opts.drivers, &p);
    bs->probed = true;
    if (!bs->drv)
        return err_set(err, -EINVAL, "'%s': no format recognises it", path);
    if (bs->drv->unsupported)
        return err_set(err, -ENOTSUP, "'%s' is a %s image; scuse cannot open %s yet", path,
                       bs->drv->unsupported, bs->drv->unsupported);
    return 0;
}

struct chain_ctx {
    dev_t dev[BLK_MAX_DEPTH_DEFAULT * 4];
    ino_t ino[BLK_MAX_DEPTH_DEFAULT * 4];
    unsigned n;
    unsigned max_depth;
    bool blamed;        /* a backing failure already names its overlay */
};

static int open_node(const char *filename, const char *path, const char *fmt, bool rw,
                     unsigned flags, unsigned depth, const struct blk_opts *opts,
                     struct chain_ctx *cc, struct blk_node **out, struct scuse_err *err);

/* The caller's backing file for bs (opts->backing[bs->depth]), or none
 * where the given chain ends: what the image records is not followed. */
static int open_given_backing(struct blk_node *bs, unsigned flags, const struct blk_opts *opts,
                              struct chain_ctx *cc, struct scuse_err *err)
{
    if (bs->depth >= opts->n_backing)
        return 0;
    const struct blk_backing *b = &opts->backing[bs->depth];
    if (!(bs->drv->caps & BLK_DRV_BACKING))
        return err_set(err, -EINVAL, "'%s': %s images have no backing file, but '%s' is given "
                       "as its backing file", bs->path, bs->drv->name, b->file);
    if (!b->file || !b->file[0] || !b->fmt || !b->fmt[0])
        return err_set(err, -EINVAL, "'%s': a backing file given without %s", bs->path,
                       b->file && b->file[0] ? "its format" : "a name");
    if (bs->depth + 1 >= cc->max_depth)
        return err_set(err, -EMLINK, "'%s': backing chain is deeper than %u images", bs->path,
                       cc->max_depth);
    cc->blamed = false;
    int r = open_node(b->file, b->file, b->fmt, false, flags, bs->depth + 1, opts, cc,
                      &bs->backing, err);
    if (r < 0 && !cc->blamed)
        err_prefix(err, "'%s': cannot open its backing file: ", bs->path);
    cc->blamed = true;
    return r;
}

static int open_node(const char *filename, const char *path, const char *fmt, bool rw,
                     unsigned flags, unsigned depth, const struct blk_opts *opts,
                     struct chain_ctx *cc, struct blk_node **out, struct scuse_err *err)
{
    struct blk_node *bs = calloc(1, sizeof(*bs));
    if (!bs)
        return err_set(err, -ENOMEM, "out of memory");
    bs->fd = -1;
    bs->filename = strdup(filename);
    bs->path = strdup(path);
    bs->read_only = !rw;
    bs->check_only = rw && depth == 0 && (flags & BLK_OPEN_CHECK);
    bs->no_flush = rw && depth == 0 && (flags & BLK_OPEN_NO_FLUSH);
    bs->share = flags & BLK_OPEN_SHARE;
    bs->depth = depth;
    bs->opts = *opts;
    bs->opts.backing = NULL;        /* the caller's, used only here (opts) */
    bs->opts.n_backing = 0;
    bs->align = 1;
    int r;
    if (!bs->filename || !bs->path) {
        r = err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }

    bs->fd = open(path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (bs->fd < 0) {
        r = -errno;
        err_set(err, r, "'%s': cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(bs->fd, &st) < 0) {
        r = -errno;
        err_set(err, r, "'%s': cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        r = err_set(err, -EISDIR, "'%s': is a directory, not an image", path);
        goto fail;
    }
    for (unsigned i = 0; i < cc->n; i++) {
        if (cc->dev[i] == st.st_dev && cc->ino[i] == st.st_ino) {
            r = err_set(err, -ELOOP, "'%s': backing chain loops back to this file", path);
            goto fail;
        }
    }
    if (!(flags & BLK_OPEN_SHARE)) {
        /* As QEMU: a writer uses and refuses to share write and resize; a
         * reader (backing files included) uses read and refuses them too. */
        unsigned perms = rw ? LOCK_PERM_READ | LOCK_PERM_WRITE | LOCK_PERM_RESIZE : LOCK_PERM_READ;
        r = image_lock(bs->fd, path, perms, LOCK_PERM_WRITE | LOCK_PERM_RESIZE, err);
        if (r < 0)
            goto fail;
    }
    if (cc->n < sizeof(cc->dev) / sizeof(cc->dev[0])) {
        cc->dev[cc->n] = st.st_dev;
        cc->ino[cc->n] = st.st_ino;
        cc->n++;
    }

    /* lseek, not st_size: a block device's st_size is 0. */
    off_t fsize = lseek(bs->fd, 0, SEEK_END);
    r = choose_driver(bs, fmt, fsize < 0 ? 0 : fsize, err);
    if (r < 0)
        goto fail;
    if (depth > 0)
        bs->opts.fmt.n = 0; /* per-format options are the top image's */
    r = blk_check_open_opts(bs->drv, &bs->opts.fmt, path, err);
    if (r < 0)
        goto fail;

    r = bs->drv->open(bs, err);
    if (r < 0) {
        /* Drivers name the image in their reasons; one that gave none
         * still gets a line that names it. */
        if (err && !err->msg[0])
            err_set(err, r, "'%s': cannot open as %s: %s", path, bs->drv->name, strerror(-r));
        goto fail;
    }
    if (bs->align == 0)
        bs->align = 1;
    if (bs->align & (bs->align - 1)) {
        r = err_set(err, -EINVAL, "'%s': driver %s asks for alignment %u, not a power of two",
                    path, bs->drv->name, bs->align);
        goto fail;
    }
    if (bs->align > 1) {
        if (pthread_rwlock_init(&bs->rmw_lock, NULL) != 0) {
            r = err_set(err, -ENOMEM, "out of memory");
            goto fail;
        }
        bs->rmw_lock_ready = true;
    }

    r = 0;
    bool explicit = depth < opts->n_backing || (depth == opts->n_backing && opts->backing_end);
    if (explicit && !(depth == 0 && (flags & BLK_OPEN_NO_BACKING))) {
        r = open_given_backing(bs, flags, opts, cc, err);
    } else if (bs->backing_name && !(depth == 0 && (flags & BLK_OPEN_NO_BACKING))) {
        /* The reasons below name this overlay and its backing file already. */
        cc->blamed = true;
        if (depth + 1 >= cc->max_depth) {
            r = err_set(err, -EMLINK, "'%s': backing chain is deeper than %u images",
                        path, cc->max_depth);
            goto fail;
        }
        if (!bs->backing_fmt) {
            r = err_set(err, -EINVAL,
                        "'%s': the format of backing file '%s' is not recorded; record it with "
                        "'qemu-img rebase -u -b %s -F <format> %s'",
                        path, bs->backing_name, bs->backing_name, path);
            goto fail;
        }
        if (has_protocol_prefix(bs->backing_name)) {
            r = err_set(err, -ENOTSUP, "'%s': backing file '%s' uses a protocol; only local files "
                        "are supported", path, bs->backing_name);
            goto fail;
        }
        cc->blamed = false;
        char *bpath = blk_path_beside(path, bs->backing_name);
        if (!bpath) {
            r = err_set(err, -ENOMEM, "out of memory");
            goto fail;
        }
        r = open_node(bpath, bpath, bs->backing_fmt, false, flags, depth + 1, opts, cc,
                      &bs->backing, err);
        free(bpath);
        if (r < 0) {
            /* Only the innermost overlay adds this, so a deep chain says
             * which overlay named the file that could not be opened. */
            if (!cc->blamed)
                err_prefix(err, "'%s': cannot open its backing file: ", path);
            cc->blamed = true;
            goto fail;
        }
        if (bs->drv->verify_backing && (r = bs->drv->verify_backing(bs, err)) < 0) {
            blk_close(bs->backing);
            bs->backing = NULL;
            cc->blamed = true; /* the reason names this image and its parent */
            goto fail;
        }
    }
    if (r < 0)
        goto fail;
    *out = bs;
    return 0;

fail:
    node_free(bs);
    return r;
}

int blk_open(const char *filename, const char *fmt, unsigned flags,
             const struct blk_opts *opts, struct blk_node **out, struct scuse_err *err)
{
    struct blk_opts o = { 0 };
    if (opts)
        o = *opts;
    struct chain_ctx cc = { .n = 0, .max_depth = o.max_depth ? o.max_depth : BLK_MAX_DEPTH_DEFAULT };
    if (cc.max_depth > BLK_MAX_DEPTH_DEFAULT * 4)
        cc.max_depth = BLK_MAX_DEPTH_DEFAULT * 4;
    *out = NULL;
    struct blk_node *bs = NULL;
    int r = open_node(filename, filename, fmt, flags & (BLK_OPEN_RW | BLK_OPEN_CHECK),
                      flags, 0, &o, &cc, &bs, err);
    if (r < 0)
        return r;
    if (bs->probed && strcmp(blk_format_name(bs), "raw") == 0)
        log_debug("'%s': format not given, probed as raw", filename);
    *out = bs;
    return 0;
}
