/* qcow version 1, read through libqcow: plain, compressed clusters, legacy
 * AES (the key given as the open option password=...). Images with a
 * backing file are refused: libqcow 20201213 misreads qcow v1 chains (with
 * the parent attached, a quarter of 512-byte reads fail and as many return
 * wrong data, measured against qemu-img). Block status comes from the
 * L1/L2 tables, read here (qcow_map.c): libqcow does not say. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libqcow.h>

#include "yal/qcow_map.h"
#include "yal/yal.h"

#define QCOW_MAX_CHAIN 16

struct qcow_state {
    struct yal_image im;       /* first: bs->state and the pool's ctx are both */
    const char *password;      /* the open option, or NULL */
    uint32_t encryption;
    char *backing;             /* as recorded, or NULL */
    struct qcow_map map;
};

/* A handle (an array, should libqcow's chains ever be trusted). */
struct qcow_handle {
    libqcow_file_t *f[QCOW_MAX_CHAIN];
    int n;
};

static int qcow_probe(const struct blk_probe *p)
{
    return p->head_len >= 8 && memcmp(p->head, "QFI\xfb\0\0\0\1", 8) == 0 ? 100 : 0;
}

static void why_of(libqcow_error_t *e, char *why, size_t len)
{
    why[0] = '\0';
    if (e) {
        libqcow_error_sprint(e, why, len);
        libqcow_error_free(&e);
    }
    yal_one_line(why);
}

static char *backing_name(libqcow_file_t *f)
{
    size_t n = 0;
    if (libqcow_file_get_utf8_backing_filename_size(f, &n, NULL) != 1 || n <= 1)
        return NULL;
    char *s = malloc(n);
    if (s && libqcow_file_get_utf8_backing_filename(f, (uint8_t *)s, n, NULL) != 1) {
        free(s);
        s = NULL;
    }
    return s;
}

static void handle_free(struct qcow_handle *h)
{
    for (int i = h->n - 1; i >= 0; i--) {
        libqcow_file_close(h->f[i], NULL);
        libqcow_file_free(&h->f[i], NULL);
    }
    free(h);
}

static int open_one(const char *path, const char *password, libqcow_file_t **out,
                    struct scuse_err *err)
{
    libqcow_error_t *e = NULL;
    char why[512];
    libqcow_file_t *f = NULL;
    if (libqcow_file_initialize(&f, &e) != 1) {
        why_of(e, why, sizeof(why));
        return err_set(err, -ENOMEM, "'%s': libqcow: %s", path, why);
    }
    if (password && libqcow_file_set_utf8_password(f, (const uint8_t *)password, strlen(password),
                                                   &e) != 1) {
        why_of(e, why, sizeof(why));
        libqcow_file_free(&f, NULL);
        return err_set(err, -EINVAL, "'%s': libqcow refuses the password: %s", path, why);
    }
    if (libqcow_file_open(f, path, LIBQCOW_OPEN_READ, &e) != 1) {
        why_of(e, why, sizeof(why));
        libqcow_file_free(&f, NULL);
        return err_set(err, -EINVAL, "'%s': libqcow cannot open it: %s", path, why);
    }
    *out = f;
    return 0;
}

static int qcow_open_handle(struct yal_pool *p, void **out, struct scuse_err *err)
{
    struct qcow_state *s = p->ctx;
    struct qcow_handle *h = calloc(1, sizeof(*h));
    if (!h)
        return err_set(err, -ENOMEM, "out of memory");
    int r = open_one(p->path, s->password, &h->f[0], err);
    if (r < 0) {
        free(h);
        return r;
    }
    h->n = 1;
    *out = h;
    return 0;
}

static void qcow_close_handle(void *h)
{
    handle_free(h);
}

static int qcow_read_handle(void *hv, void *buf, size_t len, uint64_t off, char *why, size_t wl)
{
    struct qcow_handle *h = hv;
    libqcow_error_t *e = NULL;
    ssize_t n = libqcow_file_read_buffer_at_offset(h->f[0], buf, len, (off64_t)off, &e);
    if (n == (ssize_t)len)
        return 0;
    why_of(e, why, wl);
    return -EIO;
}

static const struct yal_ops qcow_ops = {
    .lib = "libqcow",
    .open = qcow_open_handle,
    .close = qcow_close_handle,
    .read = qcow_read_handle,
};

static void free_own(struct yal_image *im)
{
    struct qcow_state *s = (struct qcow_state *)im;
    qcow_map_free(&s->map);
    free(s->backing);
}

static int map_status(struct blk_node *bs, uint64_t off, uint64_t len, uint64_t *pnum,
                      struct blk_status *st, struct scuse_err *err)
{
    struct qcow_state *s = bs->state;
    int r = qcow_map_status(&s->map, off, len, pnum, st);
    if (r < 0)
        return err_set(err, r, "'%s': cannot read the L2 table for offset %" PRIu64 ": %s",
                       bs->path, off, strerror(-r));
    return 0;
}

static int qcow_open(struct blk_node *bs, struct scuse_err *err)
{
    if (!bs->read_only && !bs->check_only)
        return yal_refuse_write(bs, "qcow", err);
    struct qcow_state *s = calloc(1, sizeof(*s));
    if (!s)
        return err_set(err, -ENOMEM, "out of memory");
    s->password = blk_open_opt(bs, "password");
    s->im.free_own = free_own;
    void *hv;
    int r = yal_image_init(bs, &s->im, &qcow_ops, &hv, err);
    if (r < 0) {
        free(s);
        return r;
    }
    struct qcow_handle *h = hv;
    libqcow_error_t *e = NULL;
    char why[512];
    uint32_t version = 0;
    if (libqcow_file_get_format_version(h->f[0], &version, &e) != 1 ||
        libqcow_file_get_media_size(h->f[0], &s->im.size, &e) != 1 ||
        libqcow_file_get_encryption_method(h->f[0], &s->encryption, &e) != 1) {
        why_of(e, why, sizeof(why));
        r = err_set(err, -EINVAL, "'%s': libqcow: %s", bs->path, why);
    } else if (version != 1) {
        r = err_set(err, -EINVAL, "'%s': not a qcow version 1 image (version %u)", bs->path, version);
    } else if (s->encryption == LIBQCOW_ENCRYPTION_METHOD_AES_128_CBC && !s->password) {
        r = err_set(err, -EACCES, "'%s': the image is encrypted (legacy AES); give its password "
                    "with the open option password=...", bs->path);
    } else if (s->encryption != LIBQCOW_ENCRYPTION_METHOD_NONE &&
               s->encryption != LIBQCOW_ENCRYPTION_METHOD_AES_128_CBC) {
        r = err_set(err, -ENOTSUP, "'%s': unsupported encryption method %u", bs->path,
                    s->encryption);
    }
    if (r == 0 && (s->backing = backing_name(h->f[0])) != NULL)
        r = err_set(err, -ENOTSUP, "'%s': qcow version 1 images with a backing file ('%s') are not "
                    "supported (libqcow misreads them); qemu-img convert -O qcow2 makes one image "
                    "of the chain", bs->path, s->backing);
    if (r == 0) {
        int m = qcow_map_load(bs->fd, s->im.size, &s->map);
        if (m < 0)
            r = err_set(err, m, "out of memory");
        else if (m == 0)
            s->im.status = map_status;
    }
    if (r < 0) {
        yal_image_free(&s->im);
        return r;
    }
    yal_info_add(&s->im, "encryption", "encryption",
                 s->encryption == LIBQCOW_ENCRYPTION_METHOD_AES_128_CBC ? "aes" : "none");
    yal_info_add(&s->im, "reader", "reader", "libqcow");
    yal_image_attach(bs, &s->im);
    return 0;
}


static const struct blk_opt_desc qcow_open_opts[] = {
    { "handles", BLK_OPT_NUM, "libqcow handles for concurrent reads (1 to 64, default 4)" },
    { "password", BLK_OPT_STR, "Password of a legacy AES-encrypted image" },
    { NULL, 0, NULL },
};

const struct blk_driver blk_driver_qcow = {
    .name = "qcow",
    .description = "QEMU copy-on-write version 1 (through libqcow)",
    .open_opts = qcow_open_opts,
    .probe = qcow_probe,
    .open = qcow_open,
    .close = yal_close,
    .preadv = yal_preadv,
    .block_status = yal_block_status,
    .info = yal_info,
};
