/* Read-only formats through the libyal libraries (libvhdi for VHDX,
 * libqcow for qcow version 1): what scuse does not write itself. A write
 * is refused at open with a message that says to put a qcow2 overlay on
 * the image.
 *
 * A libyal file handle is not thread-safe (each read takes the handle's
 * lock for writing, and seeks): the driver keeps a pool of handles on the
 * same file, opened as concurrent readers need them, up to `handles`
 * (open option, default YAL_HANDLES_DEFAULT), and a reader borrows one
 * for the time of its read. tests/unit/test_yal.c measures one handle
 * against several. */
#ifndef SCUSE_YAL_H
#define SCUSE_YAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "blk/driver.h"
#include "blk/format.h"

#define YAL_HANDLES_DEFAULT 4
#define YAL_HANDLES_MAX 64

struct yal_pool;

/* One library's way to open, read and close a handle on bs->path. */
struct yal_ops {
    const char *lib;                   /* "libvhdi", for messages */
    int (*open)(struct yal_pool *p, void **h, struct scuse_err *err);
    void (*close)(void *h);
    /* Read len bytes at off; -errno with the library's reason in why. */
    int (*read)(void *h, void *buf, size_t len, uint64_t off, char *why, size_t whylen);
};

struct yal_pool {
    const char *path;
    const struct yal_ops *ops;
    void *ctx;                         /* the driver's (a password...) */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    void **all;                        /* every handle opened */
    void **idle;                       /* the ones not in use */
    unsigned n, nidle, max, opening;
};

/* The pool with its first handle open (which validates the file). */
int yal_pool_init(struct yal_pool *p, const char *path, const struct yal_ops *ops, void *ctx,
                  unsigned max, void **first, struct scuse_err *err);
void yal_pool_destroy(struct yal_pool *p);
int yal_read(struct yal_pool *p, uint64_t off, const struct iov_view *v, struct scuse_err *err);

/* What every libyal format's state begins with: the pool, the size, what
 * info shows, and optionally where the image keeps data (the libraries do
 * not say: the drivers read the allocation tables themselves). The
 * driver's own state embeds it first, so bs->state is both. */
#define YAL_INFO_MAX 4
struct yal_image {
    struct yal_pool pool;
    uint64_t size;
    struct blk_info_item info[YAL_INFO_MAX];
    unsigned n_info;
    /* Status of [off, off+len) (this layer); NULL: all data. */
    int (*status)(struct blk_node *bs, uint64_t off, uint64_t len, uint64_t *pnum,
                  struct blk_status *st, struct scuse_err *err);
    /* Host bytes of the image's own files when it has more than bs->fd
     * (a descriptor's extents); 0: bs->fd's allocation. */
    uint64_t files_bytes;
    /* Frees the driver's own parts (the pool and the image are freed by
     * yal_image_free); NULL: nothing of its own. */
    void (*free_own)(struct yal_image *im);
};

/* The pool of im (its first handle in *first), with the handles option;
 * the pool's ctx is im. */
int yal_image_init(struct blk_node *bs, struct yal_image *im, const struct yal_ops *ops,
                   void **first, struct scuse_err *err);
/* Adds a string row to what info shows (s static or the driver's). */
void yal_info_add(struct yal_image *im, const char *key, const char *label, const char *s);
/* free_own, the pool, then im itself (malloc'd as the driver's state). */
void yal_image_free(struct yal_image *im);
/* Sets the node from the opened image (size, alignment, state). */
void yal_image_attach(struct blk_node *bs, struct yal_image *im);

/* The driver callbacks every libyal format shares (bs->state is a yal_image). */
void yal_close(struct blk_node *bs);
int yal_preadv(struct blk_node *bs, uint64_t off, const struct iov_view *v, struct scuse_err *err);
int yal_block_status(struct blk_node *bs, uint64_t off, uint64_t len, uint64_t *pnum,
                     struct blk_status *st, struct scuse_err *err);
int yal_info(struct blk_node *bs, struct blk_info *info, struct scuse_err *err);
int yal_allocated(struct blk_node *bs, uint64_t *bytes);

/* For formats/vmdk: an open it refused (native, a negative errno, its
 * reason in err) tried again through libvmdk; 0 with bs->drv and the node
 * set up when libvmdk reads it, else the native reason with libvmdk's. */
int yal_vmdk_fallback(struct blk_node *bs, int native, struct scuse_err *err);

/* The `handles` open option (1..YAL_HANDLES_MAX). */
int yal_handles_opt(struct blk_node *bs, unsigned *out, struct scuse_err *err);

/* A read-write open of a format scuse only reads. */
int yal_refuse_write(struct blk_node *bs, const char *fmt, struct scuse_err *err);

/* A libyal error chain as one line ("a. b."), in place, never longer. */
void yal_one_line(char *s);

#endif
