/* VHDX (Hyper-V), read through libvhdi.
 *
 * libvhdi does not replay VHDX's log: a file whose current header names a
 * log (a non-zero log GUID: entries not yet replayed, e.g. after a crash
 * in Hyper-V) would read stale, so it is refused before libvhdi opens it,
 * and never written. A differencing VHDX (which QEMU does not read) is
 * read with its parents attached to every handle: libvhdi reads through
 * them once given them, but does not say where they are, so the parent
 * locator is read here (vhdx_parent.c: relative_path, then
 * absolute_win32_path, relative to the child), and each parent's
 * DataWriteGuid must be the child's parent_linkage. Block status comes
 * from the BAT, read here (vhdx_bat.c): libvhdi does not say. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvhdi.h>

#include "io/file.h"
#include "util/endian.h"
#include "io/lock.h"
#include "yal/vhdx_bat.h"
#include "yal/yal.h"

#define VHDX_HEADER1 (64u << 10)
#define VHDX_HEADER2 (128u << 10)
#define VHDX_HEADER_SIZE 4096u
#define VHDX_MAX_CHAIN 16

struct vhdx_state {
    struct yal_image im;       /* first: bs->state is both */
    uint32_t disk_type;
    struct vhdx_bat bat;
    char *chain[VHDX_MAX_CHAIN]; /* [0] the image, then its parents */
    int n_chain;
    /* The parents' files, held open for their image locks (QEMU's: read,
     * refusing writers) as long as the child is open; -1: none. */
    int parent_fd[VHDX_MAX_CHAIN];
    uint8_t linkage[VHDX_MAX_CHAIN][16]; /* [k]: the DataWriteGuid layer k must have */
};

/* A pool handle: one libvhdi file per layer, each given its parent. */
struct vhdx_handle {
    libvhdi_file_t *f[VHDX_MAX_CHAIN];
    int n;
};

static int vhdx_probe(const struct blk_probe *p)
{
    return p->head_len >= 8 && memcmp(p->head, "vhdxfile", 8) == 0 ? 100 : 0;
}

/* The current header (valid checksum, highest sequence number) must not
 * name a log. */
static int check_log(int fd, const char *path, struct scuse_err *err)
{
    static const uint32_t at[2] = { VHDX_HEADER1, VHDX_HEADER2 };
    uint8_t h[2][VHDX_HEADER_SIZE];
    int best = -1;
    for (int i = 0; i < 2; i++) {
        if (file_pread_exact(fd, h[i], VHDX_HEADER_SIZE, at[i]) < 0 || memcmp(h[i], "head", 4))
            continue;
        uint32_t want = le32_at(h[i] + 4);
        memset(h[i] + 4, 0, 4);
        if (vhdx_crc32c(h[i], VHDX_HEADER_SIZE) != want)
            continue;
        if (best < 0 || le64_at(h[i] + 8) > le64_at(h[best] + 8))
            best = i;
    }
    if (best < 0)
        return err_set(err, -EINVAL, "'%s': no valid VHDX header (signature 'head' and CRC-32C) "
                       "at 64 KiB or 128 KiB", path);
    static const uint8_t zero[16];
    const uint8_t *g = h[best] + 48;
    if (memcmp(g, zero, 16) != 0)
        return err_set(err, -EINVAL, "'%s': the VHDX log holds entries not yet replayed (log GUID "
                       "%02x%02x%02x%02x-...): libvhdi would read stale data; replay the log "
                       "first (qemu-img check -r all '%s', or open it in Hyper-V)",
                       path, g[3], g[2], g[1], g[0], path);
    return 0;
}

static void why_of(libvhdi_error_t *e, char *why, size_t len)
{
    why[0] = '\0';
    if (e) {
        libvhdi_error_sprint(e, why, len);
        libvhdi_error_free(&e);
    }
    yal_one_line(why);
}

static void file_free(libvhdi_file_t *f)
{
    libvhdi_file_close(f, NULL);
    libvhdi_file_free(&f, NULL);
}

static int open_file(const char *path, libvhdi_file_t **out, struct scuse_err *err)
{
    libvhdi_file_t *f = NULL;
    libvhdi_error_t *e = NULL;
    char why[512];
    if (libvhdi_file_initialize(&f, &e) != 1) {
        why_of(e, why, sizeof(why));
        return err_set(err, -ENOMEM, "'%s': libvhdi: %s", path, why);
    }
    if (libvhdi_file_open(f, path, LIBVHDI_OPEN_READ, &e) != 1) {
        why_of(e, why, sizeof(why));
        libvhdi_file_free(&f, NULL);
        return err_set(err, -EINVAL, "'%s': libvhdi cannot open it: %s", path, why);
    }
    *out = f;
    return 0;
}

static void handle_free(struct vhdx_handle *h)
{
    for (int i = h->n - 1; i >= 0; i--)
        file_free(h->f[i]);
    free(h);
}

static int vhdx_open_handle(struct yal_pool *p, void **out, struct scuse_err *err)
{
    struct vhdx_state *s = p->ctx;
    struct vhdx_handle *h = calloc(1, sizeof(*h));
    if (!h)
        return err_set(err, -ENOMEM, "out of memory");
    int r = 0;
    for (int i = 0; r == 0 && i < s->n_chain; i++) {
        r = open_file(s->chain[i], &h->f[i], err);
        if (r < 0)
            break;
        h->n = i + 1;
        libvhdi_error_t *e = NULL;
        if (i > 0 && libvhdi_file_set_parent_file(h->f[i - 1], h->f[i], &e) != 1) {
            char why[512];
            why_of(e, why, sizeof(why));
            r = err_set(err, -EINVAL, "'%s': libvhdi does not take '%s' as its parent: %s",
                        s->chain[i - 1], s->chain[i], why);
        }
    }
    if (r < 0) {
        handle_free(h);
        return r;
    }
    *out = h;
    return 0;
}

static void vhdx_close_handle(void *h)
{
    handle_free(h);
}

static int vhdx_read_handle(void *hv, void *buf, size_t len, uint64_t off, char *why, size_t wl)
{
    struct vhdx_handle *h = hv;
    libvhdi_error_t *e = NULL;
    ssize_t n = libvhdi_file_read_buffer_at_offset(h->f[0], buf, len, (off64_t)off, &e);
    if (n == (ssize_t)len)
        return 0;
    why_of(e, why, wl);
    return -EIO;
}

static const struct yal_ops vhdx_ops = {
    .lib = "libvhdi",
    .open = vhdx_open_handle,
    .close = vhdx_close_handle,
    .read = vhdx_read_handle,
};

static void free_own(struct yal_image *im)
{
    struct vhdx_state *s = (struct vhdx_state *)im;
    vhdx_bat_free(&s->bat);
    for (int i = 0; i < s->n_chain; i++) {
        free(s->chain[i]);
        if (s->parent_fd[i] >= 0)
            close(s->parent_fd[i]);
    }
}

static int bat_status(struct blk_node *bs, uint64_t off, uint64_t len, uint64_t *pnum,
                      struct blk_status *st, struct scuse_err *err)
{
    (void)err;
    vhdx_bat_status(&((struct vhdx_state *)bs->state)->bat, off, len, pnum, st);
    return 0;
}

/* A locator path made usable here: relative ones against the child's
 * directory ("./" dropped), absolute POSIX ones as they are; NULL for a
 * Windows drive path or nothing. */
static char *candidate(const char *child, const char *p, bool relative)
{
    if (!p[0])
        return NULL;
    if (!relative)
        return p[0] == '/' ? strdup(p) : NULL;
    while (p[0] == '.' && p[1] == '/')
        p += 2;
    return blk_path_beside(child, p);
}

static void guid_text(const uint8_t g[16], char out[37])
{
    /* libvhdi gives identifiers in the order they are written */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12],
             g[13], g[14], g[15]);
}

/* The parent of s->chain[k] (a differencing VHDX open as f, its file on
 * fd): found through the locator and appended, with the DataWriteGuid it
 * must have (checked once it is open and locked, in resolve_chain). */
static int add_parent(struct vhdx_state *s, int k, int fd, libvhdi_file_t *f,
                      struct scuse_err *err)
{
    const char *child = s->chain[k];
    struct vhdx_locator loc;
    char why[512];
    int r = vhdx_parent_locator(fd, &loc, why, sizeof(why));
    if (r < 0)
        return err_set(err, r, "'%s': differencing VHDX: %s", child, why);
    if (k + 1 >= VHDX_MAX_CHAIN)
        return err_set(err, -ELOOP, "'%s': more than %d VHDX layers (a loop?)", s->chain[0],
                       VHDX_MAX_CHAIN);
    libvhdi_error_t *e = NULL;
    if (libvhdi_file_get_parent_identifier(f, s->linkage[k + 1], 16, &e) != 1) {
        why_of(e, why, sizeof(why));
        return err_set(err, -EINVAL, "'%s': libvhdi: %s", child, why);
    }
    char *path = NULL;
    for (int i = 0; i < 2 && !path; i++) {
        char *c = candidate(child, i == 0 ? loc.relative : loc.absolute, i == 0);
        if (c && access(c, R_OK) == 0)
            path = c;
        else
            free(c);
    }
    if (!path)
        return err_set(err, -ENOENT, "'%s': its parent is not found (relative_path '%s', "
                       "absolute_win32_path '%s')", child, loc.relative, loc.absolute);
    char real[PATH_MAX];
    bool loop = false;
    if (realpath(path, real)) {
        for (int i = 0; i <= k && !loop; i++) {
            char other[PATH_MAX];
            loop = realpath(s->chain[i], other) && strcmp(real, other) == 0;
        }
    }
    if (loop) {
        r = err_set(err, -ELOOP, "'%s': its parent '%s' is a layer of its own chain", child,
                    path);
        free(path);
        return r;
    }
    s->chain[k + 1] = path;
    s->n_chain = k + 2;
    return 0;
}

/* Layer k > 0 (open as f, locked): a VHDX with the DataWriteGuid its
 * child's parent_linkage names. */
static int check_parent(struct vhdx_state *s, int k, libvhdi_file_t *f, struct scuse_err *err)
{
    const char *child = s->chain[k - 1], *path = s->chain[k];
    uint8_t got[16];
    libvhdi_error_t *e = NULL;
    int type = 0;
    if (libvhdi_file_get_file_type(f, &type, &e) != 1 || type != LIBVHDI_FILE_TYPE_VHDX) {
        libvhdi_error_free(&e);
        return err_set(err, -EINVAL, "'%s': its parent '%s' is not a VHDX image", child, path);
    }
    if (libvhdi_file_get_identifier(f, got, 16, &e) != 1) {
        char why[512];
        why_of(e, why, sizeof(why));
        return err_set(err, -EINVAL, "'%s': libvhdi: %s", path, why);
    }
    if (memcmp(s->linkage[k], got, 16) != 0) {
        char a[37], b[37];
        guid_text(s->linkage[k], a);
        guid_text(got, b);
        return err_set(err, -EINVAL, "'%s': its parent_linkage is %s, but the parent '%s' has "
                       "DataWriteGuid %s (the parent changed after the child was made)", child, a,
                       path, b);
    }
    return 0;
}

/* s->chain from the image down: every differencing layer's parent. */
static int resolve_chain(struct blk_node *bs, struct vhdx_state *s, struct scuse_err *err)
{
    s->chain[0] = strdup(bs->path);
    if (!s->chain[0])
        return err_set(err, -ENOMEM, "out of memory");
    s->n_chain = 1;
    int r = 0;
    for (int k = 0; r == 0 && k < s->n_chain; k++) {
        int fd = k == 0 ? bs->fd : open(s->chain[k], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return err_set(err, -errno, "'%s': cannot open: %s", s->chain[k], strerror(errno));
        if (k > 0)
            s->parent_fd[k] = fd;   /* closed with the state */
        libvhdi_file_t *f = NULL;
        r = 0;
        /* A parent is read as QEMU reads a backing file: a writer of it
         * (QEMU writes VHDX) is refused, and refuses this open. */
        if (k > 0 && !bs->share)
            r = image_lock(fd, s->chain[k], LOCK_PERM_READ, LOCK_PERM_WRITE | LOCK_PERM_RESIZE, err);
        if (r == 0 && k > 0)
            r = check_log(fd, s->chain[k], err);
        if (r == 0)
            r = open_file(s->chain[k], &f, err);
        if (r == 0 && k > 0)
            r = check_parent(s, k, f, err);
        uint32_t type = 0;
        libvhdi_error_t *e = NULL;
        if (r == 0 && libvhdi_file_get_disk_type(f, &type, &e) != 1) {
            char why[512];
            why_of(e, why, sizeof(why));
            r = err_set(err, -EINVAL, "'%s': libvhdi: %s", s->chain[k], why);
        }
        if (r == 0 && k == 0)
            s->disk_type = type;
        if (r == 0 && type == LIBVHDI_DISK_TYPE_DIFFERENTIAL)
            r = add_parent(s, k, fd, f, err);
        if (f)
            file_free(f);
    }
    return r;
}

static int vhdx_open(struct blk_node *bs, struct scuse_err *err)
{
    if (!bs->read_only && !bs->check_only)
        return yal_refuse_write(bs, "vhdx", err);
    struct vhdx_state *s = calloc(1, sizeof(*s));
    if (!s)
        return err_set(err, -ENOMEM, "out of memory");
    s->im.free_own = free_own;
    for (int i = 0; i < VHDX_MAX_CHAIN; i++)
        s->parent_fd[i] = -1;
    void *hv = NULL;
    int r = check_log(bs->fd, bs->path, err);
    if (r == 0)
        r = resolve_chain(bs, s, err);
    if (r == 0)
        r = yal_image_init(bs, &s->im, &vhdx_ops, &hv, err);
    if (r < 0) {
        free_own(&s->im);
        free(s);
        return r;
    }
    struct vhdx_handle *h = hv;
    libvhdi_error_t *e = NULL;
    int type = 0;
    char why[512];
    if (libvhdi_file_get_file_type(h->f[0], &type, &e) != 1 || type != LIBVHDI_FILE_TYPE_VHDX) {
        why_of(e, why, sizeof(why));
        r = err_set(err, -EINVAL, "'%s': not a VHDX image (libvhdi says file type %d)", bs->path,
                    type);
    } else if (libvhdi_file_get_media_size(h->f[0], &s->im.size, &e) != 1) {
        why_of(e, why, sizeof(why));
        r = err_set(err, -EINVAL, "'%s': libvhdi: %s", bs->path, why);
    }
    if (r == 0) {
        int b = vhdx_bat_load(bs->fd, s->im.size, &s->bat);
        if (b < 0)
            r = err_set(err, b, "out of memory");
        else if (b == 0)
            s->im.status = bat_status;
    }
    if (r < 0) {
        yal_image_free(&s->im);
        return r;
    }
    yal_info_add(&s->im, "subformat", "disk type",
                 s->disk_type == LIBVHDI_DISK_TYPE_FIXED ? "fixed"
                 : s->disk_type == LIBVHDI_DISK_TYPE_DIFFERENTIAL ? "differencing" : "dynamic");
    if (s->n_chain > 1)
        yal_info_add(&s->im, "parent", "parent", s->chain[1]);
    yal_info_add(&s->im, "reader", "reader", "libvhdi");
    yal_image_attach(bs, &s->im);
    return 0;
}

static const struct blk_opt_desc vhdx_open_opts[] = {
    { "handles", BLK_OPT_NUM, "libvhdi handles for concurrent reads (1 to 64, default 4)" },
    { NULL, 0, NULL },
};

const struct blk_driver blk_driver_vhdx = {
    .name = "vhdx",
    .description = "Hyper-V VHDX (through libvhdi)",
    .open_opts = vhdx_open_opts,
    .probe = vhdx_probe,
    .open = vhdx_open,
    .close = yal_close,
    .preadv = yal_preadv,
    .block_status = yal_block_status,
    .info = yal_info,
};
